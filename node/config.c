/*
 * config.c -- bucketcache-node's configuration (see config.h).
 *
 * HOW
 *   Every flag is one row of node_options[]: short name, long name, an
 *   optional second long name (memcached's spelling, e.g. --memory-limit
 *   next to our --memory), its argument, what it does, and a help line.
 *   The parser and the --help text both walk that table.
 *
 *   The command line is walked twice:
 *
 *     pass 1  syntax only: unknown flags, missing values; remembers
 *             --config, --help, --version
 *     (load --config FILE over the defaults)
 *     pass 2  applies every other flag in order, over the file's values
 *
 *   so "--config f.json -p 1" and "-p 1 --config f.json" both give port 1:
 *   flags always win over the file, as people expect from daemons.
 *
 *   The parser is hand-written rather than getopt_long: getopt prints its own
 *   messages (we want one format, naming the flag and the bad value, exit
 *   code 2), and GNU getopt permutes argv.  It accepts the forms memcached
 *   users write: "-p 11211", "-p11211", "-vv", "-dv", "--port 11211",
 *   "--port=11211", and "--" to end the flags.
 *
 * MEMCACHED COMPATIBILITY
 *   Flags with memcached's meaning: -p -l -m -t -c -I -v -b -d -P -u -U -k -r
 *   -V -h.  Flags that only tune memcached's internal data structures (slab
 *   factor -f, -n, large pages -L, -o extended options, -R, -C, -D, -X, -W,
 *   -A) are accepted and ignored with a warning: a service file carrying them
 *   still starts.  Flags whose feature the node lacks and whose absence a
 *   client would notice -- UNIX sockets (-s, -a), SASL/auth (-S, -Y), TLS
 *   (-Z), binary protocol (-B binary), no-eviction mode (-M), flush_all off
 *   (-F), memory files (-e) -- are refused: silently serving without
 *   authentication or with different semantics would be worse than not
 *   starting.
 */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bc_cluster.h"
#include "bc_hash.h"
#include "bc_log.h"

static const char *const eviction_names[] = {"lru", "lfu", "fifo", "s3fifo", NULL};
static const char *const log_level_names[] = {"error", "warn", "info", "debug", "trace", NULL};

typedef enum opt_id {
    OPT_PORT,
    OPT_LISTEN,
    OPT_MEMORY,
    OPT_THREADS,
    OPT_CONNS,
    OPT_ITEM_SIZE,
    OPT_VERBOSE,
    OPT_BACKLOG,
    OPT_DAEMON,
    OPT_PIDFILE,
    OPT_USER,
    OPT_UDP,
    OPT_LOCK_MEMORY,
    OPT_PREALLOC,
    OPT_COREDUMPS,
    OPT_PROTOCOL,
    OPT_ADMIN_PORT,
    OPT_ADMIN_LISTEN,
    OPT_EVICTION,
    OPT_BUCKETS,
    OPT_LOG_LEVEL,
    OPT_ZK,
    OPT_CLUSTER,
    OPT_GROUP,
    OPT_ZK_SESSION,
    OPT_ADVERTISE,
    OPT_NO_FORWARD,
    OPT_NO_WRITE_FENCING,
    OPT_FORWARD_TIMEOUT,
    OPT_ORIGIN,
    OPT_REPLICATION,
    OPT_REPL_SYNC_TIMEOUT,
    OPT_REPL_BACKLOG,
    OPT_REPL_MAX_LAG,
    OPT_MIGRATE_MAX_IMPORTS,
    OPT_MIGRATE_IMPORT_TIMEOUT,
    OPT_MIGRATE_CATCHUP,
    OPT_AUTH_TOKEN_FILE,
    OPT_INSECURE_NO_AUTH,
    OPT_ZK_AUTH_FILE,
    OPT_CLUSTER_SECRET_FILE,
    OPT_INSECURE_NO_PEER_AUTH,
    OPT_AUTH_FILE,      /* -Y: memcached's ASCII authentication */
    OPT_TLS,            /* -Z: TLS on the data port */
    OPT_EXTENDED,       /* -o: memcached's extended options; idle_timeout is ours */
    OPT_CONFIG,
    OPT_HELP,
    OPT_VERSION,
    OPT_IGNORED,        /* memcached tuning flag: warn and continue */
    OPT_REFUSED,        /* memcached feature we lack: error */
} opt_id_t;

typedef struct node_option {
    char short_name;          /* 0 = none */
    const char *long_name;    /* NULL = none */
    const char *alias;        /* memcached's long spelling, or NULL */
    const char *arg;          /* metavar; NULL = takes no value */
    opt_id_t id;
    const char *help;
} node_option_t;

/*
 * The one description of the command line.  Order = order in --help.
 * The user/daemon/pid-file/lock/core flags are carried in the config and
 * acted upon by main.c.
 */
