#!/usr/bin/env bash
# Build the Debian package of pmtatail from this tree, without debhelper.
#
#   scripts/build-deb.sh [BUILD_DIR] [OUT_DIR]
#
# BUILD_DIR (default build-deb) gets a release build (prefix /usr,
# sysconfdir /etc), the staged install (BUILD_DIR/deb-root) and the package
# is written to OUT_DIR (default BUILD_DIR) as pmtatail_VERSION_ARCH.deb.
# The last line on stdout is the path of the .deb.
#
# Needs: meson, ninja, a C compiler and the -dev packages (scripts/deps.sh),
# dpkg-deb; dpkg-shlibdeps (package dpkg-dev) computes Depends, else a fixed
# list is used. Runs as any user: file ownership in the package is root's
# (dpkg-deb --root-owner-group).
set -euo pipefail
umask 022

src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build-deb}
mkdir -p "$build"
build=$(cd "$build" && pwd)
out=${2:-$build}
mkdir -p "$out"
out=$(cd "$out" && pwd)

die() { echo "build-deb: $*" >&2; exit 1; }
for tool in meson ninja dpkg-deb dpkg; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh installs the build tools)"
done

# --- build and stage -------------------------------------------------------
# Quiet unless a step fails: then its output, and the reason.
quiet() { # what, command...
  local what=$1 log
  shift
  log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    rm -f "$log"
    die "$what failed"
  fi
  rm -f "$log"
}
opts=(--buildtype=release --prefix=/usr --sysconfdir=/etc --localstatedir=/var -Dfuzz=false)
if [ -f "$build/meson-private/coredata.dat" ]; then
  quiet "meson setup" meson setup --reconfigure "${opts[@]}" "$build" "$src"
else
  quiet "meson setup" meson setup "${opts[@]}" "$build" "$src"
fi
quiet "the build" meson compile -C "$build"
root=$build/deb-root
rm -rf "$root"
quiet "meson install" meson install -C "$build" --no-rebuild --strip --destdir "$root"

