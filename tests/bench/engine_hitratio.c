/*
 * engine_hitratio.c -- the storage engine's hit ratio in process, on the
 * streams tests/bench/hitratio.c replays over the network.
 *
 * WHAT IT DOES
 *   Builds a cache (node/engine/cache.h) the way the node does for -m MB,
 *   and replays a seeded Zipf stream as a look-aside client: get the key,
 *   set it on a miss.  With --one-time F a fraction F of the requests are
 *   one-hit wonders (keys never seen before or after).  Prints the hit
 *   ratio over the measured requests, that of the Zipf core alone, and the
 *   items held.  A run of 1.5M requests takes seconds, not minutes: this is
 *   the tool for tuning a policy; hitratio.sh gives the figures beside
 *   memcached.
 *
 *   The Zipf sampler and the key names are hitratio.c's ("hr:" + digits),
 *   so item sizes match; the streams are not bit-identical (hitratio.c
 *   draws through a window of requests).
 *
 * usage: bench_engine_hitratio [-m MB] [-v VALUE] [-k KEYS] [-z S] [-W WARMUP]
 *                              [-n REQUESTS] [-o ONE_TIME] [-p POLICY[,POLICY..]]
 *                              [-S SEGMENT_BYTES] [-s SEED]
 */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_hash.h"
#include "engine/cache.h"

static uint64_t
rng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

int
main(int argc, char **argv)
{
    uint64_t mb = 64, warmup = 500000, requests = 1000000, seed = 42;
    uint32_t value = 1000, keys = 566400, seg = 0;
    double s = 0.99, one_time = 0;
    char policies[256] = "s3fifo,lru,lfu,fifo";
    int opt;
    while ((opt = getopt(argc, argv, "m:v:k:z:W:n:o:p:S:s:")) != -1) {
        switch (opt) {
        case 'm': mb = strtoull(optarg, NULL, 10); break;
        case 'v': value = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'k': keys = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'z': s = strtod(optarg, NULL); break;
        case 'W': warmup = strtoull(optarg, NULL, 10); break;
        case 'n': requests = strtoull(optarg, NULL, 10); break;
        case 'o': one_time = strtod(optarg, NULL); break;
        case 'p': snprintf(policies, sizeof(policies), "%s", optarg); break;
        case 'S': seg = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        default:
            fprintf(stderr, "usage: %s [-m MB] [-v VALUE] [-k KEYS] [-z S] [-W WARMUP] "
                            "[-n REQUESTS] [-o ONE_TIME] [-p POLICIES] [-S SEGMENT] [-s SEED]\n",
                    argv[0]);
            return 2;
        }
    }
    if (keys < 2 || value < 1 || mb < 2 || one_time < 0 || one_time >= 1) {
        fprintf(stderr, "engine_hitratio: bad arguments\n");
        return 2;
    }
    double *cdf = malloc(keys * sizeof(*cdf));
    char *val = malloc(value);
    if (cdf == NULL || val == NULL) return 1;
    double sum = 0;
    for (uint32_t i = 0; i < keys; i++) cdf[i] = sum += 1.0 / pow((double)i + 1.0, s);
    memset(val, 'v', value);
    int digits = 1;
    for (uint32_t k = keys - 1; k >= 10; k /= 10) digits++;

    for (char *save = NULL, *policy = strtok_r(policies, ",", &save); policy != NULL;
         policy = strtok_r(NULL, ",", &save)) {
        bc_cache_config_t cfg = {
            .mem_limit = (size_t)(mb << 20), .policy = policy, .segment_size = seg,
        };
        bc_cache_t *cache;
        if (bc_cache_create(&cfg, &cache) != BC_OK) {
            fprintf(stderr, "engine_hitratio: cannot create a cache with policy %s\n", policy);
            return 1;
        }
        uint64_t z = seed * 0x9E3779B97F4A7C15ull + 7, mix = seed * 0x9E3779B97F4A7C15ull + 1;
        uint64_t limit = (uint64_t)(one_time * 0x1.0p53);
        uint32_t next_once = keys;
        uint64_t hits = 0, gets = 0, core_hits = 0, core_gets = 0;
        char key[64];
        for (uint64_t r = 0; r < warmup + requests; r++) {
            uint32_t k;
            if (limit > 0 && (rng_next(&mix) >> 11) < limit) {
                k = next_once++;
            } else {
                double u = (double)(rng_next(&z) >> 11) * 0x1.0p-53 * cdf[keys - 1];
                uint32_t lo = 0, hi = keys - 1;
                while (lo < hi) {
                    uint32_t mid = lo + (hi - lo) / 2;
                    if (cdf[mid] > u) hi = mid; else lo = mid + 1;
                }
                k = lo;
            }
            int nkey = snprintf(key, sizeof(key), "hr:%0*" PRIu32, digits, k);
            uint32_t hash = bc_hash_key(key, (size_t)nkey);
            bc_item_t *it = bc_cache_get(cache, key, (size_t)nkey, hash);
            bool hit = it != NULL;
            if (hit) {
                bc_item_release(cache, it);
            } else {
                bc_status_t st;
                it = bc_item_alloc(cache, key, (size_t)nkey, hash, 0, 0, value + 2, &st);
                if (it != NULL) {
                    memcpy(bc_item_value(it), val, value);
                    memcpy(bc_item_value(it) + value, "\r\n", 2);
                    (void)bc_cache_store(cache, it, BC_STORE_SET, 0, NULL);
                }
            }
            if (r < warmup) continue;
            gets++;
            hits += hit;
            if (k < keys) {
                core_gets++;
                core_hits += hit;
            }
        }
        bc_cache_stats_t st;
        bc_cache_get_stats(cache, &st);
        printf("RESULT policy=%s hit_ratio=%.4f core_hit_ratio=%.4f curr_items=%" PRIu64
               " evictions=%" PRIu64 " segment_size=%" PRIu64 " moved=%" PRIu64 "\n",
               policy, (double)hits / (double)gets, (double)core_hits / (double)core_gets,
               st.curr_items, st.evictions, st.segment_size, st.items_moved);
        fflush(stdout);
        bc_cache_destroy(cache);
    }
    free(cdf);
    free(val);
    return 0;
}
