#include "state_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Errors */

void state_err_reset(struct state_error *err)
{
        if (!err)
                return;
        err->kind = STATE_E_NONE;
        err->errnum = 0;
        err->msg[0] = '\0';
}

__attribute__((format(printf, 4, 5))) void
state_fail(struct state_error *err, enum state_errkind kind, int errnum, const char *fmt, ...)
{
        if (err) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(err->msg, sizeof err->msg, fmt, ap);
                va_end(ap);
                err->kind = kind;
                err->errnum = errnum;
        }
        errno = errnum;
}

/* Entries */

struct state_entry *entry_alloc(void)
{
        struct entry_rec *r = calloc(1, sizeof *r);
        return r ? &r->e : NULL;
}

void entry_free(struct state_entry *e)
{
        if (!e)
                return;
        free(e->source);
        free(e->path);
        free(e->header);
        free(e);
}

static char *copy_bytes(const char *p, size_t len)
{
        char *c = malloc(len + 1);
        if (!c)
                return NULL;
        memcpy(c, p, len);
        c[len] = '\0';
        return c;
}

/* Check the fields that have bounds. Returns STATE_E_NONE, or the kind of
 * problem with a reason in `why`. Used on every way in (add, setters, load)
 * and out (save), so the table never holds or writes what it would refuse to
 * read back. */
enum state_errkind entry_check(const struct state_entry *e, char *why, size_t size)
{
        if (!e->source || !e->source[0]) {
                snprintf(why, size, "no source name");
                return STATE_E_INVALID;
        }
        if (strnlen(e->source, STATE_SOURCE_MAX + 1) > STATE_SOURCE_MAX) {
                snprintf(why, size, "source name longer than %d bytes", STATE_SOURCE_MAX);
                return STATE_E_LIMIT;
        }
        if (!e->path || !e->path[0]) {
                snprintf(why, size, "no path");
                return STATE_E_INVALID;
        }
        if (strnlen(e->path, STATE_PATH_MAX + 1) > STATE_PATH_MAX) {
                snprintf(why, size, "path longer than %d bytes", STATE_PATH_MAX);
                return STATE_E_LIMIT;
        }
        if (e->header && e->header_len > STATE_HEADER_MAX) {
                snprintf(why, size, "header of %zu bytes, more than %d", e->header_len,
                         STATE_HEADER_MAX);
                return STATE_E_LIMIT;
        }
        if (e->fp_len > STATE_FP_MAX) {
                snprintf(why, size, "fp_len %" PRIu32 " is more than %d", e->fp_len, STATE_FP_MAX);
                return STATE_E_INVALID;
        }
        if (e->offset > (uint64_t)INT64_MAX) {
                snprintf(why, size, "offset %" PRIu64 " is beyond any file", e->offset);
                return STATE_E_INVALID;
        }
        if (e->seen < 0) {
                snprintf(why, size, "seen %" PRId64 " is negative", e->seen);
                return STATE_E_INVALID;
        }
        return STATE_E_NONE;
}

static struct state_entry *entry_copy(const struct state_entry *t)
{
        struct state_entry *e = entry_alloc();
        if (!e)
                return NULL;
        *e = *t;
        e->source = strdup(t->source);
        e->path = strdup(t->path);
        e->header = t->header ? copy_bytes(t->header, t->header_len) : NULL;
        if (!e->header)
                e->header_len = 0;
        if (!e->source || !e->path || (t->header && !e->header)) {
                entry_free(e);
                return NULL;
        }
        return e;
}

const struct state_entry *table_find_id(const struct state *s, uint64_t dev, uint64_t ino,
                                        const struct state_entry *except)
{
        if (ino == 0)
                return NULL; /* no inode known (released): never a duplicate */
        for (size_t i = 0; i < s->n; i++) {
                const struct state_entry *e = s->entries[i];
                if (e != except && e->dev == dev && e->ino == ino)
                        return e;
        }
        return NULL;
}

