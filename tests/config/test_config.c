/* config_load on real files: every key, defaults, every kind of problem with
 * its line, and secrets kept out of everything printed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "test.h"

TEST_MAIN_BEGIN

/* What one load produced; big, so tests keep it static. */
struct loaded {
        char path[512];
        struct config c;
        struct config_error e;
        int rc;
};

static const char *tmpdir(void)
{
        const char *d = getenv("TMPDIR");
        return d && *d ? d : "/tmp";
}

/* Write `text` to a new temp file and put its name in path. */
static int write_temp(const char *text, char *path, size_t size)
{
        snprintf(path, size, "%s/pmtatail-config-XXXXXX", tmpdir());
        int fd = mkstemp(path);
        if (fd < 0) {
                perror("mkstemp");
                return -1;
        }
        size_t len = strlen(text);
        ssize_t w = write(fd, text, len);
        close(fd);
        return w == (ssize_t)len ? 0 : -1;
}

static void load(struct loaded *l, const char *text)
{
        memset(l, 0, sizeof *l);
        if (write_temp(text, l->path, sizeof l->path) < 0) {
                l->rc = -2;
                CHECK(!"cannot write the temp file");
                return;
        }
        l->rc = config_load(l->path, true, &l->c, &l->e);
        unlink(l->path);
}

/* Whether some message says `what` about `line` of the loaded file. */
static bool error_at(const struct loaded *l, int line, const char *what)
{
        char prefix[600];
        snprintf(prefix, sizeof prefix, "%s:%d: ", l->path, line);
        for (size_t i = 0; i < l->e.count; i++) {
                if (strncmp(l->e.msg[i], prefix, strlen(prefix)) == 0 && strstr(l->e.msg[i], what))
                        return true;
        }
        return false;
}

static bool any_error_contains(const struct loaded *l, const char *what)
{
        for (size_t i = 0; i < l->e.count; i++) {
                if (strstr(l->e.msg[i], what))
                        return true;
        }
        return false;
}

static void dump_errors(const struct loaded *l)
{
        config_error_print(&l->e, stderr);
}

/* config_describe's output as a malloc'd string. */
static char *describe(const struct config *c)
{
        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);
        if (!f)
                return NULL;
        config_describe(c, f);
        fclose(f);
        return text;
}

static struct loaded L; /* one at a time; each test starts with load() */

