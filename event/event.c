#include "event.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Keys the event sets itself: a column with one of these names is renamed
 * so that no key appears twice. */
static const char *const reserved_keys[] = {
    "type",    "@version", "@timestamp",  "host",       "path",
    "message", "eventId",  "bounceClass", "parseError", "tags",
};

/* Bytes that go into a JSON string as they are: printable ASCII except the
 * quote and the backslash. DEL is printable to jansson, so to us too. */
static const unsigned char json_plain[256] = {
    ['\x20'] = 1, ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1,    ['\''] = 1, ['('] = 1,
    [')'] = 1,    ['*'] = 1, ['+'] = 1, [','] = 1, ['-'] = 1, ['.'] = 1,    ['/'] = 1,  ['0'] = 1,
    ['1'] = 1,    ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,    ['7'] = 1,  ['8'] = 1,
    ['9'] = 1,    [':'] = 1, [';'] = 1, ['<'] = 1, ['='] = 1, ['>'] = 1,    ['?'] = 1,  ['@'] = 1,
    ['A'] = 1,    ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,    ['G'] = 1,  ['H'] = 1,
    ['I'] = 1,    ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,    ['O'] = 1,  ['P'] = 1,
    ['Q'] = 1,    ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1,    ['W'] = 1,  ['X'] = 1,
    ['Y'] = 1,    ['Z'] = 1, ['['] = 1, [']'] = 1, ['^'] = 1, ['_'] = 1,    ['`'] = 1,  ['a'] = 1,
    ['b'] = 1,    ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,    ['h'] = 1,  ['i'] = 1,
    ['j'] = 1,    ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1,    ['p'] = 1,  ['q'] = 1,
    ['r'] = 1,    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1,    ['x'] = 1,  ['y'] = 1,
    ['z'] = 1,    ['{'] = 1, ['|'] = 1, ['}'] = 1, ['~'] = 1, ['\x7f'] = 1,
};

/* Length of the valid UTF-8 sequence at s (2 to 4), or 0 when s[0] does not
 * start one: overlong forms, surrogates and code points past U+10FFFF are
 * invalid, as they are to jansson. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
        unsigned char c = s[0];
        if (c >= 0xC2 && c <= 0xDF)
                return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
        if (c >= 0xE0 && c <= 0xEF) {
                if (n < 3 || (s[2] & 0xC0) != 0x80)
                        return 0;
                unsigned char lo = 0x80, hi = 0xBF;
                if (c == 0xE0)
                        lo = 0xA0;
                else if (c == 0xED)
                        hi = 0x9F;
                return s[1] >= lo && s[1] <= hi ? 3 : 0;
        }
        if (c >= 0xF0 && c <= 0xF4) {
                if (n < 4 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
                        return 0;
                unsigned char lo = 0x80, hi = 0xBF;
                if (c == 0xF0)
                        lo = 0x90;
                else if (c == 0xF4)
                        hi = 0x8F;
                return s[1] >= lo && s[1] <= hi ? 4 : 0;
        }
        return 0;
}

/* Copy s[i..n) to d for as long as the bytes go into a JSON string as they
 * are: none below 0x20 or above 0x7f, no quote, no backslash. Returns the
 * index of the first byte that needs attention (or n), *dp advanced past the
 * copy. While 16 bytes or more are left it stores whole blocks, past the
 * copy too: event_json_string's destination has room for 6 bytes a byte,
 * and what follows overwrites them. */
static inline size_t copy_plain(char **dp, const unsigned char *s, size_t i, size_t n)
{
        char *d = *dp;
        size_t j = i;
#if defined(__SSE2__)
        /* Every x86-64 has SSE2. A signed compare with 0x20 flags the
         * control bytes and also every byte above 0x7f, which is negative
         * as a signed char. */
        if (n - j >= 16) {
                const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
                const __m128i space = _mm_set1_epi8(0x20);
#define NEEDS(v)                                                                                   \
        ((unsigned)_mm_movemask_epi8(                                                              \
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),        \
                         _mm_cmplt_epi8(v, space))))
                while (n - j >= 16) {
                        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + j));
                        unsigned m = NEEDS(v);
                        _mm_storeu_si128((__m128i *)(void *)d, v);
                        if (m) {
                                unsigned k = (unsigned)__builtin_ctz(m);
                                *dp = d + k;
                                return j + k;
                        }
                        d += 16;
                        j += 16;
                }
                if (j < n) {
                        /* the last bytes: the 16 that end the string, those
                         * before j shifted out of the mask */
                        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + n - 16));
                        unsigned m = NEEDS(v) >> (16 - (n - j));
                        size_t k = m ? (size_t)__builtin_ctz(m) : n - j;
                        memcpy(d, s + j, k);
                        d += k;
                        j += k;
                }
