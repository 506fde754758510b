/* `pmtatail reload`: make the running daemon take its configuration again
 * and wait until it runs on it; and the generation mark that lets it tell.
 *
 * The daemon (`run`) keeps STATE_DIR/reloads, one line "pid=P reloads=N",
 * rewritten (temp file and rename) when it starts (when the state directory
 * exists already: a new one holds no earlier process's mark) and each time
 * a reload has drained the old run, before the new run starts. Only `run`
 * takes STATE_DIR/lock, so its pid there is the daemon's. The command owns no
 * state between calls; everything it learns comes from the state
 * directory: the pid from the lock file, the generation from the mark, and
 * "the new run is up" from status.json ("state": "running" written by the
 * new run just before it tells systemd READY=1). */
#ifndef PMTATAIL_RELOAD_H
#define PMTATAIL_RELOAD_H

#include "config.h"

#include <stdio.h>

#define RELOAD_MARK_NAME "reloads"

/* Exit statuses the command returns (main passes them on). */
enum reload_result {
        RELOAD_OK = 0,
        RELOAD_FAILED = 1, /* no daemon, it died, or the wait timed out */
        RELOAD_CONFIG = 78 /* EX_CONFIG: the configuration cannot run */
};

/* Why cfg cannot be run by the daemon ("run needs an [output]: url or
 * file", ...), or NULL when it can. Shared by `run` and `reload` so that a
 * reload is refused for the same reasons a start would be. */
const char *reload_unrunnable(const struct config *cfg);

/* Record that the process pid has done `reloads` reloads. Returns 0, or -1
 * with errno (the caller logs it; a missing mark only makes `reload` wait
 * for its timeout). */
int reload_mark(const char *state_dir, long pid, unsigned long reloads);

/* Signal the daemon holding cfg->state_dir (SIGHUP) and wait up to
 * timeout_s seconds for the new run. cfg is the configuration loaded from
 * the same file: the daemon reads that file again. Messages go to err. */
enum reload_result reload_command(const struct config *cfg, int timeout_s, FILE *err);

#endif
