#!/usr/bin/python3
"""Scenario tests of the tailer's bookkeeping: the file it owes is never lost,
never read twice, under the rotations PowerMTA and logrotate really do.

    python3 tests/py/test_bookkeeping.py PMTATAIL_BINARY

Each scenario gets its own temporary directory (pmta/bounces.csv, its archive
directory pmta/archive, state/, logs/), a fake Oempro backend on 127.0.0.1
(backend.py, in this process) and the real daemon (`PMTATAIL -c CONF run`)
on real files and inotify. Records are pmta_sim's: record N has rcpt
uN@example.com and fields that are a function of N alone. Every scenario ends
with every record the backend accepted checked against record N's fields and
counted: each written record exactly once.

  header_only_inode_reuse  a header-only file deleted, its inode reused by the
                           next file, which fills and rotates (while running
                           and frozen, and while stopped): read, not skipped
  header_with_offset       a second header line between the committed offset
                           and the read position, kill -9: the gap is parsed
                           with the header of its offset (fields not swapped);
                           replay's progress file the same
  moveto_other_fs          move-to as copy + delete (a new inode), running and
                           stopped: no file read twice
  unreadable_file          rotated files of mode 0600 owned by root, the daemon
                           as the user nobody: kept, named, `status` says
                           "blocked: Permission denied" (exit 1), the metric
                           counts them, restart keeps them, chmod reads them
  descriptors              30 rotated files waiting, RLIMIT_NOFILE 24: all
                           delivered, never more than a few files open; then a
                           limit too low to open them: "out of file
                           descriptors", nothing lost after a restart
  table_full               offsets.json at 4096 entries and 4200 archived files:
                           the live file is followed, a new archived file read
  copied_vs_same           a different file starting like a tracked one does
                           not take its offset; copy-and-truncate with the copy
                           named bounces.csv.1 and bounces.csv-DATE
  fifo_live_path           a FIFO at the live path is refused with a message

Environment: PMTATAIL_BOOK_ONLY (comma-separated scenario names),
PMTATAIL_BOOK_KEEP (keep the temporary directories). Standard library only.
"""

import collections
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from backend import Backend  # noqa: E402
from harness import Daemon, check, finish, info, poll_until, read_offsets  # noqa: E402
from pmta_sim import HEADER, filtered_bytes, rcpt_number, record_bytes  # noqa: E402
from pmta_sim import record_fields  # noqa: E402

ONLY = [s for s in os.environ.get("PMTATAIL_BOOK_ONLY", "").split(",") if s]
KEEP = bool(os.environ.get("PMTATAIL_BOOK_KEEP"))
NOBODY = 65534
BINARY = None


def records(first, last):
    return b"".join(record_bytes(n) for n in range(first, last + 1))


def write(path, data, mode="ab"):
    with open(path, mode) as fh:
        fh.write(data)


def create_on_inode(path, ino, tries=300):
    """Create an empty file at path on inode number ino (freed just before):
    ext4 hands a freed inode out again at once. True when it got it."""
    scratch = []
    try:
        for i in range(tries):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            got = os.fstat(fd).st_ino == ino
            os.close(fd)
            if got:
                return True
            aside = "%s.scratch-%d" % (path, i)
            os.rename(path, aside)
            scratch.append(aside)
    finally:
        for p in scratch:
            os.unlink(p)
    return False


