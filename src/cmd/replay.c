#include "replay.h"

#include "buf.h"
#include "classes.h"
#include "event.h"
#include "input.h"
#include "output.h"
#include "pmta_csv.h"
#include "progress.h"
#include "push.h"
#include "rejects.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK      (256 * 1024)
#define OUT_FLUSH       (256 * 1024)
#define PROGRESS_EVERY  5000 /* ms between progress lines when not on a terminal */
#define STOP_DRAIN_MS   5000 /* the most an interrupt waits for the answers in flight */
#define PROGRESS_TTY_MS 250

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the run ---- */

/* Where a file stands once a batch is acknowledged. A batch carries the
 * events of as many files as fit (35,000 archives of 2 records are not
 * 35,000 requests, nor 35,000 fsyncs of a file output), and a mark for
 * each file it ends or cuts. */
struct rmark {
        long entry, pass; /* the file's progress entry and this run's pass of it */
        uint64_t mark;    /* delivered up to here */
        char *header;     /* the header line in force at mark, NULL when none */
        size_t header_len;
        bool last; /* the file is delivered whole */
};

#define MARKS_MAX       4096 /* marks in one batch: closed when full */
#define BATCH_LINGER_MS 200  /* a batch not full goes out after this, all the same */

struct rbatch {
        struct rbatch *next; /* submitted, oldest first */
        struct buf lines;
        size_t nevents;
        struct rmark *marks; /* how far the files behind these events are delivered */
        size_t nmarks;
        int64_t opened_ms;
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
        struct pwindow window_sel; /* what this run selects */
        bool windowed;
        /* pacing for a file output (an HTTP output paces itself) */
        unsigned pace_rate;
        int64_t pace_start_ms;
        uint64_t paced;
        /* files where no record fell in the window, and their times */
        uint64_t quiet_files;
        bool quiet_timed;
        int64_t quiet_min, quiet_max;
        /* per file */
        const char *path;
        long entry, pass;
        bool check_passes; /* other passes of the entry delivered some records */
        uint64_t file_in_window;
        bool file_timed;
        int64_t file_min, file_max;
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
        for (size_t i = 0; i < b->nmarks; i++)
                free(b->marks[i].header);
        free(b->marks);
        free(b);
}

static void on_ack(void *ctx, void *token)
{
        struct run *r = ctx;
        struct rbatch *b = token;
        r->inflight -= b->nevents;
        r->t->delivered += b->nevents;
        for (size_t i = 0; i < b->nmarks; i++) {
                const struct rmark *m = &b->marks[i];
                progress_advance(&r->prog, (size_t)m->entry, (size_t)m->pass, m->mark, m->header,
                                 m->header_len, m->last);
        }
        /* acknowledgements come in submission order: b is the oldest */
        r->sub_head = b->next;
        if (!r->sub_head)
                r->sub_tail = NULL;
        rbatch_free(b);
        /* written at most once a second, whatever the run is waiting on
         * (the window, the pace, the output) */
        progress_sync(&r->prog, false);
}

/* --rate (or max_rate) with a file output: the output writes as fast as
 * it can, so the run holds the events back itself, a batch at a time (the
 * batches are kept small enough for it in on_record). */
static void pace(struct run *r, size_t n)
{
        if (!r->pace_rate || !n)
                return;
        if (!r->pace_start_ms)
                r->pace_start_ms = now_ms();
        int64_t due = r->pace_start_ms + (int64_t)(r->paced * 1000 / r->pace_rate);
        r->paced += n;
        while (now_ms() < due && !(r->o->stop && *r->o->stop)) {
                int64_t ms = due - now_ms();
                push_wait(r->push, NULL, 0, ms > 200 ? 200 : (int)ms);
        }
}

static void close_batch(struct run *r)
{
        struct rbatch *b = r->open;
        if (!b)
                return;
        r->open = NULL;
        pace(r, b->nevents);
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
                b->opened_ms = now_ms();
                r->open = b;
        }
        return r->open;
}

/* The current file is delivered up to `mark` (whole when last) once the
 * open batch is: noted in it, the batch opened if need be. */
