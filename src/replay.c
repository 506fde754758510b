#include "replay.h"

#include "buf.h"
#include "event.h"
#include "pmta_csv.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK    (256 * 1024)
#define OUT_FLUSH     (256 * 1024)
#define REJECTS_SHOWN 100 /* per file; the rest are counted */

struct file_run {
        const struct replay_opts *o;
        const char *path;
        struct event_encoder *enc;
        struct pmta_parser *parser;
        struct buf out;
        struct event_meta meta;
        uint64_t rejects_logged;
        int err; /* first output error, errno */
};

static int flush_out(struct file_run *fr)
{
        if (fr->out.len == 0)
                return 0;
        if (fwrite(fr->out.data, 1, fr->out.len, fr->o->out) != fr->out.len) {
                fr->err = errno ? errno : EIO;
                return -1;
        }
        buf_reset(&fr->out);
        return 0;
}

static void emit(struct file_run *fr, int r)
{
        if (r < 0) {
                fr->err = errno;
                return;
        }
        if (buf_putc(&fr->out, '\n') < 0)
                fr->err = errno;
        if (fr->out.len >= OUT_FLUSH)
                flush_out(fr);
}

static void on_record(void *ctx, const struct pmta_record *rec)
{
        struct file_run *fr = ctx;
        if (fr->err)
                return;
        emit(fr, event_encode(fr->enc, &fr->out, rec, &fr->meta));
}

static void on_reject(void *ctx, const struct pmta_reject *rej)
{
        struct file_run *fr = ctx;
        if (fr->rejects_logged < REJECTS_SHOWN) {
                char q[512], raw[160], cells[64] = "";
                size_t shown = rej->raw_len < 60 ? rej->raw_len : 60;
                if (rej->reason == PMTA_REJECT_CELL_COUNT)
                        snprintf(cells, sizeof cells, " cells=%zu expected=%zu", rej->ncells,
                                 rej->expected);
                log_warn(fr->o->log,
                         "rejected record file=%s line=%llu offset=%llu reason=\"%s\"%s start=%s",
                         log_quote(q, sizeof q, fr->path, strlen(fr->path)),
                         (unsigned long long)rej->line, (unsigned long long)rej->start,
                         pmta_reject_reason_str(rej->reason), cells,
                         log_quote(raw, sizeof raw, rej->raw, shown));
        } else if (fr->rejects_logged == REJECTS_SHOWN) {
                char q[512];
                log_warn(fr->o->log, "more rejected records not shown file=%s",
                         log_quote(q, sizeof q, fr->path, strlen(fr->path)));
        }
        fr->rejects_logged++;
        if (fr->o->keep_rejects && !fr->err)
                emit(fr,
                     event_encode_reject(&fr->out, rej, pmta_parser_header(fr->parser), &fr->meta));
}

static void add_totals(struct replay_totals *t, const struct pmta_stats *st)
{
        t->records += st->records;
        t->filtered += st->filtered;
        t->rejected += st->rejected;
        t->other_types += st->other_types;
        for (size_t i = 0; i < st->ntypes; i++) {
                size_t k = 0;
                while (k < t->ntypes && strcmp(t->types[k].type, st->types[i].type) != 0)
                        k++;
                if (k == t->ntypes) {
                        if (k == sizeof t->types / sizeof t->types[0]) {
                                t->other_types += st->types[i].count;
                                continue;
                        }
                        memcpy(t->types[k].type, st->types[i].type, sizeof t->types[k].type);
                        t->types[k].forwarded = st->types[i].forwarded;
                        t->types[k].count = 0;
                        t->ntypes++;
                }
                t->types[k].count += st->types[i].count;
        }
}

/* Read one file to its end through the parser. The parser says where to
 * read next (it may go back after a runaway quote), so reads are preads at
 * its offset. */
static int replay_file(struct file_run *fr, int fd, char *chunk, uint64_t *bytes)
{
        for (;;) {
                uint64_t off = pmta_parser_next_offset(fr->parser);
                ssize_t n = pread(fd, chunk, READ_CHUNK, (off_t)off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -1;
                }
                int r;
                if (n == 0) {
                        r = pmta_parser_finish(fr->parser);
                        if (r == PMTA_FEED_OK)
                                break;
                } else {
                        *bytes += (uint64_t)n;
                        r = pmta_parser_feed(fr->parser, chunk, (size_t)n);
                }
                if (r < 0)
                        return -1;
                if (fr->err)
                        return -1;
        }
        return 0;
}

