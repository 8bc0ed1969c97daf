/*
 * cluster.c -- a node's membership (cluster.h): the ZooKeeper agent that
 * registers the node, follows the tables and the primary records, and
 * renews the write lease; and the cluster object's lifecycle.
 *
 * THE AGENT
 *
 *     ZK completion thread          agent thread (all ZooKeeper I/O)
 *     --------------------          --------------------------------
 *     watch fired ----------------> wake: dirty = true
 *     session NEW (supervisor) ---> wake: reregister = true
 *     groups watch fired ---------> wake: dirty = prim_dirty = true
 *     bc_node_cluster_refresh_now -> wake: dirty = true
 *                                   loop:
 *                                     if reregister: register()
 *                                     refresh(): read c (watched, one
 *                                       round trip), publish the routing
 *                                       atomics and the epoch at once;
 *                                       read m (watched); drop buckets
 *                                       that left
 *                                     primaries(), only after a groups
 *                                       watch, a new session or 3 s:
 *                                       groups/ (watched) and each
 *                                       groups/<gid>/primary (watched);
 *                                       resolve new addresses; publish
 *                                       the table, gen++
 *                                     wait for a wake or 3 s
 *
 *   A table change (every migration step is one) thus costs the agent two
 *   ZooKeeper round trips, and the new routes are in force after the
 *   first: a source learns a bucket is read-only a round trip after the
 *   console's commit.
 *
 *   What the agent publishes lives apart: the routing state workers read
 *   per request in route.c, every group's primary in primaries.c
 *   (cluster_int.h lists the split).
 */
#include "cluster/cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "bc_cluster.h"
#include "bc_config.h"
#include "bc_log.h"
#include "bc_table.h"
#include "bc_zk.h"
#include "bc_time.h"
#include "cluster/cluster_int.h"

#define CLUSTER_REFRESH_MS  3000

static void
cluster_wake(bc_node_cluster_t *cl, bool reregister, bool primaries)
{
    pthread_mutex_lock(&cl->mu);
    cl->dirty = true;
    if (reregister) cl->reregister = true;
    if (primaries || reregister) cl->prim_dirty = true;
    pthread_cond_signal(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
}

void
bc__node_cluster_wake(bc_node_cluster_t *cl, bool primaries)
{
    cluster_wake(cl, false, primaries);
}

bc_status_t
bc__node_cluster_group_path(const bc_node_cluster_t *cl, const char *suffix, char *buf, size_t len)
{
    char sfx[BC_CLUSTER_PATH_MAX];
    int n = snprintf(sfx, sizeof(sfx), "/groups/%u%s", cl->gid, suffix);
    if (n < 0 || (size_t)n >= sizeof(sfx)) return BC_ETOOLARGE;
    return bc_cluster_path(buf, len, cl->cluster, sfx);
}

/* A table (c or m) changed. */
static void
cluster_on_watch(bc_zk_t *zk, const char *path, void *ctx)
{
    (void)zk;
    (void)path;
    cluster_wake(ctx, false, false);
}

/* groups/ or a primary record changed. */
static void
cluster_on_group_watch(bc_zk_t *zk, const char *path, void *ctx)
{
    (void)zk;
    (void)path;
    cluster_wake(ctx, false, true);
}

static void
cluster_on_session(bc_zk_t *zk, bc_zk_event_t ev, void *ctx)
{
    bc_node_cluster_t *cl = ctx;
    (void)zk;
    if (ev == BC_ZK_EXPIRED) {
        /* Runs before the new session exists (bc_zk.h): nothing renews the
         * lease under the old registration after this. */
        atomic_fetch_add(&cl->session_gen, 1);
        atomic_store(&cl->lease_until, 0);
        bc__node_cluster_set_role(cl, false, "ZooKeeper session lost");
    }
    if (ev == BC_ZK_NEW_SESSION) cluster_wake(cl, true, true);
    else if (ev == BC_ZK_CONNECTED) cluster_wake(cl, false, true);
}

void
bc_node_cluster_refresh_now(bc_node_cluster_t *cl)
{
    if (cl != NULL) cluster_wake(cl, false, false);
}

static bc_status_t
cluster_read_nbuckets(bc_zk_t *zk, const char *zk_hosts, const char *cluster, uint32_t *nbuckets)
{
    char err[256] = "";
    bc_cluster_config_t ccfg;
    bc_status_t st = bc_cluster_read_config(zk, cluster, &ccfg, err, sizeof(err));
    if (st == BC_ENOTFOUND) {
        log_error("cluster: cluster \"%s\" does not exist in ZooKeeper %s; create it with "
                  "`bucketcache cluster create`", cluster, zk_hosts);
    } else if (st != BC_OK) {
        log_error("cluster: cannot read the config of \"%s\": %s %s", cluster, bc_status_str(st),
                  err);
    } else {
        *nbuckets = ccfg.nbuckets;
    }
    return st;
}

bc_status_t
bc_node_cluster_probe(const char *zk_hosts, const char *cluster, int timeout_ms, uint32_t *nbuckets)
{
    bc_zk_t *zk;
    if (zk_hosts == NULL || !bc_cluster_name_valid(cluster)) return BC_EINVAL;
    bc_status_t st = bc_zk_open(zk_hosts, timeout_ms, timeout_ms, NULL, NULL, &zk);
    if (st != BC_OK) {
        log_error("cluster: cannot reach ZooKeeper at %s: %s", zk_hosts, bc_status_str(st));
        return st;
    }
    st = cluster_read_nbuckets(zk, zk_hosts, cluster, nbuckets);
    bc_zk_close(zk);
    return st;
}

/* This process's incarnation: 64 random bits, hex (cluster.h). */
static void
cluster_new_incarnation(char *out, size_t len)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
        v = (uint64_t)bc_time_real_ms() ^ ((uint64_t)getpid() << 40) ^ (uint64_t)bc_time_mono_us();
    }
    snprintf(out, len, "%016" PRIx64, v);
}

