/* An output on a thread of its own (push.h: push_thread).
 *
 * The caller's thread reads, parses and encodes; this one runs the output
 * (HTTP requests, answers, retries, the dead-letter file). Between them two
 * queues under one mutex, each with an eventfd to wake its reader:
 *   inbound   batches submitted, in submission order: copied, or (built
 *             in a buffer, push_submit_buf) the buffer itself, the caller
 *             given a spare one in exchange;
 *   acks      the batches the output acknowledged, in the order it did
 *             (which is submission order), handed to the caller's on_ack
 *             in the caller's thread, inside push_wait.
 * So the caller's bookkeeping (offsets, commits) stays single-threaded and
 * sees exactly what it saw without the thread: the same acknowledgements
 * in the same order, only later by a wake-up. The inner output is touched
 * by the worker alone until the thread is joined. */
#include "push_impl.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define SPARES      8          /* buffers kept for reuse: a fresh large one is mmapped */
#define SPARE_MAX   (4u << 20) /* and only up to this size */
#define RETRY_MS    100        /* a batch the output could not take (out of memory) */
#define STACK_BYTES (1u << 20)

struct tbatch {
        struct tbatch *next;
        struct tbatch *given_next; /* in the list of those the inner output holds */
        void *token;               /* the caller's */
        size_t nevents;
        char *data; /* the copy, until the inner output has taken it */
        size_t len, alloc;
};

struct thread_push {
        struct push base;
        struct push *inner;
        pthread_t thread;
        bool started;
        int in_fd, ack_fd; /* eventfds: work for the worker, acks for the caller */
        pthread_mutex_t lock;
        /* under the lock */
        struct tbatch *in_head, *in_tail;
        struct tbatch *ack_head, *ack_tail;
        char *spare[SPARES];
        size_t spare_alloc[SPARES];
        size_t nspare;
        struct push_stats shared; /* the inner output's, as of its last pass */
        bool stop;
        /* the worker's alone (then the closer's): batches the inner output
         * holds, in order, for freeing those it drops at close */
        struct tbatch *given_head, *given_tail;
        struct log_streak take_failing; /* the inner output refusing batches */
        /* the caller's alone */
        size_t inflight; /* events submitted and not yet acknowledged */
};

/* Append b to a queue (under the lock); true when it was empty, and its
 * reader must be woken. */
static bool enqueue(struct tbatch **head, struct tbatch **tail, struct tbatch *b)
{
        bool was_empty = *head == NULL;
        if (*tail)
                (*tail)->next = b;
        else
                *head = b;
        *tail = b;
        return was_empty;
}

static void wake(int fd)
{
        uint64_t one = 1;
        ssize_t w;
        do
                w = write(fd, &one, sizeof one);
        while (w < 0 && errno == EINTR);
}

static void drain(int fd)
{
        uint64_t v;
        while (read(fd, &v, sizeof v) < 0 && errno == EINTR)
                ;
}

/* A spare buffer of at least n bytes, or a new one; under the lock. */
static char *take_buffer(struct thread_push *t, size_t n, size_t *alloc)
{
        for (size_t i = t->nspare; i-- > 0;) {
                if (t->spare_alloc[i] >= n) {
                        char *p = t->spare[i];
                        *alloc = t->spare_alloc[i];
                        t->spare[i] = t->spare[--t->nspare];
                        t->spare_alloc[i] = t->spare_alloc[t->nspare];
                        return p;
                }
        }
        /* room for a slightly larger next batch */
        *alloc = n + n / 16 + 4096;
        return malloc(*alloc);
}

static void give_buffer(struct thread_push *t, char *p, size_t alloc)
{
        if (!p)
                return;
        if (t->nspare < SPARES && alloc <= SPARE_MAX) {
                t->spare[t->nspare] = p;
                t->spare_alloc[t->nspare++] = alloc;
        } else {
                free(p);
        }
}

/* --- the worker's side */

/* A buffer the inner output is done with (an acknowledged batch). */
static void worker_give_back(void *ctx, char *buf, size_t alloc)
{
        struct thread_push *t = ctx;
        pthread_mutex_lock(&t->lock);
        give_buffer(t, buf, alloc);
        pthread_mutex_unlock(&t->lock);
}

static void worker_ack(void *ctx, void *token)
{
        struct thread_push *t = ctx;
        struct tbatch *b = token;
        /* acknowledgements come in order: b is the oldest held */
        struct tbatch **pp = &t->given_head, *prev = NULL;
        while (*pp && *pp != b)
                prev = *pp, pp = &(*pp)->given_next;
        if (*pp) {
                *pp = b->given_next;
                if (t->given_tail == b)
                        t->given_tail = prev;
        }
        b->next = NULL;
        pthread_mutex_lock(&t->lock);
        bool was_empty = enqueue(&t->ack_head, &t->ack_tail, b);
        /* the counts as of this acknowledgement: a caller that has every
         * ack has every count (refused records are counted before theirs) */
        t->shared = t->inner->stats;
        pthread_mutex_unlock(&t->lock);
        if (was_empty)
                wake(t->ack_fd);
}

