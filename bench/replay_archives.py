#!/usr/bin/python3
"""replay against the number of archives: is its cost linear?

    python3 bench/replay_archives.py PMTATAIL_BINARY [N ...]   (default 1000 8000 35000)

For each N, a directory of N small PowerMTA archives (2 records each, named
bounces-YYYY-MM-DD-NNNN.csv, 96 a day as with a 15-minute move-interval) and,
in the same run, one after the other:
  dry       replay --dry-run DIR > /dev/null          the baseline
  deliver   replay DIR to an [output] file, fresh state: every archive new
  done      the same again: every archive already delivered
Each is timed ROUNDS times (default 3), the best kept. Printed: seconds,
microseconds per archive, deliver/dry, and each column's time per archive
against the smallest N (1.00 is linear; 4x the archives at 4x the time).

A benchmark, not a test: it reports and asserts nothing. It exits non-zero
only when it cannot measure (a run fails or times out).
Targets (issue 23): done at 35,000 under 2 s; deliver at 8,000 within 2x dry.
"""

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time

HEADER = b"type,timeLogged,orig,rcpt,dsnStatus,dsnDiag,bounceCat\r\n"
BASE = 1704459600


def make(d, n):
    os.makedirs(d)
    day0 = dt.date(2024, 1, 1)
    for i in range(n):
        name = "bounces-%s-%04d.csv" % ((day0 + dt.timedelta(days=i // 96)).isoformat(),
                                        i % 96 + 1)
        rows = b"".join(b"b,%d,bounce@example.com,u%d@example.com,5.1.1 (bad destination "
                        b"mailbox address),smtp;550 5.1.1 User unknown,bad-mailbox\r\n" %
                        (BASE + i * 900 + k, i * 2 + k) for k in range(2))
        with open(os.path.join(d, name), "wb") as fh:
            fh.write(HEADER + rows)


def timed(args, stdout, timeout=1800):
    t0 = time.monotonic()
    r = subprocess.run(args, stdout=stdout, stderr=subprocess.PIPE, timeout=timeout)
    took = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit("cannot measure: %s exited %d: %s" % (" ".join(args[:4]), r.returncode,
                                                       r.stderr.decode()[-400:]))
    return took


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    binary = os.path.abspath(argv[1])
    sizes = [int(a) for a in argv[2:]] or [1000, 8000, 35000]
    rounds = int(os.environ.get("ROUNDS", "3"))
    root = tempfile.mkdtemp(prefix="pmtatail-bench-archives-")
    rows = []
    try:
        for n in sizes:
            d = os.path.join(root, "a%d" % n)
            make(d, n)
            best = {"dry": None, "deliver": None, "done": None}
            for r in range(rounds):
                st = os.path.join(root, "state-%d-%d" % (n, r))
                out = os.path.join(root, "events-%d-%d.ndjson" % (n, r))
                conf = os.path.join(root, "c-%d-%d.conf" % (n, r))
                with open(conf, "w") as fh:
                    fh.write("[output]\nfile = %s\n\n[state]\ndir = %s\n\n[log]\nlevel = warn\n"
                             % (out, st))
                with open(os.devnull, "wb") as null:
                    t = {"dry": timed([binary, "-c", conf, "replay", "--dry-run", d], null),
                         "deliver": timed([binary, "-c", conf, "replay", d], null),
                         "done": timed([binary, "-c", conf, "replay", d], null)}
                with open(out, "rb") as fh:
                    lines = fh.read().count(b"\n")
                if lines != 2 * n:
                    sys.exit("cannot measure: %d events written for %d records" % (lines, 2 * n))
                for k, v in t.items():
                    best[k] = v if best[k] is None else min(best[k], v)
                shutil.rmtree(st)
                os.unlink(out)
            rows.append((n, best))
            shutil.rmtree(d)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    n0, b0 = rows[0]
    print("replay against the number of archives (2 records each), best of %d, same run" % rounds)
    print("%8s %9s %9s %9s %8s %9s %9s %9s  %s" % (
        "archives", "dry s", "deliver s", "done s", "deliver", "dry", "deliver", "done",
        "per archive vs %d" % n0))
    print("%8s %9s %9s %9s %8s %9s %9s %9s" % ("", "", "", "", "/ dry", "us/arch", "us/arch",
                                                "us/arch"))
    for n, b in rows:
        per = {k: b[k] / n * 1e6 for k in b}
        lin = {k: (b[k] / n) / (b0[k] / n0) for k in b}
        print("%8d %9.3f %9.3f %9.3f %8.2f %9.1f %9.1f %9.1f  dry %.2f deliver %.2f done %.2f" % (
            n, b["dry"], b["deliver"], b["done"], b["deliver"] / b["dry"], per["dry"],
            per["deliver"], per["done"], lin["dry"], lin["deliver"], lin["done"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
