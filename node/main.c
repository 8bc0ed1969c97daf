/*
 * main.c -- bucketcache-node: parse the configuration, start the parts,
 * wait for a signal, stop the parts in reverse order.
 *
 * HOW
 *
 *   parse flags + --config ------ error --> message on stderr, exit 2
 *        |
 *   block SIGTERM/SIGINT/SIGHUP in every thread (they are taken with
 *   sigwait() by the main thread only), ignore SIGPIPE (a client that goes
 *   away must not kill the process; writes get EPIPE instead)
 *        |
 *   (--zk) read the cluster's bucket count with a short-lived session
 *        |
 *   cache create (-L: touches its memory, mem.h) --> server create (binds) --> admin create (binds)
 *        |                 any failure --> log the reason, exit 1
 *   daemonize (-d) --> pid file (-P) --> switch user (-u, when root)
 *        |
 *   (--zk) join the cluster: session, routing state (still unregistered);
 *   forwarding on unless --no-forward
 *        |
 *   (--origin) the read-through origin (origin/origin.h), told the cluster
 *        |
 *   start: active-expiry thread, origin thread, server workers, admin thread
 *        |
 *   (--zk) register in the group: from now on the console may route here
 *        |
 *   sigwait: SIGHUP --> re-read the admin token file (a token removed
 *   from it stops working at once; docs/security.md) and the cluster
 *   secret file (the same, for peer links)
 *   sigwait: SIGTERM/SIGINT --> leave the cluster first (the registration
 *   vanishes at once, so the console and clients move on without waiting
 *   for a session timeout), stop admin (no more requests touching the
 *   cache), stop the origin thread (fills in flight end; their waiters
 *   answer a miss), stop server (joins workers), stop the expiry thread,
 *   destroy in reverse order of creation, remove the pid file, exit 0.
 *
 *   Sockets are bound before daemonizing or dropping privileges so that a
 *   busy port is reported on the terminal that started the node and so
 *   that -u can be combined with a port below 1024.  No thread exists
 *   before the start step (the cache and server create none until
 *   bc_server_start), which is what makes fork() in -d safe.
 *
 * ACTIVE EXPIRY
 *   Items are expired lazily when touched; the expiry thread also removes
 *   expired items nobody asks for, so that their memory goes back to live
 *   data.  Each round examines at most expiry_scan_budget items
 *   (bc_cache_expire_scan keeps its position between rounds, so the whole
 *   cache is swept over successive rounds).  When a round finds many
 *   expired items (a quarter of the budget or more) the next round starts
 *   at once, up to a few rounds in a row, as Redis does: a mass expiry is
 *   cleared quickly without the thread monopolising shard locks.  Each
 *   round then compacts a few segments left mostly empty (bc_cache_compact),
 *   so that memory freed by expiry, deletes or a bucket moving away goes
 *   back to the system.
 *
 * MEMORY
 *   Items live in the cache's segment arena (engine/seg_int.h), whose memory
 *   the cache gives back to the system itself as its budget dictates; mem.c
 *   sets glibc's policy for the rest (blocks above 64 KiB get their own
 *   mapping).  With -L the cache touches its segments when it is created.
 *   Nothing needs a periodic trim.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "admin.h"
#include "bc_auth.h"
#include "bc_http_client.h"
#include "bc_log.h"
#include "bc_peerauth.h"
#include "bc_mcproto.h"
#include "bc_zk.h"
#include "bc_time.h"
#include "cluster/cluster.h"
#include "config.h"
#include "engine/cache.h"
#include "engine/hotkeys.h"
#include "engine/mem.h"
#include "net/server.h"
#include "net/tls.h"
#include "origin/origin.h"
#include "proto/proto_text.h"
#include "repl/repl.h"

#define EXIT_USAGE 2

/* Forwarding pool, per worker thread (proto/forward.h). */
#define FORWARD_CONNS_PER_PEER 4u
#define FORWARD_MAX_CONNS      64u
#define FORWARD_IDLE_MS        60000u

/* Immediate extra rounds allowed when a round finds many expired items. */
#define EXPIRY_MAX_BURST_ROUNDS 8
/* Sparse segments compacted per round (bc_cache_compact): at most this
 * many segments' worth of copying a second. */
#define COMPACT_SEGMENTS_PER_ROUND 16

/* ---- active expiry thread ---- */

