#!/usr/bin/python3
"""A simulated PowerMTA accounting-file writer, for the tailer's scenario tests.

As a module:

    sim = Sim("/tmp/x/pmta/bounces.csv", "/tmp/x/pmta/archive", seed=1)
    sim.write(500)                  # 500 records, in random chunk sizes
    sim.rotate(old_writes=20)       # move-to: rename into the archive directory,
                                    # 20 more records to the old descriptor
    sim.write(100)                  # a new bounces.csv (header first)
    sim.complete                    # record numbers whose terminator is written

As a command (a writer for manual soak runs, or to look at what it writes):

    pmta_sim.py --live PATH --archive-dir DIR [--records N] [--rotate-every K]
                [--rotation rename|same-dir|copy-truncate|delete|truncate]
                [--old-writes K] [--rate R] [--seed S] [--report FILE]
    pmta_sim.py --selftest          # checks the simulator on its own

What it writes: RFC 4180 CSV with CRLF record ends and the header
`type,timeLogged,orig,rcpt,dsnStatus,dsnDiag,bounceCat`. Record number N has
rcpt `uN@example.com`; N is unique and increasing over the whole run (a Sim
started with first_n continues a numbering). Its content is a function of N
alone (record_bytes(N)): plain rows, `dsnDiag` quoted with commas, with doubled
quotes, with CRLF inside, now and then a long one, types `b` and `rb`. With
filtered_ratio > 0 it also writes `d` rows (rcpt `skipK@example.com`, not
numbered) that a tailer forwarding only b and rb must drop.

Writes go out in random chunk sizes: a write(2) may end anywhere, in the middle
of a record or of a quoted field, and the rest follows in the next write. A
record counts as written (`complete`) only once its terminator is written.

Standard library only.
"""

import argparse
import collections
import csv
import datetime as dt
import io
import json
import os
import random
import shutil
import sys
import tempfile
import time

HEADER_FIELDS = ["type", "timeLogged", "orig", "rcpt", "dsnStatus", "dsnDiag", "bounceCat"]
HEADER = (",".join(HEADER_FIELDS) + "\r\n").encode()
TIME_BASE = 1704459600  # 2024-01-05 13:00:00 UTC; record N is logged at TIME_BASE + N
ROTATION_CLOCK = dt.datetime(2024, 1, 5, 13, 0)  # first archive name's time


def _mix(n):
    """A cheap, fixed hash of n: the record's variant does not depend on any
    random state, so record_bytes(n) can be recomputed by a checker."""
    x = (n * 2654435761 + 0x9E3779B9) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 2246822519) & 0xFFFFFFFF
    x ^= x >> 13
    return x


def _q(value):
    """CSV-quote a value (RFC 4180)."""
    return '"' + value.replace('"', '""') + '"'


