#!/usr/bin/env python3
"""pmtatail latency benchmark: append-to-delivery latency, idle wake-ups, peak RSS.

A benchmark, not a test: it reports numbers and never fails because something is
slow. It exits non-zero only when it cannot measure: the binary is missing, the
daemon does not start, exits or crashes during a run, does not stop on SIGTERM,
or delivers nothing at all.

For each linger_ms (default: 1000, then 20) it starts `pmtatail -c CONF run` on a
fresh temporary directory and:

1. Latency. A writer thread appends CRLF-terminated bounce records to the live
   file at a steady rate (default 1,000 records/s for 20 s), paced by the
   monotonic clock: every 10 ms it writes, in one write(2), the records due by
   then. Record N carries rcpt `uN@example.com`; the writer notes the monotonic
   time just before each write. A reader thread polls the output file's size
   every ~1 ms and notes when each event line arrives. Latency = arrival - write.
   Halfway through, the writer rotates the file as PowerMTA's move-to does:
   rename into the archive directory, a new live file with the header, records
   go on into the new file.
2. Idle wake-ups. Once every record is delivered, it waits 1 s, then samples
   voluntary + involuntary context switches (all threads) and utime + stime of
   the daemon over 10 s with no writes.
3. Peak RSS: the daemon's VmHWM, read just before it is stopped.

It ends with one machine-readable line, `BENCH-LATENCY key=value ...`.

With --url the output is Oempro's webhook instead of a file: the URL
http://127.0.0.1:PORT/system/bounce_webhook?type=pmta, so `format = auto` sends
one event per request on 16 kept-alive connections from the output's thread,
the configuration's other keys at their defaults; the backend is this script
again (--serve, a process of its own: no shared GIL with the measuring
threads), which writes each event it receives as a line of the output file
before it answers 200 {"Success":true}. Latency then ends when the backend has
the event, just before the daemon reads its acknowledgement.

Usage: python3 bench/latency.py [--build DIR | --binary PATH] [--duration S]
           [--rate R] [--lingers 1000,20] [--idle S] [--url] [--keep]

Standard library only (Python 3.11).
"""

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HEADER = b"type,timeLogged,orig,rcpt,dsnStatus,dsnDiag,bounceCat\r\n"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- records

# (dsnStatus, dsnDiag template, bounceCat): realistic SMTP replies; the quoted
# ones hold commas or doubled quotes, as real PowerMTA files do.
DIAGS = [
    ("5.1.1 (bad destination mailbox address)",
     "smtp;550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table",
     "bad-mailbox"),
    ("5.1.1 (bad destination mailbox address)",
     "smtp;550-5.1.1 The email account that you tried to reach does not exist. Please try "
     "double-checking the recipient's email address for typos or unnecessary spaces, "
     "ref {n} - gsmtp", "bad-mailbox"),
    ("5.7.1 (delivery not authorized, message refused)",
     "smtp;554 5.7.1 Service unavailable; Client host [203.0.113.{ip}] blocked using "
     "zen.spamhaus.org, ref {n}", "spam-related"),
    ("5.2.2 (mailbox full)",
     "smtp;552 5.2.2 <{rcpt}>: mailbox full, quota exceeded", "quota-issues"),
    ("4.4.7 (delivery time expired)",
     "smtp;421 4.4.2 mx.example.net Error: timeout exceeded", "inactive-mailbox"),
    ("5.7.1 (delivery not authorized, message refused)",
     'smtp;550 5.7.1 Message rejected by policy "Block executables" (ref: "MX-{n}")',
     "content-related"),
    ("5.0.0 (undefined status)",
     "smtp;550 Requested action not taken: mailbox unavailable", "bad-mailbox"),
]


def _csv(value):
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def record_bytes(n, logged):
    """Record n (rcpt uN@example.com), CRLF-terminated; about 200 bytes."""
    rcpt = "u%d@example.com" % n
    status, diag, cat = DIAGS[(n * 7919) % len(DIAGS)]
    diag = diag.format(rcpt=rcpt, n=n, ip=n % 250)
    typ = "rb" if n % 3 == 0 else "b"
    row = [typ, logged, "bounce@news.example.com", rcpt, status, diag, cat]
    return (",".join(_csv(v) for v in row) + "\r\n").encode()


