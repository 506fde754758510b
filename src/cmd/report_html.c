#include "report_html.h"

#include "event.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- text ---- */

/* Text from the files or the command line as HTML text or an attribute
 * value: invalid UTF-8 replaced, markup characters and quotes as
 * entities, control bytes as spaces. */
static void esc(FILE *out, const char *s, size_t n)
{
        char stack[3 * 512];
        char *tmp = stack;
        if (n > 512) {
                tmp = malloc(3 * n);
                if (!tmp) {
                        /* only the command line and paths are this long */
                        tmp = stack;
                        n = 512;
                }
        }
        size_t m = event_utf8_sanitize(tmp, s, n);
        size_t from = 0;
        for (size_t i = 0; i < m; i++) {
                unsigned char c = (unsigned char)tmp[i];
                const char *e = c == '&'                ? "&amp;"
                                : c == '<'              ? "&lt;"
                                : c == '>'              ? "&gt;"
                                : c == '"'              ? "&quot;"
                                : c == '\''             ? "&#39;"
                                : c < 0x20 || c == 0x7f ? " "
                                                        : NULL;
                if (!e)
                        continue;
                fwrite(tmp + from, 1, i - from, out);
                fputs(e, out);
                from = i + 1;
        }
        fwrite(tmp + from, 1, m - from, out);
        if (tmp != stack)
                free(tmp);
}

static void escs(FILE *out, const char *s)
{
        esc(out, s, strlen(s));
}

/* A count with thousands separated: 1,234,567. */
static void num(FILE *out, uint64_t v)
{
        char d[32];
        int n = snprintf(d, sizeof d, "%llu", (unsigned long long)v);
        for (int i = 0; i < n; i++) {
                if (i > 0 && (n - i) % 3 == 0)
                        fputc(',', out);
                fputc(d[i], out);
        }
}

/* A count on an axis, short: 950, 9,500, 95k, 9.5M. */
static void num_short(FILE *out, uint64_t v)
{
        if (v < 10000)
                num(out, v);
        else if (v < 1000000)
                fprintf(out, v % 1000 ? "%.1fk" : "%.0fk", (double)v / 1e3);
        else
                fprintf(out, v % 1000000 ? "%.1fM" : "%.0fM", (double)v / 1e6);
}

/* Times as the page shows them (UTC). */
enum tfmt { T_DAY, T_MINUTE, T_MINUTE_UTC, T_HOUR, T_MONTH_DAY };

static void utc(int64_t t, enum tfmt f, char *out, size_t size)
{
        time_t tt = (time_t)t;
        struct tm tm;
        size_t n = 0;
        if (gmtime_r(&tt, &tm)) {
                /* literal formats, so that the compiler checks them */
                switch (f) {
                case T_DAY:
                        n = strftime(out, size, "%Y-%m-%d", &tm);
                        break;
                case T_MINUTE:
                        n = strftime(out, size, "%Y-%m-%d %H:%M", &tm);
                        break;
                case T_MINUTE_UTC:
                        n = strftime(out, size, "%Y-%m-%d %H:%M UTC", &tm);
                        break;
                case T_HOUR:
                        n = strftime(out, size, "%H:%M", &tm);
                        break;
                case T_MONTH_DAY:
                        n = strftime(out, size, "%m-%d", &tm);
                        break;
                }
        }
        if (n == 0)
                snprintf(out, size, "%lld", (long long)t);
}

static uint64_t total3(const uint64_t n[SERIES_CLASSES])
{
        return n[SERIES_HARD] + n[SERIES_SOFT] + n[SERIES_NONE];
}

/* ---- styles: the Okabe-Ito colours, each with a pattern of its own so
 * that layers stay apart in grey and for colour-blind readers ---- */

struct style {
        const char *id;
        const char *colour;
        const char *mark; /* a path over the colour, NULL: plain */
        const char *ink;  /* the mark's colour: dark on light colours */
};

#define DIAG  "M-2 2L2-2M0 8L8 0M6 10L10 6"
#define RDIAG "M-2 6L2 10M0 0L8 8M6-2L10 2"
#define HORIZ "M0 4H8"
#define VERT  "M4 0V8"
#define CROSS "M0 4H8M4 0V8"
#define DOTS  "M3 3h2v2h-2z"

