/*
 * observe.c -- see observe.h: the console's sampler of the nodes'
 * statistics, and the JSON and metrics made from its samples.
 */
#include "observe.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_cluster.h"
#include "bc_http_client.h"
#include "bc_log.h"
#include "bc_time.h"
#include "view.h"

#define OBS_HTTP_TIMEOUT_MS 1000
#define OBS_MINUTE_MS       60000
#define OBS_KEY_JSON_MAX    352            /* base64 of a 250-byte key, plus NUL */

/* ---- what is kept ---- */

#define OBS_COUNTERS(X) \
    X(gets) X(hits) X(sets) X(deletes) X(bytes_read) X(bytes_written) X(evictions) X(expirations)

typedef struct obs_counts {
#define OBS_FIELD(f) uint64_t f;
    OBS_COUNTERS(OBS_FIELD)
#undef OBS_FIELD
} obs_counts_t;

typedef struct obs_backup {
    char node[BC_NODE_NAME_MAX];
    bool reachable, link_up, synced;
    int64_t lag_ms;
    uint64_t lag_bytes;
} obs_backup_t;

typedef struct obs_hot {
    char key[OBS_KEY_JSON_MAX];            /* as the node sent it */
    bool base64;                           /* key is key_base64 */
    uint32_t bucket;
    double rate;                           /* requests/s, summed over the group's nodes */
} obs_hot_t;

typedef struct obs_group {
    uint32_t gid;
    bool up;                               /* at least one live node */
    uint32_t nodes, backups;               /* live */
    char primary[BC_NODE_NAME_MAX];        /* "" = none */
    bool primary_reachable;
    uint32_t buckets_c, buckets_m, buckets_d;
    uint64_t mem_used, mem_limit, items, bytes;
    obs_counts_t delta;                    /* this sample's requests */
    obs_counts_t total;                    /* sum of every delta (monotonic) */
    uint32_t nbackups;
    obs_backup_t backup[BC_OBSERVE_MAX_BACKUPS];
    uint32_t nhot;
    obs_hot_t hot[BC_OBSERVE_HOTKEYS];
} obs_group_t;

/* One point of the ring: what the charts draw. */
typedef struct obs_point_group {
    uint32_t gid;
    bool up;
    obs_counts_t delta;
    uint64_t mem_used, mem_limit;
    uint32_t nbackups;
    struct { char node[BC_NODE_NAME_MAX]; int64_t lag_ms; } backup[BC_OBSERVE_MAX_BACKUPS];
} obs_point_group_t;

typedef struct obs_point {
    int64_t t_ms;                          /* unix ms */
    double dt_s;                           /* since the previous point (0: first) */
    uint32_t ngroups;
    obs_point_group_t group[BC_OBSERVE_MAX_GROUPS];
    uint32_t pending, moving;
    bool paused;
    uint64_t moved_bytes;                  /* in this interval */
    uint32_t unowned;
} obs_point_t;

typedef struct obs_bucket {
    obs_counts_t cur;                      /* as last read */
    uint64_t items, bytes;
    uint32_t source;                       /* hash of the node it was read from; 0 = none */
    uint32_t owner;                        /* c table */
    double ops_rate, miss_rate;            /* per second, smoothed over about a minute */
    int64_t read_ms;
} obs_bucket_t;

typedef struct obs_warning {
    char kind[24];
    char severity[12];                     /* "critical", "warning", "info" */
    uint32_t gid;                          /* 0 = cluster-wide */
    char message[200];
} obs_warning_t;

struct bc_observe {
    bc_console_t *console;
    bc_observe_config_t cfg;
    uint32_t nbuckets;
    pthread_t thread;
    bool started;

    pthread_mutex_t lock;                  /* protects everything below */
    pthread_cond_t wake;
    bool stop;
    uint32_t samples;                      /* taken so far */
    int64_t last_ms;                       /* unix ms of the last sample; 0 = none */

    obs_group_t *groups;                   /* of the last sample, ascending gid */
    uint32_t ngroups;
    obs_bucket_t *buckets;                 /* nbuckets */
    obs_point_t *ring;                     /* ring_cap points */
    uint32_t ring_cap, ring_len, ring_next;

    uint32_t unowned, pending, moving, standbys;
    bool paused, connected, leader;
    uint64_t run_bytes_prev;
    int64_t progress_ms;                   /* last change in pending/moving/moved */
    uint32_t progress_key_pending, progress_key_moving;
    uint64_t progress_key_moved;

    obs_warning_t warnings[BC_OBSERVE_MAX_WARNINGS];
    uint32_t nwarnings;
};

static uint32_t
obs_name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h ? h : 1;
}

/* ---- reading the nodes ---- */

static cJSON *
obs_get_json(const char *addr, const char *path)
{
    if (addr == NULL || addr[0] == '\0') return NULL;
    bc_http_response_t resp;
    if (bc_http_request(addr, "GET", path, NULL, 0, OBS_HTTP_TIMEOUT_MS, &resp) != BC_OK) {
        return NULL;
    }
    cJSON *doc = resp.status == 200 ? cJSON_ParseWithLength(resp.body, resp.body_len) : NULL;
    bc_http_response_free(&resp);
    return doc;
}

static double
obs_num(const cJSON *o, const char *name)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(n) && n->valuedouble >= 0 ? n->valuedouble : 0;
}

static bool
obs_bool(const cJSON *o, const char *name)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, name));
}

