/* What the daemon tells the world about itself: STATE_DIR/status.json (read
 * by `pmtatail status`, also when the daemon is gone) and the Prometheus
 * textfile for node_exporter. Both are written atomically (temp file,
 * rename) so a reader never sees half a file. */
#ifndef PMTATAIL_STATUS_H
#define PMTATAIL_STATUS_H

#include "push.h"
#include "tailer.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Record types counted apart; the rest go to "other". */
enum { TYPE_B, TYPE_RB, TYPE_F, TYPE_OTHER, TYPE_SLOTS };

struct source_counts {
        uint64_t read[TYPE_SLOTS];      /* parsed and forwarded */
        uint64_t delivered[TYPE_SLOTS]; /* acknowledged by the output */
        uint64_t rejected;              /* refused by the parser */
};

struct report {
        long pid;
        time_t started, now;
        bool stopping;
        time_t last_delivery; /* 0: none yet */
        time_t behind_since;  /* since when bytes are behind, 0: none */
        size_t nsrc;
        const struct tailer_source_info *src;
        const struct source_counts *counts;
        struct push_stats push;
        const char *output; /* "url" or "file" */
};

/* Index of a record type in the counters. */
int report_type_slot(const char *type, size_t len);

int report_write_status(const char *state_dir, const struct report *r);
int report_write_metrics(const char *path, const struct report *r);

#endif
