#include "replay.h"

#include "buf.h"
#include "classes.h"
#include "event.h"
#include "identity.h"
#include "input.h"
#include "output.h"
#include "pmta_csv.h"
#include "push.h"
#include "rejects.h"
#include "safefile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK      (256 * 1024)
#define OUT_FLUSH       (256 * 1024)
#define MAX_INPUTS      100000
#define SAVE_EVERY_MS   1000
#define PROGRESS_EVERY  5000 /* ms between progress lines when not on a terminal */
#define STOP_DRAIN_MS   5000 /* the most an interrupt waits for the answers in flight */
#define PROGRESS_TTY_MS 250

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- expanding and ordering the inputs ---- */

struct named {
        char *path;
        uint64_t dev, ino;
        int64_t key; /* epoch seconds: rotated-name time, else mtime */
        int64_t mtime_ns;
};

static bool accounting_name(const char *name)
{
        size_t n = strlen(name);
        return (n > 4 && strcmp(name + n - 4, ".csv") == 0) ||
               (n > 7 && strcmp(name + n - 7, ".csv.gz") == 0);
}

/* The time in a rotated name: "...-YYYY-MM-DD-HHMM.csv[.gz]", local time. */
static bool name_time(const char *path, int64_t *out)
{
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        for (const char *p = base; *p; p++) {
                int Y, M, D, hm;
                char sep;
                if (*p == '-' && sscanf(p, "-%4d-%2d-%2d-%4d%c", &Y, &M, &D, &hm, &sep) == 5 &&
                    sep == '.' && M >= 1 && M <= 12 && D >= 1 && D <= 31 && hm / 100 < 24 &&
                    hm % 100 < 60) {
                        struct tm tm = {.tm_year = Y - 1900,
                                        .tm_mon = M - 1,
                                        .tm_mday = D,
                                        .tm_hour = hm / 100,
                                        .tm_min = hm % 100,
                                        .tm_isdst = -1};
                        time_t t = mktime(&tm);
                        if (t != (time_t)-1) {
                                *out = (int64_t)t;
                                return true;
                        }
                }
        }
        return false;
}

static int add_named(struct named **v, size_t *n, size_t *cap, const char *path,
                     const struct logger *log)
{
        struct stat st;
        if (stat(path, &st) < 0) {
                log_error(log, "cannot read file=%s error=\"%s\"", path, strerror(errno));
                return -1;
        }
        if (*n == MAX_INPUTS) {
                log_error(log, "too many input files (more than %d)", MAX_INPUTS);
                return -1;
        }
        if (*n == *cap) {
                size_t nc = *cap ? *cap * 2 : 64;
                struct named *nv = realloc(*v, nc * sizeof *nv);
                if (!nv)
                        return -1;
                *v = nv;
                *cap = nc;
        }
        struct named *e = &(*v)[*n];
        e->path = strdup(path);
        if (!e->path)
                return -1;
        e->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        e->dev = (uint64_t)st.st_dev;
        e->ino = (uint64_t)st.st_ino;
        if (!name_time(path, &e->key))
                e->key = (int64_t)st.st_mtim.tv_sec;
        (*n)++;
        return 0;
}

static int cmp_named(const void *a, const void *b)
{
        const struct named *x = a, *y = b;
        if (x->key != y->key)
                return x->key < y->key ? -1 : 1;
        if (x->mtime_ns != y->mtime_ns)
                return x->mtime_ns < y->mtime_ns ? -1 : 1;
        return strcmp(x->path, y->path);
}

