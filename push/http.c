/* The HTTP output: batches of events POSTed to the Oempro webhook.
 *
 * A submitted batch is cut into parts: the whole batch as one JSON array
 * (format batch, at most max_events per array), or one part per event
 * (format single). Every part is a libcurl transfer on one multi handle:
 * kept-alive connections, HTTP/2 where the server offers it (all requests
 * in flight multiplexed on one TLS connection), proxies from the
 * environment, framing, 1xx and chunked answers are libcurl's. The easy
 * handles are kept and reused. How many go at once and when is the
 * pace's (pace.h: the adaptive window, the backoff, Retry-After, the
 * rates); what an answer's body says is answer.h's.
 *
 * An answer means something only against the other answers of the moment
 * (backend-contract.md):
 *   2xx                       accepted, unless the answer says Success:false,
 *                             Errors or (type=fluentd) a StatusCode other
 *                             than 250; ErrorCount > 0 from Oempro's batch
 *                             API is accepted too (it received the batch and
 *                             does not say which entries failed: resending
 *                             would repeat the others), counted and logged,
 *                             unless every entry failed
 *   429, 502, 503, 504, 408,  overload: sent again, no delay of its own; the
 *   no answer                 window halves, and while every request fails
 *                             the whole output backs off (one probe a step)
 *   500 and other 5xx, an     the same when shared; a request failing so
 *   answer that outlasts      while the backend accepts others is its
 *   timeout_s                 content: an array is split (at once on a
 *                             timeout), one event dead-lettered after 5
 *   413                       too large: split in halves
 *   other 4xx, refusals       the content's when the backend accepts others
 *                             after it: split until the refused events stand
 *                             alone, then into the dead-letter file
 *   401, 403, 407, Errors     credentials when shared; the content's (a WAF
 *   Code 1                    rule) after 5 refusals while others pass
 *   3xx                       never followed nor condemned: the URL moved
 * When nothing was accepted yet, or 20 distinct requests in a row were
 * refused, the endpoint is wrong (a bad path, HTTP to an HTTPS port, a
 * proxy's 407): the events are held, never dead-lettered, one loud line
 * says so, until a request is accepted.
 * Nothing is ever dropped: a part is retried until it is accepted or kept
 * in the dead-letter file (all those of one pass in one append and one
 * fdatasync).
 *
 * A batch is acknowledged when all its events are; acknowledgements go out
 * in the order batches came in, whatever order the answers arrive in. */
#include "push_impl.h"

#include "answer.h"
#include "buf.h"
#include "pace.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>

#define ANSWER_MAX      (64 * 1024) /* the start of an answer is all we need */
#define HEADER_MAX      (64 * 1024) /* an answer's header, all lines together */
#define DL_ANSWER_MAX   512         /* of it, kept with a dead letter */
#define DL_RETRY_MIN_MS 100         /* the lock held by `dead-letter resend`, a full disk */
#define DL_RETRY_MAX_MS 30000
#define BODY_MAX        (512u << 20)
#define SPARE_MAX       (4u << 20) /* a batch buffer kept for reuse is at most this large */
#define SPARES          4          /* and at most this many are kept */
/* One event per request makes a part per event: a few are kept for the
 * next ones, with their answer buffer, instead of an allocation each. */
#define PART_POOL        64
#define PART_KEEP_ANSWER 4096
#define IDEM_HEADER      "Idempotency-Key: "
/* Whose fault: failures of one request while the backend accepts others
 * before it is condemned (split, or dead-lettered alone) */
#define LONELY_SERVER      5  /* 500 and the like, a timeout of one event */
#define LONELY_ARRAY       2  /* the same for an array: split sooner */
#define LONELY_CREDENTIALS 5  /* 401, 403, 407 for it alone: a WAF rule */
#define LONELY_OVERLOAD    30 /* 429, 502-504, no answer: almost always the backend's */
/* ...and only while the backend accepts most requests (an EWMA of answers) */
#define HEALTHY_RATIO 0.5
/* 429s among the latest 50 answers that say the backend limits our rate */
#define RECENT_429_MASK ((UINT64_C(1) << 50) - 1)
#define RECENT_429_MANY 20
/* every request fails: this many in a row, or every one of the moment
 * unless the backend mostly works (the share of acceptances of late) */
#define MOSTLY_WORKS 0.5
#define FAIL_RUN_MAX 8
/* the endpoint is wrong: distinct requests refused in a row */
#define REFUSAL_STREAK 20
/* a refused request waits this long for the others' answers to judge it */
#define VERDICT_WAIT_MS 2000
/* a refused request with nothing else out to judge it by: the backend
 * accepted others this recently */
#define ALONE_RECENT_MS 10000
/* nothing accepted for this long: as if nothing was accepted yet */
#define RECENT_ACCEPT_MS 30000
#define HOLD_MIN_MS      500 /* a held request (endpoint wrong, redirect) waits, growing */
#define SUMMARY_MS       60000
#define QUIET_MS         2000 /* failures this far back: the streak is over */

enum fault {
        F_UNREACHED,   /* never reached the backend (no connection): nobody's content */
        F_OVERLOAD,    /* the backend's state */
        F_SERVER,      /* the backend's, unless it fails for this request alone */
        F_CREDENTIALS, /* ours, unless refused for this request alone */
        F_REFUSED,     /* the content's, unless every request is refused */
        F_REDIRECT,    /* the URL's */
        F_TOO_LONG,    /* an array the backend could not finish in timeout_s */
};

struct hbatch {
        void *token;
        char *data; /* the events, each ending with '\n' */
        size_t len, alloc;
        size_t *off; /* start of event i; off[nev] = len */
        size_t nev;
        bool owned; /* given by submit_owned: goes back through give_back */
        size_t unresolved;
        struct hbatch *next;
};

struct hpart {
        struct hbatch *b;
        size_t first, count;
        struct buf body;  /* when the body is not a slice of the batch */
        const char *view; /* the body to send */
        size_t view_len;
        bool built;
        char idem[33];
        unsigned attempts;     /* requests made for it */
        unsigned lonely;       /* failures while the backend accepted others */
        int64_t started_ms;    /* of the latest request */
        uint64_t accepts_at;   /* the output's acceptances when it was sent */
        unsigned inflight_at;  /* requests in flight with it */
        int64_t not_before_ms; /* held, or waiting for a verdict until then */
        unsigned ref_epoch;    /* counted in the refusal streak of that epoch + 1 */
        bool in_flight;
        bool pending;          /* refused: the others' answers will judge it */
        uint64_t pending_mark; /* the output's acceptances when it was refused */
        enum fault pending_kind;
        bool dl_pending; /* condemned alone, waiting for the dead-letter write */
        long dl_status;
        int slot; /* its easy handle, while in flight */
        struct buf answer;
        size_t header_bytes;
        bool header_too_big;
        struct hpart *next;
};

