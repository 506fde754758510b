/* tailer/archive.h: which names are archives of a source, in which order
 * they are read, and the content identity. Tables of names as PowerMTA,
 * logrotate and operators write them, and orderings that a wrong rule (HHMM,
 * mtime first, lexical order) would get wrong. */
#include "archive.h"
#include "identity.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

TEST_MAIN_BEGIN

struct name_case {
        const char *stem; /* NULL: any stem */
        const char *name;
        enum archive_kind kind;
        bool gz;
        size_t stem_len;
        int y, m, d; /* 0: no date */
        int64_t seq;
};

static const struct name_case names[] = {
    /* PowerMTA's move-to names, NNNN a sequence */
    {"bounces", "bounces-2024-01-05-1300.csv", ARCHIVE_PMTA, false, 7, 2024, 1, 5, 1300},
    {"bounces", "bounces-2024-01-05-0060.csv", ARCHIVE_PMTA, false, 7, 2024, 1, 5, 60},
    {"bounces", "bounces-2024-01-05-0099.csv.gz", ARCHIVE_PMTA, true, 7, 2024, 1, 5, 99},
    {"bounces", "bounces-2024-02-29-0001.csv", ARCHIVE_PMTA, false, 7, 2024, 2, 29, 1},
    {"bounces", "bounces-2023-02-29-0001.csv", ARCHIVE_NONE, false, 0, 0, 0, 0, 0},
    {"bounces", "bounces-2024-13-01-0001.csv", ARCHIVE_NONE, false, 0, 0, 0, 0, 0},
    {"bounces", "bounces-2024-01-05-130.csv", ARCHIVE_NONE, false, 0, 0, 0, 0, 0},
    {"bounces", "bounces-2024-01-05-13x0.csv", ARCHIVE_NONE, false, 0, 0, 0, 0, 0},
    {"bounces", "bounces-2024-01-05-1300.txt", ARCHIVE_NONE, false, 0, 0, 0, 0, 0},
    {"bounces", "bounces-2024-01-05-12345.csv", ARCHIVE_PMTA, false, 7, 2024, 1, 5, 12345},
    /* a sibling source's live file and archives are not ours */
    {"acct", "acct-bd.csv", ARCHIVE_NONE, false, 0, 0, 0, 0, 0},
    {"acct", "acct-bd-2024-01-05-0001.csv", ARCHIVE_NONE, false, 0, 0, 0, 0, 0},
    {"acct", "acct.csv", ARCHIVE_LIVE, false, 4, 0, 0, 0, 0},
    {"acct", "acct.csv.gz", ARCHIVE_LIVE, true, 4, 0, 0, 0, 0},
    {"acct-bd", "acct-bd.csv", ARCHIVE_LIVE, false, 7, 0, 0, 0, 0},
    {"acct-bd", "acct-bd-2024-01-05-0001.csv", ARCHIVE_PMTA, false, 7, 2024, 1, 5, 1},
    {"bounces", "bounces.csv.old", ARCHIVE_NONE, false, 0, 0, 0, 0, 0},
    {"bounces", "bounces.csv.tmp", ARCHIVE_NONE, false, 0, 0, 0, 0, 0},
    {"bounces", "bouncesX.csv", ARCHIVE_NONE, false, 0, 0, 0, 0, 0},
    {"bounces", "bounces", ARCHIVE_NONE, false, 0, 0, 0, 0, 0},
    {"bounces", ".gz", ARCHIVE_NONE, false, 0, 0, 0, 0, 0},
    /* logrotate */
    {"bounces", "bounces.csv.1", ARCHIVE_NUMBERED, false, 7, 0, 0, 0, 1},
    {"bounces", "bounces.csv.12.gz", ARCHIVE_NUMBERED, true, 7, 0, 0, 0, 12},
    {"bounces", "bounces.csv.", ARCHIVE_NONE, false, 0, 0, 0, 0, 0},
    {"bounces", "bounces.csv-20261207", ARCHIVE_DATED, false, 7, 2026, 12, 7, 0},
    {"bounces", "bounces.csv-20261207.gz", ARCHIVE_DATED, true, 7, 2026, 12, 7, 0},
    {"bounces", "bounces.csv-2026-12-07", ARCHIVE_DATED, false, 7, 2026, 12, 7, 0},
    {"bounces", "bounces.csv-2026120713", ARCHIVE_DATED, false, 7, 2026, 12, 7, 13},
    {"bounces", "bounces.csv-20261207-1765065600", ARCHIVE_DATED, false, 7, 2026, 12, 7,
     1765065600},
    {"bounces", "bounces.csv-20261207-", ARCHIVE_NONE, false, 0, 0, 0, 0, 0},
    {"bounces", "bounces.csv-yesterday", ARCHIVE_NONE, false, 0, 0, 0, 0, 0},
    {"bounces", "bounces.csv-20261232", ARCHIVE_NONE, false, 0, 0, 0, 0, 0},
    /* any stem: what replay and report take from a directory */
    {NULL, "bounces-2024-01-05-1300.csv", ARCHIVE_PMTA, false, 7, 2024, 1, 5, 1300},
    {NULL, "acct-bd-2024-01-05-0001.csv.gz", ARCHIVE_PMTA, true, 7, 2024, 1, 5, 1},
    {NULL, "acct-bd.csv", ARCHIVE_LIVE, false, 7, 0, 0, 0, 0},
    {NULL, "bounces.csv.2.gz", ARCHIVE_NUMBERED, true, 7, 0, 0, 0, 2},
    {NULL, "my.csv.files.csv.3", ARCHIVE_NUMBERED, false, 12, 0, 0, 0, 3},
    {NULL, "bounces.csv-20261207.gz", ARCHIVE_DATED, true, 7, 2026, 12, 7, 0},
    {NULL, "bounces-2024-01-05-1300-1.csv", ARCHIVE_LIVE, false, 25, 0, 0, 0, 0},
    {NULL, "manual.csv.gz", ARCHIVE_LIVE, true, 6, 0, 0, 0, 0},
    {NULL, "README.txt", ARCHIVE_NONE, false, 0, 0, 0, 0, 0},
    {NULL, "bounces.csv.tmp", ARCHIVE_NONE, false, 0, 0, 0, 0, 0},
    {NULL, "bounces.csv.gz.1", ARCHIVE_NONE, false, 0, 0, 0, 0, 0},
    {NULL, ".csv", ARCHIVE_NONE, false, 0, 0, 0, 0, 0},
    {NULL, "-2024-01-05-1300.csv", ARCHIVE_LIVE, false, 16, 0, 0, 0, 0},
};