static const struct style styles[] = {
    {"c0", "#E69F00", NULL, "#000"},
    {"c1", "#56B4E9", DIAG, "#000"},
    {"c2", "#009E73", DOTS, "#fff"},
    {"c3", "#F0E442", HORIZ, "#000"},
    {"c4", "#0072B2", RDIAG, "#fff"},
    {"c5", "#D55E00", CROSS, "#fff"},
    {"c6", "#CC79A7", VERT, "#000"},
    {"co", "#999999", NULL, "#000"},
    /* the classes: colour and mark together unlike any bounceCat's */
    {"kh", "#D55E00", NULL, "#000"},
    {"ks", "#56B4E9", HORIZ, "#000"},
    {"kn", "#BBBBBB", DOTS, "#000"},
};
enum { ST_OTHER = 7, ST_HARD = 8, ST_SOFT = 9, ST_NONE = 10, N_STYLES = 11 };
static const int class_style[SERIES_CLASSES] = {ST_HARD, ST_SOFT, ST_NONE};
static const char *const class_names[SERIES_CLASSES] = {"hard", "soft", "unclassified"};

static void put_defs(FILE *out)
{
        /* one definition for every chart of the page: url(#id) refers to
         * the document, and a zero-sized svg still renders its patterns */
        fputs("<svg class=\"defs\" width=\"0\" height=\"0\" aria-hidden=\"true\"><defs>\n", out);
        for (int i = 0; i < N_STYLES; i++) {
                const struct style *s = &styles[i];
                fprintf(out,
                        "<pattern id=\"%s\" width=\"8\" height=\"8\" "
                        "patternUnits=\"userSpaceOnUse\"><rect width=\"8\" height=\"8\" "
                        "fill=\"%s\"/>",
                        s->id, s->colour);
                if (s->mark)
                        fprintf(out,
                                "<path d=\"%s\" stroke=\"%s\" fill=\"%s\" stroke-width=\"1.3\" "
                                "opacity=\".55\"/>",
                                s->mark, s->ink, s->ink);
                fputs("</pattern>\n", out);
        }
        fputs("</defs></svg>\n", out);
}

static void swatch(FILE *out, int st)
{
        fprintf(out,
                "<svg class=\"sw\" viewBox=\"0 0 16 16\" aria-hidden=\"true\"><rect width=\"16\" "
                "height=\"16\" fill=\"url(#%s)\" stroke=\"#333\" stroke-width=\".8\"/></svg>",
                styles[st].id);
}

/* ---- charts ---- */

struct layer {
        const char *name;
        size_t len;
        int style;
        uint64_t *v; /* a count per bucket */
        uint64_t total;
};

struct chart {
        const char *kind; /* data-chart */
        const char *key;  /* data-key (a domain's chart), or NULL */
        size_t key_len;
        const char *title;
        double w, h, ml, mr, mt, mb;
        int xticks; /* at most this many time labels */
        bool hover; /* a tooltip per bucket */
};

/* The top of the y axis and its step: 1, 2 or 5 times a power of ten, at
 * most five steps. */
static void nice_axis(uint64_t max, uint64_t *top, uint64_t *step)
{
        uint64_t st = 1;
        for (int i = 0; max > 5 * st && st < UINT64_MAX / 10; i++)
                st = i % 3 == 0 ? st * 2 : i % 3 == 1 ? st / 2 * 5 : st * 2;
        *step = st;
        *top = max ? (max + st - 1) / st * st : st;
}

/* Where time labels go: the first width of this ladder at least as wide as
 * a bucket that puts at most `most` labels on the axis. */
static int64_t tick_every(int64_t span, int64_t width, int most)
{
        static const int64_t ladder[] = {3600,    7200,     10800,   21600,   43200,
                                         86400,   172800,   604800,  1209600, 2419200,
                                         7862400, 15724800, 31449600};
        int64_t t = 0;
        for (size_t i = 0; i < sizeof ladder / sizeof ladder[0]; i++) {
                t = ladder[i];
                if (t >= width && span / t <= most)
                        return t;
        }
        while (span / t > most && t < INT64_MAX / 2)
                t *= 2;
        return t;
}

static void hover_line(FILE *out, const struct layer *L, size_t nl, size_t i)
{
        bool first = true;
        for (size_t j = 0; j < nl; j++) {
                if (!L[j].v[i])
                        continue;
                fputs(first ? " (" : ", ", out);
                esc(out, L[j].name, L[j].len);
                fputc(' ', out);
                num(out, L[j].v[i]);
                first = false;
        }
        if (!first)
                fputc(')', out);
}

static void bucket_label(int64_t t, int64_t width, char *out, size_t size)
{
        utc(t, width < 86400 ? T_MINUTE_UTC : T_DAY, out, size);
}

/* A chart of nl layers stacked, over the series' buckets. The layers carry
 * their counts in data attributes, so that what is drawn can be checked. */
