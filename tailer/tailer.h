/* The tailer: which files to read, in which order, from which offset.
 *
 * For each source (a PowerMTA accounting file such as bounces.csv and its
 * move-to directory) the tailer keeps a queue of files in the order their
 * records were written: files rotated away but not yet read to the end come
 * first, the live file last. The caller reads the head of the queue with
 * tailer_read at offsets of its choosing, and tells the tailer which offsets
 * the output has acknowledged; the tailer never sees a record or a request.
 *
 * A file renamed away (rotation) keeps being read through its open
 * descriptor to its end, and the next file is read only after it, so the new
 * file's records never overtake the old file's tail. A rotated file is
 * released only when it has been read to its end and every record of it is
 * acknowledged; then its state entry is marked finished.
 *
 * Offsets are durable in STATE_DIR/offsets.json (tailer/state.h); a file is
 * known by its content (a fingerprint of its first bytes, tailer/identity.h,
 * or the bytes of a file still open), device and inode being a hint, so a
 * file rotated while the daemon was down is found again in its archive
 * directory and resumed where the acknowledged records end, and a reused
 * inode is not mistaken for the file that had it.
 *
 * Which known file is which file on disk is decided by one function for the
 * start and every later look (tailer/reconcile.h); the rules that tell a
 * candidate are tailer/match.h's; files owed but unreadable for now
 * (permissions, descriptors, I/O errors) are tailer/owed.h's: they stay
 * queued and tracked, passed over until they open, never dropped. A queued
 * file holds no descriptor until it is read: only the file being read, the
 * live file and renamed files still being finished are open.
 *
 * Everything is driven by inotify (tailer_fd) and by the caller's reads: no
 * polling. tailer_deadline says when the tailer wants to be called back
 * without an event (a rotated file waiting for its writer to move on).
 *
 * Not thread-safe. No global state; nothing here exits. */
#ifndef PMTATAIL_TAILER_H
#define PMTATAIL_TAILER_H

#include "log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* How long a rotated file that is read to its end waits for more bytes from
 * a writer that may still hold it open, when no newer file shows that the
 * writer moved on. */
#define TAILER_ROTATE_GRACE_S 30
/* Once a newer file holds bytes (the writer moved on), a rotated file is
 * final after this long without growing. */
#define TAILER_QUIET_S 2
/* Finished entries are kept this long (to recognise archived files already
 * read) before they are pruned from the state. */
#define TAILER_RETENTION_S (14 * 24 * 3600)

struct tailer_source_cfg {
        const char *name;        /* the [source NAME] */
        const char *path;        /* the live file */
        const char *archive_dir; /* its move-to directory, or NULL */
        bool start_at_end;       /* a live file never seen: read from its end */
};

struct tailer;
/* A file being read: valid from tailer_head until its last acknowledgement
 * after tailer_file_drained (the tailer then frees it). */
struct tfile;

/* Open the state directory (taking its lock), find every tracked file again
 * (at its path, the live path or in the archive directory), queue the files
 * to read, and arm the watches. state_flags are STATE_OPEN_* flags.
 * Returns 0, or -1 with a one-line reason in err. Must be closed with
 * tailer_close. */
int tailer_open(struct tailer **out, const struct tailer_source_cfg *src, size_t nsrc,
                const char *state_dir, unsigned state_flags, const struct logger *log, char *err,
                size_t errlen);

/* Save the offsets (when anything changed), then release everything. */
void tailer_close(struct tailer *t);

/* The inotify descriptor to poll for POLLIN. */
int tailer_fd(const struct tailer *t);

/* Read the pending inotify events and update the queues (new live file,
 * rotation, deletion, truncation, queue overflow: re-check everything).
 * Returns 0, or -1 on a failure of the watch descriptor (logged). */
int tailer_handle_events(struct tailer *t);

/* Re-check every source against the file system as after an overflow: the
 * path of each live file, the descriptors of the files being read. */
void tailer_rescan(struct tailer *t);

/* Milliseconds until the tailer wants tailer_tick, or -1 when it does not. */
int tailer_deadline_ms(const struct tailer *t);
void tailer_tick(struct tailer *t);

size_t tailer_nsources(const struct tailer *t);

/* The file of source `src` to read first, or NULL when there is none. */
struct tfile *tailer_head(struct tailer *t, size_t src);

/* The file of the same source to read after f (f is at its end and
 * superseded), or NULL. */
struct tfile *tailer_next(struct tfile *f);

/* Every file queued for source `src`, in order, readable or not, none
 * opened for it: for the caller's cleanup of what it keeps per file. */
struct tfile *tailer_queue_first(struct tailer *t, size_t src);
struct tfile *tailer_queue_next(struct tfile *f);

/* Read up to len bytes at off from f. Returns the count, 0 at its current
 * end, or -1 with errno. A read that finds the file shorter than the offset
 * the caller reached is a truncation: see tailer_file_truncated. */
ssize_t tailer_read(struct tfile *f, uint64_t off, void *buf, size_t len);