static void t_full_file(void)
{
        char hf[512];
        CHECK(write_temp("X-From-File: filesecret-777\n", hf, sizeof hf) == 0);
        char text[4096];
        snprintf(text, sizeof text,
                 "; a full configuration\n"
                 "[source bounces]\n"
                 "path = /var/log/pmta/bounces.csv\n"
                 "archive_dir = /var/log/pmta/accounting/bounces\n"
                 "records = b, rb\n"
                 "start_at = end\n"
                 "columns = type, timeLogged,orig , rcpt\n"
                 "record_max = 64k\n"
                 "\n"
                 "[source fbl]\n"
                 "path = /var/log/pmta/fbl.csv\n"
                 "records = f\n"
                 "\n"
                 "[output]\n"
                 "url = https://oempro.example.com/system/bounce_webhook?type=pmta\n"
                 "format = single\n"
                 "header = X-Octeth-Signature: inline-secret-42\n"
                 "header_file = %s\n"
                 "batch_max_records = 250\n"
                 "batch_max_bytes = 2M\n"
                 "linger_ms = 0\n"
                 "timeout_s = 12\n"
                 "retry_max_s = 300\n"
                 "gzip = yes\n"
                 "tls_verify = off\n"
                 "ca_file = /etc/ssl/ca.pem\n"
                 "include_message = false\n"
                 "concurrency = 8\n"
                 "host = mta1.example.com\n"
                 "\n"
                 "[state]\n"
                 "dir = /srv/pmtatail\n"
                 "[classify]\n"
                 "patterns = /etc/pmtatail/bounce-patterns.txt\n"
                 "forward = hard, soft\n"
                 "[log]\n"
                 "level = debug ; inline comment\n"
                 "[metrics]\n"
                 "textfile = /var/lib/node_exporter/pmtatail.prom\n"
                 "interval_s = 30\n",
                 hf);
        load(&L, text);
        unlink(hf);
        CHECK_EQ_INT(L.rc, 0);
        dump_errors(&L);
        const struct config *c = &L.c;
        CHECK_EQ_INT(c->n_sources, 2);
        const struct config_source *s = &c->sources[0];
        CHECK_EQ_STR(s->name, "bounces");
        CHECK_EQ_STR(s->path, "/var/log/pmta/bounces.csv");
        CHECK_EQ_STR(s->archive_dir, "/var/log/pmta/accounting/bounces");
        CHECK_EQ_INT(s->n_records, 2);
        CHECK_EQ_STR(s->records[0], "b");
        CHECK_EQ_STR(s->records[1], "rb");
        CHECK_EQ_INT(s->start_at, CONFIG_START_END);
        CHECK_EQ_STR(s->columns, "type,timeLogged,orig,rcpt");
        CHECK_EQ_INT(s->record_max, 65536);
        CHECK_EQ_INT(s->line, 2);
        s = &c->sources[1];
        CHECK_EQ_STR(s->name, "fbl");
        CHECK(s->archive_dir == NULL);
        CHECK(s->columns == NULL);
        CHECK_EQ_INT(s->n_records, 1);
        CHECK_EQ_STR(s->records[0], "f");
        CHECK_EQ_INT(s->start_at, CONFIG_START_BEGINNING);
        CHECK_EQ_INT(s->record_max, 1048576);
        CHECK(config_source_wants(s, "f"));
        CHECK(!config_source_wants(s, "b"));

        const struct config_output *o = &c->output;
        CHECK_EQ_INT(o->kind, CONFIG_OUTPUT_URL);
        CHECK_EQ_STR(o->url, "https://oempro.example.com/system/bounce_webhook?type=pmta");
        CHECK(o->file == NULL);
        CHECK_EQ_INT(o->format, CONFIG_FORMAT_SINGLE);
        CHECK_EQ_INT(o->n_headers, 2);
        CHECK_EQ_STR(o->headers[0].name, "X-Octeth-Signature");
        CHECK_EQ_STR(o->headers[0].value, "inline-secret-42");
        CHECK(!o->headers[0].from_file);
        CHECK_EQ_STR(o->headers[1].name, "X-From-File");
        CHECK_EQ_STR(o->headers[1].value, "filesecret-777");
        CHECK(o->headers[1].from_file);
        CHECK_EQ_STR(o->headers[1].file, hf);
        CHECK_EQ_INT(o->batch_max_records, 250);
        CHECK_EQ_INT(o->batch_max_bytes, 2 * 1048576);
        CHECK_EQ_INT(o->linger_ms, 0);
        CHECK_EQ_INT(o->timeout_s, 12);
        CHECK_EQ_INT(o->retry_max_s, 300);
        CHECK(o->gzip);
        CHECK(!o->tls_verify);
        CHECK_EQ_STR(o->ca_file, "/etc/ssl/ca.pem");
        CHECK(!o->include_message);
        CHECK_EQ_INT(o->concurrency, 8);
        CHECK_EQ_STR(o->host, "mta1.example.com");
        CHECK_EQ_STR(c->state_dir, "/srv/pmtatail");
        CHECK_EQ_STR(c->classify_patterns, "/etc/pmtatail/bounce-patterns.txt");
        CHECK_EQ_INT(c->forward, CONFIG_FORWARD_HARD_SOFT);
        CHECK_EQ_INT(c->log_level, LOG_DEBUG);
        CHECK_EQ_STR(c->metrics_textfile, "/var/lib/node_exporter/pmtatail.prom");
        CHECK_EQ_INT(c->metrics_interval_s, 30);

        char *d = describe(c);
        CHECK(d != NULL);
        if (d) {
                CHECK(strstr(d, "[source bounces]\n") != NULL);
                CHECK(strstr(d, "records = b, rb\n") != NULL);
                CHECK(strstr(d, "header = X-Octeth-Signature: ****\n") != NULL);
                CHECK(strstr(d, "header = X-From-File: ****") != NULL);
                CHECK(strstr(d, "inline-secret-42") == NULL);
                CHECK(strstr(d, "filesecret-777") == NULL);
                CHECK(strstr(d, "forward = hard, soft\n") != NULL);
                CHECK(strstr(d, "level = debug\n") != NULL);
                free(d);
        }
        config_free(&L.c);
        CHECK_EQ_INT(L.c.n_sources, 0);
        CHECK(L.c.output.url == NULL);
}

