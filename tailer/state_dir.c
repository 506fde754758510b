#include "state_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safefile.h"

/* offsets.json and its siblings must fit in a path under the directory. */
#define DIR_MAX (STATE_PATH_MAX - 64)

__attribute__((format(printf, 3, 4))) static void add_note(struct state_error *err, unsigned note,
                                                           const char *fmt, ...)
{
        if (!err)
                return;
        err->notes |= note;
        size_t used = strlen(err->note);
        if (used + 3 >= sizeof err->note)
                return;
        if (used > 0) {
                memcpy(err->note + used, "; ", 3);
                used += 2;
        }
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->note + used, sizeof err->note - used, fmt, ap);
        va_end(ap);
}

/* Rename the untrusted `from` (offsets.json or its journal) to
 * from.corrupt-<epoch> (or .corrupt-<epoch>.N if taken) and make that
 * durable. */
static int move_aside(struct state *s, const char *from, char *name, size_t size,
                      struct state_error *err)
{
        long long now = (long long)time(NULL);
        int e = EEXIST;
        for (int k = 0; k < 1000; k++) {
                if (k == 0)
                        snprintf(name, size, "%s.corrupt-%lld", from, now);
                else
                        snprintf(name, size, "%s.corrupt-%lld.%d", from, now, k);
                struct stat st;
                if (fstatat(s->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
                        continue;
                if (errno == ENOENT && renameat(s->dirfd, from, s->dirfd, name) == 0 &&
                    fsync(s->dirfd) == 0)
                        return 0;
                e = errno;
                break;
        }
        state_fail(err, STATE_E_IO, e, "cannot move %s/%s aside to %s/%s: %s", s->dir, from, s->dir,
                   name, strerror(e));
        return -1;
}

/* The snapshot, then the journal's saves since. Returns as state_load. */
static int load_all(struct state *s, struct state_error *err)
{
        int loaded = state_load(s, err);
        if (loaded > 0 && journal_load(s, err) < 0)
                return -1;
        journal_mark_all_saved(s);
        /* A torn or foreign journal must not be appended to: the first
         * save writes a snapshot and a journal of its own. */
        s->need_fold = true;
        return loaded;
}

static int take_lock(struct state *s, struct state_error *err)
{
        int fd = safefile_open_lock(s->dirfd, STATE_LOCK_NAME);
        if (fd < 0) {
                int e = errno;
                state_fail(err, STATE_E_IO, e, "cannot open %s/%s: %s", s->dir, STATE_LOCK_NAME,
                           strerror(e));
                return -1;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                int e = errno;
                if (e == EWOULDBLOCK) {
                        /* The holder wrote its pid into the file: name it. */
                        char pid[24] = "";
                        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
                        pid[n > 0 ? n : 0] = '\0';
                        pid[strcspn(pid, "\n")] = '\0';
                        if (pid[0] && strspn(pid, "0123456789") == strlen(pid))
                                state_fail(err, STATE_E_LOCKED, e,
                                           "another pmtatail holds %s (pid %s, lock %s/%s)", s->dir,
                                           pid, s->dir, STATE_LOCK_NAME);
                        else
                                state_fail(err, STATE_E_LOCKED, e,
                                           "another pmtatail holds %s (lock %s/%s)", s->dir, s->dir,
                                           STATE_LOCK_NAME);
                } else {
                        state_fail(err, STATE_E_IO, e, "cannot lock %s/%s: %s", s->dir,
                                   STATE_LOCK_NAME, strerror(e));
                }
                close(fd);
                return -1;
        }
        s->lockfd = fd;
        /* Only for the message above: a failure here changes nothing. */
        char pid[24];
        int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) != n) {
                /* ignored */
        }
        return 0;
}

