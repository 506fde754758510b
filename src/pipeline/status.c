#include "status.h"

#include "safefile.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const type_names[TYPE_SLOTS] = {"b", "rb", "f", "other"};

int report_type_slot(const char *type, size_t len)
{
        for (int i = 0; i < TYPE_OTHER; i++) {
                if (strlen(type_names[i]) == len && memcmp(type_names[i], type, len) == 0)
                        return i;
        }
        return TYPE_OTHER;
}

/* Write text to path through a temp file and a rename, never through a
 * link planted at either name. Not fsync'd: it is a view, rewritten every
 * few seconds, and a crash can at worst leave the previous one. */
static int replace_file(const char *path, const char *text, size_t len)
{
        return safefile_replace(path, text, len, 0, NULL);
}

int report_write_status(const char *state_dir, const struct report *r)
{
        json_t *o = json_object();
        json_t *srcs = json_array();
        json_t *answers = json_object();
        if (!o || !srcs || !answers) {
                json_decref(o);
                json_decref(srcs);
                json_decref(answers);
                return -1;
        }
        json_object_set_new(o, "version", json_integer(1));
        json_object_set_new(o, "pid", json_integer(r->pid));
        json_object_set_new(o, "started", json_integer((json_int_t)r->started));
        json_object_set_new(o, "updated", json_integer((json_int_t)r->now));
        json_object_set_new(o, "state", json_string(r->stopping ? "stopping" : "running"));
        json_object_set_new(o, "output", json_string(r->output));
        json_object_set_new(o, "last_delivery", json_integer((json_int_t)r->last_delivery));
        json_object_set_new(o, "behind_since", json_integer((json_int_t)r->behind_since));
        json_object_set_new(o, "delivered", json_integer((json_int_t)r->push.delivered));
        json_object_set_new(o, "refused", json_integer((json_int_t)r->push.refused));
        json_object_set_new(o, "requests", json_integer((json_int_t)r->push.requests));
        json_object_set_new(o, "retries", json_integer((json_int_t)r->push.retries));
        json_object_set_new(o, "retrying", json_boolean(r->push.retrying));
        json_object_set_new(o, "credentials_refused", json_boolean(r->push.credentials));
        json_object_set_new(o, "endpoint_refusing", json_boolean(r->push.endpoint_refusing));
        json_object_set_new(o, "endpoint_status", json_integer(r->push.endpoint_status));
        json_object_set_new(o, "unprocessed", json_integer((json_int_t)r->push.unprocessed));
        json_object_set_new(o, "window", json_integer(r->push.window));
        json_object_set_new(o, "last_error", json_string(r->push.last_error));
        static const char *const cls[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
        for (int i = 0; i < 6; i++)
                json_object_set_new(answers, cls[i], json_integer((json_int_t)r->push.answers[i]));
        json_object_set_new(o, "answers", answers);
        for (size_t i = 0; i < r->nsrc; i++) {
                const struct tailer_source_info *s = &r->src[i];
                const struct source_counts *c = &r->counts[i];
                json_t *j = json_object();
                uint64_t read = 0, delivered = 0;
                for (int k = 0; k < TYPE_SLOTS; k++) {
                        read += c->read[k];
                        delivered += c->delivered[k];
                }
                json_object_set_new(j, "name", json_string(s->name));
                json_object_set_new(j, "file", s->reading ? json_string(s->reading) : json_null());
                json_object_set_new(j, "offset", json_integer((json_int_t)s->committed));
                json_object_set_new(j, "size", json_integer((json_int_t)s->size));
                json_object_set_new(j, "bytes_behind", json_integer((json_int_t)s->bytes_behind));
                json_object_set_new(j, "files", json_integer((json_int_t)s->files));
                json_object_set_new(j, "blocked", json_integer((json_int_t)s->blocked));
                if (s->blocked_file)
                        json_object_set_new(j, "blocked_file", json_string(s->blocked_file));
                if (s->blocked_reason)
                        json_object_set_new(j, "blocked_reason", json_string(s->blocked_reason));
                if (s->error)
                        json_object_set_new(j, "error", json_string(s->error));
                json_object_set_new(j, "records_read", json_integer((json_int_t)read));
                json_object_set_new(j, "records_delivered", json_integer((json_int_t)delivered));
                json_object_set_new(j, "records_rejected", json_integer((json_int_t)c->rejected));
                json_array_append_new(srcs, j);
        }
        json_object_set_new(o, "sources", srcs);
        char *text = json_dumps(o, JSON_INDENT(1));
        json_decref(o);
        if (!text)
                return -1;
        char path[4200];
        snprintf(path, sizeof path, "%s/status.json", state_dir);
        int rc = replace_file(path, text, strlen(text));
        free(text);
        return rc;
}

int report_write_metrics(const char *path, const struct report *r)
{
        char *text = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&text, &len);
        if (!m)
                return -1;
        fprintf(m, "# HELP pmtatail_records_read_total Records parsed and forwarded, by source "
                   "and type.\n# TYPE pmtatail_records_read_total counter\n");
        for (size_t i = 0; i < r->nsrc; i++)
                for (int k = 0; k < TYPE_SLOTS; k++)
                        fprintf(m, "pmtatail_records_read_total{source=\"%s\",type=\"%s\"} %llu\n",
                                r->src[i].name, type_names[k],
                                (unsigned long long)r->counts[i].read[k]);
        fprintf(m, "# HELP pmtatail_records_delivered_total Records acknowledged by the output "
                   "(accepted, or kept as dead letters).\n"
                   "# TYPE pmtatail_records_delivered_total counter\n");
        for (size_t i = 0; i < r->nsrc; i++)
                for (int k = 0; k < TYPE_SLOTS; k++)
                        fprintf(m,
                                "pmtatail_records_delivered_total{source=\"%s\",type=\"%s\"} "
                                "%llu\n",
                                r->src[i].name, type_names[k],
                                (unsigned long long)r->counts[i].delivered[k]);
        fprintf(m, "# HELP pmtatail_records_rejected_total Records the parser refused.\n"
                   "# TYPE pmtatail_records_rejected_total counter\n");
        for (size_t i = 0; i < r->nsrc; i++)
                fprintf(m, "pmtatail_records_rejected_total{source=\"%s\"} %llu\n", r->src[i].name,
                        (unsigned long long)r->counts[i].rejected);
        fprintf(m, "# HELP pmtatail_files_blocked Files owed that cannot be opened or read "
                   "now (kept and tried again).\n# TYPE pmtatail_files_blocked gauge\n");
        for (size_t i = 0; i < r->nsrc; i++)
                fprintf(m, "pmtatail_files_blocked{source=\"%s\"} %zu\n", r->src[i].name,
                        r->src[i].blocked);
        fprintf(m, "# HELP pmtatail_bytes_behind Bytes written by PowerMTA and not yet "
                   "acknowledged.\n# TYPE pmtatail_bytes_behind gauge\n");
        for (size_t i = 0; i < r->nsrc; i++)
                fprintf(m, "pmtatail_bytes_behind{source=\"%s\"} %llu\n", r->src[i].name,
                        (unsigned long long)r->src[i].bytes_behind);
        fprintf(m,
                "# HELP pmtatail_records_refused_total Records the backend refused on their "
                "own (dead letters).\n# TYPE pmtatail_records_refused_total counter\n"
                "pmtatail_records_refused_total %llu\n",
                (unsigned long long)r->push.refused);
        static const char *const cls[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
        fprintf(m, "# HELP pmtatail_http_answers_total HTTP answers by class (none: no answer "
                   "at all).\n# TYPE pmtatail_http_answers_total counter\n");
        for (int i = 0; i < 6; i++)
                fprintf(m, "pmtatail_http_answers_total{class=\"%s\"} %llu\n", cls[i],
                        (unsigned long long)r->push.answers[i]);
        fprintf(m,
                "# HELP pmtatail_retries_total Requests sent again.\n"
                "# TYPE pmtatail_retries_total counter\npmtatail_retries_total %llu\n",
                (unsigned long long)r->push.retries);
        fprintf(m,
                "# HELP pmtatail_last_success_timestamp_seconds When the output last "
                "acknowledged records.\n"
                "# TYPE pmtatail_last_success_timestamp_seconds gauge\n"
                "pmtatail_last_success_timestamp_seconds %lld\n",
                (long long)r->last_delivery);
        fprintf(m,
                "# HELP pmtatail_credentials_refused 1 while the backend refuses our "
                "credentials (401/403).\n# TYPE pmtatail_credentials_refused gauge\n"
                "pmtatail_credentials_refused %d\n",
                r->push.credentials ? 1 : 0);
        fprintf(m,
                "# HELP pmtatail_endpoint_refusing 1 while every recent answer is the same "
                "refusal (wrong path, HTTP on an HTTPS port, proxy credentials): records "
                "held.\n# TYPE pmtatail_endpoint_refusing gauge\n"
                "pmtatail_endpoint_refusing %d\n",
                r->push.endpoint_refusing ? 1 : 0);
        fprintf(m,
                "# HELP pmtatail_backend_unprocessed_total Entries Oempro's batch API received "
                "and reported as not processed (ErrorCount).\n"
                "# TYPE pmtatail_backend_unprocessed_total counter\n"
                "pmtatail_backend_unprocessed_total %llu\n",
                (unsigned long long)r->push.unprocessed);
        fprintf(m,
                "# HELP pmtatail_requests_window Requests the output lets be in flight now "
                "(the adaptive window).\n# TYPE pmtatail_requests_window gauge\n"
                "pmtatail_requests_window %u\n",
                r->push.window);
        if (fclose(m) != 0) {
                free(text);
                return -1;
        }
        int rc = replace_file(path, text, len);
        free(text);
        return rc;
}
