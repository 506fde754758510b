#!/usr/bin/python3
"""check-config's cross-check of PowerMTA's configuration ([pmta] config).

    python3 tests/py/test_pmtacheck.py BINARY SOURCE_ROOT

PowerMTA configuration files written as Octeth's guide writes them (its two
<acct-file> blocks, bounces.csv and fbl.csv), once in the main file and once
through `include` lines (a glob, a relative path, nested), then changed one
mismatch at a time. For each mismatch: check-config exits 1 and prints one
"problem:" line naming PowerMTA's file and line and pmtatail's file and
line. Also: the guide's files and pmtatail's own blocks (acct-files.conf,
`pmtatail pmta-config`) raise none; an unreadable or missing PowerMTA
configuration is a note, not a problem; hostile input (include loops, deep
nesting, overlong lines, unclosed blocks) gives notes with file and line and
never stops the check.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

BINARY = os.path.abspath(sys.argv[1])
SRC = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "../.."))

failures = 0


def check(name, ok, detail=""):
    global failures
    if ok:
        print(f"ok: {name}")
    else:
        failures += 1
        print(f"FAIL: {name}" + (f"\n{detail}" if detail else ""))
    return ok


B_FIELDS = "timeQueued,timeLogged,orig,rcpt,bounceCat,dsnStatus,dsnAction,dsnDiag,dsnMta,jobId,vmta,header_X-FBLId"
RB_FIELDS = "timeLogged,orig,rcpt,bounceCat,dsnStatus,dsnAction,dsnDiag,dsnMta,header_X-FBLId"
F_FIELDS = "timeLogged,format,header_To,header_Return-Path,reportedDomain,header_X-FBLId"


def guide_blocks(log, bounces=None, fbl=None):
    """Octeth's guide's two blocks, with the log directory moved to log.
    bounces/fbl: replacements {directive line prefix: new line or None}."""
    b = [f"<acct-file {log}/bounces.csv>",
         "    move-interval 1h",
         f"    move-to {log}/accounting/bounces/",
         "    records b, rb",
         f"    record-fields b {B_FIELDS}",
         f"    record-fields rb {RB_FIELDS}",
         "    world-readable yes",
         "</acct-file>"]
    f = [f"<acct-file {log}/fbl.csv>",
         "    move-interval 24h",
         f"    move-to {log}/accounting/fbl/",
         "    records feedback-loop",
         f"    record-fields f {F_FIELDS}",
         "    world-readable yes",
         "</acct-file>"]

    def apply(lines, changes):
        out = []
        for line in lines:
            key = next((k for k in (changes or {}) if line.strip().startswith(k)), None)
            if key is None:
                out.append(line)
            elif changes[key] is not None:
                out.append(changes[key])
        return out

    return "\n".join(apply(b, bounces) + [""] + apply(f, fbl)) + "\n"


class Env:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pmtatail-pmtacheck-")
        os.chmod(self.dir, 0o755)
        self.log = os.path.join(self.dir, "log")
        for d in ("accounting/bounces", "accounting/fbl"):
            os.makedirs(os.path.join(self.log, d))
        # a copy nobody can run, wherever the build directory is (a 0700
        # temporary tree under dpkg-buildpackage)
        self.binary = os.path.join(self.dir, "pmtatail")
        shutil.copy(BINARY, self.binary)
        os.chmod(self.binary, 0o755)
        self.state = os.path.join(self.dir, "state")
        os.makedirs(self.state)
        # owned by root, 0700: the state directory rules hold for the runs as
        # root; runs as nobody look only at the cross-check lines
        os.chmod(self.state, 0o700)
        # the runs as nobody get a state directory of their own, as the
        # daemon's user has in a real installation
        self.state_nobody = os.path.join(self.dir, "state-nobody")
        os.makedirs(self.state_nobody)
        os.chown(self.state_nobody, 65534, 65534)
        os.chmod(self.state_nobody, 0o700)
        self.n = 0

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text, mode=0o644):
        p = self.path(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def conf(self, pmta, sources=None, extra=""):
        """pmtatail's configuration following the guide's two files."""
        log = self.log
        if sources is None:
            sources = (f"[source bounces]\npath = {log}/bounces.csv\narchive_dir = {log}/accounting/bounces\n"
                       f"records = b, rb\n\n[source fbl]\npath = {log}/fbl.csv\narchive_dir = {log}/accounting/fbl\n"
                       "records = f\n")
        self.n += 1
        text = (f"{sources}\n[output]\nfile = {self.dir}/out.ndjson\n\n[state]\ndir = {self.state}\n\n"
                f"{extra}[pmta]\nconfig = {pmta}\n")
        return self.write(f"pmtatail-{self.n}.conf", text)

    def check_config(self, conf, user=None):
        kw = {}
        if user is not None:
            # nobody's group is nogroup on Debian, nobody elsewhere: by number
            kw = {"user": user, "group": 65534, "extra_groups": []}
            # the same file (the problem lines name it), its state directory
            # nobody's for this run
            with open(conf) as f:
                text = f.read()
            with open(conf, "w") as f:
                f.write(text.replace(f"dir = {self.state}\n", f"dir = {self.state_nobody}\n"))
        p = subprocess.run([self.binary, "-c", conf, "check-config"], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=30, **kw)
        return p.returncode, p.stdout, p.stderr


def problems(out, conf=None):
    """The problem lines; with conf, only the cross-check's (they name
    pmtatail's file), not check-config's own path checks."""
    return [l.strip() for l in out.splitlines() if l.strip().startswith("problem:")
            and (conf is None or conf in l)]


def notes(out):
    return [l.strip() for l in out.splitlines() if l.strip().startswith("note:")]


def names_both(line, pmta_file, pmta_line, conf, conf_line=None):
    """The line names PowerMTA's file:line and pmtatail's file:line."""
    ok = f"{pmta_file}:{pmta_line}" in line if pmta_line else pmta_file in line
    ok = ok and (f"{conf}:{conf_line}" in line if conf_line else re.search(re.escape(conf) + r":\d+", line))
    return bool(ok)


def line_of(path, prefix):
    for i, l in enumerate(open(path), 1):
        if l.strip().startswith(prefix):
            return i
    return None


def main():
    e = Env()
    try:
        log = e.log
        # --- the guide's files, in one file and through includes -------------
        main_cfg = e.write("pmta/config", "# PowerMTA\npostmaster admin@example.com\n<domain *>\n"
                                          "    max-smtp-out 20\n</domain>\n\n" + guide_blocks(log))
        conf = e.conf(main_cfg)
        rc, out, err = e.check_config(conf)
        check("guide's blocks in /etc/pmta/config: no problem, exit 0", rc == 0 and not problems(out), out + err)
        check("guide's blocks: each source matches its <acct-file>",
              len([l for l in out.splitlines() if "ok: [source" in l and "matches <acct-file" in l]) == 2, out)
        check("check-config shows [pmta] config", f"[pmta]\nconfig = {main_cfg}" in out, out)

        inc_main = e.write("pmta-inc/config", "postmaster admin@example.com\ninclude conf.d/*.conf\n")
        e.write("pmta-inc/conf.d/10-bounces.conf", "include ../nested/bounces\n")
        bl = guide_blocks(log).split("\n\n")
        nested = e.write("pmta-inc/nested/bounces", bl[0] + "\n")
        fbl_inc = e.write("pmta-inc/conf.d/20-fbl.conf", "# complaints\n" + bl[1])
        conf_inc = e.conf(inc_main)
        rc, out, err = e.check_config(conf_inc)
        check("guide's blocks through include (glob, relative, nested): no problem", rc == 0 and not problems(out),
              out + err)
        check("include: the files read are counted (4)", "4 files, 2 <acct-file> blocks" in out, out)
        check("include: matches name the included file and line",
              f"({nested}:1)" in out and f"({fbl_inc}:2)" in out, out)

        # --- one mismatch at a time -------------------------------------------------------
        def case(label, blocks, sources=None, expect=1, pattern=None, pmta_prefix=None, user=None, where=None):
            """One PowerMTA file through an include; expect that many problems,
            each naming both files; pattern must be in the first."""
            name = re.sub(r"\W+", "-", label)
            inner = e.write(f"case-{name}/acct.conf", blocks)
            outer = e.write(f"case-{name}/config", "include acct.conf\n")
            c = e.conf(outer, sources=sources)
            rc, out, err = e.check_config(c, user=user)
            probs = problems(out, c)
            ok = rc == 1 and len(probs) == expect
            if ok and pattern:
                ok = re.search(pattern, probs[0]) is not None
            pmta_line = line_of(inner, pmta_prefix) if pmta_prefix else None
            if ok:
                ok = all(names_both(p, inner, pmta_line if i == 0 else None, c) or
                         (where == "pmta-only" and (inner in p or outer in p) and c in p) for i, p in enumerate(probs))
            check(f"mismatch: {label}: exit 1, {expect} problem line(s) naming both files and lines", ok,
                  "\n".join(probs) or out + err)
            return probs

        case("move-to differs from archive_dir",
             guide_blocks(log, bounces={"move-to": f"    move-to {log}/archive/"}),
             pattern=r"move-to .*/archive/, but \[source bounces\] .* has archive_dir", pmta_prefix="move-to")
        src_no_archive = (f"[source bounces]\npath = {log}/bounces.csv\nrecords = b, rb\n\n[source fbl]\n"
                          f"path = {log}/fbl.csv\narchive_dir = {log}/accounting/fbl\nrecords = f\n")
        case("move-to without archive_dir", guide_blocks(log), sources=src_no_archive,
             pattern=r"has no archive_dir", pmta_prefix="move-to")
        probs = case("archive_dir without move-to (and its move-interval ignored)",
                     guide_blocks(log, fbl={"move-to": None}), expect=2,
                     pattern=r"<acct-file .*fbl.csv> has no move-to, but \[source fbl\]",
                     pmta_prefix="<acct-file " + log + "/fbl")
        check("archive_dir without move-to: the second problem names move-interval's line",
              len(probs) == 2 and re.search(r"acct.conf:11: <acct-file .*fbl.csv> move-interval 24h without "
                                            r"move-to: PowerMTA ignores it", probs[1]), "\n".join(probs))
        case("live path not an <acct-file>",
             guide_blocks(log, fbl={"<acct-file": f"<acct-file {log}/complaints.csv>"}), expect=2,
             pattern=r"\[source fbl\] .* follows .*fbl.csv, which is no <acct-file>", where="pmta-only")
        case("records lack a type pmtatail forwards (rb)",
             guide_blocks(log, bounces={"records": "    records b", "record-fields rb": None}),
             pattern=r"records does not include rb, which \[source bounces\]", pmta_prefix="records")
        case("PowerMTA writes f into the bounces file, not forwarded",
             guide_blocks(log, bounces={"records": "    records b, rb, feedback-loop"}),
             pattern=r"writes f records, which \[source bounces\] .* does not forward", pmta_prefix="records")
        case("no records line", guide_blocks(log, fbl={"records": None}),
             pattern=r"<acct-file .*fbl.csv> has no records line", pmta_prefix="<acct-file " + log + "/fbl")
        case("record-fields b lacks header_X-FBLId",
             guide_blocks(log, bounces={"record-fields b ": "    record-fields b " + B_FIELDS.replace(",header_X-FBLId", "")}),
             pattern=r"record-fields b of .* lacks header_X-FBLId \(", pmta_prefix="record-fields b ")
        case("record-fields rb lacks header_X-FBLId and dsnDiag (header_X-FBLId named first)",
             guide_blocks(log, bounces={"record-fields rb": "    record-fields rb timeLogged, orig, rcpt, bounceCat, "
                                                            "dsnStatus, dsnAction, dsnMta"}),
             pattern=r"record-fields rb of .* lacks header_X-FBLId, dsnDiag \(", pmta_prefix="record-fields rb")
        case("record-fields f lacks several fields",
             guide_blocks(log, fbl={"record-fields f": "    record-fields f timeLogged,format"}),
             pattern=r"record-fields f of .* lacks header_X-FBLId, header_To, header_Return-Path, reportedDomain",
             pmta_prefix="record-fields f")
        case("no record-fields for rb: PowerMTA's defaults lack header_X-FBLId",
             guide_blocks(log, bounces={"record-fields rb": None}),
             pattern=r"has no record-fields rb: PowerMTA's default fields lack header_X-FBLId",
             pmta_prefix="<acct-file " + log + "/bounces")
        case("an <acct-file> of bounces nothing follows",
             guide_blocks(log),
             sources=(f"[source bounces]\npath = {log}/bounces.csv\narchive_dir = {log}/accounting/bounces\n"
                      "records = b, rb\n"),
             pattern=r"<acct-file .*fbl.csv> writes bounces or complaints, but no \[source\] of .* follows it",
             pmta_prefix="<acct-file " + log + "/fbl", where="pmta-only")

        # --- PowerMTA's record-fields syntax and quoted paths: no false alarm ---------------
        def clean(label, text, sources=None):
            """A PowerMTA configuration that must raise no problem."""
            name = re.sub(r"\W+", "-", label)
            cfg_path = e.write(f"clean-{name}/config", text)
            rc, out, err = e.check_config(e.conf(cfg_path, sources=sources))
            check(f"no false alarm: {label}: exit 0, no problem, every source matched",
                  rc == 0 and not problems(out) and
                  len([l for l in out.splitlines() if "matches <acct-file" in l]) == (2 if sources is None else 1),
                  out + err)

        clean("record-fields b/rb/f as `*,header_X-FBLId` (every default field and the header)",
              guide_blocks(log, bounces={"record-fields b ": "    record-fields b *,header_X-FBLId",
                                         "record-fields rb": "    record-fields rb *, header_X-FBLId"},
                           fbl={"record-fields f": "    record-fields f *,header_X-FBLId"}))
        clean("header names in any case (header_x-fblid), `header_*` for every header",
              guide_blocks(log, bounces={"record-fields b ": "    record-fields b *,header_x-fblid",
                                         "record-fields rb": "    record-fields rb *,header_*"}))
        clean("quoted paths: <acct-file \"...\"> and move-to \"...\"",
              guide_blocks(log, bounces={"<acct-file": f'<acct-file "{log}/bounces.csv">',
                                         "move-to": f'    move-to "{log}/accounting/bounces/"'}))
        clean("map-header-to-field into a field Oempro does not match by",
              guide_blocks(log, bounces={"world-readable": "    world-readable yes\n"
                                                          "    map-header-to-field X-Job jobId"}))
        # The guide's own example accounting files (all records, rotated in
        # place, delete-after without move-to) beside Octeth's: nothing follows
        # them and they write nothing of Oempro's types, so nothing to say.
        guide_example = ("<acct-file /var/log/pmta/acct.csv>\n"
                         "#    move-to /opt/myapp/pmta-acct   # configure as fit for your application\n"
                         "    move-interval 5m\n    max-size 50M\n    delete-after 8d\n</acct-file>\n\n"
                         "<acct-file /var/log/pmta/diag.csv>\n    move-interval 1d\n    delete-after never\n"
                         "    records t\n</acct-file>\n\n")
        clean("PowerMTA's guide's example <acct-file> blocks beside Octeth's", guide_example + guide_blocks(log))
        # A split configuration, as packaged installs keep it: config includes
        # config.d/*.conf, each file one concern.
        split = e.write("split/etc/pmta/config", "# /etc/pmta/config\n"
                        "# site-wide settings, then one file per concern\n"
                        f'include "{e.dir}/split/etc/pmta/config.d/*.conf"\n')
        e.write("split/etc/pmta/config.d/00-global.conf",
                "postmaster postmaster@example.com\nhost-name mta1.example.com\nspool /var/spool/pmta\n"
                "<source 0/0>\n    log-connections no\n</source>\n<source 127.0.0.1>\n"
                "    always-allow-relaying yes\n    process-x-virtual-mta yes\n</source>\n")
        e.write("split/etc/pmta/config.d/10-vmta.conf",
                "<virtual-mta mta1>\n    smtp-source-host 192.0.2.10 mta1.example.com\n</virtual-mta>\n"
                "<virtual-mta-pool pool1>\n    virtual-mta mta1\n</virtual-mta-pool>\n"
                "<domain *>\n    max-smtp-out 20\n    bounce-after 4d12h\n</domain>\n")
        e.write("split/etc/pmta/config.d/50-accounting.conf",
                "# Oempro's files\n" + guide_blocks(log, bounces={"<acct-file": f'<acct-file "{log}/bounces.csv">'})
                + "\n" + guide_example)
        rc, out, err = e.check_config(e.conf(split))
        check("split /etc/pmta/config + config.d/*.conf (quoted include glob): no problem, both sources matched, "
              "4 files read", rc == 0 and not problems(out) and "4 files, 4 <acct-file> blocks" in out and
              len([l for l in out.splitlines() if "matches <acct-file" in l]) == 2, out + err)

        # --- what changes what Oempro receives, each named with its line ---------------------
        case("record-fields b `*,!dsnDiag,header_X-FBLId`: dsnDiag left out",
             guide_blocks(log, bounces={"record-fields b ": "    record-fields b *,!dsnDiag,header_X-FBLId"}),
             pattern=r"record-fields b of .* lacks dsnDiag \(", pmta_prefix="record-fields b ")
        case("record-fields b `*` alone: header_X-FBLId is no default field",
             guide_blocks(log, bounces={"record-fields b ": "    record-fields b *"}),
             pattern=r"record-fields b of .* lacks header_X-FBLId \(", pmta_prefix="record-fields b ")
        case("record-fields rb `header_*,!header_X-FBLId`",
             guide_blocks(log, bounces={"record-fields rb": "    record-fields rb *,header_*,!header_x-FBLid"}),
             pattern=r"record-fields rb of .* lacks header_X-FBLId \(", pmta_prefix="record-fields rb")
        case("privacy-policy in the bounces block",
             guide_blocks(log, bounces={"world-readable": "    world-readable yes\n    privacy-policy hash-local"}),
             pattern=r"acct.conf:\d+: privacy-policy hash-local: <acct-file .*bounces.csv> holds recipients with their "
                     r"local part redacted or hashed, which Oempro cannot match .* for \[source bounces\]",
             pmta_prefix="privacy-policy")
        probs = case("privacy-policy at the top level: every file, each source named",
                     "privacy-policy redact\n" + guide_blocks(log), expect=2,
                     pattern=r"acct.conf:1: privacy-policy redact \(for every accounting file\): .*bounces.csv",
                     pmta_prefix="privacy-policy")
        check("privacy-policy at the top level: the second problem is the fbl source's",
              len(probs) == 2 and "fbl.csv" in probs[1] and "[source fbl]" in probs[1], "\n".join(probs))
        case("queue-filter in the bounces block",
             guide_blocks(log, bounces={"world-readable": "    world-readable yes\n    queue-filter gmail.com/*"}),
             pattern=r"queue-filter gmail.com/\*: <acct-file .*bounces.csv> leaves out the records of the queues .* "
                     r"Oempro then never receives", pmta_prefix="queue-filter")
        case("map-header-to-field over rcpt",
             guide_blocks(log, bounces={"world-readable": "    world-readable yes\n"
                                                         "    map-header-to-field X-Original-To rcpt"}),
             pattern=r"map-header-to-field X-Original-To rcpt: <acct-file .*bounces.csv> writes a header's value "
                     r"over rcpt, so Oempro gets that instead of the address", pmta_prefix="map-header-to-field")
        case("map-header-to-field over orig (fbl)",
             guide_blocks(log, fbl={"world-readable": "    world-readable yes\n"
                                                     "    map-header-to-field X-Envelope-From ORIG"}),
             pattern=r"writes a header's value over orig", pmta_prefix="map-header-to-field")
        case("move-interval without move-to (no archive_dir either)",
             guide_blocks(log, bounces={"move-to": None}), sources=(
                 f"[source bounces]\npath = {log}/bounces.csv\nrecords = b, rb\n\n[source fbl]\n"
                 f"path = {log}/fbl.csv\narchive_dir = {log}/accounting/fbl\nrecords = f\n"),
             pattern=r"move-interval 1h without move-to: PowerMTA ignores it and never moves the file aside, "
                     r"for \[source bounces\]", pmta_prefix="move-interval")
        case("delete-after beside move-to",
             guide_blocks(log, bounces={"move-to": f"    move-to {log}/accounting/bounces/\n    delete-after 8d"}),
             pattern=r"delete-after 8d beside move-to: PowerMTA applies delete-after only when move-to is not set, "
                     r"so nothing in .*accounting/bounces/ is ever deleted; let systemd-tmpfiles clean it instead "
                     r"\(\"e .*accounting/bounces/ - - - 8d\"", pmta_prefix="delete-after")

        # readability: without world-readable yes, the daemon's user must be
        # in the group owning the files. As root the daemon's user is
        # pmtatail; run as nobody, the check is for nobody.
        if os.geteuid() == 0:
            live = os.path.join(log, "bounces.csv")
            with open(live, "w") as f:
                f.write("type,timeLogged\r\n")
            os.chown(live, 0, 0)
            os.chmod(live, 0o640)
            case("no world-readable, the daemon's user not in the owning group",
                 guide_blocks(log, bounces={"world-readable": None}), user="nobody",
                 pattern=r"has no world-readable yes and user nobody is not in group root, which owns .*bounces.csv: "
                         r"\[source bounces\] .* cannot read it", pmta_prefix="<acct-file " + log + "/bounces")
            case("world-readable no, said at its line",
                 guide_blocks(log, bounces={"world-readable": "    world-readable no"}), user="nobody",
                 pattern=r"world-readable is off and user nobody", pmta_prefix="world-readable")
            os.chmod(live, 0o644)  # as PowerMTA makes it with world-readable yes
            name = "world-readable-yes-as-nobody"
            inner = e.write(f"case-{name}/config", guide_blocks(log))
            rc, out, err = e.check_config(e.conf(inner), user="nobody")
            check("world-readable yes: readable whatever the owner, no problem (as nobody)",
                  rc == 0 and not problems(out) and "readable by user nobody" in out, out + err)
            os.unlink(live)
        else:
            print("note: not root: the readability cases (run as nobody) are skipped")

        # --- pmtatail's own blocks raise nothing --------------------------------------------
        own = os.path.join(SRC, "pmta-config/acct-files.conf")
        example = open(os.path.join(SRC, "pmta-config/pmtatail.conf")).read()
        ex = e.write("example.conf", re.sub(r"^\[state\]\ndir = .*$", f"[state]\ndir = {e.state}", example,
                                            flags=re.M) + f"\n[pmta]\nconfig = {own}\n")
        rc, out, err = e.check_config(ex)
        cross = [p for p in problems(out) if "acct-file" in p]
        check("pmta-config/acct-files.conf against the example configuration: no mismatch", not cross
              and len([l for l in out.splitlines() if "matches <acct-file" in l]) == 2, out + err)
        gen = subprocess.run([BINARY, "-c", conf, "pmta-config"], capture_output=True, text=True, timeout=30)
        gen_path = e.write("generated/config", gen.stdout)
        rc, out, err = e.check_config(e.conf(gen_path))
        check("`pmtatail pmta-config` output, read back as PowerMTA's configuration: no problem",
              gen.returncode == 0 and rc == 0 and not problems(out), gen.stdout + out + err)

        # --- a PowerMTA configuration that cannot be read: a note -----------------------------
        rc, out, err = e.check_config(e.conf(e.path("no-such/config")))
        check("missing PowerMTA configuration: a note, exit 0",
              rc == 0 and not problems(out) and any("no PowerMTA configuration at" in n for n in notes(out)), out)
        if os.geteuid() == 0:
            secret = e.write("secret/config", guide_blocks(log), mode=0o600)
            rc, out, err = e.check_config(e.conf(secret), user="nobody")
            check("unreadable PowerMTA configuration (0600, as nobody): a note naming it, exit 0",
                  rc == 0 and not problems(out) and
                  any("cannot read PowerMTA's configuration" in n and secret in n and "Permission denied" in n
                      for n in notes(out)), out + err)
        bad = e.write("badinc/config", "include missing.conf\n" + guide_blocks(log))
        rc, out, err = e.check_config(e.conf(bad))
        check("an include that cannot be read: a note with file and line, the rest still checked",
              rc == 0 and any(f"{bad}:1: include " in n for n in notes(out)) and "matches <acct-file" in out, out)

        # --- hostile input ------------------------------------------------------------------------
        loop_a = e.write("loop/a", "include b\n" + guide_blocks(log))
        e.write("loop/b", "include a\n")
        rc, out, err = e.check_config(e.conf(loop_a))
        check("include loop: read once, a note, no problem", rc == 0 and not problems(out) and
              any("already read" in n for n in notes(out)), out + err)
        for i in range(12):
            e.write(f"deep/d{i}", f"include d{i + 1}\n")
        e.write("deep/d12", guide_blocks(log))
        rc, out, err = e.check_config(e.conf(e.path("deep/d0")))
        check("include nested 12 deep: a note about the depth, and the blocks past it missed (reported)",
              any("nested deeper than" in n for n in notes(out)) and rc == 1, out + err)
        long_line = "# " + "x" * 70000 + "\n"
        hostile = e.write("hostile/config", "<acct-file\n" + long_line + "\x01\x02 junk \xff\n" + "nul\x00byte\n" +
                          guide_blocks(log) + f"<acct-file {log}/never-closed.csv>\n    records b\n")
        rc, out, err = e.check_config(e.conf(hostile))
        check("hostile input: an overlong line and a broken heading noted with their lines, unclosed block noted",
              any(f"{hostile}:2: line longer than" in n for n in notes(out)) and
              any(f"{hostile}:1:" in n and "without '>'" in n for n in notes(out)) and
              any(f"{hostile}:4: line holds a NUL byte" in n for n in notes(out)) and
              any("is not closed" in n for n in notes(out)), out + err)
        check("hostile input: the guide's blocks among it still match",
              len([l for l in out.splitlines() if "matches <acct-file" in l]) == 2, out)
        many = e.write("many/config", "".join(f"<acct-file {log}/x{i}.csv>\n records d\n</acct-file>\n"
                                              for i in range(80)) + guide_blocks(log))
        rc, out, err = e.check_config(e.conf(many))
        check("more <acct-file> blocks than the cap: a note, no crash",
              any("more than 64 <acct-file> blocks" in n for n in notes(out)), out[-2000:] + err)

        # --- the key itself ---------------------------------------------------------------------
        rc, out, err = e.check_config(e.write("empty-key.conf", f"[source s]\npath = {log}/bounces.csv\n[output]\n"
                                                                f"file = {e.dir}/o\n[state]\ndir = {e.state}\n"
                                                                "[pmta]\nconfig =\n"))
        check("[pmta] config with an empty value: a problem naming the line", rc == 1 and
              re.search(r"empty-key.conf:8: config: empty value", out + err), out + err)
        rc, out, err = e.check_config(e.write("default-key.conf", f"[source s]\npath = {log}/bounces.csv\n[output]\n"
                                                                  f"file = {e.dir}/o\n[state]\ndir = {e.state}\n"))
        check("[pmta] config defaults to /etc/pmta/config", "[pmta]\nconfig = /etc/pmta/config" in out, out)
    finally:
        shutil.rmtree(e.dir, ignore_errors=True)
    print(f"{'FAILED' if failures else 'passed'}: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
