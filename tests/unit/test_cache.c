/*
 * test_cache.c -- unit tests of the storage engine (node/engine/cache.c).
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
#include <math.h>
#include <pthread.h>
#include <sched.h>

#include "bc_hash.h"
#include "engine/cache.h"
#include "bc_frame.h"
#include "repl/repl.h"

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

/* An item of `value` for key, not stored yet; NULL with *st when it
 * cannot be allocated. */
static bc_item_t *
item_of(bc_cache_t *cache, const char *key, const char *value, uint32_t flags, uint32_t exptime,
        bc_status_t *st)
{
    size_t nkey = strlen(key), nval = strlen(value);
    bc_item_t *it = bc_item_alloc(cache, key, nkey, bc_hash_key(key, nkey), flags, exptime,
                                  (uint32_t)nval + 2, st);
    if (it == NULL) return NULL;
    memcpy(bc_item_value(it), value, nval);
    memcpy(bc_item_value(it) + nval, "\r\n", 2);
    return it;
}

static bc_status_t
store_mode(bc_cache_t *cache, const char *key, const char *value, uint32_t flags,
           uint32_t exptime, bc_store_mode_t mode, uint64_t cas_in, uint64_t *cas_out)
{
    bc_status_t st;
    bc_item_t *it = item_of(cache, key, value, flags, exptime, &st);
    if (it == NULL) return st;
    return bc_cache_store(cache, it, mode, cas_in, cas_out);
}

static bc_status_t
set(bc_cache_t *cache, const char *key, const char *value)
{
    return store_mode(cache, key, value, 0, 0, BC_STORE_SET, 0, NULL);
}

/* item_of with no flags or expiry, which must succeed. */
static bc_item_t *
new_item(bc_cache_t *cache, const char *key, const char *value)
{
    bc_status_t st;
    bc_item_t *it = item_of(cache, key, value, 0, 0, &st);
    assert_non_null(it);
    return it;
}

