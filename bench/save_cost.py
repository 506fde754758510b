#!/usr/bin/env python3
"""What saving the offsets after every acknowledgement costs in throughput.

A benchmark, not a test: it reports numbers and the target next to them, and
never fails because something is slow. It exits 1 only when it cannot
measure (a daemon that does not start, dies, or does not deliver everything).

`pmtatail run` saves offsets.json (temp file, fsync, rename, fsync of the
directory) in the loop pass after acknowledgements arrive, at most every
PMTATAIL_COMMIT_MIN_MS (10 ms) under load, so that a kill -9 resends little
more than what was in flight. This measures that against the same source
built with saves coarsened to once a second (-DPMTATAIL_COMMIT_MIN_MS=1000):
both binaries deliver the same file (bench/gen_records.py, hard-linked as the
live file of a fresh directory) over HTTP to csink (bench/csink.c, a counting
C sink that is never the bottleneck), format batch, concurrency 4, from the
start until every event is counted by the sink (and then until offsets.json
has reached the file's size). The two alternate, --rounds times each, and the
figure is the ratio of their median times to the last event: a same-run
ratio, whatever the machine does. The daemon's CPU time is compared too.

State directory: a fresh one per run under --tmp (default $TMPDIR or /tmp);
point --tmp at the file system the real state directory lives on to see its
fsync cost.

Usage: python3 bench/save_cost.py --fine BINARY --coarse BINARY --file CSV
           [--records N] [--rounds 3] [--tmp DIR] [--cap 600]

bench/run.sh --save-cost builds the coarse binary (BUILD_DIR-coarse) and runs
this. It ends with one machine-readable line, `BENCH-SAVES key=value ...`.
Standard library only (Python 3.11).
"""

import argparse
import csv
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "py"))
from harness import read_offsets  # noqa: E402  (offsets.json and its journal)
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_PCT = 5.0


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


def build_csink(tmp):
    exe = os.path.join(tmp, "csink")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(HERE, "csink.c")], check=True)
    return exe


class Sink:
    def __init__(self, exe, tmp):
        self.port = free_port()
        self.count_file = os.path.join(tmp, "count-%d.txt" % self.port)
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--count-file",
                                      self.count_file, "--max-body", str(64 << 20)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def events_in(path):
    """The b and rb rows of the file (the events the daemon sends), read with
    Python's csv module, independent of the daemon's parser."""
    n = 0
    with open(path, newline="", encoding="latin-1") as fh:
        rows = csv.reader(fh)
        next(rows, None)
        for row in rows:
            n += bool(row) and row[0] in ("b", "rb")
    return n


