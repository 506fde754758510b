#include "tailer.h"

#include "identity.h"
#include "state.h"
#include "watch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Archive files found at start that the state does not know are read when
 * they were written after the last save; this margin covers a file the
 * daemon had not yet recorded when it last saved. A margin too wide only
 * re-reads (duplicates), never loses. */
#define UNKNOWN_ARCHIVE_MARGIN_S 300
/* Candidates looked at in an archive directory at start. */
#define SCAN_MAX 4096
/* While a watched directory is missing, look for it again this often. */
#define REWATCH_S 5

struct tsource;

struct tfile {
        struct tsource *src;
        struct tfile *next; /* in the source's queue, oldest first */
        int fd;
        struct file_id id;
        char *path;
        bool live;         /* the live path points to it */
        time_t rotated_at; /* when it stopped being live */
        time_t since;      /* when we began to follow it */
        time_t grew_at;    /* when a read last found new bytes */
        bool drained;      /* read to its final end */
        uint64_t final_end;
        uint64_t start; /* where reading starts */
        uint64_t acked;
        uint32_t gen;
        struct state_entry *entry; /* its offsets, NULL once truncated away */
        void *user;
        /* The last bytes handed out and where they ended: if the file no
         * longer holds them there, it was rewritten in place, even when it
         * has grown past the offset meanwhile. */
        unsigned char tail[64];
        size_t tail_len;
        uint64_t tail_end;
        unsigned refs; /* caller's holds (acknowledgements still to come) */
        bool done;     /* finished: out of the queue, freed when the last hold goes */
};

struct tsource {
        struct tailer *t;
        char *name;
        char *path;
        char *dir;         /* of the live file */
        char *base;        /* the live file's name */
        char *stem;        /* "bounces-" for bounces.csv: rotated names start so */
        char *archive_dir; /* NULL when none */
        bool start_at_end;
        int wd;         /* watch of dir, -1 when lost */
        int archive_wd; /* watch of archive_dir: late writes to rotated files wake us */
        struct tfile *queue;
        struct tfile *live;
        time_t last_live_since; /* since of the last live file, for queue_missed */
};

struct tailer {
        const struct logger *log;
        struct state *state;
        struct watch *watch;
        struct tsource *src;
        size_t nsrc;
        bool dirty;
        bool requeued;         /* a file was put before one being read */
        struct tfile *zombies; /* finished, still held by the caller */
        bool rewatch;          /* a watched directory is gone: retry */
        time_t rewatch_at;
        struct log_streak save_failing; /* offsets saves failing in a row */
};

static char *xstrdup(const char *s)
{
        return s ? strdup(s) : NULL;
}

static const char *q(char *buf, size_t size, const char *s)
{
        return log_quote(buf, size, s, strlen(s));
}

static bool is_archive_name(const struct tsource *s, const char *name);
static time_t final_at(const struct tfile *f);
static char *find_moved(const struct tsource *s, const struct tfile *f);

struct candidate {
        char *path;
        int fd;
        struct file_id id;
        struct timespec mtime;
        uint64_t size;
        bool used;
};

/* ---- files ---- */

static void entry_from_id(struct state_entry *e, const struct file_id *id)
{
        e->fp = id->fp;
        e->fp_len = id->fp_len;
}

static struct tfile *tfile_new(struct tsource *s, int fd, const struct file_id *id,
                               const char *path, uint64_t start, struct state_entry *e)
{
        struct tfile *f = calloc(1, sizeof *f);
        if (!f)
                return NULL;
        f->path = strdup(path);
        if (!f->path) {
                free(f);
                return NULL;
        }
        f->src = s;
        f->fd = fd;
        f->id = *id;
        f->start = start;
        f->acked = start;
        f->entry = e;
        f->since = time(NULL);
        return f;
}

static void tfile_free(struct tfile *f)
{
        if (!f)
                return;
        if (f->fd >= 0)
                close(f->fd);
        free(f->path);
        free(f);
}

static void queue_append(struct tsource *s, struct tfile *f)
{
        struct tfile **pp = &s->queue;
        while (*pp)
                pp = &(*pp)->next;
        *pp = f;
        f->next = NULL;
}

static void queue_unlink(struct tsource *s, struct tfile *f)
{
        for (struct tfile **pp = &s->queue; *pp; pp = &(*pp)->next) {
                if (*pp == f) {
                        *pp = f->next;
                        return;
                }
        }
}