bc_status_t
bc_node_cluster_join(const bc_node_cluster_config_t *config, uint32_t *nbuckets,
                     bc_node_cluster_t **out)
{
    if (config->zk_hosts == NULL || !bc_cluster_name_valid(config->cluster) || config->gid == 0 ||
        config->gid > BC_GROUP_MAX_GID) {
        return BC_EINVAL;
    }
    bc_node_cluster_t *cl = calloc(1, sizeof(*cl));
    if (cl == NULL) return BC_ENOMEM;
    cl->cluster = strdup(config->cluster);
    cl->gid = config->gid;
    cl->session_timeout_ms = config->session_timeout_ms;
    cl->no_write_fencing = config->no_write_fencing;
    cl->self.memory = config->memory;
    cl->self.pid = (int64_t)getpid();
    cluster_new_incarnation(cl->self.incarnation, sizeof(cl->self.incarnation));
    pthread_mutex_init(&cl->mu, NULL);
    pthread_rwlock_init(&cl->zk_lock, NULL);
    bc_time_cond_init(&cl->cv);
    bc_time_cond_init(&cl->lease_cv);
    pthread_mutex_init(&cl->prim_mu, NULL);
    pthread_mutex_init(&cl->fence_mu, NULL);
    bc_node_primaries_init(&cl->prim);
    atomic_init(&cl->prim_gen, 1);
    atomic_init(&cl->group_repl_mode, -1);
    atomic_init(&cl->group_sync_timeout_ms, -1);
    atomic_init(&cl->group_max_lag_mb, -1);
    atomic_init(&cl->group_min_in_sync, -1);
    cl->own_prim_version = -1;
    if (cl->cluster == NULL) {
        bc_node_cluster_free(cl);
        return BC_ENOMEM;
    }

    bc_status_t st = bc_zk_open(config->zk_hosts, config->session_timeout_ms, 10000,
                                cluster_on_session, cl, &cl->zk);
    if (st != BC_OK) {
        log_error("cluster: cannot reach ZooKeeper at %s: %s", config->zk_hosts, bc_status_str(st));
        bc_node_cluster_free(cl);
        return st;
    }
    st = cluster_read_nbuckets(cl->zk, config->zk_hosts, cl->cluster, &cl->nbuckets);
    if (st != BC_OK) {
        bc_node_cluster_free(cl);
        return st;
    }
    st = bc__node_cluster_alloc_routes(cl);
    if (st != BC_OK) {
        bc_node_cluster_free(cl);
        return st;
    }
    *nbuckets = cl->nbuckets;
    *out = cl;
    return BC_OK;
}

/*
 * BEHAVIOR: a node process that crashed and was restarted at once finds
 * its previous registration still there (an ephemeral node outlives its
 * session by up to the session timeout).  That registration advertises our
 * own data address, which we now hold, so it cannot be a live peer: delete
 * it rather than let the console count a dead node for up to a timeout.
 */
