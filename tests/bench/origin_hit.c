/*
 * origin_hit.c -- what read-through costs a hit, in CPU: the node's
 * command executor (node/proto/proto_text.c) run in-process on a real
 * cache, the same hits with and without an origin configured.
 *
 * WHY IN-PROCESS
 *   Over the network a get costs tens of microseconds and a shared machine
 *   moves throughput by 10-20% from one second to the next (see
 *   tests/bench/origin.py, part 2); the difference read-through could make
 *   on a hit -- the key's item is looked up before serving instead of while
 *   serving -- is far below that.  Here each get is bc_proto_process on a
 *   buffer of pipelined "get" lines, replies drained straight away, so the
 *   figure is the executor's own nanoseconds per get.
 *
 * HOW
 *   One cache, KEYS keys of 100 bytes preloaded.  Two connections on it:
 *   "plain" (no origin) and "origin" (an origin configured for every key
 *   and the connection's origin client set; the origin thread is never
 *   started: every get hits, nothing is fetched).  ROUNDS rounds, each
 *   running BATCHES batches of 64 single-key gets (and, separately, 64-key
 *   multi-gets) through one connection then the other, the order
 *   alternating per round, timed in this thread's CPU time.  Printed: the
 *   fastest and the median round's ns per key of each, the difference and
 *   the ratio of the fastest (the least disturbed by the machine's other
 *   work; BENCH_AA=1 gives both connections no origin, to see the noise).
 *
 * usage: bench_origin_hit [ROUNDS]          (default 31)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_hash.h"
#include "bc_time.h"
#include "engine/cache.h"
#include "origin/origin.h"
#include "proto/proto_text.h"

#define KEYS    10000u
#define VALUE   100u
#define BATCH   64u
#define BATCHES 2000u

static void
die(const char *what)
{
    fprintf(stderr, "bench_origin_hit: %s\n", what);
    exit(1);
}

static void
preload(bc_cache_t *cache)
{
    char key[32], value[VALUE];
    memset(value, 'v', sizeof(value));
    for (uint32_t i = 0; i < KEYS; i++) {
        bc_status_t st;
        int n = snprintf(key, sizeof(key), "img:%08" PRIu32, i);
        uint32_t h = bc_hash_key(key, (size_t)n);
        bc_item_t *it = bc_item_alloc(cache, key, (size_t)n, h, 0, 0, VALUE + 2, &st);
        if (it == NULL) die("preload: alloc");
        memcpy(bc_item_value(it), value, VALUE);
        memcpy(bc_item_value(it) + VALUE, "\r\n", 2);
        if (bc_cache_store(cache, it, BC_STORE_SET, 0, NULL) != BC_OK) die("preload: store");
    }
}

/* BATCHES buffers of gets: single keys, or one multi-get of BATCH keys. */
static char **
make_batches(bool multi, size_t **lens)
{
    char **bufs = calloc(BATCHES, sizeof(*bufs));
    *lens = calloc(BATCHES, sizeof(**lens));
    uint64_t x = 88172645463325252ull;
    for (uint32_t b = 0; b < BATCHES; b++) {
        char *buf = malloc(BATCH * 24 + 8), *p = buf;
        if (multi) p += sprintf(p, "get");
        for (uint32_t i = 0; i < BATCH; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            p += sprintf(p, multi ? " img:%08" PRIu64 : "get img:%08" PRIu64 "\r\n", x % KEYS);
        }
        if (multi) p += sprintf(p, "\r\n");
        bufs[b] = buf;
        (*lens)[b] = (size_t)(p - buf);
    }
    return bufs;
}

/* This thread's CPU time: a shared machine's other work (and this
 * process being scheduled out) does not count. */