#undef NEEDS
                *dp = d;
                return j;
        }
#endif
        /* Eight bytes at a time while none needs attention, then one. */
        while (n - j >= 8) {
                uint64_t w;
                memcpy(&w, s + j, 8);
                const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
                uint64_t ctl = (w - ones * 0x20) & ~w;
                uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
                uint64_t bad = (ctl | w | ((q - ones) & ~q) | ((bs - ones) & ~bs)) & highs;
                if (bad)
                        break;
                memcpy(d, s + j, 8);
                d += 8;
                j += 8;
        }
        while (j < n && json_plain[s[j]])
                *d++ = (char)s[j++];
        *dp = d;
        return j;
}

char *event_json_string(char *d, const char *src, size_t n)
{
        static const char hex[] = "0123456789ABCDEF";
        const unsigned char *s = (const unsigned char *)src;
        *d++ = '"';
        size_t i = 0;
        while (i < n) {
                i = copy_plain(&d, s, i, n);
                if (i >= n)
                        break;
                unsigned char c = s[i];
                if (c < 0x80) {
                        *d++ = '\\';
                        switch (c) {
                        case '"':
                                *d++ = '"';
                                break;
                        case '\\':
                                *d++ = '\\';
                                break;
                        case '\b':
                                *d++ = 'b';
                                break;
                        case '\f':
                                *d++ = 'f';
                                break;
                        case '\n':
                                *d++ = 'n';
                                break;
                        case '\r':
                                *d++ = 'r';
                                break;
                        case '\t':
                                *d++ = 't';
                                break;
                        default:
                                *d++ = 'u';
                                *d++ = '0';
                                *d++ = '0';
                                *d++ = hex[c >> 4];
                                *d++ = hex[c & 15];
                                break;
                        }
                        i++;
                        continue;
                }
                size_t k = utf8_len(s + i, n - i);
                if (k) {
                        memcpy(d, s + i, k);
                        d += k;
                        i += k;
                } else {
                        memcpy(d, "\xEF\xBF\xBD", 3);
                        d += 3;
                        i++;
                }
        }
        *d++ = '"';
        return d;
}

size_t event_utf8_sanitize(char *dst, const char *src, size_t n)
{
        const unsigned char *s = (const unsigned char *)src;
        size_t o = 0, i = 0;
        while (i < n) {
                if (s[i] < 0x80) {
                        dst[o++] = (char)s[i++];
                        continue;
                }
                size_t k = utf8_len(s + i, n - i);
                if (k) {
                        memcpy(dst + o, s + i, k);
                        o += k;
                        i += k;
                } else {
                        memcpy(dst + o, "\xEF\xBF\xBD", 3);
                        o += 3;
                        i++;
                }
        }
        return o;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * algorithm): no dependence on the process's time zone. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        unsigned yoe = (unsigned)(y - era * 400);
        unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
        unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
        z += 719468;
        int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        unsigned doe = (unsigned)(z - era * 146097);
        unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        unsigned mp = (5 * doy + 2) / 153;
        *d = doy - (153 * mp + 2) / 5 + 1;
        *m = mp < 10 ? mp + 3 : mp - 9;
        *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool digits(const char *s, size_t n, int *out)
{
        int v = 0;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (s[i] - '0');
        }
        *out = v;
        return true;
}