# ---------------------------------------------------------------- /proc

def proc_status_sum(pid, fields):
    """{field: value} of /proc/PID/task/*/status, summed over threads."""
    out = dict.fromkeys(fields, 0)
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as fh:
                for line in fh:
                    key, _, val = line.partition(":")
                    if key in out:
                        out[key] += int(val.split()[0])
        except (OSError, ValueError):
            pass  # a thread that just ended
    return out


def proc_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def proc_cpu_s(pid):
    """utime + stime of the process (all threads), seconds."""
    with open("/proc/%d/stat" % pid) as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / CLK_TCK


def switches(pid):
    s = proc_status_sum(pid, ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"))
    return s["voluntary_ctxt_switches"], s["nonvoluntary_ctxt_switches"]


def inotify_watches(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) != "anon_inode:inotify":
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as fh:
                n += sum(1 for line in fh if line.startswith("inotify wd:"))
        except OSError:
            pass
    return n


def fs_type(path):
    """Filesystem type of the mount holding path (from /proc/self/mountinfo)."""
    path = os.path.realpath(path)
    best, kind = "", "?"
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                mnt = left.split()[4]
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                    best, kind = mnt, right.split()[0]
    except OSError:
        pass
    return kind


# ---------------------------------------------------------------- one run

# ---------------------------------------------------------------- the backend (--url)

def serve(port_file, outfile):
    """The webhook of --url: each event received becomes a line of outfile
    (written before the answer), an array's events one line each. asyncio
    and a minimal HTTP/1.1 reader: http.server's threads answer only ~500
    requests/s here, too few for one event per request at 1,000/s."""
    import asyncio

    out = open(outfile, "ab", buffering=0)
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
              b"Content-Length: 16\r\n\r\n{\"Success\":true}")

    async def conn(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                n = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        n = int(line[15:])
                body = await reader.readexactly(n)
                if body[:1] == b"[":
                    out.write(b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n"
                                       for e in json.loads(body)))
                else:
                    out.write(body + b"\n")
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main():
        srv = await asyncio.start_server(conn, "127.0.0.1", 0)
        with open(port_file + ".tmp", "w") as fh:
            fh.write(str(srv.sockets[0].getsockname()[1]))
        os.rename(port_file + ".tmp", port_file)
        await srv.serve_forever()

    asyncio.run(main())


def start_backend(outfile):
    """This script with --serve, in a process of its own: (process, port)."""
    port_file = outfile + ".port"
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", port_file,
                          outfile], stdin=subprocess.DEVNULL)
    end = time.monotonic() + 10
    while not os.path.exists(port_file):
        if p.poll() is not None or time.monotonic() > end:
            p.kill()
            raise Failure("the backend did not start")
        time.sleep(0.01)
    with open(port_file) as fh:
        return p, int(fh.read())


class Failure(Exception):
    """The benchmark cannot measure (exit 1)."""