int replay_dry_run(const char *const *paths, size_t npaths, const struct replay_opts *o,
                   struct replay_totals *t)
{
        int rc = 0;
        char *chunk = malloc(READ_CHUNK);
        if (!chunk) {
                log_error(o->log, "out of memory");
                return -1;
        }
        for (size_t i = 0; i < npaths; i++) {
                char q[512];
                const char *path = paths[i];
                log_quote(q, sizeof q, path, strlen(path));
                struct file_run fr = {.o = o, .path = path, .enc = event_encoder_new()};
                fr.meta.host = o->host;
                fr.meta.path = path;
                fr.meta.include_message = o->include_message;
                fr.meta.now = (int64_t)time(NULL);
                /* A single event never needs more than this: the record
                 * (record_max) escaped six-fold at worst, plus the fields. */
                size_t rmax = o->record_max ? o->record_max : PMTA_RECORD_MAX_DEFAULT;
                buf_init(&fr.out, OUT_FLUSH + 14 * rmax + 65536);

                struct pmta_parser_opts po = {
                    .record_max = o->record_max,
                    .types = o->types,
                    .ntypes = o->ntypes,
                    .columns = o->columns,
                    .on_record = on_record,
                    .on_reject = on_reject,
                    .ctx = &fr,
                };
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0) {
                        log_error(o->log, "cannot open file=%s error=\"%s\"", q, strerror(errno));
                        t->files_failed++;
                        rc = -1;
                        buf_free(&fr.out);
                        continue;
                }
                posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
                fr.parser = fr.enc ? pmta_parser_new(&po) : NULL;
                if (!fr.parser) {
                        log_error(o->log, "cannot start parser file=%s error=\"%s\"", q,
                                  strerror(errno));
                        close(fd);
                        buf_free(&fr.out);
                        event_encoder_free(fr.enc);
                        t->files_failed++;
                        rc = -1;
                        continue;
                }
                int r = replay_file(&fr, fd, chunk, &t->bytes);
                int e = errno;
                close(fd);
                if (r == 0)
                        r = flush_out(&fr);
                if (r < 0 || fr.err) {
                        if (fr.err)
                                log_error(o->log, "cannot write events file=%s error=\"%s\"", q,
                                          strerror(fr.err));
                        else
                                log_error(o->log, "cannot read file=%s error=\"%s\"", q,
                                          strerror(e));
                        t->files_failed++;
                        rc = -1;
                }
                const struct pmta_stats *st = pmta_parser_stats(fr.parser);
                add_totals(t, st);
                t->files++;
                log_info(o->log, "replayed file=%s records=%llu filtered=%llu rejected=%llu", q,
                         (unsigned long long)st->records, (unsigned long long)st->filtered,
                         (unsigned long long)st->rejected);
                pmta_parser_free(fr.parser);
                event_encoder_free(fr.enc);
                buf_free(&fr.out);
                if (fr.err == EPIPE)
                        break;
        }
        if (fflush(o->out) != 0)
                rc = -1;
        free(chunk);
        return rc;
}

void replay_print_summary(const struct replay_totals *t, double seconds, FILE *out)
{
        fprintf(out, "summary: files=%llu records=%llu filtered=%llu rejected=%llu",
                (unsigned long long)t->files, (unsigned long long)t->records,
                (unsigned long long)t->filtered, (unsigned long long)t->rejected);
        for (size_t i = 0; i < t->ntypes; i++)
                fprintf(out, " type_%s=%llu", t->types[i].type,
                        (unsigned long long)t->types[i].count);
        if (t->other_types)
                fprintf(out, " type_other=%llu", (unsigned long long)t->other_types);
        fprintf(out, " bytes=%llu seconds=%.3f", (unsigned long long)t->bytes, seconds);
        if (seconds > 0)
                fprintf(out, " records_per_s=%.0f", (double)t->records / seconds);
        if (t->files_failed)
                fprintf(out, " files_failed=%llu", (unsigned long long)t->files_failed);
        fputc('\n', out);
}
