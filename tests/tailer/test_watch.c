/* tailer/watch: real inotify on real temporary directories. */
#include "test.h"
#include "watch.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TEST_MAIN_BEGIN

/* Every event seen, copied out of the callback. */
struct seen {
        enum watch_event_kind kind;
        int wd;
        uint32_t mask;
        uint32_t cookie;
        char name[NAME_MAX + 1];
        char dir[PATH_MAX];
        int has_dir;
};

struct log {
        struct seen *ev;
        size_t n, alloc;
};

static void on_event(void *ctx, const struct watch_event *ev)
{
        struct log *l = ctx;
        struct seen *s;

        if (l->n == l->alloc) {
                l->alloc = l->alloc ? l->alloc * 2 : 64;
                l->ev = realloc(l->ev, l->alloc * sizeof(*l->ev));
                if (!l->ev)
                        abort();
        }
        s = &l->ev[l->n++];
        s->kind = ev->kind;
        s->wd = ev->wd;
        s->mask = ev->mask;
        s->cookie = ev->cookie;
        snprintf(s->name, sizeof(s->name), "%s", ev->name);
        s->has_dir = ev->dir != NULL;
        snprintf(s->dir, sizeof(s->dir), "%s", ev->dir ? ev->dir : "");
}

static void log_reset(struct log *l)
{
        l->n = 0;
}

static void log_free(struct log *l)
{
        free(l->ev);
        l->ev = NULL;
        l->n = l->alloc = 0;
}

/* The first event with `bit` in its mask for `name` in wd, or NULL. */
static const struct seen *find(const struct log *l, int wd, uint32_t bit, const char *name)
{
        for (size_t i = 0; i < l->n; i++) {
                const struct seen *s = &l->ev[i];
                if (s->wd == wd && (s->mask & bit) && strcmp(s->name, name) == 0)
                        return s;
        }
        return NULL;
}

static size_t count_bit(const struct log *l, uint32_t bit)
{
        size_t c = 0;

        for (size_t i = 0; i < l->n; i++)
                if (l->ev[i].mask & bit)
                        c++;
        return c;
}

/* A scratch tree under $TMPDIR; rm -r'ed by tmp_cleanup. */
struct tmp {
        char root[PATH_MAX];
};

static void tmp_make(struct tmp *t)
{
        const char *base = getenv("TMPDIR");

        snprintf(t->root, sizeof(t->root), "%s/pmtatail-watch-XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(t->root)) {
                perror("mkdtemp");
                abort();
        }
}

static void path_in(char *out, size_t size, const char *dir, const char *name)
{
        int n = snprintf(out, size, "%s/%s", dir, name);

        if (n < 0 || (size_t)n >= size)
                abort();
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        if (remove(path) != 0)
                fprintf(stderr, "warning: could not remove %s\n", path);
        return 0;
}

static void rm_tree(const char *path)
{
        /* Only ever our own mkdtemp directory. */
        if (strstr(path, "/pmtatail-watch-") == NULL)
                abort();
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void tmp_cleanup(struct tmp *t)
{
        rm_tree(t->root);
}

static void mkdir_in(char *out, size_t size, const char *parent, const char *name)
{
        path_in(out, size, parent, name);
        if (mkdir(out, 0700) != 0) {
                perror("mkdir");
                abort();
        }
}

static void write_file(const char *path, const char *text, int flags)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0600);

        if (fd < 0) {
                perror("open");
                abort();
        }
        if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
                abort();
        close(fd);
}

