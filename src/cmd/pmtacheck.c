/* PowerMTA's configuration read for check-config (see pmtacheck.h). The
 * syntax read: one directive per line ("name value"), '#' comments (at the
 * start of a line or after a blank), blocks "<name args>" ... "</name>",
 * `include PATH` (relative to the including file, globs allowed). Only the
 * <acct-file> blocks and include lines matter here; everything else is
 * skipped without judgement: this is not PowerMTA's validator. */
#include "pmtacheck.h"

#include "pmta_csv.h"

#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOTE_LEN   600
#define MAX_GROUPS 256

__attribute__((format(printf, 2, 3))) static void note(struct pmta_conf *pc, const char *fmt, ...)
{
        if (pc->n_notes >= PMTACHECK_MAX_NOTES) {
                pc->dropped_notes++;
                return;
        }
        char buf[NOTE_LEN];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        char *s = strdup(buf);
        if (s)
                pc->notes[pc->n_notes++] = s;
        else
                pc->dropped_notes++;
}

/* A value quoted for a message: at most 80 bytes, control bytes as '?'. */
static const char *show(char *buf, size_t len, const char *v)
{
        size_t i = 0;
        for (; v[i] && i + 4 < len && i < 80; i++)
                buf[i] = (unsigned char)v[i] < 0x20 || v[i] == 0x7f ? '?' : v[i];
        if (v[i])
                buf[i++] = '.', buf[i++] = '.', buf[i++] = '.';
        buf[i] = '\0';
        return buf;
}

static char *trim(char *s)
{
        while (*s == ' ' || *s == '\t')
                s++;
        size_t n = strlen(s);
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
                s[--n] = '\0';
        return s;
}

/* PowerMTA allows a value in double quotes (a path with blanks): the
 * value is what is inside them. */
static char *unquote(char *v)
{
        size_t n = strlen(v);
        if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
                v[n - 1] = '\0';
                return v + 1;
        }
        return v;
}

static bool truthy(const char *v)
{
        return strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0 ||
               strcasecmp(v, "on") == 0 || strcmp(v, "1") == 0;
}

/* "b" for "b", "bounce" -> "b", "feedback-loop" -> "f"; unknown names are
 * kept as written (cut to fit). */
static void type_code(const char *name, char out[8])
{
        const char *code = pmta_type_code(name);
        snprintf(out, 8, "%s", code ? code : name);
}

struct parser {
        struct pmta_conf *pc;
        const char *file; /* owned by pc->files */
        int line;
        struct pmta_acct *acct; /* the open <acct-file>, or NULL */
        int other_depth;        /* nesting of other blocks */
};

static int load_file(struct pmta_conf *pc, const char *path, int depth, const char *from,
                     int from_line);

static void set_str(struct parser *p, char **field, const char *v)
{
        free(*field);
        *field = strdup(v);
        if (!*field)
                note(p->pc, "%s:%d: out of memory", p->file, p->line);
}

static void on_records(struct parser *p, char *v)
{
        struct pmta_acct *a = p->acct;
        a->records_at = (struct pmta_where){p->file, p->line};
        a->n_records = 0;
        for (char *save = NULL, *tok = strtok_r(v, ", \t", &save); tok;
             tok = strtok_r(NULL, ", \t", &save)) {
                char code[8];
                type_code(tok, code);
                bool dup = false;
                for (size_t i = 0; i < a->n_records; i++)
                        dup |= strcmp(a->records[i], code) == 0;
                if (dup)
                        continue;
                if (a->n_records == PMTACHECK_MAX_TYPES) {
                        note(p->pc, "%s:%d: more than %d record types: the rest not read", p->file,
                             p->line, PMTACHECK_MAX_TYPES);
                        break;
                }
                memcpy(a->records[a->n_records++], code, 8);
        }
}

