/*
 * test_node_fake.h -- a node's cluster object without ZooKeeper, for the
 * unit tests of what reads it (routing, fencing, forwarding, migration).
 * Header-only.
 *
 * fake_cluster_new() builds a bc_node_cluster_t the way
 * bc_node_cluster_join does, minus the session: no agent thread runs, so
 * the test plays the agent, through the same calls cluster.c makes --
 * bc__node_cluster_publish (a table), bc__node_cluster_set_role,
 * bc__node_cluster_lease_grant, bc__node_primaries_publish.  It is freed
 * with bc_node_cluster_free like any other.
 */
#ifndef TEST_NODE_FAKE_H
#define TEST_NODE_FAKE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_table.h"
#include "bc_time.h"
#include "cluster/cluster.h"
#include "cluster/cluster_int.h"

/* Group gid's view of a cluster of nbuckets buckets: no table yet (every
 * bucket unowned, epoch 0), not primary, no lease.  abort()s on failure. */
static inline bc_node_cluster_t *
fake_cluster_new(uint32_t gid, uint32_t nbuckets)
{
    bc_node_cluster_t *cl = calloc(1, sizeof(*cl));
    if (cl == NULL) abort();
    cl->cluster = strdup("test");
    cl->gid = gid;
    cl->nbuckets = nbuckets;
    cl->session_timeout_ms = 4000;
    pthread_mutex_init(&cl->mu, NULL);
    bc_time_cond_init(&cl->cv);
    bc_time_cond_init(&cl->lease_cv);
    pthread_mutex_init(&cl->prim_mu, NULL);
    pthread_mutex_init(&cl->fence_mu, NULL);
    bc_node_primaries_init(&cl->prim);
    atomic_init(&cl->prim_gen, 1);
    atomic_init(&cl->group_repl_mode, -1);
    atomic_init(&cl->group_sync_timeout_ms, -1);
    atomic_init(&cl->group_max_lag_mb, -1);
    if (cl->cluster == NULL || bc__node_cluster_alloc_routes(cl) != BC_OK) abort();
    return cl;
}

/* Publishes table c at epoch: owner[b] for every bucket, the buckets in
 * readonly[] (nro of them) read-only -- as the agent does on a change. */
static inline void
fake_cluster_table(bc_node_cluster_t *cl, uint64_t epoch, const uint32_t *owner,
                   const uint32_t *readonly, size_t nro)
{
    bc_table_t c;
    if (bc_table_init(&c, 'c', cl->nbuckets) != BC_OK) abort();
    c.epoch = epoch;
    memcpy(c.owner, owner, cl->nbuckets * sizeof(*owner));
    for (size_t i = 0; i < nro; i++) c.readonly[readonly[i]] = 1;
    bc__node_cluster_publish(cl, &c);
    bc_table_free(&c);
}

/* This node is its group's primary, holding a write lease for the next
 * minute (as the lease thread grants it). */
static inline void
fake_cluster_primary(bc_node_cluster_t *cl)
{
    bc__node_cluster_set_role(cl, true, NULL);
    bc__node_cluster_lease_grant(cl, bc_time_mono_ms(), 80000);
}

/* Every group's primary: gids[i] at addrs[i] ("host:port", resolved
 * here), as the agent publishes them.  self_gid's entry is this node. */
static inline void
fake_cluster_primaries(bc_node_cluster_t *cl, const uint32_t *gids, const char *const *addrs,
                       size_t n)
{
    bc_node_primaries_t next;
    bc_node_primaries_init(&next);
    next.v = calloc(n ? n : 1, sizeof(*next.v));
    if (next.v == NULL) abort();
    next.cap = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {        /* sorted by gid, as the agent keeps them */
        size_t k = next.count;
        while (k > 0 && next.v[k - 1].gid > gids[i]) {
            next.v[k] = next.v[k - 1];
            k--;
        }
        bc_node_primary_t *e = &next.v[k];
        memset(e, 0, sizeof(*e));
        e->gid = gids[i];
        e->self = gids[i] == cl->gid;
        snprintf(e->addr, sizeof(e->addr), "%s", addrs[i]);
        bc__node_primaries_resolve(e, true);
        next.count++;
    }
    bc__node_primaries_publish(cl, &next);
    bc_node_primaries_free(&next);
}

#endif
