#!/usr/bin/python3
"""Unit checks of tests/oracle.py, the reference the fixture test trusts.

    python3 tests/py/test_oracle.py

Standard library only. Prints one line per check, exits 1 if any failed.
Besides hand-written cases, the oracle is compared with independent
implementations where one exists: Python's strict UTF-8 decoder (for which
byte runs are valid), Python's csv module (for well-formed RFC 4180), and
libcsv in non-strict mode through ctypes (for the lenient quote rules;
skipped if libcsv is not installed). It also checks that the committed
fixtures and expected files are what the generator and the oracle produce
now, so neither can drift silently.
"""

import csv
import ctypes
import ctypes.util
import io
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
FIXTURES = os.path.join(TESTS, "fixtures")
SAMPLES = "/work/shared/samples"  # optional: only where the shared tree exists
sys.path.insert(0, TESTS)
sys.path.insert(0, FIXTURES)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import oracle  # noqa: E402
import make_fixtures  # noqa: E402

failures = 0
checks = 0


def check(name, cond, detail=""):
    global failures, checks
    checks += 1
    if cond:
        print("ok - " + name)
    else:
        failures += 1
        print("FAIL - " + name + (": " + detail if detail else ""))


def eq(name, got, want):
    check(name, got == want, "got %r, want %r" % (got, want))


# ---------------------------------------------------------------------------
# UTF-8 replacement
# ---------------------------------------------------------------------------

R = "\ufffd"


def test_sanitize():
    s = oracle.sanitize
    eq("utf8: ascii", s(b"smtp;550 5.1.1 ok"), "smtp;550 5.1.1 ok")
    eq("utf8: empty", s(b""), "")
    eq("utf8: valid 2/3/4-byte kept", s("ü – 用 📭".encode()), "ü – 用 📭")
    eq("utf8: latin-1 byte", s(b"d\xe9sactiv\xe9e"), "d" + R + "sactiv" + R + "e")
    # The spec's own example, and where Python's 'replace' differs.
    eq("utf8: truncated 3-byte then A", s(b"\xe2\x82A"), R + R + "A")
    check("utf8: python 'replace' would differ (so the oracle needs its own decoder)",
          b"\xe2\x82A".decode("utf-8", "replace") != s(b"\xe2\x82A"))
    eq("utf8: truncated at end", s(b"x\xe2\x82"), "x" + R + R)
    eq("utf8: truncated 4-byte", s(b"\xf0\x9f\x98 "), R * 3 + " ")
    eq("utf8: overlong C0 AF", s(b"\xc0\xaf"), R * 2)
    eq("utf8: overlong C1 BF", s(b"\xc1\xbf"), R * 2)
    eq("utf8: overlong E0 80 AF", s(b"\xe0\x80\xaf"), R * 3)
    eq("utf8: overlong F0 8F BF BF", s(b"\xf0\x8f\xbf\xbf"), R * 4)
    eq("utf8: surrogate ED A0 80", s(b"\xed\xa0\x80"), R * 3)
    eq("utf8: ED 9F BF (U+D7FF) valid", s(b"\xed\x9f\xbf"), "\ud7ff")
    eq("utf8: above U+10FFFF", s(b"\xf4\x90\x80\x80"), R * 4)
    eq("utf8: U+10FFFF valid", s(b"\xf4\x8f\xbf\xbf"), "\U0010ffff")
    eq("utf8: F5..FF", s(b"\xf5\xf8\xfe\xff"), R * 4)
    eq("utf8: lone continuation", s(b"a\x80b\xbfc"), "a" + R + "b" + R + "c")
    eq("utf8: lead then lead", s(b"\xc3\xc3\xa9"), R + "é")
    eq("utf8: control bytes and NUL kept", s(b"\x00\x01\x1f\t\x7f"), "\x00\x01\x1f\t\x7f")
    eq("utf8: BOM is a character", s(b"\xef\xbb\xbfx"), "\ufeffx")

    # Every code point round-trips (surrogates excluded: not encodable).
    bad = [cp for cp in range(0x110000)
           if not 0xD800 <= cp <= 0xDFFF and s(chr(cp).encode()) != chr(cp)]
    eq("utf8: every scalar value round-trips", bad[:5], [])

    # Random bytes against an independent rule built on Python's strict
    # decoder: at each offset, the valid sequence is the k-byte prefix that
    # decodes strictly to exactly one character.
    def reference(data):
        out, i = [], 0
        while i < len(data):
            for k in (1, 2, 3, 4):
                try:
                    ch = data[i:i + k].decode("utf-8")
                except UnicodeDecodeError:
                    continue
                if len(ch) == 1:
                    out.append(ch)
                    i += k
                    break
            else:
                out.append(R)
                i += 1
        return "".join(out)

    rnd = random.Random(4180)
    pool = [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0,
            0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff]
    mismatch = None
    for _ in range(20000):
        data = bytes(rnd.choice(pool) for _ in range(rnd.randint(0, 12)))
        if s(data) != reference(data):
            mismatch = data
            break
    check("utf8: 20000 random byte strings match the strict-decoder reference",
          mismatch is None, "first mismatch %r" % (mismatch,))