static const node_option_t node_options[] = {
    {'p', "port", NULL, "NUM", OPT_PORT,
     "TCP port of the memcached protocol (default 11211; 0 = any free port)"},
    {'l', "listen", NULL, "ADDR", OPT_LISTEN,
     "address to listen on (default 0.0.0.0); with -Z, notls:HOST:PORT adds a plain "
     "listener (up to 4; comma-separated or repeated)"},
    {'Z', "enable-ssl", NULL, NULL, OPT_TLS,
     "TLS on the data port: -o ssl_chain_cert=FILE,ssl_key=FILE[,ssl_ca_cert=FILE,"
     "ssl_verify_mode=0..3,ssl_min_version=0..3,ssl_ciphers=LIST]; certificates re-read by "
     "refresh_certs and SIGHUP.  With --zk (needs ssl_ca_cert, the cluster's CA): TLS to the "
     "other nodes too, and the admin port serves HTTPS (migration copies; docs/security.md)"},
    {'m', "memory", "memory-limit", "MB", OPT_MEMORY,
     "cache memory in megabytes, or with a k/m/g suffix (default 64)"},
    {'t', "threads", NULL, "NUM", OPT_THREADS,
     "worker threads (default: number of cores, at most 64; max 256)"},
    {'c', "max-connections", "conn-limit", "NUM", OPT_CONNS,
     "maximum simultaneous client connections (default 1024)"},
    {'I', "max-item-size", NULL, "SIZE", OPT_ITEM_SIZE,
     "largest item, with k/m suffix (default 1m, min 1k, max 1024m, at most half of -m)"},
    {'v', "verbose", NULL, NULL, OPT_VERBOSE,
     "more output; -vv also logs debug messages, -vvv traces"},
    {'b', "listen-backlog", NULL, "NUM", OPT_BACKLOG,
     "listen(2) backlog of the data port (default 1024)"},
    {'d', "daemon", NULL, NULL, OPT_DAEMON,
     "run in the background; the log is discarded unless -v is given (prefer a "
     "service manager)"},
    {'P', "pidfile", "pid-file", "FILE", OPT_PIDFILE,
     "write the process id to FILE (removed at a clean exit)"},
    {'u', "user", NULL, "USER", OPT_USER,
     "when started as root, switch to USER after binding the ports"},
    {'U', "udp-port", NULL, "NUM", OPT_UDP,
     "accepted for memcached compatibility; UDP is not served (0 = off is the only mode)"},
    {'k', "lock-memory", NULL, NULL, OPT_LOCK_MEMORY,
     "lock all memory with mlockall(2) (warns if not permitted)"},
    {'L', "prealloc", "enable-largepages", NULL, OPT_PREALLOC,
     "take and touch the whole -m at start, so storing never waits for fresh pages; the "
     "memory stays with the node (huge pages are not requested)"},
    {'r', "enable-coredumps", NULL, NULL, OPT_COREDUMPS,
     "raise the core file size limit to the maximum"},
    {'B', "protocol", NULL, "NAME", OPT_PROTOCOL,
     "ascii or auto (both mean the text protocol); binary is not supported"},
    {0, "admin-port", NULL, "NUM", OPT_ADMIN_PORT,
     "HTTP admin port: /health /stats /metrics /v1/keys (default: the data port + 69, "
     "so 11211 gives 11280 and 11212 gives 11281; 0 = disabled)"},
    {0, "admin-listen", NULL, "ADDR", OPT_ADMIN_LISTEN,
     "address of the admin port (default 127.0.0.1)"},
    {0, "eviction", NULL, "POLICY", OPT_EVICTION,
     "eviction policy: s3fifo, lru, lfu or fifo (default s3fifo)"},
    {0, "buckets", NULL, "N", OPT_BUCKETS,
     "number of buckets keys hash into (default 1024, max 65536)"},
    {0, "log-level", NULL, "LEVEL", OPT_LOG_LEVEL,
     "error, warn, info, debug or trace (default info)"},
    {0, "zk", NULL, "HOSTS", OPT_ZK,
     "join a cluster through these ZooKeeper hosts, host:port[,host:port...] "
     "(default: standalone, every bucket served here)"},
    {0, "cluster", NULL, "NAME", OPT_CLUSTER,
     "cluster name, with --zk (create it with `bucketcache cluster create`)"},
    {0, "group", NULL, "GID", OPT_GROUP, "group id (>= 1) this node belongs to, with --zk"},
    {0, "zk-session-timeout-ms", NULL, "MS", OPT_ZK_SESSION,
     "ZooKeeper session timeout, 1000..60000 (default 4000): how fast a dead node is noticed"},
    {0, "advertise", NULL, "HOST", OPT_ADVERTISE,
     "host clients and peers reach this node at (default: the listen address, or "
     "127.0.0.1 when listening on all)"},
    {0, "no-forward", NULL, NULL, OPT_NO_FORWARD,
     "with --zk: refuse keys of buckets this node does not serve (SERVER_ERROR MOVED ...) "
     "instead of forwarding them to the owner's primary"},
    {0, "no-write-fencing", NULL, NULL, OPT_NO_WRITE_FENCING,
     "with --zk: keep accepting writes as primary while ZooKeeper is unreachable (by default "
     "a primary stops before its session could expire, so a partitioned primary never takes "
     "writes a promoted backup does not see; see docs/replication.md)"},
    {0, "forward-timeout-ms", NULL, "MS", OPT_FORWARD_TIMEOUT,
     "how long a forwarded request waits for the owner's reply, 100..60000 (default 2000)"},
    {0, "origin", NULL, "URL", OPT_ORIGIN,
     "read-through: fill a miss of a key this node owns from URL, a template holding {key} "
     "(e.g. http://resize:8000/v1/{key}); PREFIX=URL for keys starting with PREFIX "
     "(repeatable); more settings in the file's \"origin\" section (docs/origin.md)"},
    {0, "replication", NULL, "MODE", OPT_REPLICATION,
     "with --zk: async (default: a write is answered once the primary applied it) or sync "
     "(answered once every backup in the sync set has it); give every node of a group the "
     "same mode"},
    {0, "repl-sync-timeout-ms", NULL, "MS", OPT_REPL_SYNC_TIMEOUT,
     "sync mode: a backup that does not acknowledge a write within this is dropped from the "
     "sync set until it catches up, 10..60000 (default 500)"},
    {0, "repl-backlog-mb", NULL, "MB", OPT_REPL_BACKLOG,
     "replication backlog kept for backups that reconnect or resync, 1..4096 (default 64)"},
    {0, "repl-max-lag-mb", NULL, "MB", OPT_REPL_MAX_LAG,
     "async mode: writes wait while a backup trails by more than this, which bounds what a "
     "failover can lose, 0..4096 (default 8; 0 = no bound)"},
    {0, "migrate-max-imports", NULL, "N", OPT_MIGRATE_MAX_IMPORTS,
     "with --zk: bucket copies this node takes in at once, 1..1024 (default 48: as many as "
     "the console asks for; it retries the ones refused)"},
    {0, "migrate-import-timeout-ms", NULL, "MS", OPT_MIGRATE_IMPORT_TIMEOUT,
     "with --zk: one bucket copy gives up after this long (the wait for its source, retries "
     "and the longest stall of its transfer), 1000..3600000 (default 60000)"},
    {0, "migrate-catchup-ms", NULL, "MS", OPT_MIGRATE_CATCHUP,
     "with --zk: a bucket copied ahead of its move fetches the changes made at its source "
     "this often, 10..3600000 (default 50; docs/zookeeper.md)"},
    {0, "auth-token-file", NULL, "FILE", OPT_AUTH_TOKEN_FILE,
     "the admin token (docs/security.md): required by the admin port for every change, and "
     "for everything but /health when it listens beyond loopback; re-read on SIGHUP"},
    {0, "insecure-no-auth", NULL, NULL, OPT_INSECURE_NO_AUTH,
     "let the admin port listen beyond loopback WITHOUT a token: anyone who reaches it "
     "controls the node"},
    {0, "zk-auth-file", NULL, "FILE", OPT_ZK_AUTH_FILE,
     "ZooKeeper credentials (user:password) of a cluster secured with digest ACLs"},
    {'Y', "auth-file", NULL, "FILE", OPT_AUTH_FILE,
     "memcached's ASCII authentication: every data-port connection first sends "
     "\"set <any> 0 0 <n>\" with the data \"<user> <password>\", of FILE's user:password "
     "lines (at most 8; mode 0600); re-read on SIGHUP (default: off)"},
    {0, "cluster-secret-file", NULL, "FILE", OPT_CLUSTER_SECRET_FILE,
     "with --zk: the cluster secret every node of the cluster shares (openssl rand -hex 32; "
     "credential:NAME reads a systemd credential): forwarding, replication and migration "
     "links prove it to each other, never sending it (docs/security.md); required in a "
     "cluster; re-read on SIGHUP"},
    {0, "insecure-no-peer-auth", NULL, NULL, OPT_INSECURE_NO_PEER_AUTH,
     "with --zk: run WITHOUT a cluster secret: anyone who reaches the data port can act as a "
     "node (forward unchecked, take a replication snapshot) and the admin port's exports "
     "are unchecked"},
    {'o', "extended", NULL, "OPTS", OPT_EXTENDED,
     "memcached's extended options, comma-separated: idle_timeout=SECONDS closes a client "
     "connection idle that long between commands (0 = never, the default); the others are "
     "accepted and ignored"},
    {0, "config", NULL, "FILE", OPT_CONFIG,
     "read settings from a JSON file first; flags override it"},
    {'h', "help", NULL, NULL, OPT_HELP, "print this help and exit"},
    {'V', "version", NULL, NULL, OPT_VERSION, "print the version and exit"},
    /* memcached tuning flags: accepted, ignored with a warning. */
    {'f', "slab-growth-factor", NULL, "NUM", OPT_IGNORED, NULL},
    {'n', "slab-min-size", NULL, "NUM", OPT_IGNORED, NULL},
    {'R', "max-reqs-per-event", NULL, "NUM", OPT_IGNORED, NULL},
    {'C', "disable-cas", NULL, NULL, OPT_IGNORED, NULL},
    {'D', NULL, NULL, "CHAR", OPT_IGNORED, NULL},
    {'X', "disable-dumping", NULL, NULL, OPT_IGNORED, NULL},
    {'W', "disable-watch", NULL, NULL, OPT_IGNORED, NULL},
    {'A', "enable-shutdown", NULL, NULL, OPT_IGNORED, NULL},
    /* memcached features the node does not have: refused. */
    {'s', "unix-socket", NULL, "FILE", OPT_REFUSED, "UNIX sockets are not supported"},
    {'a', "unix-mask", NULL, "MASK", OPT_REFUSED, "UNIX sockets are not supported"},
    {'S', "enable-sasl", NULL, NULL, OPT_REFUSED, "SASL authentication is not supported"},
    {'M', "disable-evictions", NULL, NULL, OPT_REFUSED,
     "running without eviction is not supported"},
    {'F', "disable-flush-all", NULL, NULL, OPT_REFUSED,
     "disabling flush_all is not supported"},
    {'e', "memory-file", NULL, "FILE", OPT_REFUSED, "memory files are not supported"},
};

#define NODE_OPTION_COUNT (sizeof(node_options) / sizeof(node_options[0]))

/* The migration settings' bounds: at least one import at a time, and no
 * wait longer than an hour (a test sets catch-ups that far apart to turn
 * them off). */
#define MIGRATE_IMPORTS_MIN      1
#define MIGRATE_IMPORTS_MAX      1024
#define MIGRATE_TIMEOUT_MIN_MS   1000
#define MIGRATE_CATCHUP_MIN_MS   10
#define MIGRATE_MS_MAX           3600000


static uint32_t
default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) return 4;  /* memcached's default when the count is unknown */
    if (n > (long)BC_NODE_DEFAULT_MAX_THREADS) return BC_NODE_DEFAULT_MAX_THREADS;
    return (uint32_t)n;
}

void
bc_node_config_defaults(bc_node_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->listen_addr, sizeof(cfg->listen_addr), "0.0.0.0");
    cfg->port = BC_NODE_DEFAULT_PORT;
    cfg->threads = default_threads();
    cfg->max_conns = BC_NODE_DEFAULT_MAX_CONNS;
    cfg->backlog = 1024;
    cfg->tls_min_version = 2;
    cfg->max_conn_buffer = 4u * 1024u * 1024u;
    cfg->verbosity = 0;
    cfg->mem_limit = (uint64_t)BC_NODE_DEFAULT_MEMORY_MB * 1024u * 1024u;
    cfg->max_item_size = BC_NODE_DEFAULT_ITEM_SIZE;
    snprintf(cfg->eviction, sizeof(cfg->eviction), "s3fifo");
    cfg->nbuckets = BC_DEFAULT_NBUCKETS;
    cfg->expiry_interval_ms = 1000;
    cfg->expiry_scan_budget = 20000;
    snprintf(cfg->admin_listen, sizeof(cfg->admin_listen), "127.0.0.1");
    cfg->admin_port = BC_NODE_DEFAULT_ADMIN_PORT;
    cfg->admin_max_conns = 2048;
    cfg->admin_max_conns_per_ip = 256;
    cfg->log_level = BC_LOG_INFO;
    cfg->zk_session_timeout_ms = 4000;
    cfg->forward = true;
    cfg->write_fencing = true;
    cfg->forward_timeout_ms = 2000;
    cfg->replication = BC_REPL_ASYNC;
    cfg->repl_sync_timeout_ms = 500;
    cfg->repl_backlog_mb = 64;
    cfg->repl_max_lag_mb = 8;
    cfg->migrate.max_imports = 48;
    cfg->migrate.import_timeout_ms = 60000;
    cfg->migrate.catchup_ms = 50;
    bc_origin_config_defaults(&cfg->origin);
}

/* ---- the JSON file ---- */

static const char *const root_fields[] = {"server", "cache", "admin", "log", "pid_file",
                                          "zookeeper", "migration", "origin", NULL};
static const char *const migration_fields[] = {"max_imports", "import_timeout_ms", "catchup_ms",
                                               NULL};
