/* classify_bench: the cost of bounce classification per record.
 *
 * Generates 600 Octeth-style patterns ("user unknown==>Hard", "550 5.1.1 no
 * such user==>Hard", "over quota==>Soft", ...) and N realistic
 * (dsnDiag, dsnStatus, bounceCat) triples (the templates of gen_records.py),
 * then times, best of ROUNDS:
 *   (a) a baseline that only touches the bytes (strlen of the three fields),
 *   (b) classify_bounce with no patterns (bounceCat only),
 *   (c) classify_bounce with the 600 patterns,
 * and prints ns/record, records/s, the share of the end-to-end budget
 * (~500,000 records/s, i.e. 2 µs a record, of which classification may take
 * 20%) and the classifier's memory. Like the other bench tools it reports,
 * it asserts nothing.
 *
 * Usage: classify_bench [N [ROUNDS]]   (defaults: 1000000 3) */
#include "classify.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NPATTERNS 600

static uint64_t rng = 0x2545F4914F6CDD1Du;

static uint32_t rnd(uint32_t n)
{
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        return (uint32_t)((rng * 0x2545F4914F6CDD1Du) >> 32) % n;
}

/* ---- Patterns --------------------------------------------------------- */

static const char *hard_phrases[] = {
    "user unknown",
    "unknown user",
    "no such user",
    "no such recipient",
    "recipient unknown",
    "mailbox unavailable",
    "mailbox not found",
    "mailbox does not exist",
    "recipient address rejected: user unknown",
    "invalid recipient",
    "account has been disabled",
    "account disabled",
    "does not exist",
    "no mailbox here",
    "user not found",
    "unknown recipient",
    "invalid mailbox",
    "bad destination mailbox",
    "destination address unknown",
    "host unknown",
    "domain not found",
    "no such domain",
    "unrouteable address",
    "recipient not found",
    "undeliverable address",
    "doesn't have a yahoo",
    "account expired",
    "not a valid mailbox",
    "invalid address",
    "address does not exist",
    "the email account that you tried to reach does not exist",
    "the email account that you tried to reach is disabled",
    "mailbox is disabled",
    "user account is unavailable",
    "recipient rejected",
    "unknown local part",
    "is inactive, messages are not accepted",
    "mailbox inactive",
    "deactivated mailbox",
    "5.1.1",
    "5.1.2",
    "5.1.10",
    "5.2.1",
    "addressee unknown",
    "domain has null mx",
    "no mx records",
    "relay access denied",
    "relaying denied",
    "empf\xe4nger unbekannt",
    "adresse de destination inconnue",
    "destinat\xe1rio desconhecido",
    "mailbox disabled, not accepting messages",
};
static const char *soft_phrases[] = {
    "mailbox full",
    "mailbox is full",
    "over quota",
    "quota exceeded",
    "exceeded storage allocation",
    "insufficient storage",
    "mailbox quota",
    "user is over quota",
    "disk quota exceeded",
    "try again later",
    "temporarily deferred",
    "temporary failure",
    "temporarily rejected",
    "too many connections",
    "connection timed out",
    "connection refused",
    "greylisted",
    "greylisting",
    "please try again",
    "resources temporarily unavailable",
    "rate limited",
    "too many messages",
    "message expired",
    "delivery time expired",
    "4.2.2",
    "4.4.1",
    "4.4.2",
    "4.4.7",
    "4.3.0",
    "server busy",
    "local error in processing",
    "out of storage space",
    "mailbox temporarily disabled",
    "the email account that you tried to reach is over quota",
    "unable to deliver at this time",
    "no answer from host",
    "queue lifetime exceeded",
    "bo\xeete pleine",
    "quota d\xe9pass\xe9",
    "5.2.2",
    "unable to route",
    "deferred due to user complaints",
    "service temporarily unavailable",
    "try again in a few minutes",
};
static const char *hard_prefixes[] = {
    "", "550 ", "550 5.1.1 ", "553 ", "554 ", "smtp;550 ", "550-5.1.1 ", "550 5.2.1 ",
};
static const char *soft_prefixes[] = {
    "", "452 ", "452 4.2.2 ", "552 ", "552 5.2.2 ", "421 ", "451 4.3.0 ", "450 ",
};

/* 600 distinct lines, hard and soft interleaved in a shuffled order, as a
 * hand-grown pattern file would be. Returns the file's text (malloc'd). */
