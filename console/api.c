/*
 * api.c -- the console's HTTP API (api.h lists the endpoints): a table of
 * routes served by common/bc_httpd.h, one handler per endpoint, and the
 * console's metrics as one X-macro table (CONSOLE_METRICS).
 *
 * Reads (/v1/cluster, /v1/tables, /v1/migrations) load what they show
 * from ZooKeeper on every request (view.h, migrate.h), so a standby
 * answers them as well as the active console.  Writes (rebalance, its
 * cancel, pause, resume) are a reconcile round on the active console
 * (console.h: bc_console_rebalance, bc_console_migrations); a standby
 * answers 409 naming the active one.  A rebalance's reply also shows the
 * bytes each move would carry, asked of the source primaries' admin
 * ports (GET /stats?buckets=nonempty; a node that does not answer leaves
 * its buckets' sizes unknown).  The writes parse their query strictly:
 * an unknown parameter or a malformed value is a 400.
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "bc_config.h"
#include "bc_http_client.h"
#include "bc_log.h"
#include "bc_metrics.h"
#include "dashboard.h"
#include "migrate.h"
#include "observe.h"
#include "bc_time.h"

struct bc_console_api {
    bc_console_t *console;
    bc_httpd_t *httpd;
    bc_observe_t *observe;         /* borrowed; NULL: no statistics yet */
    bool has_token;                /* an admin token is configured (ACCESS) */
};

static cJSON *
json_u32_array(const uint32_t *v, uint32_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (uint32_t i = 0; a != NULL && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static enum MHD_Result
api_view_error(bc_http_req_t *req, bc_status_t st, const char *err)
{
    unsigned code = st == BC_EAGAIN || st == BC_ETIMEOUT ? MHD_HTTP_SERVICE_UNAVAILABLE
                                                         : MHD_HTTP_INTERNAL_SERVER_ERROR;
    return bc_http_reply_error(req, code, "cannot read the cluster from ZooKeeper: %s%s%s",
                               bc_status_str(st), err[0] ? ": " : "", err);
}

static enum MHD_Result
api_health(void *ctx, bc_http_req_t *req)
{
    bc_console_api_t *api = ctx;
    bc_console_stats_t s;
    bc_console_get_stats(api->console, &s);
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "status", s.connected ? "ok" : "degraded");
    cJSON_AddStringToObject(doc, "version", BC_VERSION);
    cJSON_AddStringToObject(doc, "role", s.leader ? "active" : "standby");
    cJSON_AddBoolToObject(doc, "zookeeper_connected", s.connected);
    if (!api->has_token || req->authenticated) {
        /* Open to load balancers: the details only with the token. */
        cJSON_AddStringToObject(doc, "cluster", bc_console_cluster(api->console));
        cJSON_AddStringToObject(doc, "election_node", s.election_node);
    }
    return bc_http_reply_json(req, s.connected ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, doc);
}

static cJSON *
api_tables_json(const bc_view_t *v)
{
    cJSON *doc = cJSON_CreateObject();
    uint64_t e = v->c.epoch > v->m.epoch ? v->c.epoch : v->m.epoch;
    if (v->d.epoch > e) e = v->d.epoch;
    cJSON_AddNumberToObject(doc, "epoch", (double)e);
    cJSON_AddNumberToObject(doc, "buckets", v->nbuckets);
    cJSON_AddItemToObject(doc, "c", json_u32_array(v->c.owner, v->nbuckets));
    cJSON_AddItemToObject(doc, "m", json_u32_array(v->m.owner, v->nbuckets));
    cJSON_AddItemToObject(doc, "d", json_u32_array(v->d.owner, v->nbuckets));
    cJSON *ro = cJSON_AddArrayToObject(doc, "readonly");
    for (uint32_t b = 0; b < v->nbuckets; b++) {
        if (v->c.readonly[b]) cJSON_AddItemToArray(ro, cJSON_CreateNumber(b));
    }
    return doc;
}

static enum MHD_Result
api_tables(void *ctx, bc_http_req_t *req)
{
    bc_console_api_t *api = ctx;
    bc_view_t v;
    char err[256] = "";
    bc_status_t st = bc_view_load(bc_console_zk(api->console), bc_console_cluster(api->console),
                                  bc_console_nbuckets(api->console), NULL, NULL, &v, err, sizeof(err));
    if (st != BC_OK) return api_view_error(req, st, err);
    cJSON *doc = api_tables_json(&v);
    bc_view_free(&v);
    return bc_http_reply_json(req, MHD_HTTP_OK, doc);
}

static uint32_t
count_owner(const bc_table_t *t, uint32_t gid)
{
    uint32_t n = 0;
    for (uint32_t b = 0; b < t->nbuckets; b++) n += t->owner[b] == gid;
    return n;
}

static enum MHD_Result
api_cluster(void *ctx, bc_http_req_t *req)
{
    bc_console_api_t *api = ctx;
    bc_view_t v;
    char err[256] = "", leader[BC_ADDR_MAX] = "";
    bc_console_t *cs = api->console;
    bc_status_t st = bc_view_load(bc_console_zk(cs), bc_console_cluster(cs), bc_console_nbuckets(cs),
                                  NULL, NULL, &v, err, sizeof(err));
    if (st != BC_OK) return api_view_error(req, st, err);
    bc_console_leader_addr(cs, leader, sizeof(leader));
    bc_console_stats_t s;
    bc_console_get_stats(cs, &s);

    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "cluster", bc_console_cluster(cs));
    cJSON_AddNumberToObject(doc, "buckets", v.nbuckets);
    cJSON_AddNumberToObject(doc, "epoch", (double)v.c.epoch);
    cJSON_AddStringToObject(doc, "active_console", leader);
    uint32_t unowned = 0;
    for (uint32_t b = 0; b < v.nbuckets; b++) unowned += v.c.owner[b] == 0;
    /* The same count as GET /v1/migrations (bc_mig_progress_count): moves
     * left = moving + pending. */
    bc_mig_set_t migs;
    bc_mig_progress_t prog;
    if (bc_mig_load(bc_console_zk(cs), bc_console_cluster(cs), v.nbuckets, &migs, err,
                    sizeof(err)) == BC_OK) {
        bc_mig_progress_count(v.m.owner, v.d.owner, v.nbuckets, migs.rec, &migs.control, &prog);
        bc_mig_set_free(&migs);
    } else {
        bc_mig_control_t none;
        bc_mig_control_init(&none);
        bc_mig_progress_count(v.m.owner, v.d.owner, v.nbuckets, NULL, &none, &prog);
    }
    cJSON_AddNumberToObject(doc, "pending_moves", prog.moving + prog.pending);
    cJSON_AddNumberToObject(doc, "moving", prog.moving);
    cJSON_AddNumberToObject(doc, "pending", prog.pending);
    cJSON_AddNumberToObject(doc, "unowned_buckets", unowned);
    cJSON *groups = cJSON_AddArrayToObject(doc, "groups");
    for (size_t i = 0; i < v.ngroups; i++) {
        const bc_view_group_t *g = &v.groups[i];
        cJSON *jg = cJSON_CreateObject();
        cJSON_AddNumberToObject(jg, "gid", g->gid);
        cJSON_AddBoolToObject(jg, "live", g->nnodes > 0);
        cJSON_AddNumberToObject(jg, "memory", (double)bc_view_group_memory(g));
        cJSON_AddStringToObject(jg, "primary", g->has_primary ? g->primary.node : "");
        cJSON_AddStringToObject(jg, "primary_addr", g->has_primary ? g->primary.data_addr : "");
        cJSON *counts = cJSON_AddObjectToObject(jg, "buckets");
        cJSON_AddNumberToObject(counts, "c", count_owner(&v.c, g->gid));
        cJSON_AddNumberToObject(counts, "m", count_owner(&v.m, g->gid));
        cJSON_AddNumberToObject(counts, "d", count_owner(&v.d, g->gid));
        if (g->departure.present) {
            cJSON_AddNumberToObject(jg, "departed_at_ms", (double)g->departure.departed_at_ms);
        }
        /* The in-sync set its primary recorded (null: none of its term). */
        bool term = g->has_primary && g->has_isr && bc_cluster_isr_of(&g->isr, &g->primary);
        if (term) {
            cJSON *isr = cJSON_AddArrayToObject(jg, "in_sync");
            for (uint32_t k = 0; isr != NULL && k < g->isr.n; k++) {
                cJSON_AddItemToArray(isr, cJSON_CreateString(g->isr.in_sync[k]));
            }
        } else {
            cJSON_AddNullToObject(jg, "in_sync");
        }
        bool primary_live = false;
        for (size_t k = 0; g->has_primary && k < g->nnodes; k++) {
            primary_live = primary_live || strcmp(g->nodes[k].name, g->primary.node) == 0;
        }
        cJSON_AddBoolToObject(jg, "primary_live", primary_live);
        cJSON *nodes = cJSON_AddArrayToObject(jg, "nodes");
        for (size_t k = 0; k < g->nnodes; k++) {
            const bc_cluster_node_info_t *n = &g->nodes[k];
            cJSON *jn = cJSON_CreateObject();
            cJSON_AddStringToObject(jn, "name", n->name);
            cJSON_AddStringToObject(jn, "role", g->has_primary && strcmp(g->primary.node, n->name) == 0
                                                    ? "primary" : "backup");
            cJSON_AddStringToObject(jn, "data", n->data_addr);
            cJSON_AddStringToObject(jn, "admin", n->admin_addr);
            cJSON_AddNumberToObject(jn, "memory", (double)n->memory);
            cJSON_AddNumberToObject(jn, "pid", (double)n->pid);
            cJSON_AddBoolToObject(jn, "in_sync", term && bc_cluster_isr_has(&g->isr, n->name));
            cJSON_AddItemToArray(nodes, jn);
        }
        cJSON_AddItemToArray(groups, jg);
    }
    bc_view_free(&v);
    return bc_http_reply_json(req, MHD_HTTP_OK, doc);
}