static void test_names(void)
{
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
                const struct name_case *c = &names[i];
                struct archive_name a;
                enum archive_kind k = archive_parse(c->stem, c->name, &a);
                int64_t day = c->y ? archive_days(c->y, c->m, c->d) : ARCHIVE_NO_DAY;
                bool ok = k == c->kind && a.kind == k &&
                          (k == ARCHIVE_NONE || (a.gz == c->gz && a.stem_len == c->stem_len &&
                                                 a.day == day && a.seq == c->seq));
                if (!ok)
                        fprintf(stderr,
                                "stem=%s name=%s: kind %d gz %d stem_len %zu day %lld seq %lld\n",
                                c->stem ? c->stem : "(any)", c->name, (int)k, a.gz, a.stem_len,
                                (long long)a.day, (long long)a.seq);
                CHECK(ok);
                bool rotated = k == ARCHIVE_PMTA || k == ARCHIVE_NUMBERED || k == ARCHIVE_DATED;
                if (c->stem)
                        CHECK_EQ_INT(archive_is_rotated(c->stem, c->name), rotated);
        }
}

static void test_days(void)
{
        CHECK_EQ_INT(archive_days(1970, 1, 1), 0);
        CHECK_EQ_INT(archive_days(2000, 3, 1), 11017);
        CHECK_EQ_INT(archive_days(2024, 1, 5), 19727);
        CHECK_EQ_INT(archive_days(2100, 2, 29), ARCHIVE_NO_DAY);
        CHECK_EQ_INT(archive_days(2000, 2, 29), 11016);
        CHECK_EQ_INT(archive_days(2024, 4, 31), ARCHIVE_NO_DAY);
}

/* Names (and mtimes, in days and seconds) given newest first, or shuffled:
 * sorted, they must come out in `want` order. */
struct order_case {
        const char *label;
        const char *stem;
        const char *names[8];
        int64_t mtime_s[8]; /* 0: 1e9 */
        const char *want[8];
};

#define DAY (24 * 3600)
static const struct order_case orders[] = {
    {"sequence, not HHMM",
     "bounces",
     {"bounces-2024-01-05-0100.csv", "bounces-2024-01-05-0060.csv", "bounces-2024-01-05-0099.csv",
      "bounces-2024-01-05-0058.csv", "bounces-2024-01-05-0101.csv", "bounces-2024-01-05-0059.csv"},
     {0},
     {"bounces-2024-01-05-0058.csv", "bounces-2024-01-05-0059.csv", "bounces-2024-01-05-0060.csv",
      "bounces-2024-01-05-0099.csv", "bounces-2024-01-05-0100.csv", "bounces-2024-01-05-0101.csv"}},
    {"the date first, mtimes disagreeing",
     "bounces",
     {"bounces-2024-01-06-0001.csv.gz", "bounces-2024-01-05-0002.csv",
      "bounces-2023-12-31-0900.csv"},
     {3 * DAY, 1 * DAY, 2 * DAY},
     {"bounces-2023-12-31-0900.csv", "bounces-2024-01-05-0002.csv",
      "bounces-2024-01-06-0001.csv.gz"}},
    {"logrotate numbered: larger N older, then the live file",
     "bounces",
     {"bounces.csv", "bounces.csv.1", "bounces.csv.10.gz", "bounces.csv.2.gz", "bounces.csv.9"},
     {0},
     {"bounces.csv.10.gz", "bounces.csv.9", "bounces.csv.2.gz", "bounces.csv.1", "bounces.csv"}},
    {"logrotate dateext, then the live file",
     "bounces",
     {"bounces.csv", "bounces.csv-20261207", "bounces.csv-20261205.gz", "bounces.csv-20261206.gz"},
     /* the live file written since; the archives' mtimes are not looked at */
     {20795LL * DAY + 60, 20000LL * DAY, 20900LL * DAY, 20001LL * DAY},
     {"bounces.csv-20261205.gz", "bounces.csv-20261206.gz", "bounces.csv-20261207", "bounces.csv"}},
    {"undated names by mtime day, after that day's archives",
     NULL,
     {"manual.csv.gz", "bounces-2024-01-05-1000.csv", "aaa-export.csv",
      "fbl-2024-01-05-0930.csv.gz"},
     {19728LL * DAY + 60, 19727LL * DAY + 7200, 19726LL * DAY + 36000, 19727LL * DAY + 3600},
     {"aaa-export.csv", "fbl-2024-01-05-0930.csv.gz", "bounces-2024-01-05-1000.csv",
      "manual.csv.gz"}},
    {"mtime breaks a tie, then the name",
     NULL,
     {"b.csv", "a.csv", "c.csv"},
     {100, 100, 50},
     {"c.csv", "a.csv", "b.csv"}},
};

