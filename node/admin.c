/*
 * admin.c -- the node's HTTP admin port (see admin.h for the endpoints).
 *
 * HOW
 *   The HTTP plumbing is common/bc_httpd: it binds the listener, runs
 *   libmicrohttpd on one internal thread, matches the route table at the
 *   bottom of this file, answers 404/405 (with Allow) itself, collects PUT
 *   bodies up to the cache's max item size (413 beyond, refused from
 *   Content-Length before reading when it is given; bodies sent with other
 *   methods are discarded unread) and hands the raw, undecoded path and
 *   query to the handlers.  This file is the handlers only.  They all run
 *   on MHD's one thread, so they need no locking of their own; they call
 *   only thread-safe functions of the cache, the server and the cluster.
 *
 *   Keys are percent-decoded here, strictly (bc_http_percent_decode): MHD's
 *   own unescaping would turn "%00" into a NUL that silently cuts the key
 *   and would let invalid escapes through unchanged.
 *
 *   GET /v1/keys/{key} sends the value straight from the item's memory
 *   (bc_http_reply_buffer): the response holds the reference bc_cache_get
 *   returned, and the free callback drops it when MHD is done with the
 *   response, so a 1 MiB value is never copied and a concurrent delete
 *   cannot free it under us.
 *
 *   In a cluster (bc_admin_set_cluster) every key request first asks
 *   bc_node_cluster_route whether this node may serve the key's bucket;
 *   if not, the answer is 421 Misdirected Request with the reason, the
 *   owner group and the table epoch, so a client knows to refresh its
 *   table and go elsewhere.  Nothing is read or stored for such a bucket.
 *
 * BOUNDS (a hostile client cannot grow memory)
 *   bc_httpd limits connections (max_conns), request line + headers per
 *   connection (64 KiB; MHD answers 414/431 above it) and idle time
 *   (conn_timeout_s); PUT bodies are bounded by the max item size.  So the
 *   worst case is about max_conns * (max item size + 64 KiB).
 */
#include "admin.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bc_hash.h"
#include "bc_config.h"
#include "bc_httpd.h"
#include "bc_log.h"
#include "bc_mcproto.h"
#include "bc_metrics.h"
#include "bc_time.h"
#include "bc_text.h"
#include "engine/hotkeys.h"
#include "migrate/migrate.h"
#include "origin/origin_http.h"
#include "repl/repl.h"

#define ADMIN_DEFAULT_MAX_CONNS 2048u
#define ADMIN_DEFAULT_TIMEOUT_S 10u
#define MAX_QUERY_PARAMS        8

#ifndef MHD_HTTP_MISDIRECTED_REQUEST
#define MHD_HTTP_MISDIRECTED_REQUEST 421
#endif

struct bc_admin {
    bc_cache_t *cache;          /* borrowed */
    bc_server_t *server;        /* borrowed, may be NULL */
    bc_node_cluster_t *cluster; /* borrowed; NULL = standalone */
    bc_node_migrate_t *migrate; /* owned; NULL = standalone */
    bc_repl_t *repl;            /* borrowed; NULL = no replication */
    bc_hotkeys_t *hotkeys;      /* borrowed; NULL = no hot-key sampling */
    bc_origin_t *origin;        /* borrowed; NULL = no read-through */
    bc_origin_http_t *origin_http; /* owned: GETs parked for fills */
    uint32_t max_conns;
    bc_httpd_t *httpd;
    bool has_token;             /* an admin token is configured */
    bc_peerauth_t *peer_auth;   /* borrowed: the cluster secret, for migration; NULL: none */
    bc_node_migrate_settings_t migrate_settings;   /* 0: defaults */
    time_t started;
    _Atomic uint64_t refused;   /* key requests answered 421 */
};


static cJSON *repl_json(bc_admin_t *admin);
static void admin_write_pause_json(cJSON *o, const bc_node_cluster_info_t *ci);

/* ---- cluster facts ---- */

/* Adds the cluster facts /health and /stats share to o (standalone: none). */
static void
cluster_json_add(bc_admin_t *admin, cJSON *o, bool counters)
{
    bc_node_cluster_info_t ci;

    if (admin->cluster == NULL) return;
    bc_node_cluster_get_info(admin->cluster, &ci);
    cJSON_AddNumberToObject(o, "group", ci.gid);
    cJSON_AddStringToObject(o, "role", ci.primary ? "primary" : "backup");
    cJSON_AddNumberToObject(o, "epoch", (double)ci.epoch);
    cJSON_AddBoolToObject(o, "zookeeper_connected", ci.connected);
    cJSON_AddStringToObject(o, "node", ci.node_name);
    if (counters && admin->migrate != NULL) {
        bc_node_migrate_stats_t ms;
        cJSON *m = cJSON_AddObjectToObject(o, "migrate");
        bc_node_migrate_get_stats(admin->migrate, &ms);
        if (m != NULL) {
#define BC__ADMIN_MIGRATE_JSON(field, json, metric, type, help) \
            cJSON_AddNumberToObject(m, json, (double)ms.field);
            BC_MIGRATE_STATS(BC__ADMIN_MIGRATE_JSON)
#undef BC__ADMIN_MIGRATE_JSON
        }
    }
    if (counters && admin->repl != NULL) {
        cJSON *rj = repl_json(admin);
        if (rj != NULL) cJSON_AddItemToObject(o, "replication", rj);
    }
    if (counters) {
        cJSON_AddNumberToObject(o, "owned_buckets", ci.owned_buckets);
        cJSON_AddNumberToObject(o, "registrations", (double)ci.registrations);
        cJSON_AddNumberToObject(o, "buckets_dropped", (double)ci.buckets_dropped);
        cJSON_AddNumberToObject(o, "http_refused",
                                (double)atomic_load_explicit(&admin->refused,
                                                             memory_order_relaxed));
        admin_write_pause_json(o, &ci);
    }
}

/* "write_pause": the write pauses of this node's buckets as their primary
 * (bc_node_cluster_info_t): how many, their total and longest, and how
 * many up to each bound (the last entry: longer). */
static void
admin_write_pause_json(cJSON *o, const bc_node_cluster_info_t *ci)
{
    cJSON *wp = cJSON_AddObjectToObject(o, "write_pause");
    if (wp == NULL) return;
    cJSON_AddNumberToObject(wp, "count", (double)ci->write_pauses);
    cJSON_AddNumberToObject(wp, "sum_us", (double)ci->write_pause_sum_us);
    cJSON_AddNumberToObject(wp, "max_us", (double)ci->write_pause_max_us);
    cJSON *hist = bc_metric_histogram_json(bc_node_pause_bounds_ms, ci->write_pause_hist,
                                           BC_NODE_PAUSE_NBOUNDS);
    if (hist != NULL) cJSON_AddItemToObject(wp, "histogram", hist);
}

/* ---- replication (repl.h) ---- */

static cJSON *
repl_json(bc_admin_t *admin)
{
    bc_repl_info_t ri;
    bc_node_cluster_info_t ci;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) return NULL;
    bc_repl_get_info(admin->repl, &ri);
    bc_node_cluster_get_info(admin->cluster, &ci);
    cJSON_AddStringToObject(o, "role", ri.primary ? "primary" : "backup");
    cJSON_AddStringToObject(o, "mode", bc_repl_mode_name(ri.mode));
    cJSON_AddStringToObject(o, "replid", ri.replid);
    cJSON_AddBoolToObject(o, "synced", ri.synced);
    cJSON_AddBoolToObject(o, "writable", ci.writable);
    cJSON_AddNumberToObject(o, "lease_ms", (double)ci.lease_ms);
    cJSON_AddNumberToObject(o, "fenced_writes", (double)ci.fenced_writes);
    cJSON_AddStringToObject(o, "node", ci.node_name);
    cJSON_AddNumberToObject(o, "self_promotions", (double)ci.self_promotions);
    int role = ri.primary ? BC_REPL_PRIMARY : BC_REPL_BACKUP;
#define BC__ADMIN_REPL_JSON(field, shown, json, stat, metric, type, help) \
    if ((shown) == BC_REPL_BOTH || (shown) == role) cJSON_AddNumberToObject(o, json, (double)ri.field);
    BC_REPL_NUMBERS(BC__ADMIN_REPL_JSON)
