/*
 * admin.h -- the node's HTTP admin port (libmicrohttpd, via bc_httpd).
 *
 * WHAT IT SERVES
 *   GET    /health          200 {"status":"ok", "mode":"standalone"|"cluster",
 *                           ...}; in a cluster also "group", "role"
 *                           ("primary"|"backup"), "epoch",
 *                           "zookeeper_connected", "node"
 *   GET    /stats           JSON: server counters (every BC_THREAD_STATS
 *                           field), cache counters, per-bucket items/bytes
 *                           (non-empty buckets; ?buckets=all for every one);
 *                           in a cluster a "cluster" object (the /health
 *                           facts plus owned_buckets, registrations,
 *                           buckets_dropped, http_refused, and a
 *                           "migrate" object of export/import counters)
 *   GET    /metrics         Prometheus text exposition format, names
 *                           prefixed bucketcache_ (common/bc_metrics.h
 *                           conventions; bucketcache_cluster_* in a
 *                           cluster); ?per_bucket=1 adds the
 *                           bucketcache_bucket_* series of every owned or
 *                           non-empty bucket
 *   GET    /v1/buckets      JSON: each owned bucket's counters (items,
 *                           bytes, gets, hits, misses, sets, deletes,
 *                           bytes_read, bytes_written, evictions,
 *                           expirations); ?buckets=owned|all|active
 *   GET    /v1/hotkeys      JSON: the heaviest sampled keys lately (key or
 *                           key_base64, bucket, count, error, rate_per_s);
 *                           ?n=N (default 20), ?bucket=B
 *   GET    /v1/keys/{key}   the raw value (application/octet-stream), flags
 *                           in X-Bucketcache-Flags, CAS in
 *                           X-Bucketcache-Cas; 404 on a miss (with an
 *                           origin, a miss is filled first:
 *                           bc_admin_set_origin)
 *   PUT    /v1/keys/{key}   body = value (binary-safe); ?ttl=SECONDS,
 *                           ?flags=N; 201 on store; 413 past the max item
 *                           size
 *   DELETE /v1/keys/{key}   204, or 404 on a miss
 *   GET    /v1/migrate/export, GET|POST|DELETE /v1/migrate/import
 *                           bucket migration between primaries (migrate.h;
 *                           404 when standalone)
 *
 *   ACCESS (common/bc_httpd.h, docs/security.md): with an admin token,
 *   PUT/DELETE/POST and GET /v1/migrate/export (it holds a bucket) need
 *   it; listening beyond loopback, everything but /health does.  /health
 *   then shows only status, mode, role and zookeeper_connected to a
 *   request without the token.  Bodies are application/octet-stream
 *   (the default) or application/json.
 *
 *   {key} is percent-decoded; it must then be 1..250 bytes without control
 *   characters or spaces (memcached's key rule), else 400.  Every error is an
 *   HTTP status with a JSON body {"error":"..."}; unknown paths 404, other
 *   methods 405 with an Allow header.
 *
 *   In a cluster, a key whose bucket this node may not serve gets
 *   421 Misdirected Request with
 *     {"error": "...", "reason": "moved"|"no_owner"|"readonly"|"not_primary",
 *      "bucket": b, "owner": gid (0 = none), "epoch": e}
 *   (reads of a read-only, migrating bucket are served; writes are not).
 *
 * HOW
 *   bc_admin_create() binds the listening socket (common/bc_httpd) so a
 *   port conflict is reported before anything starts and before the process
 *   drops privileges or daemonizes; libmicrohttpd serves it from one
 *   internal thread.  Connection count, per-connection memory and timeouts
 *   are bounded; PUT bodies are bounded by the cache's max item size.
 */
#ifndef BC_ADMIN_H
#define BC_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_peerauth.h"
#include "bc_status.h"
#include "engine/cache.h"
#include "engine/hotkeys.h"
#include "cluster/cluster.h"
#include "migrate/migrate.h"
#include "net/server.h"

typedef struct bc_admin bc_admin_t;

struct bc_auth;

