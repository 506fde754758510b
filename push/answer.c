/* Finding Oempro's JSON answer in what PHP printed (see answer.h). */
#include "answer.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* Bounded work on a hostile answer: every '{' is a parse. */
#define TRIES_MAX 256

static bool has_oempro_key(json_t *o)
{
        static const char *const keys[] = {"Success", "StatusCode", "ErrorCount", "Errors",
                                           "ProcessedCount"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
                if (json_object_get(o, keys[i]))
                        return true;
        }
        return false;
}

static void judge_object(json_t *o, bool status_code_250, struct answer *out)
{
        out->verdict = ANSWER_OK;
        json_t *pc = json_object_get(o, "ProcessedCount"), *ecn = json_object_get(o, "ErrorCount");
        if (json_is_integer(pc) && json_integer_value(pc) >= 0)
                out->processed = json_integer_value(pc);
        if (json_is_integer(ecn) && json_integer_value(ecn) >= 0)
                out->errors = json_integer_value(ecn);
        json_t *errors = json_object_get(o, "Errors");
        if (json_is_array(errors) && json_array_size(errors) > 0) {
                size_t i;
                json_t *e;
                json_array_foreach(errors, i, e)
                {
                        if (json_integer_value(json_object_get(e, "Code")) == 1) {
                                out->verdict = ANSWER_CREDENTIALS;
                                snprintf(out->why, sizeof out->why, "Errors Code 1");
                                return;
                        }
                }
                out->verdict = ANSWER_REFUSED;
                snprintf(out->why, sizeof out->why, "Errors");
                return;
        }
        json_t *s = json_object_get(o, "Success");
        if (json_is_false(s)) {
                out->verdict = ANSWER_REFUSED;
                snprintf(out->why, sizeof out->why, "Success:false");
                return;
        }
        json_t *ec = json_object_get(o, "ErrorCount");
        if (json_is_integer(ec) && json_integer_value(ec) > 0) {
                out->verdict = ANSWER_PARTIAL;
                snprintf(out->why, sizeof out->why, "ErrorCount:%lld",
                         (long long)json_integer_value(ec));
                return;
        }
        json_t *sc = json_object_get(o, "StatusCode");
        if (status_code_250 && sc) {
                long long code = -1;
                if (json_is_integer(sc))
                        code = json_integer_value(sc);
                else if (json_is_string(sc) && strcmp(json_string_value(sc), "250") == 0)
                        code = 250;
                if (code != 250) {
                        out->verdict = ANSWER_REFUSED;
                        if (code >= 0)
                                snprintf(out->why, sizeof out->why, "StatusCode:%lld", code);
                        else
                                snprintf(out->why, sizeof out->why, "StatusCode not 250");
                }
        }
}

static const char *skip_ws(const char *p, const char *end)
{
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
                p++;
        return p;
}

/* "Success" <ws> : <ws> false, in an object the cap cut off. */
static bool says_success_false(const char *data, size_t len)
{
        const char *end = data + len, *p = data;
        static const char key[] = "\"Success\"";
        while ((p = memmem(p, (size_t)(end - p), key, sizeof key - 1))) {
                const char *q = skip_ws(p + sizeof key - 1, end);
                if (q < end && *q == ':') {
                        q = skip_ws(q + 1, end);
                        if ((size_t)(end - q) >= 5 && memcmp(q, "false", 5) == 0)
                                return true;
                }
                p += sizeof key - 1;
        }
        return false;
}

void answer_judge(const char *data, size_t len, bool status_code_250, struct answer *out)
{
        out->verdict = ANSWER_SILENT;
        out->why[0] = '\0';
        out->processed = out->errors = -1;
        if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0) {
                data += 3;
                len -= 3;
        }
        /* Most answers are a short acceptance: one that names none of
         * Oempro's keys says nothing, and costs no JSON parse (which would
         * cost more than the request) */
        static const char *const quoted[] = {"\"Success\"", "\"StatusCode\"", "\"ErrorCount\"",
                                             "\"Errors\"", "\"ProcessedCount\""};
        bool named = false;
        for (size_t i = 0; !named && i < sizeof quoted / sizeof quoted[0]; i++)
                named = memmem(data, len, quoted[i], strlen(quoted[i])) != NULL;
        if (!named)
                return;
        json_t *last = NULL;
        size_t pos = 0;
        for (int tries = 0; tries < TRIES_MAX && pos < len; tries++) {
                const char *b = memchr(data + pos, '{', len - pos);
                if (!b)
                        break;
                size_t at = (size_t)(b - data);
                json_error_t err;
                /* DISABLE_EOF_CHECK: whatever PHP printed after the object
                 * is not ours to judge; err.position is where it ended */
                json_t *j = json_loadb(b, len - at, JSON_DISABLE_EOF_CHECK, &err);
                if (!json_is_object(j)) {
                        json_decref(j);
                        pos = at + 1;
                        continue;
                }
                if (has_oempro_key(j)) {
                        judge_object(j, status_code_250, out);
                        json_decref(j);
                        json_decref(last);
                        return;
                }
                json_decref(last);
                last = j;
                pos = at + (err.position > 0 ? (size_t)err.position : 1);
        }
        if (last) {
                judge_object(last, status_code_250, out);
                json_decref(last);
                return;
        }
        /* an object cut at the cap never parses: its refusal still counts */
        if (says_success_false(data, len)) {
                out->verdict = ANSWER_REFUSED;
                snprintf(out->why, sizeof out->why, "Success:false (answer cut)");
        }
}
