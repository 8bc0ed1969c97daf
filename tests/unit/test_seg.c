/*
 * test_seg.c -- unit tests of the engine's memory manager (node/engine/
 * seg.c, seen through node/engine/cache.h): segments filled, evicted,
 * freed and reused across item sizes; a bucket dropped while its items
 * are spread over segments; expiry in bulk; pinned items surviving reuse
 * pressure; large items in blocks of their own; a writer whose segment is
 * evicted while it fills its item.
 *
 * Every cache here has a fixed segment size (config.segment_size), so the
 * figures the tests reason about do not depend on the automatic choice.
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

#define T0 1700000000u
#define SEG (64u << 10)

static uint32_t fake_now = T0;

static uint32_t
fake_clock(void)
{
    return __atomic_load_n(&fake_now, __ATOMIC_RELAXED);
}

static bc_cache_t *
cache_new(size_t limit, uint32_t nbuckets, const char *policy)
{
    bc_cache_config_t cfg = {
        .mem_limit = limit, .max_item_size = 1u << 20, .nbuckets = nbuckets, .nshards = 16,
        .policy = policy, .now = fake_clock, .segment_size = SEG,
    };
    bc_cache_t *cache = NULL;
    fake_now = T0;
    assert_int_equal(bc_cache_create(&cfg, &cache), BC_OK);
    return cache;
}

static uint32_t
hkey(const char *key)
{
    return bc_hash_key(key, strlen(key));
}

/* Stores key = `len` bytes of the key's first letter; returns the status. */
static bc_status_t
put(bc_cache_t *cache, const char *key, uint32_t len, uint32_t exptime)
{
    bc_status_t st;
    bc_item_t *it = bc_item_alloc(cache, key, strlen(key), hkey(key), 0, exptime, len + 2, &st);
    if (it == NULL) return st;
    memset(bc_item_value(it), key[0], len);
    memcpy(bc_item_value(it) + len, "\r\n", 2);
    return bc_cache_store(cache, it, BC_STORE_SET, 0, NULL);
}

/* True when key holds `len` bytes of its first letter; false when missing
 * (a wrong value fails the test). */
static bool
holds(bc_cache_t *cache, const char *key, uint32_t len)
{
    bc_item_t *it = bc_cache_get(cache, key, strlen(key), hkey(key));
    if (it == NULL) return false;
    assert_int_equal(bc_item_value_len(it), len);
    const char *v = bc_item_value(it);
    for (uint32_t i = 0; i < len; i++) assert_int_equal(v[i], key[0]);
    assert_memory_equal(v + len, "\r\n", 2);
    bc_item_release(cache, it);
    return true;
}

static bc_cache_stats_t
stats(bc_cache_t *cache)
{
    bc_cache_stats_t st;
    bc_cache_get_stats(cache, &st);
    assert_true(st.mem_used <= st.mem_limit);
    return st;
}

/* Segments holding items (backed, not free). */
static uint64_t
segs_in_use(bc_cache_t *cache)
{
    bc_cache_stats_t st = stats(cache);
    return st.segments_backed - st.segments_free;
}

/* Fills a cache until it evicts: items are packed (a whole segment's
 * worth per segment), eviction goes a segment at a time, memory never
 * passes the limit, and what is left is what fits. */
static void
test_fill_and_evict(void **state)
{
    (void)state;
    bc_cache_t *cache = cache_new(4u << 20, 64, "fifo");
    bc_cache_stats_t st = stats(cache);
    uint64_t base = st.mem_used;
    char key[32];
    uint32_t i = 0;
    for (; stats(cache).evictions == 0; i++) {
        snprintf(key, sizeof(key), "a%06u", i);
        assert_int_equal(put(cache, key, 100, 0), BC_OK);
    }
    st = stats(cache);
    /* 24 + 7 + 102 bytes, rounded to 136: 481 a segment */
    uint32_t per_seg = SEG / 136;
    assert_true(st.curr_items >= (uint64_t)(st.segments_backed - 2) * per_seg);
    assert_true(st.segments_backed * SEG <= st.mem_limit - base);
    assert_int_equal(st.segments_evicted, 1);
    /* FIFO drops the whole oldest segment: its items, and only those */
    assert_true(st.evictions >= per_seg - 1 && st.evictions <= per_seg);
    assert_false(holds(cache, "a000000", 100));
    snprintf(key, sizeof(key), "a%06u", i - 1);
    assert_true(holds(cache, key, 100));
    for (uint32_t j = 0; j < 20000; j++, i++) {
        snprintf(key, sizeof(key), "a%06u", i);
        assert_int_equal(put(cache, key, 100, 0), BC_OK);
    }
    st = stats(cache);
    assert_true(st.segments_evicted > 30);
    assert_true(st.evictions >= (st.segments_evicted - 1) * (per_seg - 1));
    bc_cache_destroy(cache);
}