/* Stores key = value as a replicated SET that keeps the primary's cas. */
static bc_status_t
store_as(bc_cache_t *cache, const char *key, const char *value, uint64_t cas)
{
    return bc_cache_store_as(cache, new_item(cache, key, value), cas);
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
    assert_string_equal(bc_cache_policy_name(cache), "s3fifo");
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


static bool
peek_copy(const bc_item_t *it, void *ctx)
{
    char *out = ctx;
    memcpy(out, bc_item_value_const(it), bc_item_value_len(it));
    out[bc_item_value_len(it)] = '\0';
    return false;
}

/* A peek finds a live item and hands it to its callback, and is not a
 * client's read: no miss or hit, an expired or flushed key is not there. */
static void
test_peek(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(4 << 20, NULL);
    char got[32] = "";
    assert_int_equal(set(cache, "alpha", "one"), BC_OK);
    assert_true(bc_cache_peek(cache, "alpha", 5, bc_hash_key("alpha", 5), peek_copy, got));
    assert_string_equal(got, "one");
    got[0] = '\0';
    assert_false(bc_cache_peek(cache, "beta", 4, bc_hash_key("beta", 4), peek_copy, got));
    assert_string_equal(got, "");
    assert_false(bc_cache_peek(cache, "", 0, 0, peek_copy, got));
    assert_int_equal(store_mode(cache, "gamma", "soon", 0, T0 + 5, BC_STORE_SET, 0, NULL), BC_OK);
    assert_true(bc_cache_peek(cache, "gamma", 5, bc_hash_key("gamma", 5), peek_copy, got));
    fake_now = T0 + 10;
    assert_false(bc_cache_peek(cache, "gamma", 5, bc_hash_key("gamma", 5), peek_copy, got));
    bc_cache_flush(cache, 0);
    assert_false(bc_cache_peek(cache, "alpha", 5, bc_hash_key("alpha", 5), peek_copy, got));
    fake_now = T0;
    /* gamma, peeked but never fetched, expired unfetched */
    bc_cache_stats_t st;
    bc_cache_get_stats(cache, &st);
    assert_int_equal(st.expired_unfetched, 1);
    bc_cache_destroy(cache);
}

static uint32_t
hkey(const char *key)
{
    return bc_hash_key(key, strlen(key));
}

static uint64_t
mem_used(bc_cache_t *cache)
{
    bc_cache_stats_t st;
    bc_cache_get_stats(cache, &st);
    return st.mem_used;
}

/* The engine's memory less its free segments (kept backed for reuse,
 * engine/seg_int.h): what holds items and tables. */
static uint64_t
mem_in_use(bc_cache_t *cache)
{
    bc_cache_stats_t st;
    bc_cache_get_stats(cache, &st);
    return st.mem_used - st.segments_free * st.segment_size;
}

static void
test_config_errors(void **state)
{
    (void)state;
    bc_cache_t *cache = (bc_cache_t *)1;
    bc_cache_config_t cfg = {.mem_limit = 0};
    assert_int_equal(bc_cache_create(&cfg, &cache), BC_EINVAL);
    assert_null(cache);
    cfg.mem_limit = 1 << 20;
    cfg.policy = "random";
    assert_int_equal(bc_cache_create(&cfg, &cache), BC_EINVAL);
    cfg.policy = NULL;
    cfg.nshards = 12;                       /* not a power of two */
    assert_int_equal(bc_cache_create(&cfg, &cache), BC_EINVAL);
    cfg.nshards = 0;
    cfg.nbuckets = BC_MAX_NBUCKETS + 1;
    assert_int_equal(bc_cache_create(&cfg, &cache), BC_EINVAL);
    cfg.nbuckets = 0;
    cfg.mem_limit = 1000;                   /* below the engine's own arrays */
    assert_int_equal(bc_cache_create(&cfg, &cache), BC_EINVAL);
    assert_int_equal(bc_cache_create(NULL, &cache), BC_EINVAL);

    cfg.mem_limit = 1 << 20;                /* defaults */
    assert_int_equal(bc_cache_create(&cfg, &cache), BC_OK);
    assert_int_equal(bc_cache_nbuckets(cache), BC_DEFAULT_NBUCKETS);
    assert_int_equal(bc_cache_max_item_size(cache), 1024 * 1024);
    assert_string_equal(bc_cache_policy_name(cache), "s3fifo");   /* the default */
    assert_true(mem_used(cache) > 1024 * 16);   /* bucket array is charged */
    bc_cache_destroy(cache);

    const char *names[] = {"lru", "lfu", "fifo", "s3fifo"};
    for (int i = 0; i < 4; i++) {
        cfg.policy = names[i];
        assert_int_equal(bc_cache_create(&cfg, &cache), BC_OK);
        assert_string_equal(bc_cache_policy_name(cache), names[i]);
        bc_cache_destroy(cache);
    }
}

static void
test_alloc_errors(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(4 << 20, NULL);
    bc_status_t st = BC_OK;
    char key[300];
    memset(key, 'k', sizeof(key));
    assert_null(bc_item_alloc(cache, key, 0, 0, 0, 0, 10, &st));
    assert_int_equal(st, BC_EINVAL);
    assert_null(bc_item_alloc(cache, key, 251, bc_hash_key(key, 251), 0, 0, 10, &st));
    assert_int_equal(st, BC_EINVAL);
    assert_null(bc_item_alloc(cache, key, 5, bc_hash_key(key, 5), 0, 0, 1, &st));
    assert_int_equal(st, BC_EINVAL);
    /* The longest key is fine. */
    bc_item_t *it = bc_item_alloc(cache, key, 250, bc_hash_key(key, 250), 0, 0, 2, &st);
    assert_non_null(it);
    assert_int_equal(st, BC_OK);
    memcpy(bc_item_value(it), "\r\n", 2);
    assert_int_equal(bc_cache_store(cache, it, BC_STORE_SET, 0, NULL), BC_OK);
    it = bc_cache_get(cache, key, 250, bc_hash_key(key, 250));
    assert_non_null(it);
    assert_int_equal(bc_item_nkey(it), 250);
    assert_int_equal(bc_item_value_len(it), 0);
    assert_memory_equal(bc_item_key(it), key, 250);
    bc_item_release(cache, it);
    /* Lookups with impossible keys are plain misses. */
    assert_null(bc_cache_get(cache, key, 251, 0));
    assert_null(bc_cache_get(cache, key, 0, 0));
    assert_int_equal(bc_cache_delete(cache, key, 251, 0), BC_ENOTFOUND);
    bc_cache_destroy(cache);
}

static void
test_store_modes(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(4 << 20, NULL);
    uint64_t base = mem_in_use(cache);

    assert_int_equal(store_mode(cache, "k", "a", 0, 0, BC_STORE_REPLACE, 0, NULL),
                     BC_ENOTSTORED);
    assert_int_equal(store_mode(cache, "k", "a", 0, 0, BC_STORE_APPEND, 0, NULL),
                     BC_ENOTSTORED);
    assert_int_equal(store_mode(cache, "k", "a", 0, 0, BC_STORE_PREPEND, 0, NULL),
                     BC_ENOTSTORED);
    check_value(cache, "k", NULL);
    assert_int_equal(store_mode(cache, "k", "one", 7, 0, BC_STORE_ADD, 0, NULL), BC_OK);
    assert_int_equal(store_mode(cache, "k", "two", 8, 0, BC_STORE_ADD, 0, NULL),
                     BC_ENOTSTORED);
    check_value(cache, "k", "one");
    assert_int_equal(store_mode(cache, "k", "three", 9, T0 + 100, BC_STORE_REPLACE, 0,
                                NULL), BC_OK);
    check_value(cache, "k", "three");

    /* append/prepend keep the flags and expiry of the stored item. */
    assert_int_equal(store_mode(cache, "k", "-tail", 1, 0, BC_STORE_APPEND, 0, NULL),
                     BC_OK);
    assert_int_equal(store_mode(cache, "k", "head-", 2, 0, BC_STORE_PREPEND, 0, NULL),
                     BC_OK);
    check_value(cache, "k", "head-three-tail");
    bc_item_t *it = get(cache, "k");
    assert_int_equal(bc_item_flags(it), 9);
    assert_int_equal(it->exptime, T0 + 100);
    bc_item_release(cache, it);
    /* Empty append is allowed and changes nothing but the CAS. */
    assert_int_equal(store_mode(cache, "k", "", 0, 0, BC_STORE_APPEND, 0, NULL), BC_OK);
    check_value(cache, "k", "head-three-tail");

    /* set stores unconditionally, 32-bit flags round-trip. */
    assert_int_equal(store_mode(cache, "k", "v", 0xffffffffu, 0, BC_STORE_SET, 0, NULL),
                     BC_OK);
    it = get(cache, "k");
    assert_int_equal(bc_item_flags(it), 0xffffffffu);
    bc_item_release(cache, it);

    /* The failed stores consumed their items, the last delete emptied
     * the segment: it is free again, memory in use back to base. */
    assert_int_equal(bc_cache_delete(cache, "k", 1, hkey("k")), BC_OK);
    assert_int_equal(mem_in_use(cache), base);
    /* An allocated item can be dropped instead of stored: its room is
     * taken back, and with it the segment it opened. */
    bc_status_t st;
    it = bc_item_alloc(cache, "x", 1, hkey("x"), 0, 0, 100, &st);
    assert_non_null(it);
    assert_true(mem_in_use(cache) > base + 100);
    bc_item_release(cache, it);
    assert_int_equal(mem_in_use(cache), base);

    /* An item never linked but handed to two holders (bc_item_retain, as
     * a read-through fill does for its waiters): the first release must
     * not give its room back, the next allocation must not overwrite it. */
    bc_item_t *first = new_item(cache, "w", "keeps the segment open");
    it = new_item(cache, "y", "shared value");
    bc_item_retain(cache, it);
    bc_item_release(cache, it);
    bc_item_t *next = new_item(cache, "z", "something else");
    assert_ptr_not_equal(next, it);
    assert_memory_equal(bc_item_value(it), "shared value\r\n", 14);
    assert_memory_equal(bc_item_key(it), "y", 1);
    bc_item_release(cache, next);
    bc_item_release(cache, it);
    bc_item_release(cache, first);

    bc_cache_stats_t stats;
    bc_cache_get_stats(cache, &stats);
    assert_int_equal(stats.curr_items, 0);
    assert_int_equal(stats.total_items, 6);   /* add, replace, append, prepend, append, set */
    bc_cache_destroy(cache);
}

static void
test_cas(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(4 << 20, NULL);
    uint64_t c1 = 0, c2 = 0, c3 = 0;
    assert_int_equal(store_mode(cache, "k", "a", 0, 0, BC_STORE_CAS, 1, NULL), BC_ENOTFOUND);
    assert_int_equal(store_mode(cache, "k", "a", 0, 0, BC_STORE_SET, 0, &c1), BC_OK);
    assert_true(c1 > 0);
    bc_item_t *it = get(cache, "k");
    assert_int_equal(it->cas, c1);
    bc_item_release(cache, it);

    assert_int_equal(store_mode(cache, "k", "b", 0, 0, BC_STORE_CAS, c1 + 1, NULL),
                     BC_EEXISTS);
    check_value(cache, "k", "a");
    assert_int_equal(store_mode(cache, "k", "b", 0, 0, BC_STORE_CAS, c1, &c2), BC_OK);
    assert_true(c2 > c1);
    check_value(cache, "k", "b");
    /* The old CAS is stale now. */
    assert_int_equal(store_mode(cache, "k", "c", 0, 0, BC_STORE_CAS, c1, NULL), BC_EEXISTS);

    /* Global and increasing across keys and operations. */
    assert_int_equal(store_mode(cache, "other", "x", 0, 0, BC_STORE_SET, 0, &c3), BC_OK);
    assert_true(c3 > c2);
    assert_int_equal(store_mode(cache, "k", "!", 0, 0, BC_STORE_APPEND, 0, &c1), BC_OK);
    assert_true(c1 > c3);
    uint64_t v;
    assert_int_equal(store_mode(cache, "n", "5", 0, 0, BC_STORE_SET, 0, &c2), BC_OK);
    assert_int_equal(bc_cache_arith(cache, "n", 1, hkey("n"), true, 1, &v), BC_OK);
    it = get(cache, "n");
    assert_true(it->cas > c2);                /* incr gives a new CAS too */
    bc_item_release(cache, it);

    /* CAS on a deleted key: not found. */
    assert_int_equal(bc_cache_delete(cache, "k", 1, hkey("k")), BC_OK);
    assert_int_equal(store_mode(cache, "k", "d", 0, 0, BC_STORE_CAS, c1, NULL), BC_ENOTFOUND);
    bc_cache_destroy(cache);
}

static bc_status_t
arith(bc_cache_t *cache, const char *key, bool incr, uint64_t delta, uint64_t *out)
{
    return bc_cache_arith(cache, key, strlen(key), hkey(key), incr, delta, out);
}

static void
test_arith(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(4 << 20, NULL);
    uint64_t v = 12345;
    assert_int_equal(arith(cache, "n", true, 1, &v), BC_ENOTFOUND);

    assert_int_equal(set(cache, "n", "10"), BC_OK);
    assert_int_equal(arith(cache, "n", true, 5, &v), BC_OK);
    assert_int_equal(v, 15);
    check_value(cache, "n", "15");
    /* A shorter result is written in place and padded with spaces. */
    assert_int_equal(arith(cache, "n", false, 6, &v), BC_OK);
    assert_int_equal(v, 9);
    check_value(cache, "n", "9 ");
    /* The padding parses back; a longer result needs a new item. */
    assert_int_equal(arith(cache, "n", true, 91, &v), BC_OK);
    assert_int_equal(v, 100);
    check_value(cache, "n", "100");
    /* decr stops at 0. */
    assert_int_equal(arith(cache, "n", false, 1000, &v), BC_OK);
    assert_int_equal(v, 0);
    check_value(cache, "n", "0  ");
    /* incr wraps at 2^64. */
    assert_int_equal(set(cache, "n", "18446744073709551615"), BC_OK);
    assert_int_equal(arith(cache, "n", true, 1, &v), BC_OK);
    assert_int_equal(v, 0);
    check_value(cache, "n", "0                   ");
    assert_int_equal(set(cache, "n", "18446744073709551610"), BC_OK);
    assert_int_equal(arith(cache, "n", true, 10, &v), BC_OK);
    assert_int_equal(v, 4);
    assert_int_equal(arith(cache, "n", true, UINT64_MAX, &v), BC_OK);
    assert_int_equal(v, 3);

    /* Values memcached refuses. */
    const char *bad[] = {"abc", "12abc", "-1", "", "18446744073709551616", "1.5", "x1",
                         "   ", "0x10", " -"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(set(cache, "b", bad[i]), BC_OK);
        assert_int_equal(arith(cache, "b", true, 1, &v), BC_ENONNUMERIC);
        assert_int_equal(arith(cache, "b", false, 1, &v), BC_ENONNUMERIC);
        check_value(cache, "b", bad[i]);
    }
    /* ... and ones it accepts (strtoull rules: leading blanks, '+', a
     * number ended by white space). */
    assert_int_equal(set(cache, "g", "  7"), BC_OK);
    assert_int_equal(arith(cache, "g", true, 1, &v), BC_OK);
    assert_int_equal(v, 8);
    assert_int_equal(set(cache, "g", "+7"), BC_OK);
    assert_int_equal(arith(cache, "g", true, 1, &v), BC_OK);
    assert_int_equal(v, 8);
    assert_int_equal(set(cache, "g", "12 34"), BC_OK);
    assert_int_equal(arith(cache, "g", true, 1, &v), BC_OK);
    assert_int_equal(v, 13);
    check_value(cache, "g", "13   ");
    assert_int_equal(set(cache, "g", "\t5"), BC_OK);
    assert_int_equal(arith(cache, "g", true, 1, &v), BC_OK);
    assert_int_equal(v, 6);
    assert_int_equal(set(cache, "g", "-0"), BC_OK);
    assert_int_equal(arith(cache, "g", true, 1, &v), BC_OK);
    assert_int_equal(v, 1);
    assert_int_equal(set(cache, "g", "-18446744073709551615"), BC_OK);   /* = 1 */
    assert_int_equal(arith(cache, "g", true, 1, &v), BC_OK);
    assert_int_equal(v, 2);
    /* A NUL ends the number too. */
    bc_status_t st;
    bc_item_t *nul = bc_item_alloc(cache, "z", 1, hkey("z"), 0, 0, 5, &st);
    memcpy(bc_item_value(nul), "7\0x\r\n", 5);
    assert_int_equal(bc_cache_store(cache, nul, BC_STORE_SET, 0, NULL), BC_OK);
    assert_int_equal(arith(cache, "z", true, 1, &v), BC_OK);
    assert_int_equal(v, 8);
    check_value(cache, "z", "8  ");
    /* A number >= 2^63 is refused for a '-' before the first NUL only
     * (memcached's strchr stops there). */
    bc_item_t *big = bc_item_alloc(cache, "w", 1, hkey("w"), 0, 0, 25, &st);
    memcpy(bc_item_value(big), "18446744073709551615\0-1\r\n", 25);
    assert_int_equal(bc_cache_store(cache, big, BC_STORE_SET, 0, NULL), BC_OK);
    assert_int_equal(arith(cache, "w", true, 2147483647, &v), BC_OK);
    assert_true(v == 2147483646);
    big = bc_item_alloc(cache, "w", 1, hkey("w"), 0, 0, 25, &st);
    memcpy(bc_item_value(big), "18446744073709551615 -\0\r\n", 25);
    assert_int_equal(bc_cache_store(cache, big, BC_STORE_SET, 0, NULL), BC_OK);
    assert_int_equal(arith(cache, "w", true, 1, &v), BC_ENONNUMERIC);

    /* A reader holding the item keeps seeing the old value: the new value
     * goes into a new item even though it would fit in place. */
    assert_int_equal(set(cache, "r", "50"), BC_OK);
    bc_item_t *held = get(cache, "r");
    assert_int_equal(arith(cache, "r", false, 1, &v), BC_OK);
    assert_int_equal(v, 49);
    assert_memory_equal(bc_item_value(held), "50\r\n", 4);
    check_value(cache, "r", "49");
    bc_item_release(cache, held);

    /* Flags and expiry survive incr/decr. */
    assert_int_equal(store_mode(cache, "f", "1", 42, T0 + 50, BC_STORE_SET, 0, NULL), BC_OK);
    assert_int_equal(arith(cache, "f", true, 99, &v), BC_OK);
    bc_item_t *it = get(cache, "f");
    assert_int_equal(bc_item_flags(it), 42);
    assert_int_equal(it->exptime, T0 + 50);
    bc_item_release(cache, it);
    bc_cache_destroy(cache);
}

static void
test_exptime_conversion(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(4 << 20, NULL);
    assert_int_equal(bc_cache_now(cache), T0);
    assert_int_equal(bc_cache_exptime_abs(cache, 0), 0);
    assert_int_equal(bc_cache_exptime_abs(cache, 1), T0 + 1);
    assert_int_equal(bc_cache_exptime_abs(cache, 3600), T0 + 3600);
    assert_int_equal(bc_cache_exptime_abs(cache, BC_REALTIME_MAXDELTA),
                     T0 + BC_REALTIME_MAXDELTA);
    /* Above 30 days: an absolute unix time; one at or before memcached's
     * process_started (the cache's start - 62 s) is 1, like a negative
     * one, so that two such times are equal, as in memcached. */
    assert_int_equal(bc_cache_exptime_abs(cache, BC_REALTIME_MAXDELTA + 1), 1);
    assert_int_equal(bc_cache_exptime_abs(cache, T0 - 62), 1);
    assert_int_equal(bc_cache_exptime_abs(cache, T0 - 61), T0 - 61);
    assert_int_equal(bc_cache_exptime_abs(cache, T0 + 77), T0 + 77);
    assert_int_equal(bc_cache_exptime_abs(cache, (int64_t)1 << 40), UINT32_MAX);
    /* Negative: already expired. */
    uint32_t neg = bc_cache_exptime_abs(cache, -1);
    assert_true(neg != 0 && neg <= T0);
    assert_true(bc_cache_exptime_abs(cache, INT64_MIN) != 0);

    /* Stored with those: negative and past-absolute are never visible. */
    assert_int_equal(store_mode(cache, "neg", "v", 0, neg, BC_STORE_SET, 0, NULL), BC_OK);
    check_value(cache, "neg", NULL);
    assert_int_equal(store_mode(cache, "past", "v", 0,
                                bc_cache_exptime_abs(cache, BC_REALTIME_MAXDELTA + 1),
                                BC_STORE_SET, 0, NULL), BC_OK);
    check_value(cache, "past", NULL);
    /* Negative exptime on an existing key removes it (memcached idiom). */
    assert_int_equal(set(cache, "k", "v"), BC_OK);
    assert_int_equal(store_mode(cache, "k", "w", 0, neg, BC_STORE_SET, 0, NULL), BC_OK);
    check_value(cache, "k", NULL);
    bc_cache_destroy(cache);
}

static void
test_lazy_expiry_and_touch(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(4 << 20, NULL);
    uint64_t base = mem_in_use(cache);
    assert_int_equal(store_mode(cache, "a", "1", 0, T0 + 10, BC_STORE_SET, 0, NULL), BC_OK);
    assert_int_equal(store_mode(cache, "b", "2", 0, T0 + 10, BC_STORE_SET, 0, NULL), BC_OK);
    assert_int_equal(store_mode(cache, "c", "3", 0, T0 + 10, BC_STORE_SET, 0, NULL), BC_OK);
    assert_int_equal(store_mode(cache, "d", "4", 0, 0, BC_STORE_SET, 0, NULL), BC_OK);
    fake_now = T0 + 9;
    check_value(cache, "a", "1");
    /* touch and gat move the expiry. */
    assert_int_equal(bc_cache_touch(cache, "b", 1, hkey("b"), T0 + 100), BC_OK);
    bc_item_t *it = bc_cache_get_touch(cache, "c", 1, hkey("c"), T0 + 200);
    assert_non_null(it);
    assert_int_equal(it->exptime, T0 + 200);
    bc_item_release(cache, it);
    assert_int_equal(bc_cache_touch(cache, "zz", 2, hkey("zz"), 0), BC_ENOTFOUND);
    assert_null(bc_cache_get_touch(cache, "zz", 2, hkey("zz"), 0));

    fake_now = T0 + 10;                     /* exptime <= now: expired */
    check_value(cache, "a", NULL);
    check_value(cache, "b", "2");
    /* Expired keys behave as missing for every operation. */
    assert_int_equal(store_mode(cache, "e", "5", 0, T0 + 11, BC_STORE_SET, 0, NULL), BC_OK);
    fake_now = T0 + 11;
    assert_int_equal(bc_cache_touch(cache, "e", 1, hkey("e"), 0), BC_ENOTFOUND);
    assert_int_equal(store_mode(cache, "e", "x", 0, 0, BC_STORE_REPLACE, 0, NULL),
                     BC_ENOTSTORED);
    assert_int_equal(store_mode(cache, "e", "x", 0, 0, BC_STORE_ADD, 0, NULL), BC_OK);
    check_value(cache, "e", "x");
    fake_now = T0 + 150;
    check_value(cache, "b", NULL);
    check_value(cache, "c", "3");
    check_value(cache, "d", "4");
    fake_now = T0 + 200;
    check_value(cache, "c", NULL);

    bc_cache_stats_t st;
    bc_cache_get_stats(cache, &st);
    assert_int_equal(st.reclaimed, 4);          /* a, e, b, c */
    assert_int_equal(st.expired_unfetched, 1);  /* e; a touch counts as a fetch (memcached) */
    assert_int_equal(st.curr_items, 2);         /* d, e */
    assert_int_equal(st.expired_active, 0);
    assert_int_equal(bc_cache_delete(cache, "d", 1, hkey("d")), BC_OK);
    assert_int_equal(bc_cache_delete(cache, "e", 1, hkey("e")), BC_OK);
    assert_int_equal(mem_in_use(cache), base);
    bc_cache_destroy(cache);
}

static void
test_active_expiry(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(16 << 20, NULL);
    char key[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        assert_int_equal(store_mode(cache, key, "value", 0, i % 2 ? T0 + 5 : 0,
                                    BC_STORE_SET, 0, NULL), BC_OK);
    }
    assert_int_equal(bc_cache_expire_scan(cache, 100000), 0);   /* nothing due yet */
    fake_now = T0 + 5;
    uint64_t removed = 0;
    int calls = 0;
    while (removed < 1000 && calls < 10000) {
        uint64_t n = bc_cache_expire_scan(cache, 64);
        assert_true(n <= 64);                /* bounded work per call */
        removed += n;
        calls++;
    }
    assert_int_equal(removed, 1000);
    assert_true(calls > 1000 * 2 / 64);      /* it really was incremental */
    bc_cache_stats_t st;
    bc_cache_get_stats(cache, &st);
    assert_int_equal(st.curr_items, 1000);
    assert_int_equal(st.expired_active, 1000);
    assert_int_equal(st.reclaimed, 1000);
    assert_int_equal(st.expired_unfetched, 1000);
    /* The survivors are the ones without expiry. */
    check_value(cache, "key-0", "value");
    check_value(cache, "key-1998", "value");
    /* Empty cache: a scan returns promptly. */
    for (int i = 0; i < 2000; i += 2) {
        snprintf(key, sizeof(key), "key-%d", i);
        assert_int_equal(bc_cache_delete(cache, key, strlen(key), hkey(key)), BC_OK);
    }
    assert_int_equal(bc_cache_expire_scan(cache, UINT32_MAX), 0);
    bc_cache_destroy(cache);
}

static void
test_flush(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(4 << 20, NULL);
    assert_int_equal(set(cache, "a", "1"), BC_OK);
    assert_int_equal(set(cache, "b", "2"), BC_OK);
    bc_cache_flush(cache, 0);
    check_value(cache, "a", NULL);
    /* Stored after the flush, in the same second: lives. */
    assert_int_equal(set(cache, "c", "3"), BC_OK);
    check_value(cache, "c", "3");
    /* A flushed key is missing for add/replace too. */
    assert_int_equal(store_mode(cache, "b", "x", 0, 0, BC_STORE_REPLACE, 0, NULL),
                     BC_ENOTSTORED);

    /* Delayed: nothing happens before the time; memcached's due second is
     * when - 1.  Items stored before it die, items stored after it live. */
    fake_now = T0 + 10;
    bc_cache_flush(cache, T0 + 13);
    check_value(cache, "c", "3");
    fake_now = T0 + 11;
    assert_int_equal(set(cache, "d", "4"), BC_OK);
    check_value(cache, "c", "3");
    check_value(cache, "d", "4");
    fake_now = T0 + 12;
    assert_int_equal(set(cache, "e", "5"), BC_OK);   /* the first op after due */
    check_value(cache, "c", NULL);
    check_value(cache, "d", NULL);
    check_value(cache, "e", "5");
    fake_now = T0 + 13;
    assert_int_equal(set(cache, "f", "6"), BC_OK);
    fake_now = T0 + 20;
    check_value(cache, "e", "5");
    check_value(cache, "f", "6");
    /* A later delayed flush replaces a pending one; an immediate flush
     * cancels it. */
    bc_cache_flush(cache, T0 + 30);
    bc_cache_flush(cache, T0 + 40);
    fake_now = T0 + 35;
    check_value(cache, "f", "6");
    bc_cache_flush(cache, 0);
    check_value(cache, "f", NULL);
    assert_int_equal(set(cache, "h", "8"), BC_OK);
    fake_now = T0 + 45;
    check_value(cache, "h", "8");
    /* A delayed flush never revives what an immediate one killed. */
    assert_int_equal(set(cache, "g", "7"), BC_OK);
    bc_cache_flush(cache, 0);
    bc_cache_flush(cache, T0 + 1000);
    check_value(cache, "g", NULL);

    bc_cache_stats_t st;
    bc_cache_get_stats(cache, &st);
    assert_int_equal(st.flushed, 6);    /* a, b, c, d, f, g */
    assert_int_equal(bc_cache_expire_scan(cache, 100000), st.curr_items);
    bc_cache_get_stats(cache, &st);
    assert_int_equal(st.curr_items, 0);
    bc_cache_destroy(cache);
}

static void
test_too_large(void **state)
{
    (void)state;
    bc_cache_config_t cfg = {
        .mem_limit = 8 << 20, .max_item_size = 1024 * 1024, .now = fake_clock,
    };
    bc_cache_t *cache;
    assert_int_equal(bc_cache_create(&cfg, &cache), BC_OK);
    bc_status_t st;
    /* memcached's arithmetic: 48-byte header + 8 CAS + key + 1 + data+CRLF. */
    uint32_t fit = 1024 * 1024 - 56 - 3 - 1;
    bc_item_t *it = bc_item_alloc(cache, "big", 3, hkey("big"), 0, 0, fit, &st);
    assert_non_null(it);
    memset(bc_item_value(it), 'x', fit - 2);
    memcpy(bc_item_value(it) + fit - 2, "\r\n", 2);
    assert_int_equal(bc_cache_store(cache, it, BC_STORE_SET, 0, NULL), BC_OK);
    assert_null(bc_item_alloc(cache, "big", 3, hkey("big"), 0, 0, fit + 1, &st));
    assert_int_equal(st, BC_ETOOLARGE);
    assert_null(bc_item_alloc(cache, "big", 3, hkey("big"), 0, 0, UINT32_MAX, &st));
    assert_int_equal(st, BC_ETOOLARGE);
    /* Appending past the limit: too large, the old value stays. */
    assert_int_equal(store_mode(cache, "big", "y", 0, 0, BC_STORE_APPEND, 0, NULL),
                     BC_ETOOLARGE);
    it = get(cache, "big");
    assert_non_null(it);
    assert_int_equal(bc_item_value_len(it), fit - 2);
    bc_item_release(cache, it);
    bc_cache_destroy(cache);

    /* Under the item limit but over the whole memory limit: no memory. */
    cfg.mem_limit = 256 << 10;
    assert_int_equal(bc_cache_create(&cfg, &cache), BC_OK);
    assert_null(bc_item_alloc(cache, "k", 1, hkey("k"), 0, 0, 512 << 10, &st));
    assert_int_equal(st, BC_ENOMEM);
    bc_cache_destroy(cache);
}

/* Random load against a small limit: mem_used never passes it. */
static void
random_load(const char *policy)
{
    bc_cache_t *cache = make_cache(512 << 10, policy);
    bc_cache_stats_t st;
    uint64_t x = 12345;
    char key[32], val[4096];
    memset(val, 'v', sizeof(val));
    val[sizeof(val) - 1] = '\0';
    for (int op = 0; op < 20000; op++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int k = (int)(x % 3000);
        snprintf(key, sizeof(key), "key-%d", k);
        size_t nkey = strlen(key);
        uint32_t h = hkey(key);
        switch ((x >> 20) % 10) {
        case 0: case 1: case 2: {
            size_t len = (x >> 32) % (k % 7 == 0 ? 4000 : 300);
            char saved = val[len];
            val[len] = '\0';
            bc_status_t s = store_mode(cache, key, val, 0, (x >> 40) % 4 ? 0 : T0 + 3,
                                       BC_STORE_SET, 0, NULL);
            assert_true(s == BC_OK);
            val[len] = saved;
            break;
        }
        case 3: {
            bc_status_t s = store_mode(cache, key, "ab", 0, 0, (x >> 33) % 2 ? BC_STORE_APPEND
                                                                           : BC_STORE_PREPEND,
                                       0, NULL);
            assert_true(s == BC_OK || s == BC_ENOTSTORED || s == BC_ETOOLARGE);
            break;
        }
        case 4:
            (void)bc_cache_delete(cache, key, nkey, h);
            break;
        case 5: {
            uint64_t v;
            bc_status_t s = bc_cache_arith(cache, key, nkey, h, (x >> 34) % 2, 3, &v);
            assert_true(s == BC_OK || s == BC_ENOTFOUND || s == BC_ENONNUMERIC);
            if (s == BC_ENOTFOUND) assert_int_equal(set(cache, key, "100"), BC_OK);
            break;
        }
        case 6:
            if (op % 500 == 0) fake_now++;
            (void)bc_cache_expire_scan(cache, 50);
            break;
        default: {
            bc_item_t *it = bc_cache_get(cache, key, nkey, h);
            if (it != NULL) {
                assert_memory_equal(bc_item_key(it), key, nkey);
                assert_memory_equal(bc_item_value(it) + bc_item_value_len(it), "\r\n", 2);
                bc_item_release(cache, it);
            }
            break;
        }
        }
        bc_cache_get_stats(cache, &st);
        assert_true(st.mem_used <= st.mem_limit);
        assert_int_equal(st.pinned_bytes, 0);
    }
    bc_cache_get_stats(cache, &st);
    assert_true(st.evictions > 100);              /* the limit really bit */
    assert_true(st.curr_items > 100);             /* and the cache still holds plenty */
    bc_cache_destroy(cache);
}

static void
test_memory_limit_random_load(void **state)
{
    (void)state;
    random_load("lru");
    random_load("lfu");
    random_load("fifo");
    random_load("s3fifo");
}

typedef struct collect {
    uint32_t bucket;
    uint32_t nbuckets;
    uint64_t seen;
    uint64_t wrong_bucket;
    uint64_t stop_after;
} collect_t;

static bool
collect_fn(const bc_item_t *it, void *ctx)
{
    collect_t *c = ctx;
    if (bc_hash_bucket(bc_hash_key(bc_item_key(it), bc_item_nkey(it)), c->nbuckets) != c->bucket) {
        c->wrong_bucket++;
    }
    c->seen++;
    return c->seen < c->stop_after;
}

static void
test_bucket_api(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(16 << 20, NULL);
    uint64_t base = mem_in_use(cache);
    enum { NKEYS = 20000 };
    static uint32_t per_bucket[1024];
    memset(per_bucket, 0, sizeof(per_bucket));
    char key[32];
    for (int i = 0; i < NKEYS; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        assert_int_equal(set(cache, key, "some value"), BC_OK);
        per_bucket[bc_hash_bucket(hkey(key), 1024)]++;
    }
    uint64_t total_items = 0, total_bytes = 0;
    for (uint32_t b = 0; b < 1024; b++) {
        bc_bucket_stats_t bs;
        assert_int_equal(bc_cache_bucket_stats(cache, b, &bs), BC_OK);
        assert_int_equal(bs.items, per_bucket[b]);
        assert_true(bs.bytes >= bs.items * (sizeof(bc_item_t) + 16));
        total_items += bs.items;
        total_bytes += bs.bytes;
    }
    assert_int_equal(total_items, NKEYS);
    assert_true(total_bytes < mem_in_use(cache) - base);   /* slot arrays on top */
    bc_bucket_stats_t bs;
    assert_int_equal(bc_cache_bucket_stats(cache, 1024, &bs), BC_EINVAL);

    /* foreach visits exactly the bucket's live items, stops when told. */
    uint32_t b = bc_hash_bucket(hkey("key-7"), 1024);
    collect_t c = {.bucket = b, .nbuckets = 1024, .stop_after = UINT64_MAX};
    assert_int_equal(bc_cache_bucket_foreach(cache, b, collect_fn, &c), BC_OK);
    assert_int_equal(c.seen, per_bucket[b]);
    assert_int_equal(c.wrong_bucket, 0);
    c.seen = 0;
    c.stop_after = 3;
    assert_int_equal(bc_cache_bucket_foreach(cache, b, collect_fn, &c), BC_OK);
    assert_int_equal(c.seen, 3);
    assert_int_equal(bc_cache_bucket_foreach(cache, 5000, collect_fn, &c), BC_EINVAL);
    /* Expired items are skipped. */
    assert_int_equal(store_mode(cache, "key-7", "v", 0, T0 + 1, BC_STORE_SET, 0, NULL), BC_OK);
    fake_now = T0 + 1;
    c.seen = 0;
    c.stop_after = UINT64_MAX;
    assert_int_equal(bc_cache_bucket_foreach(cache, b, collect_fn, &c), BC_OK);
    assert_int_equal(c.seen, per_bucket[b] - 1);

    /* drop removes the bucket's items and spares others.  Its items are
     * spread over segments shared with every other bucket: the room they
     * took comes back when eviction reaches those segments, so memory in
     * use only loses the bucket's slot array. */
    uint64_t before = mem_in_use(cache);
    assert_int_equal(bc_cache_bucket_drop(cache, b), per_bucket[b]);
    assert_true(mem_in_use(cache) < before);
    assert_true(mem_in_use(cache) + 1024 >= before);
    assert_int_equal(bc_cache_bucket_stats(cache, b, &bs), BC_OK);
    assert_int_equal(bs.items, 0);
    assert_int_equal(bs.bytes, 0);
    check_value(cache, "key-7", NULL);
    assert_int_equal(bc_cache_bucket_drop(cache, b), 0);
    assert_int_equal(bc_cache_bucket_drop(cache, 99999), 0);
    bc_cache_stats_t st;
    bc_cache_get_stats(cache, &st);
    assert_int_equal(st.curr_items, NKEYS - per_bucket[b]);
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        if (bc_hash_bucket(hkey(key), 1024) != b) check_value(cache, key, "some value");
    }
    /* Dropping everything returns the engine to its empty footprint: a
     * segment left without a live item is freed at once. */
    for (uint32_t i = 0; i < 1024; i++) (void)bc_cache_bucket_drop(cache, i);
    bc_cache_get_stats(cache, &st);
    assert_int_equal(st.curr_items, 0);
    assert_int_equal(st.data_bytes, 0);
    assert_int_equal(mem_in_use(cache), base);
    assert_true(st.segments_free <= 2);   /* the rest went back to the system */
    bc_cache_destroy(cache);
}

