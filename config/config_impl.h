/* Private to config/: what the files of the configuration loader share.
 *
 * parse.c owns the reading of the file (lines, headings, continuation lines,
 * the inih callback) and the collecting of problems with their line;
 * keys.c owns the key table, cfg_apply() and the value parsers; config.c
 * owns loading as a whole (defaults, whole-file checks) and config_free;
 * print.c prints the resolved configuration and the problems; query.c
 * answers the small questions asked of a loaded configuration, among them
 * the URL endpoint rules. One struct parse lives on config_load's stack for
 * one load and is handed to everything that reads or applies a line. */
#ifndef PMTATAIL_CONFIG_IMPL_H
#define PMTATAIL_CONFIG_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "buf.h"
#include "config.h"

#define SOURCE_NAME_MAX 64
#define CONT_VALUE_MAX  (64 * 1024)
#define SHOW_LEN        64
#define KIB             ((size_t)1024)
#define MIB             (KIB * 1024)

enum section_kind {
        SEC_NONE,   /* before the first heading */
        SEC_IGNORE, /* under a heading already reported as wrong: keys are skipped */
        SEC_SOURCE,
        SEC_OUTPUT,
        SEC_STATE,
        SEC_CLASSIFY,
        SEC_LOG,
        SEC_METRICS,
        SEC_PMTA,
        SEC_COUNT
};

enum key_id {
        K_SRC_PATH,
        K_SRC_ARCHIVE_DIR,
        K_SRC_RECORDS,
        K_SRC_START_AT,
        K_SRC_COLUMNS,
        K_SRC_RECORD_MAX,
        K_OUT_URL,
        K_OUT_FILE,
        K_OUT_FORMAT,
        K_OUT_HEADER,
        K_OUT_HEADER_FILE,
        K_OUT_BATCH_MAX_RECORDS,
        K_OUT_BATCH_MAX_BYTES,
        K_OUT_LINGER_MS,
        K_OUT_TIMEOUT_S,
        K_OUT_RETRY_MAX_S,
        K_OUT_GZIP,
        K_OUT_TLS_VERIFY,
        K_OUT_CA_FILE,
        K_OUT_INCLUDE_MESSAGE,
        K_OUT_CONCURRENCY,
        K_OUT_ADAPTIVE,
        K_OUT_HOST,
        K_OUT_MAX_RATE,
        K_OUT_MAX_REQUESTS_PER_MINUTE,
        K_STATE_DIR,
        K_CLASSIFY_PATTERNS,
        K_CLASSIFY_FORWARD,
        K_LOG_LEVEL,
        K_METRICS_TEXTFILE,
        K_METRICS_INTERVAL_S,
        K_PMTA_CONFIG,
        K_COUNT
};

enum key_flags {
        KF_REPEAT = 1u, /* may be given several times in a section */
        KF_CONT = 2u,   /* may go on over indented lines (long lists) */
};

struct key_def {
        enum section_kind sec;
        const char *name;
        unsigned flags;
};

/* The keys each section takes; indexed by enum key_id. Owned by keys.c. */
extern const struct key_def cfg_keys[K_COUNT];

/* Everything one config_load needs; lives on its stack. */
struct parse {
        const char *path;
        FILE *fp;
        struct config *cfg;
        struct config_error *err;
        unsigned problems; /* found so far, kept or not */

        /* What the reader learnt about the line inih is working on. inih
         * hands a line to the handler before it asks for the next one, so
         * these always describe the line of the current handler call. */
        int lineno;
        bool line_cont; /* inih will treat it as a continuation line */
        bool prev_key;  /* mirrors inih's "previous name" being set */

        enum section_kind sec;
        struct config_source *src; /* when sec is SEC_SOURCE */
        char sec_label[SOURCE_NAME_MAX + 16];
        int sec_line[SEC_COUNT]; /* first heading of each kind, 0 if none */
        int key_line[K_COUNT];   /* first line of each key in this section */

        /* The key of the latest key line and its value so far, for
         * continuation lines. */
        int last_key; /* enum key_id, or -1 when none or it was refused */
        struct buf cont;

        int url_line, file_line;
        bool concurrency_set, max_requests_set;
};

/* parse.c: reporting. A problem is counted in p->problems and kept, with
 * the file's name and the line (none when line is 0), in p->err while
 * there is room. */
__attribute__((format(printf, 3, 4))) void cfg_problem(struct parse *p, int line, const char *fmt,
                                                       ...);
/* A value quoted for a message into dst; never for header values. */
const char *cfg_show(char *dst, size_t size, const char *s);
/* strdup, reporting "out of memory" on the current line. */
char *cfg_dup_or_report(struct parse *p, const char *s);

/* parse.c: runs inih over p->fp, every key line and continuation line going
 * to cfg_apply. Returns ini_parse_stream's result. */
int cfg_read_file(struct parse *p);

/* keys.c: sets key id from value v, on p->lineno; reports what is wrong. */
void cfg_apply(struct parse *p, enum key_id id, const char *v);

#endif