struct http_push {
        struct push base;
        struct push_http_opts o;
        char *url, *ca_file, *dead_letter, *user_agent;
        struct push_header *headers;
        CURLM *multi;
        CURLU *curlu; /* the URL parsed once, not at every request */
        /* One easy handle per request in flight, made when first needed and
         * reused: its headers are built once, only the Idempotency-Key's 32
         * digits written in place per request. */
        CURL **easies;
        char (*errbufs)[CURL_ERROR_SIZE];
        struct curl_slist **hdrs;
        char **idem_at;
        int *free_slots; /* a stack of the slots without a request */
        unsigned nfree, nmade;
        /* The buffers of acknowledged batches, for the next ones: a fresh
         * one is mmapped and faulted in page by page. Acknowledgements come
         * in bursts, so a few are kept, never more than the window held. */
        char *spare[SPARES];
        size_t spare_alloc[SPARES];
        size_t nspare;
        struct hbatch *batches, *batches_tail;
        struct hpart *parts; /* waiting or in flight, in order */
        struct hpart *pool;  /* resolved parts, for the next ones */
        size_t npool;
        size_t in_flight;
        size_t inflight_events;
        size_t npending; /* parts waiting for a verdict */
        unsigned seed;
        struct pace pace;
        /* the answers of the moment */
        uint64_t accepts; /* acceptances so far */
        int64_t last_accept_ms;
        bool ever_accepted;
        unsigned fail_run;   /* answers in a row that were no acceptance */
        double ok_ratio;     /* EWMA of answers that were acceptances */
        uint64_t recent_429; /* the latest answers, a bit each: 1 for a 429 */
        double works;        /* the same EWMA as ok_ratio, from 0: mostly works */
        /* the share of overload answers: of late, and usually */
        double overload_fast, overload_slow;
        unsigned ref_streak; /* distinct requests refused in a row */
        unsigned ref_epoch;  /* a new streak, a new epoch */
        long ref_status;
        bool ref_creds;    /* that refusal is of our credentials */
        char ref_why[200]; /* what the latest refusal likely means */
        bool endpoint_refusing;
        int64_t endpoint_since_ms, endpoint_summary_ms;
        /* a failure streak, for the log: one line when it starts, a
         * summary a minute, one line when it ends */
        bool troubled;
        int64_t trouble_since_ms, trouble_last_ms, trouble_summary_ms;
        uint64_t trouble_failed, trouble_accepted;
        uint64_t trouble_by[6]; /* none, 3xx, 4xx, 429, 5xx, timeouts */
        size_t dl_pending;      /* parts waiting for the dead-letter write */
        int64_t dl_retry_ms;    /* when the write may be tried again */
        int64_t dl_delay_ms;    /* grows while it keeps failing */
        bool dl_failing;
        int dl_errno; /* the reason of the failure streak */
};

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t on_answer(char *ptr, size_t size, size_t n, void *userdata)
{
        struct buf *b = userdata;
        size_t len = size * n;
        size_t room = b->cap - b->len;
        /* a hostile server may send gigabytes: keep the start, drop the rest */
        buf_append(b, ptr, len < room ? len : room);
        return len;
}

/* libcurl keeps an answer's header lines in memory: bounded here, and said
 * as such (libcurl alone would call a long one "Out of memory"). */
static size_t on_header(char *ptr, size_t size, size_t n, void *userdata)
{
        struct hpart *pt = userdata;
        (void)ptr;
        size_t len = size * n;
        pt->header_bytes += len;
        if (pt->header_bytes > HEADER_MAX) {
                pt->header_too_big = true;
                return 0;
        }
        return len;
}

static void part_free(struct http_push *h, struct hpart *pt)
{
        buf_free(&pt->body);
        if (h && h->npool < PART_POOL && pt->answer.alloc <= PART_KEEP_ANSWER) {
                buf_reset(&pt->answer);
                pt->next = h->pool;
                h->pool = pt;
                h->npool++;
                return;
        }
        buf_free(&pt->answer);
        free(pt);
}

static struct hpart *part_new(struct http_push *h, struct hbatch *b, size_t first, size_t count)
{
        struct hpart *pt = h->pool;
        struct buf answer;
        if (pt) {
                h->pool = pt->next;
                h->npool--;
                answer = pt->answer; /* kept, empty */
        } else {
                pt = malloc(sizeof *pt);
                if (!pt)
                        return NULL;
                buf_init(&answer, ANSWER_MAX);
        }
        *pt = (struct hpart){.b = b, .first = first, .count = count, .answer = answer, .slot = -1};
        buf_init(&pt->body, BODY_MAX);
        return pt;
}

static int gzip_body(struct buf *body)
{
        z_stream zs = {0};
        if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
                return -1;
        struct buf out;
        buf_init(&out, BODY_MAX);
        size_t bound = deflateBound(&zs, body->len) + 32;
        char *dst = buf_reserve(&out, bound);
        if (!dst) {
                deflateEnd(&zs);
                return -1;
        }
        zs.next_in = (Bytef *)body->data;
        zs.avail_in = (uInt)body->len;
        zs.next_out = (Bytef *)dst;
        zs.avail_out = (uInt)bound;
        int r = deflate(&zs, Z_FINISH);
        size_t n = bound - zs.avail_out;
        deflateEnd(&zs);
        if (r != Z_STREAM_END) {
                buf_free(&out);
                return -1;
        }
        buf_commit(&out, n);
        buf_free(body);
        *body = out;
        return 0;
}

/* One event's key is its own eventId, which the encoder writes last: a
 * hash of the record, the same on every retry and after a restart, so the
 * body need not be hashed again. False when the event does not end so. */
static bool key_of_event(const char *ev, size_t len, char idem[33])
{
        static const char tag[] = "\"eventId\":\"";
        const size_t tl = sizeof tag - 1, need = tl + 32 + 2;
        if (len < need)
                return false;
        const char *p = ev + len - need;
        if (memcmp(p, tag, tl) != 0 || p[tl + 32] != '"' || p[tl + 33] != '}')
                return false;
        for (size_t i = 0; i < 32; i++) {
                char c = p[tl + i];
                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
                        return false;
        }
        memcpy(idem, p + tl, 32);
        idem[32] = '\0';
        return true;
}

/* The body of a part, and its Idempotency-Key: a hash of the JSON (for one
 * event, its eventId), so the same events get the same key on every retry
 * and even after a restart. A whole batch, or one event, is a slice of the
 * batch's array; only a split batch or a gzipped body needs a buffer of its
 * own. */
static int build_body(struct http_push *h, struct hpart *pt)
{
        struct hbatch *b = pt->b;
        buf_reset(&pt->body);
        size_t from = b->off[pt->first], to = b->off[pt->first + pt->count] - 1;
        if (h->o.single) {
                pt->view = b->data + from;
                pt->view_len = to - from;
        } else if (pt->first == 0 && pt->count == b->nev) {
                pt->view = b->data;
                pt->view_len = b->len;
        } else {
                if (buf_putc(&pt->body, '[') < 0 ||
                    buf_append(&pt->body, b->data + from, to - from) < 0 ||
                    buf_putc(&pt->body, ']') < 0)
                        return -1;
                pt->view = pt->body.data;
                pt->view_len = pt->body.len;
        }
        if (!h->o.single || !key_of_event(pt->view, pt->view_len, pt->idem)) {
                XXH128_hash_t k = XXH3_128bits(pt->view, pt->view_len);
                static const char hex[] = "0123456789abcdef";
                for (int i = 0; i < 16; i++) {
                        pt->idem[i] = hex[(k.high64 >> (60 - 4 * i)) & 0xf];
                        pt->idem[16 + i] = hex[(k.low64 >> (60 - 4 * i)) & 0xf];
                }
                pt->idem[32] = '\0';
        }
        if (h->o.gzip) {
                if (pt->view != pt->body.data) {
                        buf_reset(&pt->body);
                        if (buf_append(&pt->body, pt->view, pt->view_len) < 0)
                                return -1;
                }
                if (gzip_body(&pt->body) < 0)
                        return -1;
                pt->view = pt->body.data;
                pt->view_len = pt->body.len;
        }
        pt->built = true;
        return 0;
}

static void easy_setup(struct http_push *h, CURL *e, size_t i)
{
        if (h->curlu)
                curl_easy_setopt(e, CURLOPT_CURLU, h->curlu);
        else
                curl_easy_setopt(e, CURLOPT_URL, h->url);
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_USERAGENT, h->user_agent);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)h->o.timeout_s);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT,
                         (long)(h->o.timeout_s < 10 ? h->o.timeout_s : 10));
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        /* HTTP/2 where TLS offers it (ALPN), HTTP/1.1 otherwise; a new
         * request waits for a connection that can multiplex it rather than
         * open one more */
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
        curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, h->o.tls_verify ? 1L : 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, h->o.tls_verify ? 2L : 0L);
        if (h->ca_file)
                curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file);
        curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbufs[i]);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->hdrs[i]);
}

static int slot_headers(struct http_push *h, size_t i);

/* A slot without a request: its easy handle made the first time. -1: none
 * free, or out of memory. */
static int take_slot(struct http_push *h)
{
        if (h->nfree > 0)
                return h->free_slots[--h->nfree];
        if (h->nmade == h->o.concurrency)
                return -1;
        size_t i = h->nmade;
        CURL *e = curl_easy_init();
        if (!e)
                return -1;
        if (slot_headers(h, i) < 0) {
                curl_easy_cleanup(e);
                return -1;
        }
        h->easies[i] = e;
        easy_setup(h, e, i);
        h->nmade++;
        return (int)i;
}

