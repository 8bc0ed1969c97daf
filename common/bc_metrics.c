/*
 * bc_metrics.c -- see bc_metrics.h.
 */
#include "bc_metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define TEXTBUF_FIRST 8192u
#define METRIC_PREFIX "bucketcache_"

struct bc__metric_sample {
    char *family;                  /* full name of the family, prefix included */
    char *type;                    /* of the family */
    char *help;
    const char *suffix;            /* "" or _bucket/_sum/_count (static) */
    char *labels;                  /* NULL: none */
    bool exact;
    uint64_t u;
    double d;
    uint32_t family_id;
};

void
bc_textbuf_printf(bc_textbuf_t *tb, const char *fmt, ...)
{
    if (tb->failed) return;
    for (;;) {
        size_t room = tb->cap - tb->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(tb->data != NULL ? tb->data + tb->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            tb->failed = true;
            return;
        }
        if ((size_t)n < room) {
            tb->len += (size_t)n;
            return;
        }
        size_t cap = tb->cap ? tb->cap * 2 : TEXTBUF_FIRST;
        while (cap - tb->len <= (size_t)n) cap *= 2;
        char *p = realloc(tb->data, cap);
        if (p == NULL) {
            tb->failed = true;
            return;
        }
        tb->data = p;
        tb->cap = cap;
    }
}

static void
metrics_free_samples(bc_textbuf_t *tb)
{
    for (size_t i = 0; i < tb->nsamples; i++) {
        bc__metric_sample_t *s = &tb->samples[i];
        free(s->family);
        free(s->type);
        free(s->help);
        free(s->labels);
    }
    free(tb->samples);
    tb->samples = NULL;
    tb->nsamples = tb->samples_cap = 0;
}

void
bc_textbuf_free(bc_textbuf_t *tb)
{
    metrics_free_samples(tb);
    free(tb->data);
    memset(tb, 0, sizeof(*tb));
}

/* "bucketcache_" + name, with "_total" for a counter that lacks it. */
static char *
metric_family_name(const char *name, const char *type)
{
    size_t n = strlen(name);
    bool counter = strcmp(type, "counter") == 0;
    bool has_total = n >= 6 && strcmp(name + n - 6, "_total") == 0;
    size_t len = sizeof(METRIC_PREFIX) + n + (counter && !has_total ? 6 : 0);
    char *s = malloc(len);
    if (s == NULL) return NULL;
    snprintf(s, len, METRIC_PREFIX "%s%s", name, counter && !has_total ? "_total" : "");
    return s;
}

