#!/usr/bin/env bash
# pmtatail benchmark: parse-only baseline (csvwalk) vs. pmtatail replay --dry-run.
#
# Usage: bench/run.sh [BUILD_DIR] [N] [--latency] [--push] [--save-cost]   (defaults: build, 1000000)
#
# A benchmark, not a test: it reports numbers and the targets next to them, it
# never fails because something is slow. It exits non-zero only when it cannot
# measure (missing csvwalk, a program that crashes or exits non-zero).
#
# --latency: afterwards, also run bench/latency.py (append-to-delivery latency
# of `pmtatail run` at 1,000 records/s, idle wake-ups, peak RSS; about 70 s).
#
# --push: afterwards, also run bench/push.py (`pmtatail run` delivering the N
# file over HTTP to a local webhook, against csvwalk in the same run, plus a
# backend taking 50 ms per request; about 2 minutes). Uses N, SEED, ROUNDS.
#
# --save-cost: afterwards, also run bench/save_cost.py: `pmtatail run` delivering
# the N file to csink (bench/csink.c), against the same source built in
# BUILD_DIR-coarse with offsets saved once a second instead of after every
# acknowledgement (-DPMTATAIL_COMMIT_MIN_MS=1000): the cost of the saves.
#
# Environment: ROUNDS (default 3), SEED (default 1), PYTHON (default python3),
#              BENCH_TIMEOUT (seconds per run, default 900),
#              LATENCY_DURATION (seconds of writing per latency run, default 20).
set -euo pipefail

LATENCY=0
PUSH=0
SAVE_COST=0
ARGS=()
for arg in "$@"; do
	case $arg in
	--latency) LATENCY=1 ;;
	--push) PUSH=1 ;;
	--save-cost) SAVE_COST=1 ;;
	*) ARGS+=("$arg") ;;
	esac
done
set -- ${ARGS[@]+"${ARGS[@]}"}

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

BUILD_DIR=${1:-$ROOT/build}
N=${2:-1000000}
ROUNDS=${ROUNDS:-3}
SEED=${SEED:-1}
PYTHON=${PYTHON:-python3}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-900}

die() {
	echo "run.sh: $*" >&2
	exit 2
}

[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$N'"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$ROUNDS'"
[[ $SEED =~ ^[0-9]+$ ]] || die "SEED must be a non-negative integer, got '$SEED'"
[[ -d $BUILD_DIR ]] || die "build directory '$BUILD_DIR' not found (meson setup $BUILD_DIR first)"
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
command -v "$PYTHON" >/dev/null || die "$PYTHON not found"

CSVWALK=$BUILD_DIR/bench/csvwalk
PMTATAIL=$BUILD_DIR/src/pmtatail

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pmtabench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# ---------------------------------------------------------------- machine
cpu_model=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
[[ -n $cpu_model ]] || cpu_model=$(uname -m)
mem_total=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo 2>/dev/null || echo "?")
buildtype=$("$PYTHON" - "$BUILD_DIR" <<'EOF' 2>/dev/null || echo "?"
import json, sys
for o in json.load(open(sys.argv[1] + "/meson-info/intro-buildoptions.json")):
    if o["name"] == "buildtype":
        print(o["value"])
EOF
)
echo "== pmtatail benchmark  $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine : nproc=$(nproc)  cpu=$cpu_model  mem=$mem_total  kernel=$(uname -r)"
echo "build   : $BUILD_DIR (buildtype=${buildtype:-?})"

if [[ -x /usr/bin/time ]]; then
	echo "measure : wall = date +%s%N around the run; peak RSS = /usr/bin/time -f %M"
	HAVE_GNU_TIME=1
else
	echo "measure : no /usr/bin/time (apt-get install time): python wrapper, wall = perf_counter,"
	echo "          peak RSS = the child's VmHWM polled every 2 ms (may miss a last-moment rise)"
	HAVE_GNU_TIME=0
fi
TIMEOUT=()
if command -v timeout >/dev/null; then
	TIMEOUT=(timeout "$BENCH_TIMEOUT")
fi

# ---------------------------------------------------------------- programs
if [[ ! -x $CSVWALK && -f $BUILD_DIR/build.ninja ]]; then
	echo "csvwalk not built yet: ninja -C $BUILD_DIR bench/csvwalk"
	ninja -C "$BUILD_DIR" bench/csvwalk >/dev/null
fi
[[ -x $CSVWALK ]] || die "$CSVWALK not found: ninja -C $BUILD_DIR bench/csvwalk"
HAVE_PMTATAIL=1
if [[ ! -x $PMTATAIL ]]; then
	HAVE_PMTATAIL=0
	echo "SKIP (b): $PMTATAIL not found (not built yet?): only the csvwalk baseline is measured"
