#!/usr/bin/env python3
"""pmtatail delivery benchmark: `pmtatail run` POSTing to a local webhook.

A benchmark, not a test: it reports numbers and the targets next to them, and
never fails because something is slow. It exits 1 only when it cannot measure:
the daemon does not start, dies, exits non-zero on SIGTERM, delivers nothing,
or csvwalk fails; 2 when a binary is missing.

The backend is a separate process (this script with --serve), so it does not
share the GIL with the measuring code: a ThreadingHTTPServer speaking HTTP/1.1
with keep-alive that reads each body whole, counts its events by the bytes
`"eventId":` (each event has exactly one; no JSON parsing) and answers 200
{"Success":true}, optionally after a fixed delay. It records every request
(arrival, answer, events), the largest number of requests in flight at once and
the connections opened. Its own CPU time is reported, to show whether it was
the bottleneck.

In the same run, on the same generated file (bench/gen_records.py; the files in
bench/out/ are named and reused as bench/run.sh does):

  (a) the parse-only baseline: `csvwalk FILE`;
  (b) end to end: `pmtatail -c CONF run` reads the file (hard-linked as the live
      file of a fresh directory) from its beginning and delivers it, format
      batch, concurrency 4, to the fast backend, until every event is
      acknowledged AND the offset in STATE/offsets.json has reached the file's
      size. (a) and (b) alternate, --rounds times each;
  (c) the same against a backend that takes --delay-ms (50) per request, with
      smaller files: format batch at concurrency 1 and 4 (--batch-records,
      20,000), format single at concurrency 1, 4 and 16 (--single-records,
      2,000), and format auto with its defaults (no format or concurrency key:
      one event per request to type=pmta, concurrency 16; target >= 250
      events/s at 50 ms). Each of these is capped at --cap seconds (30).

For each delivery it reports: the time to the last acknowledgement and to the
commit, records/s to the commit (N / that time, N counting the d rows the
daemon drops), the steady rate (from the first request to the answer that
brings the acknowledged events to 90%: it leaves out the start and the end of
the stream, where the last, never full batch waits out linger_ms and offsets
are saved on a 1 s timer), requests/s, stalls (nothing in flight and no new
request for >= 50 ms, the stream's end left out), missing or extra events,
the daemon's CPU time, its CPU between the last ack and the commit and during
--idle s afterwards (a spin shows there), VmHWM and VmRSS over time.

It ends with one machine-readable line, `BENCH-PUSH key=value ...`.

Usage: python3 bench/push.py [--build DIR] [--records N] [--rounds 3]
           [--batch-records 20000] [--single-records 2000] [--delay-ms 50]
           [--cap 30] [--no-slow] [--keep]
       python3 bench/push.py --serve [--delay-ms N]   (the backend alone)

Standard library only (Python 3.11).
"""

import argparse
import csv
import datetime as dt
import gzip
import hashlib
import http.server
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
CLK_TCK = os.sysconf("SC_CLK_TCK")
EVENT_MARK = b'"eventId":'
ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
          b"Content-Length: 16\r\n\r\n{\"Success\":true}")
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


# ---------------------------------------------------------------- the backend

