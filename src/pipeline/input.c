#include "input.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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
        /* O_NONBLOCK: opening a FIFO named by mistake must not wait for a
         * writer; then only a regular file is read (a FIFO or /dev/zero
         * would block or never end) */
        in->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (in->fd < 0)
                return -1;
        struct stat st;
        int e = fstat(in->fd, &st) < 0 ? errno : !S_ISREG(st.st_mode) ? ENOTREG_INPUT : 0;
        if (e) {
                close(in->fd);
                errno = e;
                return -1;
        }
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

const char *input_strerror(int err, const char *path)
{
        if (err == EILSEQ)
                return "named .gz but not gzip";
        if (err == ENOTREG_INPUT) {
                struct stat st;
                if (stat(path, &st) == 0)
                        return input_kind(st.st_mode);
                return "not a regular file";
        }
        return strerror(err);
}

const char *input_kind(unsigned mode)
{
        if (S_ISFIFO(mode))
                return "a FIFO, not a regular file";
        if (S_ISCHR(mode) || S_ISBLK(mode))
                return "a device, not a regular file";
        if (S_ISSOCK(mode))
                return "a socket, not a regular file";
        if (S_ISDIR(mode))
                return "a directory, not a regular file";
        return S_ISREG(mode) ? "a regular file" : "not a regular file";
}

ssize_t input_head(struct input *in, char *buf, size_t len)
{
        size_t got = 0;
        while (got < len) {
                ssize_t n = input_read(in, got, buf + got, len - got);
                if (n < 0)
                        return got ? (ssize_t)got : -1;
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        return (ssize_t)got;
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
