/* `pmtatail dead-letter list|resend`: the events the backend refused on
 * their own, kept in STATE_DIR/dead-letter.ndjson.
 *
 * resend takes the file's entries by renaming it (under the lock the daemon
 * also takes to append, see dead_letter_open) to dead-letter.resending-*.ndjson,
 * sends them through the configured output, and removes that file only when
 * every entry is acknowledged: accepted, or refused again and so appended to
 * dead-letter.ndjson anew. A line that does not parse (a file damaged by
 * hand or by a disk) is reported with its line number and moved, as it is,
 * to dead-letter.unreadable (appended and fsync'd): it neither stops the
 * others nor keeps its file forever. An interrupted resend leaves the resending file,
 * which the next list shows and the next resend sends: nothing is lost, at
 * worst an event is sent twice. */
#include "deadletter.h"

#include "buf.h"
#include "output.h"
#include "push.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES (64u << 20) /* a dead letter holds one record: far less */
#define MAX_FILES      64

/* The files holding dead letters: the current one, then resending leftovers.
 * Returns how many paths were put in `paths` (malloc'd). */
static size_t dead_letter_files(const char *state_dir, char **paths, size_t max)
{
        size_t n = 0;
        char p[4096];
        snprintf(p, sizeof p, "%s/dead-letter.ndjson", state_dir);
        if (access(p, F_OK) == 0 && n < max)
                paths[n++] = strdup(p);
        DIR *d = opendir(state_dir);
        struct dirent *de;
        while (d && (de = readdir(d)) && n < max) {
                if (strncmp(de->d_name, "dead-letter.resending-", 22) != 0)
                        continue;
                snprintf(p, sizeof p, "%s/%s", state_dir, de->d_name);
                paths[n++] = strdup(p);
        }
        if (d)
                closedir(d);
        return n;
}