static void t_defaults_when_missing(void)
{
        char dir[512];
        snprintf(dir, sizeof dir, "%s/pmtatail-config-XXXXXX", tmpdir());
        CHECK(mkdtemp(dir) != NULL);
        char path[600];
        snprintf(path, sizeof path, "%s/absent.conf", dir);

        struct config c;
        struct config_error e;
        CHECK_EQ_INT(config_load(path, false, &c, &e), 0);
        CHECK_EQ_INT(e.count, 0);
        CHECK_EQ_INT(c.n_sources, 0);
        CHECK_EQ_INT(c.output.kind, CONFIG_OUTPUT_NONE);
        CHECK_EQ_INT(c.output.format, CONFIG_FORMAT_AUTO);
        CHECK_EQ_INT(c.output.n_headers, 0);
        CHECK_EQ_INT(c.output.batch_max_records, 500);
        CHECK_EQ_INT(c.output.batch_max_bytes, 1048576);
        CHECK_EQ_INT(c.output.linger_ms, 1000);
        CHECK_EQ_INT(c.output.timeout_s, 30);
        CHECK_EQ_INT(c.output.retry_max_s, 60);
        CHECK(!c.output.gzip);
        CHECK(c.output.tls_verify);
        CHECK(c.output.include_message);
        CHECK(c.output.ca_file == NULL);
        CHECK_EQ_INT(c.output.concurrency, 16);
        CHECK(c.output.adaptive);
        char host[256] = "";
        gethostname(host, sizeof host);
        host[sizeof host - 1] = '\0';
        CHECK_EQ_STR(c.output.host, host);
        CHECK_EQ_STR(c.state_dir, "/var/lib/pmtatail");
        CHECK(c.classify_patterns == NULL);
        CHECK_EQ_INT(c.forward, CONFIG_FORWARD_ALL);
        CHECK_EQ_INT(c.log_level, LOG_INFO);
        CHECK(c.metrics_textfile == NULL);
        CHECK_EQ_INT(c.metrics_interval_s, 15);
        config_free(&c);

        CHECK_EQ_INT(config_load(path, true, &c, &e), -1);
        CHECK_EQ_INT(e.count, 1);
        CHECK(strstr(e.msg[0], path) == e.msg[0]);
        CHECK(strstr(e.msg[0], "cannot open") != NULL);
        config_free(&c);

        /* A directory exists but is no configuration: an error either way. */
        CHECK_EQ_INT(config_load(dir, false, &c, &e), -1);
        CHECK_EQ_INT(e.count, 1);
        CHECK(strstr(e.msg[0], "directory") != NULL);
        /* Passing no error struct is allowed. */
        CHECK_EQ_INT(config_load(dir, false, &c, NULL), -1);
        rmdir(dir);
}

static void t_source_defaults(void)
{
        load(&L, "[source a]\npath = /a.csv\n");
        CHECK_EQ_INT(L.rc, 0);
        const struct config_source *s = &L.c.sources[0];
        CHECK_EQ_INT(s->n_records, 3);
        CHECK_EQ_STR(s->records[0], "b");
        CHECK_EQ_STR(s->records[1], "rb");
        CHECK_EQ_STR(s->records[2], "f");
        CHECK_EQ_INT(s->start_at, CONFIG_START_BEGINNING);
        CHECK_EQ_INT(s->record_max, 1048576);
        CHECK(s->columns == NULL);
        config_free(&L.c);
}

static void t_unknown_key_and_section(void)
{
        load(&L, "[output]\n"                /* 1 */
                 "url = http://x.example/\n" /* 2 */
                 "\n"                        /* 3 */
                 "; comment\n"               /* 4 */
                 "batch_max_recods = 10\n"   /* 5 */
                 "[outptu]\n"                /* 6 */
                 "gzip = yes\n"              /* 7: not reported again */
                 "[source s]\n"              /* 8 */
                 "  path = /s.csv\n"         /* 9: indented first key is a key */
                 "archive = /x\n"            /* 10 */
                 "[state]\n"                 /* 11 */
                 "directory = /x\n");        /* 12 */
        CHECK_EQ_INT(L.rc, -1);
        CHECK_EQ_INT(L.e.count, 4);
        CHECK(error_at(&L, 5, "unknown key \"batch_max_recods\" in [output]"));
        CHECK(error_at(&L, 5, "did you mean \"batch_max_records\""));
        CHECK(error_at(&L, 6, "unknown section [\"outptu\"]"));
        CHECK(error_at(&L, 6, "did you mean [output]"));
        CHECK(error_at(&L, 10, "unknown key \"archive\" in [source s]"));
        CHECK(error_at(&L, 12, "unknown key \"directory\" in [state]"));
        dump_errors(&L);
        /* A failed load leaves nothing behind. */
        CHECK_EQ_INT(L.c.n_sources, 0);
        CHECK(L.c.output.url == NULL);
}

static void t_line_numbers_with_crlf_and_bom(void)
{
        load(&L, "\xEF\xBB\xBF[log]\r\n"
                 "level = info\r\n"
                 "\r\n"
                 "colour = red\r\n");
        CHECK_EQ_INT(L.rc, -1);
        CHECK_EQ_INT(L.e.count, 1);
        CHECK(error_at(&L, 4, "unknown key \"colour\" in [log]"));
}

