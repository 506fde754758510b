#include "tailer.h"

#include "identity.h"
#include "match.h"
#include "owed.h"
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
/* While a watched directory is missing, look for it again this often. */
#define REWATCH_S 5
/* The offsets table is pruned (oldest finished entries first) once it holds
 * this many fewer than STATE_MAX_ENTRIES: room stays for new files. */
#define STATE_HEADROOM 64
/* Header lines remembered per file between reading and acknowledgement: a
 * file switches header rarely; past this the oldest pending one is dropped
 * (its acknowledgements keep the header saved before). */
#define HEADER_VERSIONS_MAX 16

struct tsource;

/* A header line of a file and the parser's generation for it: the header
 * in force at an acknowledged offset is saved with that offset. */
struct hver {
        uint64_t hgen;
        char *raw;
        size_t len;
        struct hver *next; /* newer */
};

struct tfile {
        struct tsource *src;
        struct tfile *next; /* in the source's queue, oldest first */
        /* Open only while it is read, or while a writer may still add to it
         * after a rename; a queued file waits with its identity alone. */
        int fd;
        struct file_id id;
        bool verified; /* its content was checked against id (else: on open) */
        char *path;
        uint64_t size; /* as last seen, for a file not open */
        struct timespec mtime;
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
        bool gone;     /* nowhere to be found: dropped by the queue */
        bool lazy;     /* queued from a listing: its descriptor is not needed
                        * to keep it (it has a name), so it is closed between
                        * reads once the file is superseded */
        bool parked;   /* closed so at its end: passed over until final */
        struct owed owed;
        struct hver *hv; /* headers seen, oldest first, not yet acknowledged past */
        size_t nhv;
        /* Where a copy of it was found (move-to to another file system): the
         * identity its entry takes when it is finished. */
        bool has_copy;
        uint64_t copy_dev, copy_ino;
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
        struct owed live_owed;  /* the live path cannot be opened or is no file */
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
        char limit_error[256];          /* a bound reached (the offsets table full), "" when none */
};

static char *xstrdup(const char *s)
{
        return s ? strdup(s) : NULL;
}

static const char *q(char *buf, size_t size, const char *s)
{
        return log_quote(buf, size, s, strlen(s));
}

static bool is_archive_name(const char *name, void *ctx);
static time_t final_at(const struct tfile *f);
static char *find_moved(const struct tsource *s, uint64_t dev, uint64_t ino);

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
        f->verified = true;
        f->start = start;
        f->acked = start;
        f->entry = e;
        f->since = time(NULL);
        return f;
}

/* A file queued from a directory listing: no descriptor until it is read. */
static struct tfile *tfile_from_cand(struct tsource *s, const struct candidate *c,
                                     const struct file_id *id, uint64_t start,
                                     struct state_entry *e)
{
        struct tfile *f = tfile_new(s, -1, id, c->path, start, e);
        if (f) {
                f->size = c->size;
                f->mtime = c->mtime;
                f->lazy = true;
        }
        return f;
}

static void hver_clear(struct tfile *f)
{
        for (struct hver *h = f->hv, *next; h; h = next) {
                next = h->next;
                free(h->raw);
                free(h);
        }
        f->hv = NULL;
        f->nhv = 0;
}