/* What one node said (the sampler's scratch, outside the lock). */
typedef struct obs_node_read {
    bool reachable;
    uint64_t mem_used, mem_limit, items;
    bool link_up, synced;
    int64_t lag_ms;
    uint64_t lag_bytes;
    cJSON *buckets;                        /* primary: its /v1/buckets array (owned by doc) */
    cJSON *buckets_doc;
    cJSON *hot_doc;
} obs_node_read_t;

static void
obs_read_node(const bc_cluster_node_info_t *n, bool primary, obs_node_read_t *r)
{
    memset(r, 0, sizeof(*r));
    cJSON *st = obs_get_json(n->admin_addr, "/stats?buckets=nonempty");
    if (st == NULL) return;
    r->reachable = true;
    const cJSON *cache = cJSON_GetObjectItemCaseSensitive(st, "cache");
    r->mem_used = (uint64_t)obs_num(cache, "mem_used");
    r->mem_limit = (uint64_t)obs_num(cache, "mem_limit");
    r->items = (uint64_t)obs_num(cache, "curr_items");
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(st, "cluster");
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(cl, "replication");
    if (rp != NULL) {
        r->link_up = obs_bool(rp, "link_up");
        r->synced = obs_bool(rp, "synced");
        r->lag_ms = (int64_t)obs_num(rp, "lag_ms");
        r->lag_bytes = (uint64_t)obs_num(rp, "lag_bytes");
    }
    cJSON_Delete(st);
    if (primary) {
        r->buckets_doc = obs_get_json(n->admin_addr, "/v1/buckets");
        r->buckets = cJSON_GetObjectItemCaseSensitive(r->buckets_doc, "buckets");
        if (!cJSON_IsArray(r->buckets)) r->buckets = NULL;
    }
    char path[64];
    snprintf(path, sizeof(path), "/v1/hotkeys?n=%u", BC_OBSERVE_HOTKEYS);
    r->hot_doc = obs_get_json(n->admin_addr, path);
}

static void
obs_read_free(obs_node_read_t *r)
{
    cJSON_Delete(r->buckets_doc);
    cJSON_Delete(r->hot_doc);
}

/* Adds one node's hot keys into a group's list (merging equal keys). */
static void
obs_merge_hot(const cJSON *hot_doc, obs_hot_t *scratch, uint32_t *nscratch, uint32_t cap)
{
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(hot_doc, "keys"), *e;
    cJSON_ArrayForEach(e, keys) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(e, "key");
        bool b64 = false;
        if (!cJSON_IsString(k)) {
            k = cJSON_GetObjectItemCaseSensitive(e, "key_base64");
            b64 = true;
        }
        if (!cJSON_IsString(k) || strlen(k->valuestring) >= OBS_KEY_JSON_MAX) continue;
        double rate = obs_num(e, "rate_per_s");
        uint32_t i = 0;
        while (i < *nscratch && !(scratch[i].base64 == b64 &&
                                  strcmp(scratch[i].key, k->valuestring) == 0)) i++;
        if (i == *nscratch) {
            if (*nscratch == cap) continue;
            (*nscratch)++;
            snprintf(scratch[i].key, sizeof(scratch[i].key), "%s", k->valuestring);
            scratch[i].base64 = b64;
            scratch[i].bucket = (uint32_t)obs_num(e, "bucket");
            scratch[i].rate = 0;
        }
        scratch[i].rate += rate;
    }
}

static int
obs_hot_cmp(const void *a, const void *b)
{
    const obs_hot_t *x = a, *y = b;
    return x->rate > y->rate ? -1 : x->rate < y->rate ? 1 : strcmp(x->key, y->key);
}

static void
obs_warn(bc_observe_t *obs, const char *kind, const char *severity, uint32_t gid,
         const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
obs_warn(bc_observe_t *obs, const char *kind, const char *severity, uint32_t gid,
         const char *fmt, ...)
{
    if (obs->nwarnings == BC_OBSERVE_MAX_WARNINGS) return;
    obs_warning_t *w = &obs->warnings[obs->nwarnings++];
    snprintf(w->kind, sizeof(w->kind), "%s", kind);
    snprintf(w->severity, sizeof(w->severity), "%s", severity);
    w->gid = gid;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->message, sizeof(w->message), fmt, ap);
    va_end(ap);
}

static const obs_group_t *
obs_find_group(const obs_group_t *groups, uint32_t n, uint32_t gid)
{
    for (uint32_t i = 0; i < n; i++) {
        if (groups[i].gid == gid) return &groups[i];
    }
    return NULL;
}

static uint32_t
obs_console_count(bc_console_t *cs)
{
    char path[512];
    bc_zk_strings_t kids = {0};
    bc_cluster_path(path, sizeof(path), bc_console_cluster(cs), "/console/election");
    if (bc_zk_children(bc_console_zk(cs), path, NULL, NULL, &kids) != BC_OK) return 0;
    uint32_t n = (uint32_t)kids.count;
    bc_zk_strings_free(&kids);
    return n;
}

