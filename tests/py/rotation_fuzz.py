#!/usr/bin/python3
"""A rotation fuzzer: random sequences of what real PowerMTA hosts do to their
accounting files, run against the real daemon, judged by an oracle.

    rotation_fuzz.py PMTATAIL_BINARY --seed N        one sequence, each operation printed
    rotation_fuzz.py PMTATAIL_BINARY --count N [--first S] [--jobs J]
    rotation_fuzz.py PMTATAIL_BINARY --long SECONDS [--jobs J]
                                                     random seeds until the time is up
    rotation_fuzz.py PMTATAIL_BINARY --self-check    the oracle must see a planted loss,
                                                     duplicate, wrong field, wrong source;
                                                     excuse a kill's or an outage's resend
Options: --keep (keep the temporary directory, with logs/timeline.txt: the
operations, the backend's requests and the daemon's log lines on one clock),
--json (one result line, for the parallel runner), --ops (print the plan of a
seed and exit, no daemon), --results FILE (with --count or --long: every
result appended to FILE as a JSON line, its failures and log lines in full).

A sequence (6-20 operations, a few hundred records; a pause writes a burst
larger than the daemon's 1000-event window) draws from:
  append K          K records in random write(2) sizes, the last often cut
                    mid-record (the rest is written by the next operation)
  moveto-rename     PowerMTA move-to within a file system: rename to
                    archive/bounces-YYYY-MM-DD-NNNN.csv, new live file (at once
                    with its header alone, or at the next record)
  moveto-copy       move-to onto another file system: copy to the archive
                    name, then unlink the live file; maybe a SIGTERM restart
                    between the copy and the delete
  copytruncate R    logrotate copytruncate with `rotate R`: bounces.csv.R
                    deleted, .1.. shifted, the live file copied to
                    bounces.csv.1 (maybe on a freed inode), then truncated
  delete-archive    delete-after of the oldest move-to archive
  gzip-archive      gzip of the oldest plain move-to archive
  header-change     the next file starts with a header in another field order
  chmod-live / chmod-archive / chmod-dir
                    mode 000 on the live file, an archive, the archive
                    directory; restored by a later `unlock`
  inode-reuse       the next file created grabs an inode freed before
  restart / kill9 / sighup / stop (..start) the daemon
  outage (..up)     the backend down; pause (..resume): answers delayed, with
                    a burst that fills the daemon's window
  create-live       the writer opens its next live file now (header alone)
  slow MS (..resume) answers delayed by MS: batches in flight
  sleep S

The daemon runs as the user nobody when this runs as root (so mode 000
means something). Delete and gzip act on files the backend has every record
of; a file still owed after a wait is acted on anyway and its undelivered
records are counted apart ("deleted while unread"), not as a loss.

The oracle, after permissions are restored, the backend is up and delivery
settles: every record written was accepted at least once (except those
deleted while unread); a record accepted more than once only when a kill -9
came between its acceptances and the offsets saved at that kill did not
cover it, or when an outage stopped the backend at most OUTAGE_WINDOW_S after
a request carrying it was accepted (or while it was still being answered:
the answer may never reach the daemon) and it was accepted again after the
stop began, the offsets saved when the backend came back not covering it;
never more than twice unless several kills or outages excuse it; every
event's fields and message are its record's (as written under its file's
header); every event's path is a file of its own source; no event that is
not a record written; SIGTERM exits 0; the daemon never dies on its own.
A last SIGTERM and restart must resend nothing.

As a module: Run (one temporary directory, backend, daemon and writer;
operations as methods, do(op) for a plan entry), plan(seed), run_seed(...),
and Run.judge() (the oracle). tests/py/test_rotation_fuzz.py and
tests/py/test_rotation_cases.py use it. Standard library only.
"""

import argparse
import ast
import collections
import concurrent.futures
import gzip
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from backend import Backend, Request  # noqa: E402
from harness import Daemon, poll_until, read_offsets  # noqa: E402
from pmta_sim import HEADER_FIELDS, ranges, rcpt_number, record_bytes, record_fields  # noqa: E402

NOBODY = 65534
BATCH = 50
WINDOW = 1000          # the daemon's least window (src/pipeline/daemon.c)
QUIET_S = 2            # TAILER_QUIET_S
BURST = 1200           # records a pause writes: more than the window
DELAY_PAUSED_MS = 2500
# An `outage` stops the backend while it may have just answered a request:
# the answer sent, not yet read by the daemon when the server closes the
# socket (an RST can drop it) or still being answered (counted accepted, the
# socket shut under it). The daemon then rightly sends those records again,
# as after a kill -9. A request accepted no earlier than this many seconds
# before the stop began is "at the outage" (the daemon reads an answer within
# milliseconds; a second covers a loaded machine).
OUTAGE_WINDOW_S = 1.0


def encode(n, fields):
    """Record n's bytes with its columns in the order `fields`."""
    return record_bytes(n, fields)


def header_bytes(fields):
    return (",".join(fields) + "\r\n").encode()


# ------------------------------------------------------------------ the world


class FileObj:
    """One file as the writer made it: its name now, its inode, its header,
    the records it holds (n, start, end)."""

    def __init__(self, path, source, fields, ino=None):
        self.path = path
        self.source = source
        self.fields = fields
        self.ino = ino
        self.recs = []
        self.size = 0
        self.gone = False
        self.gz = False

    def numbers(self):
        return [r[0] for r in self.recs]

    def __repr__(self):
        return "<%s ino=%s %d recs%s>" % (self.path, self.ino, len(self.recs),
                                           " gone" if self.gone else "")