#undef BC__ADMIN_REPL_JSON
    if (ri.primary) {
        /* The in-sync set (repl.h): the record this primary keeps in
         * ZooKeeper, and whether writes are refused for want of members. */
        cJSON *isr = cJSON_AddObjectToObject(o, "in_sync");
        if (isr != NULL) {
            cJSON_AddStringToObject(isr, "state", ri.isr_state);
            cJSON *members = cJSON_AddArrayToObject(isr, "members");
            for (uint32_t i = 0; members != NULL && i < ri.isr.n; i++) {
                cJSON_AddItemToArray(members, cJSON_CreateString(ri.isr.in_sync[i]));
            }
            cJSON_AddNumberToObject(isr, "epoch", (double)ri.isr.epoch);
            cJSON_AddNumberToObject(isr, "version", (double)ri.isr_version);
            cJSON_AddNumberToObject(isr, "min_in_sync", (double)ri.min_in_sync);
            cJSON_AddBoolToObject(isr, "writes_refused", ri.isr_short);
            cJSON_AddNumberToObject(isr, "refused_writes", (double)ci.in_sync_refusals);
        }
        cJSON *arr = cJSON_AddArrayToObject(o, "backups");
        for (uint32_t i = 0; arr != NULL && i < ri.backups && i < BC_REPL_MAX_BACKUPS_REPORTED;
             i++) {
            const bc_repl_backup_info_t *b = &ri.backup[i];
            cJSON *jb = cJSON_CreateObject();
            if (jb == NULL) break;
            cJSON_AddStringToObject(jb, "name", b->name);
            cJSON_AddStringToObject(jb, "addr", b->addr);
            cJSON_AddBoolToObject(jb, "online", b->online);
            cJSON_AddBoolToObject(jb, "in_sync", b->in_sync);
            cJSON_AddBoolToObject(jb, "recorded", b->recorded);
            cJSON_AddBoolToObject(jb, "lagging", b->lagging);
            cJSON_AddNumberToObject(jb, "acked", (double)b->acked);
            cJSON_AddNumberToObject(jb, "lag_bytes", (double)b->lag_bytes);
            cJSON_AddItemToArray(arr, jb);
        }
    } else {
        cJSON_AddBoolToObject(o, "link_up", ri.link_up);
        cJSON_AddStringToObject(o, "primary", ri.primary_addr);
        cJSON_AddNumberToObject(o, "lag_ms", (double)ri.lag_ms);
    }
    return o;
}

/* GET /v1/repl: this node's replication state (the console reads the
 * offsets from here when it picks a new primary). */
static enum MHD_Result
handle_repl(void *ctx, bc_http_req_t *req)
{
    bc_admin_t *admin = ctx;
    if (admin->repl == NULL) {
        return bc_http_reply_error(req, MHD_HTTP_NOT_FOUND,
                                   "replication runs only on a node in a cluster");
    }
    cJSON *doc = repl_json(admin);
    if (doc == NULL) return bc_http_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    return bc_http_reply_json(req, MHD_HTTP_OK, doc);
}

/* ---- /health ---- */

static enum MHD_Result
handle_health(void *ctx, bc_http_req_t *req)
{
    bc_admin_t *admin = ctx;
    cJSON *doc = cJSON_CreateObject();

    if (doc == NULL) return MHD_NO;
    cJSON_AddStringToObject(doc, "status", "ok");
    if (admin->has_token && !req->authenticated) {
        /* Open to load balancers: what they route on, nothing more
         * (docs/security.md). */
        cJSON_AddStringToObject(doc, "mode", admin->cluster != NULL ? "cluster" : "standalone");
        if (admin->cluster != NULL) {
            bc_node_cluster_info_t ci;
            bc_node_cluster_get_info(admin->cluster, &ci);
            cJSON_AddStringToObject(doc, "role", ci.primary ? "primary" : "backup");
            cJSON_AddBoolToObject(doc, "zookeeper_connected", ci.connected);
        }
        return bc_http_reply_json(req, MHD_HTTP_OK, doc);
    }
    cJSON_AddStringToObject(doc, "version", BC_VERSION);
    /* what "version" answers on the data port (memcached clients parse it) */
    cJSON_AddStringToObject(doc, "memcached_protocol", BC_MC_PROTOCOL_VERSION);
    cJSON_AddNumberToObject(doc, "pid", (double)getpid());
    cJSON_AddNumberToObject(doc, "uptime_seconds", (double)(time(NULL) - admin->started));
    cJSON_AddStringToObject(doc, "mode", admin->cluster != NULL ? "cluster" : "standalone");
    cluster_json_add(admin, doc, false);
    return bc_http_reply_json(req, MHD_HTTP_OK, doc);
}

/* ---- /stats ---- */

