/* fpm_model.c - a model of nginx in front of PHP-FPM, the backend most Oempro
 * installations run, for delivery benchmarks and scenario tests.
 *
 *   fpm_model [--workers W] [--service-ms T] [--backlog B] [--latency-growth K]
 *             [--limit-rps R] [--retry-after S]
 *             [--fault-503 P] [--fault-429 P] [--fault-retry-after S]
 *             [--fault-hangup P] [--seed N]
 *             [--outage-start S] [--outage-len L]
 *             [--host 127.0.0.1] [--port 0] [--print-port]
 *             [--max-conns 1024] [--max-body BYTES] [--mem-mib 256]
 *             [--log-cap 1000000] [--keepalive-requests 0]
 *
 * One thread, epoll, HTTP/1.1 with keep-alive (Content-Length or chunked
 * request bodies, Expect: 100-continue, Connection: close honoured, pipelined
 * requests answered in order). POST or PUT on any path but the /__ ones is a
 * webhook request. Once its body is in, it meets what a request meets on its
 * way through nginx to a PHP-FPM pool, in this order:
 *
 *   1. --outage-start S --outage-len L: 503 to everything from S to S+L
 *      seconds after the first webhook request (a maintenance page, a pool
 *      that is down).
 *   2. --limit-rps R: nginx's limit_req. When R requests were admitted in the
 *      last second, 429 with `Retry-After: S` (--retry-after, default 1; 0
 *      leaves the header out), at once. "Admitted" is every request past this
 *      step, whatever happens to it after.
 *   3. --fault-503 / --fault-429 / --fault-hangup P: percent of the admitted
 *      requests answered 503, 429, or closed without an answer, drawn from
 *      --seed. None of them is processed. The random 429s carry no
 *      Retry-After unless --fault-retry-after S says so: a Retry-After asks
 *      the client to pause altogether, which the client does (a floor for
 *      all its requests), so one on a tenth of all requests at random would
 *      model a backend asking for a pause every few requests, not faults.
 *   4. W workers (--workers) each serve one request at a time, at most B more
 *      wait for one (--backlog, PHP-FPM's listen backlog); beyond W busy and B
 *      waiting nginx answers 502 at once.
 *   5. The body must be a JSON object or an array of objects (else 400 at
 *      once). A worker takes T * (1 + K * busy / W) ms (--service-ms T,
 *      --latency-growth K, busy counting the request itself) and answers 200
 *      with a PHP notice before `{"Success":true,"ErrorCode":0}`, as Oempro
 *      prints; its events are then accepted. A worker starts the next waiting
 *      request at its previous one's deadline, so the model's own timer
 *      jitter does not change its capacity (W / T requests a second).
 *
 * An accepted event's `eventId` (32 hex digits, or any other string, hashed)
 * goes into a set sized for millions of ids: accepted events, distinct ids and
 * duplicates (an id accepted again) are counted; an event without one is
 * counted apart. A request whose client went away is still processed, as
 * PHP-FPM would (counted as abandoned too).
 *
 *   GET  /__stats   counters as JSON (see stats_json)
 *   GET  /__log     [[t_begin_ms, t_answer_ms, status, connection], ...] per
 *                   webhook request (t from the first webhook request's first
 *                   byte, status 0 for a hang-up, the connection's number: an
 *                   HTTP/1.1 client reads an answer before it sends the next
 *                   request on that connection), in order of the answers;
 *                   ?from=K&max=M pages it
 *                   (M <= 100000); at most --log-cap entries are kept
 *   POST /__reset   zero the counters, the id set, the log and the clock
 *   GET  /          200, to see that the model is up
 *
 * Bounds, whatever the clients send: --max-conns connections (the listener
 * pauses beyond), a 16 KiB head (431), --max-body (4 MiB: 413), bodies and
 * held ids within --mem-mib (beyond: 503 and close), 8 MiB of answers queued
 * per connection, --log-cap log entries, 4M id slots (then counted as
 * overflow, not stored). Exits 0 on SIGTERM or SIGINT.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define INBUF_SZ        (16 * 1024) /* a head and pipelined bytes; a longer head is 431 */
#define LINE_MAX_SZ     4096        /* a chunk-size line */
#define TRAILER_MAX     8192
#define OUT_MAX         (8u << 20)  /* answers queued on one connection */
#define OUT_PAUSE       (64 * 1024) /* no new pipelined request parsed above this */
#define LINGER_NS       2000000000ull
#define NS_MS           1000000ull
#define WAIT_BUCKET_US  100    /* queue-wait histogram resolution */
#define WAIT_BUCKETS    100001 /* up to 10 s, the last bucket everything above */
#define LOG_PAGE_MAX    100000
#define IDSET_MIN_SLOTS (1u << 16)
#define IDSET_MAX_SLOTS (1u << 22) /* 64 MiB, about 3.7M ids at the last load */
#define MAX_WORKERS     100000
#define MAX_BACKLOG     1000000
#define MAX_LIMIT_RPS   1000000

/* ------------------------------------------------------------------ */
/* configuration                                                       */

typedef struct {
        const char *host;
        int port, print_port;
        int workers, backlog;
        double service_ms, growth;
        long limit_rps;
        int retry_after;
        int fault_retry_after; /* the random 429s' Retry-After, 0: none */
        double p503, p429, phang;
        uint64_t seed;
        double outage_start, outage_len;
        int max_conns;
        long long max_body, mem_budget;
        long log_cap, keepalive_requests;
} config;

/* ------------------------------------------------------------------ */
/* the set of accepted eventIds                                        */

typedef struct {
        uint64_t a, b;
} id128;

typedef struct {
        id128 *slot; /* {0,0} marks an empty slot; the zero id is kept apart */
        size_t cap, n;
        int zero_seen;
        uint64_t seed; /* slots are hashed: ids come from the client */
        long long overflow;
} idset;

static int idset_init(idset *s, uint64_t seed)
{
        s->slot = calloc(IDSET_MIN_SLOTS, sizeof *s->slot);
        s->cap = IDSET_MIN_SLOTS;
        s->n = 0;
        s->zero_seen = 0;
        s->seed = seed;
        s->overflow = 0;
        return s->slot ? 0 : -1;
}

static size_t idset_pos(const idset *s, id128 k)
{
        return (size_t)XXH3_64bits_withSeed(&k, sizeof k, s->seed) & (s->cap - 1);
}

static void idset_grow(idset *s)
{
        size_t ncap = s->cap * 2;
        id128 *ns = calloc(ncap, sizeof *ns);
        if (!ns)
                return; /* stays at this size: a fuller table, still correct */
        id128 *old = s->slot;
        size_t ocap = s->cap;
        s->slot = ns;
        s->cap = ncap;
        for (size_t i = 0; i < ocap; i++) {
                if (!old[i].a && !old[i].b)
                        continue;
                size_t p = idset_pos(s, old[i]);
                while (s->slot[p].a || s->slot[p].b)
                        p = (p + 1) & (s->cap - 1);
                s->slot[p] = old[i];
        }
        free(old);
}

/* 1: new, 0: seen before, -1: the set is full (not recorded) */
static int idset_add(idset *s, id128 k)
{
        if (!k.a && !k.b) {
                int was = s->zero_seen;
                s->zero_seen = 1;
                return !was;
        }
        if ((s->n + 1) * 10 > s->cap * 7 && s->cap < IDSET_MAX_SLOTS)
                idset_grow(s);
        size_t p = idset_pos(s, k);
        while (s->slot[p].a || s->slot[p].b) {
                if (s->slot[p].a == k.a && s->slot[p].b == k.b)
                        return 0;
                p = (p + 1) & (s->cap - 1);
        }
        /* a probe must always find an empty slot: stop at 90% */
        if ((s->n + 1) * 10 > s->cap * 9) {
                s->overflow++;
                return -1;
        }
        s->slot[p] = k;
        s->n++;
        return 1;
}

