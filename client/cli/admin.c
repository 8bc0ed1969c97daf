/*
 * admin.c -- see admin.h: cluster administration through ZooKeeper and
 * the console's API.  A command opens its own ZooKeeper session, reads or
 * writes what it needs (writes with a version check, so two admins cannot
 * lose each other's change) and closes it; nothing here is cached.
 */
#include "admin.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bc_cluster.h"
#include "bc_config.h"
#include "bc_hash.h"
#include "bc_http_client.h"
#include "bc_table.h"
#include "bc_zk.h"

static int
admin_connect(bc_cli_t *cli, bc_zk_t **zk)
{
    return bc_cli_zk_connect(cli, zk);
}

/* ---- ZooKeeper ACLs (docs/security.md) ---- */

#define ACL_FILES_MAX 2

/* The identity files of cluster create / cluster secure. */
typedef struct acl_files {
    const char *writers[ACL_FILES_MAX];
    const char *readers[ACL_FILES_MAX];
    int nwriters, nreaders;
} acl_files_t;

/* Takes --writer-auth-file / --read-auth-file; false (usage printed) on a fifth. */
static bool
acl_files_add(acl_files_t *f, int opt, const char *path)
{
    int *n = opt == 'w' ? &f->nwriters : &f->nreaders;
    if (*n == ACL_FILES_MAX) {
        fprintf(stderr, "bucketcache: at most %d %s identities (two during a rotation)\n",
                ACL_FILES_MAX, opt == 'w' ? "writer" : "reader");
        return false;
    }
    (opt == 'w' ? f->writers : f->readers)[(*n)++] = path;
    return true;
}

/*
 * The ACL for a cluster's znodes: the writers (default: the --zk-auth-file
 * identity) may do everything, the readers may read.  This session's own
 * identity must be among the writers, or it would lock itself out
 * half-way.  Returns an exit code.
 */
static int
admin_cluster_acl(bc_cli_t *cli, const acl_files_t *files, const char *what, bc_zk_acl_t **acl)
{
    bc_zk_auth_t ids[2 * ACL_FILES_MAX], self;
    const bc_zk_auth_t *writers[ACL_FILES_MAX], *readers[ACL_FILES_MAX];
    char err[BC_ERRBUF_LEN];
    int nw = files->nwriters, nr = files->nreaders, loaded = 0, rc = BC_CLI_EXIT_USAGE;
    *acl = NULL;
    if (cli->zk_auth_file == NULL) {
        fprintf(stderr, "bucketcache: %s needs --zk-auth-file (an identity that may change the "
                        "cluster)\n", what);
        return BC_CLI_EXIT_USAGE;
    }
    if (bc_zk_auth_load(cli->zk_auth_file, &self, err, sizeof(err)) != BC_OK) {
        fprintf(stderr, "bucketcache: --zk-auth-file: %s\n", err);
        return BC_CLI_EXIT_USAGE;
    }
    bool self_writes = nw == 0;
    for (int i = 0; i < nw + nr; i++) {
        const char *path = i < nw ? files->writers[i] : files->readers[i - nw];
        if (bc_zk_auth_load(path, &ids[i], err, sizeof(err)) != BC_OK) {
            fprintf(stderr, "bucketcache: --%s-auth-file: %s\n", i < nw ? "writer" : "read", err);
            goto out;
        }
        loaded++;
        if (i < nw) {
            writers[i] = &ids[i];
            if (strcmp(ids[i].cred, self.cred) == 0) self_writes = true;
        } else {
            readers[i - nw] = &ids[i];
        }
    }
    if (!self_writes) {
        fprintf(stderr, "bucketcache: the --zk-auth-file identity must be one of the writers, or "
                        "it locks itself out: rotate in two steps, --writer-auth-file OLD "
                        "--writer-auth-file NEW, then (as NEW) --writer-auth-file NEW "
                        "(docs/security.md)\n");
        goto out;
    }
    if (nw == 0) {
        writers[0] = &self;
        nw = 1;
    }
    bc_status_t st = bc_zk_acl_build(writers, (size_t)nw, readers, (size_t)nr, acl);
    if (st != BC_OK) {
        fprintf(stderr, "bucketcache: cannot build the ACL: %s\n", bc_status_str(st));
        rc = BC_CLI_EXIT_FAILED;
        goto out;
    }
    rc = BC_CLI_EXIT_OK;
out:
    for (int i = 0; i < loaded; i++) bc_zk_auth_clear(&ids[i]);
    bc_zk_auth_clear(&self);
    return rc;
}

