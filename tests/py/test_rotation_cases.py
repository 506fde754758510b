#!/usr/bin/python3
"""Named rotation cases, each a fixed operation sequence of the rotation
fuzzer's engine (tests/py/rotation_fuzz.py) against the real daemon.

    python3 tests/py/test_rotation_cases.py PMTATAIL_BINARY

Every case ends with the fuzzer's oracle: every record written delivered
(once; a second time only for what was in flight at a kill -9 or answered
just before an outage), fields and message exact, each record under its own
source, SIGTERM exits 0, the daemon never dies, a clean restart resends
nothing. Then the case's own detail.

  crash_at_start_copytruncate  copytruncate `rotate 1` while stopped, the new
                               bounces.csv.1 on the inode of the old one: the
                               daemon starts, does not crash, delivers all
  crash_at_start_copy_move     move-to by copy + delete and delete-after while
                               stopped, the copy on a deleted archive's inode
  loss_a_copytruncate_reuse    the same inode reuse while the daemon runs
  loss_b_truncate_window_full  copytruncate while reading is paused (window
                               full), the live file regrown past the read offset
  loss_c_unreadable_then_rotated
                               the live file mode 000 at start, rotated before
                               it is readable (and again across a restart)
  unreadable_at_start_then_readable
                               the live file mode 000 at one start, readable at
                               the next: read on, never taken for rewritten
  unreadable_original_copied_across_restart
                               move-to's copy of a mode 000 file, a restart
                               before the delete: the copy is not read whole
  finished_empty_entry_on_live_inode
                               a finished entry of an empty file on the
                               inode the live file has now: the live file is read
  finished_in_unsearchable_dir a finished archive in a mode 000 directory when
                               another file finishes: kept, not read again
  loss_d_dir_unlistable        the move-to directory mode 000 at start: a
                               tracked file is not dropped as gone
  loss_e_forgotten_source      archives gzipped and deleted, entries pruned,
                               a rotation while stopped: the file is read
  repeat_f_copy_during_outage  copy + delete during an outage, the new live
                               file a header alone at first: nothing twice
  repeat_g_truncate_in_flight  copytruncate with batches in flight: no
                               whole-window resend
  repeat_h_restart_mid_copy    SIGTERM restart between move-to's copy and its
                               delete: the copy is not read whole again
  repeat_i_replay_gzip         `replay` interrupted, the archives gzipped,
                               replay again: nothing resent
  names_sibling_and_order      acct.csv beside acct-bd.csv (two sources; and
                               one source with the sibling written): never
                               crossed; NNNN 0058..0101 read in sequence order
  inode_reuse_general          a gone file's entry never blocks a new file on
                               its inode (running and stopped)

At the end a table of the numbers per case (records, lost, duplicated,
deleted unread, crashes). Environment: PMTATAIL_ROT_ONLY (comma-separated
case names, - or _), PMTATAIL_ROT_KEEP (keep the temporary directories),
PMTATAIL_ROT_RESULTS (write the table as JSON to this file). Standard library
only; exits 1 if any check failed.
"""

import collections
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import binary_arg, check, info, poll_until, read_offsets, run_scenarios  # noqa: E402
from harness import wait_or_kill  # noqa: E402
from pmta_sim import ranges, rcpt_number  # noqa: E402
import rotation_fuzz as rf  # noqa: E402

ONLY = [s for s in os.environ.get("PMTATAIL_ROT_ONLY", "").replace("_", "-").split(",") if s]
KEEP = bool(os.environ.get("PMTATAIL_ROT_KEEP"))
RESULTS_FILE = os.environ.get("PMTATAIL_ROT_RESULTS")
BINARY = None
TABLE = collections.OrderedDict()

SCENARIOS = []


def scenario(fn):
    SCENARIOS.append(fn)
    return fn


def ops(r, *seq):
    """Run plan entries: ("append", {"k": 40}) or "restart"."""
    for x in seq:
        if isinstance(x, str):
            x = (x, {})
        r.do(dict(x[1], op=x[0]))