static void tfile_free(struct tfile *f)
{
        if (!f)
                return;
        if (f->fd >= 0)
                close(f->fd);
        hver_clear(f);
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

static void set_path(struct tailer *t, struct tfile *f, const char *path)
{
        if (strcmp(f->path, path) == 0)
                return;
        char *p = strdup(path);
        if (!p)
                return;
        free(f->path);
        f->path = p;
        if (f->entry && state_set_path(t->state, f->entry, path, NULL) == 0)
                t->dirty = true;
}

/* A state entry for a file seen for the first time. An entry left with the
 * same device and inode belongs to a file that is gone (the inode was
 * reused): it is replaced. A table near full is pruned first, oldest
 * finished entries first; entries still owed are never dropped. */
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
        if (state_count(t->state) >= STATE_MAX_ENTRIES - STATE_HEADROOM) {
                size_t n = state_prune_oldest(t->state, STATE_MAX_ENTRIES - 2 * STATE_HEADROOM);
                if (n)
                        log_info(t->log,
                                 "offsets table near full: forgot the %zu finished files seen "
                                 "longest ago",
                                 n);
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
        if (!e) {
                log_error(t->log, "cannot track file: %s", err.msg);
                if (err.kind == STATE_E_LIMIT)
                        snprintf(t->limit_error, sizeof t->limit_error,
                                 "offsets table full: %zu files owed", state_count(t->state));
        } else if (t->limit_error[0] && state_count(t->state) < STATE_MAX_ENTRIES) {
                t->limit_error[0] = '\0';
        }
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

/* Open f if it is not open: found at its path (or, renamed since, by its
 * inode), a regular file, and its content checked when that was not
 * possible before. Returns 0, or -1: a failure is a streak of f's (logged
 * once), or f is gone (f->gone). */
static int tfile_open(struct tfile *f)
{
        if (f->fd >= 0)
                return 0;
        struct tsource *s = f->src;
        struct tailer *t = s->t;
        time_t now = time(NULL);
        if (owed_waiting(&f->owed, now)) {
                errno = EAGAIN;
                return -1;
        }
        char b[512];
        int fd = -1;
        for (int attempt = 0; attempt < 2; attempt++) {
                fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
                struct stat st;
                if (fd >= 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_dev == f->id.dev &&
                    (uint64_t)st.st_ino == f->id.ino) {
                        if (!S_ISREG(st.st_mode)) {
                                close(fd);
                                owed_fail(&f->owed, OWED_NOT_REGULAR, f->path, s->name, now,
                                          t->log);
                                return -1;
                        }
                        break;
                }
                int e = errno;
                if (fd >= 0) {
                        close(fd);
                        fd = -1;
                        e = ENOENT; /* another file at that path now */
                }
                if (e != ENOENT) {
                        owed_fail(&f->owed, e, f->path, s->name, now, t->log);
                        return -1;
                }
                /* renamed since we listed it: look for its inode */
                char *moved = attempt == 0 ? find_moved(s, f->id.dev, f->id.ino) : NULL;
                if (!moved) {
                        f->gone = true;
                        errno = ENOENT;
                        return -1;
                }
                set_path(t, f, moved);
                free(moved);
        }
        if (!f->verified) {
                /* Matched by inode alone while it could not be read: is it
                 * still the file whose offset we keep? */
                enum identity_match m = f->id.fp_len ? identity_compare(&f->id, fd) : IDENTITY_SAME;
                if (m == IDENTITY_ERROR) {
                        int e = errno;
                        close(fd);
                        owed_fail(&f->owed, e, f->path, s->name, now, t->log);
                        return -1;
                }
                if (m != IDENTITY_SAME && f->start > 0) {
                        log_warn(t->log,
                                 "another file on the inode of a tracked one, reading it from 0 "
                                 "file=%s how=%s",
                                 q(b, sizeof b, f->path), identity_match_name(m));
                        f->start = f->acked = 0;
                        if (f->entry) {
                                f->entry->offset = 0;
                                state_set_header(t->state, f->entry, NULL, 0, NULL);
                        }
                }
                struct file_id id;
                if (identity_of_fd(fd, &id) == 0) {
                        f->id = id;
                        if (f->entry)
                                entry_from_id(f->entry, &id);
                }
                f->verified = true;
                t->dirty = true;
        }
        owed_clear(&f->owed, f->path, s->name, now, t->log);
        f->fd = fd;
        return 0;
}

/* Open the file now at the live path and queue it as the live file. */
static void adopt_live(struct tailer *t, struct tsource *s, bool first_run)
{
        char b[512];
        time_t now = time(NULL);
        int fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0) {
                if (errno != ENOENT)
                        owed_fail(&s->live_owed, errno, s->path, s->name, now, t->log);
                return;
        }
        struct file_id id;
        struct stat st;
        if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
                /* a FIFO or a device: reading it would block or never end */
                close(fd);
                owed_fail(&s->live_owed, OWED_NOT_REGULAR, s->path, s->name, now, t->log);
                return;
        }
        if (identity_of_fd(fd, &id) < 0 || fstat(fd, &st) < 0) {
                owed_fail(&s->live_owed, errno, s->path, s->name, now, t->log);
                close(fd);
                return;
        }
        owed_clear(&s->live_owed, s->path, s->name, now, t->log);
        /* Already in the queue (a rename back, or an event seen twice)? */
        for (struct tfile *f = s->queue; f; f = f->next) {
                if (f->id.dev == id.dev && f->id.ino == id.ino) {
                        if (!f->drained) {
                                f->live = true;
                                f->rotated_at = 0;
                                s->live = f;
                        }
                        if (f->fd < 0 && !f->drained)
                                f->fd = fd;
                        else
                                close(fd);
                        return;
                }
        }
        uint64_t start = 0;
        if (first_run && s->start_at_end)
                start = last_line_end(fd, (uint64_t)st.st_size);
        struct state_entry *e = entry_for_new(t, s, &id, s->path, start);
        /* Without an entry (the table full of owed files) it is read all
         * the same; its offset is then not saved (status says so). */
        struct tfile *f = tfile_new(s, fd, &id, s->path, start, e);
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
        char *moved = find_moved(s, f->id.dev, f->id.ino);
        if (moved) {
                set_path(t, f, moved);
                free(moved);
        }
        log_info(t->log, "rotated file=%s source=%s how=%s", q(b, sizeof b, f->path), s->name, why);
}

