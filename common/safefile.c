#include "safefile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEMP_SUFFIX ".tmp"

static int write_all(int fd, const char *p, size_t n)
{
        while (n > 0) {
                ssize_t w = write(fd, p, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0)
                        return -1;
                if (w == 0) {
                        errno = EIO;
                        return -1;
                }
                p += w;
                n -= (size_t)w;
        }
        return 0;
}

int safefile_replace_at(int dirfd, const char *name, const void *data, size_t len, unsigned flags,
                        const char **step)
{
        const char *where = "create";
        char tmp[256];
        if (snprintf(tmp, sizeof tmp, "%s" TEMP_SUFFIX, name) >= (int)sizeof tmp) {
                errno = ENAMETOOLONG;
                goto fail;
        }
        /* A leftover is never opened: it may be a link to anywhere. */
        where = "remove";
        if (unlinkat(dirfd, tmp, 0) < 0 && errno != ENOENT)
                goto fail;
        where = "create";
        int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                goto fail;
        where = "write";
        if (write_all(fd, data, len) < 0)
                goto fail_fd;
        where = "fsync";
        if ((flags & SAFEFILE_DURABLE) && fsync(fd) < 0)
                goto fail_fd;
        where = "close";
        int c = close(fd);
        fd = -1;
        if (c < 0)
                goto fail_fd;
        where = "rename";
        if (renameat(dirfd, tmp, dirfd, name) < 0)
                goto fail_fd;
        where = "fsync directory";
        if ((flags & SAFEFILE_DURABLE) && fsync(dirfd) < 0)
                goto fail;
        return 0;
fail_fd : {
        int e = errno;
        if (fd >= 0)
                close(fd);
        unlinkat(dirfd, tmp, 0);
        errno = e;
}
fail:
        if (step)
                *step = where;
        return -1;
}

int safefile_replace(const char *path, const void *data, size_t len, unsigned flags,
                     const char **step)
{
        char dir[4096];
        const char *slash = strrchr(path, '/');
        const char *name = slash ? slash + 1 : path;
        if (slash) {
                size_t n = slash == path ? 1 : (size_t)(slash - path);
                if (n >= sizeof dir) {
                        errno = ENAMETOOLONG;
                        if (step)
                                *step = "create";
                        return -1;
                }
                memcpy(dir, path, n);
                dir[n] = '\0';
        } else {
                strcpy(dir, ".");
        }
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
                if (step)
                        *step = "open directory";
                return -1;
        }
        int rc = safefile_replace_at(dfd, name, data, len, flags, step);
        int e = errno;
        close(dfd);
        errno = e;
        return rc;
}

int safefile_open_lock(int dirfd, const char *name)
{
        return openat(dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
}

int safefile_check_dir(const char *dir, char *why, size_t why_size)
{
        struct stat st;
        if (stat(dir, &st) < 0) {
                if (errno == ENOENT)
                        return 1;
                snprintf(why, why_size, "cannot look at %s: %s", dir, strerror(errno));
                return -1;
        }
        uid_t me = geteuid();
        if (!S_ISDIR(st.st_mode)) {
                snprintf(why, why_size, "%s is not a directory", dir);
                return -1;
        }
        if (st.st_uid != me && st.st_uid != 0) {
                snprintf(why, why_size,
                         "%s is owned by uid %u, not by this user (uid %u) or root: another user "
                         "could replace our files there (chown it to uid %u)",
                         dir, (unsigned)st.st_uid, (unsigned)me, (unsigned)me);
                return -1;
        }
        if (st.st_mode & (S_IWGRP | S_IWOTH)) {
                snprintf(why, why_size,
                         "%s is writable by %s (mode %04o): they could plant files or links "
                         "there (chmod go-w %s)",
                         dir, (st.st_mode & S_IWOTH) ? "everyone" : "its group",
                         (unsigned)(st.st_mode & 07777), dir);
                return -1;
        }
        return 0;
}

bool safefile_exposed(const char *path, unsigned *mode)
{
        struct stat st;
        if (stat(path, &st) < 0)
                return false;
        if (mode)
                *mode = (unsigned)(st.st_mode & 07777);
        return (st.st_mode & (S_IRGRP | S_IROTH)) != 0;
}
