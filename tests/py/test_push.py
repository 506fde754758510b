#!/usr/bin/python3
"""Scenario tests of the daemon's HTTP output against a fake Oempro backend.

    python3 tests/py/test_push.py PMTATAIL_BINARY

Each scenario gets its own temporary directory (pmta/bounces.csv, its archive
directory pmta/archive, state/, logs/), a fake backend on 127.0.0.1
(backend.py, in this process) and a configuration whose [output] url points
at it; it starts the real daemon (`PMTATAIL_BINARY -c CONF run`), drives
pmta_sim.Sim (appends in random chunk sizes, rotations) and scripts the
backend's answers (503, 429, 408, dropped and reset connections, hung
requests, 401, 413, 422, 200 with "Success": false, redirects, the backend
down). It then checks what the backend accepted (2xx and not "Success":
false):

  * every record the writer completed has an accepted event (rcpt uN);
  * no accepted event for a record never written; each accepted event holds
    record N's fields, its raw line as "message" and an "eventId", the same
    eventId every time record N is sent, different for different records;
  * no record accepted twice, except where a scenario allows it (kill -9,
    SIGTERM with a request pending), where the duplicates are reported;
  * every request is a POST with Content-Type: application/json, a body that
    decodes, a User-Agent pmtatail/..., a 32-hex Idempotency-Key;
  * the secret header values never appear in the daemon's stderr;
  * what the scenario is about (see each one's docstring).

Waits poll (every 20 ms) with timeouts instead of fixed sleeps; the whole run
takes about two minutes.

Environment:
  PMTATAIL_PUSH_ONLY     comma-separated scenario names to run (default all)
  PMTATAIL_PUSH_SEED     random seed (default: from the clock; printed)
  PMTATAIL_PUSH_TIMEOUT  seconds to wait for delivery, default 20
  PMTATAIL_PUSH_KEEP     keep the temporary directories (their paths are printed)

Standard library only. One line per check; exits 1 if any check failed.
"""

import collections
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import traceback
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pmta_sim import Sim, ranges, rcpt_number, record_bytes, record_fields  # noqa: E402
from backend import Backend  # noqa: E402
from harness import Daemon, check, finish, info, poll_until, run_scenarios, binary_arg

ONLY = [s for s in os.environ.get("PMTATAIL_PUSH_ONLY", "").split(",") if s]
SEED = int(os.environ.get("PMTATAIL_PUSH_SEED", str(int(time.time()) % 100000)))
TIMEOUT = float(os.environ.get("PMTATAIL_PUSH_TIMEOUT", "20"))
KEEP = bool(os.environ.get("PMTATAIL_PUSH_KEEP"))

HWM_MAX_KIB = 24 * 1024      # a ceiling that catches growth; the 16 MiB target is measured in bench/push.py (about 15.3 MiB, of which ~9.5 MiB shared libraries)
HWM_FLAT_KIB = 1024          # growth allowed while the backend is down and records pile up
DRAIN_MAX_S = 8.0            # SIGTERM with a request hanging: exit within this
KEY_RE = re.compile(r"^[0-9a-fA-F]{32}$")

BINARY = None


def vm_hwm(pid):
    """VmHWM of pid in KiB (None if it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def compare(n, ev):
    """Differences between an event and record n (empty when it matches)."""
    want = record_fields(n)
    diffs = []
    for col, val in want.items():
        key = "logType" if col == "type" else col
        if ev.get(key) != val:
            diffs.append("%s=%.80r want %.80r" % (key, ev.get(key), val))
    msg = record_bytes(n)[:-2].decode()
    if ev.get("message") != msg:
        diffs.append("message=%.120r want %.120r" % (ev.get("message"), msg))
    if not isinstance(ev.get("eventId"), str) or not ev.get("eventId"):
        diffs.append("eventId=%r" % (ev.get("eventId"),))
    return diffs


# -------------------------------------------------------------- one scenario


class Env(Daemon):
    """A temporary directory, a fake backend, a configuration, a simulated
    writer, and the daemon runs."""

    OUTPUT_DEFAULTS = collections.OrderedDict([
        ("format", "batch"), ("batch_max_records", "50"), ("linger_ms", "20"),
        ("timeout_s", "5"), ("retry_max_s", "2")])

    def __init__(self, name, output=None, headers=None, header_file=None, backend_up=True,
                 sim_args=None, path="/system/bounce_webhook?type=pmta", tls=False):
        super().__init__(BINARY, name, "pmtatail-push-%s-" % name, KEEP)
        self.cert = None
        if tls:
            self.cert, key = make_cert(self.tmp, "backend")
            output = dict(output or {}, ca_file=self.cert)
        self.path = path
        self.dead = os.path.join(self.state, "dead-letter.ndjson")
        self.makedirs(self.pmta, self.archive, self.logs)
        rng = random.Random(SEED + zlib.crc32(name.encode()))
        # Secrets: every scenario sends one; none may show in stderr.
        self.secret = "sig-%016x" % rng.getrandbits(64)
        self.secrets = [self.secret]
        if headers is None:
            headers = [("X-Octeth-Signature", self.secret)]
        self.backend = Backend(port=Backend.free_port(),
                               tls=(self.cert, key) if self.cert else None)
        if backend_up:
            self.backend.start()
        self.header_file = None
        if header_file is not None:
            self.header_file = os.path.join(self.tmp, "signature")
            self.write_header_file(header_file)
        self.output = collections.OrderedDict(self.OUTPUT_DEFAULTS)
        self.output.update(output or {})
        for k in [k for k, v in self.output.items() if v is None]:
            del self.output[k]  # None: the key left out (its default)
        with open(self.conf, "w") as fh:
            fh.write("[source bounces]\npath = %s\narchive_dir = %s\nrecords = b, rb\n\n"
                     % (self.live, self.archive))
            fh.write("[output]\nurl = %s\n" % self.backend.url(path))
            for k, v in self.output.items():
                fh.write("%s = %s\n" % (k, v))
            for hn, hv in headers:
                fh.write("header = %s: %s\n" % (hn, hv))
            if self.header_file:
                fh.write("header_file = %s\n" % self.header_file)
            fh.write("\n[state]\ndir = %s\n\n[log]\nlevel = debug\n" % self.state)
        args = dict(seed=SEED + zlib.crc32(name.encode()) % 1000, filtered_ratio=0.03,
                    pause_prob=0.02)
        args.update(sim_args or {})
        self.sim = Sim(self.live, self.archive, **args)
        # What the backend accepted, by record number.
        self.acc_pos = 0
        self.acc = collections.Counter()
        self.ids = collections.defaultdict(set)  # N -> eventIds accepted for it
        self.strays = []
        self.mismatch = []

    def write_header_file(self, lines):
        """(Re)write the header_file: a list of (name, value)."""
        with open(self.header_file, "w") as fh:
            fh.write("# the webhook's signature\n")
            for hn, hv in lines:
                fh.write("%s: %s\n" % (hn, hv))
                if hv not in self.secrets:
                    self.secrets.append(hv)

    # -- the daemon

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Signal the daemon and reap it: (exit status or 'timeout', seconds)."""
        if self.proc is None:
            return None, 0.0
        t0 = time.monotonic()
        rc = self.end_run(sig, timeout)
        return rc, time.monotonic() - t0

    def expect_stop(self, label, timeout=20):
        rc, t = self.stop(timeout=timeout)
        check("%s: SIGTERM, exit status 0 (%.2f s)" % (label, t), rc == 0,
              ["got %r" % (rc,)] + self.stderr_tail())
        return rc, t

    # -- what the backend accepted

    def poll(self):
        news = self.backend.accepted_from(self.acc_pos)
        self.acc_pos += len(news)
        for ev in news:
            n = rcpt_number(ev.get("rcpt"))
            if n is None:
                self.strays.append(ev)
                continue
            self.acc[n] += 1
            self.ids[n].add(ev.get("eventId"))
            if self.acc[n] == 1 and len(self.mismatch) < 100:
                d = compare(n, ev)
                if d:
                    self.mismatch.append("u%d: %s" % (n, "; ".join(d)))
        return self

    def missing(self, required=None):
        req = self.sim.required() if required is None else required
        self.poll()
        return [n for n in req if not self.acc.get(n)]

    def wait_delivered(self, timeout=None, required=None):
        """Poll the backend until every required record is accepted (or the
        daemon exits): (all delivered, seconds)."""
        req = self.sim.required() if required is None else required
        t = TIMEOUT + len(req) / 2000.0 if timeout is None else timeout
        todo = set(req)

        def done():
            self.poll()
            for n in [n for n in todo if self.acc.get(n)]:
                todo.discard(n)
            return not todo or (self.proc is not None and self.proc.poll() is not None)
        t0 = time.monotonic()
        poll_until(done, t)
        return not todo, time.monotonic() - t0

    def dead_letters(self):
        """The dead-letter file's lines, parsed (None for a line that is not
        JSON); [] when the file is missing."""
        try:
            with open(self.dead, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return []
        out = []
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line.decode("utf-8")))
            except ValueError:
                out.append(None)
        return out

    # -- the checks every scenario ends with

    def verify(self, label, exact=True, required=None, refused=()):
        """All written records accepted (but `refused` ones, never accepted),
        content, eventIds, duplicates, request headers, secrets."""
        self.poll()
        req = [n for n in (self.sim.required() if required is None else required)
               if n not in set(refused)]
        missing = [n for n in req if not self.acc.get(n)]
        where = ["  %s holds u%s" % (os.path.relpath(p, self.tmp), ranges(ns)[:200])
                 for p, ns in sorted(self.sim.where(missing).items())][:6]
        check("%s: all %d written records accepted by the backend" % (label, len(req)),
              not missing, ["missing %d: u%s" % (len(missing), ranges(missing)[:600])] + where +
              self.request_summary() + self.stderr_tail())
        never = sorted(n for n in self.acc if n not in self.sim.started)
        check("%s: no accepted event for a record not written" % label, not never,
              ["u%s" % ranges(never)[:600]])
        check("%s: no stray accepted events (filtered rows, headers)" % label,
              not self.strays, ["%d strays, first: %.300r" % (len(self.strays), self.strays[:2])])
        check("%s: accepted events carry record N's fields, message and an eventId" % label,
              not self.mismatch, self.mismatch[:5])
        unstable = sorted(n for n, s in self.ids.items() if len(s) > 1)
        check("%s: eventId stable per record" % label, not unstable,
              ["u%d: %s" % (n, sorted(self.ids[n])) for n in unstable[:5]])
        owner = {}
        shared = []
        for n, s in self.ids.items():
            for i in s:
                if i in owner and owner[i] != n:
                    shared.append((i, owner[i], n))
                owner[i] = n
        check("%s: eventId different for different records" % label, not shared,
              ["%s for u%d and u%d" % x for x in shared[:5]])
        if refused:
            acc = sorted(n for n in refused if self.acc.get(n))
            check("%s: refused records never accepted" % label, not acc,
                  ["accepted: u%s" % ranges(acc)])
        dupes = sum(c - 1 for c in self.acc.values() if c > 1)
        if exact:
            twice = sorted(n for n, c in self.acc.items() if c > 1)
            check("%s: no record accepted twice" % label, not twice,
                  ["%d records accepted twice or more: u%s" % (len(twice), ranges(twice)[:600])])
        else:
            info("%s: %d duplicate accepted events over %d records (%d kills)" % (
                label, dupes, len(req), self.kills))
        self.verify_requests(label)
        self.verify_secrets(label)
        return not missing

    def verify_requests(self, label):
        reqs = self.backend.requests()
        bad = collections.OrderedDict()

        def note(what, r):
            bad.setdefault(what, []).append(r)
        for r in reqs:
            if r.method != "POST":
                note("method %s" % r.method, r)
            ct = (r.header("Content-Type") or "").split(";")[0].strip().lower()
            if ct != "application/json":
                note("Content-Type %r" % r.header("Content-Type"), r)
            if not (r.header("User-Agent") or "").startswith("pmtatail/"):
                note("User-Agent %r" % r.header("User-Agent"), r)
            if not KEY_RE.match(r.header("Idempotency-Key") or ""):
                note("Idempotency-Key %r" % r.header("Idempotency-Key"), r)
            if r.decode_error:
                note("body: %s" % r.decode_error, r)
            if r.path != self.path:
                note("path %r" % r.path, r)
        check("%s: %d requests: POST, application/json, pmtatail/ agent, 32-hex "
              "Idempotency-Key, body decodes" % (label, len(reqs)), not bad,
              ["%s: %d requests, e.g. #%d" % (k, len(v), v[0].n) for k, v in bad.items()][:8])

    def verify_secrets(self, label):
        text = self.stderr() + "".join(self.cmd_out)
        leaked = [s for s in self.secrets if s in text]
        check("%s: header secrets never in stderr or command output" % label, not leaked,
              ["%r in: %s" % (s, ln.strip()[:200]) for s in leaked
               for ln in text.splitlines() if s in ln][:5])

    def request_summary(self, k=6):
        reqs = self.backend.requests()
        st = collections.Counter(str(r.status if r.status is not None else r.action)
                                 for r in reqs)
        return ["backend saw %d requests (%s); last: %s" % (
            len(reqs), ", ".join("%s x%d" % kv for kv in sorted(st.items())),
            ", ".join(repr(r) for r in reqs[-k:]))]


