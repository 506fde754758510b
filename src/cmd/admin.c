/* The operator's commands: status, check-config, pmta-config. None of them
 * needs the daemon: status reads the offsets and the daemon's status file,
 * whether or not the daemon is running. */
#include "admin.h"

#include "identity.h"
#include "safefile.h"
#include "pmtacheck.h"
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Without figures from the daemon, a record is taken to be this long. */
#define RECORD_BYTES_GUESS 300

/* Is a daemon holding the state directory? */
static bool daemon_running(const char *state_dir)
{
        char path[4200];
        snprintf(path, sizeof path, "%s/lock", state_dir);
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0)
                return false;
        bool held = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
        close(fd);
        return held;
}

static int64_t jint(json_t *o, const char *k)
{
        return (int64_t)json_integer_value(json_object_get(o, k));
}

static const char *jstr(json_t *o, const char *k)
{
        const char *s = json_string_value(json_object_get(o, k));
        return s ? s : "";
}

static size_t count_lines(const char *path)
{
        FILE *f = fopen(path, "r");
        if (!f)
                return 0;
        size_t n = 0;
        int c;
        while ((c = getc(f)) != EOF)
                n += c == '\n';
        fclose(f);
        return n;
}

struct src_status {
        const char *name;
        char file[4096];
        uint64_t offset, size, behind;
        size_t files;
        size_t blocked; /* owed files the daemon cannot open or read now */
        char blocked_file[4096], blocked_reason[256];
        char error[256]; /* a limit reached, as the daemon reports it */
};

/* What the offsets say about a source: the files not finished, how far
 * each is acknowledged, how much is written beyond. */
static void source_from_state(struct state *st, const struct config_source *cs,
                              struct src_status *out)
{
        memset(out, 0, sizeof *out);
        out->name = cs->name;
        snprintf(out->file, sizeof out->file, "%s", cs->path);
        bool first = true;
        for (size_t i = 0; st && i < state_count(st); i++) {
                struct state_entry *e = state_at(st, i);
                if (strcmp(e->source, cs->name) != 0 || e->finished)
                        continue;
                struct stat sb;
                uint64_t size = e->offset;
                if (stat(e->path, &sb) == 0 && (uint64_t)sb.st_ino == e->ino)
                        size = (uint64_t)sb.st_size;
                if (first) {
                        snprintf(out->file, sizeof out->file, "%s", e->path);
                        out->offset = e->offset;
                        out->size = size;
                        first = false;
                }
                if (size > e->offset)
                        out->behind += size - e->offset;
                out->files++;
        }
        /* A live file never seen is all behind. */
        struct stat sb;
        if (first && stat(cs->path, &sb) == 0) {
                out->size = (uint64_t)sb.st_size;
                out->behind = out->size;
                out->files = 1;
        }
}

/* The monitoring-plugin verdicts, worst last; the value is the exit
 * status Nagios, Icinga and their kin expect. */
enum verdict { V_OK = 0, V_WARNING = 1, V_CRITICAL = 2, V_UNKNOWN = 3 };

static const char *const verdict_names[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};

#define MAX_REASONS 8

/* What is wrong, each with how bad it is; the worst decides the verdict
 * and comes first in the summary. */
struct findings {
        enum verdict verdict;
        size_t n;
        enum verdict level[MAX_REASONS];
        char text[MAX_REASONS][512];
};

__attribute__((format(printf, 3, 4))) static void finding(struct findings *f, enum verdict v,
                                                          const char *fmt, ...)
{
        if (v > f->verdict)
                f->verdict = v;
        if (f->n == MAX_REASONS)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->text[f->n], sizeof f->text[f->n], fmt, ap);
        va_end(ap);
        f->level[f->n++] = v;
}

/* The first reason of the verdict's level, NULL when all is well. */
static const char *worst_reason(const struct findings *f)
{
        for (size_t i = 0; i < f->n; i++)
                if (f->level[i] == f->verdict)
                        return f->text[i];
        return NULL;
}

