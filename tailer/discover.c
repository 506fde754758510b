#include "tailer_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
void source_adopt_live(struct tailer *t, struct tsource *s, bool first_run)
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
        char *moved = source_find_moved(s, f->id.dev, f->id.ino);
        if (moved) {
                tfile_set_path(t, f, moved);
                free(moved);
        }
        log_info(t->log, "rotated file=%s source=%s how=%s", q(b, sizeof b, f->path), s->name, why);
}

int tfile_cmp_mtime(const void *a, const void *b)
{
        const struct tfile *const *x = a, *const *y = b;
        const struct timespec *sa = &(*x)->mtime, *sb = &(*y)->mtime;
        if (sa->tv_sec != sb->tv_sec)
                return sa->tv_sec < sb->tv_sec ? -1 : 1;
        if (sa->tv_nsec != sb->tv_nsec)
                return sa->tv_nsec < sb->tv_nsec ? -1 : 1;
        return strcmp((*x)->path, (*y)->path);
}

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

/* List the source's rotated files (the archive and, for rotation into the
 * same directory, the live file's own). Returns 0, or the errno of a
 * directory that exists but cannot be listed (logged). */
int source_list_rotated(struct tailer *t, struct tsource *s, struct cand_list *cl)
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
                        /* once per streak while a look is owed */
                        if (!s->list_owed.err)
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
                        tfile_set_path(t, f, c->path);
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
struct tfile *queue_new_cand(struct tailer *t, struct tsource *s, struct candidate *c)
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
/* Queue the rotated files not yet known, written since `since`: files
 * rotated before they were seen. They go before the live file, in the
 * order they were written. A listing that fails leaves the look owed
 * (source_list_again tries it on the owed backoff): a file rotated while
 * no descriptor was left must not be skipped for good. */
static void queue_missed(struct tailer *t, struct tsource *s, time_t since)
{
        if (s->list_owed.err && s->list_since < since)
                since = s->list_since; /* a look still owed reaches further back */
        struct cand_list cl;
        cand_list_init(&cl);
        int err = source_list_rotated(t, s, &cl);
        struct tfile **found = calloc(cl.n ? cl.n : 1, sizeof *found);
        size_t nf = 0;
        for (size_t k = 0; found && k < cl.n; k++) {
                struct candidate *c = &cl.v[k];
                if (c->mtime.tv_sec < since || known_file(t, s, c))
                        continue;
                struct tfile *f = queue_new_cand(t, s, c);
                if (!f) {
                        err = err ? err : ENOMEM;
                        continue;
                }
                f->rotated_at = time(NULL);
                found[nf++] = f;
                char b[512];
                log_warn(t->log, "reading a file rotated before it was seen file=%s source=%s",
                         q(b, sizeof b, f->path), s->name);
        }
        if (!found && cl.n)
                err = ENOMEM;
        if (found) {
                qsort(found, nf, sizeof *found, tfile_cmp_mtime);
                /* before the live file (when a later look found them), and
                 * the reader starts again from the queue's head */
                struct tfile **pp = &s->queue;
                while (*pp && *pp != s->live)
                        pp = &(*pp)->next;
                for (size_t k = 0; k < nf; k++) {
                        found[k]->next = *pp;
                        *pp = found[k];
                        pp = &found[k]->next;
                }
                if (nf && s->live)
                        t->requeued = true;
        }
        free(found);
        cand_list_free(&cl);
        time_t now = time(NULL);
        const char *dir = s->archive_dir ? s->archive_dir : s->dir;
        if (err) {
                s->list_since = since;
                owed_note(&s->list_owed, err, now);
        } else if (s->list_owed.err) {
                char b[512];
                log_info(t->log,
                         "directory listed again directory=%s source=%s error_was=\"%s\" "
                         "lasted=%llds",
                         q(b, sizeof b, dir), s->name, owed_reason(s->list_owed.err),
                         (long long)(now - s->list_owed.since));
                s->list_owed = (struct owed){0};
                s->list_since = 0;
        }
}

void source_list_again(struct tailer *t, struct tsource *s)
{
        queue_missed(t, s, s->list_since);
}

/* Compare the live path with what we follow, and act on the difference. */
void source_check(struct tailer *t, struct tsource *s)
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
                source_adopt_live(t, s, false);
        } else if (!exists) {
                s->live_owed.err = 0; /* nothing there to refuse */
        }
        if (s->live)
                s->last_live_since = s->live->since;
}

/* Where a file went: its name in the archive directory (or the live one),
 * found by inode. NULL when it is nowhere to be seen. */
char *source_find_moved(const struct tsource *s, uint64_t dev, uint64_t ino)
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
