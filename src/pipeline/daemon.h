/* `pmtatail run`: follow the live files and deliver their records. The
 * pipeline wires tailer/ (bytes and offsets), csv/ (records), event/ (JSON)
 * and push/ (delivery) together and owns the event loop. */
#ifndef PMTATAIL_DAEMON_H
#define PMTATAIL_DAEMON_H

#include "config.h"
#include "log.h"

enum daemon_result {
        DAEMON_FAILED = -1, /* could not start (logged) */
        DAEMON_STOPPED = 0, /* SIGTERM or SIGINT: drained and committed */
        DAEMON_RELOAD = 1,  /* SIGHUP with a valid new configuration in *reloaded */
        DAEMON_UNSAVED = 2, /* stopped, but the last offsets could not be saved (logged) */
};

/* Run until SIGTERM or SIGINT, or SIGHUP (the caller has blocked them and
 * passes a signalfd for them). On SIGHUP the configuration at config_path
 * is loaded again: when it is bad its problems are logged and the daemon
 * goes on as it was; when it is good the daemon stops as for SIGTERM (what
 * was read is delivered or read again later: offsets are never lost) and
 * returns DAEMON_RELOAD with the new configuration in *reloaded (the caller
 * frees it), to be run in its turn. */
enum daemon_result daemon_run(const struct config *cfg, const char *config_path,
                              const struct logger *log, int signal_fd, struct config **reloaded);

#endif
