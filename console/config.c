/*
 * config.c -- see config.h.  Flags are "--name value" or "--name=value";
 * --config is applied first wherever it appears, so flags always win over
 * the file.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bc_cluster.h"
#include "bc_log.h"
#include "migrate_pool.h"

static const char *const log_levels[] = {"error", "warn", "info", "debug", "trace", NULL};

void
bc_console_cfg_defaults(bc_console_cfg_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->session_timeout_ms = BC_CONSOLE_DEFAULT_SESSION_MS;
    snprintf(cfg->admin_listen, sizeof(cfg->admin_listen), "127.0.0.1");
    cfg->admin_port = BC_CONSOLE_DEFAULT_ADMIN_PORT;
    cfg->orphan_grace_ms = -1;
    cfg->migrations_parallel = BC_CONSOLE_DEFAULT_MIG_PARALLEL;
    cfg->migration_timeout_ms = BC_CONSOLE_DEFAULT_MIG_TIMEOUT_MS;
    cfg->migrations_precopy = true;
    cfg->precopy_ahead = BC_MIG_PRECOPY_AHEAD;
    cfg->stats_interval_ms = 2000;
    cfg->backup_lag_warn_ms = 5000;
    cfg->migration_stuck_ms = 120000;
    cfg->log_level = BC_LOG_INFO;
    cfg->max_conns = 2048;
    cfg->max_conns_per_ip = 256;
}

/* A configuration error: the reason in err, BC_EINVAL returned. */
#define cfg_fail(err, err_len, ...) bc_fail((err), (err_len), BC_EINVAL, __VA_ARGS__)

