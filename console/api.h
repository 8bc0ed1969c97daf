/*
 * api.h -- bucketcache-console's HTTP API and dashboard (bc_httpd).
 *
 *   GET  /health           {"status":"ok","role":"active"|"standby",...}
 *   GET  /metrics          Prometheus text format
 *   GET  /v1/cluster       groups, nodes, roles, memory, bucket counts, each
 *                          group's recorded in-sync set and whether its primary lives
 *   GET  /v1/tables        {"epoch":E,"buckets":N,"c":[..],"m":[..],"d":[..],"readonly":[..]}
 *   POST /v1/rebalance     ?dry_run=1 computes without writing; otherwise
 *                          the active console commits (a standby answers
 *                          409 naming the active console)
 *   POST /v1/rebalance/cancel  moves not started yet are dropped (d := m
 *                          where no copy runs); the groups left empty are
 *                          held back until a forced rebalance
 *   GET  /v1/migrations    progress: pending/moving/done, bytes moved,
 *                          rate, time left, the copies running and those
 *                          waiting to retry (with their error), recent
 *                          moves, read-only stall p50/p99/max
 *   POST /v1/migrations/pause | /resume   persisted in ZooKeeper; a pause
 *                          starts no new copy, running ones finish
 *   GET  /v1/groups/{gid}/stats  a group's counters (from its primary), ops/s
 *                          and hit ratio over the last minute, memory used
 *                          vs limit, each backup's replication lag
 *   GET  /v1/stats/groups  every group's summary; /v1/stats/history the
 *                          last minutes of samples (the charts)
 *   GET  /v1/warnings      what an operator must not miss (group down,
 *                          unowned buckets, no backup, lagging backup,
 *                          stuck migration, no standby console)
 *   GET  /v1/buckets/top   ?by=ops|bytes|misses&n=N: the busiest buckets
 *   GET  /v1/buckets/{b}   a bucket's counters, owners, primary, backups,
 *                          pending move
 *   GET  /v1/hotkeys       ?group=G&n=N: the nodes' hot keys, merged per group
 *   POST /v1/groups/failover?group=G&unclean=1   an operator's unclean
 *                          failover: a group whose primary is gone and no
 *                          in-sync backup alive gets its best live node;
 *                          the reply says what may be lost
 *   GET  /                 the dashboard (one static page using the above)
 *
 * The statistics come from observe.h's sampler; a bad query parameter is
 * a 400 with a JSON message.
 *
 * Every console serves reads (they come from ZooKeeper), so any console
 * can be asked; only the active one writes.
 */
#ifndef BC_CONSOLE_API_H
#define BC_CONSOLE_API_H

#include <stdbool.h>
#include <stdint.h>

#include "bc_httpd.h"
#include "bc_status.h"
#include "console.h"

typedef struct bc_console_api bc_console_api_t;

/*
 * Binds listen_addr:port (bound before the console starts, so the real port
 * can be advertised; bc_console_api_create_secure's access may let it try
 * the next ports).  console is borrowed and must outlive the API; it may
 * be NULL here and attached before bc_console_api_start.
 * *out is owned by the caller (bc_console_api_destroy).  Errors: those of
 * bc_httpd_create.
 */
bc_status_t bc_console_api_create(const char *listen_addr, uint16_t port, bc_console_t *console,
                                  bc_console_api_t **out);

/* Who may use the API (common/bc_httpd.h ACCESS, docs/security.md). */
typedef struct bc_console_api_access {
    struct bc_auth *auth;          /* the admin token; borrowed, outlives the API; NULL: none */
    bool insecure_no_auth;         /* beyond loopback without a token, on purpose */
    uint32_t max_conns;            /* 0 = 2048 */
    uint32_t max_conns_per_ip;     /* 0 = 256 */
    unsigned port_tries;           /* ports tried from port upwards while in use
                                    * (bc_httpd.h); 0 or 1 = port only */
} bc_console_api_access_t;

/*
 * bc_console_api_create with access rules (NULL: none, loopback only).
 * With a token, writes need it, and everything but /health and the
 * dashboard page does beyond loopback; /health then shows only status,
 * role and zookeeper_connected without it.  Errors: also BC_ECONFIG
 * (beyond loopback with no token and no insecure_no_auth; logged).
 */
bc_status_t bc_console_api_create_secure(const char *listen_addr, uint16_t port,
                                         bc_console_t *console,
                                         const bc_console_api_access_t *access,
                                         bc_console_api_t **out);
void bc_console_api_attach(bc_console_api_t *api, bc_console_t *console);
/* The statistics the API serves (observe.h); borrowed, NULL: none. */
struct bc_observe;
void bc_console_api_set_observe(bc_console_api_t *api, struct bc_observe *observe);
bc_status_t bc_console_api_start(bc_console_api_t *api);
uint16_t bc_console_api_port(const bc_console_api_t *api);
void bc_console_api_destroy(bc_console_api_t *api);

#endif
