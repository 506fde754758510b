/* Bounce classification: the pattern file's syntax and errors, the matching
 * rules (case, fields, longest, ties, nesting, non-ASCII), the bounceCat
 * fallback, and a cross-check against a naive strcasestr reference.
 *
 * The meson build runs this twice: once as built, and once with the dense
 * rows limited to the root, so that the sparse-state path of the automaton is
 * checked by the same assertions. */
#include "classify.h"
#include "test.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TEST_MAIN_BEGIN

static struct classifier *load(const char *text)
{
        struct classifier *c = NULL;
        char err[256] = "";
        int rc = classifier_load_mem(&c, "t.txt", text, strlen(text), err, sizeof(err));
        CHECK_EQ_INT(rc, 0);
        if (rc != 0)
                fprintf(stderr, "  load failed: %s\n", err);
        CHECK(c != NULL);
        return c;
}

static enum bounce_class cl(const struct classifier *c, const char *diag, const char *status,
                            const char *cat, unsigned *line)
{
        return classify_bounce(c, diag, diag ? strlen(diag) : 0, status,
                               status ? strlen(status) : 0, cat, cat ? strlen(cat) : 0, line);
}

/* Expect the class and the deciding line. */
#define EXPECT(c, diag, status, cat, klass, ln)                                                    \
        do {                                                                                       \
                unsigned line_ = 99999;                                                            \
                CHECK_EQ_INT(cl((c), (diag), (status), (cat), &line_), (klass));                   \
                CHECK_EQ_INT(line_, (ln));                                                         \
        } while (0)

static void expect_error_len(const char *text, size_t len, const char *msg)
{
        struct classifier *c = (struct classifier *)&c; /* must be reset to NULL */
        char err[256] = "";
        CHECK_EQ_INT(classifier_load_mem(&c, "patterns.txt", text, len, err, sizeof(err)), -1);
        CHECK(c == NULL);
        CHECK_EQ_STR(err, msg);
}

static void expect_error(const char *text, const char *msg)
{
        expect_error_len(text, strlen(text), msg);
}

static void test_syntax(void)
{
        const char *text = "# Octeth bounce patterns\n"     /* 1 */
                           "\n"                             /* 2 */
                           "user unknown==>Hard\n"          /* 3 */
                           "   \t  \n"                      /* 4 */
                           "  Mailbox Full  ==>  soft  \n"  /* 5 */
                           "   # indented comment==>Hard\n" /* 6 */
                           "over quota==>SOFT\r\n"          /* 7 */
                           "no such user==>hArD\r\n"        /* 8 */
                           "\r\n"                           /* 9 */
                           "a ==> b==>Hard\n"               /* 10: the last ==> splits */
                           "#\n"                            /* 11 */
                           "last line, no newline==>Soft";  /* 12 */
        struct classifier *c = load(text);
        CHECK_EQ_INT(classifier_npatterns(c), 6);
        EXPECT(c, "550 user unknown", NULL, NULL, CLASS_HARD, 3);
        EXPECT(c, "452 mailbox full", NULL, NULL, CLASS_SOFT, 5);
        /* Surrounding whitespace is trimmed, inner whitespace is kept. */
        EXPECT(c, "mailboxfull", NULL, NULL, CLASS_NONE, 0);
        EXPECT(c, "user is over quota", NULL, NULL, CLASS_SOFT, 7);
        EXPECT(c, "no such user here", NULL, NULL, CLASS_HARD, 8);
        /* The CR of a CRLF line is not part of the pattern. */
        EXPECT(c, "over quota\r", NULL, NULL, CLASS_SOFT, 7);
        EXPECT(c, "x a ==> b y", NULL, NULL, CLASS_HARD, 10);
        EXPECT(c, "this is the last line, no newline", NULL, NULL, CLASS_SOFT, 12);
        /* Comment lines are not patterns. */
        EXPECT(c, "indented comment", NULL, NULL, CLASS_NONE, 0);
        EXPECT(c, "octeth bounce patterns", NULL, NULL, CLASS_NONE, 0);
        classifier_free(c);

        /* A UTF-8 BOM before the first line is not part of the text. */
        c = load("\xEF\xBB\xBFrejected==>Hard\n");
        EXPECT(c, "rejected", NULL, NULL, CLASS_HARD, 1);
        classifier_free(c);
        /* A '#' inside a text is a character, not a comment. */
        c = load("error #5==>Soft\n");
        EXPECT(c, "Error #5 happened", NULL, NULL, CLASS_SOFT, 1);
        classifier_free(c);
}

