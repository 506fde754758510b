/* `pmtatail import-sincedb`: Logstash's sincedb into offsets.json (see
 * sincedb.h for the format and the rules). */
#include "sincedb.h"

#include "identity.h"
#include "pmta_csv.h"
#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

/* A sincedb holds one line per file Logstash saw in the last weeks: a few
 * hundred. Far more is not a sincedb. */
#define SINCEDB_FILE_MAX  (16u * 1024 * 1024)
#define SINCEDB_LINES_MAX 100000
/* Files looked at per source directory. */
#define CANDIDATES_MAX 20000
#define READ_CHUNK     (64 * 1024)

struct sdb_line {
        unsigned lineno;
        uint64_t ino;
        unsigned major, minor;
        uint64_t offset;
        bool has_time;
        double last_active;
        const char *path; /* "" when not given; points into the file's text */
};

struct candidate {
        char *path;
        size_t src; /* index of its [source] */
        uint64_t dev, ino;
        bool taken; /* matched by an earlier line */
        unsigned taken_by;
};

struct cands {
        struct candidate *v;
        size_t n, cap;
};

static bool all_digits(const char *s)
{
        if (!*s)
                return false;
        for (; *s; s++)
                if (*s < '0' || *s > '9')
                        return false;
        return true;
}

static int parse_u64(const char *s, uint64_t *out)
{
        if (!all_digits(s) || strlen(s) > 20)
                return -1;
        errno = 0;
        unsigned long long v = strtoull(s, NULL, 10);
        if (errno)
                return -1;
        *out = v;
        return 0;
}

/* Split one line (modified in place) into l. Returns 0, or -1 with the
 * reason in why. */
static int parse_line(char *s, struct sdb_line *l, char *why, size_t whylen)
{
        char *f[5];
        size_t n = 0;
        char *p = s;
        while (n < 5) {
                while (*p == ' ' || *p == '\t')
                        p++;
                if (!*p)
                        break;
                f[n++] = p;
                while (*p && *p != ' ' && *p != '\t')
                        p++;
                if (*p)
                        *p++ = '\0';
        }
        while (*p == ' ' || *p == '\t')
                p++;
        /* the path is the rest of the line: it may hold spaces */
        char *end = p + strlen(p);
        while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
                *--end = '\0';
        l->path = p;
        if (n < 4) {
                snprintf(why, whylen, "%zu fields, want INODE MAJOR MINOR OFFSET [TIME [PATH]]", n);
                return -1;
        }
        uint64_t maj, min;
        if (parse_u64(f[0], &l->ino) < 0) {
                snprintf(why, whylen,
                         "inode \"%.40s\" is not a number (a sincedb written on Windows?)", f[0]);
                return -1;
        }
        if (parse_u64(f[1], &maj) < 0 || parse_u64(f[2], &min) < 0 || maj > UINT32_MAX ||
            min > UINT32_MAX) {
                snprintf(why, whylen, "device \"%.20s %.20s\" is not MAJOR MINOR", f[1], f[2]);
                return -1;
        }
        l->major = (unsigned)maj;
        l->minor = (unsigned)min;
        if (parse_u64(f[3], &l->offset) < 0 || l->offset > INT64_MAX) {
                snprintf(why, whylen, "offset \"%.40s\" is not a byte count", f[3]);
                return -1;
        }
        l->has_time = n == 5;
        if (l->has_time) {
                char *e;
                errno = 0;
                l->last_active = strtod(f[4], &e);
                if (errno || *e || e == f[4] || !(l->last_active >= 0) || l->last_active > 1e12) {
                        snprintf(why, whylen, "last-active time \"%.40s\" is not epoch seconds",
                                 f[4]);
                        return -1;
                }
        }
        return 0;
}

static int cand_add(struct cands *c, const char *path, size_t src)
{
        struct stat st;
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
                return 0;
        for (size_t i = 0; i < c->n; i++)
                if (c->v[i].dev == (uint64_t)st.st_dev && c->v[i].ino == (uint64_t)st.st_ino)
                        return 0;
        if (c->n == CANDIDATES_MAX)
                return 0;
        if (c->n == c->cap) {
                size_t cap = c->cap ? 2 * c->cap : 64;
                struct candidate *v = realloc(c->v, cap * sizeof *v);
                if (!v)
                        return -1;
                c->v = v;
                c->cap = cap;
        }
        char *p = strdup(path);
        if (!p)
                return -1;
        c->v[c->n++] = (struct candidate){
            .path = p, .src = src, .dev = (uint64_t)st.st_dev, .ino = (uint64_t)st.st_ino};
        return 0;
}

