#include "rejects.h"

#include <stdio.h>
#include <string.h>

void log_reject(const struct logger *lg, const char *path, const struct pmta_reject *rej,
                uint64_t *shown)
{
        char q[512];
        if (*shown < REJECTS_SHOWN) {
                char raw[160], cells[64] = "";
                size_t start = rej->raw_len < 60 ? rej->raw_len : 60;
                if (rej->reason == PMTA_REJECT_CELL_COUNT)
                        snprintf(cells, sizeof cells, " cells=%zu expected=%zu", rej->ncells,
                                 rej->expected);
                log_warn(lg,
                         "rejected record file=%s line=%llu offset=%llu reason=\"%s\"%s start=%s",
                         log_quote(q, sizeof q, path, strlen(path)), (unsigned long long)rej->line,
                         (unsigned long long)rej->start, pmta_reject_reason_str(rej->reason), cells,
                         log_quote(raw, sizeof raw, rej->raw, start));
        } else if (*shown == REJECTS_SHOWN) {
                log_warn(lg, "more rejected records not shown file=%s",
                         log_quote(q, sizeof q, path, strlen(path)));
        }
        (*shown)++;
}
