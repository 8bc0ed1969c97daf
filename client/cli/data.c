/*
 * cli.c -- `bucketcache`, the command-line tool.
 *
 *   bucketcache [--zk HOSTS] [--cluster NAME] [--json] COMMAND [ARGS]
 *
 *   cluster create --buckets N   create a cluster's ZooKeeper layout (once)
 *   status                       the cluster at a glance (from the console)
 *   groups                       every group and node with its role
 *   tables [--per-bucket]        show the c, m and d tables
 *   rebalance [--dry-run]        recompute d now (or just show the plan)
 *   locate KEY                   the key's bucket, owner group and primary
 *   migrations [--watch]         bucket migration progress (cli_migrations.c)
 *
 *   get KEY...                   read values (through libbucketcache)
 *   set KEY [VALUE|-]            store a value (argument, stdin or --file)
 *   del KEY...                   delete keys
 *   touch --ttl SECS KEY...      set keys' expiry time
 *   incr|decr KEY [DELTA]        add to / subtract from a decimal value
 *
 * --zk and --cluster default to $BUCKETCACHE_ZK and $BUCKETCACHE_CLUSTER.
 * The cluster commands talk to ZooKeeper and the console; the data
 * commands (get, set, del, touch, incr, decr) are plain libbucketcache
 * calls, routed to each key's primary with the library's retries.
 * Exit codes (stable, for scripts):
 *   0 success, 1 the operation failed, 2 usage error,
 *   3 not found (no such cluster, key or bucket owner), 4 ZooKeeper
 *   unreachable, 5 already exists (cluster; add of an existing key),
 *   6 timed out (no answer from the key's owner within --timeout),
 *   7 the key's bucket has no owner (its group is down).
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bc_cluster.h"
#include "bc_http_client.h"
#include "bc_hash.h"
#include "bc_log.h"
#include "bc_zk.h"
#include "bucketcache.h"
#include "migrations.h"

enum {
    EXIT_OK = 0,
    EXIT_FAILED = 1,
    EXIT_USAGE = 2,
    EXIT_NOTFOUND = 3,
    EXIT_UNAVAILABLE = 4,
    EXIT_EXISTS = 5,
    EXIT_TIMEOUT = 6,
    EXIT_NO_OWNER = 7,
};

typedef struct cli {
    const char *zk_hosts;
    const char *cluster;
    int json;
    int verbose;
    int session_timeout_ms;
    int timeout_ms;
} cli_t;

static void
cli_usage(FILE *out)
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
            "      [--replication async|sync] [--sync-timeout-ms N] [--max-lag-mb N] [--clear]\n"
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

/* A decimal integer in lo..hi, or a message naming the option. */
static bool
cli_parse_i64(const char *s, const char *what, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi) {
        fprintf(stderr, "bucketcache: %s must be an integer %lld..%lld, got \"%s\"\n", what, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

/*
 * "group config GID [--replication async|sync] [--sync-timeout-ms N]
 * [--max-lag-mb N] [--clear]": reads groups/<gid>/config, applies the
 * changes (with a version check, so two editors cannot lose each other's
 * change) and prints the result.  The group's nodes follow it at once.
 */
static int
cmd_group_config(cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"replication", required_argument, NULL, 'r'},
        {"sync-timeout-ms", required_argument, NULL, 't'},
        {"max-lag-mb", required_argument, NULL, 'l'},
        {"clear", no_argument, NULL, 'c'},
        {0, 0, 0, 0}};
    bc_group_config_t set;
    bc_group_config_init(&set);
    bool clear = false, change = false;
    int c;
    if (argc < 2) {
        fprintf(stderr, "bucketcache: group config GID [--replication async|sync] "
                        "[--sync-timeout-ms N] [--max-lag-mb N] [--clear]\n");
        return EXIT_USAGE;
    }
    uint32_t gid = bc_cluster_parse_gid(argv[1]);
    if (gid == 0) {
        fprintf(stderr, "bucketcache: group config: \"%s\" is not a group id\n", argv[1]);
        return EXIT_USAGE;
    }
    optind = 2;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        long long v = 0;
        bc_repl_mode_t mode;
        if (c == 'r') {
            if (bc_repl_mode_parse(optarg, &mode) != BC_OK) {
                fprintf(stderr, "bucketcache: --replication must be async or sync\n");
                return EXIT_USAGE;
            }
            set.replication = (int)mode;
        } else if (c == 't') {
            if (!cli_parse_i64(optarg, "--sync-timeout-ms", BC_REPL_SYNC_TIMEOUT_MIN_MS,
                               BC_REPL_SYNC_TIMEOUT_MAX_MS, &v)) {
                return EXIT_USAGE;
            }
            set.sync_timeout_ms = v;
        } else if (c == 'l') {
            if (!cli_parse_i64(optarg, "--max-lag-mb", 0, BC_REPL_MAX_LAG_MAX_MB, &v)) {
                return EXIT_USAGE;
            }
            set.max_lag_mb = v;
        } else if (c == 'c') {
            clear = true;
        } else {
            return EXIT_USAGE;
        }
        change = true;
    }
    if (optind != argc) {
        fprintf(stderr, "bucketcache: group config: unexpected \"%s\"\n", argv[optind]);
        return EXIT_USAGE;
    }
    bc_zk_t *zk;
    int rc = cli_connect(cli, &zk);
    if (rc != EXIT_OK) return rc;
    char suffix[64], path[BC_CLUSTER_PATH_MAX + 64], err[256] = "";
    snprintf(suffix, sizeof(suffix), "/groups/%u", gid);
    bc_status_t st = bc_cluster_path(path, sizeof(path), cli->cluster, suffix);
    char *data = NULL;
    size_t len = 0;
    int32_t version = -1;
    bc_group_config_t cur;
    bc_group_config_init(&cur);
    /* Not created here: a group exists once its first node registered. */
    if (st == BC_OK) st = bc_zk_exists(zk, path, NULL, NULL, NULL);
    if (st == BC_ENOTFOUND) {
        fprintf(stderr, "bucketcache: cluster \"%s\" has no group %u (start its nodes first)\n",
                cli->cluster, gid);
        bc_zk_close(zk);
        return EXIT_NOTFOUND;
    }
    if (st == BC_OK) {
        strncat(path, "/config", sizeof(path) - strlen(path) - 1);
        st = bc_zk_get(zk, path, NULL, NULL, &data, &len, &version);
        if (st == BC_ENOTFOUND) st = BC_OK;
        if (st == BC_OK && len > 0 &&
            bc_group_config_decode(data, len, &cur, err, sizeof(err)) != BC_OK) {
            fprintf(stderr, "bucketcache: the current config of group %u is malformed (%s); "
                            "it is replaced\n", gid, err);
            bc_group_config_init(&cur);
        }
        free(data);
    }
    if (st == BC_OK && change) {
        if (clear) bc_group_config_init(&cur);
        if (set.replication >= 0) cur.replication = set.replication;
        if (set.sync_timeout_ms >= 0) cur.sync_timeout_ms = set.sync_timeout_ms;
        if (set.max_lag_mb >= 0) cur.max_lag_mb = set.max_lag_mb;
        char *json = bc_group_config_encode(&cur);
        if (json == NULL) {
            st = BC_ENOMEM;
        } else if (version >= 0) {
            st = bc_zk_set(zk, path, json, strlen(json), version, NULL);
        } else {
            st = bc_zk_create(zk, path, json, strlen(json), 0, NULL, 0);
            if (st == BC_EEXISTS) st = BC_ESTALE;
        }
        free(json);
        if (st == BC_ESTALE) {
            fprintf(stderr, "bucketcache: group %u's config changed meanwhile; run again\n", gid);
        }
    }
    bc_zk_close(zk);
    if (st != BC_OK) {
        if (st != BC_ESTALE) {
            fprintf(stderr, "bucketcache: group config %u: %s\n", gid, bc_status_str(st));
        }
        return cli_exit_for(st);
    }
    char *json = bc_group_config_encode(&cur);
    if (cli->json) {
        printf("%s\n", json ? json : "{}");
    } else {
        char t[32] = "each node's flag", l[32] = "each node's flag";
        if (cur.sync_timeout_ms >= 0) snprintf(t, sizeof(t), "%lld ms", (long long)cur.sync_timeout_ms);
        if (cur.max_lag_mb >= 0) snprintf(l, sizeof(l), "%lld MiB", (long long)cur.max_lag_mb);
        printf("group %u: replication %s, sync timeout %s, async max lag %s\n", gid,
               cur.replication < 0 ? "each node's flag"
                                   : bc_repl_mode_name((bc_repl_mode_t)cur.replication), t,
               l);
    }
    free(json);
    return EXIT_OK;
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

