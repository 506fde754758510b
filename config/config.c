#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "buf.h"

#define DEFAULT_STATE_DIR "/var/lib/pmtatail"

#define SOURCE_NAME_MAX     64
#define HEADER_FILE_MAX     (64 * 1024)
#define CONT_VALUE_MAX      (64 * 1024)
#define SHOW_LEN            64
#define KIB                 ((size_t)1024)
#define MIB                 (KIB * 1024)
#define SUGGEST_MAX_KEY_LEN 32

enum section_kind {
        SEC_NONE,   /* before the first heading */
        SEC_IGNORE, /* under a heading already reported as wrong: keys are skipped */
        SEC_SOURCE,
        SEC_OUTPUT,
        SEC_STATE,
        SEC_CLASSIFY,
        SEC_LOG,
        SEC_METRICS,
        SEC_PMTA,
        SEC_COUNT
};

static const char *const section_names[SEC_COUNT] = {
    [SEC_SOURCE] = "source",     [SEC_OUTPUT] = "output", [SEC_STATE] = "state",
    [SEC_CLASSIFY] = "classify", [SEC_LOG] = "log",       [SEC_METRICS] = "metrics",
    [SEC_PMTA] = "pmta",
};

enum key_id {
        K_SRC_PATH,
        K_SRC_ARCHIVE_DIR,
        K_SRC_RECORDS,
        K_SRC_START_AT,
        K_SRC_COLUMNS,
        K_SRC_RECORD_MAX,
        K_OUT_URL,
        K_OUT_FILE,
        K_OUT_FORMAT,
        K_OUT_HEADER,
        K_OUT_HEADER_FILE,
        K_OUT_BATCH_MAX_RECORDS,
        K_OUT_BATCH_MAX_BYTES,
        K_OUT_LINGER_MS,
        K_OUT_TIMEOUT_S,
        K_OUT_RETRY_MAX_S,
        K_OUT_GZIP,
        K_OUT_TLS_VERIFY,
        K_OUT_CA_FILE,
        K_OUT_INCLUDE_MESSAGE,
        K_OUT_CONCURRENCY,
        K_OUT_HOST,
        K_OUT_MAX_RATE,
        K_OUT_MAX_REQUESTS_PER_MINUTE,
        K_STATE_DIR,
        K_CLASSIFY_PATTERNS,
        K_CLASSIFY_FORWARD,
        K_LOG_LEVEL,
        K_METRICS_TEXTFILE,
        K_METRICS_INTERVAL_S,
        K_PMTA_CONFIG,
        K_COUNT
};

enum key_flags {
        KF_REPEAT = 1u, /* may be given several times in a section */
        KF_CONT = 2u,   /* may go on over indented lines (long lists) */
};

struct key_def {
        enum section_kind sec;
        const char *name;
        unsigned flags;
};

static const struct key_def keys[K_COUNT] = {
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

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* Everything one config_load needs; lives on its stack. */
struct parse {
        const char *path;
        FILE *fp;
        struct config *cfg;
        struct config_error *err;
        unsigned problems; /* found so far, kept or not */

        /* What the reader learnt about the line inih is working on. inih
         * hands a line to the handler before it asks for the next one, so
         * these always describe the line of the current handler call. */
        int lineno;
        bool line_cont; /* inih will treat it as a continuation line */
        bool prev_key;  /* mirrors inih's "previous name" being set */

        enum section_kind sec;
        struct config_source *src; /* when sec is SEC_SOURCE */
        char sec_label[SOURCE_NAME_MAX + 16];
        int sec_line[SEC_COUNT]; /* first heading of each kind, 0 if none */
        int key_line[K_COUNT];   /* first line of each key in this section */

        /* The key of the latest key line and its value so far, for
         * continuation lines. */
        int last_key; /* enum key_id, or -1 when none or it was refused */
        struct buf cont;

        int url_line, file_line;
        bool concurrency_set, max_requests_set;
};

/* --- reporting ---------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void problem(struct parse *p, int line,
                                                          const char *fmt, ...)
{
        p->problems++;
        struct config_error *e = p->err;
        if (e->count >= CONFIG_MAX_ERRORS) {
                e->dropped++;
                return;
        }
        char *m = e->msg[e->count++];
        int n = line > 0 ? snprintf(m, CONFIG_ERROR_LEN, "%s:%d: ", p->path, line)
                         : snprintf(m, CONFIG_ERROR_LEN, "%s: ", p->path);
        if (n < 0 || (size_t)n >= CONFIG_ERROR_LEN)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m + n, CONFIG_ERROR_LEN - (size_t)n, fmt, ap);
        va_end(ap);
}

/* A value quoted for a message: short, and with bytes that could forge
 * terminal output shown as \xNN. Never use it on header values. */
static const char *show(char *dst, size_t size, const char *s)
{
        size_t n = 0;
        dst[n++] = '"';
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                if (n + 8 >= size) {
                        memcpy(dst + n, "...", 3);
                        n += 3;
                        break;
                }
                if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
                        n += (size_t)snprintf(dst + n, size - n, "\\x%02x", c);
                } else {
                        dst[n++] = (char)c;
                }
        }
        dst[n++] = '"';
        dst[n] = '\0';
        return dst;
}

