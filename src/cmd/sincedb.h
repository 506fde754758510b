/* `pmtatail import-sincedb`: take over from Logstash's file input.
 *
 * Logstash's file input keeps, per file it read, a sincedb line:
 *     INODE MAJOR MINOR OFFSET                       (older file inputs)
 *     INODE MAJOR MINOR OFFSET LAST_ACTIVE           (newer ones)
 *     INODE MAJOR MINOR OFFSET LAST_ACTIVE PATH      (newer ones, path known)
 * MAJOR and MINOR are the file's st_dev as Logstash splits it (bits 24..31
 * and the low 24 bits: "0 65024" for Linux's 254:0; glibc's major and
 * minor are accepted too), LAST_ACTIVE
 * epoch seconds (a float) when Logstash last read or checked the file,
 * OFFSET the bytes it had read.
 *
 * The import finds each named file wherever it is now (the live path of a
 * configured source, or a rotated name in its archive_dir or its own
 * directory) by device and inode, and seeds STATE_DIR/offsets.json with
 * it, so the first start of the daemon neither sends again what Logstash
 * sent nor skips what it had not. An offset inside a record (Logstash counts
 * lines, a record may span several) resumes at the next record boundary,
 * found with the csv/ parser. A file born after Logstash last saw the inode
 * is another file on a reused inode and is left alone. Nothing is written
 * when the sincedb holds a line it cannot read, and the import is refused
 * while the daemon holds the state directory. */
#ifndef PMTATAIL_SINCEDB_H
#define PMTATAIL_SINCEDB_H

#include "config.h"

#include <stdio.h>

/* argv[0] is "import-sincedb"; [--dry-run] FILE follow. Prints one line per
 * sincedb entry on out (the file it matched and the offset seeded, or why
 * not), problems on err. Returns the exit status: 0, 1 (nothing imported:
 * unreadable sincedb, state locked or unreadable, save failed) or 2 (usage). */
int cmd_import_sincedb(int argc, char **argv, const struct config *cfg, FILE *out, FILE *err);

#endif
