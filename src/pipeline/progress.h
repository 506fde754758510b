/* `replay`'s progress: per archive, which part of it has been delivered.
 *
 * An archive is known by its content identity (tailer/archive.h), so the
 * same archive renamed, copied, or gzipped between two runs is the same
 * entry. Its progress is a list of passes, each the part a run set out to
 * deliver (a time window, or the whole file: records without a time
 * included) and how far it got: every record of the window before `offset`
 * has been delivered, and all of them once `done`. So a record has been
 * delivered when some pass's window holds its time and its offset is
 * below that pass's (or the pass is done); another window, or none, then
 * delivers exactly the rest. Done windows that touch are merged; a pass
 * the file is done for in full makes the others moot.
 *
 * Saved in STATE_DIR/replay.json, rewritten whole only at the end of a run
 * that changed something; meanwhile each change (an acknowledged batch) is
 * a line appended to STATE_DIR/replay.journal, written and fdatasync'd at
 * most once a second. A run that dies leaves the journal, applied on top of
 * replay.json by the next one (a torn last line ignored): the cost of a save
 * is what changed, not the history. Version 1 files (a file known by device,
 * inode and the fingerprint of its raw bytes, one offset) are taken over:
 * their entries are found by content, or by device and inode when the raw
 * bytes still match, and keep their offset. */
#ifndef PMTATAIL_PROGRESS_H
#define PMTATAIL_PROGRESS_H

#include "archive.h"
#include "buf.h"
#include "log.h"
#include "pairmap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROGRESS_MAX_ENTRIES 1000000
#define PROGRESS_MAX_PASSES  16

/* A run's selection: the whole file, or since <= time < until (INT64_MIN,
 * INT64_MAX for an open end; records without a time fall outside). */
struct pwindow {
        bool all;
        int64_t since, until;
};

struct ppass {
        struct pwindow w;
        uint64_t offset;
        bool done;
        char *header; /* the header line in force at offset, NULL when none */
};

struct pentry {
        char *path;
        struct archive_id id;
        uint64_t dev, ino;
        bool legacy; /* from a version 1 file: id is of the raw bytes */
        struct ppass *passes;
        size_t npasses;
};

struct progress {
        char dir[4096];
        int lock_fd, journal_fd;
        struct pentry *v;
        size_t n, cap;
        struct pairmap by_id, by_ino; /* by_ino: legacy entries only */
        bool legacy_seen;
        bool changed;       /* something to compact at the end */
        struct buf pending; /* journal lines not yet written */
        int64_t written_ms; /* the last write of the journal */
        uint64_t journal_lines;
        struct log_streak failing;
        const struct logger *log;
};

/* Lock the state directory for replay, load replay.json and apply a journal
 * left by a run that died. Returns 0, or -1 (logged). */
int progress_open(struct progress *p, const char *state_dir, const struct logger *log);

/* The entry of an archive, created when there is none. Returns its index,
 * or -1 (no memory, too many entries: logged). */
long progress_entry(struct progress *p, const char *path, const struct archive_id *id, uint64_t dev,
                    uint64_t ino);

/* What a run selecting `w` does with entry e: -1 when everything w selects
 * has been delivered; otherwise the index of its pass (found or added),
 * with where to start reading and the header in force there (may be NULL,
 * owned by the entry). from_start forgets the entry's progress first. */
long progress_plan(struct progress *p, size_t e, const struct pwindow *w, bool from_start,
                   uint64_t *start, const char **header);

/* Whether the record at offset `off` (with a time `t`, or none) has been
 * delivered by another pass than `self`. */
bool progress_delivered(const struct progress *p, size_t e, size_t self, uint64_t off,
                        bool has_time, int64_t t);

/* Entry e's pass `pass` is delivered up to `mark` (the header in force
 * there), or whole when done. Appended to the journal. */
void progress_advance(struct progress *p, size_t e, size_t pass, uint64_t mark, const char *header,
                      size_t header_len, bool done);

/* Write and fdatasync what the journal holds when `force` or a second has
 * passed. */
void progress_sync(struct progress *p, bool force);

/* Write replay.json when the run changed something, remove the journal,
 * unlock, free. */
void progress_close(struct progress *p);

#endif
