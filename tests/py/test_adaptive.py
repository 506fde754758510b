#!/usr/bin/python3
"""Scenario tests of delivery against a model of nginx in front of PHP-FPM.

    python3 tests/py/test_adaptive.py PMTATAIL_BINARY FPM_MODEL_BINARY

Each scenario starts bench/fpm_model (W workers x T ms, a listen backlog
answered 502 beyond it, limit_req's 429, random faults: see fpm_model.c) and
the real daemon (`PMTATAIL_BINARY -c CONF run`) in a temporary directory whose
pmta/bounces.csv already holds a backlog of `b` records, with the default
output configuration (only the url, `?type=pmta`: one event per request). It
waits until the model has accepted every record (or the scenario's time is
up, or nothing was accepted for 20 s), stops the daemon and checks what the
backend went through. The checks are about behaviour, never about speed:

  * overload (5 x 20 ms, backlog 5, 2,000 records): every record accepted
    exactly once, no dead letter, at most 1.2 requests per event, at most 5 %
    of the requests answered 5xx;
  * retry-after (a limit of 100 requests/s answered 429 with Retry-After: 1,
    50 x 5 ms, 1,000 records): every record accepted exactly once, at most
    10 % of the requests answered 429, and no request begun inside a
    Retry-After floor knowing of it (bench/adaptive.py's
    retry_after_violations: a 429 to a request sent after the current floor
    began starts a floor at its answer; nothing, a success neither, cuts it
    short; a request knew of a floor when its connection had a 429 answered
    since the floor began, or when it came 100 ms or more after it);
  * faults (25 % of the requests answered 503, 429 or closed unanswered,
    10/10/5, 50 x 5 ms, 2,000 records): every record accepted exactly once, no
    dead letter.

Environment:
  PMTATAIL_ADAPTIVE_ONLY   comma-separated scenario names to run (default all)
  PMTATAIL_ADAPTIVE_KEEP   keep the temporary directories (their paths are printed)

Standard library only. One line per check; exits 1 if any check failed.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "bench"))
from harness import Daemon, check, info, run_scenarios  # noqa: E402
from adaptive import Model, retry_after_violations, write_backlog  # noqa: E402

ONLY = [s for s in os.environ.get("PMTATAIL_ADAPTIVE_ONLY", "").split(",") if s]
KEEP = bool(os.environ.get("PMTATAIL_ADAPTIVE_KEEP"))
STALL_S = 20.0  # nothing more accepted for this long: the wait ends

BINARY = None
MODEL = None


class Env(Daemon):
    """A temporary directory with a backlog, the model, the default
    configuration for the webhook, and the daemon runs."""

    def __init__(self, name, model_args, records):
        super().__init__(BINARY, name, "pmtatail-adaptive-%s-" % name, KEEP)
        self.makedirs(self.pmta, self.logs)
        self.records = records
        write_backlog(self.live, records)
        self.model = None
        self.model = Model(MODEL, model_args,
                           stderr=open(os.path.join(self.logs, "model.stderr"), "w"))
        with open(self.conf, "w") as fh:
            fh.write("[source bounces]\npath = %s\nrecords = b, rb\n\n[output]\nurl = %s\n\n"
                     "[state]\ndir = %s\n" % (self.live, self.model.url(), self.state))

    def deliver(self, label, timeout):
        """Start the daemon, wait for every record to be accepted, stop it:
        the model's counters."""
        self.start()
        t0 = time.monotonic()
        last, t_last = -1, t0
        while True:
            st = self.model.stats()
            now = time.monotonic()
            if st["distinct"] != last:
                last, t_last = st["distinct"], now
            if (st["distinct"] >= self.records or not self.alive() or now - t0 > timeout
                    or now - t_last > STALL_S):
                break
            time.sleep(0.1)
        span = st["t_last_accept_ms"] / 1000.0
        info("%s: %d of %d accepted after %.1f s (%.0f events/s of the model's %.0f)" % (
            label, st["distinct"], self.records, now - t0,
            st["distinct"] / span if span else 0.0,
            min(st["config"]["capacity_rps"], st["config"]["limit_rps"] or 1e12)))
        self.expect_stop(label)
        return self.model.stats()

    def dead_letters(self):
        try:
            with open(os.path.join(self.state, "dead-letter.ndjson"), "rb") as fh:
                return sum(1 for line in fh if line.strip())
        except FileNotFoundError:
            return 0

    def verify_once(self, label, st):
        """Every record accepted, none twice, none dead-lettered."""
        check("%s: all %d records accepted (%d)" % (label, self.records, st["distinct"]),
              st["distinct"] == self.records,
              ["model: %s" % summary(st)] + self.stderr_tail())
        check("%s: no record accepted twice (%d duplicates)" % (label, st["duplicates"]),
              st["duplicates"] == 0 and st["ids_overflow"] == 0 and st["no_id"] == 0)
        dead = self.dead_letters()
        check("%s: no dead letters (%d)" % (label, dead), dead == 0)

    def cleanup(self):
        if self.model is not None:
            self.model.stop()
        super().cleanup()


