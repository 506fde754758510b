#include "report.h"

#include "buf.h"
#include "classes.h"
#include "classify.h"
#include "event.h"
#include "input.h"
#include "pmta_csv.h"
#include "rejects.h"
#include "replay.h"
#include "report_html.h"
#include "report_series.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#define READ_CHUNK (256 * 1024)
#define NONE_KEY   "(none)"

/* ---- a counting hash table with a fixed cap ---- */

/* Counts per class of bounce; the domain and text tables use only one. */
/* In the series' order: they take these indexes as they are. */
enum {
        K_HARD = SERIES_HARD,
        K_SOFT = SERIES_SOFT,
        K_NONE = SERIES_NONE,
        K_CLASSES = SERIES_CLASSES
};

struct tally_entry {
        uint64_t hash;
        uint32_t key_off, key_len; /* in the tally's text */
        uint32_t ex_off, ex_len;   /* the first original seen, for texts */
        uint64_t n[K_CLASSES];
};

/* Open addressing with linear probing. The slot array is sized once for the
 * cap at under half full, so probes stay short and it never rehashes; the
 * entries and the key bytes grow with use up to their own ceilings. A key
 * that finds the table full is counted in other[]: memory is bounded by the
 * cap whatever the input holds. */
struct tally {
        uint32_t *slots; /* entry index + 1; 0 is empty */
        size_t mask;
        struct tally_entry *ents;
        size_t n, alloc, max;
        struct buf text; /* keys and examples */
        uint64_t other[K_CLASSES];
};

static int tally_init(struct tally *t, size_t max, size_t bytes_per_key)
{
        memset(t, 0, sizeof *t);
        size_t nslots = 16;
        while (nslots < 2 * max)
                nslots *= 2;
        t->slots = calloc(nslots, sizeof *t->slots);
        if (!t->slots)
                return -1;
        t->mask = nslots - 1;
        t->max = max;
        buf_init(&t->text, max * bytes_per_key);
        return 0;
}

static void tally_free(struct tally *t)
{
        free(t->slots);
        free(t->ents);
        buf_free(&t->text);
        memset(t, 0, sizeof *t);
}

static const char *tally_key(const struct tally *t, const struct tally_entry *e)
{
        return t->text.data + e->key_off;
}

/* Count one under class k. ex (may be NULL) is kept with a new key. Returns
 * 1 + the index of the entry counted (the key's id), 0 when the table was
 * full and it went to other[], or -1 when memory ran out (so that results
 * OR'ed together are negative when one failed). */
static int tally_add(struct tally *t, const char *key, size_t klen, const char *ex, size_t exlen,
                     int k)
{
        uint64_t h = XXH3_64bits(key, klen);
        size_t i = (size_t)h & t->mask;
        for (;;) {
                uint32_t s = t->slots[i];
                if (s == 0)
                        break;
                struct tally_entry *e = &t->ents[s - 1];
                if (e->hash == h && e->key_len == klen &&
                    memcmp(t->text.data + e->key_off, key, klen) == 0) {
                        e->n[k]++;
                        return (int)(s - 1) + 1;
                }
                i = (i + 1) & t->mask;
        }
        if (t->n == t->max) {
                t->other[k]++;
                return 0;
        }
        if (t->n == t->alloc) {
                size_t na = t->alloc ? t->alloc * 2 : 64;
                if (na > t->max)
                        na = t->max;
                struct tally_entry *ne = realloc(t->ents, na * sizeof *ne);
                if (!ne)
                        return -1;
                t->ents = ne;
                t->alloc = na;
        }
        struct tally_entry *e = &t->ents[t->n];
        memset(e, 0, sizeof *e);
        e->hash = h;
        e->key_off = (uint32_t)t->text.len;
        e->key_len = (uint32_t)klen;
        /* a NUL after each string so keys can be printed as they are */
        if (buf_append(&t->text, key, klen) < 0 || buf_putc(&t->text, '\0') < 0)
                return -1;
        e->ex_off = (uint32_t)t->text.len;
        e->ex_len = ex ? (uint32_t)exlen : 0;
        if (ex && (buf_append(&t->text, ex, exlen) < 0 || buf_putc(&t->text, '\0') < 0))
                return -1;
        e->n[k] = 1;
        t->slots[i] = (uint32_t)++t->n;
        return (int)t->n;
}

static uint64_t weight(const struct tally_entry *e, int k)
{
        return k < K_CLASSES ? e->n[k] : e->n[K_HARD] + e->n[K_SOFT] + e->n[K_NONE];
}

/* Whether a ranks before b: the larger count, then the smaller name
 * (bytewise), so equal counts come out in a stable, predictable order. */
