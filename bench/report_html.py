#!/usr/bin/env python3
"""Benchmark `pmtatail report --html` against the text report on a month of
archives: what drawing the charts costs.

    python3 bench/report_html.py [--pmtatail BUILD/src/pmtatail] [--records N]
                                 [--days D] [--rounds R] [--seed S]

It writes bench/out/month-n<N>-d<D>-s<S>-<hash>/: one accounting file per hour
(as PowerMTA's move-interval 1h and move-to leave them), N records in all
(default 1,000,000; 10% `d`), rcpt domains drawn from 50,000 with a long tail
(Zipf), PowerMTA's bounceCats, diagnostic texts with numbers and addresses in
them, and a block at one provider (a burst of policy-related bounces at one
domain in one hour). The directory is reused when it exists.

Then, in the same run and alternating so that the machine's load falls on
both alike, ROUNDS times each (after one warm-up reading of every file):

  (a) pmtatail report DIR > /dev/null            (the text report)
  (b) pmtatail report --html PAGE DIR            (the page)
  (c) pmtatail report --json DIR > /dev/null     (the JSON with the series)

and prints the median wall time of each, the peak RSS (/usr/bin/time -f %M,
else VmHWM polled), the page's size, and the ratios (b)/(a) and (c)/(a).
Target: (b)/(a) <= 1.3. The last line is machine-readable:

  BENCH_REPORT_HTML records=... files=... bytes=... rounds=... text_s=...
        html_s=... json_s=... html_ratio=... json_ratio=... text_rss_kib=...
        html_rss_kib=... page_bytes=...

A benchmark, not a test: it never fails because something is slow, only when
it cannot measure (a run exits non-zero or the binary is missing).
"""

import argparse
import hashlib
import itertools
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HEADER = (b"type,timeLogged,timeQueued,orig,rcpt,orcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,"
          b"bounceCat,vmta,jobId\r\n")
# bounceCat, weight, class-defining dsnStatus, texts ({n}: a number, {a}: an address)
CATS = [
    (b"bad-mailbox", 40, b"5.1.1", [b"550 5.1.1 <{a}>: Recipient address rejected: User unknown",
                                    b"smtp;550 5.1.1 The email account that you tried to reach "
                                    b"does not exist. {n} - gsmtp",
                                    b"550 Requested action not taken: mailbox unavailable"]),
    (b"quota-issues", 12, b"4.2.2", [b"452 4.2.2 Mailbox full ({n} bytes over quota)",
                                     b"552 5.2.2 <{a}>: user is over quota"]),
    (b"policy-related", 10, b"5.7.1", [b"554 5.7.1 Service unavailable; Client host [192.0.2.{n}]"
                                       b" blocked using zen.spamhaus.org",
                                       b"550 5.7.1 Message rejected due to local policy {n}",
                                       b"421 4.7.0 [TS0{n}] Messages from 198.51.100.{n} "
                                       b"temporarily deferred due to user complaints"]),
    (b"inactive-mailbox", 8, b"5.2.1", [b"550 5.2.1 The email account that you tried to reach "
                                        b"is disabled. {n}"]),
    (b"bad-domain", 7, b"5.1.2", [b"550 5.1.2 Host unknown (Name server: example: host not "
                                  b"found)"]),
    (b"spam-related", 6, b"5.7.1", [b"550 5.7.1 \"Message looks like spam, id {n}\""]),
    (b"no-answer-from-host", 5, b"4.4.1", [b"421 4.4.1 Connection timed out after {n}s"]),
    (b"message-expired", 4, b"4.4.7", [b"451 4.4.7 Message expired after {n} attempts"]),
    (b"routing-errors", 3, b"5.4.4", [b"554 5.4.4 Unable to route to {a}"]),
    (b"other", 3, b"5.0.0", [b"500 unexpected answer {n}, see {a}"]),
    (b"relaying-issues", 2, b"5.7.1", [b"550 5.7.1 Relaying denied for <{a}>"]),
]
DOMAINS = 50000