typedef struct expiry_thread {
    pthread_t thread;
    bc_cache_t *cache;
    uint32_t interval_ms;
    uint32_t budget;
    /* LOCKING RULE: stop is set with lock held and cond signalled, so the
     * timed wait cannot miss it; the scan loop also polls it without the
     * lock (hence atomic) to end a burst early. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    atomic_bool stop;
    bool running;
} expiry_thread_t;

static void *
expiry_main(void *arg)
{
    expiry_thread_t *et = arg;
    uint64_t total = 0;

    pthread_mutex_lock(&et->lock);
    while (!et->stop) {
        struct timespec deadline;
        int burst = 0;
        uint64_t removed;

        pthread_mutex_unlock(&et->lock);
        do {
            removed = bc_cache_expire_scan(et->cache, et->budget);
            total += removed;
        } while (removed >= et->budget / 4 && removed > 0 && ++burst < EXPIRY_MAX_BURST_ROUNDS &&
                 !atomic_load_explicit(&et->stop, memory_order_relaxed));
        if (removed > 0) {
            log_debug("active expiry removed %" PRIu64 " items (%" PRIu64 " in total)", removed,
                      total);
        }
        uint32_t compacted = bc_cache_compact(et->cache, COMPACT_SEGMENTS_PER_ROUND);
        if (compacted > 0) log_debug("compacted %" PRIu32 " sparse segments", compacted);
        pthread_mutex_lock(&et->lock);

        bc_time_deadline(&deadline, CLOCK_MONOTONIC, et->interval_ms);
        while (!et->stop) {
            int rc = pthread_cond_timedwait(&et->cond, &et->lock, &deadline);
            if (rc == ETIMEDOUT) break;
        }
    }
    pthread_mutex_unlock(&et->lock);
    return NULL;
}

static bc_status_t
expiry_start(expiry_thread_t *et, bc_cache_t *cache, uint32_t interval_ms, uint32_t budget)
{
    int rc;

    memset(et, 0, sizeof(*et));
    et->cache = cache;
    et->interval_ms = interval_ms;
    et->budget = budget;
    if (interval_ms == 0) return BC_OK;   /* disabled by configuration */
    pthread_mutex_init(&et->lock, NULL);
    bc_time_cond_init(&et->cond);
    rc = pthread_create(&et->thread, NULL, expiry_main, et);
    if (rc != 0) {
        log_error("cannot start the active expiry thread: %s", strerror(rc));
        pthread_cond_destroy(&et->cond);
        pthread_mutex_destroy(&et->lock);
        return BC_ENOMEM;
    }
    et->running = true;
    return BC_OK;
}

static void
expiry_stop(expiry_thread_t *et)
{
    if (!et->running) return;
    pthread_mutex_lock(&et->lock);
    atomic_store(&et->stop, true);
    pthread_cond_signal(&et->cond);
    pthread_mutex_unlock(&et->lock);
    pthread_join(et->thread, NULL);
    pthread_cond_destroy(&et->cond);
    pthread_mutex_destroy(&et->lock);
    et->running = false;
}

/* ---- the data port's protocol ---- */

static void
server_stats_hook(void *server, bc_server_stats_t *out)
{
    bc_server_get_stats(server, out);
}

static void
server_stats_reset_hook(void *server)
{
    bc_server_reset_stats(server);
}

static size_t
server_conns_hook(void *server, bc_conn_info_t **out)
{
    return bc_server_conns(server, out);
}

/* What the text protocol reports in "stats" and "stats settings": the
 * server's settings in force, its figures and its "stats reset". */
static void
proto_env_init(bc_proto_env_t *env, bc_cache_t *cache, bc_server_t *server, int verbosity)
{
    const bc_server_config_t *sc = bc_server_config(server);
    memset(env, 0, sizeof(*env));
    env->cache = cache;
    env->listen_addr = sc->listen_addr;
    env->port = sc->port;
    env->max_conns = sc->max_conns;
    env->nthreads = sc->nthreads;
    env->backlog = sc->backlog;
    env->max_conn_buffer = sc->max_conn_buffer;
    env->idle_timeout = sc->idle_timeout_s;
    env->started = (time_t)bc_cache_now(cache);
    atomic_init(&env->verbosity, verbosity);
    env->hook_arg = server;
    env->server_stats = server_stats_hook;
    env->stats_reset = server_stats_reset_hook;
    env->conns = server_conns_hook;
    env->detail = bc_proto_detail_create();   /* NULL: "stats detail" keeps nothing */
}

/* ---- process setup ---- */

/*
 * Makes room for max_conns sockets plus the listeners, the admin port and
 * the files the process keeps open, as memcached does: raise the soft
 * RLIMIT_NOFILE up to the hard limit (or beyond it when root).
 */
static void
raise_fd_limit(uint32_t max_conns)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)max_conns + 128;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= need) return;
    if (rl.rlim_cur == RLIM_INFINITY) return;
    {
        struct rlimit want = rl;
        want.rlim_cur = need;
        if (want.rlim_max != RLIM_INFINITY && want.rlim_max < need) want.rlim_max = need;
        if (setrlimit(RLIMIT_NOFILE, &want) == 0) return;
    }
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max > rl.rlim_cur) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) getrlimit(RLIMIT_NOFILE, &rl);
    }
    log_warn("max connections is %" PRIu32 " but the open-file limit is %llu: connections "
             "beyond the limit will be refused (raise it with ulimit -n or LimitNOFILE=)",
             max_conns, (unsigned long long)rl.rlim_cur);
}