/* A state entry for a file seen for the first time. An entry left with the
 * same device and inode belongs to a file that is gone (the inode was
 * reused): it is replaced. */
static struct state_entry *entry_for_new(struct tailer *t, struct tsource *s,
                                         const struct file_id *id, const char *path, uint64_t start)
{
        struct state_error err;
        struct state_entry *old = state_find_id(t->state, id->dev, id->ino);
        if (old) {
                char b[512];
                log_info(t->log, "forgetting the offsets of a file whose inode was reused file=%s",
                         q(b, sizeof b, old->path));
                state_remove(t->state, old);
        }
        struct state_entry tmpl = {
            .source = s->name,
            .path = (char *)path,
            .dev = id->dev,
            .ino = id->ino,
            .fp = id->fp,
            .fp_len = id->fp_len,
            .offset = start,
            .seen = (int64_t)time(NULL),
        };
        struct state_entry *e = state_add(t->state, &tmpl, &err);
        if (!e)
                log_error(t->log, "cannot track file: %s", err.msg);
        t->dirty = true;
        return e;
}

/* Offset just past the last line break before `size`: where to start in a
 * file met for the first time with start_at = end. */
static uint64_t last_line_end(int fd, uint64_t size)
{
        char buf[4096];
        uint64_t pos = size;
        while (pos > 0) {
                size_t n = pos < sizeof buf ? (size_t)pos : sizeof buf;
                ssize_t r = pread(fd, buf, n, (off_t)(pos - n));
                if (r != (ssize_t)n)
                        return 0;
                for (size_t i = n; i > 0; i--) {
                        if (buf[i - 1] == '\n')
                                return pos - n + i;
                }
                pos -= n;
        }
        return 0;
}

/* Open the file now at the live path and queue it as the live file. */
static void adopt_live(struct tailer *t, struct tsource *s, bool first_run)
{
        char b[512];
        int fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) {
                if (errno != ENOENT)
                        log_warn(t->log, "cannot open file=%s error=\"%s\"",
                                 q(b, sizeof b, s->path), strerror(errno));
                return;
        }
        struct file_id id;
        struct stat st;
        if (identity_of_fd(fd, &id) < 0 || fstat(fd, &st) < 0) {
                log_warn(t->log, "cannot read file=%s error=\"%s\"", q(b, sizeof b, s->path),
                         strerror(errno));
                close(fd);
                return;
        }
        /* Already in the queue (a rename back, or an event seen twice)? */
        for (struct tfile *f = s->queue; f; f = f->next) {
                if (f->id.dev == id.dev && f->id.ino == id.ino) {
                        if (!f->drained) {
                                f->live = true;
                                f->rotated_at = 0;
                                s->live = f;
                        }
                        close(fd);
                        return;
                }
        }
        uint64_t start = 0;
        if (first_run && s->start_at_end)
                start = last_line_end(fd, (uint64_t)st.st_size);
        struct state_entry *e = entry_for_new(t, s, &id, s->path, start);
        struct tfile *f = e ? tfile_new(s, fd, &id, s->path, start, e) : NULL;
        if (!f) {
                if (e)
                        state_remove(t->state, e);
                close(fd);
                return;
        }
        f->live = true;
        s->live = f;
        queue_append(s, f);
        log_info(t->log, "following file=%s source=%s offset=%llu", q(b, sizeof b, s->path),
                 s->name, (unsigned long long)start);
}

/* The live file stopped being live: renamed away, deleted or replaced. */
static void mark_rotated(struct tailer *t, struct tsource *s, const char *why)
{
        struct tfile *f = s->live;
        if (!f)
                return;
        char b[512];
        f->live = false;
        f->rotated_at = time(NULL);
        s->live = NULL;
        /* Name the file where it is now, in logs and events. */
        char *moved = find_moved(s, f);
        if (moved) {
                free(f->path);
                f->path = moved;
                if (f->entry)
                        state_set_path(t->state, f->entry, moved, NULL);
        }
        log_info(t->log, "rotated file=%s source=%s how=%s", q(b, sizeof b, f->path), s->name, why);
}

static void scan_dir(struct tailer *t, struct tsource *s, const char *dir, struct candidate *c,
                     size_t *n);
static int cmp_mtime(const void *a, const void *b);

