/* The offsets store's insides, shared by its pieces; callers see state.h only.
 *
 * A struct state owns its entries (each one malloc'd, with its strings; the
 * pointers array `entries` may move, the entries never do), the directory
 * descriptor and the lock's descriptor, all released by state_close.
 *
 * Who does what:
 *   state.c      the in-memory table: entries, their bounds (entry_check),
 *                lookups, setters, pruning; the error helpers;
 *   state_json.c offsets.json: its JSON format, read and checked field by
 *                field (load), and written by an atomic replace (save);
 *   state_dir.c  the state directory: opened (and created), locked, a
 *                leftover temp file removed, an untrusted offsets.json moved
 *                aside; state_open and state_close.
 *
 * Nothing here is global. */
#ifndef PMTATAIL_STATE_INT_H
#define PMTATAIL_STATE_INT_H

#include "state.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TEMP_NAME STATE_FILE_NAME ".tmp"
#define WHY_LEN   512

struct state {
        char *dir;       /* as given, trailing slashes removed */
        char *file_path; /* dir/offsets.json, for messages */
        int dirfd;       /* every file is reached through it; -1 only read-only without a dir */
        int lockfd;      /* holds the flock; -1 when read-only */
        bool readonly;
        struct state_entry **entries; /* pointers, so entries never move */
        size_t n;
        size_t alloc;
};

/* ---- state.c ---- */

void state_err_reset(struct state_error *err);
/* Fill err (when not NULL) and set errno to errnum. */
__attribute__((format(printf, 4, 5))) void
state_fail(struct state_error *err, enum state_errkind kind, int errnum, const char *fmt, ...);
void entry_free(struct state_entry *e);
enum state_errkind entry_check(const struct state_entry *e, char *why, size_t size);
const struct state_entry *table_find_id(const struct state *s, uint64_t dev, uint64_t ino,
                                        const struct state_entry *except);
/* Take ownership of `e` into the table. Returns 0, or -1 when out of memory
 * (e is still the caller's). */
int table_append(struct state *s, struct state_entry *e);
/* Free every entry; the table is empty after. */
void table_clear(struct state *s);

/* ---- state_json.c ---- */

/* Returns 1 when loaded, 0 when there is no offsets.json, -1 on an error. */
int state_load(struct state *s, struct state_error *err);

#endif
