/*
 * test_cache.c -- unit tests of the storage engine (node/cache.c).
 *
 * Every test builds its own cache with a fake clock (config.now reads
 * fake_now), so expiry and flush are tested without sleeping.  Helpers
 * store and read string values the way the protocol layer does: alloc,
 * fill value + CRLF, store; get, compare, release.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "bc_hash.h"
#include "cache.h"

#define T0 1700000000u

static uint32_t fake_now = T0;

static uint32_t
fake_clock(void)
{
    return __atomic_load_n(&fake_now, __ATOMIC_RELAXED);
}

static bc_cache_t *
make_cache(size_t mem_limit, const char *policy)
{
    bc_cache_config_t cfg = {
        .mem_limit = mem_limit,
        .max_item_size = 1024 * 1024,
        .nbuckets = 1024,
        .nshards = 16,
        .policy = policy,
        .now = fake_clock,
    };
    bc_cache_t *cache = NULL;
    fake_now = T0;
    assert_int_equal(bc_cache_create(&cfg, &cache), BC_OK);
    assert_non_null(cache);
    return cache;
}

static bc_status_t
store_mode(bc_cache_t *cache, const char *key, const char *value, uint32_t flags,
           uint32_t exptime, bc_store_mode_t mode, uint64_t cas_in, uint64_t *cas_out)
{
    size_t nkey = strlen(key), nval = strlen(value);
    bc_status_t st;
    bc_item_t *it = bc_item_alloc(cache, key, nkey, bc_hash_key(key, nkey), flags, exptime,
                                  (uint32_t)nval + 2, &st);
    if (it == NULL) return st;
    memcpy(bc_item_value(it), value, nval);
    memcpy(bc_item_value(it) + nval, "\r\n", 2);
    return bc_cache_store(cache, it, mode, cas_in, cas_out);
}

static bc_status_t
set(bc_cache_t *cache, const char *key, const char *value)
{
    return store_mode(cache, key, value, 0, 0, BC_STORE_SET, 0, NULL);
}

static bc_item_t *
get(bc_cache_t *cache, const char *key)
{
    return bc_cache_get(cache, key, strlen(key), bc_hash_key(key, strlen(key)));
}

/* Asserts key holds exactly value (or is missing when value is NULL). */
static void
check_value(bc_cache_t *cache, const char *key, const char *value)
{
    bc_item_t *it = get(cache, key);
    if (value == NULL) {
        assert_null(it);
        return;
    }
    assert_non_null(it);
    assert_int_equal(bc_item_value_len(it), strlen(value));
    assert_memory_equal(bc_item_value(it), value, strlen(value));
    assert_memory_equal(bc_item_value(it) + strlen(value), "\r\n", 2);
    bc_item_release(cache, it);
}

static void
test_set_get_delete(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(4 << 20, NULL);
    assert_string_equal(bc_cache_policy_name(cache), "lru");
    assert_int_equal(set(cache, "alpha", "one"), BC_OK);
    check_value(cache, "alpha", "one");
    assert_int_equal(set(cache, "alpha", "uno"), BC_OK);
    check_value(cache, "alpha", "uno");
    check_value(cache, "beta", NULL);
    assert_int_equal(bc_cache_delete(cache, "alpha", 5, bc_hash_key("alpha", 5)), BC_OK);
    assert_int_equal(bc_cache_delete(cache, "alpha", 5, bc_hash_key("alpha", 5)),
                     BC_ENOTFOUND);
    check_value(cache, "alpha", NULL);

    bc_cache_stats_t st;
    bc_cache_get_stats(cache, &st);
    assert_int_equal(st.curr_items, 0);
    assert_int_equal(st.total_items, 2);
    assert_int_equal(st.data_bytes, 0);
    bc_cache_destroy(cache);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_get_delete),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