/*
 * Asks the active console: method path, JSON reply parsed into *doc.
 * Returns an exit code; prints the reason on failure.
 */
static int
cli_console_call(cli_t *cli, const char *method, const char *path, cJSON **doc, int *http_status)
{
    bc_zk_t *zk;
    char addr[BC_ADDR_MAX];
    int rc = cli_connect(cli, &zk);
    if (rc != EXIT_OK) return rc;
    bc_status_t st = bc_cluster_active_console(zk, cli->cluster, addr, sizeof(addr));
    bc_zk_close(zk);
    if (st == BC_ENOTFOUND) {
        fprintf(stderr, "bucketcache: no console is running for cluster \"%s\"\n", cli->cluster);
        return EXIT_UNAVAILABLE;
    }
    if (st != BC_OK) {
        fprintf(stderr, "bucketcache: cannot find the console of \"%s\": %s\n", cli->cluster,
                bc_status_str(st));
        return cli_exit_for(st);
    }
    bc_http_response_t resp;
    st = bc_http_request(addr, method, path, NULL, 0, 10000, &resp);
    if (st != BC_OK) {
        fprintf(stderr, "bucketcache: console at %s did not answer: %s\n", addr, bc_status_str(st));
        return EXIT_UNAVAILABLE;
    }
    *http_status = resp.status;
    *doc = cJSON_ParseWithLength(resp.body, resp.body_len);
    bc_http_response_free(&resp);
    if (*doc == NULL) {
        fprintf(stderr, "bucketcache: console at %s sent a malformed reply\n", addr);
        return EXIT_FAILED;
    }
    if (*http_status >= 300) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(*doc, "error");
        fprintf(stderr, "bucketcache: console: %s\n", cJSON_IsString(e) ? e->valuestring : "error");
        cJSON_Delete(*doc);
        *doc = NULL;
        return *http_status == 409 ? EXIT_UNAVAILABLE : EXIT_FAILED;
    }
    return EXIT_OK;
}

