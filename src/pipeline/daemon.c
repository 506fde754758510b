/* The daemon's pipeline and event loop.
 *
 * Records are read from the head file of each source, encoded into the open
 * batch, and the batch goes to the output when it is full or has lingered.
 * Each batch carries "marks": for every file it holds records of, the offset
 * up to which that file is settled (its records are in this batch or an
 * earlier one, or were filtered or rejected). When the output acknowledges
 * the batch, the marks become the committed offsets. Batches are
 * acknowledged in order, so a mark never passes an unacknowledged record.
 *
 * Reading stops while the window of events not yet acknowledged is full:
 * the accounting files themselves are the buffer, and memory stays flat
 * however far behind the output is. */
#include "daemon.h"

#include "buf.h"
#include "classes.h"
#include "event.h"
#include "output.h"
#include "rejects.h"
#include "status.h"
#include "safefile.h"
#include "pmta_csv.h"
#include "push.h"
#include "tailer.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

/* Offsets are saved in the loop pass after acknowledgements arrive, so a
 * kill -9 resends little more than what was in flight; under load the
 * acknowledgements of COMMIT_EVERY ms share one save (two fsyncs). A build
 * may set it otherwise (bench/ measures the cost of the saves that way). */
#ifndef PMTATAIL_COMMIT_MIN_MS
#define PMTATAIL_COMMIT_MIN_MS 10
#endif

#define READ_CHUNK     (64 * 1024)
#define MARKS_MAX      32
#define COMMIT_EVERY   PMTATAIL_COMMIT_MIN_MS
#define COMMIT_BACKOFF 1000 /* ms before a failed save (logged) is tried again */
#define RETRY_MS       1000 /* an output that refused a batch is tried again after this */
#define HOLD_MS        100  /* a record that could not be taken (memory) is read again after this */
#define STOP_DRAIN_MS  5000
#define REPORT_EVERY   2000 /* ms between status.json writes while things change */
/* One pass of reading gives the loop back after this many bytes or
 * milliseconds, records or not: a long skip (a hole of NUL bytes, a huge
 * rejected line) must not delay a signal, the watchdog or acknowledgements. */
#define READ_BUDGET_BYTES (8 * 1024 * 1024)
#define READ_BUDGET_MS    50

struct mark {
        struct tfile *f;
        uint32_t gen;
        uint64_t off;
        uint64_t hgen; /* the header in force at off (0: none yet) */
};

struct batch {
        struct buf lines;
        size_t nevents;
        struct mark marks[MARKS_MAX];
        size_t nmarks;
        int64_t opened_ms; /* when its first event came, 0 when it has none */
        uint32_t counts[CONFIG_MAX_SOURCES][TYPE_SLOTS]; /* events by source and type */
        struct batch *next;                              /* submitted batches, oldest first */
};

struct reader;

struct daemon {
        const struct config *cfg;
        const struct logger *log;
        struct tailer *tailer;
        struct push *push;
        struct batch *open;                /* being filled */
        struct batch *waiting;             /* closed, refused by the output: tried again */
        struct batch *sub_head, *sub_tail; /* taken by the output, not yet acknowledged */
        int64_t retry_at_ms;
        size_t inflight; /* events submitted, not yet acknowledged */
        size_t window;   /* the least events read ahead (window_events) */
        bool single;     /* one event per request */
        int64_t last_commit_ms;
        char *chunk;
        /* The last submitted batch's buffer, kept for the next batch: a
         * fresh one is mmapped and faulted in page by page, which cost as
         * much as encoding the events into it. */
        struct buf spare;
        uint64_t delivered, batches;
        bool stopping;
        struct source_counts counts[CONFIG_MAX_SOURCES];
        struct classifier *classifier;
        time_t started, last_delivery;
        /* When the bytes behind last went from none to some (0: none
         * behind): `status` tells a backlog that has waited from one that
         * just arrived after a quiet hour. */
        time_t behind_since;
        bool report_dirty;
        int64_t last_report_ms;
        int64_t metrics_at_ms; /* next metrics write, 0: no metrics */
        uint64_t watchdog_ms;  /* 0: no watchdog */
        int64_t watchdog_at_ms;
        uint64_t budget;      /* bytes this reading pass may still read */
        int64_t budget_until; /* and until when */
        bool more_to_read;    /* the last pass stopped on its budget, not on the data */
        bool caught_up;       /* the last pass read every file to its end */
        uint64_t unsaved;     /* events acknowledged since the last good save of the offsets */
        struct log_streak status_failing;
        struct log_streak metrics_failing;
        /* A record could not be taken (out of memory): reading stops at it
         * until hold_until_ms, then starts again from it. */
        bool held;
        int64_t hold_until_ms;
        struct log_streak hold_failing;
        char status_line[160];
        size_t blocked_seen; /* owed files blocked at the last look */
};