static void on_record_fields(struct parser *p, char *v)
{
        struct pmta_acct *a = p->acct;
        char *sp = v + strcspn(v, " \t");
        if (!*sp) {
                char q[100];
                note(p->pc, "%s:%d: record-fields %s names no fields", p->file, p->line,
                     show(q, sizeof q, v));
                return;
        }
        *sp++ = '\0';
        char code[8];
        type_code(v, code);
        struct pmta_fields *f = NULL;
        for (size_t i = 0; i < a->n_fields; i++)
                if (strcmp(a->fields[i].type, code) == 0)
                        f = &a->fields[i];
        if (!f) {
                if (a->n_fields == PMTACHECK_MAX_TYPES) {
                        note(p->pc, "%s:%d: more than %d record-fields lines: this one not read",
                             p->file, p->line, PMTACHECK_MAX_TYPES);
                        return;
                }
                f = &a->fields[a->n_fields++];
                memcpy(f->type, code, 8);
        }
        set_str(p, &f->list, trim(sp));
        f->at = (struct pmta_where){p->file, p->line};
}

/* A directive that changes what Oempro receives, in the scope it was
 * written in; true when it was one. */
static bool on_effect(struct parser *p, struct pmta_effects *fx, const char *name, const char *v)
{
        struct pmta_where here = {p->file, p->line};
        if (strcasecmp(name, "privacy-policy") == 0) {
                set_str(p, &fx->privacy_policy, v);
                fx->privacy_policy_at = here;
        } else if (strcasecmp(name, "queue-filter") == 0) {
                set_str(p, &fx->queue_filter, v);
                fx->queue_filter_at = here;
        } else if (strcasecmp(name, "map-header-to-field") == 0) {
                if (fx->n_map == PMTACHECK_MAX_MAPS) {
                        note(p->pc,
                             "%s:%d: more than %d map-header-to-field lines: this one not read",
                             p->file, p->line, PMTACHECK_MAX_MAPS);
                        return true;
                }
                fx->map[fx->n_map] = NULL;
                set_str(p, &fx->map[fx->n_map], v);
                if (fx->map[fx->n_map])
                        fx->map_at[fx->n_map++] = here;
        } else {
                return false;
        }
        return true;
}

static void on_acct_directive(struct parser *p, const char *name, char *v)
{
        struct pmta_acct *a = p->acct;
        v = unquote(v);
        if (on_effect(p, &a->effects, name, v)) {
                return;
        } else if (strcasecmp(name, "records") == 0) {
                on_records(p, v);
        } else if (strcasecmp(name, "record-fields") == 0) {
                on_record_fields(p, v);
        } else if (strcasecmp(name, "move-to") == 0) {
                set_str(p, &a->move_to, v);
                a->move_to_at = (struct pmta_where){p->file, p->line};
        } else if (strcasecmp(name, "move-interval") == 0) {
                set_str(p, &a->move_interval, v);
                a->move_interval_at = (struct pmta_where){p->file, p->line};
        } else if (strcasecmp(name, "delete-after") == 0) {
                set_str(p, &a->delete_after, v);
                a->delete_after_at = (struct pmta_where){p->file, p->line};
        } else if (strcasecmp(name, "world-readable") == 0) {
                a->world_readable = truthy(v);
                a->world_readable_at = (struct pmta_where){p->file, p->line};
        }
}

static void on_include(struct parser *p, const char *v, int depth)
{
        char q[100];
        if (!*v) {
                note(p->pc, "%s:%d: include names no file", p->file, p->line);
                return;
        }
        char pattern[PATH_MAX];
        if (v[0] == '/') {
                snprintf(pattern, sizeof pattern, "%s", v);
        } else {
                /* relative to the directory of the including file */
                const char *slash = strrchr(p->file, '/');
                int dirlen = slash ? (int)(slash - p->file) : 1;
                snprintf(pattern, sizeof pattern, "%.*s/%s", dirlen, slash ? p->file : ".", v);
        }
        glob_t g;
        int r = glob(pattern, GLOB_NOSORT | GLOB_NOCHECK, NULL, &g);
        if (r != 0) {
                note(p->pc, "%s:%d: include %s: no such file", p->file, p->line,
                     show(q, sizeof q, v));
                return;
        }
        for (size_t i = 0; i < g.gl_pathc; i++)
                load_file(p->pc, g.gl_pathv[i], depth + 1, p->file, p->line);
        globfree(&g);
}