static double
json_num(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *
json_str(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void
print_json_doc(const cJSON *doc)
{
    char *text = cJSON_PrintUnformatted(doc);
    if (text != NULL) printf("%s\n", text);
    free(text);
}

/* A node's replication state, from its admin port, as one short phrase
 * ("-" when it cannot be asked). */
static void
node_repl_summary(const char *admin, char *out, size_t len)
{
    bc_repl_status_t r;
    snprintf(out, len, "-");
    if (admin[0] == '\0' || bc_repl_status_fetch(admin, 500, &r) != BC_OK) return;
    if (r.primary) {
        snprintf(out, len, "%s, offset %llu, %u backup%s%s", bc_repl_mode_name(r.mode),
                 (unsigned long long)r.offset, r.backups, r.backups == 1 ? "" : "s",
                 r.writable ? "" : ", NOT writable");
    } else if (!r.synced) {
        snprintf(out, len, "full resync in progress");
    } else if (!r.link_up) {
        snprintf(out, len, "offset %llu, link to primary DOWN", (unsigned long long)r.offset);
    } else {
        snprintf(out, len, "offset %llu, lag %llu B / %lld ms", (unsigned long long)r.offset,
                 (unsigned long long)r.lag_bytes, (long long)r.lag_ms);
    }
}

static int
cmd_status(cli_t *cli, bool nodes_view)
{
    cJSON *doc;
    int status;
    int rc = cli_console_call(cli, "GET", "/v1/cluster", &doc, &status);
    if (rc != EXIT_OK) return rc;
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(doc, "groups");
    if (cli->json) {
        print_json_doc(nodes_view ? groups : doc);
        cJSON_Delete(doc);
        return EXIT_OK;
    }
    const cJSON *g;
    if (!nodes_view) {
        printf("cluster \"%s\": %.0f buckets, epoch %.0f, active console %s\n",
               json_str(doc, "cluster"), json_num(doc, "buckets"), json_num(doc, "epoch"),
               json_str(doc, "active_console"));
        printf("pending moves: %.0f, unowned buckets: %.0f\n\n", json_num(doc, "pending_moves"),
               json_num(doc, "unowned_buckets"));
        printf("%-6s %-5s %10s %16s  %-22s %s\n", "GROUP", "STATE", "MEMORY", "BUCKETS c/m/d",
               "PRIMARY", "NODES");
        cJSON_ArrayForEach(g, groups) {
            const cJSON *b = cJSON_GetObjectItemCaseSensitive(g, "buckets");
            const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(g, "nodes");
            char counts[48];
            snprintf(counts, sizeof(counts), "%.0f/%.0f/%.0f", json_num(b, "c"), json_num(b, "m"),
                     json_num(b, "d"));
            printf("%-6.0f %-5s %7.0f MiB %16s  %-22s %d\n", json_num(g, "gid"),
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g, "live")) ? "up" : "DOWN",
                   json_num(g, "memory") / 1048576.0, counts,
                   json_str(g, "primary_addr")[0] ? json_str(g, "primary_addr") : "-",
                   cJSON_GetArraySize(nodes));
        }
    } else {
        printf("%-6s %-14s %-8s %-22s %-22s %-9s %s\n", "GROUP", "NODE", "ROLE", "DATA", "ADMIN",
               "MEMORY", "REPLICATION");
        cJSON_ArrayForEach(g, groups) {
            const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(g, "nodes"), *n;
            if (cJSON_GetArraySize(nodes) == 0) {
                printf("%-6.0f %-14s %-8s\n", json_num(g, "gid"), "-", "down");
            }
            cJSON_ArrayForEach(n, nodes) {
                char repl[128], mem[24];
                node_repl_summary(json_str(n, "admin"), repl, sizeof(repl));
                snprintf(mem, sizeof(mem), "%.0f MiB", json_num(n, "memory") / 1048576.0);
                printf("%-6.0f %-14s %-8s %-22s %-22s %-9s %s\n", json_num(g, "gid"),
                       json_str(n, "name"), json_str(n, "role"), json_str(n, "data"),
                       json_str(n, "admin")[0] ? json_str(n, "admin") : "-", mem, repl);
            }
        }
    }
    cJSON_Delete(doc);
    return EXIT_OK;
}

