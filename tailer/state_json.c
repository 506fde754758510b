#include "state_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <zlib.h>

#include "buf.h"
#include "safefile.h"

#define FP_HEX_LEN 16
#define READ_CHUNK (64 * 1024)

/* JSON encoding of the fields.
 *
 * Paths and header lines are bytes, not always UTF-8, and JSON strings must
 * be: a value that is not valid UTF-8 is stored under KEY_hex as hex digits
 * instead of under KEY. Numbers that do not fit a JSON integer as jansson
 * reads it (above INT64_MAX: some file systems have such inode numbers) are
 * stored as decimal strings. */

static int put_bytes(json_t *obj, const char *key, const char *p, size_t len)
{
        json_t *v = json_stringn(p, len);
        if (v)
                return json_object_set_new(obj, key, v);
        static const char digits[] = "0123456789abcdef";
        char *hex = malloc(len * 2 + 1);
        if (!hex)
                return -1;
        for (size_t i = 0; i < len; i++) {
                hex[2 * i] = digits[(unsigned char)p[i] >> 4];
                hex[2 * i + 1] = digits[(unsigned char)p[i] & 15];
        }
        v = json_stringn(hex, len * 2);
        free(hex);
        char hkey[32];
        snprintf(hkey, sizeof hkey, "%s_hex", key);
        return json_object_set_new(obj, hkey, v);
}

static int put_u64(json_t *obj, const char *key, uint64_t x)
{
        if (x <= (uint64_t)INT64_MAX)
                return json_object_set_new(obj, key, json_integer((json_int_t)x));
        char d[24];
        snprintf(d, sizeof d, "%" PRIu64, x);
        return json_object_set_new(obj, key, json_string(d));
}

json_t *entry_to_json(const struct state_entry *e, bool with_header)
{
        json_t *o = json_object();
        if (!o)
                return NULL;
        char fp[FP_HEX_LEN + 1];
        snprintf(fp, sizeof fp, "%016" PRIx64, e->fp);
        int rc = 0;
        rc |= put_bytes(o, "source", e->source, strlen(e->source));
        rc |= put_bytes(o, "path", e->path, strlen(e->path));
        rc |= put_u64(o, "dev", e->dev);
        rc |= put_u64(o, "ino", e->ino);
        rc |= json_object_set_new(o, "fp", json_string(fp));
        rc |= json_object_set_new(o, "fp_len", json_integer(e->fp_len));
        rc |= put_u64(o, "offset", e->offset);
        rc |= json_object_set_new(o, "finished", json_boolean(e->finished));
        rc |= json_object_set_new(o, "seen", json_integer(e->seen));
        if (e->header && with_header)
                rc |= put_bytes(o, "header", e->header, e->header_len);
        if (rc) {
                json_decref(o);
                return NULL;
        }
        return o;
}

/* JSON decoding, with a message for every way a field can be wrong. */

struct reader {
        const char *file; /* for messages */
        char where[48];   /* the entry being read: "files[3]", "line 7" */
        struct state_error *err;
};

__attribute__((format(printf, 2, 3))) static void bad(const struct reader *r, const char *fmt, ...)
{
        char why[WHY_LEN];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof why, fmt, ap);
        va_end(ap);
        state_fail(r->err, STATE_E_CORRUPT, EBADMSG, "%s: %s: %s", r->file, r->where, why);
}

static int hexval(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Read the bytes under KEY or KEY_hex (not both) into a new NUL-terminated
 * copy. Returns 1 when found, 0 when neither is there, -1 on an error
 * (reported). `nul_ok`: whether the bytes may hold a NUL. */
static int get_bytes(const struct reader *r, json_t *o, const char *key, size_t max, bool nul_ok,
                     char **out, size_t *out_len)
{
        char hkey[32];
        snprintf(hkey, sizeof hkey, "%s_hex", key);
        json_t *plain = json_object_get(o, key);
        json_t *hex = json_object_get(o, hkey);
        *out = NULL;
        *out_len = 0;
        if (plain && hex) {
                bad(r, "both \"%s\" and \"%s\"", key, hkey);
                return -1;
        }
        if (!plain && !hex)
                return 0;
        json_t *v = plain ? plain : hex;
        const char *name = plain ? key : hkey;
        if (!json_is_string(v)) {
                bad(r, "\"%s\" is not a string", name);
                return -1;
        }
        const char *p = json_string_value(v);
        size_t n = json_string_length(v);
        if (!plain && n % 2) {
                bad(r, "\"%s\" has an odd number of hex digits", name);
                return -1;
        }
        size_t len = plain ? n : n / 2;
        if (len > max) {
                bad(r, "\"%s\" is longer than %zu bytes", name, max);
                return -1;
        }
        char *c = malloc(len + 1);
        if (!c) {
                state_fail(r->err, STATE_E_NOMEM, ENOMEM, "%s: out of memory", r->file);
                return -1;
        }
        if (plain) {
                memcpy(c, p, len);
        } else {
                for (size_t i = 0; i < len; i++) {
                        int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);
                        if (hi < 0 || lo < 0) {
                                free(c);
                                bad(r, "\"%s\" is not hex digits", name);
                                return -1;
                        }
                        c[i] = (char)(hi << 4 | lo);
                }
        }
        c[len] = '\0';
        if (!nul_ok && memchr(c, '\0', len)) {
                free(c);
                bad(r, "\"%s\" holds a NUL byte", name);
                return -1;
        }
        *out = c;
        *out_len = len;
        return 1;
}