typedef struct bc_admin_config {
    const char *listen_addr;   /* IPv4/IPv6 literal or host name; copied */
    uint16_t port;             /* 0 = any free port (see bc_admin_port) */
    uint32_t max_conns;        /* concurrent HTTP connections; 0 = 2048 */
    uint32_t conn_timeout_s;   /* idle connection timeout; 0 = 10 s */
    /* Access (common/bc_httpd.h ACCESS; docs/security.md) */
    uint32_t max_conns_per_ip; /* 0 = 256 */
    struct bc_auth *auth;      /* the admin token; borrowed, outlives the server; NULL: none */
    bool insecure_no_auth;     /* beyond loopback without a token, on purpose */
    /* The cluster secret: migration exports and imports prove it
     * (migrate/migrate.h); borrowed, outlives the server; NULL: none. */
    bc_peerauth_t *peer_auth;
    /* The migration endpoints' settings (migrate/migrate.h); 0: their
     * defaults. */
    bc_node_migrate_settings_t migrate;
    /* HTTPS (common/bc_httpd.h): the node's certificate chain and key as
     * PEM text (copied); NULL: plain HTTP.  A node run with -Z in a
     * cluster serves its admin port so (docs/security.md). */
    const char *tls_cert_pem;
    const char *tls_key_pem;
} bc_admin_config_t;

/*
 * Creates the admin server and binds its socket.  cache is borrowed and must
 * outlive the admin server; server is borrowed and may be NULL (then /stats
 * and /metrics carry only cache figures).  *out is owned by the caller
 * (bc_admin_destroy).  Errors: BC_EINVAL (bad address), BC_EIO (bind or
 * listen failed; logged with the reason), BC_ENOMEM.
 */
bc_status_t bc_admin_create(const bc_admin_config_t *config, bc_cache_t *cache,
                            bc_server_t *server, bc_admin_t **out);

/*
 * In a cluster: the key API serves only buckets this node may serve
 * (bc_node_cluster_route), /health, /stats, /metrics report the node's
 * group, role and epoch, and the migration endpoints (migrate.h) are on.
 * cluster is borrowed and must outlive the admin server; NULL (the
 * default) is standalone.  Call before bc_admin_start.
 */
void bc_admin_set_cluster(bc_admin_t *admin, bc_node_cluster_t *cluster);

/* GET /v1/keys/{key} reads through origin (origin/origin.h): a miss of
 * a key with an origin parks until its fill completes (404 when the
 * origin has no such key, 502/503/504 when the fill failed, with
 * {"error", "origin": kind}); /stats gains an "origin" object and
 * /metrics the bucketcache_origin_* figures.  origin is borrowed and must
 * outlive the admin server.  Call before bc_admin_start. */
struct bc_origin;
void bc_admin_set_origin(bc_admin_t *admin, struct bc_origin *origin);

/* Serves GET /v1/repl and the replication metrics.  repl is borrowed and
 * must outlive the admin server.  Call after bc_admin_set_cluster. */
struct bc_repl;
void bc_admin_set_repl(bc_admin_t *admin, struct bc_repl *repl);

/* Starts serving on libmicrohttpd's thread.  Errors: BC_EIO. */
bc_status_t bc_admin_start(bc_admin_t *admin);
/* Renews the HTTPS certificate chain and key (PEM text, not kept): a
 * certificate re-read.  Any thread.  Errors: BC_EINVAL (plain HTTP, or
 * unusable: err says why; the ones in force stay). */
bc_status_t bc_admin_set_tls(bc_admin_t *admin, const char *cert_pem, const char *key_pem,
                             char *err, size_t errlen);

/* The port actually bound. */
uint16_t bc_admin_port(const bc_admin_t *admin);

/* Stops serving; waits for in-flight requests.  Idempotent. */
void bc_admin_stop(bc_admin_t *admin);

/* Stops if needed, closes the socket and frees.  NULL is accepted. */
void bc_admin_destroy(bc_admin_t *admin);

/* Hot keys for GET /v1/hotkeys (engine/hotkeys.h); borrowed, must
 * outlive the admin server; NULL: an empty list. */
void bc_admin_set_hotkeys(bc_admin_t *admin, bc_hotkeys_t *hotkeys);

#endif