def serve(delay_ms):
    """The webhook. Prints `PORT n`, then answers one line of JSON per command
    read on stdin: `stats`, `log` (every request: [arrival, answer, events]),
    `quit` (or end of input)."""
    # Ctrl-C reaches the whole process group: the parent stops this process
    # (quit, or the end of its stdin), so it is not killed halfway.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    delay = delay_ms / 1000.0
    lock = threading.Lock()
    st = {"requests": 0, "events": 0, "bytes": 0, "inflight": 0, "max_inflight": 0,
          "connections": 0, "bad": 0}
    log = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        rbufsize = 1 << 16

        def setup(self):
            super().setup()
            with lock:
                st["connections"] += 1

        def log_message(self, *args):
            pass

        def _body(self):
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(parts)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n)
            if len(body) != n:
                raise ValueError("short body")
            return body

        def do_POST(self):
            t0 = time.monotonic()
            with lock:
                st["inflight"] += 1
                if st["inflight"] > st["max_inflight"]:
                    st["max_inflight"] = st["inflight"]
            ev = size = 0
            try:
                try:
                    body = self._body()
                    size = len(body)
                    if self.headers.get("Content-Encoding", "").lower() == "gzip":
                        body = gzip.decompress(body)
                    ev = body.count(EVENT_MARK)
                except (ValueError, OSError, EOFError):
                    with lock:
                        st["bad"] += 1
                    self.close_connection = True
                    return
                if delay:
                    time.sleep(delay)
                self.wfile.write(ANSWER)
            finally:
                t1 = time.monotonic()
                with lock:
                    st["inflight"] -= 1
                    st["requests"] += 1
                    st["events"] += ev
                    st["bytes"] += size
                    log.append((t0, t1, ev))

        def do_GET(self):
            self.wfile.write(NOT_FOUND)

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 64

    srv = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                     daemon=True).start()
    out = sys.stdout
    out.write("PORT %d\n" % srv.server_address[1])
    out.flush()
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "stats":
            t = os.times()
            with lock:
                d = dict(st)
            d["cpu_s"] = t.user + t.system
            out.write(json.dumps(d) + "\n")
        elif cmd == "log":
            with lock:
                d = list(log)
            out.write(json.dumps(d) + "\n")
        elif cmd == "quit":
            break
        else:
            out.write("{}\n")
        out.flush()
    srv.shutdown()
    return 0


