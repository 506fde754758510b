/* PowerMTA accounting parser on top of libcsv.
 *
 * libcsv reports fields and row ends but not where in the input they are. To
 * know the offset just past every record, each call into libcsv is given a
 * segment that ends at the next CR or LF: libcsv can end a row only on such a
 * byte, so when its row callback fires during a call, the row ended at that
 * segment's last byte. The cost is one csv_parse call per physical line.
 *
 * Alongside libcsv the parser keeps the raw bytes of the record being read
 * (for the event's "message", for eventId, and to resynchronise after a
 * runaway quote), and the unquoted cells. All three are capped by
 * record_max; past it the record is rejected and the rest of its line skipped
 * without being looked at: a bad line costs only itself, whatever its quotes.
 *
 * A quote opened and closed many lines later is legal CSV (PowerMTA writes
 * multi-line dsnDiag texts that way) but a stray quote looks the same. The
 * tell is what the quote swallows: the lines inside a real dsnDiag are SMTP
 * text, while a stray quote swallows whole records. So a line inside a quoted
 * field that, read on its own, is a record of this file (a known record type,
 * then the header's cell count) makes the record the bad line: its first line
 * is rejected and parsing resumes on the line after it. */
#include "pmta_csv.h"

#include "buf.h"

#include <csv.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* libcsv's parser states (struct csv_parser.pstate), stable since 1.0. */
enum {
        LIBCSV_ROW_NOT_BEGUN = 0,
        LIBCSV_FIELD_NOT_BEGUN = 1,
        LIBCSV_FIELD_BEGUN = 2,
        LIBCSV_FIELD_MIGHT_HAVE_ENDED = 3
};

enum mode {
        MODE_NORMAL,
        MODE_SKIP,        /* inside an over-long record, looking for its end */
        MODE_SEEK_HEADER, /* resuming: reading row 1 for the header, then jump */
};

struct cell_span {
        size_t off, len; /* into cellbuf: offsets survive its reallocation */
};

struct pmta_parser {
        struct csv_parser csv;
        size_t record_max;
        char **types;
        size_t ntypes;
        void (*on_record)(void *, const struct pmta_record *);
        void (*on_reject)(void *, const struct pmta_reject *);
        void *ctx;

        enum mode mode;
        uint64_t next_offset; /* offset of the next byte expected */
        uint64_t line;        /* 1-based line of the next byte */
        bool lines_unknown;   /* after a jump to a resume offset: lines reported as 0 */
        uint64_t resume_at;   /* records ending at or before this are not emitted */

        /* the record being read */
        struct buf raw;     /* its bytes from its first byte on */
        uint64_t rec_start; /* offset of its first byte */
        uint64_t rec_line;  /* line of its first byte */
        size_t first_break; /* raw offset just past the first CR/LF inside it, 0 if none */
        size_t line_start;  /* raw offset where its current physical line begins */
        unsigned breaks;    /* CR/LF bytes inside it, all within quotes */
        struct buf cellbuf; /* unquoted cell bytes, back to back */
        struct cell_span *spans;
        size_t nspans;
        bool too_many_cells;
        bool row_done;
        int row_term; /* the byte that ended the row, -1 at end of file */
        bool oom;
        bool held; /* on_record could not take the record: read it again */

        /* skip mode */
        uint64_t skip_start, skip_line;
        bool skip_resumed; /* skipping the rest of a line a resume offset fell inside */
        /* Resuming: the byte before the resume offset is read first, to tell
         * a record boundary from an offset inside a skipped line. */
        bool probe;

        /* the header in force */
        struct pmta_header header;
        struct pmta_field *names;
        struct buf header_raw;
        struct buf header_cells;
        uint64_t generation;

        /* scratch for the record handed to callbacks */
        struct pmta_field *cells;

        struct pmta_stats stats;
};

static const char *const default_types[] = {"b", "rb", "f"};

static int no_space(unsigned char c)
{
        (void)c;
        return 0;
}

static int is_term(unsigned char c)
{
        return c == '\r' || c == '\n';
}

