#!/usr/bin/python3
"""Reference implementation ("oracle") of pmtatail's record -> event mapping.

Written independently of the C code, from the spec alone, to produce the
expected events for the fixtures in tests/fixtures/. Standard library only
(Debian 12's python3, 3.11). It favours being obviously right over being
fast: it reads a whole file into memory and parses it in one pass.

Usage:
    oracle.py [--host H] [--path P] FILE     print the events of FILE as NDJSON;
                                             rejects go to stderr as "line=N reason"
    oracle.py --write-expected [--dir D]     regenerate NAME.ndjson (and, for
                                             reject-* fixtures, NAME.rejects.json)
                                             for every D/NAME.csv

The rules, in brief (what each fixture exercises: tests/fixtures/make_fixtures.py):
  * RFC 4180 CSV over bytes. `,` separates fields, `"` quotes, `""` escapes a
    quote; CR, LF or CRLF outside quotes ends a record; blank lines are
    skipped; nothing is trimmed. A quote in the middle of an unquoted field is
    literal. After a closing quote, anything other than `,`, a terminator or a
    second `"` is kept literally *together with that quote*, and the field
    stays quoted (libcsv's non-strict behaviour).
  * A row whose first cell is `type` (BOM-prefixed allowed at offset 0) is a
    header and (re)defines the columns. Other rows: a type none of the known
    ones (below) with no header yet or a cell count != header -> rejected (no
    record at all); else type not in {b, rb, f} -> filtered silently; else
    no header yet -> rejected; else cell count != header -> rejected; else an
    event.
  * A last record without terminator is a record. A quote still open at EOF
    rejects that record; parsing resumes after the first line terminator
    inside it, so the lines it swallowed are recovered.
  * A bad line costs only itself: when a quoted field carries a record over
    line breaks, and one of the lines after its first (ended by a CR or LF)
    is on its own a whole record -- it starts with a known record type code
    (b rb f d t tq r rs) and a comma, and read alone has as many cells as the
    header in force, every quote closed -- the quote is a stray one: the
    record is rejected at its first line and parsing resumes after that line.
    A multi-line dsnDiag (SMTP text on its inner lines) is not affected.
  * Strings: UTF-8 where valid, each byte that does not start a complete
    valid sequence becomes one U+FFFD.
  * tags: ["pmta"] plus "pmta_sync_bounce" (b), "pmta_async_bounce" (rb) or
    "pmta_fbl" (f), as Logstash's input and filter set them.
  * @timestamp: timeLogged (epoch digits or YYYY-MM-DD[ T]HH:MM:SS(Z|+hhmm|
    +hh:mm)) in UTC as YYYY-MM-DDTHH:MM:SSZ; else null (= "read time, checked
    loosely by the test"). eventId: always null (checked loosely by the test).
"""

import argparse
import datetime as _dt
import json
import os
import re
import sys

FORWARDED_TYPES = frozenset({b"b", b"rb", b"f"})
BOM = b"\xef\xbb\xbf"
CR, LF, COMMA, QUOTE = 0x0D, 0x0A, 0x2C, 0x22

# Reject reasons, named like the C enum pmta_reject_reason (for the sidecar
# files; the test does not check them).
NO_HEADER = "no-header"
CELL_COUNT = "cell-count"
UNTERMINATED_QUOTE = "unterminated-quote"
SWALLOWED_RECORDS = "swallowed-records"

# Every record type PowerMTA writes: a line inside a quoted field starting
# with one of these and holding a header's worth of cells is a record.
KNOWN_TYPES = frozenset({b"b", b"rb", b"f", b"d", b"t", b"tq", b"r", b"rs"})


# --------------------------------------------------------------------------
# UTF-8 sanitising
# --------------------------------------------------------------------------

def _seq_len(data, i):
    """Length of the complete, valid UTF-8 sequence starting at data[i], or 0.

    The ranges are those of the Unicode "well-formed UTF-8" table (Unicode
    3.9, table 3-7): they exclude overlong forms (C0, C1, E0 80..9F,
    F0 80..8F), surrogates (ED A0..BF) and code points above U+10FFFF
    (F4 90.., F5..FF)."""
    n = len(data)
    b0 = data[i]
    if b0 < 0x80:
        return 1

    def cont(k, lo=0x80, hi=0xBF):
        return i + k < n and lo <= data[i + k] <= hi

    if 0xC2 <= b0 <= 0xDF:
        return 2 if cont(1) else 0
    if b0 == 0xE0:
        return 3 if cont(1, 0xA0) and cont(2) else 0
    if 0xE1 <= b0 <= 0xEC or 0xEE <= b0 <= 0xEF:
        return 3 if cont(1) and cont(2) else 0
    if b0 == 0xED:
        return 3 if cont(1, 0x80, 0x9F) and cont(2) else 0
    if b0 == 0xF0:
        return 4 if cont(1, 0x90) and cont(2) and cont(3) else 0
    if 0xF1 <= b0 <= 0xF3:
        return 4 if cont(1) and cont(2) and cont(3) else 0
    if b0 == 0xF4:
        return 4 if cont(1, 0x80, 0x8F) and cont(2) and cont(3) else 0
    return 0  # 80..BF (lone continuation), C0, C1, F5..FF