/* Where reading f starts: the committed offset (0 for a new file, its end
 * for a new file with start_at = end). */
uint64_t tailer_file_start(const struct tfile *f);

/* The header line saved with f's offset (NULL, 0 when unknown): lets a
 * parser resume mid-file without reading the file's first line again. */
const char *tailer_file_header(const struct tfile *f, size_t *len);
/* Remember f's header line (saved with the offsets) now. */
void tailer_file_set_header(struct tfile *f, const char *header, size_t len);

/* The header travels with the offset: the caller tells which header line
 * (by its parser's generation number, never 0) is in force at each offset it
 * hands to tailer_ack_header, and the header of the acknowledged offset is
 * the one saved, not a later one read meanwhile. Declare a header here
 * before the first acknowledgement that names its generation (the bytes are
 * copied). A file keeps a few pending headers; the oldest go first. */
void tailer_file_header_seen(struct tfile *f, uint64_t hgen, const char *header, size_t len);

/* True when f is no longer the live file and a newer file of its source
 * holds bytes: the writer moved on, so at f's end the caller may go on to
 * tailer_next(f). f stays open: a writer that still appends to its old
 * descriptor is read until f is final. */
bool tailer_file_superseded(const struct tfile *f);

/* True when f was rotated away and has been quiet long enough (see
 * TAILER_QUIET_S, TAILER_ROTATE_GRACE_S): when the caller's reads reach its
 * end, that end is final; the caller finishes its parsing and calls
 * tailer_file_drained. */
bool tailer_file_final(const struct tfile *f);

/* True when f shrank below `offset` (truncated in place). The caller drops
 * what it parsed and starts again from tailer_file_start (now 0). */
bool tailer_file_truncated(struct tfile *f, uint64_t offset);

/* True while a truncation or rewrite of f is seen but not yet settled (the
 * copy a copy-and-truncate made could not be looked for: no descriptor
 * left). tailer_read refuses f meanwhile; the caller asks
 * tailer_file_truncated again before each read, and the tailer's deadline
 * says when the look is tried again. */
bool tailer_file_undecided(const struct tfile *f);

/* The caller read f to its final end `end`: f is no longer handed out. It
 * stays valid until its acknowledgements reach `end`. */
void tailer_file_drained(struct tfile *f, uint64_t end);

/* f's generation: it changes when f is truncated and read again from 0, so
 * that acknowledgements of records read before are recognised as stale. */
uint32_t tailer_file_gen(const struct tfile *f);

/* Everything in f before `offset` (read in generation `gen`) is
 * acknowledged by the output, or was filtered or rejected: the committed
 * offset may move there. A lower offset or an old generation is ignored.
 * May free f (drained and now fully acknowledged). */
void tailer_ack(struct tfile *f, uint32_t gen, uint64_t offset);
/* The same, with the generation of the header in force at `offset` (0:
 * unknown, the saved header stays). */
void tailer_ack_header(struct tfile *f, uint32_t gen, uint64_t offset, uint64_t hgen);

/* Keep f alive while the caller holds a reference to it (an
 * acknowledgement still to come): a finished file is freed only when the
 * last hold is released. Every tailer_ack on f must come before the release
 * of the hold taken for it. */
void tailer_file_hold(struct tfile *f);
void tailer_file_release(struct tfile *f);

/* The caller's pointer for f (its parser), NULL at first. */
void *tailer_file_user(const struct tfile *f);
void tailer_file_set_user(struct tfile *f, void *user);

const char *tailer_file_path(const struct tfile *f);
const char *tailer_file_source(const struct tfile *f);

/* Save the offsets now if anything changed since the last save. Returns 0,
 * or -1 (logged; the previous offsets.json is intact). */
int tailer_commit(struct tailer *t);

/* True (once) when a file was queued before files already being read (the
 * copy of a file truncated in place): the caller starts its reading pass
 * again from tailer_head. */
bool tailer_take_requeued(struct tailer *t);

struct tailer_source_info {
        const char *name;
        const char *reading;   /* path of the file read first, NULL when none */
        uint64_t committed;    /* its committed offset */
        uint64_t size;         /* its size now */
        uint64_t bytes_behind; /* over every file of the source not yet acknowledged */
        size_t files;          /* files queued (rotated ones not yet done, the live one) */
        /* Files owed that cannot be opened or read now (kept queued, tried
         * again): how many, the first one and why ("Permission denied",
         * "out of file descriptors", "not a regular file"). */
        size_t blocked;
        const char *blocked_file, *blocked_reason;
        /* A limit reached or a save failing (status reports it as an
         * error), NULL when none. */
        const char *error;
};

/* What source `src` is doing, for status reports. Strings valid until the
 * next call into the tailer. */
void tailer_source_info(struct tailer *t, size_t src, struct tailer_source_info *out);

/* Files owed that cannot be opened or read now, over every source. */
size_t tailer_blocked(const struct tailer *t);

/* True when offsets changed since the last save. */
bool tailer_dirty(const struct tailer *t);

#endif
