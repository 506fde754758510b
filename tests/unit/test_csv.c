/* The parser on inline inputs: every rule of the accounting format, fed
 * whole, byte by byte and in random chunks. */
#include "pmta_csv.h"
#include "test.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TEST_MAIN_BEGIN

/* What a parse produced, flattened to text so tests compare strings:
 * records as "start-end|cell|cell|...", rejects as "!reason@line:start-end". */
struct collect {
        char out[1 << 16];
        size_t len;
        struct pmta_parser *p;
        /* every hold_each-th record handed is held (0: none) */
        unsigned hold_each, calls, holds;
};

static void put(struct collect *c, const char *s, size_t n)
{
        if (c->len + n + 1 < sizeof c->out) {
                memcpy(c->out + c->len, s, n);
                c->len += n;
                c->out[c->len] = '\0';
        }
}

static void put_str(struct collect *c, const char *s)
{
        put(c, s, strlen(s));
}

static void on_record(void *ctx, const struct pmta_record *r)
{
        struct collect *c = ctx;
        if (c->hold_each && ++c->calls % c->hold_each == 0) {
                c->holds++;
                pmta_parser_hold(c->p);
                return;
        }
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%llu-%llu", (unsigned long long)r->start,
                 (unsigned long long)r->end);
        put_str(c, tmp);
        for (size_t i = 0; i < r->ncells; i++) {
                put_str(c, "|");
                put(c, r->cells[i].ptr, r->cells[i].len);
        }
        put_str(c, "\n");
}

static void on_reject(void *ctx, const struct pmta_reject *r)
{
        struct collect *c = ctx;
        char tmp[96];
        snprintf(tmp, sizeof tmp, "!%d@%llu:%llu-%llu\n", (int)r->reason,
                 (unsigned long long)r->line, (unsigned long long)r->start,
                 (unsigned long long)r->end);
        put_str(c, tmp);
}

/* Feed `in` in chunks of `chunk` bytes (0: random sizes from `seed`),
 * following the parser's next_offset as a file reader would, then finish
 * if `final`. */
static const char *parse_opts(const char *in, size_t n, size_t chunk, unsigned seed, bool final,
                              struct pmta_parser_opts o, struct collect *c)
{
        c->len = 0;
        c->out[0] = '\0';
        o.on_record = on_record;
        o.on_reject = on_reject;
        o.ctx = c;
        struct pmta_parser *p = pmta_parser_new(&o);
        c->p = p;
        if (!p)
                return "(parser_new failed)";
        srand(seed);
        for (;;) {
                uint64_t off = pmta_parser_next_offset(p);
                int r;
                if (off >= n) {
                        if (!final)
                                break;
                        r = pmta_parser_finish(p);
                        if (r == PMTA_FEED_OK)
                                break;
                } else {
                        size_t k = chunk ? chunk : (size_t)(rand() % 17) + 1;
                        if (k > n - off)
                                k = n - off;
                        r = pmta_parser_feed(p, in + off, k);
                }
                if (r < 0) {
                        put_str(c, "(error)");
                        break;
                }
        }
        return c->out;
}

static struct pmta_parser_opts all_types(void)
{
        static const char *const t[] = {"b", "rb", "f", "d"};
        struct pmta_parser_opts o = {.types = t, .ntypes = 4};
        return o;
}

static const char *parse(const char *in, size_t chunk, struct collect *c)
{
        return parse_opts(in, strlen(in), chunk, 1, true, all_types(), c);
}

/* The same input in every chunking gives the same output. */
static void check_chunkings(const char *in, const char *expected)
{
        static struct collect c;
        CHECK_EQ_STR(parse(in, 1 << 20, &c), expected);
        pmta_parser_free(c.p);
        CHECK_EQ_STR(parse(in, 1, &c), expected);
        pmta_parser_free(c.p);
        for (unsigned seed = 1; seed <= 20; seed++) {
                CHECK_EQ_STR(parse_opts(in, strlen(in), 0, seed, true, all_types(), &c), expected);
                pmta_parser_free(c.p);
        }
}

static void test_header_and_rows(void)
{
        check_chunkings("type,timeLogged,rcpt\r\nb,1,a@x\r\nrb,2,b@y\r\n",
                        "22-30|b|1|a@x\n31-40|rb|2|b@y\n");
}

static void test_lf_and_crlf(void)
{
        check_chunkings("type,rcpt\nb,a\nb,b\r\nb,c\r", "10-14|b|a\n14-18|b|b\n19-23|b|c\n");
}