/* One sample: everything read first, unlocked; then merged under the lock. */
static void
obs_sample(bc_observe_t *obs)
{
    bc_console_t *cs = obs->console;
    bc_view_t v;
    char err[256] = "";
    int64_t now = bc_time_real_ms();
    bc_console_stats_t st;
    bc_console_get_stats(cs, &st);
    if (bc_view_load(bc_console_zk(cs), bc_console_cluster(cs), obs->nbuckets, NULL, NULL, &v,
                     err, sizeof(err)) != BC_OK) {
        pthread_mutex_lock(&obs->lock);
        obs->connected = false;
        obs->nwarnings = 0;
        obs_warn(obs, "zookeeper", "critical", 0, "cannot read the cluster from ZooKeeper%s%s",
                 err[0] ? ": " : "", err);
        pthread_mutex_unlock(&obs->lock);
        return;
    }
    uint32_t standbys = obs_console_count(cs);
    size_t ng = v.ngroups < BC_OBSERVE_MAX_GROUPS ? v.ngroups : BC_OBSERVE_MAX_GROUPS;
    obs_group_t *groups = calloc(ng ? ng : 1, sizeof(*groups));
    obs_node_read_t *reads = NULL;
    size_t nreads = 0;
    for (size_t i = 0; i < ng; i++) nreads += v.groups[i].nnodes;
    reads = calloc(nreads ? nreads : 1, sizeof(*reads));
    if (groups == NULL || reads == NULL) {
        free(groups);
        free(reads);
        bc_view_free(&v);
        return;
    }
    /* Read every live node (no lock held: up to a second each). */
    size_t ri = 0;
    for (size_t i = 0; i < ng; i++) {
        const bc_view_group_t *vg = &v.groups[i];
        for (size_t k = 0; k < vg->nnodes; k++, ri++) {
            bool primary = vg->has_primary && strcmp(vg->primary.node, vg->nodes[k].name) == 0;
            obs_read_node(&vg->nodes[k], primary, &reads[ri]);
        }
    }

    pthread_mutex_lock(&obs->lock);
    double dt = obs->last_ms > 0 && now > obs->last_ms ? (double)(now - obs->last_ms) / 1000.0 : 0;
    double alpha = dt > 0 ? 1 - exp(-dt * 1000.0 / OBS_MINUTE_MS) : 1;
    obs->unowned = obs->pending = obs->moving = 0;
    for (uint32_t b = 0; b < v.nbuckets && b < obs->nbuckets; b++) {
        obs->unowned += v.c.owner[b] == 0;
        obs->pending += v.m.owner[b] != 0 && v.d.owner[b] != 0 && v.m.owner[b] != v.d.owner[b];
        obs->moving += v.c.readonly[b] != 0;
        obs->buckets[b].owner = v.c.owner[b];
    }
    obs->pending = obs->pending >= obs->moving ? obs->pending - obs->moving : 0;
    obs->paused = st.mig_paused;
    obs->connected = st.connected;
    obs->leader = st.leader;
    obs->standbys = standbys > 0 ? standbys - 1 : 0;
    uint64_t moved_bytes = st.run_bytes >= obs->run_bytes_prev ? st.run_bytes - obs->run_bytes_prev
                                                                : st.run_bytes;
    if (obs->samples == 0) moved_bytes = 0;
    obs->run_bytes_prev = st.run_bytes;

    ri = 0;
    for (size_t i = 0; i < ng; i++) {
        const bc_view_group_t *vg = &v.groups[i];
        obs_group_t *g = &groups[i];
        const obs_group_t *old = obs_find_group(obs->groups, obs->ngroups, vg->gid);
        g->gid = vg->gid;
        g->up = vg->nnodes > 0;
        g->nodes = (uint32_t)vg->nnodes;
        if (old != NULL) g->total = old->total;
        for (uint32_t b = 0; b < v.nbuckets; b++) {
            g->buckets_c += v.c.owner[b] == vg->gid;
            g->buckets_m += v.m.owner[b] == vg->gid;
            g->buckets_d += v.d.owner[b] == vg->gid;
        }
        obs_hot_t hot[BC_OBSERVE_HOTKEYS * 8];
        uint32_t nhot = 0;
        for (size_t k = 0; k < vg->nnodes; k++, ri++) {
            const bc_cluster_node_info_t *n = &vg->nodes[k];
            obs_node_read_t *r = &reads[ri];
            bool primary = vg->has_primary && strcmp(vg->primary.node, n->name) == 0;
            if (r->hot_doc != NULL) {
                obs_merge_hot(r->hot_doc, hot, &nhot, sizeof(hot) / sizeof(hot[0]));
            }
            if (primary) {
                snprintf(g->primary, sizeof(g->primary), "%s", n->name);
                g->primary_reachable = r->reachable;
                g->mem_used = r->mem_used;
                g->mem_limit = r->mem_limit;
                g->items = r->items;
                const cJSON *e;
                uint32_t src = obs_name_hash(n->name);
                cJSON_ArrayForEach(e, r->buckets) {
                    double bd = obs_num(e, "bucket");
                    if (bd >= obs->nbuckets) continue;
                    uint32_t b = (uint32_t)bd;
                    obs_bucket_t *ob = &obs->buckets[b];
                    obs_counts_t c;
#define OBS_READ(f) c.f = (uint64_t)obs_num(e, #f);
                    OBS_COUNTERS(OBS_READ)
#undef OBS_READ
                    bool owned = v.c.owner[b] == vg->gid;
                    if (ob->source == src && dt > 0) {
                        obs_counts_t d;
                        bool sane = true;
#define OBS_DIFF(f) if (c.f < ob->cur.f) sane = false; d.f = c.f - ob->cur.f;
                        OBS_COUNTERS(OBS_DIFF)
#undef OBS_DIFF
                        if (sane) {
                            double ops = (double)(d.gets + d.sets + d.deletes) / dt;
                            double miss = (double)(d.gets - (d.hits <= d.gets ? d.hits : d.gets)) / dt;
                            ob->ops_rate += alpha * (ops - ob->ops_rate);
                            ob->miss_rate += alpha * (miss - ob->miss_rate);
                            if (owned) {
#define OBS_ADD(f) g->delta.f += d.f;
                                OBS_COUNTERS(OBS_ADD)
#undef OBS_ADD
                            }
                        }
                    } else if (ob->source != src) {
                        ob->ops_rate = ob->miss_rate = 0;
                    }
                    ob->cur = c;
                    ob->source = src;
                    ob->items = (uint64_t)obs_num(e, "items");
                    ob->bytes = (uint64_t)obs_num(e, "bytes");
                    ob->read_ms = now;
                }
            } else if (g->nbackups < BC_OBSERVE_MAX_BACKUPS) {
                obs_backup_t *bk = &g->backup[g->nbackups++];
                snprintf(bk->node, sizeof(bk->node), "%s", n->name);
                bk->reachable = r->reachable;
                bk->link_up = r->link_up;
                bk->synced = r->synced;
                bk->lag_ms = r->lag_ms;
                bk->lag_bytes = r->lag_bytes;
            }
            if (!primary) g->backups++;
        }
#define OBS_TOT(f) g->total.f += g->delta.f;
        OBS_COUNTERS(OBS_TOT)
#undef OBS_TOT
        qsort(hot, nhot, sizeof(hot[0]), obs_hot_cmp);
        g->nhot = nhot < BC_OBSERVE_HOTKEYS ? nhot : BC_OBSERVE_HOTKEYS;
        memcpy(g->hot, hot, g->nhot * sizeof(hot[0]));
    }
    /* A bucket nobody reports any more (its group is gone) stops counting. */
    for (uint32_t b = 0; b < obs->nbuckets; b++) {
        obs_bucket_t *ob = &obs->buckets[b];
        if (ob->read_ms != now) {
            ob->ops_rate += alpha * (0 - ob->ops_rate);
            ob->miss_rate += alpha * (0 - ob->miss_rate);
            if (v.c.owner[b] == 0) ob->items = ob->bytes = 0;
        }
    }
    free(obs->groups);
    obs->groups = groups;
    obs->ngroups = (uint32_t)ng;

    /* the ring */
    obs_point_t *p = &obs->ring[obs->ring_next];
    memset(p, 0, sizeof(*p));
    p->t_ms = now;
    p->dt_s = dt;
    p->pending = obs->pending;
    p->moving = obs->moving;
    p->paused = obs->paused;
    p->moved_bytes = moved_bytes;
    p->unowned = obs->unowned;
    p->ngroups = (uint32_t)ng;
    for (size_t i = 0; i < ng; i++) {
        obs_point_group_t *pg = &p->group[i];
        pg->gid = groups[i].gid;
        pg->up = groups[i].up;
        pg->delta = groups[i].delta;
        pg->mem_used = groups[i].mem_used;
        pg->mem_limit = groups[i].mem_limit;
        pg->nbackups = groups[i].nbackups;
        for (uint32_t k = 0; k < groups[i].nbackups; k++) {
            memcpy(pg->backup[k].node, groups[i].backup[k].node, BC_NODE_NAME_MAX);
            pg->backup[k].lag_ms = groups[i].backup[k].lag_ms;
        }
    }
    obs->ring_next = (obs->ring_next + 1) % obs->ring_cap;
    if (obs->ring_len < obs->ring_cap) obs->ring_len++;

    /* migration progress: anything moving resets the stuck clock */
    if (obs->progress_ms == 0 || obs->pending != obs->progress_key_pending ||
        obs->moving != obs->progress_key_moving || st.run_moved != obs->progress_key_moved) {
        obs->progress_ms = now;
        obs->progress_key_pending = obs->pending;
        obs->progress_key_moving = obs->moving;
        obs->progress_key_moved = st.run_moved;
    }

    /* warnings */
    obs->nwarnings = 0;
    if (!st.connected) obs_warn(obs, "zookeeper", "critical", 0, "this console has lost ZooKeeper");
    for (size_t i = 0; i < ng; i++) {
        const obs_group_t *g = &groups[i];
        if (!g->up) {
            obs_warn(obs, "group_down", "critical", g->gid, "group %u is down: no live node",
                     g->gid);
            continue;
        }
        if (g->primary[0] == '\0') {
            obs_warn(obs, "no_primary", "critical", g->gid, "group %u has no primary", g->gid);
        } else if (!g->primary_reachable) {
            obs_warn(obs, "primary_unreachable", "critical", g->gid,
                     "group %u: primary %s does not answer on its admin port", g->gid,
                     g->primary);
        }
        if (g->backups == 0) {
            obs_warn(obs, "no_backup", "warning", g->gid,
                     "group %u has no backup: losing its primary loses its data", g->gid);
        }
        for (uint32_t k = 0; k < g->nbackups; k++) {
            const obs_backup_t *bk = &g->backup[k];
            if (!bk->reachable) {
                obs_warn(obs, "backup_unreachable", "warning", g->gid,
                         "group %u: backup %s does not answer on its admin port", g->gid, bk->node);
            } else if (!bk->link_up || !bk->synced ||
                       bk->lag_ms > (int64_t)obs->cfg.backup_lag_warn_ms) {
                obs_warn(obs, "backup_lag", "warning", g->gid,
                         "group %u: backup %s is %s (%lld ms, %llu bytes behind)", g->gid,
                         bk->node, !bk->link_up ? "disconnected" : !bk->synced ? "resyncing"
                                                                              : "lagging",
                         (long long)bk->lag_ms, (unsigned long long)bk->lag_bytes);
            }
        }
    }
    if (obs->unowned > 0) {
        obs_warn(obs, "unowned_buckets", "critical", 0,
                 "%u buckets have no owner: their keys fail until a group takes them",
                 obs->unowned);
    }
    if (obs->pending + obs->moving > 0 && !obs->paused &&
        now - obs->progress_ms > (int64_t)obs->cfg.migration_stuck_ms) {
        obs_warn(obs, "migration_stuck", "warning", 0,
                 "migrations stuck: %u pending, %u moving, no progress for %lld s", obs->pending,
                 obs->moving, (long long)((now - obs->progress_ms) / 1000));
    } else if (obs->paused && obs->pending + obs->moving > 0) {
        obs_warn(obs, "migration_paused", "info", 0, "migrations paused with %u buckets pending",
                 obs->pending + obs->moving);
    }
    if (standbys < 2) {
        obs_warn(obs, "no_standby", "warning", 0,
                 "no standby console: if this one dies, backups still take over from a dead "
                 "primary, but nothing else reacts (groups down, rebalances, migrations)");
    }
    obs->last_ms = now;
    obs->samples++;
    pthread_mutex_unlock(&obs->lock);

    for (size_t i = 0; i < nreads; i++) obs_read_free(&reads[i]);
    free(reads);
    bc_view_free(&v);
}

