/* A minimal test harness: a failed check prints file:line and the expression,
 * and the test program exits non-zero at the end. Tests drive the real code
 * with real files; nothing is mocked. */
#ifndef PMTATAIL_TEST_H
#define PMTATAIL_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct test_state {
        int failed;
        int checks;
};

/* Each test program defines exactly one of these in its main file. */
extern struct test_state test_state_;

#define CHECK(expr)                                                                                \
        do {                                                                                       \
                test_state_.checks++;                                                              \
                if (!(expr)) {                                                                     \
                        test_state_.failed++;                                                      \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #expr);   \
                }                                                                                  \
        } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
        do {                                                                                       \
                long long a_ = (long long)(a), b_ = (long long)(b);                                \
                test_state_.checks++;                                                              \
                if (a_ != b_) {                                                                    \
                        test_state_.failed++;                                                      \
                        fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__,      \
                                __LINE__, #a, a_, #b, b_);                                         \
                }                                                                                  \
        } while (0)

#define CHECK_EQ_STR(a, b)                                                                         \
        do {                                                                                       \
                const char *a_ = (a), *b_ = (b);                                                   \
                test_state_.checks++;                                                              \
                if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                           \
                        test_state_.failed++;                                                      \
                        fprintf(stderr, "%s:%d: %s\n  got:      %s\n  expected: %s\n", __FILE__,   \
                                __LINE__, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)");             \
                }                                                                                  \
        } while (0)

#define TEST_MAIN_BEGIN struct test_state test_state_;
#define RUN(fn)                                                                                    \
        do {                                                                                       \
                int before_ = test_state_.failed;                                                  \
                fn();                                                                              \
                fprintf(stderr, "%s %s\n", test_state_.failed == before_ ? "ok  " : "FAIL", #fn);  \
        } while (0)
#define TEST_MAIN_END                                                                              \
        do {                                                                                       \
                fprintf(stderr, "%d checks, %d failed\n", test_state_.checks, test_state_.failed); \
                return test_state_.failed ? 1 : 0;                                                 \
        } while (0)

#endif
