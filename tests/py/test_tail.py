#!/usr/bin/python3
"""Scenario tests of the tailing daemon against a simulated PowerMTA writer.

    python3 tests/py/test_tail.py PMTATAIL_BINARY

Each scenario gets its own temporary directory (pmta/bounces.csv, its archive
directory pmta/archive, out/events.ndjson, state/), writes a configuration
there, starts the real daemon (`PMTATAIL_BINARY -c CONF run`) and drives
pmta_sim.Sim: appends in random chunk sizes (writes end mid-record, even
mid-quoted-field), rotations as PowerMTA's move-to does them, copy-and-
truncate, truncation, deletion, restarts, SIGSTOP (a reader far behind) and
kill -9. It then reads out/events.ndjson (one JSON event per line; kill9-http
reads what tests/py/backend.py accepted over HTTP instead) and checks:

  * every record the writer completed (its terminator written), and that was
    not destroyed by a truncation or deletion, has an event (rcpt uN);
  * no event for a record never written, no event for a filtered `d` row,
    no event that is not JSON;
  * each event's fields and "message" are those of record N (a record spliced
    across two reads shows here), and its "path" is a file the writer used;
  * no record twice, except after kill -9, where duplicates are counted per
    kill and bounded by the unacknowledged window;
  * SIGTERM: exit status 0.

Waits poll (every 20 ms) with timeouts instead of fixed sleeps.

Environment:
  PMTATAIL_TAIL_SCALE    multiply record counts (soak: 10), default 1
  PMTATAIL_TAIL_KILLS    kill -9 cycles, default 15
  PMTATAIL_TAIL_ONLY     comma-separated scenario names to run (default all)
  PMTATAIL_TAIL_SEED     random seed (default: from the clock; printed)
  PMTATAIL_TAIL_TIMEOUT  seconds to wait for delivery, default 20 (scaled up
                         for big backlogs)
  PMTATAIL_TAIL_KEEP     keep the temporary directories (their paths are printed)

Standard library only. One line per check; exits 1 if any check failed.
"""

import collections
import json
import os
import random
import re
import signal
import sys
import threading
import time
import traceback
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pmta_sim import Sim, ranges, rcpt_number, record_bytes, record_fields  # noqa: E402
from harness import Daemon, check, finish, info, poll_until, run_scenarios, binary_arg, read_offsets
from backend import Backend  # noqa: E402

SCALE = float(os.environ.get("PMTATAIL_TAIL_SCALE", "1"))
KILLS = int(os.environ.get("PMTATAIL_TAIL_KILLS", "15"))
ONLY = [s for s in os.environ.get("PMTATAIL_TAIL_ONLY", "").split(",") if s]
SEED = int(os.environ.get("PMTATAIL_TAIL_SEED", str(int(time.time()) % 100000)))
TIMEOUT = float(os.environ.get("PMTATAIL_TAIL_TIMEOUT", "20"))
KEEP = bool(os.environ.get("PMTATAIL_TAIL_KEEP"))

BATCH = 50          # batch_max_records in the configuration
CONCURRENCY = 4     # [output] concurrency, the default
# The daemon's window: events it holds read and not acknowledged, at most
# (concurrency + 2) batches and at least 1000 (src/pipeline/daemon.c).
WINDOW = max((CONCURRENCY + 2) * BATCH, 1000)
IDLE_SWITCHES_MAX = 5
HWM_MAX_KIB = 16 * 1024

BINARY = None


def n_(count):
    """A record count, scaled."""
    return max(1, int(count * SCALE))


# -------------------------------------------------------------- the output


