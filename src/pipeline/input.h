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

/* Open a file. Returns 0, or -1 with errno set (EILSEQ: named .gz but not
 * gzip). */
int input_open(struct input *in, const char *path);

/* Read up to len bytes at an offset of the (uncompressed) content. Returns
 * the count (0 at the end), or -1 with errno set and, for gzip, zlib's
 * reason in in->error. */
ssize_t input_read(struct input *in, uint64_t off, char *buf, size_t len);

void input_close(struct input *in);

#endif