static int libcsv_start(struct pmta_parser *p)
{
        if (csv_init(&p->csv, 0) != 0)
                return -1;
        csv_set_space_func(&p->csv, no_space);
        /* libcsv's built-in terminators are CR and LF, as ours: leaving its
         * term function unset spares an indirect call per byte. */
        /* Grow field buffers in big steps: a 1 MiB field would otherwise cost
         * thousands of reallocs at the default 128 bytes. */
        csv_set_blk_size(&p->csv, 4096);
        return 0;
}

/* Forget libcsv's state (after a skipped record or a jump). Its buffer is
 * released too, so one huge field does not pin memory. */
static int libcsv_restart(struct pmta_parser *p)
{
        csv_free(&p->csv);
        return libcsv_start(p);
}

static void on_field(void *s, size_t len, void *data)
{
        struct pmta_parser *p = data;
        if (p->too_many_cells || p->oom)
                return;
        if (p->nspans >= PMTA_CELLS_MAX) {
                p->too_many_cells = true;
                return;
        }
        /* Cells are never larger than the raw record, which is capped, so
         * cellbuf's cap is only a backstop. */
        size_t off = p->cellbuf.len;
        if (buf_append(&p->cellbuf, s ? s : "", len) < 0) {
                p->oom = errno == ENOMEM;
                p->too_many_cells = !p->oom;
                return;
        }
        p->spans[p->nspans].off = off;
        p->spans[p->nspans].len = len;
        p->nspans++;
}

static void on_row(int c, void *data)
{
        struct pmta_parser *p = data;
        p->row_done = true;
        p->row_term = c;
}

static void reset_record(struct pmta_parser *p)
{
        buf_reset(&p->raw);
        buf_reset(&p->cellbuf);
        /* One huge record must not keep its peak size for the rest of the
         * file. */
        buf_shrink(&p->raw, 64 * 1024);
        buf_shrink(&p->cellbuf, 64 * 1024);
        p->nspans = 0;
        p->too_many_cells = false;
        p->row_done = false;
        p->first_break = 0;
        p->line_start = 0;
        p->breaks = 0;
        p->rec_start = p->next_offset;
        p->rec_line = p->line;
}

static struct pmta_type_count *type_slot(struct pmta_parser *p, const char *t, size_t n,
                                         bool forwarded)
{
        struct pmta_stats *st = &p->stats;
        for (size_t i = 0; i < st->ntypes; i++) {
                if (strlen(st->types[i].type) == n && memcmp(st->types[i].type, t, n) == 0)
                        return &st->types[i];
        }
        if (st->ntypes == PMTA_TYPE_STATS_MAX || n >= sizeof st->types[0].type || n == 0 ||
            memchr(t, '\0', n))
                return NULL;
        struct pmta_type_count *slot = &st->types[st->ntypes++];
        memcpy(slot->type, t, n);
        slot->type[n] = '\0';
        slot->forwarded = forwarded;
        slot->count = 0;
        return slot;
}

static bool type_forwarded(const struct pmta_parser *p, const char *t, size_t n)
{
        for (size_t i = 0; i < p->ntypes; i++) {
                if (strlen(p->types[i]) == n && memcmp(p->types[i], t, n) == 0)
                        return true;
        }
        return false;
}

static struct pmta_type_count *count_type(struct pmta_parser *p, const char *t, size_t n,
                                          bool forwarded)
{
        struct pmta_type_count *slot = type_slot(p, t, n, forwarded);
        if (slot)
                slot->count++;
        else
                p->stats.other_types++;
        return slot;
}

static void reject(struct pmta_parser *p, enum pmta_reject_reason why, uint64_t start, uint64_t end,
                   uint64_t line, const char *raw, size_t raw_len, size_t ncells)
{
        p->stats.rejected++;
        p->stats.rejected_by_reason[why]++;
        if (!p->on_reject)
                return;
        struct pmta_reject r = {
            .reason = why,
            .start = start,
            .end = end,
            .line = p->lines_unknown ? 0 : line,
            .raw = raw ? raw : "",
            .raw_len = raw_len,
            .ncells = ncells,
            .expected = p->header.ncols,
        };
        p->on_reject(p->ctx, &r);
}

