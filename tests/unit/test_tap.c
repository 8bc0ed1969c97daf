/*
 * test_tap.c -- the change trackers a precopy arms on its source's bucket
 * (node/engine/tap.h): what they record, when they end, and their key sets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bc_hash.h"
#include "engine/cache.h"
#include "bc_time.h"
#include "engine/tap.h"

#define NBUCKETS 64u

static bc_cache_t *
make_cache(void)
{
    bc_cache_config_t cfg = {.mem_limit = 16u << 20, .nbuckets = NBUCKETS, .nshards = 8};
    bc_cache_t *cache = NULL;
    assert_int_equal(bc_cache_create(&cfg, &cache), BC_OK);
    return cache;
}

/* The first key "k<i>" with i >= *from that hashes to bucket; *from is
 * left past it, so successive calls give the bucket's keys in order. */
static const char *
key_next(uint32_t bucket, int *from, char *buf, size_t cap)
{
    for (int i = *from;; i++) {
        snprintf(buf, cap, "k%d", i);
        if (bc_hash_bucket(bc_hash_key(buf, strlen(buf)), NBUCKETS) == bucket) {
            *from = i + 1;
            return buf;
        }
    }
}

/* The n-th key ("k<i>") that hashes to bucket. */
static const char *
key_in(uint32_t bucket, int n, char *buf, size_t cap)
{
    int from = 0;
    while (n-- > 0) key_next(bucket, &from, buf, cap);
    return key_next(bucket, &from, buf, cap);
}

static void
set(bc_cache_t *cache, const char *key, const char *value)
{
    bc_status_t st;
    size_t nkey = strlen(key), nval = strlen(value);
    bc_item_t *it = bc_item_alloc(cache, key, nkey, bc_hash_key(key, nkey), 0, 0,
                                  (uint32_t)nval + 2, &st);
    assert_non_null(it);
    memcpy(bc_item_value(it), value, nval);
    memcpy(bc_item_value(it) + nval, "\r\n", 2);
    assert_int_equal(bc_cache_store(cache, it, BC_STORE_SET, 0, NULL), BC_OK);
}

static void
del(bc_cache_t *cache, const char *key)
{
    (void)bc_cache_delete(cache, key, strlen(key), bc_hash_key(key, strlen(key)));
}

static bool
has(bc_tap_keys_t *keys, const char *key)
{
    return bc_tap_keys_has(keys, key, strlen(key));
}

/* Stores, deletes and touches of the tapped bucket are recorded once per
 * key; other buckets' changes are not; the tracker goes on recording. */
static void
test_records_changed_keys(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache();
    bc_tap_set_t *set_ = NULL;
    bc_tap_config_t cfg = {.cache = cache};
    assert_int_equal(bc_tap_set_create(&cfg, &set_), BC_OK);
    char a[16], b[16], c[16], other[16];
    key_in(3, 0, a, sizeof(a));
    key_in(3, 1, b, sizeof(b));
    key_in(3, 2, c, sizeof(c));
    key_in(4, 0, other, sizeof(other));
    set(cache, a, "before");          /* before the tap: not a change */
    set(cache, c, "x");

    uint64_t id = 0;
    assert_int_equal(bc_tap_start(set_, 3, &id), BC_OK);
    assert_true(id != 0);
    for (int i = 0; i < 100; i++) set(cache, a, "hot");   /* one key, many writes */
    set(cache, b, "new");
    del(cache, b);
    assert_int_equal(bc_cache_touch(cache, c, strlen(c), bc_hash_key(c, strlen(c)), 0), BC_OK);
    set(cache, other, "elsewhere");

    bc_tap_keys_t keys;
    char why[256];
    assert_int_equal(bc_tap_changes(set_, 3, id, &keys, why, sizeof(why)), BC_OK);
    assert_int_equal(keys.count, 3);
    assert_true(has(&keys, a));
    assert_true(has(&keys, b));
    assert_true(has(&keys, c));
    assert_false(has(&keys, other));
    bc_tap_keys_free(&keys);

    /* a wrong id, an untapped bucket */
    assert_int_equal(bc_tap_changes(set_, 3, id + 1, &keys, why, sizeof(why)), BC_ENOTFOUND);
    assert_non_null(strstr(why, "no change tracker"));
    assert_int_equal(bc_tap_changes(set_, 4, id, &keys, why, sizeof(why)), BC_ENOTFOUND);

    bc_tap_stats_t ts;
    bc_tap_get_stats(set_, &ts);
    assert_int_equal(ts.active, 1);
    assert_int_equal(ts.keys, 3);
    bc_tap_set_destroy(set_);
    bc_cache_destroy(cache);
}