static void t_syntax_errors(void)
{
        load(&L, "path = /x\n"       /* 1: before any section */
                 "[output\n"         /* 2 */
                 "[log]\n"           /* 3 */
                 "just some words\n" /* 4 */
                 "level = warn\n"    /* 5 */
                 "[source]\n"        /* 6 */
                 "[source a/b]\n"    /* 7 */
                 "[log]\n"           /* 8 */
                 "[state extra]\n"); /* 9 */
        CHECK_EQ_INT(L.rc, -1);
        CHECK(error_at(&L, 1, "before any [section]"));
        CHECK(error_at(&L, 2, "closing ]"));
        CHECK(error_at(&L, 4, "expected \"key = value\""));
        CHECK(error_at(&L, 6, "needs a name"));
        CHECK(error_at(&L, 7, "may hold only"));
        CHECK(error_at(&L, 8, "duplicate section [log] (first on line 3)"));
        CHECK(error_at(&L, 9, "takes no name"));
        CHECK_EQ_INT(L.e.count, 7);
        dump_errors(&L);
}

static void t_duplicates(void)
{
        load(&L, "[source bounces]\n"  /* 1 */
                 "path = /a.csv\n"     /* 2 */
                 "path = /b.csv\n"     /* 3 */
                 "[source bounces]\n"  /* 4 */
                 "path = /c.csv\n"     /* 5 */
                 "[source other]\n"    /* 6 */
                 "path = /a.csv\n"     /* 7 */
                 "[source nopath]\n"); /* 8 */
        CHECK_EQ_INT(L.rc, -1);
        CHECK(error_at(&L, 3, "path given twice in [source bounces] (first on line 2)"));
        CHECK(error_at(&L, 4, "duplicate source \"bounces\" (first on line 1)"));
        CHECK(error_at(&L, 6, "same path as [source bounces]"));
        CHECK(error_at(&L, 8, "[source nopath] has no path"));
        CHECK_EQ_INT(L.e.count, 4);
        dump_errors(&L);
}

static void t_bad_values(void)
{
        load(&L, "[source s]\n"                          /* 1 */
                 "path = /s.csv\n"                       /* 2 */
                 "records = b, bogus\n"                  /* 3 */
                 "start_at = middle\n"                   /* 4 */
                 "record_max = 1G\n"                     /* 5 */
                 "[output]\n"                            /* 6 */
                 "batch_max_records = 12x\n"             /* 7 */
                 "batch_max_bytes = -5\n"                /* 8 */
                 "concurrency = 513\n"                   /* 9 */
                 "timeout_s = 0\n"                       /* 10 */
                 "gzip = maybe\n"                        /* 11 */
                 "format = batches\n"                    /* 12 */
                 "url = ftp://x.example/\n"              /* 13 */
                 "linger_ms = 99999999999999999999999\n" /* 14 */
                 "[log]\n"                               /* 15 */
                 "level = loud\n"                        /* 16 */
                 "[classify]\n"                          /* 17 */
                 "forward = soft\n"                      /* 18 */
                 "[metrics]\n"                           /* 19 */
                 "interval_s =\n"                        /* 20 */
                 "[state]\n"                             /* 21 */
                 "dir =\n");                             /* 22 */
        CHECK_EQ_INT(L.rc, -1);
        CHECK(error_at(&L, 3, "\"bogus\" is not a record type"));
        CHECK(error_at(&L, 4, "start_at: \"middle\" is not beginning or end"));
        CHECK(error_at(&L, 5, "record_max: \"1G\" is not a size"));
        CHECK(error_at(&L, 7, "batch_max_records: \"12x\" is not a whole number"));
        CHECK(error_at(&L, 8, "batch_max_bytes: \"-5\" is not a size"));
        CHECK(error_at(&L, 9, "concurrency: \"513\" is out of range (1 to 512)"));
        CHECK(error_at(&L, 10, "timeout_s: \"0\" is out of range"));
        CHECK(error_at(&L, 11, "gzip: \"maybe\" is not yes or no"));
        CHECK(error_at(&L, 12, "format: \"batches\" is not auto, batch or single"));
        CHECK(error_at(&L, 13, "url: must start with http:// or https://"));
        CHECK(error_at(&L, 14, "linger_ms"));
        CHECK(error_at(&L, 16, "level: \"loud\""));
        CHECK(error_at(&L, 18, "forward"));
        CHECK(error_at(&L, 20, "interval_s: \"\" is not a whole number"));
        CHECK(error_at(&L, 22, "dir: empty value"));
        CHECK_EQ_INT(L.e.count, 15);
        dump_errors(&L);
}

