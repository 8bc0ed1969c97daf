/*
 * cli.c -- `bucketcache`, the command-line tool.
 *
 *   bucketcache [--zk HOSTS] [--cluster NAME] [--json] COMMAND [ARGS]
 *
 *   cluster create --buckets N   create a cluster's ZooKeeper layout (once)
 *   tables [--per-bucket]        show the c, m and d tables
 *
 * --zk and --cluster default to $BUCKETCACHE_ZK and $BUCKETCACHE_CLUSTER.
 * Exit codes (stable, for scripts):
 *   0 success, 1 the operation failed, 2 usage error,
 *   3 not found (no such cluster), 4 ZooKeeper unreachable,
 *   5 already exists.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_cluster.h"
#include "bc_hash.h"
#include "bc_log.h"
#include "bc_zk.h"

enum {
    EXIT_OK = 0,
    EXIT_FAILED = 1,
    EXIT_USAGE = 2,
    EXIT_NOTFOUND = 3,
    EXIT_UNAVAILABLE = 4,
    EXIT_EXISTS = 5,
};

typedef struct cli {
    const char *zk_hosts;
    const char *cluster;
    int json;
    int session_timeout_ms;
} cli_t;

static void
cli_usage(FILE *out)
{
    fprintf(out,
            "usage: bucketcache [--zk HOSTS] [--cluster NAME] [--json] COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  cluster create --buckets N   create a cluster (N buckets, fixed forever; default %u)\n"
            "  tables [--per-bucket]        show the c (clients), m (data now) and d (target) tables\n"
            "\n"
            "options:\n"
            "  --zk HOSTS       ZooKeeper hosts, host:port[,host:port...] (env BUCKETCACHE_ZK)\n"
            "  --cluster NAME   cluster name (env BUCKETCACHE_CLUSTER)\n"
            "  --json           machine-readable output\n"
            "  -h, --help       this text\n"
            "\n"
            "exit codes: 0 ok, 1 failed, 2 usage, 3 not found, 4 ZooKeeper unreachable, 5 exists\n",
            BC_DEFAULT_NBUCKETS);
}

static int
cli_exit_for(bc_status_t st)
{
    switch (st) {
    case BC_OK: return EXIT_OK;
    case BC_ENOTFOUND: return EXIT_NOTFOUND;
    case BC_EEXISTS: return EXIT_EXISTS;
    case BC_ETIMEOUT:
    case BC_EAGAIN: return EXIT_UNAVAILABLE;
    default: return EXIT_FAILED;
    }
}

static int
cli_connect(cli_t *cli, bc_zk_t **zk)
{
    if (cli->zk_hosts == NULL || cli->zk_hosts[0] == '\0' || cli->cluster == NULL ||
        cli->cluster[0] == '\0') {
        fprintf(stderr, "bucketcache: --zk and --cluster are required "
                        "(or BUCKETCACHE_ZK and BUCKETCACHE_CLUSTER)\n");
        return EXIT_USAGE;
    }
    if (!bc_cluster_name_valid(cli->cluster)) {
        fprintf(stderr, "bucketcache: invalid cluster name \"%s\" (1-64 of A-Z a-z 0-9 _ . -)\n",
                cli->cluster);
        return EXIT_USAGE;
    }
    bc_status_t st = bc_zk_open(cli->zk_hosts, cli->session_timeout_ms, 5000, NULL, NULL, zk);
    if (st != BC_OK) {
        fprintf(stderr, "bucketcache: cannot connect to ZooKeeper at %s: %s\n", cli->zk_hosts,
                bc_status_str(st));
        return EXIT_UNAVAILABLE;
    }
    return EXIT_OK;
}

static int
cmd_cluster_create(cli_t *cli, int argc, char **argv)
{
    long buckets = BC_DEFAULT_NBUCKETS;
    static const struct option opts[] = {{"buckets", required_argument, NULL, 'b'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "b:", opts, NULL)) != -1) {
        if (c != 'b') return EXIT_USAGE;
        char *end;
        buckets = strtol(optarg, &end, 10);
        if (*end != '\0' || buckets < 1 || buckets > (long)BC_MAX_NBUCKETS) {
            fprintf(stderr, "bucketcache: --buckets must be an integer 1..%u, got \"%s\"\n",
                    BC_MAX_NBUCKETS, optarg);
            return EXIT_USAGE;
        }
    }
    bc_zk_t *zk;
    int rc = cli_connect(cli, &zk);
    if (rc != EXIT_OK) return rc;
    bc_status_t st = bc_cluster_create(zk, cli->cluster, (uint32_t)buckets);
    bc_zk_close(zk);
    if (st == BC_EEXISTS) {
        fprintf(stderr, "bucketcache: cluster \"%s\" already exists; its bucket count never changes\n",
                cli->cluster);
    } else if (st != BC_OK) {
        fprintf(stderr, "bucketcache: cannot create cluster \"%s\": %s\n", cli->cluster,
                bc_status_str(st));
    } else if (cli->json) {
        printf("{\"cluster\":\"%s\",\"buckets\":%ld,\"created\":true}\n", cli->cluster, buckets);
    } else {
        printf("created cluster \"%s\" with %ld buckets\n", cli->cluster, buckets);
    }
    return cli_exit_for(st);
}

static void
print_json_array(const char *name, const bc_table_t *t)
{
    printf("\"%s\":[", name);
    for (uint32_t b = 0; b < t->nbuckets; b++) printf(b ? ",%u" : "%u", t->owner[b]);
    printf("]");
}

/* Compact view: runs of equal owners, "0-511:1 512-1023:2". */
static void
print_runs(const char *label, const bc_table_t *t)
{
    printf("%s (epoch %llu):", label, (unsigned long long)t->epoch);
    uint32_t start = 0;
    for (uint32_t b = 1; b <= t->nbuckets; b++) {
        if (b < t->nbuckets && t->owner[b] == t->owner[start]) continue;
        if (b - 1 == start) printf(" %u:%u", start, t->owner[start]);
        else printf(" %u-%u:%u", start, b - 1, t->owner[start]);
        start = b;
    }
    printf("\n");
}

