/* The reference encoder: the event built with jansson from the contract's
 * rules, kept simple on purpose. The hand-written encoder in event.c must
 * produce the same bytes as json_dumps(event_to_json(...), JSON_COMPACT). */
#include "event.h"

#include <stdlib.h>
#include <string.h>

/* jansson refuses invalid UTF-8, so strings are sanitised first. */
static json_t *str(const char *s, size_t n)
{
        char *tmp = malloc(3 * n + 1);
        if (!tmp)
                return NULL;
        size_t len = event_utf8_sanitize(tmp, s, n);
        json_t *j = json_stringn(tmp, len);
        free(tmp);
        return j;
}

/* The record's type is its first cell, as the parser's filter reads it. */
static json_t *tags(const struct pmta_record *r)
{
        const char *extra = NULL;
        if (r->ncells) {
                const struct pmta_field *t = &r->cells[0];
                if (t->len == 1 && memcmp(t->ptr, "b", 1) == 0)
                        extra = "pmta_sync_bounce";
                else if (t->len == 2 && memcmp(t->ptr, "rb", 2) == 0)
                        extra = "pmta_async_bounce";
                else if (t->len == 1 && memcmp(t->ptr, "f", 1) == 0)
                        extra = "pmta_fbl";
        }
        json_t *a = json_array();
        if (!a || json_array_append_new(a, json_string("pmta")) ||
            (extra && json_array_append_new(a, json_string(extra)))) {
                json_decref(a);
                return NULL;
        }
        return a;
}

json_t *event_to_json(const struct pmta_record *r, const struct event_meta *m)
{
        const struct pmta_header *h = r->header;
        char **keys = event_column_keys(h);
        json_t *o = json_object();
        if (!keys || !o)
                goto fail;
        int64_t t = m->now;
        for (size_t i = 0; i < r->ncells; i++) {
                const struct pmta_field *c = &r->cells[i];
                if (c->len == 0)
                        continue;
                if (json_object_set_new(o, keys[i], str(c->ptr, c->len)) != 0)
                        goto fail;
        }
        for (size_t i = 0; i < h->ncols; i++) {
                int64_t parsed;
                if (h->names[i].len == 10 && memcmp(h->names[i].ptr, "timeLogged", 10) == 0) {
                        if (event_parse_time(r->cells[i].ptr, r->cells[i].len, &parsed) == 0 &&
                            r->cells[i].len)
                                t = parsed;
                        break;
                }
        }
        char ts[32], id[EVENT_ID_LEN + 1];
        event_format_time(t, ts, sizeof ts);
        event_id(h, r->start, r->raw, r->raw_len, id);
        if (json_object_set_new(o, "type", json_string("pmta")) ||
            json_object_set_new(o, "@version", json_string("1")) ||
            json_object_set_new(o, "@timestamp", json_string(ts)) ||
            json_object_set_new(o, "host", str(m->host, strlen(m->host))) ||
            json_object_set_new(o, "path", str(m->path, strlen(m->path))))
                goto fail;
        if (m->include_message && json_object_set_new(o, "message", str(r->raw, r->raw_len)))
                goto fail;
        if (m->bounce_class && json_object_set_new(o, "bounceClass", json_string(m->bounce_class)))
                goto fail;
        if (json_object_set_new(o, "tags", tags(r)) ||
            json_object_set_new(o, "eventId", json_string(id)))
                goto fail;
        event_column_keys_free(keys, h->ncols);
        return o;
fail:
        event_column_keys_free(keys, h->ncols);
        json_decref(o);
        return NULL;
}
