#include "reconcile.h"

static bool same_inode(const struct rc_known *k, const struct rc_cand *c)
{
        return k->ino != 0 && k->dev == c->dev && k->ino == c->ino;
}

static bool size_fits(const struct rc_known *k, const struct rc_cand *c)
{
        return k->copy_exact ? c->size == k->copy_min : c->size >= k->copy_min;
}

/* Whether another known file, open, is on known file i's inode. */
static bool pinned_by_other(const struct rc_input *in, size_t i)
{
        const struct rc_known *kn = &in->known[i];
        if (kn->open || kn->ino == 0)
                return false;
        for (size_t j = 0; j < in->nknown; j++) {
                const struct rc_known *o = &in->known[j];
                if (j != i && o->open && o->dev == kn->dev && o->ino == kn->ino)
                        return true;
        }
        return false;
}

/* Whether candidate k holds the content of an open file just rewritten
 * (copy and truncate) other than known file i. Asked only of a closed file
 * still being read that is on k's inode: rare, so the comparison is cheap
 * overall. */
static bool copy_of_rewritten(const struct rc_input *in, size_t i, size_t k)
{
        for (size_t j = 0; j < in->nknown; j++) {
                const struct rc_known *o = &in->known[j];
                if (j != i && o->open && o->rewritten && size_fits(o, &in->cand[k]) &&
                    in->relate(in->ctx, j, k, -1) == RC_REL_COPY)
                        return true;
        }
        return false;
}