/* Small items, then large ones, then small, then large again: memory stays
 * under the limit at every step and each phase holds about as much as
 * the limit allows -- no size class keeps what another needs.  (FIFO, so
 * that the reads checking each phase do not make its items worth keeping
 * in the next.) */
static void
test_reuse_across_sizes(void **state)
{
    (void)state;
    const size_t limit = 8u << 20;
    bc_cache_t *cache = cache_new(limit, 64, "fifo");
    char key[32];
    const uint32_t sizes[] = {100, 6000, 100, 30000, 300, 6000};
    for (int phase = 0; phase < 6; phase++) {
        uint32_t len = sizes[phase];
        uint32_t n = (uint32_t)(limit * 2 / len);
        for (uint32_t i = 0; i < n; i++) {
            snprintf(key, sizeof(key), "%c%u-%u", 'a' + phase, phase, i);
            assert_int_equal(put(cache, key, len, 0), BC_OK);
            if (i % 256 == 0) (void)stats(cache);   /* asserts mem_used <= limit */
        }
        bc_cache_stats_t st = stats(cache);
        /* what is held is this phase's (the others were evicted), and it
         * fills most of the memory */
        uint64_t held = 0;
        for (uint32_t i = n - 1; i > n / 2; i--) {
            snprintf(key, sizeof(key), "%c%u-%u", 'a' + phase, phase, i);
            if (holds(cache, key, len)) held++;
        }
        assert_true(held * 10 >= st.curr_items * 9);
        assert_true(st.data_bytes * 10 >= (uint64_t)limit * 7);
        printf("phase %d: %u-byte values, %llu held, %.0f%% of the limit is data\n", phase,
               len, (unsigned long long)st.curr_items, 100.0 * st.data_bytes / limit);
    }
    bc_cache_destroy(cache);
}

/* A bucket's items are spread over segments shared with other buckets:
 * dropping it takes time in proportion to its items, leaves the others
 * whole, and compaction then gives its room back. */
static void
test_bucket_dropped_spread_over_segments(void **state)
{
    (void)state;
    bc_cache_t *cache = cache_new(32u << 20, 4, "s3fifo");
    uint64_t base = stats(cache).mem_used;
    char key[32];
    enum { N = 40000 };
    uint64_t in_bucket = 0;
    for (uint32_t i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "b%u", i);
        assert_int_equal(put(cache, key, 300, 0), BC_OK);
        if (bc_hash_bucket(hkey(key), 4) < 2) in_bucket++;
    }
    bc_cache_stats_t st = stats(cache);
    assert_int_equal(st.evictions, 0);
    uint64_t used = segs_in_use(cache);
    assert_true(used > 100);
    /* half the buckets go: every segment keeps about half its items */
    uint64_t dropped = bc_cache_bucket_drop(cache, 0) + bc_cache_bucket_drop(cache, 1);
    assert_int_equal(dropped, in_bucket);
    assert_true(segs_in_use(cache) > used - 3);
    for (uint32_t i = 0; i < N; i += 97) {
        snprintf(key, sizeof(key), "b%u", i);
        assert_true(holds(cache, key, 300) == (bc_hash_bucket(hkey(key), 4) >= 2));
    }
    /* compaction moves the survivors together and frees the rest */
    uint32_t compacted = 0, c;
    while ((c = bc_cache_compact(cache, 16)) > 0) compacted += c;
    st = stats(cache);
    printf("segments in use: %llu, after dropping half the buckets and compacting %u: %llu\n",
           (unsigned long long)used, compacted, (unsigned long long)segs_in_use(cache));
    assert_true(compacted >= used * 3 / 4);
    assert_true(segs_in_use(cache) <= used * 2 / 3);
    assert_int_equal(st.segments_compacted, compacted);
    assert_int_equal(st.evictions, 0);                 /* compaction evicts nothing */
    for (uint32_t i = 0; i < N; i += 7) {
        snprintf(key, sizeof(key), "b%u", i);
        assert_true(holds(cache, key, 300) == (bc_hash_bucket(hkey(key), 4) >= 2));
    }
    /* ... and the memory went back: free segments beyond two are released */
    assert_true(st.segments_free <= 2);
    assert_true(st.mem_used - base <= (segs_in_use(cache) + 2) * SEG + (1u << 20));
    /* the rest dropped: no segment in use */
    (void)bc_cache_bucket_drop(cache, 2);
    (void)bc_cache_bucket_drop(cache, 3);
    assert_int_equal(segs_in_use(cache), 0);
    bc_cache_destroy(cache);
}

