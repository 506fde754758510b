/* Bounce classification: an Aho–Corasick automaton over the operator's
 * patterns, then PowerMTA's bounceCat.
 *
 * Why our own automaton: Debian packages no small C multi-pattern matcher.
 * The candidates are Hyperscan/Vectorscan (libhyperscan-dev,
 * libvectorscan-dev): a regex engine of several MiB with a C++ runtime, whose
 * scratch space must be allocated per thread (so the classifier could not
 * simply be shared const), and, for Hyperscan, x86 only. The rest are Python
 * or Rust crates. A literal-only Aho–Corasick is a few hundred lines.
 *
 * Why this shape:
 * - Budget: ~0.4 µs for ~150 bytes of DSN text, i.e. a few ns a byte. A
 *   substring search per pattern per record (600 of them) is far over it; an
 *   automaton reads each byte once whatever the number of patterns.
 * - Alphabet: every byte is mapped to a class; class 0 is "occurs in no
 *   pattern" (it always leads back to the root), classes 1..k are the distinct
 *   bytes of the lowercased patterns, and 'A'..'Z' share the class of 'a'..'z'
 *   (ASCII case folding; bytes >= 0x80 keep their own class). Octeth-style
 *   patterns use ~40-50 distinct bytes, so a row has ~45 entries, not 256.
 * - Transitions: the shallowest states (all of them for an Octeth-sized file)
 *   get a dense row holding the complete goto function (failure links folded
 *   in), so a step is one load. A state is named by its row's offset, so no
 *   multiply sits on the loop's chain of dependent loads, and rows are laid
 *   out depth first, so a scan that follows a pattern reads neighbouring rows.
 *   Measured with 600 Octeth-style patterns (bench/classify_bench.c): ~9,000
 *   states × 45 entries × 4 bytes = 1.6 MiB, ~2.2 ns a byte.
 * - The dense rows are capped (CLASSIFY_DENSE_MAX_BYTES, 4 MiB) so that a
 *   huge pattern file cannot take the 16 MiB RSS target with it: states past
 *   the cap keep only their own edges, sorted, and a failure link (17 bytes a
 *   state), and are walked the classic way until a dense state is reached
 *   (failure links lead to shallower states, and the root is dense, so the
 *   walk ends). All-sparse would cost ~4 ns a byte for 0.15 MiB.
 * - Matches: each state knows the best pattern that ends there, its own or,
 *   through the dictionary suffix link, the best one of its longest proper
 *   suffix state (a terminal state's own pattern is the longest of the
 *   patterns ending there, so nothing on its suffix chain can beat it). That
 *   folds every output link in at build time: every match, nested or
 *   overlapping, is seen without walking the chain per byte. "Best" is a rank:
 *   patterns sorted by length descending, then line ascending, so the smaller
 *   rank wins; a dense row keeps its state's rank in one extra entry. Entries
 *   leading to a state with a match carry MATCH_FLAG, so bytes that end no
 *   pattern cost no extra load. */
#include "classify.h"

#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Bytes of dense rows at most. A build-time knob so that the tests can also
 * run the sparse path (compiled with a tiny value). */
#ifndef CLASSIFY_DENSE_MAX_BYTES
#define CLASSIFY_DENSE_MAX_BYTES (4u * 1024 * 1024)
#endif

#define MATCH_FLAG 0x80000000u
#define STATE_MASK 0x7fffffffu
#define NO_RANK    UINT32_MAX
#define NO_NODE    UINT32_MAX

/* State codes are below limit + nstates; CLASSIFY_MAX_TEXT bounds the states
 * and the dense cap bounds limit, so codes fit below the flag. */
_Static_assert(CLASSIFY_MAX_TEXT + CLASSIFY_DENSE_MAX_BYTES / 4 < STATE_MASK,
               "state codes must fit below MATCH_FLAG");

struct pattern {
        uint32_t off; /* into the parser's text buffer */
        uint32_t len;
        uint32_t line;
        uint8_t klass; /* enum bounce_class */
};

