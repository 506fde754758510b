#!/usr/bin/python3
"""Real servers for pmtatail's delivery tests, started by the test itself:
nginx (TLS with HTTP/2, and plain HTTP) in front of php-fpm running an
Oempro-like bounce webhook written in PHP, and tinyproxy as a forward proxy
(without and with BasicAuth). Each runs as the Debian package's binary on
127.0.0.1 ports with its own configuration files in a temporary directory:
no system service, no systemd, nothing under /etc or /var touched.

    w = Webhook(dir)                  # the PHP script, its rules file, its logs
    fpm = PhpFpm(dir, w); fpm.start() # a pool on a unix socket in dir
    ng = Nginx(dir, fpm); ng.start()  # ng.https_url(path), ng.http_url(path)
    px = Tinyproxy(dir, auth=("user", "pass")); px.start()   # px.url(creds=True)
    w.set_rules(fatal_rcpts=[...], waf_rcpts=[...], slow=(3, 20),
                error_count_rcpts=[...], api_key="K")
    w.processed()      # events the webhook processed, in order (with repeats)
    w.requests()       # every request PHP answered: status, count, ids, headers
    ng.access_log()    # nginx's access log: protocol, status, uri, connection
    px.log_lines()     # tinyproxy's log
    ng.stop(); fpm.stop(); px.stop()

A missing server binary raises ServerMissing naming the Debian package
(scripts/deps.sh --test installs them): the tests fail, never skip.

The webhook answers as Oempro does: it reads the body (one JSON object or a
JSON array), appends each event it processes to processed.jsonl (the whole
event, with the endpoint and the php-fpm worker's pid), prints a PHP
notice before the JSON, then
  /system/bounce_webhook?type=pmta      {"Success":true,"ErrorCode":0}
  /system/bounce_webhook?type=fluentd   {"StatusCode":250,...}; 413 above
                                        fluentd_max_events (1000)
  /api/v1/process_pmta_log_file         {"Success":true,"ProcessedCount":n,
                                        "ErrorCount":m}, m the events whose
                                        rcpt is in error_count_rcpts (not
                                        processed); with api_key, a missing or
                                        wrong Bearer gets 200 {"Errors":[{"Code":1}]}
Rules (rules.json, read on every request; set_rules rewrites it atomically):
  fatal_rcpts   an event with such a rcpt ends the request with a PHP fatal
                error: HTTP 500 and the error text (the events before it in an
                array were processed, as in PHP)
  waf_rcpts     a body holding such a rcpt is answered 403 by a WAF-like
                rule before anything is processed
  slow          [S, N]: sleep S seconds when a body has more than N events,
                then process them (PHP goes on after the client gave up)
  error_count_rcpts, api_key, fluentd_max_events, notice (true)
Every request PHP answered is one line of requests.jsonl (written at the end
of the request): time, endpoint, SERVER_PROTOCOL, status, events, eventIds,
rcpts, Content-Type, User-Agent, Idempotency-Key, Content-Encoding, Via.

As a command: `realservers.py --serve DIR` starts all of them and prints the
URLs (Ctrl-C stops them), for trying things by hand with curl.

Standard library only.
"""

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


class ServerMissing(Exception):
    """A server's binary is not installed."""


class ServerFailed(Exception):
    """A server did not come up."""


def free_port(host="127.0.0.1"):
    """A port nothing listens on now."""
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def find_binary(candidates, package):
    """The first existing executable among candidates (glob patterns too); else
    ServerMissing naming the package."""
    for pat in candidates:
        for path in sorted(glob.glob(pat), reverse=True):
            if os.access(path, os.X_OK) and not os.path.isdir(path):
                return path
        found = shutil.which(pat) if "/" not in pat else None
        if found:
            return found
    raise ServerMissing("%s not found (looked for %s): install the Debian package %s "
                        "(scripts/deps.sh --test)" % (candidates[0], ", ".join(candidates),
                                                      package))