static int add_path(struct named **v, size_t *n, size_t *cap, const char *arg,
                    const struct logger *log)
{
        struct stat st;
        if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode)) {
                DIR *d = opendir(arg);
                if (!d) {
                        log_error(log, "cannot list directory=%s error=\"%s\"", arg,
                                  strerror(errno));
                        return -1;
                }
                struct dirent *de;
                int rc = 0;
                while ((de = readdir(d))) {
                        if (!accounting_name(de->d_name))
                                continue;
                        char p[PATH_MAX];
                        if (snprintf(p, sizeof p, "%s/%s", arg, de->d_name) >= (int)sizeof p)
                                continue;
                        struct stat fs;
                        if (stat(p, &fs) == 0 && S_ISREG(fs.st_mode) &&
                            add_named(v, n, cap, p, log) < 0)
                                rc = -1;
                }
                closedir(d);
                return rc;
        }
        if (strpbrk(arg, "*?[") && stat(arg, &st) < 0) {
                glob_t g;
                int r = glob(arg, 0, NULL, &g);
                if (r == GLOB_NOMATCH) {
                        log_error(log, "no file matches pattern=%s", arg);
                        return -1;
                }
                int rc = r == 0 ? 0 : -1;
                for (size_t i = 0; r == 0 && i < g.gl_pathc; i++) {
                        if (add_path(v, n, cap, g.gl_pathv[i], log) < 0)
                                rc = -1;
                }
                globfree(&g);
                return rc;
        }
        return add_named(v, n, cap, arg, log);
}

ssize_t replay_expand(const char *const *args, size_t nargs, char ***out, bool *had_errors,
                      const struct logger *log)
{
        struct named *v = NULL;
        size_t n = 0, cap = 0;
        int rc = 0;
        for (size_t i = 0; i < nargs; i++) {
                if (add_path(&v, &n, &cap, args[i], log) < 0)
                        rc = -1;
        }
        qsort(v, n, sizeof *v, cmp_named);
        char **paths = calloc(n ? n : 1, sizeof *paths);
        if (!paths) {
                for (size_t i = 0; i < n; i++)
                        free(v[i].path);
                free(v);
                return -1;
        }
        /* the same file named twice (a directory and a glob, two spellings)
         * is read once: compared by device and inode */
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                bool dup = false;
                for (size_t j = 0; j < i && !dup; j++)
                        dup = v[j].dev == v[i].dev && v[j].ino == v[i].ino;
                if (dup)
                        free(v[i].path);
                else
                        paths[k++] = v[i].path;
        }
        free(v);
        *out = paths;
        if (had_errors)
                *had_errors = rc < 0;
        return rc < 0 && k == 0 ? -1 : (ssize_t)k;
}

/* ---- progress: STATE_DIR/replay.json ---- */

struct progress {
        char path[4200];
        json_t *files; /* array of {path, dev, ino, fp, fp_len, offset, done, header} */
        bool dirty;
        int64_t saved_ms;
        int lock_fd;
        struct log_streak failing; /* a full disk fails every save: said once */
};

