/* reqfloor.c - the floor under one event per request: what sending costs
 * when nothing else is done.
 *
 * A benchmark baseline, not part of pmtatail. It opens C keep-alive
 * connections to a sink, and on each sends ready-made POSTs shaped like
 * pmtatail's (the same header lines, an Idempotency-Key, a JSON body of the
 * given size), one request at a time per connection: one send() a request,
 * one recv() an answer, every connection waiting in one epoll set. No file is
 * read, no CSV parsed, no JSON written, nothing judged but the answer's
 * status and length. Its CPU per request is the kernel's loopback TCP and the
 * least user-space HTTP can cost; the delivery benchmark sets pmtatail's
 * `format = single` against it and against csvwalk (parse only) in the same
 * round.
 *
 *   cc -O2 -o reqfloor reqfloor.c
 *   reqfloor --port P --requests N [--conns 16] [--body-bytes 1078]
 *            [--path /system/bounce_webhook?type=pmta]
 *
 * Prints one line: requests=N wall_s=S cpu_s=C (utime + stime of the whole
 * process). Exit 1 on any error (refused connection, an answer that is not
 * 2xx, a malformed answer), 2 on bad arguments. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNS_MAX  256
#define ANSWER_MAX 8192

struct conn {
        int fd;
        char *req; /* this connection's request, its key rewritten per send */
        size_t req_len;
        char *key; /* the 32 hex digits inside req */
        char ans[ANSWER_MAX];
        size_t got;
        int busy;
};

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A different key per request, as pmtatail sends: the counter in hex. */
static void set_key(char *key, uint64_t n)
{
        static const char hex[] = "0123456789abcdef";
        for (int i = 31; i >= 0; i--, n >>= 4)
                key[i] = hex[n & 0xf];
}

static int send_all(int fd, const char *p, size_t len)
{
        while (len > 0) {
                ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -1;
                }
                p += w;
                len -= (size_t)w;
        }
        return 0;
}

/* 1: a whole answer is in c->ans (and is 2xx), 0: not yet, -1: bad. */
static int answer_done(struct conn *c)
{
        char *end = memmem(c->ans, c->got, "\r\n\r\n", 4);
        if (!end)
                return c->got == ANSWER_MAX ? -1 : 0;
        if (c->got < 12 || memcmp(c->ans, "HTTP/1.1 2", 10) != 0)
                return -1;
        size_t head = (size_t)(end - c->ans) + 4, body = 0;
        for (char *l = c->ans; l < end; l++) {
                if ((l == c->ans || l[-1] == '\n') && strncasecmp(l, "Content-Length:", 15) == 0)
                        body = strtoul(l + 15, NULL, 10);
        }
        if (head + body > ANSWER_MAX)
                return -1;
        if (c->got < head + body)
                return 0;
        if (c->got > head + body)
                return -1; /* nothing is pipelined: more bytes are a fault */
        return 1;
}

