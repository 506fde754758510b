/* The reconciler's decisions, table-driven: each row is a situation a host
 * produces (named after the case it covers), the answers the disk would
 * give, and the plan expected. The same function decides at the start and
 * at every look, so each case is written once. */
#include "reconcile.h"

#include "test.h"

#define MAXK 6
#define MAXC 6
#define MAXR 12
#define NOW  1000000

enum { ANY = -2 };

struct rel_row {
        int known, cand, on; /* on: -1, or the candidate the known file is on */
        enum rc_rel rel;
};

struct want_k {
        enum rc_fate fate;
        long cand, copy;
        bool release;
};

struct want_c {
        enum rc_cfate fate;
        long known;
};

struct rc_case {
        const char *name;
        size_t nk, nc;
        struct rc_known known[MAXK];
        struct rc_cand cand[MAXC];
        struct rel_row rel[MAXR];
        bool look_failed, unknown_source;
        struct want_k wk[MAXK];
        struct want_c wc[MAXC];
        int max_questions; /* relate calls allowed (0: no limit) */
};

struct ctx {
        const struct rc_case *c;
        int questions;
};

static enum rc_rel relate(void *p, size_t k, size_t c, long on)
{
        struct ctx *x = p;
        x->questions++;
        if (k == RC_NO_KNOWN)
                k = 9; /* rows for a candidate against the new live file */
        for (size_t i = 0; i < MAXR; i++) {
                const struct rel_row *r = &x->c->rel[i];
                if (r->rel != RC_REL_NONE && r->known == (int)k && r->cand == (int)c &&
                    r->on == (int)on)
                        return r->rel;
        }
        return RC_REL_NONE;
}

/* Shorthands: a finished entry, an entry being read, a followed file. */
#define DONE(ino_, size_)                                                                          \
        {                                                                                          \
                .dev = 1, .ino = (ino_), .copy_min = (size_), .copy_exact = true, .finished = true \
        }
#define READING(ino_, off_)                                                                        \
        {                                                                                          \
                .dev = 1, .ino = (ino_), .copy_min = (off_)                                        \
        }
#define OPEN(ino_, read_)                                                                          \
        {                                                                                          \
                .dev = 1, .ino = (ino_), .copy_min = (read_), .open = true                         \
        }
#define REWRITTEN(ino_, read_)                                                                     \
        {                                                                                          \
                .dev = 1, .ino = (ino_), .copy_min = (read_), .open = true, .rewritten = true      \
        }
#define ARCH(ino_, size_)                                                                          \
        {                                                                                          \
                .dev = 1, .ino = (ino_), .size = (size_), .mtime_s = NOW - 10                      \
        }
#define OLD(ino_, size_)                                                                           \
        {                                                                                          \
                .dev = 1, .ino = (ino_), .size = (size_), .mtime_s = NOW - 100000                  \
        }
#define LIVE(ino_, size_)                                                                          \
        {                                                                                          \
                .dev = 1, .ino = (ino_), .size = (size_), .mtime_s = NOW, .live = true             \
        }