static void
cluster_remove_stale_self(bc_node_cluster_t *cl, const char *nodes_path)
{
    bc_zk_strings_t names;
    if (bc_zk_children(cl->zk, nodes_path, NULL, NULL, &names) != BC_OK) return;
    for (int i = 0; i < names.count; i++) {
        char path[BC_CLUSTER_PATH_MAX + BC_NODE_NAME_MAX];
        char *data = NULL;
        size_t len = 0;
        if (strcmp(names.names[i], cl->node_name) == 0) continue;
        snprintf(path, sizeof(path), "%s/%s", nodes_path, names.names[i]);
        if (bc_zk_get(cl->zk, path, NULL, NULL, &data, &len, NULL) != BC_OK) continue;
        bc_cluster_node_info_t other;
        memset(&other, 0, sizeof(other));
        if (bc_cluster_node_info_decode(data ? data : "", len, &other, NULL, 0) == BC_OK &&
            strcmp(other.data_addr, cl->self.data_addr) == 0) {
            log_warn("cluster: removing stale registration %s of an earlier process at %s",
                     names.names[i], other.data_addr);
            bc_zk_delete(cl->zk, path, -1);
        }
        free(data);
    }
    bc_zk_strings_free(&names);
}

static bc_status_t
cluster_register(bc_node_cluster_t *cl)
{
    char nodes_path[BC_CLUSTER_PATH_MAX], suffix[64], created[BC_CLUSTER_PATH_MAX + 32];
    snprintf(suffix, sizeof(suffix), "/groups/%u/nodes", cl->gid);
    bc_status_t st = bc_cluster_path(nodes_path, sizeof(nodes_path), cl->cluster, suffix);
    if (st == BC_OK) st = bc_zk_create_all(cl->zk, nodes_path);
    if (st != BC_OK) return st;

    char *json = bc_cluster_node_info_encode(&cl->self);
    if (json == NULL) return BC_ENOMEM;
    char prefix[BC_CLUSTER_PATH_MAX + 4];
    snprintf(prefix, sizeof(prefix), "%s/n-", nodes_path);
    st = bc_zk_create(cl->zk, prefix, json, strlen(json), BC_ZK_EPHEMERAL | BC_ZK_SEQUENTIAL,
                      created, sizeof(created));
    free(json);
    if (st != BC_OK) return st;

    const char *name = strrchr(created, '/');
    pthread_mutex_lock(&cl->mu);
    snprintf(cl->node_name, sizeof(cl->node_name), "%.31s", name ? name + 1 : created);
    pthread_mutex_unlock(&cl->mu);
    atomic_fetch_add(&cl->registrations, 1);
    log_info("cluster: registered as %s in group %u of \"%s\" (data %s, admin %s, memory %llu)",
             cl->node_name, cl->gid, cl->cluster, cl->self.data_addr,
             cl->self.admin_addr[0] ? cl->self.admin_addr : "-",
             (unsigned long long)cl->self.memory);
    cluster_remove_stale_self(cl, nodes_path);
    return BC_OK;
}

/*
 * Whether this node drops buckets that left its group itself.
 *
 * BEHAVIOR: with replication a backup drops nothing on its own: its
 * primary's DROP records do it, in stream order.  Dropping here could
 * throw away a bucket the primary is importing (it belongs to neither c
 * nor m of this group until the cutover) while the stream fills it.
 */
static bool
cluster_drops_itself(const bc_node_cluster_t *cl)
{
    return cl->cache != NULL && !(atomic_load(&cl->gated) && !atomic_load(&cl->primary));
}

/* Drops what this node holds of buckets neither c nor m gives its group. */
static void
cluster_drop_left(bc_node_cluster_t *cl, const bc_table_t *c, const bc_table_t *m)
{
    for (uint32_t b = 0; b < cl->nbuckets; b++) {
        if (c->owner[b] == cl->gid || m->owner[b] == cl->gid) continue;
        bc_bucket_stats_t bs;
        if (bc_cache_bucket_stats(cl->cache, b, &bs) == BC_OK && bs.items > 0) {
            int64_t n = cl->drop_fn != NULL ? cl->drop_fn(cl->drop_ctx, b)
                                            : (int64_t)bc_cache_bucket_drop(cl->cache, b);
            if (n < 0) continue;   /* kept: an import is filling it */
            atomic_fetch_add(&cl->buckets_dropped, 1);
            log_info("cluster: bucket %u left group %u; dropped %llu items", b, cl->gid,
                     (unsigned long long)n);
        }
    }
}

/*
 * Reads this group's settings (watched like the primary records: a change
 * applies at once).  A missing or malformed record leaves every setting
 * unset, so the node's own flags apply; a malformed one is logged.
 */
