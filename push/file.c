/* The file output: NDJSON appended to a file, acknowledged once fsync'd. */
#include "push.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct push {
        int fd;
        bool is_stdout;
        char *path;
        push_ack_fn on_ack;
        void *ctx;
        const struct logger *log;
        bool failing; /* log a failure streak once, and its end */
};

int push_open_file(struct push **out, const char *path, push_ack_fn on_ack, void *ctx,
                   const struct logger *log, char *err, size_t errlen)
{
        struct push *p = calloc(1, sizeof *p);
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
        p->on_ack = on_ack;
        p->ctx = ctx;
        p->log = log;
        *out = p;
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

int push_submit(struct push *p, const char *lines, size_t len, size_t nevents, void *token)
{
        (void)nevents;
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
                                log_error(p->log, "cannot write output file=%s error=\"%s\"",
                                          p->path, strerror(e));
                        p->failing = true;
                        errno = e;
                        return -1;
                }
                if (p->failing)
                        log_info(p->log, "writing output again file=%s", p->path);
                p->failing = false;
        }
        p->on_ack(p->ctx, token);
        return 0;
}

size_t push_inflight(const struct push *p)
{
        (void)p;
        return 0; /* every batch is acknowledged before push_submit returns */
}

void push_close(struct push *p)
{
        if (!p)
                return;
        if (!p->is_stdout && p->fd >= 0)
                close(p->fd);
        free(p->path);
        free(p);
}