version=$(meson introspect --projectinfo "$build" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
arch=$(dpkg --print-architecture)
[ -n "$version" ] || die "no project version in meson.build"

# --- lay out the package -----------------------------------------------------
bin=$root/usr/sbin/pmtatail
[ -x "$bin" ] || die "meson install put no usr/sbin/pmtatail in $root"
unit=
for d in lib/systemd/system usr/lib/systemd/system; do
  [ -f "$root/$d/pmtatail.service" ] && unit=$d/pmtatail.service
done
[ -n "$unit" ] || die "meson install put no pmtatail.service in $root (is subdir('pmta-config') in meson.build?)"
man=$root/usr/share/man/man8/pmtatail.8
[ -f "$man" ] || die "meson install put no $man (is subdir('doc') in meson.build?)"
gzip -9nf "$man"

# The live configuration is a conffile made from the example, with the
# webhook URL commented out: the unit is enabled at installation, and a
# daemon started (at the next boot) before anyone configured it must stop
# with "run needs an [output]" rather than send real bounces to
# oempro.example.com.
example=$root/etc/pmtatail/pmtatail.conf.example
[ -f "$example" ] || die "meson install put no $example"
# shellcheck disable=SC2016 # the backquotes are text for the reader
sed -e 's|^url = https://oempro\.example\.com/|; Set the webhook, then `systemctl restart pmtatail`:\n; url = https://oempro.example.com/|' \
  "$example" >"$root/etc/pmtatail/pmtatail.conf"
rm -f "$example"
grep -q '^; url = ' "$root/etc/pmtatail/pmtatail.conf" || die "the example configuration has no url line to comment out"

doc=$root/usr/share/doc/pmtatail
mkdir -p "$doc"
cat >"$doc/copyright" <<'COPYRIGHT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: pmtatail

Files: *
Copyright: the pmtatail authors
License: MIT
COPYRIGHT

# Whatever the umask of the checkout: directories and the binary 0755,
# every other file 0644.
find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f -exec chmod 0644 {} +
chmod 0755 "$bin"

# --- control files -------------------------------------------------------------
control=$root/DEBIAN
mkdir -p "$control"

depends=
if command -v dpkg-shlibdeps >/dev/null; then
  # dpkg-shlibdeps wants a debian/control to read; give it a minimal one.
  shl=$build/deb-shlibdeps
  rm -rf "$shl"
  mkdir -p "$shl/debian"
  printf 'Source: pmtatail\n\nPackage: pmtatail\nArchitecture: any\n' >"$shl/debian/control"
  depends=$(cd "$shl" && dpkg-shlibdeps -O "$bin" 2>/dev/null | sed -n 's/^shlibs:Depends=//p') || depends=
fi
if [ -z "$depends" ]; then
  echo "build-deb: dpkg-shlibdeps unavailable or failed: using the fixed Debian 12 list" >&2
  depends="libc6, libcsv3, libjansson4, libcurl4, libinih1, libxxhash0, zlib1g, libsystemd0"
fi
# adduser for postinst/postrm.
depends="$depends, adduser"

installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$control/control" <<CONTROL
Package: pmtatail
Version: $version
Architecture: $arch
Maintainer: pmtatail maintainers <pmtatail@localhost>
Installed-Size: $installed_size
Depends: $depends
Section: mail
Priority: optional
Description: deliver PowerMTA bounces and complaints to the Oempro webhook
 pmtatail follows PowerMTA's accounting files (bounces.csv, fbl.csv) across
 their rotations and delivers every bounce and feedback-loop complaint to
 the Oempro (Octeth) bounce webhook as JSON, at least once, keeping durable
 offsets. It replaces the Logstash pipeline documented by Oempro.
 .
 The package installs the daemon, its systemd unit (enabled, not started:
 set [output] url in /etc/pmtatail/pmtatail.conf, then start it), the
 manual page pmtatail(8) and the PowerMTA <acct-file> blocks in
 /usr/share/doc/pmtatail/acct-files.conf.
CONTROL

echo /etc/pmtatail/pmtatail.conf >"$control/conffiles"

# Every maintainer script honours DPKG_ROOT (dpkg --root with
# --force-script-chrootless: act on that root, never on the host) and
# touches systemd only when it runs (/run/systemd/system), so that
# installation works in a chroot or a container without systemd.
cat >"$control/postinst" <<'POSTINST'
#!/bin/sh
# pmtatail postinst: the system user, the state directory, the unit.
set -e

name=pmtatail
unit=pmtatail.service
home=/var/lib/pmtatail

systemd_running() {
	[ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]
}

create_user() {
	if [ -n "${DPKG_ROOT:-}" ]; then
		# adduser cannot reach another root; systemd-sysusers can.
		if command -v systemd-sysusers >/dev/null 2>&1; then
			systemd-sysusers --root="$DPKG_ROOT" --inline \
				"g $name -" \
				"u $name -:$name \"pmtatail daemon\" $home /usr/sbin/nologin"
		else
			echo "pmtatail: create the system user $name in $DPKG_ROOT yourself" >&2
		fi
		return 0
	fi
	if ! getent passwd "$name" >/dev/null; then
		if getent group "$name" >/dev/null; then
			group_opt="--ingroup $name"
		else
			group_opt=--group
		fi
		# shellcheck disable=SC2086
		adduser --quiet --system $group_opt --no-create-home \
			--home "$home" --gecos "pmtatail daemon" "$name"
	fi
	# PowerMTA's files are world-readable with `world-readable yes`; group
	# pmta membership covers setups that made them group-readable instead.
	if getent group pmta >/dev/null &&
		! id -nG "$name" | tr ' ' '\n' | grep -qx pmta; then
		adduser --quiet "$name" pmta
	fi
	# For the commands run before the first start (status, dead-letter);
	# systemd's StateDirectory= would create it at start.
	if [ ! -d "$home" ]; then
		mkdir -p "$home"
		chown "$name:$name" "$home"
		chmod 0700 "$home"
	fi
}

case "$1" in
configure)
	create_user
	;;
esac

