/* Loading a configuration as a whole: defaults, the checks that need the
 * whole file, and freeing it again. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_impl.h"

#define DEFAULT_STATE_DIR "/var/lib/pmtatail"

static void set_defaults(struct config *c)
{
        memset(c, 0, sizeof *c);
        c->output.kind = CONFIG_OUTPUT_NONE;
        c->output.format = CONFIG_FORMAT_AUTO;
        c->output.batch_max_records = 500;
        c->output.batch_max_bytes = MIB;
        c->output.linger_ms = 1000;
        c->output.timeout_s = 30;
        c->output.retry_max_s = 60;
        c->output.gzip = false;
        c->output.tls_verify = true;
        c->output.include_message = true;
        c->output.concurrency = 16;
        c->output.adaptive = true;
        c->forward = CONFIG_FORWARD_ALL;
        c->log_level = LOG_INFO;
        c->metrics_interval_s = 15;
}

/* Checks that need the whole file, and defaults that cost something. */
static void finish(struct parse *p)
{
        struct config *c = p->cfg;
        char q[SHOW_LEN];
        for (size_t i = 0; i < c->n_sources; i++) {
                struct config_source *s = &c->sources[i];
                if (!s->path) {
                        cfg_problem(p, s->line, "[source %s] has no path", s->name);
                        continue;
                }
                for (size_t j = 0; j < i; j++) {
                        if (c->sources[j].path && strcmp(c->sources[j].path, s->path) == 0)
                                cfg_problem(
                                    p, s->line, "[source %s] has the same path as [source %s]: %s",
                                    s->name, c->sources[j].name, cfg_show(q, sizeof q, s->path));
                }
        }
        struct config_output *o = &c->output;
        if (o->url && o->file) {
                int l = p->url_line > p->file_line ? p->url_line : p->file_line;
                cfg_problem(p, l, "url and file are mutually exclusive in [output]");
        } else if (o->url) {
                o->kind = CONFIG_OUTPUT_URL;
        } else if (o->file) {
                o->kind = CONFIG_OUTPUT_FILE;
        }
        /* The most in flight; the adaptive window finds what the backend
         * takes below it. One event per request needs many: 64 at 50 ms an
         * answer is 1,280 events/s. */
        if (!p->concurrency_set)
                o->concurrency = config_output_single(o) ? 64 : 16;
        /* Oempro's batch API allows 100 requests per 60 s. */
        if (!p->max_requests_set)
                o->max_requests_per_minute =
                    config_url_endpoint(o->url) == CONFIG_ENDPOINT_BATCH_API ? 100 : 0;
        if (!o->host) {
                char host[256];
                if (gethostname(host, sizeof host) < 0 || !host[0]) {
                        cfg_problem(p, 0, "cannot find the host name (%s); set host in [output]",
                                    strerror(errno));
                } else {
                        host[sizeof host - 1] = '\0';
                        o->host = cfg_dup_or_report(p, host);
                }
        }
        if (!c->state_dir)
                c->state_dir = cfg_dup_or_report(p, DEFAULT_STATE_DIR);
        if (!c->pmta_config)
                c->pmta_config = cfg_dup_or_report(p, CONFIG_DEFAULT_PMTA_CONFIG);
}

static int load(const char *path, bool must_exist, struct config *out, struct config_error *err,
                bool keep_partial);

int config_load(const char *path, bool must_exist, struct config *out, struct config_error *err)
{
        return load(path, must_exist, out, err, false);
}

int config_load_partial(const char *path, bool must_exist, struct config *out,
                        struct config_error *err)
{
        return load(path, must_exist, out, err, true);
}

static int load(const char *path, bool must_exist, struct config *out, struct config_error *err,
                bool keep_partial)
{
        struct config_error scratch;
        struct parse p;
        memset(&p, 0, sizeof p);
        p.path = path;
        p.cfg = out;
        p.err = err ? err : &scratch;
        p.err->count = 0;
        p.err->dropped = 0;
        p.sec = SEC_NONE;
        p.last_key = -1;
        buf_init(&p.cont, CONT_VALUE_MAX);
        set_defaults(out);

        p.fp = fopen(path, "re");
        if (!p.fp) {
                if (errno == ENOENT && !must_exist) {
                        finish(&p);
                        goto done;
                }
                cfg_problem(&p, 0, "cannot open: %s", strerror(errno));
                goto done;
        }
        struct stat st;
        if (fstat(fileno(p.fp), &st) < 0) {
                cfg_problem(&p, 0, "cannot stat: %s", strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
                cfg_problem(&p, 0, "is a directory");
        } else {
                int rc = cfg_read_file(&p);
                /* Every line inih rejects should have been reported by the
                 * reader; this catches a disagreement between the two. */
                if (rc > 0 && p.problems == 0)
                        cfg_problem(&p, rc, "syntax error");
                else if (rc < 0)
                        cfg_problem(&p, 0, "cannot parse (out of memory)");
                finish(&p);
        }
        fclose(p.fp);
done:
        buf_free(&p.cont);
        if (p.problems > 0) {
                if (!keep_partial)
                        config_free(out);
                return -1;
        }
        return 0;
}

static void free_secret(char *s)
{
        if (s) {
                explicit_bzero(s, strlen(s));
                free(s);
        }
}

void config_free(struct config *c)
{
        for (size_t i = 0; i < c->n_sources; i++) {
                struct config_source *s = &c->sources[i];
                free(s->name);
                free(s->path);
                free(s->archive_dir);
                free(s->columns);
        }
        struct config_output *o = &c->output;
        free(o->url);
        free(o->file);
        for (size_t i = 0; i < o->n_headers; i++) {
                free(o->headers[i].name);
                free_secret(o->headers[i].value);
                free(o->headers[i].file);
        }
        free(o->ca_file);
        free(o->host);
        free(c->state_dir);
        free(c->classify_patterns);
        free(c->metrics_textfile);
        free(c->pmta_config);
        memset(c, 0, sizeof *c);
}