static const struct rc_case cases[] = {
    {
        /* copy-and-truncate with rotate 1 while stopped: the new .1 took the
         * inode of yesterday's .1. The entry of yesterday's is released, the
         * live file's entry goes to its copy, the live file is new. */
        .name = "crash-at-start: copytruncate rotate 1, the copy on a finished file's inode",
        .nk = 2,
        .nc = 2,
        .known = {DONE(10, 500), READING(20, 300)},
        .cand = {ARCH(10, 800), LIVE(20, 40)},
        .rel = {{1, 1, -1, RC_REL_TRUNCATED}, {1, 0, -1, RC_REL_COPY}},
        .wk = {{RC_DONE_AWAY, -1, -1, true}, {RC_COPIED, 0, -1, false}},
        .wc = {{RC_C_KNOWN, 1}, {RC_C_LIVE_NEW, -1}},
    },
    {
        /* move-to to another file system plus delete-after across a
         * restart: the copy took the inode of a deleted archive */
        .name = "crash-at-start: move-to copy on a deleted archive's inode",
        .nk = 2,
        .nc = 2,
        .known = {DONE(10, 500), READING(20, 300)},
        .cand = {ARCH(10, 900), LIVE(30, 60)},
        .rel = {{1, 0, -1, RC_REL_COPY}},
        .wk = {{RC_DONE_AWAY, -1, -1, true}, {RC_COPIED, 0, -1, false}},
        .wc = {{RC_C_KNOWN, 1}, {RC_C_LIVE_NEW, -1}},
    },
    {
        /* the same while running: the open file was rewritten in place and
         * its copy took a stale entry's inode */
        .name = "loss-a: copytruncate while running, inode reuse",
        .nk = 2,
        .nc = 2,
        .known = {REWRITTEN(20, 300), DONE(10, 500)},
        .cand = {ARCH(10, 800), LIVE(20, 10)},
        .rel = {{0, 1, -1, RC_REL_TRUNCATED}, {0, 0, -1, RC_REL_COPY}},
        .wk = {{RC_COPIED, 0, -1, false}, {RC_DONE_AWAY, -1, -1, true}},
        .wc = {{RC_C_KNOWN, 0}, {RC_C_LIVE_NEW, -1}},
    },
    {
        /* copytruncate found while reading was paused: the copy takes the
         * open file over (reading and acknowledgements in flight go on) */
        .name = "loss-b/repeat-g: rewritten while paused, the copy takes the file over",
        .nk = 1,
        .nc = 3,
        .known = {REWRITTEN(20, 4000)},
        .cand = {ARCH(11, 9000), ARCH(12, 5000), LIVE(20, 6000)},
        .rel = {{0, 2, -1, RC_REL_TRUNCATED}, {0, 1, -1, RC_REL_COPY}, {0, 0, -1, RC_REL_NONE}},
        .wk = {{RC_COPIED, 1, -1, false}},
        .wc = {{RC_C_NEW, -1}, {RC_C_KNOWN, 0}, {RC_C_LIVE_NEW, -1}},
    },
    {
        .name = "truncated in place, no copy: read again from 0 on its inode",
        .nk = 1,
        .nc = 1,
        .known = {REWRITTEN(20, 4000)},
        .cand = {LIVE(20, 100)},
        .rel = {{0, 0, -1, RC_REL_TRUNCATED}},
        .wk = {{RC_SHRUNK, 0, -1, false}},
        .wc = {{RC_C_KNOWN, 0}},
    },
    {
        /* the live file could not be opened at the start; it was rotated
         * before it could: followed by inode, it is found in the archive */
        .name = "loss-c: unreadable live file rotated before it opened",
        .nk = 1,
        .nc = 2,
        .known = {{.dev = 1, .ino = 20}},
        .cand = {ARCH(20, 700), LIVE(30, 50)},
        .rel = {{0, 0, -1, RC_REL_BLOCKED}},
        .wk = {{RC_BLOCKED, 0, -1, false}},
        .wc = {{RC_C_KNOWN, 0}, {RC_C_LIVE_NEW, -1}},
    },
    {
        .name = "loss-d: archive directory unlistable: the entry is owed, not gone",
        .nk = 2,
        .nc = 1,
        .known = {READING(20, 300), DONE(10, 500)},
        .cand = {LIVE(30, 50)},
        .look_failed = true,
        .wk = {{RC_OWED, -1, -1, false}, {RC_DONE_AWAY, -1, -1, false}},
        .wc = {{RC_C_LIVE_NEW, -1}},
    },
    {
        .name = "every look worked: an entry not seen is gone",
        .nk = 1,
        .nc = 1,
        .known = {READING(20, 300)},
        .cand = {LIVE(30, 50)},
        .wk = {{RC_GONE, -1, -1, false}},
        .wc = {{RC_C_LIVE_NEW, -1}},
    },
    {
        /* a source whose entries were all pruned is still known (the
         * newest entry is kept): a file rotated while stopped is read */
        .name = "loss-e: rotated while stopped, the source's files pruned",
        .nk = 1,
        .nc = 3,
        .known = {DONE(10, 500)},
        .cand = {OLD(40, 300), ARCH(41, 900), LIVE(42, 50)},
        .wk = {{RC_DONE_AWAY, -1, -1, false}},
        .wc = {{RC_C_HISTORY, -1}, {RC_C_NEW, -1}, {RC_C_LIVE_NEW, -1}},
        .max_questions = 0,
    },
    {
        .name = "first start: what is there is history, the live file is followed",
        .nk = 0,
        .nc = 2,
        .cand = {ARCH(41, 900), LIVE(42, 50)},
        .unknown_source = true,
        .wc = {{RC_C_HISTORY, -1}, {RC_C_LIVE_NEW, -1}},
        .max_questions = -1,
    },
    {
        /* a source never read: a file rotated after the daemon began to
         * watch is read, one from before is history */
        .name = "first start: rotated since the watches were armed",
        .nk = 0,
        .nc = 3,
        .cand = {ARCH(41, 900),
                 {.dev = 1, .ino = 43, .size = 700, .mtime_s = NOW - 1},
                 LIVE(42, 50)},
        .unknown_source = true,
        .wc = {{RC_C_HISTORY, -1}, {RC_C_NEW, -1}, {RC_C_LIVE_NEW, -1}},
    },
    {
        /* move-to's copy made before the daemon saw the live file, found in
         * the same look as it: the copy is not read as well */
        .name = "a copy of the new live file is not new",
        .nk = 0,
        .nc = 2,
        .cand = {ARCH(30, 199), LIVE(31, 199)},
        .rel = {{9, 0, 1, RC_REL_COPY}},
        .wc = {{RC_C_COPY_OF, -1}, {RC_C_LIVE_NEW, -1}},
    },
    {
        /* copy-move during an outage: the file read (deleted, still open)
         * has a copy: named by it, not read again */
        .name = "repeat-f: copy and delete of the open file",
        .nk = 1,
        .nc = 2,
        .known = {OPEN(20, 60)},
        .cand = {ARCH(30, 5000), LIVE(31, 0)},
        .rel = {{0, 0, -1, RC_REL_COPY}},
        .wk = {{RC_OPEN, -1, 0, false}},
        .wc = {{RC_C_COPY_OF, 0}, {RC_C_LIVE_NEW, -1}},
    },
    {
        /* a (re)start between move-to's copy and its delete: the copy is
         * the live file's, not a file rotated while stopped */
        .name = "repeat-h: start between copy and delete",
        .nk = 1,
        .nc = 2,
        .known = {READING(20, 300)},
        .cand = {ARCH(30, 5000), LIVE(20, 5000)},
        .rel = {{0, 1, -1, RC_REL_SAME}, {0, 0, 1, RC_REL_COPY}},
        .wk = {{RC_ON, 1, 0, false}},
        .wc = {{RC_C_COPY_OF, 0}, {RC_C_KNOWN, 0}},
    },
    {
        /* an entry whose file is gone never blocks the file on its inode */
        .name = "inode reuse: a new archive on a finished file's inode",
        .nk = 2,
        .nc = 2,
        .known = {DONE(10, 500), OPEN(20, 100)},
        .cand = {ARCH(10, 500), LIVE(20, 100)},
        .rel = {{1, 1, -1, RC_REL_SAME}},
        .wk = {{RC_DONE_AWAY, -1, -1, true}, {RC_ON, 1, -1, false}},
        .wc = {{RC_C_NEW, -1}, {RC_C_KNOWN, 1}},
    },
    {
        /* two entries recorded with one inode: the one the content says is
         * there keeps it, the other is released */
        .name = "two entries on one inode",
        .nk = 2,
        .nc = 1,
        .known = {READING(20, 100), READING(20, 200)},
        .cand = {LIVE(20, 900)},
        .rel = {{0, 0, -1, RC_REL_NONE}, {1, 0, -1, RC_REL_SAME}},
        .wk = {{RC_GONE, -1, -1, true}, {RC_ON, 0, -1, false}},
        .wc = {{RC_C_KNOWN, 1}},
    },
    {
        /* a closed file recorded on the inode an open one is read through
         * (its file deleted, the inode given to the file being read): the
         * descriptor pins the inode, so the closed one is stale, even
         * listed first and even if its bytes would say "shrunk" */
        .name = "an open file keeps its inode from a stale closed one",
        .nk = 2,
        .nc = 1,
        .known = {READING(20, 199), OPEN(20, 400)},
        .cand = {LIVE(20, 900)},
        .rel = {{0, 0, -1, RC_REL_TRUNCATED}, {1, 0, -1, RC_REL_SAME}},
        .wk = {{RC_GONE, -1, -1, true}, {RC_ON, 0, -1, false}},
        .wc = {{RC_C_KNOWN, 1}},
    },
    {
        /* the same while the open file was truncated (copy and truncate,
         * the copy not there yet): the open file is the one shrunk */
        .name = "a truncated open file keeps its inode from a stale closed one",
        .nk = 2,
        .nc = 1,
        .known = {READING(20, 199), REWRITTEN(20, 400)},
        .cand = {LIVE(20, 55)},
        .rel = {{0, 0, -1, RC_REL_TRUNCATED}, {1, 0, -1, RC_REL_TRUNCATED}},
        .wk = {{RC_GONE, -1, -1, true}, {RC_SHRUNK, 0, -1, false}},
        .wc = {{RC_C_KNOWN, 1}},
    },
    {
        /* copy and truncate with `rotate 1`: the new .1 made on the inode
         * of the old .1 (deleted, still being read, header only so far):
         * the copy of the truncated file is the truncated file's, whatever
         * the old .1's header-only fingerprint says */
        .name = "a copy on the inode of a file still being read is the copy's",
        .nk = 2,
        .nc = 2,
        .known = {READING(30, 55), REWRITTEN(20, 4436)},
        .cand = {ARCH(30, 4463), LIVE(20, 0)},
        .rel = {{0, 0, -1, RC_REL_SAME}, {1, 0, -1, RC_REL_COPY}, {1, 1, -1, RC_REL_TRUNCATED}},
        .wk = {{RC_GONE, -1, -1, true}, {RC_COPIED, 0, -1, false}},
        .wc = {{RC_C_KNOWN, 1}, {RC_C_LIVE_NEW, -1}},
    },
    {
        /* a finished archive copied elsewhere (another file system) is
         * known as done by its content, not read again */
        .name = "a finished file's copy is done, not new",
        .nk = 1,
        .nc = 1,
        .known = {DONE(10, 500)},
        .cand = {ARCH(50, 500)},
        .rel = {{0, 0, -1, RC_REL_COPY}},
        .wk = {{RC_COPIED, 0, -1, false}},
        .wc = {{RC_C_KNOWN, 0}},
    },
    {
        /* a copy of a finished file must be exactly its size: a longer
         * file starting alike is another file */
        .name = "a finished file's content in a longer file is not its copy",
        .nk = 1,
        .nc = 1,
        .known = {DONE(10, 500)},
        .cand = {ARCH(50, 501)},
        .rel = {{0, 0, -1, RC_REL_COPY}},
        .wk = {{RC_DONE_AWAY, -1, -1, false}},
        .wc = {{RC_C_NEW, -1}},
        .max_questions = 0,
    },
    {
        /* the file being read deleted (no copy): read on through its
         * descriptor, never gone */
        .name = "an open file without a name is read on",
        .nk = 1,
        .nc = 1,
        .known = {OPEN(20, 100)},
        .cand = {LIVE(21, 0)},
        .wk = {{RC_OPEN, -1, -1, false}},
        .wc = {{RC_C_LIVE_NEW, -1}},
    },
    {
        /* move-to's copy just created, nothing in it yet: looked at again,
         * not read as new */
        .name = "a copy being made (empty) waits",
        .nk = 1,
        .nc = 2,
        .known = {OPEN(20, 300)},
        .cand = {ARCH(30, 0), LIVE(20, 3000)},
        .rel = {{0, 1, -1, RC_REL_SAME}},
        .wk = {{RC_ON, 1, -1, false}},
        .wc = {{RC_C_WAIT, -1}, {RC_C_KNOWN, 0}},
    },
    {
        .name = "a copy being made (the header so far) waits",
        .nk = 1,
        .nc = 2,
        .known = {OPEN(20, 300)},
        .cand = {ARCH(30, 40), LIVE(20, 3000)},
        .rel = {{0, 1, -1, RC_REL_SAME}, {0, 0, 1, RC_REL_PREFIX}},
        .wk = {{RC_ON, 1, -1, false}},
        .wc = {{RC_C_WAIT, -1}, {RC_C_KNOWN, 0}},
    },
    {
        /* still too short to tell a minute after the first look: read (a
         * repeat at worst) */
        .name = "a file too short to tell for a minute is read",
        .nk = 1,
        .nc = 2,
        .known = {OPEN(20, 300)},
        .cand = {{.dev = 1, .ino = 30, .size = 40, .mtime_s = NOW - 10, .waiting_since = NOW - 61},
                 LIVE(20, 3000)},
        .rel = {{0, 1, -1, RC_REL_SAME}, {0, 0, 1, RC_REL_PREFIX}},
        .wk = {{RC_ON, 1, -1, false}},
        .wc = {{RC_C_NEW, -1}, {RC_C_KNOWN, 0}},
    },
    {
        /* its copy is there but unreadable for now: owed, not gone, and
         * the copy waits rather than be read as new */
        .name = "a copy that cannot be read yet",
        .nk = 1,
        .nc = 1,
        .known = {READING(20, 300)},
        .cand = {ARCH(30, 900)},
        .rel = {{0, 0, -1, RC_REL_PREFIX}},
        .wk = {{RC_OWED, -1, -1, false}},
        .wc = {{RC_C_WAIT, -1}},
    },
    {
        /* a blocked file keeps its place on its inode */
        .name = "blocked on its inode",
        .nk = 1,
        .nc = 1,
        .known = {READING(20, 100)},
        .cand = {ARCH(20, 900)},
        .rel = {{0, 0, -1, RC_REL_BLOCKED}},
        .wk = {{RC_BLOCKED, 0, -1, false}},
        .wc = {{RC_C_KNOWN, 0}},
    },
};

