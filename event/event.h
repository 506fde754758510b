/* Turning a PowerMTA record into the JSON event of the backend contract.
 *
 * Key order: every non-empty column in header order (the column "type" as
 * "logType"), then "type":"pmta", "@version":"1", "@timestamp", "host",
 * "path", "message" (unless turned off), "bounceClass" (when classified),
 * "tags" (Logstash's: ["pmta"] plus "pmta_sync_bounce" for b,
 * "pmta_async_bounce" for rb, "pmta_fbl" for f) and "eventId".
 *
 * Whatever bytes the file held, the JSON is valid UTF-8: each byte that does
 * not start a complete, valid UTF-8 sequence becomes U+FFFD and control
 * bytes are escaped, so a bounce with a Latin-1 dsnDiag is still delivered
 * with the text around the bad bytes intact.
 *
 * The hot path is a hand-written encoder; event_ref.c builds the same event
 * with jansson and the tests hold the two to byte-for-byte equality. */
#ifndef PMTATAIL_EVENT_H
#define PMTATAIL_EVENT_H

#include "buf.h"
#include "pmta_csv.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EVENT_ID_LEN 32

struct event_meta {
        const char *host; /* this machine's name */
        const char *path; /* the file the record was read from */
        bool include_message;
        int64_t now; /* read time, epoch seconds: @timestamp when timeLogged does not parse */
        /* "hard" or "soft" when the record's bounce was classified, else
         * NULL: sent as "bounceClass" (set per record by the caller) */
        const char *bounce_class;
};

/* Per-header work (the JSON keys, where timeLogged is) is cached here,
 * keyed by the header's generation: use one encoder per parser. */
struct event_encoder;

/* Returns NULL on allocation failure. Free with event_encoder_free. */
struct event_encoder *event_encoder_new(void);
void event_encoder_free(struct event_encoder *e);

/* Append the event for `r` to `out` (no newline). Returns 0, or -1 with errno
 * E2BIG when out's cap would be passed (out is left as it was) or ENOMEM. */
int event_encode(struct event_encoder *e, struct buf *out, const struct pmta_record *r,
                 const struct event_meta *m);

/* Append an event for a record the parser refused, kept as raw text:
 * "message" (always), "parseError" with the reason, and the usual
 * type/@version/@timestamp(read time)/host/path/tags(["pmta"])/eventId. */
int event_encode_reject(struct buf *out, const struct pmta_reject *rej, const struct pmta_header *h,
                        const struct event_meta *m);

/* The stable identifier of a record: 32 lowercase hex digits + NUL.
 * XXH3-128 of the record's bytes, seeded from the header line and the
 * record's start offset, so it is the same on every run, after a rename and
 * in a replay, and differs between records. */
void event_id(const struct pmta_header *h, uint64_t start, const char *raw, size_t raw_len,
              char out[EVENT_ID_LEN + 1]);

/* Parse a PowerMTA time: epoch seconds, or "YYYY-MM-DD HH:MM:SS+hhmm" (also
 * "T" for the space, "+hh:mm", "Z"). Returns 0 and the epoch, or -1. */
int event_parse_time(const char *s, size_t n, int64_t *out);

/* RFC 3339 UTC, "2016-05-28T23:10:51Z"; out holds at least 32 bytes. */
void event_format_time(int64_t t, char *out, size_t size);

/* Write s as a JSON string literal (quotes included) with invalid UTF-8
 * replaced and control bytes escaped, exactly as jansson's compact dump
 * would write the sanitised string. dst must have room for 6*n+2 bytes.
 * Returns the end of what was written. */
char *event_json_string(char *dst, const char *s, size_t n);

/* Replace invalid UTF-8 as event_json_string does, without escaping. dst
 * must have room for 3*n bytes. Returns the length written. */
size_t event_utf8_sanitize(char *dst, const char *s, size_t n);

/* The reference encoder: the same event built with jansson (new reference,
 * or NULL on failure). The tests compare its compact dump with
 * event_encode's output byte for byte. */
json_t *event_to_json(const struct pmta_record *r, const struct event_meta *m);

/* The JSON keys for the columns of h: "type" -> "logType", invalid UTF-8
 * and NUL bytes replaced by U+FFFD, an empty name -> "columnN", and a name that collides with the
 * event's own keys or an earlier column renamed "NAME_N" (N the 1-based
 * column). Both encoders use it. Returns a malloc'd array of h->ncols
 * malloc'd strings, or NULL; free with event_column_keys_free. */
char **event_column_keys(const struct pmta_header *h);
void event_column_keys_free(char **keys, size_t n);

#endif
