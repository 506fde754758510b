#include "report_series.h"

#include "event.h"

#include <stdlib.h>
#include <string.h>

#define B SERIES_BUCKETS

/* Floor division and modulo: times before 1970 are negative. */
static int64_t fdiv(int64_t a, int64_t b)
{
        int64_t q = a / b;
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static size_t pos(int64_t bucket)
{
        int64_t m = bucket % B;
        return (size_t)(m < 0 ? m + B : m);
}

/* ---- a tracked set ---- */

static int track_init(struct series_track *t, size_t cap, size_t classes, size_t nids)
{
        memset(t, 0, sizeof *t);
        t->classes = classes;
        t->cap = cap;
        t->nids = nids;
        t->slots = calloc(cap, sizeof *t->slots);
        t->heap = calloc(cap, sizeof *t->heap);
        t->heappos = calloc(cap, sizeof *t->heappos);
        t->slot_of = calloc(nids, sizeof *t->slot_of);
        if (!t->slots || !t->heap || !t->heappos || !t->slot_of)
                return -1;
        for (size_t i = 0; i < cap; i++) {
                t->slots[i].n = calloc(classes * B, sizeof *t->slots[i].n);
                if (!t->slots[i].n)
                        return -1;
        }
        return 0;
}

static void track_free(struct series_track *t)
{
        for (size_t i = 0; t->slots && i < t->cap; i++)
                free(t->slots[i].n);
        free(t->slots);
        free(t->heap);
        free(t->heappos);
        free(t->slot_of);
        memset(t, 0, sizeof *t);
}

static void heap_swap(struct series_track *t, size_t a, size_t b)
{
        uint32_t x = t->heap[a];
        t->heap[a] = t->heap[b];
        t->heap[b] = x;
        t->heappos[t->heap[a]] = (uint32_t)a;
        t->heappos[t->heap[b]] = (uint32_t)b;
}

static uint64_t heap_key(const struct series_track *t, size_t i)
{
        return t->slots[t->heap[i]].total;
}

static void heap_down(struct series_track *t, size_t i)
{
        for (;;) {
                size_t l = 2 * i + 1, m = i;
                if (l < t->n && heap_key(t, l) < heap_key(t, m))
                        m = l;
                if (l + 1 < t->n && heap_key(t, l + 1) < heap_key(t, m))
                        m = l + 1;
                if (m == i)
                        return;
                heap_swap(t, i, m);
                i = m;
        }
}

static void heap_up(struct series_track *t, size_t i)
{
        while (i > 0 && heap_key(t, (i - 1) / 2) > heap_key(t, i)) {
                heap_swap(t, i, (i - 1) / 2);
                i = (i - 1) / 2;
        }
}

static void slot_count(struct series_track *t, struct series_slot *sl, int k, size_t p)
{
        sl->n[(size_t)k * B + p]++;
        sl->used[p / 64] |= UINT64_C(1) << (p % 64);
}

/* Forget a slot's counts: only the positions it used, so taking keys in
 * and out costs what they counted, not the whole series. */
static void slot_clear(struct series_track *t, struct series_slot *sl)
{
        for (size_t w = 0; w < B / 64; w++) {
                while (sl->used[w]) {
                        size_t p = w * 64 + (size_t)__builtin_ctzll(sl->used[w]);
                        for (size_t k = 0; k < t->classes; k++)
                                sl->n[k * B + p] = 0;
                        sl->used[w] &= sl->used[w] - 1;
                }
        }
}

static void track_add(struct series_track *t, uint32_t id, uint64_t total, int k, size_t p)
{
        if (id == SERIES_NO_ID || id >= t->nids)
                return;
        uint32_t si = t->slot_of[id];
        if (si) {
                struct series_slot *sl = &t->slots[si - 1];
                sl->total = total;
                slot_count(t, sl, k, p);
                heap_down(t, t->heappos[si - 1]);
                return;
        }
        if (t->n < t->cap) {
                size_t i = t->n++;
                struct series_slot *sl = &t->slots[i];
                sl->id = id;
                sl->total = total;
                t->slot_of[id] = (uint32_t)i + 1;
                t->heap[i] = (uint32_t)i;
                t->heappos[i] = (uint32_t)i;
                heap_up(t, i);
                slot_count(t, sl, k, p);
                return;
        }
        /* full: take the key in only once it has passed the smallest */
        uint32_t root = t->heap[0];
        struct series_slot *sl = &t->slots[root];
        if (total <= sl->total)
                return;
        t->slot_of[sl->id] = 0;
        slot_clear(t, sl);
        sl->id = id;
        sl->total = total;
        t->slot_of[id] = root + 1;
        heap_down(t, 0);
        slot_count(t, sl, k, p);
}

/* ---- the series ---- */

int series_init(struct report_series *s, size_t ncats, size_t ndoms)
{
        memset(s, 0, sizeof *s);
        s->width = 3600;
        if (track_init(&s->cats, SERIES_CATS, 1, ncats) < 0 ||
            track_init(&s->doms, SERIES_DOMAINS, SERIES_CLASSES, ndoms) < 0) {
                series_free(s);
                return -1;
        }
        return 0;
}

void series_free(struct report_series *s)
{
        track_free(&s->cats);
        track_free(&s->doms);
}

/* One array of counts per class at positions mod B, re-bucketed f times
 * wider: bucket b goes to b / f. tmp has room for B counts. */
static void merge(uint64_t *a, int64_t lo, int64_t hi, int64_t f, uint64_t *tmp)
{
        memset(tmp, 0, B * sizeof *tmp);
        for (int64_t b = lo; b < hi; b++)
                tmp[pos(fdiv(b, f))] += a[pos(b)];
        memcpy(a, tmp, B * sizeof *tmp);
}

/* Widen every bucket to the next width: hour, day, week, then four weeks
 * at a time, so that axis labels stay on days and weeks. */
static void widen(struct report_series *s)
{
        int64_t f = s->width == 3600 ? 24 : s->width == 86400 ? 7 : 4;
        uint64_t tmp[B];
        for (int k = 0; k < SERIES_CLASSES; k++)
                merge(s->n[k], s->lo, s->hi, f, tmp);
        struct series_track *ts[] = {&s->cats, &s->doms};
        for (size_t j = 0; j < 2; j++) {
                struct series_track *t = ts[j];
                for (size_t i = 0; i < t->n; i++) {
                        struct series_slot *sl = &t->slots[i];
                        for (size_t k = 0; k < t->classes; k++)
                                merge(sl->n + k * B, s->lo, s->hi, f, tmp);
                        memset(sl->used, 0, sizeof sl->used);
                        for (size_t p = 0; p < B; p++) {
                                for (size_t k = 0; k < t->classes; k++) {
                                        if (sl->n[k * B + p])
                                                sl->used[p / 64] |= UINT64_C(1) << (p % 64);
                                }
                        }
                }
        }
        s->lo = fdiv(s->lo, f);
        s->hi = fdiv(s->hi - 1, f) + 1;
        s->width *= f;
}

void series_add(struct report_series *s, bool have_t, int64_t t, int k, uint32_t cat,
                uint64_t cat_total, uint32_t dom, uint64_t dom_total)
{
        if (!have_t) {
                s->undated++;
                return;
        }
        int64_t b = fdiv(t, s->width);
        if (!s->any) {
                s->any = true;
                s->lo = b;
                s->hi = b + 1;
        } else if (b < s->lo || b >= s->hi) {
                /* bucket numbers are at most 2^63 / 3600 apart: no overflow */
                while ((b < s->lo ? s->hi - b : b + 1 - s->lo) > B) {
                        widen(s);
                        b = fdiv(t, s->width);
                }
                if (b < s->lo)
                        s->lo = b;
                else if (b >= s->hi)
                        s->hi = b + 1;
        }
        size_t p = pos(b);
        s->n[k][p]++;
        track_add(&s->cats, cat, cat_total, 0, p);
        track_add(&s->doms, dom, dom_total, k, p);
}

size_t series_len(const struct report_series *s)
{
        return s->any ? (size_t)(s->hi - s->lo) : 0;
}

int64_t series_start(const struct report_series *s, size_t i)
{
        return (s->lo + (int64_t)i) * s->width;
}

uint64_t series_total(const struct report_series *s, int k, size_t i)
{
        return s->n[k][pos(s->lo + (int64_t)i)];
}

uint64_t series_slot_count(const struct report_series *s, const struct series_track *t,
                           const struct series_slot *sl, int k, size_t i)
{
        return sl ? sl->n[(size_t)k * B + pos(s->lo + (int64_t)i)] : 0;
}

const struct series_slot *series_find(const struct series_track *t, uint32_t id)
{
        if (id == SERIES_NO_ID || id >= t->nids || !t->slot_of[id])
                return NULL;
        return &t->slots[t->slot_of[id] - 1];
}

/* ---- JSON ---- */

static void put_str(FILE *out, const char *s, size_t n)
{
        char tmp[6 * 256 + 2];
        if (n > 256)
                n = 256;
        fwrite(tmp, 1, (size_t)(event_json_string(tmp, s, n) - tmp), out);
}

static uint64_t key_total(const struct report_key *key)
{
        return key->n[SERIES_HARD] + key->n[SERIES_SOFT] + key->n[SERIES_NONE];
}

/* One series as a JSON array; the sum of what was written. */
static uint64_t put_array(const struct report_series *s, const struct series_track *t,
                          const struct series_slot *sl, int k, FILE *out)
{
        size_t n = series_len(s);
        uint64_t sum = 0;
        fputc('[', out);
        for (size_t i = 0; i < n; i++) {
                uint64_t v = series_slot_count(s, t, sl, k, i);
                sum += v;
                fprintf(out, i ? ",%llu" : "%llu", (unsigned long long)v);
        }
        fputc(']', out);
        return sum;
}

static void put_totals(const struct report_series *s, int k, FILE *out)
{
        size_t n = series_len(s);
        fputc('[', out);
        for (size_t i = 0; i < n; i++)
                fprintf(out, i ? ",%llu" : "%llu", (unsigned long long)series_total(s, k, i));
        fputc(']', out);
}

/* The total of bucket i (classes k0..k1) minus what the listed keys hold:
 * what the chart draws as "other". */
static uint64_t rest(const struct report_series *s, const struct series_track *t,
                     const struct report_key *keys, size_t nkeys, int k, size_t i)
{
        uint64_t v = 0;
        if (t->classes == 1) {
                for (int c = 0; c < SERIES_CLASSES; c++)
                        v += series_total(s, c, i);
        } else {
                v = series_total(s, k, i);
        }
        for (size_t j = 0; j < nkeys; j++)
                v -=
                    series_slot_count(s, t, series_find(t, keys[j].id), t->classes == 1 ? 0 : k, i);
        return v;
}

static void put_rest(const struct report_series *s, const struct series_track *t,
                     const struct report_key *keys, size_t nkeys, int k, FILE *out)
{
        size_t n = series_len(s);
        fputc('[', out);
        for (size_t i = 0; i < n; i++)
                fprintf(out, i ? ",%llu" : "%llu",
                        (unsigned long long)rest(s, t, keys, nkeys, k, i));
        fputc(']', out);
}

static const char *const class_names[SERIES_CLASSES] = {"hard", "soft", "unclassified"};

void series_print_json(const struct report_series *s, const struct report_key *cats, size_t ncats,
                       const struct report_key *doms, size_t ndoms, FILE *out)
{
        char t0[40];
        fprintf(out, "  \"series\": {\"bucket_seconds\": %lld, \"start\": ", (long long)s->width);
        if (s->any) {
                event_format_time(series_start(s, 0), t0, sizeof t0);
                fprintf(out, "\"%s\"", t0);
        } else {
                fputs("null", out);
        }
        fprintf(out, ", \"buckets\": %zu, \"undated\": %llu,\n    \"bounces\": {", series_len(s),
                (unsigned long long)s->undated);
        for (int k = 0; k < SERIES_CLASSES; k++) {
                fprintf(out, "%s\"%s\": ", k ? ", " : "", class_names[k]);
                put_totals(s, k, out);
        }
        fputs("},\n    \"categories\": [", out);
        if (ncats > SERIES_CATS)
                ncats = SERIES_CATS;
        for (size_t j = 0; j < ncats; j++) {
                const struct report_key *c = &cats[j];
                fputs(j ? ",\n      {\"bounceCat\": " : "\n      {\"bounceCat\": ", out);
                put_str(out, c->key, c->len);
                fputs(", \"counts\": ", out);
                uint64_t sum = put_array(s, &s->cats, series_find(&s->cats, c->id), 0, out);
                fprintf(out, ", \"uncharted\": %llu}", (unsigned long long)(key_total(c) - sum));
        }
        fprintf(out, "%s],\n    \"categories_other\": ", ncats ? "\n    " : "");
        put_rest(s, &s->cats, cats, ncats, 0, out);
        fputs(",\n    \"domains\": [", out);
        for (size_t j = 0; j < ndoms; j++) {
                const struct report_key *d = &doms[j];
                const struct series_slot *sl = series_find(&s->doms, d->id);
                fputs(j ? ",\n      {\"domain\": " : "\n      {\"domain\": ", out);
                put_str(out, d->key, d->len);
                fprintf(out, ", \"count\": %llu", (unsigned long long)key_total(d));
                for (int k = 0; k < SERIES_CLASSES; k++)
                        fprintf(out, ", \"%s\": %llu", class_names[k], (unsigned long long)d->n[k]);
                uint64_t sum = 0;
                for (int k = 0; k < SERIES_CLASSES; k++) {
                        fprintf(out, "%s\"%s\": ", k ? ", " : ", \"counts\": {", class_names[k]);
                        sum += put_array(s, &s->doms, sl, k, out);
                }
                fprintf(out, "}, \"uncharted\": %llu}", (unsigned long long)(key_total(d) - sum));
        }
        fprintf(out, "%s],\n    \"domains_other\": {", ndoms ? "\n    " : "");
        for (int k = 0; k < SERIES_CLASSES; k++) {
                fprintf(out, "%s\"%s\": ", k ? ", " : "", class_names[k]);
                put_rest(s, &s->doms, doms, ndoms, k, out);
        }
        fputs("}}", out);
}
