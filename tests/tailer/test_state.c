/* The offset store on real files in a temp directory: round trips, the atomic
 * save and its failure, every kind of untrustworthy offsets.json, the lock,
 * read-only opening, pruning and the entry cap; the journal: saves of what
 * changed, a journal cut at every byte, a stale journal, the takeover of an
 * older offsets.json, a failed append. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "state.h"
#include "test.h"

TEST_MAIN_BEGIN

#define NOW ((time_t)1700000000)

static char root_dir[256]; /* the mkdtemp directory: every test works under it */
static int dir_seq;

/* A fresh, not yet existing, state directory path under root_dir. */
static void new_dir(char *out, size_t size)
{
        snprintf(out, size, "%s/state %d", root_dir, ++dir_seq);
}

static void join(char *out, size_t size, const char *dir, const char *name)
{
        snprintf(out, size, "%s/%s", dir, name);
}

static int write_file(const char *path, const char *data, size_t len)
{
        FILE *f = fopen(path, "wb");
        if (!f)
                return -1;
        size_t w = fwrite(data, 1, len, f);
        return fclose(f) == 0 && w == len ? 0 : -1;
}

/* Read a whole small file into a malloc'd NUL-terminated string. */
static char *read_file(const char *path, size_t *len)
{
        FILE *f = fopen(path, "rb");
        if (!f)
                return NULL;
        char *d = NULL;
        size_t n = 0, cap = 0;
        for (;;) {
                if (n + 4096 + 1 > cap) {
                        cap = cap ? cap * 2 : 8192;
                        char *nd = realloc(d, cap);
                        if (!nd) {
                                free(d);
                                fclose(f);
                                return NULL;
                        }
                        d = nd;
                }
                size_t r = fread(d + n, 1, 4096, f);
                n += r;
                if (r == 0)
                        break;
        }
        fclose(f);
        d[n] = '\0';
        if (len)
                *len = n;
        return d;
}

static bool exists(const char *path)
{
        struct stat st;
        return lstat(path, &st) == 0;
}

/* Write `text` as DIR/offsets.json, creating DIR. */
static void put_offsets(const char *dir, const char *text)
{
        char p[600];
        mkdir(dir, 0700);
        join(p, sizeof p, dir, STATE_FILE_NAME);
        CHECK(write_file(p, text, strlen(text)) == 0);
}

static struct state_entry sample(const char *source, const char *path, uint64_t dev, uint64_t ino)
{
        struct state_entry e = {
            .source = (char *)source,
            .path = (char *)path,
            .dev = dev,
            .ino = ino,
            .fp = 0x0123456789abcdefULL,
            .fp_len = 1024,
            .offset = 4096,
            .seen = NOW,
        };
        return e;
}

static bool same_entry(const struct state_entry *a, const struct state_entry *b)
{
        if (strcmp(a->source, b->source) || strcmp(a->path, b->path) || a->dev != b->dev ||
            a->ino != b->ino || a->fp != b->fp || a->fp_len != b->fp_len ||
            a->offset != b->offset || a->finished != b->finished || a->seen != b->seen)
                return false;
        if (!a->header || !b->header)
                return !a->header && !b->header;
        return a->header_len == b->header_len && !memcmp(a->header, b->header, a->header_len);
}

/* Every field of several entries survives save, close and open; the file is
 * valid JSON of version 1 with no temp file left. */
static void test_round_trip(void)
{
        char dir[512], p[600];
        new_dir(dir, sizeof dir);
        struct state_error err;
        struct state *s;
        CHECK_EQ_INT(state_open(&s, dir, 0, &err), 0);
        if (!s)
                return;
        CHECK_EQ_INT(err.notes, 0);
        CHECK_EQ_INT(state_count(s), 0);
        struct stat st;
        CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);

        static const char hdr1[] =
            "type,timeLogged,orig,rcpt,\"dsnDiag, quoted \"\"here\"\"\",bounceCat,"
            "caf\xc3\xa9,\xe2\x82\xac";
        static const char hdr_nul[] = "type,x\0y,\xff\xfe latin";
        struct state_entry t[4];
        t[0] = sample("bounces", "/var/log/pmta/with space/bounces.csv", 2049, 131074);
        t[0].header = (char *)hdr1;
        t[0].header_len = sizeof hdr1 - 1;
        t[1] = sample("fbl", "/var/log/pmta/fbl.csv", 2049, 131075);
        t[1].fp = 0;
        t[1].fp_len = 0;
        t[1].offset = 0;
        t[2] = sample("bounces", "/var/log/pmta/accounting/bounces/old \xff\xfe.csv", UINT64_MAX,
                      (uint64_t)INT64_MAX + 7);
        t[2].fp = UINT64_MAX;
        t[2].fp_len = 517;
        t[2].offset = (uint64_t)INT64_MAX;
        t[2].finished = true;
        t[2].header = (char *)hdr_nul;
        t[2].header_len = sizeof hdr_nul - 1;
        t[3] = sample("b-2.x_y", "/a", 0, 0);
        t[3].header = (char *)"";
        t[3].header_len = 0;
        t[3].seen = 0;
        for (int i = 0; i < 4; i++)
                CHECK(state_add(s, &t[i], &err) != NULL);
        CHECK_EQ_INT(state_save(s, &err), 0);
        CHECK_EQ_STR(err.msg, "");
        state_close(s);

        join(p, sizeof p, dir, STATE_FILE_NAME ".tmp");
        CHECK(!exists(p));
        join(p, sizeof p, dir, STATE_FILE_NAME);
        CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600);
        json_error_t je;
        json_t *doc = json_load_file(p, JSON_ALLOW_NUL, &je);
        CHECK(doc != NULL);
        CHECK_EQ_INT(json_integer_value(json_object_get(doc, "version")), 1);
        CHECK_EQ_INT(json_array_size(json_object_get(doc, "files")), 4);
        json_t *f0 = json_array_get(json_object_get(doc, "files"), 0);
        CHECK_EQ_STR(json_string_value(json_object_get(f0, "fp")), "0123456789abcdef");
        CHECK_EQ_STR(json_string_value(json_object_get(f0, "header")), hdr1);
        json_t *f2 = json_array_get(json_object_get(doc, "files"), 2);
        CHECK(json_object_get(f2, "path_hex") != NULL); /* not UTF-8 */
        CHECK_EQ_STR(json_string_value(json_object_get(f2, "ino")), "9223372036854775814");
        json_decref(doc);

        CHECK_EQ_INT(state_open(&s, dir, 0, &err), 0);
        if (!s)
                return;
        CHECK_EQ_INT(state_count(s), 4);
        for (size_t i = 0; i < 4 && i < state_count(s); i++)
                CHECK(same_entry(state_at(s, i), &t[i]));
        CHECK(state_at(s, 4) == NULL);
        struct state_entry *e = state_find_id(s, UINT64_MAX, (uint64_t)INT64_MAX + 7);
        CHECK(e == state_at(s, 2));
        CHECK(e && e->header[e->header_len] == '\0');
        CHECK(state_find_id(s, 2049, 1) == NULL);
        CHECK(state_find_path(s, "/var/log/pmta/fbl.csv", NULL) == state_at(s, 1));
        CHECK(state_find_path(s, "/nope", NULL) == NULL);
        CHECK_EQ_STR(state_file_path(s), p);
        state_close(s);
}

