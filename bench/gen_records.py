#!/usr/bin/env python3
"""Generate a synthetic PowerMTA bounce accounting file for benchmarking.

The output is deterministic for a given (--records, --seed) pair and looks like
a real bounce file written by PowerMTA (see shared/design/powermta-accounting.md):

  * one header line first, CRLF record terminators everywhere;
  * rows are mostly `b` (synchronous bounce) and `rb` (remote bounce), with some
    `d` (delivered) rows that the daemon is expected to filter out;
  * `rb` rows leave empty the columns an `rb` record does not carry (union header);
  * timestamps in both the ISO form (`2024-01-05 13:00:07+0000`) and epoch seconds;
  * about 30% of rows have a dsnDiag that must be quoted (commas; some also with
    doubled quotes `""`; a few with CRLF inside the quotes);
  * a few percent of rows carry Latin-1 (not UTF-8) bytes in dsnDiag;
  * about 300 bytes per record on average (325 B with the default seed).

Speed matters (1M rows should take seconds): every field is picked from a small
pool built up front, per-row randomness comes from two 64-bit draws, and output is
written in large binary chunks.

Usage: python3 bench/gen_records.py --records N --seed S OUT.csv   (OUT may be -)
"""

import argparse
import random
import sys
import time

HEADER = (
    b"type,timeLogged,timeQueued,orig,rcpt,orcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,"
    b"bounceCat,srcMta,dlvSourceIp,vmta,jobId,header_x-sp-message-id"
)

CRLF = b"\r\n"

# Share of each record type, per mille.
TYPE_B_PERMILLE = 560
TYPE_RB_PERMILLE = 340  # the rest (100) are `d`

# Share of rows with ISO timestamps, per mille (the rest use epoch seconds).
ISO_PERMILLE = 500

# dsnDiag kinds on `b` / `rb` rows, per mille (`d` rows, 10%, are never quoted).
# comma + dquote + crlf + the quoted half of latin1 = ~32% of bounce rows, so ~30% of
# all rows carry a dsnDiag that must be quoted (29.6% measured with seed 1).
DIAG_KIND_PERMILLE = {
    "plain": 655,  # no quoting needed
    "comma": 200,  # quoted: holds commas
    "dquote": 80,  # quoted: holds doubled quotes ""
    "crlf": 15,  # quoted: holds CRLF (one record, several physical lines)
    "latin1": 50,  # Latin-1 (invalid UTF-8) bytes; some also hold commas
}

# --diag long-quoted: every bounce row's dsnDiag is quoted and carries doubled
# quotes, and is about twice as long (the remote's own words appended). This is the
# hard case for a CSV reader: every field byte goes through the quoted state.
LONG_QUOTED_KINDS = {"dquote": 985, "crlf": 15}
LONG_QUOTED_TAIL = (' -- remote server said: "message rejected by local policy, see '
                    '"https://postmaster.example.net/policy?code=5.7.1"" for the reasons; '
                    'do not retry, "unsubscribe" handling applies"')

FIRST = [
    "anna", "bob", "carla", "dmitri", "elena", "felix", "greta", "hugo", "ines", "jonas",
    "karin", "lars", "maria", "nils", "olga", "paul", "quinn", "rosa", "sven", "tanja",
    "ugo", "vera", "walter", "xenia", "yusuf", "zoe", "ahmed", "bea", "chen", "dana",
    "erik", "fatima", "gil", "hana", "ivan", "julia", "kofi", "lena", "mehmet", "noor",
]
LAST = [
    "smith", "mueller", "garcia", "rossi", "dubois", "novak", "kowalski", "jensen",
    "silva", "nguyen", "tanaka", "kim", "ivanova", "schmidt", "martin", "lopez", "berg",
    "costa", "horvat", "papadopoulos", "oconnor", "weber", "fischer", "meyer", "wagner",
]
RCPT_DOMAINS = [
    "example.net", "example.org", "example.com", "mail.example.net", "inbox.example.org",
    "gmail.example", "yahoo.example", "outlook.example", "t-online.example", "web.example",
    "gmx.example", "orange.example", "free.example", "libero.example", "seznam.example",
    "wp.example", "mailbox.example", "posteo.example", "proton.example", "icloud.example",
    "corp-example.com", "university.example.edu", "shop.example.co.uk", "bank.example.de",
]
SENDER_DOMAINS = [
    "news.example.com", "mail.example.org", "bnc.example.net", "em.example.com",
    "lists.example.org", "info.example.net",
]
MX_HOSTS = [
    ("mx1.example.net", "192.0.2.10"), ("mx2.example.net", "192.0.2.11"),
    ("mx.example.org", "198.51.100.7"), ("mta5.yahoo.example", "203.0.113.25"),
    ("mx.gmail.example", "203.0.113.26"), ("mx.outlook.example", "198.51.100.200"),
    ("mx00.t-online.example", "192.0.2.77"), ("mx-ha03.web.example", "198.51.100.43"),
    ("mail.corp-example.com", "203.0.113.99"), ("smtp-in.orange.example", "192.0.2.200"),
]
SRC_MTAS = [
    "mta1.example.com (203.0.113.1)", "mta2.example.com (203.0.113.2)",
    "mta3.example.com (203.0.113.3)", "mta4.example.com (203.0.113.4)",
]
SOURCE_IPS = ["203.0.113.%d" % i for i in range(1, 33)]
VMTAS = ["pool%02d" % i for i in range(1, 17)] + ["transactional", "warmup"]