/* Append a line that does not parse to `fd` (dead-letter.unreadable). */
static int keep_unreadable(int fd, const char *line, size_t n)
{
        while (n > 0) {
                ssize_t w = write(fd, line, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return -1;
                line += w;
                n -= (size_t)w;
        }
        return 0;
}

/* Call fn for every entry of the file; entries that do not parse are
 * reported with their line and skipped. With `bad_fd` >= 0 they are copied
 * there; returns 0 when every line was handled (read, or copied), else -1
 * (they stay in the file). */
static int each_entry(const char *path, void (*fn)(void *, json_t *), void *ctx,
                      const struct logger *log, int bad_fd)
{
        FILE *f = fopen(path, "r");
        if (!f) {
                log_error(log, "cannot open file=%s error=\"%s\"", path, strerror(errno));
                return -1;
        }
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        unsigned long lineno = 0;
        int bad = 0;
        while ((n = getline(&line, &cap, f)) > 0) {
                lineno++;
                json_error_t err;
                json_t *j = (size_t)n > LINE_MAX_BYTES
                                ? NULL
                                : json_loadb(line, (size_t)n, JSON_ALLOW_NUL, &err);
                if (!json_is_object(j) || !json_is_object(json_object_get(j, "event"))) {
                        const char *why = (size_t)n > LINE_MAX_BYTES ? "too long"
                                          : j                        ? "no event"
                                                                     : err.text;
                        bool kept = bad_fd >= 0 && keep_unreadable(bad_fd, line, (size_t)n) == 0;
                        log_warn(log,
                                 "unreadable dead letter, skipped file=%s line=%lu error=\"%s\"%s",
                                 path, lineno, why,
                                 bad_fd < 0 ? ""
                                 : kept     ? " kept_in=dead-letter.unreadable"
                                            : " (cannot copy it: the file is kept)");
                        if (!kept)
                                bad++;
                        json_decref(j);
                        continue;
                }
                fn(ctx, j);
                json_decref(j);
        }
        free(line);
        fclose(f);
        return bad ? -1 : 0;
}

struct lister {
        FILE *out;
        size_t count;
};

static void list_one(void *ctx, json_t *j)
{
        struct lister *l = ctx;
        json_t *ev = json_object_get(j, "event");
        const char *id = json_string_value(json_object_get(ev, "eventId"));
        const char *rcpt = json_string_value(json_object_get(ev, "rcpt"));
        const char *type = json_string_value(json_object_get(ev, "logType"));
        const char *answer = json_string_value(json_object_get(j, "answer"));
        const char *when = json_string_value(json_object_get(j, "time"));
        char qa[600];
        log_quote(qa, sizeof qa, answer ? answer : "", answer ? strlen(answer) : 0);
        fprintf(l->out, "%s status=%lld eventId=%s type=%s rcpt=%s answer=%s\n", when ? when : "?",
                (long long)json_integer_value(json_object_get(j, "status")), id ? id : "?",
                type ? type : "?", rcpt ? rcpt : "?", qa);
        l->count++;
}

int dead_letter_list(const char *state_dir, FILE *out, const struct logger *log)
{
        char *paths[MAX_FILES];
        size_t n = dead_letter_files(state_dir, paths, MAX_FILES);
        struct lister l = {.out = out};
        int rc = 0;
        for (size_t i = 0; i < n; i++) {
                if (paths[i] && each_entry(paths[i], list_one, &l, log, -1) < 0)
                        rc = -1;
                free(paths[i]);
        }
        fprintf(stderr, "%zu dead letter%s\n", l.count, l.count == 1 ? "" : "s");
        return rc;
}

struct resender {
        struct push *push;
        struct buf batch;
        size_t nevents;
        size_t batch_max;
        size_t sent;
        size_t acked_batches, submitted_batches;
        bool failed;
        const struct logger *log;
};

static void on_ack(void *ctx, void *token)
{
        struct resender *r = ctx;
        (void)token;
        r->acked_batches++;
}

static void flush(struct resender *r)
{
        if (r->nevents == 0)
                return;
        if (push_submit(r->push, r->batch.data, r->batch.len, r->nevents, NULL) < 0) {
                r->failed = true;
                return;
        }
        r->submitted_batches++;
        r->sent += r->nevents;
        r->nevents = 0;
        buf_reset(&r->batch);
}

static void resend_one(void *ctx, json_t *j)
{
        struct resender *r = ctx;
        char *ev = json_dumps(json_object_get(j, "event"), JSON_COMPACT);
        if (!ev) {
                r->failed = true;
                return;
        }
        if (buf_puts(&r->batch, ev) < 0 || buf_putc(&r->batch, '\n') < 0) {
                flush(r);
                if (buf_puts(&r->batch, ev) < 0 || buf_putc(&r->batch, '\n') < 0)
                        r->failed = true;
        }
        free(ev);
        if (++r->nevents >= r->batch_max)
                flush(r);
        /* keep memory bounded: wait for answers while many are out */
        while (!r->failed && push_inflight(r->push) > 4 * r->batch_max)
                push_wait(r->push, NULL, 0, 1000);
}

/* Append a taken file's entries to the current file again, under its
 * lock, durably, before the taken one goes: nothing of it was delivered. */
static int put_back_file(const char *path, const char *state_dir, const struct logger *log)
{
        char cur[4096];
        snprintf(cur, sizeof cur, "%s/dead-letter.ndjson", state_dir);
        int in = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (in < 0)
                return -1;
        int out = dead_letter_open(cur, false);
        if (out < 0) {
                close(in);
                return -1;
        }
        struct stat st;
        off_t start = fstat(out, &st) == 0 ? st.st_size : -1;
        char buf[65536];
        ssize_t k;
        int rc = start < 0 ? -1 : 0;
        while (rc == 0 && (k = read(in, buf, sizeof buf)) != 0) {
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        rc = -1;
                        break;
                }
                for (ssize_t off = 0; off < k;) {
                        ssize_t w = write(out, buf + off, (size_t)(k - off));
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w <= 0) {
                                rc = -1;
                                break;
                        }
                        off += w;
                }
        }
        if (rc == 0 && fdatasync(out) < 0)
                rc = -1;
        if (rc < 0) {
                log_error(log, "cannot put the entries back file=%s error=\"%s\" (they stay in %s)",
                          cur, strerror(errno), path);
                if (start >= 0 && ftruncate(out, start) < 0)
                        log_error(log, "cannot cut the dead-letter file back file=%s", cur);
        }
        close(out);
        close(in);
        return rc;
}

