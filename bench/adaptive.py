#!/usr/bin/env python3
"""Delivery against a model of nginx in front of PHP-FPM: how close `pmtatail run`
gets to what the backend can take, and what it costs the backend on the way.

A benchmark, not a test: it reports and asserts nothing. Exit 1 when it cannot
measure (the model or the daemon fails to start or dies), 2 when a binary is
missing. Standard library only; it builds nothing (meson builds bench/fpm_model).

    python3 bench/adaptive.py [--build DIR | --binary PMTATAIL --model FPM_MODEL]
                              [--cases a,b,c,d,e] [--records 20000]
                              [--extra-conf 'concurrency = 10' ...]
                              [--time-limit S] [--json PATH|-] [--keep]
    python3 bench/adaptive.py --self-check [--model FPM_MODEL]

Each case starts bench/fpm_model and `pmtatail -c CONF run` in a fresh
directory whose pmta/bounces.csv already holds the backlog: --records `b`
records (tests/py/pmta_sim.py's, every one forwarded). The configuration is
the default one for the webhook: [output] holds only
`url = http://127.0.0.1:PORT/system/bounce_webhook?type=pmta` (one event per
request), plus any --extra-conf lines (e.g. `concurrency = 10`, `max_rate = 95`,
to compare by hand in the same run). A case ends when the model has accepted
every record's eventId, or at its time limit (default 120 s + 3x the time the
backlog takes at capacity + the outage).

Cases (capacity = W / T, or the 429 limit):
  a  overload: 5 workers x 20 ms, a backlog of 5 (beyond: 502 at once). 250/s.
  b  limit:    limit_req of 100 requests/s, 429 with Retry-After: 1; 50 x 5 ms.
  c  large:    50 workers x 10 ms, a backlog of 50. 5000/s.
  d  outage:   5 x 20 ms, backlog 5, every request answered 503 from 2 s to 22 s
               after the first one. 250/s.
  e  faults:   50 x 5 ms, backlog 50, 10 % 503, 10 % 429 (no Retry-After: a
               Retry-After asks for a pause of every request, not a fault),
               5 % closed without an answer. 10000/s.

Figures per case: the time from the first request to the last acceptance,
accepted events/s and that over the capacity (for d also without the outage),
the share of requests answered 5xx and 429, hang-ups, requests per event,
accepted duplicates (must be 0), lost records (never accepted: must be 0) and
dead letters, the daemon's peak VmHWM, its log lines per second, the model's
queue wait and most requests in service. For b, requests begun inside a
Retry-After floor knowing of it (see retry_after_violations); for d, the requests during the
outage and how they came (steps of requests separated by >= 100 ms of
silence), and the time from the outage's end to the first acceptance.

--self-check checks the model itself with closed loops of Python clients:
W clients against W workers get about W / T requests a second and no 502;
3 W clients get 502s; the 429 limit admits R a second; faults come at their
rates.
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, os.path.join(ROOT, "tests", "py"))
import pmta_sim  # noqa: E402

WEBHOOK = "/system/bounce_webhook?type=pmta"

CASES = {
    "a": ("overload", "5 workers x 20 ms, backlog 5",
          ["--workers", "5", "--service-ms", "20", "--backlog", "5"]),
    "b": ("limit-429", "limit 100/s, Retry-After 1; 50 x 5 ms",
          ["--workers", "50", "--service-ms", "5", "--backlog", "50", "--limit-rps", "100",
           "--retry-after", "1"]),
    "c": ("large", "50 workers x 10 ms, backlog 50",
          ["--workers", "50", "--service-ms", "10", "--backlog", "50"]),
    "d": ("outage", "5 x 20 ms, backlog 5, 503 from 2 s for 20 s",
          ["--workers", "5", "--service-ms", "20", "--backlog", "5", "--outage-start", "2",
           "--outage-len", "20"]),
    "e": ("faults", "50 x 5 ms, 10% 503, 10% 429, 5% hang-ups",
          ["--workers", "50", "--service-ms", "5", "--backlog", "50", "--fault-503", "10",
           "--fault-429", "10", "--fault-hangup", "5"]),
}


class Failure(Exception):
    pass


# ------------------------------------------------------------------ the model

class Model:
    """bench/fpm_model on a port of its own: its counters and its log."""

    def __init__(self, exe, args, stderr=None):
        self.proc = subprocess.Popen([exe] + list(args) + ["--port", "0", "--print-port"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=stderr)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise Failure("fpm_model did not start (%r)" % line)
        self.port = int(line)
        self.conn = None

    def url(self, path=WEBHOOK):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def _get(self, method, path):
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                self.conn.request(method, path)
                r = self.conn.getresponse()
                body = r.read()
                if r.status != 200:
                    raise Failure("fpm_model answered %d to %s %s" % (r.status, method, path))
                return json.loads(body)
            except (OSError, http.client.HTTPException):
                self.conn = None
                if attempt == 2:
                    raise

    def stats(self):
        return self._get("GET", "/__stats")

    def reset(self):
        return self._get("POST", "/__reset")

    def log(self):
        """Every logged request: [(t_begin_ms, t_answer_ms, status, connection)],
        status 0 for a hang-up, times from the first request's first byte."""
        out, frm = [], 0
        while True:
            page = self._get("GET", "/__log?from=%d&max=100000" % frm)
            out += [tuple(e) for e in page["entries"]]
            frm += len(page["entries"])
            if not page["entries"] or frm >= page["total"]:
                return out

    def stop(self):
        if self.conn is not None:
            self.conn.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