static void test_quoted_fields(void)
{
        check_chunkings("type,dsnDiag\r\nb,\"550, \"\"no\"\" user\r\nsecond line\"\r\nb,x\r\n",
                        "14-48|b|550, \"no\" user\r\nsecond line\n49-53|b|x\n");
}

static void test_union_header(void)
{
        /* A union header: each row leaves empty what its type lacks. */
        check_chunkings("type,timeLogged,orig,rcpt,dlvSourceIp,bounceCat\r\n"
                        "d,1178807903,o@p,u1@d,10.0.0.1,\r\n"
                        "b,1178807915,o@p,u3@d,,policy-related\r\n",
                        "49-81|d|1178807903|o@p|u1@d|10.0.0.1|\n"
                        "82-120|b|1178807915|o@p|u3@d||policy-related\n");
}

static void test_second_header_remaps(void)
{
        static struct collect c;
        parse("type,a,b\nb,1,2\ntype,b,a,c\nb,3,4,5\n", 0, &c);
        CHECK_EQ_STR(c.out, "9-15|b|1|2\n26-34|b|3|4|5\n");
        const struct pmta_header *h = pmta_parser_header(c.p);
        CHECK(h && h->ncols == 4);
        CHECK(h && h->names[1].len == 1 && h->names[1].ptr[0] == 'b');
        CHECK_EQ_INT(pmta_parser_stats(c.p)->headers, 2);
        pmta_parser_free(c.p);
}

static void test_no_header(void)
{
        /* Never a guess: every data row is refused, and counted. */
        check_chunkings("b,1,a@x\nb,2,b@y\n", "!0@1:0-8\n!0@2:8-16\n");
        static struct collect c;
        struct pmta_parser_opts o = all_types();
        o.columns = "type,timeLogged,rcpt";
        parse_opts("b,1,a@x\n", 8, 3, 1, true, o, &c);
        CHECK_EQ_STR(c.out, "0-8|b|1|a@x\n");
        pmta_parser_free(c.p);
}

static void test_cell_count(void)
{
        check_chunkings("type,a,b\nb,1\nb,1,2,3\nb,1,2\n", "!1@2:9-13\n!1@3:13-21\n21-27|b|1|2\n");
}

static void test_filter_before_count(void)
{
        static struct collect c;
        struct pmta_parser_opts o = {0}; /* default b, rb, f */
        parse_opts("type,a,b\nd,1\nt,1,2\nb,1,2\n", 25, 4, 1, true, o, &c);
        CHECK_EQ_STR(c.out, "19-25|b|1|2\n");
        const struct pmta_stats *st = pmta_parser_stats(c.p);
        CHECK_EQ_INT(st->filtered, 2);
        CHECK_EQ_INT(st->rejected, 0);
        CHECK_EQ_INT(st->records, 1);
        CHECK_EQ_INT(st->ntypes, 3);
        pmta_parser_free(c.p);
}

/* A line of no known record type whose cells do not fit the header is no
 * record (half of one broken across lines): rejected, not filtered. An
 * unknown type with the header's cells is a record not forwarded. */
static void test_not_a_record(void)
{
        check_chunkings("type,a,b\n550 5.1.1 gone\nzz,1,2\nb,1,2\nq,1\n",
                        "!1@2:9-24\n31-37|b|1|2\n!1@5:37-41\n");
        check_chunkings("550 5.1.1 gone,x\n", "!0@1:0-17\n");
        static struct collect c;
        struct pmta_parser_opts o = {0}; /* default b, rb, f */
        const char *in = "type,a,b\nx\nzz,1,2\nd,1\n";
        parse_opts(in, strlen(in), 4, 1, true, o, &c);
        const struct pmta_stats *st = pmta_parser_stats(c.p);
        CHECK_EQ_INT(st->rejected, 1);
        CHECK_EQ_INT(st->rejected_by_reason[PMTA_REJECT_CELL_COUNT], 1);
        CHECK_EQ_INT(st->filtered, 2);
        pmta_parser_free(c.p);
}