static int cmp_mtime(const void *a, const void *b)
{
        const struct tfile *const *x = a, *const *y = b;
        const struct timespec *sa = &(*x)->mtime, *sb = &(*y)->mtime;
        if (sa->tv_sec != sb->tv_sec)
                return sa->tv_sec < sb->tv_sec ? -1 : 1;
        if (sa->tv_nsec != sb->tv_nsec)
                return sa->tv_nsec < sb->tv_nsec ? -1 : 1;
        return strcmp((*x)->path, (*y)->path);
}

/* List the source's rotated files (the archive and, for rotation into the
 * same directory, the live file's own). Returns 0, or the errno of a
 * directory that exists but cannot be listed (logged). */
static int list_rotated(struct tailer *t, struct tsource *s, struct cand_list *cl)
{
        const char *dirs[2] = {s->archive_dir, NULL};
        if (!s->archive_dir || strcmp(s->archive_dir, s->dir) != 0)
                dirs[1] = s->dir;
        int failed = 0;
        for (int i = 0; i < 2; i++) {
                if (!dirs[i])
                        continue;
                if (cand_scan(cl, dirs[i], is_archive_name, s) < 0 && errno != ENOENT) {
                        char b[512];
                        failed = errno;
                        log_warn(t->log, "cannot list directory=%s source=%s error=\"%s\"",
                                 q(b, sizeof b, dirs[i]), s->name, owed_reason(failed));
                }
        }
        return failed;
}

/* The saved identity of a file we follow, for match_saved: its fingerprint
 * and the bytes read so far. */
static struct match_saved saved_of_tfile(const struct tfile *f)
{
        struct match_saved m = {.id = f->id, .offset = f->tail_end, .finished = false};
        return m;
}

static struct match_saved saved_of_entry(const struct state_entry *e)
{
        struct match_saved m = {
            .id = {e->dev, e->ino, e->fp, e->fp_len}, .offset = e->offset, .finished = e->finished};
        return m;
}

/* Whether candidate c holds f's last bytes read, where f had them: a copy
 * of f up to the read position, not just a file that starts alike. */
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
        bool ok = pread(fd, now, f->tail_len, (off_t)(f->tail_end - f->tail_len)) ==
                      (ssize_t)f->tail_len &&
                  memcmp(now, f->tail, f->tail_len) == 0;
        close(fd);
        return ok;
}

/* Is candidate c a file this source reads or has read, on its own inode or
 * as a copy (move-to to another file system copies then deletes)? A copy of
 * a file being read gives that file its name. */
