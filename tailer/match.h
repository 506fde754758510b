/* Matching files on disk with the files the tailer owes or has read.
 *
 * A candidate is a file found in a source's directories (the live path, the
 * archive directory): its name, stat and, taken only when a decision needs
 * it, its identity (tailer/identity.h). Listing a directory costs a stat per
 * file, never a descriptor held: a candidate is opened only to take its
 * fingerprint (open, pread, close), once, so an archive of any size is
 * scanned with one descriptor at a time.
 *
 * The rules that say "this candidate is that file" live here and only here,
 * for the start and for every later look:
 *   - same device and inode, the saved fingerprint still on it: SAME. But a
 *     finished file whose fingerprint is weak (the header line alone: a file
 *     that never held a record) is SAME only when the candidate's size is
 *     the saved offset: otherwise a new file got its inode after a delete
 *     and must be read, not skipped as done;
 *   - same device and inode, shorter than the fingerprinted bytes: TRUNCATED;
 *   - another inode, a strong fingerprint that matches, and a size that fits
 *     (equal to the offset for a finished file, at least the offset for one
 *     being read): COPIED, the same file moved to another file system or
 *     copied before a truncation;
 *   - same device and inode but the file cannot be read: BLOCKED (the file
 *     is taken as the one owed; its content is checked once it opens).
 * match_pass assigns candidates to saved files in two passes, SAME first
 * and COPIED among the candidates left, so a different file that only starts
 * like a tracked one never takes the tracked file's place.
 *
 * The caller owns the list and the candidates' strings; nothing is global. */
#ifndef PMTATAIL_MATCH_H
#define PMTATAIL_MATCH_H

#include "archive.h"
#include "identity.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct candidate {
        char *path; /* owned by the list */
        uint64_t dev, ino, size;
        struct timespec mtime;
        bool regular;  /* a regular file (others are listed only to be refused) */
        bool fp_taken; /* id.fp and line_end are valid */
        int fp_errno;  /* why the fingerprint could not be taken, 0 when it was */
        struct file_id id;
        long line_end; /* first '\n' in the fingerprinted bytes, -1 when none */
        bool used;     /* assigned to a saved file */
        bool live;     /* found at the source's live path */
        /* where it comes in reading order (archive.h); key.name points into
         * path */
        struct archive_key key;
};

struct cand_list {
        struct candidate *v;
        size_t n, alloc;
};

/* A saved file to match: its identity and where reading it stands. */
struct match_saved {
        struct file_id id;
        uint64_t offset;
        bool finished;
};

enum match_kind {
        MATCH_NONE = 0,
        MATCH_SAME,
        MATCH_TRUNCATED,
        MATCH_COPIED,
        MATCH_BLOCKED,
};

void cand_list_init(struct cand_list *l);
void cand_list_free(struct cand_list *l);

/* Add the file at `path` (stat only). Returns the candidate (valid until the
 * next add), NULL when there is no such file (errno ENOENT) or on an error
 * (errno). Files already in the list (same dev and ino) are not added twice:
 * the listed one is returned. */
struct candidate *cand_add(struct cand_list *l, const char *path);

/* Add every entry of `dir` whose name `accept` takes. Returns 0, or -1 with
 * errno when the directory cannot be listed (ENOENT included: the caller
 * decides whether a missing directory matters). */
int cand_scan(struct cand_list *l, const char *dir, bool (*accept)(const char *name, void *ctx),
              void *ctx);

/* Take c's fingerprint if not yet taken (open, read, close). Returns 0, or
 * -1 with errno (also kept in c->fp_errno). */
int cand_fingerprint(struct candidate *c);

/* How candidate c relates to the saved file s (rules above). May take c's
 * fingerprint, and open c once more when the saved fingerprint covers fewer
 * bytes than c's own. */
enum match_kind match_saved(const struct match_saved *s, struct candidate *c);

/* The two passes: for each saved[i] (n of them) the index of the candidate
 * it is, in found[i] (-1: none), and how, in how[i]. A candidate is used at
 * most once; candidates already used are not considered. `allow_truncated`
 * (per saved file, may be NULL) lets TRUNCATED count in the first pass for
 * that file only when no copy is found in the second. */
void match_pass(const struct match_saved *saved, size_t n, struct cand_list *l, long *found,
                enum match_kind *how, const bool *allow_truncated);

#endif