static void on_line(struct parser *p, char *s, int depth)
{
        char q[100];
        /* a comment starts at '#' at the beginning or after a blank */
        for (char *h = strchr(s, '#'); h; h = strchr(h + 1, '#')) {
                if (h == s || h[-1] == ' ' || h[-1] == '\t') {
                        *h = '\0';
                        break;
                }
        }
        s = trim(s);
        if (!*s)
                return;
        if (s[0] == '<') {
                size_t n = strlen(s);
                if (s[n - 1] != '>') {
                        note(p->pc, "%s:%d: %s: a block heading without '>'", p->file, p->line,
                             show(q, sizeof q, s));
                        return;
                }
                s[n - 1] = '\0';
                bool closing = s[1] == '/';
                char *name = trim(s + (closing ? 2 : 1));
                char *args = name + strcspn(name, " \t");
                if (*args)
                        *args++ = '\0';
                args = trim(args);
                bool acct = strcasecmp(name, "acct-file") == 0;
                if (closing) {
                        if (acct && p->acct)
                                p->acct = NULL;
                        else if (p->other_depth > 0)
                                p->other_depth--;
                        return;
                }
                if (acct && !p->acct && p->other_depth == 0) {
                        if (p->pc->n_acct == PMTACHECK_MAX_BLOCKS) {
                                note(p->pc, "%s:%d: more than %d <acct-file> blocks: not read",
                                     p->file, p->line, PMTACHECK_MAX_BLOCKS);
                                p->other_depth++;
                                return;
                        }
                        struct pmta_acct *a = &p->pc->acct[p->pc->n_acct++];
                        memset(a, 0, sizeof *a);
                        a->at = (struct pmta_where){p->file, p->line};
                        /* <acct-file "/var/log/pmta/bounces.csv">, as
                         * PowerMTA allows */
                        set_str(p, &a->path, unquote(args));
                        if (!a->path) {
                                p->pc->n_acct--;
                                p->other_depth++;
                                return;
                        }
                        p->acct = a;
                        return;
                }
                p->other_depth++;
                return;
        }
        char *name = s;
        char *v = s + strcspn(s, " \t");
        if (*v)
                *v++ = '\0';
        v = trim(v);
        if (p->acct)
                on_acct_directive(p, name, v);
        else if (strcasecmp(name, "include") == 0)
                on_include(p, unquote(v), depth);
        else if (p->other_depth == 0)
                on_effect(p, &p->pc->global, name, unquote(v));
}

static int load_file(struct pmta_conf *pc, const char *path, int depth, const char *from,
                     int from_line)
{
        char q[100];
        if (depth > PMTACHECK_MAX_DEPTH) {
                note(pc, "%s:%d: include %s nested deeper than %d: not read", from, from_line,
                     show(q, sizeof q, path), PMTACHECK_MAX_DEPTH);
                return 0;
        }
        /* a file included twice (or a loop) is read once */
        char real[PATH_MAX] = "";
        if (realpath(path, real)) {
                for (size_t i = 0; i < pc->n_files; i++) {
                        char other[PATH_MAX];
                        if (realpath(pc->files[i], other) && strcmp(other, real) == 0) {
                                note(pc, "%s:%d: include %s: already read", from, from_line,
                                     show(q, sizeof q, path));
                                return 0;
                        }
                }
        }
        if (pc->n_files == PMTACHECK_MAX_FILES) {
                note(pc, "%s:%d: include %s: more than %d files: not read", from, from_line,
                     show(q, sizeof q, path), PMTACHECK_MAX_FILES);
                return 0;
        }
        FILE *f = fopen(path, "r");
        if (!f) {
                int e = errno;
                if (from)
                        note(pc, "%s:%d: include %s: %s", from, from_line, show(q, sizeof q, path),
                             strerror(e));
                errno = e;
                return -1;
        }
        struct stat sb;
        if (fstat(fileno(f), &sb) == 0 &&
            (!S_ISREG(sb.st_mode) || sb.st_size > PMTACHECK_FILE_MAX)) {
                note(pc, "%s: %s: not read", show(q, sizeof q, path),
                     S_ISREG(sb.st_mode) ? "larger than 4 MiB" : "not a regular file");
                fclose(f);
                return 0;
        }
        /* an included file by its resolved name: "conf.d/../x" says little */
        char *name = strdup(from && real[0] ? real : path);
        char *buf = malloc(PMTACHECK_LINE_MAX + 1);
        if (!name || !buf) {
                free(name);
                free(buf);
                fclose(f);
                note(pc, "%s: out of memory", path);
                return 0;
        }
        pc->files[pc->n_files++] = name;
        struct parser p = {.pc = pc, .file = name};
        /* byte by byte: a line is whatever ends at '\n' (or EOF), however
         * long, whatever bytes it holds; one over the cap, or holding a NUL,
         * is skipped whole and named */
        size_t total = 0, n = 0;
        bool nul = false, over = false;
        int c;
        do {
                c = getc(f);
                if (c != EOF && ++total > PMTACHECK_FILE_MAX) {
                        note(pc, "%s:%d: beyond 4 MiB: the rest not read", name, p.line + 1);
                        break;
                }
                if (c != '\n' && c != EOF) {
                        nul |= c == '\0';
                        if (n < PMTACHECK_LINE_MAX)
                                buf[n++] = (char)c;
                        else
                                over = true;
                        continue;
                }
                if (c == EOF && n == 0 && !over)
                        break;
                p.line++;
                buf[n] = '\0';
                if (over)
                        note(pc, "%s:%d: line longer than %d bytes: skipped", name, p.line,
                             PMTACHECK_LINE_MAX);
                else if (nul)
                        note(pc, "%s:%d: line holds a NUL byte: skipped", name, p.line);
                else
                        on_line(&p, buf, depth);
                n = 0;
                nul = over = false;
        } while (c != EOF);
        if (p.acct)
                note(pc, "%s:%d: <acct-file %s> is not closed by </acct-file>", name,
                     p.acct->at.line, show(q, sizeof q, p.acct->path));
        free(buf);
        fclose(f);
        return 0;
}