bc_status_t
bc_console_cfg_apply_doc(bc_console_cfg_t *cfg, const bc_config_doc_t *doc, char *err, size_t err_len)
{
    static const char *const root_fields[] = {"zookeeper", "admin", "orphan_grace_ms", "migrations",
                                              "log", "nodes", NULL};
    static const char *const nodes_fields[] = {"tls_ca_file", NULL};
    static const char *const mig_fields[] = {"parallel", "timeout_ms", "precopy", "precopy_ahead",
                                             NULL};
    static const char *const zk_fields[] = {"hosts", "cluster", "session_timeout_ms", "auth_file",
                                            NULL};
    static const char *const admin_fields[] = {"listen", "port", "advertise", "auth_token_file",
                                               "insecure_no_auth", "max_connections",
                                               "max_connections_per_ip", NULL};
    static const char *const log_fields[] = {"level", NULL};
    bc_status_t st;
    int64_t v;
    bool found;
    int idx;

    if ((st = bc_config_check_fields(doc, NULL, root_fields, err, err_len)) != BC_OK ||
        (st = bc_config_check_fields(doc, "zookeeper", zk_fields, err, err_len)) != BC_OK ||
        (st = bc_config_check_fields(doc, "nodes", nodes_fields, err, err_len)) != BC_OK ||
        (st = bc_config_check_fields(doc, "admin", admin_fields, err, err_len)) != BC_OK ||
        (st = bc_config_check_fields(doc, "log", log_fields, err, err_len)) != BC_OK ||
        (st = bc_config_check_fields(doc, "migrations", mig_fields, err, err_len)) != BC_OK) {
        return st;
    }
    if ((st = bc_config_get_string(doc, "zookeeper.hosts", cfg->zk_hosts, sizeof(cfg->zk_hosts),
                                   false, NULL, err, err_len)) != BC_OK ||
        (st = bc_config_get_string(doc, "zookeeper.cluster", cfg->cluster, sizeof(cfg->cluster),
                                   false, NULL, err, err_len)) != BC_OK ||
        (st = bc_config_get_string(doc, "admin.listen", cfg->admin_listen,
                                   sizeof(cfg->admin_listen), false, NULL, err, err_len)) != BC_OK ||
        (st = bc_config_get_string(doc, "admin.advertise", cfg->advertise, sizeof(cfg->advertise),
                                   true, NULL, err, err_len)) != BC_OK) {
        return st;
    }
    if ((st = bc_config_get_int(doc, "zookeeper.session_timeout_ms", 1000, 60000, &v, &found, err,
                                err_len)) != BC_OK) return st;
    if (found) cfg->session_timeout_ms = (int)v;
    if ((st = bc_config_get_int(doc, "admin.port", 0, 65535, &v, &found, err, err_len)) != BC_OK) return st;
    if (found) {
        cfg->admin_port = (uint16_t)v;
        cfg->admin_port_given = true;
    }
    if ((st = bc_config_get_int(doc, "orphan_grace_ms", -1, INT64_C(86400000) * 30, &v, &found, err,
                                err_len)) != BC_OK) return st;
    if (found) cfg->orphan_grace_ms = v;
    if ((st = bc_config_get_int(doc, "migrations.parallel", 0, BC_MIG_MAX_PARALLEL, &v, &found, err,
                                err_len)) != BC_OK) return st;
    if (found) cfg->migrations_parallel = (uint32_t)v;
    if ((st = bc_config_get_int(doc, "migrations.timeout_ms", 100, 3600000, &v, &found, err,
                                err_len)) != BC_OK) return st;
    if (found) cfg->migration_timeout_ms = (uint32_t)v;
    if ((st = bc_config_get_bool(doc, "migrations.precopy", &cfg->migrations_precopy, NULL, err,
                                 err_len)) != BC_OK) return st;
    if ((st = bc_config_get_int(doc, "migrations.precopy_ahead", 1, BC_MIG_PRECOPY_AHEAD_MAX, &v,
                                &found, err, err_len)) != BC_OK) return st;
    if (found) cfg->precopy_ahead = (uint32_t)v;
    if ((st = bc_config_get_enum(doc, "log.level", log_levels, &idx, &found, err, err_len)) != BC_OK) return st;
    if (found) cfg->log_level = idx;
    /* security (docs/security.md) */
    if ((st = bc_config_get_string(doc, "admin.auth_token_file", cfg->auth_token_file,
                                   sizeof(cfg->auth_token_file), false, NULL, err, err_len)) != BC_OK ||
        (st = bc_config_get_bool(doc, "admin.insecure_no_auth", &cfg->insecure_no_auth, NULL, err,
                                 err_len)) != BC_OK ||
        (st = bc_config_get_string(doc, "zookeeper.auth_file", cfg->zk_auth_file,
                                   sizeof(cfg->zk_auth_file), false, NULL, err, err_len)) != BC_OK ||
        (st = bc_config_get_string(doc, "nodes.tls_ca_file", cfg->node_tls_ca_file,
                                   sizeof(cfg->node_tls_ca_file), false, NULL, err,
                                   err_len)) != BC_OK) {
        return st;
    }
    if ((st = bc_config_get_int(doc, "admin.max_connections", 1, 100000, &v, &found, err,
                                err_len)) != BC_OK) return st;
    if (found) cfg->max_conns = (uint32_t)v;
    if ((st = bc_config_get_int(doc, "admin.max_connections_per_ip", 1, 100000, &v, &found, err,
                                err_len)) != BC_OK) return st;
    if (found) cfg->max_conns_per_ip = (uint32_t)v;
    return BC_OK;
}

typedef enum { O_ZK, O_CLUSTER, O_SESSION, O_ADMIN_PORT, O_ADMIN_LISTEN, O_ADVERTISE, O_GRACE,
               O_MIG_PARALLEL, O_MIG_TIMEOUT, O_NO_PRECOPY, O_PRECOPY_AHEAD, O_LOG, O_CONFIG, O_HELP,
               O_VERSION, O_STATS_INTERVAL, O_LAG_WARN, O_STUCK, O_AUTH_TOKEN_FILE,
               O_INSECURE_NO_AUTH, O_ZK_AUTH_FILE, O_NODE_TLS_CA_FILE } opt_t;