static void test_errors(void)
{
        expect_error("a==>Hard\nno arrow here\n",
                     "patterns.txt:2: expected \"text==>Hard\" or \"text==>Soft\"");
        expect_error("a==>Hard\r\n\r\nb=>Hard\r\n",
                     "patterns.txt:3: expected \"text==>Hard\" or \"text==>Soft\"");
        expect_error("# c\n  ==>Hard\n", "patterns.txt:2: empty pattern text before \"==>\"");
        expect_error("==>Soft", "patterns.txt:1: empty pattern text before \"==>\"");
        expect_error("a==>Hard\nb==>Soft\nx==>Medium\n",
                     "patterns.txt:3: class \"Medium\" is neither Hard nor Soft");
        expect_error("x==>", "patterns.txt:1: class \"\" is neither Hard nor Soft");
        expect_error("x==>Hardly\n", "patterns.txt:1: class \"Hardly\" is neither Hard nor Soft");
        expect_error("x==>Hard Soft\n",
                     "patterns.txt:1: class \"Hard Soft\" is neither Hard nor Soft");
        expect_error("x==>\x01\"Hard\n",
                     "patterns.txt:1: class \"??Hard\" is neither Hard nor Soft");
        expect_error("x==>0123456789012345678901234567890123456789\n",
                     "patterns.txt:1: class \"012345678901234567890123456789012345...\" is "
                     "neither Hard nor Soft");

        /* Line length: 4096 bytes pass (with or without CR), 4097 do not. */
        size_t big = 3 * CLASSIFY_MAX_LINE;
        char *t = malloc(big);
        memset(t, 'a', CLASSIFY_MAX_LINE - 7);
        memcpy(t + CLASSIFY_MAX_LINE - 7, "==>Hard\r\n", 9);
        size_t n = CLASSIFY_MAX_LINE + 2;
        struct classifier *c = NULL;
        char err[256] = "";
        CHECK_EQ_INT(classifier_load_mem(&c, "p", t, n, err, sizeof(err)), 0);
        CHECK_EQ_INT(classifier_npatterns(c), 1);
        classifier_free(c);
        memcpy(t + n, "ok==>Soft\n", 10);
        n += 10;
        memset(t + n, 'b', CLASSIFY_MAX_LINE - 6);
        memcpy(t + n + CLASSIFY_MAX_LINE - 6, "==>Hard\n", 8);
        expect_error_len(t, n + CLASSIFY_MAX_LINE + 2,
                         "patterns.txt:3: line longer than 4096 bytes");
        /* The same without a final newline. */
        expect_error_len(t, n + CLASSIFY_MAX_LINE + 1,
                         "patterns.txt:3: line longer than 4096 bytes");
        free(t);

        /* The pattern cap: the line after the last allowed pattern is named. */
        size_t cap = 40 * ((size_t)CLASSIFY_MAX_PATTERNS + 10);
        t = malloc(cap);
        n = 0;
        n += (size_t)sprintf(t + n, "# many\n");
        for (unsigned i = 0; i <= CLASSIFY_MAX_PATTERNS; i++)
                n += (size_t)sprintf(t + n, "pattern %u==>Hard\n", i);
        expect_error_len(t, n, "patterns.txt:100002: more than 100000 patterns");
        free(t);

        /* The cap on the text of all patterns together. */
        size_t per = 4000, lines = CLASSIFY_MAX_TEXT / per + 1;
        t = malloc(lines * (per + 16));
        n = 0;
        for (size_t i = 0; i < lines; i++) {
                int w = sprintf(t + n, "%zu ", i);
                memset(t + n + w, 'x', per - (size_t)w);
                n += per;
                memcpy(t + n, "==>Soft\n", 8);
                n += 8;
        }
        char msg[128];
        snprintf(msg, sizeof(msg), "patterns.txt:%zu: more than %u bytes of pattern text in all",
                 lines, (unsigned)CLASSIFY_MAX_TEXT);
        expect_error_len(t, n, msg);
        free(t);
}

