/* Files in a directory that must be ours alone (the state directory, a
 * metrics directory): replaced atomically without ever following a link
 * someone planted there, and the checks that keep the directory ours.
 *
 * A replace writes NAME.tmp and renames it over NAME. The temp name is
 * predictable, so it is created with O_CREAT|O_EXCL|O_NOFOLLOW after a
 * leftover of that name (a crashed write, or a planted link) is removed with
 * unlinkat, never opened: whatever it pointed to is left alone. The rename
 * replaces a link at NAME itself, not its target. */
#ifndef PMTATAIL_SAFEFILE_H
#define PMTATAIL_SAFEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* fsync the file before the rename and the directory after it: the new
 * content survives a power loss once the call returns. */
#define SAFEFILE_DURABLE 1u

/* Replace `name` in the directory open at dirfd with `len` bytes of data
 * (mode 0600 less the umask). Returns 0, or -1 with errno set and *step (when
 * not NULL) naming what failed: "remove", "create", "write", "fsync",
 * "close", "rename" or "fsync directory" (after that last one the new
 * content is in place, only its durability is in doubt). */
int safefile_replace_at(int dirfd, const char *name, const void *data, size_t len, unsigned flags,
                        const char **step);

/* The same for a path: its directory is opened (following links: the
 * operator may point it elsewhere), its last component is the name. */
int safefile_replace(const char *path, const void *data, size_t len, unsigned flags,
                     const char **step);

/* Open (creating it 0600 if needed) a lock file in dirfd, refusing a link. */
int safefile_open_lock(int dirfd, const char *name);

/* Is `dir` fit to hold our state, as sshd's StrictModes judges a home
 * directory: a directory, owned by this user (or root), writable by no one
 * else? Returns 0 when it is, 1 when it does not exist (yet), -1 with the
 * reason (and how to fix it) in why otherwise. */
int safefile_check_dir(const char *dir, char *why, size_t why_size);

/* Is the file at path readable by its group or by others? (false when it
 * cannot be looked at: the caller reports that on its own.) *mode gets its
 * permission bits. */
bool safefile_exposed(const char *path, unsigned *mode);

#endif