static const struct {
    const char *name;
    opt_t id;
    bool arg;
    const char *help;
} options[] = {
    {"zk", O_ZK, true, "ZooKeeper hosts, host:port[,host:port...] (required)"},
    {"cluster", O_CLUSTER, true, "cluster name (required; create it with `bucketcache cluster create`)"},
    {"session-timeout-ms", O_SESSION, true, "ZooKeeper session timeout, 1000..60000 (default 4000)"},
    {"admin-port", O_ADMIN_PORT, true, "HTTP API and dashboard port (default: 11290, or the next "
                                       "free port above it; 0 = any free port)"},
    {"admin-listen", O_ADMIN_LISTEN, true, "HTTP API listen address (default 127.0.0.1)"},
    {"advertise", O_ADVERTISE, true, "host other processes reach the API at (default: the listen address)"},
    {"orphan-grace-ms", O_GRACE, true, "hand a down group's buckets to the others after this long "
                                       "(default -1: wait for the group)"},
    {"migrations-parallel", O_MIG_PARALLEL, true, "buckets copied at once, 0..16 (default 4; "
                                                  "0 = no migrations: data-carrying moves wait)"},
    {"migration-timeout-ms", O_MIG_TIMEOUT, true, "a bucket copy that makes no progress for this "
                                                  "long is called off and retried (default 30000)"},
    {"no-precopy", O_NO_PRECOPY, false, "do not precopy moving buckets while writable: "
                                        "copy them whole while read-only"},
    {"precopy-ahead", O_PRECOPY_AHEAD, true, "buckets precopied ahead per copy slot, 1..8 "
                                             "(default 4; more: faster, more CPU meanwhile)"},
    {"auth-token-file", O_AUTH_TOKEN_FILE, true, "the admin token (docs/security.md): required "
                                                 "for every change, and for all but /health and "
                                                 "the dashboard page beyond loopback; re-read on "
                                                 "SIGHUP"},
    {"insecure-no-auth", O_INSECURE_NO_AUTH, false, "let the API listen beyond loopback WITHOUT a "
                                                    "token: anyone who reaches it runs the cluster"},
    {"zk-auth-file", O_ZK_AUTH_FILE, true, "ZooKeeper credentials (user:password) of a cluster "
                                           "secured with digest ACLs"},
    {"node-tls-ca-file", O_NODE_TLS_CA_FILE, true, "the nodes run with -Z: their admin ports "
                                                   "serve HTTPS, with certificates of this CA "
                                                   "(PEM) that name the addresses the nodes "
                                                   "advertise (docs/security.md)"},
    {"log-level", O_LOG, true, "error|warn|info|debug|trace (default info)"},
    {"stats-interval-ms", O_STATS_INTERVAL, true, "how often the nodes' statistics are sampled "
                                                  "for the dashboard and /metrics, 200..60000 "
                                                  "(default 2000)"},
    {"backup-lag-warn-ms", O_LAG_WARN, true, "a backup further behind than this is a warning "
                                             "(default 5000)"},
    {"migration-stuck-ms", O_STUCK, true, "pending migrations without progress this long are a "
                                          "warning (default 120000)"},
    {"config", O_CONFIG, true, "JSON configuration file (flags override it)"},
    {"help", O_HELP, false, "show this help"},
    {"version", O_VERSION, false, "show the version"},
};
#define NOPTIONS (sizeof(options) / sizeof(options[0]))

void
bc_console_cfg_usage(FILE *out, const char *prog)
{
    fprintf(out, "usage: %s --zk HOSTS --cluster NAME [options]\n\n"
                 "The bucketcache console: elects one active console through ZooKeeper, watches\n"
                 "the node groups, keeps the c/m/d bucket tables, and serves an HTTP API and a\n"
                 "dashboard.\n\noptions:\n", prog);
    for (size_t i = 0; i < NOPTIONS; i++) {
        char left[48];
        snprintf(left, sizeof(left), "--%s%s", options[i].name, options[i].arg ? " VALUE" : "");
        fprintf(out, "  %-28s %s\n", left, options[i].help);
    }
}