static void *
obs_main(void *arg)
{
    bc_observe_t *obs = arg;
    pthread_mutex_lock(&obs->lock);
    while (!obs->stop) {
        pthread_mutex_unlock(&obs->lock);
        obs_sample(obs);
        pthread_mutex_lock(&obs->lock);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)obs->cfg.interval_ms * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        if (!obs->stop) pthread_cond_timedwait(&obs->wake, &obs->lock, &ts);
    }
    pthread_mutex_unlock(&obs->lock);
    return NULL;
}

bc_status_t
bc_observe_start(bc_console_t *console, const bc_observe_config_t *config, bc_observe_t **out)
{
    bc_observe_t *obs = calloc(1, sizeof(*obs));
    if (obs == NULL) return BC_ENOMEM;
    obs->console = console;
    obs->cfg = *config;
    if (obs->cfg.interval_ms == 0) obs->cfg.interval_ms = 2000;
    if (obs->cfg.history_s == 0) obs->cfg.history_s = 300;
    if (obs->cfg.backup_lag_warn_ms == 0) obs->cfg.backup_lag_warn_ms = 5000;
    if (obs->cfg.migration_stuck_ms == 0) obs->cfg.migration_stuck_ms = 120000;
    obs->nbuckets = bc_console_nbuckets(console);
    obs->ring_cap = obs->cfg.history_s * 1000 / obs->cfg.interval_ms;
    if (obs->ring_cap < 2) obs->ring_cap = 2;
    obs->buckets = calloc(obs->nbuckets ? obs->nbuckets : 1, sizeof(*obs->buckets));
    obs->ring = calloc(obs->ring_cap, sizeof(*obs->ring));
    if (obs->buckets == NULL || obs->ring == NULL) {
        free(obs->buckets);
        free(obs->ring);
        free(obs);
        return BC_ENOMEM;
    }
    pthread_mutex_init(&obs->lock, NULL);
    pthread_cond_init(&obs->wake, NULL);
    if (pthread_create(&obs->thread, NULL, obs_main, obs) != 0) {
        bc_observe_stop(obs);
        return BC_ENOMEM;
    }
    obs->started = true;
    *out = obs;
    return BC_OK;
}