/*
 * Fills bytes[b] (-1 = unknown) for the buckets group gid holds, from its
 * primary's admin /stats.  Best effort: a node that does not answer within
 * a second leaves its buckets unknown.
 */
static void
api_bucket_bytes(const bc_view_t *v, uint32_t gid, double *bytes)
{
    const bc_view_group_t *g = NULL;
    for (size_t i = 0; i < v->ngroups; i++) {
        if (v->groups[i].gid == gid) g = &v->groups[i];
    }
    if (g == NULL || !g->has_primary || g->primary.admin_addr[0] == '\0') return;
    bc_http_response_t resp;
    if (bc_http_request(g->primary.admin_addr, "GET", "/stats?buckets=nonempty", NULL, 0, 1000,
                        &resp) != BC_OK) {
        return;
    }
    cJSON *doc = resp.status == 200 ? cJSON_ParseWithLength(resp.body, resp.body_len) : NULL;
    bc_http_response_free(&resp);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "buckets"), *e;
    if (cJSON_IsArray(list)) {
        /* Buckets the node does not list are empty. */
        for (uint32_t b = 0; b < v->nbuckets; b++) {
            if (v->m.owner[b] == gid) bytes[b] = 0;
        }
        cJSON_ArrayForEach(e, list) {
            const cJSON *b = cJSON_GetObjectItemCaseSensitive(e, "bucket");
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "bytes");
            if (cJSON_IsNumber(b) && cJSON_IsNumber(n) && b->valuedouble >= 0 &&
                b->valuedouble < v->nbuckets && v->m.owner[(uint32_t)b->valuedouble] == gid) {
                bytes[(uint32_t)b->valuedouble] = n->valuedouble;
            }
        }
    }
    cJSON_Delete(doc);
}