class Env(Daemon):
    """A temporary directory, a fake backend, a configuration, daemon runs."""

    STDOUT_FILE = False

    def __init__(self, name, batch=50, user=None, metrics=False, extra_output=""):
        super().__init__(BINARY, name, "pmtatail-book-%s-" % name, KEEP)
        self.metrics = os.path.join(self.tmp, "metrics", "pmtatail.prom") if metrics else None
        self.makedirs(self.pmta, self.archive, self.logs, self.state)
        if self.metrics:
            os.makedirs(os.path.dirname(self.metrics))
        self.user = user
        self.backend = Backend(port=Backend.free_port())
        self.backend.start()
        # arrays of `batch` events: the scenarios count in batches (and
        # sockets: one event per request would hold 16 connections)
        with open(self.conf, "w") as fh:
            fh.write("[source bounces]\npath = %s\narchive_dir = %s\nrecords = b, rb\n\n"
                     "[output]\nurl = %s\nformat = batch\nbatch_max_records = %d\nlinger_ms = 20\n%s\n"
                     "[state]\ndir = %s\n\n[log]\nlevel = debug\n"
                     % (self.live, self.archive, self.backend.url(), batch, extra_output,
                        self.state))
            if self.metrics:
                fh.write("\n[metrics]\ntextfile = %s\ninterval_s = 1\n" % self.metrics)
        if user is not None:
            # The daemon's user owns its state and may enter every directory.
            for root, dirs, files in os.walk(self.tmp):
                os.chown(root, user, user)
                os.chmod(root, 0o755)
                for f in files:
                    os.chown(os.path.join(root, f), user, user)
            os.chmod(self.state, 0o700)

    def start(self, nofile=None):
        """A run (as the Env's user, with at most nofile descriptors)."""
        user = self.user

        def pre():
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            if user is not None:
                os.setgroups([])
                os.setgid(user)
                os.setuid(user)
        return super().start(preexec_fn=pre)

    def stop(self, sig=signal.SIGTERM):
        return self.end_run(sig)

    def stderr(self, run=None):
        return super().stderr(run).replace(self.tmp, "TMP")

    def said(self, pattern, run=None):
        return [ln for ln in self.stderr(run).splitlines() if re.search(pattern, ln)]

    def tail(self, k=10):
        return self.stderr_tail(k)

    def status(self):
        rc, out, err = self.command("status", timeout=30)
        return rc, (out + err).replace(self.tmp, "TMP")

    def state_entries(self):
        doc = read_offsets(self.state)
        return (doc or {}).get("files") or []

    # -- what the backend accepted

    def accepted(self):
        """Counter of record numbers accepted, and the events whose fields
        are not record N's."""
        counts = collections.Counter()
        wrong = []
        for ev in self.backend.accepted_events():
            n = rcpt_number(ev.get("rcpt"))
            if n is None:
                wrong.append("no record number: %.200r" % (ev,))
                continue
            counts[n] += 1
            want = record_fields(n)
            for col in ("timeLogged", "rcpt", "dsnStatus", "bounceCat"):
                if ev.get(col) != want[col]:
                    wrong.append("u%d: %s=%.60r want %.60r" % (n, col, ev.get(col), want[col]))
        return counts, wrong

    def wait_for(self, numbers, timeout=20):
        want = set(numbers)

        def done():
            c, _ = self.accepted()
            return want <= set(c) or (self.proc is not None and self.proc.poll() is not None)
        poll_until(done, timeout, 0.05)
        c, _ = self.accepted()
        return want <= set(c)

    def verify(self, label, numbers):
        """Every record of `numbers` accepted exactly once, nothing else, and
        with its own fields."""
        c, wrong = self.accepted()
        want = set(numbers)
        missing = sorted(want - set(c))
        twice = sorted(n for n, k in c.items() if k > 1)
        extra = sorted(set(c) - want)
        check("%s: all %d records delivered" % (label, len(want)), not missing,
              ["missing u%s" % missing[:40]] + self.tail())
        check("%s: no record delivered twice" % label, not twice, ["twice: u%s" % twice[:40]])
        check("%s: no record that was not written" % label, not extra, ["u%s" % extra[:40]])
        check("%s: every event carries its record's fields" % label, not wrong, wrong[:6])



def wait_entry(e, pred, timeout=20):
    """Poll offsets.json until an entry satisfies pred; that entry."""
    found = [None]

    def look():
        for x in e.state_entries():
            if pred(x):
                found[0] = x
                return True
        return False
    poll_until(look, timeout, 0.05)
    return found[0]


