/* push/exchange: one event per request, at the cost of the request only.
 *
 * With one JSON object per request (Oempro's type=pmta), a libcurl transfer
 * costs about ten times the event it carries: the URL, the connection
 * cache, the header machinery, run again for a few hundred bytes. Here
 * libcurl only opens each connection (name resolution, TCP, TLS, its
 * timeouts: CURLOPT_CONNECT_ONLY) and, through TLS, carries the bytes
 * (curl_easy_send and curl_easy_recv; a plain connection's bytes go to its
 * socket, one send and one recv per request); the HTTP/1.1 exchange itself
 * is written and read here:
 * one request at a time on each of `n` kept-alive connections, never
 * pipelined (a dropped connection then costs only the one request it
 * carried), each answer read as a hostile peer may send it (status line,
 * header capped at 64 KiB, Content-Length, chunked, or to the close).
 *
 * Each connection has a multi handle of its own, so that libcurl's
 * connection cache never closes a connection of ours while another one is
 * opened. The owner (push/http.c) knows parts, retries and answers; this
 * module knows only connections and bytes. */
#ifndef PMTATAIL_EXCHANGE_H
#define PMTATAIL_EXCHANGE_H

#include "buf.h"

#include <curl/curl.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>

struct xchg;

struct xchg_result {
        CURLcode rc;          /* CURLE_OK: an answer was read */
        long status;          /* its HTTP status (0: none) */
        long retry_after_s;   /* its Retry-After, 0 if none */
        bool header_too_big;  /* the answer's header passed 64 KiB */
        const char *why;      /* rc != CURLE_OK: the reason, for the log */
        const char *location; /* the answer's Location, as sent (NULL: none) */
};

/* Called once per request started, when its answer is read or it failed.
 * The slot is free again when this is called. */
typedef void (*xchg_done_fn)(void *ctx, void *user, const struct xchg_result *r);

/* Take `n` easy handles, set up by the caller with the URL and the
 * connection's options (TLS, timeouts, error buffer left to us); `tls`:
 * the URL is https (libcurl then carries the bytes); `head` is
 * every request's header up to the Idempotency-Key's value (the request
 * line, Host, the fixed headers, "Idempotency-Key: "). Returns 0, or -1
 * (out of memory or of descriptors, errno says; the handles are then the
 * caller's). */
int xchg_open(struct xchg **out, CURL **easies, size_t n, bool tls, const char *head,
              size_t head_len, unsigned timeout_s, xchg_done_fn done, void *ctx);

/* A slot without a request, or -1. */
int xchg_free_slot(const struct xchg *x);

/* Send body (len bytes, kept by the caller until `done`) with the given
 * 32 hex digits as its Idempotency-Key; the answer's body (its start) goes
 * to `answer`. The connection is opened when it is not. Never calls `done`
 * itself. Returns 0, or -1 (out of memory, nothing started). */
int xchg_start(struct xchg *x, size_t slot, void *user, const char *body, size_t len,
               const char *idem, struct buf *answer);

/* The fds to poll, written to fds (at most max): one for the open
 * connections (an epoll set), and the sockets of those being opened; the
 * timeout lowered to the next deadline. Returns the count. */
unsigned xchg_pollfds(struct xchg *x, struct pollfd *fds, unsigned max, int *timeout_ms);

/* After poll: the I/O that is ready (fds as xchg_pollfds wrote them), the
 * deadlines passed. Answers read go to `done`. */
void xchg_work(struct xchg *x, const struct pollfd *fds, unsigned n);

/* The most fds xchg_pollfds may write. */
unsigned xchg_maxfds(const struct xchg *x);

void xchg_close(struct xchg *x);

#endif
