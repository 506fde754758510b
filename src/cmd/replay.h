/* `pmtatail replay`: archived accounting files (plain or .gz, files,
 * directories, globs) through the parser and the event encoder, either
 * printed (--dry-run) or delivered through the configured output with the
 * daemon's batching, retry and dead-letter path. What each archive has
 * delivered (by content identity: the part of it a window selected, up to
 * the acknowledged offset) is kept by src/pipeline/progress.h, so an
 * interrupted replay goes on where the acknowledged records end and another
 * window, or none, delivers exactly the rest. */
#ifndef PMTATAIL_REPLAY_H
#define PMTATAIL_REPLAY_H

#include "archives.h"
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
        uint64_t skipped;         /* entries left out (archives.h), listed apart */
        struct pmta_stats parsed; /* over every file */
        uint64_t events;          /* printed, or handed to the output */
        uint64_t outside_window;
        uint64_t files_outside_window; /* read whole, no record in the window */
        uint64_t already_delivered;    /* in the window, delivered by an earlier run */
        uint64_t unforwarded;          /* bounces [classify] forward kept back */
        uint64_t delivered, refused;
        uint64_t bytes;
        bool interrupted;
};

/* Replay the files. Returns 0 when every file was read (and, delivering,
 * every record acknowledged), -1 otherwise (logged). Rejected records do not
 * make it fail; they are counted. */
int replay_run(const struct archives *in, const struct replay_opts *opts,
               struct replay_totals *totals);

/* Print the summary to `out`. */
void replay_print_summary(const struct replay_totals *t, double seconds, FILE *out);

#endif