static cJSON *
stats_server_json(bc_admin_t *admin)
{
    bc_server_stats_t ss;
    cJSON *o = cJSON_CreateObject();

    if (o == NULL || admin->server == NULL) return o;
    memset(&ss, 0, sizeof(ss));
    bc_server_get_stats(admin->server, &ss);
    cJSON_AddNumberToObject(o, "port", bc_server_port(admin->server));
    cJSON_AddNumberToObject(o, "threads", ss.threads);
    cJSON_AddNumberToObject(o, "curr_connections", (double)ss.curr_connections);
    cJSON_AddNumberToObject(o, "total_connections", (double)ss.total_connections);
    cJSON_AddNumberToObject(o, "rejected_connections", (double)ss.rejected_connections);
    /* Every per-worker counter, straight from the X-macro: a counter added
     * to stats.h appears here without touching this file. */
#define BC__ADMIN_STAT_JSON(name, metric, labels, desc) \
    cJSON_AddNumberToObject(o, #name, (double)ss.totals.name);
    BC_THREAD_STATS(BC__ADMIN_STAT_JSON)
#undef BC__ADMIN_STAT_JSON
    return o;
}

static cJSON *
stats_cache_json(bc_admin_t *admin)
{
    bc_cache_stats_t cs;
    cJSON *o = cJSON_CreateObject();

    if (o == NULL) return NULL;
    bc_cache_get_stats(admin->cache, &cs);
    cJSON_AddStringToObject(o, "policy", bc_cache_policy_name(admin->cache));
    cJSON_AddNumberToObject(o, "buckets", bc_cache_nbuckets(admin->cache));
    cJSON_AddNumberToObject(o, "max_item_size", (double)bc_cache_max_item_size(admin->cache));
    cJSON_AddNumberToObject(o, "curr_items", (double)cs.curr_items);
    cJSON_AddNumberToObject(o, "total_items", (double)cs.total_items);
    cJSON_AddNumberToObject(o, "mem_used", (double)cs.mem_used);
    cJSON_AddNumberToObject(o, "mem_limit", (double)cs.mem_limit);
    cJSON_AddNumberToObject(o, "preallocated_bytes", (double)bc_cache_preallocated(admin->cache));
    cJSON_AddNumberToObject(o, "data_bytes", (double)cs.data_bytes);
    cJSON_AddNumberToObject(o, "evictions", (double)cs.evictions);
    cJSON_AddNumberToObject(o, "expired_unfetched", (double)cs.expired_unfetched);
    cJSON_AddNumberToObject(o, "evicted_unfetched", (double)cs.evicted_unfetched);
    cJSON_AddNumberToObject(o, "reclaimed", (double)cs.reclaimed);
    cJSON_AddNumberToObject(o, "expired_active", (double)cs.expired_active);
    cJSON_AddNumberToObject(o, "flushed", (double)cs.flushed);
    cJSON_AddNumberToObject(o, "pinned_bytes", (double)cs.pinned_bytes);
    cJSON *seg = cJSON_AddObjectToObject(o, "segments");
    if (seg != NULL) {
        cJSON_AddNumberToObject(seg, "size", (double)cs.segment_size);
        cJSON_AddNumberToObject(seg, "backed", (double)cs.segments_backed);
        cJSON_AddNumberToObject(seg, "free", (double)cs.segments_free);
        cJSON_AddNumberToObject(seg, "evicted", (double)cs.segments_evicted);
        cJSON_AddNumberToObject(seg, "compacted", (double)cs.segments_compacted);
        cJSON_AddNumberToObject(seg, "prefaulted", (double)cs.segments_prefaulted);
        cJSON_AddNumberToObject(seg, "items_moved", (double)cs.items_moved);
    }
    return o;
}

/*
 * "buckets": [{"bucket": b, "items": n, "bytes": n}, ...], only non-empty
 * buckets unless all is set.  The console reads this to weigh buckets.
 */
static cJSON *
stats_buckets_json(bc_admin_t *admin, bool all)
{
    uint32_t n = bc_cache_nbuckets(admin->cache);
    cJSON *arr = cJSON_CreateArray();

    if (arr == NULL) return NULL;
    for (uint32_t b = 0; b < n; b++) {
        bc_bucket_stats_t bs;
        cJSON *e;
        if (bc_cache_bucket_stats(admin->cache, b, &bs) != BC_OK) continue;
        if (!all && bs.items == 0) continue;
        e = cJSON_CreateObject();
        if (e == NULL) {
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddNumberToObject(e, "bucket", b);
        cJSON_AddNumberToObject(e, "items", (double)bs.items);
        cJSON_AddNumberToObject(e, "bytes", (double)bs.bytes);
        cJSON_AddItemToArray(arr, e);
    }
    return arr;
}

static enum MHD_Result
handle_stats(void *ctx, bc_http_req_t *req)
{
    bc_admin_t *admin = ctx;
    bc_http_param_t params[MAX_QUERY_PARAMS];
    int nparams = req->query != NULL ? bc_http_parse_query(req->query, params, MAX_QUERY_PARAMS)
                                     : 0;
    bool all_buckets = false;
    cJSON *doc, *process, *server, *cache, *buckets, *cluster = NULL;

    if (nparams == -2) {
        return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "too many query parameters");
    }
    if (nparams < 0) {
        return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "malformed query string");
    }
    for (int i = 0; i < nparams; i++) {
        if (strcmp(params[i].name, "buckets") != 0) {
            return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                       "unknown query parameter (only buckets=all|nonempty)");
        }
        /* An embedded %00 would make strcmp see a shorter value. */
        if (params[i].value_len != strlen(params[i].value)) {
            return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                       "buckets: expected all or nonempty");
        }
        if (strcmp(params[i].value, "all") == 0) {
            all_buckets = true;
        } else if (strcmp(params[i].value, "nonempty") != 0) {
            return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                       "buckets: expected all or nonempty");
        }
    }
    doc = cJSON_CreateObject();
    process = cJSON_CreateObject();
    server = stats_server_json(admin);
    cache = stats_cache_json(admin);
    buckets = stats_buckets_json(admin, all_buckets);
    if (admin->cluster != NULL) {
        cluster = cJSON_CreateObject();
        if (cluster != NULL) cluster_json_add(admin, cluster, true);
    }
    if (doc == NULL || process == NULL || server == NULL || cache == NULL || buckets == NULL ||
        (admin->cluster != NULL && cluster == NULL)) {
        cJSON_Delete(doc);
        cJSON_Delete(process);
        cJSON_Delete(server);
        cJSON_Delete(cache);
        cJSON_Delete(buckets);
        cJSON_Delete(cluster);
        return bc_http_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    cJSON_AddStringToObject(process, "version", BC_VERSION);
    cJSON_AddStringToObject(process, "memcached_protocol", BC_MC_PROTOCOL_VERSION);
    cJSON_AddNumberToObject(process, "pid", (double)getpid());
    cJSON_AddNumberToObject(process, "uptime_seconds", (double)(time(NULL) - admin->started));
    cJSON_AddNumberToObject(process, "time", (double)time(NULL));
    cJSON_AddItemToObject(doc, "process", process);
    cJSON_AddItemToObject(doc, "server", server);
    cJSON_AddItemToObject(doc, "cache", cache);
    cJSON_AddItemToObject(doc, "buckets", buckets);
    if (cluster != NULL) cJSON_AddItemToObject(doc, "cluster", cluster);
    if (admin->origin != NULL) {
        cJSON *origin = bc_origin_stats_json(admin->origin);
        if (origin != NULL) cJSON_AddItemToObject(doc, "origin", origin);
    }
    return bc_http_reply_json(req, MHD_HTTP_OK, doc);
}

/* ---- /metrics ---- */

/*
 * The unit a stat's JSON name ends in ("_us", "_ms"), as a factor to
 * seconds: a table row whose metric is named *_seconds converts by it, so
 * rows added later with a raw microsecond or millisecond counter export
 * base units without code here.
 */
static double
admin_unit_to_seconds(const char *json, const char *metric)
{
    size_t n = strlen(json), m = strlen(metric);
    bool seconds = strstr(metric, "_seconds") != NULL && m > 0;
    if (!seconds) return 1;
    if (n > 3 && strcmp(json + n - 3, "_us") == 0) return 1e-6;
    if (n > 3 && strcmp(json + n - 3, "_ms") == 0) return 1e-3;
    return 1;
}

/* bucketcache_bucket_* series for the buckets this node owns or holds
 * (GET /metrics?per_bucket=1; off by default: 1024 buckets x 9 series). */
static bool
admin_metrics_buckets(bc_admin_t *admin, bc_textbuf_t *tb)
{
    uint32_t n = bc_cache_nbuckets(admin->cache);
    bc_bucket_stats_t *bs = malloc((size_t)n * sizeof(*bs));
    if (bs == NULL || bc_cache_bucket_stats_all(admin->cache, bs, n) != BC_OK) {
        free(bs);
        return false;
    }
    bc_node_cluster_info_t ci = {0};
    if (admin->cluster != NULL) bc_node_cluster_get_info(admin->cluster, &ci);
    for (uint32_t b = 0; b < n; b++) {
        uint32_t owner = 0;
        if (admin->cluster != NULL) bc_node_cluster_route(admin->cluster, b, false, &owner, NULL);
        bool owned = admin->cluster == NULL || owner == ci.gid;
        if (!owned && bs[b].items == 0 && bs[b].ops.hits + bs[b].ops.misses == 0 &&
            bs[b].ops.sets == 0) {
            continue;
        }
        char bl[24], l[96];
        snprintf(bl, sizeof(bl), "%u", b);
        bc_metric_lu(tb, "bucket_commands_total", "counter", "Requests per bucket and outcome.",
                     bc_metric_labels(l, sizeof(l), 3, "bucket", bl, "command", "get", "status",
                                      "hit"), bs[b].ops.hits);
        bc_metric_lu(tb, "bucket_commands_total", "counter", "Requests per bucket and outcome.",
                     bc_metric_labels(l, sizeof(l), 3, "bucket", bl, "command", "get", "status",
                                      "miss"), bs[b].ops.misses);
        bc_metric_lu(tb, "bucket_commands_total", "counter", "Requests per bucket and outcome.",
                     bc_metric_labels(l, sizeof(l), 3, "bucket", bl, "command", "set", "status",
                                      "hit"), bs[b].ops.sets);
        bc_metric_lu(tb, "bucket_commands_total", "counter", "Requests per bucket and outcome.",
                     bc_metric_labels(l, sizeof(l), 3, "bucket", bl, "command", "delete", "status",
                                      "hit"), bs[b].ops.deletes);
        bc_metric_labels(l, sizeof(l), 1, "bucket", bl);
        bc_metric_lu(tb, "bucket_read_bytes_total", "counter",
                     "Key and value bytes stored per bucket.", l, bs[b].ops.bytes_read);
        bc_metric_lu(tb, "bucket_written_bytes_total", "counter",
                     "Value bytes returned per bucket.", l, bs[b].ops.bytes_written);
        bc_metric_lu(tb, "bucket_evictions_total", "counter", "Live items evicted per bucket.", l,
                     bs[b].evictions);
        bc_metric_lu(tb, "bucket_expirations_total", "counter",
                     "Expired items removed per bucket.", l, bs[b].expirations);
        bc_metric_lu(tb, "bucket_items", "gauge", "Items held per bucket.", l, bs[b].items);
        bc_metric_lu(tb, "bucket_memory_used_bytes", "gauge", "Bytes held per bucket.", l,
                     bs[b].bytes);
    }
    free(bs);
    return true;
}

