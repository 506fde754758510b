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
        return p->ops->submit(p, push_buf_events(lines), push_buf_len(lines), nevents, token);
}

int push_buf_open(struct buf *lines, size_t cap, struct buf *spare)
{
        static const char room[PUSH_ROOM];
        buf_init(lines, cap);
        buf_from_spare(lines, spare);
        if (buf_append(lines, room, PUSH_ROOM) < 0) {
                buf_free(lines);
                return -1;
        }
        return 0;
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

unsigned push_window(const struct push *p)
{
        return p->stats.window;
}

void push_close(struct push *p)
{
        if (p)
                p->ops->close(p);
}