def summary(st):
    return "%d requests %s, %d hang-ups, %d events, %d distinct" % (
        st["requests"], st["by_status"], st["hangups"], st["events"], st["distinct"])


def share(st, first_digit):
    n = sum(v for k, v in st["by_status"].items() if k.startswith(first_digit))
    return n / max(1, st["requests"])


# -------------------------------------------------------------- scenarios

SCENARIOS = []


def scenario(**env):
    def deco(fn):
        fn.env = env
        SCENARIOS.append(fn)
        return fn
    return deco


@scenario(model_args=["--workers", "5", "--service-ms", "20", "--backlog", "5"], records=2000)
def overload(e):
    """5 workers x 20 ms with a backlog of 5 (250 requests/s; beyond 5 busy
    and 5 waiting, 502 at once): the backlog is delivered without hammering
    the pool."""
    st = e.deliver("overload", 45)
    e.verify_once("overload", st)
    rpe = st["requests"] / max(1, st["distinct"])
    check("overload: at most 1.2 requests per event (%.2f: %s)" % (rpe, summary(st)),
          rpe <= 1.2)
    s5 = share(st, "5")
    check("overload: at most 5 %% of the requests answered 5xx (%.1f %%)" % (100 * s5),
          s5 <= 0.05)


@scenario(model_args=["--workers", "50", "--service-ms", "5", "--backlog", "50",
                      "--limit-rps", "100", "--retry-after", "1"], records=1000)
def retry_after(e):
    """limit_req at 100 requests/s, 429 with Retry-After: 1: the floor is
    kept, and the limit is rarely hit."""
    st = e.deliver("retry-after", 45)
    e.verify_once("retry-after", st)
    s429 = st["by_status"].get("429", 0) / max(1, st["requests"])
    check("retry-after: at most 10 %% of the requests answered 429 (%.1f %%: %s)"
          % (100 * s429, summary(st)), s429 <= 0.10)
    bad = retry_after_violations(e.model.log(), 1)
    check("retry-after: no request begun inside a Retry-After floor (%d)" % len(bad), not bad,
          ["request at %.1f ms on connection %d, floor begun at %.1f ms" % (b[0], b[2], b[1])
           for b in bad[:5]])


@scenario(model_args=["--workers", "50", "--service-ms", "5", "--backlog", "50",
                      "--fault-503", "10", "--fault-429", "10", "--fault-hangup", "5",
                      "--seed", "3"], records=2000)
def faults(e):
    """A quarter of the requests fail (503, 429, closed unanswered): the
    backend's state, not the events' fault."""
    st = e.deliver("faults", 30)
    e.verify_once("faults", st)
    info("faults: %s" % summary(st))


def main(argv):
    global BINARY, MODEL
    if len(argv) != 3:
        print(__doc__.split("\n\n")[1])
        return 2
    BINARY, MODEL = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    if not (check("binary %s is executable" % BINARY, os.access(BINARY, os.X_OK)) and
            check("model %s is executable" % MODEL, os.access(MODEL, os.X_OK))):
        return 1
    return run_scenarios(SCENARIOS, ONLY, lambda name, fn: Env(name, **fn.env))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