static enum MHD_Result
handle_metrics(void *ctx, bc_http_req_t *req)
{
    bc_admin_t *admin = ctx;
    bc_textbuf_t tb = {0};
    bc_cache_stats_t cs;
    bc_http_param_t params[MAX_QUERY_PARAMS];
    int nparams = req->query != NULL ? bc_http_parse_query(req->query, params, MAX_QUERY_PARAMS)
                                     : 0;
    bool per_bucket = false;
    char l[256];

    if (nparams < 0) return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "malformed query string");
    for (int i = 0; i < nparams; i++) {
        int v = strcmp(params[i].name, "per_bucket") == 0 ? bc_http_param_bool(&params[i]) : -2;
        if (v == -2) {
            return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                       "unknown query parameter (only per_bucket=1|0)");
        }
        if (v < 0) return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "per_bucket: expected 1 or 0");
        per_bucket = v == 1;
    }

    bc_cache_get_stats(admin->cache, &cs);
    bc_metric(&tb, "uptime_seconds", "gauge", "Seconds since the node started.",
              (uint64_t)(time(NULL) - admin->started));
    if (admin->cluster != NULL) {
        bc_node_cluster_info_t ci;
        char gid[16];
        bc_node_cluster_get_info(admin->cluster, &ci);
        snprintf(gid, sizeof(gid), "%u", ci.gid);
        bc_metric_lu(&tb, "node_info", "gauge",
                     "Always 1: this node's version, group, name and role as labels.",
                     bc_metric_labels(l, sizeof(l), 4, "version", BC_VERSION, "group", gid,
                                      "node", ci.node_name, "role",
                                      ci.primary ? "primary" : "backup"), 1);
    } else {
        bc_metric_lu(&tb, "node_info", "gauge", "Always 1: this node's version, group, name and role as labels.",
                     bc_metric_labels(l, sizeof(l), 2, "version", BC_VERSION, "role",
                                      "standalone"), 1);
    }
    if (admin->server != NULL) {
        bc_server_stats_t ss;
        /* Lifetime figures: "stats reset" must not make a counter go down. */
        bc_server_get_stats_lifetime(admin->server, &ss);
        bc_metric(&tb, "threads", "gauge", "Worker threads serving the memcached protocol.",
                  ss.threads);
        bc_metric(&tb, "current_connections", "gauge", "Open client connections.",
                  ss.curr_connections);
        bc_metric(&tb, "connections_total", "counter", "Client connections accepted.",
                  ss.total_connections);
        bc_metric(&tb, "connections_rejected_total", "counter",
                  "Client connections refused at the connection limit.",
                  ss.rejected_connections);
        /* Counters from the X-macro (net/stats.h): its metric, labels and
         * description; a counter added there is exported without code here. */
#define BC__ADMIN_STAT_METRIC(name, metric, labels, desc) \
        if ((metric) != NULL) bc_metric_lu(&tb, (const char *)(metric), "counter", desc ".", labels, ss.totals.name);
        BC_THREAD_STATS(BC__ADMIN_STAT_METRIC)
#undef BC__ADMIN_STAT_METRIC
    }
    bc_metric(&tb, "items", "gauge", "Items currently stored.", cs.curr_items);
    bc_metric(&tb, "items_stored_total", "counter", "Items ever stored.", cs.total_items);
    bc_metric(&tb, "memory_used_bytes", "gauge",
              "Bytes held by the storage engine (items and tables).", cs.mem_used);
    bc_metric(&tb, "memory_limit_bytes", "gauge", "Memory limit of the storage engine.",
              cs.mem_limit);
    bc_metric(&tb, "memory_preallocated_bytes", "gauge",
              "Memory taken and touched at start (-L); 0 without it.",
              bc_cache_preallocated(admin->cache));
    bc_metric(&tb, "data_bytes", "gauge", "Sum of stored key and value lengths.", cs.data_bytes);
    bc_metric(&tb, "evictions_total", "counter", "Live items evicted to make room.",
              cs.evictions);
    bc_metric(&tb, "expired_unfetched_total", "counter",
              "Items that expired without ever being read.", cs.expired_unfetched);
    bc_metric(&tb, "evicted_unfetched_total", "counter",
              "Items evicted without ever being read.", cs.evicted_unfetched);
    bc_metric(&tb, "reclaimed_total", "counter", "Expired items removed.", cs.reclaimed);
    bc_metric(&tb, "expired_active_total", "counter",
              "Expired items removed by the background expiry scan.", cs.expired_active);
    bc_metric(&tb, "flushed_total", "counter", "Items invalidated by flush_all.", cs.flushed);
    bc_metric(&tb, "pinned_bytes", "gauge",
              "Bytes of evicted segments still referenced by in-flight replies.", cs.pinned_bytes);
    bc_metric(&tb, "buckets", "gauge", "Number of buckets keys hash into.",
              bc_cache_nbuckets(admin->cache));
    bc_metric(&tb, "hotkeys_memory_bytes", "gauge", "Bytes held by the hot-key sketch.",
              bc_hotkeys_memory(admin->hotkeys));
    if (admin->cluster != NULL) {
        bc_node_cluster_info_t ci;
        bc_node_cluster_get_info(admin->cluster, &ci);
        bc_metric(&tb, "cluster_primary", "gauge",
                  "1 when this node is its group's primary, 0 for a backup.", ci.primary ? 1 : 0);
        bc_metric(&tb, "cluster_epoch", "gauge", "Table epoch last seen.", ci.epoch);
        bc_metric(&tb, "cluster_zookeeper_connected", "gauge",
                  "1 when the ZooKeeper session is connected.", ci.connected ? 1 : 0);
        bc_metric(&tb, "cluster_owned_buckets", "gauge",
                  "Buckets the c table assigns to this node's group.", ci.owned_buckets);
        bc_metric(&tb, "cluster_registrations_total", "counter",
                  "Times this node registered in ZooKeeper (1 + new sessions).",
                  ci.registrations);
        bc_metric(&tb, "cluster_buckets_dropped_total", "counter",
                  "Buckets whose data left this group and was freed here.", ci.buckets_dropped);
        bc_metric_histogram_ms(&tb, "cluster_write_pause_seconds",
                               "Write pauses of this node's buckets as their primary (a "
                               "migration's read-only time, from its fence to writes going on).",
                               NULL, bc_node_pause_bounds_ms, ci.write_pause_hist,
                               BC_NODE_PAUSE_NBOUNDS, (double)ci.write_pause_sum_us / 1000.0);
        bc_metric(&tb, "cluster_http_refused_total", "counter",
                  "Admin key requests answered 421 (bucket not served by this node).",
                  atomic_load_explicit(&admin->refused, memory_order_relaxed));
        bc_node_migrate_stats_t ms;
        bc_node_migrate_get_stats(admin->migrate, &ms);
#define BC__ADMIN_MIGRATE_METRIC(field, json, name, type, help) \
        bc_metric_l(&tb, name, type, help, NULL, (double)ms.field * admin_unit_to_seconds(json, name));
        BC_MIGRATE_STATS(BC__ADMIN_MIGRATE_METRIC)
#undef BC__ADMIN_MIGRATE_METRIC
        bc_metric(&tb, "cluster_writable", "gauge",
                  "1 when this node accepts writes (primary, replication ready, write lease "
                  "valid).", ci.writable ? 1 : 0);
        bc_metric(&tb, "cluster_fenced_writes_total", "counter",
                  "Writes refused because the ZooKeeper write lease had lapsed.",
                  ci.fenced_writes);
        bc_metric(&tb, "cluster_in_sync_refusals_total", "counter",
                  "Writes refused because fewer backups than min_in_sync were in sync.",
                  ci.in_sync_refusals);
        bc_metric(&tb, "cluster_self_promotions_total", "counter",
                  "Times this node promoted itself (its primary gone, no console acting).",
                  ci.self_promotions);
    }
    if (admin->repl != NULL) {
        bc_repl_info_t ri;
        bc_repl_get_info(admin->repl, &ri);
#define BC__ADMIN_REPL_METRIC(field, shown, json, stat, name, type, help) \
        if ((name) != NULL) bc_metric_l(&tb, (const char *)(name), type, help, NULL, \
                                        (double)ri.field * admin_unit_to_seconds(json, (const char *)(name)));
        BC_REPL_NUMBERS(BC__ADMIN_REPL_METRIC)
#undef BC__ADMIN_REPL_METRIC
        bc_metric(&tb, "repl_synced", "gauge",
                  "1 when this node's data is complete (0 during a full resync).",
                  ri.synced ? 1 : 0);
        bc_metric(&tb, "repl_backups", "gauge", "Backups connected to this primary.", ri.backups);
        bc_metric(&tb, "repl_in_sync", "gauge",
                  "Primary: backups in the in-sync record (ZooKeeper).", ri.isr.n);
        bc_metric(&tb, "repl_min_in_sync", "gauge", "Primary: the group's min_in_sync in force.",
                  ri.min_in_sync);
        bc_metric(&tb, "repl_writes_refused", "gauge",
                  "Primary: 1 while writes are refused for too few backups in sync.",
                  ri.isr_short ? 1 : 0);
        bc_metric_l(&tb, "repl_lag_seconds", "gauge",
                    "Backup: time since this node last had everything the primary had.", NULL,
                    ri.lag_ms < 0 ? 0 : (double)ri.lag_ms / 1000.0);
        bc_metric(&tb, "repl_link_up", "gauge", "Backup: 1 while the link to the primary is up.",
                  ri.link_up ? 1 : 0);
        for (uint32_t i = 0; ri.primary && i < ri.backups && i < BC_REPL_MAX_BACKUPS_REPORTED; i++) {
            bc_metric_labels(l, sizeof(l), 1, "backup", ri.backup[i].name);
            bc_metric_lu(&tb, "repl_backup_lag_bytes", "gauge",
                         "Primary: stream bytes each backup has not acknowledged.", l,
                         ri.backup[i].lag_bytes);
            bc_metric_lu(&tb, "repl_backup_online", "gauge",
                         "Primary: 1 while each backup's link is up.", l,
                         ri.backup[i].online ? 1 : 0);
        }
    }
    if (per_bucket && !admin_metrics_buckets(admin, &tb)) tb.failed = true;
    if (admin->origin != NULL) bc_origin_metrics(admin->origin, &tb);
    return bc_metrics_reply(req, &tb);
}