static void test_pending_last_record(void)
{
        static struct collect c;
        const char *in = "type,a\nb,1\nb,2";
        parse_opts(in, strlen(in), 3, 1, false, all_types(), &c);
        CHECK_EQ_STR(c.out, "7-11|b|1\n");
        CHECK_EQ_INT(pmta_parser_settled_offset(c.p), 11);
        CHECK_EQ_INT(pmta_parser_pending(c.p), 3);
        /* the rest of the record arrives */
        CHECK_EQ_INT(pmta_parser_feed(c.p, "3\r\n", 3), PMTA_FEED_OK);
        CHECK_EQ_STR(c.out, "7-11|b|1\n11-16|b|23\n");
        CHECK_EQ_INT(pmta_parser_pending(c.p), 0);
        pmta_parser_free(c.p);
        /* the file is final: the record stands as it is */
        check_chunkings(in, "7-11|b|1\n11-14|b|2\n");
        /* a pending record inside an open quote waits too */
        parse_opts("type,a\nb,\"x\r\n", 13, 2, 1, false, all_types(), &c);
        CHECK_EQ_STR(c.out, "");
        CHECK_EQ_INT(pmta_parser_settled_offset(c.p), 7);
        pmta_parser_free(c.p);
}

static void test_empty_inputs(void)
{
        check_chunkings("", "");
        check_chunkings("type,a,b\r\n", "");
        check_chunkings("type,a,b", "");
        check_chunkings("\r\n\r\n", "");
}

static void test_blank_lines_and_bom(void)
{
        check_chunkings("\xEF\xBB\xBFtype,a\r\n\r\nb,1\r\n\n\nb,2\n", "13-17|b|1\n20-24|b|2\n");
}

static void test_binary_bytes(void)
{
        /* NUL, control and invalid UTF-8 bytes are data, not errors. */
        static const char in[] = "type,d\nb,\"a\0b\x01\xe9\"\nb,z\n";
        static struct collect c;
        parse_opts(in, sizeof in - 1, 2, 1, true, all_types(), &c);
        static const char want[] = "7-17|b|a\0b\x01\xe9\n17-21|b|z\n";
        CHECK(c.len == sizeof want - 1 && memcmp(c.out, want, c.len) == 0);
        pmta_parser_free(c.p);
}

static void test_unterminated_quote_recovers(void)
{
        /* The runaway quote swallows the lines after it until end of file;
         * the parser rejects its first line and recovers the rest (here at
         * once: the line after it is a whole record). */
        check_chunkings("type,a,b\nb,\"oops,1\nb,2,3\nb,4,5\n",
                        "!6@2:9-19\n19-25|b|2|3\n25-31|b|4|5\n");
        /* lines that are not records: only the end of the file tells (and
         * the text line, no record type and too few cells, is rejected) */
        check_chunkings("type,a,b\nb,\"oops,1\nsome text\nb,4\n",
                        "!3@2:9-19\n!1@3:19-29\n!1@4:29-33\n");
        check_chunkings("type,a,b\nb,1,\"never closed", "!3@2:9-26\n");
        /* the writer stopped in the middle of the last record */
        check_chunkings("type,a,b\nb,1", "!5@2:9-12\n");
}

static void test_runaway_quote_live(void)
{
        /* A stray quote in a live file (never finished): after
         * PMTA_RECORD_BREAKS_MAX lines the quote is given up, its line
         * rejected and the lines after it recovered without waiting for the
         * end of the file or for record_max bytes. */
        static char in[16384];
        size_t n = (size_t)sprintf(in, "type,a,b\nb,\"stray,1\n");
        for (int i = 0; i < 150; i++)
                n += (size_t)sprintf(in + n, "b,%d,x\n", i);
        static struct collect c;
        parse_opts(in, n, 64, 1, false, all_types(), &c);
        static const char want[] = "!6@2:9-20\n20-26|b|0|x\n";
        CHECK(strncmp(c.out, want, strlen(want)) == 0);
        CHECK_EQ_INT(pmta_parser_stats(c.p)->records, 150);
        CHECK_EQ_INT(pmta_parser_stats(c.p)->rejected, 1);
        pmta_parser_free(c.p);
        /* swallowed lines that are not records: given up after
         * PMTA_RECORD_BREAKS_MAX of them */
        n = (size_t)sprintf(in, "type,a,b\nb,\"stray,1\n");
        for (int i = 0; i < 150; i++)
                n += (size_t)sprintf(in + n, "text %d\n", i);
        n += (size_t)sprintf(in + n, "b,1,x\n");
        parse_opts(in, n, 64, 1, false, all_types(), &c);
        CHECK(strncmp(c.out, "!4@2:9-20\n", 10) == 0);
        CHECK(strstr(c.out, "|b|1|x\n") != NULL);
        pmta_parser_free(c.p);
}

