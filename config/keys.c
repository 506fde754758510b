/* The keys: which section takes which, and how each value is checked and
 * applied to struct config. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "config_impl.h"

#define HEADER_FILE_MAX (64 * 1024)

const struct key_def cfg_keys[K_COUNT] = {
    [K_SRC_PATH] = {SEC_SOURCE, "path", 0},
    [K_SRC_ARCHIVE_DIR] = {SEC_SOURCE, "archive_dir", 0},
    [K_SRC_RECORDS] = {SEC_SOURCE, "records", KF_CONT},
    [K_SRC_START_AT] = {SEC_SOURCE, "start_at", 0},
    [K_SRC_COLUMNS] = {SEC_SOURCE, "columns", KF_CONT},
    [K_SRC_RECORD_MAX] = {SEC_SOURCE, "record_max", 0},
    [K_OUT_URL] = {SEC_OUTPUT, "url", 0},
    [K_OUT_FILE] = {SEC_OUTPUT, "file", 0},
    [K_OUT_FORMAT] = {SEC_OUTPUT, "format", 0},
    [K_OUT_HEADER] = {SEC_OUTPUT, "header", KF_REPEAT},
    [K_OUT_HEADER_FILE] = {SEC_OUTPUT, "header_file", KF_REPEAT},
    [K_OUT_BATCH_MAX_RECORDS] = {SEC_OUTPUT, "batch_max_records", 0},
    [K_OUT_BATCH_MAX_BYTES] = {SEC_OUTPUT, "batch_max_bytes", 0},
    [K_OUT_LINGER_MS] = {SEC_OUTPUT, "linger_ms", 0},
    [K_OUT_TIMEOUT_S] = {SEC_OUTPUT, "timeout_s", 0},
    [K_OUT_RETRY_MAX_S] = {SEC_OUTPUT, "retry_max_s", 0},
    [K_OUT_GZIP] = {SEC_OUTPUT, "gzip", 0},
    [K_OUT_TLS_VERIFY] = {SEC_OUTPUT, "tls_verify", 0},
    [K_OUT_CA_FILE] = {SEC_OUTPUT, "ca_file", 0},
    [K_OUT_INCLUDE_MESSAGE] = {SEC_OUTPUT, "include_message", 0},
    [K_OUT_CONCURRENCY] = {SEC_OUTPUT, "concurrency", 0},
    [K_OUT_ADAPTIVE] = {SEC_OUTPUT, "adaptive", 0},
    [K_OUT_HOST] = {SEC_OUTPUT, "host", 0},
    [K_OUT_MAX_RATE] = {SEC_OUTPUT, "max_rate", 0},
    [K_OUT_MAX_REQUESTS_PER_MINUTE] = {SEC_OUTPUT, "max_requests_per_minute", 0},
    [K_STATE_DIR] = {SEC_STATE, "dir", 0},
    [K_CLASSIFY_PATTERNS] = {SEC_CLASSIFY, "patterns", 0},
    [K_CLASSIFY_FORWARD] = {SEC_CLASSIFY, "forward", 0},
    [K_LOG_LEVEL] = {SEC_LOG, "level", 0},
    [K_METRICS_TEXTFILE] = {SEC_METRICS, "textfile", 0},
    [K_METRICS_INTERVAL_S] = {SEC_METRICS, "interval_s", 0},
    [K_PMTA_CONFIG] = {SEC_PMTA, "config", 0},
};

struct record_type {
        const char *code;
        const char *name;
};

static const struct record_type record_types[CONFIG_MAX_RECORD_TYPES] = {
    {"b", "bounce"},    {"rb", "remote-bounce"},   {"f", "feedback-loop"}, {"d", "delivery"},
    {"t", "transient"}, {"tq", "transient-queue"}, {"r", "receipt"},       {"rs", "remote-status"},
};

/* --- value parsers ------------------------------------------------------ */

