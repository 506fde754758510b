/* File identity: is the file in front of us the one we saved an offset for?
 *
 * An identity is the device and inode number plus a fingerprint: the
 * XXH3-64 hash of the file's first fp_len bytes, fp_len = min(size,
 * IDENTITY_FP_MAX) when taken. Neither half is enough alone:
 *   - inode alone is fooled by inode reuse: a file is deleted, a new one gets
 *     its inode number, and the old offset is applied to the wrong file
 *     (elastic/beats#1341, elastic/logstash#4566);
 *   - inode alone loses a file that `move-to` copied to another filesystem
 *     (same content, new inode);
 *   - content alone cannot tell apart files that start with the same bytes,
 *     and every PowerMTA file starts with the same header line. A
 *     fingerprint proves something only when it reaches past that line.
 *
 * identity_compare(saved, candidate) decides, in this order:
 *   1. Same dev and ino:
 *      - the candidate holds fewer than saved.fp_len bytes  -> TRUNCATED
 *        (truncated, or a shorter new file on a reused inode: either way the
 *        saved offset does not apply; read from 0 and say so);
 *      - its first saved.fp_len bytes hash to saved.fp      -> SAME;
 *      - otherwise                                          -> INODE_REUSED
 *        (another file got the inode: the saved offset must not be applied).
 *   2. Different dev or ino:
 *      - the candidate holds at least saved.fp_len bytes, its first
 *        saved.fp_len bytes hash to saved.fp, and the fingerprint is strong
 *                                                           -> COPIED
 *        (the same file moved across filesystems: keep the offset);
 *      - otherwise                                          -> DIFFERENT.
 *   "Strong" means the fingerprinted bytes go past the first line: they hold
 *   a '\n' at some offset p and saved.fp_len > p + 1. A fingerprint of the
 *   header line alone (or of part of it) matches every file of the same
 *   configuration, so it never proves a copy. The position of that '\n' is
 *   found in the candidate's bytes, which equal the saved ones when the hash
 *   matches.
 *
 * Limits, for the caller to cover:
 *   - SAME says nothing about bytes past fp_len: a file truncated and
 *     rewritten with the same first bytes is SAME. Compare the size with the
 *     saved offset as well.
 *   - An identity taken of an empty file (fp_len 0) matches any content:
 *     SAME for any file on that inode. Its offset is 0, so nothing is skipped.
 *   - A young file's identity is weak; identity_extend strengthens it as the
 *     file grows. Save the extended identity with the offset.
 *   - A header line longer than IDENTITY_FP_MAX leaves every fingerprint
 *     weak: copies are then reported DIFFERENT, never wrongly COPIED.
 *
 * No global state; functions return -1 with errno on I/O errors. */
#ifndef PMTATAIL_IDENTITY_H
#define PMTATAIL_IDENTITY_H

#include <stdint.h>

/* Bytes fingerprinted at most: long enough to reach past the PowerMTA
 * header line into the first records. */
#define IDENTITY_FP_MAX 1024

struct file_id {
        uint64_t dev, ino;
        uint64_t fp;     /* XXH3_64bits of the first fp_len bytes */
        uint32_t fp_len; /* <= IDENTITY_FP_MAX */
};

enum identity_match {
        IDENTITY_ERROR = -1, /* fstat or pread failed; errno says why */
        IDENTITY_DIFFERENT = 0,
        IDENTITY_SAME,
        IDENTITY_TRUNCATED,
        IDENTITY_INODE_REUSED,
        IDENTITY_COPIED,
};

/* The identity of the open file fd (fstat, then pread of its first bytes;
 * the file offset is not moved). Returns 0, or -1 with errno. */
int identity_of_fd(int fd, struct file_id *out);

/* identity_of_fd, and where the first line of the fingerprinted bytes ends:
 * *line_end is the offset of the first '\n' among them, or -1 when they hold
 * none. With it, identity_strong_at says whether a fingerprint of the first
 * `len` of these bytes is strong (reaches past the first line), without
 * reading the file again. */
int identity_of_fd_line(int fd, struct file_id *out, long *line_end);
int identity_strong_at(long line_end, uint32_t len);

/* The same for a path (opened read-only, then closed). */
int identity_of_path(const char *path, struct file_id *out);

/* Decide whether the open file fd is the file `saved` was taken of (rules
 * above). Does not move fd's file offset. */
enum identity_match identity_compare(const struct file_id *saved, int fd);

/* A stable name for logs: "same", "truncated", ... */
const char *identity_match_name(enum identity_match m);

/* While id->fp_len < IDENTITY_FP_MAX, re-take the fingerprint of fd over
 * the bytes it has now (up to IDENTITY_FP_MAX). Only when fd is still the
 * file of id: same dev and ino, and its first id->fp_len bytes still hash
 * to id->fp. Returns 1 when id changed; 0 when it did not (already full
 * length, no new bytes, or fd no longer matches: identity_compare says
 * how); -1 with errno on I/O errors. */
int identity_extend(struct file_id *id, int fd);

#endif
