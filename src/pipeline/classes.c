#include "classes.h"

#include <string.h>

void bounce_classes_init(struct bounce_classes *bc, const struct classifier *c)
{
        memset(bc, 0, sizeof *bc);
        bc->c = c;
}

static bool is_bounce(const struct pmta_record *rec)
{
        const struct pmta_field *t = &rec->cells[0];
        return (t->len == 1 && t->ptr[0] == 'b') || (t->len == 2 && memcmp(t->ptr, "rb", 2) == 0);
}

const char *bounce_class_of(struct bounce_classes *bc, const struct pmta_record *rec)
{
        if (!bc->c || rec->ncells == 0 || !is_bounce(rec))
                return NULL;
        const struct pmta_header *h = rec->header;
        if (h->generation != bc->generation) {
                bc->generation = h->generation;
                bc->diag = pmta_header_column(h, "dsnDiag");
                bc->status = pmta_header_column(h, "dsnStatus");
                bc->cat = pmta_header_column(h, "bounceCat");
        }
        const struct pmta_field none = {"", 0};
        const struct pmta_field *d = bc->diag >= 0 ? &rec->cells[bc->diag] : &none;
        const struct pmta_field *s = bc->status >= 0 ? &rec->cells[bc->status] : &none;
        const struct pmta_field *c = bc->cat >= 0 ? &rec->cells[bc->cat] : &none;
        unsigned line;
        return bounce_class_name(
            classify_bounce(bc->c, d->ptr, d->len, s->ptr, s->len, c->ptr, c->len, &line));
}

bool bounce_forwarded(enum config_forward fw, const struct pmta_record *rec, const char *cls)
{
        if (fw == CONFIG_FORWARD_ALL || rec->ncells == 0 || !is_bounce(rec))
                return true;
        if (fw == CONFIG_FORWARD_HARD)
                return cls && strcmp(cls, "hard") == 0;
        return cls != NULL;
}