/* A take moves the keys out and leaves the tracker recording into an
 * empty set: the next take, or the final copy's changes, hold only what
 * changed after it; a take of an ended tracker says why. */
static void
test_take_moves_the_keys_out(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache();
    bc_tap_set_t *set_ = NULL;
    bc_tap_config_t cfg = {.cache = cache};
    assert_int_equal(bc_tap_set_create(&cfg, &set_), BC_OK);
    char a[16], b[16], c[16];
    key_in(3, 0, a, sizeof(a));
    key_in(3, 1, b, sizeof(b));
    key_in(3, 2, c, sizeof(c));
    uint64_t id = 0;
    assert_int_equal(bc_tap_start(set_, 3, &id), BC_OK);
    set(cache, a, "1");
    set(cache, b, "1");

    bc_tap_keys_t keys;
    char why[256];
    assert_int_equal(bc_tap_take(set_, 3, id, &keys, why, sizeof(why)), BC_OK);
    assert_int_equal(keys.count, 2);
    assert_true(has(&keys, a));
    assert_true(has(&keys, b));
    bc_tap_keys_free(&keys);
    bc_tap_stats_t ts;
    bc_tap_get_stats(set_, &ts);
    assert_int_equal(ts.keys, 0);
    assert_int_equal(ts.taken, 1);

    /* nothing changed since: an empty set, the tracker still valid */
    assert_int_equal(bc_tap_take(set_, 3, id, &keys, why, sizeof(why)), BC_OK);
    assert_int_equal(keys.count, 0);
    bc_tap_keys_free(&keys);

    /* a key changed again after a take is recorded again */
    set(cache, a, "2");
    del(cache, c);                    /* not there: no change */
    set(cache, c, "3");
    assert_int_equal(bc_tap_changes(set_, 3, id, &keys, why, sizeof(why)), BC_OK);
    assert_int_equal(keys.count, 2);
    assert_true(has(&keys, a));
    assert_false(has(&keys, b));
    assert_true(has(&keys, c));
    bc_tap_keys_free(&keys);
    /* bc_tap_changes copies: the keys are still there for a take */
    assert_int_equal(bc_tap_take(set_, 3, id, &keys, why, sizeof(why)), BC_OK);
    assert_int_equal(keys.count, 2);
    bc_tap_keys_free(&keys);

    /* a wrong id, and a tracker a flush ended */
    assert_int_equal(bc_tap_take(set_, 3, id + 1, &keys, why, sizeof(why)), BC_ENOTFOUND);
    assert_non_null(strstr(why, "no change tracker"));
    bc_cache_flush(cache, 0);
    assert_int_equal(bc_tap_take(set_, 3, id, &keys, why, sizeof(why)), BC_ENOTFOUND);
    assert_int_equal(bc_tap_take(set_, 999999, id, &keys, why, sizeof(why)), BC_ENOTFOUND);
    bc_tap_set_destroy(set_);
    bc_cache_destroy(cache);
}

/* A flush_all ends every tracker; a bucket drop ends its own (both of
 * them); a bucket keeps two taps, each recording every change, and a
 * third replaces the least recently used; ids differ between two sets
 * (processes). */