static const char *const zookeeper_fields[] = {"hosts", "cluster", "group", "session_timeout_ms",
                                               "advertise", "forward", "forward_timeout_ms",
                                               "write_fencing", "replication",
                                               "repl_sync_timeout_ms",
                                               "repl_backlog_mb", "repl_max_lag_mb",
                                               "auth_file", "cluster_secret_file",
                                               "insecure_no_peer_auth", NULL};
static const char *const server_fields[] = {"listen", "port", "threads", "max_connections",
                                            "backlog", "max_connection_buffer", "verbosity",
                                            "idle_timeout", "auth_file", "tls", NULL};
/* server.tls: its presence turns TLS on (-Z) */
static const char *const tls_fields[] = {"chain_cert", "key", "ca_cert", "verify_mode",
                                         "min_version", "ciphers", "plain_listen", NULL};

static const char *add_plain_listen(bc_node_config_t *cfg, char *host);
static const char *const cache_fields[] = {"memory_mb", "max_item_size", "eviction", "buckets",
                                           "expiry_interval_ms", "expiry_scan_budget",
                                           "prealloc", NULL};
static const char *const admin_fields[] = {"listen", "port", "max_connections",
                                           "max_connections_per_ip", "auth_token_file",
                                           "insecure_no_auth", NULL};
static const char *const log_fields[] = {"level", NULL};

/* Checks a listen address read from the file: one host, no port. */
static bc_status_t
doc_listen(const bc_config_doc_t *doc, const char *path, char *buf, size_t buf_size, char *err,
           size_t err_len)
{
    bc_status_t st = bc_config_get_string(doc, path, buf, buf_size, false, NULL, err, err_len);
    if (st != BC_OK) return st;
    if (strchr(buf, ',') != NULL || strchr(buf, ' ') != NULL) {
        const cJSON *item = NULL;
        char got[200];
        bc_config_lookup(doc, path, &item, NULL, 0);
        bc_config_describe(item, got, sizeof(got));
        bc_config_errf(err, err_len, "%s: field \"%s\": expected one address, got %s", doc->name,
                       path, got);
        return BC_ECONFIG;
    }
    return BC_OK;
}

bc_status_t
bc_node_config_apply_doc(bc_node_config_t *cfg, const bc_config_doc_t *doc, char *err,
                         size_t err_len)
{
    bc_status_t st;
    int64_t v;
    uint64_t size;
    int idx;
    bool found;

#define CHECK(expr) do { st = (expr); if (st != BC_OK) return st; } while (0)
    CHECK(bc_config_check_fields(doc, NULL, root_fields, err, err_len));
    CHECK(bc_config_check_fields(doc, "server", server_fields, err, err_len));
    CHECK(bc_config_check_fields(doc, "server.tls", tls_fields, err, err_len));
    CHECK(bc_config_check_fields(doc, "cache", cache_fields, err, err_len));
    CHECK(bc_config_check_fields(doc, "admin", admin_fields, err, err_len));
    CHECK(bc_config_check_fields(doc, "log", log_fields, err, err_len));
    CHECK(bc_config_check_fields(doc, "zookeeper", zookeeper_fields, err, err_len));
    CHECK(bc_config_check_fields(doc, "migration", migration_fields, err, err_len));

    /* server */
    CHECK(doc_listen(doc, "server.listen", cfg->listen_addr, sizeof(cfg->listen_addr), err,
                     err_len));
    CHECK(bc_config_get_int(doc, "server.port", 0, 65535, &v, &found, err, err_len));
    if (found) cfg->port = (uint16_t)v;
    CHECK(bc_config_get_int(doc, "server.threads", 1, BC_NODE_MAX_THREADS, &v, &found, err,
                            err_len));
    if (found) cfg->threads = (uint32_t)v;
    CHECK(bc_config_get_int(doc, "server.max_connections", 1, 1000000, &v, &found, err,
                            err_len));
    if (found) cfg->max_conns = (uint32_t)v;
    CHECK(bc_config_get_int(doc, "server.backlog", 1, 65535, &v, &found, err, err_len));
    if (found) cfg->backlog = (int)v;
    CHECK(bc_config_get_size(doc, "server.max_connection_buffer", 1, 64u * 1024u,
                             1ull << 30, &size, &found, err, err_len));
    if (found) cfg->max_conn_buffer = (size_t)size;
    CHECK(bc_config_get_int(doc, "server.verbosity", 0, 3, &v, &found, err, err_len));
    if (found) cfg->verbosity = (int)v;
    CHECK(bc_config_get_int(doc, "server.idle_timeout", 0, 86400 * 365, &v, &found, err,
                            err_len));
    if (found) cfg->idle_timeout_s = (uint32_t)v;
    CHECK(bc_config_get_string(doc, "server.auth_file", cfg->mc_auth_file,
                               sizeof(cfg->mc_auth_file), false, NULL, err, err_len));
    {
        const cJSON *tls = NULL;
        char plain[1024] = "";
        CHECK(bc_config_lookup(doc, "server.tls", &tls, err, err_len));
        if (tls != NULL) cfg->tls = true;
        CHECK(bc_config_get_string(doc, "server.tls.chain_cert", cfg->tls_chain_cert,
                                   sizeof(cfg->tls_chain_cert), false, NULL, err, err_len));
        CHECK(bc_config_get_string(doc, "server.tls.key", cfg->tls_key, sizeof(cfg->tls_key),
                                   false, NULL, err, err_len));
        CHECK(bc_config_get_string(doc, "server.tls.ca_cert", cfg->tls_ca_cert,
                                   sizeof(cfg->tls_ca_cert), false, NULL, err, err_len));
        CHECK(bc_config_get_string(doc, "server.tls.ciphers", cfg->tls_ciphers,
                                   sizeof(cfg->tls_ciphers), false, NULL, err, err_len));
        CHECK(bc_config_get_int(doc, "server.tls.verify_mode", 0, 3, &v, &found, err, err_len));
        if (found) cfg->tls_verify_mode = (int)v;
        CHECK(bc_config_get_int(doc, "server.tls.min_version", 0, 3, &v, &found, err, err_len));
        if (found) cfg->tls_min_version = (int)v;
        CHECK(bc_config_get_string(doc, "server.tls.plain_listen", plain, sizeof(plain), false,
                                   &found, err, err_len));
        cfg->nplain_listen = found ? 0 : cfg->nplain_listen;
        for (char *save = NULL, *item = found ? strtok_r(plain, ",", &save) : NULL; item != NULL;
             item = strtok_r(NULL, ",", &save)) {
            const char *why = add_plain_listen(cfg, item);
            if (why != NULL) {
                bc_config_errf(err, err_len, "field \"server.tls.plain_listen\": expected %s",
                               strcmp(why, "notls:HOST:PORT") == 0 ? "HOST:PORT[,HOST:PORT]" : why);
                return BC_EINVAL;
            }
        }
    }

    /* cache */
    CHECK(bc_config_get_size(doc, "cache.memory_mb", 1024u * 1024u, BC_NODE_MIN_MEMORY,
                             BC_NODE_MAX_MEMORY, &size, &found, err, err_len));
    if (found) cfg->mem_limit = size;
    CHECK(bc_config_get_size(doc, "cache.max_item_size", 1, BC_NODE_MIN_ITEM_SIZE,
                             BC_NODE_MAX_ITEM_SIZE, &size, &found, err, err_len));
    if (found) cfg->max_item_size = (size_t)size;
    CHECK(bc_config_get_enum(doc, "cache.eviction", eviction_names, &idx, &found, err,
                             err_len));
    if (found) snprintf(cfg->eviction, sizeof(cfg->eviction), "%s", eviction_names[idx]);
    CHECK(bc_config_get_int(doc, "cache.buckets", 1, BC_MAX_NBUCKETS, &v, &found, err,
                            err_len));
    if (found) cfg->nbuckets = (uint32_t)v;
    CHECK(bc_config_get_int(doc, "cache.expiry_interval_ms", 0, 3600000, &v, &found, err,
                            err_len));
    if (found) cfg->expiry_interval_ms = (uint32_t)v;
    CHECK(bc_config_get_int(doc, "cache.expiry_scan_budget", 1, 100000000, &v, &found, err,
                            err_len));
    if (found) cfg->expiry_scan_budget = (uint32_t)v;
    CHECK(bc_config_get_bool(doc, "cache.prealloc", &cfg->prealloc, NULL, err, err_len));

    /* admin */
    CHECK(doc_listen(doc, "admin.listen", cfg->admin_listen, sizeof(cfg->admin_listen), err,
                     err_len));
    CHECK(bc_config_get_int(doc, "admin.port", 0, 65535, &v, &found, err, err_len));
    if (found) {
        cfg->admin_port = (uint16_t)v;
        cfg->admin_port_given = true;
    }
    CHECK(bc_config_get_int(doc, "admin.max_connections", 1, 100000, &v, &found, err,
                            err_len));
    if (found) cfg->admin_max_conns = (uint32_t)v;
    CHECK(bc_config_get_int(doc, "admin.max_connections_per_ip", 1, 100000, &v, &found, err,
                            err_len));
    if (found) cfg->admin_max_conns_per_ip = (uint32_t)v;
    CHECK(bc_config_get_string(doc, "admin.auth_token_file", cfg->auth_token_file,
                               sizeof(cfg->auth_token_file), false, NULL, err, err_len));
    CHECK(bc_config_get_bool(doc, "admin.insecure_no_auth", &cfg->insecure_no_auth, NULL, err,
                             err_len));

    /* zookeeper */
    CHECK(bc_config_get_string(doc, "zookeeper.hosts", cfg->zk_hosts, sizeof(cfg->zk_hosts), false,
                               NULL, err, err_len));
    CHECK(bc_config_get_string(doc, "zookeeper.cluster", cfg->cluster, sizeof(cfg->cluster),
                               false, NULL, err, err_len));
    CHECK(bc_config_get_int(doc, "zookeeper.group", 1, 0x7fffffff, &v, &found, err, err_len));
    if (found) cfg->group = (uint32_t)v;
    CHECK(bc_config_get_int(doc, "zookeeper.session_timeout_ms", 1000, 60000, &v, &found, err,
                            err_len));
    if (found) cfg->zk_session_timeout_ms = (int)v;
    CHECK(bc_config_get_string(doc, "zookeeper.advertise", cfg->advertise, sizeof(cfg->advertise),
                               false, NULL, err, err_len));
    CHECK(bc_config_get_bool(doc, "zookeeper.forward", &cfg->forward, NULL, err, err_len));
    CHECK(bc_config_get_bool(doc, "zookeeper.write_fencing", &cfg->write_fencing, NULL, err,
                             err_len));
    CHECK(bc_config_get_int(doc, "zookeeper.forward_timeout_ms", 100, 60000, &v, &found, err,
                            err_len));
    if (found) cfg->forward_timeout_ms = (uint32_t)v;
    CHECK(bc_config_get_enum(doc, "zookeeper.replication", bc_repl_mode_names, &idx, &found, err,
                             err_len));
    if (found) cfg->replication = (bc_repl_mode_t)idx;
    CHECK(bc_config_get_int(doc, "zookeeper.repl_sync_timeout_ms", BC_REPL_SYNC_TIMEOUT_MIN_MS,
                            BC_REPL_SYNC_TIMEOUT_MAX_MS, &v, &found, err, err_len));
    if (found) cfg->repl_sync_timeout_ms = (uint32_t)v;
    CHECK(bc_config_get_int(doc, "zookeeper.repl_backlog_mb", 1, 4096, &v, &found, err, err_len));
    if (found) cfg->repl_backlog_mb = (uint32_t)v;
    CHECK(bc_config_get_int(doc, "zookeeper.repl_max_lag_mb", 0, BC_REPL_MAX_LAG_MAX_MB, &v, &found,
                            err, err_len));
    if (found) cfg->repl_max_lag_mb = (uint32_t)v;
    CHECK(bc_config_get_string(doc, "zookeeper.auth_file", cfg->zk_auth_file,
                               sizeof(cfg->zk_auth_file), false, NULL, err, err_len));
    CHECK(bc_config_get_string(doc, "zookeeper.cluster_secret_file", cfg->cluster_secret_file,
                               sizeof(cfg->cluster_secret_file), false, NULL, err, err_len));
    CHECK(bc_config_get_bool(doc, "zookeeper.insecure_no_peer_auth", &cfg->insecure_no_peer_auth,
                             NULL, err, err_len));

    /* migration */
    CHECK(bc_config_get_int(doc, "migration.max_imports", MIGRATE_IMPORTS_MIN,
                            MIGRATE_IMPORTS_MAX, &v, &found, err, err_len));
    if (found) cfg->migrate.max_imports = (uint32_t)v;
    CHECK(bc_config_get_int(doc, "migration.import_timeout_ms", MIGRATE_TIMEOUT_MIN_MS,
                            MIGRATE_MS_MAX, &v, &found, err, err_len));
    if (found) cfg->migrate.import_timeout_ms = (uint32_t)v;
    CHECK(bc_config_get_int(doc, "migration.catchup_ms", MIGRATE_CATCHUP_MIN_MS, MIGRATE_MS_MAX,
                            &v, &found, err, err_len));
    if (found) cfg->migrate.catchup_ms = (uint32_t)v;

    /* read-through (origin/origin.h) */
    CHECK(bc_origin_config_apply_doc(&cfg->origin, doc, err, err_len));

    /* log, process */
    CHECK(bc_config_get_enum(doc, "log.level", log_level_names, &idx, &found, err, err_len));
    if (found) cfg->log_level = idx;
    CHECK(bc_config_get_string(doc, "pid_file", cfg->pid_file, sizeof(cfg->pid_file), true,
                               NULL, err, err_len));
#undef CHECK
    return BC_OK;
}

