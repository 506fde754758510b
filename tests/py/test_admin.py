#!/usr/bin/python3
"""Scenario tests of the daemon's operator interface: systemd notification,
SIGHUP reload, the state-directory lock, `status`, the metrics textfile,
`check-config`, `pmta-config` and the log format.

    python3 tests/py/test_admin.py PMTATAIL_BINARY

Each scenario gets its own temporary directory (pmta/bounces.csv, its archive
directory pmta/archive, state/, out/events.ndjson, logs/), writes a
configuration there and runs the real binary; records are written by
pmta_sim.Sim, HTTP deliveries go to backend.Backend (in this process).

  notify        sd_notify over an AF_UNIX datagram socket (NOTIFY_SOCKET):
                READY=1 once offsets.json exists and the watches are armed,
                STATUS= lines, WATCHDOG=1 every half WATCHDOG_USEC, none
                without it, RELOADING=1 (then READY=1) on SIGHUP with a good
                configuration and nothing on a bad one, STOPPING=1 on
                SIGTERM, every datagram from the daemon's pid, exit 0
  reload        SIGHUP with a second [source] and another linger_ms: the new
                source is delivered, the old one neither twice nor lost; a bad
                configuration (unknown key) is refused with its file and line
                and the daemon goes on delivering
  lock          a second `run` on the same state directory exits 1 naming it
  status        `status` / `status --json`: running and caught up, stopped and
                caught up, stopped with records waiting, backend answering 401
                (credentials), the documented JSON keys, no secret shown
  status-verdicts  the monitoring-plugin exit codes and first line, text and
                --json alike: OK, dead letters (WARNING), behind longer than
                --max-behind (CRITICAL, not before), not running (UNKNOWN),
                the endpoint refusing and files blocked (CRITICAL)
  metrics       [metrics] textfile: the counters of a known run, Prometheus
                text format, HELP/TYPE, atomic rewrites, HTTP answers, last
                success time
  check-config  a good file (every section, secrets masked) and broken ones
                (each problem named, exit 1; several problems all listed)
  pmta-config   an <acct-file> block per source
  logs          no timestamps when stderr is a file or JOURNAL_STREAM is set;
                timestamps on a terminal (a pty)

Waits poll with timeouts instead of fixed sleeps; the whole run takes about
half a minute.

Environment:
  PMTATAIL_ADMIN_ONLY   comma-separated scenario names to run (default all)
  PMTATAIL_ADMIN_KEEP   keep the temporary directories (their paths are printed)
  PMTATAIL_ADMIN_SEED   random seed for the writer (default: from the clock)

Standard library only. One line per check; exits 1 if any check failed.
"""

import collections
import json
import math
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pmta_sim import (HEADER, Sim, filtered_bytes, ranges, rcpt_number,  # noqa: E402
                      record_bytes)
from backend import Backend  # noqa: E402
from harness import Daemon, check, finish, info, inotify_watches, poll_until, binary_arg

ONLY = [s for s in os.environ.get("PMTATAIL_ADMIN_ONLY", "").split(",") if s]
KEEP = bool(os.environ.get("PMTATAIL_ADMIN_KEEP"))
SEED = int(os.environ.get("PMTATAIL_ADMIN_SEED", str(int(time.time()) % 100000)))
TIMEOUT = 20.0              # seconds to wait for a delivery

WATCHDOG_USEC = 400000      # the period given to the daemon: pings every ~200 ms
SECRET = "s3cret-Zq81-never-shown"     # a header value: never in any output
SECRET_FILE = "f1le-S3cret-77x-never-shown"  # the same, from a header_file
URL_PASSWORD = "pw-Hx29-never-shown"   # the password part of a URL
TS_RE = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")
LEVEL_RE = re.compile(r"^(error|warn|warning|info|debug)\b")

BINARY = None


def clip(text, k=12):
    """The last k lines of a text, indented for a failure's details."""
    lines = text.splitlines()
    return ["| " + ln for ln in lines[-k:]] or ["| (empty)"]


# -------------------------------------------------------------- the output


class Out:
    """Incremental reader of the NDJSON output file: events per record N."""

    def __init__(self, path):
        self.path = path
        self.pos = 0
        self.buf = b""
        self.counts = collections.Counter()
        self.paths = collections.Counter()
        self.strays = []
        self.bad = []

    def poll(self):
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.pos)
                data = fh.read()
        except FileNotFoundError:
            return self
        self.pos += len(data)
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            try:
                ev = json.loads(line)
            except ValueError:
                self.bad.append(line[:120])
                continue
            n = rcpt_number(ev.get("rcpt"))
            self.paths[ev.get("path")] += 1
            if n is None:
                self.strays.append(ev)
            else:
                self.counts[n] += 1
        return self


def delivery_problems(counts, sims, strays=(), bad=(), paths=None):
    """Lines describing what is wrong with delivered events: missing records,
    duplicates, records never written, strays, paths never used."""
    req = [n for s in sims for n in s.required()]
    missing = [n for n in req if not counts.get(n)]
    twice = sorted(n for n, c in counts.items() if c > 1)
    started = set().union(*(s.started for s in sims))
    never = sorted(n for n in counts if n not in started)
    out = []
    if missing:
        out.append("missing %d of %d: u%s" % (len(missing), len(req), ranges(missing)[:400]))
    if twice:
        out.append("%d records delivered more than once: u%s" % (len(twice), ranges(twice)[:400]))
    if never:
        out.append("events for records never written: u%s" % ranges(never)[:400])
    if strays:
        out.append("%d stray events, first %.200r" % (len(strays), list(strays)[:1]))
    if bad:
        out.append("%d output lines not JSON, first %.120r" % (len(bad), list(bad)[:1]))
    if paths is not None:
        used = set().union(*(s.paths for s in sims))
        odd = [p for p in paths if p not in used]
        if odd:
            out.append("event paths never written to: %s" % odd[:4])
    return out


# -------------------------------------------------------------- the environment


class Env(Daemon):
    """A temporary directory with sources, a configuration, daemon runs."""

    STDOUT_FILE = False

    def __init__(self, name):
        super().__init__(BINARY, name, "pmtatail-%s-" % name, KEEP)
        self.outfile = os.path.join(self.tmp, "out", "events.ndjson")
        self.makedirs(os.path.dirname(self.outfile), self.logs)
        self.sims = {}
        self.out = Out(self.outfile)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def source(self, name, live=None, archive=None, first_n=1, **kw):
        """A source with its simulated writer (created on first use)."""
        if name not in self.sims:
            live = live or self.path("pmta", "%s.csv" % name)
            archive = archive or os.path.join(os.path.dirname(live), "archive")
            os.makedirs(archive, exist_ok=True)
            self.sims[name] = Sim(live, archive, seed=SEED + len(self.sims), first_n=first_n,
                                  **kw)
        return self.sims[name]

    def conf_text(self, sources=("bounces",), output=None, linger=20, extra=""):
        """The configuration text: the named sources (b, rb), an [output]
        (default: the NDJSON file), [state], and `extra` at the end."""
        parts = []
        for name in sources:
            s = self.source(name)
            parts.append("[source %s]\npath = %s\narchive_dir = %s\nrecords = b, rb\n"
                         % (name, s.live, s.archive_dir))
        if output is None:
            output = "file = %s\n" % self.outfile
        parts.append("[output]\n%sbatch_max_records = 50\nlinger_ms = %d\n" % (output, linger))
        parts.append("[state]\ndir = %s\n" % self.state)
        return "\n".join(parts) + ("\n" + extra if extra else "")

    def write_conf(self, text, path=None):
        path = path or self.conf
        tmp = path + ".new"
        with open(tmp, "w") as fh:
            fh.write(text)
        os.rename(tmp, path)  # the daemon never sees a half-written file
        return path

    # -- the daemon

    def start(self, env=None, wait_ready=True, conf=None):
        """A run without systemd's variables (but those in env)."""
        full_env = dict(os.environ)
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
            full_env.pop(k, None)
        full_env.update(env or {})
        return super().start(wait_ready=wait_ready, env=full_env, conf=conf)

    @property
    def err_path(self):
        return self.runs[-1][0] if self.runs else None

    def expect_stop(self, label, sig=signal.SIGTERM):
        rc = self.stop(sig)
        check("%s: %s, exit status 0" % (label, signal.Signals(sig).name), rc == 0,
              ["got %r" % (rc,)] + clip(self.stderr(), 6))
        return rc

    # The last run's stderr (or the file at path), as one text.

    def stderr(self, path=None):
        try:
            with open(path or self.err_path, "rb") as fh:
                return fh.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def messages(self, path=None):
        """stderr with the temporary directory replaced by TMP (so that a word
        search does not match the directory's name, which holds the scenario's)."""
        return self.stderr(path).replace(self.tmp, "TMP")

    def said(self, pattern, path=None):
        return [ln for ln in self.messages(path).splitlines() if re.search(pattern, ln, re.I)]

    # -- other commands

    def cmd(self, *args, conf=None, user=None, timeout=20):
        """Run `pmtatail -c CONF ARGS...`: (exit status, stdout, stderr)."""
        return self.command(*args, conf=conf, user=user, timeout=timeout)

    def status_json(self):
        return self.status_json_args()

    def status_json_args(self, *args):
        rc, out, err = self.cmd("status", "--json", *args)
        try:
            obj = json.loads(out)
        except ValueError:
            obj = None
        return rc, obj, out, err

    # -- waiting

    def wait_delivered(self, sims=None, timeout=TIMEOUT):
        sims = list(self.sims.values()) if sims is None else sims
        req = set(n for s in sims for n in s.required())

        def done():
            self.out.poll()
            return all(self.out.counts.get(n) for n in req) or not self.alive()
        poll_until(done, timeout)
        return all(self.out.counts.get(n) for n in req)

    def delivery_check(self, label, sims=None):
        self.out.poll()
        sims = list(self.sims.values()) if sims is None else sims
        probs = delivery_problems(self.out.counts, sims, self.out.strays, self.out.bad,
                                  self.out.paths)
        total = sum(len(s.required()) for s in sims)
        check("%s: all %d written records delivered, each once" % (label, total), not probs,
              probs + clip(self.stderr(), 6))

    def close_writers(self):
        for s in self.sims.values():
            try:
                s.close()
            except (OSError, AttributeError):
                pass


