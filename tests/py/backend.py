#!/usr/bin/python3
"""A fake Oempro (Octeth) bounce webhook on 127.0.0.1, for pmtatail's tests.

As a module (the test drives it in-process):

    b = Backend()                  # port 0: any free port (or Backend(port=P))
    b.start()                      # b.url("/system/bounce_webhook?type=pmta")
    b.script({"status": 503, "headers": {"Retry-After": "2"}}, {"action": "drop"})
    b.refuse("rcpt", {"u5@example.com"}, status=422)
    b.require_header("X-Octeth-Signature", "s3cret")
    b.set_delay_ms(200); b.set_max_body(32768)
    b.requests()                   # every request: Request objects
    b.accepted_counts("rcpt")      # Counter of accepted events by a field
    b.stop(); b.start()            # down (connection refused) and up again, same port

As a command (for benchmarks, or other processes):

    backend.py [--host 127.0.0.1] [--port 0] [--print-port] [--delay-ms N]
               [--max-body N] [--require-header 'Name: value'] [--keep-bodies]
    backend.py --selftest

    POST /__control  a JSON object, every key optional, applied in this order:
        {"reset": true,                      forget requests, stats, rules and script
         "clear": true,                      forget requests and stats only
         "default": {answer},                the answer when nothing else applies
         "script": [{answer}, ...],          replace the queue of scripted answers
         "append": [{answer}, ...],          add to it
         "refuse": {"field": "rcpt", "values": [...], "status": 422, "body": "..."} | null,
         "require_header": {"name": "...", "value": "..."} | null,
         "delay_ms": N,                      fixed delay before every answer
         "max_body": N | null,               413 for (raw) bodies over N bytes
         "release": true}                    let hung requests go (they get closed)
    GET /__stats     counters (JSON): requests, by status, events accepted, distinct
                     events accepted, duplicates, in flight, max in flight, bytes...
    GET /__requests?since=K
                     request summaries from number K on (no bodies)
    GET /__accepted?field=rcpt
                     {value: times accepted} over accepted events

An answer: {"status": 200, "body": "..." or a JSON value, "headers": {...},
            "delay_ms": 0, "action": "answer" | "drop" | "reset" | "hang"}
  drop   close the connection without answering (after reading the request)
  reset  the same with a TCP RST (SO_LINGER 0)
  hang   never answer; the connection is closed when the client gives up (or at
         release()/stop())
  raw    send the body as it is, no status line or header of ours, then close
How an answer is framed ("framing"): "length" (Content-Length, the default),
"chunked" (small chunks, a chunk extension, a trailer), "close" (no length:
the body ends with the connection), "http10" (an HTTP/1.0 answer, then
close); "interim": true sends a "100 Continue" before it.
Backend(tls=(CERT, KEY)) listens with TLS (url() says https); set_idle_close(S)
closes a kept-alive connection idle for S seconds, as Apache's KeepAliveTimeout.

Precedence for each webhook request: a scripted answer (the queue is consumed
one per request, whatever the request), else a missing/wrong required header
(401), else a body over max_body (413), else a refusal rule matching any event
of the body (the whole request gets its status, like a strict backend), else
the default (200 {"Success":true}). The fixed delay applies to every answer.

Oempro's other endpoints, by the request's path:
  .../system/bounce_webhook?type=fluentd  arrays; more than fluentd_max_events
      (1000) events: 413; success is 200 {"StatusCode": 250, ...}; a 2xx
      whose StatusCode is another is not an acceptance
  .../api/v1/process_pmta_log_file        with set_api_key(K): a missing or
      wrong "Authorization: Bearer K" gets 200 {"Errors": [{"Code": 1, ...}]};
      else 200 {"Success": true, "ProcessedCount": n, "ErrorCount": m}, the m
      events matching the refusal rule refused, the others accepted
The JSON answer is found as a PHP-proof client finds it (answer_object): after
a BOM and text before it, trailing output ignored.
A body that is not JSON (after gunzip when Content-Encoding: gzip) gets 400.

An event is accepted when its request's answer was 2xx and the answer body is
not a JSON object with "Success": false.

Every request is recorded (Request): arrival and answer times (monotonic),
method, path, headers (case-insensitive), raw body, decoded body, parsed JSON,
the events, the answer given, the connection it came on. Thread-safe.
Standard library only.
"""

import argparse
import collections
import gzip
import http.client
import http.server
import json
import os
import select
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse

CONTROL_PATHS = ("/__control", "/__stats", "/__requests", "/__accepted")
DEFAULT_ANSWER = {"status": 200, "body": '{"Success":true}', "headers": {}, "delay_ms": 0,
                  "action": "answer"}