static void t_booleans_and_sizes(void)
{
        static const char *const yes[] = {"yes", "true", "on", "1", "YES", "True"};
        static const char *const no[] = {"no", "false", "off", "0", "No", "OFF"};
        for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
                char text[256];
                snprintf(text, sizeof text,
                         "[output]\ngzip = %s\ntls_verify = %s\nbatch_max_bytes = %s\n", yes[i],
                         no[i], i % 2 ? "3k" : "4096");
                load(&L, text);
                CHECK_EQ_INT(L.rc, 0);
                CHECK(L.c.output.gzip);
                CHECK(!L.c.output.tls_verify);
                CHECK_EQ_INT(L.c.output.batch_max_bytes, i % 2 ? 3072 : 4096);
                config_free(&L.c);
        }
}

static void t_url_and_file(void)
{
        load(&L, "[output]\nurl = https://a.example/hook\nfile = /tmp/events.ndjson\n");
        CHECK_EQ_INT(L.rc, -1);
        CHECK(error_at(&L, 3, "url and file are mutually exclusive"));

        load(&L, "[output]\nfile = -\n");
        CHECK_EQ_INT(L.rc, 0);
        CHECK_EQ_INT(L.c.output.kind, CONFIG_OUTPUT_FILE);
        CHECK_EQ_STR(L.c.output.file, "-");
        CHECK(L.c.output.url == NULL);
        config_free(&L.c);

        /* An empty value, as in the documented "ca_file =", means not set. */
        load(&L, "[output]\nurl =\nfile = /x.ndjson\nca_file =\n");
        CHECK_EQ_INT(L.rc, 0);
        CHECK_EQ_INT(L.c.output.kind, CONFIG_OUTPUT_FILE);
        CHECK(L.c.output.ca_file == NULL);
        config_free(&L.c);

        load(&L, "[output]\nformat = batch\n");
        CHECK_EQ_INT(L.rc, 0);
        CHECK_EQ_INT(L.c.output.kind, CONFIG_OUTPUT_NONE);
        config_free(&L.c);
}

static void t_records_names(void)
{
        load(&L, "[source all]\n"
                 "path = /all.csv\n"
                 "records = bounce, remote-bounce,feedback-loop delivery, transient,"
                 " transient-queue, receipt, remote-status, b, rs\n");
        CHECK_EQ_INT(L.rc, 0);
        const struct config_source *s = &L.c.sources[0];
        static const char *const want[] = {"b", "rb", "f", "d", "t", "tq", "r", "rs"};
        CHECK_EQ_INT(s->n_records, 8);
        for (size_t i = 0; i < 8 && i < s->n_records; i++)
                CHECK_EQ_STR(s->records[i], want[i]);
        config_free(&L.c);

        load(&L, "[source x]\npath = /x.csv\nrecords = ,\n");
        CHECK_EQ_INT(L.rc, -1);
        CHECK(error_at(&L, 3, "no record type given"));
}

static void t_continuation_lines(void)
{
        load(&L, "[source s]\n"                 /* 1 */
                 "path = /s.csv\n"              /* 2 */
                 "columns = type,timeLogged,\n" /* 3 */
                 "    orig, rcpt ; the rest\n"  /* 4 */
                 "    dsnStatus\n"              /* 5 */
                 "records = b\n"                /* 6 */
                 "  rb\n"                       /* 7 */
                 "start_at = end\n"             /* 8 */
                 "  beginning\n");              /* 9 */
        CHECK_EQ_INT(L.rc, -1);
        CHECK(error_at(&L, 9, "indented line continues start_at"));
        CHECK_EQ_INT(L.e.count, 1);
        dump_errors(&L);

        load(&L, "[source s]\n"
                 "path = /s.csv\n"
                 "columns = type,timeLogged,\n"
                 "    orig, rcpt ; the rest\n"
                 "    dsnStatus\n"
                 "records = b\n"
                 "  rb\n");
        CHECK_EQ_INT(L.rc, 0);
        CHECK_EQ_STR(L.c.sources[0].columns, "type,timeLogged,orig,rcpt,dsnStatus");
        CHECK_EQ_INT(L.c.sources[0].n_records, 2);
        CHECK_EQ_STR(L.c.sources[0].records[1], "rb");
        config_free(&L.c);
}

