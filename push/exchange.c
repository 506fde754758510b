/* One HTTP/1.1 request at a time per connection: see exchange.h. */
#include "exchange.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define XHEAD_MAX  (64 * 1024) /* an answer's header, all lines together */
#define XLINE_MAX  4096        /* a chunk-size line */
#define XREAD      16384
#define XSOCKS     4 /* sockets libcurl may try at once while connecting */
#define XBODY_MAX  (512u << 20)
#define XRETRY_MAX (1L << 30) /* a Retry-After beyond this is nonsense */
#define XLOC_MAX   256        /* of a Location kept for the log (a redirect) */

enum xstate {
        X_DOWN,       /* no connection */
        X_CONNECTING, /* libcurl opens it */
        X_IDLE,       /* open, no request */
        X_SENDING,
        X_RECEIVING,
};

enum pstate {
        P_HEAD,
        P_LEN,        /* Content-Length bytes */
        P_CHUNK_SIZE, /* a chunk-size line */
        P_CHUNK_DATA,
        P_CHUNK_END, /* the CRLF after a chunk */
        P_TRAILER,   /* trailer lines up to the empty one */
        P_TO_CLOSE,  /* neither length nor chunked: the body ends with the connection */
        P_DONE,
};

struct xsock {
        curl_socket_t fd;
        int what; /* CURL_POLL_* */
};

struct xslot {
        struct xchg *x;
        CURLM *multi;
        CURL *easy;
        char errbuf[CURL_ERROR_SIZE];
        enum xstate st;
        unsigned gen; /* changes whenever the connection does: stale poll results */
        struct xsock cs[XSOCKS];
        int64_t ctimer_ms; /* libcurl's timer while connecting, -1: none */
        curl_socket_t fd;
        /* what the epoll set holds for fd: kept across requests, so that a
         * connection busy with one request after another costs no
         * epoll_ctl */
        curl_socket_t reg_fd;
        uint32_t reg_ev;
        unsigned reg_gen;
        unsigned answered; /* answers read on this connection */
        /* the request */
        void *user;
        struct buf *answer;
        struct buf out; /* the whole request, kept for a resend on a new connection */
        size_t out_off;
        int64_t deadline_ms;
        bool resent;   /* sent again once on a new connection: the old one had closed */
        bool fail_due; /* a failure found in xchg_start, given to `done` by xchg_work */
        CURLcode fail_rc;
        size_t got; /* bytes of the answer received */
        /* the answer */
        enum pstate ps;
        struct buf head;
        struct buf line;
        uint64_t remain;
        size_t trailer;
        long status, retry_after;
        char location[XLOC_MAX]; /* "" when none */
        bool close_after, header_too_big;
        char why[CURL_ERROR_SIZE + 96];
};

struct pollref {
        size_t slot;
        unsigned gen;
        bool connecting;
        bool epoll; /* the epoll set's own fd */
};

struct xchg {
        struct xslot *slots;
        size_t n;
        char *head;
        size_t head_len;
        int64_t timeout_ms;
        xchg_done_fn done;
        void *ctx;
        struct pollref *refs; /* what each pollfd handed out stands for */
        /* The open connections wait in an epoll set, polled as one fd: a
         * wake-up then costs the connections that are ready, not a scan and
         * a wait-queue entry for each of them. Connections being opened are
         * libcurl's sockets, polled as they are. */
        int epfd;
        struct epoll_event *evs;
        bool raw; /* plain TCP: the bytes go to the socket itself */
};

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* libcurl's wishes for the sockets of a connection being opened */
static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
        (void)e;
        (void)socketp;
        struct xslot *s = userp;
        int free_at = -1;
        for (int i = 0; i < XSOCKS; i++) {
                if (s->cs[i].fd == fd) {
                        if (what == CURL_POLL_REMOVE)
                                s->cs[i].fd = CURL_SOCKET_BAD;
                        else
                                s->cs[i].what = what;
                        return 0;
                }
                if (s->cs[i].fd == CURL_SOCKET_BAD && free_at < 0)
                        free_at = i;
        }
        if (what != CURL_POLL_REMOVE && free_at >= 0) {
                s->cs[free_at].fd = fd;
                s->cs[free_at].what = what;
        }
        /* more sockets than that at once: the timer still drives them */
        return 0;
}