int
bc_cli_admin_cluster_create(bc_cli_t *cli, int argc, char **argv)
{
    long buckets = BC_DEFAULT_NBUCKETS;
    acl_files_t files = {0};
    static const struct option opts[] = {{"buckets", required_argument, NULL, 'b'},
                                         {"read-auth-file", required_argument, NULL, 'r'},
                                         {"writer-auth-file", required_argument, NULL, 'w'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "b:", opts, NULL)) != -1) {
        if (c == 'r' || c == 'w') {
            if (!acl_files_add(&files, c, optarg)) return BC_CLI_EXIT_USAGE;
            continue;
        }
        if (c != 'b') return BC_CLI_EXIT_USAGE;
        char *end;
        buckets = strtol(optarg, &end, 10);
        if (*end != '\0' || buckets < 1 || buckets > (long)BC_MAX_NBUCKETS) {
            fprintf(stderr, "bucketcache: --buckets must be an integer 1..%u, got \"%s\"\n",
                    BC_MAX_NBUCKETS, optarg);
            return BC_CLI_EXIT_USAGE;
        }
    }
    bc_zk_acl_t *acl = NULL;
    int rc;
    if (cli->zk_auth_file != NULL || files.nwriters + files.nreaders > 0) {
        rc = admin_cluster_acl(cli, &files, "a secured cluster create", &acl);
        if (rc != BC_CLI_EXIT_OK) return rc;
    }
    bc_zk_t *zk;
    rc = admin_connect(cli, &zk);
    if (rc != BC_CLI_EXIT_OK) {
        bc_zk_acl_free(acl);
        return rc;
    }
    bc_status_t st = bc_cluster_create_acl(zk, cli->cluster, (uint32_t)buckets, acl);
    bc_zk_close(zk);
    bc_zk_acl_free(acl);
    if (st == BC_EEXISTS) {
        fprintf(stderr, "bucketcache: cluster \"%s\" already exists; its bucket count never changes\n",
                cli->cluster);
    } else if (st != BC_OK) {
        fprintf(stderr, "bucketcache: cannot create cluster \"%s\": %s\n", cli->cluster,
                bc_status_str(st));
    } else if (cli->json) {
        printf("{\"cluster\":\"%s\",\"buckets\":%ld,\"created\":true,\"secured\":%s}\n",
               cli->cluster, buckets, acl != NULL ? "true" : "false");
    } else {
        printf("created cluster \"%s\" with %ld buckets%s\n", cli->cluster, buckets,
               acl != NULL ? " (ZooKeeper ACLs: only its writer identities may change it)" : "");
    }
    if (st == BC_OK && acl == NULL) {
        fprintf(stderr, "bucketcache: warning: cluster \"%s\" is open to anyone who reaches "
                        "ZooKeeper (no --zk-auth-file); see docs/security.md and `bucketcache "
                        "cluster secure`\n", cli->cluster);
    }
    return bc_cli_exit_for_status(st);
}

