/*
 * observe.c -- see observe.h: `bucketcache top` and `bucketcache hotkeys`.
 *
 * Both ask the active console (found through ZooKeeper once); --watch
 * repeats `top` every --interval ms until interrupted (or --count times,
 * for scripts and tests).
 */
#include "observe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bc_cluster.h"

static double
obs_num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* Reads "--opt VALUE" at argv[*i]; false (with a message) when missing. */
static bool
obs_value(int argc, char **argv, int *i, const char **out)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "bucketcache: %s needs a value\n", argv[*i]);
        return false;
    }
    *out = argv[++*i];
    return true;
}

static const char top_usage[] =
    "usage: bucketcache top [--by ops|bytes|misses] [--n N] [--watch] [--interval MS] [--json]\n";
static const char hot_usage[] = "usage: bucketcache hotkeys [--group G] [--n N] [--json]\n";

static void
obs_human_bytes(char *buf, size_t len, double b)
{
    if (b >= 1048576.0) snprintf(buf, len, "%.1f MiB", b / 1048576.0);
    else if (b >= 1024.0) snprintf(buf, len, "%.1f KiB", b / 1024.0);
    else snprintf(buf, len, "%.0f B", b);
}

int
bc_cli_top(bc_cli_t *cli, int argc, char **argv)
{
    const char *by = "ops", *v;
    long long n = 10, interval = 2000, count = 0;
    bool watch = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--by") == 0) {
            if (!obs_value(argc, argv, &i, &by)) return BC_CLI_EXIT_USAGE;
            if (strcmp(by, "ops") != 0 && strcmp(by, "bytes") != 0 && strcmp(by, "misses") != 0) {
                fprintf(stderr, "bucketcache: top: --by must be ops, bytes or misses, got \"%s\"\n",
                        by);
                return BC_CLI_EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "--n") == 0 || strcmp(argv[i], "-n") == 0) {
            if (!obs_value(argc, argv, &i, &v) || !bc_cli_parse_i64(v, "--n", 1, 1000, &n)) {
                return BC_CLI_EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "--watch") == 0 || strcmp(argv[i], "-w") == 0) {
            watch = true;
        } else if (strcmp(argv[i], "--interval") == 0) {
            if (!obs_value(argc, argv, &i, &v) ||
                !bc_cli_parse_i64(v, "--interval", 100, 3600000, &interval)) {
                return BC_CLI_EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "--count") == 0) {
            if (!obs_value(argc, argv, &i, &v) || !bc_cli_parse_i64(v, "--count", 1, 1000000, &count)) {
                return BC_CLI_EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "bucketcache: top: unknown argument \"%s\"\n%s", argv[i], top_usage);
            return BC_CLI_EXIT_USAGE;
        }
    }
    char addr[128], path[96];
    int rc = bc_cli_console_addr(cli, addr, sizeof(addr));
    if (rc != BC_CLI_EXIT_OK) return rc;
    snprintf(path, sizeof(path), "/v1/buckets/top?by=%s&n=%lld", by, n);
    for (long long round = 1;; round++) {
        cJSON *doc;
        rc = bc_cli_console_request(addr, "GET", path, &doc, false);
        if (rc != BC_CLI_EXIT_OK) return rc;
        if (cli->json) {
            bc_cli_print_json(doc);
        } else {
            if (watch) {
                time_t now = time(NULL);
                char ts[32];
                strftime(ts, sizeof(ts), "%H:%M:%S", localtime(&now));
                printf("%s  busiest buckets by %s\n", ts, by);
            }
            printf("%-8s %-6s %10s %12s %10s %12s\n", "BUCKET", "GROUP", "OPS/S", "MISSES/S",
                   "ITEMS", "BYTES");
            const cJSON *e;
            cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(doc, "buckets")) {
                char bytes[32];
                obs_human_bytes(bytes, sizeof(bytes), obs_num(e, "bytes"));
                printf("%-8.0f %-6.0f %10.1f %12.1f %10.0f %12s\n", obs_num(e, "bucket"),
                       obs_num(e, "owner"), obs_num(e, "ops_per_s"), obs_num(e, "misses_per_s"),
                       obs_num(e, "items"), bytes);
            }
            if (watch) printf("\n");
        }
        fflush(stdout);
        cJSON_Delete(doc);
        if (!watch || (count > 0 && round >= count)) break;
        usleep((useconds_t)(interval * 1000));
    }
    return BC_CLI_EXIT_OK;
}

int
bc_cli_hotkeys(bc_cli_t *cli, int argc, char **argv)
{
    const char *v;
    long long n = 10, gid = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--n") == 0 || strcmp(argv[i], "-n") == 0) {
            if (!obs_value(argc, argv, &i, &v) || !bc_cli_parse_i64(v, "--n", 1, 1000, &n)) {
                return BC_CLI_EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "--group") == 0) {
            if (!obs_value(argc, argv, &i, &v) ||
                !bc_cli_parse_i64(v, "--group", 1, 4294967294LL, &gid)) {
                return BC_CLI_EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "bucketcache: hotkeys: unknown argument \"%s\"\n%s", argv[i], hot_usage);
            return BC_CLI_EXIT_USAGE;
        }
    }
    char addr[128], path[96];
    int rc = bc_cli_console_addr(cli, addr, sizeof(addr));
    if (rc != BC_CLI_EXIT_OK) return rc;
    if (gid > 0) snprintf(path, sizeof(path), "/v1/hotkeys?n=%lld&group=%lld", n, gid);
    else snprintf(path, sizeof(path), "/v1/hotkeys?n=%lld", n);
    cJSON *doc;
    rc = bc_cli_console_request(addr, "GET", path, &doc, false);
    if (rc != BC_CLI_EXIT_OK) return rc;
    if (cli->json) {
        bc_cli_print_json(doc);
    } else {
        printf("%-6s %-8s %12s  %s\n", "GROUP", "BUCKET", "REQUESTS/S", "KEY");
        const cJSON *g, *e;
        cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(doc, "groups")) {
            cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(g, "keys")) {
                const cJSON *k = cJSON_GetObjectItemCaseSensitive(e, "key");
                const cJSON *k64 = cJSON_GetObjectItemCaseSensitive(e, "key_base64");
                printf("%-6.0f %-8.0f %12.1f  %s%s\n", obs_num(g, "gid"), obs_num(e, "bucket"),
                       obs_num(e, "rate_per_s"), cJSON_IsString(k) ? "" : "base64:",
                       cJSON_IsString(k) ? k->valuestring
                                         : cJSON_IsString(k64) ? k64->valuestring : "?");
            }
        }
    }
    cJSON_Delete(doc);
    return BC_CLI_EXIT_OK;
}