def ended(r, label, final_restart=True, timeout=20.0):
    """The oracle's checks, the numbers kept for the table."""
    r.finish_run(timeout, final_restart=final_restart)
    res = r.judge()
    kinds = collections.defaultdict(list)
    for k, t in r.failures:
        kinds[k].append(t)
    check("%s: the daemon never died (crashes %d)" % (label, r.crashes),
          not kinds.get("crash"), kinds.get("crash", [])[:3] + r.log_lines(None, 6))
    check("%s: SIGTERM exits 0" % label, not kinds.get("exit"), kinds.get("exit", [])[:3])
    check("%s: all %d records delivered (lost %d, deleted unread %d)" % (
        label, res["required"], res["lost"], res["deleted_unread"]), not kinds.get("lost"),
        kinds.get("lost", []) + r.log_lines(None, 8))
    check("%s: nothing delivered twice beyond a kill's in-flight records or an outage's "
          "unread answers (%d duplicate events, %d after kills, %d after outages)" % (
              label, res["dup_events"], res["dup_after_kill"], res["dup_after_outage"]),
          not kinds.get("duplicate") and not kinds.get("over-twice"),
          kinds.get("duplicate", []) + kinds.get("over-twice", []) + r.log_lines(None, 8))
    check("%s: a clean restart at the end resends nothing" % label, not kinds.get("resend"),
          kinds.get("resend", []))
    check("%s: every record delivered while running, none only after a restart" % label,
          not kinds.get("stall"), kinds.get("stall", []) + r.log_lines(None, 6))
    check("%s: fields and message exact" % label, not kinds.get("fields"),
          kinds.get("fields", []))
    check("%s: every record under its own source, no stray event" % label,
          not kinds.get("source") and not kinds.get("stray"),
          kinds.get("source", []) + kinds.get("stray", []))
    check("%s: the test itself ran" % label, not kinds.get("exception"),
          kinds.get("exception", []))
    row = {k: res.get(k) for k in ("records", "lost", "dup_events", "dup_after_kill",
                                   "dup_after_outage", "dup_unexcused", "deleted_unread",
                                   "kills", "crashes", "reuse_hits")}
    row["ok"] = not r.failures
    TABLE[label] = row
    info("%s: %s" % (label, json.dumps(row)))
    return res


class Case(rf.Run):
    """A Run that is also a harness environment (cleanup, stderr_tail)."""

    def __init__(self, name, **kw):
        super().__init__(BINARY, seed=sum(map(ord, name)), name=name, keep=KEEP, **kw)


def reused(r, label):
    info("%s: freed inodes taken by the next file: %d" % (label, r.reuse_hits))
    return r.reuse_hits


def wait_all(r, timeout=10):
    """Every record written so far accepted (a step before a delete or a
    stop relies on it): a check of its own, so that a file never read is
    not excused later as deleted while unread."""
    ok = poll_until(lambda: r.delivered(sorted(r.complete)), timeout, 0.05)
    c = r.accepted_counts()
    miss = [n for n in sorted(r.complete) if not c.get(n)]
    check("%s: the %d records written so far delivered within %d s (after op %d)" % (
        r.name, len(r.complete), timeout, len(r.ops_done)), ok,
        ["missing u%s" % ranges(miss)[:300]] + r.log_lines(None, 6))
    if not ok:
        r.failures.append(("unread", "%d records not delivered %d s after op %d (u%s)" % (
            len(miss), timeout, len(r.ops_done), ranges(miss)[:200])))
    return ok


# ------------------------------------------------------------------ 1


@scenario
def crash_at_start_copytruncate(r):
    ops(r, "start", ("append", {"k": 50}), ("copytruncate", {"rotate": 1}),
        ("append", {"k": 30}))
    wait_all(r)
    time.sleep(rf.QUIET_S + 0.5)  # the copy is finished and closed
    ops(r, "stop", "inode-reuse", ("copytruncate", {"rotate": 1}), ("append", {"k": 20}),
        "start", ("sleep", {"s": 1.0}))
    check("case 1a: the new bounces.csv.1 took the old copy's inode", reused(r, "case 1a"),
          ["ext4 did not hand the inode out again; the case is weaker"])
    check("case 1a: the daemon runs after the start", r.alive(), r.log_lines(-1, 8))
    ended(r, "case 1a crash-at-start copytruncate")