def retry_after_violations(log, retry_after_s, slack_ms=100.0, early_ms=5.0, reuse_ms=1.0):
    """Requests begun inside a Retry-After floor, knowing of it:
    [(t_begin_ms, floor_begin_ms, connection)].

    A floor begins at the answer of a 429 to a request begun when there was
    no floor, or after it ended, or knowing of it (a 429 to a request that
    was in flight when the floor began neither counts nor moves it), and lasts
    retry_after_s (less early_ms, for timer rounding). Nothing cuts it short,
    a success neither. A request begun inside a floor knew of it when it came
    on a connection that had a 429 answered since the floor began (an HTTP/1.1
    client reads an answer before it sends the next request on that
    connection; within reuse_ms of that 429, a transfer the client had queued
    before it read the answer), or slack_ms or more after the floor began (a
    request begun sooner on another connection may have been sent before the
    client read the 429)."""
    ra = retry_after_s * 1000.0 - early_ms
    # at equal times an answer comes before a request's beginning
    events = sorted([(e[1], 0, i) for i, e in enumerate(log) if e[2] == 429] +
                    [(e[0], 1, i) for i, e in enumerate(log)])
    floor = None   # (begin ms, connection)
    last429 = {}   # connection -> the time of its last 429
    seen = {}      # request -> the time of its connection's last 429 when it began

    # On a connection that had the 429, a request begun within reuse_ms of it
    # was queued before the client read it: libcurl hands a connection it
    # just read an answer on to a transfer already waiting, in the same pass.
    def knew(t, conn, seen429):
        return (t >= floor[0] and (t >= floor[0] + slack_ms
                                   or (seen429 >= floor[0] and t >= seen429 + reuse_ms)))

    bad = []

    def begin(i):
        t, conn = log[i][0], log[i][3]
        seen[i] = last429.get(conn, -1e18)
        if floor is not None and t < floor[0] + ra and knew(t, conn, seen[i]):
            bad.append((t, floor[0], conn))

    for t, is_begin, i in events:
        tb, conn = log[i][0], log[i][3]
        if is_begin:
            if i not in seen:
                begin(i)
            continue
        if i not in seen:  # answered within the log's resolution: it began first
            begin(i)
        last429[conn] = t
        if floor is None or tb >= floor[0] + ra or knew(tb, conn, seen[i]):
            floor = (t, conn)
    return bad