def _connectable(addr, family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect(addr)
        return True
    except OSError:
        return False
    finally:
        s.close()


def make_cert(tmp, name):
    """A self-signed certificate for 127.0.0.1 (cert, key) made with openssl (as
    test_push.make_cert)."""
    openssl = find_binary(["openssl"], "openssl")
    cert, key = os.path.join(tmp, name + ".pem"), os.path.join(tmp, name + ".key")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return cert, key


def read_jsonl(path):
    """The complete lines of a JSON-lines file, parsed (a line not yet ended by
    a newline is left out; a line that is not JSON becomes None)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return []
    out = []
    for line in data.split(b"\n")[:-1]:
        if not line.strip():
            continue
        try:
            out.append(json.loads(line.decode("utf-8", "replace")))
        except ValueError:
            out.append(None)
    return out


class JsonlTail:
    """Reads a JSON-lines file as it grows: new() gives the complete lines
    added since the last call, parsed (None for a line that is not JSON)."""

    def __init__(self, path):
        self.path = path
        self.pos = 0

    def new(self):
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.pos)
                data = fh.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.pos += end + 1
        out = []
        for line in data[:end].split(b"\n"):
            if line.strip():
                try:
                    out.append(json.loads(line.decode("utf-8", "replace")))
                except ValueError:
                    out.append(None)
        return out


class _Server:
    """A child process in its own process group, its output in a log file."""

    NAME = "server"

    def __init__(self, tmp):
        self.tmp = tmp
        self.proc = None
        self.out = None  # its stdout + stderr

    def _spawn(self, argv, out_name):
        self.out = os.path.join(self.tmp, out_name)
        with open(self.out, "ab") as oh:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=oh, stderr=oh,
                                         start_new_session=True)

    def _wait_ready(self, ready, timeout, logs):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                break
            if ready():
                return
            time.sleep(0.05)
        rc = self.proc.poll()
        self.stop()
        text = []
        for p in logs:
            try:
                with open(p, "rb") as fh:
                    text += fh.read().decode("utf-8", "replace").splitlines()[-8:]
            except OSError:
                pass
        raise ServerFailed("%s did not come up (%s): %s" % (
            self.NAME, "exit status %s" % rc if rc is not None else "not ready in %ds" % timeout,
            " | ".join(text)))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=5):
        """Signal the server's process group, wait, kill what is left."""
        p, self.proc = self.proc, None
        if p is None:
            return None
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        try:  # workers the master left behind
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if p.poll() is None:
            p.wait()
        return p.returncode


# ------------------------------------------------------------------ webhook

WEBHOOK_PHP = r"""<?php
// An Oempro-like bounce webhook for pmtatail's tests (tests/py/realservers.py).
$dir = __DIR__;
$t0 = microtime(true);
$rules = json_decode((string)@file_get_contents("$dir/rules.json"), true);
if (!is_array($rules)) $rules = [];
$uri = $_SERVER['REQUEST_URI'] ?? '';
$path = (string)parse_url($uri, PHP_URL_PATH);
$type = $_GET['type'] ?? '';
if (str_ends_with($path, '/api/v1/process_pmta_log_file')) $endpoint = 'api';
elseif ($type === 'fluentd') $endpoint = 'fluentd';
else $endpoint = 'pmta';

$raw = file_get_contents('php://input');
$enc = strtolower($_SERVER['HTTP_CONTENT_ENCODING'] ?? '');
if ($enc === 'gzip') {
    $d = @gzdecode($raw);
    $raw = $d === false ? '' : $d;
}
$body = json_decode($raw, true);
$events = null;
$is_array = false;
if (is_array($body)) {
    $is_array = array_is_list($body) && !($raw !== '' && ltrim($raw)[0] === '{');
    $events = $is_array ? $body : [$body];
}
$ids = [];
$rcpts = [];
foreach ($events ?? [] as $ev) {
    $ids[] = is_array($ev) ? ($ev['eventId'] ?? null) : null;
    $rcpts[] = is_array($ev) ? ($ev['rcpt'] ?? null) : null;
}
$req = [
    't' => $t0, 'pid' => getmypid(), 'method' => $_SERVER['REQUEST_METHOD'] ?? '',
    'uri' => $uri, 'endpoint' => $endpoint, 'proto' => $_SERVER['SERVER_PROTOCOL'] ?? '',
    'https' => $_SERVER['HTTPS'] ?? '', 'content_type' => $_SERVER['CONTENT_TYPE'] ?? '',
    'content_length' => $_SERVER['CONTENT_LENGTH'] ?? '',
    'user_agent' => $_SERVER['HTTP_USER_AGENT'] ?? '',
    'key' => $_SERVER['HTTP_IDEMPOTENCY_KEY'] ?? '', 'encoding' => $enc,
    'authorization' => isset($_SERVER['HTTP_AUTHORIZATION']),
    'via' => $_SERVER['HTTP_VIA'] ?? '', 'bytes' => strlen($raw), 'array' => $is_array,
    'n' => count($events ?? []), 'ids' => $ids, 'rcpts' => $rcpts,
    'processed' => 0, 'unprocessed' => 0, 'slept' => 0,
];

function jline($v) {
    return json_encode($v, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE) . "\n";
}

function answer($code, $text, $ctype = 'text/html; charset=UTF-8') {
    global $req, $dir;
    $req['status'] = $code;
    $req['t1'] = microtime(true);
    file_put_contents("$dir/requests.jsonl", jline($req), FILE_APPEND | LOCK_EX);
    http_response_code($code);
    header('Content-Type: ' . $ctype);
    echo $text;
    exit;
}

function notice() {
    global $rules;
    if (!($rules['notice'] ?? true)) return '';
    return "<br />\n<b>Notice</b>:  Undefined index: bounceCat in " .
        "<b>/var/www/oempro/system/includes/bounce_webhook.php</b> on line <b>112</b><br />\n";
}

if (($_SERVER['REQUEST_METHOD'] ?? '') !== 'POST')
    answer(405, "Method Not Allowed\n");
if ($events === null)
    answer(400, notice() . json_encode(['Success' => false, 'ErrorCode' => 1,
                                        'ErrorText' => 'Invalid JSON payload']));

$waf = $rules['waf_rcpts'] ?? [];
foreach ($rcpts as $r) {
    if ($r !== null && in_array($r, $waf, true))
        answer(403, "<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n" .
                    "<center><h1>403 Forbidden</h1></center>\r\n" .
                    "<hr><center>Request blocked by rule 949110 (inbound anomaly score " .
                    "exceeded)</center>\r\n</body>\r\n</html>\r\n");
}
if ($endpoint === 'api' && isset($rules['api_key']) &&
    ($_SERVER['HTTP_AUTHORIZATION'] ?? '') !== 'Bearer ' . $rules['api_key'])
    answer(200, json_encode(['Errors' => [['Code' => 1, 'Message' => 'Invalid AdminAPIKey']]]),
           'application/json');
if ($endpoint === 'fluentd' && count($events) > ($rules['fluentd_max_events'] ?? 1000))
    answer(413, json_encode(['StatusCode' => 413, 'Message' => 'too many events']),
           'application/json');

$slow = $rules['slow'] ?? null;
if (is_array($slow) && count($events) > $slow[1]) {
    usleep((int)($slow[0] * 1000000));
    $req['slept'] = $slow[0];
}

$fatal = $rules['fatal_rcpts'] ?? [];
$errc = $rules['error_count_rcpts'] ?? [];
foreach ($events as $ev) {
    $rcpt = is_array($ev) ? ($ev['rcpt'] ?? null) : null;
    if ($rcpt !== null && in_array($rcpt, $fatal, true))
        answer(500, "<br />\n<b>Fatal error</b>:  Uncaught TypeError: " .
                    "BounceProcessor::register(): Argument #2 (\$diag) must be of type string, " .
                    "null given in /var/www/oempro/system/classes/bounce_processor.php:88\n" .
                    "Stack trace:\n#0 {main}\n  thrown in " .
                    "<b>/var/www/oempro/system/classes/bounce_processor.php</b> on line " .
                    "<b>88</b><br />\n");
    if ($endpoint === 'api' && $rcpt !== null && in_array($rcpt, $errc, true)) {
        $req['unprocessed']++;
        continue;
    }
    file_put_contents("$dir/processed.jsonl", jline([
        'eventId' => is_array($ev) ? ($ev['eventId'] ?? null) : null, 'rcpt' => $rcpt,
        'endpoint' => $endpoint, 'pid' => getmypid(), 't' => microtime(true), 'event' => $ev,
    ]), FILE_APPEND | LOCK_EX);
    $req['processed']++;
}

if ($endpoint === 'fluentd')
    answer(200, notice() . json_encode(['StatusCode' => 250, 'Message' => 'Queued',
                                        'Count' => $req['processed']]));
if ($endpoint === 'api')
    answer(200, notice() . json_encode(['Success' => true,
                                        'ProcessedCount' => $req['processed'],
                                        'ErrorCount' => $req['unprocessed']]));
answer(200, notice() . '{"Success":true,"ErrorCode":0}');
"""


class Webhook:
    """The PHP webhook's files in dir/www: webhook.php, rules.json, and the
    logs it writes (processed.jsonl, requests.jsonl)."""

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "www")
        os.makedirs(self.dir, exist_ok=True)
        self.script = os.path.join(self.dir, "webhook.php")
        self.rules_file = os.path.join(self.dir, "rules.json")
        self.processed_file = os.path.join(self.dir, "processed.jsonl")
        self.requests_file = os.path.join(self.dir, "requests.jsonl")
        with open(self.script, "w") as fh:
            fh.write(WEBHOOK_PHP)
        self.set_rules()

    def set_rules(self, fatal_rcpts=(), waf_rcpts=(), slow=None, error_count_rcpts=(),
                  api_key=None, fluentd_max_events=1000, notice=True):
        """Rewrite rules.json (atomically: the next request reads the new one).
        slow: (seconds, more_than_n_events) or None."""
        rules = {"fatal_rcpts": list(fatal_rcpts), "waf_rcpts": list(waf_rcpts),
                 "slow": list(slow) if slow else None,
                 "error_count_rcpts": list(error_count_rcpts),
                 "fluentd_max_events": fluentd_max_events, "notice": bool(notice)}
        if api_key is not None:
            rules["api_key"] = api_key
        tmp = self.rules_file + ".new"
        with open(tmp, "w") as fh:
            json.dump(rules, fh)
        os.replace(tmp, self.rules_file)

    def processed(self):
        """Events processed, in order, repeats included: dicts with eventId,
        rcpt, endpoint, pid, t and the whole event."""
        return [x for x in read_jsonl(self.processed_file) if x is not None]

    def requests(self):
        """Every request PHP answered, in the order they ended."""
        return [x for x in read_jsonl(self.requests_file) if x is not None]

    def clear(self):
        """Forget what was processed and received (between phases)."""
        for p in (self.processed_file, self.requests_file):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