class Backend:
    """The backend process, driven through its stdin/stdout."""

    def __init__(self, delay_ms):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve", "--delay-ms", str(delay_ms)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.close()
            raise Failure("the backend did not start")
        self.port = int(line.split()[1])

    def ask(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise Failure("the backend died")
        return json.loads(line)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


# ---------------------------------------------------------------- /proc

def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def proc_cpu_s(pid):
    """utime + stime of the process (all threads), seconds."""
    with open("/proc/%d/stat" % pid) as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / CLK_TCK


def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return os.uname().machine


def buildtype(build):
    try:
        with open(os.path.join(build, "meson-info", "intro-buildoptions.json")) as fh:
            for o in json.load(fh):
                if o["name"] == "buildtype":
                    return o["value"]
    except (OSError, ValueError, KeyError):
        pass
    return "?"


# ---------------------------------------------------------------- data

class Failure(Exception):
    """The benchmark cannot measure (exit 1)."""


def data_file(n, seed):
    """bench/out/records-n<N>-s<SEED>-<hash>.csv, generated unless it exists
    (the naming of bench/run.sh, so both reuse each other's files)."""
    with open(os.path.join(BENCH, "gen_records.py"), "rb") as fh:
        h = hashlib.sha1(fh.read()).hexdigest()[:8]
    out = os.path.join(BENCH, "out")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "records-n%d-s%d-%s.csv" % (n, seed, h))
    if os.path.getsize(path) if os.path.exists(path) else 0:
        print("reusing %s" % os.path.basename(path))
        return path
    tmp = "%s.tmp.%d" % (path, os.getpid())
    t0 = time.monotonic()
    try:
        subprocess.run([sys.executable, os.path.join(BENCH, "gen_records.py"), "--records",
                        str(n), "--seed", str(seed), tmp], check=True,
                       stderr=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise Failure("gen_records.py failed: %s" % e)
    os.replace(tmp, path)
    print("generated %s in %.2f s" % (os.path.basename(path), time.monotonic() - t0))
    return path


def count_types(path):
    """{type: records} of the file, read with Python's csv module (independent
    of the daemon's parser): the events expected are the b and rb rows."""
    counts = {}
    with open(path, newline="", encoding="latin-1") as fh:
        rows = csv.reader(fh)
        next(rows, None)
        for row in rows:
            t = row[0] if row else ""
            counts[t] = counts.get(t, 0) + 1
    return counts


class Data:
    def __init__(self, n, seed):
        self.n = n
        self.path = data_file(n, seed)
        self.bytes = os.path.getsize(self.path)
        types = count_types(self.path)
        self.records = sum(types.values())
        self.events = types.get("b", 0) + types.get("rb", 0)
        if self.records != n:
            print("WARNING: %s holds %d records, expected %d" % (self.path, self.records, n))


# ---------------------------------------------------------------- (a) csvwalk

def run_csvwalk(binary, path, timeout):
    t0 = time.monotonic()
    try:
        p = subprocess.run([binary, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure("csvwalk timed out after %g s" % timeout)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise Failure("csvwalk exited %d: %s" % (p.returncode, p.stderr.decode(errors="replace")))
    return wall, p.stdout.decode().strip()


# ---------------------------------------------------------------- (b), (c) one delivery

class Delivery:
    """One run of the daemon on a fresh directory against a fresh backend."""

    def __init__(self, a, data, fmt, concurrency, delay_ms, limit_s, label):
        self.a, self.data, self.fmt, self.conc = a, data, fmt, concurrency
        self.delay_ms, self.limit_s, self.label = delay_ms, limit_s, label
        self.tmp = tempfile.mkdtemp(prefix="pmtapush-")
        self.live = os.path.join(self.tmp, "pmta", "bounces.csv")
        self.state = os.path.join(self.tmp, "state")
        self.offsets = os.path.join(self.state, "offsets.json")
        self.err = os.path.join(self.tmp, "daemon.stderr")
        os.makedirs(os.path.dirname(self.live))
        os.makedirs(self.state)
        try:
            os.link(data.path, self.live)  # no copy: same inode, the daemon only reads
            self.linked = True
        except OSError:
            shutil.copyfile(data.path, self.live)
            self.linked = False
        self.proc = None
        self.backend = None

    def conf(self, port):
        path = os.path.join(self.tmp, "pmtatail.conf")
        # format auto: neither format nor concurrency given, the defaults decide
        wire = ("" if self.fmt == "auto" else
                "format = %s\nconcurrency = %d\n" % (self.fmt, self.conc))
        with open(path, "w") as fh:
            fh.write("[source bounces]\npath = %s\nrecords = b, rb\n\n"
                     "[output]\nurl = http://127.0.0.1:%d/system/bounce_webhook?type=pmta\n"
                     "%sbatch_max_records = %d\n"
                     "linger_ms = %d\ninclude_message = yes\n\n"
                     "[state]\ndir = %s\n\n[log]\nlevel = warn\n"
                     % (self.live, port, wire, self.a.batch, self.a.linger, self.state))
        return path

    def committed(self):
        """The committed offset of the live file, or -1."""
        try:
            with open(self.offsets) as fh:
                doc = json.load(fh)
        except (OSError, ValueError):
            return -1
        best = -1
        for e in doc.get("files", []) if isinstance(doc, dict) else []:
            if isinstance(e, dict) and e.get("path") == self.live:
                try:
                    best = max(best, int(e.get("offset", -1)))
                except (TypeError, ValueError):
                    pass
        return best

    def stderr_tail(self, k=5):
        try:
            with open(self.err, "rb") as fh:
                lines = fh.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-k:]).replace(self.tmp, "TMP")

    def stderr_lines(self):
        try:
            with open(self.err, "rb") as fh:
                return len(fh.read().splitlines())
        except OSError:
            return 0

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def run(self):
        a, data = self.a, self.data
        self.backend = Backend(self.delay_ms)
        conf = self.conf(self.backend.port)
        b0 = self.backend.ask("stats")["cpu_s"]
        with open(self.err, "wb") as eh:
            t0 = time.monotonic()
            self.proc = subprocess.Popen([a.binary, "-c", conf, "run"], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=eh)
        pid = self.proc.pid
        deadline = t0 + self.limit_s
        t_acked = t_committed = None
        events = 0
        rss_samples = []   # (t, VmRSS KiB)
        cpu_at_ack = None
        capped = False
        last_rss = 0.0
        while True:
            now = time.monotonic()
            if not self.alive():
                raise Failure("the daemon exited during the run (status %s): %s"
                              % (self.proc.returncode, self.stderr_tail()))
            stats = self.backend.ask("stats")
            events = stats["events"]
            now = time.monotonic()
            if t_acked is None and events >= data.events:
                t_acked = now
                cpu_at_ack = proc_cpu_s(pid)
            if t_acked is not None and self.committed() >= data.bytes:
                t_committed = time.monotonic()
                break
            if now - last_rss >= 0.25:
                last_rss = now
                try:
                    rss_samples.append((now - t0, proc_status(pid, "VmRSS")))
                except OSError:
                    pass
            if now >= deadline:
                capped = True
                break
            time.sleep(a.poll_ms / 1000.0)
        cpu_run = proc_cpu_s(pid)
        hwm = proc_status(pid, "VmHWM")
        threads = len(os.listdir("/proc/%d/task" % pid))
        offset_end = self.committed()
        # Idle: once everything is committed, the daemon should do nothing.
        idle_cpu_ms = float("nan")
        if not capped and a.idle > 0:
            c0 = proc_cpu_s(pid)
            time.sleep(a.idle)
            if not self.alive():
                raise Failure("the daemon exited after the run (status %s): %s"
                              % (self.proc.returncode, self.stderr_tail()))
            idle_cpu_ms = (proc_cpu_s(pid) - c0) * 1000
        stats = self.backend.ask("stats")
        reqlog = self.backend.ask("log")
        t_stop = time.monotonic()
        status = self.stop()
        stop_s = time.monotonic() - t_stop
        if status != 0:
            raise Failure("the daemon exited with status %s on SIGTERM: %s"
                          % (status, self.stderr_tail()))
        if stats["events"] == 0:
            raise Failure("no event reached the backend: %s" % self.stderr_tail())
        wall = (t_committed if t_committed else time.monotonic()) - t0
        return self.figures(t0, wall, t_acked, t_committed, capped, stats, reqlog, cpu_run,
                            cpu_at_ack, hwm, rss_samples, idle_cpu_ms, threads, stop_s,
                            offset_end, stats["cpu_s"] - b0)

    def figures(self, t0, wall, t_acked, t_committed, capped, stats, reqlog, cpu_run,
                cpu_at_ack, hwm, rss_samples, idle_cpu_ms, threads, stop_s, offset_end,
                backend_cpu):
        data = self.data
        log = sorted(reqlog, key=lambda r: r[1])   # by answer time
        # Steady window: from the first request's arrival to the answer that
        # brought the acknowledged events to 90% of those expected (or the last
        # answer before the cap). It leaves out the start (exec, the first
        # read; with a small file, a first batch that is never full and waits
        # out linger_ms) and the stream's end (the last, partial batch waits
        # out linger_ms; offsets are saved once a second).
        goal = 0.9 * data.events
        acc = reqs = 0
        t90 = None
        t_first = min(x[0] for x in log) if log else float("nan")
        for arr, ans, ev in log:
            if capped and ans - t0 > self.limit_s:
                break
            acc += ev
            reqs += 1
            t90 = ans
            if acc >= goal:
                break
        span = (t90 - t_first) if t90 else float("nan")
        per_record = data.records / data.events if data.events else 1.0
        # The backend's time per request: the body read, counted, the delay,
        # the answer written (the headers were read before).
        svc = sorted((ans - arr) * 1000 for arr, ans, ev in log)
        svc = (svc[len(svc) // 2], svc[min(len(svc) - 1, int(len(svc) * 0.9))]) if svc else (
            float("nan"), float("nan"))
        # Stalls: the backend had nothing in flight, yet no request came for
        # >= 50 ms. The last request is apart: its batch (the stream's end,
        # never full) waits out linger_ms by design.
        by_arr = sorted(reqlog)
        stalls = []
        answered = None
        for i, (arr, ans, ev) in enumerate(by_arr):
            if answered is not None and arr - answered >= 0.05 and i < len(by_arr) - 1:
                stalls.append((answered - t0, arr - answered))
            answered = ans if answered is None else max(answered, ans)
        last_gap = (by_arr[-1][0] - max(x[1] for x in by_arr[:-1])
                    if len(by_arr) > 1 else float("nan"))
        r = {
            "label": self.label, "fmt": self.fmt, "conc": self.conc, "delay_ms": self.delay_ms,
            "n": data.records, "events": data.events, "capped": capped,
            "wall_s": wall,
            "acked_s": (t_acked - t0) if t_acked else float("nan"),
            "committed_s": (t_committed - t0) if t_committed else float("nan"),
            "rps": data.records / wall if t_committed else float("nan"),
            "steady_s": span,
            "first_s": t_first - t0,
            "steady_events": acc,
            "steady_requests": reqs,
            "steady_eps": acc / span if span > 0 else float("nan"),
            "steady_rps": acc * per_record / span if span > 0 else float("nan"),
            "steady_reqps": reqs / span if span > 0 else float("nan"),
            "requests": stats["requests"],
            "got_events": stats["events"],
            "missing": max(0, data.events - stats["events"]),
            "extra": max(0, stats["events"] - data.events),
            "bad": stats["bad"],
            "body_mb": stats["bytes"] / 1e6,
            "ev_per_req": stats["events"] / stats["requests"] if stats["requests"] else 0,
            "svc_ms": svc,
            "max_inflight": stats["max_inflight"],
            "connections": stats["connections"],
            "offset_end": offset_end,
            "bytes": data.bytes,
            "last_gap_s": last_gap,
            "stalls": stalls,
            "stall_s": sum(x[1] for x in stalls),
            "daemon_cpu_s": cpu_run,
            "daemon_cpu_pct": 100.0 * cpu_run / wall if wall > 0 else float("nan"),
            "tail_cpu_ms": ((cpu_run - cpu_at_ack) * 1000 if cpu_at_ack is not None
                            else float("nan")),
            "tail_s": (t_committed - t_acked) if t_committed and t_acked else float("nan"),
            "idle_cpu_ms": idle_cpu_ms,
            "rss_kib": hwm,
            "rss_samples": rss_samples,
            "threads": threads,
            "stop_s": stop_s,
            "backend_cpu_s": backend_cpu,
            "backend_cpu_pct": 100.0 * backend_cpu / wall if wall > 0 else float("nan"),
            "stderr_lines": self.stderr_lines(),
            "stderr_tail": self.stderr_tail(3),
            "linked": self.linked,
        }
        return r

    def stop(self):
        p = self.proc
        if p is None:
            return 0
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            return p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise Failure("the daemon did not stop within 15 s of SIGTERM")

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.backend is not None:
            self.backend.close()
        if self.a.keep:
            print("kept      : %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def deliver(a, data, fmt, conc, delay_ms, limit_s, label):
    d = Delivery(a, data, fmt, conc, delay_ms, limit_s, label)
    try:
        return d.run()
    finally:
        d.cleanup()


# ---------------------------------------------------------------- report

def fmt(v, nd=1):
    if isinstance(v, float):
        return "NA" if v != v else "%.*f" % (nd, v)
    return str(v)


def print_case(r):
    print("  %s: %s" % (r["label"], "CAPPED at %g s" % r["wall_s"] if r["capped"] else
                        "acked at %.3f s, committed at %.3f s" % (r["acked_s"],
                                                                   r["committed_s"])))
    print("    delivered : %d of %d events in %d requests (%.1f events/request, %.1f MB of "
          "bodies), missing %d, extra %d, bad requests %d; committed offset %d of %d bytes"
          % (r["got_events"], r["events"], r["requests"], r["ev_per_req"], r["body_mb"],
             r["missing"], r["extra"], r["bad"], r["offset_end"], r["bytes"]))
    print("    steady    : first request at %.3f s; %d events / %d requests answered in the "
          "%.3f s after it: %.0f events/s, %.0f records/s, %.1f requests/s"
          % (r["first_s"], r["steady_events"], r["steady_requests"], r["steady_s"],
             r["steady_eps"], r["steady_rps"], r["steady_reqps"]))
    print("    backend   : max %d requests in flight, %d connections, %.1f / %.1f ms per request "
          "(p50 / p90: body read, counted, delay, answer), CPU %.2f s (%.0f%% of one core)"
          % (r["max_inflight"], r["connections"], r["svc_ms"][0], r["svc_ms"][1],
             r["backend_cpu_s"], r["backend_cpu_pct"]))
    print("    daemon    : CPU %.2f s (%.0f%% of one core), %s ms CPU between the last ack "
          "and the commit (%s s), %s ms CPU in %g s idle after; peak RSS %.1f MiB; "
          "%d thread(s); stopped in %.2f s; %d stderr line(s)%s"
          % (r["daemon_cpu_s"], r["daemon_cpu_pct"], fmt(r["tail_cpu_ms"], 0),
             fmt(r["tail_s"], 2), fmt(r["idle_cpu_ms"], 0), ARGS.idle, r["rss_kib"] / 1024,
             r["threads"], r["stop_s"], r["stderr_lines"],
             (": " + r["stderr_tail"]) if r["stderr_lines"] else ""))
    rs = r["rss_samples"]
    if len(rs) >= 4:
        half = len(rs) // 2
        print("    RSS       : VmRSS max %.1f MiB in the first half of the run, %.1f MiB in "
              "the second (%d samples)" % (max(x[1] for x in rs[:half]) / 1024,
                                          max(x[1] for x in rs[half:]) / 1024, len(rs)))
    if r["last_gap_s"] >= 0.05:
        last = ("the last request came %.3f s after every earlier one was answered (the "
                "stream's last batch, never full, waits out linger_ms)" % r["last_gap_s"])
    else:
        last = "no wait before the last request"
    print("    stalls    : %d, %.2f s in all (nothing in flight and no new request for >= 50 ms"
          "%s); %s" % (
              len(r["stalls"]), r["stall_s"],
              (": " + ", ".join("%.2f s from %.2f to %.2f s" % (d, t, t + d)
                                for t, d in r["stalls"][:8]) +
               (" ..." if len(r["stalls"]) > 8 else "")) if r["stalls"] else "", last))
    if not r["linked"]:
        print("    (the live file is a copy: linking failed)")
    if r["capped"]:
        print("    (capped: the rates are taken over what was answered by then)")
    elif r["missing"] or r["extra"] or r["bad"]:
        print("    WARNING: the backend did not get exactly one event per b/rb record")


ARGS = None


def main(argv):
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="meson build directory (default: build)")
    ap.add_argument("--binary", help="pmtatail binary (default: BUILD/src/pmtatail)")
    ap.add_argument("--csvwalk", help="csvwalk binary (default: BUILD/bench/csvwalk)")
    ap.add_argument("--records", type=int, default=1_000_000, help="N for (a), (b) (1000000)")
    ap.add_argument("--seed", type=int, default=1, help="generator seed (1)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of (a) and (b) (3)")
    ap.add_argument("--batch-records", type=int, default=20_000,
                    help="N for (c), format batch (20000)")
    ap.add_argument("--single-records", type=int, default=2_000,
                    help="N for (c), format single (2000)")
    ap.add_argument("--delay-ms", type=int, default=50,
                    help="(c): the backend's delay per request (50); with --serve: the delay")
    ap.add_argument("--batch", type=int, default=500, help="batch_max_records (500)")
    ap.add_argument("--linger", type=int, default=1000, help="linger_ms (1000)")
    ap.add_argument("--cap", type=float, default=30.0,
                    help="(c): seconds allowed per case; rates are taken over what was "
                         "answered by then (30)")
    ap.add_argument("--timeout", type=float, default=600.0,
                    help="(b): seconds allowed per run (600)")
    ap.add_argument("--idle", type=float, default=1.0,
                    help="seconds of idleness sampled after each commit (1)")
    ap.add_argument("--poll-ms", type=float, default=10.0,
                    help="how often the backend's count and offsets.json are read (10)")
    ap.add_argument("--no-slow", dest="slow", action="store_false", help="skip (c)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
    a = ap.parse_args(argv[1:])
    ARGS = a
    if a.serve:
        return serve(a.delay_ms)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    a.binary = a.binary or os.path.join(a.build, "src", "pmtatail")
    a.csvwalk = a.csvwalk or os.path.join(a.build, "bench", "csvwalk")
    for b in (a.binary, a.csvwalk):
        if not os.access(b, os.X_OK):
            print("push.py: %s not found (ninja -C %s)" % (b, a.build), file=sys.stderr)
            return 2
    if min(a.records, a.rounds, a.batch_records, a.single_records, a.batch) <= 0:
        ap.error("counts must be positive")
    if a.slow and a.delay_ms <= 0:
        ap.error("--delay-ms must be positive (or --no-slow)")
    try:
        return measure(a)
    except Failure as e:
        print("push.py: %s" % e, file=sys.stderr)
        return 1


def measure(a):
    bt = buildtype(os.path.dirname(os.path.dirname(os.path.abspath(a.binary))))
    print("== pmtatail delivery benchmark  %s"
          % dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"))
    print("machine : nproc=%d  cpu=%s  kernel=%s  load=%s" % (
        os.cpu_count(), cpu_model(), os.uname().release,
        " ".join("%.2f" % x for x in os.getloadavg())))
    print("binary  : %s (buildtype=%s)" % (a.binary, bt))
    print("daemon  : format batch|single, batch_max_records=%d, linger_ms=%d, "
          "include_message=yes, records=b,rb, start at the beginning of the live file"
          % (a.batch, a.linger))
    print("live    : TMP/pmta/bounces.csv, a hard link to the data file (a copy if linking "
          "fails); TMP = a fresh $TMPDIR/pmtapush-* per run, removed after it")
    print("backend : separate Python process, ThreadingHTTPServer HTTP/1.1 keep-alive, counts "
          "b'\"eventId\":' per body, answers 200 {\"Success\":true}")

    data = Data(a.records, a.seed)
    print("data    : N=%d records, %d bytes, %d events expected (b + rb)"
          % (data.records, data.bytes, data.events))
    with open(data.path, "rb") as fh:   # warm the page cache
        while fh.read(1 << 20):
            pass

    # (a) and (b), alternating.
    print()
    print("-- %d rounds, alternating (a) csvwalk and (b) pmtatail run -> fast backend "
          "(format batch, concurrency 4)" % a.rounds)
    a_walls, b_runs = [], []
    rows = None
    for rnd in range(1, a.rounds + 1):
        w, rows = run_csvwalk(a.csvwalk, data.path, a.timeout)
        a_walls.append(w)
        r = deliver(a, data, "batch", 4, 0, a.timeout, "(b) round %d" % rnd)
        b_runs.append(r)
        print("round %d: (a) %.3f s   (b) %s s to the commit (last ack %s s), %s MiB" % (
            rnd, w, fmt(r["wall_s"], 3), fmt(r["acked_s"], 3), fmt(r["rss_kib"] / 1024)))
        print_case(r)
        if r["capped"]:
            print("push.py: (b) did not deliver and commit everything within %g s"
                  % a.timeout, file=sys.stderr)
    if rows and not rows.startswith("rows=%d " % (data.records + 1)):
        print("WARNING: csvwalk saw '%s', expected rows=%d" % (rows, data.records + 1))

    a_wall = statistics.median(a_walls)
    a_rps = data.records / a_wall
    done = [r for r in b_runs if not r["capped"]]
    b = sorted(done or b_runs, key=lambda r: r["wall_s"])[len(done or b_runs) // 2]
    b_wall = b["wall_s"]
    b_rps = b["rps"]
    ratio = b_rps / a_rps if b_rps == b_rps else float("nan")
    steady_ratio = statistics.median(r["steady_rps"] for r in b_runs) / a_rps

    # (c)
    slow = []
    if a.slow:
        print()
        print("-- (c) backend taking %d ms per request; format batch with N=%d, format "
              "single with N=%d; each capped at %g s" % (a.delay_ms, a.batch_records,
                                                         a.single_records, a.cap))
        bdata = Data(a.batch_records, a.seed)
        sdata = Data(a.single_records, a.seed)
        # auto: the defaults for a type=pmta URL (one event per request,
        # concurrency 16), held to >= 250 events/s at 50 ms a request
        for f, conc, dd in (("batch", 1, bdata), ("batch", 4, bdata), ("single", 1, sdata),
                            ("single", 4, sdata), ("single", 16, sdata), ("auto", 16, sdata)):
            label = "auto (dflt)" if f == "auto" else "%s c=%d" % (f, conc)
            r = deliver(a, dd, f, conc, a.delay_ms, a.cap, label)
            # Each connection answers one request per delay at best.
            r["ceiling_reqps"] = conc / (a.delay_ms / 1000.0)
            slow.append(r)
            print_case(r)

    # Table.
    print()
    print("== results")
    print("%-44s %9s %12s %8s %12s %10s %8s %9s" % (
        "case", "wall s", "records/s", "ratio", "steady r/s", "peak RSS", "max infl",
        "backend"))
    print("%-44s %9.3f %12.0f %8s %12s %10s %8s %9s" % (
        "(a) csvwalk (libcsv walk only)", a_wall, a_rps, "1.00", "", "", "", ""))
    print("%-44s %9s %12s %8s %12.0f %6.1f MiB %8d %8.0f%%" % (
        "(b) run -> backend, batch, c=4, to commit", fmt(b_wall, 3), fmt(b_rps, 0),
        fmt(ratio, 2), b["steady_rps"], max(r["rss_kib"] for r in b_runs) / 1024,
        b["max_inflight"], b["backend_cpu_pct"]))
    print()
    print("(b)/(a): %sx to the commit (target >= 0.4x: %s); %.2fx over the steady window "
          "(from the first request to 90%% of the events acknowledged)" % (
              fmt(ratio, 2), "met" if ratio >= 0.4 else "NOT met", steady_ratio))
    print("stalls in (b) (nothing in flight, no new request for >= 50 ms, the stream's end "
          "left out): %s" % ", ".join("round %d: %d, %.2f s" % (i + 1, len(r["stalls"]),
                                                              r["stall_s"])
                                      for i, r in enumerate(b_runs)))
    print("backend CPU in (b): %.0f%% of one core (its limit is one core, the GIL): %s" % (
        b["backend_cpu_pct"], "not the bottleneck" if b["backend_cpu_pct"] < 70 else
        "MAY BE the bottleneck"))
    if slow:
        print()
        print("(c) backend taking %d ms per request (rates over the steady window; ceiling = "
              "concurrency / %g s)" % (a.delay_ms, a.delay_ms / 1000.0))
        print("%-12s %7s %7s %10s %11s %11s %10s %9s %9s %10s" % (
            "case", "N", "events", "wall s", "records/s", "requests/s", "ceiling", "of ceil",
            "max infl", "peak RSS"))
        for r in slow:
            print("%-12s %7d %7d %10s %11.0f %11.1f %10.0f %8.0f%% %9d %6.1f MiB" % (
                r["label"], r["n"], r["events"],
                ("cap %g" % a.cap) if r["capped"] else fmt(r["wall_s"], 3),
                r["steady_rps"], r["steady_reqps"], r["ceiling_reqps"],
                100.0 * r["steady_reqps"] / r["ceiling_reqps"], r["max_inflight"],
                r["rss_kib"] / 1024))

    auto = [r for r in slow if r["fmt"] == "auto"]
    if auto:
        print("format auto with its defaults (type=pmta: one event per request, concurrency "
              "16) against %d ms a request: %.0f events/s (target >= 250 at 50 ms: %s)" % (
                  a.delay_ms, auto[0]["steady_rps"],
                  "met" if auto[0]["steady_rps"] >= 250 else "NOT met"))

    parts = ["BENCH-PUSH", "n=%d" % data.records, "bytes=%d" % data.bytes,
             "events=%d" % data.events, "rounds=%d" % a.rounds, "nproc=%d" % os.cpu_count(),
             "cpu=%s" % cpu_model().replace(" ", "_"), "buildtype=%s" % bt,
             "batch_max_records=%d" % a.batch, "linger_ms=%d" % a.linger,
             "csvwalk_s=%.4f" % a_wall, "csvwalk_rps=%.0f" % a_rps,
             "push_s=%s" % fmt(b_wall, 4), "push_acked_s=%s" % fmt(b["acked_s"], 4),
             "push_rps=%s" % fmt(b_rps, 0), "push_steady_rps=%.0f" % b["steady_rps"],
             "push_reqps=%.1f" % b["steady_reqps"],
             "push_rss_kib=%d" % max(r["rss_kib"] for r in b_runs),
             "push_cpu_s=%.2f" % b["daemon_cpu_s"],
             "push_missing=%d" % sum(r["missing"] for r in b_runs),
             "push_extra=%d" % sum(r["extra"] for r in b_runs),
             "push_max_inflight=%d" % max(r["max_inflight"] for r in b_runs),
             "push_stalls=%d" % sum(len(r["stalls"]) for r in b_runs),
             "push_stall_s=%.2f" % sum(r["stall_s"] for r in b_runs),
             "backend_cpu_pct=%.0f" % b["backend_cpu_pct"],
             "backend_p50_ms=%.1f" % b["svc_ms"][0],
             "ratio=%s" % fmt(ratio, 2), "steady_ratio=%.2f" % steady_ratio]
    if slow:
        parts += ["delay_ms=%d" % a.delay_ms, "batch_n=%d" % a.batch_records,
                  "single_n=%d" % a.single_records]
        for r in slow:
            k = "%s_c%d" % (r["fmt"], r["conc"])
            parts += ["%s_rps=%.0f" % (k, r["steady_rps"]), "%s_reqps=%.1f" % (k, r["steady_reqps"]),
                      "%s_max_inflight=%d" % (k, r["max_inflight"]),
                      "%s_stall_s=%.2f" % (k, r["stall_s"]),
                      "%s_missing=%d" % (k, r["missing"] if not r["capped"] else -1),
                      "%s_capped=%d" % (k, r["capped"])]
    print()
    print(" ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
