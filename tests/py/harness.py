"""Pieces the Python scenario tests share: the check tally, polling with a
timeout, readings from /proc, and the daemon runs in a temporary directory
(Daemon). Standard library only."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import traceback
import zlib


class _Tally:
    checks = 0
    failures = 0


TALLY = _Tally()


def check(name, cond, details=()):
    """Count and print one check; details are printed under a failure."""
    TALLY.checks += 1
    print(("ok - " if cond else "FAIL - ") + name, flush=True)
    if not cond:
        TALLY.failures += 1
        for d in details:
            print("    " + str(d), flush=True)
    return cond


def info(msg):
    print("info - " + msg, flush=True)


def _crc_line(line):
    """The JSON of a journal line "CRC32HEX JSON" if it checks, else None."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    try:
        want = int(line[:8], 16)
    except ValueError:
        return None
    if zlib.crc32(line[9:]) != want:
        return None
    try:
        return json.loads(line[9:])
    except ValueError:
        return None


def read_offsets(state_dir):
    """The offsets table as the daemon saved it, {"version": 1, "files":
    [...]}, read independently of it: offsets.json (the snapshot) and the
    saves in offsets.journal that follow it, up to a line that does not
    check. None when there is no offsets.json or it is not JSON."""
    try:
        with open(os.path.join(state_dir, "offsets.json"), "rb") as fh:
            snap = fh.read()
        doc = json.loads(snap)
    except (OSError, ValueError):
        return None
    files = doc.get("files") or []
    try:
        with open(os.path.join(state_dir, "offsets.journal"), "rb") as fh:
            lines = fh.read().split(b"\n")[:-1]
    except OSError:
        lines = []
    head = _crc_line(lines[0]) if lines else None
    if not head or head.get("base_size") != len(snap) or \
            head.get("base_hash") != "%08x" % zlib.crc32(snap):
        return doc  # no journal, or one already folded into this snapshot
    table = {i + 1: f for i, f in enumerate(files)}
    for line in lines[1:]:
        rec = _crc_line(line)
        if rec is None:
            break
        for op in rec.get("ops", []):
            k = op["k"]
            if op.get("d"):
                table.pop(k, None)
            elif "e" in op:
                table[k] = op["e"]
            else:
                e = dict(op["u"])
                old = table.get(k, {})
                for h in ("header", "header_hex"):
                    if h in old:
                        e[h] = old[h]
                table[k] = e
    doc["files"] = [table[k] for k in sorted(table)]
    return doc


def poll_until(pred, timeout, step=0.02):
    """Call pred() until it is true or timeout seconds pass; its last value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


def inotify_watches(pid):
    """Watches held by pid's inotify descriptors (None if it is gone)."""
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return None
    n = 0
    for fd in fds:
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) != "anon_inode:inotify":
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as fh:
                n += sum(1 for line in fh if line.startswith("inotify wd:"))
        except OSError:
            pass
    return n


def finish():
    """Print the closing count; the exit status for it."""
    print("%d checks, %d failed" % (TALLY.checks, TALLY.failures))
    return 1 if TALLY.failures else 0


def wait_or_kill(p, timeout):
    """Reap process p: its exit status, or 'timeout' (and killed) if it takes
    longer than timeout seconds."""
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return "timeout"