static char *make_patterns(size_t *len)
{
        size_t nh = sizeof(hard_phrases) / sizeof(hard_phrases[0]);
        size_t ns = sizeof(soft_phrases) / sizeof(soft_phrases[0]);
        size_t np = sizeof(hard_prefixes) / sizeof(hard_prefixes[0]);
        size_t total = (nh + ns) * np;
        char(*lines)[128] = malloc(total * sizeof(*lines));
        size_t n = 0;
        for (size_t p = 0; p < np; p++) {
                for (size_t i = 0; i < nh; i++)
                        snprintf(lines[n++], sizeof(lines[0]), "%s%s==>Hard", hard_prefixes[p],
                                 hard_phrases[i]);
                for (size_t i = 0; i < ns; i++)
                        snprintf(lines[n++], sizeof(lines[0]), "%s%s==>%s", soft_prefixes[p],
                                 soft_phrases[i], i % 4 ? "Soft" : "soft");
        }
        /* Keep the bare phrases (the first block), shuffle the decorated ones. */
        size_t bare = nh + ns;
        for (size_t i = total - 1; i > bare; i--) {
                size_t j = bare + rnd((uint32_t)(i - bare + 1));
                char tmp[128];
                memcpy(tmp, lines[i], sizeof(tmp));
                memcpy(lines[i], lines[j], sizeof(tmp));
                memcpy(lines[j], tmp, sizeof(tmp));
        }
        char *text = malloc(NPATTERNS * 140 + 64);
        size_t t = (size_t)sprintf(text, "# Octeth bounce patterns (generated)\n\n");
        for (size_t i = 0; i < NPATTERNS && i < total; i++)
                t += (size_t)sprintf(text + t, "%s\n", lines[i]);
        free(lines);
        *len = t;
        return text;
}

/* ---- Records ---------------------------------------------------------- */

struct bounce_kind {
        const char *cat, *status;
        const char *diags[12]; /* "{}" is the recipient */
        unsigned weight;
};

static const struct bounce_kind kinds[] = {
    {"bad-mailbox",
     "5.1.1 (bad destination mailbox address)",
     {"smtp;550 5.1.1 <{}>: Recipient address rejected: User unknown in virtual mailbox table",
      "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
      "smtp;550 5.1.1 <{}>... User unknown",
      "smtp;550 Requested action not taken: mailbox unavailable",
      "550 5.1.1 <{}> recipient rejected",
      "smtp;550 5.1.1 <{}>: Recipient address rejected: User unknown, please check the address",
      "smtp;550-5.1.1 The email account that you tried to reach does not exist.\r\n550-5.1.1 "
      "Please try double-checking the recipient's email address, or contact the recipient\r\n"
      "550 5.1.1 directly",
      "smtp;550 5.1.1 Mailbox \"{}\" does not exist, rejecting",
      "smtp;550 5.1.1 <{}>: Adresse de destination inconnue, bo\xeete aux lettres "
      "supprim\xe9"
      "e",
      "smtp;550 5.1.1 <{}>: Empf\xe4nger unbekannt",
      "smtp;550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). "
      "[AM4EUR03FT020.eop-EUR03.prod.protection.outlook.example]"},
     40},
    {"inactive-mailbox",
     "5.2.1 (mailbox disabled, not accepting messages)",
     {"smtp;550 5.2.1 The email account that you tried to reach is disabled.",
      "smtp;554 delivery error: dd This user doesn't have a yahoo.example account ({}) [0] - "
      "mta1012.mail.example",
      "smtp;550 5.2.1 <{}>: account disabled, contact your administrator",
      "smtp;550 5.2.1 Mailbox \"{}\" is inactive, messages are not accepted",
      "smtp;550 5.2.1 Postfach gesperrt, Nachricht wird nicht zugestellt (\xfc"
      "berschritten)"},
     10},
    {"quota-issues",
     "5.2.2 (mailbox full)",
     {"smtp;552 5.2.2 <{}>: Recipient address rejected: Mailbox full",
      "smtp;452 4.2.2 The email account that you tried to reach is over quota.",
      "smtp;552 5.2.2 Quota exceeded (mailbox for user is full), try again later",
      "smtp;552 5.2.2 Mailbox \"{}\" full, 10240000 of 10240000 bytes used",
      "smtp;552 5.2.2 Bo\xeete pleine, quota d\xe9pass\xe9",
      "smtp;452-4.2.2 The recipient's inbox is out of storage space. Please direct the\r\n"
      "452-4.2.2 recipient to\r\n452 4.2.2  https://support.example/mail/?p=OverQuotaTemp "
      "a640c23a62f3a-a9a6b2c1e1esi123456766b.200 - gsmtp"},
     12},
    {"bad-domain",
     "5.1.2 (bad destination system: no such domain)",
     {"smtp;550 5.1.2 Host unknown (Name server: host not found)",
      "No such domain at this location",
      "smtp;550 5.1.2 <{}>: Recipient address rejected: Domain not found, check spelling"},
     8},
    {"policy-related",
     "5.7.1 (delivery not authorized, message refused)",
     {"smtp;550 5.7.1 Message rejected due to local policy",
      "smtp;554 5.7.1 Service unavailable; Client host [203.0.113.4] blocked using "
      "zen.spamhaus.example",
      "smtp;550 5.7.1 Unfortunately, messages from [203.0.113.4] weren't sent. Part of their "
      "network is on our block list (S3150).",
      "smtp;550 5.7.1 [IPTS04] Messages from 203.0.113.4 deferred due to \"unexpected volume "
      "or user complaints\"",
      "smtp;550 5.7.1 Nachricht abgelehnt, Absender nicht vertrauensw\xfc"
      "rdig",
      "smtp;421 4.7.0 [TSS04] Messages from 203.0.113.4 temporarily deferred due to "
      "unexpected volume or user complaints - 4.16.55.1; see "
      "https://postmaster.yahooinc.example/error-codes",
      "smtp;550-5.7.1 [203.0.113.4] Our system has detected that this message is likely "
      "unsolicited mail. To reduce the amount of spam sent to Gmail, this message has been "
      "blocked. 550 5.7.1 https://support.example/mail/?p=UnsolicitedMessageError "
      "d2e1a72fcca58-71e5b1c3f5dsi1234567b3a.123 - gsmtp"},
     10},
    {"spam-related",
     "5.7.1 (delivery not authorized, message refused)",
     {"smtp;554 5.7.1 Message rejected as spam by Content Filtering.",
      "smtp;550 5.7.350 Remote server returned message detected as spam -> 554 5.7.1 Spam "
      "detected",
      "smtp;554 5.7.1 [P4] Message blocked due to spam content, score=9.3 required=5.0"},
     6},
    {"message-expired",
     "4.4.7 (delivery time expired)",
     {"smtp;421 4.4.2 Connection timed out", "No answer from host",
      "smtp;451 4.3.0 Temporary failure, please try again later, queue lifetime exceeded"},
     5},
    {"no-answer-from-host",
     "4.4.1 (no answer from host)",
     {"smtp;421 4.4.1 Connection refused by host",
      "smtp;421 4.4.1 No answer from host, connection attempt timed out after 300 seconds"},
     3},
    {"routing-errors",
     "5.4.4 (unable to route)",
     {"smtp;554 5.4.4 Unable to route: no MX records and no A record",
      "smtp;554 5.4.4 Unrouteable address, domain has null MX (RFC 7505)"},
     2},
    {"relaying-issues",
     "5.7.1 (delivery not authorized, message refused)",
     {"smtp;554 5.7.1 <{}>: Relay access denied",
      "smtp;550 5.7.1 Relaying denied, authenticate first"},
     2},
    {"other",
     "5.0.0 (undefined status)",
     {"smtp;550 Requested action not taken", "smtp;554 Transaction failed",
      "smtp;554 5.0.0 Service unavailable, \"please retry later\"",
      "smtp;550 Destinat\xe1rio desconhecido"},
     2},
};

