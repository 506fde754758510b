/* The dead-letter commands: list and resend. */
#ifndef PMTATAIL_DEADLETTER_H
#define PMTATAIL_DEADLETTER_H

#include "config.h"
#include "log.h"

#include <signal.h>
#include <stddef.h>
#include <stdio.h>

/* Print every dead letter, one line each, and the count on stderr. Returns
 * 0, or -1 when an entry could not be read (it is reported). */
int dead_letter_list(const char *state_dir, FILE *out, const struct logger *log);

/* Send every dead letter again through the configured output. Returns 0
 * when all were acknowledged (accepted, or refused again and kept anew), -1
 * otherwise (the entries not done stay for the next run). Stops early when
 * *stop is set. */
int dead_letter_resend(const struct config *cfg, volatile sig_atomic_t *stop,
                       const struct logger *log);

#endif