static int hexval(int ch)
{
        if (ch >= '0' && ch <= '9')
                return ch - '0';
        if (ch >= 'a' && ch <= 'f')
                return ch - 'a' + 10;
        if (ch >= 'A' && ch <= 'F')
                return ch - 'A' + 10;
        return -1;
}

/* pmtatail's ids are 32 hex digits; any other string is hashed (odd = 1) */
static id128 id_of(const char *s, size_t n, int *odd)
{
        id128 k = {0, 0};
        if (n == 32) {
                int ok = 1;
                for (size_t i = 0; i < 32 && ok; i++) {
                        int v = hexval((unsigned char)s[i]);
                        if (v < 0)
                                ok = 0;
                        else if (i < 16)
                                k.a = k.a << 4 | (uint64_t)v;
                        else
                                k.b = k.b << 4 | (uint64_t)v;
                }
                if (ok) {
                        *odd = 0;
                        return k;
                }
        }
        XXH128_hash_t h = XXH3_128bits(s, n);
        k.a = h.low64;
        k.b = h.high64;
        *odd = 1;
        return k;
}

/* ------------------------------------------------------------------ */
/* connections                                                         */

enum {
        ST_HEAD,
        ST_BODY,
        ST_CH_SIZE,
        ST_CH_DATA,
        ST_CH_CRLF,
        ST_CH_TRAILER,
        ST_WAIT,    /* a webhook request queued or in service */
        ST_CLOSING, /* the last answer queued: send it, then linger */
        ST_LINGER   /* write side shut: input discarded until EOF or timeout */
};

enum { K_OTHER, K_WEBHOOK, K_STATS, K_LOG, K_RESET, K_ALIVE, K_NOTFOUND, K_BADMETHOD };

typedef struct conn {
        int fd;          /* -1 once closed while its request is still held */
        uint32_t serial; /* the connection's number, in the log */
        int state;
        uint32_t evmask;
        int http10, keepalive, head_only, kind, rd_eof, held;
        long served;           /* requests answered on this connection */
        uint64_t t_begin;      /* first byte of the current request */
        uint64_t t_ready;      /* the request whole */
        uint64_t deadline;     /* in service: when its worker is done */
        uint64_t linger_until; /* ST_LINGER */
        char in[INBUF_SZ];     /* not yet parsed input */
        size_t inlen;
        char *body; /* the request body, decoded */
        size_t body_len, body_cap;
        long long remaining; /* Content-Length bytes, or the chunk's, still to come */
        size_t reserved;     /* bytes of the memory budget this request holds */
        size_t trailer_len;
        id128 *ids; /* the request's eventIds, while it waits for a worker */
        size_t nids, events, noid, odd;
        unsigned long log_from, log_max; /* GET /__log?from=&max= */
        char *out;                       /* answers not yet sent */
        size_t outlen, outoff, outcap;
} conn;

/* ------------------------------------------------------------------ */
/* the model's state (this is the program's main file)                 */

typedef struct {
        int64_t t_begin_us; /* from the first webhook request's first byte */
        uint32_t dur_us;    /* to the answer (or the hang-up) */
        uint32_t conn;      /* the connection's serial number */
        uint16_t status;    /* 0: hang-up */
} logent;

static struct {
        long long requests, admitted, limited, fault503, fault429, hangups, outage503, full502;
        long long bad_body, over_budget, other, by_status[600];
        long long events, distinct, dups, noid, odd, abandoned;
        long long conns_total;
        int conns_max, in_service_max, waiting_max;
        uint32_t wait_hist[WAIT_BUCKETS];
        long long wait_n;
        double wait_sum_ms, wait_max_ms, service_sum_ms, service_max_ms;
        long long service_n;
        uint64_t t_first, t_last_accept; /* 0: none yet */
} S;

static config cfg = {
    .host = "127.0.0.1",
    .workers = 5,
    .service_ms = 20,
    .backlog = 5,
    .retry_after = 1,
    .seed = 1,
    .max_conns = 1024,
    .max_body = 4ll << 20,
    .mem_budget = 256ll << 20,
    .log_cap = 1000000,
};

static int epfd = -1, lfd = -1, tfd = -1, sfd = -1;
static conn **conns; /* by descriptor */
static int nconns_slots, conns_now, listening, n_lingering;
static uint64_t listen_retry_at;
static conn **heap; /* the workers' requests, a min-heap by deadline */
static int nheap;
static conn **queue; /* requests waiting for a worker, a ring */
static int qhead, qlen, qcap;
static uint64_t *lim; /* admission times of the last limit_rps requests, a ring */
static long limn, limhead;
static idset ids;
static logent *logv;
static size_t logn, logcap_now;
static long long log_dropped;
static uint64_t rng_state, armed;
static long long reserved_total;
static uint32_t conn_serial; /* never reset: a connection keeps its number */

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double rnd01(void) /* splitmix64 */
{
        uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        return (double)(z >> 11) / 9007199254740992.0;
}

static double rel_ms(uint64_t t)
{
        return S.t_first ? ((double)t - (double)S.t_first) / 1e6 : 0.0;
}

/* ------------------------------------------------------------------ */
/* answers                                                             */

static int out_append(conn *c, const void *p, size_t n)
{
        if (c->outlen + n > OUT_MAX)
                return -1;
        if (c->outlen + n > c->outcap) {
                size_t cap = c->outcap ? c->outcap : 1024;
                while (cap < c->outlen + n)
                        cap *= 2;
                char *o = realloc(c->out, cap);
                if (!o)
                        return -1;
                c->out = o;
                c->outcap = cap;
        }
        memcpy(c->out + c->outlen, p, n);
        c->outlen += n;
        return 0;
}

/* a growing text for the admin answers, capped at OUT_MAX */
typedef struct {
        char *p;
        size_t n, cap;
        int err;
} sbuf;

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *s, const char *fmt, ...)
{
        if (s->err)
                return;
        for (;;) {
                va_list ap;
                va_start(ap, fmt);
                int k = vsnprintf(s->p ? s->p + s->n : NULL, s->p ? s->cap - s->n : 0, fmt, ap);
                va_end(ap);
                if (k < 0) {
                        s->err = 1;
                        return;
                }
                if (s->p && s->n + (size_t)k < s->cap) {
                        s->n += (size_t)k;
                        return;
                }
                size_t cap = s->cap ? s->cap : 4096;
                while (cap <= s->n + (size_t)k)
                        cap *= 2;
                char *np = cap > OUT_MAX ? NULL : realloc(s->p, cap);
                if (!np) {
                        s->err = 1;
                        return;
                }
                s->p = np;
                s->cap = cap;
        }
}

static const char *reason(int code)
{
        switch (code) {
        case 200:
                return "OK";
        case 400:
                return "Bad Request";
        case 404:
                return "Not Found";
        case 405:
                return "Not Allowed";
        case 413:
                return "Request Entity Too Large";
        case 429:
                return "Too Many Requests";
        case 431:
                return "Request Header Fields Too Large";
        case 501:
                return "Not Implemented";
        case 502:
                return "Bad Gateway";
        case 503:
                return "Service Temporarily Unavailable";
        default:
                return "Status";
        }
}