static json_t *need(const struct reader *r, json_t *o, const char *key)
{
        json_t *v = json_object_get(o, key);
        if (!v)
                bad(r, "missing \"%s\"", key);
        return v;
}

/* A non-negative integer, or (above INT64_MAX) a string of decimal digits. */
static int get_u64(const struct reader *r, json_t *o, const char *key, uint64_t *out)
{
        json_t *v = need(r, o, key);
        if (!v)
                return -1;
        if (json_is_integer(v) && json_integer_value(v) >= 0) {
                *out = (uint64_t)json_integer_value(v);
                return 0;
        }
        if (json_is_string(v)) {
                const char *p = json_string_value(v);
                size_t n = json_string_length(v);
                uint64_t x = 0;
                size_t i = 0;
                for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
                        unsigned d = (unsigned)(p[i] - '0');
                        if (x > (UINT64_MAX - d) / 10)
                                break;
                        x = x * 10 + d;
                }
                if (n > 0 && i == n) {
                        *out = x;
                        return 0;
                }
        }
        bad(r, "\"%s\" is not a non-negative 64-bit integer", key);
        return -1;
}

static int get_int(const struct reader *r, json_t *o, const char *key, json_int_t max,
                   json_int_t *out)
{
        json_t *v = need(r, o, key);
        if (!v)
                return -1;
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max) {
                bad(r, "\"%s\" is not an integer from 0 to %lld", key, (long long)max);
                return -1;
        }
        *out = json_integer_value(v);
        return 0;
}

static const char *const entry_keys[] = {
    "source", "source_hex", "path",     "path_hex", "dev",    "ino",        "fp",
    "fp_len", "offset",     "finished", "seen",     "header", "header_hex",
};

static struct state_entry *entry_from_json(const struct reader *r, json_t *o)
{
        if (!json_is_object(o)) {
                bad(r, "not an object");
                return NULL;
        }
        const char *key;
        json_t *v;
        json_object_foreach(o, key, v)
        {
                size_t k = 0, nk = sizeof entry_keys / sizeof entry_keys[0];
                while (k < nk && strcmp(key, entry_keys[k]) != 0)
                        k++;
                if (k == nk) {
                        bad(r, "unknown key \"%s\"", key);
                        return NULL;
                }
        }
        struct state_entry *e = entry_alloc();
        if (!e) {
                state_fail(r->err, STATE_E_NOMEM, ENOMEM, "%s: out of memory", r->file);
                return NULL;
        }
        size_t len;
        json_int_t i;
        int got = get_bytes(r, o, "source", STATE_SOURCE_MAX, false, &e->source, &len);
        if (got == 0)
                bad(r, "missing \"source\"");
        if (got <= 0)
                goto fail;
        got = get_bytes(r, o, "path", STATE_PATH_MAX, false, &e->path, &len);
        if (got == 0)
                bad(r, "missing \"path\"");
        if (got <= 0)
                goto fail;
        if (get_bytes(r, o, "header", STATE_HEADER_MAX, true, &e->header, &e->header_len) < 0)
                goto fail;
        if (get_u64(r, o, "dev", &e->dev) < 0 || get_u64(r, o, "ino", &e->ino) < 0 ||
            get_u64(r, o, "offset", &e->offset) < 0)
                goto fail;
        if (get_int(r, o, "fp_len", STATE_FP_MAX, &i) < 0)
                goto fail;
        e->fp_len = (uint32_t)i;
        if (get_int(r, o, "seen", INT64_MAX, &i) < 0)
                goto fail;
        e->seen = i;