@scenario
def crash_at_start_copy_move(r):
    ops(r, "start", ("append", {"k": 40}), "moveto-copy", ("append", {"k": 30}),
        "moveto-copy", ("append", {"k": 20}))
    wait_all(r)
    time.sleep(rf.QUIET_S + 0.5)
    ops(r, "stop", "delete-archive", "inode-reuse", "moveto-copy", ("append", {"k": 10}),
        "start", ("sleep", {"s": 1.0}))
    check("case 1b: the copy took the deleted archive's inode", reused(r, "case 1b"))
    check("case 1b: the daemon runs after the start", r.alive(), r.log_lines(-1, 8))
    ended(r, "case 1b crash-at-start copy-move")


# ------------------------------------------------------------------ 2


@scenario
def loss_a_copytruncate_reuse(r):
    ops(r, "start", ("append", {"k": 50}), ("copytruncate", {"rotate": 1}),
        ("append", {"k": 30}))
    wait_all(r)
    time.sleep(rf.QUIET_S + 0.5)
    ops(r, "inode-reuse", ("copytruncate", {"rotate": 1}), ("append", {"k": 732}),
        ("sleep", {"s": 1.0}), "inode-reuse", ("copytruncate", {"rotate": 1}),
        ("append", {"k": 20}))
    check("case 2: a new bounces.csv.1 took the old copy's inode", reused(r, "case 2"))
    ended(r, "case 2 loss-a copytruncate inode reuse (running)")


# ------------------------------------------------------------------ 3


@scenario
def loss_b_truncate_window_full(r):
    ops(r, "start", ("append", {"k": 50}))
    wait_all(r)
    ops(r, ("pause", {"burst": 1500}), ("sleep", {"s": 1.0}), ("copytruncate", {"rotate": 1}),
        ("append", {"k": 1600}), ("sleep", {"s": 1.0}), "resume")
    ended(r, "case 3 loss-b copytruncate with the window full", timeout=40)


# ------------------------------------------------------------------ 4


@scenario
def loss_c_unreadable_then_rotated(r):
    ops(r, ("append", {"k": 40}), "chmod-live", "start", ("sleep", {"s": 1.0}),
        ("moveto-rename", {"create_now": True}), ("append", {"k": 20}), ("sleep", {"s": 1.0}),
        "unlock", ("sleep", {"s": 1.0}))
    r.say("-- again across a restart")
    ops(r, ("append", {"k": 30}), "chmod-live", "restart", ("sleep", {"s": 0.5}),
        ("moveto-rename", {"create_now": True}), ("append", {"k": 10}), "restart",
        ("sleep", {"s": 0.5}), "unlock")
    ended(r, "case 4 loss-c unreadable live file rotated")


@scenario
def unreadable_at_start_then_readable(r):
    # The live file first found unreadable at a start is known by its inode
    # alone; once readable it is the same file read on, never a rewrite
    # read again from 0 (its record twice). The rotation fuzzer's seed 2986.
    ops(r, "start", "stop", "chmod-live", "start", ("sleep", {"s": 0.5}), "stop", "unlock",
        "start", ("sleep", {"s": 1.0}), ("append", {"k": 5}))
    ended(r, "unreadable at a start, readable at the next")


@scenario
def unreadable_original_copied_across_restart(r):
    # Move-to by copy while the file read is mode 000, a restart between the
    # copy and the delete: the copy cannot be told from the original yet,
    # so it waits to be told (not read whole as rotated while stopped).
    ops(r, "start", ("append", {"k": 20}), ("sleep", {"s": 0.5}), "chmod-live",
        ("moveto-copy", {"restart_between": True}), "unlock", ("append", {"k": 5}))
    ended(r, "unreadable original copied across a restart")