void
bc_observe_stop(bc_observe_t *obs)
{
    if (obs == NULL) return;
    if (obs->started) {
        pthread_mutex_lock(&obs->lock);
        obs->stop = true;
        pthread_cond_signal(&obs->wake);
        pthread_mutex_unlock(&obs->lock);
        pthread_join(obs->thread, NULL);
    }
    pthread_mutex_destroy(&obs->lock);
    pthread_cond_destroy(&obs->wake);
    free(obs->groups);
    free(obs->buckets);
    free(obs->ring);
    free(obs);
}

/* ---- readers (obs->lock held by the callers below) ---- */

/* The last minute's sums for gid from the ring: deltas and seconds. */
static void
obs_minute(const bc_observe_t *obs, uint32_t gid, obs_counts_t *sum, double *secs)
{
    memset(sum, 0, sizeof(*sum));
    *secs = 0;
    if (obs->ring_len == 0) return;
    int64_t newest = obs->ring[(obs->ring_next + obs->ring_cap - 1) % obs->ring_cap].t_ms;
    for (uint32_t k = 0; k < obs->ring_len; k++) {
        const obs_point_t *p = &obs->ring[(obs->ring_next + obs->ring_cap - 1 - k) % obs->ring_cap];
        if (newest - p->t_ms >= OBS_MINUTE_MS || p->dt_s <= 0) break;
        for (uint32_t i = 0; i < p->ngroups; i++) {
            if (p->group[i].gid != gid) continue;
#define OBS_SUM(f) sum->f += p->group[i].delta.f;
            OBS_COUNTERS(OBS_SUM)
#undef OBS_SUM
        }
        *secs += p->dt_s;
    }
}

static void
obs_add_counts(cJSON *o, const obs_counts_t *c)
{
#define OBS_JSON(f) cJSON_AddNumberToObject(o, #f, (double)c->f);
    OBS_COUNTERS(OBS_JSON)
#undef OBS_JSON
    cJSON_AddNumberToObject(o, "misses", (double)(c->gets - (c->hits <= c->gets ? c->hits : c->gets)));
}

