#!/usr/bin/python3
"""import-sincedb: taking over from Logstash's file input, with the real binary.

Usage: test_sincedb.py PMTATAIL

For each of the three sincedb variants Logstash writes (4 fields; 5 with the
last-active time; 6 with the path as well) the same story, in a temporary
directory:

  * Logstash followed bounces.csv (records written by tests/py/pmta_sim.py's
    record_bytes: some with CRLF inside a quoted dsnDiag) and stopped, its
    sincedb naming the live file's inode and the offset it had read: inside a
    record (the first line of a two-line record), at a record boundary, or at
    the end of the header line, one per variant; the device as Logstash splits
    it (and once as glibc does). It also names an old archive
    it had read whole, a file that is gone, and (with a last-active time
    before that file's birth) the inode of a file created later: a reused
    inode;
  * after it stopped, PowerMTA appended to bounces.csv, rotated it into the
    archive directory (the inode the sincedb names is now there), wrote and
    rotated another file, and started a new bounces.csv; an older archive the
    sincedb no longer lists lies there too;
  * `import-sincedb --dry-run` prints what it would do and writes nothing;
    `import-sincedb` seeds offsets.json, naming per entry the file it matched
    (where it is now) or why not;
  * the daemon started after it delivers, to tests/py/backend.py, exactly the
    records past the imported offsets (the record after the one the offset
    cut, when it cut one), the files written after Logstash stopped whole,
    nothing of what Logstash had read, each record once; `status` is healthy;
  * while the daemon runs, import-sincedb is refused (the state lock).

Then: a sincedb with a line that is not a sincedb line imports nothing; usage
errors exit 2. Standard library only.
"""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pmta_sim import HEADER, crlf_cut, numbers_with_crlf_inside, record_bytes, rcpt_number  # noqa: E402
from backend import Backend  # noqa: E402
from harness import Daemon, binary_arg, check, finish, info, poll_until  # noqa: E402

BINARY = None
KEEP = bool(os.environ.get("PMTATAIL_SINCEDB_KEEP"))


def write_records(path, numbers, header=True, mode="wb"):
    """Append the records to path; the offset of each record's start."""
    starts = {}
    with open(path, mode) as fh:
        if header and fh.tell() == 0:
            fh.write(HEADER)
        for n in numbers:
            starts[n] = fh.tell()
            fh.write(record_bytes(n))
    return starts


def dev_of(st, glibc=False):
    """MAJOR MINOR as Logstash writes them: JRuby's jnr-posix splits st_dev
    the old BSD way (bits 24..31, low 24 bits: "0 65024" for 254:0); with
    glibc=True as glibc's major() and minor() do."""
    if glibc:
        return os.major(st.st_dev), os.minor(st.st_dev)
    return (st.st_dev >> 24) & 0xff, st.st_dev & 0xffffff


def birth_time(path):
    """The file's birth time, or None when the file system keeps none."""
    try:
        out = subprocess.run(["stat", "-c", "%W", path], capture_output=True, text=True)
        t = int(out.stdout.strip())
        return t if t > 0 else None
    except (OSError, ValueError):
        return None


class Env(Daemon):
    STDOUT_FILE = False

    def __init__(self, name):
        super().__init__(BINARY, name, "pmtatail-sincedb-%s-" % name, KEEP)
        self.sincedb = os.path.join(self.tmp, "sincedb_logstash")
        self.makedirs(self.archive, self.logs)
        self.backend = Backend()
        self.backend.start()
        with open(self.conf, "w") as fh:
            fh.write("[source bounces]\npath = %s\narchive_dir = %s\nrecords = b, rb\n\n"
                     "[output]\nurl = %s\nlinger_ms = 20\n\n[state]\ndir = %s\n\n"
                     "[log]\nlevel = info\n"
                     % (self.live, self.archive, self.backend.url("/bounces"), self.state))

    def cmd(self, *args):
        rc, out, err = self.command(*args)
        return rc, out.replace(self.tmp, "TMP"), err.replace(self.tmp, "TMP")

    def start(self):
        return super().start(wait_ready=False)


def line_for(out, lineno):
    m = re.search(r"^line %d: .*$" % lineno, out, re.M)
    return m.group(0) if m else ""