/* A stray quote closed by a later quoted field (legal RFC 4180, swallowing
 * the records between into one) costs only its own line; a real
 * multi-line dsnDiag still passes. */
static void test_stray_quote_closed_later(void)
{
        /* the stray quote on line 2 is closed by the quoted cell of line 5:
         * libcsv alone would make lines 2-5 one row of 4 cells */
        check_chunkings("type,a,b,c\nb,\"x,1,2\nb,1,2,3\nb,4,5,6\nb,7,\"q\",9\n",
                        "!6@2:11-20\n20-28|b|1|2|3\n28-36|b|4|5|6\n36-46|b|7|q|9\n");
        /* closed on the very next line, itself a whole record */
        check_chunkings("type,a,b,c\nb,\"x,1,2\nb,7,\"q\",9\n", "!6@2:11-20\n20-30|b|7|q|9\n");
        /* a multi-line dsnDiag as PowerMTA writes it (CRLFs inside quotes) */
        check_chunkings("type,a,diag,c\r\nb,1,\"smtp;550-5.1.1 no such user\r\n550-5.1.1 see "
                        "https://x/y,z\r\n550 5.1.1 bye\",2\r\nb,3,d,4\r\n",
                        "15-95|b|1|smtp;550-5.1.1 no such user\r\n550-5.1.1 see "
                        "https://x/y,z\r\n550 5.1.1 bye|2\n96-104|b|3|d|4\n");
        /* an inner line that starts like a record but has another cell
         * count is text */
        check_chunkings("type,a,b,c\nb,1,\"d,\nb,no\nf,x,y,z,w\",2\nb,3,4,5\n",
                        "11-37|b|1|d,\nb,no\nf,x,y,z,w|2\n37-45|b|3|4|5\n");
        /* an inner line of an unknown type is text too */
        check_chunkings("type,a,b,c\nb,1,\"q\nzz,1,2,3\",2\nb,3,4,5\n",
                        "11-30|b|1|q\nzz,1,2,3|2\n30-38|b|3|4|5\n");
}

static void test_too_long(void)
{
        static struct collect c;
        struct pmta_parser_opts o = all_types();
        o.record_max = 64;
        /* one line longer than the cap, with a quoted field and an embedded
         * comma: skipped to its real end */
        char in[1024];
        char big[300];
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        int n = snprintf(in, sizeof in, "type,a,b\r\nb,\"%s,\"\"q\",1\r\nb,2,3\r\n", big);
        for (size_t chunk = 1; chunk < 40; chunk += 7) {
                parse_opts(in, (size_t)n, chunk, 1, true, o, &c);
                char want[128];
                snprintf(want, sizeof want, "!2@2:10-%d\n%d-%d|b|2|3\n", n - 8, n - 7, n - 1);
                CHECK_EQ_STR(c.out, want);
                pmta_parser_free(c.p);
        }
        /* a quoted field spanning lines past the cap: the first line is
         * refused, then the parser resynchronises on the next line */
        n = snprintf(in, sizeof in, "type,a,b\nb,\"%.40s\n%.40s\n%.40s\",1\nb,2,3\n", big, big,
                     big);
        parse_opts(in, (size_t)n, 5, 1, true, o, &c);
        CHECK(strstr(c.out, "!2@2:9-53\n") == c.out);
        CHECK(strstr(c.out, "|b|2|3\n") != NULL);
        pmta_parser_free(c.p);
}

static void test_memory_bounded(void)
{
        /* A 10 MB record with a 1 MiB cap: rejected, the next record read,
         * and the parser's buffers never past the cap. */
        size_t big = 10u << 20;
        char *in = malloc(big + 64);
        CHECK(in != NULL);
        if (!in)
                return;
        size_t n = (size_t)sprintf(in, "type,a,b\nb,\"");
        memset(in + n, 'y', big);
        n += big;
        n += (size_t)sprintf(in + n, "\",1\nb,2,3\n");
        static struct collect c;
        parse_opts(in, n, 65536, 1, true, all_types(), &c);
        char want[96];
        snprintf(want, sizeof want, "!2@2:9-%zu\n%zu-%zu|b|2|3\n", n - 6, n - 6, n);
        CHECK_EQ_STR(c.out, want);
        CHECK_EQ_INT(pmta_parser_stats(c.p)->rejected, 1);
        pmta_parser_free(c.p);
        free(in);
}

