/* Reading the configuration file: what inih makes of each line, the
 * headings, continuation lines, and problems with their line number. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <ini.h>

#include "config_impl.h"

#define SUGGEST_MAX_KEY_LEN 32

static const char *const section_names[SEC_COUNT] = {
    [SEC_SOURCE] = "source",     [SEC_OUTPUT] = "output", [SEC_STATE] = "state",
    [SEC_CLASSIFY] = "classify", [SEC_LOG] = "log",       [SEC_METRICS] = "metrics",
    [SEC_PMTA] = "pmta",
};

/* --- reporting ---------------------------------------------------------- */

void cfg_problem(struct parse *p, int line, const char *fmt, ...)
{
        p->problems++;
        struct config_error *e = p->err;
        if (e->count >= CONFIG_MAX_ERRORS) {
                e->dropped++;
                return;
        }
        char *m = e->msg[e->count++];
        int n = line > 0 ? snprintf(m, CONFIG_ERROR_LEN, "%s:%d: ", p->path, line)
                         : snprintf(m, CONFIG_ERROR_LEN, "%s: ", p->path);
        if (n < 0 || (size_t)n >= CONFIG_ERROR_LEN)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m + n, CONFIG_ERROR_LEN - (size_t)n, fmt, ap);
        va_end(ap);
}

/* A value quoted for a message: short, and with bytes that could forge
 * terminal output shown as \xNN. Never use it on header values. */
const char *cfg_show(char *dst, size_t size, const char *s)
{
        size_t n = 0;
        dst[n++] = '"';
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                if (n + 8 >= size) {
                        memcpy(dst + n, "...", 3);
                        n += 3;
                        break;
                }
                if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
                        n += (size_t)snprintf(dst + n, size - n, "\\x%02x", c);
                } else {
                        dst[n++] = (char)c;
                }
        }
        dst[n++] = '"';
        dst[n] = '\0';
        return dst;
}

static size_t edit_distance(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        size_t row[SUGGEST_MAX_KEY_LEN + 1], prev[SUGGEST_MAX_KEY_LEN + 1];
        if (la > SUGGEST_MAX_KEY_LEN || lb > SUGGEST_MAX_KEY_LEN)
                return SIZE_MAX;
        for (size_t j = 0; j <= lb; j++)
                prev[j] = j;
        for (size_t i = 1; i <= la; i++) {
                row[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        size_t best = prev[j - 1] + (a[i - 1] != b[j - 1]);
                        if (prev[j] + 1 < best)
                                best = prev[j] + 1;
                        if (row[j - 1] + 1 < best)
                                best = row[j - 1] + 1;
                        row[j] = best;
                }
                memcpy(prev, row, sizeof row);
        }
        return prev[lb];
}

/* A typo is the likely cause of an unknown name: offer the nearest one. */
static const char *suggest(const char *name, const char *const *names, size_t n)
{
        const char *best = NULL;
        size_t best_d = 3;
        for (size_t i = 0; i < n; i++) {
                if (!names[i])
                        continue;
                size_t d = edit_distance(name, names[i]);
                if (d < best_d) {
                        best_d = d;
                        best = names[i];
                }
        }
        return best;
}

char *cfg_dup_or_report(struct parse *p, const char *s)
{
        char *d = strdup(s);
        if (!d)
                cfg_problem(p, p->lineno, "out of memory");
        return d;
}

/* --- key lines and continuation lines -------------------------------- */

static void on_key_line(struct parse *p, const char *name, const char *value)
{
        char q[SHOW_LEN];
        p->last_key = -1;
        if (p->sec == SEC_IGNORE)
                return;
        if (p->sec == SEC_NONE) {
                cfg_problem(p, p->lineno, "key %s before any [section]",
                            cfg_show(q, sizeof q, name));
                return;
        }
        int id = -1;
        const char *names[K_COUNT] = {NULL};
        for (int i = 0; i < K_COUNT; i++) {
                if (cfg_keys[i].sec != p->sec)
                        continue;
                names[i] = cfg_keys[i].name;
                if (strcmp(name, cfg_keys[i].name) == 0)
                        id = i;
        }
        if (id < 0) {
                const char *near = suggest(name, names, K_COUNT);
                cfg_problem(p, p->lineno, "unknown key %s in %s%s%s%s", cfg_show(q, sizeof q, name),
                            p->sec_label, near ? " (did you mean \"" : "", near ? near : "",
                            near ? "\"?)" : "");
                return;
        }
        if (p->key_line[id] && !(cfg_keys[id].flags & KF_REPEAT)) {
                cfg_problem(p, p->lineno, "%s given twice in %s (first on line %d)",
                            cfg_keys[id].name, p->sec_label, p->key_line[id]);
                return;
        }
        p->key_line[id] = p->lineno;
        unsigned before = p->problems;
        cfg_apply(p, (enum key_id)id, value);
        if (p->problems != before)
                return;
        buf_reset(&p->cont);
        if (!(cfg_keys[id].flags & KF_CONT) || buf_puts(&p->cont, value) == 0)
                p->last_key = id;
}

