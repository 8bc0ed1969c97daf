/*
 * test_counters.c -- per-bucket statistics (engine/counters.h, cache.h):
 * each attached thread counts into its own block and a read folds them;
 * a thread that did not attach counts nothing; sums survive detach and
 * block reuse; evictions and expirations are counted in their bucket; the
 * key sampler sees about one request in N.
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
#include "engine/cache.h"

#define T0 1700000000u
static uint32_t fake_now = T0;

static uint32_t
fake_clock(void)
{
    return __atomic_load_n(&fake_now, __ATOMIC_RELAXED);
}

static bc_cache_t *
make_cache(size_t mem_limit)
{
    bc_cache_config_t cfg = {
        .mem_limit = mem_limit, .max_item_size = 1024 * 1024, .nbuckets = 64, .nshards = 8,
        .policy = "lru", .now = fake_clock,
    };
    bc_cache_t *cache = NULL;
    fake_now = T0;
    assert_int_equal(bc_cache_create(&cfg, &cache), BC_OK);
    return cache;
}

static bc_status_t
put(bc_cache_t *cache, const char *key, const char *value, uint32_t exptime)
{
    size_t nkey = strlen(key), nval = strlen(value);
    bc_status_t st;
    bc_item_t *it = bc_item_alloc(cache, key, nkey, bc_hash_key(key, nkey), 0, exptime,
                                  (uint32_t)nval + 2, &st);
    if (it == NULL) return st;
    memcpy(bc_item_value(it), value, nval);
    memcpy(bc_item_value(it) + nval, "\r\n", 2);
    return bc_cache_store(cache, it, BC_STORE_SET, 0, NULL);
}

static bool
get(bc_cache_t *cache, const char *key)
{
    bc_item_t *it = bc_cache_get(cache, key, strlen(key), bc_hash_key(key, strlen(key)));
    bc_item_release(cache, it);
    return it != NULL;
}

static uint32_t
bucket_of(bc_cache_t *cache, const char *key)
{
    return bc_hash_key(key, strlen(key)) % bc_cache_nbuckets(cache);
}

typedef struct worker_arg {
    bc_cache_t *cache;
    int rounds;
    bool attach;
} worker_arg_t;

/* Each round: set "k<round % 8>", get it (hit), get a missing key, delete
 * nothing-there (no count), delete the key (counted). */
static void *
worker(void *p)
{
    worker_arg_t *a = p;
    if (a->attach) assert_int_equal(bc_cache_count_thread(a->cache), BC_OK);
    char k[16];
    for (int i = 0; i < a->rounds; i++) {
        snprintf(k, sizeof(k), "k%d", i % 8);
        put(a->cache, k, "value", 0);
        (void)get(a->cache, k);
        (void)get(a->cache, "missing");
        (void)bc_cache_delete(a->cache, "nothing", 7, bc_hash_key("nothing", 7));
        (void)bc_cache_delete(a->cache, k, strlen(k), bc_hash_key(k, strlen(k)));
    }
    if (a->attach) bc_cache_count_thread_end(a->cache);
    return NULL;
}

static void
totals(bc_cache_t *cache, bc_bucket_stats_t *sum)
{
    uint32_t n = bc_cache_nbuckets(cache);
    bc_bucket_stats_t *all = calloc(n, sizeof(*all));
    assert_int_equal(bc_cache_bucket_stats_all(cache, all, n), BC_OK);
    memset(sum, 0, sizeof(*sum));
    for (uint32_t b = 0; b < n; b++) {
        bc_bucket_stats_t one;
        assert_int_equal(bc_cache_bucket_stats(cache, b, &one), BC_OK);
        assert_memory_equal(&one, &all[b], sizeof(one));
        sum->ops.misses += all[b].ops.misses;
        sum->ops.hits += all[b].ops.hits;
        sum->ops.sets += all[b].ops.sets;
        sum->ops.deletes += all[b].ops.deletes;
        sum->ops.bytes_read += all[b].ops.bytes_read;
        sum->ops.bytes_written += all[b].ops.bytes_written;
        sum->evictions += all[b].evictions;
        sum->expirations += all[b].expirations;
    }
    free(all);
}

/* Four counting threads and one that did not attach: the fold is the sum
 * of the four, and the counts land in the keys' buckets. */
static void
test_fold_threads(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(8 << 20);
    enum { THREADS = 4, ROUNDS = 5000 };
    pthread_t th[THREADS + 1];
    worker_arg_t args[THREADS + 1];
    for (int i = 0; i <= THREADS; i++) {
        args[i] = (worker_arg_t){cache, ROUNDS, i < THREADS};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i <= THREADS; i++) pthread_join(th[i], NULL);
    bc_bucket_stats_t sum;
    totals(cache, &sum);
    /* Keys race between threads, so hits and deletes may fall short of a
     * round each; gets and sets cannot. */
    assert_int_equal(sum.ops.hits + sum.ops.misses, 2ull * THREADS * ROUNDS);
    assert_int_equal(sum.ops.sets, (uint64_t)THREADS * ROUNDS);
    assert_true(sum.ops.hits <= (uint64_t)THREADS * ROUNDS && sum.ops.hits > 0);
    assert_true(sum.ops.deletes <= (uint64_t)THREADS * ROUNDS && sum.ops.deletes > 0);
    assert_int_equal(sum.ops.bytes_read, (uint64_t)THREADS * ROUNDS * (2 + 5));
    assert_int_equal(sum.ops.bytes_written, sum.ops.hits * 5);
    bc_bucket_stats_t miss;
    assert_int_equal(bc_cache_bucket_stats(cache, bucket_of(cache, "missing"), &miss), BC_OK);
    assert_true(miss.ops.hits + miss.ops.misses >= (uint64_t)THREADS * ROUNDS);
    /* This (unattached) thread's requests count nothing. */
    (void)get(cache, "missing");
    bc_bucket_stats_t again;
    totals(cache, &again);
    assert_int_equal(again.ops.hits + again.ops.misses, sum.ops.hits + sum.ops.misses);
    bc_cache_destroy(cache);
}