static enum MHD_Result
api_rebalance(void *ctx, bc_http_req_t *req)
{
    bc_console_api_t *api = ctx;
    bc_http_param_t params[8];
    int n = req->query ? bc_http_parse_query(req->query, params, 8) : 0;
    if (n < 0) return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "malformed query string");
    bool dry_run = false;
    for (int i = 0; i < n; i++) {
        if (strcmp(params[i].name, "dry_run") == 0) {
            int b = bc_http_param_bool(&params[i]);
            if (b < 0) {
                return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                           "dry_run must be 1/0, true/false or yes/no");
            }
            dry_run = b == 1;
        } else {
            return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "unknown parameter \"%.40s\"",
                                       params[i].name);
        }
    }

    bc_reconcile_output_t out;
    bc_view_t v;
    bc_status_t st = bc_console_rebalance(api->console, dry_run, &out, &v);
    if (st == BC_EBUSY) {
        char leader[BC_ADDR_MAX] = "";
        bc_console_leader_addr(api->console, leader, sizeof(leader));
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "error", "this console is a standby; ask the active console");
        cJSON_AddStringToObject(doc, "active_console", leader);
        return bc_http_reply_json(req, MHD_HTTP_CONFLICT, doc);
    }
    if (st != BC_OK) {
        bc_reconcile_free(&out);
        bc_view_free(&v);
        return bc_http_reply_error(req, st == BC_ESTALE ? MHD_HTTP_CONFLICT
                                                        : MHD_HTTP_SERVICE_UNAVAILABLE,
                                   "rebalance failed: %s", bc_status_str(st));
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddBoolToObject(doc, "dry_run", dry_run);
    cJSON_AddBoolToObject(doc, "changed", out.tables_changed);
    cJSON_AddNumberToObject(doc, "epoch", (double)(out.tables_changed ? out.c.epoch : v.c.epoch));
    cJSON_AddStringToObject(doc, "summary", out.summary);
    cJSON *moves = cJSON_AddArrayToObject(doc, "moves");
    cJSON *assigns = cJSON_AddArrayToObject(doc, "assigned");
    double *bytes = malloc(v.nbuckets * sizeof(double));
    uint8_t *asked = calloc(v.ngroups + 1, 1);
    for (uint32_t b = 0; bytes != NULL && b < v.nbuckets; b++) bytes[b] = -1;
    double total = 0;
    for (uint32_t b = 0; b < v.nbuckets; b++) {
        uint32_t from = v.m.owner[b], to = out.d.owner[b];
        if (from == to || to == 0) continue;
        cJSON *mv = cJSON_CreateObject();
        cJSON_AddNumberToObject(mv, "bucket", b);
        cJSON_AddNumberToObject(mv, "from", from);
        cJSON_AddNumberToObject(mv, "to", to);
        if (from != 0 && bytes != NULL && asked != NULL) {
            for (size_t i = 0; i < v.ngroups; i++) {
                if (v.groups[i].gid == from && !asked[i]) {
                    asked[i] = 1;
                    api_bucket_bytes(&v, from, bytes);
                }
            }
            if (bytes[b] >= 0) {
                cJSON_AddNumberToObject(mv, "bytes", bytes[b]);
                total += bytes[b];
            }
        }
        cJSON_AddItemToArray(from == 0 ? assigns : moves, mv);
    }
    cJSON_AddNumberToObject(doc, "bytes_known", total);
    free(bytes);
    free(asked);
    cJSON_AddNumberToObject(doc, "pending_moves", out.pending_moves);
    bc_reconcile_free(&out);
    bc_view_free(&v);
    return bc_http_reply_json(req, MHD_HTTP_OK, doc);
}

/*
 * The console's metrics, defined once: X(name after "bucketcache_", type,
 * help, value as an expression of const bc_console_stats_t *s).  The
 * read-only stall summary follows them (api_metrics).
 */
#define CONSOLE_METRICS(X)                                                                        \
    X("console_active", "gauge", "1 when this console is the active one.", s->leader)            \
    X("console_zookeeper_connected", "gauge", "1 when the ZooKeeper session is connected.",      \
      s->connected)                                                                               \
    X("console_elections_won_total", "counter", "Times this console became active.",             \
      s->elections_won)                                                                           \
    X("console_reconciles_total", "counter", "Reconcile rounds run.", s->reconciles)             \
    X("console_writes_total", "counter", "Table transactions committed.", s->writes)             \
    X("console_write_conflicts_total", "counter", "Transactions lost to a concurrent change.",   \
      s->write_conflicts)                                                                         \
    X("console_rebalances_total", "counter", "Rebalances committed.", s->rebalances)             \
    X("console_epoch", "gauge", "Table epoch last seen.", s->epoch)                               \
    X("console_pending_moves", "gauge", "Buckets whose data must migrate (m != d).",             \
      s->pending_moves)                                                                           \
    X("console_live_groups", "gauge", "Groups with at least one live node.", s->live_groups)     \
    X("console_buckets", "gauge", "Buckets in the cluster.", s->nbuckets)                        \
    X("console_migrations_parallel", "gauge", "Buckets this console copies at once (0 = off).",  \
      s->migrations_parallel)                                                                     \
    X("console_migrations_paused", "gauge", "1 when migrations are paused.", s->mig_paused)      \
    X("console_migrations_copying", "gauge", "Buckets being copied now.", s->mig_copying)        \
    X("console_migrations_started_total", "counter", "Bucket copies this console started.",      \
      s->mig_started)                                                                             \
    X("console_buckets_moved_total", "counter",                                                   \
      "Buckets this console cut over to their destination.", s->mig_cutovers)                    \
    X("console_bytes_moved_total", "counter",                                                     \
      "Key and value bytes of the buckets this console moved.", s->mig_bytes)                    \
    X("console_migrations_aborted_total", "counter",                                              \
      "Copies called off (failed, timed out, groups changed).", s->mig_aborted)                  \
    X("console_migration_reports_rejected_total", "counter",                                      \
      "Copy reports of a stale epoch rejected.", s->mig_rejected)                                \
    X("console_migration_run_buckets_moved", "gauge",                                             \
      "Buckets moved in the current (or last) run.", s->run_moved)                               \
    X("console_migration_run_bytes_moved", "gauge", "Bytes moved in the current (or last) run.", \
      s->run_bytes)                                                                               \
    X("console_precopying", "gauge", "Bucket precopies queued or running now.",                  \
      s->mig_precopying)                                                                          \
    X("console_precopied", "gauge", "Buckets precopied whose read-only copy has not started.",   \
      s->mig_precopied)                                                                           \
    X("console_precopies_total", "counter", "Bucket precopies this console saw finish.",         \
      s->precopies_done)                                                                          \
    X("console_precopies_failed_total", "counter",                                                \
      "Precopies that failed (their copy is a full one).", s->precopies_failed)                  \
    X("console_precopy_bytes_total", "counter", "Key and value bytes precopied while writable.", \
      s->precopy_bytes)                                                                           \
    X("console_precopies_unreachable_total", "counter",                                           \
      "Failed precopies whose destination did not answer: no read-only copy followed.",          \
      s->precopies_unreachable)                                                                   \
    X("console_migration_dest_backoffs_total", "counter",                                         \
      "Times a destination group began backing off after a failed copy or precopy.",             \
      s->mig_dest_backoffs)                                                                       \
    X("console_migration_dests_backing_off", "gauge",                                             \
      "Destination groups nothing starts towards now (backing off).", s->dests_backing_off)      \
    X("console_migrations_held_back", "gauge",                                                    \
      "Copies and precopies the last round did not start: destination backing off, or a "       \
      "group's primary registration gone.", s->mig_held_back)                                    \
    X("console_groups_waiting", "gauge",                                                          \
      "Groups whose primary is gone with no in-sync backup alive: no failover without an "       \
      "operator.", s->groups_waiting)                                                             \
    X("console_unclean_failovers_total", "counter",                                               \
      "Unclean failovers an operator asked this console for.", s->unclean_failovers)