/* Per file being read: its parser and encoder. */
struct reader {
        struct daemon *d;
        struct tfile *f;
        size_t src;
        uint32_t gen;
        struct pmta_parser *parser;
        struct event_encoder *enc;
        struct event_meta meta;
        uint64_t header_gen;
        uint64_t rejects;
        struct bounce_classes classes;
        bool at_end; /* the last read found the end of the file */
};

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct batch *batch_new(struct daemon *d)
{
        struct batch *b = calloc(1, sizeof *b);
        if (!b)
                return NULL;
        /* One record alone may exceed batch_max_bytes: it still goes, so
         * the cap leaves room for the largest event. */
        size_t rmax = PMTA_RECORD_MAX_DEFAULT;
        for (size_t i = 0; i < d->cfg->n_sources; i++) {
                if (d->cfg->sources[i].record_max > rmax)
                        rmax = d->cfg->sources[i].record_max;
        }
        if (push_buf_open(&b->lines, d->cfg->output.batch_max_bytes + 14 * rmax + 65536,
                          &d->spare) < 0) {
                free(b);
                return NULL;
        }
        return b;
}

/* Keep one batch buffer for the next batch, unless one huge record grew it
 * far past a batch's size. */
static void batch_recycle(struct daemon *d, struct buf *lines)
{
        buf_to_spare(&d->spare, lines, 2 * d->cfg->output.batch_max_bytes + 65536);
}

static void batch_free(struct batch *b)
{
        if (!b)
                return;
        buf_free(&b->lines);
        free(b);
}

static void on_ack(void *ctx, void *token)
{
        struct daemon *d = ctx;
        struct batch *b = token;
        for (size_t i = 0; i < b->nmarks; i++) {
                tailer_ack_header(b->marks[i].f, b->marks[i].gen, b->marks[i].off,
                                  b->marks[i].hgen);
                tailer_file_release(b->marks[i].f);
        }
        d->inflight -= b->nevents;
        d->delivered += b->nevents;
        d->unsaved += b->nevents;
        d->batches++;
        for (size_t i = 0; b->nevents && i < d->cfg->n_sources; i++)
                for (int k = 0; k < TYPE_SLOTS; k++)
                        d->counts[i].delivered[k] += b->counts[i][k];
        if (b->nevents)
                d->last_delivery = time(NULL);
        d->report_dirty = true;
        /* acknowledgements come in submission order: b is the oldest */
        d->sub_head = b->next;
        if (!d->sub_head)
                d->sub_tail = NULL;
        batch_free(b);
}

/* Hand the open batch to the output. A refused batch waits and is tried
 * again; nothing after it goes first, so acknowledgements stay in order. */
/* Give b to the output; it is listed as submitted first, since the
 * acknowledgement may come before push_submit returns. */
static void submit(struct daemon *d, struct batch *b)
{
        b->next = NULL;
        if (d->sub_tail)
                d->sub_tail->next = b;
        else
                d->sub_head = b;
        d->sub_tail = b;
        if (push_submit_buf(d->push, &b->lines, b->nevents, b) == 0) {
                /* The output has the events (a copy, or this very buffer,
                 * exchanged for one it was done with): what b->lines holds
                 * serves the next batch, unless the ack came already and
                 * freed b. */
                for (struct batch *x = d->sub_head; x; x = x->next) {
                        if (x == b) {
                                batch_recycle(d, &b->lines);
                                break;
                        }
                }
        } else {
                /* not taken: off the list, wait and try again */
                struct batch **pp = &d->sub_head, *prev = NULL;
                while (*pp != b)
                        prev = *pp, pp = &(*pp)->next;
                *pp = NULL;
                d->sub_tail = prev;
                d->waiting = b;
                d->retry_at_ms = now_ms() + RETRY_MS;
        }
}

static void batch_close(struct daemon *d)
{
        struct batch *b = d->open;
        if (!b || (b->nevents == 0 && b->nmarks == 0) || d->waiting)
                return;
        d->open = NULL;
        d->inflight += b->nevents;
        submit(d, b);
}

