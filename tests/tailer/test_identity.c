/* tailer/identity: real files in a temporary directory. */
#include "test.h"
#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

TEST_MAIN_BEGIN

/* A PowerMTA-like header line of exactly 300 bytes, CRLF included. */
static char header[301];

static void make_header(void)
{
        static const char cols[] = "type,timeLogged,timeQueued,orig,rcpt,orcpt,dsnAction,"
                                   "dsnStatus,dsnDiag,dsnMta,bounceCat,srcType,srcMta,dlvType,"
                                   "dlvSourceIp,dlvDestinationIp,vmta,jobId,envId,queue,vmtaPool,"
                                   "header_x-sp-message-id,";
        size_t n = strlen(cols);
        size_t i;

        memcpy(header, cols, n);
        for (i = n; i < 298; i++)
                header[i] = 'x';
        header[298] = '\r';
        header[299] = '\n';
        header[300] = '\0';
}

struct tmp {
        char root[PATH_MAX];
};

static void tmp_make(struct tmp *t)
{
        const char *base = getenv("TMPDIR");

        snprintf(t->root, sizeof(t->root), "%s/pmtatail-ident-XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(t->root)) {
                perror("mkdtemp");
                abort();
        }
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

static void tmp_cleanup(struct tmp *t)
{
        /* Only ever our own mkdtemp directory. */
        if (strstr(t->root, "/pmtatail-ident-") == NULL)
                abort();
        nftw(t->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void path_in(char *out, size_t size, const char *dir, const char *name)
{
        int n = snprintf(out, size, "%s/%s", dir, name);

        if (n < 0 || (size_t)n >= size)
                abort();
}

static void append(const char *path, const char *data, size_t len)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

        if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
                perror(path);
                abort();
        }
        close(fd);
}

static void append_str(const char *path, const char *s)
{
        append(path, s, strlen(s));
}

static int open_ro(const char *path)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0) {
                perror(path);
                abort();
        }
        return fd;
}

static enum identity_match compare_path(const struct file_id *saved, const char *path)
{
        int fd = open_ro(path);
        enum identity_match m = identity_compare(saved, fd);

        close(fd);
        return m;
}

/* cp: the same bytes in a new inode, like move-to onto another filesystem. */
static void copy_file(const char *from, const char *to)
{
        char buf[4096];
        int in = open_ro(from);
        ssize_t n;

        while ((n = read(in, buf, sizeof(buf))) > 0)
                append(to, buf, (size_t)n);
        close(in);
}

/* Field by field: the struct has tail padding memcmp would read. */
static int id_eq(const struct file_id *a, const struct file_id *b)
{
        return a->dev == b->dev && a->ino == b->ino && a->fp == b->fp && a->fp_len == b->fp_len;
}

static const char rec1[] = "b,2024-01-05 13:00:01+0000,2024-01-05 12:59:58+0000,"
                           "bounce@example.com,alice@example.net\r\n";
static const char rec2[] = "b,2024-01-05 13:00:02+0000,2024-01-05 12:59:58+0000,"
                           "bounce@example.com,bob@example.org\r\n";

static void test_of_fd_and_path(void)
{
        struct tmp t;
        char p[PATH_MAX];
        struct file_id a, b;
        struct stat st;
        int fd;

        tmp_make(&t);
        path_in(p, sizeof(p), t.root, "bounces.csv");
        append_str(p, header);
        append_str(p, rec1);
        fd = open_ro(p);
        CHECK_EQ_INT(identity_of_fd(fd, &a), 0);
        CHECK_EQ_INT(lseek(fd, 0, SEEK_CUR), 0); /* pread: offset untouched */
        CHECK_EQ_INT(fstat(fd, &st), 0);
        CHECK(a.dev == (uint64_t)st.st_dev);
        CHECK(a.ino == (uint64_t)st.st_ino);
        CHECK_EQ_INT(a.fp_len, 300 + strlen(rec1));
        CHECK_EQ_INT(identity_of_path(p, &b), 0);
        CHECK(id_eq(&a, &b));
        close(fd);

        errno = 0;
        path_in(p, sizeof(p), t.root, "missing.csv");
        CHECK_EQ_INT(identity_of_path(p, &b), -1);
        CHECK_EQ_INT(errno, ENOENT);
        errno = 0;
        CHECK_EQ_INT(identity_compare(&a, -1), IDENTITY_ERROR);
        CHECK_EQ_INT(errno, EBADF);
        CHECK_EQ_STR(identity_match_name(IDENTITY_INODE_REUSED), "inode-reused");
        tmp_cleanup(&t);
}