static int
cmd_rebalance(cli_t *cli, int argc, char **argv)
{
    bool dry_run = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dry-run") == 0 || strcmp(argv[i], "-n") == 0) {
            dry_run = true;
        } else {
            fprintf(stderr, "bucketcache: rebalance: unknown argument \"%s\"\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    cJSON *doc;
    int status;
    int rc = cli_console_call(cli, "POST", dry_run ? "/v1/rebalance?dry_run=1" : "/v1/rebalance",
                              &doc, &status);
    if (rc != EXIT_OK) return rc;
    if (cli->json) {
        print_json_doc(doc);
        cJSON_Delete(doc);
        return EXIT_OK;
    }
    const cJSON *moves = cJSON_GetObjectItemCaseSensitive(doc, "moves");
    const cJSON *assigned = cJSON_GetObjectItemCaseSensitive(doc, "assigned"), *m;
    printf("%s (epoch %.0f)%s%s\n", dry_run ? "rebalance plan, nothing written" : "rebalance done",
           json_num(doc, "epoch"), json_str(doc, "summary")[0] ? ": " : "", json_str(doc, "summary"));
    cJSON_ArrayForEach(m, assigned) {
        printf("  bucket %-6.0f unowned -> group %.0f (no data to move)\n", json_num(m, "bucket"),
               json_num(m, "to"));
    }
    double total = 0;
    cJSON_ArrayForEach(m, moves) {
        const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(m, "bytes");
        char size[32] = "size unknown";
        if (cJSON_IsNumber(bytes)) {
            snprintf(size, sizeof(size), "%.1f KiB", bytes->valuedouble / 1024.0);
            total += bytes->valuedouble;
        }
        printf("  bucket %-6.0f group %.0f -> group %.0f (%s)\n", json_num(m, "bucket"),
               json_num(m, "from"), json_num(m, "to"), size);
    }
    printf("%d buckets move (%.1f MiB known), %d assigned directly\n", cJSON_GetArraySize(moves),
           total / 1048576.0, cJSON_GetArraySize(assigned));
    cJSON_Delete(doc);
    return EXIT_OK;
}

static int
cmd_locate(cli_t *cli, int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "bucketcache: usage: locate KEY\n");
        return EXIT_USAGE;
    }
    const char *key = argv[1];
    bc_zk_t *zk;
    int rc = cli_connect(cli, &zk);
    if (rc != EXIT_OK) return rc;
    char err[256] = "";
    bc_cluster_config_t cfg;
    bc_table_t c;
    bc_status_t st = bc_cluster_read_config(zk, cli->cluster, &cfg, err, sizeof(err));
    if (st == BC_OK) {
        st = bc_cluster_read_table(zk, cli->cluster, 'c', cfg.nbuckets, &c, NULL, NULL, NULL, err,
                                   sizeof(err));
    }
    if (st != BC_OK) {
        bc_zk_close(zk);
        fprintf(stderr, "bucketcache: cannot read cluster \"%s\": %s %s\n", cli->cluster,
                bc_status_str(st), err);
        return cli_exit_for(st);
    }
    uint32_t bucket = bc_hash_bucket(bc_hash_key(key, strlen(key)), cfg.nbuckets);
    uint32_t owner = c.owner[bucket];
    bool readonly = c.readonly[bucket] != 0;
    bc_primary_info_t primary;
    memset(&primary, 0, sizeof(primary));
    if (owner != 0) {
        char path[BC_CLUSTER_PATH_MAX], suffix[48], *data = NULL;
        size_t len = 0;
        snprintf(suffix, sizeof(suffix), "/groups/%u/primary", owner);
        bc_cluster_path(path, sizeof(path), cli->cluster, suffix);
        if (bc_zk_get(zk, path, NULL, NULL, &data, &len, NULL) == BC_OK) {
            bc_primary_info_decode(data ? data : "", len, &primary, NULL, 0);
        }
        free(data);
    }
    bc_zk_close(zk);
    if (cli->json) {
        printf("{\"bucket\":%u,\"group\":%u,\"readonly\":%s,\"primary\":\"%s\",\"epoch\":%llu}\n",
               bucket, owner, readonly ? "true" : "false", primary.data_addr,
               (unsigned long long)c.epoch);
    } else if (owner == 0) {
        printf("bucket %u: no owner (its group is down)\n", bucket);
    } else {
        printf("bucket %u -> group %u, primary %s%s\n", bucket, owner,
               primary.data_addr[0] ? primary.data_addr : "(none yet)",
               readonly ? " (read-only: moving)" : "");
    }
    bc_table_free(&c);
    return owner == 0 ? EXIT_NOTFOUND : EXIT_OK;
}