static bool known_file(struct tailer *t, struct tsource *s, struct candidate *c)
{
        for (struct tfile *f = s->queue; f; f = f->next) {
                if (f->id.dev == c->dev && f->id.ino == c->ino)
                        return true;
        }
        struct state_entry *e = state_find_id(t->state, c->dev, c->ino);
        if (e) {
                struct match_saved sv = saved_of_entry(e);
                enum match_kind m = match_saved(&sv, c);
                if (m == MATCH_SAME || m == MATCH_BLOCKED)
                        return true;
        }
        if (cand_fingerprint(c) < 0)
                return false;
        for (struct tfile *f = s->queue; f; f = f->next) {
                if (f->live || f->fd < 0)
                        continue;
                struct match_saved sv = saved_of_tfile(f);
                if (match_saved(&sv, c) == MATCH_COPIED && holds_tail(f, c)) {
                        char b[512], b2[512];
                        log_info(t->log, "the file being read was copied file=%s copy=%s",
                                 q(b, sizeof b, f->path), q(b2, sizeof b2, c->path));
                        set_path(t, f, c->path);
                        f->has_copy = true;
                        f->copy_dev = c->dev;
                        f->copy_ino = c->ino;
                        return true;
                }
        }
        for (size_t i = 0; i < state_count(t->state); i++) {
                struct state_entry *x = state_at(t->state, i);
                if (!x->finished || x->offset != c->size || strcmp(x->source, s->name) != 0)
                        continue;
                struct match_saved sv = saved_of_entry(x);
                if (match_saved(&sv, c) == MATCH_COPIED)
                        return true;
        }
        return false;
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

/* Files of this source that came and went between two looks (a quick
 * cascade of rotations, or events lost to an overflow): rotated names we
 * do not follow and never followed, written since `since`. They are queued
 * after what we follow, oldest first, and read whole. Files older than
 * `since` are not opened at all, nor files known by inode and size. */
static void queue_missed(struct tailer *t, struct tsource *s, time_t since)
{
        struct cand_list cl;
        cand_list_init(&cl);
        list_rotated(t, s, &cl);
        struct tfile **found = calloc(cl.n ? cl.n : 1, sizeof *found);
        size_t nf = 0;
        for (size_t k = 0; found && k < cl.n; k++) {
                struct candidate *c = &cl.v[k];
                if (c->mtime.tv_sec < since || known_file(t, s, c))
                        continue;
                struct tfile *f = queue_new_cand(t, s, c);
                if (!f)
                        continue;
                f->rotated_at = time(NULL);
                found[nf++] = f;
                char b[512];
                log_warn(t->log, "reading a file rotated before it was seen file=%s source=%s",
                         q(b, sizeof b, f->path), s->name);
        }
        if (found) {
                qsort(found, nf, sizeof *found, cmp_mtime);
                for (size_t k = 0; k < nf; k++)
                        queue_append(s, found[k]);
        }
        free(found);
        cand_list_free(&cl);
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
                /* kept before a rotation: the next look queues what came
                 * between, whichever event it comes with */
                s->last_live_since = since;
                if (s->live->fd >= 0 && fstat(s->live->fd, &fst) == 0 && fst.st_nlink == 0)
                        mark_rotated(t, s, "deleted");
                else if (!exists)
                        mark_rotated(t, s, "renamed");
                else if ((uint64_t)st.st_dev != s->live->id.dev ||
                         (uint64_t)st.st_ino != s->live->id.ino)
                        mark_rotated(t, s, "replaced");
        } else {
                since = s->last_live_since;
        }
        if (exists && !s->live) {
                if (since)
                        queue_missed(t, s, since - 1);
                adopt_live(t, s, false);
        } else if (!exists) {
                s->live_owed.err = 0; /* nothing there to refuse */
        }
        if (s->live)
                s->last_live_since = s->live->since;
}

/* ---- start: find the files of the state again ---- */

static bool has_prefix(const char *s, const char *p, size_t n)
{
        return strncmp(s, p, n) == 0;
}

/* Rotated names: PowerMTA's bounces-YYYY-MM-DD-HHMM.csv, logrotate's
 * bounces.csv.1 and bounces.csv-DATE. Compressed ones are not CSV. */
static bool is_archive_name(const char *name, void *ctx)
{
        const struct tsource *s = ctx;
        size_t bl = strlen(s->base), n = strlen(name);
        bool ok = has_prefix(name, s->stem, strlen(s->stem));
        if (!ok && n > bl + 1 && has_prefix(name, s->base, bl)) {
                /* bounces.csv.N (digits only: not a tool's bounces.csv.tmp),
                 * bounces.csv-ANYTHING (logrotate's dateext) */
                size_t digits = strspn(name + bl + 1, "0123456789");
                ok = name[bl] == '-' || (name[bl] == '.' && digits == n - bl - 1);
        }
        if (!ok)
                return false;
        static const char *const packed[] = {".gz", ".bz2", ".xz", ".zst", ".lz4", ".Z"};
        for (size_t i = 0; i < sizeof packed / sizeof packed[0]; i++) {
                size_t pl = strlen(packed[i]);
                if (n > pl && strcmp(name + n - pl, packed[i]) == 0)
                        return false;
        }
        return true;
}

