#include "buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t cap)
{
        b->data = NULL;
        b->len = 0;
        b->alloc = 0;
        b->cap = cap;
}

void buf_free(struct buf *b)
{
        free(b->data);
        b->data = NULL;
        b->len = 0;
        b->alloc = 0;
}

static int grow(struct buf *b, size_t n)
{
        if (n > b->cap || b->len > b->cap - n) {
                errno = E2BIG;
                return -1;
        }
        size_t need = b->len + n + 1;
        if (need <= b->alloc)
                return 0;
        size_t alloc = b->alloc ? b->alloc : 256;
        while (alloc < need)
                alloc = alloc > SIZE_MAX / 2 ? need : alloc * 2;
        /* Never allocate far past the cap (+1 for the NUL). */
        if (alloc > b->cap + 1)
                alloc = b->cap + 1;
        if (alloc < need)
                alloc = need;
        char *p = realloc(b->data, alloc);
        if (!p) {
                errno = ENOMEM;
                return -1;
        }
        b->data = p;
        b->alloc = alloc;
        return 0;
}

char *buf_reserve_grow(struct buf *b, size_t n)
{
        if (grow(b, n) < 0)
                return NULL;
        return b->data + b->len;
}

int buf_append_grow(struct buf *b, const void *p, size_t n)
{
        if (n == 0) {
                if (!b->data && grow(b, 0) < 0)
                        return -1;
                return 0;
        }
        char *dst = buf_reserve_grow(b, n);
        if (!dst)
                return -1;
        memcpy(dst, p, n);
        buf_commit(b, n);
        return 0;
}

int buf_putc(struct buf *b, char c)
{
        if (b->len + 2 <= b->alloc && b->len < b->cap) {
                b->data[b->len++] = c;
                b->data[b->len] = '\0';
                return 0;
        }
        return buf_append(b, &c, 1);
}

int buf_puts(struct buf *b, const char *s)
{
        return buf_append(b, s, strlen(s));
}

void buf_reset(struct buf *b)
{
        b->len = 0;
        if (b->data)
                b->data[0] = '\0';
}

void buf_consume(struct buf *b, size_t n)
{
        if (n >= b->len) {
                buf_reset(b);
                return;
        }
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
        b->data[b->len] = '\0';
}

void buf_to_spare(struct buf *spare, struct buf *b, size_t keep)
{
        buf_reset(b);
        buf_shrink(b, keep);
        if (spare->data || !b->data) {
                buf_free(b);
                return;
        }
        *spare = *b;
        buf_init(b, 0);
}

void buf_from_spare(struct buf *b, struct buf *spare)
{
        if (!spare->data)
                return;
        size_t cap = b->cap;
        buf_free(b);
        *b = *spare;
        b->cap = cap;
        buf_init(spare, 0);
}

void buf_shrink(struct buf *b, size_t keep)
{
        if (b->len == 0 && b->alloc > keep) {
                free(b->data);
                b->data = NULL;
                b->alloc = 0;
        }
}
