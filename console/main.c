/*
 * main.c -- bucketcache-console: parse the configuration, read the
 * credentials, start the coordinator and its HTTP API, run until
 * SIGTERM/SIGINT, then leave the election cleanly so a standby takes over
 * at once.  SIGHUP re-reads the admin token file (docs/security.md).
 *
 * Signals are blocked in every thread (the mask is set before any thread
 * exists) and taken with sigwait() by the main thread only.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api.h"
#include "bc_auth.h"
#include "bc_http_client.h"
#include "bc_log.h"
#include "bc_zk.h"
#include "config.h"
#include "console.h"
#include "observe.h"

/*
 * Room for every API connection (2048 by default) and the console's own
 * sockets: raises the soft RLIMIT_NOFILE up to the hard limit.
 */
static void
raise_fd_limit(rlim_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need) {
        return;
    }
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < need) {
        log_warn("the open-file limit is %llu, below the %llu the API's connections may need "
                 "(raise it with ulimit -n or LimitNOFILE=)", (unsigned long long)rl.rlim_cur,
                 (unsigned long long)need);
    }
}

/* Releases the admin token and the TLS context towards the nodes' admin
 * ports, taking them back from the HTTP client first (every exit). */
static void
credentials_close(bc_auth_t *auth, bc_http_tls_t *node_tls)
{
    bc_http_client_set_auth(NULL);
    bc_http_client_set_tls(NULL);
    bc_http_tls_free(node_tls);
    bc_auth_free(auth);
}