def attempts_by_key(reqs):
    """{Idempotency-Key: [requests in arrival order]}"""
    out = collections.OrderedDict()
    for r in sorted(reqs, key=lambda r: r.t0):
        out.setdefault(r.header("Idempotency-Key"), []).append(r)
    return out


def write_spread(e, total, steps=5, pause=0.03):
    """Write total records in a few bursts."""
    per = max(1, total // steps)
    done = 0
    while done < total:
        k = min(per, total - done)
        e.sim.write(k)
        done += k
        time.sleep(pause)


# -------------------------------------------------------------- scenarios

SCENARIOS = []


def scenario(**env):
    def deco(fn):
        fn.env = env
        SCENARIOS.append(fn)
        return fn
    return deco


@scenario(output={"batch_max_records": "50"})
def batch_format(e):
    """format = batch: bodies are JSON arrays of at most batch_max_records
    events; keep-alive connections are reused."""
    e.start()
    check("batch-format: daemon running", e.alive(), e.stderr_tail())
    write_spread(e, 600, steps=6)
    ok, t = e.wait_delivered()
    info("batch-format: delivered %.2f s after the last write" % t)
    e.expect_stop("batch-format")
    reqs = e.backend.requests()
    not_arr = [r for r in reqs if not isinstance(r.json, list)]
    check("batch-format: every body is a JSON array", not not_arr,
          ["#%d: %.120r" % (r.n, r.body) for r in not_arr[:3]])
    sizes = [len(r.events) for r in reqs]
    check("batch-format: batch sizes within batch_max_records = 50 (max %d)" % max(sizes or [0]),
          sizes and max(sizes) <= 50)
    check("batch-format: records are batched (some request holds more than one event)",
          any(s > 1 for s in sizes), ["sizes %s" % sizes[:30]])
    info("batch-format: %d requests, sizes %s..., %d connections" % (
        len(reqs), sizes[:12], e.backend.stats()["connections"]))
    check("batch-format: connections reused (%d connections for %d requests)" % (
        e.backend.stats()["connections"], len(reqs)),
        e.backend.stats()["connections"] < max(2, len(reqs)))
    e.verify("batch-format")


@scenario(output={"format": "single"})
def single_format(e):
    """format = single: one event object per request."""
    e.start()
    write_spread(e, 150, steps=3)
    e.wait_delivered()
    e.expect_stop("single-format")
    reqs = e.backend.requests()
    bad = [r for r in reqs if not isinstance(r.json, dict)]
    check("single-format: every body is one JSON object (%d requests)" % len(reqs), not bad,
          ["#%d: %.120r" % (r.n, r.body) for r in bad[:3]])
    st = e.backend.stats()
    check("single-format: kept-alive connections, at most one per request in flight (%d "
          "connections, %d requests)" % (st["connections"], len(reqs)),
          st["connections"] <= 64 and st["connections"] < len(reqs))
    # one event's key is its eventId: the same record, the same key
    off = [r for r in reqs if isinstance(r.json, dict)
           and r.header("Idempotency-Key") != r.json.get("eventId")]
    check("single-format: each request's Idempotency-Key is its event's eventId", not off,
          ["#%d: key %r, eventId %r" % (r.n, r.header("Idempotency-Key"), r.json.get("eventId"))
           for r in off[:3]])
    e.verify("single-format")


@scenario(output={"concurrency": "1", "retry_max_s": "1"})
def redirect(e):
    """A 301 to https (the panel moved) and a 302 with a relative Location,
    the URL carrying credentials (libcurl's transfers, which resolve a
    relative Location against it): each retried, never followed; the log
    says where the url now points, without the credentials; then everything
    delivered once."""
    pw = "pw-%s" % e.secret[4:]
    e.secrets.append(pw)
    with open(e.conf) as fh:
        conf = fh.read()
    with open(e.conf, "w") as fh:
        fh.write(conf.replace("url = http://", "url = http://pmtatail:%s@" % pw, 1))
    e.backend.script(
        {"status": 301, "headers": {"Location": "https://oempro.example.com/system/x?type=pmta"}},
        {"status": 302, "headers": {"Location": "/moved/bounce_webhook?type=pmta"}})
    e.start()
    e.sim.write(20)
    ok, t = e.wait_delivered()
    check("redirect: delivered once the url answers again (%.1f s)" % t, ok, e.request_summary())
    moved = e.said(r"the url redirects to https://oempro\.example\.com/system/x\?type=pmta ")
    check("redirect: the 301's target logged", moved, e.stderr_tail())
    rel = e.said(r"the url redirects to http://127\.0\.0\.1:%d/moved/bounce_webhook\?type=pmta "
                 % e.backend.port)
    check("redirect: the 302's relative target logged as an address, credentials left out",
          rel, e.stderr_tail())
    paths = [r.path for r in e.backend.requests()]
    check("redirect: never followed (every request went to the configured path)",
          all(p == e.path for p in paths), paths[:5])
    e.expect_stop("redirect")
    e.verify("redirect")


@scenario(output={"format": "single", "concurrency": "1", "retry_max_s": "1"})
def redirect_single(e):
    """The same with one event per request, with a hostile
    Location: a quote and a space in it are percent-encoded in the log."""
    e.backend.script({"status": 308, "headers": {"Location": 'https://x.example/a"b c'}})
    e.start()
    e.sim.write(5)
    ok, t = e.wait_delivered()
    check("redirect-single: delivered after the 308 (%.1f s)" % t, ok, e.request_summary())
    said = e.said(r"HTTP 308: the url redirects to https://x\.example/a%22b%20c ")
    check("redirect-single: the target logged, its quote and space encoded", said,
          e.stderr_tail())
    e.expect_stop("redirect-single")
    e.verify("redirect-single")


@scenario(output={"batch_max_records": "10", "concurrency": "4"})
def concurrency(e):
    """concurrency = 4 against a backend answering in 200 ms: several requests
    in flight at once (at most 4)."""
    e.backend.set_delay_ms(200)
    e.start()
    e.sim.write(300)
    ok, t = e.wait_delivered()
    mx = e.backend.stats()["max_in_flight"]
    n = len(e.backend.requests())
    info("concurrency: %d requests of 200 ms delivered in %.2f s; max %d in flight" % (n, t, mx))
    check("concurrency: several requests in flight (max %d)" % mx, mx > 1)
    check("concurrency: no more than concurrency = 4 in flight (max %d)" % mx, mx <= 4)
    e.expect_stop("concurrency")
    e.verify("concurrency")


@scenario(output={"concurrency": "1"}, headers=[("X-Extra-Header", "extra-value-1")],
          header_file=[("X-Octeth-Signature", "file-secret-7f3a9c")])
def headers(e):
    """Content-Type, User-Agent, Idempotency-Key (the same on every retry of
    a body: two 503 then 200), an extra `header`, a `header_file` header; the
    secret never in stderr."""
    e.secrets.append("extra-value-1")
    e.backend.script(503, 503)
    # written before the start, so that the first pass reads all 40 into one
    # batch: a reader that has caught up sends at once what it has
    e.sim.write(40)
    e.start()
    ok, t = e.wait_delivered()
    e.expect_stop("headers")
    reqs = e.backend.requests()
    check("headers: X-Extra-Header from `header` reaches the backend",
          reqs and all(r.header("X-Extra-Header") == "extra-value-1" for r in reqs),
          ["%r" % (r.header("X-Extra-Header"),) for r in reqs[:3]])
    check("headers: X-Octeth-Signature from header_file reaches the backend",
          reqs and all(r.header("X-Octeth-Signature") == "file-secret-7f3a9c" for r in reqs),
          ["%r" % (r.header("X-Octeth-Signature"),) for r in reqs[:3]])
    if reqs:
        info("headers: User-Agent %r, Content-Type %r, Idempotency-Key %r" % (
            reqs[0].header("User-Agent"), reqs[0].header("Content-Type"),
            reqs[0].header("Idempotency-Key")))
    by_key = attempts_by_key(reqs)
    first = reqs[:3]
    keys = [r.header("Idempotency-Key") for r in first]
    check("headers: the 503, 503, 200 attempts carry one Idempotency-Key",
          len(first) == 3 and len(set(keys)) == 1 and
          [r.status for r in first] == [503, 503, 200],
          ["first requests: %s keys %s" % (first, keys)])
    check("headers: ... and byte-identical bodies",
          len(first) == 3 and len({r.raw for r in first}) == 1,
          ["body sizes %s" % [len(r.raw) for r in first]])
    differ = [k for k, rs in by_key.items() if len({r.raw for r in rs}) > 1]
    check("headers: one key, one body (no key reused for a different body)", not differ,
          ["key %s: %d different bodies" % (k, len({r.raw for r in by_key[k]}))
           for k in differ[:3]])
    bodies = collections.defaultdict(set)
    for r in reqs:
        bodies[r.raw].add(r.header("Idempotency-Key"))
    rekeyed = [ks for ks in bodies.values() if len(ks) > 1]
    check("headers: a body keeps its key across retries", not rekeyed,
          ["keys %s for one body" % sorted(ks) for ks in rekeyed[:3]])
    e.verify("headers")


@scenario(output={"gzip": "yes"})
def gzip_body(e):
    """gzip = yes: Content-Encoding: gzip, and the body gunzips to JSON."""
    e.start()
    write_spread(e, 300, steps=3)
    e.wait_delivered()
    e.expect_stop("gzip")
    reqs = e.backend.requests()
    bad = [r for r in reqs if (r.header("Content-Encoding") or "").lower() != "gzip"
           or not r.raw.startswith(b"\x1f\x8b")]
    check("gzip: every request has Content-Encoding: gzip and a gzip body (%d requests)"
          % len(reqs), reqs and not bad,
          ["#%d: Content-Encoding %r, body starts %r" % (
              r.n, r.header("Content-Encoding"), r.raw[:4]) for r in bad[:3]])
    ok = all(r.decode_error is None and r.json is not None for r in reqs)
    check("gzip: every body decodes", ok, ["#%d: %s" % (r.n, r.decode_error)
                                           for r in reqs if r.decode_error][:3])
    if reqs:
        raw = sum(len(r.raw) for r in reqs)
        plain = sum(len(r.body) for r in reqs)
        info("gzip: %d bytes on the wire for %d bytes of JSON (%.1fx)" % (
            raw, plain, plain / max(raw, 1)))
    e.verify("gzip")


@scenario(output={"concurrency": "1", "retry_max_s": "8", "linger_ms": "50"})
def backoff(e):
    """503 three times then 200: delivered once, with growing gaps between the
    attempts (about 0.5, 1, 2 s); then a 503 with Retry-After: 2: the next
    attempt comes no earlier than ~2 s."""
    e.backend.script(503, 503, 503)
    # written before the start, so that the first pass reads all 20 into one
    # body: with two, the backoff probes with the one tried least and the
    # 503s are shared between them
    e.sim.write(20)
    e.start()
    ok, t = e.wait_delivered()
    reqs = e.backend.requests()
    by_key = attempts_by_key(reqs)
    k503 = [k for k, rs in by_key.items() if any(r.status == 503 for r in rs)]
    check("backoff: the three 503 went to one body (concurrency 1)", len(k503) == 1,
          ["keys with a 503: %d; requests %s" % (len(k503), reqs[:8])])
    if k503:
        rs = by_key[k503[0]]
        times = [r.t0 for r in rs]
        gaps = [b - a for a, b in zip(times, times[1:])]
        info("backoff: attempts %s, gaps %s s" % (
            [r.status for r in rs], ["%.2f" % g for g in gaps]))
        check("backoff: 503, 503, 503, 200 for that body",
              [r.status for r in rs] == [503, 503, 503, 200], [rs])
        if len(gaps) >= 3:
            g1, g2, g3 = gaps[:3]
            # step n waits 0.5 x 2^(n-1) s less up to half of it (jitter): the
            # ranges 0.25-0.5, 0.5-1 and 1-2 s touch, so the gaps' order is
            # left to chance at the edges; each gap in its own range is not.
            # Above it: room for a loaded machine's latency.
            check("backoff: first retry after ~0.5 s (%.2f s)" % g1, 0.2 <= g1 <= 1.5)
            check("backoff: gaps grow with the steps (%.2f s in 0.25-0.5, %.2f in 0.5-1, %.2f "
                  "in 1-2, each + up to 0.5 s)" % (g1, g2, g3),
                  0.24 <= g1 <= 1.0 and 0.49 <= g2 <= 1.5 and 0.99 <= g3 <= 2.5)
    e.poll()
    check("backoff: each record accepted once", all(c == 1 for c in e.acc.values()),
          ["twice: u%s" % ranges([n for n, c in e.acc.items() if c > 1])])

    # Retry-After: 2
    since = len(e.backend.requests()) + 1
    e.backend.script({"status": 503, "headers": {"Retry-After": "2"}})
    e.sim.write(10)
    ok, t = e.wait_delivered()
    reqs = e.backend.requests(since)
    r503 = [r for r in reqs if r.status == 503]
    if check("backoff: the Retry-After 503 was answered", bool(r503), e.request_summary()):
        key = r503[0].header("Idempotency-Key")
        after = [r for r in reqs if r.header("Idempotency-Key") == key and r.t0 > r503[0].t0]
        gap = (after[0].t0 - r503[0].t1) if after else None
        info("backoff: attempt after the Retry-After: 2 answer: %s" % (
            "%.2f s later" % gap if gap is not None else "none"))
        check("backoff: Retry-After: 2 honoured (next attempt %s s after the 503)" % (
            "%.2f" % gap if gap is not None else "never"),
            gap is not None and gap >= 1.9, e.request_summary())
        if gap is not None and gap > 3.5:
            info("backoff: the attempt after Retry-After: 2 came late (%.2f s)" % gap)
    e.expect_stop("backoff")
    e.verify("backoff")


@scenario(output={"concurrency": "1", "retry_max_s": "1", "timeout_s": "2"})
def transient(e):
    """429, 408, a dropped connection, a reset connection, a request hanging
    past timeout_s = 2: every one retried, everything delivered once."""
    e.backend.script(429, 408, {"action": "drop"}, {"action": "reset"}, {"action": "hang"})
    e.start()
    e.sim.write(30)
    ok, t = e.wait_delivered(timeout=TIMEOUT + 10)
    reqs = e.backend.requests()
    by_key = attempts_by_key(reqs)
    # each failure is followed by the same body again (the same Idempotency-Key;
    # the records may have been read as more than one batch), but the hang: an
    # array that outlasts timeout_s is split, its halves sent
    hung = [r for r in reqs[:5] if r.action == "hang"]
    for r in reqs[:5]:
        if r.action == "hang":
            continue
        what = r.status if r.status is not None else r.action
        nxt = [x for x in reqs if x.t0 > r.t0
               and x.header("Idempotency-Key") == r.header("Idempotency-Key")]
        check("transient: %s retried with the same body" % what,
              bool(nxt) and nxt[0].raw == r.raw, [repr(r)] + e.request_summary())
    if hung and len(hung[0].events) > 1:
        h = hung[0]
        ids = {ev.get("eventId") for ev in h.events}
        later = [x for x in reqs if x.t0 > h.t0 and x.accepted
                 and ids & {ev.get("eventId") for ev in x.events}]
        got = {ev.get("eventId") for x in later for ev in x.events}
        check("transient: the array that outlasted timeout_s split, every event of it "
              "accepted in smaller bodies", ids <= got and
              all(len(x.events) < len(h.events) for x in later), e.request_summary())
    hung = [r for r in reqs if r.action == "hang"]
    if check("transient: the hung request was made", bool(hung), e.request_summary()):
        h = hung[0]
        dur = (h.t1 - h.t0) if h.t1 else None
        check("transient: the hung request given up after ~timeout_s = 2 (%s s)" % (
            "%.2f" % dur if dur is not None else "still open"),
            dur is not None and 1.5 <= dur <= 4.5 and h.client_gone)
    e.expect_stop("transient")
    e.verify("transient")


@scenario(output={"batch_max_records": "500", "retry_max_s": "2"}, backend_up=False)
def backend_down(e):
    """The backend down (connection refused) while PowerMTA writes 20,000
    records and rotates three times: the daemon stops reading, so memory stays
    flat (VmHWM after the first 5,000 records = VmHWM after 20,000); the
    backend comes up and everything arrives."""
    e.start()
    check("backend-down: daemon runs with the backend down", e.alive(), e.stderr_tail())
    pid = e.proc.pid
    hwm0 = vm_hwm(pid)
    e.sim.write(300)
    # Let it read, try, fail and start backing off.
    poll_until(lambda: not e.alive() or e.said(r"refused|connect|retry|fail"), 3)
    t0 = time.monotonic()
    e.sim.write(5000)
    e.sim.rotate()
    # it fills what it may hold in flight (its window, a few MB of events):
    # wait until the peak stops growing, as a loaded machine may take longer
    # than a fixed pause to read that far
    poll_until(lambda: False, 0.7)
    last = [vm_hwm(pid), 0]

    def plateau():
        h = vm_hwm(pid)
        last[1] = last[1] + 1 if h == last[0] else 0
        last[0] = h
        return last[1] >= 4
    poll_until(plateau, 10, 0.25)
    hwm1 = vm_hwm(pid)
    for i in range(3):
        e.sim.write(5000)
        if i < 2:
            e.sim.rotate()
        time.sleep(0.2)
    poll_until(lambda: not e.alive(), max(0.5, 4.0 - (time.monotonic() - t0)))
    hwm2 = vm_hwm(pid)
    check("backend-down: daemon still running after %.1f s of outage" % (
        time.monotonic() - t0), e.alive(), e.stderr_tail())
    info("backend-down: VmHWM %s KiB at start, %s after 5,300 records, %s after 20,300 "
         "(backend down all along)" % (hwm0, hwm1, hwm2))
    check("backend-down: memory flat while down (VmHWM %s KiB after 5,300 records, %s after "
          "20,300; growth max %d KiB)" % (hwm1, hwm2, HWM_FLAT_KIB),
          hwm1 is not None and hwm2 is not None and hwm2 - hwm1 <= HWM_FLAT_KIB)
    lines = e.said(r"refused|connect")
    info("backend-down: %d stderr lines about the connection, e.g. %s" % (
        len(lines), lines[:1]))
    e.backend.start()
    t_up = time.monotonic()
    ok, t = e.wait_delivered(timeout=TIMEOUT + 20)
    info("backend-down: %d records delivered %.2f s after the backend came up "
         "(%d requests)" % (len(e.sim.required()), time.monotonic() - t_up,
                            len(e.backend.requests())))
    hwm3 = vm_hwm(pid)
    info("backend-down: VmHWM after catching up %s KiB" % hwm3)
    if os.environ.get("PMTATAIL_SANITIZED"):
        # ASan's shadow memory dwarfs the program's own: checked in the
        # normal build only
        info("backend-down: sanitizer build, peak RSS not checked")
    else:
        check("backend-down: peak RSS below %d KiB (VmHWM %s)" % (HWM_MAX_KIB, hwm3),
              hwm3 is not None and hwm3 < HWM_MAX_KIB)
    e.expect_stop("backend-down")
    e.verify("backend-down")


@scenario(output={"retry_max_s": "1"}, headers=[],
          header_file=[("X-Octeth-Signature", "wrong-secret-0b5e")])
def credentials(e):
    """401 (wrong X-Octeth-Signature from header_file): retried, a log line
    says "credentials", nothing dead-lettered; restart with the right
    header_file: everything delivered."""
    right = "right-secret-%08x" % random.Random(SEED).getrandbits(32)
    e.secrets.append(right)
    e.backend.require_header("X-Octeth-Signature", right)
    e.start()
    e.sim.write(100)
    got = e.backend.wait(lambda b: sum(1 for r in b.requests() if r.status == 401) >= 3, 10)
    n401 = sum(1 for r in e.backend.requests() if r.status == 401)
    check("credentials: 401 retried (%d attempts)" % n401, bool(got), e.request_summary())
    said = poll_until(lambda: e.said(r"credential"), 10)
    check("credentials: a log line says credentials", bool(said), e.stderr_tail())
    if said:
        info("credentials: " + said[0].strip()[:200])
    e.poll()
    check("credentials: nothing accepted with the wrong signature", not e.acc)
    dl = e.dead_letters()
    check("credentials: nothing dead-lettered", not dl, ["%d lines in dead-letter.ndjson"
                                                        % len(dl)])
    check("credentials: daemon still running", e.alive(), e.stderr_tail())
    e.expect_stop("credentials (wrong signature)")
    e.write_header_file([("X-Octeth-Signature", right)])
    e.sim.write(50)
    e.start()
    ok, t = e.wait_delivered()
    e.expect_stop("credentials (right signature)")
    check("credentials: still nothing dead-lettered", not e.dead_letters())
    e.verify("credentials")


@scenario(output={"batch_max_records": "200", "linger_ms": "600000"})
def nagle_flush(e):
    """linger_ms is only the upper bound: once the reader has caught up and
    nothing is in flight, the open batch goes at once (a trickle is not held
    for ten minutes), while a flood, which keeps requests in flight against a
    slow backend, still goes in full batches."""
    e.start()
    e.sim.write(3)
    ok, t = e.wait_delivered(timeout=30)
    check("nagle-flush: a trickle is delivered without waiting out linger_ms = 600000 "
          "(%.2f s)" % t, ok, e.request_summary())
    e.backend.set_delay_ms(100)
    since = len(e.backend.requests()) + 1
    # a flood: large writes, so that a writer slowed down by a loaded machine
    # does not turn it into a trickle that the reader keeps catching up with
    e.sim.chunk_max = 65536
    e.sim.write(2000)
    ok, t = e.wait_delivered(timeout=60)
    check("nagle-flush: the flood is delivered", ok, e.request_summary())
    sizes = [len(r.events) for r in e.backend.requests(since) if r.accepted]
    info("nagle-flush: the flood in %d requests, sizes %s" % (len(sizes), sizes[:12]))
    check("nagle-flush: the flood fills batches while requests are in flight (the largest "
          "holds %d events)" % max(sizes or [0]), sizes and max(sizes) == 200)
    check("nagle-flush: within batch_max_records = 200", sizes and max(sizes) <= 200)
    e.backend.set_delay_ms(0)
    e.expect_stop("nagle-flush")
    e.verify("nagle-flush")


@scenario(output={"batch_max_records": "200", "linger_ms": "300"})
def split_413(e):
    """413 for bodies over 32 KiB: the daemon splits them and delivers
    everything."""
    cap = 32 * 1024
    e.backend.set_max_body(cap)
    # a backlog, so that full batches (about 80 KiB) are made whatever the
    # writer's pace: a reader that keeps catching up sends small ones
    e.sim.write(600)
    e.start()
    ok, t = e.wait_delivered()
    e.expect_stop("split-413")
    reqs = e.backend.requests()
    n413 = sum(1 for r in reqs if r.status == 413)
    big = [r for r in reqs if r.accepted and len(r.raw) > cap]
    check("split-413: some bodies were too big (%d answered 413)" % n413, n413 > 0)
    check("split-413: accepted bodies are within the cap", not big)
    info("split-413: %d requests, %d answered 413, accepted sizes %d..%d bytes" % (
        len(reqs), n413, min([len(r.raw) for r in reqs if r.accepted] or [0]),
        max([len(r.raw) for r in reqs if r.accepted] or [0])))
    check("split-413: nothing dead-lettered", not e.dead_letters(),
          ["%d lines" % len(e.dead_letters())])
    e.verify("split-413")


def _dead_letter_checks(e, label, refused, status, body):
    rcpts = {"u%d@example.com" % n for n in refused}
    got = poll_until(lambda: len(e.dead_letters()) >= len(refused), 10)
    dl = e.dead_letters()
    check("%s: dead-letter.ndjson holds %d lines (%d)" % (label, len(refused), len(dl)),
          bool(got) and len(dl) == len(refused), ["%.300r" % (x,) for x in dl[:5]])
    bad = [x for x in dl if not isinstance(x, dict)]
    check("%s: every dead-letter line is a JSON object" % label, not bad)
    dl = [x for x in dl if isinstance(x, dict)]
    evs = [x.get("event") if isinstance(x.get("event"), dict) else {} for x in dl]
    check("%s: exactly the refused records are dead-lettered" % label,
          sorted(ev.get("rcpt", "?") for ev in evs) == sorted(rcpts),
          ["got %s, want %s" % (sorted(ev.get("rcpt", "?") for ev in evs), sorted(rcpts))])
    check("%s: status %d in each" % (label, status), all(x.get("status") == status for x in dl),
          ["statuses %s" % [x.get("status") for x in dl]])
    check("%s: a time in each" % label, all(isinstance(x.get("time"), str) and x["time"]
                                           for x in dl), ["%r" % [x.get("time") for x in dl]])
    ans_ok = all(isinstance(x.get("answer"), str) and x["answer"] and
                 body.startswith(x["answer"][:len(body)]) for x in dl)
    check("%s: the start of the answer in each" % label, ans_ok,
          ["answers %r, body %r" % ([x.get("answer") for x in dl], body)])
    diffs = []
    for ev in evs:
        n = rcpt_number(ev.get("rcpt"))
        if n is not None:
            diffs += ["u%d: %s" % (n, d) for d in compare(n, ev)]
    check("%s: the dead-lettered events are the records' events" % label, not diffs, diffs[:4])
    return dl


@scenario(output={"batch_max_records": "50", "retry_max_s": "1"})
def refused_422(e):
    """422 refusing 3 chosen records among 300: exactly those in
    dead-letter.ndjson (status 422, the event), the others delivered;
    `dead-letter list` shows 3; `dead-letter resend` with the refusal still on
    keeps them, after it is lifted delivers them and empties the file."""
    refused = [17, 150, 299]
    body = json.dumps({"Success": False, "ErrorCode": 422,
                       "ErrorText": "refused: invalid bounce event"})
    e.backend.refuse("rcpt", {"u%d@example.com" % n for n in refused}, status=422, body=body)
    e.start()
    write_spread(e, 300, steps=4)
    ok, t = e.wait_delivered(required=[n for n in e.sim.required() if n not in refused])
    dl = _dead_letter_checks(e, "refused-422", refused, 422, body)
    reqs = e.backend.requests()
    info("refused-422: %d requests (%d answered 422) to isolate 3 records in %d" % (
        len(reqs), sum(1 for r in reqs if r.status == 422), len(e.sim.required())))
    check("refused-422: daemon still running", e.alive(), e.stderr_tail())
    rc, out, err = e.command("dead-letter", "list")
    lines = [ln for ln in out.splitlines() if ln.strip()]
    ids = [x.get("event", {}).get("eventId") for x in dl]
    check("refused-422: `dead-letter list` exits 0 and prints 3 lines (%d)" % len(lines),
          rc == 0 and len(lines) == 3, ["exit %r" % rc] + lines[:5] + err.splitlines()[:3])
    check("refused-422: ... each with an eventId and the status",
          all(any(i and i in ln and "422" in ln for ln in lines) for i in ids),
          lines[:5] + ["eventIds %s" % ids])
    if lines:
        info("refused-422: list line: %s" % lines[0][:200])
    e.expect_stop("refused-422")
    e.verify("refused-422", refused=refused)

    # resend while still refused: they stay
    before = len(e.backend.requests())
    rc, out, err = e.command("dead-letter", "resend")
    info("refused-422: resend while still refused: exit %r, %s" % (
        rc, (out + err).strip().splitlines()[-1:] if (out + err).strip() else "no output"))
    check("refused-422: resend while still refused reaches the backend",
          len(e.backend.requests()) > before, e.request_summary())
    e.poll()
    check("refused-422: resend while still refused: nothing accepted, all 3 stay",
          len(e.dead_letters()) == 3 and not any(e.acc.get(n) for n in refused),
          ["%d lines" % len(e.dead_letters())])
    # lifted: they go
    e.backend.refuse(None, ())
    rc, out, err = e.command("dead-letter", "resend")
    check("refused-422: resend after the refusal is lifted: exit 0", rc == 0,
          ["exit %r" % rc] + (out + err).splitlines()[-5:])
    e.poll()
    check("refused-422: resend delivers the 3", all(e.acc.get(n) == 1 for n in refused),
          ["accepted %s" % {n: e.acc.get(n) for n in refused}] + e.request_summary())
    check("refused-422: dead-letter file empty or gone after resend", not e.dead_letters(),
          ["%d lines left" % len(e.dead_letters())])
    rc, out, err = e.command("dead-letter", "list")
    info("refused-422: list after resend: exit %r, %d lines" % (
        rc, len([ln for ln in out.splitlines() if ln.strip()])))
    e.verify("refused-422 (after resend)")


@scenario(output={"batch_max_records": "25", "retry_max_s": "1"})
def success_false(e):
    """200 with {"Success": false, "ErrorCode": 1, "ErrorText": ...} for 2
    records: a refusal (isolated, dead-lettered), not an acceptance."""
    refused = [33, 71]
    body = json.dumps({"Success": False, "ErrorCode": 1,
                       "ErrorText": "Invalid bounce data: email address not found"})
    e.backend.refuse("rcpt", {"u%d@example.com" % n for n in refused}, status=200, body=body)
    e.start()
    write_spread(e, 100, steps=2)
    ok, t = e.wait_delivered(required=[n for n in e.sim.required() if n not in refused])
    _dead_letter_checks(e, "success-false", refused, 200, body)
    e.expect_stop("success-false")
    e.verify("success-false", refused=refused)


@scenario(output={"batch_max_records": "100", "retry_max_s": "1"})
def outage_kill9(e):
    """An outage spanning several rotations, with a kill -9 of pmtatail in
    the middle and a restart while the backend is still down; then the
    backend comes up: every record delivered (duplicates counted)."""
    e.start()
    e.sim.write(300)
    e.wait_delivered()
    before = set(e.sim.required())
    t_acked = time.monotonic()
    e.backend.stop()
    e.sim.write(500)
    e.sim.rotate()
    e.sim.write(500)
    e.sim.rotate(old_writes=5)
    e.sim.write(200)
    poll_until(lambda: False, 2.5)  # longer than a commit interval
    check("outage-kill9: daemon running during the outage", e.alive(), e.stderr_tail())
    t_kill = time.monotonic()
    e.kill9()
    e.sim.write(300)
    e.sim.rotate()
    e.sim.write(300)
    e.start()
    e.sim.write(200)
    e.sim.rotate()
    e.sim.write(200)
    poll_until(lambda: False, 0.8)
    check("outage-kill9: restarted daemon running with the backend down", e.alive(),
          e.stderr_tail())
    e.backend.start()
    ok, t = e.wait_delivered(timeout=TIMEOUT + 10)
    info("outage-kill9: %d records, %d rotations; delivered %.2f s after the backend came up"
         % (len(e.sim.required()), e.sim.rotations, t))
    e.expect_stop("outage-kill9")
    e.verify("outage-kill9", exact=False)
    twice = [n for n, c in e.acc.items() if c > 1]
    info("outage-kill9: %d records accepted twice: %d of them among the %d accepted before "
         "the outage (acknowledged %.1f s before the kill -9), %d written during it" % (
             len(twice), sum(1 for n in twice if n in before), len(before),
             t_kill - t_acked, sum(1 for n in twice if n not in before)))


@scenario(output={"timeout_s": "60", "retry_max_s": "1", "batch_max_records": "500",
                  "linger_ms": "100"})
def sigterm_hang(e):
    """SIGTERM while a request hangs: exit status 0 within the bounded drain
    time; the records not acknowledged are delivered after a restart."""
    e.backend.script({"action": "hang"})
    e.start()
    e.sim.write(60)
    got = e.backend.wait(lambda b: any(r.action == "hang" for r in b.requests()), 5)
    check("sigterm-hang: a request is hanging", bool(got), e.request_summary())
    e.sim.write(20)
    poll_until(lambda: False, 0.3)
    rc, t = e.stop(timeout=30)
    check("sigterm-hang: SIGTERM exits with status 0 (%r)" % (rc,), rc == 0, e.stderr_tail())
    check("sigterm-hang: ... within %.0f s (%.2f s)" % (DRAIN_MAX_S, t), t <= DRAIN_MAX_S)
    hung = [r for r in e.backend.requests() if r.action == "hang"]
    if hung:
        e.backend.wait(lambda b: hung[0].t1 is not None, 2)
        check("sigterm-hang: the hung connection is closed by the exiting daemon",
              hung[0].t1 is not None and hung[0].client_gone)
    e.poll()
    left = e.missing()
    info("sigterm-hang: %d of %d records not accepted at exit" % (
        len(left), len(e.sim.required())))
    e.start()
    e.sim.write(20)
    ok, t = e.wait_delivered()
    e.expect_stop("sigterm-hang (restarted)")
    e.verify("sigterm-hang", exact=False)


# ------------------------------------------- Oempro's endpoints, pacing, dead letters

LOGSTASH_KEYS = ("logType", "type", "tags", "@version", "@timestamp", "host", "path", "message")
# Logstash's tags: "pmta" from the input, one per kind from the filter
LOGSTASH_TAGS = {"b": ["pmta", "pmta_sync_bounce"], "rb": ["pmta", "pmta_async_bounce"],
                 "f": ["pmta", "pmta_fbl"]}


@scenario(output={"format": None, "batch_max_records": "50"})
def auto_pmta(e):
    """No format key, a .../bounce_webhook?type=pmta URL: every request is one
    JSON object holding one event with the keys Logstash sends."""
    e.start()
    write_spread(e, 300, steps=3)
    e.wait_delivered()
    e.expect_stop("auto-pmta")
    reqs = e.backend.requests()
    bad = [r for r in reqs if not isinstance(r.json, dict)]
    check("auto-pmta: every body is one JSON object (%d requests)" % len(reqs), not bad,
          ["#%d: %.120r" % (r.n, r.body) for r in bad[:3]])
    missing = collections.Counter(k for r in reqs if isinstance(r.json, dict)
                                  for k in LOGSTASH_KEYS if k not in r.json)
    check("auto-pmta: each holds %s" % ", ".join(LOGSTASH_KEYS), not missing,
          ["missing: %s" % dict(missing)])
    wrong = [r.json for r in reqs if isinstance(r.json, dict)
             and r.json.get("tags") != LOGSTASH_TAGS.get(r.json.get("logType"), ["pmta"])]
    check("auto-pmta: tags as Logstash's for each logType", not wrong,
          ["%s: %r" % (ev.get("logType"), ev.get("tags")) for ev in wrong[:3]])
    rc, out, err = e.command("check-config")
    check("auto-pmta: check-config says one event per request, concurrency 64, adaptive",
          "one event per request" in out and "concurrency = 64" in out
          and "adaptive = yes" in out,
          [ln for ln in out.splitlines() if "format" in ln or "concurrency" in ln])
    e.verify("auto-pmta")


@scenario(output={"format": None, "batch_max_records": "5000", "linger_ms": "300"},
          path="/system/bounce_webhook?type=fluentd")
def auto_fluentd(e):
    """No format key, type=fluentd, batch_max_records = 5000: arrays of at most
    1000 events (the endpoint answers 413 above); a 200 whose StatusCode is not
    250 is a refusal (isolated, dead-lettered), the 250 ones acceptances."""
    refused = [150, 2600]
    body = json.dumps({"StatusCode": 422, "Message": "invalid event"})
    e.backend.refuse("rcpt", {"u%d@example.com" % n for n in refused}, status=200, body=body)
    rc, out, err = e.command("check-config")
    check("auto-fluentd: check-config warns that batch_max_records is capped to 1000",
          "capped to 1000" in out, [ln for ln in out.splitlines() if "warning" in ln])
    # written before the start, so that the first passes read a backlog: a
    # reader that catches up with a live writer sends at once what it has
    # (a flush, not a cap), which leaves the batch sizes to the writer's pace
    e.sim.write(4000)
    e.start()
    e.wait_delivered(required=[n for n in e.sim.required() if n not in refused])
    _dead_letter_checks(e, "auto-fluentd", refused, 200, body)
    e.expect_stop("auto-fluentd")
    reqs = e.backend.requests()
    sizes = [len(r.events) for r in reqs]
    check("auto-fluentd: every body is a JSON array", all(isinstance(r.json, list) for r in reqs))
    check("auto-fluentd: at most 1000 events a request (max %d), none answered 413" %
          max(sizes or [0]), sizes and max(sizes) <= 1000 and
          not any(r.status == 413 for r in reqs))
    check("auto-fluentd: batched (some request holds more than 500 events)",
          any(s > 500 for s in sizes), ["sizes %s" % sizes[:20]])
    info("auto-fluentd: %d requests, the largest %d events" % (len(reqs), max(sizes or [0])))
    e.verify("auto-fluentd", refused=refused)


@scenario(output={"format": None, "batch_max_records": "50"}, headers=[],
          header_file=[("Authorization", "Bearer wrong-key-0001")],
          path="/api/v1/process_pmta_log_file")
def batch_api(e):
    """Oempro's batch API: arrays with the Bearer key of header_file. A wrong key
    ({"Errors": [{"Code": 1}]} with HTTP 200) is retried and said loudly, never
    dead-lettered; with the right key, ErrorCount > 0 says Oempro received the
    batch and could not process some entries without saying which: the batch
    is acknowledged, never resent (a repeat is harm: soft bounces count), the
    count logged and in the metrics; the default budget of 100 requests a
    minute is kept."""
    key = "admin-key-%08x" % random.Random(SEED).getrandbits(32)
    e.backend.set_api_key(key)
    rc, out, err = e.command("check-config")
    check("batch-api: check-config: arrays, max_requests_per_minute = 100",
          "JSON arrays" in out and "max_requests_per_minute = 100" in out,
          [ln for ln in out.splitlines() if "format" in ln or "per_minute" in ln])
    e.start()
    e.sim.write(100)
    poll_until(lambda: len(e.backend.requests()) >= 2, 10)
    reqs = e.backend.requests()
    check("batch-api: wrong key: retried (%d requests), nothing accepted" % len(reqs),
          len(reqs) >= 2 and not any(r.accepted for r in reqs), e.request_summary())
    said = poll_until(lambda: e.said("credentials refused.*Errors Code 1"), 5)
    check("batch-api: wrong key: said as a credentials problem", bool(said), e.stderr_tail())
    check("batch-api: wrong key: nothing dead-lettered", not e.dead_letters())
    e.expect_stop("batch-api (wrong key)")
    e.write_header_file([("Authorization", "Bearer " + key)])
    refused = [20, 77]
    e.backend.refuse("rcpt", {"u%d@example.com" % n for n in refused})
    since = len(e.backend.requests()) + 1
    e.start()
    e.sim.write(300)
    e.wait_delivered(required=[n for n in e.sim.required() if n not in refused])
    reqs = e.backend.requests(since)
    said = poll_until(lambda: e.said("did not process some entries.*unprocessed=1"), 5)
    check("batch-api: ErrorCount logged with its count per batch", bool(said), e.stderr_tail())
    check("batch-api: ErrorCount: nothing dead-lettered", not e.dead_letters())
    keys = collections.Counter(r.header("Idempotency-Key") for r in reqs)
    sent = collections.Counter(ev.get("eventId") for r in reqs for ev in r.events)
    check("batch-api: ErrorCount: no batch resent, no entry sent twice (%d requests)" % len(reqs),
          all(c == 1 for c in keys.values()) and all(c == 1 for c in sent.values()),
          e.request_summary())
    check("batch-api: every body is a JSON array with the Bearer key",
          all(isinstance(r.json, list) and r.header("Authorization") == "Bearer " + key
              for r in reqs))
    t0 = [r.t0 for r in reqs]
    worst = max((sum(1 for u in t0 if t <= u < t + 60) for t in t0), default=0)
    info("batch-api: %d requests (%d partial refusals) to isolate %d entries; at most %d in "
         "a minute" % (len(reqs), sum(1 for r in reqs if r.refused), len(refused), worst))
    check("batch-api: within 100 requests a minute (%d)" % worst, worst <= 100)
    e.expect_stop("batch-api")
    st = json.load(open(os.path.join(e.state, "status.json")))
    check("batch-api: status.json counts the unprocessed entries (%s)" % st.get("unprocessed"),
          st.get("unprocessed") == len(refused))
    e.verify("batch-api", refused=refused)


@scenario(output={"format": None, "batch_max_records": "5", "linger_ms": "10",
                  "max_requests_per_minute": "12"}, headers=[],
          path="/api/v1/process_pmta_log_file")
def request_budget(e):
    """max_requests_per_minute = 12 with 300 records in batches of 5: in the
    first 8 s the backend gets exactly 12 requests, then nothing until the
    minute has passed."""
    e.start()
    e.sim.write(300)
    time.sleep(8)
    n = len(e.backend.requests())
    info("request-budget: %d requests in 8 s with a budget of 12 a minute" % n)
    check("request-budget: 12 requests in the first 8 s (%d)" % n, n == 12, e.request_summary())
    e.expect_stop("request-budget")


PHP_REFUSALS = [
    ("BOM", '\ufeff{"Success":false,"ErrorCode":2,"ErrorText":"no such list"}'),
    ("PHP notice before", '<br />\n<b>Notice</b>:  Undefined index: {x} in '
     '<b>/var/www/oempro/bounce.php</b> on line <b>42</b><br />\n'
     '{"Success":false,"ErrorCode":3}'),
    ("trailing text after", '{"Success":false,"ErrorCode":4}\n<!-- 0.0123 s -->\n'),
    ("cut at 64 KiB", '{"Success":false,"ErrorText":"' + "x" * 70000 + '"}'),
    ("odd spacing", '{ "Success"\t :\n  false , "ErrorCode" : 5 }'),
]
PHP_ACCEPTS = [
    ("no JSON at all", "OK"),
    ("notice then Success:true", 'Warning: date(): timezone {not set}\n{"Success":true}'),
]


@scenario(output={"format": "single", "concurrency": "1", "retry_max_s": "1"})
def php_answers(e):
    """Answers as PHP prints them, one per request in order (concurrency 1):
    Success:false behind a BOM, after a PHP notice, before trailing output, cut
    at the 64 KiB cap, with odd spacing: each a refusal (dead-lettered); a 200
    with no JSON, or a notice before {"Success":true}: accepted."""
    # the acceptances first: a refusal is the event's only while the backend
    # accepts others (nothing accepted yet: the endpoint may be wrong)
    shapes = PHP_ACCEPTS + PHP_REFUSALS
    e.backend.script(*[{"status": 200, "body": b} for _, b in shapes])
    e.start()
    e.sim.write(30)
    poll_until(lambda: e.backend.script_left() == 0, 10)
    refused_at = {}
    reqs = e.backend.requests()
    for i, (what, _) in enumerate(shapes):
        ev = reqs[i].events[0] if i < len(reqs) and reqs[i].events else {}
        refused_at[what] = rcpt_number(ev.get("rcpt"))
    want = [refused_at[w] for w, _ in PHP_REFUSALS]
    e.wait_delivered(required=[n for n in e.sim.required() if n not in want])
    poll_until(lambda: len(e.dead_letters()) >= len(want), 10)
    dl = {rcpt_number(x.get("event", {}).get("rcpt")) for x in e.dead_letters()
          if isinstance(x, dict)}
    for what, _ in PHP_REFUSALS:
        check("php-answers: %s: refused, dead-lettered" % what, refused_at[what] in dl,
              ["u%s not among %s" % (refused_at[what], sorted(dl))])
    for what, _ in PHP_ACCEPTS:
        n = refused_at[what]
        check("php-answers: %s: accepted" % what, n not in dl and e.poll().acc.get(n) == 1,
              ["u%s" % n])
    e.expect_stop("php-answers")
    e.verify("php-answers", refused=want)


def http_date(t):
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(t))


