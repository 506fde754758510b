#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what is missing, then
#   1. a normal build and every test (unit, fixtures, the real binary),
#   2. the same tests once more under ASan+UBSan,
#   3. the parser's fuzz target for a bounded time (FUZZ_SECONDS, default 60),
#      and the HTTP answer reader's (FUZZ_ANSWER_SECONDS, default 30),
#   4. the clang-format check of the tree,
#   5. the Debian package: dpkg-buildpackage -b (with its build-time tests)
#      and lintian (scripts/build-package.sh); rpmlint on pmtatail.spec,
#   6. the boot test: that package in a booted minimal Debian 12 under
#      systemd (scripts/boot-test.sh; skipped, and said so, where it cannot
#      run: not root, no debootstrap).
# The package is built first, so that the package test of step 1 checks the
# same .deb (PMTATAIL_DEB) instead of building its own.
# Ends with the line "N passed, N failed"; exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test || exit 1

passed=0
failed=0
note() { printf '== %s\n' "$*"; }
count_meson() { # build dir
  local log="$1/meson-logs/testlog.json" p f
  if [ ! -f "$log" ]; then failed=$((failed + 1)); return; fi
  p=$(grep -c '"result": "OK"' "$log" || true)
  f=$(grep -c -E '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" || true)
  passed=$((passed + p)); failed=$((failed + f))
}
step() { # name, command...
  local name="$1"; shift
  if "$@"; then passed=$((passed + 1)); note "$name: ok"
  else failed=$((failed + 1)); note "$name: FAILED"; fi
}

skipped=0
pkgdir=$(mktemp -d)
trap 'rm -rf "$pkgdir"' EXIT
note "package (dpkg-buildpackage, lintian)"
package() {
  local out
  out=$(scripts/build-package.sh "$pkgdir") || return 1
  deb=$(printf '%s\n' "$out" | tail -n 1)
  [ -f "$deb" ] && export PMTATAIL_DEB=$deb
}
deb=
step "package" package
note "rpmlint pmtatail.spec"
step "rpmlint" rpmlint -r pmtatail.rpmlintrc pmtatail.spec

note "build"
if [ ! -f build/build.ninja ]; then meson setup build >/dev/null || failed=$((failed + 1)); fi
if ninja -C build >/dev/null; then
  meson test -C build --print-errorlogs --num-processes 2
  count_meson build
else
  note "build FAILED"; failed=$((failed + 1))
fi

note "sanitizers (ASan+UBSan)"
if [ ! -f build-asan/build.ninja ]; then
  meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false >/dev/null || failed=$((failed + 1))
fi
if ninja -C build-asan >/dev/null; then
  PMTATAIL_SANITIZED=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --print-errorlogs --num-processes 2
  count_meson build-asan
else
  note "sanitizer build FAILED"; failed=$((failed + 1))
fi

# run_fuzz TARGET SECONDS MAX_LEN SEED_FILE...: the libFuzzer target on a
# copy of its seeds (it adds to the corpus it is given).
run_fuzz() {
  local target=$1 seconds=$2 max_len=$3
  shift 3
  if [ ! -f build-fuzz/build.ninja ]; then
    CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
      -Dc_args=-fsanitize=fuzzer-no-link >/dev/null || return 1
  fi
  ninja -C build-fuzz "fuzz/$target" >/dev/null || return 1
  local corpus
  corpus=$(mktemp -d)
  cp "$@" "$corpus"/
  "./build-fuzz/fuzz/$target" -max_total_time="$seconds" -max_len="$max_len" \
    -print_final_stats=1 "$corpus" 2>&1 | tail -n 12
  local rc=${PIPESTATUS[0]}
  rm -rf "$corpus"
  return "$rc"
}

note "fuzz (${FUZZ_SECONDS:-60}s)"
fuzz() { run_fuzz fuzz_csv "${FUZZ_SECONDS:-60}" 8192 fuzz/corpus/* tests/fixtures/*.csv; }
step "fuzz" fuzz

note "fuzz the HTTP answer reader (${FUZZ_ANSWER_SECONDS:-30}s)"
fuzz_answer() { run_fuzz fuzz_answer "${FUZZ_ANSWER_SECONDS:-30}" 4096 fuzz/corpus-answer/*; }
step "fuzz-answer" fuzz_answer

note "format"
step "clang-format" bash -c 'git ls-files "*.c" "*.h" | xargs clang-format --dry-run --Werror'

note "boot test (systemd-nspawn)"
if [ -z "$deb" ]; then
  failed=$((failed + 1)); note "boot test: FAILED (no package)"
else
  rc=0
  scripts/boot-test.sh "$deb" || rc=$?
  case $rc in
  0) passed=$((passed + 1)); note "boot test: ok" ;;
  77) skipped=$((skipped + 1)); note "boot test: skipped" ;;
  *) failed=$((failed + 1)); note "boot test: FAILED" ;;
  esac
fi

[ "$skipped" -eq 0 ] || note "$skipped step(s) skipped here (see above)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