class Daemon:
    """One scenario's temporary directory and the runs of `pmtatail -c CONF
    run` in it: the usual layout (pmta/bounces.csv with pmta/archive, state/,
    logs/, pmtatail.conf), each run's stderr (and stdout) in logs/run-N.*,
    signals, reaping, log searches and other subcommands. A test file's
    subclass writes the configuration and brings its writer and backend."""

    STDOUT_FILE = True  # each run's stdout to logs/run-N.stdout (else /dev/null)

    def __init__(self, binary, name, prefix, keep=False):
        self.binary = binary
        self.name = name
        self.keep = keep
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        self.pmta = os.path.join(self.tmp, "pmta")
        self.archive = os.path.join(self.pmta, "archive")
        self.live = os.path.join(self.pmta, "bounces.csv")
        self.state = os.path.join(self.tmp, "state")
        self.offsets = os.path.join(self.state, "offsets.json")
        self.logs = os.path.join(self.tmp, "logs")
        self.conf = os.path.join(self.tmp, "pmtatail.conf")
        self.backend = None
        self.sim = None
        self.proc = None
        self.runs = []        # [stderr path, exit status]
        self.kills = 0
        self.cmd_out = []     # stdout + stderr of other commands
        self.extra_procs = []  # other processes cleanup() kills

    @staticmethod
    def makedirs(*dirs):
        for d in dirs:
            os.makedirs(d, exist_ok=True)

    # -- the daemon

    def start(self, wait_ready=True, preexec_fn=None, env=None, conf=None):
        """Start a run; with wait_ready, return once its directory watches are
        in place (or it exited)."""
        assert self.proc is None
        err = os.path.join(self.logs, "run-%d.stderr" % (len(self.runs) + 1))
        with open(err, "wb") as eh, \
                open(err[:-len("stderr")] + "stdout" if self.STDOUT_FILE else os.devnull,
                     "wb") as oh:
            self.proc = subprocess.Popen([self.binary, "-c", conf or self.conf, "run"],
                                         stdin=subprocess.DEVNULL, stdout=oh, stderr=eh,
                                         preexec_fn=preexec_fn, env=env)
        self.runs.append([err, None])
        if wait_ready:
            poll_until(lambda: self.proc.poll() is not None
                       or (inotify_watches(self.proc.pid) or 0) >= 1, 5)
        return self.proc

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def end_run(self, sig=signal.SIGTERM, timeout=20):
        """Signal the daemon and reap it; its exit status ('timeout' if it
        had to be killed, None if none runs)."""
        p, self.proc = self.proc, None
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(sig)
        rc = wait_or_kill(p, timeout)
        self.runs[-1][1] = rc
        return rc

    def stop(self, sig=signal.SIGTERM, timeout=20):
        return self.end_run(sig, timeout)

    def kill9(self):
        self.kills += 1
        return self.end_run(signal.SIGKILL)

    def expect_stop(self, label, sig=signal.SIGTERM):
        rc = self.stop(sig)
        check("%s: %s, exit status 0" % (label, signal.Signals(sig).name), rc == 0,
              ["got %r" % (rc,)] + self.stderr_tail())
        return rc

    def freeze(self):
        """SIGSTOP the daemon; whether it was seen stopped (state T) within 5 s."""
        self.proc.send_signal(signal.SIGSTOP)

        def stopped():
            with open("/proc/%d/stat" % self.proc.pid) as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
        return poll_until(stopped, 5, 0.005)

    def thaw(self):
        self.proc.send_signal(signal.SIGCONT)

    # -- what it said

    def stderr(self, run=None):
        """stderr text of one run (1-based; -1 the last) or of all runs."""
        sel = self.runs if run is None else [self.runs[run if run < 0 else run - 1]]
        out = []
        for path, _ in sel:
            with open(path, "rb") as fh:
                out.append(fh.read().decode("utf-8", "replace"))
        return "".join(out)

    def messages(self, run=None):
        """stderr lines with the temporary directory replaced by TMP (so that a
        word search does not match the directory's name)."""
        return self.stderr(run).replace(self.tmp, "TMP").splitlines()

    def said(self, pattern, run=None):
        """stderr lines (TMP-relative) matching a regular expression."""
        return [ln for ln in self.messages(run) if re.search(pattern, ln, re.I)]

    def stderr_tail(self, k=8, run=-1):
        """The last k lines of a run's stderr (TMP-relative), for a failure."""
        if not self.runs:
            return []
        return ["stderr: " + line for line in self.messages(run)[-k:]]

    # -- other commands

    def command(self, *args, conf=None, timeout=60, user=None, cwd=None):
        """Run `pmtatail -c CONF ARGS...` (as user=(uid, gid) if given):
        (exit status or 'timeout', stdout, stderr)."""
        kw = {}
        if user is not None:
            kw = {"user": user[0], "group": user[1], "extra_groups": []}
        try:
            r = subprocess.run([self.binary, "-c", conf or self.conf] + list(args),
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                               cwd=cwd, **kw)
            rc, out, err = r.returncode, r.stdout, r.stderr
        except subprocess.TimeoutExpired as e:
            rc, out, err = "timeout", e.stdout or b"", e.stderr or b""
        out = out.decode("utf-8", "replace")
        err = err.decode("utf-8", "replace")
        self.cmd_out.append(out + err)
        return rc, out, err

    # -- the end

    def close_writers(self):
        if self.sim is not None:
            try:
                self.sim.close()
            except OSError:
                pass

    def cleanup(self):
        """Kill what still runs, stop the backend, remove the directory (or
        keep it, and say where)."""
        for p in [self.proc] + self.extra_procs:
            if p is not None:
                if p.poll() is None:
                    p.kill()
                p.wait()
        self.proc = None
        self.close_writers()
        if self.backend is not None:
            self.backend.stop()
        if self.keep:
            info("%s kept in %s" % (self.name, self.tmp))
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def binary_arg(argv, doc):
    """The binary named by `PROG PMTATAIL_BINARY`, absolute, and 0; or None and
    the exit status (2: usage, printed from doc's second paragraph; 1: the
    binary is not executable, a failed check)."""
    if len(argv) != 2:
        print(doc.split("\n\n")[1])
        return None, 2
    binary = os.path.abspath(argv[1])
    if not check("binary %s is executable" % binary, os.access(binary, os.X_OK)):
        return None, 1
    return binary, 0


def run_scenarios(scenarios, only, make_env, tb_lines=6, stderr_tail=True):
    """Run each scenario function (or those named in `only`, "-" for "_")
    with an environment from make_env(name, fn), cleaned up whatever
    happens; an exception in the test is a failed check. Returns the exit
    status: 2 for an unknown name, else finish()'s."""
    names = {fn.__name__.replace("_", "-"): fn for fn in scenarios}
    unknown = [s for s in only if s not in names]
    if unknown:
        print("unknown scenario(s) %s; known: %s" % (unknown, ", ".join(names)))
        return 2
    t_all = time.monotonic()
    for name, fn in names.items():
        if only and name not in only:
            continue
        t0 = time.monotonic()
        e = make_env(name, fn)
        try:
            fn(e)
        except Exception:
            check("%s: ran without an exception in the test" % name, False,
                  traceback.format_exc().splitlines()[-tb_lines:]
                  + (e.stderr_tail() if stderr_tail else []))
        finally:
            e.cleanup()
        info("%s: %.1f s" % (name, time.monotonic() - t0))
    info("total %.1f s" % (time.monotonic() - t_all))
    return finish()