static char tmpdir[64];

static char *write_file(const char *name, const char *data, size_t len)
{
        static char path[128];
        snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
        FILE *f = fopen(path, "wb");
        CHECK(f != NULL);
        if (!f)
                return path;
        CHECK_EQ_INT(fwrite(data, 1, len, f), len);
        fclose(f);
        return path;
}

static void test_file(void)
{
        char err[256] = "";
        struct classifier *c = NULL;

        const char *crlf = "# patterns\r\nUser Unknown==>Hard\r\nmailbox full==>Soft\r\n";
        char *path = write_file("crlf.txt", crlf, strlen(crlf));
        CHECK_EQ_INT(classifier_load(&c, path, err, sizeof(err)), 0);
        CHECK_EQ_INT(classifier_npatterns(c), 2);
        EXPECT(c, "550 5.1.1 user unknown", NULL, "bad-connection", CLASS_HARD, 2);
        EXPECT(c, "Mailbox FULL", NULL, NULL, CLASS_SOFT, 3);
        classifier_free(c);

        /* Lines straddling the reader's chunk boundaries, many of them. */
        size_t cap = 200000, n = 0;
        char *t = malloc(cap);
        unsigned nlines = 0;
        while (n < 150000) {
                n += (size_t)sprintf(t + n, "straddle %u %.*s==>%s\n", nlines, (int)(nlines % 97),
                                     "........................................"
                                     "........................................"
                                     "....................",
                                     nlines % 2 ? "Soft" : "Hard");
                nlines++;
        }
        path = write_file("big.txt", t, n);
        CHECK_EQ_INT(classifier_load(&c, path, err, sizeof(err)), 0);
        CHECK_EQ_INT(classifier_npatterns(c), nlines);
        for (unsigned i = 0; i < nlines; i += 37) {
                char diag[256];
                snprintf(diag, sizeof(diag), "STRADDLE %u %.*s", i, (int)(i % 97),
                         "........................................"
                         "........................................"
                         "....................");
                EXPECT(c, diag, NULL, NULL, i % 2 ? CLASS_SOFT : CLASS_HARD, i + 1);
        }
        classifier_free(c);

        /* A too long line in a file, reported with its number. */
        n = (size_t)sprintf(t, "a==>Hard\nb==>Soft\n");
        memset(t + n, 'z', 20000);
        n += 20000;
        path = write_file("long.txt", t, n);
        CHECK_EQ_INT(classifier_load(&c, path, err, sizeof(err)), -1);
        CHECK(c == NULL);
        char msg[256];
        snprintf(msg, sizeof(msg), "%s:3: line longer than 4096 bytes", path);
        CHECK_EQ_STR(err, msg);
        free(t);

        /* A syntax error in a file names the file. */
        path = write_file("bad.txt", "ok==>Hard\nbad\n", 14);
        CHECK_EQ_INT(classifier_load(&c, path, err, sizeof(err)), -1);
        snprintf(msg, sizeof(msg), "%s:2: expected \"text==>Hard\" or \"text==>Soft\"", path);
        CHECK_EQ_STR(err, msg);

        /* Files that cannot be read. */
        snprintf(msg, sizeof(msg), "%s/missing.txt", tmpdir);
        CHECK_EQ_INT(classifier_load(&c, msg, err, sizeof(err)), -1);
        CHECK(c == NULL);
        char want[300];
        snprintf(want, sizeof(want), "%s: %s", msg, strerror(ENOENT));
        CHECK_EQ_STR(err, want);
        CHECK_EQ_INT(classifier_load(&c, tmpdir, err, sizeof(err)), -1);
        snprintf(want, sizeof(want), "%s: %s", tmpdir, strerror(EISDIR));
        CHECK_EQ_STR(err, want);

        /* No path: no patterns, bounceCat only. */
        CHECK_EQ_INT(classifier_load(&c, NULL, err, sizeof(err)), 0);
        CHECK(c != NULL);
        CHECK_EQ_INT(classifier_npatterns(c), 0);
        EXPECT(c, "user unknown", NULL, "bad-mailbox", CLASS_HARD, 0);
        EXPECT(c, "user unknown", NULL, "other", CLASS_NONE, 0);
        classifier_free(c);
}