_NAMES = {}


def archived(e, name):
    """The archive path for a rotated file the scenario calls `name`: as
    PowerMTA names it (bounces-YYYY-MM-DD-NNNN.csv, NNNN in the order the
    scenario first names them), unless it already is a rotated name
    (logrotate's bounces.csv.1, bounces.csv-DATE) or no file of the source."""
    if name.startswith("bounces-") and not re.match(r"bounces-\d{4}-\d\d-\d\d-\d{4}\.csv$", name):
        seqs = _NAMES.setdefault(e.tmp, {})
        if name not in seqs:
            seqs[name] = "bounces-2026-01-01-%04d.csv" % (len(seqs) + 1)
        name = seqs[name]
    return os.path.join(e.archive, name)


def arch_name(e, name):
    """The file name archived() gives `name`, for a log search."""
    return re.escape(os.path.basename(archived(e, name)))


SCENARIOS = []


def scenario(fn):
    SCENARIOS.append(fn)
    return fn


# -------------------------------------------------------------- case 1


def header_only_cycle(e, tag, first):
    """Live file header-only H, finished in the archive; returns H's path."""
    h = archived(e, "bounces-%s-H.csv" % tag)
    os.rename(e.live, h)
    write(e.live, HEADER, "wb")  # the next live file: H is superseded
    ent = wait_entry(e, lambda x: x["path"] == h and x["finished"])
    ok = ent is not None
    info("case 1 %s: %s" % (tag, json.dumps(ent)))
    check("case 1 %s: the header-only file is finished in the offsets" % tag, ok,
          [json.dumps(e.state_entries())[:600]] + e.tail())
    return h


@scenario
def header_only_inode_reuse(e):
    """A header-only file deleted (delete-after), its inode taken by the next
    file, which fills and rotates: read, not taken for the finished one."""
    write(e.live, HEADER + records(1, 5), "wb")
    e.start()
    check("case 1: daemon running", e.alive(), e.tail())
    e.wait_for(range(1, 6))
    os.rename(e.live, archived(e, "bounces-a.csv"))
    write(e.live, HEADER, "wb")
    # -- while running, frozen across the cascade (the daemon misses N)
    time.sleep(2.5)  # the rotated file is final once quiet (TAILER_QUIET_S)
    h = header_only_cycle(e, "run", 1)
    ino = os.stat(h).st_ino
    check("case 1 run: daemon frozen", e.freeze())
    os.unlink(h)  # delete-after
    os.rename(e.live, archived(e, "bounces-run-L.csv"))
    got = create_on_inode(e.live, ino)
    check("case 1 run: the next file got the deleted file's inode (ext4)", got)
    write(e.live, HEADER + records(6, 10))
    os.rename(e.live, archived(e, "bounces-run-N.csv"))
    write(e.live, HEADER + records(11, 12), "wb")
    e.thaw()
    e.wait_for(range(1, 13))
    e.verify("case 1 (header-only file, inode reused, running)", range(1, 13))
    # -- while stopped
    os.rename(e.live, archived(e, "bounces-run-M.csv"))
    write(e.live, HEADER, "wb")
    time.sleep(2.5)
    h = header_only_cycle(e, "stop", 13)
    ino = os.stat(h).st_ino
    check("case 1 stop: SIGTERM, exit 0", e.stop() == 0, e.tail())
    os.unlink(h)
    os.rename(e.live, archived(e, "bounces-stop-L.csv"))
    got = create_on_inode(e.live, ino)
    check("case 1 stop: the next file got the deleted file's inode (ext4)", got)
    write(e.live, HEADER + records(13, 17))
    os.rename(e.live, archived(e, "bounces-stop-N.csv"))
    write(e.live, HEADER + records(18, 19), "wb")
    e.start()
    e.wait_for(range(1, 20))
    e.verify("case 1 (header-only file, inode reused, stopped)", range(1, 20))
    check("case 1: the reused inode is named in the log",
          e.said(r"inode was reused file=TMP/pmta/archive/" + arch_name(e, "bounces-stop-H.csv")), e.tail())
    check("case 1: SIGTERM, exit 0", e.stop() == 0, e.tail())


