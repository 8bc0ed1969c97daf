/*
 * bc_metrics.h -- the Prometheus text exposition every bucketcache process
 * serves on GET /metrics (node/admin.c, console/api.c), written once.
 *
 * HOW
 *   A growable text buffer collects the samples; each bc_metric() call adds
 *   one sample with its HELP and TYPE lines, named bucketcache_<name>.  The
 *   processes list their metrics as X-macro tables next to their stats
 *   structs, so a stat, its description and its metric are defined once.
 *   An allocation failure puts the buffer into a failed state that every
 *   later call keeps; the caller then answers 500.
 */
#ifndef BC_METRICS_H
#define BC_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_httpd.h"

typedef struct bc_textbuf {
    char *data;                    /* owned; bc_textbuf_free */
    size_t len;
    size_t cap;
    bool failed;                   /* an allocation failed: the text is incomplete */
} bc_textbuf_t;

/* Appends printf-style text (the buffer grows as needed). */
void bc_textbuf_printf(bc_textbuf_t *tb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Frees the text; tb may be reused (it is zeroed). */
void bc_textbuf_free(bc_textbuf_t *tb);

/* One sample: "# HELP bucketcache_<name> <help>", "# TYPE ... <type>" and
 * "bucketcache_<name> <value>".  name, type and help are borrowed for the
 * call; type is "counter" or "gauge". */
void bc_metric(bc_textbuf_t *tb, const char *name, const char *type, const char *help,
               uint64_t value);

/* Answers GET /metrics with tb's text, which is handed to MHD (tb is left
 * empty), or 500 when tb failed. */
enum MHD_Result bc_metrics_reply(bc_http_req_t *req, bc_textbuf_t *tb);

#endif
