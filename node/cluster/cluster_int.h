/*
 * cluster_int.h -- what the files of the cluster module share and nobody
 * else sees: the cluster object itself, and the functions one file of the
 * module calls in another.
 *
 *   cluster.c    the ZooKeeper agent: session, registration, table and
 *                primary-record reads, the write-lease thread, lifecycle
 *   route.c      the routing state the agent publishes and workers read
 *                lock-free: routes, epoch, role, write gate, lease check,
 *                local migration fences, refusal lines
 *   primaries.c  every group's primary: the table the agent publishes and
 *                the private copies workers keep of it
 *   promote.c    the group's in-sync record (read and compare-and-set for
 *                replication) and a backup's own promotion when its
 *                primary's registration is gone and no console acts
 */
#ifndef BC_NODE_CLUSTER_INT_H
#define BC_NODE_CLUSTER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bc_cluster.h"
#include "bc_table.h"
#include "bc_zk.h"
#include "cluster/cluster.h"
#include "engine/cache.h"

struct bc_node_cluster {
    char *cluster;
    uint32_t gid;
    uint32_t nbuckets;
    bc_cluster_node_info_t self;   /* what we register (name filled in) */
    bc_zk_t *zk;
    /* LOCKING RULE: zk_lock guards cl->zk for threads outside the cluster
     * module (bc_node_cluster_get_info from the admin port; the in-sync
     * set's thread in repl/isr.c, through bc_node_cluster_isr_read and
     * _write) against bc_node_cluster_leave, which detaches and closes the
     * session while they may still run.  Readers share it (a ZooKeeper call
     * of the in-sync thread never makes /health wait); leave takes it to
     * write, so it waits for a call in progress (bounded by the session's
     * timeouts) and none starts after. */
    pthread_rwlock_t zk_lock;
    bc_cache_t *cache;

    /* Routing state: read lock-free by workers, written by the agent and
     * (the read-only bit of one bucket) by bc_node_cluster_fence.
     * LOCKING RULE: fence_mu serialises those two writers, so a table the
     * agent publishes cannot wipe a local fence set meanwhile. */
    _Atomic uint64_t *route;       /* per bucket: owner | READONLY_BIT */
    pthread_mutex_t fence_mu;
    uint64_t *fence_epoch;         /* per bucket: a local fence until the table reaches it */
    uint64_t *fence_at_gen;        /* per bucket: the routing generation that set it */
    int64_t *fence_ms;             /* per bucket: when (monotonic) */
    /* The write pauses of this node's buckets as their primary (fence_mu):
     * per bucket when its writes stopped (monotonic us; 0 = writable), and
     * the finished pauses, from the read-only bit set (the table or a local
     * fence) to writes going on (here, or at the new owner by the table). */
    int64_t *paused_us;
    uint64_t pause_hist[BC_NODE_PAUSE_NBOUNDS + 1];
    uint64_t pause_count, pause_sum_us, pause_max_us;
    /* Bumped (release, under fence_mu) after every change of the routes: a
     * table published, a local fence set.  Workers note it at the top of
     * each loop (acquire), so "every worker has noted g" means every request
     * routed before change g has completed (bc_server_passed). */
    _Atomic uint64_t route_gen;
    _Atomic uint64_t epoch;
    _Atomic bool primary;
    _Atomic uint32_t owned;
    _Atomic uint64_t registrations;
    _Atomic uint64_t buckets_dropped;

    /* Write fencing (see FENCING below). */
    _Atomic bool gated;            /* a write gate is in use (replication) */
    _Atomic bool writable;         /* the gate: replication is ready */
    _Atomic int64_t lease_until;   /* monotonic ms; writes stop after it */
    _Atomic uint64_t session_gen;  /* bumped when a session expires */
    _Atomic uint64_t fenced_writes;/* writes refused for lack of a lease */
    /* This group's settings (groups/<gid>/config); -1 = unset. */
    _Atomic int group_repl_mode;
    _Atomic int64_t group_sync_timeout_ms;
    _Atomic int64_t group_max_lag_mb;
    _Atomic int64_t group_min_in_sync;
    /* Writes refused for too few backups in sync (replication decides). */
    _Atomic bool in_sync_short;
    _Atomic uint64_t in_sync_refusals;
    int session_timeout_ms;        /* as configured */
    bool no_write_fencing;         /* --no-write-fencing: the lease is not required */
    pthread_t lease_thread;
    bool lease_started;
    pthread_cond_t lease_cv;       /* with mu: wakes the lease thread to stop */

