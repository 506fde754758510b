/* push/: delivering batches of events and saying when they are safe.
 *
 * The caller hands over batches of JSON events (each event followed by a
 * newline) with a token of its own; the output calls back with the token
 * once every event of the batch is acknowledged (fsync'd to a file, accepted
 * by the backend, or refused on its own and kept in the dead-letter file),
 * in the order the batches were submitted. A batch may hold no event at all:
 * it is then a marker acknowledged in its turn, which lets the caller
 * advance its offsets over records it filtered out.
 *
 * The output never sees a PowerMTA file or an offset: the token is opaque.
 * The caller's event loop waits through push_wait, which also waits on the
 * output's own sockets and does the output's work. */
#ifndef PMTATAIL_PUSH_H
#define PMTATAIL_PUSH_H

#include "buf.h"
#include "log.h"

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef void (*push_ack_fn)(void *ctx, void *token);

struct push;

/* An output that appends the events (NDJSON) to `path` ("-": standard
 * output) and acknowledges a batch once it is written and fsync'd. Returns
 * 0, or -1 with a reason in err. Free with push_close. */
int push_open_file(struct push **out, const char *path, push_ack_fn on_ack, void *ctx,
                   const struct logger *log, char *err, size_t errlen);

struct push_header {
        const char *name;
        const char *value; /* a secret: never logged */
};

struct push_http_opts {
        const char *url;
        bool single;                      /* one event per request, else a JSON array per batch */
        unsigned max_events;              /* at most this many events per array, 0: a whole batch */
        unsigned concurrency;             /* most requests in flight */
        bool fixed_concurrency;           /* always `concurrency` (adaptive = no) */
        unsigned max_rate;                /* events per second across all requests, 0: no limit */
        unsigned max_requests_per_minute; /* requests started in any 60 s, 0: no limit */
        /* Oempro's type=fluentd: a 2xx JSON answer must say "StatusCode": 250 */
        bool status_code_250;
        const struct push_header *headers;
        size_t nheaders;
        bool gzip;
        bool tls_verify;
        const char *ca_file; /* NULL: the system's */
        unsigned timeout_s;
        unsigned retry_max_s;    /* backoff ceiling */
        const char *dead_letter; /* path of the dead-letter file */
        const char *user_agent;
};

/* The HTTP output of the backend contract (see push/http.c). The options
 * and strings are copied. Returns 0, or -1 with a reason in err. */
int push_open_http(struct push **out, const struct push_http_opts *o, push_ack_fn on_ack, void *ctx,
                   const struct logger *log, char *err, size_t errlen);

/* Run the output *p on a thread of its own (push/thread.c): the caller's
 * thread keeps reading and encoding while this one sends. Submissions are
 * copied and queued; acknowledgements come to the same on_ack, in the same
 * order, in the caller's thread, from push_wait. The output's logger must
 * stand being written from that thread (no `around` hook). On success *p
 * is the threaded output (push_close closes both); on failure (-1, errno)
 * *p is left as it was. */
int push_thread(struct push **p);

/* Queue a batch: `nevents` events in `lines` (len bytes, each event ending
 * with '\n'). The output copies what it needs. Returns 0 when taken (on_ack
 * will come, maybe before this returns), or -1 when it cannot be taken now
 * (an I/O error, logged): nothing of it was delivered, submit it again
 * later. */
int push_submit(struct push *p, const char *lines, size_t len, size_t nevents, void *token);

/* The bytes a batch buffer keeps before its events, for the output's
 * framing (the '[' of a JSON array): see push_submit_buf. */
#define PUSH_ROOM 1

/* push_submit for a batch built in a buffer: its events are lines->data +
 * PUSH_ROOM to the end (an empty batch may have no data at all). The output
 * may take the memory instead of copying the events (the threaded one
 * does: one copy fewer between the threads); lines then holds memory the
 * output was done with, or none. On 0, lines is the caller's again (to
 * reset and reuse) unless on_ack came already and the caller freed it; on
 * -1 it is as it was. */
int push_submit_buf(struct push *p, struct buf *lines, size_t nevents, void *token);

/* A batch buffer for push_submit_buf: lines initialised with `cap`, given
 * the spare's memory (buf_from_spare) and the room. Returns 0, or -1 (out
 * of memory; lines is left empty). */
int push_buf_open(struct buf *lines, size_t cap, struct buf *spare);

/* The events' bytes in such a buffer, and where they start. */
static inline size_t push_buf_len(const struct buf *lines)
{
        return lines->len > PUSH_ROOM ? lines->len - PUSH_ROOM : 0;
}

static inline const char *push_buf_events(const struct buf *lines)
{
        return lines->len > PUSH_ROOM ? lines->data + PUSH_ROOM : "";
}

/* Wait like poll(2) on the caller's fds and the output's own, at most
 * timeout_ms (-1: no limit), then do the output's work (answers, retries
 * due, acknowledgements). Returns poll's count for the caller's fds, or -1
 * with errno. */
int push_wait(struct push *p, struct pollfd *fds, unsigned nfds, int timeout_ms);

/* Events submitted and not yet acknowledged. */
size_t push_inflight(const struct push *p);

struct push_stats {
        uint64_t delivered;  /* events acknowledged */
        uint64_t refused;    /* events kept in the dead-letter file */
        uint64_t requests;   /* requests sent (HTTP) */
        uint64_t retries;    /* requests tried again */
        uint64_t answers[6]; /* HTTP answers by class: [0] no answer, [1..5] 1xx..5xx */
        bool retrying;       /* a request is waiting to be tried again */
        bool credentials;    /* the last answer was 401, 403 or 407 refusing our credentials */
        /* Every recent answer is the same refusal (a wrong path, an HTTP URL
         * on an HTTPS port, a proxy's 407, a WAF): the endpoint is wrong and
         * the records are held, never dead-lettered. */
        bool endpoint_refusing;
        long endpoint_status; /* that refusal's HTTP status */
        /* Entries Oempro's batch API received and did not process
         * ("ErrorCount"): acknowledged, never resent, counted. */
        uint64_t unprocessed;
        unsigned window;      /* requests the output lets be in flight now */
        char last_error[256]; /* the last failure, "" if none */
};
void push_get_stats(const struct push *p, struct push_stats *out);

/* Requests the output lets be in flight now (its adaptive window, as of
 * its last pass), 0 when it has no such limit (a file). The reader holds
 * no more than that many requests' worth of events. */
unsigned push_window(const struct push *p);

void push_close(struct push *p);

/* The dead-letter file (refused events, one JSON object a line:
 * {"time","status","attempts","answer","event"}) opened for appending under an
 * exclusive lock, which `dead-letter resend` also takes before it renames
 * the file away; a symbolic link or a non-regular file is refused. With
 * `nonblock`, a lock held elsewhere fails at once (EWOULDBLOCK) instead of
 * waiting. Returns the fd (close it to unlock), or -1 with errno. */
int dead_letter_open(const char *path, bool nonblock);

#endif