fi

# ---------------------------------------------------------------- data
# Files are named after N, the seed and the generator's hash, so a changed
# generator never reuses a stale file. Written to a temp name, then renamed.
OUT_DIR=$BENCH_DIR/out
mkdir -p "$OUT_DIR"
gen_hash=$(sha1sum "$BENCH_DIR/gen_records.py" | cut -c1-8)
GEN_S=reused
# Files from an older generator can never be reused again: drop them (they are big).
find "$OUT_DIR" -maxdepth 1 -type f -name 'records-n*-s*-*.csv*' ! -name "*-$gen_hash.csv*" \
	-mmin +1 -delete

# gen COUNT -> prints the file's path; generates it unless it exists
gen() {
	local count=$1 file="$OUT_DIR/records-n$1-s$SEED-$gen_hash.csv"
	if [[ ! -s $file ]]; then
		local t0 t1
		t0=$(date +%s%N)
		"$PYTHON" "$BENCH_DIR/gen_records.py" --records "$count" --seed "$SEED" \
			"$file.tmp.$$" 2>"$TMP/gen.err" || {
			cat "$TMP/gen.err" >&2
			rm -f "$file.tmp.$$"
			die "gen_records.py failed"
		}
		t1=$(date +%s%N)
		mv -f "$file.tmp.$$" "$file"
		echo "generated $(basename "$file") in $(awk -v d=$((t1 - t0)) 'BEGIN {printf "%.2f", d / 1e9}') s" >&2
		if ((count == N)); then
			GEN_S=$(awk -v d=$((t1 - t0)) 'BEGIN {printf "%.2f", d / 1e9}')
		fi
	else
		echo "reusing $(basename "$file")" >&2
	fi
	printf '%s\n' "$file"
}

SMALL_N=$((N / 10))
((SMALL_N > 0)) || SMALL_N=1
# gen's GEN_S assignment must happen in this shell, not in $(...): use a temp file.
gen "$N" >"$TMP/file"
FILE=$(<"$TMP/file")
gen "$SMALL_N" >"$TMP/file"
SMALL_FILE=$(<"$TMP/file")
BYTES=$(stat -c %s "$FILE")
SMALL_BYTES=$(stat -c %s "$SMALL_FILE")
echo "data    : N=$N records, $BYTES bytes ($(awk -v b="$BYTES" -v n="$N" 'BEGIN {printf "%.1f", b / n}') B/record), seed=$SEED"
echo "          small: N=$SMALL_N records, $SMALL_BYTES bytes"

# ---------------------------------------------------------------- measuring
# measure STDOUT_FILE CMD... : runs CMD once; sets M_WALL (s), M_RSS (KiB), M_RC
measure() {
	local out=$1
	shift
	if ((HAVE_GNU_TIME)); then
		local t0 t1
		t0=$(date +%s%N)
		set +e
		/usr/bin/time -f '%M' -o "$TMP/rss" "${TIMEOUT[@]}" "$@" >"$out" 2>"$TMP/stderr"
		M_RC=$?
		set -e
		t1=$(date +%s%N)
		M_WALL=$(awk -v d=$((t1 - t0)) 'BEGIN {printf "%.4f", d / 1e9}')
		# time(1) writes "Command exited with non-zero status" first: RSS is the last line
		M_RSS=$(tail -n 1 "$TMP/rss")
	else
		set +e
		# (no timeout(1) in front here: the polled child must be the program itself)
		"$PYTHON" - "$out" "$TMP/rss" "$BENCH_TIMEOUT" "$@" 2>"$TMP/stderr" <<'EOF'
# Fallback for a machine without GNU time. getrusage() cannot be used here: a
# child forked from Python keeps Python's RSS high-water mark through exec, so
# its ru_maxrss would report Python's size. Instead poll the child's VmHWM (the
# high-water mark of its own post-exec address space) every 2 ms; it only
# rises, so the last sample is close to the true peak.
import os, subprocess, sys, time
out, res, limit, cmd = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
me = os.path.realpath("/proc/self/exe")
hwm = 0
with open(out, "wb") as f:
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=f)
    while p.poll() is None:
        try:
            if os.path.realpath("/proc/%d/exe" % p.pid) != me:  # exec done
                with open("/proc/%d/status" % p.pid) as st:
                    for line in st:
                        if line.startswith("VmHWM:"):
                            hwm = max(hwm, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        if time.perf_counter() - t0 > limit:
            p.kill()
            p.wait()
            break
        time.sleep(0.002)
    wall = time.perf_counter() - t0
rc = 124 if p.returncode == -9 and wall > limit else p.returncode
with open(res, "w") as f:
    f.write("%.4f %d %d\n" % (wall, hwm, rc))
sys.exit(rc if rc >= 0 else 128 - rc)
EOF
		M_RC=$?
		set -e
		read -r M_WALL M_RSS _ <"$TMP/rss" || true
	fi
	[[ $M_RSS =~ ^[0-9]+$ ]] || M_RSS=0
	if ((M_RC != 0)); then
		echo "run.sh: '$*' failed (exit $M_RC$( ((M_RC == 124)) && echo ", timed out after ${BENCH_TIMEOUT}s")); its stderr ends with:" >&2
		tail -n 20 "$TMP/stderr" >&2
		exit 1
	fi
}

