#!/usr/bin/env bash
# The quick start: install what is missing, build, and turn the bundled
# sample accounting files into events (NDJSON on stdout, a summary on
# stderr). Nothing is sent anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
[ -f build/build.ninja ] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null
files=(tests/fixtures/bounces-b-full.csv tests/fixtures/bounces-rb.csv tests/fixtures/fbl.csv
       tests/fixtures/guide-v4-union-header.csv tests/fixtures/bouncehandler-b-rows.csv)
exec build/src/pmtatail replay --dry-run "${files[@]}" "$@"