HANG_MAX_S = 600.0


def _answer(spec):
    """A normalised answer dict from a partial one (or a bare status)."""
    if isinstance(spec, int):
        spec = {"status": spec}
    a = dict(DEFAULT_ANSWER)
    a["headers"] = {}
    a.update(spec or {})
    if "body" not in (spec or {}):
        st = a["status"]
        a["body"] = ('{"Success":true}' if 200 <= st < 300 else
                     json.dumps({"Success": False, "ErrorCode": st,
                                 "ErrorText": http.client.responses.get(st, "error")}))
    body = a["body"]
    if not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    a["body"] = body
    a["headers"] = dict(a.get("headers") or {})
    if a.get("framing", "length") not in ("length", "chunked", "close", "http10"):
        raise ValueError("unknown framing %r" % a["framing"])
    if a["action"] not in ("answer", "drop", "reset", "hang", "raw"):
        raise ValueError("unknown action %r" % a["action"])
    return a


OEMPRO_KEYS = ("Success", "StatusCode", "ErrorCount", "Errors", "ProcessedCount")


def answer_object(body):
    """The JSON object a PHP answer carries, as a careful client finds it: after
    a BOM and any text before it, the first object with one of Oempro's keys,
    else the last object; None when there is none (or it was cut off)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if body.startswith("\ufeff"):
        body = body[1:]
    dec = json.JSONDecoder()
    last, pos = None, 0
    while True:
        i = body.find("{", pos)
        if i < 0:
            return last
        try:
            obj, end = dec.raw_decode(body, i)
        except ValueError:
            pos = i + 1
            continue
        if isinstance(obj, dict) and any(k in obj for k in OEMPRO_KEYS):
            return obj
        last, pos = obj, end


def is_fluentd(path):
    q = urllib.parse.urlsplit(path or "")
    return q.path.rstrip("/").endswith("/system/bounce_webhook") and \
        "fluentd" in urllib.parse.parse_qs(q.query).get("type", [])


def is_batch_api(path):
    return urllib.parse.urlsplit(path or "").path.rstrip("/").endswith(
        "/api/v1/process_pmta_log_file")


FLUENTD_OK = None  # set below, once _answer is defined


def answer_refuses(status, body, path=None):
    """True when an answer (status, body bytes) is not an acceptance (of the
    whole request: ErrorCount > 0 refuses some of it, see Request.refused)."""
    if not 200 <= status < 300:
        return True
    obj = answer_object(body)
    if not isinstance(obj, dict):
        if b'"Success"' in (body if isinstance(body, bytes) else body.encode()):
            # an object cut off: a "Success": false in it still counts
            import re
            return re.search(rb'"Success"\s*:\s*false', body if isinstance(body, bytes)
                             else body.encode()) is not None
        return False
    if obj.get("Success") is False or obj.get("Errors"):
        return True
    if is_fluentd(path) and "StatusCode" in obj and obj["StatusCode"] not in (250, "250"):
        return True
    return False


FLUENTD_OK = _answer({"status": 200, "body": {"StatusCode": 250, "Message": "queued"}})


class Request:
    """One webhook request as the backend saw it."""

    __slots__ = ("n", "conn", "t0", "t1", "method", "path", "headers", "raw", "body",
                 "json", "events", "decode_error", "status", "action", "answer",
                 "accepted", "reason", "client_gone", "refused", "recorded")

    def __init__(self):
        self.n = 0
        self.conn = 0            # connection number (keep-alive: several requests share one)
        self.t0 = self.t1 = None  # monotonic: request complete / answered (or closed)
        self.method = self.path = None
        self.headers = None      # http.client.HTTPMessage: .get() is case-insensitive
        self.raw = b""           # the body as sent
        self.body = b""          # gunzipped when Content-Encoding: gzip
        self.json = None
        self.events = []         # the event objects of the body
        self.decode_error = None
        self.status = None       # None: no answer (drop, reset, hang)
        self.action = None
        self.answer = b""
        self.accepted = False
        self.reason = None       # "script", "auth", "too-big", "refuse", "default", "bad-json"
        self.client_gone = None  # for hang: the client closed it (True) or release/stop
        self.refused = set()     # batch API: indexes of events refused (ErrorCount)
        self.recorded = False    # its outcome counted (before its answer is sent)

    def header(self, name, default=None):
        return self.headers.get(name, default) if self.headers is not None else default

    def summary(self):
        return {"n": self.n, "conn": self.conn, "t0": self.t0, "t1": self.t1,
                "method": self.method, "path": self.path,
                "headers": dict(self.headers.items()) if self.headers is not None else {},
                "bytes": len(self.raw), "events": len(self.events),
                "event_ids": [e.get("eventId") for e in self.events if isinstance(e, dict)],
                "decode_error": self.decode_error, "status": self.status,
                "action": self.action, "answer": self.answer[:200].decode("utf-8", "replace"),
                "accepted": self.accepted, "reason": self.reason}

    def __repr__(self):
        return "<Request #%d %s %s %s %d events -> %s>" % (
            self.n, self.method, self.path, self.reason, len(self.events),
            self.status if self.status is not None else self.action)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # a client that gives up on an answer (oversized, hung) is a test case
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-oempro/1"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = None

    def log_message(self, fmt, *args):  # quiet
        pass

    def setup(self):
        # an idle kept-alive connection is closed after this (None: never)
        self.timeout = self.server.backend.idle_close_s
        super().setup()
        self.backend = self.server.backend
        self.conn_id = self.backend._conn_opened(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.backend._conn_closed(self.connection)

    # -- reading

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            parts = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("eof in chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(65537)
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        if len(data) != length:
            raise ConnectionError("eof in body")
        return data

    # -- answering

    def _send(self, status, body, headers=None, close=False, framing="length", interim=False):
        reason = http.client.responses.get(status, "Status")
        out = ["HTTP/%s %d %s" % ("1.0" if framing == "http10" else "1.1", status, reason),
               "Server: fake-oempro/1"]
        if framing == "chunked":
            out.append("Transfer-Encoding: chunked")
        elif framing == "close":
            close = True
        else:
            out.append("Content-Length: %d" % len(body))
        if framing == "http10":
            close = True
        has_ct = False
        for k, v in (headers or {}).items():
            out.append("%s: %s" % (k, v))
            has_ct = has_ct or k.lower() == "content-type"
        if not has_ct:
            out.append("Content-Type: application/json")
        if close:
            out.append("Connection: close")
            self.close_connection = True
        if framing == "chunked":
            chunks = [body[i:i + 7] for i in range(0, len(body), 7)]
            body = b"".join(b"%x%s\r\n%s\r\n" % (len(c), b";ext=1" if k == 1 else b"", c)
                            for k, c in enumerate(chunks)) + b"0\r\nX-Trailer: t\r\n\r\n"
        data = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body
        if interim:
            data = b"HTTP/1.1 100 Continue\r\n\r\n" + data
        self.wfile.write(data)
        try:
            self.wfile.flush()
        except AttributeError:
            pass

    def _control_json(self, obj, status=200):
        self._send(status, json.dumps(obj).encode())

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        if u.path == "/__stats":
            return self._control_json(self.backend.stats())
        if u.path == "/__requests":
            since = int(q.get("since", ["0"])[0])
            return self._control_json([r.summary() for r in self.backend.requests(since)])
        if u.path == "/__accepted":
            field = q.get("field", ["eventId"])[0]
            return self._control_json(dict(self.backend.accepted_counts(field)))
        self._send(405, b'{"Success":false,"ErrorText":"POST only"}')

    def do_POST(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path in CONTROL_PATHS:
            try:
                body = self._read_body()
            except (ConnectionError, ValueError):
                self.close_connection = True
                return
            if u.path != "/__control":
                return self._send(405, b"{}")
            try:
                self.backend.control(json.loads(body or b"{}"))
            except (ValueError, TypeError, KeyError) as e:
                return self._control_json({"ok": False, "error": str(e)}, 400)
            return self._control_json({"ok": True})
        self._webhook()

    def do_PUT(self):
        self._webhook()

    def _webhook(self):
        b = self.backend
        req = Request()
        req.method = self.command
        req.path = self.path
        req.headers = self.headers
        req.conn = self.conn_id
        try:
            req.raw = self._read_body()
        except (ConnectionError, ValueError, OSError):
            self.close_connection = True
            return
        req.t0 = time.monotonic()
        b._decode(req)
        ans = b._decide(req)  # registers req, counts it in flight
        try:
            delay = (ans["delay_ms"] + b.delay_ms) / 1000.0
            if delay > 0:
                time.sleep(delay)
            act = ans["action"]
            if act == "answer":
                # counted before the client can read the answer: what a
                # client saw acknowledged is in accepted_events() once it
                # has acted on it (exited, logged, saved its offsets)
                b._record(req)
                try:
                    self._send(ans["status"], ans["body"], ans["headers"],
                               close=bool(b._stopping.is_set()),
                               framing=ans.get("framing", "length"),
                               interim=bool(ans.get("interim")))
                except OSError:
                    self.close_connection = True
            elif act == "raw":
                self.close_connection = True
                try:
                    self.wfile.write(ans["body"])
                    self.wfile.flush()
                except OSError:
                    pass
            elif act == "drop":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            elif act == "reset":
                self.close_connection = True
                try:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                except OSError:
                    pass
            elif act == "hang":
                req.client_gone = self._hang()
                self.close_connection = True
        finally:
            b._done(req)

    def _hang(self):
        """Wait without answering until the client closes the connection
        (True) or the backend releases/stops hung requests (False)."""
        b = self.backend
        gen = b._release_gen
        end = time.monotonic() + HANG_MAX_S
        sock = self.connection
        while time.monotonic() < end:
            if b._stopping.is_set() or b._release_gen != gen:
                return False
            try:
                r, _, _ = select.select([sock], [], [], 0.05)
            except (OSError, ValueError):
                return True
            if r:
                try:
                    data = sock.recv(65536, socket.MSG_PEEK)
                except OSError:
                    return True
                if not data:
                    return True
                # The client sent more (a pipelined request?): keep hanging.
                time.sleep(0.05)
        return False


class Backend:
    """The fake backend. See the module documentation."""

    def __init__(self, host="127.0.0.1", port=0, keep_bodies=True, delay_ms=0, tls=None):
        self.tls = tls
        self.idle_close_s = None
        self.host = host
        self.port = port
        self.keep_bodies = keep_bodies
        self.delay_ms = delay_ms
        self._lock = threading.Lock()
        self._server = None
        self._thread = None
        self._stopping = threading.Event()
        self._release_gen = 0
        self._conns = {}
        self._conn_seq = 0
        self._reset_rules()
        self._reset_records()

    # -- life

    @staticmethod
    def free_port(host="127.0.0.1"):
        """A port nothing listens on now (to configure a client before start)."""
        s = socket.socket()
        s.bind((host, 0))
        port = s.getsockname()[1]
        s.close()
        return port

    def start(self):
        """Listen (again) on host:port; port 0 picks one, kept for restarts."""
        if self._server is not None:
            return self
        self._stopping.clear()
        last = None
        for _ in range(100):  # the port may still be held a moment after a stop
            try:
                srv = _Server((self.host, self.port), _Handler)
                break
            except OSError as e:
                last = e
                time.sleep(0.05)
        else:
            raise last
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        srv.backend = self
        self._server = srv
        self.port = srv.server_address[1]
        self._thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="backend-%d" % self.port, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop listening and close every open connection (clients now get
        connection refused)."""
        srv, self._server = self._server, None
        if srv is None:
            return
        self._stopping.set()
        srv.shutdown()
        srv.server_close()
        with self._lock:
            conns = list(self._conns.values())
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)
        self._thread = None
        # Handlers notice the closed sockets; wait a little for them.
        end = time.monotonic() + 2
        while time.monotonic() < end:
            with self._lock:
                if not self._conns:
                    break
            time.sleep(0.01)

    @property
    def running(self):
        return self._server is not None

    def url(self, path="/system/bounce_webhook?type=pmta"):
        return "%s://%s:%d%s" % ("https" if self.tls else "http", self.host, self.port, path)

    def set_idle_close(self, seconds):
        """Close kept-alive connections idle for this long (None: never), for
        connections opened from now on."""
        self.idle_close_s = seconds

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- behaviour

    def _reset_rules(self):
        self.default = _answer({})
        self._script = collections.deque()
        self._refuse = None          # (field, frozenset(values), answer)
        self._required = None        # (name, value)
        self.max_body = None
        self.delay_ms = getattr(self, "delay_ms", 0)
        self.fluentd_max_events = 1000   # BOUNCE_WEBHOOK_FLUENTD_MAX_EVENTS: 413 above
        self.api_key = None              # batch API: required "Authorization: Bearer KEY"

    def reset(self):
        """Forget rules, script, requests and statistics."""
        with self._lock:
            self._reset_rules()
            self.delay_ms = 0
            self._reset_records()

    def set_default(self, status=200, body=None, headers=None):
        spec = {"status": status, "headers": headers or {}}
        if body is not None:
            spec["body"] = body
        a = _answer(spec)
        with self._lock:
            self.default = a

    def script(self, *answers, replace=False):
        """Queue answers for the next requests (one each, in order)."""
        norm = [_answer(a) for a in answers]
        with self._lock:
            if replace:
                self._script.clear()
            self._script.extend(norm)

    def script_left(self):
        with self._lock:
            return len(self._script)

    def refuse(self, field, values, status=422, body=None, headers=None):
        """Refuse every request whose body holds an event with event[field]
        in values (None: no refusal rule)."""
        if field is None:
            with self._lock:
                self._refuse = None
            return
        spec = {"status": status, "headers": headers or {}}
        spec["body"] = body if body is not None else {
            "Success": False, "ErrorCode": status,
            "ErrorText": "refused: invalid bounce event"}
        a = _answer(spec)
        with self._lock:
            self._refuse = (field, frozenset(values), a)

    def require_header(self, name, value=None):
        """Answer 401 when header `name` is missing or not `value` (name None:
        no requirement)."""
        with self._lock:
            self._required = (name, value) if name else None

    def set_api_key(self, key):
        """The batch API's admin key (None: any); a wrong one gets Oempro's
        {"Errors": [{"Code": 1, ...}]} with HTTP 200."""
        with self._lock:
            self.api_key = key

    def set_delay_ms(self, ms):
        with self._lock:
            self.delay_ms = ms

    def set_max_body(self, nbytes):
        with self._lock:
            self.max_body = nbytes

    def release(self):
        """Let every hung request go (its connection is closed)."""
        with self._lock:
            self._release_gen += 1

    def control(self, obj):
        """Apply a /__control JSON object."""
        if obj.get("reset"):
            self.reset()
        if obj.get("clear"):
            self.clear()
        if "default" in obj:
            d = _answer(obj["default"])
            with self._lock:
                self.default = d
        if "script" in obj:
            self.script(*obj["script"], replace=True)
        if "append" in obj:
            self.script(*obj["append"])
        if "refuse" in obj:
            r = obj["refuse"]
            if r is None:
                self.refuse(None, ())
            else:
                self.refuse(r.get("field", "rcpt"), r.get("values", []), r.get("status", 422),
                            r.get("body"), r.get("headers"))
        if "require_header" in obj:
            r = obj["require_header"]
            self.require_header(r["name"], r.get("value")) if r else self.require_header(None)
        if "delay_ms" in obj:
            self.set_delay_ms(int(obj["delay_ms"] or 0))
        if "max_body" in obj:
            self.set_max_body(obj["max_body"])
        if obj.get("release"):
            self.release()

    # -- the request path

    def _conn_opened(self, sock):
        with self._lock:
            self._conn_seq += 1
            self._conns[self._conn_seq] = sock
            self.connections += 1
            return self._conn_seq

    def _conn_closed(self, sock):
        with self._lock:
            for k, v in list(self._conns.items()):
                if v is sock:
                    del self._conns[k]

    def _decode(self, req):
        body = req.raw
        enc = (req.header("Content-Encoding") or "").strip().lower()
        if enc == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError, ValueError) as e:
                req.decode_error = "gunzip: %s" % e
                return
        elif enc and enc != "identity":
            req.decode_error = "unknown Content-Encoding %r" % enc
            return
        req.body = body
        try:
            req.json = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            req.decode_error = "JSON: %s" % e
            return
        if isinstance(req.json, list):
            req.events = req.json
        elif isinstance(req.json, dict):
            req.events = [req.json]
        else:
            req.decode_error = "JSON body is neither an array nor an object"

    def _decide(self, req):
        """Choose the answer, register the request. Under the lock."""
        with self._lock:
            self._seq += 1
            req.n = self._seq
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.bytes_in += len(req.raw)
            if self._script:
                ans, req.reason = self._script.popleft(), "script"
            elif req.decode_error:
                ans, req.reason = _answer({"status": 400, "body": {
                    "Success": False, "ErrorCode": 400,
                    "ErrorText": "bad body: " + req.decode_error}}), "bad-json"
            elif self._required and req.header(self._required[0]) != self._required[1]:
                ans, req.reason = _answer({"status": 401, "body": {
                    "Success": False, "ErrorCode": 401,
                    "ErrorText": "Invalid signature"}}), "auth"
            elif self.max_body is not None and len(req.raw) > self.max_body:
                ans, req.reason = _answer(413), "too-big"
            elif is_fluentd(req.path) and len(req.events) > self.fluentd_max_events:
                ans, req.reason = _answer({"status": 413, "body": {
                    "StatusCode": 413, "Message": "too many events"}}), "too-many"
            elif is_batch_api(req.path) and self.api_key is not None and \
                    req.header("Authorization") != "Bearer " + self.api_key:
                ans, req.reason = _answer({"status": 200, "body": {"Errors": [
                    {"Code": 1, "Message": "Invalid AdminAPIKey"}]}}), "auth"
            elif is_batch_api(req.path):
                ref = self._refuse
                req.refused = {i for i, e in enumerate(req.events) if ref and isinstance(e, dict)
                               and e.get(ref[0]) in ref[1]}
                n = len(req.events)
                ans = _answer({"status": 200, "body": {
                    "Success": True, "ProcessedCount": n - len(req.refused),
                    "ErrorCount": len(req.refused)}})
                req.reason = "partial" if req.refused else "default"
            elif self._refuse and any(
                    isinstance(e, dict) and e.get(self._refuse[0]) in self._refuse[1]
                    for e in req.events):
                ans, req.reason = self._refuse[2], "refuse"
            elif is_fluentd(req.path) and self.default["body"] == DEFAULT_ANSWER["body"].encode():
                ans, req.reason = FLUENTD_OK, "default"
            else:
                ans, req.reason = self.default, "default"
            req.action = ans["action"]
            if req.action == "answer":
                req.status = ans["status"]
                req.answer = ans["body"]
                req.accepted = not answer_refuses(req.status, req.answer, req.path) and \
                    not req.decode_error
            if not self.keep_bodies:
                req.raw = req.body = b""
                req.json = None
            self._requests.append(req)
            return ans

    def _done(self, req):
        with self._lock:
            self._record_locked(req)
            self.in_flight -= 1

    def _record(self, req):
        with self._lock:
            self._record_locked(req)

    def _record_locked(self, req):
        """Count the request's outcome once: answered (then t1 is when the
        answer went out), or closed without an answer."""
        if req.recorded:
            return
        req.recorded = True
        req.t1 = time.monotonic()
        key = req.status if req.status is not None else req.action
        self.by_status[str(key)] += 1
        if req.accepted:
            self.accepted_requests += 1
            for i, e in enumerate(req.events):
                if not isinstance(e, dict) or i in req.refused:
                    continue
                self.events_accepted += 1
                eid = e.get("eventId")
                self._accepted_ids[eid] += 1
                if self.keep_bodies:
                    self._accepted.append(e)
                else:
                    self._accepted.append({"eventId": eid, "rcpt": e.get("rcpt")})
        if not self.keep_bodies:
            req.events = [{"eventId": e.get("eventId"), "rcpt": e.get("rcpt")}
                          for e in req.events if isinstance(e, dict)]

    # -- records

    def _reset_records(self):
        self._seq = 0
        self._requests = []
        self._accepted = []
        self._accepted_ids = collections.Counter()
        self.in_flight = getattr(self, "in_flight", 0)
        self.max_in_flight = 0
        self.by_status = collections.Counter()
        self.events_accepted = 0
        self.accepted_requests = 0
        self.bytes_in = 0
        self.connections = 0
        self._t_clear = time.monotonic()

    def clear(self):
        """Forget requests and statistics (rules stay)."""
        with self._lock:
            self._reset_records()

    def requests(self, since=0):
        """Requests numbered >= since (numbering starts at 1), in arrival order
        of their decision."""
        with self._lock:
            return [r for r in self._requests if r.n >= since]

    def accepted_events(self):
        with self._lock:
            return list(self._accepted)

    def accepted_from(self, k):
        """Accepted events from the k-th on (0-based), for incremental readers."""
        with self._lock:
            return self._accepted[k:]

    def accepted_counts(self, field="eventId"):
        """Counter of accepted events by event[field]."""
        with self._lock:
            if field == "eventId":
                return collections.Counter(self._accepted_ids)
            return collections.Counter(e.get(field) for e in self._accepted)

    def stats(self):
        with self._lock:
            distinct = len(self._accepted_ids)
            return {"requests": self._seq, "by_status": dict(self.by_status),
                    "accepted_requests": self.accepted_requests,
                    "events_accepted": self.events_accepted,
                    "distinct_events_accepted": distinct,
                    "duplicate_events_accepted": self.events_accepted - distinct,
                    "in_flight": self.in_flight, "max_in_flight": self.max_in_flight,
                    "bytes_in": self.bytes_in, "connections": self.connections,
                    "open_connections": len(self._conns), "script_left": len(self._script),
                    "seconds": time.monotonic() - self._t_clear}

    def wait(self, pred, timeout, step=0.02):
        """Poll pred(self) until true or timeout; its last value."""
        end = time.monotonic() + timeout
        while True:
            v = pred(self)
            if v or time.monotonic() >= end:
                return v
            time.sleep(step)


