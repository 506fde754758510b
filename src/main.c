/* pmtatail: follow PowerMTA's accounting files and deliver bounces and
 * complaints to the Oempro backend. This file owns the command line, the
 * process-wide state, and is the only place that exits. */
#include "admin.h"
#include "config.h"
#include "daemon.h"
#include "deadletter.h"
#include "event.h"
#include "log.h"
#include "pmta_csv.h"
#include "reload.h"
#include "replay.h"
#include "report.h"
#include "sincedb.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <getopt.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CONFIG CONFIG_DEFAULT_PATH

/* EXIT_CONFIG is sysexits.h's EX_CONFIG: the unit lists it in
 * RestartPreventExitStatus=, so a configuration that cannot work is not
 * restarted every RestartSec forever. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_CONFIG = 78 };

/* Set by SIGINT/SIGTERM during the commands that loop (replay, dead-letter
 * resend): 1 at the first, 2 at a second (replay then stops waiting for the
 * answers in flight). */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
        (void)sig;
        if (stop_requested < 2)
                stop_requested = stop_requested + 1;
}

/* Every command, in the order --help lists them: its synopsis, one line
 * saying what it does, and its options. The man page, README's command
 * table and the bash completion list the same commands (tests/py/test_cli.py
 * holds them to it). */
struct command_help {
        const char *name;
        const char *synopsis; /* after "pmtatail [-c FILE] " */
        const char *summary;  /* one line */
        const char *options;  /* "" when none */
};