static void test_case(void)
{
        struct classifier *c = load("User Unknown==>Hard\nOVER QUOTA==>Soft\n");
        EXPECT(c, "550 user unknown", NULL, NULL, CLASS_HARD, 1);
        EXPECT(c, "550 USER UNKNOWN", NULL, NULL, CLASS_HARD, 1);
        EXPECT(c, "550 uSeR uNkNoWn", NULL, NULL, CLASS_HARD, 1);
        EXPECT(c, "mailbox is over quota", NULL, NULL, CLASS_SOFT, 2);
        EXPECT(c, "Over Quota", NULL, NULL, CLASS_SOFT, 2);
        EXPECT(c, "user_unknown", NULL, NULL, CLASS_NONE, 0);
        classifier_free(c);
}

static void test_fields(void)
{
        struct classifier *c = load("5.1.1==>Hard\nquota==>Soft\nab==>Hard\n");
        EXPECT(c, "smtp;550 no", "5.1.1", NULL, CLASS_HARD, 1);
        EXPECT(c, "smtp;550 5.1.1 no", "", NULL, CLASS_HARD, 1);
        EXPECT(c, NULL, "5.1.1 (bad destination mailbox address)", NULL, CLASS_HARD, 1);
        EXPECT(c, "quota exceeded", NULL, NULL, CLASS_SOFT, 2);
        EXPECT(c, NULL, NULL, NULL, CLASS_NONE, 0);
        /* A match may not run from the end of one field into the other. */
        EXPECT(c, "xa", "bx", NULL, CLASS_NONE, 0);
        /* Lengths are honoured: bytes after them are not looked at. */
        unsigned line = 7;
        CHECK_EQ_INT(classify_bounce(c, "quota", 4, "5.1.1", 4, NULL, 0, &line), CLASS_NONE);
        CHECK_EQ_INT(line, 0);
        /* Fields may hold NUL bytes. */
        CHECK_EQ_INT(classify_bounce(c, "x\0quota", 7, NULL, 0, NULL, 0, &line), CLASS_SOFT);
        CHECK_EQ_INT(line, 2);
        /* line may be NULL. */
        CHECK_EQ_INT(classify_bounce(c, "quota", 5, NULL, 0, NULL, 0, NULL), CLASS_SOFT);
        classifier_free(c);
}