static size_t edit_distance(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        size_t row[SUGGEST_MAX_KEY_LEN + 1], prev[SUGGEST_MAX_KEY_LEN + 1];
        if (la > SUGGEST_MAX_KEY_LEN || lb > SUGGEST_MAX_KEY_LEN)
                return SIZE_MAX;
        for (size_t j = 0; j <= lb; j++)
                prev[j] = j;
        for (size_t i = 1; i <= la; i++) {
                row[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        size_t best = prev[j - 1] + (a[i - 1] != b[j - 1]);
                        if (prev[j] + 1 < best)
                                best = prev[j] + 1;
                        if (row[j - 1] + 1 < best)
                                best = row[j - 1] + 1;
                        row[j] = best;
                }
                memcpy(prev, row, sizeof row);
        }
        return prev[lb];
}

/* A typo is the likely cause of an unknown name: offer the nearest one. */
static const char *suggest(const char *name, const char *const *names, size_t n)
{
        const char *best = NULL;
        size_t best_d = 3;
        for (size_t i = 0; i < n; i++) {
                if (!names[i])
                        continue;
                size_t d = edit_distance(name, names[i]);
                if (d < best_d) {
                        best_d = d;
                        best = names[i];
                }
        }
        return best;
}

static char *dup_or_report(struct parse *p, const char *s)
{
        char *d = strdup(s);
        if (!d)
                problem(p, p->lineno, "out of memory");
        return d;
}

/* --- value parsers ------------------------------------------------------ */

static int parse_uint(struct parse *p, const char *key, const char *v, unsigned long min,
                      unsigned long max, unsigned long *out)
{
        char q[SHOW_LEN];
        if (!isdigit((unsigned char)v[0])) {
                problem(p, p->lineno, "%s: %s is not a whole number", key, show(q, sizeof q, v));
                return -1;
        }
        errno = 0;
        char *end;
        unsigned long long n = strtoull(v, &end, 10);
        if (*end != '\0') {
                problem(p, p->lineno, "%s: %s is not a whole number", key, show(q, sizeof q, v));
                return -1;
        }
        if (errno == ERANGE || n < min || n > max) {
                problem(p, p->lineno, "%s: %s is out of range (%lu to %lu)", key,
                        show(q, sizeof q, v), min, max);
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
                problem(p, p->lineno, "%s: %s is out of range (%zu to %zu bytes)", key,
                        show(q, sizeof q, v), min, max);
                return -1;
        }
        *out = (size_t)(n * mult);
        return 0;
bad:
        problem(p, p->lineno, "%s: %s is not a size (bytes, or a number followed by k or M)", key,
                show(q, sizeof q, v));
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
        problem(p, p->lineno, "%s: %s is not yes or no", key, show(q, sizeof q, v));
        return -1;
}

/* Replace *field with a copy of v; an empty value means "not set". */
static void set_optional(struct parse *p, char **field, const char *v)
{
        free(*field);
        *field = NULL;
        if (*v)
                *field = dup_or_report(p, v);
}

static void set_required(struct parse *p, const char *key, char **field, const char *v)
{
        if (!*v) {
                problem(p, p->lineno, "%s: empty value", key);
                return;
        }
        free(*field);
        *field = dup_or_report(p, v);
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
                        problem(p, p->lineno, "%s: %.*s... is not a known name", key, 16, v);
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
                problem(p, p->lineno,
                        "records: %s is not a record type (b, rb, f, d, t, tq, r, rs or "
                        "bounce, remote-bounce, feedback-loop, delivery, transient, "
                        "transient-queue, receipt, remote-status)",
                        show(q, sizeof q, item));
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
                problem(p, p->lineno, "records: no record type given");
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
                        problem(p, p->lineno, "columns: empty column name");
                        bad = true;
                        break;
                }
                if ((b.len > 0 && buf_putc(&b, ',') < 0) || buf_append(&b, c, n) < 0) {
                        problem(p, p->lineno, "columns: too long");
                        bad = true;
                        break;
                }
                if (!comma)
                        break;
                c = comma + 1;
        }
        if (!bad) {
                free(s->columns);
                s->columns = dup_or_report(p, b.data ? b.data : "");
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
                problem(p, p->lineno, "forward: %s is not all, hard or soft",
                        show(q, sizeof q, item));
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
                problem(p, p->lineno, "forward: expected all, hard, or hard, soft");
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
                problem(p, p->lineno, "%s: expected \"Name: value\"", where);
                return;
        }
        size_t nlen = (size_t)(colon - text);
        while (nlen > 0 && isspace((unsigned char)text[nlen - 1]))
                nlen--;
        bool name_ok = nlen > 0;
        for (size_t i = 0; i < nlen; i++)
                name_ok = name_ok && is_token_char((unsigned char)text[i]);
        if (!name_ok) {
                problem(p, p->lineno, "%s: the header name is empty or not a valid token", where);
                return;
        }
        const char *val = colon + 1;
        while (isspace((unsigned char)*val))
                val++;
        size_t vlen = strlen(val);
        while (vlen > 0 && isspace((unsigned char)val[vlen - 1]))
                vlen--;
        if (vlen == 0) {
                problem(p, p->lineno, "%s: the header value is empty", where);
                return;
        }
        for (size_t i = 0; i < vlen; i++) {
                unsigned char c = (unsigned char)val[i];
                /* A CR or LF would let the value inject further headers. */
                if ((c < 0x20 && c != '\t') || c == 0x7f) {
                        problem(p, p->lineno, "%s: the header value holds control characters",
                                where);
                        return;
                }
        }
        if (o->n_headers >= CONFIG_MAX_HEADERS) {
                problem(p, p->lineno, "too many headers (at most %d)", CONFIG_MAX_HEADERS);
                return;
        }
        struct config_header *h = &o->headers[o->n_headers];
        h->name = strndup(text, nlen);
        h->value = strndup(val, vlen);
        h->file = file ? strdup(file) : NULL;
        h->from_file = file != NULL;
        o->n_headers++; /* counted even when half-made, so config_free sees it */
        if (!h->name || !h->value || (file && !h->file))
                problem(p, p->lineno, "out of memory");
}

