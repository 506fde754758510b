#include "progress.h"

#include "identity.h"
#include "safefile.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SYNC_EVERY_MS 1000
#define PENDING_MAX   (16u << 20) /* journal lines held before a write is forced */
#define JOURNAL_MAX   (512u << 20)
#define JOURNAL_NAME  "replay.journal"
#define PROGRESS_NAME "replay.json"

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- windows ---- */

static bool win_eq(const struct pwindow *a, const struct pwindow *b)
{
        return a->all == b->all && (a->all || (a->since == b->since && a->until == b->until));
}

static bool win_holds(const struct pwindow *w, bool has_time, int64_t t)
{
        return w->all || (has_time && t >= w->since && t < w->until);
}

static bool win_contains(const struct pwindow *outer, const struct pwindow *inner)
{
        return outer->all ||
               (!inner->all && outer->since <= inner->since && inner->until <= outer->until);
}

/* ---- entries ---- */

static void entry_clear(struct pentry *e)
{
        for (size_t i = 0; i < e->npasses; i++)
                free(e->passes[i].header);
        free(e->passes);
        e->passes = NULL;
        e->npasses = 0;
}

static struct ppass *add_pass(struct pentry *e, const struct pwindow *w)
{
        struct ppass *np = realloc(e->passes, (e->npasses + 1) * sizeof *np);
        if (!np)
                return NULL;
        e->passes = np;
        struct ppass *p = &np[e->npasses++];
        *p = (struct ppass){.w = *w};
        return p;
}

static void drop_pass(struct pentry *e, size_t i)
{
        free(e->passes[i].header);
        memmove(&e->passes[i], &e->passes[i + 1], (e->npasses - i - 1) * sizeof e->passes[0]);
        e->npasses--;
}

static int cmp_since(const void *a, const void *b)
{
        const struct ppass *x = a, *y = b;
        return x->w.since < y->w.since ? -1 : x->w.since > y->w.since;
}

/* Merge what can be merged: a pass done for the whole file makes the
 * others moot; done windows that overlap or touch become one; a pass that
 * delivered nothing, or whose window a done one holds, says nothing.
 * Returns how many passes were dropped past PROGRESS_MAX_PASSES (their
 * records may be sent again: never lost). */
static size_t normalise(struct pentry *e)
{
        for (size_t i = 0; i < e->npasses; i++) {
                if (e->passes[i].w.all && e->passes[i].done) {
                        struct ppass keep = e->passes[i];
                        free(keep.header);
                        keep.header = NULL;
                        e->passes[i].header = NULL;
                        entry_clear(e);
                        struct ppass *p = add_pass(e, &keep.w);
                        if (p)
                                *p = keep;
                        return 0;
                }
        }
        /* done windows first, by since, then merged */
        size_t nd = 0;
        for (size_t i = 0; i < e->npasses; i++) {
                if (e->passes[i].done) {
                        struct ppass t = e->passes[nd];
                        e->passes[nd] = e->passes[i];
                        e->passes[i] = t;
                        nd++;
                }
        }
        qsort(e->passes, nd, sizeof e->passes[0], cmp_since);
        size_t k = 0;
        for (size_t i = 0; i < nd; i++) {
                free(e->passes[i].header);
                e->passes[i].header = NULL;
                if (k && e->passes[i].w.since <= e->passes[k - 1].w.until) {
                        if (e->passes[i].w.until > e->passes[k - 1].w.until)
                                e->passes[k - 1].w.until = e->passes[i].w.until;
                        continue;
                }
                e->passes[k++] = e->passes[i];
        }
        for (size_t i = nd; i < e->npasses; i++)
                e->passes[k++] = e->passes[i];
        e->npasses = k;
        for (size_t i = e->npasses; i-- > 0;) {
                struct ppass *p = &e->passes[i];
                if (p->done)
                        continue;
                bool moot = p->offset == 0;
                for (size_t j = 0; j < e->npasses && !moot; j++)
                        moot = e->passes[j].done && win_contains(&e->passes[j].w, &p->w);
                if (moot)
                        drop_pass(e, i);
        }
        size_t dropped = 0;
        while (e->npasses > PROGRESS_MAX_PASSES) {
                /* the pass that got least far, else the narrowest done window */
                size_t worst = 0;
                bool any_open = false;
                for (size_t i = 0; i < e->npasses; i++) {
                        const struct ppass *p = &e->passes[i], *w = &e->passes[worst];
                        if (!p->done && (!any_open || p->offset < w->offset)) {
                                worst = i;
                                any_open = true;
                        } else if (!any_open && p->done &&
                                   (uint64_t)(p->w.until - p->w.since) <
                                       (uint64_t)(w->w.until - w->w.since)) {
                                worst = i;
                        }
                }
                drop_pass(e, worst);
                dropped++;
        }
        return dropped;
}