# One per request, in order: (what, answer, fate); fate "accepted", "refused"
# (dead-lettered) or "retried" (no usable answer: the event goes again).
FRAMINGS = [
    ("chunked", {"status": 200, "framing": "chunked"}, "accepted"),
    ("chunked Success:false", {"status": 200, "framing": "chunked",
                               "body": '{"Success":false,"ErrorText":"no"}'}, "refused"),
    ("read to the close", {"status": 200, "framing": "close"}, "accepted"),
    ("HTTP/1.0", {"status": 200, "framing": "http10"}, "accepted"),
    ("100 Continue first", {"status": 200, "interim": True}, "accepted"),
    ("chunked 422", {"status": 422, "framing": "chunked"}, "refused"),
    ("not HTTP", {"action": "raw", "body": "garbage\r\n\r\n"}, "retried"),
    ("cut in the body", {"action": "raw", "body": "HTTP/1.1 200 OK\r\nContent-Length: 50"
                         "\r\n\r\n{\"Succ"}, "retried"),
    ("bad chunk size", {"action": "raw", "body": "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
                        "chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"}, "retried"),
    ("two lengths", {"action": "raw", "body": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                     "Content-Length: 3\r\n\r\n{}"}, "retried"),
    ("a 300 KiB chunked answer", {"status": 200, "framing": "chunked",
                                  "body": '{"Success":true,"pad":"%s"}' % ("x" * 300000)},
     "accepted"),
    ("no answer within timeout_s", {"action": "hang"}, "retried"),
]