/* Take the current file's entries under the daemon's lock. */
static int take_current(const char *state_dir, const struct logger *log)
{
        char cur[4096], to[4200];
        snprintf(cur, sizeof cur, "%s/dead-letter.ndjson", state_dir);
        int fd = dead_letter_open(cur, false);
        if (fd < 0)
                return errno == ENOENT ? 0 : -1;
        struct stat st;
        int rc = 0;
        if (fstat(fd, &st) == 0 && st.st_size > 0) {
                snprintf(to, sizeof to, "%s/dead-letter.resending-%lld-%d.ndjson", state_dir,
                         (long long)time(NULL), (int)getpid());
                if (rename(cur, to) < 0) {
                        log_error(log, "cannot take the dead letters file=%s error=\"%s\"", cur,
                                  strerror(errno));
                        rc = -1;
                }
        }
        close(fd);
        return rc;
}

int dead_letter_resend(const struct config *cfg, volatile sig_atomic_t *stop,
                       const struct logger *log)
{
        const char *state_dir = cfg->state_dir;
        struct resender r = {.batch_max = cfg->output.batch_max_records, .log = log};
        char err[1024];
        struct push *push;
        if (mkdir(state_dir, 0700) < 0 && errno != EEXIST) {
                log_error(log, "cannot create directory=%s error=\"%s\"", state_dir,
                          strerror(errno));
                return -1;
        }
        /* not on a thread of its own: after an interrupt nothing more goes
         * out (the file is kept whole and sent again by the next resend) */
        if (output_open(cfg, on_ack, &r, log, false, &push, err, sizeof err) < 0) {
                log_error(log, "%s", err);
                return -1;
        }
        r.push = push;
        if (take_current(state_dir, log) < 0) {
                push_close(push);
                return -1;
        }
        char *paths[MAX_FILES];
        size_t n = dead_letter_files(state_dir, paths, MAX_FILES);
        if (r.batch_max == 0)
                r.batch_max = 500;
        buf_init(&r.batch, 256u << 20);
        int rc = 0;
        char bad[4200];
        snprintf(bad, sizeof bad, "%s/dead-letter.unreadable", state_dir);
        int bad_fd = open(bad, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (bad_fd < 0)
                log_warn(log, "cannot open file=%s error=\"%s\"", bad, strerror(errno));
        for (size_t i = 0; i < n; i++) {
                /* only what was taken: entries refused again go to the
                 * current file while we work */
                if (!paths[i] || !strstr(paths[i], "dead-letter.resending-")) {
                        free(paths[i]);
                        paths[i] = NULL;
                        continue;
                }
                if (each_entry(paths[i], resend_one, &r, log, bad_fd) < 0)
                        rc = -1; /* unreadable lines not kept elsewhere: keep that file */
                flush(&r);
        }
        /* the copies must be durable before their source goes */
        if (bad_fd >= 0) {
                struct stat bst;
                if (fsync(bad_fd) < 0) {
                        log_error(log, "cannot sync file=%s error=\"%s\"", bad, strerror(errno));
                        rc = -1;
                } else if (fstat(bad_fd, &bst) == 0 && bst.st_size == 0) {
                        unlink(bad); /* nothing unreadable, now or before */
                }
                close(bad_fd);
        }
        struct push_stats st;
        push_get_stats(push, &st);
        /* An endpoint that refuses every request judges none of them: the
         * wait would never end, and the entries are kept as they are. */
        while (!r.failed && r.acked_batches < r.submitted_batches && !(stop && *stop) &&
               !st.endpoint_refusing) {
                push_wait(push, NULL, 0, 1000);
                push_get_stats(push, &st);
        }
        bool all = !r.failed && r.acked_batches == r.submitted_batches;
        bool put_back = !all && st.endpoint_refusing && st.delivered == 0 && st.refused == 0;
        for (size_t i = 0; i < n; i++) {
                if (paths[i] && ((all && rc == 0) ||
                                 (put_back && put_back_file(paths[i], state_dir, log) == 0)))
                        unlink(paths[i]);
                free(paths[i]);
        }
        if (put_back)
                fprintf(stderr,
                        "the endpoint refuses every request (HTTP %ld): the %zu entries stay in "
                        "the dead-letter file\n",
                        st.endpoint_status, r.sent);
        fprintf(stderr, "resent=%zu refused_again=%llu%s\n", r.sent, (unsigned long long)st.refused,
                all        ? ""
                : put_back ? " (kept: run it again later)"
                           : " (interrupted: run it again)");
        buf_free(&r.batch);
        push_close(push);
        return all && rc == 0 ? 0 : -1;
}