static void
cluster_read_group_config(bc_node_cluster_t *cl, const char *groups_path)
{
    char path[BC_CLUSTER_PATH_MAX + 32], err[256] = "";
    char *data = NULL;
    size_t len = 0;
    bc_cluster_group_config_t gc;
    bc_cluster_group_config_init(&gc);
    snprintf(path, sizeof(path), "%s/%u/config", groups_path, cl->gid);
    bc_status_t st = bc_zk_get(cl->zk, path, cluster_on_group_watch, cl, &data, &len, NULL);
    if (st == BC_ENOTFOUND) {
        st = bc_zk_exists(cl->zk, path, cluster_on_group_watch, cl, NULL);
        if (st == BC_OK) {
            st = bc_zk_get(cl->zk, path, cluster_on_group_watch, cl, &data, &len, NULL);
        }
    }
    if (st == BC_OK &&
        bc_cluster_group_config_decode(data ? data : "", len, &gc, err, sizeof(err)) != BC_OK) {
        log_warn("cluster: ignoring the malformed config of group %u: %s", cl->gid, err);
        bc_cluster_group_config_init(&gc);
    }
    free(data);
    if (st != BC_OK && st != BC_ENOTFOUND) return;    /* keep what we had */
    int old = atomic_exchange(&cl->group_repl_mode, gc.replication);
    int64_t old_t = atomic_exchange(&cl->group_sync_timeout_ms, gc.sync_timeout_ms);
    int64_t old_l = atomic_exchange(&cl->group_max_lag_mb, gc.max_lag_mb);
    int64_t old_m = atomic_exchange(&cl->group_min_in_sync, gc.min_in_sync);
    if (old != gc.replication || old_t != gc.sync_timeout_ms || old_l != gc.max_lag_mb ||
        old_m != gc.min_in_sync) {
        /* -1: unset in the group's record -- the node's flag for the
         * first three, the mode's default (1 in sync, 0 in async) for
         * min_in_sync, which has no node flag */
        char min_text[32];
        if (gc.min_in_sync < 0) snprintf(min_text, sizeof(min_text), "the mode's default");
        else snprintf(min_text, sizeof(min_text), "%lld", (long long)gc.min_in_sync);
        log_info("cluster: group %u settings: replication %s, sync timeout %lld ms, max lag "
                 "%lld MiB (-1: this node's flag), min in sync %s",
                 cl->gid,
                 gc.replication < 0 ? "(this node's flag)" : gc.replication ? "sync" : "async",
                 (long long)gc.sync_timeout_ms, (long long)gc.max_lag_mb, min_text);
    }
}

/*
 * Reads every group's primary record (watched, with the groups/ list) and
 * publishes the table; also decides this node's role from its own group's
 * record.  A group without a record (no primary chosen yet, or its last
 * node gone) is left out.  Errors: ZooKeeper errors (the previous table and
 * role stay).
 */