/* Queue one answer. closing: "Connection: close", then ST_CLOSING. */
static void respond(conn *c, int code, const char *ctype, const char *extra, const char *body,
                    size_t blen, int closing)
{
        c->served++;
        /* a client that shut its side gets its pipelined requests answered,
         * then the connection ends */
        if (!c->keepalive || (c->rd_eof && !c->inlen) ||
            (cfg.keepalive_requests > 0 && c->served >= cfg.keepalive_requests))
                closing = 1;
        char hdr[512];
        int n = snprintf(hdr, sizeof hdr,
                         "HTTP/1.1 %d %s\r\nServer: nginx\r\nContent-Type: %s\r\n"
                         "Content-Length: %zu\r\n%s%s\r\n",
                         code, reason(code), ctype, blen, extra ? extra : "",
                         closing ? "Connection: close\r\n"
                                 : (c->http10 ? "Connection: keep-alive\r\n" : ""));
        if (n < 0 || (size_t)n >= sizeof hdr || out_append(c, hdr, (size_t)n) < 0 ||
            (!c->head_only && out_append(c, body, blen) < 0)) {
                /* cannot queue it: the connection goes, as if the answer were lost */
                c->outlen = c->outoff = 0;
                closing = 1;
        }
        if (closing)
                c->state = ST_CLOSING;
}

/* nginx's own error page */
static void respond_page(conn *c, int code, const char *extra, int closing)
{
        char b[300];
        int n = snprintf(b, sizeof b,
                         "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n"
                         "<center><h1>%d %s</h1></center>\r\n<hr><center>nginx</center>\r\n"
                         "</body>\r\n</html>\r\n",
                         code, reason(code), code, reason(code));
        respond(c, code, "text/html", extra, b, (size_t)n, closing);
}

/* what Oempro's bounce webhook prints with display_errors on */
static const char OEMPRO_OK[] =
    "<br />\n<b>Notice</b>:  Undefined index: orcpt in "
    "<b>/var/www/oempro/system/bounce_webhook.php</b> on line <b>57</b><br />\n"
    "{\"Success\":true,\"ErrorCode\":0}";

/* ------------------------------------------------------------------ */
/* the log and the counters                                            */

static void log_answer(conn *c, int status, uint64_t now)
{
        if (status > 0 && status < 600)
                S.by_status[status]++;
        if (logn == logcap_now) {
                size_t ncap = logcap_now ? logcap_now * 2 : 65536;
                if (ncap > (size_t)cfg.log_cap)
                        ncap = (size_t)cfg.log_cap;
                logent *nl = ncap > logcap_now ? realloc(logv, ncap * sizeof *nl) : NULL;
                if (!nl) {
                        log_dropped++;
                        return;
                }
                logv = nl;
                logcap_now = ncap;
        }
        uint64_t d = (now - c->t_begin) / 1000;
        logv[logn].t_begin_us = ((int64_t)c->t_begin - (int64_t)S.t_first) / 1000;
        logv[logn].dur_us = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
        logv[logn].conn = c->serial;
        logv[logn].status = (uint16_t)status;
        logn++;
}

static void stats_reset(void)
{
        memset(&S, 0, sizeof S);
        S.conns_max = conns_now;
        S.in_service_max = nheap;
        S.waiting_max = qlen;
        free(ids.slot);
        if (idset_init(&ids, ids.seed) < 0) {
                fprintf(stderr, "fpm_model: out of memory\n");
                exit(1);
        }
        free(logv);
        logv = NULL;
        logn = logcap_now = 0;
        log_dropped = 0;
        limn = limhead = 0;
}

static double wait_pct(double q)
{
        if (!S.wait_n)
                return 0;
        long long want = (long long)(q * (double)S.wait_n + 0.999999);
        if (want < 1)
                want = 1;
        long long acc = 0;
        for (int i = 0; i < WAIT_BUCKETS; i++) {
                acc += S.wait_hist[i];
                if (acc >= want) { /* the bucket's upper bound, never above the max */
                        double up = (double)(i + 1) * WAIT_BUCKET_US / 1000.0;
                        return up < S.wait_max_ms ? up : S.wait_max_ms;
                }
        }
        return S.wait_max_ms;
}

static void stats_json(sbuf *b)
{
        uint64_t now = now_ns();
        double cap = cfg.workers * 1000.0 / (cfg.service_ms * (1 + cfg.growth));
        sb_printf(b,
                  "{\"config\": {\"workers\": %d, \"service_ms\": %.3f, \"backlog\": %d, "
                  "\"latency_growth\": %.3f, \"limit_rps\": %ld, \"retry_after\": %d, "
                  "\"fault_503\": %.3f, \"fault_429\": %.3f, \"fault_retry_after\": %d, "
                  "\"fault_hangup\": %.3f, "
                  "\"outage_start\": %.3f, \"outage_len\": %.3f, \"capacity_rps\": %.3f},\n",
                  cfg.workers, cfg.service_ms, cfg.backlog, cfg.growth, cfg.limit_rps,
                  cfg.retry_after, cfg.p503, cfg.p429, cfg.fault_retry_after, cfg.phang,
                  cfg.outage_start, cfg.outage_len, cap);
        sb_printf(b,
                  " \"requests\": %lld, \"admitted\": %lld, \"s502\": %lld, \"s429\": %lld, "
                  "\"s503\": %lld, \"hangups\": %lld,\n \"limited_429\": %lld, "
                  "\"fault_429\": %lld, \"fault_503\": %lld, \"outage_503\": %lld, "
                  "\"bad_body\": %lld, \"over_budget\": %lld, \"other_requests\": %lld,\n",
                  S.requests, S.admitted, S.by_status[502], S.by_status[429], S.by_status[503],
                  S.hangups, S.limited, S.fault429, S.fault503, S.outage503, S.bad_body,
                  S.over_budget, S.other);
        sb_printf(b, " \"by_status\": {");
        int first = 1;
        for (int i = 0; i < 600; i++)
                if (S.by_status[i]) {
                        sb_printf(b, "%s\"%d\": %lld", first ? "" : ", ", i, S.by_status[i]);
                        first = 0;
                }
        sb_printf(b, "},\n");
        sb_printf(b,
                  " \"events\": %lld, \"distinct\": %lld, \"duplicates\": %lld, "
                  "\"no_id\": %lld, \"odd_ids\": %lld, \"ids_overflow\": %lld, "
                  "\"abandoned\": %lld,\n",
                  S.events, S.distinct, S.dups, S.noid, S.odd, ids.overflow, S.abandoned);
        sb_printf(b,
                  " \"connections\": %lld, \"connections_now\": %d, \"max_connections\": %d, "
                  "\"in_service\": %d, \"waiting\": %d, \"max_in_service\": %d, "
                  "\"max_waiting\": %d,\n",
                  S.conns_total, conns_now, S.conns_max, nheap, qlen, S.in_service_max,
                  S.waiting_max);
        sb_printf(b,
                  " \"queue_wait_ms\": {\"count\": %lld, \"mean\": %.3f, \"p50\": %.1f, "
                  "\"p90\": %.1f, \"p99\": %.1f, \"max\": %.3f, \"hist\": [",
                  S.wait_n, S.wait_n ? S.wait_sum_ms / (double)S.wait_n : 0.0, wait_pct(0.5),
                  wait_pct(0.9), wait_pct(0.99), S.wait_max_ms);
        /* a coarse histogram: counts of waits up to each bound (ms) */
        static const int edges[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000};
        long long acc = 0;
        int e = 0;
        for (int i = 0; i < WAIT_BUCKETS - 1 && e < 12; i++) {
                if ((i + 1) * WAIT_BUCKET_US > edges[e] * 1000) {
                        sb_printf(b, "[%d, %lld], ", edges[e], acc);
                        acc = 0;
                        e++;
                }
                acc += S.wait_hist[i];
        }
        for (int i = (edges[11] * 1000) / WAIT_BUCKET_US; i < WAIT_BUCKETS; i++)
                acc += S.wait_hist[i];
        sb_printf(b, "[null, %lld]]},\n", acc);
        sb_printf(b,
                  " \"service_ms\": {\"count\": %lld, \"mean\": %.3f, \"max\": %.3f},\n"
                  " \"t_first_ms\": %s, \"t_last_accept_ms\": %.3f, \"t_now_ms\": %.3f, "
                  "\"log_entries\": %zu, \"log_dropped\": %lld}\n",
                  S.service_n, S.service_n ? S.service_sum_ms / (double)S.service_n : 0.0,
                  S.service_max_ms, S.t_first ? "0" : "null",
                  S.t_last_accept ? rel_ms(S.t_last_accept) : 0.0, rel_ms(now), logn, log_dropped);
}

