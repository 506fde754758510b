#include "match.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void cand_list_init(struct cand_list *l)
{
        memset(l, 0, sizeof *l);
}

void cand_list_free(struct cand_list *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i].path);
        free(l->v);
        memset(l, 0, sizeof *l);
}

static struct candidate *add_stat(struct cand_list *l, const char *path, const struct stat *st)
{
        for (size_t i = 0; i < l->n; i++) {
                if (l->v[i].dev == (uint64_t)st->st_dev && l->v[i].ino == (uint64_t)st->st_ino)
                        return &l->v[i];
        }
        if (l->n == l->alloc) {
                size_t na = l->alloc ? l->alloc * 2 : 64;
                struct candidate *v = realloc(l->v, na * sizeof *v);
                if (!v)
                        return NULL;
                l->v = v;
                l->alloc = na;
        }
        struct candidate *c = &l->v[l->n];
        memset(c, 0, sizeof *c);
        c->path = strdup(path);
        if (!c->path)
                return NULL;
        c->dev = (uint64_t)st->st_dev;
        c->ino = (uint64_t)st->st_ino;
        c->size = (uint64_t)st->st_size;
        c->mtime = st->st_mtim;
        c->regular = S_ISREG(st->st_mode);
        c->line_end = -1;
        l->n++;
        return c;
}

struct candidate *cand_add(struct cand_list *l, const char *path)
{
        struct stat st;
        if (stat(path, &st) < 0)
                return NULL;
        return add_stat(l, path, &st);
}