# -------------------------------------------------------------- sd_notify


class Notify:
    """An AF_UNIX datagram socket standing for systemd's notification socket.
    Records every datagram: (monotonic time, the assignments, sender pid,
    and what the state directory held when it arrived)."""

    def __init__(self, path, offsets):
        self.path = path
        self.offsets = offsets
        self.daemon_pid = None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.05)
        self.msgs = []   # (t, [lines], pid, offsets.json existed, watches)
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        csize = socket.CMSG_SPACE(struct.calcsize("iII"))
        while not self.stop_ev.is_set():
            try:
                data, anc, _, _ = self.sock.recvmsg(65536, csize)
            except socket.timeout:
                continue
            except OSError:
                return
            t = time.monotonic()
            pid = None
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", cdata[:struct.calcsize("iII")])[0]
            lines = data.decode("utf-8", "replace").split("\n")
            have_offsets = watches = None
            if "READY=1" in lines:
                have_offsets = os.path.exists(self.offsets)
                watches = inotify_watches(pid) if pid else None
            with self.lock:
                self.msgs.append((t, [ln for ln in lines if ln], pid, have_offsets, watches))

    def all(self):
        with self.lock:
            return list(self.msgs)

    def times(self, assignment, since=0.0):
        return [m[0] for m in self.all() if assignment in m[1] and m[0] >= since]

    def values(self, key, since=0.0):
        return [(m[0], ln[len(key) + 1:]) for m in self.all() if m[0] >= since
                for ln in m[1] if ln.startswith(key + "=")]

    def wait(self, assignment, timeout, since=0.0):
        return poll_until(lambda: self.times(assignment, since), timeout)

    def close(self):
        self.stop_ev.set()
        self.th.join(2)
        self.sock.close()


SCENARIOS = []


def scenario(fn):
    SCENARIOS.append(fn)
    return fn


