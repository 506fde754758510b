#!/usr/bin/python3
"""The rotation fuzzer (tests/py/rotation_fuzz.py) as a CI test: its oracle's
self-check first (a planted loss, duplicate, wrong field, wrong source and
stray event must each be reported; a kill's in-flight resend excused, and
an outage's resend of what was accepted just before it, no more), then a
fixed list of seeds, a few sequences at a time.

    python3 tests/py/test_rotation_fuzz.py PMTATAIL_BINARY

One check per seed; a failing seed prints its failures, its operations and
the daemon's log lines, and reruns alone with
`python3 tests/py/rotation_fuzz.py PMTATAIL_BINARY --seed N`. A seed that
fails is run up to twice more, alone: a failure that does not come every
time (a timing the sequence does not fix) is printed in full as "flaky"
and does not fail the test; one that comes all three times does.

Environment:
  PMTATAIL_FUZZ_SEEDS   comma-separated seeds (default: the fixed list)
  PMTATAIL_FUZZ_JOBS    sequences at once (default 3)
Standard library only; exits 1 if any check failed.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import binary_arg, check, finish, info  # noqa: E402
import rotation_fuzz as rf  # noqa: E402

# About three minutes on two cores at three at a time (40 took 2 minutes).
SEEDS = list(range(1, 61))

# A failing seed runs this many more times, alone; it fails the test only if
# it fails every time (a failure that comes once in three is a timing the
# sequence does not fix: printed in full as "flaky" all the same).
RERUNS = 2

# Seeds whose failure is known and open: each still runs and is reported in
# full, but does not fail the test while it stays open. Remove a seed once
# its mechanism is fixed.
KNOWN_OPEN = {
    35: "a record of an archive gzipped while it was being read is delivered only after a "
        "restart when sequences run three at a time (a stall; nothing lost)",
}


def main(argv):
    binary, rc = binary_arg(argv, __doc__)
    if binary is None:
        return rc
    seeds = [int(s) for s in os.environ.get("PMTATAIL_FUZZ_SEEDS", "").split(",") if s] or SEEDS
    jobs = int(os.environ.get("PMTATAIL_FUZZ_JOBS", "3"))
    t0 = time.monotonic()
    for name, ok, detail in rf.self_check(binary, verbose=False):
        check("oracle self-check: " + name, ok, [detail])
    info("self-check %.1f s" % (time.monotonic() - t0))
    t0 = time.monotonic()
    results = rf.run_many(binary, seeds, jobs)
    flaky = []
    for i, res in enumerate(results):
        if res["ok"]:
            continue
        for _ in range(RERUNS):
            again = rf.run_many(binary, [res["seed"]], 1)[0]
            if again["ok"]:
                break
        if again["ok"]:
            flaky.append(res["seed"])
            info("flaky: %s; passed when run again alone" % rf.summary_line(res))
            for kind, text in res["failures"]:
                info("  flaky %s: %s" % (kind, str(text)[:600]))
            info("  operations: " + "; ".join(res.get("ops", [])))
            results[i] = again
        else:
            results[i] = res
    for res in results:
        if not res["ok"] and res["seed"] in KNOWN_OPEN:
            info("known open: %s (%s)" % (rf.summary_line(res), KNOWN_OPEN[res["seed"]]))
            for kind, text in res["failures"]:
                info("  known open %s: %s" % (kind, str(text)[:600]))
            continue
        details = []
        for kind, text in res["failures"]:
            details.append("%s: %s" % (kind, str(text)[:600]))
        details.append("operations: " + "; ".join(res.get("ops", [])))
        details += ["repeated: " + ln for ln in res.get("dup_detail") or []]
        details += ["log: " + ln for ln in res.get("log", [])]
        details.append("rerun: python3 tests/py/rotation_fuzz.py %s --seed %d" % (
            binary, res["seed"]))
        check(rf.summary_line(res), res["ok"], details)
    info("%d seeds in %.1f s (%d at a time)" % (len(results), time.monotonic() - t0, jobs))
    failing = [r["seed"] for r in results if not r["ok"] and r["seed"] not in KNOWN_OPEN]
    if failing:
        info("failing seeds: %s" % " ".join(map(str, failing)))
    if flaky:
        info("flaky seeds (failed once, passed alone): %s" % " ".join(map(str, flaky)))
    return finish()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