def outage_steps(log, start_ms, end_ms, gap_ms=100.0):
    """Requests begun in [start, end): their number, and the steps they came
    in (runs separated by >= gap_ms of silence): [(t_first_ms, requests)]."""
    ts = sorted(e[0] for e in log if start_ms <= e[0] < end_ms)
    steps = []
    for t in ts:
        if steps and t - steps[-1][2] < gap_ms:
            steps[-1][1] += 1
            steps[-1][2] = t
        else:
            steps.append([t, 1, t])
    return len(ts), [(s[0], s[1]) for s in steps]


# ------------------------------------------------------------------ one case

def write_backlog(path, n):
    """n `b` records (pmta_sim's record n, as a `b` row), header first."""
    with open(path, "wb") as fh:
        fh.write(pmta_sim.HEADER)
        for i in range(1, n + 1):
            f = pmta_sim.record_fields(i)
            f["type"] = "b"
            fh.write(pmta_sim._encode(f))


def vm_kib(pid, key="VmHWM"):
    try:
        with open("/proc/%d/status" % pid) as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pid):
    """utime + stime of a running process, in seconds."""
    with open("/proc/%d/stat" % pid) as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def capacity(cfg):
    cap = cfg["capacity_rps"]
    return min(cap, cfg["limit_rps"]) if cfg["limit_rps"] else cap