# ---------------------------------------------------------------- self-test

def selftest():
    import urllib.request
    import urllib.error
    fails = []

    def check(name, cond, detail=""):
        print(("ok - " if cond else "FAIL - ") + name + ("" if cond else ": " + str(detail)),
              flush=True)
        if not cond:
            fails.append(name)

    def post(url, obj, headers=None, gz=False, timeout=5):
        data = json.dumps(obj).encode()
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        if gz:
            data = gzip.compress(data)
            h["Content-Encoding"] = "gzip"
        rq = urllib.request.Request(url, data=data, headers=h, method="POST")
        try:
            with urllib.request.urlopen(rq, timeout=timeout) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    ev = lambda n: {"eventId": "id%d" % n, "rcpt": "u%d@example.com" % n}  # noqa: E731
    b = Backend().start()
    u = b.url()
    try:
        st, body, _ = post(u, [ev(1), ev(2)])
        check("default 200 Success true", st == 200 and json.loads(body) == {"Success": True},
              (st, body))
        st, _, _ = post(u, ev(3), gz=True)
        r = b.requests()[-1]
        check("gzip body decoded, single object is one event",
              st == 200 and r.events == [ev(3)] and r.header("content-encoding") == "gzip",
              (st, r.events))
        check("headers case-insensitive", r.header("CONTENT-TYPE") == "application/json")
        b.script({"status": 503, "headers": {"Retry-After": "2"}}, 429,
                 {"status": 200, "body": {"Success": False, "ErrorCode": 1, "ErrorText": "x"}})
        a1 = post(u, [ev(4)])
        a2 = post(u, [ev(4)])
        a3 = post(u, [ev(4)])
        check("script: 503 with Retry-After", a1[0] == 503 and a1[2].get("Retry-After") == "2",
              a1)
        check("script: 429", a2[0] == 429, a2)
        check("script: 200 Success false is not accepted",
              a3[0] == 200 and not b.requests()[-1].accepted)
        check("script consumed", b.script_left() == 0)
        post(u, [ev(4)])
        check("then default again, accepted", b.requests()[-1].accepted)

        b.refuse("rcpt", {"u7@example.com"}, status=422)
        st1, _, _ = post(u, [ev(6), ev(7), ev(8)])
        st2, _, _ = post(u, [ev(6), ev(8)])
        check("refusal rule: batch with a refused event gets 422, others 200",
              st1 == 422 and st2 == 200, (st1, st2))
        b.refuse(None, ())
        b.require_header("X-Octeth-Signature", "sig")
        s1 = post(u, [ev(9)])[0]
        s2 = post(u, [ev(9)], {"x-octeth-signature": "wrong"})[0]
        s3 = post(u, [ev(9)], {"X-Octeth-Signature": "sig"})[0]
        check("required header: 401 missing/wrong, 200 right", (s1, s2, s3) == (401, 401, 200),
              (s1, s2, s3))
        b.require_header(None)
        b.set_max_body(100)
        s1 = post(u, [ev(i) for i in range(10)])[0]
        s2 = post(u, [ev(10)])[0]
        check("max body: 413 over, 200 under", (s1, s2) == (413, 200), (s1, s2))
        b.set_max_body(None)

        # drop / reset / hang
        b.script({"action": "drop"})
        try:
            post(u, [ev(11)])
            dropped = False
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, OSError):
            dropped = True
        check("drop: no answer", dropped)
        b.script({"action": "reset"})
        try:
            post(u, [ev(12)])
            reset = False
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, OSError):
            reset = True
        check("reset: no answer", reset)
        b.script({"action": "hang"})
        t0 = time.monotonic()
        try:
            post(u, [ev(13)], timeout=0.5)
            hung = False
        except (urllib.error.URLError, OSError):
            hung = True
        ok = b.wait(lambda bb: bb.requests()[-1].t1 is not None, 2)
        check("hang: client times out, backend notices it gone (%.2f s)"
              % (time.monotonic() - t0), hung and ok and b.requests()[-1].client_gone)
        b.script({"action": "hang"})
        def hung_post():
            try:
                post(u, [ev(14)], timeout=5)
            except (urllib.error.URLError, http.client.HTTPException, OSError):
                pass
        th = threading.Thread(target=hung_post, daemon=True)
        th.start()
        b.wait(lambda bb: bb.stats()["in_flight"] == 1, 2)
        b.release()
        th.join(3)
        check("hang: release() lets it go", not th.is_alive() and
              b.requests()[-1].client_gone is False)

        # keep-alive and concurrency
        b.clear()
        conn = http.client.HTTPConnection("127.0.0.1", b.port, timeout=5)
        for i in range(5):
            conn.request("POST", "/x", body=json.dumps([ev(100 + i)]),
                         headers={"Content-Type": "application/json"})
            conn.getresponse().read()
        conn.close()
        check("keep-alive: 5 requests on one connection",
              len({r.conn for r in b.requests()}) == 1, [r.conn for r in b.requests()])
        b.clear()
        b.set_delay_ms(200)
        ths = [threading.Thread(target=post, args=(u, [ev(200 + i)])) for i in range(4)]
        t0 = time.monotonic()
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        el = time.monotonic() - t0
        check("delay 200 ms, 4 concurrent: max in flight 4, took %.2f s" % el,
              b.stats()["max_in_flight"] == 4 and 0.19 < el < 0.6, b.stats())
        b.set_delay_ms(0)

        # HTTP control from another process (here: over HTTP)
        cu = b.url("/__control")
        post(cu, {"reset": True, "script": [{"status": 500}], "delay_ms": 0})
        s1 = post(u, [ev(300)])[0]
        s2 = post(u, [ev(300)])[0]
        stats = json.loads(urllib.request.urlopen(b.url("/__stats")).read())
        check("control over HTTP: script, stats",
              (s1, s2) == (500, 200) and stats["requests"] == 2 and
              stats["by_status"] == {"500": 1, "200": 1}, (s1, s2, stats))
        acc = json.loads(urllib.request.urlopen(b.url("/__accepted?field=rcpt")).read())
        check("accepted over HTTP", acc == {"u300@example.com": 1}, acc)
        reqs = json.loads(urllib.request.urlopen(b.url("/__requests?since=2")).read())
        check("requests over HTTP", len(reqs) == 1 and reqs[0]["status"] == 200, reqs)
        post(cu, {"refuse": {"values": ["u1@example.com"], "status": 422},
                  "require_header": {"name": "X-A", "value": "b"}, "max_body": 10})
        check("control over HTTP: rules set", b._refuse is not None and
              b._required == ("X-A", "b") and b.max_body == 10)
        post(cu, {"refuse": None, "require_header": None, "max_body": None},
             {"X-A": "b"})
        check("control over HTTP: rules cleared", b._refuse is None and b._required is None
              and b.max_body is None)
        st, _, _ = post(u, "not json")
        check("a JSON string body is refused (400)", st == 400, st)

        # down and up on the same port
        port = b.port
        b.stop()
        try:
            post(u, [ev(400)], timeout=1)
            refused = False
        except (urllib.error.URLError, OSError):
            refused = True
        check("stopped: connection refused", refused)
        b.start()
        st = post(u, [ev(400)])[0]
        check("started again on the same port", b.port == port and st == 200)

        # throughput: keep-alive, 200-event batches
        b.clear()
        batch = json.dumps([dict(ev(i), dsnDiag="x" * 300) for i in range(200)]).encode()
        nconn, per = 4, 500

        def pound():
            c = http.client.HTTPConnection("127.0.0.1", b.port, timeout=10)
            for _ in range(per):
                c.request("POST", "/system/bounce_webhook", body=batch,
                          headers={"Content-Type": "application/json"})
                c.getresponse().read()
            c.close()
        ths = [threading.Thread(target=pound) for _ in range(nconn)]
        t0 = time.monotonic()
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        el = time.monotonic() - t0
        n = b.stats()["requests"]
        print("info - throughput: %d requests of %d bytes (200 events) in %.2f s: %.0f/s, "
              "%.0f events/s (client in the same process)" % (
                  n, len(batch), el, n / el, n * 200 / el))
        check("throughput over 500 batch requests/s", n / el > 500)
    finally:
        b.stop()
    print("%d failed" % len(fails))
    return 1 if fails else 0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--print-port", action="store_true", help="print the port on stdout")
    ap.add_argument("--delay-ms", type=int, default=0)
    ap.add_argument("--max-body", type=int)
    ap.add_argument("--require-header", help="'Name: value'")
    ap.add_argument("--keep-bodies", action="store_true",
                    help="keep every body (default: event ids and rcpt only)")
    ap.add_argument("--selftest", action="store_true")
    a = ap.parse_args(argv[1:])
    if a.selftest:
        return selftest()
    b = Backend(a.host, a.port, keep_bodies=a.keep_bodies, delay_ms=a.delay_ms)
    if a.max_body:
        b.set_max_body(a.max_body)
    if a.require_header:
        name, _, value = a.require_header.partition(":")
        b.require_header(name.strip(), value.strip())
    b.start()
    if a.print_port:
        print(b.port, flush=True)
    done = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: done.set())
    while not done.wait(1):
        pass
    b.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
