#!/usr/bin/python3
"""Scenario tests of `pmtatail -c CONF replay` against a fake Oempro backend.

    python3 tests/py/test_replay.py PMTATAIL_BINARY

Each scenario gets its own temporary directory (archives, state/, a
configuration whose [output] url points at a backend.py Backend on 127.0.0.1
in this process) and runs the real binary:

  order        a directory mixing plain and gzipped files, rotated names whose
               times disagree with both their lexical order and their mtimes,
               files without a time in their name (ordered by mtime), a file
               that is not an accounting file: every record delivered once, in
               name-time order; --dry-run prints the same events in the same
               order; a directory and a glob naming the same files read each
               file once (with and without a trailing slash), also when
               delivering
  window       --since/--until as epoch seconds and as YYYY-MM-DD HH:MM:SS+hhmm
               (several offsets): since inclusive, until exclusive; records
               without a parseable timeLogged (empty, garbage, no such column)
               are outside any window and counted as outside_window
  interrupt    30,000 records over 3 files, backend delay 20 ms; SIGINT
               midway: exit 1, interrupted=yes, replay.json with partial
               offsets that only cover acknowledged records; run again: every
               record delivered, duplicates within the unacknowledged window;
               a third run sends nothing ("already replayed"); --from-start
               sends everything again
  daemon       `pmtatail run` on a live file with the same state directory and
               backend while a replay runs: both deliver, the daemon's records
               exactly once, offsets.json and replay.json each keep to their
               own files; a second concurrent replay refuses (exit 1)
  refused      the backend refuses 2 chosen records (422): they end in
               dead-letter.ndjson, the rest delivered once, exit 0, refused=2
  windows      windowed runs add up to the whole with nothing twice; a window
               selecting nothing said per run, recording nothing; no window
               then delivers exactly the rest (records without a time too)
  truncated    a truncated .gz: every event read comes out (dry run and
               delivered), the file failed with records_read and the offset;
               completed later, exactly the rest
  logrotate    numbered and dateext names, compressed or not: read in order
               by replay and report
  same-content x.csv beside x.csv.gz read once and said; gzip (and rename)
               between runs resends nothing, a half-delivered file the rest
  not-regular  a FIFO, a dangling link and a link loop in a directory listed
               once; a FIFO or /dev/zero named or globbed refused at once
  rate-file    --rate with a file output is honoured
  bad-inputs   a missing path, a file without header, corrupt .gz files
               (truncated, damaged deflate data, not gzip at all): exit 1, a
               message naming the file, the good files still delivered

Environment:
  PMTATAIL_REPLAY_ONLY   comma-separated scenario names to run (default all)
  PMTATAIL_REPLAY_KEEP   keep the temporary directories (their paths are printed)

Standard library only. One line per check; exits 1 if any check failed.
"""

import collections
import csv
import datetime as dt
import gzip
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import traceback
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pmta_sim import (HEADER, HEADER_FIELDS, TIME_BASE, Sim, ranges,  # noqa: E402
                      rcpt_number, record_bytes, record_fields)
from backend import Backend  # noqa: E402
from harness import Daemon, check, finish, info, poll_until, run_scenarios, wait_or_kill, binary_arg, read_offsets

ONLY = [s for s in os.environ.get("PMTATAIL_REPLAY_ONLY", "").split(",") if s]
KEEP = bool(os.environ.get("PMTATAIL_REPLAY_KEEP"))
SECRET = "replay-secret-7f3a91c2"

BINARY = None


# -------------------------------------------------------------- files


def write_records(path, numbers, gz=False, header=True):
    """An accounting file holding records `numbers` (pmta_sim's format).
    Returns [(N, end offset in the uncompressed content)]."""
    data = bytearray(HEADER if header else b"")
    ends = []
    for n in numbers:
        data += record_bytes(n)
        ends.append((n, len(data)))
    raw = bytes(data)
    with open(path, "wb") as fh:
        fh.write(gzip.compress(raw, 6) if gz else raw)
    return ends


def write_rows(path, fields, rows, gz=False):
    """A CSV file with the header `fields` and `rows` (lists of strings)."""
    s = io.StringIO()
    w = csv.writer(s, lineterminator="\r\n")
    w.writerow(fields)
    for r in rows:
        w.writerow(r)
    raw = s.getvalue().encode()
    with open(path, "wb") as fh:
        fh.write(gzip.compress(raw) if gz else raw)


def compare(n, ev):
    """Differences between an event and pmta_sim's record n."""
    want = record_fields(n)
    diffs = []
    for col, val in want.items():
        key = "logType" if col == "type" else col
        if ev.get(key) != val:
            diffs.append("%s=%.60r want %.60r" % (key, ev.get(key), val))
    msg = record_bytes(n)[:-2].decode()
    if ev.get("message") != msg:
        diffs.append("message=%.80r want %.80r" % (ev.get("message"), msg))
    if not isinstance(ev.get("eventId"), str) or not ev.get("eventId"):
        diffs.append("eventId=%r" % (ev.get("eventId"),))
    return diffs


def summary_of(err):
    """The key=value pairs of the last `summary:` line of stderr ({} if none)."""
    lines = [ln for ln in err.splitlines() if ln.startswith("summary:")]
    if not lines:
        return {}
    return dict(kv.split("=", 1) for kv in lines[-1][len("summary:"):].split() if "=" in kv)


def summary_line(err):
    lines = [ln for ln in err.splitlines() if ln.startswith("summary:")]
    return lines[-1] if lines else "(no summary line)"


def numbers_of(events):
    return [rcpt_number(e.get("rcpt")) if isinstance(e, dict) else None for e in events]


def ndjson(text):
    out = []
    for ln in text.splitlines():
        if ln.strip():
            try:
                out.append(json.loads(ln))
            except ValueError:
                out.append({"unparsed": ln[:200]})
    return out


def first_disorder(nums):
    for i in range(1, len(nums)):
        if nums[i] is None or nums[i - 1] is None or nums[i] < nums[i - 1]:
            return i
    return None


# -------------------------------------------------------------- one scenario


