/* Streaming parser for PowerMTA accounting files.
 *
 * Bytes go in, in chunks of any size; complete records come out through a
 * callback, each with the byte offset just past its end, so a caller can say
 * "everything before offset X is done". The parser does no I/O, reads no
 * clock and keeps no global state: it is a pure function of the bytes it is
 * given, which is what makes it fuzzable and chunk-testable.
 *
 * The caller always feeds the bytes that start at pmta_parser_next_offset().
 * Usually that is simply where the previous chunk ended, but after a damaged
 * record the parser may ask to go back (to resynchronise on the line after a
 * runaway quote, so that the good records it swallowed are not lost) or to
 * jump ahead (resuming from a committed offset once the header is known).
 * Feeding from a file with pread at next_offset handles both for free.
 *
 * Memory is bounded: a record longer than `record_max` bytes is rejected and
 * the rest of its line skipped without being buffered, whatever its size.
 * The skipped bytes count as settled while the skip goes on, so an offset
 * saved in the middle of a huge line is resumed from there: the parser reads
 * the byte before a resume offset to tell that case from a record boundary.
 *
 * A bad line costs only itself: a quote still open when its line is skipped
 * ends with the line; a quoted field one of whose inner lines is on its own a
 * whole record of the file (a known type, then the header's cell count) is
 * taken for a stray quote: the record's first line is rejected and the lines
 * after it are parsed again, so the records it swallowed are delivered. */
#ifndef PMTATAIL_PMTA_CSV_H
#define PMTATAIL_PMTA_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PMTA_RECORD_MAX_DEFAULT (1024 * 1024)
/* A row with more cells than this is rejected: the cell table stays small
 * whatever a hostile file holds. PowerMTA rows have a few dozen columns. */
#define PMTA_CELLS_MAX 1024
/* Line breaks allowed inside the quoted fields of one record. Past this the
 * quote is taken for a runaway (a stray quote that would swallow the rest of
 * the file): the record's first line is rejected and parsing resumes after
 * it. The limit bounds the work of that recovery to this many lines per bad
 * line, whatever the file holds. A real dsnDiag spans a handful. */
#define PMTA_RECORD_BREAKS_MAX 100
/* Distinct record types counted one by one; more go to `other_types`. */
#define PMTA_TYPE_STATS_MAX 16

/* A cell or name: bytes exactly as in the file after CSV unquoting. Not
 * NUL-terminated and may contain any byte, NUL included. */
struct pmta_field {
        const char *ptr;
        size_t len;
};

/* The column names in force. Owned by the parser; valid until the next call
 * into it (a second header mid-stream replaces it). */
struct pmta_header {
        size_t ncols;
        const struct pmta_field *names;
        const char *raw; /* the header line as in the file, no terminator */
        size_t raw_len;
        /* Changes whenever a new header is adopted, so encoders can cache
         * per-header work. Never 0 once a header exists. */
        uint64_t generation;
};

/* One complete data record. Everything it points to is owned by the parser
 * and valid only during the callback. */
struct pmta_record {
        const struct pmta_header *header;
        const struct pmta_field *cells; /* header->ncols of them */
        size_t ncells;
        const char *raw; /* the record text without its terminator */
        size_t raw_len;
        uint64_t start; /* offset of its first byte */
        uint64_t end;   /* offset just past its terminator (the CR of a CRLF: the LF
                         * is skipped as the next record's leading noise) */
        uint64_t line;  /* 1-based line number of its first byte */
};

enum pmta_reject_reason {
        PMTA_REJECT_NO_HEADER,          /* data before any header, no columns configured */
        PMTA_REJECT_CELL_COUNT,         /* more or fewer cells than the header */
        PMTA_REJECT_TOO_LONG,           /* longer than record_max */
        PMTA_REJECT_UNTERMINATED_QUOTE, /* a quoted field still open at end of file */
        PMTA_REJECT_RUNAWAY_QUOTE,      /* a quoted field spanning too many lines */
        PMTA_REJECT_INCOMPLETE,         /* the file ended in the middle of a record */
        PMTA_REJECT_SWALLOWED_RECORDS,  /* a quoted field holding lines that are records */
};
#define PMTA_REJECT_REASONS 7

/* A record the parser could not turn into events. raw holds at most the
 * first record_max bytes (the whole line that was skipped, when the parser
 * resynchronised on the next line). */
struct pmta_reject {
        enum pmta_reject_reason reason;
        uint64_t start, end, line;
        const char *raw;
        size_t raw_len;
        size_t ncells;   /* for PMTA_REJECT_CELL_COUNT */
        size_t expected; /* header columns, for PMTA_REJECT_CELL_COUNT */
};

struct pmta_type_count {
        char type[8];
        bool forwarded;
        uint64_t count;
};

