/* The reconciler: which known file is which file on disk now, and what to
 * do about every other file there. One pure function decides this for the
 * start and for every later look (an inotify event, a tick, a rewrite found
 * while reading), so that no conclusion exists in one path only.
 *
 * Input: the files a source knows (its durable entries, and the files it
 * follows, open or not) and the files on disk now (the live path and the
 * rotated names in its directories, already in reading order). Questions of
 * content ("is this candidate that known file, a copy of it, or another
 * file?") are asked through a callback, only when a decision needs them, so
 * the caller reads a fingerprint or compares bytes only then; unit tests
 * answer them from a table.
 *
 * The rules:
 *   - an inode is a hint: a known file is on a candidate with its inode only
 *     when the content says so. An entry whose file is gone never blocks the
 *     file that has its inode now: its inode is released;
 *   - each candidate is claimed by one known file at most, and each known
 *     file claims one candidate at most: on its inode first, then as a copy
 *     (move-to to another file system, copy-and-truncate), then shrunk on its
 *     own inode when no copy holds its records;
 *   - a known file not found is owed while a look failed (a directory that
 *     could not be listed), kept while its descriptor is open (deleted, still
 *     read), kept as done when finished, and gone only when every look
 *     worked;
 *   - a candidate no known file claims is a copy of a known file still
 *     present (move-to copies before it deletes), or new (read whole), or
 *     history: written before the daemon first watched a source it never
 *     read, or long before what the source last read. One that is empty, or holds only the first
 * bytes of a file still present (a copy being made), waits for the next look.
 *
 * No I/O here, no allocation, nothing global. */
#ifndef PMTATAIL_RECONCILE_H
#define PMTATAIL_RECONCILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A candidate unknown to the source is new when written at most this long
 * before the newest thing the source recorded: files rotated while the
 * daemon was stopped, or between two looks. A margin too wide only re-reads
 * (duplicates), never loses. */
#define RC_MARGIN_S 300

/* How a candidate relates to a known file, as the caller's callback finds. */
enum rc_rel {
        RC_REL_NONE = 0,  /* another file */
        RC_REL_SAME,      /* the known file itself (on its inode) */
        RC_REL_TRUNCATED, /* on its inode, shorter than what was read: rewritten */
        RC_REL_BLOCKED,   /* on its inode, content unreadable for now */
        RC_REL_COPY,      /* the known file's content on another inode */
        RC_REL_PREFIX,    /* the first bytes of the known file, too few to tell (a copy
                           * being made, or a file that only starts alike) */
};

struct rc_known {
        uint64_t dev, ino; /* where it was last seen; ino 0: no inode known */
        uint64_t copy_min; /* a copy holds at least this many bytes */
        bool copy_exact;   /* ... exactly that many (a finished file) */
        bool finished;
        bool open;      /* followed through an open descriptor: never gone */
        bool rewritten; /* its inode no longer holds what was read */
};

struct rc_cand {
        uint64_t dev, ino, size;
        int64_t mtime_s;
        int64_t mtime_ns;      /* the same, in nanoseconds */
        int64_t waiting_since; /* when an earlier look made it wait, 0: it did not */
        bool live;             /* at the live path */
};

enum rc_fate {
        RC_UNDECIDED = 0,
        RC_ON,        /* on candidate `cand` (its inode) */
        RC_COPIED,    /* its content is on candidate `cand` now, another inode */
        RC_SHRUNK,    /* on candidate `cand`, its inode, shorter: read it from 0 */
        RC_BLOCKED,   /* on candidate `cand`, its inode, unreadable for now */
        RC_OPEN,      /* not on disk by any name, read through its descriptor */
        RC_OWED,      /* not seen, and a look failed: owed, looked for again */
        RC_DONE_AWAY, /* finished and not seen: kept to be recognised */
        RC_GONE,      /* not seen though every look worked */
};

enum rc_cfate {
        RC_C_UNDECIDED = 0,
        RC_C_KNOWN,    /* claimed by known `known` */
        RC_C_COPY_OF,  /* a copy of known `known`, which is present too; known -1:
                        * of the live file, new in this look */
        RC_C_NEW,      /* never seen: read from 0 */
        RC_C_LIVE_NEW, /* the live path's file, never seen: follow it */
        RC_C_HISTORY,  /* not ours to read */
        RC_C_WAIT,     /* empty, or too little of it to tell: looked at again */
};

struct rc_kout {
        enum rc_fate fate;
        long cand; /* for ON, COPIED, SHRUNK, BLOCKED; else -1 */
        long copy; /* a candidate that is a copy of it (it is present too), or -1 */
        /* Not on a candidate, and its recorded inode is another file's now:
         * forget the inode (it keeps its content's fingerprint). */
        bool release;
        /* A candidate might be its copy but could not be told (unreadable
         * for now): not seen is not gone then, it is owed. */
        bool maybe;
};

struct rc_cout {
        enum rc_cfate fate;
        long known; /* for KNOWN and COPY_OF, else -1 */
};

/* How candidate `cand` relates to known file `known`. `on` is the candidate
 * the known file was found on in this look (-1 when none): a candidate is a
 * copy of a file still present when its content agrees with that file's.
 * known RC_NO_KNOWN: how `cand` relates to candidate `on` (the live file,
 * new in this look). */
#define RC_NO_KNOWN ((size_t)-1)
typedef enum rc_rel (*rc_relate_fn)(void *ctx, size_t known, size_t cand, long on);

struct rc_input {
        const struct rc_known *known;
        size_t nknown;
        const struct rc_cand *cand; /* in reading order (oldest first); the live file anywhere */
        size_t ncand;
        rc_relate_fn relate;
        void *ctx;
        bool look_failed;  /* a directory could not be listed: not seeing is not absence */
        bool source_known; /* the source has read something before */
        /* Before that, files written since the daemon began to watch (epoch
         * ns) are new all the same: only what was there before is history. */
        int64_t watching_since_ns;
        int64_t watermark; /* the newest time the source recorded anything (epoch s) */
        int64_t now;
};

/* A candidate waits (empty, or too little to tell) this long from the
 * look that first made it wait; then an empty one is nothing to read and
 * one still too short to tell is read (a repeat at worst, never a loss).
 * Not its mtime: a copy may keep the original's. */
#define RC_WAIT_S 60

/* Decide. kout has nknown slots, cout ncand. */
void rc_plan(const struct rc_input *in, struct rc_kout *kout, struct rc_cout *cout);

const char *rc_fate_name(enum rc_fate f);
const char *rc_cfate_name(enum rc_cfate f);

#endif
