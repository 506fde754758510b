#!/usr/bin/python3
"""Safety and liveness scenarios of the real daemon: an operator's bad day.

    python3 tests/py/test_safety.py PMTATAIL_BINARY

Each scenario runs the real binary against the fake backend (backend.py) and
the simulated writer (pmta_sim.py), through test_push.Env (a temporary
directory, a configuration, the daemon runs and the end checks: every written
record accepted, content, eventIds, duplicates, secrets):

  outage-cpu      the backend down for OUTAGE_S seconds with the window full,
                  two rotations during it: the daemon's CPU over the outage
                  (a busy loop would be ~100 %), then everything delivered once;
  sparse-hole     a 5 GiB sparse hole of NUL bytes in the live file between
                  good records: SIGTERM in the middle of it is acted on within
                  a second, the restart resumes where the skip was (no byte
                  of the hole read twice), a third run reads none of it, the
                  records on both sides delivered once;
  bad-lines       an over-long line with an open quote, and a stray quote
                  closed by a later quoted field, between good records in the
                  live file: each costs only its own line;
  planted-links   symlinks planted at status.json(.tmp), offsets.json.tmp,
                  offsets.journal(.tmp),
                  replay.json.tmp, replay.lock and the state lock: nothing
                  outside the state directory is written, the daemon works or
                  refuses clearly; a state directory writable by others or
                  owned by another user is refused (run, replay, check-config);
                  a header_file readable by others is warned about;
  full-disk       the state directory on a small tmpfs filled up: the failing
                  saves logged once per streak, with its end and duration; a
                  SIGTERM whose last save fails exits 1 and says how many
                  records may be sent again;
  memory-short    the running daemon's address space capped just above what
                  it uses while records come: the records it cannot take
                  wait and are read again (none dropped), every one delivered
                  once memory is back (memory-short-single: the same with one
                  event per request);
  descriptors-short
                  RLIMIT_NOFILE of the running daemon lowered so that no
                  descriptor more can be opened, while the backend closes idle connections and the
                  writer rotates twice: a file rotated before it was seen,
                  while no directory could be listed, is still read (the look
                  is owed and tried again), every record delivered once;
  descriptors-copytruncate
                  a copy-and-truncate of records not yet read, then no
                  descriptor to be had: the truncation waits for the look
                  for the copy, whose records are then read, once;
  descriptors-moveto
                  a move-to into an archive on another file system (copy,
                  delete) while no descriptor can be had: the file read to
                  its end is not finished without its copy, which is known as
                  that file once descriptors are back, so a restart does not
                  read the copy again.

Environment: PMTATAIL_SAFETY_ONLY (comma-separated scenario names),
PMTATAIL_SAFETY_OUTAGE_S (default 30), PMTATAIL_SAFETY_HOLE_GIB (default 5),
PMTATAIL_PUSH_KEEP (keep the directories). Scenarios that need root (tmpfs
mount, chown) say so and are skipped without it. Standard library only.
"""

import collections
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_push  # noqa: E402
from test_push import Env  # noqa: E402
from pmta_sim import filtered_bytes  # noqa: E402
from harness import binary_arg, check, finish, info, poll_until, read_offsets, run_scenarios  # noqa: E402

ONLY = [s for s in os.environ.get("PMTATAIL_SAFETY_ONLY", "").split(",") if s]
OUTAGE_S = float(os.environ.get("PMTATAIL_SAFETY_OUTAGE_S", "30"))
HOLE = int(float(os.environ.get("PMTATAIL_SAFETY_HOLE_GIB", "5")) * (1 << 30))
CPU_MAX = 0.10       # share of one core over the outage; a spinning loop is ~1.0
STOP_MAX_S = 1.0     # SIGTERM in the middle of the hole: exit within this
CLK_TCK = os.sysconf("SC_CLK_TCK")
MEMORY_MARGIN_KIB = 256  # address space left to the daemon in memory-short