class Out:
    """Incremental reader of the NDJSON output file."""

    def __init__(self, path, sim):
        self.path = path
        self.sim = sim
        self.pos = 0
        self.buf = b""
        self.counts = collections.Counter()  # N -> events
        self.total = 0
        self.bad_lines = []      # (line number, text) of non-JSON lines
        self.strays = []         # events that are no uN record
        self.mismatch = []       # content differences
        self.partials = {}       # N -> events of abandoned halves
        self.paths = collections.Counter()
        self.lineno = 0
        self.seen = (0, 0, 0)    # mismatch, strays, bad_lines already reported
        self.seq = []            # N of every event in output order (None: stray)

    def news(self):
        """Problems found since the last call (each is reported once)."""
        a, b, c = self.seen
        self.seen = (len(self.mismatch), len(self.strays), len(self.bad_lines))
        return self.mismatch[a:], self.strays[b:], self.bad_lines[c:]

    def poll(self):
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.pos)
                data = fh.read()
        except FileNotFoundError:
            return self
        # Read on from the end of the last whole line, never from the end of
        # a partial one: a daemon killed in the middle of a write cuts the
        # fragment off at its next start and appends there.
        lines = data.split(b"\n")
        self.buf = lines.pop()
        self.pos += len(data) - len(self.buf)
        for line in lines:
            self.lineno += 1
            self._event(line)
        return self

    def _event(self, line):
        try:
            ev = json.loads(line.decode("utf-8"))
            if not isinstance(ev, dict):
                raise ValueError("not an object")
        except ValueError as e:
            self.bad_lines.append((self.lineno, "%s: %.160r" % (e, line)))
            return
        self.total += 1
        n = rcpt_number(ev.get("rcpt"))
        self.seq.append(n)
        self.paths[ev.get("path")] += 1
        if n is None:
            self.strays.append(ev)
            return
        self.counts[n] += 1
        if n in self.sim.partial:
            self.partials.setdefault(n, []).append(ev)
            return
        if len(self.mismatch) < 1000:
            diffs = self._compare(n, ev)
            if diffs:
                self.mismatch.append("u%d (line %d): %s" % (n, self.lineno, "; ".join(diffs)))

    @staticmethod
    def _compare(n, ev):
        want = record_fields(n)
        diffs = []
        for col, val in want.items():
            key = "logType" if col == "type" else col
            if ev.get(key) != val:
                diffs.append("%s=%.80r want %.80r" % (key, ev.get(key), val))
        msg = record_bytes(n)[:-2].decode()
        if ev.get("message") != msg:
            diffs.append("message=%.120r want %.120r" % (ev.get("message"), msg))
        if not ev.get("eventId"):
            diffs.append("no eventId")
        return diffs

    def missing(self, required):
        return [n for n in required if not self.counts.get(n)]

    def dupes(self):
        return sum(c - 1 for c in self.counts.values() if c > 1)

    def dupes_by_run(self, bounds):
        """Duplicates caused by each run's end: bounds[k] is the number of
        events in the output when run k+1 ended. An event counts for the run
        that wrote it when its record is delivered again later (that run
        ended before saving it); the counts sum to dupes()."""
        later = set()
        per = [0] * (len(bounds) + 1)
        k = len(bounds)
        for i in range(len(self.seq) - 1, -1, -1):
            while k > 0 and i < bounds[k - 1]:
                k -= 1
            n = self.seq[i]
            if n is None:
                continue
            if n in later:
                per[k] += 1
            later.add(n)
        return per


class HttpOut(Out):
    """The same reader over the events tests/py/backend.py accepted, in the
    order their requests were answered."""

    def __init__(self, backend, sim):
        super().__init__(None, sim)
        self.backend = backend

    def poll(self):
        for ev in self.backend.accepted_from(self.lineno):
            self.lineno += 1
            self._event(json.dumps(ev).encode())
        return self


# -------------------------------------------------------------- one daemon


def proc_status(pid, field, all_threads=False):
    """An integer field of /proc/PID/status (summed over threads if asked)."""
    paths = (["/proc/%d/task/%s/status" % (pid, t) for t in os.listdir("/proc/%d/task" % pid)]
             if all_threads else ["/proc/%d/status" % pid])
    total = 0
    for p in paths:
        with open(p) as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
    return total