def deliver(binary, csv_path, events, size, sink_exe, tmp_root, cap_s):
    tmp = tempfile.mkdtemp(prefix="pmtasaves-", dir=tmp_root)
    try:
        live = os.path.join(tmp, "pmta", "bounces.csv")
        state = os.path.join(tmp, "state")
        os.makedirs(os.path.dirname(live))
        os.makedirs(state)
        try:
            os.link(csv_path, live)
        except OSError:
            shutil.copyfile(csv_path, live)
        sink = Sink(sink_exe, tmp)
        conf = os.path.join(tmp, "pmtatail.conf")
        with open(conf, "w") as fh:
            fh.write("[source bounces]\npath = %s\nrecords = b, rb\n\n"
                     "[output]\nurl = http://127.0.0.1:%d/events\nformat = batch\n"
                     "concurrency = 4\nbatch_max_records = 500\nlinger_ms = 20\n\n"
                     "[state]\ndir = %s\n\n[log]\nlevel = warn\n" % (live, sink.port, state))
        offsets = os.path.join(state, "offsets.json")
        saves = 0
        last_ino = None

        def committed():
            doc = read_offsets(state)
            if doc is None:
                return -1
            return max([int(e.get("offset", -1)) for e in doc.get("files", [])
                        if e.get("path") == live] or [-1])
        err = open(os.path.join(tmp, "stderr"), "wb")
        t_acked = None
        t0 = time.monotonic()
        proc = subprocess.Popen([binary, "-c", conf, "run"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
        try:
            while True:
                if proc.poll() is not None:
                    raise Failure("%s exited (%s)" % (binary, proc.returncode))
                try:
                    # each snapshot renames a new file in, each other save
                    # appends a line to the journal
                    st = os.stat(offsets)
                    ino = (st.st_ino, os.path.getsize(os.path.join(state, "offsets.journal"))
                           if os.path.exists(os.path.join(state, "offsets.journal")) else 0)
                    if ino != last_ino:
                        saves += 1
                        last_ino = ino
                except OSError:
                    pass
                if t_acked is None and sink.records() >= events:
                    t_acked = time.monotonic() - t0
                if t_acked is not None and committed() >= size:
                    break
                if time.monotonic() - t0 > cap_s:
                    raise Failure("not delivered within %d s (%d of %d events)"
                                  % (cap_s, sink.records(), events))
                time.sleep(0.005)
            wall = time.monotonic() - t0
            cpu = proc_cpu_s(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            err.close()
            sink.stop()
        return t_acked, wall, cpu, saves
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fine", required=True, help="pmtatail saving after every acknowledgement")
    ap.add_argument("--coarse", required=True, help="the same source, saves once a second")
    ap.add_argument("--file", required=True, help="accounting file (bench/gen_records.py)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tmp", default=None, help="where the state directories go")
    ap.add_argument("--cap", type=float, default=600, help="seconds per delivery at most")
    a = ap.parse_args()
    for b in (a.fine, a.coarse):
        if not os.access(b, os.X_OK):
            print("save_cost.py: %s is not executable" % b, file=sys.stderr)
            return 2
    size = os.path.getsize(a.file)
    events = events_in(a.file)
    work = tempfile.mkdtemp(prefix="pmtasaves-sink-")
    try:
        sink_exe = build_csink(work)
        runs = {"fine": [], "coarse": []}
        for r in range(a.rounds):
            for label, binary in (("fine", a.fine), ("coarse", a.coarse)):
                acked, wall, cpu, saves = deliver(binary, a.file, events, size, sink_exe, a.tmp,
                                                  a.cap)
                runs[label].append((acked, wall, cpu, saves))
                print("round %d %-6s all counted by the sink %6.2f s (%7.0f events/s), "
                      "committed %6.2f s, cpu %5.2f s, ~%d saves seen"
                      % (r + 1, label, acked, events / acked, wall, cpu, saves), flush=True)
    except (Failure, subprocess.CalledProcessError) as e:
        print("save_cost.py: cannot measure: %s" % e, file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def med(label, i):
        return statistics.median(x[i] for x in runs[label])
    acked = {k: med(k, 0) for k in runs}
    wall = {k: med(k, 1) for k in runs}
    cpu = {k: med(k, 2) for k in runs}
    # The throughput figure: the time until the sink has every event. The
    # time to the last commit also holds the coarse build's wait for its
    # next save (up to a second), which is what the fine saves remove.
    cost = (acked["fine"] / acked["coarse"] - 1) * 100
    cpu_cost = (cpu["fine"] / cpu["coarse"] - 1) * 100
    print("events %d (%d bytes), %d rounds, medians: saves after every acknowledgement: "
          "%.2f s to the last event (%.0f events/s), %.2f s to the last commit; saves once a "
          "second: %.2f s (%.0f events/s), %.2f s"
          % (events, size, a.rounds, acked["fine"], events / acked["fine"], wall["fine"],
             acked["coarse"], events / acked["coarse"], wall["coarse"]))
    print("cost of the saves: %+.1f%% delivery time (target < %.0f%%), %+.1f%% daemon CPU "
          "(%.2f s vs %.2f s)" % (cost, TARGET_PCT, cpu_cost, cpu["fine"], cpu["coarse"]))
    print("BENCH-SAVES events=%d rounds=%d fine_s=%.3f coarse_s=%.3f cost_pct=%.2f "
          "fine_commit_s=%.3f coarse_commit_s=%.3f fine_cpu_s=%.3f coarse_cpu_s=%.3f "
          "cpu_cost_pct=%.2f" % (events, a.rounds, acked["fine"], acked["coarse"], cost,
                                 wall["fine"], wall["coarse"], cpu["fine"], cpu["coarse"],
                                 cpu_cost))
    return 0


if __name__ == "__main__":
    sys.exit(main())
