/* The operator commands status, check-config and pmta-config. */
#ifndef PMTATAIL_ADMIN_H
#define PMTATAIL_ADMIN_H

#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct status_opts {
        bool json;
        /* Records waiting this long with nothing delivered: critical. */
        int64_t max_behind_s;
};

#define STATUS_MAX_BEHIND_DEFAULT 600

/* A one-line verdict first (PMTATAIL OK|WARNING|CRITICAL|UNKNOWN - ...),
 * then per source: file, offset, size, bytes and records behind; last
 * delivery, errors, dead letters. Returns the monitoring-plugin exit
 * status: 0 ok, 1 warning (dead letters waiting), 2 critical (behind for
 * longer than max_behind_s, files blocked, the endpoint or the credentials
 * refused), 3 unknown (the daemon not running, offsets unreadable). */
int admin_status(const struct config *cfg, const struct status_opts *opts, FILE *out);

/* Show the resolved configuration (secrets masked) and check each path,
 * then PowerMTA's configuration against the sources (pmtacheck.h);
 * `problems` already found in the file (config_path) are added to the
 * count. Returns 0, or 1 with every problem listed. */
int admin_check_config(const struct config *cfg, const char *config_path, FILE *out,
                       size_t problems);

/* Print the <acct-file> blocks matching the configured sources. */
void admin_pmta_config(const struct config *cfg, FILE *out);

#endif
