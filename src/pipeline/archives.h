/* The archived accounting files `replay` and `report` read: the command
 * line's paths (files, directories, globs) expanded, put in reading order
 * (tailer/archive.h: PowerMTA's and logrotate's names, date and sequence
 * first), each read once, and what was left out said once.
 *
 * A directory gives its archives and its NAME.csv[.gz] files; every other
 * entry is left out and listed: names that are not archives, entries that
 * are not regular files (a FIFO would block a reader, a device never ends),
 * symbolic link loops, links that lead nowhere. A path named on the command
 * line (or matched by a glob) is the operator's choice whatever its name,
 * but only a regular file is read: anything else is refused with its name.
 * A file named twice (a directory and a glob) is read once; so is one
 * archive present twice by content (`x.csv` and `x.csv.gz`, a gzip -k, a
 * nightly gzip still running), said once. */
#ifndef PMTATAIL_ARCHIVES_H
#define PMTATAIL_ARCHIVES_H

#include "archive.h"
#include "log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The most files one run reads. */
#define ARCHIVES_MAX 1000000
/* Entries left out that are named in the summary; the rest are counted. */
#define ARCHIVES_SKIP_SHOWN 20

struct archive_in {
        char *path;
        uint64_t dev, ino, size;
        bool has_id; /* false when the file could not be opened (said when read) */
        struct archive_id id;
};

struct archives {
        struct archive_in *v;
        size_t n;
        size_t nskipped;
        char *skipped[ARCHIVES_SKIP_SHOWN]; /* "path (why)" of the first ones */
        size_t same_content;                /* of nskipped: another file's content */
        bool had_errors;                    /* a named path refused or unreadable (logged) */
};

/* Expand, order, and take each file's content identity. Returns 0, or -1
 * when memory ran out (logged). Paths that cannot be read are logged and
 * set had_errors; the others are still given. */
int archives_expand(const char *const *args, size_t nargs, struct archives *out,
                    const struct logger *log);

/* The entries left out, once: "skipped N entries: a (why), ..." on one
 * line; nothing when none were. */
void archives_print_skipped(const struct archives *a, FILE *out);

void archives_free(struct archives *a);

#endif