bc_status_t
bc_node_config_load_file(bc_node_config_t *cfg, const char *path, char *err, size_t err_len)
{
    bc_config_doc_t *doc;
    bc_status_t st = bc_config_load(path, 0, &doc, err, err_len);
    if (st != BC_OK) return st;
    st = bc_node_config_apply_doc(cfg, doc, err, err_len);
    bc_config_free(doc);
    return st;
}

/* ---- the command line ---- */

static const node_option_t *
find_short(char c)
{
    for (size_t i = 0; i < NODE_OPTION_COUNT; i++) {
        if (node_options[i].short_name == c) return &node_options[i];
    }
    return NULL;
}

static const node_option_t *
find_long(const char *name, size_t len)
{
    for (size_t i = 0; i < NODE_OPTION_COUNT; i++) {
        const node_option_t *o = &node_options[i];
        if (o->long_name != NULL && strlen(o->long_name) == len &&
            memcmp(o->long_name, name, len) == 0) return o;
        if (o->alias != NULL && strlen(o->alias) == len && memcmp(o->alias, name, len) == 0) {
            return o;
        }
    }
    return NULL;
}

/* State shared by both passes. */
typedef struct parse_state {
    bc_node_config_t *cfg;
    int pass;                         /* 1 or 2 */
    const char *config_path;          /* pass 1 result */
    bool want_help;
    bool want_version;
    bool log_level_given;             /* --log-level on the command line */
    char *err;
    size_t err_len;
} parse_state_t;

static bc_status_t
bad_value(parse_state_t *ps, const char *flag, const char *value, const char *expected)
{
    char got[200];
    bc_config_quote(value, got, sizeof(got));
    bc_config_errf(ps->err, ps->err_len, "%s: expected %s, got %s", flag, expected, got);
    return BC_EINVAL;
}

static bc_status_t
flag_int(parse_state_t *ps, const char *flag, const char *value, int64_t min, int64_t max,
         int64_t *out)
{
    char expected[80];
    if (bc_parse_int(value, min, max, out) == BC_OK) return BC_OK;
    snprintf(expected, sizeof(expected), "an integer %" PRId64 "..%" PRId64, min, max);
    return bad_value(ps, flag, value, expected);
}

static bc_status_t
flag_string(parse_state_t *ps, const char *flag, const char *value, char *buf, size_t size,
            bool listen_addr)
{
    size_t n = strlen(value);
    char expected[80];
    if (n == 0) return bad_value(ps, flag, value, "a non-empty value");
    if (n >= size) {
        snprintf(expected, sizeof(expected), "at most %zu bytes", size - 1);
        return bad_value(ps, flag, value, expected);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c < 0x20 || c == 0x7f) return bad_value(ps, flag, value, "no control characters");
        if (listen_addr && (c == ',' || c == ' ')) {
            return bad_value(ps, flag, value, "one address (lists are not supported)");
        }
    }
    memcpy(buf, value, n + 1);
    return BC_OK;
}

static int
choice_index(const char *const *names, const char *value)
{
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(names[i], value) == 0) return i;
    }
    return -1;
}

/*
 * memcached's TLS options (-o ssl_NAME=VALUE); the ones we serve set
 * *handled, the others (ssl_keyformat, ssl_wbuf_size, ssl_session_cache,
 * ssl_kernel_tls) are left to the caller's "accepted and ignored".
 */
static bc_status_t
apply_tls_option(parse_state_t *ps, const char *opt, const char *eq, bool *handled)
{
    static const struct { const char *name; size_t off, size; } files[] = {
        {"ssl_chain_cert", offsetof(bc_node_config_t, tls_chain_cert), BC_NODE_PATH_MAX},
        {"ssl_key", offsetof(bc_node_config_t, tls_key), BC_NODE_PATH_MAX},
        {"ssl_ca_cert", offsetof(bc_node_config_t, tls_ca_cert), BC_NODE_PATH_MAX},
        {"ssl_ciphers", offsetof(bc_node_config_t, tls_ciphers), 256},
    };
    char what[40];
    int64_t v;
    snprintf(what, sizeof(what), "-o %s", opt);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (strcmp(opt, files[i].name) != 0) continue;
        *handled = true;
        if (eq == NULL) return bad_value(ps, what, "", "a value");
        return flag_string(ps, what, eq + 1, (char *)ps->cfg + files[i].off, files[i].size,
                           false);
    }
    if (strcmp(opt, "ssl_verify_mode") == 0 || strcmp(opt, "ssl_min_version") == 0) {
        *handled = true;
        if (eq == NULL || bc_parse_int(eq + 1, 0, 3, &v) != BC_OK) {
            return bad_value(ps, what, eq != NULL ? eq + 1 : "",
                             opt[4] == 'v' ? "0 (none), 1 (request), 2 (require) or 3 (once)"
                                           : "0 (TLS 1.0) .. 3 (TLS 1.3)");
        }
        if (opt[4] == 'v') ps->cfg->tls_verify_mode = (int)v;
        else ps->cfg->tls_min_version = (int)v;
    }
    return BC_OK;
}