@scenario
def notify(e):
    """The sd_notify protocol, as systemd's Type=notify with WatchdogSec=
    and ExecReload=kill -HUP sees it."""
    sim = e.source("bounces")
    e.write_conf(e.conf_text())
    n = Notify(e.path("notify.sock"), e.offsets)
    try:
        t_start = time.monotonic()
        e.start(env={"NOTIFY_SOCKET": n.path, "WATCHDOG_USEC": str(WATCHDOG_USEC)},
                wait_ready=False)
        pid = e.proc.pid
        ready = n.wait("READY=1", 5)
        check("notify: READY=1 received", bool(ready),
              ["datagrams: %r" % [m[1] for m in n.all()][:10]] + clip(e.stderr(), 6))
        if ready:
            info("notify: READY=1 %.0f ms after the start" % ((ready[0] - t_start) * 1000))
            first = [m for m in n.all() if "READY=1" in m[1]][0]
            check("notify: offsets.json exists when READY=1 arrives", first[3] is True,
                  ["offsets.json present: %r" % first[3]])
            check("notify: inotify watches armed when READY=1 arrives (%r)" % first[4],
                  (first[4] or 0) >= 1)
        status = n.values("STATUS")
        check("notify: a STATUS= line by the time it is ready", bool(status),
              ["datagrams: %r" % [m[1] for m in n.all()][:10]])
        if status:
            info("notify: first STATUS=%s" % status[0][1])

        # Progress shows in STATUS=.
        sim.write(100)
        ok = e.wait_delivered()
        check("notify: 100 records delivered", ok, clip(e.stderr(), 6))
        got = poll_until(lambda: [v for _, v in n.values("STATUS") if re.search(r"\b100\b", v)],
                         6)
        check("notify: a STATUS= line reports the 100 records delivered", bool(got),
              ["STATUS lines: %r" % [v for _, v in n.values("STATUS")][-6:]])

        # The watchdog: every half period, never a gap near the period.
        t0 = time.monotonic()
        time.sleep(2.0)
        pings = n.times("WATCHDOG=1", since=t0)
        gaps = [(b - a) * 1000 for a, b in zip(pings, pings[1:])]
        info("notify: %d WATCHDOG=1 in 2 s, gaps %s ms" % (
            len(pings), ", ".join("%.0f" % g for g in gaps[:12])))
        check("notify: WATCHDOG=1 about every 200 ms (%d in 2 s, want >= 7)" % len(pings),
              len(pings) >= 7)
        check("notify: no gap between WATCHDOG=1 pings reaches the %d ms period (max %.0f ms)"
              % (WATCHDOG_USEC // 1000, max(gaps) if gaps else -1),
              bool(gaps) and max(gaps) < WATCHDOG_USEC / 1000.0)
        # counted, not timed one by one: two pings read late by this process
        # arrive back to back whatever the daemon's spacing was
        check("notify: pings not far more often than half the period (%d in 2 s, max 20; "
              "min gap as read %.0f ms)" % (len(pings), min(gaps) if gaps else -1),
              bool(gaps) and len(pings) <= 20)

        # A bad configuration: refused, nothing said to systemd about a reload.
        good = e.conf_text(linger=20)
        e.write_conf(good.replace("[state]", "no_such_key = 1\n\n[state]"))
        t_bad = time.monotonic()
        e.proc.send_signal(signal.SIGHUP)
        refused = poll_until(lambda: e.said(r"reload.*refused|refused.*reload"), 5)
        check("notify: SIGHUP with a bad configuration is refused in the log", bool(refused),
              clip(e.stderr(), 6))
        time.sleep(0.3)
        check("notify: no RELOADING=1 for a refused configuration",
              not n.times("RELOADING=1", since=t_bad),
              ["datagrams since: %r" % [m[1] for m in n.all() if m[0] >= t_bad][:8]])
        check("notify: still running after a refused reload", e.alive(), clip(e.stderr(), 6))

        # A good, changed configuration.
        e.write_conf(e.conf_text(linger=60))
        t_hup = time.monotonic()
        e.proc.send_signal(signal.SIGHUP)
        rel = n.wait("RELOADING=1", 5, since=t_hup)
        check("notify: RELOADING=1 on SIGHUP with a changed configuration", bool(rel),
              ["datagrams since: %r" % [m[1] for m in n.all() if m[0] >= t_hup][:8]] +
              clip(e.stderr(), 6))
        if rel:
            again = n.wait("READY=1", 5, since=rel[0])
            check("notify: READY=1 again once the reload is done (sd_notify(3))", bool(again),
                  ["datagrams since: %r" % [m[1] for m in n.all() if m[0] >= rel[0]][:8]])
            mono = [m[1] for m in n.all() if "RELOADING=1" in m[1]]
            info("notify: RELOADING datagram: %r (MONOTONIC_USEC=, needed only for "
                 "Type=notify-reload: %s)" % (mono[0], any(
                     ln.startswith("MONOTONIC_USEC=") for ln in mono[0])))
        time.sleep(0.6)
        pings = n.times("WATCHDOG=1", since=t_hup - 0.5)
        gaps = [(b - a) * 1000 for a, b in zip(pings, pings[1:])]
        check("notify: the watchdog goes on across the reload (max gap %.0f ms)"
              % (max(gaps) if gaps else -1), len(pings) >= 3 and max(gaps) < WATCHDOG_USEC / 1000.0)
        sim.write(50)
        check("notify: delivers after the reload", e.wait_delivered(), clip(e.stderr(), 6))

        # SIGTERM.
        t_term = time.monotonic()
        p = e.proc
        rc = e.stop()
        check("notify: SIGTERM, exit status 0", rc == 0, ["got %r" % (rc,)] + clip(e.stderr()))
        stopping = n.wait("STOPPING=1", 1, since=t_term)
        check("notify: STOPPING=1 on SIGTERM", bool(stopping),
              ["datagrams since: %r" % [m[1] for m in n.all() if m[0] >= t_term][:8]])
        late = [m[1] for m in n.all() if stopping and m[0] > stopping[0]
                and ("READY=1" in m[1] or "RELOADING=1" in m[1])]
        check("notify: no READY=1/RELOADING=1 after STOPPING=1", not late, [repr(late[:3])])
        pids = collections.Counter(m[2] for m in n.all())
        check("notify: every datagram comes from the daemon's pid %d (NotifyAccess=main)" % pid,
              set(pids) == {p.pid}, ["sender pids: %r" % dict(pids)])
        info("notify: %d datagrams: %s" % (len(n.all()), dict(collections.Counter(
            ln.split("=")[0] for m in n.all() for ln in m[1]))))
    finally:
        n.close()

    # Without WATCHDOG_USEC: no pings (an idle daemon never wakes up).
    n2 = Notify(e.path("notify2.sock"), e.offsets)
    try:
        e.start(env={"NOTIFY_SOCKET": n2.path}, wait_ready=False)
        ready = n2.wait("READY=1", 5)
        check("notify (no watchdog): READY=1 received", bool(ready), clip(e.stderr(), 6))
        time.sleep(1.0)
        check("notify (no watchdog): no WATCHDOG=1 without WATCHDOG_USEC",
              not n2.times("WATCHDOG=1"), ["%d pings" % len(n2.times("WATCHDOG=1"))])
        e.expect_stop("notify (no watchdog)")
    finally:
        n2.close()
    e.delivery_check("notify")


# -------------------------------------------------------------- SIGHUP reload


@scenario
def reload(e):
    """SIGHUP: a good new configuration (a second source, another linger_ms)
    is taken without losing or repeating a record; a bad one is refused with
    its file and line, and delivery goes on with the old one."""
    s1 = e.source("bounces", filtered_ratio=0.03)
    s2 = e.source("second", live=e.path("pmta2", "second.csv"), first_n=1000000)
    e.write_conf(e.conf_text(sources=("bounces",), linger=20))
    e.start()
    s1.write(300)
    check("reload: first source delivered before the reload", e.wait_delivered(sims=[s1]),
          clip(e.stderr(), 6))

    # The new configuration; records in flight in both files as it comes.
    v2 = e.conf_text(sources=("bounces", "second"), linger=70)
    e.write_conf(v2)
    s2.write(200)
    s1.write(100)
    e.proc.send_signal(signal.SIGHUP)
    s1.write(50)
    said = poll_until(lambda: e.said(r"reload"), 5)
    check("reload: the log says the configuration is reloaded", bool(said), clip(e.stderr(), 6))
    if said:
        info("reload: " + said[0])
    s1.write(100)
    s2.write(100)
    ok = e.wait_delivered()
    check("reload: the new source's records are delivered", ok and all(
        e.out.counts.get(n) for n in s2.required()), clip(e.stderr(), 6))
    check("reload: still running", e.alive(), clip(e.stderr(), 6))
    e.delivery_check("reload (good configuration)")

    # A bad configuration: an unknown key on a known line.
    lines = v2.splitlines()
    at = lines.index("[output]") + 1  # 0-based index of the line after [output]
    lines.insert(at, "lingr_ms = 5")
    bad_line = at + 1
    e.write_conf("\n".join(lines) + "\n")
    mark = len(e.messages())
    e.proc.send_signal(signal.SIGHUP)

    def new_lines():
        return e.messages()[mark:]
    poll_until(lambda: re.search(r"refused", new_lines(), re.I) and
               re.search(r"lingr_ms", new_lines()), 5)
    text = new_lines()
    check("reload: a bad configuration is refused in the log", bool(re.search(
        r"reload.*refused|refused.*reload", text, re.I)), clip(text, 6))
    check("reload: the refusal names the file and line (pmtatail.conf:%d) and the key"
          % bad_line, bool(re.search(r"pmtatail\.conf:%d\b.*lingr_ms" % bad_line, text)),
          clip(text, 6))
    time.sleep(0.3)
    check("reload: still running after the refused reload", e.alive(), clip(e.stderr(), 6))
    s1.write(100)
    s2.write(100)
    check("reload: both sources still delivered after the refused reload",
          e.wait_delivered(), clip(e.stderr(), 6))
    e.delivery_check("reload (after a refused configuration)")

    # Fixed again: a reload after a refused one works.
    e.write_conf(v2)
    mark = len(e.messages())
    e.proc.send_signal(signal.SIGHUP)
    poll_until(lambda: re.search(r"reload", new_lines(), re.I), 5)
    check("reload: a good configuration after a refused one is taken",
          bool(re.search(r"reload", new_lines(), re.I)) and
          not re.search(r"refused", new_lines(), re.I), clip(new_lines(), 4))
    s1.write(50)
    s2.write(50)
    check("reload: delivered after the second reload", e.wait_delivered(), clip(e.stderr(), 6))
    e.expect_stop("reload")
    e.delivery_check("reload")


# -------------------------------------------------------------- the lock


@scenario
def lock(e):
    """One daemon per state directory."""
    sim = e.source("bounces")
    e.write_conf(e.conf_text())
    e.start()
    first = e.proc
    sim.write(100)
    e.wait_delivered()
    # The second one: same state dir, another output file.
    conf2 = e.write_conf(e.conf_text(output="file = %s\n" % e.path("out", "second.ndjson")),
                         path=e.path("second.conf"))
    err2 = os.path.join(e.logs, "second.stderr")
    with open(err2, "wb") as eh:
        p2 = subprocess.Popen([BINARY, "-c", conf2, "run"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=eh)
    e.extra_procs.append(p2)
    rc = poll_until(lambda: p2.poll() is not None, 10) and p2.returncode
    text = e.stderr(err2)
    check("lock: a second run on the same state directory exits 1", rc == 1,
          ["exit status %r" % (rc if p2.poll() is not None else "still running")] + clip(text))
    check("lock: its message says another pmtatail holds the state directory",
          "another pmtatail holds" in text and e.state in text, clip(text))
    if text:
        info("lock: " + text.strip().splitlines()[-1].replace(e.tmp, "TMP"))
    check("lock: the message names the holder's pid %d" % first.pid,
          re.search(r"\b%d\b" % first.pid, text) is not None, clip(text))
    check("lock: the first daemon is still running", e.alive(), clip(e.stderr(), 6))
    try:
        with open(os.path.join(e.state, "status.json")) as fh:
            spid = json.load(fh).get("pid")
    except (OSError, ValueError):
        spid = None
    check("lock: status.json is still the first daemon's (pid %r)" % spid, spid == first.pid)
    check("lock: the second run wrote no event",
          not os.path.exists(e.path("out", "second.ndjson")) or
          os.path.getsize(e.path("out", "second.ndjson")) == 0)
    sim.write(100)
    check("lock: the first daemon goes on delivering", e.wait_delivered(), clip(e.stderr(), 6))
    e.expect_stop("lock")
    # Once it is gone the lock is free.
    e.start()
    check("lock: a new run starts once the first has stopped", e.alive(), clip(e.stderr(), 6))
    e.expect_stop("lock (second run)")
    e.delivery_check("lock")


# -------------------------------------------------------------- status

STATUS_KEYS = {"healthy": bool, "running": bool, "sources": list, "last_delivery": int,
               "last_error": str, "dead_letters": int}
SOURCE_KEYS = {"name": str, "file": str, "offset": int, "size": int, "bytes_behind": int}


def json_key_problems(obj):
    if not isinstance(obj, dict):
        return ["not a JSON object: %.200r" % (obj,)]
    out = []
    for k, t in STATUS_KEYS.items():
        if k not in obj:
            out.append("no key %r" % k)
        elif not isinstance(obj[k], t) or (t is int and isinstance(obj[k], bool)):
            out.append("%r is %r, want %s" % (k, obj[k], t.__name__))
    for s in obj.get("sources") or []:
        for k, t in SOURCE_KEYS.items():
            if k not in s:
                out.append("source %r: no key %r" % (s.get("name"), k))
            elif not isinstance(s[k], t):
                out.append("source %r: %r is %r, want %s" % (s.get("name"), k, s[k], t.__name__))
    return out


def src_of(obj, name="bounces"):
    for s in (obj or {}).get("sources") or []:
        if s.get("name") == name:
            return s
    return {}


@scenario
def status(e):
    """status and status --json through a daemon's life, with a file
    output; then with an HTTP backend refusing the credentials."""
    sim = e.source("bounces")
    e.write_conf(e.conf_text())
    e.start()
    sim.write(200)
    check("status: records delivered", e.wait_delivered(), clip(e.stderr(), 6))
    size = os.path.getsize(sim.live)

    def caught_up():
        rc, obj, out, err = e.status_json()
        s = src_of(obj)
        return (rc == 0 and s.get("bytes_behind") == 0 and s.get("offset") == size
                and s.get("size") == size) and (rc, obj, out)
    got = poll_until(caught_up, 10, 0.1)
    rc, obj, out, err = e.status_json()
    check("status --json: running daemon, all delivered: exit 0, offset = size = %d, "
          "bytes_behind 0" % size, bool(got),
          ["exit %r" % rc] + clip(out, 30) + clip(err, 4))
    probs = json_key_problems(obj)
    check("status --json: parses and has the documented keys", not probs, probs)
    if isinstance(obj, dict):
        check("status --json: running true, healthy true",
              obj.get("running") is True and obj.get("healthy") is True, clip(out, 20))
        s = src_of(obj)
        check("status --json: the source's file is the live file", s.get("file") == sim.live,
              ["file %r" % s.get("file")])
        ld = obj.get("last_delivery")
        check("status --json: last_delivery is recent (%r)" % ld,
              isinstance(ld, int) and abs(time.time() - ld) < 60)
        info("status --json keys: %s; source keys: %s" % (
            ", ".join(obj), ", ".join(s)))
    rc, out, err = e.cmd("status")
    check("status: running daemon, all delivered: exit 0, first line 'PMTATAIL OK - running'",
          rc == 0 and out.startswith("PMTATAIL OK - running"), clip(out) + clip(err, 4))
    check("status: says running, shows the source with its file, offset %d and nothing behind"
          % size, re.search(r"\brunning\b", out) and not re.search(r"not running", out) and
          sim.live in out and re.search(r"offset[=: ]+%d\b" % size, out) and
          re.search(r"behind[=: ]+0\b", out), clip(out))
    info("status (running):\n    " + out.replace(e.tmp, "TMP").strip().replace("\n", "\n    "))

    e.expect_stop("status")
    rc, obj, out, err = e.status_json()
    s = src_of(obj)
    check("status --json: stopped daemon, nothing pending: exit 3 (UNKNOWN), running false, "
          "bytes_behind 0", rc == 3 and isinstance(obj, dict) and obj.get("running") is False
          and s.get("bytes_behind") == 0 and obj.get("verdict") == "UNKNOWN"
          and obj.get("exit") == 3, ["exit %r" % rc] + clip(out, 30) + clip(err, 4))
    rc, out, err = e.cmd("status")
    check("status: stopped daemon, nothing pending: exit 3, first line "
          "'PMTATAIL UNKNOWN - daemon not running'",
          rc == 3 and out.startswith("PMTATAIL UNKNOWN - daemon not running"),
          ["exit %r" % rc] + clip(out) + clip(err, 4))

    sim.write(50)
    grown = os.path.getsize(sim.live) - size
    rc, obj, out, err = e.status_json()
    s = src_of(obj)
    check("status --json: stopped with records written since: exit 3, healthy false",
          rc == 3 and isinstance(obj, dict) and obj.get("healthy") is False,
          ["exit %r" % rc] + clip(out, 30) + clip(err, 4))
    check("status --json: bytes_behind = the %d bytes written since the stop" % grown,
          s.get("bytes_behind") == grown, ["source: %r" % s])
    if isinstance(obj, dict):
        check("status --json: the problem says the daemon is not running (%r)"
              % obj.get("problem"), bool(re.search(r"not running|stall",
                                                   str(obj.get("problem")), re.I)))
    rc, out, err = e.cmd("status")
    check("status: stopped with records waiting: exit 3, the first line says not running "
          "and the bytes waiting",
          rc == 3 and re.match(r"PMTATAIL UNKNOWN - daemon not running, %d bytes waiting" % grown,
                               out), ["exit %r" % rc] + clip(out))
    info("status (stopped, behind):\n    " +
         out.replace(e.tmp, "TMP").strip().replace("\n", "\n    "))

    e.start()
    check("status: restarted daemon delivers the backlog", e.wait_delivered(),
          clip(e.stderr(), 6))
    size = os.path.getsize(sim.live)
    got = poll_until(caught_up, 10, 0.1)
    check("status: healthy again (exit 0) once the backlog is delivered", bool(got),
          clip(e.status_json()[2], 20))
    e.expect_stop("status (restart)")
    e.delivery_check("status")

    # The backend refuses the credentials (401).
    b = e.backend = Backend().start()
    b.require_header("X-Octeth-Signature", "the-right-one")
    hdr_file = e.path("signature")
    with open(hdr_file, "w") as fh:
        fh.write("# the signature\nX-Other-Secret: %s\n" % SECRET_FILE)
    os.chmod(hdr_file, 0o600)
    e.write_conf(e.conf_text(output="url = %s\nheader = X-Octeth-Signature: %s\n"
                             "header_file = %s\nretry_max_s = 1\ntimeout_s = 5\n"
                             % (b.url(), SECRET, hdr_file)))
    e.start()
    sim.write(30)

    def refused():
        rc, obj, out, err = e.status_json()
        return rc == 2 and isinstance(obj, dict) and obj.get("credentials_refused") is True \
            and (rc, obj, out)
    got = poll_until(refused, 10, 0.1)
    rc, obj, out, err = e.status_json()
    try:
        with open(os.path.join(e.state, "status.json")) as fh:
            sj = json.load(fh)
        sj_note = ("STATE_DIR/status.json: updated %d s ago, credentials_refused %r, "
                   "retrying %r, answers %r" % (time.time() - sj.get("updated", 0),
                                                sj.get("credentials_refused"),
                                                sj.get("retrying"), sj.get("answers")))
    except (OSError, ValueError) as ex:
        sj_note = "STATE_DIR/status.json: %s" % ex
    check("status --json: backend answering 401: exit 2 (CRITICAL), credentials_refused true",
          bool(got), ["exit %r" % rc, "the backend has answered 401 %d times; the daemon "
                      "logged: %s" % (b.stats()["by_status"].get("401", 0),
                                      (e.said("credential") or ["nothing"])[0]), sj_note] +
          clip(out, 30) + clip(err, 4))
    if isinstance(obj, dict):
        check("status --json: the problem names the credentials (%r)" % obj.get("problem"),
              bool(re.search(r"credential", str(obj.get("problem")), re.I)))
    rc_t, out_t, err_t = e.cmd("status")
    check("status: backend answering 401: exit 2, the first line says credentials",
          rc_t == 2 and re.match(r"PMTATAIL CRITICAL - .*credentials refused", out_t),
          ["exit %r" % rc_t] + clip(out_t))
    info("status (401):\n    " + out_t.replace(e.tmp, "TMP").strip().replace("\n", "\n    "))
    shown = {}
    for label, text in (("status", out_t + err_t), ("status --json", out + err),
                        ("status.json", open(os.path.join(e.state, "status.json")).read()),
                        ("the daemon's stderr", e.stderr())):
        for secret in (SECRET, SECRET_FILE):
            if secret in text:
                shown.setdefault(label, []).append(secret)
    check("status: no secret header value in status, status --json, status.json or the log",
          not shown, ["%s shows %s" % kv for kv in shown.items()])

    b.require_header(None)
    ok = poll_until(lambda: all(b.accepted_counts("rcpt").get("u%d@example.com" % n)
                                for n in sim.required()[-30:]), 15)
    st = b.stats()
    check("status: delivered once the backend takes the credentials", bool(ok),
          ["backend: %d requests, answers %r, last request %.1f s ago" % (
              st["requests"], st["by_status"],
              time.monotonic() - b.requests()[-1].t0 if b.requests() else -1)] +
          clip(e.stderr(), 6))
    got = poll_until(lambda: e.status_json()[0] == 0, 10, 0.1)
    rc, obj, out, err = e.status_json()
    check("status --json: healthy again (exit 0, credentials_refused false) after the 401s",
          bool(got) and isinstance(obj, dict) and obj.get("credentials_refused") is False,
          ["exit %r" % rc] + clip(out, 30))
    e.expect_stop("status (401)")


def verdict(e, *args):
    """`status ARGS` and `status --json ARGS`: (exit status, first line,
    --json's exit status, its object, the text) -- the same verdict both ways."""
    rc, out, err = e.cmd("status", *args)
    rcj, obj, outj, errj = e.status_json_args(*args)
    first = out.splitlines()[0] if out else ""
    return rc, first, rcj, obj if isinstance(obj, dict) else {}, out + err


def check_verdict(label, got, rc, level, pattern):
    """One state: exit status rc both ways, the first line
    'PMTATAIL LEVEL - ...' matching pattern, --json's verdict, exit and
    summary the same."""
    code, first, codej, obj, text = got
    check("status verdicts: %s: exit %d, first line 'PMTATAIL %s - ' ~ /%s/"
          % (label, rc, level, pattern),
          code == rc and first.startswith("PMTATAIL %s - " % level)
          and re.search(pattern, first) is not None, ["exit %r" % code] + clip(text, 14))
    check("status verdicts: %s: --json says the same (exit %d, verdict %s, the same summary)"
          % (label, rc, level),
          codej == rc and obj.get("verdict") == level and obj.get("exit") == rc
          and obj.get("summary") == first, ["exit %r, %r" % (codej, {
              k: obj.get(k) for k in ("verdict", "exit", "summary", "problems")})])


@scenario
def status_verdicts(e):
    """status's monitoring-plugin verdicts, each state made for real where the
    daemon can be brought into it: running and caught up (0), dead letters
    waiting (1), records behind with the backend failing for longer than
    --max-behind (2; not before), not running (3); the endpoint refusing
    and files blocked from a status.json the daemon would write, with the
    state directory's lock held as a running daemon holds it (2)."""
    sim = e.source("bounces")
    b = e.backend = Backend().start()
    e.write_conf(e.conf_text(output="url = %s\nretry_max_s = 1\ntimeout_s = 5\n" % b.url()))
    e.start()

    def accepted(numbers):
        got = b.accepted_counts("rcpt")
        return all(got.get("u%d@example.com" % n) for n in numbers)
    sim.write(20)
    check("status verdicts: records delivered", poll_until(lambda: accepted(sim.required()), 15),
          clip(e.stderr(), 6))
    ok_line = (r"^PMTATAIL OK - running, 0 bytes behind, last delivery \d+s ago "
               r"\| bytes_behind=0B dead_letters=0$")
    # status.json follows the deliveries within a few seconds
    poll_until(lambda: re.match(ok_line, verdict(e)[1]), 10, 0.2)
    check_verdict("running, caught up", verdict(e), 0, "OK", ok_line)

    # the next records refused on their own: dead letters
    last = max(sim.required())
    b.refuse("rcpt", ["u%d@example.com" % n for n in range(last + 1, last + 3)], 422)
    sim.write(5)
    ok = poll_until(lambda: accepted([n for n in sim.required() if n > last + 2]) and
                    verdict(e)[0] == 1, 15, 0.2)
    check("status verdicts: two records dead-lettered, the rest delivered", bool(ok),
          clip(verdict(e)[4], 14) + clip(e.stderr(), 6))
    check_verdict("dead letters", verdict(e), 1, "WARNING", r"2 dead letters waiting")

    # the backend fails: records wait; critical only once they have waited
    # longer than --max-behind
    b.refuse(None, None)
    b.set_default(status=503)
    before = max(sim.required())
    sim.write(5)
    check("status verdicts: the records wait (bytes behind, nothing accepted)",
          poll_until(lambda: verdict(e)[3].get("sources", [{}])[0].get("bytes_behind", 0) > 0,
                     10, 0.1), clip(verdict(e)[4], 14))
    check_verdict("behind, within --max-behind 60", verdict(e, "--max-behind", "60"), 1,
                  "WARNING", r"dead letters waiting")
    poll_until(lambda: verdict(e, "--max-behind", "2")[0] == 2, 10, 0.2)
    got = verdict(e, "--max-behind", "2")
    check_verdict("behind, longer than --max-behind 2", got, 2, "CRITICAL",
                  r"CRITICAL - behind: records waiting and nothing delivered for \d+ min.*; "
                  r"2 dead letters waiting")
    check("status verdicts: behind: --json's behind_seconds is over 2 (%r)"
          % got[3].get("behind_seconds"), (got[3].get("behind_seconds") or 0) > 2)
    b.set_default(status=200)
    check("status verdicts: delivered once the backend answers again",
          poll_until(lambda: accepted([n for n in sim.required() if n > before]), 15),
          clip(e.stderr(), 6))

    # the dead letters sent again: all is well
    rc, out, err = e.cmd("dead-letter", "resend", timeout=30)
    check("status verdicts: dead-letter resend", rc == 0, clip(out + err, 8))
    poll_until(lambda: verdict(e, "--max-behind", "2")[0] == 0, 10, 0.2)
    check_verdict("caught up again, no dead letters", verdict(e, "--max-behind", "2"), 0, "OK",
                  r"running")
    e.expect_stop("status verdicts")
    check_verdict("not running", verdict(e), 3, "UNKNOWN", r"UNKNOWN - daemon not running")

    # What a running daemon writes when its endpoint refuses every request,
    # or when files it owes cannot be read: status.json, read while the
    # lock is held (status asks the lock whether a daemon runs).
    import fcntl
    lock = open(os.path.join(e.state, "lock"), "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        now = int(time.time())
        base = {"version": 1, "pid": os.getpid(), "started": now - 100, "updated": now,
                "state": "running", "output": "url", "last_delivery": now - 5,
                "behind_since": 0, "retrying": False, "credentials_refused": False,
                "endpoint_refusing": False, "endpoint_status": 0, "last_error": "",
                "sources": [{"name": "bounces", "file": sim.live, "offset": 0, "size": 0,
                             "bytes_behind": 0, "files": 1, "blocked": 0}]}

        def status_json_says(obj):
            with open(os.path.join(e.state, "status.json"), "w") as fh:
                json.dump(obj, fh)
        status_json_says(base)
        check_verdict("held lock, status.json all well", verdict(e), 0, "OK", r"running")
        status_json_says(dict(base, endpoint_refusing=True, endpoint_status=404, retrying=True,
                              last_error="HTTP 404"))
        check_verdict("endpoint refusing", verdict(e), 2, "CRITICAL",
                      r"the endpoint refuses every request \(HTTP 404\)")
        src = dict(base["sources"][0], blocked=2, blocked_file=sim.live + ".1",
                   blocked_reason="Permission denied")
        status_json_says(dict(base, sources=[src]))
        check_verdict("files blocked", verdict(e), 2, "CRITICAL",
                      r"blocked: Permission denied \(2 files of source bounces\)")
    finally:
        lock.close()


# -------------------------------------------------------------- metrics

METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE_RE = re.compile(r"^(%s)(\{(?:%s(?:,%s)*,?)?\})? (\S+)( -?\d+)?$" % (METRIC_NAME, LABEL,
                                                                         LABEL))
METRIC_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_prom(text):
    """Parse the Prometheus text format strictly: ({(name, labels): value},
    {name: type}, [problems])."""
    samples, types, helps, problems = {}, {}, set(), []
    if text and not text.endswith("\n"):
        problems.append("does not end with a newline")
    family_done = set()
    current = None

    def family(name):
        for suf in ("_total", "_bucket", "_sum", "_count", "_created"):
            if name.endswith(suf) and name[:-len(suf)] in types:
                return name[:-len(suf)]
        return name
    for i, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else
                             text.split("\n"), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            m = re.match(r"^# (HELP|TYPE) (%s) ?(.*)$" % METRIC_NAME, line)
            if not m:
                continue  # a plain comment
            kind, name, rest = m.groups()
            if kind == "HELP":
                if name in helps:
                    problems.append("line %d: second HELP for %s" % (i, name))
                helps.add(name)
            else:
                if name in types:
                    problems.append("line %d: second TYPE for %s" % (i, name))
                if rest not in METRIC_TYPES:
                    problems.append("line %d: unknown type %r" % (i, rest))
                if name in family_done or any(k[0] == name for k in samples):
                    problems.append("line %d: TYPE of %s after its samples" % (i, name))
                types[name] = rest
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            problems.append("line %d: not `name{labels} value`: %r" % (i, line))
            continue
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        try:
            v = float(value)
        except ValueError:
            problems.append("line %d: value %r is not a number" % (i, value))
            continue
        fam = family(name)
        if fam not in types:
            problems.append("line %d: %s has no TYPE line before it" % (i, name))
        if fam not in helps:
            problems.append("line %d: %s has no HELP line before it" % (i, name))
        if fam != current:
            if fam in family_done:
                problems.append("line %d: samples of %s not together" % (i, fam))
            if current is not None:
                family_done.add(current)
            current = fam
        lab = tuple(sorted(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels)))
        key = (name, lab)
        if key in samples:
            problems.append("line %d: sample %s%s twice" % (i, name, labels))
        if types.get(fam) == "counter" and (v < 0 or math.isnan(v)):
            problems.append("line %d: counter %s is %s" % (i, name, value))
        samples[key] = v
    return samples, types, problems


def metric(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


@scenario
def metrics(e):
    """[metrics] textfile after a known run over an HTTP backend: 120 b and
    30 rb records delivered, 10 d rows filtered, 5 rows rejected."""
    b = e.backend = Backend().start()
    live_dir = e.path("pmta")
    os.makedirs(os.path.join(live_dir, "archive"))
    live = os.path.join(live_dir, "bounces.csv")
    mdir = e.path("metrics")
    os.makedirs(mdir)
    prom = os.path.join(mdir, "pmtatail.prom")
    e.write_conf("[source bounces]\npath = %s\narchive_dir = %s/archive\nrecords = b, rb\n\n"
                 "[output]\nurl = %s\nbatch_max_records = 50\nlinger_ms = 20\nretry_max_s = 1\n"
                 "\n[state]\ndir = %s\n\n[metrics]\ntextfile = %s\ninterval_s = 1\n"
                 % (live, live_dir, b.url(), e.state, prom))
    # Record N is rb when N % 3 == 0 (pmta_sim): 120 b and 30 rb.
    b_ns = [n for n in range(1, 1000) if n % 3][:120]
    rb_ns = [n for n in range(1, 1000) if n % 3 == 0][:30]
    numbers = sorted(b_ns + rb_ns)
    rows = [HEADER]
    for i, n in enumerate(numbers):
        rows.append(record_bytes(n))
        if i % 15 == 7:
            rows.append(filtered_bytes(i))                    # 10 `d` rows
        if i % 30 == 11:
            rows.append(b"b,%d,bounce@x.example,bad%d@example.com\r\n" % (1704459600 + i, i))
    assert sum(r.startswith(b"d,") for r in rows) == 10
    assert sum(r.startswith(b"b,") and r.count(b",") == 3 for r in rows) == 5
    e.start()
    with open(live, "wb") as fh:
        for r in rows:
            fh.write(r)
    want = {"u%d@example.com" % n for n in numbers}
    ok = poll_until(lambda: want <= set(b.accepted_counts("rcpt")), TIMEOUT)
    check("metrics: the 150 records are accepted by the backend", bool(ok),
          ["accepted %d" % len(set(b.accepted_counts("rcpt")) & want)] + clip(e.stderr(), 6))
    expected = {
        ("pmtatail_records_read_total", (("source", "bounces"), ("type", "b"))): 120,
        ("pmtatail_records_read_total", (("source", "bounces"), ("type", "rb"))): 30,
        ("pmtatail_records_delivered_total", (("source", "bounces"), ("type", "b"))): 120,
        ("pmtatail_records_delivered_total", (("source", "bounces"), ("type", "rb"))): 30,
        ("pmtatail_records_rejected_total", (("source", "bounces"),)): 5,
        ("pmtatail_bytes_behind", (("source", "bounces"),)): 0,
    }

    def read():
        try:
            with open(prom) as fh:
                return fh.read()
        except OSError:
            return ""

    def matches():
        s, _, _ = parse_prom(read())
        return all(s.get(k) == v for k, v in expected.items())
    poll_until(matches, 6, 0.1)
    text = read()
    samples, types, problems = parse_prom(text)
    for (name, lab), v in expected.items():
        shown = "%s{%s} %d" % (name, ",".join('%s="%s"' % kv for kv in lab), v)
        got = samples.get((name, lab))
        check("metrics: %s" % shown, got == v,
              ["got %r" % got] + [ln for ln in text.splitlines() if ln.startswith(name)][:8])
    check("metrics: valid Prometheus text format (HELP and TYPE before every family, "
          "every sample `name{labels} value`)", bool(text) and not problems,
          problems[:10] + (["(empty file)"] if not text else []))
    check("metrics: counters are typed counter, bytes_behind a gauge",
          types.get("pmtatail_records_read_total") == "counter" and
          types.get("pmtatail_records_delivered_total") == "counter" and
          types.get("pmtatail_records_rejected_total") == "counter" and
          types.get("pmtatail_bytes_behind") == "gauge", ["types: %r" % types])
    two = sum(v for (n, lab), v in samples.items()
              if n == "pmtatail_http_answers_total" and ("class", "2xx") in lab)
    check("metrics: pmtatail_http_answers_total{class=\"2xx\"} > 0 (%r)" % two, two > 0,
          [ln for ln in text.splitlines() if "http_answers" in ln][:8])
    last = metric(samples, "pmtatail_last_success_timestamp_seconds")
    check("metrics: pmtatail_last_success_timestamp_seconds is recent (%r, now %d)"
          % (last, time.time()), last is not None and abs(time.time() - last) < 60)
    info("metrics: %d samples in %d families" % (len(samples), len(types)))

    # Atomic rewrites: a reader never sees a partial file.
    torn, inodes, reads = [], set(), 0
    first = set(samples)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.5:
        try:
            st = os.stat(prom)
            inodes.add(st.st_ino)
        except OSError:
            torn.append("the file was missing for a moment")
            continue
        t = read()
        reads += 1
        s, _, p = parse_prom(t)
        if p or set(s) != first:
            torn.append("read %d: %d bytes, %s" % (reads, len(t), (p or ["other samples"])[0]))
        time.sleep(0.002)
    check("metrics: rewritten while running (%d versions seen over 2.5 s with interval_s = 1)"
          % len(inodes), len(inodes) >= 2)
    check("metrics: every one of %d reads saw a complete file (rename, not rewrite in place)"
          % reads, not torn, torn[:5])
    e.expect_stop("metrics")
    left = [f for f in os.listdir(mdir) if f != "pmtatail.prom"]
    check("metrics: nothing but pmtatail.prom left in its directory after stop", not left, left)
    samples, _, problems = parse_prom(read())
    check("metrics: the file after stop still holds the run's counters",
          not problems and all(samples.get(k) == v for k, v in expected.items()),
          problems[:5] + clip(read(), 10))
    check("metrics: the backend accepted no record twice",
          not [k for k, c in b.accepted_counts("rcpt").items() if c > 1])


# -------------------------------------------------------------- check-config


def all_text(res):
    return res[1] + res[2]


@scenario
def check_config(e):
    """check-config on a good file and on broken ones."""
    pm = e.path("pmta")
    arch = e.path("pmta", "archive")
    os.makedirs(arch)
    live = os.path.join(pm, "bounces.csv")
    with open(live, "wb") as fh:
        fh.write(HEADER + record_bytes(1))
    os.makedirs(e.state)
    hdr_file = e.path("signature")
    with open(hdr_file, "w") as fh:
        fh.write("X-Other-Secret: %s\n" % SECRET_FILE)
    mdir = e.path("metrics")
    os.makedirs(mdir)
    good = ("[source bounces]\npath = %s\narchive_dir = %s\nrecords = b, rb\n\n"
            "[source fbl]\npath = %s/fbl.csv\narchive_dir = %s\nrecords = feedback-loop\n\n"
            "[output]\nurl = http://oempro:%s@127.0.0.1:9/system/bounce_webhook?type=pmta\n"
            "header = X-Octeth-Signature: %s\nheader_file = %s\n\n"
            "[state]\ndir = %s\n\n[classify]\nforward = all\n\n[log]\nlevel = info\n\n"
            "[metrics]\ntextfile = %s/pmtatail.prom\ninterval_s = 5\n"
            % (live, arch, pm, arch, URL_PASSWORD, SECRET, hdr_file, e.state, mdir))
    conf = e.write_conf(good)
    rc, out, err = res = e.cmd("check-config", conf=conf)
    check("check-config: a good file: exit 0", rc == 0, ["exit %r" % rc] + clip(all_text(res)))
    missing = [s for s in ("[source bounces]", "[source fbl]", "[output]", "[state]",
                           "[classify]", "[log]", "[metrics]") if s not in out]
    check("check-config: shows every section", not missing, ["missing %s" % missing] + clip(out))
    check("check-config: shows the defaults filled in (batch_max_records = 500, "
          "linger_ms = 1000)", "batch_max_records = 500" in out and "linger_ms = 1000" in out,
          clip(out, 40))
    leaked = [s for s in (SECRET, SECRET_FILE, URL_PASSWORD) if s in all_text(res)]
    check("check-config: secrets (header, header_file, URL password) never shown", not leaked,
          ["shown: %s" % leaked])
    check("check-config: secrets masked as ****", out.count("****") >= 2 and
          re.search(r"X-Octeth-Signature: \*{4}", out) and "oempro:" not in out, clip(out, 40))
    check("check-config: ends with the number of problems (0)",
          re.search(r"\b0 problems\b", out), clip(out, 3))

    def broken(label, text, *patterns, count=None):
        path = e.write_conf(text, path=e.path("broken-%s.conf" % re.sub(r"\W+", "-", label)))
        r = e.cmd("check-config", conf=path)
        t = all_text(r).replace(e.tmp, "TMP")
        miss = [p for p in patterns if not re.search(p, t, re.I | re.M)]
        ok = check("check-config: %s: exit 1, reported" % label, r[0] == 1 and not miss,
                   ["exit %r" % r[0]] + ["nothing matches /%s/" % p for p in miss] + clip(t, 14))
        if count is not None:
            m = re.search(r"\b(\d+) problems?\b", t)
            check("check-config: %s: counts %d problems" % (label, count),
                  m is not None and int(m.group(1)) == count,
                  ["count line: %r" % (m.group(0) if m else None)])
        probs = [ln for ln in t.splitlines() if re.search(r"problem|:\d+:|error", ln, re.I)]
        info("check-config: %s: %s" % (label, " | ".join(probs[:4])))
        return ok

    base = ("[source bounces]\npath = %s\narchive_dir = %s\n\n[output]\nfile = %s\n\n"
            "[state]\ndir = %s\n" % (live, arch, e.outfile, e.state))
    check("check-config: the base of the broken files is good",
          e.cmd("check-config", conf=e.write_conf(base, path=e.path("base.conf")))[0] == 0)
    lines = base.splitlines()

    def with_line(after, new):
        ls = list(lines)
        at = ls.index(after) + 1
        ls.insert(at, new)
        return "\n".join(ls) + "\n", at + 1

    t, ln = with_line("[output]", "lingr_ms = 5")
    broken("unknown key", t, r"\.conf:%d\b.*lingr_ms" % ln)
    t, ln = with_line("[output]", "linger_ms = soon")
    broken("bad value", t, r"\.conf:%d\b.*linger_ms" % ln)
    broken("missing archive_dir directory", base.replace(arch, e.path("nope", "archive")),
           r"TMP/nope/archive")
    # A directory where the live file should be: not an accounting file.
    os.makedirs(e.path("pmta", "isadir.csv"))
    broken("live file is a directory", base.replace(live, e.path("pmta", "isadir.csv")),
           r"problem.*TMP/pmta/isadir\.csv|TMP/pmta/isadir\.csv.*(directory|not a (regular )?file)")
    t, ln = with_line("[output]", "url = http://127.0.0.1:9/x")
    broken("both url and file", t, r"\.conf:\d+\b.*url.*file|\.conf:\d+\b.*file.*url")
    broken("no [source]", "[output]\nfile = %s\n\n[state]\ndir = %s\n" % (e.outfile, e.state),
           r"no \[source\]|no source")
    # Several problems in the file's text at once.
    t = base.replace("[output]\n", "[output]\nlingr_ms = 5\nlinger_ms = soon\n"
                     "url = http://127.0.0.1:9/x\n")
    broken("three configuration errors at once", t, r"lingr_ms", r"linger_ms.*soon|soon",
           r"url.*file|file.*url", count=3)
    # Several problems on disk at once.
    t = ("[source bounces]\npath = %s\narchive_dir = %s\n\n[source other]\npath = %s\n"
         "archive_dir = %s\n\n[output]\nfile = %s\n\n[state]\ndir = %s\n"
         % (live, e.path("gone1"), e.path("nodir", "other.csv"), e.path("gone2"), e.outfile,
            e.state))
    broken("three file-system problems at once", t, r"TMP/gone1\b", r"TMP/gone2\b",
           r"TMP/nodir\b", count=3)
    # Both kinds together: a typo does not hide a missing directory.
    t = base.replace(arch, e.path("gone3")).replace("[output]\n", "[output]\nlingr_ms = 5\n")
    broken("a configuration error and a missing directory together", t, r"lingr_ms",
           r"TMP/gone3\b")

    # Unreadable for the daemon's user: as root, run it as nobody (root reads
    # whatever the permission bits say); otherwise a file of mode 0.
    secret_live = os.path.join(pm, "private.csv")
    with open(secret_live, "wb") as fh:
        fh.write(HEADER)
    t = ("[source bounces]\npath = %s\narchive_dir = %s\n\n[output]\nfile = %s\n\n"
         "[state]\ndir = %s\n" % (secret_live, arch, e.outfile, e.path("nostate")))
    path = e.write_conf(t, path=e.path("nobody.conf"))
    if os.geteuid() == 0:
        for d in (e.tmp, pm, arch):
            os.chmod(d, 0o755)
        os.chmod(secret_live, 0o600)
        os.chmod(path, 0o644)
        who, user = "as the user nobody, a live file of mode 0600 owned by root", (65534, 65534)
    else:
        os.chmod(secret_live, 0)
        who, user = "a live file of mode 0", None
    r = e.cmd("check-config", conf=path, user=user)
    txt = all_text(r).replace(e.tmp, "TMP")
    check("check-config: %s: exit 1, named as not readable" % who,
          r[0] == 1 and re.search(r"problem.*TMP/pmta/private\.csv.*read", txt),
          ["exit %r" % r[0]] + clip(txt, 10))


# -------------------------------------------------------------- pmta-config

# Octeth's bounce- and complaint-processing guides, the <acct-file> blocks.
OCTETH_RECORD_FIELDS = {
    "b": ["timeQueued", "timeLogged", "orig", "rcpt", "bounceCat", "dsnStatus", "dsnAction",
          "dsnDiag", "dsnMta", "jobId", "vmta", "header_X-FBLId"],
    "rb": ["timeLogged", "orig", "rcpt", "bounceCat", "dsnStatus", "dsnAction", "dsnDiag",
           "dsnMta", "header_X-FBLId"],
    "f": ["timeLogged", "format", "header_To", "header_Return-Path", "reportedDomain",
          "header_X-FBLId"],
}


@scenario
def pmta_config(e):
    """pmta-config prints an <acct-file> block per source."""
    pm = e.path("pmta")
    barch, farch = e.path("pmta", "bounces-archive"), e.path("pmta", "fbl-archive")
    for d in (barch, farch):
        os.makedirs(d)
    conf = e.write_conf(
        "[source bounces]\npath = %s/bounces.csv\narchive_dir = %s\nrecords = b, rb\n\n"
        "[source fbl]\npath = %s/fbl.csv\narchive_dir = %s\nrecords = f\n\n"
        "[source all]\npath = %s/all.csv\n\n"
        "[output]\nfile = %s\n\n[state]\ndir = %s\n" % (pm, barch, pm, farch, pm, e.outfile,
                                                       e.state))
    rc, out, err = e.cmd("pmta-config", conf=conf)
    check("pmta-config: exit 0", rc == 0, ["exit %r" % rc] + clip(out + err))
    blocks = re.findall(r"^<acct-file ([^>]+)>\n(.*?)^</acct-file>", out, re.M | re.S)
    check("pmta-config: one <acct-file> ... </acct-file> block per source (3)",
          len(blocks) == 3 and out.count("<acct-file") == 3, clip(out, 40))
    by = {p: body for p, body in blocks}

    def block_has(path, *patterns):
        body = by.get(path, "")
        return [p for p in patterns if not re.search(p, body, re.M)]
    miss = block_has("%s/bounces.csv" % pm, r"^\s*records\s+b,\s*rb\s*$",
                     r"^\s*move-to\s+%s/\s*$" % re.escape(barch), r"^\s*world-readable\s+yes\s*$")
    check("pmta-config: bounces.csv: records b, rb; move-to ARCHIVE_DIR/; world-readable yes",
          not miss, ["no /%s/" % p for p in miss] + clip(by.get("%s/bounces.csv" % pm, ""), 20))
    miss = block_has("%s/fbl.csv" % pm, r"^\s*records\s+feedback-loop\s*$",
                     r"^\s*move-to\s+%s/\s*$" % re.escape(farch), r"^\s*world-readable\s+yes\s*$")
    check("pmta-config: fbl.csv: records f shows as feedback-loop; move-to; world-readable yes",
          not miss, ["no /%s/" % p for p in miss] + clip(by.get("%s/fbl.csv" % pm, ""), 20))
    miss = block_has("%s/all.csv" % pm, r"^\s*records\s+b,\s*rb,\s*feedback-loop\s*$",
                     r"^\s*world-readable\s+yes\s*$")
    check("pmta-config: a source with the default records: b, rb, feedback-loop", not miss,
          ["no /%s/" % p for p in miss] + clip(by.get("%s/all.csv" % pm, ""), 20))
    body = by.get("%s/all.csv" % pm, "")
    check("pmta-config: a source without archive_dir has no move-to line",
          not re.search(r"^\s*move-to", body, re.M), clip(body, 12))
    bad = [ln for ln in out.splitlines() if ln.strip() and not ln.startswith("#") and not
           re.match(r"^(<acct-file [^>]+>|</acct-file>|\s+[a-z-]+( .*)?|\s+#.*)$", ln)]
    check("pmta-config: nothing but comments and <acct-file> blocks", not bad, bad[:5])

    # Octeth's documented record-fields, every one, in its order, extras after.
    shipped_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "pmta-config", "acct-files.conf")
    with open(shipped_path, encoding="utf-8") as fh:
        shipped = fh.read()
    for label, text, want_types in (("generated", out, {"b": 2, "rb": 2, "f": 2}),
                                    ("shipped acct-files.conf", shipped,
                                     {"b": 1, "rb": 1, "f": 1})):
        lines = re.findall(r"^\s*record-fields\s+(\S+)\s+(\S+)\s*$", text, re.M)
        seen = collections.Counter(t for t, _ in lines)
        check("pmta-config: %s blocks: record-fields for b, rb, f (%s)" % (label, want_types),
              all(seen[t] == n for t, n in want_types.items()), ["got %s" % dict(seen)])
        wrong = []
        for t, fields in lines:
            want = OCTETH_RECORD_FIELDS.get(t)
            got = fields.split(",")
            if want and got[:len(want)] != want:
                wrong.append("%s: %s, want it to begin %s" % (t, fields, ",".join(want)))
            if len(set(got)) != len(got):
                wrong.append("%s: a field twice in %s" % (t, fields))
        check("pmta-config: %s record-fields begin with Octeth's, extras after" % label,
              not wrong, wrong[:6])


# -------------------------------------------------------------- logs


def run_on_pty(e, env):
    """Start the daemon with stderr on a pty; wait for its "running" line,
    SIGTERM it; (exit status, what the terminal showed)."""
    master, slave = pty.openpty()
    full_env = dict(os.environ)
    for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
        full_env.pop(k, None)
    full_env.update(env)
    p = subprocess.Popen([BINARY, "-c", e.conf, "run"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=slave, env=full_env)
    e.extra_procs.append(p)
    os.close(slave)
    data = bytearray()

    def pump(timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r, _, _ = select.select([master], [], [], 0.05)
            if r:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every writer closed the terminal
                    return False
                if not chunk:
                    return False
                data.extend(chunk)
            elif p.poll() is not None:
                return False
            if b"running" in data and timeout > 1:
                return True
        return True
    pump(5)
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    pump(1.0)
    try:
        rc = p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    while True:
        r, _, _ = select.select([master], [], [], 0.05)
        if not r:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        data.extend(chunk)
    os.close(master)
    return rc, data.decode("utf-8", "replace").replace("\r\n", "\n")


@scenario
def logs(e):
    """Timestamps on a terminal only."""
    sim = e.source("bounces")
    e.write_conf(e.conf_text())
    sim.write(20)
    e.start()
    e.wait_delivered()
    e.expect_stop("logs (stderr a file)")
    lines = [ln for ln in e.stderr().splitlines() if ln.strip()]
    stamped = [ln for ln in lines if TS_RE.match(ln)]
    check("logs: stderr a file: lines written (%d)" % len(lines), len(lines) >= 2)
    check("logs: stderr a file: no timestamps", not stamped, stamped[:3])
    check("logs: stderr a file: each line starts with its level",
          all(LEVEL_RE.match(ln) for ln in lines),
          [ln for ln in lines if not LEVEL_RE.match(ln)][:3])

    rc, text = run_on_pty(e, {"JOURNAL_STREAM": "8:123456"})
    lines = [ln for ln in text.splitlines() if ln.strip()]
    stamped = [ln for ln in lines if TS_RE.match(ln)]
    check("logs: a terminal with JOURNAL_STREAM set: exit 0, lines written (%d)" % len(lines),
          rc == 0 and len(lines) >= 2, ["exit %r" % rc] + clip(text))
    check("logs: a terminal with JOURNAL_STREAM set: no timestamps (journald adds them)",
          not stamped, stamped[:3])

    rc, text = run_on_pty(e, {})
    lines = [ln for ln in text.splitlines() if ln.strip()]
    bare = [ln for ln in lines if not TS_RE.match(ln)]
    check("logs: a terminal: exit 0, lines written (%d)" % len(lines),
          rc == 0 and len(lines) >= 2, ["exit %r" % rc] + clip(text))
    check("logs: a terminal: every line starts with a timestamp", lines and not bare,
          bare[:3])
    check("logs: a terminal: the level follows the timestamp",
          all(LEVEL_RE.match(TS_RE.sub("", ln).lstrip()) for ln in lines), lines[:3])
    if lines:
        info("logs: on a terminal: %s" % lines[0].replace(e.tmp, "TMP"))
    e.delivery_check("logs")


# -------------------------------------------------------------- main


def main(argv):
    global BINARY
    BINARY, rc = binary_arg(argv, __doc__)
    if BINARY is None:
        return rc
    info("seed %d (PMTATAIL_ADMIN_SEED)" % SEED)
    t_all = time.monotonic()
    names = {fn.__name__.replace("_", "-"): fn for fn in SCENARIOS}
    unknown = [s for s in ONLY if s not in names]
    if unknown:
        print("unknown scenario(s) %s; known: %s" % (unknown, ", ".join(names)))
        return 2
    for name, fn in names.items():
        if ONLY and name not in ONLY:
            continue
        t0 = time.monotonic()
        e = Env(name)
        try:
            fn(e)
        except Exception:
            check("%s: ran without an exception in the test" % name, False,
                  traceback.format_exc().splitlines()[-8:] + clip(e.stderr(), 6))
        finally:
            e.cleanup()
        info("%s: %.1f s" % (name, time.monotonic() - t0))
    info("total %.1f s" % (time.monotonic() - t_all))
    return finish()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