size_t table_find_key(const struct state *s, uint64_t key)
{
        size_t lo = 0, hi = s->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (rec_of(s->entries[mid])->key < key)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

int table_append(struct state *s, struct state_entry *e)
{
        return table_insert(s, s->n, e);
}

/* Keys grow with the table's order, so that the journal's ops find their
 * entry by a binary search however long the table. */
int table_insert(struct state *s, size_t i, struct state_entry *e)
{
        if (s->n == s->alloc) {
                size_t na = s->alloc ? s->alloc * 2 : 16;
                if (na > STATE_MAX_ENTRIES)
                        na = STATE_MAX_ENTRIES;
                struct state_entry **p = realloc(s->entries, na * sizeof *p);
                if (!p)
                        return -1;
                s->entries = p;
                s->alloc = na;
        }
        struct entry_rec *r = rec_of(e);
        if (r->key == 0)
                r->key = ++s->next_key;
        else if (r->key > s->next_key)
                s->next_key = r->key;
        memmove(&s->entries[i + 1], &s->entries[i], (s->n - i) * sizeof *s->entries);
        s->entries[i] = e;
        s->n++;
        return 0;
}

void table_clear(struct state *s)
{
        for (size_t i = 0; i < s->n; i++)
                entry_free(s->entries[i]);
        s->n = 0;
        s->nremoved = 0;
}

void note_removed(struct state *s, struct state_entry *e)
{
        if (!rec_of(e)->saved)
                return;
        if (!s->removed && !(s->removed = malloc(REMOVED_MAX * sizeof *s->removed)))
                s->nremoved = REMOVED_MAX; /* unrecorded: the next save rewrites all */
        if (s->nremoved >= REMOVED_MAX) {
                s->need_fold = true;
                return;
        }
        s->removed[s->nremoved++] = rec_of(e)->key;
}

static size_t index_of(const struct state *s, const struct state_entry *e)
{
        size_t i = table_find_key(s, rec_of(e)->key);
        return i < s->n && s->entries[i] == e ? i : s->n;
}

size_t state_count(const struct state *s)
{
        return s->n;
}

struct state_entry *state_at(struct state *s, size_t i)
{
        return i < s->n ? s->entries[i] : NULL;
}

struct state_entry *state_find_id(struct state *s, uint64_t dev, uint64_t ino)
{
        return (struct state_entry *)table_find_id(s, dev, ino, NULL);
}

struct state_entry *state_find_path(struct state *s, const char *path,
                                    const struct state_entry *after)
{
        size_t i = after ? index_of(s, after) + 1 : 0;
        for (; i < s->n; i++)
                if (strcmp(s->entries[i]->path, path) == 0)
                        return s->entries[i];
        return NULL;
}

struct state_entry *state_add(struct state *s, const struct state_entry *tmpl,
                              struct state_error *err)
{
        state_err_reset(err);
        char why[WHY_LEN];
        enum state_errkind k = entry_check(tmpl, why, sizeof why);
        if (k != STATE_E_NONE) {
                state_fail(err, k, k == STATE_E_LIMIT ? E2BIG : EINVAL, "%s: cannot track %s: %s",
                           s->file_path, tmpl->path ? tmpl->path : "(no path)", why);
                return NULL;
        }
        if (s->n >= STATE_MAX_ENTRIES) {
                state_fail(err, STATE_E_LIMIT, E2BIG,
                           "%s: cannot track %s: already %d files tracked, the most allowed",
                           s->file_path, tmpl->path, STATE_MAX_ENTRIES);
                return NULL;
        }
        const struct state_entry *dup = table_find_id(s, tmpl->dev, tmpl->ino, NULL);
        if (dup) {
                state_fail(err, STATE_E_INVALID, EEXIST,
                           "%s: cannot track %s: dev %" PRIu64 " ino %" PRIu64
                           " is already tracked as %s",
                           s->file_path, tmpl->path, tmpl->dev, tmpl->ino, dup->path);
                return NULL;
        }
        struct state_entry *e = entry_copy(tmpl);
        if (!e || table_append(s, e) < 0) {
                entry_free(e);
                state_fail(err, STATE_E_NOMEM, ENOMEM, "%s: cannot track %s: out of memory",
                           s->file_path, tmpl->path);
                return NULL;
        }
        return e;
}

int state_set_id(struct state *s, struct state_entry *e, uint64_t dev, uint64_t ino,
                 struct state_error *err)
{
        state_err_reset(err);
        const struct state_entry *dup = table_find_id(s, dev, ino, e);
        if (dup) {
                state_fail(err, STATE_E_INVALID, EEXIST,
                           "%s: cannot give %s dev %" PRIu64 " ino %" PRIu64
                           ": already tracked as %s",
                           s->file_path, e->path, dev, ino, dup->path);
                return -1;
        }
        e->dev = dev;
        e->ino = ino;
        return 0;
}

int state_set_path(struct state *s, struct state_entry *e, const char *path,
                   struct state_error *err)
{
        state_err_reset(err);
        struct state_entry t = *e;
        t.path = (char *)path;
        char why[WHY_LEN];
        enum state_errkind k = entry_check(&t, why, sizeof why);
        if (k != STATE_E_NONE) {
                state_fail(err, k, k == STATE_E_LIMIT ? E2BIG : EINVAL, "%s: cannot rename %s: %s",
                           s->file_path, e->path, why);
                return -1;
        }
        char *c = strdup(path);
        if (!c) {
                state_fail(err, STATE_E_NOMEM, ENOMEM, "%s: out of memory", s->file_path);
                return -1;
        }
        free(e->path);
        e->path = c;
        rec_of(e)->strings_changed = true;
        return 0;
}

int state_set_header(struct state *s, struct state_entry *e, const char *header, size_t len,
                     struct state_error *err)
{
        state_err_reset(err);
        if (!header) {
                free(e->header);
                e->header = NULL;
                e->header_len = 0;
                rec_of(e)->strings_changed = true;
                return 0;
        }
        if (len > STATE_HEADER_MAX) {
                state_fail(err, STATE_E_LIMIT, E2BIG, "%s: header of %s: %zu bytes, more than %d",
                           s->file_path, e->path, len, STATE_HEADER_MAX);
                return -1;
        }
        char *c = copy_bytes(header, len);
        if (!c) {
                state_fail(err, STATE_E_NOMEM, ENOMEM, "%s: out of memory", s->file_path);
                return -1;
        }
        free(e->header);
        e->header = c;
        e->header_len = len;
        rec_of(e)->strings_changed = true;
        return 0;
}

void state_mark_finished(struct state_entry *e, uint64_t offset, time_t now)
{
        e->offset = offset;
        e->finished = true;
        e->seen = (int64_t)now;
}

void state_remove(struct state *s, struct state_entry *e)
{
        size_t i = index_of(s, e);
        if (i == s->n)
                return;
        note_removed(s, e);
        entry_free(e);
        memmove(&s->entries[i], &s->entries[i + 1], (s->n - i - 1) * sizeof *s->entries);
        s->n--;
}

size_t state_prune(struct state *s, time_t now, time_t retention_s,
                   bool (*still_exists)(const struct state_entry *e, void *ctx), void *ctx)
{
        size_t kept = 0, dropped = 0;
        for (size_t i = 0; i < s->n; i++) {
                struct state_entry *e = s->entries[i];
                bool drop = false;
                if (e->finished && !e->keep) {
                        if (retention_s >= 0 && (int64_t)now - e->seen > (int64_t)retention_s)
                                drop = true;
                        else if (still_exists && !still_exists(e, ctx))
                                drop = true;
                }
                if (drop) {
                        note_removed(s, e);
                        entry_free(e);
                        dropped++;
                } else {
                        s->entries[kept++] = e;
                }
        }
        s->n = kept;
        return dropped;
}

size_t state_prune_oldest(struct state *s, size_t target)
{
        size_t dropped = 0;
        while (s->n > target) {
                size_t oldest = s->n;
                for (size_t i = 0; i < s->n; i++) {
                        if (s->entries[i]->finished && !s->entries[i]->keep &&
                            (oldest == s->n || s->entries[i]->seen < s->entries[oldest]->seen))
                                oldest = i;
                }
                if (oldest == s->n)
                        break;
                state_remove(s, s->entries[oldest]);
                dropped++;
        }
        return dropped;
}