static int source_start(struct tailer *t, struct tsource *s)
{
        char b[512];
        time_t now = time(NULL);
        struct cand_list cl;
        cand_list_init(&cl);
        /* The live file first, then the rotated files. */
        long live_idx = -1;
        struct candidate *lc = cand_add(&cl, s->path);
        if (lc && lc->regular) {
                live_idx = 0;
        } else if (lc) {
                lc->used = true; /* never a match: refused below */
                owed_fail(&s->live_owed, OWED_NOT_REGULAR, s->path, s->name, now, t->log);
        }
        int list_err = list_rotated(t, s, &cl);

        /* Entries of this source, matched in one pass for SAME, then for
         * COPIED among the files left. */
        size_t ne = 0;
        for (size_t i = 0; i < state_count(t->state); i++)
                ne += strcmp(state_at(t->state, i)->source, s->name) == 0;
        struct state_entry **ents = calloc(ne ? ne : 1, sizeof *ents);
        struct match_saved *saved = calloc(ne ? ne : 1, sizeof *saved);
        long *found = calloc(ne ? ne : 1, sizeof *found);
        enum match_kind *how = calloc(ne ? ne : 1, sizeof *how);
        bool *trunc_ok = calloc(ne ? ne : 1, sizeof *trunc_ok);
        struct tfile **archived = calloc(cl.n + ne + 1, sizeof *archived);
        if (!ents || !saved || !found || !how || !trunc_ok || !archived) {
                free(ents), free(saved), free(found), free(how), free(trunc_ok), free(archived);
                cand_list_free(&cl);
                return -1;
        }
        ne = 0;
        for (size_t i = 0; i < state_count(t->state); i++) {
                struct state_entry *e = state_at(t->state, i);
                if (strcmp(e->source, s->name) != 0)
                        continue;
                ents[ne] = e;
                saved[ne] = saved_of_entry(e);
                trunc_ok[ne] = !e->finished;
                ne++;
        }
        match_pass(saved, ne, &cl, found, how, trunc_ok);

        size_t na = 0;
        bool known = ne > 0;
        int64_t watermark = 0;
        for (size_t i = 0; i < ne; i++) {
                struct state_entry *e = ents[i];
                if (e->seen > watermark)
                        watermark = e->seen;
                if (e->finished)
                        continue; /* done; kept to recognise it, pruned by age */
                if (found[i] < 0) {
                        if (list_err) {
                                /* not seen because a directory could not be
                                 * listed: still owed, looked for when read */
                                struct file_id id = saved[i].id;
                                struct tfile *f = tfile_new(s, -1, &id, e->path, e->offset, e);
                                if (!f)
                                        continue;
                                f->verified = false;
                                f->rotated_at = now - TAILER_ROTATE_GRACE_S;
                                owed_fail(&f->owed, list_err, f->path, s->name, now, t->log);
                                archived[na++] = f;
                                continue;
                        }
                        log_warn(t->log,
                                 "tracked file gone, its unread records cannot be delivered "
                                 "file=%s source=%s offset=%llu",
                                 q(b, sizeof b, e->path), s->name, (unsigned long long)e->offset);
                        state_remove(t->state, e);
                        ents[i] = NULL;
                        t->dirty = true;
                        continue;
                }
                struct candidate *cd = &cl.v[found[i]];
                uint64_t start = e->offset;
                struct file_id id = cd->fp_taken ? cd->id : saved[i].id;
                if (how[i] == MATCH_TRUNCATED ||
                    (how[i] != MATCH_BLOCKED && cd->size < e->offset)) {
                        log_warn(t->log,
                                 "file shrank while stopped, reading it again from 0 "
                                 "file=%s offset=%llu size=%llu",
                                 q(b, sizeof b, cd->path), (unsigned long long)e->offset,
                                 (unsigned long long)cd->size);
                        start = 0;
                        e->offset = 0;
                        state_set_header(t->state, e, NULL, 0, NULL);
                        entry_from_id(e, &id);
                        t->dirty = true;
                }
                if (how[i] == MATCH_COPIED)
                        state_set_id(t->state, e, cd->dev, cd->ino, NULL);
                if (strcmp(e->path, cd->path) != 0)
                        state_set_path(t->state, e, cd->path, NULL);
                if (how[i] == MATCH_BLOCKED)
                        id = (struct file_id){cd->dev, cd->ino, e->fp, e->fp_len};
                struct tfile *f = tfile_from_cand(s, cd, &id, start, e);
                if (!f)
                        continue;
                if (how[i] == MATCH_BLOCKED) {
                        f->verified = false;
                        owed_fail(&f->owed, cd->fp_errno, f->path, s->name, now, t->log);
                }
                if (found[i] == live_idx) {
                        /* held open from now on: once renamed, its descriptor
                         * is what leads to it */
                        f->lazy = false;
                        f->live = true;
                        s->live = f;
                        tfile_open(f); /* the live file is watched through its descriptor */
                } else {
                        f->rotated_at = now - TAILER_ROTATE_GRACE_S;
                        archived[na++] = f;
                }
                log_info(t->log, "resuming file=%s source=%s offset=%llu", q(b, sizeof b, f->path),
                         s->name, (unsigned long long)start);
        }

        /* Rotated files the state does not know: written while we were
         * down, they are read whole. Before any state exists they are
         * history, not ours to send. */
        for (size_t k = 0; k < cl.n; k++) {
                struct candidate *c = &cl.v[k];
                if (c->used || (long)k == live_idx || !known ||
                    (int64_t)c->mtime.tv_sec < watermark - UNKNOWN_ARCHIVE_MARGIN_S)
                        continue;
                struct tfile *f = queue_new_cand(t, s, c);
                if (!f)
                        continue;
                c->used = true;
                f->rotated_at = now - TAILER_ROTATE_GRACE_S;
                archived[na++] = f;
                log_info(t->log, "reading file rotated while stopped file=%s source=%s",
                         q(b, sizeof b, f->path), s->name);
        }
        qsort(archived, na, sizeof *archived, cmp_mtime);
        for (size_t k = 0; k < na; k++)
                queue_append(s, archived[k]);
        if (s->live)
                queue_append(s, s->live);

        free(ents), free(saved), free(found), free(how), free(trunc_ok), free(archived);
        cand_list_free(&cl);
        if (!s->live && live_idx >= 0)
                adopt_live(t, s, !known);
        return 0;
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

/* A chmod (IN_ATTRIB) in a source's directories: its owed files are tried
 * again at once. */
static void retry_owed(struct tsource *s)
{
        for (struct tfile *f = s->queue; f; f = f->next)
                owed_retry_now(&f->owed);
        owed_retry_now(&s->live_owed);
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
                if ((ev->wd == s->wd || ev->wd == s->archive_wd) && (ev->mask & IN_ATTRIB))
                        retry_owed(s);
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

static void drop_gone(struct tfile *f);

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
                for (struct tfile *f = s->queue; f; f = f->next) {
                        if (f->owed.err)
                                earliest(&when, f->owed.retry_at);
                        if (f->live || f->drained || f->owed.err)
                                continue;
                        earliest(&when, final_at(f));
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
                                source_check(t, &t->src[i]);
                }
        }
        for (size_t i = 0; i < t->nsrc; i++) {
                struct tsource *s = &t->src[i];
                if (s->live_owed.err && !owed_waiting(&s->live_owed, now) && !s->live)
                        adopt_live(t, s, false);
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
                                drop_gone(f);
                        }
                }
        }
}

