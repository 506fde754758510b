#!/usr/bin/python3
"""Runs the real pmtatail over every fixture and compares with the oracle.

    python3 tests/py/test_fixtures.py PMTATAIL_BINARY FIXTURES_DIR [REPO_ROOT]

For each FIXTURES_DIR/NAME.csv it runs, from REPO_ROOT (default: two levels
above this script),

    PMTATAIL_BINARY replay --dry-run --host fixture-host tests/fixtures/NAME.csv

and compares stdout, as NDJSON, with NAME.ndjson written by tests/oracle.py:
the same objects with the same keys in the same order, except that

  * "eventId" (null in the expected file) must be 32 lowercase hex digits,
    unique within the file, and the same when the file is copied elsewhere
    under another name and read again;
  * "@timestamp", where the expected file has null (no usable timeLogged),
    must be an RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SS[.frac]Z) within a few
    seconds of the run.

Exit status of the binary: 0 when nothing was rejected; 1 when something was
(reject-* fixtures, whose NAME.rejects.json lists the 1-based line numbers),
and then stderr must mention each one as `line=N`.

Standard library only. One line per check; exits 1 if any check failed.
"""

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HOST = "fixture-host"
RUN_TIMEOUT = 60  # seconds per binary run
CLOCK_SLACK = 5   # seconds allowed around the run for a read-time @timestamp

EVENT_ID_RE = re.compile(r"[0-9a-f]{32}")
UTC_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?Z")

failures = 0
checks = 0


def check(name, cond, details=()):
    """Record and print one check; details are printed under a failure."""
    global failures, checks
    checks += 1
    print(("ok - " if cond else "FAIL - ") + name)
    if not cond:
        failures += 1
        for d in details:
            print("    " + d)
    return cond


class Run:
    """One run of the binary over one path."""

    def __init__(self, binary, path, cwd):
        self.path = path
        argv = [binary, "replay", "--dry-run", "--host", HOST, path]
        self.t0 = time.time()
        try:
            p = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=RUN_TIMEOUT)
            self.rc, self.stdout, self.stderr = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            self.rc, self.stdout, self.stderr = "timeout", e.stdout or b"", e.stderr or b""
        self.t1 = time.time()
        self.events, self.parse_error = parse_ndjson(self.stdout)

    def stderr_text(self):
        return self.stderr.decode("utf-8", "replace")


def parse_ndjson(data):
    """Events as lists of (key, value) pairs (to compare key order), or
    (None, error). Split on LF only: str.splitlines would also split on
    U+2028 and friends, which may legitimately appear raw inside a string."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, "stdout is not valid UTF-8: %s" % e
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    events = []
    for n, line in enumerate(lines, 1):
        try:
            obj = json.loads(line, object_pairs_hook=list)
        except ValueError as e:
            return None, "line %d is not JSON (%s): %.200r" % (n, e, line)
        if not isinstance(obj, list):  # object_pairs_hook turns objects into lists
            return None, "line %d is not a JSON object: %.200r" % (n, line)
        events.append(obj)
    return events, None


def load_expected(fixtures_dir, stem):
    with open(os.path.join(fixtures_dir, stem + ".ndjson"), "rb") as fh:
        events, err = parse_ndjson(fh.read())
    if err:
        raise ValueError("%s.ndjson: %s" % (stem, err))
    rejects = None
    sidecar = os.path.join(fixtures_dir, stem + ".rejects.json")
    if os.path.exists(sidecar):
        with open(sidecar, encoding="utf-8") as fh:
            rejects = json.load(fh)
    return events, rejects


def read_time_ok(value, run):
    """A read-time @timestamp: RFC 3339 UTC, within the run (plus slack)."""
    if not isinstance(value, str):
        return False
    m = UTC_RE.fullmatch(value)
    if not m:
        return False
    try:
        t = dt.datetime(*(int(g) for g in m.groups()[:6]), tzinfo=dt.timezone.utc).timestamp()
    except ValueError:
        return False
    return run.t0 - CLOCK_SLACK <= t <= run.t1 + CLOCK_SLACK


def compare_event(got, want, run, path):
    """Differences between one produced event and one expected event (both
    lists of pairs), as human-readable strings; [] when they match."""
    diffs = []
    got_keys = [k for k, _ in got]
    want_keys = [k for k, _ in want]
    if got_keys != want_keys:
        diffs.append("keys %s, want %s" % (got_keys, want_keys))
    got_d, want_d = dict(got), dict(want)
    for key in want_keys:
        if key not in got_d:
            continue  # already reported with the key list
        g, w = got_d[key], want_d[key]
        if key == "eventId":
            if not (isinstance(g, str) and EVENT_ID_RE.fullmatch(g)):
                diffs.append("eventId %r is not 32 lowercase hex digits" % (g,))
        elif key == "@timestamp" and w is None:
            if not read_time_ok(g, run):
                diffs.append("@timestamp %r: want the read time, RFC 3339 UTC, close to now" % (g,))
        elif key == "path":
            if g != path:
                diffs.append("path %r, want %r" % (g, path))
        elif g != w:
            diffs.append("%s %.300r, want %.300r" % (key, g, w))
    return diffs


def check_events(label, run, expected, path):
    """Compare a run's events with the expected ones; returns True if equal."""
    if not check("%s: stdout is NDJSON" % label, run.events is not None,
                 [run.parse_error or ""]):
        return False
    ok = check("%s: %d events" % (label, len(expected)), len(run.events) == len(expected),
               ["got %d" % len(run.events)])
    details = []
    for i, (got, want) in enumerate(zip(run.events, expected), 1):
        for d in compare_event(got, want, run, path):
            details.append("event %d: %s" % (i, d))
    ok &= check("%s: events match the oracle" % label, not details, details[:12])
    ids = [dict(e).get("eventId") for e in run.events]
    dups = sorted({i for i in ids if isinstance(i, str) and ids.count(i) > 1})
    ok &= check("%s: eventIds unique" % label, not dups, ["repeated: %s" % ", ".join(dups)])
    return ok