static bc_status_t
apply_flag(bc_console_cfg_t *cfg, opt_t id, const char *name, const char *val, char *err, size_t len)
{
    int64_t v;
    switch (id) {
    case O_ZK:
        if (val[0] == '\0' || strlen(val) >= sizeof(cfg->zk_hosts)) return cfg_fail(err, len, "--zk: expected host:port[,host:port...]");
        snprintf(cfg->zk_hosts, sizeof(cfg->zk_hosts), "%s", val);
        return BC_OK;
    case O_CLUSTER:
        if (!bc_cluster_name_valid(val)) return cfg_fail(err, len, "--cluster: invalid name \"%.80s\" (1-64 of A-Z a-z 0-9 _ . -)", val);
        snprintf(cfg->cluster, sizeof(cfg->cluster), "%s", val);
        return BC_OK;
    case O_SESSION:
        if (bc_parse_int(val, 1000, 60000, &v) != BC_OK) return cfg_fail(err, len, "--%s: expected 1000..60000, got \"%.40s\"", name, val);
        cfg->session_timeout_ms = (int)v;
        return BC_OK;
    case O_ADMIN_PORT:
        if (bc_parse_int(val, 0, 65535, &v) != BC_OK) return cfg_fail(err, len, "--%s: expected a port 0..65535, got \"%.40s\"", name, val);
        cfg->admin_port = (uint16_t)v;
        cfg->admin_port_given = true;
        return BC_OK;
    case O_ADMIN_LISTEN:
        if (val[0] == '\0' || strlen(val) >= sizeof(cfg->admin_listen)) return cfg_fail(err, len, "--%s: expected an address", name);
        snprintf(cfg->admin_listen, sizeof(cfg->admin_listen), "%s", val);
        return BC_OK;
    case O_ADVERTISE:
        if (strlen(val) >= sizeof(cfg->advertise)) return cfg_fail(err, len, "--%s: too long", name);
        snprintf(cfg->advertise, sizeof(cfg->advertise), "%s", val);
        return BC_OK;
    case O_GRACE:
        if (bc_parse_int(val, -1, INT64_C(86400000) * 30, &v) != BC_OK) return cfg_fail(err, len, "--%s: expected -1 or milliseconds, got \"%.40s\"", name, val);
        cfg->orphan_grace_ms = v;
        return BC_OK;
    case O_MIG_PARALLEL:
        if (bc_parse_int(val, 0, BC_MIG_MAX_PARALLEL, &v) != BC_OK) return cfg_fail(err, len, "--%s: expected 0..%u, got \"%.40s\"", name, BC_MIG_MAX_PARALLEL, val);
        cfg->migrations_parallel = (uint32_t)v;
        return BC_OK;
    case O_MIG_TIMEOUT:
        if (bc_parse_int(val, 100, 3600000, &v) != BC_OK) return cfg_fail(err, len, "--%s: expected 100..3600000 ms, got \"%.40s\"", name, val);
        cfg->migration_timeout_ms = (uint32_t)v;
        return BC_OK;
    case O_NO_PRECOPY:
        cfg->migrations_precopy = false;
        return BC_OK;
    case O_PRECOPY_AHEAD:
        if (bc_parse_int(val, 1, BC_MIG_PRECOPY_AHEAD_MAX, &v) != BC_OK) return cfg_fail(err, len, "--%s: expected 1..%u, got \"%.40s\"", name, BC_MIG_PRECOPY_AHEAD_MAX, val);
        cfg->precopy_ahead = (uint32_t)v;
        return BC_OK;
    case O_AUTH_TOKEN_FILE:
        if (val[0] == '\0' || strlen(val) >= sizeof(cfg->auth_token_file)) return cfg_fail(err, len, "--%s: expected a file name", name);
        snprintf(cfg->auth_token_file, sizeof(cfg->auth_token_file), "%s", val);
        return BC_OK;
    case O_INSECURE_NO_AUTH:
        cfg->insecure_no_auth = true;
        return BC_OK;
    case O_ZK_AUTH_FILE:
        if (val[0] == '\0' || strlen(val) >= sizeof(cfg->zk_auth_file)) return cfg_fail(err, len, "--%s: expected a file name", name);
        snprintf(cfg->zk_auth_file, sizeof(cfg->zk_auth_file), "%s", val);
        return BC_OK;
    case O_NODE_TLS_CA_FILE:
        if (val[0] == '\0' || strlen(val) >= sizeof(cfg->node_tls_ca_file)) return cfg_fail(err, len, "--%s: expected a file name", name);
        snprintf(cfg->node_tls_ca_file, sizeof(cfg->node_tls_ca_file), "%s", val);
        return BC_OK;
    case O_STATS_INTERVAL:
        if (bc_parse_int(val, 200, 60000, &v) != BC_OK) return cfg_fail(err, len, "--%s: expected 200..60000 ms, got \"%.40s\"", name, val);
        cfg->stats_interval_ms = (uint32_t)v;
        return BC_OK;
    case O_LAG_WARN:
        if (bc_parse_int(val, 1, 86400000, &v) != BC_OK) return cfg_fail(err, len, "--%s: expected 1..86400000 ms, got \"%.40s\"", name, val);
        cfg->backup_lag_warn_ms = (uint32_t)v;
        return BC_OK;
    case O_STUCK:
        if (bc_parse_int(val, 1000, 86400000, &v) != BC_OK) return cfg_fail(err, len, "--%s: expected 1000..86400000 ms, got \"%.40s\"", name, val);
        cfg->migration_stuck_ms = (uint32_t)v;
        return BC_OK;
    case O_LOG: {
        int lvl = bc_log_level_parse(val);
        if (lvl < 0) return cfg_fail(err, len, "--%s: expected error|warn|info|debug|trace, got \"%.40s\"", name, val);
        cfg->log_level = lvl;
        return BC_OK;
    }
    default:
        return BC_OK;
    }
}

