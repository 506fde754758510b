#include "tailer_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The offsets table is pruned (oldest finished entries first) once it holds
 * this many fewer than STATE_MAX_ENTRIES: room stays for new files. */
#define STATE_HEADROOM 64

void entry_from_id(struct state_entry *e, const struct file_id *id)
{
        e->fp = id->fp;
        e->fp_len = id->fp_len;
}

struct tfile *tfile_new(struct tsource *s, int fd, const struct file_id *id, const char *path,
                        uint64_t start, struct state_entry *e)
{
        struct tfile *f = calloc(1, sizeof *f);
        if (!f)
                return NULL;
        f->path = strdup(path);
        if (!f->path) {
                free(f);
                return NULL;
        }
        f->src = s;
        f->fd = fd;
        f->id = *id;
        f->verified = true;
        f->start = start;
        f->acked = start;
        f->entry = e;
        f->since = time(NULL);
        return f;
}

/* A file queued from a directory listing: no descriptor until it is read. */
struct tfile *tfile_from_cand(struct tsource *s, const struct candidate *c,
                              const struct file_id *id, uint64_t start, struct state_entry *e)
{
        struct tfile *f = tfile_new(s, -1, id, c->path, start, e);
        if (f) {
                f->size = c->size;
                f->mtime = c->mtime;
                f->lazy = true;
        }
        return f;
}

void hver_clear(struct tfile *f)
{
        for (struct hver *h = f->hv, *next; h; h = next) {
                next = h->next;
                free(h->raw);
                free(h);
        }
        f->hv = NULL;
        f->nhv = 0;
}

void tfile_free(struct tfile *f)
{
        if (!f)
                return;
        if (f->fd >= 0)
                close(f->fd);
        hver_clear(f);
        free(f->path);
        free(f);
}

void queue_append(struct tsource *s, struct tfile *f)
{
        struct tfile **pp = &s->queue;
        while (*pp)
                pp = &(*pp)->next;
        *pp = f;
        f->next = NULL;
}

void queue_unlink(struct tsource *s, struct tfile *f)
{
        for (struct tfile **pp = &s->queue; *pp; pp = &(*pp)->next) {
                if (*pp == f) {
                        *pp = f->next;
                        return;
                }
        }
}

void tfile_set_path(struct tailer *t, struct tfile *f, const char *path)
{
        if (strcmp(f->path, path) == 0)
                return;
        char *p = strdup(path);
        if (!p)
                return;
        free(f->path);
        f->path = p;
        if (f->entry && state_set_path(t->state, f->entry, path, NULL) == 0)
                t->dirty = true;
}

/* A state entry for a file seen for the first time. An entry left with the
 * same device and inode belongs to a file that is gone (the inode was
 * reused): it forgets that inode (entry_take_inode), and is never removed
 * here (a file may still hold it). A table near full is pruned first,
 * oldest finished entries first; entries still owed are never dropped. */
struct state_entry *entry_for_new(struct tailer *t, struct tsource *s, const struct file_id *id,
                                  const char *path, uint64_t start)
{
        struct state_error err;
        struct state_entry *old;
        while (id->ino && (old = state_find_id(t->state, id->dev, id->ino))) {
                char b[512];
                log_info(t->log,
                         "forgetting the offsets' inode of a file whose inode was reused file=%s",
                         q(b, sizeof b, old->path));
                old->dev = old->ino = 0;
        }
        if (state_count(t->state) >= STATE_MAX_ENTRIES - STATE_HEADROOM) {
                tailer_keep_newest(t);
                size_t n = state_prune_oldest(t->state, STATE_MAX_ENTRIES - 2 * STATE_HEADROOM);
                if (n)
                        log_info(t->log,
                                 "offsets table near full: forgot the %zu finished files seen "
                                 "longest ago",
                                 n);
        }
        struct state_entry tmpl = {
            .source = s->name,
            .path = (char *)path,
            .dev = id->dev,
            .ino = id->ino,
            .fp = id->fp,
            .fp_len = id->fp_len,
            .offset = start,
            .seen = (int64_t)time(NULL),
        };
        struct state_entry *e = state_add(t->state, &tmpl, &err);
        if (!e) {
                log_error(t->log, "cannot track file: %s", err.msg);
                if (err.kind == STATE_E_LIMIT)
                        snprintf(t->limit_error, sizeof t->limit_error,
                                 "offsets table full: %zu files owed", state_count(t->state));
        } else if (t->limit_error[0] && state_count(t->state) < STATE_MAX_ENTRIES) {
                t->limit_error[0] = '\0';
        }
        t->dirty = true;
        return e;
}

