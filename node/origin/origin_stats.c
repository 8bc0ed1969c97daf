/*
 * origin_stats.c -- the origin's figures, in the three forms the node
 * reports: "stats" lines (STAT origin_*), the /stats JSON object "origin",
 * and Prometheus text (bucketcache_origin_*: counters end in _total,
 * errors carry a kind label, the request latency is a histogram in
 * seconds).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "origin/origin_int.h"

static const char *const error_help[] = {
    "",
#define BC__ORIGIN_ERR_HELP(id, name, help) help,
    BC_ORIGIN_ERRORS(BC__ORIGIN_ERR_HELP)
#undef BC__ORIGIN_ERR_HELP
};

void
bc_origin_get_stats(bc_origin_t *o, bc_origin_stats_t *out)
{
    memset(out, 0, sizeof(*out));
#define BC__ORIGIN_STAT_LOAD(name, help) \
    out->name = atomic_load_explicit(&o->st.name, memory_order_relaxed);
    BC_ORIGIN_STATS(BC__ORIGIN_STAT_LOAD)
#undef BC__ORIGIN_STAT_LOAD
    for (unsigned i = 0; i < BC_ORIGIN_ERR_COUNT; i++) {
        out->errors[i] = atomic_load_explicit(&o->st.errors[i], memory_order_relaxed);
    }
    out->latency_count = atomic_load_explicit(&o->st.latency_count, memory_order_relaxed);
    out->latency_sum_us = atomic_load_explicit(&o->st.latency_sum_us, memory_order_relaxed);
    uint64_t cum = 0;
    for (unsigned i = 0; i < LATENCY_BUCKETS; i++) {
        cum += atomic_load_explicit(&o->st.latency[i], memory_order_relaxed);
        out->latency_buckets[i] = cum;
    }
    pthread_mutex_lock(&o->lock);
    out->inflight = o->nrunning;
    out->queued = o->nqueued;
    out->negative_entries = o->neg_count;
    for (uint32_t i = 0; i < o->nentries; i++) {
        if (o->entries[i].bstate != BREAKER_CLOSED) out->breakers_open++;
    }
    pthread_mutex_unlock(&o->lock);
}

/* Appends printf-style text at *pos, never past len. */
static void __attribute__((format(printf, 4, 5)))
put(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
    va_list ap;
    if (*pos >= len) return;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    *pos = (size_t)n >= len - *pos ? len : *pos + (size_t)n;
}

void
bc_origin_reset_stats(bc_origin_t *o)
{
    bc_origin_stats_t s;

    bc_origin_get_stats(o, &s);
    pthread_mutex_lock(&o->lock);
    o->reset_base = s;
    pthread_mutex_unlock(&o->lock);
}