static void retry_waiting(struct daemon *d)
{
        if (!d->waiting || now_ms() < d->retry_at_ms)
                return;
        struct batch *b = d->waiting;
        d->waiting = NULL;
        submit(d, b);
}

static struct batch *open_batch(struct daemon *d)
{
        if (!d->open)
                d->open = batch_new(d);
        return d->open;
}

/* Record that r's file is settled up to off in the open batch, read under
 * header h (the one in force at off; NULL when none yet). The header goes
 * with the mark, so the one saved with an acknowledged offset is the one
 * that offset was read with, never a later one. */
static int set_mark(struct reader *r, uint64_t off, const struct pmta_header *h)
{
        struct batch *b = open_batch(r->d);
        if (!b)
                return -1;
        uint64_t hgen = h ? h->generation : 0;
        if (h && hgen != r->header_gen) {
                r->header_gen = hgen;
                tailer_file_header_seen(r->f, hgen, h->raw, h->raw_len);
        }
        for (size_t i = 0; i < b->nmarks; i++) {
                if (b->marks[i].f == r->f && b->marks[i].gen == r->gen) {
                        if (off > b->marks[i].off) {
                                b->marks[i].off = off;
                                if (hgen)
                                        b->marks[i].hgen = hgen;
                        }
                        return 0;
                }
        }
        if (b->nmarks == MARKS_MAX) {
                batch_close(r->d);
                return set_mark(r, off, h);
        }
        b->marks[b->nmarks++] = (struct mark){r->f, r->gen, off, hgen};
        /* the file must outlive this batch's acknowledgement */
        tailer_file_hold(r->f);
        return 0;
}

/* The record cannot be taken now (out of memory): the parser hands it again
 * from its start after a pause, and nothing after it is read before it.
 * Dropping it would lose it for good: a later mark would settle the offset
 * past it. */
static void hold_reading(struct reader *r, const char *doing, uint64_t offset)
{
        struct daemon *d = r->d;
        d->held = true;
        d->hold_until_ms = now_ms() + HOLD_MS;
        log_streak_fail(d->log, &d->hold_failing, LOG_ERROR, "taking records",
                        "out of memory %s, reading it again file=%s offset=%llu retry_ms=%d", doing,
                        r->meta.path, (unsigned long long)offset, HOLD_MS);
}

static void hold_record(struct reader *r, const struct pmta_record *rec)
{
        pmta_parser_hold(r->parser);
        hold_reading(r, "taking a record", rec->start);
}

static bool batch_full(const struct daemon *d)
{
        const struct batch *b = d->open;
        return b && (b->nevents >= d->cfg->output.batch_max_records ||
                     push_buf_len(&b->lines) >= d->cfg->output.batch_max_bytes);
}

static void on_record(void *ctx, const struct pmta_record *rec)
{
        struct reader *r = ctx;
        struct daemon *d = r->d;
        const char *cls = bounce_class_of(&r->classes, rec);
        if (!bounce_forwarded(d->cfg->forward, rec, cls))
                return; /* [classify] forward: settled like a filtered row */
        r->meta.bounce_class = cls;
        if (batch_full(d)) {
                /* everything before this record is settled */
                set_mark(r, rec->start, rec->header);
                batch_close(d);
        }
        struct batch *b = open_batch(d);
        if (!b) {
                hold_record(r, rec);
                return;
        }
        size_t before = b->lines.len;
        if (b->nevents > 0 &&
            push_buf_len(&b->lines) + 2 * rec->raw_len + 1024 > d->cfg->output.batch_max_bytes) {
                set_mark(r, rec->start, rec->header);
                batch_close(d);
                b = open_batch(d);
                if (!b) {
                        hold_record(r, rec);
                        return;
                }
                before = b->lines.len;
        }
        if (event_encode(r->enc, &b->lines, rec, &r->meta) < 0 || buf_putc(&b->lines, '\n') < 0) {
                int e = errno;
                b->lines.len = before;
                if (b->lines.data)
                        b->lines.data[before] = '\0';
                if (e == ENOMEM) {
                        hold_record(r, rec);
                        return;
                }
                /* Past the cap: cannot happen with the room left above;
                 * never lose it silently. */
                log_error(d->log, "cannot encode record file=%s offset=%llu error=\"%s\"",
                          r->meta.path, (unsigned long long)rec->start, strerror(e));
                return;
        }
        if (d->hold_failing.since_ms)
                log_streak_ok(d->log, &d->hold_failing);
        if (b->nevents++ == 0)
                b->opened_ms = now_ms();
        int slot = report_type_slot(rec->cells[0].ptr, rec->cells[0].len);
        b->counts[r->src][slot]++;
        d->counts[r->src].read[slot]++;
        set_mark(r, rec->end, rec->header);
}