def cpu_seconds(pid):
    """utime + stime of pid, in seconds (None if it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def io_rchar(pid):
    """Bytes pid read through read(2)/pread(2) so far (None if gone)."""
    try:
        with open("/proc/%d/io" % pid) as fh:
            for line in fh:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def status_json(e):
    try:
        with open(os.path.join(e.state, "status.json")) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def committed_offset(e, path):
    st = read_offsets(e.state)
    if st is None:
        return None
    for f in st.get("files", []):
        if f.get("path") == path:
            return f.get("offset")
    return None


class Notify:
    """A NOTIFY_SOCKET for the daemon: the times its WATCHDOG=1 pings came."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.pings = []
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped:
            try:
                msg = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if b"WATCHDOG=1" in msg.split(b"\n"):
                self.pings.append(time.monotonic())

    def max_gap(self, t0, t1):
        times = [t0] + [t for t in self.pings if t0 <= t <= t1] + [t1]
        return max(b - a for a, b in zip(times, times[1:]))

    def close(self):
        self.stopped = True
        self.thread.join()
        self.sock.close()


def append(path, data):
    with open(path, "ab") as fh:
        fh.write(data)


# ------------------------------------------------------------------ point 1


def outage_cpu(e):
    """Backend down with the window full (2,500 records behind a 1,000-event
    window), two rotations while it is down: the rotated files pass their
    final time while nothing can be read, which made the loop poll(0)."""
    e.sim.write(2500)
    p = e.start()
    time.sleep(1.0)  # the window fills; connections are refused
    c0, t0 = cpu_seconds(p.pid), time.monotonic()
    rotations = 0
    while time.monotonic() - t0 < OUTAGE_S:
        left = OUTAGE_S - (time.monotonic() - t0)
        if rotations < 2 and time.monotonic() - t0 >= OUTAGE_S * (0.15 + 0.35 * rotations):
            e.sim.rotate()
            e.sim.write(300)
            rotations += 1
        time.sleep(min(0.5, max(left, 0.01)))
    c1, t1 = cpu_seconds(p.pid), time.monotonic()
    share = (c1 - c0) / (t1 - t0) if c0 is not None and c1 is not None else None
    info("outage-cpu: %.2f s of CPU over a %.1f s outage with the window full "
         "(%.1f %% of a core), %d rotations" % ((c1 or 0) - (c0 or 0), t1 - t0,
                                                100 * (share or 0), rotations))
    check("outage-cpu: the daemon lived through the outage", e.alive(), e.stderr_tail())
    check("outage-cpu: CPU during the outage below %d %% of a core (got %.1f %%)" % (
        100 * CPU_MAX, 100 * (share or 0)), share is not None and share < CPU_MAX)
    e.backend.start()
    ok, t = e.wait_delivered(timeout=60)
    check("outage-cpu: everything delivered after the outage (%.1f s)" % t, ok)
    e.expect_stop("outage-cpu")
    e.verify("outage-cpu", exact=True)


outage_cpu.env = dict(output={"batch_max_records": "50", "concurrency": "1",
                              "retry_max_s": "1"},
                      backend_up=False, sim_args=dict(filtered_ratio=0.0))


# ------------------------------------------------------------------ point 2