static int on_timer(CURLM *m, long timeout_ms, void *userp)
{
        (void)m;
        struct xslot *s = userp;
        s->ctimer_ms = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
        return 0;
}

static void forget_socks(struct xslot *s)
{
        for (int i = 0; i < XSOCKS; i++)
                s->cs[i].fd = CURL_SOCKET_BAD;
        s->ctimer_ms = -1;
}

/* Out of the epoll set, while the fd is still open: once closed, its
 * number may come back as another connection. */
static void unwatch(struct xslot *s)
{
        if (s->reg_fd != CURL_SOCKET_BAD)
                epoll_ctl(s->x->epfd, EPOLL_CTL_DEL, s->reg_fd, NULL);
        s->reg_fd = CURL_SOCKET_BAD;
        s->reg_ev = 0;
}

/* Close the connection (removing a connect-only handle closes it). */
static void drop_conn(struct xslot *s)
{
        unwatch(s);
        if (s->st != X_DOWN)
                curl_multi_remove_handle(s->multi, s->easy);
        forget_socks(s);
        s->st = X_DOWN;
        s->fd = CURL_SOCKET_BAD;
        s->answered = 0;
        s->gen++;
}

static void open_conn(struct xslot *s)
{
        drop_conn(s);
        s->errbuf[0] = '\0';
        if (curl_multi_add_handle(s->multi, s->easy) != CURLM_OK) {
                s->fail_due = true;
                s->fail_rc = CURLE_OUT_OF_MEMORY;
                return;
        }
        s->st = X_CONNECTING;
        /* libcurl asked for its timer at once: make sure the poll does not
         * wait before it is served */
        if (s->ctimer_ms < 0)
                s->ctimer_ms = now_ms();
}

/* The request is over: free the slot first (`done` may start the next
 * request on it), then say so. */
static void finish(struct xslot *s, CURLcode rc, const char *why)
{
        struct xchg *x = s->x;
        struct xchg_result r = {
            .rc = rc,
            .status = s->status,
            .retry_after_s = s->retry_after,
            .header_too_big = s->header_too_big,
            .why = why,
            .location = s->location[0] ? s->location : NULL,
        };
        void *user = s->user;
        s->user = NULL;
        s->answer = NULL;
        s->fail_due = false;
        if (rc != CURLE_OK || s->close_after)
                drop_conn(s);
        else {
                s->st = X_IDLE;
                s->answered++;
        }
        x->done(x->ctx, user, &r);
}

/* A send or a receive failed, or the peer closed. A kept-alive connection
 * the server closed while it was idle fails the next request before any
 * byte of an answer: that request was never read, so it goes once more on
 * a new connection, as libcurl itself does. */
static void io_failed(struct xslot *s, CURLcode rc, const char *why)
{
        if (s->answered > 0 && s->got == 0 && !s->resent) {
                s->resent = true;
                s->out_off = 0;
                open_conn(s);
                if (!s->fail_due)
                        return;
                rc = s->fail_rc;
                why = curl_easy_strerror(rc);
        }
        finish(s, rc, why);
}

static void reset_answer(struct xslot *s)
{
        s->ps = P_HEAD;
        buf_reset(&s->head);
        buf_reset(&s->line);
        s->remain = 0;
        s->trailer = 0;
        s->status = 0;
        s->retry_after = 0;
        s->location[0] = '\0';
        s->close_after = false;
        s->header_too_big = false;
        s->got = 0;
        buf_reset(s->answer);
}

/* The outcome of a send or a recv on a plain connection's socket, worded
 * as libcurl words it. */
