/*
 * data.c -- see data.h: the data commands, through libbucketcache.  Keys
 * are checked here first (1..250 bytes, no space or control character) so
 * a typo is a usage error, not a round trip; a value is read whole, at
 * most 64 MiB from a file or stdin, before the client is created.
 */
#include "data.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bucketcache.h"

static int
data_exit_for(int code)
{
    switch (code) {
    case BC_CLIENT_OK: return BC_CLI_EXIT_OK;
    case BC_CLIENT_ENOTFOUND:
    case BC_CLIENT_ENOCLUSTER: return BC_CLI_EXIT_NOTFOUND;
    case BC_CLIENT_EZK: return BC_CLI_EXIT_UNAVAILABLE;
    case BC_CLIENT_ETIMEOUT: return BC_CLI_EXIT_TIMEOUT;
    case BC_CLIENT_ENOOWNER: return BC_CLI_EXIT_NO_OWNER;
    case BC_CLIENT_EINVAL: return BC_CLI_EXIT_USAGE;
    default: return BC_CLI_EXIT_FAILED;
    }
}

/* The worst of two exit codes, for commands over several keys. */
static int
data_worse(int a, int b)
{
    if (a == BC_CLI_EXIT_OK) return b;
    if (b == BC_CLI_EXIT_OK) return a;
    return a == BC_CLI_EXIT_NOTFOUND ? b : a;
}

static void
data_lib_log(void *ctx, int level, const char *message)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    (void)ctx;
    fprintf(stderr, "bucketcache: %s: %s\n", names[level < 0 ? 0 : level > 3 ? 3 : level], message);
}

/* The last error the library logged while the client was being made. */
static char data_create_error[512];

static void
data_lib_quiet(void *ctx, int level, const char *message)
{
    (void)ctx;
    if (level == 0) snprintf(data_create_error, sizeof(data_create_error), "%s", message);
}

static int
data_client(bc_cli_t *cli, bc_client_t **out)
{
    if (cli->zk_hosts == NULL || cli->zk_hosts[0] == '\0' || cli->cluster == NULL ||
        cli->cluster[0] == '\0') {
        fprintf(stderr, "bucketcache: --zk and --cluster are required "
                        "(or BUCKETCACHE_ZK and BUCKETCACHE_CLUSTER)\n");
        return BC_CLI_EXIT_USAGE;
    }
    bc_client_set_log(data_lib_log, NULL, cli->verbose ? BC_CLIENT_LOG_DEBUG : BC_CLIENT_LOG_ERROR);
    bc_client_options_t opts;
    bc_client_options_init(&opts);
    opts.zk_hosts = cli->zk_hosts;
    opts.cluster = cli->cluster;
    opts.zk_session_timeout_ms = cli->session_timeout_ms;
    opts.timeout_ms = cli->timeout_ms;
    opts.zk_auth_file = cli->zk_auth_file;
    opts.tls = cli->tls || cli->tls_ca_file != NULL || cli->tls_cert_file != NULL ||
               cli->tls_key_file != NULL || cli->tls_server_name != NULL ||
               cli->tls_no_name_check;
    opts.tls_ca_file = cli->tls_ca_file;
    opts.tls_cert_file = cli->tls_cert_file;
    opts.tls_key_file = cli->tls_key_file;
    opts.tls_server_name = cli->tls_server_name;
    opts.tls_no_name_check = cli->tls_no_name_check;
    /* While the client starts, its errors are the line printed below
     * (with -v every step is logged). */
    if (!cli->verbose) bc_client_set_log(data_lib_quiet, NULL, BC_CLIENT_LOG_ERROR);
    int rc = bc_client_create(&opts, out);
    bc_client_set_log(data_lib_log, NULL, cli->verbose ? BC_CLIENT_LOG_DEBUG : BC_CLIENT_LOG_ERROR);
    if (rc == BC_CLIENT_OK) return BC_CLI_EXIT_OK;
    if (rc == BC_CLIENT_EACCES) {
        fprintf(stderr, "bucketcache: ZooKeeper refused access to cluster \"%s\" (NOAUTH): "
                        "check --zk-auth-file\n", cli->cluster);
        return BC_CLI_EXIT_DENIED;
    }
    if (rc == BC_CLIENT_ENOCLUSTER) {
        fprintf(stderr, "bucketcache: cluster \"%s\" not found\n", cli->cluster);
    } else if (rc == BC_CLIENT_EINVAL && strncmp(data_create_error, "client: TLS: ", 13) == 0) {
        fprintf(stderr, "bucketcache: %s\n", data_create_error + 8);
    } else if (rc == BC_CLIENT_EINVAL) {
        fprintf(stderr, "bucketcache: invalid cluster name \"%s\" (1-64 of A-Z a-z 0-9 _ . -)\n",
                cli->cluster);
    } else {
        fprintf(stderr, "bucketcache: cannot use cluster \"%s\" at ZooKeeper %s: %s; exit code %d\n",
                cli->cluster, cli->zk_hosts, bc_strerror(rc), data_exit_for(rc));
    }
    return data_exit_for(rc);
}

