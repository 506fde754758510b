/* Pacing one output (see pace.h). */
#include "pace.h"

#include <limits.h>
#include <stdlib.h>

#define BACKOFF_MIN_MS    500
#define RETRY_AFTER_MAX_S 3600
#define MINUTE_MS         60000
#define WINDOW_START      4
/* Latency "well above its baseline": half as much again, and 5 ms of
 * slack, so that a fast local backend's jitter is no signal. A backend
 * whose queue builds answers later long before it answers 502. */
#define LATENCY_RATIO    1.5
#define LATENCY_SLACK_MS 5.0
#define BASE_PERIOD_MS   30000 /* the baseline forgets what is older than two of these */
/* A learnt rate relaxes by a tenth of a percent a second (from 97 % of the
 * limit, back to it in 30 s: each 429 with Retry-After costs a pause, so
 * they must be rare), and is forgotten after two minutes without a 429. */
#define LEARNT_MARGIN  0.97
#define LEARNT_RELAX   0.001
#define LEARNT_FORGET  120000
#define LEARNT_MIN     5 /* acceptances a second: fewer tell no rate */
#define RATE_BUCKET_MS 10

int pace_init(struct pace *p, unsigned max, bool adaptive, unsigned max_rate, unsigned per_minute,
              unsigned retry_max_s, unsigned seed)
{
        if (max == 0)
                max = 1;
        *p = (struct pace){
            .adaptive = adaptive,
            .max = max,
            .max_ms = (int64_t)retry_max_s * 1000,
            .seed = seed,
            .decreased_ms = INT64_MIN,
            .limited_ms = INT64_MIN,
        };
        p->cwnd = adaptive && max > WINDOW_START ? WINDOW_START : max;
        p->ssthresh = max;
        if (p->max_ms < BACKOFF_MIN_MS)
                p->max_ms = BACKOFF_MIN_MS;
        p->rate = max_rate;
        /* a tenth of a second's worth; it starts with one token, not a full
         * bucket, so that no window from the start sees more than the rate
         * and the burst */
        p->burst = max_rate >= 10 ? max_rate / 10.0 : 1.0;
        p->tokens = 1.0;
        p->filled_ms = -1;
        p->budget = per_minute;
        if (per_minute) {
                p->starts = calloc(per_minute, sizeof *p->starts);
                if (!p->starts)
                        return -1;
        }
        return 0;
}

void pace_free(struct pace *p)
{
        free(p->starts);
        p->starts = NULL;
}

unsigned pace_window(const struct pace *p)
{
        if (p->streak > 0)
                return 1;
        unsigned w = (unsigned)p->cwnd;
        return w < 1 ? 1 : w > p->max ? p->max : w;
}

static void refill(struct pace *p, int64_t now)
{
        if (p->filled_ms >= 0 && now > p->filled_ms) {
                p->tokens += p->rate * (double)(now - p->filled_ms) / 1000.0;
                if (p->tokens > p->burst)
                        p->tokens = p->burst;
        }
        p->filled_ms = now;
}

static void learnt_refill(struct pace *p, int64_t now)
{
        if (p->learnt <= 0)
                return;
        if (now - p->learnt_ms > LEARNT_FORGET) {
                p->learnt = 0;
                return;
        }
        if (now > p->learnt_filled_ms) {
                double dt = (double)(now - p->learnt_filled_ms) / 1000.0;
                double relax = p->learnt * LEARNT_RELAX * dt;
                p->learnt += relax > 0.1 * dt ? relax : 0.1 * dt;
                p->learnt_tokens += p->learnt * dt;
                /* next to no burst: a limit counted over a sliding second
                 * would count it after every pause (a Retry-After), and
                 * answer 429 again a second later; one request of room
                 * keeps what waits rounded up to the millisecond lose */
                if (p->learnt_tokens > 2)
                        p->learnt_tokens = 2;
        }
        p->learnt_filled_ms = now;
}

int64_t pace_wait_ms(struct pace *p, int64_t now, size_t nev)
{
        int64_t wait = 0;
        if (p->streak > 0 && p->until_ms > now)
                wait = p->until_ms - now;
        if (p->floor_ms > now && p->floor_ms - now > wait)
                wait = p->floor_ms - now;
        learnt_refill(p, now);
        if (p->learnt > 0 && p->learnt_tokens < 1.0) {
                int64_t w = (int64_t)((1.0 - p->learnt_tokens) * 1000.0 / p->learnt) + 1;
                if (w > wait)
                        wait = w;
        }
        if (p->rate > 0) {
                refill(p, now);
                /* a request bigger than the bucket waits for a full bucket
                 * and leaves it in debt: the rate holds on average */
                double need = (double)nev < p->burst ? (double)nev : p->burst;
                if (p->tokens < need) {
                        int64_t w = (int64_t)((need - p->tokens) * 1000.0 / p->rate) + 1;
                        if (w > wait)
                                wait = w;
                }
        }
        if (p->budget && p->count == p->budget) {
                int64_t oldest = p->starts[p->head];
                if (oldest + MINUTE_MS > now && oldest + MINUTE_MS - now > wait)
                        wait = oldest + MINUTE_MS - now;
        }
        return wait;
}

/* The per-10 ms counts of acceptances, moved on to `slot`: the slots that
 * passed since the latest one are emptied. */
static void accepts_advance(struct pace *p, int64_t slot)
{
        if (slot <= p->accepts_slot)
                return;
        int64_t gap = slot - p->accepts_slot;
        if (gap >= PACE_RATE_BUCKETS) {
                for (int i = 0; i < PACE_RATE_BUCKETS; i++)
                        p->accepts_per[i] = 0;
        } else {
                for (int64_t s = p->accepts_slot + 1; s <= slot; s++)
                        p->accepts_per[s % PACE_RATE_BUCKETS] = 0;
        }
        p->accepts_slot = slot;
}