static bc_status_t
cluster_read_primaries(bc_node_cluster_t *cl)
{
    char groups_path[BC_CLUSTER_PATH_MAX], err[256] = "";
    bc_zk_strings_t names;
    bc_node_primaries_t next;
    bool primary = false;

    bc_status_t st = bc_cluster_path(groups_path, sizeof(groups_path), cl->cluster, "/groups");
    if (st != BC_OK) return st;
    st = bc_zk_children(cl->zk, groups_path, cluster_on_group_watch, cl, &names);
    if (st == BC_ENOTFOUND) {
        names.count = 0;
        names.names = NULL;
    } else if (st != BC_OK) {
        return st;
    }
    bc_node_primaries_init(&next);
    if (names.count > 0) {
        next.v = calloc((size_t)names.count, sizeof(*next.v));
        if (next.v == NULL) {
            bc_zk_strings_free(&names);
            return BC_ENOMEM;
        }
        next.cap = (uint32_t)names.count;
    }
    st = BC_OK;
    for (int i = 0; i < names.count && st == BC_OK; i++) {
        uint32_t gid = bc_cluster_parse_gid(names.names[i]);
        char path[BC_CLUSTER_PATH_MAX + 32];
        char *data = NULL;
        size_t len = 0;
        int32_t version = -1;
        if (gid == 0) continue;
        snprintf(path, sizeof(path), "%s/%s/primary", groups_path, names.names[i]);
        /* One round trip when the record exists (the get's watch covers
         * its change and deletion); when not, watch for its creation. */
        st = bc_zk_get(cl->zk, path, cluster_on_group_watch, cl, &data, &len, &version);
        if (st == BC_ENOTFOUND) {
            st = bc_zk_exists(cl->zk, path, cluster_on_group_watch, cl, NULL);
            if (st == BC_OK) st = bc_zk_get(cl->zk, path, cluster_on_group_watch, cl, &data,
                                            &len, &version);
        }
        if (st == BC_ENOTFOUND) {
            st = BC_OK;
            continue;
        }
        if (st != BC_OK) break;
        bc_cluster_primary_info_t p;
        if (bc_cluster_primary_info_decode(data ? data : "", len, &p, err, sizeof(err)) != BC_OK) {
            log_warn("cluster: ignoring malformed primary record of group %u: %s", gid, err);
            free(data);
            continue;
        }
        free(data);
        bc_node_primary_t *e = &next.v[next.count++];
        e->gid = gid;
        snprintf(e->addr, sizeof(e->addr), "%s", p.data_addr);
        /* Node names are sequence numbers per group: only our own
         * group's record can name us. */
        bool me = false;
        if (gid == cl->gid) {
            pthread_mutex_lock(&cl->mu);
            me = strcmp(p.node, cl->node_name) == 0;
            cl->own_prim_present = true;
            cl->own_prim = p;
            cl->own_prim_version = version;
            pthread_mutex_unlock(&cl->mu);
            primary = me;
        }
        e->self = me || strcmp(p.data_addr, cl->self.data_addr) == 0;
        /* Resolve only what is new: DNS is not asked every 3 s. */
        const bc_node_primary_t *old = bc_node_primaries_find(&cl->prim, gid);
        if (old != NULL && old->salen > 0 && strcmp(old->addr, e->addr) == 0) {
            e->sa = old->sa;
            e->salen = old->salen;
        } else {
            bc__node_primaries_resolve(e, old == NULL || strcmp(old->addr, e->addr) != 0);
        }
    }
    bc_zk_strings_free(&names);
    if (st != BC_OK) {
        bc_node_primaries_free(&next);
        return st;
    }
    bool own_record = false;
    for (uint32_t i = 0; i < next.count; i++) own_record = own_record || next.v[i].gid == cl->gid;
    if (!own_record) {
        /* No record for our group (none chosen yet, or a malformed one). */
        pthread_mutex_lock(&cl->mu);
        cl->own_prim_present = false;
        cl->own_prim_version = -1;
        pthread_mutex_unlock(&cl->mu);
    }
    /* Group names come sorted as strings ("10" < "9"): sort by number. */
    for (uint32_t i = 1; i < next.count; i++) {
        bc_node_primary_t tmp = next.v[i];
        uint32_t j = i;
        while (j > 0 && next.v[j - 1].gid > tmp.gid) {
            next.v[j] = next.v[j - 1];
            j--;
        }
        next.v[j] = tmp;
    }
    bc__node_primaries_publish(cl, &next);
    bc_node_primaries_free(&next);
    cluster_read_group_config(cl, groups_path);

    bc__node_cluster_set_role(cl, primary, NULL);
    return BC_OK;
}

/* Reads c (and publishes it at once), then m (and drops what left), then
 * the primaries when asked. */
static bc_status_t
cluster_refresh(bc_node_cluster_t *cl, bool primaries)
{
    char err[256] = "";
    bc_table_t c, m;
    bc_status_t st = bc_cluster_read_table(cl->zk, cl->cluster, 'c', cl->nbuckets, &c, NULL,
                                           cluster_on_watch, cl, err, sizeof(err));
    if (st != BC_OK) {
        log_warn("cluster: cannot read table c: %s %s", bc_status_str(st), err);
        return st;
    }
    /* BEHAVIOR: the routes need c alone; publishing them before m is read
     * puts a read-only flag (a migration's fence) in force a round trip
     * sooner.  Drops need both and wait for m. */
    bc__node_cluster_publish(cl, &c);
    if (!cluster_drops_itself(cl)) {
        /* m serves only the drops (a replicating backup's come from its
         * primary's stream): no read.  After a promotion the next refresh
         * (a table change, or CLUSTER_REFRESH_MS) reads it again. */
        bc_table_free(&c);
        return primaries ? cluster_read_primaries(cl) : BC_OK;
    }
    st = bc_cluster_read_table(cl->zk, cl->cluster, 'm', cl->nbuckets, &m, NULL, cluster_on_watch,
                               cl, err, sizeof(err));
    if (st != BC_OK) {
        log_warn("cluster: cannot read table m: %s %s", bc_status_str(st), err);
        bc_table_free(&c);
        return st;
    }
    cluster_drop_left(cl, &c, &m);
    bc_table_free(&c);
    bc_table_free(&m);

    return primaries ? cluster_read_primaries(cl) : BC_OK;
}