class PhpFpm(_Server):
    """php-fpm in the foreground (-F -y CONF, -R as root, -n: no php.ini), one
    static pool on a unix socket in the temporary directory."""

    NAME = "php-fpm"

    def __init__(self, tmp, webhook, children=4):
        super().__init__(tmp)
        self.webhook = webhook
        self.children = children
        self.binary = find_binary(["/usr/sbin/php-fpm8.2", "/usr/sbin/php-fpm*"], "php-fpm")
        self.socket = os.path.join(tmp, "php-fpm.sock")
        self.conf = os.path.join(tmp, "php-fpm.conf")
        self.log = os.path.join(tmp, "php-fpm.log")

    def start(self, timeout=10):
        root = os.geteuid() == 0
        with open(self.conf, "w") as fh:
            fh.write("[global]\npid = %s\nerror_log = %s\ndaemonize = no\n"
                     "log_level = notice\n\n" % (os.path.join(self.tmp, "php-fpm.pid"), self.log))
            fh.write("[webhook]\n")
            if root:
                fh.write("user = root\ngroup = root\n")
            fh.write("listen = %s\nlisten.mode = 0600\n" % self.socket)
            fh.write("pm = static\npm.max_children = %d\n" % self.children)
            fh.write("catch_workers_output = yes\nclear_env = yes\n"
                     "php_admin_flag[display_errors] = off\n"
                     "php_admin_flag[log_errors] = on\n"
                     "php_admin_value[error_log] = %s\n"
                     "php_admin_value[max_execution_time] = 0\n"
                     "php_admin_value[post_max_size] = 64M\n"
                     "php_admin_value[memory_limit] = 256M\n"
                     % os.path.join(self.tmp, "php-errors.log"))
        try:
            os.unlink(self.socket)
        except FileNotFoundError:
            pass
        argv = [self.binary, "-n", "-F", "-y", self.conf] + (["-R"] if root else [])
        self._spawn(argv, "php-fpm.out")
        self._wait_ready(lambda: os.path.exists(self.socket)
                         and _connectable(self.socket, socket.AF_UNIX), timeout,
                         [self.out, self.log])
        return self

    def stop(self, sig=signal.SIGTERM, timeout=5):
        return super().stop(sig, timeout)

    def errors(self):
        """PHP's own error log (warnings and fatal errors of the script)."""
        try:
            with open(os.path.join(self.tmp, "php-errors.log"), "rb") as fh:
                return fh.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return []


