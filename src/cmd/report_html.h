/* `pmtatail report --html FILE`: the report as one self-contained HTML page
 * (inline CSS and SVG, no script, nothing fetched, so it can be mailed or
 * attached to a ticket and opens without a network): bounces over time
 * stacked by bounceCat and by class, a small chart per top domain on the
 * same time axis, and the text report's tables. Everything taken from the
 * files is escaped: a dsnDiag may hold markup. */
#ifndef PMTATAIL_REPORT_HTML_H
#define PMTATAIL_REPORT_HTML_H

#include "pmta_csv.h"
#include "report_series.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What the page shows, as report.c counted and ranked it. */
struct report_page {
        const char *command;      /* the command line that made it */
        const char *const *files; /* the files read, in order */
        size_t nfiles;
        uint64_t files_read, files_failed;
        bool have_time;
        int64_t t_min, t_max;
        uint64_t time_bad;
        const struct pmta_stats *parsed; /* types sorted */
        uint64_t n_b, n_rb, n_f, n_other;
        uint64_t bounces[SERIES_CLASSES];
        const struct report_key *cats; /* every bounceCat held, ranked */
        size_t ncats;
        uint64_t cats_other[SERIES_CLASSES];
        const struct report_key *hard; /* top domains by hard bounces */
        size_t nhard, hard_distinct;
        uint64_t hard_other;
        const struct report_key *texts; /* top unclassified texts, with examples */
        size_t ntexts, texts_distinct;
        uint64_t texts_other;
        const struct report_key *doms; /* top domains by bounces */
        size_t ndoms, doms_distinct;
        uint64_t doms_other;
        int top; /* how many the text report's top lists hold */
        const struct report_series *series;
};

/* Write the page to out. Returns 0, or -1 (errno) when it could not be
 * written. */
int report_html_write(const struct report_page *p, FILE *out);

/* Write the page to path through a temporary file renamed over it, so a
 * failed run leaves no half page ("-": standard output). Returns 0, or -1
 * with errno. */
int report_html_write_file(const struct report_page *p, const char *path);

/* Bytes of a suggested pattern, its NUL included. */
#define REPORT_HTML_PATTERN_MAX 257

/* The longest part of a normalised text with no number or address in it
 * that occurs in the example as it is (ignoring case): a pattern that
 * matches the example. Writes it NUL-terminated into out (at most cap - 1
 * bytes) and returns its length, 0 when no part is long enough to be
 * specific. */
size_t report_html_pattern(const char *norm, size_t n, const char *ex, size_t exn, char *out,
                           size_t cap);

#endif