/* Changing entries in place, the setters' checks, removal and path lookup
 * over several entries sharing a path. */
static void test_edit(void)
{
        char dir[512];
        new_dir(dir, sizeof dir);
        struct state_error err;
        struct state *s;
        CHECK_EQ_INT(state_open(&s, dir, 0, &err), 0);
        if (!s)
                return;
        struct state_entry t = sample("bounces", "/l/bounces.csv", 1, 10);
        struct state_entry *a = state_add(s, &t, &err);
        t.ino = 11;
        struct state_entry *b = state_add(s, &t, &err);
        t.ino = 12;
        t.path = (char *)"/l/other.csv";
        struct state_entry *c = state_add(s, &t, &err);
        CHECK(a && b && c);
        if (!a || !b || !c) {
                state_close(s);
                return;
        }

        /* the same identity twice */
        t.ino = 10;
        CHECK(state_add(s, &t, &err) == NULL);
        CHECK_EQ_INT(err.kind, STATE_E_INVALID);
        CHECK_EQ_INT(err.errnum, EEXIST);
        CHECK(strstr(err.msg, "/l/bounces.csv") != NULL);
        CHECK_EQ_INT(state_set_id(s, c, 1, 11, &err), -1);
        CHECK_EQ_INT(err.errnum, EEXIST);
        CHECK_EQ_INT(state_set_id(s, c, 7, 12, &err), 0);
        CHECK(state_find_id(s, 7, 12) == c && state_find_id(s, 1, 12) == NULL);

        /* out of range */
        t.ino = 99;
        t.fp_len = STATE_FP_MAX + 1;
        CHECK(state_add(s, &t, &err) == NULL);
        CHECK_EQ_INT(err.kind, STATE_E_INVALID);
        t.fp_len = 0;
        static char longpath[STATE_PATH_MAX + 2];
        memset(longpath, 'x', STATE_PATH_MAX + 1);
        longpath[0] = '/';
        t.path = longpath;
        CHECK(state_add(s, &t, &err) == NULL);
        CHECK_EQ_INT(err.kind, STATE_E_LIMIT);
        CHECK_EQ_INT(state_set_path(s, a, longpath, &err), -1);
        CHECK_EQ_STR(a->path, "/l/bounces.csv");
        longpath[STATE_PATH_MAX] = '\0'; /* exactly the limit is fine */
        t.path = longpath;
        CHECK(state_add(s, &t, &err) != NULL);
        CHECK_EQ_INT(state_count(s), 4);
        CHECK_EQ_INT(state_set_header(s, a, "x", STATE_HEADER_MAX + 1, &err), -1);
        CHECK_EQ_INT(err.kind, STATE_E_LIMIT);
        CHECK(a->header == NULL);

        /* several entries on one path, in order */
        CHECK(state_find_path(s, "/l/bounces.csv", NULL) == a);
        CHECK(state_find_path(s, "/l/bounces.csv", a) == b);
        CHECK(state_find_path(s, "/l/bounces.csv", b) == NULL);
        CHECK_EQ_INT(state_set_path(s, a, "/l/archive/bounces-1.csv", &err), 0);
        CHECK(state_find_path(s, "/l/bounces.csv", NULL) == b);
        CHECK_EQ_INT(state_set_header(s, b, "h,i", 3, &err), 0);
        CHECK_EQ_INT(state_set_header(s, b, "type,x", 6, &err), 0);
        CHECK_EQ_STR(b->header, "type,x");
        CHECK_EQ_INT(b->header_len, 6);
        state_mark_finished(a, 777, NOW + 5);
        CHECK(a->finished && a->offset == 777 && a->seen == NOW + 5);

        /* a field written directly out of range: save refuses and says which */
        b->fp_len = 5000;
        CHECK_EQ_INT(state_save(s, &err), -1);
        CHECK_EQ_INT(err.kind, STATE_E_INVALID);
        CHECK(strstr(err.msg, "fp_len") != NULL);
        CHECK(strstr(err.msg, "/l/bounces.csv") != NULL);
        b->fp_len = 5;
        b->offset = 123;

        state_remove(s, c);
        CHECK_EQ_INT(state_count(s), 3);
        CHECK(state_at(s, 0) == a && state_at(s, 1) == b);
        CHECK(state_find_id(s, 7, 12) == NULL);
        CHECK_EQ_INT(state_save(s, &err), 0);
        state_close(s);

        CHECK_EQ_INT(state_open(&s, dir, 0, &err), 0);
        if (!s)
                return;
        CHECK_EQ_INT(state_count(s), 3);
        struct state_entry *e = state_find_id(s, 1, 10);
        CHECK(e && e->finished && e->offset == 777 && !strcmp(e->path, "/l/archive/bounces-1.csv"));
        e = state_find_id(s, 1, 11);
        CHECK(e && e->offset == 123 && e->fp_len == 5 && e->header && !strcmp(e->header, "type,x"));
        CHECK(state_find_path(s, longpath, NULL) != NULL);
        state_close(s);
}

/* A temp file left by an interrupted save is reported, removed, and the
 * last complete save is what loads. */