/* "PMTATAIL CRITICAL - reason; reason | perfdata": the reasons worst first
 * (in the order found within a level), or a short account when all is well. */
static void summary_line(const struct findings *f, bool running, uint64_t behind, size_t dead,
                         int64_t last_delivery, time_t now, char *buf, size_t len)
{
        size_t used = (size_t)snprintf(buf, len, "PMTATAIL %s - ", verdict_names[f->verdict]);
        bool first = true;
        for (int v = V_UNKNOWN; v > V_OK; v--)
                for (size_t i = 0; i < f->n && used < len; i++)
                        if (f->level[i] == (enum verdict)v) {
                                used += (size_t)snprintf(buf + used, len - used, "%s%s",
                                                         first ? "" : "; ", f->text[i]);
                                first = false;
                        }
        if (first && used < len) {
                used += (size_t)snprintf(buf + used, len - used, "%s, %llu bytes behind",
                                         running ? "running" : "not running",
                                         (unsigned long long)behind);
                if (last_delivery && used < len)
                        used +=
                            (size_t)snprintf(buf + used, len - used, ", last delivery %llds ago",
                                             (long long)(now - last_delivery));
        }
        /* performance data, after '|', for the plugins that graph it */
        if (used < len)
                snprintf(buf + used, len - used, " | bytes_behind=%lluB dead_letters=%zu",
                         (unsigned long long)behind, dead);
}

