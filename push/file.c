/* The file output: NDJSON appended to a file, acknowledged once fsync'd. */
#include "push_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct file_push {
        struct push base;
        int fd;
        bool is_stdout;
        char *path;
        bool failing; /* log a failure streak once, and its end */
};

static int file_submit(struct push *base, const char *lines, size_t len, size_t nevents,
                       void *token);
static int take_back_partial_line(int fd, const char *path, const struct logger *log);
static int file_wait(struct push *base, struct pollfd *fds, unsigned nfds, int timeout_ms);
static size_t file_inflight(const struct push *base);
static void file_close(struct push *base);

static const struct push_ops file_ops = {
    .submit = file_submit,
    .wait = file_wait,
    .inflight = file_inflight,
    .close = file_close,
};

int push_open_file(struct push **out, const char *path, push_ack_fn on_ack, void *ctx,
                   const struct logger *log, char *err, size_t errlen)
{
        struct file_push *p = calloc(1, sizeof *p);
        if (!p || !(p->path = strdup(path))) {
                free(p);
                snprintf(err, errlen, "out of memory");
                return -1;
        }
        p->is_stdout = strcmp(path, "-") == 0;
        p->fd = p->is_stdout ? STDOUT_FILENO
                             : open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (p->fd < 0) {
                snprintf(err, errlen, "cannot open output file %s: %s", path, strerror(errno));
                free(p->path);
                free(p);
                return -1;
        }
        if (!p->is_stdout && take_back_partial_line(p->fd, path, log) < 0) {
                snprintf(err, errlen, "cannot check the end of output file %s: %s", path,
                         strerror(errno));
                close(p->fd);
                free(p->path);
                free(p);
                return -1;
        }
        p->base.ops = &file_ops;
        p->base.on_ack = on_ack;
        p->base.ctx = ctx;
        p->base.log = log;
        *out = &p->base;
        return 0;
}

/* A kill during a write can leave the start of an event after the last
 * newline. That batch was never acknowledged, so it is sent again: the
 * fragment is cut off here, or the next batch would be appended to it and
 * the file would hold a line that is not JSON. */
static int take_back_partial_line(int fd, const char *path, const struct logger *log)
{
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
                return 0;
        int rfd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (rfd < 0)
                return 0; /* write-only for us: appended to as it is */
        char tail[4096];
        off_t end = st.st_size, keep = 0;
        bool found = false;
        while (end > 0 && !found) {
                size_t n = end < (off_t)sizeof tail ? (size_t)end : sizeof tail;
                ssize_t r = pread(rfd, tail, n, end - (off_t)n);
                if (r != (ssize_t)n) {
                        int e = r < 0 ? errno : EIO;
                        close(rfd);
                        errno = e;
                        return -1;
                }
                for (size_t i = n; i > 0; i--) {
                        if (tail[i - 1] == '\n') {
                                keep = end - (off_t)n + (off_t)i;
                                found = true;
                                break;
                        }
                }
                end -= (off_t)n;
        }
        close(rfd);
        if (keep == st.st_size)
                return 0;
        if (ftruncate(fd, keep) < 0)
                return -1;
        log_warn(log,
                 "output file ended inside an event (an interrupted write): cut back file=%s "
                 "from=%lld to=%lld",
                 path, (long long)st.st_size, (long long)keep);
        return 0;
}

static int write_all(int fd, const char *s, size_t n)
{
        while (n > 0) {
                ssize_t w = write(fd, s, n);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -1;
                }
                s += w;
                n -= (size_t)w;
        }
        return 0;
}

static int file_submit(struct push *base, const char *lines, size_t len, size_t nevents,
                       void *token)
{
        struct file_push *p = (struct file_push *)base;
        if (len > 0) {
                struct stat st;
                off_t before = !p->is_stdout && fstat(p->fd, &st) == 0 ? st.st_size : -1;
                /* EINVAL from fdatasync: a pipe or a device such as
                 * /dev/null, which has nothing to make durable. */
                if (write_all(p->fd, lines, len) < 0 ||
                    (!p->is_stdout && fdatasync(p->fd) < 0 && errno != EINVAL)) {
                        int e = errno;
                        /* Take back a partial batch so the retry does not
                         * leave half an event in the file. */
                        if (before >= 0 && ftruncate(p->fd, before) < 0)
                                (void)0;
                        if (!p->failing)
                                log_error(p->base.log, "cannot write output file=%s error=\"%s\"",
                                          p->path, strerror(e));
                        p->failing = true;
                        snprintf(p->base.stats.last_error, sizeof p->base.stats.last_error,
                                 "cannot write %s: %s", p->path, strerror(e));
                        errno = e;
                        return -1;
                }
                if (p->failing)
                        log_info(p->base.log, "writing output again file=%s", p->path);
                p->failing = false;
        }
        p->base.stats.delivered += nevents;
        p->base.on_ack(p->base.ctx, token);
        return 0;
}

static int file_wait(struct push *base, struct pollfd *fds, unsigned nfds, int timeout_ms)
{
        (void)base;
        return poll(fds, nfds, timeout_ms);
}

static size_t file_inflight(const struct push *base)
{
        (void)base;
        return 0; /* every batch is acknowledged before push_submit returns */
}

static void file_close(struct push *base)
{
        struct file_push *p = (struct file_push *)base;
        if (!p->is_stdout && p->fd >= 0)
                close(p->fd);
        free(p->path);
        free(p);
}