static const char *first_names[] = {"anna",  "bob",  "carla", "dmitri", "elena", "felix",
                                    "greta", "hugo", "ines",  "jonas",  "karin", "lars"};
static const char *last_names[] = {"smith", "mueller",  "garcia", "rossi", "dubois",
                                   "novak", "kowalski", "jensen", "silva", "nguyen"};
static const char *domains[] = {"example.net",     "gmail.example",    "yahoo.example",
                                "outlook.example", "t-online.example", "web.example",
                                "gmx.example",     "orange.example",   "corp-example.com"};

struct rec {
        const char *diag, *status, *cat;
        size_t diag_len, status_len, cat_len;
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static struct rec *make_records(size_t n, char **arena_out, size_t *bytes)
{
        unsigned wsum = 0;
        for (size_t k = 0; k < NELEM(kinds); k++)
                wsum += kinds[k].weight;
        struct rec *r = malloc(n * sizeof(*r));
        size_t cap = n * 320, used = 0;
        char *arena = malloc(cap);
        *bytes = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned w = rnd(wsum);
                size_t k = 0;
                while (w >= kinds[k].weight)
                        w -= kinds[k++].weight;
                size_t nd = 0;
                while (nd < NELEM(kinds[k].diags) && kinds[k].diags[nd])
                        nd++;
                const char *tpl = kinds[k].diags[rnd((uint32_t)nd)];
                char rcpt[96];
                snprintf(rcpt, sizeof(rcpt), "%s.%s%u@%s", first_names[rnd(NELEM(first_names))],
                         last_names[rnd(NELEM(last_names))], rnd(100),
                         domains[rnd(NELEM(domains))]);
                const char *hole = strstr(tpl, "{}");
                char *d = arena + used;
                int len = hole ? sprintf(d, "%.*s%s%s", (int)(hole - tpl), tpl, rcpt, hole + 2)
                               : sprintf(d, "%s", tpl);
                r[i].diag = d;
                r[i].diag_len = (size_t)len;
                used += (size_t)len + 1;
                r[i].status = kinds[k].status;
                r[i].status_len = strlen(kinds[k].status);
                r[i].cat = kinds[k].cat;
                r[i].cat_len = strlen(kinds[k].cat);
                *bytes += r[i].diag_len + r[i].status_len;
        }
        *arena_out = arena;
        return r;
}