int cand_scan(struct cand_list *l, const char *dir, bool (*accept)(const char *name, void *ctx),
              void *ctx)
{
        DIR *d = opendir(dir);
        if (!d)
                return -1;
        int dfd = dirfd(d);
        struct dirent *de;
        errno = 0;
        while ((de = readdir(d))) {
                if (!accept(de->d_name, ctx))
                        continue;
                char path[PATH_MAX];
                struct stat st;
                if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path ||
                    fstatat(dfd, de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
                        continue;
                if (!add_stat(l, path, &st)) {
                        int e = errno;
                        closedir(d);
                        errno = e;
                        return -1;
                }
        }
        closedir(d);
        return 0;
}

int cand_fingerprint(struct candidate *c)
{
        if (c->fp_taken)
                return 0;
        if (c->fp_errno) {
                /* tried in this look already: one open per candidate */
                errno = c->fp_errno;
                return -1;
        }
        int fd = open(c->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0) {
                c->fp_errno = errno;
                return -1;
        }
        struct file_id id;
        long nl;
        int rc = identity_of_fd_line(fd, &id, &nl);
        int e = errno;
        close(fd);
        if (rc < 0) {
                c->fp_errno = e;
                errno = e;
                return -1;
        }
        if (id.dev != c->dev || id.ino != c->ino) {
                /* replaced between the listing and now: take it as found now */
                c->dev = id.dev;
                c->ino = id.ino;
        }
        c->id = id;
        c->line_end = nl;
        c->fp_taken = true;
        return 0;
}

/* Whether c's first s->fp_len bytes hash to s->fp: from c's own
 * fingerprint when it covers the same bytes, else by reading them. */
static bool prefix_matches(const struct file_id *s, struct candidate *c)
{
        if (s->fp_len == 0)
                return true; /* nothing fingerprinted (identity_compare) */
        if (c->id.fp_len == s->fp_len)
                return c->id.fp == s->fp;
        if (c->id.fp_len < s->fp_len)
                return false;
        int fd = open(c->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return false;
        /* compare as if c had s's device and inode: only the content counts */
        struct file_id as = *s;
        struct stat st;
        bool ok = false;
        if (fstat(fd, &st) == 0) {
                as.dev = (uint64_t)st.st_dev;
                as.ino = (uint64_t)st.st_ino;
                ok = identity_compare(&as, fd) == IDENTITY_SAME;
        }
        close(fd);
        return ok;
}

enum match_kind match_saved(const struct match_saved *s, struct candidate *c)
{
        if (!c->regular)
                return MATCH_NONE;
        bool same_inode = c->dev == s->id.dev && c->ino == s->id.ino;
        if (same_inode && s->finished && c->size == s->offset && c->size >= s->id.fp_len &&
            !c->fp_taken && s->id.fp_len == IDENTITY_FP_MAX) {
                /* A finished file still there at its final size, on its inode:
                 * known without opening it again (archives are large). */
                return MATCH_SAME;
        }
        if (cand_fingerprint(c) < 0)
                return same_inode ? MATCH_BLOCKED : MATCH_NONE;
        same_inode = c->dev == s->id.dev && c->ino == s->id.ino;
        if (c->size < s->id.fp_len || c->id.fp_len < s->id.fp_len)
                return same_inode ? MATCH_TRUNCATED : MATCH_NONE;
        if (!prefix_matches(&s->id, c))
                return MATCH_NONE; /* another file (on a reused inode, or elsewhere) */
        bool strong = identity_strong_at(c->line_end, s->id.fp_len);
        if (same_inode) {
                /* A header-only fingerprint proves nothing about a finished
                 * file: the same bytes start every file of the source. */
                if (s->finished && !strong && c->size != s->offset)
                        return MATCH_NONE;
                return MATCH_SAME;
        }
        if (!strong)
                return MATCH_NONE;
        if (s->finished ? c->size != s->offset : c->size < s->offset)
                return MATCH_NONE;
        return MATCH_COPIED;
}

void match_pass(const struct match_saved *saved, size_t n, struct cand_list *l, long *found,
                enum match_kind *how, const bool *allow_truncated)
{
        long *shrunk = calloc(n ? n : 1, sizeof *shrunk);
        for (size_t i = 0; i < n; i++) {
                found[i] = -1;
                how[i] = MATCH_NONE;
                if (shrunk)
                        shrunk[i] = -1;
        }
        /* 1: the file itself, on its inode */
        for (size_t i = 0; i < n; i++) {
                for (size_t k = 0; k < l->n; k++) {
                        struct candidate *c = &l->v[k];
                        if (c->used || c->dev != saved[i].id.dev || c->ino != saved[i].id.ino)
                                continue;
                        enum match_kind m = match_saved(&saved[i], c);
                        if (m == MATCH_SAME || m == MATCH_BLOCKED) {
                                found[i] = (long)k;
                                how[i] = m;
                                c->used = true;
                        } else if (m == MATCH_TRUNCATED && allow_truncated && allow_truncated[i] &&
                                   shrunk) {
                                shrunk[i] = (long)k;
                        }
                        break;
                }
        }
        /* 2: a copy, among the candidates no file claimed as itself */
        for (size_t i = 0; i < n; i++) {
                if (found[i] >= 0)
                        continue;
                for (size_t k = 0; k < l->n; k++) {
                        struct candidate *c = &l->v[k];
                        if (c->used || (long)k == (shrunk ? shrunk[i] : -1))
                                continue;
                        /* cheap tests first: a copy has the size that fits */
                        if (saved[i].finished ? c->size != saved[i].offset
                                              : c->size < saved[i].offset)
                                continue;
                        if (match_saved(&saved[i], c) == MATCH_COPIED) {
                                found[i] = (long)k;
                                how[i] = MATCH_COPIED;
                                c->used = true;
                                break;
                        }
                }
        }
        /* 3: the file shrunk on its own inode, when no copy holds its records */
        for (size_t i = 0; shrunk && i < n; i++) {
                if (found[i] < 0 && shrunk[i] >= 0 && !l->v[shrunk[i]].used) {
                        found[i] = shrunk[i];
                        how[i] = MATCH_TRUNCATED;
                        l->v[shrunk[i]].used = true;
                }
        }
        free(shrunk);
}