static void add_mark(struct run *r, uint64_t mark, bool last)
{
        if (r->entry < 0 || r->pass < 0)
                return;
        struct rbatch *b = open_batch(r);
        struct rmark *nm = b ? realloc(b->marks, (b->nmarks + 1) * sizeof *nm) : NULL;
        if (!nm) {
                r->err = ENOMEM;
                return;
        }
        b->marks = nm;
        struct rmark *m = &nm[b->nmarks++];
        *m = (struct rmark){.entry = r->entry, .pass = r->pass, .mark = mark, .last = last};
        /* at a record's start or the settled offset: the parser's header
         * is the one in force at mark (none needed past the end) */
        const struct pmta_header *h = r->parser ? pmta_parser_header(r->parser) : NULL;
        if (h && !last) {
                m->header = strndup(h->raw, h->raw_len);
                m->header_len = m->header ? h->raw_len : 0;
        }
        if (b->nmarks >= MARKS_MAX)
                close_batch(r);
}

/* The record's time: timeLogged, else timeQueued. False when it has none
 * (or one that is no time): such a record is outside any window. */
static bool record_time(struct run *r, const struct pmta_record *rec, int64_t *out)
{
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
                if (!r->queued_said && r->windowed) {
                        log_info(r->o->log,
                                 "records without timeLogged are placed in --since/--until by "
                                 "timeQueued file=%s",
                                 r->path);
                        r->queued_said = true;
                }
        }
        *out = t;
        return true;
}