def sparse_hole(e):
    """A 5 GiB hole of NUL bytes (truncate -s: no disk used) after good
    records, then a line break and more good records."""
    e.sim.write(50)
    # The first run under a watchdog (200 ms: a ping every 100 ms is due).
    notify = Notify(os.path.join(e.tmp, "notify.sock"))
    os.environ.update(NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="200000")
    try:
        p = e.start()
    finally:
        del os.environ["NOTIFY_SOCKET"], os.environ["WATCHDOG_USEC"]
    ok, _ = e.wait_delivered(timeout=30)
    check("sparse-hole: the records before the hole delivered", ok)
    size = os.path.getsize(e.live)
    os.truncate(e.live, size + HOLE)
    append(e.live, b"\r\n")
    t_hole = time.monotonic()
    e.sim.write(50)
    r0 = io_rchar(p.pid) or 0
    # In the middle of the hole: a good part read, far from its end.
    poll_until(lambda: (io_rchar(p.pid) or 0) - r0 >= min(HOLE // 5, 1 << 30), 30, 0.005)
    at_signal = (io_rchar(p.pid) or 0) - r0
    t_signal = time.monotonic()
    rc, t = e.stop()
    notify.close()
    gap = notify.max_gap(t_hole, t_signal)
    info("sparse-hole: SIGTERM after %d MiB of the hole read (%.2f s in), exit %r after "
         "%.3f s; longest watchdog silence in the hole %.3f s" % (
             at_signal >> 20, t_signal - t_hole, rc, t, gap))
    check("sparse-hole: the watchdog pinged all along the hole (longest gap %.3f s)" % gap,
          len(notify.pings) > 0 and gap < STOP_MAX_S)
    check("sparse-hole: SIGTERM in the hole acted on within %.1f s (%.3f s)" % (STOP_MAX_S, t),
          rc == 0 and t < STOP_MAX_S, e.stderr_tail())
    check("sparse-hole: stopped in the middle of the hole", at_signal < HOLE - (64 << 20),
          ["%d of %d bytes read at the signal" % (at_signal, HOLE)])
    saved = committed_offset(e, e.live) or 0
    info("sparse-hole: offset saved at the stop %d (hole from %d to %d)" % (
        saved, size, size + HOLE))
    check("sparse-hole: the skipped part of the hole is committed",
          saved >= size + at_signal - (16 << 20), ["saved %d, hole from %d" % (saved, size)])
    # Run 2: goes on from the saved offset.
    p = e.start()
    ok, t = e.wait_delivered(timeout=120)
    poll_until(lambda: (committed_offset(e, e.live) or 0) >= os.path.getsize(e.live) - 2, 10)
    read2 = io_rchar(p.pid) or 0
    e.expect_stop("sparse-hole run 2")
    rest = size + HOLE - saved
    info("sparse-hole: run 2 read %d MiB, the rest of the hole being %d MiB" % (
        read2 >> 20, rest >> 20))
    check("sparse-hole: the records after the hole delivered (%.1f s)" % t, ok)
    check("sparse-hole: run 2 reads no byte of the hole twice",
          read2 <= rest + (16 << 20), ["read %d, rest of the hole %d" % (read2, rest)])
    # Run 3: nothing of the hole read again.
    p = e.start()
    time.sleep(1.0)
    read3 = io_rchar(p.pid) or 0
    e.expect_stop("sparse-hole run 3")
    info("sparse-hole: run 3 read %d KiB" % (read3 >> 10))
    check("sparse-hole: a restart after it reads far less than the hole (%d KiB)" % (
        read3 >> 10), read3 < (16 << 20))
    st = status_json(e)
    rejected = sum(s.get("records_rejected", 0) for s in (st or {}).get("sources", []))
    info("sparse-hole: records rejected in the last run: %d" % rejected)
    e.verify("sparse-hole", exact=True)
    os.truncate(e.live, 0)  # free the (sparse) space now


sparse_hole.env = dict(sim_args=dict(filtered_ratio=0.0))


# ------------------------------------------------------------------ point 6


def bad_lines(e):
    """record_max = 65536. An over-long line whose open quote would carry the
    skip over the next records; a stray quote closed by a later quoted cell
    (RFC 4180 would swallow the records between into one)."""
    with open(e.conf) as fh:
        text = fh.read()
    with open(e.conf, "w") as fh:
        fh.write(text.replace("records = b, rb\n", "records = b, rb\nrecord_max = 65536\n", 1))
    e.sim.write(20)
    p = e.start()
    ok, _ = e.wait_delivered(timeout=30)
    append(e.live, b'b,1704459600,bounce@news.example.com,"x' + b"y" * 100000 + b"\r\n")
    e.sim.write(5)
    append(e.live, b'b,1704459600,"bounce@news.example.com,z@example.com,5.1.1 (bad),'
           b'smtp;550 no,bad-mailbox\r\n')
    e.sim.write(5)
    ok, t = e.wait_delivered(timeout=30)
    check("bad-lines: every good record around the bad lines delivered (%.1f s)" % t, ok,
          e.stderr_tail())
    poll_until(lambda: status_json(e) and sum(
        s.get("records_rejected", 0) for s in status_json(e)["sources"]) >= 2, 10)
    st = status_json(e) or {"sources": []}
    rejected = sum(s.get("records_rejected", 0) for s in st["sources"])
    check("bad-lines: exactly the two bad lines rejected (got %d)" % rejected, rejected == 2,
          e.said("reject"))
    check("bad-lines: the over-long line named", bool(e.said("longer than record_max")))
    check("bad-lines: the stray quote named", bool(e.said("swallows whole records")))
    e.expect_stop("bad-lines")
    e.verify("bad-lines", exact=True)
    del p


bad_lines.env = dict(sim_args=dict(filtered_ratio=0.0))


# ------------------------------------------------------------------ point 4


def planted_links(e):
    outside = os.path.join(e.tmp, "outside")
    os.makedirs(outside)
    os.makedirs(e.state, mode=0o700)
    victims = {}
    for name in ("status.json.tmp", "offsets.json.tmp", "replay.json.tmp", "replay.lock",
                 "lock", "status.json", "offsets.journal", "offsets.journal.tmp"):
        v = os.path.join(outside, "victim-" + name)
        with open(v, "w") as fh:
            fh.write("precious %s\n" % name)
        victims[v] = "precious %s\n" % name
        os.symlink(v, os.path.join(e.state, name))
    dangling = os.path.join(outside, "created-through-a-link")
    os.symlink(dangling, os.path.join(e.state, "dead-letter.ndjson.tmp"))

    def untouched(label):
        changed = []
        for v, text in victims.items():
            with open(v) as fh:
                if fh.read() != text:
                    changed.append(v)
        check("planted-links: %s: nothing outside the state directory written" % label,
              not changed and not os.path.exists(dangling)
              and sorted(os.listdir(outside)) == sorted(os.path.basename(v) for v in victims),
              ["changed: %s" % changed, "outside: %s" % os.listdir(outside)])

    # The state lock is a link: refused with a clear message.
    e.sim.write(30)
    p = e.start(wait_ready=False)
    rc = p.wait(10)
    e.proc = None
    e.runs[-1][1] = rc
    check("planted-links: a link as the state lock: run refuses (exit %r)" % rc, rc == 1,
          e.stderr_tail())
    check("planted-links: ... saying which file", bool(e.said(r"cannot open .*/lock")),
          e.stderr_tail())
    untouched("lock refused")
    os.unlink(os.path.join(e.state, "lock"))
    # The temp names are links: removed, never followed; the daemon works.
    e.start()
    ok, t = e.wait_delivered(timeout=30)
    check("planted-links: delivered with links at the temp names (%.1f s)" % t, ok,
          e.stderr_tail())
    poll_until(lambda: committed_offset(e, e.live) == os.path.getsize(e.live), 10)
    e.expect_stop("planted-links")
    check("planted-links: status.json is a file of ours now, not the link",
          not os.path.islink(os.path.join(e.state, "status.json")) and status_json(e))
    untouched("daemon ran")
    # replay with replay.json.tmp and replay.lock planted
    arch = os.path.join(e.tmp, "replay-in.csv")
    with open(arch, "wb") as fh:
        fh.write(b"type,timeLogged,orig,rcpt,dsnStatus,dsnDiag,bounceCat\r\n")
        fh.write(filtered_bytes(1))  # a `d` row: replayed, nothing sent
    rc, out, err = e.command("replay", arch)
    check("planted-links: a link as replay.lock: replay refuses (exit %r)" % rc, rc == 1,
          [err[-300:]])
    untouched("replay lock refused")
    os.unlink(os.path.join(e.state, "replay.lock"))
    rc, out, err = e.command("replay", "--from-start", arch)
    check("planted-links: replay with a link at replay.json.tmp (exit %r)" % rc, rc == 0,
          [err[-300:]])
    untouched("replay ran")

    # StrictModes: a state directory others can write to, or not ours.
    for mode, what in ((0o770, "group"), (0o777, "everyone")):
        os.chmod(e.state, mode)
        p = e.start(wait_ready=False)
        rc = p.wait(10)
        e.proc = None
        e.runs[-1][1] = rc
        check("planted-links: state directory writable by %s: run refuses (exit %r)" % (
            what, rc), rc == 1 and bool(e.said("writable by")), e.stderr_tail(3))
        rc, out, err = e.command("check-config")
        check("planted-links: ... and check-config says so (exit %r)" % rc,
              rc == 1 and re.search(r"problem: .*writable by", out) is not None,
              out.splitlines()[-6:])
        rc, out, err = e.command("replay", "--from-start", arch)
        check("planted-links: ... and replay refuses it (exit %r)" % rc,
              rc == 1 and "writable by" in err, [err[-300:]])
    os.chmod(e.state, 0o700)
    if os.geteuid() == 0:
        os.chown(e.state, 65534, 65534)
        p = e.start(wait_ready=False)
        rc = p.wait(10)
        e.proc = None
        e.runs[-1][1] = rc
        check("planted-links: state directory owned by another user: run refuses (exit %r)"
              % rc, rc == 1 and bool(e.said("owned by uid 65534")), e.stderr_tail(3))
        os.chown(e.state, 0, 0)
    else:
        info("planted-links: not root, the foreign owner case is skipped")
    rc, out, err = e.command("check-config")
    check("planted-links: check-config content with a 0700 state directory (exit %r)" % rc,
          "writable by" not in out and "ok: [state] dir" in out, out.splitlines()[-8:])
    # header_file readable by others: warned about, value never shown.
    os.chmod(e.header_file, 0o644)
    rc, out, err = e.command("check-config")
    check("planted-links: check-config warns about a header_file readable by others",
          re.search(r"warning: .*header_file .*readable by group or others", out) is not None,
          out.splitlines()[-6:])
    e.start()
    poll_until(lambda: e.said("header_file .* readable by group or others"), 5)
    check("planted-links: run warns about it too",
          bool(e.said("header_file .* readable by group or others")), e.stderr_tail(4))
    e.expect_stop("planted-links header warning")
    os.chmod(e.header_file, 0o600)
    rc, out, err = e.command("check-config")
    check("planted-links: no warning once it is 0600", "header_file" not in out.split(
        "checks:")[-1], out.splitlines()[-6:])
    e.verify("planted-links", exact=True)


planted_links.env = dict(header_file=[("X-Extra-Signature", "sig-in-file-3c1f9a")],
                         sim_args=dict(filtered_ratio=0.0))


# ------------------------------------------------------------------ point 7


def full_disk(e):
    if os.geteuid() != 0:
        info("full-disk: not root (no tmpfs mount): skipped")
        return
    os.makedirs(e.state)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", e.state],
                       capture_output=True)
    if r.returncode != 0:
        info("full-disk: cannot mount a tmpfs (%s): skipped" % r.stderr.decode().strip())
        return
    try:
        _full_disk(e)
    finally:
        if e.proc is not None:
            e.stop(signal.SIGKILL)
        subprocess.run(["umount", "-l", e.state])


def _fill(e, settle=1.0):
    """Fill the state tmpfs. A save of the daemon under way when the disk
    fills ends with a rename that frees the old file's pages: the filler
    takes whatever comes free for `settle` seconds after, so that no later
    save finds room (one would end the failure streak before its time)."""
    path = os.path.join(e.state, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    end = time.monotonic() + settle
    try:
        while True:
            try:
                while os.write(fd, b"\0" * 4096) > 0:
                    pass
            except OSError:
                pass
            if time.monotonic() >= end:
                break
            time.sleep(0.05)
    finally:
        os.close(fd)
    return path


def _full_disk(e):
    with open(e.conf, "a") as fh:  # the metrics file on the full disk too, every second
        fh.write("\n[metrics]\ntextfile = %s\ninterval_s = 1\n"
                 % os.path.join(e.state, "metrics.prom"))
    e.sim.write(50)
    e.start()
    ok, _ = e.wait_delivered(timeout=30)
    check("full-disk: delivered while there is room", ok, e.stderr_tail())
    filler = _fill(e)
    t_full = time.monotonic()
    # Keep records flowing: a save is due after each batch. A save appends a
    # line to offsets.journal, which fits in the page the file already has
    # until that page is full: the failures start when a save needs room.
    for i in range(60):
        e.sim.write(20)
        time.sleep(0.4)
        if i >= 9 and e.said("cannot save offsets"):
            break
    ok, _ = e.wait_delivered(timeout=30)
    secs = time.monotonic() - t_full
    fails = e.said("cannot save offsets")
    status_fails = e.said("cannot write status.json")
    info("full-disk: %d 'cannot save offsets' and %d status lines over %.1f s of a full disk"
         % (len(fails), len(status_fails), secs))
    check("full-disk: deliveries go on while the disk is full", ok)
    check("full-disk: the failing save logged once for the streak (got %d)" % len(fails),
          len(fails) == 1, fails[:6])
    check("full-disk: ... and the failing status write once (got %d)" % len(status_fails),
          len(status_fails) <= 1, status_fails[:6])
    metrics_fails = e.said("cannot write metrics")
    check("full-disk: ... and the failing metrics write once (got %d)" % len(metrics_fails),
          len(metrics_fails) <= 1, metrics_fails[:6])
    os.unlink(filler)
    poll_until(lambda: e.said("saving offsets works again"), 10)
    ends = e.said("saving offsets works again")
    check("full-disk: the end of the streak logged with its duration and count",
          len(ends) == 1 and re.search(r"after [0-9.]+ s failures=[0-9]+", ends[0]) is not None,
          ends or e.stderr_tail())
    poll_until(lambda: committed_offset(e, e.live) == os.path.getsize(e.live), 10)
    # Full again, and SIGTERM: the last save fails (records flow until a save
    # has failed, as above).
    filler = _fill(e)
    e.sim.write(30)
    for _ in range(60):
        if len(e.said("cannot save offsets")) > len(fails):
            break
        time.sleep(0.4)
        e.sim.write(20)
    ok, _ = e.wait_delivered(timeout=30)
    rc, t = e.stop()
    said = e.said("stopping without saving the offsets")
    check("full-disk: SIGTERM whose final save failed exits 1 (got %r)" % (rc,), rc == 1,
          e.stderr_tail())
    m = re.search(r"up to ([0-9]+) delivered records may be sent again", said[0] if said else "")
    # at least the last batch written (a save may still fit in the disk's
    # last free bytes after the first 30, so the failing one may come with
    # a batch of 20)
    check("full-disk: ... and says how many records may be sent again",
          m is not None and int(m.group(1)) >= 20, said or e.stderr_tail())
    os.unlink(filler)
    e.start()
    ok, _ = e.wait_delivered(timeout=30)
    e.expect_stop("full-disk after")
    # The records acknowledged after the last good save come again: allowed.
    e.verify("full-disk", exact=False)


full_disk.env = dict(sim_args=dict(filtered_ratio=0.0))


# ------------------------------------------------------------------ memory


def vm_size_kib(pid):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1])
    return None