int admin_status(const struct config *cfg, const struct status_opts *opts, FILE *out)
{
        bool as_json = opts->json;
        struct state *st = NULL;
        struct state_error serr;
        bool state_ok = state_open(&st, cfg->state_dir, STATE_OPEN_READONLY, &serr) == 0;
        bool running = daemon_running(cfg->state_dir);
        char path[4200];
        snprintf(path, sizeof path, "%s/status.json", cfg->state_dir);
        json_t *ds = json_load_file(path, 0, NULL);
        snprintf(path, sizeof path, "%s/dead-letter.ndjson", cfg->state_dir);
        size_t dead = count_lines(path);
        time_t now = time(NULL);

        int64_t last_delivery = ds ? jint(ds, "last_delivery") : 0;
        /* what a running daemon says of its output; a dead one's last
         * words are history */
        json_t *live = ds && running ? ds : NULL;
        bool credentials = live && json_is_true(json_object_get(live, "credentials_refused"));
        bool refusing = live && json_is_true(json_object_get(live, "endpoint_refusing"));
        bool retrying = live && json_is_true(json_object_get(live, "retrying"));
        /* average record size from the daemon's counters, for the estimate */
        double rec_bytes = RECORD_BYTES_GUESS;

        json_t *jo = json_object();
        json_t *jsrc = json_array();
        uint64_t total_behind = 0;
        struct src_status ss[CONFIG_MAX_SOURCES];
        json_t *dsrc = live ? json_object_get(live, "sources") : NULL;
        for (size_t i = 0; i < cfg->n_sources; i++) {
                source_from_state(state_ok ? st : NULL, &cfg->sources[i], &ss[i]);
                /* a running daemon's own view is fresher than the offsets it
                 * saves once a second */
                for (size_t k = 0; k < json_array_size(dsrc); k++) {
                        json_t *j = json_array_get(dsrc, k);
                        if (strcmp(jstr(j, "name"), cfg->sources[i].name) != 0)
                                continue;
                        if (jstr(j, "file")[0])
                                snprintf(ss[i].file, sizeof ss[i].file, "%s", jstr(j, "file"));
                        ss[i].offset = (uint64_t)jint(j, "offset");
                        ss[i].size = (uint64_t)jint(j, "size");
                        ss[i].behind = (uint64_t)jint(j, "bytes_behind");
                        ss[i].files = (size_t)jint(j, "files");
                        ss[i].blocked = (size_t)jint(j, "blocked");
                        snprintf(ss[i].blocked_file, sizeof ss[i].blocked_file, "%s",
                                 jstr(j, "blocked_file"));
                        snprintf(ss[i].blocked_reason, sizeof ss[i].blocked_reason, "%s",
                                 jstr(j, "blocked_reason"));
                        snprintf(ss[i].error, sizeof ss[i].error, "%s", jstr(j, "error"));
                }
                total_behind += ss[i].behind;
        }
        /* How long the records behind have waited with nothing delivered:
         * from when the backlog appeared or the last delivery, whichever is
         * later (a daemon without behind_since: from its start). A backlog
         * that arrived a second ago after a quiet hour has not waited. */
        int64_t waited = 0;
        if (live && total_behind > 0) {
                int64_t since = jint(live, "behind_since");
                if (!json_object_get(live, "behind_since"))
                        since = jint(live, "started");
                if (last_delivery > since)
                        since = last_delivery;
                waited = since > 0 && now > since ? (int64_t)(now - since) : 0;
        }

        struct findings f = {0};
        if (!state_ok)
                finding(&f, V_UNKNOWN, "offsets unreadable: %s", serr.msg);
        if (!running) {
                if (total_behind > 0)
                        finding(&f, V_UNKNOWN, "daemon not running, %llu bytes waiting",
                                (unsigned long long)total_behind);
                else
                        finding(&f, V_UNKNOWN, "daemon not running");
        }
        if (credentials)
                finding(&f, V_CRITICAL, "credentials refused by the backend");
        if (refusing)
                finding(&f, V_CRITICAL, "the endpoint refuses every request (HTTP %lld)",
                        (long long)jint(live, "endpoint_status"));
        for (size_t i = 0; i < cfg->n_sources; i++) {
                if (ss[i].error[0])
                        finding(&f, V_CRITICAL, "source %s: %s", ss[i].name, ss[i].error);
                else if (ss[i].blocked)
                        finding(&f, V_CRITICAL, "blocked: %s (%zu file%s of source %s)",
                                ss[i].blocked_reason, ss[i].blocked, ss[i].blocked > 1 ? "s" : "",
                                ss[i].name);
        }
        if (waited > opts->max_behind_s)
                finding(&f, V_CRITICAL,
                        "behind: records waiting and nothing delivered for %lld min "
                        "(over %lld)",
                        (long long)(waited / 60), (long long)(opts->max_behind_s / 60));
        if (dead)
                finding(&f, V_WARNING, "%zu dead letter%s waiting (pmtatail dead-letter list)",
                        dead, dead == 1 ? "" : "s");
        char summary[2048];
        summary_line(&f, running, total_behind, dead, last_delivery, now, summary, sizeof summary);

        if (as_json) {
                json_object_set_new(jo, "verdict", json_string(verdict_names[f.verdict]));
                json_object_set_new(jo, "exit", json_integer(f.verdict));
                json_object_set_new(jo, "summary", json_string(summary));
                json_t *jprob = json_array();
                for (size_t i = 0; i < f.n; i++) {
                        json_t *p = json_object();
                        json_object_set_new(p, "level", json_string(verdict_names[f.level[i]]));
                        json_object_set_new(p, "text", json_string(f.text[i]));
                        json_array_append_new(jprob, p);
                }
                json_object_set_new(jo, "problems", jprob);
                /* healthy: nothing above a warning */
                json_object_set_new(jo, "healthy", json_boolean(f.verdict <= V_WARNING));
                const char *worst = worst_reason(&f);
                json_object_set_new(jo, "problem", worst ? json_string(worst) : json_null());
                json_object_set_new(jo, "running", json_boolean(running));
                json_object_set_new(jo, "state_dir", json_string(cfg->state_dir));
                if (!state_ok)
                        json_object_set_new(jo, "state_error", json_string(serr.msg));
                json_object_set_new(jo, "last_delivery", json_integer(last_delivery));
                json_object_set_new(jo, "behind_seconds", json_integer(waited));
                json_object_set_new(jo, "retrying", json_boolean(retrying));
                json_object_set_new(jo, "credentials_refused", json_boolean(credentials));
                json_object_set_new(jo, "endpoint_refusing", json_boolean(refusing));
                json_object_set_new(jo, "last_error",
                                    json_string(live ? jstr(live, "last_error") : ""));
                json_object_set_new(jo, "dead_letters", json_integer((json_int_t)dead));
                for (size_t i = 0; i < cfg->n_sources; i++) {
                        json_t *j = json_object();
                        json_object_set_new(j, "name", json_string(ss[i].name));
                        json_object_set_new(j, "file", json_string(ss[i].file));
                        json_object_set_new(j, "offset", json_integer((json_int_t)ss[i].offset));
                        json_object_set_new(j, "size", json_integer((json_int_t)ss[i].size));
                        json_object_set_new(j, "bytes_behind",
                                            json_integer((json_int_t)ss[i].behind));
                        json_object_set_new(
                            j, "records_behind_estimate",
                            json_integer((json_int_t)((double)ss[i].behind / rec_bytes)));
                        json_object_set_new(j, "files", json_integer((json_int_t)ss[i].files));
                        json_object_set_new(j, "blocked", json_integer((json_int_t)ss[i].blocked));
                        if (ss[i].blocked) {
                                json_object_set_new(j, "blocked_file",
                                                    json_string(ss[i].blocked_file));
                                json_object_set_new(j, "blocked_reason",
                                                    json_string(ss[i].blocked_reason));
                        }
                        if (ss[i].error[0])
                                json_object_set_new(j, "error", json_string(ss[i].error));
                        json_array_append_new(jsrc, j);
                }
                json_object_set_new(jo, "sources", jsrc);
                char *text = json_dumps(jo, JSON_INDENT(2));
                fprintf(out, "%s\n", text ? text : "{}");
                free(text);
        } else {
                fprintf(out, "%s\n", summary);
                fprintf(out, "daemon: %s\n", running ? "running" : "not running");
                if (!state_ok)
                        fprintf(out, "offsets: %s\n", serr.msg);
                for (size_t i = 0; i < cfg->n_sources; i++)
                        fprintf(out,
                                "source %s: file=%s offset=%llu size=%llu behind=%llu bytes "
                                "(~%llu records) files=%zu\n",
                                ss[i].name, ss[i].file, (unsigned long long)ss[i].offset,
                                (unsigned long long)ss[i].size, (unsigned long long)ss[i].behind,
                                (unsigned long long)((double)ss[i].behind / rec_bytes),
                                ss[i].files);
                for (size_t i = 0; i < cfg->n_sources; i++) {
                        if (ss[i].blocked)
                                fprintf(out, "source %s: blocked: %s file=%s (%zu file%s)\n",
                                        ss[i].name, ss[i].blocked_reason, ss[i].blocked_file,
                                        ss[i].blocked, ss[i].blocked > 1 ? "s" : "");
                        if (ss[i].error[0])
                                fprintf(out, "source %s: error: %s\n", ss[i].name, ss[i].error);
                }
                if (last_delivery) {
                        char when[64];
                        struct tm tm;
                        time_t t = (time_t)last_delivery;
                        localtime_r(&t, &tm);
                        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
                        fprintf(out, "last delivery: %s (%llds ago)\n", when, (long long)(now - t));
                } else {
                        fprintf(out, "last delivery: none recorded\n");
                }
                if (refusing)
                        fprintf(out, "endpoint: refusing every request (HTTP %lld)\n",
                                (long long)jint(live, "endpoint_status"));
                if (retrying)
                        fprintf(out, "retrying: %s\n", jstr(live, "last_error"));
                else if (live && jstr(live, "last_error")[0])
                        fprintf(out, "last error: %s\n", jstr(live, "last_error"));
                fprintf(out, "dead letters: %zu\n", dead);
                /* the last line as it always was: "ok", or the worst reason */
                const char *worst = worst_reason(&f);
                if (worst)
                        fprintf(out, "health: %s: %s\n", verdict_names[f.verdict], worst);
                else
                        fprintf(out, "health: ok\n");
        }
        if (!as_json)
                json_decref(jsrc); /* only the JSON output took it */
        json_decref(jo);
        json_decref(ds);
        state_close(st);
        return (int)f.verdict;
}

