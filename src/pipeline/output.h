/* The configured [output], opened as a push/ output. */
#ifndef PMTATAIL_OUTPUT_H
#define PMTATAIL_OUTPUT_H

#include "config.h"
#include "push.h"

/* Open the output the configuration names (url or file) with the
 * acknowledgement callback given. Refused events of the url output go to
 * STATE_DIR/dead-letter.ndjson. With `own_thread`, the url output runs on a
 * thread of its own (push_thread: the second core sends while the first
 * reads; `log` is then written from both). Returns 0, or -1 with a reason
 * in err. */
int output_open(const struct config *cfg, push_ack_fn on_ack, void *ctx, const struct logger *log,
                bool own_thread, struct push **out, char *err, size_t errlen);

#endif
