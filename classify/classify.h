/* Hard/soft classification of PowerMTA bounces (`b` and `rb` records).
 *
 * Octeth decides a bounce by matching its DSN text against an operator's
 * pattern file, so that comes first; PowerMTA's own bounceCat is the fallback
 * for bounces no pattern knows (see the design's powermta-accounting.md).
 *
 * Pattern file syntax (Octeth's): one pattern per line, `text==>Hard` or
 * `text==>Soft` (class word case-insensitive, text and class trimmed of
 * surrounding whitespace), `#` at the start of a line makes it a comment,
 * blank lines are ignored, LF or CRLF line ends, an optional UTF-8 BOM.
 * A pattern matches when its text occurs in dsnDiag or in dsnStatus, ASCII
 * case ignored (bytes >= 0x80 compared as they are). Of all matching patterns
 * the longest decides; between equally long ones, the earlier line.
 *
 * A loaded classifier is never modified by classify_bounce, so one may be
 * shared by threads without locking. */
#ifndef PMTATAIL_CLASSIFY_H
#define PMTATAIL_CLASSIFY_H

#include <stddef.h>

/* Caps on the pattern file: a file past them is refused, not truncated. */
#define CLASSIFY_MAX_LINE     4096               /* bytes of one line, terminator excluded */
#define CLASSIFY_MAX_PATTERNS 100000             /* patterns in one file */
#define CLASSIFY_MAX_TEXT     (4u * 1024 * 1024) /* bytes of pattern text, all patterns */

enum bounce_class { CLASS_NONE = 0, CLASS_HARD, CLASS_SOFT };

struct classifier;

/* Load patterns from path (NULL: no patterns, only bounceCat). Returns 0, or
 * -1 with a message (file:line: what) in err; *out is then NULL. */
int classifier_load(struct classifier **out, const char *path, char *err, size_t errlen);

/* Same from a memory buffer (for tests); name is used in messages. */
int classifier_load_mem(struct classifier **out, const char *name, const char *text, size_t len,
                        char *err, size_t errlen);

void classifier_free(struct classifier *c);

size_t classifier_npatterns(const struct classifier *c);

/* Bytes held by the classifier (the automaton's tables and the pattern list),
 * for the memory budget and the benchmark. */
size_t classifier_memory(const struct classifier *c);

/* Classify one bounce from its fields (any may be NULL/0; c may be NULL, which
 * acts as no patterns). The caller decides that the record is a `b` or `rb`.
 * Returns the class and, when a pattern decided, its 1-based line in *line
 * (0 when bounceCat decided or nothing did); line may be NULL. */
enum bounce_class classify_bounce(const struct classifier *c, const char *diag, size_t diag_len,
                                  const char *status, size_t status_len, const char *cat,
                                  size_t cat_len, unsigned *line);

/* "hard", "soft", or NULL for CLASS_NONE (the event then has no bounceClass). */
const char *bounce_class_name(enum bounce_class k);

#endif