static uint64_t
cas_of(bc_cache_t *cache, const char *key)
{
    bc_item_t *it = get(cache, key);
    assert_non_null(it);
    uint64_t cas = it->cas;
    bc_item_release(cache, it);
    return cas;
}

/* A moved item keeps its CAS (and later ones go above it), except one
 * below this cache's flush mark, which would read as flushed. */
static void
test_store_moved_keeps_cas(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(4 << 20, NULL);
    assert_int_equal(bc_cache_store_moved(cache, new_item(cache, "m1", "a"), BC_STORE_ADD,
                                          5000), BC_OK);
    assert_int_equal(cas_of(cache, "m1"), 5000);
    uint64_t cas = 0;
    assert_int_equal(store_mode(cache, "local", "x", 0, 0, BC_STORE_SET, 0, &cas), BC_OK);
    assert_true(cas > 5000);
    /* add-if-absent keeps what is here; set replaces, with the new CAS */
    assert_int_equal(bc_cache_store_moved(cache, new_item(cache, "m1", "b"), BC_STORE_ADD, 7),
                     BC_ENOTSTORED);
    check_value(cache, "m1", "a");
    assert_int_equal(bc_cache_store_moved(cache, new_item(cache, "m1", "c"), BC_STORE_SET,
                                          6000), BC_OK);
    check_value(cache, "m1", "c");
    assert_int_equal(cas_of(cache, "m1"), 6000);
    /* a CAS token from the old node works here */
    assert_int_equal(store_mode(cache, "m1", "d", 0, 0, BC_STORE_CAS, 6000, NULL), BC_OK);
    /* below the flush mark: a fresh CAS, and the item lives */
    bc_cache_flush(cache, 0);
    assert_int_equal(bc_cache_store_moved(cache, new_item(cache, "m2", "e"), BC_STORE_ADD, 100),
                     BC_OK);
    check_value(cache, "m2", "e");
    assert_true(cas_of(cache, "m2") > 6000);
    /* only the copy modes */
    assert_int_equal(bc_cache_store_moved(cache, new_item(cache, "m3", "f"), BC_STORE_CAS, 1),
                     BC_EINVAL);
    check_value(cache, "m3", NULL);
    bc_cache_destroy(cache);
}