/* ---- data commands, through libbucketcache ---- */

static int
cli_exit_for_client(int code)
{
    switch (code) {
    case BC_CLIENT_OK: return EXIT_OK;
    case BC_CLIENT_ENOTFOUND:
    case BC_CLIENT_ENOCLUSTER: return EXIT_NOTFOUND;
    case BC_CLIENT_EZK: return EXIT_UNAVAILABLE;
    case BC_CLIENT_ETIMEOUT: return EXIT_TIMEOUT;
    case BC_CLIENT_ENOOWNER: return EXIT_NO_OWNER;
    case BC_CLIENT_EINVAL: return EXIT_USAGE;
    default: return EXIT_FAILED;
    }
}

/* The worst of two exit codes, for commands over several keys. */
static int
cli_worse(int a, int b)
{
    if (a == EXIT_OK) return b;
    if (b == EXIT_OK) return a;
    return a == EXIT_NOTFOUND ? b : a;
}

static void
cli_lib_log(void *ctx, int level, const char *message)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    (void)ctx;
    fprintf(stderr, "bucketcache: %s: %s\n", names[level < 0 ? 0 : level > 3 ? 3 : level], message);
}

static int
cli_client(cli_t *cli, bc_client_t **out)
{
    if (cli->zk_hosts == NULL || cli->zk_hosts[0] == '\0' || cli->cluster == NULL ||
        cli->cluster[0] == '\0') {
        fprintf(stderr, "bucketcache: --zk and --cluster are required "
                        "(or BUCKETCACHE_ZK and BUCKETCACHE_CLUSTER)\n");
        return EXIT_USAGE;
    }
    bc_client_set_log(cli_lib_log, NULL, cli->verbose ? BC_CLIENT_LOG_DEBUG : BC_CLIENT_LOG_ERROR);
    bc_client_options_t opts;
    bc_client_options_init(&opts);
    opts.zk_hosts = cli->zk_hosts;
    opts.cluster = cli->cluster;
    opts.zk_session_timeout_ms = cli->session_timeout_ms;
    opts.timeout_ms = cli->timeout_ms;
    int rc = bc_client_create(&opts, out);
    if (rc == BC_CLIENT_OK) return EXIT_OK;
    if (rc == BC_CLIENT_ENOCLUSTER) {
        fprintf(stderr, "bucketcache: cluster \"%s\" not found\n", cli->cluster);
    } else if (rc == BC_CLIENT_EINVAL) {
        fprintf(stderr, "bucketcache: invalid cluster name \"%s\" (1-64 of A-Z a-z 0-9 _ . -)\n",
                cli->cluster);
    } else {
        fprintf(stderr, "bucketcache: cannot use cluster \"%s\" at %s: %s\n", cli->cluster,
                cli->zk_hosts, bc_strerror(rc));
    }
    return cli_exit_for_client(rc);
}

static bool
cli_key_ok(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > 250) {
        fprintf(stderr, "bucketcache: a key is 1..250 bytes, got %zu\n", n);
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        if (*p <= ' ' || *p == 0x7f) {
            fprintf(stderr, "bucketcache: key \"%s\" has a space or control character\n", key);
            return false;
        }
    }
    return true;
}

static void
cli_key_error(const char *what, const char *key, int code)
{
    fprintf(stderr, "bucketcache: %s %s: %s\n", what, key, bc_strerror(code));
}

/*
 * The keys argv[first..argc) checked, then a library client opened: the
 * common start of the multi-key data commands.  Prints usage when there is
 * no key.  Returns an exit code; *client is set on EXIT_OK.
 */
static int
cli_keys_client(cli_t *cli, int argc, char **argv, int first, const char *usage,
                bc_client_t **client)
{
    if (first >= argc) {
        fprintf(stderr, "bucketcache: usage: %s\n", usage);
        return EXIT_USAGE;
    }
    for (int i = first; i < argc; i++) {
        if (!cli_key_ok(argv[i])) return EXIT_USAGE;
    }
    return cli_client(cli, client);
}

