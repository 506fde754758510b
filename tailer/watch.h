/* Directory watches on inotify.
 *
 * The tailer watches the directories that hold the live files and their
 * archive (`move-to`) directories, never the files themselves: a watch on a
 * directory sees a file renamed away, renamed in, re-created or deleted,
 * which a watch on the file's inode cannot tell apart.
 *
 * Nothing here polls or keeps a timer: the caller puts watch_fd() in its own
 * poll set and calls watch_read() when it is readable, so an idle daemon
 * never wakes up. Events are handed over as they come; deciding what they
 * mean for a file (fstat it, compare identities) is the caller's job.
 *
 * When the kernel's event queue overflows (IN_Q_OVERFLOW) events were lost:
 * the caller must then re-check every file it follows. That event carries
 * kind WATCH_EVENT_OVERFLOW and wd -1.
 *
 * A struct watch is not thread-safe and keeps no global state. */
#ifndef PMTATAIL_WATCH_H
#define PMTATAIL_WATCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/inotify.h>

/* Directories one struct watch can follow at once. */
#define WATCH_DIRS_MAX 256
/* Bytes read from the inotify descriptor at a time: room for hundreds of
 * events with names. The kernel never splits an event across reads. */
#define WATCH_BUF_SIZE (64 * 1024)

/* What a directory watch asks the kernel for. */
#define WATCH_DIR_MASK                                                                             \
        (IN_CREATE | IN_MOVED_FROM | IN_MOVED_TO | IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE |        \
         IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB | IN_ONLYDIR)

enum watch_event_kind {
        WATCH_EVENT_DIR,      /* about a watched directory or an entry in it */
        WATCH_EVENT_OVERFLOW, /* events were lost: re-check everything */
};

/* One event. Everything it points to is owned by the watch and valid only
 * during the callback. */
struct watch_event {
        enum watch_event_kind kind;
        int wd;           /* the watch it came from; -1 for WATCH_EVENT_OVERFLOW */
        uint32_t mask;    /* IN_* bits exactly as the kernel gave them */
        uint32_t cookie;  /* ties an IN_MOVED_FROM to its IN_MOVED_TO; 0 otherwise */
        const char *name; /* entry name, NUL-terminated; "" when the event is about
                           * the directory itself (IN_DELETE_SELF, IN_IGNORED, ...) */
        const char *dir;  /* the path given to watch_add_dir for wd; NULL for
                           * WATCH_EVENT_OVERFLOW */
};

/* Called once per event, in the kernel's order. It may call watch_add_dir
 * and watch_remove (events still queued for a removed wd are then dropped),
 * but not watch_read or watch_close. */
typedef void (*watch_event_fn)(void *ctx, const struct watch_event *ev);

struct watch;

/* Create an inotify instance (non-blocking, close-on-exec). Returns 0 and
 * sets *out, or -1 with errno (EMFILE: too many inotify instances, raise
 * fs.inotify.max_user_instances; ENOMEM). Must be torn down with
 * watch_close. */
int watch_open(struct watch **out);

/* Close the descriptor and free everything. Safe on NULL. */
void watch_close(struct watch *w);

/* The descriptor to poll for POLLIN. Owned by the watch: do not close it. */
int watch_fd(const struct watch *w);

/* Watch directory `dir` with WATCH_DIR_MASK and store its watch descriptor
 * in *wd. `dir` is copied. Adding a directory already watched (same inode,
 * whatever the path) returns the existing wd and keeps the first path.
 * Returns 0, or -1 with errno and a human reason in watch_error():
 *   ENOSPC   the user's inotify watch limit is reached (the reason says to
 *            raise fs.inotify.max_user_watches);
 *   ENOBUFS  WATCH_DIRS_MAX directories are already watched;
 *   ENOTDIR, ENOENT, EACCES ... as inotify_add_watch. */
int watch_add_dir(struct watch *w, const char *dir, int *wd);

/* Stop watching wd and forget its path. Events of wd still queued are
 * dropped, so no IN_IGNORED is delivered for it. A wd the kernel already
 * dropped (its directory was deleted) is not an error. Returns 0, or -1
 * with errno EINVAL for an unknown wd. */
int watch_remove(struct watch *w, int wd);

/* The path watched as wd, or NULL when wd is not watched. Valid until wd is
 * removed. */
const char *watch_dir(const struct watch *w, int wd);

/* Read every queued event (until the descriptor would block) and call
 * on_event for each. A watch the kernel ends (IN_IGNORED: the directory was
 * deleted or its filesystem unmounted) is delivered, then forgotten.
 * Returns the number of events delivered, or -1 with errno and
 * watch_error() (events before the failure were delivered). */
int watch_read(struct watch *w, watch_event_fn on_event, void *ctx);

/* The buffer walk behind watch_read, exposed so tests can feed it crafted
 * buffers (an IN_Q_OVERFLOW cannot be forced portably). `buf` holds whole
 * inotify events back to back, as read(2) returns them; it needs no
 * particular alignment. Events for wds not watched are dropped. Returns the
 * number of events delivered, or -1 with errno EBADMSG when an event runs
 * past `len` or its name is not NUL-terminated (events before it were
 * delivered). */
int watch_walk_buffer(struct watch *w, const char *buf, size_t len, watch_event_fn on_event,
                      void *ctx);

/* The human reason for the last failure of watch_add_dir or watch_read;
 * "" if none. Valid until the next call on w. */
const char *watch_error(const struct watch *w);

#endif