class Source:
    """One configured accounting file and its writer (PowerMTA)."""

    def __init__(self, run, name, live, archive_dir):
        self.run = run
        self.name = name
        self.live = live
        self.archive_dir = archive_dir
        self.stem = os.path.basename(live)[:-len(".csv")]
        self.fields = list(HEADER_FIELDS)
        self.next_fields = None
        self.fd = None
        self.cur = None           # FileObj of the live file
        self.pending = bytearray()
        self.marks = []           # (n, start, end) queued, not complete
        self.qsize = 0            # the live file's size once pending is written
        self.seq = 0              # move-to NNNN within the day
        self.day = "2024-01-05"

    # -- the live file

    def open_live(self):
        if self.fd is not None:
            return
        if not os.path.exists(self.live):
            self.run.create_file(self.live)
        self.fd = os.open(self.live, os.O_WRONLY | os.O_APPEND)
        st = os.fstat(self.fd)
        if self.next_fields:
            self.fields, self.next_fields = self.next_fields, None
        self.cur = FileObj(self.live, self.name, tuple(self.fields), st.st_ino)
        self.cur.size = st.st_size
        self.qsize = st.st_size
        self.run.files.append(self.cur)
        if st.st_size == 0:
            self.queue_header()

    def queue_header(self):
        h = header_bytes(self.cur.fields)
        self.pending += h
        self.qsize += len(h)

    def queue(self, count):
        for _ in range(count):
            n = self.run.new_number(self)
            data = encode(n, self.cur.fields)
            self.run.rec_fields[n] = self.cur.fields
            self.marks.append((n, self.qsize, self.qsize + len(data)))
            self.pending += data
            self.qsize += len(data)

    def pump(self, cut=False):
        """Write what is pending in random sizes; with cut, stop inside the
        last record (its rest stays pending)."""
        rng = self.run.rng
        target = self.qsize
        if cut and self.marks:
            n, s, e = self.marks[-1]
            target = s + rng.randint(1, e - s - 1)
        while self.cur.size < target:
            r = rng.random()
            size = rng.randint(1, 64) if r < 0.3 else rng.randint(1, 1024 if r < 0.8 else 4096)
            size = min(size, target - self.cur.size)
            w = os.write(self.fd, bytes(self.pending[:size]))
            del self.pending[:w]
            self.cur.size += w
            while self.marks and self.marks[0][2] <= self.cur.size:
                m = self.marks.pop(0)
                self.cur.recs.append(m)
                self.run.complete.add(m[0])
            if rng.random() < 0.03:
                time.sleep(rng.random() * 0.003)

    def append(self, count, cut=False):
        self.open_live()
        self.queue(count)
        self.pump(cut)

    def flush(self):
        if self.fd is not None:
            self.pump()

    def close_live(self):
        """The writer closes the live file (PowerMTA at a move-to)."""
        self.flush()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        f, self.cur = self.cur, None
        return f

    def moveto_name(self):
        self.seq += 1
        return os.path.join(self.archive_dir, "%s-%s-%04d.csv" % (self.stem, self.day, self.seq))


class Kill:
    """What a kill -9 left: the records accepted by then, and those whose
    acceptance the offsets saved at the kill cover."""

    def __init__(self, accepted, committed, op_index):
        self.accepted = accepted
        self.committed = committed
        self.op_index = op_index


def others_can_run(path):
    """Whether a user with no rights of owner or group can execute path:
    every directory on the way searchable by others, the file executable."""
    path = os.path.abspath(path)
    try:
        if not os.stat(path).st_mode & 0o001:
            return False
        d = os.path.dirname(path)
        while True:
            if not os.stat(d).st_mode & 0o001:
                return False
            if d == "/":
                return True
            d = os.path.dirname(d)
    except OSError:
        return False


class Outage:
    """An `outage` op: when the backend's stop began and ended (monotonic),
    and the records the offsets saved when it came back up cover (the
    daemon read those answers: a resend of them is not excused)."""

    def __init__(self, t_stop, t_stopped, op_index):
        self.t_stop = t_stop
        self.t_stopped = t_stopped
        self.op_index = op_index
        self.committed = None


def accepted_numbers(req):
    """Record numbers of the events a request had accepted."""
    if not req.accepted:
        return set()
    out = set()
    for i, e in enumerate(req.events):
        if isinstance(e, dict) and i not in req.refused:
            n = rcpt_number(e.get("rcpt"))
            if n is not None:
                out.add(n)
    return out


