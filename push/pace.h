/* How many requests one output may have in flight, and when the next may
 * start. Internal to push/: the HTTP output owns one, asks it before every
 * request and tells it every outcome; it has no sockets and reads no clock
 * (all times are CLOCK_MONOTONIC milliseconds handed in by the caller), so
 * a table of outcomes tests it whole.
 *
 * - The window: additive increase, multiplicative decrease, as TCP and
 *   Vector's adaptive request concurrency do. It starts small, doubles per
 *   round trip of acceptances (slow start) until the first sign of
 *   overload, then grows by one per round trip of acceptances while the
 *   window is used, up to `max`. It halves on overload (429, 502, 503, 504,
 *   a connection that fails), at most once per round trip, and comes down
 *   by a tenth when the latency of acceptances rises well above its
 *   baseline (a queue is building in front of the backend's workers).
 *   Pinned at `max` when not adaptive.
 * - The backoff: while everything fails (every request of the moment), one
 *   request at a time probes the backend after a capped exponential delay
 *   with jitter; only an acceptance of a request sent after the backoff
 *   began ends it.
 * - Retry-After: a floor no acceptance cuts short.
 * - A request rate learnt from 429s (the backend's limit), relaxed while no
 *   429 comes; max_rate (events per second) and max_requests_per_minute as
 *   upper bounds set by the operator. */
#ifndef PMTATAIL_PUSH_PACE_H
#define PMTATAIL_PUSH_PACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PACE_RATE_BUCKETS 100 /* request starts per 10 ms, over the last second */

struct pace {
        /* the window */
        bool adaptive;
        double cwnd, ssthresh;
        unsigned max;
        int64_t decreased_ms; /* requests started before this saw the last decrease */
        /* latency of acceptances: smoothed, and its baseline (the least seen
         * in the current and the previous period) */
        double srtt;
        unsigned samples; /* acceptances timed so far (the first ones set it up) */
        int64_t base_ms, base_next_ms, base_period_ms;
        /* backoff: failures push the whole output back */
        unsigned streak;  /* backoff steps since the last acceptance */
        int64_t until_ms; /* no request starts before this */
        int64_t armed_ms; /* when the latest step was taken */
        int64_t max_ms;   /* retry_max_s */
        unsigned seed;
        /* Retry-After: a floor of its own */
        int64_t floor_ms;
        /* the rate learnt from 429s, requests per second (0: none) */
        double learnt, learnt_tokens;
        int64_t learnt_ms, learnt_filled_ms, limited_ms;
        uint32_t accepts_per[PACE_RATE_BUCKETS]; /* acceptances per 10 ms */
        int64_t accepts_slot;                    /* the 10 ms slot of the latest one */
        /* max_rate: tokens are events */
        double rate, burst, tokens;
        int64_t filled_ms;
        /* max_requests_per_minute: start times of the latest requests */
        int64_t *starts;
        unsigned budget, head, count;
};

/* `max`: the most requests in flight (concurrency); `adaptive`: the window
 * moves below it, else it stays there. Returns 0, or -1 (out of memory).
 * Tear down with pace_free. */
int pace_init(struct pace *p, unsigned max, bool adaptive, unsigned max_rate, unsigned per_minute,
              unsigned retry_max_s, unsigned seed);
void pace_free(struct pace *p);

/* Requests that may be in flight now: 1 while backing off. */
unsigned pace_window(const struct pace *p);

/* Milliseconds until a request of `nev` events may start (0: now). */
int64_t pace_wait_ms(struct pace *p, int64_t now, size_t nev);
/* A request of `nev` events starts now. */
void pace_started(struct pace *p, int64_t now, size_t nev);

/* A request sent at `started` was accepted (an answer that says the backend
 * is up and took it), after rtt_ms; `full`: the window was in use when it
 * completed (an idle output does not grow its window). */
void pace_accepted(struct pace *p, int64_t now, int64_t started, int64_t rtt_ms, bool full);

/* A request sent at `started` met overload (429, 502, 503, 504, 408, a
 * connection that failed) while others may still get through: the window
 * halves, once per round trip. */
void pace_overload(struct pace *p, int64_t now, int64_t started);

/* Everything fails: a step of the backoff, unless the request was already
 * in flight when the latest step was taken (the same outage). Returns the
 * delay now in force (ms). */
int64_t pace_backoff(struct pace *p, int64_t now, int64_t started);

/* A Retry-After of `seconds` (capped at an hour): no request starts
 * earlier, whatever is accepted meanwhile. */
void pace_retry_after(struct pace *p, int64_t now, long seconds);

/* A 429 to a request sent at `started` that says the backend limits our
 * rate (the caller decides: a Retry-After, or many 429s of late): the
 * acceptances of the last second, less a thirtieth, become the rate not to
 * pass, unless the request was sent before the latest such decision, or too
 * few were accepted to tell a rate (the floor and the window do then). */
void pace_rate_limited(struct pace *p, int64_t now, int64_t started);

/* Whether the output is backing off (then one request probes at a time). */
bool pace_failing(const struct pace *p);

/* The learnt rate limit in requests per second, 0 if none. */
double pace_learnt_rate(const struct pace *p);

#endif