static void chart_svg(FILE *out, const struct chart *c, const struct report_series *s,
                      const struct layer *L, size_t nl)
{
        size_t n = series_len(s);
        uint64_t max = 0;
        for (size_t i = 0; i < n; i++) {
                uint64_t sum = 0;
                for (size_t j = 0; j < nl; j++)
                        sum += L[j].v[i];
                if (sum > max)
                        max = sum;
        }
        uint64_t top, step;
        nice_axis(max, &top, &step);
        double x0 = c->ml, x1 = c->w - c->mr, y0 = c->mt, y1 = c->h - c->mb;
        double bw = (x1 - x0) / (double)(n ? n : 1);
        double ky = (y1 - y0) / (double)top;
        fprintf(out, "<svg class=\"chart\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"",
                c->w, c->h);
        escs(out, c->title);
        fprintf(out, "\" data-chart=\"%s\"", c->kind);
        if (c->key) {
                fputs(" data-key=\"", out);
                esc(out, c->key, c->key_len);
                fputc('"', out);
        }
        fprintf(out,
                " data-start=\"%lld\" data-step=\"%lld\" data-buckets=\"%zu\" "
                "data-max=\"%llu\">\n<title>",
                (long long)(n ? series_start(s, 0) : 0), (long long)s->width, n,
                (unsigned long long)max);
        escs(out, c->title);
        fputs("</title>\n<g class=\"axis\">", out);
        for (uint64_t v = 0; v <= top; v += step) {
                double y = y1 - (double)v * ky;
                fprintf(out, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>", x0, x1, y,
                        y);
                fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", x0 - 5, y + 4);
                num_short(out, v);
                fputs("</text>", out);
                if (top - v < step)
                        break;
        }
        fputs("</g>\n", out);

        /* the layers, each a step-shaped area over the ones below it */
        uint64_t *below = calloc(n ? n : 1, sizeof *below);
        for (size_t j = 0; j < nl && below; j++) {
                const struct layer *l = &L[j];
                fputs("<g class=\"series\" data-key=\"", out);
                esc(out, l->name, l->len);
                fprintf(out, "\" data-total=\"%llu\" data-counts=\"", (unsigned long long)l->total);
                for (size_t i = 0; i < n; i++)
                        fprintf(out, i ? " %llu" : "%llu", (unsigned long long)l->v[i]);
                fprintf(out, "\"><path fill=\"url(#%s)\" stroke=\"%s\" stroke-width=\".6\" d=\"",
                        styles[l->style].id, styles[l->style].colour);
                double prev = 0;
                for (size_t i = 0; i < n; i++) {
                        double y = y1 - (double)(below[i] + l->v[i]) * ky;
                        if (i == 0)
                                fprintf(out, "M%.1f %.1f", x0, y);
                        else if (y != prev)
                                fprintf(out, "H%.1fV%.1f", x0 + bw * (double)i, y);
                        prev = y;
                }
                fprintf(out, "H%.1f", x1);
                for (size_t i = n; i-- > 0;) {
                        double y = y1 - (double)below[i] * ky;
                        if (i == n - 1)
                                fprintf(out, "V%.1f", y);
                        else if (y != prev)
                                fprintf(out, "H%.1fV%.1f", x0 + bw * (double)(i + 1), y);
                        prev = y;
                }
                fprintf(out, "H%.1fZ\"><title>", x0);
                esc(out, l->name, l->len);
                fputs(": ", out);
                num(out, l->total);
                fputs("</title></path></g>\n", out);
                for (size_t i = 0; i < n; i++)
                        below[i] += l->v[i];
        }

        /* the time axis: labels on round hours, days or weeks (UTC) */
        fprintf(out, "<g class=\"axis\"><line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>",
                x0, x1, y1, y1);
        if (n) {
                int64_t start = series_start(s, 0), span = (int64_t)n * s->width;
                int64_t every = tick_every(span, s->width, c->xticks);
                /* weeks from a Monday (1970-01-05), the rest from midnight */
                int64_t off = every % 604800 == 0 ? 345600 : 0;
                int64_t q = (start - off) / every;
                int64_t t = (q + (q * every < start - off)) * every + off;
                for (; t < start + span; t += every) {
                        double x = x0 + (double)(t - start) / (double)s->width * bw;
                        char lab[40];
                        utc(t,
                            every < 86400 && t % 86400 != 0 ? T_HOUR
                            : every < 86400                 ? T_MONTH_DAY
                                                            : T_DAY,
                            lab, sizeof lab);
                        fprintf(out,
                                "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>",
                                x, x, y1, y1 + 4, x, y1 + 16, lab);
                }
        }
        fputs("</g>\n", out);

        if (c->hover && below) {
                /* invisible by attribute, so that a reader without the CSS
                 * (a mail client) does not paint them over the chart */
                fputs("<g class=\"hover\">", out);
                for (size_t i = 0; i < n; i++) {
                        if (!below[i])
                                continue;
                        char lab[40];
                        bucket_label(series_start(s, i), s->width, lab, sizeof lab);
                        fprintf(out,
                                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" "
                                "fill-opacity=\"0\">"
                                "<title>%s: ",
                                x0 + bw * (double)i, y0, bw, y1 - y0, lab);
                        num(out, below[i]);
                        hover_line(out, L, nl, i);
                        fputs("</title></rect>", out);
                }
                fputs("</g>\n", out);
        }
        free(below);
        fputs("</svg>\n", out);
}