@scenario
def finished_empty_entry_on_live_inode(r):
    # A finished entry known by its inode alone (an empty file rotated and
    # finished, then deleted) and the live file written while the daemon was
    # stopped on that inode: a finished file never grows, so the live file is
    # not taken for it (its records would never be read), it is read whole.
    ops(r, "start", ("append", {"k": 3}))
    wait_all(r)
    ops(r, "stop", ("moveto-rename", {"create_now": False}), ("append", {"k": 4}))
    src = r.sources[0]
    st = os.stat(src.live)
    path = os.path.join(r.state, "offsets.json")
    with open(path) as fh:
        table = json.load(fh)
    table["files"].append({
        "source": src.name, "dev": st.st_dev, "ino": st.st_ino, "fp": "0" * 16, "fp_len": 0,
        "path": os.path.join(src.archive_dir, "bounces-2024-01-04-0009.csv"), "offset": 0,
        "finished": True, "seen": int(time.time()) - 60})
    with open(path, "w") as fh:
        json.dump(table, fh)
    ops(r, "start", ("sleep", {"s": 1.0}), ("append", {"k": 2}))
    ended(r, "a finished empty file's entry on the live file's inode")


@scenario
def finished_in_unsearchable_dir(r):
    # A finished archive whose directory cannot be searched for a while
    # (mode 000) when another file finishes: the table's pruning cannot tell
    # whether it is still there, so it keeps it (pruned, it was read again
    # as new once the directory could be listed).
    ops(r, "start", ("append", {"k": 5}), ("moveto-rename", {"create_now": True}),
        ("sleep", {"s": 1.0}), "chmod-dir", ("append", {"k": 3}),
        ("moveto-rename", {"create_now": True}), ("sleep", {"s": 3.0}), "unlock",
        ("sleep", {"s": 1.0}), ("append", {"k": 2}))
    ended(r, "a finished file in a directory that cannot be searched")


# ------------------------------------------------------------------ 5


@scenario
def loss_d_dir_unlistable(r):
    ops(r, "start", ("append", {"k": 20}), "outage", ("append", {"k": 60}),
        ("moveto-rename", {"create_now": True}), ("append", {"k": 10}), ("sleep", {"s": 0.5}),
        "stop", "chmod-dir", "start", ("sleep", {"s": 1.5}), "up", ("sleep", {"s": 2.5}))
    gone = r.said(r"gone|vanished|deleted|forget|drop")
    info("case 5: log lines about files gone while the directory was unlistable: %s"
         % gone[:4])
    ops(r, "unlock")
    ended(r, "case 5 loss-d archive directory unlistable")


# ------------------------------------------------------------------ 6


@scenario
def loss_e_forgotten_source(r):
    ops(r, "start", ("append", {"k": 30}), "moveto-rename", ("append", {"k": 20}),
        "moveto-rename", ("append", {"k": 10}))
    wait_all(r)
    time.sleep(rf.QUIET_S + 0.5)
    ops(r, "gzip-archive", "delete-archive", "restart", ("sleep", {"s": 1.0}), "stop")
    ents = [e for e in (read_offsets(r.state) or {}).get("files", [])
            if e.get("source") == "bounces"]
    info("case 6: entries of source bounces at the stop: %s" % [
        (os.path.basename(e["path"]), e["offset"], e["finished"]) for e in ents])
    ops(r, ("append", {"k": 15}), "moveto-rename", ("append", {"k": 5}), "start")
    ended(r, "case 6 loss-e rotated while stopped after entries pruned")


# ------------------------------------------------------------------ 7


@scenario
def repeat_f_copy_during_outage(r):
    ops(r, "start", ("append", {"k": 40}))
    wait_all(r)
    ops(r, "outage", ("append", {"k": 30}), ("sleep", {"s": 0.5}), "moveto-copy",
        "create-live", ("sleep", {"s": 1.5}), "up", ("sleep", {"s": 1.0}),
        ("append", {"k": 20}))
    ended(r, "case 7 repeat-f copy-move during an outage")


# ------------------------------------------------------------------ 8