static void *worker(void *arg)
{
        struct thread_push *t = arg;
        struct tbatch *pending = NULL, *pending_tail = NULL; /* taken, not yet submitted */
        for (;;) {
                pthread_mutex_lock(&t->lock);
                bool stop = t->stop;
                if (t->in_head) {
                        if (pending_tail)
                                pending_tail->next = t->in_head;
                        else
                                pending = t->in_head;
                        pending_tail = t->in_tail;
                        t->in_head = t->in_tail = NULL;
                }
                pthread_mutex_unlock(&t->lock);
                if (stop)
                        break;
                while (pending) {
                        struct tbatch *b = pending;
                        struct tbatch *next = b->next;
                        /* the ack may come inside submit: b leaves the list first */
                        b->next = NULL;
                        /* and b is not touched after submit: once acked it
                         * is the caller's to free */
                        char *data = b->data;
                        size_t alloc = b->alloc;
                        b->data = NULL;
                        b->given_next = NULL;
                        if (t->given_tail)
                                t->given_tail->given_next = b;
                        else
                                t->given_head = b;
                        t->given_tail = b;
                        int r;
                        if (data && t->inner->ops->submit_owned) {
                                r = t->inner->ops->submit_owned(t->inner, data, alloc, b->len,
                                                                b->nevents, b);
                                if (r == 0)
                                        data = NULL; /* the inner output's now */
                        } else {
                                r = t->inner->ops->submit(t->inner, data ? data + 1 : "", b->len,
                                                          b->nevents, b);
                        }
                        if (r < 0) {
                                b->data = data;
                                b->next = next;
                                /* not held after all: off the list again */
                                struct tbatch **gp = &t->given_head, *gprev = NULL;
                                while (*gp != b)
                                        gprev = *gp, gp = &(*gp)->given_next;
                                *gp = NULL;
                                t->given_tail = gprev;
                                log_streak_fail(t->base.log, &t->take_failing, LOG_ERROR,
                                                "the output taking batches",
                                                "the output cannot take a batch now (out of "
                                                "memory), trying again retry_ms=%d",
                                                RETRY_MS);
                                break; /* nothing after it goes first */
                        }
                        if (t->take_failing.since_ms)
                                log_streak_ok(t->base.log, &t->take_failing);
                        /* copied by the inner output: the buffer goes back
                         * for the next batch */
                        if (data) {
                                pthread_mutex_lock(&t->lock);
                                give_buffer(t, data, alloc);
                                pthread_mutex_unlock(&t->lock);
                        }
                        pending = next;
                        if (!pending)
                                pending_tail = NULL;
                }
                struct pollfd pf = {.fd = t->in_fd, .events = POLLIN};
                t->inner->ops->wait(t->inner, &pf, 1, pending ? RETRY_MS : -1);
                if (pf.revents & POLLIN)
                        drain(t->in_fd);
                pthread_mutex_lock(&t->lock);
                t->shared = t->inner->stats;
                pthread_mutex_unlock(&t->lock);
        }
        while (pending) {
                struct tbatch *next = pending->next;
                free(pending->data);
                free(pending);
                pending = next;
        }
        return NULL;
}

/* --- the caller's side */

static int thread_submit(struct push *base, const char *lines, size_t len, size_t nevents,
                         void *token)
{
        struct thread_push *t = (struct thread_push *)base;
        struct tbatch *b = calloc(1, sizeof *b);
        if (!b)
                return -1;
        b->token = token;
        b->nevents = nevents;
        b->len = len;
        if (len > 0) {
                /* the events at data + 1, as submit_owned takes them */
                pthread_mutex_lock(&t->lock);
                b->data = take_buffer(t, len + 2, &b->alloc);
                pthread_mutex_unlock(&t->lock);
                if (!b->data) {
                        free(b);
                        return -1;
                }
                memcpy(b->data + 1, lines, len);
        }
        pthread_mutex_lock(&t->lock);
        bool was_empty = enqueue(&t->in_head, &t->in_tail, b);
        pthread_mutex_unlock(&t->lock);
        t->inflight += nevents;
        if (was_empty)
                wake(t->in_fd);
        return 0;
}

/* A batch built in the caller's buffer: the buffer itself goes to the
 * worker (its first byte is the room submit_owned wants), and the caller
 * gets a spare one back for its next batch. Without submit_owned inside,
 * or with no events, it is copied as any batch. */
static int thread_submit_buf(struct push *base, struct buf *lines, size_t nevents, void *token)
{
        struct thread_push *t = (struct thread_push *)base;
        if (push_buf_len(lines) == 0 || !t->inner->ops->submit_owned)
                return thread_submit(base, push_buf_events(lines), push_buf_len(lines), nevents,
                                     token);
        struct tbatch *b = calloc(1, sizeof *b);
        if (!b)
                return -1;
        b->token = token;
        b->nevents = nevents;
        /* a buf keeps a NUL after its bytes: alloc >= len + 2 as asked */
        b->data = lines->data;
        b->alloc = lines->alloc;
        b->len = push_buf_len(lines);
        pthread_mutex_lock(&t->lock);
        bool was_empty = enqueue(&t->in_head, &t->in_tail, b);
        char *spare = NULL;
        size_t spare_alloc = 0;
        if (t->nspare > 0) {
                spare = t->spare[--t->nspare];
                spare_alloc = t->spare_alloc[t->nspare];
        }
        pthread_mutex_unlock(&t->lock);
        lines->data = spare;
        lines->alloc = spare ? spare_alloc : 0;
        lines->len = 0;
        if (spare)
                spare[0] = '\0';
        t->inflight += nevents;
        if (was_empty)
                wake(t->in_fd);
        return 0;
}

