/*
 * cache_counters.c -- the per-bucket counters' and the hot-key sampling's
 * cost on the engine path alone: one thread runs the node's mix (90% get,
 * 10% set, 100-byte values, 100k keys over 1024 buckets) against the
 * cache, in batches of 10000 operations that alternate between counting
 * (attached, the sampler on, as a data-port worker) and not counting.
 * Each batch is timed in the thread's CPU time (time the thread was
 * descheduled on a busy machine does not count), and the result is the
 * median of the per-pair ratios and the difference in ns per operation.
 * Being in-process and single-threaded it resolves the couple of percent
 * a node benchmark on a shared machine cannot
 * (tests/bench/bucket_counters.sh measures the whole node).
 *
 * usage: bench_cache_counters [PAIRS] [--no-sampling]      (default 300)
 *   --no-sampling: the counters alone, without the hot-key sampler
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_hash.h"
#include "engine/cache.h"
#include "engine/hotkeys.h"

#define KEYS 100000u
#define VALUE 100u

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char keys[KEYS][24];
static size_t klen[KEYS];
static uint32_t khash[KEYS];

static void
put(bc_cache_t *c, uint32_t i)
{
    bc_status_t st;
    bc_item_t *it = bc_item_alloc(c, keys[i], klen[i], khash[i], 0, 0, VALUE + 2, &st);
    if (it == NULL) return;
    memset(bc_item_value(it), 'v', VALUE);
    memcpy(bc_item_value(it) + VALUE, "\r\n", 2);
    (void)bc_cache_store(c, it, BC_STORE_SET, 0, NULL);
}

#define BATCH 10000

/* CPU seconds of one batch of the mix. */
static double
batch_secs(bc_cache_t *c, uint64_t *rng)
{
    double t0 = now_s();
    for (int k = 0; k < BATCH; k++) {
        uint64_t x = *rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *rng = x;
        uint32_t i = (uint32_t)(x % KEYS);
        if ((x >> 32) % 10 == 0) {
            put(c, i);
        } else {
            bc_item_t *it = bc_cache_get(c, keys[i], klen[i], khash[i]);
            bc_item_release(c, it);
        }
    }
    return now_s() - t0;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
    int pairs = argc > 1 ? atoi(argv[1]) : 300;
    if (pairs < 2 || pairs > 100000) {
        fprintf(stderr, "usage: bench_cache_counters [PAIRS 2..100000]\n");
        return 2;
    }
    bc_cache_config_t cfg = {.mem_limit = 256u << 20, .nbuckets = 1024, .policy = "lru"};
    bc_cache_t *c;
    if (bc_cache_create(&cfg, &c) != BC_OK) return 1;
    bc_hotkeys_t *hk = bc_hotkeys_create(BC_HOTKEYS_DEFAULT_CAPACITY, BC_HOTKEYS_DEFAULT_EVERY,
                                         BC_HOTKEYS_DEFAULT_HALF_LIFE_S);
    bool sample = !(argc > 2 && strcmp(argv[2], "--no-sampling") == 0);
    if (sample) bc_cache_set_sampler(c, bc_hotkeys_sampler, hk, BC_HOTKEYS_DEFAULT_EVERY);
    for (uint32_t i = 0; i < KEYS; i++) {
        klen[i] = (size_t)snprintf(keys[i], sizeof(keys[i]), "key:%08u", i);
        khash[i] = bc_hash_key(keys[i], klen[i]);
        put(c, i);
    }
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (int w = 0; w < 20; w++) (void)batch_secs(c, &rng);   /* warm up */
    double *ratio = calloc((size_t)pairs, sizeof(*ratio)), on_sum = 0, off_sum = 0;
    for (int r = 0; r < pairs; r++) {
        double on, off;
        if (r % 2 == 0) {
            off = batch_secs(c, &rng);
            bc_cache_count_thread(c);
            on = batch_secs(c, &rng);
            bc_cache_count_thread_end(c);
        } else {
            bc_cache_count_thread(c);
            on = batch_secs(c, &rng);
            bc_cache_count_thread_end(c);
            off = batch_secs(c, &rng);
        }
        ratio[r] = off / on;      /* throughput on / off */
        on_sum += on;
        off_sum += off;
    }
    qsort(ratio, (size_t)pairs, sizeof(*ratio), cmp_double);
    double med = pairs % 2 ? ratio[pairs / 2] : (ratio[pairs / 2 - 1] + ratio[pairs / 2]) / 2;
    double n = (double)pairs * BATCH;
    printf("%d pairs of %d-operation batches (90%% get, 10%% set, %u keys, %u-byte values), "
           "thread CPU time, hot-key sampling %s\n", pairs, BATCH, KEYS, VALUE,
           sample ? "on (1 in 16)" : "off");
    printf("counters off: %.1f ns/op (%.0f ops/s)\ncounters on:  %.1f ns/op (%.0f ops/s)\n",
           1e9 * off_sum / n, n / off_sum, 1e9 * on_sum / n, n / on_sum);
    printf("RESULT on_off_throughput_median=%.4f cost_ns_per_op=%.2f\n", med,
           1e9 * (on_sum - off_sum) / n);
    free(ratio);
    bc_cache_destroy(c);
    bc_hotkeys_destroy(hk);
    return 0;
}
