/* The offsets store on disk: offsets.json, a snapshot of the whole table, and
 * offsets.journal, the saves made since, so that a save writes what changed
 * and not 14 days of finished entries.
 *
 * offsets.journal is lines of "HASH JSON\n", HASH the CRC-32 (zlib's) of JSON in 8
 * hex digits. The first line names the snapshot it follows:
 *   {"journal":1,"base_size":N,"base_hash":"8 hex digits"}
 * and each later line is one save, applied whole:
 *   {"ops":[{"k":KEY,"e":{entry}}, {"k":KEY,"u":{entry}}, {"k":KEY,"d":true}]}
 * "e" puts an entry (new, or its path or header changed) as offsets.json
 * writes one, "u" an entry's numbers and path with its header as it was, "d"
 * removes it. KEY names an entry: a snapshot's entries are 1..n in their
 * order, later ones count on from the greatest key.
 *
 * Crash safety. A line is written by one append; a crash (or a full disk)
 * can leave only its beginning, which fails its hash: loading stops at the
 * first line that does not check and the state is that of the last whole
 * save. Lines after a bad one are never written: a failed append is cut off
 * (ftruncate) before the next, and when that fails too the next save writes
 * a snapshot instead. A snapshot (fold) is written by an atomic replace,
 * then a new journal naming it by an atomic replace: a crash between the
 * two leaves the new snapshot and the old journal, whose base no longer
 * matches, so it is ignored. Lines that only advance offsets are made
 * durable within JOURNAL_SYNC_MS; every other save at once. */
#include "state_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <zlib.h>

#include "buf.h"
#include "safefile.h"

#define HASH_HEX     8
#define JOURNAL_VER  1
#define JOURNAL_CAP  ((size_t)STATE_FILE_MAX + JOURNAL_FOLD_MIN + 2 * STATE_HEADER_MAX)
#define LINE_MAX_LEN (4 * STATE_HEADER_MAX + 4 * STATE_PATH_MAX + 1024)

uint64_t state_crc(const void *p, size_t len)
{
        uLong c = crc32(0L, Z_NULL, 0);
        const Bytef *b = p;
        /* crc32 takes a uInt length: feed it in pieces */
        while (len > 0) {
                uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
                c = crc32(c, b, n);
                b += n;
                len -= n;
        }
        return (uint64_t)c;
}

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void rec_mark_saved(struct entry_rec *r)
{
        r->saved = true;
        r->strings_changed = false;
        r->last.dev = r->e.dev;
        r->last.ino = r->e.ino;
        r->last.fp = r->e.fp;
        r->last.fp_len = r->e.fp_len;
        r->last.offset = r->e.offset;
        r->last.finished = r->e.finished;
        r->last.seen = r->e.seen;
}

void journal_mark_all_saved(struct state *s)
{
        for (size_t i = 0; i < s->n; i++)
                rec_mark_saved(rec_of(s->entries[i]));
        s->nremoved = 0;
}

static bool rec_numbers_changed(const struct entry_rec *r)
{
        const struct state_entry *e = &r->e;
        return e->offset != r->last.offset || e->seen != r->last.seen || e->dev != r->last.dev ||
               e->ino != r->last.ino || e->fp != r->last.fp || e->fp_len != r->last.fp_len ||
               e->finished != r->last.finished;
}

/* "HASH JSON\n" of a JSON value into b (appended). */
static int put_line(struct buf *b, json_t *v)
{
        char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!text)
                return -1;
        size_t len = strlen(text);
        char hash[HASH_HEX + 2];
        snprintf(hash, sizeof hash, "%08" PRIx64 " ", state_crc(text, len));
        int rc = buf_append(b, hash, HASH_HEX + 1);
        if (rc == 0)
                rc = buf_append(b, text, len);
        if (rc == 0)
                rc = buf_putc(b, '\n');
        free(text);
        return rc;
}

/* Loading */

/* The JSON of line [p, p+len) (newline excluded) if its hash checks, else
 * NULL. */