static void test_too_many_cells(void)
{
        static char in[8192];
        size_t n = (size_t)sprintf(in, "type,a\nb");
        for (int i = 0; i < 2000; i++)
                in[n++] = ',';
        n += (size_t)sprintf(in + n, "\nb,1\n");
        static struct collect c;
        parse_opts(in, n, 100, 1, true, all_types(), &c);
        char want[64];
        snprintf(want, sizeof want, "!1@2:7-%zu\n%zu-%zu|b|1\n", n - 4, n - 4, n);
        CHECK_EQ_STR(c.out, want);
        pmta_parser_free(c.p);
}

static void test_resume(void)
{
        const char *in = "type,a\r\nb,1\r\nb,2\r\nb,3\r\n";
        static struct collect c;
        struct pmta_parser_opts o = all_types();
        o.on_record = on_record;
        o.on_reject = on_reject;
        o.ctx = &c;
        /* without the header: read row 1, then jump to the offset */
        c.len = 0;
        struct pmta_parser *p = pmta_parser_new(&o);
        CHECK_EQ_INT(pmta_parser_resume(p, 13, NULL, 0), 0);
        for (int guard = 0; guard < 100; guard++) {
                uint64_t off = pmta_parser_next_offset(p);
                if (off >= strlen(in))
                        break;
                CHECK(pmta_parser_feed(p, in + off, strlen(in) - off) >= 0);
        }
        CHECK_EQ_INT(pmta_parser_finish(p), PMTA_FEED_OK);
        CHECK_EQ_STR(c.out, "13-17|b|2\n18-22|b|3\n");
        pmta_parser_free(p);
        /* with the saved header: straight to the offset */
        c.len = 0;
        c.out[0] = '\0';
        p = pmta_parser_new(&o);
        CHECK_EQ_INT(pmta_parser_resume(p, 18, "type,a", 6), 0);
        /* the byte before the offset tells a record boundary */
        CHECK_EQ_INT(pmta_parser_next_offset(p), 17);
        CHECK_EQ_INT(pmta_parser_settled_offset(p), 18);
        CHECK_EQ_INT(pmta_parser_feed(p, in + 17, 6), PMTA_FEED_OK);
        CHECK_EQ_STR(c.out, "18-22|b|3\n");
        pmta_parser_free(p);
}

/* An over-long line is skipped to its end whatever its quotes, its bytes
 * settled as they go, and a resume in the middle of it skips the rest. */
static void test_long_skip(void)
{
        static char in[4096];
        static struct collect c;
        struct pmta_parser_opts o = all_types();
        o.record_max = 64;
        /* an open quote in the over-long line: the records after it survive */
        size_t n = (size_t)sprintf(in, "type,a,b\nb,\"");
        memset(in + n, 'x', 200);
        n += 200;
        size_t bad_end = n + 1;
        n += (size_t)sprintf(in + n, "\nb,1,2\nb,3,4\nb,5,\"q\"\n");
        for (size_t chunk = 1; chunk < 80; chunk += 13) {
                parse_opts(in, n, chunk, 1, true, o, &c);
                char want[160];
                snprintf(want, sizeof want,
                         "!2@2:9-%zu\n%zu-%zu|b|1|2\n%zu-%zu|b|3|4\n%zu-%zu|b|5|q\n", bad_end,
                         bad_end, bad_end + 6, bad_end + 6, bad_end + 12, bad_end + 12,
                         bad_end + 20);
                CHECK_EQ_STR(c.out, want);
                pmta_parser_free(c.p);
        }
        /* while skipping, everything read is settled */
        n = (size_t)sprintf(in, "type,a\nb,");
        memset(in + n, '\0', 1000);
        n += 1000;
        parse_opts(in, n, 100, 1, false, o, &c);
        CHECK_EQ_INT(pmta_parser_next_offset(c.p), n);
        CHECK_EQ_INT(pmta_parser_settled_offset(c.p), n);
        CHECK_EQ_INT(pmta_parser_pending(c.p), 0);
        pmta_parser_free(c.p);
        /* resumed inside it (a save during the skip): the rest is skipped,
         * rejected when it is itself over-long, silently when short */
        n = (size_t)sprintf(in, "type,a\nb,");
        memset(in + n, '\0', 1000);
        n += 1000;
        n += (size_t)sprintf(in + n, "\nb,7\n");
        c.len = 0;
        c.out[0] = '\0';
        o.on_record = on_record;
        o.on_reject = on_reject;
        o.ctx = &c;
        const uint64_t at[] = {100, 990};
        const char *const want[] = {"!2@0:100-1010\n1010-1014|b|7\n", "1010-1014|b|7\n"};
        for (int k = 0; k < 2; k++) {
                c.len = 0;
                c.out[0] = '\0';
                struct pmta_parser *p = pmta_parser_new(&o);
                CHECK_EQ_INT(pmta_parser_resume(p, at[k], "type,a", 6), 0);
                for (int guard = 0; guard < 1000; guard++) {
                        uint64_t off = pmta_parser_next_offset(p);
                        if (off >= n)
                                break;
                        size_t len = n - off < 37 ? n - off : 37;
                        CHECK(pmta_parser_feed(p, in + off, len) >= 0);
                }
                CHECK_EQ_INT(pmta_parser_finish(p), PMTA_FEED_OK);
                CHECK_EQ_STR(c.out, want[k]);
                pmta_parser_free(p);
        }
}