class Env(Daemon):
    """A temporary directory with a configuration, a simulated writer, the
    output reader, and the daemon runs."""

    def __init__(self, name, same_dir=False, batch=BATCH, linger=20, sim_args=None, http=False):
        super().__init__(BINARY, name, "pmtatail-%s-" % name, KEEP)
        if same_dir:
            self.archive = self.pmta
        self.outfile = os.path.join(self.tmp, "out", "events.ndjson")
        self.makedirs(self.pmta, self.archive, os.path.dirname(self.outfile), self.logs)
        if http:  # tests/py/backend.py instead of the file output
            self.backend = Backend()
            self.backend.start()
        output = ("url = %s\nformat = batch" % self.backend.url("/bounces") if http
                  else "file = %s" % self.outfile)
        with open(self.conf, "w") as fh:
            fh.write("[source bounces]\npath = %s\narchive_dir = %s\nrecords = b, rb\n\n"
                     "[output]\n%s\nbatch_max_records = %d\nlinger_ms = %d\n\n"
                     "[state]\ndir = %s\n\n[log]\nlevel = debug\n"
                     % (self.live, self.archive, output, batch, linger, self.state))
        args = dict(seed=SEED + zlib.crc32(name.encode()) % 1000, filtered_ratio=0.03,
                    pause_prob=0.05)
        args.update(sim_args or {})
        self.sim = Sim(self.live, self.archive, **args)
        self.out = HttpOut(self.backend, self.sim) if http else Out(self.outfile, self.sim)
        self.dupes_seen = set()  # duplicated records already reported

    def freeze(self):
        """SIGSTOP the daemon and wait until it is stopped (state T): the
        reader falls behind by whatever is written until thaw()."""
        check("%s: daemon frozen by SIGSTOP" % self.name, super().freeze())

    # -- waiting and checking

    def wait_delivered(self, timeout=None, required=None):
        """Poll the output until every required record has an event."""
        req = self.sim.required() if required is None else required
        t = TIMEOUT + len(req) / 2000.0 if timeout is None else timeout
        todo = set(req)
        last = [-1]

        def done():
            if self.out.poll().total != last[0]:
                last[0] = self.out.total
                for n in [n for n in todo if self.out.counts.get(n)]:
                    todo.discard(n)
            return not todo or (self.proc is not None and self.proc.poll() is not None)
        t0 = time.monotonic()
        poll_until(done, t)
        return not todo, time.monotonic() - t0

    def verify(self, label, exact=True, required=None, dupes_max=None):
        """The checks every scenario ends with."""
        o = self.out.poll()
        if o.buf and self.alive():  # a line being written: let it finish
            poll_until(lambda: not o.poll().buf, 2)
        sim = self.sim
        req = sim.required() if required is None else required
        missing = o.missing(req)
        where = ["  %s holds u%s" % (os.path.relpath(p, self.tmp), ranges(ns)[:200])
                 for p, ns in sorted(sim.where(missing).items())][:8]
        check("%s: all %d written records delivered" % (label, len(req)), not missing,
              ["missing %d: u%s" % (len(missing), ranges(missing)[:600])] + where +
              self.stderr_tail())
        never = sorted(n for n in o.counts if n not in sim.started)
        check("%s: no event for a record not written" % label, not never,
              ["u%s" % ranges(never)[:600]])
        mismatch, strays, bad_lines = o.news()
        check("%s: no stray events (filtered rows, headers, garbage)" % label, not strays,
              ["%d strays, first: %.300r" % (len(strays), strays[:2])])
        check("%s: every output line is JSON" % label, not bad_lines and not o.buf,
              ["line %d: %s" % x for x in bad_lines[:5]] +
              (["unterminated last line: %.120r" % o.buf] if o.buf else []))
        check("%s: events carry record N's fields and message" % label, not mismatch,
              mismatch[:5])
        bad_paths = [p for p in o.paths if p not in sim.paths]
        check("%s: event paths are files the writer used" % label, not bad_paths,
              ["%r (%d events)" % (p, o.paths[p]) for p in bad_paths[:5]] +
              ["writer paths: %s" % sorted(sim.paths)[:6]])
        d = o.dupes()
        if exact:
            twice = sorted(n for n, c in o.counts.items() if c > 1 and n not in self.dupes_seen)
            self.dupes_seen.update(twice)
            check("%s: no record delivered twice" % label, not twice,
                  ["%d records twice or more (new since the last check): u%s" % (
                      len(twice), ranges(twice)[:600])])
        else:
            info("%s: %d duplicate events over %d records (%d kills)" % (
                label, d, len(req), self.kills))
            if dupes_max is not None:
                check("%s: duplicates (%d) within the unacknowledged window (<= %d)" % (
                    label, d, dupes_max), d <= dupes_max)
        return not missing


# -------------------------------------------------------------- scenarios

SCENARIOS = []


def scenario(fn):
    SCENARIOS.append(fn)
    return fn


@scenario
def steady(e):
    """Steady appends while running, SIGTERM; then idleness (no wake-ups)."""
    e.start()
    check("steady: daemon running", e.alive(), e.stderr_tail())
    for _ in range(20):
        e.sim.write(n_(100))
        time.sleep(0.02)
    ok, t = e.wait_delivered()
    info("steady: %d records delivered in %.2f s after the last write" % (
        len(e.sim.required()), t))
    if ok and e.alive():
        idle(e, "steady")
    e.expect_stop("steady")
    e.verify("steady")


def _status_at(e, offset):
    """status.json says every source is saved up to offset, nothing behind."""
    try:
        with open(os.path.join(e.state, "status.json")) as fh:
            st = json.load(fh)
    except (OSError, ValueError):
        return False
    srcs = st.get("sources") or []
    return bool(srcs) and all(x.get("offset") == offset and x.get("bytes_behind") == 0
                              for x in srcs)


def _saved_at(e, offset):
    """The saved offsets have the live file up to offset."""
    st = read_offsets(e.state)
    if st is None:
        return False
    return any(x.get("path") == e.live and x.get("offset") == offset
               for x in st.get("files") or [])


def idle(e, label):
    """After catching up: voluntary context switches over 2 s of idleness."""
    pid = e.proc.pid
    size = os.path.getsize(e.outfile)
    # The output shows an event before its offset is saved and reported:
    # wait until offsets.json and status.json (written up to 2 s later) both
    # have the live file's end, then a little for the last write to end.
    live_size = os.path.getsize(e.live)
    poll_until(lambda: not e.alive() or (_saved_at(e, live_size) and _status_at(e, live_size)),
               15)
    poll_until(lambda: False, 0.3)
    try:
        mtime = os.stat(e.offsets).st_mtime_ns
    except OSError:
        mtime = None
    before = proc_status(pid, "voluntary_ctxt_switches", all_threads=True)
    before_nv = proc_status(pid, "nonvoluntary_ctxt_switches", all_threads=True)
    time.sleep(2.0)
    after = proc_status(pid, "voluntary_ctxt_switches", all_threads=True)
    after_nv = proc_status(pid, "nonvoluntary_ctxt_switches", all_threads=True)
    threads = len(os.listdir("/proc/%d/task" % pid))
    info("%s: idle 2 s: %d voluntary, %d involuntary context switches (%d threads)" % (
        label, after - before, after_nv - before_nv, threads))
    check("%s: idle daemon makes no wake-ups (%d voluntary switches in 2 s, max %d)" % (
        label, after - before, IDLE_SWITCHES_MAX), after - before <= IDLE_SWITCHES_MAX)
    try:
        mtime2 = os.stat(e.offsets).st_mtime_ns
    except OSError:
        mtime2 = None
    check("%s: idle daemon writes nothing (output, offsets.json)" % label,
          os.path.getsize(e.outfile) == size and mtime == mtime2,
          ["output %d -> %d bytes, offsets.json mtime %r -> %r" % (
              size, os.path.getsize(e.outfile), mtime, mtime2)])