static void legend(FILE *out, const struct layer *L, size_t nl)
{
        fputs("<ul class=\"legend\">", out);
        for (size_t j = 0; j < nl; j++) {
                fputs("<li>", out);
                swatch(out, L[j].style);
                esc(out, L[j].name, L[j].len);
                fputs(" <span class=\"n\">", out);
                num(out, L[j].total);
                fputs("</span></li>", out);
        }
        fputs("</ul>\n", out);
}

static const char *width_name(int64_t w)
{
        return w == 3600 ? "hour" : w == 86400 ? "day" : w == 604800 ? "week" : NULL;
}

static void per_width(FILE *out, int64_t w)
{
        const char *name = width_name(w);
        if (name)
                fprintf(out, "per %s", name);
        else
                fprintf(out, "per %lld weeks", (long long)(w / 604800));
}

/* ---- the page's parts ---- */

static const char css[] =
    "body{font:15px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;color:#1b1b1b;"
    "background:#fff;margin:0 auto;padding:12px 16px 40px;max-width:1180px}\n"
    "h1{font-size:1.45em;margin:.4em 0 .2em}h2{font-size:1.15em;margin:1.6em 0 .4em;"
    "border-bottom:1px solid #ccc}\n"
    "dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:.6em 0}"
    "dl.facts dt{font-weight:600}dl.facts dd{margin:0}\n"
    ".scroll{overflow-x:auto}\n"
    "svg.chart{display:block;width:100%;height:auto;font-size:12px}\n"
    ".wide svg.chart{min-width:640px}\n"
    "svg.defs{position:absolute}\n"
    ".axis line{stroke:#bbb;stroke-width:.6}.axis text{fill:#333}\n"
    ".hover rect:hover{fill-opacity:.08;stroke:#333;stroke-width:.5}\n"
    "ul.legend{list-style:none;padding:0;margin:.3em 0;display:flex;flex-wrap:wrap;gap:4px 16px}"
    "ul.legend li{display:flex;align-items:center;gap:5px}\n"
    "svg.sw{width:15px;height:15px;flex:none}\n"
    ".n{color:#555;font-variant-numeric:tabular-nums}\n"
    ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(270px,1fr));gap:14px}\n"
    "figure{margin:0}figcaption{font-size:.9em;overflow-wrap:anywhere}\n"
    "figcaption b{font-weight:600}\n"
    "table{border-collapse:collapse;margin:.4em 0;font-variant-numeric:tabular-nums}\n"
    "th,td{padding:3px 8px;border-bottom:1px solid #e2e2e2;text-align:left;vertical-align:top}"
    "td.r,th.r{text-align:right}\n"
    "tr.sum td{font-weight:600;border-top:1px solid #999}\n"
    "code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;"
    "overflow-wrap:anywhere}\n"
    "pre{background:#f4f4f4;padding:8px;white-space:pre-wrap}\n"
    ".note{color:#555;font-size:.92em}\n"
    "@media(max-width:600px){body{padding:8px;font-size:14px}th,td{padding:2px 4px}}\n"
    "@media print{.scroll{overflow:visible}.wide svg.chart{min-width:0}}\n";

static void facts(FILE *out, const struct report_page *p)
{
        char t0[40], t1[40];
        fputs("<dl class=\"facts\">\n<dt>Time</dt><dd>", out);
        if (p->have_time) {
                event_format_time(p->t_min, t0, sizeof t0);
                event_format_time(p->t_max, t1, sizeof t1);
                fprintf(out, "%s .. %s", t0, t1);
        } else {
                fputs("no usable timeLogged", out);
        }
        fputs(" <span class=\"note\">(", out);
        num(out, p->time_bad);
        fputs(" records without a usable timeLogged)</span></dd>\n<dt>Files</dt><dd>", out);
        num(out, p->files_read);
        fputs(" read, ", out);
        num(out, p->files_failed);
        fputs(" failed</dd>\n<dt>Records</dt><dd>", out);
        num(out, p->parsed->records);
        fputs(" read (b ", out);
        num(out, p->n_b);
        fputs(", rb ", out);
        num(out, p->n_rb);
        fputs(", f ", out);
        num(out, p->n_f);
        fputs(", other ", out);
        num(out, p->n_other);
        fputs("), ", out);
        num(out, p->parsed->filtered);
        fputs(" not selected, ", out);
        num(out, p->parsed->rejected);
        fputs(" rejected</dd>\n<dt>Bounces</dt><dd>", out);
        num(out, total3(p->bounces));
        fputs(" (hard ", out);
        num(out, p->bounces[SERIES_HARD]);
        fputs(", soft ", out);
        num(out, p->bounces[SERIES_SOFT]);
        fputs(", unclassified ", out);
        num(out, p->bounces[SERIES_NONE]);
        fputs(")</dd>\n</dl>\n", out);
}