static void
raise_core_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_CORE, &rl) != 0) return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_CORE, &rl) != 0) {
        log_warn("-r: cannot raise the core file size limit: %s", strerror(errno));
    }
}

/* memcached's -u: only meaningful when started as root.  Returns false on
 * a failure that must stop the process (staying root by accident). */
static bool
switch_user(const char *user)
{
    struct passwd pw, *result = NULL;
    char buf[4096];
    int rc;

    if (user[0] == '\0') return true;
    if (geteuid() != 0) {
        log_info("-u %s ignored: not running as root", user);
        return true;
    }
    rc = getpwnam_r(user, &pw, buf, sizeof(buf), &result);
    if (rc != 0 || result == NULL) {
        log_error("-u %s: no such user%s%s", user, rc ? ": " : "", rc ? strerror(rc) : "");
        return false;
    }
    if (initgroups(pw.pw_name, pw.pw_gid) != 0 || setgid(pw.pw_gid) != 0 ||
        setuid(pw.pw_uid) != 0) {
        log_error("-u %s: cannot switch to the user: %s", user, strerror(errno));
        return false;
    }
    log_info("running as user %s (uid %u)", user, (unsigned)pw.pw_uid);
    return true;
}

/*
 * -d: fork; the parent waits on a pipe until the child reports that
 * everything started (one byte) or failed (EOF), and exits 0 or 1
 * accordingly, so "bucketcache-node -d && echo up" means what it says.
 * Returns the write end of the pipe in the child (-1 on failure).
 */
static int
daemonize(int verbosity)
{
    int fds[2];
    pid_t pid;

    if (pipe(fds) != 0) {
        log_error("-d: pipe: %s", strerror(errno));
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        log_error("-d: fork: %s", strerror(errno));
        return -1;
    }
    if (pid > 0) {
        char c;
        ssize_t n;
        close(fds[1]);
        do {
            n = read(fds[0], &c, 1);
        } while (n < 0 && errno == EINTR);
        _exit(n == 1 ? 0 : 1);
    }
    close(fds[0]);
    if (setsid() < 0) log_warn("-d: setsid: %s", strerror(errno));
    if (chdir("/") != 0) log_warn("-d: chdir /: %s", strerror(errno));
    {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
            /* memcached keeps stderr when verbose; so do we. */
            if (verbosity == 0) dup2(null, STDERR_FILENO);
            if (null > STDERR_FILENO) close(null);
        }
    }
    return fds[1];
}

static bool
write_pid_file(const char *path)
{
    char text[32];
    int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, text, (size_t)n) != n) {
        log_error("cannot write the pid file %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return false;
    }
    close(fd);
    return true;
}

/*
 * "host:port" others reach a listener at: --advertise when given, else the
 * listen address, except that a wildcard listen address says nothing
 * about how to reach us, so it becomes 127.0.0.1 with a warning.
 */