int
bc_cli_admin_cluster_secure(bc_cli_t *cli, int argc, char **argv)
{
    acl_files_t files = {0};
    static const struct option opts[] = {{"read-auth-file", required_argument, NULL, 'r'},
                                         {"writer-auth-file", required_argument, NULL, 'w'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if ((c != 'r' && c != 'w') || !acl_files_add(&files, c, optarg)) return BC_CLI_EXIT_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr, "bucketcache: cluster secure: unexpected argument \"%s\"\n", argv[optind]);
        return BC_CLI_EXIT_USAGE;
    }
    bc_zk_acl_t *acl = NULL;
    int rc = admin_cluster_acl(cli, &files, "cluster secure", &acl);
    if (rc != BC_CLI_EXIT_OK) return rc;
    bc_zk_t *zk;
    rc = admin_connect(cli, &zk);
    if (rc != BC_CLI_EXIT_OK) {
        bc_zk_acl_free(acl);
        return rc;
    }
    char root[BC_CLUSTER_PATH_MAX], shown[512] = "";
    unsigned count = 0;
    bc_status_t st = bc_cluster_path(root, sizeof(root), cli->cluster, "");
    if (st == BC_OK) st = bc_zk_exists(zk, root, NULL, NULL, NULL);
    if (st == BC_OK) st = bc_zk_set_acl_tree(zk, root, acl, &count);
    if (st == BC_OK) bc_zk_acl_text(zk, root, shown, sizeof(shown));
    bc_zk_close(zk);
    bc_zk_acl_free(acl);
    if (st == BC_ENOTFOUND) {
        fprintf(stderr, "bucketcache: no cluster \"%s\" in ZooKeeper %s\n", cli->cluster,
                cli->zk_hosts);
    } else if (st == BC_EACCES) {
        fprintf(stderr, "bucketcache: ZooKeeper refused to change the ACLs of cluster \"%s\" "
                        "(secured %u znodes so far): --zk-auth-file is not an identity with the "
                        "ADMIN permission there\n", cli->cluster, count);
    } else if (st != BC_OK) {
        fprintf(stderr, "bucketcache: cannot secure cluster \"%s\" (secured %u znodes so far; "
                        "run it again): %s\n", cli->cluster, count, bc_status_str(st));
    } else if (cli->json) {
        printf("{\"cluster\":\"%s\",\"secured_znodes\":%u,\"acl\":\"%s\"}\n", cli->cluster,
               count, shown);
    } else {
        printf("secured cluster \"%s\": %u znodes now carry the ACL %s\n", cli->cluster, count,
               shown);
    }
    return bc_cli_exit_for_status(st);
}

/*
 * "group config GID [--replication async|sync] [--sync-timeout-ms N]
 * [--max-lag-mb N] [--min-in-sync N] [--clear]": reads groups/<gid>/config, applies the
 * changes (with a version check, so two editors cannot lose each other's
 * change) and prints the result.  The group's nodes follow it at once.
 */
