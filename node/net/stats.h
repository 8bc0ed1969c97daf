/*
 * stats.h -- the node's request statistics, defined once.
 *
 * BC_THREAD_STATS lists every per-worker counter once: X(name, metric,
 * labels, description).  name is its field and its name in memcached's
 * "stats" and in /stats; metric and labels are its Prometheus series
 * (common/bc_metrics.h conventions: one family per measure, variants as
 * labels -- commands_total{command,status} as memcached_exporter has it;
 * NULL metric: not exported, another series already sums it).  Each
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
#include <stdbool.h>
#include <stdint.h>

#define BC__CMD(c, st) "command=\"" c "\",status=\"" st "\""
#define BC_THREAD_STATS(X)                                                                    \
    X(cmd_get, NULL, NULL, "get, gets, gat and gats keys requested")                         \
    X(cmd_set, "commands_total", BC__CMD("set", "hit"),                                      \
      "storage commands (set, add, replace, append, prepend, cas)")                          \
    X(cmd_flush, "commands_total", BC__CMD("flush", "hit"), "flush_all commands")            \
    X(cmd_touch, NULL, NULL, "touch, gat and gats keys requested")                           \
    X(cmd_meta, NULL, NULL, "me commands (memcached 1.6.18 counts only these as cmd_meta)")  \
    X(get_hits, "commands_total", BC__CMD("get", "hit"), "keys found by get/gets/gat/gats")  \
    X(get_misses, "commands_total", BC__CMD("get", "miss"),                                  \
      "keys not found by get/gets/gat/gats")                                                 \
    X(get_expired, "get_expired_total", NULL, "gets that found only an expired item")        \
    X(get_no_owner, "get_no_owner_total", NULL,                                              \
      "keys read as misses because no group owns their bucket (its group is down)")          \
    X(get_forward_failed, "get_forward_failed_total", NULL,                                  \
      "keys of a multi-get read as misses because their owner could not answer")             \
    X(delete_hits, "commands_total", BC__CMD("delete", "hit"),                               \
      "delete commands that removed an item")                                                \
    X(delete_misses, "commands_total", BC__CMD("delete", "miss"),                            \
      "delete commands for a missing key")                                                   \
    X(incr_hits, "commands_total", BC__CMD("incr", "hit"), "incr commands on an existing key") \
    X(incr_misses, "commands_total", BC__CMD("incr", "miss"), "incr commands on a missing key") \
    X(decr_hits, "commands_total", BC__CMD("decr", "hit"), "decr commands on an existing key") \
    X(decr_misses, "commands_total", BC__CMD("decr", "miss"), "decr commands on a missing key") \
    X(cas_hits, "commands_total", BC__CMD("cas", "hit"), "cas commands that stored")         \
    X(cas_misses, "commands_total", BC__CMD("cas", "miss"), "cas commands on a missing key")  \
    X(cas_badval, "commands_total", BC__CMD("cas", "badval"),                                \
      "cas commands rejected for a stale CAS value")                                         \
    X(touch_hits, "commands_total", BC__CMD("touch", "hit"), "touch/gat on an existing key") \
    X(touch_misses, "commands_total", BC__CMD("touch", "miss"), "touch/gat on a missing key") \
    X(store_too_large, "store_failures_total", "reason=\"too_large\"",                       \
      "storage commands rejected as larger than the item limit")                             \
    X(store_no_memory, "store_failures_total", "reason=\"no_memory\"",                       \
      "storage commands rejected for lack of memory")                                        \
    X(auth_cmds, "auth_commands_total", NULL,                                                \
      "authentication attempts (-Y: memcached's ASCII authentication)")                     \
    X(auth_errors, "auth_failures_total", NULL,                                              \
      "authentication attempts with an unknown user or a wrong password (-Y)")              \
    X(protocol_errors, "protocol_errors_total", NULL,                                        \
      "malformed or unknown commands answered with an error")                                \
    X(bytes_read, "read_bytes_total", NULL, "bytes read from clients")                       \
    X(bytes_written, "written_bytes_total", NULL, "bytes written to clients")                \
    X(forward_requests, "forwarded_requests_total", NULL,                                    \
      "requests forwarded to the owning group's primary (a multi-get counts once per owner)") \
    X(forward_errors, "forward_failures_total", "reason=\"error\"",                          \
      "forwarded requests that failed: owner unreachable, connection lost, malformed or "    \
      "oversized reply")                                                                     \
    X(forward_timeouts, "forward_failures_total", "reason=\"timeout\"",                      \
      "forwarded requests that got no reply within the forward timeout")                     \
    X(pause_waits, "migration_pause_waits_total", NULL,                                      \
      "client writes that waited out a bucket's migration pause instead of being refused")   \
    X(pause_timeouts, "migration_pause_timeouts_total", NULL,                                \
      "client writes refused after waiting readonly_wait_ms for a migration pause to end")   \
    X(peer_connections, "peer_connections_total", NULL,                                      \
      "connections that identified as another node's forwarding (peer) connection") \
    X(peer_auth_failures, "peer_auth_failures_total", NULL,                                  \
      "peer handshakes that failed: refused here (no, wrong or replayed proof of the cluster " \
      "secret) or a peer that did not prove itself")                                         \
    X(idle_kicks, "idle_kicks_total", NULL,                                                  \
      "connections closed by the idle timeout (-o idle_timeout)")                            \
    X(ssl_handshake_errors, "tls_handshake_failures_total", NULL,                            \
      "TLS handshakes that failed (-Z): a plain client, an unknown or missing client "       \
      "certificate, no common protocol version")

typedef struct bc_thread_stats {
#define BC__STATS_FIELD(name, metric, labels, desc) _Atomic uint64_t name;
    BC_THREAD_STATS(BC__STATS_FIELD)
#undef BC__STATS_FIELD
} bc_thread_stats_t;

/* Summed, plain copy for reporting. */
typedef struct bc_stats_totals {
#define BC__STATS_FIELD(name, metric, labels, desc) uint64_t name;
    BC_THREAD_STATS(BC__STATS_FIELD)
#undef BC__STATS_FIELD
} bc_stats_totals_t;