static int parse_uint(struct parse *p, const char *key, const char *v, unsigned long min,
                      unsigned long max, unsigned long *out)
{
        char q[SHOW_LEN];
        if (!isdigit((unsigned char)v[0])) {
                cfg_problem(p, p->lineno, "%s: %s is not a whole number", key,
                            cfg_show(q, sizeof q, v));
                return -1;
        }
        errno = 0;
        char *end;
        unsigned long long n = strtoull(v, &end, 10);
        if (*end != '\0') {
                cfg_problem(p, p->lineno, "%s: %s is not a whole number", key,
                            cfg_show(q, sizeof q, v));
                return -1;
        }
        if (errno == ERANGE || n < min || n > max) {
                cfg_problem(p, p->lineno, "%s: %s is out of range (%lu to %lu)", key,
                            cfg_show(q, sizeof q, v), min, max);
                return -1;
        }
        *out = (unsigned long)n;
        return 0;
}

static int parse_unsigned(struct parse *p, const char *key, const char *v, unsigned min,
                          unsigned max, unsigned *out)
{
        unsigned long n;
        if (parse_uint(p, key, v, min, max, &n) < 0)
                return -1;
        *out = (unsigned)n;
        return 0;
}

/* Bytes, optionally with k (KiB) or M (MiB). */
static int parse_size(struct parse *p, const char *key, const char *v, size_t min, size_t max,
                      size_t *out)
{
        char q[SHOW_LEN];
        char *end;
        if (!isdigit((unsigned char)v[0]))
                goto bad;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        unsigned long long mult = 1;
        if (*end == 'k' || *end == 'K') {
                mult = KIB;
                end++;
        } else if (*end == 'M') {
                mult = MIB;
                end++;
        }
        if (*end != '\0')
                goto bad;
        if (errno == ERANGE || n > ULLONG_MAX / mult || n * mult < min || n * mult > max) {
                cfg_problem(p, p->lineno, "%s: %s is out of range (%zu to %zu bytes)", key,
                            cfg_show(q, sizeof q, v), min, max);
                return -1;
        }
        *out = (size_t)(n * mult);
        return 0;
bad:
        cfg_problem(p, p->lineno, "%s: %s is not a size (bytes, or a number followed by k or M)",
                    key, cfg_show(q, sizeof q, v));
        return -1;
}

static int parse_bool(struct parse *p, const char *key, const char *v, bool *out)
{
        static const char *const yes[] = {"yes", "true", "on", "1"};
        static const char *const no[] = {"no", "false", "off", "0"};
        for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
                if (strcasecmp(v, yes[i]) == 0) {
                        *out = true;
                        return 0;
                }
                if (strcasecmp(v, no[i]) == 0) {
                        *out = false;
                        return 0;
                }
        }
        char q[SHOW_LEN];
        cfg_problem(p, p->lineno, "%s: %s is not yes or no", key, cfg_show(q, sizeof q, v));
        return -1;
}

/* Replace *field with a copy of v; an empty value means "not set". */
static void set_optional(struct parse *p, char **field, const char *v)
{
        free(*field);
        *field = NULL;
        if (*v)
                *field = cfg_dup_or_report(p, v);
}

static void set_required(struct parse *p, const char *key, char **field, const char *v)
{
        if (!*v) {
                cfg_problem(p, p->lineno, "%s: empty value", key);
                return;
        }
        free(*field);
        *field = cfg_dup_or_report(p, v);
}

static bool is_list_sep(char c)
{
        return c == ',' || isspace((unsigned char)c);
}

/* Calls fn on each item of a comma- or space-separated list. */
static int for_each_item(struct parse *p, const char *key, const char *v,
                         int (*fn)(struct parse *p, const char *item, void *ctx), void *ctx)
{
        int rc = 0;
        while (*v) {
                while (*v && is_list_sep(*v))
                        v++;
                size_t n = 0;
                while (v[n] && !is_list_sep(v[n]))
                        n++;
                if (n == 0)
                        break;
                char item[32];
                if (n >= sizeof item) {
                        cfg_problem(p, p->lineno, "%s: %.*s... is not a known name", key, 16, v);
                        rc = -1;
                } else {
                        memcpy(item, v, n);
                        item[n] = '\0';
                        if (fn(p, item, ctx) < 0)
                                rc = -1;
                }
                v += n;
        }
        return rc;
}