class Run(Daemon):
    """One temporary directory: pmta/bounces.csv (+ more sources), pmta/archive,
    state/, logs/, a backend, the daemon runs, and the oracle's world."""

    STDOUT_FILE = False

    def __init__(self, binary, seed=0, name="fuzz", keep=False, sources=("bounces",),
                 concurrency=4, batch=BATCH, verbose=True, user=None, archive_dir=None):
        super().__init__(binary, name, "pmtatail-rot-%s-" % name, keep)
        self.seed = seed
        self.rng = random.Random(seed * 7919 + 17)
        self.verbose = verbose
        self.scratch = os.path.join(self.tmp, "scratch")
        self.makedirs(self.pmta, self.archive, self.state, self.logs, self.scratch)
        os.chmod(self.tmp, 0o755)
        if user is None:
            # as nobody when root (so that chmod 000 blocks the daemon), if
            # nobody can reach the binary (a package build's private
            # directory cannot: then as root, chmod blocking nothing)
            user = NOBODY if os.geteuid() == 0 and others_can_run(binary) else None
        self.user = user
        if user is not None:
            os.chown(self.state, user, user)
        os.chmod(self.state, 0o700)
        self.backend = Backend(port=Backend.free_port())
        self.backend.start()
        self.sources = [Source(self, s, os.path.join(self.pmta, s + ".csv"),
                               archive_dir or self.archive) for s in sources]
        self.src = self.sources[0]
        self.files = []             # every FileObj ever
        self.next_n = 1
        self.rec_source = {}        # n -> source name
        self.rec_fields = {}        # n -> fields of the file it was written in
        self.complete = set()
        self.excused = {}           # n -> why (deleted/gzipped while unread)
        self.stuck = set()          # ... of those, unread with nothing in the way
        self.kills = []
        self.outages = []
        self.t_begin = time.monotonic()
        self.op_times = []          # (monotonic, op) for the timeline
        self.failures = []          # (kind, text)
        self.notes = []
        self.ops_done = []
        self.freed = []             # inode numbers freed by deletions
        self.reuse_next = False
        self.locked = []            # paths set to mode 000
        self.daemon_wanted = False
        self.backend_delay = 0
        self.crashes = 0
        self.reuse_hits = 0
        self.concurrency = concurrency
        self.batch = batch
        self._log_times = []
        self._log_stop = False
        self._log_thread = None
        if keep:
            self._log_thread = threading.Thread(target=self._watch_logs, daemon=True)
            self._log_thread.start()
        self.write_conf()

    def write_conf(self, extra_sources=""):
        with open(self.conf, "w") as fh:
            for s in self.sources:
                fh.write("[source %s]\npath = %s\narchive_dir = %s\nrecords = b, rb\n\n"
                         % (s.name, s.live, s.archive_dir))
            fh.write(extra_sources)
            fh.write("[output]\nurl = %s\nformat = batch\nbatch_max_records = %d\n"
                     "linger_ms = 20\nconcurrency = %d\nadaptive = no\ntimeout_s = 10\n"
                     "retry_max_s = 1\n\n[state]\ndir = %s\n\n[log]\nlevel = debug\n"
                     % (self.backend.url(), self.batch, self.concurrency, self.state))

    # -- bookkeeping

    def say(self, msg):
        if self.verbose:
            print("  " + msg, flush=True)

    def fail(self, kind, text):
        self.failures.append((kind, text))
        if self.verbose:
            print("  !! %s: %s" % (kind, text), flush=True)

    def new_number(self, src):
        n = self.next_n
        self.next_n += 1
        self.rec_source[n] = src.name
        return n

    def accepted_counts(self):
        c = collections.Counter()
        for ev in self.backend.accepted_events():
            n = rcpt_number(ev.get("rcpt"))
            if n is not None:
                c[n] += 1
        return c

    def delivered(self, numbers):
        c = self.accepted_counts()
        return all(c.get(n) for n in numbers)

    def holders(self, n):
        return [f for f in self.files if not f.gone and any(r[0] == n for r in f.recs)]

    # -- files

    def create_file(self, path, data=b""):
        """Create path (on a freed inode when inode-reuse asked for it)."""
        if self.reuse_next and self.freed:
            ino = self.freed[-1]
            got = self.create_on_inode(path, ino)
            self.say("inode reuse: %s %s inode %d" % (os.path.relpath(path, self.tmp),
                                                      "got" if got else "did not get", ino))
            if got:
                self.reuse_hits += 1
                self.freed.remove(ino)
            self.reuse_next = False
        if not os.path.exists(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.close(fd)
        if data:
            with open(path, "ab") as fh:
                fh.write(data)
        return os.stat(path).st_ino

    def create_on_inode(self, path, ino, tries=300):
        """Create an empty file at path on inode ino (ext4 hands a freed
        inode out again soon); misses are moved aside to scratch/."""
        aside = []
        got = False
        try:
            for i in range(tries):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                got = os.fstat(fd).st_ino == ino
                os.close(fd)
                if got:
                    break
                p = os.path.join(self.scratch, "s%d" % i)
                os.rename(path, p)
                aside.append(p)
        finally:
            for p in aside:
                os.unlink(p)
        return got

    def copy_file(self, src_path, dest):
        """cp SRC DEST: a new inode (maybe a freed one) with the same bytes."""
        self.create_file(dest)
        with open(src_path, "rb") as fi, open(dest, "r+b") as fo:
            shutil.copyfileobj(fi, fo)
        os.chmod(dest, 0o644)

    def file_at(self, path):
        for f in reversed(self.files):
            if f.path == path and not f.gone:
                return f
        return None

    def remove(self, f, why):
        """Delete a file; its records held nowhere else and not yet accepted
        are excused (counted apart)."""
        st = os.stat(f.path)
        os.unlink(f.path)
        f.gone = True
        self.freed.append(st.st_ino)
        c = self.accepted_counts()
        lost = [n for n in f.numbers() if not c.get(n) and not self.holders(n)]
        if lost and self.alive() and self.backend.running and not self.backend_delay \
                and not self.locked:
            # nothing kept the daemon from reading it: a stall (counted apart)
            why += " (the daemon running, the backend up)"
            self.stuck.update(lost)
        for n in lost:
            self.excused[n] = why
        return lost

    def archives(self, src, gz=None):
        """Move-to archives of src now on disk, oldest first."""
        out = [f for f in self.files if not f.gone and f.source == src.name
               and os.path.dirname(f.path) == src.archive_dir
               and os.path.basename(f.path).startswith(src.stem + "-")
               and (gz is None or f.gz == gz)]
        return sorted(out, key=lambda f: os.path.basename(f.path))

    def wait_delivered_file(self, f, timeout=4.0):
        if not self.alive() or not self.backend.running:
            return self.delivered(f.numbers())
        return poll_until(lambda: self.delivered(f.numbers()), timeout, 0.05)

    # -- the daemon

    def _pre(self):
        if self.user is not None:
            os.setgroups([])
            os.setgid(self.user)
            os.setuid(self.user)

    def dstart(self):
        self.daemon_wanted = True
        self.start(preexec_fn=self._pre)
        time.sleep(0.05)
        if self.proc.poll() is not None:
            rc = self.proc.returncode
            self.runs[-1][1] = rc
            self.proc = None
            self.crashes += 1
            self.fail("crash", "daemon exited at start with status %s: %s" % (
                rc, " | ".join(self.log_lines(-1, 6))))
            # a second try: a crash that repeats at every start stays down
            self.start(preexec_fn=self._pre)
            time.sleep(0.05)
            if self.proc.poll() is not None:
                self.runs[-1][1] = self.proc.returncode
                self.proc = None
                self.daemon_wanted = False
                self.fail("crash", "daemon exited again at its restart with status %s" % (
                    self.runs[-1][1],))

    def log_lines(self, run=-1, k=8, pattern=r"warn|error|lost|gone|skip|reuse|crash|abort"):
        try:
            lines = self.messages(run)
        except (OSError, IndexError):
            return []
        hit = [ln for ln in lines if re.search(pattern, ln, re.I)]
        return (hit or lines)[-k:]

    def check_alive(self, where):
        """A daemon that should run and died on its own is a failure; it is
        started again (its in-flight records count as after a kill)."""
        if self.daemon_wanted and self.proc is not None and self.proc.poll() is not None:
            rc = self.proc.returncode
            self.runs[-1][1] = rc
            self.proc = None
            self.crashes += 1
            self.fail("crash", "daemon died (status %s) during %s: %s" % (
                rc, where, " | ".join(self.log_lines(-1, 6))))
            self.note_kill()
            self.dstart()

    def dstop(self, sig=signal.SIGTERM):
        if self.proc is None:
            return None
        self.daemon_wanted = False
        rc = self.end_run(sig)
        if sig == signal.SIGTERM and rc != 0:
            self.fail("exit", "SIGTERM: exit status %r: %s" % (rc, " | ".join(self.log_lines(-1, 6))))
        # A stop whose bounded wait ran out (a backend too slow to answer)
        # leaves requests the backend may still accept: like a kill, what
        # the offsets do not cover may come once more (the daemon says so).
        if sig == signal.SIGTERM and self.said("stopping with undelivered records", -1):
            self.note_kill()
        return rc

    def settle(self, timeout=6):
        poll_until(lambda: self.backend.stats()["in_flight"] == 0, timeout)
        time.sleep(0.05)
        poll_until(lambda: self.backend.stats()["in_flight"] == 0, timeout)

    def committed_numbers(self, gone_too=False):
        """Records the offsets saved now cover (matched by inode and path);
        with gone_too, also by an entry whose inode only one file ever had,
        gone since (a moved-to copy's original)."""
        doc = read_offsets(self.state) or {}
        out = set()
        for e in doc.get("files") or []:
            same = [f for f in self.files if f.ino == e.get("ino")]
            for f in self.files:
                if f.ino != e.get("ino"):
                    continue
                if f.gone and not (gone_too and len(same) == 1):
                    continue
                if f.path != e.get("path") and not (e.get("finished")):
                    # the same inode under another name: trust it only by inode
                    pass
                off = f.size if e.get("finished") else e.get("offset", 0)
                out.update(r[0] for r in f.recs if r[2] <= off)
        return out

    def note_kill(self):
        self.settle()
        self.kills.append(Kill(self.accepted_counts(), self.committed_numbers(),
                               len(self.ops_done)))

    # -- operations (each is also a plan entry: do({"op": name, ...}))

    def op_append(self, k=20, cut=False, source=0):
        self.sources[source].append(k, cut)

    def op_start(self):
        if self.proc is None:
            self.dstart()

    def op_stop(self):
        self.dstop()

    def op_restart(self):
        self.dstop()
        self.dstart()

    def op_kill9(self, restart=True):
        if self.proc is None:
            return
        self.end_run(signal.SIGKILL)
        self.note_kill()
        if restart:
            self.dstart()

    def op_sighup(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGHUP)

    def op_moveto_rename(self, create_now=False, source=0):
        s = self.sources[source]
        if not os.path.exists(s.live):
            s.append(1)
        f = s.close_live()
        if f is None:  # not opened by the writer yet
            f = self.file_at(s.live)
        dest = s.moveto_name()
        os.rename(s.live, dest)
        if f is not None:
            f.path = dest
        self.say("  -> %s" % os.path.relpath(dest, self.tmp))
        if create_now:
            s.open_live()
            s.flush()

    def op_moveto_copy(self, restart_between=False, source=0):
        s = self.sources[source]
        if not os.path.exists(s.live):
            s.append(1)
        f = s.close_live() or self.file_at(s.live)
        dest = s.moveto_name()
        self.copy_file(s.live, dest)
        c = FileObj(dest, s.name, f.fields, os.stat(dest).st_ino)
        c.recs, c.size = list(f.recs), f.size
        self.files.append(c)
        self.say("  -> %s (copy, inode %d)" % (os.path.relpath(dest, self.tmp), c.ino))
        if restart_between and self.proc is not None:
            self.op_restart()
        ino = os.stat(s.live).st_ino
        os.unlink(s.live)
        f.gone = True
        self.freed.append(ino)

    def op_copytruncate(self, rotate=2, dateext=False, source=0):
        s = self.sources[source]
        s.open_live()
        s.flush()
        d = os.path.dirname(s.live)
        if dateext:
            day = 20240105 + len([f for f in self.files if "-202401" in f.path])
            names = [s.live + "-%d" % day]
        else:
            names = ["%s.%d" % (s.live, i) for i in range(1, rotate + 1)]
            oldest = self.file_at(names[-1])
            if oldest is not None:
                lost = self.remove(oldest, "deleted by logrotate while unread")
                self.say("  rm %s%s" % (os.path.relpath(oldest.path, self.tmp),
                                         " (%d records unread)" % len(lost) if lost else ""))
            for i in range(rotate - 1, 0, -1):
                f = self.file_at(names[i - 1])
                if f is not None:
                    os.rename(f.path, names[i])
                    f.path = names[i]
        dest = names[0]
        self.copy_file(s.live, dest)
        c = FileObj(dest, s.name, s.cur.fields, os.stat(dest).st_ino)
        c.recs, c.size = list(s.cur.recs), s.cur.size
        self.files.append(c)
        os.ftruncate(s.fd, 0)
        s.cur.recs = []
        s.cur.size = 0
        s.qsize = 0
        if s.next_fields:
            # the writer's next file: the truncated one starts again
            s.fields, s.next_fields = s.next_fields, None
            s.cur.fields = tuple(s.fields)
        s.queue_header()
        s.flush()
        self.say("  -> %s (copy, inode %d), live truncated" % (os.path.relpath(dest, self.tmp),
                                                                c.ino))

    def _pick_old(self, s, gz):
        arch = self.archives(s, gz=gz)
        return arch[0] if arch else None

    def op_delete_archive(self, source=0):
        s = self.sources[source]
        f = self._pick_old(s, None)
        if f is None:
            self.say("  (no archive)")
            return
        self.wait_delivered_file(f)
        lost = self.remove(f, "deleted (delete-after) while unread")
        self.say("  rm %s%s" % (os.path.relpath(f.path, self.tmp),
                                 " (%d records unread)" % len(lost) if lost else ""))

    def op_gzip_archive(self, source=0):
        s = self.sources[source]
        f = self._pick_old(s, False)
        if f is None:
            self.say("  (no archive)")
            return
        self.wait_delivered_file(f)
        if f.path in self.locked:
            os.chmod(f.path, 0o644)
            self.locked.remove(f.path)
        gzp = f.path + ".gz"
        with open(f.path, "rb") as fi:
            data = fi.read()
        ino0 = os.stat(f.path).st_ino
        self.create_file(gzp)
        with open(gzp, "wb") as fo:
            with gzip.GzipFile(fileobj=fo, mode="wb", mtime=0, filename="") as gz:
                gz.write(data)
        g = FileObj(gzp, f.source, f.fields, os.stat(gzp).st_ino)
        g.recs, g.size, g.gz = list(f.recs), f.size, True
        os.unlink(f.path)
        f.gone = True
        self.freed.append(ino0)
        self.files.append(g)
        c = self.accepted_counts()
        unread = [n for n in g.numbers() if not c.get(n)]
        if unread and self.alive() and self.backend.running and not self.backend_delay \
                and not self.locked:
            self.stuck.update(unread)
        for n in unread:
            self.excused.setdefault(n, "gzipped while unread")
        self.say("  gzip %s%s" % (os.path.relpath(f.path, self.tmp),
                                   " (%d records unread)" % len(unread) if unread else ""))

    def op_header_change(self, source=0):
        s = self.sources[source]
        rest = [x for x in HEADER_FIELDS if x != "type"]
        self.rng.shuffle(rest)
        s.next_fields = ["type"] + rest
        self.say("  next header: %s" % ",".join(s.next_fields))

    def _lock(self, path):
        if path and os.path.exists(path) and path not in self.locked:
            os.chmod(path, 0)
            self.locked.append(path)
            self.say("  chmod 000 %s" % os.path.relpath(path, self.tmp))

    def op_chmod_live(self, source=0):
        s = self.sources[source]
        if not os.path.exists(s.live):
            s.append(1)
        self._lock(s.live)

    def op_chmod_archive(self, source=0):
        arch = self.archives(self.sources[source], gz=False)
        if arch:
            self._lock(arch[-1].path)

    def op_chmod_dir(self, source=0):
        self._lock(self.sources[source].archive_dir)

    def op_unlock(self):
        for p in self.locked:
            # a locked file may have been renamed since: find it by name now
            if os.path.exists(p):
                os.chmod(p, 0o755 if os.path.isdir(p) else 0o644)
        # files locked and then renamed (the live file rotated)
        for f in self.files:
            if not f.gone and os.path.exists(f.path) and os.stat(f.path).st_mode & 0o777 == 0:
                os.chmod(f.path, 0o644)
        for p in self.locked:
            if os.path.exists(p):
                os.utime(p, None)  # a nudge (the retry backoff may be long)
        self.locked = []

    def op_inode_reuse(self):
        self.reuse_next = True

    def op_outage(self):
        if not self.backend.running:
            return
        t = time.monotonic()
        self.backend.stop()
        self.outages.append(Outage(t, time.monotonic(), len(self.ops_done)))

    def backend_up(self):
        if self.backend.running:
            return
        if self.outages and self.outages[-1].committed is None:
            # nothing can be acknowledged while it is down: what the
            # offsets cover now is what the daemon knew delivered
            self.outages[-1].committed = self.committed_numbers(gone_too=True)
        self.backend.start()

    def op_up(self):
        self.backend_up()

    def op_pause(self, burst=BURST, source=0):
        self.backend.set_delay_ms(DELAY_PAUSED_MS)
        self.backend_delay = DELAY_PAUSED_MS
        self.sources[source].append(burst)

    def op_resume(self):
        self.backend.set_delay_ms(0)
        self.backend_delay = 0

    def op_create_live(self, source=0):
        """The writer opens its next live file at once: the header alone."""
        s = self.sources[source]
        s.open_live()
        s.flush()

    def op_slow(self, ms=800):
        """Answers delayed (batches stay in flight), not a full window."""
        self.backend.set_delay_ms(ms)
        self.backend_delay = ms

    def op_sleep(self, s=1.0):
        time.sleep(s)

    def do(self, op):
        op = dict(op)
        name = op.pop("op")
        self.ops_done.append(describe(dict(op, op=name)))
        self.op_times.append((time.monotonic(), self.ops_done[-1]))
        self.say("op %d: %s" % (len(self.ops_done), self.ops_done[-1]))
        getattr(self, "op_" + name.replace("-", "_"))(**op)
        self.check_alive(self.ops_done[-1])

    # -- the end

    def restore(self):
        """Permissions back, the backend up and quick, every record
        complete, the daemon running."""
        self.op_unlock()
        self.backend_up()
        self.backend.set_delay_ms(0)
        for s in self.sources:
            s.flush()
        if self.proc is None:
            self.dstart()

    def required(self):
        return sorted(n for n in self.complete if n not in self.excused)

    def wait_settled(self, timeout=20.0):
        req = set(self.required())
        t0 = time.monotonic()

        def done():
            self.check_alive("the final wait")
            return req <= set(self.accepted_counts())
        ok = poll_until(done, timeout, 0.1)
        # quiet: nothing more arrives for a while (re-reads show up)
        last = [-1, time.monotonic()]

        def quiet():
            k = self.backend.stats()["events_accepted"]
            if k != last[0]:
                last[0], last[1] = k, time.monotonic()
            return time.monotonic() - last[1] >= QUIET_S + 0.5
        poll_until(quiet, 15, 0.1)
        return ok, time.monotonic() - t0

    def finish_run(self, timeout=20.0, final_restart=True):
        """Restore, wait, stop; then a clean restart must resend nothing."""
        self.restore()
        ok, t = self.wait_settled(timeout)
        self.say("settled in %.1f s (%s)" % (t, "all delivered" if ok else "NOT all delivered"))
        self.dstop()
        self.settle()
        before = self.accepted_counts()
        if final_restart:
            k0 = len(self.backend.accepted_events())
            self.dstart()
            time.sleep(QUIET_S + 0.5)
            self.check_alive("the last restart")
            self.dstop()
            self.settle()
            after = [rcpt_number(ev.get("rcpt")) for ev in self.backend.accepted_events()[k0:]]
            again = [n for n in after if before.get(n)]
            if again:
                self.fail("resend", "a clean restart at the end resent %d events: u%s" % (
                    len(again), ranges(again)[:200]))
            late = sorted(n for n in set(after) if n is not None and not before.get(n)
                          and n in self.complete and n not in self.excused)
            if late:
                self.fail("stall", "%d records delivered only after a restart at the end "
                          "(not within %.0f s while running): u%s" % (
                              len(late), timeout, ranges(late)[:200]))

    def outage_allowance(self, requests):
        """Records an outage excuses (a Counter: how many more acceptances).
        An acceptance at an outage is a request's, accepted at most
        OUTAGE_WINDOW_S before the stop began or still being answered
        (arrived before the stop ended): the daemon may not have read its
        answer. Each excuses one later acceptance of its records, by a
        request that came after the stop began, each such resend counted
        for one acceptance at an outage only; not for records the offsets
        saved before the backend came back covered (the daemon read that
        answer)."""
        acc = [(r, accepted_numbers(r)) for r in requests
               if r.accepted and r.t0 is not None and r.t1 is not None]
        by_n = collections.defaultdict(list)
        for r, nums in acc:
            for n in nums:
                by_n[n].append(r)
        # (n, request) at an outage -> the earliest time a resend may begin
        at = {}
        for o in self.outages:
            for r, nums in acc:
                if not (r.t0 <= o.t_stopped and r.t1 >= o.t_stop - OUTAGE_WINDOW_S):
                    continue
                for n in nums:
                    if o.committed and n in o.committed:
                        continue
                    key = (n, r.n)
                    at[key] = min(at.get(key, o.t_stop), o.t_stop)
        out = collections.Counter()
        for n in sorted({k[0] for k in at}):
            rs = sorted(by_n[n], key=lambda r: r.t0)
            used = set()
            xs = sorted(((max(at[(n, r.n)], r.t0), r) for r in rs if (n, r.n) in at),
                        key=lambda x: (x[0], x[1].n))
            for after, x in xs:
                for y in rs:
                    if y is not x and y.n not in used and y.t0 > x.t0 and y.t0 >= after:
                        used.add(y.n)
                        out[n] += 1
                        break
        return out

    def dup_detail(self, numbers, requests, k=6):
        """Where the repeated records went: records grouped by the requests
        that carried them (at most k groups), each request with its times,
        whether it carried a record twice, and the operation before it."""
        carried = collections.defaultdict(list)
        for r in requests:
            if not r.accepted or r.t0 is None:
                continue
            c = collections.Counter()
            for i, e in enumerate(r.events):
                if isinstance(e, dict) and i not in r.refused:
                    c[rcpt_number(e.get("rcpt"))] += 1
            for n in numbers:
                if c.get(n):
                    carried[n].append((r, c[n]))
        groups = collections.OrderedDict()
        for n in sorted(numbers):
            key = tuple(r.n for r, _ in carried[n])
            groups.setdefault(key, []).append(n)
        out = []
        for key, ns in list(groups.items())[:k]:
            reqs = []
            for r, times in carried[ns[0]]:
                before = [i for i, (t, _) in enumerate(self.op_times) if t <= r.t0]
                op = ("op %d %s" % (before[-1] + 1, self.op_times[before[-1]][1])) if before \
                    else "-"
                reqs.append("#%d conn %d at %.2f-%s s%s after %s" % (
                    r.n, r.conn, r.t0 - self.t_begin,
                    "?" if r.t1 is None else "%.2f" % (r.t1 - self.t_begin),
                    " (%d times in it)" % times if times > 1 else "", op))
            out.append("u%s: %s" % (ranges(ns)[:60], "; ".join(reqs)))
        return out

    def judge(self, events=None, requests=None):
        """The oracle over the accepted events (or `events`, with the
        backend's request log or `requests` for the outages): a summary
        dict; problems are added to self.failures."""
        events = self.backend.accepted_events() if events is None else events
        requests = self.backend.requests() if requests is None else requests
        counts = collections.Counter()
        order = []
        bad_fields, strays, wrong_src = [], [], []
        for ev in events:
            n = rcpt_number(ev.get("rcpt"))
            if n is None or n not in self.rec_source:
                strays.append(ev)
                continue
            counts[n] += 1
            order.append(n)
            want = record_fields(n)
            diffs = []
            for col, val in want.items():
                key = "logType" if col == "type" else col
                if ev.get(key) != val:
                    diffs.append("%s=%.60r want %.60r" % (key, ev.get(key), val))
            msg = encode(n, self.rec_fields[n])[:-2].decode()
            if ev.get("message") != msg:
                diffs.append("message=%.80r want %.80r" % (ev.get("message"), msg))
            if diffs and len(bad_fields) < 20:
                bad_fields.append("u%d: %s" % (n, "; ".join(diffs)))
            src = self.source_of_path(ev.get("path"))
            if src != self.rec_source[n]:
                wrong_src.append("u%d of %s delivered with path %s (source %s)" % (
                    n, self.rec_source[n], ev.get("path"), src))
        req = self.required()
        lost = [n for n in req if not counts.get(n)]
        excused = sorted(n for n in self.excused if not counts.get(n))
        allowed_kill = collections.Counter()
        for k in self.kills:
            for n, c in k.accepted.items():
                if c and n not in k.committed:
                    allowed_kill[n] += 1
        allowed_out = self.outage_allowance(requests)
        allowed = allowed_kill + allowed_out
        dup_total = sum(c - 1 for c in counts.values() if c > 1)
        unexcused = sorted(n for n, c in counts.items() if c > 1 + allowed[n])
        over_twice = sorted(n for n, c in counts.items() if c > 2 and c > 1 + allowed[n])
        kill_dupes = sum(min(c - 1, allowed_kill[n]) for n, c in counts.items() if c > 1)
        outage_dupes = sum(min(c - 1, allowed[n]) - min(c - 1, allowed_kill[n])
                           for n, c in counts.items() if c > 1)
        if lost:
            where = collections.defaultdict(list)
            for n in lost:
                hs = [os.path.relpath(f.path, self.tmp) for f in self.files
                      if any(r[0] == n for r in f.recs)]
                where[" / ".join(hs) or "?"].append(n)
            self.fail("lost", "%d of %d records never delivered: u%s; in %s" % (
                len(lost), len(req), ranges(lost)[:300],
                "; ".join("%s: u%s" % (k, ranges(v)[:80]) for k, v in list(where.items())[:6])))
        if unexcused:
            self.fail("duplicate", "%d records delivered more often than kills and outages excuse "
                      "(%d extra events): u%s" % (
                          len(unexcused), sum(counts[n] - 1 - allowed[n] for n in unexcused),
                          ranges(unexcused)[:300]))
        if over_twice:
            self.fail("over-twice", "%d records delivered more than twice: u%s" % (
                len(over_twice), ranges(over_twice)[:200]))
        if bad_fields:
            self.fail("fields", "%d events with wrong fields: %s" % (len(bad_fields),
                                                                     " | ".join(bad_fields[:3])))
        if wrong_src:
            self.fail("source", "%d events under another source: %s" % (
                len(wrong_src), " | ".join(wrong_src[:3])))
        if strays:
            self.fail("stray", "%d events that are no record written: %.200r" % (
                len(strays), strays[:2]))
        return {"records": len(self.complete), "required": len(req), "lost": len(lost),
                "lost_numbers": ranges(lost)[:400], "deleted_unread": len(excused),
                "unread_stuck": len([n for n in excused if n in self.stuck]),
                "dup_events": dup_total, "dup_after_kill": kill_dupes,
                "dup_after_outage": outage_dupes, "outages": len(self.outages),
                "dup_unexcused": sum(counts[n] - 1 - allowed[n] for n in unexcused),
                "dup_numbers": ranges(unexcused)[:400], "kills": len(self.kills),
                "dup_detail": self.dup_detail(unexcused, requests) if unexcused else [],
                "crashes": self.crashes, "reuse_hits": self.reuse_hits,
                "order": order}

    def timeline(self):
        """Operations, backend requests and outages on one clock (seconds
        since the run began), and the daemon runs: lines for logs/timeline.txt."""
        t0 = self.t_begin
        rows = [(t, "op      %s" % op) for t, op in self.op_times]
        for o in self.outages:
            rows.append((o.t_stop, "outage  stop began (op %d), ended at %.3f; offsets at up "
                         "cover %s records" % (o.op_index, o.t_stopped - t0,
                                               "?" if o.committed is None else len(o.committed))))
        for r in self.backend.requests():
            nums = sorted(n for n in (rcpt_number(e.get("rcpt")) for e in r.events
                                      if isinstance(e, dict)) if n is not None)
            rows.append((r.t0 if r.t0 is not None else t0,
                         "request #%d conn %d %s events u%s -> %s%s, answered at %s" % (
                             r.n, r.conn, len(nums), ranges(nums)[:120],
                             r.status if r.status is not None else r.action,
                             " accepted" if r.accepted else "",
                             "-" if r.t1 is None else "%.3f" % (r.t1 - t0))))
        for t, line in self._log_times:
            rows.append((t, "daemon  %s" % line))
        rows.sort(key=lambda x: x[0])
        return ["%8.3f %s" % (t - t0, text) for t, text in rows]

    def _watch_logs(self):
        """(With --keep) stamp the daemon's stderr lines as they appear."""
        seen = {}
        while not self._log_stop:
            for path, _ in list(self.runs):
                try:
                    with open(path, "rb") as fh:
                        fh.seek(seen.get(path, 0))
                        data = fh.read()
                except OSError:
                    continue
                k = data.rfind(b"\n") + 1
                if k:
                    seen[path] = seen.get(path, 0) + k
                    now = time.monotonic()
                    run = os.path.basename(path)
                    for ln in data[:k].decode("utf-8", "replace").splitlines():
                        if not ln.startswith("debug look"):
                            self._log_times.append((now, "%s: %s" % (
                                run, ln.replace(self.tmp, "TMP"))))
            time.sleep(0.02)

    def cleanup(self):
        if self.keep:
            self._log_stop = True
            if self._log_thread is not None:
                self._log_thread.join(2)
            try:
                with open(os.path.join(self.logs, "timeline.txt"), "w") as fh:
                    fh.write("\n".join(self.timeline()) + "\n")
            except Exception:
                traceback.print_exc()
        for s in self.sources:
            if s.fd is not None:
                os.close(s.fd)
                s.fd = None
        for p in self.locked:
            if os.path.exists(p):
                os.chmod(p, 0o755)
        super().cleanup()

    def source_of_path(self, path):
        if not isinstance(path, str):
            return None
        base = os.path.basename(path)
        best = None
        for s in self.sources:
            st = re.escape(s.stem)
            pat = (r"^%s(\.csv|-\d{4}-\d{2}-\d{2}-\d{4}\.csv|\.csv\.\d+|\.csv-\d{8})(\.gz)?$"
                   % st)
            if re.match(pat, base):
                best = s.name
        return best


def describe(op):
    args = " ".join("%s=%s" % (k, v) for k, v in sorted(op.items()) if k != "op")
    return op["op"] + (" " + args if args else "")


def parse_ops(text):
    """describe()'s lines joined by ';' back into operations (--run)."""
    ops = []
    for part in text.split(";"):
        words = part.split()
        if not words:
            continue
        op = {"op": words[0]}
        for w in words[1:]:
            k, _, v = w.partition("=")
            op[k] = ast.literal_eval(v)
        ops.append(op)
    return ops


# ------------------------------------------------------------------ plans

WEIGHTS = [
    ("append", 30), ("moveto-rename", 8), ("moveto-copy", 5), ("copytruncate", 5),
    ("delete-archive", 4), ("gzip-archive", 4), ("header-change", 2), ("chmod-live", 2),
    ("chmod-archive", 2), ("chmod-dir", 2), ("inode-reuse", 3), ("restart", 3),
    ("kill9", 3), ("sighup", 2), ("stop", 3), ("outage", 2), ("pause", 2), ("sleep", 3),
    ("create-live", 2), ("slow", 2),
]


def plan(seed):
    """The operations of seed's sequence (a pure function of the seed)."""
    rng = random.Random(seed)
    n_ops = rng.randint(6, 20)
    ops = []
    later = []  # (index at which to insert, op)
    if rng.random() < 0.2:
        ops.append({"op": "append", "k": rng.randint(5, 60)})  # written before the first start
    ops.append({"op": "start"})
    rotate = rng.randint(1, 3)
    pause_used = False
    down = False
    names = [w[0] for w in WEIGHTS]
    weights = [w[1] for w in WEIGHTS]
    while len(ops) < n_ops + 1:
        due = sorted([x for x in later if x[0] <= len(ops)], key=lambda x: x[0])
        later = [x for x in later if x[0] > len(ops)]
        for _, op in due:
            ops.append(op)
            if op["op"] == "start":
                down = False
        name = rng.choices(names, weights)[0]
        op = {"op": name}
        if name == "append":
            op["k"] = rng.randint(5, 60)
            op["cut"] = rng.random() < 0.4
        elif name == "moveto-rename":
            op["create_now"] = rng.random() < 0.5
        elif name == "moveto-copy":
            op["restart_between"] = rng.random() < 0.3 and not down
        elif name == "copytruncate":
            op["rotate"] = rotate
        elif name == "sleep":
            op["s"] = round(rng.uniform(0.3, 3.0), 1)
        elif name in ("chmod-live", "chmod-archive", "chmod-dir"):
            later.append((len(ops) + 1 + rng.randint(1, 4), {"op": "unlock"}))
        elif name == "stop":
            if down:
                continue
            down = True
            later.append((len(ops) + 1 + rng.randint(1, 4), {"op": "start"}))
        elif name in ("restart", "kill9", "sighup") and down:
            continue
        elif name == "outage":
            later.append((len(ops) + 1 + rng.randint(1, 3), {"op": "up"}))
        elif name == "slow":
            op["ms"] = rng.choice([300, 800, 1500])
            later.append((len(ops) + 1 + rng.randint(1, 3), {"op": "resume"}))
        elif name == "pause":
            if pause_used:
                continue
            pause_used = True
            later.append((len(ops) + 1 + rng.randint(1, 3), {"op": "resume"}))
        ops.append(op)
    for _, op in sorted(later, key=lambda x: x[0]):
        ops.append(op)
    return ops


def run_seed(binary, seed, keep=False, verbose=True, ops=None, timeout=20.0):
    """Run one sequence; a result dict (failures as (kind, text) pairs)."""
    ops = plan(seed) if ops is None else ops
    r = Run(binary, seed=seed, name="s%d" % seed, keep=keep, verbose=verbose)
    t0 = time.monotonic()
    res = {"seed": seed, "ops": [describe(o) for o in ops]}
    try:
        res["binary_mtime"] = round(os.stat(binary).st_mtime)  # a binary replaced meanwhile
    except OSError:
        pass
    try:
        if verbose:
            print("seed %d in %s" % (seed, r.tmp), flush=True)
        for op in ops:
            r.do(op)
            time.sleep(r.rng.uniform(0, 0.25))
        r.finish_run(timeout)
        res.update(r.judge())
    except Exception:
        r.fail("exception", traceback.format_exc().splitlines()[-3:])
    finally:
        res["failures"] = r.failures
        res["log"] = r.log_lines(None, 10) if r.failures else []
        r.cleanup()
    res.pop("order", None)
    res["seconds"] = round(time.monotonic() - t0, 1)
    res["ok"] = not res["failures"]
    return res


def summary_line(res):
    return ("seed %d: %s in %.1f s; %s records, lost %s, deleted unread %s (stuck %s), dup events %s "
            "(after kills %s, after outages %s, unexcused %s), kills %s, crashes %s%s" % (
                res["seed"], "ok" if res["ok"] else "FAIL", res["seconds"],
                res.get("records"), res.get("lost"), res.get("deleted_unread"),
                res.get("unread_stuck"),
                res.get("dup_events"), res.get("dup_after_kill"), res.get("dup_after_outage"),
                res.get("dup_unexcused"),
                res.get("kills"), res.get("crashes"),
                "" if res["ok"] else " [" + ", ".join(sorted({k for k, _ in res["failures"]}))
                + "]"))


def run_many(binary, seeds, jobs, deadline=None, on_result=None):
    """Each seed in a child process (`--seed N --json`), jobs at a time."""
    me = os.path.abspath(__file__)
    results = []

    def one(seed):
        if deadline is not None and time.monotonic() > deadline:
            return None
        p = subprocess.run([sys.executable, me, binary, "--seed", str(seed), "--json"],
                           capture_output=True, timeout=600)
        for line in p.stdout.decode("utf-8", "replace").splitlines()[::-1]:
            if line.startswith("{"):
                return json.loads(line)
        return {"seed": seed, "ok": False, "seconds": 0,
                "failures": [("runner", "no result; status %s: %s" % (
                    p.returncode, p.stderr.decode("utf-8", "replace")[-400:]))], "ops": []}
    with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
        futs = [ex.submit(one, s) for s in seeds]
        for f in concurrent.futures.as_completed(futs):
            res = f.result()
            if res is None:
                continue
            results.append(res)
            if on_result:
                on_result(res)
    return sorted(results, key=lambda r: r["seed"])


def self_check(binary, verbose=True):
    """Run a short plain sequence, then feed the oracle tampered copies of
    what the backend accepted: each planted fault must be reported (as a
    change against the untampered judgement, so that a daemon bug in the
    base run does not mask or fake it)."""
    ops = [{"op": "start"}, {"op": "append", "k": 40}, {"op": "sleep", "s": 0.5},
           {"op": "moveto-rename", "create_now": True}, {"op": "append", "k": 30},
           {"op": "sleep", "s": 0.5}, {"op": "append", "k": 20}]
    r = Run(binary, seed=1, name="selfcheck", verbose=verbose)
    out = []
    try:
        for op in ops:
            r.do(op)
        r.finish_run(final_restart=False)
        events = r.backend.accepted_events()
        base = r.judge(events)
        base_fail = list(r.failures)
        if base_fail:
            print("info - self-check: the base run itself fails: %s" % str(base_fail)[:300])
        victim = events[len(events) // 2]
        vn = rcpt_number(victim["rcpt"])

        def judged(evs, reqs=None):
            r.failures = []
            res = r.judge(evs, reqs)
            return res, r.failures

        def names_victim(fails, kind, needle=None):
            needle = needle or ("u%d" % vn)
            return any(k == kind and needle in str(t) for k, t in fails)

        res, f = judged([e for e in events if e is not victim])
        out.append(("a dropped record is reported lost",
                    res["lost"] == base["lost"] + 1 and names_victim(f, "lost"), str(f)[:300]))
        res, f = judged(events + [victim])
        out.append(("a record sent twice without a kill is reported",
                    res["dup_unexcused"] == base["dup_unexcused"] + 1, str(f)[:300]))
        bad = dict(victim, dsnStatus="4.0.0 (changed)")
        res, f = judged([bad if e is victim else e for e in events])
        out.append(("a wrong field is reported", names_victim(f, "fields"), str(f)[:300]))
        bad = dict(victim, message=victim.get("message", "") + "x")
        res, f = judged([bad if e is victim else e for e in events])
        out.append(("a wrong message is reported", names_victim(f, "fields"), str(f)[:300]))
        bad = dict(victim, path=os.path.join(r.pmta, "other.csv"))
        res, f = judged([bad if e is victim else e for e in events])
        out.append(("a record under another source is reported", names_victim(f, "source"),
                    str(f)[:300]))
        res, f = judged(events + [dict(victim, rcpt="u999999@example.com")])
        out.append(("an event for no record written is reported",
                    names_victim(f, "stray", "u999999"), str(f)[:300]))
        # a kill excuses one resend of what was not committed, not more
        r.kills = [Kill(collections.Counter({vn: 1}), set(), 0)]
        res, f = judged(events + [victim])
        out.append(("a resend after a kill of an uncommitted record is excused",
                    res["dup_unexcused"] == base["dup_unexcused"], str(f)[:300]))
        res, f = judged(events + [victim, victim])
        out.append(("a second resend after one kill is reported",
                    res["dup_unexcused"] == base["dup_unexcused"] + 1, str(f)[:300]))
        r.kills = [Kill(collections.Counter({vn: 1}), {vn}, 0)]
        res, f = judged(events + [victim])
        out.append(("a resend of a record committed at the kill is reported",
                    res["dup_unexcused"] == base["dup_unexcused"] + 1, str(f)[:300]))
        # an outage excuses one resend of what was accepted just before it
        r.kills = []
        reqs = r.backend.requests()
        x = [q for q in reqs if vn in accepted_numbers(q)][0]

        def resend(t0, k=0):
            q = Request()
            q.n, q.t0, q.t1 = 100000 + k, t0, t0 + 0.001
            q.events, q.accepted, q.status = [victim], True, 200
            return q

        def outage(t_stop, committed=()):
            o = Outage(t_stop, t_stop + 0.05, 0)
            o.committed = set(committed)
            return [o]
        r.outages = outage(x.t1 + 0.3)
        res, f = judged(events + [victim], reqs + [resend(x.t1 + 2)])
        out.append(("a resend after an outage of a record accepted just before it is excused",
                    res["dup_unexcused"] == base["dup_unexcused"], str(f)[:300]))
        r.outages = outage(x.t0 - 0.01)
        res, f = judged(events + [victim], reqs + [resend(x.t1 + 2)])
        out.append(("... and of one accepted while the backend was stopping",
                    res["dup_unexcused"] == base["dup_unexcused"], str(f)[:300]))
        r.outages = outage(x.t1 + OUTAGE_WINDOW_S + 1.0)
        res, f = judged(events + [victim], reqs + [resend(x.t1 + OUTAGE_WINDOW_S + 2.0)])
        out.append(("a resend with no outage near its first acceptance is reported",
                    res["dup_unexcused"] == base["dup_unexcused"] + 1, str(f)[:300]))
        r.outages = outage(x.t1 + 0.3)
        res, f = judged(events + [victim], reqs + [resend(x.t1 + 0.1)])
        out.append(("a repeat before the outage is reported",
                    res["dup_unexcused"] == base["dup_unexcused"] + 1, str(f)[:300]))
        res, f = judged(events + [victim, victim],
                        reqs + [resend(x.t1 + 2), resend(x.t1 + 3, 1)])
        out.append(("a second resend after one outage is reported",
                    res["dup_unexcused"] == base["dup_unexcused"] + 1
                    and names_victim(f, "over-twice"), str(f)[:300]))
        r.outages = outage(x.t1 + 0.3, {vn})
        res, f = judged(events + [victim], reqs + [resend(x.t1 + 2)])
        out.append(("a resend after an outage of a record the offsets covered is reported",
                    res["dup_unexcused"] == base["dup_unexcused"] + 1, str(f)[:300]))
        r.outages = []
        out.append(("the base run had its records", base["records"] == 90,
                    str(base["records"])))
    finally:
        r.cleanup()
    return out


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--count", type=int)
    ap.add_argument("--first", type=int, default=1)
    ap.add_argument("--long", type=float)
    ap.add_argument("--jobs", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--ops", action="store_true")
    ap.add_argument("--run", help="run these operations (as printed: 'start; append k=5; "
                    "stop') instead of the seed's")
    ap.add_argument("--self-check", action="store_true")
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--results", help="append each sequence's result to this file "
                    "(one JSON line each)")
    a = ap.parse_args(argv[1:])
    binary = os.path.abspath(a.binary)
    if a.self_check:
        bad = 0
        for name, ok, d in self_check(binary):
            print(("ok - " if ok else "FAIL - ") + name + ("" if ok else ": " + d))
            bad += not ok
        return 1 if bad else 0
    if a.seed is not None:
        if a.ops:
            for i, op in enumerate(plan(a.seed), 1):
                print("op %d: %s" % (i, describe(op)))
            return 0
        res = run_seed(binary, a.seed, keep=a.keep, verbose=not a.json, timeout=a.timeout,
                       ops=parse_ops(a.run) if a.run else None)
        if a.json:
            print(json.dumps(res))
        else:
            for kind, text in res["failures"]:
                print("FAIL %s: %s" % (kind, text))
            for ln in res.get("dup_detail") or []:
                print("  repeated: " + ln)
            for ln in res["log"]:
                print("  log: " + ln)
            print(summary_line(res))
        return 0 if res["ok"] else 1
    deadline = None
    if a.long:
        deadline = time.monotonic() + a.long
        seeds = [random.randrange(1, 10 ** 9) for _ in range(100000)]
    else:
        seeds = list(range(a.first, a.first + (a.count or 10)))
    t0 = time.monotonic()

    def show(res):
        print(summary_line(res), flush=True)
        if a.results:
            with open(a.results, "a") as fh:
                fh.write(json.dumps(res) + "\n")
        if not res["ok"]:
            for kind, text in res["failures"][:4]:
                print("    %s: %s" % (kind, str(text)[:400]), flush=True)
    results = run_many(binary, seeds, a.jobs, deadline, show)
    failing = [r["seed"] for r in results if not r["ok"]]
    print("%d sequences in %.0f s, %d failed%s" % (
        len(results), time.monotonic() - t0, len(failing),
        (": seeds " + " ".join(map(str, failing))) if failing else ""))
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