        v = need(r, o, "fp");
        if (!v)
                goto fail;
        const char *fp = json_string_value(v);
        if (!fp || json_string_length(v) != FP_HEX_LEN) {
                bad(r, "\"fp\" is not %d hex digits", FP_HEX_LEN);
                goto fail;
        }
        for (int d = 0; d < FP_HEX_LEN; d++) {
                int h = hexval(fp[d]);
                if (h < 0) {
                        bad(r, "\"fp\" is not %d hex digits", FP_HEX_LEN);
                        goto fail;
                }
                e->fp = e->fp << 4 | (uint64_t)h;
        }

        v = need(r, o, "finished");
        if (!v)
                goto fail;
        if (!json_is_boolean(v)) {
                bad(r, "\"finished\" is not true or false");
                goto fail;
        }
        e->finished = json_is_true(v);

        char why[WHY_LEN];
        if (entry_check(e, why, sizeof why) != STATE_E_NONE) {
                bad(r, "%s", why);
                goto fail;
        }
        return e;
fail:
        entry_free(e);
        return NULL;
}

struct state_entry *entry_from_json_at(json_t *o, const char *file, const char *where,
                                       struct state_error *err)
{
        struct reader r = {.file = file, .err = err};
        snprintf(r.where, sizeof r.where, "%s", where);
        return entry_from_json(&r, o);
}

/* Fill the empty table from the parsed document. */
static int load_doc(struct state *s, json_t *root, struct state_error *err)
{
        struct reader r = {.file = s->file_path, .err = err};
        if (!json_is_object(root)) {
                state_fail(err, STATE_E_CORRUPT, EBADMSG, "%s: not a JSON object", s->file_path);
                return -1;
        }
        json_t *ver = json_object_get(root, "version");
        if (!ver) {
                state_fail(err, STATE_E_CORRUPT, EBADMSG, "%s: missing \"version\"", s->file_path);
                return -1;
        }
        if (!json_is_integer(ver)) {
                state_fail(err, STATE_E_CORRUPT, EBADMSG, "%s: \"version\" is not an integer",
                           s->file_path);
                return -1;
        }
        if (json_integer_value(ver) != STATE_VERSION) {
                state_fail(err, STATE_E_CORRUPT, EBADMSG,
                           "%s: version %lld is not supported (this pmtatail reads version %d; "
                           "was it written by a newer one?)",
                           s->file_path, (long long)json_integer_value(ver), STATE_VERSION);
                return -1;
        }
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v)
        {
                if (strcmp(key, "version") != 0 && strcmp(key, "files") != 0) {
                        state_fail(err, STATE_E_CORRUPT, EBADMSG, "%s: unknown key \"%s\"",
                                   s->file_path, key);
                        return -1;
                }
        }
        json_t *files = json_object_get(root, "files");
        if (!files || !json_is_array(files)) {
                state_fail(err, STATE_E_CORRUPT, EBADMSG, "%s: %s", s->file_path,
                           files ? "\"files\" is not an array" : "missing \"files\"");
                return -1;
        }
        if (json_array_size(files) > STATE_MAX_ENTRIES) {
                state_fail(err, STATE_E_CORRUPT, EBADMSG, "%s: %zu files, more than the %d allowed",
                           s->file_path, json_array_size(files), STATE_MAX_ENTRIES);
                return -1;
        }
        for (size_t i = 0; i < json_array_size(files); i++) {
                snprintf(r.where, sizeof r.where, "files[%zu]", i);
                struct state_entry *e = entry_from_json(&r, json_array_get(files, i));
                if (!e)
                        return -1;
                const struct state_entry *dup = table_find_id(s, e->dev, e->ino, NULL);
                if (dup) {
                        bad(&r, "dev %" PRIu64 " ino %" PRIu64 " again (already %s)", e->dev,
                            e->ino, dup->path);
                        entry_free(e);
                        return -1;
                }
                if (table_append(s, e) < 0) {
                        entry_free(e);
                        state_fail(err, STATE_E_NOMEM, ENOMEM, "%s: out of memory", s->file_path);
                        return -1;
                }
        }
        return 0;
}