if [ "$1" = configure ] || [ "$1" = abort-upgrade ] || [ "$1" = abort-deconfigure ] ||
	[ "$1" = abort-remove ]; then
	if systemd_running; then
		systemctl --system daemon-reload >/dev/null || true
	fi
	# Enable (at the next boot) but do not start: the configuration has no
	# webhook yet. deb-systemd-helper works without a running systemd and
	# honours DPKG_ROOT; it enables only on first installation, and keeps
	# an administrator's `systemctl disable` across upgrades.
	if command -v deb-systemd-helper >/dev/null 2>&1; then
		deb-systemd-helper unmask "$unit" >/dev/null || true
		if deb-systemd-helper --quiet was-enabled "$unit"; then
			deb-systemd-helper enable "$unit" >/dev/null || true
		else
			deb-systemd-helper update-state "$unit" >/dev/null || true
		fi
	elif command -v systemctl >/dev/null 2>&1 && [ -z "${DPKG_ROOT:-}" ] && [ -z "$2" ]; then
		systemctl --system enable "$unit" >/dev/null 2>&1 || true
	fi
	# An upgrade restarts a running daemon on the new binary (prerm left it
	# running); a stopped one stays stopped.
	if [ "$1" = configure ] && [ -n "$2" ] && systemd_running; then
		if command -v deb-systemd-invoke >/dev/null 2>&1; then
			deb-systemd-invoke try-restart "$unit" >/dev/null || true
		else
			systemctl --system try-restart "$unit" >/dev/null || true
		fi
	fi
fi

exit 0
POSTINST

cat >"$control/prerm" <<'PRERM'
#!/bin/sh
# pmtatail prerm: stop the daemon when the package goes away. On upgrade it
# keeps running until postinst restarts it on the new binary, so no record
# waits longer than the unpacking. SIGTERM makes it deliver what is in
# flight and commit its offsets.
set -e

unit=pmtatail.service

if [ "$1" = remove ] && [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	if command -v deb-systemd-invoke >/dev/null 2>&1; then
		deb-systemd-invoke stop "$unit" >/dev/null || true
	else
		systemctl --system stop "$unit" >/dev/null || true
	fi
fi

exit 0
PRERM

cat >"$control/postrm" <<'POSTRM'
#!/bin/sh
# pmtatail postrm: forget the unit; on purge, the state and the user too.
set -e

name=pmtatail
unit=pmtatail.service

if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi

if [ "$1" = remove ] && command -v deb-systemd-helper >/dev/null 2>&1; then
	deb-systemd-helper mask "$unit" >/dev/null || true
fi

if [ "$1" = purge ]; then
	if command -v deb-systemd-helper >/dev/null 2>&1; then
		deb-systemd-helper purge "$unit" >/dev/null || true
		deb-systemd-helper unmask "$unit" >/dev/null || true
	fi
	# offsets.json, dead letters, replay progress, lock.
	rm -rf "${DPKG_ROOT:-}/var/lib/pmtatail"
	if [ -z "${DPKG_ROOT:-}" ]; then
		if getent passwd "$name" >/dev/null; then
			if command -v deluser >/dev/null 2>&1; then
				deluser --quiet --system "$name" >/dev/null || true
			else
				userdel "$name" >/dev/null 2>&1 || true
			fi
		fi
		if getent group "$name" >/dev/null; then
			if command -v delgroup >/dev/null 2>&1; then
				delgroup --quiet --system --only-if-empty "$name" >/dev/null || true
			else
				groupdel "$name" >/dev/null 2>&1 || true
			fi
		fi
	else
		# Another root (dpkg --force-script-chrootless): its own tools.
		userdel --prefix "$DPKG_ROOT" "$name" >/dev/null 2>&1 || true
		groupdel --prefix "$DPKG_ROOT" "$name" >/dev/null 2>&1 || true
	fi
fi

exit 0
POSTRM

chmod 0755 "$control/postinst" "$control/prerm" "$control/postrm"
chmod 0644 "$control/control" "$control/conffiles"
for s in postinst prerm postrm; do
  sh -n "$control/$s" || die "syntax error in $s"
done

deb=$out/pmtatail_${version}_${arch}.deb
dpkg-deb --build --root-owner-group "$root" "$deb" >/dev/null
echo "build-deb: $(du -h "$deb" | cut -f1) $deb, Depends: $depends" >&2
if command -v lintian >/dev/null; then
  lintian --no-tag-display-limit "$deb" >&2 || echo "build-deb: lintian reported the above" >&2
fi
echo "$deb"