static void
test_flush_drop_and_replace_end_taps(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache();
    bc_tap_set_t *set_ = NULL;
    bc_tap_config_t cfg = {.cache = cache};
    assert_int_equal(bc_tap_set_create(&cfg, &set_), BC_OK);
    uint64_t id1, id2, id3;
    bc_tap_keys_t keys;
    char why[256], k[16];
    assert_int_equal(bc_tap_start(set_, 1, &id1), BC_OK);
    assert_int_equal(bc_tap_start(set_, 2, &id2), BC_OK);
    bc_cache_flush(cache, 0);
    assert_int_equal(bc_tap_changes(set_, 1, id1, &keys, why, sizeof(why)), BC_ENOTFOUND);
    assert_int_equal(bc_tap_changes(set_, 2, id2, &keys, why, sizeof(why)), BC_ENOTFOUND);

    assert_int_equal(bc_tap_start(set_, 1, &id1), BC_OK);
    assert_int_equal(bc_tap_start(set_, 1, &id2), BC_OK);
    set(cache, key_in(1, 0, k, sizeof(k)), "v");
    (void)bc_cache_bucket_drop(cache, 1);
    assert_int_equal(bc_tap_changes(set_, 1, id1, &keys, why, sizeof(why)), BC_ENOTFOUND);
    assert_int_equal(bc_tap_changes(set_, 1, id2, &keys, why, sizeof(why)), BC_ENOTFOUND);

    assert_int_equal(bc_tap_start(set_, 5, &id1), BC_OK);
    assert_int_equal(bc_tap_start(set_, 5, &id3), BC_OK);
    assert_true(id3 != id1);
    set(cache, key_in(5, 0, k, sizeof(k)), "v");
    /* each tap has the change; taking it from one leaves the other's */
    assert_int_equal(bc_tap_take(set_, 5, id3, &keys, why, sizeof(why)), BC_OK);
    assert_int_equal(keys.count, 1);
    bc_tap_keys_free(&keys);
    bc_time_sleep_ms(20);          /* id1 is used after id3 */
    assert_int_equal(bc_tap_changes(set_, 5, id1, &keys, why, sizeof(why)), BC_OK);
    assert_int_equal(keys.count, 1);
    assert_true(bc_tap_keys_has(&keys, k, strlen(k)));
    bc_tap_keys_free(&keys);
    bc_tap_stats_t ts;
    bc_tap_get_stats(set_, &ts);
    assert_int_equal(ts.active, 2);
    /* a third: id3, the least recently used, goes */
    uint64_t id5;
    assert_int_equal(bc_tap_start(set_, 5, &id5), BC_OK);
    assert_int_equal(bc_tap_changes(set_, 5, id3, &keys, why, sizeof(why)), BC_ENOTFOUND);
    assert_int_equal(bc_tap_changes(set_, 5, id1, &keys, why, sizeof(why)), BC_OK);
    bc_tap_keys_free(&keys);
    assert_int_equal(bc_tap_changes(set_, 5, id5, &keys, why, sizeof(why)), BC_OK);
    assert_int_equal(keys.count, 0);
    bc_tap_keys_free(&keys);
    /* stopping one leaves the other recording */
    bc_tap_stop(set_, 5, id1);
    assert_int_equal(bc_tap_changes(set_, 5, id1, &keys, why, sizeof(why)), BC_ENOTFOUND);
    set(cache, key_in(5, 1, k, sizeof(k)), "w");
    assert_int_equal(bc_tap_changes(set_, 5, id5, &keys, why, sizeof(why)), BC_OK);
    assert_int_equal(keys.count, 1);
    bc_tap_keys_free(&keys);
    bc_tap_stop(set_, 5, id5);
    bc_tap_get_stats(set_, &ts);
    assert_int_equal(ts.active, 0);
    assert_int_equal(ts.keys, 0);
    bc_tap_set_destroy(set_);

    /* A new process's tracker of the same bucket has another id. */
    bc_tap_set_t *again = NULL;
    assert_int_equal(bc_tap_set_create(&cfg, &again), BC_OK);
    uint64_t id4;
    assert_int_equal(bc_tap_start(again, 5, &id4), BC_OK);
    assert_true(id4 != id3);
    bc_tap_set_destroy(again);
    bc_cache_destroy(cache);
}

/* Past max_bytes of keys a tracker overflows: it ends (the final copy is
 * then a full one) and the overflow is counted; max_taps evicts the least
 * recently used. */
