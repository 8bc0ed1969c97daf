/*
 * bc_metrics.h -- the Prometheus text exposition every bucketcache process
 * serves on GET /metrics (node/admin.c, console/api.c), written once.
 *
 * HOW
 *   The bc_metric* calls collect samples; bc_metrics_reply (or
 *   bc_metrics_render) writes them out grouped by metric family, each
 *   family once with its HELP and TYPE lines, in the order families first
 *   appeared -- so samples of one family may be added from anywhere (a
 *   per-group loop, an X-macro table) without breaking the format.  The
 *   processes list their metrics as X-macro tables next to their stats
 *   structs, so a stat, its description and its metric are defined once.
 *   An allocation failure puts the buffer into a failed state that every
 *   later call keeps; the caller then answers 500.
 *
 * CONVENTIONS (enforced here, so every metric added later follows them;
 * `promtool check metrics` runs on both processes' output in the tests)
 *   - every name is prefixed bucketcache_;
 *   - a counter's name ends in _total (added when the caller left it out);
 *   - base units: seconds and bytes (callers convert; names say _seconds,
 *     _bytes);
 *   - variants are labels, not names: commands_total{command,status},
 *     group="1", node="...", role="primary"|"backup" (bc_metric_labels
 *     formats and escapes them);
 *   - histograms are cumulative _bucket{le}, _sum and _count series that
 *     never go down (bc_metric_histogram).
 */
#ifndef BC_METRICS_H
#define BC_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_httpd.h"

typedef struct bc__metric_sample bc__metric_sample_t;

typedef struct bc_textbuf {
    char *data;                    /* owned; bc_textbuf_free */
    size_t len;
    size_t cap;
    bool failed;                   /* an allocation failed: the text is incomplete */
    /* samples collected by bc_metric* until rendered (owned) */
    bc__metric_sample_t *samples;
    size_t nsamples, samples_cap;
} bc_textbuf_t;

/* Appends printf-style text (the buffer grows as needed). */
void bc_textbuf_printf(bc_textbuf_t *tb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Frees the text and the samples; tb may be reused (it is zeroed). */
void bc_textbuf_free(bc_textbuf_t *tb);

/* One unlabelled sample of bucketcache_<name> (see CONVENTIONS).  name,
 * type and help are copied; type is "counter" or "gauge". */
void bc_metric(bc_textbuf_t *tb, const char *name, const char *type, const char *help,
               uint64_t value);
/* One sample with labels: labels is the text between the braces
 * (`command="get",status="hit"`, as bc_metric_labels makes it) or NULL /
 * "" for none; copied.  value may be fractional (seconds, ratios). */
void bc_metric_l(bc_textbuf_t *tb, const char *name, const char *type, const char *help,
                 const char *labels, double value);
/* As bc_metric_l with an exact integer value. */
void bc_metric_lu(bc_textbuf_t *tb, const char *name, const char *type, const char *help,
                  const char *labels, uint64_t value);

/*
 * A histogram: bounds[0..n) ascending upper bounds (the +Inf bucket is
 * added), counts[0..n] the observations in each bucket, not cumulative
 * (counts[n]: above the last bound); sum of the observed values.  Writes
 * bucketcache_<name>_bucket{le=...}, _sum and _count (labels may be NULL).
 */
void bc_metric_histogram(bc_textbuf_t *tb, const char *name, const char *help,
                         const char *labels, const double *bounds, const uint64_t *counts,
                         size_t n, double sum);

/*
 * Histograms of milliseconds (a migration's stalls at the console, its
 * write pauses at the nodes), kept as counts per slot of ascending upper
 * bounds bounds_ms[0..n), counts[n] above them all:
 *   bc_metric_bin_ms        the slot of an observation of ms milliseconds
 *                           (the first bound it does not exceed; n past
 *                           the last)
 *   bc_metric_histogram_ms  bc_metric_histogram in seconds (CONVENTIONS),
 *                           sum_ms the observations' total
 *   bc_metric_histogram_json  the JSON the admin APIs show:
 *                           [{"le_ms": bound, "count": c}, ..., {"le_ms":
 *                           "inf", "count": counts[n]}]; NULL when out of
 *                           memory (the caller owns it)
 * n is at most BC_METRIC_HIST_MAX.
 */
#define BC_METRIC_HIST_MAX 64
size_t bc_metric_bin_ms(const uint32_t *bounds_ms, size_t n, double ms);
void bc_metric_histogram_ms(bc_textbuf_t *tb, const char *name, const char *help,
                            const char *labels, const uint32_t *bounds_ms, const uint64_t *counts,
                            size_t n, double sum_ms);
struct cJSON *bc_metric_histogram_json(const uint32_t *bounds_ms, const uint64_t *counts,
                                       size_t n);

/*
 * Formats label pairs into buf (len bytes): nul-terminated; npairs pairs
 * of (name, value) strings follow.  Values are escaped (backslash, double
 * quote, newline).  Returns buf (cut short, still valid, when len is too
 * small).
 */
char *bc_metric_labels(char *buf, size_t len, int npairs, ...);

/* Writes the collected samples as text into tb (they are then freed). */
void bc_metrics_render(bc_textbuf_t *tb);

/* Renders, then answers GET /metrics with tb's text, which is handed to
 * MHD (tb is left empty), or 500 when tb failed. */
enum MHD_Result bc_metrics_reply(bc_http_req_t *req, bc_textbuf_t *tb);

#endif