    /* mu guards the wake flags and node_name; cv wakes the agent. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool dirty;
    bool prim_dirty;               /* the primaries must be read again */
    bool reregister;
    bool stopping;
    char node_name[BC_NODE_NAME_MAX];
    pthread_t agent;
    bool agent_started;
    /* How a bucket that left is dropped (bc_node_cluster_set_drop); set
     * before the agent starts, read by the agent only. */
    bc_node_cluster_drop_fn drop_fn;
    void *drop_ctx;
    /* Told of every new epoch put in force (bc_node_cluster_set_on_routes);
     * guarded by fence_mu. */
    void (*on_routes)(void *ctx);
    void *on_routes_ctx;
    /* Told of every role change (bc_node_cluster_set_role_hook); set
     * before the agent starts. */
    uint32_t nrole_hooks;
    struct {
        void (*fn)(void *ctx);
        void *ctx;
    } role_hooks[BC_NODE_CLUSTER_ROLE_HOOKS];

    /* This group's own primary record as the agent last read it (mu): the
     * term a primary holds, what a backup's promotion checks against. */
    bool own_prim_present;
    bc_cluster_primary_info_t own_prim;
    int32_t own_prim_version;
    /* A backup's own promotion (promote.c; agent thread only, but the
     * probe, set before start). */
    bc_node_cluster_repl_probe_fn repl_probe;
    void *repl_probe_ctx;
    int64_t cand_due_ms;           /* 0: not a candidate now */
    int32_t cand_prim_version;     /* the primary record it was decided on */
    int32_t cand_isr_version;
    bc_cluster_isr_t cand_isr;
    char cand_logged[BC_NODE_NAME_MAX];  /* the gone primary last logged about */
    _Atomic uint64_t self_promotions;

    /* Every group's primary.  LOCKING RULE: prim_mu guards prim (written
     * by the agent, copied by workers); prim_gen is bumped under prim_mu
     * with each change and read without it (a changed value sends the
     * reader to the lock). */
    pthread_mutex_t prim_mu;
    bc_node_primaries_t prim;
    _Atomic uint64_t prim_gen;
};

/* route.c: the one place this node's role changes (see there). */
void bc__node_cluster_set_role(bc_node_cluster_t *cl, bool primary, const char *why);
/* route.c: a write lease from a ZooKeeper round trip sent at `sent`
 * (monotonic ms) under a session of timeout_ms (FENCING in cluster.c). */
void bc__node_cluster_lease_grant(bc_node_cluster_t *cl, int64_t sent, int timeout_ms);
/* cluster.c: the per-bucket routing arrays for cl->nbuckets (freed by
 * bc_node_cluster_free).  Errors: BC_ENOMEM. */
bc_status_t bc__node_cluster_alloc_routes(bc_node_cluster_t *cl);
/* route.c: the routing atomics and the epoch from table c, in force for
 * every request from now on (agent thread). */
void bc__node_cluster_publish(bc_node_cluster_t *cl, const bc_table_t *c);

/* promote.c: one step of a backup's own promotion (agent thread, after
 * the primaries were read).  Returns ms until it wants to look again, or
 * -1 for no particular time. */
int64_t bc__node_cluster_promote_step(bc_node_cluster_t *cl);
/* cluster.c: the path of groups/<gid><suffix> ("" for the group). */
bc_status_t bc__node_cluster_group_path(const bc_node_cluster_t *cl, const char *suffix, char *buf,
                                        size_t len);
/* cluster.c: wakes the agent; primaries: read the primary records too. */
void bc__node_cluster_wake(bc_node_cluster_t *cl, bool primaries);

/* primaries.c: resolves e->addr into e->sa (agent thread only: may block
 * on DNS); a failure is a warning when the address is new (`fresh`). */
void bc__node_primaries_resolve(bc_node_primary_t *e, bool fresh);
/* primaries.c: installs *next as the table when it differs from the
 * current one; *next then holds the old table, which the caller frees. */
void bc__node_primaries_publish(bc_node_cluster_t *cl, bc_node_primaries_t *next);

#endif