static cJSON *
obs_group_json_locked(const bc_observe_t *obs, const obs_group_t *g, bool detail)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) return NULL;
    cJSON_AddNumberToObject(o, "gid", g->gid);
    cJSON_AddBoolToObject(o, "up", g->up);
    cJSON_AddStringToObject(o, "primary", g->primary);
    cJSON_AddBoolToObject(o, "primary_reachable", g->primary_reachable);
    cJSON_AddNumberToObject(o, "live_nodes", g->nodes);
    cJSON_AddNumberToObject(o, "backups", g->backups);
    cJSON *bk = cJSON_AddObjectToObject(o, "buckets");
    cJSON_AddNumberToObject(bk, "c", g->buckets_c);
    cJSON_AddNumberToObject(bk, "m", g->buckets_m);
    cJSON_AddNumberToObject(bk, "d", g->buckets_d);
    cJSON *mem = cJSON_AddObjectToObject(o, "memory");
    cJSON_AddNumberToObject(mem, "used", (double)g->mem_used);
    cJSON_AddNumberToObject(mem, "limit", (double)g->mem_limit);
    cJSON_AddNumberToObject(o, "items", (double)g->items);
    obs_counts_t m;
    double secs;
    obs_minute(obs, g->gid, &m, &secs);
    cJSON *lm = cJSON_AddObjectToObject(o, "last_minute");
    cJSON_AddNumberToObject(lm, "seconds", secs);
    cJSON_AddNumberToObject(lm, "ops_per_s", secs > 0 ? (double)(m.gets + m.sets + m.deletes) / secs : 0);
    if (m.gets > 0) cJSON_AddNumberToObject(lm, "hit_ratio", (double)m.hits / (double)m.gets);
    else cJSON_AddNullToObject(lm, "hit_ratio");
    cJSON_AddNumberToObject(lm, "evictions_per_s", secs > 0 ? (double)m.evictions / secs : 0);
    if (detail) obs_add_counts(lm, &m);
    cJSON *bks = cJSON_AddArrayToObject(o, "replication");
    for (uint32_t k = 0; k < g->nbackups; k++) {
        const obs_backup_t *b = &g->backup[k];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "node", b->node);
        cJSON_AddBoolToObject(e, "reachable", b->reachable);
        cJSON_AddBoolToObject(e, "link_up", b->link_up);
        cJSON_AddBoolToObject(e, "synced", b->synced);
        cJSON_AddNumberToObject(e, "lag_ms", (double)b->lag_ms);
        cJSON_AddNumberToObject(e, "lag_bytes", (double)b->lag_bytes);
        cJSON_AddItemToArray(bks, e);
    }
    if (detail) {
        cJSON *tot = cJSON_AddObjectToObject(o, "counters");
        obs_add_counts(tot, &g->total);
    }
    return o;
}

cJSON *
bc_observe_group_json(bc_observe_t *obs, uint32_t gid, bool *found)
{
    pthread_mutex_lock(&obs->lock);
    const obs_group_t *g = obs_find_group(obs->groups, obs->ngroups, gid);
    *found = g != NULL;
    cJSON *o = g != NULL ? obs_group_json_locked(obs, g, true) : NULL;
    if (o != NULL) cJSON_AddNumberToObject(o, "sampled_ms", (double)obs->last_ms);
    pthread_mutex_unlock(&obs->lock);
    return o;
}

cJSON *
bc_observe_groups_json(bc_observe_t *obs)
{
    cJSON *doc = cJSON_CreateObject();
    if (doc == NULL) return NULL;
    pthread_mutex_lock(&obs->lock);
    cJSON_AddNumberToObject(doc, "sampled_ms", (double)obs->last_ms);
    cJSON_AddNumberToObject(doc, "interval_ms", obs->cfg.interval_ms);
    cJSON *arr = cJSON_AddArrayToObject(doc, "groups");
    for (uint32_t i = 0; i < obs->ngroups; i++) {
        cJSON_AddItemToArray(arr, obs_group_json_locked(obs, &obs->groups[i], false));
    }
    pthread_mutex_unlock(&obs->lock);
    return doc;
}

typedef struct obs_rank { uint32_t bucket; double key; } obs_rank_t;

static int
obs_rank_cmp(const void *a, const void *b)
{
    const obs_rank_t *x = a, *y = b;
    if (x->key != y->key) return x->key > y->key ? -1 : 1;
    return x->bucket < y->bucket ? -1 : x->bucket > y->bucket;
}

static void
obs_bucket_fields(cJSON *e, const obs_bucket_t *ob)
{
    cJSON_AddNumberToObject(e, "owner", ob->owner);
    cJSON_AddNumberToObject(e, "ops_per_s", ob->ops_rate);
    cJSON_AddNumberToObject(e, "misses_per_s", ob->miss_rate);
    cJSON_AddNumberToObject(e, "items", (double)ob->items);
    cJSON_AddNumberToObject(e, "bytes", (double)ob->bytes);
}

cJSON *
bc_observe_top_json(bc_observe_t *obs, const char *by, uint32_t n)
{
    obs_rank_t *r = malloc((obs->nbuckets ? obs->nbuckets : 1) * sizeof(*r));
    cJSON *doc = cJSON_CreateObject();
    if (r == NULL || doc == NULL) {
        free(r);
        cJSON_Delete(doc);
        return NULL;
    }
    pthread_mutex_lock(&obs->lock);
    for (uint32_t b = 0; b < obs->nbuckets; b++) {
        const obs_bucket_t *ob = &obs->buckets[b];
        r[b].bucket = b;
        r[b].key = strcmp(by, "bytes") == 0 ? (double)ob->bytes
                 : strcmp(by, "misses") == 0 ? ob->miss_rate : ob->ops_rate;
    }
    qsort(r, obs->nbuckets, sizeof(*r), obs_rank_cmp);
    cJSON_AddStringToObject(doc, "by", by);
    cJSON_AddNumberToObject(doc, "sampled_ms", (double)obs->last_ms);
    cJSON *arr = cJSON_AddArrayToObject(doc, "buckets");
    for (uint32_t k = 0; k < n && k < obs->nbuckets; k++) {
        const obs_bucket_t *ob = &obs->buckets[r[k].bucket];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "bucket", r[k].bucket);
        obs_bucket_fields(e, ob);
        cJSON_AddItemToArray(arr, e);
    }
    pthread_mutex_unlock(&obs->lock);
    free(r);
    return doc;
}