class Env(Daemon):
    """A temporary directory, a backend, configurations, command runs."""

    def __init__(self, name, keep_bodies=True, **output):
        super().__init__(BINARY, name, "pmtatail-replay-%s-" % name, KEEP)
        self.arch = os.path.join(self.tmp, "old")
        self.live_arch = self.archive
        self.makedirs(self.arch, self.pmta, self.live_arch)
        self.backend = Backend(port=0, keep_bodies=keep_bodies).start()
        self.output = collections.OrderedDict([
            ("format", "batch"), ("batch_max_records", "50"), ("linger_ms", "20"),
            ("timeout_s", "5"), ("retry_max_s", "1"), ("concurrency", "4")])
        self.output.update(output)
        self.conf = self.write_conf("pmtatail.conf", self.state)
        self.outputs = self.cmd_out  # every command's output, for the secret
        self.daemon = None

    def write_conf(self, name, state):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as fh:
            fh.write("[source bounces]\npath = %s\narchive_dir = %s\nrecords = b, rb\n\n"
                     % (self.live, self.live_arch))
            fh.write("[output]\nurl = %s\n" % self.backend.url())
            for k, v in self.output.items():
                fh.write("%s = %s\n" % (k, v))
            fh.write("header = X-Octeth-Signature: %s\n" % SECRET)
            fh.write("\n[state]\ndir = %s\n\n[log]\nlevel = info\n" % state)
        return path

    @property
    def concurrency(self):
        return int(self.output["concurrency"])

    @property
    def batch(self):
        return int(self.output["batch_max_records"])

    def replay(self, *args, conf=None, timeout=60, cwd=None):
        """`pmtatail -c CONF replay ARGS...`: (exit status, stdout, stderr)."""
        return self.command("replay", *args, conf=conf, timeout=timeout, cwd=cwd)

    def spawn(self, *args, conf=None, name="replay"):
        """Start `pmtatail -c CONF replay ARGS...` (stdout/stderr to files)."""
        k = len(self.outputs)
        errp = os.path.join(self.tmp, "%s-%d.stderr" % (name, k))
        outp = os.path.join(self.tmp, "%s-%d.stdout" % (name, k))
        with open(errp, "wb") as eh, open(outp, "wb") as oh:
            p = subprocess.Popen([BINARY, "-c", conf or self.conf] + list(args),
                                 stdin=subprocess.DEVNULL, stdout=oh, stderr=eh)
        p.errp, p.outp = errp, outp
        self.outputs.append(None)
        return p

    @staticmethod
    def reap(p, timeout=60):
        rc = wait_or_kill(p, timeout)
        with open(p.errp, "rb") as fh:
            err = fh.read().decode("utf-8", "replace")
        with open(p.outp, "rb") as fh:
            out = fh.read().decode("utf-8", "replace")
        return rc, out, err

    def tail(self, err, k=6):
        return ["stderr: " + ln for ln in err.replace(self.tmp, "TMP").splitlines()[-k:]]

    def accepted(self):
        return self.backend.accepted_events()

    def settle(self, timeout=5):
        """Wait until the backend has answered every request it received (a
        request an exiting client abandoned is still answered, and counted as
        accepted, once its delay is over)."""
        poll_until(lambda: self.backend.stats()["in_flight"] == 0, timeout)
        time.sleep(0.05)
        poll_until(lambda: self.backend.stats()["in_flight"] == 0, timeout)

    def counts(self):
        return collections.Counter(n for n in numbers_of(self.accepted()))

    def replay_json(self, state=None):
        try:
            with open(os.path.join(state or self.state, "replay.json")) as fh:
                return json.load(fh)
        except (OSError, ValueError) as e:
            return {"error": str(e)}

    def dead_letters(self):
        try:
            with open(os.path.join(self.state, "dead-letter.ndjson"), "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return []
        return [json.loads(ln) for ln in data.split(b"\n") if ln.strip()]

    def secrets_check(self, label):
        leaked = [o for o in self.outputs if o and SECRET in o]
        check("%s: the header secret never in replay output" % label, not leaked)

    def cleanup(self):
        if self.daemon is not None:
            self.extra_procs.append(self.daemon)
        super().cleanup()


SCENARIOS = []


def scenario(**env):
    def deco(fn):
        fn.env = env
        SCENARIOS.append(fn)
        return fn
    return deco


def exactly_once(label, counts, want, details=()):
    wset = set(want)
    missing = sorted(n for n in want if not counts.get(n))
    twice = sorted(n for n in want if counts.get(n, 0) > 1)
    extra = sorted(n for n in counts if n not in wset)
    return check("%s: every one of %d records accepted exactly once" % (label, len(want)),
                 not missing and not twice and not extra,
                 ["missing %d: u%s" % (len(missing), ranges(missing)[:300]),
                  "twice %d: u%s" % (len(twice), ranges(twice)[:300]),
                  "not expected %d: %s" % (len(extra), ranges([n for n in extra if n])[:300])]
                 + list(details))


# -------------------------------------------------------------- scenarios


def local_epoch(y, mo, d, h, mi):
    return int(time.mktime((y, mo, d, h, mi, 0, 0, 0, -1)))


@scenario(concurrency="1", batch_max_records="50")
def order(e):
    """Ordering by name time (local), else mtime; plain and .gz mixed;
    directory + glob read once; --dry-run prints what is delivered."""
    now = int(time.time())
    # (name, gz, mtime): listed in the order replay must read them.
    files = [
        ("aaa-export.csv", False, local_epoch(2024, 1, 4, 10, 0)),       # no name time: mtime
        ("fbl-2024-01-05-0930.csv.gz", True, now - 1 * 3600),            # lexically late
        ("bounces-2024-01-05-1000.csv", False, now - 2 * 3600),
        ("bounces-2024-01-05-1100.csv.gz", True, now - 3 * 3600),
        ("bounces-2024-01-05-2300.csv", False, now - 4 * 3600),
        ("bounces-2024-01-06-0100.csv.gz", True, now - 5 * 3600),        # next day
        ("manual.csv.gz", True, now - 60),                               # no name time: mtime
    ]
    per = 80
    want = []
    file_of = {}
    for i, (name, gz, mtime) in enumerate(files):
        nums = list(range(i * per + 1, (i + 1) * per + 1))
        p = os.path.join(e.arch, name)
        write_records(p, nums, gz=gz)
        os.utime(p, (mtime, mtime))
        want += nums
        for n in nums:
            file_of[n] = name
    with open(os.path.join(e.arch, "README.txt"), "w") as fh:
        fh.write("type,timeLogged\nb,1\n")
    info("order: files in the expected order: %s" % ", ".join(f[0] for f in files))
    by_mtime = [f[0] for f in sorted(files, key=lambda f: f[2])]
    by_name = sorted(f[0] for f in files)
    info("order: by mtime they would be %s; by name %s" % (", ".join(by_mtime),
                                                           ", ".join(by_name)))

    rc, out, err = e.replay(e.arch)
    check("order: replay DIR exits 0 (%r)" % (rc,), rc == 0, e.tail(err))
    acc = e.accepted()
    nums = numbers_of(acc)
    exactly_once("order", collections.Counter(nums), want)
    bad = first_disorder(nums)
    seen_files = []
    for n in nums:
        f = file_of.get(n, "?")
        if not seen_files or seen_files[-1] != f:
            seen_files.append(f)
    check("order: the backend received the records in name-time order (concurrency 1)",
          bad is None and nums == want,
          ["first out of order at position %s: ... u%s" % (bad, nums[max(0, (bad or 1) - 2):
                                                                (bad or 1) + 2]),
           "files in the order received: %s" % ", ".join(seen_files)])
    diffs = []
    for ev in acc:
        n = rcpt_number(ev.get("rcpt"))
        if n is None:
            continue
        d = compare(n, ev)
        if os.path.basename(str(ev.get("path"))) != file_of.get(n):
            d.append("path=%r want .../%s" % (ev.get("path"), file_of.get(n)))
        if d:
            diffs.append("u%d: %s" % (n, "; ".join(d)))
    check("order: each event holds its record's fields, raw line and file path",
          not diffs, diffs[:4])
    sm = summary_of(err)
    check("order: summary files=7 records=%d sent=%d refused=0 (%s)" % (
        len(want), len(want), summary_line(err)),
        sm.get("files") == "7" and sm.get("records") == str(len(want)) and
        sm.get("sent") == str(len(want)) and sm.get("refused") == "0")
    rj = e.replay_json()
    ents = rj.get("files", [])
    check("order: replay.json: 7 files, all done",
          len(ents) == 7 and all(x.get("done") is True for x in ents),
          ["%.300r" % (rj,)])
    skipped = [ln for ln in err.splitlines() if ln.startswith("skipped:")]
    check("order: README.txt in the directory is not read, and listed once as left out",
          not any("README" in str(x.get("path")) for x in ents) and
          not re.search(r"replayed file=\S*README", err) and len(skipped) == 1 and
          "README.txt (not an archive name)" in skipped[0] and
          summary_of(err).get("skipped") == "1", e.tail(err))

    # --dry-run: the same events, in the same order.
    rc, out, err2 = e.replay("--dry-run", e.arch)
    evs = ndjson(out)
    check("order: --dry-run DIR exits 0 (%r)" % (rc,), rc == 0, e.tail(err2))
    same = evs == acc
    diff_at = next((i for i, (a, b) in enumerate(zip(evs, acc)) if a != b), None)
    check("order: --dry-run prints the delivered events, same order (%d vs %d)" % (
        len(evs), len(acc)), same,
        ["first difference at %s: dry %.200r / delivered %.200r" % (
            diff_at, evs[diff_at] if diff_at is not None else None,
            acc[diff_at] if diff_at is not None else None)])

    # A directory and a glob naming the same files: each file read once.
    for label, args in [("DIR + 'DIR/*.csv*'", [e.arch, e.arch + "/*.csv*"]),
                        ("DIR/ + 'DIR/*.csv*'", [e.arch + "/", e.arch + "/*.csv*"]),
                        ("'DIR/*.gz' + DIR + 'DIR/b*'", [e.arch + "/*.gz", e.arch,
                                                         e.arch + "/b*"]),
                        ("relative old + absolute 'DIR/*.csv*' (cwd TMP)",
                         ["old", e.arch + "/*.csv*"])]:
        rc, out, err3 = e.replay("--dry-run", *args, cwd=e.tmp)
        got = numbers_of(ndjson(out))
        c = collections.Counter(got)
        twice = sorted(n for n, k in c.items() if k > 1)
        check("order: --dry-run %s: exit 0, each file read once (%d events for %d records)" % (
            label, len(got), len(want)), rc == 0 and sorted(got) == want and got == want,
            ["exit %r; %d records read twice: u%s" % (rc, len(twice), ranges(twice)[:200])] +
            [ln for ln in err3.replace(e.tmp, "TMP").splitlines() if "replayed file" in ln][:10])

    # The same when delivering (a fresh state directory).
    conf2 = e.write_conf("fresh.conf", os.path.join(e.tmp, "state2"))
    e.backend.clear()
    rc, out, err4 = e.replay(e.arch + "/", e.arch + "/*.csv*", conf=conf2)
    c = e.counts()
    exactly_once("order: delivering DIR/ + 'DIR/*.csv*' (exit %r)" % (rc,), c, want,
                 [ln for ln in err4.replace(e.tmp, "TMP").splitlines()
                  if "replayed file" in ln or ln.startswith("summary")][:10])
    e.secrets_check("order")


@scenario(batch_max_records="20")
def window(e):
    """--since/--until: epoch and local-time-with-offset forms, boundaries,
    records without a usable timeLogged, files with timeQueued and no
    timeLogged (placed by timeQueued, said once per run)."""
    step = 10

    def t_of(n):
        return TIME_BASE + step * n

    def fmt(t, off_min):
        tz = dt.timezone(dt.timedelta(minutes=off_min))
        s = dt.datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M:%S")
        sign = "+" if off_min >= 0 else "-"
        return "%s%s%02d%02d" % (s, sign, abs(off_min) // 60, abs(off_min) % 60)

    def row(n, tl):
        f = record_fields(n)
        f["timeLogged"] = tl
        return [f[k] for k in HEADER_FIELDS]

    # a.csv: 1..40, odd epoch, even "YYYY-MM-DD HH:MM:SS+0200"; 41 empty, 42 garbage.
    rows = [row(n, str(t_of(n)) if n % 2 else fmt(t_of(n), 120)) for n in range(1, 41)]
    rows += [row(41, ""), row(42, "yesterday")]
    write_rows(os.path.join(e.arch, "bounces-2024-01-05-1300.csv"), HEADER_FIELDS, rows)
    # b.csv: no timeLogged column at all: 43..45.
    nt = [f for f in HEADER_FIELDS if f != "timeLogged"]
    write_rows(os.path.join(e.arch, "bounces-2024-01-05-1400.csv"), nt,
               [[record_fields(n)[k] for k in nt] for n in range(43, 46)])
    # c.csv.gz: 46..60 as "-0700" local times.
    write_rows(os.path.join(e.arch, "bounces-2024-01-05-1500.csv.gz"), HEADER_FIELDS,
               [row(n, fmt(t_of(n), -420)) for n in range(46, 61)], gz=True)
    # d.csv, e.csv: port25-bouncehandler's field set, timeQueued and no
    # timeLogged: 61..63, 64..66, placed in windows by timeQueued (T11..T16).
    qf = [f if f != "timeLogged" else "timeQueued" for f in HEADER_FIELDS]

    def qrow(n):
        f = record_fields(n)
        f["timeQueued"] = str(t_of(n - 50))
        return [f[k] for k in qf]
    write_rows(os.path.join(e.arch, "bounces-2024-01-05-1600.csv"), qf, [qrow(n) for n in range(61, 64)])
    write_rows(os.path.join(e.arch, "bounces-2024-01-05-1700.csv"), qf, [qrow(n) for n in range(64, 67)])
    when = {n: t_of(n) for n in range(1, 61) if n not in (41, 42, 43, 44, 45)}
    when.update({n: t_of(n - 50) for n in range(61, 67)})
    allnums = list(range(1, 67))

    def expect(since=None, until=None):
        return sorted(n for n, t in when.items() if (since is None or t >= since) and
                      (until is None or t < until))

    cases = [
        ("epoch --since T10 --until T30", ["--since", str(t_of(10)), "--until", str(t_of(30))],
         expect(t_of(10), t_of(30))),
        ("+0530/-0700 forms of the same bounds",
         ["--since", fmt(t_of(10), 330), "--until", fmt(t_of(30), -420)],
         expect(t_of(10), t_of(30))),
        ("+0000 since, epoch until", ["--since", fmt(t_of(10), 0), "--until", str(t_of(30))],
         expect(t_of(10), t_of(30))),
        ("bounds one second inside: T10+1 .. T30+1",
         ["--since", str(t_of(10) + 1), "--until", str(t_of(30) + 1)],
         expect(t_of(10) + 1, t_of(30) + 1)),
        ("--since only (T40, +0200 form)", ["--since", fmt(t_of(40), 120)],
         expect(since=t_of(40))),
        ("--until only (T5)", ["--until", str(t_of(5))], expect(until=t_of(5))),
    ]
    for label, args, want in cases:
        rc, out, err = e.replay("--dry-run", *args, e.arch)
        got = numbers_of(ndjson(out))
        sm = summary_of(err)
        outside = len(allnums) - len(want)
        check("window: %s: exit 0, records u%s (got u%s)" % (label, ranges(want) or "-",
                                                            ranges(got) or "-"),
              rc == 0 and sorted(got) == want,
              ["exit %r" % (rc,)] + e.tail(err, 3))
        check("window: %s: summary outside_window=%d (%s)" % (label, outside,
                                                             summary_line(err)),
              sm.get("outside_window", "0") == str(outside))
        said = [ln for ln in err.splitlines() if "placed in --since/--until by timeQueued" in ln]
        check("window: %s: the fallback to timeQueued said once (%d times)" % (label, len(said)),
              len(said) == 1, e.tail(err, 3))
    rc, out, err = e.replay("--dry-run", e.arch)
    got = numbers_of(ndjson(out))
    check("window: no window: all %d records, those without time too (got %d)" % (
        len(allnums), len(got)), rc == 0 and sorted(got) == allnums, e.tail(err, 3))
    check("window: no window: no outside_window in the summary (%s)" % summary_line(err),
          "outside_window" not in summary_of(err))
    check("window: no window: nothing said of timeQueued", "timeQueued" not in err, e.tail(err, 3))

    # An empty or reversed window selects nothing: a usage error, not a run.
    for label, args, word in [
            ("empty window since = until", ["--since", str(t_of(20)), "--until", str(t_of(20))],
             "empty"),
            ("reversed window", ["--since", str(t_of(30)), "--until", str(t_of(10))], "reversed")]:
        for dry in (["--dry-run"], []):
            rc, out, err = e.replay(*(dry + args + [e.arch]))
            check("window: %s%s: usage error, exit 2 (%r), says %s" % (
                label, " (dry run)" if dry else "", rc, word),
                rc == 2 and word in err and not out and "summary:" not in err, e.tail(err, 3))
    check("window: the refused windows recorded nothing (no replay.json)",
          not os.path.exists(os.path.join(e.state, "replay.json")))

    rc, out, err = e.replay("--dry-run", "--since", "yesterday", e.arch)
    check("window: --since yesterday is a usage error (exit 2, %r)" % (rc,),
          rc == 2 and "since" in err, e.tail(err, 3))

    # Delivered, with the offset forms.
    want = expect(t_of(10), t_of(30))
    rc, out, err = e.replay("--since", fmt(t_of(10), 330), "--until", fmt(t_of(30), -420),
                            e.arch)
    c = e.counts()
    check("window: delivering the window: exit 0 (%r)" % (rc,), rc == 0, e.tail(err))
    exactly_once("window: delivering the window", c, want)
    sm = summary_of(err)
    check("window: delivering: summary sent=%d outside_window=%d (%s)" % (
        len(want), len(allnums) - len(want), summary_line(err)),
        sm.get("sent") == str(len(want)) and
        sm.get("outside_window") == str(len(allnums) - len(want)))


@scenario(keep_bodies=False, batch_max_records="100", concurrency="4", linger_ms="20")
def interrupt(e):
    """SIGINT midway, resume, already replayed, --from-start."""
    per = 10000
    names = ["bounces-2024-01-05-1300.csv", "bounces-2024-01-05-1400.csv.gz",
             "bounces-2024-01-05-1500.csv"]
    ends = {}   # path -> [(N, end offset)]
    want = []
    t0 = time.monotonic()
    for i, name in enumerate(names):
        p = os.path.join(e.arch, name)
        nums = list(range(i * per + 1, (i + 1) * per + 1))
        ends[p] = write_records(p, nums, gz=name.endswith(".gz"))
        want += nums
    info("interrupt: wrote %d records in 3 files (%.1f MB) in %.1f s" % (
        len(want), sum(os.path.getsize(p) for p in ends) / 1e6, time.monotonic() - t0))
    e.backend.set_delay_ms(20)
    bound = e.concurrency * e.batch + e.batch
    info("interrupt: unacknowledged window = concurrency %d x batch_max_records %d + the "
         "batch being built %d = %d records" % (e.concurrency, e.batch, e.batch, bound))

    t0 = time.monotonic()
    p = e.spawn("replay", e.arch, name="run1")
    reached = poll_until(lambda: e.backend.stats()["events_accepted"] >= 12000 or
                         p.poll() is not None, 40)
    n_at_sig = e.backend.stats()["events_accepted"]
    still = p.poll() is None
    if still:
        p.send_signal(signal.SIGINT)
    rc, out, err = e.reap(p, 30)
    t1 = time.monotonic() - t0
    e.settle()
    info("interrupt: SIGINT after %.1f s with %d events accepted (process %s)" % (
        t1, n_at_sig, "running" if still else "already gone"))
    check("interrupt: replay still running midway (%d of %d accepted)" % (n_at_sig, len(want)),
          bool(reached) and still and n_at_sig < len(want), e.tail(err))
    check("interrupt: SIGINT: exit status 1 (%r)" % (rc,), rc == 1, e.tail(err))
    check("interrupt: summary says interrupted=yes (%s)" % summary_line(err),
          summary_of(err).get("interrupted") == "yes")
    if "files_failed" in summary_of(err):
        info("interrupt: the interrupted run's summary counts files_failed=%s" %
             summary_of(err)["files_failed"])
    prog = [ln for ln in err.splitlines() if ln.startswith("progress files")]
    check("interrupt: progress lines `progress files N/M ...` on stderr (%d)" % len(prog),
          bool(prog) and all(re.match(r"progress files \d+/3\b", ln) for ln in prog),
          prog[:3] + e.tail(err, 3))
    c1 = e.counts()
    rj = e.replay_json()
    ents = {x.get("path"): x for x in rj.get("files", [])} if isinstance(rj.get("files"),
                                                                            list) else {}
    info("interrupt: replay.json after SIGINT: %s" % "; ".join(
        "%s offset=%s done=%s" % (os.path.basename(k), v.get("offset"), v.get("done"))
        for k, v in ents.items()))
    partial = [k for k, v in ents.items() if not v.get("done") and 0 < (v.get("offset") or 0)]
    check("interrupt: replay.json exists with a partial offset (done=false, 0 < offset)",
          bool(ents) and bool(partial), ["%.400r" % (rj,)])
    # Everything before a saved offset was acknowledged: accepted by the backend.
    covered = set()
    uncovered_acc = []
    for path, lst in ends.items():
        ent = ents.get(path)
        if ent is None:
            # also look the file up by basename (the path spelling may differ)
            ent = next((v for k, v in ents.items()
                        if os.path.basename(str(k)) == os.path.basename(path)), None)
        off = (ent or {}).get("offset") or 0
        done = bool((ent or {}).get("done"))
        for n, end in lst:
            if done or end <= off:
                covered.add(n)
    not_acked = sorted(n for n in covered if not c1.get(n))
    check("interrupt: records before the saved offsets were all accepted (%d covered)" %
          len(covered), not not_acked,
          ["%d covered by replay.json but never accepted: u%s" % (
              len(not_acked), ranges(not_acked)[:300])])
    unrecorded = sorted(n for n in c1 if n not in covered)
    info("interrupt: %d records accepted in run 1 but beyond the saved offsets "
         "(will be sent again): u%s" % (len(unrecorded), ranges(unrecorded)[:200]))
    check("interrupt: accepted-but-unrecorded records within the window (%d <= %d)" % (
        len(unrecorded), bound), len(unrecorded) <= bound)
    # the backend answers in 20 ms: an interrupt waits for the answers in
    # flight, so nothing it accepted is beyond the saved offsets
    check("interrupt: the answers in flight were waited for (%d accepted beyond the saved "
          "offsets)" % len(unrecorded), not unrecorded)
    check("interrupt: says it waits for the answers in flight",
          "interrupted: waiting up to" in err, e.tail(err))

    # Run 2: continues where the acknowledged records end.
    e.backend.clear()
    rc, out, err = e.replay(e.arch, timeout=60)
    c2 = e.counts()
    check("interrupt: run 2 exits 0 (%r)" % (rc,), rc == 0, e.tail(err))
    check("interrupt: run 2 says resuming / already replayed",
          bool(re.search(r"resuming file=", err)), e.tail(err, 10))
    both = collections.Counter(c1)
    both.update(c2)
    missing = [n for n in want if not both.get(n)]
    check("interrupt: every record accepted at least once over runs 1 and 2",
          not missing, ["missing %d: u%s" % (len(missing), ranges(missing)[:300])])
    resent_covered = sorted(n for n in c2 if n in covered)
    check("interrupt: run 2 sends nothing before the saved offsets (%d resent)" %
          len(resent_covered), not resent_covered,
          ["u%s" % ranges(resent_covered)[:300]])
    dups = sorted(n for n in want if both.get(n, 0) > 1)
    info("interrupt: %d duplicates over runs 1 and 2 (bound %d): u%s" % (
        len(dups), bound, ranges(dups)[:200]))
    check("interrupt: duplicates within the unacknowledged window (%d <= %d)" % (
        len(dups), bound), len(dups) <= bound)
    twice2 = sorted(n for n, k in c2.items() if k > 1)
    check("interrupt: run 2 sends no record twice", not twice2,
          ["u%s" % ranges(twice2)[:300]])
    sm = summary_of(err)
    check("interrupt: run 2 summary sent=%d (%s)" % (len(want) - len(covered),
                                                     summary_line(err)),
          sm.get("sent") == str(len(want) - len(covered)))
    rj = e.replay_json()
    check("interrupt: replay.json: 3 files done after run 2",
          len(rj.get("files", [])) == 3 and all(x.get("done") for x in rj.get("files", [])),
          ["%.400r" % (rj,)])

    # Run 3: nothing to do.
    e.backend.clear()
    rc, out, err = e.replay(e.arch)
    nreq = e.backend.stats()["requests"]
    check("interrupt: run 3 exits 0 and sends nothing (exit %r, %d requests)" % (rc, nreq),
          rc == 0 and nreq == 0, e.tail(err))
    said = [ln for ln in err.splitlines() if "already replayed" in ln]
    check("interrupt: run 3 says \"already replayed\" for the 3 files (%d lines)" % len(said),
          len(said) == 3, e.tail(err))
    info("interrupt: run 3: %s" % summary_line(err))

    # Run 4: --from-start sends everything again.
    e.backend.clear()
    t0 = time.monotonic()
    rc, out, err = e.replay("--from-start", e.arch)
    c4 = e.counts()
    info("interrupt: --from-start run took %.1f s" % (time.monotonic() - t0))
    check("interrupt: --from-start exits 0 (%r)" % (rc,), rc == 0, e.tail(err))
    exactly_once("interrupt: --from-start", c4, want)
    check("interrupt: --from-start summary sent=%d (%s)" % (len(want), summary_line(err)),
          summary_of(err).get("sent") == str(len(want)))


@scenario(batch_max_records="100", concurrency="4")
def daemon(e):
    """`pmtatail run` and `pmtatail replay` on the same state directory and
    backend; a second replay refuses."""
    base = 1000000
    per = 5000
    want_r = []
    for i in range(3):
        nums = list(range(base + i * per + 1, base + (i + 1) * per + 1))
        write_records(os.path.join(e.arch, "bounces-2024-01-0%d-1200.csv%s" % (
            i + 2, ".gz" if i == 1 else "")), nums, gz=(i == 1))
        want_r += nums
    sim = Sim(e.live, e.live_arch, seed=11)
    sim.write(300)
    errp = os.path.join(e.tmp, "daemon.stderr")
    with open(errp, "wb") as eh:
        e.daemon = subprocess.Popen([BINARY, "-c", e.conf, "run"], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=eh)

    def derr():
        with open(errp, "rb") as fh:
            return fh.read().decode("utf-8", "replace")

    def live_done():
        c = e.counts()
        return all(c.get(n) for n in sim.required())
    ok = poll_until(lambda: live_done() or e.daemon.poll() is not None, 15)
    check("daemon: the daemon delivers the live file's first 300 records", bool(ok) and
          e.daemon.poll() is None, e.tail(derr()))
    e.backend.set_delay_ms(20)
    off_before = open(os.path.join(e.state, "offsets.json")).read() \
        if os.path.exists(os.path.join(e.state, "offsets.json")) else None
    p = e.spawn("replay", e.arch, name="replay1")
    started = poll_until(lambda: any(n and n > base for n in e.counts()) or
                         p.poll() is not None, 15)
    check("daemon: replay delivers while the daemon runs", bool(started) and p.poll() is None)
    # slow answers while the second replay tries: the first one must still be
    # running when it is refused, however long a loaded machine takes to start it
    e.backend.set_delay_ms(500)
    rc2, out2, err2 = e.replay(e.arch)
    still = p.poll() is None
    e.backend.set_delay_ms(20)
    check("daemon: a second concurrent replay refuses: exit 1 (%r), a message" % (rc2,),
          rc2 == 1 and bool(re.search(r"another replay|replay\.lock|running", err2)),
          e.tail(err2))
    msg = [ln for ln in err2.replace(e.tmp, "TMP").splitlines() if "replay" in ln.lower()]
    info("daemon: second replay said: %s" % (msg[:1],))
    check("daemon: ... while the first one was still running", still)
    # The live file keeps growing, and rotates, during the replay.
    for k in range(4):
        sim.write(200)
        if k == 1:
            sim.rotate()
        time.sleep(0.1)
    rc, out, err = e.reap(p, 60)
    check("daemon: the replay exits 0 while the daemon runs (%r)" % (rc,), rc == 0,
          e.tail(err))
    sm = summary_of(err)
    check("daemon: replay summary sent=%d (%s)" % (len(want_r), summary_line(err)),
          sm.get("sent") == str(len(want_r)))
    sim.write(100)
    sim.close()
    e.backend.set_delay_ms(0)
    ok = poll_until(lambda: live_done() or e.daemon.poll() is not None, 20)
    check("daemon: the daemon is still running and delivered the live records",
          bool(ok) and e.daemon.poll() is None, e.tail(derr()))
    e.daemon.send_signal(signal.SIGTERM)
    try:
        drc = e.daemon.wait(20)
    except subprocess.TimeoutExpired:
        e.daemon.kill()
        drc = "timeout"
    check("daemon: the daemon exits 0 on SIGTERM (%r)" % (drc,), drc == 0, e.tail(derr()))
    c = e.counts()
    live = sim.required()
    exactly_once("daemon: the daemon's records (none lost, none duplicated)",
                 collections.Counter({n: k for n, k in c.items() if n and n < base}), live)
    exactly_once("daemon: the replay's records",
                 collections.Counter({n: k for n, k in c.items() if n and n > base}), want_r)
    doc = read_offsets(e.state)
    offs = json.dumps(doc) if doc is not None else "(no offsets.json)"
    check("daemon: offsets.json names no replayed file",
          e.arch not in offs and "/old/" not in offs,
          [offs.replace(e.tmp, "TMP")[:400]])
    check("daemon: offsets.json names the live file", e.pmta in offs,
          [offs.replace(e.tmp, "TMP")[:400], "before the replay: %s" % (
              (off_before or "none").replace(e.tmp, "TMP")[:300],)])
    rj = json.dumps(e.replay_json())
    check("daemon: replay.json names only the replayed files",
          e.pmta not in rj and rj.count(e.arch) == 3, [rj.replace(e.tmp, "TMP")[:400]])
    e.secrets_check("daemon")


@scenario(batch_max_records="50")
def refused(e):
    """422 for 2 chosen records: dead letters, the rest delivered, exit 0."""
    want = list(range(1, 301))
    write_records(os.path.join(e.arch, "bounces-2024-01-05-1300.csv"), want[:150])
    write_records(os.path.join(e.arch, "bounces-2024-01-05-1400.csv.gz"), want[150:], gz=True)
    bad = [17, 250]
    body = json.dumps({"Success": False, "ErrorCode": 422,
                       "ErrorText": "refused: invalid bounce event"})
    e.backend.refuse("rcpt", {"u%d@example.com" % n for n in bad}, status=422, body=body)
    rc, out, err = e.replay(e.arch)
    check("refused: exit 0 (%r)" % (rc,), rc == 0, e.tail(err))
    c = e.counts()
    exactly_once("refused: the other records", c, [n for n in want if n not in bad])
    dl = e.dead_letters()
    got = sorted(rcpt_number((x.get("event") or {}).get("rcpt")) or 0 for x in dl)
    check("refused: dead-letter.ndjson holds exactly u17 and u250 (%s)" % got, got == bad,
          ["%.300r" % (x,) for x in dl[:4]])
    check("refused: status 422 in each dead letter",
          bool(dl) and all(x.get("status") == 422 for x in dl),
          ["%r" % [x.get("status") for x in dl]])
    sm = summary_of(err)
    check("refused: summary refused=2 (%s)" % summary_line(err), sm.get("refused") == "2")
    info("refused: summary sent=%s for %d records of which 2 refused (sent %s)" % (
        sm.get("sent"), len(want), "counts the refused ones too" if sm.get("sent") == "300"
        else "= accepted" if sm.get("sent") == "298" else "?"))
    check("refused: sent + refused accounts for the %d records (sent=%s refused=%s)" % (
        len(want), sm.get("sent"), sm.get("refused")),
        sm.get("sent") in ("298", "300"))
    rj = e.replay_json()
    check("refused: both files done in replay.json",
          len(rj.get("files", [])) == 2 and all(x.get("done") for x in rj["files"]),
          ["%.300r" % (rj,)])
    e.backend.clear()
    rc, out, err = e.replay(e.arch)
    check("refused: run again: exit 0, nothing sent (refused records stay dead letters)",
          rc == 0 and e.backend.stats()["requests"] == 0, e.tail(err))


@scenario(batch_max_records="50")
def bad_inputs(e):
    """A missing path, a file without header, corrupt .gz files."""
    g1 = os.path.join(e.arch, "bounces-2024-01-05-1300.csv")
    g2 = os.path.join(e.arch, "bounces-2024-01-05-1400.csv.gz")
    w1 = list(range(1, 101))
    w2 = list(range(101, 201))
    write_records(g1, w1)
    write_records(g2, w2, gz=True)
    good = w1 + w2
    odd = os.path.join(e.tmp, "odd")
    os.makedirs(odd)

    def run(label, extra, state_name, expect_rejected=None, name_in_error=None):
        conf = e.write_conf(state_name + ".conf", os.path.join(e.tmp, state_name))
        e.backend.clear()
        rc, out, err = e.replay(g1, *extra, g2, conf=conf)
        c = e.counts()
        check("bad-inputs: %s: exit 1 (%r)" % (label, rc), rc == 1, e.tail(err))
        gset = set(good)
        exactly_once("bad-inputs: %s: the good files still delivered" % label,
                     collections.Counter({n: k for n, k in c.items() if n in gset}), good)
        if name_in_error:
            lines = [ln for ln in err.replace(e.tmp, "TMP").splitlines()
                     if name_in_error in ln]
            errs = [ln for ln in lines if re.search(
                r"^error\b|\berror=|cannot|corrupt|truncat|unexpected end|not .*gzip|damaged",
                ln.replace(name_in_error, "FILE"), re.I)]
            check("bad-inputs: %s: an error naming %s" % (label, name_in_error), bool(errs),
                  lines[:4] + e.tail(err, 4))
            if errs:
                info("bad-inputs: %s: %s" % (label, errs[0][:200]))
        sm = summary_of(err)
        if expect_rejected is not None:
            check("bad-inputs: %s: summary rejected=%d (%s)" % (label, expect_rejected,
                                                              summary_line(err)),
                  sm.get("rejected") == str(expect_rejected))
        return rc, err, c

    missing = os.path.join(e.tmp, "no-such-dir", "bounces-2024-01-05-1330.csv")
    run("a path that does not exist", [missing], "s-missing",
        name_in_error="no-such-dir/bounces-2024-01-05-1330.csv")

    nh = os.path.join(odd, "noheader.csv")
    write_records(nh, list(range(5001, 5011)), header=False)
    rc, err, c = run("a file without header", [nh], "s-noheader", expect_rejected=10)
    leaked = sorted(n for n in c if n and 5001 <= n <= 5010)
    check("bad-inputs: a file without header: none of its records delivered",
          not leaked, ["u%s" % ranges(leaked)])
    rej = [ln for ln in err.splitlines() if "rejected" in ln and "noheader.csv" in ln]
    check("bad-inputs: a file without header: rejections name the file (%d lines)" %
          len(rej), bool(rej), e.tail(err))

    raw = HEADER + b"".join(record_bytes(n) for n in range(6001, 6201))
    comp = gzip.compress(raw, 6)
    tr = os.path.join(odd, "truncated.csv.gz")
    # cut it where complete records precede and the cut falls between records
    with open(tr, "wb") as fh:
        fh.write(comp[:len(comp) * 2 // 3])
    run("a .gz truncated mid-record", [tr], "s-trunc", name_in_error="truncated.csv.gz")

    # truncated exactly after a record: the content read is whole records
    tb = os.path.join(odd, "cut.csv.gz")
    co = zlib.compressobj(6, zlib.DEFLATED, 31)
    part = HEADER + b"".join(record_bytes(n) for n in range(7001, 7101))
    data = co.compress(part) + co.flush(zlib.Z_FULL_FLUSH)
    with open(tb, "wb") as fh:
        fh.write(data)  # no final block, no gzip trailer (CRC, length)
    rc, err, c = run("a .gz truncated between records (no trailer)", [tb], "s-cut",
                     name_in_error="cut.csv.gz")
    info("bad-inputs: truncated between records: %d of its 100 records delivered (%s)" % (
        sum(1 for n in c if n and 7001 <= n <= 7100), summary_line(err)))

    dm = os.path.join(odd, "damaged.csv.gz")
    b = bytearray(comp)
    for i in range(len(b) // 3, len(b) // 3 + 64):
        b[i] ^= 0x5A
    with open(dm, "wb") as fh:
        fh.write(bytes(b))
    run("a .gz with damaged deflate data", [dm], "s-damaged", name_in_error="damaged.csv.gz")

    ng = os.path.join(odd, "notgzip.csv.gz")
    with open(ng, "wb") as fh:
        fh.write(b"\x00\x01 this is not gzip data at all \xff\xfe\n" * 20)
    run("a .gz that is not gzip at all", [ng], "s-notgz", name_in_error="notgzip.csv.gz")


def lines_with(err, word):
    return [ln for ln in err.splitlines() if word in ln]


def local_text(t):
    return time.strftime("%Y-%m-%d %H:%M:%S%z", time.localtime(t))


@scenario(batch_max_records="50")
def windows(e):
    """Windowed runs add up to the whole with nothing twice: the window is
    kept with the progress; a window selecting nothing is said per run and
    records nothing; a run without a window delivers exactly the rest."""
    def T(n):
        return TIME_BASE + n
    write_records(os.path.join(e.arch, "bounces-2024-01-05-0001.csv"), range(1, 301))
    write_records(os.path.join(e.arch, "bounces-2024-01-05-0002.csv.gz"), range(301, 601),
                  gz=True)

    def untimed(n):
        f = record_fields(n)
        f["timeLogged"] = ""
        return [f[k] for k in HEADER_FIELDS]
    write_rows(os.path.join(e.arch, "bounces-2024-01-05-0003.csv"), HEADER_FIELDS,
               [untimed(n) for n in range(601, 611)])
    total = collections.Counter()
    runs = [("--since T451", ["--since", str(T(451))], range(451, 601)),
            ("--since T151 --until T451", ["--since", str(T(151)), "--until", str(T(451))],
             range(151, 451)),
            ("the same window again", ["--since", str(T(151)), "--until", str(T(451))], []),
            ("a window inside a delivered one", ["--since", str(T(200)), "--until", str(T(300))],
             [])]
    for label, args, want in runs:
        e.backend.clear()
        rc, out, err = e.replay(*args, e.arch)
        c = e.counts()
        total.update(c)
        check("windows: %s: exit 0 (%r)" % (label, rc), rc == 0, e.tail(err))
        exactly_once("windows: %s" % label, c, list(want), e.tail(err, 3))
        check("windows: %s: summary sent=%d (%s)" % (label, len(want), summary_line(err)),
              summary_of(err).get("sent", "0") == str(len(want)))

    # A window in the wrong time zone (hours before every record): said, with
    # the files' times, and nothing recorded as done.
    e.backend.clear()
    before = e.replay_json()
    rc, out, err = e.replay("--since", str(T(-20000)), "--until", str(T(-10000)), e.arch)
    said = lines_with(err, "no record of")
    want_msg = "no record of 3 files falls in the window; their times run from %s to %s" % (
        local_text(T(1)), local_text(T(600)))
    check("windows: a window selecting nothing: exit 0, nothing sent, said once per run: %r" %
          want_msg, rc == 0 and e.backend.stats()["requests"] == 0 and len(said) == 1 and
          want_msg in said[0], said + e.tail(err, 3))
    check("windows: ... summary files_outside_window=3 (%s)" % summary_line(err),
          summary_of(err).get("files_outside_window") == "3")
    after = e.replay_json()
    check("windows: ... and the delivered part of each file is what it was",
          [(x.get("offset"), x.get("done")) for x in before.get("files", [])] ==
          [(x.get("offset"), x.get("done")) for x in after.get("files", [])])

    # No window: exactly the rest (1..150, and the records without a time).
    e.backend.clear()
    rc, out, err = e.replay(e.arch)
    c = e.counts()
    total.update(c)
    rest = list(range(1, 151)) + list(range(601, 611))
    check("windows: no window: exit 0 (%r)" % (rc,), rc == 0, e.tail(err))
    exactly_once("windows: no window delivers exactly the rest", c, rest, e.tail(err, 3))
    check("windows: no window: summary already_delivered=450 (%s)" % summary_line(err),
          summary_of(err).get("already_delivered") == "450")
    exactly_once("windows: over every run", total, list(range(1, 611)))
    rj = e.replay_json()
    check("windows: replay.json: every file done, as a whole",
          len(rj.get("files", [])) == 3 and all(x.get("done") is True and not x.get("windows")
                                                for x in rj["files"]), ["%.400r" % (rj,)])
    e.backend.clear()
    rc, out, err = e.replay(e.arch)
    check("windows: again: nothing sent, 3 files already replayed",
          rc == 0 and e.backend.stats()["requests"] == 0 and
          len(lines_with(err, "already replayed")) == 3, e.tail(err))
    e.backend.clear()
    rc, out, err = e.replay("--since", str(T(10)), e.arch)
    check("windows: any window after that: nothing sent",
          rc == 0 and e.backend.stats()["requests"] == 0, e.tail(err))
    check("windows: no journal left beside replay.json",
          not os.path.exists(os.path.join(e.state, "replay.journal")))


@scenario(batch_max_records="50")
def truncated(e):
    """A truncated .gz as the newest archive: every event read from it comes
    out, in a dry run and delivering; the file is failed with how many
    records were read and where it stopped; the complete file later
    delivers exactly the rest."""
    write_records(os.path.join(e.arch, "bounces-2024-01-05-0001.csv"), range(1, 201))
    write_records(os.path.join(e.arch, "bounces-2024-01-05-0002.csv.gz"), range(201, 401),
                  gz=True)
    raw = HEADER + b"".join(record_bytes(n) for n in range(401, 801))
    comp = gzip.compress(raw, 6)
    tr = os.path.join(e.arch, "bounces-2024-01-05-0003.csv.gz")
    with open(tr, "wb") as fh:
        fh.write(comp[:len(comp) * 2 // 3])
    rc, out, err = e.replay("--dry-run", e.arch)
    got = numbers_of(ndjson(out))
    fail = [ln for ln in err.splitlines() if "cannot read file=" in ln and "0003" in ln]
    m = re.search(r"offset=(\d+) .*records_read=(\d+)", fail[0]) if fail else None
    k = int(m.group(2)) if m else -1
    sm = summary_of(err)
    check("truncated: --dry-run: exit 1 (%r), the file named failed with offset and "
          "records_read" % (rc,), rc == 1 and m is not None and sm.get("files_failed") == "1",
          fail + e.tail(err, 3))
    check("truncated: --dry-run: every event read comes out (%d printed, %d read from the "
          "broken file)" % (len(got), k),
          k > 0 and got == list(range(1, 401 + k)), ["printed u%s" % ranges(got)[:200]])
    check("truncated: --dry-run: summary records=events=%d (%s)" % (len(got), summary_line(err)),
          sm.get("records") == str(len(got)) and sm.get("events") == str(len(got)))
    if m:
        stop = int(m.group(1))
        ends = [len(HEADER + b"".join(record_bytes(n) for n in range(401, 401 + j)))
                for j in (k, k + 1)]
        check("truncated: it stopped past the last record read (offset %d in [%d, %d))" % (
            stop, ends[0], ends[1]), ends[0] <= stop < ends[1])

    rc, out, err = e.replay(e.arch)
    c = e.counts()
    check("truncated: delivering: exit 1 (%r)" % (rc,), rc == 1, e.tail(err))
    exactly_once("truncated: delivering: the events read, the broken file's included", c,
                 list(range(1, 401 + k)), e.tail(err, 3))
    # the archive completed (the gzip that was still writing it finished)
    with open(tr, "wb") as fh:
        fh.write(comp)
    e.backend.clear()
    rc, out, err = e.replay(e.arch)
    c2 = e.counts()
    check("truncated: the completed file: exit 0 (%r)" % (rc,), rc == 0, e.tail(err))
    exactly_once("truncated: the completed file delivers exactly the rest", c2,
                 list(range(401 + k, 801)), e.tail(err, 3))


@scenario(batch_max_records="50", concurrency="1")
def logrotate(e):
    """logrotate's names (numbered, dateext, compressed) are read, in order,
    by replay and report."""
    now = time.time()
    num = os.path.join(e.tmp, "numbered")
    dated = os.path.join(e.tmp, "dated")
    e.makedirs(num, dated)
    # numbered: same mtime everywhere, larger N older
    files = [("bounces.csv.3.gz", range(1, 101)), ("bounces.csv.2.gz", range(101, 201)),
             ("bounces.csv.1", range(201, 301)), ("bounces.csv", range(301, 401))]
    for name, nums in files:
        p = os.path.join(num, name)
        write_records(p, nums, gz=name.endswith(".gz"))
        os.utime(p, (now, now))
    # dateext: mtimes against the dates
    dfiles = [("bounces.csv-20261205.gz", range(1001, 1101), now - 10),
              ("bounces.csv-20261206", range(1101, 1201), now - 20),
              ("bounces.csv-20261207.gz", range(1201, 1301), now - 30),
              ("bounces.csv", range(1301, 1401), now)]
    for name, nums, mt in dfiles:
        p = os.path.join(dated, name)
        write_records(p, nums, gz=name.endswith(".gz"))
        os.utime(p, (mt, mt))
    for label, d, want in [("numbered", num, list(range(1, 401))),
                           ("dateext", dated, list(range(1001, 1401)))]:
        rc, out, err = e.replay("--dry-run", d)
        got = numbers_of(ndjson(out))
        check("logrotate: %s: --dry-run reads all 4 files in order (exit %r)" % (label, rc),
              rc == 0 and got == want, ["got u%s" % ranges(got)[:200]] + e.tail(err, 5))
        e.backend.clear()
        rc, out, err = e.replay(d)
        nums = numbers_of(e.accepted())
        check("logrotate: %s: delivered once, in order (exit %r)" % (label, rc),
              rc == 0 and nums == want, ["got u%s" % ranges(nums)[:200]] + e.tail(err, 5))
        rc, out, err = e.command("report", "--json", d)
        try:
            rep = json.loads(out)
        except ValueError:
            rep = {}
        recs = (rep.get("records") or {}) if isinstance(rep, dict) else {}
        total = recs.get("total") if isinstance(recs, dict) else None
        sm = summary_of(err)
        check("logrotate: %s: report reads the 400 records (exit %r, %s)" % (
            label, rc, summary_line(err)), rc == 0 and sm.get("records") == "400" and
            sm.get("files") == "4", e.tail(err, 3))


@scenario(batch_max_records="50")
def same_content(e):
    """One archive present twice (x.csv and x.csv.gz) is read once, said; a
    gzip between two runs changes nothing, also for a file half delivered."""
    a = os.path.join(e.arch, "bounces-2024-01-05-0001.csv")
    write_records(a, range(1, 501))
    subprocess.run(["gzip", "-k", a], check=True)
    rc, out, err = e.replay(e.arch)
    check("same-content: exit 0 (%r)" % (rc,), rc == 0, e.tail(err))
    exactly_once("same-content: x.csv + x.csv.gz", e.counts(), list(range(1, 501)),
                 e.tail(err, 3))
    said = lines_with(err, "read once")
    check("same-content: said: the .gz left out as the same content, read once",
          any("0001.csv.gz" in ln and "same content" in ln for ln in said), said[:3])
    rc, out, err = e.replay("--dry-run", e.arch)
    check("same-content: --dry-run prints 500 events (%d)" % len(ndjson(out)),
          len(ndjson(out)) == 500)
    rc, out, err = e.command("report", e.arch)
    check("same-content: report counts 500 records (%s)" % summary_line(err),
          summary_of(err).get("records") == "500", e.tail(err, 3))
    # the nightly gzip: the plain file goes, its .gz stays
    os.unlink(a)
    e.backend.clear()
    rc, out, err = e.replay(e.arch)
    check("same-content: gzipped since: nothing sent, already replayed",
          rc == 0 and e.backend.stats()["requests"] == 0 and
          len(lines_with(err, "already replayed")) == 1, e.tail(err))

    # half delivered (a window), then gzipped and renamed: exactly the rest
    b = os.path.join(e.arch, "bounces-2024-01-05-0002.csv")
    write_records(b, range(1001, 1301))
    e.backend.clear()
    rc, out, err = e.replay("--until", str(TIME_BASE + 1151), e.arch)
    exactly_once("same-content: the first half", e.counts(), list(range(1001, 1151)),
                 e.tail(err, 3))
    subprocess.run(["gzip", b], check=True)
    os.rename(b + ".gz", os.path.join(e.arch, "moved-2024-01-05-0002.csv.gz"))
    e.backend.clear()
    rc, out, err = e.replay(e.arch)
    check("same-content: after gzip and rename: exit 0 (%r)" % (rc,), rc == 0, e.tail(err))
    exactly_once("same-content: after gzip and rename, exactly the rest", e.counts(),
                 list(range(1151, 1301)), e.tail(err, 3))


@scenario(batch_max_records="50")
def not_regular(e):
    """FIFOs, devices, dangling links and link loops: never opened for
    reading, refused or left out with their names, at once."""
    write_records(os.path.join(e.arch, "bounces-2024-01-05-0001.csv"), range(1, 51))
    fifo = os.path.join(e.arch, "bounces-2024-01-05-0002.csv")
    os.mkfifo(fifo)
    os.symlink(os.path.join(e.tmp, "nowhere.csv"),
               os.path.join(e.arch, "bounces-2024-01-05-0003.csv"))
    loop = os.path.join(e.arch, "bounces-2024-01-05-0004.csv")
    os.symlink(loop, loop)
    t0 = time.monotonic()
    rc, out, err = e.replay(e.arch, timeout=20)
    check("not-regular: replay DIR: exit 0 at once (%r, %.1f s)" % (rc, time.monotonic() - t0),
          rc == 0, e.tail(err))
    exactly_once("not-regular: the regular file delivered", e.counts(), list(range(1, 51)))
    sk = [ln for ln in err.splitlines() if ln.startswith("skipped:")]
    want = ["0002.csv (a FIFO, not a regular file)", "0003.csv (a link to nothing)",
            "0004.csv (a symbolic link loop)"]
    check("not-regular: listed once, each with why", len(sk) == 1 and
          all(w in sk[0] for w in want) and summary_of(err).get("skipped") == "3", sk)
    for label, args in [("the FIFO named", [fifo]), ("a glob matching the FIFO",
                                                     [os.path.join(e.arch, "*.csv")]),
                        ("/dev/zero", ["/dev/zero"])]:
        for cmd in (["replay", "--dry-run"], ["report"]):
            rc, out, err = e.command(*(cmd + args), timeout=20)
            what = "a device" if "zero" in args[0] else "a FIFO"
            named = [ln for ln in err.splitlines() if "refusing" in ln and what in ln]
            check("not-regular: %s %s: refused at once, named (exit %r)" % (
                cmd[0], label, rc), rc == 1 and bool(named), e.tail(err, 3))


@scenario(batch_max_records="50")
def rate_file(e):
    """--rate with a file output is honoured, not only shown."""
    outp = os.path.join(e.tmp, "events.ndjson")
    conf = os.path.join(e.tmp, "file.conf")
    with open(conf, "w") as fh:
        fh.write("[output]\nfile = %s\n\n[state]\ndir = %s\n" % (outp, os.path.join(e.tmp, "fs")))
    write_records(os.path.join(e.arch, "bounces-2024-01-05-0001.csv"), range(1, 151))
    write_records(os.path.join(e.arch, "bounces-2024-01-05-0002.csv"), range(151, 301))
    t0 = time.monotonic()
    rc, out, err = e.replay("--rate", "100", e.arch, conf=conf)
    took = time.monotonic() - t0
    with open(outp) as fh:
        n = len(fh.read().splitlines())
    check("rate-file: exit 0, 300 events written (%r, %d)" % (rc, n), rc == 0 and n == 300,
          e.tail(err))
    # 300 events at 100/s: the last ones are not due before 2.9 s
    check("rate-file: --rate 100 held: 300 events took %.1f s (at least 2.5)" % took,
          took >= 2.5)
    check("rate-file: the progress line shows the rate applied",
          "(max 100/s)" in err, e.tail(err, 3))


# -------------------------------------------------------------- main


def main(argv):
    global BINARY
    BINARY, rc = binary_arg(argv, __doc__)
    if BINARY is None:
        return rc
    return run_scenarios(SCENARIOS, ONLY, lambda name, fn: Env(name, **fn.env), tb_lines=8, stderr_tail=False)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