/* Can this process read a directory's entries and the files in it? */
static bool dir_readable(const char *dir)
{
        return access(dir, R_OK | X_OK) == 0;
}

int admin_check_config(const struct config *cfg, const char *config_path, FILE *out,
                       size_t file_problems)
{
        size_t problems = file_problems;
        config_describe(cfg, out);
        fprintf(out, "\nchecks:\n");
#define PROBLEM(...)                                                                               \
        do {                                                                                       \
                fprintf(out, "  problem: " __VA_ARGS__);                                           \
                fputc('\n', out);                                                                  \
                problems++;                                                                        \
        } while (0)
        if (cfg->n_sources == 0)
                PROBLEM("no [source]: the daemon would have nothing to follow");
        for (size_t i = 0; i < cfg->n_sources; i++) {
                const struct config_source *s = &cfg->sources[i];
                struct stat sb;
                char dir[4096];
                if (!s->path)
                        continue; /* reported with the file's problems */
                snprintf(dir, sizeof dir, "%s", s->path);
                char *slash = strrchr(dir, '/');
                if (slash)
                        *(slash == dir ? slash + 1 : slash) = '\0';
                else
                        snprintf(dir, sizeof dir, ".");
                if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode))
                        PROBLEM("[source %s] directory %s does not exist", s->name, dir);
                else if (!dir_readable(dir))
                        PROBLEM("[source %s] directory %s is not readable by this user", s->name,
                                dir);
                if (stat(s->path, &sb) < 0)
                        fprintf(out,
                                "  note: [source %s] %s does not exist yet (it is followed "
                                "once PowerMTA creates it)\n",
                                s->name, s->path);
                else if (!S_ISREG(sb.st_mode))
                        PROBLEM("[source %s] %s is not a regular file", s->name, s->path);
                else if (access(s->path, R_OK) < 0)
                        PROBLEM("[source %s] %s is not readable by this user (PowerMTA's "
                                "world-readable yes?)",
                                s->name, s->path);
                else
                        fprintf(out, "  ok: [source %s] %s readable, %lld bytes\n", s->name,
                                s->path, (long long)sb.st_size);
                if (s->archive_dir) {
                        if (stat(s->archive_dir, &sb) < 0 || !S_ISDIR(sb.st_mode))
                                PROBLEM("[source %s] archive_dir %s does not exist", s->name,
                                        s->archive_dir);
                        else if (!dir_readable(s->archive_dir))
                                PROBLEM("[source %s] archive_dir %s is not readable by this user",
                                        s->name, s->archive_dir);
                        else
                                fprintf(out, "  ok: [source %s] archive_dir %s readable\n", s->name,
                                        s->archive_dir);
                } else {
                        fprintf(out,
                                "  note: [source %s] no archive_dir: files rotated while "
                                "the daemon is stopped are looked for beside the live file "
                                "only\n",
                                s->name);
                }
        }
        /* after errors in the file the output may be unset because of them */
        if (cfg->output.kind == CONFIG_OUTPUT_NONE && file_problems == 0)
                PROBLEM("[output] has neither url nor file");
        struct stat sb;
        char why[4400];
        if (stat(cfg->state_dir, &sb) == 0) {
                if (!S_ISDIR(sb.st_mode) || access(cfg->state_dir, W_OK | X_OK) < 0)
                        PROBLEM("[state] dir %s is not a writable directory", cfg->state_dir);
                else if (safefile_check_dir(cfg->state_dir, why, sizeof why) < 0)
                        PROBLEM("[state] dir %s (the daemon refuses it)", why);
                else
                        fprintf(out, "  ok: [state] dir %s writable\n", cfg->state_dir);
        } else {
                fprintf(out, "  note: [state] dir %s does not exist yet (created at start)\n",
                        cfg->state_dir);
        }
        unsigned mode;
        const char *hf;
        for (size_t i = 0; (hf = config_next_header_file(&cfg->output, &i));)
                if (safefile_exposed(hf, &mode))
                        fprintf(out,
                                "  warning: [output] header_file %s is readable by group or "
                                "others (mode %04o): it holds a secret, chmod go-r it\n",
                                hf, mode);
