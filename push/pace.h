/* How fast one output may go: one backoff for the whole output while the
 * backend fails, a token bucket of events per second (max_rate), and a
 * budget of requests per minute (max_requests_per_minute). Internal to
 * push/; the HTTP output owns one and asks it before every request. All
 * times are CLOCK_MONOTONIC milliseconds handed in by the caller. */
#ifndef PMTATAIL_PUSH_PACE_H
#define PMTATAIL_PUSH_PACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pace {
        /* backoff: failures push the whole output back */
        unsigned streak;  /* backoff steps since the last success */
        int64_t until_ms; /* no request starts before this */
        int64_t armed_ms; /* when the latest step was taken */
        int64_t max_ms;   /* retry_max_s */
        unsigned seed;
        /* max_rate: tokens are events */
        double rate, burst, tokens;
        int64_t filled_ms;
        /* max_requests_per_minute: start times of the latest requests */
        int64_t *starts;
        unsigned budget, head, count;
};

/* Returns 0, or -1 (out of memory). Tear down with pace_free. */
int pace_init(struct pace *p, unsigned max_rate, unsigned per_minute, unsigned retry_max_s,
              unsigned seed);
void pace_free(struct pace *p);

/* Milliseconds until a request of `nev` events may start (0: now). */
int64_t pace_wait_ms(struct pace *p, int64_t now, size_t nev);
/* A request of `nev` events starts now. */
void pace_started(struct pace *p, int64_t now, size_t nev);

/* A request that started at `started` failed (no answer, 408, 429, 5xx,
 * credentials). Unless it was already in flight when the output was last
 * pushed back, this is a new step: the output waits a capped exponential
 * delay with jitter, or the Retry-After asked for when longer. Returns the
 * delay now in force (ms). */
int64_t pace_failed(struct pace *p, int64_t now, int64_t started, long retry_after_s);
/* The delay a request waits on its own after its `attempts`-th failure:
 * capped exponential with jitter, like the output's. */
int64_t pace_part_delay_ms(struct pace *p, unsigned attempts);
/* An answer that was not a failure: the backend is back. */
void pace_succeeded(struct pace *p);
/* Whether the output is backing off (then one request probes at a time). */
bool pace_failing(const struct pace *p);

#endif