struct classifier {
        size_t npatterns;
        uint32_t nstates; /* 0 when there are no patterns */
        uint32_t ndense;  /* states [0, ndense) have a dense row */
        uint32_t width;   /* byte classes, class 0 included */
        uint32_t stride;  /* width + 1: a row's last entry is its state's best rank */
        uint32_t limit;   /* ndense * stride: codes below it are dense rows */
        uint8_t cls[256]; /* byte -> class */
        /* States are named by a code (see code_of): a dense state's code is
         * its row's offset, so a step is one load and one add, with no
         * multiply on the loop's critical path. */
        uint32_t *dense; /* ndense * stride: code of the next state | MATCH_FLAG */
        /* States [ndense, nstates), indexed by code - limit. */
        uint32_t *fail;        /* code of the failure state */
        uint32_t *sparse_best; /* rank of the best pattern ending there, or NO_RANK */
        uint32_t *edge_start;  /* nsparse + 1 offsets into edge_cls/edge_to */
        uint8_t *edge_cls;     /* sorted within a state */
        uint32_t *edge_to;     /* code of the next state | MATCH_FLAG */
        uint32_t *rank_line;   /* per rank */
        uint8_t *rank_class;   /* per rank */
        size_t mem;
};

/* ---- Parsing ---------------------------------------------------------- */

struct parser {
        const char *name;
        char *err;
        size_t errlen;
        unsigned lineno;
        struct buf line; /* a line split across reads */
        struct buf text; /* lowercased pattern texts, back to back */
        struct pattern *pats;
        size_t npats, apats;
};

__attribute__((format(printf, 2, 3))) static int fail_at(struct parser *p, const char *fmt, ...)
{
        if (p->err && p->errlen) {
                int n = snprintf(p->err, p->errlen, "%s:%u: ", p->name, p->lineno);
                if (n >= 0 && (size_t)n < p->errlen) {
                        va_list ap;
                        va_start(ap, fmt);
                        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
                        va_end(ap);
                }
        }
        return -1;
}

static void set_err(char *err, size_t errlen, const char *name, const char *what)
{
        if (err && errlen)
                snprintf(err, errlen, "%s: %s", name, what);
}

static int is_space(unsigned char ch)
{
        return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f';
}

static unsigned char lower(unsigned char ch)
{
        return ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch + ('a' - 'A')) : ch;
}

static void trim(const char **s, size_t *n)
{
        while (*n && is_space((unsigned char)(*s)[0])) {
                (*s)++;
                (*n)--;
        }
        while (*n && is_space((unsigned char)(*s)[*n - 1]))
                (*n)--;
}

static void parser_init(struct parser *p, const char *name, char *err, size_t errlen)
{
        memset(p, 0, sizeof(*p));
        p->name = name;
        p->err = err;
        p->errlen = errlen;
        /* +1: a CR before the LF is not part of the line's length. */
        buf_init(&p->line, CLASSIFY_MAX_LINE + 1);
        buf_init(&p->text, CLASSIFY_MAX_TEXT);
}

static void parser_free(struct parser *p)
{
        buf_free(&p->line);
        buf_free(&p->text);
        free(p->pats);
}