static void log_json(sbuf *b, unsigned long from, unsigned long max)
{
        if (max == 0 || max > LOG_PAGE_MAX)
                max = LOG_PAGE_MAX;
        sb_printf(b, "{\"total\": %zu, \"dropped\": %lld, \"from\": %lu, \"entries\": [", logn,
                  log_dropped, from);
        for (unsigned long i = from; i < logn && i - from < max; i++) {
                const logent *l = &logv[i];
                sb_printf(b, "%s[%.3f, %.3f, %u, %" PRIu32 "]", i == from ? "" : ",\n",
                          (double)l->t_begin_us / 1000.0,
                          (double)(l->t_begin_us + (int64_t)l->dur_us) / 1000.0, l->status,
                          l->conn);
        }
        sb_printf(b, "]}\n");
}

/* ------------------------------------------------------------------ */
/* connection plumbing                                                 */

static void set_events(conn *c)
{
        uint32_t ev = 0;
        if (!c->rd_eof && c->inlen < INBUF_SZ)
                ev |= EPOLLIN;
        if (c->outoff < c->outlen)
                ev |= EPOLLOUT;
        if (ev == c->evmask)
                return;
        struct epoll_event e;
        memset(&e, 0, sizeof e);
        e.events = ev;
        e.data.fd = c->fd;
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e);
        c->evmask = ev;
}

static void add_listener(void)
{
        struct epoll_event e;
        memset(&e, 0, sizeof e);
        e.events = EPOLLIN;
        e.data.fd = lfd;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &e) == 0)
                listening = 1;
}

static void pause_listener(void)
{
        epoll_ctl(epfd, EPOLL_CTL_DEL, lfd, NULL);
        listening = 0;
}

static void release_body(conn *c)
{
        free(c->body);
        c->body = NULL;
        c->body_len = c->body_cap = 0;
}

static void release_request(conn *c)
{
        release_body(c);
        free(c->ids);
        c->ids = NULL;
        c->nids = c->events = c->noid = c->odd = 0;
        reserved_total -= (long long)c->reserved;
        c->reserved = 0;
}

static void conn_free(conn *c)
{
        release_request(c);
        free(c->out);
        free(c);
}

/* Close the socket. The struct goes too, unless a worker or the queue holds
 * its request: then it goes when the worker is done with it. */
static void conn_close(conn *c)
{
        if (c->fd < 0)
                return;
        if (c->state == ST_LINGER)
                n_lingering--;
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        conns[c->fd] = NULL;
        close(c->fd);
        c->fd = -1;
        conns_now--;
        if (!listening && !listen_retry_at)
                add_listener();
        if (!c->held)
                conn_free(c);
}

static void request_reset(conn *c)
{
        release_request(c);
        c->state = ST_HEAD;
        c->kind = K_OTHER;
        c->head_only = 0;
        c->remaining = 0;
        c->trailer_len = 0;
        c->t_begin = c->inlen ? now_ns() : 0;
}

static int process_input(conn *c);

/* Send what is queued, and parse on what the queue held back; -1 when the
 * connection was closed. */
static int conn_flush(conn *c)
{
        for (;;) {
                while (c->outoff < c->outlen) {
                        ssize_t k =
                            send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
                        if (k < 0) {
                                if (errno == EINTR)
                                        continue;
                                if (errno == EAGAIN || errno == EWOULDBLOCK)
                                        break;
                                conn_close(c);
                                return -1;
                        }
                        c->outoff += (size_t)k;
                }
                if (c->outoff < c->outlen)
                        break;
                c->outoff = c->outlen = 0;
                if (c->outcap > 65536) { /* a big /__log page: not kept */
                        free(c->out);
                        c->out = NULL;
                        c->outcap = 0;
                }
                if (c->state == ST_CLOSING) {
                        /* lingering keeps unread input from turning our FIN into a RST
                         * that could destroy the answer before the client reads it */
                        shutdown(c->fd, SHUT_WR);
                        c->state = ST_LINGER;
                        c->linger_until = now_ns() + LINGER_NS;
                        c->inlen = 0;
                        n_lingering++;
                        break;
                }
                /* pipelined requests held back while answers were queued (OUT_PAUSE) */
                if (c->state != ST_HEAD || !c->inlen)
                        break;
                if (process_input(c) < 0)
                        return -1;
                if (c->outoff == c->outlen)
                        break;
        }
        if (c->rd_eof && c->outoff == c->outlen && c->state != ST_WAIT) {
                conn_close(c); /* the client is done sending and has its answers */
                return -1;
        }
        set_events(c);
        return 0;
}

/* ------------------------------------------------------------------ */
/* workers                                                             */

static void heap_swap(int i, int j)
{
        conn *t = heap[i];
        heap[i] = heap[j];
        heap[j] = t;
}

static void heap_push(conn *c)
{
        int i = nheap++;
        heap[i] = c;
        while (i > 0 && heap[(i - 1) / 2]->deadline > heap[i]->deadline) {
                heap_swap(i, (i - 1) / 2);
                i = (i - 1) / 2;
        }
}

static conn *heap_pop(void)
{
        conn *top = heap[0];
        heap[0] = heap[--nheap];
        int i = 0;
        for (;;) {
                int l = 2 * i + 1, r = l + 1, m = i;
                if (l < nheap && heap[l]->deadline < heap[m]->deadline)
                        m = l;
                if (r < nheap && heap[r]->deadline < heap[m]->deadline)
                        m = r;
                if (m == i)
                        break;
                heap_swap(i, m);
                i = m;
        }
        return top;
}

static void start_service(conn *c, uint64_t at)
{
        double busy = (double)(nheap + 1);
        double ms = cfg.service_ms * (1.0 + cfg.growth * busy / cfg.workers);
        c->deadline = at + (uint64_t)(ms * 1e6);
        heap_push(c);
        if (nheap > S.in_service_max)
                S.in_service_max = nheap;
        double wait = at > c->t_ready ? (double)(at - c->t_ready) / 1e6 : 0.0;
        size_t bucket = (size_t)(wait * 1000.0 / WAIT_BUCKET_US);
        S.wait_hist[bucket < WAIT_BUCKETS ? bucket : WAIT_BUCKETS - 1]++;
        S.wait_n++;
        S.wait_sum_ms += wait;
        if (wait > S.wait_max_ms)
                S.wait_max_ms = wait;
        S.service_n++;
        S.service_sum_ms += ms;
        if (ms > S.service_max_ms)
                S.service_max_ms = ms;
}