/*
 * memcached's -o: a comma-separated list of name[=value].  idle_timeout
 * is served as memcached 1.6 does it (net/server.h); every other name is
 * memcached tuning, accepted and ignored with a warning.
 */
static bc_status_t
apply_extended(parse_state_t *ps, const char *flag, const char *value)
{
    char buf[4096];
    int64_t v;
    bool handled = false;
    if (strlen(value) >= sizeof(buf)) return bad_value(ps, flag, value, "a shorter option list");
    snprintf(buf, sizeof(buf), "%s", value);
    for (char *save = NULL, *opt = strtok_r(buf, ",", &save); opt != NULL;
         opt = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(opt, '=');
        if (eq != NULL) *eq = '\0';
        if (strncmp(opt, "ssl_", 4) == 0 && apply_tls_option(ps, opt, eq, &handled) != BC_OK) {
            return BC_EINVAL;
        }
        if (handled) {
            handled = false;
        } else if (strcmp(opt, "idle_timeout") == 0) {
            if (eq == NULL || bc_parse_int(eq + 1, 0, 86400 * 365, &v) != BC_OK) {
                return bad_value(ps, "-o idle_timeout", eq != NULL ? eq + 1 : "",
                                 "seconds, 0..31536000 (0 = never)");
            }
            ps->cfg->idle_timeout_s = (uint32_t)v;
        } else {
            log_warn("%s %s: memcached tuning option accepted for compatibility and ignored",
                     flag, opt);
        }
    }
    return BC_OK;
}

/* One plain listener, "HOST:PORT" (HOST may be [v6]; s is cut up);
 * NULL, or what was expected. */
static const char *
add_plain_listen(bc_node_config_t *cfg, char *host)
{
    char *colon = strrchr(host, ':');
    int64_t port;
    if (colon == NULL || colon == host || bc_parse_int(colon + 1, 0, 65535, &port) != BC_OK) {
        return "notls:HOST:PORT";
    }
    *colon = '\0';
    if (host[0] == '[' && colon[-1] == ']') {
        host++;
        colon[-1] = '\0';
    }
    if (cfg->nplain_listen == 4) return "at most 4 notls listeners";
    if (strlen(host) == 0 || strlen(host) >= BC_HOST_MAX) return "notls:HOST:PORT";
    snprintf(cfg->plain_listen_host[cfg->nplain_listen], BC_HOST_MAX, "%s", host);
    cfg->plain_listen_port[cfg->nplain_listen++] = (uint16_t)port;
    return NULL;
}

/*
 * -l: memcached's list of listeners, comma-separated (or -l repeated):
 * one address for the main listener (TLS under -Z), and notls:HOST:PORT
 * items for plain listeners beside it (HOST may be [v6]).
 */
static bc_status_t
apply_listen(parse_state_t *ps, const char *flag, const char *value)
{
    char buf[1024];
    bc_node_config_t *cfg = ps->cfg;
    if (strlen(value) >= sizeof(buf)) return bad_value(ps, flag, value, "a shorter list");
    snprintf(buf, sizeof(buf), "%s", value);
    if (strchr(buf, ',') == NULL && strncmp(buf, "notls:", 6) != 0) {
        return flag_string(ps, flag, value, cfg->listen_addr, sizeof(cfg->listen_addr), true);
    }
    int mains = 0;
    for (char *save = NULL, *item = strtok_r(buf, ",", &save); item != NULL;
         item = strtok_r(NULL, ",", &save)) {
        if (strncmp(item, "notls:", 6) != 0) {
            if (++mains > 1) {
                return bad_value(ps, flag, value,
                                 "one address, and notls:HOST:PORT items (several main "
                                 "addresses are not supported)");
            }
            bc_status_t st = flag_string(ps, flag, item, cfg->listen_addr,
                                         sizeof(cfg->listen_addr), true);
            if (st != BC_OK) return st;
            continue;
        }
        char copy[sizeof(buf)];
        const char *why;
        snprintf(copy, sizeof(copy), "%s", item);
        if ((why = add_plain_listen(cfg, item + 6)) != NULL) return bad_value(ps, flag, copy, why);
    }
    return BC_OK;
}

/*
 * Applies one flag.  flag is the spelling the user typed ("-p", "--port"),
 * for messages.  value is NULL for flags without one.
 */
static bc_status_t
apply_option(parse_state_t *ps, const node_option_t *o, const char *flag, const char *value)
{
    bc_node_config_t *cfg = ps->cfg;
    int64_t v;
    uint64_t size;
    bc_status_t st;
    int idx;

    if (ps->pass == 1) {
        if (o->id == OPT_CONFIG) {
            if (*value == '\0') return bad_value(ps, flag, value, "a file name");
            ps->config_path = value;
        } else if (o->id == OPT_HELP) {
            ps->want_help = true;
        } else if (o->id == OPT_VERSION) {
            ps->want_version = true;
        } else if (o->id == OPT_REFUSED) {
            bc_config_errf(ps->err, ps->err_len, "%s: %s", flag, o->help);
            return BC_EINVAL;
        }
        return BC_OK;
    }

    switch (o->id) {
    case OPT_PORT:
        st = flag_int(ps, flag, value, 0, 65535, &v);
        if (st == BC_OK) cfg->port = (uint16_t)v;
        return st;
    case OPT_LISTEN:
        return apply_listen(ps, flag, value);
    case OPT_MEMORY:
        if (bc_parse_size(value, 1024u * 1024u, &size) != BC_OK || size < BC_NODE_MIN_MEMORY ||
            size > BC_NODE_MAX_MEMORY) {
            return bad_value(ps, flag, value,
                             "megabytes (1..16777216) or a size such as 512m or 2g");
        }
        cfg->mem_limit = size;
        return BC_OK;
    case OPT_THREADS:
        st = flag_int(ps, flag, value, 1, BC_NODE_MAX_THREADS, &v);
        if (st == BC_OK) cfg->threads = (uint32_t)v;
        return st;
    case OPT_CONNS:
        st = flag_int(ps, flag, value, 1, 1000000, &v);
        if (st == BC_OK) cfg->max_conns = (uint32_t)v;
        return st;
    case OPT_ITEM_SIZE:
        if (bc_parse_size(value, 1, &size) != BC_OK || size < BC_NODE_MIN_ITEM_SIZE ||
            size > BC_NODE_MAX_ITEM_SIZE) {
            return bad_value(ps, flag, value, "a size from 1k to 1024m, such as 1m or 512k");
        }
        cfg->max_item_size = (size_t)size;
        return BC_OK;
    case OPT_VERBOSE:
        if (cfg->verbosity < 3) cfg->verbosity++;
        return BC_OK;
    case OPT_BACKLOG:
        st = flag_int(ps, flag, value, 1, 65535, &v);
        if (st == BC_OK) cfg->backlog = (int)v;
        return st;
    case OPT_DAEMON:
        cfg->daemonize = true;
        return BC_OK;
    case OPT_PIDFILE:
        return flag_string(ps, flag, value, cfg->pid_file, sizeof(cfg->pid_file), false);
    case OPT_USER:
        return flag_string(ps, flag, value, cfg->run_as_user, sizeof(cfg->run_as_user), false);
    case OPT_UDP:
        st = flag_int(ps, flag, value, 0, 65535, &v);
        if (st == BC_OK && v != 0) {
            log_warn("%s %s: UDP is not served by bucketcache-node; only TCP is", flag, value);
        }
        return st;
    case OPT_LOCK_MEMORY:
        cfg->lock_memory = true;
        return BC_OK;
    case OPT_PREALLOC:
        cfg->prealloc = true;
        return BC_OK;
    case OPT_COREDUMPS:
        cfg->enable_coredumps = true;
        return BC_OK;
    case OPT_PROTOCOL:
        if (strcmp(value, "ascii") == 0 || strcmp(value, "auto") == 0) return BC_OK;
        return bad_value(ps, flag, value,
                         "ascii or auto (only the text protocol is supported)");
    case OPT_ADMIN_PORT:
        st = flag_int(ps, flag, value, 0, 65535, &v);
        if (st == BC_OK) {
            cfg->admin_port = (uint16_t)v;
            cfg->admin_port_given = true;
        }
        return st;
    case OPT_ADMIN_LISTEN:
        return flag_string(ps, flag, value, cfg->admin_listen, sizeof(cfg->admin_listen), true);
    case OPT_EVICTION:
        idx = choice_index(eviction_names, value);
        if (idx < 0) return bad_value(ps, flag, value, "one of lru, lfu, fifo, s3fifo");
        snprintf(cfg->eviction, sizeof(cfg->eviction), "%s", eviction_names[idx]);
        return BC_OK;
    case OPT_BUCKETS:
        st = flag_int(ps, flag, value, 1, BC_MAX_NBUCKETS, &v);
        if (st == BC_OK) cfg->nbuckets = (uint32_t)v;
        return st;
    case OPT_ZK:
        return flag_string(ps, flag, value, cfg->zk_hosts, sizeof(cfg->zk_hosts), false);
    case OPT_CLUSTER:
        return flag_string(ps, flag, value, cfg->cluster, sizeof(cfg->cluster), false);
    case OPT_GROUP:
        st = flag_int(ps, flag, value, 1, 0x7fffffff, &v);
        if (st == BC_OK) cfg->group = (uint32_t)v;
        return st;
    case OPT_ZK_SESSION:
        st = flag_int(ps, flag, value, 1000, 60000, &v);
        if (st == BC_OK) cfg->zk_session_timeout_ms = (int)v;
        return st;
    case OPT_ADVERTISE:
        return flag_string(ps, flag, value, cfg->advertise, sizeof(cfg->advertise), false);
    case OPT_NO_WRITE_FENCING:
        cfg->write_fencing = false;
        return BC_OK;
    case OPT_NO_FORWARD:
        cfg->forward = false;
        return BC_OK;
    case OPT_FORWARD_TIMEOUT:
        st = flag_int(ps, flag, value, 100, 60000, &v);
        if (st == BC_OK) cfg->forward_timeout_ms = (uint32_t)v;
        return st;
    case OPT_REPLICATION:
        idx = choice_index(bc_repl_mode_names, value);
        if (idx < 0) return bad_value(ps, flag, value, "async or sync");
        cfg->replication = (bc_repl_mode_t)idx;
        return BC_OK;
    case OPT_REPL_SYNC_TIMEOUT:
        st = flag_int(ps, flag, value, BC_REPL_SYNC_TIMEOUT_MIN_MS, BC_REPL_SYNC_TIMEOUT_MAX_MS, &v);
        if (st == BC_OK) cfg->repl_sync_timeout_ms = (uint32_t)v;
        return st;
    case OPT_REPL_BACKLOG:
        st = flag_int(ps, flag, value, 1, 4096, &v);
        if (st == BC_OK) cfg->repl_backlog_mb = (uint32_t)v;
        return st;
    case OPT_REPL_MAX_LAG:
        st = flag_int(ps, flag, value, 0, BC_REPL_MAX_LAG_MAX_MB, &v);
        if (st == BC_OK) cfg->repl_max_lag_mb = (uint32_t)v;
        return st;
    case OPT_MIGRATE_MAX_IMPORTS:
        st = flag_int(ps, flag, value, MIGRATE_IMPORTS_MIN, MIGRATE_IMPORTS_MAX, &v);
        if (st == BC_OK) cfg->migrate.max_imports = (uint32_t)v;
        return st;
    case OPT_MIGRATE_IMPORT_TIMEOUT:
        st = flag_int(ps, flag, value, MIGRATE_TIMEOUT_MIN_MS, MIGRATE_MS_MAX, &v);
        if (st == BC_OK) cfg->migrate.import_timeout_ms = (uint32_t)v;
        return st;
    case OPT_MIGRATE_CATCHUP:
        st = flag_int(ps, flag, value, MIGRATE_CATCHUP_MIN_MS, MIGRATE_MS_MAX, &v);
        if (st == BC_OK) cfg->migrate.catchup_ms = (uint32_t)v;
        return st;
    case OPT_ORIGIN: {
        char why[BC_ERRBUF_LEN];
        if (bc_origin_config_flag(&cfg->origin, value, why, sizeof(why)) != BC_OK) {
            bc_config_errf(ps->err, ps->err_len, "%s: %s", flag, why);
            return BC_EINVAL;
        }
        return BC_OK;
    }
    case OPT_LOG_LEVEL:
        idx = choice_index(log_level_names, value);
        if (idx < 0) return bad_value(ps, flag, value, "one of error, warn, info, debug, trace");
        cfg->log_level = idx;
        ps->log_level_given = true;
        return BC_OK;
    case OPT_AUTH_TOKEN_FILE:
        return flag_string(ps, flag, value, cfg->auth_token_file, sizeof(cfg->auth_token_file),
                           false);
    case OPT_INSECURE_NO_AUTH:
        cfg->insecure_no_auth = true;
        return BC_OK;
    case OPT_ZK_AUTH_FILE:
        return flag_string(ps, flag, value, cfg->zk_auth_file, sizeof(cfg->zk_auth_file), false);
    case OPT_CLUSTER_SECRET_FILE:
        return flag_string(ps, flag, value, cfg->cluster_secret_file,
                           sizeof(cfg->cluster_secret_file), false);
    case OPT_INSECURE_NO_PEER_AUTH:
        cfg->insecure_no_peer_auth = true;
        return BC_OK;
    case OPT_TLS:
        cfg->tls = true;
        return BC_OK;
    case OPT_AUTH_FILE:
        return flag_string(ps, flag, value, cfg->mc_auth_file, sizeof(cfg->mc_auth_file), false);
    case OPT_EXTENDED:
        return apply_extended(ps, flag, value);
    case OPT_IGNORED:
        log_warn("%s%s%s: memcached tuning flag accepted for compatibility and ignored", flag,
                 value != NULL ? " " : "", value != NULL ? value : "");
        return BC_OK;
    case OPT_CONFIG:
    case OPT_HELP:
    case OPT_VERSION:
    case OPT_REFUSED:
        return BC_OK;   /* handled in pass 1 */
    }
    return BC_OK;
}

