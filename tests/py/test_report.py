#!/usr/bin/python3
"""Tests of `pmtatail [-c FILE] report [--json] PATH...` on files written here.

    python3 tests/py/test_report.py PMTATAIL_BINARY [REPO_ROOT]

Scenarios, each in its own temporary directory:

  known        a plain file, a .gz and a complaint file with another header,
               a pattern file given through a configuration's [classify]
               patterns: every number of the --json output (time range, types,
               b/rb/f, bounces per bounceCat with the hard/soft/unclassified
               split, hard domains, unclassified texts with their examples)
               against counts made here from rows whose class is written next
               to them; the table's main lines; the same files named through a
               directory and a glob give the same report
  normalise    digits, addresses (bare, quoted, in angle brackets), case,
               whitespace and line breaks inside a quoted dsnDiag, a missing
               domain, non-ASCII and Latin-1 bytes, a text longer than the key
  top          5,000 distinct domains (and texts) with chosen counts and ties:
               the top 20 exact, ties by name; past the cap (100,000 keys)
               the rest counted as "other"
  records      a configuration whose sources take only `b`: rb and f rows are
               seen but not selected and not analysed
  bad-inputs   a rejected row, a missing path, a .gz that is not gzip: exit 1,
               the report still printed with what was read, the reasons on
               stderr
  bad-patterns a pattern file with a bad line: exit 1 naming file and line
  usage        no path, an unknown option: exit 2

Standard library only. One line per check; exits 1 if any check failed.
"""

import csv
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from harness import check, finish

BINARY = None

HEADER = ["type", "timeLogged", "timeQueued", "orig", "rcpt", "orcpt", "dsnAction",
          "dsnStatus", "dsnDiag", "dsnMta", "bounceCat", "vmta"]
FBL_HEADER = ["type", "timeLogged", "format", "rcpt", "orig", "feedbackType", "userAgent"]


def check_eq(name, got, want):
    return check(name, got == want, ["got  %r" % (got,), "want %r" % (want,)])


def csv_bytes(fields, rows):
    s = io.StringIO()
    w = csv.writer(s, lineterminator="\r\n")
    w.writerow(fields)
    for r in rows:
        w.writerow(r)
    return s.getvalue().encode("utf-8", "surrogateescape")


def write(path, data, gz=False):
    with open(path, "wb") as fh:
        fh.write(gzip.compress(data) if gz else data)