static void test_longest(void)
{
        struct classifier *c = load("mailbox==>Soft\nmailbox unavailable==>Hard\n");
        EXPECT(c, "550 Mailbox unavailable", NULL, NULL, CLASS_HARD, 2);
        EXPECT(c, "452 mailbox full", NULL, NULL, CLASS_SOFT, 1);
        /* Longest wins across the two fields too, whichever is scanned first. */
        EXPECT(c, "mailbox", "mailbox unavailable", NULL, CLASS_HARD, 2);
        EXPECT(c, "mailbox unavailable", "mailbox", NULL, CLASS_HARD, 2);
        classifier_free(c);

        c = load("mailbox unavailable==>Hard\nmailbox==>Soft\n");
        EXPECT(c, "550 mailbox unavailable", NULL, NULL, CLASS_HARD, 1);
        EXPECT(c, "mailbox unavail", NULL, NULL, CLASS_SOFT, 2);
        classifier_free(c);

        /* The longer match may come first or last in the text. */
        c = load("full==>Soft\nno such user==>Hard\n");
        EXPECT(c, "no such user, mailbox full", NULL, NULL, CLASS_HARD, 2);
        EXPECT(c, "mailbox full, no such user", NULL, NULL, CLASS_HARD, 2);
        classifier_free(c);
}

static void test_ties(void)
{
        struct classifier *c = load("abc==>Hard\nxyz==>Soft\n");
        EXPECT(c, "xyz abc", NULL, NULL, CLASS_HARD, 1);
        EXPECT(c, "abc xyz", NULL, NULL, CLASS_HARD, 1);
        EXPECT(c, "xyz", "abc", NULL, CLASS_HARD, 1);
        EXPECT(c, "xyz", NULL, NULL, CLASS_SOFT, 2);
        classifier_free(c);

        /* The same text twice: the earlier line decides. */
        c = load("Over Quota==>Soft\nover quota==>Hard\n");
        CHECK_EQ_INT(classifier_npatterns(c), 2);
        EXPECT(c, "over quota", NULL, NULL, CLASS_SOFT, 1);
        classifier_free(c);
}

static void test_nested(void)
{
        struct classifier *c = load("c==>Soft\nbc==>Hard\nabc==>Soft\n");
        EXPECT(c, "abc", NULL, NULL, CLASS_SOFT, 3);
        EXPECT(c, "xbc", NULL, NULL, CLASS_HARD, 2);
        EXPECT(c, "xxc", NULL, NULL, CLASS_SOFT, 1);
        EXPECT(c, "ab", NULL, NULL, CLASS_NONE, 0);
        classifier_free(c);

        c = load("he==>Soft\nshe==>Hard\nhis==>Soft\nhers==>Hard\n");
        EXPECT(c, "ushers", NULL, NULL, CLASS_HARD, 4);
        EXPECT(c, "ushe", NULL, NULL, CLASS_HARD, 2);
        EXPECT(c, "xhe", NULL, NULL, CLASS_SOFT, 1);
        EXPECT(c, "this", NULL, NULL, CLASS_SOFT, 3);
        EXPECT(c, "hishe", NULL, NULL, CLASS_HARD, 2); /* his (line 3) and she (line 2): a tie */
        EXPECT(c, "shis", NULL, NULL, CLASS_SOFT, 3);
        EXPECT(c, "sh", NULL, NULL, CLASS_NONE, 0);
        classifier_free(c);

        /* A short pattern met only through a dictionary suffix link, on the
         * path of a longer one that does not complete. */
        c = load("abcde==>Hard\nc==>Soft\n");
        EXPECT(c, "abcdx", NULL, NULL, CLASS_SOFT, 2);
        EXPECT(c, "xabcde", NULL, NULL, CLASS_HARD, 1);
        classifier_free(c);

        /* A match found after a failure transition. */
        c = load("bcd==>Hard\nabcx==>Soft\n");
        EXPECT(c, "abcd", NULL, NULL, CLASS_HARD, 1);
        EXPECT(c, "abcabcx", NULL, NULL, CLASS_SOFT, 2);
        classifier_free(c);

        /* Overlapping repeats. */
        c = load("aa==>Soft\naaa==>Hard\n");
        EXPECT(c, "aaaa", NULL, NULL, CLASS_HARD, 2);
        EXPECT(c, "baab", NULL, NULL, CLASS_SOFT, 1);
        classifier_free(c);
}

