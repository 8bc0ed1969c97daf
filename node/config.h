/*
 * config.h -- bucketcache-node's configuration: defaults, JSON file,
 * command-line flags.
 *
 * WHAT IT DOES
 *   Builds one bc_node_config_t from, in increasing priority:
 *
 *     built-in defaults  <  --config FILE (JSON)  <  command-line flags
 *
 *   and validates the result as a whole (for example the item size limit
 *   against the memory limit, as memcached does).
 *
 * HOW
 *   Flags are described once, in a table in config.c, from which both the
 *   parser and the --help text are generated, so the help can never miss a
 *   flag.  The node accepts memcached's common flags with memcached's
 *   meaning (-p -l -m -t -c -I -v -b -P -d -U -u ...) so that it drops into
 *   scripts and service files written for memcached; flags that only tune
 *   memcached internals are accepted and ignored with a warning, flags whose
 *   behaviour the node does not implement and which would change what a
 *   client sees (SASL, UNIX sockets, binary protocol, TLS, -M) are refused
 *   with a clear message.  See bc_node_config_usage() / --help.
 *
 *   The JSON file has one section per part of the node; unknown fields are
 *   errors so typos are caught:
 *
 *     {
 *       "server": {"listen": "0.0.0.0", "port": 11211, "threads": 4,
 *                  "max_connections": 1024, "backlog": 1024,
 *                  "max_connection_buffer": "4m", "verbosity": 0,
 *                  "idle_timeout": 0, "auth_file": "",
 *                  "tls": {"chain_cert": "", "key": "", "ca_cert": "",
 *                          "verify_mode": 0, "min_version": 2, "ciphers": "",
 *                          "plain_listen": "HOST:PORT,..."}},   (tls: -Z)
 *       "cache":  {"memory_mb": 64, "max_item_size": "1m", "eviction": "s3fifo",
 *                  "buckets": 1024, "expiry_interval_ms": 1000,
 *                  "expiry_scan_budget": 20000},
 *       "admin":  {"listen": "127.0.0.1", "port": 11280, "max_connections": 2048,
 *                  "max_connections_per_ip": 256,
 *                  "auth_token_file": "/etc/bucketcache/admin-token",
 *                  "insecure_no_auth": false},
 *       "zookeeper": {"hosts": "10.0.0.1:2181", "cluster": "main", "group": 1,
 *                     "session_timeout_ms": 4000, "advertise": "10.0.0.7",
 *                     "forward": true, "forward_timeout_ms": 2000,
 *                     "auth_file": "/etc/bucketcache/zk-auth",
 *                     "cluster_secret_file": "/etc/bucketcache/cluster-secret"},
 *       "log":    {"level": "info"},
 *       "migration": {"max_imports": 48, "import_timeout_ms": 60000, "catchup_ms": 50},
 *       "origin": {"url": "http://resize:8000/v1/{key}", "timeout_ms": 1000, ...},
 *       "pid_file": "/run/bucketcache.pid"
 *     }
 *
 *   Without "zookeeper" (or --zk) the node is standalone and owns every
 *   bucket; with it, the node joins a group of a cluster (cluster.h), and
 *   by default forwards requests for buckets it does not serve to their
 *   owner's primary (forward.h; "forward": false or --no-forward refuses
 *   them instead).
 *
 *   With an origin (--origin URL, --origin PREFIX=URL, or the "origin"
 *   section: origin/origin.h, docs/origin.md) a miss of a key this node
 *   owns is filled from it.
 */
#ifndef BC_NODE_CONFIG_H
#define BC_NODE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bc_cluster.h"
#include "bc_config.h"
#include "bc_status.h"
#include "migrate/migrate.h"
#include "origin/origin.h"

#define BC_NODE_DEFAULT_PORT          11211u
#define BC_NODE_DEFAULT_ADMIN_PORT    11280u
/* Without --admin-port the admin port is the data port + this (11211 ->
 * 11280); a data port above 65466 gets the data port - this; -p 0 (any
 * free port) keeps BC_NODE_DEFAULT_ADMIN_PORT. */
