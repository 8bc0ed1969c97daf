/*
 * migrate.c -- the node's half of bucket migration: lifecycle, counters
 * and what every endpoint shares; see migrate.h for the endpoints and the
 * behaviour.
 *
 *     console                 destination (jobs.c,                 source (export.c)
 *                             import.c)
 *     -------                 -----------------------              ------------------
 *     POST import ----------> job slot, thread started; 202
 *                             thread: drop leftovers of B
 *                                     GET export?bucket=B&epoch=E --> fenced for E?
 *                                                                      no:  409 retry
 *                             (parked until fenced, at most 200 ms;  yes: stream B, a
 *                             then 409: again after 1..50 ms)               step of its table
 *                             <---------------------- frames ---------      per shard-lock hold
 *                             decode as bytes arrive, store each            (export_reply)
 *                             item add-if-absent; check END
 *     GET import?wait_ms ---> (parked while running; the job wakes it)
 *                        <--- {"state":"done","items":..,"bytes":..}
 *
 * The import's HTTP client is the streaming GET of common/bc_http_client.h
 * (bc_http_stream_*, not bc_http_request, which buffers whole responses):
 * the body of an export can be as large as a bucket, and frames are stored
 * while the rest is still in flight.  It asks with HTTP/1.0, so a streamed
 * export needs no chunked framing: it ends where the connection closes,
 * and its END frame says whether it is complete.
 *
 * migrate_int.h lists the module's files.
 */
#include "migrate/migrate.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "bc_cluster.h"
#include "bc_config.h"
#include "bc_log.h"
#include "bc_time.h"
#include "engine/cache.h"
#include "engine/tap.h"
#include "migrate/migrate_int.h"

#define MIG_DEFAULT_IMPORTS     48u       /* the console runs at most 16 copies + 32 precopies */
#define MIG_DEFAULT_TIMEOUT_MS  60000u
#define MIG_DEFAULT_CATCHUP_MS  50u       /* a finished precopy is caught up this often */
#define MIG_SLOTS_PER_IMPORT    4u        /* finished jobs kept for status queries */

/* ---- what every endpoint shares ---- */

/* buckets=B1,B2,...: 1..MIG_BATCH_MAX distinct buckets of this cache,
 * each optionally B:T (an export's change tracker T for B). */
static bool
mig_parse_list(bc_node_migrate_t *mig, const char *text, size_t len, mig_params_t *p)
{
    uint32_t nb = bc_cache_nbuckets(mig->cache);
    size_t i = 0;
    p->nlist = 0;
    while (i <= len) {
        size_t j = i, colon;
        while (j < len && text[j] != ',') j++;
        for (colon = i; colon < j && text[colon] != ':'; colon++) {}
        uint64_t v, since = 0;
        if (p->nlist == MIG_BATCH_MAX || !bc_parse_u64n(text + i, colon - i, UINT32_MAX, &v) ||
            v >= nb) {
            return false;
        }
        if (colon < j) {
            if (!bc_parse_u64n(text + colon + 1, j - colon - 1, UINT64_MAX, &since) ||
                since == 0) {
                return false;
            }
            p->has_sinces = true;
        }
        p->sinces[p->nlist] = since;
        for (uint32_t k = 0; k < p->nlist; k++) {
            if (p->list[k] == v) return false;
        }
        p->list[p->nlist++] = (uint32_t)v;
        i = j + 1;
    }
    return p->nlist > 0;
}

