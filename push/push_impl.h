/* What every output implements behind push.h. Internal to push/. */
#ifndef PMTATAIL_PUSH_IMPL_H
#define PMTATAIL_PUSH_IMPL_H

#include "push.h"

struct push_ops {
        int (*submit)(struct push *p, const char *lines, size_t len, size_t nevents, void *token);
        /* Optional: the same, the events in buf + 1 (len bytes; alloc >= len
         * + 2, buf[0] the output's), and the buffer becomes the output's,
         * which hands it to give_back once done with it (or frees it). On
         * -1 the buffer is still the caller's. One copy fewer between
         * threads. */
        int (*submit_owned)(struct push *p, char *buf, size_t alloc, size_t len, size_t nevents,
                            void *token);
        /* Optional: push_submit_buf (without it, submit copies). */
        int (*submit_buf)(struct push *p, struct buf *lines, size_t nevents, void *token);
        int (*wait)(struct push *p, struct pollfd *fds, unsigned nfds, int timeout_ms);
        size_t (*inflight)(const struct push *p);
        void (*close)(struct push *p);
};

/* The common head of every output. */
struct push {
        const struct push_ops *ops;
        push_ack_fn on_ack;
        void *ctx;
        const struct logger *log;
        struct push_stats stats;
        /* where buffers given with submit_owned go back (NULL: freed) */
        void (*give_back)(void *ctx, char *buf, size_t alloc);
        void *give_back_ctx;
};

#endif
