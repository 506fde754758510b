#include "archive.h"

#include "identity.h"

#include <string.h>
#include <xxhash.h>

static bool all_digits(const char *p, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                if (p[i] < '0' || p[i] > '9')
                        return false;
        }
        return true;
}

static int64_t num(const char *p, size_t n)
{
        int64_t v = 0;
        for (size_t i = 0; i < n; i++)
                v = v * 10 + (p[i] - '0');
        return v;
}

int64_t archive_days(int y, int m, int d)
{
        static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        if (y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1)
                return ARCHIVE_NO_DAY;
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        if (d > mdays[m - 1] + (m == 2 && leap))
                return ARCHIVE_NO_DAY;
        /* days from civil (Howard Hinnant's algorithm): no time zone, no
         * libc, the same answer everywhere */
        int64_t yy = m <= 2 ? y - 1 : y;
        int64_t era = yy / 400;
        int64_t yoe = yy - era * 400;
        int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
}

/* "YYYY?MM?DD" with `sep` between the parts (0: none) at p. */
static int64_t date_at(const char *p, size_t n, char sep)
{
        size_t w = sep ? 10 : 8;
        if (n < w)
                return ARCHIVE_NO_DAY;
        const char *mo = p + (sep ? 5 : 4), *dd = p + (sep ? 8 : 6);
        if (!all_digits(p, 4) || !all_digits(mo, 2) || !all_digits(dd, 2) ||
            (sep && (p[4] != sep || p[7] != sep)))
                return ARCHIVE_NO_DAY;
        return archive_days((int)num(p, 4), (int)num(mo, 2), (int)num(dd, 2));
}

/* What follows the stem, `.gz` already taken off. */
static enum archive_kind parse_rest(const char *r, size_t n, struct archive_name *out)
{
        /* -YYYY-MM-DD-NNNN.csv */
        if (n >= 20 && r[0] == '-' && memcmp(r + n - 4, ".csv", 4) == 0 && r[11] == '-') {
                size_t sl = n - 4 - 12;
                int64_t day = date_at(r + 1, 10, '-');
                if (day != ARCHIVE_NO_DAY && sl >= 4 && sl <= 9 && all_digits(r + 12, sl)) {
                        out->day = day;
                        out->seq = num(r + 12, sl);
                        return ARCHIVE_PMTA;
                }
        }
        if (n < 4 || memcmp(r, ".csv", 4) != 0)
                return ARCHIVE_NONE;
        if (n == 4)
                return ARCHIVE_LIVE;
        /* .csv.N: digits only (not a tool's .csv.tmp) */
        if (r[4] == '.' && n - 5 >= 1 && n - 5 <= 9 && all_digits(r + 5, n - 5)) {
                out->seq = num(r + 5, n - 5);
                return ARCHIVE_NUMBERED;
        }
        if (r[4] != '-')
                return ARCHIVE_NONE;
        /* .csv-YYYYMMDD or .csv-YYYY-MM-DD, then maybe digits or -digits */
        const char *d = r + 5;
        size_t dn = n - 5;
        size_t w = 8;
        int64_t day = date_at(d, dn, 0);
        if (day == ARCHIVE_NO_DAY) {
                w = 10;
                day = date_at(d, dn, '-');
        }
        if (day == ARCHIVE_NO_DAY)
                return ARCHIVE_NONE;
        const char *x = d + w;
        size_t xn = dn - w;
        if (xn && *x == '-')
                x++, xn--;
        if ((dn > w && xn == 0) || xn > 18 || !all_digits(x, xn))
                return ARCHIVE_NONE;
        out->day = day;
        out->seq = num(x, xn);
        return ARCHIVE_DATED;
}

/* Where the stem could end in `name` (n bytes, .gz off) for each form, the
 * first that parses: used without a stem. */
