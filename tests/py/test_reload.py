#!/usr/bin/python3
"""`pmtatail reload` and exit status 78, with the real daemon.

    python3 tests/py/test_reload.py BINARY

The daemon (`run`) delivers to the real HTTP backend on 127.0.0.1
(tests/py/backend.py) answering slowly, so that records are in flight when
the reload comes:
  - reload after adding a source: exit 0 only once the new run is up (the
    same pid, status.json running with both sources, STATE_DIR/reloads
    moved); what was in flight is delivered, the new source too, every
    record exactly once;
  - a second reload right after: the generation moves again;
  - a configuration with a bad key, or without [output]: refused with exit
    78 and the problem named; the daemon goes on with the old configuration
    (same pid, still delivering);
  - no daemon: exit 1, said so; a daemon that dies during the reload is
    noticed (exit 1), not waited for until the timeout;
  - `run` with a configuration error (bad key, no [output], no [source]):
    exit 78; a bare SIGHUP bringing a configuration without [output]: 78.
"""

import json
import os
import signal
import subprocess
import sys
import time
import shutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from backend import Backend  # noqa: E402
from harness import Daemon  # noqa: E402

BINARY = os.path.abspath(sys.argv[1])
TIMEOUT = 60 if os.environ.get("PMTATAIL_SANITIZED") else 30
failures = 0


def check(name, ok, detail=""):
    global failures
    if ok:
        print(f"ok: {name}")
    else:
        failures += 1
        print(f"FAIL: {name}" + (f"\n{detail}" if detail else ""))
    return ok