@scenario
def repeat_g_truncate_in_flight(r):
    ops(r, "start", ("slow", {"ms": 1500}), ("append", {"k": 300}), ("sleep", {"s": 0.5}),
        ("copytruncate", {"rotate": 1}), ("append", {"k": 50}), ("sleep", {"s": 1.0}),
        "resume")
    ended(r, "case 8 repeat-g copytruncate with batches in flight", timeout=30)


# ------------------------------------------------------------------ 9


@scenario
def repeat_h_restart_mid_copy(r):
    ops(r, "start", ("append", {"k": 40}))
    wait_all(r)
    ops(r, ("moveto-copy", {"restart_between": True}), ("append", {"k": 20}))
    ended(r, "case 9 repeat-h restart between move-to's copy and delete")


# ------------------------------------------------------------------ 10


def replay_proc(r, tag):
    err = os.path.join(r.logs, "replay-%s.stderr" % tag)
    with open(err, "wb") as eh:
        p = subprocess.Popen([r.binary, "-c", r.conf, "replay", r.archive],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=eh,
                             preexec_fn=r._pre)
    p.errp = err
    return p


def replay_err(p):
    with open(p.errp, "rb") as fh:
        return fh.read().decode("utf-8", "replace")


@scenario
def repeat_i_replay_gzip(r):
    # enough that the replay's read-ahead (about 1000 records) is a part
    for _ in range(3):
        ops(r, ("append", {"k": 1500}), "moveto-rename")
    total = len(r.complete)
    r.backend.set_delay_ms(400)
    for sig, tag in ((signal.SIGINT, "SIGINT"), (signal.SIGKILL, "SIGKILL")):
        r.backend.clear()
        for f in r.archives(r.src):  # plain again for the second round
            if f.gz:
                with gzip.open(f.path, "rb") as fi:
                    data = fi.read()
                plain = f.path[:-3]
                with open(plain, "wb") as fo:
                    fo.write(data)
                os.unlink(f.path)
                f.path, f.gz = plain, False
        for p in ("replay.json", "replay.journal"):
            try:
                os.unlink(os.path.join(r.state, p))
            except FileNotFoundError:
                pass
        p = replay_proc(r, tag + "-1")
        poll_until(lambda: r.backend.stats()["events_accepted"] >= total // 3
                   or p.poll() is not None, 60)
        mid = p.poll() is None
        p.send_signal(sig)
        rc1 = wait_or_kill(p, 30)
        r.settle()
        c1 = r.accepted_counts()
        rj = {}
        try:
            with open(os.path.join(r.state, "replay.json")) as fh:
                rj = json.load(fh)
        except (OSError, ValueError):
            pass
        covered = set()
        entries = list(rj.get("files", []) if isinstance(rj.get("files"), list) else [])
        try:  # the saves since replay.json: one JSON entry per line
            with open(os.path.join(r.state, "replay.journal"), "rb") as fh:
                for line in fh.read().split(b"\n"):
                    try:
                        entries.append(json.loads(line))
                    except ValueError:
                        pass
        except OSError:
            pass
        for ent in entries:
            if not isinstance(ent, dict):
                continue
            for f in r.files:
                if os.path.basename(f.path) == os.path.basename(str(ent.get("path"))):
                    off = f.size if ent.get("done") else (ent.get("offset") or 0)
                    covered.update(n for n, s, e in f.recs if e <= off)
        check("case 10 %s: replay interrupted midway (%d of %d accepted, exit %r)" % (
            tag, sum(1 for v in c1.values() if v), total, rc1), mid and 0 < len(c1) < total,
            replay_err(p).splitlines()[-4:])
        ops(r, *(["gzip-archive"] * 3))
        r.backend.clear()
        p2 = replay_proc(r, tag + "-2")
        rc2 = wait_or_kill(p2, 120)
        r.settle()
        c2 = r.accepted_counts()
        resent = sorted(n for n in c2 if c1.get(n))
        allowed = set() if sig == signal.SIGINT else set(n for n in c1 if n not in covered)
        bad = [n for n in resent if n not in allowed]
        missing = [n for n in sorted(r.complete) if not c1.get(n) and not c2.get(n)]
        TABLE["case 10 repeat-i replay %s" % tag] = {
            "records": total, "lost": len(missing), "dup_events": len(resent),
            "dup_unexcused": len(bad), "ok": not bad and not missing and rc2 == 0}
        info("case 10 %s: run 1 accepted %d, covered by replay.json %d; run 2 accepted %d, "
             "resent %d (%d beyond what was in flight)" % (
                 tag, len(c1), len(covered), len(c2), len(resent), len(bad)))
        check("case 10 %s: the second replay (archives gzipped) exits 0 (%r)" % (tag, rc2),
              rc2 == 0, replay_err(p2).splitlines()[-4:])
        check("case 10 %s: every record delivered over both replays" % tag, not missing,
              ["missing %d: u%s" % (len(missing), ranges(missing)[:300])])
        check("case 10 %s: the gzipped archives resend nothing already delivered "
              "(%d resent%s)" % (tag, len(bad), "" if sig == signal.SIGINT else
                                 " beyond the records in flight at the kill"),
              not bad, ["u%s" % ranges(bad)[:300]] + replay_err(p2).splitlines()[-6:])
    r.backend.set_delay_ms(0)