@scenario
def rename_old_descriptor(e):
    """Rename rotation while the writer still appends to the old descriptor:
    right after the rename, and late (after the new file has records)."""
    e.start()
    e.sim.write(n_(300))
    e.sim.rotate(old_writes=20)
    e.sim.write(n_(300))
    e.wait_delivered()
    e.sim.rotate(old_writes=15, old_delay=True)
    e.sim.write(n_(200))           # the new live file
    e.wait_delivered()             # the daemon has moved on to it
    late = e.sim.old_write_later()  # ... then the old descriptor gets more
    e.sim.write(n_(100))
    ok, _ = e.wait_delivered()
    e.expect_stop("rename-old-descriptor")
    missing = e.out.missing(e.sim.required())
    if missing and set(missing) <= set(late):
        info("rename-old-descriptor: the missing ones are exactly the late writes to the "
             "old descriptor after the daemon had moved to the new file (u%s)" % ranges(late))
    e.verify("rename-old-descriptor")


@scenario
def rotate_archive_dir(e):
    """Rotation into the archive directory (outside the live directory)."""
    e.start()
    for _ in range(3):
        e.sim.write(n_(200))
        e.sim.rotate()
    e.sim.write(n_(200))
    e.wait_delivered()
    e.expect_stop("rotate-archive-dir")
    e.verify("rotate-archive-dir")


def rotate_same_dir(e):
    """Rotation into the live file's own directory (archive_dir = that dir)."""
    e.start()
    check("rotate-same-dir: daemon accepts archive_dir = the live directory", e.alive(),
          e.stderr_tail())
    for _ in range(3):
        e.sim.write(n_(200))
        e.sim.rotate(old_writes=5)
    e.sim.write(n_(200))
    e.wait_delivered()
    e.expect_stop("rotate-same-dir")
    e.verify("rotate-same-dir")


rotate_same_dir.env = {"same_dir": True}
scenario(rotate_same_dir)


@scenario
def rotation_cascade(e):
    """Ten rotations within a second, one of them of a header-only file."""
    e.start()
    e.sim.write(n_(50))
    rng = random.Random(SEED)
    t0 = time.monotonic()
    for i in range(10):
        if i != 5:  # two rotations back to back: a header-only archive
            e.sim.write(rng.randint(5, 30))
        e.sim.rotate(old_writes=rng.choice([0, 0, 3]))
        time.sleep(0.05)
    info("rotation-cascade: 10 rotations in %.2f s" % (time.monotonic() - t0))
    e.sim.write(n_(50))
    e.wait_delivered()
    e.expect_stop("rotation-cascade")
    e.verify("rotation-cascade")


def burst_with_rotations(sim, total, rotations, **kw):
    step = total // (rotations + 1)
    for i in range(rotations + 1):
        sim.write(step if i < rotations else total - step * rotations)
        if i < rotations:
            sim.rotate(**kw)


@scenario
def far_behind_frozen(e):
    """The reader far behind (SIGSTOPped) while 20,000 records and three
    rotations happen."""
    e.start()
    e.sim.write(100)
    e.wait_delivered()
    e.freeze()
    burst_with_rotations(e.sim, n_(20000), 3, old_writes=5)
    e.thaw()
    ok, t = e.wait_delivered()
    info("far-behind-frozen: caught up in %.2f s" % t)
    e.expect_stop("far-behind-frozen")
    e.verify("far-behind-frozen")


@scenario
def far_behind_restart(e):
    """20,000 records and three rotations while the daemon is stopped
    (it knows the live file from an earlier run), then start it."""
    e.start()
    e.sim.write(100)
    e.wait_delivered()
    e.expect_stop("far-behind-restart (first run)")
    burst_with_rotations(e.sim, n_(20000), 3)
    e.start()
    ok, t = e.wait_delivered()
    info("far-behind-restart: caught up in %.2f s" % t)
    e.expect_stop("far-behind-restart")
    e.verify("far-behind-restart")