def takeover(variant):
    """One Logstash takeover; variant is the number of fields per line."""
    e = Env("v%d" % variant)
    label = "%d-field sincedb" % variant
    try:
        # E: an old archive whose sincedb entry expired long ago.
        old_e = os.path.join(e.archive, "bounces-2024-01-04-1000.csv")
        write_records(old_e, range(1, 11))
        os.utime(old_e, (time.time() - 3 * 86400, time.time() - 3 * 86400))
        # D: an archive Logstash read whole.
        old_d = os.path.join(e.archive, "bounces-2024-01-05-1100.csv")
        write_records(old_d, range(11, 31))
        os.utime(old_d, (time.time() - 7200, time.time() - 7200))
        # A: the live file as Logstash left it (records 31..70).
        starts = write_records(e.live, range(31, 71))
        size_a = os.path.getsize(e.live)
        if variant == 4:
            # the first line of a record whose dsnDiag holds a CRLF
            n = numbers_with_crlf_inside(45)[0]
            assert n < 70
            offset_a = starts[n] + crlf_cut(n)
            first_a = n + 1
        elif variant == 5:
            n = 52
            offset_a = starts[n]  # records before 52 read, a boundary
            first_a = n
        else:
            offset_a = len(HEADER)  # only the header line
            first_a = 31
        st_a, st_d = os.stat(e.live), os.stat(old_d)
        # Logstash stops now. What PowerMTA writes next is born later (the
        # import tells a reused inode by a birth after Logstash last looked).
        t0 = time.time()
        time.sleep(1.2)
        stale_ino = st_a.st_ino + 7777777
        # after Logstash stopped: PowerMTA appends, rotates, writes on
        write_records(e.live, range(71, 81), mode="ab")
        moved_a = os.path.join(e.archive, "bounces-2024-01-05-1200.csv")
        os.rename(e.live, moved_a)
        b_file = os.path.join(e.archive, "bounces-2024-01-05-1300.csv")
        write_records(b_file, range(81, 101))
        write_records(e.live, range(101, 121))
        st_c = os.stat(e.live)
        born_c = birth_time(e.live)

        def line(st, off, when, path, glibc=False):
            major, minor = dev_of(st if st is not None else st_a, glibc)
            ino = st.st_ino if st is not None else stale_ino
            fields = [str(ino), str(major), str(minor), str(off)]
            if variant >= 5:
                fields.append("%.6f" % when)
            if variant == 6:
                fields.append(path)
            return " ".join(fields) + "\n"
        with open(e.sincedb, "w") as fh:
            fh.write(line(st_a, offset_a, t0, "/var/log/pmta/bounces.csv"))          # line 1
            # line 2 in glibc's split of the device, as other tools write it
            fh.write(line(st_d, os.path.getsize(old_d), t0, old_d, glibc=variant == 5))
            fh.write(line(None, 123, t0 - 50000, "/var/log/pmta/gone.csv"))         # line 3
            if born_c is not None:  # a reused inode is told by the birth time
                fh.write(line(st_c, 40, t0, "/var/log/pmta/bounces.csv"))           # line 4
        os.utime(e.sincedb, (t0, t0))  # Logstash's last save: when it stopped

        rc, out, err = e.cmd("import-sincedb", "--dry-run", e.sincedb)
        check("%s: --dry-run exits 0" % label, rc == 0, ["rc %r" % rc] + (out + err).splitlines())
        check("%s: --dry-run writes no offsets.json" % label, not os.path.exists(e.offsets))
        entries = 4 if born_c is not None else 3
        check("%s: --dry-run says what it would import (2 of %d)" % (label, entries),
              "would import 2 of %d" % entries in out, out.splitlines()[-3:])

        rc, out, err = e.cmd("import-sincedb", e.sincedb)
        lines = out.splitlines()
        check("%s: import exits 0" % label, rc == 0, ["rc %r" % rc] + (out + err).splitlines())
        l1 = line_for(out, 1)
        check("%s: line 1 matched where the inode is now (the archive), not the live path"
              % label, "TMP/pmta/archive/bounces-2024-01-05-1200.csv" in l1, [l1])
        if variant == 4:
            want_at = starts[n] + len(record_bytes(n)) - 1  # the record's end (its CR)
            ok = ("resume at %d" % want_at) in l1 or ("resume at %d" % (want_at + 1)) in l1
            check("%s: an offset inside a record resumes at the next record (%d)"
                  % (label, want_at + 1), ok and "inside a record" in l1, [l1])
        else:
            check("%s: an offset at a record boundary is kept (%d)" % (label, offset_a),
                  re.search(r"resume at %d( |,|$)" % offset_a, l1), [l1])
        l2 = line_for(out, 2)
        check("%s: line 2: the archive Logstash read whole, resumed at its end" % label,
              "bounces-2024-01-05-1100.csv" in l2 and "read to its end" in l2, [l2])
        l3 = line_for(out, 3)
        check("%s: line 3: a file that is gone is named as not imported" % label,
              "not imported" in l3 and "no file" in l3, [l3])
        l4 = line_for(out, 4)
        if born_c is not None:
            check("%s: line 4: an inode born after Logstash last read it is not imported"
                  % label, "not imported" in l4 and "reused" in l4, [l4])
        else:
            info("%s: no birth times on this file system: no reused-inode line" % label)
        check("%s: import summary: 2 of %d" % (label, entries),
              any(ln.startswith("imported 2 of %d sincedb entries into" % entries)
                  for ln in lines), lines[-2:])
        check("%s: offsets.json written" % label, os.path.exists(e.offsets))

        expected = set(range(first_a, 81)) | set(range(81, 101)) | set(range(101, 121))
        e.start()
        ok = poll_until(lambda: len(e.backend.accepted_counts("rcpt")) >= len(expected)
                        or e.proc.poll() is not None, 30)
        time.sleep(1.0)  # anything extra would come now
        got = e.backend.accepted_counts("rcpt")
        nums = {rcpt_number(r): c for r, c in got.items()}
        missing = sorted(expected - set(nums))
        extra = sorted(k for k in nums if k not in expected)
        twice = sorted(k for k, c in nums.items() if c > 1)
        check("%s: the start after it delivers every record past the imported offsets (%d)"
              % (label, len(expected)), ok and not missing,
              ["missing %s" % missing[:20]] + e.stderr_tail())
        check("%s: ... and nothing Logstash had read (nor the old archive)" % label, not extra,
              ["extra %s" % extra[:30]])
        check("%s: ... each once" % label, not twice, ["twice %s" % twice[:20]])

        # the daemon holds the state directory: the import is refused
        rc2, out2, err2 = e.cmd("import-sincedb", e.sincedb)
        check("%s: refused while the daemon runs (exit 1, says so)" % label,
              rc2 == 1 and re.search(r"holds .*stop it", err2), [rc2, err2.strip()])

        def healthy():
            return e.cmd("status")[0] == 0
        check("%s: status is healthy after the takeover" % label, poll_until(healthy, 15, 0.5),
              e.cmd("status")[1].splitlines()[:12])
        rc3 = e.stop()
        check("%s: SIGTERM, exit 0" % label, rc3 == 0, [rc3] + e.stderr_tail())
    finally:
        e.cleanup()