/* The scan's visitor: marks the permanent keys ("p-N") it meets. */
typedef struct scan_seen {
    uint8_t *perm;                 /* per permanent key: times reported */
    uint32_t nperm;
    uint64_t calls, budget;        /* items this step; stop when budget is reached */
    uint64_t wrong_bucket;
} scan_seen_t;

static bool
scan_fn(const bc_item_t *it, void *ctx)
{
    scan_seen_t *s = ctx;
    if (bc_hash_bucket(bc_hash_key(bc_item_key(it), bc_item_nkey(it)), 2) != 0) s->wrong_bucket++;
    unsigned idx;
    char tail;
    char key[40];
    snprintf(key, sizeof(key), "%.*s", (int)bc_item_nkey(it), bc_item_key(it));
    if (sscanf(key, "p-%u%c", &idx, &tail) == 1 && idx < s->nperm && s->perm[idx] < 255) {
        s->perm[idx]++;
    }
    return ++s->calls < s->budget;
}

/* Stores (or deletes) n keys "t-N" of bucket 0 of 2. */
static void
temp_keys(bc_cache_t *cache, uint32_t n, bool del)
{
    char key[40];
    for (uint32_t i = 0, done = 0; done < n; i++) {
        snprintf(key, sizeof(key), "t-%u", i);
        if (bc_hash_bucket(hkey(key), 2) != 0) continue;
        if (del) {
            assert_int_equal(bc_cache_delete(cache, key, strlen(key), hkey(key)), BC_OK);
        } else {
            assert_int_equal(set(cache, key, "temporary"), BC_OK);
        }
        done++;
    }
}