static void test_create_modify_delete(void)
{
        struct tmp t;
        struct watch *w;
        struct log l = {0};
        char file[PATH_MAX];
        const struct seen *s;
        int wd, fd;

        tmp_make(&t);
        CHECK_EQ_INT(watch_open(&w), 0);
        CHECK_EQ_INT(watch_add_dir(w, t.root, &wd), 0);
        CHECK_EQ_STR(watch_dir(w, wd), t.root);
        path_in(file, sizeof(file), t.root, "bounces.csv");

        fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        CHECK(watch_read(w, on_event, &l) >= 1);
        s = find(&l, wd, IN_CREATE, "bounces.csv");
        CHECK(s != NULL);
        if (s) {
                CHECK_EQ_INT(s->kind, WATCH_EVENT_DIR);
                CHECK_EQ_STR(s->dir, t.root);
                CHECK_EQ_INT(s->cookie, 0);
        }

        log_reset(&l);
        CHECK_EQ_INT(write(fd, "type,rcpt\r\n", 11), 11);
        CHECK(watch_read(w, on_event, &l) >= 1);
        CHECK(find(&l, wd, IN_MODIFY, "bounces.csv") != NULL);

        log_reset(&l);
        close(fd);
        CHECK(watch_read(w, on_event, &l) >= 1);
        CHECK(find(&l, wd, IN_CLOSE_WRITE, "bounces.csv") != NULL);

        log_reset(&l);
        CHECK_EQ_INT(chmod(file, 0644), 0);
        CHECK(watch_read(w, on_event, &l) >= 1);
        CHECK(find(&l, wd, IN_ATTRIB, "bounces.csv") != NULL);

        log_reset(&l);
        CHECK_EQ_INT(unlink(file), 0);
        CHECK(watch_read(w, on_event, &l) >= 1);
        s = find(&l, wd, IN_DELETE, "bounces.csv");
        CHECK(s != NULL);
        if (s)
                CHECK_EQ_STR(s->dir, t.root);

        /* Drained: nothing more to read. */
        log_reset(&l);
        CHECK_EQ_INT(watch_read(w, on_event, &l), 0);
        CHECK_EQ_STR(watch_error(w), "");

        watch_close(w);
        log_free(&l);
        tmp_cleanup(&t);
}

static void test_rename_within_dir(void)
{
        struct tmp t;
        struct watch *w;
        struct log l = {0};
        char from[PATH_MAX], to[PATH_MAX];
        const struct seen *a, *b;
        int wd;

        tmp_make(&t);
        path_in(from, sizeof(from), t.root, "bounces.csv");
        path_in(to, sizeof(to), t.root, "bounces-2024-01-05-1300.csv");
        write_file(from, "type\r\n", 0);
        CHECK_EQ_INT(watch_open(&w), 0);
        CHECK_EQ_INT(watch_add_dir(w, t.root, &wd), 0);

        CHECK_EQ_INT(rename(from, to), 0);
        CHECK_EQ_INT(watch_read(w, on_event, &l), 2);
        a = find(&l, wd, IN_MOVED_FROM, "bounces.csv");
        b = find(&l, wd, IN_MOVED_TO, "bounces-2024-01-05-1300.csv");
        CHECK(a != NULL);
        CHECK(b != NULL);
        if (a && b) {
                CHECK(a->cookie != 0);
                CHECK_EQ_INT(a->cookie, b->cookie);
                CHECK(a < b); /* FROM comes first */
        }

        watch_close(w);
        log_free(&l);
        tmp_cleanup(&t);
}

