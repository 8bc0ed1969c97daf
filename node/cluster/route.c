/*
 * route.c -- the routing state of a cluster node (cluster.h): what the
 * agent publishes and every worker reads, per request, without a lock.
 *
 * HOW
 *   One 64-bit atomic word per bucket packs the owner group and a
 *   read-only bit; with the table epoch, the "I am primary" flag, the
 *   write gate and the write lease it answers bc_node_cluster_route with
 *   relaxed loads.  Two writers change the words: the agent publishing a
 *   table (bc__node_cluster_publish) and a migration export fencing a
 *   bucket ahead of the tables (bc_node_cluster_fence); fence_mu
 *   serialises them (LOCKING RULE at the struct, cluster_int.h).  Every
 *   change bumps the routing generation, which workers note at the top of
 *   each loop iteration (bc_server_passed).  The role changes in one place
 *   (bc__node_cluster_set_role), and a write also needs the lease the
 *   agent's lease thread renews (FENCING in cluster.c).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "bc_log.h"
#include "bc_metrics.h"
#include "bc_time.h"
#include "bc_wire.h"
#include "cluster/cluster_int.h"

#define ROUTE_READONLY_BIT  (1ull << 32)
#define FENCE_AHEAD_MAX     64        /* a local fence names an epoch at most this far ahead */
#define FENCE_STALE_MS      30000     /* ... and lasts at most this long without the table */

/*
 * The one place this node's role changes.  Losing the primary role closes
 * the write gate first, so no write passes the route check from here on;
 * the role hook hears of every change.  A loss for a reason that is not
 * the group's decision (why != NULL: the session, a new registration) is
 * a warning; the others are logged as info.
 */
void
bc__node_cluster_set_role(bc_node_cluster_t *cl, bool primary, const char *why)
{
    if (!primary) atomic_store(&cl->writable, false);
    bool was = atomic_exchange(&cl->primary, primary);
    if (was == primary) return;
    for (uint32_t i = 0; i < cl->nrole_hooks; i++) cl->role_hooks[i].fn(cl->role_hooks[i].ctx);
    if (primary) {
        log_info("cluster: this node is now PRIMARY of group %u", cl->gid);
    } else if (why != NULL) {
        log_warn("cluster: no longer primary of group %u (%s)", cl->gid, why);
    } else {
        log_info("cluster: no longer primary of group %u", cl->gid);
    }
}

/* A write lease from a ZooKeeper round trip sent at `sent` (monotonic
 * ms) under a session of timeout_ms: see FENCING in cluster.c.  Never
 * shortens one. */
void
bc__node_cluster_lease_grant(bc_node_cluster_t *cl, int64_t sent, int timeout_ms)
{
    int64_t until = sent + (int64_t)timeout_ms * 3 / 4;
    int64_t old = atomic_load(&cl->lease_until);
    while (until > old && !atomic_compare_exchange_weak(&cl->lease_until, &old, until)) {
    }
}

const uint32_t bc_node_pause_bounds_ms[BC_NODE_PAUSE_NBOUNDS] = {
    1, 2, 3, 5, 7, 10, 15, 20, 25, 30, 40, 50, 60, 75, 100, 150, 200, 300, 500, 1000, 5000,
};

/*
 * Bucket b's route is now word (fence_mu held): a write pause
 * begins when the read-only bit is set on a bucket this node serves as
 * primary, and ends when writes go on -- the bit cleared, or the bucket
 * routed elsewhere (its cutover, seen here).  Whatever ends it, its
 * length is counted: a called-off move paused writes too.
 */
static void
route_note_pause(bc_node_cluster_t *cl, uint32_t b, uint64_t word, int64_t now_us)
{
    bool paused = (uint32_t)word == cl->gid && (word & ROUTE_READONLY_BIT) &&
                  atomic_load_explicit(&cl->primary, memory_order_relaxed);
    if (paused) {
        if (cl->paused_us[b] == 0) cl->paused_us[b] = now_us;
        return;
    }
    if (cl->paused_us[b] == 0) return;
    uint64_t us = now_us > cl->paused_us[b] ? (uint64_t)(now_us - cl->paused_us[b]) : 0;
    cl->paused_us[b] = 0;
    cl->pause_hist[bc_metric_bin_ms(bc_node_pause_bounds_ms, BC_NODE_PAUSE_NBOUNDS,
                                    (double)us / 1000.0)]++;
    cl->pause_count++;
    cl->pause_sum_us += us;
    if (us > cl->pause_max_us) cl->pause_max_us = us;
}

/* The routing atomics and the epoch from c: in force for every request
 * from now on. */