# (bounceCat, dsnStatus, dsnDiag templates). In templates, {rcpt} is replaced with the
# recipient address; the text is the raw value (CSV quoting is done later). Each
# template is classified by what it holds (see diag_kind) and rows pick a kind first,
# so the share of quoted / Latin-1 values does not depend on how many templates
# each category has.
BOUNCES = [
    ("bad-mailbox", "5.1.1 (bad destination mailbox address)", [
        "smtp;550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table",
        "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "smtp;550 5.1.1 <{rcpt}>... User unknown",
        "smtp;550 Requested action not taken: mailbox unavailable",
        "550 5.1.1 <{rcpt}> recipient rejected",
        "smtp;550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown, please check the address",
        "smtp;550-5.1.1 The email account that you tried to reach does not exist.\r\n550-5.1.1 Please try double-checking the recipient's email address, or contact the recipient\r\n550 5.1.1 directly",
        "smtp;550 5.1.1 Mailbox \"{rcpt}\" does not exist, rejecting",
        "smtp;550 5.1.1 <{rcpt}>: Adresse de destination inconnue, bo\xeete aux lettres supprim\xe9e",
        "smtp;550 5.1.1 <{rcpt}>: Empf\xe4nger unbekannt",
    ]),
    ("inactive-mailbox", "5.2.1 (mailbox disabled, not accepting messages)", [
        "smtp;550 5.2.1 The email account that you tried to reach is disabled.",
        "smtp;554 delivery error: dd This user doesn't have a yahoo.example account ({rcpt}) [0] - mta1012.mail.example",
        "smtp;550 5.2.1 <{rcpt}>: account disabled, contact your administrator",
        "smtp;550 5.2.1 Mailbox \"{rcpt}\" is inactive, messages are not accepted",
        "smtp;550 5.2.1 Postfach gesperrt, Nachricht wird nicht zugestellt (\xfcberschritten)",
    ]),
    ("quota-issues", "5.2.2 (mailbox full)", [
        "smtp;552 5.2.2 <{rcpt}>: Recipient address rejected: Mailbox full",
        "smtp;452 4.2.2 The email account that you tried to reach is over quota.",
        "smtp;552 5.2.2 Quota exceeded (mailbox for user is full), try again later",
        "smtp;552-5.2.2 The email account that you tried to reach is over quota.\r\n552 5.2.2 Please direct the recipient to https://support.example/?p=full, thank you",
        "smtp;552 5.2.2 Mailbox \"{rcpt}\" full, 10240000 of 10240000 bytes used",
        "smtp;552 5.2.2 Bo\xeete pleine, quota d\xe9pass\xe9",
    ]),
    ("bad-domain", "5.1.2 (bad destination system: no such domain)", [
        "smtp;550 5.1.2 Host unknown (Name server: host not found)",
        "No such domain at this location",
        "smtp;550 5.1.2 <{rcpt}>: Recipient address rejected: Domain not found, check spelling",
    ]),
    ("policy-related", "5.7.1 (delivery not authorized, message refused)", [
        "smtp;550 5.7.1 Message rejected due to local policy",
        "smtp;554 5.7.1 Service unavailable; Client host [203.0.113.4] blocked using zen.spamhaus.example",
        "smtp;550 5.7.1 Unfortunately, messages from [203.0.113.4] weren't sent. Part of their network is on our block list (S3150).",
        "smtp;550 5.7.1 [IPTS04] Messages from 203.0.113.4 deferred due to \"unexpected volume or user complaints\"",
        "smtp;550 5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM.\r\n550 5.7.26 Authentication results: dmarc=fail, spf=pass, dkim=none",
        "smtp;550 5.7.1 Nachricht abgelehnt, Absender nicht vertrauensw\xfcrdig",
    ]),
    ("spam-related", "5.7.1 (delivery not authorized, message refused)", [
        "smtp;554 5.7.1 Message rejected as spam by Content Filtering.",
        "smtp;550 5.7.350 Remote server returned message detected as spam -> 554 5.7.1 Spam detected",
        "smtp;554 5.7.1 [P4] Message blocked due to spam content, score=9.3 required=5.0",
        "smtp;550 5.7.1 This message is likely unsolicited mail, it has been blocked. \"See https://support.example/?p=spam\"",
    ]),
    ("message-expired", "4.4.7 (delivery time expired)", [
        "smtp;421 4.4.2 Connection timed out",
        "No answer from host",
        "smtp;451 4.3.0 Temporary failure, please try again later, queue lifetime exceeded",
    ]),
    ("no-answer-from-host", "4.4.1 (no answer from host)", [
        "smtp;421 4.4.1 Connection refused by host",
        "smtp;421 4.4.1 No answer from host, connection attempt timed out after 300 seconds",
    ]),
    ("routing-errors", "5.4.4 (unable to route)", [
        "smtp;554 5.4.4 Unable to route: no MX records and no A record",
        "smtp;554 5.4.4 Unrouteable address, domain has null MX (RFC 7505)",
    ]),
    ("relaying-issues", "5.7.1 (delivery not authorized, message refused)", [
        "smtp;554 5.7.1 <{rcpt}>: Relay access denied",
        "smtp;550 5.7.1 Relaying denied, authenticate first",
    ]),
    ("other", "5.0.0 (undefined status)", [
        "smtp;550 Requested action not taken",
        "smtp;554 Transaction failed",
        "smtp;554 5.0.0 Service unavailable, \"please retry later\"",
        "smtp;550 Destinat\xe1rio desconhecido",
    ]),
]
# Relative weight of each bounce category (same order as BOUNCES).
BOUNCE_WEIGHTS = [40, 10, 12, 8, 10, 6, 5, 3, 2, 2, 2]