static enum MHD_Result
api_metrics(void *ctx, bc_http_req_t *req)
{
    bc_console_api_t *api = ctx;
    bc_console_stats_t stats;
    const bc_console_stats_t *s = &stats;
    bc_console_get_stats(api->console, &stats);
    bc_textbuf_t tb = {0};
#define CONSOLE_METRIC(name, type, help, value) bc_metric(&tb, name, type, help, (uint64_t)(value));
    CONSOLE_METRICS(CONSOLE_METRIC)
#undef CONSOLE_METRIC
    /* Read-only stalls of the moves this console cut over: a histogram in
     * seconds whose buckets only grow. */
    bc_metric_histogram_ms(&tb, "console_migration_stall_seconds",
                           "Time each bucket this console moved was read-only.", NULL,
                           bc_console_stall_bounds_ms, s->stall_hist, BC_CONSOLE_STALL_NBOUNDS,
                           (double)s->stall_sum_ms);
    bc_metric_histogram_ms(&tb, "console_zk_commit_seconds",
                           "Time each ZooKeeper transaction of this console took (committed or "
                           "refused).", NULL, bc_console_commit_bounds_ms, s->commit_hist,
                           BC_CONSOLE_COMMIT_NBOUNDS, (double)s->commit_sum_us / 1000.0);
    if (api->observe != NULL) bc_observe_metrics(api->observe, &tb);
    return bc_metrics_reply(req, &tb);
}

/* ---- migrations ---- */

/*
 * GET /v1/migrations: progress of the current (or last) run, from
 * ZooKeeper, so any console answers.
 */