# -------------------------------------------------------------- case 2

SWAPPED = ["type", "rcpt", "orig", "timeLogged", "dsnStatus", "dsnDiag", "bounceCat"]
HEADER2 = (",".join(SWAPPED) + "\r\n").encode()


@scenario
def header_with_offset(e):
    """A second header line (same columns, another order) between the
    committed offset and the read position, then kill -9."""
    data = HEADER + records(1, 5) + HEADER2 + b"".join(record_bytes(n, SWAPPED)
                                                         for n in range(6, 10))
    write(e.live, data, "wb")
    # the first batch (u1..u3) is answered, the rest never
    e.backend.script({"status": 200}, *([{"action": "hang"}] * 20))
    e.start()
    rec4 = len(HEADER + records(1, 3))
    ent = wait_entry(e, lambda x: x["offset"] >= rec4)
    check("case 2: the first batch committed (offset at u4)", ent is not None and
          ent["offset"] == rec4, [json.dumps(e.state_entries())[:400]] + e.tail())
    hdr = (ent or {}).get("header")
    check("case 2: the header saved with that offset is the one in force there",
          hdr == HEADER.decode().rstrip("\r\n"), ["header %r" % hdr])
    e.stop(signal.SIGKILL)
    e.backend.script(replace=True)
    e.backend.release()
    e.start()
    e.wait_for(range(1, 10))
    e.verify("case 2 (header between offsets, kill -9)", range(1, 10))
    check("case 2: no record rejected for its cell count", not e.said(r"cell", -1), e.tail())

    # Copy-and-truncate hands the copy the header of the committed offset:
    # u10..u12 acknowledged, u13..u15 (first header) and u16..u18 (second)
    # read but not, then the copy and the truncation.
    wrong_before = len(e.accepted()[1])
    e.backend.script({"status": 200}, *([{"action": "hang"}] * 20))
    write(e.live, HEADER + records(10, 15) + HEADER2 +
          b"".join(record_bytes(n, SWAPPED) for n in range(16, 19)))
    base = len(data) + len(HEADER + records(10, 12))
    ent = wait_entry(e, lambda x: x["offset"] >= base)
    check("case 2 copy: u10..u12 committed", ent is not None and ent["offset"] == base,
          [json.dumps(e.state_entries())[:400]])
    time.sleep(0.5)
    check("case 2 copy: daemon frozen", e.freeze())
    shutil.copyfile(e.live, os.path.join(e.pmta, "bounces.csv.1"))
    os.truncate(e.live, 0)
    write(e.live, HEADER + records(19, 20))
    e.backend.script(replace=True)
    e.thaw()
    e.backend.release()
    e.wait_for(range(1, 21))
    c, wrong = e.accepted()
    missing = sorted(set(range(1, 21)) - set(c))
    twice = sorted(n for n, k in c.items() if k > 1)
    check("case 2 copy: every record delivered", not missing, ["missing u%s" % missing] + e.tail())
    check("case 2 copy: the copy's records parsed with the header of their offset",
          not wrong[wrong_before:], wrong[wrong_before:][:6])
    check("case 2 copy: repeats only of the records in flight at the truncation (u13..u18)",
          set(twice) <= set(range(13, 19)), ["twice: u%s" % twice])
    check("case 2: SIGTERM, exit 0", e.stop() == 0, e.tail())

    # replay's progress file: interrupted after a second header that lies
    # past replay's first read (256 KiB), resumed by a second replay
    path = os.path.join(e.tmp, "old.csv")
    write(path, HEADER + records(100, 2000) + HEADER2 +
          b"".join(record_bytes(n, SWAPPED) for n in range(2001, 2600)), "wb")
    wrong_before = len(e.accepted()[1])
    p = subprocess.Popen([BINARY, "-c", e.conf, "replay", path], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    poll_until(lambda: max(e.accepted()[0] or [0]) >= 2050 or p.poll() is not None, 60, 0.01)
    e.backend.set_delay_ms(300)
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=60)
    info("case 2 replay: up to u%d accepted before SIGTERM" % max(e.accepted()[0]))
    e.backend.set_delay_ms(0)
    r = subprocess.run([BINARY, "-c", e.conf, "replay", path], capture_output=True, timeout=120)
    c, wrong = e.accepted()
    missing = sorted(set(range(100, 2600)) - set(c))
    check("case 2 replay: resumed, every record delivered", not missing and r.returncode == 0,
          ["missing u%s" % missing[:30], "exit %r" % r.returncode,
           r.stderr.decode(errors="replace")[-600:]])
    check("case 2 replay: fields of the records after the second header not swapped",
          not wrong[wrong_before:], wrong[wrong_before:][:5])
    twice = sorted(n for n, k in c.items() if k > 1 and n >= 100)
    check("case 2 replay: repeats only of what was in flight at SIGTERM (%d)" % len(twice),
          len(twice) <= 30, ["u%s" % twice[:30]])