static void td_num(FILE *out, uint64_t v)
{
        fputs("<td class=\"r\">", out);
        num(out, v);
        fputs("</td>", out);
}

static void charts(FILE *out, const struct report_page *p)
{
        const struct report_series *s = p->series;
        size_t n = series_len(s);
        fputs("<h2 id=\"over-time\">Bounces ", out);
        per_width(out, s->width);
        fputs(" (UTC)</h2>\n", out);
        if (!n) {
                fputs(
                    "<p class=\"note\">No bounce with a usable timeLogged: nothing to draw.</p>\n",
                    out);
                return;
        }
        if (s->undated) {
                fputs("<p class=\"note\">", out);
                num(out, s->undated);
                fputs(" bounces without a usable timeLogged are counted in the tables, not "
                      "drawn.</p>\n",
                      out);
        }
        size_t nb = n ? n : 1;
        /* SERIES_CAT_LAYERS categories, other, and the classes: one block */
        uint64_t *mem = calloc((SERIES_CAT_LAYERS + 1 + SERIES_CLASSES) * nb, sizeof *mem);
        if (!mem)
                return;
        struct layer L[SERIES_CAT_LAYERS + 1];
        size_t nl = 0;
        for (size_t j = 0; j < p->ncats && nl < SERIES_CAT_LAYERS; j++) {
                const struct series_slot *sl = series_find(&s->cats, p->cats[j].id);
                if (!sl)
                        continue; /* not tracked: drawn within "other" */
                struct layer *l = &L[nl];
                *l = (struct layer){p->cats[j].key, p->cats[j].len, (int)nl, mem + nl * nb, 0};
                for (size_t i = 0; i < n; i++) {
                        l->v[i] = series_slot_count(s, &s->cats, sl, 0, i);
                        l->total += l->v[i];
                }
                nl++;
        }
        struct layer *o = &L[nl];
        *o = (struct layer){"other", 5, ST_OTHER, mem + nl * nb, 0};
        for (size_t i = 0; i < n; i++) {
                uint64_t v = 0;
                for (int k = 0; k < SERIES_CLASSES; k++)
                        v += series_total(s, k, i);
                for (size_t j = 0; j < nl; j++)
                        v -= L[j].v[i];
                o->v[i] = v;
                o->total += v;
        }
        if (o->total)
                nl++;
        struct chart c = {"categories", NULL, 0,  "Bounces over time, stacked by bounceCat",
                          960,          300,  52, 14,
                          10,           26,   9,  true};
        fputs("<h3>By bounceCat</h3>\n", out);
        legend(out, L, nl);
        fputs("<div class=\"scroll wide\">", out);
        chart_svg(out, &c, s, L, nl);
        fputs("</div>\n", out);

        struct layer K[SERIES_CLASSES];
        uint64_t *km = mem + (SERIES_CAT_LAYERS + 1) * nb;
        for (int k = 0; k < SERIES_CLASSES; k++) {
                K[k] = (struct layer){class_names[k], strlen(class_names[k]), class_style[k],
                                      km + (size_t)k * nb, 0};
                for (size_t i = 0; i < n; i++) {
                        K[k].v[i] = series_total(s, k, i);
                        K[k].total += K[k].v[i];
                }
        }
        struct chart ck = {"classes", NULL, 0,  "Bounces over time: hard, soft, unclassified",
                           960,       220,  52, 14,
                           10,        26,   9,  true};
        fputs("<h3>Hard and soft</h3>\n", out);
        legend(out, K, SERIES_CLASSES);
        fputs("<div class=\"scroll wide\">", out);
        chart_svg(out, &ck, s, K, SERIES_CLASSES);
        fputs("</div>\n", out);
        free(mem);
}

/* A domain's chart (d), or that of the domains not shown (d NULL, with
 * their totals in n3). */