static void on_continuation(struct parse *p, const char *value)
{
        if (p->last_key < 0)
                return; /* the key line was refused and reported already */
        enum key_id id = (enum key_id)p->last_key;
        if (!(cfg_keys[id].flags & KF_CONT)) {
                cfg_problem(p, p->lineno,
                            "indented line continues %s from the line above; only records and "
                            "columns may go on over several lines (remove the indentation)",
                            cfg_keys[id].name);
                p->last_key = -1;
                return;
        }
        /* inih leaves inline comments in continuation lines. */
        size_t n = 0;
        for (; value[n]; n++) {
                if (value[n] == ';' && n > 0 && isspace((unsigned char)value[n - 1]))
                        break;
        }
        while (n > 0 && isspace((unsigned char)value[n - 1]))
                n--;
        if (n == 0)
                return;
        int rc = 0;
        if (p->cont.len > 0 && p->cont.data[p->cont.len - 1] != ',' && value[0] != ',')
                rc = buf_putc(&p->cont, ',');
        if (rc == 0)
                rc = buf_append(&p->cont, value, n);
        if (rc < 0) {
                cfg_problem(p, p->lineno, "%s: too long", cfg_keys[id].name);
                p->last_key = -1;
                return;
        }
        unsigned before = p->problems;
        cfg_apply(p, id, p->cont.data);
        if (p->problems != before)
                p->last_key = -1; /* later lines would only repeat the complaint */
}

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
        struct parse *p = user;
        (void)section; /* our own reader tracks the section, with its line */
        if (!value)
                value = "";
        if (p->line_cont)
                on_continuation(p, value);
        else
                on_key_line(p, name, value);
        /* Problems are collected in p; inih must go on to the next line. */
        return 1;
}

/* --- the reader --------------------------------------------------------- */

/* inih's rule for where an inline comment starts: ';' after a space. */
static const char *find_or_comment(const char *s, const char *chars)
{
        bool was_space = false;
        for (; *s; s++) {
                if (strchr(chars, *s) || (was_space && *s == ';'))
                        break;
                was_space = isspace((unsigned char)*s);
        }
        return s;
}

/* Returns whether the heading is well-formed enough for inih to take it. */
static bool on_heading(struct parse *p, const char *start)
{
        char q[SHOW_LEN], q2[SHOW_LEN];
        const char *end = find_or_comment(start + 1, "]");
        p->sec = SEC_IGNORE;
        p->src = NULL;
        p->last_key = -1;
        memset(p->key_line, 0, sizeof p->key_line);
        snprintf(p->sec_label, sizeof p->sec_label, "[?]");
        if (*end != ']') {
                cfg_problem(p, p->lineno, "section heading without a closing ]");
                return false;
        }
        const char *after = end + 1;
        while (isspace((unsigned char)*after))
                after++;
        if (*after && *after != ';' && *after != '#')
                cfg_problem(p, p->lineno, "unexpected text after the section heading");

        const char *s = start + 1;
        while (s < end && isspace((unsigned char)*s))
                s++;
        size_t kl = 0;
        while (s + kl < end && !isspace((unsigned char)s[kl]))
                kl++;
        const char *arg = s + kl;
        while (arg < end && isspace((unsigned char)*arg))
                arg++;
        size_t al = (size_t)(end - arg);
        while (al > 0 && isspace((unsigned char)arg[al - 1]))
                al--;

        char kind[32];
        snprintf(kind, sizeof kind, "%.*s", (int)(kl < sizeof kind ? kl : sizeof kind - 1), s);
        enum section_kind sk = SEC_NONE;
        for (int i = 0; i < SEC_COUNT; i++) {
                if (section_names[i] && kl == strlen(section_names[i]) &&
                    strncmp(s, section_names[i], kl) == 0)
                        sk = (enum section_kind)i;
        }
        if (sk == SEC_NONE) {
                char raw[SHOW_LEN];
                snprintf(raw, sizeof raw, "%.*s", (int)(end - start - 1), start + 1);
                const char *near = suggest(kind, section_names, SEC_COUNT);
                cfg_problem(p, p->lineno, "unknown section [%s]%s%s%s", cfg_show(q, sizeof q, raw),
                            near ? " (did you mean [" : "", near ? near : "", near ? "]?)" : "");
                return true;
        }
        if (sk != SEC_SOURCE) {
                if (al > 0) {
                        cfg_problem(p, p->lineno, "[%s] takes no name", section_names[sk]);
                        return true;
                }
                if (p->sec_line[sk]) {
                        cfg_problem(p, p->lineno, "duplicate section [%s] (first on line %d)",
                                    section_names[sk], p->sec_line[sk]);
                        return true;
                }
                p->sec_line[sk] = p->lineno;
                p->sec = sk;
                snprintf(p->sec_label, sizeof p->sec_label, "[%s]", section_names[sk]);
                return true;
        }

        char name[SOURCE_NAME_MAX + 1];
        if (al == 0) {
                cfg_problem(p, p->lineno, "a source needs a name: [source NAME]");
                return true;
        }
        if (al > SOURCE_NAME_MAX) {
                cfg_problem(p, p->lineno, "source name longer than %d bytes", SOURCE_NAME_MAX);
                return true;
        }
        memcpy(name, arg, al);
        name[al] = '\0';
        for (size_t i = 0; i < al; i++) {
                unsigned char ch = (unsigned char)name[i];
                if (!isalnum(ch) && ch != '.' && ch != '_' && ch != '-') {
                        cfg_problem(
                            p, p->lineno,
                            "source name %s may hold only letters, digits, '.', '_' and '-'",
                            cfg_show(q, sizeof q, name));
                        return true;
                }
        }
        struct config *c = p->cfg;
        for (size_t i = 0; i < c->n_sources; i++) {
                if (strcmp(c->sources[i].name, name) == 0) {
                        cfg_problem(p, p->lineno, "duplicate source %s (first on line %d)",
                                    cfg_show(q2, sizeof q2, name), c->sources[i].line);
                        return true;
                }
        }
        if (c->n_sources >= CONFIG_MAX_SOURCES) {
                cfg_problem(p, p->lineno, "too many sources (at most %d)", CONFIG_MAX_SOURCES);
                return true;
        }
        struct config_source *src = &c->sources[c->n_sources];
        memset(src, 0, sizeof *src);
        src->name = strdup(name);
        if (!src->name) {
                cfg_problem(p, p->lineno, "out of memory");
                return true;
        }
        c->n_sources++;
        src->line = p->lineno;
        src->start_at = CONFIG_START_BEGINNING;
        src->record_max = MIB;
        strcpy(src->records[0], "b");
        strcpy(src->records[1], "rb");
        strcpy(src->records[2], "f");
        src->n_records = 3;
        p->src = src;
        p->sec = SEC_SOURCE;
        snprintf(p->sec_label, sizeof p->sec_label, "[source %s]", name);
        return true;
}