/* Files of this source that came and went between two looks (a quick
 * cascade of rotations, or events lost to an overflow): rotated names we
 * do not follow and never followed, written since `since`. They are queued
 * after what we follow, oldest first, and read whole. */
static void queue_missed(struct tailer *t, struct tsource *s, time_t since)
{
        struct candidate *c = calloc(SCAN_MAX + 1, sizeof *c);
        struct tfile **found = calloc(SCAN_MAX + 1, sizeof *found);
        size_t n = 0, nf = 0;
        if (!c || !found) {
                free(c);
                free(found);
                return;
        }
        if (s->archive_dir)
                scan_dir(t, s, s->archive_dir, c, &n);
        if (!s->archive_dir || strcmp(s->archive_dir, s->dir) != 0)
                scan_dir(t, s, s->dir, c, &n);
        for (size_t k = 0; k < n; k++) {
                bool known = c[k].mtime.tv_sec < since;
                for (struct tfile *f = s->queue; f && !known; f = f->next)
                        known = f->id.dev == c[k].id.dev && f->id.ino == c[k].id.ino;
                struct state_entry *e = state_find_id(t->state, c[k].id.dev, c[k].id.ino);
                if (e && !known) {
                        struct file_id saved = {e->dev, e->ino, e->fp, e->fp_len};
                        known = identity_compare(&saved, c[k].fd) == IDENTITY_SAME;
                }
                if (known)
                        continue;
                struct state_entry *ne = entry_for_new(t, s, &c[k].id, c[k].path, 0);
                struct tfile *f = ne ? tfile_new(s, c[k].fd, &c[k].id, c[k].path, 0, ne) : NULL;
                if (!f)
                        continue;
                c[k].fd = -1;
                f->rotated_at = time(NULL);
                found[nf++] = f;
                char b[512];
                log_warn(t->log, "reading a file rotated before it was seen file=%s source=%s",
                         q(b, sizeof b, f->path), s->name);
        }
        qsort(found, nf, sizeof *found, cmp_mtime);
        for (size_t k = 0; k < nf; k++)
                queue_append(s, found[k]);
        for (size_t k = 0; k < n; k++) {
                if (c[k].fd >= 0)
                        close(c[k].fd);
                free(c[k].path);
        }
        free(c);
        free(found);
}

/* Compare the live path with what we follow, and act on the difference. */
static void source_check(struct tailer *t, struct tsource *s)
{
        struct stat st;
        bool exists = stat(s->path, &st) == 0;
        time_t since = 0;
        if (s->live) {
                struct stat fst;
                since = s->live->since;
                if (fstat(s->live->fd, &fst) == 0 && fst.st_nlink == 0)
                        mark_rotated(t, s, "deleted");
                else if (!exists)
                        mark_rotated(t, s, "renamed");
                else if ((uint64_t)st.st_dev != s->live->id.dev ||
                         (uint64_t)st.st_ino != s->live->id.ino)
                        mark_rotated(t, s, "replaced");
        } else {
                since = s->last_live_since;
        }
        if (exists && !s->live && S_ISREG(st.st_mode)) {
                if (since)
                        queue_missed(t, s, since - 1);
                adopt_live(t, s, false);
        }
        if (s->live)
                s->last_live_since = s->live->since;
}

/* ---- start: find the files of the state again ---- */

static bool is_archive_name(const struct tsource *s, const char *name)
{
        return strncmp(name, s->stem, strlen(s->stem)) == 0;
}

static void scan_dir(struct tailer *t, struct tsource *s, const char *dir, struct candidate *c,
                     size_t *n)
{
        DIR *d = opendir(dir);
        if (!d) {
                if (errno != ENOENT) {
                        char b[512];
                        log_warn(t->log, "cannot list directory=%s error=\"%s\"",
                                 q(b, sizeof b, dir), strerror(errno));
                }
                return;
        }
        struct dirent *de;
        while ((de = readdir(d)) && *n < SCAN_MAX) {
                if (!is_archive_name(s, de->d_name))
                        continue;
                char path[PATH_MAX];
                if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path)
                        continue;
                int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
                struct stat st;
                if (fd < 0)
                        continue;
                if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
                    identity_of_fd(fd, &c[*n].id) < 0) {
                        close(fd);
                        continue;
                }
                bool dup = false;
                for (size_t i = 0; i < *n; i++)
                        dup |= c[i].id.dev == c[*n].id.dev && c[i].id.ino == c[*n].id.ino;
                if (dup) {
                        close(fd);
                        continue;
                }
                c[*n].path = strdup(path);
                if (!c[*n].path) {
                        close(fd);
                        continue;
                }
                c[*n].fd = fd;
                c[*n].mtime = st.st_mtim;
                c[*n].size = (uint64_t)st.st_size;
                c[*n].used = false;
                (*n)++;
        }
        closedir(d);
}