int read_state_file(struct state *s, const char *name, const char *path, size_t cap, struct buf *b,
                    struct state_error *err)
{
        /* offsets.json has always been opened through a link an operator
         * put there; the journal, new, is ours alone. */
        int nofollow = strcmp(name, STATE_FILE_NAME) != 0 ? O_NOFOLLOW : 0;
        int fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC | nofollow);
        if (fd < 0) {
                int e = errno;
                if (e == ENOENT)
                        return 0;
                if (e == ELOOP) {
                        state_fail(err, STATE_E_CORRUPT, EBADMSG, "%s: a symbolic link", path);
                        return -1;
                }
                state_fail(err, STATE_E_IO, e, "cannot open %s: %s", path, strerror(e));
                return -1;
        }
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int e = errno;
                close(fd);
                state_fail(err, STATE_E_IO, e, "cannot stat %s: %s", path, strerror(e));
                return -1;
        }
        if (!S_ISREG(st.st_mode)) {
                close(fd);
                state_fail(err, STATE_E_CORRUPT, EBADMSG, "%s: not a regular file", path);
                return -1;
        }
        buf_init(b, cap);
        char chunk[READ_CHUNK];
        int rc = 1;
        for (;;) {
                ssize_t n = read(fd, chunk, sizeof chunk);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int e = errno;
                        state_fail(err, STATE_E_IO, e, "cannot read %s: %s", path, strerror(e));
                        rc = -1;
                        break;
                }
                if (n == 0)
                        break;
                if (buf_append(b, chunk, (size_t)n) < 0) {
                        if (errno == E2BIG)
                                state_fail(err, STATE_E_CORRUPT, EBADMSG,
                                           "%s: larger than %zu bytes: not an offsets file", path,
                                           cap);
                        else
                                state_fail(err, STATE_E_NOMEM, ENOMEM, "%s: out of memory", path);
                        rc = -1;
                        break;
                }
        }
        close(fd);
        if (rc < 0)
                buf_free(b);
        return rc;
}

/* Read offsets.json into the table. Returns 1 when loaded, 0 when there is
 * no file, -1 on an error (the table may hold part of the entries). */
int state_load(struct state *s, struct state_error *err)
{
        struct buf b;
        int rc = read_state_file(s, STATE_FILE_NAME, s->file_path, STATE_FILE_MAX, &b, err);
        if (rc <= 0)
                return rc;
        rc = -1;
        if (b.len == 0) {
                state_fail(err, STATE_E_CORRUPT, EBADMSG,
                           "%s: empty file (an interrupted write or a failing disk?): refusing to "
                           "guess the offsets",
                           s->file_path);
                goto out;
        }
        json_error_t je;
        json_t *root = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
        if (!root) {
                state_fail(err, STATE_E_CORRUPT, EBADMSG,
                           "%s: line %d, column %d: invalid JSON: %s", s->file_path, je.line,
                           je.column, je.text);
                goto out;
        }
        rc = load_doc(s, root, err) < 0 ? -1 : 1;
        json_decref(root);
        if (rc > 0) {
                /* The journal names the snapshot it follows by these. */
                s->snap_exists = true;
                s->snap_size = b.len;
                s->snap_hash = state_crc(b.data, b.len);
        }
out:
        buf_free(&b);
        return rc;
}

/* Saving */

static int dump_cb(const char *p, size_t n, void *data)
{
        return buf_append(data, p, n);
}

int snapshot_render(struct state *s, struct buf *b, struct state_error *err)
{
        json_t *root = json_object();
        json_t *files = json_array();
        int rc = json_object_set_new(root, "version", json_integer(STATE_VERSION));
        rc |= json_object_set(root, "files", files);
        for (size_t i = 0; rc == 0 && i < s->n; i++) {
                const struct state_entry *e = s->entries[i];
                char why[WHY_LEN];
                enum state_errkind k = entry_check(e, why, sizeof why);
                if (k != STATE_E_NONE) {
                        json_decref(files);
                        json_decref(root);
                        state_fail(err, STATE_E_INVALID, EINVAL,
                                   "%s: not saving: the entry for %s is wrong: %s", s->file_path,
                                   e->path ? e->path : "(no path)", why);
                        return -1;
                }
                rc |= json_array_append_new(files, entry_to_json(e, true));
        }
        json_decref(files);
        buf_init(b, STATE_FILE_MAX);
        errno = 0;
        if (rc == 0)
                rc = json_dump_callback(root, dump_cb, b, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        json_decref(root);
        if (rc == 0)
                rc = buf_putc(b, '\n');
        if (rc != 0) {
                int e = errno == E2BIG ? E2BIG : ENOMEM;
                buf_free(b);
                state_fail(err, e == E2BIG ? STATE_E_LIMIT : STATE_E_NOMEM, e,
                           "cannot save offsets: %s; %s is unchanged",
                           e == E2BIG ? "the table would be too large" : "out of memory",
                           s->file_path);
                return -1;
        }
        return 0;
}