int
bc_cli_admin_group_config(bc_cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"replication", required_argument, NULL, 'r'},
        {"sync-timeout-ms", required_argument, NULL, 't'},
        {"max-lag-mb", required_argument, NULL, 'l'},
        {"min-in-sync", required_argument, NULL, 'm'},
        {"clear", no_argument, NULL, 'c'},
        {0, 0, 0, 0}};
    bc_cluster_group_config_t set;
    bc_cluster_group_config_init(&set);
    bool clear = false, change = false;
    int c;
    if (argc < 2) {
        fprintf(stderr, "bucketcache: group config GID [--replication async|sync] "
                        "[--sync-timeout-ms N] [--max-lag-mb N] [--min-in-sync N] [--clear]\n");
        return BC_CLI_EXIT_USAGE;
    }
    uint32_t gid = bc_cluster_parse_gid(argv[1]);
    if (gid == 0) {
        fprintf(stderr, "bucketcache: group config: \"%s\" is not a group id\n", argv[1]);
        return BC_CLI_EXIT_USAGE;
    }
    optind = 2;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        long long v = 0;
        bc_repl_mode_t mode;
        if (c == 'r') {
            if (bc_repl_mode_parse(optarg, &mode) != BC_OK) {
                fprintf(stderr, "bucketcache: --replication must be async or sync\n");
                return BC_CLI_EXIT_USAGE;
            }
            set.replication = (int)mode;
        } else if (c == 't') {
            if (!bc_cli_parse_i64(optarg, "--sync-timeout-ms", BC_REPL_SYNC_TIMEOUT_MIN_MS,
                               BC_REPL_SYNC_TIMEOUT_MAX_MS, &v)) {
                return BC_CLI_EXIT_USAGE;
            }
            set.sync_timeout_ms = v;
        } else if (c == 'l') {
            if (!bc_cli_parse_i64(optarg, "--max-lag-mb", 0, BC_REPL_MAX_LAG_MAX_MB, &v)) {
                return BC_CLI_EXIT_USAGE;
            }
            set.max_lag_mb = v;
        } else if (c == 'm') {
            if (!bc_cli_parse_i64(optarg, "--min-in-sync", 0, BC_CLUSTER_ISR_MAX, &v)) {
                return BC_CLI_EXIT_USAGE;
            }
            set.min_in_sync = v;
        } else if (c == 'c') {
            clear = true;
        } else {
            return BC_CLI_EXIT_USAGE;
        }
        change = true;
    }
    if (optind != argc) {
        fprintf(stderr, "bucketcache: group config: unexpected \"%s\"\n", argv[optind]);
        return BC_CLI_EXIT_USAGE;
    }
    bc_zk_t *zk;
    int rc = admin_connect(cli, &zk);
    if (rc != BC_CLI_EXIT_OK) return rc;
    char suffix[64], path[BC_CLUSTER_PATH_MAX + 64], err[256] = "";
    snprintf(suffix, sizeof(suffix), "/groups/%u", gid);
    bc_status_t st = bc_cluster_path(path, sizeof(path), cli->cluster, suffix);
    char *data = NULL;
    size_t len = 0;
    int32_t version = -1;
    bc_cluster_group_config_t cur;
    bc_cluster_group_config_init(&cur);
    /* Not created here: a group exists once its first node registered. */
    if (st == BC_OK) st = bc_zk_exists(zk, path, NULL, NULL, NULL);
    if (st == BC_ENOTFOUND) {
        fprintf(stderr, "bucketcache: cluster \"%s\" has no group %u (start its nodes first)\n",
                cli->cluster, gid);
        bc_zk_close(zk);
        return BC_CLI_EXIT_NOTFOUND;
    }
    if (st == BC_OK) {
        strncat(path, "/config", sizeof(path) - strlen(path) - 1);
        st = bc_zk_get(zk, path, NULL, NULL, &data, &len, &version);
        if (st == BC_ENOTFOUND) st = BC_OK;
        if (st == BC_OK && len > 0 &&
            bc_cluster_group_config_decode(data, len, &cur, err, sizeof(err)) != BC_OK) {
            fprintf(stderr, "bucketcache: the current config of group %u is malformed (%s); "
                            "it is replaced\n", gid, err);
            bc_cluster_group_config_init(&cur);
        }
        free(data);
    }
    if (st == BC_OK && change) {
        if (clear) bc_cluster_group_config_init(&cur);
        if (set.replication >= 0) cur.replication = set.replication;
        if (set.sync_timeout_ms >= 0) cur.sync_timeout_ms = set.sync_timeout_ms;
        if (set.max_lag_mb >= 0) cur.max_lag_mb = set.max_lag_mb;
        if (set.min_in_sync >= 0) cur.min_in_sync = set.min_in_sync;
        char *json = bc_cluster_group_config_encode(&cur);
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
            fprintf(stderr, "bucketcache: group config %u: %s\n", gid, bc_cli_status_text(st));
        }
        return bc_cli_exit_for_status(st);
    }
    char *json = bc_cluster_group_config_encode(&cur);
    if (cli->json) {
        printf("%s\n", json ? json : "{}");
    } else {
        char t[32] = "each node's flag", l[32] = "each node's flag";
        if (cur.sync_timeout_ms >= 0) snprintf(t, sizeof(t), "%lld ms", (long long)cur.sync_timeout_ms);
        if (cur.max_lag_mb >= 0) snprintf(l, sizeof(l), "%lld MiB", (long long)cur.max_lag_mb);
        char m[160] = "the mode's default (sync 1, async 0)";
        if (cur.min_in_sync == 0) {
            snprintf(m, sizeof(m), "0 (degrade-to-primary: writes go on with no backup in "
                                   "sync; a failover may then need `group failover --unclean`)");
        } else if (cur.min_in_sync > 0) {
            snprintf(m, sizeof(m), "%lld (fewer backups in sync: writes refused)",
                     (long long)cur.min_in_sync);
        }
        printf("group %u: replication %s, sync timeout %s, async max lag %s, min in sync %s\n",
               gid,
               cur.replication < 0 ? "each node's flag"
                                   : bc_repl_mode_name((bc_repl_mode_t)cur.replication), t,
               l, m);
    }
    free(json);
    return BC_CLI_EXIT_OK;
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