size_t tailer_nsources(const struct tailer *t)
{
        return t->nsrc;
}

/* A queued file that is nowhere to be found: report it by its own last
 * known path and stop owing it. */
static void drop_gone(struct tfile *f)
{
        struct tsource *s = f->src;
        struct tailer *t = s->t;
        char b[512];
        if (f->refs || f->user) {
                /* read in part and given back its descriptor, then gone: the
                 * caller still holds it; it stays owed (and shown) instead */
                f->gone = false;
                owed_fail(&f->owed, ENOENT, f->path, s->name, time(NULL), t->log);
                return;
        }
        log_warn(t->log,
                 "tracked file gone, its unread records cannot be delivered file=%s source=%s "
                 "offset=%llu",
                 q(b, sizeof b, f->path), s->name, (unsigned long long)f->acked);
        queue_unlink(s, f);
        if (f->entry)
                state_remove(t->state, f->entry);
        t->dirty = true;
        tfile_free(f);
}

/* The first file from f on that can be read now. Owed files that cannot
 * are passed over (they keep their place and are tried again later). */
static struct tfile *first_ready(struct tfile *f)
{
        time_t now = time(NULL);
        while (f) {
                struct tfile *next = f->next;
                /* A parked file has been read to its end; it is opened
                 * again when its end may be final (its deadline wakes us). */
                bool parked = f->parked && f->fd < 0 && !tailer_file_final(f);
                if (!f->drained && !parked && !owed_waiting(&f->owed, now)) {
                        f->parked = false;
                        if (tfile_open(f) == 0)
                                return f;
                        if (f->gone)
                                drop_gone(f);
                }
                f = next;
        }
        return NULL;
}