# ---------------------------------------------------------------------------
# Timestamps
# ---------------------------------------------------------------------------

def test_time():
    t = oracle.convert_time
    cases = [
        (b"1178807903", "2007-05-10T14:38:23Z"),
        (b"0", "1970-01-01T00:00:00Z"),
        (b"1717401600", "2024-06-03T08:00:00Z"),
        (b"2016-05-29 01:10:51+0200", "2016-05-28T23:10:51Z"),
        (b"2016-05-29T01:10:51+02:00", "2016-05-28T23:10:51Z"),
        (b"2016-05-29 01:10:51Z", "2016-05-29T01:10:51Z"),
        (b"2016-05-29 01:10:51+0000", "2016-05-29T01:10:51Z"),
        (b"2016-05-29 01:10:51-0000", "2016-05-29T01:10:51Z"),
        (b"2024-02-29 23:30:00-0100", "2024-03-01T00:30:00Z"),
        (b"2023-12-31 23:59:59-0800", "2024-01-01T07:59:59Z"),
        (b"2024-03-01 00:15:00+0100", "2024-02-29T23:15:00Z"),
        (b"2024-06-03 13:30:00+0530", "2024-06-03T08:00:00Z"),
        (b"2024-06-03 08:00:00-09:30", "2024-06-03T17:30:00Z"),
    ]
    for value, want in cases:
        eq("time: %s" % value.decode(), t(value), want)
    for value in [b"", b" 1178807903", b"1178807903 ", b"-5", b"+5", b"1.5", b"0x10",
                  b"2016-05-29 01:10:51", b"2016-05-29 01:10:51 +0200", b"2016-05-29 01:10:51+02",
                  b"2016-05-29t01:10:51Z", b"2016-05-29 01:10:51z", b"2016-05-29 01:10:51.123Z",
                  b"2016-5-29 01:10:51+0200", b"2016-13-01 00:00:00Z", b"2023-02-29 00:00:00Z",
                  b"2016-05-29 24:00:00Z", b"2016-05-29 01:60:00Z", b"2016-05-29 01:10:60Z",
                  b"2016-05-29 01:10:51+0260", b"Sun May 29 01:10:51 2016",
                  b"\xd9\xa1\xd9\xa2", b"99999999999999999999"]:
        eq("time: unparseable %r" % value, t(value), None)


# ---------------------------------------------------------------------------
# CSV splitting
# ---------------------------------------------------------------------------

def records(data):
    """[(cells, raw)] for every record, or ('OPEN', pos) for a runaway;
    headers and types are not interpreted here."""
    out, pos = [], 0
    while pos < len(data):
        if data[pos] in b"\r\n":
            pos += 2 if data[pos:pos + 2] == b"\r\n" else 1
            continue
        cells, end, nxt, open_quote = oracle.scan_record(data, pos)
        if open_quote:
            out.append(("OPEN", pos))
            pos = oracle._skip_first_line(data, pos)
            continue
        out.append((cells, data[pos:end]))
        pos = nxt
    return out


def cells_only(data):
    return [r[0] for r in records(data)]


