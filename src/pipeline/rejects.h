/* One way to tell the operator about a record the parser refused. */
#ifndef PMTATAIL_REJECTS_H
#define PMTATAIL_REJECTS_H

#include "log.h"
#include "pmta_csv.h"

#include <stdint.h>

/* Records of one file reported one by one; past this, once more, then
 * only counted (a damaged file must not flood the journal). */
#define REJECTS_SHOWN 100

/* Log rej as one warning naming the file, line, offset, reason and the
 * start of the record; *shown counts the rejects of this file so far. */
void log_reject(const struct logger *lg, const char *path, const struct pmta_reject *rej,
                uint64_t *shown);

#endif