/* The data port's figures, summed over its workers (net/server.h,
 * bc_server_get_stats): what "stats", /stats and /metrics report. */
typedef struct bc_server_stats {
    uint64_t curr_connections;
    uint64_t total_connections;
    uint64_t rejected_connections;
    uint64_t listen_disabled_num;        /* accept pauses (out of descriptors) */
    uint64_t time_in_listen_disabled_us; /* their total length, the current one included */
    bool accepting_conns;                /* false during a pause */
    uint32_t threads;
    bc_stats_totals_t totals;    /* summed over workers */
} bc_server_stats_t;

/*
 * One socket of the data port as memcached's "stats conns" shows it
 * (net/server.c, bc_server_conns): the listener and every client
 * connection, by file descriptor.  Addresses are memcached's text
 * ("tcp:127.0.0.1:11211", "tcp6:[::1]:11211").
 */
#define BC_CONN_ADDR_TEXT 64

typedef struct bc_conn_info {
    int fd;
    bool listening;                     /* the listener: no listen_addr */
    char addr[BC_CONN_ADDR_TEXT];       /* the peer's (the listener: its own) */
    char listen_addr[BC_CONN_ADDR_TEXT];/* the local end */
    const char *state;                  /* memcached's name: "conn_read", ... */
    uint32_t secs;                      /* memcached's secs_since_last_cmd: it
                                         * counts from the connect (1.6.18 sets
                                         * last_cmd_time only then) */
} bc_conn_info_t;

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
#define BC__STATS_SUM(name, metric, labels, desc) \
    totals->name += atomic_load_explicit(&ts->name, memory_order_relaxed);
    BC_THREAD_STATS(BC__STATS_SUM)
#undef BC__STATS_SUM
}

#endif