static enum MHD_Result
api_migrations(void *ctx, bc_http_req_t *req)
{
    bc_console_api_t *api = ctx;
    bc_console_t *cs = api->console;
    bc_view_t v;
    bc_mig_set_t migs;
    char err[256] = "", leader[BC_ADDR_MAX] = "";
    bc_status_t st = bc_view_load(bc_console_zk(cs), bc_console_cluster(cs), bc_console_nbuckets(cs),
                                  NULL, NULL, &v, err, sizeof(err));
    if (st != BC_OK) return api_view_error(req, st, err);
    st = bc_mig_load(bc_console_zk(cs), bc_console_cluster(cs), bc_console_nbuckets(cs), &migs, err,
                     sizeof(err));
    if (st != BC_OK) {
        bc_view_free(&v);
        return api_view_error(req, st, err);
    }
    bc_console_leader_addr(cs, leader, sizeof(leader));
    bc_console_stats_t s;
    bc_console_get_stats(cs, &s);
    const bc_mig_control_t *c = &migs.control;
    int64_t now = bc_time_real_ms();

    bc_mig_progress_t prog;
    bc_mig_progress_count(v.m.owner, v.d.owner, v.nbuckets, migs.rec, c, &prog);
    uint32_t pending = prog.pending, moving = prog.moving;
    cJSON *doc = cJSON_CreateObject();
    cJSON *active = cJSON_CreateArray(), *waiting = cJSON_CreateArray();
    for (uint32_t b = 0; b < v.nbuckets; b++) {
        const bc_mig_record_t *r = migs.rec[b];
        bool planned = bc_table_move_planned(v.m.owner[b], v.d.owner[b]);
        if (r != NULL && r->state == BC_MIG_COPYING) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "bucket", b);
            cJSON_AddNumberToObject(o, "from", r->from);
            cJSON_AddNumberToObject(o, "to", r->to);
            cJSON_AddNumberToObject(o, "epoch", (double)r->epoch);
            cJSON_AddNumberToObject(o, "started_ms", (double)r->started_ms);
            cJSON_AddNumberToObject(o, "readonly_ms", (double)(now - r->started_ms));
            cJSON_AddNumberToObject(o, "attempts", r->attempts);
            cJSON_AddItemToArray(active, o);
            continue;
        }
        if (!planned) continue;
        if (r != NULL && r->attempts > 0) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "bucket", b);
            cJSON_AddNumberToObject(o, "from", r->from);
            cJSON_AddNumberToObject(o, "to", r->to);
            cJSON_AddNumberToObject(o, "attempts", r->attempts);
            cJSON_AddNumberToObject(o, "retry_in_ms",
                                    (double)(r->retry_at_ms > now ? r->retry_at_ms - now : 0));
            cJSON_AddStringToObject(o, "error", r->error);
            cJSON_AddItemToArray(waiting, o);
        }
    }
    bool running = prog.running;
    int64_t end = running ? now : c->run_finished_ms;
    double elapsed_s = c->run_started_ms != 0 && end > c->run_started_ms
                           ? (double)(end - c->run_started_ms) / 1000.0 : 0;
    double rate_b = elapsed_s > 0 ? (double)c->bytes / elapsed_s : 0;
    double rate_k = elapsed_s > 0 ? (double)c->moved / elapsed_s : 0;
    double avg = c->moved > 0 ? (double)c->bytes / (double)c->moved : 0;

    cJSON_AddStringToObject(doc, "active_console", leader);
    cJSON_AddBoolToObject(doc, "paused", c->paused);
    cJSON_AddNumberToObject(doc, "parallel", s.migrations_parallel);
    cJSON_AddBoolToObject(doc, "running", running);
    cJSON_AddNumberToObject(doc, "pending", pending);
    cJSON_AddNumberToObject(doc, "moving", moving);
    /* From this console's memory, not ZooKeeper: the active console's count. */
    cJSON_AddBoolToObject(doc, "precopy", s.precopy);
    cJSON_AddNumberToObject(doc, "precopying", s.mig_precopying);
    cJSON_AddNumberToObject(doc, "precopied", s.mig_precopied);
    cJSON_AddNumberToObject(doc, "precopies_unreachable", (double)s.precopies_unreachable);
    cJSON_AddNumberToObject(doc, "dest_backoffs", (double)s.mig_dest_backoffs);
    cJSON_AddNumberToObject(doc, "dests_backing_off", s.dests_backing_off);
    cJSON_AddNumberToObject(doc, "held_back", s.mig_held_back);
    cJSON_AddNumberToObject(doc, "done", prog.done);
    cJSON_AddNumberToObject(doc, "total", prog.total);
    cJSON_AddNumberToObject(doc, "failed_attempts", (double)c->failures);
    cJSON_AddNumberToObject(doc, "bytes_moved", (double)c->bytes);
    cJSON_AddNumberToObject(doc, "items_moved", (double)c->items);
    cJSON_AddNumberToObject(doc, "started_ms", (double)c->run_started_ms);
    cJSON_AddNumberToObject(doc, "finished_ms", (double)c->run_finished_ms);
    cJSON_AddNumberToObject(doc, "elapsed_s", elapsed_s);
    cJSON_AddNumberToObject(doc, "rate_bytes_per_s", rate_b);
    cJSON_AddNumberToObject(doc, "rate_buckets_per_s", rate_k);
    /* What is left, from the sources' own per-bucket counts (one request
     * per source group); the run's average size for a bucket whose source
     * did not answer. */
    double left = 0;
    uint32_t unknown = 0;
    if (pending + moving > 0) {
        double *bytes = malloc(v.nbuckets * sizeof(*bytes));
        char *asked = calloc(v.ngroups + 1, 1);
        if (bytes != NULL && asked != NULL) {
            for (uint32_t b = 0; b < v.nbuckets; b++) bytes[b] = -1;
            for (uint32_t b = 0; b < v.nbuckets; b++) {
                bool copying = migs.rec[b] != NULL && migs.rec[b]->state == BC_MIG_COPYING;
                if (!copying && !bc_table_move_planned(v.m.owner[b], v.d.owner[b])) continue;
                for (size_t i = 0; i < v.ngroups; i++) {
                    if (v.groups[i].gid == v.m.owner[b] && !asked[i]) {
                        asked[i] = 1;
                        api_bucket_bytes(&v, v.m.owner[b], bytes);
                    }
                }
                if (bytes[b] >= 0) left += bytes[b];
                else unknown++;
            }
        } else {
            unknown = pending + moving;
        }
        free(bytes);
        free(asked);
    }
    cJSON_AddNumberToObject(doc, "bytes_left", left + avg * unknown);
    cJSON_AddNumberToObject(doc, "bytes_left_estimate", left + avg * unknown);
    cJSON_AddNumberToObject(doc, "buckets_size_unknown", unknown);
    if (running && rate_k > 0) {
        cJSON_AddNumberToObject(doc, "eta_s", (pending + moving) / rate_k);
    } else {
        cJSON_AddNullToObject(doc, "eta_s");
    }
    cJSON *stall = cJSON_AddObjectToObject(doc, "stall_ms");
    cJSON_AddNumberToObject(stall, "count", c->nstalls);
    cJSON_AddNumberToObject(stall, "p50", bc_mig_control_stall_pct(c, 50));
    cJSON_AddNumberToObject(stall, "p99", bc_mig_control_stall_pct(c, 99));
    cJSON_AddNumberToObject(stall, "max", bc_mig_control_stall_pct(c, 100));
    /* How many buckets stalled up to each bound (the last one is "more"). */
    uint64_t counts[BC_CONSOLE_STALL_NBOUNDS + 1] = {0};
    for (uint32_t i = 0; i < c->nstalls; i++) {
        counts[bc_metric_bin_ms(bc_console_stall_bounds_ms, BC_CONSOLE_STALL_NBOUNDS,
                                c->stalls[i])]++;
    }
    cJSON *hist = bc_metric_histogram_json(bc_console_stall_bounds_ms, counts,
                                           BC_CONSOLE_STALL_NBOUNDS);
    if (hist != NULL) cJSON_AddItemToObject(stall, "histogram", hist);
    /* This process's ZooKeeper transactions so far (each cutover's pause
     * holds one): cumulative, for a caller to take differences of. */
    bc_console_stats_t cst;
    bc_console_get_stats(api->console, &cst);
    cJSON *commits = cJSON_AddObjectToObject(doc, "commits");
    cJSON_AddNumberToObject(commits, "count", (double)cst.commits);
    cJSON_AddNumberToObject(commits, "sum_us", (double)cst.commit_sum_us);
    cJSON_AddNumberToObject(commits, "max_us", (double)cst.commit_max_us);
    hist = bc_metric_histogram_json(bc_console_commit_bounds_ms, cst.commit_hist,
                                    BC_CONSOLE_COMMIT_NBOUNDS);
    if (hist != NULL) cJSON_AddItemToObject(commits, "histogram", hist);
    cJSON *held = cJSON_AddArrayToObject(doc, "held_groups");
    for (uint32_t i = 0; i < c->nheld; i++) cJSON_AddItemToArray(held, cJSON_CreateNumber(c->held[i]));
    cJSON_AddItemToObject(doc, "active", active);
    cJSON_AddItemToObject(doc, "waiting", waiting);
    bc_mig_control_recent_json(c, doc);
    bc_mig_set_free(&migs);
    bc_view_free(&v);
    return bc_http_reply_json(req, MHD_HTTP_OK, doc);
}