static int
cmd_tables(cli_t *cli, int argc, char **argv)
{
    int per_bucket = 0;
    static const struct option opts[] = {{"per-bucket", no_argument, NULL, 'p'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "p", opts, NULL)) != -1) {
        if (c != 'p') return EXIT_USAGE;
        per_bucket = 1;
    }
    bc_zk_t *zk;
    int rc = cli_connect(cli, &zk);
    if (rc != EXIT_OK) return rc;

    char err[256] = "";
    bc_cluster_config_t cfg;
    bc_table_t t[3];
    static const char names[3] = {'c', 'm', 'd'};
    int loaded = 0;
    bc_status_t st = bc_cluster_read_config(zk, cli->cluster, &cfg, err, sizeof(err));
    for (; st == BC_OK && loaded < 3; loaded++) {
        st = bc_cluster_read_table(zk, cli->cluster, names[loaded], cfg.nbuckets, &t[loaded], NULL,
                                   NULL, NULL, err, sizeof(err));
        if (st != BC_OK) break;
    }
    bc_zk_close(zk);
    if (st != BC_OK) {
        if (st == BC_ENOTFOUND) {
            fprintf(stderr, "bucketcache: cluster \"%s\" not found\n", cli->cluster);
        } else {
            fprintf(stderr, "bucketcache: cannot read the tables of \"%s\": %s%s%s\n", cli->cluster,
                    bc_status_str(st), err[0] ? ": " : "", err);
        }
        for (int i = 0; i < loaded; i++) bc_table_free(&t[i]);
        return cli_exit_for(st);
    }

    uint64_t epoch = t[0].epoch;
    for (int i = 1; i < 3; i++) if (t[i].epoch > epoch) epoch = t[i].epoch;
    if (cli->json) {
        printf("{\"epoch\":%llu,\"buckets\":%u,", (unsigned long long)epoch, cfg.nbuckets);
        print_json_array("c", &t[0]);
        printf(",");
        print_json_array("m", &t[1]);
        printf(",");
        print_json_array("d", &t[2]);
        printf(",\"readonly\":[");
        int first = 1;
        for (uint32_t b = 0; b < cfg.nbuckets; b++) {
            if (!t[0].readonly[b]) continue;
            printf(first ? "%u" : ",%u", b);
            first = 0;
        }
        printf("]}\n");
    } else if (per_bucket) {
        printf("%-8s %-6s %-6s %-6s %s\n", "bucket", "c", "m", "d", "state");
        for (uint32_t b = 0; b < cfg.nbuckets; b++) {
            const char *state = t[0].readonly[b] ? "read-only (moving)"
                              : t[1].owner[b] != t[2].owner[b] ? "pending move"
                              : t[0].owner[b] == 0 ? "no owner" : "";
            printf("%-8u %-6u %-6u %-6u %s\n", b, t[0].owner[b], t[1].owner[b], t[2].owner[b], state);
        }
    } else {
        printf("cluster \"%s\": %u buckets, epoch %llu (ranges are bucket:group, 0 = no owner)\n",
               cli->cluster, cfg.nbuckets, (unsigned long long)epoch);
        print_runs("c", &t[0]);
        print_runs("m", &t[1]);
        print_runs("d", &t[2]);
        uint32_t pending = 0;
        for (uint32_t b = 0; b < cfg.nbuckets; b++) pending += t[1].owner[b] != t[2].owner[b];
        printf("pending moves: %u\n", pending);
    }
    for (int i = 0; i < 3; i++) bc_table_free(&t[i]);
    return EXIT_OK;
}

int
main(int argc, char **argv)
{
    cli_t cli = {
        .zk_hosts = getenv("BUCKETCACHE_ZK"),
        .cluster = getenv("BUCKETCACHE_CLUSTER"),
        .session_timeout_ms = 10000,
    };
    static const struct option opts[] = {
        {"zk", required_argument, NULL, 'z'},
        {"cluster", required_argument, NULL, 'C'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {"verbose", no_argument, NULL, 'v'},
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
        case 'v': bc_log_set_level(BC_LOG_DEBUG); break;
        case 'h': cli_usage(stdout); return EXIT_OK;
        default: cli_usage(stderr); return EXIT_USAGE;
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
        cli_usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(args[0], "cluster") == 0 && rest >= 2 && strcmp(args[1], "create") == 0) {
        return cmd_cluster_create(&cli, rest - 1, args + 1);
    }
    if (strcmp(args[0], "tables") == 0) return cmd_tables(&cli, rest, args);
    fprintf(stderr, "bucketcache: unknown command \"%s\"\n", args[0]);
    cli_usage(stderr);
    return EXIT_USAGE;
}