@scenario(output={"format": "single", "concurrency": "1", "retry_max_s": "1", "timeout_s": "2"})
def answer_framing(e):
    """One event per request, answers framed every way a server may: chunked
    (with an extension and a trailer), read to the close, HTTP/1.0, after a
    100 Continue, larger than the 64 KiB kept; and answers that are not
    answers (not HTTP, cut in the body, a bad chunk size, two different
    lengths): each is judged as its framing says, and one that is not an
    answer sends its event again. First, a 503 whose Retry-After is an
    HTTP-date is waited for."""
    ra = {"status": 503, "headers": {"Retry-After": http_date(time.time() + 3)}}
    e.backend.script(*([ra] + [a for _, a, _ in FRAMINGS]))
    e.start()
    e.sim.write(30)
    poll_until(lambda: e.backend.script_left() == 0, 20)
    reqs = e.backend.requests()[1:]
    fate_of = {}
    for i, (what, _, fate) in enumerate(FRAMINGS):
        ev = reqs[i].events[0] if i < len(reqs) and reqs[i].events else {}
        fate_of[what] = (rcpt_number(ev.get("rcpt")), fate)
    refused = [n for n, f in fate_of.values() if f == "refused"]
    e.wait_delivered(required=[n for n in e.sim.required() if n not in refused])
    poll_until(lambda: len(e.dead_letters()) >= len(refused), 10)
    dl = {rcpt_number(x.get("event", {}).get("rcpt")) for x in e.dead_letters()
          if isinstance(x, dict)}
    e.poll()
    sent = collections.Counter(rcpt_number(ev.get("rcpt")) for r in e.backend.requests()
                               for ev in r.events if isinstance(ev, dict))
    for what, (n, fate) in fate_of.items():
        if fate == "accepted":
            ok = n not in dl and e.acc.get(n) == 1 and sent[n] == 1
        elif fate == "refused":
            ok = n in dl and not e.acc.get(n)
        else:
            ok = n not in dl and e.acc.get(n) == 1 and sent[n] >= 2
        check("answer-framing: %s: %s" % (what, fate), ok,
              ["u%s: sent %d, accepted %d, dead-lettered %s" % (n, sent[n], e.acc.get(n, 0),
                                                               n in dl)])
    # libcurl reads the framing; its reasons are what the log says
    for what, pattern in (("not HTTP", "HTTP/0.9 when not allowed"),
                          ("cut in the body", "transfer closed with 44 bytes remaining"),
                          ("bad chunk size", "hexadecimal sequence in chunked-encoding"),
                          ("two lengths", "transfer closed with 1 bytes remaining"),
                          ("no answer within timeout_s", r"timed out after 20\d\d milliseconds")):
        check("answer-framing: %s: said (%s)" % (what, pattern), bool(e.said(pattern)),
              e.stderr_tail())
    first = e.backend.requests()[:2]
    gap = first[1].t0 - first[0].t0 if len(first) == 2 else -1
    check("answer-framing: Retry-After as an HTTP-date waited for (%.2f s)" % gap, gap >= 1.0)
    st = e.backend.stats()
    check("answer-framing: connections kept where the answer allows (%d connections, %d "
          "requests)" % (st["connections"], len(e.backend.requests())),
          st["connections"] < len(e.backend.requests()))
    e.expect_stop("answer-framing")
    e.verify("answer-framing", refused=refused)