def wait(cond, timeout=TIMEOUT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


class Env(Daemon):
    STDOUT_FILE = False

    def __init__(self, backend):
        super().__init__(BINARY, "reload", "pmtatail-reload-")
        self.dir = self.tmp
        self.log = os.path.join(self.dir, "log")
        os.makedirs(self.log)
        self.makedirs(self.logs)
        self.backend = backend
        self.n = 0

    def write_conf(self, sources=("bounces",), output=True, extra=""):
        text = ""
        for s in sources:
            text += f"[source {s}]\npath = {self.log}/{s}.csv\n\n"
        if output:
            text += (f"[output]\nurl = {self.backend.url()}\nformat = single\nlinger_ms = 50\n"
                     "retry_max_s = 1\n\n")
        text += f"[state]\ndir = {self.state}\n{extra}"
        with open(self.conf, "w") as f:
            f.write(text)

    def append(self, source, count, kind="b"):
        path = os.path.join(self.log, f"{source}.csv")
        new = not os.path.exists(path)
        with open(path, "a") as f:
            if new:
                f.write("type,timeLogged,orig,rcpt,dsnStatus\r\n")
            for _ in range(count):
                self.n += 1
                f.write(f"{kind},1700000000,a@sender.test,r{self.n}@{source}.test,5.1.1\r\n")

    def start(self):
        self.proc = None  # a run that exited is replaced
        super().start(wait_ready=False)
        return wait(lambda: self.status().get("state") == "running" and self.status().get("pid") == self.proc.pid)

    def status(self):
        try:
            return json.load(open(os.path.join(self.state, "status.json")))
        except (OSError, ValueError):
            return {}

    def mark(self):
        try:
            return open(os.path.join(self.state, "reloads")).read().strip()
        except OSError:
            return ""

    def cmd(self, *args, timeout=90):
        return self.command(*args, timeout=timeout)

    def delivered(self):
        return self.backend.accepted_counts("rcpt")

    def all_once(self):
        got = self.delivered()
        return all(got.get(f"r{i}@{s}", 0) == 1 for i, s in self.expected()) and \
            sum(got.values()) == self.n

    def expected(self):
        # every rcpt written, from the files themselves
        out = []
        for name in sorted(os.listdir(self.log)):
            for line in open(os.path.join(self.log, name)):
                parts = line.strip().split(",")
                if parts[0] != "type":
                    rcpt = parts[3]
                    out.append((rcpt.split("@")[0][1:], rcpt.split("@")[1]))
        return out

    def daemon_log(self):
        """The last run's stderr, its end."""
        return self.stderr(-1)[-3000:] if self.runs else ""

    def stop(self):
        return self.end_run(timeout=TIMEOUT)


def main():
    with Backend() as b:
        e = Env(b)
        try:
            return scenarios(e, b)
        finally:
            e.stop()
            shutil.rmtree(e.dir, ignore_errors=True)


def scenarios(e, b):
    # --- no daemon ----------------------------------------------------------
    e.write_conf()
    rc, out, err = e.cmd("reload")
    check("reload without a daemon: exit 1, says no daemon runs", rc == 1 and "no daemon is running" in err,
          f"exit {rc}: {err}")

    # --- reload while records are in flight ----------------------------------------
    e.append("bounces", 20)
    if not check("run: started (status.json running)", e.start(), e.daemon_log()):
        return 1
    check("run: the first records delivered once", wait(e.all_once), str(e.delivered()))
    pid = e.proc.pid
    # written at start only when the state directory already exists: a new
    # one holds no mark of an earlier process to be mistaken for ours
    check("run: no STATE_DIR/reloads yet (the state directory was new)", e.mark() == "", e.mark())

    b.set_delay_ms(300)  # each request answered slowly: the reload finds some in flight
    e.append("bounces", 10)
    time.sleep(0.4)
    e.write_conf(sources=("bounces", "fbl"))
    e.append("fbl", 5, kind="f")
    t0 = time.monotonic()
    rc, out, err = e.cmd("reload")
    took = time.monotonic() - t0
    st = e.status()
    check(f"reload: exit 0 ({took:.1f} s)", rc == 0, f"exit {rc}: {err}\n{e.daemon_log()}")
    check("reload: when it returns, the new run is up: same pid, status.json running with both sources",
          e.proc.poll() is None and st.get("pid") == pid and st.get("state") == "running"
          and len(st.get("sources", [])) == 2, json.dumps(st)[:600])
    check("reload: STATE_DIR/reloads moved to generation 1", e.mark() == f"pid={pid} reloads=1", e.mark())
    b.set_delay_ms(0)
    check("reload: what was in flight, the rest and the new source delivered, each exactly once",
          wait(e.all_once), f"{sorted(e.delivered().items())}\n{e.daemon_log()}")
    log = e.daemon_log()
    check("reload: the daemon logged the reload and the new run", "reloading configuration" in log
          and "running sources=2" in log, log)

    rc, out, err = e.cmd("reload")
    check("a second reload: exit 0, generation 2", rc == 0 and e.mark() == f"pid={pid} reloads=2",
          f"exit {rc}: {err} {e.mark()}")

    # --- refused configurations: 78, the daemon goes on ------------------------------------
    good = open(e.conf).read()
    with open(e.conf, "w") as f:
        f.write(good.replace("linger_ms = 50", "lingr_ms = 50"))
    rc, out, err = e.cmd("reload")
    check("reload with an unknown key: exit 78, the file and line named",
          rc == 78 and "pmtatail.conf:" in err and "lingr_ms" in err, f"exit {rc}: {err}")
    e.write_conf(sources=("bounces", "fbl"), output=False)
    rc, out, err = e.cmd("reload")
    check("reload without [output]: exit 78, says so", rc == 78 and "[output]" in err, f"exit {rc}: {err}")
    with open(e.conf, "w") as f:
        f.write(good)
    e.append("fbl", 3, kind="f")
    check("refused reloads: the daemon goes on (same pid, generation 2), still delivering",
          e.proc.poll() is None and e.mark() == f"pid={pid} reloads=2" and wait(e.all_once),
          f"{e.mark()} {e.daemon_log()}")

    # --- a bare SIGHUP with a configuration that cannot run: 78 -------------------------------
    e.write_conf(sources=("bounces", "fbl"), output=False)
    e.proc.send_signal(signal.SIGHUP)
    try:
        rc = e.proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        rc = None
    check("SIGHUP with a configuration without [output]: run exits 78", rc == 78, f"{rc} {e.daemon_log()}")

    # --- a daemon that dies during the reload is noticed ------------------------------------
    with open(e.conf, "w") as f:
        f.write(good)
    if check("run: started again", e.start(), e.daemon_log()):
        check("run again: the earlier process's mark replaced by this pid's generation 0",
              e.mark() == f"pid={e.proc.pid} reloads=0", e.mark())
        b.set_delay_ms(4000)
        e.append("bounces", 3)
        wait(lambda: b.stats()["in_flight"] > 0, 10)
        reload = subprocess.Popen([BINARY, "-c", e.conf, "reload"], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # killed once the SIGHUP is in (the old run drains the slow request):
        # a kill before the reload found the daemon would be another case
        wait(lambda: "reloading configuration" in e.stderr(-1), 20)
        e.proc.kill()
        e.proc.wait()
        try:
            out, err = reload.communicate(timeout=20)
            rc = reload.returncode
        except subprocess.TimeoutExpired:
            reload.kill()
            out, err = reload.communicate()
            rc = None
        check("reload: the daemon killed meanwhile: exit 1 at once, says it exited",
              rc == 1 and "exited" in err, f"exit {rc}: {err}")
        b.set_delay_ms(0)

    # --- run with configuration errors: 78 ------------------------------------------------------
    for label, text in (
            ("an unknown key", good.replace("linger_ms = 50", "lingr_ms = 50")),
            ("no [output]", "".join(good.split("[output]")[0]) + f"[state]\ndir = {e.state}\n"),
            ("no [source]", f"[output]\nurl = {b.url()}\n[state]\ndir = {e.state}\n")):
        path = os.path.join(e.dir, "bad.conf")
        with open(path, "w") as f:
            f.write(text)
        try:
            p = subprocess.run([BINARY, "-c", path, "run"], stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=TIMEOUT)
            check(f"run with {label}: exit 78 (EX_CONFIG), the reason on stderr", p.returncode == 78 and p.stderr,
                  f"exit {p.returncode}: {p.stderr}")
        except subprocess.TimeoutExpired:
            check(f"run with {label}: exit 78 (EX_CONFIG)", False, "it kept running")
    p = subprocess.run([BINARY, "-c", os.path.join(e.dir, "missing.conf"), "run"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=TIMEOUT)
    check("run with a configuration file that does not exist: exit 78", p.returncode == 78, p.stderr)

    print(f"{'FAILED' if failures else 'passed'}: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
