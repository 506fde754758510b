#!/usr/bin/env python3
"""Delivery benchmark against a C sink: `pmtatail run` per format, paired with the
libcsv parse-only baseline in the same round.

A benchmark, not a test: it reports and asserts nothing about speed. Exit 1 when it
cannot measure (the sink or the daemon fails, a run times out), 2 when a binary is
missing. Standard library only; builds bench/csink.c with `cc -O2` into bench/out/.

Each round runs csvwalk on the file, then every case: a fresh directory whose
pmta/bounces.csv is a hard link to the data file, the daemon reading it from its
start, delivering to csink (one thread, epoll, keep-alive; it counts the events as
they stream and is never the bottleneck). A case ends when offsets.json holds the
file's size as its offset (polled every 5 ms). Then the daemon's utime + stime,
VmHWM, and the largest RssAnon seen (sampled every 20 ms; the daemon's private
memory, without the shared libraries' pages) are read, and it gets SIGTERM.

Figures are the medians over the rounds; ratios are taken per round against that
round's csvwalk, then their median.
"""
import argparse, hashlib, json, os, shutil, signal, statistics, subprocess, sys, tempfile, time

BENCH = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Failure(Exception):
    pass


def data_file(n, seed, diag):
    with open(os.path.join(BENCH, "gen_records.py"), "rb") as fh:
        h = hashlib.sha1(fh.read()).hexdigest()[:8]
    out = os.path.join(BENCH, "out")
    os.makedirs(out, exist_ok=True)
    kind = "" if diag == "mixed" else "-" + diag
    path = os.path.join(out, "records-n%d-s%d%s-%s.csv" % (n, seed, kind, h))
    if os.path.exists(path) and os.path.getsize(path) > 0:
        return path
    tmp = "%s.tmp.%d" % (path, os.getpid())
    cmd = [sys.executable, os.path.join(BENCH, "gen_records.py"), "--records", str(n),
           "--seed", str(seed), tmp]
    if diag != "mixed":
        cmd[2:2] = ["--diag", diag]
    if subprocess.run(cmd, stderr=subprocess.DEVNULL).returncode != 0:
        raise Failure("gen_records.py failed")
    os.replace(tmp, path)
    return path


def build_csink():
    os.makedirs(os.path.join(BENCH, "out"), exist_ok=True)
    out = os.path.join(BENCH, "out", "csink")
    src = os.path.join(BENCH, "csink.c")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        if subprocess.run(["cc", "-O2", "-o", out, src]).returncode != 0:
            raise Failure("cannot build csink")
    return out


def proc_stat(pid):
    with open("/proc/%d/stat" % pid) as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / CLK_TCK


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def committed(offsets, live):
    try:
        with open(offsets) as fh:
            doc = json.load(fh)
        return max([int(e.get("offset", -1)) for e in doc.get("files", [])
                    if e.get("path") == live] + [-1])
    except (OSError, ValueError, TypeError, AttributeError):
        return -1


def link_or_copy(path, to):
    try:
        os.link(path, to)
    except OSError:
        shutil.copyfile(path, to)