static void t_long_line(void)
{
        char text[1024];
        char longval[400];
        memset(longval, 'a', sizeof longval - 1);
        longval[sizeof longval - 1] = '\0';
        snprintf(text, sizeof text,
                 "[source s]\n"        /* 1 */
                 "path = /s.csv\n"     /* 2 */
                 "columns = %s\n"      /* 3: too long for inih */
                 "record_max = big\n", /* 4: still counted as line 4 */
                 longval);
        load(&L, text);
        CHECK_EQ_INT(L.rc, -1);
        CHECK(error_at(&L, 3, "line too long"));
        CHECK(error_at(&L, 4, "record_max: \"big\""));
        CHECK_EQ_INT(L.e.count, 2);
        dump_errors(&L);
}

static void t_header_file_masked(void)
{
        char hf[512];
        CHECK(write_temp("# the webhook signature\n"
                         "\n"
                         "X-Octeth-Signature: s3cr3t-from-file ; with a semicolon\r\n",
                         hf, sizeof hf) == 0);
        char text[1024];
        snprintf(text, sizeof text,
                 "[output]\n"
                 "url = https://user:pa55word@oempro.example.com/hook\n"
                 "header_file = %s\n",
                 hf);
        load(&L, text);
        unlink(hf);
        CHECK_EQ_INT(L.rc, 0);
        dump_errors(&L);
        const struct config_output *o = &L.c.output;
        CHECK_EQ_INT(o->n_headers, 1);
        CHECK_EQ_STR(o->headers[0].name, "X-Octeth-Signature");
        /* The file is not INI: " ;" is part of the value there. */
        CHECK_EQ_STR(o->headers[0].value, "s3cr3t-from-file ; with a semicolon");
        CHECK(o->headers[0].from_file);

        FILE *f = tmpfile();
        CHECK(f != NULL);
        if (f) {
                config_describe(&L.c, f);
                long n = ftell(f);
                rewind(f);
                char out[8192] = "";
                size_t got = fread(out, 1, sizeof out - 1, f);
                out[got] = '\0';
                fclose(f);
                CHECK(n > 0 && (size_t)n == got);
                CHECK(strstr(out, "X-Octeth-Signature: ****") != NULL);
                CHECK(strstr(out, "s3cr3t") == NULL);
                CHECK(strstr(out, "pa55word") == NULL);
                CHECK(strstr(out, "url = https://****@oempro.example.com/hook\n") != NULL);
                CHECK(strstr(out, hf) != NULL);
        }
        config_free(&L.c);
}

static void t_secrets_stay_out_of_errors(void)
{
        char hf[512];
        CHECK(write_temp("X-Ok: fine\nno colon here topsecret-1\n", hf, sizeof hf) == 0);
        char text[2048];
        snprintf(text, sizeof text,
                 "[output]\n"                             /* 1 */
                 "header = topsecret-2 without a colon\n" /* 2 */
                 "header = Bad Name: topsecret-3\n"       /* 3 */
                 "header_file = %s\n"                     /* 4 */
                 "header = X-Sig: ok\n"                   /* 5 */
                 "  topsecret-4 continued\n"              /* 6 */
                 "header_file = %s.absent\n"              /* 7 */
                 "topsecret-5\n",                         /* 8 */
                 hf, hf);
        load(&L, text);
        unlink(hf);
        CHECK_EQ_INT(L.rc, -1);
        CHECK(error_at(&L, 2, "header: expected \"Name: value\""));
        CHECK(error_at(&L, 3, "not a valid token"));
        CHECK(error_at(&L, 4, "line 2: expected \"Name: value\""));
        CHECK(error_at(&L, 6, "indented line continues header"));
        CHECK(error_at(&L, 7, "cannot open"));
        CHECK(error_at(&L, 8, "expected \"key = value\""));
        CHECK(!any_error_contains(&L, "topsecret"));
        CHECK_EQ_INT(L.e.count, 6);
        dump_errors(&L);
}

static void t_headers_in_order(void)
{
        char hf[512];
        CHECK(write_temp("X-Two: 2\nX-Three: 3\n", hf, sizeof hf) == 0);
        char text[1024];
        snprintf(text, sizeof text,
                 "[output]\n"
                 "header = X-One: 1\n"
                 "header_file = %s\n"
                 "header = X-Four:4\n"
                 "header = X-One: again\n",
                 hf);
        load(&L, text);
        unlink(hf);
        CHECK_EQ_INT(L.rc, 0);
        const struct config_output *o = &L.c.output;
        CHECK_EQ_INT(o->n_headers, 5);
        static const char *const names[] = {"X-One", "X-Two", "X-Three", "X-Four", "X-One"};
        static const char *const values[] = {"1", "2", "3", "4", "again"};
        static const bool from_file[] = {false, true, true, false, false};
        for (size_t i = 0; i < 5 && i < o->n_headers; i++) {
                CHECK_EQ_STR(o->headers[i].name, names[i]);
                CHECK_EQ_STR(o->headers[i].value, values[i]);
                CHECK(o->headers[i].from_file == from_file[i]);
        }
        config_free(&L.c);
}

