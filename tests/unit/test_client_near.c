/*
 * test_client_near.c -- the bounded TTL cache behind the near cache and
 * the negative cache (byte bound never exceeded, LRU order, expiry,
 * replacement, oversized entries, concurrent use), the frequency sketch,
 * and the near cache in a client: hot keys are served without a round
 * trip, cold keys are not cached, writes through the client invalidate.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "bc_hash.h"
#include "client.h"
#include "client_int.h"
#include "registry.h"
#include "test_client_fake.h"

static uint32_t
h(const char *k)
{
    return bc_hash_key(k, strlen(k));
}

static void
test_lru_basic(void **state)
{
    (void)state;
    bc__lru_t *lru = bc__lru_new(1 << 20);
    assert_non_null(lru);
    assert_null(bc__lru_new(0));
    assert_int_equal(bc__lru_put(lru, h("a"), "a", 1, "1", 1, 4, 1000), BC_OK);
    void *v;
    size_t vlen;
    uint32_t flags;
    assert_int_equal(bc__lru_get(lru, h("a"), "a", 1, 999, &v, &vlen, &flags), BC_OK);
    assert_int_equal(vlen, 1);
    assert_int_equal(flags, 4);
    assert_string_equal(v, "1");
    free(v);
    /* expired at its time */
    assert_int_equal(bc__lru_get(lru, h("a"), "a", 1, 1000, &v, &vlen, &flags), BC_ENOTFOUND);
    size_t bytes, items;
    bc__lru_usage(lru, &bytes, &items);
    assert_int_equal(items, 0);
    assert_int_equal(bytes, 0);
    /* replace, delete, presence-only lookups */
    bc__lru_put(lru, h("b"), "b", 1, "x", 1, 0, UINT64_MAX);
    bc__lru_put(lru, h("b"), "b", 1, "yy", 2, 0, UINT64_MAX);
    assert_int_equal(bc__lru_get(lru, h("b"), "b", 1, 0, NULL, &vlen, NULL), BC_OK);
    assert_int_equal(vlen, 2);
    bc__lru_usage(lru, &bytes, &items);
    assert_int_equal(items, 1);
    assert_int_equal(bytes, bc__lru_entry_cost(1, 2));
    bc__lru_del(lru, h("b"), "b", 1);
    assert_int_equal(bc__lru_get(lru, h("b"), "b", 1, 0, NULL, NULL, NULL), BC_ENOTFOUND);
    /* an entry above a shard's share is refused */
    char *big = calloc(1, 1 << 17);
    assert_int_equal(bc__lru_put(lru, h("big"), "big", 3, big, 1 << 17, 0, UINT64_MAX), BC_ETOOLARGE);
    free(big);
    bc__lru_free(lru);
}

static void
test_lru_bound_and_order(void **state)
{
    (void)state;
    const size_t max = 64 * 1024;
    bc__lru_t *lru = bc__lru_new(max);
    char key[32], val[200];
    memset(val, 'v', sizeof(val));
    for (int i = 0; i < 5000; i++) {
        int kl = sprintf(key, "key-%d", i);
        bc__lru_put(lru, h(key), key, (size_t)kl, val, (size_t)(i % 200), 0, UINT64_MAX);
        size_t bytes;
        bc__lru_usage(lru, &bytes, NULL);
        assert_true(bytes <= max);
        /* keep key-0 hot: it must survive the churn */
        assert_int_equal(bc__lru_get(lru, h("key-0"), "key-0", 5, 0, NULL, NULL, NULL), BC_OK);
    }
    size_t bytes, items;
    bc__lru_usage(lru, &bytes, &items);
    assert_true(items > 50);
    assert_true(bytes > max / 2);
    /* the oldest untouched keys are gone, the newest are there */
    assert_int_equal(bc__lru_get(lru, h("key-1"), "key-1", 5, 0, NULL, NULL, NULL), BC_ENOTFOUND);
    assert_int_equal(bc__lru_get(lru, h("key-4999"), "key-4999", 8, 0, NULL, NULL, NULL), BC_OK);
    bc__lru_free(lru);
}

static void *
lru_hammer(void *arg)
{
    bc__lru_t *lru = arg;
    char key[32];
    for (int i = 0; i < 20000; i++) {
        int kl = sprintf(key, "k%d", i % 500);
        if (i % 3 == 0) bc__lru_put(lru, h(key), key, (size_t)kl, key, (size_t)kl, 0, UINT64_MAX);
        else if (i % 7 == 0) bc__lru_del(lru, h(key), key, (size_t)kl);
        else {
            void *v = NULL;
            size_t vlen;
            if (bc__lru_get(lru, h(key), key, (size_t)kl, 0, &v, &vlen, NULL) == BC_OK) {
                if (vlen != (size_t)kl || memcmp(v, key, vlen) != 0) abort();
                free(v);
            }
        }
    }
    return NULL;
}