median() {
	printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
		if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
max() {
	printf '%s\n' "$@" | sort -g | tail -n 1
}

# Warm the page cache so that neither program pays for the first read.
cat "$FILE" "$SMALL_FILE" >/dev/null

declare -a A_WALL=() A_RSS=() B_WALL=() B_RSS=() A_RSS_SMALL=() B_RSS_SMALL=()
A_ROWS=""
echo
echo "-- $ROUNDS rounds, alternating (a) csvwalk and (b) pmtatail replay --dry-run"
for ((r = 1; r <= ROUNDS; r++)); do
	measure "$TMP/csvwalk.out" "$CSVWALK" "$FILE"
	A_WALL+=("$M_WALL")
	A_RSS+=("$M_RSS")
	A_ROWS=$(<"$TMP/csvwalk.out")
	line="round $r: (a) ${M_WALL}s ${M_RSS}KiB"
	if ((HAVE_PMTATAIL)); then
		measure /dev/null "$PMTATAIL" replay --dry-run "$FILE"
		B_WALL+=("$M_WALL")
		B_RSS+=("$M_RSS")
		line+="   (b) ${M_WALL}s ${M_RSS}KiB"
	fi
	echo "$line"
done
# Sanity check of the data (not of speed): the header plus N records.
if [[ $A_ROWS != "rows=$((N + 1)) "* ]]; then
	echo "WARNING: csvwalk saw '$A_ROWS', expected rows=$((N + 1)) (header + N records)"
fi

echo "-- RSS on the 10x smaller file (N=$SMALL_N)"
for ((r = 1; r <= ROUNDS; r++)); do
	measure "$TMP/csvwalk.out" "$CSVWALK" "$SMALL_FILE"
	A_RSS_SMALL+=("$M_RSS")
	line="round $r: (a) ${M_RSS}KiB"
	if ((HAVE_PMTATAIL)); then
		measure /dev/null "$PMTATAIL" replay --dry-run "$SMALL_FILE"
		B_RSS_SMALL+=("$M_RSS")
		line+="   (b) ${M_RSS}KiB"
	fi
	echo "$line"
done

# ---------------------------------------------------------------- report
# Wall time: median of the rounds. Peak RSS: the largest of the rounds.
a_wall=$(median "${A_WALL[@]}")
a_rss=$(max "${A_RSS[@]}")
a_rss_small=$(max "${A_RSS_SMALL[@]}")
rate() { awk -v n="$1" -v s="$2" 'BEGIN {printf "%.0f", (s > 0 ? n / s : 0)}'; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN {printf "%.1f", (s > 0 ? b / s / 1e6 : 0)}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
a_rps=$(rate "$N" "$a_wall")
a_mbps=$(mbps "$BYTES" "$a_wall")

echo
echo "== results: N=$N records, $(mbps "$BYTES" 1) MB; wall = median of $ROUNDS, RSS = max of $ROUNDS"
printf '%-34s %9s %12s %9s %12s %14s\n' program "wall s" "records/s" "MB/s" "peak RSS" "RSS @ N/10"
printf '%-34s %9s %12s %9s %12s %14s\n' "(a) csvwalk (libcsv walk only)" "$a_wall" "$a_rps" "$a_mbps" \
	"$(mib "$a_rss") MiB" "$(mib "$a_rss_small") MiB"
b_wall=NA b_rps=NA b_mbps=NA b_rss=NA b_rss_small=NA ratio=NA
if ((HAVE_PMTATAIL)); then
	b_wall=$(median "${B_WALL[@]}")
	b_rss=$(max "${B_RSS[@]}")
	b_rss_small=$(max "${B_RSS_SMALL[@]}")
	b_rps=$(rate "$N" "$b_wall")
	b_mbps=$(mbps "$BYTES" "$b_wall")
	ratio=$(awk -v a="$a_wall" -v b="$b_wall" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
	printf '%-34s %9s %12s %9s %12s %14s\n' "(b) pmtatail replay --dry-run" "$b_wall" "$b_rps" \
		"$b_mbps" "$(mib "$b_rss") MiB" "$(mib "$b_rss_small") MiB"
	echo
	met() { if awk "BEGIN {exit !($1)}"; then echo "met"; else echo "NOT met"; fi; }
	echo "throughput ratio (b)/(a): ${ratio}x   target >= 0.5x: $(met "$ratio >= 0.5")"
	echo "peak RSS of (b): $(mib "$b_rss") MiB   target < 16 MiB: $(met "$b_rss < 16384")"
	echo "RSS vs file size, (b): $(mib "$b_rss") MiB at N=$N, $(mib "$b_rss_small") MiB at N=$SMALL_N" \
		"(should not grow with the file)"
else
	printf '%-34s %9s\n' "(b) pmtatail replay --dry-run" "skipped: $PMTATAIL not found"
	echo
	echo "targets (for when (b) exists): (b) >= 0.5x the records/s of (a); peak RSS of (b) < 16 MiB,"
	echo "and not growing with the file size"
fi
echo "RSS vs file size, (a): $(mib "$a_rss") MiB at N=$N, $(mib "$a_rss_small") MiB at N=$SMALL_N"

echo
echo "BENCH n=$N bytes=$BYTES rounds=$ROUNDS seed=$SEED nproc=$(nproc) cpu=${cpu_model// /_}" \
	"buildtype=${buildtype:-?} gen_s=$GEN_S" \
	"csvwalk_s=$a_wall csvwalk_rps=$a_rps csvwalk_mbps=$a_mbps csvwalk_rss_kib=$a_rss" \
	"csvwalk_rss_small_kib=$a_rss_small" \
	"pmtatail_s=$b_wall pmtatail_rps=$b_rps pmtatail_mbps=$b_mbps pmtatail_rss_kib=$b_rss" \
	"pmtatail_rss_small_kib=$b_rss_small ratio=$ratio"

# ---------------------------------------------------------------- latency (optional)
if ((LATENCY)); then
	echo
	if ((HAVE_PMTATAIL)); then
		# It bounds its own time (start, drain and stop each have a limit) and
		# removes its temporary directories.
		"$PYTHON" "$BENCH_DIR/latency.py" --build "$BUILD_DIR" --binary "$PMTATAIL" \
			${LATENCY_DURATION:+--duration "$LATENCY_DURATION"} || {
			rc=$?
			echo "run.sh: latency.py could not measure (exit $rc)" >&2
			exit "$rc"
		}
	else
		echo "SKIP latency: $PMTATAIL not found (not built yet?)"
	fi
fi

# ---------------------------------------------------------------- delivery over HTTP (optional)
if ((PUSH)); then
	echo
	if ((HAVE_PMTATAIL)); then
		# It bounds its own time (every run has a limit), reuses the data file
		# generated above and removes its temporary directories.
		"$PYTHON" "$BENCH_DIR/push.py" --build "$BUILD_DIR" --binary "$PMTATAIL" \
			--csvwalk "$CSVWALK" --records "$N" --seed "$SEED" --rounds "$ROUNDS" || {
			rc=$?
			echo "run.sh: push.py could not measure (exit $rc)" >&2
			exit "$rc"
		}
	else
		echo "SKIP push: $PMTATAIL not found (not built yet?)"
	fi
fi

# ---------------------------------------------------------------- cost of the offset saves (optional)
if ((SAVE_COST)); then
	echo
	if ((HAVE_PMTATAIL)); then
		COARSE_DIR=$BUILD_DIR-coarse
		if [[ ! -d $COARSE_DIR ]]; then
			meson setup "$COARSE_DIR" "$ROOT" --buildtype="${buildtype:-release}" \
				-Dc_args=-DPMTATAIL_COMMIT_MIN_MS=1000 >/dev/null || die "cannot set up $COARSE_DIR"
		fi
		ninja -C "$COARSE_DIR" src/pmtatail >/dev/null || die "cannot build $COARSE_DIR/src/pmtatail"
		"$PYTHON" "$BENCH_DIR/save_cost.py" --fine "$PMTATAIL" --coarse "$COARSE_DIR/src/pmtatail" \
			--file "$(gen "$N")" --rounds "$ROUNDS" || {
			rc=$?
			echo "run.sh: save_cost.py could not measure (exit $rc)" >&2
			exit "$rc"
		}
	else
		echo "SKIP save-cost: $PMTATAIL not found (not built yet?)"
	fi
fi
