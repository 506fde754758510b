/* A hash table from a pair of 64-bit keys (a content identity: hash and
 * length; a device and inode) to an index into the caller's array: what
 * makes replay's lookups by identity cost the same with 35,000 archives as
 * with 3. Open addressing, grown at half full, never more than `max`
 * entries (a bound the caller sets from its own array's cap). */
#ifndef PMTATAIL_PAIRMAP_H
#define PMTATAIL_PAIRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pairmap {
        struct pairmap_slot {
                uint64_t a, b;
                size_t v; /* the index + 1; 0: an empty slot */
        } * slots;
        size_t cap, n, max;
};

void pairmap_init(struct pairmap *m, size_t max);
void pairmap_free(struct pairmap *m);

/* Map (a, b) to v (replacing what it was). Returns 0, or -1 with errno
 * (ENOMEM, E2BIG past `max`). */
int pairmap_put(struct pairmap *m, uint64_t a, uint64_t b, size_t v);

/* Whether (a, b) is mapped; its index in *v. */
bool pairmap_get(const struct pairmap *m, uint64_t a, uint64_t b, size_t *v);

#endif