/* One line, terminator (LF) already removed. */
static int parse_line(struct parser *p, const char *s, size_t n)
{
        p->lineno++;
        if (n && s[n - 1] == '\r')
                n--;
        if (p->lineno == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
                s += 3; /* a UTF-8 BOM, as Windows editors write it */
                n -= 3;
        }
        if (n > CLASSIFY_MAX_LINE)
                return fail_at(p, "line longer than %u bytes", (unsigned)CLASSIFY_MAX_LINE);
        trim(&s, &n);
        if (n == 0 || s[0] == '#')
                return 0;

        /* The last "==>" separates, so a text may itself contain "==>". */
        size_t sep = n;
        for (size_t i = n >= 3 ? n - 3 + 1 : 0; i-- > 0;) {
                if (memcmp(s + i, "==>", 3) == 0) {
                        sep = i;
                        break;
                }
        }
        if (sep == n)
                return fail_at(p, "expected \"text==>Hard\" or \"text==>Soft\"");
        const char *text = s, *word = s + sep + 3;
        size_t text_len = sep, word_len = n - sep - 3;
        trim(&text, &text_len);
        trim(&word, &word_len);
        if (text_len == 0)
                return fail_at(p, "empty pattern text before \"==>\"");

        uint8_t klass;
        if (word_len == 4 && strncasecmp(word, "hard", 4) == 0) {
                klass = CLASS_HARD;
        } else if (word_len == 4 && strncasecmp(word, "soft", 4) == 0) {
                klass = CLASS_SOFT;
        } else {
                /* Show the word, but never raw control bytes in a log line. */
                char shown[40];
                size_t k = 0;
                for (size_t i = 0; i < word_len && k + 4 < sizeof(shown); i++) {
                        unsigned char ch = (unsigned char)word[i];
                        shown[k++] = ch >= 0x20 && ch < 0x7f && ch != '"' ? (char)ch : '?';
                }
                if (k < word_len) {
                        memcpy(shown + k, "...", 3);
                        k += 3;
                }
                shown[k] = '\0';
                return fail_at(p, "class \"%s\" is neither Hard nor Soft", shown);
        }

        if (p->npats == CLASSIFY_MAX_PATTERNS)
                return fail_at(p, "more than %u patterns", (unsigned)CLASSIFY_MAX_PATTERNS);
        if (p->npats == p->apats) {
                size_t na = p->apats ? p->apats * 2 : 64;
                struct pattern *np = realloc(p->pats, na * sizeof(*np));
                if (!np)
                        return fail_at(p, "out of memory");
                p->pats = np;
                p->apats = na;
        }
        char *dst = buf_reserve(&p->text, text_len);
        if (!dst) {
                if (errno == E2BIG)
                        return fail_at(p, "more than %u bytes of pattern text in all",
                                       (unsigned)CLASSIFY_MAX_TEXT);
                return fail_at(p, "out of memory");
        }
        for (size_t i = 0; i < text_len; i++)
                dst[i] = (char)lower((unsigned char)text[i]);
        p->pats[p->npats++] = (struct pattern){
            .off = (uint32_t)p->text.len,
            .len = (uint32_t)text_len,
            .line = p->lineno,
            .klass = klass,
        };
        buf_commit(&p->text, text_len);
        return 0;
}

/* Feed bytes; complete lines are parsed at once, a partial one is kept. */
static int parser_feed(struct parser *p, const char *data, size_t n)
{
        while (n) {
                const char *nl = memchr(data, '\n', n);
                size_t seg = nl ? (size_t)(nl - data) : n;
                if (nl && p->line.len == 0) {
                        if (parse_line(p, data, seg) < 0)
                                return -1;
                } else {
                        if (buf_append(&p->line, data, seg) < 0) {
                                if (errno != E2BIG)
                                        return fail_at(p, "out of memory");
                                p->lineno++; /* the line being read */
                                return fail_at(p, "line longer than %u bytes",
                                               (unsigned)CLASSIFY_MAX_LINE);
                        }
                        if (nl) {
                                int rc = parse_line(p, p->line.data, p->line.len);
                                buf_reset(&p->line);
                                if (rc < 0)
                                        return -1;
                        }
                }
                if (!nl)
                        break;
                data = nl + 1;
                n -= seg + 1;
        }
        return 0;
}

static int parser_finish(struct parser *p)
{
        /* A last line without its LF. */
        if (p->line.len)
                return parse_line(p, p->line.data, p->line.len);
        return 0;
}

/* ---- Building the automaton ------------------------------------------- */

struct rank_key {
        uint32_t len, line, idx;
};

static int rank_cmp(const void *a, const void *b)
{
        const struct rank_key *x = a, *y = b;
        if (x->len != y->len)
                return x->len > y->len ? -1 : 1;
        if (x->line != y->line)
                return x->line < y->line ? -1 : 1;
        return 0;
}