/* The rotated names of a source in dir, as the daemon looks for them:
 * "bounces-*" for bounces.csv. */
static int scan_dir(struct cands *c, const char *dir, const char *stem, size_t src)
{
        DIR *d = opendir(dir);
        if (!d)
                return 0;
        struct dirent *de;
        int rc = 0;
        while (rc == 0 && (de = readdir(d))) {
                if (strncmp(de->d_name, stem, strlen(stem)) != 0)
                        continue;
                char path[PATH_MAX];
                if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path)
                        continue;
                rc = cand_add(c, path, src);
        }
        closedir(d);
        return rc;
}

static int collect(struct cands *c, const struct config *cfg)
{
        for (size_t i = 0; i < cfg->n_sources; i++) {
                const struct config_source *s = &cfg->sources[i];
                if (cand_add(c, s->path, i) < 0)
                        return -1;
                char dir[PATH_MAX], stem[PATH_MAX];
                const char *slash = strrchr(s->path, '/');
                const char *base = slash ? slash + 1 : s->path;
                if (slash)
                        snprintf(dir, sizeof dir, "%.*s",
                                 (int)(slash == s->path ? 1 : slash - s->path), s->path);
                else
                        snprintf(dir, sizeof dir, ".");
                const char *dot = strrchr(base, '.');
                size_t sl = dot && dot != base ? (size_t)(dot - base) : strlen(base);
                snprintf(stem, sizeof stem, "%.*s-", (int)sl, base);
                if (s->archive_dir && scan_dir(c, s->archive_dir, stem, i) < 0)
                        return -1;
                if ((!s->archive_dir || strcmp(s->archive_dir, dir) != 0) &&
                    scan_dir(c, dir, stem, i) < 0)
                        return -1;
        }
        return 0;
}

/* Logstash (JRuby, through jnr-posix) splits st_dev the old BSD way: the
 * major is bits 24..31, the minor the low 24 bits, so a file on Linux's
 * 254:0 is written "0 65024". A sincedb written by other tools may use
 * glibc's major() and minor(): both are accepted (they agree on the small
 * device numbers where they could meet). */
static bool dev_matches(uint64_t dev, unsigned maj, unsigned min)
{
        if (((dev >> 24) & 0xff) == maj && (dev & 0xffffff) == min)
                return true;
        return major((dev_t)dev) == maj && minor((dev_t)dev) == min;
}

/* Finding the record boundary at or after an offset. */
struct boundary {
        uint64_t target;
        bool found;
        uint64_t at;
        char *header; /* the header in force there (malloc'd), or NULL */
        size_t header_len;
        bool header_oom;
};

static void take_header(struct boundary *b, const struct pmta_header *h)
{
        if (!h || b->header)
                return;
        b->header = malloc(h->raw_len + 1);
        if (!b->header) {
                b->header_oom = true;
                return;
        }
        memcpy(b->header, h->raw, h->raw_len);
        b->header[h->raw_len] = '\0';
        b->header_len = h->raw_len;
}

/* A record (or a refused one) from start to end: the first one that ends
 * at or after the target decides. The target inside it: resume after it;
 * the target before it (between records, in rows not forwarded): at it. */
static void boundary_at(struct boundary *b, uint64_t start, uint64_t end,
                        const struct pmta_header *h)
{
        if (b->found || end < b->target)
                return;
        b->found = true;
        b->at = start >= b->target ? start : end;
        take_header(b, h);
}

struct bctx {
        struct boundary *b;
        struct pmta_parser *p;
};

static void on_rec(void *ctx, const struct pmta_record *r)
{
        struct bctx *c = ctx;
        boundary_at(c->b, r->start, r->end, r->header);
}

static void on_rej(void *ctx, const struct pmta_reject *rej)
{
        struct bctx *c = ctx;
        boundary_at(c->b, rej->start, rej->end, pmta_parser_header(c->p));
}

