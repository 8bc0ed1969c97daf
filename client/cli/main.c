/*
 * main.c -- `bucketcache`, the command-line tool: the global flags, usage,
 * and dispatch to a command.
 *
 *   bucketcache [--zk HOSTS] [--cluster NAME] [--json] COMMAND [ARGS]
 *
 *   cluster create --buckets N   create a cluster's ZooKeeper layout (once)
 *   status                       the cluster at a glance (from the console)
 *   groups                       every group and node with its role
 *   group config GID ...         a group's replication settings
 *   group failover GID --unclean promote a backup outside the in-sync set
 *   tables [--per-bucket]        show the c, m and d tables
 *   rebalance [--dry-run]        recompute d now (or just show the plan)
 *   locate KEY                   the key's bucket, owner group and primary
 *   migrations [--watch]         bucket migration progress (migrations.c)
 *
 *   get KEY...                   read values (through libbucketcache)
 *   set KEY [VALUE|-]            store a value (argument, stdin or --file)
 *   del KEY...                   delete keys
 *   touch --ttl SECS KEY...      set keys' expiry time
 *   incr|decr KEY [DELTA]        add to / subtract from a decimal value
 *
 * --zk and --cluster default to $BUCKETCACHE_ZK and $BUCKETCACHE_CLUSTER.
 * The cluster commands (admin.c) talk to ZooKeeper and the console; the
 * data commands (data.c) are plain libbucketcache calls, routed to each
 * key's primary with the library's retries.  Exit codes (stable, for
 * scripts; cli.h):
 *   0 success, 1 the operation failed, 2 usage error,
 *   3 not found (no such cluster, key or bucket owner), 4 ZooKeeper
 *   unreachable, 5 already exists (cluster; add of an existing key),
 *   6 timed out (no answer from the key's owner within --timeout),
 *   7 the key's bucket has no owner (its group is down).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "bc_hash.h"
#include "bc_log.h"
#include "cli.h"
#include "data.h"
#include "migrations.h"

static void
main_usage(FILE *out)
{
    fprintf(out,
            "usage: bucketcache [--zk HOSTS] [--cluster NAME] [--json] COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  cluster create --buckets N   create a cluster (N buckets, fixed forever; default %u)\n"
            "  status                       the cluster at a glance (asks the console)\n"
            "  groups                       every group and node with its role\n"
            "  tables [--per-bucket]        show the c (clients), m (data now) and d (target) tables\n"
            "  rebalance [--dry-run]        recompute where buckets belong (--dry-run: show the plan only)\n"
            "  locate KEY                   which bucket, group and primary node serve KEY\n"
            "  migrations [--watch]         bucket migration progress; pause|resume|cancel\n"
            "  group config GID             show or change a group's replication settings:\n"
            "      [--replication async|sync] [--sync-timeout-ms N] [--max-lag-mb N]\n"
            "      [--min-in-sync N]        backups in sync a write needs (sync default 1,\n"
            "                               async 0; 0 = degrade to the primary alone) [--clear]\n"
            "  group failover GID --unclean promote the best live node of a group whose primary\n"
            "                               is gone with no in-sync backup alive: may lose\n"
            "                               acknowledged writes (it says how much)\n"
            "\n"
            "data commands (through libbucketcache):\n"
            "  get KEY...                   print the value of KEY (several keys: KEY<TAB>VALUE lines)\n"
            "  set KEY [VALUE|-]            store VALUE; from stdin when VALUE is - or missing\n"
            "      [--file F] [--ttl SECS] [--flags N] [--add|--replace|--append|--prepend]\n"
            "      [--cas N]                store only if unchanged since `gets` printed N\n"
            "  gets KEY                     print CAS<TAB>VALUE (for set --cas)\n"
            "  del KEY...                   delete keys\n"
            "  touch --ttl SECS KEY...      set keys' expiry (0 = never)\n"
            "  incr|decr KEY [DELTA]        add/subtract DELTA (default 1), print the result\n"
            "\n"
            "options:\n"
            "  --zk HOSTS       ZooKeeper hosts, host:port[,host:port...] (env BUCKETCACHE_ZK)\n"
            "  --cluster NAME   cluster name (env BUCKETCACHE_CLUSTER)\n"
            "  --timeout MS     deadline of each data command (default 2000)\n"
            "  --json           machine-readable output\n"
            "  -v, --verbose    log what the library does\n"
            "  -h, --help       this text\n"
            "\n"
            "exit codes: 0 ok, 1 failed, 2 usage, 3 not found, 4 ZooKeeper unreachable, 5 exists,\n"
            "            6 timed out, 7 bucket has no owner (group down)\n",
            BC_DEFAULT_NBUCKETS);
}

int
main(int argc, char **argv)
{
    bc_cli_t cli = {
        .zk_hosts = getenv("BUCKETCACHE_ZK"),
        .cluster = getenv("BUCKETCACHE_CLUSTER"),
        .session_timeout_ms = 10000,
        .timeout_ms = 2000,
    };
    static const struct option opts[] = {
        {"zk", required_argument, NULL, 'z'},
        {"cluster", required_argument, NULL, 'C'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {"verbose", no_argument, NULL, 'v'},
        {"timeout", required_argument, NULL, 't'},
        {0, 0, 0, 0},
    };
    int c;
    bc_log_set_component("cli");
    bc_log_set_level(BC_LOG_WARN);
    /* "+" stops at the first non-option: the command and its own flags. */
    while ((c = getopt_long(argc, argv, "+hv", opts, NULL)) != -1) {
        switch (c) {
        case 'z': cli.zk_hosts = optarg; break;
        case 'C': cli.cluster = optarg; break;
        case 'j': cli.json = 1; break;
        case 'v':
            bc_log_set_level(BC_LOG_DEBUG);
            cli.verbose = 1;
            break;
        case 't': {
            char *end;
            long t = strtol(optarg, &end, 10);
            if (*end != '\0' || t < 1 || t > 3600000) {
                fprintf(stderr, "bucketcache: --timeout must be 1..3600000 ms, got \"%s\"\n", optarg);
                return BC_CLI_EXIT_USAGE;
            }
            cli.timeout_ms = (int)t;
            break;
        }
        case 'h': main_usage(stdout); return BC_CLI_EXIT_OK;
        default: main_usage(stderr); return BC_CLI_EXIT_USAGE;
        }
    }
    int rest = argc - optind;
    char **args = argv + optind;
    /* Accept --json after the command too: scan and strip it. */
    int kept = 0;
    for (int i = 0; i < rest; i++) {
        if (strcmp(args[i], "--json") == 0) cli.json = 1;
        else args[kept++] = args[i];
    }
    rest = kept;
    if (rest == 0) {
        main_usage(stderr);
        return BC_CLI_EXIT_USAGE;
    }
    if (strcmp(args[0], "cluster") == 0 && rest >= 2 && strcmp(args[1], "create") == 0) {
        return bc_cli_admin_cluster_create(&cli, rest - 1, args + 1);
    }
    if (strcmp(args[0], "group") == 0 && rest >= 2 && strcmp(args[1], "config") == 0) {
        return bc_cli_admin_group_config(&cli, rest - 1, args + 1);
    }
    if (strcmp(args[0], "group") == 0 && rest >= 2 && strcmp(args[1], "failover") == 0) {
        return bc_cli_admin_group_failover(&cli, rest - 1, args + 1);
    }
    if (strcmp(args[0], "tables") == 0) return bc_cli_admin_tables(&cli, rest, args);
    if (strcmp(args[0], "status") == 0 && rest == 1) return bc_cli_admin_status(&cli, false);
    if (strcmp(args[0], "groups") == 0 && rest == 1) return bc_cli_admin_status(&cli, true);
    if (strcmp(args[0], "rebalance") == 0) return bc_cli_admin_rebalance(&cli, rest, args);
    if (strcmp(args[0], "locate") == 0) return bc_cli_admin_locate(&cli, rest, args);
    if (strcmp(args[0], "migrations") == 0) {
        return bc_cli_migrations(&cli, rest, args);
    }
    if (strcmp(args[0], "get") == 0) return bc_cli_data_get(&cli, rest, args);
    if (strcmp(args[0], "gets") == 0) return bc_cli_data_gets(&cli, rest, args);
    if (strcmp(args[0], "set") == 0) return bc_cli_data_set(&cli, rest, args);
    if (strcmp(args[0], "del") == 0 || strcmp(args[0], "delete") == 0) {
        return bc_cli_data_del(&cli, rest, args);
    }
    if (strcmp(args[0], "touch") == 0) return bc_cli_data_touch(&cli, rest, args);
    if (strcmp(args[0], "incr") == 0 || strcmp(args[0], "decr") == 0) {
        return bc_cli_data_arith(&cli, rest, args);
    }
    fprintf(stderr, "bucketcache: unknown command \"%s\"\n", args[0]);
    main_usage(stderr);
    return BC_CLI_EXIT_USAGE;
}