static void *
cluster_agent(void *arg)
{
    bc_node_cluster_t *cl = arg;
    int64_t prim_read_ms = bc_time_mono_ms();
    pthread_mutex_lock(&cl->mu);
    while (!cl->stopping) {
        bool rereg = cl->reregister;
        /* The safety-net refresh (every few seconds) reads everything. */
        bool prim = cl->prim_dirty || rereg ||
                    bc_time_mono_ms() - prim_read_ms >= CLUSTER_REFRESH_MS;
        cl->dirty = false;
        cl->prim_dirty = false;
        cl->reregister = false;
        pthread_mutex_unlock(&cl->mu);

        bc_status_t st = BC_OK;
        if (rereg) {
            bc__node_cluster_set_role(cl, false, "registering again");
            st = cluster_register(cl);
        }
        if (st == BC_OK) st = cluster_refresh(cl, prim);
        if (st == BC_OK && prim) prim_read_ms = bc_time_mono_ms();
        /* A backup's own promotion (promote.c) looks after every read of
         * the primary records, and when its time comes. */
        int64_t promote_in = st == BC_OK && (prim || cl->cand_due_ms != 0)
                                 ? bc__node_cluster_promote_step(cl) : -1;

        pthread_mutex_lock(&cl->mu);
        if (st != BC_OK) {
            /* Retry soon; a failed registration must be retried. */
            if (rereg) cl->reregister = true;
            if (prim) cl->prim_dirty = true;
        }
        if (cl->stopping) break;
        if (!cl->dirty) {
            int64_t nap = st == BC_OK ? CLUSTER_REFRESH_MS : 500;
            /* A promotion step is due then: it checks what it needs itself
             * (and its transaction, every version it decided on). */
            if (promote_in >= 0 && promote_in < nap) nap = promote_in;
            struct timespec until;
            bc_time_deadline(&until, CLOCK_MONOTONIC, nap);
            pthread_cond_timedwait(&cl->cv, &cl->mu, &until);
        }
    }
    pthread_mutex_unlock(&cl->mu);
    return NULL;
}

/*
 * FENCING
 *
 * BACKGROUND: a primary that loses touch with ZooKeeper cannot know
 * whether it is still primary.  Its session may expire on the server at
 * any moment, the console then promotes a backup, and from that moment two
 * nodes would accept writes for the same buckets.  The old primary cannot
 * be told (it is unreachable, or frozen: SIGSTOP, a long GC-like pause, a
 * VM migration), so it must stop on its own, in time.
 *
 * BEHAVIOR: this thread renews a write lease: every quarter of the
 * session timeout it sends one request (exists on the cluster's root) in
 * the current session.  The server resets the session's expiry clock on
 * every request it receives, so once the reply is in, the session cannot
 * expire before (send time + negotiated timeout).  The lease runs to send
 * time + 3/4 of that, the last quarter being the margin for clock-rate
 * differences and for the console's promotion to begin.  Writes are
 * accepted only inside the lease (bc_node_cluster_route), so:
 *
 *   - ZooKeeper unreachable: writes stop 3/4 timeout after the last reply,
 *     before the session can expire and a backup can be promoted;
 *   - a frozen process wakes with its lease long gone: its first writes
 *     are refused (NOT_PRIMARY, clients re-route) before any of its own
 *     threads ran, and the expiry it then learns of clears its role;
 *   - a reply that arrives in a NEW session (the old one expired in
 *     between) renews nothing: session_gen changed, and the role was
 *     dropped when the expiry was reported.
 *
 * Reads are not fenced: a partitioned primary may serve a value a newer
 * primary has since overwritten, for at most the session timeout (the
 * same window every cache with lease-based failover has).
 *
 * The price: when ZooKeeper itself is down, no lease can be renewed and
 * every primary stops taking writes (reads go on) until it is back -- a
 * node cannot tell "ZooKeeper is down" (nobody can promote anyone) from
 * "I am cut off from it" (a backup is being promoted).  --no-write-fencing
 * trades that the other way, as memcached-with-sharding setups do: writes
 * continue through a ZooKeeper outage, and a partitioned primary may take
 * writes the new primary never sees.
 */
