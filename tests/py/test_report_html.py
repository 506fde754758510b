#!/usr/bin/python3
"""Tests of `pmtatail report --html FILE PATH...` and of --json's time series.

    python3 tests/py/test_report_html.py PMTATAIL_BINARY

Scenarios, each in its own temporary directory:

  spike        three days of hourly archives (plain and .gz) with background
               bounces over 20 domains and a block at one provider: 300
               policy-related bounces at blocked.example in one hour; hostile
               text (markup in a dsnDiag, a bounceCat and a domain). The page
               parses strictly (every tag closed, none left open), fetches
               nothing (no src, href, http, // or url() but #patterns), has
               the charts with the right number of series, the spike in the
               bounceCat chart, in blocked.example's chart and nowhere else at
               that hour, the series the same as --json's, every table value
               equal to --json's, the markup shown as text, the files and the
               command line; --json's series add up to its totals
  range        60 days: per day; timestamps of 1970 and 2100: wider buckets,
               never more than 1,024, every dated bounce counted
  tracked      300 domains with one bounce each, then one with 50 coming late:
               its chart lacks exactly the bounce before it was tracked, and
               JSON and page say so
  patterns     the pattern suggested for an unclassified text is a part of its
               example, and the lines are ready to paste
  usage        --json with --html, --html with no name: exit 2; a directory
               that does not exist: exit 1, nothing left behind; --html -
               writes to stdout

Standard library only. One line per check; exits 1 if any check failed.
"""

import csv
import calendar
import gzip
import html.parser
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


def check_eq(name, got, want):
    return check(name, got == want, ["got  %r" % (got,), "want %r" % (want,)])


def csv_bytes(rows):
    s = io.StringIO()
    w = csv.writer(s, lineterminator="\r\n")
    w.writerow(HEADER)
    for r in rows:
        w.writerow(r)
    return s.getvalue().encode("utf-8", "surrogateescape")


def write(path, data, gz=False):
    with open(path, "wb") as fh:
        fh.write(gzip.compress(data) if gz else data)


def bounce(typ, t, rcpt, diag, cat, status="5.0.0"):
    when = t if isinstance(t, str) else "%d" % t
    return [typ, when, "", "bnc@sender.example", rcpt, "", "failed", status, diag, "mx.example",
            cat, "pool1"]


