#include "tailer_int.h"

#include "watch.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* File times come from the kernel's coarse clock, a tick behind the real
 * one: a file written just after the watches were armed may carry a time
 * this much before. */
#define WATCH_CLOCK_SLACK_NS (20 * 1000 * 1000)

/* While a watched directory is missing, look for it again this often. */
#define REWATCH_S 5

static char *xstrdup(const char *s)
{
        return s ? strdup(s) : NULL;
}

static int arm_watch(struct tailer *t, struct tsource *s)
{
        /* The archive directory only wakes the daemon up (a writer still
         * appending to a rotated file, a chmod of an owed file); losing it
         * loses no record, since rotated files are read to their end before
         * they are released. */
        if (s->archive_dir && s->archive_wd < 0 &&
            watch_add_dir(t->watch, s->archive_dir, &s->archive_wd) < 0)
                s->archive_wd = -1;
        if (watch_add_dir(t->watch, s->dir, &s->wd) < 0) {
                char b[512];
                log_error(t->log, "cannot watch directory=%s error=\"%s\"", q(b, sizeof b, s->dir),
                          watch_error(t->watch));
                s->wd = -1;
                t->rewatch = true;
                t->rewatch_at = time(NULL) + REWATCH_S;
                return -1;
        }
        return 0;
}

static int source_init(struct tsource *s, const struct tailer_source_cfg *cfg)
{
        s->name = xstrdup(cfg->name);
        s->path = xstrdup(cfg->path);
        s->archive_dir = xstrdup(cfg->archive_dir);
        s->start_at_end = cfg->start_at_end;
        s->wd = -1;
        s->archive_wd = -1;
        char *d = xstrdup(cfg->path), *b = xstrdup(cfg->path);
        if (!s->name || !s->path || !d || !b || (cfg->archive_dir && !s->archive_dir)) {
                free(d);
                free(b);
                return -1;
        }
        s->dir = strdup(dirname(d));
        s->base = strdup(basename(b));
        free(d);
        free(b);
        if (!s->dir || !s->base)
                return -1;
        /* bounces.csv rotates to bounces-YYYY-MM-DD-NNNN.csv (archive.h) */
        const char *dot = strrchr(s->base, '.');
        size_t stem = dot && dot != s->base ? (size_t)(dot - s->base) : strlen(s->base);
        s->stem = strndup(s->base, stem);
        return s->stem ? 0 : -1;
}

static void source_free(struct tsource *s)
{
        for (struct tfile *f = s->queue, *next; f; f = next) {
                next = f->next;
                tfile_free(f);
        }
        free(s->name);
        free(s->path);
        free(s->dir);
        free(s->base);
        free(s->stem);
        free(s->archive_dir);
}

int tailer_open(struct tailer **out, const struct tailer_source_cfg *src, size_t nsrc,
                const char *state_dir, unsigned state_flags, const struct logger *log, char *err,
                size_t errlen)
{
        *out = NULL;
        struct tailer *t = calloc(1, sizeof *t);
        if (!t || !(t->src = calloc(nsrc ? nsrc : 1, sizeof *t->src))) {
                free(t);
                snprintf(err, errlen, "out of memory");
                return -1;
        }
        t->log = log;
        t->nsrc = nsrc;
        struct state_error serr;
        if (state_open(&t->state, state_dir, state_flags, &serr) < 0) {
                if (serr.kind == STATE_E_CORRUPT)
                        snprintf(err, errlen,
                                 "%s; move it aside to start again (offsets it held are "
                                 "forgotten) or restore it",
                                 serr.msg);
                else
                        snprintf(err, errlen, "%s", serr.msg);
                free(t->src);
                free(t);
                return -1;
        }
        if (serr.notes)
                log_warn(log, "%s", serr.note);
        if (watch_open(&t->watch) < 0) {
                snprintf(err, errlen,
                         "cannot create an inotify instance: %s (raise "
                         "fs.inotify.max_user_instances?)",
                         errno == EMFILE || errno == ENFILE ? owed_reason(errno) : strerror(errno));
                goto fail;
        }
        for (size_t i = 0; i < nsrc; i++) {
                t->src[i].t = t;
                if (source_init(&t->src[i], &src[i]) < 0) {
                        snprintf(err, errlen, "out of memory");
                        goto fail;
                }
        }
        /* Watches first, so nothing that happens while we look is missed. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        t->watching_since_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - WATCH_CLOCK_SLACK_NS;
        for (size_t i = 0; i < nsrc; i++)
                arm_watch(t, &t->src[i]);
        /* Finished entries go by age only: one whose file was moved where
         * we cannot see must still be recognised if it comes back. */
        tailer_keep_newest(t);
        state_prune(t->state, time(NULL), TAILER_RETENTION_S, NULL, NULL);
        for (size_t i = 0; i < nsrc; i++) {
                if (source_reconcile(t, &t->src[i], true) < 0) {
                        snprintf(err, errlen, "out of memory");
                        goto fail;
                }
        }
        t->dirty = true;
        if (tailer_commit(t) < 0) {
                snprintf(err, errlen, "cannot save offsets in %s", state_dir);
                goto fail;
        }
        *out = t;
        return 0;
fail:
        tailer_close(t);
        return -1;
}

