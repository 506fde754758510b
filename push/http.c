/* The HTTP output: batches of events POSTed to the Oempro webhook.
 *
 * A submitted batch is cut into parts: the whole batch as one JSON array
 * (format batch, at most max_events per array), or one part per event
 * (format single). Parts are sent over libcurl's multi interface, up to
 * `concurrency` at a time on kept-alive connections, as the output's pace
 * allows (pace.h: max_rate, max_requests_per_minute, and one backoff for the
 * whole output), and each answer decides the part's fate
 * (backend-contract.md; answer.h finds the JSON in what PHP printed):
 *   2xx                       accepted, unless the answer says Success:false,
 *                             Errors, ErrorCount > 0 or (type=fluentd) a
 *                             StatusCode other than 250
 *   408, 429, 5xx, no answer  sent again, the same body and Idempotency-Key,
 *                             once the output's backoff (capped exponential
 *                             with jitter, or Retry-After) and its own allow;
 *                             meanwhile one request at a time (the part tried
 *                             least) probes the backend
 *   401, 403, Errors Code 1   the same, and said loudly: credentials, not data
 *   413                       too large: split in halves
 *   other 4xx, refusals       split until the refused events stand alone,
 *                             then they go to the dead-letter file, all those
 *                             of one pass in one append and one fdatasync
 * Nothing is ever dropped: a part is retried forever, and a refused event is
 * acknowledged only once it is durably in the dead-letter file.
 *
 * A batch is acknowledged when all its events are; acknowledgements go out
 * in the order batches came in, whatever order the answers arrive in. */
#include "push_impl.h"

#include "answer.h"
#include "buf.h"
#include "exchange.h"
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
        unsigned attempts;
        int64_t started_ms;
        int64_t not_before_ms; /* its own backoff, on top of the output's */
        bool in_flight;
        bool dl_pending; /* refused alone, waiting for the dead-letter write */
        long dl_status;
        CURL *easy;
        struct buf answer;
        size_t header_bytes;
        bool header_too_big;
        size_t slot; /* its easy handle's, while in flight and until handled */
        struct hpart *next;
};

