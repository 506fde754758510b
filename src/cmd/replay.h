/* `pmtatail replay`: archived accounting files (plain or .gz, files,
 * directories, globs) through the parser and the event encoder, either
 * printed (--dry-run) or delivered through the configured output with the
 * daemon's batching, retry and dead-letter path. Delivery progress per file
 * (identity and acknowledged offset) lives in STATE_DIR/replay.json, so an
 * interrupted replay run again goes on where the acknowledged records end. */
#ifndef PMTATAIL_REPLAY_H
#define PMTATAIL_REPLAY_H

#include "config.h"
#include "log.h"
#include "pmta_csv.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct replay_opts {
        const char *const *types; /* record type codes to forward; NULL for b, rb, f */
        size_t ntypes;
        const char *columns; /* header for headerless files, or NULL */
        size_t record_max;   /* 0 for the default */
        const char *host;
        bool include_message;
        bool keep_rejects; /* print refused records as events with "parseError" */
        bool dry_run;      /* print NDJSON to `out` instead of delivering */
        bool from_start;   /* ignore the progress of earlier replays */
        bool has_since, has_until;
        int64_t since, until; /* since <= timeLogged < until, epoch seconds */
        FILE *out;
        const struct config *cfg; /* output and state directory, for delivery */
        volatile sig_atomic_t *stop;
        const struct logger *log;
};

struct replay_totals {
        uint64_t files, files_failed, files_skipped;
        struct pmta_stats parsed; /* over every file */
        uint64_t outside_window;
        uint64_t unforwarded; /* bounces [classify] forward kept back */
        uint64_t delivered, refused;
        uint64_t bytes;
        bool interrupted;
};

/* Expand the command line's paths (directories: their accounting files;
 * globs) and order them oldest first: by the time in PowerMTA's rotated
 * names (bounces-YYYY-MM-DD-HHMM.csv), else by modification time; a file
 * named twice is read once. Returns the count and a malloc'd array of
 * malloc'd paths in *out, or -1; *had_errors says whether some path could
 * not be read (each is logged). */
ssize_t replay_expand(const char *const *args, size_t nargs, char ***out, bool *had_errors,
                      const struct logger *log);

/* Replay the files. Returns 0 when every file was read (and, delivering,
 * every record acknowledged), -1 otherwise (logged). Rejected records do not
 * make it fail; they are counted. */
int replay_run(const char *const *paths, size_t npaths, const struct replay_opts *opts,
               struct replay_totals *totals);

/* Print the summary to `out`. */
void replay_print_summary(const struct replay_totals *t, double seconds, FILE *out);

#endif