/* 409 naming the active console (a standby was asked to write). */
static enum MHD_Result
api_not_leader(bc_console_api_t *api, bc_http_req_t *req)
{
    char leader[BC_ADDR_MAX] = "";
    bc_console_leader_addr(api->console, leader, sizeof(leader));
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "error", "this console is a standby; ask the active console");
    cJSON_AddStringToObject(doc, "active_console", leader);
    return bc_http_reply_json(req, MHD_HTTP_CONFLICT, doc);
}

static enum MHD_Result
api_migrations_op(bc_console_api_t *api, bc_http_req_t *req, bc_console_mig_op_t op)
{
    if (req->query != NULL && req->query[0] != '\0') {
        return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "no parameters expected");
    }
    char summary[1024] = "";
    bc_status_t st = bc_console_migrations(api->console, op, summary, sizeof(summary));
    if (st == BC_EBUSY) return api_not_leader(api, req);
    if (st == BC_EINVAL) return bc_http_reply_error(req, MHD_HTTP_CONFLICT, "%s", summary);
    if (st != BC_OK) {
        return bc_http_reply_error(req, st == BC_ESTALE ? MHD_HTTP_CONFLICT
                                                        : MHD_HTTP_SERVICE_UNAVAILABLE,
                                   "%s failed: %s (retry)", op == BC_CONSOLE_MIG_CANCEL ? "cancel"
                                   : "pause/resume", bc_status_str(st));
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddBoolToObject(doc, "ok", true);
    cJSON_AddStringToObject(doc, "summary", summary);
    return bc_http_reply_json(req, MHD_HTTP_OK, doc);
}

/*
 * POST /v1/groups/failover?group=G&unclean=1: an operator's unclean
 * failover (console.h bc_console_failover).  unclean=1 is required: the
 * only failover there is to ask for is the one that may lose
 * acknowledged writes (a clean one happens by itself).
 */
static enum MHD_Result
api_group_failover(void *ctx, bc_http_req_t *req)
{
    bc_console_api_t *api = ctx;
    bc_http_param_t params[8];
    int n = req->query ? bc_http_parse_query(req->query, params, 8) : 0;
    if (n < 0) return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "malformed query string");
    uint64_t gid = 0;
    int unclean = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(params[i].name, "group") == 0) {
            if (!bc_parse_u64n(params[i].value, params[i].value_len, BC_GROUP_MAX_GID, &gid) ||
                gid == 0) {
                return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "group: expected a group id");
            }
        } else if (strcmp(params[i].name, "unclean") == 0) {
            unclean = bc_http_param_bool(&params[i]);
            if (unclean < 0) {
                return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                           "unclean must be 1/0, true/false or yes/no");
            }
        } else {
            return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "unknown parameter \"%.40s\"",
                                       params[i].name);
        }
    }
    if (gid == 0) return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "group is required");
    if (unclean != 1) {
        return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                   "only an unclean failover can be asked for (unclean=1): a "
                                   "group whose primary is gone fails over to an in-sync backup "
                                   "by itself, and when none is alive only an unclean one, which "
                                   "may lose acknowledged writes, is left");
    }
    bc_reconcile_failover_t rep;
    char summary[1024] = "";
    bc_status_t st = bc_console_failover(api->console, (uint32_t)gid, &rep, summary,
                                         sizeof(summary));
    if (st == BC_EBUSY) return api_not_leader(api, req);
    if (st == BC_EINVAL) {
        return bc_http_reply_error(req, MHD_HTTP_CONFLICT, "group %u: %s", (unsigned)gid,
                                   rep.error);
    }
    if (st != BC_OK) {
        return bc_http_reply_error(req, st == BC_ESTALE ? MHD_HTTP_CONFLICT
                                                        : MHD_HTTP_SERVICE_UNAVAILABLE,
                                   "failover failed: %s (retry)", bc_status_str(st));
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "group", (double)gid);
    cJSON_AddStringToObject(doc, "promoted", rep.node);
    cJSON_AddStringToObject(doc, "old_primary", rep.old_primary);
    cJSON_AddBoolToObject(doc, "unclean", !rep.clean);
    cJSON_AddNumberToObject(doc, "offset", (double)rep.offset);
    if (rep.recorded) {
        cJSON_AddNumberToObject(doc, "recorded_offset", (double)rep.recorded_offset);
        cJSON_AddNumberToObject(doc, "recorded_at_ms", (double)rep.recorded_at_ms);
        cJSON_AddNumberToObject(doc, "behind_bytes", (double)rep.behind);
    }
    cJSON_AddStringToObject(doc, "may_be_lost",
                            rep.clean ? "nothing: an in-sync backup was promoted"
                            : rep.recorded
                                ? "every write the old primary acknowledged after its last "
                                  "in-sync record (behind_bytes of stream at least, and what it "
                                  "took alone after that)"
                                : "unknown: the old term kept no in-sync record");
    cJSON_AddStringToObject(doc, "summary", summary);
    return bc_http_reply_json(req, MHD_HTTP_OK, doc);
}

static enum MHD_Result
api_migrations_pause(void *ctx, bc_http_req_t *req)
{
    return api_migrations_op(ctx, req, BC_CONSOLE_MIG_PAUSE);
}

static enum MHD_Result
api_migrations_resume(void *ctx, bc_http_req_t *req)
{
    return api_migrations_op(ctx, req, BC_CONSOLE_MIG_RESUME);
}

static enum MHD_Result
api_rebalance_cancel(void *ctx, bc_http_req_t *req)
{
    return api_migrations_op(ctx, req, BC_CONSOLE_MIG_CANCEL);
}

/* ---- statistics (observe.h) ---- */

static enum MHD_Result
api_no_stats(bc_http_req_t *req)
{
    return bc_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "statistics are not running");
}

/* Parses a decimal 0..max from a query value or a path piece. */
static bool
api_parse_u32(const char *s, size_t len, uint32_t max, uint32_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 10) return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max) return false;
    *out = (uint32_t)v;
    return true;
}

