#include "pairmap.h"

#include <errno.h>
#include <stdlib.h>

static size_t slot_of(uint64_t a, uint64_t b, size_t cap)
{
        /* a is a hash or an inode number, b a length or a device: mixed so
         * that neither alone decides the slot */
        uint64_t h =
            a * 0x9E3779B97F4A7C15ULL ^ (b + 0x632BE59BD9B4E019ULL) * 0xC2B2AE3D27D4EB4FULL;
        h ^= h >> 29;
        return (size_t)(h & (cap - 1));
}

void pairmap_init(struct pairmap *m, size_t max)
{
        *m = (struct pairmap){.max = max};
}

void pairmap_free(struct pairmap *m)
{
        free(m->slots);
        *m = (struct pairmap){.max = m->max};
}

static struct pairmap_slot *find(const struct pairmap *m, uint64_t a, uint64_t b)
{
        size_t i = slot_of(a, b, m->cap);
        for (;;) {
                struct pairmap_slot *s = &m->slots[i];
                if (!s->v || (s->a == a && s->b == b))
                        return s;
                i = (i + 1) & (m->cap - 1);
        }
}

static int grow(struct pairmap *m)
{
        size_t cap = m->cap ? m->cap * 2 : 64;
        struct pairmap_slot *old = m->slots;
        size_t oldcap = m->cap;
        m->slots = calloc(cap, sizeof *m->slots);
        if (!m->slots) {
                m->slots = old;
                errno = ENOMEM;
                return -1;
        }
        m->cap = cap;
        for (size_t i = 0; i < oldcap; i++) {
                if (old[i].v)
                        *find(m, old[i].a, old[i].b) = old[i];
        }
        free(old);
        return 0;
}

int pairmap_put(struct pairmap *m, uint64_t a, uint64_t b, size_t v)
{
        if (m->n + 1 > m->cap / 2 && grow(m) < 0)
                return -1;
        struct pairmap_slot *s = find(m, a, b);
        if (!s->v) {
                if (m->n >= m->max) {
                        errno = E2BIG;
                        return -1;
                }
                m->n++;
        }
        *s = (struct pairmap_slot){a, b, v + 1};
        return 0;
}

bool pairmap_get(const struct pairmap *m, uint64_t a, uint64_t b, size_t *v)
{
        if (!m->cap)
                return false;
        const struct pairmap_slot *s = find(m, a, b);
        if (!s->v)
                return false;
        *v = s->v - 1;
        return true;
}