static void run_case(const struct rc_case *c)
{
        struct ctx x = {.c = c};
        struct rc_cand cand[MAXC];
        for (size_t k = 0; k < c->nc; k++) {
                cand[k] = c->cand[k];
                cand[k].mtime_ns = cand[k].mtime_s * 1000000000;
        }
        struct rc_input in = {
            .known = c->known,
            .nknown = c->nk,
            .cand = cand,
            .ncand = c->nc,
            .relate = relate,
            .ctx = &x,
            .look_failed = c->look_failed,
            .source_known = !c->unknown_source,
            .watermark = NOW,
            .now = NOW,
            .watching_since_ns = (NOW - 5) * (int64_t)1000000000,
        };
        struct rc_kout ko[MAXK];
        struct rc_cout co[MAXC];
        rc_plan(&in, ko, co);
        int before = test_state_.failed;
        for (size_t i = 0; i < c->nk; i++) {
                CHECK_EQ_STR(rc_fate_name(ko[i].fate), rc_fate_name(c->wk[i].fate));
                CHECK_EQ_INT(ko[i].cand, c->wk[i].cand);
                CHECK_EQ_INT(ko[i].copy, c->wk[i].copy);
                CHECK_EQ_INT(ko[i].release, c->wk[i].release);
        }
        for (size_t k = 0; k < c->nc; k++) {
                CHECK_EQ_STR(rc_cfate_name(co[k].fate), rc_cfate_name(c->wc[k].fate));
                if (c->wc[k].fate == RC_C_KNOWN || c->wc[k].fate == RC_C_COPY_OF)
                        CHECK_EQ_INT(co[k].known, c->wc[k].known);
        }
        if (c->max_questions < 0)
                CHECK_EQ_INT(x.questions, 0);
        if (test_state_.failed != before)
                fprintf(stderr, "  in case: %s\n", c->name);
}