void tailer_close(struct tailer *t)
{
        if (!t)
                return;
        if (t->state)
                tailer_commit(t);
        for (size_t i = 0; i < t->nsrc; i++)
                source_free(&t->src[i]);
        for (struct tfile *f = t->zombies, *next; f; f = next) {
                next = f->next;
                tfile_free(f);
        }
        free(t->src);
        watch_close(t->watch);
        state_close(t->state);
        free(t);
}

int tailer_fd(const struct tailer *t)
{
        return watch_fd(t->watch);
}

struct ev_ctx {
        struct tailer *t;
        bool overflow;
};

/* A chmod (IN_ATTRIB) in a source's directories: its owed files are tried
 * again at once. */
static void retry_owed(struct tsource *s)
{
        for (struct tfile *f = s->queue; f; f = f->next)
                owed_retry_now(&f->owed);
        owed_retry_now(&s->live_owed);
        owed_retry_now(&s->list_owed);
}

static void on_watch_event(void *ctx, const struct watch_event *ev)
{
        struct ev_ctx *c = ctx;
        struct tailer *t = c->t;
        if (ev->kind == WATCH_EVENT_OVERFLOW) {
                c->overflow = true;
                return;
        }
        for (size_t i = 0; i < t->nsrc; i++) {
                struct tsource *s = &t->src[i];
                bool mine = ev->wd == s->wd || ev->wd == s->archive_wd;
                if (mine && (ev->mask & IN_ATTRIB))
                        retry_owed(s);
                /* A file of the source came, went or changed its mode: a
                 * look, once the events read together are taken in. */
                /* (A writer closing the live file is not: it may do so for
                 * every record. A copy being closed is: it is complete.) */
                if (mine && !(ev->mask & IN_MODIFY) && ev->name[0] &&
                    ((strcmp(ev->name, s->base) == 0 && !(ev->mask & IN_CLOSE_WRITE)) ||
                     source_is_rotated_name(s, ev->name)))
                        s->look = true;
                if (s->wd != ev->wd)
                        continue;
                if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
                        char b[512];
                        log_error(t->log, "watched directory gone directory=%s source=%s",
                                  q(b, sizeof b, s->dir), s->name);
                        if (ev->mask & IN_IGNORED)
                                s->wd = -1;
                        else
                                watch_remove(t->watch, s->wd), s->wd = -1;
                        t->rewatch = true;
                        t->rewatch_at = time(NULL) + REWATCH_S;
                        s->look = true;
                }
        }
}

int tailer_handle_events(struct tailer *t)
{
        struct ev_ctx c = {.t = t};
        if (watch_read(t->watch, on_watch_event, &c) < 0) {
                log_error(t->log, "inotify: %s", watch_error(t->watch));
                return -1;
        }
        if (c.overflow) {
                log_warn(t->log, "inotify queue overflowed: checking every file again");
                tailer_rescan(t);
        }
        for (size_t i = 0; i < t->nsrc; i++) {
                if (t->src[i].look) {
                        t->src[i].look = false;
                        source_reconcile(t, &t->src[i], false);
                }
        }
        return 0;
}

void tailer_rescan(struct tailer *t)
{
        for (size_t i = 0; i < t->nsrc; i++) {
                t->src[i].look = false;
                source_reconcile(t, &t->src[i], false);
        }
}

static void earliest(time_t *when, time_t w)
{
        if (w && (!*when || w < *when))
                *when = w;
}

int tailer_deadline_ms(const struct tailer *t)
{
        time_t now = time(NULL), when = 0;
        if (t->rewatch)
                when = t->rewatch_at;
        for (size_t i = 0; i < t->nsrc; i++) {
                const struct tsource *s = &t->src[i];
                if (s->live_owed.err && !s->live)
                        earliest(&when, s->live_owed.retry_at);
                if (s->list_owed.err)
                        earliest(&when, s->list_owed.retry_at);
                earliest(&when, s->look_at);
                for (struct tfile *f = s->queue; f; f = f->next) {
                        if (f->owed.err)
                                earliest(&when, f->owed.retry_at);
                        if (f->look_err)
                                earliest(&when, f->look_at);
                        if (f->live || f->drained || f->owed.err)
                                continue;
                        earliest(&when, tfile_final_at(f));
                }
        }
        if (!when)
                return -1;
        return when <= now ? 0 : (int)(when - now) * 1000;
}