/* Open f if it is not open: found at its path (or, renamed since, by its
 * inode), a regular file, and its content checked when that was not
 * possible before. Returns 0, or -1: a failure is a streak of f's (logged
 * once), or f is gone (f->gone). */
int tfile_open(struct tfile *f)
{
        if (f->fd >= 0)
                return 0;
        struct tsource *s = f->src;
        struct tailer *t = s->t;
        time_t now = time(NULL);
        if (owed_waiting(&f->owed, now)) {
                errno = EAGAIN;
                return -1;
        }
        char b[512];
        int fd = -1;
        for (int attempt = 0; attempt < 2; attempt++) {
                fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
                struct stat st;
                if (fd >= 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_dev == f->id.dev &&
                    (uint64_t)st.st_ino == f->id.ino) {
                        if (!S_ISREG(st.st_mode)) {
                                close(fd);
                                owed_fail(&f->owed, OWED_NOT_REGULAR, f->path, s->name, now,
                                          t->log);
                                return -1;
                        }
                        break;
                }
                int e = errno;
                if (fd >= 0) {
                        close(fd);
                        fd = -1;
                        e = ENOENT; /* another file at that path now */
                }
                if (e != ENOENT) {
                        owed_fail(&f->owed, e, f->path, s->name, now, t->log);
                        return -1;
                }
                /* renamed since we listed it: look for its inode */
                char *moved = NULL;
                int lerr = attempt == 0 ? source_find_moved(s, f->id.dev, f->id.ino, &moved) : 0;
                if (!moved && lerr) {
                        /* a directory could not be listed: not seeing it
                         * says nothing; it stays owed */
                        owed_fail(&f->owed, lerr, f->path, s->name, now, t->log);
                        return -1;
                }
                if (!moved) {
                        f->gone = true;
                        errno = ENOENT;
                        return -1;
                }
                tfile_set_path(t, f, moved);
                free(moved);
        }
        if (!f->verified) {
                /* Matched by inode alone while it could not be read: is it
                 * still the file whose offset we keep? */
                enum identity_match m = f->id.fp_len ? identity_compare(&f->id, fd) : IDENTITY_SAME;
                if (m == IDENTITY_ERROR) {
                        int e = errno;
                        close(fd);
                        owed_fail(&f->owed, e, f->path, s->name, now, t->log);
                        return -1;
                }
                if (m != IDENTITY_SAME && f->start > 0) {
                        log_warn(t->log,
                                 "another file on the inode of a tracked one, reading it from 0 "
                                 "file=%s how=%s",
                                 q(b, sizeof b, f->path), identity_match_name(m));
                        f->start = f->acked = 0;
                        if (f->entry) {
                                f->entry->offset = 0;
                                state_set_header(t->state, f->entry, NULL, 0, NULL);
                        }
                }
                struct file_id id;
                if (identity_of_fd(fd, &id) == 0) {
                        f->id = id;
                        if (f->entry)
                                entry_from_id(f->entry, &id);
                }
                struct stat st;
                if (f->want_end && fstat(fd, &st) == 0) {
                        /* first seen unreadable, start_at = end: its end now */
                        f->start = f->acked = last_line_end(fd, (uint64_t)st.st_size);
                        if (f->entry)
                                f->entry->offset = f->start;
                }
                f->want_end = false;
                f->verified = true;
                t->dirty = true;
        }
        owed_clear(&f->owed, f->path, s->name, now, t->log);
        f->fd = fd;
        return 0;
}

/* A queued file that is nowhere to be found: report it by its own last
 * known path and stop owing it. */
void tfile_drop_gone(struct tfile *f)
{
        struct tsource *s = f->src;
        struct tailer *t = s->t;
        if (f->refs || f->user) {
                /* read in part and given back its descriptor, then gone: the
                 * caller still holds it; it stays owed (and shown) instead */
                f->gone = false;
                owed_fail(&f->owed, ENOENT, f->path, s->name, time(NULL), t->log);
                /* not on its inode any more: a file created next may be */
                tailer_release_inode(t, f->entry, f, "gone from every name");
                return;
        }
        char b[512];
        if (f->size && f->acked >= f->size)
                /* nothing unread as far as it was ever seen: no alarm */
                log_info(t->log,
                         "tracked file gone, read to the end last seen file=%s source=%s "
                         "offset=%llu",
                         q(b, sizeof b, f->path), s->name, (unsigned long long)f->acked);
        else
                report_gone(t, s->name, f->path, f->acked);
        queue_unlink(s, f);
        if (f->entry)
                entry_forget(t, f->entry);
        t->dirty = true;
        /* a reader holding the next file of the queue starts again */
        t->requeued = true;
        tfile_free(f);
}