static int add_record_type(struct parse *p, const char *item, void *ctx)
{
        struct config_source *s = ctx;
        const struct record_type *rt = NULL;
        for (size_t i = 0; i < CONFIG_MAX_RECORD_TYPES; i++) {
                if (strcasecmp(item, record_types[i].code) == 0 ||
                    strcasecmp(item, record_types[i].name) == 0)
                        rt = &record_types[i];
        }
        if (!rt) {
                char q[SHOW_LEN];
                cfg_problem(p, p->lineno,
                            "records: %s is not a record type (b, rb, f, d, t, tq, r, rs or "
                            "bounce, remote-bounce, feedback-loop, delivery, transient, "
                            "transient-queue, receipt, remote-status)",
                            cfg_show(q, sizeof q, item));
                return -1;
        }
        for (size_t i = 0; i < s->n_records; i++) {
                if (strcmp(s->records[i], rt->code) == 0)
                        return 0;
        }
        /* Cannot overflow: the table has CONFIG_MAX_RECORD_TYPES entries and
         * duplicates are skipped above. */
        strcpy(s->records[s->n_records++], rt->code);
        return 0;
}

static void set_records(struct parse *p, struct config_source *s, const char *v)
{
        s->n_records = 0;
        if (for_each_item(p, "records", v, add_record_type, s) < 0)
                return;
        if (s->n_records == 0)
                cfg_problem(p, p->lineno, "records: no record type given");
}

static void set_columns(struct parse *p, struct config_source *s, const char *v)
{
        struct buf b;
        buf_init(&b, CONT_VALUE_MAX);
        bool bad = false;
        /* Column names are matched against record fields, so stray spaces
         * around commas would make them silently never match. */
        for (const char *c = v;;) {
                const char *comma = strchr(c, ',');
                size_t n = comma ? (size_t)(comma - c) : strlen(c);
                while (n > 0 && isspace((unsigned char)*c)) {
                        c++;
                        n--;
                }
                while (n > 0 && isspace((unsigned char)c[n - 1]))
                        n--;
                /* A trailing comma is fine: it lets a list go on over an
                 * indented next line. */
                if (n == 0 && !comma && b.len > 0)
                        break;
                if (n == 0) {
                        cfg_problem(p, p->lineno, "columns: empty column name");
                        bad = true;
                        break;
                }
                if ((b.len > 0 && buf_putc(&b, ',') < 0) || buf_append(&b, c, n) < 0) {
                        cfg_problem(p, p->lineno, "columns: too long");
                        bad = true;
                        break;
                }
                if (!comma)
                        break;
                c = comma + 1;
        }
        if (!bad) {
                free(s->columns);
                s->columns = cfg_dup_or_report(p, b.data ? b.data : "");
        }
        buf_free(&b);
}

static int forward_item(struct parse *p, const char *item, void *ctx)
{
        unsigned *mask = ctx;
        if (strcasecmp(item, "all") == 0) {
                *mask |= 1u;
        } else if (strcasecmp(item, "hard") == 0) {
                *mask |= 2u;
        } else if (strcasecmp(item, "soft") == 0) {
                *mask |= 4u;
        } else {
                char q[SHOW_LEN];
                cfg_problem(p, p->lineno, "forward: %s is not all, hard or soft",
                            cfg_show(q, sizeof q, item));
                return -1;
        }
        return 0;
}