/* The secret stays out of the configuration file, which can then be
 * world-readable; read it now so that a missing file fails at start. */
static void read_header_file(struct parse *p, const char *path)
{
        char where[SHOW_LEN + 32];
        char q[SHOW_LEN];
        FILE *f = fopen(path, "re");
        if (!f) {
                problem(p, p->lineno, "header_file: cannot open %s: %s", show(q, sizeof q, path),
                        strerror(errno));
                return;
        }
        struct stat st;
        if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
                problem(p, p->lineno, "header_file: %s is not a regular file",
                        show(q, sizeof q, path));
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
                problem(p, p->lineno, "header_file: %s: %s", show(q, sizeof q, path),
                        too_big ? "too big" : "read error");
                goto out;
        }
        if (b.len > 0 && memchr(b.data, '\0', b.len)) {
                problem(p, p->lineno, "header_file: %s holds a NUL byte", show(q, sizeof q, path));
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
                                 show(q, sizeof q, path), fline);
                        add_header(p, s, path, where);
                }
                line = nl ? nl + 1 : NULL;
        }
        if (p->cfg->output.n_headers == before && p->problems == problems_before)
                problem(p, p->lineno, "header_file: %s holds no header", show(q, sizeof q, path));
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
                problem(p, p->lineno, "url: must start with http:// or https://");
                return;
        }
        if (!*rest || *rest == '/' || *rest == '?' || *rest == '#') {
                problem(p, p->lineno, "url: no host");
                return;
        }
        for (const char *c = v; *c; c++) {
                if (isspace((unsigned char)*c) || (unsigned char)*c < 0x20 ||
                    (unsigned char)*c == 0x7f) {
                        problem(p, p->lineno, "url: holds spaces or control characters");
                        return;
                }
        }
        o->url = dup_or_report(p, v);
        p->url_line = p->lineno;
}

/* --- applying keys ------------------------------------------------------ */