cJSON *
bc_observe_bucket_json(bc_observe_t *obs, uint32_t bucket)
{
    if (bucket >= obs->nbuckets) return NULL;
    cJSON *e = cJSON_CreateObject();
    if (e == NULL) return NULL;
    pthread_mutex_lock(&obs->lock);
    const obs_bucket_t *ob = &obs->buckets[bucket];
    cJSON_AddNumberToObject(e, "bucket", bucket);
    obs_bucket_fields(e, ob);
    cJSON *c = cJSON_AddObjectToObject(e, "counters");
    obs_add_counts(c, &ob->cur);
    cJSON_AddNumberToObject(e, "read_ms", (double)ob->read_ms);
    pthread_mutex_unlock(&obs->lock);
    return e;
}

cJSON *
bc_observe_hotkeys_json(bc_observe_t *obs, uint32_t gid, uint32_t n)
{
    cJSON *doc = cJSON_CreateObject();
    if (doc == NULL) return NULL;
    pthread_mutex_lock(&obs->lock);
    cJSON_AddNumberToObject(doc, "sampled_ms", (double)obs->last_ms);
    cJSON *arr = cJSON_AddArrayToObject(doc, "groups");
    for (uint32_t i = 0; i < obs->ngroups; i++) {
        const obs_group_t *g = &obs->groups[i];
        if (gid != 0 && g->gid != gid) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "gid", g->gid);
        cJSON *keys = cJSON_AddArrayToObject(o, "keys");
        for (uint32_t k = 0; k < g->nhot && k < n; k++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, g->hot[k].base64 ? "key_base64" : "key", g->hot[k].key);
            cJSON_AddNumberToObject(e, "bucket", g->hot[k].bucket);
            cJSON_AddNumberToObject(e, "rate_per_s", g->hot[k].rate);
            cJSON_AddItemToArray(keys, e);
        }
        cJSON_AddItemToArray(arr, o);
    }
    pthread_mutex_unlock(&obs->lock);
    return doc;
}

cJSON *
bc_observe_history_json(bc_observe_t *obs)
{
    cJSON *doc = cJSON_CreateObject();
    if (doc == NULL) return NULL;
    pthread_mutex_lock(&obs->lock);
    cJSON_AddNumberToObject(doc, "interval_ms", obs->cfg.interval_ms);
    cJSON *pts = cJSON_AddArrayToObject(doc, "points");
    for (uint32_t k = 0; k < obs->ring_len; k++) {
        const obs_point_t *p =
            &obs->ring[(obs->ring_next + obs->ring_cap - obs->ring_len + k) % obs->ring_cap];
        if (p->dt_s <= 0) continue;   /* the first sample only sets baselines */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "t_ms", (double)p->t_ms);
        cJSON *mig = cJSON_AddObjectToObject(o, "migrations");
        cJSON_AddNumberToObject(mig, "pending", p->pending);
        cJSON_AddNumberToObject(mig, "moving", p->moving);
        cJSON_AddBoolToObject(mig, "paused", p->paused);
        cJSON_AddNumberToObject(mig, "bytes_per_s", (double)p->moved_bytes / p->dt_s);
        cJSON_AddNumberToObject(o, "unowned", p->unowned);
        cJSON *gs = cJSON_AddArrayToObject(o, "groups");
        for (uint32_t i = 0; i < p->ngroups; i++) {
            const obs_point_group_t *pg = &p->group[i];
            cJSON *g = cJSON_CreateObject();
            cJSON_AddNumberToObject(g, "gid", pg->gid);
            cJSON_AddBoolToObject(g, "up", pg->up);
            cJSON_AddNumberToObject(g, "ops_per_s",
                                    (double)(pg->delta.gets + pg->delta.sets + pg->delta.deletes) / p->dt_s);
            if (pg->delta.gets > 0) {
                cJSON_AddNumberToObject(g, "hit_ratio", (double)pg->delta.hits / (double)pg->delta.gets);
            } else {
                cJSON_AddNullToObject(g, "hit_ratio");
            }
            cJSON_AddNumberToObject(g, "evictions_per_s", (double)pg->delta.evictions / p->dt_s);
            cJSON_AddNumberToObject(g, "mem_used", (double)pg->mem_used);
            cJSON_AddNumberToObject(g, "mem_limit", (double)pg->mem_limit);
            cJSON *lag = cJSON_AddObjectToObject(g, "lag_ms");
            for (uint32_t b = 0; b < pg->nbackups; b++) {
                cJSON_AddNumberToObject(lag, pg->backup[b].node, (double)pg->backup[b].lag_ms);
            }
            cJSON_AddItemToArray(gs, g);
        }
        cJSON_AddItemToArray(pts, o);
    }
    pthread_mutex_unlock(&obs->lock);
    return doc;
}