static void test_same_after_append_and_rename(void)
{
        struct tmp t;
        char p[PATH_MAX], rotated[PATH_MAX];
        struct file_id id;

        tmp_make(&t);
        path_in(p, sizeof(p), t.root, "bounces.csv");
        path_in(rotated, sizeof(rotated), t.root, "bounces-2024-01-05-1300.csv");
        append_str(p, header);
        append_str(p, rec1);
        CHECK_EQ_INT(identity_of_path(p, &id), 0);

        append_str(p, rec2);
        CHECK_EQ_INT(compare_path(&id, p), IDENTITY_SAME);

        CHECK_EQ_INT(rename(p, rotated), 0);
        CHECK_EQ_INT(compare_path(&id, rotated), IDENTITY_SAME);
        tmp_cleanup(&t);
}

static void test_copy(void)
{
        struct tmp t;
        char p[PATH_MAX], copy[PATH_MAX], young[PATH_MAX], young_copy[PATH_MAX];
        struct file_id strong_id, header_id, partial_id;

        tmp_make(&t);
        path_in(p, sizeof(p), t.root, "bounces.csv");
        path_in(copy, sizeof(copy), t.root, "bounces-copy.csv");
        path_in(young, sizeof(young), t.root, "young.csv");
        path_in(young_copy, sizeof(young_copy), t.root, "young-copy.csv");

        /* Fingerprint past the header line: a copy is recognised. */
        append_str(p, header);
        append_str(p, rec1);
        CHECK_EQ_INT(identity_of_path(p, &strong_id), 0);
        copy_file(p, copy);
        CHECK_EQ_INT(compare_path(&strong_id, copy), IDENTITY_COPIED);
        /* The copy keeps growing at its new place: still the copy. */
        append_str(copy, rec2);
        CHECK_EQ_INT(compare_path(&strong_id, copy), IDENTITY_COPIED);

        /* Fingerprint of the header line alone (a file holding only the
         * header): every file of this configuration has those bytes, so it
         * proves nothing. */
        append_str(young, header);
        CHECK_EQ_INT(identity_of_path(young, &header_id), 0);
        CHECK_EQ_INT(header_id.fp_len, 300);
        copy_file(young, young_copy);
        CHECK_EQ_INT(compare_path(&header_id, young_copy), IDENTITY_DIFFERENT);
        CHECK_EQ_INT(compare_path(&header_id, copy), IDENTITY_DIFFERENT);

        /* The header plus one byte of the first record is just past the line:
         * the smallest strong fingerprint. */
        append_str(young, "b");
        CHECK_EQ_INT(identity_of_path(young, &partial_id), 0);
        CHECK_EQ_INT(partial_id.fp_len, 301);
        CHECK_EQ_INT(compare_path(&partial_id, copy), IDENTITY_COPIED);

        /* Part of a header line with no newline yet: weak as well. */
        {
                struct file_id part;
                char a[PATH_MAX], b[PATH_MAX];
                path_in(a, sizeof(a), t.root, "part.csv");
                path_in(b, sizeof(b), t.root, "part-copy.csv");
                append(a, header, 100);
                CHECK_EQ_INT(identity_of_path(a, &part), 0);
                copy_file(a, b);
                CHECK_EQ_INT(compare_path(&part, b), IDENTITY_DIFFERENT);
        }

        /* A copy that is shorter than the fingerprint is not the file. */
        {
                char s[PATH_MAX];
                path_in(s, sizeof(s), t.root, "short.csv");
                append(s, header, 300);
                CHECK_EQ_INT(compare_path(&strong_id, s), IDENTITY_DIFFERENT);
        }
        tmp_cleanup(&t);
}

/* Inode reuse, built deterministically: keep the saved identity of one file
 * and move its dev/ino onto another file with other content, as the kernel
 * does when it hands a deleted file's inode to a new file. */
