/* Printing the resolved configuration (check-config), secrets masked, and
 * the problems found while loading it. */
#include <stdio.h>
#include <string.h>

#include "config.h"

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* --- describe ----------------------------------------------------------- */

static const char *or_empty(const char *s)
{
        return s ? s : "";
}

static const char *yes_no(bool b)
{
        return b ? "yes" : "no";
}

/* A URL's user information ("user:password@") is a credential too. */
static void print_url(FILE *out, const char *url)
{
        const char *auth = strstr(url, "://");
        if (!auth) {
                fputs(url, out);
                return;
        }
        auth += 3;
        size_t alen = strcspn(auth, "/?#");
        const char *at = NULL;
        for (size_t i = 0; i < alen; i++) {
                if (auth[i] == '@')
                        at = auth + i;
        }
        if (!at) {
                fputs(url, out);
                return;
        }
        fprintf(out, "%.*s****%s", (int)(auth - url), url, at);
}

void config_describe(const struct config *c, FILE *out)
{
        for (size_t i = 0; i < c->n_sources; i++) {
                const struct config_source *s = &c->sources[i];
                fprintf(out, "[source %s]\n", s->name);
                fprintf(out, "path = %s\n", or_empty(s->path));
                fprintf(out, "archive_dir = %s\n", or_empty(s->archive_dir));
                fputs("records = ", out);
                for (size_t j = 0; j < s->n_records; j++)
                        fprintf(out, "%s%s", j ? ", " : "", s->records[j]);
                fputc('\n', out);
                fprintf(out, "start_at = %s\n",
                        s->start_at == CONFIG_START_END ? "end" : "beginning");
                fprintf(out, "columns = %s\n", or_empty(s->columns));
                fprintf(out, "record_max = %zu\n\n", s->record_max);
        }
        if (c->n_sources == 0)
                fputs("; no [source] configured\n\n", out);

        const struct config_output *o = &c->output;
        fputs("[output]\n", out);
        if (o->kind == CONFIG_OUTPUT_NONE)
                fputs("; neither url nor file is set\n", out);
        fputs("url = ", out);
        if (o->url)
                print_url(out, o->url);
        fputc('\n', out);
        fprintf(out, "file = %s\n", or_empty(o->file));
        static const char *const format_names[] = {
            [CONFIG_FORMAT_BATCH] = "batch",
            [CONFIG_FORMAT_SINGLE] = "single",
            [CONFIG_FORMAT_AUTO] = "auto",
        };
        fprintf(out, "format = %s  ; %s\n", format_names[o->format],
                config_output_single(o) ? "one event per request" : "JSON arrays");
        enum config_endpoint ep = config_url_endpoint(o->url);
        if (o->format == CONFIG_FORMAT_BATCH && ep == CONFIG_ENDPOINT_WEBHOOK)
                fputs("; warning: format = batch sends JSON arrays, but Oempro's "
                      "bounce_webhook (type=pmta) is fed one event per request: use auto or "
                      "single\n",
                      out);
        if (o->kind == CONFIG_OUTPUT_URL && !config_output_single(o) &&
            ep == CONFIG_ENDPOINT_FLUENTD && o->batch_max_records > CONFIG_FLUENTD_MAX_EVENTS)
                fprintf(out,
                        "; warning: batch_max_records = %u is capped to %u events per "
                        "request for type=fluentd (more is answered 413)\n",
                        o->batch_max_records, CONFIG_FLUENTD_MAX_EVENTS);
        for (size_t i = 0; i < o->n_headers; i++) {
                const struct config_header *h = &o->headers[i];
                /* Only the name: the value is a secret, whatever its origin. */
                fprintf(out, "header = %s: ****", h->name);
                if (h->from_file)
                        fprintf(out, "  ; from %s", or_empty(h->file));
                fputc('\n', out);
        }
        fprintf(out, "batch_max_records = %u\n", o->batch_max_records);
        fprintf(out, "batch_max_bytes = %zu\n", o->batch_max_bytes);
        fprintf(out, "linger_ms = %u\n", o->linger_ms);
        fprintf(out, "timeout_s = %u\n", o->timeout_s);
        fprintf(out, "retry_max_s = %u\n", o->retry_max_s);
        fprintf(out, "gzip = %s\n", yes_no(o->gzip));
        fprintf(out, "tls_verify = %s\n", yes_no(o->tls_verify));
        fprintf(out, "ca_file = %s\n", or_empty(o->ca_file));
        fprintf(out, "include_message = %s\n", yes_no(o->include_message));
        fprintf(out, "concurrency = %u\n", o->concurrency);
        fprintf(out, "adaptive = %s\n", o->adaptive ? "yes" : "no");
        fprintf(out, "max_rate = %u\n", o->max_rate);
        fprintf(out, "max_requests_per_minute = %u\n", o->max_requests_per_minute);
        fprintf(out, "host = %s\n\n", or_empty(o->host));

        fprintf(out, "[state]\ndir = %s\n\n", or_empty(c->state_dir));

        static const char *const forward_names[] = {
            [CONFIG_FORWARD_ALL] = "all",
            [CONFIG_FORWARD_HARD] = "hard",
            [CONFIG_FORWARD_HARD_SOFT] = "hard, soft",
        };
        fprintf(out, "[classify]\npatterns = %s\nforward = %s\n\n", or_empty(c->classify_patterns),
                forward_names[c->forward]);

        unsigned lvl = (unsigned)c->log_level;
        fprintf(out, "[log]\nlevel = %s\n\n",
                lvl < sizeof level_names / sizeof level_names[0] ? level_names[lvl] : "info");

        fprintf(out, "[metrics]\ntextfile = %s\ninterval_s = %u\n", or_empty(c->metrics_textfile),
                c->metrics_interval_s);

        fprintf(out, "\n[pmta]\nconfig = %s\n", or_empty(c->pmta_config));
}

void config_error_print(const struct config_error *err, FILE *out)
{
        for (size_t i = 0; i < err->count; i++)
                fprintf(out, "%s\n", err->msg[i]);
        if (err->dropped)
                fprintf(out, "(%zu more problems not shown)\n", err->dropped);
}