DELIVERED_DIAGS = [
    "smtp;250 2.0.0 OK 1704459607 x12si1234567qkd.123 - gsmtp",
    "smtp;250 2.0.0 Ok: queued as 4T5Jm12Xyz",
    "smtp;250 ok dirdel",
    "smtp;250 2.6.0 <{rcpt}> [InternalId=123456789] Queued mail for delivery",
]

RB_DSN_MTA = ["dns;mx1.example.net", "dns;mx.example.org", "dns;mail.corp-example.com"]


def needs_quote(value):
    return any(c in value for c in (b",", b'"', b"\r", b"\n"))


def quote(value):
    """CSV-encode one value (bytes) the way PowerMTA does (RFC 4180)."""
    if needs_quote(value):
        return b'"' + value.replace(b'"', b'""') + b'"'
    return value


def diag_kind(template):
    if "\r\n" in template:
        return "crlf"
    if '"' in template:
        return "dquote"
    if any(ord(c) > 127 for c in template):
        return "latin1"
    if "," in template:
        return "comma"
    return "plain"


def weighted_pool(rng, items, weights, size):
    """A list of `size` items in which each item appears in proportion to its weight."""
    total = sum(weights)
    pool = []
    for item, w in zip(items, weights):
        pool.extend([item] * max(1, round(size * w / total)))
    rng.shuffle(pool)
    return pool