static void on_reject(void *ctx, const struct pmta_reject *rej)
{
        struct reader *r = ctx;
        log_reject(r->d->log, r->meta.path, rej, &r->rejects);
        r->d->counts[r->src].rejected++;
        set_mark(r, rej->end, pmta_parser_header(r->parser));
}

static void reader_free(struct reader *r)
{
        if (!r)
                return;
        pmta_parser_free(r->parser);
        event_encoder_free(r->enc);
        free(r);
}

static struct reader *reader_new(struct daemon *d, struct tfile *f, size_t src)
{
        const struct config_source *cs = &d->cfg->sources[src];
        struct reader *r = calloc(1, sizeof *r);
        if (!r)
                return NULL;
        r->d = d;
        r->f = f;
        r->src = src;
        r->gen = tailer_file_gen(f);
        r->meta.host = d->cfg->output.host;
        r->meta.path = tailer_file_path(f);
        r->meta.include_message = d->cfg->output.include_message;
        bounce_classes_init(&r->classes, d->classifier);
        const char *types[CONFIG_MAX_RECORD_TYPES];
        for (size_t i = 0; i < cs->n_records; i++)
                types[i] = cs->records[i];
        struct pmta_parser_opts po = {
            .record_max = cs->record_max,
            .types = types,
            .ntypes = cs->n_records,
            .columns = cs->columns,
            .on_record = on_record,
            .on_reject = on_reject,
            .ctx = r,
        };
        r->parser = pmta_parser_new(&po);
        r->enc = event_encoder_new();
        size_t hlen;
        const char *h = tailer_file_header(f, &hlen);
        if (!r->parser || !r->enc ||
            pmta_parser_resume(r->parser, tailer_file_start(f), h, hlen) < 0) {
                reader_free(r);
                return NULL;
        }
        return r;
}

/* The events read and not yet acknowledged that keep the output busy: a
 * batch for every request its window lets be in flight, one being
 * answered and one being filled (one event per request: a slot holds one
 * event, not a batch, and two batches keep every slot busy). The window
 * follows the output's: while the backend is slow or down, the files hold
 * the backlog, not memory. */
static size_t window_events(const struct daemon *d)
{
        size_t w = push_window(d->push);
        if (w == 0) /* a file: written and synced a few batches at a time */
                w = 4;
        if (w > d->cfg->output.concurrency)
                w = d->cfg->output.concurrency;
        size_t batch = d->cfg->output.batch_max_records;
        size_t n = d->single ? 2 * batch + w : (w + 2) * batch;
        return n < d->window ? d->window : n;
}

static bool window_full(const struct daemon *d)
{
        return d->stopping || d->waiting || d->held ||
               d->inflight + (d->open ? d->open->nevents : 0) >= window_events(d);
}

/* Read file f until its end or until the window is full. Returns true when
 * the caller may go on to the next file of the source: f was drained, or it
 * is at its end and superseded by a newer file (it stays open for a writer
 * that still appends to it). */