/* ---- /v1/buckets and /v1/hotkeys (observability) ---- */

/* Adds a key as "key", or as "key_base64" when JSON cannot carry it. */
static void
admin_json_key(cJSON *o, const char *key, size_t nkey)
{
    char text[BC_TEXT_BASE64_LEN(BC_KEY_MAX_LEN)];
    if (bc_text_is_json_safe(key, nkey)) {
        memcpy(text, key, nkey);
        text[nkey] = '\0';
        cJSON_AddStringToObject(o, "key", text);
    } else {
        cJSON_AddStringToObject(o, "key_base64", bc_text_base64(key, nkey, text));
    }
}

/* Parses a decimal query value 0..max. */
static bool
admin_param_u32(const bc_http_param_t *p, uint32_t max, uint32_t *out)
{
    uint64_t v;
    if (!bc_parse_u64n(p->value, p->value_len, max, &v)) return false;
    *out = (uint32_t)v;
    return true;
}

/*
 * GET /v1/buckets[?buckets=owned|all|active]: each bucket's counters.
 * owned (the default): the buckets the c table gives this node's group
 * (standalone: all), plus any other that still holds items; active: those
 * with any item or request; all: every bucket.
 */
static enum MHD_Result
handle_buckets(void *ctx, bc_http_req_t *req)
{
    bc_admin_t *admin = ctx;
    bc_http_param_t params[MAX_QUERY_PARAMS];
    int nparams = req->query != NULL ? bc_http_parse_query(req->query, params, MAX_QUERY_PARAMS)
                                     : 0;
    enum { SEL_OWNED, SEL_ALL, SEL_ACTIVE } sel = SEL_OWNED;
    if (nparams < 0) return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "malformed query string");
    for (int i = 0; i < nparams; i++) {
        const char *v = params[i].value;
        bool clean = params[i].value_len == strlen(v);
        if (strcmp(params[i].name, "buckets") != 0) {
            return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                       "unknown query parameter (only buckets=owned|all|active)");
        }
        if (clean && strcmp(v, "owned") == 0) sel = SEL_OWNED;
        else if (clean && strcmp(v, "all") == 0) sel = SEL_ALL;
        else if (clean && strcmp(v, "active") == 0) sel = SEL_ACTIVE;
        else return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                        "buckets: expected owned, all or active");
    }
    uint32_t n = bc_cache_nbuckets(admin->cache);
    bc_bucket_stats_t *bs = malloc((size_t)n * sizeof(*bs));
    if (bs == NULL || bc_cache_bucket_stats_all(admin->cache, bs, n) != BC_OK) {
        free(bs);
        return bc_http_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    bc_node_cluster_info_t ci = {0};
    if (admin->cluster != NULL) bc_node_cluster_get_info(admin->cluster, &ci);
    cJSON *doc = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(doc, "buckets");
    cJSON_AddNumberToObject(doc, "nbuckets", n);
    cJSON_AddNumberToObject(doc, "time", (double)time(NULL));
    if (admin->cluster != NULL) {
        cJSON_AddNumberToObject(doc, "group", ci.gid);
        cJSON_AddStringToObject(doc, "node", ci.node_name);
        cJSON_AddStringToObject(doc, "role", ci.primary ? "primary" : "backup");
        cJSON_AddNumberToObject(doc, "epoch", (double)ci.epoch);
    }
    for (uint32_t b = 0; arr != NULL && b < n; b++) {
        const bc_bucket_stats_t *x = &bs[b];
        uint32_t owner = 0;
        if (admin->cluster != NULL) bc_node_cluster_route(admin->cluster, b, false, &owner, NULL);
        bool owned = admin->cluster == NULL || owner == ci.gid;
        bool active = x->items > 0 || x->ops.hits > 0 || x->ops.misses > 0 || x->ops.sets > 0 ||
                      x->ops.deletes > 0;
        if (sel == SEL_OWNED && !owned && x->items == 0) continue;
        if (sel == SEL_ACTIVE && !active) continue;
        cJSON *e = cJSON_CreateObject();
        if (e == NULL) break;
        cJSON_AddNumberToObject(e, "bucket", b);
        if (admin->cluster != NULL) cJSON_AddBoolToObject(e, "owned", owned);
        cJSON_AddNumberToObject(e, "items", (double)x->items);
        cJSON_AddNumberToObject(e, "bytes", (double)x->bytes);
#define BC__ADMIN_BUCKET_JSON(name, desc) cJSON_AddNumberToObject(e, #name, (double)x->ops.name);
        BC_BUCKET_COUNTERS(BC__ADMIN_BUCKET_JSON)
#undef BC__ADMIN_BUCKET_JSON
        cJSON_AddNumberToObject(e, "gets", (double)(x->ops.hits + x->ops.misses));
        cJSON_AddNumberToObject(e, "evictions", (double)x->evictions);
        cJSON_AddNumberToObject(e, "expirations", (double)x->expirations);
        if (admin->origin != NULL) {
            bc_origin_bucket_counts_t oc;
            bc_origin_bucket_counts(admin->origin, b, &oc);
#define BC__ADMIN_ORIGIN_JSON(name, help) cJSON_AddNumberToObject(e, "origin_" #name, (double)oc.name);
            BC_ORIGIN_BUCKET_COUNTERS(BC__ADMIN_ORIGIN_JSON)
#undef BC__ADMIN_ORIGIN_JSON
        }
        cJSON_AddItemToArray(arr, e);
    }
    free(bs);
    if (arr == NULL) {
        cJSON_Delete(doc);
        return bc_http_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    return bc_http_reply_json(req, MHD_HTTP_OK, doc);
}

/* GET /v1/hotkeys[?n=20][&bucket=B]: the sampled heaviest keys. */
static enum MHD_Result
handle_hotkeys(void *ctx, bc_http_req_t *req)
{
    bc_admin_t *admin = ctx;
    bc_http_param_t params[MAX_QUERY_PARAMS];
    int nparams = req->query != NULL ? bc_http_parse_query(req->query, params, MAX_QUERY_PARAMS)
                                     : 0;
    uint32_t want = 20, bucket = UINT32_MAX, cap = bc_hotkeys_capacity(admin->hotkeys);
    if (nparams < 0) return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "malformed query string");
    for (int i = 0; i < nparams; i++) {
        if (strcmp(params[i].name, "n") == 0) {
            if (!admin_param_u32(&params[i], 100000, &want) || want == 0) {
                return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "n: expected 1..%u",
                                           cap ? cap : 1);
            }
        } else if (strcmp(params[i].name, "bucket") == 0) {
            if (!admin_param_u32(&params[i], UINT32_MAX - 1, &bucket) ||
                bucket >= bc_cache_nbuckets(admin->cache)) {
                return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "bucket: expected 0..%u",
                                           bc_cache_nbuckets(admin->cache) - 1);
            }
        } else {
            return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                       "unknown query parameter (accepted: n, bucket)");
        }
    }
    if (want > cap) want = cap;
    bc_hotkey_t *keys = want > 0 ? malloc(want * sizeof(*keys)) : NULL;
    size_t nk = keys != NULL ? bc_hotkeys_list(admin->hotkeys, bucket, keys, want) : 0;
    cJSON *doc = cJSON_CreateObject();
    if (admin->cluster != NULL) {
        bc_node_cluster_info_t ci;
        bc_node_cluster_get_info(admin->cluster, &ci);
        cJSON_AddNumberToObject(doc, "group", ci.gid);
        cJSON_AddStringToObject(doc, "node", ci.node_name);
        cJSON_AddStringToObject(doc, "role", ci.primary ? "primary" : "backup");
    }
    cJSON_AddNumberToObject(doc, "sample_every", bc_hotkeys_every(admin->hotkeys));
    cJSON_AddNumberToObject(doc, "half_life_s", bc_hotkeys_half_life(admin->hotkeys));
    cJSON_AddNumberToObject(doc, "capacity", cap);
    cJSON_AddNumberToObject(doc, "sampled", bc_hotkeys_sampled(admin->hotkeys));
    cJSON *arr = cJSON_AddArrayToObject(doc, "keys");
    for (size_t i = 0; arr != NULL && i < nk; i++) {
        cJSON *e = cJSON_CreateObject();
        if (e == NULL) break;
        admin_json_key(e, keys[i].e.key, keys[i].e.nkey);
        cJSON_AddNumberToObject(e, "bucket", keys[i].e.tag);
        cJSON_AddNumberToObject(e, "count", keys[i].e.count);
        cJSON_AddNumberToObject(e, "error", keys[i].e.error);
        cJSON_AddNumberToObject(e, "rate_per_s", keys[i].rate_per_s);
        cJSON_AddItemToArray(arr, e);
    }
    free(keys);
    return bc_http_reply_json(req, MHD_HTTP_OK, doc);
}