/* One walk over argv; see the file comment for the accepted forms. */
static bc_status_t
walk_args(parse_state_t *ps, int argc, char *const argv[])
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        bc_status_t st;

        if (strcmp(arg, "--") == 0) {
            if (i + 1 < argc) {
                char q[200];
                bc_config_quote(argv[i + 1], q, sizeof(q));
                bc_config_errf(ps->err, ps->err_len, "unexpected argument %s (see --help)", q);
                return BC_EINVAL;
            }
            return BC_OK;
        }
        if (arg[0] == '-' && arg[1] == '-') {
            const char *name = arg + 2;
            const char *eq = strchr(name, '=');
            size_t name_len = eq != NULL ? (size_t)(eq - name) : strlen(name);
            const node_option_t *o = find_long(name, name_len);
            const char *value = eq != NULL ? eq + 1 : NULL;
            char flag[64];

            snprintf(flag, sizeof(flag), "--%.*s", (int)(name_len > 40 ? 40 : name_len), name);
            if (o == NULL) {
                char q[200];
                bc_config_quote(arg, q, sizeof(q));
                bc_config_errf(ps->err, ps->err_len, "unknown option %s (see --help)", q);
                return BC_EINVAL;
            }
            if (o->arg == NULL && value != NULL) {
                bc_config_errf(ps->err, ps->err_len, "%s takes no value", flag);
                return BC_EINVAL;
            }
            if (o->arg != NULL && value == NULL) {
                if (i + 1 >= argc) {
                    bc_config_errf(ps->err, ps->err_len, "%s needs a value (%s)", flag, o->arg);
                    return BC_EINVAL;
                }
                value = argv[++i];
            }
            st = apply_option(ps, o, flag, value);
            if (st != BC_OK) return st;
            continue;
        }
        if (arg[0] == '-' && arg[1] != '\0') {
            /* A cluster of short flags: "-vv", "-dv", "-p11211", "-p 11211". */
            for (size_t j = 1; arg[j] != '\0'; j++) {
                const node_option_t *o = find_short(arg[j]);
                const char *value = NULL;
                char flag[3] = {'-', arg[j], '\0'};

                if (o == NULL) {
                    char q[16];
                    if ((unsigned char)arg[j] < 0x20 || (unsigned char)arg[j] >= 0x7f) {
                        snprintf(q, sizeof(q), "-\\x%02x", (unsigned char)arg[j]);
                    } else {
                        snprintf(q, sizeof(q), "-%c", arg[j]);
                    }
                    bc_config_errf(ps->err, ps->err_len, "unknown option %s (see --help)", q);
                    return BC_EINVAL;
                }
                if (o->arg != NULL) {
                    if (arg[j + 1] != '\0') {
                        value = arg + j + 1;
                    } else if (i + 1 < argc) {
                        value = argv[++i];
                    } else {
                        bc_config_errf(ps->err, ps->err_len, "%s needs a value (%s)", flag, o->arg);
                        return BC_EINVAL;
                    }
                }
                st = apply_option(ps, o, flag, value);
                if (st != BC_OK) return st;
                if (value != NULL) break;
            }
            continue;
        }
        {
            char q[200];
            bc_config_quote(arg, q, sizeof(q));
            bc_config_errf(ps->err, ps->err_len, "unexpected argument %s (see --help)", q);
            return BC_EINVAL;
        }
    }
    return BC_OK;
}

bc_status_t
bc_node_config_parse_args(bc_node_config_t *cfg, int argc, char *const argv[],
                          bc_node_config_action_t *action, char *err, size_t err_len)
{
    parse_state_t ps = {.cfg = cfg, .pass = 1, .err = err, .err_len = err_len};
    bc_status_t st;

    *action = BC_NODE_RUN;
    bc_node_config_defaults(cfg);
    st = walk_args(&ps, argc, argv);
    if (st != BC_OK) return st;
    if (ps.want_help) {
        *action = BC_NODE_SHOW_HELP;
        return BC_OK;
    }
    if (ps.want_version) {
        *action = BC_NODE_SHOW_VERSION;
        return BC_OK;
    }
    if (ps.config_path != NULL) {
        if (strlen(ps.config_path) >= sizeof(cfg->config_path)) {
            bc_config_errf(err, err_len, "--config: file name longer than %zu bytes",
                           sizeof(cfg->config_path) - 1);
            return BC_EINVAL;
        }
        st = bc_node_config_load_file(cfg, ps.config_path, err, err_len);
        if (st != BC_OK) return st;
        snprintf(cfg->config_path, sizeof(cfg->config_path), "%s", ps.config_path);
    }
    ps.pass = 2;
    st = walk_args(&ps, argc, argv);
    if (st != BC_OK) return st;
    /* memcached's -vv shows more; raise the log level to match unless a
     * level was asked for explicitly on the command line. */
    if (!ps.log_level_given) {
        if (cfg->verbosity >= 3 && cfg->log_level < BC_LOG_TRACE) cfg->log_level = BC_LOG_TRACE;
        if (cfg->verbosity == 2 && cfg->log_level < BC_LOG_DEBUG) cfg->log_level = BC_LOG_DEBUG;
    }
    if (!cfg->admin_port_given) cfg->admin_port = bc_node_config_default_admin_port(cfg->port);
    return bc_node_config_validate(cfg, err, err_len);
}