static void test_leftover_temp(void)
{
        char dir[512], tmp[600];
        new_dir(dir, sizeof dir);
        struct state_error err;
        struct state *s;
        CHECK_EQ_INT(state_open(&s, dir, 0, &err), 0);
        if (!s)
                return;
        struct state_entry t = sample("bounces", "/l/bounces.csv", 3, 30);
        t.offset = 5555;
        CHECK(state_add(s, &t, &err) != NULL);
        CHECK_EQ_INT(state_save(s, &err), 0);
        state_close(s);

        join(tmp, sizeof tmp, dir, STATE_FILE_NAME ".tmp");
        CHECK(write_file(tmp, "{\"version\": 1, \"files\": [{\"sou", 30) == 0);
        CHECK_EQ_INT(state_open(&s, dir, 0, &err), 0);
        if (!s)
                return;
        CHECK(err.notes & STATE_NOTE_TEMP_REMOVED);
        CHECK(strstr(err.note, "offsets.json.tmp") != NULL);
        CHECK(strstr(err.note, "interrupted") != NULL);
        CHECK(!exists(tmp));
        CHECK_EQ_INT(state_count(s), 1);
        struct state_entry *e = state_find_id(s, 3, 30);
        CHECK(e && e->offset == 5555);
        state_close(s);

        /* the next open has nothing to say */
        CHECK_EQ_INT(state_open(&s, dir, 0, &err), 0);
        CHECK_EQ_INT(err.notes, 0);
        CHECK_EQ_STR(err.note, "");
        state_close(s);

        /* a temp file and no offsets.json: the first save was interrupted */
        char dir2[512];
        new_dir(dir2, sizeof dir2);
        mkdir(dir2, 0700);
        join(tmp, sizeof tmp, dir2, STATE_FILE_NAME ".tmp");
        CHECK(write_file(tmp, "", 0) == 0);
        CHECK_EQ_INT(state_open(&s, dir2, 0, &err), 0);
        CHECK(err.notes & STATE_NOTE_TEMP_REMOVED);
        CHECK(!exists(tmp));
        CHECK(s && state_count(s) == 0);
        state_close(s);
}

/* Each untrustworthy offsets.json is refused with the file named and the
 * reason, and left where it is. */
