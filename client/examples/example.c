/*
 * example.c -- a small program using libbucketcache.
 *
 *   cc example.c $(pkg-config --cflags --libs bucketcache) -o example
 *   ./example --zk 127.0.0.1:2181 --cluster demo
 *
 * (--zk and --cluster default to $BUCKETCACHE_ZK and $BUCKETCACHE_CLUSTER.)
 * It stores and reads a value, reads several keys at once, loads a value
 * through a read-through loader, counts with incr, deletes, and prints the
 * client's statistics.  Exit status 0 when everything behaved as expected.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bucketcache.h>

static int failures;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            fprintf(stderr, "example: FAILED: " __VA_ARGS__); \
            fprintf(stderr, "\n");                         \
            failures++;                                    \
        }                                                  \
    } while (0)

/* The "origin" behind the cache: a real program would query a database. */
static int loader_calls;

static int
load_user(void *ctx, const void *key, size_t klen, bc_client_loaded_t *out)
{
    const char *prefix = ctx;
    loader_calls++;
    char *v = malloc(klen + 64);
    if (v == NULL) return BC_CLIENT_ENOMEM;
    out->vlen = (size_t)sprintf(v, "%s%.*s", prefix, (int)klen, (const char *)key);
    out->value = v;          /* the library takes this buffer and free()s it */
    out->exptime = 300;      /* cached for five minutes */
    return BC_CLIENT_OK;
}

int
main(int argc, char **argv)
{
    const char *zk = getenv("BUCKETCACHE_ZK"), *cluster = getenv("BUCKETCACHE_CLUSTER");
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--zk") == 0) zk = argv[i + 1];
        else if (strcmp(argv[i], "--cluster") == 0) cluster = argv[i + 1];
    }
    if (zk == NULL || cluster == NULL) {
        fprintf(stderr, "usage: example --zk HOSTS --cluster NAME\n");
        return 2;
    }

    bc_client_options_t opts;
    bc_client_options_init(&opts);
    opts.zk_hosts = zk;
    opts.cluster = cluster;
    opts.timeout_ms = 2000;

    bc_client_t *client;
    int rc = bc_client_create(&opts, &client);
    if (rc != BC_CLIENT_OK) {
        fprintf(stderr, "example: cannot connect to %s/%s: %s\n", zk, cluster, bc_strerror(rc));
        return 1;
    }

    /* set + get */
    const char *key = "example:greeting", *text = "hello, bucketcache";
    rc = bc_client_set(client, key, strlen(key), text, strlen(text), 7, 0, 0);
    CHECK(rc == BC_CLIENT_OK, "set: %s", bc_strerror(rc));
    void *value;
    size_t vlen;
    uint32_t flags;
    rc = bc_client_get(client, key, strlen(key), 0, &value, &vlen, &flags);
    CHECK(rc == BC_CLIENT_OK && vlen == strlen(text) && memcmp(value, text, vlen) == 0 && flags == 7,
          "get: %s", bc_strerror(rc));
    if (rc == BC_CLIENT_OK) printf("get %s -> \"%s\" (flags %u)\n", key, (char *)value, flags);
    bc_client_free(value);

    /* add refuses an existing key */
    rc = bc_client_add(client, key, strlen(key), "x", 1, 0, 0, 0);
    CHECK(rc == BC_CLIENT_ENOTSTORED, "add of an existing key: %s", bc_strerror(rc));

    /* multi-get: results come back in request order */
    const char *k2 = "example:second";
    bc_client_set(client, k2, strlen(k2), "2", 1, 0, 0, 0);
    const void *keys[3] = {key, "example:missing", k2};
    size_t klens[3] = {strlen(key), strlen("example:missing"), strlen(k2)};
    bc_client_item_t items[3];
    rc = bc_client_mget(client, 3, keys, klens, 0, items);
    CHECK(rc == BC_CLIENT_OK, "mget: %s", bc_strerror(rc));
    CHECK(items[0].status == BC_CLIENT_OK && items[1].status == BC_CLIENT_ENOTFOUND &&
              items[2].status == BC_CLIENT_OK && items[2].vlen == 1,
          "mget items: %d %d %d", items[0].status, items[1].status, items[2].status);
    for (int i = 0; i < 3; i++) {
        printf("mget %s -> %s\n", (const char *)keys[i],
               items[i].status == BC_CLIENT_OK ? (char *)items[i].value : bc_strerror(items[i].status));
    }
    bc_client_items_free(items, 3);

    /* read-through: the first call loads, the second is a cache hit */
    const char *user = "example:user:42";
    bc_client_delete(client, user, strlen(user), 0);
    for (int round = 0; round < 2; round++) {
        rc = bc_client_get_or_load(client, user, strlen(user), load_user, "profile of ", 0, &value,
                                   &vlen, NULL);
        CHECK(rc == BC_CLIENT_OK, "get_or_load: %s", bc_strerror(rc));
        if (rc == BC_CLIENT_OK) printf("get_or_load %s -> \"%s\"\n", user, (char *)value);
        bc_client_free(value);
    }
    CHECK(loader_calls == 1, "the loader ran %d times, expected once", loader_calls);

    /* counters */
    const char *counter = "example:counter";
    bc_client_set(client, counter, strlen(counter), "10", 2, 0, 0, 0);
    uint64_t n = 0;
    rc = bc_client_incr(client, counter, strlen(counter), 5, &n, 0);
    CHECK(rc == BC_CLIENT_OK && n == 15, "incr: %s (%llu)", bc_strerror(rc), (unsigned long long)n);

    /* delete, then the key is gone */
    rc = bc_client_delete(client, key, strlen(key), 0);
    CHECK(rc == BC_CLIENT_OK, "delete: %s", bc_strerror(rc));
    rc = bc_client_get(client, key, strlen(key), 0, &value, &vlen, NULL);
    CHECK(rc == BC_CLIENT_ENOTFOUND, "get after delete: %s", bc_strerror(rc));

    bc_client_stats_t st;
    bc_client_get_stats(client, &st);
    printf("stats: ops %llu, hits %llu, misses %llu, loads %llu, retries %llu, table epoch %llu, "
           "%u buckets\n",
           (unsigned long long)st.ops, (unsigned long long)st.hits, (unsigned long long)st.misses,
           (unsigned long long)st.loads, (unsigned long long)st.retries,
           (unsigned long long)st.table_epoch, st.nbuckets);
    bc_client_destroy(client);
    if (failures == 0) printf("example: all good\n");
    return failures == 0 ? 0 : 1;
}
