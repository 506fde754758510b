/* The pace of one output (push/pace.h) told outcomes at chosen times: the
 * window's slow start, additive increase and halving once per round trip,
 * the latency signal, the backoff and what ends it, Retry-After as a
 * floor, the rate learnt from 429s, max_rate and the minute budget. No
 * clock is read: every time is handed in. */
#include "../push/pace.h"

#include "test.h"

TEST_MAIN_BEGIN

/* n acceptances at `at` of requests sent at `sent`, rtt ms, the window full */
static void accept_n(struct pace *p, int n, int64_t at, int64_t sent, int64_t rtt)
{
        for (int i = 0; i < n; i++)
                pace_accepted(p, at, sent, rtt, true);
}

static void window_grows_and_halves(void)
{
        struct pace p;
        CHECK_EQ_INT(pace_init(&p, 64, true, 0, 0, 60, 1), 0);
        CHECK_EQ_INT(pace_window(&p), 4); /* starts small */
        accept_n(&p, 4, 100, 50, 10);
        CHECK_EQ_INT(pace_window(&p), 8); /* slow start: one more per acceptance */
        accept_n(&p, 8, 200, 150, 10);
        CHECK_EQ_INT(pace_window(&p), 16);
        /* an idle output (window not in use) does not grow */
        for (int i = 0; i < 10; i++)
                pace_accepted(&p, 210, 205, 10, false);
        CHECK_EQ_INT(pace_window(&p), 16);
        /* overload: halves, and only once for the requests already out */
        pace_overload(&p, 300, 250);
        CHECK_EQ_INT(pace_window(&p), 8);
        pace_overload(&p, 301, 260);
        pace_overload(&p, 302, 299);
        CHECK_EQ_INT(pace_window(&p), 8);
        /* a request sent after the decrease: a new round trip */
        pace_overload(&p, 400, 350);
        CHECK_EQ_INT(pace_window(&p), 4);
        /* past slow start: one more per window's worth of acceptances */
        accept_n(&p, 4, 500, 450, 10);
        CHECK_EQ_INT(pace_window(&p), 4);
        accept_n(&p, 1, 500, 450, 10);
        CHECK_EQ_INT(pace_window(&p), 5);
        /* never above max, never below 1 */
        for (int i = 0; i < 20; i++)
                pace_overload(&p, 1000 + 100 * i, 1000 + 100 * i);
        CHECK_EQ_INT(pace_window(&p), 1);
        accept_n(&p, 100000, 5000, 4000, 10);
        CHECK_EQ_INT(pace_window(&p), 64);
        pace_free(&p);
}

static void latency_brings_it_down(void)
{
        struct pace p;
        CHECK_EQ_INT(pace_init(&p, 64, true, 0, 0, 60, 1), 0);
        accept_n(&p, 40, 100, 50, 20); /* baseline 20 ms, window 44 */
        unsigned w = pace_window(&p);
        CHECK(w > 32);
        /* the queue builds: answers take 60 ms (above 1.5 x 20 + 5) */
        for (int i = 0; i < 30; i++)
                pace_accepted(&p, 200, 150, 60, true);
        unsigned w2 = pace_window(&p);
        CHECK(w2 < w); /* down by a tenth, once for the requests of that round */
        CHECK(w2 >= w * 9 / 10 - 1);
        for (int i = 0; i < 30; i++)
                pace_accepted(&p, 300, 250, 60, true);
        CHECK(pace_window(&p) < w2);
        pace_free(&p);
}

static void backoff_and_what_ends_it(void)
{
        struct pace p;
        CHECK_EQ_INT(pace_init(&p, 64, true, 0, 0, 4, 7), 0);
        accept_n(&p, 12, 100, 50, 10);
        CHECK_EQ_INT(pace_window(&p), 16);
        CHECK(!pace_failing(&p));
        int64_t d = pace_backoff(&p, 1000, 900);
        CHECK(pace_failing(&p));
        CHECK_EQ_INT(pace_window(&p), 1); /* one probe at a time */
        CHECK(d >= 250 && d <= 500);      /* step 1: 0.5 s less up to half (jitter) */
        CHECK(pace_wait_ms(&p, 1000, 1) == d);
        /* requests already out when it began: the same outage */
        int64_t d2 = pace_backoff(&p, 1001, 950);
        CHECK(d2 == d - 1);
        /* an acceptance of one sent before it began does not end it */
        pace_accepted(&p, 1002, 990, 10, true);
        CHECK(pace_failing(&p));
        /* the probe fails: a longer step, capped at retry_max_s (4 s) */
        int64_t d3 = pace_backoff(&p, 2000, 1600);
        CHECK(d3 >= 500 && d3 <= 1000);
        for (int i = 0; i < 10; i++)
                d3 = pace_backoff(&p, 3000 + i * 10000, 3000 + i * 10000);
        CHECK(d3 >= 2000 && d3 <= 4000);
        /* a probe sent after the latest step is accepted: over, slow start
         * from 1 up to half the window that met the failure */
        pace_accepted(&p, 200000, 199000, 10, true);
        CHECK(!pace_failing(&p));
        CHECK_EQ_INT(pace_window(&p), 2);
        CHECK_EQ_INT(pace_wait_ms(&p, 200000, 1), 0);
        pace_free(&p);
}

