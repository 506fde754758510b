/* libFuzzer target for the HTTP answer's judge (push/answer.c): the body a
 * hostile or broken backend sends, behind whatever PHP printed. libcurl
 * reads the answer's framing; what its body says is ours to find.
 * Checked on every input: no memory error or undefined behaviour
 * (ASan+UBSan), a reason that is a short printable string, counts that
 * are -1 or not negative, and the same verdict for the same bytes, so that
 * no state survives from one answer to the next. */
#include "answer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check(const struct answer *a)
{
        if (a->verdict < ANSWER_SILENT || a->verdict > ANSWER_CREDENTIALS)
                abort();
        size_t n = strnlen(a->why, sizeof a->why);
        if (n == sizeof a->why)
                abort();
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)a->why[i] < 0x20 || (unsigned char)a->why[i] >= 0x7f)
                        abort();
        if (a->processed < -1 || a->errors < -1)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        /* a copy of exactly `size` bytes: a read past it is ASan's to see */
        char *copy = malloc(size ? size : 1);
        if (!copy)
                return 0;
        memcpy(copy, data, size);
        for (int code250 = 0; code250 < 2; code250++) {
                struct answer a, b;
                answer_judge(copy, size, code250, &a);
                check(&a);
                answer_judge(copy, size, code250, &b);
                if (a.verdict != b.verdict || a.processed != b.processed || a.errors != b.errors ||
                    strcmp(a.why, b.why) != 0)
                        abort();
        }
        free(copy);
        return 0;
}