int pmtacheck_load(const char *path, struct pmta_conf *pc)
{
        memset(pc, 0, sizeof *pc);
        return load_file(pc, path, 0, NULL, 0);
}

static void effects_free(struct pmta_effects *fx)
{
        free(fx->privacy_policy);
        free(fx->queue_filter);
        for (size_t k = 0; k < fx->n_map; k++)
                free(fx->map[k]);
}

void pmtacheck_free(struct pmta_conf *pc)
{
        for (size_t i = 0; i < pc->n_files; i++)
                free(pc->files[i]);
        for (size_t i = 0; i < pc->n_acct; i++) {
                struct pmta_acct *a = &pc->acct[i];
                free(a->path);
                free(a->move_to);
                free(a->move_interval);
                free(a->delete_after);
                for (size_t k = 0; k < a->n_fields; k++)
                        free(a->fields[k].list);
                effects_free(&a->effects);
        }
        effects_free(&pc->global);
        for (size_t i = 0; i < pc->n_notes; i++)
                free(pc->notes[i]);
        memset(pc, 0, sizeof *pc);
}

const char *pmtacheck_octeth_fields(const char *type)
{
        /* Octeth's bounce- and complaint-processing guides; header_X-FBLId
         * is how its handler ties a bounce or a complaint to the campaign
         * and the subscriber. */
        if (strcmp(type, "b") == 0)
                return "timeQueued,timeLogged,orig,rcpt,bounceCat,dsnStatus,dsnAction,dsnDiag,"
                       "dsnMta,jobId,vmta,header_X-FBLId";
        if (strcmp(type, "rb") == 0)
                return "timeLogged,orig,rcpt,bounceCat,dsnStatus,dsnAction,dsnDiag,dsnMta,"
                       "header_X-FBLId";
        if (strcmp(type, "f") == 0)
                return "timeLogged,format,header_To,header_Return-Path,reportedDomain,"
                       "header_X-FBLId";
        return NULL;
}

/* --- comparison ------------------------------------------------------- */

/* Paths equal as written (trailing slashes aside), or as resolved. */
static bool same_path(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        while (la > 1 && a[la - 1] == '/')
                la--;
        while (lb > 1 && b[lb - 1] == '/')
                lb--;
        if (la == lb && strncmp(a, b, la) == 0)
                return true;
        char ra[PATH_MAX], rb[PATH_MAX];
        return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

static bool has_type(const char (*types)[8], size_t n, const char *code)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(types[i], code) == 0)
                        return true;
        return false;
}

