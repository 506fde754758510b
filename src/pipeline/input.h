/* Reading an accounting file whole, plain or gzip (by its .gz name), at any
 * offset of its uncompressed content: what `replay` and `report` feed the
 * parser from. The parser may ask to go back (after a runaway quote), so
 * reads take an offset rather than following a cursor. */
#ifndef PMTATAIL_INPUT_H
#define PMTATAIL_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <zlib.h>

struct input {
        int fd;
        gzFile gz;       /* NULL for a plain file */
        uint64_t gz_pos; /* uncompressed offset gzread is at */
        char error[128]; /* zlib's reason for a failed read */
};

/* Whether the name ends in ".gz" (the file is then read as gzip). */
bool input_is_gz(const char *path);

/* errno of input_open for a path that is not a regular file. */
#define ENOTREG_INPUT ENODEV

/* Open a file without blocking, and only a regular file. Returns 0, or -1
 * with errno set (EILSEQ: named .gz but not gzip; ENOTREG_INPUT: a FIFO, a
 * device, a socket; input_strerror says which). */
int input_open(struct input *in, const char *path);

/* What to say of input_open's errno for path. */
const char *input_strerror(int err, const char *path);

/* What a file of this st_mode is, for a refusal ("a FIFO, not a regular
 * file"). */
const char *input_kind(unsigned mode);

/* Read the first len bytes of the content (fewer at its end). Returns the
 * count, or -1 with errno when nothing could be read. Used before reading
 * the file through, at offset 0. */
ssize_t input_head(struct input *in, char *buf, size_t len);

/* Read up to len bytes at an offset of the (uncompressed) content. Returns
 * the count (0 at the end), or -1 with errno set and, for gzip, zlib's
 * reason in in->error. */
ssize_t input_read(struct input *in, uint64_t off, char *buf, size_t len);

void input_close(struct input *in);

#endif
