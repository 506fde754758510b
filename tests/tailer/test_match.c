/* The matching rules (tailer/match.h) on real files: a finished header-only
 * fingerprint does not claim a new file on its inode, copies need a strong
 * fingerprint and a size that fits, one pass for SAME before COPIED, archive
 * listings of any size. (Unreadable files: tests/py/test_bookkeeping.py, as an
 * unprivileged user.) */
#include "match.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

TEST_MAIN_BEGIN

static char root[256];

#define HEADER "type,timeLogged,rcpt\r\n"

static void put(const char *name, const char *text, char *path, size_t size)
{
        snprintf(path, size, "%s/%s", root, name);
        FILE *f = fopen(path, "wb");
        CHECK(f != NULL);
        if (f) {
                fputs(text, f);
                fclose(f);
        }
}

/* A file of `n` records after the header, each line distinct by `tag`. */
static char *body(const char *tag, int n)
{
        size_t cap = 64 + (size_t)n * 64;
        char *s = malloc(cap);
        size_t len = (size_t)snprintf(s, cap, "%s", HEADER);
        for (int i = 0; i < n; i++)
                len += (size_t)snprintf(s + len, cap - len, "b,1704459600,%s%d@example.com\r\n",
                                        tag, i);
        return s;
}

static struct match_saved saved_of(const char *path, bool finished)
{
        struct match_saved s = {.finished = finished};
        CHECK_EQ_INT(identity_of_path(path, &s.id), 0);
        struct stat st;
        CHECK_EQ_INT(stat(path, &st), 0);
        s.offset = (uint64_t)st.st_size;
        return s;
}

static enum match_kind match_path(const struct match_saved *s, const char *path)
{
        struct cand_list l;
        cand_list_init(&l);
        struct candidate *c = cand_add(&l, path);
        CHECK(c != NULL);
        enum match_kind m = c ? match_saved(s, c) : MATCH_NONE;
        cand_list_free(&l);
        return m;
}

static void setup(void)
{
        strcpy(root, "/tmp/pmtatail-match-XXXXXX");
        CHECK(mkdtemp(root) != NULL);
}

static void teardown(void)
{
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        CHECK(system(cmd) == 0);
}

static void test_header_only_finished(void)
{
        setup();
        char p[512];
        put("bounces-h.csv", HEADER, p, sizeof p);
        struct match_saved s = saved_of(p, true);
        CHECK_EQ_INT(match_path(&s, p), MATCH_SAME); /* still the header-only file */
        /* the same inode now holds records: a new file, not the finished one */
        char *b = body("u", 5);
        FILE *f = fopen(p, "r+b");
        CHECK(f != NULL);
        if (f) {
                fputs(b, f);
                fclose(f);
        }
        CHECK_EQ_INT(match_path(&s, p), MATCH_NONE);
        /* an unfinished weak one resumes at its offset (past the header alone) */
        s.finished = false;
        CHECK_EQ_INT(match_path(&s, p), MATCH_SAME);
        free(b);
        teardown();
}

static void test_copies(void)
{
        setup();
        char a[512], copy[512], longer[512], hdr[512], hdr2[512];
        char *b = body("u", 40), *b2 = body("u", 50);
        put("bounces-a.csv", b, a, sizeof a);
        put("bounces-copy.csv", b, copy, sizeof copy);
        put("bounces-longer.csv", b2, longer, sizeof longer);
        struct match_saved fin = saved_of(a, true), open_ = saved_of(a, false);
        CHECK_EQ_INT(match_path(&fin, copy), MATCH_COPIED);
        CHECK_EQ_INT(match_path(&open_, copy), MATCH_COPIED);
        /* starts alike but holds more: not a finished file's copy, but may be
         * the copy of one still being read */
        CHECK_EQ_INT(match_path(&fin, longer), MATCH_NONE);
        CHECK_EQ_INT(match_path(&open_, longer), MATCH_COPIED);
        /* shorter than what was read: not a copy of it */
        open_.offset += 10000;
        CHECK_EQ_INT(match_path(&open_, copy), MATCH_NONE);
        /* header-only fingerprints never prove a copy */
        put("bounces-h1.csv", HEADER, hdr, sizeof hdr);
        put("bounces-h2.csv", HEADER, hdr2, sizeof hdr2);
        struct match_saved h = saved_of(hdr, true);
        CHECK_EQ_INT(match_path(&h, hdr2), MATCH_NONE);
        free(b);
        free(b2);
        teardown();
}

static bool any(const char *name, void *ctx)
{
        (void)ctx;
        return strncmp(name, "bounces-", 8) == 0;
}

static void test_same_before_copied(void)
{
        setup();
        /* b starts like a (same first 1024 bytes) and is listed first */
        char a[512], b[512];
        char *text = body("u", 60);
        char *more = malloc(strlen(text) + 64);
        strcpy(more, text);
        strcat(more, "b,1704459600,extra@example.com\r\n");
        put("bounces-0b.csv", more, b, sizeof b);
        put("bounces-1a.csv", text, a, sizeof a);
        struct match_saved s[2] = {saved_of(a, false), saved_of(b, true)};
        struct cand_list l;
        cand_list_init(&l);
        CHECK_EQ_INT(cand_scan(&l, root, any, NULL), 0);
        CHECK_EQ_INT(l.n, 2);
        long found[2];
        enum match_kind how[2];
        match_pass(s, 2, &l, found, how, NULL);
        CHECK(found[0] >= 0 && strcmp(l.v[found[0]].path, a) == 0);
        CHECK_EQ_INT(how[0], MATCH_SAME);
        CHECK(found[1] >= 0 && strcmp(l.v[found[1]].path, b) == 0);
        CHECK_EQ_INT(how[1], MATCH_SAME);
        cand_list_free(&l);
        free(text);
        free(more);
        teardown();
}

static void test_big_listing(void)
{
        setup();
        char p[512];
        for (int i = 0; i < 5000; i++) {
                char name[64];
                snprintf(name, sizeof name, "bounces-%05d.csv", i);
                put(name, HEADER, p, sizeof p);
        }
        struct cand_list l;
        cand_list_init(&l);
        CHECK_EQ_INT(cand_scan(&l, root, any, NULL), 0);
        CHECK_EQ_INT(l.n, 5000);
        for (size_t i = 0; i < l.n; i++)
                CHECK(!l.v[i].fp_taken); /* listed by stat alone: nothing opened */
        cand_list_free(&l);
        teardown();
}

int main(void)
{
        RUN(test_header_only_finished);
        RUN(test_copies);
        RUN(test_same_before_copied);
        RUN(test_big_listing);
        TEST_MAIN_END;
}
