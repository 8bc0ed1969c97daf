/*
 * stats.h -- the node's request statistics, defined once.
 *
 * BC_THREAD_STATS lists every per-worker counter with its description.  Each
 * worker thread owns one bc_thread_stats_t and is its only writer
 * (bc_stats_incr/add: a relaxed load+store, no lock, no locked instruction);
 * readers (the "stats" command, /stats, /metrics) sum all workers with
 * relaxed loads, so a total may be a few operations behind, never torn.
 *
 * Names follow memcached's "stats" output so existing dashboards work.
 * Cache-level figures (items, bytes, evictions) come from
 * bc_cache_get_stats(); connection figures from the server.
 *
 * It lives in net/, the lowest layer that counts requests: the server
 * (net/server.c) owns each worker's counters and counts bytes; the
 * protocol (proto/) counts commands into the same struct and renders the
 * totals, without needing the server's header.
 */
#ifndef BC_STATS_H
#define BC_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#define BC_THREAD_STATS(X)                                                         \
    X(cmd_get,         "get, gets, gat and gats keys requested")                   \
    X(cmd_set,         "storage commands (set, add, replace, append, prepend, cas)") \
    X(cmd_flush,       "flush_all commands")                                       \
    X(cmd_touch,       "touch, gat and gats keys requested")                       \
    X(get_hits,        "keys found by get/gets/gat/gats")                          \
    X(get_misses,      "keys not found by get/gets/gat/gats")                      \
    X(get_expired,     "gets that found only an expired item")                     \
    X(get_no_owner,    "keys read as misses because no group owns their bucket (its group is down)") \
    X(get_forward_failed, "keys of a multi-get read as misses because their owner could not answer") \
    X(delete_hits,     "delete commands that removed an item")                     \
    X(delete_misses,   "delete commands for a missing key")                        \
    X(incr_hits,       "incr commands on an existing key")                         \
    X(incr_misses,     "incr commands on a missing key")                           \
    X(decr_hits,       "decr commands on an existing key")                         \
    X(decr_misses,     "decr commands on a missing key")                           \
    X(cas_hits,        "cas commands that stored")                                 \
    X(cas_misses,      "cas commands on a missing key")                            \
    X(cas_badval,      "cas commands rejected for a stale CAS value")              \
    X(touch_hits,      "touch/gat on an existing key")                             \
    X(touch_misses,    "touch/gat on a missing key")                               \
    X(store_too_large, "storage commands rejected as larger than the item limit")  \
    X(store_no_memory, "storage commands rejected for lack of memory")             \
    X(protocol_errors, "malformed or unknown commands answered with an error")     \
    X(bytes_read,      "bytes read from clients")                                  \
    X(bytes_written,   "bytes written to clients")                                 \
    X(forward_requests, "requests forwarded to the owning group's primary (a multi-get counts once per owner)") \
    X(forward_errors,  "forwarded requests that failed: owner unreachable, connection lost, malformed or oversized reply") \
    X(forward_timeouts, "forwarded requests that got no reply within the forward timeout") \
    X(peer_connections, "connections that identified as another node's forwarding (peer) connection")

typedef struct bc_thread_stats {
#define BC__STATS_FIELD(name, desc) _Atomic uint64_t name;
    BC_THREAD_STATS(BC__STATS_FIELD)
#undef BC__STATS_FIELD
} bc_thread_stats_t;

/* Summed, plain copy for reporting. */
typedef struct bc_stats_totals {
#define BC__STATS_FIELD(name, desc) uint64_t name;
    BC_THREAD_STATS(BC__STATS_FIELD)
#undef BC__STATS_FIELD
} bc_stats_totals_t;

/* The data port's figures, summed over its workers (net/server.h,
 * bc_server_get_stats): what "stats", /stats and /metrics report. */
typedef struct bc_server_stats {
    uint64_t curr_connections;
    uint64_t total_connections;
    uint64_t rejected_connections;
    uint32_t threads;
    bc_stats_totals_t totals;    /* summed over workers */
} bc_server_stats_t;

/* Single-writer increment: only the owning worker thread calls these. */
#define bc_stats_add(ts, field, n)                                                  \
    atomic_store_explicit(&(ts)->field,                                             \
        atomic_load_explicit(&(ts)->field, memory_order_relaxed) + (uint64_t)(n),   \
        memory_order_relaxed)
#define bc_stats_incr(ts, field) bc_stats_add(ts, field, 1)

/* Adds one worker's counters into *totals. */
static inline void
bc_stats_accumulate(bc_stats_totals_t *totals, bc_thread_stats_t *ts)
{
#define BC__STATS_SUM(name, desc) \
    totals->name += atomic_load_explicit(&ts->name, memory_order_relaxed);
    BC_THREAD_STATS(BC__STATS_SUM)
#undef BC__STATS_SUM
}

#endif
