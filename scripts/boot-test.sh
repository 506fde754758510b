#!/usr/bin/env bash
# The Debian package under a real systemd: a minimal Debian 12 booted with
# systemd-nspawn, the package installed, driven and removed inside it.
#
#   scripts/boot-test.sh [DEB]
#
# DEB is the package to test (default: built now with
# scripts/build-package.sh). An older version of the same package is built
# too (version DEB's~prev), to test the upgrade.
#
# The root is made once with `debootstrap --variant=minbase bookworm` from
# the mirror apt already uses, and cached in $PMTATAIL_BOOT_CACHE (default
# /var/cache/pmtatail-boot-test: outside the tree, kept between runs). Each
# run boots a throw-away copy of it with
#   systemd-nspawn -b --register=no --keep-unit -D COPY
# (no systemd needed on the host). Inside, a oneshot unit runs
# scripts/boot-test-inside.sh, which writes one line per check to a file this
# script reads, with the journal after a failed check, and powers off.
#
# Needs root, debootstrap and systemd-container (scripts/deps.sh --test).
# Exits 0 when every check passed, 1 otherwise, 77 when it cannot run here.
set -euo pipefail
umask 022

src=$(cd "$(dirname "$0")/.." && pwd)
cache=${PMTATAIL_BOOT_CACHE:-/var/cache/pmtatail-boot-test}
suite=bookworm
# What the checks need beyond minbase: systemd as PID 1, dbus for
# systemd-analyze security, and the libraries the package links (no apt
# inside: the container needs no network).
include=systemd,systemd-sysv,dbus,libcsv3,libjansson4,libcurl4,libinih1,libxxhash0,zlib1g,libsystemd0

say() { echo "boot-test: $*" >&2; }
skip() { say "skipped: $*"; exit 77; }
die() { say "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, systemd-nspawn)"
for tool in debootstrap systemd-nspawn dpkg-deb; do
  command -v "$tool" >/dev/null || skip "$tool not found (scripts/deps.sh --test installs it)"
done

t0=$(date +%s)
work=$(mktemp -d /var/tmp/pmtatail-boot-test.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

# --- the packages ----------------------------------------------------------
deb=${1:-}
if [ -z "$deb" ]; then
  deb=$("$src/scripts/build-package.sh" --no-lintian --nocheck "$work/new" | tail -n 1)
fi
[ -f "$deb" ] || die "no package $deb"
version=$(dpkg-deb -f "$deb" Version)
prev_version="$version~prev"
prev=$("$src/scripts/build-package.sh" --no-lintian --nocheck --version "$prev_version" "$work/prev" |
  tail -n 1)
dpkg --compare-versions "$prev_version" lt "$version" || die "$prev_version is not older than $version"
say "packages $(basename "$deb"), previous $(basename "$prev") ($(($(date +%s) - t0)) s)"

# --- the root, made once -----------------------------------------------------
# The mirror apt uses on this host: deb822 .sources first, then .list lines;
# the security suite is not a mirror of the release.
mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '/^URIs:/ && !/security/ { print $2; exit }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk -v s="$suite" '$1 == "deb" && !/security/ {
        for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { if ($(i + 1) == s) { print $i; exit } break } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  echo http://deb.debian.org/debian
}
# The cached root is named by what went into it: another list makes another root.
key=$(printf '%s %s' "$suite" "$include" | sha256sum | cut -c1-12)
base=$cache/$suite-$key
mkdir -p "$cache"
# Two runs on one machine: one makes the root, the other waits for it.
exec 9>"$cache/.lock"
flock 9
if [ ! -f "$base/.complete" ]; then
  url=$(mirror)
  say "debootstrap --variant=minbase $suite from $url into $base (once; a few minutes)"
  rm -rf "$base.tmp"
  if ! debootstrap --variant=minbase --include="$include" "$suite" "$base.tmp" "$url" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    die "debootstrap failed"
  fi
  rm -rf "$base"
  mv "$base.tmp" "$base"
  touch "$base/.complete"
fi

# --- a throw-away copy, set up to run the checks at boot --------------------------
root=$work/root
cp -a --reflink=auto "$base" "$root"
flock -u 9
t=$root/root/boot-test
mkdir -p "$t"
cp "$deb" "$t/new.deb"
cp "$prev" "$t/prev.deb"
cp "$src/scripts/boot-test-inside.sh" "$t/run.sh"
chmod 0755 "$t/run.sh"
echo pmtatail-boot-test >"$root/etc/hostname"
cat >"$root/etc/systemd/system/pmtatail-boot-test.service" <<'UNIT'
[Unit]
Description=pmtatail package checks
After=multi-user.target
# Whatever happens, the container goes down and the host reads the result.
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStart=/root/boot-test/run.sh /root/boot-test
StandardOutput=journal+console
TimeoutStartSec=240

[Install]
WantedBy=multi-user.target
UNIT
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf ../pmtatail-boot-test.service "$root/etc/systemd/system/multi-user.target.wants/"
# Nothing else needs to run at boot in a container.
for u in systemd-timesyncd apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
  rm -f "$root/etc/systemd/system/"*.wants/"$u"*
done

# --- boot -----------------------------------------------------------------------
say "booting ($(($(date +%s) - t0)) s)"
tb=$(date +%s)
rc=0
timeout 300 systemd-nspawn -q -b --register=no --keep-unit --console=pipe -D "$root" \
  --machine="pmtatail-boot-test-$$" </dev/null >"$work/console.log" 2>&1 || rc=$?
boot_s=$(($(date +%s) - tb))

result=$t/result
if [ ! -f "$result" ]; then
  tail -n 80 "$work/console.log" >&2
  die "no result from inside the container (systemd-nspawn exit $rc after $boot_s s)"
fi
cat "$result"
fails=$(grep -c '^FAIL' "$result" || true)
oks=$(grep -c '^ok' "$result" || true)
if ! grep -q '^DONE' "$result"; then
  tail -n 60 "$work/console.log" >&2
  die "the checks did not finish (systemd-nspawn exit $rc after $boot_s s)"
fi
say "$oks checks passed, $fails failed; boot and checks $boot_s s, total $(($(date +%s) - t0)) s"
[ "$fails" -eq 0 ]