# -------------------------------------------------------------- case 3


def cross_fs_move(e, dest, nxt):
    """move-to to another file system: copy, delete, then the next file."""
    shutil.copyfile(e.live, dest)
    os.unlink(e.live)
    write(e.live, nxt, "wb")


@scenario
def moveto_other_fs(e):
    """move-to as a copy and a delete: the archived copy is the file read."""
    write(e.live, HEADER + records(1, 20), "wb")
    e.start()
    e.wait_for(range(1, 21))
    cross_fs_move(e, archived(e, "bounces-1.csv"), HEADER + records(21, 30))
    e.wait_for(range(1, 31))
    time.sleep(3)  # the copied file is finished, the next one read
    write(e.live, records(31, 32))
    e.wait_for(range(1, 33))
    e.verify("case 3 (move-to by copy, running)", range(1, 33))
    check("case 3: the copy recognised as the file being read",
          e.said(r"the file being read was copied"), e.tail())
    # a second one, then a restart: the archived copies are known
    cross_fs_move(e, archived(e, "bounces-2.csv"), HEADER + records(33, 35))
    e.wait_for(range(1, 36))
    time.sleep(3)
    check("case 3: SIGTERM, exit 0", e.stop() == 0, e.tail())
    write(e.live, records(36, 38))
    cross_fs_move(e, archived(e, "bounces-3.csv"), HEADER + records(39, 40))
    e.start()
    e.wait_for(range(1, 41))
    e.verify("case 3 (move-to by copy, stopped, restart)", range(1, 41))
    check("case 3: SIGTERM, exit 0 again", e.stop() == 0, e.tail())


# -------------------------------------------------------------- case 4


def metric(e, name):
    try:
        with open(e.metrics) as fh:
            for ln in fh:
                if ln.startswith(name):
                    return float(ln.split()[-1])
    except OSError:
        pass
    return None


