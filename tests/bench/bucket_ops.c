/*
 * bucket_ops.c -- how long the engine takes to iterate a bucket for export
 * and to drop it, in process (no network).
 *
 * WHAT IT DOES
 *   Builds a cache of NBUCKETS buckets (default 4) and fills it evenly
 *   until the bucket under test holds BUCKET_MB (default 64) MiB of items,
 *   so its items are interleaved in memory with the other buckets' (as on
 *   a node: a bucket is never stored alone).  Then, per round:
 *
 *     iterate  bc_cache_bucket_scan in 64 KiB steps, every item encoded as
 *              an ITEM frame (bc_item_frame_batch_add), the buffer emptied
 *              after each step: what a migration export does, minus the
 *              socket
 *     drop     bc_cache_bucket_drop of the bucket
 *
 *   on a cache built afresh for each round.  Prints one line per value
 *   size with the median over the rounds:
 *
 *     RESULT value=100 items=... mib=64.0 iterate_ms=... iterate_mib_s=... drop_ms=...
 *
 *   It uses only the engine API that every version of the node has, so the
 *   same source measures an older build beside a newer one.
 *
 * usage: bench_bucket_ops [-m BUCKET_MB] [-b NBUCKETS] [-r ROUNDS] [-v VALUE[,VALUE..]]
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_frame.h"
#include "bc_hash.h"
#include "engine/cache.h"
#include "engine/item_frame.h"

#define STEP_BYTES (64u * 1024u)
#define MAX_ROUNDS 32
#define MAX_SIZES  8

static double
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct scan_ctx {
    bc_item_frame_batch_t frames;
    bc_frame_buf_t *buf;
} scan_ctx_t;

static bool
scan_item(const bc_item_t *it, void *arg)
{
    scan_ctx_t *s = arg;
    if (!bc_item_frame_batch_add(it, &s->frames)) return false;
    return s->buf->len < STEP_BYTES;
}

/* Stores keys "k:<n>" of `bucket` until its stats say `bytes`; returns
 * the next n.  Keys of the other buckets are stored alongside, one each
 * per key of the bucket, so the bucket's items are interleaved. */
static uint64_t
fill(bc_cache_t *cache, uint32_t nbuckets, uint32_t bucket, uint64_t bytes, uint32_t value,
     uint64_t n, char *val)
{
    char key[32];
    uint64_t stored = 0;
    for (;; n++) {
        int nkey = snprintf(key, sizeof(key), "k:%" PRIu64, n);
        uint32_t hash = bc_hash_key(key, (size_t)nkey);
        bc_status_t st;
        bc_item_t *it = bc_item_alloc(cache, key, (size_t)nkey, hash, 0, 0, value + 2, &st);
        if (it == NULL) {
            fprintf(stderr, "bucket_ops: alloc failed (%s)\n", bc_status_str(st));
            exit(1);
        }
        memcpy(bc_item_value(it), val, value);
        memcpy(bc_item_value(it) + value, "\r\n", 2);
        if (bc_cache_store(cache, it, BC_STORE_SET, 0, NULL) != BC_OK) continue;
        if (bc_hash_bucket(hash, nbuckets) != bucket) continue;
        if (++stored % 256 == 0) {
            bc_bucket_stats_t bs;
            (void)bc_cache_bucket_stats(cache, bucket, &bs);
            if (bs.bytes >= bytes) return n + 1;
        }
    }
}

int
main(int argc, char **argv)
{
    uint32_t bucket_mb = 64, nbuckets = 4, rounds = 5;
    uint32_t sizes[MAX_SIZES] = {100, 4000};
    int nsizes = 2, opt;
    while ((opt = getopt(argc, argv, "m:b:r:v:")) != -1) {
        switch (opt) {
        case 'm': bucket_mb = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'b': nbuckets = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'r': rounds = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'v': {
            nsizes = 0;
            for (char *p = optarg; *p != '\0' && nsizes < MAX_SIZES;) {
                sizes[nsizes++] = (uint32_t)strtoul(p, &p, 10);
                if (*p == ',') p++;
            }
            break;
        }
        default:
            fprintf(stderr, "usage: %s [-m BUCKET_MB] [-b NBUCKETS] [-r ROUNDS] [-v V[,V..]]\n",
                    argv[0]);
            return 2;
        }
    }
    if (rounds < 1 || rounds > MAX_ROUNDS || nbuckets < 2 || bucket_mb < 1) {
        fprintf(stderr, "bucket_ops: bad arguments\n");
        return 2;
    }
    for (int si = 0; si < nsizes; si++) {
        uint32_t value = sizes[si];
        uint64_t bytes = (uint64_t)bucket_mb << 20;
        /* room for every bucket at that size, plus a quarter: nothing is
         * evicted while the cache fills */
        bc_cache_config_t cfg = {
            .mem_limit = (size_t)(bytes * nbuckets / 4 * 5 + (64u << 20)),
            .nbuckets = nbuckets,
        };
        char *val = malloc(value);
        memset(val, 'v', value);
        double it_ms[MAX_ROUNDS], drop_ms[MAX_ROUNDS];
        uint64_t items = 0, frame_bytes = 0;
        bc_frame_buf_t buf = {0};
        for (uint32_t r = 0; r < rounds; r++) {
            bc_cache_t *cache;
            if (bc_cache_create(&cfg, &cache) != BC_OK) {
                fprintf(stderr, "bucket_ops: cannot create a %zu MiB cache\n",
                        cfg.mem_limit >> 20);
                return 1;
            }
            (void)fill(cache, nbuckets, 0, bytes, value, 0, val);
            bc_bucket_stats_t bs;
            (void)bc_cache_bucket_stats(cache, 0, &bs);
            items = bs.items;

            scan_ctx_t s = {.frames = {.buf = &buf, .now = bc_cache_now(cache), .st = BC_OK},
                            .buf = &buf};
            uint32_t cursor = 0;
            frame_bytes = 0;
            double t0 = now_ms();
            do {
                buf.len = 0;
                if (bc_cache_bucket_scan(cache, 0, &cursor, scan_item, &s) != BC_OK ||
                    s.frames.st != BC_OK) {
                    fprintf(stderr, "bucket_ops: scan failed\n");
                    return 1;
                }
                frame_bytes += buf.len;
            } while (cursor != 0);
            it_ms[r] = now_ms() - t0;
            if (s.frames.items != items) {
                fprintf(stderr, "bucket_ops: the scan saw %" PRIu64 " of %" PRIu64 " items\n",
                        s.frames.items, items);
            }
            t0 = now_ms();
            uint64_t dropped = bc_cache_bucket_drop(cache, 0);
            drop_ms[r] = now_ms() - t0;
            if (dropped != items) {
                fprintf(stderr, "bucket_ops: dropped %" PRIu64 " of %" PRIu64 " items\n",
                        dropped, items);
            }
            bc_cache_destroy(cache);
        }
        qsort(it_ms, rounds, sizeof(double), cmp_double);
        qsort(drop_ms, rounds, sizeof(double), cmp_double);
        double mib = (double)frame_bytes / (1 << 20);
        printf("RESULT value=%" PRIu32 " items=%" PRIu64 " mib=%.1f iterate_ms=%.1f "
               "iterate_mib_s=%.0f drop_ms=%.2f\n",
               value, items, mib, it_ms[rounds / 2], mib / (it_ms[rounds / 2] / 1e3),
               drop_ms[rounds / 2]);
        fflush(stdout);
        bc_frame_buf_free(&buf);
        free(val);
    }
    return 0;
}