@scenario
def first_start_with_archives(e):
    """First start ever (no state) with 20,000 records already written and
    rotated three times: the live file is read from its beginning
    (start_at = beginning). Archives older than the first start are history
    (replay's job): whether they are read is only reported."""
    burst_with_rotations(e.sim, n_(20000), 3)
    live = [n for rec in e.sim.files if rec.path == e.live for n in rec.numbers]
    for p in e.sim.archives:
        os.utime(p)  # rotated a moment ago, as at a real first start
    e.start()
    ok, t = e.wait_delivered(required=live)
    poll_until(lambda: False, 0.3)
    e.expect_stop("first-start-with-archives")
    older = [n for n in e.sim.complete if n not in set(live)]
    info("first-start-with-archives: live file (%d records) read in %.2f s; %d of the %d "
         "records in older archives were delivered too" % (
             len(live), t, sum(1 for n in older if e.out.counts.get(n)), len(older)))
    e.verify("first-start-with-archives", required=live)
    # The next start decides as the first did: the archives were history
    # then, and are not taken now for files rotated while it was stopped.
    before = sum(1 for n in older if e.out.poll().counts.get(n))
    e.start()
    poll_until(lambda: False, 1.0)
    e.expect_stop("first-start-with-archives (restart)")
    after = sum(1 for n in older if e.out.poll().counts.get(n))
    check("first-start-with-archives: a restart reads none of the archives history at the "
          "first start (%d records before, %d after)" % (before, after), after == before)


@scenario
def burst_running(e):
    """Start the daemon, then a 20,000-record burst with three rotations,
    flat out."""
    e.sim.pause_prob = 0
    e.start()
    burst_with_rotations(e.sim, n_(20000), 3, old_writes=3)
    ok, t = e.wait_delivered()
    info("burst-running: caught up in %.2f s after the burst" % t)
    e.expect_stop("burst-running")
    e.verify("burst-running")


@scenario
def stopped_rotation(e):
    """SIGTERM, write and rotate twice, restart: the old file's tail and the
    files rotated meanwhile are all read, nothing twice."""
    e.start()
    e.sim.write(n_(300))
    e.wait_delivered()
    e.expect_stop("stopped-rotation (first run)")
    e.sim.write(n_(200))
    e.sim.rotate()
    e.sim.write(n_(200))
    e.sim.rotate()
    e.sim.write(n_(200))
    e.start()
    e.wait_delivered()
    e.expect_stop("stopped-rotation")
    e.verify("stopped-rotation")


@scenario
def kill9(e):
    """kill -9 at random points while a writer appends and rotates, restarted
    KILLS times; then every record is delivered at least once. The file
    output (see kill_cycles)."""
    kill_cycles(e, "kill9")


@scenario
def kill9_http(e):
    """The same against tests/py/backend.py over HTTP, where requests are in
    flight at each kill: the backend may have accepted one whose answer the
    killed run never read (see kill_cycles)."""
    kill_cycles(e, "kill9-http")


kill9_http.env = {"http": True}


def kill_cycles(e, label):
    """kill -9 at random points while a writer appends and rotates, restarted
    KILLS times; then every record is delivered at least once.

    Duplicates are what a killed run had delivered but not yet saved in
    offsets.json. The daemon saves the offsets in the loop pass after the
    acknowledgements arrive, so what one kill resends is what was in flight
    (at most the window of events read and not acknowledged) plus what was
    acknowledged since the last save (one loop pass, itself bounded by the
    window): each kill's duplicates, counted per run from the output order,
    are reported and must stay within WINDOW."""
    rng = random.Random(SEED + 9)
    stop = threading.Event()
    errors = []

    def writer():
        since = 0
        wrng = random.Random(SEED + 10)
        try:
            while not stop.is_set():
                k = wrng.randint(1, 40)
                e.sim.write(k)
                since += k
                if since > 400:
                    since = 0
                    e.sim.rotate(old_writes=wrng.choice([0, 0, 5]))
                time.sleep(wrng.random() * 0.04)  # ~1000 records/s
        except Exception:  # reported by the main thread
            errors.append(traceback.format_exc())

    th = threading.Thread(target=writer, daemon=True)
    e.start()
    th.start()
    died = []
    bounds = []  # output events when each killed run was gone
    lives = []
    try:
        for i in range(KILLS):
            # Some runs shorter than a commit interval, some longer.
            life = rng.uniform(0.05, 0.5) if rng.random() < 0.5 else rng.uniform(0.5, 2.5)
            time.sleep(life)
            if not e.alive():
                died.append((i + 1, e.proc.poll(), e.stderr_tail(4)))
                e.stop()
            else:
                e.kill9()
            if e.backend is not None:
                # a request of the killed run may still be being answered
                poll_until(lambda: e.backend.stats()["in_flight"] == 0, 5)
            bounds.append(e.out.poll().total)
            lives.append(life)
            if rng.random() < 0.5:
                time.sleep(rng.uniform(0, 0.2))  # rotations happen while it is down
            e.start(wait_ready=rng.random() < 0.5)
    finally:
        time.sleep(0.2)
        stop.set()
        th.join()
    check("%s: writer ran without error" % label, not errors, errors[:1])
    check("%s: no run died on its own between kills" % label, not died,
          ["run %d exited %r: %s" % (i, rc, " | ".join(t)) for i, rc, t in died[:3]])
    e.sim.close()
    ok, t = e.wait_delivered(timeout=TIMEOUT * 3)
    info("%s: %d records, %d rotations, %d kills after %.2f..%.2f s; caught up %.2f s "
         "after the last restart" % (label, len(e.sim.complete), e.sim.rotations, e.kills,
                                     min(lives), max(lives), t))
    e.expect_stop(label)
    e.verify(label, exact=False)
    per = e.out.dupes_by_run(bounds)
    per_kill = per[:-1]  # the last run was stopped cleanly: nothing after it
    info("%s: duplicates per kill %s: mean %.1f, max %d (window %d events)" % (
        label, per_kill, sum(per_kill) / max(1, len(per_kill)), max(per_kill, default=0),
        WINDOW))
    # and a clean stop saved everything: a start after it resends nothing
    before = e.out.poll().total
    e.start()
    e.wait_delivered(timeout=1.0, required=[-1])
    e.expect_stop("%s (restart after the clean stop)" % label)
    check("%s: a start after the clean stop resent nothing" % label,
          e.out.poll().total == before, ["%d events more" % (e.out.total - before)])
    check("%s: every kill resent at most the window (%d events)" % (label, WINDOW),
          all(d <= WINDOW for d in per_kill),
          ["kill %d resent %d" % (i + 1, d) for i, d in enumerate(per_kill) if d > WINDOW][:5])
    most = max(e.out.counts.values()) if e.out.counts else 0
    check("%s: no record delivered more than kills+1 times (max %d)" % (label, most),
          most <= e.kills + 1)
    tmps = e.said(r"offsets\.json\.tmp")
    if tmps:
        info("%s: %d runs reported a leftover offsets.json.tmp, e.g. %s" % (
            label, len(tmps), tmps[0]))