void tailer_tick(struct tailer *t)
{
        time_t now = time(NULL);
        if (t->rewatch && now >= t->rewatch_at) {
                t->rewatch = false;
                for (size_t i = 0; i < t->nsrc; i++) {
                        if (t->src[i].wd < 0 && arm_watch(t, &t->src[i]) == 0)
                                source_reconcile(t, &t->src[i], false);
                }
        }
        for (size_t i = 0; i < t->nsrc; i++) {
                struct tsource *s = &t->src[i];
                /* an owed look: a directory that could not be listed, a
                 * live path that could not be looked at */
                if ((s->live_owed.err && !owed_waiting(&s->live_owed, now)) ||
                    (s->list_owed.err && !owed_waiting(&s->list_owed, now)) ||
                    (s->look_at && now >= s->look_at))
                        source_reconcile(t, s, false);
                /* Owed files whose time came: try them here, so that one
                 * queued behind a file still being read is not waited for
                 * by a timer that would fire again and again. */
                for (struct tfile *f = s->queue, *next; f; f = next) {
                        next = f->next;
                        if (!f->owed.err || owed_waiting(&f->owed, now))
                                continue;
                        if (f->fd >= 0) {
                                char c;
                                if (pread(f->fd, &c, 1, (off_t)f->tail_end) < 0)
                                        owed_fail(&f->owed, errno, f->path, s->name, now, t->log);
                                else
                                        owed_clear(&f->owed, f->path, s->name, now, t->log);
                                continue;
                        }
                        if (tfile_open(f) == 0) {
                                if (!f->live) {
                                        /* readable: opened again when its turn comes */
                                        close(f->fd);
                                        f->fd = -1;
                                }
                        } else if (f->gone) {
                                tfile_drop_gone(f);
                        }
                }
        }
}

size_t tailer_nsources(const struct tailer *t)
{
        return t->nsrc;
}

void *tailer_file_user(const struct tfile *f)
{
        return f->user;
}

void tailer_file_set_user(struct tfile *f, void *user)
{
        f->user = user;
}

const char *tailer_file_path(const struct tfile *f)
{
        return f->path;
}

const char *tailer_file_source(const struct tfile *f)
{
        return f->src->name;
}

void tailer_source_info(struct tailer *t, size_t src, struct tailer_source_info *out)
{
        struct tsource *s = &t->src[src];
        memset(out, 0, sizeof *out);
        out->name = s->name;
        if (s->live_owed.err) {
                out->blocked++;
                out->blocked_file = s->path;
                out->blocked_reason = owed_reason(s->live_owed.err);
        }
        for (struct tfile *f = s->queue; f; f = f->next) {
                uint64_t size = tfile_size_now(f);
                if (f->owed.err) {
                        out->blocked++;
                        if (!out->blocked_file) {
                                out->blocked_file = f->path;
                                out->blocked_reason = owed_reason(f->owed.err);
                        }
                }
                if (!out->reading && !f->drained && !f->owed.err) {
                        out->reading = f->path;
                        out->committed = f->acked;
                        out->size = size;
                }
                uint64_t end = f->drained ? f->final_end : size;
                if (end > f->acked)
                        out->bytes_behind += end - f->acked;
                out->files++;
        }
        if (t->limit_error[0])
                out->error = t->limit_error;
        else if (t->save_failing.since_ms)
                out->error = "cannot save offsets";
}

bool tailer_take_requeued(struct tailer *t)
{
        bool r = t->requeued;
        t->requeued = false;
        return r;
}

size_t tailer_blocked(const struct tailer *t)
{
        size_t n = 0;
        for (size_t i = 0; i < t->nsrc; i++) {
                n += t->src[i].live_owed.err != 0;
                for (const struct tfile *f = t->src[i].queue; f; f = f->next)
                        n += f->owed.err != 0;
        }
        return n;
}

bool tailer_dirty(const struct tailer *t)
{
        return t->dirty;
}

int tailer_commit(struct tailer *t)
{
        if (!t->dirty)
                return 0;
        time_t now = time(NULL);
        for (size_t i = 0; i < t->nsrc; i++) {
                for (struct tfile *f = t->src[i].queue; f; f = f->next) {
                        if (!f->entry)
                                continue;
                        /* A young file's fingerprint grows with it, until it
                         * reaches past the header into the records. */
                        if (f->fd >= 0 && f->verified && identity_extend(&f->id, f->fd) == 1)
                                entry_from_id(f->entry, &f->id);
                        f->entry->seen = (int64_t)now;
                }
        }
        struct state_error err;
        if (state_save(t->state, &err) < 0) {
                /* one line per streak, whatever the cause; the caller
                 * saves again later */
                bool fds = err.errnum == EMFILE || err.errnum == ENFILE;
                log_streak_fail(t->log, &t->save_failing, LOG_ERROR, "saving offsets",
                                "cannot save offsets%s: %s",
                                fds ? " (out of file descriptors)" : "", err.msg);
                return -1;
        }
        log_streak_ok(t->log, &t->save_failing);
        t->dirty = false;
        return 0;
}
