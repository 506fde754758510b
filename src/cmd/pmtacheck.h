/* The PowerMTA side of check-config: PowerMTA's own configuration
 * (/etc/pmta/config by default, [pmta] config), its <acct-file> blocks
 * across `include` lines, compared with pmtatail's sources.
 *
 * PowerMTA's configuration is input this program does not control: every
 * file, line, block and include depth has a cap, a line over its cap is
 * reported with its file and line and skipped, and nothing in it stops
 * check-config. A struct pmta_conf owns every string it holds; free it with
 * pmtacheck_free. */
#ifndef PMTATAIL_PMTACHECK_H
#define PMTATAIL_PMTACHECK_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define PMTACHECK_DEFAULT_CONFIG CONFIG_DEFAULT_PMTA_CONFIG
#define PMTACHECK_MAX_FILES      64 /* files read, the main one and its includes */
#define PMTACHECK_MAX_DEPTH      8  /* include nesting */
#define PMTACHECK_MAX_BLOCKS     64 /* <acct-file> blocks kept */
#define PMTACHECK_MAX_TYPES      8  /* record types per block */
#define PMTACHECK_MAX_NOTES      32 /* notes kept (unreadable includes, long lines) */
#define PMTACHECK_FILE_MAX       (4 * 1024 * 1024)
#define PMTACHECK_LINE_MAX       (64 * 1024)

/* Where a directive was: the file (one of pmta_conf.files) and the line. */
struct pmta_where {
        const char *file;
        int line; /* 0: the directive is absent */
};

struct pmta_fields {
        char type[8]; /* short code ("b", "rb", "f") or the name as written */
        char *list;   /* the fields as written, e.g. "timeLogged,orig,rcpt" */
        struct pmta_where at;
};

#define PMTACHECK_MAX_MAPS 8 /* map-header-to-field lines kept per scope */

/* The directives that change what Oempro receives from a file: each value
 * as written, with where it was. Inside an <acct-file>: that file's; at the
 * top level of the configuration: every file's. */
struct pmta_effects {
        char *privacy_policy;
        struct pmta_where privacy_policy_at;
        char *queue_filter;
        struct pmta_where queue_filter_at;
        char *map[PMTACHECK_MAX_MAPS]; /* map-header-to-field values */
        struct pmta_where map_at[PMTACHECK_MAX_MAPS];
        size_t n_map;
};

struct pmta_acct {
        char *path; /* as written after <acct-file; "|prog" for a pipe */
        struct pmta_where at;
        char records[PMTACHECK_MAX_TYPES][8]; /* short codes, or names unknown to us */
        size_t n_records;
        struct pmta_where records_at;
        struct pmta_fields fields[PMTACHECK_MAX_TYPES];
        size_t n_fields;
        char *move_to;
        struct pmta_where move_to_at;
        char *move_interval;
        struct pmta_where move_interval_at;
        char *delete_after;
        struct pmta_where delete_after_at;
        bool world_readable;
        struct pmta_where world_readable_at;
        struct pmta_effects effects;
};

struct pmta_conf {
        char *files[PMTACHECK_MAX_FILES]; /* every file read, the main one first */
        size_t n_files;
        struct pmta_acct acct[PMTACHECK_MAX_BLOCKS];
        size_t n_acct;
        struct pmta_effects global; /* outside every block */
        /* What could not be read or was skipped: full "FILE:LINE: what". */
        char *notes[PMTACHECK_MAX_NOTES];
        size_t n_notes, dropped_notes;
};

/* Read PowerMTA's configuration at path and the files it includes.
 * Returns 0, or -1 when path itself cannot be read (errno set; pc is then
 * empty but must still be freed). Included files that cannot be read, and
 * lines over the caps, become notes. */
int pmtacheck_load(const char *path, struct pmta_conf *pc);

void pmtacheck_free(struct pmta_conf *pc);

/* Compare every source of cfg (loaded from cfg_path) with pc: path and
 * archive_dir against <acct-file> and move-to, the forwarded records
 * against `records`, Octeth's fields against `record-fields` (PowerMTA's
 * syntax: `*` all default fields, `!field` one left out, header_NAME by
 * the header's name in any case, `header_*` every header), the directives
 * that change what Oempro receives (privacy-policy, queue-filter,
 * map-header-to-field over rcpt or orig), the rotation PowerMTA will not do
 * as written (move-interval without move-to, delete-after beside move-to),
 * and whether `user` (NULL: no readability check) can read the files. One
 * line per mismatch on out, prefixed "  problem: ", naming both files and
 * lines;
 * "  ok: " lines for what matches. Returns the number of mismatches. */
size_t pmtacheck_compare(const struct pmta_conf *pc, const struct config *cfg, const char *cfg_path,
                         const char *user, FILE *out);

/* check-config's part: load cfg->pmta_config (or the default), print its
 * notes (an unreadable PowerMTA configuration is a note, not a problem) and
 * the comparison for the daemon's user (pmtatail when run as root, else
 * this user). Returns the number of mismatches. */
size_t pmtacheck_report(const struct config *cfg, const char *cfg_path, FILE *out);

/* The fields Octeth's guide puts in record-fields for type ("b", "rb",
 * "f"), comma-separated, or NULL for other types. */
const char *pmtacheck_octeth_fields(const char *type);

#endif
