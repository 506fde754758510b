/* The event encoder: timestamps, UTF-8 repair, key naming, eventId, and the
 * hand-written encoder held byte for byte to jansson's output on random
 * hostile records. */
#include "event.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

TEST_MAIN_BEGIN

static const char *fmt_time(const char *s)
{
        static char out[64];
        int64_t t;
        if (event_parse_time(s, strlen(s), &t) < 0)
                return "(invalid)";
        event_format_time(t, out, sizeof out);
        return out;
}

static void test_times(void)
{
        CHECK_EQ_STR(fmt_time("1178807903"), "2007-05-10T14:38:23Z");
        CHECK_EQ_STR(fmt_time("0"), "1970-01-01T00:00:00Z");
        CHECK_EQ_STR(fmt_time("2016-05-29 01:10:51+0200"), "2016-05-28T23:10:51Z");
        CHECK_EQ_STR(fmt_time("2016-05-29T01:10:51+02:00"), "2016-05-28T23:10:51Z");
        CHECK_EQ_STR(fmt_time("2016-05-28 23:10:51Z"), "2016-05-28T23:10:51Z");
        CHECK_EQ_STR(fmt_time("2016-12-31 22:30:00-0530"), "2017-01-01T04:00:00Z");
        CHECK_EQ_STR(fmt_time("2024-02-29 00:00:00+0000"), "2024-02-29T00:00:00Z");
        CHECK_EQ_STR(fmt_time("2023-02-29 00:00:00+0000"), "(invalid)");
        CHECK_EQ_STR(fmt_time("2016-13-01 00:00:00+0000"), "(invalid)");
        CHECK_EQ_STR(fmt_time("2016-05-29 01:10:51"), "(invalid)"); /* no offset: unknown zone */
        CHECK_EQ_STR(fmt_time("yesterday"), "(invalid)");
        CHECK_EQ_STR(fmt_time(""), "(invalid)");
        CHECK_EQ_STR(fmt_time("12a"), "(invalid)");
        CHECK_EQ_STR(fmt_time("2016-05-29 01:10:51+02001"), "(invalid)");
}

static const char *json_str(const char *s, size_t n)
{
        static char out[1024];
        char *end = event_json_string(out, s, n);
        *end = '\0';
        return out;
}

