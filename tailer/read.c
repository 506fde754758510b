#include "tailer_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Header lines remembered per file between reading and acknowledgement: a
 * file switches header rarely; past this the oldest pending one is dropped
 * (its acknowledgements keep the header saved before). */
#define HEADER_VERSIONS_MAX 16

ssize_t tailer_read(struct tfile *f, uint64_t off, void *buf, size_t len)
{
        if (f->look_err && f->fd >= 0) {
                errno = f->look_err; /* see tailer_file_undecided */
                return -1;
        }
        if (f->fd < 0 && tfile_open(f) < 0)
                return -1;
        if (f->tail_len && off <= f->tail_end && off + len > f->tail_end) {
                /* Before reading on past what was read, the bytes read last
                 * must still be there: a file truncated and written again
                 * while reading was paused has grown past the offset, and
                 * only its content shows the rewrite. Nothing is read from it
                 * then; the caller's check for a rewrite follows the end. */
                unsigned char now[sizeof f->tail];
                ssize_t k = pread(f->fd, now, f->tail_len, (off_t)(f->tail_end - f->tail_len));
                if (k >= 0 && ((size_t)k != f->tail_len || memcmp(now, f->tail, f->tail_len) != 0))
                        return 0;
        }
        ssize_t n;
        do
                n = pread(f->fd, buf, len, (off_t)off);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                int e = errno;
                owed_fail(&f->owed, e, f->path, f->src->name, time(NULL), f->src->t->log);
                errno = e;
                return -1;
        }
        if (f->owed.err)
                owed_clear(&f->owed, f->path, f->src->name, time(NULL), f->src->t->log);
        if (n == 0) {
                /* At the end of an archived file while newer ones are read:
                 * its descriptor goes back until the next look, so that a
                 * backlog of many files holds one or two, not one each. A
                 * deleted file keeps it: its name no longer leads to it. */
                struct stat st;
                if (f->lazy && !f->live && tailer_file_superseded(f) && fstat(f->fd, &st) == 0 &&
                    st.st_nlink > 0) {
                        f->size = (uint64_t)st.st_size;
                        f->mtime = st.st_mtim;
                        close(f->fd);
                        f->fd = -1;
                        f->parked = true;
                }
                return 0;
        }
        size_t k = (size_t)n < sizeof f->tail ? (size_t)n : sizeof f->tail;
        memcpy(f->tail, (const char *)buf + n - k, k);
        f->grew_at = time(NULL);
        f->tail_len = k;
        f->tail_end = off + (uint64_t)n;
        /* A young file's fingerprint grows as it is read, so that a file
         * rewritten in place is told apart from its first version soon. */
        if (f->id.fp_len < IDENTITY_FP_MAX && identity_extend(&f->id, f->fd) == 1 && f->entry)
                entry_from_id(f->entry, &f->id);
        return n;
}

uint64_t tailer_file_start(const struct tfile *f)
{
        return f->start;
}

const char *tailer_file_header(const struct tfile *f, size_t *len)
{
        if (!f->entry || !f->entry->header || f->start == 0) {
                *len = 0;
                return NULL;
        }
        *len = f->entry->header_len;
        return f->entry->header;
}

static void entry_header(struct tfile *f, const char *header, size_t len)
{
        if (!f->entry)
                return;
        if (f->entry->header && f->entry->header_len == len &&
            memcmp(f->entry->header, header, len) == 0)
                return;
        struct state_error err;
        if (state_set_header(f->src->t->state, f->entry, header, len, &err) < 0)
                log_warn(f->src->t->log, "cannot remember the header: %s", err.msg);
        f->src->t->dirty = true;
}

void tailer_file_set_header(struct tfile *f, const char *header, size_t len)
{
        entry_header(f, header, len);
}

void tailer_file_header_seen(struct tfile *f, uint64_t hgen, const char *header, size_t len)
{
        struct hver **pp = &f->hv, *last = NULL;
        while (*pp)
                last = *pp, pp = &(*pp)->next;
        if (last && last->hgen == hgen)
                return;
        struct hver *h = calloc(1, sizeof *h);
        if (!h || !(h->raw = malloc(len ? len : 1))) {
                free(h);
                return;
        }
        memcpy(h->raw, header, len);
        h->len = len;
        h->hgen = hgen;
        *pp = h;
        if (++f->nhv > HEADER_VERSIONS_MAX) {
                struct hver *old = f->hv;
                f->hv = old->next;
                free(old->raw);
                free(old);
                f->nhv--;
        }
}

/* The offset acknowledged was read under header generation hgen: that
 * header is the one to resume with; older ones are no longer needed. */
static void adopt_header(struct tfile *f, uint64_t hgen)
{
        struct hver *h = f->hv;
        while (h && h->hgen != hgen)
                h = h->next;
        if (!h)
                return;
        entry_header(f, h->raw, h->len);
        while (f->hv != h) {
                struct hver *old = f->hv;
                f->hv = old->next;
                free(old->raw);
                free(old);
                f->nhv--;
        }
}