int event_parse_time(const char *s, size_t n, int64_t *out)
{
        if (n >= 1 && n <= 11) {
                int64_t v = 0;
                size_t i = 0;
                for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
                        v = v * 10 + (s[i] - '0');
                if (i == n) {
                        *out = v;
                        return 0;
                }
        }
        /* YYYY-MM-DD HH:MM:SS then Z, +hh, +hhmm or +hh:mm */
        int Y, M, D, h, mi, sec, oh = 0, om = 0;
        if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != ' ' && s[10] != 'T') ||
            s[13] != ':' || s[16] != ':')
                return -1;
        if (!digits(s, 4, &Y) || !digits(s + 5, 2, &M) || !digits(s + 8, 2, &D) ||
            !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &sec))
                return -1;
        const char *z = s + 19;
        size_t zn = n - 19;
        int sign = 1;
        if (zn == 1 && z[0] == 'Z') {
                /* UTC */
        } else if (zn >= 3 && (z[0] == '+' || z[0] == '-')) {
                sign = z[0] == '-' ? -1 : 1;
                if (!digits(z + 1, 2, &oh))
                        return -1;
                if (zn == 5) {
                        if (!digits(z + 3, 2, &om))
                                return -1;
                } else if (zn == 6) {
                        if (z[3] != ':' || !digits(z + 4, 2, &om))
                                return -1;
                } else if (zn != 3) {
                        return -1;
                }
        } else {
                return -1;
        }
        static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        bool leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
        if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || (M == 2 && D == 29 && !leap) ||
            h > 23 || mi > 59 || sec > 60 || oh > 23 || om > 59)
                return -1;
        int64_t t = days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400 + h * 3600 + mi * 60 + sec;
        *out = t - sign * (oh * 3600 + om * 60);
        return 0;
}

static char *put_digits(char *d, unsigned v, int width)
{
        for (int i = width - 1; i >= 0; i--) {
                d[i] = (char)('0' + v % 10);
                v /= 10;
        }
        return d + width;
}