def pct(sorted_vals, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, -(-len(sorted_vals) * p // 100) - 1))
    return sorted_vals[int(k)]


class Run:
    def __init__(self, args, linger):
        self.a = args
        self.linger = linger
        self.tmp = tempfile.mkdtemp(prefix="pmtalat-")
        self.pmta = os.path.join(self.tmp, "pmta")
        self.archive = os.path.join(self.pmta, "archive")
        self.live = os.path.join(self.pmta, "bounces.csv")
        self.outdir = os.path.join(self.tmp, "out")
        self.outfile = os.path.join(self.outdir, "events.ndjson")
        self.state = os.path.join(self.tmp, "state")
        for d in (self.archive, self.outdir, self.state):
            os.makedirs(d)
        self.conf = os.path.join(self.tmp, "pmtatail.conf")
        self.backend = None
        if args.url:
            self.backend, port = start_backend(self.outfile)
            output = ("url = http://127.0.0.1:%d/system/bounce_webhook?type=pmta\n" % port)
        else:
            output = "file = %s\n" % self.outfile
        with open(self.conf, "w") as fh:
            fh.write("[source bounces]\npath = %s\narchive_dir = %s\nrecords = b, rb\n\n"
                     "[output]\n%sbatch_max_records = %d\nlinger_ms = %d\n\n"
                     "[state]\ndir = %s\n\n[log]\nlevel = warn\n"
                     % (self.live, self.archive, output, args.batch, linger, self.state))
        self.proc = None
        self.err = os.path.join(self.tmp, "daemon.stderr")
        # writer
        self.wtimes = []          # wtimes[n - 1]: monotonic time of record n's write
        self.lag_max = 0.0        # worst delay of a write behind its schedule
        self.t_rot = None         # when the file was renamed
        self.n_rot = None         # first record of the new file
        self.writes = 0
        # reader
        self.chunks = []          # (monotonic time, bytes) as the output grew
        self.lines_seen = 0
        self.stop_reader = threading.Event()
        self.reader_error = None
        self.writer_error = None

    # -- the daemon

    def start(self):
        with open(self.live, "wb") as fh:
            fh.write(HEADER)
        with open(self.err, "wb") as eh:
            self.proc = subprocess.Popen([self.a.binary, "-c", self.conf, "run"],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=eh)
        end = time.monotonic() + 5
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise Failure("the daemon exited at start (status %s): %s"
                              % (self.proc.returncode, self.stderr_tail()))
            if inotify_watches(self.proc.pid) >= 1 and os.path.exists(self.outfile):
                return
            time.sleep(0.01)
        raise Failure("the daemon did not set up its watches within 5 s")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self, when):
        if not self.alive():
            raise Failure("the daemon died %s (status %s): %s"
                          % (when, self.proc.returncode, self.stderr_tail()))

    def stop(self):
        """SIGTERM; returns the exit status."""
        p = self.proc
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            return p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise Failure("the daemon did not stop within 15 s of SIGTERM")

    def stderr_tail(self, k=5):
        try:
            with open(self.err, "rb") as fh:
                lines = fh.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-k:]).replace(self.tmp, "TMP")

    def cleanup(self):
        for p in (self.proc, self.backend):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        if self.a.keep:
            print("kept      : %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- the writer

    def writer(self, total, t0):
        try:
            self._write(total, t0)
        except BaseException as e:  # reported by the main thread
            self.writer_error = e

    def _write(self, total, t0):
        rate, step = self.a.rate, self.a.burst_ms / 1000.0
        rot_at = total // 2 if self.a.rotate else None
        fd = os.open(self.live, os.O_WRONLY | os.O_APPEND)
        n = 1      # next record number
        tick = 0
        try:
            while n <= total:
                tick += 1
                wake = t0 + tick * step
                delay = wake - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                now = time.monotonic()
                due = min(total, int((now - t0) * rate))
                if due < n:
                    continue
                if rot_at is not None and n <= rot_at < due + 1 and self.t_rot is None:
                    due = rot_at  # the records before the rotation, then rotate
                # how far behind its schedule the last record of this burst is
                self.lag_max = max(self.lag_max, now - (t0 + due / rate))
                logged = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S+0000")
                data = b"".join(record_bytes(k, logged) for k in range(n, due + 1))
                t = time.monotonic()
                os.write(fd, data)
                self.writes += 1
                self.wtimes.extend([t] * (due + 1 - n))
                n = due + 1
                if rot_at is not None and n == rot_at + 1 and self.t_rot is None:
                    fd = self._rotate(fd)
                    self.n_rot = n
                    tick -= 1  # the rest of this tick's records go to the new file now
        finally:
            os.close(fd)

    def _rotate(self, fd):
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d-%H%M")
        dest = os.path.join(self.archive, "bounces-%s.csv" % stamp)
        self.t_rot = time.monotonic()
        os.rename(self.live, dest)
        os.close(fd)
        fd = os.open(self.live, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, HEADER)
        return fd

    # -- the reader

    def reader(self):
        try:
            fd = os.open(self.outfile, os.O_RDONLY)
            try:
                pos = 0
                while True:
                    stopping = self.stop_reader.is_set()
                    size = os.fstat(fd).st_size
                    if size > pos:
                        t = time.monotonic()
                        data = os.pread(fd, size - pos, pos)
                        pos += len(data)
                        self.chunks.append((t, data))
                        self.lines_seen += data.count(b"\n")
                    elif stopping:
                        return
                    else:
                        time.sleep(self.a.poll_ms / 1000.0)
            finally:
                os.close(fd)
        except BaseException as e:
            self.reader_error = e

    def arrivals(self):
        """{N: [arrival times]} from the output, plus lines that are no event of ours."""
        seen, bad = {}, 0
        rest = b""
        for t, data in self.chunks:
            lines = (rest + data).split(b"\n")
            rest = lines.pop()
            for line in lines:
                try:
                    ev = json.loads(line)
                    rcpt = ev["rcpt"]
                    if not (rcpt.startswith("u") and rcpt.endswith("@example.com")):
                        raise ValueError(rcpt)
                    num = int(rcpt[1:-len("@example.com")])
                except (ValueError, KeyError, TypeError, AttributeError):
                    bad += 1
                    continue
                seen.setdefault(num, []).append(t)
        if rest:
            bad += 1
        return seen, bad

    # -- the whole run

    def run(self):
        a = self.a
        total = int(round(a.rate * a.duration))
        self.start()
        pid = self.proc.pid
        rd = threading.Thread(target=self.reader, daemon=True)
        rd.start()
        t0 = time.monotonic() + 0.05
        cpu0, sw0 = proc_cpu_s(pid), switches(pid)
        wr = threading.Thread(target=self.writer, args=(total, t0), daemon=True)
        wr.start()
        wr.join(a.duration + 30)
        if wr.is_alive():
            raise Failure("the writer did not finish")
        if self.writer_error:
            raise Failure("the writer failed: %r" % self.writer_error)
        t_end = self.wtimes[-1] if self.wtimes else time.monotonic()
        self.check_alive("while records were written")
        cpu1, sw1 = proc_cpu_s(pid), switches(pid)
        run_s = max(1e-9, time.monotonic() - t0)

        # Everything delivered (bounded wait).
        deadline = time.monotonic() + self.linger / 1000.0 + a.drain_timeout
        while self.lines_seen < total and time.monotonic() < deadline and self.alive():
            time.sleep(0.01)
        self.check_alive("while the last records were delivered")
        t_done = time.monotonic()

        # Idle: wait, then sample over a.idle seconds.
        time.sleep(a.settle)
        self.check_alive("after delivery")
        size0 = os.path.getsize(self.outfile)
        sv0, sn0 = switches(pid)
        c0 = proc_cpu_s(pid)
        time.sleep(a.idle)
        self.check_alive("while idle")
        sv1, sn1 = switches(pid)
        c1 = proc_cpu_s(pid)
        size1 = os.path.getsize(self.outfile)
        hwm = proc_hwm_kib(pid)
        threads = len(os.listdir("/proc/%d/task" % pid))

        status = self.stop()
        self.stop_reader.set()
        rd.join(10)
        if self.reader_error:
            raise Failure("the reader failed: %r" % self.reader_error)
        if status != 0:
            raise Failure("the daemon exited with status %s on SIGTERM: %s"
                          % (status, self.stderr_tail()))

        seen, bad = self.arrivals()
        if not any(1 <= k <= total for k in seen):
            raise Failure("no event arrived in %s: %s" % (self.outfile, self.stderr_tail()))
        lat = []          # (write time, latency s)
        missing = dupes = 0
        for num in range(1, total + 1):
            ts = seen.get(num)
            if not ts:
                missing += 1
                continue
            dupes += len(ts) - 1
            lat.append((self.wtimes[num - 1], ts[0] - self.wtimes[num - 1]))
        extra = sum(len(v) for k, v in seen.items() if not 1 <= k <= total)
        vals = sorted(x[1] * 1000 for x in lat)
        span = self.wtimes[-1] - t0 if self.wtimes else 0
        worst = max(lat, key=lambda x: x[1])
        # The stream's last batch is never filled: it waits out the whole
        # linger. "steady" leaves out the records written in the last
        # max(1 s, linger) of the run, so that end effect shows apart.
        cut = self.wtimes[-1] - max(1.0, self.linger / 1000.0)
        steady = sorted(l * 1000 for t, l in lat if t < cut)
        tail = [l * 1000 for t, l in lat if t >= cut]
        r = {
            "records": total,
            "delivered": len(lat),
            "missing": missing,
            "dupes": dupes,
            "stray": extra + bad,
            "rps": total / span if span > 0 else 0,
            "writes": self.writes,
            "lag_max_ms": self.lag_max * 1000,
            "p50_ms": pct(vals, 50),
            "p90_ms": pct(vals, 90),
            "p99_ms": pct(vals, 99),
            "max_ms": vals[-1],
            "max_at_s": worst[0] - t0,
            "mean_ms": sum(vals) / len(vals),
            "steady_s": cut - t0,
            "steady_p99_ms": pct(steady, 99),
            "steady_max_ms": steady[-1] if steady else float("nan"),
            "tail_max_ms": max(tail) if tail else float("nan"),
            "drain_s": t_done - t_end,
            "run_cpu_pct": 100.0 * (cpu1 - cpu0) / run_s,
            "run_wakeups_ps": ((sw1[0] - sw0[0]) + (sw1[1] - sw0[1])) / run_s,
            "idle_s": a.idle,
            "idle_vol": sv1 - sv0,
            "idle_invol": sn1 - sn0,
            "idle_wakeups_ps": ((sv1 - sv0) + (sn1 - sn0)) / a.idle,
            "idle_cpu_ms": (c1 - c0) * 1000,
            "idle_out_bytes": size1 - size0,
            "rss_kib": hwm,
            "threads": threads,
        }
        # Around the rotation: records written from rot_window s before to
        # rot_window s after the rename.
        if self.t_rot is not None:
            w = a.rot_window
            near = sorted(l * 1000 for t, l in lat if self.t_rot - w <= t <= self.t_rot + w)
            first_new = seen.get(self.n_rot)
            r.update({
                "rot_n": len(near),
                "rot_p50_ms": pct(near, 50),
                "rot_max_ms": near[-1] if near else float("nan"),
                "rot_first_ms": ((first_new[0] - self.wtimes[self.n_rot - 1]) * 1000
                                 if first_new else float("nan")),
            })
        # Per-second maxima, to show where spikes are (relative to the start).
        per_s = {}
        for t, l in lat:
            k = int(t - t0)
            per_s[k] = max(per_s.get(k, 0), l * 1000)
        r["per_s_max"] = [per_s.get(k, float("nan")) for k in range(int(a.duration) + 1)]
        r["rot_at_s"] = (self.t_rot - t0) if self.t_rot is not None else None
        return r


# ---------------------------------------------------------------- main

def buildtype(build):
    try:
        with open(os.path.join(build, "meson-info", "intro-buildoptions.json")) as fh:
            for o in json.load(fh):
                if o["name"] == "buildtype":
                    return o["value"]
    except (OSError, ValueError, KeyError):
        pass
    return "?"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return os.uname().machine


def fmt(v, nd=1):
    if isinstance(v, float):
        return "NA" if v != v else "%.*f" % (nd, v)
    return str(v)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="meson build directory (default: build)")
    ap.add_argument("--binary", help="pmtatail binary (default: BUILD/src/pmtatail)")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of writing (20)")
    ap.add_argument("--rate", type=float, default=1000.0, help="records per second (1000)")
    ap.add_argument("--burst-ms", type=float, default=10.0,
                    help="the writer writes the records due every this many ms (10)")
    ap.add_argument("--lingers", default="1000,20", help="linger_ms values to run (1000,20)")
    ap.add_argument("--batch", type=int, default=500, help="batch_max_records (500)")
    ap.add_argument("--poll-ms", type=float, default=1.0, help="output polling period (1)")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds after delivery before the idle sample (1)")
    ap.add_argument("--idle", type=float, default=10.0, help="idle sample, seconds (10)")
    ap.add_argument("--rot-window", type=float, default=1.0,
                    help="'around the rotation' = records written within this many s (1)")
    ap.add_argument("--no-rotate", dest="rotate", action="store_false")
    ap.add_argument("--drain-timeout", type=float, default=20.0,
                    help="seconds (beyond the linger) to wait for the last events (20)")
    ap.add_argument("--url", action="store_true",
                    help="deliver to a local webhook (type=pmta: one event per request) "
                    "instead of a file")
    ap.add_argument("--serve", nargs=2, metavar=("PORT_FILE", "OUTFILE"), help=argparse.SUPPRESS)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
    a = ap.parse_args(argv[1:])
    if a.serve:
        serve(*a.serve)
        return 0
    # SIGTERM (e.g. from timeout(1)): unwind, so the daemon is killed and the
    # temporary directory removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    a.binary = a.binary or os.path.join(a.build, "src", "pmtatail")
    try:
        lingers = [int(x) for x in a.lingers.split(",") if x.strip()]
    except ValueError:
        ap.error("--lingers: comma-separated integers")
    if a.rate <= 0 or a.duration <= 0 or a.idle <= 0 or not lingers:
        ap.error("--rate, --duration, --idle must be positive, --lingers non-empty")
    if not os.access(a.binary, os.X_OK):
        print("latency.py: %s not found (ninja -C %s)" % (a.binary, a.build), file=sys.stderr)
        return 2

    bt = buildtype(os.path.dirname(os.path.dirname(os.path.abspath(a.binary))))
    tmpdir = tempfile.gettempdir()
    print("== pmtatail latency benchmark  %s"
          % dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"))
    print("machine : nproc=%d  cpu=%s  kernel=%s  load=%s" % (
        os.cpu_count(), cpu_model(), os.uname().release,
        " ".join("%.2f" % x for x in os.getloadavg())))
    print("binary  : %s (buildtype=%s)" % (a.binary, bt))
    if a.url:
        print("output  : url, type=pmta (format auto: one event per request), a Python (asyncio) "
              "backend in its own process writing each event it receives to the output file")
    else:
        print("temp    : %s (%s; the output is fdatasync'd per batch here)"
              % (tmpdir, fs_type(tmpdir)))
    print("load    : %g records/s for %g s, written every %g ms; batch_max_records=%d; "
          "rotation %s" % (a.rate, a.duration, a.burst_ms, a.batch,
                           "halfway (rename into archive/, new file with header)"
                           if a.rotate else "off"))
    print("measure : latency = output line seen (size polled every %g ms) - write(2) of the "
          "record; idle = %g s sample, %g s after the last event" % (a.poll_ms, a.idle, a.settle))

    results = {}
    for linger in lingers:
        print()
        print("-- linger_ms=%d%s" % (linger, "  (the default)" if linger == 1000 else ""))
        run = Run(a, linger)
        try:
            r = run.run()
        except Failure as e:
            print("latency.py: linger_ms=%d: %s" % (linger, e), file=sys.stderr)
            run.cleanup()
            return 1
        except BaseException:
            run.cleanup()
            raise
        run.cleanup()
        results[linger] = r
        print("rate      : %.1f records/s achieved (%d records, %d writes; writer at most "
              "%.1f ms behind schedule)" % (r["rps"], r["records"], r["writes"], r["lag_max_ms"]))
        print("delivered : %d of %d, missing %d, duplicates %d, stray lines %d; last event "
              "%.3f s after the last write" % (r["delivered"], r["records"], r["missing"],
                                               r["dupes"], r["stray"], r["drain_s"]))
        if r["missing"] or r["dupes"] or r["stray"]:
            print("WARNING: the output is not exactly one event per record written")
        print("latency   : p50 %s ms  p90 %s ms  p99 %s ms  max %s ms (record written at "
              "%.2f s)  mean %s ms" % (fmt(r["p50_ms"]), fmt(r["p90_ms"]), fmt(r["p99_ms"]),
                                       fmt(r["max_ms"]), r["max_at_s"], fmt(r["mean_ms"])))
        print("steady    : records written in the first %.2f s: p99 %s ms, max %s ms; the "
              "rest (end of the stream: the last batch waits out its linger): max %s ms" % (
                  r["steady_s"], fmt(r["steady_p99_ms"]), fmt(r["steady_max_ms"]),
                  fmt(r["tail_max_ms"])))
        if r.get("rot_n") is not None:
            print("rotation  : at %.2f s; %d records written within %g s of it: p50 %s ms, "
                  "max %s ms; first record of the new file: %s ms" % (
                      r["rot_at_s"], r["rot_n"], a.rot_window, fmt(r["rot_p50_ms"]),
                      fmt(r["rot_max_ms"]), fmt(r["rot_first_ms"])))
        print("per second: max latency (ms) of the records written in each second: " +
              " ".join(fmt(v, 0) for v in r["per_s_max"]))
        print("busy      : daemon CPU %.1f%% of one core, %.0f context switches/s while "
              "writing" % (r["run_cpu_pct"], r["run_wakeups_ps"]))
        print("idle      : %.1f wake-ups/s over %g s (%d voluntary, %d involuntary context "
              "switches, %d thread(s)), CPU %.0f ms, output grew %d bytes" % (
                  r["idle_wakeups_ps"], r["idle_s"], r["idle_vol"], r["idle_invol"],
                  r["threads"], r["idle_cpu_ms"], r["idle_out_bytes"]))
        print("peak RSS  : %.1f MiB (VmHWM %d KiB)" % (r["rss_kib"] / 1024, r["rss_kib"]))

    print()
    print("== results (latency in ms, from write(2) to the event in the output file)")
    print("%-10s %9s %7s %7s %7s %7s %11s %11s %8s %8s %9s %9s" % (
        "linger_ms", "records/s", "p50", "p90", "p99", "max", "steady p99", "steady max",
        "rot max", "missing", "idle w/s", "peak RSS"))
    for linger, r in results.items():
        print("%-10d %9.1f %7s %7s %7s %7s %11s %11s %8s %8d %9.1f %5.1f MiB" % (
            linger, r["rps"], fmt(r["p50_ms"]), fmt(r["p90_ms"]), fmt(r["p99_ms"]),
            fmt(r["max_ms"]), fmt(r["steady_p99_ms"]), fmt(r["steady_max_ms"]),
            fmt(r.get("rot_max_ms", float("nan"))), r["missing"],
            r["idle_wakeups_ps"], r["rss_kib"] / 1024))

    keys = [("rps", 1), ("p50_ms", 1), ("p90_ms", 1), ("p99_ms", 1), ("max_ms", 1),
            ("steady_p99_ms", 1), ("steady_max_ms", 1), ("rot_max_ms", 1), ("rot_first_ms", 1), ("missing", 0), ("dupes", 0),
            ("idle_wakeups_ps", 2), ("idle_cpu_ms", 0), ("run_cpu_pct", 1), ("rss_kib", 0)]
    parts = ["BENCH-LATENCY", "output=%s" % ("url" if a.url else "file"),
             "duration_s=%g" % a.duration, "rate=%g" % a.rate,
             "batch_max_records=%d" % a.batch, "nproc=%d" % os.cpu_count(),
             "cpu=%s" % cpu_model().replace(" ", "_"), "buildtype=%s" % bt]
    for linger, r in results.items():
        for k, nd in keys:
            v = r.get(k, float("nan"))
            parts.append("linger%d_%s=%s" % (linger, k, fmt(float(v), nd) if nd else fmt(v)))
    print()
    print(" ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