static void *
cluster_lease_main(void *arg)
{
    bc_node_cluster_t *cl = arg;
    char root[BC_CLUSTER_PATH_MAX];
    if (bc_cluster_path(root, sizeof(root), cl->cluster, "") != BC_OK) return NULL;
    pthread_mutex_lock(&cl->mu);
    while (!cl->stopping) {
        pthread_mutex_unlock(&cl->mu);
        int timeout = bc_zk_session_timeout(cl->zk);
        if (timeout <= 0) timeout = cl->session_timeout_ms;
        uint64_t gen = atomic_load(&cl->session_gen);
        int64_t sent = bc_time_mono_ms();
        bc_status_t st = timeout > 0 && bc_zk_connected(cl->zk)
                             ? bc_zk_exists(cl->zk, root, NULL, NULL, NULL) : BC_EZK;
        if ((st == BC_OK || st == BC_ENOTFOUND) && atomic_load(&cl->session_gen) == gen) {
            bc__node_cluster_lease_grant(cl, sent, timeout);
        }
        int interval = timeout / 4;
        if (interval < 50) interval = 50;
        pthread_mutex_lock(&cl->mu);
        if (cl->stopping) break;
        struct timespec until;
        bc_time_deadline(&until, CLOCK_MONOTONIC, interval);
        pthread_cond_timedwait(&cl->lease_cv, &cl->mu, &until);
    }
    pthread_mutex_unlock(&cl->mu);
    return NULL;
}

bc_status_t
bc_node_cluster_start(bc_node_cluster_t *cl, bc_cache_t *cache, const char *data_addr,
                      const char *admin_addr)
{
    if (data_addr == NULL || strlen(data_addr) >= BC_ADDR_MAX ||
        (admin_addr != NULL && strlen(admin_addr) >= BC_ADDR_MAX)) {
        return BC_EINVAL;
    }
    snprintf(cl->self.data_addr, sizeof(cl->self.data_addr), "%s", data_addr);
    snprintf(cl->self.admin_addr, sizeof(cl->self.admin_addr), "%s", admin_addr ? admin_addr : "");
    cl->cache = cache;
    bc_status_t st = cluster_register(cl);
    if (st != BC_OK) {
        log_error("cluster: cannot register in group %u: %s", cl->gid, bc_status_str(st));
        return st;
    }
    /* A first lease before the agent can make this node primary. */
    int64_t sent = bc_time_mono_ms();
    int timeout = bc_zk_session_timeout(cl->zk);
    if (timeout > 0) bc__node_cluster_lease_grant(cl, sent, timeout);
    if (cluster_refresh(cl, true) != BC_OK) cluster_wake(cl, false, true);
    if (pthread_create(&cl->agent, NULL, cluster_agent, cl) != 0) return BC_ENOMEM;
    cl->agent_started = true;
    if (pthread_create(&cl->lease_thread, NULL, cluster_lease_main, cl) != 0) return BC_ENOMEM;
    cl->lease_started = true;
    return BC_OK;
}

void
bc_node_cluster_leave(bc_node_cluster_t *cl)
{
    if (cl == NULL) return;
    pthread_mutex_lock(&cl->mu);
    cl->stopping = true;
    pthread_cond_broadcast(&cl->cv);
    pthread_cond_broadcast(&cl->lease_cv);
    pthread_mutex_unlock(&cl->mu);
    if (cl->agent_started) pthread_join(cl->agent, NULL);
    cl->agent_started = false;
    if (cl->lease_started) pthread_join(cl->lease_thread, NULL);
    cl->lease_started = false;
    /* Leaving: nothing may be written here as primary any more. */
    bc__node_cluster_set_role(cl, false, NULL);
    if (cl->zk != NULL) {
        /* The admin port and the workers run until after this: they may
         * be reading the handle (zk_lock), never once it is detached. */
        pthread_rwlock_wrlock(&cl->zk_lock);
        bc_zk_t *zk = cl->zk;
        cl->zk = NULL;
        pthread_rwlock_unlock(&cl->zk_lock);
        bc_zk_close(zk);
        log_info("cluster: left group %u of \"%s\"", cl->gid, cl->cluster);
    }
}

void
bc_node_cluster_free(bc_node_cluster_t *cl)
{
    if (cl == NULL) return;
    bc_node_cluster_leave(cl);
    pthread_mutex_destroy(&cl->mu);
    pthread_rwlock_destroy(&cl->zk_lock);
    pthread_cond_destroy(&cl->cv);
    pthread_cond_destroy(&cl->lease_cv);
    pthread_mutex_destroy(&cl->prim_mu);
    pthread_mutex_destroy(&cl->fence_mu);
    bc_node_primaries_free(&cl->prim);
    free(cl->route);
    free(cl->fence_epoch);
    free(cl->fence_at_gen);
    free(cl->fence_ms);
    free(cl->paused_us);
    free(cl->cluster);
    free(cl);
}