/* A walk in steps sees every item that stays linked throughout, while
 * the table doubles and halves between its steps. */
static void
test_bucket_scan(void **state)
{
    (void)state;
    bc_cache_config_t cfg = {
        .mem_limit = 64 << 20, .max_item_size = 1024 * 1024, .nbuckets = 2, .nshards = 2,
        .now = fake_clock,
    };
    bc_cache_t *cache = NULL;
    fake_now = T0;
    assert_int_equal(bc_cache_create(&cfg, &cache), BC_OK);

    /* an empty bucket: done at once, nothing reported */
    uint32_t cursor = 0;
    scan_seen_t s = {.budget = UINT64_MAX};
    assert_int_equal(bc_cache_bucket_scan(cache, 0, &cursor, scan_fn, &s), BC_OK);
    assert_int_equal(cursor, 0);
    assert_int_equal(s.calls, 0);
    assert_int_equal(bc_cache_bucket_scan(cache, 2, &cursor, scan_fn, &s), BC_EINVAL);
    assert_int_equal(bc_cache_bucket_scan(cache, 0, NULL, scan_fn, &s), BC_EINVAL);

    /* the first NPERM keys "p-N" of bucket 0 stay for the whole walk */
    enum { NPERM = 3000, NTEMP = 30000 };
    char key[40];
    uint32_t maxidx = 0;
    for (uint32_t i = 0, n = 0; n < NPERM; i++) {
        snprintf(key, sizeof(key), "p-%u", i);
        if (bc_hash_bucket(hkey(key), 2) != 0) continue;
        assert_int_equal(set(cache, key, "permanent"), BC_OK);
        n++;
        maxidx = i;
    }
    uint8_t *marks = calloc(maxidx + 1, 1);
    assert_non_null(marks);
    s = (scan_seen_t){.perm = marks, .nperm = maxidx + 1};

    cursor = 0;
    uint32_t steps = 0;
    do {
        s.calls = 0;
        s.budget = 50;
        assert_int_equal(bc_cache_bucket_scan(cache, 0, &cursor, scan_fn, &s), BC_OK);
        assert_true(s.calls >= (cursor != 0 ? 50u : 0u));   /* a chain is never cut short */
        steps++;
        if (steps == 2) temp_keys(cache, NTEMP, false);   /* the table doubles 4 times */
        if (steps == 40) temp_keys(cache, NTEMP, true);   /* ... and halves again */
    } while (cursor != 0);
    assert_true(steps > 40);
    assert_int_equal(s.wrong_bucket, 0);
    uint32_t missed = 0, checked = 0;
    for (uint32_t i = 0; i <= maxidx; i++) {
        snprintf(key, sizeof(key), "p-%u", i);
        if (bc_hash_bucket(hkey(key), 2) != 0) continue;
        checked++;
        if (marks[i] == 0) missed++;
    }
    assert_int_equal(checked, NPERM);
    assert_int_equal(missed, 0);
    free(marks);
    bc_cache_destroy(cache);
}