def run(args, timeout=120):
    p = subprocess.run([BINARY, "report"] + args, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def run_json(args):
    rc, out, err = run(["--json"] + args)
    try:
        return rc, json.loads(out), err
    except ValueError as e:
        check("--json parses", False, [e, out[:300], err[-300:]])
        return rc, None, err


# ------------------------------------------------------------- the page

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Page(html.parser.HTMLParser):
    """The page parsed strictly: every element closed in order (SVG elements
    may close themselves), the text of tables, the charts' data attributes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []
        self.errors = []
        self.tags = {}
        self.attrs_all = []
        self.charts = []     # dicts: the svg's attributes and its series
        self.tables = {}     # id -> rows of cell texts
        self.texts = {}      # id of pre/ol -> text
        self.ids = []
        self._table = None
        self._cell = None
        self._row = None
        self._capture = None
        self._in_svg_title = False
        self.doctype = None

    def handle_decl(self, decl):
        self.doctype = decl

    def _open(self, tag, attrs):
        a = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs_all.append((tag, attrs))
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "svg" and a.get("class") == "chart":
            self.charts.append({"attrs": a, "series": []})
        if tag == "g" and a.get("class") == "series" and self.charts:
            self.charts[-1]["series"].append(a)
        if tag == "table":
            self._table = a.get("id")
            self.tables[self._table] = []
        if tag == "tr" and self._table is not None:
            self._row = []
        if tag in ("td", "th") and self._row is not None:
            self._cell = ""
        if tag in ("pre", "ol") and "id" in a:
            self._capture = a["id"]
            self.texts[self._capture] = ""

    def handle_starttag(self, tag, attrs):
        self._open(tag, attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self._open(tag, attrs)

    def handle_endtag(self, tag):
        if tag in VOID:
            self.errors.append("end tag of a void element </%s>" % tag)
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append("</%s> closes %s at line %d" % (tag, self.stack[-1:],
                                                             self.getpos()[0]))
            return
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        if tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        if tag == "table":
            self._table = None
        if tag in ("pre", "ol") and self._capture:
            self._capture = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._capture:
            self.texts[self._capture] += data


def parse_page(text):
    p = Page()
    p.feed(text)
    p.close()
    return p


def body_rows(page, tid):
    rows = page.tables.get(tid, [])
    return rows[1:]  # the header row


def n(cell):
    return int(cell.replace(",", ""))


def counts(series_attrs):
    return [int(x) for x in series_attrs["data-counts"].split()] \
        if series_attrs["data-counts"] else []


def check_no_fetch(name, text, page):
    check("%s: no http anywhere" % name, "http" not in text.lower(),
          [m.group(0) for m in re.finditer(r".{30}http.{30}", text, re.I)][:3])
    check("%s: no // anywhere" % name, "//" not in text,
          [m.group(0) for m in re.finditer(r".{30}//.{30}", text)][:3])
    bad = [(t, a) for t, attrs in page.attrs_all for a, v in attrs
           if a in ("src", "href", "xlink:href", "srcset", "action", "data", "poster")]
    check("%s: no element loads anything (src, href, ...)" % name, not bad, bad[:5])
    urls = re.findall(r"url\(([^)]*)\)", text)
    check("%s: url() only to the page's own patterns" % name,
          all(u.startswith("#") for u in urls), [u for u in urls if not u.startswith("#")][:5])
    for tag in ("script", "link", "iframe", "object", "embed", "img", "image", "use",
                "foreignobject", "style_import"):
        if tag in page.tags:
            check("%s: no <%s> element" % (name, tag), False, [page.tags[tag]])
    check("%s: no @import or @font-face" % name,
          "@import" not in text and "@font-face" not in text)


def check_strict(name, text, page):
    check("%s: <!DOCTYPE html>" % name, (page.doctype or "").lower() == "doctype html",
          [page.doctype])
    check("%s: parses strictly (tags balanced)" % name, not page.errors and not page.stack,
          page.errors[:5] + ["left open: %s" % page.stack])
    check("%s: ids unique" % name, len(page.ids) == len(set(page.ids)),
          sorted({i for i in page.ids if page.ids.count(i) > 1}))
    check("%s: viewport meta and charset" % name,
          '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
          and '<meta charset="utf-8">' in text)


# ---------------------------------------------------------------- spike

T0 = calendar.timegm((2024, 3, 4, 0, 0, 0))
SPIKE_HOUR = T0 + 37 * 3600   # 2024-03-05 13:00 UTC
SPIKE_N = 300
DOMAINS = ["d%02d.example" % i for i in range(20)]
CATS = [("bad-mailbox", "550 5.1.1 user unknown"), ("quota-issues", "452 4.2.2 mailbox full"),
        ("bad-domain", "550 5.1.2 host unknown"), ("no-answer-from-host", "421 4.4.2 timed out"),
        ("spam-related", "554 5.7.1 message looks like spam"),
        ("inactive-mailbox", "550 5.2.1 mailbox disabled"),
        ("message-expired", "451 4.4.7 message expired"), ("routing-errors", "554 5.4.4 no route"),
        ("other", "500 something else %d")]
HOSTILE_DIAG = '550 <script>alert("x")</script> & <b>bold</b> \'q\' policy 7'
HOSTILE_CAT = '<img src=x onerror=alert(1)>'
HOSTILE_DOMAIN = 'evil"><b>x</b>.example'


def spike_rows():
    """Hourly files over 3 days; the rows of each, in order."""
    files = {}
    k = 0
    for h in range(72):
        rows = []
        t = T0 + h * 3600
        for j in range(20 + (h * 7) % 13):
            k += 1
            dom = DOMAINS[(k * 7 + h) % len(DOMAINS)]
            cat, diag = CATS[(k + h) % len(CATS)]
            if "%d" in diag:
                diag = diag % (k % 3)
            rows.append(bounce("b" if k % 3 else "rb", t + (j * 89) % 3600, "u%d@%s" % (k, dom),
                               diag, cat))
        if t == SPIKE_HOUR:
            for j in range(SPIKE_N):
                rows.append(bounce("b", t + j * 11, "v%d@Blocked.Example" % j,
                                   "554 5.7.1 Service unavailable; client [192.0.2.%d] blocked "
                                   "by policy" % (j % 250), "policy-related"))
        # a domain with markup in it, among the top ones (hard, and by bounces)
        rows += [bounce("b", t + 2 + i, "h%d@%s" % (i, HOSTILE_DOMAIN), "550 5.1.1 unknown",
                        "bad-mailbox") for i in range(2)]
        if h == 5:
            rows.append(bounce("b", t + 1, "h@" + HOSTILE_DOMAIN, HOSTILE_DIAG, HOSTILE_CAT))
            rows.append(bounce("b", "not a time", "n@d01.example", "550 5.1.1 user unknown",
                               "bad-mailbox"))
        rows.append(["d", "%d" % (t + 5), "", "", "ok@d00.example", "", "relayed", "2.0.0",
                     "", "", "", ""])
        files["acct-%s.csv" % h] = rows
    return files


def scenario_spike(tmp):
    arch = os.path.join(tmp, "archive")
    os.mkdir(arch)
    files = spike_rows()
    for i, (name, rows) in enumerate(sorted(files.items())):
        gz = i % 2 == 1
        write(os.path.join(arch, name + (".gz" if gz else "")), csv_bytes(rows), gz)
    page_path = os.path.join(tmp, "report.html")
    rc, out, err = run(["--html", page_path, arch])
    check_eq("spike: --html exit 0", rc, 0)
    check_eq("spike: --html prints nothing on stdout", out, "")
    check("spike: no temporary file left", os.listdir(tmp) == ["archive", "report.html"] or
          sorted(os.listdir(tmp)) == ["archive", "report.html"], os.listdir(tmp))
    rc, doc, _ = run_json([arch])
    check_eq("spike: --json exit 0", rc, 0)
    if doc is None or not os.path.exists(page_path):
        return
    text = open(page_path, encoding="utf-8").read()
    page = parse_page(text)
    check_strict("spike", text, page)
    check_no_fetch("spike", text, page)

    s = doc["series"]
    ndated = doc["bounces"]["total"] - 1
    check_eq("spike json: per hour", s["bucket_seconds"], 3600)
    check_eq("spike json: starts at the first hour", s["start"], "2024-03-04T00:00:00Z")
    check_eq("spike json: 72 buckets", s["buckets"], 72)
    check_eq("spike json: the undated bounce", s["undated"], 1)
    check_eq("spike json: classes add up to the dated bounces",
             sum(sum(v) for v in s["bounces"].values()), ndated)
    for cls in ("hard", "soft", "unclassified"):
        want = doc["bounces"][cls] - (1 if cls == "hard" else 0)  # the undated one is hard
        check_eq("spike json: %s per hour adds up" % cls, sum(s["bounces"][cls]), want)
    cats = {c["bounceCat"]: c for c in s["categories"]}
    check_eq("spike json: categories in the report's order",
             [c["bounceCat"] for c in s["categories"]],
             [c["bounceCat"] for c in doc["categories"]])
    total_by_cat = {c["bounceCat"]: c["count"] for c in doc["categories"]}
    for c in s["categories"]:
        check_eq("spike json: %s: series + uncharted = count" % c["bounceCat"][:30],
                 sum(c["counts"]) + c["uncharted"], total_by_cat[c["bounceCat"]])
    check_eq("spike json: categories_other is empty", sum(s["categories_other"]), 0)
    hour = (SPIKE_HOUR - T0) // 3600
    pol = cats["policy-related"]["counts"]
    check_eq("spike json: policy-related only in the spike hour",
             [i for i, v in enumerate(pol) if v], [hour])
    doms = s["domains"]
    check_eq("spike json: blocked.example first", doms[0]["domain"], "blocked.example")
    check_eq("spike json: blocked.example's bounces in its hour",
             [(i, v) for i, v in enumerate(doms[0]["counts"]["unclassified"]) if v],
             [(hour, SPIKE_N)])
    check_eq("spike json: 12 domains", len(doms), 12)
    for d in doms:
        check_eq("spike json: %s: series + uncharted = count" % d["domain"][:30],
                 sum(sum(v) for v in d["counts"].values()) + d["uncharted"], d["count"])
        check_eq("spike json: %s: nothing uncharted" % d["domain"][:30],
                 d["uncharted"], 1 if d["domain"] == "d01.example" else 0)

    # the charts
    charts = page.charts
    by_kind = {}
    for c in charts:
        by_kind.setdefault(c["attrs"]["data-chart"], []).append(c)
    check_eq("spike page: chart kinds", sorted((k, len(v)) for k, v in by_kind.items()),
             [("categories", 1), ("classes", 1), ("domain", 13)])
    if sorted(by_kind) != ["categories", "classes", "domain"]:
        return
    cat_chart = by_kind["categories"][0]
    want_layers = [c["bounceCat"] for c in s["categories"][:7]] + ["other"]
    check_eq("spike page: bounceCat chart: 7 bounceCats and other",
             [a["data-key"] for a in cat_chart["series"]], want_layers)
    for a in cat_chart["series"][:7]:
        check_eq("spike page: bounceCat chart: %s as --json's" % a["data-key"][:30],
                 counts(a), cats[a["data-key"]]["counts"])
    other = [sum(c["counts"][i] for c in s["categories"][7:]) for i in range(72)]
    check_eq("spike page: bounceCat chart: other is the rest", counts(cat_chart["series"][7]),
             other)
    attrs = cat_chart["attrs"]
    check_eq("spike page: time axis attributes",
             (int(attrs["data-start"]), int(attrs["data-step"]), int(attrs["data-buckets"])),
             (T0, 3600, 72))
    pol = next(a for a in cat_chart["series"] if a["data-key"] == "policy-related")
    pc = counts(pol)
    check_eq("spike page: the policy-related spike at its hour",
             int(attrs["data-start"]) + pc.index(max(pc)) * int(attrs["data-step"]), SPIKE_HOUR)
    stacked = [sum(counts(a)[i] for a in cat_chart["series"]) for i in range(72)]
    check_eq("spike page: the stack's highest bucket is the spike hour",
             stacked.index(max(stacked)), hour)
    check_eq("spike page: data-max is the highest stack", int(attrs["data-max"]), max(stacked))
    cls_chart = by_kind["classes"][0]
    check_eq("spike page: hard/soft chart: 3 series",
             [a["data-key"] for a in cls_chart["series"]], ["hard", "soft", "unclassified"])
    for a in cls_chart["series"]:
        check_eq("spike page: hard/soft chart: %s as --json's" % a["data-key"], counts(a),
                 s["bounces"][a["data-key"]])
    dcharts = by_kind["domain"]
    check_eq("spike page: a chart per top domain, then the others",
             [c["attrs"]["data-key"] for c in dcharts],
             [d["domain"] for d in doms] + ["other domains"])
    for c in dcharts:
        check_eq("spike page: %s: 3 series" % c["attrs"]["data-key"][:30],
                 [a["data-key"] for a in c["series"]], ["hard", "soft", "unclassified"])
        check_eq("spike page: %s: the same time axis" % c["attrs"]["data-key"][:30],
                 (c["attrs"]["data-start"], c["attrs"]["data-step"], c["attrs"]["data-buckets"]),
                 (attrs["data-start"], attrs["data-step"], attrs["data-buckets"]))
    for c, d in zip(dcharts, doms):
        got = {a["data-key"]: counts(a) for a in c["series"]}
        check_eq("spike page: %s's chart as --json's" % d["domain"][:30], got, d["counts"])
    at_spike = [(c["attrs"]["data-key"], sum(counts(a)[hour] for a in c["series"]))
                for c in dcharts]
    top_at_spike = max(at_spike, key=lambda x: x[1])
    check_eq("spike page: at the spike hour, blocked.example's chart holds the spike",
             top_at_spike, ("blocked.example", SPIKE_N))
    others_at_spike = [v for k, v in at_spike if k != "blocked.example"]
    check("spike page: ... and no other domain's chart comes near it",
          max(others_at_spike) < SPIKE_N / 10, at_spike)
    blk = dcharts[0]
    total = [sum(counts(a)[i] for a in blk["series"]) for i in range(72)]
    check_eq("spike page: blocked.example's chart: nothing outside that hour",
             [i for i, v in enumerate(total) if v], [hour])
    oth = {a["data-key"]: counts(a) for a in dcharts[-1]["series"]}
    for cls in ("hard", "soft", "unclassified"):
        want = [s["bounces"][cls][i] - sum(d["counts"][cls][i] for d in doms) for i in range(72)]
        check_eq("spike page: other domains' %s is the rest" % cls, oth[cls], want)
        check_eq("spike json: domains_other %s is the rest" % cls, s["domains_other"][cls], want)

    # the tables, against --json
    rows = body_rows(page, "types-table")
    check_eq("spike page: types table", [[r[0], n(r[1]), r[2] == "yes"] for r in rows],
             [[t["type"], t["rows"], t["selected"]] for t in doc["types"]])
    rows = body_rows(page, "categories-table")
    check_eq("spike page: bounceCat table",
             [[r[0]] + [n(x) for x in r[1:]] for r in rows[:-1]],
             [[c["bounceCat"], c["count"], c["hard"], c["soft"], c["unclassified"]]
              for c in doc["categories"]])
    b = doc["bounces"]
    check_eq("spike page: bounceCat table's total", [rows[-1][0]] + [n(x) for x in rows[-1][1:]],
             ["total", b["total"], b["hard"], b["soft"], b["unclassified"]])
    rows = body_rows(page, "hard-domains-table")
    check_eq("spike page: hard domains table", [[n(r[0]), r[1]] for r in rows],
             [[d["hard"], d["domain"]] for d in doc["hard_domains"]["top"]])
    rows = body_rows(page, "texts-table")
    check_eq("spike page: unclassified texts table", [[n(r[0]), r[1], r[2]] for r in rows],
             [[t["count"], t["text"], t["example"]] for t in doc["unclassified_texts"]["top"]])
    rows = body_rows(page, "domains-table")
    check_eq("spike page: domains by bounces table", [[r[0]] + [n(x) for x in r[1:]] for r in rows],
             [[d["domain"], d["count"], d["hard"], d["soft"], d["unclassified"]] for d in doms])
    hdr = page.tables.get("hard-domains-table", [[]])
    check("spike page: distinct counts in the headings",
          "Top 20 domains by hard bounces (%d distinct)" % doc["hard_domains"]["distinct"] in text
          and "Top 20 unclassified dsnDiag texts (%d distinct)"
          % doc["unclassified_texts"]["distinct"] in text, [hdr[:1]])
    r = doc["records"]
    facts = ("%s read (b %s, rb %s, f %s, other %s), %s not selected, %s rejected"
             % tuple("{:,}".format(r[k]) for k in ("read", "b", "rb", "f", "other",
                                                  "not_selected", "rejected")))
    check("spike page: the records line", facts in text, [facts])
    check("spike page: the range", "%s .. %s" % (doc["time"]["first"], doc["time"]["last"]) in text)
    check("spike page: files read", "%d read, 0 failed" % doc["files"]["read"] in text)

    # hostile text shown as text, never as markup
    check("spike page: no <script> element, no <img>, no <b> from the files",
          "script" not in page.tags and "img" not in page.tags and "b" not in
          [t for t, a in page.attrs_all if t == "b" and False], [page.tags])
    texts = [r[2] for r in body_rows(page, "texts-table")]
    check("spike page: the hostile dsnDiag shown as it is", HOSTILE_DIAG in texts, texts)
    check("spike page: the hostile bounceCat shown as it is",
          HOSTILE_CAT in [r[0] for r in body_rows(page, "categories-table")])
    check("spike page: the hostile domain shown as it is",
          HOSTILE_DOMAIN.lower() in [r[1] for r in body_rows(page, "hard-domains-table")])
    check("spike page: the hostile domain's chart keyed by it",
          HOSTILE_DOMAIN.lower() in [c["attrs"]["data-key"] for c in dcharts])
    check("spike page: '<script' never in the file", "<script" not in text.lower())
    bolds = [a for t, a in page.attrs_all if t == "b"]
    check("spike page: <b> only in the captions (none from the files)",
          len(bolds) == 13, [len(bolds)])

    # where it came from
    check("spike page: the command line", "report --html %s %s" % (page_path, arch)
          in page.texts.get("command", ""), [page.texts.get("command")])
    listed = [ln for ln in page.texts.get("files", "").split("\n") if ln.strip()]
    check_eq("spike page: every file listed", len(listed), 72)


# ---------------------------------------------------------------- range


def scenario_range(tmp):
    rows = [bounce("b", T0 + d * 86400 + 3600 * (d % 24), "a@x%d.example" % (d % 4),
                   "550 user unknown", "bad-mailbox") for d in range(60)]
    path = os.path.join(tmp, "60days.csv")
    write(path, csv_bytes(rows))
    rc, doc, _ = run_json([path])
    if doc is None:
        return
    s = doc["series"]
    check_eq("range: 60 days go per day", (s["bucket_seconds"], s["buckets"]), (86400, 60))
    check_eq("range: one a day", s["bounces"]["hard"], [1] * 60)
    page_path = os.path.join(tmp, "p.html")
    rc, _, err = run(["--html", page_path, path])
    text = open(page_path, encoding="utf-8").read() if rc == 0 else ""
    check("range: the page says per day", "Bounces per day (UTC)" in text, [err[-300:]])

    rows = [bounce("b", t, "a@x.example", "550 user unknown", "bad-mailbox")
            for t in (0, 1, 4102444800, T0, T0 + 1)]  # 1970, 2100
    path = os.path.join(tmp, "wide.csv")
    write(path, csv_bytes(rows))
    rc, doc, _ = run_json([path])
    if doc is None:
        return
    s = doc["series"]
    check("range: 130 years in at most 1,024 buckets", s["buckets"] <= 1024
          and s["bucket_seconds"] % (7 * 86400) == 0, [s["buckets"], s["bucket_seconds"]])
    check_eq("range: every bounce counted", sum(s["bounces"]["hard"]), 5)
    check_eq("range: the first and the last bucket hold the ends",
             (s["bounces"]["hard"][0], s["bounces"]["hard"][-1]), (2, 1))
    page_path = os.path.join(tmp, "w.html")
    rc, _, _ = run(["--html", page_path, path])
    check_eq("range: the page is written", rc, 0)
    if rc == 0:
        text = open(page_path, encoding="utf-8").read()
        page = parse_page(text)
        check_strict("range", text, page)


# -------------------------------------------------------------- tracked


def scenario_tracked(tmp):
    rows = [bounce("b", T0 + i, "a@early%03d.example" % i, "550 user unknown", "bad-mailbox")
            for i in range(300)]
    rows += [bounce("b", T0 + 3600 + i, "a@late.example", "550 user unknown", "bad-mailbox")
             for i in range(50)]
    path = os.path.join(tmp, "t.csv")
    write(path, csv_bytes(rows))
    rc, doc, _ = run_json([path])
    if doc is None:
        return
    d = doc["series"]["domains"][0]
    check_eq("tracked: the late domain first", (d["domain"], d["count"]), ("late.example", 50))
    check_eq("tracked: its first bounce came before it was tracked: uncharted",
             (sum(d["counts"]["hard"]), d["uncharted"]), (49, 1))
    check_eq("tracked: the hour's total is still exact", doc["series"]["bounces"]["hard"], [300, 50])
    shown = doc["series"]["domains"]
    check_eq("tracked: other domains hold what the charts shown do not",
             doc["series"]["domains_other"]["hard"],
             [300 - sum(x["counts"]["hard"][0] for x in shown),
              50 - sum(x["counts"]["hard"][1] for x in shown)])
    check_eq("tracked: one early domain made room for it (the rest all tracked)",
             sorted(x["uncharted"] for x in shown[1:]), [0] * 10 + [1])
    page_path = os.path.join(tmp, "t.html")
    rc, _, _ = run(["--html", page_path, path])
    text = open(page_path, encoding="utf-8").read() if rc == 0 else ""
    check("tracked: the page says what is not drawn",
          "1 not drawn: without a time, or before the domain was among those tracked" in text)


# ------------------------------------------------------------- patterns


def scenario_patterns(tmp):
    diags = ["550 5.7.1 <a%d@x.example> Message rejected due to local policy %d" % (i, i)
             for i in range(5)] + ["421 4.7.0 [TS01] Messages from 192.0.2.%d temporarily "
                                   "deferred" % i for i in range(3)] + ["550 #5 ok"]
    rows = [bounce("b", T0, "u@x.example", dg, "policy-related") for dg in diags]
    path = os.path.join(tmp, "p.csv")
    write(path, csv_bytes(rows))
    page_path = os.path.join(tmp, "p.html")
    rc, _, _ = run(["--html", page_path, path])
    if rc != 0:
        check("patterns: page written", False)
        return
    page = parse_page(open(page_path, encoding="utf-8").read())
    rows = body_rows(page, "texts-table")
    got = {r[1]: r[3] for r in rows}
    check_eq("patterns: the longest literal part of each text",
             got, {"# #.#.# <addr> message rejected due to local policy #":
                   "message rejected due to local policy",
                   "# #.#.# [ts#] messages from #.#.#.# temporarily deferred":
                   "temporarily deferred",
                   "# ## ok": ""})
    check_eq("patterns: lines ready to paste", page.texts.get("patterns"),
             "message rejected due to local policy==>Soft\ntemporarily deferred==>Soft\n")


# ---------------------------------------------------------------- usage


def scenario_usage(tmp):
    path = os.path.join(tmp, "u.csv")
    write(path, csv_bytes([bounce("b", T0, "a@x.example", "550 no", "bad-mailbox")]))
    rc, _, err = run(["--json", "--html", os.path.join(tmp, "x.html"), path])
    check_eq("usage: --json with --html: exit 2", rc, 2)
    rc, _, err = run(["--html", "", path])
    check_eq("usage: --html with an empty name: exit 2", rc, 2)
    rc, _, err = run(["--html"])
    check_eq("usage: --html with nothing after it: exit 2", rc, 2)
    missing = os.path.join(tmp, "no", "such", "dir", "r.html")
    rc, out, err = run(["--html", missing, path])
    check("usage: a page that cannot be written: exit 1, named",
          rc == 1 and "r.html" in err and "cannot write the page" in err, [rc, err])
    rc, out, err = run(["--html", "-", path])
    check("usage: --html - writes the page on stdout",
          rc == 0 and out.startswith("<!DOCTYPE html>") and out.endswith("</html>\n"), [rc, err])
    rc, doc, _ = run_json([os.path.join(tmp, "nothing*.csv")])
    if doc is not None:
        check_eq("usage: no files: an empty series",
                 (doc["series"]["buckets"], doc["series"]["start"], doc["series"]["domains"]),
                 (0, None, []))
    rc, out, err = run(["--html", "-", os.path.join(tmp, "nothing*.csv")])
    if out:
        page = parse_page(out)
        check_strict("usage: no files", out, page)


SCENARIOS = [
    ("spike", scenario_spike),
    ("range", scenario_range),
    ("tracked", scenario_tracked),
    ("patterns", scenario_patterns),
    ("usage", scenario_usage),
]


def main():
    global BINARY
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    BINARY = os.path.abspath(sys.argv[1])
    for name, fn in SCENARIOS:
        tmp = tempfile.mkdtemp(prefix="pmtatail-html-%s-" % name)
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
