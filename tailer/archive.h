/* What an archived accounting file is called, in which order archives are
 * read, and what makes two of them the same archive.
 *
 * Names (pure functions of a stem and a file name, no I/O): a source whose
 * live file is `bounces.csv` has the stem `bounces`, and its rotated files
 * are
 *   - PowerMTA's move-to names: `bounces-YYYY-MM-DD-NNNN.csv`, NNNN a
 *     sequence within the day (a max-size rotation makes the next one; it is
 *     not HHMM: 0059 is followed by 0060 as well as by 0100);
 *   - logrotate's numbered copies: `bounces.csv.N` (larger N is older);
 *   - logrotate's dateext copies: `bounces.csv-YYYYMMDD` (also
 *     `-YYYY-MM-DD`, and digits after the date such as `-YYYYMMDDHH` or
 *     `-YYYYMMDD-SECONDS`, read as a sequence within the day);
 * each maybe compressed afterwards (`.gz`). Nothing else is: a sibling live
 * file `bounces-bd.csv` beside `bounces.csv` belongs to another source, and
 * `bounces.csv.tmp` to some tool. Without a stem (replay and report given a
 * directory), the same forms are recognised for any stem, and any other
 * `NAME.csv[.gz]` is a live file or an export: read, ordered by its mtime.
 *
 * Order: oldest first by (day, sequence) from the name; logrotate's numbered
 * files carry no date and come first, larger N first; files whose name says
 * nothing (live files, exports) by their modification time's day, after the
 * dated archives of that day. The mtime itself and then the name only break
 * ties, so the order is total and the same on every run.
 *
 * Content identity: the XXH3-64 of the first IDENTITY_FP_MAX bytes of the
 * decompressed content (the same hash tailer/identity.h takes of a plain
 * file), and how many bytes it covers. `bounces.csv` and `bounces.csv.gz`
 * holding the same records have the same identity; so has an archive before
 * and after a nightly gzip. */
#ifndef PMTATAIL_ARCHIVE_H
#define PMTATAIL_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum archive_kind {
        ARCHIVE_NONE = 0, /* not an archive of that stem */
        ARCHIVE_PMTA,     /* stem-YYYY-MM-DD-NNNN.csv */
        ARCHIVE_NUMBERED, /* stem.csv.N */
        ARCHIVE_DATED,    /* stem.csv-YYYYMMDD */
        ARCHIVE_LIVE,     /* stem.csv itself; without a stem, any NAME.csv */
};

/* No date in the name. */
#define ARCHIVE_NO_DAY INT64_MIN

struct archive_name {
        enum archive_kind kind;
        bool gz;         /* ends in .gz (compressed after rotation) */
        size_t stem_len; /* the stem is the first stem_len bytes of the name */
        int64_t day;     /* the name's date as days since 1970-01-01, or ARCHIVE_NO_DAY */
        int64_t seq;     /* PowerMTA's NNNN, dateext's digits after the date, logrotate's N */
};

/* Classify `name` (a file name, no directory) as a file of `stem`, or of any
 * stem when `stem` is NULL. Returns out->kind. */
enum archive_kind archive_parse(const char *stem, const char *name, struct archive_name *out);

/* Whether `name` is a rotated file of `stem` (PMTA, NUMBERED or DATED,
 * compressed or not). */
bool archive_is_rotated(const char *stem, const char *name);

/* A total order for reading: what archive_cmp compares. */
struct archive_key {
        int64_t day, seq;
        int64_t mtime_ns;
        const char *name; /* the last tie breaker; not owned */
};

/* The key of a parsed name. `mtime_day` is the file's modification day in
 * local time (days since 1970-01-01), used when the name holds no date. */
struct archive_key archive_key_of(const struct archive_name *n, int64_t mtime_ns, int64_t mtime_day,
                                  const char *name);

/* <0, 0, >0 as a is older, the same, newer than b. */
int archive_cmp(const struct archive_key *a, const struct archive_key *b);

/* Days since 1970-01-01 of a calendar date, or ARCHIVE_NO_DAY when it is
 * not a date (month 13, 30 February). */
int64_t archive_days(int year, int month, int day);

/* The content identity of an archive: the hash of its first fp_len
 * decompressed bytes. fp_len is IDENTITY_FP_MAX (or the whole content when
 * shorter), the fingerprint tailer/identity.h takes, unless those bytes do
 * not reach ARCHIVE_ID_PAST bytes past the first line: then it covers that
 * much, up to ARCHIVE_ID_MAX. Every file of one configuration starts with
 * the same header line, and PowerMTA's can be longer than IDENTITY_FP_MAX:
 * a fingerprint of the header alone would make all of them one archive. */
#define ARCHIVE_ID_PAST 512
#define ARCHIVE_ID_MAX  65536
struct archive_id {
        uint64_t fp;
        uint32_t fp_len;
};

/* How many bytes the identity covers, given the first n bytes of the
 * content at `head` and whether the content ends there (at_end). When the
 * answer is above n (and !at_end), read up to that many and ask again. */
size_t archive_id_len(const void *head, size_t n, bool at_end);

/* The identity of content starting with the n bytes at head, n as
 * archive_id_len said (more are ignored). */
struct archive_id archive_id_of(const void *head, size_t n);

#endif