def generator_hash():
    with open(__file__, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()[:10]


def generate(out_dir, records, days, seed):
    rnd = random.Random(seed)
    tmp = out_dir + ".part"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    doms = [b"mail%05d.example" % i for i in range(DOMAINS)]
    doms[:6] = [b"gmail.example", b"yahoo.example", b"outlook.example", b"gmx.example",
                b"web.example", b"orange.example"]
    dom_cum = list(itertools.accumulate(1.0 / (i + 1) ** 1.1 for i in range(DOMAINS)))
    cat_w = [c[1] for c in CATS]
    hours = days * 24
    per_hour = records // hours
    start = 1704067200  # 2024-01-01 00:00:00 UTC
    block_hour = hours * 2 // 3
    nbytes = 0
    k = 0
    for h in range(hours):
        t0 = start + h * 3600
        n = per_hour + (1 if h < records % hours else 0)
        dpick = rnd.choices(doms, cum_weights=dom_cum, k=n)
        cpick = rnd.choices(range(len(CATS)), weights=cat_w, k=n)
        lines = [HEADER]
        for i in range(n):
            k += 1
            t = t0 + (i * 3600) // n
            tm = time.gmtime(t)
            when = (b"%d" % t) if k % 2 else time.strftime("%Y-%m-%d %H:%M:%S+0000", tm).encode()
            dom = dpick[i]
            rcpt = b"u%d@%s" % (k % 997, dom)
            r = k % 10
            if r == 0:
                lines.append(b"d,%s,%s,bounces@sender.example,%s,,relayed,2.0.0,"
                             b"\"smtp;250 ok\",mx.%s,,pool1,%d\r\n" % (when, when, rcpt, dom, k))
                continue
            cat, _, status, texts = CATS[cpick[i]]
            if h == block_hour and i % 3 == 0:
                cat, _, status, texts = CATS[2]
                rcpt = b"u%d@outlook.example" % k
            diag = texts[k % len(texts)].replace(b"{n}", b"%d" % (k % 1000)).replace(
                b"{a}", rcpt)
            if b"," in diag or b"\"" in diag:
                diag = b"\"" + diag.replace(b"\"", b"\"\"") + b"\""
            typ = b"b" if r < 7 else b"rb"
            lines.append(b"%s,%s,%s,bounces@sender.example,%s,%s,failed,%s,%s,mx.%s,%s,pool%d,"
                         b"%d\r\n" % (typ, when, when, rcpt, b"rfc822;" + rcpt if typ == b"rb"
                                      else b"", status, diag, dom, cat, k % 4, k))
        data = b"".join(lines)
        nbytes += len(data)
        name = time.strftime("acct-%Y-%m-%d-%H00.csv", time.gmtime(t0))
        with open(os.path.join(tmp, name), "wb") as fh:
            fh.write(data)
    os.rename(tmp, out_dir)
    return nbytes


def timed(argv, stdout):
    """Wall seconds and peak RSS (KiB) of one run."""
    use_time = os.path.exists("/usr/bin/time")
    cmd = (["/usr/bin/time", "-f", "%M"] if use_time else []) + argv
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE)
    hwm = 0
    if not use_time:
        while p.poll() is None:
            try:
                with open("/proc/%d/status" % p.pid) as fh:
                    for line in fh:
                        if line.startswith("VmHWM:"):
                            hwm = max(hwm, int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.002)
    _, err = p.communicate()
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit("bench: %s exited %d: %s" % (" ".join(argv), p.returncode,
                                              err.decode(errors="replace")[-500:]))
    if use_time:
        hwm = int(err.decode().strip().splitlines()[-1])
    return wall, hwm


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--pmtatail", default=os.path.join(root, "build", "src", "pmtatail"))
    ap.add_argument("--records", type=int, default=1000000)
    ap.add_argument("--days", type=int, default=31)
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS", 3)))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SEED", 1)))
    a = ap.parse_args()
    if not os.access(a.pmtatail, os.X_OK):
        sys.exit("bench: no binary at %s (build first, or --pmtatail)" % a.pmtatail)
    out = os.path.join(root, "bench", "out")
    os.makedirs(out, exist_ok=True)
    gh = generator_hash()
    d = os.path.join(out, "month-n%d-d%d-s%d-%s" % (a.records, a.days, a.seed, gh))
    for old in os.listdir(out):
        if old.startswith("month-") and not old.endswith(gh):
            shutil.rmtree(os.path.join(out, old), ignore_errors=True)
    if os.path.isdir(d):
        gen_s = "reused"
    else:
        t0 = time.monotonic()
        generate(d, a.records, a.days, a.seed)
        gen_s = "%.1f" % (time.monotonic() - t0)
    files = sorted(os.listdir(d))
    nbytes = sum(os.path.getsize(os.path.join(d, f)) for f in files)
    print("machine: nproc=%d cpu=%s" % (os.cpu_count(), cpu_model()))
    print("data: %s: %d files, %d records, %.1f MB (generated: %s s)"
          % (d, len(files), a.records, nbytes / 1e6, gen_s))
    for f in files:  # the page cache warm for every run alike
        with open(os.path.join(d, f), "rb") as fh:
            while fh.read(1 << 20):
                pass
    tmp = tempfile.mkdtemp(prefix="pmtatail-bench-html-")
    page = os.path.join(tmp, "report.html")
    runs = {"text": [], "html": [], "json": []}
    rss = {"text": 0, "html": 0, "json": 0}
    with open(os.devnull, "wb") as null:
        for r in range(a.rounds):
            for kind in ("text", "html", "json"):
                argv = [a.pmtatail, "report"] + (["--html", page] if kind == "html" else
                                                 ["--json"] if kind == "json" else []) + [d]
                w, m = timed(argv, null)
                runs[kind].append(w)
                rss[kind] = max(rss[kind], m)
                print("round %d %-4s %7.3f s  %6.1f MiB" % (r + 1, kind, w, m / 1024.0),
                      flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    page_bytes = os.path.getsize(page)
    shutil.rmtree(tmp, ignore_errors=True)
    print()
    print("%-28s %10s %12s %10s" % ("", "median s", "records/s", "peak MiB"))
    for kind, label in (("text", "(a) report (text)"), ("html", "(b) report --html"),
                        ("json", "(c) report --json")):
        print("%-28s %10.3f %12.0f %10.1f" % (label, med[kind], a.records / med[kind],
                                              rss[kind] / 1024.0))
    print("ratio (b)/(a): %.2f (target <= 1.3); (c)/(a): %.2f; page %.0f KB"
          % (med["html"] / med["text"], med["json"] / med["text"], page_bytes / 1e3))
    print("BENCH_REPORT_HTML records=%d files=%d bytes=%d rounds=%d text_s=%.3f html_s=%.3f "
          "json_s=%.3f html_ratio=%.3f json_ratio=%.3f text_rss_kib=%d html_rss_kib=%d "
          "page_bytes=%d" % (a.records, len(files), nbytes, a.rounds, med["text"], med["html"],
                             med["json"], med["html"] / med["text"], med["json"] / med["text"],
                             rss["text"], rss["html"], page_bytes))


def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip().replace(" ", "_")
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