NGINX_LOG_FORMAT = (
    '{"t":"$msec","proto":"$server_protocol","status":"$status","method":"$request_method",'
    '"uri":"$request_uri","port":"$server_port","scheme":"$scheme","conn":"$connection",'
    '"conn_requests":"$connection_requests","request_length":"$request_length",'
    '"bytes_sent":"$body_bytes_sent","request_time":"$request_time",'
    '"upstream_time":"$upstream_response_time","user_agent":"$http_user_agent",'
    '"via":"$http_via","ssl_protocol":"$ssl_protocol"}')


class Nginx(_Server):
    """nginx in the foreground with a configuration of its own: one server
    listening with TLS and HTTP/2 (`listen P ssl http2`, a self-signed
    certificate) and in plain HTTP on another port, keepalive_requests and
    keepalive_timeout low, the webhook's two paths passed to php-fpm, anything
    else nginx's own 404; an access log of JSON lines with $server_protocol
    and $status."""

    NAME = "nginx"

    def __init__(self, tmp, fpm, keepalive_requests=50, keepalive_timeout="5s",
                 client_max_body_size="8m"):
        super().__init__(tmp)
        self.fpm = fpm
        self.binary = find_binary(["/usr/sbin/nginx", "nginx"], "nginx")
        self.prefix = os.path.join(tmp, "nginx")
        self.conf = os.path.join(self.prefix, "nginx.conf")
        self.access = os.path.join(self.prefix, "access.log")
        self.error_log = os.path.join(self.prefix, "error.log")
        self.https_port = free_port()
        self.http_port = free_port()
        self.keepalive_requests = keepalive_requests
        self.keepalive_timeout = keepalive_timeout
        self.client_max_body_size = client_max_body_size
        self.cert = self.key = None

    def https_url(self, path):
        return "https://127.0.0.1:%d%s" % (self.https_port, path)

    def http_url(self, path):
        return "http://127.0.0.1:%d%s" % (self.http_port, path)

    def start(self, timeout=10):
        os.makedirs(os.path.join(self.prefix, "temp"), exist_ok=True)
        if self.cert is None:
            self.cert, self.key = make_cert(self.prefix, "nginx")
        fcgi = "".join("            fastcgi_param %s %s;\n" % kv for kv in [
            ("SCRIPT_FILENAME", self.fpm.webhook.script), ("SCRIPT_NAME", "/webhook.php"),
            ("REQUEST_METHOD", "$request_method"), ("CONTENT_TYPE", "$content_type"),
            ("CONTENT_LENGTH", "$content_length"), ("QUERY_STRING", "$query_string"),
            ("REQUEST_URI", "$request_uri"), ("DOCUMENT_URI", "$document_uri"),
            ("SERVER_PROTOCOL", "$server_protocol"), ("REQUEST_SCHEME", "$scheme"),
            ("HTTPS", "$https if_not_empty"), ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("REMOTE_ADDR", "$remote_addr"), ("SERVER_ADDR", "$server_addr"),
            ("SERVER_PORT", "$server_port"), ("SERVER_NAME", "$server_name")])
        temp = os.path.join(self.prefix, "temp")
        with open(self.conf, "w") as fh:
            fh.write("daemon off;\nmaster_process on;\nworker_processes 1;\n")
            if os.geteuid() == 0:
                fh.write("user root root;\n")
            fh.write("pid %s;\nerror_log %s info;\n" % (
                os.path.join(self.prefix, "nginx.pid"), self.error_log))
            fh.write("events { worker_connections 512; }\n")
            fh.write("http {\n")
            fh.write("    log_format rs escape=json '%s';\n" % NGINX_LOG_FORMAT)
            fh.write("    access_log %s rs;\n" % self.access)
            for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
                fh.write("    %s_temp_path %s/%s;\n" % (t, temp, t))
            fh.write("    default_type application/octet-stream;\n"
                     "    keepalive_requests %d;\n    keepalive_timeout %s;\n"
                     "    client_max_body_size %s;\n    server_tokens on;\n" % (
                         self.keepalive_requests, self.keepalive_timeout,
                         self.client_max_body_size))
            fh.write("    server {\n"
                     "        listen 127.0.0.1:%d ssl http2;\n"
                     "        listen 127.0.0.1:%d;\n"
                     "        server_name localhost;\n"
                     "        ssl_certificate %s;\n        ssl_certificate_key %s;\n"
                     "        ssl_protocols TLSv1.2 TLSv1.3;\n"
                     "        root %s;\n" % (self.https_port, self.http_port, self.cert,
                                             self.key, self.prefix + "/html"))
            for loc in ("/system/bounce_webhook", "/api/v1/process_pmta_log_file"):
                fh.write("        location = %s {\n"
                         "            fastcgi_pass unix:%s;\n%s        }\n" % (
                             loc, self.fpm.socket, fcgi))
            fh.write("    }\n}\n")
        os.makedirs(os.path.join(self.prefix, "html"), exist_ok=True)
        argv = [self.binary, "-p", self.prefix + "/", "-e", self.error_log, "-c", self.conf]
        self._spawn(argv, "nginx.out")
        self._wait_ready(lambda: _connectable(("127.0.0.1", self.https_port))
                         and _connectable(("127.0.0.1", self.http_port)), timeout,
                         [self.out, self.error_log])
        return self

    def stop(self, sig=signal.SIGTERM, timeout=5):
        return super().stop(sig, timeout)

    def access_log(self):
        """The access log's entries (dicts; status and counts as strings, as
        nginx writes them)."""
        return [x for x in read_jsonl(self.access) if x is not None]

    def errors(self):
        try:
            with open(self.error_log, "rb") as fh:
                return fh.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return []


