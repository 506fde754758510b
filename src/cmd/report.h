/* `pmtatail report`: what a set of accounting files (plain or .gz, files,
 * directories, globs, as replay takes them) holds, for an operator deciding
 * what to do about it: the time range, records per type, bounces per
 * bounceCat with the hard/soft split the daemon would send, the domains with
 * the most hard bounces, and the diagnostic texts nothing classified (the
 * patterns worth adding). Nothing is delivered and no state is touched.
 *
 * What is counted: the time range and the b/rb/f counts over the records
 * read (the selected types); the rows per type over every row seen, selected
 * or not, rejected ones included (the parser's count). A bounce's domain is
 * what follows the last '@' of rcpt, lowercased; a rcpt without one (or with
 * nothing after it) counts as "(none)", as does an empty bounceCat or
 * dsnDiag.
 *
 * --json adds the time series and --html draws them (report_series.h,
 * report_html.h).
 *
 * Memory stays bounded whatever the input: the domain and text tables stop
 * taking new keys at a fixed count and count the rest as "(other)" (at most
 * about 70 MB when both are full of the longest keys; with the series, a
 * table of every bounce's domain and the series add at most about 40 MB). */
#ifndef PMTATAIL_REPORT_H
#define PMTATAIL_REPORT_H

#include "config.h"
#include "log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Distinct keys each table holds before counting the rest as "(other)". */
#define REPORT_MAX_DOMAINS    100000
#define REPORT_MAX_TEXTS      100000
#define REPORT_MAX_CATEGORIES 1000
/* Entries shown in each top list. */
#define REPORT_TOP 20
/* Bytes of a normalised dsnDiag that identify it, and of the original kept
 * as its example: texts that agree this far are one problem. */
#define REPORT_TEXT_KEY_MAX     256
#define REPORT_TEXT_EXAMPLE_MAX 200
/* Bytes of a domain kept (a DNS name has at most 253). */
#define REPORT_DOMAIN_MAX 255

/* Normalise a dsnDiag for counting: ASCII lowercased, whitespace runs made
 * one space and trimmed, e-mail addresses (with their angle brackets, if
 * any) replaced by "<addr>", digit runs by "#". Writes at most `cap` bytes
 * (never cutting a UTF-8 sequence in two) and returns the length. */
size_t report_normalise_text(const char *s, size_t n, char *out, size_t cap);

struct report_opts {
        bool json;           /* a JSON object (with the series) instead of text */
        const char *html;    /* write the page there instead ("-": out), or NULL */
        const char *command; /* the command line, shown on the page */
};

/* Read `paths` (expanded as replay does) and print the report to `out`, as
 * a table or a JSON object, or write it as an HTML page; warnings and the
 * timing go to the logger's stream. The record types are those of cfg's sources, else b, rb, f; the
 * classification uses cfg's [classify] patterns. Returns the exit status:
 * 0, or 1 when a path or file could not be read, records were rejected (the
 * report is printed in both cases) or the patterns could not be loaded. */
int report_command(const struct config *cfg, const struct report_opts *o, const char *const *paths,
                   size_t npaths, FILE *out, const struct logger *log);

#endif
