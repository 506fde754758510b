/* Every fixture file, fed whole and then in random chunk sizes from 1 byte
 * upwards, must give the same events and rejects; and every event of the
 * hand-written encoder must equal jansson's, byte for byte.
 * Usage: test_fixtures FIXTURES_DIR */
#include "event.h"
#include "pmta_csv.h"
#include "test.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TEST_MAIN_BEGIN

struct run {
        struct event_encoder *enc;
        struct buf out;
        int mismatches;
};

static void on_record(void *ctx, const struct pmta_record *r)
{
        struct run *run = ctx;
        struct event_meta m = {.host = "fixture-host",
                               .path = "fixture.csv",
                               .include_message = true,
                               .now = 1700000000};
        size_t before = run->out.len;
        if (event_encode(run->enc, &run->out, r, &m) != 0) {
                run->mismatches++;
                return;
        }
        json_t *j = event_to_json(r, &m);
        char *ref = j ? json_dumps(j, JSON_COMPACT) : NULL;
        size_t n = run->out.len - before;
        if (!ref || strlen(ref) != n || memcmp(ref, run->out.data + before, n) != 0) {
                fprintf(stderr, "encoders differ:\n  hand:    %.*s\n  jansson: %s\n", (int)n,
                        run->out.data + before, ref ? ref : "(null)");
                run->mismatches++;
        }
        free(ref);
        json_decref(j);
        buf_putc(&run->out, '\n');
}

static void on_reject(void *ctx, const struct pmta_reject *r)
{
        struct run *run = ctx;
        char line[128];
        int n = snprintf(line, sizeof line, "reject reason=%d line=%llu start=%llu end=%llu\n",
                         (int)r->reason, (unsigned long long)r->line, (unsigned long long)r->start,
                         (unsigned long long)r->end);
        buf_append(&run->out, line, (size_t)n);
}

/* chunk 0 means random sizes drawn from `seed`, 1 to max_chunk bytes. */
static int parse(const char *data, size_t size, size_t chunk, size_t max_chunk, unsigned seed,
                 struct run *run)
{
        struct pmta_parser_opts o = {.on_record = on_record, .on_reject = on_reject, .ctx = run};
        run->enc = event_encoder_new();
        buf_init(&run->out, 256u << 20);
        run->mismatches = 0;
        struct pmta_parser *p = pmta_parser_new(&o);
        if (!p || !run->enc)
                return -1;
        srand(seed);
        int rc = 0;
        for (;;) {
                uint64_t off = pmta_parser_next_offset(p);
                int r;
                if (off >= size) {
                        r = pmta_parser_finish(p);
                        if (r == PMTA_FEED_OK)
                                break;
                } else {
                        size_t k = chunk ? chunk : (size_t)rand() % max_chunk + 1;
                        if (k > size - off)
                                k = size - off;
                        r = pmta_parser_feed(p, data + off, k);
                }
                if (r < 0) {
                        rc = -1;
                        break;
                }
        }
        pmta_parser_free(p);
        event_encoder_free(run->enc);
        return rc;
}

static char *slurp(const char *path, size_t *size)
{
        FILE *f = fopen(path, "rb");
        if (!f)
                return NULL;
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *data = malloc((size_t)n + 1);
        if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
                free(data);
                data = NULL;
        }
        fclose(f);
        *size = (size_t)n;
        return data;
}

static int check_file(const char *path)
{
        size_t size;
        char *data = slurp(path, &size);
        CHECK(data != NULL);
        if (!data)
                return 0;
        struct run whole;
        CHECK_EQ_INT(parse(data, size, size ? size : 1, 0, 0, &whole), 0);
        CHECK_EQ_INT(whole.mismatches, 0);
        int events = 0;
        for (size_t i = 0; i < whole.out.len; i++)
                events += whole.out.data[i] == '\n';
        static const size_t max_chunks[] = {1, 2, 3, 7, 16, 64, 512, 4096};
        int bad = 0;
        for (size_t m = 0; m < sizeof max_chunks / sizeof max_chunks[0]; m++) {
                for (unsigned seed = 1; seed <= 8; seed++) {
                        struct run pieces;
                        size_t fixed = seed == 1 ? max_chunks[m] : 0;
                        if (parse(data, size, fixed, max_chunks[m], seed, &pieces) != 0 ||
                            pieces.out.len != whole.out.len ||
                            (whole.out.len &&
                             memcmp(pieces.out.data, whole.out.data, whole.out.len) != 0)) {
                                if (!bad++)
                                        fprintf(stderr,
                                                "%s: chunks up to %zu (seed %u) differ:\n%s\n"
                                                "whole:\n%s\n",
                                                path, max_chunks[m], seed, pieces.out.data,
                                                whole.out.data);
                        }
                        CHECK_EQ_INT(pieces.mismatches, 0);
                        buf_free(&pieces.out);
                }
        }
        CHECK_EQ_INT(bad, 0);
        buf_free(&whole.out);
        free(data);
        return events;
}

int main(int argc, char **argv)
{
        if (argc != 2) {
                fprintf(stderr, "usage: test_fixtures FIXTURES_DIR\n");
                return 2;
        }
        DIR *d = opendir(argv[1]);
        CHECK(d != NULL);
        if (!d)
                TEST_MAIN_END;
        int files = 0, events = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                size_t n = strlen(de->d_name);
                if (n < 5 || strcmp(de->d_name + n - 4, ".csv") != 0)
                        continue;
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", argv[1], de->d_name);
                int before = test_state_.failed;
                events += check_file(path);
                files++;
                fprintf(stderr, "%s %s\n", test_state_.failed == before ? "ok  " : "FAIL",
                        de->d_name);
        }
        closedir(d);
        fprintf(stderr, "%d fixture files, %d events and rejects\n", files, events);
        CHECK(files >= 10);
        TEST_MAIN_END;
}