static void test_strings(void)
{
        CHECK_EQ_STR(json_str("plain", 5), "\"plain\"");
        CHECK_EQ_STR(json_str("a\"b\\c/d", 7), "\"a\\\"b\\\\c/d\"");
        CHECK_EQ_STR(json_str("\r\n\t\b\f\x01\x1f\x7f", 8),
                     "\"\\r\\n\\t\\b\\f\\u0001\\u001F\x7f\"");
        CHECK_EQ_STR(json_str("a\0b", 3), "\"a\\u0000b\"");
        /* Latin-1 é: replaced, the text around it kept */
        CHECK_EQ_STR(json_str("caf\xe9 ok", 7), "\"caf\xef\xbf\xbd ok\"");
        /* valid multi-byte sequences pass */
        CHECK_EQ_STR(json_str("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9),
                     "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
        /* truncated, overlong, surrogate, past U+10FFFF, lone continuation */
        CHECK_EQ_STR(json_str("\xe2\x82"
                              "A",
                              3),
                     "\"\xef\xbf\xbd\xef\xbf\xbd"
                     "A\"");
        CHECK_EQ_STR(json_str("\xc0\xaf", 2), "\"\xef\xbf\xbd\xef\xbf\xbd\"");
        CHECK_EQ_STR(json_str("\xed\xa0\x80", 3), "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
        CHECK_EQ_STR(json_str("\xf4\x90\x80\x80", 4),
                     "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
        CHECK_EQ_STR(json_str("\x80", 1), "\"\xef\xbf\xbd\"");
        CHECK_EQ_STR(json_str("\xe9", 1), "\"\xef\xbf\xbd\"");
}

static struct pmta_header make_header(struct pmta_field *names, size_t n, const char *raw)
{
        struct pmta_header h = {
            .ncols = n, .names = names, .raw = raw, .raw_len = strlen(raw), .generation = 1};
        return h;
}

/* The writer goes sixteen and eight bytes at a time: every byte that needs
 * attention, at every position of a run longer than both, and a valid
 * two-byte sequence across each boundary. */
static void test_string_positions(void)
{
        static const struct {
                char in;
                const char *out;
        } specials[] = {
            {'"', "\\\""},
            {'\\', "\\\\"},
            {'\x01', "\\u0001"},
            {'\x1f', "\\u001F"},
            {'\n', "\\n"},
            {'\x7f', "\x7f"},
            {'\x80', "\xef\xbf\xbd"},
            {'\xe9', "\xef\xbf\xbd"},
            {'\xff', "\xef\xbf\xbd"},
            {' ', " "},
            {'~', "~"},
        };
        char in[48], want[80];
        /* every length up to 40: the 16-byte blocks, the block that ends
         * the string, the 8-byte words and single bytes */
        for (size_t len = 1; len <= 40; len++) {
                for (size_t k = 0; k < sizeof specials / sizeof specials[0]; k++) {
                        for (size_t pos = 0; pos < len; pos++) {
                                memset(in, 'a', len);
                                in[pos] = specials[k].in;
                                int w =
                                    snprintf(want, sizeof want, "\"%.*s%s%.*s\"", (int)pos, in,
                                             specials[k].out, (int)(len - 1 - pos), in + pos + 1);
                                CHECK(w > 0 && (size_t)w < sizeof want);
                                CHECK_EQ_STR(json_str(in, len), want);
                        }
                }
        }
        for (size_t pos = 0; pos < 39; pos++) {
                memset(in, 'b', 40);
                memcpy(in + pos, "\xc3\xa9", 2);
                want[0] = '"';
                memcpy(want + 1, in, 40);
                memcpy(want + 41, "\"", 2);
                CHECK_EQ_STR(json_str(in, 40), want);
        }
}

static void test_keys(void)
{
        struct pmta_field names[] = {{"type", 4}, {"host", 4},  {"rcpt", 4},   {"", 0},
                                     {"rcpt", 4}, {"x\xff", 2}, {"eventId", 7}};
        struct pmta_header h = make_header(names, 7, "type,host,rcpt,,rcpt,x\xff,eventId");
        char **k = event_column_keys(&h);
        CHECK(k != NULL);
        if (!k)
                return;
        CHECK_EQ_STR(k[0], "logType");
        CHECK_EQ_STR(k[1], "host_2");
        CHECK_EQ_STR(k[2], "rcpt");
        CHECK_EQ_STR(k[3], "column4");
        CHECK_EQ_STR(k[4], "rcpt_5");
        CHECK_EQ_STR(k[5], "x\xef\xbf\xbd");
        CHECK_EQ_STR(k[6], "eventId_7");
        event_column_keys_free(k, 7);

        /* NUL in names: regression for a rename loop that never ended, as
         * "a\0x" and "a\0y" looked alike to strcmp */
        struct pmta_field nul[] = {{"a\0x", 3}, {"a\0y", 3}, {"\0", 1}};
        struct pmta_header h2 = make_header(nul, 3, "?");
        k = event_column_keys(&h2);
        CHECK(k != NULL);
        if (!k)
                return;
        CHECK_EQ_STR(k[0], "a\xef\xbf\xbdx");
        CHECK_EQ_STR(k[1], "a\xef\xbf\xbdy");
        CHECK_EQ_STR(k[2], "\xef\xbf\xbd");
        event_column_keys_free(k, 3);
}

/* Encode r with both encoders and compare. */
static int compare_encoders(const struct pmta_record *r, const struct event_meta *m,
                            struct event_encoder *e)
{
        struct buf out;
        buf_init(&out, 64u << 20);
        int ok = 0;
        if (event_encode(e, &out, r, m) == 0) {
                json_t *j = event_to_json(r, m);
                char *ref = j ? json_dumps(j, JSON_COMPACT) : NULL;
                ok = ref && strlen(ref) == out.len && memcmp(ref, out.data, out.len) == 0;
                if (!ok)
                        fprintf(stderr, "hand:   %s\njansson: %s\n", out.data, ref ? ref : "?");
                /* and the hand-written output is itself valid JSON */
                json_error_t err;
                json_t *back = json_loadb(out.data, out.len, JSON_ALLOW_NUL, &err);
                if (!back) {
                        fprintf(stderr, "invalid JSON: %s\n", err.text);
                        ok = 0;
                }
                json_decref(back);
                free(ref);
                json_decref(j);
        }
        buf_free(&out);
        return ok;
}

static void test_encoder_matches_jansson(void)
{
        struct pmta_field names[] = {{"type", 4},        {"timeLogged", 10}, {"rcpt", 4},
                                     {"dsnDiag", 7},     {"bounceCat", 9},   {"host", 4},
                                     {"header_X-Id", 11}};
        struct pmta_header h = make_header(names, 7, "type,timeLogged,rcpt,dsnDiag,...");
        struct event_encoder *e = event_encoder_new();
        struct event_meta m = {.host = "mta1.example.com",
                               .path = "/var/log/pmta/bounces.csv",
                               .include_message = true,
                               .now = 1700000000};
        char cells[7][64];
        struct pmta_field f[7];
        char raw[512];
        srand(7);
        int mismatches = 0;
        for (int iter = 0; iter < 20000; iter++) {
                for (int c = 0; c < 7; c++) {
                        int len = rand() % 20;
                        if (rand() % 4 == 0)
                                len = 0; /* empty cells are left out */
                        for (int k = 0; k < len; k++) {
                                int pick = rand() % 10;
                                /* mostly ASCII, some hostile bytes */
                                cells[c][k] =
                                    (char)(pick < 6   ? ' ' + rand() % 95
                                           : pick < 9 ? rand() % 256
                                                      : "\"\\\r\n\t\x01\xc3\xa9"[rand() % 8]);
                        }
                        f[c].ptr = cells[c];
                        f[c].len = (size_t)len;
                }
                if (iter % 3 == 0) {
                        strcpy(cells[1], iter % 2 ? "1178807903" : "2016-05-29 01:10:51+0200");
                        f[1].len = strlen(cells[1]);
                }
                /* the types that get their own tag, and some that do not */
                if (iter % 2 == 0) {
                        static const char *const types[] = {"b", "rb", "f", "d", "B", "rbx"};
                        const char *t = types[(iter / 2) % 6];
                        f[0].ptr = t;
                        f[0].len = strlen(t);
                }
                m.bounce_class = iter % 7 == 0 ? "hard" : iter % 7 == 1 ? "soft" : NULL;
                size_t rl = (size_t)(rand() % 200);
                for (size_t k = 0; k < rl; k++)
                        raw[k] = (char)(rand() % 256);
                m.include_message = iter % 5 != 0;
                struct pmta_record r = {.header = &h,
                                        .cells = f,
                                        .ncells = 7,
                                        .raw = raw,
                                        .raw_len = rl,
                                        .start = (uint64_t)iter * 97};
                if (!compare_encoders(&r, &m, e) && ++mismatches > 3)
                        break;
        }
        CHECK_EQ_INT(mismatches, 0);
        event_encoder_free(e);
}

static void test_timestamp_field(void)
{
        struct pmta_field names[] = {{"type", 4}, {"timeLogged", 10}};
        struct pmta_header h = make_header(names, 2, "type,timeLogged");
        struct event_encoder *e = event_encoder_new();
        struct event_meta m = {.host = "h", .path = "p", .now = 86400};
        struct pmta_field cells[] = {{"b", 1}, {"not a time", 10}};
        struct pmta_record r = {
            .header = &h, .cells = cells, .ncells = 2, .raw = "b,x", .raw_len = 3};
        struct buf out;
        buf_init(&out, 1 << 16);
        CHECK_EQ_INT(event_encode(e, &out, &r, &m), 0);
        /* unparseable: kept as text under its name, @timestamp is read time */
        CHECK(strstr(out.data, "\"timeLogged\":\"not a time\"") != NULL);
        CHECK(strstr(out.data, "\"@timestamp\":\"1970-01-02T00:00:00Z\"") != NULL);
        CHECK(strstr(out.data, "\"message\"") == NULL);
        buf_free(&out);
        event_encoder_free(e);
}

/* Logstash's tags, per record type; a refused record is only "pmta". */
static void test_tags(void)
{
        struct pmta_field names[] = {{"type", 4}, {"tags", 4}};
        struct pmta_header h = make_header(names, 2, "type,tags");
        struct event_encoder *e = event_encoder_new();
        struct event_meta m = {.host = "h", .path = "p", .now = 86400};
        static const char *const types[][2] = {
            {"b", "[\"pmta\",\"pmta_sync_bounce\"]"},
            {"rb", "[\"pmta\",\"pmta_async_bounce\"]"},
            {"f", "[\"pmta\",\"pmta_fbl\"]"},
            {"d", "[\"pmta\"]"},
            {"r", "[\"pmta\"]"},
        };
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
                struct pmta_field cells[] = {{types[i][0], strlen(types[i][0])}, {"x", 1}};
                struct pmta_record r = {
                    .header = &h, .cells = cells, .ncells = 2, .raw = "?", .raw_len = 1};
                struct buf out;
                buf_init(&out, 1 << 16);
                CHECK_EQ_INT(event_encode(e, &out, &r, &m), 0);
                char want[128];
                snprintf(want, sizeof want, ",\"tags\":%s,\"eventId\":", types[i][1]);
                CHECK(strstr(out.data, want) != NULL);
                /* a column named "tags" does not collide with them */
                CHECK(strstr(out.data, "\"tags_2\":\"x\"") != NULL);
                CHECK(compare_encoders(&r, &m, e));
                buf_free(&out);
        }
        struct pmta_reject rej = {.reason = PMTA_REJECT_CELL_COUNT, .raw = "b,1", .raw_len = 3};
        struct buf out;
        buf_init(&out, 1 << 16);
        CHECK_EQ_INT(event_encode_reject(&out, &rej, &h, &m), 0);
        CHECK(strstr(out.data, ",\"tags\":[\"pmta\"],\"eventId\":") != NULL);
        buf_free(&out);
        event_encoder_free(e);
}

static void test_event_id(void)
{
        struct pmta_field names[] = {{"type", 4}};
        struct pmta_header h = make_header(names, 1, "type,rcpt");
        struct pmta_header h2 = make_header(names, 1, "type,orig");
        char a[33], b[33], c[33], d[33], e[33];
        event_id(&h, 100, "b,x@y", 5, a);
        event_id(&h, 100, "b,x@y", 5, b);
        event_id(&h, 101, "b,x@y", 5, c);
        event_id(&h, 100, "b,x@z", 5, d);
        event_id(&h2, 100, "b,x@y", 5, e);
        CHECK_EQ_STR(a, b);
        CHECK(strcmp(a, c) != 0);
        CHECK(strcmp(a, d) != 0);
        CHECK(strcmp(a, e) != 0);
        CHECK_EQ_INT(strlen(a), 32);
        CHECK(strspn(a, "0123456789abcdef") == 32);
}

static void test_cap(void)
{
        struct pmta_field names[] = {{"type", 4}};
        struct pmta_header h = make_header(names, 1, "type");
        struct event_encoder *e = event_encoder_new();
        struct event_meta m = {.host = "h", .path = "p", .include_message = true};
        struct pmta_field cells[] = {{"b", 1}};
        struct pmta_record r = {
            .header = &h, .cells = cells, .ncells = 1, .raw = "b", .raw_len = 1};
        struct buf out;
        buf_init(&out, 64);
        CHECK_EQ_INT(event_encode(e, &out, &r, &m), -1);
        CHECK_EQ_INT(out.len, 0);
        buf_free(&out);
        event_encoder_free(e);
}

int main(void)
{
        RUN(test_times);
        RUN(test_strings);
        RUN(test_string_positions);
        RUN(test_keys);
        RUN(test_encoder_matches_jansson);
        RUN(test_timestamp_field);
        RUN(test_tags);
        RUN(test_event_id);
        RUN(test_cap);
        TEST_MAIN_END;
}