static void
test_limits(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache();
    bc_tap_set_t *set_ = NULL;
    bc_tap_config_t cfg = {.cache = cache, .max_bytes = 16 * 1024, .max_taps = 2};
    assert_int_equal(bc_tap_set_create(&cfg, &set_), BC_OK);
    uint64_t id;
    assert_int_equal(bc_tap_start(set_, 9, &id), BC_OK);
    char k[16];
    int from = 0;
    for (int i = 0; i < 2000; i++) set(cache, key_next(9, &from, k, sizeof(k)), "v");
    bc_tap_keys_t keys;
    char why[256];
    assert_int_equal(bc_tap_changes(set_, 9, id, &keys, why, sizeof(why)), BC_ENOTFOUND);
    bc_tap_stats_t ts;
    bc_tap_get_stats(set_, &ts);
    assert_int_equal(ts.overflowed, 1);
    assert_int_equal(ts.active, 0);

    uint64_t a, b, c;
    assert_int_equal(bc_tap_start(set_, 10, &a), BC_OK);
    assert_int_equal(bc_tap_start(set_, 11, &b), BC_OK);
    assert_int_equal(bc_tap_start(set_, 12, &c), BC_OK);
    bc_tap_get_stats(set_, &ts);
    assert_int_equal(ts.active, 2);
    bc_tap_set_destroy(set_);
    bc_cache_destroy(cache);
}

/* A tap left unused expires; one whose precopy is still streaming (it is
 * touched) does not. */
static void
test_idle_and_touch(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache();
    bc_tap_set_t *set_ = NULL;
    /* touched every 50 ms: idle_ms leaves room for a loaded machine's
     * late wake-ups (a 50 ms sleep may take several times that) */
    bc_tap_config_t cfg = {.cache = cache, .idle_ms = 1000};
    assert_int_equal(bc_tap_set_create(&cfg, &set_), BC_OK);
    uint64_t a, b;
    assert_int_equal(bc_tap_start(set_, 3, &a), BC_OK);
    assert_int_equal(bc_tap_start(set_, 4, &b), BC_OK);
    for (int i = 0; i < 30; i++) {                   /* 1.5 s, half as long again as idle_ms */
        bc_time_sleep_ms(50);
        bc_tap_touch(set_, 3, a);
        bc_tap_touch(set_, 4, a);                    /* not b's id: no effect */
    }
    bc_tap_keys_t keys;
    char why[256];
    assert_int_equal(bc_tap_changes(set_, 3, a, &keys, why, sizeof(why)), BC_OK);
    bc_tap_keys_free(&keys);
    assert_int_equal(bc_tap_changes(set_, 4, b, &keys, why, sizeof(why)), BC_ENOTFOUND);
    assert_non_null(strstr(why, "expired"));
    bc_time_sleep_ms(1300);
    assert_int_equal(bc_tap_changes(set_, 3, a, &keys, why, sizeof(why)), BC_ENOTFOUND);
    bc_tap_touch(set_, 99999, a);                    /* out of range: ignored */
    bc_tap_set_destroy(set_);
    bc_cache_destroy(cache);
}

static void
collect(const char *key, size_t nkey, void *ctx)
{
    char *out = ctx;
    strncat(out, key, nkey);
    strcat(out, ",");
}

/* The key set itself: duplicates are one entry, every key is found and
 * visited once in the order first added, and it grows past its first
 * index. */
static void
test_key_set(void **state)
{
    (void)state;
    bc_tap_keys_t k;
    memset(&k, 0, sizeof(k));
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "key:%d", i % 2500);
        assert_int_equal(bc_tap_keys_add(&k, key, strlen(key)), BC_OK);
    }
    assert_int_equal(k.count, 2500);
    for (int i = 0; i < 2500; i++) {
        snprintf(key, sizeof(key), "key:%d", i);
        assert_true(bc_tap_keys_has(&k, key, strlen(key)));
    }
    assert_false(bc_tap_keys_has(&k, "absent", 6));
    assert_false(bc_tap_keys_has(&k, "", 0));
    static char all[2500 * 10];
    all[0] = '\0';
    bc_tap_keys_foreach(&k, collect, all);
    assert_int_equal(strncmp(all, "key:0,key:1,key:2,", 18), 0);
    size_t commas = 0;
    for (const char *p = all; *p; p++) commas += *p == ',';
    assert_int_equal(commas, 2500);
    assert_true(bc_tap_keys_bytes(&k) > 2500 * 6);
    bc_tap_keys_free(&k);
    assert_int_equal(k.count, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_changed_keys),
        cmocka_unit_test(test_take_moves_the_keys_out),
        cmocka_unit_test(test_flush_drop_and_replace_end_taps),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_idle_and_touch),
        cmocka_unit_test(test_key_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