def run(args, conf=None, timeout=120):
    argv = [BINARY] + (["-c", conf] if conf else []) + ["report"] + args
    p = subprocess.run(argv, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def run_json(args, conf=None, timeout=120):
    rc, out, err = run(["--json"] + args, conf, timeout)
    try:
        doc = json.loads(out)
    except ValueError as e:
        doc = None
        check("--json output parses", False, [e, out[:500], err[-500:]])
    return rc, doc, err


def bounce(typ, when, rcpt, status, diag, cat):
    return [typ, when, "2024-01-05 00:00:00+0000", "bnc@sender.example", rcpt,
            "rfc822;" + rcpt if typ == "rb" else "", "failed", status, diag,
            "mx.example", cat, "pool1"]


# ------------------------------------------------------------------ known

PATTERNS = """# test patterns
user unknown==>Hard
mailbox full==>Soft
blocked using zen.spamhaus==>Hard
"""

# (row, class the daemon gives it, normalised text when unclassified)
KNOWN_PLAIN = [
    (bounce("b", "2024-01-05 10:00:00+0100", "Ann@Example.COM", "5.1.1",
            "smtp;550 5.1.1 <Ann@Example.COM>... User unknown", "bad-mailbox"), "hard", None),
    # a pattern beats the category
    (bounce("b", "1704412800", "bob@example.com", "5.2.2", "550 Mailbox full", "bad-mailbox"),
     "soft", None),
    (bounce("rb", "2024-01-04 23:30:00-0200", "carl@mail.test", "5.7.1",
            "smtp;554 5.7.1 Client host [203.0.113.4] blocked using zen.spamhaus.org",
            "policy-related"), "hard", None),
    (bounce("b", "2024-01-05 12:00:00+0000", "dora@y.org", "5.7.1",
            "550 5.7.1 <dora@y.org> rejected by policy 42", "policy-related"), None,
     "# #.#.# <addr> rejected by policy #"),
    (bounce("b", "2024-01-05 13:00:00+0000", "eve@z.net", "5.7.1",
            "550 5.7.1 <eve@z.net>  Rejected BY policy 7", "policy-related"), None,
     "# #.#.# <addr> rejected by policy #"),
    (bounce("rb", "yesterday", "frank@y.org", "4.2.2", "452 4.2.2 quota exceeded",
            "quota-issues"), "soft", None),
    (bounce("b", "", "noat-recipient", "5.1.2", "550 5.1.2 host unknown", "bad-domain"),
     "hard", None),
    (bounce("b", "1704499200", "gus@Y.ORG", "5.0.0", "", ""), None, "(none)"),
    (bounce("b", "2024-01-05 14:00:00+0000", "gus2@y.org", "5.1.1", "550 no such user",
            "bad-mailbox"), "hard", None),
    (bounce("b", "2024-01-05 14:00:01+0000", "h@Y.Org", "5.1.1", "550 no such user",
            "bad-mailbox"), "hard", None),
    (bounce("b", "2024-01-05 14:00:02+0000", "h2@y.org", "5.1.1", "550 no such user",
            "inactive-mailbox"), "hard", None),
    (["d", "2024-01-05 14:00:03+0000", "", "", "ok@example.com", "", "relayed", "2.0.0", "",
      "", "", ""], "d", None),
    (["d", "2024-01-05 14:00:04+0000", "", "", "ok2@example.com", "", "relayed", "2.0.0", "",
      "", "", ""], "d", None),
    (["t", "2024-01-05 14:00:05+0000", "", "", "ok3@example.com", "", "delayed", "4.0.0", "",
      "", "", ""], "t", None),
]
KNOWN_GZ = [
    (bounce("rb", "2024-01-05T15:00:00Z", "ivy@mail.test", "5.7.1",
            "smtp;550 5.7.1 <ivy@mail.test> rejected by policy 9", "spam-related"), None,
     "smtp;# #.#.# <addr> rejected by policy #"),
    (bounce("rb", "2024-01-05 16:00:00+00:00", "jay@x.com", "4.4.2",
            "smtp;421 4.4.2 connection timed out after 30s", "no-answer-from-host"), "soft", None),
    (bounce("rb", "2024-01-05 16:30:00+0000", "k@example.com", "5.1.1",
            "smtp;550 5.1.1 User Unknown in virtual table", ""), "hard", None),
    (bounce("rb", "2024-01-05 16:31:00+0000", "l@x.com", "5.7.1",
            "smtp;550 5.7.1 <l@x.com> rejected by policy 10", "spam-related"), None,
     "smtp;# #.#.# <addr> rejected by policy #"),
]
KNOWN_FBL = [
    (["f", "2024-01-04 06:00:00+0000", "arf", "m@example.com", "news@sender.example", "abuse",
      "ua"], "f", None),
    (["f", "2024-01-07 00:00:00+0000", "arf", "n@example.com", "news@sender.example", "abuse",
      "ua"], "f", None),
]

FIRST = "2024-01-04T06:00:00Z"
LAST = "2024-01-07T00:00:00Z"
UNPARSED = 2  # "yesterday" and the empty timeLogged


def expected_known():
    rows = KNOWN_PLAIN + KNOWN_GZ + KNOWN_FBL
    want = {"b": 0, "rb": 0, "f": 0}
    seen = {}
    cats = {}
    domains = {}
    texts = {}
    bounces = {"hard": 0, "soft": 0, "unclassified": 0}
    for row, cls, norm in rows:
        typ = row[0]
        seen[typ] = seen.get(typ, 0) + 1
        if typ in want:
            want[typ] += 1
        if typ not in ("b", "rb"):
            continue
        key = "unclassified" if cls is None else cls
        bounces[key] += 1
        cat = row[10] or "(none)"
        c = cats.setdefault(cat, {"bounceCat": cat, "count": 0, "hard": 0, "soft": 0,
                                  "unclassified": 0})
        c["count"] += 1
        c[key] += 1
        if cls == "hard":
            rcpt = row[4]
            dom = rcpt.rsplit("@", 1)[1].lower() if "@" in rcpt else "(none)"
            domains[dom] = domains.get(dom, 0) + 1
        if cls is None:
            t = texts.setdefault(norm, {"text": norm, "count": 0, "example": row[8]})
            t["count"] += 1
    return want, seen, cats, domains, texts, bounces


def scenario_known(tmp):
    arch = os.path.join(tmp, "archive")
    os.mkdir(arch)
    write(os.path.join(arch, "bounces-2024-01-05-0000.csv"),
          csv_bytes(HEADER, [r for r, _, _ in KNOWN_PLAIN]))
    write(os.path.join(arch, "bounces-2024-01-05-0100.csv.gz"),
          csv_bytes(HEADER, [r for r, _, _ in KNOWN_GZ]), gz=True)
    write(os.path.join(arch, "fbl-2024-01-05-0000.csv"),
          csv_bytes(FBL_HEADER, [r for r, _, _ in KNOWN_FBL]))
    write(os.path.join(arch, "notes.txt"), b"not an accounting file\n")
    pat = os.path.join(tmp, "patterns.txt")
    write(pat, PATTERNS.encode())
    conf = os.path.join(tmp, "pmtatail.conf")
    write(conf, ("[classify]\npatterns = %s\n" % pat).encode())

    rc, doc, err = run_json([arch], conf)
    check_eq("known: exit 0", rc, 0)
    if doc is None:
        return
    want, seen, cats, domains, texts, bounces = expected_known()
    check_eq("known: files", doc["files"], {"read": 3, "failed": 0})
    check_eq("known: time range", doc["time"], {"first": FIRST, "last": LAST,
                                                "unparsed": UNPARSED})
    nrecords = want["b"] + want["rb"] + want["f"]
    check_eq("known: records", doc["records"],
             {"read": nrecords, "not_selected": seen["d"] + seen["t"], "rejected": 0,
              "b": want["b"], "rb": want["rb"], "f": want["f"], "other": 0})
    types = sorted(({"type": t, "rows": n, "selected": t in ("b", "rb", "f")}
                    for t, n in seen.items()), key=lambda x: (-x["rows"], x["type"]))
    check_eq("known: types (all seen, rows first then name)", doc["types"], types)
    check_eq("known: other_types", doc["other_types"], 0)
    check_eq("known: bounces", doc["bounces"],
             dict(bounces, total=want["b"] + want["rb"]))
    cat_list = sorted(cats.values(), key=lambda c: (-c["count"], c["bounceCat"]))
    check_eq("known: categories", doc["categories"], cat_list)
    check_eq("known: categories_other", doc["categories_other"],
             {"count": 0, "hard": 0, "soft": 0, "unclassified": 0})
    top = sorted(domains.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
    check_eq("known: hard_domains", doc["hard_domains"],
             {"distinct": len(domains), "other": 0,
              "top": [{"domain": d, "hard": n} for d, n in top]})
    text_list = sorted(texts.values(), key=lambda t: (-t["count"], t["text"]))[:20]
    check_eq("known: unclassified_texts", doc["unclassified_texts"],
             {"distinct": len(texts), "other": 0, "top": text_list})
    check("known: summary on stderr", re.search(r"summary: files=3 .*records=%d .*seconds=\S+ "
                                                r"records_per_s=\d+" % nrecords, err), [err])

    # the same files through a glob, a file named twice and the directory
    rc2, doc2, _ = run_json([os.path.join(arch, "*.csv*"), arch,
                             os.path.join(arch, "fbl-2024-01-05-0000.csv")], conf)
    check_eq("known: directory and glob together read each file once", doc2, doc)

    # the table
    rc, out, err = run([arch], conf)
    check_eq("known table: exit 0", rc, 0)
    lines = out.splitlines()
    check("known table: files line", "files       3 read, 0 failed" in lines, lines)
    check("known table: time line",
          "time        %s .. %s (%d without a usable timeLogged)" % (FIRST, LAST, UNPARSED)
          in lines, lines)
    check("known table: records line",
          "records     %d read (b %d, rb %d, f %d, other 0), %d not selected, 0 rejected"
          % (nrecords, want["b"], want["rb"], want["f"], seen["d"] + seen["t"]) in lines, lines)
    words = [ln.split() for ln in lines]
    for t in types:
        check("known table: type %s" % t["type"],
              [t["type"], str(t["rows"]), "yes" if t["selected"] else "no"] in words, lines)
    for c in cat_list:
        check("known table: bounceCat %s" % c["bounceCat"],
              [c["bounceCat"], str(c["count"]), str(c["hard"]), str(c["soft"]),
               str(c["unclassified"])] in words, lines)
    check("known table: total line",
          ["total", str(want["b"] + want["rb"]), str(bounces["hard"]), str(bounces["soft"]),
           str(bounces["unclassified"])] in words, lines)
    i = lines.index("top 20 domains by hard bounces (%d distinct)" % len(domains)) \
        if "top 20 domains by hard bounces (%d distinct)" % len(domains) in lines else -1
    check("known table: domains heading", i >= 0, lines)
    if i >= 0:
        got = [ln.split() for ln in lines[i + 2:i + 2 + len(top)]]
        check_eq("known table: domain lines in order", got, [[str(n), d] for d, n in top])
    head = "top 20 unclassified dsnDiag texts (%d distinct)" % len(texts)
    check("known table: texts heading", head in lines, lines)
    if head in lines:
        i = lines.index(head)
        got = lines[i + 2:i + 2 + 2 * len(text_list)]
        want_lines = []
        for t in text_list:
            want_lines.append("%12d  %s" % (t["count"], t["text"]))
            want_lines.append("%12s  e.g. %s" % ("", t["example"]))
        check_eq("known table: text lines with examples", got, want_lines)


# ------------------------------------------------------------ normalise

LONG = "550 " + "x" * 1000 + " 12345"
NORMALISE = [
    ("550 5.1.1 <a@x.com> user unknown", "# #.#.# <addr> user unknown"),
    ("550 5.1.1 <b@y.org> user unknown", "# #.#.# <addr> user unknown"),
    ("550 5.1.1 B@Y.ORG User Unknown", "# #.#.# <addr> user unknown"),
    ('smtp;550 5.2.1 Mailbox "Felix.Ivanova@gmx.example" is inactive',
     'smtp;# #.#.# mailbox "<addr>" is inactive'),
    ("  Trailing   spaces\r\n  and\tlines  ", "trailing spaces and lines"),
    ("mail for user@ refused", "mail for user@ refused"),
    ("sent to a.b-c+tag@sub.example.co.uk.", "sent to <addr>."),
    ("queue id 4AB12CD3 <postmaster@[127.0.0.1]>", "queue id #ab#cd# <postmaster@[#.#.#.#]>"),
    ("Nachricht abgelehnt, Absender nicht VERTRAUENSWÜRDIG",
     "nachricht abgelehnt, absender nicht vertrauenswÜrdig"),
    ("Nachricht abgelehnt: vertrauensw\udcfcrdig 5", "nachricht abgelehnt: vertrauensw\ufffdrdig #"),
    (LONG, ("# " + "x" * 1000)[:256]),
]


def scenario_normalise(tmp):
    rows = [bounce("b", "1704412800", "u%d@example.com" % i, "5.0.0", diag, "other")
            for i, (diag, _) in enumerate(NORMALISE)]
    path = os.path.join(tmp, "n.csv")
    write(path, csv_bytes(HEADER, rows))
    rc, doc, err = run_json([path])
    check_eq("normalise: exit 0", rc, 0)
    if doc is None:
        return
    got = {t["text"]: t for t in doc["unclassified_texts"]["top"]}
    counts = {}
    examples = {}
    for diag, norm in NORMALISE:
        norm = norm.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        counts[norm] = counts.get(norm, 0) + 1
        ex = diag.encode("utf-8", "surrogateescape")[:200].decode("utf-8", "replace")
        examples.setdefault(norm, ex)
    for diag, norm in NORMALISE:
        norm = norm.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        check("normalise: %.50r -> %.50r" % (diag, norm),
              norm in got and got[norm]["count"] == counts[norm], [sorted(got)])
    check_eq("normalise: distinct texts", doc["unclassified_texts"]["distinct"], len(counts))
    check_eq("normalise: examples are the first original (200 bytes at most)",
             {k: v["example"] for k, v in got.items()}, examples)
    check_eq("normalise: all unclassified", doc["bounces"]["unclassified"], len(NORMALISE))


# ------------------------------------------------------------------ top


def letters(i):
    s = ""
    for _ in range(4):
        s += chr(ord("a") + i % 26)
        i //= 26
    return s


def scenario_top(tmp):
    # 5,000 domains: d0000..d0024 with 2..50 hard bounces (two tied at each
    # count above 2, named so that the name breaks the tie), the rest with 1;
    # the same shape for unclassified texts
    counts = {}
    for i in range(5000):
        counts["d%04d.test" % i] = 1
    for i in range(25):
        counts["d%04d.test" % (4999 - i)] = 50 - 2 * (i // 2)
    rows = []
    for dom, n in counts.items():
        for k in range(n):
            rows.append(bounce("b", "1704412800", "u%d@%s" % (k, dom.upper()), "5.1.1",
                               "550 no such user", "bad-mailbox"))
    tcounts = {}
    for i in range(5000):
        tcounts["text %s" % letters(i)] = 1 + (7 if i % 997 == 0 else 0) + (i % 5 == 0)
    for text, n in tcounts.items():
        for k in range(n):
            rows.append(bounce("rb", "1704412800", "t@x.test", "5.0.0",
                               "Text %s %d" % (text[5:], k), "other"))
    path = os.path.join(tmp, "top.csv")
    write(path, csv_bytes(HEADER, rows))
    rc, doc, err = run_json([path])
    check_eq("top: exit 0", rc, 0)
    if doc is None:
        return
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
    check_eq("top: 5,000 domains, top 20 by hard bounces, ties by name",
             doc["hard_domains"],
             {"distinct": 5000, "other": 0, "top": [{"domain": d, "hard": n} for d, n in top]})
    ttop = sorted(((t + " #", n) for t, n in tcounts.items()), key=lambda kv: (-kv[1], kv[0]))
    ttop = ttop[:20]
    got = [(t["text"], t["count"]) for t in doc["unclassified_texts"]["top"]]
    check_eq("top: 5,000 texts, top 20, ties by text", got, ttop)
    check_eq("top: distinct texts", doc["unclassified_texts"]["distinct"], 5000)

    # past the cap: 100,005 distinct domains and texts, one each; the keys
    # seen last find the table full and are counted as "other"
    n = 100005
    rows = []
    for i in range(n):
        rows.append(bounce("b", "1704412800", "u@c%06d.test" % i, "5.1.1", "x", "bad-mailbox"))
        rows.append(bounce("b", "1704412800", "u@x.test", "5.0.0", "t " + letters(i),
                           "other"))
    path = os.path.join(tmp, "cap.csv")
    write(path, csv_bytes(HEADER, rows))
    rc, doc, err = run_json([path], timeout=300)
    check_eq("cap: exit 0", rc, 0)
    if doc is None:
        return
    dom = doc["hard_domains"]
    check_eq("cap: domains held and other", (dom["distinct"], dom["other"]), (100000, 5))
    check_eq("cap: ties by name among the held ones", dom["top"][0], {"domain": "c000000.test",
                                                                      "hard": 1})
    txt = doc["unclassified_texts"]
    check_eq("cap: texts held and other", (txt["distinct"], txt["other"]), (100000, 5))
    check_eq("cap: bounces all counted", doc["bounces"]["total"], 2 * n)


# -------------------------------------------------------------- records


def scenario_records(tmp):
    path = os.path.join(tmp, "r.csv")
    write(path, csv_bytes(HEADER, [
        bounce("b", "1704412800", "a@x.test", "5.1.1", "550 user unknown", "bad-mailbox"),
        bounce("rb", "1704412801", "b@x.test", "5.1.1", "550 user unknown", "bad-mailbox"),
        ["f", "1704412802", "", "", "c@x.test", "", "", "", "", "", "", ""],
    ]))
    conf = os.path.join(tmp, "c.conf")
    write(conf, b"[source bounces]\npath = /nonexistent/bounces.csv\nrecords = b\n")
    rc, doc, err = run_json([path], conf)
    check_eq("records: exit 0", rc, 0)
    if doc is None:
        return
    check_eq("records: only b read", doc["records"],
             {"read": 1, "not_selected": 2, "rejected": 0, "b": 1, "rb": 0, "f": 0, "other": 0})
    check_eq("records: every type seen", doc["types"], [
        {"type": "b", "rows": 1, "selected": True},
        {"type": "f", "rows": 1, "selected": False},
        {"type": "rb", "rows": 1, "selected": False}])
    check_eq("records: time of read records only", doc["time"],
             {"first": "2024-01-05T00:00:00Z", "last": "2024-01-05T00:00:00Z", "unparsed": 0})


# ----------------------------------------------------------- bad inputs


def scenario_bad_inputs(tmp):
    good = os.path.join(tmp, "good.csv")
    write(good, csv_bytes(HEADER, [
        bounce("b", "1704412800", "a@x.test", "5.1.1", "550 no", "bad-mailbox"),
        bounce("b", "1704412801", "b@x.test", "5.1.1", "550 no", "bad-mailbox"),
    ]) + b"b,1704412802,too,few,cells\r\n")
    notgz = os.path.join(tmp, "bad.csv.gz")
    write(notgz, csv_bytes(HEADER, [bounce("b", "1", "c@x.test", "", "", "")]))
    missing = os.path.join(tmp, "missing.csv")
    rc, doc, err = run_json([good])
    check_eq("bad-inputs: a rejected row: exit 1", rc, 1)
    if doc is not None:
        check_eq("bad-inputs: rejected counted, good rows read",
                 (doc["records"]["rejected"], doc["records"]["b"]), (1, 2))
    check("bad-inputs: the reject on stderr with its line", "line=4" in err and "rejected" in err,
          [err])
    rc, doc, err = run_json([good, notgz, missing])
    check_eq("bad-inputs: unreadable files: exit 1", rc, 1)
    if doc is not None:
        check_eq("bad-inputs: report printed with the files read",
                 (doc["files"], doc["records"]["b"]), ({"read": 2, "failed": 1}, 2))
    check("bad-inputs: not gzip named", "bad.csv.gz" in err and "not gzip" in err, [err])
    check("bad-inputs: missing path named", "missing.csv" in err, [err])


def scenario_bad_patterns(tmp):
    pat = os.path.join(tmp, "bad.pat")
    write(pat, b"# comment\nuser unknown==>Hard\nthis line has no class\n")
    conf = os.path.join(tmp, "c.conf")
    write(conf, ("[classify]\npatterns = %s\n" % pat).encode())
    f = os.path.join(tmp, "f.csv")
    write(f, csv_bytes(HEADER, [bounce("b", "1", "a@x.test", "", "", "")]))
    rc, out, err = run(["--json", f], conf)
    check_eq("bad-patterns: exit 1", rc, 1)
    check("bad-patterns: file and line 3 named", "bad.pat:3" in err, [err])
    check_eq("bad-patterns: no report", out, "")


def scenario_usage(tmp):
    rc, out, err = run([])
    check_eq("usage: no path: exit 2", rc, 2)
    rc, out, err = run(["--bogus", tmp])
    check_eq("usage: unknown option: exit 2", rc, 2)
    p = subprocess.run([BINARY, "--help"], capture_output=True, text=True)
    check("usage: report in --help", "report [--json | --html FILE] PATH..." in p.stdout,
          [p.stdout])


SCENARIOS = [
    ("known", scenario_known),
    ("normalise", scenario_normalise),
    ("top", scenario_top),
    ("records", scenario_records),
    ("bad-inputs", scenario_bad_inputs),
    ("bad-patterns", scenario_bad_patterns),
    ("usage", scenario_usage),
]


def main():
    global BINARY
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    BINARY = os.path.abspath(sys.argv[1])
    for name, fn in SCENARIOS:
        tmp = tempfile.mkdtemp(prefix="pmtatail-report-%s-" % name)
        try:
            fn(tmp)
        except Exception as e:  # a crash in one scenario is one failure, not the end
            import traceback
            traceback.print_exc()
            check("%s: ran without exception" % name, False, [e])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