static int start_part(struct http_push *h, struct hpart *pt)
{
        if (!pt->built && build_body(h, pt) < 0) {
                log_error(h->base.log, "cannot build a request body: %s", strerror(errno));
                return -1;
        }
        int slot = take_slot(h);
        if (slot < 0)
                return -1;
        CURL *e = h->easies[slot];
        memcpy(h->idem_at[slot], pt->idem, 32);
        buf_reset(&pt->answer);
        h->errbufs[slot][0] = '\0';
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, pt->view);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)pt->view_len);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &pt->answer);
        pt->header_bytes = 0;
        pt->header_too_big = false;
        curl_easy_setopt(e, CURLOPT_HEADERDATA, pt);
        curl_easy_setopt(e, CURLOPT_PRIVATE, pt);
        if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
                h->free_slots[h->nfree++] = slot;
                return -1;
        }
        pt->slot = slot;
        pt->in_flight = true;
        pt->started_ms = now_ms();
        pt->accepts_at = h->accepts;
        pace_started(&h->pace, pt->started_ms, pt->count);
        h->in_flight++;
        pt->inflight_at = (unsigned)h->in_flight;
        h->base.stats.requests++;
        if (pt->attempts++ > 0)
                h->base.stats.retries++;
        return 0;
}

static void release_easy(struct http_push *h, struct hpart *pt)
{
        if (pt->slot >= 0) {
                curl_multi_remove_handle(h->multi, h->easies[pt->slot]);
                h->free_slots[h->nfree++] = pt->slot;
        }
        pt->slot = -1;
        pt->in_flight = false;
        h->in_flight--;
}

static void unlink_part(struct http_push *h, struct hpart *pt)
{
        for (struct hpart **pp = &h->parts; *pp; pp = &(*pp)->next) {
                if (*pp == pt) {
                        *pp = pt->next;
                        return;
                }
        }
}

/* Acknowledge the batches at the head whose events are all settled. */
static void ack_ready(struct http_push *h)
{
        while (h->batches && h->batches->unresolved == 0) {
                struct hbatch *b = h->batches;
                h->batches = b->next;
                if (!h->batches)
                        h->batches_tail = NULL;
                h->inflight_events -= b->nev;
                h->base.stats.delivered += b->nev;
                void *token = b->token;
                if (b->owned && h->base.give_back) {
                        h->base.give_back(h->base.give_back_ctx, b->data, b->alloc);
                } else if (h->nspare < SPARES && b->alloc <= SPARE_MAX) {
                        h->spare[h->nspare] = b->data;
                        h->spare_alloc[h->nspare++] = b->alloc;
                } else {
                        free(b->data);
                }
                free(b->off);
                free(b);
                h->base.on_ack(h->base.ctx, token);
        }
}

static void resolve(struct http_push *h, struct hpart *pt)
{
        pt->b->unresolved -= pt->count;
        unlink_part(h, pt);
        part_free(h, pt);
}

/* The start of an answer as a JSON string literal, for a dead letter. */
static void answer_snippet(const struct buf *a, char *out, size_t size)
{
        size_t n = a->len < DL_ANSWER_MAX ? a->len : DL_ANSWER_MAX;
        json_t *s = NULL;
        char *tmp = malloc(3 * n + 1);
        if (tmp) {
                /* keep only printable ASCII: an answer may hold anything */
                size_t k = 0;
                for (size_t i = 0; i < n; i++) {
                        unsigned char c = (unsigned char)a->data[i];
                        tmp[k++] = c >= 0x20 && c < 0x7f ? (char)c : ' ';
                }
                s = json_stringn(tmp, k);
                free(tmp);
        }
        char *d = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
        snprintf(out, size, "%s", d ? d : "\"\"");
        free(d);
        json_decref(s);
}

/* Open the dead-letter file for appending, locked. `dead-letter resend`
 * renames the file under the same lock to take its entries: after the lock
 * is ours, the path must still name the file we opened, else we open again
 * (the entry then goes to the new file, never to the one being resent).
 * O_NOFOLLOW: a link planted in the state directory is refused, never
 * written through. */
int dead_letter_open(const char *path, bool nonblock)
{
        for (int tries = 0; tries < 10; tries++) {
                int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0)
                        return -1;
                struct stat a, b;
                if (flock(fd, LOCK_EX | (nonblock ? LOCK_NB : 0)) < 0) {
                        int e = errno;
                        close(fd);
                        errno = e;
                        if (e == EINTR)
                                continue;
                        return -1;
                }
                if (fstat(fd, &a) == 0 && !S_ISREG(a.st_mode)) {
                        close(fd);
                        errno = EINVAL;
                        return -1;
                }
                if (fstat(fd, &a) == 0 && lstat(path, &b) == 0 && a.st_dev == b.st_dev &&
                    a.st_ino == b.st_ino)
                        return fd;
                close(fd);
        }
        errno = EAGAIN;
        return -1;
}

static int dl_line(struct buf *out, struct hpart *pt)
{
        struct hbatch *b = pt->b;
        const char *ev = b->data + b->off[pt->first];
        size_t evlen = b->off[pt->first + 1] - b->off[pt->first] - 1;
        char when[32], answer[DL_ANSWER_MAX * 2 + 64], head[128];
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        answer_snippet(&pt->answer, answer, sizeof answer);
        snprintf(head, sizeof head,
                 "{\"time\":\"%s\",\"status\":%ld,\"attempts\":%u,\"answer\":", when, pt->dl_status,
                 pt->attempts);
        if (buf_puts(out, head) < 0 || buf_puts(out, answer) < 0 ||
            buf_puts(out, ",\"event\":") < 0 || buf_append(out, ev, evlen) < 0 ||
            buf_puts(out, "}\n") < 0)
                return -1;
        return 0;
}

static int write_all(int fd, const char *s, size_t n)
{
        while (n > 0) {
                ssize_t w = write(fd, s, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        if (w == 0)
                                errno = EIO;
                        return -1;
                }
                s += w;
                n -= (size_t)w;
        }
        return 0;
}

/* Keep every event refused on its own since the last call for good: all of
 * them in one append and one fdatasync, before any counts as done. On a
 * short write or a failed sync the file is cut back to where the append
 * began (no partial line for the retry to follow), and the parts wait for a
 * later try: never dropped. The lock is taken without waiting: `dead-letter
 * resend` holds it only to rename the file, and the loop must not stall. */
static void dl_flush(struct http_push *h)
{
        if (h->dl_pending == 0)
                return;
        int64_t now = now_ms();
        if (now < h->dl_retry_ms)
                return;
        struct buf lines;
        buf_init(&lines, BODY_MAX);
        size_t n = 0;
        int rc = 0;
        for (struct hpart *pt = h->parts; pt && rc == 0; pt = pt->next) {
                if (pt->dl_pending) {
                        rc = dl_line(&lines, pt);
                        n++;
                }
        }
        const char *what = "cannot write the dead-letter file";
        int e = rc < 0 ? ENOMEM : 0;
        if (rc == 0) {
                int fd = dead_letter_open(h->dead_letter, true);
                if (fd < 0) {
                        e = errno;
                        if (e == EWOULDBLOCK)
                                what = "the dead-letter file is locked (dead-letter resend?)";
                        rc = -1;
                } else {
                        struct stat st;
                        off_t start = fstat(fd, &st) == 0 ? st.st_size : -1;
                        if (start < 0 || write_all(fd, lines.data, lines.len) < 0 ||
                            fdatasync(fd) < 0) {
                                e = errno;
                                rc = -1;
                                if (start >= 0 && ftruncate(fd, start) < 0)
                                        log_error(h->base.log,
                                                  "cannot cut the dead-letter file back "
                                                  "file=%s error=\"%s\"",
                                                  h->dead_letter, strerror(errno));
                        }
                        close(fd);
                }
        }
        buf_free(&lines);
        if (rc < 0) {
                h->dl_delay_ms = h->dl_delay_ms ? h->dl_delay_ms * 2 : DL_RETRY_MIN_MS;
                if (h->dl_delay_ms > DL_RETRY_MAX_MS)
                        h->dl_delay_ms = DL_RETRY_MAX_MS;
                h->dl_retry_ms = now + h->dl_delay_ms;
                snprintf(h->base.stats.last_error, sizeof h->base.stats.last_error, "%s: %s", what,
                         strerror(e));
                /* once per streak, and again when the reason changes */
                if (!h->dl_failing || e != h->dl_errno)
                        log_error(h->base.log, "%s, retrying file=%s records=%zu error=\"%s\"",
                                  what, h->dead_letter, n, strerror(e));
                h->dl_failing = true;
                h->dl_errno = e;
                return;
        }
        if (h->dl_failing)
                log_info(h->base.log, "writing the dead-letter file again file=%s", h->dead_letter);
        h->dl_failing = false;
        h->dl_delay_ms = 0;
        h->dl_retry_ms = 0;
        for (struct hpart *pt = h->parts, *next; pt; pt = next) {
                next = pt->next;
                if (!pt->dl_pending)
                        continue;
                struct hbatch *b = pt->b;
                const char *ev = b->data + b->off[pt->first];
                /* the event's id, for the operator */
                const char *id = strstr(ev, "\"eventId\":\"");
                log_warn(h->base.log,
                         "record refused by the backend, kept in the dead-letter file "
                         "status=%ld attempts=%u eventId=%.32s file=%s",
                         pt->dl_status, pt->attempts, id ? id + 11 : "?", h->dead_letter);
                h->base.stats.refused++;
                h->dl_pending--;
                resolve(h, pt);
        }
}