@scenario
def partial_restart(e):
    """A half-written last record (cut just after a CRLF inside quotes, then
    at a random point) across a SIGTERM and restart: held, then delivered
    once, whole."""
    e.start()
    e.sim.write(n_(100))
    n1, text1 = e.sim.write_partial(need_crlf=True)
    e.wait_delivered()
    poll_until(lambda: False, 0.3)  # longer than linger: a wrongly sent half shows
    e.out.poll()
    check("partial-restart: half record u%d (%d bytes, ends in a quoted CRLF) not sent early"
          % (n1, len(text1)), not e.out.counts.get(n1))
    e.expect_stop("partial-restart (first run)")
    e.out.poll()
    check("partial-restart: half record not sent at shutdown", not e.out.counts.get(n1))
    e.start()
    e.sim.finish_partial()
    e.sim.write(n_(10))
    n2, text2 = e.sim.write_partial()
    e.wait_delivered()
    e.expect_stop("partial-restart (second run)")
    e.start()
    e.sim.finish_partial()
    e.sim.write(n_(10))
    e.wait_delivered()
    e.expect_stop("partial-restart")
    e.out.poll()
    for n in (n1, n2):
        check("partial-restart: u%d delivered once" % n, e.out.counts.get(n) == 1,
              ["%r events" % e.out.counts.get(n)])
    e.verify("partial-restart")


@scenario
def output_fragment(e):
    """A kill in the middle of the file output's write leaves the start of an
    event after the last newline: the next start cuts it off (that batch was
    never acknowledged and is sent again), so every line stays JSON."""
    e.start()
    e.sim.write(n_(20))
    e.wait_delivered()
    e.expect_stop("output-fragment (first run)")
    e.out.poll()
    with open(e.outfile, "ab") as fh:
        fh.write(b'{"logType":"b","rcpt":"u1@exam')  # what a kill -9 can leave
    e.start()
    e.sim.write(n_(10))
    e.wait_delivered()
    e.expect_stop("output-fragment")
    err = open(e.runs[-1][0], errors="replace").read()
    check("output-fragment: the fragment is named as cut back", "cut back" in err,
          e.stderr_tail())
    e.verify("output-fragment")


@scenario
def partial_rotation(e):
    """The old file's last record never completes (the file is rotated away
    with half a record): it is delivered as such or reported, never silently
    dropped."""
    e.start()
    e.sim.write(n_(100))
    e.wait_delivered()  # the daemon has the file open (a file it never opened is
    #                     another scenario: rotation-cascade)
    raw = record_bytes(e.sim.next_n)
    cut = raw.index(b"@example.com,") + len(b"@example.com,") + 5
    n, text = e.sim.write_partial(cut=cut)
    _, part = e.sim.abandon_partial()
    archived = e.sim.rotate()
    e.sim.write(n_(100))
    e.wait_delivered()
    name = os.path.basename(archived)
    offsets = {str(part["offset"]), str(part["end"])}

    def evidence():
        e.out.poll()
        if e.out.counts.get(n):
            return "event"
        for line in e.messages():
            if (name in line or "bounces.csv" in line) and \
                    any(re.search(r"\b%s\b" % o, line) for o in offsets):
                return "log: " + line.strip()
        return None
    got = poll_until(evidence, 3)
    if not got:
        e.sim.rotate()  # one more rotation: the half record is now old news
        e.sim.write(n_(10))
        e.wait_delivered()
        got = poll_until(evidence, 2)
    e.expect_stop("partial-rotation")
    got = got or evidence()
    if got == "event":
        evs = e.out.partials.get(n, [])
        msgs = [ev.get("message") for ev in evs]
        check("partial-rotation: half record u%d delivered as it is" % n,
              all(m == text.decode() for m in msgs),
              ["messages %.200r, want %.200r" % (msgs, text.decode())])
    else:
        check("partial-rotation: half record u%d (%s offset %d..%d) delivered or reported"
              % (n, name, part["offset"], part["end"]), bool(got),
              ["no event for u%d, no stderr line naming %s and offset %s" % (
                  n, name, " or ".join(sorted(offsets)))] +
              ["stderr: " + ln for ln in e.said("partial|incomplete|unterminated|pending")][:5])
        if got:
            info("partial-rotation: " + got)
    e.verify("partial-rotation")