static void test_non_ascii(void)
{
        /* "Änderung" in UTF-8; upper-case Ä (C3 84) is not folded to ä (C3 A4). */
        struct classifier *c = load("\xC3\xA4nderung==>Hard\nPostf\xC3\xA4"
                                    "cher voll==>Soft\n\xFF\xFE==>Hard\n");
        EXPECT(c, "Xx \xC3\xA4NDERUNG", NULL, NULL, CLASS_HARD, 1);
        EXPECT(c, "\xC3\x84nderung", NULL, NULL, CLASS_NONE, 0);
        EXPECT(c,
               "alle POSTF\xC3\xA4"
               "CHER VOLL",
               NULL, NULL, CLASS_SOFT, 2);
        EXPECT(c, "\x80\x81\xFF\xFE\x01", NULL, NULL, CLASS_HARD, 3);
        EXPECT(c, "\xFE\xFF", NULL, NULL, CLASS_NONE, 0);
        classifier_free(c);

        /* Bytes that differ from ASCII letters by 0x20 but are not letters. */
        c = load("[x]==>Hard\n");
        EXPECT(c, "{X}", NULL, NULL, CLASS_NONE, 0);
        EXPECT(c, "[X]", NULL, NULL, CLASS_HARD, 1);
        classifier_free(c);
}

static void test_category(void)
{
        struct classifier *c = load("");
        static const char *hard[] = {"bad-mailbox", "bad-domain", "inactive-mailbox"};
        static const char *soft[] = {"quota-issues",   "no-answer-from-host", "relaying-issues",
                                     "routing-errors", "bad-connection",      "message-expired"};
        static const char *none[] = {
            "bad-configuration", "content-related", "invalid-sender", "other", "policy-related",
            "protocol-errors",   "spam-related",    "virus-related",  "",      "bad-mailboxx",
            "bad-mail",          "unknown"};
        for (size_t i = 0; i < sizeof(hard) / sizeof(hard[0]); i++)
                EXPECT(c, "some text", "5.0.0", hard[i], CLASS_HARD, 0);
        for (size_t i = 0; i < sizeof(soft) / sizeof(soft[0]); i++)
                EXPECT(c, "some text", "4.0.0", soft[i], CLASS_SOFT, 0);
        for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
                EXPECT(c, "some text", "5.0.0", none[i], CLASS_NONE, 0);
        EXPECT(c, NULL, NULL, NULL, CLASS_NONE, 0);
        /* The length is what counts, not a NUL. */
        unsigned line = 5;
        CHECK_EQ_INT(classify_bounce(c, NULL, 0, NULL, 0, "bad-domainXYZ", 10, &line), CLASS_HARD);
        CHECK_EQ_INT(line, 0);
        CHECK_EQ_INT(classify_bounce(c, NULL, 0, NULL, 0, "bad-domain", 9, &line), CLASS_NONE);
        /* A NULL classifier acts as one without patterns. */
        CHECK_EQ_INT(classify_bounce(NULL, "x", 1, NULL, 0, "quota-issues", 12, &line), CLASS_SOFT);
        CHECK_EQ_INT(classifier_npatterns(NULL), 0);
        classifier_free(NULL);
        classifier_free(c);
}

static void test_pattern_first(void)
{
        struct classifier *c = load("mailbox full==>Soft\nuser unknown==>Hard\n");
        /* The pattern overrides bounceCat in both directions. */
        EXPECT(c, "552 mailbox full", NULL, "bad-mailbox", CLASS_SOFT, 1);
        EXPECT(c, "550 user unknown", NULL, "quota-issues", CLASS_HARD, 2);
        EXPECT(c, "550 user unknown", NULL, "spam-related", CLASS_HARD, 2);
        /* No pattern matches: bounceCat decides, line 0. */
        EXPECT(c, "550 rejected", NULL, "bad-domain", CLASS_HARD, 0);
        EXPECT(c, "421 try later", NULL, "no-answer-from-host", CLASS_SOFT, 0);
        EXPECT(c, "550 spam", NULL, "spam-related", CLASS_NONE, 0);
        classifier_free(c);
}