/* Items that expire together come back together: the expiry scan unlinks
 * them and their segments are freed at once, with no eviction. */
static void
test_expiry_in_bulk(void **state)
{
    (void)state;
    bc_cache_t *cache = cache_new(16u << 20, 64, NULL);
    char key[32];
    for (uint32_t i = 0; i < 30000; i++) {
        snprintf(key, sizeof(key), "%c%u", i % 3 == 0 ? 'k' : 't', i);
        assert_int_equal(put(cache, key, 200, i % 3 == 0 ? 0 : T0 + 60), BC_OK);
    }
    uint64_t used = segs_in_use(cache);
    fake_now = T0 + 60;
    uint64_t removed = 0, r;
    while ((r = bc_cache_expire_scan(cache, 5000)) > 0) removed += r;
    assert_int_equal(removed, 20000);
    bc_cache_stats_t st = stats(cache);
    assert_int_equal(st.curr_items, 10000);
    assert_int_equal(st.evictions, 0);
    assert_int_equal(st.expired_active, 20000);
    /* a third of each segment lives on: compaction frees the rest */
    while (bc_cache_compact(cache, 16) > 0) {
    }
    assert_true(segs_in_use(cache) <= used / 3 + 2);
    for (uint32_t i = 0; i < 30000; i += 3) {
        snprintf(key, sizeof(key), "k%u", i);
        assert_true(holds(cache, key, 200));
    }
    /* the rest, all at once: segments with no live item are freed on the spot */
    fake_now = T0 + 120;
    bc_cache_flush(cache, 0);
    while (bc_cache_expire_scan(cache, 5000) > 0) {
    }
    assert_int_equal(segs_in_use(cache), 0);
    bc_cache_destroy(cache);
}

/*
 * Readers hold items of many segments while the cache turns over several
 * times: those segments are evicted but not reused until released (the
 * held bytes never change) -- up to an eighth of the memory; past that,
 * eviction passes pinned segments over, whose items then stay -- and
 * eviction goes on with the others.  When every segment is pinned an
 * allocation fails cleanly instead of overwriting one.
 */
static void
test_pinned_items_survive_reuse(void **state)
{
    (void)state;
    for (int p = 0; p < 4; p++) {
        const char *policy = (const char *[]){"s3fifo", "lru", "lfu", "fifo"}[p];
        bc_cache_t *cache = cache_new(2u << 20, 16, policy);
        enum { HELD = 8 };
        bc_item_t *held[HELD];
        char key[32];
        uint32_t n = 0;
        for (int h = 0; h < HELD; h++) {
            /* a segment's worth, then hold the last one */
            for (uint32_t i = 0; i < SEG / 1024; i++, n++) {
                snprintf(key, sizeof(key), "%c%u", 'a' + h, n);
                assert_int_equal(put(cache, key, 1000, 0), BC_OK);
            }
            held[h] = bc_cache_get(cache, key, strlen(key), hkey(key));
            assert_non_null(held[h]);
        }
        for (uint32_t i = 0; i < 20000; i++, n++) {
            snprintf(key, sizeof(key), "z%u", n);
            assert_int_equal(put(cache, key, 1000, 0), BC_OK);
        }
        bc_cache_stats_t st = stats(cache);
        assert_true(st.segments_evicted > 200);
        /* evicted and waiting for their readers: as many as 1/8 allows */
        assert_true(st.pinned_bytes >= 2 * SEG);
        assert_true(st.pinned_bytes <= (2u << 20) / 8);
        /* the others were passed over: their held items are still there */
        uint32_t still = 0;
        for (int h = 0; h < HELD; h++) {
            char k[32];
            snprintf(k, sizeof(k), "%.*s", (int)bc_item_nkey(held[h]), bc_item_key(held[h]));
            still += holds(cache, k, 1000);
        }
        assert_true(still >= HELD - (2u << 20) / 8 / SEG);
        for (int h = 0; h < HELD; h++) {
            const char *v = bc_item_value(held[h]);
            assert_int_equal(bc_item_value_len(held[h]), 1000);
            for (int i = 0; i < 1000; i++) assert_int_equal(v[i], 'a' + h);
            bc_item_release(cache, held[h]);
        }
        assert_int_equal(stats(cache).pinned_bytes, 0);

        /* pin (nearly) everything: allocation runs out, cleanly */
        bc_item_t *all[64];
        int nall = 0;
        bc_status_t st2 = BC_OK;
        for (uint32_t i = 0; nall < 64; i++, n++) {
            snprintf(key, sizeof(key), "y%u", n);
            st2 = put(cache, key, 1000, 0);
            if (st2 != BC_OK) break;
            if (i % (SEG / 1024) == 0) {
                all[nall] = bc_cache_get(cache, key, strlen(key), hkey(key));
                if (all[nall] != NULL) nall++;
            }
        }
        assert_int_equal(st2, BC_ENOMEM);
        for (int i = 0; i < nall; i++) bc_item_release(cache, all[i]);
        snprintf(key, sizeof(key), "after");
        assert_int_equal(put(cache, key, 1000, 0), BC_OK);
        assert_true(holds(cache, key, 1000));
        bc_cache_destroy(cache);
    }
}