#undef PROBLEM
        /* PowerMTA's side: its <acct-file> blocks against our sources */
        problems += pmtacheck_report(cfg, config_path, out);
        fprintf(out, "%zu problem%s\n", problems, problems == 1 ? "" : "s");
        return problems ? 1 : 0;
}

/* PowerMTA's name for a record type in `records`. */
static const char *pmta_record_name(const char *code)
{
        return strcmp(code, "f") == 0 ? "feedback-loop" : code;
}

/* Per record type: first every field of Octeth's documented record-fields
 * for it, in its order (an operator comparing with Octeth's guide sees them
 * all, header_X-FBLId included: Oempro finds the message by it), then the
 * extra fields pmtatail's events can carry. */
static const char *record_fields(const char *code)
{
        if (strcmp(code, "f") == 0)
                return "timeLogged,format,header_To,header_Return-Path,reportedDomain,"
                       "header_X-FBLId,orig,rcpt,feedbackType,userAgent,reportingMta,repSourceIp,"
                       "jobId";
        if (strcmp(code, "b") == 0)
                return "timeQueued,timeLogged,orig,rcpt,bounceCat,dsnStatus,dsnAction,dsnDiag,"
                       "dsnMta,jobId,vmta,header_X-FBLId,orcpt,srcMta,dlvSourceIp,"
                       "dlvDestinationIp,envId";
        if (strcmp(code, "rb") == 0)
                return "timeLogged,orig,rcpt,bounceCat,dsnStatus,dsnAction,dsnDiag,dsnMta,"
                       "header_X-FBLId,timeQueued,orcpt,srcMta,dlvSourceIp,dlvDestinationIp,vmta,"
                       "jobId,envId";
        return "*";
}