/* Adopt the cells of the current row as the header. */
static int adopt_header(struct pmta_parser *p, const char *raw, size_t raw_len)
{
        struct pmta_field *names = realloc(p->names, (p->nspans ? p->nspans : 1) * sizeof *names);
        if (!names)
                return -1;
        p->names = names;
        buf_reset(&p->header_raw);
        buf_reset(&p->header_cells);
        if (buf_append(&p->header_raw, raw, raw_len) < 0 ||
            buf_append(&p->header_cells, p->cellbuf.data, p->cellbuf.len) < 0)
                return -1;
        for (size_t i = 0; i < p->nspans; i++) {
                names[i].ptr = p->header_cells.data + p->spans[i].off;
                names[i].len = p->spans[i].len;
        }
        p->header.ncols = p->nspans;
        p->header.names = names;
        p->header.raw = p->header_raw.data;
        p->header.raw_len = p->header_raw.len;
        p->header.generation = ++p->generation;
        p->stats.headers++;
        return 0;
}

static bool cell_is(const struct pmta_parser *p, size_t i, const char *s)
{
        size_t n = strlen(s);
        return p->spans[i].len == n && memcmp(p->cellbuf.data + p->spans[i].off, s, n) == 0;
}

/* Every record type PowerMTA writes, and the configured ones. */
static bool known_type(const struct pmta_parser *p, const unsigned char *s, size_t n)
{
        static const char *const codes[] = {"b", "rb", "f", "d", "t", "tq", "r", "rs"};
        for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
                if (strlen(codes[i]) == n && memcmp(codes[i], s, n) == 0)
                        return true;
        }
        for (size_t i = 0; i < p->ntypes; i++) {
                if (strlen(p->types[i]) == n && memcmp(p->types[i], s, n) == 0)
                        return true;
        }
        return false;
}

/* A complete row sits in raw/cellbuf; `end` is the offset past its
 * terminator. Decide what it is and tell the caller. */
static int finish_row(struct pmta_parser *p, uint64_t end)
{
        size_t raw_len = p->raw.len;
        if (p->row_term >= 0 && raw_len > 0)
                raw_len--; /* the CR or LF that ended it */
        const char *raw = p->raw.data ? p->raw.data : "";

        /* A UTF-8 byte order mark can only be at the very start of a file. */
        if (p->rec_start == 0 && p->nspans > 0 && p->spans[0].len >= 3 &&
            memcmp(p->cellbuf.data + p->spans[0].off, "\xEF\xBB\xBF", 3) == 0) {
                p->spans[0].off += 3;
                p->spans[0].len -= 3;
                if (raw_len >= 3 && memcmp(raw, "\xEF\xBB\xBF", 3) == 0) {
                        raw += 3;
                        raw_len -= 3;
                }
        }

        if (!p->too_many_cells && p->nspans > 0 && cell_is(p, 0, "type"))
                return adopt_header(p, raw, raw_len);
        if (end <= p->resume_at)
                return 0; /* acknowledged before a restart */
        if (p->too_many_cells) {
                reject(p, PMTA_REJECT_CELL_COUNT, p->rec_start, end, p->rec_line, raw, raw_len,
                       p->nspans);
                return 0;
        }

        const char *type = p->nspans ? p->cellbuf.data + p->spans[0].off : "";
        size_t type_len = p->nspans ? p->spans[0].len : 0;

        bool fwd = type_forwarded(p, type, type_len);
        /* A row of no record type PowerMTA writes whose cells do not fit
         * the header (half of a record broken across lines, a stray line)
         * is no record at all: rejected, never counted as filtered. A row
         * of a type not forwarded but known, or of an unknown type with the
         * header's cells, is a record we do not want. */
        if (!fwd && !known_type(p, (const unsigned char *)type, type_len) &&
            (p->header.generation == 0 || p->nspans != p->header.ncols)) {
                reject(p,
                       p->header.generation == 0 ? PMTA_REJECT_NO_HEADER : PMTA_REJECT_CELL_COUNT,
                       p->rec_start, end, p->rec_line, raw, raw_len, p->nspans);
                return 0;
        }
        struct pmta_type_count *slot = count_type(p, type, type_len, fwd);
        if (!fwd) {
                p->stats.filtered++;
                return 0;
        }
        if (p->header.generation == 0) {
                reject(p, PMTA_REJECT_NO_HEADER, p->rec_start, end, p->rec_line, raw, raw_len,
                       p->nspans);
                return 0;
        }
        if (p->nspans != p->header.ncols) {
                /* Short, with no terminator, at the end of a file: the writer
                 * stopped in the middle of it. */
                enum pmta_reject_reason why = p->row_term < 0 && p->nspans < p->header.ncols
                                                  ? PMTA_REJECT_INCOMPLETE
                                                  : PMTA_REJECT_CELL_COUNT;
                reject(p, why, p->rec_start, end, p->rec_line, raw, raw_len, p->nspans);
                return 0;
        }
        for (size_t i = 0; i < p->nspans; i++) {
                p->cells[i].ptr = p->cellbuf.data + p->spans[i].off;
                p->cells[i].len = p->spans[i].len;
        }
        struct pmta_record rec = {
            .header = &p->header,
            .cells = p->cells,
            .ncells = p->nspans,
            .raw = raw,
            .raw_len = raw_len,
            .start = p->rec_start,
            .end = end,
            .line = p->lines_unknown ? 0 : p->rec_line,
        };
        p->stats.records++;
        if (p->on_record)
                p->on_record(p->ctx, &rec);
        if (p->held) {
                /* not taken: it is counted when it is handed again */
                p->held = false;
                p->stats.records--;
                if (slot)
                        slot->count--;
                else
                        p->stats.other_types--;
                return 1;
        }
        return 0;
}