static int cmp_keys(const void *a, const void *b)
{
        return archive_cmp(a, b);
}

static void test_order(void)
{
        for (size_t i = 0; i < sizeof orders / sizeof orders[0]; i++) {
                const struct order_case *c = &orders[i];
                struct archive_key keys[8];
                size_t n = 0;
                for (; n < 8 && c->names[n]; n++) {
                        struct archive_name a;
                        archive_parse(c->stem, c->names[n], &a);
                        int64_t mt = c->mtime_s[n] ? c->mtime_s[n] : 1000000000;
                        keys[n] = archive_key_of(&a, mt * 1000000000, mt / DAY, c->names[n]);
                }
                qsort(keys, n, sizeof keys[0], cmp_keys);
                bool ok = true;
                for (size_t j = 0; j < n; j++)
                        ok &= strcmp(keys[j].name, c->want[j]) == 0;
                if (!ok) {
                        fprintf(stderr, "%s: got", c->label);
                        for (size_t j = 0; j < n; j++)
                                fprintf(stderr, " %s", keys[j].name);
                        fputc('\n', stderr);
                }
                CHECK(ok);
                /* a total order: each pair compares the other way round */
                for (size_t j = 0; j < n; j++) {
                        for (size_t k = 0; k < n; k++) {
                                int x = archive_cmp(&keys[j], &keys[k]);
                                int y = archive_cmp(&keys[k], &keys[j]);
                                CHECK((x < 0) == (y > 0) && (x == 0) == (j == k));
                        }
                }
        }
}

static void test_identity(void)
{
        char a[2000], b[2000];
        for (size_t i = 0; i < sizeof a; i++)
                a[i] = b[i] = (char)('a' + i % 26);
        a[50] = b[50] = '\n';
        b[1500] = '!'; /* past the fingerprinted bytes */
        struct archive_id x = archive_id_of(a, sizeof a), y = archive_id_of(b, sizeof b);
        CHECK(x.fp == y.fp && x.fp_len == IDENTITY_FP_MAX && y.fp_len == IDENTITY_FP_MAX);
        b[10] = '!';
        y = archive_id_of(b, sizeof b);
        CHECK(x.fp != y.fp);
        struct archive_id s = archive_id_of(a, 100), t = archive_id_of(a, 101);
        CHECK(s.fp_len == 100 && t.fp_len == 101 && s.fp != t.fp);
        /* a header line longer than IDENTITY_FP_MAX: the identity reaches
         * ARCHIVE_ID_PAST bytes into the records, so files differing there
         * are two archives */
        static char h1[4000], h2[4000];
        memset(h1, 'h', sizeof h1);
        h1[1999] = '\n';
        memcpy(h2, h1, sizeof h2);
        h2[2000 + 100] = '!';
        CHECK_EQ_INT(archive_id_len(h1, 1024, false), ARCHIVE_ID_MAX);
        CHECK_EQ_INT(archive_id_len(h1, sizeof h1, false), 2000 + ARCHIVE_ID_PAST);
        CHECK_EQ_INT(archive_id_len(h1, 1024, true), 1024);
        CHECK_EQ_INT(archive_id_len(h1, 500, false), ARCHIVE_ID_MAX);
        x = archive_id_of(h1, sizeof h1);
        y = archive_id_of(h2, sizeof h2);
        CHECK(x.fp_len == 2000 + ARCHIVE_ID_PAST && x.fp != y.fp);
        /* a header shorter than that: the daemon's own fingerprint */
        h1[99] = '\n';
        CHECK_EQ_INT(archive_id_len(h1, sizeof h1, false), IDENTITY_FP_MAX);
}

int main(void)
{
        RUN(test_names);
        RUN(test_days);
        RUN(test_order);
        RUN(test_identity);
        TEST_MAIN_END;
}
