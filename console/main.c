/*
 * main.c -- bucketcache-console: parse the configuration, start the
 * coordinator and its HTTP API, run until SIGTERM/SIGINT, then leave the
 * election cleanly so a standby takes over at once.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "bc_log.h"
#include "config.h"
#include "console.h"
#include "observe.h"

static volatile sig_atomic_t stop_requested;

static void
on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

int
main(int argc, char **argv)
{
    bc_console_cfg_t cfg;
    bc_console_action_t action;
    char err[BC_ERRBUF_LEN] = "";

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

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    bc_console_api_t *api = NULL;
    bc_console_t *console = NULL;
    /* Bind the API first so its real port can be advertised in the election. */
    bc_status_t st = bc_console_api_create(cfg.admin_listen, cfg.admin_port, NULL, &api);
    if (st != BC_OK) {
        fprintf(stderr, "bucketcache-console: cannot listen on %s:%u: %s\n", cfg.admin_listen,
                cfg.admin_port, bc_status_str(st));
        return 1;
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
        fprintf(stderr, "bucketcache-console: cannot start: %s (see the log above)\n", bc_status_str(st));
        bc_console_api_destroy(api);
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
        return 1;
    }
    log_info("console: cluster \"%s\" (%u buckets) via ZooKeeper %s; API on http://%s/",
             cfg.cluster, bc_console_nbuckets(console), cfg.zk_hosts, admin_addr);

    while (!stop_requested) pause();

    log_info("console: shutting down");
    bc_console_api_destroy(api);
    bc_observe_stop(observe);
    bc_console_stop(console);
    log_info("console: stopped");
    return 0;
}