/* Back to the start of the record in progress, where the next feed begins:
 * after a record held (pmta_parser_hold), or memory that ran out in the
 * middle of one (whatever of it libcsv took is forgotten, so that feeding
 * it again does not parse it twice). Between records libcsv is at a row's
 * start, as a fresh one is. */
static int rewind_record(struct pmta_parser *p)
{
        p->oom = false;
        p->next_offset = p->rec_start;
        p->line = p->rec_line;
        reset_record(p);
        return libcsv_restart(p);
}

/* Out of memory inside a record: it is parsed again from its start. */
static int oom_in_record(struct pmta_parser *p)
{
        rewind_record(p);
        errno = ENOMEM;
        return -1;
}

void pmta_parser_hold(struct pmta_parser *p)
{
        p->held = true;
}

/* After a resumed parser has read the first row (the header), go to the
 * committed offset. */
static int seek_done(struct pmta_parser *p)
{
        p->mode = MODE_NORMAL;
        if (p->next_offset >= p->resume_at)
                return 0;
        if (libcsv_restart(p) < 0)
                return -1;
        p->next_offset = p->resume_at - 1;
        p->probe = true;
        /* Line numbers are unknown after a jump; 0 says so in messages. */
        p->lines_unknown = true;
        reset_record(p);
        return PMTA_FEED_REREAD;
}

/* The record in progress ran past record_max. Returns PMTA_FEED_REREAD when
 * the parser goes back to the line after the record's first line break,
 * 0 when it enters skip mode, -1 on allocation failure. */
static int overflow(struct pmta_parser *p, enum pmta_reject_reason why)
{
        if (p->first_break > 0) {
                /* Either a runaway quote swallowed the lines after it, or a
                 * legitimately huge quoted field spans lines. Rejecting the
                 * first line and parsing again right after it recovers the good
                 * records in the first case; in the second the fragments are
                 * rejected or filtered one by one. Nothing valid is lost. */
                uint64_t brk = p->rec_start + p->first_break;
                reject(p, why, p->rec_start, brk, p->rec_line, p->raw.data, p->first_break - 1,
                       p->nspans);
                if (libcsv_restart(p) < 0)
                        return -1;
                const char *b = p->raw.data + p->first_break - 1;
                p->next_offset = brk;
                p->line = p->rec_line + (*b == '\n');
                reset_record(p);
                return PMTA_FEED_REREAD;
        }
        /* One physical line longer than the cap: skip to its end. Its quotes
         * end with it: an open quote must not carry the skip over the good
         * records of the lines after it. */
        p->mode = MODE_SKIP;
        p->skip_start = p->rec_start;
        p->skip_line = p->rec_line;
        return 0;
}