def test_csv():
    eq("csv: plain", cells_only(b"a,b,c\r\n"), [[b"a", b"b", b"c"]])
    eq("csv: empty cells", cells_only(b",a,,\r\n"), [[b"", b"a", b"", b""]])
    eq("csv: quoted comma", cells_only(b'a,"x, y",b\r\n'), [[b"a", b"x, y", b"b"]])
    eq("csv: doubled quotes", cells_only(b'"He said ""hi""",""""\n'),
       [[b'He said "hi"', b'"']])
    eq("csv: empty quoted cell", cells_only(b'a,"",b\n'), [[b"a", b"", b"b"]])
    eq("csv: CRLF inside quotes", cells_only(b'a,"l1\r\nl2"\r\nb\r\n'),
       [[b"a", b"l1\r\nl2"], [b"b"]])
    eq("csv: bare CR and LF inside quotes", cells_only(b'"x\ry\nz"\n'), [[b"x\ry\nz"]])
    eq("csv: terminators CR, LF, CRLF", cells_only(b"a\rb\nc\r\nd"),
       [[b"a"], [b"b"], [b"c"], [b"d"]])
    eq("csv: blank lines skipped", cells_only(b"\r\n\n\ra\r\n\r\n\r\rb\n\n"), [[b"a"], [b"b"]])
    eq("csv: CR then CRLF = record then blank line", cells_only(b"a\r\r\nb\r\n"), [[b"a"], [b"b"]])
    eq("csv: no trimming", cells_only(b' a , " b " ,c \n'), [[b" a ", b' " b " ', b"c "]])
    eq("csv: quote mid unquoted field is literal", cells_only(b'ab"c,d"\n'), [[b'ab"c', b'd"']])
    eq("csv: lenient: stray quote inside quoted field kept, field stays quoted",
       cells_only(b'"550 "bob" unknown, really",x\n'), [[b'550 "bob" unknown, really', b"x"]])
    eq("csv: lenient: stray then doubled", cells_only(b'"a "b ""c"" d",e\n'),
       [[b'a "b "c" d', b"e"]])
    eq("csv: quoted field closed at EOF", cells_only(b'a,"b"'), [[b"a", b"b"]])
    eq("csv: unterminated last record", cells_only(b"a,b\r\nc,d"), [[b"a", b"b"], [b"c", b"d"]])
    eq("csv: trailing comma at EOF", cells_only(b"a,"), [[b"a", b""]])
    eq("csv: NUL and invalid bytes are data", cells_only(b'"\x00\xff",\xe9\n'),
       [[b"\x00\xff", b"\xe9"]])
    eq("csv: raw excludes the terminator and keeps the quotes",
       [r[1] for r in records(b'a,"b\r\nc"\r\nd\r')], [b'a,"b\r\nc"', b"d"])
    eq("csv: runaway quote: rejected, resumes after its first line",
       records(b'a,"open\r\nb,c\nd\r\n'), [("OPEN", 0), ([b"b", b"c"], b"b,c"), ([b"d"], b"d")])
    eq("csv: runaway quote on the last line", records(b'x\r\n"open\r\n'),
       [([b"x"], b"x"), ("OPEN", 3)])
    eq("csv: runaway quote without any terminator", records(b'x\n"open'), [([b"x"], b"x"), ("OPEN", 2)])
    eq("csv: runaway recovers a line whose quotes re-open at EOF",
       records(b'"a\n"b\n'), [("OPEN", 0), ("OPEN", 3)])

    # Well-formed RFC 4180 from Python's csv writer reads back the same.
    rnd = random.Random(1)
    alphabet = ['a', 'Z', ' ', ',', '"', '\r', '\n', '\r\n', 'é', '\t']
    bad = None
    for _ in range(3000):
        rows = [["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 6)))
                 for _ in range(rnd.randint(1, 5))] for _ in range(rnd.randint(1, 4))]
        # A row made of one empty cell is written as "" by csv, fine; but a row
        # whose only cell is empty *and unquoted* would be a blank line: csv
        # quotes it, so no special case is needed.
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\r\n").writerows(rows)
        data = buf.getvalue().encode("utf-8")
        got = cells_only(data)
        want = [[c.encode("utf-8") for c in r] for r in rows]
        if got != want:
            bad = (data, got, want)
            break
    check("csv: 3000 random csv.writer files read back", bad is None, repr(bad))

    test_against_libcsv()


def _load_libcsv():
    for name in ("libcsv.so.3", ctypes.util.find_library("csv")):
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError:
            pass
    return None