static bool ranks_before(const struct tally *t, const struct tally_entry *a,
                         const struct tally_entry *b, int k)
{
        uint64_t wa = weight(a, k), wb = weight(b, k);
        if (wa != wb)
                return wa > wb;
        size_t m = a->key_len < b->key_len ? a->key_len : b->key_len;
        int c = memcmp(tally_key(t, a), tally_key(t, b), m);
        return c != 0 ? c < 0 : a->key_len < b->key_len;
}

/* The `limit` entries with the largest count of k (k == K_CLASSES: all
 * classes together) into out, best first; returns how many. Insertion into
 * a short sorted array: O(entries * limit), and no allocation. */
static size_t tally_rank(const struct tally *t, int k, const struct tally_entry **out, size_t limit)
{
        size_t n = 0;
        for (size_t i = 0; i < t->n; i++) {
                const struct tally_entry *e = &t->ents[i];
                if (weight(e, k) == 0)
                        continue;
                if (n == limit && !ranks_before(t, e, out[n - 1], k))
                        continue;
                size_t j = n < limit ? n++ : n - 1;
                while (j > 0 && ranks_before(t, e, out[j - 1], k)) {
                        out[j] = out[j - 1];
                        j--;
                }
                out[j] = e;
        }
        return n;
}

/* ---- normalising diagnostic texts ---- */

static bool is_digit(unsigned char c)
{
        return c >= '0' && c <= '9';
}