/* Where the daemon must resume in fd to go on after Logstash's `offset`:
 * b->at. Returns 0, or -1 with the reason in why. */
static int resume_offset(int fd, const struct config_source *cs, uint64_t offset, uint64_t size,
                         struct boundary *b, char *why, size_t whylen)
{
        memset(b, 0, sizeof *b);
        b->target = offset;
        if (offset == 0)
                return 0;
        const char *types[CONFIG_MAX_RECORD_TYPES];
        for (size_t i = 0; i < cs->n_records; i++)
                types[i] = cs->records[i];
        /* The source's own types: a row it does not forward is invisible
         * here, and skipping it loses nothing. */
        struct bctx ctx = {.b = b};
        struct pmta_parser_opts po = {
            .record_max = cs->record_max,
            .types = types,
            .ntypes = cs->n_records,
            .columns = cs->columns,
            .on_record = on_rec,
            .on_reject = on_rej,
            .ctx = &ctx,
        };
        struct pmta_parser *p = pmta_parser_new(&po);
        ctx.p = p;
        char *chunk = malloc(READ_CHUNK);
        if (!p || !chunk) {
                pmta_parser_free(p);
                free(chunk);
                snprintf(why, whylen, "out of memory");
                return -1;
        }
        int rcode = 0;
        while (!b->found) {
                uint64_t off = pmta_parser_next_offset(p);
                ssize_t n = pread(fd, chunk, READ_CHUNK, (off_t)off);
                if (n < 0) {
                        snprintf(why, whylen, "cannot read: %s", strerror(errno));
                        rcode = -1;
                        break;
                }
                int r = n > 0 ? pmta_parser_feed(p, chunk, (size_t)n) : PMTA_FEED_OK;
                if (r < 0) {
                        snprintf(why, whylen, "out of memory parsing");
                        rcode = -1;
                        break;
                }
                if (n == 0)
                        break;
        }
        if (rcode == 0 && !b->found) {
                /* No record ends at or after the target. What is left is
                 * rows not forwarded and line breaks (resume past them, at
                 * the target at least), or a last record still being
                 * written: resume at its start, it goes whole once complete
                 * (Logstash sent only the lines of it it had). */
                uint64_t settled = pmta_parser_settled_offset(p);
                b->found = true;
                b->at = pmta_parser_pending(p) == 0 && settled < offset ? offset : settled;
                if (b->at > size)
                        b->at = size;
                take_header(b, pmta_parser_header(p));
        }
        if (b->header_oom) {
                snprintf(why, whylen, "out of memory");
                rcode = -1;
        }
        pmta_parser_free(p);
        free(chunk);
        return rcode;
}

/* Is another process holding the state directory's lock? */
static bool state_locked(const char *dir)
{
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, STATE_LOCK_NAME);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        bool held = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
        close(fd);
        return held;
}

/* Birth time of the file, when the file system keeps one. */
static bool birth_time(const char *path, double *out)
{
        struct statx sx;
        if (statx(AT_FDCWD, path, 0, STATX_BTIME, &sx) < 0 || !(sx.stx_mask & STATX_BTIME))
                return false;
        *out = (double)sx.stx_btime.tv_sec + sx.stx_btime.tv_nsec / 1e9;
        return true;
}

static char *read_sincedb(const char *path, size_t *len, double *mtime, char *why, size_t whylen)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
                snprintf(why, whylen, "%s", strerror(errno));
                if (fd >= 0)
                        close(fd);
                return NULL;
        }
        if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > SINCEDB_FILE_MAX) {
                snprintf(why, whylen, "%s",
                         S_ISREG(st.st_mode) ? "larger than 16 MiB: not a sincedb"
                                             : "not a regular file");
                close(fd);
                return NULL;
        }
        *mtime = (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9;
        char *text = malloc((size_t)st.st_size + 1);
        size_t got = 0;
        while (text && got < (size_t)st.st_size) {
                ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                got += (size_t)n;
        }
        close(fd);
        if (!text || got != (size_t)st.st_size) {
                snprintf(why, whylen, "%s", text ? "cannot read it whole" : "out of memory");
                free(text);
                return NULL;
        }
        text[got] = '\0';
        *len = got;
        return text;
}

