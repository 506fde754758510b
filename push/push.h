/* push/: delivering batches of events and saying when they are safe.
 *
 * The caller hands over batches of JSON events (each event followed by a
 * newline) with a token of its own; the output calls back with the token
 * once the batch is acknowledged (fsync'd to a file, or accepted by the
 * backend), in the order the batches were submitted. A batch may hold no
 * event at all: it is then a marker acknowledged in its turn, which lets the
 * caller advance its offsets over records it filtered out.
 *
 * The output never sees a PowerMTA file or an offset: the token is opaque. */
#ifndef PMTATAIL_PUSH_H
#define PMTATAIL_PUSH_H

#include "log.h"

#include <stddef.h>

typedef void (*push_ack_fn)(void *ctx, void *token);

struct push;

/* An output that appends the events (NDJSON) to `path` ("-": standard
 * output) and acknowledges a batch once it is written and fsync'd. Returns
 * 0, or -1 with a reason in err. Free with push_close. */
int push_open_file(struct push **out, const char *path, push_ack_fn on_ack, void *ctx,
                   const struct logger *log, char *err, size_t errlen);

/* Queue a batch: `nevents` events in `lines` (len bytes, each event ending
 * with '\n'). The output copies what it needs. Returns 0 when taken (on_ack
 * will come, maybe before this returns), or -1 when it cannot be taken now
 * (an I/O error, logged): nothing of it was delivered, submit it again
 * later. */
int push_submit(struct push *p, const char *lines, size_t len, size_t nevents, void *token);

/* Batches taken and not yet acknowledged. */
size_t push_inflight(const struct push *p);

void push_close(struct push *p);

#endif