struct tfile *tailer_head(struct tailer *t, size_t src)
{
        return first_ready(t->src[src].queue);
}

struct tfile *tailer_next(struct tfile *f)
{
        return first_ready(f->next);
}

struct tfile *tailer_queue_first(struct tailer *t, size_t src)
{
        return t->src[src].queue;
}

struct tfile *tailer_queue_next(struct tfile *f)
{
        return f->next;
}

ssize_t tailer_read(struct tfile *f, uint64_t off, void *buf, size_t len)
{
        if (f->fd < 0 && tfile_open(f) < 0)
                return -1;
        ssize_t n;
        do
                n = pread(f->fd, buf, len, (off_t)off);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                int e = errno;
                owed_fail(&f->owed, e, f->path, f->src->name, time(NULL), f->src->t->log);
                errno = e;
                return -1;
        }
        if (f->owed.err)
                owed_clear(&f->owed, f->path, f->src->name, time(NULL), f->src->t->log);
        if (n == 0) {
                /* At the end of an archived file while newer ones are read:
                 * its descriptor goes back until the next look, so that a
                 * backlog of many files holds one or two, not one each. A
                 * deleted file keeps it: its name no longer leads to it. */
                struct stat st;
                if (f->lazy && !f->live && tailer_file_superseded(f) && fstat(f->fd, &st) == 0 &&
                    st.st_nlink > 0) {
                        f->size = (uint64_t)st.st_size;
                        f->mtime = st.st_mtim;
                        close(f->fd);
                        f->fd = -1;
                        f->parked = true;
                }
                return 0;
        }
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

static void entry_header(struct tfile *f, const char *header, size_t len)
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

void tailer_file_set_header(struct tfile *f, const char *header, size_t len)
{
        entry_header(f, header, len);
}

void tailer_file_header_seen(struct tfile *f, uint64_t hgen, const char *header, size_t len)
{
        struct hver **pp = &f->hv, *last = NULL;
        while (*pp)
                last = *pp, pp = &(*pp)->next;
        if (last && last->hgen == hgen)
                return;
        struct hver *h = calloc(1, sizeof *h);
        if (!h || !(h->raw = malloc(len ? len : 1))) {
                free(h);
                return;
        }
        memcpy(h->raw, header, len);
        h->len = len;
        h->hgen = hgen;
        *pp = h;
        if (++f->nhv > HEADER_VERSIONS_MAX) {
                struct hver *old = f->hv;
                f->hv = old->next;
                free(old->raw);
                free(old);
                f->nhv--;
        }
}

/* The offset acknowledged was read under header generation hgen: that
 * header is the one to resume with; older ones are no longer needed. */