class Tinyproxy(_Server):
    """tinyproxy in the foreground (-d -c CONF), listening on 127.0.0.1,
    allowing 127.0.0.1 only, with BasicAuth when auth=(user, password)."""

    NAME = "tinyproxy"

    def __init__(self, tmp, auth=None, name="tinyproxy"):
        super().__init__(tmp)
        self.NAME = name
        self.binary = find_binary(["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy", "tinyproxy"],
                                  "tinyproxy")
        self.auth = auth
        self.port = free_port()
        self.conf = os.path.join(tmp, name + ".conf")
        self.log = os.path.join(tmp, name + ".log")

    def url(self, creds=True):
        """The proxy's URL for http_proxy, with user:pass@ when it has auth and
        creds is true."""
        if self.auth and creds:
            return "http://%s:%s@127.0.0.1:%d" % (self.auth[0], self.auth[1], self.port)
        return "http://127.0.0.1:%d" % self.port

    def start(self, timeout=10):
        with open(self.conf, "w") as fh:
            if os.geteuid() == 0:
                fh.write("User root\nGroup root\n")
            fh.write("Port %d\nListen 127.0.0.1\nTimeout 120\n" % self.port)
            fh.write('LogFile "%s"\nLogLevel Info\nPidFile "%s"\n' % (
                self.log, os.path.join(self.tmp, self.NAME + ".pid")))
            fh.write("MaxClients 100\nAllow 127.0.0.1\nViaProxyName \"%s\"\n" % self.NAME)
            if self.auth:
                fh.write("BasicAuth %s %s\n" % self.auth)
        self._spawn([self.binary, "-d", "-c", self.conf], self.NAME + ".out")
        self._wait_ready(lambda: _connectable(("127.0.0.1", self.port)), timeout,
                         [self.out, self.log])
        return self

    def log_lines(self):
        try:
            with open(self.log, "rb") as fh:
                return fh.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return []