static bool read_file(struct daemon *d, struct tfile *f, size_t src)
{
        while (!window_full(d)) {
                if (d->budget == 0 || now_ms() >= d->budget_until) {
                        d->more_to_read = true;
                        return false;
                }
                struct reader *r = tailer_file_user(f);
                if (r && r->gen != tailer_file_gen(f)) {
                        /* read again from 0 (a look found it shrunk): the
                         * parser's offset and header are the old content's */
                        tailer_file_set_user(f, NULL);
                        reader_free(r);
                        r = NULL;
                }
                if (!r) {
                        r = reader_new(d, f, src);
                        if (!r) {
                                log_error(d->log, "out of memory");
                                return false;
                        }
                        tailer_file_set_user(f, r);
                }
                r->meta.now = (int64_t)time(NULL);
                /* the tailer renames f when it learns where a rotation put it */
                r->meta.path = tailer_file_path(f);
                uint64_t off = pmta_parser_next_offset(r->parser);
                /* After a pause at the end, make sure the file was not
                 * rewritten meanwhile before reading on from the old offset. */
                if ((r->at_end || tailer_file_undecided(f)) && tailer_file_truncated(f, off)) {
                        tailer_file_set_user(f, NULL);
                        reader_free(r);
                        return false;
                }
                r->at_end = false;
                ssize_t n = tailer_read(f, off, d->chunk, READ_CHUNK);
                /* a look (a rewrite found, a file opened again) may have
                 * named f anew, freeing the old name */
                r->meta.path = tailer_file_path(f);
                if (n < 0) {
                        /* the tailer logs it once per streak and keeps the
                         * file; reading goes on from here when it can */
                        return false;
                }
                int rc;
                if (n > 0) {
                        d->budget = (size_t)n < d->budget ? d->budget - (size_t)n : 0;
                        rc = pmta_parser_feed(r->parser, d->chunk, (size_t)n);
                } else if (tailer_file_truncated(f, off)) {
                        tailer_file_set_user(f, NULL);
                        reader_free(r);
                        return false; /* the source's order may have changed */
                } else if (tailer_file_final(f)) {
                        r->meta.path = tailer_file_path(f);
                        rc = pmta_parser_finish(r->parser);
                        if (rc == PMTA_FEED_OK) {
                                uint64_t end = pmta_parser_next_offset(r->parser);
                                set_mark(r, end, pmta_parser_header(r->parser));
                                /* the drained file's last mark goes out now */
                                batch_close(d);
                                tailer_file_set_user(f, NULL);
                                reader_free(r);
                                tailer_file_drained(f, end);
                                return true;
                        }
                } else {
                        /* at the end of a file that may still be written */
                        r->at_end = true;
                        return tailer_file_superseded(f);
                }
                if (rc < 0) {
                        /* the parser went back to the record's start: read
                         * again from there after a pause */
                        hold_reading(r, "parsing", pmta_parser_next_offset(r->parser));
                        return false;
                }
                /* every header line before the settled offset is parsed:
                 * the current header is the one in force there */
                set_mark(r, pmta_parser_settled_offset(r->parser), pmta_parser_header(r->parser));
        }
        return false;
}

/* Read source `src` in the order its files were written. */
static void read_source(struct daemon *d, size_t src)
{
        struct tfile *f = tailer_head(d->tailer, src);
        while (f) {
                /* f may be freed by read_file (drained and acknowledged):
                 * take its successor first. */
                struct tfile *next = tailer_next(f);
                bool go_on = read_file(d, f, src);
                if (tailer_take_requeued(d->tailer)) {
                        f = tailer_head(d->tailer, src);
                        continue;
                }
                if (!go_on)
                        return;
                f = next;
        }
}

static void read_all(struct daemon *d)
{
        if (d->held) {
                if (now_ms() < d->hold_until_ms) {
                        d->caught_up = false;
                        return;
                }
                d->held = false;
        }
        d->budget = READ_BUDGET_BYTES;
        d->budget_until = now_ms() + READ_BUDGET_MS;
        d->more_to_read = false;
        for (size_t i = 0; i < tailer_nsources(d->tailer); i++)
                read_source(d, i);
        d->caught_up = !d->more_to_read && !window_full(d);
}

/* Let the open batch go when full, lingered long enough, or when it only
 * carries marks (no request needed for those). And, as Nagle's algorithm
 * does, at once when the reader has caught up and the output is idle: a
 * trickle goes out without waiting for its linger, while a flood, which
 * keeps requests in flight, still fills whole batches meanwhile. */
static void maybe_close(struct daemon *d)
{
        struct batch *b = d->open;
        if (!b)
                return;
        if (batch_full(d) || b->nevents == 0 || d->stopping ||
            (d->caught_up && push_inflight(d->push) == 0) ||
            now_ms() - b->opened_ms >= (int64_t)d->cfg->output.linger_ms)
                batch_close(d);
}