static bool source_wants(const struct config_source *s, const char *code)
{
        for (size_t i = 0; i < s->n_records; i++)
                if (strcmp(s->records[i], code) == 0)
                        return true;
        return false;
}

/* Does a record-fields list, in PowerMTA's syntax, log the field? `*` is
 * every default field of the type, which covers Octeth's fields but
 * header_X-FBLId (a header of our messages, never a default); `!field`
 * leaves one out whatever else says; header_NAME names a header, whose
 * name has no case; `header_*` is every header. */
static bool list_has(const char *list, const char *field, size_t len)
{
        static const char hdr[] = "header_";
        bool is_header = len > sizeof hdr - 1 && strncasecmp(field, hdr, sizeof hdr - 1) == 0;
        bool is_default = !(len == 14 && strncasecmp(field, "header_X-FBLId", 14) == 0);
        bool named = false, excluded = false;
        const char *p = list;
        while (*p) {
                p += strspn(p, ", \t");
                size_t n = strcspn(p, ", \t");
                bool bang = n > 1 && *p == '!';
                const char *t = bang ? p + 1 : p;
                size_t tn = bang ? n - 1 : n;
                bool match = tn == len && strncasecmp(t, field, len) == 0;
                if (bang)
                        excluded |= match;
                else
                        named |=
                            match || (tn == 1 && *t == '*' && is_default) ||
                            (is_header && tn == sizeof hdr && strncasecmp(t, "header_*", tn) == 0);
                p += n;
        }
        return named && !excluded;
}

/* Octeth's fields for type missing from list, header_X-FBLId first, into
 * out ("" when none). */
static void missing_fields(const char *type, const char *list, char *out, size_t len)
{
        const char *want = pmtacheck_octeth_fields(type);
        out[0] = '\0';
        if (!want)
                return;
        static const char fbl[] = "header_X-FBLId";
        if (!list || !list_has(list, fbl, sizeof fbl - 1))
                snprintf(out, len, "%s", fbl);
        for (const char *p = want; *p;) {
                size_t n = strcspn(p, ",");
                if (!(n == sizeof fbl - 1 && strncmp(p, fbl, n) == 0) &&
                    (!list || !list_has(list, p, n))) {
                        size_t used = strlen(out);
                        snprintf(out + used, len - used, "%s%.*s", used ? ", " : "", (int)n, p);
                }
                p += n + (p[n] == ',');
        }
}

/* Can user read files PowerMTA writes at path? Only asked when the block
 * has no `world-readable yes`: then the files are PowerMTA's user's and
 * group's, and the user needs that group. why gets the group named. */
static bool user_can_read(const char *user, const char *path, char *why, size_t len)
{
        struct stat sb;
        char dir[PATH_MAX];
        const char *what = path;
        if (stat(path, &sb) < 0) {
                snprintf(dir, sizeof dir, "%s", path);
                char *slash = strrchr(dir, '/');
                if (slash)
                        *(slash == dir ? slash + 1 : slash) = '\0';
                what = dir;
                if (stat(dir, &sb) < 0) {
                        snprintf(why, len, "neither %s nor its directory exists yet", path);
                        return false;
                }
        }
        struct passwd *pw = getpwnam(user);
        if (!pw) {
                snprintf(why, len, "there is no user %s", user);
                return false;
        }
        if (pw->pw_uid == sb.st_uid || pw->pw_uid == 0)
                return true;
        gid_t groups[MAX_GROUPS];
        int ng = MAX_GROUPS;
        if (getgrouplist(user, pw->pw_gid, groups, &ng) < 0)
                ng = MAX_GROUPS;
        bool member = false;
        for (int i = 0; i < ng; i++)
                member |= groups[i] == sb.st_gid;
        struct group *gr = getgrgid(sb.st_gid);
        char gname[64];
        if (gr)
                snprintf(gname, sizeof gname, "%s", gr->gr_name);
        else
                snprintf(gname, sizeof gname, "%lu", (unsigned long)sb.st_gid);
        if (!member) {
                snprintf(why, len, "user %s is not in group %s, which owns %s", user, gname, what);
                return false;
        }
        if (what == path && !(sb.st_mode & S_IRGRP)) {
                snprintf(why, len, "%s is not readable by its group %s", path, gname);
                return false;
        }
        return true;
}