static void set_forward(struct parse *p, const char *v)
{
        unsigned mask = 0;
        if (for_each_item(p, "forward", v, forward_item, &mask) < 0)
                return;
        switch (mask) {
        case 1u:
                p->cfg->forward = CONFIG_FORWARD_ALL;
                break;
        case 2u:
                p->cfg->forward = CONFIG_FORWARD_HARD;
                break;
        case 6u:
                p->cfg->forward = CONFIG_FORWARD_HARD_SOFT;
                break;
        default:
                cfg_problem(p, p->lineno, "forward: expected all, hard, or hard, soft");
                break;
        }
}

static bool is_token_char(unsigned char c)
{
        return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Split "Name: value" into a new header. `where` says where the text came
 * from for messages, which must never quote the text: it holds a secret. */
static void add_header(struct parse *p, const char *text, const char *file, const char *where)
{
        struct config_output *o = &p->cfg->output;
        const char *colon = strchr(text, ':');
        if (!colon) {
                cfg_problem(p, p->lineno, "%s: expected \"Name: value\"", where);
                return;
        }
        size_t nlen = (size_t)(colon - text);
        while (nlen > 0 && isspace((unsigned char)text[nlen - 1]))
                nlen--;
        bool name_ok = nlen > 0;
        for (size_t i = 0; i < nlen; i++)
                name_ok = name_ok && is_token_char((unsigned char)text[i]);
        if (!name_ok) {
                cfg_problem(p, p->lineno, "%s: the header name is empty or not a valid token",
                            where);
                return;
        }
        const char *val = colon + 1;
        while (isspace((unsigned char)*val))
                val++;
        size_t vlen = strlen(val);
        while (vlen > 0 && isspace((unsigned char)val[vlen - 1]))
                vlen--;
        if (vlen == 0) {
                cfg_problem(p, p->lineno, "%s: the header value is empty", where);
                return;
        }
        for (size_t i = 0; i < vlen; i++) {
                unsigned char c = (unsigned char)val[i];
                /* A CR or LF would let the value inject further headers. */
                if ((c < 0x20 && c != '\t') || c == 0x7f) {
                        cfg_problem(p, p->lineno, "%s: the header value holds control characters",
                                    where);
                        return;
                }
        }
        if (o->n_headers >= CONFIG_MAX_HEADERS) {
                cfg_problem(p, p->lineno, "too many headers (at most %d)", CONFIG_MAX_HEADERS);
                return;
        }
        struct config_header *h = &o->headers[o->n_headers];
        h->name = strndup(text, nlen);
        h->value = strndup(val, vlen);
        h->file = file ? strdup(file) : NULL;
        h->from_file = file != NULL;
        o->n_headers++; /* counted even when half-made, so config_free sees it */
        if (!h->name || !h->value || (file && !h->file))
                cfg_problem(p, p->lineno, "out of memory");
}

/* The secret stays out of the configuration file, which can then be
 * world-readable; read it now so that a missing file fails at start. */
static void read_header_file(struct parse *p, const char *path)
{
        char where[SHOW_LEN + 32];
        char q[SHOW_LEN];
        FILE *f = fopen(path, "re");
        if (!f) {
                cfg_problem(p, p->lineno, "header_file: cannot open %s: %s",
                            cfg_show(q, sizeof q, path), strerror(errno));
                return;
        }
        struct stat st;
        if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
                cfg_problem(p, p->lineno, "header_file: %s is not a regular file",
                            cfg_show(q, sizeof q, path));
                fclose(f);
                return;
        }
        struct buf b;
        buf_init(&b, HEADER_FILE_MAX);
        char chunk[4096];
        size_t n;
        bool too_big = false;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
                if (buf_append(&b, chunk, n) < 0) {
                        too_big = true;
                        break;
                }
        }
        bool rerr = ferror(f);
        fclose(f);
        explicit_bzero(chunk, sizeof chunk);
        if (too_big || rerr) {
                cfg_problem(p, p->lineno, "header_file: %s: %s", cfg_show(q, sizeof q, path),
                            too_big ? "too big" : "read error");
                goto out;
        }
        if (b.len > 0 && memchr(b.data, '\0', b.len)) {
                cfg_problem(p, p->lineno, "header_file: %s holds a NUL byte",
                            cfg_show(q, sizeof q, path));
                goto out;
        }
        size_t before = p->cfg->output.n_headers;
        unsigned problems_before = p->problems;
        int fline = 0;
        for (char *line = b.data; line && *line;) {
                char *nl = strchr(line, '\n');
                if (nl)
                        *nl = '\0';
                fline++;
                size_t len = strlen(line);
                if (len > 0 && line[len - 1] == '\r')
                        line[--len] = '\0';
                const char *s = line;
                while (isspace((unsigned char)*s))
                        s++;
                if (*s && *s != '#') {
                        snprintf(where, sizeof where, "header_file %s line %d",
                                 cfg_show(q, sizeof q, path), fline);
                        add_header(p, s, path, where);
                }
                line = nl ? nl + 1 : NULL;
        }
        if (p->cfg->output.n_headers == before && p->problems == problems_before)
                cfg_problem(p, p->lineno, "header_file: %s holds no header",
                            cfg_show(q, sizeof q, path));