/* Values of an eighth of a segment or more get a block of their own:
 * charged by their real size, freed on delete (or by the last reader),
 * evicted in their turn among the small ones. */
static void
test_large_items(void **state)
{
    (void)state;
    bc_cache_t *cache = cache_new(4u << 20, 16, "s3fifo");
    /* (the first large item allocates the table of their numbers) */
    assert_int_equal(put(cache, "L0", 100000, 0), BC_OK);
    assert_int_equal(bc_cache_delete(cache, "L0", 2, hkey("L0")), BC_OK);
    uint64_t base = stats(cache).mem_used;
    assert_int_equal(put(cache, "L1", 200000, 0), BC_OK);
    bc_cache_stats_t st = stats(cache);
    assert_int_equal(st.segments_backed, 0);            /* no segment for it */
    assert_true(st.mem_used >= base + 200000 && st.mem_used <= base + 200000 + 8192);
    assert_true(holds(cache, "L1", 200000));
    bc_bucket_stats_t bs;
    assert_int_equal(bc_cache_bucket_stats(cache, bc_hash_bucket(hkey("L1"), 16), &bs), BC_OK);
    assert_true(bs.bytes >= 200000);
    /* deleted: gone at once */
    assert_int_equal(bc_cache_delete(cache, "L1", 2, hkey("L1")), BC_OK);
    assert_int_equal(stats(cache).mem_used, base);
    /* deleted while read: kept for the reader, freed by the release */
    assert_int_equal(put(cache, "L2", 200000, 0), BC_OK);
    bc_item_t *it = bc_cache_get(cache, "L2", 2, hkey("L2"));
    assert_int_equal(put(cache, "L2", 10, 0), BC_OK);   /* replaced by a small one */
    assert_true(stats(cache).mem_used > base + 200000);
    assert_int_equal(bc_item_value(it)[199999], 'L');
    bc_item_release(cache, it);
    assert_true(stats(cache).mem_used < base + 100000);
    assert_true(holds(cache, "L2", 10));
    /* many: eviction takes them like any other, memory stays bounded */
    char key[32];
    for (uint32_t i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "M%u", i);
        assert_int_equal(put(cache, key, 100000 + i * 100, 0), BC_OK);
        snprintf(key, sizeof(key), "s%u", i);
        assert_int_equal(put(cache, key, 500, 0), BC_OK);
    }
    st = stats(cache);
    assert_true(st.evictions > 150);
    assert_true(holds(cache, "M199", 100000 + 199 * 100));
    /* an upload dropped before it is stored frees its block */
    uint64_t before = stats(cache).mem_used;
    bc_status_t s;
    it = bc_item_alloc(cache, "M999", 4, hkey("M999"), 0, 0, 300000, &s);
    assert_non_null(it);
    bc_item_release(cache, it);
    assert_true(stats(cache).mem_used <= before);
    bc_cache_destroy(cache);
}

/* A writer still filling its item when eviction takes the item's segment:
 * the store copies it elsewhere first, and it is stored whole. */
