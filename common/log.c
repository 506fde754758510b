#include "log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_init(struct logger *lg, FILE *out, enum log_level level)
{
        lg->level = level;
        lg->out = out;
        lg->around = NULL;
        lg->around_ctx = NULL;
        /* JOURNAL_STREAM is set by systemd when stderr is connected to journald,
         * which stamps each line itself. */
        lg->timestamps = isatty(fileno(out)) && !getenv("JOURNAL_STREAM");
}

int log_level_parse(const char *s, enum log_level *out)
{
        for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
                if (strcmp(s, level_names[i]) == 0) {
                        *out = (enum log_level)i;
                        return 0;
                }
        }
        if (strcmp(s, "warning") == 0) {
                *out = LOG_WARN;
                return 0;
        }
        return -1;
}

void log_msg(const struct logger *lg, enum log_level lvl, const char *fmt, ...)
{
        if (!lg || lvl > lg->level)
                return;
        char line[2048];
        size_t n = 0;
        if (lg->timestamps) {
                struct timespec ts;
                struct tm tm;
                clock_gettime(CLOCK_REALTIME, &ts);
                localtime_r(&ts.tv_sec, &tm);
                n = strftime(line, sizeof line, "%Y-%m-%d %H:%M:%S ", &tm);
        }
        int w = snprintf(line + n, sizeof line - n, "%s ", level_names[lvl]);
        if (w > 0)
                n += (size_t)w;
        va_list ap;
        va_start(ap, fmt);
        w = vsnprintf(line + n, sizeof line - n, fmt, ap);
        va_end(ap);
        if (w > 0)
                n += (size_t)w;
        if (n >= sizeof line - 1)
                n = sizeof line - 2;
        line[n++] = '\n';
        if (lg->around)
                lg->around(lg->around_ctx, true);
        /* One write per line so concurrent writers do not interleave. */
        fwrite(line, 1, n, lg->out);
        fflush(lg->out);
        if (lg->around)
                lg->around(lg->around_ctx, false);
}

static long long mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool log_streak_fail(const struct logger *lg, struct log_streak *st, enum log_level lvl,
                     const char *what, const char *fmt, ...)
{
        st->failures++;
        if (st->since_ms)
                return false;
        st->since_ms = mono_ms();
        snprintf(st->what, sizeof st->what, "%s", what);
        char msg[1800];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        log_msg(lg, lvl, "%s (logged once until it works again)", msg);
        return true;
}

void log_streak_ok(const struct logger *lg, struct log_streak *st)
{
        if (!st->since_ms)
                return;
        long long ms = mono_ms() - st->since_ms;
        log_msg(lg, LOG_INFO, "%s works again after %lld.%01lld s failures=%llu", st->what,
                ms / 1000, (ms % 1000) / 100, st->failures);
        st->since_ms = 0;
        st->failures = 0;
}

const char *log_quote(char *dst, size_t size, const char *s, size_t len)
{
        static const char hex[] = "0123456789abcdef";
        size_t o = 0;
        bool need = len == 0;
        for (size_t i = 0; i < len && !need; i++) {
                unsigned char c = (unsigned char)s[i];
                need = c <= ' ' || c == '"' || c == '=' || c >= 0x7f;
        }
        if (size == 0)
                return dst;
        if (need && o + 1 < size)
                dst[o++] = '"';
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
                        if (o + 1 >= size)
                                break;
                        dst[o++] = (char)c;
                } else if (c == '"' || c == '\\') {
                        if (o + 2 >= size)
                                break;
                        dst[o++] = '\\';
                        dst[o++] = (char)c;
                } else {
                        if (o + 4 >= size)
                                break;
                        dst[o++] = '\\';
                        dst[o++] = 'x';
                        dst[o++] = hex[c >> 4];
                        dst[o++] = hex[c & 15];
                }
        }
        if (need && o + 1 < size)
                dst[o++] = '"';
        dst[o] = '\0';
        return dst;
}