/* ---- Timing ----------------------------------------------------------- */

static double now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What a caller must do anyway: know the fields' lengths, touch their bytes. */
static size_t run_baseline(const struct rec *r, size_t n)
{
        size_t sum = 0;
        for (size_t i = 0; i < n; i++)
                sum += strlen(r[i].diag) + strlen(r[i].status) + strlen(r[i].cat);
        return sum;
}

static size_t run_classify(const struct classifier *c, const struct rec *r, size_t n,
                           size_t counts[3], size_t *by_pattern)
{
        size_t sum = 0;
        counts[0] = counts[1] = counts[2] = 0;
        *by_pattern = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned line;
                enum bounce_class k =
                    classify_bounce(c, r[i].diag, r[i].diag_len, r[i].status, r[i].status_len,
                                    r[i].cat, r[i].cat_len, &line);
                counts[k]++;
                *by_pattern += line != 0;
                sum += line;
        }
        return sum;
}

static void report(const char *what, double secs, size_t n, size_t bytes)
{
        double ns = secs * 1e9 / (double)n;
        /* 500,000 records/s end to end = 2000 ns a record; 20% of it is 400 ns. */
        printf("%-38s %7.1f ns/record %5.2f ns/byte %11.0f records/s %5.1f%% of 2 us\n", what, ns,
               secs * 1e9 / (double)bytes, (double)n / secs, ns / 2000.0 * 100.0);
}

int main(int argc, char **argv)
{
        size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
        int rounds = argc > 2 ? atoi(argv[2]) : 3;
        if (n == 0 || rounds < 1) {
                fprintf(stderr, "usage: classify_bench [N [ROUNDS]]\n");
                return 2;
        }
        size_t plen;
        char *ptext = make_patterns(&plen);
        char err[256];
        struct classifier *none = NULL, *full = NULL;
        double t0 = now();
        if (classifier_load_mem(&full, "generated", ptext, plen, err, sizeof(err)) != 0 ||
            classifier_load_mem(&none, "empty", "", 0, err, sizeof(err)) != 0) {
                fprintf(stderr, "classify_bench: %s\n", err);
                return 1;
        }
        double build = now() - t0;
        char *arena;
        size_t bytes;
        struct rec *recs = make_records(n, &arena, &bytes);

        printf("records: %zu, dsnDiag+dsnStatus %.1f bytes on average; rounds: %d (best kept)\n", n,
               (double)bytes / (double)n, rounds);
        printf("patterns: %zu (%zu bytes of file), classifier memory %zu bytes (%.2f MiB), "
               "built in %.2f ms\n",
               classifier_npatterns(full), plen, classifier_memory(full),
               (double)classifier_memory(full) / 1048576.0, build * 1e3);

        volatile size_t sink = 0;
        double best[3] = {1e99, 1e99, 1e99};
        size_t counts[2][3], by_pattern[2];
        for (int round = 0; round < rounds; round++) {
                double t = now();
                sink += run_baseline(recs, n);
                double d = now() - t;
                best[0] = d < best[0] ? d : best[0];
                t = now();
                sink += run_classify(none, recs, n, counts[0], &by_pattern[0]);
                d = now() - t;
                best[1] = d < best[1] ? d : best[1];
                t = now();
                sink += run_classify(full, recs, n, counts[1], &by_pattern[1]);
                d = now() - t;
                best[2] = d < best[2] ? d : best[2];
        }
        report("(a) baseline (strlen, bytes touched)", best[0], n, bytes);
        report("(b) classify, 0 patterns (bounceCat)", best[1], n, bytes);
        report("(c) classify, 600 patterns", best[2], n, bytes);
        for (int i = 0; i < 2; i++)
                printf("%s: hard %zu, soft %zu, none %zu; decided by a pattern %zu\n",
                       i ? "(c)" : "(b)", counts[i][CLASS_HARD], counts[i][CLASS_SOFT],
                       counts[i][CLASS_NONE], by_pattern[i]);
        printf("CLASSIFY_BENCH n=%zu avg_bytes=%.1f baseline_ns=%.1f cat_only_ns=%.1f "
               "patterns_ns=%.1f patterns=%zu memory_bytes=%zu\n",
               n, (double)bytes / (double)n, best[0] * 1e9 / (double)n, best[1] * 1e9 / (double)n,
               best[2] * 1e9 / (double)n, classifier_npatterns(full), classifier_memory(full));
        (void)sink;
        classifier_free(full);
        classifier_free(none);
        free(recs);
        free(arena);
        free(ptext);
        return 0;
}