/* While building, states are numbered breadth first; dense rows are laid out
 * depth first (row_of), so that the states along one pattern, which a scan
 * visits one after the other, have neighbouring rows. */
struct layout {
        const struct classifier *c;
        uint32_t *row_of;   /* state -> row, for the ndense dense states */
        uint32_t *state_at; /* row -> state */
};

static uint32_t code_of(const struct layout *l, uint32_t s)
{
        const struct classifier *c = l->c;
        return s < c->ndense ? l->row_of[s] * c->stride : c->limit + (s - c->ndense);
}

static uint32_t state_of(const struct layout *l, uint32_t code)
{
        const struct classifier *c = l->c;
        return code < c->limit ? l->state_at[code / c->stride] : c->ndense + (code - c->limit);
}

/* The goto function with failure links followed, from a sparse state. */
static uint32_t step_sparse(const struct classifier *c, uint32_t code, unsigned k)
{
        while (code >= c->limit) {
                uint32_t i = code - c->limit;
                for (uint32_t j = c->edge_start[i]; j < c->edge_start[i + 1]; j++) {
                        if (c->edge_cls[j] == k)
                                return c->edge_to[j];
                        if (c->edge_cls[j] > k)
                                break;
                }
                code = c->fail[i];
        }
        return c->dense[code + k];
}

/* One step: the next state's code, with MATCH_FLAG when a pattern ends there. */
static inline uint32_t step(const struct classifier *c, uint32_t code, unsigned k)
{
        if (code < c->limit)
                return c->dense[code + k];
        return step_sparse(c, code, k);
}

/* The trie as first built: children in a sibling list sorted by class. */
struct trie {
        uint32_t *first, *next, *term;
        uint8_t *cls;
        uint32_t n;
};