/* Hand the acknowledgements that came to the caller's on_ack, in order. */
static void deliver_acks(struct thread_push *t)
{
        pthread_mutex_lock(&t->lock);
        struct tbatch *b = t->ack_head;
        t->ack_head = t->ack_tail = NULL;
        t->base.stats = t->shared;
        pthread_mutex_unlock(&t->lock);
        while (b) {
                struct tbatch *next = b->next;
                t->inflight -= b->nevents;
                void *token = b->token;
                free(b); /* its copy went back when the inner output took it */
                t->base.on_ack(t->base.ctx, token);
                b = next;
        }
}

static int thread_wait(struct push *base, struct pollfd *fds, unsigned nfds, int timeout_ms)
{
        struct thread_push *t = (struct thread_push *)base;
        struct pollfd pf[9];
        if (nfds > 8)
                nfds = 8;
        if (nfds > 0)
                memcpy(pf, fds, nfds * sizeof *fds);
        pf[nfds] = (struct pollfd){.fd = t->ack_fd, .events = POLLIN};
        int r = poll(pf, nfds + 1, timeout_ms);
        if (r < 0 && errno != EINTR)
                return -1;
        int n = 0;
        for (unsigned i = 0; i < nfds; i++) {
                fds[i].revents = r < 0 ? 0 : pf[i].revents;
                n += fds[i].revents != 0;
        }
        if (r > 0 && (pf[nfds].revents & POLLIN))
                drain(t->ack_fd);
        deliver_acks(t);
        return n;
}

static size_t thread_inflight(const struct push *base)
{
        return ((const struct thread_push *)base)->inflight;
}

static void thread_close(struct push *base)
{
        struct thread_push *t = (struct thread_push *)base;
        if (t->started) {
                pthread_mutex_lock(&t->lock);
                t->stop = true;
                pthread_mutex_unlock(&t->lock);
                wake(t->in_fd);
                pthread_join(t->thread, NULL);
        }
        /* the inner output drops what it still held, as without the thread */
        push_close(t->inner);
        for (struct tbatch *b = t->given_head, *next; b; b = next) {
                next = b->given_next;
                free(b->data);
                free(b);
        }
        for (struct tbatch *b = t->in_head, *next; b; b = next) {
                next = b->next;
                free(b->data);
                free(b);
        }
        for (struct tbatch *b = t->ack_head, *next; b; b = next) {
                next = b->next;
                free(b->data);
                free(b);
        }
        while (t->nspare)
                free(t->spare[--t->nspare]);
        close(t->in_fd);
        close(t->ack_fd);
        pthread_mutex_destroy(&t->lock);
        free(t);
}

static const struct push_ops thread_ops = {
    .submit = thread_submit,
    .submit_buf = thread_submit_buf,
    .wait = thread_wait,
    .inflight = thread_inflight,
    .close = thread_close,
};

int push_thread(struct push **p)
{
        struct push *inner = *p;
        struct thread_push *t = calloc(1, sizeof *t);
        if (!t)
                return -1;
        t->base.ops = &thread_ops;
        t->base.on_ack = inner->on_ack;
        t->base.ctx = inner->ctx;
        t->base.log = inner->log;
        t->base.stats = inner->stats;
        t->shared = inner->stats;
        t->inner = inner;
        t->in_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        t->ack_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        int e = 0;
        if (t->in_fd < 0 || t->ack_fd < 0 || (e = pthread_mutex_init(&t->lock, NULL)) != 0) {
                e = e ? e : errno;
                if (t->in_fd >= 0)
                        close(t->in_fd);
                if (t->ack_fd >= 0)
                        close(t->ack_fd);
                free(t);
                errno = e;
                return -1;
        }
        /* the inner output's acknowledgements now come to the worker */
        inner->on_ack = worker_ack;
        inner->ctx = t;
        inner->give_back = worker_give_back;
        inner->give_back_ctx = t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, STACK_BYTES);
        /* signals are the reading thread's (its signalfd): the worker
         * starts with every one blocked, whatever the caller's mask */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        e = pthread_create(&t->thread, &attr, worker, t);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
        if (e != 0) {
                inner->on_ack = t->base.on_ack;
                inner->ctx = t->base.ctx;
                inner->give_back = NULL;
                close(t->in_fd);
                close(t->ack_fd);
                pthread_mutex_destroy(&t->lock);
                free(t);
                errno = e;
                return -1;
        }
        t->started = true;
        *p = &t->base;
        return 0;
}