out:
        if (b.data)
                explicit_bzero(b.data, b.alloc);
        buf_free(&b);
}

static bool has_control(const char *s)
{
        for (; *s; s++) {
                if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
                        return true;
        }
        return false;
}

static void set_url(struct parse *p, const char *v)
{
        struct config_output *o = &p->cfg->output;
        free(o->url);
        o->url = NULL;
        if (!*v)
                return;
        /* The URL is not quoted back: it may carry credentials. */
        const char *rest = NULL;
        if (strncasecmp(v, "http://", 7) == 0)
                rest = v + 7;
        else if (strncasecmp(v, "https://", 8) == 0)
                rest = v + 8;
        if (!rest) {
                cfg_problem(p, p->lineno, "url: must start with http:// or https://");
                return;
        }
        if (!*rest || *rest == '/' || *rest == '?' || *rest == '#') {
                cfg_problem(p, p->lineno, "url: no host");
                return;
        }
        for (const char *c = v; *c; c++) {
                if (isspace((unsigned char)*c) || (unsigned char)*c < 0x20 ||
                    (unsigned char)*c == 0x7f) {
                        cfg_problem(p, p->lineno, "url: holds spaces or control characters");
                        return;
                }
        }
        o->url = cfg_dup_or_report(p, v);
        p->url_line = p->lineno;
}

/* --- applying keys ------------------------------------------------------ */