void event_format_time(int64_t t, char *out, size_t size)
{
        int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
        int64_t rem = t - days * 86400;
        int64_t y;
        unsigned m, d;
        civil_from_days(days, &y, &m, &d);
        if (y < 0 || y > 9999 || size < 21) {
                /* outside what four digits can say: not from a real file */
                snprintf(out, size, "%04lld-%02u-%02uT%02d:%02d:%02dZ", (long long)y, m, d,
                         (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
                return;
        }
        /* by hand: this runs for every event, and printf showed in profiles */
        char *o = put_digits(out, (unsigned)y, 4);
        *o++ = '-';
        o = put_digits(o, m, 2);
        *o++ = '-';
        o = put_digits(o, d, 2);
        *o++ = 'T';
        o = put_digits(o, (unsigned)(rem / 3600), 2);
        *o++ = ':';
        o = put_digits(o, (unsigned)(rem / 60 % 60), 2);
        *o++ = ':';
        o = put_digits(o, (unsigned)(rem % 60), 2);
        *o++ = 'Z';
        *o = '\0';
}

static void hex128(XXH128_hash_t id, char out[EVENT_ID_LEN + 1])
{
        static const char hex[] = "0123456789abcdef";
        for (int i = 0; i < 16; i++) {
                out[i] = hex[(id.high64 >> (60 - 4 * i)) & 15];
                out[16 + i] = hex[(id.low64 >> (60 - 4 * i)) & 15];
        }
        out[EVENT_ID_LEN] = '\0';
}

void event_id(const struct pmta_header *h, uint64_t start, const char *raw, size_t raw_len,
              char out[EVENT_ID_LEN + 1])
{
        XXH64_hash_t hh = h ? XXH3_64bits(h->raw, h->raw_len) : 0;
        unsigned char le[8];
        for (int i = 0; i < 8; i++)
                le[i] = (unsigned char)(start >> (8 * i));
        XXH64_hash_t seed = XXH3_64bits_withSeed(le, sizeof le, hh);
        hex128(XXH3_128bits_withSeed(raw, raw_len, seed), out);
}

static bool is_reserved(const char *k)
{
        for (size_t i = 0; i < sizeof reserved_keys / sizeof reserved_keys[0]; i++) {
                if (strcmp(k, reserved_keys[i]) == 0)
                        return true;
        }
        return false;
}

void event_column_keys_free(char **keys, size_t n)
{
        if (!keys)
                return;
        for (size_t i = 0; i < n; i++)
                free(keys[i]);
        free(keys);
}

char **event_column_keys(const struct pmta_header *h)
{
        char **keys = calloc(h->ncols ? h->ncols : 1, sizeof *keys);
        if (!keys)
                return NULL;
        for (size_t i = 0; i < h->ncols; i++) {
                const struct pmta_field *f = &h->names[i];
                /* room for the sanitised name and any suffix we add */
                size_t room = 3 * f->len + 64;
                char *k = malloc(room);
                if (!k) {
                        event_column_keys_free(keys, i);
                        return NULL;
                }
                size_t len;
                if (f->len == 4 && memcmp(f->ptr, "type", 4) == 0)
                        len = (size_t)snprintf(k, room, "logType");
                else if (f->len == 0)
                        len = (size_t)snprintf(k, room, "column%zu", i + 1);
                else
                        len = event_utf8_sanitize(k, f->ptr, f->len);
                k[len] = '\0';
                /* Keys are C strings (to jansson too): a NUL in a column name
                 * becomes U+FFFD like any byte that cannot be sent as is. */
                for (size_t z = strlen(k); z < len; z = strlen(k)) {
                        memmove(k + z + 3, k + z + 1, len - z);
                        memcpy(k + z, "\xEF\xBF\xBD", 3);
                        len += 2;
                }
                /* Rename until unique; each round grows the key, so it ends. */
                for (;;) {
                        bool clash = is_reserved(k);
                        for (size_t j = 0; j < i && !clash; j++)
                                clash = strcmp(keys[j], k) == 0;
                        if (!clash)
                                break;
                        if (len + 24 >= room) {
                                char *bigger = realloc(k, room * 2);
                                if (!bigger) {
                                        free(k);
                                        event_column_keys_free(keys, i);
                                        return NULL;
                                }
                                k = bigger;
                                room *= 2;
                        }
                        len += (size_t)snprintf(k + len, room - len, "_%zu", i + 1);
                }
                keys[i] = k;
        }
        return keys;
}

struct event_encoder {
        uint64_t generation; /* of the header the cache was built for */
        size_t ncols;
        struct buf keys; /* `"key":` for each column, back to back */
        size_t *key_off; /* ncols + 1 offsets into keys */
        long time_col;   /* index of timeLogged, -1 if none */
        XXH64_hash_t header_hash;
};

struct event_encoder *event_encoder_new(void)
{
        struct event_encoder *e = calloc(1, sizeof *e);
        if (!e)
                return NULL;
        /* Keys are bounded by the header, which is bounded by record_max. */
        buf_init(&e->keys, SIZE_MAX / 8);
        e->time_col = -1;
        return e;
}

void event_encoder_free(struct event_encoder *e)
{
        if (!e)
                return;
        buf_free(&e->keys);
        free(e->key_off);
        free(e);
}

static int cache_header(struct event_encoder *e, const struct pmta_header *h)
{
        char **keys = event_column_keys(h);
        size_t *off = realloc(e->key_off, (h->ncols + 1) * sizeof *off);
        if (!keys || !off) {
                event_column_keys_free(keys, h->ncols);
                if (off)
                        e->key_off = off;
                errno = ENOMEM;
                return -1;
        }
        e->key_off = off;
        buf_reset(&e->keys);
        for (size_t i = 0; i < h->ncols; i++) {
                size_t n = strlen(keys[i]);
                off[i] = e->keys.len;
                char *d = buf_reserve(&e->keys, 6 * n + 3);
                if (!d) {
                        event_column_keys_free(keys, h->ncols);
                        return -1;
                }
                char *end = event_json_string(d, keys[i], n);
                *end++ = ':';
                buf_commit(&e->keys, (size_t)(end - d));
        }
        e->time_col = pmta_header_column(h, "timeLogged");
        off[h->ncols] = e->keys.len;
        event_column_keys_free(keys, h->ncols);
        e->ncols = h->ncols;
        e->generation = h->generation;
        e->header_hash = XXH3_64bits(h->raw, h->raw_len);
        return 0;
}

static char *put_lit(char *d, const char *s)
{
        size_t n = strlen(s);
        memcpy(d, s, n);
        return d + n;
}

/* Logstash's tags: "pmta" from its input, one more per kind from its
 * filter. The backend may route on them, so they are sent as it sent them. */
static const char *tags_json(const struct pmta_field *type)
{
        if (type && type->len == 1 && type->ptr[0] == 'b')
                return ",\"tags\":[\"pmta\",\"pmta_sync_bounce\"]";
        if (type && type->len == 2 && type->ptr[0] == 'r' && type->ptr[1] == 'b')
                return ",\"tags\":[\"pmta\",\"pmta_async_bounce\"]";
        if (type && type->len == 1 && type->ptr[0] == 'f')
                return ",\"tags\":[\"pmta\",\"pmta_fbl\"]";
        return ",\"tags\":[\"pmta\"]";
}

/* Append the fields every event ends with. The caller reserved room.
 * type is the record's type cell (NULL for a refused record). */
static char *put_trailer(char *d, const char *ts, const struct event_meta *m, const char *raw,
                         size_t raw_len, const struct pmta_field *type, const char *id)
{
        d = put_lit(d, "\"type\":\"pmta\",\"@version\":\"1\",\"@timestamp\":\"");
        d = put_lit(d, ts);
        d = put_lit(d, "\",\"host\":");
        d = event_json_string(d, m->host, strlen(m->host));
        d = put_lit(d, ",\"path\":");
        d = event_json_string(d, m->path, strlen(m->path));
        if (raw) {
                d = put_lit(d, ",\"message\":");
                d = event_json_string(d, raw, raw_len);
        }
        if (m->bounce_class) {
                d = put_lit(d, ",\"bounceClass\":");
                d = event_json_string(d, m->bounce_class, strlen(m->bounce_class));
        }
        d = put_lit(d, tags_json(type));
        d = put_lit(d, ",\"eventId\":\"");
        d = put_lit(d, id);
        *d++ = '"';
        return d;
}

/* The literal keys, the timestamp and the longest tags come to under 256
 * bytes; each string may grow 6 times when escaped. */
static size_t trailer_bound(const struct event_meta *m, size_t raw_len)
{
        size_t bc = m->bounce_class ? strlen(m->bounce_class) : 0;
        return 256 + 6 * (strlen(m->host) + strlen(m->path) + raw_len + bc) + EVENT_ID_LEN;
}

int event_encode(struct event_encoder *e, struct buf *out, const struct pmta_record *r,
                 const struct event_meta *m)
{
        const struct pmta_header *h = r->header;
        if (e->generation != h->generation && cache_header(e, h) < 0)
                return -1;

        size_t cell_bytes = 0;
        for (size_t i = 0; i < r->ncells; i++)
                cell_bytes += r->cells[i].len;
        size_t bound = 2 + e->keys.len + r->ncells * 3 + 6 * cell_bytes +
                       trailer_bound(m, m->include_message ? r->raw_len : 0);
        char *start = buf_reserve(out, bound);
        if (!start)
                return -1;

        char ts[32];
        int64_t t = m->now;
        if (e->time_col >= 0) {
                const struct pmta_field *c = &r->cells[e->time_col];
                int64_t parsed;
                if (c->len && event_parse_time(c->ptr, c->len, &parsed) == 0)
                        t = parsed;
        }
        event_format_time(t, ts, sizeof ts);

        char id[EVENT_ID_LEN + 1];
        unsigned char le[8];
        for (int i = 0; i < 8; i++)
                le[i] = (unsigned char)(r->start >> (8 * i));
        XXH128_hash_t h128 = XXH3_128bits_withSeed(
            r->raw, r->raw_len, XXH3_64bits_withSeed(le, sizeof le, e->header_hash));
        hex128(h128, id);

        char *d = start;
        *d++ = '{';
        for (size_t i = 0; i < r->ncells; i++) {
                if (r->cells[i].len == 0)
                        continue;
                size_t kl = e->key_off[i + 1] - e->key_off[i];
                memcpy(d, e->keys.data + e->key_off[i], kl);
                d += kl;
                d = event_json_string(d, r->cells[i].ptr, r->cells[i].len);
                *d++ = ',';
        }
        d = put_trailer(d, ts, m, m->include_message ? r->raw : NULL, r->raw_len,
                        r->ncells ? &r->cells[0] : NULL, id);
        *d++ = '}';
        buf_commit(out, (size_t)(d - start));
        return 0;
}

int event_encode_reject(struct buf *out, const struct pmta_reject *rej, const struct pmta_header *h,
                        const struct event_meta *meta)
{
        /* a refused record is not classified */
        struct event_meta plain = *meta;
        plain.bounce_class = NULL;
        const struct event_meta *m = &plain;
        const char *why = pmta_reject_reason_str(rej->reason);
        char *start = buf_reserve(out, trailer_bound(m, rej->raw_len) + 32 + 6 * strlen(why));
        if (!start)
                return -1;
        char ts[32], id[EVENT_ID_LEN + 1];
        event_format_time(m->now, ts, sizeof ts);
        event_id(h, rej->start, rej->raw, rej->raw_len, id);
        char *d = start;
        *d++ = '{';
        d = put_lit(d, "\"parseError\":");
        d = event_json_string(d, why, strlen(why));
        *d++ = ',';
        d = put_trailer(d, ts, m, rej->raw, rej->raw_len, NULL, id);
        *d++ = '}';
        buf_commit(out, (size_t)(d - start));
        return 0;
}