static const struct command_help commands[] = {
    {"run", "run", "the daemon: follow the live files and deliver",
     "  Follows every [source] and delivers to the [output] until SIGTERM or SIGINT\n"
     "  (what is in flight is delivered, the offsets committed); SIGHUP re-reads the\n"
     "  configuration. Exit 78 when the configuration cannot run.\n"},
    {"replay", "replay [OPTIONS] PATH...", "deliver archived files (--dry-run: print)",
     "  --dry-run          print the events as NDJSON on stdout instead of sending\n"
     "  --since TIME       only records with timeLogged (else timeQueued) >= TIME\n"
     "  --until TIME       only records with timeLogged (else timeQueued) < TIME\n"
     "                     (TIME: epoch seconds or YYYY-MM-DD HH:MM:SS+hhmm)\n"
     "  --from-start       ignore what an earlier replay of the same files recorded\n"
     "  --rate N           deliver at most N events per second (default [output]\n"
     "                     max_rate)\n"
     "  --host NAME        host name put in events (default: this machine's)\n"
     "  --records LIST     record types to forward (default: the sources', else\n"
     "                     b,rb,f)\n"
     "  --columns LIST     column names for files without a header line\n"
     "  --record-max BYTES longest record accepted (default 1048576)\n"
     "  --no-message       leave the raw record out of the events\n"
     "  --keep-rejects     print refused records as events with \"parseError\"\n"},
    {"status", "status [--json] [--max-behind S]", "health and progress (exit 0 ok .. 3 unknown)",
     "  --json             the same as one JSON object (verdict, exit, summary)\n"
     "  --max-behind S     records waiting S seconds with nothing delivered are\n"
     "                     critical (default 600)\n"
     "  The first line is a verdict a monitoring check can show as is\n"
     "  (PMTATAIL OK|WARNING|CRITICAL|UNKNOWN - ...). Exit status as monitoring\n"
     "  plugins expect: 0 ok, 1 warning (dead letters waiting), 2 critical\n"
     "  (behind longer than --max-behind, files blocked, the endpoint or the\n"
     "  credentials refused), 3 unknown (the daemon not running, offsets\n"
     "  unreadable).\n"},
    {"check-config", "check-config", "validate, cross-check PowerMTA's config",
     "  Prints the resolved configuration (secrets masked), checks every path, reads\n"
     "  PowerMTA's configuration ([pmta] config) and names each problem with its file\n"
     "  and line. Exit 1 when there is a problem.\n"},
    {"report", "report [--json | --html FILE] PATH...", "what accounting files hold (text, HTML)",
     "  --json             one JSON object instead of text, with the time series\n"
     "  --html FILE        write a self-contained HTML page with charts to FILE\n"
     "                     (\"-\": standard output) instead of printing text\n"},
    {"reload", "reload", "make the daemon re-read its configuration",
     "  A bad configuration is refused (exit 78) and the daemon goes on. Exit 1 when\n"
     "  no daemon runs or it did not come back within 60 s.\n"},
    {"dead-letter", "dead-letter list|resend", "show or send again the events refused",
     "  list               time, status, eventId, recipient, start of the answer\n"
     "  resend             send them again: accepted ones leave the file\n"},
    {"import-sincedb", "import-sincedb [--dry-run] FILE", "take the offsets over from Logstash",
     "  --dry-run          say what would be imported, write nothing\n"},
    {"pmta-config", "pmta-config", "print the <acct-file> blocks for PowerMTA",
     "  One block per [source], with the record-fields Oempro reads, move-to its\n"
     "  archive_dir and world-readable yes.\n"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const struct command_help *find_command(const char *name)
{
        for (size_t i = 0; i < N_COMMANDS; i++)
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        return NULL;
}

static void print_usage(FILE *out)
{
        fputs("usage: pmtatail [-c FILE] COMMAND [OPTIONS]\n\ncommands:\n", out);
        for (size_t i = 0; i < N_COMMANDS; i++)
                fprintf(out, "  %-32s %s\n", commands[i].synopsis, commands[i].summary);
        fputs("\n'pmtatail COMMAND --help' shows a command's options.\n"
              "\n"
              "options:\n"
              "  -c, --config FILE      configuration file (default " DEFAULT_CONFIG ")\n"
              "  -h, --help             show this help\n"
              "  -V, --version          show the version\n"
              "\n"
              "exit status: 0 success, 1 failure or rejected records, 2 usage error,\n"
              "             78 configuration error (run, reload); status: 0 to 3 (see\n"
              "             'pmtatail status --help')\n",
              out);
}

static void print_command_help(const struct command_help *c, FILE *out)
{
        fprintf(out, "usage: pmtatail [-c FILE] %s\n\n%s\n", c->synopsis, c->summary);
        if (c->options[0])
                fprintf(out, "\n%s", c->options);
}

/* Does the command's argument list ask for its help (before any "--")? */
static bool wants_help(int argc, char **argv)
{
        for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
                if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
                        return true;
        return false;
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        fputs("pmtatail: ", stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs("\n", stderr);
        fputs("usage: pmtatail [-c FILE] COMMAND [OPTIONS]; try 'pmtatail --help'\n", stderr);
        return EXIT_USAGE;
}

/* Split "b, rb,feedback-loop" into type codes. Returns the count, or -1 with
 * the offending name in *bad. */
static int parse_records(char *list, const char **codes, int max, const char **bad)
{
        int n = 0;
        for (char *save = NULL, *tok = strtok_r(list, ", ", &save); tok;
             tok = strtok_r(NULL, ", ", &save)) {
                const char *code = pmta_type_code(tok);
                if (!code || n == max) {
                        *bad = tok;
                        return -1;
                }
                codes[n++] = code;
        }
        return n;
}

static int parse_size(const char *s, size_t *out)
{
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || end == s)
                return -1;
        if (*end == 'k' || *end == 'K')
                v *= 1024, end++;
        else if (*end == 'M')
                v *= 1024 * 1024, end++;
        if (*end || v < 64 || v > 256ULL * 1024 * 1024)
                return -1;
        *out = (size_t)v;
        return 0;
}

static int cmd_replay(int argc, char **argv, const struct config *cfg, const struct logger *lg)
{
        enum {
                OPT_HOST = 256,
                OPT_RECORDS,
                OPT_COLUMNS,
                OPT_RECORD_MAX,
                OPT_NO_MESSAGE,
                OPT_KEEP_REJECTS,
                OPT_DRY_RUN,
                OPT_SINCE,
                OPT_UNTIL,
                OPT_FROM_START,
                OPT_RATE
        };
        static const struct option longopts[] = {
            {"dry-run", no_argument, NULL, OPT_DRY_RUN},
            {"since", required_argument, NULL, OPT_SINCE},
            {"until", required_argument, NULL, OPT_UNTIL},
            {"from-start", no_argument, NULL, OPT_FROM_START},
            {"rate", required_argument, NULL, OPT_RATE},
            {"host", required_argument, NULL, OPT_HOST},
            {"records", required_argument, NULL, OPT_RECORDS},
            {"columns", required_argument, NULL, OPT_COLUMNS},
            {"record-max", required_argument, NULL, OPT_RECORD_MAX},
            {"no-message", no_argument, NULL, OPT_NO_MESSAGE},
            {"keep-rejects", no_argument, NULL, OPT_KEEP_REJECTS},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        /* Record types: those of the configured sources together, so a
         * replay forwards what the daemon would. */
        const char *codes[16];
        size_t record_max;
        size_t ncodes = config_record_types(cfg, codes, 16, &record_max);
        struct replay_opts o = {
            .types = ncodes ? codes : NULL,
            .ntypes = ncodes,
            .record_max = record_max,
            .host = cfg->output.host,
            .include_message = cfg->output.include_message,
            .out = stdout,
            .log = lg,
        };
        /* --rate overrides [output] max_rate for this replay only */
        struct config rcfg = *cfg;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                switch (c) {
                case OPT_RATE: {
                        char *end;
                        errno = 0;
                        unsigned long v = strtoul(optarg, &end, 10);
                        if (errno || end == optarg || *end || *optarg == '-' || v > 1000000)
                                return usage_error("--rate: bad rate \"%s\" (events per second, "
                                                   "0 to 1000000, 0: no limit)",
                                                   optarg);
                        rcfg.output.max_rate = (unsigned)v;
                        break;
                }
                case OPT_DRY_RUN:
                        o.dry_run = true;
                        break;
                case OPT_FROM_START:
                        o.from_start = true;
                        break;
                case OPT_SINCE:
                case OPT_UNTIL: {
                        int64_t t;
                        if (event_parse_time(optarg, strlen(optarg), &t) < 0)
                                return usage_error("%s: bad time \"%s\" (epoch seconds or "
                                                   "YYYY-MM-DD HH:MM:SS+hhmm)",
                                                   c == OPT_SINCE ? "--since" : "--until", optarg);
                        if (c == OPT_SINCE) {
                                o.has_since = true;
                                o.since = t;
                        } else {
                                o.has_until = true;
                                o.until = t;
                        }
                        break;
                }
                case OPT_HOST:
                        o.host = optarg;
                        break;
                case OPT_RECORDS: {
                        const char *bad = NULL;
                        int n = parse_records(optarg, codes, 16, &bad);
                        if (n <= 0)
                                return usage_error("--records: unknown record type \"%s\"",
                                                   bad ? bad : "");
                        o.types = codes;
                        o.ntypes = (size_t)n;
                        break;
                }
                case OPT_COLUMNS:
                        o.columns = optarg;
                        break;
                case OPT_RECORD_MAX:
                        if (parse_size(optarg, &o.record_max) < 0)
                                return usage_error("--record-max: bad size \"%s\" (64 to 256M)",
                                                   optarg);
                        break;
                case OPT_NO_MESSAGE:
                        o.include_message = false;
                        break;
                case OPT_KEEP_REJECTS:
                        o.keep_rejects = true;
                        break;
                case 'h':
                        print_command_help(find_command("replay"), stdout);
                        return EXIT_OK;
                default:
                        return usage_error("%s", "replay: bad option");
                }
        }
        if (optind >= argc)
                return usage_error("%s", "replay: no file given");
        /* a window that selects nothing is a mistake (swapped bounds, a
         * wrong time zone), not a run to record as done */
        if (o.has_since && o.has_until && o.since >= o.until)
                return usage_error("--since must be before --until: the window [%lld, %lld) is "
                                   "%s",
                                   (long long)o.since, (long long)o.until,
                                   o.since == o.until ? "empty" : "reversed");
        if (!o.dry_run && cfg->output.kind == CONFIG_OUTPUT_NONE) {
                fputs("pmtatail: replay: no [output] in the configuration to deliver to (or "
                      "use --dry-run)\n",
                      stderr);
                return EXIT_FAIL;
        }
        struct sigaction sa = {.sa_handler = on_stop_signal};
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        o.stop = &stop_requested;
        o.cfg = &rcfg;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        struct archives in;
        struct replay_totals totals = {0};
        int r =
            archives_expand((const char *const *)argv + optind, (size_t)(argc - optind), &in, lg);
        if (r == 0) {
                if (in.had_errors)
                        r = -1;
                totals.skipped = in.nskipped;
                if (in.n > 0 && replay_run(&in, &o, &totals) < 0)
                        r = -1;
                else if (in.n == 0)
                        log_warn(lg, "no accounting file to replay");
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        if (r == 0 || in.n || in.nskipped)
                archives_print_skipped(&in, stderr);
        archives_free(&in);
        replay_print_summary(&totals, secs, stderr);
        return r < 0 || totals.parsed.rejected ? EXIT_FAIL : EXIT_OK;
}

/* The command line as a shell would take it back, for the page to say what
 * made it: words with anything but [A-Za-z0-9_./:=@%+,-] single-quoted.
 * Capped: a glob the shell expanded may name thousands of files. */
static char *command_line(int argc, char **argv)
{
        enum { MAX = 8192 };
        char *s = malloc(MAX + 8);
        if (!s)
                return NULL;
        size_t n = 0;
        for (int i = 0; i < argc && n < MAX; i++) {
                const char *a = i == 0 ? "pmtatail" : argv[i];
                bool plain = *a != '\0';
                for (const char *p = a; *p; p++)
                        plain &= isalnum((unsigned char)*p) || strchr("_./:=@%+,-", *p) != NULL;
                if (i)
                        s[n++] = ' ';
                if (!plain && n < MAX)
                        s[n++] = '\'';
                for (const char *p = a; *p && n < MAX; p++) {
                        if (*p == '\'' && !plain) {
                                if (n + 4 > MAX)
                                        break;
                                memcpy(s + n, "'\\''", 4);
                                n += 4;
                        } else {
                                s[n++] = *p;
                        }
                }
                if (!plain && n < MAX)
                        s[n++] = '\'';
        }
        if (n >= MAX) {
                memcpy(s + n, " ...", 4);
                n += 4;
        }
        s[n] = '\0';
        return s;
}

static int cmd_report(int argc, char **argv, const struct config *cfg, const struct logger *lg,
                      int all_argc, char **all_argv)
{
        static const struct option longopts[] = {
            {"json", no_argument, NULL, 'j'},
            {"html", required_argument, NULL, 'H'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        struct report_opts o = {0};
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                switch (c) {
                case 'j':
                        o.json = true;
                        break;
                case 'H':
                        if (!*optarg)
                                return usage_error("%s", "report: --html needs a file name");
                        o.html = optarg;
                        break;
                case 'h':
                        print_command_help(find_command("report"), stdout);
                        return EXIT_OK;
                default:
                        return usage_error("%s", "report: bad option");
                }
        }
        if (optind >= argc)
                return usage_error("%s", "report: no file given");
        if (o.json && o.html)
                return usage_error("%s", "report: --json and --html exclude each other");
        char *cmdline = o.html ? command_line(all_argc, all_argv) : NULL;
        o.command = cmdline;
        int rc = report_command(cfg, &o, (const char *const *)argv + optind,
                                (size_t)(argc - optind), stdout, lg);
        free(cmdline);
        return rc == 0 ? EXIT_OK : EXIT_FAIL;
}

/* status [--json] [--max-behind SECONDS] */
static int parse_status_args(int argc, char **argv, struct status_opts *o)
{
        static const struct option longopts[] = {
            {"json", no_argument, NULL, 'j'},
            {"max-behind", required_argument, NULL, 'b'},
            {NULL, 0, NULL, 0},
        };
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
                if (c == 'j') {
                        o->json = true;
                } else if (c == 'b') {
                        char *end;
                        errno = 0;
                        long v = strtol(optarg, &end, 10);
                        if (errno || end == optarg || *end || v < 1 || v > 86400 * 365)
                                return -1;
                        o->max_behind_s = v;
                } else {
                        return -1;
                }
        }
        return optind == argc ? 0 : -1;
}

static int cmd_run(int argc, const struct config *cfg, const char *config_path,
                   const struct logger *lg)
{
        if (argc > 1)
                return usage_error("%s", "run takes no arguments");
        const char *unrunnable = reload_unrunnable(cfg);
        if (unrunnable) {
                log_error(lg, "%s", unrunnable);
                return EXIT_CONFIG;
        }
        /* Descriptors are cheap and running out loses time (files and
         * sockets are tried again): take all the hard limit allows. */
        struct rlimit nofile;
        if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
                nofile.rlim_cur = nofile.rlim_max;
                if (setrlimit(RLIMIT_NOFILE, &nofile) < 0)
                        log_warn(lg, "cannot raise the descriptor limit: %s", strerror(errno));
        }
        /* Signals arrive through a signalfd in the daemon's poll loop. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
                perror("pmtatail: sigprocmask");
                return EXIT_FAIL;
        }
        /* A reader gone from a pipe output must not kill us silently. */
        signal(SIGPIPE, SIG_IGN);
        int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0) {
                perror("pmtatail: signalfd");
                return EXIT_FAIL;
        }
        /* Each SIGHUP with a good configuration runs the daemon again on it:
         * the offsets carry over through the state directory. */
        struct config *owned = NULL;
        struct logger log = *lg;
        enum daemon_result r;
        /* The reload generation `pmtatail reload` waits on: from 0 for this
         * pid, so that a mark left by an earlier process never counts. */
        unsigned long reloads = 0;
        if (reload_mark(cfg->state_dir, (long)getpid(), reloads) < 0)
                log_debug(lg, "cannot write %s/%s: %s", cfg->state_dir, RELOAD_MARK_NAME,
                          strerror(errno));
        bool unrunnable_reload = false;
        for (;;) {
                struct config *next = NULL;
                r = daemon_run(cfg, config_path, &log, sfd, &next);
                if (r != DAEMON_RELOAD)
                        break;
                /* A bare SIGHUP (not `pmtatail reload`, which refuses it
                 * first) may bring a configuration that cannot run. */
                unrunnable = reload_unrunnable(next);
                if (unrunnable) {
                        log_error(lg, "%s", unrunnable);
                        config_free(next);
                        free(next);
                        unrunnable_reload = true;
                        break;
                }
                if (reload_mark(next->state_dir, (long)getpid(), ++reloads) < 0)
                        log_warn(lg, "cannot write %s/%s: %s", next->state_dir, RELOAD_MARK_NAME,
                                 strerror(errno));
                if (owned)
                        config_free(owned);
                free(owned);
                owned = next;
                cfg = owned;
                log.level = cfg->log_level;
        }
        if (owned)
                config_free(owned);
        free(owned);
        close(sfd);
        if (unrunnable_reload)
                return EXIT_CONFIG;
        return r == DAEMON_FAILED || r == DAEMON_UNSAVED ? EXIT_FAIL : EXIT_OK;
}

static int cmd_dead_letter(const char *what, const struct config *cfg, const struct logger *lg)
{
        if (strcmp(what, "list") == 0)
                return dead_letter_list(cfg->state_dir, stdout, lg) < 0 ? EXIT_FAIL : EXIT_OK;
        if (cfg->output.kind == CONFIG_OUTPUT_NONE) {
                fputs("pmtatail: dead-letter resend needs an [output] in the configuration\n",
                      stderr);
                return EXIT_FAIL;
        }
        struct sigaction sa = {.sa_handler = on_stop_signal};
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        return dead_letter_resend(cfg, &stop_requested, lg) < 0 ? EXIT_FAIL : EXIT_OK;
}

int main(int argc, char **argv)
{
        /* Batches are large and short-lived: keep them out of the heap so that
         * their memory goes back to the system when they are freed, instead of
         * glibc raising its mmap threshold and keeping peaks resident. */
        mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        static const struct option longopts[] = {
            {"config", required_argument, NULL, 'c'},
            {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, 'V'},
            {NULL, 0, NULL, 0},
        };
        const char *config_path = DEFAULT_CONFIG;
        bool config_path_given = false;
        int c;
        /* "+": stop at the command; its options are parsed by the command. */
        while ((c = getopt_long(argc, argv, "+c:hV", longopts, NULL)) != -1) {
                switch (c) {
                case 'c':
                        config_path = optarg;
                        config_path_given = true;
                        break;
                case 'h':
                        print_usage(stdout);
                        return EXIT_OK;
                case 'V':
                        printf("pmtatail %s\n", PMTATAIL_VERSION);
                        return EXIT_OK;
                default:
                        return usage_error("%s", "bad option");
                }
        }
        if (optind >= argc)
                return usage_error("%s", "no command given");
        const char *cmd = argv[optind];
        int sub_argc = argc - optind;
        char **sub_argv = argv + optind;
        if (strcmp(cmd, "help") == 0) {
                /* "help COMMAND": that command's; "help": all */
                const struct command_help *h = sub_argc > 1 ? find_command(sub_argv[1]) : NULL;
                if (sub_argc > 1 && !h)
                        return usage_error("unknown command \"%s\"", sub_argv[1]);
                if (h)
                        print_command_help(h, stdout);
                else
                        print_usage(stdout);
                return EXIT_OK;
        }
        const struct command_help *help = find_command(cmd);
        if (!help)
                return usage_error("unknown command \"%s\"", cmd);
        if (wants_help(sub_argc, sub_argv)) {
                print_command_help(help, stdout);
                return EXIT_OK;
        }
        struct status_opts sopts = {.max_behind_s = STATUS_MAX_BEHIND_DEFAULT};
        if (strcmp(cmd, "status") == 0) {
                if (parse_status_args(sub_argc, sub_argv, &sopts) < 0)
                        return usage_error("%s",
                                           "usage: pmtatail status [--json] [--max-behind S]");
        } else if ((strcmp(cmd, "check-config") == 0 || strcmp(cmd, "pmta-config") == 0 ||
                    strcmp(cmd, "reload") == 0) &&
                   sub_argc != 1) {
                return usage_error("%s takes no arguments", cmd);
        }
        if (strcmp(cmd, "dead-letter") == 0 &&
            (sub_argc != 2 ||
             (strcmp(sub_argv[1], "list") != 0 && strcmp(sub_argv[1], "resend") != 0)))
                return usage_error("%s", "usage: pmtatail dead-letter list|resend");

        /* The default file may be absent (defaults apply); a file named with
         * -c must exist. */
        struct config *cfg = calloc(1, sizeof *cfg);
        struct config_error *cerr = calloc(1, sizeof *cerr);
        if (!cfg || !cerr) {
                fputs("pmtatail: out of memory\n", stderr);
                free(cfg);
                free(cerr);
                return EXIT_FAIL;
        }
        int rc;
        /* check-config and the daemon want the file; the rest can do with
         * the defaults when the default file is absent */
        bool must_exist = config_path_given || strcmp(cmd, "check-config") == 0 ||
                          strcmp(cmd, "run") == 0 || strcmp(cmd, "import-sincedb") == 0 ||
                          strcmp(cmd, "reload") == 0;
        if (strcmp(cmd, "check-config") == 0) {
                /* every problem at once: the file's, then the paths it names */
                bool bad = config_load_partial(config_path, must_exist, cfg, cerr) < 0;
                if (bad)
                        config_error_print(cerr, stdout);
                rc = admin_check_config(cfg, config_path, stdout,
                                        bad ? cerr->count + cerr->dropped : 0);
        } else if (config_load(config_path, must_exist, cfg, cerr) < 0) {
                config_error_print(cerr, stderr);
                rc =
                    strcmp(cmd, "run") == 0 || strcmp(cmd, "reload") == 0 ? EXIT_CONFIG : EXIT_FAIL;
        } else if (strcmp(cmd, "reload") == 0) {
                /* systemd's ExecReload waits for the job up to TimeoutSec=
                 * (90 s by default): give up before it does. */
                rc = (int)reload_command(cfg, 60, stderr);
        } else if (strcmp(cmd, "status") == 0) {
                rc = admin_status(cfg, &sopts, stdout);
        } else if (strcmp(cmd, "pmta-config") == 0) {
                admin_pmta_config(cfg, stdout);
                rc = EXIT_OK;
        } else if (strcmp(cmd, "import-sincedb") == 0) {
                rc = cmd_import_sincedb(sub_argc, sub_argv, cfg, stdout, stderr);
        } else {
                struct logger lg;
                log_init(&lg, stderr, cfg->log_level);
                if (strcmp(cmd, "run") == 0)
                        rc = cmd_run(sub_argc, cfg, config_path, &lg);
                else if (strcmp(cmd, "dead-letter") == 0)
                        rc = cmd_dead_letter(sub_argv[1], cfg, &lg);
                else if (strcmp(cmd, "report") == 0)
                        rc = cmd_report(sub_argc, sub_argv, cfg, &lg, argc, argv);
                else
                        rc = cmd_replay(sub_argc, sub_argv, cfg, &lg);
        }
        config_free(cfg);
        free(cfg);
        free(cerr);
        return rc;
}