static int poll_timeout(const struct daemon *d)
{
        int64_t now = now_ms(), t = -1;
        /* While a refused batch waits, the open one cannot go before it:
         * only the retry time matters (else poll would spin at 0). */
        if (d->open && d->open->nevents && !d->waiting)
                t = d->open->opened_ms + d->cfg->output.linger_ms;
        if (d->waiting && (t < 0 || d->retry_at_ms < t))
                t = d->retry_at_ms;
        if (d->held && (t < 0 || d->hold_until_ms < t))
                t = d->hold_until_ms;
        if (tailer_dirty(d->tailer)) {
                int64_t c = d->last_commit_ms + COMMIT_EVERY;
                if (t < 0 || c < t)
                        t = c;
        }
        int ms = t < 0 ? -1 : t <= now ? 0 : (int)(t - now);
        if (d->more_to_read && !window_full(d))
                return 0; /* the last pass ran out of budget, not of data */
        /* The tailer's deadlines are when a rotated file may be read to its
         * end: work that waits anyway while the window is full (an
         * acknowledgement wakes the loop). Heeding them then would spin at
         * poll(0) for as long as the output is down. */
        int tm = window_full(d) ? -1 : tailer_deadline_ms(d->tailer);
        if (tm >= 0 && (ms < 0 || tm < ms))
                ms = tm;
        return ms;
}

static void maybe_commit(struct daemon *d, bool force)
{
        if (!tailer_dirty(d->tailer))
                return;
        int64_t now = now_ms();
        /* Every acknowledgement handled by the last pass is saved now, in
         * one write; a burst of them waits at most COMMIT_EVERY. */
        if (!force && now - d->last_commit_ms < COMMIT_EVERY)
                return;
        if (tailer_commit(d->tailer) < 0) {
                d->last_commit_ms = now + COMMIT_BACKOFF - COMMIT_EVERY;
                return;
        }
        d->unsaved = 0;
        d->last_commit_ms = now;
}

static void report(struct daemon *d)
{
        struct tailer_source_info info[CONFIG_MAX_SOURCES];
        size_t n = tailer_nsources(d->tailer);
        uint64_t behind = 0;
        for (size_t i = 0; i < n; i++) {
                tailer_source_info(d->tailer, i, &info[i]);
                behind += info[i].bytes_behind;
        }
        if (!behind)
                d->behind_since = 0;
        else if (!d->behind_since)
                d->behind_since = time(NULL);
        struct report r = {
            .pid = (long)getpid(),
            .started = d->started,
            .now = time(NULL),
            .stopping = d->stopping,
            .last_delivery = d->last_delivery,
            .behind_since = d->behind_since,
            .nsrc = n,
            .src = info,
            .counts = d->counts,
            .output = d->cfg->output.kind == CONFIG_OUTPUT_URL ? "url" : "file",
        };
        push_get_stats(d->push, &r.push);
        if (report_write_status(d->cfg->state_dir, &r) < 0)
                log_streak_fail(d->log, &d->status_failing, LOG_WARN, "writing status.json",
                                "cannot write status.json in %s: %s", d->cfg->state_dir,
                                strerror(errno));
        else
                log_streak_ok(d->log, &d->status_failing);
        if (d->metrics_at_ms && now_ms() >= d->metrics_at_ms) {
                if (report_write_metrics(d->cfg->metrics_textfile, &r) < 0)
                        log_streak_fail(d->log, &d->metrics_failing, LOG_WARN,
                                        "writing the metrics file",
                                        "cannot write metrics file=%s error=\"%s\"",
                                        d->cfg->metrics_textfile, strerror(errno));
                else
                        log_streak_ok(d->log, &d->metrics_failing);
                d->metrics_at_ms = now_ms() + (int64_t)d->cfg->metrics_interval_s * 1000;
        }
        /* systemd's view: one line of what we are doing */
        char line[sizeof d->status_line];
        if (r.push.credentials)
                snprintf(line, sizeof line, "STATUS=credentials refused by the backend");
        else if (r.push.endpoint_refusing)
                snprintf(line, sizeof line,
                         "STATUS=the endpoint refuses every request (HTTP %ld): records held",
                         r.push.endpoint_status);
        else if (r.push.retrying)
                snprintf(line, sizeof line, "STATUS=retrying: %.120s", r.push.last_error);
        else
                snprintf(line, sizeof line, "STATUS=delivered %llu, %llu bytes behind",
                         (unsigned long long)d->delivered, (unsigned long long)behind);
        if (strcmp(line, d->status_line) != 0) {
                sd_notify(0, line);
                memcpy(d->status_line, line, sizeof line);
        }
        d->report_dirty = false;
        d->last_report_ms = now_ms();
}

/* Housekeeping that has its own clock: status, metrics, the watchdog. */
static void housekeeping(struct daemon *d)
{
        int64_t now = now_ms();
        if ((d->report_dirty && now - d->last_report_ms >= REPORT_EVERY) ||
            (d->metrics_at_ms && now >= d->metrics_at_ms))
                report(d);
        if (d->watchdog_ms && now >= d->watchdog_at_ms) {
                sd_notify(0, "WATCHDOG=1");
                d->watchdog_at_ms = now + (int64_t)d->watchdog_ms / 2;
        }
}