static uint64_t
cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU ns per key for one pass over the batches. */
static double
run(bc_proto_conn_t *pc, bc_cache_t *cache, char **bufs, size_t *lens)
{
    uint64_t t0 = cpu_ns();
    for (uint32_t b = 0; b < BATCHES; b++) {
        size_t used = 0;
        if (bc_proto_process(pc, bufs[b], lens[b], SIZE_MAX, &used) != BC_OK || used != lens[b] ||
            pc->waiting) {
            die("a get did not complete at once (was it a miss?)");
        }
        bc_outq_consume(&pc->out, cache, bc_outq_pending(&pc->out));
    }
    return (double)(cpu_ns() - t0) / (BATCHES * BATCH);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void
noop_notify(void *arg)
{
    (void)arg;
}

int
main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 31;
    if (rounds < 1 || rounds > 1000) die("usage: bench_origin_hit [ROUNDS]");
    bc_cache_config_t cc = {.mem_limit = 64u << 20, .max_item_size = 1u << 20, .nbuckets = 1024};
    bc_cache_t *cache;
    if (bc_cache_create(&cc, &cache) != BC_OK) die("cache");
    preload(cache);

    bc_origin_config_t oc;
    bc_origin_config_defaults(&oc);
    snprintf(oc.url, sizeof(oc.url), "http://127.0.0.1:1/v1/{key}");
    bc_origin_t *origin;
    bc_origin_client_t *client;
    if (bc_origin_create(&oc, cache, &origin) != BC_OK) die("origin");
    if (bc_origin_client_create(origin, noop_notify, NULL, &client) != BC_OK) die("client");

    bc_proto_env_t env_plain, env_origin;
    bc_thread_stats_t stats;
    memset(&env_plain, 0, sizeof(env_plain));
    memset(&stats, 0, sizeof(stats));
    env_plain.cache = cache;
    env_origin = env_plain;
    env_origin.origin = origin;
    bc_proto_conn_t plain, reading;
    bc_proto_conn_init(&plain, &env_plain, &stats, 1);
    bc_proto_conn_init(&reading, &env_origin, &stats, 2);
    if (getenv("BENCH_AA") == NULL) bc_proto_conn_set_origin(&reading, client);
    else env_origin.origin = NULL;

    printf("| gets | CPU ns per key, no origin: fastest / median | with origin: fastest / median "
           "| difference (fastest) | ratio (fastest) |\n");
    printf("| --- | ---: | ---: | ---: | ---: |\n");
    for (int multi = 0; multi < 2; multi++) {
        size_t *lens;
        char **bufs = make_batches(multi, &lens);
        double *p = calloc((size_t)rounds, sizeof(double)), *o = calloc((size_t)rounds, sizeof(double));
        (void)run(&plain, cache, bufs, lens);          /* warm up both */
        (void)run(&reading, cache, bufs, lens);
        for (int r = 0; r < rounds; r++) {
            if (r % 2 == 0) {
                p[r] = run(&plain, cache, bufs, lens);
                o[r] = run(&reading, cache, bufs, lens);
            } else {
                o[r] = run(&reading, cache, bufs, lens);
                p[r] = run(&plain, cache, bufs, lens);
            }
        }
        double mp = median(p, rounds), mo = median(o, rounds);   /* sorts p and o */
        printf("| %s | %.0f / %.0f | %.0f / %.0f | %+.0f ns | %.3f |\n",
               multi ? "multi-get of 64 keys" : "single-key gets, 64 pipelined", p[0], mp, o[0],
               mo, o[0] - p[0], o[0] / p[0]);
        for (uint32_t b = 0; b < BATCHES; b++) free(bufs[b]);
        free(bufs);
        free(lens);
        free(p);
        free(o);
    }
    bc_origin_stats_t os;
    bc_origin_get_stats(origin, &os);
    printf("(origin requests: %" PRIu64 ", misses seen: %" PRIu64 ": every get was a hit)\n",
           os.requests, os.misses);

    bc_proto_conn_release(&plain);
    bc_proto_conn_release(&reading);
    bc_origin_client_destroy(client);
    bc_origin_destroy(origin);
    bc_cache_destroy(cache);
    return 0;
}
