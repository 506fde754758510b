"""Pieces the Python scenario tests share: the check tally, polling with a
timeout, and readings from /proc. Standard library only."""

import os
import time


class _Tally:
    checks = 0
    failures = 0


TALLY = _Tally()


def check(name, cond, details=()):
    """Count and print one check; details are printed under a failure."""
    TALLY.checks += 1
    print(("ok - " if cond else "FAIL - ") + name, flush=True)
    if not cond:
        TALLY.failures += 1
        for d in details:
            print("    " + str(d), flush=True)
    return cond


def info(msg):
    print("info - " + msg, flush=True)


def poll_until(pred, timeout, step=0.02):
    """Call pred() until it is true or timeout seconds pass; its last value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


def inotify_watches(pid):
    """Watches held by pid's inotify descriptors (None if it is gone)."""
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return None
    n = 0
    for fd in fds:
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) != "anon_inode:inotify":
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as fh:
                n += sum(1 for line in fh if line.startswith("inotify wd:"))
        except OSError:
            pass
    return n


def finish():
    """Print the closing count; the exit status for it."""
    print("%d checks, %d failed" % (TALLY.checks, TALLY.failures))
    return 1 if TALLY.failures else 0
