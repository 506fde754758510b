/* A growable byte buffer that carries its own ceiling.
 *
 * Every buffer that grows from input (a record, a batch, an HTTP answer) is a
 * struct buf: it refuses to grow past `cap` instead of eating the machine when
 * a file or a peer is hostile. The bytes are always followed by a NUL that is
 * not counted in `len`, so text can be handed to C string functions. */
#ifndef PMTATAIL_BUF_H
#define PMTATAIL_BUF_H

#include <stddef.h>
#include <string.h>

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

/* The slow paths of the inline functions below: they grow the buffer. */
int buf_append_grow(struct buf *b, const void *p, size_t n);
char *buf_reserve_grow(struct buf *b, size_t n);

/* True when n more bytes (and the NUL) fit in what is allocated, under the
 * cap. alloc > len whenever data is set, so the subtraction cannot wrap. */
static inline int buf_has_room(const struct buf *b, size_t n)
{
        return b->data && n < b->alloc - b->len && n <= b->cap - b->len;
}

/* Make room for n more bytes and return a pointer to them (the caller fills
 * them and then calls buf_commit), or NULL (errno as buf_append). Inline:
 * every field and event of a record goes through here. */
static inline char *buf_reserve(struct buf *b, size_t n)
{
        return buf_has_room(b, n) ? b->data + b->len : buf_reserve_grow(b, n);
}

static inline void buf_commit(struct buf *b, size_t n)
{
        b->len += n;
        b->data[b->len] = '\0';
}

/* Append n bytes. Returns 0, or -1 with errno E2BIG when the cap would be
 * passed (the buffer is left unchanged) or ENOMEM. */
static inline int buf_append(struct buf *b, const void *p, size_t n)
{
        if (n == 0 || !buf_has_room(b, n))
                return buf_append_grow(b, p, n);
        memcpy(b->data + b->len, p, n);
        buf_commit(b, n);
        return 0;
}

int buf_putc(struct buf *b, char c);
int buf_puts(struct buf *b, const char *s);

/* Forget the content, keep the allocation. */
void buf_reset(struct buf *b);

/* Drop the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);

/* Give back memory beyond `keep` bytes of allocation when the buffer is
 * empty, so that one huge record does not pin its peak size forever. */
void buf_shrink(struct buf *b, size_t keep);

/* One buffer kept for the next batch: a fresh large one is mmapped and
 * faulted in page by page. buf_to_spare empties b (shrunk to `keep`) into
 * *spare when that holds nothing, else frees it; b is left empty either
 * way. buf_from_spare gives b, just initialised, the spare's memory, b's
 * own cap kept. */
void buf_to_spare(struct buf *spare, struct buf *b, size_t keep);
void buf_from_spare(struct buf *b, struct buf *spare);

#endif