struct http_push {
        struct push base;
        struct push_http_opts o;
        char *url, *ca_file, *dead_letter, *user_agent;
        struct push_header *headers;
        CURLM *multi;
        CURLU *curlu; /* the URL parsed once, not at every request */
        /* One event per request: libcurl opens the connections, the
         * exchange on them is ours (exchange.h); NULL: libcurl transfers. */
        struct xchg *x;
        bool x_owned;        /* the exchange has the easy handles */
        struct pollfd *pfds; /* the caller's and the exchange's, for poll */
        unsigned pfds_max;
        CURL **easies; /* one per concurrency slot, reused: keeps connections warm */
        /* libcurl's reason, per slot rather than per part: a backlog of
         * single-event parts stays small */
        char (*errbufs)[CURL_ERROR_SIZE];
        /* Each slot's request headers, built once: only the Idempotency-Key
         * changes, written in place over its 32 hex digits. */
        struct curl_slist **hdrs;
        char **idem_at;
        bool *easy_busy;
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
        unsigned seed;
        unsigned failing; /* consecutive failed attempts, for the log */
        struct pace pace;
        size_t dl_pending;   /* parts waiting for the dead-letter write */
        int64_t dl_retry_ms; /* when the write may be tried again */
        int64_t dl_delay_ms; /* grows while it keeps failing */
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
        *pt = (struct hpart){.b = b, .first = first, .count = count, .answer = answer};
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

static int start_part_x(struct http_push *h, struct hpart *pt)
{
        int slot = xchg_free_slot(h->x);
        if (slot < 0)
                return -1;
        if (!pt->built && build_body(h, pt) < 0) {
                log_error(h->base.log, "cannot build a request body: %s", strerror(errno));
                return -1;
        }
        if (xchg_start(h->x, (size_t)slot, pt, pt->view, pt->view_len, pt->idem, &pt->answer) < 0)
                return -1;
        pt->slot = (size_t)slot;
        return 0;
}

static int start_part(struct http_push *h, struct hpart *pt)
{
        if (h->x) {
                if (start_part_x(h, pt) < 0)
                        return -1;
                goto started;
        }
        size_t slot = 0;
        while (slot < h->o.concurrency && h->easy_busy[slot])
                slot++;
        if (slot == h->o.concurrency)
                return -1;
        if (!pt->built && build_body(h, pt) < 0) {
                log_error(h->base.log, "cannot build a request body: %s", strerror(errno));
                return -1;
        }
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
        if (curl_multi_add_handle(h->multi, e) != CURLM_OK)
                return -1;
        h->easy_busy[slot] = true;
        pt->slot = slot;
        pt->easy = e;
started:
        pt->in_flight = true;
        pt->started_ms = now_ms();
        pace_started(&h->pace, pt->started_ms, pt->count);
        h->in_flight++;
        h->base.stats.requests++;
        if (pt->attempts > 0)
                h->base.stats.retries++;
        return 0;
}

static void release_easy(struct http_push *h, struct hpart *pt)
{
        if (pt->easy) {
                curl_multi_remove_handle(h->multi, pt->easy);
                for (size_t i = 0; i < h->o.concurrency; i++) {
                        if (h->easies[i] == pt->easy)
                                h->easy_busy[i] = false;
                }
        }
        pt->easy = NULL;
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

/* Not delivered: the part waits in its place for the whole output's
 * backoff (pace.h), which this failure may push back. */
static void retry_later(struct http_push *h, struct hpart *pt, long retry_after_s, const char *why)
{
        pt->attempts++;
        int64_t now = now_ms();
        int64_t delay = pace_failed(&h->pace, now, pt->started_ms, retry_after_s);
        /* and the part itself waits its own growing delay: a body that
         * fails alone (a 500 for it only) comes back ever more rarely, and
         * pushes the others back once each time */
        pt->not_before_ms = now + pace_part_delay_ms(&h->pace, pt->attempts);
        h->base.stats.retrying = true;
        snprintf(h->base.stats.last_error, sizeof h->base.stats.last_error, "%s", why);
        if (h->failing++ == 0)
                log_warn(h->base.log, "delivery failing, retrying until it works reason=\"%s\"",
                         why);
        else
                log_debug(h->base.log, "retrying in_ms=%lld attempt=%u reason=\"%s\"",
                          (long long)delay, pt->attempts, why);
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
        snprintf(head, sizeof head, "{\"time\":\"%s\",\"status\":%ld,\"answer\":", when,
                 pt->dl_status);
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

static void resolve(struct http_push *h, struct hpart *pt);

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
                         "status=%ld eventId=%.32s file=%s",
                         pt->dl_status, id ? id + 11 : "?", h->dead_letter);
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
        pt->not_before_ms = 0;
        pt->built = false;
        buf_reset(&pt->body);
        b->next = pt->next;
        pt->next = b;
        return 0;
}

static void refused(struct http_push *h, struct hpart *pt, long status, const char *what)
{
        if (pt->count > 1) {
                log_info(h->base.log,
                         "backend refused a batch, splitting it status=%ld records=%zu%s%s", status,
                         pt->count, what[0] ? " answer=" : "", what);
                if (split(h, pt) < 0)
                        retry_later(h, pt, 0, "out of memory");
                return;
        }
        pt->dl_pending = true;
        pt->dl_status = status;
        h->dl_pending++;
}

static void delivered(struct http_push *h, struct hpart *pt)
{
        if (h->failing) {
                log_info(h->base.log, "delivering again after failed_attempts=%u", h->failing);
                h->failing = 0;
        }
        h->base.stats.retrying = false;
        resolve(h, pt);
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

/* The answer to a part (or the lack of one) decides its fate. */
static void done(struct http_push *h, struct hpart *pt, const struct xchg_result *r)
{
        CURLcode rc = r->rc;
        long status = r->status, ra = r->retry_after_s;
        release_easy(h, pt);
        char why[CURL_ERROR_SIZE + 160];
        if (rc != CURLE_OK) {
                h->base.stats.answers[0]++;
                if (r->header_too_big)
                        snprintf(why, sizeof why,
                                 "the answer's header is too large (over %d KiB), HTTP %ld",
                                 (pt->header_too_big || h->x ? HEADER_MAX : 100 * 1024) / 1024,
                                 status);
                else
                        snprintf(why, sizeof why, "%s", r->why ? r->why : curl_easy_strerror(rc));
                retry_later(h, pt, 0, why);
                return;
        }
        int cls = status >= 100 && status < 600 ? (int)(status / 100) : 0;
        h->base.stats.answers[cls]++;
        struct answer an;
        answer_judge(pt->answer.data, pt->answer.len, h->o.status_code_250, &an);
        bool creds = status == 401 || status == 403 || an.verdict == ANSWER_CREDENTIALS;
        h->base.stats.credentials = creds;
        if (creds) {
                if (an.verdict == ANSWER_CREDENTIALS)
                        snprintf(why, sizeof why,
                                 "HTTP %ld: the backend refuses our credentials (Errors Code 1: "
                                 "check the admin API key in header_file)",
                                 status);
                else
                        snprintf(why, sizeof why,
                                 "HTTP %ld: the backend refuses our credentials (check the "
                                 "signature header)",
                                 status);
                /* loud on every new streak: data is never condemned for it */
                if (!h->failing)
                        log_error(
                            h->base.log, "credentials refused by the backend status=%ld%s", status,
                            an.verdict == ANSWER_CREDENTIALS ? " answer=\"Errors Code 1\"" : "");
                retry_later(h, pt, (long)ra, why);
                return;
        }
        if (cls == 2) {
                pace_succeeded(&h->pace);
                if (an.verdict == ANSWER_REFUSED || an.verdict == ANSWER_PARTIAL) {
                        refused(h, pt, status, an.why);
                        return;
                }
                delivered(h, pt);
                return;
        }
        if (status == 413) {
                pace_succeeded(&h->pace);
                if (pt->count > 1) {
                        log_info(h->base.log, "request too large, splitting it records=%zu",
                                 pt->count);
                        if (split(h, pt) < 0)
                                retry_later(h, pt, 0, "out of memory");
                        return;
                }
                refused(h, pt, status, "");
                return;
        }
        if (cls == 4 && status != 408 && status != 429) {
                pace_succeeded(&h->pace);
                refused(h, pt, status, "");
                return;
        }
        if (cls == 3) {
                /* A POST redirected is not followed (most would turn into a
                 * GET, and the records would be taken as delivered): the
                 * operator is told where the URL now points. */
                char loc[160];
                url_for_log(loc, sizeof loc, r->location ? r->location : "");
                snprintf(why, sizeof why,
                         "HTTP %ld: the url redirects%s%s (redirects are not followed: set url "
                         "to the new address)",
                         status, loc[0] ? " to " : "", loc);
        } else {
                snprintf(why, sizeof why, "HTTP %ld", status);
        }
        retry_later(h, pt, (long)ra, why);
}

/* Start every part that may go now, in queue order, as the pace allows:
 * while the backend fails, one request at a time probes it. Returns the ms
 * until the next one may, or -1 (nothing waits, or an answer will wake
 * us). */
static int start_ready(struct http_push *h)
{
        int64_t now = now_ms(), next = -1;
        if (pace_failing(&h->pace)) {
                /* The probe is the part tried least: a body the backend
                 * chokes on (a 500 for it alone) must not keep the others
                 * behind it for ever; one success ends the backoff. */
                struct hpart *probe = NULL;
                for (struct hpart *pt = h->parts; pt && h->in_flight == 0; pt = pt->next) {
                        if (pt->in_flight || pt->dl_pending)
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
                for (struct hpart *pt = h->parts; pt && h->in_flight < h->o.concurrency;
                     pt = pt->next) {
                        if (pt->in_flight || pt->dl_pending)
                                continue;
                        if (pt->not_before_ms > now) {
                                if (next < 0 || pt->not_before_ms - now < next)
                                        next = pt->not_before_ms - now;
                                continue;
                        }
                        int64_t w = pace_wait_ms(&h->pace, now, pt->count);
                        if (w > 0) {
                                next = w;
                                break;
                        }
                        if (start_part(h, pt) < 0)
                                break;
                }
        }
        if (h->dl_pending > 0) {
                int64_t w = h->dl_retry_ms > now ? h->dl_retry_ms - now : 0;
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
                                CURLcode rc = m->data.result;
                                long status = 0;
                                curl_off_t ra = 0;
                                curl_easy_getinfo(pt->easy, CURLINFO_RESPONSE_CODE, &status);
                                curl_easy_getinfo(pt->easy, CURLINFO_RETRY_AFTER, &ra);
                                char *loc = NULL; /* a redirect's target, absolute */
                                curl_easy_getinfo(pt->easy, CURLINFO_REDIRECT_URL, &loc);
                                /* libcurl refuses a header line over 100 KiB as
                                 * "Out of memory": it is the answer that is wrong */
                                struct xchg_result r = {
                                    .rc = rc,
                                    .status = status,
                                    .retry_after_s = (long)ra,
                                    .header_too_big =
                                        pt->header_too_big ||
                                        (rc == CURLE_OUT_OF_MEMORY && pt->header_bytes > 0),
                                    .why = h->errbufs[pt->slot][0] ? h->errbufs[pt->slot] : NULL,
                                    .location = loc,
                                };
                                done(h, pt, &r);
                                finished++;
                        }
                }
                dl_flush(h);
                ack_ready(h);
                size_t before = h->in_flight;
                start_ready(h);
                if (!finished && h->in_flight == before)
                        break;
        }
}

/* An answer read (or not) on one of the exchange's connections. */
static void exchanged(void *ctx, void *user, const struct xchg_result *r)
{
        done(ctx, user, r);
}

/* The wait of the exchange: one poll over the caller's fds and the
 * connections'; libcurl only drives the connections being opened. */
static int http_wait_x(struct http_push *h, struct pollfd *fds, unsigned nfds, int timeout_ms)
{
        if (nfds > 8)
                nfds = 8;
        int next = start_ready(h);
        if (next >= 0 && (timeout_ms < 0 || next < timeout_ms))
                timeout_ms = next;
        if (nfds > 0)
                memcpy(h->pfds, fds, nfds * sizeof *fds);
        unsigned nx = xchg_pollfds(h->x, h->pfds + nfds, h->pfds_max - nfds, &timeout_ms);
        int rc = poll(h->pfds, nfds + nx, timeout_ms);
        if (rc < 0 && errno != EINTR)
                return -1;
        int n = 0;
        for (unsigned i = 0; i < nfds + nx; i++) {
                if (rc < 0)
                        h->pfds[i].revents = 0;
                if (i < nfds) {
                        fds[i].revents = h->pfds[i].revents;
                        n += fds[i].revents != 0;
                }
        }
        xchg_work(h->x, h->pfds + nfds, nx);
        dl_flush(h);
        ack_ready(h);
        start_ready(h);
        return n;
}

static int http_wait(struct push *base, struct pollfd *fds, unsigned nfds, int timeout_ms)
{
        struct http_push *h = (struct http_push *)base;
        if (h->x)
                return http_wait_x(h, fds, nfds, timeout_ms);
        struct curl_waitfd wfd[8];
        if (nfds > 8)
                nfds = 8;
        for (unsigned i = 0; i < nfds; i++) {
                wfd[i].fd = fds[i].fd;
                wfd[i].events = fds[i].events;
                wfd[i].revents = 0;
        }
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
        /* first: its connections hold the parts' bodies */
        xchg_close(h->x);
        for (struct hpart *pt = h->parts, *next; pt; pt = next) {
                next = pt->next;
                if (pt->in_flight && pt->easy)
                        curl_multi_remove_handle(h->multi, pt->easy);
                part_free(NULL, pt);
        }
        parts_free(NULL, h->pool);
        for (struct hbatch *b = h->batches, *next; b; b = next) {
                next = b->next;
                free(b->data);
                free(b->off);
                free(b);
        }
        for (size_t i = 0; !h->x_owned && h->easies && i < h->o.concurrency; i++)
                curl_easy_cleanup(h->easies[i]);
        free(h->pfds);
        curl_multi_cleanup(h->multi);
        curl_url_cleanup(h->curlu);
        for (size_t i = 0; h->hdrs && i < h->o.concurrency; i++) {
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
        free(h->easy_busy);
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

static bool custom_header(const struct http_push *h, const char *name)
{
        for (size_t k = 0; k < h->o.nheaders; k++)
                if (strcasecmp(h->headers[k].name, name) == 0)
                        return true;
        return false;
}

/* Every request's header up to the Idempotency-Key's digits, as libcurl
 * would write it: a configured header replaces ours of the same name, but
 * the framing (Content-Length) stays ours. */
static int request_head(struct http_push *h, struct buf *out)
{
        char *path = NULL, *query = NULL, *host = NULL, *port = NULL;
        int rc = -1;
        if (curl_url_get(h->curlu, CURLUPART_PATH, &path, 0) != CURLUE_OK ||
            curl_url_get(h->curlu, CURLUPART_HOST, &host, 0) != CURLUE_OK)
                goto out;
        (void)curl_url_get(h->curlu, CURLUPART_QUERY, &query, 0);
        (void)curl_url_get(h->curlu, CURLUPART_PORT, &port, 0); /* only when the URL says it */
        static const char *const fixed[][2] = {
            {"User-Agent", NULL},
            {"Accept", "*/*"},
            {"Content-Type", "application/json"},
        };
        if (buf_puts(out, "POST ") < 0 || buf_puts(out, path) < 0 ||
            (query && (buf_putc(out, '?') < 0 || buf_puts(out, query) < 0)) ||
            buf_puts(out, " HTTP/1.1\r\n") < 0)
                goto out;
        if (!custom_header(h, "Host") &&
            (buf_puts(out, "Host: ") < 0 || buf_puts(out, host) < 0 ||
             (port && (buf_putc(out, ':') < 0 || buf_puts(out, port) < 0)) ||
             buf_puts(out, "\r\n") < 0))
                goto out;
        for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
                const char *v = fixed[i][1] ? fixed[i][1] : h->user_agent;
                if (custom_header(h, fixed[i][0]))
                        continue;
                if (buf_puts(out, fixed[i][0]) < 0 || buf_puts(out, ": ") < 0 ||
                    buf_puts(out, v) < 0 || buf_puts(out, "\r\n") < 0)
                        goto out;
        }
        if (h->o.gzip && buf_puts(out, "Content-Encoding: gzip\r\n") < 0)
                goto out;
        for (size_t k = 0; k < h->o.nheaders; k++) {
                const char *name = h->headers[k].name;
                if (strcasecmp(name, "Content-Length") == 0 ||
                    strcasecmp(name, "Transfer-Encoding") == 0 || strcasecmp(name, "Expect") == 0)
                        continue;
                if (buf_puts(out, name) < 0 || buf_puts(out, ": ") < 0 ||
                    buf_puts(out, h->headers[k].value) < 0 || buf_puts(out, "\r\n") < 0)
                        goto out;
        }
        rc = buf_puts(out, IDEM_HEADER);
out:
        curl_free(path);
        curl_free(query);
        curl_free(host);
        curl_free(port);
        return rc;
}

/* The exchange serves plain requests to the URL's own host: through a
 * proxy, or with credentials in the URL, libcurl's transfers do it. *tls:
 * the URL is https (the parser writes the scheme in lower case). */
static bool exchange_fits(const struct http_push *h, bool *tls)
{
        if (!h->o.single || !h->curlu)
                return false;
        char *scheme = NULL, *user = NULL;
        bool ok = curl_url_get(h->curlu, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
                  (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0) &&
                  curl_url_get(h->curlu, CURLUPART_USER, &user, 0) != CURLUE_OK;
        *tls = ok && strcmp(scheme, "https") == 0;
        curl_free(scheme);
        curl_free(user);
        static const char *const proxies[] = {"http_proxy", "https_proxy", "HTTPS_PROXY",
                                              "all_proxy", "ALL_PROXY"};
        for (size_t i = 0; ok && i < sizeof proxies / sizeof proxies[0]; i++) {
                const char *v = getenv(proxies[i]);
                ok = !v || !*v;
        }
        return ok;
}

static int open_exchange(struct http_push *h, bool tls)
{
        struct buf head;
        buf_init(&head, 256 * 1024);
        int rc = request_head(h, &head);
        if (rc == 0)
                rc = xchg_open(&h->x, h->easies, h->o.concurrency, tls, head.data, head.len,
                               h->o.timeout_s, exchanged, h);
        if (head.data)
                explicit_bzero(head.data, head.len); /* it holds the secrets */
        buf_free(&head);
        if (rc < 0)
                return -1;
        h->x_owned = true;
        h->pfds_max = 8 + xchg_maxfds(h->x);
        h->pfds = calloc(h->pfds_max, sizeof *h->pfds);
        return h->pfds ? 0 : -1;
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
        h->seed = (unsigned)time(NULL) ^ (unsigned)getpid();
        if (pace_init(&h->pace, o->max_rate, o->max_requests_per_minute, o->retry_max_s, h->seed) <
            0) {
                free(h);
                curl_global_cleanup();
                snprintf(err, errlen, "out of memory");
                return -1;
        }
        h->url = strdup(o->url);
        h->dead_letter = strdup(o->dead_letter);
        h->user_agent = strdup(o->user_agent);
        h->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
        h->headers = calloc(o->nheaders ? o->nheaders : 1, sizeof *h->headers);
        h->easies = calloc(h->o.concurrency, sizeof *h->easies);
        h->easy_busy = calloc(h->o.concurrency, sizeof *h->easy_busy);
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
                  h->easy_busy && h->errbufs && h->hdrs && h->idem_at && h->multi &&
                  (!o->ca_file || h->ca_file);
        h->o.nheaders = 0;
        for (size_t i = 0; ok && i < o->nheaders; i++) {
                h->headers[i].name = strdup(o->headers[i].name);
                h->headers[i].value = strdup(o->headers[i].value);
                ok = h->headers[i].name && h->headers[i].value;
                h->o.nheaders = i + 1;
        }
        for (size_t i = 0; ok && i < h->o.concurrency; i++) {
                CURL *e = curl_easy_init();
                h->easies[i] = e;
                if (!e) {
                        ok = false;
                        break;
                }
                if (h->curlu)
                        curl_easy_setopt(e, CURLOPT_CURLU, h->curlu);
                else
                        curl_easy_setopt(e, CURLOPT_URL, h->url);
                curl_easy_setopt(e, CURLOPT_POST, 1L);
                curl_easy_setopt(e, CURLOPT_USERAGENT, h->user_agent);
                curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer);
                curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
                curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)o->timeout_s);
                curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT,
                                 (long)(o->timeout_s < 10 ? o->timeout_s : 10));
                curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
                curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
                curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
                curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, o->tls_verify ? 1L : 0L);
                curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, o->tls_verify ? 2L : 0L);
                if (h->ca_file)
                        curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file);
                curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
                curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbufs[i]);
                if (slot_headers(h, i) < 0) {
                        ok = false;
                        break;
                }
                curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->hdrs[i]);
        }
        bool tls = false;
        if (ok && exchange_fits(h, &tls)) {
                if (open_exchange(h, tls) < 0)
                        ok = false;
                else
                        log_debug(log,
                                  "one event per request: the HTTP/1.1 exchange on "
                                  "connections=%u kept alive",
                                  h->o.concurrency);
        }
        if (!ok) {
                http_close(&h->base);
                snprintf(err, errlen, "cannot set up the HTTP output (out of memory)");
                return -1;
        }
        /* keep-alive connections for every request in flight */
        curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)h->o.concurrency);
        *out = &h->base;
        return 0;
}