static void domain_figure(FILE *out, const struct report_page *p, const struct report_key *d,
                          const uint64_t n3[SERIES_CLASSES], uint64_t *mem)
{
        const struct report_series *s = p->series;
        size_t n = series_len(s), nb = n ? n : 1;
        struct layer K[SERIES_CLASSES];
        bool other = !d;
        const char *name = d ? d->key : "other domains";
        size_t len = d ? d->len : strlen(name);
        const struct series_slot *sl = d ? series_find(&s->doms, d->id) : NULL;
        uint64_t drawn = 0;
        for (int k = 0; k < SERIES_CLASSES; k++) {
                K[k] = (struct layer){class_names[k], strlen(class_names[k]), class_style[k],
                                      mem + (size_t)k * nb, 0};
                for (size_t i = 0; i < n; i++) {
                        uint64_t v;
                        if (other) {
                                v = series_total(s, k, i);
                                for (size_t j = 0; j < p->ndoms; j++)
                                        v -= series_slot_count(s, &s->doms,
                                                               series_find(&s->doms, p->doms[j].id),
                                                               k, i);
                        } else {
                                v = series_slot_count(s, &s->doms, sl, k, i);
                        }
                        K[k].v[i] = v;
                        K[k].total += v;
                }
                drawn += K[k].total;
        }
        fputs("<figure><figcaption><b>", out);
        esc(out, name, len);
        fputs("</b> ", out);
        num(out, total3(n3));
        fputs(" bounces: ", out);
        num(out, n3[SERIES_HARD]);
        fputs(" hard, ", out);
        num(out, n3[SERIES_SOFT]);
        fputs(" soft, ", out);
        num(out, n3[SERIES_NONE]);
        fputs(" unclassified", out);
        if (!other && drawn < total3(n3)) {
                fputs(" <span class=\"note\">(", out);
                num(out, total3(n3) - drawn);
                fputs(" not drawn: without a time, or before the domain was among those "
                      "tracked)</span>",
                      out);
        }
        fputs("</figcaption>\n", out);
        struct chart c = {"domain", name, len, "", 320, 120, 40, 8, 8, 22, 3, false};
        char title[300];
        snprintf(title, sizeof title, "Bounces over time at %.*s", (int)(len < 255 ? len : 255),
                 name);
        c.title = title;
        chart_svg(out, &c, s, K, SERIES_CLASSES);
        fputs("</figure>\n", out);
}

static void domains(FILE *out, const struct report_page *p)
{
        const struct report_series *s = p->series;
        size_t n = series_len(s);
        fprintf(out, "<h2 id=\"domains\">Top %zu recipient domains by bounces, ", p->ndoms);
        per_width(out, s->width);
        fputs("</h2>\n<p class=\"note\">Each chart has its own scale (its top is on its axis); "
              "the time axis is the same for all.</p>\n",
              out);
        struct layer K[SERIES_CLASSES];
        for (int k = 0; k < SERIES_CLASSES; k++)
                K[k] = (struct layer){class_names[k], strlen(class_names[k]), class_style[k], NULL,
                                      p->bounces[k]};
        legend(out, K, SERIES_CLASSES);
        if (!n)
                return;
        uint64_t *mem = calloc(SERIES_CLASSES * n, sizeof *mem);
        if (!mem)
                return;
        fputs("<div class=\"grid\">\n", out);
        uint64_t rest[SERIES_CLASSES];
        memcpy(rest, p->bounces, sizeof rest);
        for (size_t j = 0; j < p->ndoms; j++) {
                domain_figure(out, p, &p->doms[j], p->doms[j].n, mem);
                for (int k = 0; k < SERIES_CLASSES; k++)
                        rest[k] -= p->doms[j].n[k];
        }
        if (total3(rest))
                domain_figure(out, p, NULL, rest, mem);
        fputs("</div>\n", out);
        free(mem);
}