def memory_short(e, label="memory-short"):
    """The daemon's address space capped (RLIMIT_AS, set on the running
    process) a little above what it uses, while records keep coming: the
    records it cannot take are read again once memory is back, never dropped
    (a later batch's offset would have settled past them for good)."""
    if os.environ.get("PMTATAIL_SANITIZED"):
        # ASan's allocator reserves terabytes and aborts when it cannot map
        info("%s: under the sanitizers: skipped" % label)
        return
    e.sim.write(50)
    p = e.start()
    ok, _ = e.wait_delivered(timeout=30)
    check("%s: delivered with memory to spare" % label, ok, e.stderr_tail())
    soft, hard = resource.prlimit(p.pid, resource.RLIMIT_AS)
    vs = vm_size_kib(p.pid)
    resource.prlimit(p.pid, resource.RLIMIT_AS, ((vs + MEMORY_MARGIN_KIB) * 1024, hard))
    for i in range(6):
        e.sim.write(500)
        if i == 3:
            e.sim.rotate()
        time.sleep(0.3)
    said = poll_until(lambda: e.said("out of memory"), 20)
    lines = e.said("out of memory")
    info("%s: %d 'out of memory' lines with %d KiB above VmSize %d KiB: %s" % (
        label, len(lines), MEMORY_MARGIN_KIB, vs, "; ".join(lines[:3])))
    check("%s: the daemon ran short of memory and said so" % label, said and lines,
          e.stderr_tail())
    check("%s: ... and lived" % label, e.alive(), e.stderr_tail())
    check("%s: no record dropped with an error" % label,
          not e.said("cannot encode record"), e.said("cannot encode record")[:3])
    resource.prlimit(p.pid, resource.RLIMIT_AS, (soft, hard))
    ok, t = e.wait_delivered(timeout=60)
    check("%s: every record delivered once memory is back (%.1f s)" % (label, t), ok,
          e.stderr_tail())
    poll_until(lambda: e.said("works again"), 10)
    check("%s: the end of the shortage logged" % label, e.said("works again"),
          e.stderr_tail())
    e.expect_stop(label)
    e.verify(label, exact=True)