static const unsigned char *find_term(const unsigned char *s, size_t n)
{
        const unsigned char *lf = memchr(s, '\n', n);
        const unsigned char *cr = memchr(s, '\r', lf ? (size_t)(lf - s) : n);
        return cr ? cr : lf;
}

/* Skip the rest of an over-long line. Returns bytes consumed; sets *ended
 * when its terminator was found (it is consumed). */
static size_t skip_scan(struct pmta_parser *p, const unsigned char *s, size_t n, bool *ended)
{
        const unsigned char *t = find_term(s, n);
        *ended = t != NULL;
        if (t && *t == '\n')
                p->line++;
        return t ? (size_t)(t - s) + 1 : n;
}

/* Is this line (no terminator), read on its own, a whole record of the
 * file: a known record type and a comma, then as many cells as the header,
 * every quote closed? Quotes follow libcsv's lenient rules. */
static bool line_is_record(const struct pmta_parser *p, const unsigned char *s, size_t n)
{
        if (p->header.generation == 0)
                return false;
        const unsigned char *comma = memchr(s, ',', n);
        if (!comma || !known_type(p, s, (size_t)(comma - s)))
                return false;
        enum { START, UNQUOTED, QUOTED, QUOTE_IN_QUOTED } st = START;
        size_t cells = 1;
        for (size_t i = (size_t)(comma - s); i < n; i++) {
                unsigned char c = s[i];
                switch (st) {
                case START:
                case UNQUOTED:
                        if (c == ',')
                                cells++, st = START;
                        else
                                st = c == '"' && st == START ? QUOTED : UNQUOTED;
                        break;
                case QUOTED:
                        if (c == '"')
                                st = QUOTE_IN_QUOTED;
                        break;
                case QUOTE_IN_QUOTED:
                        if (c == ',')
                                cells++, st = START;
                        else
                                st = QUOTED; /* "" or lenient junk after a quote */
                        break;
                }
                if (cells > p->header.ncols)
                        return false;
        }
        return st != QUOTED && cells == p->header.ncols;
}

/* The end of a skipped line: reject it, unless it is only the rest of a line
 * a resume offset fell inside and that rest is short (a partial line the
 * writer was in the middle of, not an over-long record). */
static int skip_done(struct pmta_parser *p)
{
        if (!p->skip_resumed || p->next_offset - p->skip_start > p->record_max)
                reject(p, PMTA_REJECT_TOO_LONG, p->skip_start, p->next_offset, p->skip_line,
                       p->raw.data, p->raw.len, p->nspans);
        p->skip_resumed = false;
        p->mode = MODE_NORMAL;
        if (libcsv_restart(p) < 0)
                return -1;
        reset_record(p);
        return 0;
}