static int usage(FILE *err)
{
        fputs("usage: pmtatail [-c FILE] import-sincedb [--dry-run] SINCEDB_FILE\n", err);
        return 2;
}

int cmd_import_sincedb(int argc, char **argv, const struct config *cfg, FILE *out, FILE *err)
{
        bool dry = false;
        const char *file = NULL;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--dry-run") == 0)
                        dry = true;
                else if (argv[i][0] == '-' && argv[i][1])
                        return usage(err);
                else if (file)
                        return usage(err);
                else
                        file = argv[i];
        }
        if (!file)
                return usage(err);

        char why[512];
        size_t len = 0;
        double db_mtime = 0;
        char *text = read_sincedb(file, &len, &db_mtime, why, sizeof why);
        if (!text) {
                fprintf(err, "pmtatail: cannot read sincedb %s: %s\n", file, why);
                return 1;
        }
        /* Every line first: a file that is not wholly a sincedb imports
         * nothing. */
        struct sdb_line *lines = calloc(SINCEDB_LINES_MAX, sizeof *lines);
        size_t nl = 0;
        bool bad = !lines;
        unsigned lineno = 0;
        for (char *s = text; lines && s < text + len;) {
                char *nlp = memchr(s, '\n', (size_t)(text + len - s));
                char *e = nlp ? nlp : text + len;
                bool nul = memchr(s, '\0', (size_t)(e - s)) != NULL;
                *e = '\0';
                if (e > s && e[-1] == '\r')
                        e[-1] = '\0';
                lineno++;
                if (nul) {
                        fprintf(err, "pmtatail: %s line %u: a NUL byte: not a sincedb\n", file,
                                lineno);
                        bad = true;
                } else {
                        const char *t = s;
                        while (*t == ' ' || *t == '\t')
                                t++;
                        if (*t) {
                                if (nl == SINCEDB_LINES_MAX) {
                                        fprintf(err, "pmtatail: %s: more than %d lines\n", file,
                                                SINCEDB_LINES_MAX);
                                        bad = true;
                                        break;
                                }
                                struct sdb_line *l = &lines[nl];
                                l->lineno = lineno;
                                if (parse_line(s, l, why, sizeof why) < 0) {
                                        fprintf(err, "pmtatail: %s line %u: %s\n", file, lineno,
                                                why);
                                        bad = true;
                                } else {
                                        nl++;
                                }
                        }
                }
                s = e + 1;
        }
        if (bad) {
                fprintf(err, "pmtatail: nothing imported from %s\n", file);
                free(lines);
                free(text);
                return 1;
        }

        if (state_locked(cfg->state_dir)) {
                fprintf(err,
                        "pmtatail: another pmtatail holds %s (the daemon runs): stop it before "
                        "importing (systemctl stop pmtatail)\n",
                        cfg->state_dir);
                free(lines);
                free(text);
                return 1;
        }
        struct state *st = NULL;
        struct state_error serr;
        if (state_open(&st, cfg->state_dir, dry ? STATE_OPEN_READONLY : 0, &serr) < 0) {
                fprintf(err, "pmtatail: %s%s\n", serr.msg,
                        serr.kind == STATE_E_LOCKED ? " (stop the daemon before importing)" : "");
                free(lines);
                free(text);
                return 1;
        }
        if (serr.note[0])
                fprintf(err, "pmtatail: %s\n", serr.note);

        struct cands c = {0};
        if (collect(&c, cfg) < 0) {
                fprintf(err, "pmtatail: out of memory\n");
                state_close(st);
                free(lines);
                free(text);
                return 1;
        }

        size_t imported = 0;
        int rc = 0;
        for (size_t i = 0; i < nl && rc == 0; i++) {
                struct sdb_line *l = &lines[i];
                char said[64] = "";
                if (*l->path) {
                        snprintf(said, sizeof said, " (Logstash's path %.40s%s)", l->path,
                                 strlen(l->path) > 40 ? "..." : "");
                        /* text from a file: no control bytes to the terminal */
                        for (char *q = said; *q; q++)
                                if ((unsigned char)*q < 0x20 || *q == 0x7f)
                                        *q = '?';
                }
                fprintf(out, "line %u: inode %" PRIu64 " device %u:%u offset %" PRIu64 ": ",
                        l->lineno, l->ino, l->major, l->minor, l->offset);
                struct candidate *cd = NULL;
                for (size_t k = 0; k < c.n && !cd; k++) {
                        if (c.v[k].ino == l->ino && dev_matches(c.v[k].dev, l->major, l->minor))
                                cd = &c.v[k];
                }
                if (!cd) {
                        fprintf(out,
                                "not imported: no file of a configured source has this inode "
                                "(gone since, or not a file pmtatail follows)%s\n",
                                said);
                        continue;
                }
                if (cd->taken) {
                        fprintf(out, "not imported: %s again, already taken from line %u\n",
                                cd->path, cd->taken_by);
                        continue;
                }
                const struct config_source *cs = &cfg->sources[cd->src];
                /* A file born after Logstash last looked at the inode is not
                 * the file it read: the inode was reused. */
                double seen = l->has_time ? l->last_active : db_mtime, born;
                if (birth_time(cd->path, &born) && born > seen + 1) {
                        fprintf(out,
                                "not imported: %s has this inode but was created after "
                                "Logstash last read it (the inode was reused)\n",
                                cd->path);
                        continue;
                }
                int fd = open(cd->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
                struct file_id id;
                struct stat sb;
                if (fd < 0 || fstat(fd, &sb) < 0 || identity_of_fd(fd, &id) < 0) {
                        fprintf(out, "not imported: cannot read %s: %s\n", cd->path,
                                strerror(errno));
                        if (fd >= 0)
                                close(fd);
                        rc = 1;
                        continue;
                }
                uint64_t size = (uint64_t)sb.st_size;
                if (l->offset > size) {
                        fprintf(out,
                                "not imported: %s holds %" PRIu64
                                " bytes, fewer than the offset (truncated or replaced since)\n",
                                cd->path, size);
                        close(fd);
                        continue;
                }
                struct state_entry *old = state_find_id(st, id.dev, id.ino);
                if (old) {
                        fprintf(out,
                                "not imported: %s is already tracked by pmtatail at offset "
                                "%" PRIu64 " (left as it is)\n",
                                cd->path, old->offset);
                        close(fd);
                        continue;
                }
                struct boundary b;
                if (resume_offset(fd, cs, l->offset, size, &b, why, sizeof why) < 0) {
                        fprintf(out, "not imported: %s: %s\n", cd->path, why);
                        close(fd);
                        free(b.header);
                        rc = 1;
                        continue;
                }
                close(fd);
                struct state_entry tmpl = {
                    .source = cs->name,
                    .path = cd->path,
                    .dev = id.dev,
                    .ino = id.ino,
                    .fp = id.fp,
                    .fp_len = id.fp_len,
                    .offset = b.at,
                    .seen = (int64_t)seen,
                };
                struct state_entry *e = state_add(st, &tmpl, &serr);
                if (!e ||
                    (b.header && state_set_header(st, e, b.header, b.header_len, &serr) < 0)) {
                        fprintf(out, "not imported: %s\n", serr.msg);
                        free(b.header);
                        rc = 1;
                        continue;
                }
                free(b.header);
                cd->taken = true;
                cd->taken_by = l->lineno;
                imported++;
                fprintf(out, "%s source=%s resume at %" PRIu64 "%s%s\n", cd->path, cs->name, b.at,
                        b.at == l->offset ? ""
                        : b.at > l->offset
                            ? " (inside a record: the next record starts there)"
                            : " (inside the last record, still being written: it goes whole)",
                        size == b.at ? ", read to its end" : "");
        }
        if (rc == 0 && !dry && imported && state_save(st, &serr) < 0) {
                fprintf(err, "pmtatail: %s\n", serr.msg);
                rc = 1;
        }
        if (rc == 0)
                fprintf(out, "%s %zu of %zu sincedb entries%s%s\n",
                        dry ? "dry run: would import" : "imported", imported, nl,
                        dry || !imported ? "" : " into ",
                        dry || !imported ? "" : state_file_path(st));
        else
                fprintf(err, "pmtatail: nothing imported from %s\n", file);
        for (size_t k = 0; k < c.n; k++)
                free(c.v[k].path);
        free(c.v);
        state_close(st);
        free(lines);
        free(text);
        return rc;
}