int state_open(struct state **out, const char *dir, unsigned flags, struct state_error *err)
{
        /* The kind of a load failure decides what RESET_CORRUPT does. */
        struct state_error local;
        if (!err)
                err = &local;
        *out = NULL;
        state_err_reset(err);
        err->notes = 0;
        err->note[0] = '\0';
        const unsigned known = STATE_OPEN_READONLY | STATE_OPEN_RESET_CORRUPT;
        if (!dir || !dir[0] || (flags & ~known) ||
            ((flags & STATE_OPEN_READONLY) && (flags & STATE_OPEN_RESET_CORRUPT))) {
                state_fail(err, STATE_E_INVALID, EINVAL, "state_open: bad arguments");
                return -1;
        }
        size_t dlen = strlen(dir);
        while (dlen > 1 && dir[dlen - 1] == '/')
                dlen--;
        if (dlen > DIR_MAX) {
                state_fail(err, STATE_E_LIMIT, ENAMETOOLONG,
                           "state directory name longer than %d bytes", DIR_MAX);
                return -1;
        }

        struct state *s = calloc(1, sizeof *s);
        if (!s) {
                state_fail(err, STATE_E_NOMEM, ENOMEM, "out of memory");
                return -1;
        }
        s->dirfd = -1;
        s->lockfd = -1;
        s->jfd = -1;
        s->readonly = flags & STATE_OPEN_READONLY;
        s->dir = strndup(dir, dlen);
        if (!s->dir || asprintf(&s->file_path, "%s%s%s", s->dir, strcmp(s->dir, "/") ? "/" : "",
                                STATE_FILE_NAME) < 0) {
                s->file_path = NULL;
                state_fail(err, STATE_E_NOMEM, ENOMEM, "out of memory");
                goto fail;
        }
        if (asprintf(&s->journal_path, "%s%s%s", s->dir, strcmp(s->dir, "/") ? "/" : "",
                     JOURNAL_NAME) < 0) {
                s->journal_path = NULL;
                state_fail(err, STATE_E_NOMEM, ENOMEM, "out of memory");
                goto fail;
        }

        if (!s->readonly && mkdir(s->dir, 0700) < 0 && errno != EEXIST) {
                int e = errno;
                state_fail(err, STATE_E_IO, e, "cannot create state directory %s: %s", s->dir,
                           strerror(e));
                goto fail;
        }
        s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s->dirfd < 0) {
                int e = errno;
                if (s->readonly && e == ENOENT) {
                        *out = s; /* nothing saved yet: nothing to show */
                        return 0;
                }
                state_fail(err, STATE_E_IO, e, "cannot open state directory %s: %s", s->dir,
                           strerror(e));
                goto fail;
        }
        if (s->readonly) {
                if (load_all(s, err) < 0)
                        goto fail;
                *out = s;
                return 0;
        }

        if (take_lock(s, err) < 0)
                goto fail;
        /* A temp file is only ever complete and in place after its rename:
         * one still here was never committed, whatever it holds. */
        bool temp_removed = false;
        if (unlinkat(s->dirfd, TEMP_NAME, 0) == 0) {
                temp_removed = true;
        } else if (errno != ENOENT) {
                int e = errno;
                state_fail(err, STATE_E_IO, e,
                           "cannot remove %s/%s left by an interrupted save: %s", s->dir, TEMP_NAME,
                           strerror(e));
                goto fail;
        }

        /* Never committed either: only ever renamed over the journal. */
        if (unlinkat(s->dirfd, JOURNAL_TEMP_NAME, 0) < 0 && errno != ENOENT) {
                int e = errno;
                state_fail(err, STATE_E_IO, e, "cannot remove %s/%s: %s", s->dir, JOURNAL_TEMP_NAME,
                           strerror(e));
                goto fail;
        }

        int loaded = load_all(s, err);
        if (temp_removed)
                add_note(err, STATE_NOTE_TEMP_REMOVED,
                         "removed %s/%s left by an interrupted save (never committed)%s", s->dir,
                         TEMP_NAME,
                         loaded > 0    ? "; using the offsets of the last complete save"
                         : loaded == 0 ? "; there was no complete save before it"
                                       : "");
        if (loaded < 0) {
                if (!(flags & STATE_OPEN_RESET_CORRUPT) || err->kind != STATE_E_CORRUPT)
                        goto fail;
                char why[STATE_ERROR_LEN];
                memcpy(why, err->msg, sizeof why);
                /* Whichever file was wrong, the pair goes: a journal
                 * follows only its own snapshot. */
                table_clear(s);
                s->snap_exists = false;
                char name[64], jname[64];
                state_err_reset(err);
                struct stat st;
                bool had_snap = fstatat(s->dirfd, STATE_FILE_NAME, &st, AT_SYMLINK_NOFOLLOW) == 0;
                bool had_journal = fstatat(s->dirfd, JOURNAL_NAME, &st, AT_SYMLINK_NOFOLLOW) == 0;
                if (had_snap && move_aside(s, STATE_FILE_NAME, name, sizeof name, err) < 0)
                        goto fail;
                if (had_journal && move_aside(s, JOURNAL_NAME, jname, sizeof jname, err) < 0)
                        goto fail;
                add_note(err, STATE_NOTE_RESET_CORRUPT,
                         "moved %s aside to %s/%s and started with no offsets (%s)",
                         had_snap ? s->file_path : s->journal_path, s->dir, had_snap ? name : jname,
                         why);
        }
        *out = s;
        return 0;
fail : {
        int e = errno;
        state_close(s);
        errno = e;
}
        return -1;
}

void state_close(struct state *s)
{
        if (!s)
                return;
        journal_fold_if_clean(s);
        journal_close(s);
        table_clear(s);
        free(s->entries);
        free(s->removed);
        free(s->journal_path);
        if (s->lockfd >= 0)
                close(s->lockfd); /* releases the flock */
        if (s->dirfd >= 0)
                close(s->dirfd);
        free(s->file_path);
        free(s->dir);
        free(s);
}

const char *state_file_path(const struct state *s)
{
        return s->file_path;
}