void report_gone(struct tailer *t, const char *source, const char *path, uint64_t offset)
{
        char b[512];
        log_warn(t->log,
                 "tracked file gone, its unread records cannot be delivered file=%s source=%s "
                 "offset=%llu",
                 q(b, sizeof b, path), source, (unsigned long long)offset);
}

void tailer_keep_newest(struct tailer *t)
{
        size_t n = state_count(t->state);
        for (size_t i = 0; i < n; i++)
                state_at(t->state, i)->keep = false;
        for (size_t k = 0; k < t->nsrc; k++) {
                struct state_entry *best = NULL;
                for (size_t i = 0; i < n; i++) {
                        struct state_entry *e = state_at(t->state, i);
                        if (strcmp(e->source, t->src[k].name) == 0 &&
                            (!best || e->seen > best->seen))
                                best = e;
                }
                if (best)
                        best->keep = true;
        }
}

/* Give entry e the identity (dev, ino): another entry recorded with it
 * belongs to a file that is no longer there (the file on it now is e's, by
 * its content), so it forgets that inode. Never refused. */
void entry_take_inode(struct tailer *t, struct state_entry *e, uint64_t dev, uint64_t ino)
{
        if (e->dev == dev && e->ino == ino)
                return;
        struct state_entry *other;
        while (ino && (other = state_find_id(t->state, dev, ino)) && other != e)
                tailer_release_inode(t, other, NULL, TAILER_INODE_REUSED);
        state_set_id(t->state, e, dev, ino, NULL);
        t->dirty = true;
}

void tfile_restart(struct tailer *t, struct tfile *f, const struct file_id *id)
{
        f->id = *id;
        f->start = 0;
        f->acked = 0;
        f->tail_len = 0;
        f->tail_end = 0;
        f->gen++;
        hver_clear(f);
        t->requeued = true;
        if (f->entry) {
                entry_take_inode(t, f->entry, f->id.dev, f->id.ino);
                f->entry->offset = 0;
                entry_from_id(f->entry, &f->id);
                state_set_header(t->state, f->entry, NULL, 0, NULL);
        }
        t->dirty = true;
}

void tailer_release_inode(struct tailer *t, struct state_entry *e, struct tfile *f, const char *why)
{
        char b[512];
        if (!f && e)
                f = tfile_of_entry(t, e);
        /* An open descriptor pins its inode: only a closed file's can be
         * another file's now. */
        if (f && f->fd < 0)
                f->id.dev = f->id.ino = 0;
        if (e && e->ino) {
                log_info(t->log, "forgetting the offsets' inode of a file %s file=%s", why,
                         q(b, sizeof b, e->path));
                e->dev = e->ino = 0;
                t->dirty = true;
        }
}

struct tfile *tfile_of_entry(struct tailer *t, const struct state_entry *e)
{
        for (size_t i = 0; i < t->nsrc; i++) {
                for (struct tfile *f = t->src[i].queue; f; f = f->next) {
                        if (f->entry == e)
                                return f;
                }
        }
        return NULL;
}

void entry_forget(struct tailer *t, struct state_entry *e)
{
        for (size_t i = 0; i < t->nsrc; i++) {
                for (struct tfile *f = t->src[i].queue; f; f = f->next) {
                        if (f->entry == e)
                                f->entry = NULL;
                }
        }
        for (struct tfile *f = t->zombies; f; f = f->next) {
                if (f->entry == e)
                        f->entry = NULL;
        }
        state_remove(t->state, e);
        t->dirty = true;
}

/* The first file from f on that can be read now. Owed files that cannot
 * are passed over (they keep their place and are tried again later). */
static struct tfile *first_ready(struct tfile *f)
{
        time_t now = time(NULL);
        while (f) {
                struct tfile *next = f->next;
                /* A parked file has been read to its end; it is opened
                 * again when its end may be final (its deadline wakes us). */
                bool parked = f->parked && f->fd < 0 && !tailer_file_final(f);
                if (!f->drained && !parked && !owed_waiting(&f->owed, now)) {
                        f->parked = false;
                        if (tfile_open(f) == 0)
                                return f;
                        if (f->gone)
                                tfile_drop_gone(f);
                }
                f = next;
        }
        return NULL;
}

struct tfile *tailer_head(struct tailer *t, size_t src)
{
        return first_ready(t->src[src].queue);
}

struct tfile *tailer_next(struct tfile *f)
{
        return first_ready(f->next);
}

struct tfile *tailer_queue_first(struct tailer *t, size_t src)
{
        return t->src[src].queue;
}

struct tfile *tailer_queue_next(struct tfile *f)
{
        return f->next;
}