/* PowerMTA's move-to: the live file goes into the archive directory. */
static void test_rename_across_watched_dirs(void)
{
        struct tmp t;
        struct watch *w;
        struct log l = {0};
        char live[PATH_MAX], archive[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
        const struct seen *a, *b;
        int wd_live, wd_arch;

        tmp_make(&t);
        mkdir_in(live, sizeof(live), t.root, "live");
        mkdir_in(archive, sizeof(archive), t.root, "archive");
        path_in(from, sizeof(from), live, "bounces.csv");
        path_in(to, sizeof(to), archive, "bounces-2024-01-05-1300.csv");
        write_file(from, "type\r\n", 0);
        CHECK_EQ_INT(watch_open(&w), 0);
        CHECK_EQ_INT(watch_add_dir(w, live, &wd_live), 0);
        CHECK_EQ_INT(watch_add_dir(w, archive, &wd_arch), 0);
        CHECK(wd_live != wd_arch);

        CHECK_EQ_INT(rename(from, to), 0);
        CHECK_EQ_INT(watch_read(w, on_event, &l), 2);
        a = find(&l, wd_live, IN_MOVED_FROM, "bounces.csv");
        b = find(&l, wd_arch, IN_MOVED_TO, "bounces-2024-01-05-1300.csv");
        CHECK(a != NULL);
        CHECK(b != NULL);
        if (a && b) {
                CHECK(a->cookie != 0);
                CHECK_EQ_INT(a->cookie, b->cookie);
                CHECK_EQ_STR(a->dir, live);
                CHECK_EQ_STR(b->dir, archive);
        }

        watch_close(w);
        log_free(&l);
        tmp_cleanup(&t);
}

static void test_rename_to_unwatched_dir(void)
{
        struct tmp t;
        struct watch *w;
        struct log l = {0};
        char live[PATH_MAX], other[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
        int wd;

        tmp_make(&t);
        mkdir_in(live, sizeof(live), t.root, "live");
        mkdir_in(other, sizeof(other), t.root, "elsewhere");
        path_in(from, sizeof(from), live, "bounces.csv");
        path_in(to, sizeof(to), other, "bounces.csv");
        write_file(from, "type\r\n", 0);
        CHECK_EQ_INT(watch_open(&w), 0);
        CHECK_EQ_INT(watch_add_dir(w, live, &wd), 0);

        CHECK_EQ_INT(rename(from, to), 0);
        CHECK_EQ_INT(watch_read(w, on_event, &l), 1);
        CHECK(find(&l, wd, IN_MOVED_FROM, "bounces.csv") != NULL);
        CHECK_EQ_INT(count_bit(&l, IN_MOVED_TO), 0);

        watch_close(w);
        log_free(&l);
        tmp_cleanup(&t);
}

static void test_watched_dir_removed(void)
{
        struct tmp t;
        struct watch *w;
        struct log l = {0};
        char dir[PATH_MAX];
        int wd, n;

        tmp_make(&t);
        mkdir_in(dir, sizeof(dir), t.root, "archive");
        CHECK_EQ_INT(watch_open(&w), 0);
        CHECK_EQ_INT(watch_add_dir(w, dir, &wd), 0);

        CHECK_EQ_INT(rmdir(dir), 0);
        n = watch_read(w, on_event, &l);
        CHECK_EQ_INT(n, 2);
        CHECK(find(&l, wd, IN_DELETE_SELF, "") != NULL);
        CHECK(find(&l, wd, IN_IGNORED, "") != NULL);
        if (n == 2) {
                CHECK(l.ev[0].mask & IN_DELETE_SELF);
                CHECK(l.ev[1].mask & IN_IGNORED);
                CHECK_EQ_STR(l.ev[1].dir, dir); /* still named when it ends */
        }
        /* The kernel ended the watch: it is forgotten, its slot is free, and
         * removing it again is an error. */
        CHECK(watch_dir(w, wd) == NULL);
        errno = 0;
        CHECK_EQ_INT(watch_remove(w, wd), -1);
        CHECK_EQ_INT(errno, EINVAL);

        watch_close(w);
        log_free(&l);
        tmp_cleanup(&t);
}

static void test_watched_dir_moved(void)
{
        struct tmp t;
        struct watch *w;
        struct log l = {0};
        char dir[PATH_MAX], moved[PATH_MAX];
        int wd;

        tmp_make(&t);
        mkdir_in(dir, sizeof(dir), t.root, "archive");
        path_in(moved, sizeof(moved), t.root, "archive.old");
        CHECK_EQ_INT(watch_open(&w), 0);
        CHECK_EQ_INT(watch_add_dir(w, dir, &wd), 0);

        CHECK_EQ_INT(rename(dir, moved), 0);
        CHECK_EQ_INT(watch_read(w, on_event, &l), 1);
        CHECK(find(&l, wd, IN_MOVE_SELF, "") != NULL);
        /* The watch follows the inode; it keeps the path it was given. */
        CHECK_EQ_STR(watch_dir(w, wd), dir);

        watch_close(w);
        log_free(&l);
        tmp_cleanup(&t);
}

/* After watch_remove nothing more is delivered for that wd, not even the
 * IN_IGNORED the kernel queues for it. */
static void test_remove(void)
{
        struct tmp t;
        struct watch *w;
        struct log l = {0};
        char a[PATH_MAX], b[PATH_MAX], fa[PATH_MAX], fb[PATH_MAX];
        int wda, wdb;

        tmp_make(&t);
        mkdir_in(a, sizeof(a), t.root, "a");
        mkdir_in(b, sizeof(b), t.root, "b");
        path_in(fa, sizeof(fa), a, "x.csv");
        path_in(fb, sizeof(fb), b, "y.csv");
        CHECK_EQ_INT(watch_open(&w), 0);
        CHECK_EQ_INT(watch_add_dir(w, a, &wda), 0);
        CHECK_EQ_INT(watch_add_dir(w, b, &wdb), 0);

        write_file(fa, "1\n", 0); /* queued before the remove */
        CHECK_EQ_INT(watch_remove(w, wda), 0);
        write_file(fb, "1\n", 0);
        CHECK_EQ_INT(watch_read(w, on_event, &l), 3); /* y.csv: CREATE, MODIFY, CLOSE_WRITE */
        for (size_t i = 0; i < l.n; i++)
                CHECK_EQ_INT(l.ev[i].wd, wdb);
        CHECK(watch_dir(w, wda) == NULL);
        errno = 0;
        CHECK_EQ_INT(watch_remove(w, wda), -1);
        CHECK_EQ_INT(errno, EINVAL);

        watch_close(w);
        log_free(&l);
        tmp_cleanup(&t);
}

static void test_add_errors(void)
{
        struct tmp t;
        struct watch *w;
        char file[PATH_MAX], missing[PATH_MAX], sub[PATH_MAX];
        char dirs[WATCH_DIRS_MAX][32];
        int wd, wd2, added = 0;

        tmp_make(&t);
        path_in(file, sizeof(file), t.root, "plain.csv");
        path_in(missing, sizeof(missing), t.root, "missing");
        write_file(file, "x", 0);
        CHECK_EQ_INT(watch_open(&w), 0);

        /* IN_ONLYDIR: a file is refused. */
        errno = 0;
        CHECK_EQ_INT(watch_add_dir(w, file, &wd), -1);
        CHECK_EQ_INT(errno, ENOTDIR);
        CHECK(strstr(watch_error(w), "plain.csv") != NULL);
        errno = 0;
        CHECK_EQ_INT(watch_add_dir(w, missing, &wd), -1);
        CHECK_EQ_INT(errno, ENOENT);
        CHECK(strstr(watch_error(w), "missing") != NULL);

        /* The same directory twice, once through another spelling. */
        CHECK_EQ_INT(watch_add_dir(w, t.root, &wd), 0);
        path_in(sub, sizeof(sub), t.root, ".");
        CHECK_EQ_INT(watch_add_dir(w, sub, &wd2), 0);
        CHECK_EQ_INT(wd, wd2);
        CHECK_EQ_STR(watch_dir(w, wd), t.root);
        CHECK_EQ_STR(watch_error(w), "");

        /* The table is bounded: the root plus WATCH_DIRS_MAX - 1 more fit. */
        for (int i = 0; i < WATCH_DIRS_MAX; i++) {
                char p[PATH_MAX];
                int id;

                snprintf(dirs[i], sizeof(dirs[i]), "d%03d", i);
                mkdir_in(p, sizeof(p), t.root, dirs[i]);
                if (watch_add_dir(w, p, &id) != 0)
                        break;
                added++;
        }
        CHECK_EQ_INT(added, WATCH_DIRS_MAX - 1);
        CHECK_EQ_INT(errno, ENOBUFS);
        CHECK(strstr(watch_error(w), "256") != NULL);
        /* Freeing one slot makes room again. */
        CHECK_EQ_INT(watch_remove(w, wd), 0);
        {
                char p[PATH_MAX];
                int id;
                path_in(p, sizeof(p), t.root, dirs[WATCH_DIRS_MAX - 1]);
                CHECK_EQ_INT(watch_add_dir(w, p, &id), 0);
        }

        watch_close(w);
        tmp_cleanup(&t);
}

/* Watch exhaustion with the real kernel limit, lowered only inside a private
 * user namespace of a child process (/proc/sys/user/max_inotify_watches is
 * per namespace): nothing system-wide is touched. Skipped where user
 * namespaces are not allowed. */
static int enospc_child(const char *root)
{
        struct watch *w;
        int fd, wd;

        if (unshare(CLONE_NEWUSER) != 0)
                return 77;
        fd = open("/proc/sys/user/max_inotify_watches", O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return 77;
        if (write(fd, "2", 1) != 1) {
                close(fd);
                return 77;
        }
        close(fd);
        if (watch_open(&w) != 0)
                return 1;
        for (int i = 0; i < 3; i++) {
                char p[PATH_MAX], name[16];
                int r;

                snprintf(name, sizeof(name), "n%d", i);
                path_in(p, sizeof(p), root, name);
                errno = 0;
                r = watch_add_dir(w, p, &wd);
                if (i < 2 && r != 0)
                        return 2;
                if (i == 2) {
                        if (r != -1 || errno != ENOSPC)
                                return 3;
                        if (strstr(watch_error(w), "fs.inotify.max_user_watches") == NULL)
                                return 4;
                        if (strstr(watch_error(w), "/n2") == NULL)
                                return 5;
                }
        }
        watch_close(w);
        return 0;
}

static void test_watch_limit_enospc(void)
{
        struct tmp t;
        char p[PATH_MAX];
        pid_t pid;
        int status = 0;

        tmp_make(&t);
        for (int i = 0; i < 3; i++) {
                char name[8];
                snprintf(name, sizeof(name), "n%d", i);
                mkdir_in(p, sizeof(p), t.root, name);
        }
        fflush(NULL);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0)
                _exit(enospc_child(t.root));
        CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status));
        if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
                fprintf(stderr, "note: no user namespace here; ENOSPC path not exercised\n");
        else
                CHECK_EQ_INT(WEXITSTATUS(status), 0);
        tmp_cleanup(&t);
}

