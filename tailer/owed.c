#include "owed.h"

#include <errno.h>
#include <string.h>

const char *owed_reason(int err)
{
        if (err == EMFILE || err == ENFILE)
                return "out of file descriptors";
        if (err == OWED_NOT_REGULAR)
                return "not a regular file";
        return strerror(err);
}

void owed_fail(struct owed *o, int err, const char *path, const char *source, time_t now,
               const struct logger *log)
{
        char b[512];
        if (o->err != err)
                log_warn(log,
                         "cannot read file=%s source=%s error=\"%s\": kept and tried again, "
                         "nothing is dropped",
                         log_quote(b, sizeof b, path, strlen(path)), source, owed_reason(err));
        owed_note(o, err, now);
}

void owed_note(struct owed *o, int err, time_t now)
{
        if (o->err != err) {
                if (!o->err)
                        o->since = now;
                o->err = err;
                o->tries = 0;
        }
        o->tries++;
        time_t wait = 1;
        for (unsigned i = 1; i < o->tries && wait < OWED_BACKOFF_MAX_S; i++)
                wait *= 2;
        if (wait > OWED_BACKOFF_MAX_S)
                wait = OWED_BACKOFF_MAX_S;
        o->retry_at = now + wait;
}

void owed_clear(struct owed *o, const char *path, const char *source, time_t now,
                const struct logger *log)
{
        if (!o->err)
                return;
        char b[512];
        log_info(log, "file readable again file=%s source=%s error_was=\"%s\" lasted=%llds",
                 log_quote(b, sizeof b, path, strlen(path)), source, owed_reason(o->err),
                 (long long)(now - o->since));
        o->err = 0;
        o->tries = 0;
        o->retry_at = 0;
}

bool owed_waiting(const struct owed *o, time_t now)
{
        return o->err && now < o->retry_at;
}

void owed_retry_now(struct owed *o)
{
        o->retry_at = 0;
}