static void arm_timer(void)
{
        if (!nheap || heap[0]->deadline == armed)
                return;
        struct itimerspec its;
        memset(&its, 0, sizeof its);
        its.it_value.tv_sec = (time_t)(heap[0]->deadline / 1000000000ull);
        its.it_value.tv_nsec = (long)(heap[0]->deadline % 1000000000ull);
        timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        armed = heap[0]->deadline;
}

/* A worker is done with c's request: its events are accepted, it answers. */
static void finish_service(conn *c, uint64_t now)
{
        for (size_t i = 0; i < c->nids; i++) {
                int r = idset_add(&ids, c->ids[i]);
                if (r > 0)
                        S.distinct++;
                else if (r == 0)
                        S.dups++;
        }
        S.events += (long long)c->events;
        S.noid += (long long)c->noid;
        S.odd += (long long)c->odd;
        S.t_last_accept = now;
        log_answer(c, 200, now);
        c->held = 0;
        if (c->fd < 0) {
                S.abandoned++;
                conn_free(c);
                return;
        }
        respond(c, 200, "text/html; charset=UTF-8", NULL, OEMPRO_OK, sizeof OEMPRO_OK - 1, 0);
        if (c->state != ST_CLOSING)
                request_reset(c);
        if (process_input(c) == 0)
                conn_flush(c);
}

static void on_timer(void)
{
        uint64_t buf;
        if (read(tfd, &buf, sizeof buf) < 0 && errno != EAGAIN)
                return;
        armed = 0;
        uint64_t now = now_ns();
        while (nheap && heap[0]->deadline <= now) {
                conn *c = heap_pop();
                uint64_t done = c->deadline;
                /* the worker takes the next one at its deadline, not when this
                 * loop got to it, so late timers do not cost capacity */
                if (qlen) {
                        conn *next = queue[qhead];
                        qhead = (qhead + 1) % qcap;
                        qlen--;
                        start_service(next, done > next->t_ready ? done : next->t_ready);
                }
                finish_service(c, now);
        }
}

/* ------------------------------------------------------------------ */
/* a whole request                                                     */

static int parse_events(conn *c)
{
        json_error_t err;
        json_t *doc = json_loadb(c->body ? c->body : "", c->body_len, 0, &err);
        if (!doc)
                return -1;
        size_t n = json_is_array(doc) ? json_array_size(doc) : 1;
        if (!json_is_array(doc) && !json_is_object(doc)) {
                json_decref(doc);
                return -1;
        }
        c->ids = n ? malloc(n * sizeof *c->ids) : NULL;
        if (n && !c->ids) {
                json_decref(doc);
                return -1;
        }
        for (size_t i = 0; i < n; i++) {
                json_t *o = json_is_array(doc) ? json_array_get(doc, i) : doc;
                if (!json_is_object(o)) {
                        json_decref(doc);
                        return -1;
                }
                json_t *id = json_object_get(o, "eventId");
                if (json_is_string(id)) {
                        int odd;
                        c->ids[c->nids++] =
                            id_of(json_string_value(id), json_string_length(id), &odd);
                        c->odd += (size_t)odd;
                } else {
                        c->noid++;
                }
        }
        c->events = n;
        json_decref(doc);
        return 0;
}

static int limit_admit(uint64_t now)
{
        if (!cfg.limit_rps)
                return 1;
        if (limn == cfg.limit_rps) {
                if (lim[limhead] + 1000000000ull > now)
                        return 0; /* limit_rps admissions within the last second */
                lim[limhead] = now;
                limhead = (limhead + 1) % cfg.limit_rps;
        } else {
                lim[(limhead + limn) % cfg.limit_rps] = now;
                limn++;
        }
        return 1;
}

static void answer_now(conn *c, int code, const char *extra, uint64_t now)
{
        log_answer(c, code, now);
        respond_page(c, code, extra, 0);
}

static void admin(conn *c)
{
        sbuf b = {0};
        if (c->kind == K_STATS) {
                stats_json(&b);
        } else if (c->kind == K_LOG) {
                log_json(&b, c->log_from, c->log_max);
        } else if (c->kind == K_RESET) {
                stats_reset();
                sb_printf(&b, "{\"reset\": true}\n");
        } else {
                sb_printf(&b, "{\"model\": \"fpm\"}\n");
        }
        if (b.err)
                respond_page(c, 503, NULL, 1);
        else
                respond(c, 200, "application/json", NULL, b.p, b.n, 0);
        free(b.p);
}

/* The request is whole. -1 when the connection was closed (a hang-up). */
static int request_complete(conn *c)
{
        uint64_t now = now_ns();
        c->t_ready = now;
        if (c->kind != K_WEBHOOK) {
                S.other++;
                if (c->kind == K_NOTFOUND)
                        respond_page(c, 404, NULL, 0);
                else if (c->kind == K_BADMETHOD)
                        respond_page(c, 405, NULL, 0);
                else
                        admin(c);
                if (c->state != ST_CLOSING)
                        request_reset(c);
                return 0;
        }
        S.requests++;
        if (!S.t_first)
                S.t_first = c->t_begin;
        double t_s = rel_ms(now) / 1000.0;
        char ra[64];
        if (cfg.outage_len > 0 && t_s >= cfg.outage_start &&
            t_s < cfg.outage_start + cfg.outage_len) {
                S.outage503++;
                answer_now(c, 503, NULL, now);
        } else if (!limit_admit(now)) {
                S.limited++;
                if (cfg.retry_after > 0)
                        snprintf(ra, sizeof ra, "Retry-After: %d\r\n", cfg.retry_after);
                answer_now(c, 429, cfg.retry_after > 0 ? ra : NULL, now);
        } else {
                S.admitted++;
                double r = rnd01() * 100.0;
                if (r < cfg.p503) {
                        S.fault503++;
                        answer_now(c, 503, NULL, now);
                } else if (r < cfg.p503 + cfg.p429) {
                        S.fault429++;
                        if (cfg.fault_retry_after > 0)
                                snprintf(ra, sizeof ra, "Retry-After: %d\r\n",
                                         cfg.fault_retry_after);
                        answer_now(c, 429, cfg.fault_retry_after > 0 ? ra : NULL, now);
                } else if (r < cfg.p503 + cfg.p429 + cfg.phang) {
                        S.hangups++;
                        log_answer(c, 0, now);
                        conn_close(c);
                        return -1;
                } else if (nheap == cfg.workers && qlen == cfg.backlog) {
                        S.full502++;
                        answer_now(c, 502, NULL, now);
                } else if (parse_events(c) < 0) {
                        S.bad_body++;
                        answer_now(c, 400, NULL, now);
                } else {
                        release_body(c); /* the ids are all a worker needs */
                        c->held = 1;
                        c->state = ST_WAIT;
                        if (nheap < cfg.workers) {
                                start_service(c, now);
                        } else {
                                queue[(qhead + qlen) % qcap] = c;
                                qlen++;
                                if (qlen > S.waiting_max)
                                        S.waiting_max = qlen;
                        }
                        return 0;
                }
        }
        if (c->state != ST_CLOSING)
                request_reset(c);
        return 0;
}

/* ------------------------------------------------------------------ */
/* parsing                                                             */

static int lc(int ch)
{
        return (ch >= 'A' && ch <= 'Z') ? ch + 32 : ch;
}

static int ieq(const char *a, size_t n, const char *lit)
{
        size_t m = strlen(lit);
        if (n != m)
                return 0;
        for (size_t i = 0; i < n; i++)
                if (lc((unsigned char)a[i]) != lit[i])
                        return 0;
        return 1;
}