/* Thousands of variable-length events queued at once: every name comes out
 * exactly once, which needs many events per read and several reads. */
static void test_many_events(void)
{
        enum { N = 2000 };
        struct tmp t;
        struct watch *w;
        struct log l = {0};
        static unsigned char seen[N];
        size_t bytes = 0;
        int wd, n;

        tmp_make(&t);
        CHECK_EQ_INT(watch_open(&w), 0);
        CHECK_EQ_INT(watch_add_dir(w, t.root, &wd), 0);
        memset(seen, 0, sizeof(seen));
        for (int i = 0; i < N; i++) {
                char name[64], p[PATH_MAX];
                /* Names of 5 to 40 bytes: events of several padded sizes. */
                snprintf(name, sizeof(name), "%d-%.*s", i, i % 36,
                         "abcdefghijklmnopqrstuvwxyz0123456789");
                path_in(p, sizeof(p), t.root, name);
                bytes += sizeof(struct inotify_event) +
                         (strlen(name) + sizeof(struct inotify_event)) /
                             sizeof(struct inotify_event) * sizeof(struct inotify_event);
                int fd = open(p, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
                if (fd < 0)
                        abort();
                close(fd); /* read-only: no IN_CLOSE_WRITE, just IN_CREATE */
        }
        /* More than one buffer's worth: watch_read must loop. */
        CHECK(bytes > WATCH_BUF_SIZE);
        n = watch_read(w, on_event, &l);
        CHECK_EQ_INT(n, N);
        CHECK_EQ_INT(l.n, N);
        for (size_t i = 0; i < l.n; i++) {
                const struct seen *s = &l.ev[i];
                char *end;
                long k = strtol(s->name, &end, 10);
                CHECK(s->mask & IN_CREATE);
                CHECK_EQ_INT(s->wd, wd);
                if (k >= 0 && k < N && *end == '-') {
                        char expect[64];
                        snprintf(expect, sizeof(expect), "%ld-%.*s", k, (int)(k % 36),
                                 "abcdefghijklmnopqrstuvwxyz0123456789");
                        CHECK_EQ_STR(s->name, expect);
                        seen[k]++;
                } else {
                        CHECK(!"unexpected name");
                }
        }
        for (int i = 0; i < N; i++)
                if (seen[i] != 1) {
                        CHECK_EQ_INT(seen[i], 1);
                        fprintf(stderr, "  name %d\n", i);
                        break;
                }

        watch_close(w);
        log_free(&l);
        tmp_cleanup(&t);
}

/* Idle means no wake-up; an event means one. */
static void test_poll(void)
{
        struct tmp t;
        struct watch *w;
        struct log l = {0};
        char file[PATH_MAX];
        struct pollfd pfd;
        int wd;

        tmp_make(&t);
        CHECK_EQ_INT(watch_open(&w), 0);
        CHECK_EQ_INT(watch_add_dir(w, t.root, &wd), 0);
        pfd.fd = watch_fd(w);
        pfd.events = POLLIN;

        CHECK_EQ_INT(poll(&pfd, 1, 200), 0);

        path_in(file, sizeof(file), t.root, "bounces.csv");
        write_file(file, "type\r\n", 0);
        CHECK_EQ_INT(poll(&pfd, 1, 200), 1);
        CHECK(pfd.revents & POLLIN);
        CHECK(watch_read(w, on_event, &l) >= 1);

        /* Drained: quiet again. */
        CHECK_EQ_INT(poll(&pfd, 1, 200), 0);
        /* The descriptor is close-on-exec and non-blocking. */
        CHECK(fcntl(watch_fd(w), F_GETFD) & FD_CLOEXEC);
        CHECK(fcntl(watch_fd(w), F_GETFL) & O_NONBLOCK);

        watch_close(w);
        log_free(&l);
        tmp_cleanup(&t);
}

/* Append one inotify event to a hand-built buffer, its name padded with NULs
 * to a multiple of the header size as the kernel does. */
static size_t put_event(char *buf, size_t off, int wd, uint32_t mask, uint32_t cookie,
                        const char *name)
{
        struct inotify_event ie;
        size_t nlen = name ? strlen(name) : 0;
        size_t padded = 0;

        if (name)
                padded = (nlen + 1 + sizeof(ie) - 1) / sizeof(ie) * sizeof(ie);
        ie.wd = wd;
        ie.mask = mask;
        ie.cookie = cookie;
        ie.len = (uint32_t)padded;
        memcpy(buf + off, &ie, sizeof(ie));
        memset(buf + off + sizeof(ie), 0, padded);
        if (name)
                memcpy(buf + off + sizeof(ie), name, nlen);
        return off + sizeof(ie) + padded;
}

static void test_walk_crafted_buffer(void)
{
        struct tmp t;
        struct watch *w;
        struct log l = {0};
        static char storage[8192];
        char *buf = storage + 1; /* deliberately misaligned */
        char long_name[NAME_MAX + 1];
        size_t off = 0;
        int wd;

        tmp_make(&t);
        CHECK_EQ_INT(watch_open(&w), 0);
        CHECK_EQ_INT(watch_add_dir(w, t.root, &wd), 0);
        memset(long_name, 'z', NAME_MAX);
        long_name[NAME_MAX] = '\0';

        off = put_event(buf, off, wd, IN_CREATE, 0, "a");
        off = put_event(buf, off, -1, IN_Q_OVERFLOW, 0, NULL);
        off = put_event(buf, off, wd, IN_MODIFY, 0, "exactly15bytes_");
        off = put_event(buf, off, wd + 1000, IN_CREATE, 0, "unknown-wd"); /* dropped */
        off = put_event(buf, off, wd, IN_MOVED_FROM, 42, "sixteen-bytes-xx");
        off = put_event(buf, off, wd, IN_MOVED_TO, 42, long_name);
        off = put_event(buf, off, wd, IN_DELETE_SELF, 0, NULL);
        off = put_event(buf, off, wd, IN_IGNORED, 0, NULL);

        CHECK_EQ_INT(watch_walk_buffer(w, buf, off, on_event, &l), 7);
        CHECK_EQ_INT(l.n, 7);
        if (l.n == 7) {
                CHECK_EQ_STR(l.ev[0].name, "a");
                CHECK_EQ_INT(l.ev[0].kind, WATCH_EVENT_DIR);
                CHECK_EQ_STR(l.ev[0].dir, t.root);

                CHECK_EQ_INT(l.ev[1].kind, WATCH_EVENT_OVERFLOW);
                CHECK_EQ_INT(l.ev[1].wd, -1);
                CHECK(l.ev[1].mask & IN_Q_OVERFLOW);
                CHECK_EQ_STR(l.ev[1].name, "");
                CHECK(!l.ev[1].has_dir);

                CHECK_EQ_STR(l.ev[2].name, "exactly15bytes_");
                CHECK(l.ev[2].mask & IN_MODIFY);
                CHECK_EQ_STR(l.ev[3].name, "sixteen-bytes-xx");
                CHECK_EQ_INT(l.ev[3].cookie, 42);
                CHECK_EQ_STR(l.ev[4].name, long_name);
                CHECK_EQ_INT(l.ev[4].cookie, 42);
                CHECK(l.ev[5].mask & IN_DELETE_SELF);
                CHECK_EQ_STR(l.ev[5].name, "");
                CHECK(l.ev[6].mask & IN_IGNORED);
                CHECK_EQ_STR(l.ev[6].dir, t.root);
        }
        /* The crafted IN_IGNORED ended our bookkeeping for wd. */
        CHECK(watch_dir(w, wd) == NULL);

        /* A buffer holding only an overflow. */
        log_reset(&l);
        off = put_event(buf, 0, -1, IN_Q_OVERFLOW, 0, NULL);
        CHECK_EQ_INT(watch_walk_buffer(w, buf, off, on_event, &l), 1);
        CHECK_EQ_INT(l.n, 1);
        CHECK_EQ_INT(l.n ? (int)l.ev[0].kind : -1, WATCH_EVENT_OVERFLOW);

        /* Malformed buffers are refused, never over-read. The events before
         * the damage are delivered. */
        log_reset(&l);
        off = put_event(buf, 0, -1, IN_Q_OVERFLOW, 0, NULL);
        errno = 0;
        CHECK_EQ_INT(watch_walk_buffer(w, buf, off + 4, on_event, &l), -1);
        CHECK_EQ_INT(errno, EBADMSG);
        CHECK_EQ_INT(l.n, 1);
        CHECK(strstr(watch_error(w), "truncated") != NULL);

        log_reset(&l);
        off = put_event(buf, 0, -1, IN_Q_OVERFLOW, 0, "name-cut-short");
        errno = 0;
        CHECK_EQ_INT(watch_walk_buffer(w, buf, off - 1, on_event, &l), -1);
        CHECK_EQ_INT(errno, EBADMSG);
        CHECK_EQ_INT(l.n, 0);

        log_reset(&l);
        off = put_event(buf, 0, -1, IN_Q_OVERFLOW, 0, "0123456789abcde"); /* len 16 */
        buf[sizeof(struct inotify_event) + 15] = 'X';                     /* no NUL left */
        errno = 0;
        CHECK_EQ_INT(watch_walk_buffer(w, buf, off, on_event, &l), -1);
        CHECK_EQ_INT(errno, EBADMSG);
        CHECK_EQ_INT(l.n, 0);

        CHECK_EQ_INT(watch_walk_buffer(w, buf, 0, on_event, &l), 0);

        watch_close(w);
        log_free(&l);
        tmp_cleanup(&t);
}

/* A callback may remove the watch it is being told about. */
struct remover {
        struct watch *w;
        int calls;
};

static void remove_on_event(void *ctx, const struct watch_event *ev)
{
        struct remover *r = ctx;

        r->calls++;
        if (ev->wd >= 0)
                (void)watch_remove(r->w, ev->wd);
}

static void test_remove_from_callback(void)
{
        struct tmp t;
        struct remover r = {0};
        char file[PATH_MAX];
        int wd;

        tmp_make(&t);
        CHECK_EQ_INT(watch_open(&r.w), 0);
        CHECK_EQ_INT(watch_add_dir(r.w, t.root, &wd), 0);
        path_in(file, sizeof(file), t.root, "x.csv");
        write_file(file, "abc\n", 0); /* CREATE, MODIFY, CLOSE_WRITE */
        /* The first event removes the watch: the rest are dropped. */
        CHECK_EQ_INT(watch_read(r.w, remove_on_event, &r), 1);
        CHECK_EQ_INT(r.calls, 1);
        CHECK(watch_dir(r.w, wd) == NULL);
        watch_close(r.w);
        tmp_cleanup(&t);
}

int main(void)
{
        watch_close(NULL);
        RUN(test_create_modify_delete);
        RUN(test_rename_within_dir);
        RUN(test_rename_across_watched_dirs);
        RUN(test_rename_to_unwatched_dir);
        RUN(test_watched_dir_removed);
        RUN(test_watched_dir_moved);
        RUN(test_remove);
        RUN(test_add_errors);
        RUN(test_watch_limit_enospc);
        RUN(test_many_events);
        RUN(test_poll);
        RUN(test_walk_crafted_buffer);
        RUN(test_remove_from_callback);
        TEST_MAIN_END;
}
