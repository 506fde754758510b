/* The tailer's durable offset store: STATE_DIR/offsets.json and
 * STATE_DIR/offsets.journal.
 *
 * An in-memory table of the files the tailer tracks. offsets.json is a
 * snapshot of the whole table, written by an atomic, durable replace (temp
 * file, fsync, rename, fsync of the directory); offsets.journal holds the
 * saves since, one checksummed line each with only the entries that changed,
 * so that a save costs what changed, not the history the table keeps (see
 * state_journal.c). The disk holds at every instant the table as of a whole
 * save, never a half-written one; the journal is folded into a new snapshot
 * when it outgrows the last one and at a clean close, and an offsets.json
 * without a journal (an older pmtatail's) is simply the table. `offset` is
 * the committed offset: every record
 * before it has been acknowledged by the output, so resuming there loses
 * nothing (records after it may be delivered twice: at-least-once).
 *
 * A file that cannot be trusted (empty, invalid JSON, wrong types, missing
 * fields, unknown version) is never silently replaced by an empty table:
 * state_open refuses it, naming the file and where it is wrong, and only the
 * explicit STATE_OPEN_RESET_CORRUPT moves it aside.
 *
 * One process per state directory: state_open takes an exclusive lock on
 * STATE_DIR/lock, held until state_close.
 *
 * Nothing here is global; nothing exits. Functions that can fail return -1
 * (or NULL) with errno set and, when `err` is not NULL, a human message that
 * names the path. */
#ifndef PMTATAIL_STATE_H
#define PMTATAIL_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define STATE_FILE_NAME    "offsets.json"
#define STATE_JOURNAL_NAME "offsets.journal"
#define STATE_LOCK_NAME    "lock"
#define STATE_VERSION      1
#define STATE_MAX_ENTRIES  4096
#define STATE_SOURCE_MAX   255                 /* bytes of `source`, NUL not counted */
#define STATE_PATH_MAX     4096                /* bytes of `path`, NUL not counted */
#define STATE_HEADER_MAX   (64 * 1024)         /* bytes of `header` */
#define STATE_FP_MAX       1024                /* the most bytes a fingerprint covers */
#define STATE_FILE_MAX     (256 * 1024 * 1024) /* offsets.json is refused beyond this */
#define STATE_ERROR_LEN    1024

/* One tracked file.
 *
 * Entries live in the table; a pointer returned by the functions below stays
 * valid until that entry is removed (state_remove, state_prune) or the table
 * closed. The strings belong to the table: never free or reassign them, use
 * the setters. The plain number fields offset, fp, fp_len, finished and seen
 * may be written directly (state_save checks them); dev and ino only through
 * state_set_id, which keeps identities unique. */
struct state_entry {
        char *source; /* the config's source name, NUL-terminated */
        char *path;   /* last known path, NUL-terminated */
        uint64_t dev; /* st_dev and st_ino: (dev, ino) is unique in a table */
        uint64_t ino;
        uint64_t fp;     /* hash of the first fp_len bytes of the file */
        uint32_t fp_len; /* 0..STATE_FP_MAX */
        uint64_t offset; /* committed: every record before it is acknowledged */
        bool finished;   /* rotated away, read to the end and acknowledged */
        /* The CSV header line, terminator excluded, or NULL when not known.
         * It may hold any bytes (even NUL): use header_len. A NUL follows
         * the bytes for convenience. */
        char *header;
        size_t header_len;
        int64_t seen; /* epoch seconds this file was last seen or updated */
        /* Not saved: pruning passes it over (the tailer keeps the newest
         * entry of each source, so a source whose files were all pruned is
         * still known, with the time it last recorded anything). */
        bool keep;
};

/* Flags for state_open. */
enum {
        /* Load only: take no lock, create and remove nothing, refuse
         * state_save. For `status` while the daemon runs. A missing
         * directory or file gives an empty table. */
        STATE_OPEN_READONLY = 1u << 0,
        /* When offsets.json cannot be trusted, rename it to
         * offsets.json.corrupt-<epoch> and start with an empty table
         * (noted in err). Every offset it held is forgotten: only on the
         * operator's explicit request. Not with READONLY. */
        STATE_OPEN_RESET_CORRUPT = 1u << 1,
};

/* What went wrong, for callers that act on the kind (the daemon tells the
 * operator what to do about STATE_E_CORRUPT and STATE_E_LOCKED). */
enum state_errkind {
        STATE_E_NONE = 0,
        STATE_E_IO,      /* a system call failed (errnum says which error) */
        STATE_E_LOCKED,  /* another process holds the state directory */
        STATE_E_CORRUPT, /* offsets.json cannot be trusted */
        STATE_E_LIMIT,   /* a bound was passed: entries, a string, the file size */
        STATE_E_INVALID, /* a bad argument: a duplicate identity, an out-of-range
                            field, a save on a read-only table */
        STATE_E_NOMEM,
};

/* Things state_open did that the operator should hear about, even when it
 * succeeds (log them as warnings). */
