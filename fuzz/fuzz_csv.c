/* libFuzzer target for the parser and the event encoder.
 *
 * The first two input bytes choose the chunk size and the record cap (and
 * how often the chunked run holds a record, as when memory runs out); the
 * rest is the file. Every input is parsed twice (whole, and in small chunks
 * following the parser's next_offset), and the two runs must agree; every
 * record's offsets must be sane and its raw text must be the file's bytes;
 * every event must be valid JSON and equal, byte for byte, to jansson's.
 * The settled offset never goes back nor past next_offset, and a parser
 * resumed at the settled offset of a run stopped part way (as after a
 * restart) emits exactly the records the whole run emits after it. */
#include "event.h"
#include "pmta_csv.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
        const uint8_t *file;
        size_t size;
        struct event_encoder *enc;
        struct buf events;
        uint64_t last_end;
        uint64_t tail_from; /* records ending past this also go to tail */
        struct buf tail;
        /* every hold_each-th record handed is held (pmta_parser_hold, as
         * when memory runs out): the output must not change */
        unsigned hold_each, calls;
        struct pmta_parser *p;
};

static void on_record(void *ctx, const struct pmta_record *r)
{
        struct run *run = ctx;
        if (run->hold_each && ++run->calls % run->hold_each == 0) {
                pmta_parser_hold(run->p);
                return;
        }
        if (r->end > run->size || r->start >= r->end || r->start < run->last_end ||
            r->start + r->raw_len > r->end)
                abort();
        /* raw is the file's own bytes (a BOM at offset 0 is dropped) */
        uint64_t s = r->start;
        if (s == 0 && run->size >= 3 && memcmp(run->file, "\xEF\xBB\xBF", 3) == 0 &&
            (r->raw_len < 3 || memcmp(r->raw, "\xEF\xBB\xBF", 3) != 0))
                s = 3;
        if (memcmp(run->file + s, r->raw, r->raw_len) != 0)
                abort();
        run->last_end = r->end;
        struct event_meta m = {.host = "h", .path = "p", .include_message = true, .now = 1};
        size_t before = run->events.len;
        if (event_encode(run->enc, &run->events, r, &m) != 0)
                abort();
        json_t *ref = event_to_json(r, &m);
        char *txt = ref ? json_dumps(ref, JSON_COMPACT) : NULL;
        if (!txt || strlen(txt) != run->events.len - before ||
            memcmp(txt, run->events.data + before, strlen(txt)) != 0)
                abort();
        json_error_t err;
        json_t *back =
            json_loadb(run->events.data + before, run->events.len - before, JSON_ALLOW_NUL, &err);
        if (!back)
                abort();
        json_decref(back);
        if (r->end > run->tail_from) {
                buf_append(&run->tail, txt, strlen(txt));
                buf_putc(&run->tail, '\n');
        }
        free(txt);
        json_decref(ref);
        buf_putc(&run->events, '\n');
}

static void on_reject(void *ctx, const struct pmta_reject *r)
{
        struct run *run = ctx;
        if (r->end > run->size || r->start > r->end)
                abort();
        char line[96];
        int n = snprintf(line, sizeof line, "reject %d %llu-%llu\n", (int)r->reason,
                         (unsigned long long)r->start, (unsigned long long)r->end);
        buf_append(&run->events, line, (size_t)n);
}

/* Parse run's file in chunks from `resume` (with that header, if any), to
 * its end, or only until next_offset reaches stop_at (not 0). Returns the
 * settled offset where it stopped; *header gets a copy of the header then in
 * force (NULL when none). */