@scenario
def unreadable_file(e):
    """Rotated files the daemon's user cannot read: kept, named, retried."""
    write(e.live, HEADER + records(1, 10), "wb")
    os.chmod(e.live, 0o644)
    e.start()
    check("case 4: daemon running as nobody", e.alive(), e.tail())
    e.wait_for(range(1, 11))
    check("case 4: SIGTERM, exit 0", e.stop() == 0, e.tail())
    # While stopped: the tracked file rotates and loses its read permission
    # (PowerMTA without world-readable), an unknown one comes the same way.
    write(e.live, records(11, 20))
    a = archived(e, "bounces-a.csv")
    os.rename(e.live, a)
    os.chown(a, 0, 0)
    os.chmod(a, 0o600)
    b = archived(e, "bounces-b.csv")
    write(b, HEADER + records(21, 30), "wb")
    os.chmod(b, 0o600)
    write(e.live, HEADER + records(31, 35), "wb")
    os.chmod(e.live, 0o644)
    e.start()
    e.wait_for(range(31, 36))
    for name in (arch_name(e, "bounces-a.csv"), arch_name(e, "bounces-b.csv")):
        pat = r"cannot read file=TMP/pmta/archive/%s .*Permission denied" % name
        check("case 4: %s named with its reason" % name,
              poll_until(lambda: e.said(pat), 10), e.tail())
    poll_until(lambda: metric(e, "pmtatail_files_blocked") == 2, 10)
    check("case 4: pmtatail_files_blocked 2", metric(e, "pmtatail_files_blocked") == 2,
          ["metric %r" % metric(e, "pmtatail_files_blocked")])
    rc, out = e.status()
    check("case 4: status: exit 2 (CRITICAL), blocked: Permission denied",
          rc == 2 and out.startswith("PMTATAIL CRITICAL - blocked: Permission denied")
          and "blocked: Permission denied" in out, ["exit %r" % rc] + out.splitlines())
    # a restart while they are still unreadable keeps them owed
    check("case 4: SIGTERM while blocked, exit 0", e.stop() == 0, e.tail())
    ents = {os.path.basename(x["path"]): x for x in e.state_entries()}
    check("case 4: both still owed in offsets.json",
          all(n in ents and not ents[n]["finished"]
              for n in (os.path.basename(a), os.path.basename(b))),
          [json.dumps(list(ents.values()))[:600]])
    e.start()
    # start() returns once the watches are armed: the archive is looked at after
    check("case 4: still named after the restart",
          poll_until(lambda: e.said(r"cannot read file=TMP/pmta/archive/" + arch_name(e, "bounces-a.csv"), -1), 10),
          e.tail())
    os.chmod(a, 0o644)
    os.chmod(b, 0o644)
    e.wait_for(range(1, 36))
    e.verify("case 4 (unreadable, then chmod 644)", range(1, 36))
    check("case 4: the end of the streak is logged",
          poll_until(lambda: e.said(r"file readable again file=TMP/pmta/archive/" + arch_name(e, "bounces-a.csv")),
                     10), e.tail())
    ok = poll_until(lambda: e.status()[0] == 0, 15, 0.5)
    check("case 4: status healthy again", ok, e.status()[1].splitlines())
    check("case 4: SIGTERM, exit 0 at the end", e.stop() == 0, e.tail())


# -------------------------------------------------------------- case 5


def open_archive_files(pid, archive):
    n = 0
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith(archive):
                    n += 1
            except OSError:
                pass
    except OSError:
        return None
    return n


def many_rotated(e, first, nfiles, per, tag):
    """nfiles rotated files of `per` records each, oldest first; the next
    record number."""
    n = first
    t0 = time.time() - 100
    for i in range(nfiles):
        p = archived(e, "bounces-%s-%03d.csv" % (tag, i))
        write(p, HEADER + records(n, n + per - 1), "wb")
        os.utime(p, (t0 + i, t0 + i))
        n += per
    return n