/* Each known file on one candidate at most, each candidate claimed once:
 * over random situations and random answers. */
static void invariants(void)
{
        unsigned seed = 12345;
        for (int round = 0; round < 20000; round++) {
                struct rc_case c = {.name = "random"};
                seed = seed * 1103515245u + 12345u;
                c.nk = (seed >> 8) % MAXK;
                seed = seed * 1103515245u + 12345u;
                c.nc = (seed >> 8) % MAXC;
                for (size_t i = 0; i < c.nk; i++) {
                        seed = seed * 1103515245u + 12345u;
                        c.known[i] = (struct rc_known){.dev = 1,
                                                       .ino = 10 + (seed >> 8) % 4,
                                                       .copy_min = (seed >> 12) % 3 * 100,
                                                       .finished = (seed >> 16) & 1,
                                                       .open = (seed >> 17) & 1,
                                                       .rewritten = (seed >> 18) & 1};
                        c.known[i].copy_exact = c.known[i].finished;
                }
                for (size_t k = 0; k < c.nc; k++) {
                        seed = seed * 1103515245u + 12345u;
                        c.cand[k] = (struct rc_cand){.dev = 1,
                                                     .ino = 10 + (seed >> 8) % 6,
                                                     .size = (seed >> 12) % 3 * 100,
                                                     .mtime_s = NOW - (seed >> 14) % 600,
                                                     .live = k == c.nc - 1};
                }
                for (size_t r = 0; r < MAXR; r++) {
                        seed = seed * 1103515245u + 12345u;
                        c.rel[r] =
                            (struct rel_row){(int)((seed >> 8) % MAXK), (int)((seed >> 11) % MAXC),
                                             -1, (enum rc_rel)((seed >> 14) % 5)};
                }
                c.look_failed = (seed >> 20) & 1;
                struct ctx x = {.c = &c};
                struct rc_input in = {.known = c.known,
                                      .nknown = c.nk,
                                      .cand = c.cand,
                                      .ncand = c.nc,
                                      .relate = relate,
                                      .ctx = &x,
                                      .look_failed = c.look_failed,
                                      .source_known = true,
                                      .watermark = NOW,
                                      .now = NOW};
                struct rc_kout ko[MAXK];
                struct rc_cout co[MAXC];
                rc_plan(&in, ko, co);
                int claims[MAXC] = {0};
                for (size_t i = 0; i < c.nk; i++) {
                        CHECK(ko[i].fate != RC_UNDECIDED);
                        if (ko[i].cand >= 0) {
                                CHECK(ko[i].cand < (long)c.nc);
                                claims[ko[i].cand]++;
                                CHECK(co[ko[i].cand].fate == RC_C_KNOWN &&
                                      co[ko[i].cand].known == (long)i);
                        }
                        /* an open file is never gone, owed or away */
                        if (c.known[i].open)
                                CHECK(ko[i].fate != RC_GONE && ko[i].fate != RC_OWED &&
                                      ko[i].fate != RC_DONE_AWAY);
                        /* not seen is not gone while a look failed */
                        if (c.look_failed)
                                CHECK(ko[i].fate != RC_GONE);
                }
                for (size_t k = 0; k < c.nc; k++) {
                        CHECK(claims[k] <= 1);
                        CHECK(co[k].fate != RC_C_UNDECIDED);
                        if (co[k].fate == RC_C_KNOWN)
                                CHECK(co[k].known >= 0 && ko[co[k].known].cand == (long)k);
                        if (co[k].fate == RC_C_COPY_OF && co[k].known >= 0)
                                CHECK(ko[co[k].known].copy == (long)k);
                }
        }
}

static void table(void)
{
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
                run_case(&cases[i]);
}

TEST_MAIN_BEGIN

int main(void)
{
        RUN(table);
        RUN(invariants);
        TEST_MAIN_END;
}