bc_status_t
bc__node_cluster_alloc_routes(bc_node_cluster_t *cl)
{
    cl->route = calloc(cl->nbuckets, sizeof(*cl->route));
    cl->fence_epoch = calloc(cl->nbuckets, sizeof(*cl->fence_epoch));
    cl->fence_at_gen = calloc(cl->nbuckets, sizeof(*cl->fence_at_gen));
    cl->fence_ms = calloc(cl->nbuckets, sizeof(*cl->fence_ms));
    cl->paused_us = calloc(cl->nbuckets, sizeof(*cl->paused_us));
    if (cl->route == NULL || cl->fence_epoch == NULL || cl->fence_at_gen == NULL ||
        cl->fence_ms == NULL || cl->paused_us == NULL) {
        return BC_ENOMEM;
    }
    return BC_OK;
}

void
bc_node_cluster_get_info(bc_node_cluster_t *cl, bc_node_cluster_info_t *out)
{
    memset(out, 0, sizeof(*out));
    if (cl == NULL) return;
    out->gid = cl->gid;
    out->primary = atomic_load(&cl->primary);
    pthread_rwlock_rdlock(&cl->zk_lock);
    out->connected = cl->zk != NULL && bc_zk_connected(cl->zk) != 0;
    pthread_rwlock_unlock(&cl->zk_lock);
    out->epoch = atomic_load(&cl->epoch);
    out->owned_buckets = atomic_load(&cl->owned);
    out->registrations = atomic_load(&cl->registrations);
    out->buckets_dropped = atomic_load(&cl->buckets_dropped);
    out->writable = out->primary && bc_node_cluster_may_write(cl);
    int64_t left = atomic_load(&cl->lease_until) - bc_time_mono_ms();
    out->lease_ms = left > 0 ? left : 0;
    out->fenced_writes = atomic_load(&cl->fenced_writes);
    out->in_sync_short = atomic_load(&cl->in_sync_short);
    out->in_sync_refusals = atomic_load(&cl->in_sync_refusals);
    out->self_promotions = atomic_load(&cl->self_promotions);
    pthread_mutex_lock(&cl->fence_mu);
    out->write_pauses = cl->pause_count;
    out->write_pause_sum_us = cl->pause_sum_us;
    out->write_pause_max_us = cl->pause_max_us;
    memcpy(out->write_pause_hist, cl->pause_hist, sizeof(out->write_pause_hist));
    pthread_mutex_unlock(&cl->fence_mu);
    pthread_mutex_lock(&cl->mu);
    snprintf(out->node_name, sizeof(out->node_name), "%s", cl->node_name);
    pthread_mutex_unlock(&cl->mu);
}

void
bc_node_cluster_set_drop(bc_node_cluster_t *cl, bc_node_cluster_drop_fn fn, void *ctx)
{
    cl->drop_fn = fn;
    cl->drop_ctx = ctx;
}

void
bc_node_cluster_node_name(bc_node_cluster_t *cl, char *buf, size_t len)
{
    if (len == 0) return;
    buf[0] = '\0';
    if (cl == NULL) return;
    pthread_mutex_lock(&cl->mu);
    snprintf(buf, len, "%s", cl->node_name);
    pthread_mutex_unlock(&cl->mu);
}

bool
bc_node_cluster_term(bc_node_cluster_t *cl, uint64_t *epoch)
{
    if (cl == NULL) return false;
    pthread_mutex_lock(&cl->mu);
    bool mine = cl->own_prim_present && cl->node_name[0] != '\0' &&
                strcmp(cl->own_prim.node, cl->node_name) == 0;
    if (mine && epoch != NULL) *epoch = cl->own_prim.epoch;
    pthread_mutex_unlock(&cl->mu);
    return mine;
}

int64_t
bc_node_cluster_group_min_in_sync(const bc_node_cluster_t *cl)
{
    if (cl == NULL) return -1;
    return atomic_load_explicit(&((bc_node_cluster_t *)cl)->group_min_in_sync,
                                memory_order_relaxed);
}

void
bc_node_cluster_set_repl_probe(bc_node_cluster_t *cl, bc_node_cluster_repl_probe_fn fn, void *ctx)
{
    cl->repl_probe = fn;
    cl->repl_probe_ctx = ctx;
}

void
bc_node_cluster_group_settings(const bc_node_cluster_t *cl, int *repl_mode,
                               int64_t *sync_timeout_ms, int64_t *max_lag_mb)
{
    bc_node_cluster_t *mcl = (bc_node_cluster_t *)cl;
    *repl_mode = atomic_load_explicit(&mcl->group_repl_mode, memory_order_relaxed);
    *sync_timeout_ms = atomic_load_explicit(&mcl->group_sync_timeout_ms, memory_order_relaxed);
    *max_lag_mb = atomic_load_explicit(&mcl->group_max_lag_mb, memory_order_relaxed);
}