class Pools:
    """Everything the per-row loop picks from, built once from the seed."""

    def __init__(self, rng, diag="mixed"):
        # Recipient local parts: first.last, firstlastNN, first_l.
        locals_ = []
        for first in FIRST:
            for last in LAST:
                locals_.append(("%s.%s" % (first, last)).encode())
                locals_.append(("%s%s%d" % (first, last, rng.randrange(10, 99))).encode())
                locals_.append(("%s_%s" % (first, last[0])).encode())
        rng.shuffle(locals_)
        self.locals = locals_
        self.rcpt_domains = [d.encode() for d in RCPT_DOMAINS]
        self.origs = [
            ("bnc-%s%d@%s" % (tag, rng.randrange(1, 99), d)).encode()
            for d in SENDER_DOMAINS
            for tag in ("a", "b", "news", "promo", "tx")
        ]
        self.mx = [("%s (%s)" % (h, ip)).encode() for h, ip in MX_HOSTS]
        self.src_mtas = [s.encode() for s in SRC_MTAS]
        self.source_ips = [s.encode() for s in SOURCE_IPS]
        self.vmtas = [v.encode() for v in VMTAS]
        self.jobs = [str(rng.randrange(100000, 999999)).encode() for _ in range(64)]
        self.rb_dsn_mta = [m.encode() for m in RB_DSN_MTA]

        # dsnDiag: split each template on {rcpt} into (prefix, suffix) of the
        # already CSV-encoded value, so a row only concatenates three pieces.
        def split(template):
            raw = template.encode("latin-1")
            if b"{rcpt}" not in raw:
                return (quote(raw), None)
            pre, post = raw.split(b"{rcpt}", 1)
            if needs_quote(raw):
                return (b'"' + pre.replace(b'"', b'""'), post.replace(b'"', b'""') + b'"')
            return (pre, post)

        # (bounceCat, dsnStatus, {kind: [split templates]}) per category.
        cats = []
        kind_weights = DIAG_KIND_PERMILLE if diag == "mixed" else LONG_QUOTED_KINDS
        for cat, status, templates in BOUNCES:
            by_kind = {}
            for t in templates:
                if diag != "mixed":
                    t = t + LONG_QUOTED_TAIL
                by_kind.setdefault(diag_kind(t), []).append(split(t))
            cats.append((cat.encode(), quote(status.encode()), by_kind))

        # A pool of ~1000 (bounceCat, dsnStatus, diag) entries: pick the category by
        # weight and the kind of diag by weight; a category without a template of
        # that kind hands the entry to one that has (kinds keep their share).
        cat_pool = weighted_pool(rng, list(range(len(cats))), BOUNCE_WEIGHTS, 1000)
        kind_names = list(kind_weights)
        kinds = weighted_pool(rng, kind_names, [kind_weights[k] for k in kind_names],
                              len(cat_pool))
        self.bounce = []
        for ci, kind in zip(cat_pool, kinds):
            if kind not in cats[ci][2]:
                ci = rng.choice([j for j, c in enumerate(cats) if kind in c[2]])
            cat, status, by_kind = cats[ci]
            self.bounce.append((cat, status, rng.choice(by_kind[kind])))
        self.delivered = [split(t) for t in DELIVERED_DIAGS]

        # Queue delays (seconds between timeQueued and timeLogged).
        self.delays = [rng.choice((1, 2, 3, 5, 8, 13, 30, 60, 300, 900, 3600, 14400, 172800))
                       for _ in range(256)]


