/*
 * server.h -- the node's data port: listener, worker threads and
 * connections.  It moves bytes; the protocol spoken on them is a handler's
 * (handler.h; the node runs the memcached text protocol,
 * proto/proto_text.h).
 *
 * bc_server_create() binds the listening socket (so a port conflict is
 * reported before anything starts); bc_server_start() spawns the worker
 * threads; bc_server_stop() stops accepting, closes every connection and
 * joins the workers.  The server never owns the cache: the caller creates
 * it first and destroys it after bc_server_destroy().
 */
#ifndef BC_SERVER_H
#define BC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "bc_status.h"
#include "cluster/cluster.h"
#include "engine/cache.h"
#include "net/handler.h"
#include "net/stats.h"

typedef struct bc_server bc_server_t;

#define BC_SERVER_PLAIN_LISTEN_MAX 4
typedef struct bc_server_listen {
    const char *host;
    uint16_t port;
} bc_server_listen_t;
typedef struct bc_tls bc_tls_t;

typedef struct bc_server_config {
    const char *listen_addr;     /* IPv4/IPv6 literal or host name; "0.0.0.0" default */
    uint16_t port;               /* 11211 default; 0 = pick a free port */
    uint32_t nthreads;           /* worker threads; > 0 */
    uint32_t max_conns;          /* connections beyond this are refused */
    size_t max_conn_buffer;      /* per-connection pending output bytes before
                                    reading from that client pauses */
    int backlog;                 /* listen(2) backlog; <= 0: 1024 */
    /* memcached's -o idle_timeout: a connection waiting for a command
     * (nothing owed to it, no value being read, nothing forwarded) longer
     * than this many seconds since its last command is closed, silently,
     * and counted in idle_kicks.  Checked every second, as memcached
     * 1.6 does: closed after (T, T+1] s.  0 = never (the default). */
    uint32_t idle_timeout_s;
    /* memcached's -Z: the main listener speaks TLS with this context
     * (net/tls.h; borrowed, must outlive the server); NULL: plain. */
    bc_tls_t *tls;
    /* memcached's -l notls:HOST:PORT: further listeners that stay plain
     * (local clients, other nodes' peer links); port 0 picks one
     * (bc_server_plain_port).  Read during bc_server_create only. */
    const bc_server_listen_t *plain_listen;
    uint32_t nplain_listen;      /* <= BC_SERVER_PLAIN_LISTEN_MAX */
} bc_server_config_t;

/*
 * Creates the server and binds its listening socket.  config strings are
 * copied.  cache (whose items the output queues reference) is borrowed
 * and must outlive the server; handler is copied, handler_ctx borrowed
 * and passed to its worker_create and conn_init (it must outlive the
 * server, and be ready before bc_server_start).  *out is owned by the
 * caller (bc_server_destroy).  Errors: BC_EINVAL, BC_EIO (bind/listen
 * failed; logged with the reason), BC_ENOMEM.
 */
bc_status_t bc_server_create(const bc_server_config_t *config, bc_cache_t *cache,
                             const bc_handler_t *handler, void *handler_ctx,
                             bc_server_t **out);
/* The configuration in force, defaults filled in: the bound port, the
 * backlog, the connection buffer limit.  Borrowed from the server. */
const bc_server_config_t *bc_server_config(const bc_server_t *server);
/*
 * The cluster whose routing generation the workers note at the top of
 * each loop iteration (cluster/cluster.h), for bc_server_passed.  cluster
 * is borrowed and must outlive the server; NULL (the default): standalone.
 * Call before bc_server_start.
 */
void bc_server_set_cluster(bc_server_t *server, bc_node_cluster_t *cluster);
/*
 * Migration fencing (migrate/migrate.h): true once every worker thread has
 * begun an event-loop iteration at routing generation >= gen
 * (bc_node_cluster_route_gen: a table published, a local fence set), so
 * every request it routed before that change has completed.  A
 * worker blocked in epoll_wait counts as passed without being woken: it
 * has nothing in flight and reads the new routes when it wakes (el.h,
 * bc_el_idle).  Busy workers not there yet are woken, so polling this
 * converges within one iteration.  Call after seeing the new table (or
 * setting the local fence).  Any thread, lock-free.  No cluster or not
 * started: true.
 */
bool bc_server_passed(bc_server_t *server, uint64_t gen);
/*
 * Replication (repl/repl.h).  fn receives the socket of a connection whose
 * handler answered BC_EHANDOFF (the text protocol does for
 * "bucketcache_replicate <args>" when its env allows it): it owns fd from
 * then on (and closes it); args (NUL-terminated) is only valid during the
 * call, which runs on a worker thread and must not block.  Input that
 * followed the line is dropped (a backup sends nothing before the primary
 * answers).  NULL (the default): such a connection is closed.  Call before
 * bc_server_start.
 */
/* fd and ssl (the connection's TLS session, established; NULL: plain)
 * become the callee's. */
typedef void (*bc_server_handoff_fn)(void *ctx, int fd, SSL *ssl, const char *args);
void bc_server_set_handoff(bc_server_t *server, bc_server_handoff_fn fn, void *ctx);
/*
 * fn runs on a worker thread before it sends replies; it may block (that
 * is its purpose: synchronous replication waits there for the backups).
 * It returns false when the writes those replies acknowledge could not be
 * confirmed: the replies are then dropped and the connection closed, so
 * the client sees a lost connection ("unknown"), never an acknowledgement.
 * Call before bc_server_start.
 */
typedef bool (*bc_server_commit_fn)(void *ctx);
void bc_server_set_commit(bc_server_t *server, bc_server_commit_fn fn, void *ctx);
/*
 * Closes every client connection -- every one but other nodes' peer
 * connections (handler.h is_peer) -- at each worker's next loop iteration
 * (woken now), before it reads anything more from them.  Called when this
 * node stops being primary: a request still queued in a client's socket
 * would otherwise be read later and forwarded to the new primary, to be
 * applied after writes acknowledged since (docs/replication.md, "Zombie
 * writes").  Any thread; never blocks (it may run in a role hook).
 */
void bc_server_close_clients(bc_server_t *server);
/* Starts the worker threads.  Errors: BC_ENOMEM, BC_EIO. */
bc_status_t bc_server_start(bc_server_t *server);
/* The port actually bound (useful when config->port was 0). */
uint16_t bc_server_port(const bc_server_t *server);
/* The port plain listener i (config->plain_listen[i]) bound; 0: none. */
uint16_t bc_server_plain_port(const bc_server_t *server, uint32_t i);
/* Stops accepting, closes all connections, joins the workers.  Idempotent. */
void bc_server_stop(bc_server_t *server);
void bc_server_destroy(bc_server_t *server);
/* Client connections closed by bc_server_close_clients so far. */
uint64_t bc_server_clients_closed(const bc_server_t *server);
/* The figures since the last reset (net/stats.h).  Any thread. */
void bc_server_get_stats(bc_server_t *server, bc_server_stats_t *out);
/* The figures since the start, ignoring "stats reset" (/metrics: a
 * counter never goes down).  Any thread. */
void bc_server_get_stats_lifetime(bc_server_t *server, bc_server_stats_t *out);
/* "stats reset": the counters read zero from now on.  Any thread. */
void bc_server_reset_stats(bc_server_t *server);

/*
 * "stats conns": the listener and every open client connection, sorted by
 * fd, in *out (malloc'd, the caller frees it); returns how many.  0 with
 * *out = NULL when memory is short.  Any thread; the figures of a
 * connection are those its worker last published (after its last event).
 */
size_t bc_server_conns(bc_server_t *server, bc_conn_info_t **out);

#endif