/* The shortest of %.15g / %.17g that reads back as v. */
static void
metric_fmt_double(char *buf, size_t len, double v)
{
    snprintf(buf, len, "%.15g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, len, "%.17g", v);
}

static void
metric_add(bc_textbuf_t *tb, const char *name, const char *type, const char *help,
           const char *suffix, const char *labels, bool exact, uint64_t u, double d)
{
    if (tb->failed) return;
    if (tb->nsamples == tb->samples_cap) {
        size_t cap = tb->samples_cap ? tb->samples_cap * 2 : 64;
        bc__metric_sample_t *p = realloc(tb->samples, cap * sizeof(*p));
        if (p == NULL) {
            tb->failed = true;
            return;
        }
        tb->samples = p;
        tb->samples_cap = cap;
    }
    bc__metric_sample_t *s = &tb->samples[tb->nsamples];
    memset(s, 0, sizeof(*s));
    s->family = metric_family_name(name, type);
    s->type = strdup(type);
    s->help = strdup(help != NULL ? help : "");
    s->suffix = suffix;
    s->labels = labels != NULL && labels[0] != '\0' ? strdup(labels) : NULL;
    s->exact = exact;
    s->u = u;
    s->d = d;
    tb->nsamples++;
    if (s->family == NULL || s->type == NULL || s->help == NULL ||
        (labels != NULL && labels[0] != '\0' && s->labels == NULL)) {
        tb->failed = true;
    }
}

void
bc_metric(bc_textbuf_t *tb, const char *name, const char *type, const char *help,
          uint64_t value)
{
    metric_add(tb, name, type, help, "", NULL, true, value, 0);
}

void
bc_metric_l(bc_textbuf_t *tb, const char *name, const char *type, const char *help,
            const char *labels, double value)
{
    metric_add(tb, name, type, help, "", labels, false, 0, value);
}

void
bc_metric_lu(bc_textbuf_t *tb, const char *name, const char *type, const char *help,
             const char *labels, uint64_t value)
{
    metric_add(tb, name, type, help, "", labels, true, value, 0);
}

void
bc_metric_histogram(bc_textbuf_t *tb, const char *name, const char *help, const char *labels,
                    const double *bounds, const uint64_t *counts, size_t n, double sum)
{
    char lbl[512];
    uint64_t cum = 0;
    for (size_t i = 0; i <= n; i++) {
        char le[40];
        cum += counts[i];
        if (i < n) metric_fmt_double(le, sizeof(le), bounds[i]);
        else snprintf(le, sizeof(le), "+Inf");
        snprintf(lbl, sizeof(lbl), "%s%sle=\"%s\"", labels != NULL ? labels : "",
                 labels != NULL && labels[0] != '\0' ? "," : "", le);
        metric_add(tb, name, "histogram", help, "_bucket", lbl, true, cum, 0);
    }
    metric_add(tb, name, "histogram", help, "_sum", labels, false, 0, sum);
    metric_add(tb, name, "histogram", help, "_count", labels, true, cum, 0);
}

size_t
bc_metric_bin_ms(const uint32_t *bounds_ms, size_t n, double ms)
{
    size_t k = 0;
    while (k < n && ms > bounds_ms[k]) k++;
    return k;
}

void
bc_metric_histogram_ms(bc_textbuf_t *tb, const char *name, const char *help, const char *labels,
                       const uint32_t *bounds_ms, const uint64_t *counts, size_t n, double sum_ms)
{
    double bounds[BC_METRIC_HIST_MAX];
    if (n > BC_METRIC_HIST_MAX) n = BC_METRIC_HIST_MAX;   /* the rest falls in +Inf */
    for (size_t k = 0; k < n; k++) bounds[k] = bounds_ms[k] / 1000.0;
    bc_metric_histogram(tb, name, help, labels, bounds, counts, n, sum_ms / 1000.0);
}

cJSON *
bc_metric_histogram_json(const uint32_t *bounds_ms, const uint64_t *counts, size_t n)
{
    cJSON *hist = cJSON_CreateArray();
    for (size_t k = 0; hist != NULL && k <= n; k++) {
        cJSON *e = cJSON_CreateObject();
        if (e == NULL || !cJSON_AddItemToArray(hist, e)) {
            cJSON_Delete(e);
            cJSON_Delete(hist);
            return NULL;
        }
        if (k < n) cJSON_AddNumberToObject(e, "le_ms", bounds_ms[k]);
        else cJSON_AddStringToObject(e, "le_ms", "inf");
        cJSON_AddNumberToObject(e, "count", (double)counts[k]);
    }
    return hist;
}

char *
bc_metric_labels(char *buf, size_t len, int npairs, ...)
{
    va_list ap;
    size_t pos = 0;
    if (len == 0) return buf;
    buf[0] = '\0';
    va_start(ap, npairs);
    for (int i = 0; i < npairs; i++) {
        const char *k = va_arg(ap, const char *);
        const char *v = va_arg(ap, const char *);
        /* The pair goes in whole or not at all. */
        size_t start = pos;
        bool fits = true;
        int n = snprintf(buf + pos, len - pos, "%s%s=\"", pos ? "," : "", k);
        if (n < 0 || (size_t)n >= len - pos) fits = false;
        else pos += (size_t)n;
        for (const char *p = v != NULL ? v : ""; fits && *p != '\0'; p++) {
            bool esc = *p == '\\' || *p == '"' || *p == '\n';
            if (pos + (esc ? 2 : 1) >= len) {
                fits = false;
                break;
            }
            if (esc) buf[pos++] = '\\';
            buf[pos++] = *p == '\n' ? 'n' : *p;
        }
        if (fits && pos + 1 < len) {
            buf[pos++] = '"';
            buf[pos] = '\0';
        } else {
            pos = start;
            buf[pos] = '\0';
            break;
        }
    }
    va_end(ap);
    return buf;
}

static void
metrics_help_line(bc_textbuf_t *tb, const char *family, const char *help)
{
    bc_textbuf_printf(tb, "# HELP %s ", family);
    for (const char *p = help; *p != '\0'; p++) {
        if (*p == '\\') bc_textbuf_printf(tb, "\\\\");
        else if (*p == '\n') bc_textbuf_printf(tb, "\\n");
        else bc_textbuf_printf(tb, "%c", *p);
    }
    bc_textbuf_printf(tb, "\n");
}

static void
metrics_value(bc_textbuf_t *tb, const bc__metric_sample_t *s)
{
    if (s->exact) {
        bc_textbuf_printf(tb, "%" PRIu64 "\n", s->u);
    } else if (isnan(s->d)) {
        bc_textbuf_printf(tb, "NaN\n");
    } else if (isinf(s->d)) {
        bc_textbuf_printf(tb, "%sInf\n", s->d < 0 ? "-" : "+");
    } else {
        char v[40];
        metric_fmt_double(v, sizeof(v), s->d);
        bc_textbuf_printf(tb, "%s\n", v);
    }
}

void
bc_metrics_render(bc_textbuf_t *tb)
{
    size_t n = tb->nsamples;
    if (tb->failed || n == 0) {
        metrics_free_samples(tb);
        return;
    }
    /* Number the families in order of first appearance (a family usually
     * follows itself, so the last one is tried first). */
    uint32_t nfam = 0;
    size_t *first = malloc(n * sizeof(*first));   /* family id -> first sample */
    size_t *order = malloc(n * sizeof(*order));
    uint32_t *start = calloc(n + 1, sizeof(*start));
    if (first == NULL || order == NULL || start == NULL) {
        tb->failed = true;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        bc__metric_sample_t *s = &tb->samples[i];
        uint32_t id = nfam;
        if (nfam > 0 && strcmp(tb->samples[first[nfam - 1]].family, s->family) == 0) {
            id = nfam - 1;
        } else {
            for (uint32_t f = 0; f < nfam; f++) {
                if (strcmp(tb->samples[first[f]].family, s->family) == 0) {
                    id = f;
                    break;
                }
            }
        }
        if (id == nfam) first[nfam++] = i;
        s->family_id = id;
        start[id + 1]++;
    }
    /* Counting sort by family, stable. */
    for (uint32_t f = 0; f < nfam; f++) start[f + 1] += start[f];
    for (size_t i = 0; i < n; i++) order[start[tb->samples[i].family_id]++] = i;
    uint32_t prev = UINT32_MAX;
    for (size_t k = 0; k < n; k++) {
        const bc__metric_sample_t *s = &tb->samples[order[k]];
        if (s->family_id != prev) {
            const bc__metric_sample_t *f = &tb->samples[first[s->family_id]];
            metrics_help_line(tb, f->family, f->help);
            bc_textbuf_printf(tb, "# TYPE %s %s\n", f->family, f->type);
            prev = s->family_id;
        }
        if (s->labels != NULL) bc_textbuf_printf(tb, "%s%s{%s} ", s->family, s->suffix, s->labels);
        else bc_textbuf_printf(tb, "%s%s ", s->family, s->suffix);
        metrics_value(tb, s);
    }
out:
    free(first);
    free(order);
    free(start);
    metrics_free_samples(tb);
}

enum MHD_Result
bc_metrics_reply(bc_http_req_t *req, bc_textbuf_t *tb)
{
    bc_metrics_render(tb);
    if (tb->failed || tb->data == NULL) {
        bc_textbuf_free(tb);
        return bc_http_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    char *text = tb->data;
    size_t len = tb->len;
    memset(tb, 0, sizeof(*tb));
    /* The text is handed over, not copied: MHD free()s it when sent. */
    return bc_http_reply_buffer(req, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                                text, len, free, text);
}