static const char *where_str(char *buf, size_t len, struct pmta_where w)
{
        snprintf(buf, len, "%s:%d", w.file, w.line);
        return buf;
}

/* Does a map-header-to-field value write over a field Oempro matches
 * records by? Its words are the header and the field, in either order: any
 * of them naming rcpt or orig is enough. Returns that field, or NULL. */
static const char *map_overwrites(const char *v)
{
        static const char *const keys[] = {"rcpt", "orig"};
        for (const char *p = v; *p;) {
                p += strspn(p, ", \t");
                size_t n = strcspn(p, ", \t");
                for (size_t k = 0; k < 2; k++)
                        if (n == strlen(keys[k]) && strncasecmp(p, keys[k], n) == 0)
                                return keys[k];
                p += n;
        }
        return NULL;
}

/* privacy-policy, queue-filter and map-header-to-field of one scope (the
 * block's own, or the configuration's top level) against block a, whose
 * records src forwards: each one named with its line and what it means for
 * Oempro. */
static void effect_problems(const struct pmta_effects *fx, const struct pmta_acct *a,
                            const char *src, FILE *out, size_t *problems, bool *bad)
{
        const char *scope = fx == &a->effects ? "" : " (for every accounting file)";
        if (fx->privacy_policy && strcasecmp(fx->privacy_policy, "none") != 0 &&
            strcasecmp(fx->privacy_policy, "off") != 0 &&
            strcasecmp(fx->privacy_policy, "no") != 0) {
                fprintf(out,
                        "  problem: %s:%d: privacy-policy %s%s: <acct-file %s> holds recipients "
                        "with their local part redacted or hashed, which Oempro cannot match to "
                        "its subscribers, for %s\n",
                        fx->privacy_policy_at.file, fx->privacy_policy_at.line, fx->privacy_policy,
                        scope, a->path, src);
                ++*problems, *bad = true;
        }
        if (fx->queue_filter) {
                fprintf(out,
                        "  problem: %s:%d: queue-filter %s%s: <acct-file %s> leaves out the "
                        "records of the queues it filters, bounces Oempro then never receives, "
                        "for %s\n",
                        fx->queue_filter_at.file, fx->queue_filter_at.line, fx->queue_filter, scope,
                        a->path, src);
                ++*problems, *bad = true;
        }
        for (size_t k = 0; k < fx->n_map; k++) {
                const char *field = map_overwrites(fx->map[k]);
                if (!field)
                        continue;
                fprintf(out,
                        "  problem: %s:%d: map-header-to-field %s%s: <acct-file %s> writes a "
                        "header's value over %s, so Oempro gets that instead of the address, for "
                        "%s\n",
                        fx->map_at[k].file, fx->map_at[k].line, fx->map[k], scope, a->path, field,
                        src);
                ++*problems, *bad = true;
        }
}