@scenario(output={"format": "single", "concurrency": "2", "retry_max_s": "1"})
def idle_close(e):
    """The backend closes kept-alive connections idle for 0.3 s (Apache's
    KeepAliveTimeout): the next request on such a connection finds it closed
    before any answer, and goes again on a new one at once: no failure said,
    no repeat, no wait for a backoff."""
    e.backend.set_idle_close(0.3)
    e.start()
    total = 0
    for _ in range(4):
        e.sim.write(15)
        total += 15
        e.wait_delivered()
        time.sleep(0.8)
    st = e.backend.stats()
    check("idle-close: the backend did close idle connections (%d connections)"
          % st["connections"], st["connections"] > 2)
    check("idle-close: no failure said", not e.said("delivery failing"), e.said("retry"))
    e.expect_stop("idle-close")
    e.verify("idle-close")


def make_cert(tmp, name):
    """A self-signed certificate for 127.0.0.1 (cert, key) made with openssl."""
    cert, key = os.path.join(tmp, name + ".pem"), os.path.join(tmp, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return cert, key


@scenario(output={"format": "single", "retry_max_s": "1"}, tls=True)
def tls_single(e):
    """An https URL, one event per request: the certificate checked against
    ca_file, every record delivered once on kept-alive TLS connections; the
    same daemon against a certificate it cannot trust delivers nothing and
    says why, then delivers all once the right CA is configured."""
    e.start()
    e.sim.write(60)
    e.wait_delivered()
    st = e.backend.stats()
    check("tls-single: kept-alive TLS connections (%d connections, %d requests)" % (
        st["connections"], len(e.backend.requests())),
        st["connections"] < len(e.backend.requests()))
    e.expect_stop("tls-single")
    other, _ = make_cert(e.tmp, "other")
    with open(e.conf) as fh:
        conf = fh.read()
    with open(e.conf, "w") as fh:
        fh.write(conf.replace("ca_file = %s" % e.cert, "ca_file = %s" % other))
    e.start()
    e.sim.write(10)
    said = poll_until(lambda: e.said("certificate|SSL", -1), 10)
    check("tls-single: an untrusted certificate: said", bool(said), e.stderr_tail())
    check("tls-single: an untrusted certificate: nothing new accepted",
          len(e.poll().acc) == 60, ["accepted %d" % len(e.acc)])
    e.expect_stop("tls-single (untrusted)")
    with open(e.conf, "w") as fh:
        fh.write(conf)
    e.start()
    e.wait_delivered()
    e.expect_stop("tls-single (trusted again)")
    e.verify("tls-single")


def backoff_attempts(window_s, retry_max_s, first_s=0.5):
    """Most requests one backoff lets start in window_s: the first, then one
    per step, each step at least half its nominal delay (jitter)."""
    t, d, n = 0.0, first_s, 1
    while True:
        t += min(d, retry_max_s) / 2
        if t > window_s:
            return n
        n += 1
        d *= 2


@scenario(output={"format": None, "retry_max_s": "4"})
def outage_503(e):
    """One event per request (auto: concurrency 64, a window starting at 4) and a
    backend answering 503 for 20 s while 400 records wait: the requests it
    gets in that time stay within the first window and one probe per backoff
    step; then all delivered."""
    e.backend.set_default(503)
    e.start()
    e.sim.write(400)
    poll_until(lambda: len(e.backend.requests()) >= 1, 10)
    t0 = time.monotonic()
    time.sleep(20)
    n = len(e.backend.requests())
    e.backend.set_default(200)
    allowed = backoff_attempts(20, 4)
    info("outage-503: %d requests in 20 s of 503 (one event each, 400 waiting); the backoff "
         "allows %d probes after the first window of 4: bound %d" % (n, allowed, 4 + allowed))
    check("outage-503: %d requests within the first window and one per step = %d" % (
        n, 4 + allowed), n <= 4 + allowed, e.request_summary())
    ok, t = e.wait_delivered()
    info("outage-503: delivered %.1f s after the backend came back (%.1f s after the first "
         "503)" % (t, time.monotonic() - t0))
    e.expect_stop("outage-503")
    e.verify("outage-503")


@scenario(output={"format": None, "max_rate": "100"})
def max_rate(e):
    """max_rate = 100 with one event per request and 2,000 records waiting: the
    backend gets 100 events/s within 10 % over a 10 s window."""
    e.start()
    e.sim.write(2000)
    poll_until(lambda: len(e.backend.requests()) >= 1, 10)
    time.sleep(13)
    reqs = e.backend.requests()
    start = reqs[0].t0 + 2
    n = sum(len(r.events) for r in reqs if start <= r.t0 < start + 10)
    info("max-rate: %d events in the 10 s window from 2 s on (%.1f events/s, max_rate 100)" %
         (n, n / 10.0))
    check("max-rate: 100 events/s within 10 %% (%.1f/s)" % (n / 10.0), 900 <= n <= 1100)
    e.expect_stop("max-rate", timeout=30)


@scenario(output={"format": "single", "retry_max_s": "1"})
def big_header(e):
    """An answer whose header holds a 200 KB line: named as an oversized answer
    header (not libcurl's "Out of memory"), retried, then delivered."""
    e.backend.script({"status": 200, "headers": {"X-Debug": "a" * 200000}})
    e.start()
    e.sim.write(5)
    e.wait_delivered()
    lines = e.said("header is too large")
    check("big-header: said as an oversized answer header", bool(lines), e.stderr_tail())
    check("big-header: not as 'Out of memory'", not e.said("out of memory"), e.stderr_tail())
    e.expect_stop("big-header")
    # the backend took the request it answered: resending it is the price
    e.verify("big-header", exact=False)


def _fsize_limit(nbytes):
    def pre():
        import resource
        # EFBIG for the write, not a SIGXFSZ that kills the daemon
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, resource.RLIM_INFINITY))
    return pre