# ------------------------------------------------------------------ 11

ORDER_SEQS = [58, 59, 60, 99, 100, 101]


@scenario
def names_sibling_and_order(r):
    # two sources, acct.csv and acct-bd.csv, one directory, one archive directory
    ops(r, "start", ("append", {"k": 30, "source": 0}), ("append", {"k": 30, "source": 1}),
        ("moveto-rename", {"source": 1, "create_now": True}), ("append", {"k": 20, "source": 1}),
        ("moveto-rename", {"source": 0}), ("append", {"k": 20, "source": 0}),
        ("copytruncate", {"rotate": 1, "source": 1}), ("append", {"k": 10, "source": 1}),
        ("append", {"k": 10, "source": 0}))
    ents = []
    res = ended(r, "case 11a names: acct and acct-bd both configured")
    ents = (read_offsets(r.state) or {}).get("files", [])
    crossed = [e for e in ents if e.get("source") == "acct"
               and os.path.basename(e.get("path", "")).startswith("acct-bd")]
    check("case 11a: no entry of source acct names an acct-bd file", not crossed,
          [json.dumps(e)[:200] for e in crossed[:3]])
    return res


names_sibling_and_order.env = {"sources": ("acct", "acct-bd")}


@scenario
def names_sibling_unconfigured(r):
    """One source acct; acct-bd.csv beside it written and rotated: none of
    its records is ever delivered, none of its files finished for acct."""
    r.sources_configured = 1
    r.write_conf_only(1)
    ops(r, "start", ("append", {"k": 20, "source": 0}), ("append", {"k": 25, "source": 1}),
        ("moveto-rename", {"source": 1}), ("append", {"k": 15, "source": 1}),
        ("copytruncate", {"rotate": 1, "source": 1}), ("append", {"k": 5, "source": 1}),
        ("moveto-rename", {"source": 0}), ("append", {"k": 10, "source": 0}), "restart")
    sib = [n for n, s in r.rec_source.items() if s == "acct-bd"]
    for n in sib:
        r.excused[n] = "not configured"
    r.finish_run()
    c = r.accepted_counts()
    leaked = sorted(n for n in sib if c.get(n))
    acct = [n for n, s in r.rec_source.items() if s == "acct" and n in r.complete]
    missing = [n for n in acct if not c.get(n)]
    TABLE["case 11b names: sibling not configured"] = {
        "records": len(acct), "lost": len(missing), "leaked_sibling": len(leaked),
        "ok": not leaked and not missing}
    check("case 11b: no record of acct-bd.csv delivered under acct (%d leaked)" % len(leaked),
          not leaked, ["u%s" % ranges(leaked)[:300]])
    check("case 11b: every record of acct delivered", not missing,
          ["u%s" % ranges(missing)[:300]])
    ents = (read_offsets(r.state) or {}).get("files", [])
    crossed = [e for e in ents if os.path.basename(e.get("path", "")).startswith("acct-bd")]
    check("case 11b: no entry (finished or not) for an acct-bd file", not crossed,
          [json.dumps(e)[:200] for e in crossed[:3]])