void pace_started(struct pace *p, int64_t now, size_t nev)
{
        if (p->learnt > 0) {
                learnt_refill(p, now);
                p->learnt_tokens -= 1.0;
        }
        if (p->rate > 0) {
                refill(p, now);
                p->tokens -= (double)nev;
        }
        if (p->budget) {
                unsigned at = (p->head + p->count) % p->budget;
                if (p->count == p->budget) {
                        at = p->head;
                        p->head = (p->head + 1) % p->budget;
                } else {
                        p->count++;
                }
                p->starts[at] = now;
        }
}

static void decrease(struct pace *p, int64_t now, double factor)
{
        p->cwnd *= factor;
        if (p->cwnd < 1)
                p->cwnd = 1;
        p->ssthresh = p->cwnd;
        p->decreased_ms = now;
}

void pace_accepted(struct pace *p, int64_t now, int64_t started, int64_t rtt_ms, bool full)
{
        int64_t slot = now / RATE_BUCKET_MS;
        accepts_advance(p, slot);
        p->accepts_per[slot % PACE_RATE_BUCKETS]++;
        /* out when the rate was learnt, and let through: within the limit
         * too, though its acceptance came after the 429 */
        if (p->learnt > 0 && started < p->limited_ms && now - p->limited_ms < 1000)
                p->learnt += LEARNT_MARGIN;
        if (p->streak > 0) {
                /* in flight before the latest step: the backend took what it
                 * had, which says nothing of now */
                if (started < p->armed_ms)
                        return;
                p->streak = 0;
                p->until_ms = 0;
        }
        double rtt = rtt_ms > 0 ? (double)rtt_ms : 0.5;
        p->srtt = p->srtt > 0 ? p->srtt + (rtt - p->srtt) / 8 : rtt;
        if (now - p->base_period_ms >= BASE_PERIOD_MS) {
                p->base_ms = p->base_next_ms;
                p->base_next_ms = 0;
                p->base_period_ms = now;
        }
        if (!p->base_next_ms || rtt_ms < p->base_next_ms)
                p->base_next_ms = rtt_ms > 0 ? rtt_ms : 1;
        if (!p->base_ms || rtt_ms < p->base_ms)
                p->base_ms = rtt_ms > 0 ? rtt_ms : 1;
        if (p->samples < 8)
                p->samples++;
        if (!p->adaptive)
                return;
        /* the first answers carry the connections' set-up (TCP, TLS): no
         * baseline yet to judge them by */
        if (p->samples >= 8 && p->srtt > (double)p->base_ms * LATENCY_RATIO + LATENCY_SLACK_MS) {
                /* once per round trip: the requests sent before the last
                 * decrease still carry the old queue */
                if (started >= p->decreased_ms)
                        decrease(p, now, 0.9);
                return;
        }
        if (!full)
                return;
        if (p->cwnd < p->ssthresh)
                p->cwnd += 1;
        else
                p->cwnd += 1 / p->cwnd;
        if (p->cwnd > p->max)
                p->cwnd = p->max;
}

void pace_overload(struct pace *p, int64_t now, int64_t started)
{
        if (p->adaptive && started >= p->decreased_ms)
                decrease(p, now, 0.5);
}

/* Step n of the capped exponential, with jitter so that many daemons do
 * not hit a recovering backend in step. */
static int64_t step_ms(struct pace *p, unsigned n)
{
        int64_t delay = BACKOFF_MIN_MS;
        for (unsigned i = 1; i < n && delay < p->max_ms; i++)
                delay *= 2;
        if (delay > p->max_ms)
                delay = p->max_ms;
        return delay / 2 + (int64_t)(rand_r(&p->seed) % (unsigned)(delay / 2 + 1));
}

int64_t pace_backoff(struct pace *p, int64_t now, int64_t started)
{
        /* in flight when the output was pushed back: the same outage, the
         * step already taken */
        if (p->streak == 0 || started >= p->armed_ms) {
                if (p->streak == 0 && p->adaptive) {
                        /* after it, slow start again up to half the window
                         * that met the failure */
                        p->ssthresh = p->cwnd / 2 > 1 ? p->cwnd / 2 : 1;
                        p->cwnd = 1;
                        p->decreased_ms = now;
                }
                p->streak++;
                int64_t delay = step_ms(p, p->streak);
                if (now + delay > p->until_ms)
                        p->until_ms = now + delay;
                p->armed_ms = now;
        }
        return p->until_ms > now ? p->until_ms - now : 0;
}

void pace_retry_after(struct pace *p, int64_t now, long seconds)
{
        if (seconds <= 0)
                return;
        if (seconds > RETRY_AFTER_MAX_S)
                seconds = RETRY_AFTER_MAX_S;
        if (now + seconds * 1000 > p->floor_ms)
                p->floor_ms = now + seconds * 1000;
}

void pace_rate_limited(struct pace *p, int64_t now, int64_t started)
{
        if (started < p->limited_ms)
                return;
        /* the acceptances of the last second: the limit, as a sliding
         * window counts it (after a pause, all the backend let through
         * since) */
        accepts_advance(p, now / RATE_BUCKET_MS);
        uint64_t n = 0;
        for (int i = 0; i < PACE_RATE_BUCKETS; i++)
                n += p->accepts_per[i];
        if (n < LEARNT_MIN)
                return;
        p->learnt = (double)n * LEARNT_MARGIN;
        p->learnt_tokens = 0;
        p->learnt_ms = now;
        p->learnt_filled_ms = now;
        p->limited_ms = now;
}

bool pace_failing(const struct pace *p)
{
        return p->streak > 0;
}

double pace_learnt_rate(const struct pace *p)
{
        return p->learnt;
}