static bool is_alnum(unsigned char c)
{
        return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* The characters of an address's local part as they appear in DSN texts
 * (not the whole of RFC 5322: a quote or '#' would swallow surrounding
 * words). */
static bool is_local(unsigned char c)
{
        return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-' || c == '=';
}

static bool is_domain(unsigned char c)
{
        return is_alnum(c) || c == '.' || c == '-';
}

static bool is_space(unsigned char c)
{
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static unsigned char lower(unsigned char c)
{
        return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* Drop an incomplete UTF-8 sequence left at the end by a cut. */
static size_t utf8_cut(const char *s, size_t n)
{
        size_t k = n;
        while (k > 0 && ((unsigned char)s[k - 1] & 0xC0) == 0x80 && n - k < 3)
                k--;
        if (k == 0 || (unsigned char)s[k - 1] < 0xC0)
                return n; /* ends in ASCII or stray continuation bytes: nothing to mend */
        unsigned char lead = (unsigned char)s[k - 1];
        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
        return n - (k - 1) >= need ? n : k - 1;
}

size_t report_normalise_text(const char *text, size_t n, char *out, size_t cap)
{
        const unsigned char *s = (const unsigned char *)text;
        size_t o = 0, i = 0;
        bool space = false, cut = false;
        while (i < n) {
                unsigned char c = s[i];
                if (is_space(c)) {
                        space = o > 0;
                        i++;
                        continue;
                }
                if (space) {
                        if (o == cap) {
                                cut = true;
                                break;
                        }
                        out[o++] = ' ';
                        space = false;
                }
                if (!is_local(c)) {
                        if (o == cap) {
                                cut = true;
                                break;
                        }
                        out[o++] = (char)lower(c);
                        i++;
                        continue;
                }
                size_t j = i;
                while (j < n && is_local(s[j]))
                        j++;
                if (j < n && s[j] == '@') {
                        size_t k = j + 1;
                        bool alnum = false;
                        while (k < n && is_domain(s[k]))
                                alnum |= is_alnum(s[k++]);
                        /* a sentence's full stop is not part of the domain */
                        while (k > j + 1 && (s[k - 1] == '.' || s[k - 1] == '-'))
                                k--;
                        if (alnum) {
                                /* "<a@x.com>" and "a@x.com" read the same */
                                bool angled = o > 0 && out[o - 1] == '<' && k < n && s[k] == '>';
                                if (angled)
                                        o--;
                                if (cap - o < 6) {
                                        cut = true;
                                        break;
                                }
                                memcpy(out + o, "<addr>", 6);
                                o += 6;
                                i = k + (angled ? 1 : 0);
                                continue;
                        }
                }
                while (i < j) {
                        if (o == cap) {
                                cut = true;
                                break;
                        }
                        if (is_digit(s[i])) {
                                out[o++] = '#';
                                while (i < j && is_digit(s[i]))
                                        i++;
                        } else {
                                out[o++] = (char)lower(s[i++]);
                        }
                }
                if (cut)
                        break;
        }
        return cut ? utf8_cut(out, o) : o;
}

/* ---- the run ---- */

struct rep {
        const struct logger *log;
        struct bounce_classes classes;
        /* per file */
        const char *path;
        uint64_t rejects_logged;
        uint64_t gen; /* header generation the columns below are for */
        long col_time, col_rcpt, col_cat, col_diag;
        /* totals */
        uint64_t files, files_failed, bytes;
        struct pmta_stats parsed;         /* over every file */
        uint64_t n_b, n_rb, n_f, n_other; /* records read, by type */
        bool have_time;
        int64_t t_min, t_max;
        uint64_t time_bad;
        uint64_t bounces[K_CLASSES];
        struct tally cats, domains, texts;
        /* --json and --html: the time series, and every bounce's domain
         * (the domain table above has the hard ones) */
        struct report_series *series;
        struct tally bdomains;
        char norm[REPORT_TEXT_KEY_MAX];
        const struct tally_entry *rank[REPORT_MAX_CATEGORIES];
        /* the rankings as the series' JSON and the page take them */
        struct report_key kcats[REPORT_MAX_CATEGORIES], khard[REPORT_TOP], ktexts[REPORT_TOP],
            kdoms[SERIES_TOP];
        int err; /* errno of a failure that stops the run */
};

static const struct pmta_field *cell(const struct pmta_record *rec, long col)
{
        static const struct pmta_field none = {"", 0};
        return col >= 0 ? &rec->cells[col] : &none;
}

/* rcpt's domain, lowercased, into dom; its length, 0 when there is none. */
static size_t rcpt_domain(const struct rep *r, const struct pmta_record *rec,
                          char dom[REPORT_DOMAIN_MAX])
{
        const struct pmta_field *rcpt = cell(rec, r->col_rcpt);
        const char *at = rcpt->len ? memrchr(rcpt->ptr, '@', rcpt->len) : NULL;
        size_t dn = 0;
        if (at) {
                const char *end = rcpt->ptr + rcpt->len;
                for (const char *p = at + 1; p < end && dn < REPORT_DOMAIN_MAX; p++)
                        dom[dn++] = (char)lower((unsigned char)*p);
        }
        return dn;
}

/* The tally's running total of what add returned (the key's id + 1). */
static uint64_t added_total(const struct tally *t, int added)
{
        return added > 0 ? weight(&t->ents[added - 1], K_CLASSES) : 0;
}

/* The bounce in the time series, under the ids the tables gave its
 * bounceCat (cat_added: tally_add's result) and its domain dom. */
static int count_series(struct rep *r, bool have_t, int64_t t, int k, int cat_added,
                        const char *dom, size_t dn)
{
        int dom_added = dn ? tally_add(&r->bdomains, dom, dn, NULL, 0, k)
                           : tally_add(&r->bdomains, NONE_KEY, strlen(NONE_KEY), NULL, 0, k);
        if (cat_added < 0 || dom_added < 0)
                return -1;
        series_add(r->series, have_t, t, k, cat_added > 0 ? (uint32_t)cat_added - 1 : SERIES_NO_ID,
                   added_total(&r->cats, cat_added),
                   dom_added > 0 ? (uint32_t)dom_added - 1 : SERIES_NO_ID,
                   added_total(&r->bdomains, dom_added));
        return 0;
}

static void count_bounce(struct rep *r, const struct pmta_record *rec, bool have_t, int64_t t)
{
        const char *cls = bounce_class_of(&r->classes, rec);
        int k = !cls ? K_NONE : strcmp(cls, "hard") == 0 ? K_HARD : K_SOFT;
        r->bounces[k]++;
        const struct pmta_field *cat = cell(rec, r->col_cat);
        size_t cat_len = cat->len < REPORT_TEXT_KEY_MAX ? cat->len : REPORT_TEXT_KEY_MAX;
        int rc = cat_len ? tally_add(&r->cats, cat->ptr, cat_len, NULL, 0, k)
                         : tally_add(&r->cats, NONE_KEY, strlen(NONE_KEY), NULL, 0, k);
        char dom[REPORT_DOMAIN_MAX];
        size_t dn = r->series || k == K_HARD ? rcpt_domain(r, rec, dom) : 0;
        if (r->series)
                rc |= count_series(r, have_t, t, k, rc, dom, dn);
        if (k == K_HARD) {
                if (dn)
                        rc |= tally_add(&r->domains, dom, dn, NULL, 0, K_HARD);
                else
                        rc |= tally_add(&r->domains, NONE_KEY, strlen(NONE_KEY), NULL, 0, K_HARD);
        } else if (k == K_NONE) {
                const struct pmta_field *d = cell(rec, r->col_diag);
                size_t nn = report_normalise_text(d->ptr, d->len, r->norm, sizeof r->norm);
                if (nn) {
                        size_t exn =
                            d->len < REPORT_TEXT_EXAMPLE_MAX ? d->len : REPORT_TEXT_EXAMPLE_MAX;
                        if (exn < d->len)
                                exn = utf8_cut(d->ptr, exn);
                        rc |= tally_add(&r->texts, r->norm, nn, d->ptr, exn, K_HARD);
                } else {
                        rc |= tally_add(&r->texts, NONE_KEY, strlen(NONE_KEY), "", 0, K_HARD);
                }
        }
        if (rc < 0)
                r->err = ENOMEM;
}

static void on_record(void *ctx, const struct pmta_record *rec)
{
        struct rep *r = ctx;
        if (r->err)
                return;
        const struct pmta_header *h = rec->header;
        if (h->generation != r->gen) {
                r->gen = h->generation;
                r->col_time = pmta_header_column(h, "timeLogged");
                r->col_rcpt = pmta_header_column(h, "rcpt");
                r->col_cat = pmta_header_column(h, "bounceCat");
                r->col_diag = pmta_header_column(h, "dsnDiag");
        }
        const struct pmta_field *tl = cell(rec, r->col_time);
        int64_t t = 0;
        bool have_t = tl->len && event_parse_time(tl->ptr, tl->len, &t) == 0;
        if (have_t) {
                if (!r->have_time || t < r->t_min)
                        r->t_min = t;
                if (!r->have_time || t > r->t_max)
                        r->t_max = t;
                r->have_time = true;
        } else {
                r->time_bad++;
        }
        /* the type is the first cell: the parser knows a header by it */
        const struct pmta_field *ty = &rec->cells[0];
        if (ty->len == 1 && ty->ptr[0] == 'f') {
                r->n_f++;
        } else if ((ty->len == 1 && ty->ptr[0] == 'b') ||
                   (ty->len == 2 && memcmp(ty->ptr, "rb", 2) == 0)) {
                if (ty->len == 1)
                        r->n_b++;
                else
                        r->n_rb++;
                count_bounce(r, rec, have_t, t);
        } else {
                r->n_other++;
        }
}

static void on_reject(void *ctx, const struct pmta_reject *rej)
{
        struct rep *r = ctx;
        log_reject(r->log, r->path, rej, &r->rejects_logged);
}

static int read_file(struct rep *r, const char *path, const struct pmta_parser_opts *po,
                     char *chunk)
{
        char q[512];
        log_quote(q, sizeof q, path, strlen(path));
        struct input in;
        if (input_open(&in, path) < 0) {
                log_error(r->log, "cannot open file=%s error=\"%s\"", q,
                          input_strerror(errno, path));
                return -1;
        }
        r->path = path;
        r->rejects_logged = 0;
        /* generations count from 1 in every parser: forget the last file's */
        r->gen = 0;
        r->classes.generation = 0;
        struct pmta_parser *p = pmta_parser_new(po);
        int rc = -1;
        if (!p) {
                r->err = errno ? errno : ENOMEM;
                goto out;
        }
        for (;;) {
                uint64_t off = pmta_parser_next_offset(p);
                ssize_t n = input_read(&in, off, chunk, READ_CHUNK);
                if (n < 0) {
                        log_error(r->log, "cannot read file=%s offset=%llu error=\"%s\"", q,
                                  (unsigned long long)off,
                                  in.error[0] ? in.error : strerror(errno));
                        break;
                }
                int fr;
                if (n == 0) {
                        fr = pmta_parser_finish(p);
                        if (fr == PMTA_FEED_OK) {
                                rc = 0;
                                break;
                        }
                } else {
                        r->bytes += (uint64_t)n;
                        fr = pmta_parser_feed(p, chunk, (size_t)n);
                }
                if (fr < 0) {
                        r->err = ENOMEM;
                        break;
                }
                if (r->err)
                        break;
        }
        const struct pmta_stats *st = pmta_parser_stats(p);
        pmta_stats_merge(&r->parsed, st);
        log_info(r->log, "read file=%s records=%llu filtered=%llu rejected=%llu", q,
                 (unsigned long long)st->records, (unsigned long long)st->filtered,
                 (unsigned long long)st->rejected);
        pmta_parser_free(p);
out:
        input_close(&in);
        return rc;
}

/* ---- printing ---- */

/* The `limit` entries with the largest count of k (K_CLASSES: all), ranked,
 * as the series and the page take them; how many. */
static size_t rank_keys(struct rep *r, const struct tally *t, int k, struct report_key *out,
                        size_t limit)
{
        size_t n = tally_rank(t, k, r->rank, limit);
        for (size_t i = 0; i < n; i++) {
                const struct tally_entry *e = r->rank[i];
                out[i] = (struct report_key){
                    .key = tally_key(t, e),
                    .len = e->key_len,
                    .ex = e->ex_len ? t->text.data + e->ex_off : "",
                    .ex_len = e->ex_len,
                    .id = (uint32_t)(e - t->ents),
                    .n = {e->n[K_HARD], e->n[K_SOFT], e->n[K_NONE]},
                };
        }
        return n;
}

static uint64_t weight_other(const struct tally *t)
{
        return t->other[K_HARD] + t->other[K_SOFT] + t->other[K_NONE];
}

/* A string as a JSON literal (invalid UTF-8 replaced, controls escaped). */
static void put_json(FILE *out, const char *s, size_t n)
{
        char tmp[6 * (REPORT_TEXT_KEY_MAX + 1) + 2];
        if (n > REPORT_TEXT_KEY_MAX)
                n = REPORT_TEXT_KEY_MAX;
        fwrite(tmp, 1, (size_t)(event_json_string(tmp, s, n) - tmp), out);
}

/* A string for a terminal: invalid UTF-8 replaced, control bytes (a
 * multi-line diagnostic, an escape sequence in a hostile file) shown as
 * spaces so a line of the table stays one line. */
static void put_text(FILE *out, const char *s, size_t n)
{
        char tmp[3 * (REPORT_TEXT_KEY_MAX + 1)];
        if (n > REPORT_TEXT_KEY_MAX)
                n = REPORT_TEXT_KEY_MAX;
        size_t m = event_utf8_sanitize(tmp, s, n);
        for (size_t i = 0; i < m; i++) {
                if ((unsigned char)tmp[i] < 0x20 || tmp[i] == 0x7f)
                        tmp[i] = ' ';
        }
        fwrite(tmp, 1, m, out);
}

static void time_str(int64_t t, char *out, size_t size)
{
        event_format_time(t, out, size);
}

static int cmp_types(const void *a, const void *b)
{
        const struct pmta_type_count *x = a, *y = b;
        if (x->count != y->count)
                return x->count > y->count ? -1 : 1;
        return strcmp(x->type, y->type);
}

static void print_json(struct rep *r, FILE *out)
{
        char t0[40], t1[40];
        fprintf(out, "{\n  \"files\": {\"read\": %llu, \"failed\": %llu},\n",
                (unsigned long long)r->files, (unsigned long long)r->files_failed);
        if (r->have_time) {
                time_str(r->t_min, t0, sizeof t0);
                time_str(r->t_max, t1, sizeof t1);
                fprintf(out, "  \"time\": {\"first\": \"%s\", \"last\": \"%s\", ", t0, t1);
        } else {
                fputs("  \"time\": {\"first\": null, \"last\": null, ", out);
        }
        fprintf(out, "\"unparsed\": %llu},\n", (unsigned long long)r->time_bad);
        fprintf(out,
                "  \"records\": {\"read\": %llu, \"not_selected\": %llu, \"rejected\": %llu, "
                "\"b\": %llu, \"rb\": %llu, \"f\": %llu, \"other\": %llu},\n",
                (unsigned long long)r->parsed.records, (unsigned long long)r->parsed.filtered,
                (unsigned long long)r->parsed.rejected, (unsigned long long)r->n_b,
                (unsigned long long)r->n_rb, (unsigned long long)r->n_f,
                (unsigned long long)r->n_other);
        fputs("  \"types\": [", out);
        for (size_t i = 0; i < r->parsed.ntypes; i++) {
                fputs(i ? ",\n    {\"type\": " : "\n    {\"type\": ", out);
                put_json(out, r->parsed.types[i].type, strlen(r->parsed.types[i].type));
                fprintf(out, ", \"rows\": %llu, \"selected\": %s}",
                        (unsigned long long)r->parsed.types[i].count,
                        r->parsed.types[i].forwarded ? "true" : "false");
        }
        fprintf(out, "%s],\n  \"other_types\": %llu,\n", r->parsed.ntypes ? "\n  " : "",
                (unsigned long long)r->parsed.other_types);
        fprintf(out,
                "  \"bounces\": {\"total\": %llu, \"hard\": %llu, \"soft\": %llu, "
                "\"unclassified\": %llu},\n",
                (unsigned long long)(r->bounces[K_HARD] + r->bounces[K_SOFT] + r->bounces[K_NONE]),
                (unsigned long long)r->bounces[K_HARD], (unsigned long long)r->bounces[K_SOFT],
                (unsigned long long)r->bounces[K_NONE]);

        const struct tally_entry **rank = r->rank;
        size_t n = tally_rank(&r->cats, K_CLASSES, rank, REPORT_MAX_CATEGORIES);
        fputs("  \"categories\": [", out);
        for (size_t i = 0; i < n; i++) {
                const struct tally_entry *e = rank[i];
                fputs(i ? ",\n    {\"bounceCat\": " : "\n    {\"bounceCat\": ", out);
                put_json(out, tally_key(&r->cats, e), e->key_len);
                fprintf(out,
                        ", \"count\": %llu, \"hard\": %llu, \"soft\": %llu, \"unclassified\": "
                        "%llu}",
                        (unsigned long long)weight(e, K_CLASSES), (unsigned long long)e->n[K_HARD],
                        (unsigned long long)e->n[K_SOFT], (unsigned long long)e->n[K_NONE]);
        }
        const uint64_t *co = r->cats.other;
        fprintf(out,
                "%s],\n  \"categories_other\": {\"count\": %llu, \"hard\": %llu, \"soft\": %llu, "
                "\"unclassified\": %llu},\n",
                n ? "\n  " : "", (unsigned long long)(co[K_HARD] + co[K_SOFT] + co[K_NONE]),
                (unsigned long long)co[K_HARD], (unsigned long long)co[K_SOFT],
                (unsigned long long)co[K_NONE]);

        const struct tally_entry *top[REPORT_TOP];
        n = tally_rank(&r->domains, K_HARD, top, REPORT_TOP);
        fprintf(out, "  \"hard_domains\": {\"distinct\": %zu, \"other\": %llu, \"top\": [",
                r->domains.n, (unsigned long long)r->domains.other[K_HARD]);
        for (size_t i = 0; i < n; i++) {
                fputs(i ? ",\n    {\"domain\": " : "\n    {\"domain\": ", out);
                put_json(out, tally_key(&r->domains, top[i]), top[i]->key_len);
                fprintf(out, ", \"hard\": %llu}", (unsigned long long)top[i]->n[K_HARD]);
        }
        fprintf(out, "%s]},\n", n ? "\n  " : "");

        n = tally_rank(&r->texts, K_HARD, top, REPORT_TOP);
        fprintf(out, "  \"unclassified_texts\": {\"distinct\": %zu, \"other\": %llu, \"top\": [",
                r->texts.n, (unsigned long long)r->texts.other[K_HARD]);
        for (size_t i = 0; i < n; i++) {
                fputs(i ? ",\n    {\"text\": " : "\n    {\"text\": ", out);
                put_json(out, tally_key(&r->texts, top[i]), top[i]->key_len);
                fprintf(out,
                        ", \"count\": %llu, \"example\": ", (unsigned long long)top[i]->n[K_HARD]);
                put_json(out, r->texts.text.data + top[i]->ex_off, top[i]->ex_len);
                fputc('}', out);
        }
        fprintf(out, "%s]}", n ? "\n  " : "");
        if (r->series) {
                fputs(",\n", out);
                size_t nc = rank_keys(r, &r->cats, K_CLASSES, r->kcats, REPORT_MAX_CATEGORIES);
                size_t nd = rank_keys(r, &r->bdomains, K_CLASSES, r->kdoms, SERIES_TOP);
                series_print_json(r->series, r->kcats, nc, r->kdoms, nd, out);
        }
        fputs("\n}\n", out);
}

static int write_html(struct rep *r, const struct report_opts *o, const char *const *files,
                      size_t nfiles)
{
        struct report_page p = {
            .command = o->command,
            .files = files,
            .nfiles = nfiles,
            .files_read = r->files,
            .files_failed = r->files_failed,
            .have_time = r->have_time,
            .t_min = r->t_min,
            .t_max = r->t_max,
            .time_bad = r->time_bad,
            .parsed = &r->parsed,
            .n_b = r->n_b,
            .n_rb = r->n_rb,
            .n_f = r->n_f,
            .n_other = r->n_other,
            .cats = r->kcats,
            .ncats = rank_keys(r, &r->cats, K_CLASSES, r->kcats, REPORT_MAX_CATEGORIES),
            .hard = r->khard,
            .nhard = rank_keys(r, &r->domains, K_HARD, r->khard, REPORT_TOP),
            .hard_distinct = r->domains.n,
            .hard_other = r->domains.other[K_HARD],
            .texts = r->ktexts,
            .ntexts = rank_keys(r, &r->texts, K_HARD, r->ktexts, REPORT_TOP),
            .texts_distinct = r->texts.n,
            .texts_other = r->texts.other[K_HARD],
            .doms = r->kdoms,
            .ndoms = rank_keys(r, &r->bdomains, K_CLASSES, r->kdoms, SERIES_TOP),
            .doms_distinct = r->bdomains.n,
            .doms_other = weight_other(&r->bdomains),
            .top = REPORT_TOP,
            .series = r->series,
        };
        memcpy(p.bounces, r->bounces, sizeof p.bounces);
        memcpy(p.cats_other, r->cats.other, sizeof p.cats_other);
        return report_html_write_file(&p, o->html);
}

static void print_table(struct rep *r, FILE *out)
{
        char t0[40], t1[40];
        fprintf(out, "files       %llu read, %llu failed\n", (unsigned long long)r->files,
                (unsigned long long)r->files_failed);
        if (r->have_time) {
                time_str(r->t_min, t0, sizeof t0);
                time_str(r->t_max, t1, sizeof t1);
                fprintf(out, "time        %s .. %s", t0, t1);
        } else {
                fputs("time        -", out);
        }
        fprintf(out, " (%llu without a usable timeLogged)\n", (unsigned long long)r->time_bad);
        fprintf(out,
                "records     %llu read (b %llu, rb %llu, f %llu, other %llu), %llu not "
                "selected, %llu rejected\n",
                (unsigned long long)r->parsed.records, (unsigned long long)r->n_b,
                (unsigned long long)r->n_rb, (unsigned long long)r->n_f,
                (unsigned long long)r->n_other, (unsigned long long)r->parsed.filtered,
                (unsigned long long)r->parsed.rejected);

        fprintf(out, "\n%-24s %12s  %s\n", "type", "rows", "selected");
        for (size_t i = 0; i < r->parsed.ntypes; i++) {
                size_t len = strlen(r->parsed.types[i].type);
                put_text(out, r->parsed.types[i].type, len);
                fprintf(out, "%*s %12llu  %s\n", (int)(24 - len), "",
                        (unsigned long long)r->parsed.types[i].count,
                        r->parsed.types[i].forwarded ? "yes" : "no");
        }
        if (r->parsed.other_types)
                fprintf(out, "%-24s %12llu\n", "(other)",
                        (unsigned long long)r->parsed.other_types);

        fprintf(out, "\n%-24s %12s %12s %12s %12s\n", "bounceCat", "bounces", "hard", "soft",
                "unclassified");
        const struct tally_entry **rank = r->rank;
        size_t n = tally_rank(&r->cats, K_CLASSES, rank, REPORT_MAX_CATEGORIES);
        for (size_t i = 0; i < n; i++) {
                const struct tally_entry *e = rank[i];
                put_text(out, tally_key(&r->cats, e), e->key_len);
                fprintf(out, "%*s %12llu %12llu %12llu %12llu\n",
                        (int)(e->key_len < 24 ? 24 - e->key_len : 0), "",
                        (unsigned long long)weight(e, K_CLASSES), (unsigned long long)e->n[K_HARD],
                        (unsigned long long)e->n[K_SOFT], (unsigned long long)e->n[K_NONE]);
        }
        const uint64_t *co = r->cats.other;
        if (co[K_HARD] + co[K_SOFT] + co[K_NONE])
                fprintf(out, "%-24s %12llu %12llu %12llu %12llu\n", "(other)",
                        (unsigned long long)(co[K_HARD] + co[K_SOFT] + co[K_NONE]),
                        (unsigned long long)co[K_HARD], (unsigned long long)co[K_SOFT],
                        (unsigned long long)co[K_NONE]);
        fprintf(out, "%-24s %12llu %12llu %12llu %12llu\n", "total",
                (unsigned long long)(r->bounces[K_HARD] + r->bounces[K_SOFT] + r->bounces[K_NONE]),
                (unsigned long long)r->bounces[K_HARD], (unsigned long long)r->bounces[K_SOFT],
                (unsigned long long)r->bounces[K_NONE]);

        const struct tally_entry *top[REPORT_TOP];
        n = tally_rank(&r->domains, K_HARD, top, REPORT_TOP);
        fprintf(out, "\ntop %d domains by hard bounces (%zu distinct)\n%12s  %s\n", REPORT_TOP,
                r->domains.n, "hard", "domain");
        for (size_t i = 0; i < n; i++) {
                fprintf(out, "%12llu  ", (unsigned long long)top[i]->n[K_HARD]);
                put_text(out, tally_key(&r->domains, top[i]), top[i]->key_len);
                fputc('\n', out);
        }
        if (r->domains.other[K_HARD])
                fprintf(out, "%12llu  (other)\n", (unsigned long long)r->domains.other[K_HARD]);

        n = tally_rank(&r->texts, K_HARD, top, REPORT_TOP);
        fprintf(out, "\ntop %d unclassified dsnDiag texts (%zu distinct)\n%12s  %s\n", REPORT_TOP,
                r->texts.n, "bounces", "text (e.g. example)");
        for (size_t i = 0; i < n; i++) {
                fprintf(out, "%12llu  ", (unsigned long long)top[i]->n[K_HARD]);
                put_text(out, tally_key(&r->texts, top[i]), top[i]->key_len);
                fprintf(out, "\n%12s  e.g. ", "");
                put_text(out, r->texts.text.data + top[i]->ex_off, top[i]->ex_len);
                fputc('\n', out);
        }
        if (r->texts.other[K_HARD])
                fprintf(out, "%12llu  (other)\n", (unsigned long long)r->texts.other[K_HARD]);
}

/* ---- the command ---- */

int report_command(const struct config *cfg, const struct report_opts *o, const char *const *args,
                   size_t nargs, FILE *out, const struct logger *log)
{
        struct timespec ts0, ts1;
        clock_gettime(CLOCK_MONOTONIC, &ts0);
        /* the record types the daemon would forward: those of the
         * configured sources together, as replay takes them */
        const char *codes[16];
        size_t record_max;
        size_t ncodes = config_record_types(cfg, codes, 16, &record_max);
        char cerr[1024];
        struct classifier *classifier = NULL;
        if (classifier_load(&classifier, cfg->classify_patterns, cerr, sizeof cerr) < 0) {
                log_error(log, "%s", cerr);
                return 1;
        }
        struct rep *r = calloc(1, sizeof *r);
        char *chunk = malloc(READ_CHUNK);
        struct archives in = {0};
        int status = 1;
        if (!r || !chunk)
                goto out_nomem;
        r->log = log;
        bounce_classes_init(&r->classes, classifier);
        if (tally_init(&r->cats, REPORT_MAX_CATEGORIES, REPORT_TEXT_KEY_MAX + 1) < 0 ||
            tally_init(&r->domains, REPORT_MAX_DOMAINS, REPORT_DOMAIN_MAX + 1) < 0 ||
            tally_init(&r->texts, REPORT_MAX_TEXTS,
                       REPORT_TEXT_KEY_MAX + REPORT_TEXT_EXAMPLE_MAX + 2) < 0)
                goto out_nomem;
        /* the text report draws nothing: it pays nothing for the series */
        if (o->json || o->html) {
                r->series = malloc(sizeof *r->series);
                if (!r->series ||
                    tally_init(&r->bdomains, REPORT_MAX_DOMAINS, REPORT_DOMAIN_MAX + 1) < 0)
                        goto out_nomem;
                if (series_init(r->series, REPORT_MAX_CATEGORIES, REPORT_MAX_DOMAINS) < 0) {
                        free(r->series);
                        r->series = NULL;
                        goto out_nomem;
                }
        }

        bool bad_paths = archives_expand(args, nargs, &in, log) < 0;
        bad_paths |= in.had_errors;
        ssize_t n = (ssize_t)in.n;
        if (n == 0)
                log_warn(log, "no accounting file to report on");
        struct pmta_parser_opts po = {
            .record_max = record_max,
            .types = ncodes ? codes : NULL,
            .ntypes = ncodes,
            .on_record = on_record,
            .on_reject = on_reject,
            .ctx = r,
        };
        for (ssize_t i = 0; i < n && !r->err; i++) {
                r->files++;
                if (read_file(r, in.v[i].path, &po, chunk) < 0)
                        r->files_failed++;
        }
        if (r->err) {
                log_error(log, "report failed error=\"%s\"", strerror(r->err));
                goto out;
        }

        qsort(r->parsed.types, r->parsed.ntypes, sizeof r->parsed.types[0], cmp_types);
        if (o->html) {
                /* the files as read, for the page */
                const char **files = calloc(in.n ? in.n : 1, sizeof *files);
                if (!files)
                        goto out_nomem;
                for (size_t i = 0; i < in.n; i++)
                        files[i] = in.v[i].path;
                int hr = write_html(r, o, files, in.n);
                free(files);
                if (hr < 0) {
                        char q[512];
                        log_quote(q, sizeof q, o->html, strlen(o->html));
                        log_error(log, "cannot write the page file=%s error=\"%s\"", q,
                                  strerror(errno));
                        goto out;
                }
        } else {
                if (o->json)
                        print_json(r, out);
                else
                        print_table(r, out);
                if (fflush(out) != 0 || ferror(out)) {
                        log_error(log, "cannot write the report error=\"%s\"", strerror(errno));
                        goto out;
                }
        }
        clock_gettime(CLOCK_MONOTONIC, &ts1);
        double secs = (double)(ts1.tv_sec - ts0.tv_sec) + (double)(ts1.tv_nsec - ts0.tv_nsec) / 1e9;
        archives_print_skipped(&in, log->out);
        uint64_t rows = r->parsed.records + r->parsed.filtered + r->parsed.rejected;
        fprintf(log->out,
                "summary: files=%llu files_failed=%llu records=%llu not_selected=%llu "
                "rejected=%llu bytes=%llu seconds=%.3f records_per_s=%.0f\n",
                (unsigned long long)r->files, (unsigned long long)r->files_failed,
                (unsigned long long)r->parsed.records, (unsigned long long)r->parsed.filtered,
                (unsigned long long)r->parsed.rejected, (unsigned long long)r->bytes, secs,
                secs > 0 ? (double)rows / secs : 0.0);
        status = n < 0 || bad_paths || r->files_failed || r->parsed.rejected ? 1 : 0;
        goto out;
out_nomem:
        log_error(log, "report failed error=\"%s\"", strerror(ENOMEM));
out:
        archives_free(&in);
        if (r) {
                tally_free(&r->cats);
                tally_free(&r->domains);
                tally_free(&r->texts);
                tally_free(&r->bdomains);
                if (r->series)
                        series_free(r->series);
                free(r->series);
        }
        free(r);
        free(chunk);
        classifier_free(classifier);
        return status;
}