static void adopt_header(struct tfile *f, uint64_t hgen)
{
        struct hver *h = f->hv;
        while (h && h->hgen != hgen)
                h = h->next;
        if (!h)
                return;
        entry_header(f, h->raw, h->len);
        while (f->hv != h) {
                struct hver *old = f->hv;
                f->hv = old->next;
                free(old->raw);
                free(old);
                f->nhv--;
        }
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

static uint64_t size_now(const struct tfile *f)
{
        struct stat st;
        if (f->fd >= 0)
                return fstat(f->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
        return f->size;
}

bool tailer_file_superseded(const struct tfile *f)
{
        if (f->live)
                return false;
        for (const struct tfile *g = f->next; g; g = g->next) {
                if (size_now(g) > 0)
                        return true;
        }
        return false;
}

/* A copy of f made before f was truncated in place (copy-and-truncate
 * rotation): a rotated name holding f's content up to what was acknowledged,
 * on another inode, not followed yet. Returns a new tfile for it, or NULL. */
static struct tfile *find_copy(struct tailer *t, struct tfile *f)
{
        struct tsource *s = f->src;
        struct cand_list cl;
        cand_list_init(&cl);
        list_rotated(t, s, &cl);
        struct tfile *copy = NULL;
        struct match_saved sv = {.id = f->id, .offset = f->acked, .finished = false};
        for (size_t k = 0; k < cl.n && !copy; k++) {
                struct candidate *c = &cl.v[k];
                bool followed = false;
                for (struct tfile *g = s->queue; g && !followed; g = g->next)
                        followed = g->id.dev == c->dev && g->id.ino == c->ino;
                if (followed || match_saved(&sv, c) != MATCH_COPIED)
                        continue;
                copy = tfile_from_cand(s, c, &c->id, f->acked, NULL);
        }
        cand_list_free(&cl);
        return copy;
}

bool tailer_file_truncated(struct tfile *f, uint64_t offset)
{
        struct stat st;
        if (f->fd < 0 || fstat(f->fd, &st) < 0)
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
                 * over f's offsets (and the header in force there) and is
                 * read first. */
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
        f->tail_end = 0;
        f->gen++;
        hver_clear(f);
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

/* Where a file went: its name in the archive directory (or the live one),
 * found by inode. NULL when it is nowhere to be seen. */
static char *find_moved(const struct tsource *s, uint64_t dev, uint64_t ino)
{
        const char *dirs[2] = {s->archive_dir, s->dir};
        for (int i = 0; i < 2; i++) {
                DIR *d = dirs[i] ? opendir(dirs[i]) : NULL;
                if (!d)
                        continue;
                struct dirent *de;
                while ((de = readdir(d))) {
                        if ((uint64_t)de->d_ino != ino || !is_archive_name(de->d_name, (void *)s))
                                continue;
                        char path[PATH_MAX];
                        struct stat st;
                        if (snprintf(path, sizeof path, "%s/%s", dirs[i], de->d_name) <
                                (int)sizeof path &&
                            stat(path, &st) == 0 && (uint64_t)st.st_dev == dev) {
                                closedir(d);
                                return strdup(path);
                        }
                }
                closedir(d);
        }
        return NULL;
}

/* f is read to its end and no longer on its inode anywhere: a copy of the
 * whole of it in the rotated names (move-to to another file system) is f,
 * and its entry takes the copy's identity, so that it is known as done. */
static void find_done_copy(struct tfile *f)
{
        struct tsource *s = f->src;
        struct cand_list cl;
        cand_list_init(&cl);
        list_rotated(s->t, s, &cl);
        struct match_saved sv = {.id = f->id, .offset = f->final_end, .finished = true};
        for (size_t k = 0; k < cl.n && !f->has_copy; k++) {
                struct candidate *c = &cl.v[k];
                if (c->size != f->final_end || match_saved(&sv, c) != MATCH_COPIED)
                        continue;
                f->has_copy = true;
                f->copy_dev = c->dev;
                f->copy_ino = c->ino;
                set_path(s->t, f, c->path);
        }
        cand_list_free(&cl);
}

static void finish(struct tfile *f)
{
        struct tsource *s = f->src;
        struct tailer *t = s->t;
        char b[512];
        struct stat st;
        if (f->entry && (stat(f->path, &st) < 0 || (uint64_t)st.st_ino != f->id.ino ||
                         (uint64_t)st.st_dev != f->id.dev)) {
                /* Remember the archived name (and, for a copy on another file
                 * system, its inode), so the next start finds it where it is
                 * and knows it is done. */
                char *moved = find_moved(s, f->id.dev, f->id.ino);
                if (moved) {
                        set_path(t, f, moved);
                        free(moved);
                } else {
                        if (!f->has_copy)
                                find_done_copy(f);
                        if (f->has_copy) {
                                struct state_entry *other =
                                    state_find_id(t->state, f->copy_dev, f->copy_ino);
                                if (other && other != f->entry && other->finished)
                                        state_remove(t->state, other);
                                state_set_id(t->state, f->entry, f->copy_dev, f->copy_ino, NULL);
                        }
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

void tailer_ack_header(struct tfile *f, uint32_t gen, uint64_t offset, uint64_t hgen)
{
        if (f->done)
                return;
        if (gen != f->gen || offset <= f->acked) {
                if (gen == f->gen && offset == f->acked && hgen)
                        adopt_header(f, hgen);
                if (f->drained && f->acked >= f->final_end)
                        finish(f);
                return;
        }
        f->acked = offset;
        if (hgen)
                adopt_header(f, hgen);
        if (f->entry) {
                f->entry->offset = offset;
                f->entry->seen = (int64_t)time(NULL);
        }
        f->src->t->dirty = true;
        if (f->drained && f->acked >= f->final_end)
                finish(f);
}

void tailer_ack(struct tfile *f, uint32_t gen, uint64_t offset)
{
        tailer_ack_header(f, gen, offset, 0);
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
                uint64_t size = size_now(f);
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