/* ---- /v1/keys/{key} ---- */

/* Releases the item a GET response was sending from. */
typedef struct item_ref {
    bc_cache_t *cache;
    bc_item_t *item;
} item_ref_t;

static void
item_ref_free(void *cls)
{
    item_ref_t *ref = cls;
    bc_item_release(ref->cache, ref->item);
    free(ref);
}

/*
 * Decodes and validates the key part of the path.  On success writes the
 * key (not NUL-terminated) to key/nkey and returns true; otherwise queues a
 * 400 into *result.
 */
static bool
decode_key(bc_http_req_t *req, char *key, size_t *nkey, enum MHD_Result *result)
{
    char scratch[BC_KEY_MAX_LEN * 3 + 4];
    ssize_t n;

    if (req->rest_len == 0) {
        *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "empty key");
        return false;
    }
    /* Every encoded byte takes 1..3 characters: a longer raw key cannot
     * decode to 250 bytes or fewer. */
    if (req->rest_len > BC_KEY_MAX_LEN * 3) {
        *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "key longer than %u bytes",
                                      BC_KEY_MAX_LEN);
        return false;
    }
    n = bc_http_percent_decode(req->rest, req->rest_len, scratch);
    if (n < 0) {
        *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                      "invalid percent-encoding in the key (%% must be "
                                      "followed by two hex digits)");
        return false;
    }
    if (n == 0) {
        *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "empty key");
        return false;
    }
    if ((size_t)n > BC_KEY_MAX_LEN) {
        *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "key longer than %u bytes",
                                      BC_KEY_MAX_LEN);
        return false;
    }
    /* memcached's key rule: no control characters and no space (the text
     * protocol could never name such a key). */
    for (ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)scratch[i];
        if (c <= 0x20 || c == 0x7f) {
            *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                          "key contains a control character or space "
                                          "(byte %zd)", i);
            return false;
        }
    }
    memcpy(key, scratch, (size_t)n);
    *nkey = (size_t)n;
    return true;
}

/*
 * In a cluster: may this node serve bucket (for a write or a read)?  If
 * not, queues the 421 into *result and returns false.
 */
static bool
route_check(bc_admin_t *admin, bc_http_req_t *req, uint32_t bucket, bool write,
            enum MHD_Result *result)
{
    uint32_t owner = 0;
    uint64_t epoch = 0;
    const char *reason;
    char msg[160];
    cJSON *doc;
    bc_route_t route;

    if (admin->cluster == NULL) return true;
    route = bc_node_cluster_route(admin->cluster, bucket, write, &owner, &epoch);
    switch (route) {
    case BC_ROUTE_SERVE:
        return true;
    case BC_ROUTE_READONLY:
        if (!write) return true;
        reason = "readonly";
        snprintf(msg, sizeof(msg), "bucket %" PRIu32 " is read-only while it migrates",
                 bucket);
        break;
    case BC_ROUTE_MOVED:
        reason = "moved";
        snprintf(msg, sizeof(msg), "bucket %" PRIu32 " is owned by group %" PRIu32, bucket,
                 owner);
        break;
    case BC_ROUTE_NO_OWNER:
        reason = "no_owner";
        snprintf(msg, sizeof(msg), "bucket %" PRIu32 " has no owner (its group is down)",
                 bucket);
        break;
    case BC_ROUTE_NOT_PRIMARY:
        reason = "not_primary";
        snprintf(msg, sizeof(msg),
                 "this node is a backup of group %" PRIu32 "; ask its primary", owner);
        break;
    case BC_ROUTE_NOT_IN_SYNC:
        reason = "not_enough_in_sync";
        snprintf(msg, sizeof(msg),
                 "group %" PRIu32 " has fewer backups in sync than its min_in_sync: writes are "
                 "refused until one catches up", owner);
        break;
    default:
        reason = "unknown";
        snprintf(msg, sizeof(msg), "bucket %" PRIu32 " is not served here", bucket);
        break;
    }
    atomic_fetch_add_explicit(&admin->refused, 1, memory_order_relaxed);
    doc = cJSON_CreateObject();
    if (doc == NULL) {
        *result = MHD_NO;
        return false;
    }
    cJSON_AddStringToObject(doc, "error", msg);
    cJSON_AddStringToObject(doc, "reason", reason);
    cJSON_AddNumberToObject(doc, "bucket", bucket);
    cJSON_AddNumberToObject(doc, "owner", owner);
    cJSON_AddNumberToObject(doc, "epoch", (double)epoch);
    *result = bc_http_reply_json(req, route == BC_ROUTE_NOT_IN_SYNC
                                          ? MHD_HTTP_SERVICE_UNAVAILABLE
                                          : MHD_HTTP_MISDIRECTED_REQUEST, doc);
    return false;
}