/* Split a refused part in two, in place in the queue. */
static int split(struct http_push *h, struct hpart *pt)
{
        size_t half = pt->count / 2;
        struct hpart *b = part_new(h, pt->b, pt->first + half, pt->count - half);
        if (!b)
                return -1;
        pt->count = half;
        pt->attempts = 0;
        pt->lonely = 0;
        pt->not_before_ms = 0;
        pt->built = false;
        buf_reset(&pt->body);
        b->next = pt->next;
        pt->next = b;
        return 0;
}

/* A URL the peer sent, fit for a log line: any user:password@ dropped (a
 * relative Location is resolved against our own URL, credentials and all),
 * bytes outside printable ASCII, quotes and backslashes percent-encoded (a
 * hostile Location cannot forge a line or a field), cut at `size` with
 * "...". */
static void url_for_log(char *dst, size_t size, const char *url)
{
        static const char hex[] = "0123456789ABCDEF";
        const char *skip_from = NULL, *skip_to = NULL, *sch = strstr(url, "://");
        if (sch) {
                const char *auth = sch + 3, *at = NULL;
                for (const char *c = auth; *c && !strchr("/?#", *c); c++)
                        if (*c == '@')
                                at = c;
                if (at) {
                        skip_from = auth;
                        skip_to = at + 1;
                }
        }
        size_t k = 0;
        for (const char *c = url; *c; c++) {
                if (c == skip_from) {
                        c = skip_to - 1;
                        continue;
                }
                unsigned char b = (unsigned char)*c;
                bool plain = b > 0x20 && b < 0x7f && b != '"' && b != '\\';
                if (k + (plain ? 1 : 3) + 4 > size) {
                        memcpy(dst + k, "...", 3);
                        k += 3;
                        break;
                }
                if (plain) {
                        dst[k++] = (char)b;
                } else {
                        dst[k++] = '%';
                        dst[k++] = hex[b >> 4];
                        dst[k++] = hex[b & 15];
                }
        }
        dst[k] = '\0';
}

/* --- the log of a failure streak --------------------------------------- */

static void trouble_count(struct http_push *h, long status, bool timed_out)
{
        int k = timed_out       ? 5
                : status == 429 ? 3
                : status >= 500 ? 4
                : status >= 400 ? 2
                : status >= 300 ? 1
                                : 0;
        h->trouble_by[k]++;
}

static void trouble_counts(const struct http_push *h, char *out, size_t size)
{
        static const char *const names[6] = {"no_answer", "3xx", "4xx", "429", "5xx", "timeout"};
        size_t k = 0;
        out[0] = '\0';
        for (int i = 0; i < 6 && k < size; i++) {
                if (h->trouble_by[i])
                        k += (size_t)snprintf(out + k, size - k, "%s%s=%llu", k ? " " : "",
                                              names[i], (unsigned long long)h->trouble_by[i]);
        }
}

/* A request failed (not accepted): a streak starts with one line. */
static void trouble(struct http_push *h, int64_t now, long status, bool timed_out, const char *why)
{
        h->base.stats.retrying = true;
        snprintf(h->base.stats.last_error, sizeof h->base.stats.last_error, "%s", why);
        if (!h->troubled) {
                h->troubled = true;
                h->trouble_since_ms = now;
                h->trouble_summary_ms = now + SUMMARY_MS;
                h->trouble_failed = h->trouble_accepted = 0;
                memset(h->trouble_by, 0, sizeof h->trouble_by);
                log_warn(h->base.log, "delivery failing, retrying until it works reason=\"%s\"",
                         why);
        }
        h->trouble_last_ms = now;
        h->trouble_failed++;
        trouble_count(h, status, timed_out);
}

/* The streak's minute summaries, and its end once a request is accepted
 * and nothing failed for a while. Returns the ms until the next call is
 * due, or -1. */
static int64_t trouble_tick(struct http_push *h, int64_t now, bool accepted)
{
        if (!h->troubled)
                return -1;
        char counts[160];
        if (accepted && now - h->trouble_last_ms >= QUIET_MS) {
                trouble_counts(h, counts, sizeof counts);
                log_info(h->base.log,
                         "delivering again after failed_attempts=%llu for_s=%lld accepted=%llu %s",
                         (unsigned long long)h->trouble_failed,
                         (long long)((now - h->trouble_since_ms) / 1000),
                         (unsigned long long)h->trouble_accepted, counts);
                h->troubled = false;
                h->base.stats.retrying = false;
                return -1;
        }
        if (now >= h->trouble_summary_ms) {
                trouble_counts(h, counts, sizeof counts);
                log_warn(h->base.log,
                         "delivery still failing for_s=%lld failed=%llu accepted=%llu %s "
                         "window=%u in_flight=%zu reason=\"%s\"",
                         (long long)((now - h->trouble_since_ms) / 1000),
                         (unsigned long long)h->trouble_failed,
                         (unsigned long long)h->trouble_accepted, counts, pace_window(&h->pace),
                         h->in_flight, h->base.stats.last_error);
                h->trouble_summary_ms = now + SUMMARY_MS;
        }
        return h->trouble_summary_ms - now;
}

/* --- the endpoint ------------------------------------------------------- */

/* What a refusal of every request likely means, for the operator. */
static const char *meaning(long status)
{
        switch (status) {
        case 400:
                return "a bad request for every event: an http:// URL on an HTTPS port, or not "
                       "Oempro's webhook";
        case 401:
                return "credentials refused: check the signature header (header_file)";
        case 403:
                return "forbidden: credentials, or a firewall rule (WAF) before the backend";
        case 404:
                return "not found: a wrong path in url";
        case 405:
                return "method not allowed: url does not name the webhook";
        case 407:
                return "the proxy wants credentials: set user:password in http_proxy/https_proxy";
        case 410:
                return "gone: the webhook was removed";
        default:
                if (status >= 300 && status < 400)
                        return "the url redirects: set url to the new address";
                return "every request refused";
        }
}

static void endpoint_declare(struct http_push *h, int64_t now)
{
        h->endpoint_refusing = true;
        h->endpoint_since_ms = now;
        h->endpoint_summary_ms = now + SUMMARY_MS;
        h->base.stats.endpoint_refusing = true;
        h->base.stats.endpoint_status = h->ref_status;
        bool creds = h->ref_creds;
        h->base.stats.credentials = creds;
        log_error(h->base.log,
                  "%sendpoint refuses every request, holding the records (never dead-lettered) "
                  "status=%ld refused=%u meaning=\"%s\" reason=\"%s\"%s",
                  creds ? "credentials refused: " : "", h->ref_status, h->ref_streak,
                  meaning(h->ref_status), h->ref_why, h->ever_accepted ? "" : " accepted=0");
        /* those waiting for a verdict are held: once the endpoint works,
         * their content is judged afresh */
        for (struct hpart *pt = h->parts; pt; pt = pt->next) {
                if (pt->pending) {
                        pt->pending = false;
                        h->npending--;
                        pt->lonely = 0;
                }
        }
}

/* A request refused (4xx, 3xx, credentials): one more in the streak, unless
 * this part was counted in it already. */