static void tables(FILE *out, const struct report_page *p)
{
        fputs("<h2 id=\"types\">Records per type</h2>\n<table id=\"types-table\"><thead><tr>"
              "<th>type</th><th class=\"r\">rows</th><th>selected</th></tr></thead><tbody>\n",
              out);
        for (size_t i = 0; i < p->parsed->ntypes; i++) {
                fputs("<tr><td>", out);
                escs(out, p->parsed->types[i].type);
                fputs("</td>", out);
                td_num(out, p->parsed->types[i].count);
                fprintf(out, "<td>%s</td></tr>\n", p->parsed->types[i].forwarded ? "yes" : "no");
        }
        if (p->parsed->other_types) {
                fputs("<tr><td>(other)</td>", out);
                td_num(out, p->parsed->other_types);
                fputs("<td></td></tr>\n", out);
        }
        fputs("</tbody></table>\n", out);

        fputs("<h2 id=\"categories\">Bounces per bounceCat</h2>\n<table id=\"categories-table\">"
              "<thead><tr><th>bounceCat</th><th class=\"r\">bounces</th><th class=\"r\">hard</th>"
              "<th class=\"r\">soft</th><th class=\"r\">unclassified</th></tr></thead><tbody>\n",
              out);
        for (size_t i = 0; i < p->ncats; i++) {
                const struct report_key *c = &p->cats[i];
                fputs("<tr><td>", out);
                esc(out, c->key, c->len);
                fputs("</td>", out);
                td_num(out, total3(c->n));
                for (int k = 0; k < SERIES_CLASSES; k++)
                        td_num(out, c->n[k]);
                fputs("</tr>\n", out);
        }
        if (total3(p->cats_other)) {
                fputs("<tr><td>(other)</td>", out);
                td_num(out, total3(p->cats_other));
                for (int k = 0; k < SERIES_CLASSES; k++)
                        td_num(out, p->cats_other[k]);
                fputs("</tr>\n", out);
        }
        fputs("<tr class=\"sum\"><td>total</td>", out);
        td_num(out, total3(p->bounces));
        for (int k = 0; k < SERIES_CLASSES; k++)
                td_num(out, p->bounces[k]);
        fputs("</tr>\n</tbody></table>\n", out);

        fprintf(out, "<h2 id=\"hard-domains\">Top %d domains by hard bounces (", p->top);
        num(out, p->hard_distinct);
        fputs(" distinct)</h2>\n<table id=\"hard-domains-table\"><thead><tr><th class=\"r\">hard"
              "</th><th>domain</th></tr></thead><tbody>\n",
              out);
        for (size_t i = 0; i < p->nhard; i++) {
                fputs("<tr>", out);
                td_num(out, p->hard[i].n[SERIES_HARD]);
                fputs("<td>", out);
                esc(out, p->hard[i].key, p->hard[i].len);
                fputs("</td></tr>\n", out);
        }
        if (p->hard_other) {
                fputs("<tr>", out);
                td_num(out, p->hard_other);
                fputs("<td>(other)</td></tr>\n", out);
        }
        fputs("</tbody></table>\n", out);

        fputs("<h2 id=\"domains-table-h\">Recipient domains by bounces (", out);
        num(out, p->doms_distinct);
        fputs(" distinct)</h2>\n<table id=\"domains-table\"><thead><tr><th>domain</th>"
              "<th class=\"r\">bounces</th><th class=\"r\">hard</th><th class=\"r\">soft</th>"
              "<th class=\"r\">unclassified</th></tr></thead><tbody>\n",
              out);
        for (size_t i = 0; i < p->ndoms; i++) {
                const struct report_key *d = &p->doms[i];
                fputs("<tr><td>", out);
                esc(out, d->key, d->len);
                fputs("</td>", out);
                td_num(out, total3(d->n));
                for (int k = 0; k < SERIES_CLASSES; k++)
                        td_num(out, d->n[k]);
                fputs("</tr>\n", out);
        }
        fputs("</tbody></table>\n", out);

        fprintf(out, "<h2 id=\"texts\">Top %d unclassified dsnDiag texts (", p->top);
        num(out, p->texts_distinct);
        fputs(
            " distinct)</h2>\n<p class=\"note\">Digits are shown as #, addresses as &lt;addr&gt;; "
            "the pattern is the longest part of the text without them that the example holds "
            "as it is.</p>\n<table id=\"texts-table\"><thead><tr><th class=\"r\">bounces</th>"
            "<th>text</th><th>example</th><th>pattern</th></tr></thead><tbody>\n",
            out);
        char pat[REPORT_HTML_PATTERN_MAX];
        size_t npat = 0;
        for (size_t i = 0; i < p->ntexts; i++) {
                const struct report_key *t = &p->texts[i];
                fputs("<tr>", out);
                td_num(out, t->n[SERIES_HARD]);
                fputs("<td><code>", out);
                esc(out, t->key, t->len);
                fputs("</code></td><td><code>", out);
                esc(out, t->ex, t->ex_len);
                fputs("</code></td><td>", out);
                size_t pn = report_html_pattern(t->key, t->len, t->ex, t->ex_len, pat, sizeof pat);
                if (pn) {
                        fputs("<code>", out);
                        esc(out, pat, pn);
                        fputs("</code>", out);
                        npat++;
                }
                fputs("</td></tr>\n", out);
        }
        if (p->texts_other) {
                fputs("<tr>", out);
                td_num(out, p->texts_other);
                fputs("<td>(other)</td><td></td><td></td></tr>\n", out);
        }
        fputs("</tbody></table>\n", out);
        if (npat) {
                fputs("<p>As lines for <code>[classify] patterns</code>: each says Soft, the "
                      "careful choice; make it Hard only for a text that means the address will "
                      "never take mail.</p>\n<pre id=\"patterns\">",
                      out);
                for (size_t i = 0; i < p->ntexts; i++) {
                        const struct report_key *t = &p->texts[i];
                        size_t pn =
                            report_html_pattern(t->key, t->len, t->ex, t->ex_len, pat, sizeof pat);
                        if (!pn)
                                continue;
                        esc(out, pat, pn);
                        fputs("==&gt;Soft\n", out);
                }
                fputs("</pre>\n", out);
        }
}

/* Paths shown at most; a month of hourly archives is about 1,500. */
#define SHOWN_FILES 2000