static int build(struct classifier *c, const struct parser *p)
{
        int rc = -1;
        c->npatterns = p->npats;
        c->mem = sizeof(*c);
        if (p->npats == 0)
                return 0;

        /* Byte classes, in byte order; upper case shares lower case's class. */
        uint8_t used[256] = {0};
        const unsigned char *text = (const unsigned char *)p->text.data;
        for (size_t i = 0; i < p->text.len; i++)
                used[text[i]] = 1;
        unsigned width = 1;
        for (unsigned b = 0; b < 256; b++)
                if (used[b])
                        c->cls[b] = (uint8_t)width++;
        for (unsigned b = 'A'; b <= 'Z'; b++)
                c->cls[b] = c->cls[b + ('a' - 'A')];
        c->width = width; /* at most 256 - 26 + 1: uint8_t classes suffice */

        /* The trie: at most one node per pattern byte, plus the root. */
        size_t maxn = p->text.len + 1;
        struct trie t = {
            .first = malloc(maxn * sizeof(uint32_t)),
            .next = malloc(maxn * sizeof(uint32_t)),
            .term = malloc(maxn * sizeof(uint32_t)),
            .cls = malloc(maxn),
            .n = 1,
        };
        struct rank_key *keys = malloc(p->npats * sizeof(*keys));
        uint32_t *rank_of = malloc(p->npats * sizeof(uint32_t));
        uint32_t *order = NULL, *newid = NULL, *fail = NULL, *best = NULL;
        struct layout l = {.c = c};
        if (!t.first || !t.next || !t.term || !t.cls || !keys || !rank_of)
                goto out;
        t.first[0] = t.next[0] = t.term[0] = NO_NODE;
        t.cls[0] = 0;
        for (size_t i = 0; i < p->npats; i++) {
                const struct pattern *pt = &p->pats[i];
                uint32_t u = 0;
                for (uint32_t j = 0; j < pt->len; j++) {
                        uint8_t k = c->cls[text[pt->off + j]];
                        uint32_t prev = NO_NODE, v = t.first[u];
                        while (v != NO_NODE && t.cls[v] < k) {
                                prev = v;
                                v = t.next[v];
                        }
                        if (v == NO_NODE || t.cls[v] != k) {
                                uint32_t nn = t.n++;
                                t.cls[nn] = k;
                                t.first[nn] = NO_NODE;
                                t.term[nn] = NO_NODE;
                                t.next[nn] = v;
                                if (prev == NO_NODE)
                                        t.first[u] = nn;
                                else
                                        t.next[prev] = nn;
                                v = nn;
                        }
                        u = v;
                }
                /* A repeated text keeps its first line: ties go to it. */
                if (t.term[u] == NO_NODE)
                        t.term[u] = (uint32_t)i;
        }

        for (size_t i = 0; i < p->npats; i++)
                keys[i] = (struct rank_key){p->pats[i].len, p->pats[i].line, (uint32_t)i};
        qsort(keys, p->npats, sizeof(*keys), rank_cmp);
        c->rank_line = malloc(p->npats * sizeof(uint32_t));
        c->rank_class = malloc(p->npats);
        if (!c->rank_line || !c->rank_class)
                goto out;
        for (size_t r = 0; r < p->npats; r++) {
                rank_of[keys[r].idx] = (uint32_t)r;
                c->rank_line[r] = p->pats[keys[r].idx].line;
                c->rank_class[r] = p->pats[keys[r].idx].klass;
        }

        /* Breadth-first numbering: depth never decreases with the number. */
        uint32_t n = t.n;
        order = malloc(n * sizeof(uint32_t));
        newid = malloc(n * sizeof(uint32_t));
        fail = malloc(n * sizeof(uint32_t));
        best = malloc(n * sizeof(uint32_t));
        if (!order || !newid || !fail || !best)
                goto out;
        order[0] = 0;
        newid[0] = 0;
        for (uint32_t head = 0, tail = 1; head < tail; head++)
                for (uint32_t v = t.first[order[head]]; v != NO_NODE; v = t.next[v]) {
                        newid[v] = tail;
                        order[tail++] = v;
                }
        c->nstates = n;

        c->stride = width + 1;
        size_t rows = CLASSIFY_DENSE_MAX_BYTES / ((size_t)c->stride * sizeof(uint32_t));
        c->ndense = (uint32_t)(rows < 1 ? 1 : rows > n ? n : rows);
        c->limit = c->ndense * c->stride;
        uint32_t nsparse = n - c->ndense;
        /* Every node but the root is an edge of its parent. */
        size_t nedges = 0;
        for (uint32_t s = c->ndense; s < n; s++)
                for (uint32_t v = t.first[order[s]]; v != NO_NODE; v = t.next[v])
                        nedges++;
        l.row_of = malloc((size_t)c->ndense * sizeof(uint32_t));
        l.state_at = malloc((size_t)c->ndense * sizeof(uint32_t));
        c->dense = calloc((size_t)c->limit, sizeof(uint32_t));
        c->fail = malloc(((size_t)nsparse + 1) * sizeof(uint32_t));
        c->sparse_best = malloc(((size_t)nsparse + 1) * sizeof(uint32_t));
        c->edge_start = malloc(((size_t)nsparse + 1) * sizeof(uint32_t));
        c->edge_cls = malloc(nedges + 1);
        c->edge_to = malloc((nedges + 1) * sizeof(uint32_t));
        if (!l.row_of || !l.state_at || !c->dense || !c->fail || !c->sparse_best ||
            !c->edge_start || !c->edge_cls || !c->edge_to)
                goto out;
        /* Rows in depth-first order of the dense states (a breadth-first
         * prefix, hence a subtree holding the root). The root comes first:
         * its code is 0, where every scan starts. `best`, not filled yet,
         * serves as the stack. */
        {
                uint32_t *stack = best, top = 0, row = 0;
                stack[top++] = 0;
                while (top) {
                        uint32_t u = stack[--top];
                        l.row_of[newid[u]] = row;
                        l.state_at[row++] = newid[u];
                        for (uint32_t v = t.first[u]; v != NO_NODE; v = t.next[v])
                                if (newid[v] < c->ndense)
                                        stack[top++] = v;
                }
        }
        size_t e = 0;
        for (uint32_t s = c->ndense; s < n; s++) {
                c->edge_start[s - c->ndense] = (uint32_t)e;
                for (uint32_t v = t.first[order[s]]; v != NO_NODE; v = t.next[v])
                        c->edge_cls[e++] = t.cls[v];
        }
        c->edge_start[nsparse] = (uint32_t)e;

        /* Failure links, best matches and rows, in breadth-first order: all a
         * state needs (its parent's failure state and that state's row or
         * edges) has a smaller number and is complete already. */
        fail[0] = 0;
        best[0] = NO_RANK;
        for (uint32_t s = 0; s < n; s++) {
                uint32_t *row = NULL, j = 0;
                if (s < c->ndense) {
                        row = c->dense + (size_t)l.row_of[s] * c->stride;
                        if (s != 0)
                                memcpy(row, c->dense + (size_t)l.row_of[fail[s]] * c->stride,
                                       width * sizeof(uint32_t));
                        row[width] = best[s];
                } else {
                        c->fail[s - c->ndense] = code_of(&l, fail[s]);
                        c->sparse_best[s - c->ndense] = best[s];
                        j = c->edge_start[s - c->ndense];
                }
                for (uint32_t v = t.first[order[s]]; v != NO_NODE; v = t.next[v]) {
                        uint32_t ns = newid[v];
                        fail[ns] = s == 0 ? 0
                                          : state_of(&l, step(c, code_of(&l, fail[s]), t.cls[v]) &
                                                             STATE_MASK);
                        best[ns] = t.term[v] != NO_NODE ? rank_of[t.term[v]] : best[fail[ns]];
                        uint32_t to = code_of(&l, ns) | (best[ns] != NO_RANK ? MATCH_FLAG : 0);
                        if (row)
                                row[t.cls[v]] = to;
                        else
                                c->edge_to[j++] = to;
                }
        }

        c->mem += (size_t)c->limit * sizeof(uint32_t) +
                  ((size_t)nsparse + 1) * 3 * sizeof(uint32_t) + (nedges + 1) * 5 +
                  p->npats * (sizeof(uint32_t) + 1);
        rc = 0;
out:
        free(t.first);
        free(t.next);
        free(t.term);
        free(t.cls);
        free(keys);
        free(rank_of);
        free(order);
        free(newid);
        free(fail);
        free(best);
        free(l.row_of);
        free(l.state_at);
        return rc;
}

