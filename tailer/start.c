#include "tailer_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Archive files found at start that the state does not know are read when
 * they were written after the last save; this margin covers a file the
 * daemon had not yet recorded when it last saved. A margin too wide only
 * re-reads (duplicates), never loses. */
#define UNKNOWN_ARCHIVE_MARGIN_S 300

struct match_saved saved_of_entry(const struct state_entry *e)
{
        struct match_saved m = {
            .id = {e->dev, e->ino, e->fp, e->fp_len}, .offset = e->offset, .finished = e->finished};
        return m;
}

int source_start(struct tailer *t, struct tsource *s)
{
        char b[512];
        time_t now = time(NULL);
        struct cand_list cl;
        cand_list_init(&cl);
        /* The live file first, then the rotated files. */
        long live_idx = -1;
        struct candidate *lc = cand_add(&cl, s->path);
        if (lc && lc->regular) {
                live_idx = 0;
        } else if (lc) {
                lc->used = true; /* never a match: refused below */
                owed_fail(&s->live_owed, OWED_NOT_REGULAR, s->path, s->name, now, t->log);
        }
        int list_err = source_list_rotated(t, s, &cl);

        /* Entries of this source, matched in one pass for SAME, then for
         * COPIED among the files left. */
        size_t ne = 0;
        for (size_t i = 0; i < state_count(t->state); i++)
                ne += strcmp(state_at(t->state, i)->source, s->name) == 0;
        struct state_entry **ents = calloc(ne ? ne : 1, sizeof *ents);
        struct match_saved *saved = calloc(ne ? ne : 1, sizeof *saved);
        long *found = calloc(ne ? ne : 1, sizeof *found);
        enum match_kind *how = calloc(ne ? ne : 1, sizeof *how);
        bool *trunc_ok = calloc(ne ? ne : 1, sizeof *trunc_ok);
        struct tfile **archived = calloc(cl.n + ne + 1, sizeof *archived);
        if (!ents || !saved || !found || !how || !trunc_ok || !archived) {
                free(ents), free(saved), free(found), free(how), free(trunc_ok), free(archived);
                cand_list_free(&cl);
                return -1;
        }
        ne = 0;
        for (size_t i = 0; i < state_count(t->state); i++) {
                struct state_entry *e = state_at(t->state, i);
                if (strcmp(e->source, s->name) != 0)
                        continue;
                ents[ne] = e;
                saved[ne] = saved_of_entry(e);
                trunc_ok[ne] = !e->finished;
                ne++;
        }
        match_pass(saved, ne, &cl, found, how, trunc_ok);

        size_t na = 0;
        bool known = ne > 0;
        int64_t watermark = 0;
        for (size_t i = 0; i < ne; i++) {
                struct state_entry *e = ents[i];
                if (e->seen > watermark)
                        watermark = e->seen;
                if (e->finished)
                        continue; /* done; kept to recognise it, pruned by age */
                if (found[i] < 0) {
                        if (list_err) {
                                /* not seen because a directory could not be
                                 * listed: still owed, looked for when read */
                                struct file_id id = saved[i].id;
                                struct tfile *f = tfile_new(s, -1, &id, e->path, e->offset, e);
                                if (!f)
                                        continue;
                                f->verified = false;
                                f->rotated_at = now - TAILER_ROTATE_GRACE_S;
                                owed_fail(&f->owed, list_err, f->path, s->name, now, t->log);
                                archived[na++] = f;
                                continue;
                        }
                        log_warn(t->log,
                                 "tracked file gone, its unread records cannot be delivered "
                                 "file=%s source=%s offset=%llu",
                                 q(b, sizeof b, e->path), s->name, (unsigned long long)e->offset);
                        state_remove(t->state, e);
                        ents[i] = NULL;
                        t->dirty = true;
                        continue;
                }
                struct candidate *cd = &cl.v[found[i]];
                uint64_t start = e->offset;
                struct file_id id = cd->fp_taken ? cd->id : saved[i].id;
                if (how[i] == MATCH_TRUNCATED ||
                    (how[i] != MATCH_BLOCKED && cd->size < e->offset)) {
                        log_warn(t->log,
                                 "file shrank while stopped, reading it again from 0 "
                                 "file=%s offset=%llu size=%llu",
                                 q(b, sizeof b, cd->path), (unsigned long long)e->offset,
                                 (unsigned long long)cd->size);
                        start = 0;
                        e->offset = 0;
                        state_set_header(t->state, e, NULL, 0, NULL);
                        entry_from_id(e, &id);
                        t->dirty = true;
                }
                if (how[i] == MATCH_COPIED)
                        state_set_id(t->state, e, cd->dev, cd->ino, NULL);
                if (strcmp(e->path, cd->path) != 0)
                        state_set_path(t->state, e, cd->path, NULL);
                if (how[i] == MATCH_BLOCKED)
                        id = (struct file_id){cd->dev, cd->ino, e->fp, e->fp_len};
                struct tfile *f = tfile_from_cand(s, cd, &id, start, e);
                if (!f)
                        continue;
                if (how[i] == MATCH_BLOCKED) {
                        f->verified = false;
                        owed_fail(&f->owed, cd->fp_errno, f->path, s->name, now, t->log);
                }
                if (found[i] == live_idx) {
                        /* held open from now on: once renamed, its descriptor
                         * is what leads to it */
                        f->lazy = false;
                        f->live = true;
                        s->live = f;
                        tfile_open(f); /* the live file is watched through its descriptor */
                } else {
                        f->rotated_at = now - TAILER_ROTATE_GRACE_S;
                        archived[na++] = f;
                }
                log_info(t->log, "resuming file=%s source=%s offset=%llu", q(b, sizeof b, f->path),
                         s->name, (unsigned long long)start);
        }

        /* Rotated files the state does not know: written while we were
         * down, they are read whole. Before any state exists they are
         * history, not ours to send. */
        for (size_t k = 0; k < cl.n; k++) {
                struct candidate *c = &cl.v[k];
                if (c->used || (long)k == live_idx || !known ||
                    (int64_t)c->mtime.tv_sec < watermark - UNKNOWN_ARCHIVE_MARGIN_S)
                        continue;
                struct tfile *f = queue_new_cand(t, s, c);
                if (!f)
                        continue;
                c->used = true;
                f->rotated_at = now - TAILER_ROTATE_GRACE_S;
                archived[na++] = f;
                log_info(t->log, "reading file rotated while stopped file=%s source=%s",
                         q(b, sizeof b, f->path), s->name);
        }
        qsort(archived, na, sizeof *archived, tfile_cmp_mtime);
        for (size_t k = 0; k < na; k++)
                queue_append(s, archived[k]);
        if (s->live)
                queue_append(s, s->live);

        free(ents), free(saved), free(found), free(how), free(trunc_ok), free(archived);
        cand_list_free(&cl);
        if (!s->live && live_idx >= 0)
                source_adopt_live(t, s, !known);
        return 0;
}
