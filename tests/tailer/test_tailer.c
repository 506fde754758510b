/* The tailer's queues on real files: rotation seen through a rescan (what an
 * inotify queue overflow leads to, since the kernel's queue size cannot be
 * lowered per process), restart after a rotation while stopped, the
 * acknowledgement rule, start_at = end and refused state. */
#include "tailer.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

TEST_MAIN_BEGIN

static char root[256], live[300], archive[300], state_dir[300];
static struct logger lg;

static void write_file(const char *path, const char *mode, const char *text)
{
        FILE *f = fopen(path, mode);
        CHECK(f != NULL);
        if (f) {
                fputs(text, f);
                fclose(f);
        }
}

static void setup(void)
{
        strcpy(root, "/tmp/pmtatail-tailer-XXXXXX");
        CHECK(mkdtemp(root) != NULL);
        snprintf(live, sizeof live, "%s/bounces.csv", root);
        snprintf(archive, sizeof archive, "%s/archive", root);
        snprintf(state_dir, sizeof state_dir, "%s/state", root);
        mkdir(archive, 0700);
}

static void teardown(void)
{
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        CHECK(system(cmd) == 0);
}

static struct tailer *open_tailer(bool at_end)
{
        struct tailer_source_cfg src = {
            .name = "bounces", .path = live, .archive_dir = archive, .start_at_end = at_end};
        struct tailer *t = NULL;
        char err[512] = "";
        CHECK_EQ_INT(tailer_open(&t, &src, 1, state_dir, 0, &lg, err, sizeof err), 0);
        if (!t)
                fprintf(stderr, "tailer_open: %s\n", err);
        return t;
}

