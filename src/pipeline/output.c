#include "output.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int output_open(const struct config *cfg, push_ack_fn on_ack, void *ctx, const struct logger *log,
                bool own_thread, struct push **out, char *err, size_t errlen)
{
        const struct config_output *o = &cfg->output;
        if (o->kind == CONFIG_OUTPUT_FILE)
                return push_open_file(out, o->file, on_ack, ctx, log, err, errlen);
        if (o->kind != CONFIG_OUTPUT_URL) {
                snprintf(err, errlen, "no [output] configured: url or file");
                return -1;
        }
        struct push_header hdr[CONFIG_MAX_HEADERS];
        for (size_t i = 0; i < o->n_headers; i++)
                hdr[i] = (struct push_header){o->headers[i].name, o->headers[i].value};
        char dl[4096];
        snprintf(dl, sizeof dl, "%s/dead-letter.ndjson", cfg->state_dir);
        struct push_http_opts ho = {
            .url = o->url,
            .single = config_output_single(o),
            .max_events = config_output_max_events(o),
            .concurrency = o->concurrency,
            .fixed_concurrency = !o->adaptive,
            .max_rate = o->max_rate,
            .max_requests_per_minute = o->max_requests_per_minute,
            .status_code_250 = config_url_endpoint(o->url) == CONFIG_ENDPOINT_FLUENTD,
            .headers = hdr,
            .nheaders = o->n_headers,
            .gzip = o->gzip,
            .tls_verify = o->tls_verify,
            .ca_file = o->ca_file,
            .timeout_s = o->timeout_s,
            .retry_max_s = o->retry_max_s,
            .dead_letter = dl,
            .user_agent = "pmtatail/" PMTATAIL_VERSION,
        };
        if (push_open_http(out, &ho, on_ack, ctx, log, err, errlen) < 0)
                return -1;
        /* without the thread it still works, on one core */
        if (own_thread && push_thread(out) < 0)
                log_warn(log, "cannot start the output's thread, sending from the reading one: %s",
                         strerror(errno));
        return 0;
}