void
bc__node_cluster_publish(bc_node_cluster_t *cl, const bc_table_t *c)
{
    uint32_t owned = 0;
    int64_t now = bc_time_mono_ms(), now_us = bc_time_mono_us();
    pthread_mutex_lock(&cl->fence_mu);
    for (uint32_t b = 0; b < cl->nbuckets; b++) {
        uint64_t word = c->owner[b] | (c->readonly[b] ? ROUTE_READONLY_BIT : 0);
        if (cl->fence_epoch[b] != 0) {
            if (c->epoch >= cl->fence_epoch[b]) {
                cl->fence_epoch[b] = 0;          /* the table decides from here */
            } else if (now - cl->fence_ms[b] > FENCE_STALE_MS) {
                log_warn("cluster: bucket %u: the tables never reached epoch %llu of its local "
                         "fence; lifting it", b, (unsigned long long)cl->fence_epoch[b]);
                cl->fence_epoch[b] = 0;
            } else {
                word |= ROUTE_READONLY_BIT;
            }
        }
        atomic_store_explicit(&cl->route[b], word, memory_order_relaxed);
        route_note_pause(cl, b, word, now_us);
        owned += c->owner[b] == cl->gid;
    }
    atomic_store_explicit(&cl->owned, owned, memory_order_relaxed);
    /* The generation before the epoch: whoever sees the new epoch
     * (acquire) and then reads the generation gets this one or later. */
    atomic_fetch_add_explicit(&cl->route_gen, 1, memory_order_release);
    uint64_t old = atomic_exchange_explicit(&cl->epoch, c->epoch, memory_order_release);
    if (old != c->epoch && cl->on_routes != NULL) cl->on_routes(cl->on_routes_ctx);
    pthread_mutex_unlock(&cl->fence_mu);
    if (old != c->epoch) {
        log_info("cluster: tables at epoch %llu: group %u owns %u of %u buckets",
                 (unsigned long long)c->epoch, cl->gid, owned, cl->nbuckets);
    }
}

bc_route_t
bc_node_cluster_route(const bc_node_cluster_t *cl, uint32_t bucket, bool write, uint32_t *owner,
                      uint64_t *epoch)
{
    if (cl == NULL) return BC_ROUTE_SERVE;
    bc_node_cluster_t *mcl = (bc_node_cluster_t *)cl;
    uint64_t word = bucket < cl->nbuckets
                        ? atomic_load_explicit(&mcl->route[bucket], memory_order_relaxed) : 0;
    uint32_t who = (uint32_t)word;
    if (owner != NULL) *owner = who;
    if (epoch != NULL) *epoch = atomic_load_explicit(&mcl->epoch, memory_order_acquire);
    if (who == 0) return BC_ROUTE_NO_OWNER;
    if (who != cl->gid) return BC_ROUTE_MOVED;
    if (!atomic_load_explicit(&mcl->primary, memory_order_relaxed)) return BC_ROUTE_NOT_PRIMARY;
    if (write && (word & ROUTE_READONLY_BIT)) return BC_ROUTE_READONLY;
    if (write && !bc_node_cluster_may_write(cl)) {
        atomic_fetch_add_explicit(&mcl->fenced_writes, 1, memory_order_relaxed);
        return BC_ROUTE_NOT_PRIMARY;
    }
    if (write && atomic_load_explicit(&mcl->in_sync_short, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&mcl->in_sync_refusals, 1, memory_order_relaxed);
        return BC_ROUTE_NOT_IN_SYNC;
    }
    return BC_ROUTE_SERVE;
}

int
bc_node_cluster_format_refusal(bc_route_t route, uint32_t bucket, uint32_t owner, uint64_t epoch,
                               char *buf, size_t len)
{
    bc_wire_refusal_t r = {.bucket = bucket, .gid = owner, .epoch = epoch};
    switch (route) {
    case BC_ROUTE_MOVED: r.kind = BC_WIRE_REFUSAL_MOVED; break;
    case BC_ROUTE_NO_OWNER: r.kind = BC_WIRE_REFUSAL_NO_OWNER; r.gid = 0; break;
    case BC_ROUTE_READONLY: r.kind = BC_WIRE_REFUSAL_READONLY; r.gid = 0; break;
    case BC_ROUTE_NOT_PRIMARY: r.kind = BC_WIRE_REFUSAL_NOT_PRIMARY; break;
    case BC_ROUTE_NOT_IN_SYNC: r.kind = BC_WIRE_REFUSAL_NOT_ENOUGH_IN_SYNC; break;
    default: r.kind = BC_WIRE_REFUSAL_NONE; break;
    }
    return (int)bc_wire_refusal_format(&r, buf, len);
}