def test_against_libcsv():
    """Differential check of the lenient rules against libcsv (non-strict, no
    space trimming), on random quote-heavy input. libcsv does not recover
    from a runaway quote, so inputs that end inside quotes are left out."""
    lib = _load_libcsv()
    if lib is None:
        print("ok - csv: libcsv differential check skipped (libcsv not installed)")
        return
    field_cb = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
    row_cb = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p)
    space_cb = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_ubyte)
    no_space = space_cb(lambda c: 0)

    def libcsv_rows(data):
        parser = ctypes.create_string_buffer(1024)  # larger than struct csv_parser
        if lib.csv_init(parser, ctypes.c_ubyte(0)) != 0:
            raise RuntimeError("csv_init failed")
        lib.csv_set_space_func(parser, no_space)
        rows, cur = [], []

        def on_field(ptr, n, _):
            cur.append(ctypes.string_at(ptr, n) if n else b"")

        def on_row(_c, _):
            rows.append(list(cur))
            cur.clear()

        f, r = field_cb(on_field), row_cb(on_row)
        lib.csv_parse(parser, data, ctypes.c_size_t(len(data)), f, r, None)
        lib.csv_fini(parser, f, r, None)
        lib.csv_free(parser)
        return rows

    rnd = random.Random(7)
    alphabet = [b"a", b"b", b",", b'"', b'"', b"\r", b"\n", b"\r\n", b" "]
    compared, bad = 0, None
    for _ in range(20000):
        data = b"".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 14)))
        recs = records(data)
        if any(r[0] == "OPEN" for r in recs):
            continue
        compared += 1
        if [r[0] for r in recs] != libcsv_rows(data):
            bad = (data, [r[0] for r in recs], libcsv_rows(data))
            break
    check("csv: %d random inputs split as libcsv non-strict does" % compared, bad is None,
          repr(bad))


# ---------------------------------------------------------------------------
# Headers, filter, rejects, event shape
# ---------------------------------------------------------------------------

def run(data):
    return oracle.run(data, "h", "p")