@scenario
def descriptors(e):
    """30 rotated files waiting and few descriptors."""
    write(e.live, HEADER + records(1, 5), "wb")
    e.start()
    e.wait_for(range(1, 6))
    check("case 5: SIGTERM, exit 0", e.stop() == 0, e.tail())
    write(e.live, records(6, 20))
    os.rename(e.live, archived(e, "bounces-000.csv"))
    n = many_rotated(e, 21, 30, 20, "a")
    write(e.live, HEADER + records(n, n + 9), "wb")
    last = n + 9
    e.backend.set_delay_ms(30)
    e.start(nofile=24)
    most = [0]

    def watch():
        k = open_archive_files(e.proc.pid, e.archive) or 0
        most[0] = max(most[0], k)
        c, _ = e.accepted()
        return set(range(1, last + 1)) <= set(c) or not e.alive()
    poll_until(watch, 60, 0.02)
    e.verify("case 5 (30 rotated files, RLIMIT_NOFILE 24)", range(1, last + 1))
    check("case 5: at most 3 archived files open at once (%d)" % most[0], most[0] <= 3)
    check("case 5: no descriptor shortage at 24",
          not e.said(r"out of file descriptors", -1), e.tail())
    check("case 5: SIGTERM, exit 0 (2)", e.stop() == 0, e.tail())
    e.backend.set_delay_ms(0)
    # A limit too low for any file to open: named, nothing dropped.
    write(e.live, records(last + 1, last + 5))
    os.rename(e.live, archived(e, "bounces-b-live.csv"))
    n = many_rotated(e, last + 6, 5, 10, "b")
    write(e.live, HEADER + records(n, n + 4), "wb")
    last = n + 4
    # Which descriptor runs out first at a given limit (a file, the state
    # save, status.json, a socket) depends on the build (a sanitizer opens
    # some of its own): go up until a file is the one named.
    low = named_at = None
    file_named = r"cannot read file=TMP/pmta/\S+ .*out of file descriptors"
    for lim in range(9, 24):
        e.start(nofile=lim)
        poll_until(lambda: not e.alive() or e.said(file_named, -1), 5, 0.05)
        if named_at is None and e.said(r"out of file descriptors", -1):
            named_at = lim
        if e.alive() and e.said(file_named, -1):
            low = lim
            break
        e.stop(signal.SIGKILL)
    check("case 5: a low limit is named \"out of file descriptors\" (at %r)" % named_at,
          named_at is not None, e.tail())
    check("case 5: the file it could not open is named (at %r)" % low, low is not None,
          e.tail())
    e.stop(signal.SIGKILL)
    e.start()
    e.wait_for(range(1, last + 1), 30)
    c, _ = e.accepted()
    missing = sorted(set(range(1, last + 1)) - set(c))
    check("case 5: every record delivered after a restart with the normal limit",
          not missing, ["missing u%s" % missing[:40]] + e.tail())
    check("case 5: SIGTERM, exit 0 (3)", e.stop() == 0, e.tail())


# -------------------------------------------------------------- case 6


@scenario
def table_full(e):
    """offsets.json holding 4096 finished files, and 4200 archived files."""
    now = int(time.time())
    dev = os.stat(e.archive).st_dev
    files = [{"source": "bounces", "path": archived(e, "gone-%04d.csv" % i), "dev": dev,
              "ino": 10 ** 12 + i, "fp": "%016x" % (i * 7919 + 1), "fp_len": 1024,
              "offset": 5000, "finished": True, "seen": now - 1000 - i}
             for i in range(4096)]
    with open(e.offsets, "w") as fh:
        json.dump({"version": 1, "files": files}, fh)
    old = now - 3 * 86400
    for i in range(4200):
        p = archived(e, "bounces-old-%04d.csv" % i)
        write(p, HEADER + filtered_bytes(i), "wb")
        os.utime(p, (old, old))
    write(archived(e, "bounces-new.csv"), HEADER + records(1, 10), "wb")
    write(e.live, HEADER + records(11, 20), "wb")
    t0 = time.monotonic()
    e.start()
    e.wait_for(range(1, 21), 40)
    info("case 6: start with 4096 entries and 4200 archived files to all delivered: %.2f s"
         % (time.monotonic() - t0))
    write(e.live, records(21, 25))
    e.wait_for(range(1, 26), 20)
    e.verify("case 6 (table full, 4200 archived files)", range(1, 26))
    check("case 6: the pruning is logged", e.said(r"offsets table near full"), e.tail())
    check("case 6: no \"cannot track\"", not e.said(r"cannot track"), e.tail())
    check("case 6: SIGTERM, exit 0", e.stop() == 0, e.tail())
    n = len(e.state_entries())
    check("case 6: the table stays within its bound (%d entries)" % n, 0 < n <= 4096)


# -------------------------------------------------------------- case 7


