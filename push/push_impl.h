/* What every output implements behind push.h. Internal to push/. */
#ifndef PMTATAIL_PUSH_IMPL_H
#define PMTATAIL_PUSH_IMPL_H

#include "push.h"

struct push_ops {
        int (*submit)(struct push *p, const char *lines, size_t len, size_t nevents, void *token);
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
};

#endif