static long new_entry(struct progress *p, const char *path, const struct archive_id *id,
                      uint64_t dev, uint64_t ino, bool legacy)
{
        if (p->n >= PROGRESS_MAX_ENTRIES) {
                log_error(p->log, "replay progress: more than %d files", PROGRESS_MAX_ENTRIES);
                return -1;
        }
        if (p->n == p->cap) {
                size_t nc = p->cap ? p->cap * 2 : 256;
                struct pentry *nv = realloc(p->v, nc * sizeof *nv);
                if (!nv)
                        return -1;
                p->v = nv;
                p->cap = nc;
        }
        struct pentry *e = &p->v[p->n];
        *e = (struct pentry){
            .path = strdup(path ? path : ""), .id = *id, .dev = dev, .ino = ino, .legacy = legacy};
        if (!e->path || pairmap_put(&p->by_id, id->fp, id->fp_len, p->n) < 0 ||
            (legacy && pairmap_put(&p->by_ino, ino, dev, p->n) < 0)) {
                free(e->path);
                return -1;
        }
        if (legacy)
                p->legacy_seen = true;
        return (long)p->n++;
}

/* ---- JSON: an entry as replay.json and the journal hold it ---- */

static json_t *window_json(const struct ppass *s, bool with_header)
{
        json_t *o = json_object();
        if (!o)
                return NULL;
        if (s->w.since != INT64_MIN)
                json_object_set_new(o, "since", json_integer(s->w.since));
        if (s->w.until != INT64_MAX)
                json_object_set_new(o, "until", json_integer(s->w.until));
        json_object_set_new(o, "offset", json_integer((json_int_t)s->offset));
        json_object_set_new(o, "done", json_boolean(s->done));
        if (with_header && s->header)
                json_object_set_new(o, "header", json_string(s->header));
        return o;
}

/* The whole file's pass at the entry's top level (what version 1 held),
 * the windows in "windows"; the header where a pass resumes, none for a
 * done one. A journal line is the same, with "from" (the identity it was
 * known by) or "reset" (--from-start) when they apply. */
static json_t *entry_json(const struct pentry *e, const struct archive_id *from, bool reset)
{
        char fp[17];
        snprintf(fp, sizeof fp, "%016llx", (unsigned long long)e->id.fp);
        json_t *o =
            json_pack("{s:s,s:s,s:i,s:I,s:I}", "path", e->path, "fp", fp, "fp_len",
                      (int)e->id.fp_len, "dev", (json_int_t)e->dev, "ino", (json_int_t)e->ino);
        if (!o)
                return NULL;
        if (e->legacy)
                json_object_set_new(o, "legacy", json_true());
        if (from) {
                snprintf(fp, sizeof fp, "%016llx", (unsigned long long)from->fp);
                json_object_set_new(o, "from", json_pack("[s,i]", fp, (int)from->fp_len));
        }
        if (reset)
                json_object_set_new(o, "reset", json_true());
        uint64_t off = 0;
        bool done = false;
        json_t *wins = json_array();
        for (size_t i = 0; i < e->npasses; i++) {
                const struct ppass *s = &e->passes[i];
                if (s->w.all) {
                        off = s->offset;
                        done = s->done;
                        if (s->header && !s->done)
                                json_object_set_new(o, "header", json_string(s->header));
                } else {
                        json_array_append_new(wins, window_json(s, !s->done));
                }
        }
        json_object_set_new(o, "offset", json_integer((json_int_t)off));
        json_object_set_new(o, "done", json_boolean(done));
        if (json_array_size(wins))
                json_object_set_new(o, "windows", wins);
        else
                json_decref(wins);
        return o;
}

static bool id_of_json(json_t *fp, json_t *len, struct archive_id *id)
{
        const char *s = json_string_value(fp);
        if (!s || !json_is_integer(len))
                return false;
        char *end;
        id->fp = strtoull(s, &end, 16);
        id->fp_len = (uint32_t)json_integer_value(len);
        return *end == '\0' && end != s && json_integer_value(len) >= 0 &&
               json_integer_value(len) <= ARCHIVE_ID_MAX;
}