static void apply(struct parse *p, enum key_id id, const char *v)
{
        struct config *c = p->cfg;
        struct config_output *o = &c->output;
        struct config_source *s = p->src;
        const char *key = keys[id].name;
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
                        problem(p, p->lineno, "start_at: %s is not beginning or end",
                                show(q, sizeof q, v));
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
                        problem(p, p->lineno, "format: %s is not auto, batch or single",
                                show(q, sizeof q, v));
                break;
        case K_OUT_HEADER:
                add_header(p, v, NULL, "header");
                break;
        case K_OUT_HEADER_FILE:
                if (!*v)
                        problem(p, p->lineno, "header_file: empty value");
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
                parse_unsigned(p, key, v, 1, 64, &o->concurrency);
                p->concurrency_set = true;
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
                        problem(p, p->lineno, "host: %s is not a host name", show(q, sizeof q, v));
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
                        problem(p, p->lineno, "level: %s is not error, warn, info or debug",
                                show(q, sizeof q, v));
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

static void on_key_line(struct parse *p, const char *name, const char *value)
{
        char q[SHOW_LEN];
        p->last_key = -1;
        if (p->sec == SEC_IGNORE)
                return;
        if (p->sec == SEC_NONE) {
                problem(p, p->lineno, "key %s before any [section]", show(q, sizeof q, name));
                return;
        }
        int id = -1;
        const char *names[K_COUNT] = {NULL};
        for (int i = 0; i < K_COUNT; i++) {
                if (keys[i].sec != p->sec)
                        continue;
                names[i] = keys[i].name;
                if (strcmp(name, keys[i].name) == 0)
                        id = i;
        }
        if (id < 0) {
                const char *near = suggest(name, names, K_COUNT);
                problem(p, p->lineno, "unknown key %s in %s%s%s%s", show(q, sizeof q, name),
                        p->sec_label, near ? " (did you mean \"" : "", near ? near : "",
                        near ? "\"?)" : "");
                return;
        }
        if (p->key_line[id] && !(keys[id].flags & KF_REPEAT)) {
                problem(p, p->lineno, "%s given twice in %s (first on line %d)", keys[id].name,
                        p->sec_label, p->key_line[id]);
                return;
        }
        p->key_line[id] = p->lineno;
        unsigned before = p->problems;
        apply(p, (enum key_id)id, value);
        if (p->problems != before)
                return;
        buf_reset(&p->cont);
        if (!(keys[id].flags & KF_CONT) || buf_puts(&p->cont, value) == 0)
                p->last_key = id;
}

static void on_continuation(struct parse *p, const char *value)
{
        if (p->last_key < 0)
                return; /* the key line was refused and reported already */
        enum key_id id = (enum key_id)p->last_key;
        if (!(keys[id].flags & KF_CONT)) {
                problem(p, p->lineno,
                        "indented line continues %s from the line above; only records and "
                        "columns may go on over several lines (remove the indentation)",
                        keys[id].name);
                p->last_key = -1;
                return;
        }
        /* inih leaves inline comments in continuation lines. */
        size_t n = 0;
        for (; value[n]; n++) {
                if (value[n] == ';' && n > 0 && isspace((unsigned char)value[n - 1]))
                        break;
        }
        while (n > 0 && isspace((unsigned char)value[n - 1]))
                n--;
        if (n == 0)
                return;
        int rc = 0;
        if (p->cont.len > 0 && p->cont.data[p->cont.len - 1] != ',' && value[0] != ',')
                rc = buf_putc(&p->cont, ',');
        if (rc == 0)
                rc = buf_append(&p->cont, value, n);
        if (rc < 0) {
                problem(p, p->lineno, "%s: too long", keys[id].name);
                p->last_key = -1;
                return;
        }
        unsigned before = p->problems;
        apply(p, id, p->cont.data);
        if (p->problems != before)
                p->last_key = -1; /* later lines would only repeat the complaint */
}

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
        struct parse *p = user;
        (void)section; /* our own reader tracks the section, with its line */
        if (!value)
                value = "";
        if (p->line_cont)
                on_continuation(p, value);
        else
                on_key_line(p, name, value);
        /* Problems are collected in p; inih must go on to the next line. */
        return 1;
}

/* --- the reader --------------------------------------------------------- */

/* inih's rule for where an inline comment starts: ';' after a space. */
static const char *find_or_comment(const char *s, const char *chars)
{
        bool was_space = false;
        for (; *s; s++) {
                if (strchr(chars, *s) || (was_space && *s == ';'))
                        break;
                was_space = isspace((unsigned char)*s);
        }
        return s;
}

