/*
 * client_int.h -- the bc_client structure and its counters: the data every
 * internal module of the client shares.  It declares no function, so
 * including it creates no dependency between modules; each module's own
 * functions are in its own header.
 *
 *   client.c/h    options, create/destroy, stats, error texts, locate
 *   agent.c/h     the background thread that follows ZooKeeper
 *   registry.c/h  nodes by address; a table becomes the routing snapshot
 *   ops.c/h       single-key operations: route, send, read, retry
 *   mget.c        multi-get: grouped per node, pipelined, in parallel
 *   load.c        read-through: single-flight, negative cache
 *   near.c/h      the hot-key near cache around reads
 *   route.c/h     routing snapshots;  pool.c/h  nodes and connections
 *   proto.c/h     protocol helpers;   lru.c/h   near/negative caches
 *   flight.c/h    single-flight;      log.c/h   logging (shipped library only)
 *   tls.c/h       the TLS context and a connection's session
 *
 * DEPENDENCIES (a -> b: a calls b; nothing calls the other way)
 *
 *   load      -> ops, near, flight, lru, client (bc_strerror)
 *   mget      -> ops, agent, near, route, pool, proto
 *   ops       -> agent, near, route, pool, proto
 *   client    -> agent, registry, log, flight, lru, route, proto, tls
 *   agent     -> registry, route
 *   registry  -> route, pool
 *   near      -> lru
 *   route     -> pool -> proto, tls
 *   (the clock of them all is common/bc_time.h's bc_time_mono_ns)
 *
 *   The public calls enter at the top (client, load, mget, ops; log.c's
 *   bc_client_set_log).  Calls ask the agent for a fresher table; the
 *   agent and what lies below it never call up, so a new table reaches
 *   the calls only through the router.  Read-through is built on the
 *   operations, which know nothing of it.
 */
#ifndef BC_CLIENT_INT_H
#define BC_CLIENT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bc_status.h"
#include "bc_zk.h"
#include "bucketcache.h"
#include "flight.h"
#include "lru.h"
#include "pool.h"
#include "route.h"
#include "tls.h"

#define BC__COUNTERS(X)                                                      \
    X(ops) X(gets) X(hits) X(misses) X(stores) X(deletes) X(touches)         \
    X(ariths) X(errors) X(timeouts) X(retries) X(refusals) X(refreshes)      \
    X(table_updates) X(table_errors) X(loads) X(load_errors) X(load_shared)  \
    X(negative_hits) X(near_hits)

typedef struct bc__counters {
#define BC__COUNTER_FIELD(name) atomic_uint_fast64_t name;
    BC__COUNTERS(BC__COUNTER_FIELD)
#undef BC__COUNTER_FIELD
} bc__counters_t;

#define BC__COUNT(c, name, n) \
    atomic_fetch_add_explicit(&(c)->counters.name, (n), memory_order_relaxed)

/* Called instead of the agent when a call wants a fresher table (tests). */
typedef void (*bc__refresh_hook_fn)(bc_client_t *c, uint64_t min_epoch, void *ctx);

struct bc_client {
    bc_client_options_t opts;       /* zk_hosts/cluster point at the copies below */
    char *zk_hosts;
    char *cluster;
    uint32_t nbuckets;
    uint64_t timeout_ns, retry_base_ns, retry_max_ns, near_ttl_ns, negative_ttl_ns;

    bc__router_t router;
    bc__io_stats_t io;
    bc__counters_t counters;
    bc__tls_t *tls;                 /* NULL: plain TCP; the nodes borrow it */

    bc_zk_t *zk;                    /* NULL for a detached (test) client */

    /* agent_mu guards the agent's flags below; agent_cv wakes the agent. */
    pthread_mutex_t agent_mu;
    pthread_cond_t agent_cv;
    bool agent_started;
    bool stopping;
    bool dirty;                     /* a watch fired or the session changed */
    bool refresh_wanted;            /* a call saw a refusal */
    uint64_t want_epoch;            /* the newest epoch a node reported */
    pthread_t agent;

    /* The agent's address -> node registry (one reference each).  Only
     * touched by whoever builds snapshots: the agent thread, or the test
     * that drives a detached client, never both; build_mu serialises them. */
    pthread_mutex_t build_mu;
    bc__pool_node_t **registry;
    size_t nregistry;

    bc__refresh_hook_fn refresh_hook;
    void *refresh_hook_ctx;

    /* Read-through and near caching (NULL when off). */
    bc__flight_t *flight;
    bc__lru_t *negative;
    bc__lru_t *near;
    bc__lru_sketch_t sketch;
};

#endif