static enum archive_kind parse_any(const char *name, size_t n, struct archive_name *out)
{
        size_t cut[4];
        size_t k = 0;
        if (n > 20 && memcmp(name + n - 4, ".csv", 4) == 0) {
                /* -YYYY-MM-DD-: the sequence runs from the last '-' */
                const char *dash = memrchr(name, '-', n - 4);
                if (dash && (size_t)(dash - name) >= 12)
                        cut[k++] = (size_t)(dash - name) - 11;
        }
        for (size_t i = n; i-- > 0 && k < 4;) {
                /* the last ".csv" followed by '.', '-' or the end */
                if (i + 4 <= n && memcmp(name + i, ".csv", 4) == 0 &&
                    (i + 4 == n || name[i + 4] == '.' || name[i + 4] == '-')) {
                        cut[k++] = i;
                        break;
                }
        }
        for (size_t j = 0; j < k; j++) {
                if (cut[j] == 0)
                        continue;
                struct archive_name a = *out;
                enum archive_kind kind = parse_rest(name + cut[j], n - cut[j], &a);
                if (kind != ARCHIVE_NONE) {
                        *out = a;
                        out->stem_len = cut[j];
                        return kind;
                }
        }
        return ARCHIVE_NONE;
}

enum archive_kind archive_parse(const char *stem, const char *name, struct archive_name *out)
{
        *out = (struct archive_name){.day = ARCHIVE_NO_DAY};
        size_t n = strlen(name);
        if (n > 3 && memcmp(name + n - 3, ".gz", 3) == 0) {
                out->gz = true;
                n -= 3;
        }
        enum archive_kind k = ARCHIVE_NONE;
        if (!stem) {
                k = parse_any(name, n, out);
        } else {
                size_t sl = strlen(stem);
                if (sl && sl < n && memcmp(name, stem, sl) == 0) {
                        k = parse_rest(name + sl, n - sl, out);
                        out->stem_len = sl;
                }
        }
        if (k == ARCHIVE_NONE)
                *out = (struct archive_name){.day = ARCHIVE_NO_DAY};
        out->kind = k;
        return k;
}

bool archive_is_rotated(const char *stem, const char *name)
{
        struct archive_name a;
        enum archive_kind k = archive_parse(stem, name, &a);
        return k == ARCHIVE_PMTA || k == ARCHIVE_NUMBERED || k == ARCHIVE_DATED;
}

struct archive_key archive_key_of(const struct archive_name *n, int64_t mtime_ns, int64_t mtime_day,
                                  const char *name)
{
        struct archive_key k = {.day = n->day, .seq = n->seq, .mtime_ns = mtime_ns, .name = name};
        switch (n->kind) {
        case ARCHIVE_NUMBERED:
                /* no date: before the dated ones, the largest N (the oldest)
                 * first */
                k.day = ARCHIVE_NO_DAY;
                k.seq = -n->seq;
                break;
        case ARCHIVE_LIVE:
        case ARCHIVE_NONE:
                /* nothing in the name: its day by mtime, after the day's
                 * dated archives */
                k.day = mtime_day;
                k.seq = INT64_MAX;
                break;
        default:
                break;
        }
        return k;
}

static int cmp64(int64_t a, int64_t b)
{
        return a < b ? -1 : a > b;
}

int archive_cmp(const struct archive_key *a, const struct archive_key *b)
{
        int c = cmp64(a->day, b->day);
        if (!c)
                c = cmp64(a->seq, b->seq);
        if (!c)
                c = cmp64(a->mtime_ns, b->mtime_ns);
        if (!c)
                c = strcmp(a->name ? a->name : "", b->name ? b->name : "");
        return c;
}

size_t archive_id_len(const void *head, size_t n, bool at_end)
{
        size_t want = IDENTITY_FP_MAX;
        const char *nl = memchr(head, '\n', n);
        if (!nl)
                want = ARCHIVE_ID_MAX; /* the first line goes on: more is needed */
        else if ((size_t)(nl - (const char *)head) + 1 + ARCHIVE_ID_PAST > want)
                want = (size_t)(nl - (const char *)head) + 1 + ARCHIVE_ID_PAST;
        if (want > ARCHIVE_ID_MAX)
                want = ARCHIVE_ID_MAX;
        if (at_end && want > n)
                want = n;
        return want;
}

struct archive_id archive_id_of(const void *head, size_t n)
{
        size_t len = archive_id_len(head, n, true);
        if (n > len)
                n = len;
        struct archive_id id = {(uint64_t)XXH3_64bits(head, n), (uint32_t)n};
        return id;
}