static void refusal_streak(struct http_push *h, struct hpart *pt, long status, bool creds,
                           int64_t now, const char *why)
{
        if (pt->ref_epoch != h->ref_epoch + 1) {
                pt->ref_epoch = h->ref_epoch + 1;
                h->ref_streak++;
        }
        h->ref_status = status;
        h->ref_creds = creds;
        snprintf(h->ref_why, sizeof h->ref_why, "%s", why);
        if (h->endpoint_refusing) {
                h->base.stats.endpoint_status = status;
                if (now >= h->endpoint_summary_ms) {
                        log_error(h->base.log,
                                  "endpoint still refuses every request for_s=%lld status=%ld "
                                  "meaning=\"%s\" reason=\"%s\"",
                                  (long long)((now - h->endpoint_since_ms) / 1000), status,
                                  meaning(status), why);
                        h->endpoint_summary_ms = now + SUMMARY_MS;
                }
                return;
        }
        /* nothing accepted for a while, and nothing else out to say
         * otherwise: the same as nothing accepted yet */
        bool stale = !h->ever_accepted || now - h->last_accept_ms >= RECENT_ACCEPT_MS;
        if (h->ref_streak >= REFUSAL_STREAK || (stale && h->in_flight == 0))
                endpoint_declare(h, now);
}

/* --- outcomes ----------------------------------------------------------- */

static void hold(struct http_push *h, struct hpart *pt, int64_t now)
{
        int64_t d = HOLD_MIN_MS;
        for (unsigned i = 1; i < pt->attempts && d < (int64_t)h->o.retry_max_s * 1000; i++)
                d *= 2;
        if (d > (int64_t)h->o.retry_max_s * 1000)
                d = (int64_t)h->o.retry_max_s * 1000;
        pt->not_before_ms = now + d;
}

static int split(struct http_push *h, struct hpart *pt);

/* The request's content is what fails: an array is split, one event goes
 * to the dead-letter file. */
static void condemn(struct http_push *h, struct hpart *pt, long status, const char *why)
{
        if (pt->count > 1) {
                log_info(h->base.log,
                         "backend refused a batch, splitting it status=%ld records=%zu "
                         "attempts=%u%s%s",
                         status, pt->count, pt->attempts, why[0] ? " answer=" : "", why);
                if (split(h, pt) < 0)
                        hold(h, pt, now_ms());
                return;
        }
        pt->dl_pending = true;
        pt->dl_status = status;
        h->dl_pending++;
}

static void accepted(struct http_push *h, struct hpart *pt, int64_t now)
{
        h->accepts++;
        h->last_accept_ms = now;
        h->ever_accepted = true;
        h->fail_run = 0;
        h->ok_ratio += (1.0 - h->ok_ratio) / 32;
        h->works += (1.0 - h->works) / 32;
        h->recent_429 <<= 1;
        h->overload_fast -= h->overload_fast / 8;
        h->overload_slow -= h->overload_slow / 128;
        h->ref_streak = 0;
        h->ref_epoch++;
        if (h->endpoint_refusing) {
                log_info(h->base.log, "endpoint accepts requests again after_s=%lld status_was=%ld",
                         (long long)((now - h->endpoint_since_ms) / 1000), h->ref_status);
                h->endpoint_refusing = false;
                h->base.stats.endpoint_refusing = false;
        }
        h->base.stats.credentials = false;
        bool full = h->in_flight + 1 >= pace_window(&h->pace);
        pace_accepted(&h->pace, now, pt->started_ms, now - pt->started_ms, full);
        if (h->troubled)
                h->trouble_accepted++;
        trouble_tick(h, now, true);
        resolve(h, pt);
}

/* Any part besides `self` that could still bring an answer. */
static bool others_may_answer(const struct http_push *h, const struct hpart *self)
{
        if (h->in_flight > 0)
                return true;
        for (const struct hpart *pt = h->parts; pt; pt = pt->next)
                if (pt != self && !pt->pending && !pt->dl_pending)
                        return true;
        return false;
}

/* Not accepted. `kind` says whose fault it may be; the answers of the
 * moment decide. */
static void failed(struct http_push *h, struct hpart *pt, enum fault kind, long status,
                   long retry_after_s, bool timed_out, const char *why)
{
        int64_t now = now_ms();
        /* The backend accepted others while this one was out; or, for a
         * request that failed so before (a suspect) with nothing else out
         * now, it did a moment ago. */
        bool suspect = pt->lonely > 0;
        bool lonely = h->accepts > pt->accepts_at || (suspect && !others_may_answer(h, pt) &&
                                                      now - h->last_accept_ms < RECENT_ACCEPT_MS);
        if (kind == F_UNREACHED) {
                /* the backend went away (or never listened): its state */
                suspect = lonely = false;
                kind = F_OVERLOAD;
        }
        /* the backend's health from first attempts only: a request that
         * keeps failing on its own must not make the backend look ill (and
         * so escape its verdict) */
        if (pt->attempts == 1) {
                h->ok_ratio -= h->ok_ratio / 32;
                h->works -= h->works / 32;
        }
        trouble(h, now, status, timed_out, why);
        log_debug(h->base.log, "not accepted attempt=%u lonely=%d window=%u reason=\"%s\"",
                  pt->attempts, lonely, pace_window(&h->pace), why);
        if (retry_after_s > 0)
                pace_retry_after(&h->pace, now, retry_after_s);
        h->recent_429 = h->recent_429 << 1 | (status == 429);
        /* A 429 says "too fast" when it asks for a pause (Retry-After), or
         * when many of the latest answers are 429s: a 429 now and then
         * among acceptances is a fault, not a rate, and learning from each
         * would bring the rate down to nothing. */
        if (status == 429 &&
            (retry_after_s > 0 ||
             __builtin_popcountll(h->recent_429 & RECENT_429_MASK) >= RECENT_429_MANY)) {
                double before = pace_learnt_rate(&h->pace);
                pace_rate_limited(&h->pace, now, pt->started_ms);
                double r = pace_learnt_rate(&h->pace);
                if (r != before)
                        log_info(h->base.log,
                                 "the backend limits our rate (429): requests paced at "
                                 "rate_per_s=%.1f",
                                 r);
        }
        if (kind == F_TOO_LONG) {
                /* the array's size, not the backend's state: like a 413 */
                log_info(h->base.log,
                         "an array outlasted timeout_s, splitting it records=%zu timeout_s=%u",
                         pt->count, h->o.timeout_s);
                if (split(h, pt) < 0)
                        hold(h, pt, now);
                return;
        }
        h->fail_run++;
        /* Overload answers above their usual share: a backend that fails
         * a steady part of requests at random (a flaky upstream) is not
         * overloaded by us, and halving at each would leave one request in
         * flight. */
        bool overload = false;
        if (kind == F_OVERLOAD) {
                h->overload_fast += (1.0 - h->overload_fast) / 8;
                h->overload_slow += (1.0 - h->overload_slow) / 128;
                overload = h->overload_fast > 2 * h->overload_slow + 0.05;
        }
        if (!lonely && !suspect) {
                /* Every request of the moment fails: the backend's state.
                 * A backend that mostly works must fail a run of requests
                 * first, two windows' worth: with random faults, fast
                 * failures come back before the slower acceptances, a few
                 * in a row, and that is no outage. */
                unsigned all = pt->inflight_at < FAIL_RUN_MAX ? pt->inflight_at : FAIL_RUN_MAX;
                if (h->works >= MOSTLY_WORKS) {
                        unsigned two = 2 * pace_window(&h->pace);
                        all = two > FAIL_RUN_MAX ? two : FAIL_RUN_MAX;
                }
                if (h->fail_run >= (all ? all : 1))
                        pace_backoff(&h->pace, now, pt->started_ms);
                else if (overload)
                        pace_overload(&h->pace, now, pt->started_ms);
        } else if (overload) {
                pace_overload(&h->pace, now, pt->started_ms);
        }
        /* a suspect failing with nothing to judge it by waits on its own,
         * not the whole output */
        if (suspect && !lonely && !others_may_answer(h, pt))
                hold(h, pt, now);
        bool healthy = h->ok_ratio >= HEALTHY_RATIO;
        switch (kind) {
        case F_UNREACHED:
        case F_OVERLOAD:
        case F_SERVER: {
                unsigned limit = kind == F_OVERLOAD ? LONELY_OVERLOAD
                                 : pt->count > 1    ? LONELY_ARRAY
                                                    : LONELY_SERVER;
                if (lonely && healthy && ++pt->lonely >= limit)
                        condemn(h, pt, status, why);
                else if (lonely && !healthy)
                        hold(h, pt, now); /* no verdict now: not again at once */
                return;
        }
        case F_TOO_LONG:
                return;
        case F_REDIRECT:
                refusal_streak(h, pt, status, false, now, why);
                hold(h, pt, now);
                return;
        case F_CREDENTIALS:
        case F_REFUSED:
                refusal_streak(h, pt, status, kind == F_CREDENTIALS, now, why);
                if (h->endpoint_refusing || !h->ever_accepted) {
                        hold(h, pt, now);
                        return;
                }
                /* the answers to the others, from now on, judge it */
                pt->pending = true;
                pt->pending_kind = kind;
                pt->pending_mark = h->accepts;
                pt->dl_status = status;
                hold(h, pt, now);
                if (pt->not_before_ms < now + VERDICT_WAIT_MS)
                        pt->not_before_ms = now + VERDICT_WAIT_MS;
                h->npending++;
                return;
        }
}