static void test_type_codes(void)
{
        CHECK_EQ_STR(pmta_type_code("feedback-loop"), "f");
        CHECK_EQ_STR(pmta_type_code("remote-bounce"), "rb");
        CHECK_EQ_STR(pmta_type_code("b"), "b");
        CHECK(pmta_type_code("bogus") == NULL);
}

/* A record on_record cannot take now (out of memory) is held: handed again
 * from its own start, in every chunking, counted once; what comes out is
 * what comes out without holds. */
static void test_hold(void)
{
        static const char *const inputs[] = {
            "type,timeLogged,rcpt\r\nb,1,a@x\r\nrb,2,b@y\r\nd,3,c@z\r\nzz,4,d@w\r\n",
            "type,dsnDiag\r\nb,\"550, \"\"no\"\" user\r\nsecond line\"\r\nb,x\r\nb,y,z\r\nb,w\r\n",
            "type,a,b\nb,1,2\ntype,b,a,c\nb,3,4,5\n\n\nb,6,7,8\n",
            "type,a\nb,1\nb,2", /* the last one handed by finish */
        };
        static struct collect plain, held;
        static char expected[sizeof plain.out];
        for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
                const char *in = inputs[i];
                plain.hold_each = 0;
                snprintf(expected, sizeof expected, "%s",
                         parse_opts(in, strlen(in), 1 << 20, 1, true, all_types(), &plain));
                struct pmta_stats want = *pmta_parser_stats(plain.p);
                pmta_parser_free(plain.p);
                CHECK(want.records >= 2);
                for (unsigned each = 2; each <= 3; each++) {
                        for (unsigned run = 0; run < 8; run++) {
                                held.hold_each = each;
                                held.calls = held.holds = 0;
                                size_t chunk = run == 0 ? 1 << 20 : run == 1 ? 1 : 0;
                                CHECK_EQ_STR(parse_opts(in, strlen(in), chunk, run, true,
                                                        all_types(), &held),
                                             expected);
                                const struct pmta_stats *got = pmta_parser_stats(held.p);
                                CHECK(held.holds > 0 || want.records < each);
                                CHECK_EQ_INT(got->records, want.records);
                                CHECK_EQ_INT(got->rejected, want.rejected);
                                CHECK_EQ_INT(got->other_types, want.other_types);
                                CHECK_EQ_INT(got->ntypes, want.ntypes);
                                for (size_t k = 0; k < got->ntypes && k < want.ntypes; k++)
                                        CHECK_EQ_INT(got->types[k].count, want.types[k].count);
                                pmta_parser_free(held.p);
                        }
                }
        }
}

int main(void)
{
        RUN(test_header_and_rows);
        RUN(test_lf_and_crlf);
        RUN(test_quoted_fields);
        RUN(test_union_header);
        RUN(test_second_header_remaps);
        RUN(test_no_header);
        RUN(test_cell_count);
        RUN(test_filter_before_count);
        RUN(test_not_a_record);
        RUN(test_pending_last_record);
        RUN(test_empty_inputs);
        RUN(test_blank_lines_and_bom);
        RUN(test_binary_bytes);
        RUN(test_unterminated_quote_recovers);
        RUN(test_runaway_quote_live);
        RUN(test_stray_quote_closed_later);
        RUN(test_long_skip);
        RUN(test_too_long);
        RUN(test_memory_bounded);
        RUN(test_too_many_cells);
        RUN(test_resume);
        RUN(test_type_codes);
        RUN(test_hold);
        TEST_MAIN_END;
}