def run_case(a, key, backlog):
    name, desc, margs = CASES[key]
    tmp = tempfile.mkdtemp(prefix="pmtadaptive-%s-" % key)
    model = daemon = None
    try:
        os.makedirs(os.path.join(tmp, "pmta"))
        state = os.path.join(tmp, "state")
        os.mkdir(state, 0o700)
        live = os.path.join(tmp, "pmta", "bounces.csv")
        try:
            os.link(backlog, live)
        except OSError:
            shutil.copyfile(backlog, live)
        model = Model(a.model, margs, stderr=open(os.path.join(tmp, "model.err"), "w"))
        cfg = model.stats()["config"]
        cap = capacity(cfg)
        conf = os.path.join(tmp, "pmtatail.conf")
        with open(conf, "w") as fh:
            fh.write("[source bounces]\npath = %s\nrecords = b, rb\n\n[output]\nurl = %s\n%s\n"
                     "[state]\ndir = %s\n"
                     % (live, model.url(), "".join(x + "\n" for x in a.extra_conf), state))
        limit = a.time_limit or (120 + 3 * a.records / cap + cfg["outage_len"])
        err = os.path.join(tmp, "pmtatail.err")
        t0 = time.monotonic()
        daemon = subprocess.Popen([a.binary, "-c", conf, "run"], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=open(err, "w"))
        hwm, st, finished = 0, None, False
        while True:
            st = model.stats()
            hwm = max(hwm, vm_kib(daemon.pid))
            if st["distinct"] >= a.records:
                finished = True
                break
            if daemon.poll() is not None:
                raise Failure("the daemon exited with %s" % daemon.returncode)
            if time.monotonic() - t0 > limit:
                break
            time.sleep(0.1)
        wall = time.monotonic() - t0
        hwm = max(hwm, vm_kib(daemon.pid))
        daemon.send_signal(signal.SIGTERM)
        try:
            rc = daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            rc = "timeout"
        daemon = None
        st = model.stats()
        log = model.log()
        model_cpu = cpu_s(model.proc.pid)
        if a.keep:
            with open(os.path.join(tmp, "model-log.json"), "w") as fh:
                json.dump(log, fh)
        dead = 0
        dl = os.path.join(state, "dead-letter.ndjson")
        if os.path.exists(dl):
            with open(dl, "rb") as fh:
                dead = sum(1 for line in fh if line.strip())
        with open(err, "rb") as fh:
            log_lines = sum(1 for _ in fh)
    finally:
        for p in (daemon,):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        if model is not None:
            model.stop()
        if a.keep:
            print("case %s kept in %s" % (key, tmp), file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    # from the first request to the last acceptance (to now when unfinished)
    dur = (st["t_last_accept_ms"] if finished else st["t_now_ms"]) / 1000.0
    reqs = max(1, st["requests"])
    s5xx = sum(v for k, v in st["by_status"].items() if k.startswith("5"))
    r = {
        "case": key, "name": name, "model": desc, "extra_conf": a.extra_conf,
        "records": a.records, "finished": finished, "exit_status": rc,
        "accepted": st["distinct"], "duration_s": dur, "wall_s": wall,
        "capacity_rps": cap, "events_per_s": st["distinct"] / dur if dur > 0 else 0.0,
        "requests": st["requests"], "by_status": st["by_status"], "hangups": st["hangups"],
        "frac_5xx": s5xx / reqs, "frac_429": st["by_status"].get("429", 0) / reqs,
        "requests_per_event": st["requests"] / max(1, st["distinct"]),
        "duplicates": st["duplicates"], "lost": a.records - st["distinct"],
        "dead_letters": dead, "vmhwm_kib": hwm, "log_lines": log_lines,
        "log_lines_per_s": log_lines / wall, "queue_wait_ms": st["queue_wait_ms"],
        "max_in_service": st["max_in_service"], "max_connections": st["max_connections"],
        "log_dropped": st["log_dropped"], "model_cpu_s": model_cpu,
    }
    r["x_capacity"] = r["events_per_s"] / cap
    # floors only where the 429s ask for them
    ra = cfg["retry_after"] if cfg["limit_rps"] else cfg.get("fault_retry_after", 0)
    if (cfg["limit_rps"] or cfg["fault_429"]) and ra > 0:
        bad = retry_after_violations(log, ra)
        r["retry_after_violations"] = len(bad)
        r["retry_after_violation_first"] = bad[:5]
    if cfg["outage_len"]:
        s_ms = cfg["outage_start"] * 1000.0
        e_ms = s_ms + cfg["outage_len"] * 1000.0
        n, steps = outage_steps(log, s_ms, e_ms)
        after = [e[1] for e in log if e[2] == 200 and e[0] >= e_ms]
        r["outage"] = {
            "requests": n, "steps": len(steps),
            "requests_per_step": [k for _, k in steps],
            "step_starts_s": [round(t / 1000.0, 2) for t, _ in steps],
            "recovery_s": (min(after) - e_ms) / 1000.0 if after else None,
        }
        inside = max(0.0, min(dur * 1000.0, e_ms) - s_ms) / 1000.0
        r["x_capacity_outside_outage"] = (st["distinct"] / (dur - inside) / cap
                                          if dur > inside else 0.0)
    return r


def print_report(results):
    print("\n| case | model | extra conf | accepted | s | events/s | x capacity | "
          "req/event | 5xx % | 429 % | hang-ups | dup | lost | dead | VmHWM MiB | "
          "log lines/s |")
    print("| " + " | ".join(["---"] * 16) + " |")
    for r in results:
        x = "%.2f" % r["x_capacity"]
        if "x_capacity_outside_outage" in r:
            x += " (%.2f outside the outage)" % r["x_capacity_outside_outage"]
        print("| %s %s | %s | %s | %d%s | %.1f | %.0f | %s | %.2f | %.1f | %.1f | %d | %d | %d "
              "| %d | %.1f | %.1f |"
              % (r["case"], r["name"], r["model"], "; ".join(r["extra_conf"]) or "default",
                 r["accepted"], "" if r["finished"] else " (time limit)", r["duration_s"],
                 r["events_per_s"], x, r["requests_per_event"], 100 * r["frac_5xx"],
                 100 * r["frac_429"], r["hangups"], r["duplicates"], r["lost"],
                 r["dead_letters"], r["vmhwm_kib"] / 1024.0, r["log_lines_per_s"]))
    print()
    for r in results:
        q = r["queue_wait_ms"]
        line = ("%s: %d requests %s; queue wait p50 %.1f p99 %.1f max %.1f ms; at most %d in "
                "service, %d connections; the model's CPU %.1f s"
                % (r["case"], r["requests"], json.dumps(r["by_status"], sort_keys=True),
                   q["p50"], q["p99"], q["max"], r["max_in_service"], r["max_connections"],
                   r["model_cpu_s"]))
        if "retry_after_violations" in r:
            line += "; requests begun inside a Retry-After floor: %d" % r["retry_after_violations"]
        if "outage" in r:
            o = r["outage"]
            per = o["requests_per_step"]
            line += ("; outage: %d requests in %d steps (per step: median %s, max %s; first "
                     "steps at %s s), first acceptance %.2f s after it"
                     % (o["requests"], o["steps"], statistics.median(per) if per else 0,
                        max(per) if per else 0, o["step_starts_s"][:8],
                        o["recovery_s"] if o["recovery_s"] is not None else float("nan")))
        if r["exit_status"] != 0:
            line += "; the daemon's exit status on SIGTERM: %s" % r["exit_status"]
        print(line)


# ------------------------------------------------------------------ self-check

def closed_loop(port, clients, seconds, tag):
    """clients threads, each one request at a time on its own kept-alive
    connection (a new one after a hang-up), for `seconds`: {status: count}
    (0: hang-up) and the requests answered."""
    counts = {}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def one(k):
        mine = {}
        s = None
        i = 0
        while time.monotonic() < stop:
            if s is None:
                s = socket.create_connection(("127.0.0.1", port))
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                buf = b""
            i += 1
            body = json.dumps({"eventId": "%08x%08x%016x" % (tag, k, i)}).encode()
            s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (WEBHOOK.encode(), len(body), body))
            status = None
            while True:
                end = buf.find(b"\r\n\r\n")
                if end >= 0:
                    head = buf[:end].decode("latin-1").split("\r\n")
                    clen = int([h.split(":", 1)[1] for h in head
                                if h.lower().startswith("content-length:")][0])
                    if len(buf) >= end + 4 + clen:
                        status = int(head[0].split()[1])
                        buf = buf[end + 4 + clen:]
                        break
                d = s.recv(65536)
                if not d:
                    break
                buf += d
            if status is None:
                s.close()
                s = None
                status = 0
            mine[status] = mine.get(status, 0) + 1
        if s is not None:
            s.close()
        with lock:
            for st, n in mine.items():
                counts[st] = counts.get(st, 0) + n

    ts = [threading.Thread(target=one, args=(k,)) for k in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return counts


def self_check(a):
    ok = True

    def say(cond, text):
        nonlocal ok
        ok = ok and cond
        print(("ok   " if cond else "FAIL ") + text, flush=True)

    secs = 4.0
    for w, t, b, clients, tag in ((5, 20, 5, 5, 1), (5, 20, 5, 15, 2), (50, 10, 50, 50, 3)):
        m = Model(a.model, ["--workers", str(w), "--service-ms", str(t), "--backlog", str(b)])
        try:
            got = closed_loop(m.port, clients, secs, tag)
            st = m.stats()
        finally:
            m.stop()
        cap = w * 1000.0 / t
        rate = got.get(200, 0) / secs
        if clients <= w:
            say(0.85 * cap <= rate <= 1.01 * cap and not got.get(502),
                "%d x %d ms, %d clients: %.0f accepted/s of %.0f (%.2f), 502s %d, max in "
                "service %d, queue wait p99 %.1f ms"
                % (w, t, clients, rate, cap, rate / cap, got.get(502, 0), st["max_in_service"],
                   st["queue_wait_ms"]["p99"]))
        else:
            say(got.get(502, 0) > 0 and 0.85 * cap <= rate <= 1.01 * cap,
                "%d x %d ms, backlog %d, %d clients: %.0f accepted/s (%.2f), %d 502s (%.0f%% "
                "of %d), max waiting %d"
                % (w, t, b, clients, rate, rate / cap, got.get(502, 0),
                   100.0 * got.get(502, 0) / sum(got.values()), sum(got.values()),
                   st["max_waiting"]))
        say(st["distinct"] == got.get(200, 0) and st["duplicates"] == 0,
            "   the model counted %d distinct accepted ids, %d duplicates (clients saw %d 200s)"
            % (st["distinct"], st["duplicates"], got.get(200, 0)))
    m = Model(a.model, ["--workers", "50", "--service-ms", "5", "--backlog", "50",
                        "--limit-rps", "100", "--retry-after", "1"])
    try:
        got = closed_loop(m.port, 20, secs, 4)
        st = m.stats()
        log = m.log()
    finally:
        m.stop()
    # admissions in any one-second window never above the limit
    adm = sorted(e[0] for e in log if e[2] != 429)
    worst = max((sum(1 for x in adm[i:i + 200] if x < t0 + 1000.0) for i, t0 in enumerate(adm)),
                default=0)
    say(abs(st["admitted"] / secs - 100) <= 100 * 0.1 + 100 / secs and worst <= 100,
        "limit 100/s, 20 clients: %d admitted in %.0f s (%.0f/s), at most %d in any second, "
        "%d 429s" % (st["admitted"], secs, st["admitted"] / secs, worst, got.get(429, 0)))
    m = Model(a.model, ["--workers", "50", "--service-ms", "5", "--backlog", "50",
                        "--fault-503", "10", "--fault-429", "10", "--fault-hangup", "5",
                        "--seed", "7"])
    try:
        got = closed_loop(m.port, 20, secs, 5)
        st = m.stats()
    finally:
        m.stop()
    n = sum(got.values())
    fr = {k: 100.0 * got.get(k, 0) / n for k in (503, 429, 0, 200)}
    # binomial: 4 standard deviations of the share
    sd = lambda p: 400.0 * (p / 100 * (1 - p / 100) / n) ** 0.5  # noqa: E731
    say(all(abs(fr[k] - p) <= sd(p) for k, p in ((503, 10), (429, 10), (0, 5), (200, 75))),
        "faults 10/10/5 %%, %d requests: 503 %.1f %%, 429 %.1f %%, hang-ups %.1f %%, 200 %.1f %%"
        " (model: %d/%d/%d)" % (n, fr[503], fr[429], fr[0], fr[200], st["fault_503"],
                                st["fault_429"], st["hangups"]))
    return 0 if ok else 1


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--binary", help="pmtatail (default BUILD/src/pmtatail)")
    ap.add_argument("--model", help="fpm_model (default BUILD/bench/fpm_model)")
    ap.add_argument("--cases", default="a,b,c,d,e")
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--extra-conf", action="append", default=[],
                    help="a line for [output], e.g. 'concurrency = 10' (repeatable)")
    ap.add_argument("--time-limit", type=float, default=0, help="seconds per case")
    ap.add_argument("--json", help="write the results as JSON to this file (- for stdout)")
    ap.add_argument("--keep", action="store_true", help="keep each case's directory (with the model's "
                    "log, model-log.json)")
    ap.add_argument("--self-check", action="store_true", help="check the model itself")
    a = ap.parse_args()
    a.binary = a.binary or os.path.join(a.build, "src", "pmtatail")
    a.model = a.model or os.path.join(a.build, "bench", "fpm_model")
    for exe in ([a.model] if a.self_check else [a.binary, a.model]):
        if not os.access(exe, os.X_OK):
            print("missing %s: build first (meson setup build && ninja -C build)" % exe,
                  file=sys.stderr)
            return 2
    try:
        if a.self_check:
            return self_check(a)
        keys = [k.strip() for k in a.cases.split(",") if k.strip()]
        unknown = [k for k in keys if k not in CASES]
        if unknown:
            print("unknown case(s) %s; known: %s" % (unknown, ", ".join(CASES)),
                  file=sys.stderr)
            return 2
        tmp = tempfile.mkdtemp(prefix="pmtadaptive-")
        try:
            backlog = os.path.join(tmp, "bounces.csv")
            write_backlog(backlog, a.records)
            results = []
            for k in keys:
                r = run_case(a, k, backlog)
                results.append(r)
                print("case %s %s: %d of %d accepted in %.1f s, %.2f x capacity, %.2f requests "
                      "per event, %d duplicates" % (k, r["name"], r["accepted"], a.records,
                                                     r["duration_s"], r["x_capacity"],
                                                     r["requests_per_event"], r["duplicates"]),
                      flush=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except Failure as e:
        print("cannot measure: %s" % e, file=sys.stderr)
        return 1
    print_report(results)
    if a.json:
        text = json.dumps(results, indent=1, default=str)
        if a.json == "-":
            print(text)
        else:
            with open(a.json, "w") as fh:
                fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