@scenario(output={"format": "single", "retry_max_s": "1", "concurrency": "2"})
def dead_letter_full(e):
    """The dead-letter file cannot grow past RLIMIT_FSIZE (as on a full disk):
    the append that crosses it is short, cut back to where it began, retried
    (never a partial line), and once the limit is lifted every refused record
    is there exactly once; the accepted ones are delivered meanwhile. Then
    `dead-letter resend` over a file with a broken line: the line is skipped,
    reported with its number, and kept aside; the others are resent."""
    import resource
    refused = list(range(5, 120, 3))
    e.backend.refuse("rcpt", {"u%d@example.com" % n for n in refused})
    with open(e.conf) as fh:
        conf = fh.read()
    with open(e.conf, "w") as fh:
        fh.write(conf.replace("level = debug", "level = info"))
    limit = 16384
    e.start(preexec_fn=_fsize_limit(limit))
    e.sim.write(150)
    e.wait_delivered(required=[n for n in e.sim.required() if n not in refused])
    got = poll_until(lambda: e.said("cannot write the dead-letter file"), 10)
    check("dead-letter-full: the failed append is said", bool(got), e.stderr_tail())
    state = {}

    def whole_lines():
        # a retry may be between its short write and the cut back to where
        # it began: a partial line is an error only if it stays
        with open(e.dead, "rb") as fh:
            raw = fh.read()
        state["size"], state["dl"] = len(raw), e.dead_letters()
        return raw.endswith(b"\n") and None not in state["dl"] and len(raw) <= limit
    ok = poll_until(whole_lines, 2)
    size, dl = state["size"], state["dl"]
    check("dead-letter-full: the file holds only whole lines (%d bytes, %d lines, limit %d)" %
          (size, len(dl), limit), ok)
    check("dead-letter-full: some refused records wait (%d of %d written)" %
          (len(dl), len(refused)), len(dl) < len(refused))
    check("dead-letter-full: daemon still running", e.alive(), e.stderr_tail())
    resource.prlimit(e.proc.pid, resource.RLIMIT_FSIZE,
                     (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    poll_until(lambda: len(e.dead_letters()) >= len(refused), 40)
    dl = e.dead_letters()
    rc = collections.Counter(rcpt_number(x.get("event", {}).get("rcpt")) for x in dl
                             if isinstance(x, dict))
    check("dead-letter-full: after the limit is lifted, each refused record once (%d lines)" %
          len(dl), None not in dl and sorted(rc) == sorted(refused) and
          all(c == 1 for c in rc.values()), ["%s" % sorted(rc.items())[:10]])
    # the line is logged just after the append's fdatasync: wait for it too
    again = poll_until(lambda: e.said("writing the dead-letter file again"), 10)
    check("dead-letter-full: the end of the failure is said", bool(again), e.stderr_tail())
    e.expect_stop("dead-letter-full")
    e.verify("dead-letter-full", refused=refused)

    # a broken line in the middle: resend skips it, says its number, keeps it aside
    with open(e.dead, "rb") as fh:
        lines = fh.read().split(b"\n")
    lines.insert(3, b'{"time":"2026-12-01T00:00:00Z","status":422,"answer":"x","ev')
    with open(e.dead, "wb") as fh:
        fh.write(b"\n".join(lines))
    e.backend.refuse(None, ())
    rc_, out, err = e.command("dead-letter", "resend")
    check("dead-letter-full: resend reports the broken line with its number",
          re.search(r"unreadable dead letter.*line=4\b", err) is not None, err.splitlines()[-4:])
    e.poll()
    check("dead-letter-full: resend delivered the %d others" % len(refused),
          all(e.acc.get(n) == 1 for n in refused),
          ["not delivered: %s" % [n for n in refused if e.acc.get(n) != 1]])
    left = [p for p in os.listdir(e.state) if p.startswith("dead-letter.resending")]
    check("dead-letter-full: no resending file kept for the broken line", not left, left)
    with open(os.path.join(e.state, "dead-letter.unreadable"), "rb") as fh:
        kept = fh.read()
    check("dead-letter-full: the broken line is kept in dead-letter.unreadable",
          kept.startswith(b'{"time":"2026-12-01T00:00:00Z"'), ["%.80r" % kept])
    check("dead-letter-full: resend exit status 0 (%r)" % rc_, rc_ == 0, err.splitlines()[-3:])


@scenario(output={"format": "single", "retry_max_s": "1"})
def dead_letter_lock(e):
    """The dead-letter file planted as a symbolic link to a file outside the
    state directory: never written through; held locked by another process
    (dead-letter resend): the daemon does not wait on the lock, delivers the
    others, and writes the refused record once the lock is free."""
    import fcntl
    outside = os.path.join(e.tmp, "outside.txt")
    with open(outside, "w") as fh:
        fh.write("not yours\n")
    os.makedirs(e.state, exist_ok=True)
    os.symlink(outside, e.dead)
    e.backend.refuse("rcpt", {"u7@example.com"})
    e.start()
    e.sim.write(20)
    e.wait_delivered(required=[n for n in e.sim.required() if n != 7])
    poll_until(lambda: e.said("cannot write the dead-letter file"), 5)
    with open(outside) as fh:
        check("dead-letter-lock: a planted link is not written through",
              fh.read() == "not yours\n")
    check("dead-letter-lock: the refusal to follow it is said",
          bool(e.said("dead-letter.*(symbolic|loop|links)")), e.stderr_tail())
    # the locked file replaces the link in one rename: a retry of the daemon
    # between an unlink and a create would make (and write) the file itself
    fd = os.open(e.dead + ".planted", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(e.dead + ".planted", e.dead)
    time.sleep(1.5)
    e.sim.write(20)
    ok, t = e.wait_delivered(required=[n for n in e.sim.required() if n != 7])
    check("dead-letter-lock: with the file locked, the others still delivered (%.2f s)" % t, ok)
    # the retries back off (doubling up to 30 s) while the link is refused
    said = poll_until(lambda: e.said("locked"), 35)
    check("dead-letter-lock: the lock is said", bool(said), e.stderr_tail())
    check("dead-letter-lock: nothing written while locked", os.path.getsize(e.dead) == 0)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    poll_until(lambda: len(e.dead_letters()) >= 1, 40)
    dl = e.dead_letters()
    check("dead-letter-lock: written once the lock is free (%d lines)" % len(dl),
          len(dl) == 1 and dl[0] and dl[0]["event"]["rcpt"] == "u7@example.com")
    e.expect_stop("dead-letter-lock")
    e.verify("dead-letter-lock", refused=[7])


@scenario(output={"format": None})
def replay_rate(e):
    """`replay --rate 80` of 400 records on a terminal: the backend gets about
    80 events/s, the ETA counts with the rate from the start, and the log line
    at the end of the file is never written into the progress bar."""
    import pty
    e.sim.write(400)
    e.sim.close()
    # a 503 half-way: its log line comes while the bar is on the terminal
    e.backend.script(*([200] * 150 + [503]))
    master, slave = pty.openpty()
    t0 = time.monotonic()
    p = subprocess.Popen([BINARY, "-c", e.conf, "replay", "--rate", "80", e.live],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    p.wait(60)
    os.close(master)
    secs = time.monotonic() - t0
    e.cmd_out.append(out.decode("utf-8", "replace"))
    text = out.decode("utf-8", "replace")
    reqs = e.backend.requests()
    n = sum(len(r.events) for r in reqs)
    span = reqs[-1].t0 - reqs[0].t0 if len(reqs) > 1 else 0
    info("replay-rate: %d events in %.2f s (%.1f events/s, --rate 80), replay took %.2f s" % (
        n, span, n / span if span else 0, secs))
    check("replay-rate: exit 0, every record delivered (%d)" % n, p.returncode == 0 and
          n >= len(e.sim.required()), text.splitlines()[-3:])
    # the 503's backoff (0.25 to 0.5 s) is time without sending
    check("replay-rate: at most 80 events/s, and not far below (%.1f)" % (
        n / span if span else 0), span > 0 and 64 <= n / span <= 88)
    etas = [int(m) for m in re.findall(r"ETA (\d+)s", text)]
    check("replay-rate: the first ETA counts with the rate (%s)" % etas[:3],
          bool(etas) and etas[0] >= 3, [repr(text[:300])])
    check("replay-rate: the progress line shows the limit", "(max 80/s)" in text)
    clash = re.findall(r"ETA \d+s[^\r\n]*?(?:info|warn|error) ", text)
    check("replay-rate: no log line runs into the progress bar", not clash, clash[:2])
    logged = re.search(r"ETA \d+s[^\r\n]*\x1b\[K\r\x1b\[K[^\r\n]*warn delivery failing[^\r\n]*\r?\n"
                       r"\r\[", text)
    check("replay-rate: the bar is cleared before the log line and drawn again after it",
          logged is not None, [repr(ln[-300:]) for ln in text.split("\n") if "failing" in ln])


@scenario(output={"format": None, "retry_max_s": "2"})
def poison_500(e):
    """One record the backend always answers 500 for (one event per request,
    a PHP fatal error on one payload), another refused 403 by a rule (a WAF):
    the others flow; each of the two is dead-lettered with its status after
    its attempts (5) while the backend accepts the others, never stalling
    the pipeline; `dead-letter resend` delivers them once the backend takes
    them."""
    e.backend.refuse("rcpt", {"u5@example.com"}, status=500)
    e.start()
    write_spread(e, 50, steps=2)
    ok1, t = e.wait_delivered(required=[n for n in e.sim.required() if n != 5],
                              timeout=TIMEOUT + 20)
    poll_until(lambda: len(e.dead_letters()) >= 1, 20)
    e.backend.refuse("rcpt", {"u60@example.com"}, status=403)
    write_spread(e, 50, steps=2)
    others = [n for n in e.sim.required() if n not in (5, 60)]
    ok, t = e.wait_delivered(required=others, timeout=TIMEOUT + 20)
    check("poison-500: the others delivered despite a body always answered 500 (403)",
          ok1 and ok, e.request_summary() + e.stderr_tail())
    poll_until(lambda: len(e.dead_letters()) >= 2, 20)
    dl = {rcpt_number(x.get("event", {}).get("rcpt")): x for x in e.dead_letters()
          if isinstance(x, dict)}
    tries = collections.Counter(rcpt_number(ev.get("rcpt")) for r in e.backend.requests()
                                for ev in r.events if r.status in (500, 403))
    info("poison-500: attempts answered 500/403: %s" % dict(tries))
    for n, status in ((5, 500), (60, 403)):
        x = dl.get(n, {})
        check("poison-500: u%d dead-lettered with status %d after its attempts (%s)" % (
            n, status, x.get("attempts")),
            x.get("status") == status and isinstance(x.get("attempts"), int)
            and 2 <= x.get("attempts") <= 12, [repr(x)[:300]])
    check("poison-500: exactly those two dead-lettered", sorted(dl) == [5, 60], sorted(dl))
    check("poison-500: the dead letters logged with status and attempts",
          bool(e.said("kept in the dead-letter file status=500 attempts=")))
    e.expect_stop("poison-500")
    e.backend.refuse(None, ())
    rc, out, err = e.command("dead-letter", "resend")
    check("poison-500: resend once the backend takes them: exit 0", rc == 0,
          ["exit %r" % rc] + (out + err).splitlines()[-5:])
    e.verify("poison-500")


# -------------------------------------------------------------- main


def main(argv):
    global BINARY
    BINARY, rc = binary_arg(argv, __doc__)
    if BINARY is None:
        return rc
    info("seed %d (PMTATAIL_PUSH_SEED)" % SEED)
    return run_scenarios(SCENARIOS, ONLY, lambda name, fn: Env(name, **fn.env))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
