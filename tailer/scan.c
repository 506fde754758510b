/* Looking at the disk for a source: the live path, the rotated names in its
 * directories, a file's new name found by its inode. Observation only: what
 * the files are is the reconciler's to decide (reconcile.h). */
#include "tailer_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Rotated names as PowerMTA and logrotate write them (archive.h); a
 * compressed one is not read by the daemon (replay reads those). */
bool source_is_rotated_name(const struct tsource *s, const char *name)
{
        struct archive_name an;
        enum archive_kind k = archive_parse(s->stem, name, &an);
        return !an.gz && (k == ARCHIVE_PMTA || k == ARCHIVE_NUMBERED || k == ARCHIVE_DATED);
}

static bool accept_rotated(const char *name, void *ctx)
{
        return source_is_rotated_name(ctx, name);
}

static int64_t local_day(time_t t)
{
        struct tm tm;
        if (!localtime_r(&t, &tm))
                return ARCHIVE_NO_DAY;
        return archive_days(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

static int cand_cmp(const void *a, const void *b)
{
        const struct candidate *x = a, *y = b;
        if (x->live != y->live)
                return x->live ? 1 : -1; /* the live file is the newest */
        return archive_cmp(&x->key, &y->key);
}

int source_list_rotated(struct tailer *t, struct tsource *s, struct cand_list *cl)
{
        const char *dirs[2] = {s->archive_dir, NULL};
        if (!s->archive_dir || strcmp(s->archive_dir, s->dir) != 0)
                dirs[1] = s->dir;
        int failed = 0;
        for (int i = 0; i < 2; i++) {
                if (!dirs[i])
                        continue;
                if (cand_scan(cl, dirs[i], accept_rotated, s) < 0 && errno != ENOENT) {
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

void source_order(const struct tsource *s, struct cand_list *cl)
{
        for (size_t i = 0; i < cl->n; i++) {
                struct candidate *c = &cl->v[i];
                const char *slash = strrchr(c->path, '/');
                const char *name = slash ? slash + 1 : c->path;
                struct archive_name an;
                archive_parse(s->stem, name, &an);
                int64_t ns = (int64_t)c->mtime.tv_sec * 1000000000 + c->mtime.tv_nsec;
                c->key = archive_key_of(&an, ns, local_day(c->mtime.tv_sec), name);
        }
        if (cl->n > 1)
                qsort(cl->v, cl->n, sizeof cl->v[0], cand_cmp);
}

int source_observe(struct tailer *t, struct tsource *s, struct cand_list *cl, int *live_err)
{
        *live_err = 0;
        struct stat st;
        if (stat(s->path, &st) < 0) {
                if (errno != ENOENT)
                        *live_err = errno;
        } else if (!S_ISREG(st.st_mode)) {
                *live_err = OWED_NOT_REGULAR; /* a FIFO or a device is never read */
        } else {
                struct candidate *c = cand_add(cl, s->path);
                if (c)
                        c->live = true;
                else if (errno != ENOENT)
                        *live_err = errno;
        }
        int err = source_list_rotated(t, s, cl);
        source_order(s, cl);
        return err;
}

int source_find_moved(const struct tsource *s, uint64_t dev, uint64_t ino, char **out)
{
        *out = NULL;
        const char *dirs[2] = {s->archive_dir, s->dir};
        int failed = 0;
        for (int i = 0; i < 2; i++) {
                if (!dirs[i])
                        continue;
                DIR *d = opendir(dirs[i]);
                if (!d) {
                        if (errno != ENOENT)
                                failed = errno;
                        continue;
                }
                struct dirent *de;
                while ((de = readdir(d))) {
                        if ((uint64_t)de->d_ino != ino || !source_is_rotated_name(s, de->d_name))
                                continue;
                        char path[PATH_MAX];
                        struct stat st;
                        if (snprintf(path, sizeof path, "%s/%s", dirs[i], de->d_name) <
                                (int)sizeof path &&
                            stat(path, &st) == 0 && (uint64_t)st.st_dev == dev) {
                                closedir(d);
                                *out = strdup(path);
                                return *out ? 0 : ENOMEM;
                        }
                }
                closedir(d);
        }
        return failed;
}

/* Offset just past the last line break before `size`: where to start in a
 * file met for the first time with start_at = end. */
uint64_t last_line_end(int fd, uint64_t size)
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

/* Two files agree when their first bytes and the last bytes they have in
 * common are equal: one is a copy of the other, maybe still being made. */
#define AGREE_HEAD (64 * 1024)
#define AGREE_TAIL 4096

bool pread_all(int fd, void *buf, size_t n, uint64_t off)
{
        return pread(fd, buf, n, (off_t)off) == (ssize_t)n;
}

/* How the file open as b relates to the file open as a: a copy of it when
 * b is equal to a's beginning over its first bytes and its last ones, and
 * reaches past the first line (every file of a source starts with the same
 * header) or is all of a; PREFIX when they agree over too little to tell
 * (a copy being made). */
static enum rc_rel fds_relate(int a, uint64_t size_a, int b, uint64_t size_b)
{
        /* b is a's copy or a copy being made: never more than a holds (a
         * file a copy was made of only grows, unless it was rewritten,
         * which the caller tells apart) */
        if (size_b > size_a)
                return RC_REL_NONE;
        uint64_t n = size_b;
        if (n == 0)
                return RC_REL_PREFIX;
        static const size_t head = AGREE_HEAD;
        size_t h = n < head ? (size_t)n : head;
        char *x = malloc(h), *y = malloc(h);
        bool ok = x && y && pread_all(a, x, h, 0) && pread_all(b, y, h, 0) && memcmp(x, y, h) == 0;
        /* past the header by a whole record: the records of a source all
         * begin alike (type, a timestamp of the same hour), so a few bytes
         * past the header tell nothing */
        bool past_header = true;
        if (ok && size_a != size_b) {
                const char *nl = memchr(x, '\n', h);
                const char *nl2 = nl ? memchr(nl + 1, '\n', h - (size_t)(nl + 1 - x)) : NULL;
                past_header = nl2 != NULL;
        }
        if (ok && n > h) {
                size_t tl = AGREE_TAIL;
                ok = pread_all(a, x, tl, n - tl) && pread_all(b, y, tl, n - tl) &&
                     memcmp(x, y, tl) == 0;
        }
        free(x);
        free(y);
        if (!ok)
                return RC_REL_NONE;
        return past_header ? RC_REL_COPY : RC_REL_PREFIX;
}

/* How the file at candidate c relates to the open file fd. A candidate no
 * longer on its inode (replaced since the listing) cannot be told now: the
 * next look will. */
enum rc_rel fd_cand_relate(int fd, const struct candidate *c)
{
        struct stat sa, st;
        if (fstat(fd, &sa) < 0)
                return RC_REL_NONE;
        int b = open(c->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (b < 0) {
                /* gone since the listing, or unreadable for now: a copy of
                 * what is open (never larger) cannot be told yet; a larger
                 * file is not one */
                return c->size <= (uint64_t)sa.st_size ? RC_REL_PREFIX : RC_REL_NONE;
        }
        enum rc_rel r = RC_REL_NONE;
        if (fstat(b, &st) == 0 && S_ISREG(st.st_mode)) {
                if ((uint64_t)st.st_ino != c->ino || (uint64_t)st.st_dev != c->dev)
                        r = RC_REL_PREFIX;
                else
                        r = fds_relate(fd, (uint64_t)sa.st_size, b, (uint64_t)st.st_size);
        }
        close(b);
        /* shrunk while compared (a truncation under way): cannot tell now */
        struct stat after;
        if (r == RC_REL_NONE && fstat(fd, &after) == 0 && after.st_size < sa.st_size)
                r = RC_REL_PREFIX;
        return r;
}

/* How candidate c relates to candidate on (both as listed). */
enum rc_rel cands_relate(const struct candidate *on, const struct candidate *c)
{
        int a = open(on->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (a < 0) {
                /* gone since the listing, or unreadable for now (its copy
                 * readable already): told at a later look; a copy is never
                 * larger than its original */
                if (errno == ENOENT)
                        return RC_REL_PREFIX;
                if (c->size > on->size)
                        return RC_REL_NONE;
                /* a candidate unreadable as well is queued and owed */
                int b = open(c->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
                if (b < 0)
                        return RC_REL_NONE;
                close(b);
                return RC_REL_PREFIX;
        }
        struct stat st;
        enum rc_rel r = RC_REL_NONE;
        if (fstat(a, &st) == 0) {
                if ((uint64_t)st.st_ino != on->ino || (uint64_t)st.st_dev != on->dev ||
                    (uint64_t)st.st_size < on->size)
                        r = RC_REL_PREFIX; /* replaced or shrunk since the listing */
                else
                        r = fd_cand_relate(a, c);
        }
        close(a);
        return r;
}