static void
test_writer_outlives_its_segment(void **state)
{
    (void)state;
    bc_cache_t *cache = cache_new(1u << 20, 16, "fifo");
    bc_status_t st;
    bc_item_t *slow = bc_item_alloc(cache, "slow", 4, hkey("slow"), 7, 0, 3000 + 2, &st);
    assert_non_null(slow);
    memset(bc_item_value(slow), 's', 1500);
    char key[32];
    for (uint32_t i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "f%u", i);
        assert_int_equal(put(cache, key, 1000, 0), BC_OK);
    }
    assert_true(stats(cache).segments_evicted > 30);   /* the slow one's segment too */
    memset(bc_item_value(slow) + 1500, 's', 1500);
    memcpy(bc_item_value(slow) + 3000, "\r\n", 2);
    assert_int_equal(bc_cache_store(cache, slow, BC_STORE_SET, 0, NULL), BC_OK);
    assert_true(holds(cache, "slow", 3000));
    bc_item_t *it = bc_cache_get(cache, "slow", 4, hkey("slow"));
    assert_int_equal(bc_item_flags(it), 7);
    bc_item_release(cache, it);
    bc_cache_destroy(cache);
}

/* Memory faulted in ahead of demand (bc_cache_prefault, for imports
 * without -L): backed and charged up to `ahead`, taken by the stores that
 * follow without backing more, never past what the budget can spare, and
 * given back when the cache needs the room. */
static void
test_prefault_ahead(void **state)
{
    (void)state;
    bc_cache_t *cache = cache_new(4u << 20, 64, "fifo");
    bc_cache_stats_t st0 = stats(cache);
    assert_int_equal(st0.segments_free, 0);

    /* four segments ahead: one per call, then nothing while they wait */
    for (int i = 0; i < 4; i++) assert_int_equal(bc_cache_prefault(cache, 4ull * SEG), SEG);
    assert_int_equal(bc_cache_prefault(cache, 4ull * SEG), 0);
    bc_cache_stats_t st = stats(cache);
    assert_int_equal(st.segments_free, 4);
    assert_int_equal(st.segments_backed, st0.segments_backed + 4);
    assert_int_equal(st.segments_prefaulted, 4);
    assert_int_equal(st.mem_used, st0.mem_used + 4ull * SEG);

    /* stores use them: about three segments of items back nothing more
     * (the open segment is the first of the four) */
    char key[32];
    for (uint32_t i = 0; i < 3 * (SEG / 136); i++) {
        snprintf(key, sizeof(key), "p%06u", i);
        assert_int_equal(put(cache, key, 100, 0), BC_OK);
    }
    st = stats(cache);
    assert_int_equal(st.segments_backed, st0.segments_backed + 4);
    assert_true(st.segments_free <= 1);

    /* never past the budget: asked for far more than fits, it stops with
     * the evictor's reserve and one more left, and the cache still fills
     * and evicts as before, memory within the limit */
    uint64_t n = 0;
    while (bc_cache_prefault(cache, 1ull << 30) > 0) n++;
    st = stats(cache);
    assert_true(n > 0);
    assert_true(st.mem_used + 2ull * SEG <= st.mem_limit);
    assert_true(st.mem_limit - st.mem_used < 3ull * SEG);
    for (uint32_t i = 0; i < 200000 && stats(cache).evictions == 0; i++) {
        snprintf(key, sizeof(key), "q%06u", i);
        assert_int_equal(put(cache, key, 100, 0), BC_OK);
    }
    st = stats(cache);
    assert_true(st.evictions > 0);
    assert_true(st.segments_free <= 2);
    bc_cache_destroy(cache);

    /* -L: everything is backed already, nothing to do */
    bc_cache_config_t cfg = {
        .mem_limit = 4u << 20, .max_item_size = 1u << 20, .nbuckets = 64, .nshards = 16,
        .policy = "fifo", .now = fake_clock, .segment_size = SEG, .prealloc = true,
    };
    assert_int_equal(bc_cache_create(&cfg, &cache), BC_OK);
    assert_int_equal(bc_cache_prefault(cache, 4ull * SEG), 0);
    bc_cache_destroy(cache);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fill_and_evict),
        cmocka_unit_test(test_reuse_across_sizes),
        cmocka_unit_test(test_bucket_dropped_spread_over_segments),
        cmocka_unit_test(test_expiry_in_bulk),
        cmocka_unit_test(test_pinned_items_survive_reuse),
        cmocka_unit_test(test_large_items),
        cmocka_unit_test(test_writer_outlives_its_segment),
        cmocka_unit_test(test_prefault_ahead),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