static int
cmd_get(cli_t *cli, int argc, char **argv)
{
    bc_client_t *client;
    int rc = cli_keys_client(cli, argc, argv, 1, "get KEY...", &client);
    if (rc != EXIT_OK) return rc;
    size_t n = (size_t)(argc - 1);
    const void **keys = calloc(n, sizeof(*keys));
    size_t *klens = calloc(n, sizeof(*klens));
    bc_client_item_t *items = calloc(n, sizeof(*items));
    if (keys == NULL || klens == NULL || items == NULL) {
        free(keys);
        free(klens);
        free(items);
        bc_client_destroy(client);
        fprintf(stderr, "bucketcache: out of memory\n");
        return EXIT_FAILED;
    }
    for (size_t i = 0; i < n; i++) {
        keys[i] = argv[i + 1];
        klens[i] = strlen(argv[i + 1]);
    }
    bc_client_mget(client, n, keys, klens, cli->timeout_ms, items);
    int exit_code = EXIT_OK;
    cJSON *arr = cli->json ? cJSON_CreateArray() : NULL;
    for (size_t i = 0; i < n; i++) {
        const bc_client_item_t *it = &items[i];
        if (it->status != BC_CLIENT_OK) {
            exit_code = cli_worse(exit_code, cli_exit_for_client(it->status));
            if (!cli->json) cli_key_error("get", argv[i + 1], it->status);
        }
        if (cli->json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "key", argv[i + 1]);
            cJSON_AddBoolToObject(o, "found", it->status == BC_CLIENT_OK);
            if (it->status == BC_CLIENT_OK) {
                cJSON_AddStringToObject(o, "value", it->value);
                cJSON_AddNumberToObject(o, "flags", it->flags);
            } else if (it->status != BC_CLIENT_ENOTFOUND) {
                cJSON_AddStringToObject(o, "error", bc_strerror(it->status));
            }
            cJSON_AddItemToArray(arr, o);
        } else if (it->status == BC_CLIENT_OK) {
            if (n == 1) {
                fwrite(it->value, 1, it->vlen, stdout);
                if (isatty(STDOUT_FILENO) && (it->vlen == 0 || ((char *)it->value)[it->vlen - 1] != '\n')) {
                    fputc('\n', stdout);
                }
            } else {
                printf("%s\t", argv[i + 1]);
                fwrite(it->value, 1, it->vlen, stdout);
                fputc('\n', stdout);
            }
        }
    }
    if (cli->json) {
        print_json_doc(n == 1 ? cJSON_GetArrayItem(arr, 0) : arr);
        cJSON_Delete(arr);
    }
    fflush(stdout);
    bc_client_items_free(items, n);
    free(keys);
    free(klens);
    free(items);
    bc_client_destroy(client);
    return exit_code;
}