/* Read the whole of f from `from`, as text. */
static const char *read_all(struct tfile *f, uint64_t from)
{
        static char buf[4096];
        ssize_t n = tailer_read(f, from, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = '\0';
        return buf;
}

static void test_rotation_by_rescan(void)
{
        setup();
        write_file(live, "w", "type,rcpt\r\nb,1\r\n");
        struct tailer *t = open_tailer(false);
        if (!t) {
                teardown();
                return;
        }
        struct tfile *f = tailer_head(t, 0);
        CHECK(f != NULL);
        CHECK_EQ_INT(tailer_file_start(f), 0);
        CHECK_EQ_STR(read_all(f, 0), "type,rcpt\r\nb,1\r\n");
        CHECK(!tailer_file_final(f));

        /* Rotate and write on, without reading any inotify event: as after
         * an overflow, only the rescan finds out. */
        char moved[400];
        snprintf(moved, sizeof moved, "%s/bounces-2026-01-01-0000.csv", archive);
        CHECK(rename(live, moved) == 0);
        write_file(moved, "a", "b,2\r\n"); /* the writer's old descriptor */
        write_file(live, "w", "type,rcpt\r\nb,3\r\n");
        tailer_rescan(t);

        /* The old file is still first: its tail before the new file. */
        CHECK(tailer_head(t, 0) == f);
        CHECK_EQ_STR(read_all(f, 16), "b,2\r\n");
        /* the new file has bytes: the writer moved on, but f stays open for
         * late writes until the grace period is over */
        CHECK(tailer_file_superseded(f));
        CHECK(!tailer_file_final(f));
        CHECK(tailer_next(f) != NULL);
        tailer_file_drained(f, 21);
        struct tfile *g = tailer_head(t, 0);
        CHECK(g != NULL && g != f);
        CHECK_EQ_STR(read_all(g, 0), "type,rcpt\r\nb,3\r\n");

        /* f is released only once acknowledged to its end */
        tailer_ack(f, tailer_file_gen(f), 21);
        tailer_ack(g, tailer_file_gen(g), 16);
        CHECK_EQ_INT(tailer_commit(t), 0);
        tailer_close(t);

        /* The offsets file remembers the archived name, finished. */
        char path[400];
        snprintf(path, sizeof path, "%s/offsets.json", state_dir);
        FILE *sf = fopen(path, "r");
        static char json[8192];
        size_t n = sf ? fread(json, 1, sizeof json - 1, sf) : 0;
        json[n] = '\0';
        if (sf)
                fclose(sf);
        CHECK(strstr(json, "bounces-2026-01-01-0000.csv") != NULL);
        CHECK(strstr(json, "\"finished\": true") != NULL);
        teardown();
}

static void test_restart_after_rotation_while_stopped(void)
{
        setup();
        write_file(live, "w", "type,rcpt\r\nb,1\r\nb,2\r\n");
        struct tailer *t = open_tailer(false);
        if (!t) {
                teardown();
                return;
        }
        struct tfile *f = tailer_head(t, 0);
        tailer_file_set_header(f, "type,rcpt", 9);
        tailer_ack(f, tailer_file_gen(f), 16); /* b,1 delivered, b,2 not */
        tailer_close(t);

        /* While stopped: the file is rotated, written on, and rotated again. */
        char a1[400], a2[400];
        snprintf(a1, sizeof a1, "%s/bounces-2026-01-01-0000.csv", archive);
        snprintf(a2, sizeof a2, "%s/bounces-2026-01-01-0100.csv", archive);
        CHECK(rename(live, a1) == 0);
        write_file(live, "w", "type,rcpt\r\nb,3\r\n");
        CHECK(rename(live, a2) == 0);
        write_file(live, "w", "type,rcpt\r\nb,4\r\n");

        t = open_tailer(false);
        if (!t) {
                teardown();
                return;
        }
        f = tailer_head(t, 0);
        CHECK(f && strcmp(tailer_file_path(f), a1) == 0);
        CHECK_EQ_INT(tailer_file_start(f), 16);
        size_t hl;
        const char *h = tailer_file_header(f, &hl);
        CHECK(h && hl == 9 && memcmp(h, "type,rcpt", 9) == 0);
        CHECK(tailer_file_final(f));
        tailer_file_drained(f, 21);
        tailer_ack(f, tailer_file_gen(f), 21);
        struct tfile *g = tailer_head(t, 0);
        CHECK(g && strcmp(tailer_file_path(g), a2) == 0);
        CHECK_EQ_INT(g ? tailer_file_start(g) : 99, 0);
        tailer_file_drained(g, 16);
        tailer_ack(g, tailer_file_gen(g), 16);
        struct tfile *l = tailer_head(t, 0);
        CHECK(l && strcmp(tailer_file_path(l), live) == 0);
        CHECK(l && !tailer_file_final(l));
        tailer_close(t);
        teardown();
}

/* The header saved is the one in force at the acknowledged offset, not a
 * later one already read. */
static void test_header_travels_with_offset(void)
{
        setup();
        write_file(live, "w", "type,rcpt\r\nb,1\r\nrcpt,type\r\n2,b\r\n");
        struct tailer *t = open_tailer(false);
        if (!t) {
                teardown();
                return;
        }
        struct tfile *f = tailer_head(t, 0);
        tailer_file_header_seen(f, 1, "type,rcpt", 9);
        tailer_file_header_seen(f, 2, "rcpt,type", 9);
        tailer_ack_header(f, tailer_file_gen(f), 16, 1); /* b,1: the first header */
        tailer_close(t);
        t = open_tailer(false);
        f = t ? tailer_head(t, 0) : NULL;
        size_t hl = 0;
        const char *h = f ? tailer_file_header(f, &hl) : NULL;
        CHECK(h && hl == 9 && memcmp(h, "type,rcpt", 9) == 0);
        if (f) {
                tailer_file_header_seen(f, 7, "rcpt,type", 9);
                tailer_ack_header(f, tailer_file_gen(f), 32, 7);
        }
        tailer_close(t);
        t = open_tailer(false);
        f = t ? tailer_head(t, 0) : NULL;
        h = f ? tailer_file_header(f, &hl) : NULL;
        CHECK(h && hl == 9 && memcmp(h, "rcpt,type", 9) == 0);
        CHECK_EQ_INT(f ? tailer_file_start(f) : 0, 32);
        tailer_close(t);
        teardown();
}

/* Rotated files wait in the queue without a descriptor, and an unknown
 * rotated file found at start is read whole. */
static void test_queued_files_hold_no_descriptor(void)
{
        setup();
        write_file(live, "w", "type,rcpt\r\nb,1\r\n");
        struct tailer *t = open_tailer(false);
        if (!t) {
                teardown();
                return;
        }
        tailer_close(t);
        for (int i = 0; i < 20; i++) {
                char p[400];
                snprintf(p, sizeof p, "%s/bounces-2026-01-01-%04d.csv", archive, i);
                write_file(p, "w", "type,rcpt\r\nb,2\r\n");
        }
        int before = open("/dev/null", O_RDONLY);
        close(before);
        t = open_tailer(false);
        int after = open("/dev/null", O_RDONLY);
        close(after);
        /* the live file, the state lock and directory, inotify: not 20 more */
        CHECK(after - before < 8);
        struct tfile *f = t ? tailer_head(t, 0) : NULL;
        CHECK(f && strstr(tailer_file_path(f), "/archive/bounces-") != NULL);
        CHECK_EQ_INT(f ? tailer_file_start(f) : 99, 0);
        tailer_close(t);
        teardown();
}

static void test_truncation_and_delete(void)
{
        setup();
        write_file(live, "w", "type,rcpt\r\nb,1\r\nb,2\r\n");
        struct tailer *t = open_tailer(false);
        if (!t) {
                teardown();
                return;
        }
        struct tfile *f = tailer_head(t, 0);
        uint32_t gen = tailer_file_gen(f);
        CHECK(!tailer_file_truncated(f, 21));
        CHECK(truncate(live, 0) == 0);
        write_file(live, "w", "type,rcpt\r\n");
        CHECK(tailer_file_truncated(f, 21));
        CHECK(tailer_file_gen(f) != gen);
        CHECK_EQ_INT(tailer_file_start(f), 0);
        /* an acknowledgement from before the truncation is stale */
        tailer_ack(f, gen, 21);
        tailer_ack(f, tailer_file_gen(f), 11);

        /* delete and re-create: the old one is read to its end first */
        CHECK(unlink(live) == 0);
        write_file(live, "w", "type,rcpt\r\nb,9\r\n");
        tailer_rescan(t);
        CHECK(tailer_head(t, 0) == f);
        CHECK(tailer_file_superseded(f));
        tailer_file_drained(f, 11);
        struct tfile *g = tailer_head(t, 0);
        CHECK(g && g != f);
        CHECK_EQ_STR(g ? read_all(g, 0) : "", "type,rcpt\r\nb,9\r\n");
        tailer_close(t);
        teardown();
}

static void test_start_at_end(void)
{
        setup();
        write_file(live, "w", "type,rcpt\r\nb,1\r\nb,2");
        struct tailer *t = open_tailer(true);
        if (!t) {
                teardown();
                return;
        }
        struct tfile *f = tailer_head(t, 0);
        /* the end of the last complete line, not the middle of a record */
        CHECK_EQ_INT(f ? tailer_file_start(f) : 0, 16);
        tailer_close(t);
        teardown();
}

static void test_refused_state(void)
{
        setup();
        mkdir(state_dir, 0700);
        char path[400];
        snprintf(path, sizeof path, "%s/offsets.json", state_dir);
        write_file(path, "w", "");
        struct tailer_source_cfg src = {.name = "bounces", .path = live};
        struct tailer *t = NULL;
        char err[1024] = "";
        CHECK_EQ_INT(tailer_open(&t, &src, 1, state_dir, 0, &lg, err, sizeof err), -1);
        CHECK(strstr(err, "offsets.json") != NULL);
        /* a second daemon on the same state directory */
        unlink(path);
        struct tailer *t1 = open_tailer(false);
        CHECK_EQ_INT(tailer_open(&t, &src, 1, state_dir, 0, &lg, err, sizeof err), -1);
        CHECK(strstr(err, "another pmtatail") != NULL);
        tailer_close(t1);
        teardown();
}

int main(void)
{
        log_init(&lg, stderr, LOG_WARN);
        RUN(test_rotation_by_rescan);
        RUN(test_restart_after_rotation_while_stopped);
        RUN(test_header_travels_with_offset);
        RUN(test_queued_files_hold_no_descriptor);
        RUN(test_truncation_and_delete);
        RUN(test_start_at_end);
        RUN(test_refused_state);
        TEST_MAIN_END;
}
