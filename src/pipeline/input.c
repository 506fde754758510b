#include "input.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

bool input_is_gz(const char *path)
{
        size_t n = strlen(path);
        return n > 3 && strcmp(path + n - 3, ".gz") == 0;
}

int input_open(struct input *in, const char *path)
{
        in->gz = NULL;
        in->gz_pos = 0;
        in->error[0] = '\0';
        in->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (in->fd < 0)
                return -1;
        if (input_is_gz(path)) {
                /* zlib reads a file that is not gzip as plain text: a .gz
                 * name promises gzip, so anything else is an error */
                unsigned char magic[2];
                if (pread(in->fd, magic, 2, 0) != 2 || magic[0] != 0x1f || magic[1] != 0x8b) {
                        close(in->fd);
                        errno = EILSEQ;
                        return -1;
                }
                int dfd = dup(in->fd);
                in->gz = dfd >= 0 ? gzdopen(dfd, "rb") : NULL;
                if (!in->gz) {
                        if (dfd >= 0)
                                close(dfd);
                        close(in->fd);
                        errno = ENOMEM;
                        return -1;
                }
                gzbuffer(in->gz, 128 * 1024);
        } else {
                posix_fadvise(in->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        }
        return 0;
}

void input_close(struct input *in)
{
        if (in->gz)
                gzclose(in->gz);
        if (in->fd >= 0)
                close(in->fd);
}

ssize_t input_read(struct input *in, uint64_t off, char *buf, size_t len)
{
        if (!in->gz) {
                ssize_t n;
                do
                        n = pread(in->fd, buf, len, (off_t)off);
                while (n < 0 && errno == EINTR);
                return n;
        }
        if (off != in->gz_pos) {
                /* the parser went back after a runaway quote, or resumes */
                if (gzseek(in->gz, (z_off_t)off, SEEK_SET) < 0) {
                        errno = EIO;
                        return -1;
                }
                in->gz_pos = off;
        }
        int n = gzread(in->gz, buf, (unsigned)len);
        int e = Z_OK;
        const char *m = n <= 0 ? gzerror(in->gz, &e) : NULL;
        /* a truncated stream ends like a good one unless gzerror is asked */
        if (n < 0 || (n == 0 && e != Z_OK)) {
                snprintf(in->error, sizeof in->error, "%s", m && *m ? m : "gzip error");
                errno = e == Z_ERRNO ? errno : EIO;
                return -1;
        }
        in->gz_pos += (uint64_t)n;
        return n;
}