def record_fields(n):
    """The column values of record number n, as a tailer should report them."""
    v = _mix(n) % 100
    typ = "rb" if n % 3 == 0 else "b"
    status = "5.1.1 (bad destination mailbox address)"
    cat = "bad-mailbox"
    if v < 50:
        diag = "smtp;550 5.1.1 User unknown (record %d)" % n
    elif v < 64:
        diag = ("smtp;550 5.7.1 Service unavailable, client host [203.0.113.%d] blocked, "
                "see https://example.net/q?ip=203.0.113.%d, ref %d" % (n % 250, n % 250, n))
        cat = "spam-related"
    elif v < 78:
        diag = 'smtp;550 5.7.1 Message rejected by policy "Block executables" (ref: "MX-%d")' % n
        cat = "content-related"
    elif v < 92:
        diag = ("smtp;550-5.7.26 This mail is unauthenticated, record %d\r\n"
                "550-5.7.26 sender and Gmail users, blocked\r\n"
                "550 5.7.26 authenticate with SPF or DKIM. - gsmtp" % n)
        status = "5.7.26 (unknown status code)"
        cat = "policy-related"
    elif v < 98:
        diag = 'smtp;552 5.2.2 "mailbox full", quota %d%%' % (n % 100)
        status = "5.2.2 (mailbox full, over quota)"
        cat = "quota-issues"
    else:
        # Long enough to cross any small read buffer on its own.
        size = 1500 + _mix(n + 7) % 5000
        diag = ("smtp;550 5.7.1 long reply, record %d, " % n) + ("x, \"y\" " * (size // 8))
        cat = "other"
    return {"type": typ, "timeLogged": str(TIME_BASE + n), "orig": "bounce@news.example.com",
            "rcpt": "u%d@example.com" % n, "dsnStatus": status, "dsnDiag": diag,
            "bounceCat": cat}


def _encode(fields, order=None):
    out = []
    for name in order or HEADER_FIELDS:
        val = fields[name]
        needs = any(c in val for c in ',"\r\n')
        out.append(_q(val) if needs else val)
    return (",".join(out) + "\r\n").encode()


def record_bytes(n, order=None):
    """The exact bytes of record n, CRLF terminator included; its columns in
    `order` (another header's) when given."""
    return _encode(record_fields(n), order)


def filtered_bytes(k):
    """A `d` (delivered) row, which a tailer forwarding b and rb must drop."""
    return _encode({"type": "d", "timeLogged": str(TIME_BASE + k),
                    "orig": "bounce@news.example.com", "rcpt": "skip%d@example.com" % k,
                    "dsnStatus": "2.0.0 (success)", "dsnDiag": "smtp;250 ok", "bounceCat": ""})


def rcpt_number(rcpt):
    """N for 'uN@example.com', else None."""
    if isinstance(rcpt, str) and rcpt.startswith("u") and rcpt.endswith("@example.com"):
        digits = rcpt[1:-len("@example.com")]
        if digits.isdigit():
            return int(digits)
    return None


def crlf_cut(n):
    """For a record whose dsnDiag holds CRLF inside quotes: the offset just
    after the first embedded CRLF (a reader that ends records at any CRLF
    takes that prefix for a whole record). None for other records."""
    raw = record_bytes(n)
    i = raw.find(b"\r\n")
    return i + 2 if i + 2 < len(raw) else None


def numbers_with_crlf_inside(start, count=1):
    """The first `count` record numbers >= start whose dsnDiag holds CRLF."""
    out, n = [], start
    while len(out) < count:
        if crlf_cut(n) is not None:
            out.append(n)
        n += 1
    return out


def ranges(numbers):
    """[1,2,3,7,9,10] -> '1-3,7,9-10' (for messages)."""
    nums = sorted(set(numbers))
    parts, i = [], 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        parts.append(str(nums[i]) if i == j else "%d-%d" % (nums[i], nums[j]))
        i = j + 1
    return ",".join(parts)


class FileRecords:
    """The records one file received: path (its latest name) and numbers."""

    def __init__(self, path, numbers=None):
        self.path = path
        self.numbers = numbers if numbers is not None else []


class _Stream:
    """One open descriptor and the bytes still to be written to it."""

    def __init__(self, path, fd, rec):
        self.fd = fd
        self.rec = rec     # FileRecords of the file behind the descriptor
        self.pending = bytearray()
        self.queued = 0   # bytes ever queued (stream positions)
        self.sent = 0     # bytes written so far
        self.marks = collections.deque()  # (stream end position, N or None, start file offset)

    @property
    def path(self):
        return self.rec.path

    @property
    def numbers(self):
        return self.rec.numbers


class Sim:
    """A PowerMTA-like writer of one accounting file.

    live         the live file (e.g. .../bounces.csv)
    archive_dir  the move-to directory (None: the live file's directory)
    seed         for chunk sizes and pauses (record contents depend on N only)
    first_n      the first record number (to continue an earlier numbering)
    chunk_max    largest write(2), bytes; sizes are random in 1..chunk_max,
                 skewed towards small ones
    pause_prob / pause_s
                 after a write, sleep up to pause_s with that probability (gives
                 a concurrent reader the chance to see partial records)
    filtered_ratio
                 share of `d` rows mixed in
    """

    def __init__(self, live, archive_dir=None, seed=0, first_n=1, chunk_max=4096,
                 pause_prob=0.0, pause_s=0.002, filtered_ratio=0.0):
        self.live = os.path.abspath(live)
        self.archive_dir = os.path.abspath(archive_dir or os.path.dirname(self.live))
        self.rng = random.Random(seed)
        self.next_n = first_n
        self.next_skip = 1
        self.chunk_max = chunk_max
        self.pause_prob = pause_prob
        self.pause_s = pause_s
        self.filtered_ratio = filtered_ratio

        self.complete = []        # N whose terminator was written, in order
        self.complete_set = set()
        self.started = set()      # N whose first byte was written (complete or not)
        self.partial = {}         # N -> {"path", "offset", "text"}: abandoned halves
        self.destroyed = set()    # complete N removed by truncate/delete
        self.paths = {self.live}  # every path that held records
        self.archives = []        # rotated-away paths, in order
        self.files = []           # FileRecords of every file written, in order
        self.writes = 0           # write(2) calls
        self.mid_record_writes = 0  # ... that ended inside a record
        self.rotations = 0
        self.rotation_clock = ROTATION_CLOCK
        self.cur = None           # _Stream of the live file
        self.old = None           # _Stream kept open after a rotation (old_delay)

    # ------------------------------------------------------------ writing

    def _open_live(self):
        if self.cur is None:
            fd = os.open(self.live, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            rec = FileRecords(self.live)
            self.files.append(rec)
            self.cur = _Stream(self.live, fd, rec)
            if os.fstat(fd).st_size == 0:
                self._queue(self.cur, HEADER, None)
        return self.cur

    def _queue(self, st, data, n):
        start = st.queued
        st.pending += data
        st.queued += len(data)
        st.marks.append((st.queued, n, start))

    def _queue_records(self, st, count):
        for _ in range(count):
            while self.filtered_ratio and self.rng.random() < self.filtered_ratio:
                self._queue(st, filtered_bytes(self.next_skip), None)
                self.next_skip += 1
            n = self.next_n
            self.next_n += 1
            self._queue(st, record_bytes(n), n)

    def _chunk(self):
        # Skewed: many small writes, some large ones.
        r = self.rng.random()
        if r < 0.3:
            return self.rng.randint(1, 64)
        if r < 0.8:
            return self.rng.randint(1, max(1, self.chunk_max // 4))
        return self.rng.randint(1, self.chunk_max)

    def _pump(self, st, limit=None):
        """Write st's pending bytes in random chunks (at most `limit` bytes)."""
        target = st.queued if limit is None else min(st.queued, st.sent + limit)
        while st.sent < target:
            size = min(self._chunk(), target - st.sent)
            off = st.sent - (st.queued - len(st.pending))
            written = os.write(st.fd, bytes(st.pending[off:off + size]))
            st.sent += written
            self.writes += 1
            self._account(st)
            if st.marks and st.marks[0][2] < st.sent:
                self.mid_record_writes += 1
            if self.pause_prob and self.rng.random() < self.pause_prob:
                time.sleep(self.rng.random() * self.pause_s)
        # Drop what is written from the buffer.
        done = len(st.pending) - (st.queued - st.sent)
        if done:
            del st.pending[:done]

    def _account(self, st):
        while st.marks and st.marks[0][0] <= st.sent:
            _, n, _ = st.marks.popleft()
            if n is not None:
                self.complete.append(n)
                self.complete_set.add(n)
                self.started.add(n)
                st.numbers.append(n)
        if st.marks and st.marks[0][2] < st.sent and st.marks[0][1] is not None:
            self.started.add(st.marks[0][1])

    def write(self, count):
        """Append `count` records to the live file (creating it, header first,
        when missing), in random chunk sizes. Also completes a held partial
        record first."""
        st = self._open_live()
        self._queue_records(st, count)
        self._pump(st)

    def write_partial(self, cut=None, need_crlf=False):
        """Start one record and stop partway: write its first `cut` bytes
        (default: a random point; with need_crlf, the record is one with CRLF
        inside a quoted field and the cut is just after that CRLF). Returns
        (N, bytes written of it). finish_partial() writes the rest,
        abandon_partial() forgets it."""
        st = self._open_live()
        self._pump(st)
        if need_crlf:
            n = numbers_with_crlf_inside(self.next_n)[0]
            self.next_n = n  # skipped numbers are simply never written
            cut = crlf_cut(n)
        else:
            n = self.next_n
        raw = record_bytes(n)
        if cut is None:
            cut = self.rng.randint(1, len(raw) - 1)
        self.next_n = n + 1
        self._queue(st, raw, n)
        self._pump(st, limit=cut)
        return n, raw[:cut]

    def finish_partial(self):
        """Write whatever is pending on the live descriptor."""
        if self.cur:
            self._pump(self.cur)

    def abandon_partial(self):
        """Forget the rest of a record started by write_partial: it stays
        incomplete for ever at the end of its file."""
        st = self.cur
        if st is None or not st.marks:
            return None
        end, n, start = st.marks.popleft()
        text = bytes(record_bytes(n)[:st.sent - start])
        size = os.fstat(st.fd).st_size
        info = {"path": st.path, "offset": size - len(text), "end": size, "text": text,
                "ino": os.fstat(st.fd).st_ino}
        self.partial[n] = info
        st.pending.clear()
        st.queued = st.sent
        st.marks.clear()
        return n, info

    def _archive_name(self, dest_dir):
        stem = os.path.splitext(os.path.basename(self.live))[0]
        stamp = self.rotation_clock.strftime("%Y-%m-%d-%H%M")
        self.rotation_clock += dt.timedelta(minutes=1)
        path = os.path.join(dest_dir, "%s-%s.csv" % (stem, stamp))
        seq = 1
        while os.path.exists(path):  # a sequence suffix when the name is taken
            path = os.path.join(dest_dir, "%s-%s-%d.csv" % (stem, stamp, seq))
            seq += 1
        return path

    def _close(self, st):
        self._pump(st)
        os.close(st.fd)

    def rotate(self, dest_dir=None, old_writes=0, old_delay=False, create_now=False):
        """move-interval/move-to: rename the live file into dest_dir (default
        the archive directory) under a new timestamped name. Then write
        `old_writes` more records to the OLD descriptor (a writer still
        appending to it), and close it — unless old_delay, when they are
        written later by old_write_later() (after the new file has records).
        The new live file appears at the next write (create_now: at once,
        with its header). Returns the archived path."""
        if self.old is not None:
            self.old_write_later()
        dest = self._archive_name(dest_dir or self.archive_dir)
        st = self._open_live()
        os.rename(self.live, dest)
        st.rec.path = dest
        for info in self.partial.values():
            if info["path"] == self.live and info.get("ino") == os.fstat(st.fd).st_ino:
                info["path"] = dest
        self.paths.add(dest)
        self.archives.append(dest)
        self.rotations += 1
        self.cur = None
        if old_delay:
            self.old = st
            self._old_count = old_writes
        else:
            if old_writes:
                self._queue_records(st, old_writes)
            self._close(st)
        if create_now:
            self._open_live()
            self._pump(self.cur)
        return dest

    def old_write_later(self):
        """The delayed old-descriptor writes of rotate(old_delay=True)."""
        st, self.old = self.old, None
        if st is None:
            return []
        before = len(st.numbers)
        self._queue_records(st, self._old_count)
        self._close(st)
        return st.numbers[before:]

    def copy_truncate(self, dest_dir=None):
        """logrotate copytruncate: copy the live file to an archive name, then
        truncate the live file to 0 (the writer keeps its descriptor; the next
        record starts again with the header). Returns the copy's path."""
        st = self._open_live()
        self._pump(st)
        dest = self._archive_name(dest_dir or self.archive_dir)
        shutil.copyfile(self.live, dest)
        os.ftruncate(st.fd, 0)
        self.files.append(FileRecords(dest, list(st.numbers)))  # they live on in the copy
        st.numbers.clear()
        self.paths.add(dest)
        self.archives.append(dest)
        self.rotations += 1
        self._queue(st, HEADER, None)
        self._pump(st)
        return dest

    def move_other_fs(self, dest_dir=None):
        """move-to into a directory on another file system, as a move does
        it there: the writer closes the file, it is copied to the archive
        name (a new inode), and the original is deleted. The next write
        creates a new live file. Returns the copy's path."""
        st = self._open_live()
        self._close(st)
        dest = self._archive_name(dest_dir or self.archive_dir)
        shutil.copyfile(self.live, dest)
        os.unlink(self.live)
        st.rec.path = dest  # its records live on in the copy
        self.paths.add(dest)
        self.archives.append(dest)
        self.rotations += 1
        self.cur = None
        return dest

    def truncate(self, header=True):
        """Truncate the live file to 0 in place; the next write starts with the
        header. The records it held are gone (returned, and in destroyed)."""
        st = self._open_live()
        self._pump(st)
        gone = list(st.numbers)
        st.numbers.clear()
        self.destroyed.update(gone)
        os.ftruncate(st.fd, 0)
        if header:
            self._queue(st, HEADER, None)
            self._pump(st)
        return gone

    def delete(self):
        """Delete the live file (closing the descriptor). The next write
        creates a new one. Returns (the deleted inode, the records it held)."""
        st = self._open_live()
        self._pump(st)
        ino = os.fstat(st.fd).st_ino
        gone = list(st.numbers)
        st.rec.path += " (deleted)"
        self.destroyed.update(gone)
        os.close(st.fd)
        os.unlink(self.live)
        self.cur = None
        return ino, gone

    def recreate_same_inode(self, ino, tries=200):
        """After delete() (with no reader holding the old file open), try to
        create the new live file on the freed inode number. Returns True when
        the new file got inode `ino`."""
        scratch = []
        got = False
        try:
            for i in range(tries):
                fd = os.open(self.live, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                if os.fstat(fd).st_ino == ino:
                    os.close(fd)
                    got = True
                    break
                os.close(fd)
                aside = "%s.scratch-%d" % (self.live, i)
                os.rename(self.live, aside)
                scratch.append(aside)
        finally:
            for p in scratch:
                os.unlink(p)
        if not got:
            if os.path.exists(self.live):
                os.unlink(self.live)
            # Freed scratch inodes may include it now: one more try.
            fd = os.open(self.live, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            got = os.fstat(fd).st_ino == ino
            os.close(fd)
        return got

    def close(self):
        if self.old is not None:
            self.old_write_later()
        if self.cur is not None:
            self._close(self.cur)
            self.cur = None

    # ------------------------------------------------------------ results

    def required(self):
        """Record numbers a lossless tailer must deliver: complete and not
        destroyed by a truncation or deletion."""
        return [n for n in self.complete if n not in self.destroyed]

    def allowed(self):
        """Record numbers an event may carry: every record started."""
        return self.started

    def where(self, numbers):
        """{path: [N, ...]} for the given record numbers (where the writer put
        them; for messages)."""
        want = set(numbers)
        out = {}
        for rec in self.files:
            hit = [n for n in rec.numbers if n in want]
            if hit:
                out.setdefault(rec.path, []).extend(hit)
        return out

    def report(self):
        return {"complete": ranges(self.complete), "complete_count": len(self.complete),
                "destroyed": ranges(self.destroyed),
                "partial": {str(n): {"path": p["path"], "offset": p["offset"]}
                            for n, p in self.partial.items()},
                "paths": sorted(self.paths), "writes": self.writes,
                "mid_record_writes": self.mid_record_writes, "rotations": self.rotations,
                "next_n": self.next_n}


# ---------------------------------------------------------------- self-test

def parse_file(path):
    """Records of an accounting file as dicts (Python's csv, which takes CRLF
    inside quotes as data), plus the unterminated tail (bytes)."""
    with open(path, "rb") as fh:
        data = fh.read()
    if not data:
        return [], b""
    # Split off an unterminated last record: find the end of the last
    # record terminated outside quotes.
    inq, last_end, i = False, 0, 0
    while i < len(data):
        c = data[i]
        if c == 0x22:
            inq = not inq
        elif not inq and c == 0x0A:
            last_end = i + 1
        i += 1
    body, tail = data[:last_end], data[last_end:]
    rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    if not rows or rows[0] != HEADER_FIELDS:
        raise ValueError("%s: first row is not the header: %r" % (path, rows[:1]))
    return [dict(zip(HEADER_FIELDS, r)) for r in rows[1:]], tail


def selftest():
    fails = []

    def check(name, cond, detail=""):
        print(("ok - " if cond else "FAIL - ") + name + ("" if cond else ": " + detail))
        if not cond:
            fails.append(name)

    for n in range(1, 3000):
        raw = record_bytes(n)
        rows = list(csv.reader(io.StringIO(raw.decode(), newline="")))
        if len(rows) != 1 or dict(zip(HEADER_FIELDS, rows[0])) != record_fields(n):
            check("record %d round-trips through csv" % n, False, repr(raw[:200]))
            break
    else:
        check("records 1..2999 round-trip through Python's csv", True)
    kinds = {_mix(n) % 100 // 10 for n in range(1, 500)}
    check("every record variant occurs", len(kinds) == 10, str(kinds))

    with tempfile.TemporaryDirectory(prefix="pmta-sim-") as tmp:
        live_dir = os.path.join(tmp, "pmta")
        arch = os.path.join(live_dir, "archive")
        os.makedirs(arch)
        live = os.path.join(live_dir, "bounces.csv")
        sim = Sim(live, arch, seed=7, filtered_ratio=0.05)
        sim.write(300)
        sim.rotate(old_writes=5)
        sim.write(50)
        sim.rotate(old_writes=3, old_delay=True, create_now=True)
        sim.write(40)
        later = sim.old_write_later()
        check("delayed old-descriptor writes", len(later) == 3, str(later))
        sim.rotate(dest_dir=live_dir)           # into the live directory
        n_part, text = sim.write_partial(need_crlf=True)
        check("partial cut after an embedded CRLF", text.endswith(b"\r\n") and
              n_part not in sim.complete_set and n_part in sim.started)
        sim.finish_partial()
        check("finished partial counts as complete", n_part in sim.complete_set)
        sim.write(20)
        n_ab, _ = sim.write_partial()
        ab = sim.abandon_partial()
        sim.rotate()
        sim.write(30)
        sim.copy_truncate()
        sim.write(30)
        gone_t = sim.truncate()
        sim.write(10)
        ino, gone_d = sim.delete()
        sim.write(10)
        for _ in range(10):
            sim.rotate()
            sim.write(3)
        sim.close()

        # Every file parses; together they hold exactly the complete records
        # (less the destroyed ones); the abandoned half is the tail of its file.
        seen = collections.Counter()
        filtered = 0
        tails = {}
        for path in sorted(sim.paths):
            recs, tail = parse_file(path)
            if tail:
                tails[path] = tail
            for r in recs:
                n = rcpt_number(r["rcpt"])
                if n is None:
                    filtered += r["type"] == "d"
                    continue
                if r != record_fields(n):
                    check("record %d content in %s" % (n, path), False, repr(r)[:200])
                seen[n] += 1
        want = collections.Counter(sim.required())
        check("files hold exactly the complete records (%d)" % len(want), seen == want,
              "missing %s extra %s" % (ranges(set(want) - set(seen)),
                                       ranges(set(seen) - set(want))))
        check("no record twice in the writer's own list",
              len(sim.complete) == len(sim.complete_set))
        check("numbers increase", sim.complete == sorted(sim.complete))
        check("filtered d rows written", filtered > 0)
        check("abandoned half is its file's tail",
              ab is not None and tails.get(ab[1]["path"]) == ab[1]["text"], repr(tails)[:300])
        check("truncate and delete destroyed records", bool(gone_t) and bool(gone_d))
        check("writes end mid-record (%d of %d)" % (sim.mid_record_writes, sim.writes),
              sim.mid_record_writes > sim.writes // 4)
        check("archive names unique (%d)" % len(sim.archives),
              len(set(sim.archives)) == len(sim.archives))
        check("every rotated file starts with the header",
              all(open(p, "rb").read(len(HEADER)) in (HEADER, b"") for p in sim.archives))

        # Inode reuse after delete when nobody holds the file.
        sim2 = Sim(os.path.join(tmp, "reuse.csv"), tmp, seed=3)
        sim2.write(5)
        ino, _ = sim2.delete()
        got = sim2.recreate_same_inode(ino)
        print("info - inode reuse achieved on this filesystem: %s" % got)

    print("%d failed" % len(fails))
    return 1 if fails else 0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--live")
    ap.add_argument("--archive-dir")
    ap.add_argument("--records", type=int, default=1000)
    ap.add_argument("--rotate-every", type=int, default=0, help="records between rotations")
    ap.add_argument("--rotation", default="rename",
                    choices=["rename", "same-dir", "copy-truncate", "delete", "truncate"])
    ap.add_argument("--old-writes", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0, help="records per second (0: flat out)")
    ap.add_argument("--first-n", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--filtered-ratio", type=float, default=0.0)
    ap.add_argument("--report", help="write what was written, as JSON, to this file")
    a = ap.parse_args(argv[1:])
    if a.selftest:
        return selftest()
    if not a.live:
        ap.error("--live is required")
    sim = Sim(a.live, a.archive_dir, seed=a.seed, first_n=a.first_n,
              filtered_ratio=a.filtered_ratio, pause_prob=0.05)
    step = 10 if a.rate else 200
    t0 = time.monotonic()
    done = since_rot = 0
    while done < a.records:
        k = min(step, a.records - done)
        sim.write(k)
        done += k
        since_rot += k
        if a.rotate_every and since_rot >= a.rotate_every and done < a.records:
            since_rot = 0
            if a.rotation == "rename":
                sim.rotate(old_writes=a.old_writes)
            elif a.rotation == "same-dir":
                sim.rotate(dest_dir=os.path.dirname(sim.live), old_writes=a.old_writes)
            elif a.rotation == "copy-truncate":
                sim.copy_truncate()
            elif a.rotation == "delete":
                sim.delete()
            else:
                sim.truncate()
        if a.rate:
            ahead = done / a.rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    sim.close()
    rep = sim.report()
    if a.report:
        with open(a.report, "w") as fh:
            json.dump(rep, fh, indent=1)
    print("wrote %d records (%s), %d rotations, %d writes" % (
        rep["complete_count"], rep["complete"], rep["rotations"], rep["writes"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