@scenario
def truncation(e):
    """Truncate in place: while caught up (then smaller: size < offset), while
    stopped and rewritten longer than before, while the reader lags."""
    e.start()
    e.sim.write(n_(200))
    e.wait_delivered()
    e.sim.truncate()
    e.sim.write(n_(50))
    e.wait_delivered()
    found = poll_until(lambda: e.said(r"truncat", -1), 2)
    check("truncation: a log line says truncated", bool(found), e.stderr_tail(5))
    if found:
        info("truncation: " + found[0])
    e.expect_stop("truncation (caught up)")
    e.verify("truncation (caught up)")

    # Stopped, truncated and rewritten longer than the saved offset: the
    # size alone does not show it.
    e.sim.truncate()
    e.sim.write(n_(300))
    e.start()
    e.wait_delivered()
    e.expect_stop("truncation (while stopped, rewritten longer)")
    info("truncation (while stopped): stderr says: %s" % (
        e.said("truncat|differ|changed|replaced|not found", -1)[:3]))
    e.verify("truncation (while stopped, rewritten longer)")

    # Lagging: records written while it is frozen are destroyed before it
    # reads them (not required); what follows the truncation is.
    e.start()
    e.wait_delivered()
    e.freeze()
    before = e.sim.next_n
    e.sim.write(n_(100))
    gone = [n for n in e.sim.truncate() if n >= before]
    e.sim.write(n_(50))
    e.thaw()
    e.wait_delivered()
    e.expect_stop("truncation (lagging)")
    info("truncation (lagging): %d of the %d records written while it was frozen, and "
         "destroyed before it read them, had events (not required)"
         % (sum(1 for n in gone if e.out.counts.get(n)), len(gone)))
    e.verify("truncation (lagging)")


@scenario
def copy_truncate(e):
    """copy-and-truncate (the copy goes to the archive directory) while caught
    up, while lagging (SIGSTOP), while stopped: the copy holds the records
    not yet read, the truncated live file the ones that follow."""
    e.start()
    e.sim.write(n_(200))
    e.wait_delivered()
    e.sim.copy_truncate()
    e.sim.write(n_(100))
    e.wait_delivered()
    e.verify("copy-truncate (caught up)")
    e.freeze()
    e.sim.write(n_(100))
    e.sim.copy_truncate()
    e.sim.write(n_(120))  # a little longer than before: the size alone does not show it
    e.thaw()
    e.wait_delivered()
    e.verify("copy-truncate (lagging)")
    e.expect_stop("copy-truncate (lagging)")
    e.sim.write(n_(100))
    e.sim.copy_truncate()
    e.sim.write(n_(100))
    e.start()
    e.wait_delivered()
    e.expect_stop("copy-truncate (stopped)")
    e.verify("copy-truncate (stopped)")


@scenario
def delete_recreate(e):
    """Delete and re-create at the same path: while running; and while
    stopped, on the same inode number (inode reuse), the new file longer
    than the saved offset."""
    e.start()
    e.sim.write(n_(200))
    e.wait_delivered()
    e.sim.delete()
    e.sim.write(n_(150))
    e.wait_delivered()
    e.expect_stop("delete-recreate (running)")
    e.verify("delete-recreate (running)")
    ino, _ = e.sim.delete()
    reused = e.sim.recreate_same_inode(ino)
    info("delete-recreate: new file got the old inode number %d: %s" % (ino, reused))
    e.sim.write(n_(400))
    e.start()
    e.wait_delivered()
    e.expect_stop("delete-recreate (stopped%s)" % (", inode reused" if reused else ""))
    e.verify("delete-recreate (stopped%s)" % (", inode reused" if reused else ""))