int
bc_cli_admin_tables(bc_cli_t *cli, int argc, char **argv)
{
    int per_bucket = 0;
    static const struct option opts[] = {{"per-bucket", no_argument, NULL, 'p'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "p", opts, NULL)) != -1) {
        if (c != 'p') return BC_CLI_EXIT_USAGE;
        per_bucket = 1;
    }
    bc_zk_t *zk;
    int rc = admin_connect(cli, &zk);
    if (rc != BC_CLI_EXIT_OK) return rc;

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
                    bc_cli_status_text(st), err[0] ? ": " : "", err);
        }
        for (int i = 0; i < loaded; i++) bc_table_free(&t[i]);
        return bc_cli_exit_for_status(st);
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
                              : bc_table_move_planned(t[1].owner[b], t[2].owner[b]) ? "pending move"
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
        for (uint32_t b = 0; b < cfg.nbuckets; b++) {
            pending += bc_table_move_planned(t[1].owner[b], t[2].owner[b]);
        }
        printf("pending moves: %u\n", pending);
    }
    for (int i = 0; i < 3; i++) bc_table_free(&t[i]);
    return BC_CLI_EXIT_OK;
}

/*
 * Asks the active console: method path, JSON reply parsed into *doc.
 * Returns an exit code; prints the reason on failure.
 */
static int
admin_console_call(bc_cli_t *cli, const char *method, const char *path, cJSON **doc,
                   int *http_status)
{
    char addr[BC_ADDR_MAX];
    int rc = bc_cli_console_addr(cli, addr, sizeof(addr));
    if (rc != BC_CLI_EXIT_OK) return rc;
    *http_status = 200;
    rc = bc_cli_console_request(addr, method, path, doc, false);
    if (rc != BC_CLI_EXIT_OK) *http_status = 500;
    return rc;
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

int
bc_cli_admin_group_failover(bc_cli_t *cli, int argc, char **argv)
{
    bool unclean = false;
    uint32_t gid = argc >= 2 ? bc_cluster_parse_gid(argv[1]) : 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--unclean") == 0) {
            unclean = true;
        } else {
            fprintf(stderr, "bucketcache: group failover: unexpected \"%s\"\n", argv[i]);
            return BC_CLI_EXIT_USAGE;
        }
    }
    if (gid == 0 || !unclean) {
        fprintf(stderr, "bucketcache: group failover GID --unclean\n"
                        "  A group whose primary is gone fails over by itself to a backup of its\n"
                        "  in-sync set.  When none is alive, --unclean promotes its best live node\n"
                        "  anyway: writes acknowledged after the old primary's last in-sync record\n"
                        "  may be lost.\n");
        return BC_CLI_EXIT_USAGE;
    }
    char path[96];
    snprintf(path, sizeof(path), "/v1/groups/failover?group=%u&unclean=1", gid);
    cJSON *doc = NULL;
    int status = 0;
    int rc = admin_console_call(cli, "POST", path, &doc, &status);
    if (rc != BC_CLI_EXIT_OK) return rc;
    if (cli->json) {
        char *s = cJSON_PrintUnformatted(doc);
        printf("%s\n", s ? s : "{}");
        free(s);
    } else {
        const cJSON *unc = cJSON_GetObjectItemCaseSensitive(doc, "unclean");
        const cJSON *behind = cJSON_GetObjectItemCaseSensitive(doc, "behind_bytes");
        printf("group %u: %s promoted%s (was %s), at offset %.0f\n", gid,
               json_str(doc, "promoted"), cJSON_IsTrue(unc) ? " UNCLEANLY" : " from the in-sync set",
               json_str(doc, "old_primary")[0] ? json_str(doc, "old_primary") : "-",
               cJSON_GetObjectItemCaseSensitive(doc, "offset")
                   ? cJSON_GetObjectItemCaseSensitive(doc, "offset")->valuedouble : 0.0);
        if (cJSON_IsNumber(behind)) {
            printf("the old primary last recorded its in-sync set at offset %.0f: the promoted "
                   "node is %.0f bytes of stream behind that\n",
                   cJSON_GetObjectItemCaseSensitive(doc, "recorded_offset")->valuedouble,
                   behind->valuedouble);
        }
        printf("may be lost: %s\n", json_str(doc, "may_be_lost"));
    }
    cJSON_Delete(doc);
    return BC_CLI_EXIT_OK;
}