class Servers:
    """The webhook, php-fpm, nginx and (on demand) the two proxies in one
    temporary directory; stop() stops whatever was started."""

    def __init__(self, tmp, children=4, proxies=False, auth=("pmtauser", "pmtapass")):
        self.tmp = tmp
        self.webhook = Webhook(tmp)
        self.fpm = PhpFpm(tmp, self.webhook, children=children)
        self.nginx = Nginx(tmp, self.fpm)
        self.proxy = Tinyproxy(tmp, name="tinyproxy") if proxies else None
        self.auth_proxy = Tinyproxy(tmp, auth=auth, name="tinyproxy-auth") if proxies else None

    def start(self):
        try:
            self.fpm.start()
            self.nginx.start()
            for p in (self.proxy, self.auth_proxy):
                if p is not None:
                    p.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        for s in (self.auth_proxy, self.proxy, self.nginx, self.fpm):
            if s is not None:
                s.stop()


def main(argv):
    if len(argv) == 3 and argv[1] == "--serve":
        tmp = argv[2]
    elif len(argv) == 2 and argv[1] == "--serve":
        tmp = tempfile.mkdtemp(prefix="pmtatail-realservers-")
    else:
        print(__doc__.split("\n\n")[0])
        print("usage: realservers.py --serve [DIR]")
        return 2
    os.makedirs(tmp, exist_ok=True)
    def _stop(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    s = Servers(tmp, proxies=True).start()
    print("directory   %s" % tmp)
    print("https (h2)  %s" % s.nginx.https_url("/system/bounce_webhook?type=pmta"))
    print("http        %s" % s.nginx.http_url("/system/bounce_webhook?type=pmta"))
    print("proxy       %s" % s.proxy.url())
    print("auth proxy  %s" % s.auth_proxy.url())
    print("rules       %s" % s.webhook.rules_file, flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        s.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