static enum MHD_Result
key_get(bc_admin_t *admin, bc_http_req_t *req, const char *key, size_t nkey, uint32_t hash)
{
    bc_item_t *it;
    item_ref_t *ref;
    char flags[16], cas[24];

    if (req->query != NULL && req->query[0] != '\0') {
        return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "GET takes no query parameters");
    }
    if (admin->origin_http != NULL) {
        /* read-through: a miss parks until its fill (origin/origin_http.h) */
        enum MHD_Result r;
        if (bc_origin_http_get(admin->origin_http, req, key, nkey, hash, &it, &r)) return r;
    } else {
        it = bc_cache_get(admin->cache, key, nkey, hash);
    }
    if (it == NULL) return bc_http_reply_error(req, MHD_HTTP_NOT_FOUND, "key not found");
    ref = malloc(sizeof(*ref));
    if (ref == NULL) {
        bc_item_release(admin->cache, it);
        return MHD_NO;
    }
    ref->cache = admin->cache;
    ref->item = it;
    /* flags and cas never change once an item is linked (a new store makes
     * a new item), so reading them without the shard lock is safe.  The
     * expiry can change (touch), which is why no TTL header is sent. */
    snprintf(flags, sizeof(flags), "%" PRIu32, bc_item_flags(it));
    snprintf(cas, sizeof(cas), "%" PRIu64, bc_item_cas(it));
    bc_http_add_header(req, "X-Bucketcache-Flags", flags);
    bc_http_add_header(req, "X-Bucketcache-Cas", cas);
    /* ref (and with it the item) is released by item_ref_free in every case. */
    return bc_http_reply_buffer(req, MHD_HTTP_OK, "application/octet-stream",
                                bc_item_value(it), bc_item_value_len(it), item_ref_free, ref);
}

/*
 * BEHAVIOR (sync replication on the admin thread): a write through the
 * admin API answers once the backups have it, as one on the data port
 * does (repl.h) -- but this thread also serves the migration exports and
 * their fences, so it must not sleep for a slow backup (up to the sync
 * timeout).  The request parks instead: park_state keeps the ticket and
 * the CAS to report, each run polls the backups without blocking
 * (bc_repl_commit_poll), and a run of a request that already stored goes
 * straight back to waiting (handle_keys), so nothing is stored twice.
 * Only when no request can park (all connections parked, or stopping)
 * does the thread poll in place, as before, for at most the timeout.
 */
enum { PARK_NEED, PARK_TIMEOUT, PARK_CAS, PARK_GEN };
#define ADMIN_COMMIT_RECHECK_US 500

/* True when the caller may answer the write now; false: parked, or the
 * write could not be confirmed (answered 503: its outcome is unknown);
 * return *result. */
static bool
admin_committed(bc_admin_t *admin, bc_http_req_t *req, bc_repl_commit_t t, uint64_t cas,
                enum MHD_Result *result)
{
    for (;;) {
        int64_t waited_ms = req->parked_us ? (bc_time_mono_us() - req->parked_us) / 1000 : 0;
        bc_repl_commit_state_t cs = bc_repl_commit_poll(admin->repl, &t, waited_ms);
        if (cs == BC_REPL_COMMIT_DONE) return true;
        if (cs == BC_REPL_COMMIT_FAILED) {
            *result = bc_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE,
                                          "the write was applied here but its backups did not "
                                          "confirm it (too few in sync, or the role or lease "
                                          "was lost): its outcome is unknown");
            return false;
        }
        req->park_state[PARK_NEED] = t.need;
        req->park_state[PARK_TIMEOUT] = t.timeout_ms;
        req->park_state[PARK_GEN] = t.gen;
        req->park_state[PARK_CAS] = cas;
        if (bc_http_try_park(req, ADMIN_COMMIT_RECHECK_US, result)) return false;
        if (req->parked_us == 0) req->parked_us = bc_time_mono_us();
        bc_time_sleep_ms(1);
    }
}

static enum MHD_Result
put_reply(bc_admin_t *admin, bc_http_req_t *req, uint32_t hash, uint64_t cas)
{
    cJSON *doc = cJSON_CreateObject();
    if (doc == NULL) return MHD_NO;
    cJSON_AddBoolToObject(doc, "stored", true);
    cJSON_AddNumberToObject(doc, "bytes", (double)req->body_len);
    cJSON_AddNumberToObject(doc, "cas", (double)cas);
    cJSON_AddNumberToObject(doc, "bucket", bc_hash_bucket(hash, bc_cache_nbuckets(admin->cache)));
    return bc_http_reply_json(req, MHD_HTTP_CREATED, doc);
}

static enum MHD_Result
key_delete(bc_admin_t *admin, bc_http_req_t *req, const char *key, size_t nkey, uint32_t hash)
{
    bc_status_t st = bc_cache_delete(admin->cache, key, nkey, hash);
    if (st == BC_ENOTFOUND) return bc_http_reply_error(req, MHD_HTTP_NOT_FOUND, "key not found");
    if (st != BC_OK) {
        return bc_http_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s",
                                   bc_status_str(st));
    }
    enum MHD_Result result;
    if (!admin_committed(admin, req, bc_repl_commit_ticket(admin->repl), 0, &result)) {
        return result;
    }
    return bc_http_reply_bytes(req, MHD_HTTP_NO_CONTENT, NULL, NULL, 0);
}

/* PUT: parse ttl/flags, allocate, copy, store (BC_STORE_SET). */
static enum MHD_Result
key_put(bc_admin_t *admin, bc_http_req_t *req, const char *key, size_t nkey, uint32_t hash)
{
    bc_http_param_t params[MAX_QUERY_PARAMS];
    int nparams = req->query != NULL ? bc_http_parse_query(req->query, params, MAX_QUERY_PARAMS)
                                     : 0;
    uint64_t ttl = 0, flags = 0, cas = 0;
    bool seen_ttl = false, seen_flags = false;
    uint32_t exptime = 0;
    size_t max_item = bc_cache_max_item_size(admin->cache);
    bc_status_t st = BC_OK;
    bc_item_t *it;

    if (nparams == -2) {
        return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "too many query parameters");
    }
    if (nparams < 0) {
        return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "malformed query string");
    }
    for (int i = 0; i < nparams; i++) {
        const bc_http_param_t *p = &params[i];
        if (strcmp(p->name, "ttl") == 0 && !seen_ttl) {
            /* Relative seconds, any size: unlike memcached's exptime there
             * is no 30-day switch to absolute time. */
            if (!bc_parse_u64n(p->value, p->value_len, UINT32_MAX, &ttl)) {
                return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                           "ttl: expected seconds 0..4294967295 (0 = no expiry)");
            }
            seen_ttl = true;
        } else if (strcmp(p->name, "flags") == 0 && !seen_flags) {
            if (!bc_parse_u64n(p->value, p->value_len, UINT32_MAX, &flags)) {
                return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                           "flags: expected an integer 0..4294967295");
            }
            seen_flags = true;
        } else {
            return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                       "unknown or repeated query parameter (accepted: ttl, "
                                       "flags)");
        }
    }
    /* bc_httpd already refused bodies past max_body (the max item size). */
    if (req->body_len + 2 > UINT32_MAX) {
        return bc_http_reply_error(req, MHD_HTTP_CONTENT_TOO_LARGE,
                                   "value larger than the maximum item size (%zu bytes)",
                                   max_item);
    }
    if (ttl != 0) {
        uint64_t abs_time = (uint64_t)bc_cache_now(admin->cache) + ttl;
        if (abs_time > UINT32_MAX) {
            return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                       "ttl: expiry beyond the year 2106");
        }
        exptime = (uint32_t)abs_time;
    }
    it = bc_item_alloc(admin->cache, key, nkey, hash, (uint32_t)flags, exptime,
                       (uint32_t)(req->body_len + 2), &st);
    if (it == NULL) {
        if (st == BC_ETOOLARGE) {
            return bc_http_reply_error(req, MHD_HTTP_CONTENT_TOO_LARGE,
                                       "value larger than the maximum item size (%zu bytes)",
                                       max_item);
        }
        return bc_http_reply_error(req, MHD_HTTP_INSUFFICIENT_STORAGE, "out of memory (%s)",
                                   bc_status_str(st));
    }
    if (req->body_len > 0) memcpy(bc_item_value(it), req->body, req->body_len);
    memcpy(bc_item_value(it) + req->body_len, "\r\n", 2);
    st = bc_cache_store(admin->cache, it, BC_STORE_SET, 0, &cas);
    if (st == BC_ETOOLARGE) {
        return bc_http_reply_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "value too large");
    }
    if (st == BC_ENOMEM) {
        return bc_http_reply_error(req, MHD_HTTP_INSUFFICIENT_STORAGE, "out of memory");
    }
    if (st != BC_OK) {
        return bc_http_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "not stored (%s)",
                                   bc_status_str(st));
    }
    enum MHD_Result result;
    if (!admin_committed(admin, req, bc_repl_commit_ticket(admin->repl), cas, &result)) {
        return result;
    }
    return put_reply(admin, req, hash, cas);
}

