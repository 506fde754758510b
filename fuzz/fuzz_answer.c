/* libFuzzer target for the HTTP answer reader of push/exchange.c: the
 * bytes a hostile server sends, fed in the pieces the network may cut them
 * into. The reader's functions are static, so the file is compiled in here.
 * Checked on every input: no memory error or undefined behaviour
 * (ASan+UBSan), the kept body never past its cap, and the same verdict,
 * status and kept body whether the answer comes in one piece or in many (a
 * state machine that depends on where reads end would pair answers wrongly).
 *
 * The first input byte seeds the piece sizes; the rest is the answer. */
#include "../push/exchange.c"

#include <stdint.h>

#define KEEP (64 * 1024)

struct outcome {
        int r;
        long status;
        bool close_after, too_big;
        struct buf body;
};

static void run(const uint8_t *data, size_t size, unsigned seed, struct outcome *o)
{
        struct xslot s;
        memset(&s, 0, sizeof s);
        buf_init(&o->body, KEEP);
        buf_init(&s.head, XHEAD_MAX);
        buf_init(&s.line, XLINE_MAX);
        s.answer = &o->body;
        reset_answer(&s);
        int r = 0;
        size_t pos = 0;
        while (pos < size && r == 0) {
                size_t n = size - pos;
                if (seed) {
                        seed = seed * 1103515245u + 12345u;
                        size_t piece = 1 + (seed >> 16) % 97;
                        if (piece < n)
                                n = piece;
                }
                r = feed(&s, (const char *)data + pos, n);
                pos += n;
        }
        o->r = r;
        o->status = s.status;
        o->close_after = s.close_after;
        o->too_big = s.header_too_big;
        buf_free(&s.head);
        buf_free(&s.line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        unsigned seed = data[0] | 1u;
        struct outcome whole, pieces;
        run(data + 1, size - 1, 0, &whole);
        run(data + 1, size - 1, seed, &pieces);
        if (whole.body.len > KEEP || pieces.body.len > KEEP)
                __builtin_trap();
        if (whole.r != pieces.r || whole.too_big != pieces.too_big)
                __builtin_trap();
        if (whole.r == 1) {
                if (whole.status != pieces.status || whole.status < 200 || whole.status > 999 ||
                    whole.body.len != pieces.body.len ||
                    (whole.body.len &&
                     memcmp(whole.body.data, pieces.body.data, whole.body.len) != 0))
                        __builtin_trap();
        }
        buf_free(&whole.body);
        buf_free(&pieces.body);
        return 0;
}
