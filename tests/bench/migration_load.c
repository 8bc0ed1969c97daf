/*
 * migration_load.c -- bench_migration_load: fills a cluster with data for
 * the migration benchmark (tests/bench/migration.py).
 *
 *   bench_migration_load --console HOST:PORT [--mb N] [--value-size B]
 *                        [--prefix P] [--batch K]
 *
 * Asks the console for the c table and every group's primary
 * (GET /v1/tables, /v1/cluster), then writes keys P000000000, P000000001,
 * ... with B-byte values until N MiB of values are stored, each straight to
 * its bucket's primary (bucket = murmur3 of the key, docs/hashing.md), K
 * pipelined sets per group at a time.  Any reply but STORED is an error.
 *
 * Prints one line:  RESULT items=... bytes=... secs=... mb_per_s=... errors=...
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bc_config.h"
#include "bc_hash.h"
#include "bc_http_client.h"
#include "bc_time.h"

#define MAX_GROUPS 64

typedef struct group {
    uint32_t gid;
    int fd;
    char *out;                 /* pending sets */
    size_t out_len, out_cap;
    uint32_t pending;          /* replies owed */
    char rbuf[65536];
    size_t rlen;
} group_t;

static group_t groups[MAX_GROUPS];
static int ngroups;
static uint64_t errors;

static cJSON *
get_json(const char *console, const char *path)
{
    bc_http_response_t resp;
    if (bc_http_request(console, "GET", path, NULL, 0, 10000, &resp) != BC_OK || resp.status != 200) {
        fprintf(stderr, "migration_load: GET %s from %s failed\n", path, console);
        exit(1);
    }
    cJSON *doc = cJSON_ParseWithLength(resp.body, resp.body_len);
    bc_http_response_free(&resp);
    if (doc == NULL) exit(1);
    return doc;
}

static int
connect_to(const char *addr)
{
    bc_hostport_t hp;
    struct addrinfo hints, *res;
    char port[8];
    if (bc_parse_hostport(addr, 0, &hp) != BC_OK) return -1;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%u", hp.port);
    if (getaddrinfo(hp.host, port, &hints, &res) != 0) return -1;
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static group_t *
group_of(uint32_t gid)
{
    for (int i = 0; i < ngroups; i++) {
        if (groups[i].gid == gid) return &groups[i];
    }
    return NULL;
}

/* Sends g's pending sets and reads every reply. */
static void
flush_group(group_t *g)
{
    size_t off = 0;
    while (off < g->out_len) {
        ssize_t n = write(g->fd, g->out + off, g->out_len - off);
        if (n <= 0) {
            perror("migration_load: write");
            exit(1);
        }
        off += (size_t)n;
    }
    g->out_len = 0;
    while (g->pending > 0) {
        char *nl;
        while ((nl = memchr(g->rbuf, '\n', g->rlen)) != NULL) {
            size_t line = (size_t)(nl - g->rbuf) + 1;
            if (line != 8 || memcmp(g->rbuf, "STORED\r\n", 8) != 0) {
                if (errors++ < 5) fprintf(stderr, "migration_load: %.*s", (int)line, g->rbuf);
            }
            memmove(g->rbuf, g->rbuf + line, g->rlen - line);
            g->rlen -= line;
            g->pending--;
            if (g->pending == 0) return;
        }
        ssize_t n = read(g->fd, g->rbuf + g->rlen, sizeof(g->rbuf) - g->rlen);
        if (n <= 0) {
            perror("migration_load: read");
            exit(1);
        }
        g->rlen += (size_t)n;
    }
}

int
main(int argc, char **argv)
{
    const char *console = NULL, *prefix = "m";
    size_t mb = 64, vsize = 4000;
    uint32_t batch = 64;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--console") == 0 && i + 1 < argc) console = argv[++i];
        else if (strcmp(argv[i], "--mb") == 0 && i + 1 < argc) mb = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--value-size") == 0 && i + 1 < argc) vsize = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--prefix") == 0 && i + 1 < argc) prefix = argv[++i];
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) batch = (uint32_t)strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s --console HOST:PORT [--mb N] [--value-size B] "
                            "[--prefix P] [--batch K]\n", argv[0]);
            return 2;
        }
    }
    if (console == NULL || vsize == 0 || batch == 0) return 2;

    cJSON *tables = get_json(console, "/v1/tables");
    cJSON *cluster = get_json(console, "/v1/cluster");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(tables, "c");
    uint32_t nbuckets = (uint32_t)cJSON_GetArraySize(c);
    uint32_t *owner = calloc(nbuckets, sizeof(*owner));
    for (uint32_t b = 0; b < nbuckets; b++) owner[b] = (uint32_t)cJSON_GetArrayItem(c, (int)b)->valuedouble;
    const cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(cluster, "groups")) {
        const cJSON *addr = cJSON_GetObjectItemCaseSensitive(g, "primary_addr");
        if (!cJSON_IsString(addr) || addr->valuestring[0] == '\0' || ngroups == MAX_GROUPS) continue;
        group_t *gr = &groups[ngroups];
        gr->gid = (uint32_t)cJSON_GetObjectItemCaseSensitive(g, "gid")->valuedouble;
        gr->fd = connect_to(addr->valuestring);
        if (gr->fd < 0) {
            fprintf(stderr, "migration_load: cannot connect to %s\n", addr->valuestring);
            return 1;
        }
        ngroups++;
    }
    cJSON_Delete(tables);
    cJSON_Delete(cluster);

    char *value = malloc(vsize);
    memset(value, 'v', vsize);
    size_t total = mb * 1024 * 1024, stored = 0;
    uint64_t items = 0;
    double t0 = bc_time_mono_s();
    while (stored < total) {
        char key[64], head[128];
        int nkey = snprintf(key, sizeof(key), "%s%09llu", prefix, (unsigned long long)items);
        uint32_t b = bc_hash_bucket(bc_hash_key(key, (size_t)nkey), nbuckets);
        group_t *gr = group_of(owner[b]);
        if (gr == NULL) {
            fprintf(stderr, "migration_load: bucket %u has no primary\n", b);
            return 1;
        }
        int nh = snprintf(head, sizeof(head), "set %s 0 0 %zu\r\n", key, vsize);
        size_t need = (size_t)nh + vsize + 2;
        if (gr->out_cap - gr->out_len < need) {
            gr->out_cap = (gr->out_len + need) * 2;
            gr->out = realloc(gr->out, gr->out_cap);
        }
        memcpy(gr->out + gr->out_len, head, (size_t)nh);
        memcpy(gr->out + gr->out_len + nh, value, vsize);
        memcpy(gr->out + gr->out_len + nh + vsize, "\r\n", 2);
        gr->out_len += need;
        gr->pending++;
        if (gr->pending >= batch) flush_group(gr);
        stored += vsize;
        items++;
    }
    for (int i = 0; i < ngroups; i++) {
        if (groups[i].pending > 0) flush_group(&groups[i]);
    }
    double secs = bc_time_mono_s() - t0;
    printf("RESULT items=%llu bytes=%zu secs=%.2f mb_per_s=%.1f errors=%llu\n",
           (unsigned long long)items, stored, secs, stored / secs / 1048576.0,
           (unsigned long long)errors);
    free(value);
    free(owner);
    return errors == 0 ? 0 : 1;
}
