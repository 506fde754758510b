#include "archives.h"

#include "identity.h"
#include "input.h"
#include "pairmap.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct item {
        char *path;
        uint64_t dev, ino, size;
        struct archive_key key; /* key.name points into path */
};

struct expand {
        struct item *v;
        size_t n, cap;
        struct archives *out;
        const struct logger *log;
        int err; /* ENOMEM, or E2BIG past ARCHIVES_MAX */
};

/* A name from a directory is anyone's: quoted, with control bytes escaped,
 * so one line stays one line. */
static const char *q(char *b, size_t n, const char *s)
{
        return log_quote(b, n, s, strlen(s));
}

static void skip(struct archives *a, const char *path, const char *why)
{
        if (a->nskipped < ARCHIVES_SKIP_SHOWN) {
                char b[1024];
                q(b, sizeof b, path);
                size_t n = strlen(b) + strlen(why) + 4;
                char *s = malloc(n);
                if (s)
                        snprintf(s, n, "%s (%s)", b, why);
                a->skipped[a->nskipped] = s; /* NULL without memory: counted all the same */
        }
        a->nskipped++;
}

static int64_t local_day(time_t t)
{
        struct tm tm;
        if (!localtime_r(&t, &tm))
                return t / 86400;
        return archive_days(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

static void add_item(struct expand *x, const char *path, const struct stat *st)
{
        if (x->err)
                return;
        if (x->n == ARCHIVES_MAX) {
                log_error(x->log, "too many input files (more than %d)", ARCHIVES_MAX);
                x->err = E2BIG;
                return;
        }
        if (x->n == x->cap) {
                size_t nc = x->cap ? x->cap * 2 : 64;
                struct item *nv = realloc(x->v, nc * sizeof *nv);
                if (!nv) {
                        x->err = ENOMEM;
                        return;
                }
                x->v = nv;
                x->cap = nc;
        }
        struct item *e = &x->v[x->n];
        e->path = strdup(path);
        if (!e->path) {
                x->err = ENOMEM;
                return;
        }
        const char *base = strrchr(e->path, '/');
        base = base ? base + 1 : e->path;
        struct archive_name an;
        archive_parse(NULL, base, &an);
        int64_t mt = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
        e->key = archive_key_of(&an, mt, local_day(st->st_mtim.tv_sec), base);
        e->dev = (uint64_t)st->st_dev;
        e->ino = (uint64_t)st->st_ino;
        e->size = (uint64_t)st->st_size;
        x->n++;
}

/* A directory's entries: archives and NAME.csv[.gz] files; the rest listed
 * as left out. */
static void add_dir(struct expand *x, const char *dir)
{
        DIR *d = opendir(dir);
        char b[1024];
        if (!d) {
                log_error(x->log, "cannot list directory=%s error=\"%s\"", q(b, sizeof b, dir),
                          strerror(errno));
                x->out->had_errors = true;
                return;
        }
        size_t dl = strlen(dir);
        const char *sep = dl && dir[dl - 1] == '/' ? "" : "/";
        struct dirent *de;
        while ((de = readdir(d)) && !x->err) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                char p[PATH_MAX];
                if (snprintf(p, sizeof p, "%s%s%s", dir, sep, de->d_name) >= (int)sizeof p) {
                        skip(x->out, de->d_name, "path too long");
                        continue;
                }
                struct archive_name an;
                if (archive_parse(NULL, de->d_name, &an) == ARCHIVE_NONE) {
                        skip(x->out, p, "not an archive name");
                        continue;
                }
                struct stat st;
                if (stat(p, &st) < 0) {
                        struct stat lst;
                        int e = errno;
                        if (e == ELOOP)
                                skip(x->out, p, "a symbolic link loop");
                        else if (e == ENOENT && lstat(p, &lst) == 0)
                                skip(x->out, p, "a link to nothing");
                        else
                                skip(x->out, p, strerror(e));
                        continue;
                }
                if (!S_ISREG(st.st_mode)) {
                        skip(x->out, p, input_kind(st.st_mode));
                        continue;
                }
                add_item(x, p, &st);
        }
        closedir(d);
}

static void add_path(struct expand *x, const char *arg, bool from_glob)
{
        struct stat st;
        char b[1024];
        if (stat(arg, &st) == 0) {
                if (S_ISDIR(st.st_mode)) {
                        add_dir(x, arg);
                } else if (!S_ISREG(st.st_mode)) {
                        log_error(x->log, "refusing file=%s error=\"%s\"", q(b, sizeof b, arg),
                                  input_kind(st.st_mode));
                        x->out->had_errors = true;
                } else {
                        add_item(x, arg, &st);
                }
                return;
        }
        int e = errno;
        if (!from_glob && strpbrk(arg, "*?[")) {
                glob_t g;
                int r = glob(arg, 0, NULL, &g);
                if (r == GLOB_NOMATCH) {
                        log_error(x->log, "no file matches pattern=%s", q(b, sizeof b, arg));
                        x->out->had_errors = true;
                        return;
                }
                if (r != 0)
                        x->out->had_errors = true;
                for (size_t i = 0; r == 0 && i < g.gl_pathc; i++)
                        add_path(x, g.gl_pathv[i], true);
                globfree(&g);
                return;
        }
        log_error(x->log, "cannot read file=%s error=\"%s\"", q(b, sizeof b, arg),
                  e == ELOOP ? "a symbolic link loop" : strerror(e));
        x->out->had_errors = true;
}

static int cmp_item(const void *a, const void *b)
{
        const struct item *x = a, *y = b;
        return archive_cmp(&x->key, &y->key);
}

/* The content identity: the first bytes of the decompressed content. */
static int content_id(const char *path, char *head, struct archive_id *id)
{
        struct input in;
        if (input_open(&in, path) < 0)
                return -1;
        ssize_t n = input_head(&in, head, IDENTITY_FP_MAX);
        if (n >= 0) {
                size_t want = archive_id_len(head, (size_t)n, n < IDENTITY_FP_MAX);
                if (want > (size_t)n) {
                        ssize_t m = input_head(&in, head, want);
                        n = m < 0 ? n : m;
                }
        }
        int e = errno;
        input_close(&in);
        if (n < 0) {
                errno = e;
                return -1;
        }
        *id = archive_id_of(head, (size_t)n);
        return 0;
}

int archives_expand(const char *const *args, size_t nargs, struct archives *out,
                    const struct logger *log)
{
        memset(out, 0, sizeof *out);
        struct expand x = {.out = out, .log = log};
        for (size_t i = 0; i < nargs && !x.err; i++)
                add_path(&x, args[i], false);
        char *head = x.err ? NULL : malloc(ARCHIVE_ID_MAX);
        struct pairmap by_ino, by_content;
        pairmap_init(&by_ino, ARCHIVES_MAX);
        pairmap_init(&by_content, ARCHIVES_MAX);
        if (!x.err && !head)
                x.err = ENOMEM;
        if (!x.err) {
                if (x.n > 0) /* x.v is NULL when nothing matched */
                        qsort(x.v, x.n, sizeof *x.v, cmp_item);
                out->v = calloc(x.n ? x.n : 1, sizeof *out->v);
                if (!out->v)
                        x.err = ENOMEM;
        }
        for (size_t i = 0; i < x.n && !x.err; i++) {
                struct item *it = &x.v[i];
                size_t j;
                /* the same file named twice (a directory and a glob, two
                 * spellings): the same file, read once without a word */
                if (pairmap_get(&by_ino, it->ino, it->dev, &j))
                        continue;
                if (pairmap_put(&by_ino, it->ino, it->dev, i) < 0) {
                        x.err = errno;
                        break;
                }
                struct archive_in *a = &out->v[out->n];
                *a = (struct archive_in){
                    .path = it->path, .dev = it->dev, .ino = it->ino, .size = it->size};
                /* unreadable: kept, its reading says why */
                a->has_id = content_id(it->path, head, &a->id) == 0;
                if (a->has_id && pairmap_get(&by_content, a->id.fp, a->id.fp_len, &j)) {
                        char why[1100], b1[1024], b2[1024];
                        snprintf(why, sizeof why, "the same content as %s: read once",
                                 q(b2, sizeof b2, out->v[j].path));
                        log_info(log, "the same archive twice, read once file=%s same_as=%s",
                                 q(b1, sizeof b1, it->path), b2);
                        skip(out, it->path, why);
                        out->same_content++;
                        continue;
                }
                if (a->has_id && pairmap_put(&by_content, a->id.fp, a->id.fp_len, out->n) < 0) {
                        x.err = errno;
                        break;
                }
                it->path = NULL; /* now out's */
                out->n++;
        }
        for (size_t i = 0; i < x.n; i++)
                free(x.v[i].path);
        free(x.v);
        free(head);
        pairmap_free(&by_ino);
        pairmap_free(&by_content);
        if (x.err) {
                if (x.err != E2BIG)
                        log_error(log, "cannot list the input files error=\"%s\"", strerror(x.err));
                archives_free(out);
                return -1;
        }
        return 0;
}

void archives_print_skipped(const struct archives *a, FILE *out)
{
        if (!a->nskipped)
                return;
        fprintf(out, "skipped: %zu entr%s left out:", a->nskipped, a->nskipped == 1 ? "y" : "ies");
        size_t shown = a->nskipped < ARCHIVES_SKIP_SHOWN ? a->nskipped : ARCHIVES_SKIP_SHOWN;
        for (size_t i = 0; i < shown; i++) {
                if (a->skipped[i])
                        fprintf(out, "%s %s", i ? ";" : "", a->skipped[i]);
        }
        if (a->nskipped > shown)
                fprintf(out, "; and %zu more", a->nskipped - shown);
        fputc('\n', out);
}

void archives_free(struct archives *a)
{
        for (size_t i = 0; i < a->n; i++)
                free(a->v[i].path);
        free(a->v);
        size_t shown = a->nskipped < ARCHIVES_SKIP_SHOWN ? a->nskipped : ARCHIVES_SKIP_SHOWN;
        for (size_t i = 0; i < shown; i++)
                free(a->skipped[i]);
        memset(a, 0, sizeof *a);
}
