/*
 * config.h -- bucketcache-console's configuration.
 *
 *   built-in defaults  <  --config FILE (JSON)  <  command-line flags
 *
 * File format (unknown fields are errors, messages name file and field):
 *
 *   {
 *     "zookeeper": {"hosts": "127.0.0.1:2181", "cluster": "main",
 *                   "session_timeout_ms": 4000, "auth_file": "/etc/bucketcache/zk-auth"},
 *     "admin":     {"listen": "127.0.0.1", "port": 11290, "advertise": "10.0.0.5",
 *                   "auth_token_file": "/etc/bucketcache/admin-token",
 *                   "insecure_no_auth": false, "max_connections": 2048,
 *                   "max_connections_per_ip": 256},
 *     "nodes":     {"tls_ca_file": "/etc/bucketcache/ca.crt"},
 *     "orphan_grace_ms": -1,
 *     "migrations": {"parallel": 4, "timeout_ms": 30000, "precopy": true,
 *                   "precopy_ahead": 4},
 *     "log":       {"level": "info"}
 *   }
 */
#ifndef BC_CONSOLE_CONFIG_H
#define BC_CONSOLE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bc_config.h"
#include "bc_status.h"

/* The API port when none is configured: 11290, or the first free one of
 * the BC_CONSOLE_ADMIN_PORT_TRIES ports from there, so consoles started
 * side by side on one host with only --zk/--cluster all run.  Others find
 * the port in the console's election record in ZooKeeper. */
#define BC_CONSOLE_DEFAULT_ADMIN_PORT 11290u
#define BC_CONSOLE_ADMIN_PORT_TRIES 100u
#define BC_CONSOLE_DEFAULT_SESSION_MS 4000
#define BC_CONSOLE_DEFAULT_MIG_PARALLEL 4u
#define BC_CONSOLE_DEFAULT_MIG_TIMEOUT_MS 30000u

typedef struct bc_console_cfg {
    char zk_hosts[1024];
    char cluster[72];
    int session_timeout_ms;        /* 1000..60000 */
    char admin_listen[BC_HOST_MAX];
    uint16_t admin_port;
    bool admin_port_given;         /* set by flag or file: that port or fail */
    char advertise[BC_HOST_MAX];   /* host others reach the API at; "" = derive */
    int64_t orphan_grace_ms;       /* -1 = orphans wait for their group */
    uint32_t migrations_parallel;  /* 0..16; 0 = no migrations */
    uint32_t migration_timeout_ms; /* 100..3600000 */
    bool migrations_precopy;       /* precopy buckets before their read-only copy */
    uint32_t precopy_ahead;        /* 1..8: buckets precopied ahead per copy slot */
    uint32_t stats_interval_ms;    /* 200..60000: the nodes' statistics sampled (observe.h) */
    uint32_t backup_lag_warn_ms;   /* a backup further behind is a warning */
    uint32_t migration_stuck_ms;   /* pending moves without progress this long: a warning */
    int log_level;
    /* -- security (docs/security.md) -- */
    char auth_token_file[1024];    /* --auth-token-file: the admin token; "" = none */
    bool insecure_no_auth;         /* --insecure-no-auth: API beyond loopback, no token */
    char zk_auth_file[1024];       /* --zk-auth-file: "user:password"; "" = none */
    char node_tls_ca_file[1024];   /* --node-tls-ca-file: the nodes' admin ports are HTTPS
                                    * (nodes run -Z), their certificates of this CA; "" = HTTP */
    uint32_t max_conns;            /* API connections; 2048 */
    uint32_t max_conns_per_ip;     /* API connections per peer address; 256 */
} bc_console_cfg_t;

typedef enum bc_console_action {
    BC_CONSOLE_RUN,
    BC_CONSOLE_SHOW_HELP,
    BC_CONSOLE_SHOW_VERSION,
} bc_console_action_t;

void bc_console_cfg_defaults(bc_console_cfg_t *cfg);

/* Errors: BC_ECONFIG and bc_config_load's (message names file and field). */
bc_status_t bc_console_cfg_apply_doc(bc_console_cfg_t *cfg, const bc_config_doc_t *doc, char *err,
                                     size_t err_len);

/*
 * Defaults, then --config FILE, then the other flags, then validation.
 * Errors: BC_EINVAL (bad flag or value; err says which), file errors.
 */
bc_status_t bc_console_cfg_parse_args(bc_console_cfg_t *cfg, int argc, char *const argv[],
                                      bc_console_action_t *action, char *err, size_t err_len);

void bc_console_cfg_usage(FILE *out, const char *prog);

#endif