static int progress_open(struct progress *p, const char *state_dir, const struct logger *log)
{
        memset(p, 0, sizeof *p);
        p->lock_fd = -1;
        if (mkdir(state_dir, 0700) < 0 && errno != EEXIST) {
                log_error(log, "cannot create directory=%s error=\"%s\"", state_dir,
                          strerror(errno));
                return -1;
        }
        char lock[4200];
        snprintf(lock, sizeof lock, "%s/replay.lock", state_dir);
        char why[4400];
        if (safefile_check_dir(state_dir, why, sizeof why) < 0) {
                log_error(log, "refusing the state directory: %s", why);
                return -1;
        }
        p->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (p->lock_fd < 0 || flock(p->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                log_error(log, "another replay is running on %s", state_dir);
                if (p->lock_fd >= 0)
                        close(p->lock_fd);
                p->lock_fd = -1;
                return -1;
        }
        snprintf(p->path, sizeof p->path, "%s/replay.json", state_dir);
        json_error_t err;
        json_t *j = json_load_file(p->path, 0, &err);
        if (!j && access(p->path, F_OK) == 0) {
                log_error(log,
                          "%s: line %d: %s; move it aside to replay from the start (or use "
                          "--from-start)",
                          p->path, err.line, err.text);
                close(p->lock_fd);
                p->lock_fd = -1;
                return -1;
        }
        p->files = j ? json_incref(json_object_get(j, "files")) : NULL;
        json_decref(j);
        if (!json_is_array(p->files)) {
                json_decref(p->files);
                p->files = json_array();
        }
        return p->files ? 0 : -1;
}

static int progress_save(struct progress *p, const struct logger *log)
{
        if (!p->dirty)
                return 0;
        json_t *j = json_pack("{s:i,s:O}", "version", 1, "files", p->files);
        char *text = j ? json_dumps(j, JSON_INDENT(1)) : NULL;
        json_decref(j);
        int rc = -1;
        errno = ENOMEM;
        if (text)
                rc = safefile_replace(p->path, text, strlen(text), SAFEFILE_DURABLE, NULL);
        free(text);
        if (rc < 0) {
                log_streak_fail(log, &p->failing, LOG_ERROR, "saving the replay progress",
                                "cannot save replay progress file=%s error=\"%s\"", p->path,
                                strerror(errno));
        } else {
                log_streak_ok(log, &p->failing);
                p->dirty = false;
        }
        p->saved_ms = now_ms();
        return rc;
}

static void progress_close(struct progress *p, const struct logger *log)
{
        progress_save(p, log);
        json_decref(p->files);
        if (p->lock_fd >= 0)
                close(p->lock_fd);
}

/* The progress entry of the file with this identity, created when new. */
static json_t *progress_entry(struct progress *p, const struct file_id *id, const char *path,
                              bool from_start)
{
        size_t i;
        json_t *e;
        json_array_foreach(p->files, i, e)
        {
                if ((uint64_t)json_integer_value(json_object_get(e, "dev")) == id->dev &&
                    (uint64_t)json_integer_value(json_object_get(e, "ino")) == id->ino) {
                        const char *fps = json_string_value(json_object_get(e, "fp"));
                        struct file_id saved = {
                            id->dev, id->ino, strtoull(fps ? fps : "0", NULL, 16),
                            (uint32_t)json_integer_value(json_object_get(e, "fp_len"))};
                        if (saved.fp == id->fp && saved.fp_len == id->fp_len && !from_start) {
                                json_object_set_new(e, "path", json_string(path));
                                return e;
                        }
                        /* another file on that inode, or a fresh start */
                        json_array_remove(p->files, i);
                        break;
                }
        }
        char fp[17];
        snprintf(fp, sizeof fp, "%016llx", (unsigned long long)id->fp);
        e = json_pack("{s:s,s:I,s:I,s:s,s:i,s:I,s:b}", "path", path, "dev", (json_int_t)id->dev,
                      "ino", (json_int_t)id->ino, "fp", fp, "fp_len", (int)id->fp_len, "offset",
                      (json_int_t)0, "done", 0);
        if (e)
                json_array_append_new(p->files, e);
        p->dirty = true;
        return e;
}

/* ---- the run ---- */

struct rbatch {
        struct rbatch *next; /* submitted, oldest first */
        struct buf lines;
        size_t nevents;
        json_t *entry;  /* the file's progress entry */
        uint64_t mark;  /* its settled offset when the batch closed */
        json_t *header; /* the header line in force at mark, NULL when none */
        bool last;      /* the file's last batch: done once acknowledged */
};

struct run {
        const struct replay_opts *o;
        struct replay_totals *t;
        struct push *push;
        struct progress prog;
        size_t inflight;
        size_t window;
        struct rbatch *open;
        struct rbatch *sub_head, *sub_tail; /* submitted, not yet acknowledged */
        /* the buffer of the last batch the output took, for the next one: a
         * fresh one is mmapped and faulted in page by page */
        struct buf spare;
        struct classifier *classifier;
        struct bounce_classes classes;
        /* per file */
        const char *path;
        json_t *entry;
        struct event_encoder *enc;
        struct pmta_parser *parser;
        struct event_meta meta;
        struct buf out; /* dry run: NDJSON waiting to be written */
        uint64_t rejects_logged;
        uint64_t header_gen;
        long time_col, queued_col;
        bool queued_said; /* the fallback to timeQueued has been logged */
        int err;
        /* progress display */
        uint64_t bytes_total, bytes_done;
        size_t files_total, files_done;
        int64_t started_ms, shown_ms;
        bool tty;
        char bar[320]; /* the bar on the terminal, "" when none: redrawn after a log line */
        pthread_mutex_t bar_lock; /* the bar and its terminal: the output's thread logs too */
};

static void rbatch_free(struct rbatch *b)
{
        if (!b)
                return;
        buf_free(&b->lines);
        json_decref(b->entry);
        json_decref(b->header);
        free(b);
}

static void on_ack(void *ctx, void *token)
{
        struct run *r = ctx;
        struct rbatch *b = token;
        r->inflight -= b->nevents;
        r->t->delivered += b->nevents;
        json_t *off = json_object_get(b->entry, "offset");
        if (b->mark > (uint64_t)json_integer_value(off)) {
                json_object_set_new(b->entry, "offset", json_integer((json_int_t)b->mark));
                /* resumed at mark, the records are parsed with the header
                 * that was in force there, not the last one read */
                if (b->header)
                        json_object_set(b->entry, "header", b->header);
        }
        if (b->last)
                json_object_set_new(b->entry, "done", json_true());
        r->prog.dirty = true;
        /* acknowledgements come in submission order: b is the oldest */
        r->sub_head = b->next;
        if (!r->sub_head)
                r->sub_tail = NULL;
        rbatch_free(b);
}

static void close_batch(struct run *r, uint64_t mark, bool last)
{
        struct rbatch *b = r->open;
        if (!b) {
                if (!last)
                        return;
                b = calloc(1, sizeof *b);
                if (!b) {
                        r->err = ENOMEM;
                        return;
                }
                buf_init(&b->lines, 1);
                b->entry = json_incref(r->entry);
        }
        r->open = NULL;
        b->mark = mark;
        b->last = last;
        /* called at a record's start or at the settled offset: the parser's
         * header is the one in force at mark */
        const struct pmta_header *h = r->parser ? pmta_parser_header(r->parser) : NULL;
        b->header = h ? json_stringn(h->raw, h->raw_len) : NULL;
        r->inflight += b->nevents;
        b->next = NULL;
        if (r->sub_tail)
                r->sub_tail->next = b;
        else
                r->sub_head = b;
        r->sub_tail = b;
        /* a file output that cannot write: wait and try again, never drop */
        while (push_submit_buf(r->push, &b->lines, b->nevents, b) < 0) {
                if (r->o->stop && *r->o->stop) {
                        r->err = EINTR; /* freed with the unacknowledged ones */
                        return;
                }
                push_wait(r->push, NULL, 0, 1000);
        }
        /* The output has the events (a copy, or the buffer itself,
         * exchanged for one it was done with). Unless the ack came inside
         * submit (and freed b), what b->lines holds serves the next batch. */
        for (struct rbatch *x = r->sub_head; x; x = x->next) {
                if (x == b) {
                        buf_to_spare(&r->spare, &b->lines,
                                     2 * r->o->cfg->output.batch_max_bytes + 65536);
                        break;
                }
        }
}

static struct rbatch *open_batch(struct run *r)
{
        if (!r->open) {
                struct rbatch *b = calloc(1, sizeof *b);
                if (!b)
                        return NULL;
                size_t rmax = r->o->record_max ? r->o->record_max : PMTA_RECORD_MAX_DEFAULT;
                if (push_buf_open(&b->lines, r->o->cfg->output.batch_max_bytes + 14 * rmax + 65536,
                                  &r->spare) < 0) {
                        free(b);
                        return NULL;
                }
                b->entry = json_incref(r->entry);
                r->open = b;
        }
        return r->open;
}

static bool in_window(struct run *r, const struct pmta_record *rec)
{
        if (!r->o->has_since && !r->o->has_until)
                return true;
        const struct pmta_header *h = rec->header;
        if (h->generation != r->header_gen) {
                r->header_gen = h->generation;
                r->time_col = pmta_header_column(h, "timeLogged");
                r->queued_col = pmta_header_column(h, "timeQueued");
        }
        int64_t t;
        bool logged = r->time_col >= 0 && rec->cells[r->time_col].len > 0;
        if (logged) {
                if (event_parse_time(rec->cells[r->time_col].ptr, rec->cells[r->time_col].len, &t) <
                    0)
                        return false; /* a time that is no time: outside any window */
        } else {
                /* Files logged without timeLogged (port25-bouncehandler's
                 * field set) carry timeQueued: the time the message was
                 * queued, hours at most before the record, is the best there
                 * is; without it every such record would fall outside every
                 * window. */
                if (r->queued_col < 0 || event_parse_time(rec->cells[r->queued_col].ptr,
                                                          rec->cells[r->queued_col].len, &t) < 0)
                        return false; /* no time to judge by: outside any window */
                if (!r->queued_said) {
                        log_info(r->o->log,
                                 "records without timeLogged are placed in --since/--until by "
                                 "timeQueued file=%s",
                                 r->path);
                        r->queued_said = true;
                }
        }
        return (!r->o->has_since || t >= r->o->since) && (!r->o->has_until || t < r->o->until);
}

static int flush_out(struct run *r)
{
        if (r->out.len == 0)
                return 0;
        if (fwrite(r->out.data, 1, r->out.len, r->o->out) != r->out.len) {
                r->err = errno ? errno : EIO;
                return -1;
        }
        buf_reset(&r->out);
        return 0;
}

static void on_record(void *ctx, const struct pmta_record *rec)
{
        struct run *r = ctx;
        if (r->err)
                return;
        if (!in_window(r, rec)) {
                r->t->outside_window++;
                return;
        }
        const char *cls = bounce_class_of(&r->classes, rec);
        if (!bounce_forwarded(r->o->cfg->forward, rec, cls)) {
                r->t->unforwarded++;
                return;
        }
        r->meta.bounce_class = cls;
        if (r->o->dry_run) {
                if (event_encode(r->enc, &r->out, rec, &r->meta) < 0 || buf_putc(&r->out, '\n') < 0)
                        r->err = errno;
                if (r->out.len >= OUT_FLUSH)
                        flush_out(r);
                return;
        }
        const struct config_output *co = &r->o->cfg->output;
        if (r->open &&
            (r->open->nevents >= co->batch_max_records ||
             push_buf_len(&r->open->lines) + 2 * rec->raw_len + 1024 > co->batch_max_bytes))
                close_batch(r, rec->start, false);
        struct rbatch *b = open_batch(r);
        if (!b || event_encode(r->enc, &b->lines, rec, &r->meta) < 0 ||
            buf_putc(&b->lines, '\n') < 0) {
                r->err = errno ? errno : ENOMEM;
                return;
        }
        b->nevents++;
}

static void on_reject(void *ctx, const struct pmta_reject *rej)
{
        struct run *r = ctx;
        log_reject(r->o->log, r->path, rej, &r->rejects_logged);
        if (r->o->keep_rejects && r->o->dry_run && !r->err) {
                if (event_encode_reject(&r->out, rej, pmta_parser_header(r->parser), &r->meta) <
                        0 ||
                    buf_putc(&r->out, '\n') < 0)
                        r->err = errno;
        }
}

static void show_progress(struct run *r, bool final)
{
        int64_t now = now_ms();
        if (!final && now - r->shown_ms < (r->tty ? PROGRESS_TTY_MS : PROGRESS_EVERY))
                return;
        r->shown_ms = now;
        double secs = (double)(now - r->started_ms) / 1000.0;
        double rate = secs > 0 ? (double)r->t->parsed.records / secs : 0;
        double frac = r->bytes_total ? (double)r->bytes_done / (double)r->bytes_total : 1.0;
        double eta = frac > 0.001 ? secs / frac - secs : 0;
        struct push_stats ps = {0};
        if (r->push)
                push_get_stats(r->push, &ps);
        /* Paced (--rate, max_rate): what is left goes no faster than the
         * rate, whatever the reading did so far. */
        unsigned max_rate = r->o->cfg && !r->o->dry_run ? r->o->cfg->output.max_rate : 0;
        if (max_rate) {
                double left = (double)r->inflight, total = (double)r->t->parsed.records;
                if (r->bytes_done > 0 && r->bytes_total > r->bytes_done) {
                        double more = total / (double)r->bytes_done *
                                      (double)(r->bytes_total - r->bytes_done);
                        left += more;
                        total += more;
                }
                if (left / max_rate > eta)
                        eta = left / max_rate;
                /* the bar follows what is delivered, not what is read */
                if (total > 0 && (total - left) / total < frac)
                        frac = (total - left) / total;
        }
        char line[256], limit[48] = "";
        if (max_rate)
                snprintf(limit, sizeof limit, " (max %u/s)", max_rate);
        snprintf(line, sizeof line, "files %zu/%zu  %.1f/%.1f MB  %.0f records/s%s  ETA %.0fs%s",
                 r->files_done, r->files_total, (double)r->bytes_done / 1e6,
                 (double)r->bytes_total / 1e6, rate, limit, eta,
                 ps.retrying ? "  retries waiting" : "");
        if (r->tty) {
                int width = 24, fill = (int)(frac * width);
                pthread_mutex_lock(&r->bar_lock);
                snprintf(r->bar, sizeof r->bar, "[%.*s%*s] %s", fill, "########################",
                         width - fill, "", line);
                fprintf(stderr, "\r%s\033[K%s", r->bar, final ? "\n" : "");
                if (final)
                        r->bar[0] = '\0';
                pthread_mutex_unlock(&r->bar_lock);
        } else {
                fprintf(stderr, "progress %s\n", line);
        }
}

/* Wait while the window is full, or (all) until every submitted batch is
 * acknowledged: a batch of no events (a file's end, the marks of filtered
 * records) counts too, its acknowledgement can come after all the events'.
 * Saves the progress now and then. */
static void wait_acks(struct run *r, bool all)
{
        while ((all ? r->sub_head != NULL : r->inflight > r->window) &&
               !(r->o->stop && *r->o->stop)) {
                push_wait(r->push, NULL, 0, 1000);
                if (now_ms() - r->prog.saved_ms >= SAVE_EVERY_MS)
                        progress_save(&r->prog, r->o->log);
                show_progress(r, false);
        }
}

/* Interrupted: what was submitted is in flight, or goes out from the
 * output's thread meanwhile. Its answers are waited for (STOP_DRAIN_MS at
 * most; a second interrupt ends the wait), so that the next run sends again
 * as little as can be: Oempro counts a repeated soft bounce towards a hard
 * one. */
static void drain(struct run *r)
{
        log_info(r->o->log,
                 "interrupted: waiting up to %d s for the answers to records=%zu (interrupt "
                 "again to stop now)",
                 STOP_DRAIN_MS / 1000, r->inflight);
        int64_t give_up = now_ms() + STOP_DRAIN_MS;
        while (r->sub_head && now_ms() < give_up && *r->o->stop < 2)
                push_wait(r->push, NULL, 0, 200);
}

static int replay_file(struct run *r, const char *path, char *chunk)
{
        struct input in;
        char q[512];
        log_quote(q, sizeof q, path, strlen(path));
        if (input_open(&in, path) < 0) {
                log_error(r->o->log, "cannot open file=%s error=\"%s\"", q,
                          errno == EILSEQ ? "named .gz but not gzip" : strerror(errno));
                return -1;
        }
        uint64_t start = 0;
        const char *header = NULL;
        r->entry = NULL;
        if (!r->o->dry_run) {
                struct file_id id;
                if (identity_of_fd(in.fd, &id) < 0) {
                        input_close(&in);
                        return -1;
                }
                r->entry = progress_entry(&r->prog, &id, path, r->o->from_start);
                if (!r->entry) {
                        input_close(&in);
                        return -1;
                }
                if (json_is_true(json_object_get(r->entry, "done"))) {
                        log_info(r->o->log, "already replayed file=%s", q);
                        r->t->files_skipped++;
                        input_close(&in);
                        return 0;
                }
                start = (uint64_t)json_integer_value(json_object_get(r->entry, "offset"));
                header = json_string_value(json_object_get(r->entry, "header"));
                if (start)
                        log_info(r->o->log, "resuming file=%s offset=%llu", q,
                                 (unsigned long long)start);
        }
        static const char *const default_types[] = {"b", "rb", "f"};
        struct pmta_parser_opts po = {
            .record_max = r->o->record_max,
            .types = r->o->types ? r->o->types : default_types,
            .ntypes = r->o->types ? r->o->ntypes : 3,
            .columns = r->o->columns,
            .on_record = on_record,
            .on_reject = on_reject,
            .ctx = r,
        };
        r->path = path;
        r->rejects_logged = 0;
        r->header_gen = 0;
        r->meta.host = r->o->host;
        r->meta.path = path;
        r->meta.include_message = r->o->include_message;
        r->meta.now = (int64_t)time(NULL);
        bounce_classes_init(&r->classes, r->classifier);
        r->enc = event_encoder_new();
        r->parser = r->enc ? pmta_parser_new(&po) : NULL;
        int rc = -1;
        if (!r->parser ||
            pmta_parser_resume(r->parser, start, header, header ? strlen(header) : 0) < 0)
                goto out;
        for (;;) {
                if (r->o->stop && *r->o->stop) {
                        r->t->interrupted = true;
                        rc = 0; /* not a failure of the file: it goes on next time */
                        break;
                }
                uint64_t off = pmta_parser_next_offset(r->parser);
                ssize_t n = input_read(&in, off, chunk, READ_CHUNK);
                if (n < 0) {
                        log_error(r->o->log, "cannot read file=%s offset=%llu error=\"%s\"", q,
                                  (unsigned long long)off,
                                  in.error[0] ? in.error : strerror(errno));
                        goto out;
                }
                int fr;
                if (n == 0) {
                        fr = pmta_parser_finish(r->parser);
                        if (fr == PMTA_FEED_OK) {
                                rc = 0;
                                break;
                        }
                } else {
                        r->t->bytes += (uint64_t)n;
                        r->bytes_done += in.gz ? 0 : (uint64_t)n;
                        fr = pmta_parser_feed(r->parser, chunk, (size_t)n);
                }
                if (fr < 0 || r->err)
                        goto out;
                if (!r->o->dry_run) {
                        if (r->open)
                                close_batch(r, pmta_parser_settled_offset(r->parser), false);
                        wait_acks(r, false);
                }
                show_progress(r, false);
        }
        if (rc == 0 && !r->o->dry_run && !r->t->interrupted)
                close_batch(r, pmta_parser_next_offset(r->parser), true);
        if (r->o->dry_run && flush_out(r) < 0)
                rc = -1;
out:
        if (rc < 0 && r->err)
                log_error(r->o->log, "cannot deliver file=%s error=\"%s\"", q, strerror(r->err));
        if (r->open) {
                /* interrupted: not delivered, read again by the next run */
                rbatch_free(r->open);
                r->open = NULL;
        }
        if (r->parser) {
                pmta_stats_merge(&r->t->parsed, pmta_parser_stats(r->parser));
                const struct pmta_stats *st = pmta_parser_stats(r->parser);
                log_info(r->o->log, "replayed file=%s records=%llu filtered=%llu rejected=%llu", q,
                         (unsigned long long)st->records, (unsigned long long)st->filtered,
                         (unsigned long long)st->rejected);
        }
        pmta_parser_free(r->parser);
        event_encoder_free(r->enc);
        r->parser = NULL;
        r->enc = NULL;
        r->err = 0;
        if (in.gz)
                r->bytes_done += 0;
        input_close(&in);
        return rc;
}

/* A log line on the bar's terminal: clear the bar, let the line be
 * written, redraw the bar under it. */
static void around_log(void *ctx, bool before)
{
        struct run *r = ctx;
        /* the output's thread logs too: the bar is drawn by one at a time,
         * and no line goes between the clearing and the redrawing */
        if (before)
                pthread_mutex_lock(&r->bar_lock);
        if (r->bar[0]) {
                if (before)
                        fputs("\r\033[K", stderr);
                else
                        fprintf(stderr, "\r%s\033[K", r->bar);
                fflush(stderr);
        }
        if (!before)
                pthread_mutex_unlock(&r->bar_lock);
}

int replay_run(const char *const *paths, size_t npaths, const struct replay_opts *opts,
               struct replay_totals *t)
{
        struct run r = {.t = t, .bar_lock = PTHREAD_MUTEX_INITIALIZER};
        r.tty = isatty(STDERR_FILENO);
        /* our own copy of the logger, to keep log lines off the bar */
        struct replay_opts oo = *opts;
        struct logger lg = *opts->log;
        if (r.tty && lg.out == stderr) {
                lg.around = around_log;
                lg.around_ctx = &r;
        }
        oo.log = &lg;
        const struct replay_opts *o = &oo;
        r.o = o;
        r.started_ms = now_ms();
        r.shown_ms = r.started_ms; /* the first progress line after an interval, not at once */
        r.files_total = npaths;
        for (size_t i = 0; i < npaths; i++) {
                struct stat st;
                if (stat(paths[i], &st) == 0)
                        r.bytes_total += (uint64_t)st.st_size;
        }
        char cerr[1024];
        if (classifier_load(&r.classifier, o->cfg->classify_patterns, cerr, sizeof cerr) < 0) {
                log_error(o->log, "%s", cerr);
                return -1;
        }
        char *chunk = malloc(READ_CHUNK);
        if (!chunk) {
                classifier_free(r.classifier);
                return -1;
        }
        buf_init(&r.out, OUT_FLUSH +
                             14 * (o->record_max ? o->record_max : PMTA_RECORD_MAX_DEFAULT) +
                             65536);
        int rc = 0;
        if (!o->dry_run) {
                char err[1024];
                if (progress_open(&r.prog, o->cfg->state_dir, o->log) < 0) {
                        free(chunk);
                        classifier_free(r.classifier);
                        return -1;
                }
                /* the output on a thread of its own, as in `run` */
                if (output_open(o->cfg, on_ack, &r, o->log, true, &r.push, err, sizeof err) < 0) {
                        log_error(o->log, "%s", err);
                        progress_close(&r.prog, o->log);
                        free(chunk);
                        classifier_free(r.classifier);
                        return -1;
                }
                r.window = 4 * (size_t)o->cfg->output.batch_max_records;
                if (r.window < 1000)
                        r.window = 1000;
        }
        for (size_t i = 0; i < npaths && !t->interrupted; i++) {
                struct stat st;
                uint64_t before = r.bytes_done;
                if (replay_file(&r, paths[i], chunk) < 0) {
                        t->files_failed++;
                        rc = -1;
                }
                if (stat(paths[i], &st) == 0)
                        r.bytes_done = before + (uint64_t)st.st_size;
                r.files_done++;
                t->files++;
                if (o->dry_run && fflush(o->out) != 0)
                        rc = -1;
        }
        if (!o->dry_run) {
                wait_acks(&r, true);
                if (r.sub_head && o->stop && *o->stop)
                        drain(&r);
                if (r.inflight)
                        t->interrupted = true;
                struct push_stats ps;
                push_get_stats(r.push, &ps);
                t->refused = ps.refused;
                if (r.tty || r.files_total > 1)
                        show_progress(&r, true);
                push_close(r.push);
                r.push = NULL;
                /* not acknowledged (interrupted): read again by the next run */
                for (struct rbatch *b = r.sub_head, *next; b; b = next) {
                        next = b->next;
                        rbatch_free(b);
                }
                progress_close(&r.prog, o->log);
        } else if (r.tty || r.files_total > 1) {
                show_progress(&r, true);
        }
        if (t->interrupted)
                rc = -1;
        buf_free(&r.spare);
        buf_free(&r.out);
        free(chunk);
        classifier_free(r.classifier);
        return rc;
}

void replay_print_summary(const struct replay_totals *t, double seconds, FILE *out)
{
        fprintf(out, "summary: files=%llu records=%llu filtered=%llu rejected=%llu",
                (unsigned long long)t->files, (unsigned long long)t->parsed.records,
                (unsigned long long)t->parsed.filtered, (unsigned long long)t->parsed.rejected);
        uint64_t other = t->parsed.other_types;
        for (size_t i = 0; i < t->parsed.ntypes; i++) {
                bool printable = true;
                for (const char *c = t->parsed.types[i].type; *c; c++)
                        printable &= (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z');
                if (printable)
                        fprintf(out, " type_%s=%llu", t->parsed.types[i].type,
                                (unsigned long long)t->parsed.types[i].count);
                else
                        other += t->parsed.types[i].count;
        }
        if (other)
                fprintf(out, " type_other=%llu", (unsigned long long)other);
        if (t->outside_window)
                fprintf(out, " outside_window=%llu", (unsigned long long)t->outside_window);
        if (t->unforwarded)
                fprintf(out, " not_forwarded=%llu", (unsigned long long)t->unforwarded);
        if (t->delivered || t->refused)
                fprintf(out, " sent=%llu refused=%llu",
                        (unsigned long long)(t->delivered - t->refused),
                        (unsigned long long)t->refused);
        if (t->files_skipped)
                fprintf(out, " files_already_done=%llu", (unsigned long long)t->files_skipped);
        fprintf(out, " bytes=%llu seconds=%.3f", (unsigned long long)t->bytes, seconds);
        if (seconds > 0)
                fprintf(out, " records_per_s=%.0f", (double)t->parsed.records / seconds);
        if (t->files_failed)
                fprintf(out, " files_failed=%llu", (unsigned long long)t->files_failed);
        if (t->interrupted)
                fprintf(out, " interrupted=yes");
        fputc('\n', out);
}