static void test_empty(void)
{
        struct classifier *c = load("");
        CHECK_EQ_INT(classifier_npatterns(c), 0);
        EXPECT(c, "user unknown", NULL, NULL, CLASS_NONE, 0);
        classifier_free(c);
        c = load("# nothing yet\n\n   \r\n#x==>Hard\n");
        CHECK_EQ_INT(classifier_npatterns(c), 0);
        EXPECT(c, "x", NULL, "bad-mailbox", CLASS_HARD, 0);
        classifier_free(c);
        char err[16];
        CHECK_EQ_INT(classifier_load_mem(&c, "empty", NULL, 0, err, sizeof(err)), 0);
        CHECK_EQ_INT(classifier_npatterns(c), 0);
        classifier_free(c);
}

static void test_names(void)
{
        CHECK_EQ_STR(bounce_class_name(CLASS_HARD), "hard");
        CHECK_EQ_STR(bounce_class_name(CLASS_SOFT), "soft");
        CHECK(bounce_class_name(CLASS_NONE) == NULL);
}

/* ---- Cross-check against a naive reference ---------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint32_t rnd(uint32_t n)
{
        /* xorshift64*: deterministic, so a failure can be reproduced. */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return (uint32_t)((rng_state * 0x2545F4914F6CDD1Du) >> 32) % n;
}

/* A small alphabet so that matches, nesting and overlaps are frequent; with
 * upper case (folded), bytes that differ only by 0x20 but are not letters
 * ('@' '`'), and high bytes (not folded: 0xE4/0xC4 are Latin-1 ä/Ä). */
static const char alphabet[] = "abcAB @`-\xE4\xC4\x80";

static void rand_text(char *s, size_t maxlen, size_t minlen)
{
        size_t n = minlen + rnd((uint32_t)(maxlen - minlen + 1));
        for (size_t i = 0; i < n; i++)
                s[i] = alphabet[rnd(sizeof(alphabet) - 1)];
        s[n] = '\0';
}

static void test_random(void)
{
        static const char *cats[] = {"bad-mailbox", "quota-issues", "spam-related", "", "other"};
        char pats[24][16];
        int pclass[24];
        char file[24 * 40];
        char diag[48], status[48];
        unsigned cases = 0, by_pattern = 0, by_cat = 0, mismatches = 0;
        for (int set = 0; set < 1000; set++) {
                int np = 1 + (int)rnd(20);
                size_t fl = 0;
                for (int i = 0; i < np; i++) {
                        /* No whitespace at either end: the file trims it. */
                        do
                                rand_text(pats[i], 6, 1);
                        while (pats[i][0] == ' ' || pats[i][strlen(pats[i]) - 1] == ' ');
                        pclass[i] = rnd(2) ? CLASS_HARD : CLASS_SOFT;
                        fl += (size_t)sprintf(file + fl, "%s%s==>%s\n", rnd(4) ? "" : "  ", pats[i],
                                              pclass[i] == CLASS_HARD ? "Hard" : "soft");
                }
                struct classifier *c = NULL;
                char err[128];
                if (classifier_load_mem(&c, "r", file, fl, err, sizeof(err)) != 0) {
                        CHECK(!"random pattern file refused");
                        fprintf(stderr, "  %s\n", err);
                        continue;
                }
                for (int k = 0; k < 100; k++) {
                        rand_text(diag, 30, 0);
                        rand_text(status, 12, 0);
                        const char *cat = cats[rnd(5)];
                        /* Reference: every pattern, in line order, by strcasestr
                         * (ASCII-only folding in the C locale). */
                        int want = CLASS_NONE;
                        unsigned want_line = 0;
                        size_t best = 0;
                        for (int i = 0; i < np; i++) {
                                size_t len = strlen(pats[i]);
                                if (len > best &&
                                    (strcasestr(diag, pats[i]) || strcasestr(status, pats[i]))) {
                                        best = len;
                                        want = pclass[i];
                                        want_line = (unsigned)i + 1;
                                }
                        }
                        if (best == 0) {
                                if (strcmp(cat, "bad-mailbox") == 0)
                                        want = CLASS_HARD;
                                else if (strcmp(cat, "quota-issues") == 0)
                                        want = CLASS_SOFT;
                        }
                        unsigned line = 12345;
                        int got = cl(c, diag, status, cat, &line);
                        cases++;
                        if (best)
                                by_pattern++;
                        else if (want != CLASS_NONE)
                                by_cat++;
                        if (got != want || line != want_line) {
                                if (mismatches++ < 5)
                                        fprintf(stderr,
                                                "  set %d: diag \"%s\" status \"%s\": got %d "
                                                "line %u, want %d line %u\n",
                                                set, diag, status, got, line, want, want_line);
                        }
                }
                classifier_free(c);
        }
        CHECK_EQ_INT(mismatches, 0);
        CHECK_EQ_INT(cases, 100000);
        /* The generator must exercise both paths for the check to mean much. */
        CHECK(by_pattern > 30000);
        CHECK(by_cat > 5000);
}