@scenario
def state_files(e):
    """A leftover offsets.json.tmp: start, report it, lose nothing. An empty
    or corrupt offsets.json: refuse to start (exit 1, naming the file),
    leaving it as it is."""
    e.start()
    e.sim.write(n_(100))
    e.wait_delivered()
    e.expect_stop("state-files (first run)")
    check("state-files: offsets.json exists after a run", os.path.exists(e.offsets))
    tmpfile = e.offsets + ".tmp"
    with open(tmpfile, "w") as fh:
        fh.write('{"version": 1, "files": [{"source": "bou')
    e.sim.write(n_(100))
    e.start()
    poll_until(lambda: not e.alive(), 0.5)
    check("state-files: starts with a leftover offsets.json.tmp", e.alive(), e.stderr_tail())
    e.wait_delivered()
    said = e.said(r"offsets\.json\.tmp", -1)
    check("state-files: leftover offsets.json.tmp reported", bool(said), e.stderr_tail(5))
    if said:
        info("state-files: " + said[0])
    e.expect_stop("state-files (leftover tmp)")
    e.verify("state-files (leftover tmp)")

    with open(e.offsets, "rb") as fh:
        good = fh.read()
    for label, content in (("empty", b""), ("corrupt", b'{"version": 1, "files": [{"sou'),
                           ("not JSON", b"\x00\x00\x00\x00")):
        with open(e.offsets, "wb") as fh:
            fh.write(content)
        e.start(wait_ready=False)
        p = e.proc
        rc = poll_until(lambda: p.poll() is not None, 10) and p.returncode
        if rc is False:
            rc = e.stop()
        else:
            e.stop()
        err = e.stderr(-1)
        check("state-files: %s offsets.json: refuses to start, exit status 1" % label, rc == 1,
              ["got %r" % (rc,)] + e.stderr_tail(4))
        check("state-files: %s offsets.json: stderr names the file" % label,
              e.offsets in err, e.stderr_tail(4))
        if err:
            info("state-files: %s offsets.json: %s" % (label, e.messages(-1)[-1]))
        with open(e.offsets, "rb") as fh:
            check("state-files: %s offsets.json left as it was" % label, fh.read() == content)
    with open(e.offsets, "wb") as fh:
        fh.write(good)
    e.sim.write(n_(50))
    e.start()
    e.wait_delivered()
    e.expect_stop("state-files (restored)")
    e.verify("state-files (restored)")


@scenario
def missing_at_start(e):
    """The live file does not exist at start and appears later."""
    e.start()
    check("missing-at-start: daemon runs without the live file", e.alive(), e.stderr_tail())
    poll_until(lambda: False, 0.2)
    e.sim.write(n_(100))
    e.wait_delivered()
    e.sim.rotate()
    e.sim.write(n_(50))
    e.wait_delivered()
    e.expect_stop("missing-at-start", signal.SIGINT)
    e.verify("missing-at-start")


@scenario
def inotify_overflow(e):
    """The inotify queue overflows while the reader is frozen (thousands of
    files created and deleted, with appends and a rotation among them): it
    must rescan, not stall."""
    try:
        with open("/proc/sys/fs/inotify/max_queued_events") as fh:
            qmax = int(fh.read())
    except OSError:
        qmax = 16384
    e.start()
    e.sim.write(n_(100))
    e.wait_delivered()
    e.freeze()
    count = qmax // 2 + 1000  # create + close + delete: > qmax events
    for i in range(count):
        p = os.path.join(e.pmta, "scratch-%d.tmp" % i)
        os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o644))
        os.unlink(p)
        if i == count // 2:
            e.sim.write(n_(200))
            e.sim.rotate()
            e.sim.write(n_(200))
    e.sim.write(n_(100))
    e.thaw()
    e.wait_delivered()
    info("inotify-overflow: %d files created and deleted (queue max %d); stderr: %s" % (
        count, qmax, e.said("overflow|rescan", -1)[:2]))
    e.expect_stop("inotify-overflow")
    e.verify("inotify-overflow")


@scenario
def memory(e):
    """Peak RSS (VmHWM) after a 200,000-record backlog."""
    e.sim.pause_prob = 0
    e.sim.chunk_max = 65536
    e.sim.write(n_(200000))
    size = os.path.getsize(e.live)
    t0 = time.monotonic()
    e.start()
    pid = e.proc.pid
    ok, t = e.wait_delivered(timeout=TIMEOUT + 180 * SCALE)
    hwm = proc_status(pid, "VmHWM") if e.alive() else None
    info("memory: %d records (%.1f MiB) delivered in %.2f s (%.0f records/s); VmHWM %s KiB" % (
        len(e.sim.required()), size / 1048576.0, time.monotonic() - t0,
        len(e.sim.required()) / max(t, 0.001), hwm))
    if os.environ.get("PMTATAIL_SANITIZED"):
        # ASan's shadow memory and quarantine dwarf the program's own: the
        # figure means nothing in that build (the normal build checks it).
        info("memory: sanitizer build, peak RSS not checked (VmHWM %s KiB)" % hwm)
    else:
        check("memory: peak RSS below 16 MiB (VmHWM %s KiB)" % hwm,
              hwm is not None and hwm < HWM_MAX_KIB)
    e.expect_stop("memory")
    e.verify("memory")


# -------------------------------------------------------------- main


def main(argv):
    global BINARY
    BINARY, rc = binary_arg(argv, __doc__)
    if BINARY is None:
        return rc
    info("seed %d (PMTATAIL_TAIL_SEED), scale %g, kills %d" % (SEED, SCALE, KILLS))
    return run_scenarios(SCENARIOS, ONLY, lambda name, fn: Env(name, **getattr(fn, "env", {})))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