bool
bc_node_cluster_may_write(const bc_node_cluster_t *cl)
{
    if (cl == NULL) return true;
    bc_node_cluster_t *mcl = (bc_node_cluster_t *)cl;
    if (!atomic_load_explicit(&mcl->primary, memory_order_acquire)) return false;
    if (atomic_load_explicit(&mcl->gated, memory_order_relaxed) &&
        !atomic_load_explicit(&mcl->writable, memory_order_acquire)) {
        return false;
    }
    if (cl->no_write_fencing) return true;
    /* Per write: the coarse clock.  It runs at most a tick behind, which the
     * lease's last quarter (>= 250 ms) covers many times over. */
    return bc_time_mono_coarse_ms() <
           atomic_load_explicit(&mcl->lease_until, memory_order_relaxed);
}

bool
bc_node_cluster_is_primary(const bc_node_cluster_t *cl)
{
    return cl != NULL && atomic_load(&((bc_node_cluster_t *)cl)->primary);
}

void
bc_node_cluster_use_write_gate(bc_node_cluster_t *cl)
{
    atomic_store(&cl->gated, true);
}

bool
bc_node_cluster_open_writes(bc_node_cluster_t *cl)
{
    atomic_store(&cl->writable, true);
    /* The role may have been lost while replication got ready. */
    if (!atomic_load(&cl->primary)) {
        atomic_store(&cl->writable, false);
        return false;
    }
    return true;
}

void
bc_node_cluster_close_writes(bc_node_cluster_t *cl)
{
    atomic_store(&cl->writable, false);
}

uint32_t
bc_node_cluster_gid(const bc_node_cluster_t *cl)
{
    return cl->gid;
}

bool
bc_node_cluster_set_role_hook(bc_node_cluster_t *cl, void (*fn)(void *ctx), void *ctx)
{
    if (fn == NULL || cl->nrole_hooks >= BC_NODE_CLUSTER_ROLE_HOOKS) return false;
    cl->role_hooks[cl->nrole_hooks].fn = fn;
    cl->role_hooks[cl->nrole_hooks].ctx = ctx;
    cl->nrole_hooks++;
    return true;
}

void
bc_node_cluster_set_in_sync_short(bc_node_cluster_t *cl, bool short_of_backups)
{
    if (cl != NULL) atomic_store_explicit(&cl->in_sync_short, short_of_backups, memory_order_relaxed);
}

/*
 * BEHAVIOR (migration fence): the console made `bucket` read-only at
 * `epoch` and the destination's export request says so before this
 * node's agent has read that table (a ZooKeeper round trip, tens of
 * milliseconds on a busy machine, every one of them a write stall).
 * Setting the read-only bit here at once is always safe -- it only
 * refuses writes -- and it stays set until the tables reach `epoch`
 * (then they decide: still read-only, or writable again if the move was
 * called off) or FENCE_STALE_MS pass without them getting there.  An
 * epoch more than FENCE_AHEAD_MAX ahead is not believed.
 */
bool
bc_node_cluster_fence(bc_node_cluster_t *cl, uint32_t bucket, uint64_t epoch, uint64_t *gen)
{
    if (cl == NULL || bucket >= cl->nbuckets) return false;
    pthread_mutex_lock(&cl->fence_mu);
    uint64_t cur = atomic_load_explicit(&cl->epoch, memory_order_relaxed);
    uint64_t word = atomic_load_explicit(&cl->route[bucket], memory_order_relaxed);
    bool ok = cur < epoch && epoch - cur <= FENCE_AHEAD_MAX && (uint32_t)word == cl->gid;
    if (ok) {
        if (cl->fence_epoch[bucket] < epoch || cl->fence_at_gen[bucket] == 0) {
            cl->fence_epoch[bucket] = epoch;
            cl->fence_ms[bucket] = bc_time_mono_ms();
            atomic_store_explicit(&cl->route[bucket], word | ROUTE_READONLY_BIT,
                                  memory_order_relaxed);
            route_note_pause(cl, bucket, word | ROUTE_READONLY_BIT, bc_time_mono_us());
            cl->fence_at_gen[bucket] =
                atomic_fetch_add_explicit(&cl->route_gen, 1, memory_order_release) + 1;
        }
        *gen = cl->fence_at_gen[bucket];
    }
    pthread_mutex_unlock(&cl->fence_mu);
    return ok;
}

void
bc_node_cluster_set_on_routes(bc_node_cluster_t *cl, void (*fn)(void *ctx), void *ctx)
{
    if (cl == NULL) return;
    pthread_mutex_lock(&cl->fence_mu);
    cl->on_routes = fn;
    cl->on_routes_ctx = ctx;
    pthread_mutex_unlock(&cl->fence_mu);
}

uint64_t
bc_node_cluster_route_gen(const bc_node_cluster_t *cl)
{
    return cl == NULL ? 0 : atomic_load_explicit(&((bc_node_cluster_t *)cl)->route_gen,
                                                 memory_order_acquire);
}
