/* A source's look: what is on disk (scan.c), what it is (reconcile.h), and
 * the plan carried out on the queue and the offsets table. The same code
 * runs at the start and at every later look. */
#include "tailer_int.h"

#include "reconcile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Whether candidate c holds f's last bytes read where f had them. */
static bool holds_tail(const struct tfile *f, const struct candidate *c)
{
        if (!f->tail_len)
                return true;
        if (c->size < f->tail_end)
                return false;
        int fd = open(c->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return false;
        unsigned char now[sizeof f->tail];
        bool ok = pread_all(fd, now, f->tail_len, f->tail_end - f->tail_len) &&
                  memcmp(now, f->tail, f->tail_len) == 0;
        close(fd);
        return ok;
}

struct match_saved saved_of_entry(const struct state_entry *e)
{
        struct match_saved m = {
            .id = {e->dev, e->ino, e->fp, e->fp_len}, .offset = e->offset, .finished = e->finished};
        return m;
}

/* Queue candidate c, a file never read, from 0. Unreadable, it is queued
 * all the same: owed, and tried again until it opens. */
static struct tfile *queue_new_cand(struct tailer *t, struct tsource *s, struct candidate *c)
{
        int fp = cand_fingerprint(c);
        struct file_id id = c->id;
        if (fp < 0)
                id = (struct file_id){c->dev, c->ino, 0, 0};
        struct state_entry *e = entry_for_new(t, s, &id, c->path, 0);
        struct tfile *f = tfile_from_cand(s, c, &id, 0, e);
        if (!f)
                return NULL;
        if (fp < 0) {
                f->verified = false;
                owed_fail(&f->owed, c->fp_errno, f->path, s->name, time(NULL), t->log);
        }
        return f;
}

/* A known file: followed (f) or only in the table (e). */
struct kref {
        struct tfile *f;
        struct state_entry *e;
};

struct look {
        struct tailer *t;
        struct tsource *s;
        struct cand_list cl;
        struct kref *refs;
        struct rc_known *known;
        size_t nk;
        int list_err;
};

static uint64_t tfile_read_end(const struct tfile *f)
{
        return f->tail_end > f->acked ? f->tail_end : f->acked;
}

static enum rc_rel rel_of_match(enum match_kind m)
{
        switch (m) {
        case MATCH_SAME:
                return RC_REL_SAME;
        case MATCH_TRUNCATED:
                return RC_REL_TRUNCATED;
        case MATCH_COPIED:
                return RC_REL_COPY;
        case MATCH_BLOCKED:
                return RC_REL_BLOCKED;
        default:
                return RC_REL_NONE;
        }
}

/* Whether the open file f no longer holds what was read from it: its
 * fingerprinted first bytes gone or other, shorter than what was read, or
 * other bytes where the last ones read were (copy and truncate, then
 * written again). */
static bool rewritten_now(const struct tfile *f)
{
        if (f->fd < 0)
                return false;
        /* its first bytes first: a file truncated and written again from
         * the same header (copy and truncate before its records were read)
         * keeps the bytes read so far */
        enum identity_match m = identity_compare(&f->id, f->fd);
        if (m == IDENTITY_TRUNCATED || m == IDENTITY_INODE_REUSED)
                return true;
        struct stat st;
        if (!f->tail_len || fstat(f->fd, &st) < 0)
                return false;
        if ((uint64_t)st.st_size < f->tail_end)
                return true;
        unsigned char now[sizeof f->tail];
        return !pread_all(f->fd, now, f->tail_len, f->tail_end - f->tail_len) ||
               memcmp(now, f->tail, f->tail_len) != 0;
}

/* Whether candidate c exists but cannot be read now (mode 000, say): it
 * may be a copy of a known file, to be told once it can be read. */
static bool unreadable_now(struct candidate *c)
{
        return cand_fingerprint(c) < 0 && c->fp_errno != ENOENT;
}

/* The reconciler's questions, answered from the disk. */
static enum rc_rel relate(void *ctx, size_t i, size_t k, long on)
{
        struct look *lk = ctx;
        struct candidate *c = &lk->cl.v[k];
        if (i == RC_NO_KNOWN)
                return cands_relate(&lk->cl.v[on], c);
        const struct kref *r = &lk->refs[i];
        if (on >= 0) {
                /* a copy of a file still present: compared with what is
                 * open when it is open (its name may lead elsewhere now) */
                if (r->f && r->f->fd >= 0 && !r->f->rewritten) {
                        /* rewritten since this look began (copy and
                         * truncate under way): the next look tells */
                        if (rewritten_now(r->f))
                                return RC_REL_PREFIX;
                        enum rc_rel rr = fd_cand_relate(r->f->fd, c);
                        return rr == RC_REL_NONE && rewritten_now(r->f) ? RC_REL_PREFIX : rr;
                }
                return cands_relate(&lk->cl.v[on], c);
        }
        if (r->f) {
                struct tfile *f = r->f;
                bool same = f->id.ino == c->ino && f->id.dev == c->dev;
                if (f->fd >= 0) {
                        if (same)
                                return f->rewritten ? RC_REL_TRUNCATED : RC_REL_SAME;
                        if (!f->rewritten) {
                                if (rewritten_now(f))
                                        return RC_REL_PREFIX;
                                enum rc_rel rr = fd_cand_relate(f->fd, c);
                                return rr == RC_REL_NONE && rewritten_now(f) ? RC_REL_PREFIX : rr;
                        }
                } else if (same && f->id.fp_len == 0) {
                        /* never read: nothing to tell apart, nothing to lose
                         * (a file read before and unreadable since is told by
                         * its fingerprint: its inode may be a new file's) */
                        return cand_fingerprint(c) < 0 ? RC_REL_BLOCKED : RC_REL_SAME;
                }
                if (!same && unreadable_now(c))
                        return RC_REL_PREFIX;
                struct match_saved sv = {
                    .id = f->id, .offset = tfile_read_end(f), .finished = false};
                enum rc_rel rl = rel_of_match(match_saved(&sv, c));
                if (rl == RC_REL_COPY && !holds_tail(f, c))
                        rl = RC_REL_NONE;
                return rl;
        }
        struct match_saved sv = saved_of_entry(r->e);
        bool same = sv.id.ino == c->ino && sv.id.dev == c->dev;
        /* Known by its inode alone, nothing read: nothing to tell apart.
         * A finished one (an empty file rotated) never grows: match_saved
         * tells it from a new file on its inode by the size. */
        if (sv.id.fp_len == 0 && same && !sv.finished)
                return cand_fingerprint(c) < 0 ? RC_REL_BLOCKED : RC_REL_SAME;
        if (!same && !sv.finished && unreadable_now(c))
                return RC_REL_PREFIX;
        return rel_of_match(match_saved(&sv, c));
}

static bool entry_held(const struct tsource *s, const struct state_entry *e)
{
        for (const struct tfile *f = s->queue; f; f = f->next) {
                if (f->entry == e)
                        return true;
        }
        return false;
}

/* The newest time this source recorded anything. */
static int64_t source_watermark(struct tailer *t, const struct tsource *s, bool *known)
{
        int64_t w = 0;
        *known = false;
        for (size_t i = 0; i < state_count(t->state); i++) {
                const struct state_entry *e = state_at(t->state, i);
                if (strcmp(e->source, s->name) != 0)
                        continue;
                *known = true;
                if (e->seen > w)
                        w = e->seen;
        }
        if (s->queue)
                *known = true;
        return w;
}

/* A source watched before any file of it existed is marked by an entry of
 * no file (finished at 0, no inode, no fingerprint): files written since
 * are its own, not history, even across a restart. */
static bool is_marker(const struct state_entry *e)
{
        return e->finished && e->ino == 0 && e->fp_len == 0 && e->offset == 0;
}

static void mark_watched(struct tailer *t, struct tsource *s, time_t now)
{
        for (size_t i = 0; i < state_count(t->state); i++) {
                if (strcmp(state_at(t->state, i)->source, s->name) == 0)
                        return;
        }
        struct file_id none = {0, 0, 0, 0};
        struct state_entry *e = entry_for_new(t, s, &none, s->path, 0);
        if (e)
                state_mark_finished(e, 0, now);
}

static int look_known(struct look *lk)
{
        struct tailer *t = lk->t;
        struct tsource *s = lk->s;
        size_t n = 0;
        for (struct tfile *f = s->queue; f; f = f->next)
                n++;
        for (size_t i = 0; i < state_count(t->state); i++)
                n += strcmp(state_at(t->state, i)->source, s->name) == 0;
        lk->refs = calloc(n ? n : 1, sizeof *lk->refs);
        lk->known = calloc(n ? n : 1, sizeof *lk->known);
        if (!lk->refs || !lk->known)
                return -1;
        for (struct tfile *f = s->queue; f; f = f->next) {
                if (!f->rewritten && rewritten_now(f))
                        f->rewritten = true;
                lk->refs[lk->nk] = (struct kref){f, f->entry};
                lk->known[lk->nk++] = (struct rc_known){
                    .dev = f->id.dev,
                    .ino = f->id.ino,
                    .copy_min = tfile_read_end(f),
                    .open = f->fd >= 0,
                    .rewritten = f->rewritten,
                };
        }
        for (size_t i = 0; i < state_count(t->state); i++) {
                struct state_entry *e = state_at(t->state, i);
                if (strcmp(e->source, s->name) != 0 || entry_held(s, e))
                        continue;
                if (is_marker(e))
                        continue;
                lk->refs[lk->nk] = (struct kref){NULL, e};
                lk->known[lk->nk++] = (struct rc_known){
                    .dev = e->dev,
                    .ino = e->ino,
                    .copy_min = e->offset,
                    .copy_exact = e->finished,
                    .finished = e->finished,
                };
        }
        return 0;
}

/* The live file stopped being live: renamed away, deleted or replaced. */
static void mark_rotated(struct tailer *t, struct tsource *s, struct tfile *f, const char *how)
{
        char b[512];
        f->live = false;
        f->rotated_at = time(NULL);
        if (s->live == f)
                s->live = NULL;
        log_info(t->log, "rotated file=%s source=%s how=%s", q(b, sizeof b, f->path), s->name, how);
}

/* Follow the file at the live path, never seen before. One that cannot be
 * opened is owed all the same: it is tracked (by its inode) and read once
 * it opens, wherever a rotation has put it by then. */
static struct tfile *adopt_live(struct tailer *t, struct tsource *s, struct candidate *c,
                                bool first_run)
{
        char b[512];
        time_t now = time(NULL);
        int fd = open(c->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        struct stat st;
        struct file_id id = {c->dev, c->ino, 0, 0};
        int err = 0;
        if (fd < 0) {
                err = errno;
        } else if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || identity_of_fd(fd, &id) < 0) {
                err = errno ? errno : OWED_NOT_REGULAR;
                close(fd);
                fd = -1;
                id = (struct file_id){c->dev, c->ino, 0, 0};
        }
        uint64_t start = 0;
        if (fd >= 0 && first_run && s->start_at_end)
                start = last_line_end(fd, (uint64_t)st.st_size);
        struct state_entry *e = entry_for_new(t, s, &id, c->path, start);
        /* Without an entry (the table full of owed files) it is read all
         * the same; its offset is then not saved (status says so). */
        struct tfile *f = tfile_new(s, fd, &id, c->path, start, e);
        if (!f) {
                if (e)
                        entry_forget(t, e);
                if (fd >= 0)
                        close(fd);
                return NULL;
        }
        f->live = true;
        f->size = c->size;
        f->mtime = c->mtime;
        f->want_end = fd < 0 && first_run && s->start_at_end;
        if (fd < 0) {
                f->verified = false;
                owed_fail(&f->owed, err, f->path, s->name, now, t->log);
        }
        log_info(t->log, "following file=%s source=%s offset=%llu", q(b, sizeof b, c->path),
                 s->name, (unsigned long long)start);
        return f;
}

/* Point the open file f at its copy c: a copy-and-truncate left f's records
 * only there. Reading goes on where it was, acknowledgements in flight
 * still count. */
static int move_to_copy(struct tailer *t, struct tfile *f, struct candidate *c)
{
        int fd = open(c->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        struct stat st;
        if (fd < 0)
                return -1;
        if (fstat(fd, &st) < 0 || (uint64_t)st.st_ino != c->ino || (uint64_t)st.st_dev != c->dev) {
                close(fd);
                return -1;
        }
        if (f->fd >= 0)
                close(f->fd);
        f->fd = fd;
        return 0;
}

struct source_ctx {
        struct tfile **fresh; /* new rotated files, in reading order */
        size_t nfresh;
        struct tfile *fresh_live;
};

/* Follow the table's entry e (not followed yet) on candidate c, from its
 * offset: a file found again at the start or after a look that could not
 * see it. */
static struct tfile *resume_entry(struct look *lk, size_t i, struct state_entry *e,
                                  const struct candidate *c, const char *how)
{
        char b[512];
        struct file_id id = {c->dev, c->ino, e->fp, e->fp_len};
        struct tfile *f = tfile_from_cand(lk->s, c, &id, e->offset, e);
        if (!f)
                return NULL;
        f->rotated_at = time(NULL) - TAILER_ROTATE_GRACE_S;
        lk->refs[i].f = f;
        f->fresh = true;
        log_info(lk->t->log, "resuming file=%s source=%s offset=%llu%s", q(b, sizeof b, c->path),
                 lk->s->name, (unsigned long long)e->offset, how);
        return f;
}

static void apply_known(struct look *lk, const struct rc_kout *ko, size_t i)
{
        struct tailer *t = lk->t;
        struct tsource *s = lk->s;
        struct tfile *f = lk->refs[i].f;
        struct state_entry *e = f ? f->entry : lk->refs[i].e;
        struct candidate *c = ko->cand >= 0 ? &lk->cl.v[ko->cand] : NULL;
        time_t now = time(NULL);
        char b[512], b2[512];
        /* ko->release was carried out before any plan was applied */
        switch (ko->fate) {
        case RC_ON:
        case RC_BLOCKED:
        case RC_SHRUNK:
                if (!f) {
                        if (e->finished) {
                                if (strcmp(e->path, c->path) != 0 &&
                                    state_set_path(t->state, e, c->path, NULL) == 0)
                                        t->dirty = true;
                                return;
                        }
                        f = resume_entry(lk, i, e, c, "");
                        if (!f)
                                return;
                }
                tfile_set_path(t, f, c->path);
                if (f->entry && strcmp(f->entry->path, c->path) != 0 &&
                    state_set_path(t->state, f->entry, c->path, NULL) == 0)
                        t->dirty = true;
                if (ko->fate == RC_BLOCKED) {
                        f->verified = false;
                        owed_fail(&f->owed, c->fp_errno, f->path, s->name, now, t->log);
                }
                if (ko->fate == RC_SHRUNK && !(f->fd >= 0 && f->rewritten)) {
                        /* shrunk while closed (or while stopped): from 0 */
                        log_warn(t->log,
                                 "file shrank, reading it again from 0 file=%s offset=%llu "
                                 "size=%llu",
                                 q(b, sizeof b, c->path), (unsigned long long)f->acked,
                                 (unsigned long long)c->size);
                        tfile_restart(t, f, &(struct file_id){c->dev, c->ino, 0, 0});
                        f->verified = false; /* checked when opened */
                }
                if (f->fresh) {
                        /* placed with this look's new files */
                } else if (c->live && !f->live) {
                        f->live = true;
                        f->rotated_at = 0;
                        f->lazy = false;
                        s->live = f;
                } else if (!c->live && f->live) {
                        mark_rotated(t, s, f, "renamed");
                }
                return;
        case RC_COPIED:
                if (e) {
                        entry_take_inode(t, e, c->dev, c->ino);
                        /* named where it is now: a finished entry is pruned
                         * when its name no longer leads to its inode */
                        if (strcmp(e->path, c->path) != 0 &&
                            state_set_path(t->state, e, c->path, NULL) == 0)
                                t->dirty = true;
                }
                if (!f) {
                        if (e->finished)
                                return;
                        resume_entry(lk, i, e, c, " (a copy)");
                        return;
                }
                log_info(t->log,
                         "reading the copy made before the truncation file=%s of=%s offset=%llu",
                         q(b, sizeof b, c->path), q(b2, sizeof b2, f->path),
                         (unsigned long long)tfile_read_end(f));
                if (f->fd >= 0 && move_to_copy(t, f, c) < 0) {
                        /* the copy went before it could be opened: as shrunk */
                        return;
                }
                f->id.dev = c->dev;
                f->id.ino = c->ino;
                f->rewritten = false;
                f->look_err = 0;
                f->size = c->size;
                f->mtime = c->mtime;
                tfile_set_path(t, f, c->path);
                if (f->live)
                        mark_rotated(t, s, f, "copied and truncated");
                t->requeued = true;
                return;
        case RC_OPEN:
                if (ko->copy >= 0) {
                        struct candidate *cp = &lk->cl.v[ko->copy];
                        if (!f->has_copy || f->copy_ino != cp->ino || f->copy_dev != cp->dev) {
                                log_info(t->log, "the file being read was copied file=%s copy=%s",
                                         q(b, sizeof b, f->path), q(b2, sizeof b2, cp->path));
                                f->has_copy = true;
                                f->copy_dev = cp->dev;
                                f->copy_ino = cp->ino;
                        }
                        tfile_set_path(t, f, cp->path);
                }
                if (f->live) {
                        struct stat st;
                        bool deleted = fstat(f->fd, &st) == 0 && st.st_nlink == 0;
                        mark_rotated(t, s, f, deleted ? "deleted" : "renamed");
                }
                return;
        case RC_OWED:
                if (!f) {
                        struct file_id id = {e->dev, e->ino, e->fp, e->fp_len};
                        f = tfile_new(s, -1, &id, e->path, e->offset, e);
                        if (!f)
                                return;
                        f->verified = false;
                        f->rotated_at = now - TAILER_ROTATE_GRACE_S;
                        f->lazy = true;
                        lk->refs[i].f = f;
                        f->fresh = true;
                        f->early = true;
                }
                if (f->live)
                        mark_rotated(t, s, f, "not seen");
                /* owed: looked for again when a look works */
                owed_fail(&f->owed,
                          lk->list_err ? lk->list_err
                          : ko->maybe  ? EACCES
                                       : ENOENT,
                          f->path, s->name, now, t->log);
                return;
        case RC_DONE_AWAY:
                return;
        case RC_GONE:
                if (f) {
                        if (f->live)
                                mark_rotated(t, s, f, "gone");
                        tfile_drop_gone(f);
                        lk->refs[i].f = NULL;
                        return;
                }
                report_gone(t, s->name, e->path, e->offset);
                entry_forget(t, e);
                return;
        default:
                return;
        }
}

static void record_history(struct tailer *t, struct tsource *s, struct candidate *c, time_t now)
{
        if (cand_fingerprint(c) < 0)
                return;
        struct state_entry *e = entry_for_new(t, s, &c->id, c->path, c->size);
        if (e)
                state_mark_finished(e, c->size, now);
}

/* Put the new files of this look in the queue: the ones rotated before
 * they were seen before the live file, in reading order, then a new live
 * file last. */
static void place_fresh(struct tailer *t, struct tsource *s, struct tfile **fresh, size_t n,
                        struct tfile *live)
{
        struct tfile **pp = &s->queue;
        /* files owed but not seen come first, then the rest by reading
         * order; they go before the live file */
        while (*pp && *pp != s->live)
                pp = &(*pp)->next;
        for (size_t k = 0; k < n; k++) {
                fresh[k]->next = *pp;
                *pp = fresh[k];
                pp = &fresh[k]->next;
        }
        if (n && s->live)
                t->requeued = true;
        if (live) {
                queue_append(s, live);
                s->live = live;
        }
}

int source_reconcile(struct tailer *t, struct tsource *s, bool start)
{
        char b[512];
        time_t now = time(NULL);
        struct look lk = {.t = t, .s = s};
        s->look_at = 0;
        cand_list_init(&lk.cl);
        int live_err = 0;
        int list_err = source_observe(t, s, &lk.cl, &live_err);
        lk.list_err = list_err;
        if (live_err)
                owed_fail(&s->live_owed, live_err, s->path, s->name, now, t->log);
        else if (s->live_owed.err)
                owed_clear(&s->live_owed, s->path, s->name, now, t->log);
        bool known;
        int64_t watermark = source_watermark(t, s, &known);
        struct rc_kout *kout = NULL;
        struct rc_cout *cout = NULL;
        struct tfile **fresh = NULL;
        int rc = -1;
        if (look_known(&lk) < 0)
                goto out;
        kout = calloc(lk.nk ? lk.nk : 1, sizeof *kout);
        cout = calloc(lk.cl.n ? lk.cl.n : 1, sizeof *cout);
        fresh = calloc(lk.nk + lk.cl.n + 1, sizeof *fresh);
        if (!kout || !cout || !fresh)
                goto out;
        struct rc_input in = {
            .known = lk.known,
            .nknown = lk.nk,
            .cand = NULL,
            .ncand = lk.cl.n,
            .relate = relate,
            .ctx = &lk,
            .look_failed = list_err != 0,
            .source_known = known,
            .watermark = watermark,
            .watching_since_ns = t->watching_since_ns,
            .now = (int64_t)now,
        };
        struct rc_cand *rcc = calloc(lk.cl.n ? lk.cl.n : 1, sizeof *rcc);
        if (!rcc)
                goto out;
        for (size_t k = 0; k < lk.cl.n; k++) {
                const struct candidate *c = &lk.cl.v[k];
                rcc[k] = (struct rc_cand){.dev = c->dev,
                                          .ino = c->ino,
                                          .size = c->size,
                                          .mtime_s = (int64_t)c->mtime.tv_sec,
                                          .mtime_ns = (int64_t)c->mtime.tv_sec * 1000000000 +
                                                      c->mtime.tv_nsec,
                                          .live = c->live};
                for (size_t w = 0; w < s->nwaiting; w++) {
                        if (s->waiting[w].dev == c->dev && s->waiting[w].ino == c->ino)
                                rcc[k].waiting_since = (int64_t)s->waiting[w].since;
                }
                /* more waited than the list holds: those left out have
                 * waited long enough (they are read, a repeat at worst) */
                if (!rcc[k].waiting_since && s->waiting_full)
                        rcc[k].waiting_since = (int64_t)now - RC_WAIT_S - 1;
        }
        in.cand = rcc;
        rc_plan(&in, kout, cout);
        /* remember the waiting ones (when they began to wait) */
        struct waiting w[sizeof s->waiting / sizeof s->waiting[0]];
        size_t nw = 0;
        for (size_t k = 0; k < lk.cl.n && nw < sizeof w / sizeof w[0]; k++) {
                if (cout[k].fate == RC_C_WAIT)
                        w[nw++] = (struct waiting){
                            rcc[k].dev, rcc[k].ino,
                            rcc[k].waiting_since ? (time_t)rcc[k].waiting_since : now};
        }
        size_t nwait = 0;
        for (size_t k = 0; k < lk.cl.n; k++)
                nwait += cout[k].fate == RC_C_WAIT;
        memcpy(s->waiting, w, nw * sizeof w[0]);
        s->nwaiting = nw;
        s->waiting_full = nwait > nw;
        free(rcc);
        /* what the look decided, for a debug log: the files that are not
         * simply where they were */
        for (size_t i = 0; i < lk.nk; i++) {
                const struct kref *r = &lk.refs[i];
                const char *p = r->f ? r->f->path : r->e->path;
                if (kout[i].fate == RC_DONE_AWAY || (kout[i].fate == RC_ON && kout[i].copy < 0 &&
                                                     strcmp(p, lk.cl.v[kout[i].cand].path) == 0))
                        continue;
                log_debug(t->log, "look source=%s file=%s followed=%d fate=%s on=%s copy=%s",
                          s->name, q(b, sizeof b, p), r->f != NULL, rc_fate_name(kout[i].fate),
                          kout[i].cand >= 0 ? lk.cl.v[kout[i].cand].path : "-",
                          kout[i].copy >= 0 ? lk.cl.v[kout[i].copy].path : "-");
        }
        for (size_t k = 0; k < lk.cl.n; k++)
                if (cout[k].fate != RC_C_KNOWN && cout[k].fate != RC_C_HISTORY)
                        log_debug(t->log, "look source=%s candidate=%s size=%llu is=%s", s->name,
                                  q(b, sizeof b, lk.cl.v[k].path),
                                  (unsigned long long)lk.cl.v[k].size, rc_cfate_name(cout[k].fate));

        /* Inodes released first, so that an identity taken below never
         * meets a stale holder. */
        for (size_t i = 0; i < lk.nk; i++) {
                if (kout[i].release)
                        tailer_release_inode(t, lk.refs[i].f ? lk.refs[i].f->entry : lk.refs[i].e,
                                             lk.refs[i].f, TAILER_INODE_REUSED);
        }
        for (size_t i = 0; i < lk.nk; i++)
                apply_known(&lk, &kout[i], i);

        size_t nf = 0;
        /* files owed and not seen first (their place is unknown: the
         * oldest), then every file of this look in reading order */
        for (size_t i = 0; i < lk.nk; i++) {
                struct tfile *f = lk.refs[i].f;
                if (f && f->fresh && f->early)
                        fresh[nf++] = f;
        }
        struct tfile *new_live = NULL;
        for (size_t k = 0; k < lk.cl.n; k++) {
                struct candidate *c = &lk.cl.v[k];
                long i = cout[k].known;
                struct tfile *f = NULL;
                switch (cout[k].fate) {
                case RC_C_KNOWN:
                        f = lk.refs[i].f;
                        if (f && f->fresh && !f->early) {
                                if (c->live && !f->live) {
                                        f->live = true;
                                        f->lazy = false;
                                        f->rotated_at = 0;
                                }
                                if (f->live) {
                                        tfile_open(f);
                                        new_live = f;
                                } else {
                                        fresh[nf++] = f;
                                }
                        }
                        break;
                case RC_C_COPY_OF:
                        break;
                case RC_C_WAIT:
                        /* a copy being made, or a file not yet written:
                         * looked at again (no event may come) */
                        s->look_at = now + 1;
                        break;
                case RC_C_NEW:
                        f = queue_new_cand(t, s, c);
                        if (!f)
                                break;
                        f->rotated_at = now - (start ? TAILER_ROTATE_GRACE_S : 0);
                        fresh[nf++] = f;
                        if (start)
                                log_info(t->log,
                                         "reading file rotated while stopped file=%s "
                                         "source=%s",
                                         q(b, sizeof b, f->path), s->name);
                        else
                                log_warn(t->log,
                                         "reading a file rotated before it was seen file=%s "
                                         "source=%s",
                                         q(b, sizeof b, f->path), s->name);
                        break;
                case RC_C_HISTORY:
                        /* Before the source was ever read, what is there is
                         * history. A recent one is recorded as done: a later
                         * start, the source known by then, would take it for
                         * a file rotated while stopped. */
                        if (!known && c->mtime.tv_sec >= now - RC_MARGIN_S - 1)
                                record_history(t, s, c, now);
                        break;
                case RC_C_LIVE_NEW:
                        if (s->live && s->live->live)
                                mark_rotated(t, s, s->live, "replaced");
                        new_live = adopt_live(t, s, c, !known);
                        break;
                default:
                        break;
                }
        }
        for (size_t i = 0; i < lk.nk; i++) {
                if (lk.refs[i].f) {
                        lk.refs[i].f->fresh = false;
                        lk.refs[i].f->early = false;
                }
        }
        if (s->live && !s->live->live)
                s->live = NULL;
        place_fresh(t, s, fresh, nf, new_live && new_live != s->live ? new_live : NULL);
        if (new_live)
                s->live = new_live;

        time_t now2 = time(NULL);
        if (!known)
                mark_watched(t, s, now2);
        const char *dir = s->archive_dir ? s->archive_dir : s->dir;
        if (list_err) {
                owed_note(&s->list_owed, list_err, now2);
        } else if (s->list_owed.err) {
                log_info(t->log,
                         "directory listed again directory=%s source=%s error_was=\"%s\" "
                         "lasted=%llds",
                         q(b, sizeof b, dir), s->name, owed_reason(s->list_owed.err),
                         (long long)(now2 - s->list_owed.since));
                s->list_owed = (struct owed){0};
        }
        rc = list_err;
out:
        free(kout);
        free(cout);
        free(fresh);
        free(lk.refs);
        free(lk.known);
        cand_list_free(&lk.cl);
        return rc;
}