static json_t *check_line(const char *p, size_t len)
{
        if (len < HASH_HEX + 2 || p[HASH_HEX] != ' ')
                return NULL;
        uint64_t h = 0;
        for (int i = 0; i < HASH_HEX; i++) {
                char c = p[i];
                int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
                if (d < 0)
                        return NULL;
                h = h << 4 | (uint64_t)d;
        }
        const char *text = p + HASH_HEX + 1;
        size_t tlen = len - HASH_HEX - 1;
        if (state_crc(text, tlen) != h)
                return NULL;
        return json_loadb(text, tlen, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
}

/* Does header line `v` name the loaded snapshot? */
static bool header_matches(const struct state *s, json_t *v)
{
        json_t *ver = json_object_get(v, "journal");
        json_t *size = json_object_get(v, "base_size");
        json_t *hash = json_object_get(v, "base_hash");
        if (!json_is_integer(ver) || json_integer_value(ver) != JOURNAL_VER ||
            !json_is_integer(size) || !json_is_string(hash))
                return false;
        char want[HASH_HEX + 1];
        snprintf(want, sizeof want, "%08" PRIx64, s->snap_hash);
        return (uint64_t)json_integer_value(size) == s->snap_size &&
               strcmp(json_string_value(hash), want) == 0;
}

/* Apply one op of a line that checked. Returns 0, or -1 with err set. */
static int apply_op(struct state *s, json_t *op, size_t lineno, struct state_error *err)
{
        char where[48];
        snprintf(where, sizeof where, "line %zu", lineno);
        json_t *k = json_object_get(op, "k");
        if (!json_is_object(op) || !json_is_integer(k) || json_integer_value(k) <= 0) {
                state_fail(err, STATE_E_CORRUPT, EBADMSG, "%s: %s: an op without a key",
                           s->journal_path, where);
                return -1;
        }
        uint64_t key = (uint64_t)json_integer_value(k);
        size_t i = table_find_key(s, key);
        bool found = i < s->n && rec_of(s->entries[i])->key == key;
        json_t *put = json_object_get(op, "e");
        json_t *upd = json_object_get(op, "u");
        if (json_is_true(json_object_get(op, "d"))) {
                if (found) {
                        entry_free(s->entries[i]);
                        memmove(&s->entries[i], &s->entries[i + 1],
                                (s->n - i - 1) * sizeof *s->entries);
                        s->n--;
                }
                return 0;
        }
        if (!put && !upd) {
                state_fail(err, STATE_E_CORRUPT, EBADMSG, "%s: %s: an op that does nothing",
                           s->journal_path, where);
                return -1;
        }
        if (upd && !found) {
                state_fail(err, STATE_E_CORRUPT, EBADMSG,
                           "%s: %s: an update of key %" PRIu64 ", which no entry has",
                           s->journal_path, where, key);
                return -1;
        }
        struct state_entry *e = entry_from_json_at(put ? put : upd, s->journal_path, where, err);
        if (!e)
                return -1;
        rec_of(e)->key = key;
        if (upd) {
                /* The header is not repeated on every save: keep it. */
                struct state_entry *old = s->entries[i];
                e->header = old->header;
                e->header_len = old->header_len;
                old->header = NULL;
        }
        if (found) {
                entry_free(s->entries[i]);
                s->entries[i] = e;
                return 0;
        }
        if (s->n >= STATE_MAX_ENTRIES) {
                entry_free(e);
                state_fail(err, STATE_E_CORRUPT, EBADMSG, "%s: %s: more than %d entries",
                           s->journal_path, where, STATE_MAX_ENTRIES);
                return -1;
        }
        if (table_insert(s, i, e) < 0) {
                entry_free(e);
                state_fail(err, STATE_E_NOMEM, ENOMEM, "%s: out of memory", s->journal_path);
                return -1;
        }
        return 0;
}

int journal_load(struct state *s, struct state_error *err)
{
        if (!s->snap_exists)
                return 0; /* a journal without its snapshot follows nothing */
        struct buf b;
        int rc = read_state_file(s, JOURNAL_NAME, s->journal_path, JOURNAL_CAP, &b, err);
        if (rc <= 0)
                return rc;
        rc = 0;
        size_t pos = 0, lineno = 0;
        while (pos < b.len) {
                const char *p = b.data + pos;
                const char *nl = memchr(p, '\n', b.len - pos);
                json_t *v = nl ? check_line(p, (size_t)(nl - p)) : NULL;
                if (!v)
                        break;
                lineno++;
                if (lineno == 1) {
                        bool ours = header_matches(s, v);
                        json_decref(v);
                        if (!ours) {
                                pos = b.len; /* folded into the snapshot already */
                                break;
                        }
                } else {
                        json_t *ops = json_object_get(v, "ops");
                        if (!json_is_array(ops)) {
                                json_decref(v);
                                state_fail(err, STATE_E_CORRUPT, EBADMSG,
                                           "%s: line %zu: no \"ops\"", s->journal_path, lineno);
                                rc = -1;
                                break;
                        }
                        for (size_t i = 0; rc == 0 && i < json_array_size(ops); i++)
                                rc = apply_op(s, json_array_get(ops, i), lineno, err);
                        json_decref(v);
                        if (rc < 0)
                                break;
                }
                pos = (size_t)(nl - b.data) + 1;
        }
        if (rc == 0 && pos < b.len && err && !s->readonly) {
                /* What a crash cut short: never acknowledged as saved. (A
                 * read-only reader may just meet a line being written.) */
                size_t used = strlen(err->note);
                snprintf(err->note + used, sizeof err->note - used,
                         "%s%s: dropped %zu bytes after line %zu, a save a crash cut short",
                         used ? "; " : "", s->journal_path, b.len - pos, lineno);
                err->notes |= STATE_NOTE_JOURNAL_TAIL;
        }
        buf_free(&b);
        if (rc < 0)
                return -1;
        /* Each line was a consistent table; the last one must be too. */
        for (size_t i = 0; i < s->n; i++) {
                const struct state_entry *e = s->entries[i];
                const struct state_entry *dup = table_find_id(s, e->dev, e->ino, e);
                if (dup) {
                        state_fail(err, STATE_E_CORRUPT, EBADMSG,
                                   "%s: dev %" PRIu64 " ino %" PRIu64 " twice (%s and %s)",
                                   s->journal_path, e->dev, e->ino, e->path, dup->path);
                        return -1;
                }
        }
        return 0;
}

/* Saving */

/* Write the whole table as a new snapshot, then a new journal naming it. */
static int fold(struct state *s, struct state_error *err)
{
        struct buf b;
        if (snapshot_render(s, &b, err) < 0)
                return -1;
        const char *step = "create";
        if (safefile_replace_at(s->dirfd, STATE_FILE_NAME, b.data ? b.data : "", b.len,
                                SAFEFILE_DURABLE, &step) < 0) {
                int e = errno;
                buf_free(&b);
                if (strcmp(step, "fsync directory") == 0)
                        state_fail(err, STATE_E_IO, e,
                                   "saved %s but cannot fsync %s: %s: the new offsets may not "
                                   "survive a power loss",
                                   s->file_path, s->dir, strerror(e));
                else
                        state_fail(err, STATE_E_IO, e,
                                   "cannot save offsets: %s %s/%s: %s; %s is unchanged", step,
                                   s->dir, TEMP_NAME, strerror(e), s->file_path);
                /* the new snapshot may be in place: the journal must follow it */
                s->need_fold = true;
                return -1;
        }
        s->snap_exists = true;
        s->snap_size = b.len;
        s->snap_hash = state_crc(b.data ? b.data : "", b.len);
        buf_free(&b);
        /* Keys start again from the snapshot's order. */
        for (size_t i = 0; i < s->n; i++)
                rec_of(s->entries[i])->key = i + 1;
        s->next_key = s->n;
        journal_mark_all_saved(s);
        s->need_fold = true; /* until a journal follows this snapshot */
        if (s->jfd >= 0) {
                close(s->jfd);
                s->jfd = -1;
        }

        json_t *h = json_object();
        char hash[HASH_HEX + 1];
        snprintf(hash, sizeof hash, "%08" PRIx64, s->snap_hash);
        json_object_set_new(h, "journal", json_integer(JOURNAL_VER));
        json_object_set_new(h, "base_size", json_integer((json_int_t)s->snap_size));
        json_object_set_new(h, "base_hash", json_string(hash));
        buf_init(&b, LINE_MAX_LEN);
        int rc = put_line(&b, h);
        json_decref(h);
        if (rc == 0)
                rc = safefile_replace_at(s->dirfd, JOURNAL_NAME, b.data, b.len, SAFEFILE_DURABLE,
                                         NULL);
        if (rc == 0) {
                s->jfd = openat(s->dirfd, JOURNAL_NAME,
                                O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
                struct stat st;
                if (s->jfd >= 0 && (fstat(s->jfd, &st) < 0 || !S_ISREG(st.st_mode) ||
                                    (uint64_t)st.st_size != b.len)) {
                        close(s->jfd);
                        s->jfd = -1;
                }
        }
        size_t hlen = b.len;
        buf_free(&b);
        if (s->jfd < 0)
                return 0; /* the snapshot holds everything; a journal next time */
        s->jsize = hlen;
        s->jhead = hlen;
        s->need_fold = false;
        s->unsynced = false;
        s->last_sync_ms = now_ms();
        return 0;
}

/* One line of ops for what changed since the last save into b; *structural
 * when more than offsets advanced. Returns the number of ops, or -1 when out
 * of memory. */
static long render_changes(struct state *s, struct buf *b, bool *structural)
{
        json_t *root = json_object();
        json_t *ops = json_array();
        if (!root || !ops || json_object_set(root, "ops", ops) < 0) {
                json_decref(ops);
                json_decref(root);
                return -1;
        }
        int rc = 0;
        *structural = s->nremoved > 0;
        for (size_t i = 0; rc == 0 && i < s->nremoved; i++) {
                json_t *op = json_pack("{sIsb}", "k", (json_int_t)s->removed[i], "d", 1);
                rc = op ? json_array_append_new(ops, op) : -1;
        }
        for (size_t i = 0; rc == 0 && i < s->n; i++) {
                struct entry_rec *r = rec_of(s->entries[i]);
                bool whole = !r->saved || r->strings_changed;
                if (!whole && !rec_numbers_changed(r))
                        continue;
                if (whole || r->e.finished != r->last.finished || r->e.dev != r->last.dev ||
                    r->e.ino != r->last.ino)
                        *structural = true;
                json_t *ej = entry_to_json(&r->e, whole);
                json_t *op =
                    ej ? json_pack("{sIso}", "k", (json_int_t)r->key, whole ? "e" : "u", ej) : NULL;
                rc = op ? json_array_append_new(ops, op) : -1;
        }
        long n = (long)json_array_size(ops);
        json_decref(ops);
        if (rc == 0 && n > 0)
                rc = put_line(b, root);
        json_decref(root);
        return rc == 0 ? n : -1;
}

static void mark_changes_saved(struct state *s)
{
        for (size_t i = 0; i < s->n; i++)
                rec_mark_saved(rec_of(s->entries[i]));
        s->nremoved = 0;
}

static int journal_sync(struct state *s)
{
        if (fdatasync(s->jfd) < 0)
                return -1;
        s->unsynced = false;
        s->last_sync_ms = now_ms();
        return 0;
}

int state_save(struct state *s, struct state_error *err)
{
        state_err_reset(err);
        if (s->readonly) {
                state_fail(err, STATE_E_INVALID, EROFS, "%s: opened read-only, not saving",
                           s->file_path);
                return -1;
        }
        for (size_t i = 0; i < s->n; i++) {
                const struct state_entry *e = s->entries[i];
                char why[WHY_LEN];
                if (entry_check(e, why, sizeof why) != STATE_E_NONE) {
                        state_fail(err, STATE_E_INVALID, EINVAL,
                                   "%s: not saving: the entry for %s is wrong: %s", s->file_path,
                                   e->path ? e->path : "(no path)", why);
                        return -1;
                }
        }
        if (s->need_fold || s->jfd < 0 || !s->snap_exists)
                return fold(s, err);
        struct buf b;
        buf_init(&b, LINE_MAX_LEN + (size_t)s->n * 2 * (STATE_PATH_MAX + 512));
        bool structural;
        long nops = render_changes(s, &b, &structural);
        if (nops < 0) {
                buf_free(&b);
                state_fail(err, STATE_E_NOMEM, ENOMEM, "cannot save offsets: out of memory");
                return -1;
        }
        if (nops == 0) {
                buf_free(&b);
                return 0;
        }
        if (s->jsize + b.len >
            (s->snap_size > JOURNAL_FOLD_MIN ? s->snap_size : JOURNAL_FOLD_MIN)) {
                buf_free(&b);
                return fold(s, err);
        }
        size_t done = 0;
        while (done < b.len) {
                ssize_t w = write(s->jfd, b.data + done, b.len - done);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        int e = w < 0 ? errno : EIO;
                        buf_free(&b);
                        /* A line cut short must not be followed by good
                         * ones: cut it off, or write a snapshot next. */
                        if (done > 0 && ftruncate(s->jfd, (off_t)s->jsize) < 0)
                                s->need_fold = true;
                        state_fail(err, STATE_E_IO, e,
                                   "cannot save offsets: write %s: %s; the offsets of the last "
                                   "save are kept",
                                   s->journal_path, strerror(e));
                        return -1;
                }
                done += (size_t)w;
        }
        s->jsize += b.len;
        buf_free(&b);
        s->unsynced = true;
        if ((structural || now_ms() - s->last_sync_ms >= JOURNAL_SYNC_MS) && journal_sync(s) < 0) {
                int e = errno;
                /* What the disk kept is unknown: rewrite it all next. */
                s->need_fold = true;
                state_fail(err, STATE_E_IO, e,
                           "cannot save offsets: fdatasync %s: %s; the offsets of the last save "
                           "are kept",
                           s->journal_path, strerror(e));
                return -1;
        }
        mark_changes_saved(s);
        return 0;
}

void journal_fold_if_clean(struct state *s)
{
        if (s->readonly || s->jfd < 0 || s->need_fold || s->jsize == s->jhead)
                return;
        for (size_t i = 0; i < s->n; i++) {
                struct entry_rec *r = rec_of(s->entries[i]);
                if (!r->saved || r->strings_changed || rec_numbers_changed(r))
                        return; /* unsaved changes stay unsaved */
        }
        if (s->nremoved > 0)
                return;
        if (fold(s, NULL) < 0 && s->jfd >= 0 && s->unsynced)
                journal_sync(s);
}

void journal_close(struct state *s)
{
        if (s->jfd < 0)
                return;
        if (s->unsynced)
                journal_sync(s);
        close(s->jfd);
        s->jfd = -1;
}
