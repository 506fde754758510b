#!/usr/bin/python3
"""Delivery against real servers users run: nginx (TLS with HTTP/2, and plain
HTTP) in front of php-fpm running an Oempro-like PHP webhook, and tinyproxy
as a forward proxy, without and with BasicAuth.

    python3 tests/py/test_realservers.py PMTATAIL_BINARY

Each scenario gets its own temporary directory (test_push.Env's layout:
pmta/bounces.csv, state/, logs/), starts the Debian packages' binaries on
127.0.0.1 ports with private configuration files there (realservers.py: no
system service, no systemd), writes a configuration whose [output] url points
at nginx, runs the real daemon (`PMTATAIL_BINARY -c CONF run`) with the
proxy variables of the scenario only, and checks what the PHP webhook
*processed* (processed.jsonl: the whole event, once per time PHP processed
it) and *received* (requests.jsonl), nginx's access log and tinyproxy's log:

  harness               the servers on their own, driven by curl: h2, the
                        PHP notice before the JSON, the fault rules, nginx's
                        404 and 400, the proxies (validates the checks below)
  h2-single             https + HTTP/2, ?type=pmta, one event per request
  h2-arrays             https + HTTP/2, ?type=fluentd, arrays
  proxy                 http through tinyproxy (http_proxy)
  proxy-auth            http through the authenticating tinyproxy
                        (http_proxy=http://user:pass@...), and https through
                        it with CONNECT (https_proxy)
  held-404              a wrong path: held, never dead-lettered, named
  held-plain-to-https   http:// aimed at nginx's HTTPS port (400)
  held-407              the authenticating proxy without credentials
  poison-500            one event always answered 500 (a PHP fatal error)
  poison-403            one event always refused 403 (a WAF rule)
  split-timeout         an array outlasting timeout_s is split
  batch-api-errorcount  the batch API's ErrorCount: acknowledged, counted,
                        never resent

The servers are required: a missing one is a failed check naming its Debian
package (scripts/deps.sh --test installs them), never a skip.

Environment:
  PMTATAIL_REAL_ONLY  comma-separated scenario names to run (default all)
  PMTATAIL_REAL_SEED  random seed (default: from the clock; printed)
  PMTATAIL_REAL_KEEP  keep the temporary directories (their paths are printed)

Standard library only. One line per check; exits 1 if any check failed.
"""

import collections
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_push  # noqa: E402
from harness import check, finish, info, poll_until, run_scenarios, binary_arg  # noqa: E402
from pmta_sim import ranges, rcpt_number  # noqa: E402
from realservers import (JsonlTail, Servers, ServerMissing, find_binary)  # noqa: E402

ONLY = [s for s in os.environ.get("PMTATAIL_REAL_ONLY", "").split(",") if s]
SEED = int(os.environ.get("PMTATAIL_REAL_SEED", str(int(time.time()) % 100000)))
KEEP = bool(os.environ.get("PMTATAIL_REAL_KEEP"))

PMTA = "/system/bounce_webhook?type=pmta"
FLUENTD = "/system/bounce_webhook?type=fluentd"
API = "/api/v1/process_pmta_log_file"
KEY_RE = re.compile(r"^[0-9a-fA-F]{32}$")
PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
              "ALL_PROXY", "no_proxy", "NO_PROXY")
REFUSING = "endpoint refuses every request"


def rcpt(n):
    return "u%d@example.com" % n


# -------------------------------------------------------------- one scenario


