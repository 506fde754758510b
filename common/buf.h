/* A growable byte buffer that carries its own ceiling.
 *
 * Every buffer that grows from input (a record, a batch, an HTTP answer) is a
 * struct buf: it refuses to grow past `cap` instead of eating the machine when
 * a file or a peer is hostile. The bytes are always followed by a NUL that is
 * not counted in `len`, so text can be handed to C string functions. */
#ifndef PMTATAIL_BUF_H
#define PMTATAIL_BUF_H

#include <stddef.h>

struct buf {
        char *data;   /* NULL until the first append */
        size_t len;   /* bytes in use */
        size_t alloc; /* bytes allocated, NUL included */
        size_t cap;   /* the most `len` may ever reach */
};

/* Initialise an empty buffer that will never hold more than `cap` bytes.
 * Allocates nothing; must be torn down with buf_free. */
void buf_init(struct buf *b, size_t cap);
void buf_free(struct buf *b);

/* Append n bytes. Returns 0, or -1 with errno E2BIG when the cap would be
 * passed (the buffer is left unchanged) or ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_putc(struct buf *b, char c);
int buf_puts(struct buf *b, const char *s);

/* Make room for n more bytes and return a pointer to them (the caller fills
 * them and then calls buf_commit), or NULL (errno as buf_append). */
char *buf_reserve(struct buf *b, size_t n);
void buf_commit(struct buf *b, size_t n);

/* Forget the content, keep the allocation. */
void buf_reset(struct buf *b);

/* Drop the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);

/* Give back memory beyond `keep` bytes of allocation when the buffer is
 * empty, so that one huge record does not pin its peak size forever. */
void buf_shrink(struct buf *b, size_t keep);

#endif