/* does the comma-separated value v hold the token tok? */
static int has_token(const char *v, size_t vn, const char *tok)
{
        const char *p = v, *e = v + vn;
        while (p < e) {
                const char *comma = memchr(p, ',', (size_t)(e - p));
                const char *te = comma ? comma : e;
                const char *t = p;
                while (t < te && (*t == ' ' || *t == '\t'))
                        t++;
                const char *t2 = te;
                while (t2 > t && (t2[-1] == ' ' || t2[-1] == '\t'))
                        t2--;
                if (ieq(t, (size_t)(t2 - t), tok))
                        return 1;
                p = te + 1;
        }
        return 0;
}

static unsigned long query_ul(const char *q, size_t qn, const char *key)
{
        size_t kl = strlen(key);
        const char *p = q, *e = q + qn;
        while (p < e) {
                const char *amp = memchr(p, '&', (size_t)(e - p));
                const char *pe = amp ? amp : e;
                if ((size_t)(pe - p) > kl && !memcmp(p, key, kl) && p[kl] == '=') {
                        unsigned long v = 0;
                        for (const char *d = p + kl + 1; d < pe && *d >= '0' && *d <= '9'; d++)
                                v = v > (ULONG_MAX - 9) / 10 ? ULONG_MAX
                                                             : v * 10 + (unsigned)(*d - '0');
                        return v;
                }
                p = pe + 1;
        }
        return 0;
}

/* The head h[0..hl) (request line, headers, empty line). 0, or a status to
 * answer before closing. Sets the request's kind and its body's framing. */
static int parse_head(conn *c, const char *h, size_t hl, long long *clen, int *chunked,
                      int *expect100)
{
        const char *end = h + hl;
        const char *le = memchr(h, '\n', hl);
        size_t ll = (size_t)(le - h);
        if (ll && h[ll - 1] == '\r')
                ll--;
        const char *sp1 = memchr(h, ' ', ll);
        if (!sp1 || sp1 == h)
                return 400;
        size_t ml = (size_t)(sp1 - h);
        for (size_t i = 0; i < ml; i++)
                if (h[i] < 'A' || h[i] > 'Z')
                        return 400;
        const char *tgt = sp1 + 1;
        const char *sp2 = memchr(tgt, ' ', (size_t)(h + ll - tgt));
        if (!sp2 || sp2 == tgt)
                return 400;
        for (const char *t = tgt; t < sp2; t++)
                if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
                        return 400;
        const char *ver = sp2 + 1;
        if ((size_t)(h + ll - ver) != 8 || memcmp(ver, "HTTP/1.", 7) ||
            (ver[7] != '0' && ver[7] != '1'))
                return 400;
        c->http10 = ver[7] == '0';
        c->keepalive = !c->http10;

        size_t tl = (size_t)(sp2 - tgt);
        const char *qm = memchr(tgt, '?', tl);
        size_t pl = qm ? (size_t)(qm - tgt) : tl;
        int get = ml == 3 && !memcmp(h, "GET", 3), is_head = ml == 4 && !memcmp(h, "HEAD", 4);
        int post = ml == 4 && !memcmp(h, "POST", 4), put = ml == 3 && !memcmp(h, "PUT", 3);
        c->head_only = is_head;
        if (get && pl == 8 && !memcmp(tgt, "/__stats", 8)) {
                c->kind = K_STATS;
        } else if (get && pl == 6 && !memcmp(tgt, "/__log", 6)) {
                c->kind = K_LOG;
                c->log_from = qm ? query_ul(qm + 1, tl - pl - 1, "from") : 0;
                c->log_max = qm ? query_ul(qm + 1, tl - pl - 1, "max") : 0;
        } else if (post && pl == 8 && !memcmp(tgt, "/__reset", 8)) {
                c->kind = K_RESET;
        } else if ((get || is_head) && pl == 1) {
                c->kind = K_ALIVE;
        } else if (post || put) {
                c->kind = K_WEBHOOK;
        } else if (get || is_head) {
                c->kind = K_NOTFOUND;
        } else {
                c->kind = K_BADMETHOD;
        }

        int te = 0;
        *clen = -1;
        *chunked = 0;
        *expect100 = 0;
        for (const char *p = le + 1; p < end;) {
                const char *e = memchr(p, '\n', (size_t)(end - p));
                size_t n = (size_t)(e - p);
                if (n && p[n - 1] == '\r')
                        n--;
                if (n == 0)
                        break;
                if (*p == ' ' || *p == '\t')
                        return 400; /* obsolete line folding */
                const char *colon = memchr(p, ':', n);
                if (!colon || colon == p)
                        return 400;
                size_t nl = (size_t)(colon - p);
                for (size_t i = 0; i < nl; i++)
                        if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 127)
                                return 400;
                const char *v = colon + 1, *ve = p + n;
                while (v < ve && (*v == ' ' || *v == '\t'))
                        v++;
                while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                        ve--;
                size_t vn = (size_t)(ve - v);
                if (ieq(p, nl, "content-length")) {
                        long long x = 0;
                        if (!vn)
                                return 400;
                        for (size_t i = 0; i < vn; i++) {
                                if (v[i] < '0' || v[i] > '9')
                                        return 400;
                                x = x > (LLONG_MAX - 9) / 10 ? LLONG_MAX : x * 10 + (v[i] - '0');
                        }
                        if (*clen >= 0 && *clen != x)
                                return 400;
                        *clen = x;
                } else if (ieq(p, nl, "transfer-encoding")) {
                        if (te || !ieq(v, vn, "chunked"))
                                return 501;
                        te = 1;
                        *chunked = 1;
                } else if (ieq(p, nl, "connection")) {
                        if (has_token(v, vn, "close"))
                                c->keepalive = 0;
                        else if (has_token(v, vn, "keep-alive"))
                                c->keepalive = 1;
                } else if (ieq(p, nl, "expect")) {
                        if (ieq(v, vn, "100-continue"))
                                *expect100 = 1;
                }
                p = e + 1;
        }
        if (*chunked && *clen >= 0)
                return 400; /* both framings: a smuggling attempt, as nginx says */
        return 0;
}

/* end of the head block in b[0..len): the offset past its empty line, or 0 */
static size_t head_end(const char *b, size_t len)
{
        for (const char *p = b, *e = b + len; p < e;) {
                const char *lf = memchr(p, '\n', (size_t)(e - p));
                if (!lf)
                        return 0;
                if (lf + 1 < e && lf[1] == '\n')
                        return (size_t)(lf + 2 - b);
                if (lf + 2 < e && lf[1] == '\r' && lf[2] == '\n')
                        return (size_t)(lf + 3 - b);
                p = lf + 1;
        }
        return 0;
}

static void consume(conn *c, size_t n)
{
        memmove(c->in, c->in + n, c->inlen - n);
        c->inlen -= n;
}

/* Take room for n more body bytes (budget and buffer); 0, or a status. */
static int body_room(conn *c, size_t n)
{
        if ((long long)(c->body_len + n) > cfg.max_body)
                return 413;
        if (c->body_len + n <= c->body_cap)
                return 0;
        size_t cap = c->body_cap ? c->body_cap : 4096;
        while (cap < c->body_len + n)
                cap *= 2;
        if ((long long)cap > cfg.max_body)
                cap = (size_t)cfg.max_body;
        size_t more = cap - c->body_cap;
        if (reserved_total + (long long)more > cfg.mem_budget) {
                S.over_budget++;
                return 503;
        }
        char *nb = realloc(c->body, cap);
        if (!nb) {
                S.over_budget++;
                return 503;
        }
        c->body = nb;
        c->body_cap = cap;
        c->reserved += more;
        reserved_total += (long long)more;
        return 0;
}

