/* Small questions asked of a loaded configuration: which records a source
 * wants, which header files it read, and the URL endpoint rules for
 * Oempro's webhook and what follows from them. */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "config.h"

size_t config_record_types(const struct config *c, const char **codes, size_t max,
                           size_t *record_max)
{
        size_t n = 0;
        *record_max = 0;
        for (size_t i = 0; i < c->n_sources; i++) {
                const struct config_source *src = &c->sources[i];
                for (size_t k = 0; k < src->n_records; k++) {
                        size_t j = 0;
                        while (j < n && strcmp(codes[j], src->records[k]) != 0)
                                j++;
                        if (j == n && n < max)
                                codes[n++] = src->records[k];
                }
                if (src->record_max > *record_max)
                        *record_max = src->record_max;
        }
        return n;
}

bool config_source_wants(const struct config_source *src, const char *code)
{
        for (size_t i = 0; i < src->n_records; i++) {
                if (strcmp(src->records[i], code) == 0)
                        return true;
        }
        return false;
}

/* Does the URL's path end with `tail` (a trailing '/' allowed)? */
static bool path_ends(const char *path, size_t len, const char *tail)
{
        size_t n = strlen(tail);
        if (len > 0 && path[len - 1] == '/')
                len--;
        return len >= n && strncasecmp(path + len - n, tail, n) == 0;
}

enum config_endpoint config_url_endpoint(const char *url)
{
        if (!url)
                return CONFIG_ENDPOINT_OTHER;
        const char *a = strstr(url, "://");
        a = a ? a + 3 : url;
        const char *path = a + strcspn(a, "/?#");
        size_t plen = strcspn(path, "?#");
        if (path_ends(path, plen, "/api/v1/process_pmta_log_file"))
                return CONFIG_ENDPOINT_BATCH_API;
        if (!path_ends(path, plen, "/system/bounce_webhook"))
                return CONFIG_ENDPOINT_OTHER;
        /* type=fluentd among the query's parameters */
        if (path[plen] == '?') {
                const char *q = path + plen + 1;
                size_t qlen = strcspn(q, "#");
                while (qlen > 0) {
                        size_t n = strcspn(q, "&");
                        if (n > qlen)
                                n = qlen;
                        if (n == 12 && strncasecmp(q, "type=fluentd", 12) == 0)
                                return CONFIG_ENDPOINT_FLUENTD;
                        q += n;
                        qlen -= n;
                        if (qlen > 0) {
                                q++;
                                qlen--;
                        }
                }
        }
        return CONFIG_ENDPOINT_WEBHOOK;
}

const char *config_next_header_file(const struct config_output *o, size_t *i)
{
        /* the headers of one file are next to each other, in file order */
        for (; *i < o->n_headers; (*i)++) {
                const char *f = o->headers[*i].file;
                if (f && (*i == 0 || !o->headers[*i - 1].file ||
                          strcmp(f, o->headers[*i - 1].file) != 0)) {
                        (*i)++;
                        return f;
                }
        }
        return NULL;
}

bool config_output_single(const struct config_output *o)
{
        if (o->format != CONFIG_FORMAT_AUTO)
                return o->format == CONFIG_FORMAT_SINGLE;
        return config_url_endpoint(o->url) == CONFIG_ENDPOINT_WEBHOOK;
}

unsigned config_output_max_events(const struct config_output *o)
{
        if (config_output_single(o))
                return 1;
        return config_url_endpoint(o->url) == CONFIG_ENDPOINT_FLUENTD ? CONFIG_FLUENTD_MAX_EVENTS
                                                                      : 0;
}