static void t_limits(void)
{
        /* More problems than are kept: the rest are counted. */
        char text[4096] = "[output]\n";
        for (int i = 0; i < 50; i++) {
                size_t len = strlen(text);
                snprintf(text + len, sizeof text - len, "typo%d = 1\n", i);
        }
        load(&L, text);
        CHECK_EQ_INT(L.rc, -1);
        CHECK_EQ_INT(L.e.count, CONFIG_MAX_ERRORS);
        CHECK_EQ_INT(L.e.dropped, 50 - CONFIG_MAX_ERRORS);
        CHECK(error_at(&L, 2, "typo0"));

        /* At most CONFIG_MAX_SOURCES sources. */
        static char many[CONFIG_MAX_SOURCES * 64 + 128];
        many[0] = '\0';
        for (int i = 0; i <= CONFIG_MAX_SOURCES; i++) {
                size_t len = strlen(many);
                snprintf(many + len, sizeof many - len, "[source s%d]\npath = /s%d.csv\n", i, i);
        }
        load(&L, many);
        CHECK_EQ_INT(L.rc, -1);
        CHECK(error_at(&L, 2 * CONFIG_MAX_SOURCES + 1, "too many sources"));
        CHECK_EQ_INT(L.e.count, 1);

        /* At most CONFIG_MAX_HEADERS headers. */
        char hdrs[4096] = "[output]\n";
        for (int i = 0; i <= CONFIG_MAX_HEADERS; i++) {
                size_t len = strlen(hdrs);
                snprintf(hdrs + len, sizeof hdrs - len, "header = X-H%d: v\n", i);
        }
        load(&L, hdrs);
        CHECK_EQ_INT(L.rc, -1);
        CHECK(error_at(&L, CONFIG_MAX_HEADERS + 2, "too many headers"));
}