/* /v1/keys/{key}: GET (and HEAD), PUT, DELETE; bc_httpd let only those in. */
static enum MHD_Result
handle_keys(void *ctx, bc_http_req_t *req)
{
    bc_admin_t *admin = ctx;
    char key[BC_KEY_MAX_LEN];
    size_t nkey = 0;
    enum MHD_Result result = MHD_NO;
    bool is_put = strcmp(req->method, MHD_HTTP_METHOD_PUT) == 0;
    bool is_delete = strcmp(req->method, MHD_HTTP_METHOD_DELETE) == 0;
    uint32_t hash;

    if (!decode_key(req, key, &nkey, &result)) return result;
    hash = bc_hash_key(key, nkey);
    if (req->park_state[PARK_NEED] != 0) {
        /* stored on an earlier run: only the backups are waited for */
        bc_repl_commit_t t = {req->park_state[PARK_NEED], (uint32_t)req->park_state[PARK_TIMEOUT],
                              req->park_state[PARK_GEN]};
        if (!admin_committed(admin, req, t, req->park_state[PARK_CAS], &result)) return result;
        if (is_put) return put_reply(admin, req, hash, req->park_state[PARK_CAS]);
        return bc_http_reply_bytes(req, MHD_HTTP_NO_CONTENT, NULL, NULL, 0);
    }
    if (!route_check(admin, req, bc_hash_bucket(hash, bc_cache_nbuckets(admin->cache)),
                     is_put || is_delete, &result)) {
        return result;
    }
    if (is_put) return key_put(admin, req, key, nkey, hash);
    if (is_delete) return key_delete(admin, req, key, nkey, hash);
    return key_get(admin, req, key, nkey, hash);
}

/* ---- /v1/migrate/ (migrate.h) ---- */

static enum MHD_Result
handle_migrate_export(void *ctx, bc_http_req_t *req)
{
    bc_admin_t *admin = ctx;
    if (admin->migrate == NULL) {
        return bc_http_reply_error(req, MHD_HTTP_NOT_FOUND, "not in a cluster: no migration");
    }
    return bc_node_migrate_handle_export(admin->migrate, req);
}

static enum MHD_Result
handle_migrate_import(void *ctx, bc_http_req_t *req)
{
    bc_admin_t *admin = ctx;
    if (admin->migrate == NULL) {
        return bc_http_reply_error(req, MHD_HTTP_NOT_FOUND, "not in a cluster: no migration");
    }
    return bc_node_migrate_handle_import(admin->migrate, req);
}

/* ---- lifecycle ---- */

static const bc_http_route_t admin_routes[] = {
    {"/health", "GET", handle_health},
    {"/stats", "GET", handle_stats},
    {"/metrics", "GET", handle_metrics},
    {"/v1/keys/*", "GET, PUT, DELETE", handle_keys},
    {"/v1/repl", "GET", handle_repl},
    {"/v1/buckets", "GET", handle_buckets},
    {"/v1/hotkeys", "GET", handle_hotkeys},
    {"/v1/migrate/export", "GET", handle_migrate_export},
    {"/v1/migrate/import", "GET, POST, DELETE", handle_migrate_import},
};

bc_status_t
bc_admin_create(const bc_admin_config_t *config, bc_cache_t *cache, bc_server_t *server,
                bc_admin_t **out)
{
    bc_admin_t *admin;
    bc_status_t st;

    *out = NULL;
    if (config == NULL || cache == NULL || config->listen_addr == NULL ||
        config->listen_addr[0] == '\0') {
        return BC_EINVAL;
    }
    admin = calloc(1, sizeof(*admin));
    if (admin == NULL) return BC_ENOMEM;
    admin->cache = cache;
    admin->server = server;
    admin->started = time(NULL);
    admin->max_conns = config->max_conns ? config->max_conns : ADMIN_DEFAULT_MAX_CONNS;
    atomic_init(&admin->refused, 0);
    bc_httpd_config_t hc = {
        .name = "admin",
        .listen_addr = config->listen_addr,
        .port = config->port,
        .max_conns = config->max_conns ? config->max_conns : ADMIN_DEFAULT_MAX_CONNS,
        .timeout_s = config->conn_timeout_s ? config->conn_timeout_s : ADMIN_DEFAULT_TIMEOUT_S,
        .max_body = bc_cache_max_item_size(cache),
        .body_methods = "PUT",
        .routes = admin_routes,
        .nroutes = sizeof(admin_routes) / sizeof(admin_routes[0]),
        .ctx = admin,
        /* ---- access (bc_httpd.h ACCESS, docs/security.md) ---- */
        .auth = config->auth,
        .insecure_no_auth = config->insecure_no_auth,
        .public_paths = "/health",
        .private_paths = "/v1/migrate/export",   /* holds a bucket read-only, arms trackers */
        .body_types = "application/octet-stream, application/json",
        .max_conns_per_ip = config->max_conns_per_ip,
        .tls_cert_pem = config->tls_cert_pem,
        .tls_key_pem = config->tls_key_pem,
    };
    admin->has_token = config->auth != NULL;
    admin->peer_auth = config->peer_auth;
    admin->migrate_settings = config->migrate;
    st = bc_httpd_create(&hc, &admin->httpd);
    if (st != BC_OK) {
        free(admin);
        return st;
    }
    *out = admin;
    return BC_OK;
}

bc_status_t
bc_admin_start(bc_admin_t *admin)
{
    return bc_httpd_start(admin->httpd);
}

bc_status_t
bc_admin_set_tls(bc_admin_t *admin, const char *cert_pem, const char *key_pem, char *err,
                 size_t errlen)
{
    return bc_httpd_set_tls(admin->httpd, cert_pem, key_pem, err, errlen);
}

uint16_t
bc_admin_port(const bc_admin_t *admin)
{
    return bc_httpd_port(admin->httpd);
}

void
bc_admin_stop(bc_admin_t *admin)
{
    if (admin == NULL) return;
    bc_httpd_stop(admin->httpd);
    /* No handler runs any more: running imports can be stopped. */
    bc_node_migrate_shutdown(admin->migrate);
}

void
bc_admin_destroy(bc_admin_t *admin)
{
    if (admin == NULL) return;
    /* Before the server it wakes: the origin thread may still post. */
    bc_origin_http_destroy(admin->origin_http);
    bc_httpd_destroy(admin->httpd);
    bc_node_migrate_destroy(admin->migrate);
    free(admin);
}

void
bc_admin_set_cluster(bc_admin_t *admin, bc_node_cluster_t *cluster)
{
    admin->cluster = cluster;
    bc_node_migrate_destroy(admin->migrate);
    admin->migrate = NULL;
    if (cluster == NULL) return;
    bc_node_migrate_config_t mc = {
        .cache = admin->cache, .cluster = cluster, .server = admin->server,
        .httpd = admin->httpd, .peer_auth = admin->peer_auth,
        .settings = admin->migrate_settings,
    };
    if (bc_node_migrate_create(&mc, &admin->migrate) != BC_OK) {
        log_error("admin: cannot set up the migration endpoints (out of memory)");
    }
}

void
bc_admin_set_origin(bc_admin_t *admin, bc_origin_t *origin)
{
    admin->origin = origin;
    if (origin == NULL || admin->origin_http != NULL) return;
    if (bc_origin_http_create(origin, admin->httpd, admin->max_conns, &admin->origin_http) != BC_OK) {
        log_error("admin: cannot set up read-through for GET /v1/keys (out of memory)");
    }
}

void
bc_admin_set_repl(bc_admin_t *admin, bc_repl_t *repl)
{
    admin->repl = repl;
    if (admin->migrate != NULL && repl != NULL) {
        bc_node_migrate_set_commit(admin->migrate, bc_repl_commit_wait, repl);
    }
}

void
bc_admin_set_hotkeys(bc_admin_t *admin, bc_hotkeys_t *hotkeys)
{
    admin->hotkeys = hotkeys;
}
