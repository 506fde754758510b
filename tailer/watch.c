#include "watch.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WATCH_ERR_LEN 512

struct watch_slot {
        int wd;     /* -1 when the slot is free */
        char *path; /* owned */
};

struct watch {
        int fd;
        size_t nslots; /* slots in use */
        struct watch_slot slots[WATCH_DIRS_MAX];
        char err[WATCH_ERR_LEN];
        /* Aligned for struct inotify_event, as inotify(7) asks: the walk
         * copies each header out anyway, so crafted buffers need not be. */
        _Alignas(struct inotify_event) char buf[WATCH_BUF_SIZE];
};

__attribute__((format(printf, 2, 3))) static void set_err(struct watch *w, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(w->err, sizeof(w->err), fmt, ap);
        va_end(ap);
}

/* The slot index of wd, or -1. */
static int slot_of(const struct watch *w, int wd)
{
        if (wd < 0)
                return -1;
        for (int i = 0; i < WATCH_DIRS_MAX; i++) {
                if (w->slots[i].wd == wd)
                        return i;
        }
        return -1;
}

static struct watch_slot *find_slot(struct watch *w, int wd)
{
        int i = slot_of(w, wd);

        return i < 0 ? NULL : &w->slots[i];
}

static void free_slot(struct watch *w, struct watch_slot *s)
{
        free(s->path);
        s->path = NULL;
        s->wd = -1;
        w->nslots--;
}

int watch_open(struct watch **out)
{
        struct watch *w = malloc(sizeof(*w));

        if (!w)
                return -1;
        w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (w->fd < 0) {
                int e = errno;
                free(w);
                errno = e;
                return -1;
        }
        w->nslots = 0;
        for (size_t i = 0; i < WATCH_DIRS_MAX; i++) {
                w->slots[i].wd = -1;
                w->slots[i].path = NULL;
        }
        w->err[0] = '\0';
        *out = w;
        return 0;
}

void watch_close(struct watch *w)
{
        if (!w)
                return;
        for (size_t i = 0; i < WATCH_DIRS_MAX; i++)
                free(w->slots[i].path);
        close(w->fd);
        free(w);
}

int watch_fd(const struct watch *w)
{
        return w->fd;
}

const char *watch_dir(const struct watch *w, int wd)
{
        int i = slot_of(w, wd);

        return i < 0 ? NULL : w->slots[i].path;
}

const char *watch_error(const struct watch *w)
{
        return w->err;
}

int watch_add_dir(struct watch *w, const char *dir, int *wd)
{
        struct watch_slot *s = NULL;
        char *copy;
        int id;

        w->err[0] = '\0';
        /* Check the table first: a watch the kernel holds but we could not
         * record would send events nobody can name. */
        if (w->nslots == WATCH_DIRS_MAX) {
                set_err(w, "cannot watch %s: already watching %d directories", dir, WATCH_DIRS_MAX);
                errno = ENOBUFS;
                return -1;
        }
        copy = strdup(dir);
        if (!copy) {
                set_err(w, "cannot watch %s: out of memory", dir);
                errno = ENOMEM;
                return -1;
        }
        id = inotify_add_watch(w->fd, dir, WATCH_DIR_MASK);
        if (id < 0) {
                int e = errno;
                if (e == ENOSPC)
                        set_err(w,
                                "cannot watch %s: the inotify watch limit is reached; raise "
                                "fs.inotify.max_user_watches (sysctl -w "
                                "fs.inotify.max_user_watches=N)",
                                dir);
                else
                        set_err(w, "cannot watch %s: %s", dir, strerror(e));
                free(copy);
                errno = e;
                return -1;
        }
        if (find_slot(w, id)) {
                /* The same directory again (the kernel hands back its wd). */
                free(copy);
                *wd = id;
                return 0;
        }
        for (size_t i = 0; i < WATCH_DIRS_MAX; i++) {
                if (w->slots[i].wd < 0) {
                        s = &w->slots[i];
                        break;
                }
        }
        /* nslots < WATCH_DIRS_MAX guarantees a free slot. */
        s->wd = id;
        s->path = copy;
        w->nslots++;
        *wd = id;
        return 0;
}

int watch_remove(struct watch *w, int wd)
{
        struct watch_slot *s = find_slot(w, wd);

        if (!s) {
                errno = EINVAL;
                return -1;
        }
        /* EINVAL here means the kernel already ended the watch (its
         * IN_IGNORED is still queued): nothing left to undo. */
        (void)inotify_rm_watch(w->fd, wd);
        free_slot(w, s);
        return 0;
}

int watch_walk_buffer(struct watch *w, const char *buf, size_t len, watch_event_fn on_event,
                      void *ctx)
{
        const size_t hdr = sizeof(struct inotify_event);
        size_t off = 0;
        int count = 0;

        while (off < len) {
                struct inotify_event ie;
                struct watch_event ev;
                const char *name;
                struct watch_slot *s;

                if (len - off < hdr) {
                        set_err(w, "inotify: truncated event header at byte %zu of %zu", off, len);
                        errno = EBADMSG;
                        return -1;
                }
                memcpy(&ie, buf + off, hdr);
                if (ie.len > len - off - hdr) {
                        set_err(w, "inotify: event name of %u bytes runs past the buffer", ie.len);
                        errno = EBADMSG;
                        return -1;
                }
                name = buf + off + hdr;
                /* The kernel pads names with at least one NUL. */
                if (ie.len > 0 && memchr(name, '\0', ie.len) == NULL) {
                        set_err(w, "inotify: event name not NUL-terminated");
                        errno = EBADMSG;
                        return -1;
                }
                off += hdr + ie.len;

                ev.mask = ie.mask;
                ev.cookie = ie.cookie;
                ev.name = ie.len > 0 ? name : "";
                if (ie.mask & IN_Q_OVERFLOW) {
                        ev.kind = WATCH_EVENT_OVERFLOW;
                        ev.wd = -1;
                        ev.dir = NULL;
                        on_event(ctx, &ev);
                        count++;
                        continue;
                }
                s = find_slot(w, ie.wd);
                if (!s)
                        continue; /* removed by the caller: its late events mean nothing */
                ev.kind = WATCH_EVENT_DIR;
                ev.wd = ie.wd;
                ev.dir = s->path;
                on_event(ctx, &ev);
                count++;
                if (ie.mask & IN_IGNORED) {
                        /* The kernel ended this watch. Look the slot up again:
                         * the callback may have removed it already. */
                        s = find_slot(w, ie.wd);
                        if (s)
                                free_slot(w, s);
                }
        }
        return count;
}

int watch_read(struct watch *w, watch_event_fn on_event, void *ctx)
{
        int total = 0;

        w->err[0] = '\0';
        for (;;) {
                ssize_t n = read(w->fd, w->buf, sizeof(w->buf));
                int r;

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                return total;
                        int e = errno;
                        set_err(w, "inotify: read: %s", strerror(e));
                        errno = e;
                        return -1;
                }
                if (n == 0)
                        return total; /* not expected from inotify; do not spin */
                r = watch_walk_buffer(w, w->buf, (size_t)n, on_event, ctx);
                if (r < 0)
                        return -1;
                total += r;
        }
}