/* A node's replication state, from its admin port (over tls, NULL: plain
 * HTTP), as one short phrase ("-" when it cannot be asked). */
static void
node_repl_summary(const bc_http_tls_t *tls, const char *admin, char *out, size_t len)
{
    bc_cluster_repl_status_t r;
    snprintf(out, len, "-");
    if (admin[0] == '\0' || bc_cluster_repl_status_fetch_tls(tls, admin, 500, &r) != BC_OK) {
        return;
    }
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

/* The group's entry in the console's /v1/stats/groups (NULL: none). */
static const cJSON *
status_group_stats(const cJSON *stats, double gid)
{
    const cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(stats, "groups")) {
        if (json_num(g, "gid") == gid) return g;
    }
    return NULL;
}

static void
status_mib(char *buf, size_t len, double bytes)
{
    snprintf(buf, len, bytes >= 10 * 1048576.0 ? "%.0f" : "%.1f", bytes / 1048576.0);
}

int
bc_cli_admin_status(bc_cli_t *cli, bool nodes_view)
{
    cJSON *doc, *stats = NULL, *warnings = NULL;
    char addr[BC_ADDR_MAX];
    int rc = bc_cli_console_addr(cli, addr, sizeof(addr));
    if (rc != BC_CLI_EXIT_OK) return rc;
    rc = bc_cli_console_request(addr, "GET", "/v1/cluster", &doc, false);
    if (rc != BC_CLI_EXIT_OK) return rc;
    if (!nodes_view) {
        /* Best effort: an older console has no statistics; say so below. */
        if (bc_cli_console_request(addr, "GET", "/v1/stats/groups", &stats, false) !=
            BC_CLI_EXIT_OK) {
            stats = NULL;
        }
        if (bc_cli_console_request(addr, "GET", "/v1/warnings", &warnings, false) !=
            BC_CLI_EXIT_OK) {
            warnings = NULL;
        }
    }
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(doc, "groups");
    if (cli->json) {
        if (!nodes_view) {
            if (stats != NULL) {
                cJSON_AddItemToObject(doc, "stats", cJSON_DetachItemFromObjectCaseSensitive(stats, "groups"));
            }
            if (warnings != NULL) {
                cJSON_AddItemToObject(doc, "warnings",
                                      cJSON_DetachItemFromObjectCaseSensitive(warnings, "warnings"));
            }
        }
        bc_cli_print_json(nodes_view ? groups : doc);
        cJSON_Delete(doc);
        cJSON_Delete(stats);
        cJSON_Delete(warnings);
        return BC_CLI_EXIT_OK;
    }
    const cJSON *g;
    if (!nodes_view) {
        printf("cluster \"%s\": %.0f buckets, epoch %.0f, active console %s\n",
               json_str(doc, "cluster"), json_num(doc, "buckets"), json_num(doc, "epoch"),
               json_str(doc, "active_console"));
        printf("pending moves: %.0f, unowned buckets: %.0f\n\n", json_num(doc, "pending_moves"),
               json_num(doc, "unowned_buckets"));
        printf("%-6s %-5s %17s %9s %6s %14s  %-22s %s\n", "GROUP", "STATE", "MEMORY used/limit",
               "OPS/S", "HIT%", "BUCKETS c/m/d", "PRIMARY", "NODES");
        cJSON_ArrayForEach(g, groups) {
            const cJSON *b = cJSON_GetObjectItemCaseSensitive(g, "buckets");
            const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(g, "nodes");
            const cJSON *gs = status_group_stats(stats, json_num(g, "gid"));
            const cJSON *mem = cJSON_GetObjectItemCaseSensitive(gs, "memory");
            const cJSON *lm = cJSON_GetObjectItemCaseSensitive(gs, "last_minute");
            const cJSON *hr = cJSON_GetObjectItemCaseSensitive(lm, "hit_ratio");
            char counts[48], memtext[48], used[16], limit[16], ops[16], hit[16];
            snprintf(counts, sizeof(counts), "%.0f/%.0f/%.0f", json_num(b, "c"), json_num(b, "m"),
                     json_num(b, "d"));
            if (gs != NULL && json_num(mem, "limit") > 0) {
                status_mib(used, sizeof(used), json_num(mem, "used"));
                status_mib(limit, sizeof(limit), json_num(mem, "limit"));
                snprintf(memtext, sizeof(memtext), "%s/%s MiB", used, limit);
                snprintf(ops, sizeof(ops), "%.0f", json_num(lm, "ops_per_s"));
            } else {
                snprintf(memtext, sizeof(memtext), "-/%.0f MiB", json_num(g, "memory") / 1048576.0);
                snprintf(ops, sizeof(ops), "-");
            }
            if (cJSON_IsNumber(hr)) snprintf(hit, sizeof(hit), "%.1f", 100.0 * hr->valuedouble);
            else snprintf(hit, sizeof(hit), "-");
            /* live nodes, but its primary's registration gone: failing
             * over, or waiting for an in-sync backup or an operator */
            bool waiting = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g, "live")) &&
                           json_str(g, "primary")[0] &&
                           !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g, "primary_live"));
            printf("%-6.0f %-5s %17s %9s %6s %14s  %-22s %d\n", json_num(g, "gid"),
                   !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g, "live")) ? "DOWN"
                   : waiting                                                  ? "no-primary"
                                                                              : "up",
                   memtext, ops, hit, counts,
                   json_str(g, "primary_addr")[0] ? json_str(g, "primary_addr") : "-",
                   cJSON_GetArraySize(nodes));
        }
        const cJSON *ws = cJSON_GetObjectItemCaseSensitive(warnings, "warnings"), *w;
        if (warnings == NULL) {
            printf("\nwarnings: unknown (the console serves no /v1/warnings)\n");
        } else if (cJSON_GetArraySize(ws) == 0) {
            printf("\nwarnings: none\n");
        } else {
            printf("\nwarnings:\n");
            cJSON_ArrayForEach(w, ws) {
                printf("  %-8s %-18s %s\n", json_str(w, "severity"), json_str(w, "kind"),
                       json_str(w, "message"));
            }
        }
    } else {
        /* The nodes' admin ports over HTTPS when the CLI was given a CA
         * (--tls-ca-file: nodes run with -Z in a cluster serve them so);
         * one context for every node.  Without a usable one, each node's
         * replication shows as unknown ("-"). */
        bc_http_tls_t *tls = NULL;
        bool tls_failed = false;
        if (cli->tls_ca_file != NULL && cli->tls_ca_file[0] != '\0') {
            bc_http_tls_config_t tc = {.ca_file = cli->tls_ca_file,
                                       .cert_file = cli->tls_cert_file,
                                       .key_file = cli->tls_key_file};
            char err[256];
            if (bc_http_tls_open(&tc, &tls, err, sizeof(err)) != BC_OK) {
                fprintf(stderr, "bucketcache: --tls-ca-file: %s\n", err);
                tls_failed = true;
            }
        }
        printf("%-6s %-14s %-8s %-22s %-22s %-9s %s\n", "GROUP", "NODE", "ROLE", "DATA", "ADMIN",
               "MEMORY", "REPLICATION");
        cJSON_ArrayForEach(g, groups) {
            const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(g, "nodes"), *n;
            if (cJSON_GetArraySize(nodes) == 0) {
                printf("%-6.0f %-14s %-8s\n", json_num(g, "gid"), "-", "down");
            }
            cJSON_ArrayForEach(n, nodes) {
                char repl[160] = "-", mem[24];
                if (!tls_failed) node_repl_summary(tls, json_str(n, "admin"), repl, sizeof(repl));
                if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(n, "in_sync"))) {
                    strncat(repl, ", in sync", sizeof(repl) - strlen(repl) - 1);
                }
                snprintf(mem, sizeof(mem), "%.0f MiB", json_num(n, "memory") / 1048576.0);
                printf("%-6.0f %-14s %-8s %-22s %-22s %-9s %s\n", json_num(g, "gid"),
                       json_str(n, "name"), json_str(n, "role"), json_str(n, "data"),
                       json_str(n, "admin")[0] ? json_str(n, "admin") : "-", mem, repl);
            }
        }
        bc_http_tls_free(tls);
    }
    cJSON_Delete(doc);
    cJSON_Delete(stats);
    cJSON_Delete(warnings);
    return BC_CLI_EXIT_OK;
}