void rc_plan(const struct rc_input *in, struct rc_kout *kout, struct rc_cout *cout)
{
        size_t nk = in->nknown, nc = in->ncand;
        for (size_t i = 0; i < nk; i++)
                kout[i] = (struct rc_kout){.fate = RC_UNDECIDED, .cand = -1, .copy = -1};
        for (size_t k = 0; k < nc; k++)
                cout[k] = (struct rc_cout){.fate = RC_C_UNDECIDED, .known = -1};

        /* 1: each known file on its own inode, when the content says so.
         * A shrunk file waits (kout.cand set, still undecided) until no copy
         * is found: the copy holds the records not yet read. A descriptor
         * pins its inode: a closed file recorded on the inode of an open one
         * is stale, whatever its bytes say. */
        for (size_t i = 0; i < nk; i++) {
                const struct rc_known *kn = &in->known[i];
                if (pinned_by_other(in, i)) {
                        kout[i].release = true;
                        continue;
                }
                for (size_t k = 0; k < nc; k++) {
                        if (!same_inode(kn, &in->cand[k]))
                                continue;
                        if (cout[k].fate != RC_C_UNDECIDED) {
                                /* another known file is on it: not this one */
                                kout[i].release = true;
                                break;
                        }
                        if (!kn->open && !kn->finished && copy_of_rewritten(in, i, k)) {
                                /* the copy a copy-and-truncate just made, on
                                 * the inode of a file gone before it: the
                                 * bytes say whose it is */
                                kout[i].release = true;
                                break;
                        }
                        enum rc_rel r = in->relate(in->ctx, i, k, -1);
                        if (r == RC_REL_SAME || r == RC_REL_BLOCKED) {
                                kout[i].fate = r == RC_REL_SAME ? RC_ON : RC_BLOCKED;
                                kout[i].cand = (long)k;
                                cout[k] = (struct rc_cout){RC_C_KNOWN, (long)i};
                        } else if (r == RC_REL_TRUNCATED && !kn->finished) {
                                kout[i].cand = (long)k;
                        } else {
                                /* another file got its inode */
                                kout[i].release = true;
                        }
                        break;
                }
        }

        /* 2: a copy, among the candidates nobody is on, newest first (the
         * copy a rotation just made is the newest rotated file). A file
         * still open and not rewritten is read through its descriptor: the
         * copy only names it. */
        for (size_t i = 0; i < nk; i++) {
                const struct rc_known *kn = &in->known[i];
                if (kout[i].fate != RC_UNDECIDED)
                        continue;
                for (size_t j = nc; j-- > 0;) {
                        const struct rc_cand *c = &in->cand[j];
                        /* the live path holds what the writer writes now,
                         * never a copy of an older file */
                        if (cout[j].fate != RC_C_UNDECIDED || (long)j == kout[i].cand || c->live ||
                            !size_fits(kn, c) || same_inode(kn, c))
                                continue;
                        enum rc_rel r = in->relate(in->ctx, i, j, -1);
                        kout[i].maybe = kout[i].maybe || r == RC_REL_PREFIX;
                        if (r != RC_REL_COPY)
                                continue;
                        if (kn->open && !kn->rewritten) {
                                kout[i].fate = RC_OPEN;
                                kout[i].cand = -1;
                                kout[i].copy = (long)j;
                                cout[j] = (struct rc_cout){RC_C_COPY_OF, (long)i};
                        } else {
                                kout[i].fate = RC_COPIED;
                                kout[i].cand = (long)j;
                                cout[j] = (struct rc_cout){RC_C_KNOWN, (long)i};
                        }
                        break;
                }
        }

        /* 3: shrunk on its own inode, no copy found: read it again from 0 */
        for (size_t i = 0; i < nk; i++) {
                long k = kout[i].cand;
                if (kout[i].fate != RC_UNDECIDED || k < 0)
                        continue;
                if (cout[k].fate == RC_C_UNDECIDED) {
                        kout[i].fate = RC_SHRUNK;
                        cout[k] = (struct rc_cout){RC_C_KNOWN, (long)i};
                } else {
                        kout[i].cand = -1;
                }
        }

        /* 4: known files not found */
        for (size_t i = 0; i < nk; i++) {
                const struct rc_known *kn = &in->known[i];
                if (kout[i].fate != RC_UNDECIDED)
                        continue;
                if (kn->open)
                        kout[i].fate = RC_OPEN;
                else if (kn->finished)
                        kout[i].fate = RC_DONE_AWAY;
                else if (in->look_failed || kout[i].maybe)
                        kout[i].fate = RC_OWED;
                else
                        kout[i].fate = RC_GONE;
                for (size_t k = 0; k < nc && !kn->open; k++) {
                        if (same_inode(kn, &in->cand[k]))
                                kout[i].release = true;
                }
        }

        /* 5 and 6: candidates nobody is on; the live file first. Long
         * before the source's last record, or before the source was ever
         * read, a file is history and is not opened at all. */
        for (size_t k = 0; k < nc; k++) {
                if (in->cand[k].live && cout[k].fate == RC_C_UNDECIDED)
                        cout[k].fate = RC_C_LIVE_NEW;
        }
        for (size_t k = 0; k < nc; k++) {
                const struct rc_cand *c = &in->cand[k];
                if (cout[k].fate != RC_C_UNDECIDED)
                        continue;
                if (in->source_known ? c->mtime_s < in->watermark - RC_MARGIN_S
                                     : c->mtime_ns < in->watching_since_ns) {
                        cout[k].fate = RC_C_HISTORY;
                        continue;
                }
                bool young = !c->waiting_since || c->waiting_since >= in->now - RC_WAIT_S;
                if (c->size == 0) {
                        /* nothing to read yet, nothing to tell it by */
                        cout[k].fate = young ? RC_C_WAIT : RC_C_HISTORY;
                        continue;
                }
                bool prefix = false;
                for (size_t i = 0; i < nk; i++) {
                        const struct rc_known *kn = &in->known[i];
                        enum rc_fate f = kout[i].fate;
                        bool owed_maybe = f == RC_OWED && kout[i].maybe;
                        if (kn->finished || kout[i].copy >= 0 ||
                            (f != RC_ON && f != RC_BLOCKED && f != RC_OPEN && !owed_maybe))
                                continue;
                        if (owed_maybe) {
                                /* maybe its copy: told when it can be read */
                                prefix = prefix || in->relate(in->ctx, i, k, -1) == RC_REL_PREFIX;
                                continue;
                        }
                        enum rc_rel r = in->relate(in->ctx, i, k, f == RC_OPEN ? -1 : kout[i].cand);
                        if (r == RC_REL_COPY) {
                                kout[i].copy = (long)k;
                                cout[k] = (struct rc_cout){RC_C_COPY_OF, (long)i};
                                break;
                        }
                        prefix = prefix || r == RC_REL_PREFIX;
                }
                /* a copy of the live file, new in this look (move-to's
                 * copy made before the daemon ever saw the file) */
                for (size_t l = 0; l < nc && cout[k].fate == RC_C_UNDECIDED; l++) {
                        if (!in->cand[l].live || cout[l].fate != RC_C_LIVE_NEW)
                                continue;
                        enum rc_rel r = in->relate(in->ctx, RC_NO_KNOWN, k, (long)l);
                        if (r == RC_REL_COPY)
                                cout[k] = (struct rc_cout){RC_C_COPY_OF, -1};
                        prefix = prefix || r == RC_REL_PREFIX;
                }
                if (cout[k].fate == RC_C_UNDECIDED)
                        cout[k].fate = prefix && young ? RC_C_WAIT : RC_C_NEW;
        }
}

const char *rc_fate_name(enum rc_fate f)
{
        static const char *const names[] = {"undecided", "on",   "copied",    "shrunk", "blocked",
                                            "open",      "owed", "done-away", "gone"};
        return (unsigned)f < sizeof names / sizeof names[0] ? names[f] : "?";
}

const char *rc_cfate_name(enum rc_cfate f)
{
        static const char *const names[] = {"undecided", "known",   "copy-of", "new",
                                            "live-new",  "history", "wait"};
        return (unsigned)f < sizeof names / sizeof names[0] ? names[f] : "?";
}