/* A reader's item outlives delete, replace, drop and eviction pressure. */
static void
test_refcount_pinning(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(1 << 20, NULL);
    uint64_t base = mem_in_use(cache);
    bc_cache_stats_t st;

    /* "k" alone in its segment: deleted, the segment has no live item and
     * retires, but waits for the reader (pinned) before it is reused. */
    assert_int_equal(set(cache, "k", "first"), BC_OK);
    bc_item_t *held = get(cache, "k");
    assert_int_equal(bc_cache_delete(cache, "k", 1, hkey("k")), BC_OK);
    check_value(cache, "k", NULL);
    assert_memory_equal(bc_item_value(held), "first\r\n", 7);
    bc_cache_get_stats(cache, &st);
    assert_int_equal(st.pinned_bytes, st.segment_size);
    assert_int_equal(mem_in_use(cache), base + st.pinned_bytes);   /* still charged */
    bc_item_release(cache, held);
    bc_cache_get_stats(cache, &st);
    assert_int_equal(st.pinned_bytes, 0);
    assert_int_equal(mem_in_use(cache), base);

    assert_int_equal(set(cache, "k", "second"), BC_OK);
    held = get(cache, "k");
    bc_item_t *held2 = get(cache, "k");          /* two readers */
    assert_int_equal(set(cache, "k", "third"), BC_OK);
    check_value(cache, "k", "third");
    assert_memory_equal(bc_item_value(held), "second\r\n", 8);
    bc_item_release(cache, held);
    assert_memory_equal(bc_item_value(held2), "second\r\n", 8);
    bc_item_release(cache, held2);

    held = get(cache, "k");
    assert_int_equal(bc_cache_bucket_drop(cache, bc_hash_bucket(hkey("k"), 1024)), 1);
    assert_memory_equal(bc_item_value(held), "third\r\n", 7);
    bc_item_release(cache, held);

    /* Eviction pressure: 20x the memory limit goes through while "hot" is
     * held; its segment is evicted but not reused under the reader (the
     * bytes stay as they were; ASan poisons a segment while it is free) and
     * the limit holds throughout. */
    assert_int_equal(set(cache, "hot", "kept"), BC_OK);
    held = get(cache, "hot");
    char key[32], val[1000];
    memset(val, 'z', sizeof(val) - 1);
    val[sizeof(val) - 1] = '\0';
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "filler-%d", i);
        assert_int_equal(set(cache, key, val), BC_OK);
        bc_cache_get_stats(cache, &st);
        assert_true(st.mem_used <= st.mem_limit);
    }
    assert_true(st.evictions > 10000);
    assert_int_equal(st.pinned_bytes, st.segment_size);
    assert_memory_equal(bc_item_value(held), "kept\r\n", 6);
    bc_item_release(cache, held);
    bc_cache_get_stats(cache, &st);
    assert_int_equal(st.pinned_bytes, 0);
    bc_cache_destroy(cache);
}

/*
 * Eviction does not wait for readers, in any policy: the segment of a held
 * item is evicted like any other (the item dropped, or kept as a copy
 * elsewhere), and only its reuse waits for the reader.
 */
static void
test_pinned_segment_evicted_not_reused(void **state)
{
    (void)state;
    const char *names[] = {"lru", "lfu", "fifo", "s3fifo"};
    for (int p = 0; p < 4; p++) {
        bc_cache_config_t cfg = {
            .mem_limit = 96 << 10, .nbuckets = 1, .nshards = 1, .policy = names[p],
            .now = fake_clock,
        };
        bc_cache_t *cache;
        assert_int_equal(bc_cache_create(&cfg, &cache), BC_OK);
        assert_int_equal(set(cache, "oldest", "x"), BC_OK);
        bc_item_t *held = get(cache, "oldest");
        char key[32];
        bc_cache_stats_t st;
        for (int i = 0; i < 3000; i++) {
            snprintf(key, sizeof(key), "k%d", i);
            assert_int_equal(set(cache, key, "0123456789"), BC_OK);
            bc_cache_get_stats(cache, &st);
            assert_true(st.mem_used <= st.mem_limit);
        }
        assert_true(st.evictions > 1000);
        /* its segment went through eviction and waits for the reader */
        assert_int_equal(st.pinned_bytes, st.segment_size);
        assert_memory_equal(bc_item_key(held), "oldest", 6);
        assert_memory_equal(bc_item_value(held), "x\r\n", 3);
        bc_item_release(cache, held);
        bc_cache_get_stats(cache, &st);
        assert_int_equal(st.pinned_bytes, 0);
        bc_cache_destroy(cache);
    }
}

/* A frequently read key survives a stream of one-time keys (not FIFO). */
static void
test_hot_key_survives(void **state)
{
    (void)state;
    const char *names[] = {"lru", "lfu", "s3fifo"};
    for (int p = 0; p < 3; p++) {
        bc_cache_t *cache = make_cache(256 << 10, names[p]);
        assert_int_equal(set(cache, "hot", "value"), BC_OK);
        char key[32];
        for (int i = 0; i < 20000; i++) {
            snprintf(key, sizeof(key), "cold-%d", i);
            assert_int_equal(set(cache, key, "0123456789012345678901234567890123456789"),
                             BC_OK);
            if (i % 50 == 0) check_value(cache, "hot", "value");
        }
        bc_cache_destroy(cache);
    }
}

static void
test_stats_fields(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(4 << 20, NULL);
    assert_int_equal(set(cache, "abc", "12345"), BC_OK);
    assert_int_equal(set(cache, "de", "1"), BC_OK);
    bc_cache_stats_t st;
    bc_cache_get_stats(cache, &st);
    assert_int_equal(st.curr_items, 2);
    assert_int_equal(st.data_bytes, 3 + 5 + 2 + 1);
    assert_int_equal(st.mem_limit, 4 << 20);
    assert_int_equal(set(cache, "abc", "1"), BC_OK);
    bc_cache_get_stats(cache, &st);
    assert_int_equal(st.data_bytes, 3 + 1 + 2 + 1);
    assert_int_equal(st.total_items, 3);
    bc_cache_destroy(cache);
}

/*
 * Per-item cost: the figure the memory benchmark compares with memcached
 * (its 48-byte header + 8-byte CAS + slab rounding + an 8-byte hash slot:
 * about 200 bytes for these items).  Here: a 24-byte header, the key and
 * value with CRLF rounded to 8 (136 bytes for 10 + 100), 2 to 4 bytes of
 * slot array, and what is left of the last segment.
 */
static void
test_bytes_per_item(void **state)
{
    (void)state;
    bc_cache_config_t cfg = {
        .mem_limit = 64 << 20, .nbuckets = 1024, .nshards = 16, .segment_size = 64 << 10,
        .now = fake_clock,
    };
    bc_cache_t *cache;
    assert_int_equal(bc_cache_create(&cfg, &cache), BC_OK);
    uint64_t base = mem_used(cache);
    char key[32], val[101];
    memset(val, 'v', 100);
    val[100] = '\0';
    enum { N = 200000 };
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key:%06d", i);
        assert_int_equal(set(cache, key, val), BC_OK);
    }
    bc_cache_stats_t st;
    bc_cache_get_stats(cache, &st);
    assert_int_equal(st.curr_items, N);
    assert_int_equal(st.evictions, 0);
    double per_item = (double)(st.mem_used - base) / N;
    printf("bytes per item (10-byte key, 100-byte value): %.1f\n", per_item);
    assert_true(per_item >= 136);
    assert_true(per_item <= 140);
    bc_cache_destroy(cache);
}

/* ---- hit ratio through the whole engine ---- */

/* Zipf(0.99) cache-aside run through the real engine (shards, byte
 * limit, home-shard eviction), cache sized for ~10% of the keys. */
static double
engine_zipf_hit_ratio(const char *policy, const uint32_t *trace, uint32_t nreq)
{
    bc_cache_config_t cfg = {
        .mem_limit = 64 << 20, .nbuckets = 1024, .nshards = 16, .policy = policy,
        .now = fake_clock,
    };
    bc_cache_t *probe;
    assert_int_equal(bc_cache_create(&cfg, &probe), BC_OK);
    uint64_t base = mem_used(probe);
    bc_cache_destroy(probe);
    cfg.mem_limit = base + 2000 * 144;        /* ~2000 items of 144 bytes */
    bc_cache_t *cache;
    assert_int_equal(bc_cache_create(&cfg, &cache), BC_OK);

    char key[32], val[101];
    memset(val, 'v', 100);
    val[100] = '\0';
    uint64_t hits = 0;
    for (uint32_t r = 0; r < nreq; r++) {
        snprintf(key, sizeof(key), "key:%07u", trace[r]);
        bc_item_t *it = get(cache, key);
        if (it != NULL) {
            hits++;
            bc_item_release(cache, it);
        } else {
            assert_int_equal(set(cache, key, val), BC_OK);
        }
    }
    bc_cache_stats_t st;
    bc_cache_get_stats(cache, &st);
    assert_true(st.mem_used <= st.mem_limit);
    printf("%s: %llu items\n", policy, (unsigned long long)st.curr_items);
    assert_true(st.curr_items > 1500 && st.curr_items < 2500);
    bc_cache_destroy(cache);
    return (double)hits / nreq;
}

static void
test_engine_zipf_hit_ratio(void **state)
{
    (void)state;
    enum { KEYS = 20000, REQ = 200000 };
    double *cdf = malloc(KEYS * sizeof(*cdf));
    uint32_t *trace = malloc(REQ * sizeof(*trace));
    assert_non_null(cdf);
    assert_non_null(trace);
    double sum = 0;
    for (int i = 0; i < KEYS; i++) cdf[i] = sum += 1.0 / pow(i + 1, 0.99);
    uint64_t x = 7;
    for (int r = 0; r < REQ; r++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        double u = (double)(x >> 11) / 9007199254740992.0 * sum;
        int lo = 0, hi = KEYS - 1;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (cdf[mid] < u) lo = mid + 1; else hi = mid;
        }
        trace[r] = (uint32_t)lo;
    }
    double lru = engine_zipf_hit_ratio("lru", trace, REQ);
    double lfu = engine_zipf_hit_ratio("lfu", trace, REQ);
    double fifo = engine_zipf_hit_ratio("fifo", trace, REQ);
    double s3 = engine_zipf_hit_ratio("s3fifo", trace, REQ);
    printf("engine zipf(0.99) hit ratio: lru %.4f lfu %.4f fifo %.4f s3fifo %.4f\n", lru,
           lfu, fifo, s3);
    assert_true(s3 > lru);
    assert_true(lru > fifo);
    assert_true(lfu > fifo);
    free(cdf);
    free(trace);
}

/* ---- threads ---- */

