#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

/* Read up to `want` bytes from the start of fd into buf, stopping early only
 * at end of file. Returns the count, or -1 with errno. */
static ssize_t read_head(int fd, char *buf, size_t want)
{
        size_t got = 0;

        while (got < want) {
                ssize_t n = pread(fd, buf + got, want - got, (off_t)got);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -1;
                }
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        return (ssize_t)got;
}

/* fstat fd and read its first min(size, IDENTITY_FP_MAX) bytes. The count
 * read may be below the size seen if the file shrank in between. */
static ssize_t stat_and_head(int fd, struct stat *st, char *buf)
{
        size_t want;

        if (fstat(fd, st) < 0)
                return -1;
        if (st->st_size <= 0)
                want = 0;
        else if (st->st_size > IDENTITY_FP_MAX)
                want = IDENTITY_FP_MAX;
        else
                want = (size_t)st->st_size;
        return read_head(fd, buf, want);
}

static uint64_t hash(const char *p, size_t n)
{
        return (uint64_t)XXH3_64bits(p, n);
}

/* Whether the first len bytes of head are those fingerprinted as fp. No
 * bytes (len 0) always are, whatever fp holds: an identity known by its
 * inode alone ({dev, ino, 0, 0}) is written with fp 0, not the hash of
 * nothing. */
static int prefix_is(const char *head, size_t len, uint64_t fp)
{
        return len == 0 || hash(head, len) == fp;
}

/* Whether a fingerprint of the first `len` bytes of `p` reaches past the
 * first line. */
static int strong(const char *p, size_t len)
{
        const char *nl = memchr(p, '\n', len);

        return nl != NULL && len > (size_t)(nl - p) + 1;
}

int identity_of_fd(int fd, struct file_id *out)
{
        long line_end;
        return identity_of_fd_line(fd, out, &line_end);
}

int identity_of_fd_line(int fd, struct file_id *out, long *line_end)
{
        char head[IDENTITY_FP_MAX];
        struct stat st;
        ssize_t n = stat_and_head(fd, &st, head);

        if (n < 0)
                return -1;
        out->dev = (uint64_t)st.st_dev;
        out->ino = (uint64_t)st.st_ino;
        out->fp_len = (uint32_t)n;
        out->fp = hash(head, (size_t)n);
        const char *nl = memchr(head, '\n', (size_t)n);
        *line_end = nl ? (long)(nl - head) : -1;
        return 0;
}

int identity_strong_at(long line_end, uint32_t len)
{
        return line_end >= 0 && (uint64_t)len > (uint64_t)line_end + 1;
}

int identity_of_path(const char *path, struct file_id *out)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        int r, e;

        if (fd < 0)
                return -1;
        r = identity_of_fd(fd, out);
        e = errno;
        close(fd);
        errno = e;
        return r;
}

enum identity_match identity_compare(const struct file_id *saved, int fd)
{
        char head[IDENTITY_FP_MAX];
        struct stat st;
        ssize_t n;
        size_t len;
        int same_inode, content_matches;

        if (saved->fp_len > IDENTITY_FP_MAX) {
                errno = EINVAL;
                return IDENTITY_ERROR;
        }
        n = stat_and_head(fd, &st, head);
        if (n < 0)
                return IDENTITY_ERROR;
        len = saved->fp_len;
        same_inode = (uint64_t)st.st_dev == saved->dev && (uint64_t)st.st_ino == saved->ino;
        /* Too short to hold the fingerprinted bytes: never the same content. */
        if ((size_t)n < len)
                return same_inode ? IDENTITY_TRUNCATED : IDENTITY_DIFFERENT;
        content_matches = prefix_is(head, len, saved->fp);
        if (same_inode)
                return content_matches ? IDENTITY_SAME : IDENTITY_INODE_REUSED;
        if (content_matches && strong(head, len))
                return IDENTITY_COPIED;
        return IDENTITY_DIFFERENT;
}

const char *identity_match_name(enum identity_match m)
{
        switch (m) {
        case IDENTITY_ERROR:
                return "error";
        case IDENTITY_DIFFERENT:
                return "different";
        case IDENTITY_SAME:
                return "same";
        case IDENTITY_TRUNCATED:
                return "truncated";
        case IDENTITY_INODE_REUSED:
                return "inode-reused";
        case IDENTITY_COPIED:
                return "copied";
        }
        return "unknown";
}

int identity_extend(struct file_id *id, int fd)
{
        char head[IDENTITY_FP_MAX];
        struct stat st;
        ssize_t n;

        if (id->fp_len >= IDENTITY_FP_MAX)
                return 0;
        n = stat_and_head(fd, &st, head);
        if (n < 0)
                return -1;
        if ((uint64_t)st.st_dev != id->dev || (uint64_t)st.st_ino != id->ino)
                return 0;
        if ((size_t)n <= id->fp_len)
                return 0;
        /* Grow only a fingerprint whose bytes are still there: extending over
         * rewritten content would hide the rewrite from identity_compare. */
        if (!prefix_is(head, id->fp_len, id->fp))
                return 0;
        id->fp_len = (uint32_t)n;
        id->fp = hash(head, (size_t)n);
        return 1;
}