/* The largest file allowed: 100,000 patterns, an automaton with far more
 * states than fit in dense rows, so the sparse path is used as built. */
static void test_large(void)
{
        size_t cap = 48 * (size_t)CLASSIFY_MAX_PATTERNS;
        char *t = malloc(cap);
        size_t n = 0;
        for (unsigned i = 0; i < CLASSIFY_MAX_PATTERNS; i++)
                n += (size_t)sprintf(t + n, "reason %u-%x==>%s\n", i * 7919u % 1000003u, i,
                                     i % 3 ? "Soft" : "Hard");
        struct classifier *c = NULL;
        char err[128] = "";
        CHECK_EQ_INT(classifier_load_mem(&c, "large", t, n, err, sizeof(err)), 0);
        CHECK_EQ_INT(classifier_npatterns(c), CLASSIFY_MAX_PATTERNS);
        for (unsigned i = 0; i < CLASSIFY_MAX_PATTERNS; i += 997) {
                char diag[96];
                snprintf(diag, sizeof(diag), "550 REASON %u-%X; try again", i * 7919u % 1000003u,
                         i);
                EXPECT(c, diag, NULL, NULL, i % 3 ? CLASS_SOFT : CLASS_HARD, i + 1);
        }
        EXPECT(c, "reason 1-0", NULL, "other", CLASS_NONE, 0);
        /* Well under the RSS target even at the cap. */
        CHECK(classifier_memory(c) < 16u * 1024 * 1024);
        classifier_free(c);
        free(t);
}

int main(void)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_classify.XXXXXX");
        if (!mkdtemp(tmpdir)) {
                perror("mkdtemp");
                return 1;
        }
        RUN(test_syntax);
        RUN(test_errors);
        RUN(test_file);
        RUN(test_case);
        RUN(test_fields);
        RUN(test_longest);
        RUN(test_ties);
        RUN(test_nested);
        RUN(test_non_ascii);
        RUN(test_category);
        RUN(test_pattern_first);
        RUN(test_empty);
        RUN(test_names);
        RUN(test_random);
        RUN(test_large);
        static const char *files[] = {"crlf.txt", "big.txt", "long.txt", "bad.txt"};
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
                char p[128];
                snprintf(p, sizeof(p), "%s/%s", tmpdir, files[i]);
                unlink(p);
        }
        rmdir(tmpdir);
        TEST_MAIN_END;
}