/* Returns whether the heading is well-formed enough for inih to take it. */
static bool on_heading(struct parse *p, const char *start)
{
        char q[SHOW_LEN], q2[SHOW_LEN];
        const char *end = find_or_comment(start + 1, "]");
        p->sec = SEC_IGNORE;
        p->src = NULL;
        p->last_key = -1;
        memset(p->key_line, 0, sizeof p->key_line);
        snprintf(p->sec_label, sizeof p->sec_label, "[?]");
        if (*end != ']') {
                problem(p, p->lineno, "section heading without a closing ]");
                return false;
        }
        const char *after = end + 1;
        while (isspace((unsigned char)*after))
                after++;
        if (*after && *after != ';' && *after != '#')
                problem(p, p->lineno, "unexpected text after the section heading");

        const char *s = start + 1;
        while (s < end && isspace((unsigned char)*s))
                s++;
        size_t kl = 0;
        while (s + kl < end && !isspace((unsigned char)s[kl]))
                kl++;
        const char *arg = s + kl;
        while (arg < end && isspace((unsigned char)*arg))
                arg++;
        size_t al = (size_t)(end - arg);
        while (al > 0 && isspace((unsigned char)arg[al - 1]))
                al--;

        char kind[32];
        snprintf(kind, sizeof kind, "%.*s", (int)(kl < sizeof kind ? kl : sizeof kind - 1), s);
        enum section_kind sk = SEC_NONE;
        for (int i = 0; i < SEC_COUNT; i++) {
                if (section_names[i] && kl == strlen(section_names[i]) &&
                    strncmp(s, section_names[i], kl) == 0)
                        sk = (enum section_kind)i;
        }
        if (sk == SEC_NONE) {
                char raw[SHOW_LEN];
                snprintf(raw, sizeof raw, "%.*s", (int)(end - start - 1), start + 1);
                const char *near = suggest(kind, section_names, SEC_COUNT);
                problem(p, p->lineno, "unknown section [%s]%s%s%s", show(q, sizeof q, raw),
                        near ? " (did you mean [" : "", near ? near : "", near ? "]?)" : "");
                return true;
        }
        if (sk != SEC_SOURCE) {
                if (al > 0) {
                        problem(p, p->lineno, "[%s] takes no name", section_names[sk]);
                        return true;
                }
                if (p->sec_line[sk]) {
                        problem(p, p->lineno, "duplicate section [%s] (first on line %d)",
                                section_names[sk], p->sec_line[sk]);
                        return true;
                }
                p->sec_line[sk] = p->lineno;
                p->sec = sk;
                snprintf(p->sec_label, sizeof p->sec_label, "[%s]", section_names[sk]);
                return true;
        }

        char name[SOURCE_NAME_MAX + 1];
        if (al == 0) {
                problem(p, p->lineno, "a source needs a name: [source NAME]");
                return true;
        }
        if (al > SOURCE_NAME_MAX) {
                problem(p, p->lineno, "source name longer than %d bytes", SOURCE_NAME_MAX);
                return true;
        }
        memcpy(name, arg, al);
        name[al] = '\0';
        for (size_t i = 0; i < al; i++) {
                unsigned char ch = (unsigned char)name[i];
                if (!isalnum(ch) && ch != '.' && ch != '_' && ch != '-') {
                        problem(p, p->lineno,
                                "source name %s may hold only letters, digits, '.', '_' and '-'",
                                show(q, sizeof q, name));
                        return true;
                }
        }
        struct config *c = p->cfg;
        for (size_t i = 0; i < c->n_sources; i++) {
                if (strcmp(c->sources[i].name, name) == 0) {
                        problem(p, p->lineno, "duplicate source %s (first on line %d)",
                                show(q2, sizeof q2, name), c->sources[i].line);
                        return true;
                }
        }
        if (c->n_sources >= CONFIG_MAX_SOURCES) {
                problem(p, p->lineno, "too many sources (at most %d)", CONFIG_MAX_SOURCES);
                return true;
        }
        struct config_source *src = &c->sources[c->n_sources];
        memset(src, 0, sizeof *src);
        src->name = strdup(name);
        if (!src->name) {
                problem(p, p->lineno, "out of memory");
                return true;
        }
        c->n_sources++;
        src->line = p->lineno;
        src->start_at = CONFIG_START_BEGINNING;
        src->record_max = MIB;
        strcpy(src->records[0], "b");
        strcpy(src->records[1], "rb");
        strcpy(src->records[2], "f");
        src->n_records = 3;
        p->src = src;
        p->sec = SEC_SOURCE;
        snprintf(p->sec_label, sizeof p->sec_label, "[source %s]", name);
        return true;
}

/* Decide what inih will make of the line, so the handler knows the line's
 * number and whether it continues a value, and report the lines inih would
 * only count as its first error. */
static void classify_line(struct parse *p, char *line)
{
        const char *s = line;
        if (p->lineno == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB &&
            (unsigned char)s[2] == 0xBF)
                s += 3;
        const char *start = s;
        while (isspace((unsigned char)*start))
                start++;
        if (*start == '\0' || strchr(";#", *start))
                return;
        if (start > line && p->prev_key) {
                p->line_cont = true;
                return;
        }
        if (*start == '[') {
                if (on_heading(p, start))
                        p->prev_key = false;
                else
                        line[0] = '\0'; /* reported; keep it from inih */
                return;
        }
        const char *sep = find_or_comment(start, "=:");
        if (*sep != '=' && *sep != ':') {
                problem(p, p->lineno, "expected \"key = value\" or a [section] heading");
                line[0] = '\0';
                return;
        }
        p->prev_key = true;
}

/* fgets-like reader handed to inih. It reads whole lines itself so that a
 * line too long for inih's buffer is reported instead of being split into
 * several lines (which inih would count and parse separately). */
static char *read_line(char *str, int num, void *stream)
{
        struct parse *p = stream;
        size_t room = num > 2 ? (size_t)num - 2 : 0; /* keep space for '\n' and NUL */
        size_t len = 0, total = 0;
        bool nul = false;
        int ch = getc(p->fp);
        if (ch == EOF) {
                if (ferror(p->fp))
                        problem(p, 0, "read error: %s", strerror(errno));
                return NULL;
        }
        int last = 0;
        while (ch != EOF && ch != '\n') {
                if (ch == '\0')
                        nul = true;
                if (len < room)
                        str[len++] = (char)ch;
                total++;
                last = ch;
                ch = getc(p->fp);
        }
        if (ch == EOF && ferror(p->fp)) {
                problem(p, 0, "read error: %s", strerror(errno));
                return NULL;
        }
        if (last == '\r') {
                if (len == total)
                        len--;
                total--;
        }
        p->lineno++;
        p->line_cont = false;
        if (total > room) {
                problem(p, p->lineno, "line too long (%zu bytes; at most %zu)", total, room);
                len = 0;
        } else if (nul) {
                problem(p, p->lineno, "NUL byte in line");
                len = 0;
        }
        str[len] = '\0';
        if (len > 0)
                classify_line(p, str);
        /* Ending in '\n' keeps an inih built with INI_ALLOW_REALLOC from
         * taking the line for a partial one and reading on. */
        size_t used = strlen(str);
        str[used] = '\n';
        str[used + 1] = '\0';
        return str;
}

