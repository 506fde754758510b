/* `pmtatail run`: follow the live files and deliver their records. The
 * pipeline wires tailer/ (bytes and offsets), csv/ (records), event/ (JSON)
 * and push/ (delivery) together and owns the event loop. */
#ifndef PMTATAIL_DAEMON_H
#define PMTATAIL_DAEMON_H

#include "config.h"
#include "log.h"

/* Run until SIGTERM or SIGINT (the caller has blocked them and passes a
 * signalfd for them). Returns 0 after a clean stop, -1 when it could not
 * start (logged). */
int daemon_run(const struct config *cfg, const struct logger *log, int signal_fd);

#endif