names_sibling_unconfigured.env = {"sources": ("acct", "acct-bd")}


@scenario
def names_order(r):
    """Archives NNNN 0058, 0059, 0060, 0099, 0100, 0101 of one day, rotated
    while the daemon was stopped and found together at its start: read in
    sequence order (one request at a time). (Archives found at the very
    first start, before the source was ever read, are history, not read.)"""
    s = r.src
    ops(r, ("append", {"k": 5}), "start")
    wait_all(r)
    ops(r, "stop")
    order_files = []
    for q in ORDER_SEQS:
        s.seq = q - 1
        ops(r, ("append", {"k": 12}), "moveto-rename")
        order_files.append(r.file_at(os.path.join(r.archive, "bounces-2024-01-05-%04d.csv" % q)))
    ops(r, ("append", {"k": 5}), "start")
    res = ended(r, "case 11c names: NNNN sequence order")
    index = {}
    for i, f in enumerate(order_files):
        for n in f.numbers():
            index[n] = i
    firsts, seen = [], set()
    for n in res["order"]:
        if n in index and n not in seen:
            seen.add(n)
            firsts.append(index[n])
    inversions = sum(1 for a, b in zip(firsts, firsts[1:]) if b < a)
    read_as = []
    for i in firsts:
        if not read_as or read_as[-1] != ORDER_SEQS[i]:
            read_as.append(ORDER_SEQS[i])
    info("case 11c: archives read in the order %s" % read_as)
    TABLE["case 11c names: NNNN sequence order"]["order"] = read_as
    check("case 11c: archives read in sequence order 0058..0101 (read as %s)" % read_as,
          inversions == 0 and read_as == ORDER_SEQS)


names_order.env = {"concurrency": 1}


# ------------------------------------------------------------------ 12


@scenario
def inode_reuse_general(r):
    ops(r, "start", ("append", {"k": 30}), ("moveto-rename", {"create_now": True}),
        ("append", {"k": 5}))
    wait_all(r)
    time.sleep(rf.QUIET_S + 0.5)
    ops(r, "delete-archive", "inode-reuse", ("moveto-rename", {"create_now": True}),
        ("append", {"k": 20}), ("sleep", {"s": 1.0}))
    a = reused(r, "case 12 running")
    wait_all(r)
    time.sleep(rf.QUIET_S + 0.5)
    ops(r, "stop", "delete-archive", "inode-reuse", ("moveto-rename", {"create_now": True}),
        ("append", {"k": 20}), "moveto-rename", ("append", {"k": 7}), "start")
    b = reused(r, "case 12 stopped")
    check("case 12: new files took gone files' inodes (%d)" % b, b >= 1)
    ended(r, "case 12 inode reuse general")


def make_env(name, fn):
    kw = dict(getattr(fn, "env", {}))
    r = Case(name.replace("-", "_"), **kw)
    info("case %s in %s" % (name, r.tmp))
    return r


def _write_conf_only(self, k):
    keep = self.sources
    self.sources = keep[:k]
    try:
        self.write_conf()
    finally:
        self.sources = keep


rf.Run.write_conf_only = _write_conf_only


def main(argv):
    global BINARY
    BINARY, rc = binary_arg(argv, __doc__)
    if BINARY is None:
        return rc
    rc = run_scenarios(SCENARIOS, ONLY, make_env)
    print("\nper case (records, lost, duplicate events, after kills, after outages, "
          "unexcused, deleted unread, crashes):")
    for label, row in TABLE.items():
        print("  %-60s %s" % (label, " ".join("%s=%s" % kv for kv in row.items())))
    if RESULTS_FILE:
        with open(RESULTS_FILE, "w") as fh:
            json.dump(TABLE, fh, indent=1)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