#define BC_NODE_ADMIN_PORT_OFFSET     69u
#define BC_NODE_DEFAULT_MEMORY_MB     64u
#define BC_NODE_MIN_MEMORY            (1024u * 1024u)        /* 1 MiB */
#define BC_NODE_MAX_MEMORY            (1ull << 44)           /* 16 TiB */
#define BC_NODE_DEFAULT_MAX_CONNS     1024u
#define BC_NODE_DEFAULT_ITEM_SIZE     (1024u * 1024u)
#define BC_NODE_MIN_ITEM_SIZE         1024u                  /* memcached: 1k */
#define BC_NODE_MAX_ITEM_SIZE         (1024u * 1024u * 1024u) /* memcached: 1024m */
#define BC_NODE_MAX_THREADS           256u
#define BC_NODE_DEFAULT_MAX_THREADS   64u   /* default thread count = cores, capped */
#define BC_NODE_PATH_MAX              1024

typedef struct bc_node_config {
    /* data port: the memcached protocol (server.h) */
    char listen_addr[BC_HOST_MAX];     /* -l; "0.0.0.0" */
    uint16_t port;                     /* -p; 11211 (0 = any free port) */
    uint32_t threads;                  /* -t; number of online cores, 1..256 */
    uint32_t max_conns;                /* -c; 1024 */
    int backlog;                       /* -b; 1024 */
    size_t max_conn_buffer;            /* pending output per connection; 4 MiB */
    int verbosity;                     /* -v count, 0..3 */

    /* storage engine (cache.h) */
    uint64_t mem_limit;                /* -m; bytes, 64 MiB (-m counts megabytes) */
    size_t max_item_size;              /* -I; 1 MiB, memcached's bounds 1k..1024m */
    char eviction[16];                 /* --eviction; "s3fifo" */
    uint32_t nbuckets;                 /* --buckets; BC_DEFAULT_NBUCKETS */
    uint32_t expiry_interval_ms;       /* active-expiry period; 1000 (0 = off) */
    uint32_t expiry_scan_budget;       /* items examined per period; 20000 */

    /* admin HTTP port (admin.h) */
    char admin_listen[BC_HOST_MAX];    /* --admin-listen; "127.0.0.1" */
    uint16_t admin_port;               /* --admin-port; data port + 69, 0 = disabled */
    bool admin_port_given;             /* set by a flag or the file (else derived) */
    uint32_t admin_max_conns;          /* concurrent admin connections; 2048 */
    /* -- security (docs/security.md) -- */
    uint32_t admin_max_conns_per_ip;   /* admin connections per peer address; 256 */
    char auth_token_file[BC_NODE_PATH_MAX]; /* --auth-token-file: the admin token; "" = none */
    bool insecure_no_auth;             /* --insecure-no-auth: admin beyond loopback, no token */
    char zk_auth_file[BC_NODE_PATH_MAX];    /* --zk-auth-file: "user:password"; "" = none */
    /* --cluster-secret-file: what peer links prove (common/bc_peerauth.h);
     * required with --zk unless insecure_no_peer_auth */
    char cluster_secret_file[BC_NODE_PATH_MAX];
    bool insecure_no_peer_auth;        /* --insecure-no-peer-auth: peers unchecked, on purpose */
    uint32_t idle_timeout_s;           /* -o idle_timeout=N: close idle data connections; 0 = never */
    char mc_auth_file[BC_NODE_PATH_MAX]; /* -Y: memcached's ASCII authentication; "" = off */
    /* memcached's -Z and -o ssl_*: TLS on the data port (net/tls.h) */
    bool tls;                          /* -Z */
    char tls_chain_cert[BC_NODE_PATH_MAX]; /* ssl_chain_cert */
    char tls_key[BC_NODE_PATH_MAX];        /* ssl_key; "": in the chain file */
    char tls_ca_cert[BC_NODE_PATH_MAX];    /* ssl_ca_cert; "": none */
    char tls_ciphers[256];                 /* ssl_ciphers; "": OpenSSL's */
    int tls_verify_mode;                   /* ssl_verify_mode 0..3; 0 */
    int tls_min_version;                   /* ssl_min_version 0..3; 2 (TLS 1.2) */
    /* -l notls:HOST:PORT: plain listeners beside a TLS one */
    char plain_listen_host[4][BC_HOST_MAX];
    uint16_t plain_listen_port[4];
    uint32_t nplain_listen;

    /* cluster membership (cluster.h); standalone when zk_hosts is "" */
    char zk_hosts[1024];               /* --zk; "" */
    char cluster[72];                  /* --cluster */
    uint32_t group;                    /* --group; >= 1 when zk_hosts is set */
    int zk_session_timeout_ms;         /* --zk-session-timeout-ms; 4000 */
    char advertise[BC_HOST_MAX];       /* --advertise: host peers and clients reach us at */
    bool forward;                      /* --no-forward clears; true */
    bool write_fencing;                /* --no-write-fencing clears; true */
    uint32_t forward_timeout_ms;       /* --forward-timeout-ms; 2000 */
    bc_repl_mode_t replication;        /* --replication: async (default) or sync */
    uint32_t repl_sync_timeout_ms;     /* --repl-sync-timeout-ms; 500 */
    uint32_t repl_backlog_mb;          /* --repl-backlog-mb; 64 */
    uint32_t repl_max_lag_mb;          /* --repl-max-lag-mb; 8, 0 = no bound */
    /* bucket migrations into this node (migrate/migrate.h); "migration":
     * max_imports (--migrate-max-imports; 48), import_timeout_ms
     * (--migrate-import-timeout-ms; 60000), catchup_ms
     * (--migrate-catchup-ms; 50) */
    bc_node_migrate_settings_t migrate;

    /* process */
    int log_level;                     /* bc_log_level_t; info */
    bool daemonize;                    /* -d */
    bool lock_memory;                  /* -k: mlockall */
    bool prealloc;                     /* -L: the cache touches its memory at start (mem.h) */
    bool enable_coredumps;             /* -r: raise RLIMIT_CORE */
    char run_as_user[64];              /* -u: switch to this user if root; "" */
    char pid_file[BC_NODE_PATH_MAX];   /* -P; "" = none */
    char config_path[BC_NODE_PATH_MAX]; /* --config; "" = none */

    /* read-through (origin/origin.h); no origin by default */
    bc_origin_config_t origin;         /* --origin, the "origin" section */
} bc_node_config_t;