/* Parses the query into the named values (NULL = not allowed); a 400 is
 * queued into *result on a bad one.  n: bound for "n"; gid: for "group". */
static bool
api_stats_query(bc_http_req_t *req, uint32_t *n, uint32_t *gid, const char **by,
                enum MHD_Result *result)
{
    bc_http_param_t params[8];
    int np = req->query != NULL ? bc_http_parse_query(req->query, params, 8) : 0;
    if (np < 0) {
        *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "malformed query string");
        return false;
    }
    for (int i = 0; i < np; i++) {
        const bc_http_param_t *p = &params[i];
        if (n != NULL && strcmp(p->name, "n") == 0) {
            if (!api_parse_u32(p->value, p->value_len, 1000, n) || *n == 0) {
                *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "n: expected 1..1000");
                return false;
            }
        } else if (gid != NULL && strcmp(p->name, "group") == 0) {
            if (!api_parse_u32(p->value, p->value_len, UINT32_MAX - 1, gid) || *gid == 0) {
                *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                              "group: expected a group id >= 1");
                return false;
            }
        } else if (by != NULL && strcmp(p->name, "by") == 0) {
            static const char *const bys[] = {"ops", "bytes", "misses"};
            *by = NULL;
            for (size_t k = 0; k < 3; k++) {
                if (p->value_len == strlen(bys[k]) && strcmp(p->value, bys[k]) == 0) *by = bys[k];
            }
            if (*by == NULL) {
                *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                              "by: expected ops, bytes or misses");
                return false;
            }
        } else {
            *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                          "unknown query parameter \"%.40s\" (accepted:%s%s%s)",
                                          p->name, n ? " n" : "", gid ? " group" : "",
                                          by ? " by" : "");
            return false;
        }
    }
    return true;
}

static enum MHD_Result
api_reply_doc(bc_http_req_t *req, cJSON *doc)
{
    if (doc == NULL) return bc_http_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    return bc_http_reply_json(req, MHD_HTTP_OK, doc);
}

/* GET /v1/groups/{gid}/stats */
static enum MHD_Result
api_group_stats(void *ctx, bc_http_req_t *req)
{
    bc_console_api_t *api = ctx;
    enum MHD_Result result;
    const char *slash = memchr(req->rest, '/', req->rest_len);
    uint32_t gid = 0;
    if (slash == NULL || (size_t)(req->rest + req->rest_len - slash) != 6 ||
        memcmp(slash, "/stats", 6) != 0) {
        return bc_http_reply_error(req, MHD_HTTP_NOT_FOUND, "expected /v1/groups/{gid}/stats");
    }
    if (!api_parse_u32(req->rest, (size_t)(slash - req->rest), UINT32_MAX - 1, &gid) || gid == 0) {
        return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "group id: expected an integer >= 1");
    }
    if (!api_stats_query(req, NULL, NULL, NULL, &result)) return result;
    if (api->observe == NULL) return api_no_stats(req);
    bool found;
    cJSON *doc = bc_observe_group_json(api->observe, gid, &found);
    if (!found) return bc_http_reply_error(req, MHD_HTTP_NOT_FOUND, "no group %u", gid);
    return api_reply_doc(req, doc);
}

/* GET /v1/stats/groups: every group's summary (CLI status, dashboard). */
static enum MHD_Result
api_stats_groups(void *ctx, bc_http_req_t *req)
{
    bc_console_api_t *api = ctx;
    enum MHD_Result result;
    if (!api_stats_query(req, NULL, NULL, NULL, &result)) return result;
    if (api->observe == NULL) return api_no_stats(req);
    return api_reply_doc(req, bc_observe_groups_json(api->observe));
}

/* GET /v1/stats/history: the dashboard's chart data. */
static enum MHD_Result
api_stats_history(void *ctx, bc_http_req_t *req)
{
    bc_console_api_t *api = ctx;
    enum MHD_Result result;
    if (!api_stats_query(req, NULL, NULL, NULL, &result)) return result;
    if (api->observe == NULL) return api_no_stats(req);
    return api_reply_doc(req, bc_observe_history_json(api->observe));
}

/* GET /v1/warnings */
static enum MHD_Result
api_warnings(void *ctx, bc_http_req_t *req)
{
    bc_console_api_t *api = ctx;
    enum MHD_Result result;
    if (!api_stats_query(req, NULL, NULL, NULL, &result)) return result;
    if (api->observe == NULL) return api_no_stats(req);
    return api_reply_doc(req, bc_observe_warnings_json(api->observe));
}

/* GET /v1/buckets/top?by=ops|bytes|misses&n=20 */
static enum MHD_Result
api_buckets_top(void *ctx, bc_http_req_t *req)
{
    bc_console_api_t *api = ctx;
    enum MHD_Result result;
    uint32_t n = 20;
    const char *by = "ops";
    if (!api_stats_query(req, &n, NULL, &by, &result)) return result;
    if (api->observe == NULL) return api_no_stats(req);
    return api_reply_doc(req, bc_observe_top_json(api->observe, by, n));
}

/* GET /v1/hotkeys?group=G&n=N: merged per group. */
static enum MHD_Result
api_hotkeys(void *ctx, bc_http_req_t *req)
{
    bc_console_api_t *api = ctx;
    enum MHD_Result result;
    uint32_t n = BC_OBSERVE_HOTKEYS, gid = 0;
    if (!api_stats_query(req, &n, &gid, NULL, &result)) return result;
    if (api->observe == NULL) return api_no_stats(req);
    return api_reply_doc(req, bc_observe_hotkeys_json(api->observe, gid, n));
}