static int housekeeping_timeout(const struct daemon *d, int ms)
{
        int64_t now = now_ms(), t = -1;
        if (d->report_dirty)
                t = d->last_report_ms + REPORT_EVERY;
        if (d->metrics_at_ms && (t < 0 || d->metrics_at_ms < t))
                t = d->metrics_at_ms;
        if (d->watchdog_ms && (t < 0 || d->watchdog_at_ms < t))
                t = d->watchdog_at_ms;
        if (t < 0)
                return ms;
        int hk = t <= now ? 0 : (int)(t - now);
        return ms < 0 || hk < ms ? hk : ms;
}

/* SIGHUP: a good new configuration ends this run; a bad one is refused. */
static bool try_reload(struct daemon *d, const char *config_path, struct config **reloaded)
{
        struct config *c = calloc(1, sizeof *c);
        struct config_error *err = calloc(1, sizeof *err);
        bool ok = c && err && config_load(config_path, true, c, err) == 0;
        if (!ok) {
                log_error(d->log,
                          "reload refused, going on with the running configuration "
                          "file=%s",
                          config_path);
                for (size_t i = 0; err && i < err->count; i++)
                        log_error(d->log, "reload: %s", err->msg[i]);
                if (c)
                        config_free(c);
                free(c);
                free(err);
                return false;
        }
        free(err);
        log_info(d->log, "reloading configuration file=%s sources=%zu", config_path, c->n_sources);
        sd_notify(0, "RELOADING=1");
        *reloaded = c;
        return true;
}