int main(int argc, char **argv)
{
        const char *path = "/system/bounce_webhook?type=pmta";
        long port = 0, conns = 16, body_bytes = 1078;
        long long requests = 0;
        for (int i = 1; i + 1 < argc; i += 2) {
                if (strcmp(argv[i], "--port") == 0)
                        port = strtol(argv[i + 1], NULL, 10);
                else if (strcmp(argv[i], "--requests") == 0)
                        requests = strtoll(argv[i + 1], NULL, 10);
                else if (strcmp(argv[i], "--conns") == 0)
                        conns = strtol(argv[i + 1], NULL, 10);
                else if (strcmp(argv[i], "--body-bytes") == 0)
                        body_bytes = strtol(argv[i + 1], NULL, 10);
                else if (strcmp(argv[i], "--path") == 0)
                        path = argv[i + 1];
                else {
                        fprintf(stderr, "reqfloor: unknown option %s\n", argv[i]);
                        return 2;
                }
        }
        if (port <= 0 || port > 65535 || requests <= 0 || conns <= 0 || conns > CONNS_MAX ||
            body_bytes < 16 || body_bytes > 1 << 20) {
                fprintf(stderr, "usage: reqfloor --port P --requests N [--conns C] "
                                "[--body-bytes B] [--path P]\n");
                return 2;
        }

        /* the body: a JSON object of exactly body_bytes bytes */
        char *body = malloc((size_t)body_bytes);
        if (!body)
                return 1;
        memcpy(body, "{\"pad\":\"", 8);
        memset(body + 8, 'x', (size_t)body_bytes - 10);
        memcpy(body + body_bytes - 2, "\"}", 2);

        char head[1024];
        int hl = snprintf(head, sizeof head,
                          "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%ld\r\n"
                          "User-Agent: pmtatail/bench\r\nAccept: */*\r\n"
                          "Content-Type: application/json\r\nIdempotency-Key: ",
                          path, port);
        if (hl < 0 || (size_t)hl >= sizeof head)
                return 2;
        char tail[64];
        int tl = snprintf(tail, sizeof tail, "\r\nContent-Length: %ld\r\n\r\n", body_bytes);

        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ep = epoll_create1(EPOLL_CLOEXEC);
        struct conn *cs = calloc((size_t)conns, sizeof *cs);
        if (ep < 0 || !cs)
                return 1;
        for (long i = 0; i < conns; i++) {
                struct conn *c = &cs[i];
                c->req_len = (size_t)hl + 32 + (size_t)tl + (size_t)body_bytes;
                c->req = malloc(c->req_len);
                if (!c->req)
                        return 1;
                memcpy(c->req, head, (size_t)hl);
                c->key = c->req + hl;
                memcpy(c->key + 32, tail, (size_t)tl);
                memcpy(c->key + 32 + tl, body, (size_t)body_bytes);
                c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                int one = 1;
                if (c->fd < 0 ||
                    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
                    connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
                        perror("reqfloor: connect");
                        return 1;
                }
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
                        return 1;
        }

        double t0 = now_s();
        long long sent = 0, done = 0;
        for (long i = 0; i < conns && sent < requests; i++) {
                set_key(cs[i].key, (uint64_t)sent++);
                if (send_all(cs[i].fd, cs[i].req, cs[i].req_len) < 0) {
                        perror("reqfloor: send");
                        return 1;
                }
                cs[i].busy = 1;
        }
        struct epoll_event evs[CONNS_MAX];
        while (done < requests) {
                int n = epoll_wait(ep, evs, CONNS_MAX, 10000);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        fprintf(stderr, "reqfloor: %s\n",
                                n == 0 ? "no answer in 10 s" : strerror(errno));
                        return 1;
                }
                for (int k = 0; k < n; k++) {
                        struct conn *c = evs[k].data.ptr;
                        ssize_t r = recv(c->fd, c->ans + c->got, ANSWER_MAX - c->got, MSG_DONTWAIT);
                        if (r < 0 && (errno == EAGAIN || errno == EINTR))
                                continue;
                        if (r <= 0 || !c->busy) {
                                fprintf(stderr, "reqfloor: connection %s\n",
                                        r == 0 ? "closed" : "error or unasked bytes");
                                return 1;
                        }
                        c->got += (size_t)r;
                        int a = answer_done(c);
                        if (a < 0) {
                                fprintf(stderr, "reqfloor: bad or failed answer: %.40s\n", c->ans);
                                return 1;
                        }
                        if (a == 0)
                                continue;
                        c->got = 0;
                        c->busy = 0;
                        done++;
                        if (sent < requests) {
                                set_key(c->key, (uint64_t)sent++);
                                if (send_all(c->fd, c->req, c->req_len) < 0) {
                                        perror("reqfloor: send");
                                        return 1;
                                }
                                c->busy = 1;
                        }
                }
        }
        double wall = now_s() - t0;
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        printf("requests=%lld wall_s=%.4f cpu_s=%.4f\n", done, wall, cpu);
        return 0;
}