static void
test_lru_threads(void **state)
{
    (void)state;
    bc__lru_t *lru = bc__lru_new(16 * 1024);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, lru_hammer, lru);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    size_t bytes;
    bc__lru_usage(lru, &bytes, NULL);
    assert_true(bytes <= 16 * 1024);
    bc__lru_free(lru);
}

static void
test_sketch(void **state)
{
    (void)state;
    bc__lru_sketch_t s;
    assert_int_equal(bc__lru_sketch_init(&s, 1000), BC_OK);
    assert_int_equal(s.width, 1024);
    for (int i = 0; i < 10; i++) bc__lru_sketch_add(&s, 12345);
    assert_true(bc__lru_sketch_estimate(&s, 12345) >= 10);
    assert_true(bc__lru_sketch_estimate(&s, 999) <= 1);
    /* saturates, and ages: after a window of other keys, it halves */
    for (int i = 0; i < 300; i++) bc__lru_sketch_add(&s, 7);
    assert_int_equal(bc__lru_sketch_estimate(&s, 7), 255);
    for (uint32_t i = 0; i < s.window; i++) bc__lru_sketch_add(&s, 1000000 + i);
    assert_true(bc__lru_sketch_estimate(&s, 7) <= 128);
    bc__lru_sketch_free(&s);
}

static void
test_near_cache_in_client(void **state)
{
    (void)state;
    fake_t *f = fake_start(NULL, NULL);
    bc_client_options_t o;
    bc_client_options_init(&o);
    o.near_cache_bytes = 1 << 20;
    o.near_cache_ttl_ms = 1000;
    o.near_cache_min_hits = 3;
    bc_client_t *c;
    assert_int_equal(bc__client_new_detached(&o, 4, &c), BC_OK);
    uint32_t owner[4] = {1, 1, 1, 1}, gid = 1;
    const char *addr = f->addr;
    bc__registry_install(c, 1, owner, NULL, 1, &gid, &addr);
    fake_put(f, "hot", "v1", 2, 0);
    fake_put(f, "cold", "c", 1, 0);

    void *v;
    size_t vlen;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(bc_client_get(c, "hot", 3, 1000, &v, &vlen, NULL), BC_CLIENT_OK);
        bc_client_free(v);
    }
    int before = atomic_load(&f->requests);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(bc_client_get(c, "hot", 3, 1000, &v, &vlen, NULL), BC_CLIENT_OK);
        assert_memory_equal(v, "v1", 3);
        bc_client_free(v);
    }
    assert_int_equal(atomic_load(&f->requests), before);   /* no round trips */
    bc_client_stats_t st;
    bc_client_get_stats(c, &st);
    assert_int_equal(st.near_hits, 20);
    assert_int_equal(st.near_items, 1);
    assert_true(st.near_bytes > 0);

    /* a key read once is not cached */
    assert_int_equal(bc_client_get(c, "cold", 4, 1000, &v, &vlen, NULL), BC_CLIENT_OK);
    bc_client_free(v);
    before = atomic_load(&f->requests);
    assert_int_equal(bc_client_get(c, "cold", 4, 1000, &v, &vlen, NULL), BC_CLIENT_OK);
    bc_client_free(v);
    assert_int_equal(atomic_load(&f->requests), before + 1);

    /* a write through the client drops the near copy */
    assert_int_equal(bc_client_set(c, "hot", 3, "v2", 2, 0, 0, 1000), BC_CLIENT_OK);
    assert_int_equal(bc_client_get(c, "hot", 3, 1000, &v, &vlen, NULL), BC_CLIENT_OK);
    assert_memory_equal(v, "v2", 3);
    bc_client_free(v);
    /* a write by someone else shows once the TTL passed */
    fake_put(f, "hot", "v3", 2, 0);
    struct timespec ts = {1, 100 * 1000000L};
    nanosleep(&ts, NULL);
    assert_int_equal(bc_client_get(c, "hot", 3, 1000, &v, &vlen, NULL), BC_CLIENT_OK);
    assert_memory_equal(v, "v3", 3);
    bc_client_free(v);

    /* multi-get reads the near cache too */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(bc_client_get(c, "hot", 3, 1000, &v, &vlen, NULL), BC_CLIENT_OK);
        bc_client_free(v);
    }
    before = atomic_load(&f->requests);
    const void *keys[1] = {"hot"};
    size_t klens[1] = {3};
    bc_client_item_t items[1];
    assert_int_equal(bc_client_mget(c, 1, keys, klens, 1000, items), BC_CLIENT_OK);
    assert_memory_equal(items[0].value, "v3", 3);
    bc_client_items_free(items, 1);
    assert_int_equal(atomic_load(&f->requests), before);
    bc_client_destroy(c);
    fake_stop(f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lru_basic),
        cmocka_unit_test(test_lru_bound_and_order),
        cmocka_unit_test(test_lru_threads),
        cmocka_unit_test(test_sketch),
        cmocka_unit_test(test_near_cache_in_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