def start_sink(csink, tmp, salt):
    """csink on a port of its own, its count file in tmp: (process, count path)."""
    count = os.path.join(tmp, "count")
    port = 20000 + (os.getpid() * salt + int(time.time() * 1000)) % 30000
    sink = subprocess.Popen([csink, "--port", str(port), "--count-file", count],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t_end = time.monotonic() + 5
    while not os.path.exists(count):
        if time.monotonic() > t_end or sink.poll() is not None:
            sink.kill()
            sink.wait()
            raise Failure("csink did not start")
        time.sleep(0.01)
    return sink, count, port


def csvwalk(a, path):
    t0 = time.monotonic()
    r = subprocess.run([os.path.join(a.build, "bench", "csvwalk"), path],
                       stdout=subprocess.DEVNULL)
    if r.returncode != 0:
        raise Failure("csvwalk failed")
    return time.monotonic() - t0


def sink_events(sink, count):
    """Stop csink; the events it counted."""
    sink.send_signal(signal.SIGTERM)
    sink.wait(timeout=10)
    with open(count) as fh:
        return int(fh.read().split()[0])


def reap(procs, tmp):
    """Kill what still runs, remove the case's directory."""
    for p in procs:
        if p and p.poll() is None:
            p.kill()
            p.wait()
    shutil.rmtree(tmp, ignore_errors=True)


def deliver(a, csink, path, fmt, conc):
    tmp = tempfile.mkdtemp(prefix="pmtadeliver-")
    sink = daemon = None
    try:
        os.makedirs(os.path.join(tmp, "pmta"))
        state = os.path.join(tmp, "state")
        os.mkdir(state, 0o700)
        live = os.path.join(tmp, "pmta", "bounces.csv")
        link_or_copy(path, live)
        sink, count, port = start_sink(csink, tmp, 7)
        conf = os.path.join(tmp, "pmtatail.conf")
        wire = "format = %s\nconcurrency = %d\n" % (fmt, conc) if fmt != "auto" else ""
        with open(conf, "w") as fh:
            fh.write("[source bounces]\npath = %s\nrecords = b, rb\n\n[output]\n"
                     "url = http://127.0.0.1:%d/system/bounce_webhook?type=pmta\n%s%s\n"
                     "[state]\ndir = %s\n\n[log]\nlevel = warn\n"
                     % (live, port, wire, a.extra.replace("\\n", "\n"), state))
        size = os.path.getsize(live)
        offsets = os.path.join(state, "offsets.json")
        t0 = time.monotonic()
        daemon = subprocess.Popen([os.path.join(a.build, "src", "pmtatail"), "-c", conf, "run"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=open(os.path.join(tmp, "err"), "w"))
        anon = 0
        next_sample = 0
        while committed(offsets, live) != size:
            if daemon.poll() is not None:
                raise Failure("the daemon exited with %s" % daemon.returncode)
            if time.monotonic() - t0 > a.timeout:
                raise Failure("timed out")
            now = time.monotonic()
            if now >= next_sample:
                anon = max(anon, status_kib(daemon.pid, "RssAnon"))
                next_sample = now + 0.02
            time.sleep(0.005)
        wall = time.monotonic() - t0
        cpu = proc_stat(daemon.pid)
        hwm = status_kib(daemon.pid, "VmHWM")
        anon = max(anon, status_kib(daemon.pid, "RssAnon"))
        daemon.send_signal(signal.SIGTERM)
        if daemon.wait(timeout=30) != 0:
            raise Failure("the daemon exited with %s on SIGTERM" % daemon.returncode)
        daemon = None
        events = sink_events(sink, count)
        sink = None
        return {"wall": wall, "cpu": cpu, "hwm": hwm, "anon": anon, "events": events}
    finally:
        reap((daemon, sink), tmp)


def deliver_replay(a, csink, path, conc):
    """`pmtatail -c CONF replay FILE` (format batch) to csink: from its launch
    to its exit, which comes once every batch is acknowledged."""
    tmp = tempfile.mkdtemp(prefix="pmtadeliver-")
    sink = rp = None
    try:
        state = os.path.join(tmp, "state")
        os.mkdir(state, 0o700)
        sink, count, port = start_sink(csink, tmp, 11)
        conf = os.path.join(tmp, "pmtatail.conf")
        with open(conf, "w") as fh:
            fh.write("[source bounces]\npath = %s/none.csv\nrecords = b, rb\n\n[output]\n"
                     "url = http://127.0.0.1:%d/system/bounce_webhook?type=pmta\n"
                     "format = batch\nconcurrency = %d\n%s\n[state]\ndir = %s\n\n"
                     "[log]\nlevel = warn\n"
                     % (tmp, port, conc, a.extra.replace("\\n", "\n"), state))
        t0 = time.monotonic()
        rp = subprocess.Popen([os.path.join(a.build, "src", "pmtatail"), "-c", conf, "replay",
                               path], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=open(os.path.join(tmp, "err"), "w"))
        hwm = anon = 0
        while True:
            # VmHWM is read while it runs: getrusage would give Python's own
            # high-water mark, which a forked child keeps through exec
            pid, status, ru = os.wait4(rp.pid, os.WNOHANG)
            if pid:
                break
            hwm = max(hwm, status_kib(rp.pid, "VmHWM"))
            anon = max(anon, status_kib(rp.pid, "RssAnon"))
            if time.monotonic() - t0 > a.timeout:
                raise Failure("replay timed out")
            time.sleep(0.02)
        wall = time.monotonic() - t0
        rp.returncode = os.waitstatus_to_exitcode(status)
        if rp.returncode != 0:
            raise Failure("replay exited with %s" % rp.returncode)
        rp = None
        events = sink_events(sink, count)
        sink = None
        return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "hwm": hwm, "anon": anon,
                "events": events}
    finally:
        reap((rp, sink), tmp)


SYSLOG_NG = "/usr/sbin/syslog-ng"

SYSLOG_NG_CONF = """@version: 3.38
options { stats-freq(0); log-msg-size(65536); flush-lines(1000); keep-hostname(yes); };
source s_pmta { file("%(live)s" flags(no-parse) follow-freq(1) log-fetch-limit(10000)
                     log-iw-size(100000)); };
parser p_csv { csv-parser(columns(%(columns)s) prefix("pmta.") delimiters(",")
                          quote-pairs('""') flags(escape-double-char, strip-whitespace)); };
filter f_bounces { match("^r?b$" value("pmta.type")); };
destination d_http { http(url("http://127.0.0.1:%(port)d/system/bounce_webhook?type=pmta")
    method("POST") headers("Content-Type: application/json") workers(2)
    batch-lines(1000) batch-timeout(100) body-prefix("[") delimiter(",") body-suffix("]")
    body("$(format-json --key pmta.* --shift 5)")); };
log { source(s_pmta); parser(p_csv); filter(f_bounces); destination(d_http); flags(flow-control); };
"""


def bounce_rows(path):
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            n += line.split(b",", 1)[0] in (b"b", b"rb")
    return n


def deliver_syslogng(a, csink, path, expected):
    """The same file through syslog-ng (csv-parser, then its http destination:
    arrays of 1000, two workers), from its launch until csink has counted every
    b and rb row."""
    tmp = tempfile.mkdtemp(prefix="pmtadeliver-sng-")
    sink = sng = None
    try:
        live = os.path.join(tmp, "bounces.csv")
        link_or_copy(path, live)
        with open(path, "rb") as fh:
            columns = fh.readline().decode().strip().split(",")
        sink, count, port = start_sink(csink, tmp, 11)
        conf = os.path.join(tmp, "syslog-ng.conf")
        with open(conf, "w") as fh:
            fh.write(SYSLOG_NG_CONF % {"live": live, "port": port, "columns": ", ".join(
                '"%s"' % c for c in columns)})
        t0, t0_epoch = time.monotonic(), time.time()
        sng = subprocess.Popen([SYSLOG_NG, "-F", "--no-caps", "-f", conf,
                                "-R", os.path.join(tmp, "persist"),
                                "-p", os.path.join(tmp, "pid"),
                                "-c", os.path.join(tmp, "ctl")],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=open(os.path.join(tmp, "err"), "w"))
        got, last_change, last, t_last = 0, time.monotonic(), -1, None
        while got < expected:
            if sng.poll() is not None:
                raise Failure("syslog-ng exited with %s" % sng.returncode)
            if time.monotonic() - t0 > a.timeout:
                raise Failure("syslog-ng timed out at %d of %d events" % (got, expected))
            if time.monotonic() - last_change > 5:
                # it drops rows its csv-parser refuses: its run ended with
                # the last body csink counted
                if got < expected * 0.9:
                    raise Failure("syslog-ng stalled at %d of %d events" % (got, expected))
                break
            try:
                with open(count) as f:
                    fields = f.read().split()
                got, t_last = int(fields[0]), float(fields[5])
            except (OSError, ValueError, IndexError):
                pass
            if got != last:
                last, last_change = got, time.monotonic()
            time.sleep(0.005)
        wall = time.monotonic() - t0 if got >= expected else t_last - t0_epoch
        cpu = proc_stat(sng.pid)
        hwm = status_kib(sng.pid, "VmHWM")
        anon = status_kib(sng.pid, "RssAnon")
        sng.send_signal(signal.SIGTERM)
        sng.wait(timeout=30)
        sng = None
        if got < expected:
            print("syslog-ng delivered %d of the %d b/rb rows (%d dropped)"
                  % (got, expected, expected - got), file=sys.stderr)
        return {"wall": wall, "cpu": cpu, "hwm": hwm, "anon": anon, "events": got}
    finally:
        reap((sng, sink), tmp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(os.path.dirname(BENCH), "build"))
    ap.add_argument("--records", type=int, default=1000000, help="N of the batch cases")
    ap.add_argument("--single-records", type=int, default=100000, help="N of the single cases")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--diag", default="mixed", help="gen_records.py --diag")
    ap.add_argument("--cases", default="batch:4,single:16,replay:4,syslog-ng",
                    help="FORMAT:CONCURRENCY,... (auto: neither key given); replay:C: "
                    "`replay FILE`, format batch, concurrency C; syslog-ng: the same file "
                    "through syslog-ng, when it is installed")
    ap.add_argument("--extra", default="", help="more [output] lines, \\n between")
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()
    for b in ("src/pmtatail", "bench/csvwalk"):
        if not os.path.exists(os.path.join(a.build, b)):
            print("missing %s/%s: build first" % (a.build, b), file=sys.stderr)
            return 2
    try:
        csink = build_csink()
        cases = [(c.split(":")[0], int(c.split(":")[1]) if ":" in c else 0)
                 for c in a.cases.split(",")]
        if ("syslog-ng", 0) in cases and not os.path.exists(SYSLOG_NG):
            print("syslog-ng is not installed (apt-get install syslog-ng-core "
                  "syslog-ng-mod-http): its case is skipped", file=sys.stderr)
            cases.remove(("syslog-ng", 0))
        expected = {}
        files = {}
        for fmt, _ in cases:
            n = a.single_records if fmt == "single" else a.records
            files[n] = data_file(n, a.seed, a.diag)
        res = {c: [] for c in cases}
        walk = {n: [] for n in files}
        for r in range(a.rounds):
            for n, path in files.items():
                walk[n].append(csvwalk(a, path))
            for c in cases:
                n = a.single_records if c[0] == "single" else a.records
                if c[0] == "syslog-ng":
                    if n not in expected:
                        expected[n] = bounce_rows(files[n])
                    x = deliver_syslogng(a, csink, files[n], expected[n])
                elif c[0] == "replay":
                    x = deliver_replay(a, csink, files[n], c[1])
                else:
                    x = deliver(a, csink, files[n], *c)
                x["ratio"] = walk[n][-1] / x["wall"]
                res[c].append(x)
                print("round %d %s:%d wall=%.3f cpu=%.3f events=%d hwm=%d anon=%d ratio=%.3f"
                      % (r + 1, c[0], c[1], x["wall"], x["cpu"], x["events"], x["hwm"],
                         x["anon"], x["ratio"]), flush=True)
    except Failure as e:
        print("cannot measure: %s" % e, file=sys.stderr)
        return 1
    med = statistics.median
    print("\n| case | N | events | wall s | events/s | CPU s | CPU us/event | VmHWM MiB "
          "| RssAnon MiB | x csvwalk |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    line = ["BENCH-DELIVER", "rounds=%d" % a.rounds, "nproc=%d" % os.cpu_count(),
            "diag=%s" % a.diag]
    for n in files:
        w = med(walk[n])
        print("| csvwalk | %d | | %.3f | %.0f records/s | | | | | 1.00 |" % (n, w, n / w))
        line.append("csvwalk_n%d_s=%.4f" % (n, w))
    for (fmt, conc), xs in res.items():
        n = a.single_records if fmt == "single" else a.records
        ev = xs[0]["events"]
        wall, cpu = med([x["wall"] for x in xs]), med([x["cpu"] for x in xs])
        hwm, anon = max(x["hwm"] for x in xs), max(x["anon"] for x in xs)
        ratio = med([x["ratio"] for x in xs])
        name = fmt if fmt == "syslog-ng" else "%s c%d" % (fmt, conc)
        print("| %s | %d | %d | %.3f | %.0f | %.2f | %.2f | %.1f | %.1f | %.2f |"
              % (name, n, ev, wall, ev / wall, cpu, cpu / ev * 1e6, hwm / 1024,
                 anon / 1024, ratio))
        k = "syslog_ng" if fmt == "syslog-ng" else "%s_c%d" % (fmt, conc)
        line += ["%s_n=%d" % (k, n), "%s_events=%d" % (k, ev), "%s_s=%.4f" % (k, wall),
                 "%s_eps=%.0f" % (k, ev / wall), "%s_cpu_us_per_event=%.2f" % (k, cpu / ev * 1e6),
                 "%s_hwm_kib=%d" % (k, hwm), "%s_anon_kib=%d" % (k, anon),
                 "%s_ratio=%.3f" % (k, ratio)]
    sng = res.get(("syslog-ng", 0))
    for c, xs in res.items():
        if not sng or c[0] != "batch":
            continue
        # rounds alternate, so each round's pair saw the same machine
        x = med([s_["wall"] / b_["wall"] for s_, b_ in zip(sng, xs)])
        print("\n%s c%d / syslog-ng, events/s, median of the rounds' ratios: %.2f (target >= 3)"
              % (c[0], c[1], x))
        line.append("%s_c%d_x_syslog_ng=%.2f" % (c[0], c[1], x))
    print("\n" + " ".join(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