/* The refused parts whose verdict the others' answers now give. */
static void judge_pending(struct http_push *h)
{
        if (h->npending == 0)
                return;
        int64_t now = now_ms();
        for (struct hpart *pt = h->parts, *next; pt; pt = next) {
                next = pt->next;
                if (!pt->pending)
                        continue;
                bool content = h->accepts > pt->pending_mark;
                bool alone = !others_may_answer(h, pt);
                /* nothing else can answer: judge by the acceptances of a
                 * moment ago (its siblings in a split batch, say) */
                if (!content && alone && h->ref_streak < REFUSAL_STREAK) {
                        if (pt->pending_kind == F_REFUSED)
                                content = now - h->last_accept_ms < ALONE_RECENT_MS;
                        else /* credentials: a suspect already, refused alone */
                                content =
                                    pt->lonely > 0 && now - h->last_accept_ms < RECENT_ACCEPT_MS;
                }
                if (content) {
                        pt->pending = false;
                        h->npending--;
                        if (pt->pending_kind == F_REFUSED || ++pt->lonely >= LONELY_CREDENTIALS) {
                                condemn(h, pt, pt->dl_status, "refused while others were accepted");
                        } else {
                                pt->not_before_ms = 0;
                        }
                } else if (alone && now >= pt->not_before_ms) {
                        /* no verdict, and none can come from others: ask
                         * again (later each time) */
                        pt->pending = false;
                        h->npending--;
                        pt->not_before_ms = 0;
                }
        }
}

/* The answer to a part (or the lack of one) decides its fate. */
static void done(struct http_push *h, struct hpart *pt, CURLcode rc)
{
        CURL *e = h->easies[pt->slot];
        long status = 0, connect_status = 0;
        curl_off_t ra = 0, sent = 0;
        char *loc = NULL; /* a redirect's target, absolute */
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(e, CURLINFO_HTTP_CONNECTCODE, &connect_status);
        curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &ra);
        curl_easy_getinfo(e, CURLINFO_SIZE_UPLOAD_T, &sent);
        curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &loc);
        char errbuf[CURL_ERROR_SIZE];
        snprintf(errbuf, sizeof errbuf, "%s", h->errbufs[pt->slot]);
        char location[160];
        url_for_log(location, sizeof location, loc ? loc : "");
        /* libcurl refuses a header line over 100 KiB as "Out of memory": it
         * is the answer that is wrong */
        bool too_big = pt->header_too_big || (rc == CURLE_OUT_OF_MEMORY && pt->header_bytes > 0);
        release_easy(h, pt);
        char why[CURL_ERROR_SIZE + 200];
        /* A status line read before the connection broke still says what
         * the server meant: a proxy's 407 closes without reading the body
         * it refuses, and the client sees a reset. A 2xx with its body cut
         * is no acceptance. */
        bool said = status >= 300 && status < 600 && connect_status < 300 && !too_big;
        if (rc != CURLE_OK && !said) {
                h->base.stats.answers[0]++;
                if (connect_status >= 300) {
                        /* the proxy answered CONNECT: a proxy's 407 is a
                         * credentials answer like the backend's 401 */
                        snprintf(why, sizeof why, "HTTP %ld from the proxy (CONNECT): %s",
                                 connect_status, meaning(connect_status));
                        failed(h, pt, connect_status == 407 ? F_CREDENTIALS : F_REFUSED,
                               connect_status, 0, false, why);
                        return;
                }
                if (too_big) {
                        snprintf(why, sizeof why,
                                 "the answer's header is too large (over %d KiB), HTTP %ld",
                                 (pt->header_too_big ? HEADER_MAX : 100 * 1024) / 1024, status);
                        failed(h, pt, F_OVERLOAD, status, 0, false, why);
                        return;
                }
                snprintf(why, sizeof why, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
                /* the whole body went and no answer came in time: the backend
                 * is working on it, and an array may be too much to do in
                 * timeout_s: halves are */
                bool processing =
                    rc == CURLE_OPERATION_TIMEDOUT && sent >= (curl_off_t)pt->view_len;
                if (processing && pt->count > 1) {
                        failed(h, pt, F_TOO_LONG, 0, 0, true, why);
                        return;
                }
                /* nothing of it sent (no connection): whatever the others'
                 * answers, its content is not in question */
                failed(h, pt,
                       processing ? F_SERVER
                       : sent > 0 ? F_OVERLOAD
                                  : F_UNREACHED,
                       0, 0, rc == CURLE_OPERATION_TIMEDOUT, why);
                return;
        }
        int cls = status >= 100 && status < 600 ? (int)(status / 100) : 0;
        h->base.stats.answers[cls]++;
        struct answer an;
        answer_judge(pt->answer.data, pt->answer.len, h->o.status_code_250, &an);
        if (an.verdict == ANSWER_CREDENTIALS) {
                snprintf(why, sizeof why,
                         "HTTP %ld: the backend refuses our credentials (Errors Code 1: check the "
                         "admin API key in header_file)",
                         status);
                failed(h, pt, F_CREDENTIALS, status, (long)ra, false, why);
                return;
        }
        if (cls == 2) {
                if (an.verdict == ANSWER_REFUSED ||
                    (an.verdict == ANSWER_PARTIAL && an.processed == 0)) {
                        snprintf(why, sizeof why, "HTTP %ld refused: %s", status, an.why);
                        failed(h, pt, F_REFUSED, status, 0, false, why);
                        return;
                }
                if (an.verdict == ANSWER_PARTIAL) {
                        uint64_t n = an.errors > 0 ? (uint64_t)an.errors : 0;
                        if (n > pt->count)
                                n = pt->count;
                        h->base.stats.unprocessed += n;
                        log_warn(h->base.log,
                                 "the backend did not process some entries of a batch "
                                 "(not resent: it does not say which) unprocessed=%llu "
                                 "records=%zu processed=%lld",
                                 (unsigned long long)n, pt->count, an.processed);
                }
                accepted(h, pt, now_ms());
                return;
        }
        if (status == 413 && pt->count > 1) {
                log_info(h->base.log, "request too large, splitting it records=%zu", pt->count);
                if (split(h, pt) < 0)
                        hold(h, pt, now_ms());
                return;
        }
        snprintf(why, sizeof why, "HTTP %ld", status);
        if (status == 401 || status == 403 || status == 407) {
                snprintf(why, sizeof why, "HTTP %ld: %s", status, meaning(status));
                failed(h, pt, F_CREDENTIALS, status, (long)ra, false, why);
        } else if (status == 408 || status == 429 || status == 502 || status == 503 ||
                   status == 504) {
                failed(h, pt, F_OVERLOAD, status, (long)ra, false, why);
        } else if (cls == 5) {
                failed(h, pt, F_SERVER, status, (long)ra, false, why);
        } else if (cls == 3) {
                /* A POST redirected is not followed (most would turn into a
                 * GET, and the records would be taken as delivered): the
                 * operator is told where the URL now points. */
                snprintf(why, sizeof why,
                         "HTTP %ld: the url redirects%s%s (redirects are not followed: set url "
                         "to the new address)",
                         status, location[0] ? " to " : "", location);
                failed(h, pt, F_REDIRECT, status, (long)ra, false, why);
        } else if (cls == 4) {
                failed(h, pt, F_REFUSED, status, (long)ra, false, why);
        } else {
                failed(h, pt, F_OVERLOAD, status, (long)ra, false, why);
        }
}