static CURLcode sock_outcome(struct xslot *s, ssize_t r, size_t *n, const char *what, CURLcode fail)
{
        if (r >= 0) {
                *n = (size_t)r;
                return CURLE_OK;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
                return CURLE_AGAIN;
        snprintf(s->errbuf, sizeof s->errbuf, "%s failure: %s", what, strerror(errno));
        return fail;
}

/* The bytes of a plain connection go straight to its socket (libcurl's
 * sockets are non-blocking); through TLS, libcurl carries them. */
static CURLcode conn_send(struct xslot *s, const char *p, size_t len, size_t *n)
{
        if (!s->x->raw)
                return curl_easy_send(s->easy, p, len, n);
        ssize_t r;
        do
                r = send(s->fd, p, len, MSG_NOSIGNAL);
        while (r < 0 && errno == EINTR);
        return sock_outcome(s, r, n, "Send", CURLE_SEND_ERROR);
}

static CURLcode conn_recv(struct xslot *s, char *p, size_t len, size_t *n)
{
        if (!s->x->raw)
                return curl_easy_recv(s->easy, p, len, n);
        ssize_t r;
        do
                r = recv(s->fd, p, len, 0);
        while (r < 0 && errno == EINTR);
        return sock_outcome(s, r, n, "Recv", CURLE_RECV_ERROR);
}

static void try_send(struct xslot *s)
{
        while (s->out_off < s->out.len) {
                size_t n = 0;
                CURLcode rc = conn_send(s, s->out.data + s->out_off, s->out.len - s->out_off, &n);
                if (rc == CURLE_AGAIN)
                        return;
                if (rc != CURLE_OK) {
                        snprintf(s->why, sizeof s->why, "cannot send the request: %s",
                                 s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
                        io_failed(s, rc, s->why);
                        return;
                }
                s->out_off += n;
        }
        s->st = X_RECEIVING;
        reset_answer(s);
}

static void connected(struct xslot *s, CURLcode rc)
{
        curl_socket_t fd = CURL_SOCKET_BAD;
        if (rc == CURLE_OK && (curl_easy_getinfo(s->easy, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK ||
                               fd == CURL_SOCKET_BAD))
                rc = CURLE_COULDNT_CONNECT;
        if (rc != CURLE_OK) {
                snprintf(s->why, sizeof s->why, "%s",
                         s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
                finish(s, rc, s->why);
                return;
        }
        forget_socks(s);
        s->fd = fd;
        s->st = X_SENDING;
        s->gen++;
        if (s->user)
                try_send(s);
        else
                s->st = X_IDLE;
}

static void connect_step(struct xslot *s, curl_socket_t fd, int ev)
{
        int running = 0;
        curl_multi_socket_action(s->multi, fd, ev, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(s->multi, &left))) {
                if (m->msg == CURLMSG_DONE && s->st == X_CONNECTING) {
                        connected(s, m->data.result);
                        return;
                }
        }
}

/* --- reading the answer */

static const char *skip_ws(const char *p, const char *end)
{
        while (p < end && (*p == ' ' || *p == '\t'))
                p++;
        return p;
}

/* Does the comma-separated list [v, end) hold `token`? */
static bool has_token(const char *v, const char *end, const char *token)
{
        size_t tl = strlen(token);
        while (v < end) {
                v = skip_ws(v, end);
                const char *c = memchr(v, ',', (size_t)(end - v));
                const char *te = c ? c : end;
                const char *t = te;
                while (t > v && (t[-1] == ' ' || t[-1] == '\t'))
                        t--;
                if ((size_t)(t - v) == tl && strncasecmp(v, token, tl) == 0)
                        return true;
                v = c ? c + 1 : end;
        }
        return false;
}

/* Is the last coding of a Transfer-Encoding list "chunked"? */
static bool last_is_chunked(const char *v, const char *end)
{
        while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
        const char *c = end;
        while (c > v && c[-1] != ',')
                c--;
        c = skip_ws(c, end);
        return end - c == 7 && strncasecmp(c, "chunked", 7) == 0;
}

static bool parse_u64(const char *v, const char *end, int base, uint64_t *out)
{
        uint64_t n = 0;
        const char *p = v;
        for (; p < end; p++) {
                int d;
                if (*p >= '0' && *p <= '9')
                        d = *p - '0';
                else if (base == 16 && *p >= 'a' && *p <= 'f')
                        d = *p - 'a' + 10;
                else if (base == 16 && *p >= 'A' && *p <= 'F')
                        d = *p - 'A' + 10;
                else
                        break;
                if (n > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
                        return false;
                n = n * (uint64_t)base + (uint64_t)d;
        }
        if (p == v)
                return false;
        *out = n;
        return p == end;
}

/* The status line: "HTTP/1.x NNN ..." */
static bool status_line(struct xslot *s, const char *p, const char *end)
{
        if (end - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9' || p[8] != ' ')
                return false;
        for (int i = 9; i < 12; i++)
                if (p[i] < '0' || p[i] > '9')
                        return false;
        if (p[9] == '0')
                return false; /* a status is 100 to 999 */
        if (end - p > 12 && p[12] != ' ' && p[12] != '\r')
                return false;
        s->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
        /* HTTP/1.0 closes unless told otherwise: we do not rely on it */
        if (p[7] == '0')
                s->close_after = true;
        return true;
}

/* The header [h, h + len), blank line included. Returns 1 for an interim
 * 1xx answer (another header follows), 0 when the body's framing is known,
 * -1 for an answer that is not HTTP. */
static int parse_head(struct xslot *s, const char *h, size_t len)
{
        const char *end = h + len, *p = h;
        const char *nl = memchr(p, '\n', len);
        const char *le = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
        if (!nl || !status_line(s, p, le)) {
                snprintf(s->why, sizeof s->why, "the answer is not HTTP/1.x");
                return -1;
        }
        bool chunked = false, has_len = false, other_coding = false;
        uint64_t clen = 0;
        for (p = nl + 1; p < end; p = nl + 1) {
                nl = memchr(p, '\n', (size_t)(end - p));
                if (!nl)
                        break;
                le = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
                if (le == p)
                        break; /* the blank line */
                if (*p == ' ' || *p == '\t')
                        continue; /* an obsolete folded line: nothing we use */
                const char *colon = memchr(p, ':', (size_t)(le - p));
                if (!colon)
                        continue;
                size_t nlen = (size_t)(colon - p);
                const char *v = skip_ws(colon + 1, le), *ve = le;
                while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                        ve--;
                if (nlen == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
                        uint64_t n;
                        if (!parse_u64(v, ve, 10, &n) || (has_len && n != clen)) {
                                snprintf(s->why, sizeof s->why,
                                         "the answer's Content-Length is not valid");
                                return -1;
                        }
                        has_len = true;
                        clen = n;
                } else if (nlen == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
                        if (last_is_chunked(v, ve))
                                chunked = true;
                        else
                                other_coding = true;
                } else if (nlen == 10 && strncasecmp(p, "Connection", 10) == 0) {
                        if (has_token(v, ve, "close"))
                                s->close_after = true;
                } else if (nlen == 8 && strncasecmp(p, "Location", 8) == 0) {
                        size_t n =
                            (size_t)(ve - v) < XLOC_MAX - 1 ? (size_t)(ve - v) : XLOC_MAX - 1;
                        memcpy(s->location, v, n);
                        s->location[n] = '\0';
                } else if (nlen == 11 && strncasecmp(p, "Retry-After", 11) == 0) {
                        uint64_t n;
                        char date[128];
                        if (parse_u64(v, ve, 10, &n))
                                s->retry_after = n < XRETRY_MAX ? (long)n : XRETRY_MAX;
                        else if ((size_t)(ve - v) < sizeof date) {
                                memcpy(date, v, (size_t)(ve - v));
                                date[ve - v] = '\0';
                                time_t t = curl_getdate(date, NULL), now = time(NULL);
                                if (t > now)
                                        s->retry_after =
                                            t - now < XRETRY_MAX ? (long)(t - now) : XRETRY_MAX;
                        }
                }
        }
        if (s->status >= 100 && s->status < 200) {
                if (s->status == 101) {
                        snprintf(s->why, sizeof s->why,
                                 "the server switched protocols, which was not asked");
                        return -1;
                }
                s->close_after = false;
                s->retry_after = 0;
                s->location[0] = '\0';
                return 1;
        }
        if (s->status == 204 || s->status == 304)
                s->ps = P_DONE;
        else if (other_coding && !chunked) {
                s->ps = P_TO_CLOSE; /* RFC 9112 6.3: read to the close */
                s->close_after = true;
        } else if (chunked)
                s->ps = P_CHUNK_SIZE;
        else if (has_len) {
                s->remain = clen;
                s->ps = clen ? P_LEN : P_DONE;
        } else {
                s->ps = P_TO_CLOSE;
                s->close_after = true;
        }
        return 0;
}

static void keep_body(struct xslot *s, const char *p, size_t n)
{
        struct buf *a = s->answer;
        size_t room = a->cap - a->len;
        /* a hostile server may send gigabytes: keep the start, drop the rest */
        buf_append(a, p, n < room ? n : room);
}

/* A line of the chunked framing, gathered across reads. Returns the line
 * (without its end) in *l, 1 when complete, 0 when more is needed, -1 when
 * too long. */
static int take_line(struct xslot *s, const char **p, size_t *n, const char **l, size_t *ll)
{
        const char *nl = memchr(*p, '\n', *n);
        size_t take = nl ? (size_t)(nl - *p) + 1 : *n;
        if (s->line.len + take > XLINE_MAX)
                return -1;
        if (buf_append(&s->line, *p, take) < 0)
                return -1;
        *p += take;
        *n -= take;
        if (!nl)
                return 0;
        size_t len = s->line.len - 1;
        if (len > 0 && s->line.data[len - 1] == '\r')
                len--;
        *l = s->line.data;
        *ll = len;
        return 1;
}

/* Feed bytes of the answer. Returns 1 when it is complete, 0 when more is
 * needed, -1 when it is not a valid answer (s->why says why). */
static int feed(struct xslot *s, const char *p, size_t n)
{
        while (n > 0) {
                switch (s->ps) {
                case P_HEAD: {
                        size_t old = s->head.len, room = XHEAD_MAX - old;
                        size_t take = n < room ? n : room;
                        if (buf_append(&s->head, p, take) < 0) {
                                snprintf(s->why, sizeof s->why, "out of memory");
                                return -1;
                        }
                        const char *h = s->head.data;
                        size_t from = old > 3 ? old - 3 : 0, end = 0;
                        for (size_t i = from; i < s->head.len; i++) {
                                const char *nl = memchr(h + i, '\n', s->head.len - i);
                                if (!nl)
                                        break;
                                i = (size_t)(nl - h);
                                if (i + 1 < s->head.len && h[i + 1] == '\n') {
                                        end = i + 2;
                                        break;
                                }
                                if (i + 2 < s->head.len && h[i + 1] == '\r' && h[i + 2] == '\n') {
                                        end = i + 3;
                                        break;
                                }
                        }
                        if (!end) {
                                if (s->head.len >= XHEAD_MAX) {
                                        s->header_too_big = true;
                                        const char *nl = memchr(h, '\n', s->head.len);
                                        if (!nl || !status_line(s, h, nl))
                                                s->status = 0;
                                        snprintf(s->why, sizeof s->why,
                                                 "the answer's header is too large");
                                        return -1;
                                }
                                p += take;
                                n -= take;
                                break;
                        }
                        size_t used = end - old;
                        p += used;
                        n -= used;
                        int r = parse_head(s, h, end);
                        if (r < 0)
                                return -1;
                        buf_reset(&s->head);
                        if (r == 1)
                                s->status = 0; /* an interim answer: the real one follows */
                        break;
                }
                case P_LEN:
                case P_CHUNK_DATA: {
                        /* counted bytes: the whole body, or one chunk */
                        size_t take = s->remain < n ? (size_t)s->remain : n;
                        keep_body(s, p, take);
                        p += take;
                        n -= take;
                        s->remain -= take;
                        if (s->remain == 0)
                                s->ps = s->ps == P_LEN ? P_DONE : P_CHUNK_END;
                        break;
                }
                case P_TO_CLOSE:
                        keep_body(s, p, n);
                        n = 0;
                        break;
                case P_CHUNK_SIZE:
                case P_CHUNK_END:
                case P_TRAILER: {
                        const char *l;
                        size_t ll;
                        size_t before = n;
                        int r = take_line(s, &p, &n, &l, &ll);
                        if (s->ps == P_TRAILER) {
                                s->trailer += before - n;
                                if (s->trailer > XHEAD_MAX)
                                        r = -1;
                        }
                        if (r < 0) {
                                snprintf(s->why, sizeof s->why,
                                         "the answer's chunked framing is not valid");
                                return -1;
                        }
                        if (r == 0)
                                break;
                        bool ok = true;
                        if (s->ps == P_CHUNK_SIZE) {
                                const char *e = memchr(l, ';', ll);
                                const char *ve = e ? e : l + ll;
                                while (ve > l && (ve[-1] == ' ' || ve[-1] == '\t'))
                                        ve--;
                                uint64_t size;
                                ok = parse_u64(l, ve, 16, &size);
                                if (ok) {
                                        s->remain = size;
                                        s->ps = size ? P_CHUNK_DATA : P_TRAILER;
                                }
                        } else if (s->ps == P_CHUNK_END) {
                                ok = ll == 0;
                                s->ps = P_CHUNK_SIZE;
                        } else if (ll == 0) {
                                s->ps = P_DONE;
                        }
                        buf_reset(&s->line);
                        if (!ok) {
                                snprintf(s->why, sizeof s->why,
                                         "the answer's chunked framing is not valid");
                                return -1;
                        }
                        break;
                }
                case P_DONE:
                        /* more than one answer to one request: this
                         * connection cannot be trusted to pair them */
                        s->close_after = true;
                        return 1;
                }
        }
        return s->ps == P_DONE ? 1 : 0;
}

static void try_recv(struct xslot *s)
{
        char buf[XREAD];
        for (;;) {
                size_t n = 0;
                CURLcode rc = conn_recv(s, buf, sizeof buf, &n);
                if (rc == CURLE_AGAIN)
                        return;
                if (rc != CURLE_OK) {
                        snprintf(s->why, sizeof s->why, "cannot read the answer: %s",
                                 s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
                        io_failed(s, rc, s->why);
                        return;
                }
                if (n == 0) {
                        if (s->ps == P_TO_CLOSE) {
                                s->close_after = true;
                                finish(s, CURLE_OK, NULL);
                        } else if (s->got == 0) {
                                io_failed(s, CURLE_GOT_NOTHING,
                                          "the server closed the connection without an answer");
                        } else {
                                finish(s, CURLE_PARTIAL_FILE,
                                       "the server closed the connection in the middle of "
                                       "its answer");
                        }
                        return;
                }
                s->got += n;
                int r = feed(s, buf, n);
                if (r < 0) {
                        finish(s, s->header_too_big ? CURLE_RECV_ERROR : CURLE_WEIRD_SERVER_REPLY,
                               s->why);
                        return;
                }
                if (r == 1) {
                        finish(s, CURLE_OK, NULL);
                        return;
                }
        }
}

/* --- the interface */

int xchg_open(struct xchg **out, CURL **easies, size_t n, bool tls, const char *head,
              size_t head_len, unsigned timeout_s, xchg_done_fn done, void *ctx)
{
        struct xchg *x = calloc(1, sizeof *x);
        if (!x)
                return -1;
        x->slots = calloc(n, sizeof *x->slots);
        x->refs = calloc(n * XSOCKS + 1, sizeof *x->refs);
        x->evs = calloc(n, sizeof *x->evs);
        x->head = malloc(head_len + 1);
        x->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (!x->slots || !x->refs || !x->evs || !x->head || x->epfd < 0) {
                int e = errno;
                if (x->epfd >= 0)
                        close(x->epfd);
                free(x->slots);
                free(x->refs);
                free(x->evs);
                free(x->head);
                free(x);
                errno = e;
                return -1;
        }
        x->raw = !tls;
        memcpy(x->head, head, head_len);
        x->head[head_len] = '\0';
        x->head_len = head_len;
        x->n = n;
        x->timeout_ms = (int64_t)(timeout_s ? timeout_s : 30) * 1000;
        x->done = done;
        x->ctx = ctx;
        for (size_t i = 0; i < n; i++) {
                struct xslot *s = &x->slots[i];
                s->x = x;
                s->easy = easies[i];
                s->fd = CURL_SOCKET_BAD;
                s->reg_fd = CURL_SOCKET_BAD;
                forget_socks(s);
                buf_init(&s->out, XBODY_MAX + head_len + 128);
                buf_init(&s->head, XHEAD_MAX);
                buf_init(&s->line, XLINE_MAX);
                s->multi = curl_multi_init();
                if (!s->multi) {
                        for (size_t k = 0; k <= i; k++)
                                x->slots[k].easy = NULL; /* still the caller's */
                        xchg_close(x);
                        return -1;
                }
                curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
                curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
                curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, on_timer);
                curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);
                curl_easy_setopt(s->easy, CURLOPT_CONNECT_ONLY, 1L);
                curl_easy_setopt(s->easy, CURLOPT_ERRORBUFFER, s->errbuf);
        }
        *out = x;
        return 0;
}

int xchg_free_slot(const struct xchg *x)
{
        /* an open connection first: no connection set-up for this request */
        int down = -1;
        for (size_t i = 0; i < x->n; i++) {
                const struct xslot *s = &x->slots[i];
                if (s->user)
                        continue;
                if (s->st == X_IDLE)
                        return (int)i;
                if (down < 0)
                        down = (int)i;
        }
        return down;
}

int xchg_start(struct xchg *x, size_t slot, void *user, const char *body, size_t len,
               const char *idem, struct buf *answer)
{
        struct xslot *s = &x->slots[slot];
        /* the key, the length and the blank line, without printf's cost */
        char tail[96], digits[24];
        size_t tl = 0, nd = 0;
        memcpy(tail, idem, 32);
        tl = 32;
        memcpy(tail + tl, "\r\nContent-Length: ", 18);
        tl += 18;
        size_t v = len;
        do {
                digits[nd++] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        while (nd)
                tail[tl++] = digits[--nd];
        memcpy(tail + tl, "\r\n\r\n", 4);
        tl += 4;
        buf_reset(&s->out);
        if (buf_append(&s->out, x->head, x->head_len) < 0 || buf_append(&s->out, tail, tl) < 0 ||
            buf_append(&s->out, body, len) < 0)
                return -1;
        s->user = user;
        s->answer = answer;
        s->out_off = 0;
        s->resent = false;
        s->fail_due = false;
        s->got = 0;
        s->status = 0;
        s->retry_after = 0;
        s->location[0] = '\0';
        s->header_too_big = false;
        s->deadline_ms = now_ms() + x->timeout_ms;
        if (s->st == X_IDLE) {
                s->st = X_SENDING;
                try_send(s);
        } else {
                open_conn(s); /* a free slot is idle or down; anything else starts over */
        }
        return 0;
}

unsigned xchg_maxfds(const struct xchg *x)
{
        return (unsigned)(x->n * XSOCKS + 1);
}

/* Make the epoll set hold what the slot waits for: its socket's readiness
 * to send or to read, or nothing. */
static void watch(struct xslot *s, size_t i)
{
        uint32_t want = s->st == X_SENDING ? EPOLLOUT : s->st == X_RECEIVING ? EPOLLIN : 0;
        curl_socket_t fd = want ? s->fd : CURL_SOCKET_BAD;
        if (fd == s->reg_fd && want == s->reg_ev && (fd == CURL_SOCKET_BAD || s->reg_gen == s->gen))
                return;
        if (s->reg_fd != fd)
                unwatch(s);
        if (fd == CURL_SOCKET_BAD)
                return;
        struct epoll_event ev = {.events = want, .data.u64 = (uint64_t)s->gen << 32 | i};
        int op = s->reg_fd == fd ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
        if (epoll_ctl(s->x->epfd, op, fd, &ev) < 0) {
                /* the request cannot be waited for: it fails now, and is
                 * tried again as any failed request is */
                s->fail_due = true;
                s->fail_rc =
                    errno == ENOMEM || errno == ENOSPC ? CURLE_OUT_OF_MEMORY : CURLE_RECV_ERROR;
                return;
        }
        s->reg_fd = fd;
        s->reg_ev = want;
        s->reg_gen = s->gen;
}

unsigned xchg_pollfds(struct xchg *x, struct pollfd *fds, unsigned max, int *timeout_ms)
{
        unsigned k = 0;
        int64_t now = now_ms(), next = -1;
        if (max > 0) {
                fds[k] = (struct pollfd){.fd = x->epfd, .events = POLLIN};
                x->refs[k++] = (struct pollref){.epoll = true};
        }
        for (size_t i = 0; i < x->n; i++) {
                struct xslot *s = &x->slots[i];
                int64_t due = -1;
                watch(s, i);
                if (s->st == X_CONNECTING) {
                        for (int j = 0; j < XSOCKS && k < max; j++) {
                                if (s->cs[j].fd == CURL_SOCKET_BAD)
                                        continue;
                                short ev = (short)(((s->cs[j].what & CURL_POLL_IN) ? POLLIN : 0) |
                                                   ((s->cs[j].what & CURL_POLL_OUT) ? POLLOUT : 0));
                                fds[k] = (struct pollfd){.fd = s->cs[j].fd, .events = ev};
                                x->refs[k++] =
                                    (struct pollref){.slot = i, .gen = s->gen, .connecting = true};
                        }
                        due = s->ctimer_ms;
                }
                if (s->user && (due < 0 || s->deadline_ms < due))
                        due = s->deadline_ms;
                if (s->fail_due)
                        due = now;
                if (due >= 0 && (next < 0 || due < next))
                        next = due;
        }
        if (next >= 0) {
                int64_t w = next > now ? next - now : 0;
                if (w > INT_MAX)
                        w = INT_MAX;
                if (*timeout_ms < 0 || w < *timeout_ms)
                        *timeout_ms = (int)w;
        }
        return k;
}

/* The connections the epoll set says are ready. */
static void ready(struct xchg *x)
{
        int m = epoll_wait(x->epfd, x->evs, (int)x->n, 0);
        for (int k = 0; k < m; k++) {
                size_t i = (size_t)(x->evs[k].data.u64 & 0xffffffffu);
                unsigned gen = (unsigned)(x->evs[k].data.u64 >> 32);
                if (i >= x->n)
                        continue;
                struct xslot *s = &x->slots[i];
                if (gen != s->gen)
                        continue; /* the connection changed since */
                if (s->st == X_SENDING)
                        try_send(s);
                else if (s->st == X_RECEIVING)
                        try_recv(s);
        }
}

void xchg_work(struct xchg *x, const struct pollfd *fds, unsigned n)
{
        for (unsigned k = 0; k < n; k++) {
                if (!fds[k].revents)
                        continue;
                struct pollref r = x->refs[k];
                if (r.epoll) {
                        ready(x);
                        continue;
                }
                struct xslot *s = &x->slots[r.slot];
                if (r.gen != s->gen)
                        continue; /* the connection changed since */
                if (r.connecting) {
                        if (s->st != X_CONNECTING)
                                continue;
                        int ev = ((fds[k].revents & POLLIN) ? CURL_CSELECT_IN : 0) |
                                 ((fds[k].revents & POLLOUT) ? CURL_CSELECT_OUT : 0) |
                                 ((fds[k].revents & (POLLERR | POLLHUP)) ? CURL_CSELECT_ERR : 0);
                        connect_step(s, fds[k].fd, ev);
                } else if (s->st == X_SENDING) {
                        try_send(s);
                } else if (s->st == X_RECEIVING) {
                        try_recv(s);
                }
        }
        int64_t now = now_ms();
        for (size_t i = 0; i < x->n; i++) {
                struct xslot *s = &x->slots[i];
                if (s->fail_due && s->user) {
                        finish(s, s->fail_rc, curl_easy_strerror(s->fail_rc));
                        continue;
                }
                if (s->st == X_CONNECTING && s->ctimer_ms >= 0 && now >= s->ctimer_ms) {
                        s->ctimer_ms = -1;
                        connect_step(s, CURL_SOCKET_TIMEOUT, 0);
                }
                if (s->user && now >= s->deadline_ms) {
                        snprintf(s->why, sizeof s->why,
                                 "Operation timed out after %" PRId64
                                 " milliseconds with %zu bytes received",
                                 x->timeout_ms, s->got);
                        finish(s, CURLE_OPERATION_TIMEDOUT, s->why);
                }
        }
}

void xchg_close(struct xchg *x)
{
        if (!x)
                return;
        for (size_t i = 0; i < x->n; i++) {
                struct xslot *s = &x->slots[i];
                if (s->multi && s->easy && s->st != X_DOWN)
                        curl_multi_remove_handle(s->multi, s->easy);
                if (s->easy)
                        curl_easy_cleanup(s->easy);
                if (s->multi)
                        curl_multi_cleanup(s->multi);
                /* the request's header holds the secrets */
                if (s->out.data)
                        explicit_bzero(s->out.data, s->out.alloc);
                buf_free(&s->out);
                buf_free(&s->head);
                buf_free(&s->line);
        }
        if (x->head)
                explicit_bzero(x->head, x->head_len);
        free(x->head);
        free(x->slots);
        free(x->refs);
        free(x->evs);
        close(x->epfd);
        free(x);
}