typedef enum bc_node_config_action {
    BC_NODE_RUN,                       /* start the node */
    BC_NODE_SHOW_HELP,                 /* print bc_node_config_usage, exit 0 */
    BC_NODE_SHOW_VERSION,              /* print the version, exit 0 */
} bc_node_config_action_t;

/* Fills *cfg with the built-in defaults.  Never fails. */
void bc_node_config_defaults(bc_node_config_t *cfg);

/*
 * Applies a parsed JSON document over *cfg (only the fields present change).
 * doc is borrowed.  Errors: BC_ECONFIG (unknown field, wrong type, out of
 * range; the message names the file and the field).
 */
bc_status_t bc_node_config_apply_doc(bc_node_config_t *cfg, const bc_config_doc_t *doc,
                                     char *err, size_t err_len);

/*
 * Loads the JSON file at path and applies it over *cfg.  Errors: those of
 * bc_config_load (BC_EIO, BC_ETOOLARGE, BC_ECONFIG, BC_ENOMEM) and of
 * bc_node_config_apply_doc.
 */
bc_status_t bc_node_config_load_file(bc_node_config_t *cfg, const char *path, char *err,
                                     size_t err_len);

/*
 * The whole pipeline: defaults, then the file named by --config (if any,
 * wherever it appears on the line), then every other flag in order,
 * then bc_node_config_validate.  argv is borrowed and not modified.
 * *action says what main should do.  Flags that are accepted but ignored
 * are logged with log_warn.
 * Errors: BC_EINVAL (unknown flag, missing or bad flag value, stray
 * argument), plus those of bc_node_config_load_file and validate.  main
 * exits with status 2 on any of them.
 */
bc_status_t bc_node_config_parse_args(bc_node_config_t *cfg, int argc, char *const argv[],
                                       bc_node_config_action_t *action, char *err,
                                       size_t err_len);

/*
 * Cross-field checks after everything is applied: item size at most half
 * the memory (memcached's rule), buckets 1..BC_MAX_NBUCKETS, and so on.
 * Errors: BC_EINVAL.
 */
bc_status_t bc_node_config_validate(const bc_node_config_t *cfg, char *err, size_t err_len);

/* Writes the --help text (every flag, its default, the file format). */
void bc_node_config_usage(FILE *out, const char *prog);

/* Logs the effective configuration at info level, one line per part. */
void bc_node_config_log(const bc_node_config_t *cfg);

/* The admin port a node on data_port gets without --admin-port. */
uint16_t bc_node_config_default_admin_port(uint16_t data_port);

#endif