size_t pmtacheck_compare(const struct pmta_conf *pc, const struct config *cfg, const char *cfg_path,
                         const char *user, FILE *out)
{
        size_t problems = 0;
        char w1[PATH_MAX + 24], src[PATH_MAX + 80];
#define PROBLEM(...)                                                                               \
        do {                                                                                       \
                fprintf(out, "  problem: " __VA_ARGS__);                                           \
                fputc('\n', out);                                                                  \
                problems++;                                                                        \
                bad = true;                                                                        \
        } while (0)
        bool bad = false;
        for (size_t i = 0; i < cfg->n_sources; i++) {
                const struct config_source *s = &cfg->sources[i];
                if (!s->path)
                        continue;
                bad = false;
                snprintf(src, sizeof src, "[source %s] (%s:%d)", s->name, cfg_path, s->line);
                const struct pmta_acct *a = NULL;
                for (size_t k = 0; k < pc->n_acct && !a; k++)
                        if (pc->acct[k].path[0] != '|' && same_path(pc->acct[k].path, s->path))
                                a = &pc->acct[k];
                if (!a) {
                        PROBLEM("%s follows %s, which is no <acct-file> of PowerMTA's "
                                "configuration %s%s",
                                src, s->path, pc->n_files ? pc->files[0] : "?",
                                pc->n_files > 1 ? " (includes read too)" : "");
                        continue;
                }
                where_str(w1, sizeof w1, a->at);
                /* rotated files: where PowerMTA moves them, where we look */
                if (a->move_to && s->archive_dir && !same_path(a->move_to, s->archive_dir))
                        PROBLEM("%s:%d: <acct-file %s> move-to %s, but %s has archive_dir %s",
                                a->move_to_at.file, a->move_to_at.line, a->path, a->move_to, src,
                                s->archive_dir);
                else if (a->move_to && !s->archive_dir)
                        PROBLEM("%s:%d: <acct-file %s> move-to %s, but %s has no archive_dir: "
                                "files rotated while pmtatail is stopped are not found",
                                a->move_to_at.file, a->move_to_at.line, a->path, a->move_to, src);
                else if (!a->move_to && s->archive_dir)
                        PROBLEM("%s: <acct-file %s> has no move-to, but %s expects rotated "
                                "files in archive_dir %s",
                                w1, a->path, src, s->archive_dir);
                /* record types: what PowerMTA writes, what we forward */
                if (!a->records_at.line) {
                        PROBLEM("%s: <acct-file %s> has no records line (Octeth's guide: "
                                "records b, rb or records feedback-loop), for %s",
                                w1, a->path, src);
                } else {
                        for (size_t k = 0; k < s->n_records; k++)
                                if (!has_type(a->records, a->n_records, s->records[k]))
                                        PROBLEM("%s:%d: <acct-file %s> records does not "
                                                "include %s, which %s forwards",
                                                a->records_at.file, a->records_at.line, a->path,
                                                s->records[k], src);
                        static const char *const octeth[] = {"b", "rb", "f"};
                        for (size_t k = 0; k < 3; k++)
                                if (has_type(a->records, a->n_records, octeth[k]) &&
                                    !source_wants(s, octeth[k]))
                                        PROBLEM("%s:%d: <acct-file %s> writes %s records, "
                                                "which %s does not forward",
                                                a->records_at.file, a->records_at.line, a->path,
                                                octeth[k], src);
                }
                /* the fields Octeth's handler reads, for each type forwarded */
                for (size_t k = 0; k < s->n_records; k++) {
                        const char *t = s->records[k];
                        if (!pmtacheck_octeth_fields(t) ||
                            (a->records_at.line && !has_type(a->records, a->n_records, t)))
                                continue;
                        const struct pmta_fields *f = NULL;
                        for (size_t j = 0; j < a->n_fields; j++)
                                if (strcmp(a->fields[j].type, t) == 0)
                                        f = &a->fields[j];
                        char miss[600];
                        missing_fields(t, f ? f->list : NULL, miss, sizeof miss);
                        if (!f)
                                PROBLEM("%s: <acct-file %s> has no record-fields %s: PowerMTA's "
                                        "default fields lack header_X-FBLId, which Oempro needs "
                                        "from the %s records %s forwards",
                                        w1, a->path, t, t, src);
                        else if (miss[0])
                                PROBLEM("%s:%d: record-fields %s of <acct-file %s> lacks %s "
                                        "(Octeth's guide lists them), for %s",
                                        f->at.file, f->at.line, t, a->path, miss, src);
                }
                /* what PowerMTA does to the records before Oempro sees them */
                effect_problems(&a->effects, a, src, out, &problems, &bad);
                effect_problems(&pc->global, a, src, out, &problems, &bad);
                /* rotation as written is not rotation as done */
                if (a->move_interval && !a->move_to)
                        PROBLEM("%s:%d: <acct-file %s> move-interval %s without move-to: PowerMTA "
                                "ignores it and never moves the file aside, for %s",
                                a->move_interval_at.file, a->move_interval_at.line, a->path,
                                a->move_interval, src);
                if (a->delete_after && a->move_to)
                        PROBLEM("%s:%d: <acct-file %s> delete-after %s beside move-to: PowerMTA "
                                "applies delete-after only when move-to is not set, so nothing in "
                                "%s is ever deleted; let systemd-tmpfiles clean it instead (\"e %s "
                                "- - - %s\", see pmtatail-archives.tmpfiles.conf), for %s",
                                a->delete_after_at.file, a->delete_after_at.line, a->path,
                                a->delete_after, a->move_to, a->move_to, a->delete_after, src);
                /* will the daemon be able to open them? */
                char why[PATH_MAX + 200];
                if (user && !a->world_readable && !user_can_read(user, s->path, why, sizeof why)) {
                        if (a->world_readable_at.line)
                                PROBLEM("%s:%d: <acct-file %s> world-readable is off and %s: "
                                        "%s cannot read it",
                                        a->world_readable_at.file, a->world_readable_at.line,
                                        a->path, why, src);
                        else
                                PROBLEM("%s: <acct-file %s> has no world-readable yes and %s: "
                                        "%s cannot read it",
                                        w1, a->path, why, src);
                }
                if (!bad)
                        fprintf(out, "  ok: %s matches <acct-file %s> (%s)%s%s%s%s\n", src, a->path,
                                w1, a->move_interval ? ", move-interval " : "",
                                a->move_interval ? a->move_interval : "",
                                a->delete_after ? ", delete-after " : "",
                                a->delete_after ? a->delete_after : "");
        }
        /* PowerMTA files with what Oempro wants that nothing follows */
        for (size_t k = 0; k < pc->n_acct; k++) {
                const struct pmta_acct *a = &pc->acct[k];
                if (a->path[0] == '|')
                        continue;
                bool followed = false;
                for (size_t i = 0; i < cfg->n_sources && !followed; i++)
                        followed = cfg->sources[i].path && same_path(a->path, cfg->sources[i].path);
                bool octeth = false;
                for (size_t j = 0; j < a->n_records; j++)
                        octeth |= pmtacheck_octeth_fields(a->records[j]) != NULL;
                if (!followed && octeth)
                        PROBLEM("%s: <acct-file %s> writes bounces or complaints, but no "
                                "[source] of %s follows it",
                                where_str(w1, sizeof w1, a->at), a->path, cfg_path);
        }
#undef PROBLEM
        return problems;
}