/* Start every part that may go now, in queue order, as the pace allows:
 * while the backend fails, one request at a time probes it. Returns the ms
 * until the next one may, or -1 (nothing waits, or an answer will wake
 * us). */
static int start_ready(struct http_push *h)
{
        int64_t now = now_ms(), next = -1;
        unsigned window = pace_window(&h->pace);
        h->base.stats.window = window;
        if (pace_failing(&h->pace)) {
                /* The probe is the part tried least: a body the backend
                 * chokes on must not keep the others behind it; one
                 * acceptance ends the backoff. */
                struct hpart *probe = NULL;
                for (struct hpart *pt = h->parts; pt && h->in_flight == 0; pt = pt->next) {
                        if (pt->in_flight || pt->pending || pt->dl_pending)
                                continue;
                        if (pt->not_before_ms > now) {
                                if (next < 0 || pt->not_before_ms - now < next)
                                        next = pt->not_before_ms - now;
                                continue;
                        }
                        if (!probe || pt->attempts < probe->attempts)
                                probe = pt;
                        if (probe->attempts == 0)
                                break;
                }
                if (probe) {
                        int64_t w = pace_wait_ms(&h->pace, now, probe->count);
                        if (w > 0)
                                next = w;
                        else if (start_part(h, probe) == 0)
                                next = -1; /* its answer will wake us */
                }
        } else {
                for (struct hpart *pt = h->parts; pt && h->in_flight < window; pt = pt->next) {
                        if (pt->in_flight || pt->pending || pt->dl_pending)
                                continue;
                        if (pt->not_before_ms > now) {
                                if (next < 0 || pt->not_before_ms - now < next)
                                        next = pt->not_before_ms - now;
                                continue;
                        }
                        int64_t w = pace_wait_ms(&h->pace, now, pt->count);
                        if (w > 0) {
                                if (next < 0 || w < next)
                                        next = w;
                                break;
                        }
                        if (start_part(h, pt) < 0)
                                break;
                }
        }
        for (struct hpart *pt = h->parts; h->npending && pt; pt = pt->next) {
                if (pt->pending) {
                        int64_t w = pt->not_before_ms > now ? pt->not_before_ms - now : 0;
                        if (next < 0 || w < next)
                                next = w;
                }
        }
        if (h->dl_pending > 0) {
                int64_t w = h->dl_retry_ms > now ? h->dl_retry_ms - now : 0;
                if (next < 0 || w < next)
                        next = w;
        }
        int64_t t = trouble_tick(h, now, false);
        if (t >= 0 && (next < 0 || t < next))
                next = t;
        if (h->endpoint_refusing) {
                int64_t w = h->endpoint_summary_ms > now ? h->endpoint_summary_ms - now : 0;
                if (next < 0 || w < next)
                        next = w;
        }
        if (next < 0 || next > INT_MAX)
                return next < 0 ? -1 : INT_MAX;
        return (int)next;
}

/* Drive the transfers until nothing more completes right now: an answer
 * read by the last curl_multi_perform must be handled (and its slot reused)
 * before we sleep, else the caller sees a full window and waits for nothing. */
static void work(struct http_push *h)
{
        for (int round = 0; round < 64; round++) {
                int running;
                curl_multi_perform(h->multi, &running);
                CURLMsg *m;
                int left, finished = 0;
                while ((m = curl_multi_info_read(h->multi, &left))) {
                        if (m->msg != CURLMSG_DONE)
                                continue;
                        struct hpart *pt = NULL;
                        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&pt);
                        if (pt) {
                                done(h, pt, m->data.result);
                                finished++;
                        }
                }
                judge_pending(h);
                dl_flush(h);
                ack_ready(h);
                size_t before = h->in_flight;
                start_ready(h);
                if (!finished && h->in_flight == before)
                        break;
        }
}

static int http_wait(struct push *base, struct pollfd *fds, unsigned nfds, int timeout_ms)
{
        struct http_push *h = (struct http_push *)base;
        struct curl_waitfd wfd[8];
        if (nfds > 8)
                nfds = 8;
        for (unsigned i = 0; i < nfds; i++) {
                wfd[i].fd = fds[i].fd;
                wfd[i].events = fds[i].events;
                wfd[i].revents = 0;
        }
        judge_pending(h);
        int next = start_ready(h);
        if (next >= 0 && (timeout_ms < 0 || next < timeout_ms))
                timeout_ms = next;
        if (timeout_ms < 0)
                timeout_ms = INT_MAX; /* nothing to wait for: sleep until an fd stirs */
        if (curl_multi_poll(h->multi, wfd, nfds, timeout_ms, NULL) != CURLM_OK) {
                errno = EIO;
                return -1;
        }
        int n = 0;
        for (unsigned i = 0; i < nfds; i++) {
                fds[i].revents = wfd[i].revents;
                n += wfd[i].revents != 0;
        }
        work(h);
        return n;
}

/* Queue the batch whose events are in data + 1 (len bytes; alloc >= len + 2):
 * the buffer becomes the batch's. Returns 0, or -1 (out of memory; the
 * buffer is still the caller's). */
/* Events a part of a batch of n carries: one with one event per request,
 * else the whole batch, up to max_events. */
static size_t part_step(const struct http_push *h, size_t n)
{
        size_t step = h->o.single ? 1 : (n ? n : 1);
        return h->o.max_events && step > h->o.max_events ? h->o.max_events : step;
}

static void parts_free(struct http_push *h, struct hpart *list)
{
        while (list) {
                struct hpart *next = list->next;
                part_free(h, list);
                list = next;
        }
}

static int adopt(struct http_push *h, char *data, size_t alloc, size_t len, size_t nevents,
                 void *token, bool owned)
{
        struct hbatch *b = calloc(1, sizeof *b);
        if (!b)
                return -1;
        b->token = token;
        b->nev = nevents;
        b->unresolved = nevents;
        b->owned = owned;
        b->off = malloc((nevents + 1) * sizeof *b->off);
        /* Every part the batch can need is had before the data is touched:
         * out of memory, nothing has changed and the caller submits it
         * again later (a batch queued with parts missing would never
         * resolve, and the window would stay full for good). */
        size_t step = part_step(h, nevents);
        size_t need = nevents ? (nevents + step - 1) / step : 0, had = 0;
        struct hpart *fresh = NULL;
        for (; b->off && had < need; had++) {
                struct hpart *pt = part_new(h, b, 0, 0);
                if (!pt)
                        break;
                pt->next = fresh;
                fresh = pt;
        }
        if (!b->off || had < need) {
                parts_free(h, fresh);
                free(b->off);
                free(b);
                return -1;
        }
        b->data = data;
        b->alloc = alloc;
        /* Kept as the JSON array itself, "[e1,e2,...]": the events' newlines
         * become the commas (the last one the bracket), so a whole batch is
         * sent from here without another copy, and a part of it is a slice.
         * off[i] is where event i starts; the byte before off[i + 1] is the
         * separator after it. */
        b->data[0] = '[';
        b->len = len + 1;
        size_t k = 0, pos = 1;
        while (k < nevents && pos < b->len) {
                b->off[k++] = pos;
                char *nl = memchr(b->data + pos, '\n', b->len - pos);
                if (!nl) {
                        /* a last event without its newline: close the array */
                        b->data[b->len++] = ']';
                        pos = b->len;
                        break;
                }
                *nl = ',';
                pos = (size_t)(nl - b->data) + 1;
        }
        if (k > 0)
                b->data[pos - 1] = ']';
        b->nev = b->unresolved = k;
        b->off[k] = pos;
        if (h->batches_tail)
                h->batches_tail->next = b;
        else
                h->batches = b;
        h->batches_tail = b;
        h->inflight_events += k;
        /* the parts go at the end of the queue */
        struct hpart **tail = &h->parts;
        while (*tail)
                tail = &(*tail)->next;
        /* k <= nevents events (a batch ends at its last newline): no more
         * parts than were had */
        step = part_step(h, k);
        for (size_t i = 0; i < k; i += step) {
                struct hpart *pt = fresh;
                fresh = pt->next;
                pt->first = i;
                pt->count = k - i < step ? k - i : step;
                pt->next = NULL;
                *tail = pt;
                tail = &pt->next;
        }
        parts_free(h, fresh);
        ack_ready(h); /* an empty marker batch goes at once when it is first */
        start_ready(h);
        return 0;
}