/* --- load --------------------------------------------------------------- */

static void set_defaults(struct config *c)
{
        memset(c, 0, sizeof *c);
        c->output.kind = CONFIG_OUTPUT_NONE;
        c->output.format = CONFIG_FORMAT_AUTO;
        c->output.batch_max_records = 500;
        c->output.batch_max_bytes = MIB;
        c->output.linger_ms = 1000;
        c->output.timeout_s = 30;
        c->output.retry_max_s = 60;
        c->output.gzip = false;
        c->output.tls_verify = true;
        c->output.include_message = true;
        c->output.concurrency = 4;
        c->forward = CONFIG_FORWARD_ALL;
        c->log_level = LOG_INFO;
        c->metrics_interval_s = 15;
}

/* Checks that need the whole file, and defaults that cost something. */
static void finish(struct parse *p)
{
        struct config *c = p->cfg;
        char q[SHOW_LEN];
        for (size_t i = 0; i < c->n_sources; i++) {
                struct config_source *s = &c->sources[i];
                if (!s->path) {
                        problem(p, s->line, "[source %s] has no path", s->name);
                        continue;
                }
                for (size_t j = 0; j < i; j++) {
                        if (c->sources[j].path && strcmp(c->sources[j].path, s->path) == 0)
                                problem(p, s->line,
                                        "[source %s] has the same path as [source %s]: %s", s->name,
                                        c->sources[j].name, show(q, sizeof q, s->path));
                }
        }
        struct config_output *o = &c->output;
        if (o->url && o->file) {
                int l = p->url_line > p->file_line ? p->url_line : p->file_line;
                problem(p, l, "url and file are mutually exclusive in [output]");
        } else if (o->url) {
                o->kind = CONFIG_OUTPUT_URL;
        } else if (o->file) {
                o->kind = CONFIG_OUTPUT_FILE;
        }
        /* One event per request needs more of them in flight: 16 at 50 ms
         * an answer is 320 events/s. */
        if (!p->concurrency_set)
                o->concurrency = config_output_single(o) ? 16 : 4;
        /* Oempro's batch API allows 100 requests per 60 s. */
        if (!p->max_requests_set)
                o->max_requests_per_minute =
                    config_url_endpoint(o->url) == CONFIG_ENDPOINT_BATCH_API ? 100 : 0;
        if (!o->host) {
                char host[256];
                if (gethostname(host, sizeof host) < 0 || !host[0]) {
                        problem(p, 0, "cannot find the host name (%s); set host in [output]",
                                strerror(errno));
                } else {
                        host[sizeof host - 1] = '\0';
                        o->host = dup_or_report(p, host);
                }
        }
        if (!c->state_dir)
                c->state_dir = dup_or_report(p, DEFAULT_STATE_DIR);
        if (!c->pmta_config)
                c->pmta_config = dup_or_report(p, CONFIG_DEFAULT_PMTA_CONFIG);
}

static int load(const char *path, bool must_exist, struct config *out, struct config_error *err,
                bool keep_partial);

size_t config_record_types(const struct config *c, const char **codes, size_t max,
                           size_t *record_max)
{
        size_t n = 0;
        *record_max = 0;
        for (size_t i = 0; i < c->n_sources; i++) {
                const struct config_source *src = &c->sources[i];
                for (size_t k = 0; k < src->n_records; k++) {
                        size_t j = 0;
                        while (j < n && strcmp(codes[j], src->records[k]) != 0)
                                j++;
                        if (j == n && n < max)
                                codes[n++] = src->records[k];
                }
                if (src->record_max > *record_max)
                        *record_max = src->record_max;
        }
        return n;
}

int config_load(const char *path, bool must_exist, struct config *out, struct config_error *err)
{
        return load(path, must_exist, out, err, false);
}

int config_load_partial(const char *path, bool must_exist, struct config *out,
                        struct config_error *err)
{
        return load(path, must_exist, out, err, true);
}