void cfg_apply(struct parse *p, enum key_id id, const char *v)
{
        struct config *c = p->cfg;
        struct config_output *o = &c->output;
        struct config_source *s = p->src;
        const char *key = cfg_keys[id].name;
        char q[SHOW_LEN];

        switch (id) {
        case K_SRC_PATH:
                set_required(p, key, &s->path, v);
                break;
        case K_SRC_ARCHIVE_DIR:
                set_optional(p, &s->archive_dir, v);
                break;
        case K_SRC_RECORDS:
                set_records(p, s, v);
                break;
        case K_SRC_START_AT:
                if (strcasecmp(v, "beginning") == 0)
                        s->start_at = CONFIG_START_BEGINNING;
                else if (strcasecmp(v, "end") == 0)
                        s->start_at = CONFIG_START_END;
                else
                        cfg_problem(p, p->lineno, "start_at: %s is not beginning or end",
                                    cfg_show(q, sizeof q, v));
                break;
        case K_SRC_COLUMNS:
                free(s->columns);
                s->columns = NULL;
                if (*v)
                        set_columns(p, s, v);
                break;
        case K_SRC_RECORD_MAX:
                parse_size(p, key, v, KIB, 64 * MIB, &s->record_max);
                break;
        case K_OUT_URL:
                set_url(p, v);
                break;
        case K_OUT_FILE:
                set_optional(p, &o->file, v);
                if (o->file)
                        p->file_line = p->lineno;
                break;
        case K_OUT_FORMAT:
                if (strcasecmp(v, "batch") == 0)
                        o->format = CONFIG_FORMAT_BATCH;
                else if (strcasecmp(v, "single") == 0)
                        o->format = CONFIG_FORMAT_SINGLE;
                else if (strcasecmp(v, "auto") == 0)
                        o->format = CONFIG_FORMAT_AUTO;
                else
                        cfg_problem(p, p->lineno, "format: %s is not auto, batch or single",
                                    cfg_show(q, sizeof q, v));
                break;
        case K_OUT_HEADER:
                add_header(p, v, NULL, "header");
                break;
        case K_OUT_HEADER_FILE:
                if (!*v)
                        cfg_problem(p, p->lineno, "header_file: empty value");
                else
                        read_header_file(p, v);
                break;
        case K_OUT_BATCH_MAX_RECORDS:
                parse_unsigned(p, key, v, 1, 100000, &o->batch_max_records);
                break;
        case K_OUT_BATCH_MAX_BYTES:
                parse_size(p, key, v, KIB, 256 * MIB, &o->batch_max_bytes);
                break;
        case K_OUT_LINGER_MS:
                parse_unsigned(p, key, v, 0, 600000, &o->linger_ms);
                break;
        case K_OUT_TIMEOUT_S:
                parse_unsigned(p, key, v, 1, 3600, &o->timeout_s);
                break;
        case K_OUT_RETRY_MAX_S:
                parse_unsigned(p, key, v, 1, 86400, &o->retry_max_s);
                break;
        case K_OUT_GZIP:
                parse_bool(p, key, v, &o->gzip);
                break;
        case K_OUT_TLS_VERIFY:
                parse_bool(p, key, v, &o->tls_verify);
                break;
        case K_OUT_CA_FILE:
                set_optional(p, &o->ca_file, v);
                break;
        case K_OUT_INCLUDE_MESSAGE:
                parse_bool(p, key, v, &o->include_message);
                break;
        case K_OUT_CONCURRENCY:
                parse_unsigned(p, key, v, 1, 512, &o->concurrency);
                p->concurrency_set = true;
                break;
        case K_OUT_ADAPTIVE:
                parse_bool(p, key, v, &o->adaptive);
                break;
        case K_OUT_MAX_RATE:
                parse_unsigned(p, key, v, 0, 1000000, &o->max_rate);
                break;
        case K_OUT_MAX_REQUESTS_PER_MINUTE:
                parse_unsigned(p, key, v, 0, 100000, &o->max_requests_per_minute);
                p->max_requests_set = true;
                break;
        case K_OUT_HOST:
                if (strlen(v) > 255 || has_control(v) || strchr(v, ' '))
                        cfg_problem(p, p->lineno, "host: %s is not a host name",
                                    cfg_show(q, sizeof q, v));
                else
                        set_required(p, key, &o->host, v);
                break;
        case K_STATE_DIR:
                set_required(p, key, &c->state_dir, v);
                break;
        case K_CLASSIFY_PATTERNS:
                set_optional(p, &c->classify_patterns, v);
                break;
        case K_CLASSIFY_FORWARD:
                set_forward(p, v);
                break;
        case K_LOG_LEVEL:
                if (log_level_parse(v, &c->log_level) < 0)
                        cfg_problem(p, p->lineno, "level: %s is not error, warn, info or debug",
                                    cfg_show(q, sizeof q, v));
                break;
        case K_METRICS_TEXTFILE:
                set_optional(p, &c->metrics_textfile, v);
                break;
        case K_METRICS_INTERVAL_S:
                parse_unsigned(p, key, v, 1, 86400, &c->metrics_interval_s);
                break;
        case K_PMTA_CONFIG:
                set_required(p, key, &c->pmta_config, v);
                break;
        case K_COUNT:
                break;
        }
}
