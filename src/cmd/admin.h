/* The operator commands status, check-config and pmta-config. */
#ifndef PMTATAIL_ADMIN_H
#define PMTATAIL_ADMIN_H

#include "config.h"

#include <stdbool.h>
#include <stdio.h>

/* Per source: file, offset, size, bytes and records behind; last delivery,
 * errors, dead letters. Returns 0 when healthy, 1 when not (stalled with a
 * backlog, credentials refused, offsets unreadable). */
int admin_status(const struct config *cfg, bool as_json, FILE *out);

/* Show the resolved configuration (secrets masked) and check each path,
 * then PowerMTA's configuration against the sources (pmtacheck.h);
 * `problems` already found in the file (config_path) are added to the
 * count. Returns 0, or 1 with every problem listed. */
int admin_check_config(const struct config *cfg, const char *config_path, FILE *out,
                       size_t problems);

/* Print the <acct-file> blocks matching the configured sources. */
void admin_pmta_config(const struct config *cfg, FILE *out);

#endif
