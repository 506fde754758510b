#include "push_impl.h"

int push_submit(struct push *p, const char *lines, size_t len, size_t nevents, void *token)
{
        return p->ops->submit(p, lines, len, nevents, token);
}

int push_submit_buf(struct push *p, struct buf *lines, size_t nevents, void *token)
{
        if (p->ops->submit_buf)
                return p->ops->submit_buf(p, lines, nevents, token);
        /* the output copies: lines may be freed inside (a synchronous ack) */
        if (lines->len <= PUSH_ROOM)
                return p->ops->submit(p, "", 0, nevents, token);
        return p->ops->submit(p, lines->data + PUSH_ROOM, lines->len - PUSH_ROOM, nevents, token);
}

int push_wait(struct push *p, struct pollfd *fds, unsigned nfds, int timeout_ms)
{
        return p->ops->wait(p, fds, nfds, timeout_ms);
}

size_t push_inflight(const struct push *p)
{
        return p->ops->inflight(p);
}

void push_get_stats(const struct push *p, struct push_stats *out)
{
        *out = p->stats;
}

void push_close(struct push *p)
{
        if (p)
                p->ops->close(p);
}
