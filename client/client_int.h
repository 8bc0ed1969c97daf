/*
 * client_int.h -- the client's internals shared by its source files:
 * the bc_client structure, its counters, and the functions the agent,
 * the operations and the unit tests call on it.
 *
 *   client.c   options, create/destroy, stats, error texts, locate
 *   agent.c    the background thread that follows ZooKeeper
 *   ops.c      single-key operations: route, send, read, retry
 *   mget.c     multi-get: grouped per node, pipelined, in parallel
 *   load.c     read-through: single-flight, negative cache, near cache
 *   route.c    routing snapshots;  pool.c  nodes and connections
 *   proto.c    protocol helpers;   lru.c   near/negative caches
 *   flight.c   single-flight;      log.c   logging (shipped library only)
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
    bc__node_t **registry;
    size_t nregistry;

    bc__refresh_hook_fn refresh_hook;
    void *refresh_hook_ctx;

    /* Read-through and near caching (NULL when off). */
    bc__flight_t *flight;
    bc__lru_t *negative;
    bc__lru_t *near;
    bc__sketch_t sketch;
};

/* Maps an internal status to a public BC_CLIENT_* code. */
int bc__client_code(bc_status_t st);

/*
 * A client without ZooKeeper, routing by tables installed with
 * bc__client_install (unit tests; no agent thread).  opts->zk_hosts and
 * cluster may be NULL.  Errors: BC_EINVAL, BC_ENOMEM.
 */
bc_status_t bc__client_new_detached(const bc_client_options_t *opts, uint32_t nbuckets,
                                    bc_client_t **out);
void bc__client_set_refresh_hook(bc_client_t *c, bc__refresh_hook_fn fn, void *ctx);

/*
 * Builds a snapshot from a c table (owner and readonly arrays of the
 * client's nbuckets) and the primaries' data addresses of `ngroups` groups
 * (gids[i] -> addrs[i], NULL or "" when unknown), reusing the nodes of
 * known addresses, and publishes it unless it routes exactly like the
 * current one.  Errors: BC_ENOMEM.
 */
bc_status_t bc__client_install(bc_client_t *c, uint64_t epoch, const uint32_t *owner,
                               const uint8_t *readonly, size_t ngroups, const uint32_t *gids,
                               const char *const *addrs);

/* Asks for a table reload (rate-limited by the agent); never blocks. */
void bc__client_request_refresh(bc_client_t *c, uint64_t min_epoch);

/* log.c (shipped library; a no-op elsewhere): ZooKeeper's log into ours. */
void bc__log_capture_zk(void);

/* agent.c */
/* Reads config-independent state (c table, primaries) and installs it; arms
 * watches when `watch`.  err receives a message.  Errors: ZooKeeper's,
 * BC_EINVAL (malformed table/record). */
bc_status_t bc__agent_load(bc_client_t *c, bool watch, char *err, size_t errlen);
bc_status_t bc__agent_start(bc_client_t *c);
void bc__agent_stop(bc_client_t *c);
/* The ZooKeeper session callback (wakes the agent). */
void bc__agent_session(bc_zk_t *zk, bc_zk_event_t ev, void *ctx);

/* ops.c: one call's deadline from its timeout_ms argument. */
uint64_t bc__deadline(const bc_client_t *c, int timeout_ms);
/* Sleeps before retry `attempt`, never past deadline; false when the
 * deadline would pass first (then nothing is slept).  A table published
 * after the `published`-th ends the sleep early (bc__router_wait). */
bool bc__backoff_sleep(bc_client_t *c, unsigned attempt, uint64_t deadline_ns,
                       uint64_t published);
/* The plain remote get used by bc_client_get and read-through; fills a
 * malloc'd value on BC_CLIENT_OK.  Near cache not consulted. */
int bc__get_remote(bc_client_t *c, const void *key, size_t klen, uint32_t hash,
                   uint64_t deadline_ns, void **value, size_t *vlen, uint32_t *flags);
int bc__set_remote(bc_client_t *c, const void *key, size_t klen, uint32_t hash,
                   const void *value, size_t vlen, uint32_t flags, int64_t exptime,
                   uint64_t deadline_ns);

/* load.c: the near cache around reads, and invalidation on writes. */
bool bc__near_lookup(bc_client_t *c, uint32_t hash, const void *key, size_t klen, void **value,
                     size_t *vlen, uint32_t *flags);
void bc__near_offer(bc_client_t *c, uint32_t hash, const void *key, size_t klen,
                    const void *value, size_t vlen, uint32_t flags);
void bc__near_forget(bc_client_t *c, uint32_t hash, const void *key, size_t klen);

#endif