/* Set or update a pass of e from its JSON form (window w). */
static int pass_from_json(struct pentry *e, const struct pwindow *w, json_t *off, json_t *done,
                          json_t *header)
{
        if (!json_is_integer(off) || json_integer_value(off) < 0)
                return -1;
        struct ppass *p = NULL;
        for (size_t i = 0; i < e->npasses && !p; i++) {
                if (win_eq(&e->passes[i].w, w))
                        p = &e->passes[i];
        }
        if (!p && !(p = add_pass(e, w)))
                return -1;
        p->offset = (uint64_t)json_integer_value(off);
        p->done = json_is_true(done);
        if (json_is_string(header)) {
                char *h = strdup(json_string_value(header));
                if (!h)
                        return -1;
                free(p->header);
                p->header = h;
        }
        return 0;
}

/* An entry of replay.json (version 1 or 2), or a line of the journal:
 * created, or applied to the entry it names. Returns 0, or -1 when it does
 * not say what it must. */
static int apply_json(struct progress *p, json_t *o, bool v1)
{
        struct archive_id id, from;
        if (!json_is_object(o) ||
            !id_of_json(json_object_get(o, "fp"), json_object_get(o, "fp_len"), &id))
                return -1;
        bool has_from = json_is_array(json_object_get(o, "from")) &&
                        id_of_json(json_array_get(json_object_get(o, "from"), 0),
                                   json_array_get(json_object_get(o, "from"), 1), &from);
        const char *path = json_string_value(json_object_get(o, "path"));
        uint64_t dev = (uint64_t)json_integer_value(json_object_get(o, "dev"));
        uint64_t ino = (uint64_t)json_integer_value(json_object_get(o, "ino"));
        bool legacy = v1 || json_is_true(json_object_get(o, "legacy"));
        size_t at;
        long idx;
        if (pairmap_get(&p->by_id, has_from ? from.fp : id.fp, has_from ? from.fp_len : id.fp_len,
                        &at)) {
                idx = (long)at;
                struct pentry *e = &p->v[idx];
                if (path) {
                        char *np = strdup(path);
                        if (!np)
                                return -1;
                        free(e->path);
                        e->path = np;
                }
                if (has_from) {
                        e->id = id;
                        if (pairmap_put(&p->by_id, id.fp, id.fp_len, (size_t)idx) < 0)
                                return -1;
                }
                e->legacy = legacy;
                e->dev = dev;
                e->ino = ino;
        } else if ((idx = new_entry(p, path, &id, dev, ino, legacy)) < 0) {
                return -1;
        }
        struct pentry *e = &p->v[idx];
        if (json_is_true(json_object_get(o, "reset")))
                entry_clear(e);
        struct pwindow all = {.all = true};
        if (pass_from_json(e, &all, json_object_get(o, "offset"), json_object_get(o, "done"),
                           json_object_get(o, "header")) < 0)
                return -1;
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(o, "windows"), i, w)
        {
                json_t *s = json_object_get(w, "since"), *u = json_object_get(w, "until");
                struct pwindow win = {
                    .since = json_is_integer(s) ? json_integer_value(s) : INT64_MIN,
                    .until = json_is_integer(u) ? json_integer_value(u) : INT64_MAX};
                if (pass_from_json(e, &win, json_object_get(w, "offset"),
                                   json_object_get(w, "done"), json_object_get(w, "header")) < 0)
                        return -1;
        }
        return 0;
}

/* ---- the journal ---- */

static void append_line(struct progress *p, json_t *o)
{
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!text) {
                log_error(p->log, "replay progress: out of memory");
                return;
        }
        size_t n = strlen(text);
        if (p->pending.len + n + 1 > PENDING_MAX)
                progress_sync(p, true);
        if (buf_append(&p->pending, text, n) < 0 || buf_putc(&p->pending, '\n') < 0)
                log_error(p->log, "replay progress: a line of %zu bytes could not be kept", n);
        free(text);
        p->journal_lines++;
        p->changed = true;
}

static int open_journal(struct progress *p)
{
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", p->dir, JOURNAL_NAME);
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        struct stat st;
        if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1)) {
                /* a hard link planted in the state directory: not ours */
                close(fd);
                errno = EPERM;
                return -1;
        }
        return fd;
}