/* Reads a whole stream into a malloc'd buffer. */
static char *
cli_read_all(FILE *f, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
        if (n == cap) {
            char *grown = cap >= (64u << 20) ? NULL : realloc(buf, cap * 2);
            if (grown == NULL) {
                free(buf);
                return NULL;
            }
            buf = grown;
            cap *= 2;
        }
    }
    if (buf != NULL && ferror(f)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static int
cmd_set(cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"file", required_argument, NULL, 'f'}, {"ttl", required_argument, NULL, 't'},
        {"flags", required_argument, NULL, 'F'}, {"add", no_argument, NULL, 'a'},
        {"replace", no_argument, NULL, 'r'},     {"append", no_argument, NULL, 'A'},
        {"prepend", no_argument, NULL, 'P'},     {"cas", required_argument, NULL, 'C'},
        {0, 0, 0, 0},
    };
    const char *file = NULL;
    long long ttl = 0, flags = 0;
    uint64_t cas = 0;
    int mode = 's', c;
    optind = 0;  /* full reset: options may follow KEY and VALUE */
    while ((c = getopt_long(argc, argv, "f:", opts, NULL)) != -1) {
        switch (c) {
        case 'f': file = optarg; break;
        case 't':
            if (!cli_parse_i64(optarg, "--ttl", -1, INT32_MAX, &ttl)) return EXIT_USAGE;
            break;
        case 'F':
            if (!cli_parse_i64(optarg, "--flags", 0, UINT32_MAX, &flags)) return EXIT_USAGE;
            break;
        case 'C': {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || optarg[0] == '-' || v == 0) {
                fprintf(stderr, "bucketcache: --cas must be the positive number `gets` printed\n");
                return EXIT_USAGE;
            }
            cas = v;
            mode = c;
            break;
        }
        case 'a':
        case 'r':
        case 'A':
        case 'P': mode = c; break;
        default: return EXIT_USAGE;
        }
    }
    int npos = argc - optind;
    if (npos < 1 || npos > 2 || (file != NULL && npos == 2)) {
        fprintf(stderr, "bucketcache: usage: set KEY [VALUE|-] [--file F] [--ttl SECS] [--flags N] "
                        "[--add|--replace|--append|--prepend|--cas N]\n");
        return EXIT_USAGE;
    }
    const char *key = argv[optind];
    if (!cli_key_ok(key)) return EXIT_USAGE;
    char *value = NULL;
    size_t vlen = 0;
    if (npos == 2 && strcmp(argv[optind + 1], "-") != 0) {
        vlen = strlen(argv[optind + 1]);
        value = malloc(vlen + 1);
        if (value != NULL) memcpy(value, argv[optind + 1], vlen + 1);
    } else if (file != NULL) {
        FILE *f = fopen(file, "rb");
        if (f == NULL) {
            fprintf(stderr, "bucketcache: cannot open %s: %s\n", file, strerror(errno));
            return EXIT_FAILED;
        }
        value = cli_read_all(f, &vlen);
        fclose(f);
    } else {
        value = cli_read_all(stdin, &vlen);
    }
    if (value == NULL) {
        fprintf(stderr, "bucketcache: cannot read the value (%s)\n",
                errno ? strerror(errno) : "too large");
        return EXIT_FAILED;
    }
    bc_client_t *client;
    int rc = cli_client(cli, &client);
    if (rc != EXIT_OK) {
        free(value);
        return rc;
    }
    int code;
    if (mode == 'a') {
        code = bc_client_add(client, key, strlen(key), value, vlen, (uint32_t)flags, ttl, cli->timeout_ms);
    } else if (mode == 'r') {
        code = bc_client_replace(client, key, strlen(key), value, vlen, (uint32_t)flags, ttl,
                                 cli->timeout_ms);
    } else if (mode == 'A' || mode == 'P') {
        code = (mode == 'A' ? bc_client_append : bc_client_prepend)(client, key, strlen(key),
                                                                    value, vlen, cli->timeout_ms);
    } else if (mode == 'C') {
        code = bc_client_cas(client, key, strlen(key), value, vlen, (uint32_t)flags, ttl, cas,
                             cli->timeout_ms);
    } else {
        code = bc_client_set(client, key, strlen(key), value, vlen, (uint32_t)flags, ttl, cli->timeout_ms);
    }
    free(value);
    bc_client_destroy(client);
    if (code == BC_CLIENT_ENOTSTORED) {
        fprintf(stderr, "bucketcache: set %s: not stored (%s)\n", key,
                mode == 'a' ? "the key exists" : "the key does not exist");
        return mode == 'a' ? EXIT_EXISTS : EXIT_NOTFOUND;
    }
    if (code == BC_CLIENT_EEXISTS) {
        fprintf(stderr, "bucketcache: set %s: not stored (it changed since that cas was read)\n",
                key);
        return EXIT_EXISTS;
    }
    if (code != BC_CLIENT_OK) {
        cli_key_error("set", key, code);
        return cli_exit_for_client(code);
    }
    if (cli->json) printf("{\"key\":\"%s\",\"stored\":true,\"bytes\":%zu}\n", key, vlen);
    return EXIT_OK;
}

/* "gets KEY": the value with its CAS, for `set --cas`. */
static int
cmd_gets(cli_t *cli, int argc, char **argv)
{
    bc_client_t *client;
    int rc = cli_keys_client(cli, argc, argv, 1, "gets KEY", &client);
    if (rc != EXIT_OK) return rc;
    if (argc != 2) {
        bc_client_destroy(client);
        fprintf(stderr, "bucketcache: usage: gets KEY\n");
        return EXIT_USAGE;
    }
    void *value = NULL;
    size_t vlen = 0;
    uint32_t flags = 0;
    uint64_t cas = 0;
    int code = bc_client_gets(client, argv[1], strlen(argv[1]), cli->timeout_ms, &value, &vlen,
                              &flags, &cas);
    bc_client_destroy(client);
    if (code != BC_CLIENT_OK) {
        cli_key_error("gets", argv[1], code);
        return cli_exit_for_client(code);
    }
    if (cli->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "key", argv[1]);
        cJSON_AddStringToObject(o, "value", value);
        cJSON_AddNumberToObject(o, "flags", flags);
        cJSON_AddNumberToObject(o, "cas", (double)cas);
        print_json_doc(o);
        cJSON_Delete(o);
    } else {
        printf("%llu\t", (unsigned long long)cas);
        fwrite(value, 1, vlen, stdout);
        printf("\n");
    }
    bc_client_free(value);
    return EXIT_OK;
}