static void test_inode_reused(void)
{
        struct tmp t;
        char old[PATH_MAX], fresh[PATH_MAX];
        struct file_id saved, now;

        tmp_make(&t);
        path_in(old, sizeof(old), t.root, "bounces.csv");
        path_in(fresh, sizeof(fresh), t.root, "bounces.csv.new");
        append_str(old, header);
        append_str(old, rec1);
        append_str(old, rec2);
        CHECK_EQ_INT(identity_of_path(old, &saved), 0);
        CHECK_EQ_INT(unlink(old), 0);

        append_str(fresh, header);
        append_str(fresh, rec2);
        append_str(fresh, rec1); /* same length, other order */
        CHECK_EQ_INT(identity_of_path(fresh, &now), 0);
        CHECK_EQ_INT(now.fp_len, saved.fp_len);
        saved.dev = now.dev;
        saved.ino = now.ino;
        CHECK_EQ_INT(compare_path(&saved, fresh), IDENTITY_INODE_REUSED);
        tmp_cleanup(&t);
}

/* An identity known by its inode alone ({dev, ino, 0, 0}: the file could
 * not be read when it was found) is the same file whatever it holds, and
 * grows into a real fingerprint; it is never the copy of anything. */
static void test_inode_only(void)
{
        struct tmp t;
        char p[PATH_MAX], copy[PATH_MAX];
        struct file_id full;

        tmp_make(&t);
        path_in(p, sizeof(p), t.root, "bounces.csv");
        path_in(copy, sizeof(copy), t.root, "bounces.csv.1");
        append_str(p, header);
        append_str(p, rec1);
        CHECK_EQ_INT(identity_of_path(p, &full), 0);
        struct file_id bare = {full.dev, full.ino, 0, 0};
        CHECK_EQ_INT(compare_path(&bare, p), IDENTITY_SAME);
        copy_file(p, copy);
        CHECK_EQ_INT(compare_path(&bare, copy), IDENTITY_DIFFERENT);
        int fd = open(p, O_RDONLY);
        CHECK(fd >= 0);
        CHECK_EQ_INT(identity_extend(&bare, fd), 1);
        close(fd);
        CHECK_EQ_INT(bare.fp_len, full.fp_len);
        CHECK(bare.fp == full.fp);
        tmp_cleanup(&t);
}

static void test_truncated(void)
{
        struct tmp t;
        char p[PATH_MAX];
        struct file_id id;

        tmp_make(&t);
        path_in(p, sizeof(p), t.root, "bounces.csv");
        append_str(p, header);
        append_str(p, rec1);
        CHECK_EQ_INT(identity_of_path(p, &id), 0);

        CHECK_EQ_INT(truncate(p, 0), 0);
        CHECK_EQ_INT(compare_path(&id, p), IDENTITY_TRUNCATED);
        /* Rewritten with a header but not yet as long: still truncated. */
        append_str(p, header);
        CHECK_EQ_INT(compare_path(&id, p), IDENTITY_TRUNCATED);
        /* Truncated to one byte short of the fingerprint. */
        append_str(p, rec1);
        CHECK_EQ_INT(compare_path(&id, p), IDENTITY_SAME);
        CHECK_EQ_INT(truncate(p, (off_t)id.fp_len - 1), 0);
        CHECK_EQ_INT(compare_path(&id, p), IDENTITY_TRUNCATED);
        tmp_cleanup(&t);
}

/* Every file starts with the same header: the fingerprint tells files apart
 * only once it covers records. */
static void test_same_header_different_records(void)
{
        struct tmp t;
        char a[PATH_MAX], b[PATH_MAX];
        struct file_id ia, ib;

        tmp_make(&t);
        path_in(a, sizeof(a), t.root, "a.csv");
        path_in(b, sizeof(b), t.root, "b.csv");
        append_str(a, header);
        append_str(b, header);
        CHECK_EQ_INT(identity_of_path(a, &ia), 0);
        CHECK_EQ_INT(identity_of_path(b, &ib), 0);
        CHECK(ia.fp == ib.fp); /* header only: indistinguishable by content */

        append_str(a, rec1);
        append_str(b, rec2);
        CHECK_EQ_INT(identity_of_path(a, &ia), 0);
        CHECK_EQ_INT(identity_of_path(b, &ib), 0);
        CHECK(ia.fp_len > 300);
        CHECK(ib.fp_len > 300);
        CHECK(ia.fp != ib.fp);
        CHECK_EQ_INT(compare_path(&ia, b), IDENTITY_DIFFERENT);
        CHECK_EQ_INT(compare_path(&ib, a), IDENTITY_DIFFERENT);
        tmp_cleanup(&t);
}