def test_records():
    events, rejects = run(b"type,timeLogged,rcpt,dsnDiag\r\nb,1178807903,a@x,\r\n")
    eq("event: keys in header order, empty left out, then the fixed keys",
       [list(e.items()) for e in events],
       [[("logType", "b"), ("timeLogged", "1178807903"), ("rcpt", "a@x"), ("type", "pmta"),
         ("@version", "1"), ("@timestamp", "2007-05-10T14:38:23Z"), ("host", "h"),
         ("path", "p"), ("message", "b,1178807903,a@x,"),
         ("tags", ["pmta", "pmta_sync_bounce"]), ("eventId", None)]])
    eq("event: no rejects", rejects, [])

    events, _ = run(b"type,rcpt\nf,a@x\n")
    eq("event: no timeLogged column -> null @timestamp", events[0]["@timestamp"], None)
    events, _ = run(b"type,timeLogged,rcpt\nf,,a@x\nf,soon,b@x\n")
    eq("event: empty or bad timeLogged -> null @timestamp",
       [e["@timestamp"] for e in events], [None, None])
    check("event: a bad timeLogged is still sent as a field", events[1]["timeLogged"] == "soon")

    events, rejects = run(b"type,a\r\nb,1\r\nrb,2\r\nf,3\r\nd,4\r\nt,5\r\ntq,6\r\nr,7\r\n"
                          b"rs,8\r\nB,9\r\nb ,10\r\n,11\r\n")
    eq("filter: only b, rb, f (exact match)", [e["logType"] for e in events], ["b", "rb", "f"])
    eq("tags: Logstash's per kind", [e["tags"] for e in events],
       [["pmta", "pmta_sync_bounce"], ["pmta", "pmta_async_bounce"], ["pmta", "pmta_fbl"]])
    eq("filter: filtered rows are not rejects", rejects, [])

    _, rejects = run(b"type,a,b\nd,1\nt,1,2,3\nb,1\n")
    eq("filter: applied before the cell-count check", rejects, [(4, oracle.CELL_COUNT)])
    _, rejects = run(b"type,a,b\n550 5.1.1 gone\nzz,1,2\nb,1,2\nq,1\n")
    eq("filter: no known type and a wrong cell count is no record: rejected", rejects,
       [(2, oracle.CELL_COUNT), (5, oracle.CELL_COUNT)])
    eq("filter: no known type before any header: rejected", run(b"550 gone,x\n")[1],
       [(1, oracle.NO_HEADER)])

    events, rejects = run(b"b,1\nrb,2\nf,3\ntype,a\nb,4\n")
    eq("no header: rows before it rejected", rejects,
       [(1, oracle.NO_HEADER), (2, oracle.NO_HEADER), (3, oracle.NO_HEADER)])
    eq("no header: rows after it are events", [e["a"] for e in events], ["4"])
    # Not fixed by the spec; the fixtures avoid depending on it.
    eq("no header: a filtered type before any header is filtered (oracle's choice)",
       run(b"d,1\n")[1], [])

    events, rejects = run(b"type,a,b\nb,1,2\ntype,b,c,a\nb,1,2,3\nb,1,2\n")
    eq("header: a second header re-maps the columns",
       [[(k, v) for k, v in e.items()][:4] for e in events],
       [[("logType", "b"), ("a", "1"), ("b", "2"), ("type", "pmta")],
        [("logType", "b"), ("b", "1"), ("c", "2"), ("a", "3")]])
    eq("header: cell count checked against the header in force", rejects,
       [(5, oracle.CELL_COUNT)])

    events, _ = run(b'"type","a"\nb,1\n')
    eq("header: detected after unquoting", len(events), 1)
    events, rejects = run(b"\xef\xbb\xbftype,a\r\nb,1\r\n")
    eq("header: BOM at offset 0 allowed, column still 'type'",
       (list(events[0])[:2], rejects), (["logType", "a"], []))
    events, rejects = run(b"type,a\n\xef\xbb\xbftype,b\nb,1\n")
    eq("header: BOM elsewhere is not a header (filtered as a type)",
       ([list(e)[:2] for e in events], rejects), ([["logType", "a"]], []))
    _, rejects = run(b"Type,a\nb,1\n")
    eq("header: 'Type' is not a header (nor a record)", rejects,
       [(1, oracle.NO_HEADER), (2, oracle.NO_HEADER)])

    data = b'type,a,b\r\nb,"x\r\ny",1\r\nb,1\r\nb,"1,2",3\r\nb,1,2,3\r\n'
    _, rejects = run(data)
    eq("lines: counted through multi-line records", rejects,
       [(4, oracle.CELL_COUNT), (6, oracle.CELL_COUNT)])
    _, rejects = run(b"type,a\rb,1\rb\nb,1,2\r\n")
    eq("lines: bare CR ends a line", rejects, [(3, oracle.CELL_COUNT), (4, oracle.CELL_COUNT)])

    events, rejects = run(b'type,a,b\nb,1,"open\nb,2,3\nb,4,5')
    eq("runaway: rejected at its first line (it swallows a whole record)", rejects,
       [(2, oracle.SWALLOWED_RECORDS)])
    eq("runaway: swallowed lines recovered, last unterminated line kept",
       [e["message"] for e in events], ["b,2,3", "b,4,5"])
    events, rejects = run(b'type,a,b\nb,1,"open\nsome text\nb,4,5')
    eq("runaway: open at EOF, no line a record until the unterminated last one (the text "
       "line, parsed again, is no record either)", rejects,
       [(2, oracle.UNTERMINATED_QUOTE), (3, oracle.CELL_COUNT)])
    eq("runaway: the rest parsed again", [e["message"] for e in events], ["b,4,5"])

    # A stray quote closed by a later quoted field: RFC 4180 makes lines 2-5
    # one record; the lines inside are records of their own, so line 2 is the
    # bad one and the others are delivered.
    data = b'type,a,b,c\r\nb,"x,1,2\r\nb,1,2,3\r\nb,4,5,6\r\nb,7,"q",9\r\n'
    events, rejects = run(data)
    eq("stray quote closed later: its line rejected", rejects, [(2, oracle.SWALLOWED_RECORDS)])
    eq("stray quote closed later: the records inside delivered",
       [e["message"] for e in events], ["b,1,2,3", "b,4,5,6", 'b,7,"q",9'])
    events, rejects = run(b'type,a,b,c\nb,"x,1,2\nb,7,"q",9\n')
    eq("stray quote closed on the next line, itself a record", (len(events), rejects),
       (1, [(2, oracle.SWALLOWED_RECORDS)]))
    diag = (b'"smtp;550-5.1.1 The email account that you tried to reach does not exist.\r\n'
            b'550-5.1.1 Please try double-checking the recipient\'s address, b,c,d\r\n'
            b'550 5.1.1 https://support.google.com/mail/?p=NoSuchUser"')
    events, rejects = run(b"type,a,dsnDiag,c\r\nb,1," + diag + b",2\r\nb,3,x,4\r\n")
    eq("multi-line dsnDiag: one event", (len(events), rejects), (2, []))
    eq("multi-line dsnDiag: the CRLFs kept", events[0]["dsnDiag"].count("\r\n"), 2)
    events, rejects = run(b'type,a,b,c\nb,1,"d,\nb,no\nzz,x,y,z\nf,1,2,3,4",2\n')
    eq("inner lines of another cell count or an unknown type are text", (len(events), rejects),
       (1, []))
    events, rejects = run(b'b,1,"x\nb,2,3"\ntype,a,b\n')
    eq("no header in force: no line is a record yet", rejects, [(1, oracle.NO_HEADER)])

    events, _ = run(b"type,a\nb,\xe9\xe2\x82A\n")
    eq("event: values and message sanitised", (events[0]["a"], events[0]["message"]),
       (R + R + R + "A", "b," + R + R + R + "A"))

    try:
        run(b"type,host\nb,x\n")
        check("event: a column named like a fixed key is refused", False)
    except ValueError:
        check("event: a column named like a fixed key is refused", True)