memory_short.env = dict(output={"batch_max_records": "500"},
                        sim_args=dict(filtered_ratio=0.0))


def memory_short_single(e):
    """The same with one event per request (a part per event in the output's
    thread)."""
    memory_short(e, "memory-short-single")


memory_short_single.env = dict(output={"batch_max_records": "500", "format": "single"},
                               sim_args=dict(filtered_ratio=0.0))


def open_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def no_new_fds(pid, hard):
    """Lower pid's RLIMIT_NOFILE so that it cannot open any descriptor more:
    a new one must be numbered below the limit, so the limit is the lowest
    of 0-2 not open, else 3 (a descriptor closed later frees a number above
    it). What is open stays usable. Returns the limit."""
    try:
        held = {int(n) for n in os.listdir("/proc/%d/fd" % pid)}
    except OSError:
        held = set()
    limit = min([k for k in range(3) if k not in held] + [3])
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, hard))
    return limit


def descriptors_short(e):
    """RLIMIT_NOFILE of the running daemon lowered to the descriptors it has
    open, while the backend closes idle connections and the writer rotates
    into the archive directory: no connection can be opened again and no
    rotated file kept open; once the limit is back, everything delivered
    once."""
    e.backend.set_idle_close(0.2)
    e.sim.write(50)
    p = e.start()
    ok, _ = e.wait_delivered(timeout=30)
    check("descriptors-short: delivered with descriptors to spare", ok, e.stderr_tail())
    soft, hard = resource.prlimit(p.pid, resource.RLIMIT_NOFILE)
    n = open_fds(p.pid)
    limit = no_new_fds(p.pid, hard)
    time.sleep(0.5)  # the kept-alive connections are closed by the backend
    for i in range(6):
        e.sim.write(200)
        if i in (1, 3):
            e.sim.rotate()
        time.sleep(0.3)
    time.sleep(1.0)
    info("descriptors-short: limit %d (open %d), then %s open; log: %s" % (
        limit, n, open_fds(p.pid), "; ".join(e.said("descriptor|Too many open files|EMFILE")[:3])))
    check("descriptors-short: the daemon ran out of descriptors and said so",
          e.said("out of file descriptors"), e.stderr_tail())
    check("descriptors-short: the daemon lived", e.alive(), e.stderr_tail())
    resource.prlimit(p.pid, resource.RLIMIT_NOFILE, (soft, hard))
    ok, t = e.wait_delivered(timeout=60)
    check("descriptors-short: every record delivered once descriptors are back (%.1f s)" % t,
          ok, e.stderr_tail())
    e.expect_stop("descriptors-short")
    e.verify("descriptors-short", exact=True)


