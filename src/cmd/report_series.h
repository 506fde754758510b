/* The time series of `pmtatail report --json` and `--html`: bounces per time
 * bucket by class (hard, soft, unclassified), per bounceCat and per recipient
 * domain, counted in the same single pass as the totals.
 *
 * Buckets are an hour wide while the records span at most SERIES_BUCKETS
 * hours (42 days); past that every bucket widens to a day, then a week, then
 * four weeks at a time, the counts merged, so the series never holds more
 * than SERIES_BUCKETS buckets whatever the timestamps say.
 *
 * Which keys get a series is not known until the end of the pass (the top
 * domains of a month are the top ones of the whole month), and a series per
 * key would grow with the keys. So a fixed number of keys is tracked, chosen
 * by their exact running totals (the report's counting tables hand them in):
 * a key not tracked is taken in, replacing the tracked key with the smallest
 * total, as soon as its own total passes that one. A key's series is exact
 * when it was tracked from its first bounce, which holds for every key while
 * fewer keys than the cap have been seen, and for the top ones of any input
 * whose leaders show up early; otherwise the bounces it had before it was
 * taken in are not in its series (never more than the smallest tracked
 * total at that moment, so at most total/cap of the bounces) and the page
 * and the JSON say how many. What no shown key holds is drawn as "other": the
 * per-bucket totals by class are always exact. */
#ifndef PMTATAIL_REPORT_SERIES_H
#define PMTATAIL_REPORT_SERIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SERIES_BUCKETS 1024
/* Keys tracked: every bounceCat of a normal PowerMTA (about 17), and
 * enough domains that the top SERIES_TOP are exact in practice. */
#define SERIES_CATS    32
#define SERIES_DOMAINS 256
/* Domains shown (a chart each) and put in the JSON. */
#define SERIES_TOP 12
/* bounceCats drawn as their own layer; the rest are "other". */
#define SERIES_CAT_LAYERS 7

/* The classes, in the order of report.c's counts. */
enum { SERIES_HARD, SERIES_SOFT, SERIES_NONE, SERIES_CLASSES };
/* A key the report's table could not hold (counted as "(other)" there). */
#define SERIES_NO_ID UINT32_MAX

struct series_slot {
        uint32_t id;
        uint64_t total;                     /* the key's exact running total, as last handed in */
        uint64_t *n;                        /* [class][position], positions mod SERIES_BUCKETS */
        uint64_t used[SERIES_BUCKETS / 64]; /* positions with a count */
};

/* A fixed set of tracked keys, a min-heap on their totals. */
struct series_track {
        size_t classes; /* counts per bucket of one key: 1, or the classes */
        size_t cap, n;
        struct series_slot *slots;
        uint32_t *heap;    /* slot indexes, smallest total first */
        uint32_t *heappos; /* slot index -> place in heap */
        uint32_t *slot_of; /* key id -> slot index + 1, 0 when not tracked */
        size_t nids;
};

struct report_series {
        int64_t width;  /* seconds per bucket */
        int64_t lo, hi; /* the bucket numbers held (time / width): [lo, hi) */
        bool any;
        uint64_t n[SERIES_CLASSES][SERIES_BUCKETS]; /* every dated bounce */
        uint64_t undated;                           /* bounces without a time */
        struct series_track cats, doms;
};

/* Set up for category ids below ncats and domain ids below ndoms (the
 * report's table caps). Returns 0, or -1 when memory ran out. */
int series_init(struct report_series *s, size_t ncats, size_t ndoms);
void series_free(struct report_series *s);

/* Count one bounce of class k at time t (have_t false: no usable time).
 * cat and dom are the report's table ids (SERIES_NO_ID when not held) and
 * their exact totals so far, this bounce included. */
void series_add(struct report_series *s, bool have_t, int64_t t, int k, uint32_t cat,
                uint64_t cat_total, uint32_t dom, uint64_t dom_total);

/* Buckets from the first dated bounce to the last (0 when none), and the
 * start of bucket i in epoch seconds. */
size_t series_len(const struct report_series *s);
int64_t series_start(const struct report_series *s, size_t i);
/* The count of class k in bucket i: of every bounce, or of one slot (k is 0
 * for categories). */
uint64_t series_total(const struct report_series *s, int k, size_t i);
uint64_t series_slot_count(const struct report_series *s, const struct series_track *t,
                           const struct series_slot *sl, int k, size_t i);
/* The slot tracking id, or NULL. */
const struct series_slot *series_find(const struct series_track *t, uint32_t id);

/* A key ranked by the report, with what the page and the JSON show. */
struct report_key {
        const char *key;
        size_t len;
        const char *ex; /* an example (unclassified texts), else NULL */
        size_t ex_len;
        uint32_t id;
        uint64_t n[SERIES_CLASSES];
};

/* The categories (all the report holds, ranked) and the top domains by
 * bounces, with the series, written as the JSON report's "series" value. */
void series_print_json(const struct report_series *s, const struct report_key *cats, size_t ncats,
                       const struct report_key *doms, size_t ndoms, FILE *out);

#endif