/* Sums survive detach; a thread attaching later reuses a block and adds
 * to it, so nothing ever goes down. */
static void
test_sums_survive_detach(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(8 << 20);
    assert_int_equal(bc_cache_count_thread(cache), BC_OK);
    assert_int_equal(bc_cache_count_thread(cache), BC_OK);   /* idempotent */
    put(cache, "a", "xyz", 0);
    assert_true(get(cache, "a"));
    bc_cache_count_thread_end(cache);
    (void)get(cache, "a");                                     /* not counted */
    bc_bucket_stats_t b;
    assert_int_equal(bc_cache_bucket_stats(cache, bucket_of(cache, "a"), &b), BC_OK);
    assert_int_equal(b.ops.misses, 0);
    assert_int_equal(b.ops.hits, 1);
    assert_int_equal(b.ops.sets, 1);
    assert_int_equal(b.ops.bytes_read, 4);
    assert_int_equal(b.ops.bytes_written, 3);
    assert_int_equal(b.items, 1);
    assert_int_equal(bc_cache_count_thread(cache), BC_OK);
    assert_true(get(cache, "a"));
    bc_cache_count_thread_end(cache);
    assert_int_equal(bc_cache_bucket_stats(cache, bucket_of(cache, "a"), &b), BC_OK);
    assert_int_equal(b.ops.hits, 2);
    /* A dropped bucket keeps its counters. */
    assert_int_equal(bc_cache_bucket_drop(cache, bucket_of(cache, "a")), 1);
    assert_int_equal(bc_cache_bucket_stats(cache, bucket_of(cache, "a"), &b), BC_OK);
    assert_int_equal(b.items, 0);
    assert_int_equal(b.ops.hits, 2);
    bc_cache_destroy(cache);
}

/* Expired items are counted in their bucket when removed; evictions in
 * the victim's bucket. */
static void
test_expirations_and_evictions(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(8 << 20);
    assert_int_equal(put(cache, "short", "v", T0 + 5), BC_OK);
    fake_now = T0 + 10;
    assert_false(get(cache, "short"));
    bc_bucket_stats_t b;
    assert_int_equal(bc_cache_bucket_stats(cache, bucket_of(cache, "short"), &b), BC_OK);
    assert_int_equal(b.expirations, 1);
    bc_cache_destroy(cache);

    cache = make_cache(1 << 20);
    char k[32], v[2000];
    memset(v, 'v', sizeof(v) - 1);
    v[sizeof(v) - 1] = '\0';
    for (int i = 0; i < 2000; i++) {
        snprintf(k, sizeof(k), "e%d", i);
        assert_int_equal(put(cache, k, v, 0), BC_OK);
    }
    bc_cache_stats_t cs;
    bc_cache_get_stats(cache, &cs);
    bc_bucket_stats_t sum;
    totals(cache, &sum);
    assert_true(cs.evictions > 0);
    assert_int_equal(sum.evictions, cs.evictions);
    assert_int_equal(sum.expirations, 0);
    bc_cache_destroy(cache);
}

static int samples;
static char last_key[64];
static uint32_t last_bucket;

static void
count_sample(void *ctx, uint32_t bucket, const char *key, size_t nkey)
{
    (void)ctx;
    samples++;
    last_bucket = bucket;
    memcpy(last_key, key, nkey < sizeof(last_key) - 1 ? nkey : sizeof(last_key) - 1);
    last_key[nkey < sizeof(last_key) - 1 ? nkey : sizeof(last_key) - 1] = '\0';
}

/* About one request in N reaches the sampler, with its key and bucket. */
static void
test_sampler_rate(void **state)
{
    (void)state;
    bc_cache_t *cache = make_cache(8 << 20);
    samples = 0;
    bc_cache_set_sampler(cache, count_sample, NULL, 10);
    assert_int_equal(bc_cache_count_thread(cache), BC_OK);
    for (int i = 0; i < 100000; i++) (void)get(cache, "sampled-key");
    bc_cache_count_thread_end(cache);
    assert_true(samples > 9000 && samples < 11000);
    assert_string_equal(last_key, "sampled-key");
    assert_int_equal(last_bucket, bucket_of(cache, "sampled-key"));
    bc_cache_destroy(cache);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold_threads),
        cmocka_unit_test(test_sums_survive_detach),
        cmocka_unit_test(test_expirations_and_evictions),
        cmocka_unit_test(test_sampler_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