class RealEnv(test_push.Env):
    """test_push.Env (its directory, simulated writer, daemon runs and
    verify()) with the real servers in place of the fake backend: what
    counts as accepted is what the PHP webhook processed."""

    OUTPUT_DEFAULTS = collections.OrderedDict()  # the daemon's defaults

    def __init__(self, name, children=4, proxies=False, sim_args=None):
        super().__init__(name, backend_up=False, sim_args=sim_args)
        self.servers = Servers(self.tmp, children=children, proxies=proxies)
        self.webhook = self.servers.webhook
        self.nginx = self.servers.nginx
        self.proxy = self.servers.proxy
        self.auth_proxy = self.servers.auth_proxy
        self.tail = JsonlTail(self.webhook.processed_file)
        self.proc_seen = []          # every processed entry, in order
        self.proxy_env = {}          # proxy variables for the daemon
        self.metrics = os.path.join(self.tmp, "metrics.prom")
        self.status_file = os.path.join(self.state, "status.json")

    def up(self):
        self.servers.start()

    # -- the configuration

    def configure(self, path=PMTA, scheme="https", url=None, output=None, headers=None,
                  metrics=False, proxy_env=None):
        """(Re)write the configuration: url (default nginx's https or http
        port and path), [output] keys, the secret header plus `headers`,
        and which proxy variables the daemon gets."""
        if url is None:
            url = (self.nginx.https_url(path) if scheme == "https"
                   else self.nginx.http_url(path))
        self.url = url
        self.path = re.sub(r"^https?://[^/]*", "", url)
        out = collections.OrderedDict([("url", url), ("ca_file", self.nginx.cert)])
        out.update(output or {})
        with open(self.conf, "w") as fh:
            fh.write("[source bounces]\npath = %s\narchive_dir = %s\nrecords = b, rb\n\n"
                     % (self.live, self.archive))
            fh.write("[output]\n")
            for k, v in out.items():
                fh.write("%s = %s\n" % (k, v))
            for hn, hv in [("X-Octeth-Signature", self.secret)] + list(headers or []):
                fh.write("header = %s: %s\n" % (hn, hv))
            fh.write("\n[state]\ndir = %s\n\n[log]\nlevel = debug\n" % self.state)
            if metrics:
                fh.write("\n[metrics]\ntextfile = %s\ninterval_s = 1\n" % self.metrics)
        self.proxy_env = dict(proxy_env or {})

    def daemon_env(self):
        env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
        env.update(self.proxy_env)
        return env

    def start(self, wait_ready=True, preexec_fn=None, env=None, conf=None):
        return super().start(wait_ready, preexec_fn, env or self.daemon_env(), conf)

    # -- what the webhook processed (test_push.Env.verify reads self.acc)

    def poll(self):
        for x in self.tail.new():
            if x is None:
                self.strays.append("a processed.jsonl line that is not JSON")
                continue
            self.proc_seen.append(x)
            ev = x.get("event") if isinstance(x.get("event"), dict) else {}
            n = rcpt_number(ev.get("rcpt"))
            if n is None:
                self.strays.append(ev)
                continue
            self.acc[n] += 1
            self.ids[n].add(ev.get("eventId"))
            if self.acc[n] == 1 and len(self.mismatch) < 100:
                d = test_push.compare(n, ev)
                if d:
                    self.mismatch.append("u%d: %s" % (n, "; ".join(d)))
        return self

    def wait_delivered(self, timeout=None, required=None, idle=None):
        """test_push.Env.wait_delivered, giving up early (with idle) when
        nothing new reached nginx for idle seconds."""
        if idle is None:
            return super().wait_delivered(timeout, required)
        req = set(self.sim.required() if required is None else required)
        t = test_push.TIMEOUT + len(req) / 2000.0 if timeout is None else timeout
        last = [None, time.monotonic()]

        def done():
            self.poll()
            if all(self.acc.get(n) for n in req):
                return True
            size = os.path.getsize(self.nginx.access) if os.path.exists(self.nginx.access) \
                else 0
            if size != last[0]:
                last[0], last[1] = size, time.monotonic()
            return (time.monotonic() - last[1] > idle
                    or (self.proc is not None and self.proc.poll() is not None))
        t0 = time.monotonic()
        poll_until(done, t, 0.05)
        return all(self.acc.get(n) for n in req), time.monotonic() - t0

    def processed_count(self):
        self.poll()
        return sum(self.acc.values())

    def verify_requests(self, label):
        """Every request PHP received: POST, application/json, pmtatail/
        agent, a 32-hex Idempotency-Key, a body that decodes, the
        configured path."""
        reqs = self.webhook.requests()
        bad = collections.OrderedDict()
        for i, r in enumerate(reqs):
            what = []
            if r.get("method") != "POST":
                what.append("method %s" % r.get("method"))
            if (r.get("content_type") or "").split(";")[0].strip().lower() != "application/json":
                what.append("Content-Type %r" % r.get("content_type"))
            if not (r.get("user_agent") or "").startswith("pmtatail/"):
                what.append("User-Agent %r" % r.get("user_agent"))
            if not KEY_RE.match(r.get("key") or ""):
                what.append("Idempotency-Key %r" % r.get("key"))
            if r.get("status") == 400:
                what.append("body does not decode")
            if r.get("uri") != self.path:
                what.append("path %r" % r.get("uri"))
            for w in what:
                bad.setdefault(w, []).append(i)
        check("%s: %d requests PHP received: POST, application/json, pmtatail/ agent, "
              "32-hex Idempotency-Key, body decodes, the configured path" % (label, len(reqs)),
              not bad, ["%s: %d requests, e.g. #%d" % (k, len(v), v[0])
                        for k, v in bad.items()][:8])

    def request_summary(self, k=4):
        reqs = self.webhook.requests()
        st = collections.Counter(str(r.get("status")) for r in reqs)
        acc = collections.Counter("%s %s" % (a.get("proto"), a.get("status"))
                                  for a in self.nginx.access_log())
        return ["PHP answered %d requests (%s); nginx logged %s" % (
            len(reqs), ", ".join("%s x%d" % kv for kv in sorted(st.items())),
            ", ".join("%s x%d" % kv for kv in sorted(acc.items())))] + \
            ["  PHP: %s n=%s status=%s" % (r.get("uri"), r.get("n"), r.get("status"))
             for r in reqs[-k:]]

    # -- the daemon's own account

    def status_json(self):
        """`pmtatail -c CONF status --json`, parsed ({} if it is not JSON)."""
        rc, out, err = self.command("status", "--json")
        try:
            return json.loads(out)
        except ValueError:
            return {"_unparsed": (out + err)[:300]}

    def status_file_json(self):
        try:
            with open(self.status_file) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return {}

    def metric(self, name):
        """A metric's value in the textfile (None if absent)."""
        try:
            with open(self.metrics) as fh:
                for line in fh:
                    parts = line.split()
                    if len(parts) == 2 and parts[0] == name:
                        return float(parts[1])
        except OSError:
            return None
        return None

    # -- the end

    def cleanup(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None
        self.servers.stop()
        super().cleanup()


def write_spread(e, total, steps=5, pause=0.03):
    test_push.write_spread(e, total, steps, pause)


def no_dead_letters(e, label):
    dl = e.dead_letters()
    check("%s: nothing in dead-letter.ndjson" % label, not dl,
          ["%d lines, first: %.300r" % (len(dl), dl[:1])])


def h2_checks(e, label):
    """nginx logged the webhook's requests on its HTTPS port as HTTP/2.0."""
    ents = [a for a in e.nginx.access_log() if a.get("port") == str(e.nginx.https_port)]
    protos = collections.Counter(a.get("proto") for a in ents)
    conns = len({a.get("conn") for a in ents})
    info("%s: nginx logged %d requests on the HTTPS port: %s, on %d connections" % (
        label, len(ents), dict(protos), conns))
    check("%s: nginx's access log shows HTTP/2.0 for every request (%s)" % (label, dict(protos)),
          bool(ents) and set(protos) == {"HTTP/2.0"})


def stream_overlap(e):
    """Requests that were in flight at once on one HTTP/2 connection (from
    nginx's end times and request times): the largest such count."""
    by_conn = collections.defaultdict(list)
    for a in e.nginx.access_log():
        try:
            t1 = float(a["t"])
            by_conn[a.get("conn")].append((t1 - float(a["request_time"]), t1))
        except (KeyError, ValueError):
            pass
    best = 0
    for iv in by_conn.values():
        for s, _ in iv:
            best = max(best, sum(1 for s2, t2 in iv if s2 <= s <= t2))
    return best


# -------------------------------------------------------------- scenarios

SCENARIOS = []


def scenario(**env):
    """A scenario: its environment's arguments; the servers are started
    inside the scenario, so that one failing to come up is a failed check."""
    def deco(fn):
        @functools.wraps(fn)
        def run(e):
            e.up()
            fn(e)
        run.env = env
        SCENARIOS.append(run)
        return run
    return deco


def curl(e, url, data, *args, timeout=20):
    """curl POSTing data (a JSON value or bytes): (HTTP status, HTTP version,
    body text, curl's exit status, stderr)."""
    exe = shutil.which("curl")
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    out = os.path.join(e.tmp, "curl.body")
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    r = subprocess.run([exe, "-sS", "-o", out, "-w", "%{http_code} %{http_version}",
                        "-H", "Content-Type: application/json", "--data-binary", "@-"]
                       + list(args) + [url], input=body, capture_output=True, timeout=timeout,
                       env=env)
    try:
        with open(out, "rb") as fh:
            text = fh.read().decode("utf-8", "replace")
        os.unlink(out)
    except FileNotFoundError:
        text = ""
    parts = r.stdout.decode().split()
    code = int(parts[0]) if parts and parts[0].isdigit() else None
    ver = parts[1] if len(parts) > 1 else None
    return code, ver, text, r.returncode, r.stderr.decode("utf-8", "replace").strip()


@scenario(proxies=True)
def harness(e):
    """The servers on their own, driven by curl (no pmtatail): HTTP/2 over
    TLS, the PHP notice before the JSON, each endpoint's answer, each rule
    (500, 403, slow, ErrorCount, the API key), nginx's 404 and 400, both
    proxies (and the 407 without credentials), CONNECT through a proxy."""
    if not check("harness: curl is installed (Debian package curl)", bool(shutil.which("curl"))):
        return
    w, ng = e.webhook, e.nginx
    ev = lambda i, r: {"eventId": "h%d" % i, "rcpt": r}  # noqa: E731

    def done(ids):
        got = collections.Counter(p.get("eventId") for p in w.processed())
        return {i: got[i] for i in ids}

    code, ver, body, rc, err = curl(e, ng.https_url(PMTA), ev(1, "a@x"), "--http2", "-k")
    check("harness: https + --http2: HTTP/2 200 (%s %s, rc %d %s)" % (ver, code, rc, err),
          code == 200 and ver == "2")
    check("harness: a PHP notice, then {\"Success\":true,\"ErrorCode\":0}",
          body.startswith("<br />\n<b>Notice</b>:  Undefined index")
          and body.endswith('{"Success":true,"ErrorCode":0}'), [repr(body)])
    # nginx writes its access log line after the answer: poll for it
    h2 = poll_until(lambda: [a for a in ng.access_log() if a.get("proto") == "HTTP/2.0"
                             and a.get("status") == "200"], 5)
    check("harness: nginx's access log says HTTP/2.0 and 200", bool(h2), ng.access_log()[-2:])
    check("harness: PHP saw HTTP/2.0 and processed h1 once", done(["h1"]) == {"h1": 1}
          and w.requests()[-1].get("proto") == "HTTP/2.0", w.requests()[-1:])

    code, ver, body, rc, err = curl(e, ng.https_url(FLUENTD), [ev(2, "b@x"), ev(3, "c@x")],
                                    "--http2", "-k")
    check("harness: ?type=fluentd, an array: 200 with StatusCode 250 after the notice",
          code == 200 and body.startswith("<br />") and '"StatusCode":250' in body
          and done(["h2", "h3"]) == {"h2": 1, "h3": 1}, [code, body[-80:]])

    w.set_rules(fatal_rcpts=["fatal@x"], waf_rcpts=["waf@x"], slow=(2, 2),
                error_count_rcpts=["err@x"], api_key="K1")
    code, ver, body, rc, err = curl(e, ng.https_url(FLUENTD),
                                    [ev(4, "a@x"), ev(5, "fatal@x"), ev(6, "b@x")],
                                    "--http2", "-k")
    check("harness: fatal rule: 500 with PHP's fatal error text, the events before it "
          "processed, the one and those after it not",
          code == 500 and "<b>Fatal error</b>" in body and
          done(["h4", "h5", "h6"]) == {"h4": 1, "h5": 0, "h6": 0}, [code, body[:80]])
    code, ver, body, rc, err = curl(e, ng.https_url(PMTA), ev(7, "waf@x"), "--http2", "-k")
    check("harness: WAF rule: 403, nothing processed",
          code == 403 and "403 Forbidden" in body and done(["h7"]) == {"h7": 0}, [code, body])
    t0 = time.monotonic()
    code, ver, body, rc, err = curl(e, ng.https_url(FLUENTD), [ev(8, "a@x"), ev(9, "a@x")],
                                    "--http2", "-k")
    check("harness: slow rule (2 s above 2 events): 2 events answered at once (%.2f s)" % (
        time.monotonic() - t0), code == 200 and time.monotonic() - t0 < 1.5)
    t0 = time.monotonic()
    code, ver, body, rc, err = curl(e, ng.https_url(FLUENTD),
                                    [ev(10, "a@x"), ev(11, "a@x"), ev(12, "a@x")],
                                    "--http2", "-k", "-m", "1")
    check("harness: slow rule: 3 events outlast curl -m 1 (curl exit %d after %.2f s)" % (
        rc, time.monotonic() - t0), rc == 28 and done(["h10"]) == {"h10": 0})
    got = poll_until(lambda: done(["h10", "h11", "h12"]) == {"h10": 1, "h11": 1, "h12": 1}, 5)
    check("harness: slow rule: PHP processes them after the client gave up", bool(got),
          [done(["h10", "h11", "h12"])])
    code, ver, body, rc, err = curl(e, ng.https_url(API), [ev(13, "a@x"), ev(14, "err@x")],
                                    "--http2", "-k")
    check("harness: batch API without the key: 200 {\"Errors\":[{\"Code\":1...}]}, "
          "nothing processed", code == 200 and '"Code":1' in body and
          done(["h13", "h14"]) == {"h13": 0, "h14": 0}, [code, body])
    code, ver, body, rc, err = curl(e, ng.https_url(API), [ev(13, "a@x"), ev(14, "err@x")],
                                    "--http2", "-k", "-H", "Authorization: Bearer K1")
    check("harness: batch API with the key: ProcessedCount 1, ErrorCount 1, the error_count "
          "rcpt not processed", code == 200 and body.endswith(
              '{"Success":true,"ProcessedCount":1,"ErrorCount":1}')
          and done(["h13", "h14"]) == {"h13": 1, "h14": 0}, [code, body[-80:]])
    w.set_rules()

    code, ver, body, rc, err = curl(e, ng.https_url("/oempro/system/bounce_webhook?type=pmta"),
                                    ev(15, "a@x"), "--http2", "-k")
    info("harness: wrong path: %s %r" % (code, body[:60]))
    check("harness: a wrong path: nginx's own 404 page", code == 404 and
          "<title>404 Not Found</title>" in body and done(["h15"]) == {"h15": 0}, [code, body])
    code, ver, body, rc, err = curl(e, "http://127.0.0.1:%d%s" % (ng.https_port, PMTA),
                                    ev(16, "a@x"))
    info("harness: http:// on the HTTPS port: %s %r" % (code, body[:80]))
    check("harness: http:// on the HTTPS port: 400 The plain HTTP request was sent to HTTPS port",
          code == 400 and "The plain HTTP request was sent to HTTPS port" in body and
          done(["h16"]) == {"h16": 0}, [code, body])

    code, ver, body, rc, err = curl(e, ng.http_url(PMTA), ev(17, "a@x"), "-x", e.proxy.url())
    via = [r.get("via") for r in w.requests() if r.get("ids") == ["h17"]]
    check("harness: through tinyproxy: 200, PHP saw its Via header (%s)" % via,
          code == 200 and done(["h17"]) == {"h17": 1} and via and "tinyproxy" in via[0],
          [code, err])
    code, ver, body, rc, err = curl(e, ng.http_url(PMTA), ev(18, "a@x"),
                                    "-x", e.auth_proxy.url(creds=True))
    check("harness: through the authenticating tinyproxy with user:pass: 200",
          code == 200 and done(["h18"]) == {"h18": 1}, [code, err])
    code, ver, body, rc, err = curl(e, ng.http_url(PMTA), ev(19, "a@x"),
                                    "-x", e.auth_proxy.url(creds=False))
    info("harness: the authenticating proxy without credentials: %s, curl exit %d %s, %r" % (
        code, rc, err, body[:60]))
    check("harness: ... without credentials: 407, nothing processed",
          code == 407 and done(["h19"]) == {"h19": 0}, [code, err])
    code, ver, body, rc, err = curl(e, ng.https_url(PMTA), ev(20, "a@x"), "--http2", "-k",
                                    "-x", e.auth_proxy.url(creds=True))
    check("harness: https through the authenticating proxy (CONNECT): HTTP/2 200",
          code == 200 and ver == "2" and done(["h20"]) == {"h20": 1}, [code, ver, err])
    logged = [ln for ln in e.auth_proxy.log_lines() if "CONNECT 127.0.0.1:%d" % ng.https_port
              in ln]
    check("harness: tinyproxy logged the CONNECT", bool(logged))
    reqs = [ln for ln in e.proxy.log_lines() if re.search(r"Request \(file descriptor \d+\): "
                                                           r"POST http://127\.0\.0\.1", ln)]
    check("harness: tinyproxy logged the POST", bool(reqs), e.proxy.log_lines()[-4:])


@scenario()
def h2_single(e):
    """https with HTTP/2 through nginx, ?type=pmta and format auto: one event
    per request; every record processed exactly once; nginx logs HTTP/2.0;
    no dead letters."""
    e.configure(PMTA)
    e.start()
    check("h2-single: daemon running", e.alive(), e.stderr_tail())
    write_spread(e, 300, steps=5)
    ok, t = e.wait_delivered()
    info("h2-single: delivered %s %.1f s after the last write" % (ok, t))
    e.expect_stop("h2-single")
    reqs = e.webhook.requests()
    bad = [r for r in reqs if r.get("array") or r.get("n") != 1]
    check("h2-single: every body one JSON object (%d requests)" % len(reqs), reqs and not bad,
          ["%s n=%s array=%s" % (r.get("uri"), r.get("n"), r.get("array")) for r in bad[:3]])
    h2_checks(e, "h2-single")
    info("h2-single: at most %d requests in flight at once on one connection" %
         stream_overlap(e))
    no_dead_letters(e, "h2-single")
    e.verify("h2-single")


@scenario()
def h2_arrays(e):
    """https with HTTP/2, ?type=fluentd and format auto: JSON arrays; every
    record processed exactly once; HTTP/2.0; no dead letters."""
    e.configure(FLUENTD)
    e.start()
    check("h2-arrays: daemon running", e.alive(), e.stderr_tail())
    write_spread(e, 600, steps=6)
    ok, t = e.wait_delivered()
    info("h2-arrays: delivered %s %.1f s after the last write" % (ok, t))
    e.expect_stop("h2-arrays")
    reqs = e.webhook.requests()
    check("h2-arrays: every body a JSON array (%d requests, sizes %s)" % (
        len(reqs), [r.get("n") for r in reqs][:12]),
        reqs and all(r.get("array") for r in reqs))
    h2_checks(e, "h2-arrays")
    no_dead_letters(e, "h2-arrays")
    e.verify("h2-arrays")


def proxied_checks(e, label, proxy, n_reqs_min=1):
    reqs = e.webhook.requests()
    vias = collections.Counter(r.get("via") for r in reqs)
    check("%s: every request PHP received came through %s (Via: %s)" % (
        label, proxy.NAME, dict(vias)),
        reqs and all(("%s (tinyproxy/" % proxy.NAME) in (r.get("via") or "") for r in reqs))
    posts = [ln for ln in proxy.log_lines() if re.search(
        r"Request \(file descriptor \d+\): POST http://127\.0\.0\.1:%d/" % e.nginx.http_port, ln)]
    check("%s: %s's log shows the POSTs (%d logged, %d received by PHP)" % (
        label, proxy.NAME, len(posts), len(reqs)), len(posts) >= max(n_reqs_min, len(reqs)),
        proxy.log_lines()[-4:])


@scenario(proxies=True)
def proxy(e):
    """http_proxy=http://127.0.0.1:P (tinyproxy), the url nginx's plain HTTP
    port: everything delivered once, through the proxy."""
    e.configure(PMTA, scheme="http", proxy_env={"http_proxy": e.proxy.url()})
    e.start()
    write_spread(e, 150, steps=3)
    ok, t = e.wait_delivered()
    info("proxy: delivered %s %.1f s after the last write" % (ok, t))
    e.expect_stop("proxy")
    proxied_checks(e, "proxy", e.proxy)
    no_dead_letters(e, "proxy")
    e.verify("proxy")


@scenario(proxies=True)
def proxy_auth(e):
    """http_proxy=http://user:pass@127.0.0.1:P (tinyproxy with BasicAuth):
    everything delivered once through it, the password never in stderr; then
    an https url with https_proxy set the same way (CONNECT through the
    proxy, HTTP/2 inside the tunnel): the next records delivered once."""
    e.secrets.append(e.auth_proxy.auth[1])
    e.configure(PMTA, scheme="http", proxy_env={"http_proxy": e.auth_proxy.url()})
    e.start()
    write_spread(e, 150, steps=3)
    ok, t = e.wait_delivered()
    info("proxy-auth: delivered %s %.1f s after the last write" % (ok, t))
    e.expect_stop("proxy-auth")
    proxied_checks(e, "proxy-auth", e.auth_proxy)
    e.verify("proxy-auth")
    # https through the same proxy: CONNECT
    n_before = len(e.webhook.requests())
    e.configure(PMTA, scheme="https", proxy_env={"https_proxy": e.auth_proxy.url()})
    e.start()
    write_spread(e, 100, steps=2)
    ok, t = e.wait_delivered()
    e.expect_stop("proxy-auth (https)")
    conn = [ln for ln in e.auth_proxy.log_lines()
            if "CONNECT 127.0.0.1:%d" % e.nginx.https_port in ln]
    check("proxy-auth: https: tinyproxy logged CONNECT 127.0.0.1:%d (%d times)" % (
        e.nginx.https_port, len(conn)), bool(conn), e.auth_proxy.log_lines()[-4:])
    later = e.webhook.requests()[n_before:]
    check("proxy-auth: https: PHP received the requests over HTTP/2.0 (%s)" % dict(
        collections.Counter(r.get("proto") for r in later)),
        later and all(r.get("proto") == "HTTP/2.0" for r in later))
    no_dead_letters(e, "proxy-auth")
    e.verify("proxy-auth (https)")


def held(e, label, status, records=60):
    """The daemon runs against an endpoint that refuses everything: after a
    few seconds nothing dead-lettered, nothing processed, the refusal named
    in stderr, status --json and status.json say endpoint_refusing."""
    e.start()
    check("%s: daemon running" % label, e.alive(), e.stderr_tail())
    write_spread(e, records, steps=2)
    t0 = time.monotonic()
    line_re = r"%s.*\bstatus=%d\b|\bstatus=%d\b.*%s" % (REFUSING, status, status, REFUSING)
    said = poll_until(lambda: e.said(line_re), 12, 0.1)
    # status.json is written every 2 s while things change
    poll_until(lambda: e.status_file_json().get("endpoint_refusing") is True, 5, 0.1)
    # a few seconds in any case: room to dead-letter or process, if it would
    poll_until(lambda: False, max(0.0, 4.0 - (time.monotonic() - t0)))
    if status == 407:  # tinyproxy logs the request, not its answer
        tried = [ln for ln in e.auth_proxy.log_lines()
                 if re.search(r"Request \(file descriptor \d+\): POST http://", ln)]
        where = "requests in tinyproxy-auth's log"
    else:
        tried = [a for a in e.nginx.access_log() if a.get("status") == str(status)]
        where = "answers %d in nginx's access log" % status
    check("%s: the daemon did try (%d %s)" % (label, len(tried), where), bool(tried),
          e.request_summary())
    no_dead_letters(e, label + ", held")
    check("%s: nothing processed while held" % label, e.processed_count() == 0,
          e.request_summary())
    refusing = [ln for ln in e.said(REFUSING)]
    check("%s: stderr names it: a line with '%s' and status=%d" % (label, REFUSING, status),
          bool(said), (["lines with the phrase: %s" % refusing[:2]] if refusing else [])
          + e.stderr_tail(6))
    st = e.status_json()
    check("%s: status --json has \"endpoint_refusing\": true (%r)" % (
        label, st.get("endpoint_refusing")), st.get("endpoint_refusing") is True,
        ["status --json: %s" % json.dumps({k: st.get(k) for k in (
            "healthy", "problem", "retrying", "credentials_refused", "last_error",
            "dead_letters", "_unparsed")})])
    sf = e.status_file_json()
    check("%s: status.json has \"endpoint_refusing\": true (%r, endpoint_status %r)" % (
        label, sf.get("endpoint_refusing"), sf.get("endpoint_status")),
        sf.get("endpoint_refusing") is True and sf.get("endpoint_status") in (status, None),
        ["last_error %r" % sf.get("last_error")])
    check("%s: daemon still running" % label, e.alive(), e.stderr_tail())
    e.expect_stop(label + " (held)")


def fixed(e, label):
    """The configuration fixed and the daemon started again: every record
    processed exactly once, nothing dead-lettered."""
    e.start()
    ok, t = e.wait_delivered(idle=12)
    info("%s: after the fix, delivered %s in %.1f s" % (label, ok, t))
    e.expect_stop(label + " (fixed)")
    no_dead_letters(e, label + ", after the fix")
    e.verify(label + " (fixed)")


@scenario()
def held_404(e):
    """A wrong path (nginx's 404): held, never dead-lettered, named; then
    the right path: everything processed once."""
    e.configure("/oempro/system/bounce_webhook?type=pmta")
    held(e, "held-404", 404)
    e.configure(PMTA)
    fixed(e, "held-404")


@scenario()
def held_plain_to_https(e):
    """http:// aimed at nginx's HTTPS port (400 The plain HTTP request was
    sent to HTTPS port): held, named; then https:// delivers all once."""
    e.configure(url="http://127.0.0.1:%d%s" % (e.nginx.https_port, PMTA))
    held(e, "held-plain-to-https", 400)
    e.configure(PMTA)
    fixed(e, "held-plain-to-https")


@scenario(proxies=True)
def held_407(e):
    """The authenticating proxy without credentials (407): held, named;
    then with user:pass@ in http_proxy, everything processed once."""
    e.secrets.append(e.auth_proxy.auth[1])
    e.configure(PMTA, scheme="http", proxy_env={"http_proxy": e.auth_proxy.url(creds=False)})
    held(e, "held-407", 407)
    e.configure(PMTA, scheme="http", proxy_env={"http_proxy": e.auth_proxy.url(creds=True)})
    fixed(e, "held-407")


def poison(e, label, n_bad, status, rule, scheme):
    """One event always answered `status` among ~300 (one event per
    request): dead-lettered with the status and its attempts; the others
    processed exactly once."""
    e.webhook.set_rules(**{rule: [rcpt(n_bad)]})
    e.configure(PMTA, scheme=scheme)
    e.start()
    write_spread(e, 300, steps=5)
    others = [n for n in e.sim.required() if n != n_bad]
    ok, t = e.wait_delivered(required=others, timeout=25, idle=12)
    info("%s: the other %d records processed %s in %.1f s" % (label, len(others), ok, t))
    poll_until(lambda: any(isinstance(x, dict) for x in e.dead_letters()), 10, 0.1)
    tries = sum(1 for r in e.webhook.requests() if rcpt(n_bad) in (r.get("rcpts") or []))
    info("%s: u%d sent %d times" % (label, n_bad, tries))
    dl = e.dead_letters()
    e.expect_stop(label)
    check("%s: dead-letter.ndjson holds one line (%d)" % (label, len(dl)), len(dl) == 1,
          ["%.300r" % (x,) for x in dl[:3]] + e.stderr_tail(4))
    mine = [x for x in dl if isinstance(x, dict) and isinstance(x.get("event"), dict)
            and x["event"].get("rcpt") == rcpt(n_bad)]
    if check("%s: the line is u%d's event" % (label, n_bad), len(mine) == 1):
        x = mine[0]
        check("%s: with \"status\":%d (%r)" % (label, status, x.get("status")),
              x.get("status") == status)
        check("%s: with \"attempts\":N, N >= 2 (%r)" % (label, x.get("attempts")),
              isinstance(x.get("attempts"), int) and x["attempts"] >= 2)
        check("%s: the event as the record (%s)" % (label, test_push.compare(n_bad, x["event"])),
              not test_push.compare(n_bad, x["event"]))
    e.verify(label, refused=[n_bad])


@scenario()
def poison_500(e):
    """One event a PHP fatal error answers 500, always (https, HTTP/2: the
    500 on one stream while the others succeed)."""
    poison(e, "poison-500", 37, 500, "fatal_rcpts", "https")


@scenario()
def poison_403(e):
    """One event a WAF-like rule refuses 403, always (plain http, HTTP/1.1
    kept alive through nginx)."""
    poison(e, "poison-403", 151, 403, "waf_rcpts", "http")


@scenario(children=8)
def split_timeout(e):
    """format batch, batch_max_records 200, timeout_s 2, PHP sleeping 3 s
    over bodies of more than 20 events: the arrays are split until they are
    answered in time; every record processed (repeats reported: PHP goes on
    after the client gave up), no dead letters."""
    e.webhook.set_rules(slow=(3, 20))
    e.configure(FLUENTD, output={"format": "batch", "batch_max_records": "200",
                                 "timeout_s": "2"})
    e.sim.write(300)  # before the start: the first body is a full 200
    e.start()
    t0 = time.monotonic()
    ok, t = e.wait_delivered(timeout=30)
    info("split-timeout: every record processed by PHP %s in %.1f s" % (ok, t))
    # PHP finishes the bodies the client gave up on: what counts is that the
    # daemon has its answers (status.json's "delivered", written every 2 s)
    n = len(e.sim.required())
    acked = poll_until(lambda: (e.status_file_json().get("delivered") or 0) >= n,
                       max(1.0, 30 - (time.monotonic() - t0)), 0.2)
    check("split-timeout: the daemon counts every record delivered (status.json delivered "
          "%s of %d, %.1f s)" % (e.status_file_json().get("delivered"), n,
                                 time.monotonic() - t0), bool(acked),
          ["last_error %r" % e.status_file_json().get("last_error")] + e.stderr_tail(4))
    e.expect_stop("split-timeout")
    reqs = e.webhook.requests()
    sizes = [r.get("n") for r in reqs]
    info("split-timeout: PHP received bodies of %s events (slept on %d)" % (
        sizes[:40], sum(1 for r in reqs if r.get("slept"))))
    check("split-timeout: a body of 200 events was sent (and outlasted timeout_s)",
          200 in sizes)
    check("split-timeout: bodies of at most 20 events answered (the arrays split)",
          any(r.get("n", 99) <= 20 and r.get("status") == 200 for r in reqs))
    no_dead_letters(e, "split-timeout")
    e.poll()
    dup = sum(c - 1 for c in e.acc.values() if c > 1)
    info("split-timeout: %d repeats over %d records (PHP finished bodies the client had "
         "given up on)" % (dup, len(e.acc)))
    e.verify("split-timeout", exact=False)


@scenario()
def batch_api_errorcount(e):
    """Oempro's batch API with ErrorCount > 0 for two rcpts: no request
    resent (each eventId received by PHP once), nothing dead-lettered,
    stderr says unprocessed=, pmtatail_backend_unprocessed_total grows."""
    key = "k-%s" % e.secret[4:]
    e.secrets.append(key)
    bad = [10, 20]
    e.webhook.set_rules(error_count_rcpts=[rcpt(n) for n in bad], api_key=key)
    e.configure(API, headers=[("Authorization", "Bearer " + key)], metrics=True)
    e.sim.write(300)
    e.start()
    others = [n for n in e.sim.required() if n not in bad]
    ok, t = e.wait_delivered(required=others, timeout=25)
    info("batch-api-errorcount: the others processed %s in %.1f s" % (ok, t))
    poll_until(lambda: (e.metric("pmtatail_backend_unprocessed_total") or 0) >= 2, 5, 0.1)
    unproc = e.metric("pmtatail_backend_unprocessed_total")
    e.expect_stop("batch-api-errorcount")
    reqs = e.webhook.requests()
    got = collections.Counter()
    for r in reqs:
        for x in r.get("rcpts") or []:
            got[rcpt_number(x)] += 1
    twice = sorted(n for n, c in got.items() if c > 1)
    info("batch-api-errorcount: %d requests, sizes %s, statuses %s" % (
        len(reqs), [r.get("n") for r in reqs][:12],
        dict(collections.Counter(r.get("status") for r in reqs))))
    check("batch-api-errorcount: PHP answered ErrorCount > 0 (%d entries not processed)" %
          sum(r.get("unprocessed") or 0 for r in reqs),
          any((r.get("unprocessed") or 0) > 0 for r in reqs))
    check("batch-api-errorcount: every record received by PHP (%d of %d)" % (
        sum(1 for n in e.sim.required() if got[n]), len(e.sim.required())),
        all(got[n] for n in e.sim.required()))
    check("batch-api-errorcount: no request resent: each eventId received once",
          not twice, ["received twice or more: u%s" % ranges(twice)[:300]])
    no_dead_letters(e, "batch-api-errorcount")
    said = e.said(r"\bunprocessed=\d+")
    check("batch-api-errorcount: stderr has a line with unprocessed=", bool(said),
          e.stderr_tail(4))
    check("batch-api-errorcount: pmtatail_backend_unprocessed_total grew to %s (>= 2)" % unproc,
          unproc is not None and unproc >= 2)
    e.verify("batch-api-errorcount", refused=bad)


# -------------------------------------------------------------- main


def main(argv):
    binary, rc = binary_arg(argv, __doc__)
    if binary is None:
        return rc
    test_push.BINARY = binary
    test_push.KEEP = KEEP
    test_push.SEED = SEED
    info("seed %d (PMTATAIL_REAL_SEED)" % SEED)
    missing = []
    for cands, pkg in ((["/usr/sbin/nginx", "nginx"], "nginx"),
                       (["/usr/sbin/php-fpm8.2", "/usr/sbin/php-fpm*"], "php-fpm"),
                       (["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy", "tinyproxy"], "tinyproxy"),
                       (["openssl"], "openssl")):
        try:
            find_binary(cands, pkg)
        except ServerMissing as ex:
            missing.append(str(ex))
    if not check("the real servers are installed (nginx, php-fpm, tinyproxy, openssl)",
                 not missing, missing):
        return finish()
    # "real-" in the directory names (test_push.Env names them pmtatail-push-NAME-)
    return run_scenarios(SCENARIOS, ONLY, lambda name, fn: RealEnv("real-" + name, **fn.env))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
