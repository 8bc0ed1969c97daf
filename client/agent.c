/*
 * agent.c -- the client's background thread: it follows the cluster in
 * ZooKeeper and publishes a new routing snapshot whenever what it reads
 * routes differently.
 *
 * WHAT IT READS
 *   tables/c (owner and read-only flag per bucket, with its epoch) and, for
 *   every group that owns a bucket, groups/<gid>/primary (the primary's
 *   data address).  Each read arms a one-shot watch; a primary record that
 *   does not exist gets an exists-watch, which fires when it is created.
 *
 * WHEN
 *   A watch firing or the session (re)connecting marks the state dirty; a
 *   call that met a refusal or a dead node asks for a refresh; and every
 *   refresh_interval_ms the agent reloads anyway (the safety net for a
 *   missed watch).  Reloads are at least AGENT_MIN_GAP_MS apart, so a storm
 *   of refusals costs one reload, not one per call; and while requested
 *   reloads keep finding nothing new (a node is dead and ZooKeeper does
 *   not know yet), the gap between them doubles up to AGENT_MAX_GAP_MS, so
 *   a client does not poll ZooKeeper hard -- the watches bring the change
 *   when it comes.
 *
 * WHEN ZOOKEEPER IS AWAY
 *   Nothing is read while the session is not connected, and a failed
 *   reload is retried every AGENT_RETRY_MS; the last published snapshot
 *   keeps routing calls meanwhile.  A malformed table is logged and counted
 *   (table_errors) and the previous snapshot is kept: a half-understood
 *   table is never used.  A malformed primary record likewise: its group
 *   keeps the primary address in use so far.
 *
 * LOCKING
 *   c->agent_mu guards the wake-up flags (dirty, refresh_wanted,
 *   want_epoch, stopping); the agent never holds it across ZooKeeper I/O.
 *   Watch callbacks run on ZooKeeper's completion thread and only take
 *   agent_mu to set a flag and signal.
 */
#include "agent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_cluster.h"
#include "bc_log.h"
#include "bc_time.h"
#include "client_int.h"
#include "registry.h"

#define AGENT_MIN_GAP_MS 10
#define AGENT_MAX_GAP_MS 500
#define AGENT_RETRY_MS   500

static void
agent_wake(bc_client_t *c)
{
    pthread_mutex_lock(&c->agent_mu);
    c->dirty = true;
    pthread_cond_signal(&c->agent_cv);
    pthread_mutex_unlock(&c->agent_mu);
}

static void
agent_watch(bc_zk_t *zk, const char *path, void *ctx)
{
    (void)zk;
    (void)path;
    agent_wake(ctx);
}

void
bc__agent_session(bc_zk_t *zk, bc_zk_event_t ev, void *ctx)
{
    (void)zk;
    bc_client_t *c = ctx;
    switch (ev) {
    case BC_ZK_CONNECTED:
    case BC_ZK_NEW_SESSION:
        agent_wake(c);
        break;
    case BC_ZK_DISCONNECTED:
    case BC_ZK_EXPIRED:
        log_info("client: ZooKeeper session %s; routing by the last table",
                 ev == BC_ZK_EXPIRED ? "expired" : "disconnected");
        break;
    }
}

static int
u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The primary address the current snapshot uses for gid ("" if none). */
static void
agent_known_primary(bc_client_t *c, uint32_t gid, char *addr, size_t addrlen)
{
    bc__route_snapshot_t *s = bc__route_acquire(&c->router);
    for (uint32_t b = 0; s != NULL && b < s->nbuckets; b++) {
        if (s->owner[b] == gid && s->node[b] != NULL) {
            snprintf(addr, addrlen, "%s", s->node[b]->addr);
            break;
        }
    }
    bc__route_release(s);
}

/* Reads groups/<gid>/primary into addr: "" when there is none; the address
 * in use so far when the record is malformed. */