typedef struct stress {
    bc_cache_t *cache;
    unsigned seed;
    uint64_t ops;
    uint64_t hits;
} stress_t;

static void *
stress_thread(void *arg)
{
    stress_t *s = arg;
    uint64_t x = 0x9e3779b97f4a7c15ull * (s->seed + 1);
    char key[32];
    for (int op = 0; op < 150000; op++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        snprintf(key, sizeof(key), "key-%u", (unsigned)(x % 2000));
        size_t nkey = strlen(key);
        uint32_t h = hkey(key);
        bc_status_t st;
        switch ((x >> 16) % 16) {
        case 0: case 1: case 2: case 3: {
            uint32_t len = (uint32_t)((x >> 24) % 500);
            bc_item_t *it = bc_item_alloc(s->cache, key, nkey, h, s->seed, 0, len + 2, &st);
            if (it == NULL) break;
            memset(bc_item_value(it), 'a' + (char)s->seed, len);
            memcpy(bc_item_value(it) + len, "\r\n", 2);
            (void)bc_cache_store(s->cache, it, (x >> 40) % 3 == 0 ? BC_STORE_ADD : BC_STORE_SET,
                                 0, NULL);
            break;
        }
        case 4:
            (void)bc_cache_delete(s->cache, key, nkey, h);
            break;
        case 5: {
            uint64_t v;
            (void)bc_cache_arith(s->cache, key, nkey, h, (x >> 30) & 1, 1, &v);
            break;
        }
        case 6:
            (void)store_mode(s->cache, key, "xy", 0, 0, (x >> 30) & 1 ? BC_STORE_APPEND
                                                                   : BC_STORE_PREPEND, 0, NULL);
            break;
        case 7:
            (void)bc_cache_touch(s->cache, key, nkey, h, T0 + 1000);
            break;
        case 8:
            if (op % 64 == 0) (void)bc_cache_expire_scan(s->cache, 100);
            else if (op % 997 == 0) (void)bc_cache_bucket_drop(s->cache, h % 1024);
            break;
        default: {
            bc_item_t *it = bc_cache_get(s->cache, key, nkey, h);
            if (it != NULL) {
                /* The value is immutable while held: copy it, let the
                 * other threads run, compare. */
                uint32_t len = bc_item_value_len(it);
                char copy[1200];
                uint32_t n = len < sizeof(copy) ? len : (uint32_t)sizeof(copy);
                memcpy(copy, bc_item_value(it), n);
                sched_yield();
                assert_memory_equal(copy, bc_item_value(it), n);
                assert_memory_equal(bc_item_value(it) + len, "\r\n", 2);
                assert_memory_equal(bc_item_key(it), key, nkey);
                s->hits++;
                bc_item_release(s->cache, it);
            }
            break;
        }
        }
        s->ops++;
    }
    return NULL;
}

static void
test_threads_stress(void **state)
{
    (void)state;
    const char *names[] = {"lru", "lfu", "fifo", "s3fifo"};
    for (int p = 0; p < 4; p++) {
        bc_cache_t *cache = make_cache(256 << 10, names[p]);
        pthread_t threads[4];
        stress_t ctx[4];
        for (unsigned i = 0; i < 4; i++) {
            ctx[i] = (stress_t){.cache = cache, .seed = i};
            assert_int_equal(pthread_create(&threads[i], NULL, stress_thread, &ctx[i]), 0);
        }
        for (int i = 0; i < 4; i++) pthread_join(threads[i], NULL);

        bc_cache_stats_t st;
        bc_cache_get_stats(cache, &st);
        assert_true(st.mem_used <= st.mem_limit);
        assert_int_equal(st.pinned_bytes, 0);
        assert_true(st.evictions > 0);
        uint64_t items = 0;
        for (uint32_t b = 0; b < 1024; b++) {
            bc_bucket_stats_t bs;
            assert_int_equal(bc_cache_bucket_stats(cache, b, &bs), BC_OK);
            items += bs.items;
        }
        assert_int_equal(items, st.curr_items);
        /* Everything still readable and consistent after the storm. */
        for (uint32_t b = 0; b < 1024; b++) (void)bc_cache_bucket_drop(cache, b);
        bc_cache_get_stats(cache, &st);
        assert_int_equal(st.curr_items, 0);
        assert_int_equal(st.data_bytes, 0);
        bc_cache_destroy(cache);
    }
}

/* ---- the change observer (replication) ---- */

typedef struct obs_log {
    char lines[64][96];
    int n;
} obs_log_t;

static void
obs_record(void *ctx, const bc_cache_event_t *ev)
{
    obs_log_t *l = ctx;
    char *out = l->lines[l->n++ % 64];
    switch (ev->type) {
    case BC_CACHE_EV_STORE:
        snprintf(out, 96, "STORE %.*s=%.*s exp=%u", (int)bc_item_nkey(ev->item),
                 bc_item_key(ev->item), (int)bc_item_value_len(ev->item),
                 bc_item_value_const(ev->item), bc_item_exptime(ev->item));
        break;
    case BC_CACHE_EV_DELETE:
        snprintf(out, 96, "DELETE %.*s", (int)ev->nkey, ev->key);
        break;
    case BC_CACHE_EV_TOUCH:
        snprintf(out, 96, "TOUCH %.*s exp=%u", (int)bc_item_nkey(ev->item), bc_item_key(ev->item),
                 bc_item_exptime(ev->item));
        break;
    case BC_CACHE_EV_FLUSH:
        snprintf(out, 96, "FLUSH %u mark>0:%d", ev->when, ev->mark > 0);
        break;
    case BC_CACHE_EV_DROP:
        snprintf(out, 96, "DROP %u", ev->bucket);
        break;
    }
}

/* A backup's items keep the primary's CAS; fresh ones go above it; the
 * primary's flush mark hides exactly the items below it. */
static void
test_replica_cas_and_flush_mark(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(8u << 20, "lru");
    assert_int_equal(store_as(cache, "r", "1", 1000), BC_OK);
    bc_item_t *it = get(cache, "r");
    assert_non_null(it);
    assert_true(it->cas == 1000);
    bc_item_release(cache, it);
    uint64_t cas = 0;
    assert_int_equal(store_mode(cache, "fresh", "x", 0, 0, BC_STORE_SET, 0, &cas), BC_OK);
    assert_true(cas > 1000);
    assert_int_equal(store_as(cache, "s", "2", cas + 10), BC_OK);
    bc_cache_flush_at(cache, cas + 5);           /* r and fresh go, s stays */
    assert_null(get(cache, "r"));
    assert_null(get(cache, "fresh"));
    it = get(cache, "s");
    assert_non_null(it);
    bc_item_release(cache, it);
    assert_int_equal(store_mode(cache, "after", "y", 0, 0, BC_STORE_SET, 0, &cas), BC_OK);
    it = get(cache, "after");                    /* fresh CAS values clear the mark */
    assert_non_null(it);
    bc_item_release(cache, it);
    /* a full resync: empty, marks forgotten, small CAS values visible again */
    for (uint32_t b = 0; b < bc_cache_nbuckets(cache); b++) (void)bc_cache_bucket_drop(cache, b);
    bc_cache_reset_flush(cache);
    assert_int_equal(store_as(cache, "r", "3", 5), BC_OK);
    it = get(cache, "r");
    assert_non_null(it);
    bc_item_release(cache, it);
    bc_cache_destroy(cache);
}

/*
 * A backup's delayed flush, then the primary's mark for it (FLUSH [when,
 * mark], node/repl/primary.c): the items below the mark go even if they arrived
 * after the due time, the pending flush it stands for is done (it does not
 * fire again at the backup's own clock), and a different pending one is
 * kept.
 */
static void
test_replica_delayed_flush_came_due(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(8u << 20, "lru");
    bc_cache_flush(cache, T0 + 10);
    assert_int_equal(store_as(cache, "old", "1", 100), BC_OK);
    fake_now = T0 + 20;                          /* the backup lagged past the due time */
    assert_int_equal(store_as(cache, "late", "2", 150), BC_OK);   /* written before it */
    assert_int_equal(store_as(cache, "new", "3", 300), BC_OK);    /* written after it */
    /* its own clock marked at its own CAS values: "late" and "new" live */
    bc_item_t *it = get(cache, "late");
    assert_non_null(it);
    bc_item_release(cache, it);
    bc_cache_flush_came_due(cache, T0 + 10, 200);  /* the primary's mark */
    assert_null(get(cache, "old"));
    assert_null(get(cache, "late"));
    it = get(cache, "new");
    assert_non_null(it);
    bc_item_release(cache, it);

    /* the mark arrives before the backup's clock reaches the due time: the
     * pending flush is the same one, and is done */
    bc_cache_flush(cache, T0 + 30);
    bc_cache_flush_came_due(cache, T0 + 30, 400);
    assert_int_equal(store_as(cache, "after", "4", 500), BC_OK);
    fake_now = T0 + 40;
    it = get(cache, "after");
    assert_non_null(it);
    bc_item_release(cache, it);

    /* a mark for another flush keeps the pending one */
    bc_cache_flush(cache, T0 + 60);
    bc_cache_flush_came_due(cache, T0 + 50, 450);
    fake_now = T0 + 70;
    assert_null(get(cache, "after"));            /* the pending flush fired */
    bc_cache_destroy(cache);
}

/* A backup applies a stream: every record kind, hostile ttl and CAS values
 * clamped, an out-of-place frame refused. */