static bool
data_key_ok(const char *key)
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
data_key_error(const char *what, const char *key, int code)
{
    fprintf(stderr, "bucketcache: %s %s: %s\n", what, key, bc_strerror(code));
}

/*
 * The keys argv[first..argc) checked, then a library client opened: the
 * common start of the multi-key data commands.  Prints usage when there is
 * no key.  Returns an exit code; *client is set on BC_CLI_EXIT_OK.
 */
static int
data_keys_client(bc_cli_t *cli, int argc, char **argv, int first, const char *usage,
                bc_client_t **client)
{
    if (first >= argc) {
        fprintf(stderr, "bucketcache: usage: %s\n", usage);
        return BC_CLI_EXIT_USAGE;
    }
    for (int i = first; i < argc; i++) {
        if (!data_key_ok(argv[i])) return BC_CLI_EXIT_USAGE;
    }
    return data_client(cli, client);
}

int
bc_cli_data_get(bc_cli_t *cli, int argc, char **argv)
{
    bc_client_t *client;
    int rc = data_keys_client(cli, argc, argv, 1, "get KEY...", &client);
    if (rc != BC_CLI_EXIT_OK) return rc;
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
        return BC_CLI_EXIT_FAILED;
    }
    for (size_t i = 0; i < n; i++) {
        keys[i] = argv[i + 1];
        klens[i] = strlen(argv[i + 1]);
    }
    bc_client_mget(client, n, keys, klens, cli->timeout_ms, items);
    int exit_code = BC_CLI_EXIT_OK;
    cJSON *arr = cli->json ? cJSON_CreateArray() : NULL;
    for (size_t i = 0; i < n; i++) {
        const bc_client_item_t *it = &items[i];
        if (it->status != BC_CLIENT_OK) {
            exit_code = data_worse(exit_code, data_exit_for(it->status));
            if (!cli->json) data_key_error("get", argv[i + 1], it->status);
        }
        if (cli->json) {
            cJSON *o = cJSON_CreateObject();
            bc_cli_json_add_bytes(o, "key", argv[i + 1], strlen(argv[i + 1]));
            cJSON_AddBoolToObject(o, "found", it->status == BC_CLIENT_OK);
            if (it->status == BC_CLIENT_OK) {
                bc_cli_json_add_bytes(o, "value", it->value, it->vlen);
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
        bc_cli_print_json(n == 1 ? cJSON_GetArrayItem(arr, 0) : arr);
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
data_read_all(FILE *f, size_t *len)
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

int
bc_cli_data_set(bc_cli_t *cli, int argc, char **argv)
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
            if (!bc_cli_parse_i64(optarg, "--ttl", -1, INT32_MAX, &ttl)) return BC_CLI_EXIT_USAGE;
            break;
        case 'F':
            if (!bc_cli_parse_i64(optarg, "--flags", 0, UINT32_MAX, &flags)) {
                return BC_CLI_EXIT_USAGE;
            }
            break;
        case 'C': {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || optarg[0] == '-' || v == 0) {
                fprintf(stderr, "bucketcache: --cas must be the positive number `gets` printed\n");
                return BC_CLI_EXIT_USAGE;
            }
            cas = v;
            mode = c;
            break;
        }
        case 'a':
        case 'r':
        case 'A':
        case 'P': mode = c; break;
        default: return BC_CLI_EXIT_USAGE;
        }
    }
    int npos = argc - optind;
    if (npos < 1 || npos > 2 || (file != NULL && npos == 2)) {
        fprintf(stderr, "bucketcache: usage: set KEY [VALUE|-] [--file F] [--ttl SECS] [--flags N] "
                        "[--add|--replace|--append|--prepend|--cas N]\n");
        return BC_CLI_EXIT_USAGE;
    }
    const char *key = argv[optind];
    if (!data_key_ok(key)) return BC_CLI_EXIT_USAGE;
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
            return BC_CLI_EXIT_FAILED;
        }
        value = data_read_all(f, &vlen);
        fclose(f);
    } else {
        value = data_read_all(stdin, &vlen);
    }
    if (value == NULL) {
        fprintf(stderr, "bucketcache: cannot read the value (%s)\n",
                errno ? strerror(errno) : "too large");
        return BC_CLI_EXIT_FAILED;
    }
    bc_client_t *client;
    int rc = data_client(cli, &client);
    if (rc != BC_CLI_EXIT_OK) {
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
        return mode == 'a' ? BC_CLI_EXIT_EXISTS : BC_CLI_EXIT_NOTFOUND;
    }
    if (code == BC_CLIENT_EEXISTS) {
        fprintf(stderr, "bucketcache: set %s: not stored (it changed since that cas was read)\n",
                key);
        return BC_CLI_EXIT_EXISTS;
    }
    if (code != BC_CLIENT_OK) {
        data_key_error("set", key, code);
        return data_exit_for(code);
    }
    if (cli->json) {
        cJSON *o = cJSON_CreateObject();
        bc_cli_json_add_bytes(o, "key", key, strlen(key));
        cJSON_AddBoolToObject(o, "stored", true);
        cJSON_AddNumberToObject(o, "bytes", (double)vlen);
        bc_cli_print_json(o);
        cJSON_Delete(o);
    }
    return BC_CLI_EXIT_OK;
}