static uint64_t parse_from(struct run *run, size_t chunk, size_t record_max, uint64_t resume,
                           const char *resume_header, uint64_t stop_at, char **header)
{
        static const char *const types[] = {"b", "rb", "f", "d"};
        struct pmta_parser_opts o = {.record_max = record_max,
                                     .types = types,
                                     .ntypes = 4,
                                     .on_record = on_record,
                                     .on_reject = on_reject,
                                     .ctx = run};
        run->enc = event_encoder_new();
        buf_init(&run->events, 1u << 30);
        buf_init(&run->tail, 1u << 30);
        run->last_end = resume;
        struct pmta_parser *p = pmta_parser_new(&o);
        if (!p || !run->enc)
                abort();
        run->p = p;
        if (pmta_parser_resume(p, resume, resume_header,
                               resume_header ? strlen(resume_header) : 0) < 0)
                abort();
        uint64_t settled = pmta_parser_settled_offset(p);
        for (int guard = 0;; guard++) {
                if (guard > 10 * 1000 * 1000)
                        abort(); /* no progress */
                uint64_t off = pmta_parser_next_offset(p);
                if (stop_at && off >= stop_at)
                        break;
                int r;
                if (off >= run->size) {
                        r = pmta_parser_finish(p);
                        if (r == PMTA_FEED_OK)
                                break;
                } else {
                        size_t k = run->size - off < chunk ? run->size - off : chunk;
                        r = pmta_parser_feed(p, run->file + off, k);
                }
                if (r < 0)
                        abort();
                uint64_t now = pmta_parser_settled_offset(p);
                if (now < settled || now > pmta_parser_next_offset(p))
                        abort();
                settled = now;
        }
        if (header) {
                const struct pmta_header *h = pmta_parser_header(p);
                /* one with a NUL byte cannot be saved as a string */
                *header =
                    h && !memchr(h->raw, '\0', h->raw_len) ? strndup(h->raw, h->raw_len) : NULL;
        }
        pmta_parser_free(p);
        event_encoder_free(run->enc);
        return settled;
}

static void parse(struct run *run, size_t chunk, size_t record_max)
{
        parse_from(run, chunk, record_max, 0, NULL, 0, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 2)
                return 0;
        size_t chunk = (size_t)(data[0] % 23) + 1;
        size_t record_max = (size_t)(data[1] % 8) * 16 + 16;
        if (data[1] & 0x80)
                record_max = 1 << 20;
        struct run whole = {.file = data + 2, .size = size - 2};
        struct run pieces = {.file = data + 2, .size = size - 2};
        unsigned hold = (unsigned)(data[0] / 23) % 4;
        pieces.hold_each = hold ? hold + 1 : 0;
        /* a run stopped part way, as by a restart, and one resumed where it
         * had settled */
        struct run first = {.file = data + 2, .size = size - 2, .tail_from = UINT64_MAX};
        uint64_t stop_at = (size - 2) * ((size_t)(data[0] % 7) + 1) / 8 + 1;
        char *header = NULL;
        uint64_t at = parse_from(&first, chunk, record_max, 0, NULL, stop_at, &header);
        /* a header spanning lines cannot be saved as one: not resumable */
        bool resumable = at > 0 && header && !strpbrk(header, "\r\n") && header[0];
        whole.tail_from = resumable ? at : UINT64_MAX;
        parse(&whole, size, record_max);
        parse(&pieces, chunk, record_max);
        if (whole.events.len != pieces.events.len ||
            (whole.events.len &&
             memcmp(whole.events.data, pieces.events.data, whole.events.len) != 0))
                abort();
        if (resumable) {
                struct run second = {.file = data + 2, .size = size - 2, .tail_from = 0};
                parse_from(&second, chunk, record_max, at, header, 0, NULL);
                if (whole.tail.len != second.tail.len ||
                    (whole.tail.len && memcmp(whole.tail.data, second.tail.data, whole.tail.len)))
                        abort();
                buf_free(&second.events);
                buf_free(&second.tail);
        }
        free(header);
        buf_free(&first.events);
        buf_free(&first.tail);
        buf_free(&whole.events);
        buf_free(&whole.tail);
        buf_free(&pieces.events);
        buf_free(&pieces.tail);
        return 0;
}
