/* Pacing one output (see pace.h). */
#include "pace.h"

#include <stdlib.h>

#define BACKOFF_MIN_MS    500
#define RETRY_AFTER_MAX_S 3600
#define MINUTE_MS         60000

int pace_init(struct pace *p, unsigned max_rate, unsigned per_minute, unsigned retry_max_s,
              unsigned seed)
{
        *p = (struct pace){.max_ms = (int64_t)retry_max_s * 1000, .seed = seed};
        if (p->max_ms < BACKOFF_MIN_MS)
                p->max_ms = BACKOFF_MIN_MS;
        p->rate = max_rate;
        /* a tenth of a second's worth: a 10 s window sees at most 1 % more
         * than the rate */
        p->burst = max_rate >= 10 ? max_rate / 10.0 : 1.0;
        p->tokens = p->burst;
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

static void refill(struct pace *p, int64_t now)
{
        if (p->filled_ms >= 0 && now > p->filled_ms) {
                p->tokens += p->rate * (double)(now - p->filled_ms) / 1000.0;
                if (p->tokens > p->burst)
                        p->tokens = p->burst;
        }
        p->filled_ms = now;
}

int64_t pace_wait_ms(struct pace *p, int64_t now, size_t nev)
{
        int64_t wait = 0;
        if (p->until_ms > now)
                wait = p->until_ms - now;
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

void pace_started(struct pace *p, int64_t now, size_t nev)
{
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

int64_t pace_part_delay_ms(struct pace *p, unsigned attempts)
{
        return step_ms(p, attempts);
}

int64_t pace_failed(struct pace *p, int64_t now, int64_t started, long retry_after_s)
{
        /* in flight when the output was pushed back: the same outage, the
         * step already taken */
        if (p->streak == 0 || started >= p->armed_ms) {
                p->streak++;
                int64_t delay = step_ms(p, p->streak);
                if (now + delay > p->until_ms)
                        p->until_ms = now + delay;
                p->armed_ms = now;
        }
        if (retry_after_s > 0) {
                if (retry_after_s > RETRY_AFTER_MAX_S)
                        retry_after_s = RETRY_AFTER_MAX_S;
                if (now + retry_after_s * 1000 > p->until_ms)
                        p->until_ms = now + retry_after_s * 1000;
        }
        return p->until_ms > now ? p->until_ms - now : 0;
}

void pace_succeeded(struct pace *p)
{
        p->streak = 0;
        p->until_ms = 0;
}

bool pace_failing(const struct pace *p)
{
        return p->streak > 0;
}