/* "gets KEY": the value with its CAS, for `set --cas`. */
int
bc_cli_data_gets(bc_cli_t *cli, int argc, char **argv)
{
    bc_client_t *client;
    int rc = data_keys_client(cli, argc, argv, 1, "gets KEY", &client);
    if (rc != BC_CLI_EXIT_OK) return rc;
    if (argc != 2) {
        bc_client_destroy(client);
        fprintf(stderr, "bucketcache: usage: gets KEY\n");
        return BC_CLI_EXIT_USAGE;
    }
    void *value = NULL;
    size_t vlen = 0;
    uint32_t flags = 0;
    uint64_t cas = 0;
    int code = bc_client_gets(client, argv[1], strlen(argv[1]), cli->timeout_ms, &value, &vlen,
                              &flags, &cas);
    bc_client_destroy(client);
    if (code != BC_CLIENT_OK) {
        data_key_error("gets", argv[1], code);
        return data_exit_for(code);
    }
    if (cli->json) {
        cJSON *o = cJSON_CreateObject();
        bc_cli_json_add_bytes(o, "key", argv[1], strlen(argv[1]));
        bc_cli_json_add_bytes(o, "value", value, vlen);
        cJSON_AddNumberToObject(o, "flags", flags);
        cJSON_AddNumberToObject(o, "cas", (double)cas);
        bc_cli_print_json(o);
        cJSON_Delete(o);
    } else {
        printf("%llu\t", (unsigned long long)cas);
        fwrite(value, 1, vlen, stdout);
        printf("\n");
    }
    bc_client_free(value);
    return BC_CLI_EXIT_OK;
}