static bc_status_t
agent_read_primary(bc_client_t *c, uint32_t gid, bool watch, char *addr, size_t addrlen)
{
    char suffix[48], path[BC_CLUSTER_PATH_MAX];
    addr[0] = '\0';
    snprintf(suffix, sizeof(suffix), "/groups/%u/primary", gid);
    bc_status_t st = bc_cluster_path(path, sizeof(path), c->cluster, suffix);
    if (st != BC_OK) return st;
    char *data = NULL;
    size_t len = 0;
    st = bc_zk_get(c->zk, path, watch ? agent_watch : NULL, c, &data, &len, NULL);
    if (st == BC_ENOTFOUND) {
        if (watch) {
            st = bc_zk_exists(c->zk, path, agent_watch, c, NULL);
            /* Created between the two reads: the watch fired, reload. */
            if (st == BC_OK) agent_wake(c);
            if (st == BC_OK || st == BC_ENOTFOUND) st = BC_OK;
        } else {
            st = BC_OK;
        }
        return st;
    }
    if (st != BC_OK) return st;
    bc_cluster_primary_info_t info;
    char err[160] = "";
    bc_status_t dst = bc_cluster_primary_info_decode(data ? data : "", len, &info, err,
                                                     sizeof(err));
    free(data);
    if (dst != BC_OK) {
        /* Ignored: the group keeps the primary we knew, if any. */
        BC__COUNT(c, table_errors, 1);
        log_warn("client: ignoring the malformed primary record of group %u: %s", gid,
                 err[0] ? err : bc_status_str(dst));
        agent_known_primary(c, gid, addr, addrlen);
        return BC_OK;
    }
    snprintf(addr, addrlen, "%s", info.data_addr);
    return BC_OK;
}

bc_status_t
bc__agent_load(bc_client_t *c, bool watch, char *err, size_t errlen)
{
    bc_table_t t;
    BC__COUNT(c, refreshes, 1);
    if (err != NULL && errlen > 0) err[0] = '\0';
    bc_status_t st = bc_cluster_read_table(c->zk, c->cluster, 'c', c->nbuckets, &t, NULL,
                                           watch ? agent_watch : NULL, c, err, errlen);
    if (st != BC_OK) {
        if (st == BC_EINVAL || st == BC_ETOOLARGE) BC__COUNT(c, table_errors, 1);
        return st;
    }

    /* The distinct owner groups. */
    uint32_t *gids = malloc(t.nbuckets * sizeof(*gids));
    char (*addrs)[BC_ADDR_MAX] = NULL;
    const char **addrp = NULL;
    size_t ngroups = 0;
    if (gids == NULL) {
        bc_table_free(&t);
        return BC_ENOMEM;
    }
    memcpy(gids, t.owner, t.nbuckets * sizeof(*gids));
    qsort(gids, t.nbuckets, sizeof(*gids), u32_cmp);
    for (uint32_t i = 0; i < t.nbuckets; i++) {
        if (gids[i] != 0 && (ngroups == 0 || gids[ngroups - 1] != gids[i])) {
            gids[ngroups++] = gids[i];
        }
    }
    addrs = calloc(ngroups ? ngroups : 1, sizeof(*addrs));
    addrp = calloc(ngroups ? ngroups : 1, sizeof(*addrp));
    if (addrs == NULL || addrp == NULL) st = BC_ENOMEM;
    for (size_t g = 0; g < ngroups && st == BC_OK; g++) {
        st = agent_read_primary(c, gids[g], watch, addrs[g], sizeof(addrs[g]));
        addrp[g] = addrs[g];
        if (st == BC_OK && addrs[g][0] == '\0') {
            log_debug("client: group %u has no primary yet", gids[g]);
        }
    }
    if (st == BC_OK) {
        st = bc__registry_install(c, t.epoch, t.owner, t.readonly, ngroups, gids, addrp);
    }
    free(addrp);
    free(addrs);
    free(gids);
    bc_table_free(&t);
    return st;
}

static void
abs_time(uint64_t ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ns / 1000000000ull);
    ts->tv_nsec = (long)(ns % 1000000000ull);
}