static void retry_after_is_a_floor(void)
{
        struct pace p;
        CHECK_EQ_INT(pace_init(&p, 64, true, 0, 0, 60, 1), 0);
        pace_retry_after(&p, 1000, 2);
        CHECK_EQ_INT(pace_wait_ms(&p, 1000, 1), 2000);
        /* acceptances of requests sent before or after do not cut it */
        accept_n(&p, 5, 1500, 400, 10);
        accept_n(&p, 5, 1600, 1550, 10);
        CHECK_EQ_INT(pace_wait_ms(&p, 1600, 1), 1400);
        CHECK_EQ_INT(pace_wait_ms(&p, 3000, 1), 0);
        /* capped at an hour */
        pace_retry_after(&p, 5000, 999999);
        CHECK_EQ_INT(pace_wait_ms(&p, 5000, 1), 3600 * 1000);
        pace_free(&p);
}

static void rate_learnt_from_429(void)
{
        struct pace p;
        CHECK_EQ_INT(pace_init(&p, 64, true, 0, 0, 60, 1), 0);
        CHECK(pace_learnt_rate(&p) == 0);
        /* too few acceptances to tell a rate: nothing learnt */
        for (int i = 0; i < 3; i++)
                pace_accepted(&p, 9000 + i, 8990, 5, true);
        pace_rate_limited(&p, 9100, 9050);
        CHECK(pace_learnt_rate(&p) == 0);
        /* 100 acceptances in the last second, then a 429 */
        for (int i = 0; i < 100; i++)
                pace_accepted(&p, 10000 + i * 5, 9990 + i * 5, 5, true);
        pace_rate_limited(&p, 10600, 10400);
        CHECK(pace_learnt_rate(&p) > 96 && pace_learnt_rate(&p) < 98);
        /* a 429 to a request sent before that decision changes nothing */
        pace_rate_limited(&p, 10601, 10500);
        CHECK(pace_learnt_rate(&p) > 96 && pace_learnt_rate(&p) < 98);
        /* requests are spaced: ~10.3 ms apart */
        CHECK(pace_wait_ms(&p, 10600, 1) > 0);
        int64_t t = 10600, starts = 0;
        while (t < 20600 && starts < 100000) {
                int64_t w = pace_wait_ms(&p, t, 1);
                if (w == 0) {
                        pace_started(&p, t, 1);
                        starts++;
                } else {
                        t += w;
                }
        }
        CHECK(starts >= 960 && starts <= 985); /* 10 s at 97/s, relaxing a little */
        /* forgotten after two minutes without a 429 */
        CHECK_EQ_INT(pace_wait_ms(&p, 200000, 1), 0);
        CHECK(pace_learnt_rate(&p) == 0);
        pace_free(&p);
}

static void max_rate_and_budget(void)
{
        struct pace p;
        CHECK_EQ_INT(pace_init(&p, 64, true, 100, 0, 60, 1), 0);
        /* no full bucket at the start: over any window from it, the rate */
        int64_t t = 0, events = 0;
        while (t < 10000 && events < 100000) {
                int64_t w = pace_wait_ms(&p, t, 1);
                if (w == 0) {
                        pace_started(&p, t, 1);
                        events++;
                } else {
                        t += w;
                }
        }
        CHECK(events >= 995 && events <= 1001);
        pace_free(&p);

        CHECK_EQ_INT(pace_init(&p, 64, true, 0, 3, 60, 1), 0);
        for (int i = 0; i < 3; i++) {
                CHECK_EQ_INT(pace_wait_ms(&p, 1000 + i, 1), 0);
                pace_started(&p, 1000 + i, 1);
        }
        CHECK_EQ_INT(pace_wait_ms(&p, 2000, 1), 59000);
        CHECK_EQ_INT(pace_wait_ms(&p, 61000, 1), 0);
        pace_free(&p);
}

static void pinned_when_not_adaptive(void)
{
        struct pace p;
        CHECK_EQ_INT(pace_init(&p, 10, false, 0, 0, 60, 1), 0);
        CHECK_EQ_INT(pace_window(&p), 10);
        pace_overload(&p, 100, 50);
        for (int i = 0; i < 30; i++)
                pace_accepted(&p, 200, 150, 500, true);
        CHECK_EQ_INT(pace_window(&p), 10);
        pace_backoff(&p, 300, 250); /* everything fails: still one probe */
        CHECK_EQ_INT(pace_window(&p), 1);
        pace_accepted(&p, 2000, 1900, 10, true);
        CHECK_EQ_INT(pace_window(&p), 10);
        pace_free(&p);
}

int main(void)
{
        RUN(window_grows_and_halves);
        RUN(latency_brings_it_down);
        RUN(backoff_and_what_ends_it);
        RUN(retry_after_is_a_floor);
        RUN(rate_learnt_from_429);
        RUN(max_rate_and_budget);
        RUN(pinned_when_not_adaptive);
        TEST_MAIN_END;
}