/* format = auto and the output's defaults follow what the URL names. */
static void t_endpoints_and_pacing(void)
{
        CHECK_EQ_INT(config_url_endpoint(NULL), CONFIG_ENDPOINT_OTHER);
        CHECK_EQ_INT(config_url_endpoint("https://o.example/system/bounce_webhook?type=pmta"),
                     CONFIG_ENDPOINT_WEBHOOK);
        CHECK_EQ_INT(config_url_endpoint("https://o.example/oempro/system/bounce_webhook/"),
                     CONFIG_ENDPOINT_WEBHOOK);
        CHECK_EQ_INT(config_url_endpoint("https://o.example/system/bounce_webhook?type=fluentd"),
                     CONFIG_ENDPOINT_FLUENTD);
        CHECK_EQ_INT(config_url_endpoint("http://o.example/system/bounce_webhook?a=1&type=fluentd"
                                         "#x"),
                     CONFIG_ENDPOINT_FLUENTD);
        CHECK_EQ_INT(config_url_endpoint("http://o.example/system/bounce_webhook?type=fluentdx"),
                     CONFIG_ENDPOINT_WEBHOOK);
        CHECK_EQ_INT(config_url_endpoint("https://o.example/api/v1/process_pmta_log_file"),
                     CONFIG_ENDPOINT_BATCH_API);
        CHECK_EQ_INT(config_url_endpoint("https://o.example/system/bounce_webhookx"),
                     CONFIG_ENDPOINT_OTHER);
        CHECK_EQ_INT(config_url_endpoint("https://collector.example/ingest?x=/system/"
                                         "bounce_webhook"),
                     CONFIG_ENDPOINT_OTHER);

        /* no format: one event per request for type=pmta, 16 in flight */
        load(&L, "[output]\nurl = https://o.example/system/bounce_webhook?type=pmta\n");
        CHECK_EQ_INT(L.rc, 0);
        CHECK_EQ_INT(L.c.output.format, CONFIG_FORMAT_AUTO);
        CHECK(config_output_single(&L.c.output));
        CHECK_EQ_INT(config_output_max_events(&L.c.output), 1);
        CHECK_EQ_INT(L.c.output.concurrency, 64);
        CHECK(L.c.output.adaptive);
        CHECK_EQ_INT(L.c.output.max_rate, 0);
        CHECK_EQ_INT(L.c.output.max_requests_per_minute, 0);
        char *d = describe(&L.c);
        CHECK(d && strstr(d, "format = auto  ; one event per request\n"));
        CHECK(d && !strstr(d, "warning"));
        free(d);
        config_free(&L.c);

        /* type=fluentd: arrays of at most 1000, a warning above that */
        load(&L, "[output]\nurl = https://o.example/system/bounce_webhook?type=fluentd\n"
                 "batch_max_records = 5000\n");
        CHECK_EQ_INT(L.rc, 0);
        CHECK(!config_output_single(&L.c.output));
        CHECK_EQ_INT(config_output_max_events(&L.c.output), 1000);
        CHECK_EQ_INT(L.c.output.concurrency, 16);
        d = describe(&L.c);
        CHECK(d && strstr(d, "warning: batch_max_records = 5000 is capped to 1000"));
        free(d);
        config_free(&L.c);

        /* the batch API: arrays, 100 requests a minute unless set */
        load(&L, "[output]\nurl = https://o.example/api/v1/process_pmta_log_file\n");
        CHECK_EQ_INT(L.rc, 0);
        CHECK(!config_output_single(&L.c.output));
        CHECK_EQ_INT(config_output_max_events(&L.c.output), 0);
        CHECK_EQ_INT(L.c.output.max_requests_per_minute, 100);
        config_free(&L.c);
        load(&L, "[output]\nurl = https://o.example/api/v1/process_pmta_log_file\n"
                 "max_requests_per_minute = 0\nmax_rate = 250\n");
        CHECK_EQ_INT(L.rc, 0);
        CHECK_EQ_INT(L.c.output.max_requests_per_minute, 0);
        CHECK_EQ_INT(L.c.output.max_rate, 250);
        config_free(&L.c);

        /* forced formats; batch against type=pmta is warned about */
        load(&L, "[output]\nurl = https://o.example/system/bounce_webhook?type=pmta\n"
                 "format = batch\nconcurrency = 3\n");
        CHECK_EQ_INT(L.rc, 0);
        CHECK(!config_output_single(&L.c.output));
        CHECK_EQ_INT(L.c.output.concurrency, 3);
        d = describe(&L.c);
        CHECK(d && strstr(d, "warning: format = batch sends JSON arrays"));
        free(d);
        config_free(&L.c);
        load(&L, "[output]\nurl = https://collector.example/in\nformat = single\n"
                 "adaptive = no\n");
        CHECK_EQ_INT(L.rc, 0);
        CHECK(config_output_single(&L.c.output));
        CHECK_EQ_INT(L.c.output.concurrency, 64);
        CHECK(!L.c.output.adaptive);
        config_free(&L.c);
        load(&L, "[output]\nurl = https://collector.example/in\n");
        CHECK_EQ_INT(L.rc, 0);
        CHECK(!config_output_single(&L.c.output));
        config_free(&L.c);

        /* range checks */
        load(&L, "[output]\n"
                 "max_rate = -1\n"                    /* 2 */
                 "max_requests_per_minute = 100001\n" /* 3 */
                 "format = AUTO\n");                  /* 4: case does not matter */
        CHECK_EQ_INT(L.rc, -1);
        CHECK(error_at(&L, 2, "max_rate: \"-1\" is not a whole number"));
        CHECK(error_at(&L, 3, "max_requests_per_minute: \"100001\" is out of range"));
        CHECK(!any_error_contains(&L, "format"));
        CHECK_EQ_INT(L.e.count, 2);
        dump_errors(&L);
        load(&L, "[output]\n"
                 "max_rate = 1000001\n"             /* 2 */
                 "max_requests_per_minute = lots\n" /* 3 */
                 "format = sometimes\n");           /* 4 */
        CHECK_EQ_INT(L.rc, -1);
        CHECK(error_at(&L, 2, "max_rate: \"1000001\" is out of range (0 to 1000000)"));
        CHECK(error_at(&L, 3, "max_requests_per_minute: \"lots\" is not a whole number"));
        CHECK(error_at(&L, 4, "format: \"sometimes\" is not auto, batch or single"));
        dump_errors(&L);
}

int main(void)
{
        RUN(t_full_file);
        RUN(t_defaults_when_missing);
        RUN(t_source_defaults);
        RUN(t_unknown_key_and_section);
        RUN(t_line_numbers_with_crlf_and_bom);
        RUN(t_syntax_errors);
        RUN(t_duplicates);
        RUN(t_bad_values);
        RUN(t_booleans_and_sizes);
        RUN(t_url_and_file);
        RUN(t_records_names);
        RUN(t_continuation_lines);
        RUN(t_long_line);
        RUN(t_header_file_masked);
        RUN(t_secrets_stay_out_of_errors);
        RUN(t_headers_in_order);
        RUN(t_limits);
        RUN(t_endpoints_and_pacing);
        TEST_MAIN_END;
}