/* a - b, 0 when a counter read before the reset's snapshot is behind it */
static uint64_t
since_reset(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

size_t
bc_origin_format_stats(bc_origin_t *o, char *buf, size_t len)
{
    bc_origin_stats_t s;
    size_t pos = 0;

    bc_origin_get_stats(o, &s);
    pthread_mutex_lock(&o->lock);
#define BC__ORIGIN_STAT_SINCE(name, help) s.name = since_reset(s.name, o->reset_base.name);
    BC_ORIGIN_STATS(BC__ORIGIN_STAT_SINCE)
#undef BC__ORIGIN_STAT_SINCE
    for (unsigned i = 0; i < BC_ORIGIN_ERR_COUNT; i++) {
        s.errors[i] = since_reset(s.errors[i], o->reset_base.errors[i]);
    }
    s.latency_count = since_reset(s.latency_count, o->reset_base.latency_count);
    s.latency_sum_us = since_reset(s.latency_sum_us, o->reset_base.latency_sum_us);
    pthread_mutex_unlock(&o->lock);
#define BC__ORIGIN_STAT_LINE(name, help) \
    put(buf, len, &pos, "STAT origin_%s %" PRIu64 "\r\n", #name, s.name);
    BC_ORIGIN_STATS(BC__ORIGIN_STAT_LINE)
#undef BC__ORIGIN_STAT_LINE
    for (unsigned i = 1; i < BC_ORIGIN_ERR_COUNT; i++) {
        put(buf, len, &pos, "STAT origin_errors_%s %" PRIu64 "\r\n",
            bc_origin_error_name((bc_origin_error_t)i), s.errors[i]);
    }
    put(buf, len, &pos, "STAT origin_inflight %" PRIu64 "\r\n", s.inflight);
    put(buf, len, &pos, "STAT origin_queued %" PRIu64 "\r\n", s.queued);
    put(buf, len, &pos, "STAT origin_negative_entries %" PRIu64 "\r\n", s.negative_entries);
    put(buf, len, &pos, "STAT origin_breakers_open %" PRIu64 "\r\n", s.breakers_open);
    put(buf, len, &pos, "STAT origin_latency_count %" PRIu64 "\r\n", s.latency_count);
    put(buf, len, &pos, "STAT origin_latency_sum_us %" PRIu64 "\r\n", s.latency_sum_us);
    /* A line cut by a full buffer is dropped whole. */
    if (pos >= len) {
        while (pos > 0 && buf[pos - 1] != '\n') pos--;
    }
    return pos;
}

cJSON *
bc_origin_stats_json(bc_origin_t *o)
{
    bc_origin_stats_t s;
    cJSON *j = cJSON_CreateObject(), *errors, *lat;

    if (j == NULL) return NULL;
    bc_origin_get_stats(o, &s);
#define BC__ORIGIN_STAT_JSON(name, help) cJSON_AddNumberToObject(j, #name, (double)s.name);
    BC_ORIGIN_STATS(BC__ORIGIN_STAT_JSON)
#undef BC__ORIGIN_STAT_JSON
    errors = cJSON_AddObjectToObject(j, "errors");
    for (unsigned i = 1; errors != NULL && i < BC_ORIGIN_ERR_COUNT; i++) {
        cJSON_AddNumberToObject(errors, bc_origin_error_name((bc_origin_error_t)i),
                                (double)s.errors[i]);
    }
    cJSON_AddNumberToObject(j, "inflight", (double)s.inflight);
    cJSON_AddNumberToObject(j, "queued", (double)s.queued);
    cJSON_AddNumberToObject(j, "negative_entries", (double)s.negative_entries);
    cJSON_AddNumberToObject(j, "breakers_open", (double)s.breakers_open);
    lat = cJSON_AddObjectToObject(j, "latency");
    if (lat != NULL) {
        cJSON *b = cJSON_AddArrayToObject(lat, "buckets");
        cJSON_AddNumberToObject(lat, "count", (double)s.latency_count);
        cJSON_AddNumberToObject(lat, "sum_seconds", (double)s.latency_sum_us / 1e6);
        for (unsigned i = 0; b != NULL && i < bc_origin_latency_nbuckets; i++) {
            cJSON *e = cJSON_CreateObject();
            if (e == NULL) break;
            cJSON_AddNumberToObject(e, "le", bc_origin_latency_le[i]);
            cJSON_AddNumberToObject(e, "count", (double)s.latency_buckets[i]);
            cJSON_AddItemToArray(b, e);
        }
    }
    return j;
}

void
bc_origin_metrics(bc_origin_t *o, bc_textbuf_t *tb)
{
    bc_origin_stats_t s;

    bc_origin_get_stats(o, &s);
#define BC__ORIGIN_STAT_METRIC(name, help) \
    bc_metric(tb, "origin_" #name "_total", "counter", "Origin: " help ".", s.name);
    BC_ORIGIN_STATS(BC__ORIGIN_STAT_METRIC)
#undef BC__ORIGIN_STAT_METRIC
    bc_textbuf_printf(tb, "# HELP bucketcache_origin_errors_total Origin: fills that failed "
                      "or misses refused, by kind:");
    for (unsigned i = 1; i < BC_ORIGIN_ERR_COUNT; i++) {
        bc_textbuf_printf(tb, " %s = %s;", bc_origin_error_name((bc_origin_error_t)i),
                          error_help[i]);
    }
    bc_textbuf_printf(tb, "\n# TYPE bucketcache_origin_errors_total counter\n");
    for (unsigned i = 1; i < BC_ORIGIN_ERR_COUNT; i++) {
        bc_textbuf_printf(tb, "bucketcache_origin_errors_total{kind=\"%s\"} %" PRIu64 "\n",
                          bc_origin_error_name((bc_origin_error_t)i), s.errors[i]);
    }
    bc_metric(tb, "origin_inflight", "gauge", "Origin: requests in flight.", s.inflight);
    bc_metric(tb, "origin_queued", "gauge", "Origin: keys waiting for a request slot.",
              s.queued);
    bc_metric(tb, "origin_negative_entries", "gauge",
              "Origin: slots of the negative cache in use (expired ones count until reused).",
              s.negative_entries);
    bc_metric(tb, "origin_breakers_open", "gauge",
              "Origin: origins whose circuit breaker is open or probing.", s.breakers_open);
    bc_textbuf_printf(tb, "# HELP bucketcache_origin_request_duration_seconds Origin: time "
                      "from sending a request to its end (answer, error or timeout).\n"
                      "# TYPE bucketcache_origin_request_duration_seconds histogram\n");
    for (unsigned i = 0; i < bc_origin_latency_nbuckets; i++) {
        bc_textbuf_printf(tb, "bucketcache_origin_request_duration_seconds_bucket{le=\"%g\"} "
                          "%" PRIu64 "\n", bc_origin_latency_le[i], s.latency_buckets[i]);
    }
    bc_textbuf_printf(tb, "bucketcache_origin_request_duration_seconds_bucket{le=\"+Inf\"} "
                      "%" PRIu64 "\n", s.latency_count);
    bc_textbuf_printf(tb, "bucketcache_origin_request_duration_seconds_sum %.6f\n",
                      (double)s.latency_sum_us / 1e6);
    bc_textbuf_printf(tb, "bucketcache_origin_request_duration_seconds_count %" PRIu64 "\n",
                      s.latency_count);
}

void
bc_origin_bucket_counts(bc_origin_t *o, uint32_t bucket, bc_origin_bucket_counts_t *out)
{
    memset(out, 0, sizeof(*out));
    if (o == NULL || bucket >= o->nbuckets) return;
#define BC__ORIGIN_BUCKET_READ(name, help)                                                  \
    out->name = atomic_load_explicit(&o->per_bucket[bucket].name, memory_order_relaxed);
    BC_ORIGIN_BUCKET_COUNTERS(BC__ORIGIN_BUCKET_READ)
#undef BC__ORIGIN_BUCKET_READ
}
