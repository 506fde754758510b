/* The tailer's insides, shared by its pieces; callers see tailer.h only.
 *
 * A struct tailer owns its sources (src[], nsrc), the offsets table (state)
 * and the inotify instance (watch). A struct tsource owns its queue of
 * tfiles, oldest first; s->live points into that queue and owns nothing. A
 * tfile owns its descriptor (fd, -1 while closed), its path, its header
 * versions (hv) and its owed streak; its entry belongs to the table, which
 * frees it (state_remove) — the tfile only drops the pointer. A finished
 * tfile the caller still holds moves from its queue to t->zombies, and is
 * freed by the last tailer_file_release.
 *
 * Who does what:
 *   tailer.c   open and close, the caller's loop (fd, events, deadline,
 *              tick), status, saving the offsets;
 *   scan.c     looking at the disk: the live path, rotated names in reading
 *              order, where a file went (no decision);
 *   reconcile.c which known file is which file now, and what every other
 *              file is: one pure function for the start and every look;
 *   source.c   a look: scan, reconcile, and the plan carried out on the
 *              queue and the table (the only caller of the reconciler);
 *   queue.c    a tfile's life: made, queued, renamed, given a table entry,
 *              opened, dropped when gone; the queue's head for the reader;
 *   read.c     reading, header lines, a rewrite found (a look decides what
 *              it was), when a rotated file's end is final,
 *              acknowledgements, finishing.
 * Calls go one way: tailer.c and read.c → source.c → queue.c → scan.c;
 * reconcile.c calls nothing.
 *
 * Nothing here is global: every piece works on the struct tailer it is
 * given. */
#ifndef PMTATAIL_TAILER_INT_H
#define PMTATAIL_TAILER_INT_H

#include "tailer.h"

#include "identity.h"
#include "match.h"
#include "owed.h"
#include "reconcile.h"
#include "state.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

struct watch;

struct tsource;

/* A header line of a file and the parser's generation for it: the header
 * in force at an acknowledged offset is saved with that offset. */
struct hver {
        uint64_t hgen;
        char *raw;
        size_t len;
        struct hver *next; /* newer */
};

struct tfile {
        struct tsource *src;
        struct tfile *next; /* in the source's queue, oldest first */
        /* Open only while it is read, or while a writer may still add to it
         * after a rename; a queued file waits with its identity alone. */
        int fd;
        struct file_id id;
        bool verified; /* its content was checked against id (else: on open) */
        char *path;
        uint64_t size; /* as last seen, for a file not open */
        struct timespec mtime;
        bool live;         /* the live path points to it */
        time_t rotated_at; /* when it stopped being live */
        time_t since;      /* when we began to follow it */
        time_t grew_at;    /* when a read last found new bytes */
        bool drained;      /* read to its final end */
        uint64_t final_end;
        uint64_t start; /* where reading starts */
        uint64_t acked;
        uint32_t gen;
        struct state_entry *entry; /* its offsets, NULL once truncated away */
        void *user;
        /* The last bytes handed out and where they ended: if the file no
         * longer holds them there, it was rewritten in place, even when it
         * has grown past the offset meanwhile. */
        unsigned char tail[64];
        size_t tail_len;
        uint64_t tail_end;
        unsigned refs; /* caller's holds (acknowledgements still to come) */
        bool done;     /* finished: out of the queue, freed when the last hold goes */
        bool gone;     /* nowhere to be found: dropped by the queue */
        bool lazy;     /* queued from a listing: its descriptor is not needed
                        * to keep it (it has a name), so it is closed between
                        * reads once the file is superseded */
        bool parked;   /* closed so at its end: passed over until final */
        struct owed owed;
        struct hver *hv; /* headers seen, oldest first, not yet acknowledged past */
        size_t nhv;
        /* Where a copy of it was found (move-to to another file system): the
         * identity its entry takes when it is finished. */
        bool has_copy;
        uint64_t copy_dev, copy_ino;
        /* Rewritten, and its copy could not be looked for yet: the error,
         * and when to look again (0: nothing pending). */
        int look_err;
        time_t look_at;
        bool rewritten; /* its inode no longer holds what was read: a look decides */
        bool want_end;  /* first seen unreadable with start_at = end: start at its end */
        bool fresh;     /* made by the look running now (not yet queued) */
        bool early;     /* ... owed and not seen: it goes first */
};

struct tsource {
        struct tailer *t;
        char *name;
        char *path;
        char *dir;         /* of the live file */
        char *base;        /* the live file's name */
        char *stem;        /* "bounces" for bounces.csv (archive.h's stem) */
        char *archive_dir; /* NULL when none */
        bool start_at_end;
        int wd;         /* watch of dir, -1 when lost */
        int archive_wd; /* watch of archive_dir: late writes to rotated files wake us */
        struct tfile *queue;
        struct tfile *live;
        struct owed live_owed; /* the live path is no regular file, or cannot be looked at */
        bool look;             /* an event asks for a look */
        time_t look_at;        /* a look is due then (a file to look at again), 0: none */
        /* Candidates a look made wait (reconcile.h), and since when: the
         * next looks know how long they have waited. */
        struct waiting {
                uint64_t dev, ino;
                time_t since;
        } waiting[64];
        size_t nwaiting;
        bool waiting_full; /* more waited than the list holds */
        /* A look for files rotated before they were seen could not list
         * the directories (no descriptors left): what it would have found
         * is still owed, so it is tried again, for files since list_since. */
        struct owed list_owed;
};