/* Decide what inih will make of the line, so the handler knows the line's
 * number and whether it continues a value, and report the lines inih would
 * only count as its first error. */
static void classify_line(struct parse *p, char *line)
{
        const char *s = line;
        if (p->lineno == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB &&
            (unsigned char)s[2] == 0xBF)
                s += 3;
        const char *start = s;
        while (isspace((unsigned char)*start))
                start++;
        if (*start == '\0' || strchr(";#", *start))
                return;
        if (start > line && p->prev_key) {
                p->line_cont = true;
                return;
        }
        if (*start == '[') {
                if (on_heading(p, start))
                        p->prev_key = false;
                else
                        line[0] = '\0'; /* reported; keep it from inih */
                return;
        }
        const char *sep = find_or_comment(start, "=:");
        if (*sep != '=' && *sep != ':') {
                cfg_problem(p, p->lineno, "expected \"key = value\" or a [section] heading");
                line[0] = '\0';
                return;
        }
        p->prev_key = true;
}

/* fgets-like reader handed to inih. It reads whole lines itself so that a
 * line too long for inih's buffer is reported instead of being split into
 * several lines (which inih would count and parse separately). */
static char *read_line(char *str, int num, void *stream)
{
        struct parse *p = stream;
        size_t room = num > 2 ? (size_t)num - 2 : 0; /* keep space for '\n' and NUL */
        size_t len = 0, total = 0;
        bool nul = false;
        int ch = getc(p->fp);
        if (ch == EOF) {
                if (ferror(p->fp))
                        cfg_problem(p, 0, "read error: %s", strerror(errno));
                return NULL;
        }
        int last = 0;
        while (ch != EOF && ch != '\n') {
                if (ch == '\0')
                        nul = true;
                if (len < room)
                        str[len++] = (char)ch;
                total++;
                last = ch;
                ch = getc(p->fp);
        }
        if (ch == EOF && ferror(p->fp)) {
                cfg_problem(p, 0, "read error: %s", strerror(errno));
                return NULL;
        }
        if (last == '\r') {
                if (len == total)
                        len--;
                total--;
        }
        p->lineno++;
        p->line_cont = false;
        if (total > room) {
                cfg_problem(p, p->lineno, "line too long (%zu bytes; at most %zu)", total, room);
                len = 0;
        } else if (nul) {
                cfg_problem(p, p->lineno, "NUL byte in line");
                len = 0;
        }
        str[len] = '\0';
        if (len > 0)
                classify_line(p, str);
        /* Ending in '\n' keeps an inih built with INI_ALLOW_REALLOC from
         * taking the line for a partial one and reading on. */
        size_t used = strlen(str);
        str[used] = '\n';
        str[used + 1] = '\0';
        return str;
}

int cfg_read_file(struct parse *p)
{
        return ini_parse_stream(read_line, p, on_ini, p);
}