struct pmta_stats {
        uint64_t headers;
        uint64_t records;  /* handed to on_record */
        uint64_t filtered; /* well-formed rows of a type not forwarded */
        uint64_t rejected;
        uint64_t rejected_by_reason[PMTA_REJECT_REASONS];
        uint64_t other_types; /* rows whose type did not fit in types[] */
        size_t ntypes;
        struct pmta_type_count types[PMTA_TYPE_STATS_MAX];
};

struct pmta_parser_opts {
        /* Longest record accepted, terminator included; 0 means the default. */
        size_t record_max;
        /* Record type codes to forward ("b", "rb", "f", ...); NULL or 0 types
         * means b, rb, f. Long names are the caller's job (pmta_type_code). */
        const char *const *types;
        size_t ntypes;
        /* Column names for files without a header line, as a CSV line
         * ("type,timeLogged,rcpt"); NULL when every file must bring its own. */
        const char *columns;
        void (*on_record)(void *ctx, const struct pmta_record *rec);
        void (*on_reject)(void *ctx, const struct pmta_reject *rej);
        void *ctx;
};

struct pmta_parser;

/* Create a parser at offset 0. The options (and the strings they point to)
 * are copied. Returns NULL with errno set on failure (EINVAL for a bad
 * columns line). Must be freed with pmta_parser_free. */
struct pmta_parser *pmta_parser_new(const struct pmta_parser_opts *opts);
void pmta_parser_free(struct pmta_parser *p);

/* Continue a file from a committed offset: records ending at or before
 * `offset` are not emitted again. With header_raw (the header line saved
 * earlier, without terminator) the parser goes straight to `offset`;
 * without it, it first reads the file's first row from offset 0 to learn
 * the header, then jumps. Either way it asks for the byte before `offset`
 * first (next_offset is offset - 1): a line break there is a record
 * boundary; anything else means the offset was saved inside a line being
 * skipped, whose rest is then skipped too (and rejected as too long when it
 * is longer than record_max on its own). Call before the first feed.
 * Returns 0 or -1. */
int pmta_parser_resume(struct pmta_parser *p, uint64_t offset, const char *header_raw,
                       size_t header_len);

/* The file offset of the next byte the parser expects. */
uint64_t pmta_parser_next_offset(const struct pmta_parser *p);

/* Offset up to which every byte has been turned into records, rejects or
 * skipped noise: the start of the pending incomplete record, if any. */
uint64_t pmta_parser_settled_offset(const struct pmta_parser *p);

/* Bytes of an incomplete record held while waiting for its end. */
size_t pmta_parser_pending(const struct pmta_parser *p);

enum pmta_feed_result {
        PMTA_FEED_OK = 0,    /* all bytes taken */
        PMTA_FEED_REREAD = 1 /* stopped early: feed again from next_offset */
};

/* Give the parser `len` bytes that start at pmta_parser_next_offset(p).
 * Calls on_record / on_reject for every record completed. Returns a
 * pmta_feed_result, or -1 with errno ENOMEM. */
int pmta_parser_feed(struct pmta_parser *p, const void *data, size_t len);

/* From on_record: the record could not be taken now (out of memory). The
 * feed (or finish) stops after it and returns PMTA_FEED_REREAD, with
 * pmta_parser_next_offset at the record's start: fed again from there, the
 * parser hands the same record again. A held record is not counted. */
void pmta_parser_hold(struct pmta_parser *p);

/* The file is final (renamed away and read to EOF, or a replay input): a
 * last record without terminator is emitted, a runaway quote rejected.
 * Returns PMTA_FEED_OK when done, PMTA_FEED_REREAD when the parser went back
 * to recover records after a runaway quote (feed from next_offset again,
 * then finish again), or -1 (ENOMEM). */
int pmta_parser_finish(struct pmta_parser *p);

/* Index of the column named `name` in h (the first one so named), or -1. */
long pmta_header_column(const struct pmta_header *h, const char *name);

/* The header in force, or NULL before the first one. */
const struct pmta_header *pmta_parser_header(const struct pmta_parser *p);

const struct pmta_stats *pmta_parser_stats(const struct pmta_parser *p);

/* Add st to sum (totals over several files): counters, and the per-type
 * counts merged by type; types past PMTA_TYPE_STATS_MAX go to other_types. */
void pmta_stats_merge(struct pmta_stats *sum, const struct pmta_stats *st);

const char *pmta_reject_reason_str(enum pmta_reject_reason r);

/* Map a configuration record name to the code the files hold
 * ("feedback-loop" -> "f", "bounce" -> "b", "b" -> "b"). NULL if unknown. */
const char *pmta_type_code(const char *name);

#endif