/* GET /v1/buckets/{b}: its counters, owners, primary, backups, pending move. */
static enum MHD_Result
api_bucket(void *ctx, bc_http_req_t *req)
{
    bc_console_api_t *api = ctx;
    bc_console_t *cs = api->console;
    enum MHD_Result result;
    uint32_t b;
    if (!api_parse_u32(req->rest, req->rest_len, UINT32_MAX - 1, &b) ||
        b >= bc_console_nbuckets(cs)) {
        return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "bucket: expected 0..%u",
                                   bc_console_nbuckets(cs) - 1);
    }
    if (!api_stats_query(req, NULL, NULL, NULL, &result)) return result;
    bc_view_t v;
    char err[256] = "";
    bc_status_t st = bc_view_load(bc_console_zk(cs), bc_console_cluster(cs), bc_console_nbuckets(cs),
                                  NULL, NULL, &v, err, sizeof(err));
    if (st != BC_OK) return api_view_error(req, st, err);
    cJSON *doc = api->observe != NULL ? bc_observe_bucket_json(api->observe, b)
                                      : cJSON_CreateObject();
    if (doc == NULL) {
        bc_view_free(&v);
        return bc_http_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    cJSON_DeleteItemFromObjectCaseSensitive(doc, "bucket");
    cJSON_AddNumberToObject(doc, "bucket", b);
    cJSON *own = cJSON_AddObjectToObject(doc, "tables");
    cJSON_AddNumberToObject(own, "c", v.c.owner[b]);
    cJSON_AddNumberToObject(own, "m", v.m.owner[b]);
    cJSON_AddNumberToObject(own, "d", v.d.owner[b]);
    cJSON_AddBoolToObject(doc, "readonly", v.c.readonly[b] != 0);
    if (v.m.owner[b] != 0 && v.d.owner[b] != 0 && v.m.owner[b] != v.d.owner[b]) {
        cJSON *mv = cJSON_AddObjectToObject(doc, "pending_move");
        cJSON_AddNumberToObject(mv, "from", v.m.owner[b]);
        cJSON_AddNumberToObject(mv, "to", v.d.owner[b]);
        cJSON_AddStringToObject(mv, "state", v.c.readonly[b] ? "moving" : "pending");
    } else {
        cJSON_AddNullToObject(doc, "pending_move");
    }
    const bc_view_group_t *g = bc_view_group(&v, v.c.owner[b]);
    cJSON_AddStringToObject(doc, "primary", g != NULL && g->has_primary ? g->primary.node : "");
    cJSON_AddStringToObject(doc, "primary_addr", g != NULL && g->has_primary ? g->primary.data_addr : "");
    cJSON *bks = cJSON_AddArrayToObject(doc, "backups");
    for (size_t k = 0; g != NULL && k < g->nnodes; k++) {
        if (g->has_primary && strcmp(g->primary.node, g->nodes[k].name) == 0) continue;
        cJSON_AddItemToArray(bks, cJSON_CreateString(g->nodes[k].name));
    }
    bc_view_free(&v);
    return bc_http_reply_json(req, MHD_HTTP_OK, doc);
}

static enum MHD_Result
api_dashboard(void *ctx, bc_http_req_t *req)
{
    (void)ctx;
    return bc_http_reply_bytes(req, MHD_HTTP_OK, "text/html; charset=utf-8", bc_dashboard_html,
                               strlen(bc_dashboard_html));
}

static const bc_http_route_t api_routes[] = {
    {"/health", "GET", api_health},
    {"/metrics", "GET", api_metrics},
    {"/v1/cluster", "GET", api_cluster},
    {"/v1/tables", "GET", api_tables},
    {"/v1/rebalance", "POST", api_rebalance},
    {"/v1/rebalance/cancel", "POST", api_rebalance_cancel},
    {"/v1/migrations", "GET", api_migrations},
    {"/v1/migrations/pause", "POST", api_migrations_pause},
    {"/v1/migrations/resume", "POST", api_migrations_resume},
    {"/v1/groups/failover", "POST", api_group_failover},
    {"/v1/groups/*", "GET", api_group_stats},
    {"/v1/stats/groups", "GET", api_stats_groups},
    {"/v1/stats/history", "GET", api_stats_history},
    {"/v1/warnings", "GET", api_warnings},
    {"/v1/buckets/top", "GET", api_buckets_top},
    {"/v1/buckets/*", "GET", api_bucket},
    {"/v1/hotkeys", "GET", api_hotkeys},
    {"/", "GET", api_dashboard},
};

bc_status_t
bc_console_api_create(const char *listen_addr, uint16_t port, bc_console_t *console,
                      bc_console_api_t **out)
{
    return bc_console_api_create_secure(listen_addr, port, console, NULL, out);
}

bc_status_t
bc_console_api_create_secure(const char *listen_addr, uint16_t port, bc_console_t *console,
                             const bc_console_api_access_t *access, bc_console_api_t **out)
{
    static const bc_console_api_access_t open_access;
    if (access == NULL) access = &open_access;
    bc_console_api_t *api = calloc(1, sizeof(*api));
    if (api == NULL) return BC_ENOMEM;
    api->console = console;
    api->has_token = access->auth != NULL;
    bc_httpd_config_t cfg = {
        .name = "console api", .listen_addr = listen_addr, .port = port,
        .port_tries = access->port_tries, .max_body = 4096, .routes = api_routes,
        .nroutes = sizeof(api_routes) / sizeof(api_routes[0]), .ctx = api,
        /* ---- access (bc_httpd.h ACCESS, docs/security.md) ---- */
        .auth = access->auth, .insecure_no_auth = access->insecure_no_auth,
        .public_paths = "/health, /",      /* the dashboard page asks for the token itself */
        .body_types = "application/json",
        .max_conns = access->max_conns, .max_conns_per_ip = access->max_conns_per_ip,
    };
    bc_status_t st = bc_httpd_create(&cfg, &api->httpd);
    if (st != BC_OK) {
        free(api);
        return st;
    }
    *out = api;
    return BC_OK;
}

void
bc_console_api_attach(bc_console_api_t *api, bc_console_t *console)
{
    api->console = console;
}

void
bc_console_api_set_observe(bc_console_api_t *api, bc_observe_t *observe)
{
    api->observe = observe;
}

bc_status_t
bc_console_api_start(bc_console_api_t *api)
{
    return bc_httpd_start(api->httpd);
}

uint16_t
bc_console_api_port(const bc_console_api_t *api)
{
    return bc_httpd_port(api->httpd);
}

void
bc_console_api_destroy(bc_console_api_t *api)
{
    if (api == NULL) return;
    bc_httpd_destroy(api->httpd);
    free(api);
}