bc_status_t
bc_console_cfg_parse_args(bc_console_cfg_t *cfg, int argc, char *const argv[],
                          bc_console_action_t *action, char *err, size_t err_len)
{
    *action = BC_CONSOLE_RUN;
    bc_console_cfg_defaults(cfg);
    for (int pass = 1; pass <= 2; pass++) {
        for (int i = 1; i < argc; i++) {
            const char *a = argv[i];
            if (strcmp(a, "-h") == 0) a = "--help";
            if (strncmp(a, "--", 2) != 0) return cfg_fail(err, err_len, "unexpected argument \"%.80s\" (see --help)", a);
            char name[40];
            const char *eq = strchr(a + 2, '=');
            size_t nlen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            if (nlen >= sizeof(name)) return cfg_fail(err, err_len, "unknown flag \"%.40s\" (see --help)", a);
            memcpy(name, a + 2, nlen);
            name[nlen] = '\0';
            size_t k = 0;
            while (k < NOPTIONS && strcmp(options[k].name, name) != 0) k++;
            if (k == NOPTIONS) return cfg_fail(err, err_len, "unknown flag \"--%s\" (see --help)", name);
            const char *val = NULL;
            if (options[k].arg) {
                if (eq) val = eq + 1;
                else if (i + 1 < argc) val = argv[++i];
                else return cfg_fail(err, err_len, "--%s needs a value", name);
            } else if (eq) {
                return cfg_fail(err, err_len, "--%s takes no value", name);
            }
            if (pass == 1) {
                if (options[k].id == O_HELP) *action = BC_CONSOLE_SHOW_HELP;
                if (options[k].id == O_VERSION && *action == BC_CONSOLE_RUN) *action = BC_CONSOLE_SHOW_VERSION;
                if (options[k].id == O_CONFIG) {
                    bc_config_doc_t *doc;
                    bc_status_t st = bc_config_load(val, 0, &doc, err, err_len);
                    if (st != BC_OK) return st;
                    st = bc_console_cfg_apply_doc(cfg, doc, err, err_len);
                    bc_config_free(doc);
                    if (st != BC_OK) return st;
                }
            } else {
                bc_status_t st = apply_flag(cfg, options[k].id, name, val, err, err_len);
                if (st != BC_OK) return st;
            }
        }
        if (*action != BC_CONSOLE_RUN) return BC_OK;
    }
    if (cfg->zk_hosts[0] == '\0') return cfg_fail(err, err_len, "--zk is required (ZooKeeper hosts)");
    if (!bc_cluster_name_valid(cfg->cluster)) return cfg_fail(err, err_len, "--cluster is required (a valid cluster name)");
    if (cfg->insecure_no_auth && cfg->auth_token_file[0] != '\0') {
        return cfg_fail(err, err_len, "--insecure-no-auth and --auth-token-file contradict each other: give one");
    }
    return BC_OK;
}
