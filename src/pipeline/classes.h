/* A record's bounce class for its event, and the [classify] forward rule. */
#ifndef PMTATAIL_CLASSES_H
#define PMTATAIL_CLASSES_H

#include "classify.h"
#include "config.h"
#include "pmta_csv.h"

#include <stdbool.h>
#include <stdint.h>

/* Where the fields classification reads are, per header. */
struct bounce_classes {
        const struct classifier *c;
        uint64_t generation;
        long diag, status, cat; /* column indexes, -1 when absent */
};

void bounce_classes_init(struct bounce_classes *bc, const struct classifier *c);

/* "hard", "soft", or NULL (not a b/rb record, or undecided). */
const char *bounce_class_of(struct bounce_classes *bc, const struct pmta_record *rec);

/* Does [classify] forward let this record through? Complaints and other
 * types always go; bounces by their class. */
bool bounce_forwarded(enum config_forward fw, const struct pmta_record *rec, const char *cls);

#endif