size_t pmtacheck_report(const struct config *cfg, const char *cfg_path, FILE *out)
{
        const char *path = cfg->pmta_config ? cfg->pmta_config : PMTACHECK_DEFAULT_CONFIG;
        struct pmta_conf *pc = calloc(1, sizeof *pc);
        if (!pc) {
                fprintf(out, "  note: out of memory: PowerMTA's configuration not checked\n");
                return 0;
        }
        if (pmtacheck_load(path, pc) < 0) {
                int e = errno;
                if (e == ENOENT)
                        fprintf(out,
                                "  note: no PowerMTA configuration at %s: not cross-checked "
                                "([pmta] config names it)\n",
                                path);
                else
                        fprintf(out,
                                "  note: cannot read PowerMTA's configuration %s: %s: not "
                                "cross-checked (run check-config as root or a user of "
                                "PowerMTA's group)\n",
                                path, strerror(e));
                pmtacheck_free(pc);
                free(pc);
                return 0;
        }
        for (size_t i = 0; i < pc->n_notes; i++)
                fprintf(out, "  note: %s\n", pc->notes[i]);
        if (pc->dropped_notes)
                fprintf(out, "  note: (%zu more notes on PowerMTA's configuration)\n",
                        pc->dropped_notes);
        /* the daemon runs as pmtatail (the unit's User=); anyone else
         * running check-config is asking about themselves */
        const char *user = NULL;
        char self[256] = "";
        if (geteuid() == 0) {
                if (getpwnam("pmtatail"))
                        user = "pmtatail";
                else
                        fprintf(out, "  note: no user pmtatail: readability of PowerMTA's files "
                                     "not checked\n");
        } else {
                struct passwd *pw = getpwuid(geteuid());
                if (pw) {
                        snprintf(self, sizeof self, "%s", pw->pw_name);
                        user = self;
                }
        }
        fprintf(out,
                "  note: PowerMTA's configuration %s: %zu file%s, %zu <acct-file> block%s%s%s\n",
                path, pc->n_files, pc->n_files == 1 ? "" : "s", pc->n_acct,
                pc->n_acct == 1 ? "" : "s", user ? "; readable by user " : "", user ? user : "");
        size_t n = pmtacheck_compare(pc, cfg, cfg_path, user, out);
        pmtacheck_free(pc);
        free(pc);
        return n;
}