descriptors_short.env = dict(output={"retry_max_s": "1"}, sim_args=dict(filtered_ratio=0.0))


def descriptors_copytruncate(e):
    """A copy-and-truncate rotation of records the daemon had not read yet
    (stopped with SIGSTOP meanwhile), then no descriptor more to be had
    (RLIMIT_NOFILE): the copy cannot be looked for, so the truncation waits for the
    look instead of reading the live file again from 0 without it; once
    descriptors are back the copy's records are read, every one once."""
    e.sim.write(50)
    p = e.start()
    ok, _ = e.wait_delivered(timeout=30)
    check("descriptors-copytruncate: delivered with descriptors to spare", ok, e.stderr_tail())
    soft, hard = resource.prlimit(p.pid, resource.RLIMIT_NOFILE)
    os.kill(p.pid, signal.SIGSTOP)
    try:
        e.sim.write(100)
        e.sim.copy_truncate()
        e.sim.write(20)
        n = no_new_fds(p.pid, hard)
    finally:
        os.kill(p.pid, signal.SIGCONT)
    poll_until(lambda: e.said("cannot look for its copy"), 10)
    info("descriptors-copytruncate: limit %d; log: %s" % (
        n, "; ".join(e.said("copy|truncated|out of file descriptors")[:4])))
    check("descriptors-copytruncate: the truncation waits for the look for the copy",
          e.said("cannot look for its copy"), e.stderr_tail())
    check("descriptors-copytruncate: the daemon lived", e.alive(), e.stderr_tail())
    resource.prlimit(p.pid, resource.RLIMIT_NOFILE, (soft, hard))
    ok, t = e.wait_delivered(timeout=60)
    check("descriptors-copytruncate: every record delivered once descriptors are back "
          "(%.1f s)" % t, ok, e.stderr_tail())
    check("descriptors-copytruncate: the copy read", e.said("reading the copy made before"),
          e.stderr_tail())
    e.expect_stop("descriptors-copytruncate")
    e.verify("descriptors-copytruncate", exact=True)