int pmta_parser_feed(struct pmta_parser *p, const void *data, size_t len)
{
        const unsigned char *s = data;
        size_t i = 0;
        while (i < len) {
                if (p->probe) {
                        /* Offsets saved between records follow a terminator;
                         * any other byte means the resume offset is inside a
                         * line (saved in the middle of a long skip): skip the
                         * rest of it. */
                        p->probe = false;
                        bool inside = !is_term(s[i]);
                        i++;
                        p->next_offset++;
                        reset_record(p);
                        if (inside) {
                                p->mode = MODE_SKIP;
                                p->skip_start = p->next_offset;
                                p->skip_line = 0;
                                p->skip_resumed = true;
                        }
                        continue;
                }
                if (p->mode == MODE_SKIP) {
                        bool ended;
                        size_t k = skip_scan(p, s + i, len - i, &ended);
                        i += k;
                        p->next_offset += k;
                        if (ended && skip_done(p) < 0)
                                return -1;
                        continue;
                }

                /* Between records, line breaks are noise (blank lines, the LF
                 * of a CRLF that arrived in a later chunk). */
                if (p->csv.pstate == LIBCSV_ROW_NOT_BEGUN && is_term(s[i])) {
                        p->line += s[i] == '\n';
                        i++;
                        p->next_offset++;
                        p->rec_start = p->next_offset;
                        p->rec_line = p->line;
                        continue;
                }

                const unsigned char *t = find_term(s + i, len - i);
                size_t seg = t ? (size_t)(t - (s + i)) + 1 : len - i;

                if (p->raw.len + seg > p->record_max) {
                        int r = overflow(p, PMTA_REJECT_TOO_LONG);
                        if (r != 0)
                                return r;
                        continue; /* now in skip mode */
                }
                if (buf_append(&p->raw, s + i, seg) < 0)
                        return -1; /* nothing of the segment taken */
                if (t && p->first_break == 0 && p->raw.len > 0)
                        p->first_break = p->raw.len;
                size_t took = csv_parse(&p->csv, s + i, seg, on_field, on_row, p);
                if (took != seg || p->oom)
                        return oom_in_record(p);
                i += seg;
                p->next_offset += seg;
                if (t && *t == '\n')
                        p->line++;
                if (t) {
                        size_t ls = p->line_start;
                        p->line_start = p->raw.len;
                        if (ls > 0 && line_is_record(p, (const unsigned char *)p->raw.data + ls,
                                                     p->raw.len - 1 - ls)) {
                                /* ls > 0: a quote carried the record over a line
                                 * break, so first_break is set */
                                int r = overflow(p, PMTA_REJECT_SWALLOWED_RECORDS);
                                if (r != 0)
                                        return r;
                                continue;
                        }
                }
                if (!p->row_done) {
                        if (t && ++p->breaks > PMTA_RECORD_BREAKS_MAX) {
                                int r = overflow(p, PMTA_REJECT_RUNAWAY_QUOTE);
                                if (r != 0)
                                        return r;
                        }
                        continue;
                }
                /* The row ended on this segment's last byte. The LF of a CRLF
                 * is left to the between-records path, so a record's end does
                 * not depend on whether the LF came in the same chunk. */
                int fr = finish_row(p, p->next_offset);
                if (fr < 0)
                        return oom_in_record(p);
                if (fr > 0)
                        return rewind_record(p) < 0 ? -1 : PMTA_FEED_REREAD;
                bool seeking = p->mode == MODE_SEEK_HEADER;
                reset_record(p);
                if (seeking) {
                        int r = seek_done(p);
                        if (r != 0)
                                return r;
                }
        }
        return PMTA_FEED_OK;
}

int pmta_parser_finish(struct pmta_parser *p)
{
        p->probe = false; /* nothing after the resume offset: nothing to tell */
        if (p->mode == MODE_SKIP)
                return skip_done(p) < 0 ? -1 : PMTA_FEED_OK;
        if (p->csv.pstate == LIBCSV_ROW_NOT_BEGUN)
                return PMTA_FEED_OK;
        if (p->csv.pstate == LIBCSV_FIELD_BEGUN && p->csv.quoted) {
                /* A quote opened and never closed. Reject the record's first
                 * line and parse again after it: the lines the quote
                 * swallowed may be good records. */
                uint64_t end = p->first_break ? p->rec_start + p->first_break : p->next_offset;
                size_t shown = p->first_break ? p->first_break - 1 : p->raw.len;
                reject(p, PMTA_REJECT_UNTERMINATED_QUOTE, p->rec_start, end, p->rec_line,
                       p->raw.data, shown, p->nspans);
                if (libcsv_restart(p) < 0)
                        return -1;
                if (!p->first_break) {
                        reset_record(p);
                        return PMTA_FEED_OK;
                }
                p->line = p->rec_line + (p->raw.data[p->first_break - 1] == '\n');
                p->next_offset = end;
                reset_record(p);
                return PMTA_FEED_REREAD;
        }
        /* A last record without terminator: complete as it stands. */
        if (csv_fini(&p->csv, on_field, on_row, p) != 0 || p->oom)
                return oom_in_record(p);
        if (p->row_done) {
                p->row_term = -1;
                int fr = finish_row(p, p->next_offset);
                if (fr < 0)
                        return oom_in_record(p);
                p->mode = MODE_NORMAL;
                if (fr > 0)
                        return rewind_record(p) < 0 ? -1 : PMTA_FEED_REREAD;
        }
        if (libcsv_restart(p) < 0)
                return -1;
        reset_record(p);
        return PMTA_FEED_OK;
}

