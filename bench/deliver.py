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


def build_tool(name):
    """bench/NAME.c built with `cc -O2` into bench/out/NAME (csink, reqfloor)."""
    os.makedirs(os.path.join(BENCH, "out"), exist_ok=True)
    out = os.path.join(BENCH, "out", name)
    src = os.path.join(BENCH, name + ".c")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        if subprocess.run(["cc", "-O2", "-o", out, src]).returncode != 0:
            raise Failure("cannot build " + name)
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


def run_child(argv):
    """Run argv to its end: (wall s, CPU s of the child alone, exit code)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return time.monotonic() - t0, ru.ru_utime + ru.ru_stime, p.returncode


def csvwalk(a, path):
    """The parse-only baseline: (wall s, CPU s)."""
    wall, cpu, rc = run_child([os.path.join(a.build, "bench", "csvwalk"), path])
    if rc != 0:
        raise Failure("csvwalk failed")
    return wall, cpu


def deliver_floor(a, reqfloor, csink, n, conc, body_bytes):
    """reqfloor: n ready-made requests of body_bytes, conc connections, one
    at a time on each, to csink: what one event per request costs when
    nothing is read, parsed or encoded."""
    tmp = tempfile.mkdtemp(prefix="pmtadeliver-")
    sink = None
    try:
        sink, count, port = start_sink(csink, tmp, 13)
        # its own line of figures is not read: wall and CPU are measured
        # here, as for every case
        wall, cpu, rc = run_child([reqfloor, "--port", str(port), "--requests", str(n),
                                   "--conns", str(conc), "--body-bytes", str(body_bytes)])
        if rc != 0:
            raise Failure("reqfloor exited with %s" % rc)
        got = sink_counts(sink, count)
        sink = None
        return dict(got, wall=wall, cpu=cpu, hwm=0, anon=0)
    finally:
        reap((sink,), tmp)


def sink_counts(sink, count):
    """Stop csink; what it counted: events, (good) requests, body bytes."""
    sink.send_signal(signal.SIGTERM)
    sink.wait(timeout=10)
    with open(count) as fh:
        v = [int(x) for x in fh.read().split()[:4]]
    return {"events": v[0], "requests": v[1], "body_bytes": v[3]}


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
        got = sink_counts(sink, count)
        sink = None
        return dict(got, wall=wall, cpu=cpu, hwm=hwm, anon=anon)
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
        events = sink_counts(sink, count)["events"]
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
    ap.add_argument("--cases", default="batch:4,single:16,floor:16,replay:4,syslog-ng",
                    help="FORMAT:CONCURRENCY,... (auto: neither key given); replay:C: "
                    "`replay FILE`, format batch, concurrency C; floor:C: reqfloor, the "
                    "single case's requests ready-made on C connections; syslog-ng: the same "
                    "file through syslog-ng, when it is installed")
    ap.add_argument("--extra", default="", help="more [output] lines, \\n between")
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()
    for b in ("src/pmtatail", "bench/csvwalk"):
        if not os.path.exists(os.path.join(a.build, b)):
            print("missing %s/%s: build first" % (a.build, b), file=sys.stderr)
            return 2
    try:
        csink = build_tool("csink")
        cases = [(c.split(":")[0], int(c.split(":")[1]) if ":" in c else 0)
                 for c in a.cases.split(",")]
        if ("syslog-ng", 0) in cases and not os.path.exists(SYSLOG_NG):
            print("syslog-ng is not installed (apt-get install syslog-ng-core "
                  "syslog-ng-mod-http): its case is skipped", file=sys.stderr)
            cases.remove(("syslog-ng", 0))
        reqfloor = build_tool("reqfloor") if any(c[0] == "floor" for c in cases) else None
        def records_of(fmt):
            return a.single_records if fmt in ("single", "floor") else a.records
        expected = {}
        files = {}
        for fmt, _ in cases:
            files[records_of(fmt)] = data_file(records_of(fmt), a.seed, a.diag)
        res = {c: [] for c in cases}
        walk = {n: [] for n in files}
        for r in range(a.rounds):
            for n, path in files.items():
                walk[n].append(csvwalk(a, path))
            last_single = None
            for c in cases:
                n = records_of(c[0])
                if c[0] == "syslog-ng":
                    if n not in expected:
                        expected[n] = bounce_rows(files[n])
                    x = deliver_syslogng(a, csink, files[n], expected[n])
                elif c[0] == "replay":
                    x = deliver_replay(a, csink, files[n], c[1])
                elif c[0] == "floor":
                    # the single case's own requests and body size when it ran
                    # this round, else the mixed file's (90,148 of 1,078 bytes
                    # on average per 100k records)
                    if last_single:
                        reqs = last_single["requests"]
                        body = max(16, last_single["body_bytes"] // max(1, reqs))
                    else:
                        reqs, body = n * 90148 // 100000, 1078
                    x = deliver_floor(a, reqfloor, csink, reqs, c[1], body)
                    x["single"] = last_single
                else:
                    x = deliver(a, csink, files[n], *c)
                    if c[0] == "single":
                        last_single = x
                wwall, wcpu = walk[n][-1]
                x["ratio"] = wwall / x["wall"]
                # CPU per event over the parse-only CPU per record, this round
                x["cpu_x_walk"] = (x["cpu"] / max(1, x["events"])) / (wcpu / n)
                x["walk_us"] = wcpu / n * 1e6
                res[c].append(x)
                print("round %d %s:%d wall=%.3f cpu=%.3f events=%d hwm=%d anon=%d ratio=%.3f "
                      "cpu_x_csvwalk=%.2f"
                      % (r + 1, c[0], c[1], x["wall"], x["cpu"], x["events"], x["hwm"],
                         x["anon"], x["ratio"], x["cpu_x_walk"]), flush=True)
    except Failure as e:
        print("cannot measure: %s" % e, file=sys.stderr)
        return 1
    med = statistics.median
    print("\n| case | N | events | wall s | events/s | CPU s | CPU us/event | VmHWM MiB "
          "| RssAnon MiB | x csvwalk | CPU x csvwalk |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    line = ["BENCH-DELIVER", "rounds=%d" % a.rounds, "nproc=%d" % os.cpu_count(),
            "diag=%s" % a.diag]
    for n in files:
        w, wc = med([x[0] for x in walk[n]]), med([x[1] for x in walk[n]])
        print("| csvwalk | %d | | %.3f | %.0f records/s | %.2f | %.2f per record | | | 1.00 | 1.00 |"
              % (n, w, n / w, wc, wc / n * 1e6))
        line += ["csvwalk_n%d_s=%.4f" % (n, w), "csvwalk_n%d_cpu_us_per_record=%.3f" % (n, wc / n * 1e6)]
    for (fmt, conc), xs in res.items():
        n = records_of(fmt)
        ev = xs[0]["events"]
        wall, cpu = med([x["wall"] for x in xs]), med([x["cpu"] for x in xs])
        hwm, anon = max(x["hwm"] for x in xs), max(x["anon"] for x in xs)
        ratio = med([x["ratio"] for x in xs])
        cxw = med([x["cpu_x_walk"] for x in xs])
        name = fmt if fmt == "syslog-ng" else "%s c%d" % (fmt, conc)
        print("| %s | %d | %d | %.3f | %.0f | %.2f | %.2f | %.1f | %.1f | %.3f | %.2f |"
              % (name, n, ev, wall, ev / wall, cpu, cpu / ev * 1e6, hwm / 1024,
                 anon / 1024, ratio, cxw))
        k = "syslog_ng" if fmt == "syslog-ng" else "%s_c%d" % (fmt, conc)
        line += ["%s_n=%d" % (k, n), "%s_events=%d" % (k, ev), "%s_s=%.4f" % (k, wall),
                 "%s_eps=%.0f" % (k, ev / wall), "%s_cpu_us_per_event=%.2f" % (k, cpu / ev * 1e6),
                 "%s_hwm_kib=%d" % (k, hwm), "%s_anon_kib=%d" % (k, anon),
                 "%s_ratio=%.3f" % (k, ratio), "%s_cpu_x_csvwalk=%.2f" % (k, cxw)]
    for (fmt, conc), xs in res.items():
        pairs = [x for x in xs if fmt == "floor" and x["single"]]
        if not pairs:
            continue
        # each round's single case against the floor and csvwalk of that round
        eps = med([(s_["events"] / s_["wall"]) / (f["events"] / f["wall"])
                   for f in pairs for s_ in [f["single"]]])
        floors = med([(s_["cpu"] / s_["events"]) /
                      (f["cpu"] / f["events"] + f["walk_us"] / 1e6)
                      for f in pairs for s_ in [f["single"]]])
        print("\nsingle c%d against the floor (reqfloor c%d), median of the rounds' ratios: "
              "events/s %.2f of the floor's; CPU per event %.2f x (the floor's per request + "
              "csvwalk's per record)" % (conc, conc, eps, floors))
        line += ["single_x_floor_c%d_eps=%.3f" % (conc, eps),
                 "single_x_floors_c%d_cpu=%.3f" % (conc, floors)]
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