enum {
        STATE_NOTE_TEMP_REMOVED = 1u << 0,  /* a leftover offsets.json.tmp was removed */
        STATE_NOTE_RESET_CORRUPT = 1u << 1, /* a corrupt offsets.json was moved aside */
        STATE_NOTE_JOURNAL_TAIL = 1u << 2,  /* a save a crash cut short was dropped */
};

struct state_error {
        enum state_errkind kind;    /* STATE_E_NONE after a success */
        int errnum;                 /* the errno value of the failure, 0 after a success */
        char msg[STATE_ERROR_LEN];  /* one line naming the path, "" after a success */
        unsigned notes;             /* STATE_NOTE_*, set by state_open only */
        char note[STATE_ERROR_LEN]; /* the notes as text, "" when none */
};

struct state;

/* Open the state in directory `dir`: create it (mode 0700) if missing, take
 * the lock, remove a temp file left by an interrupted save (noted in err)
 * and load offsets.json. A missing offsets.json gives an empty table; an
 * untrustworthy one fails with STATE_E_CORRUPT unless
 * STATE_OPEN_RESET_CORRUPT. `flags` is a mix of STATE_OPEN_*.
 * Returns 0 and a table in *out that must be torn down with state_close, or
 * -1 (and *out NULL). `err` is always reset first. */
int state_open(struct state **out, const char *dir, unsigned flags, struct state_error *err);

/* Release the lock and every entry. Unsaved changes are lost. NULL is fine. */
void state_close(struct state *s);

/* The path of offsets.json, for messages. Valid until state_close. */
const char *state_file_path(const struct state *s);

/* Save what changed since the last save: a line appended to the journal (or,
 * now and then, a new snapshot). On failure returns -1 and what is on disk is
 * the last save (the message says so), except when only the final fsync of
 * a snapshot's directory failed: it is then in place but may not survive a
 * power loss. A kill -9 after a success loses nothing; a power cut may lose
 * saves that only advanced offsets within the last JOURNAL_SYNC_MS (1 s),
 * which resends, never loses. Refused on a read-only table and when an entry
 * holds an out-of-range field. */
int state_save(struct state *s, struct state_error *err);

/* Number of entries, and the i-th one (i < state_count), in insertion order.
 * Removing an entry shifts the later ones down by one. */
size_t state_count(const struct state *s);
struct state_entry *state_at(struct state *s, size_t i);

/* The entry for (dev, ino), or NULL. */
struct state_entry *state_find_id(struct state *s, uint64_t dev, uint64_t ino);

/* The first entry after `after` (NULL: from the start) whose path is `path`,
 * or NULL. Several entries may share a path (a file and its rotated-away
 * predecessor that was last seen there): loop passing the previous result. */
struct state_entry *state_find_path(struct state *s, const char *path,
                                    const struct state_entry *after);

/* Add an entry, copying `tmpl` and its strings (borrowed: the caller keeps
 * them). Returns the stored entry, or NULL: STATE_E_LIMIT past
 * STATE_MAX_ENTRIES entries or a string bound, STATE_E_INVALID when (dev, ino)
 * is already in the table (errno EEXIST) or a field is out of range. */
struct state_entry *state_add(struct state *s, const struct state_entry *tmpl,
                              struct state_error *err);

/* Change an entry's identity (the same file seen under a new device number,
 * or an entry reused). Fails with EEXIST if another entry has it. */
int state_set_id(struct state *s, struct state_entry *e, uint64_t dev, uint64_t ino,
                 struct state_error *err);

/* Replace an entry's path / header with a copy of the argument. A NULL
 * header makes it unknown. On failure the entry is unchanged. */
int state_set_path(struct state *s, struct state_entry *e, const char *path,
                   struct state_error *err);
int state_set_header(struct state *s, struct state_entry *e, const char *header, size_t len,
                     struct state_error *err);

/* The file was rotated away and everything up to `offset` (its end) is
 * acknowledged: set offset, finished and seen. */
void state_mark_finished(struct state_entry *e, uint64_t offset, time_t now);

/* Drop `e` and free its strings; `e` is invalid afterwards. */
void state_remove(struct state *s, struct state_entry *e);

/* Drop finished entries that are no longer needed: those whose file is gone
 * (`still_exists` returns false; NULL skips this rule) and those not seen for
 * more than `retention_s` seconds before `now` (a negative retention_s skips
 * this rule). Unfinished entries are never dropped here: they may still hold
 * records to deliver; the tailer removes them itself. Returns how many
 * entries were dropped. */
size_t state_prune(struct state *s, time_t now, time_t retention_s,
                   bool (*still_exists)(const struct state_entry *e, void *ctx), void *ctx);

/* Make room: drop finished entries, those seen longest ago first, until at
 * most `target` entries remain or no finished entry is left. Unfinished
 * entries (records still owed) are never dropped. Returns how many were
 * dropped. */
size_t state_prune_oldest(struct state *s, size_t target);

#endif