def check_exit(label, run, rejects):
    err = run.stderr_text()
    tail = ["stderr: " + line for line in err.splitlines()[-8:]]
    if rejects is None:
        check("%s: exit status 0" % label, run.rc == 0, ["got %r" % (run.rc,)] + tail)
        return
    check("%s: exit status 1 (%d rejected)" % (label, rejects["count"]), run.rc == 1,
          ["got %r" % (run.rc,)] + tail)
    missing = [n for n in rejects["lines"] if not re.search(r"\bline=%d\b" % n, err)]
    check("%s: stderr names rejected lines %s" % (label, rejects["lines"]), not missing,
          ["no line=%d" % n for n in missing] + tail)


def main(argv):
    if len(argv) not in (3, 4):
        print(__doc__.split("\n\n")[1])
        return 2
    binary = os.path.abspath(argv[1])
    fixtures_dir = os.path.abspath(argv[2])
    root = os.path.abspath(argv[3] if len(argv) == 4 else
                           os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    if not check("binary %s is executable" % binary, os.access(binary, os.X_OK)):
        return 1
    names = sorted(f for f in os.listdir(fixtures_dir) if f.endswith(".csv"))
    if not check("fixtures found in %s" % fixtures_dir, bool(names)):
        return 1

    with tempfile.TemporaryDirectory(prefix="pmtatail-fixtures-") as tmp:
        for name in names:
            stem = name[:-len(".csv")]
            try:
                expected, rejects = load_expected(fixtures_dir, stem)
            except (OSError, ValueError) as e:
                check("%s: expected files readable" % name, False, [str(e)])
                continue
            # The path exactly as passed (relative to the repo root, like
            # the oracle's "tests/fixtures/NAME.csv" when the tree is standard).
            arg = os.path.relpath(os.path.join(fixtures_dir, name), root)
            if arg.startswith(".."):
                arg = os.path.join(fixtures_dir, name)
            run = Run(binary, arg, root)
            check_exit(name, run, rejects)
            if not check_events(name, run, expected, arg) or not expected:
                continue

            # The same bytes under another name, in another directory: the
            # eventIds must not change (they identify records, not paths).
            copy = os.path.join(tmp, "renamed-" + stem + "-2024-06-03-0800.csv")
            shutil.copyfile(os.path.join(fixtures_dir, name), copy)
            again = Run(binary, copy, root)
            label = name + " (copied to another name)"
            if check_events(label, again, expected, copy):
                before = [dict(e)["eventId"] for e in run.events]
                after = [dict(e)["eventId"] for e in again.events]
                check("%s: eventIds stable across rename" % name, before == after,
                      ["event %d: %s -> %s" % (i, a, b)
                       for i, (a, b) in enumerate(zip(before, after), 1) if a != b][:5])

    print("%d checks, %d failed" % (checks, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