/* Parses bucket/epoch/source; on error queues a 400 into *result. */
bool
bc__migrate_params_parse(bc_node_migrate_t *mig, bc_http_req_t *req, mig_params_t *p,
                         enum MHD_Result *result)
{
    bc_http_param_t params[8];
    int n = req->query != NULL ? bc_http_parse_query(req->query, params, 8) : 0;
    memset(p, 0, sizeof(*p));
    if (n < 0) {
        *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "malformed query string");
        return false;
    }
    for (int i = 0; i < n; i++) {
        const bc_http_param_t *q = &params[i];
        uint64_t v;
        if (strcmp(q->name, "bucket") == 0) {
            if (!bc_parse_u64n(q->value, q->value_len, UINT32_MAX, &v) ||
                v >= bc_cache_nbuckets(mig->cache)) {
                *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                              "bucket: expected 0..%u",
                                              bc_cache_nbuckets(mig->cache) - 1);
                return false;
            }
            p->bucket = (uint32_t)v;
            p->has_bucket = true;
        } else if (strcmp(q->name, "buckets") == 0) {
            if (!mig_parse_list(mig, q->value, q->value_len, p)) {
                *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                              "buckets: expected 1 to %u distinct buckets "
                                              "0..%u (each as B or B:T), comma-separated",
                                              MIG_BATCH_MAX,
                                              bc_cache_nbuckets(mig->cache) - 1);
                return false;
            }
        } else if (strcmp(q->name, "epoch") == 0) {
            if (!bc_parse_u64n(q->value, q->value_len, UINT64_MAX, &p->epoch) || p->epoch == 0) {
                *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                              "epoch: expected a table epoch >= 1");
                return false;
            }
            p->has_epoch = true;
        } else if (strcmp(q->name, "from") == 0) {
            if (!bc_parse_u64n(q->value, q->value_len, BC_GROUP_MAX_GID, &v) || v == 0) {
                *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                              "from: expected the source's group id");
                return false;
            }
            p->from = (uint32_t)v;
            p->has_from = true;
        } else if (strcmp(q->name, "source") == 0) {
            bc_hostport_t hp;
            if (q->value_len == 0 || q->value_len >= sizeof(p->source) ||
                q->value_len != strlen(q->value) || bc_parse_hostport(q->value, 0, &hp) != BC_OK) {
                *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                              "source: expected the source's admin host:port");
                return false;
            }
            snprintf(p->source, sizeof(p->source), "%s", q->value);
            p->has_source = true;
        } else if (strcmp(q->name, "tap") == 0 || strcmp(q->name, "precopy") == 0 ||
                   strcmp(q->name, "catchup") == 0) {
            if (!bc_parse_u64n(q->value, q->value_len, 1, &v) || v != 1) {
                *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "%s: expected 1",
                                              q->name);
                return false;
            }
            if (q->name[0] == 't') p->tap = true;
            else if (q->name[0] == 'c') p->catchup = true;
            else p->precopy = true;
        } else if (strcmp(q->name, "since") == 0) {
            if (!bc_parse_u64n(q->value, q->value_len, UINT64_MAX, &p->since) || p->since == 0) {
                *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                              "since: expected a change tracker id");
                return false;
            }
        } else if (strcmp(q->name, "wait_ms") == 0) {
            if (!bc_parse_u64n(q->value, q->value_len, MIG_WAIT_MAX_MS, &v)) {
                *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                              "wait_ms: expected 0..%u", MIG_WAIT_MAX_MS);
                return false;
            }
            p->wait_ms = (uint32_t)v;
        } else {
            *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                          "unknown query parameter \"%.40s\"", q->name);
            return false;
        }
    }
    if (p->has_bucket == (p->nlist > 0)) {
        *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, p->has_bucket
                                      ? "bucket and buckets: one or the other"
                                      : "bucket is required");
        return false;
    }
    if (p->nlist > 0) {
        if (!p->tap && !p->precopy && !p->catchup && !p->has_epoch) {
            *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                          "buckets: a batch is of precopies, or of copies at "
                                          "one epoch");
            return false;
        }
        if (p->since != 0) {
            *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                          "since: with buckets=, each bucket's is B:T");
            return false;
        }
        if (p->has_sinces && (p->tap || p->precopy)) {
            *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                          "buckets: B:T is for a copy's export only");
            return false;
        }
        p->bucket = p->list[0];
    } else {
        p->nlist = 1;
        p->list[0] = p->bucket;
        p->sinces[0] = p->since;
    }
    if (p->catchup) {
        bool each = true;
        for (uint32_t i = 0; i < p->nlist; i++) each = each && p->sinces[i] != 0;
        if (p->has_epoch || p->tap || p->precopy || !each) {
            *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                          "catchup: takes each bucket's change tracker (B:T, "
                                          "or since=) and no epoch, tap or precopy");
            return false;
        }
    }
    return true;
}

enum MHD_Result
bc__migrate_refuse(bc_http_req_t *req, bool retry, uint64_t epoch, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cJSON *doc = cJSON_CreateObject();
    if (doc == NULL) return MHD_NO;
    cJSON_AddStringToObject(doc, "error", msg);
    cJSON_AddBoolToObject(doc, "retry", retry);
    cJSON_AddNumberToObject(doc, "epoch", (double)epoch);
    return bc_http_reply_json(req, MHD_HTTP_CONFLICT, doc);
}

bool
bc__migrate_source_listed(const char (*list)[BC_ADDR_MAX], uint32_t n, const char *source)
{
    for (uint32_t i = 0; i < n; i++) {
        if (strcmp(list[i], source) == 0) return true;
    }
    return false;
}

bool
bc__migrate_node_owns(bc_node_migrate_t *mig, uint32_t bucket)
{
    bc_node_cluster_info_t info;
    uint32_t owner = 0;
    bc_node_cluster_get_info(mig->cluster, &info);
    (void)bc_node_cluster_route(mig->cluster, bucket, false, &owner, NULL);
    return owner == info.gid;
}