static int fail_close(conn *c, int code)
{
        if (c->kind == K_WEBHOOK) {
                S.requests++;
                if (!S.t_first)
                        S.t_first = c->t_begin;
                log_answer(c, code, now_ns());
        }
        c->keepalive = 0;
        respond_page(c, code, NULL, 1);
        return 0;
}

/* Parse what is buffered: answer or queue every whole request, in order.
 * -1 when the connection was closed. */
static int process_input(conn *c)
{
        for (;;) {
                switch (c->state) {
                case ST_HEAD: {
                        if (c->outlen - c->outoff > OUT_PAUSE)
                                return 0; /* the client reads its answers first */
                        size_t skip = 0;
                        while (skip < c->inlen && (c->in[skip] == '\r' || c->in[skip] == '\n'))
                                skip++;
                        consume(c, skip);
                        if (!c->inlen)
                                return 0;
                        if (!c->t_begin)
                                c->t_begin = now_ns();
                        size_t hl = head_end(c->in, c->inlen);
                        if (!hl) {
                                if (c->inlen >= INBUF_SZ)
                                        return fail_close(c, 431);
                                return 0;
                        }
                        long long clen;
                        int chunked, expect100;
                        int err = parse_head(c, c->in, hl, &clen, &chunked, &expect100);
                        consume(c, hl);
                        if (err)
                                return fail_close(c, err);
                        if (clen > cfg.max_body)
                                return fail_close(c, 413);
                        if (clen > 0) {
                                err = body_room(c, (size_t)clen);
                                if (err)
                                        return fail_close(c, err);
                                c->remaining = clen;
                                c->state = ST_BODY;
                        } else if (chunked) {
                                c->state = ST_CH_SIZE;
                        } else {
                                if (request_complete(c) < 0)
                                        return -1;
                                break;
                        }
                        if (expect100 && !c->http10 && (chunked || (long long)c->inlen < clen) &&
                            out_append(c, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0)
                                return fail_close(c, 503);
                        break;
                }
                case ST_BODY: {
                        size_t take =
                            c->inlen < (size_t)c->remaining ? c->inlen : (size_t)c->remaining;
                        memcpy(c->body + c->body_len, c->in, take);
                        c->body_len += take;
                        c->remaining -= (long long)take;
                        consume(c, take);
                        if (c->remaining)
                                return 0;
                        if (request_complete(c) < 0)
                                return -1;
                        break;
                }
                case ST_CH_SIZE:
                case ST_CH_TRAILER: {
                        const char *lf = memchr(c->in, '\n', c->inlen);
                        if (!lf) {
                                if (c->inlen > LINE_MAX_SZ)
                                        return fail_close(c, 400);
                                return 0;
                        }
                        size_t n = (size_t)(lf - c->in);
                        size_t ln = n && c->in[n - 1] == '\r' ? n - 1 : n;
                        if (c->state == ST_CH_TRAILER) {
                                c->trailer_len += n + 1;
                                consume(c, n + 1);
                                if (c->trailer_len > TRAILER_MAX)
                                        return fail_close(c, 431);
                                if (ln == 0 && request_complete(c) < 0)
                                        return -1;
                                break;
                        }
                        long long size = 0;
                        size_t i = 0;
                        for (; i < ln && hexval((unsigned char)c->in[i]) >= 0; i++) {
                                if (i >= 8)
                                        return fail_close(c, 413);
                                size = size * 16 + hexval((unsigned char)c->in[i]);
                        }
                        if (i == 0 ||
                            (i < ln && c->in[i] != ';' && c->in[i] != ' ' && c->in[i] != '\t'))
                                return fail_close(c, 400);
                        consume(c, n + 1);
                        if (size == 0) {
                                c->state = ST_CH_TRAILER;
                                break;
                        }
                        int err = body_room(c, (size_t)size);
                        if (err)
                                return fail_close(c, err);
                        c->remaining = size;
                        c->state = ST_CH_DATA;
                        break;
                }
                case ST_CH_DATA: {
                        size_t take =
                            c->inlen < (size_t)c->remaining ? c->inlen : (size_t)c->remaining;
                        memcpy(c->body + c->body_len, c->in, take);
                        c->body_len += take;
                        c->remaining -= (long long)take;
                        consume(c, take);
                        if (c->remaining)
                                return 0;
                        c->state = ST_CH_CRLF;
                        break;
                }
                case ST_CH_CRLF:
                        if (c->inlen && c->in[0] == '\n') {
                                consume(c, 1);
                        } else if (c->inlen < 2) {
                                return 0;
                        } else if (c->in[0] == '\r' && c->in[1] == '\n') {
                                consume(c, 2);
                        } else {
                                return fail_close(c, 400);
                        }
                        c->state = ST_CH_SIZE;
                        break;
                case ST_LINGER:
                        c->inlen = 0;
                        return 0;
                default: /* ST_WAIT, ST_CLOSING: the rest waits */
                        return 0;
                }
        }
}

static void on_readable(conn *c)
{
        for (;;) {
                while (c->inlen < INBUF_SZ && !c->rd_eof) {
                        ssize_t k = read(c->fd, c->in + c->inlen, INBUF_SZ - c->inlen);
                        if (k < 0) {
                                if (errno == EINTR)
                                        continue;
                                if (errno == EAGAIN || errno == EWOULDBLOCK)
                                        break;
                                conn_close(c);
                                return;
                        }
                        if (k == 0)
                                c->rd_eof = 1;
                        c->inlen += (size_t)k;
                        if (c->state == ST_LINGER)
                                c->inlen = 0;
                }
                if (c->state == ST_LINGER) {
                        if (c->rd_eof)
                                conn_close(c);
                        return;
                }
                int full = c->inlen == INBUF_SZ;
                if (process_input(c) < 0)
                        return;
                /* a large body: read on while parsing makes room */
                if (!full || c->inlen == INBUF_SZ || c->rd_eof)
                        break;
        }
        if (c->rd_eof && c->state != ST_WAIT && c->outoff == c->outlen) {
                conn_close(c); /* gone, with a partial request or none */
                return;
        }
        conn_flush(c);
}

static void on_accept(void)
{
        while (conns_now < cfg.max_conns) {
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                            errno == ENOMEM) {
                                /* out of descriptors: try again shortly */
                                pause_listener();
                                listen_retry_at = now_ns() + 100 * NS_MS;
                        }
                        return;
                }
                conn *c = fd < nconns_slots ? calloc(1, sizeof *c) : NULL;
                if (!c) {
                        close(fd);
                        continue;
                }
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                c->fd = fd;
                c->serial = ++conn_serial;
                c->keepalive = 1;
                struct epoll_event e;
                memset(&e, 0, sizeof e);
                e.events = EPOLLIN;
                e.data.fd = fd;
                if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
                        close(fd);
                        free(c);
                        continue;
                }
                c->evmask = EPOLLIN;
                conns[fd] = c;
                conns_now++;
                S.conns_total++;
                if (conns_now > S.conns_max)
                        S.conns_max = conns_now;
        }
        pause_listener(); /* at max-conns: nginx's worker_connections */
}

/* ------------------------------------------------------------------ */
/* setup                                                               */

static void usage(void)
{
        fprintf(stderr, "usage: fpm_model [--workers W] [--service-ms T] [--backlog B] "
                        "[--latency-growth K]\n"
                        "                 [--limit-rps R] [--retry-after S] [--fault-503 P] "
                        "[--fault-429 P]\n"
                        "                 [--fault-retry-after S] [--fault-hangup P] [--seed N] "
                        "[--outage-start S] "
                        "[--outage-len L]\n"
                        "                 [--host ADDR] [--port N] [--print-port] [--max-conns N]\n"
                        "                 [--max-body BYTES] [--mem-mib N] [--log-cap N] "
                        "[--keepalive-requests N]\n");
        exit(2);
}