def sanitize(data):
    """Decode bytes as UTF-8; every byte that does not start a complete valid
    sequence becomes one U+FFFD and decoding resumes at the next byte.

    Deliberately not bytes.decode('utf-8', 'replace'): that replaces a
    "maximal subpart" (b'\\xe2\\x82A' -> one U+FFFD + 'A'), while the spec
    wants one U+FFFD per offending byte (two U+FFFD + 'A')."""
    out = []
    i = 0
    n = len(data)
    while i < n:
        k = _seq_len(data, i)
        if k:
            out.append(data[i:i + k].decode("utf-8"))
            i += k
        else:
            out.append("\ufffd")
            i += 1
    return "".join(out)


# --------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------

_EPOCH_RE = re.compile(rb"[0-9]+")
_ISO_RE = re.compile(
    rb"([0-9]{4})-([0-9]{2})-([0-9]{2})[ T]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    rb"(?:(Z)|([+-])([0-9]{2}):?([0-9]{2}))")
_EPOCH0 = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def _fmt_utc(t):
    # Formatted by hand: strftime('%Y') does not zero-pad years < 1000 on glibc.
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (
        t.year, t.month, t.day, t.hour, t.minute, t.second)


def convert_time(value):
    """timeLogged bytes -> 'YYYY-MM-DDTHH:MM:SSZ', or None when it does not
    parse. Fields out of range (month 13, Feb 30, second 60, offset >= 24h)
    and results outside years 1..9999 count as "does not parse"."""
    try:
        if _EPOCH_RE.fullmatch(value):
            return _fmt_utc(_EPOCH0 + _dt.timedelta(seconds=int(value)))
        m = _ISO_RE.fullmatch(value)
        if not m:
            return None
        y, mo, d, hh, mi, ss = (int(g) for g in m.groups()[:6])
        if m.group(7):
            tz = _dt.timezone.utc
        else:
            oh, om = int(m.group(9)), int(m.group(10))
            if om > 59:
                return None
            off = _dt.timedelta(hours=oh, minutes=om)
            tz = _dt.timezone(-off if m.group(8) == b"-" else off)
        local = _dt.datetime(y, mo, d, hh, mi, ss, tzinfo=tz)
        return _fmt_utc(local.astimezone(_dt.timezone.utc))
    except (ValueError, OverflowError):
        return None


# --------------------------------------------------------------------------
# CSV scanning
# --------------------------------------------------------------------------

# Scanner states.
_FIELD_START, _UNQUOTED, _QUOTED, _QUOTE_IN_QUOTED = range(4)


def scan_record(data, pos):
    """Scan one record starting at data[pos] (pos < len(data), and data[pos]
    is not itself a terminator, i.e. not a blank line).

    Returns (cells, content_end, next_pos, open_quote):
      cells        list of bytes, unquoted;
      content_end  offset just past the record's last byte, terminator excluded;
      next_pos     offset just past the terminator (== content_end at EOF);
      open_quote   True when EOF was reached inside a quoted field (the
                   caller rejects the record; cells are then meaningless)."""
    cells = []
    field = bytearray()
    state = _FIELD_START
    i = pos
    n = len(data)
    while i < n:
        c = data[i]
        if state == _QUOTED:
            if c == QUOTE:
                state = _QUOTE_IN_QUOTED
            else:
                field.append(c)  # CR and LF included: they are data here
        elif state == _QUOTE_IN_QUOTED:
            # The previous byte was a quote inside a quoted field.
            if c == QUOTE:  # "" -> one literal quote
                field.append(QUOTE)
                state = _QUOTED
            elif c == COMMA:
                cells.append(bytes(field))
                field = bytearray()
                state = _FIELD_START
            elif c == CR or c == LF:
                break
            else:
                # Lenient: the quote was not a closing one after all. Keep it
                # and this byte, and stay inside the quoted field.
                field.append(QUOTE)
                field.append(c)
                state = _QUOTED
        elif c == COMMA:  # _FIELD_START or _UNQUOTED
            cells.append(bytes(field))
            field = bytearray()
            state = _FIELD_START
        elif c == CR or c == LF:
            break
        elif state == _FIELD_START and c == QUOTE:
            state = _QUOTED
        else:  # a quote in the middle of an unquoted field is literal
            field.append(c)
            state = _UNQUOTED
        i += 1

    if i == n:  # EOF before any terminator
        if state == _QUOTED:
            return None, n, n, True
        cells.append(bytes(field))
        return cells, n, n, False

    cells.append(bytes(field))
    term = 2 if data[i] == CR and i + 1 < n and data[i + 1] == LF else 1
    return cells, i, i + term, False


def _line_is_record(line, ncols):
    """Is `line` (no terminator in it), read on its own, a whole record?"""
    comma = line.find(b",")
    if comma < 0 or line[:comma] not in KNOWN_TYPES:
        return False
    cells, _, _, open_quote = scan_record(line, 0)
    return not open_quote and len(cells) == ncols


def _swallows_records(data, pos, limit, ncols):
    """True when one of the lines of data[pos:limit] after the first, among
    those ended by a CR or LF, is a whole record of ncols cells."""
    start = pos
    first = True
    for i in range(pos, limit):
        if data[i] not in (CR, LF):
            continue
        if not first and i > start and _line_is_record(data[start:i], ncols):
            return True
        first = False
        start = i + 1
    return False


def _skip_first_line(data, pos):
    """Offset just past the first line terminator (CR, LF or CRLF) at or after
    pos, or len(data) when there is none."""
    n = len(data)
    for i in range(pos, n):
        if data[i] == LF:
            return i + 1
        if data[i] == CR:
            return i + 2 if i + 1 < n and data[i + 1] == LF else i + 1
    return n


class LineCounter:
    """1-based line number of a byte offset. Lines are ended by LF, CRLF or a
    CR not followed by LF, wherever they are (inside quotes too), so a
    record's number is the physical line an editor shows it on."""

    def __init__(self, data):
        self._starts = [0]
        n = len(data)
        for i in range(n):
            if data[i] == LF or (data[i] == CR and (i + 1 == n or data[i + 1] != LF)):
                self._starts.append(i + 1)

    def line(self, offset):
        # Binary search: number of line starts <= offset.
        lo, hi = 0, len(self._starts)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._starts[mid] <= offset:
                lo = mid + 1
            else:
                hi = mid
        return lo


# --------------------------------------------------------------------------
# Records -> events
# --------------------------------------------------------------------------

def _is_header(cells, pos):
    return cells[0] == b"type" or (pos == 0 and cells[0] == BOM + b"type")


def parse(data):
    """Parse a whole file. Yields ("event", cells, columns, raw) for records to
    turn into events and ("reject", line, reason) for rejected ones. Headers
    and filtered rows yield nothing."""
    lines = LineCounter(data)
    columns = None
    pos = 0
    n = len(data)
    while pos < n:
        if data[pos] in (CR, LF):  # blank line (empty record): skipped
            pos += 2 if data[pos] == CR and pos + 1 < n and data[pos + 1] == LF else 1
            continue
        cells, content_end, next_pos, open_quote = scan_record(data, pos)
        if columns is not None and _swallows_records(
                data, pos, n if open_quote else next_pos, len(columns)):
            yield ("reject", lines.line(pos), SWALLOWED_RECORDS)
            pos = _skip_first_line(data, pos)
            continue
        if open_quote:
            yield ("reject", lines.line(pos), UNTERMINATED_QUOTE)
            pos = _skip_first_line(data, pos)
            continue
        if _is_header(cells, pos):
            columns = [b"type"] + cells[1:]  # drop a BOM from the first name
        elif cells[0] not in FORWARDED_TYPES and cells[0] not in KNOWN_TYPES and (
                columns is None or len(cells) != len(columns)):
            # no record type and cells that do not fit: no record at all
            # (half of one broken across lines), rejected
            yield ("reject", lines.line(pos), NO_HEADER if columns is None else CELL_COUNT)
        elif cells[0] not in FORWARDED_TYPES:
            pass  # a known type not forwarded: filtered before the header and cell count
        elif columns is None:
            yield ("reject", lines.line(pos), NO_HEADER)
        elif len(cells) != len(columns):
            yield ("reject", lines.line(pos), CELL_COUNT)
        else:
            yield ("event", cells, columns, data[pos:content_end])
        pos = next_pos


HARD_CATEGORIES = {b"bad-mailbox", b"bad-domain", b"inactive-mailbox"}
SOFT_CATEGORIES = {b"quota-issues", b"no-answer-from-host", b"relaying-issues",
                   b"routing-errors", b"bad-connection", b"message-expired"}


def make_event(cells, columns, raw, host, path):
    """The JSON object for one record, keys in the spec's order."""
    ev = {}
    timestamp = None
    for name, cell in zip(columns, cells):
        if name == b"timeLogged" and cell:
            timestamp = convert_time(cell)
        if not cell:
            continue  # empty cells are left out (Logstash skip_empty_columns)
        key = "logType" if name == b"type" else sanitize(name)
        if key in ev:
            # Duplicate column names are not covered by the spec: refuse
            # rather than invent an answer the C code may not share.
            raise ValueError("duplicate key %r" % key)
        ev[key] = sanitize(cell)
    fixed = [("type", "pmta"), ("@version", "1"), ("@timestamp", timestamp),
             ("host", host), ("path", path), ("message", sanitize(raw))]
    # bounceClass: with no pattern file, a b/rb record is classified by its
    # bounceCat alone (the spec's lists); other categories stay unclassified.
    cat = dict(zip(columns, cells)).get(b"bounceCat", b"")
    if cells and cells[0] in (b"b", b"rb"):
        if cat in HARD_CATEGORIES:
            fixed.append(("bounceClass", "hard"))
        elif cat in SOFT_CATEGORIES:
            fixed.append(("bounceClass", "soft"))
    # tags: Logstash's input tags every event "pmta"; its filter adds one per
    # kind of record.
    kind_tag = {b"b": "pmta_sync_bounce", b"rb": "pmta_async_bounce", b"f": "pmta_fbl"}
    kind = kind_tag.get(cells[0] if cells else b"")
    fixed.append(("tags", ["pmta", kind] if kind else ["pmta"]))
    fixed.append(("eventId", None))
    for key, value in fixed:
        if key in ev:
            raise ValueError("column %r collides with a fixed key" % key)
        ev[key] = value
    return ev


def run(data, host, path):
    """Returns (events, rejects): a list of event dicts and a list of
    (line, reason) tuples, in file order."""
    events, rejects = [], []
    for item in parse(data):
        if item[0] == "event":
            _, cells, columns, raw = item
            events.append(make_event(cells, columns, raw, host, path))
        else:
            rejects.append((item[1], item[2]))
    return events, rejects


def to_ndjson(events):
    return "".join(json.dumps(ev, ensure_ascii=False) + "\n" for ev in events)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

FIXTURE_HOST = "fixture-host"
FIXTURE_PATH_PREFIX = "tests/fixtures/"


def write_expected(fixtures_dir):
    """Regenerate the expected files of every fixture. A fixture named
    reject-* must produce rejects and gets a NAME.rejects.json sidecar; any
    other fixture must produce none (a typo in a fixture then shows up here
    instead of silently becoming "expected")."""
    names = sorted(f for f in os.listdir(fixtures_dir) if f.endswith(".csv"))
    for name in names:
        stem = name[:-len(".csv")]
        with open(os.path.join(fixtures_dir, name), "rb") as fh:
            data = fh.read()
        events, rejects = run(data, FIXTURE_HOST, FIXTURE_PATH_PREFIX + name)
        is_reject_fixture = name.startswith("reject-")
        if is_reject_fixture != bool(rejects):
            sys.exit("%s: %d rejects, but its name %s" % (
                name, len(rejects), "says it has some" if is_reject_fixture else "says none"))
        with open(os.path.join(fixtures_dir, stem + ".ndjson"), "w", encoding="utf-8",
                  newline="\n") as fh:
            fh.write(to_ndjson(events))
        sidecar = os.path.join(fixtures_dir, stem + ".rejects.json")
        if rejects:
            with open(sidecar, "w", encoding="utf-8", newline="\n") as fh:
                json.dump({"count": len(rejects),
                           "lines": [line for line, _ in rejects],
                           "reasons": [reason for _, reason in rejects]}, fh)
                fh.write("\n")
        elif os.path.exists(sidecar):
            os.remove(sidecar)
        print("%-40s %3d events %2d rejects" % (name, len(events), len(rejects)))


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write-expected", action="store_true",
                    help="regenerate the expected files of every fixture")
    ap.add_argument("--dir", default=os.path.join(here, "fixtures"),
                    help="fixtures directory (default: next to this script)")
    ap.add_argument("--host", default=FIXTURE_HOST)
    ap.add_argument("--path", help="path written in events (default: FILE as given)")
    ap.add_argument("file", nargs="?")
    args = ap.parse_args(argv)

    if args.write_expected:
        write_expected(args.dir)
        return 0
    if not args.file:
        ap.error("FILE or --write-expected is required")
    with open(args.file, "rb") as fh:
        data = fh.read()
    events, rejects = run(data, args.host, args.path or args.file)
    sys.stdout.write(to_ndjson(events))
    for line, reason in rejects:
        sys.stderr.write("line=%d %s\n" % (line, reason))
    return 1 if rejects else 0


if __name__ == "__main__":
    sys.exit(main())