void progress_sync(struct progress *p, bool force)
{
        if (!p->pending.len || (!force && now_ms() - p->written_ms < SYNC_EVERY_MS))
                return;
        p->written_ms = now_ms();
        if (p->journal_fd < 0)
                p->journal_fd = open_journal(p);
        size_t done = 0;
        int err = p->journal_fd < 0 ? errno : 0;
        while (!err && done < p->pending.len) {
                ssize_t n = write(p->journal_fd, p->pending.data + done, p->pending.len - done);
                if (n < 0 && errno != EINTR)
                        err = errno;
                else if (n > 0)
                        done += (size_t)n;
        }
        if (!err && fdatasync(p->journal_fd) < 0)
                err = errno;
        if (err) {
                /* a full disk: kept and tried again, said once */
                log_streak_fail(p->log, &p->failing, LOG_ERROR, "saving the replay progress",
                                "cannot save replay progress file=%s/%s error=\"%s\"", p->dir,
                                JOURNAL_NAME, strerror(err));
                if (done && done < p->pending.len) {
                        /* part written: a torn line the next load ignores;
                         * the rest goes on a line of its own */
                        memmove(p->pending.data, p->pending.data + done, p->pending.len - done);
                        p->pending.len -= done;
                        p->pending.data[p->pending.len] = '\0';
                        if (write(p->journal_fd, "\n", 1) < 0) {
                                /* said above */
                        }
                } else if (done) {
                        buf_reset(&p->pending);
                }
                return;
        }
        log_streak_ok(p->log, &p->failing);
        buf_reset(&p->pending);
}

static int load_journal(struct progress *p)
{
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", p->dir, JOURNAL_NAME);
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                return errno == ENOENT ? 0 : -1;
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > JOURNAL_MAX) {
                close(fd);
                log_error(p->log, "%s: not a regular file of at most %u bytes", path, JOURNAL_MAX);
                return -1;
        }
        size_t size = (size_t)st.st_size;
        char *data = malloc(size + 1);
        size_t got = 0;
        while (data && got < size) {
                ssize_t n = read(fd, data + got, size - got);
                if (n <= 0)
                        break;
                got += (size_t)n;
        }
        close(fd);
        if (!data)
                return -1;
        data[got] = '\0';
        int rc = 0;
        size_t line = 0, applied = 0;
        for (char *s = data, *nl; rc == 0 && (nl = memchr(s, '\n', got - (size_t)(s - data)));
             s = nl + 1) {
                line++;
                *nl = '\0';
                if (s == nl)
                        continue; /* the end of a line torn by a full disk */
                json_error_t jerr;
                json_t *o = json_loads(s, 0, &jerr);
                /* a line cut by a crash is followed by the next run's lines:
                 * only what parses counts, the rest said */
                if (!o) {
                        log_warn(p->log,
                                 "%s: line %zu is not whole (a crash while writing it), "
                                 "ignored",
                                 path, line);
                        continue;
                }
                if (apply_json(p, o, false) < 0) {
                        log_error(p->log,
                                  "%s: line %zu: not a replay progress entry; move it aside to "
                                  "replay from replay.json alone",
                                  path, line);
                        rc = -1;
                }
                json_decref(o);
                applied++;
        }
        free(data);
        if (applied) {
                log_info(p->log, "replay progress: applied journal=%s lines=%zu", path, applied);
                p->changed = true; /* compacted into replay.json at the end */
        }
        return rc;
}

/* ---- open, look up, plan, advance, close ---- */