/* Parse a one-line CSV header given as text (configured columns, or a
 * header saved with the offsets) and adopt it. */
static int header_from_text(struct pmta_parser *p, const char *text, size_t len)
{
        for (size_t i = 0; i < len; i++) {
                if (is_term((unsigned char)text[i])) {
                        errno = EINVAL;
                        return -1;
                }
        }
        if (csv_parse(&p->csv, text, len, on_field, on_row, p) != len ||
            csv_fini(&p->csv, on_field, on_row, p) != 0 || p->oom) {
                errno = ENOMEM;
                return -1;
        }
        int r = -1;
        if (p->nspans == 0 || p->too_many_cells)
                errno = EINVAL;
        else
                r = adopt_header(p, text, len);
        p->stats.headers = 0; /* only headers read from files count */
        if (libcsv_restart(p) < 0)
                return -1;
        reset_record(p);
        return r;
}

struct pmta_parser *pmta_parser_new(const struct pmta_parser_opts *o)
{
        struct pmta_parser *p = calloc(1, sizeof *p);
        if (!p)
                return NULL;
        p->record_max = o->record_max ? o->record_max : PMTA_RECORD_MAX_DEFAULT;
        p->on_record = o->on_record;
        p->on_reject = o->on_reject;
        p->ctx = o->ctx;
        buf_init(&p->raw, p->record_max);
        buf_init(&p->cellbuf, p->record_max);
        buf_init(&p->header_raw, p->record_max);
        buf_init(&p->header_cells, p->record_max);
        p->line = 1;
        p->rec_line = 1;
        p->row_term = -1;

        const char *const *types = o->types;
        size_t ntypes = o->ntypes;
        if (!types || ntypes == 0) {
                types = default_types;
                ntypes = sizeof default_types / sizeof default_types[0];
        }
        p->types = calloc(ntypes, sizeof *p->types);
        p->spans = calloc(PMTA_CELLS_MAX, sizeof *p->spans);
        p->cells = calloc(PMTA_CELLS_MAX, sizeof *p->cells);
        if (!p->types || !p->spans || !p->cells || libcsv_start(p) < 0)
                goto fail;
        for (size_t i = 0; i < ntypes; i++) {
                p->types[i] = strdup(types[i]);
                if (!p->types[i])
                        goto fail;
                p->ntypes++;
        }
        if (o->columns && header_from_text(p, o->columns, strlen(o->columns)) < 0) {
                int e = errno;
                pmta_parser_free(p);
                errno = e;
                return NULL;
        }
        return p;
fail:
        pmta_parser_free(p);
        errno = ENOMEM;
        return NULL;
}

void pmta_parser_free(struct pmta_parser *p)
{
        if (!p)
                return;
        csv_free(&p->csv);
        for (size_t i = 0; i < p->ntypes; i++)
                free(p->types[i]);
        free(p->types);
        free(p->spans);
        free(p->cells);
        free(p->names);
        buf_free(&p->raw);
        buf_free(&p->cellbuf);
        buf_free(&p->header_raw);
        buf_free(&p->header_cells);
        free(p);
}