cJSON *
bc_observe_warnings_json(bc_observe_t *obs)
{
    cJSON *doc = cJSON_CreateObject();
    if (doc == NULL) return NULL;
    pthread_mutex_lock(&obs->lock);
    cJSON_AddNumberToObject(doc, "sampled_ms", (double)obs->last_ms);
    cJSON_AddNumberToObject(doc, "standby_consoles", obs->standbys);
    cJSON *arr = cJSON_AddArrayToObject(doc, "warnings");
    for (uint32_t i = 0; i < obs->nwarnings; i++) {
        const obs_warning_t *w = &obs->warnings[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "kind", w->kind);
        cJSON_AddStringToObject(e, "severity", w->severity);
        if (w->gid != 0) cJSON_AddNumberToObject(e, "group", w->gid);
        cJSON_AddStringToObject(e, "message", w->message);
        cJSON_AddItemToArray(arr, e);
    }
    pthread_mutex_unlock(&obs->lock);
    return doc;
}

void
bc_observe_metrics(bc_observe_t *obs, bc_textbuf_t *tb)
{
    char l[160], gid[16];
    pthread_mutex_lock(&obs->lock);
    bool sampled = obs->samples > 0;
    if (sampled) {
        bc_metric(tb, "unowned_buckets", "gauge", "Buckets no group owns (c table entry 0).",
                  obs->unowned);
        bc_metric_lu(tb, "migrations", "gauge", "Bucket moves by state.",
                     bc_metric_labels(l, sizeof(l), 1, "state", "pending"), obs->pending);
        bc_metric_lu(tb, "migrations", "gauge", "Bucket moves by state.",
                     bc_metric_labels(l, sizeof(l), 1, "state", "moving"), obs->moving);
        bc_metric(tb, "console_standbys", "gauge", "Standby consoles ready to take over.",
                  obs->standbys);
        bc_metric(tb, "warnings", "gauge", "Warnings the dashboard shows now.", obs->nwarnings);
    }
    for (uint32_t i = 0; i < obs->ngroups; i++) {
        const obs_group_t *g = &obs->groups[i];
        snprintf(gid, sizeof(gid), "%u", g->gid);
        bc_metric_labels(l, sizeof(l), 1, "group", gid);
        bc_metric_lu(tb, "group_up", "gauge", "1 while the group has a live node.", l, g->up);
        bc_metric_lu(tb, "group_buckets_owned", "gauge", "Buckets the c table gives the group.", l,
                     g->buckets_c);
        bc_metric_lu(tb, "group_backups_missing", "gauge",
                     "1 when a live group has no live backup.", l, g->up && g->backups == 0);
        bc_metric_lu(tb, "group_memory_used_bytes", "gauge", "The primary's engine memory in use.",
                     l, g->mem_used);
        bc_metric_lu(tb, "group_memory_limit_bytes", "gauge", "The primary's engine memory limit.",
                     l, g->mem_limit);
        bc_metric_lu(tb, "group_items", "gauge", "Items the primary holds.", l, g->items);
        bc_metric_lu(tb, "group_evictions_total", "counter",
                     "Evictions in the group's buckets, as this console sampled them.", l,
                     g->total.evictions);
        bc_metric_lu(tb, "group_expirations_total", "counter",
                     "Expired items removed from the group's buckets, as sampled.", l,
                     g->total.expirations);
        bc_metric_lu(tb, "group_read_bytes_total", "counter",
                     "Key and value bytes stored in the group's buckets, as sampled.", l,
                     g->total.bytes_read);
        bc_metric_lu(tb, "group_written_bytes_total", "counter",
                     "Value bytes returned from the group's buckets, as sampled.", l,
                     g->total.bytes_written);
        obs_counts_t m;
        double secs;
        obs_minute(obs, g->gid, &m, &secs);
        if (m.gets > 0) {
            bc_metric_l(tb, "group_hit_ratio", "gauge", "Hits per get over the last minute.", l,
                        (double)m.hits / (double)m.gets);
        }
        static const char *const roles[] = {"primary", "backup"};
        for (int r = 0; r < 2; r++) {
            uint32_t n = r == 0 ? (g->primary[0] != '\0' && g->up) : g->backups;
            bc_metric_lu(tb, "group_nodes", "gauge", "Live nodes per group and role.",
                         bc_metric_labels(l, sizeof(l), 2, "group", gid, "role", roles[r]), n);
        }
        static const struct { const char *cmd, *status; } cmds[] = {
            {"get", "hit"}, {"get", "miss"}, {"set", "hit"}, {"delete", "hit"},
        };
        for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++) {
            uint64_t v = c == 0 ? g->total.hits
                       : c == 1 ? g->total.gets - (g->total.hits <= g->total.gets ? g->total.hits : g->total.gets)
                       : c == 2 ? g->total.sets : g->total.deletes;
            bc_metric_lu(tb, "group_commands_total", "counter",
                         "Requests served by the group's buckets, as this console sampled them.",
                         bc_metric_labels(l, sizeof(l), 3, "group", gid, "command", cmds[c].cmd,
                                          "status", cmds[c].status), v);
        }
        for (uint32_t k = 0; k < g->nbackups; k++) {
            bc_metric_labels(l, sizeof(l), 2, "group", gid, "node", g->backup[k].node);
            bc_metric_l(tb, "group_backup_lag_seconds", "gauge",
                        "How far each backup is behind its primary, in time.", l,
                        (double)(g->backup[k].lag_ms > 0 ? g->backup[k].lag_ms : 0) / 1000.0);
            bc_metric_lu(tb, "group_backup_lag_bytes", "gauge",
                         "How far each backup is behind its primary, in stream bytes.", l,
                         g->backup[k].lag_bytes);
            bc_metric_lu(tb, "group_backup_up", "gauge",
                         "1 while each backup answers and its link to the primary is up.", l,
                         g->backup[k].reachable && g->backup[k].link_up);
        }
    }
    pthread_mutex_unlock(&obs->lock);
}