/* ---- Loading ---------------------------------------------------------- */

static int finish_load(struct classifier **out, struct parser *p, const char *name, char *err,
                       size_t errlen)
{
        struct classifier *c = calloc(1, sizeof(*c));
        if (!c || build(c, p) < 0) {
                classifier_free(c);
                set_err(err, errlen, name, "out of memory");
                return -1;
        }
        *out = c;
        return 0;
}

int classifier_load_mem(struct classifier **out, const char *name, const char *text, size_t len,
                        char *err, size_t errlen)
{
        *out = NULL;
        struct parser p;
        parser_init(&p, name, err, errlen);
        int rc = -1;
        if ((len == 0 || parser_feed(&p, text, len) == 0) && parser_finish(&p) == 0)
                rc = finish_load(out, &p, name, err, errlen);
        parser_free(&p);
        return rc;
}

int classifier_load(struct classifier **out, const char *path, char *err, size_t errlen)
{
        *out = NULL;
        if (!path)
                return classifier_load_mem(out, "(no pattern file)", "", 0, err, errlen);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                set_err(err, errlen, path, strerror(errno));
                return -1;
        }
        struct parser p;
        parser_init(&p, path, err, errlen);
        int rc = -1;
        /* Read in chunks: memory is bounded by the line cap, whatever the
         * file's size. */
        char chunk[16384];
        for (;;) {
                ssize_t r = read(fd, chunk, sizeof(chunk));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0) {
                        set_err(err, errlen, path, strerror(errno));
                        goto out;
                }
                if (r == 0)
                        break;
                if (parser_feed(&p, chunk, (size_t)r) < 0)
                        goto out;
        }
        if (parser_finish(&p) == 0)
                rc = finish_load(out, &p, path, err, errlen);