int
bc_cli_admin_rebalance(bc_cli_t *cli, int argc, char **argv)
{
    bool dry_run = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dry-run") == 0 || strcmp(argv[i], "-n") == 0) {
            dry_run = true;
        } else {
            fprintf(stderr, "bucketcache: rebalance: unknown argument \"%s\"\n", argv[i]);
            return BC_CLI_EXIT_USAGE;
        }
    }
    cJSON *doc;
    int status;
    int rc = admin_console_call(cli, "POST", dry_run ? "/v1/rebalance?dry_run=1" : "/v1/rebalance",
                              &doc, &status);
    if (rc != BC_CLI_EXIT_OK) return rc;
    if (cli->json) {
        bc_cli_print_json(doc);
        cJSON_Delete(doc);
        return BC_CLI_EXIT_OK;
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
    return BC_CLI_EXIT_OK;
}

int
bc_cli_admin_locate(bc_cli_t *cli, int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "bucketcache: usage: locate KEY\n");
        return BC_CLI_EXIT_USAGE;
    }
    const char *key = argv[1];
    bc_zk_t *zk;
    int rc = admin_connect(cli, &zk);
    if (rc != BC_CLI_EXIT_OK) return rc;
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
                bc_cli_status_text(st), err);
        return bc_cli_exit_for_status(st);
    }
    uint32_t bucket = bc_hash_bucket(bc_hash_key(key, strlen(key)), cfg.nbuckets);
    uint32_t owner = c.owner[bucket];
    bool readonly = c.readonly[bucket] != 0;
    bc_cluster_primary_info_t primary;
    memset(&primary, 0, sizeof(primary));
    if (owner != 0) {
        char path[BC_CLUSTER_PATH_MAX], suffix[48], *data = NULL;
        size_t len = 0;
        snprintf(suffix, sizeof(suffix), "/groups/%u/primary", owner);
        bc_cluster_path(path, sizeof(path), cli->cluster, suffix);
        if (bc_zk_get(zk, path, NULL, NULL, &data, &len, NULL) == BC_OK) {
            bc_cluster_primary_info_decode(data ? data : "", len, &primary, NULL, 0);
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
    return owner == 0 ? BC_CLI_EXIT_NOTFOUND : BC_CLI_EXIT_OK;
}