static void
test_apply_replication_stream(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(8u << 20, "lru");
    bc_frame_buf_t b;
    memset(&b, 0, sizeof(b));
    assert_int_equal(bc_frame_put_item(&b, "a", 1, "1", 1, 3, 0, 500), BC_OK);
    assert_int_equal(bc_frame_put_item(&b, "b", 1, "2", 1, 0, 0xffffffffu, UINT64_MAX), BC_OK);
    assert_int_equal(bc_frame_put_item(&b, "c", 1, "3", 1, 0, 0, 0), BC_OK);
    assert_int_equal(bc_frame_put_del(&b, "c", 1), BC_OK);
    assert_int_equal(bc_frame_put_touch(&b, "a", 1, 100), BC_OK);
    assert_int_equal(bc_frame_put_ping(&b, 12345), BC_OK);
    assert_int_equal(bc__repl_apply_stream(cache, b.data, b.len, 1u << 20), 6);
    bc_item_t *it = get(cache, "a");
    assert_non_null(it);
    assert_true(it->cas == 500 && bc_item_flags(it) == 3 && it->exptime == T0 + 100);
    bc_item_release(cache, it);
    it = get(cache, "b");                 /* ttl clamped, absurd CAS not adopted */
    assert_non_null(it);
    assert_true(it->exptime == UINT32_MAX && it->cas < (UINT64_C(1) << 62));
    bc_item_release(cache, it);
    assert_null(get(cache, "c"));
    /* a key of 0 bytes, a bucket out of range, a HELLO mid-stream: refused */
    b.len = 0;
    assert_int_equal(bc_frame_put_del(&b, "", 0), BC_OK);
    assert_int_equal(bc__repl_apply_stream(cache, b.data, b.len, 1u << 20), -1);
    b.len = 0;
    assert_int_equal(bc_frame_put_drop(&b, 1u << 30), BC_OK);
    assert_int_equal(bc__repl_apply_stream(cache, b.data, b.len, 1u << 20), -1);
    b.len = 0;
    assert_int_equal(bc_frame_put_rhello(&b, true, "x", 0), BC_OK);
    assert_int_equal(bc__repl_apply_stream(cache, b.data, b.len, 1u << 20), -1);
    /* flush at the primary's mark */
    b.len = 0;
    assert_int_equal(bc_frame_put_flush(&b, 0, 501), BC_OK);
    assert_int_equal(bc__repl_apply_stream(cache, b.data, b.len, 1u << 20), 1);
    assert_null(get(cache, "a"));
    bc_frame_buf_free(&b);
    bc_cache_destroy(cache);
}

/* Every change reports the state it leaves, failed ones report nothing,
 * and reads report nothing. */
static void
test_observer_reports_resulting_states(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(8u << 20, "lru");
    obs_log_t log = {.n = 0};
    bc_cache_set_observer(cache, obs_record, &log);
    uint64_t cas = 0;
    assert_int_equal(store_mode(cache, "a", "1", 0, 0, BC_STORE_SET, 0, &cas), BC_OK);
    assert_int_equal(store_mode(cache, "a", "x", 0, 0, BC_STORE_ADD, 0, NULL), BC_ENOTSTORED);
    assert_int_equal(store_mode(cache, "a", "2", 0, 0, BC_STORE_APPEND, 0, NULL), BC_OK);
    assert_int_equal(store_mode(cache, "a", "0", 0, 0, BC_STORE_PREPEND, 0, NULL), BC_OK);
    assert_int_equal(store_mode(cache, "a", "9", 0, 0, BC_STORE_CAS, cas, NULL), BC_EEXISTS);
    uint64_t v;
    assert_int_equal(bc_cache_arith(cache, "a", 1, bc_hash_key("a", 1), true, 5, &v), BC_OK);
    assert_int_equal(bc_cache_arith(cache, "a", 1, bc_hash_key("a", 1), true, 99999, &v), BC_OK);
    bc_item_t *it = get(cache, "a");
    bc_item_release(cache, it);
    assert_int_equal(bc_cache_touch(cache, "a", 1, bc_hash_key("a", 1), T0 + 50), BC_OK);
    assert_int_equal(bc_cache_delete(cache, "a", 1, bc_hash_key("a", 1)), BC_OK);
    assert_int_equal(bc_cache_delete(cache, "a", 1, bc_hash_key("a", 1)), BC_ENOTFOUND);
    bc_cache_flush(cache, 0);
    (void)bc_cache_bucket_drop(cache, 7);
    const char *want[] = {"STORE a=1 exp=0", "STORE a=12 exp=0", "STORE a=012 exp=0",
                          "STORE a=17  exp=0" /* padded in place */, "STORE a=100016 exp=0",
                          "TOUCH a exp=" /* + T0+50 */, "DELETE a", "FLUSH 0 mark>0:1", "DROP 7"};
    assert_int_equal(log.n, 9);
    for (int i = 0; i < 9; i++) {
        assert_true(strncmp(log.lines[i], want[i], strlen(want[i])) == 0);
    }
    bc_cache_set_observer(cache, NULL, NULL);
    assert_int_equal(set(cache, "b", "1"), BC_OK);
    assert_int_equal(log.n, 9);
    bc_cache_destroy(cache);
}

/* mg's last access from the 16-bit header field (item.h, atime): the
 * first fetch only marks the item fetched, a later one moves the access
 * time; exact within 65535 s, then read modulo 65536 s. */
static void
test_meta_last_access(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(4 << 20, NULL);
    assert_int_equal(set(cache, "la", "v"), BC_OK);
    bc_cache_mget_t m = {.bump = true};
    bc_status_t st;

    fake_now = T0 + 5;
    bc_item_t *it = bc_cache_mget(cache, "la", 2, hkey("la"), &m, &st);
    assert_non_null(it);
    assert_int_equal(m.meta.atime, T0);           /* linked at T0 */
    assert_false(m.meta.fetched);
    bc_item_release(cache, it);

    fake_now = T0 + 9;
    it = bc_cache_mget(cache, "la", 2, hkey("la"), &m, &st);
    assert_int_equal(m.meta.atime, T0);           /* the first fetch only marked it */
    assert_true(m.meta.fetched);
    bc_item_release(cache, it);

    fake_now = T0 + 9 + 65535;                    /* the last exact idle time */
    memset(&m, 0, sizeof(m));                     /* no bump: a peek */
    it = bc_cache_mget(cache, "la", 2, hkey("la"), &m, &st);
    assert_int_equal(m.meta.atime, T0 + 9);
    bc_item_release(cache, it);

    fake_now = T0 + 9 + 65536 + 100;              /* wrapped: idle reads as 100 s */
    it = bc_cache_mget(cache, "la", 2, hkey("la"), &m, &st);
    assert_int_equal(fake_now - m.meta.atime, 100);
    bc_item_release(cache, it);
    bc_cache_destroy(cache);
}

/* cache_memlimit: anywhere between the engine's needs and the start limit
 * (the arena is reserved for that), shrinking evicts at once. */
static void
test_set_mem_limit(void **state)
{
    (void)state;
    size_t start = 64u << 20;
    bc_cache_t *cache = make_cache(start, NULL);
    assert_int_equal(bc_cache_mem_limit_max(cache), start);
    assert_int_equal(bc_cache_set_mem_limit(cache, start + 1), BC_EINVAL);
    assert_int_equal(bc_cache_set_mem_limit(cache, 1), BC_EINVAL);

    char key[32], value[1000];
    memset(value, 'x', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    for (int i = 0; i < 40000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(set(cache, key, value), BC_OK);
    }
    assert_true(mem_used(cache) > (32u << 20));
    assert_int_equal(bc_cache_set_mem_limit(cache, 16u << 20), BC_OK);
    assert_true(mem_used(cache) <= (16u << 20));
    bc_cache_stats_t cs;
    bc_cache_get_stats(cache, &cs);
    assert_int_equal(cs.mem_limit, 16u << 20);
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "m%d", i);
        assert_int_equal(set(cache, key, value), BC_OK);
        assert_true(mem_used(cache) <= (16u << 20) + (1u << 20));
    }
    /* back up to the start limit: room again */
    assert_int_equal(bc_cache_set_mem_limit(cache, start), BC_OK);
    for (int i = 0; i < 40000; i++) {
        snprintf(key, sizeof(key), "n%d", i);
        assert_int_equal(set(cache, key, value), BC_OK);
    }
    assert_true(mem_used(cache) > (32u << 20));
    assert_true(mem_used(cache) <= start);
    bc_cache_destroy(cache);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_get_delete),
        cmocka_unit_test(test_peek),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_alloc_errors),
        cmocka_unit_test(test_store_modes),
        cmocka_unit_test(test_cas),
        cmocka_unit_test(test_arith),
        cmocka_unit_test(test_exptime_conversion),
        cmocka_unit_test(test_lazy_expiry_and_touch),
        cmocka_unit_test(test_active_expiry),
        cmocka_unit_test(test_flush),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_memory_limit_random_load),
        cmocka_unit_test(test_bucket_api),
        cmocka_unit_test(test_bucket_scan),
        cmocka_unit_test(test_store_moved_keeps_cas),
        cmocka_unit_test(test_refcount_pinning),
        cmocka_unit_test(test_pinned_segment_evicted_not_reused),
        cmocka_unit_test(test_hot_key_survives),
        cmocka_unit_test(test_stats_fields),
        cmocka_unit_test(test_bytes_per_item),
        cmocka_unit_test(test_engine_zipf_hit_ratio),
        cmocka_unit_test(test_threads_stress),
        cmocka_unit_test(test_observer_reports_resulting_states),
        cmocka_unit_test(test_replica_cas_and_flush_mark),
        cmocka_unit_test(test_replica_delayed_flush_came_due),
        cmocka_unit_test(test_apply_replication_stream),
        cmocka_unit_test(test_meta_last_access),
        cmocka_unit_test(test_set_mem_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