int
main(int argc, char **argv)
{
    bc_console_cfg_t cfg;
    bc_console_action_t action;
    char err[BC_ERRBUF_LEN] = "";
    bc_auth_t *auth = NULL;

    bc_log_set_component("console");
    if (bc_console_cfg_parse_args(&cfg, argc, argv, &action, err, sizeof(err)) != BC_OK) {
        fprintf(stderr, "bucketcache-console: %s\n", err);
        return 2;
    }
    if (action == BC_CONSOLE_SHOW_HELP) {
        bc_console_cfg_usage(stdout, "bucketcache-console");
        return 0;
    }
    if (action == BC_CONSOLE_SHOW_VERSION) {
        printf("bucketcache-console %s\n", BC_VERSION);
        return 0;
    }
    bc_log_set_level((bc_log_level_t)cfg.log_level);

    /* ---- credentials (docs/security.md) ---- */
    if (cfg.auth_token_file[0] != '\0') {
        if (bc_auth_open(cfg.auth_token_file, &auth, err, sizeof(err)) != BC_OK) {
            fprintf(stderr, "bucketcache-console: --auth-token-file: %s\n", err);
            return 2;
        }
        /* Presented to the nodes' admin ports (migrations, bucket sizes). */
        bc_http_client_set_auth(auth);
    }
    if (bc_zk_use_auth_file(cfg.zk_auth_file, err, sizeof(err)) != BC_OK) {
        fprintf(stderr, "bucketcache-console: --zk-auth-file: %s\n", err);
        bc_auth_free(auth);
        return 2;
    }
    /* The nodes run with -Z: every request to their admin ports (all this
     * process makes with bc_http_client) is HTTPS, their certificates
     * checked against this CA and the addresses they advertise. */
    bc_http_tls_t *node_tls = NULL;
    if (cfg.node_tls_ca_file[0] != '\0') {
        bc_http_tls_config_t tc = {.ca_file = cfg.node_tls_ca_file};
        if (bc_http_tls_open(&tc, &node_tls, err, sizeof(err)) != BC_OK) {
            fprintf(stderr, "bucketcache-console: --node-tls-ca-file: %s\n", err);
            bc_http_client_set_auth(NULL);
            bc_auth_free(auth);
            return 2;
        }
        bc_http_client_set_tls(node_tls);
    }

    /* Before any thread exists, so every thread inherits the mask. */
    sigset_t waitset;
    sigemptyset(&waitset);
    sigaddset(&waitset, SIGTERM);
    sigaddset(&waitset, SIGINT);
    sigaddset(&waitset, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &waitset, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit((rlim_t)cfg.max_conns + 256);

    bc_console_api_t *api = NULL;
    bc_console_t *console = NULL;
    /* Bind the API first so its real port can be advertised in the
     * election.  A configured port is that port; the default moves up to
     * the next free one (logged), so consoles side by side on one host all
     * run: the CLI and the nodes' dashboards read the port from ZooKeeper. */
    unsigned tries = cfg.admin_port_given ? 1 : BC_CONSOLE_ADMIN_PORT_TRIES;
    bc_console_api_access_t access = {
        .auth = auth, .insecure_no_auth = cfg.insecure_no_auth,
        .max_conns = cfg.max_conns, .max_conns_per_ip = cfg.max_conns_per_ip,
        .port_tries = tries,
    };
    bc_status_t st = bc_console_api_create_secure(cfg.admin_listen, cfg.admin_port, NULL, &access,
                                                  &api);
    if (st != BC_OK) {
        if (st == BC_ECONFIG) {
            fprintf(stderr, "bucketcache-console: refusing to serve the API on %s beyond "
                            "loopback without --auth-token-file (or --insecure-no-auth)\n",
                    cfg.admin_listen);
        } else if (tries > 1) {
            fprintf(stderr, "bucketcache-console: cannot listen on %s, ports %u..%u: %s\n",
                    cfg.admin_listen, cfg.admin_port, cfg.admin_port + tries - 1,
                    bc_status_str(st));
        } else {
            fprintf(stderr, "bucketcache-console: cannot listen on %s:%u: %s\n", cfg.admin_listen,
                    cfg.admin_port, bc_status_str(st));
        }
        credentials_close(auth, node_tls);
        return st == BC_ECONFIG ? 2 : 1;
    }
    const char *host = cfg.advertise[0] ? cfg.advertise
                     : strcmp(cfg.admin_listen, "0.0.0.0") == 0 || strcmp(cfg.admin_listen, "::") == 0
                         ? "127.0.0.1" : cfg.admin_listen;
    char admin_addr[BC_HOST_MAX + 8];
    snprintf(admin_addr, sizeof(admin_addr), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
             bc_console_api_port(api));

    bc_console_config_t ccfg = {
        .zk_hosts = cfg.zk_hosts, .cluster = cfg.cluster,
        .session_timeout_ms = cfg.session_timeout_ms, .admin_addr = admin_addr,
        .orphan_grace_ms = cfg.orphan_grace_ms, .reconcile_interval_ms = 1000,
        .migrations_parallel = cfg.migrations_parallel,
        .migration_timeout_ms = cfg.migration_timeout_ms,
        .precopy = cfg.migrations_precopy,
        .precopy_ahead = cfg.precopy_ahead,
    };
    st = bc_console_start(&ccfg, &console);
    if (st != BC_OK) {
        fprintf(stderr, "bucketcache-console: cannot start: %s (see the log above)\n",
                st == BC_EACCES ? "ZooKeeper refused access (NOAUTH): check --zk-auth-file"
                                : bc_status_str(st));
        bc_console_api_destroy(api);
        credentials_close(auth, node_tls);
        return 1;
    }
    bc_console_api_attach(api, console);
    bc_observe_config_t ocfg = {
        .interval_ms = cfg.stats_interval_ms, .history_s = 300,
        .backup_lag_warn_ms = cfg.backup_lag_warn_ms,
        .migration_stuck_ms = cfg.migration_stuck_ms,
    };
    bc_observe_t *observe = NULL;
    if (bc_observe_start(console, &ocfg, &observe) != BC_OK) {
        log_warn("console: cannot start the statistics sampler (out of memory); the dashboard "
                 "shows no figures");
    }
    bc_console_api_set_observe(api, observe);
    if (bc_console_api_start(api) != BC_OK) {
        bc_observe_stop(observe);
        bc_console_stop(console);
        bc_console_api_destroy(api);
        credentials_close(auth, node_tls);
        return 1;
    }
    log_info("console: cluster \"%s\" (%u buckets) via ZooKeeper %s; API on http://%s/",
             cfg.cluster, bc_console_nbuckets(console), cfg.zk_hosts, admin_addr);

    int sig = 0;
    for (;;) {
        if (sigwait(&waitset, &sig) != 0) continue;
        if (sig != SIGHUP) break;
        if (auth == NULL) {
            log_info("console: SIGHUP: nothing to reload (no --auth-token-file)");
        } else if (bc_auth_reload(auth, err, sizeof(err)) == BC_OK) {
            log_info("console: SIGHUP: admin token file %s re-read", bc_auth_source(auth));
        } else {
            log_error("console: SIGHUP: cannot re-read the admin token file, the tokens in "
                      "force stay: %s", err);
        }
    }

    log_info("console: shutting down");
    bc_console_api_destroy(api);
    bc_observe_stop(observe);
    bc_console_stop(console);
    credentials_close(auth, node_tls);
    log_info("console: stopped");
    return 0;
}