int progress_open(struct progress *p, const char *state_dir, const struct logger *log)
{
        memset(p, 0, sizeof *p);
        p->lock_fd = p->journal_fd = -1;
        p->log = log;
        pairmap_init(&p->by_id, PROGRESS_MAX_ENTRIES);
        pairmap_init(&p->by_ino, PROGRESS_MAX_ENTRIES);
        buf_init(&p->pending, PENDING_MAX);
        snprintf(p->dir, sizeof p->dir, "%s", state_dir);
        if (mkdir(state_dir, 0700) < 0 && errno != EEXIST) {
                log_error(log, "cannot create directory=%s error=\"%s\"", state_dir,
                          strerror(errno));
                return -1;
        }
        char why[4400];
        if (safefile_check_dir(state_dir, why, sizeof why) < 0) {
                log_error(log, "refusing the state directory: %s", why);
                return -1;
        }
        char path[4200];
        snprintf(path, sizeof path, "%s/replay.lock", state_dir);
        p->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (p->lock_fd < 0 || flock(p->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                log_error(log, "another replay is running on %s", state_dir);
                if (p->lock_fd >= 0)
                        close(p->lock_fd);
                p->lock_fd = -1;
                return -1;
        }
        snprintf(path, sizeof path, "%s/%s", state_dir, PROGRESS_NAME);
        json_error_t err;
        json_t *j = json_load_file(path, 0, &err);
        if (!j && access(path, F_OK) == 0) {
                log_error(log,
                          "%s: line %d: %s; move it aside to replay from the start (or use "
                          "--from-start)",
                          path, err.line, err.text);
                progress_close(p);
                return -1;
        }
        json_t *v = json_object_get(j, "version");
        bool v1 = j && (!v || json_integer_value(v) < 2);
        size_t i;
        json_t *o;
        int rc = 0;
        json_array_foreach(json_object_get(j, "files"), i, o)
        {
                if (apply_json(p, o, v1) < 0) {
                        log_error(log,
                                  "%s: entry %zu: not a replay progress entry; move it "
                                  "aside to replay from the start",
                                  path, i + 1);
                        rc = -1;
                        break;
                }
        }
        json_decref(j);
        if (rc == 0)
                rc = load_journal(p);
        if (rc < 0) {
                p->changed = false; /* nothing half loaded is written back */
                progress_close(p);
                return -1;
        }
        if (v1 && p->n)
                p->changed = true; /* written as version 2 at the end */
        for (size_t k = 0; k < p->n; k++)
                normalise(&p->v[k]);
        return 0;
}

long progress_entry(struct progress *p, const char *path, const struct archive_id *id, uint64_t dev,
                    uint64_t ino)
{
        size_t at;
        if (pairmap_get(&p->by_id, id->fp, id->fp_len, &at)) {
                struct pentry *e = &p->v[at];
                if (strcmp(e->path, path) != 0) {
                        char *np = strdup(path);
                        if (np) {
                                free(e->path);
                                e->path = np;
                        }
                }
                /* found by content: whatever version wrote it, it is this */
                e->legacy = false;
                e->dev = dev;
                e->ino = ino;
                return (long)at;
        }
        if (p->legacy_seen && pairmap_get(&p->by_ino, ino, dev, &at) && p->v[at].legacy) {
                /* a version 1 entry knew the file by its raw bytes (a .gz's
                 * compressed ones): still those bytes, it is this file */
                struct file_id raw;
                struct pentry *e = &p->v[at];
                if (identity_of_path(path, &raw) == 0 && raw.dev == dev && raw.ino == ino &&
                    raw.fp == e->id.fp && raw.fp_len == e->id.fp_len) {
                        struct archive_id from = e->id;
                        e->id = *id;
                        e->legacy = false;
                        char *np = strdup(path);
                        if (np) {
                                free(e->path);
                                e->path = np;
                        }
                        if (pairmap_put(&p->by_id, id->fp, id->fp_len, at) < 0)
                                return -1;
                        append_line(p, entry_json(e, &from, false));
                        return (long)at;
                }
        }
        return new_entry(p, path, id, dev, ino, false);
}

static bool covered(const struct pentry *e, const struct pwindow *w)
{
        for (size_t i = 0; i < e->npasses; i++) {
                if (e->passes[i].done && win_contains(&e->passes[i].w, w))
                        return true;
        }
        if (w->all)
                return false;
        /* done windows together: sweep from since */
        int64_t reach = w->since;
        for (bool moved = true; moved && reach < w->until;) {
                moved = false;
                for (size_t i = 0; i < e->npasses; i++) {
                        const struct ppass *s = &e->passes[i];
                        if (s->done && !s->w.all && s->w.since <= reach && s->w.until > reach) {
                                reach = s->w.until;
                                moved = true;
                        }
                }
        }
        return reach >= w->until;
}

long progress_plan(struct progress *p, size_t ei, const struct pwindow *w, bool from_start,
                   uint64_t *start, const char **header)
{
        struct pentry *e = &p->v[ei];
        if (from_start && e->npasses) {
                entry_clear(e);
                append_line(p, entry_json(e, NULL, true));
        }
        if (covered(e, w))
                return -1;
        for (size_t i = 0; i < e->npasses; i++) {
                if (win_eq(&e->passes[i].w, w)) {
                        *start = e->passes[i].offset;
                        *header = e->passes[i].header;
                        return (long)i;
                }
        }
        /* a new window: what a wider pass delivered before its offset is
         * delivered for this one too */
        const struct ppass *from = NULL;
        for (size_t i = 0; i < e->npasses; i++) {
                const struct ppass *s = &e->passes[i];
                if (win_contains(&s->w, w) && (!from || s->offset > from->offset))
                        from = s;
        }
        uint64_t off = from ? from->offset : 0;
        char *h = from && from->header ? strdup(from->header) : NULL;
        if (e->npasses >= PROGRESS_MAX_PASSES) {
                size_t dropped = normalise(e);
                (void)dropped;
                while (e->npasses >= PROGRESS_MAX_PASSES)
                        drop_pass(e, 0);
                log_warn(p->log,
                         "replay progress: more than %d windows kept for file=%s: the oldest "
                         "forgotten (their records may be sent again)",
                         PROGRESS_MAX_PASSES, e->path);
        }
        struct ppass *s = add_pass(e, w);
        if (!s) {
                free(h);
                return -2;
        }
        s->offset = off;
        s->header = h;
        *start = off;
        *header = h;
        return (long)(e->npasses - 1);
}

bool progress_delivered(const struct progress *p, size_t ei, size_t self, uint64_t off,
                        bool has_time, int64_t t)
{
        const struct pentry *e = &p->v[ei];
        for (size_t i = 0; i < e->npasses; i++) {
                const struct ppass *s = &e->passes[i];
                if (i != self && (s->done || off < s->offset) && win_holds(&s->w, has_time, t))
                        return true;
        }
        return false;
}

void progress_advance(struct progress *p, size_t ei, size_t pass, uint64_t mark, const char *header,
                      size_t header_len, bool done)
{
        struct pentry *e = &p->v[ei];
        if (pass >= e->npasses)
                return;
        struct ppass *s = &e->passes[pass];
        bool moved = false;
        if (mark > s->offset) {
                s->offset = mark;
                moved = true;
                /* resumed at mark, the records are parsed with the header in
                 * force there, not the last one read */
                if (header && (!s->header || strlen(s->header) != header_len ||
                               memcmp(s->header, header, header_len) != 0)) {
                        char *h = strndup(header, header_len);
                        if (h) {
                                free(s->header);
                                s->header = h;
                        }
                }
        }
        if (done && !s->done) {
                s->done = true;
                moved = true;
        }
        if (moved)
                append_line(p, entry_json(e, NULL, false));
}

void progress_close(struct progress *p)
{
        progress_sync(p, true);
        if (p->changed && p->lock_fd >= 0) {
                json_t *files = json_array();
                for (size_t i = 0; files && i < p->n; i++) {
                        struct pentry *e = &p->v[i];
                        normalise(e);
                        if (e->npasses)
                                json_array_append_new(files, entry_json(e, NULL, false));
                }
                json_t *j = files ? json_pack("{s:i,s:o}", "version", 2, "files", files) : NULL;
                char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
                json_decref(j);
                char path[4200];
                snprintf(path, sizeof path, "%s/%s", p->dir, PROGRESS_NAME);
                errno = ENOMEM;
                if (text &&
                    safefile_replace(path, text, strlen(text), SAFEFILE_DURABLE, NULL) == 0) {
                        /* replay.json holds it all now */
                        snprintf(path, sizeof path, "%s/%s", p->dir, JOURNAL_NAME);
                        unlink(path);
                } else {
                        log_error(p->log,
                                  "cannot save replay progress file=%s error=\"%s\" (the journal "
                                  "beside it keeps it)",
                                  path, strerror(errno));
                }
                free(text);
        }
        if (p->journal_fd >= 0)
                close(p->journal_fd);
        for (size_t i = 0; i < p->n; i++) {
                entry_clear(&p->v[i]);
                free(p->v[i].path);
        }
        free(p->v);
        pairmap_free(&p->by_id);
        pairmap_free(&p->by_ino);
        buf_free(&p->pending);
        if (p->lock_fd >= 0)
                close(p->lock_fd);
        p->lock_fd = p->journal_fd = -1;
        p->v = NULL;
        p->n = p->cap = 0;
}