static void test_extend(void)
{
        struct tmp t;
        char p[PATH_MAX], other[PATH_MAX];
        struct file_id id, fresh, before;
        int fd, changes = 0;

        tmp_make(&t);
        path_in(p, sizeof(p), t.root, "bounces.csv");
        path_in(other, sizeof(other), t.root, "other.csv");
        append(p, "", 0);
        fd = open_ro(p);
        CHECK_EQ_INT(identity_of_fd(fd, &id), 0);
        CHECK_EQ_INT(id.fp_len, 0);
        CHECK_EQ_INT(identity_extend(&id, fd), 0); /* nothing new */

        append_str(p, header);
        CHECK_EQ_INT(identity_extend(&id, fd), 1);
        CHECK_EQ_INT(id.fp_len, 300);
        CHECK_EQ_INT(identity_extend(&id, fd), 0);

        /* Grows record by record, then stops at IDENTITY_FP_MAX. */
        while (id.fp_len < IDENTITY_FP_MAX) {
                uint32_t prev = id.fp_len;
                append_str(p, rec1);
                CHECK_EQ_INT(identity_extend(&id, fd), 1);
                CHECK(id.fp_len > prev);
                CHECK_EQ_INT(identity_of_fd(fd, &fresh), 0);
                CHECK(id_eq(&id, &fresh));
                CHECK_EQ_INT(compare_path(&id, p), IDENTITY_SAME);
                if (++changes > 20)
                        break;
        }
        CHECK_EQ_INT(id.fp_len, IDENTITY_FP_MAX);
        append_str(p, rec2);
        before = id;
        CHECK_EQ_INT(identity_extend(&id, fd), 0);
        CHECK(id_eq(&id, &before));
        close(fd);

        /* A file rewritten under the identity is not adopted: extend leaves it
         * alone and identity_compare tells what happened. */
        append_str(other, header);
        fd = open_ro(other);
        CHECK_EQ_INT(identity_of_fd(fd, &id), 0);
        close(fd);
        CHECK_EQ_INT(truncate(other, 0), 0);
        append_str(other, rec1);
        append_str(other, header);
        fd = open_ro(other);
        before = id;
        CHECK_EQ_INT(identity_extend(&id, fd), 0);
        CHECK(id_eq(&id, &before));
        CHECK_EQ_INT(identity_compare(&id, fd), IDENTITY_INODE_REUSED);
        close(fd);

        /* Nor is another file. */
        fd = open_ro(p);
        CHECK_EQ_INT(identity_extend(&id, fd), 0);
        CHECK(id_eq(&id, &before));
        close(fd);
        tmp_cleanup(&t);
}

/* A file longer than IDENTITY_FP_MAX is fingerprinted over its first
 * IDENTITY_FP_MAX bytes only: later bytes do not change the identity. */
static void test_long_file(void)
{
        struct tmp t;
        char p[PATH_MAX];
        struct file_id a, b;

        tmp_make(&t);
        path_in(p, sizeof(p), t.root, "bounces.csv");
        append_str(p, header);
        for (int i = 0; i < 20; i++)
                append_str(p, rec1);
        CHECK_EQ_INT(identity_of_path(p, &a), 0);
        CHECK_EQ_INT(a.fp_len, IDENTITY_FP_MAX);
        append_str(p, rec2);
        CHECK_EQ_INT(identity_of_path(p, &b), 0);
        CHECK(id_eq(&a, &b));
        tmp_cleanup(&t);
}

int main(void)
{
        make_header();
        RUN(test_of_fd_and_path);
        RUN(test_same_after_append_and_rename);
        RUN(test_copy);
        RUN(test_inode_reused);
        RUN(test_inode_only);
        RUN(test_truncated);
        RUN(test_same_header_different_records);
        RUN(test_extend);
        RUN(test_long_file);
        TEST_MAIN_END;
}