uint16_t
bc_node_config_default_admin_port(uint16_t data_port)
{
    /* BEHAVIOR: derived from the data port, so that nodes started side by
     * side with only -p do not fight over one admin port. */
    if (data_port == 0) return BC_NODE_DEFAULT_ADMIN_PORT;
    if (data_port <= 65535 - BC_NODE_ADMIN_PORT_OFFSET)
        return (uint16_t)(data_port + BC_NODE_ADMIN_PORT_OFFSET);
    return (uint16_t)(data_port - BC_NODE_ADMIN_PORT_OFFSET);
}

bc_status_t
bc_node_config_validate(const bc_node_config_t *cfg, char *err, size_t err_len)
{
    if (cfg->threads < 1 || cfg->threads > BC_NODE_MAX_THREADS) {
        bc_config_errf(err, err_len, "threads: expected 1..%u, got %" PRIu32, BC_NODE_MAX_THREADS,
                       cfg->threads);
        return BC_EINVAL;
    }
    if (cfg->nbuckets < 1 || cfg->nbuckets > BC_MAX_NBUCKETS) {
        bc_config_errf(err, err_len, "buckets: expected 1..%u, got %" PRIu32, BC_MAX_NBUCKETS,
                       cfg->nbuckets);
        return BC_EINVAL;
    }
    if (cfg->zk_hosts[0] != '\0' || cfg->cluster[0] != '\0' || cfg->group != 0) {
        if (cfg->zk_hosts[0] == '\0') {
            bc_config_errf(err, err_len, "--cluster/--group need --zk (the ZooKeeper hosts)");
            return BC_EINVAL;
        }
        if (!bc_cluster_name_valid(cfg->cluster)) {
            bc_config_errf(err, err_len, "--zk needs --cluster NAME (1-64 of A-Z a-z 0-9 _ . -)");
            return BC_EINVAL;
        }
        if (cfg->group == 0) {
            bc_config_errf(err, err_len, "--zk needs --group GID (a group id >= 1)");
            return BC_EINVAL;
        }
    }
    if (cfg->mem_limit < BC_NODE_MIN_MEMORY) {
        bc_config_errf(err, err_len, "memory limit: at least 1 megabyte is needed");
        return BC_EINVAL;
    }
    /* memcached refuses the same combination ("Cannot set item size limit
     * higher than 1/2 of memory max."): a single item must not be able to
     * evict most of the cache. */
    if ((uint64_t)cfg->max_item_size > cfg->mem_limit / 2) {
        bc_config_errf(err, err_len,
                       "max item size (-I %zu bytes) cannot be more than half of the memory limit "
                       "(-m %" PRIu64 " megabytes)", cfg->max_item_size, cfg->mem_limit >> 20);
        return BC_EINVAL;
    }
    if (cfg->max_item_size < BC_NODE_MIN_ITEM_SIZE || cfg->max_item_size > BC_NODE_MAX_ITEM_SIZE) {
        bc_config_errf(err, err_len, "max item size: expected 1k..1024m, got %zu bytes",
                       cfg->max_item_size);
        return BC_EINVAL;
    }
    if (choice_index(eviction_names, cfg->eviction) < 0) {
        bc_config_errf(err, err_len, "eviction: unknown policy \"%s\"", cfg->eviction);
        return BC_EINVAL;
    }
    if (cfg->insecure_no_auth && cfg->auth_token_file[0] != '\0') {
        bc_config_errf(err, err_len, "--insecure-no-auth and --auth-token-file contradict each "
                       "other: give one");
        return BC_EINVAL;
    }
    if (cfg->insecure_no_peer_auth && cfg->cluster_secret_file[0] != '\0') {
        bc_config_errf(err, err_len, "--insecure-no-peer-auth and --cluster-secret-file "
                       "contradict each other: give one");
        return BC_EINVAL;
    }
    if (cfg->tls && cfg->tls_chain_cert[0] == '\0') {
        bc_config_errf(err, err_len, "-Z needs a certificate: -o ssl_chain_cert=FILE,ssl_key=FILE");
        return BC_EINVAL;
    }
    if (!cfg->tls && (cfg->tls_chain_cert[0] != '\0' || cfg->tls_ca_cert[0] != '\0' ||
                      cfg->nplain_listen > 0)) {
        bc_config_errf(err, err_len, "-o ssl_* and -l notls:... go with -Z (TLS is off without it)");
        return BC_EINVAL;
    }
    if (cfg->tls && cfg->tls_verify_mode != 0 && cfg->tls_ca_cert[0] == '\0') {
        bc_config_errf(err, err_len, "-o ssl_verify_mode=%d checks client certificates "
                       "against -o ssl_ca_cert=FILE: give it", cfg->tls_verify_mode);
        return BC_EINVAL;
    }
    if (cfg->tls && cfg->zk_hosts[0] != '\0' && cfg->tls_ca_cert[0] == '\0') {
        bc_config_errf(err, err_len, "-Z in a cluster needs -o ssl_ca_cert=FILE: the CA of the "
                       "cluster's node certificates, which nodes check each other's against "
                       "(data and admin ports both)");
        return BC_EINVAL;
    }
    if (cfg->mc_auth_file[0] != '\0' && cfg->zk_hosts[0] != '\0' && cfg->insecure_no_peer_auth) {
        bc_config_errf(err, err_len, "-Y in a cluster needs the cluster secret "
                       "(--cluster-secret-file): the requests other nodes forward here prove it "
                       "instead of a user password");
        return BC_EINVAL;
    }
    /* Secure by default (docs/security.md): in a cluster, peers prove the
     * secret unless told otherwise in so many words. */
    if (cfg->zk_hosts[0] != '\0' && cfg->cluster_secret_file[0] == '\0' &&
        !cfg->insecure_no_peer_auth) {
        bc_config_errf(err, err_len, "a node of a cluster (--zk) needs the cluster secret: "
                       "--cluster-secret-file FILE (the same file on every node; create one "
                       "with: openssl rand -hex 32 > FILE; chmod 600 FILE), or "
                       "--insecure-no-peer-auth to let anyone who reaches the data port act "
                       "as a node (docs/security.md)");
        return BC_EINVAL;
    }
    if (cfg->admin_port != 0 && cfg->admin_port == cfg->port) {
        bc_config_errf(err, err_len, "the admin port and the data port are both %u; give "
                       "--admin-port another port (or 0 to disable it)", cfg->port);
        return BC_EINVAL;
    }
    return BC_OK;
}

/* Prints text from column `indent` (the cursor is there already), wrapping
 * at word boundaries before column `width`, and ends the line. */
static void
print_wrapped(FILE *out, const char *text, int indent, int width)
{
    int col = indent;
    const char *p = text;

    while (*p != '\0') {
        const char *space = strchr(p, ' ');
        int word = space != NULL ? (int)(space - p) : (int)strlen(p);
        if (col > indent && col + 1 + word > width) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', out);
            col++;
        }
        fprintf(out, "%.*s", word, p);
        col += word;
        p += word;
        while (*p == ' ') p++;
    }
    fputc('\n', out);
}

