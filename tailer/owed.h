/* Files the tailer owes but cannot open or read right now.
 *
 * A file whose records are not all delivered is never dropped because a
 * system call failed: unreadable (EACCES: PowerMTA wrote it 0600), out of
 * descriptors (EMFILE, ENFILE), an I/O error, a live path that is no regular
 * file. The file stays queued and tracked (its state entry kept), and the
 * failure is a "streak": one log line when it starts, naming the file and the
 * reason, one when it ends, saying how long it lasted. Between the two it is
 * tried again on a backoff timer (1 s doubling to OWED_BACKOFF_MAX_S) and at
 * once when the caller hears that the file or its directory changed
 * (IN_ATTRIB: a chmod).
 *
 * A struct owed lives in whatever it describes (a queued file, a source's
 * live path); this module keeps only the streak's bookkeeping and its
 * messages. Nothing here is global; nothing exits. */
#ifndef PMTATAIL_OWED_H
#define PMTATAIL_OWED_H

#include "log.h"

#include <stdbool.h>
#include <time.h>

#define OWED_BACKOFF_MAX_S 60
/* errno-like code for a path that is not a regular file (a FIFO, a device) */
#define OWED_NOT_REGULAR (-2)

struct owed {
        int err;      /* the failure of the streak, 0 when none */
        time_t since; /* when the streak began */
        time_t retry_at;
        unsigned tries; /* failures in this streak */
};

/* The reason as the operator reads it: "out of file descriptors" for EMFILE
 * and ENFILE, "not a regular file", else strerror. */
const char *owed_reason(int err);

/* A failure `err` on `path`. Starts a streak
 * (logged as a warning) or continues it (not logged again unless the
 * reason changed), and sets the next retry. */
void owed_fail(struct owed *o, int err, const char *path, const char *source, time_t now,
               const struct logger *log);

/* owed_fail without its log line, for a caller that says it its own way
 * (a directory that cannot be listed). */
void owed_note(struct owed *o, int err, time_t now);

/* The file could be opened/read: ends a streak (logged). */
void owed_clear(struct owed *o, const char *path, const char *source, time_t now,
                const struct logger *log);

/* In a streak, and not yet time to try again. */
bool owed_waiting(const struct owed *o, time_t now);

/* Try again at the next look (an IN_ATTRIB, a descriptor freed). */
void owed_retry_now(struct owed *o);

#endif