static int
cmd_del(cli_t *cli, int argc, char **argv)
{
    bc_client_t *client;
    int rc = cli_keys_client(cli, argc, argv, 1, "del KEY...", &client);
    if (rc != EXIT_OK) return rc;
    int exit_code = EXIT_OK;
    for (int i = 1; i < argc; i++) {
        int code = bc_client_delete(client, argv[i], strlen(argv[i]), cli->timeout_ms);
        if (code != BC_CLIENT_OK) cli_key_error("del", argv[i], code);
        exit_code = cli_worse(exit_code, cli_exit_for_client(code));
    }
    bc_client_destroy(client);
    return exit_code;
}

static int
cmd_touch(cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"ttl", required_argument, NULL, 't'}, {0, 0, 0, 0}};
    long long ttl = -2;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 't' || !cli_parse_i64(optarg, "--ttl", -1, INT32_MAX, &ttl)) return EXIT_USAGE;
    }
    bc_client_t *client;
    int rc = cli_keys_client(cli, argc, argv, ttl == -2 ? argc : optind,
                             "touch --ttl SECS KEY...", &client);
    if (rc != EXIT_OK) return rc;
    int exit_code = EXIT_OK;
    for (int i = optind; i < argc; i++) {
        int code = bc_client_touch(client, argv[i], strlen(argv[i]), ttl, cli->timeout_ms);
        if (code != BC_CLIENT_OK) cli_key_error("touch", argv[i], code);
        exit_code = cli_worse(exit_code, cli_exit_for_client(code));
    }
    bc_client_destroy(client);
    return exit_code;
}

static int
cmd_arith(cli_t *cli, int argc, char **argv)
{
    bool incr = strcmp(argv[0], "incr") == 0;
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "bucketcache: usage: %s KEY [DELTA]\n", argv[0]);
        return EXIT_USAGE;
    }
    if (!cli_key_ok(argv[1])) return EXIT_USAGE;
    uint64_t delta = 1;
    if (argc == 3) {
        char *end;
        errno = 0;
        unsigned long long d = strtoull(argv[2], &end, 10);
        if (argv[2][0] == '\0' || argv[2][0] == '-' || *end != '\0' || errno != 0) {
            fprintf(stderr, "bucketcache: DELTA must be an unsigned integer, got \"%s\"\n", argv[2]);
            return EXIT_USAGE;
        }
        delta = d;
    }
    bc_client_t *client;
    int rc = cli_client(cli, &client);
    if (rc != EXIT_OK) return rc;
    uint64_t result = 0;
    int code = incr ? bc_client_incr(client, argv[1], strlen(argv[1]), delta, &result, cli->timeout_ms)
                    : bc_client_decr(client, argv[1], strlen(argv[1]), delta, &result, cli->timeout_ms);
    bc_client_destroy(client);
    if (code != BC_CLIENT_OK) {
        cli_key_error(argv[0], argv[1], code);
        return cli_exit_for_client(code);
    }
    if (cli->json) printf("{\"key\":\"%s\",\"value\":%llu}\n", argv[1], (unsigned long long)result);
    else printf("%llu\n", (unsigned long long)result);
    return EXIT_OK;
}

int
main(int argc, char **argv)
{
    cli_t cli = {
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
                return EXIT_USAGE;
            }
            cli.timeout_ms = (int)t;
            break;
        }
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
    if (strcmp(args[0], "group") == 0 && rest >= 2 && strcmp(args[1], "config") == 0) {
        return cmd_group_config(&cli, rest - 1, args + 1);
    }
    if (strcmp(args[0], "tables") == 0) return cmd_tables(&cli, rest, args);
    if (strcmp(args[0], "status") == 0 && rest == 1) return cmd_status(&cli, false);
    if (strcmp(args[0], "groups") == 0 && rest == 1) return cmd_status(&cli, true);
    if (strcmp(args[0], "rebalance") == 0) return cmd_rebalance(&cli, rest, args);
    if (strcmp(args[0], "locate") == 0) return cmd_locate(&cli, rest, args);
    if (strcmp(args[0], "migrations") == 0) {
        return bc__cli_migrations(cli.zk_hosts, cli.cluster, cli.json, rest, args);
    }
    if (strcmp(args[0], "get") == 0) return cmd_get(&cli, rest, args);
    if (strcmp(args[0], "gets") == 0) return cmd_gets(&cli, rest, args);
    if (strcmp(args[0], "set") == 0) return cmd_set(&cli, rest, args);
    if (strcmp(args[0], "del") == 0 || strcmp(args[0], "delete") == 0) return cmd_del(&cli, rest, args);
    if (strcmp(args[0], "touch") == 0) return cmd_touch(&cli, rest, args);
    if (strcmp(args[0], "incr") == 0 || strcmp(args[0], "decr") == 0) {
        return cmd_arith(&cli, rest, args);
    }
    fprintf(stderr, "bucketcache: unknown command \"%s\"\n", args[0]);
    cli_usage(stderr);
    return EXIT_USAGE;
}