enum daemon_result daemon_run(const struct config *cfg, const char *config_path,
                              const struct logger *log, int signal_fd, struct config **reloaded)
{
        *reloaded = NULL;
        struct daemon d = {.cfg = cfg, .log = log};
        if (cfg->n_sources == 0) {
                log_error(log, "no [source] in the configuration: nothing to follow");
                return DAEMON_FAILED;
        }
        if (cfg->output.kind == CONFIG_OUTPUT_NONE) {
                log_error(log, "run needs an [output]: url or file");
                return DAEMON_FAILED;
        }
        /* Offsets, dead letters and status live there: anyone else who can
         * write to it could plant links or rewrite what we resume from. */
        char why[4400];
        if (safefile_check_dir(cfg->state_dir, why, sizeof why) < 0) {
                log_error(log, "refusing the state directory: %s", why);
                return DAEMON_FAILED;
        }
        unsigned mode;
        const char *hf;
        for (size_t i = 0; (hf = config_next_header_file(&cfg->output, &i));)
                if (safefile_exposed(hf, &mode))
                        log_warn(log,
                                 "header_file %s is readable by group or others (mode %04o): it "
                                 "holds a secret, chmod go-r it",
                                 hf, mode);
        struct tailer_source_cfg src[CONFIG_MAX_SOURCES];
        for (size_t i = 0; i < cfg->n_sources; i++) {
                src[i] = (struct tailer_source_cfg){
                    .name = cfg->sources[i].name,
                    .path = cfg->sources[i].path,
                    .archive_dir = cfg->sources[i].archive_dir,
                    .start_at_end = cfg->sources[i].start_at == CONFIG_START_END,
                };
        }
        char err[1024];
        if (classifier_load(&d.classifier, cfg->classify_patterns, err, sizeof err) < 0) {
                log_error(log, "%s", err);
                return DAEMON_FAILED;
        }
        d.chunk = malloc(READ_CHUNK);
        if (!d.chunk) {
                log_error(log, "out of memory");
                classifier_free(d.classifier);
                return DAEMON_FAILED;
        }
        if (output_open(cfg, on_ack, &d, log, true, &d.push, err, sizeof err) < 0) {
                log_error(log, "%s", err);
                free(d.chunk);
                classifier_free(d.classifier);
                return DAEMON_FAILED;
        }
        if (tailer_open(&d.tailer, src, cfg->n_sources, cfg->state_dir, 0, log, err, sizeof err) <
            0) {
                log_error(log, "%s", err);
                push_close(d.push);
                free(d.chunk);
                classifier_free(d.classifier);
                return DAEMON_FAILED;
        }
        /* the least window (see window_events) */
        d.single = cfg->output.kind == CONFIG_OUTPUT_URL && config_output_single(&cfg->output);
        d.window = 1000;
        d.last_commit_ms = now_ms();
        d.started = time(NULL);
        if (cfg->metrics_textfile)
                d.metrics_at_ms = now_ms();
        uint64_t wd_usec = 0;
        if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec >= 2000)
                d.watchdog_ms = wd_usec / 1000;
        log_info(log, "running sources=%zu state=%s", cfg->n_sources, cfg->state_dir);
        /* the offsets are loaded and the watches armed: ready */
        report(&d);
        sd_notify(0, "READY=1");

        struct pollfd pfd[2] = {
            {.fd = tailer_fd(d.tailer), .events = POLLIN},
            {.fd = signal_fd, .events = POLLIN},
        };
        while (!d.stopping) {
                retry_waiting(&d);
                read_all(&d);
                maybe_close(&d);
                maybe_commit(&d, false);
                /* delivery in progress (or retried): status moves with it */
                if (push_inflight(d.push))
                        d.report_dirty = true;
                /* a file blocked or readable again: status says so */
                if (tailer_blocked(d.tailer) != d.blocked_seen) {
                        d.blocked_seen = tailer_blocked(d.tailer);
                        d.report_dirty = true;
                }
                housekeeping(&d);
                int r = push_wait(d.push, pfd, 2, housekeeping_timeout(&d, poll_timeout(&d)));
                if (r < 0 && errno != EINTR) {
                        log_error(log, "poll: %s", strerror(errno));
                        break;
                }
                if (pfd[1].revents & POLLIN) {
                        struct signalfd_siginfo si;
                        if (read(signal_fd, &si, sizeof si) == sizeof si) {
                                if (si.ssi_signo == SIGHUP) {
                                        d.stopping = try_reload(&d, config_path, reloaded);
                                } else {
                                        log_info(log, "stopping signal=%s",
                                                 strsignal((int)si.ssi_signo));
                                        d.stopping = true;
                                }
                        }
                }
                if (pfd[0].revents & POLLIN)
                        tailer_handle_events(d.tailer);
                tailer_tick(d.tailer);
        }

        /* Deliver what is read (bounded wait), commit, leave. */
        if (!*reloaded)
                sd_notify(0, "STOPPING=1");
        maybe_close(&d);
        int64_t give_up = now_ms() + STOP_DRAIN_MS;
        /* every submitted batch: one of no events (marks only) is
         * acknowledged after those before it, through the output's thread */
        while ((d.waiting || d.sub_head) && now_ms() < give_up) {
                d.retry_at_ms = 0;
                retry_waiting(&d);
                push_wait(d.push, NULL, 0, 200);
        }
        if (d.waiting || d.sub_head)
                log_warn(log, "stopping with undelivered records: they are read again at the "
                              "next start");
        maybe_commit(&d, true);
        /* A stop that could not make the offsets durable is a failure: the
         * records acknowledged since the last save go out again. */
        bool unsaved = tailer_dirty(d.tailer);
        if (unsaved)
                log_error(log,
                          "stopping without saving the offsets: up to %llu delivered records "
                          "may be sent again at the next start",
                          (unsigned long long)d.unsaved);
        d.metrics_at_ms = d.metrics_at_ms ? 1 : 0; /* a last metrics write too */
        report(&d);
        for (size_t i = 0; i < tailer_nsources(d.tailer); i++) {
                /* every file, the owed ones passed over by tailer_head too */
                for (struct tfile *f = tailer_queue_first(d.tailer, i); f;
                     f = tailer_queue_next(f)) {
                        reader_free(tailer_file_user(f));
                        tailer_file_set_user(f, NULL);
                }
        }
        log_info(log, "stopped delivered=%llu batches=%llu", (unsigned long long)d.delivered,
                 (unsigned long long)d.batches);
        tailer_close(d.tailer);
        batch_free(d.waiting);
        batch_free(d.open);
        push_close(d.push); /* drops what it still held: read again at the next start */
        d.push = NULL;
        for (struct batch *b = d.sub_head, *next; b; b = next) {
                next = b->next;
                batch_free(b);
        }
        free(d.chunk);
        buf_free(&d.spare);
        classifier_free(d.classifier);
        /* a reload goes on: the next run resumes from the last good save */
        return *reloaded ? DAEMON_RELOAD : unsaved ? DAEMON_UNSAVED : DAEMON_STOPPED;
}
