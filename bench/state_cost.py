#!/usr/bin/env python3
"""What keeping the offsets costs against the size of the offsets table.

A benchmark, not a test: it reports numbers and the targets next to them and
never fails because something is slow. It exits 1 only when it cannot
measure (a daemon that does not start, dies, or does not deliver).

Each run starts `pmtatail run` on a fresh state directory seeded with a
table of N finished entries (files rotated away earlier, each with its
header line, as 14 days of rotations leave them), then appends bounces to
the live file at a steady --rate (default 50 a second) for --seconds, every
one delivered over HTTP to csink (bench/csink.c, a counting C sink). Over
the measured window (after a warm-up) it reads the daemon's CPU time
(/proc/PID/stat utime+stime) and the bytes it wrote (/proc/PID/io
write_bytes: pages it dirtied, what the disk will get), and at the end its
resident set (VmRSS).

Every binary given (--bin LABEL=PATH, e.g. before=/tmp/pmtatail-before
after=build/src/pmtatail) runs for every table size (--sizes, default
0,700,4000), alternating, --rounds times each: same-run figures, whatever
else the machine does. Medians are reported.

With --rotate-s S the live file is rotated every S seconds as PowerMTA
does (renamed to bounces-YYYY-MM-DD-NNNN.csv beside it, a new one with its
header started): each rotation finishes an entry and the table grows (and
is pruned near its cap), the soak for a flat RSS (rss_start_kib, the RSS
after the warm-up, against rss_kib at the end).

Targets (issue 20): with 4,000 finished entries at 50 bounces/s, at most 5 %
of a core and 200 KB/s written.

Usage: python3 bench/state_cost.py --bin before=PATH --bin after=PATH
           [--sizes 0,700,4000] [--rate 50] [--seconds 20] [--rounds 1] [--tmp DIR]
           [--rotate-s S]

Ends with one machine-readable line per (binary, size):
`BENCH-STATE bin=... entries=... cpu_pct=... write_kbps=... rss_start_kib=... rss_kib=...
delivered=... rotations=...`.
Standard library only (Python 3.11).
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_CPU_PCT = 5.0
TARGET_WRITE_KBPS = 200.0
HEADER = (b"type,timeLogged,timeQueued,orig,rcpt,orcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,"
          b"bounceCat,srcMta,dlvSourceIp,vmta,jobId,header_x-sp-message-id")
WARMUP_S = 3.0


class Failure(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_s(pid):
    with open("/proc/%d/stat" % pid) as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / CLK_TCK


def proc_write_bytes(pid):
    with open("/proc/%d/io" % pid) as fh:
        for line in fh:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def proc_rss_kib(pid):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Sink:
    def __init__(self, exe, tmp):
        self.port = free_port()
        self.count_file = os.path.join(tmp, "count.txt")
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--count-file",
                                      self.count_file], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.02)
        raise Failure("csink did not start")

    def records(self):
        try:
            with open(self.count_file) as fh:
                return int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            return 0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def record(i):
    t = time.strftime("%Y-%m-%d %H:%M:%S+0000", time.gmtime())
    return ("b,%s,%s,sender@example.com,user%d@example.net,,failed,5.1.1,"
            "\"smtp;550 5.1.1 <user%d@example.net>: mailbox unavailable\",mx.example.net,"
            "bad-mailbox,10.0.0.1,10.0.0.2,vmta1,job%d,msg-%d\r\n"
            % (t, t, i, i, i % 97, i)).encode()


def seed_state(state, hist, n):
    """offsets.json with n finished entries of files that still exist (so
    nothing prunes them during the run), seen over the last 13 days."""
    os.makedirs(state, mode=0o700)
    os.makedirs(hist)
    rng = random.Random(n)
    now = int(time.time())
    files = []
    for i in range(n):
        p = os.path.join(hist, "bounces-2024-01-%02d-%04d.csv" % (1 + i // 288, i % 288))
        with open(p, "wb") as fh:
            fh.write(HEADER + b"\r\n")
        st = os.stat(p)
        files.append({"source": "bounces", "path": p, "dev": st.st_dev, "ino": st.st_ino,
                      "fp": "%016x" % rng.getrandbits(64), "fp_len": 1024,
                      "offset": 300000 + i, "finished": True,
                      "seen": now - 13 * 86400 + i * (13 * 86400 // max(n, 1)),
                      "header": HEADER.decode()})
    if n:
        with open(os.path.join(state, "offsets.json"), "w") as fh:
            json.dump({"version": 1, "files": files}, fh, indent=1)


def run_one(binary, n, rate, seconds, sink_exe, tmp_root, rotate_s=0.0):
    tmp = tempfile.mkdtemp(prefix="pmtastate-", dir=tmp_root)
    try:
        live = os.path.join(tmp, "pmta", "bounces.csv")
        state = os.path.join(tmp, "state")
        os.makedirs(os.path.dirname(live))
        seed_state(state, os.path.join(tmp, "hist"), n)
        with open(live, "wb") as fh:
            fh.write(HEADER + b"\r\n")
        sink = Sink(sink_exe, tmp)
        conf = os.path.join(tmp, "pmtatail.conf")
        with open(conf, "w") as fh:
            fh.write("[source bounces]\npath = %s\nrecords = b, rb\n\n"
                     "[output]\nurl = http://127.0.0.1:%d/events\nformat = batch\n\n"
                     "[state]\ndir = %s\n\n[log]\nlevel = warn\n" % (live, sink.port, state))
        err = open(os.path.join(tmp, "stderr"), "wb")
        proc = subprocess.Popen([binary, "-c", conf, "run"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
        out = open(live, "ab", buffering=0)
        sent = rotations = 0
        try:
            t0 = time.monotonic()
            cpu0 = wb0 = None
            next_rot = t0 + rotate_s
            while True:
                now = time.monotonic()
                if proc.poll() is not None:
                    raise Failure("%s exited (%s)" % (binary, proc.returncode))
                if cpu0 is None and now - t0 >= WARMUP_S:
                    cpu0, wb0, tm0 = proc_cpu_s(proc.pid), proc_write_bytes(proc.pid), now
                    rss0 = proc_rss_kib(proc.pid)
                if rotate_s > 0 and now >= next_rot:
                    out.close()
                    rotations += 1
                    os.rename(live, os.path.join(os.path.dirname(live),
                                                 "bounces-2099-01-01-%04d.csv" % rotations))
                    with open(live, "wb") as fh:
                        fh.write(HEADER + b"\r\n")
                    out = open(live, "ab", buffering=0)
                    next_rot += rotate_s
                if now - t0 >= WARMUP_S + seconds:
                    break
                due = int((now - t0) * rate)
                while sent < due:
                    out.write(record(sent))
                    sent += 1
                time.sleep(min(0.5 / rate, 0.01))
            cpu1, wb1, tm1 = proc_cpu_s(proc.pid), proc_write_bytes(proc.pid), time.monotonic()
            rss = proc_rss_kib(proc.pid)
            deadline = time.monotonic() + 30
            while sink.records() < sent and time.monotonic() < deadline:
                time.sleep(0.05)
            if sink.records() < sent:
                raise Failure("%d of %d records delivered" % (sink.records(), sent))
        finally:
            out.close()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            err.close()
            sink.stop()
        span = tm1 - tm0
        return {"cpu_pct": (cpu1 - cpu0) / span * 100, "write_kbps": (wb1 - wb0) / span / 1000,
                "rss_start_kib": rss0, "rss_kib": rss, "delivered": sent,
                "rotations": rotations}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", action="append", required=True, help="LABEL=PATH, repeatable")
    ap.add_argument("--sizes", default="0,700,4000")
    ap.add_argument("--rate", type=float, default=50.0, help="bounces per second")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--tmp", default=None, help="where the state directories go")
    ap.add_argument("--rotate-s", type=float, default=0.0,
                    help="rotate the live file every this many seconds (0: never)")
    a = ap.parse_args()
    bins = []
    for spec in a.bin:
        label, _, path = spec.partition("=")
        if not path or not os.access(path, os.X_OK):
            print("state_cost.py: %s: not LABEL=EXECUTABLE" % spec, file=sys.stderr)
            return 2
        bins.append((label, path))
    sizes = [int(x) for x in a.sizes.split(",")]
    work = tempfile.mkdtemp(prefix="pmtastate-sink-")
    res = {}
    try:
        sink_exe = os.path.join(work, "csink")
        subprocess.run(["cc", "-O2", "-o", sink_exe, os.path.join(HERE, "csink.c")], check=True)
        for r in range(a.rounds):
            for n in sizes:
                for label, path in bins:
                    x = run_one(path, n, a.rate, a.seconds, sink_exe, a.tmp, a.rotate_s)
                    res.setdefault((label, n), []).append(x)
                    print("round %d %-8s %5d entries: cpu %5.2f %% of a core, written %8.1f "
                          "KB/s, rss %6d -> %6d KiB, %d records, %d rotations"
                          % (r + 1, label, n, x["cpu_pct"], x["write_kbps"], x["rss_start_kib"],
                             x["rss_kib"], x["delivered"], x["rotations"]), flush=True)
    except (Failure, subprocess.CalledProcessError) as e:
        print("state_cost.py: cannot measure: %s" % e, file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("medians at %.0f bounces/s over %.0f s (targets at 4000 entries: <= %.0f %% of a core, "
          "<= %.0f KB/s written):" % (a.rate, a.seconds, TARGET_CPU_PCT, TARGET_WRITE_KBPS))
    print("%-8s %8s %10s %12s %10s" % ("binary", "entries", "cpu %", "write KB/s", "rss KiB"))
    lines = []
    for n in sizes:
        for label, _ in bins:
            xs = res[(label, n)]
            m = {k: statistics.median(x[k] for x in xs) for k in xs[0]}
            print("%-8s %8d %10.2f %12.1f %10d" % (label, n, m["cpu_pct"], m["write_kbps"],
                                                   m["rss_kib"]))
            lines.append("BENCH-STATE bin=%s entries=%d cpu_pct=%.2f write_kbps=%.1f "
                         "rss_start_kib=%d rss_kib=%d delivered=%d rotations=%d"
                         % (label, n, m["cpu_pct"], m["write_kbps"], m["rss_start_kib"],
                            m["rss_kib"], m["delivered"], m["rotations"]))
    for ln in lines:
        print(ln)
    return 0


if __name__ == "__main__":
    sys.exit(main())