static double num_arg(const char *opt, const char *v, double lo, double hi)
{
        char *end;
        errno = 0;
        double x = v ? strtod(v, &end) : 0;
        if (!v || errno || end == v || *end || !(x >= lo && x <= hi)) {
                fprintf(stderr, "fpm_model: %s wants a number in [%g, %g]\n", opt, lo, hi);
                exit(2);
        }
        return x;
}

static void parse_args(int argc, char **argv)
{
        for (int i = 1; i < argc; i++) {
                const char *o = argv[i];
                const char *v = i + 1 < argc ? argv[i + 1] : NULL;
                if (!strcmp(o, "--print-port")) {
                        cfg.print_port = 1;
                        continue;
                }
                if (!strcmp(o, "--host") && v)
                        cfg.host = v;
                else if (!strcmp(o, "--port"))
                        cfg.port = (int)num_arg(o, v, 0, 65535);
                else if (!strcmp(o, "--workers"))
                        cfg.workers = (int)num_arg(o, v, 1, MAX_WORKERS);
                else if (!strcmp(o, "--service-ms"))
                        cfg.service_ms = num_arg(o, v, 0, 3600e3);
                else if (!strcmp(o, "--backlog"))
                        cfg.backlog = (int)num_arg(o, v, 0, MAX_BACKLOG);
                else if (!strcmp(o, "--latency-growth"))
                        cfg.growth = num_arg(o, v, 0, 1000);
                else if (!strcmp(o, "--limit-rps"))
                        cfg.limit_rps = (long)num_arg(o, v, 0, MAX_LIMIT_RPS);
                else if (!strcmp(o, "--retry-after"))
                        cfg.retry_after = (int)num_arg(o, v, 0, 86400);
                else if (!strcmp(o, "--fault-retry-after"))
                        cfg.fault_retry_after = (int)num_arg(o, v, 0, 86400);
                else if (!strcmp(o, "--fault-503"))
                        cfg.p503 = num_arg(o, v, 0, 100);
                else if (!strcmp(o, "--fault-429"))
                        cfg.p429 = num_arg(o, v, 0, 100);
                else if (!strcmp(o, "--fault-hangup"))
                        cfg.phang = num_arg(o, v, 0, 100);
                else if (!strcmp(o, "--seed"))
                        cfg.seed = (uint64_t)num_arg(o, v, 0, 9007199254740992.0);
                else if (!strcmp(o, "--outage-start"))
                        cfg.outage_start = num_arg(o, v, 0, 1e9);
                else if (!strcmp(o, "--outage-len"))
                        cfg.outage_len = num_arg(o, v, 0, 1e9);
                else if (!strcmp(o, "--max-conns"))
                        cfg.max_conns = (int)num_arg(o, v, 1, 1000000);
                else if (!strcmp(o, "--max-body"))
                        cfg.max_body = (long long)num_arg(o, v, 0, 1 << 30);
                else if (!strcmp(o, "--mem-mib"))
                        cfg.mem_budget = (long long)num_arg(o, v, 1, 65536) << 20;
                else if (!strcmp(o, "--log-cap"))
                        cfg.log_cap = (long)num_arg(o, v, 0, 100000000);
                else if (!strcmp(o, "--keepalive-requests"))
                        cfg.keepalive_requests = (long)num_arg(o, v, 0, 1e9);
                else
                        usage();
                i++;
        }
        if (cfg.p503 + cfg.p429 + cfg.phang > 100) {
                fprintf(stderr, "fpm_model: the fault percentages add up to more than 100\n");
                exit(2);
        }
}

static int open_listener(void)
{
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)cfg.port);
        if (inet_pton(AF_INET, cfg.host, &a.sin_addr) != 1) {
                fprintf(stderr, "fpm_model: --host wants an IPv4 address\n");
                return -1;
        }
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
            bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0) {
                fprintf(stderr, "fpm_model: cannot listen on %s:%d: %s\n", cfg.host, cfg.port,
                        strerror(errno));
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        socklen_t al = sizeof a;
        if (getsockname(fd, (struct sockaddr *)&a, &al) == 0)
                cfg.port = ntohs(a.sin_port);
        return fd;
}

int main(int argc, char **argv)
{
        parse_args(argc, argv);
        rng_state = cfg.seed;
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
        /* descriptors are the smallest free ones: max-conns plus the few of
         * our own bound the table */
        nconns_slots = cfg.max_conns + 64;
        conns = calloc((size_t)nconns_slots, sizeof *conns);
        heap = calloc((size_t)cfg.workers, sizeof *heap);
        qcap = cfg.backlog > 0 ? cfg.backlog : 1;
        queue = calloc((size_t)qcap, sizeof *queue);
        lim = cfg.limit_rps ? calloc((size_t)cfg.limit_rps, sizeof *lim) : NULL;
        if (!conns || !heap || !queue || (cfg.limit_rps && !lim) ||
            idset_init(&ids, cfg.seed ^ (uint64_t)now_ns()) < 0) {
                fprintf(stderr, "fpm_model: out of memory\n");
                return 1;
        }
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        epfd = epoll_create1(EPOLL_CLOEXEC);
        lfd = open_listener();
        if (sfd < 0 || tfd < 0 || epfd < 0 || lfd < 0)
                return 1;
        struct epoll_event e;
        memset(&e, 0, sizeof e);
        e.events = EPOLLIN;
        e.data.fd = sfd;
        epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &e);
        e.data.fd = tfd;
        epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &e);
        add_listener();
        if (cfg.print_port) {
                printf("%d\n", cfg.port);
                fflush(stdout);
        }

        struct epoll_event evs[256];
        uint64_t next_linger_scan = 0;
        for (;;) {
                int timeout = (n_lingering || listen_retry_at) ? 100 : -1;
                int n = epoll_wait(epfd, evs, 256, timeout);
                if (n < 0 && errno != EINTR) {
                        perror("fpm_model: epoll_wait");
                        return 1;
                }
                for (int i = 0; i < n; i++) {
                        int fd = evs[i].data.fd;
                        uint32_t ev = evs[i].events;
                        if (fd == sfd)
                                return 0;
                        if (fd == lfd) {
                                on_accept();
                                continue;
                        }
                        if (fd == tfd) {
                                on_timer();
                                continue;
                        }
                        /* the descriptor's connection now: a stale event for
                         * a closed one finds nothing, or its successor */
                        conn *c = fd < nconns_slots ? conns[fd] : NULL;
                        if (!c)
                                continue;
                        if ((ev & EPOLLOUT) && conn_flush(c) < 0)
                                continue;
                        if ((ev & EPOLLERR) || ((ev & EPOLLHUP) && c->rd_eof)) {
                                conn_close(c); /* reset, or nothing more either way */
                                continue;
                        }
                        if ((ev & (EPOLLIN | EPOLLHUP)) && conns[fd] == c)
                                on_readable(c);
                }
                uint64_t now = now_ns();
                if (listen_retry_at && now >= listen_retry_at) {
                        listen_retry_at = 0;
                        if (!listening && conns_now < cfg.max_conns)
                                add_listener();
                }
                if (n_lingering && now >= next_linger_scan) {
                        next_linger_scan = now + 100 * NS_MS;
                        for (int fd = 0; fd < nconns_slots; fd++)
                                if (conns[fd] && conns[fd]->state == ST_LINGER &&
                                    now >= conns[fd]->linger_until)
                                        conn_close(conns[fd]);
                }
                arm_timer();
        }
}
