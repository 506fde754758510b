/* pmtatail reload (see reloadcmd.h). It needs nothing the package does not
 * bring (no kill(1)) and only what the unit's sandbox allows: reading the
 * state directory, flock() and kill() on a process of the same user. */
#include "reload.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define POLL_MS 50

const char *reload_unrunnable(const struct config *cfg)
{
        if (cfg->n_sources == 0)
                return "no [source] in the configuration: nothing to follow";
        if (cfg->output.kind == CONFIG_OUTPUT_NONE)
                return "run needs an [output]: url or file";
        return NULL;
}

int reload_mark(const char *state_dir, long pid, unsigned long reloads)
{
        char path[4200], tmp[4210];
        snprintf(path, sizeof path, "%s/%s", state_dir, RELOAD_MARK_NAME);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        FILE *f = fopen(tmp, "w");
        if (!f)
                return -1;
        fprintf(f, "pid=%ld reloads=%lu\n", pid, reloads);
        if (fclose(f) != 0 || rename(tmp, path) < 0) {
                int e = errno;
                unlink(tmp);
                errno = e;
                return -1;
        }
        return 0;
}

/* The generation the mark gives for pid: 0 when the mark is absent or
 * another process's (a daemon that has not reloaded yet). */
static unsigned long read_mark(const char *state_dir, long pid)
{
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", state_dir, RELOAD_MARK_NAME);
        FILE *f = fopen(path, "r");
        if (!f)
                return 0;
        long p = 0;
        unsigned long n = 0;
        int got = fscanf(f, "pid=%ld reloads=%lu", &p, &n);
        fclose(f);
        return got == 2 && p == pid ? n : 0;
}

/* The pid of the daemon holding the state directory's lock, 0 when no
 * daemon holds it, -1 when the lock cannot be read (message in why). */
static long lock_holder(const char *state_dir, char *why, size_t whylen)
{
        char path[4200];
        snprintf(path, sizeof path, "%s/lock", state_dir);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT)
                        return 0;
                snprintf(why, whylen, "cannot open %s: %s", path, strerror(errno));
                return -1;
        }
        if (flock(fd, LOCK_SH | LOCK_NB) == 0 || errno != EWOULDBLOCK) {
                close(fd);
                return 0;
        }
        char buf[24] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        char *end;
        long pid = strtol(buf, &end, 10);
        if (pid <= 0 || (*end && *end != '\n')) {
                snprintf(why, whylen, "%s is held but names no pid", path);
                return -1;
        }
        return pid;
}

/* Has the run started after the reload written status.json? Its "pid" is
 * the daemon's and its "state" is "running" (the old run's last report
 * says "stopping"). */
static bool new_run_reported(const char *state_dir, long pid)
{
        char path[4200];
        snprintf(path, sizeof path, "%s/status.json", state_dir);
        json_t *st = json_load_file(path, 0, NULL);
        if (!st)
                return false;
        bool ok = json_integer_value(json_object_get(st, "pid")) == pid &&
                  json_is_string(json_object_get(st, "state")) &&
                  strcmp(json_string_value(json_object_get(st, "state")), "running") == 0;
        json_decref(st);
        return ok;
}

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum reload_result reload_command(const struct config *cfg, int timeout_s, FILE *err)
{
        /* Refuse here what the daemon would refuse (it would log it and go
         * on with the old configuration, and we would wait in vain). */
        const char *why = reload_unrunnable(cfg);
        if (why) {
                fprintf(err, "pmtatail: reload refused: %s\n", why);
                return RELOAD_CONFIG;
        }
        char msg[4400] = "";
        long pid = lock_holder(cfg->state_dir, msg, sizeof msg);
        if (pid < 0) {
                fprintf(err, "pmtatail: reload: %s\n", msg);
                return RELOAD_FAILED;
        }
        if (pid == 0) {
                fprintf(err, "pmtatail: reload: no daemon is running on %s (its lock is free)\n",
                        cfg->state_dir);
                return RELOAD_FAILED;
        }
        unsigned long before = read_mark(cfg->state_dir, pid);
        if (kill((pid_t)pid, SIGHUP) < 0) {
                fprintf(err, "pmtatail: reload: cannot signal pid %ld: %s\n", pid, strerror(errno));
                return RELOAD_FAILED;
        }
        /* The old run drains what is in flight and commits (a few seconds
         * at most), then the mark moves, then the new run reports. */
        int64_t give_up = now_ms() + (int64_t)timeout_s * 1000;
        bool drained = false;
        for (;;) {
                if (!drained)
                        drained = read_mark(cfg->state_dir, pid) > before;
                if (drained && new_run_reported(cfg->state_dir, pid))
                        return RELOAD_OK;
                if (kill((pid_t)pid, 0) < 0 && errno == ESRCH) {
                        fprintf(err,
                                "pmtatail: reload: the daemon (pid %ld) exited; its log says why\n",
                                pid);
                        return RELOAD_FAILED;
                }
                if (now_ms() >= give_up)
                        break;
                struct timespec ts = {0, POLL_MS * 1000000L};
                nanosleep(&ts, NULL);
        }
        fprintf(err,
                "pmtatail: reload: pid %ld did not %s within %d s (a refused configuration is "
                "in its log)\n",
                pid, drained ? "start on the new configuration" : "finish the old run", timeout_s);
        return RELOAD_FAILED;
}
