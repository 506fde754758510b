#!/usr/bin/env bash
# Build the Debian package with dpkg-buildpackage, from a copy of this tree,
# so that nothing is written beside the checkout (dpkg-buildpackage puts its
# output in the parent directory of the source tree).
#
#   scripts/build-package.sh [--version VERSION] [--nocheck] [--no-lintian] OUT_DIR
#
# --version VERSION  build as that version (a changelog entry put on top in
#                    the copy, and a comment naming it at the end of the
#                    packaged configuration, so that the conffile differs
#                    between the two builds as it does between releases): an
#                    older package to test upgrades from
# --nocheck          skip the build-time tests (DEB_BUILD_OPTIONS=nocheck)
# --no-lintian       do not run lintian
#
# Writes pmtatail_VERSION_ARCH.deb (and the .changes, .buildinfo) into
# OUT_DIR; the last line on stdout is the path of the .deb. lintian runs on
# the .changes and fails the build on any error or warning that
# debian/pmtatail.lintian-overrides does not explain.
set -euo pipefail
umask 022

src=$(cd "$(dirname "$0")/.." && pwd)
version='' nocheck='' lintian=yes
while [ $# -gt 1 ]; do
  case $1 in
  --version) version=$2; shift 2 ;;
  --nocheck) nocheck=yes; shift ;;
  --no-lintian) lintian=; shift ;;
  *) break ;;
  esac
done
[ $# -eq 1 ] || { echo "usage: $0 [--version V] [--nocheck] [--no-lintian] OUT_DIR" >&2; exit 2; }
mkdir -p "$1"
out=$(cd "$1" && pwd)

die() { echo "build-package: $*" >&2; exit 1; }
for tool in dpkg-buildpackage dh; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh --test installs debhelper)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/pmtatail-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
tree=$work/pmtatail
mkdir -p "$tree"
# The files git knows (committed or not, ignored ones left out); a tree
# without git is copied without its build directories.
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$src" && git ls-files -z --cached --others --exclude-standard |
    xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
    tar --null -T - -cf -) | tar -C "$tree" -xf -
else
  tar -C "$src" --exclude='./build*' --exclude=./obj-* --exclude=./.git -cf - . | tar -C "$tree" -xf -
fi

if [ -n "$version" ]; then
  # An entry on top of the changelog makes dpkg-buildpackage take that
  # version; meson's version (pmtatail --version) is left as it is.
  entry=$(mktemp)
  {
    printf 'pmtatail (%s) unstable; urgency=medium\n\n' "$version"
    printf '  * Built as version %s.\n\n' "$version"
    printf ' -- %s  %s\n\n' "$(sed -n 's/^ -- \(.*>\)  .*/\1/p' "$tree/debian/changelog" | head -n 1)" \
      "$(date -R)"
    cat "$tree/debian/changelog"
  } >"$entry"
  mv "$entry" "$tree/debian/changelog"
  printf '\n; (the configuration as packaged in %s)\n' "$version" >>"$tree/pmta-config/pmtatail.conf"
fi

log=$work/build.log
export DEB_BUILD_OPTIONS="${nocheck:+nocheck }${DEB_BUILD_OPTIONS:-}"
if ! (cd "$tree" && dpkg-buildpackage -b -us -uc) >"$log" 2>&1; then
  tail -n 60 "$log" >&2
  die "dpkg-buildpackage failed"
fi
debs=("$work"/pmtatail_*.deb)
[ -f "${debs[0]}" ] || die "dpkg-buildpackage made no .deb"
changes=("$work"/pmtatail_*.changes)

if [ -n "$lintian" ]; then
  command -v lintian >/dev/null || die "lintian not found (scripts/deps.sh --test installs it)"
  # --fail-on warning: a warning is either fixed or overridden with its
  # reason in debian/pmtatail.lintian-overrides.
  if ! lintian --fail-on error,warning --display-info --show-overrides "${changes[0]}" >"$work/lintian.log" 2>&1; then
    cat "$work/lintian.log" >&2
    die "lintian failed"
  fi
  sed 's/^/lintian: /' "$work/lintian.log" >&2
fi

# the debug symbols too (pmtatail-dbgsym): the .changes names them
cp "$work"/pmtatail*.deb "$work"/pmtatail_*.changes "$work"/pmtatail_*.buildinfo "$out"/
cp "$log" "$out/build.log"
echo "build-package: $(basename "${debs[0]}") $(du -h "${debs[0]}" | cut -f1)" >&2
echo "$out/$(basename "${debs[0]}")"