out:
        close(fd);
        parser_free(&p);
        return rc;
}

void classifier_free(struct classifier *c)
{
        if (!c)
                return;
        free(c->dense);
        free(c->fail);
        free(c->edge_start);
        free(c->edge_cls);
        free(c->edge_to);
        free(c->sparse_best);
        free(c->rank_line);
        free(c->rank_class);
        free(c);
}

size_t classifier_npatterns(const struct classifier *c)
{
        return c ? c->npatterns : 0;
}

size_t classifier_memory(const struct classifier *c)
{
        return c ? c->mem : 0;
}

/* ---- Classifying ------------------------------------------------------ */

/* Feed one byte to one scan. */
static inline void advance(const struct classifier *c, uint32_t *code, unsigned char ch,
                           uint32_t *best)
{
        uint32_t to = step(c, *code, c->cls[ch]);
        *code = to & STATE_MASK;
        if (to & MATCH_FLAG) {
                uint32_t r = *code < c->limit ? c->dense[*code + c->width]
                                              : c->sparse_best[*code - c->limit];
                if (r < *best)
                        *best = r;
        }
}

/* The smallest rank of a pattern occurring in a or in b, or NO_RANK.
 *
 * The two texts are scanned in lockstep as two independent automaton walks:
 * a walk is a chain of dependent loads (each step needs the previous state),
 * so one walk leaves the CPU waiting on load latency, and a second one in the
 * same loop runs in that shadow almost for free. Rank 0 is the longest
 * pattern: once it is found nothing can beat it, so the scan stops. */
static uint32_t scan(const struct classifier *c, const unsigned char *a, size_t na,
                     const unsigned char *b, size_t nb)
{
        uint32_t best = NO_RANK, ca = 0, cb = 0;
        size_t i = 0, m = na < nb ? na : nb;
        for (; i < m && best != 0; i++) {
                advance(c, &ca, a[i], &best);
                advance(c, &cb, b[i], &best);
        }
        for (size_t j = i; j < na && best != 0; j++)
                advance(c, &ca, a[j], &best);
        for (size_t j = i; j < nb && best != 0; j++)
                advance(c, &cb, b[j], &best);
        return best;
}

static const struct {
        const char *name;
        enum bounce_class k;
} categories[] = {
    {"bad-mailbox", CLASS_HARD},         {"bad-domain", CLASS_HARD},
    {"inactive-mailbox", CLASS_HARD},    {"quota-issues", CLASS_SOFT},
    {"no-answer-from-host", CLASS_SOFT}, {"relaying-issues", CLASS_SOFT},
    {"routing-errors", CLASS_SOFT},      {"bad-connection", CLASS_SOFT},
    {"message-expired", CLASS_SOFT},
};

static enum bounce_class from_category(const char *cat, size_t len)
{
        if (!cat)
                return CLASS_NONE;
        for (size_t i = 0; i < sizeof(categories) / sizeof(categories[0]); i++)
                if (strlen(categories[i].name) == len &&
                    strncasecmp(categories[i].name, cat, len) == 0)
                        return categories[i].k;
        return CLASS_NONE;
}

enum bounce_class classify_bounce(const struct classifier *c, const char *diag, size_t diag_len,
                                  const char *status, size_t status_len, const char *cat,
                                  size_t cat_len, unsigned *line)
{
        if (c && c->nstates) {
                uint32_t best = scan(c, (const unsigned char *)diag, diag ? diag_len : 0,
                                     (const unsigned char *)status, status ? status_len : 0);
                if (best != NO_RANK) {
                        if (line)
                                *line = c->rank_line[best];
                        return (enum bounce_class)c->rank_class[best];
                }
        }
        if (line)
                *line = 0;
        return from_category(cat, cat_len);
}

const char *bounce_class_name(enum bounce_class k)
{
        switch (k) {
        case CLASS_HARD:
                return "hard";
        case CLASS_SOFT:
                return "soft";
        case CLASS_NONE:
                break;
        }
        return NULL;
}