struct tailer {
        const struct logger *log;
        struct state *state;
        struct watch *watch;
        struct tsource *src;
        size_t nsrc;
        /* When the watches were first armed (epoch ns, a little before:
         * file times are taken from a coarse clock): what changed since was
         * written while watched. */
        int64_t watching_since_ns;
        bool dirty;
        bool requeued;         /* a file was put before one being read */
        struct tfile *zombies; /* finished, still held by the caller */
        bool rewatch;          /* a watched directory is gone: retry */
        time_t rewatch_at;
        struct log_streak save_failing; /* offsets saves failing in a row */
        char limit_error[256];          /* a bound reached (the offsets table full), "" when none */
};

/* s quoted for a log line, in buf. */
static inline const char *q(char *buf, size_t size, const char *s)
{
        return log_quote(buf, size, s, strlen(s));
}

/* ---- queue.c ---- */

/* Copy a file's fingerprint into its table entry (dev and ino go through
 * state_set_id). */
void entry_from_id(struct state_entry *e, const struct file_id *id);
/* A new tfile (not queued) that owns fd (-1: none) and a copy of path; its
 * entry may be NULL. NULL when out of memory. */
struct tfile *tfile_new(struct tsource *s, int fd, const struct file_id *id, const char *path,
                        uint64_t start, struct state_entry *e);
struct tfile *tfile_from_cand(struct tsource *s, const struct candidate *c,
                              const struct file_id *id, uint64_t start, struct state_entry *e);
void hver_clear(struct tfile *f);
/* Close and free f (not its entry: the table's). f must be out of every list. */
void tfile_free(struct tfile *f);
void queue_append(struct tsource *s, struct tfile *f);
void queue_unlink(struct tsource *s, struct tfile *f);
/* Name f (and its entry) by path from now on. */
void tfile_set_path(struct tailer *t, struct tfile *f, const char *path);
struct state_entry *entry_for_new(struct tailer *t, struct tsource *s, const struct file_id *id,
                                  const char *path, uint64_t start);
int tfile_open(struct tfile *f);
/* Unlink and free a queued file that is gone (or keep it owed while held). */
void tfile_drop_gone(struct tfile *f);
/* The loud line for a file owed and nowhere to be found. */
void report_gone(struct tailer *t, const char *source, const char *path, uint64_t offset);
/* Remove e from the table; a file that held it lets go of it first. */
void entry_forget(struct tailer *t, struct state_entry *e);
/* Give e the identity (dev, ino); a stale holder forgets it. */
void entry_take_inode(struct tailer *t, struct state_entry *e, uint64_t dev, uint64_t ino);
/* f (and its entry) read again from 0 as the file with identity id: a new
 * generation, so acknowledgements of the old content are ignored and the
 * reader that read it starts over (tailer_file_gen). */
void tfile_restart(struct tailer *t, struct tfile *f, const struct file_id *id);
/* tailer_release_inode's `why` when another file has the inode now */
#define TAILER_INODE_REUSED "whose inode was reused"
/* Forget the inode of entry e and of the closed file f that holds it (f
 * NULL: found by e): it is another file's now, or may become one (the file
 * is gone). Both are known by content alone from then on. `why` completes
 * the log line ("a file ..."). */
void tailer_release_inode(struct tailer *t, struct state_entry *e, struct tfile *f,
                          const char *why);
/* The file that holds e, NULL when none. */
struct tfile *tfile_of_entry(struct tailer *t, const struct state_entry *e);
/* Mark the newest entry of each source as kept from pruning. */
void tailer_keep_newest(struct tailer *t);

/* ---- scan.c ---- */

/* Whether `name` is a rotated name of s (PowerMTA's, logrotate's; not
 * compressed). */
bool source_is_rotated_name(const struct tsource *s, const char *name);
/* Add the source's rotated files to cl. Returns 0, or the errno of a
 * directory that exists but cannot be listed (logged once per streak). */
int source_list_rotated(struct tailer *t, struct tsource *s, struct cand_list *cl);
/* Put cl in reading order (archive.h), the live file last. */
void source_order(const struct tsource *s, struct cand_list *cl);
/* The live path (in *live_err the errno of a live path that exists but is
 * no regular file or cannot be looked at) and the rotated files, in
 * reading order. Returns source_list_rotated's answer. */
int source_observe(struct tailer *t, struct tsource *s, struct cand_list *cl, int *live_err);
/* Where a file went, by its inode, among the rotated names: *out a new
 * string, or NULL. Returns 0, or the errno of a directory that could not be
 * listed (then not finding it says nothing). */
int source_find_moved(const struct tsource *s, uint64_t dev, uint64_t ino, char **out);

bool pread_all(int fd, void *buf, size_t n, uint64_t off);
/* Offset just past the last line break before `size` in fd (0: none). */
uint64_t last_line_end(int fd, uint64_t size);
/* How the file at candidate c relates to the file open as fd (content
 * compared): RC_REL_COPY (one is a copy of the other, maybe still being
 * made), RC_REL_PREFIX (too little to tell, or changed while compared: the
 * next look tells), RC_REL_NONE. */
enum rc_rel fd_cand_relate(int fd, const struct candidate *c);
/* The same for two candidates as listed. */
enum rc_rel cands_relate(const struct candidate *on, const struct candidate *c);

/* ---- source.c ---- */

struct match_saved saved_of_entry(const struct state_entry *e);
/* Look at the source's files and act on what changed (reconcile.h): at the
 * start, on events, on ticks, when a file read was rewritten. Returns 0,
 * the errno of a directory that could not be listed, or -1 when out of
 * memory. */
int source_reconcile(struct tailer *t, struct tsource *s, bool start);

/* ---- read.c ---- */

time_t tfile_final_at(const struct tfile *f);
/* f's size now: fstat of its descriptor, or as last seen while closed. */
uint64_t tfile_size_now(const struct tfile *f);

#endif