/* ---- lifecycle ---- */

/* A test knob: milliseconds from the environment variable `name` (at most
 * max; 0 when unset or not a number), announced with what it does. */
static uint32_t
mig_test_delay(const char *name, uint64_t max, const char *what)
{
    const char *text = getenv(name);
    uint64_t v;
    if (text == NULL || text[0] == '\0' || !bc_parse_u64n(text, strlen(text), max, &v)) return 0;
    log_warn("migrate: %s=%u: %s (for tests)", name, (unsigned)v, what);
    return (uint32_t)v;
}

/* This thread's CPU time (µs).  The prefault thread counts its faulting
 * in CPU time, not wall time: on a busy machine it also waits for a core,
 * which says nothing about how fast memory faults in. */
static int64_t
mig_thread_cpu_us(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * The prefault thread: while imports run, keeps MIG_PREFAULT_AHEAD bytes
 * of the cache's memory faulted in ahead of them.  Without -L a fresh page
 * costs its fault (the kernel zeroing it) on the thread that first stores
 * into it -- here, an import thread, whose receiving then stalls; this
 * thread takes that cost on another core.  It waits on prefault_cv while
 * no import runs, and backs off 2 ms when the memory ahead is ready or the
 * budget has no room.
 */
static void *
mig_prefault_main(void *arg)
{
    bc_node_migrate_t *mig = arg;
    pthread_mutex_lock(&mig->mu);
    while (!mig->stopping) {
        if (mig->running == 0) {
            pthread_cond_wait(&mig->prefault_cv, &mig->mu);
            continue;
        }
        pthread_mutex_unlock(&mig->mu);
        int64_t cpu0 = mig_thread_cpu_us();
        size_t backed = bc_cache_prefault(mig->cache, MIG_PREFAULT_AHEAD);
        if (backed == 0) {
            bc_time_sleep_ms(2);
        } else {
            atomic_fetch_add_explicit(&mig->prefault_bytes, backed, memory_order_relaxed);
            atomic_fetch_add_explicit(&mig->prefault_cpu_us,
                                      (uint64_t)(mig_thread_cpu_us() - cpu0),
                                      memory_order_relaxed);
        }
        pthread_mutex_lock(&mig->mu);
    }
    pthread_mutex_unlock(&mig->mu);
    return NULL;
}

bc_status_t
bc_node_migrate_create(const bc_node_migrate_config_t *config, bc_node_migrate_t **out)
{
    *out = NULL;
    if (config == NULL || config->cache == NULL || config->cluster == NULL) return BC_EINVAL;
    bc_node_migrate_t *mig = calloc(1, sizeof(*mig));
    if (mig == NULL) return BC_ENOMEM;
    mig->cache = config->cache;
    mig->cluster = config->cluster;
    mig->server = config->server;
    mig->httpd = config->httpd;
    mig->peer_auth = config->peer_auth;
    mig->max_imports = config->settings.max_imports ? config->settings.max_imports : MIG_DEFAULT_IMPORTS;
    mig->timeout_ms = config->settings.import_timeout_ms ? config->settings.import_timeout_ms
                                                : MIG_DEFAULT_TIMEOUT_MS;
    mig->test_delay_ms = mig_test_delay("BC_TEST_IMPORT_DELAY_MS", 3600000,
                                        "every import waits this many ms before it reports "
                                        "done: a slow destination");
    mig->test_step_delay_ms = mig_test_delay("BC_TEST_IMPORT_STEP_DELAY_MS", 10000,
                                             "imports wait this many ms after each read from "
                                             "the source: a slow but steady destination");
    mig->test_export_delay_ms = mig_test_delay("BC_TEST_EXPORT_DELAY_MS", 60000,
                                               "every copy's export waits this many ms once "
                                               "its bucket is fenced: a slow source");
    mig->catchup_ms = config->settings.catchup_ms ? config->settings.catchup_ms : MIG_DEFAULT_CATCHUP_MS;
    mig->njobs = mig->max_imports * MIG_SLOTS_PER_IMPORT;
    mig->jobs = calloc(mig->njobs, sizeof(*mig->jobs));
    if (mig->jobs == NULL) {
        free(mig);
        return BC_ENOMEM;
    }
    bc_tap_config_t tc = {.cache = mig->cache};
    if (bc_tap_set_create(&tc, &mig->taps) != BC_OK) {
        free(mig->jobs);
        free(mig);
        return BC_ENOMEM;
    }
    pthread_mutex_init(&mig->mu, NULL);
    pthread_cond_init(&mig->prefault_cv, NULL);
    pthread_cond_init(&mig->catchup_done_cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&mig->catchup_cv, &ca);
    pthread_condattr_destroy(&ca);
    /* Without the thread, precopies wait as they are (their final copies
     * carry every change since). */
    mig->catchup_started =
        pthread_create(&mig->catchup_thread, NULL, bc__migrate_catchup_main, mig) == 0;
    /* A thread that fails to start only leaves the faults to the imports. */
    if (bc_cache_preallocated(mig->cache) == 0) {
        mig->prefault_started =
            pthread_create(&mig->prefault_thread, NULL, mig_prefault_main, mig) == 0;
    }
    bc_node_cluster_set_drop(mig->cluster, bc__migrate_drop, mig);
    *out = mig;
    return BC_OK;
}

void
bc_node_migrate_shutdown(bc_node_migrate_t *mig)
{
    if (mig == NULL) return;
    pthread_mutex_lock(&mig->mu);
    mig->stopping = true;
    mig->httpd = NULL;
    for (uint32_t i = 0; i < mig->njobs; i++) atomic_store(&mig->jobs[i].cancel, true);
    pthread_cond_broadcast(&mig->prefault_cv);
    pthread_cond_broadcast(&mig->catchup_cv);
    bool prefault = mig->prefault_started, catchup = mig->catchup_started;
    mig->prefault_started = mig->catchup_started = false;
    pthread_mutex_unlock(&mig->mu);
    if (prefault) pthread_join(mig->prefault_thread, NULL);
    if (catchup) pthread_join(mig->catchup_thread, NULL);
    for (uint32_t i = 0; i < mig->njobs; i++) {
        pthread_mutex_lock(&mig->mu);
        import_job_t *j = &mig->jobs[i];
        bool join = j->joinable;
        pthread_t t = j->thread;
        j->joinable = false;
        pthread_mutex_unlock(&mig->mu);
        if (join) pthread_join(t, NULL);
    }
}

void
bc_node_migrate_destroy(bc_node_migrate_t *mig)
{
    if (mig == NULL) return;
    bc_node_migrate_shutdown(mig);
    bc_node_cluster_set_drop(mig->cluster, NULL, NULL);
    bc_tap_set_destroy(mig->taps);
    pthread_cond_destroy(&mig->prefault_cv);
    pthread_cond_destroy(&mig->catchup_cv);
    pthread_cond_destroy(&mig->catchup_done_cv);
    pthread_mutex_destroy(&mig->mu);
    free(mig->jobs);
    free(mig);
}

void
bc_node_migrate_get_stats(bc_node_migrate_t *mig, bc_node_migrate_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (mig == NULL) return;
    out->exports = atomic_load(&mig->exports);
    out->export_refusals = atomic_load(&mig->export_refusals);
    out->export_auth_failures = atomic_load(&mig->export_auth_failures);
    out->export_items = atomic_load(&mig->export_items);
    out->export_bytes = atomic_load(&mig->export_bytes);
    out->imports_done = atomic_load(&mig->imports_done);
    out->imports_failed = atomic_load(&mig->imports_failed);
    out->import_items = atomic_load(&mig->import_items);
    out->import_bytes = atomic_load(&mig->import_bytes);
    out->precopies = atomic_load(&mig->precopies);
    out->export_deltas = atomic_load(&mig->export_deltas);
    out->import_deltas = atomic_load(&mig->import_deltas);
    out->delta_fallbacks = atomic_load(&mig->delta_fallbacks);
    out->export_catchups = atomic_load(&mig->export_catchups);
    out->catchups = atomic_load(&mig->catchups);
    out->catchup_items = atomic_load(&mig->catchup_items);
    out->catchup_lost = atomic_load(&mig->catchup_lost);
    out->precopy_refreshes = atomic_load(&mig->precopy_refreshes);
    out->import_delta_items = atomic_load(&mig->import_delta_items);
    out->export_parted = atomic_load(&mig->export_parted);
    out->import_parted = atomic_load(&mig->import_parted);
    out->prefault_bytes = atomic_load(&mig->prefault_bytes);
    out->prefault_cpu_us = atomic_load(&mig->prefault_cpu_us);
    bc_tap_stats_t ts;
    bc_tap_get_stats(mig->taps, &ts);
    out->taps_active = ts.active;
    out->taps_overflowed = ts.overflowed;
    pthread_mutex_lock(&mig->mu);
    out->imports_running = mig->running;
    pthread_mutex_unlock(&mig->mu);
}

void
bc_node_migrate_set_commit(bc_node_migrate_t *mig, bool (*fn)(void *ctx), void *ctx)
{
    mig->commit = fn;
    mig->commit_ctx = ctx;
}
