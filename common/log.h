/* One logging API for the whole program: `level message key=value ...` lines
 * on stderr (journald keeps them). Modules that log are handed a struct
 * logger; nothing here is global. */
#ifndef PMTATAIL_LOG_H
#define PMTATAIL_LOG_H

#include <stdbool.h>
#include <stdio.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

struct logger {
        enum log_level level;
        FILE *out;
        bool timestamps; /* on a terminal; journald stamps lines itself */
        /* Called around every line written, when set: a progress bar on
         * the same terminal clears itself before and redraws after. */
        void (*around)(void *ctx, bool before);
        void *around_ctx;
};

/* Set up a logger writing to `out`, with timestamps only when `out` is a
 * terminal and not read by journald. */
void log_init(struct logger *lg, FILE *out, enum log_level level);

/* Parse "error", "warn", "info", "debug". Returns 0 or -1. */
int log_level_parse(const char *s, enum log_level *out);

__attribute__((format(printf, 3, 4))) void log_msg(const struct logger *lg, enum log_level lvl,
                                                   const char *fmt, ...);

#define log_error(lg, ...) log_msg((lg), LOG_ERROR, __VA_ARGS__)
#define log_warn(lg, ...)  log_msg((lg), LOG_WARN, __VA_ARGS__)
#define log_info(lg, ...)  log_msg((lg), LOG_INFO, __VA_ARGS__)
#define log_debug(lg, ...) log_msg((lg), LOG_DEBUG, __VA_ARGS__)

/* A failure that repeats for as long as its cause lasts (a full disk makes
 * every save fail, several times a second): logged once when it starts, and
 * once when it ends, with how long it lasted and how many attempts failed.
 * Zero-initialised: no failure in progress. */
struct log_streak {
        long long since_ms; /* monotonic start of the failure, 0: none */
        unsigned long long failures;
        char what[64]; /* what failed, for the end line */
};

/* One more failure of `what`; the message is logged (at lvl) only when it
 * starts a streak. Returns true when it was logged. */
__attribute__((format(printf, 5, 6))) bool log_streak_fail(const struct logger *lg,
                                                           struct log_streak *st,
                                                           enum log_level lvl, const char *what,
                                                           const char *fmt, ...);

/* What failed works again: ends a streak with one line (nothing when none). */
void log_streak_ok(const struct logger *lg, struct log_streak *st);

/* Quote a value for a key=value field when it holds spaces, quotes or
 * control bytes: writes at most `size` bytes (NUL included) into dst and
 * returns dst. Bytes that are not printable ASCII are shown as \xNN so a
 * hostile file name cannot forge log lines. */
const char *log_quote(char *dst, size_t size, const char *s, size_t len);

#endif