static int cmp_mtime(const void *a, const void *b)
{
        const struct tfile *const *x = a, *const *y = b;
        struct stat sa, sb;
        if (fstat((*x)->fd, &sa) < 0 || fstat((*y)->fd, &sb) < 0)
                return 0;
        if (sa.st_mtim.tv_sec != sb.st_mtim.tv_sec)
                return sa.st_mtim.tv_sec < sb.st_mtim.tv_sec ? -1 : 1;
        if (sa.st_mtim.tv_nsec != sb.st_mtim.tv_nsec)
                return sa.st_mtim.tv_nsec < sb.st_mtim.tv_nsec ? -1 : 1;
        return strcmp((*x)->path, (*y)->path);
}

static int source_start(struct tailer *t, struct tsource *s)
{
        char b[512];
        struct candidate *c = calloc(SCAN_MAX + 1, sizeof *c);
        struct tfile **archived = calloc(SCAN_MAX + 1, sizeof *archived);
        if (!c || !archived) {
                free(c);
                free(archived);
                return -1;
        }
        size_t n = 0, na = 0;
        /* The live file first, then the rotated files (the archive and,
         * for rotation into the same directory, the live file's own). */
        int lfd = open(s->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        struct stat st;
        long live_idx = -1;
        if (lfd >= 0) {
                if (fstat(lfd, &st) == 0 && S_ISREG(st.st_mode) &&
                    identity_of_fd(lfd, &c[0].id) == 0 && (c[0].path = strdup(s->path))) {
                        c[0].fd = lfd;
                        c[0].mtime = st.st_mtim;
                        c[0].size = (uint64_t)st.st_size;
                        live_idx = 0;
                        n = 1;
                } else {
                        close(lfd);
                }
        }
        if (s->archive_dir)
                scan_dir(t, s, s->archive_dir, c, &n);
        if (!s->archive_dir || strcmp(s->archive_dir, s->dir) != 0)
                scan_dir(t, s, s->dir, c, &n);

        /* Entries of this source: resume each where it was found. */
        bool known = false;
        int64_t watermark = 0;
        for (size_t i = 0; i < state_count(t->state);) {
                struct state_entry *e = state_at(t->state, i);
                if (strcmp(e->source, s->name) != 0) {
                        i++;
                        continue;
                }
                known = true;
                if (e->seen > watermark)
                        watermark = e->seen;
                struct file_id saved = {e->dev, e->ino, e->fp, e->fp_len};
                long found = -1, shrunk = -1;
                enum identity_match how = IDENTITY_DIFFERENT;
                for (size_t k = 0; k < n && found < 0; k++) {
                        if (c[k].used)
                                continue;
                        enum identity_match m = identity_compare(&saved, c[k].fd);
                        if (m == IDENTITY_SAME || m == IDENTITY_COPIED) {
                                found = (long)k;
                                how = m;
                        } else if (m == IDENTITY_TRUNCATED && !e->finished && (long)k == live_idx) {
                                shrunk = (long)k;
                        }
                }
                /* The file itself or a copy of it comes first (copy-and-
                 * truncate leaves the unread records in the copy); the live
                 * file shrunk on the same inode only when there is neither. */
                if (found < 0 && shrunk >= 0) {
                        found = shrunk;
                        how = IDENTITY_TRUNCATED;
                }
                if (found < 0) {
                        if (!e->finished)
                                log_warn(t->log,
                                         "tracked file not found, its unread records cannot be "
                                         "delivered file=%s source=%s offset=%llu",
                                         q(b, sizeof b, e->path), s->name,
                                         (unsigned long long)e->offset);
                        if (!e->finished) {
                                state_remove(t->state, e);
                                t->dirty = true;
                                continue;
                        }
                        i++;
                        continue;
                }
                struct candidate *cd = &c[found];
                cd->used = true;
                if (e->finished) {
                        i++;
                        continue;
                }
                uint64_t start = e->offset;
                if (how == IDENTITY_TRUNCATED || cd->size < e->offset) {
                        log_warn(t->log,
                                 "file shrank while stopped, reading it again from 0 "
                                 "file=%s offset=%llu size=%llu",
                                 q(b, sizeof b, cd->path), (unsigned long long)e->offset,
                                 (unsigned long long)cd->size);
                        start = 0;
                        e->offset = 0;
                        state_set_header(t->state, e, NULL, 0, NULL);
                        entry_from_id(e, &cd->id);
                        t->dirty = true;
                }
                if (how == IDENTITY_COPIED)
                        state_set_id(t->state, e, cd->id.dev, cd->id.ino, NULL);
                if (strcmp(e->path, cd->path) != 0)
                        state_set_path(t->state, e, cd->path, NULL);
                struct tfile *f = tfile_new(s, cd->fd, &cd->id, cd->path, start, e);
                if (!f)
                        continue;
                cd->fd = -1;
                if ((long)found == live_idx) {
                        f->live = true;
                        s->live = f;
                } else {
                        f->rotated_at = time(NULL) - TAILER_ROTATE_GRACE_S;
                        archived[na++] = f;
                }
                log_info(t->log, "resuming file=%s source=%s offset=%llu", q(b, sizeof b, f->path),
                         s->name, (unsigned long long)start);
                i++;
        }

        /* Rotated files the state does not know: written while we were
         * down, they are read whole. Before any state exists they are
         * history, not ours to send. */
        for (size_t k = 0; k < n; k++) {
                if (c[k].used || (long)k == live_idx || !known ||
                    (int64_t)c[k].mtime.tv_sec < watermark - UNKNOWN_ARCHIVE_MARGIN_S)
                        continue;
                struct state_entry *e = entry_for_new(t, s, &c[k].id, c[k].path, 0);
                struct tfile *f = e ? tfile_new(s, c[k].fd, &c[k].id, c[k].path, 0, e) : NULL;
                if (!f)
                        continue;
                c[k].fd = -1;
                c[k].used = true;
                f->rotated_at = time(NULL) - TAILER_ROTATE_GRACE_S;
                archived[na++] = f;
                log_info(t->log, "reading file rotated while stopped file=%s source=%s",
                         q(b, sizeof b, f->path), s->name);
        }
        qsort(archived, na, sizeof *archived, cmp_mtime);
        for (size_t k = 0; k < na; k++)
                queue_append(s, archived[k]);
        if (s->live)
                queue_append(s, s->live);

        for (size_t k = 0; k < n; k++) {
                if (c[k].fd >= 0)
                        close(c[k].fd);
                free(c[k].path);
        }
        free(c);
        free(archived);
        if (!s->live)
                adopt_live(t, s, !known);
        return 0;
}

static int arm_watch(struct tailer *t, struct tsource *s)
{
        /* The archive directory only wakes the daemon up (a writer still
         * appending to a rotated file); losing it loses no record, since
         * rotated files are read to their end before they are released. */
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
        /* bounces.csv rotates to bounces-YYYY-MM-DD-HHMM.csv */
        const char *dot = strrchr(s->base, '.');
        size_t stem = dot && dot != s->base ? (size_t)(dot - s->base) : strlen(s->base);
        s->stem = malloc(stem + 2);
        if (!s->stem)
                return -1;
        memcpy(s->stem, s->base, stem);
        s->stem[stem] = '-';
        s->stem[stem + 1] = '\0';
        return 0;
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
                         strerror(errno));
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
        for (size_t i = 0; i < nsrc; i++)
                arm_watch(t, &t->src[i]);
        /* Finished entries go by age only: one whose file was moved where
         * we cannot see must still be recognised if it comes back. */
        state_prune(t->state, time(NULL), TAILER_RETENTION_S, NULL, NULL);
        for (size_t i = 0; i < nsrc; i++) {
                if (source_start(t, &t->src[i]) < 0) {
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
                        source_check(t, s);
                        continue;
                }
                if (strcmp(ev->name, s->base) == 0 && !(ev->mask & IN_MODIFY))
                        source_check(t, s);
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
        return 0;
}

void tailer_rescan(struct tailer *t)
{
        for (size_t i = 0; i < t->nsrc; i++)
                source_check(t, &t->src[i]);
}

int tailer_deadline_ms(const struct tailer *t)
{
        time_t now = time(NULL), when = 0;
        if (t->rewatch)
                when = t->rewatch_at;
        for (size_t i = 0; i < t->nsrc; i++) {
                for (struct tfile *f = t->src[i].queue; f; f = f->next) {
                        if (f->live || f->drained)
                                continue;
                        time_t w = final_at(f);
                        if (!when || w < when)
                                when = w;
                }
        }
        if (!when)
                return -1;
        return when <= now ? 0 : (int)(when - now) * 1000;
}

void tailer_tick(struct tailer *t)
{
        if (t->rewatch && time(NULL) >= t->rewatch_at) {
                t->rewatch = false;
                for (size_t i = 0; i < t->nsrc; i++) {
                        if (t->src[i].wd < 0 && arm_watch(t, &t->src[i]) == 0)
                                source_check(t, &t->src[i]);
                }
        }
}

size_t tailer_nsources(const struct tailer *t)
{
        return t->nsrc;
}

static struct tfile *first_undrained(struct tfile *f)
{
        while (f && f->drained)
                f = f->next;
        return f;
}

struct tfile *tailer_head(struct tailer *t, size_t src)
{
        return first_undrained(t->src[src].queue);
}

struct tfile *tailer_next(struct tfile *f)
{
        return first_undrained(f->next);
}

ssize_t tailer_read(struct tfile *f, uint64_t off, void *buf, size_t len)
{
        ssize_t n;
        do
                n = pread(f->fd, buf, len, (off_t)off);
        while (n < 0 && errno == EINTR);
        if (n <= 0)
                return n;
        size_t k = (size_t)n < sizeof f->tail ? (size_t)n : sizeof f->tail;
        memcpy(f->tail, (const char *)buf + n - k, k);
        f->grew_at = time(NULL);
        f->tail_len = k;
        f->tail_end = off + (uint64_t)n;
        /* A young file's fingerprint grows as it is read, so that a file
         * rewritten in place is told apart from its first version soon. */
        if (f->id.fp_len < IDENTITY_FP_MAX && identity_extend(&f->id, f->fd) == 1 && f->entry)
                entry_from_id(f->entry, &f->id);
        return n;
}

uint64_t tailer_file_start(const struct tfile *f)
{
        return f->start;
}

const char *tailer_file_header(const struct tfile *f, size_t *len)
{
        if (!f->entry || !f->entry->header || f->start == 0) {
                *len = 0;
                return NULL;
        }
        *len = f->entry->header_len;
        return f->entry->header;
}

void tailer_file_set_header(struct tfile *f, const char *header, size_t len)
{
        if (!f->entry)
                return;
        if (f->entry->header && f->entry->header_len == len &&
            memcmp(f->entry->header, header, len) == 0)
                return;
        struct state_error err;
        if (state_set_header(f->src->t->state, f->entry, header, len, &err) < 0)
                log_warn(f->src->t->log, "cannot remember the header: %s", err.msg);
        f->src->t->dirty = true;
}

/* When a rotated file's end may be taken as final: once it has been quiet
 * for TAILER_QUIET_S after the writer moved on to a newer file, or for the
 * whole grace period when no newer file shows that. 0 for the live file. */
static time_t final_at(const struct tfile *f)
{
        if (f->live)
                return 0;
        time_t quiet_since = f->grew_at > f->rotated_at ? f->grew_at : f->rotated_at;
        if (tailer_file_superseded(f))
                return quiet_since + TAILER_QUIET_S;
        time_t g = f->rotated_at + TAILER_ROTATE_GRACE_S;
        return g > quiet_since + TAILER_QUIET_S ? g : quiet_since + TAILER_QUIET_S;
}

bool tailer_file_final(const struct tfile *f)
{
        return !f->live && time(NULL) >= final_at(f);
}

bool tailer_file_superseded(const struct tfile *f)
{
        if (f->live)
                return false;
        for (const struct tfile *g = f->next; g; g = g->next) {
                struct stat st;
                if (fstat(g->fd, &st) == 0 && st.st_size > 0)
                        return true;
        }
        return false;
}

/* A copy of f made before f was truncated in place (copy-and-truncate
 * rotation): a rotated name holding f's fingerprint on another inode, not
 * followed yet. Returns a new tfile for it, or NULL. */
static struct tfile *find_copy(struct tailer *t, struct tfile *f)
{
        struct tsource *s = f->src;
        struct candidate *c = calloc(SCAN_MAX + 1, sizeof *c);
        size_t n = 0;
        struct tfile *copy = NULL;
        if (!c)
                return NULL;
        if (s->archive_dir)
                scan_dir(t, s, s->archive_dir, c, &n);
        if (!s->archive_dir || strcmp(s->archive_dir, s->dir) != 0)
                scan_dir(t, s, s->dir, c, &n);
        for (size_t k = 0; k < n && !copy; k++) {
                bool followed = false;
                for (struct tfile *g = s->queue; g && !followed; g = g->next)
                        followed = g->id.dev == c[k].id.dev && g->id.ino == c[k].id.ino;
                if (followed || identity_compare(&f->id, c[k].fd) != IDENTITY_COPIED ||
                    c[k].size < f->acked)
                        continue;
                copy = tfile_new(s, c[k].fd, &c[k].id, c[k].path, f->acked, NULL);
                if (copy)
                        c[k].fd = -1;
        }
        for (size_t k = 0; k < n; k++) {
                if (c[k].fd >= 0)
                        close(c[k].fd);
                free(c[k].path);
        }
        free(c);
        return copy;
}

bool tailer_file_truncated(struct tfile *f, uint64_t offset)
{
        struct stat st;
        if (fstat(f->fd, &st) < 0)
                return false;
        bool shrank = (uint64_t)st.st_size < offset;
        /* Rewritten in place: its first bytes, or the last ones read, are
         * not what they were. */
        bool replaced = !shrank && identity_compare(&f->id, f->fd) != IDENTITY_SAME;
        if (!shrank && !replaced && f->tail_len && f->tail_end == offset) {
                unsigned char now[sizeof f->tail];
                replaced = pread(f->fd, now, f->tail_len, (off_t)(offset - f->tail_len)) !=
                               (ssize_t)f->tail_len ||
                           memcmp(now, f->tail, f->tail_len) != 0;
        }
        if (!shrank && !replaced)
                return false;
        struct tailer *t = f->src->t;
        char b[512];
        log_warn(t->log, "file %s, reading it again from 0 file=%s offset=%llu size=%llu",
                 shrank ? "truncated" : "rewritten", q(b, sizeof b, f->path),
                 (unsigned long long)offset, (unsigned long long)st.st_size);
        struct tfile *copy = f->entry ? find_copy(t, f) : NULL;
        if (copy) {
                /* The records not yet acknowledged are in the copy: it takes
                 * over f's offsets and is read first. */
                log_info(t->log, "reading the copy made before the truncation file=%s offset=%llu",
                         q(b, sizeof b, copy->path), (unsigned long long)copy->start);
                struct state_entry *e = f->entry;
                uint64_t dev = f->id.dev, ino = f->id.ino;
                if (state_set_id(t->state, e, copy->id.dev, copy->id.ino, NULL) == 0) {
                        state_set_path(t->state, e, copy->path, NULL);
                        copy->entry = e;
                        copy->rotated_at = time(NULL) - TAILER_ROTATE_GRACE_S;
                        f->entry = NULL;
                        struct tfile **pp = &f->src->queue;
                        while (*pp != f)
                                pp = &(*pp)->next;
                        copy->next = f;
                        *pp = copy;
                        struct file_id nid;
                        if (identity_of_fd(f->fd, &nid) == 0 && nid.dev == dev && nid.ino == ino)
                                f->entry = entry_for_new(t, f->src, &nid, f->path, 0);
                } else {
                        tfile_free(copy);
                }
        }
        identity_of_fd(f->fd, &f->id);
        f->start = 0;
        f->acked = 0;
        f->tail_len = 0;
        f->gen++;
        t->requeued = true;
        if (f->entry) {
                f->entry->offset = 0;
                entry_from_id(f->entry, &f->id);
                state_set_header(t->state, f->entry, NULL, 0, NULL);
        }
        t->dirty = true;
        return true;
}

static bool entry_file_exists(const struct state_entry *e, void *ctx)
{
        (void)ctx;
        struct stat st;
        return stat(e->path, &st) == 0 && (uint64_t)st.st_dev == e->dev &&
               (uint64_t)st.st_ino == e->ino;
}

/* Where a rotated file went: its name in the archive directory (or the
 * live one), found by inode. NULL when it is nowhere to be seen. */
static char *find_moved(const struct tsource *s, const struct tfile *f)
{
        const char *dirs[2] = {s->archive_dir, s->dir};
        for (int i = 0; i < 2; i++) {
                DIR *d = dirs[i] ? opendir(dirs[i]) : NULL;
                if (!d)
                        continue;
                struct dirent *de;
                while ((de = readdir(d))) {
                        if ((uint64_t)de->d_ino != f->id.ino || !is_archive_name(s, de->d_name))
                                continue;
                        char path[PATH_MAX];
                        struct stat st;
                        if (snprintf(path, sizeof path, "%s/%s", dirs[i], de->d_name) <
                                (int)sizeof path &&
                            stat(path, &st) == 0 && (uint64_t)st.st_dev == f->id.dev) {
                                closedir(d);
                                return strdup(path);
                        }
                }
                closedir(d);
        }
        return NULL;
}

static void finish(struct tfile *f)
{
        struct tsource *s = f->src;
        struct tailer *t = s->t;
        char b[512];
        struct stat st;
        if (f->entry && (stat(f->path, &st) < 0 || (uint64_t)st.st_ino != f->id.ino ||
                         (uint64_t)st.st_dev != f->id.dev)) {
                /* Remember the archived name, so the next start finds it
                 * where it is and knows it is done. */
                char *moved = find_moved(s, f);
                if (moved) {
                        state_set_path(t->state, f->entry, moved, NULL);
                        free(f->path);
                        f->path = moved;
                }
        }
        if (f->entry)
                state_mark_finished(f->entry, f->final_end, time(NULL));
        /* A daemon that runs for months must not fill the table with
         * finished files: drop those gone from where we last saw them
         * (PowerMTA's delete-after) and those past the retention. */
        state_prune(t->state, time(NULL), TAILER_RETENTION_S, entry_file_exists, NULL);
        log_info(t->log, "finished file=%s source=%s offset=%llu", q(b, sizeof b, f->path), s->name,
                 (unsigned long long)f->final_end);
        queue_unlink(s, f);
        t->dirty = true;
        if (f->refs) {
                /* acknowledgements still to come name it: keep it until the last */
                f->done = true;
                f->next = t->zombies;
                t->zombies = f;
                close(f->fd);
                f->fd = -1;
                return;
        }
        tfile_free(f);
}

void tailer_file_hold(struct tfile *f)
{
        f->refs++;
}

void tailer_file_release(struct tfile *f)
{
        if (--f->refs || !f->done)
                return;
        struct tailer *t = f->src->t;
        for (struct tfile **pp = &t->zombies; *pp; pp = &(*pp)->next) {
                if (*pp == f) {
                        *pp = f->next;
                        break;
                }
        }
        tfile_free(f);
}

void tailer_file_drained(struct tfile *f, uint64_t end)
{
        f->drained = true;
        f->final_end = end;
        if (f->acked >= end)
                finish(f);
}

uint32_t tailer_file_gen(const struct tfile *f)
{
        return f->gen;
}

void tailer_ack(struct tfile *f, uint32_t gen, uint64_t offset)
{
        if (f->done)
                return;
        if (gen != f->gen || offset <= f->acked) {
                if (f->drained && f->acked >= f->final_end)
                        finish(f);
                return;
        }
        f->acked = offset;
        if (f->entry) {
                f->entry->offset = offset;
                f->entry->seen = (int64_t)time(NULL);
        }
        f->src->t->dirty = true;
        if (f->drained && f->acked >= f->final_end)
                finish(f);
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
        for (struct tfile *f = s->queue; f; f = f->next) {
                struct stat st;
                uint64_t size = fstat(f->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
                if (!out->reading && !f->drained) {
                        out->reading = f->path;
                        out->committed = f->acked;
                        out->size = size;
                }
                uint64_t end = f->drained ? f->final_end : size;
                if (end > f->acked)
                        out->bytes_behind += end - f->acked;
                out->files++;
        }
}

bool tailer_take_requeued(struct tailer *t)
{
        bool r = t->requeued;
        t->requeued = false;
        return r;
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
                        if (identity_extend(&f->id, f->fd) == 1)
                                entry_from_id(f->entry, &f->id);
                        f->entry->seen = (int64_t)now;
                }
        }
        struct state_error err;
        if (state_save(t->state, &err) < 0) {
                log_streak_fail(t->log, &t->save_failing, LOG_ERROR, "saving offsets",
                                "cannot save offsets: %s", err.msg);
                return -1;
        }
        log_streak_ok(t->log, &t->save_failing);
        t->dirty = false;
        return 0;
}