int
bc_cli_data_del(bc_cli_t *cli, int argc, char **argv)
{
    bc_client_t *client;
    int rc = data_keys_client(cli, argc, argv, 1, "del KEY...", &client);
    if (rc != BC_CLI_EXIT_OK) return rc;
    int exit_code = BC_CLI_EXIT_OK;
    for (int i = 1; i < argc; i++) {
        int code = bc_client_delete(client, argv[i], strlen(argv[i]), cli->timeout_ms);
        if (code != BC_CLIENT_OK) data_key_error("del", argv[i], code);
        exit_code = data_worse(exit_code, data_exit_for(code));
    }
    bc_client_destroy(client);
    return exit_code;
}

int
bc_cli_data_touch(bc_cli_t *cli, int argc, char **argv)
{
    static const struct option opts[] = {{"ttl", required_argument, NULL, 't'}, {0, 0, 0, 0}};
    long long ttl = -2;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 't' || !bc_cli_parse_i64(optarg, "--ttl", -1, INT32_MAX, &ttl)) {
            return BC_CLI_EXIT_USAGE;
        }
    }
    bc_client_t *client;
    int rc = data_keys_client(cli, argc, argv, ttl == -2 ? argc : optind,
                             "touch --ttl SECS KEY...", &client);
    if (rc != BC_CLI_EXIT_OK) return rc;
    int exit_code = BC_CLI_EXIT_OK;
    for (int i = optind; i < argc; i++) {
        int code = bc_client_touch(client, argv[i], strlen(argv[i]), ttl, cli->timeout_ms);
        if (code != BC_CLIENT_OK) data_key_error("touch", argv[i], code);
        exit_code = data_worse(exit_code, data_exit_for(code));
    }
    bc_client_destroy(client);
    return exit_code;
}

int
bc_cli_data_arith(bc_cli_t *cli, int argc, char **argv)
{
    bool incr = strcmp(argv[0], "incr") == 0;
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "bucketcache: usage: %s KEY [DELTA]\n", argv[0]);
        return BC_CLI_EXIT_USAGE;
    }
    if (!data_key_ok(argv[1])) return BC_CLI_EXIT_USAGE;
    uint64_t delta = 1;
    if (argc == 3) {
        char *end;
        errno = 0;
        unsigned long long d = strtoull(argv[2], &end, 10);
        if (argv[2][0] == '\0' || argv[2][0] == '-' || *end != '\0' || errno != 0) {
            fprintf(stderr, "bucketcache: DELTA must be an unsigned integer, got \"%s\"\n", argv[2]);
            return BC_CLI_EXIT_USAGE;
        }
        delta = d;
    }
    bc_client_t *client;
    int rc = data_client(cli, &client);
    if (rc != BC_CLI_EXIT_OK) return rc;
    uint64_t result = 0;
    int code = incr ? bc_client_incr(client, argv[1], strlen(argv[1]), delta, &result, cli->timeout_ms)
                    : bc_client_decr(client, argv[1], strlen(argv[1]), delta, &result, cli->timeout_ms);
    bc_client_destroy(client);
    if (code != BC_CLIENT_OK) {
        data_key_error(argv[0], argv[1], code);
        return data_exit_for(code);
    }
    if (cli->json) {
        cJSON *o = cJSON_CreateObject();
        bc_cli_json_add_bytes(o, "key", argv[1], strlen(argv[1]));
        char num[24];
        snprintf(num, sizeof(num), "%llu", (unsigned long long)result);
        cJSON_AddRawToObject(o, "value", num);   /* exact past 2^53 */
        bc_cli_print_json(o);
        cJSON_Delete(o);
    }
    else printf("%llu\n", (unsigned long long)result);
    return BC_CLI_EXIT_OK;
}
