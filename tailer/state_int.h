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

#define TEMP_NAME         STATE_FILE_NAME ".tmp"
#define JOURNAL_NAME      STATE_JOURNAL_NAME
#define JOURNAL_TEMP_NAME STATE_JOURNAL_NAME ".tmp"
#define WHY_LEN           512
/* Keys of entries removed since the last save, remembered so the journal can
 * say so; past this many the next save rewrites the snapshot instead. */
#define REMOVED_MAX 1024
/* The journal is folded into a new snapshot once it outgrows the snapshot
 * (and this floor): the amortised cost of a save stays a small multiple of
 * what changed, and a start never replays more than about a snapshot. */
#define JOURNAL_FOLD_MIN (256 * 1024)
/* Offsets that only advanced are made durable (fdatasync) at most this late:
 * a kill -9 loses none of them (they are in the page cache), a power cut at
 * most this much, which can only resend, never lose. */
#define JOURNAL_SYNC_MS 1000

/* An entry as the table holds it: the caller's state_entry first (a
 * struct state_entry * is a struct entry_rec *), then what the store needs to
 * write only what changed. */
struct entry_rec {
        struct state_entry e;
        uint64_t key;         /* names the entry in the journal; sorted with the table */
        bool saved;           /* written to the snapshot or the journal */
        bool strings_changed; /* path or header set since it was written */
        struct {              /* the numbers as written */
                uint64_t dev, ino, fp, offset;
                uint32_t fp_len;
                bool finished;
                int64_t seen;
        } last;
};

static inline struct entry_rec *rec_of(const struct state_entry *e)
{
        return (struct entry_rec *)e;
}

struct state {
        char *dir;       /* as given, trailing slashes removed */
        char *file_path; /* dir/offsets.json, for messages */
        int dirfd;       /* every file is reached through it; -1 only read-only without a dir */
        int lockfd;      /* holds the flock; -1 when read-only */
        bool readonly;
        struct state_entry **entries; /* pointers, so entries never move */
        size_t n;
        size_t alloc;
        uint64_t next_key; /* above every entry's key */

        /* The store on disk: offsets.json, a snapshot of the whole table,
         * and offsets.journal, the saves since, one checksummed line each. */
        char *journal_path; /* dir/offsets.journal, for messages */
        bool snap_exists;   /* offsets.json was there when loaded or written */
        uint64_t snap_size; /* its size and hash: the journal names its base */
        uint64_t snap_hash;
        int jfd;        /* offsets.journal open for appending, -1 when none */
        uint64_t jsize; /* its length: every byte a complete, good line */
        uint64_t jhead; /* the length of its first line, naming the snapshot */
        bool need_fold; /* the next save writes a snapshot, not a line */
        bool unsynced;  /* lines written since the last fdatasync */
        int64_t last_sync_ms;
        uint64_t *removed; /* keys of saved entries removed since the last save */
        size_t nremoved;
};

/* ---- state.c ---- */

void state_err_reset(struct state_error *err);
/* Fill err (when not NULL) and set errno to errnum. */
__attribute__((format(printf, 4, 5))) void
state_fail(struct state_error *err, enum state_errkind kind, int errnum, const char *fmt, ...);
/* A zeroed entry with room for the store's bookkeeping, or NULL. */
struct state_entry *entry_alloc(void);
void entry_free(struct state_entry *e);
/* The journal must say that e is gone (a no-op for an entry never saved). */
void note_removed(struct state *s, struct state_entry *e);
/* The index of the entry with `key`, or where it would go (s->n at most). */
size_t table_find_key(const struct state *s, uint64_t key);
enum state_errkind entry_check(const struct state_entry *e, char *why, size_t size);
const struct state_entry *table_find_id(const struct state *s, uint64_t dev, uint64_t ino,
                                        const struct state_entry *except);
/* Take ownership of `e` into the table at its end (a new key when it has
 * none) or, with table_insert, at index i. Returns 0, or -1 when out of
 * memory (e is still the caller's). */
int table_append(struct state *s, struct state_entry *e);
int table_insert(struct state *s, size_t i, struct state_entry *e);
/* Free every entry; the table is empty after. */
void table_clear(struct state *s);

/* ---- state_json.c ---- */

/* Returns 1 when loaded, 0 when there is no offsets.json, -1 on an error. */
int state_load(struct state *s, struct state_error *err);

struct json_t;
/* One entry as JSON (with its header or not), or NULL when out of memory. */
struct json_t *entry_to_json(const struct state_entry *e, bool with_header);
/* An entry read from JSON and checked, or NULL (err says where: `file`
 * and `where`, e.g. "files[3]" or "line 7"). */
struct state_entry *entry_from_json_at(struct json_t *o, const char *file, const char *where,
                                       struct state_error *err);
/* The whole table as offsets.json's bytes in *b (a struct buf). Returns 0,
 * or -1 with err set. */
struct buf;
int snapshot_render(struct state *s, struct buf *b, struct state_error *err);
/* Read all of file `name` in the state directory into b (capped at `cap`
 * bytes). Returns 1 when read, 0 when there is no such file, -1 on an error
 * (too large: STATE_E_CORRUPT). */
int read_state_file(struct state *s, const char *name, const char *path, size_t cap, struct buf *b,
                    struct state_error *err);

/* ---- state_journal.c ---- */

/* The checksum of journal lines and of the snapshot a journal follows:
 * zlib's CRC-32, which any tool (Python's zlib.crc32) can check too. */
uint64_t state_crc(const void *p, size_t len);

/* Replay offsets.journal onto the loaded snapshot: the lines written after
 * it, up to the first one that is torn or fails its checksum (the tail of a
 * write a crash cut short: dropped, and noted in err->note). A journal
 * written on another snapshot is ignored (it was folded into this one).
 * Returns 0, or -1 on an error (a line that checks but cannot be applied is
 * STATE_E_CORRUPT). */
int journal_load(struct state *s, struct state_error *err);
/* Every entry as written: after a load or a snapshot. */
void journal_mark_all_saved(struct state *s);
/* fdatasync what was appended and not yet synced; close the journal. */
void journal_close(struct state *s);
/* Fold the journal into a new snapshot if nothing is pending (a clean stop
 * leaves one complete offsets.json). */
void journal_fold_if_clean(struct state *s);

#endif