static void test_refused(void)
{
        static const struct {
                const char *text;
                const char *want; /* in the message, after the path */
        } cases[] = {
            {"", "empty"},
            {"{\n \"version\": 1,\n \"files\": [\n  {\"source\": \"b\",, }\n ]\n}\n", "line 4"},
            {"{\"version\": 1, \"files\": []", "line 1"},
            {"{\"version\": 1, \"files\": []}{}", "invalid JSON"},
            {"[]", "not a JSON object"},
            {"{\"files\": []}", "missing \"version\""},
            {"{\"version\": \"1\", \"files\": []}", "\"version\" is not an integer"},
            {"{\"version\": 2, \"files\": []}", "version 2 is not supported"},
            {"{\"version\": 1}", "missing \"files\""},
            {"{\"version\": 1, \"files\": {}}", "\"files\" is not an array"},
            {"{\"version\": 1, \"files\": [], \"extra\": 0}", "unknown key \"extra\""},
            {"{\"version\": 1, \"version\": 1, \"files\": []}", "duplicate"},
            {"{\"version\": 1, \"files\": [7]}", "files[0]: not an object"},
#define OK_ENTRY                                                                                   \
        "{\"source\":\"b\",\"path\":\"/p\",\"dev\":1,\"ino\":2,\"fp\":\"00000000000000ff\","       \
        "\"fp_len\":3,\"offset\":4,\"finished\":false,\"seen\":5}"
            {"{\"version\": 1, \"files\": [" OK_ENTRY ", {\"path\":\"/p\"}]}",
             "files[1]: missing \"source\""},
            {"{\"version\": 1, \"files\": [" OK_ENTRY "," OK_ENTRY "]}", "files[1]: dev 1 ino 2"},
            {"{\"version\":1,\"files\":[{\"source\":\"b\",\"path\":\"/p\",\"dev\":1,\"ino\":2,"
             "\"fp\":\"00000000000000ff\",\"fp_len\":3,\"offset\":\"4x\",\"finished\":false,"
             "\"seen\":5}]}",
             "files[0]: \"offset\""},
            {"{\"version\":1,\"files\":[{\"source\":\"b\",\"path\":\"/p\",\"dev\":1,\"ino\":2,"
             "\"fp\":\"00000000000000ff\",\"fp_len\":3,\"offset\":-4,\"finished\":false,"
             "\"seen\":5}]}",
             "files[0]: \"offset\""},
            {"{\"version\":1,\"files\":[{\"source\":\"b\",\"path\":\"/p\",\"dev\":1,\"ino\":2,"
             "\"fp\":\"00000000000000ff\",\"fp_len\":1025,\"offset\":4,\"finished\":false,"
             "\"seen\":5}]}",
             "files[0]: \"fp_len\""},
            {"{\"version\":1,\"files\":[{\"source\":\"b\",\"path\":\"/p\",\"dev\":1,\"ino\":2,"
             "\"fp\":\"00000000000000fg\",\"fp_len\":3,\"offset\":4,\"finished\":false,"
             "\"seen\":5}]}",
             "files[0]: \"fp\""},
            {"{\"version\":1,\"files\":[{\"source\":\"b\",\"path\":\"/p\",\"dev\":1,\"ino\":2,"
             "\"fp\":\"00000000000000ff\",\"fp_len\":3,\"offset\":4,\"finished\":1,"
             "\"seen\":5}]}",
             "files[0]: \"finished\""},
            {"{\"version\":1,\"files\":[{\"source\":\"b\",\"path\":\"/p\",\"dev\":1,\"ino\":2,"
             "\"fp\":\"00000000000000ff\",\"fp_len\":3,\"offset\":4,\"finished\":false}]}",
             "files[0]: missing \"seen\""},
            {"{\"version\":1,\"files\":[{\"source\":\"b\",\"path\":\"/p\",\"path_hex\":\"2f\","
             "\"dev\":1,\"ino\":2,\"fp\":\"00000000000000ff\",\"fp_len\":3,\"offset\":4,"
             "\"finished\":false,\"seen\":5}]}",
             "both \"path\" and \"path_hex\""},
            {"{\"version\":1,\"files\":[{\"source\":\"b\",\"path\":\"/p\\u0000x\",\"dev\":1,"
             "\"ino\":2,\"fp\":\"00000000000000ff\",\"fp_len\":3,\"offset\":4,"
             "\"finished\":false,\"seen\":5}]}",
             "NUL"},
            {"{\"version\":1,\"files\":[{\"source\":\"b\",\"path\":\"/p\",\"header_hex\":\"abc\","
             "\"dev\":1,\"ino\":2,\"fp\":\"00000000000000ff\",\"fp_len\":3,\"offset\":4,"
             "\"finished\":false,\"seen\":5}]}",
             "odd number"},
            {"{\"version\":1,\"files\":[{\"source\":\"b\",\"path\":\"/p\",\"dev\":1,\"ino\":2,"
             "\"fp\":\"00000000000000ff\",\"fp_len\":3,\"offset\":4,\"finished\":false,"
             "\"seen\":5,\"color\":\"red\"}]}",
             "files[0]: unknown key \"color\""},
            {"{\"version\":1,\"files\":[{\"source\":\"b\",\"path\":\"/p\",\"dev\":1,\"ino\":2,"
             "\"fp\":\"00000000000000ff\",\"fp_len\":3,\"offset\":4,\"finished\":false,"
             "\"seen\":5,\"header\":null}]}",
             "files[0]: \"header\" is not a string"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                char dir[512], p[600];
                new_dir(dir, sizeof dir);
                put_offsets(dir, cases[i].text);
                join(p, sizeof p, dir, STATE_FILE_NAME);
                struct state_error err;
                struct state *s = (struct state *)&err; /* must become NULL */
                int rc = state_open(&s, dir, 0, &err);
                CHECK_EQ_INT(rc, -1);
                CHECK(s == NULL);
                CHECK_EQ_INT(err.kind, STATE_E_CORRUPT);
                CHECK_EQ_INT(errno, EBADMSG);
                CHECK(strncmp(err.msg, p, strlen(p)) == 0);
                if (!strstr(err.msg, cases[i].want)) {
                        CHECK(!"message");
                        fprintf(stderr, "  case %zu: %s\n  wanted: %s\n", i, err.msg,
                                cases[i].want);
                }
                /* untouched, and refused again */
                size_t len;
                char *now = read_file(p, &len);
                CHECK(now && len == strlen(cases[i].text) && !memcmp(now, cases[i].text, len));
                free(now);
                CHECK_EQ_INT(state_open(&s, dir, 0, NULL), -1);
                CHECK_EQ_INT(state_open(&s, dir, STATE_OPEN_READONLY, &err), -1);
                CHECK_EQ_INT(err.kind, STATE_E_CORRUPT);
        }

        /* A corrupt file can be a directory too. */
        char dir[512], p[600];
        new_dir(dir, sizeof dir);
        mkdir(dir, 0700);
        join(p, sizeof p, dir, STATE_FILE_NAME);
        mkdir(p, 0700);
        struct state_error err;
        struct state *s;
        CHECK_EQ_INT(state_open(&s, dir, 0, &err), -1);
        CHECK_EQ_INT(err.kind, STATE_E_CORRUPT);
        CHECK(strstr(err.msg, "not a regular file") != NULL);
}

/* Only the explicit flag moves an untrusted file aside, and the table
 * starts empty then. */
static void test_reset_corrupt(void)
{
        char dir[512], p[600];
        new_dir(dir, sizeof dir);
        static const char bad[] = "{\"version\": 1, \"files\": [tru";
        put_offsets(dir, bad);
        struct state_error err;
        struct state *s;
        CHECK_EQ_INT(state_open(&s, dir, 0, &err), -1);
        CHECK_EQ_INT(state_open(&s, dir, STATE_OPEN_READONLY | STATE_OPEN_RESET_CORRUPT, &err), -1);
        CHECK_EQ_INT(err.kind, STATE_E_INVALID);

        /* and a leftover temp file at the same time: both are said */
        join(p, sizeof p, dir, STATE_FILE_NAME ".tmp");
        CHECK(write_file(p, "x", 1) == 0);
        CHECK_EQ_INT(state_open(&s, dir, STATE_OPEN_RESET_CORRUPT, &err), 0);
        if (!s)
                return;
        CHECK_EQ_INT(err.kind, STATE_E_NONE);
        CHECK(err.notes & STATE_NOTE_RESET_CORRUPT);
        CHECK(err.notes & STATE_NOTE_TEMP_REMOVED);
        CHECK(strstr(err.note, "offsets.json.corrupt-") != NULL);
        CHECK(strstr(err.note, "invalid JSON") != NULL);
        CHECK_EQ_INT(state_count(s), 0);
        join(p, sizeof p, dir, STATE_FILE_NAME);
        CHECK(!exists(p));
        const char *moved = strstr(err.note, "offsets.json.corrupt-");
        char name[64];
        CHECK(moved && sscanf(moved, "%63[a-z.0-9-]", name) == 1);
        join(p, sizeof p, dir, name);
        char *kept = read_file(p, NULL);
        CHECK(kept && !strcmp(kept, bad));
        free(kept);

        struct state_entry t = sample("bounces", "/l/b.csv", 1, 2);
        CHECK(state_add(s, &t, &err) != NULL);
        CHECK_EQ_INT(state_save(s, &err), 0);
        state_close(s);

        /* on a good file the flag changes nothing */
        CHECK_EQ_INT(state_open(&s, dir, STATE_OPEN_RESET_CORRUPT, &err), 0);
        CHECK_EQ_INT(err.notes, 0);
        CHECK(s && state_count(s) == 1);
        state_close(s);

        /* twice in the same second: a second name, the first kept */
        put_offsets(dir, "");
        CHECK_EQ_INT(state_open(&s, dir, STATE_OPEN_RESET_CORRUPT, &err), 0);
        state_close(s);
        put_offsets(dir, "nope");
        CHECK_EQ_INT(state_open(&s, dir, STATE_OPEN_RESET_CORRUPT, &err), 0);
        CHECK(err.notes & STATE_NOTE_RESET_CORRUPT);
        state_close(s);
        kept = read_file(p, NULL);
        CHECK(kept && !strcmp(kept, bad));
        free(kept);
}

/* One writer per directory; read-only openers do not need the lock. */
static void test_lock(void)
{
        char dir[512];
        new_dir(dir, sizeof dir);
        struct state_error err;
        struct state *a, *b;
        CHECK_EQ_INT(state_open(&a, dir, 0, &err), 0);
        if (!a)
                return;
        struct state_entry t = sample("bounces", "/l/b.csv", 1, 2);
        CHECK(state_add(a, &t, &err) != NULL);
        CHECK_EQ_INT(state_save(a, &err), 0);

        CHECK_EQ_INT(state_open(&b, dir, 0, &err), -1);
        CHECK(b == NULL);
        CHECK_EQ_INT(err.kind, STATE_E_LOCKED);
        CHECK(strstr(err.msg, "another pmtatail holds") != NULL);
        CHECK(strstr(err.msg, dir) != NULL);
        char pid[32];
        snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
        CHECK(strstr(err.msg, pid) != NULL);

        /* status while the daemon runs: sees the saved table */
        CHECK_EQ_INT(state_open(&b, dir, STATE_OPEN_READONLY, &err), 0);
        CHECK(b && state_count(b) == 1 && state_find_id(b, 1, 2) != NULL);
        if (b) {
                CHECK_EQ_INT(state_save(b, &err), -1);
                CHECK_EQ_INT(err.kind, STATE_E_INVALID);
                CHECK(strstr(err.msg, "read-only") != NULL);
        }
        state_close(b);

        state_close(a);
        CHECK_EQ_INT(state_open(&b, dir, 0, &err), 0);
        CHECK(b && state_count(b) == 1);
        state_close(b);
}

/* Read-only opening creates and removes nothing. */
static void test_readonly(void)
{
        char dir[512], p[600];
        new_dir(dir, sizeof dir);
        struct state_error err;
        struct state *s;
        CHECK_EQ_INT(state_open(&s, dir, STATE_OPEN_READONLY, &err), 0);
        CHECK(s && state_count(s) == 0);
        state_close(s);
        CHECK(!exists(dir));

        mkdir(dir, 0700);
        join(p, sizeof p, dir, STATE_FILE_NAME ".tmp");
        CHECK(write_file(p, "x", 1) == 0);
        CHECK_EQ_INT(state_open(&s, dir, STATE_OPEN_READONLY, &err), 0);
        CHECK_EQ_INT(err.notes, 0);
        CHECK(exists(p));
        state_close(s);
        join(p, sizeof p, dir, STATE_LOCK_NAME);
        CHECK(!exists(p));
}

/* The i-th entry's path, or NULL when there is none (a failed check, not a
 * crash). */
static const char *path_at(struct state *s, size_t i)
{
        struct state_entry *e = state_at(s, i);
        return e ? e->path : NULL;
}

struct gone {
        const char *path; /* the one file that no longer exists */
        int calls;
};

static bool still_exists(const struct state_entry *e, void *ctx)
{
        struct gone *g = ctx;
        g->calls++;
        return strcmp(e->path, g->path) != 0;
}

static void test_prune(void)
{
        char dir[512];
        new_dir(dir, sizeof dir);
        struct state_error err;
        struct state *s;
        CHECK_EQ_INT(state_open(&s, dir, 0, &err), 0);
        if (!s)
                return;
        struct state_entry t = sample("b", "/l/old-finished", 1, 1);
        t.finished = true;
        t.seen = NOW - 1001;
        CHECK(state_add(s, &t, &err) != NULL);
        t = sample("b", "/l/edge-finished", 1, 2); /* exactly at the window: kept */
        t.finished = true;
        t.seen = NOW - 1000;
        CHECK(state_add(s, &t, &err) != NULL);
        t = sample("b", "/l/old-unfinished", 1, 3);
        t.seen = NOW - 50000;
        CHECK(state_add(s, &t, &err) != NULL);
        t = sample("b", "/l/gone-finished", 1, 4);
        t.finished = true;
        CHECK(state_add(s, &t, &err) != NULL);
        t = sample("b", "/l/gone-unfinished", 1, 5);
        CHECK(state_add(s, &t, &err) != NULL);
        t = sample("b", "/l/live", 1, 6);
        CHECK(state_add(s, &t, &err) != NULL);

        /* age alone */
        CHECK_EQ_INT(state_prune(s, NOW, 1000, NULL, NULL), 1);
        CHECK_EQ_INT(state_count(s), 5);
        CHECK(state_find_id(s, 1, 1) == NULL);
        CHECK(state_find_id(s, 1, 2) != NULL);
        CHECK(state_find_id(s, 1, 3) != NULL);

        /* existence alone: only finished entries are even asked about */
        struct gone g = {.path = "/l/gone-finished"};
        CHECK_EQ_INT(state_prune(s, NOW, -1, still_exists, &g), 1);
        CHECK_EQ_INT(g.calls, 2);
        CHECK(state_find_id(s, 1, 4) == NULL);
        g.path = "/l/gone-unfinished";
        CHECK_EQ_INT(state_prune(s, NOW, -1, still_exists, &g), 0);
        CHECK(state_find_id(s, 1, 5) != NULL);

        /* both rules; order of the rest kept */
        g.path = "/nothing";
        CHECK_EQ_INT(state_prune(s, NOW + 1, 1000, still_exists, &g), 1);
        CHECK_EQ_INT(state_count(s), 3);
        CHECK_EQ_STR(path_at(s, 0), "/l/old-unfinished");
        CHECK_EQ_STR(path_at(s, 1), "/l/gone-unfinished");
        CHECK_EQ_STR(path_at(s, 2), "/l/live");
        CHECK_EQ_INT(state_save(s, &err), 0);
        state_close(s);
}

/* A snapshot save that fails leaves the previous offsets.json exactly as it
 * was and says so; the next save after the cause is gone works. (The first
 * save after an open writes a snapshot; a reopen brings one back.) */
static void test_save_failure(void)
{
        char dir[512], p[600], tmp[600];
        new_dir(dir, sizeof dir);
        struct state_error err;
        struct state *s;
        CHECK_EQ_INT(state_open(&s, dir, 0, &err), 0);
        if (!s)
                return;
        struct state_entry t = sample("bounces", "/l/b.csv", 1, 2);
        t.offset = 1000;
        struct state_entry *e = state_add(s, &t, &err);
        CHECK(e != NULL);
        CHECK_EQ_INT(state_save(s, &err), 0);
        join(p, sizeof p, dir, STATE_FILE_NAME);
        size_t before_len;
        char *before = read_file(p, &before_len);
        CHECK(before != NULL);
        state_close(s);
        CHECK_EQ_INT(state_open(&s, dir, 0, &err), 0);
        if (!s)
                return;
        e = state_find_id(s, 1, 2);

        /* the temp file cannot be created */
        join(tmp, sizeof tmp, dir, STATE_FILE_NAME ".tmp");
        CHECK(mkdir(tmp, 0700) == 0);
        if (e)
                e->offset = 2000;
        CHECK_EQ_INT(state_save(s, &err), -1);
        CHECK_EQ_INT(err.kind, STATE_E_IO);
        CHECK_EQ_INT(err.errnum, EISDIR);
        CHECK(strstr(err.msg, tmp) != NULL);
        CHECK(strstr(err.msg, "Is a directory") != NULL);
        CHECK(strstr(err.msg, "offsets.json is unchanged") != NULL);
        size_t after_len;
        char *after = read_file(p, &after_len);
        CHECK(before && after && before_len == after_len && !memcmp(before, after, after_len));
        free(after);

        /* the rename cannot replace offsets.json (a non-empty directory
         * there): the temp file is cleaned up */
        CHECK(rmdir(tmp) == 0);
        char moved[700], inside[800];
        snprintf(moved, sizeof moved, "%s.real", p);
        CHECK(rename(p, moved) == 0);
        CHECK(mkdir(p, 0700) == 0);
        snprintf(inside, sizeof inside, "%s/x", p);
        CHECK(write_file(inside, "x", 1) == 0);
        CHECK_EQ_INT(state_save(s, &err), -1);
        CHECK_EQ_INT(err.kind, STATE_E_IO);
        CHECK(strstr(err.msg, "rename") != NULL);
        CHECK(!exists(tmp));
        unlink(inside);
        rmdir(p);
        CHECK(rename(moved, p) == 0);

        CHECK_EQ_INT(state_save(s, &err), 0);
        state_close(s);
        CHECK_EQ_INT(state_open(&s, dir, 0, &err), 0);
        e = s ? state_find_id(s, 1, 2) : NULL;
        CHECK(e && e->offset == 2000);
        state_close(s);
        free(before);
}

/* ---- the journal ---- */

/* A copy of DIR's offsets.json and offsets.journal in a new directory: what
 * a kill -9 at this moment would leave. The journal is cut to `jlen` bytes
 * (SIZE_MAX: whole). */
static void crash_image(const char *dir, char *out, size_t size, size_t jlen)
{
        new_dir(out, size);
        CHECK(mkdir(out, 0700) == 0);
        const char *names[] = {STATE_FILE_NAME, STATE_JOURNAL_NAME};
        for (int i = 0; i < 2; i++) {
                char from[600], to[600];
                join(from, sizeof from, dir, names[i]);
                join(to, sizeof to, out, names[i]);
                size_t n;
                char *d = read_file(from, &n);
                if (!d)
                        continue;
                if (i == 1 && jlen < n)
                        n = jlen;
                CHECK(write_file(to, d, n) == 0);
                free(d);
        }
}

/* The offset of (dev 1, ino 2) as a read-only open of `dir` finds it; -1
 * when not there, -2 when the open fails. */
static long long offset_in(const char *dir)
{
        struct state *s;
        struct state_error err;
        if (state_open(&s, dir, STATE_OPEN_READONLY, &err) < 0)
                return -2;
        struct state_entry *e = state_find_id(s, 1, 2);
        long long off = e ? (long long)e->offset : -1;
        state_close(s);
        return off;
}

static size_t file_size(const char *dir, const char *name)
{
        char p[600];
        join(p, sizeof p, dir, name);
        struct stat st;
        return stat(p, &st) == 0 ? (size_t)st.st_size : 0;
}

/* A save appends what changed to the journal and leaves the snapshot alone;
 * a read-only open sees snapshot and journal together; a clean close folds
 * the journal into offsets.json (an older pmtatail reads it whole). */
static void test_journal_appends(void)
{
        char dir[512], p[600];
        new_dir(dir, sizeof dir);
        struct state_error err;
        struct state *s;
        CHECK_EQ_INT(state_open(&s, dir, 0, &err), 0);
        if (!s)
                return;
        static const char hdr[] = "type,timeLogged,orig,rcpt,dsnStatus,dsnDiag";
        struct state_entry *live = NULL;
        for (uint64_t i = 0; i < 200; i++) {
                char path[64];
                snprintf(path, sizeof path, "/l/b-%03u.csv", (unsigned)i);
                struct state_entry t = sample("bounces", path, 1, 2 + i);
                t.finished = i > 0;
                t.header = (char *)hdr;
                t.header_len = sizeof hdr - 1;
                struct state_entry *e = state_add(s, &t, &err);
                if (i == 0)
                        live = e;
        }
        CHECK(live != NULL);
        CHECK_EQ_INT(state_save(s, &err), 0);
        join(p, sizeof p, dir, STATE_FILE_NAME);
        size_t snap_len;
        char *snap = read_file(p, &snap_len);
        size_t j0 = file_size(dir, STATE_JOURNAL_NAME);
        CHECK(j0 > 0);
        for (int k = 1; live && k <= 50; k++) {
                live->offset = 4096 + 100 * (uint64_t)k;
                CHECK_EQ_INT(state_save(s, &err), 0);
        }
        size_t snap2_len;
        char *snap2 = read_file(p, &snap2_len);
        CHECK(snap && snap2 && snap_len == snap2_len && !memcmp(snap, snap2, snap_len));
        size_t j1 = file_size(dir, STATE_JOURNAL_NAME);
        /* 50 saves of one entry: far less than one snapshot each */
        CHECK(j1 > j0 && (j1 - j0) / 50 < snap_len / 20);
        /* nothing changed: nothing written */
        CHECK_EQ_INT(state_save(s, &err), 0);
        CHECK_EQ_INT(file_size(dir, STATE_JOURNAL_NAME), j1);
        CHECK_EQ_INT(offset_in(dir), 4096 + 5000);
        state_close(s);
        free(snap2);
        snap2 = read_file(p, &snap2_len);
        CHECK(snap2 && strstr(snap2, "\"offset\": 9096") != NULL);
        CHECK_EQ_INT(offset_in(dir), 4096 + 5000);
        /* a reopen sees the headers too */
        CHECK_EQ_INT(state_open(&s, dir, STATE_OPEN_READONLY, &err), 0);
        CHECK_EQ_INT(s ? state_count(s) : 0, 200);
        struct state_entry *e = s ? state_find_id(s, 1, 2) : NULL;
        CHECK(e && e->header && e->header_len == sizeof hdr - 1);
        state_close(s);
        free(snap);
        free(snap2);
}

/* Every change the store writes (offset, header, path, identity, finished,
 * removal, new entries) is read back from the journal alone. */
static void test_journal_changes(void)
{
        char dir[512], img[512];
        new_dir(dir, sizeof dir);
        struct state_error err;
        struct state *s;
        CHECK_EQ_INT(state_open(&s, dir, 0, &err), 0);
        if (!s)
                return;
        struct state_entry ta = sample("bounces", "/l/a.csv", 1, 2);
        struct state_entry tb = sample("bounces", "/l/b.csv", 1, 3);
        struct state_entry tc = sample("acct", "/l/c.csv", 1, 4);
        struct state_entry *a = state_add(s, &ta, &err);
        struct state_entry *b = state_add(s, &tb, &err);
        CHECK(state_add(s, &tc, &err) != NULL);
        CHECK_EQ_INT(state_save(s, &err), 0);
        if (!a || !b) {
                state_close(s);
                return;
        }
        a->offset = 7777;
        a->fp = 42;
        a->fp_len = 77;
        CHECK_EQ_INT(state_set_header(s, a, "h1,h2", 5, &err), 0);
        CHECK_EQ_INT(state_set_path(s, a, "/l/a-2024.csv", &err), 0);
        state_mark_finished(b, 9999, NOW + 5);
        CHECK_EQ_INT(state_set_id(s, b, 2, 30, &err), 0);
        state_remove(s, state_find_id(s, 1, 4));
        struct state_entry td = sample("bounces", "/l/d.csv", 1, 4);
        td.offset = 12;
        CHECK(state_add(s, &td, &err) != NULL);
        CHECK_EQ_INT(state_save(s, &err), 0);
        crash_image(dir, img, sizeof img, SIZE_MAX);
        struct state *r;
        CHECK_EQ_INT(state_open(&r, img, STATE_OPEN_READONLY, &err), 0);
        if (r) {
                CHECK_EQ_INT(state_count(r), 3);
                struct state_entry *x = state_find_id(r, 1, 2);
                CHECK(x && same_entry(x, a));
                x = state_find_id(r, 2, 30);
                CHECK(x && same_entry(x, b) && x->finished);
                x = state_find_id(r, 1, 4);
                CHECK(x && x->offset == 12 && !strcmp(x->path, "/l/d.csv"));
                /* the order of the table is kept */
                CHECK(state_at(r, 0) && state_at(r, 0)->ino == 2);
                CHECK(state_at(r, 2) && state_at(r, 2)->ino == 4);
        }
        state_close(r);
        state_close(s);
}

/* Crash consistency: a journal cut at any byte (a kill -9 or a power cut in
 * the middle of an append, or the end of a write lost) reads back as the last
 * whole save, never a mix, never an error. */
static void test_journal_torn(void)
{
        char dir[512], img[512];
        new_dir(dir, sizeof dir);
        struct state_error err;
        struct state *s;
        CHECK_EQ_INT(state_open(&s, dir, 0, &err), 0);
        if (!s)
                return;
        struct state_entry t = sample("bounces", "/l/b.csv", 1, 2);
        struct state_entry *e = state_add(s, &t, &err);
        CHECK_EQ_INT(state_save(s, &err), 0);
        if (!e) {
                state_close(s);
                return;
        }
        size_t ends[6];
        long long offs[6];
        ends[0] = file_size(dir, STATE_JOURNAL_NAME);
        offs[0] = 4096;
        for (int k = 1; k < 6; k++) {
                e->offset = 4096 + 1000 * (uint64_t)k;
                CHECK_EQ_INT(state_save(s, &err), 0);
                ends[k] = file_size(dir, STATE_JOURNAL_NAME);
                offs[k] = (long long)e->offset;
        }
        int bad = 0;
        for (size_t cut = 0; cut <= ends[5]; cut++) {
                crash_image(dir, img, sizeof img, cut);
                long long want = 4096;
                for (int k = 0; k < 6; k++)
                        if (cut >= ends[k])
                                want = offs[k];
                long long got = offset_in(img);
                if (got != want && bad++ < 5)
                        fprintf(stderr, "cut at %zu: offset %lld, want %lld\n", cut, got, want);
        }
        CHECK_EQ_INT(bad, 0);

        /* a torn tail is noted at a read-write open, and the next save does
         * not append after it */
        crash_image(dir, img, sizeof img, ends[3] + 7);
        struct state *w;
        CHECK_EQ_INT(state_open(&w, img, 0, &err), 0);
        CHECK(err.notes & STATE_NOTE_JOURNAL_TAIL);
        CHECK(strstr(err.note, STATE_JOURNAL_NAME) != NULL);
        struct state_entry *x = w ? state_find_id(w, 1, 2) : NULL;
        CHECK(x && x->offset == (uint64_t)offs[3]);
        if (x) {
                x->offset = 123456;
                CHECK_EQ_INT(state_save(w, &err), 0);
                x->offset = 123457;
                CHECK_EQ_INT(state_save(w, &err), 0);
        }
        CHECK_EQ_INT(offset_in(img), 123457);
        state_close(w);

        /* garbage where the last line should be: the same */
        crash_image(dir, img, sizeof img, SIZE_MAX);
        char jp[600];
        join(jp, sizeof jp, img, STATE_JOURNAL_NAME);
        FILE *f = fopen(jp, "ab");
        CHECK(f != NULL);
        if (f) {
                fputs("0123456789abcdef {\"ops\":[{\"k\":1,\"d\":true}]}\n", f);
                fclose(f);
        }
        CHECK_EQ_INT(offset_in(img), offs[5]);
        state_close(s);
}

/* A crash between a fold's new snapshot and its new journal leaves the old
 * journal beside a snapshot it does not follow: it is ignored (its saves are
 * in the snapshot), not replayed on top. */
static void test_journal_stale(void)
{
        char dir[512], img[512], p[600], q[600];
        new_dir(dir, sizeof dir);
        struct state_error err;
        struct state *s;
        CHECK_EQ_INT(state_open(&s, dir, 0, &err), 0);
        if (!s)
                return;
        struct state_entry t = sample("bounces", "/l/b.csv", 1, 2);
        struct state_entry *e = state_add(s, &t, &err);
        CHECK_EQ_INT(state_save(s, &err), 0);
        if (e)
                e->offset = 5000;
        CHECK_EQ_INT(state_save(s, &err), 0);
        crash_image(dir, img, sizeof img, SIZE_MAX); /* old snapshot, its journal */
        if (e) {
                state_remove(s, e); /* the old journal would remove... */
                struct state_entry t2 = sample("bounces", "/l/b.csv", 1, 2);
                t2.offset = 70;
                CHECK(state_add(s, &t2, &err) != NULL); /* ...this one */
        }
        CHECK_EQ_INT(state_save(s, &err), 0);
        state_close(s); /* folds: a new snapshot */
        join(p, sizeof p, dir, STATE_FILE_NAME);
        join(q, sizeof q, img, STATE_FILE_NAME);
        CHECK(rename(p, q) == 0);
        CHECK_EQ_INT(offset_in(img), 70);
}

/* An offsets.json written by an older pmtatail (no journal) is taken over:
 * read whole, then saved to as usual. */
static void test_takeover(void)
{
        char dir[512];
        new_dir(dir, sizeof dir);
        put_offsets(dir, "{\"version\": 1, \"files\": [{\"source\": \"bounces\", \"path\": "
                         "\"/l/b.csv\", \"dev\": 1, \"ino\": 2, \"fp\": \"0123456789abcdef\", "
                         "\"fp_len\": 1024, \"offset\": 300, \"finished\": false, \"seen\": "
                         "1700000000, \"header\": \"a,b\"}, {\"source\": \"bounces\", \"path\": "
                         "\"/l/o.csv\", \"dev\": 1, \"ino\": 9, \"fp\": \"0123456789abcdef\", "
                         "\"fp_len\": 1024, \"offset\": 900, \"finished\": true, \"seen\": "
                         "1700000000}]}\n");
        CHECK_EQ_INT(offset_in(dir), 300);
        struct state_error err;
        struct state *s;
        CHECK_EQ_INT(state_open(&s, dir, 0, &err), 0);
        struct state_entry *e = s ? state_find_id(s, 1, 2) : NULL;
        CHECK(e && e->header && !strcmp(e->header, "a,b"));
        if (e) {
                e->offset = 310;
                CHECK_EQ_INT(state_save(s, &err), 0);
                e->offset = 320;
                CHECK_EQ_INT(state_save(s, &err), 0);
        }
        CHECK_EQ_INT(offset_in(dir), 320);
        state_close(s);
        CHECK_EQ_INT(offset_in(dir), 320);
        CHECK_EQ_INT(state_open(&s, dir, STATE_OPEN_READONLY, &err), 0);
        CHECK_EQ_INT(s ? state_count(s) : 0, 2);
        e = s ? state_find_id(s, 1, 9) : NULL;
        CHECK(e && e->finished && e->offset == 900);
        state_close(s);
}

/* An append that fails part-way (here: the file size limit) is cut off; the
 * disk keeps the last save, and the next save after the cause is gone is
 * read back. */
static void test_journal_write_failure(void)
{
        char dir[512], img[512];
        new_dir(dir, sizeof dir);
        struct state_error err;
        struct state *s;
        CHECK_EQ_INT(state_open(&s, dir, 0, &err), 0);
        if (!s)
                return;
        struct state_entry t = sample("bounces", "/l/b.csv", 1, 2);
        struct state_entry *e = state_add(s, &t, &err);
        CHECK_EQ_INT(state_save(s, &err), 0);
        if (!e) {
                state_close(s);
                return;
        }
        e->offset = 5000;
        CHECK_EQ_INT(state_save(s, &err), 0);
        size_t j = file_size(dir, STATE_JOURNAL_NAME);
        struct rlimit old, lim;
        CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
        lim = old;
        lim.rlim_cur = j + 20; /* room for the start of a line only */
        signal(SIGXFSZ, SIG_IGN);
        CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
        e->offset = 6000;
        CHECK_EQ_INT(state_save(s, &err), -1);
        CHECK_EQ_INT(err.kind, STATE_E_IO);
        CHECK(strstr(err.msg, "cannot save offsets") != NULL);
        CHECK(strstr(err.msg, STATE_JOURNAL_NAME) != NULL);
        CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
        CHECK_EQ_INT(file_size(dir, STATE_JOURNAL_NAME), j);
        crash_image(dir, img, sizeof img, SIZE_MAX);
        CHECK_EQ_INT(offset_in(img), 5000);
        CHECK_EQ_INT(state_save(s, &err), 0);
        CHECK_EQ_INT(offset_in(dir), 6000);
        state_close(s);
}

/* At most STATE_MAX_ENTRIES entries, in the table and in the file. */
static void test_cap(void)
{
        char dir[512];
        new_dir(dir, sizeof dir);
        struct state_error err;
        struct state *s;
        CHECK_EQ_INT(state_open(&s, dir, 0, &err), 0);
        if (!s)
                return;
        char path[64];
        int added = 0;
        for (int i = 0; i < STATE_MAX_ENTRIES; i++) {
                snprintf(path, sizeof path, "/l/archive/bounces-%d.csv", i);
                struct state_entry t = sample("bounces", path, 9, (uint64_t)i + 100);
                if (state_add(s, &t, &err))
                        added++;
        }
        CHECK_EQ_INT(added, STATE_MAX_ENTRIES);
        struct state_entry t = sample("bounces", "/l/one-too-many.csv", 9, 1);
        CHECK(state_add(s, &t, &err) == NULL);
        CHECK_EQ_INT(err.kind, STATE_E_LIMIT);
        CHECK_EQ_INT(err.errnum, E2BIG);
        CHECK(strstr(err.msg, "4096") != NULL);
        CHECK_EQ_INT(state_save(s, &err), 0);
        state_close(s);

        CHECK_EQ_INT(state_open(&s, dir, 0, &err), 0);
        if (!s)
                return;
        CHECK_EQ_INT(state_count(s), STATE_MAX_ENTRIES);
        struct state_entry *e = state_find_id(s, 9, 100 + 4095);
        CHECK(e && !strcmp(e->path, "/l/archive/bounces-4095.csv"));
        /* removing one makes room again */
        state_remove(s, state_at(s, 0));
        CHECK(state_add(s, &t, &err) != NULL);
        state_close(s);

        /* a file holding more is refused */
        char p[600];
        join(p, sizeof p, dir, STATE_FILE_NAME);
        json_error_t je;
        json_t *doc = json_load_file(p, 0, &je);
        CHECK(doc != NULL);
        if (!doc)
                return;
        json_t *extra = json_deep_copy(json_array_get(json_object_get(doc, "files"), 0));
        json_object_set_new(extra, "ino", json_integer(1));
        json_array_append_new(json_object_get(doc, "files"), extra);
        CHECK_EQ_INT(json_dump_file(doc, p, 0), 0);
        json_decref(doc);
        CHECK_EQ_INT(state_open(&s, dir, 0, &err), -1);
        CHECK_EQ_INT(err.kind, STATE_E_CORRUPT);
        CHECK(strstr(err.msg, "4097 files") != NULL);
}

static void test_bad_args(void)
{
        struct state_error err;
        struct state *s;
        CHECK_EQ_INT(state_open(&s, "", 0, &err), -1);
        CHECK_EQ_INT(err.kind, STATE_E_INVALID);
        CHECK_EQ_INT(state_open(&s, root_dir, 1u << 7, &err), -1);

        /* a parent that does not exist: the message names the directory */
        char dir[600];
        snprintf(dir, sizeof dir, "%s/no/such", root_dir);
        CHECK_EQ_INT(state_open(&s, dir, 0, &err), -1);
        CHECK_EQ_INT(err.kind, STATE_E_IO);
        CHECK_EQ_INT(err.errnum, ENOENT);
        CHECK(strstr(err.msg, dir) != NULL);

        /* trailing slashes do not end up in messages */
        char d2[512];
        new_dir(d2, sizeof d2);
        snprintf(dir, sizeof dir, "%s//", d2);
        CHECK_EQ_INT(state_open(&s, dir, 0, &err), 0);
        char want[600];
        join(want, sizeof want, d2, STATE_FILE_NAME);
        CHECK(s && !strcmp(state_file_path(s), want));
        state_close(s);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

int main(void)
{
        const char *t = getenv("TMPDIR");
        snprintf(root_dir, sizeof root_dir, "%s/pmtatail-state-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(root_dir)) {
                perror("mkdtemp");
                return 1;
        }
        RUN(test_round_trip);
        RUN(test_edit);
        RUN(test_leftover_temp);
        RUN(test_refused);
        RUN(test_reset_corrupt);
        RUN(test_lock);
        RUN(test_readonly);
        RUN(test_prune);
        RUN(test_save_failure);
        RUN(test_cap);
        RUN(test_bad_args);
        RUN(test_journal_appends);
        RUN(test_journal_changes);
        RUN(test_journal_torn);
        RUN(test_journal_stale);
        RUN(test_takeover);
        RUN(test_journal_write_failure);
        nftw(root_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        TEST_MAIN_END;
}