def refusals():
    e = Env("refusals")
    try:
        write_records(e.live, range(1, 5))
        st = os.stat(e.live)
        major, minor = dev_of(st)
        with open(e.sincedb, "w") as fh:
            fh.write("%d %d %d 30 1700000000.5\n" % (st.st_ino, major, minor))
            fh.write("1-2-3 0 0 10\n")  # a Windows sincedb's inode
        rc, out, err = e.cmd("import-sincedb", e.sincedb)
        check("a sincedb with a bad line: exit 1, names the line, imports nothing",
              rc == 1 and "line 2" in err and "nothing imported" in err
              and not os.path.exists(e.offsets), [rc, out, err])
        with open(e.sincedb, "w") as fh:
            fh.write("%d %d %d\n" % (st.st_ino, major, minor))
        rc, out, err = e.cmd("import-sincedb", e.sincedb)
        check("a line of 3 fields: exit 1", rc == 1 and "line 1" in err, [rc, err])
        rc, out, err = e.cmd("import-sincedb", os.path.join(e.tmp, "nonexistent"))
        check("a missing sincedb: exit 1, says so", rc == 1 and "cannot read" in err, [rc, err])
        for args in ([], ["--bogus", e.sincedb], [e.sincedb, e.sincedb]):
            rc, out, err = e.cmd("import-sincedb", *args)
            check("usage error %s: exit 2" % (args or "(no file)"), rc == 2, [rc, err])
    finally:
        e.cleanup()


def main(argv):
    global BINARY
    BINARY, rc = binary_arg(argv, __doc__)
    if BINARY is None:
        return rc
    for variant in (4, 5, 6):
        takeover(variant)
    refusals()
    return finish()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
