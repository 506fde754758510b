#!/usr/bin/env bash
# Install the Debian packages pmtatail needs to build and test, only those
# missing. Works as root or through sudo, on Debian 12 or later.
set -euo pipefail

packages=(
  build-essential meson ninja-build pkg-config
  libcsv-dev libjansson-dev libcurl4-openssl-dev libinih-dev libsystemd-dev
  zlib1g-dev libxxhash-dev
  python3
)
if [ "${1:-}" = "--test" ]; then
  # sanitizers, the fuzzer, the format check; the package test (dpkg-deb,
  # dpkg-shlibdeps, systemd-analyze, the man page renderer, adduser for the
  # maintainer scripts); the package build (debhelper, lintian), the boot
  # test (debootstrap, systemd-nspawn from systemd-container), the RPM
  # spec's check (rpmlint, which needs rpm to read a spec)
  # and openssl for the TLS scenario's certificates; promtool (in
  # prometheus) for the alerting rules' tests; the real servers the
  # real-servers test starts on its own ports with its own configuration
  # (nginx with http2, php-fpm: the distribution's PHP, tinyproxy) and curl
  # that checks them on their own
  packages+=(clang libclang-rt-14-dev clang-format
             dpkg-dev systemd man-db groff-base adduser init-system-helpers passwd
             util-linux binutils
             debhelper lintian debootstrap systemd-container rpmlint rpm
             openssl prometheus
             nginx php-fpm tinyproxy curl)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