def generate(out, records, seed, diag="mixed"):
    rng = random.Random(seed)
    p = Pools(rng, diag)
    locals_, nloc = p.locals, len(p.locals)
    doms, ndom = p.rcpt_domains, len(p.rcpt_domains)
    origs, norig = p.origs, len(p.origs)
    mxs, nmx = p.mx, len(p.mx)
    srcs = p.src_mtas  # 4 of them: indexed with 2 bits
    ips, nip = p.source_ips, len(p.source_ips)
    vmtas, nvmta = p.vmtas, len(p.vmtas)
    jobs = p.jobs  # 64 of them: indexed with 6 bits
    rbmta, nrbmta = p.rb_dsn_mta, len(p.rb_dsn_mta)
    bounce, nbounce = p.bounce, len(p.bounce)
    delivered, ndeliv = p.delivered, len(p.delivered)
    delays = p.delays
    getrandbits = rng.getrandbits

    # Timestamps: one day of traffic starting 2024-01-05 00:00:00 UTC; the
    # formatted ISO form is cached per second (the clock only moves forward).
    t0 = 1704412800
    span = 86400
    iso_cache = {}

    def iso(t):
        s = iso_cache.get(t)
        if s is None:
            s = time.strftime("%Y-%m-%d %H:%M:%S+0000", time.gmtime(t)).encode()
            if len(iso_cache) > 100000:
                iso_cache.clear()
            iso_cache[t] = s
        return s

    out.write(HEADER + CRLF)
    chunk = []
    append = chunk.append
    for i in range(records):
        # Two 64-bit draws per row; each field takes its own bit range.
        r = getrandbits(64)
        s = getrandbits(64)
        tl = t0 + (i * span) // records
        tq = tl - delays[r & 255]
        if ((r >> 8) & 1023) % 1000 < ISO_PERMILLE:
            tls, tqs = iso(tl), iso(tq)
        else:
            tls, tqs = b"%d" % tl, b"%d" % tq
        rcpt = locals_[((r >> 18) & 0xFFFF) % nloc] + b"@" + doms[((r >> 34) & 0xFF) % ndom]
        orig = origs[((r >> 42) & 0xFF) % norig]
        kind = ((r >> 50) & 1023) % 1000
        msgid = b"%010x%04x" % (s & 0xFFFFFFFFFF, i & 0xFFFF)
        mx = mxs[(s & 0xFF) % nmx]
        vmta = vmtas[((s >> 8) & 0xFF) % nvmta]
        job = jobs[(s >> 16) & 63]
        if kind < TYPE_B_PERMILLE + TYPE_RB_PERMILLE:
            cat, status, (pre, post) = bounce[((s >> 22) & 0xFFFF) % nbounce]
            diag = pre if post is None else pre + rcpt + post
            if kind < TYPE_B_PERMILLE:
                # b: PowerMTA's own SMTP session failed; it knows the MX it talked to.
                append(b",".join((
                    b"b", tls, tqs, orig, rcpt, b"", b"failed", status, diag, mx, cat,
                    srcs[(s >> 38) & 3], ips[((s >> 40) & 0xFF) % nip], vmta, job, msgid)))
            else:
                # rb: a DSN came back later: orcpt present, no source MTA / IP of ours.
                append(b",".join((
                    b"rb", tls, tqs, orig, rcpt, b"rfc822;" + rcpt, b"failed", status, diag,
                    rbmta[((s >> 48) & 0xFF) % nrbmta], cat, b"", b"", vmta, job, msgid)))
        else:
            pre, post = delivered[((s >> 22) & 0xFF) % ndeliv]
            diag = pre if post is None else pre + rcpt + post
            append(b",".join((
                b"d", tls, tqs, orig, rcpt, b"", b"relayed", b"2.0.0 (success)", diag, mx, b"",
                srcs[(s >> 38) & 3], ips[((s >> 40) & 0xFF) % nip], vmta, job, msgid)))
        if len(chunk) >= 8192:
            append(b"")
            out.write(CRLF.join(chunk))
            chunk.clear()
    if chunk:
        append(b"")
        out.write(CRLF.join(chunk))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000,
                    help="number of data records (header not counted), default 1000000")
    ap.add_argument("--seed", type=int, default=1, help="random seed, default 1")
    ap.add_argument("--diag", choices=("mixed", "long-quoted"), default="mixed",
                    help="mixed (default): ~30%% of dsnDiags quoted; long-quoted: all of "
                    "them, longer, with doubled quotes")
    ap.add_argument("out", help="output file, or - for stdout")
    args = ap.parse_args(argv)
    if args.records < 0:
        ap.error("--records must be >= 0")

    start = time.perf_counter()
    if args.out == "-":
        try:
            generate(sys.stdout.buffer, args.records, args.seed, args.diag)
            sys.stdout.buffer.flush()
        except BrokenPipeError:  # e.g. piped into head
            sys.stderr.close()
            return 0
        size = None
    else:
        with open(args.out, "wb", buffering=4 << 20) as f:
            generate(f, args.records, args.seed, args.diag)
            size = f.tell()
    elapsed = time.perf_counter() - start
    if size is not None:
        per = " (%.1f B/record)" % (size / args.records) if args.records else ""
        print("gen_records: %d records, %d bytes%s in %.2f s -> %s"
              % (args.records, size, per, elapsed, args.out), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