static void
advertised_addr(const bc_node_config_t *cfg, const char *listen, uint16_t port, char *buf,
                size_t len)
{
    const char *host = cfg->advertise[0] ? cfg->advertise : listen;
    if (cfg->advertise[0] == '\0' && (strcmp(listen, "0.0.0.0") == 0 || strcmp(listen, "::") == 0)) {
        log_warn("listening on all addresses: advertising 127.0.0.1 to the cluster (set "
                 "--advertise to the address clients should use)");
        host = "127.0.0.1";
    }
    snprintf(buf, len, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
}

/* The role hook that closes client connections when this node stops being
 * primary (bc_server_close_clients: no request queued in a client's socket
 * is read and forwarded after the failover).  Set before the cluster
 * starts; read by the hook on the agent or ZooKeeper thread. */
static struct {
    bc_server_t *server;
    bc_node_cluster_t *cluster;
    _Atomic bool was_primary;
} demote_close;

static void
on_role_change(void *ctx)
{
    (void)ctx;
    bool primary = bc_node_cluster_is_primary(demote_close.cluster);
    if (atomic_exchange(&demote_close.was_primary, primary) && !primary) {
        bc_server_close_clients(demote_close.server);
    }
}

/* -Z in a cluster: what renews itself with the data port's certificates
 * (bc_tls_on_reload, on SIGHUP or "refresh_certs"): the admin port's
 * HTTPS and this node's client context towards the others' admin ports.
 * Set before the workers start; read on the reloading thread. */
static struct {
    bc_admin_t *admin;            /* NULL: no admin port */
    bc_http_tls_t *http_tls;
} tls_renew;

static void
on_tls_reload(void *ctx, bc_tls_t *tls)
{
    (void)ctx;
    char err[256], *cert = NULL, *key = NULL;
    if (tls_renew.admin != NULL) {
        if (bc_tls_identity_pem(tls, &cert, &key, err, sizeof(err)) != BC_OK ||
            bc_admin_set_tls(tls_renew.admin, cert, key, err, sizeof(err)) != BC_OK) {
            log_error("TLS: the admin port keeps its certificate: %s", err);
        } else {
            log_info("TLS: the admin port's certificate renewed");
        }
        if (key != NULL) OPENSSL_cleanse(key, strlen(key));
        free(key);
        free(cert);
    }
    if (bc_http_tls_reload(tls_renew.http_tls, err, sizeof(err)) != BC_OK) {
        log_error("TLS: requests to other nodes' admin ports keep the certificates they had: %s",
                  err);
    }
}

/* The node's credentials (docs/security.md), each NULL when not configured.
 * Read before anything starts; set as the process's own for its requests to
 * other nodes' admin ports (bc_http_client). */
typedef struct {
    bc_auth_t *auth;              /* the admin token (--auth-token-file) */
    bc_peerauth_t *peer_auth;     /* the cluster secret (--cluster-secret-file) */
    bc_proto_auth_t *mc_auth;     /* -Y: memcached's ASCII authentication */
    bc_tls_t *tls;                /* -Z: the data port's certificates */
    bc_http_tls_t *http_tls;      /* -Z in a cluster: HTTPS to the other nodes' admin ports */
} node_credentials_t;

static void
credentials_close(node_credentials_t *cr)
{
    bc_http_client_set_auth(NULL);
    bc_auth_free(cr->auth);
    bc_peerauth_free(cr->peer_auth);
    bc_proto_auth_free(cr->mc_auth);
    bc_http_client_set_tls(NULL);
    bc_http_tls_free(cr->http_tls);
    bc_tls_free(cr->tls);
    memset(cr, 0, sizeof(*cr));
}

/* Reads every configured credential into *cr (zeroed first).  A file that
 * cannot be used is a usage error: it is reported on stderr with its option,
 * what was read is released, and the result is -1. */
static int
credentials_open(const bc_node_config_t *cfg, node_credentials_t *cr)
{
    char err[BC_ERRBUF_LEN];

    memset(cr, 0, sizeof(*cr));
    if (cfg->auth_token_file[0] != '\0') {
        if (bc_auth_open(cfg->auth_token_file, &cr->auth, err, sizeof(err)) != BC_OK) {
            fprintf(stderr, "bucketcache-node: --auth-token-file: %s\n", err);
            goto fail;
        }
        /* Presented to the other nodes' admin ports (migration imports). */
        bc_http_client_set_auth(cr->auth);
    }
    if (cfg->cluster_secret_file[0] != '\0') {
        if (cfg->zk_hosts[0] == '\0') {
            log_warn("--cluster-secret-file is ignored: a standalone node has no peers");
        } else if (bc_peerauth_open(cfg->cluster_secret_file, &cr->peer_auth, err, sizeof(err)) !=
                   BC_OK) {
            fprintf(stderr, "bucketcache-node: --cluster-secret-file: %s\n", err);
            goto fail;
        }
    }
    if (cfg->mc_auth_file[0] != '\0' &&
        bc_proto_auth_open(cfg->mc_auth_file, &cr->mc_auth, err, sizeof(err)) != BC_OK) {
        fprintf(stderr, "bucketcache-node: -Y: %s\n", err);
        goto fail;
    }
    if (cfg->tls) {
        bc_tls_config_t tc = {
            .chain_cert = cfg->tls_chain_cert,
            .key = cfg->tls_key,
            .ca_cert = cfg->tls_ca_cert,
            .verify_mode = cfg->tls_verify_mode,
            .min_version = cfg->tls_min_version,
            .ciphers = cfg->tls_ciphers,
        };
        if (bc_tls_open(&tc, &cr->tls, err, sizeof(err)) != BC_OK) {
            fprintf(stderr, "bucketcache-node: -Z: %s\n", err);
            goto fail;
        }
    }
    /* BEHAVIOR: with -Z in a cluster the admin ports of the nodes serve
     * HTTPS (below), so this node's own requests to them (migration
     * imports, promotion checks) go over TLS, verifying the other node's
     * certificate against the cluster's CA and the address it was
     * reached at, presenting this node's own. */
    if (cfg->tls && cfg->zk_hosts[0] != '\0') {
        bc_http_tls_config_t hc = {
            .ca_file = cfg->tls_ca_cert,
            .cert_file = cfg->tls_chain_cert,
            .key_file = cfg->tls_key[0] != '\0' ? cfg->tls_key : NULL,
        };
        if (bc_http_tls_open(&hc, &cr->http_tls, err, sizeof(err)) != BC_OK) {
            fprintf(stderr, "bucketcache-node: -Z: %s\n", err);
            goto fail;
        }
        bc_http_client_set_tls(cr->http_tls);
    }
    if (bc_zk_use_auth_file(cfg->zk_auth_file, err, sizeof(err)) != BC_OK) {
        fprintf(stderr, "bucketcache-node: --zk-auth-file: %s\n", err);
        goto fail;
    }

    return 0;

fail:
    credentials_close(cr);
    return -1;
}

int
main(int argc, char **argv)
{
    bc_node_config_t cfg;
    bc_node_config_action_t action;
    char err[BC_ERRBUF_LEN];
    bc_cache_t *cache = NULL;
    bc_hotkeys_t *hotkeys = NULL;
    bc_server_t *server = NULL;
    bc_proto_env_t proto_env;     /* the text protocol's; outlives the server */
    bc_admin_t *admin = NULL;
    bc_node_cluster_t *cluster = NULL;
    bc_repl_t *repl = NULL;
    bc_origin_t *origin = NULL;
    node_credentials_t creds;
    uint32_t nbuckets;
    expiry_thread_t expiry;
    sigset_t waitset;
    int ready_fd = -1;
    int exit_code = 1;
    bool pid_written = false;
    bc_status_t st;
    int sig = 0;

    memset(&expiry, 0, sizeof(expiry));
    bc_log_set_component("node");
    st = bc_node_config_parse_args(&cfg, argc, argv, &action, err, sizeof(err));
    if (st != BC_OK) {
        fprintf(stderr, "bucketcache-node: %s\n", err);
        return EXIT_USAGE;
    }
    if (action == BC_NODE_SHOW_HELP) {
        bc_node_config_usage(stdout, "bucketcache-node");
        return 0;
    }
    if (action == BC_NODE_SHOW_VERSION) {
        printf("bucketcache-node %s (memcached protocol %s)\n", BC_VERSION,
               BC_MC_PROTOCOL_VERSION);
        return 0;
    }
    bc_log_set_level((bc_log_level_t)cfg.log_level);

    /* ---- credentials: read before anything starts, a bad file is a
     * usage error ---- */
    if (credentials_open(&cfg, &creds) != 0) return EXIT_USAGE;

    /* Before any thread exists, so every thread inherits the mask. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&waitset);
    sigaddset(&waitset, SIGTERM);
    sigaddset(&waitset, SIGINT);
    sigaddset(&waitset, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &waitset, NULL);

    log_info("bucketcache-node %s starting (pid %ld)", BC_VERSION, (long)getpid());
    bc_node_config_log(&cfg);
    raise_fd_limit(cfg.max_conns + (cfg.admin_port != 0 ? cfg.admin_max_conns : 0));
    if (cfg.enable_coredumps) raise_core_limit();

    bc_node_mem_policy();
    nbuckets = cfg.nbuckets;
    if (cfg.zk_hosts[0] != '\0') {
        /* The cluster fixes the bucket count; --buckets only applies alone. */
        st = bc_node_cluster_probe(cfg.zk_hosts, cfg.cluster, cfg.zk_session_timeout_ms, &nbuckets);
        if (st != BC_OK) {
            fprintf(stderr, "bucketcache-node: cannot join cluster \"%s\" at %s: %s\n",
                    cfg.cluster, cfg.zk_hosts,
                    st == BC_ENOTFOUND ? "the cluster does not exist (bucketcache cluster create)"
                    : st == BC_EACCES ? "ZooKeeper refused access (NOAUTH): check --zk-auth-file"
                                       : bc_status_str(st));
            goto out;
        }
    }
    {
        bc_cache_config_t cc = {
            .mem_limit = (size_t)cfg.mem_limit,
            .max_item_size = cfg.max_item_size,
            .nbuckets = nbuckets,
            .nshards = 0,
            .policy = cfg.eviction,
            .now = NULL,
            .prealloc = cfg.prealloc,
        };
        st = bc_cache_create(&cc, &cache);
        if (st != BC_OK) {
            log_error("cannot create the cache (%s)", bc_status_str(st));
            goto out;
        }
        /* Hot keys: a sample of the workers' requests (engine/hotkeys.h). */
        hotkeys = bc_hotkeys_create(BC_HOTKEYS_DEFAULT_CAPACITY, BC_HOTKEYS_DEFAULT_EVERY,
                                    BC_HOTKEYS_DEFAULT_HALF_LIFE_S);
        if (hotkeys == NULL) {
            log_error("cannot create the hot-key sketch (out of memory)");
            st = BC_ENOMEM;
            goto out;
        }
        bc_cache_set_sampler(cache, bc_hotkeys_sampler, hotkeys, BC_HOTKEYS_DEFAULT_EVERY);
    }
    {
        bc_server_listen_t plain[BC_SERVER_PLAIN_LISTEN_MAX];
        for (uint32_t i = 0; i < cfg.nplain_listen && i < BC_SERVER_PLAIN_LISTEN_MAX; i++) {
            plain[i] = (bc_server_listen_t){cfg.plain_listen_host[i], cfg.plain_listen_port[i]};
        }
        bc_server_config_t sc = {
            .tls = creds.tls,
            .plain_listen = plain,
            .nplain_listen = cfg.nplain_listen,
            .listen_addr = cfg.listen_addr,
            .port = cfg.port,
            .nthreads = cfg.threads,
            .max_conns = cfg.max_conns,
            .max_conn_buffer = cfg.max_conn_buffer,
            .backlog = cfg.backlog,
            .idle_timeout_s = cfg.idle_timeout_s,
        };
        st = bc_server_create(&sc, cache, &bc_proto_text_handler, &proto_env, &server);
        if (st != BC_OK) {
            log_error("cannot listen on %s:%u for the memcached protocol (%s)", cfg.listen_addr,
                      cfg.port, bc_status_str(st));
            goto out;
        }
        /* The protocol knows memcached's levels 0..2; -vvv only raises the
         * log level further. */
        proto_env_init(&proto_env, cache, server, cfg.verbosity > 2 ? 2 : cfg.verbosity);
        proto_env.auth = creds.mc_auth;
        proto_env.tls = creds.tls;
        /* "stats settings" inter as memcached shows it: the -l list */
        static char inter[BC_HOST_MAX + 4 * (BC_HOST_MAX + 16)];
        size_t n = (size_t)snprintf(inter, sizeof(inter), "%s", cfg.listen_addr);
        for (uint32_t i = 0; i < cfg.nplain_listen && n < sizeof(inter); i++) {
            n += (size_t)snprintf(inter + n, sizeof(inter) - n, ",notls:%s:%u",
                                  cfg.plain_listen_host[i], (unsigned)cfg.plain_listen_port[i]);
        }
        proto_env.listen_addr = inter;
    }
    if (cfg.admin_port != 0) {
        /* -Z in a cluster: the admin port serves HTTPS with the data
         * port's certificate (docs/security.md: migrations copy buckets
         * through it). */
        char *admin_cert = NULL, *admin_key = NULL;
        if (creds.http_tls != NULL &&
            bc_tls_identity_pem(creds.tls, &admin_cert, &admin_key, err, sizeof(err)) != BC_OK) {
            log_error("-Z: %s", err);
            goto out;
        }
        bc_admin_config_t ac = {
            .listen_addr = cfg.admin_listen,
            .port = cfg.admin_port,
            .max_conns = cfg.admin_max_conns,
            .conn_timeout_s = 0,
            .max_conns_per_ip = cfg.admin_max_conns_per_ip,
            .auth = creds.auth,
            .insecure_no_auth = cfg.insecure_no_auth,
            .peer_auth = creds.peer_auth,
            .migrate = cfg.migrate,
            .tls_cert_pem = admin_cert,
            .tls_key_pem = admin_key,
        };
        st = bc_admin_create(&ac, cache, server, &admin);
        if (admin_key != NULL) OPENSSL_cleanse(admin_key, strlen(admin_key));
        free(admin_key);
        free(admin_cert);
        if (st == BC_ECONFIG) {
            /* beyond loopback without a token, or HTTPS that cannot be
             * served: the log said why */
            exit_code = EXIT_USAGE;
            goto out;
        }
        if (st != BC_OK) {
            log_error("cannot listen on %s:%u for the admin port (%s)", cfg.admin_listen,
                      cfg.admin_port, bc_status_str(st));
            goto out;
        }
        bc_admin_set_hotkeys(admin, hotkeys);
    }
    if (creds.http_tls != NULL) {
        tls_renew.admin = admin;
        tls_renew.http_tls = creds.http_tls;
        bc_tls_on_reload(creds.tls, on_tls_reload, NULL);
    }

    /* The pid file is written with the daemon's pid and before switching
     * user, so it can live in a root-owned directory such as /run. */
    if (cfg.daemonize) {
        ready_fd = daemonize(cfg.verbosity);
        if (ready_fd < 0) goto out;
    }
    if (cfg.pid_file[0] != '\0') {
        if (!write_pid_file(cfg.pid_file)) goto out;
        pid_written = true;
    }
    if (!switch_user(cfg.run_as_user)) goto out;
    if (cfg.lock_memory && mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
        log_warn("-k: cannot lock memory: %s (continuing unlocked)", strerror(errno));
    }

    if (cfg.zk_hosts[0] != '\0') {
        bc_node_cluster_config_t ncc = {
            .zk_hosts = cfg.zk_hosts, .cluster = cfg.cluster, .gid = cfg.group,
            .session_timeout_ms = cfg.zk_session_timeout_ms, .memory = cfg.mem_limit,
            .no_write_fencing = !cfg.write_fencing,
        };
        uint32_t joined_nbuckets = 0;
        st = bc_node_cluster_join(&ncc, &joined_nbuckets, &cluster);
        if (st != BC_OK) goto out;
        if (joined_nbuckets != nbuckets) {
            log_error("cluster \"%s\" reports %u buckets, %u a moment ago; refusing to start",
                      cfg.cluster, joined_nbuckets, nbuckets);
            goto out;
        }
        bc_server_set_cluster(server, cluster);
        proto_env.cluster = cluster;
        proto_env.peer_auth = creds.peer_auth;
        if (cfg.forward) {
            /* A reply buffered for forwarding is bounded like what one
             * client may have queued: the larger of the connection output
             * limit and one item, plus room for headers. */
            size_t out_limit = cfg.max_conn_buffer > cfg.max_item_size ? cfg.max_conn_buffer
                                                                       : cfg.max_item_size;
            bc_fwd_config_t fc = {
                .timeout_ms = cfg.forward_timeout_ms,
                .max_reply = out_limit + 64u * 1024u,
                .conns_per_peer = FORWARD_CONNS_PER_PEER,
                .max_conns = FORWARD_MAX_CONNS,
                .idle_ms = FORWARD_IDLE_MS,
                .peer_auth = creds.peer_auth,
                .tls = creds.tls,
            };
            proto_env.forward = true;
            proto_env.fwd_cfg = fc;
            /* A client's write in a bucket's migration pause waits (proto_text.h):
             * at most a second, and well within the forward timeout, so a
             * forwarding node's retries end before its own deadline. */
            proto_env.readonly_wait_ms = cfg.forward_timeout_ms / 2 < 1000u
                                             ? cfg.forward_timeout_ms / 2
                                             : 1000u;
            /* A test knob: the tries of such a write this far apart, so that
             * only the new table that ends the pause can let it go on in
             * time. */
            const char *retry = getenv("BC_TEST_PAUSE_RETRY_MS");
            uint64_t v;
            if (retry != NULL && bc_parse_u64n(retry, strlen(retry), 60000, &v) && v > 0) {
                log_warn("BC_TEST_PAUSE_RETRY_MS=%u: a write waiting out a migration pause is "
                         "tried again at most every %u ms (for tests)", (unsigned)v,
                         (unsigned)v);
                proto_env.pause_retry_ms = (uint32_t)v;
            }
        }
        if (admin != NULL) bc_admin_set_cluster(admin, cluster);

        bc_repl_config_t rc = {
            .cache = cache, .cluster = cluster,
            .mode = cfg.replication,
            .sync_timeout_ms = cfg.repl_sync_timeout_ms,
            .backlog_bytes = (size_t)cfg.repl_backlog_mb << 20,
            .max_lag_bytes = (uint64_t)cfg.repl_max_lag_mb << 20,
            .max_backups = 0,
            .peer_auth = creds.peer_auth,
            .tls = creds.tls,
        };
        st = bc_repl_create(&rc, &repl);
        if (st != BC_OK) {
            log_error("cannot set up replication (%s)", bc_status_str(st));
            goto out;
        }
        bc_server_set_handoff(server, bc_repl_handoff, repl);
        proto_env.handoff_replicate = true;
        bc_server_set_commit(server, bc_repl_commit_wait, repl);
        demote_close.server = server;
        demote_close.cluster = cluster;
        (void)bc_node_cluster_set_role_hook(cluster, on_role_change, NULL);
        proto_env.repl_stats = bc_repl_format_stats;
        proto_env.repl_ctx = repl;
        if (admin != NULL) bc_admin_set_repl(admin, repl);
    }

    if (bc_origin_config_enabled(&cfg.origin)) {
        st = bc_origin_create(&cfg.origin, cache, &origin);
        if (st != BC_OK) {
            log_error("cannot set up the read-through origin (%s)", bc_status_str(st));
            goto out;
        }
        /* In a cluster only the bucket's primary fills (origin.h). */
        bc_origin_set_cluster(origin, cluster);
        proto_env.origin = origin;
        if (admin != NULL) bc_admin_set_origin(admin, origin);
    }

    if (expiry_start(&expiry, cache, cfg.expiry_interval_ms, cfg.expiry_scan_budget) != BC_OK) {
        goto out;
    }
    if (origin != NULL && bc_origin_start(origin) != BC_OK) goto out;
    st = bc_server_start(server);
    if (st != BC_OK) {
        log_error("cannot start the worker threads (%s)", bc_status_str(st));
        goto out;
    }
    if (admin != NULL) {
        st = bc_admin_start(admin);
        if (st != BC_OK) {
            log_error("cannot start the admin port (%s)", bc_status_str(st));
            goto out;
        }
    }
    log_info("ready: memcached protocol on %s:%u%s%s", cfg.listen_addr, bc_server_port(server),
             creds.tls != NULL ? " (TLS)" : "", admin != NULL ? "" : " (admin port disabled)");
    for (uint32_t i = 0; i < cfg.nplain_listen; i++) {
        log_info("ready: memcached protocol on %s:%u (plain, notls)", cfg.plain_listen_host[i],
                 bc_server_plain_port(server, i));
    }
    if (admin != NULL) {
        log_info("ready: admin %s on %s://%s:%u/", creds.http_tls != NULL ? "HTTPS" : "HTTP",
                 creds.http_tls != NULL ? "https" : "http", cfg.admin_listen, bc_admin_port(admin));
    }
    if (cluster != NULL) {
        char data_addr[BC_HOST_MAX + 16], admin_addr[BC_HOST_MAX + 16] = "";
        advertised_addr(&cfg, cfg.listen_addr, bc_server_port(server), data_addr,
                        sizeof(data_addr));
        if (admin != NULL) {
            advertised_addr(&cfg, cfg.admin_listen, bc_admin_port(admin), admin_addr,
                            sizeof(admin_addr));
        }
        st = bc_node_cluster_start(cluster, cache, data_addr, admin_addr);
        if (st != BC_OK) {
            log_error("cannot register in group %u of cluster \"%s\" (%s)", cfg.group,
                      cfg.cluster, bc_status_str(st));
            goto out;
        }
        st = bc_repl_start(repl);
        if (st != BC_OK) {
            log_error("cannot start replication (%s)", bc_status_str(st));
            goto out;
        }
    }
    if (ready_fd >= 0) {
        char c = 1;
        if (write(ready_fd, &c, 1) != 1) log_warn("-d: cannot notify the parent process");
        close(ready_fd);
        ready_fd = -1;
    }

    for (;;) {
        if (sigwait(&waitset, &sig) != 0) continue;
        if (sig == SIGHUP) {
            if (creds.peer_auth != NULL) {
                if (bc_peerauth_reload(creds.peer_auth, err, sizeof(err)) == BC_OK) {
                    log_info("SIGHUP received: cluster secret file %s re-read",
                             bc_peerauth_source(creds.peer_auth));
                } else {
                    log_error("SIGHUP received: cannot re-read the cluster secret file, the "
                              "secret in force stays: %s", err);
                }
            }
            if (creds.tls != NULL) {
                if (bc_tls_reload(creds.tls, err, sizeof(err)) == BC_OK) {
                    log_info("SIGHUP received: TLS certificates re-read");
                } else {
                    log_error("SIGHUP received: cannot re-read the TLS certificates, the ones in "
                              "force stay: %s", err);
                }
            }
            if (creds.mc_auth != NULL) {
                if (bc_proto_auth_reload(creds.mc_auth, err, sizeof(err)) == BC_OK) {
                    log_info("SIGHUP received: -Y file %s re-read",
                             bc_proto_auth_source(creds.mc_auth));
                } else {
                    log_error("SIGHUP received: cannot re-read the -Y file, the users in force "
                              "stay: %s", err);
                }
            }
            if (creds.auth != NULL) {
                if (bc_auth_reload(creds.auth, err, sizeof(err)) == BC_OK) {
                    log_info("SIGHUP received: admin token file %s re-read",
                             bc_auth_source(creds.auth));
                } else {
                    log_error("SIGHUP received: cannot re-read the admin token file, the "
                              "tokens in force stay: %s", err);
                }
            } else if (creds.peer_auth == NULL && creds.mc_auth == NULL && creds.tls == NULL) {
                log_info("SIGHUP received: ignored (no --auth-token-file to re-read; restart "
                         "to apply a new configuration)");
            }
            continue;
        }
        break;
    }
    log_info("%s received: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    exit_code = 0;

out:
    /* Reverse order: nothing that uses the cache may run when it goes.
     * Leaving the cluster first makes the console and clients move on at
     * once instead of after a session timeout. */
    bc_node_cluster_leave(cluster);
    if (admin != NULL) bc_admin_stop(admin);
    /* Before replication and the workers: a fill stores (and replicates)
     * on the origin thread. */
    bc_origin_stop(origin);
    bc_repl_stop(repl);
    if (server != NULL) bc_server_stop(server);
    expiry_stop(&expiry);
    bc_admin_destroy(admin);
    if (server != NULL) {
        bc_server_destroy(server);
        bc_proto_detail_destroy(proto_env.detail);   /* set up with the server */
    }
    bc_origin_destroy(origin);   /* after its clients: the admin's, the workers' */
    bc_repl_destroy(repl);
    bc_node_cluster_free(cluster);
    credentials_close(&creds);
    if (cache != NULL) {
        bc_cache_stats_t cs;
        bc_cache_get_stats(cache, &cs);
        log_info("stopping with %" PRIu64 " items, %" PRIu64 " bytes in use", cs.curr_items,
                 cs.mem_used);
        bc_cache_destroy(cache);
    }
    bc_hotkeys_destroy(hotkeys);
    if (pid_written) unlink(cfg.pid_file);
    if (ready_fd >= 0) close(ready_fd);  /* parent of -d sees EOF: exits 1 */
    log_info("stopped (exit status %d)", exit_code);
    return exit_code;
}