static bool window_holds(const struct pwindow *w, bool has_time, int64_t t)
{
        return w->all || (has_time && t >= w->since && t < w->until);
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
        int64_t t = 0;
        bool has_time = (r->windowed || r->check_passes) && record_time(r, rec, &t);
        if (has_time) {
                if (!r->file_timed || t < r->file_min)
                        r->file_min = t;
                if (!r->file_timed || t > r->file_max)
                        r->file_max = t;
                r->file_timed = true;
        }
        if (!window_holds(&r->window_sel, has_time, t)) {
                r->t->outside_window++;
                return;
        }
        r->file_in_window++;
        /* delivered by an earlier run with another window (or none) */
        if (r->check_passes && progress_delivered(&r->prog, (size_t)r->entry, (size_t)r->pass,
                                                  rec->start, has_time, t)) {
                r->t->already_delivered++;
                return;
        }
        const char *cls = bounce_class_of(&r->classes, rec);
        if (!bounce_forwarded(r->o->cfg->forward, rec, cls)) {
                r->t->unforwarded++;
                return;
        }
        r->meta.bounce_class = cls;
        r->t->events++;
        if (r->o->dry_run) {
                if (event_encode(r->enc, &r->out, rec, &r->meta) < 0 || buf_putc(&r->out, '\n') < 0)
                        r->err = errno;
                if (r->out.len >= OUT_FLUSH)
                        flush_out(r);
                return;
        }
        const struct config_output *co = &r->o->cfg->output;
        /* paced here: batches of a tenth of a second's events at most */
        size_t most = co->batch_max_records;
        if (r->pace_rate && r->pace_rate / 10 < most)
                most = r->pace_rate >= 10 ? r->pace_rate / 10 : 1;
        if (r->open &&
            (r->open->nevents >= most ||
             push_buf_len(&r->open->lines) + 2 * rec->raw_len + 1024 > co->batch_max_bytes)) {
                add_mark(r, rec->start, false);
                close_batch(r);
        }
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
                progress_sync(&r->prog, false);
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

/* A time as the files write it: local, with its offset. */
static const char *fmt_time(char *b, size_t n, int64_t t)
{
        time_t tt = (time_t)t;
        struct tm tm;
        if (!localtime_r(&tt, &tm) || !strftime(b, n, "%Y-%m-%d %H:%M:%S%z", &tm))
                snprintf(b, n, "%lld", (long long)t);
        return b;
}

static const char *window_text(char *b, size_t n, const struct pwindow *w)
{
        char s[40] = "", u[40] = "";
        if (w->all) {
                snprintf(b, n, "%s", "");
                return b;
        }
        if (w->since != INT64_MIN)
                fmt_time(s, sizeof s, w->since);
        if (w->until != INT64_MAX)
                fmt_time(u, sizeof u, w->until);
        snprintf(b, n, " since=\"%s\" until=\"%s\"", s, u);
        return b;
}

/* Where a file stands in the progress: -1 already delivered (skipped), 0 to
 * read from *start, -2 on an error (logged). */
static int plan_file(struct run *r, const struct archive_in *a, const char *q, uint64_t *start,
                     const char **header)
{
        r->entry = progress_entry(&r->prog, a->path, &a->id, a->dev, a->ino);
        if (r->entry < 0)
                return -2;
        r->pass = progress_plan(&r->prog, (size_t)r->entry, &r->window_sel, r->o->from_start, start,
                                header);
        if (r->pass == -2)
                return -2;
        if (r->pass < 0) {
                char w[128];
                log_info(r->o->log, "already replayed file=%s%s", q,
                         window_text(w, sizeof w, &r->window_sel));
                r->t->files_skipped++;
                return -1;
        }
        r->check_passes = r->prog.v[r->entry].npasses > 1;
        if (*start)
                log_info(r->o->log, "resuming file=%s offset=%llu", q, (unsigned long long)*start);
        return 0;
}

static int replay_file(struct run *r, const struct archive_in *a, char *chunk)
{
        const char *path = a->path;
        struct input in;
        char q[512];
        log_quote(q, sizeof q, path, strlen(path));
        if (input_open(&in, path) < 0) {
                log_error(r->o->log, "cannot open file=%s error=\"%s\"", q,
                          input_strerror(errno, path));
                return -1;
        }
        uint64_t start = 0;
        const char *header = NULL;
        r->entry = r->pass = -1;
        r->check_passes = false;
        if (!r->o->dry_run) {
                int pl = a->has_id ? plan_file(r, a, q, &start, &header) : -2;
                if (pl < 0) {
                        if (pl == -2)
                                log_error(r->o->log, "cannot note the progress of file=%s", q);
                        input_close(&in);
                        return pl == -1 ? 0 : -1;
                }
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
        r->file_in_window = 0;
        r->file_timed = false;
        r->meta.host = r->o->host;
        r->meta.path = path;
        r->meta.include_message = r->o->include_message;
        r->meta.now = (int64_t)time(NULL);
        bounce_classes_init(&r->classes, r->classifier);
        r->enc = event_encoder_new();
        r->parser = r->enc ? pmta_parser_new(&po) : NULL;
        int rc = -1;
        bool read_failed = false;
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
                        /* a truncated .gz (still being written, a copy cut
                         * short): what was read before is good, and goes out */
                        log_error(r->o->log,
                                  "cannot read file=%s offset=%llu error=\"%s\" records_read=%llu: "
                                  "the events before are %s, the file counts as failed",
                                  q, (unsigned long long)off,
                                  in.error[0] ? in.error : strerror(errno),
                                  (unsigned long long)pmta_parser_stats(r->parser)->records,
                                  r->o->dry_run ? "printed" : "delivered");
                        read_failed = true;
                        break;
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
                        if (r->open && now_ms() - r->open->opened_ms >= BATCH_LINGER_MS) {
                                add_mark(r, pmta_parser_settled_offset(r->parser), false);
                                close_batch(r);
                        }
                        wait_acks(r, false);
                }
                show_progress(r, false);
        }
        if (!r->o->dry_run && !r->t->interrupted) {
                if (rc == 0)
                        add_mark(r, pmta_parser_next_offset(r->parser), true);
                else
                        add_mark(r, pmta_parser_settled_offset(r->parser), false);
        }
        if (r->o->dry_run && flush_out(r) < 0)
                rc = -1;
        if (rc == 0 && r->windowed && start == 0 && !r->file_in_window && !r->t->interrupted) {
                r->quiet_files++;
                if (r->file_timed) {
                        if (!r->quiet_timed || r->file_min < r->quiet_min)
                                r->quiet_min = r->file_min;
                        if (!r->quiet_timed || r->file_max > r->quiet_max)
                                r->quiet_max = r->file_max;
                        r->quiet_timed = true;
                }
        }
out:
        if (read_failed)
                rc = -1;
        if (r->err) {
                rc = -1;
                log_error(r->o->log, "cannot deliver file=%s error=\"%s\"", q, strerror(r->err));
        }
        if (r->o->dry_run)
                flush_out(r); /* whatever was read comes out */
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

int replay_run(const struct archives *in, const struct replay_opts *opts, struct replay_totals *t)
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
        r.files_total = in->n;
        for (size_t i = 0; i < in->n; i++)
                r.bytes_total += in->v[i].size;
        r.windowed = o->has_since || o->has_until;
        r.window_sel = (struct pwindow){.all = !r.windowed,
                                        .since = o->has_since ? o->since : INT64_MIN,
                                        .until = o->has_until ? o->until : INT64_MAX};
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
                        progress_close(&r.prog);
                        free(chunk);
                        classifier_free(r.classifier);
                        return -1;
                }
                r.window = 4 * (size_t)o->cfg->output.batch_max_records;
                if (r.window < 1000)
                        r.window = 1000;
                if (o->cfg->output.kind == CONFIG_OUTPUT_FILE)
                        r.pace_rate = o->cfg->output.max_rate;
        }
        for (size_t i = 0; i < in->n && !t->interrupted; i++) {
                uint64_t before = r.bytes_done;
                if (replay_file(&r, &in->v[i], chunk) < 0) {
                        t->files_failed++;
                        rc = -1;
                }
                r.bytes_done = before + in->v[i].size;
                r.files_done++;
                t->files++;
                if (o->dry_run && fflush(o->out) != 0)
                        rc = -1;
        }
        if (!o->dry_run) {
                if (t->interrupted) {
                        /* not delivered: read again by the next run */
                        rbatch_free(r.open);
                        r.open = NULL;
                } else {
                        close_batch(&r);
                }
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
                progress_close(&r.prog);
        } else if (r.tty || r.files_total > 1) {
                show_progress(&r, true);
        }
        if (r.quiet_files) {
                char a[40], b[40];
                t->files_outside_window = r.quiet_files;
                if (r.quiet_timed)
                        log_warn(o->log,
                                 "no record of %llu files falls in the window; their times run "
                                 "from %s to %s",
                                 (unsigned long long)r.quiet_files,
                                 fmt_time(a, sizeof a, r.quiet_min),
                                 fmt_time(b, sizeof b, r.quiet_max));
                else
                        log_warn(o->log,
                                 "no record of %llu files falls in the window; none of their "
                                 "records carries a time",
                                 (unsigned long long)r.quiet_files);
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
        fprintf(out, " events=%llu", (unsigned long long)t->events);
        if (t->outside_window)
                fprintf(out, " outside_window=%llu", (unsigned long long)t->outside_window);
        if (t->files_outside_window)
                fprintf(out, " files_outside_window=%llu",
                        (unsigned long long)t->files_outside_window);
        if (t->already_delivered)
                fprintf(out, " already_delivered=%llu", (unsigned long long)t->already_delivered);
        if (t->unforwarded)
                fprintf(out, " not_forwarded=%llu", (unsigned long long)t->unforwarded);
        if (t->delivered || t->refused)
                fprintf(out, " sent=%llu refused=%llu",
                        (unsigned long long)(t->delivered - t->refused),
                        (unsigned long long)t->refused);
        if (t->files_skipped)
                fprintf(out, " files_already_done=%llu", (unsigned long long)t->files_skipped);
        if (t->skipped)
                fprintf(out, " skipped=%llu", (unsigned long long)t->skipped);
        fprintf(out, " bytes=%llu seconds=%.3f", (unsigned long long)t->bytes, seconds);
        if (seconds > 0)
                fprintf(out, " records_per_s=%.0f", (double)t->parsed.records / seconds);
        if (t->files_failed)
                fprintf(out, " files_failed=%llu", (unsigned long long)t->files_failed);
        if (t->interrupted)
                fprintf(out, " interrupted=yes");
        fputc('\n', out);
}