void
bc_node_config_usage(FILE *out, const char *prog)
{
    fprintf(out,
            "Usage: %s [options]\n"
            "\n"
            "bucketcache-node: a cache server speaking the memcached text protocol, with an\n"
            "HTTP admin port.  Without ZooKeeper settings it serves every bucket alone, as a\n"
            "drop-in memcached replacement.\n"
            "\n"
            "Options (flags override --config):\n", prog);
    for (size_t i = 0; i < NODE_OPTION_COUNT; i++) {
        const node_option_t *o = &node_options[i];
        char names[80];

        if (o->id == OPT_IGNORED || o->id == OPT_REFUSED) continue;
        /* "-p, --port=NUM" or "    --admin-port=NUM" */
        if (o->short_name) {
            snprintf(names, sizeof(names), "-%c, --%s%s%s", o->short_name, o->long_name,
                     o->arg ? "=" : "", o->arg ? o->arg : "");
        } else {
            snprintf(names, sizeof(names), "    --%s%s%s", o->long_name, o->arg ? "=" : "",
                     o->arg ? o->arg : "");
        }
        fprintf(out, "  %-28s ", names);
        print_wrapped(out, o->help, 31, 79);
        if (o->alias != NULL) fprintf(out, "  %-28s (also --%s)\n", "", o->alias);
    }
    fprintf(out,
            "\n"
            "Accepted for memcached compatibility and ignored (with a warning):\n"
            "  -f -n -R -C -D -X -W -A, and -o options other than idle_timeout and ssl_*\n"
            "Refused, because the node does not have the feature:\n"
            "  -s -a (UNIX sockets)  -S (SASL)  -B binary\n"
            "  -M (no eviction)  -F (flush_all off)  -e (memory file)\n"
            "\n"
            "Config file (JSON; every field optional, unknown fields are errors):\n"
            "  {\n"
            "    \"server\": {\"listen\": \"0.0.0.0\", \"port\": 11211, \"threads\": 4,\n"
            "               \"max_connections\": 1024, \"backlog\": 1024,\n"
            "               \"max_connection_buffer\": \"4m\", \"verbosity\": 0,\n"
            "               \"idle_timeout\": 0, \"auth_file\": \"\",\n"
            "               \"tls\": {\"chain_cert\": \"\", \"key\": \"\", \"ca_cert\": \"\",\n"
            "                       \"verify_mode\": 0, \"min_version\": 2, \"ciphers\": \"\",\n"
            "                       \"plain_listen\": \"HOST:PORT,...\"}},  (tls: -Z; absent = off)\n"
            "    \"cache\":  {\"memory_mb\": 64, \"max_item_size\": \"1m\", \"eviction\": \"s3fifo\",\n"
            "               \"buckets\": 1024, \"expiry_interval_ms\": 1000,\n"
            "               \"expiry_scan_budget\": 20000, \"prealloc\": false},\n"
            "    \"admin\":  {\"listen\": \"127.0.0.1\", \"port\": 11280, \"max_connections\": 2048,\n"
            "               \"max_connections_per_ip\": 256,\n"
            "               \"auth_token_file\": \"/etc/bucketcache/admin-token\",\n"
            "               \"insecure_no_auth\": false},\n"
            "    \"zookeeper\": {\"hosts\": \"10.0.0.1:2181\", \"cluster\": \"main\", \"group\": 1,\n"
            "                  \"session_timeout_ms\": 4000, \"advertise\": \"10.0.0.7\",\n"
            "                  \"forward\": true, \"forward_timeout_ms\": 2000, \"write_fencing\": true,\n"
            "                  \"replication\": \"async\", \"repl_sync_timeout_ms\": 500,\n"
            "                  \"repl_backlog_mb\": 64, \"repl_max_lag_mb\": 8,\n"
            "                  \"auth_file\": \"/etc/bucketcache/zk-auth\",\n"
            "                  \"cluster_secret_file\": \"/etc/bucketcache/cluster-secret\",\n"
            "                  \"insecure_no_peer_auth\": false},\n"
            "    \"migration\": {\"max_imports\": 48, \"import_timeout_ms\": 60000,\n"
            "                  \"catchup_ms\": 50},\n"
            "    \"log\":    {\"level\": \"info\"},\n"
            "    \"origin\": {\"url\": \"http://resize:8000/v1/{key}\",\n"
            "               \"origins\": {\"img/\": \"http://resize:8000/v1/{key}\"},\n"
            "               \"connect_timeout_ms\": 500, \"timeout_ms\": 1000,\n"
            "               \"max_inflight\": 32, \"max_queue\": 1024, \"default_ttl\": 300,\n"
            "               \"max_ttl\": 0, \"negative_ttl\": 10, \"negative_max\": 10000,\n"
            "               \"negative_statuses\": [404, 410], \"flags_header\": \"\",\n"
            "               \"breaker_failures\": 5, \"breaker_cooldown_ms\": 5000,\n"
            "               \"ca_file\": \"\"},\n"
            "    \"pid_file\": \"/run/bucketcache-node.pid\"\n"
            "  }\n"
            "\n"
            "Signals: SIGTERM or SIGINT stop the node cleanly (exit status 0); SIGHUP\n"
            "re-reads the admin token file, the cluster secret file, the -Y file and the\n"
            "TLS certificates (-Z; the admin port's HTTPS with them).\n"
            "Exit status: 0 clean stop, 1 runtime failure (e.g. port in use), 2 bad usage\n"
            "or configuration.\n");
}

void
bc_node_config_log(const bc_node_config_t *cfg)
{
    log_info("config: %s", cfg->config_path[0] ? cfg->config_path : "(no file; defaults and flags)");
    log_info("config: data port %s:%u, %" PRIu32 " threads, max %" PRIu32
             " connections, backlog %d, verbosity %d, idle timeout %" PRIu32 " s",
             cfg->listen_addr, cfg->port, cfg->threads, cfg->max_conns, cfg->backlog,
             cfg->verbosity, cfg->idle_timeout_s);
    if (cfg->tls) {
        log_info("config: data port: TLS (-Z) with %s%s%s, client certificates %s%s, at least %s",
                 cfg->tls_chain_cert, cfg->tls_key[0] != '\0' ? " and " : "", cfg->tls_key,
                 cfg->tls_verify_mode == 0 ? "not asked for" :
                 cfg->tls_verify_mode == 2 ? "required, of " : "checked when given, of ",
                 cfg->tls_verify_mode == 0 ? "" : cfg->tls_ca_cert,
                 cfg->tls_min_version == 3 ? "TLS 1.3" : cfg->tls_min_version == 2 ? "TLS 1.2" :
                 cfg->tls_min_version == 1 ? "TLS 1.1" : "TLS 1.0");
        for (uint32_t i = 0; i < cfg->nplain_listen; i++) {
            log_info("config: data port: plain listener %s:%u (notls)", cfg->plain_listen_host[i],
                     (unsigned)cfg->plain_listen_port[i]);
        }
    }
    if (cfg->mc_auth_file[0] != '\0') {
        log_info("config: data port: memcached ASCII authentication (-Y) with the users of %s",
                 cfg->mc_auth_file);
    }
    log_info("config: memory %" PRIu64 " MiB, max item %zu bytes, eviction %s, %" PRIu32
             " buckets, active expiry every %" PRIu32 " ms (budget %" PRIu32 " items)",
             cfg->mem_limit >> 20, cfg->max_item_size, cfg->eviction, cfg->nbuckets,
             cfg->expiry_interval_ms, cfg->expiry_scan_budget);
    if (cfg->prealloc) log_info("config: -L: the memory limit is preallocated at start");
    if (cfg->admin_port != 0) {
        log_info("config: admin port %s:%u (max %" PRIu32 " connections, %" PRIu32
                 " per address), %s", cfg->admin_listen, cfg->admin_port, cfg->admin_max_conns,
                 cfg->admin_max_conns_per_ip,
                 cfg->auth_token_file[0] ? "admin token required"
                 : cfg->insecure_no_auth ? "NO authentication (--insecure-no-auth)"
                                         : "no admin token (loopback only)");
    } else {
        log_info("config: admin port disabled");
    }
    if (cfg->zk_hosts[0] != '\0') {
        log_info("config: cluster \"%s\" group %" PRIu32 " via ZooKeeper %s (session timeout %d ms)",
                 cfg->cluster, cfg->group, cfg->zk_hosts, cfg->zk_session_timeout_ms);
        if (cfg->forward) {
            log_info("config: keys of other owners are forwarded to their primary (timeout %"
                     PRIu32 " ms)", cfg->forward_timeout_ms);
        } else {
            log_info("config: forwarding off: keys of other owners are refused");
        }
        if (!cfg->write_fencing) {
            log_warn("config: --no-write-fencing: a primary cut off from ZooKeeper keeps taking "
                     "writes; after a failover they may be lost");
        }
        if (cfg->cluster_secret_file[0] != '\0') {
            log_info("config: peer links prove the cluster secret of %s",
                     cfg->cluster_secret_file);
        } else {
            log_warn("config: --insecure-no-peer-auth: peer links are NOT authenticated; "
                     "anyone who reaches the data port can act as a node");
        }
        log_info("config: replication %s (sync timeout %" PRIu32 " ms, backlog %" PRIu32
                 " MiB, async lag bound %" PRIu32 " MiB)", bc_repl_mode_name(cfg->replication),
                 cfg->repl_sync_timeout_ms, cfg->repl_backlog_mb, cfg->repl_max_lag_mb);
        log_info("config: migrations in: %" PRIu32 " at once, each given up after %" PRIu32
                 " ms, copies made ahead caught up every %" PRIu32 " ms",
                 cfg->migrate.max_imports, cfg->migrate.import_timeout_ms,
                 cfg->migrate.catchup_ms);
    } else {
        log_info("config: standalone (no ZooKeeper): every bucket is served here");
    }
    if (bc_origin_config_enabled(&cfg->origin)) {
        const bc_origin_config_t *oc = &cfg->origin;
        log_info("config: read-through origin %s, %" PRIu32 " prefix(es); timeout %" PRIu32
                 " ms (connect %" PRIu32 "), %" PRIu32 " in flight, queue %" PRIu32
                 ", default TTL %" PRIu32 " s, negative TTL %" PRIu32 " s",
                 oc->url[0] ? oc->url : "(none for other keys)", oc->nprefixes,
                 oc->timeout_ms, oc->connect_timeout_ms, oc->max_inflight, oc->max_queue,
                 oc->default_ttl, oc->negative_ttl);
        for (uint32_t i = 0; i < oc->nprefixes; i++) {
            log_info("config: read-through origin for keys \"%s...\": %s", oc->prefixes[i].prefix,
                     oc->prefixes[i].url);
        }
        if (cfg->zk_hosts[0] != '\0' && cfg->forward && oc->timeout_ms >= cfg->forward_timeout_ms) {
            log_warn("config: the origin timeout (%" PRIu32 " ms) is not below the forward "
                     "timeout (%" PRIu32 " ms): a get forwarded to the owner may time out "
                     "while the owner still waits for the origin", oc->timeout_ms,
                     cfg->forward_timeout_ms);
        }
    }
    log_info("config: log level %s%s%s%s", log_level_names[cfg->log_level],
             cfg->pid_file[0] ? ", pid file " : "", cfg->pid_file,
             cfg->daemonize ? ", daemon" : "");
}
