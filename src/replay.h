/* Reading whole accounting files (archives, or any file given on the command
 * line) through the parser and the event encoder. */
#ifndef PMTATAIL_REPLAY_H
#define PMTATAIL_REPLAY_H

#include "log.h"

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
        FILE *out;         /* NDJSON goes here */
        const struct logger *log;
};

struct replay_totals {
        uint64_t files, files_failed;
        uint64_t records, filtered, rejected;
        uint64_t bytes;
        /* per record type, across all files */
        size_t ntypes;
        struct {
                char type[8];
                uint64_t count;
                bool forwarded;
        } types[16];
        uint64_t other_types;
};

/* Parse every file in turn and write one event per line to opts->out.
 * Returns 0 when every file was read, -1 when one could not be read or the
 * output failed (each is logged); rejected records do not make it fail but
 * are counted in totals. */
int replay_dry_run(const char *const *paths, size_t npaths, const struct replay_opts *opts,
                   struct replay_totals *totals);

/* Print the summary (records per type, rejects) to `out`. */
void replay_print_summary(const struct replay_totals *t, double seconds, FILE *out);

#endif