def d_rows(k):
    """Filtered rows, more than a fingerprint's 1024 bytes."""
    out, i = b"", 0
    while len(out) < 1200:
        out += filtered_bytes(k + i)
        i += 1
    return out


@scenario
def copied_vs_same(e):
    """A different file whose first 1024 bytes are a tracked one's, and
    copy-and-truncate with logrotate's copy names."""
    prefix = HEADER + d_rows(0)
    write(e.live, prefix + records(1, 5), "wb")
    e.start()
    e.wait_for(range(1, 6))
    check("case 7: SIGTERM, exit 0", e.stop() == 0, e.tail())
    write(e.live, records(6, 8))
    os.rename(e.live, archived(e, "bounces-a.csv"))
    write(e.live, prefix + records(101, 110), "wb")
    e.start()
    e.wait_for(list(range(1, 9)) + list(range(101, 111)))
    e.verify("case 7 (SAME before COPIED)", list(range(1, 9)) + list(range(101, 111)))
    want = list(range(1, 9)) + list(range(101, 111))
    # copy-and-truncate, the copy named bounces.csv.1 then bounces.csv-DATE
    n = 111
    for copy in ("bounces.csv.1", "bounces.csv-20240105"):
        time.sleep(2.5)
        check("case 7 %s: daemon frozen" % copy, e.freeze())
        write(e.live, records(n, n + 9))
        shutil.copyfile(e.live, os.path.join(e.pmta, copy))
        os.truncate(e.live, 0)
        write(e.live, HEADER + records(n + 10, n + 12))
        e.thaw()
        want += list(range(n, n + 13))
        e.wait_for(want)
        e.verify("case 7 (copy-and-truncate to %s)" % copy, want)
        n += 13
    check("case 7: the copy is named", e.said(r"reading the copy made before the truncation "
                                                r"file=TMP/pmta/bounces\.csv-20240105"), e.tail())
    check("case 7: SIGTERM, exit 0 at the end", e.stop() == 0, e.tail())


# -------------------------------------------------------------- FIFO


@scenario
def fifo_live_path(e):
    """A live path that is a FIFO is refused with a message, not adopted."""
    os.mkfifo(e.live)
    e.start()
    ok = poll_until(lambda: e.said(r"file=TMP/pmta/bounces\.csv .*not a regular file"), 5)
    check("fifo: refused with a message", ok and e.alive(), e.tail())
    os.unlink(e.live)
    write(e.live + ".tmp", HEADER + records(1, 3), "wb")
    os.rename(e.live + ".tmp", e.live)
    e.wait_for(range(1, 4))
    e.verify("fifo (then a regular file)", range(1, 4))
    check("fifo: no Illegal seek", not e.said(r"Illegal seek"), e.tail())
    check("fifo: SIGTERM, exit 0", e.stop() == 0, e.tail())


def main(argv):
    global BINARY
    if len(argv) != 2:
        print("usage: test_bookkeeping.py PMTATAIL_BINARY", file=sys.stderr)
        return 2
    BINARY = os.path.abspath(argv[1])
    for fn in SCENARIOS:
        if ONLY and fn.__name__ not in ONLY:
            continue
        kw = {}
        if fn.__name__ == "unreadable_file":
            if os.geteuid() != 0:
                info("unreadable_file: needs root to run the daemon as nobody: a file of "
                     "mode 0 is readable by nobody else")
                continue
            kw = dict(user=NOBODY, metrics=True)
        if fn.__name__ == "header_with_offset":
            # one request at a time: "the first batch answered" is then the
            # first batch whatever order connections are made in
            kw = dict(batch=3, extra_output="concurrency = 1\n")
        e = Env(fn.__name__, **kw)
        info("scenario %s in %s" % (fn.__name__, e.tmp))
        try:
            fn(e)
        except Exception:
            check("%s: no exception" % fn.__name__, False, traceback.format_exc().splitlines())
        finally:
            e.cleanup()
    return finish()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
