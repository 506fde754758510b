/* The configuration file (INI, see the design's interface.md) turned into one
 * struct that owns every string it holds.
 *
 * Loading collects every problem it finds instead of stopping at the first, so
 * that `check-config` can show them all at once; each message names the file
 * and the line. Header values are secrets: nothing in this module prints them,
 * and config_describe masks them. */
#ifndef PMTATAIL_CONFIG_H
#define PMTATAIL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "log.h"

#define CONFIG_MAX_SOURCES      64
#define CONFIG_MAX_HEADERS      32
#define CONFIG_MAX_RECORD_TYPES 8  /* b rb f d t tq r rs */
#define CONFIG_MAX_ERRORS       32 /* messages kept; the rest are only counted */
#define CONFIG_ERROR_LEN        400

#define CONFIG_DEFAULT_PATH "/etc/pmtatail/pmtatail.conf"
/* PowerMTA's own configuration, read by check-config ([pmta] config). */
#define CONFIG_DEFAULT_PMTA_CONFIG "/etc/pmta/config"

enum config_start_at { CONFIG_START_BEGINNING, CONFIG_START_END };

enum config_output_kind {
        CONFIG_OUTPUT_NONE, /* neither url nor file: the caller decides if that is fine */
        CONFIG_OUTPUT_URL,
        CONFIG_OUTPUT_FILE,
};

/* AUTO decides by the URL (config_output_single); the others force it. */
enum config_format { CONFIG_FORMAT_BATCH, CONFIG_FORMAT_SINGLE, CONFIG_FORMAT_AUTO };

/* What a URL names, for format = auto and the output's defaults. */
enum config_endpoint {
        CONFIG_ENDPOINT_OTHER,     /* anything else: arrays */
        CONFIG_ENDPOINT_WEBHOOK,   /* /system/bounce_webhook (type=pmta...): one object each */
        CONFIG_ENDPOINT_FLUENTD,   /* /system/bounce_webhook?type=fluentd: arrays <= 1000 */
        CONFIG_ENDPOINT_BATCH_API, /* /api/v1/process_pmta_log_file: arrays, 100 req/min */
};

/* Oempro's type=fluentd refuses (413) more records than this per request. */
#define CONFIG_FLUENTD_MAX_EVENTS 1000

/* Which classified bounces [classify] forward lets through. */
enum config_forward {
        CONFIG_FORWARD_ALL,
        CONFIG_FORWARD_HARD,
        CONFIG_FORWARD_HARD_SOFT,
};

struct config_source {
        char *name;        /* from [source NAME]: letters, digits, '.', '_', '-' */
        char *path;        /* always set after a successful load */
        char *archive_dir; /* NULL when not set */
        /* Short PowerMTA record codes ("b", "rb", ...), long names already
         * mapped, no duplicates, in the order given. */
        char records[CONFIG_MAX_RECORD_TYPES][3];
        size_t n_records;
        enum config_start_at start_at;
        char *columns; /* CSV header line for headerless files, or NULL */
        size_t record_max;
        int line; /* line of the [source] heading, for later messages */
};

struct config_header {
        char *name;
        char *value;    /* secret: never print or log it */
        bool from_file; /* read from a header_file rather than the config */
        char *file;     /* that header_file's path, or NULL */
};

struct config_output {
        enum config_output_kind kind;
        char *url;  /* kind URL, else NULL */
        char *file; /* kind FILE, else NULL; "-" means stdout */
        enum config_format format;
        struct config_header headers[CONFIG_MAX_HEADERS]; /* in file order */
        size_t n_headers;
        unsigned batch_max_records;
        size_t batch_max_bytes;
        unsigned linger_ms;
        unsigned timeout_s;
        unsigned retry_max_s;
        bool gzip;
        bool tls_verify;
        char *ca_file; /* NULL: the system store */
        bool include_message;
        unsigned concurrency; /* the most in flight; resolved: 64 one event per request, else 16 */
        bool adaptive;        /* the window adapts below concurrency (else pinned at it) */
        unsigned max_rate;    /* events per second across requests, 0: no limit */
        /* resolved: 100 for the batch API unless set, 0: no limit */
        unsigned max_requests_per_minute;
        char *host; /* the host name put in events; gethostname() by default */
};

struct config {
        struct config_source sources[CONFIG_MAX_SOURCES];
        size_t n_sources;
        struct config_output output;
        char *state_dir;
        char *classify_patterns; /* NULL when not set */
        enum config_forward forward;
        enum log_level log_level;
        char *metrics_textfile; /* NULL when not set */
        unsigned metrics_interval_s;
        char *pmta_config; /* [pmta] config; the default after a load */
};

/* Problems found by config_load, each a full "FILE:LINE: what" message. */
struct config_error {
        size_t count;   /* messages in msg[] */
        size_t dropped; /* further problems found but not kept */
        char msg[CONFIG_MAX_ERRORS][CONFIG_ERROR_LEN];
};

/* Load `path` into `out` (which needs no initialisation). When the file does
 * not exist and `must_exist` is false, the defaults apply (no sources, no
 * output). Returns 0, or -1 with every problem found in `err` (may be NULL);
 * on -1 `out` holds nothing to free, though config_free is still safe.
 * A successful load must be torn down with config_free. */
int config_load(const char *path, bool must_exist, struct config *out, struct config_error *err);

/* The record type codes of every configured source together (no
 * duplicates, at most `max`) into codes, and the largest record_max into
 * *record_max (0 without sources). Returns the count; 0 means "the
 * defaults". The strings belong to c. */
size_t config_record_types(const struct config *c, const char **codes, size_t max,
                           size_t *record_max);

/* As config_load, but on failure `out` keeps what could be read (keys with
 * bad values stay at their defaults, and a source may lack its path), so
 * check-config can go on to check the paths it names. `out` must be freed
 * with config_free in both cases. */
int config_load_partial(const char *path, bool must_exist, struct config *out,
                        struct config_error *err);

/* Release every string of `c` and leave it empty. Safe on an empty struct. */
void config_free(struct config *c);

/* Print the resolved configuration for humans, INI-like, with every header
 * value and the URL's user:password@ part masked. */
void config_describe(const struct config *c, FILE *out);

/* Print every message of `err`, one a line, then how many were dropped. */
void config_error_print(const struct config_error *err, FILE *out);

/* Whether `src` forwards records of type `code` (a short code such as "rb",
 * as in a record's type field). */
bool config_source_wants(const struct config_source *src, const char *code);

/* What `url` names (NULL: OTHER): Oempro's webhook by its path
 * (.../system/bounce_webhook, with type=fluentd in the query or not), its
 * batch API (.../api/v1/process_pmta_log_file), or anything else. */
enum config_endpoint config_url_endpoint(const char *url);

/* The header files the output reads its secrets from, each once: call
 * with *i = 0 and again until it returns NULL. */
const char *config_next_header_file(const struct config_output *o, size_t *i);

/* Whether the output sends one event per request: format single, or auto
 * towards Oempro's webhook other than type=fluentd. */
bool config_output_single(const struct config_output *o);

/* The most events one request may carry (0: batch_max_records decides):
 * 1 when single, 1000 towards type=fluentd. */
unsigned config_output_max_events(const struct config_output *o);

#endif