static int load(const char *path, bool must_exist, struct config *out, struct config_error *err,
                bool keep_partial)
{
        struct config_error scratch;
        struct parse p;
        memset(&p, 0, sizeof p);
        p.path = path;
        p.cfg = out;
        p.err = err ? err : &scratch;
        p.err->count = 0;
        p.err->dropped = 0;
        p.sec = SEC_NONE;
        p.last_key = -1;
        buf_init(&p.cont, CONT_VALUE_MAX);
        set_defaults(out);

        p.fp = fopen(path, "re");
        if (!p.fp) {
                if (errno == ENOENT && !must_exist) {
                        finish(&p);
                        goto done;
                }
                problem(&p, 0, "cannot open: %s", strerror(errno));
                goto done;
        }
        struct stat st;
        if (fstat(fileno(p.fp), &st) < 0) {
                problem(&p, 0, "cannot stat: %s", strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
                problem(&p, 0, "is a directory");
        } else {
                int rc = ini_parse_stream(read_line, &p, on_ini, &p);
                /* Every line inih rejects should have been reported by the
                 * reader; this catches a disagreement between the two. */
                if (rc > 0 && p.problems == 0)
                        problem(&p, rc, "syntax error");
                else if (rc < 0)
                        problem(&p, 0, "cannot parse (out of memory)");
                finish(&p);
        }
        fclose(p.fp);
done:
        buf_free(&p.cont);
        if (p.problems > 0) {
                if (!keep_partial)
                        config_free(out);
                return -1;
        }
        return 0;
}

static void free_secret(char *s)
{
        if (s) {
                explicit_bzero(s, strlen(s));
                free(s);
        }
}

void config_free(struct config *c)
{
        for (size_t i = 0; i < c->n_sources; i++) {
                struct config_source *s = &c->sources[i];
                free(s->name);
                free(s->path);
                free(s->archive_dir);
                free(s->columns);
        }
        struct config_output *o = &c->output;
        free(o->url);
        free(o->file);
        for (size_t i = 0; i < o->n_headers; i++) {
                free(o->headers[i].name);
                free_secret(o->headers[i].value);
                free(o->headers[i].file);
        }
        free(o->ca_file);
        free(o->host);
        free(c->state_dir);
        free(c->classify_patterns);
        free(c->metrics_textfile);
        free(c->pmta_config);
        memset(c, 0, sizeof *c);
}

/* --- describe ----------------------------------------------------------- */

static const char *or_empty(const char *s)
{
        return s ? s : "";
}

static const char *yes_no(bool b)
{
        return b ? "yes" : "no";
}

/* A URL's user information ("user:password@") is a credential too. */
static void print_url(FILE *out, const char *url)
{
        const char *auth = strstr(url, "://");
        if (!auth) {
                fputs(url, out);
                return;
        }
        auth += 3;
        size_t alen = strcspn(auth, "/?#");
        const char *at = NULL;
        for (size_t i = 0; i < alen; i++) {
                if (auth[i] == '@')
                        at = auth + i;
        }
        if (!at) {
                fputs(url, out);
                return;
        }
        fprintf(out, "%.*s****%s", (int)(auth - url), url, at);
}

void config_describe(const struct config *c, FILE *out)
{
        for (size_t i = 0; i < c->n_sources; i++) {
                const struct config_source *s = &c->sources[i];
                fprintf(out, "[source %s]\n", s->name);
                fprintf(out, "path = %s\n", or_empty(s->path));
                fprintf(out, "archive_dir = %s\n", or_empty(s->archive_dir));
                fputs("records = ", out);
                for (size_t j = 0; j < s->n_records; j++)
                        fprintf(out, "%s%s", j ? ", " : "", s->records[j]);
                fputc('\n', out);
                fprintf(out, "start_at = %s\n",
                        s->start_at == CONFIG_START_END ? "end" : "beginning");
                fprintf(out, "columns = %s\n", or_empty(s->columns));
                fprintf(out, "record_max = %zu\n\n", s->record_max);
        }
        if (c->n_sources == 0)
                fputs("; no [source] configured\n\n", out);

        const struct config_output *o = &c->output;
        fputs("[output]\n", out);
        if (o->kind == CONFIG_OUTPUT_NONE)
                fputs("; neither url nor file is set\n", out);
        fputs("url = ", out);
        if (o->url)
                print_url(out, o->url);
        fputc('\n', out);
        fprintf(out, "file = %s\n", or_empty(o->file));
        static const char *const format_names[] = {
            [CONFIG_FORMAT_BATCH] = "batch",
            [CONFIG_FORMAT_SINGLE] = "single",
            [CONFIG_FORMAT_AUTO] = "auto",
        };
        fprintf(out, "format = %s  ; %s\n", format_names[o->format],
                config_output_single(o) ? "one event per request" : "JSON arrays");
        enum config_endpoint ep = config_url_endpoint(o->url);
        if (o->format == CONFIG_FORMAT_BATCH && ep == CONFIG_ENDPOINT_WEBHOOK)
                fputs("; warning: format = batch sends JSON arrays, but Oempro's "
                      "bounce_webhook (type=pmta) is fed one event per request: use auto or "
                      "single\n",
                      out);
        if (o->kind == CONFIG_OUTPUT_URL && !config_output_single(o) &&
            ep == CONFIG_ENDPOINT_FLUENTD && o->batch_max_records > CONFIG_FLUENTD_MAX_EVENTS)
                fprintf(out,
                        "; warning: batch_max_records = %u is capped to %u events per "
                        "request for type=fluentd (more is answered 413)\n",
                        o->batch_max_records, CONFIG_FLUENTD_MAX_EVENTS);
        for (size_t i = 0; i < o->n_headers; i++) {
                const struct config_header *h = &o->headers[i];
                /* Only the name: the value is a secret, whatever its origin. */
                fprintf(out, "header = %s: ****", h->name);
                if (h->from_file)
                        fprintf(out, "  ; from %s", or_empty(h->file));
                fputc('\n', out);
        }
        fprintf(out, "batch_max_records = %u\n", o->batch_max_records);
        fprintf(out, "batch_max_bytes = %zu\n", o->batch_max_bytes);
        fprintf(out, "linger_ms = %u\n", o->linger_ms);
        fprintf(out, "timeout_s = %u\n", o->timeout_s);
        fprintf(out, "retry_max_s = %u\n", o->retry_max_s);
        fprintf(out, "gzip = %s\n", yes_no(o->gzip));
        fprintf(out, "tls_verify = %s\n", yes_no(o->tls_verify));
        fprintf(out, "ca_file = %s\n", or_empty(o->ca_file));
        fprintf(out, "include_message = %s\n", yes_no(o->include_message));
        fprintf(out, "concurrency = %u\n", o->concurrency);
        fprintf(out, "max_rate = %u\n", o->max_rate);
        fprintf(out, "max_requests_per_minute = %u\n", o->max_requests_per_minute);
        fprintf(out, "host = %s\n\n", or_empty(o->host));

        fprintf(out, "[state]\ndir = %s\n\n", or_empty(c->state_dir));

        static const char *const forward_names[] = {
            [CONFIG_FORWARD_ALL] = "all",
            [CONFIG_FORWARD_HARD] = "hard",
            [CONFIG_FORWARD_HARD_SOFT] = "hard, soft",
        };
        fprintf(out, "[classify]\npatterns = %s\nforward = %s\n\n", or_empty(c->classify_patterns),
                forward_names[c->forward]);

        unsigned lvl = (unsigned)c->log_level;
        fprintf(out, "[log]\nlevel = %s\n\n",
                lvl < sizeof level_names / sizeof level_names[0] ? level_names[lvl] : "info");

        fprintf(out, "[metrics]\ntextfile = %s\ninterval_s = %u\n", or_empty(c->metrics_textfile),
                c->metrics_interval_s);

        fprintf(out, "\n[pmta]\nconfig = %s\n", or_empty(c->pmta_config));
}

void config_error_print(const struct config_error *err, FILE *out)
{
        for (size_t i = 0; i < err->count; i++)
                fprintf(out, "%s\n", err->msg[i]);
        if (err->dropped)
                fprintf(out, "(%zu more problems not shown)\n", err->dropped);
}

bool config_source_wants(const struct config_source *src, const char *code)
{
        for (size_t i = 0; i < src->n_records; i++) {
                if (strcmp(src->records[i], code) == 0)
                        return true;
        }
        return false;
}

/* Does the URL's path end with `tail` (a trailing '/' allowed)? */
static bool path_ends(const char *path, size_t len, const char *tail)
{
        size_t n = strlen(tail);
        if (len > 0 && path[len - 1] == '/')
                len--;
        return len >= n && strncasecmp(path + len - n, tail, n) == 0;
}

enum config_endpoint config_url_endpoint(const char *url)
{
        if (!url)
                return CONFIG_ENDPOINT_OTHER;
        const char *a = strstr(url, "://");
        a = a ? a + 3 : url;
        const char *path = a + strcspn(a, "/?#");
        size_t plen = strcspn(path, "?#");
        if (path_ends(path, plen, "/api/v1/process_pmta_log_file"))
                return CONFIG_ENDPOINT_BATCH_API;
        if (!path_ends(path, plen, "/system/bounce_webhook"))
                return CONFIG_ENDPOINT_OTHER;
        /* type=fluentd among the query's parameters */
        if (path[plen] == '?') {
                const char *q = path + plen + 1;
                size_t qlen = strcspn(q, "#");
                while (qlen > 0) {
                        size_t n = strcspn(q, "&");
                        if (n > qlen)
                                n = qlen;
                        if (n == 12 && strncasecmp(q, "type=fluentd", 12) == 0)
                                return CONFIG_ENDPOINT_FLUENTD;
                        q += n;
                        qlen -= n;
                        if (qlen > 0) {
                                q++;
                                qlen--;
                        }
                }
        }
        return CONFIG_ENDPOINT_WEBHOOK;
}

const char *config_next_header_file(const struct config_output *o, size_t *i)
{
        /* the headers of one file are next to each other, in file order */
        for (; *i < o->n_headers; (*i)++) {
                const char *f = o->headers[*i].file;
                if (f && (*i == 0 || !o->headers[*i - 1].file ||
                          strcmp(f, o->headers[*i - 1].file) != 0)) {
                        (*i)++;
                        return f;
                }
        }
        return NULL;
}

bool config_output_single(const struct config_output *o)
{
        if (o->format != CONFIG_FORMAT_AUTO)
                return o->format == CONFIG_FORMAT_SINGLE;
        return config_url_endpoint(o->url) == CONFIG_ENDPOINT_WEBHOOK;
}

unsigned config_output_max_events(const struct config_output *o)
{
        if (config_output_single(o))
                return 1;
        return config_url_endpoint(o->url) == CONFIG_ENDPOINT_FLUENTD ? CONFIG_FLUENTD_MAX_EVENTS
                                                                      : 0;
}