void admin_pmta_config(const struct config *cfg, FILE *out)
{
        fprintf(out, "# PowerMTA accounting files for pmtatail, generated from its own "
                     "configuration\n# (pmtatail pmta-config). Paste into /etc/pmta/config.\n"
                     "# PowerMTA applies delete-after only when move-to is not set: the move-to\n"
                     "# directories are cleaned by systemd-tmpfiles (an age rule, e.g.\n"
                     "# /usr/share/doc/pmtatail/pmtatail-archives.tmpfiles.conf).\n");
        for (size_t i = 0; i < cfg->n_sources; i++) {
                const struct config_source *s = &cfg->sources[i];
                bool fbl = s->n_records == 1 && strcmp(s->records[0], "f") == 0;
                fprintf(out, "\n# [source %s]\n<acct-file %s>\n    records ", s->name, s->path);
                for (size_t k = 0; k < s->n_records; k++)
                        fprintf(out, "%s%s", k ? ", " : "", pmta_record_name(s->records[k]));
                fputc('\n', out);
                for (size_t k = 0; k < s->n_records; k++)
                        fprintf(out, "    record-fields %s %s\n", s->records[k],
                                record_fields(s->records[k]));
                /* complaints are few: a daily file; bounces hourly */
                fprintf(out, "    move-interval %s\n", fbl ? "24h" : "1h");
                if (s->archive_dir)
                        fprintf(out, "    move-to %s/\n", s->archive_dir);
                else
                        fprintf(out,
                                "    # no archive_dir in [source %s]: set one and add "
                                "move-to\n",
                                s->name);
                /* no delete-after: PowerMTA ignores it beside move-to; the
                 * archives are cleaned by systemd-tmpfiles */
                fprintf(out, "    world-readable yes\n</acct-file>\n");
        }
}