descriptors_copytruncate.env = dict(sim_args=dict(filtered_ratio=0.0))


def descriptors_moveto(e):
    """A move-to into an archive on another file system (copy, then delete)
    while no descriptor more can be had: neither the new live file nor the
    archive can be opened, so the file read to its end is not finished
    without its copy; once descriptors are back the copy is known as that
    file, and a restart does not read it again (it was read whole: a second
    read would repeat every record in it)."""
    e.sim.write(50)
    p = e.start()
    ok, _ = e.wait_delivered(timeout=30)
    check("descriptors-moveto: delivered with descriptors to spare", ok, e.stderr_tail())
    soft, hard = resource.prlimit(p.pid, resource.RLIMIT_NOFILE)
    n = no_new_fds(p.pid, hard)
    e.sim.move_other_fs()
    e.sim.write(20)
    said = poll_until(lambda: e.said("out of file descriptors"), 10)
    time.sleep(1.0)
    info("descriptors-moveto: limit %d; log: %s" % (
        n, "; ".join(e.said("copy|finished|out of file descriptors")[:4])))
    check("descriptors-moveto: the daemon ran out of descriptors and said so", said,
          e.stderr_tail())
    check("descriptors-moveto: the file read to its end not finished meanwhile",
          not e.said("finished file="), e.said("finished file="))
    check("descriptors-moveto: the daemon lived", e.alive(), e.stderr_tail())
    resource.prlimit(p.pid, resource.RLIMIT_NOFILE, (soft, hard))
    ok, t = e.wait_delivered(timeout=60)
    check("descriptors-moveto: every record delivered once descriptors are back (%.1f s)" % t,
          ok, e.stderr_tail())
    poll_until(lambda: e.said("finished file=.*archive"), 10)
    check("descriptors-moveto: the copy known as the file read, which is finished under "
          "the copy's name", e.said("the file being read was copied")
          and e.said("finished file=.*archive"), e.stderr_tail())
    e.expect_stop("descriptors-moveto")
    e.sim.write(10)
    e.start()
    ok, t = e.wait_delivered(timeout=30)
    check("descriptors-moveto: after a restart, the new records delivered", ok, e.stderr_tail())
    time.sleep(1.5)  # a copy read again would be delivered by now
    e.expect_stop("descriptors-moveto (restarted)")
    e.verify("descriptors-moveto", exact=True)


descriptors_moveto.env = dict(sim_args=dict(filtered_ratio=0.0))


SCENARIOS = [outage_cpu, sparse_hole, bad_lines, planted_links, full_disk, memory_short,
             memory_short_single, descriptors_short, descriptors_copytruncate,
             descriptors_moveto]


def main(argv):
    test_push.BINARY, rc = binary_arg(argv, __doc__)
    if test_push.BINARY is None:
        return rc
    return run_scenarios(SCENARIOS, ONLY, lambda name, fn: Env(name, **fn.env))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