/* When a rotated file's end may be taken as final: once it has been quiet
 * for TAILER_QUIET_S after the writer moved on to a newer file, or for the
 * whole grace period when no newer file shows that. 0 for the live file. */
time_t tfile_final_at(const struct tfile *f)
{
        if (f->live)
                return 0;
        time_t quiet_since = f->grew_at > f->rotated_at ? f->grew_at : f->rotated_at;
        if (tailer_file_superseded(f))
                return quiet_since + TAILER_QUIET_S;
        time_t g = f->rotated_at + TAILER_ROTATE_GRACE_S;
        return g > quiet_since + TAILER_QUIET_S ? g : quiet_since + TAILER_QUIET_S;
}

bool tailer_file_final(const struct tfile *f)
{
        return !f->live && time(NULL) >= tfile_final_at(f);
}

uint64_t tfile_size_now(const struct tfile *f)
{
        struct stat st;
        if (f->fd >= 0)
                return fstat(f->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
        return f->size;
}

bool tailer_file_superseded(const struct tfile *f)
{
        if (f->live)
                return false;
        for (const struct tfile *g = f->next; g; g = g->next) {
                if (tfile_size_now(g) > 0)
                        return true;
        }
        return false;
}

bool tailer_file_undecided(const struct tfile *f)
{
        return f->look_err != 0;
}

bool tailer_file_truncated(struct tfile *f, uint64_t offset)
{
        struct stat st;
        if (f->fd < 0 || fstat(f->fd, &st) < 0)
                return false;
        bool shrank = (uint64_t)st.st_size < offset;
        /* Rewritten in place: its first bytes, or the last ones read, are
         * not what they were. */
        bool replaced = !shrank && identity_compare(&f->id, f->fd) != IDENTITY_SAME;
        if (!shrank && !replaced && f->tail_len) {
                unsigned char now[sizeof f->tail];
                replaced = pread(f->fd, now, f->tail_len, (off_t)(f->tail_end - f->tail_len)) !=
                               (ssize_t)f->tail_len ||
                           memcmp(now, f->tail, f->tail_len) != 0;
        }
        if (!shrank && !replaced) {
                f->look_err = 0; /* nothing left to decide */
                f->rewritten = false;
                return false;
        }
        struct tailer *t = f->src->t;
        char b[512];
        /* A look decides what happened: a copy of what was read (copy and
         * truncate) takes f over, and f reads on in it; else f is read
         * again from 0. */
        f->rewritten = true;
        int list_err = source_reconcile(t, f->src, false);
        if (!f->rewritten) {
                f->look_err = 0;
                return false; /* f is its copy now: read on where it was */
        }
        if (list_err) {
                /* The copy a copy-and-truncate made may be there, unseen (no
                 * descriptor left to list its directory): reading the file
                 * again from 0 now would skip the records only the copy
                 * holds. Nothing is read from it until a look works (the
                 * rewrite is still seen then, however the file grew). */
                if (!f->look_err)
                        log_warn(t->log,
                                 "file %s, cannot look for its copy yet file=%s error=\"%s\": "
                                 "nothing is read from it until the look works",
                                 shrank ? "truncated" : "rewritten", q(b, sizeof b, f->path),
                                 list_err < 0 ? "out of memory" : owed_reason(list_err));
                f->look_err = list_err < 0 ? ENOMEM : list_err;
                f->look_at = time(NULL) + 1;
                return false;
        }
        f->rewritten = false;
        f->look_err = 0;
        log_warn(t->log, "file %s, reading it again from 0 file=%s offset=%llu size=%llu",
                 shrank ? "truncated" : "rewritten", q(b, sizeof b, f->path),
                 (unsigned long long)offset, (unsigned long long)st.st_size);
        struct file_id id;
        identity_of_fd(f->fd, &id);
        tfile_restart(t, f, &id);
        return true;
}

static bool entry_file_exists(const struct state_entry *e, void *ctx)
{
        (void)ctx;
        struct stat st;
        if (stat(e->path, &st) < 0)
                /* a directory that cannot be searched for now says nothing:
                 * pruned, a finished file would be read again as new */
                return errno != ENOENT && errno != ENOTDIR;
        return (uint64_t)st.st_dev == e->dev && (uint64_t)st.st_ino == e->ino;
}

/* f is read to its end and no longer on its inode anywhere: a copy of the
 * whole of it in the rotated names (move-to to another file system) is f,
 * and its entry takes the copy's identity, so that it is known as done. */
static void find_done_copy(struct tfile *f)
{
        struct tsource *s = f->src;
        struct cand_list cl;
        cand_list_init(&cl);
        source_list_rotated(s->t, s, &cl);
        struct match_saved sv = {.id = f->id, .offset = f->final_end, .finished = true};
        for (size_t k = 0; k < cl.n && !f->has_copy; k++) {
                struct candidate *c = &cl.v[k];
                /* its content compared with what is open when it is open (a
                 * weak fingerprint, the header alone, is enough then) */
                if (c->size != f->final_end || (f->fd >= 0 ? fd_cand_relate(f->fd, c) != RC_REL_COPY
                                                           : match_saved(&sv, c) != MATCH_COPIED))
                        continue;
                char b[512], b2[512];
                log_info(s->t->log, "the file being read was copied file=%s copy=%s",
                         q(b, sizeof b, f->path), q(b2, sizeof b2, c->path));
                f->has_copy = true;
                f->copy_dev = c->dev;
                f->copy_ino = c->ino;
                tfile_set_path(s->t, f, c->path);
        }
        cand_list_free(&cl);
}

static void finish(struct tfile *f)
{
        struct tsource *s = f->src;
        struct tailer *t = s->t;
        char b[512];
        struct stat st;
        if (f->entry && (stat(f->path, &st) < 0 || (uint64_t)st.st_ino != f->id.ino ||
                         (uint64_t)st.st_dev != f->id.dev)) {
                /* Remember the archived name (and, for a copy on another file
                 * system, its inode), so the next start finds it where it is
                 * and knows it is done. */
                char *moved = NULL;
                source_find_moved(s, f->id.dev, f->id.ino, &moved);
                if (moved) {
                        tfile_set_path(t, f, moved);
                        free(moved);
                } else {
                        if (!f->has_copy)
                                find_done_copy(f);
                        /* The copy may have gone too (gzipped, deleted) and
                         * its inode be another file's now: taken only while
                         * the copy's name leads to it, at the copy's size. */
                        if (f->has_copy &&
                            (stat(f->path, &st) < 0 || (uint64_t)st.st_ino != f->copy_ino ||
                             (uint64_t)st.st_dev != f->copy_dev ||
                             (uint64_t)st.st_size != f->final_end))
                                f->has_copy = false;
                        if (f->has_copy)
                                entry_take_inode(t, f->entry, f->copy_dev, f->copy_ino);
                        else
                                /* deleted: its inode is free once closed */
                                tailer_release_inode(t, f->entry, f, "deleted when finished");
                }
        }
        if (f->entry)
                state_mark_finished(f->entry, f->final_end, time(NULL));
        /* the table keeps the entry (and may prune it below): f is done
         * with it */
        f->entry = NULL;
        tailer_keep_newest(t);
        /* A daemon that runs for months must not fill the table with
         * finished files: drop those gone from where we last saw them
         * (PowerMTA's delete-after) and those past the retention. */
        state_prune(t->state, time(NULL), TAILER_RETENTION_S, entry_file_exists, NULL);
        log_info(t->log, "finished file=%s source=%s offset=%llu", q(b, sizeof b, f->path), s->name,
                 (unsigned long long)f->final_end);
        queue_unlink(s, f);
        t->dirty = true;
        if (f->refs) {
                /* acknowledgements still to come name it: keep it until the last */
                f->done = true;
                f->next = t->zombies;
                t->zombies = f;
                close(f->fd);
                f->fd = -1;
                return;
        }
        tfile_free(f);
}

void tailer_file_hold(struct tfile *f)
{
        f->refs++;
}

void tailer_file_release(struct tfile *f)
{
        if (--f->refs || !f->done)
                return;
        struct tailer *t = f->src->t;
        for (struct tfile **pp = &t->zombies; *pp; pp = &(*pp)->next) {
                if (*pp == f) {
                        *pp = f->next;
                        break;
                }
        }
        tfile_free(f);
}

void tailer_file_drained(struct tfile *f, uint64_t end)
{
        f->drained = true;
        f->final_end = end;
        if (f->acked >= end)
                finish(f);
}

uint32_t tailer_file_gen(const struct tfile *f)
{
        return f->gen;
}

void tailer_ack_header(struct tfile *f, uint32_t gen, uint64_t offset, uint64_t hgen)
{
        if (f->done)
                return;
        if (gen != f->gen || offset <= f->acked) {
                if (gen == f->gen && offset == f->acked && hgen)
                        adopt_header(f, hgen);
                if (f->drained && f->acked >= f->final_end)
                        finish(f);
                return;
        }
        f->acked = offset;
        if (hgen)
                adopt_header(f, hgen);
        if (f->entry) {
                f->entry->offset = offset;
                f->entry->seen = (int64_t)time(NULL);
        }
        f->src->t->dirty = true;
        if (f->drained && f->acked >= f->final_end)
                finish(f);
}

void tailer_ack(struct tfile *f, uint32_t gen, uint64_t offset)
{
        tailer_ack_header(f, gen, offset, 0);
}