static void provenance(FILE *out, const struct report_page *p)
{
        fputs("<h2 id=\"made\">How this page was made</h2>\n<p>By <code>pmtatail "
              "" PMTATAIL_VERSION "</code>:</p>\n<pre id=\"command\">",
              out);
        escs(out, p->command ? p->command : "pmtatail report");
        fputs("</pre>\n<details><summary>", out);
        num(out, p->nfiles);
        fputs(" files</summary>\n<ol id=\"files\">\n", out);
        for (size_t i = 0; i < p->nfiles && i < SHOWN_FILES; i++) {
                fputs("<li>", out);
                escs(out, p->files[i]);
                fputs("</li>\n", out);
        }
        fputs("</ol>\n", out);
        if (p->nfiles > SHOWN_FILES) {
                fputs("<p class=\"note\">and ", out);
                num(out, p->nfiles - SHOWN_FILES);
                fputs(" more</p>\n", out);
        }
        fputs("</details>\n", out);
}

int report_html_write(const struct report_page *p, FILE *out)
{
        char t0[40], t1[40];
        fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
              "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
              "<meta name=\"generator\" content=\"pmtatail " PMTATAIL_VERSION "\">\n<title>",
              out);
        if (p->have_time) {
                utc(p->t_min, T_MINUTE, t0, sizeof t0);
                utc(p->t_max, T_MINUTE, t1, sizeof t1);
                fprintf(out, "Bounces %s .. %s UTC", t0, t1);
        } else {
                fputs("Bounces", out);
        }
        fprintf(out, "</title>\n<style>\n%s</style>\n</head>\n<body>\n", css);
        put_defs(out);
        fputs("<h1>Bounces in PowerMTA accounting files</h1>\n", out);
        facts(out, p);
        charts(out, p);
        domains(out, p);
        tables(out, p);
        provenance(out, p);
        fputs("</body>\n</html>\n", out);
        if (fflush(out) != 0 || ferror(out)) {
                if (!errno)
                        errno = EIO;
                return -1;
        }
        return 0;
}

int report_html_write_file(const struct report_page *p, const char *path)
{
        if (strcmp(path, "-") == 0)
                return report_html_write(p, stdout);
        size_t n = strlen(path);
        char *tmp = malloc(n + 5);
        if (!tmp)
                return -1;
        memcpy(tmp, path, n);
        memcpy(tmp + n, ".tmp", 5);
        FILE *out = fopen(tmp, "w");
        if (!out) {
                free(tmp);
                return -1;
        }
        int rc = report_html_write(p, out);
        int err = errno;
        if (fclose(out) != 0 && rc == 0) {
                rc = -1;
                err = errno;
        }
        if (rc == 0 && rename(tmp, path) < 0) {
                rc = -1;
                err = errno;
        }
        if (rc < 0)
                unlink(tmp);
        free(tmp);
        errno = err;
        return rc;
}

/* ---- pattern suggestions ---- */

static unsigned char lc(unsigned char c)
{
        return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static bool contains_nocase(const char *hay, size_t hn, const char *needle, size_t nn)
{
        for (size_t i = 0; i + nn <= hn; i++) {
                size_t j = 0;
                while (j < nn && lc((unsigned char)hay[i + j]) == (unsigned char)needle[j])
                        j++;
                if (j == nn)
                        return true;
        }
        return false;
}

static bool trims(unsigned char c)
{
        return c == ' ' || c == '.' || c == ',' || c == ';' || c == ':' || c == '(' || c == ')' ||
               c == '[' || c == ']' || c == '"' || c == '\'' || c == '-' || c == '=' || c == '<' ||
               c == '>' || c == '/';
}

/* Shorter than this, a part matches too much to be a pattern. */
#define PATTERN_MIN 8

size_t report_html_pattern(const char *norm, size_t n, const char *ex, size_t exn, char *out,
                           size_t cap)
{
        size_t best = 0, best_at = 0, i = 0;
        while (i < n) {
                /* a part ends at a digit run's # or an address */
                size_t j = i;
                while (j < n && norm[j] != '#' &&
                       !(n - j >= 6 && memcmp(norm + j, "<addr>", 6) == 0))
                        j++;
                size_t a = i, b = j;
                while (a < b && trims((unsigned char)norm[a]))
                        a++;
                while (b > a && trims((unsigned char)norm[b - 1]))
                        b--;
                if (b - a > best && b - a >= PATTERN_MIN && b - a < cap &&
                    contains_nocase(ex, exn, norm + a, b - a)) {
                        best = b - a;
                        best_at = a;
                }
                i = j < n && norm[j] == '#' ? j + 1 : j + 6;
        }
        memcpy(out, norm + best_at, best);
        out[best] = '\0';
        return best;
}