# ---------------------------------------------------------------------------
# The committed fixtures
# ---------------------------------------------------------------------------

# Written by hand from reading the fixtures, not from the oracle's output.
EXPECTED_COUNTS = {
    "bom-header.csv": 2, "bouncehandler-b-rows.csv": 2, "bounces-b-full.csv": 13,
    "bounces-rb.csv": 6, "empty.csv": 0, "fbl.csv": 5, "filtered-types.csv": 3,
    "guide-v4-union-header.csv": 2, "header-only.csv": 0, "header-remap.csv": 4,
    "invalid-utf8.csv": 6, "lenient-quotes.csv": 4, "lf-line-ends.csv": 3,
    "mixed-terminators.csv": 5, "no-final-newline.csv": 3, "quoting.csv": 8,
    "reject-cell-count.csv": 4, "reject-no-header.csv": 0,
    "reject-rows-before-header.csv": 2, "reject-unterminated-quote.csv": 5,
    "reject-stray-quote-closed.csv": 8, "reject-not-a-record.csv": 2,
    "timestamps.csv": 12, "union-b-rb-d.csv": 5,
}
EXPECTED_REJECT_LINES = {
    "reject-cell-count.csv": [3, 5, 9],
    "reject-no-header.csv": [1, 2, 4],
    "reject-rows-before-header.csv": [1, 2],
    "reject-unterminated-quote.csv": [4, 8],
    "reject-stray-quote-closed.csv": [2],
    "reject-not-a-record.csv": [3, 4, 5],
}


def test_fixtures():
    built = make_fixtures.build()
    for name, data in sorted(built.items()):
        path = os.path.join(FIXTURES, name)
        try:
            with open(path, "rb") as fh:
                same = fh.read() == data
        except FileNotFoundError:
            same = False
        check("fixture %s matches make_fixtures.py" % name, same,
              "run tests/fixtures/make_fixtures.py")
    for name in make_fixtures.SAMPLE_COPIES:
        sample = os.path.join(SAMPLES, name)
        if os.path.exists(sample):
            with open(sample, "rb") as a, open(os.path.join(FIXTURES, name), "rb") as b:
                check("fixture %s is a byte copy of the public sample" % name,
                      a.read() == b.read())

    names = sorted(f for f in os.listdir(FIXTURES) if f.endswith(".csv"))
    eq("fixtures: the set on disk is the expected one", names, sorted(EXPECTED_COUNTS))
    for name in names:
        stem = name[:-4]
        with open(os.path.join(FIXTURES, name), "rb") as fh:
            data = fh.read()
        events, rejects = oracle.run(data, oracle.FIXTURE_HOST, oracle.FIXTURE_PATH_PREFIX + name)
        eq("fixture %s: event count" % name, len(events), EXPECTED_COUNTS.get(name))
        eq("fixture %s: reject lines" % name, [line for line, _ in rejects],
           EXPECTED_REJECT_LINES.get(name, []))
        with open(os.path.join(FIXTURES, stem + ".ndjson"), encoding="utf-8") as fh:
            committed = fh.read()
        check("fixture %s: committed %s.ndjson is up to date" % (name, stem),
              committed == oracle.to_ndjson(events), "run tests/oracle.py --write-expected")
        sidecar = os.path.join(FIXTURES, stem + ".rejects.json")
        if rejects:
            with open(sidecar, encoding="utf-8") as fh:
                side = json.load(fh)
            eq("fixture %s: sidecar" % name, (side["count"], side["lines"]),
               (len(rejects), [line for line, _ in rejects]))
        else:
            check("fixture %s: no sidecar" % name, not os.path.exists(sidecar))


def main():
    test_sanitize()
    test_time()
    test_csv()
    test_records()
    test_fixtures()
    print("%d checks, %d failed" % (checks, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