static void *
agent_main(void *arg)
{
    bc_client_t *c = arg;
    const uint64_t interval = (uint64_t)c->opts.refresh_interval_ms * 1000000ull;
    const uint64_t min_gap = (uint64_t)AGENT_MIN_GAP_MS * 1000000ull;
    const uint64_t max_gap = (uint64_t)AGENT_MAX_GAP_MS * 1000000ull;
    uint64_t last = bc_time_mono_ns(), next_periodic = last + interval, retry_at = 0;
    uint64_t gap = min_gap;   /* before a reload only requested by calls */
    bool failing = false;
    char err[256];

    pthread_mutex_lock(&c->agent_mu);
    while (!c->stopping) {
        uint64_t now = bc_time_mono_ns();
        bool due = c->dirty || c->refresh_wanted || now >= next_periodic;
        uint64_t wait = c->dirty || now >= next_periodic ? min_gap : gap;
        uint64_t earliest = last + wait > retry_at ? last + wait : retry_at;
        if (!due || now < earliest) {
            struct timespec ts;
            abs_time(due ? earliest : next_periodic, &ts);
            pthread_cond_timedwait(&c->agent_cv, &c->agent_mu, &ts);
            continue;
        }
        bool only_requested = !c->dirty && c->refresh_wanted && now < next_periodic;
        c->dirty = false;
        c->refresh_wanted = false;
        pthread_mutex_unlock(&c->agent_mu);

        uint64_t published = atomic_load_explicit(&c->router.published, memory_order_relaxed);
        bc__route_maintain(&c->router);
        bc_status_t st = BC_EAGAIN;
        if (bc_zk_connected(c->zk)) st = bc__agent_load(c, true, err, sizeof(err));
        last = bc_time_mono_ns();
        next_periodic = last + interval;
        if (st != BC_OK && !failing) {
            if (st == BC_EAGAIN) {
                log_warn("client: ZooKeeper unavailable; routing by the last table");
            } else {
                log_warn("client: cannot reload the routing table: %s%s%s", bc_status_str(st),
                         err[0] ? ": " : "", err);
            }
        } else if (st == BC_OK && failing) {
            log_info("client: routing table reloaded from ZooKeeper again");
        }
        failing = st != BC_OK;
        if (atomic_load_explicit(&c->router.published, memory_order_relaxed) != published) {
            gap = min_gap;
        } else if (only_requested && gap < max_gap) {
            gap = gap * 2 > max_gap ? max_gap : gap * 2;
        }

        pthread_mutex_lock(&c->agent_mu);
        if (failing) {
            retry_at = last + (uint64_t)AGENT_RETRY_MS * 1000000ull;
            c->dirty = true;
        } else {
            retry_at = 0;
        }
    }
    pthread_mutex_unlock(&c->agent_mu);
    return NULL;
}

bc_status_t
bc__agent_start(bc_client_t *c)
{
    if (pthread_create(&c->agent, NULL, agent_main, c) != 0) return BC_ENOMEM;
    c->agent_started = true;
    return BC_OK;
}

void
bc__agent_stop(bc_client_t *c)
{
    if (!c->agent_started) return;
    pthread_mutex_lock(&c->agent_mu);
    c->stopping = true;
    pthread_cond_signal(&c->agent_cv);
    pthread_mutex_unlock(&c->agent_mu);
    pthread_join(c->agent, NULL);
    c->agent_started = false;
}

void
bc__agent_request_refresh(bc_client_t *c, uint64_t min_epoch)
{
    if (c->refresh_hook != NULL) {
        c->refresh_hook(c, min_epoch, c->refresh_hook_ctx);
        return;
    }
    pthread_mutex_lock(&c->agent_mu);
    c->refresh_wanted = true;
    if (min_epoch > c->want_epoch) c->want_epoch = min_epoch;
    pthread_cond_signal(&c->agent_cv);
    pthread_mutex_unlock(&c->agent_mu);
}

void
bc__agent_set_refresh_hook(bc_client_t *c, bc__refresh_hook_fn fn, void *ctx)
{
    c->refresh_hook = fn;
    c->refresh_hook_ctx = ctx;
}