static int http_submit(struct push *base, const char *lines, size_t len, size_t nevents,
                       void *token)
{
        struct http_push *h = (struct http_push *)base;
        char *data;
        size_t alloc;
        if (h->nspare && h->spare_alloc[h->nspare - 1] >= len + 2) {
                h->nspare--;
                data = h->spare[h->nspare];
                alloc = h->spare_alloc[h->nspare];
        } else {
                if (h->nspare) /* too small: batches only grow so far */
                        free(h->spare[--h->nspare]);
                /* room for the next, slightly larger batch */
                alloc = len + 2 + len / 16 + 4096;
                data = malloc(alloc);
                if (!data)
                        return -1;
        }
        memcpy(data + 1, lines, len);
        if (adopt(h, data, alloc, len, nevents, token, false) < 0) {
                free(data);
                return -1;
        }
        return 0;
}

static int http_submit_owned(struct push *base, char *buf, size_t alloc, size_t len, size_t nevents,
                             void *token)
{
        return adopt((struct http_push *)base, buf, alloc, len, nevents, token, true);
}

static size_t http_inflight(const struct push *base)
{
        return ((const struct http_push *)base)->inflight_events;
}

static void http_close(struct push *base)
{
        struct http_push *h = (struct http_push *)base;
        for (struct hpart *pt = h->parts, *next; pt; pt = next) {
                next = pt->next;
                if (pt->in_flight && pt->slot >= 0)
                        curl_multi_remove_handle(h->multi, h->easies[pt->slot]);
                part_free(NULL, pt);
        }
        parts_free(NULL, h->pool);
        for (struct hbatch *b = h->batches, *next; b; b = next) {
                next = b->next;
                free(b->data);
                free(b->off);
                free(b);
        }
        for (size_t i = 0; h->easies && i < h->nmade; i++)
                curl_easy_cleanup(h->easies[i]);
        curl_multi_cleanup(h->multi);
        curl_url_cleanup(h->curlu);
        for (size_t i = 0; h->hdrs && i < h->nmade; i++) {
                /* the secrets do not linger in freed memory */
                for (struct curl_slist *l = h->hdrs[i]; l; l = l->next)
                        explicit_bzero(l->data, strlen(l->data));
                curl_slist_free_all(h->hdrs[i]);
        }
        free(h->hdrs);
        free(h->idem_at);
        while (h->nspare)
                free(h->spare[--h->nspare]);
        for (size_t i = 0; i < h->o.nheaders; i++) {
                explicit_bzero((char *)h->headers[i].value, strlen(h->headers[i].value));
                free((char *)h->headers[i].name);
                free((char *)h->headers[i].value);
        }
        pace_free(&h->pace);
        free(h->headers);
        free(h->easies);
        free(h->errbufs);
        free(h->free_slots);
        free(h->url);
        free(h->ca_file);
        free(h->dead_letter);
        free(h->user_agent);
        free(h);
        curl_global_cleanup();
}

/* The headers of slot i's requests; the key's digits are filled per
 * request. */
static int slot_headers(struct http_push *h, size_t i)
{
        struct curl_slist *l = curl_slist_append(NULL, "Content-Type: application/json");
        l = l ? curl_slist_append(l, IDEM_HEADER "00000000000000000000000000000000") : NULL;
        struct curl_slist *idem = l ? l->next : NULL;
        l = l ? curl_slist_append(l, "Expect:") : NULL;
        if (l && h->o.gzip)
                l = curl_slist_append(l, "Content-Encoding: gzip");
        for (size_t k = 0; l && k < h->o.nheaders; k++) {
                char *hv = NULL;
                if (asprintf(&hv, "%s: %s", h->headers[k].name, h->headers[k].value) < 0) {
                        curl_slist_free_all(l);
                        return -1;
                }
                struct curl_slist *n = curl_slist_append(l, hv);
                /* the secret does not linger in freed memory */
                explicit_bzero(hv, strlen(hv));
                free(hv);
                if (!n) {
                        for (struct curl_slist *x = l; x; x = x->next)
                                explicit_bzero(x->data, strlen(x->data));
                        curl_slist_free_all(l);
                        return -1;
                }
                l = n;
        }
        if (!l)
                return -1;
        h->hdrs[i] = l;
        h->idem_at[i] = idem->data + strlen(IDEM_HEADER);
        return 0;
}

static const struct push_ops http_ops = {
    .submit = http_submit,
    .submit_owned = http_submit_owned,
    .wait = http_wait,
    .inflight = http_inflight,
    .close = http_close,
};

int push_open_http(struct push **out, const struct push_http_opts *o, push_ack_fn on_ack, void *ctx,
                   const struct logger *log, char *err, size_t errlen)
{
        /* TLS set-up costs several MiB of memory: only for https URLs */
        long init = strncmp(o->url, "https:", 6) == 0 ? CURL_GLOBAL_DEFAULT : CURL_GLOBAL_NOTHING;
        if (curl_global_init(init) != CURLE_OK) {
                snprintf(err, errlen, "cannot initialise libcurl");
                return -1;
        }
        struct http_push *h = calloc(1, sizeof *h);
        if (!h) {
                curl_global_cleanup();
                snprintf(err, errlen, "out of memory");
                return -1;
        }
        h->base.ops = &http_ops;
        h->base.on_ack = on_ack;
        h->base.ctx = ctx;
        h->base.log = log;
        h->o = *o;
        if (h->o.concurrency == 0)
                h->o.concurrency = 1;
        h->ok_ratio = 1.0; /* healthy until answers say otherwise */
        h->seed = (unsigned)time(NULL) ^ (unsigned)getpid();
        if (pace_init(&h->pace, h->o.concurrency, !o->fixed_concurrency, o->max_rate,
                      o->max_requests_per_minute, o->retry_max_s, h->seed) < 0) {
                free(h);
                curl_global_cleanup();
                snprintf(err, errlen, "out of memory");
                return -1;
        }
        h->base.stats.window = pace_window(&h->pace);
        h->url = strdup(o->url);
        h->dead_letter = strdup(o->dead_letter);
        h->user_agent = strdup(o->user_agent);
        h->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
        h->headers = calloc(o->nheaders ? o->nheaders : 1, sizeof *h->headers);
        h->easies = calloc(h->o.concurrency, sizeof *h->easies);
        h->free_slots = calloc(h->o.concurrency, sizeof *h->free_slots);
        h->errbufs = calloc(h->o.concurrency, sizeof *h->errbufs);
        h->hdrs = calloc(h->o.concurrency, sizeof *h->hdrs);
        h->idem_at = calloc(h->o.concurrency, sizeof *h->idem_at);
        h->multi = curl_multi_init();
        h->curlu = curl_url();
        if (h->curlu && curl_url_set(h->curlu, CURLUPART_URL, o->url, 0) != CURLUE_OK) {
                /* left to libcurl's own parse, which says what is wrong */
                curl_url_cleanup(h->curlu);
                h->curlu = NULL;
        }
        bool ok = h->url && h->dead_letter && h->user_agent && h->headers && h->easies &&
                  h->free_slots && h->errbufs && h->hdrs && h->idem_at && h->multi &&
                  (!o->ca_file || h->ca_file);
        h->o.nheaders = 0;
        for (size_t i = 0; ok && i < o->nheaders; i++) {
                h->headers[i].name = strdup(o->headers[i].name);
                h->headers[i].value = strdup(o->headers[i].value);
                ok = h->headers[i].name && h->headers[i].value;
                h->o.nheaders = i + 1;
        }
        /* the first handle now: a URL libcurl cannot use fails at start */
        int first = ok ? take_slot(h) : -1;
        if (first < 0) {
                http_close(&h->base);
                snprintf(err, errlen, "cannot set up the HTTP output (out of memory)");
                return -1;
        }
        h->free_slots[h->nfree++] = first;
        /* keep-alive connections for every request in flight; HTTP/2
         * multiplexes them on one */
        curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)h->o.concurrency);
        curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
        curl_multi_setopt(h->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, (long)h->o.concurrency);
        *out = &h->base;
        return 0;
}
