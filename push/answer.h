/* What an HTTP answer's body says, whatever a PHP backend wrapped it in.
 * Internal to push/: the HTTP output asks it about every answer it gets;
 * it holds nothing and keeps nothing of the body it is given. */
#ifndef PMTATAIL_PUSH_ANSWER_H
#define PMTATAIL_PUSH_ANSWER_H

#include <stdbool.h>
#include <stddef.h>

enum answer_verdict {
        ANSWER_SILENT,      /* no JSON object found: the HTTP status decides */
        ANSWER_OK,          /* an object that accepts */
        ANSWER_REFUSED,     /* "Success": false, a StatusCode other than 250, Errors */
        ANSWER_PARTIAL,     /* "ErrorCount" > 0: some of the request was refused */
        ANSWER_CREDENTIALS, /* "Errors": [{"Code": 1}]: the admin API key is wrong */
};

struct answer {
        enum answer_verdict verdict;
        char why[96]; /* for the log: which key said so (no value from the body) */
        /* Oempro's batch API: "ProcessedCount" and "ErrorCount", -1 when
         * the answer has none */
        long long processed, errors;
};

/* Judge `len` bytes of an answer (its first 64 KiB). The answer is the first JSON object in it that
 * has one of Oempro's keys (Success, StatusCode, ErrorCount, Errors, ProcessedCount), else the last
 * JSON object in it, after a BOM and any text before it (a PHP notice); what follows it is ignored.
 * An answer that names none of those keys says nothing (ANSWER_SILENT) and is not parsed.
 * An object cut off by the cap is looked at for "Success": false. `status_code_250`: the
 * type=fluentd webhook, whose acceptance is "StatusCode": 250. */
void answer_judge(const char *data, size_t len, bool status_code_250, struct answer *out);

#endif