int pmta_parser_resume(struct pmta_parser *p, uint64_t offset, const char *header_raw,
                       size_t header_len)
{
        if (offset == 0)
                return 0;
        p->resume_at = offset;
        if (header_raw && header_len > 0) {
                if (header_from_text(p, header_raw, header_len) < 0)
                        return -1;
                p->next_offset = offset - 1;
                p->probe = true;
                p->lines_unknown = true;
                reset_record(p);
                return 0;
        }
        p->mode = MODE_SEEK_HEADER;
        return 0;
}

uint64_t pmta_parser_next_offset(const struct pmta_parser *p)
{
        return p->next_offset;
}

uint64_t pmta_parser_settled_offset(const struct pmta_parser *p)
{
        /* The bytes of a line being skipped are settled as they go: its
         * reject is certain, and a restart resumes past what was skipped
         * (the probe then knows to skip the rest). */
        if (p->probe)
                return p->next_offset + 1;
        return p->raw.len && p->mode != MODE_SKIP ? p->rec_start : p->next_offset;
}

size_t pmta_parser_pending(const struct pmta_parser *p)
{
        return (size_t)(p->next_offset - pmta_parser_settled_offset(p));
}

long pmta_header_column(const struct pmta_header *h, const char *name)
{
        size_t n = strlen(name);
        for (size_t i = 0; i < h->ncols; i++) {
                if (h->names[i].len == n && memcmp(h->names[i].ptr, name, n) == 0)
                        return (long)i;
        }
        return -1;
}

const struct pmta_header *pmta_parser_header(const struct pmta_parser *p)
{
        return p->header.generation ? &p->header : NULL;
}

const struct pmta_stats *pmta_parser_stats(const struct pmta_parser *p)
{
        return &p->stats;
}

void pmta_stats_merge(struct pmta_stats *sum, const struct pmta_stats *st)
{
        sum->headers += st->headers;
        sum->records += st->records;
        sum->filtered += st->filtered;
        sum->rejected += st->rejected;
        for (int i = 0; i < PMTA_REJECT_REASONS; i++)
                sum->rejected_by_reason[i] += st->rejected_by_reason[i];
        sum->other_types += st->other_types;
        for (size_t i = 0; i < st->ntypes; i++) {
                size_t k = 0;
                while (k < sum->ntypes && strcmp(sum->types[k].type, st->types[i].type) != 0)
                        k++;
                if (k == sum->ntypes) {
                        if (k == PMTA_TYPE_STATS_MAX) {
                                sum->other_types += st->types[i].count;
                                continue;
                        }
                        sum->types[k] = st->types[i];
                        sum->types[k].count = 0;
                        sum->ntypes++;
                }
                sum->types[k].count += st->types[i].count;
        }
}

const char *pmta_reject_reason_str(enum pmta_reject_reason r)
{
        switch (r) {
        case PMTA_REJECT_NO_HEADER:
                return "no header line before this record";
        case PMTA_REJECT_CELL_COUNT:
                return "cell count differs from the header";
        case PMTA_REJECT_TOO_LONG:
                return "record longer than record_max";
        case PMTA_REJECT_UNTERMINATED_QUOTE:
                return "quoted field not closed at end of file";
        case PMTA_REJECT_RUNAWAY_QUOTE:
                return "quoted field spans too many lines";
        case PMTA_REJECT_INCOMPLETE:
                return "file ends in the middle of this record";
        case PMTA_REJECT_SWALLOWED_RECORDS:
                return "quoted field swallows whole records";
        }
        return "unknown";
}

const char *pmta_type_code(const char *name)
{
        static const char *const map[][2] = {
            {"b", "b"}, {"bounce", "b"},        {"rb", "rb"}, {"remote-bounce", "rb"},
            {"f", "f"}, {"feedback-loop", "f"}, {"d", "d"},   {"delivery", "d"},
            {"t", "t"}, {"transient", "t"},     {"tq", "tq"}, {"transient-queue", "tq"},
            {"r", "r"}, {"receipt", "r"},       {"rs", "rs"}, {"remote-status", "rs"},
        };
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
                if (strcmp(name, map[i][0]) == 0)
                        return map[i][1];
        }
        return NULL;
}
