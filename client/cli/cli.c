/*
 * cli.c -- see cli.h: what the commands of `bucketcache` share.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_cluster.h"
#include "bc_http_client.h"
#include "bc_log.h"
#include "bc_text.h"
#include "bc_zk.h"

int
bc_cli_exit_for_status(bc_status_t st)
{
    switch (st) {
    case BC_OK: return BC_CLI_EXIT_OK;
    case BC_ENOTFOUND: return BC_CLI_EXIT_NOTFOUND;
    case BC_EEXISTS: return BC_CLI_EXIT_EXISTS;
    case BC_ETIMEOUT:
    case BC_EAGAIN: return BC_CLI_EXIT_UNAVAILABLE;
    case BC_EACCES: return BC_CLI_EXIT_DENIED;
    default: return BC_CLI_EXIT_FAILED;
    }
}

const char *
bc_cli_status_text(bc_status_t st)
{
    return st == BC_EACCES ? "ZooKeeper refused access (NOAUTH): check --zk-auth-file"
                           : bc_status_str(st);
}

/* A decimal integer in lo..hi, or a message naming the option. */
bool
bc_cli_parse_i64(const char *s, const char *what, long long lo, long long hi, long long *out)
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

void
bc_cli_print_json(const cJSON *doc)
{
    char *text = cJSON_PrintUnformatted(doc);
    if (text != NULL) printf("%s\n", text);
    free(text);
}

void
bc_cli_json_add_bytes(cJSON *o, const char *name, const void *p, size_t n)
{
    char field[64];
    char *text = malloc(BC_TEXT_BASE64_LEN(n) > n + 1 ? BC_TEXT_BASE64_LEN(n) : n + 1);
    if (text == NULL) return;
    if (bc_text_is_json_safe(p, n)) {
        memcpy(text, p, n);
        text[n] = '\0';
        cJSON_AddStringToObject(o, name, text);
    } else {
        snprintf(field, sizeof(field), "%s_base64", name);
        cJSON_AddStringToObject(o, field, bc_text_base64(p, n, text));
    }
    free(text);
}

int
bc_cli_zk_connect(const bc_cli_t *cli, bc_zk_t **zk)
{
    if (cli->zk_hosts == NULL || cli->zk_hosts[0] == '\0' || cli->cluster == NULL ||
        cli->cluster[0] == '\0') {
        fprintf(stderr, "bucketcache: --zk and --cluster are required "
                        "(or BUCKETCACHE_ZK and BUCKETCACHE_CLUSTER)\n");
        return BC_CLI_EXIT_USAGE;
    }
    if (!bc_cluster_name_valid(cli->cluster)) {
        fprintf(stderr, "bucketcache: invalid cluster name \"%s\" (1-64 of A-Z a-z 0-9 _ . -)\n",
                cli->cluster);
        return BC_CLI_EXIT_USAGE;
    }
    /* The session's own error log would repeat the line below: -v only. */
    int level = bc_log_get_level();
    if (!cli->verbose) bc_log_set_level((bc_log_level_t)-1);
    bc_status_t st = bc_zk_open(cli->zk_hosts, cli->session_timeout_ms, BC_CLI_ZK_CONNECT_MS,
                                NULL, NULL, zk);
    bc_log_set_level((bc_log_level_t)level);
    if (st != BC_OK) {
        fprintf(stderr, "bucketcache: cannot connect to ZooKeeper at %s: %s (no session within "
                        "%d ms); exit code %d\n", cli->zk_hosts, bc_status_str(st),
                BC_CLI_ZK_CONNECT_MS, BC_CLI_EXIT_UNAVAILABLE);
        return BC_CLI_EXIT_UNAVAILABLE;
    }
    return BC_CLI_EXIT_OK;
}

int
bc_cli_console_addr(const bc_cli_t *cli, char *addr, size_t len)
{
    bc_zk_t *zk;
    int rc = bc_cli_zk_connect(cli, &zk);
    if (rc != BC_CLI_EXIT_OK) return rc;
    bc_status_t st = bc_cluster_active_console(zk, cli->cluster, addr, len);
    bc_zk_close(zk);
    if (st == BC_ENOTFOUND) {
        fprintf(stderr, "bucketcache: no console is running for cluster \"%s\"\n", cli->cluster);
        return BC_CLI_EXIT_UNAVAILABLE;
    }
    if (st != BC_OK) {
        fprintf(stderr, "bucketcache: cannot find the console of \"%s\": %s\n", cli->cluster,
                bc_cli_status_text(st));
        return bc_cli_exit_for_status(st);
    }
    return BC_CLI_EXIT_OK;
}

int
bc_cli_console_request(const char *addr, const char *method, const char *path, cJSON **doc,
                       bool quiet)
{
    bc_http_response_t resp;
    *doc = NULL;
    bc_status_t st = bc_http_request(addr, method, path, NULL, 0, 10000, &resp);
    if (st != BC_OK) {
        if (!quiet) {
            fprintf(stderr, "bucketcache: console at %s did not answer: %s\n", addr,
                    bc_status_str(st));
        }
        return BC_CLI_EXIT_UNAVAILABLE;
    }
    int status = resp.status;
    *doc = cJSON_ParseWithLength(resp.body, resp.body_len);
    bc_http_response_free(&resp);
    if (*doc == NULL) {
        fprintf(stderr, "bucketcache: console at %s sent a malformed reply\n", addr);
        return BC_CLI_EXIT_FAILED;
    }
    if (status >= 300) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(*doc, "error");
        fprintf(stderr, "bucketcache: console: %s%s\n", cJSON_IsString(e) ? e->valuestring : "error",
                status == 401 ? " (give --auth-token-file or $BUCKETCACHE_TOKEN)" : "");
        cJSON_Delete(*doc);
        *doc = NULL;
        return status == 409 || status == 503 ? BC_CLI_EXIT_UNAVAILABLE
             : status == 404 ? BC_CLI_EXIT_NOTFOUND
             : status == 401 || status == 403 ? BC_CLI_EXIT_DENIED : BC_CLI_EXIT_FAILED;
    }
    return BC_CLI_EXIT_OK;
}
