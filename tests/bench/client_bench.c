/*
 * client_bench.c -- libbucketcache against a raw connection to the same
 * node, in the same run, and the single-flight check.
 *
 *   bench_client_bench --zk HOSTS --cluster NAME --port NODE_PORT
 *       [--threads 4] [--round-secs 2] [--rounds 6] [--keys 10000]
 *       [--value-size 100] [--get-ratio 0.9] [--flight-threads 32]
 *       [--side both|raw|library]     (one side only: for profiling)
 *
 * The cluster must route every bucket to the node on NODE_PORT (one group),
 * so both sides talk to the same server.  Rounds alternate (raw, library,
 * raw, library, ...), each running T threads of closed-loop requests
 * (get-ratio gets, the rest sets, uniform random keys) for round-secs:
 *
 *   raw      each thread has its own blocking TCP connection (opened once,
 *            kept across rounds, as the library keeps its pool) and writes
 *            "get k\r\n" / "set k 0 0 n\r\n..." itself, reading the reply
 *            with a minimal parser: the floor any client can reach.
 *   library  the same requests through bc_client_get / bc_client_set on
 *            one shared bc_client_t (hashing, routing snapshot, pool).
 *
 * Reported: ops/s and p50/p99/p999 latency per side, and the median of the
 * per-pair ratios library/raw (adjacent rounds, so drift on a shared
 * machine cancels out).  Then single-flight: for each of 5 fresh keys,
 * --flight-threads threads call bc_client_get_or_load at once with a
 * loader that takes 50 ms; the loader must run exactly once per key.
 * Figures, not pass/fail (the exit status is non-zero only if the
 * single-flight count is wrong or a side saw errors).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bucketcache.h"
#include "../../common/bc_time.h"

static struct {
    const char *zk, *cluster;
    int port, threads, rounds, keys, value_size, flight_threads;
    int side;                   /* 0 both (paired), 1 raw only, 2 library only */
    double round_secs, get_ratio;
    bc_client_t *client;
    int raw_fd[256];            /* one connection per raw thread, kept across rounds */
} cfg = {.threads = 4, .rounds = 6, .keys = 10000, .value_size = 100, .flight_threads = 32,
         .round_secs = 2.0, .get_ratio = 0.9};

static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

typedef struct worker {
    int id;
    int raw;
    uint64_t deadline;
    uint64_t ops, errors;
    uint64_t *lat;              /* ns per op */
    size_t nlat, caplat;
} worker_t;

/* ---- raw side ---- */

static int
raw_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("connect");
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Reads until buf ends with `end` (a whole reply); returns bytes read. */
static ssize_t
raw_read_until(int fd, char *buf, size_t cap, const char *end)
{
    size_t n = 0, elen = strlen(end);
    for (;;) {
        ssize_t r = recv(fd, buf + n, cap - n, 0);
        if (r <= 0) return -1;
        n += (size_t)r;
        if (n >= elen && memcmp(buf + n - elen, end, elen) == 0) return (ssize_t)n;
        if (n == cap) return -1;
    }
}

static void
record(worker_t *w, uint64_t t0)
{
    uint64_t d = bc_time_mono_ns() - t0;
    if (w->nlat == w->caplat) {
        w->caplat = w->caplat ? w->caplat * 2 : 65536;
        w->lat = realloc(w->lat, w->caplat * sizeof(*w->lat));
    }
    w->lat[w->nlat++] = d;
    w->ops++;
}

static void *
worker_main(void *arg)
{
    worker_t *w = arg;
    uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(w->id + 1) + bc_time_mono_ns();
    char key[32], req[512], reply[4096], *value = malloc((size_t)cfg.value_size + 1);
    memset(value, 'v', (size_t)cfg.value_size);
    int fd = w->raw ? cfg.raw_fd[w->id] : -1;
    while (bc_time_mono_ns() < w->deadline) {
        int klen = snprintf(key, sizeof(key), "bench:%d", (int)(rnd(&seed) % (uint64_t)cfg.keys));
        bool get = (double)(rnd(&seed) % 1000) < cfg.get_ratio * 1000;
        uint64_t t0 = bc_time_mono_ns();
        if (w->raw) {
            if (get) {
                int n = snprintf(req, sizeof(req), "get %s\r\n", key);
                if (send(fd, req, (size_t)n, 0) != n || raw_read_until(fd, reply, sizeof(reply), "END\r\n") < 0) {
                    w->errors++;
                    break;
                }
            } else {
                int n = snprintf(req, sizeof(req), "set %s 0 0 %d\r\n", key, cfg.value_size);
                memcpy(req + n, value, (size_t)cfg.value_size);
                memcpy(req + n + cfg.value_size, "\r\n", 2);
                n += cfg.value_size + 2;
                if (send(fd, req, (size_t)n, 0) != n ||
                    raw_read_until(fd, reply, sizeof(reply), "STORED\r\n") < 0) {
                    w->errors++;
                    break;
                }
            }
        } else if (get) {
            void *v;
            size_t vlen;
            int rc = bc_client_get(cfg.client, key, (size_t)klen, 1000, &v, &vlen, NULL);
            if (rc == BC_CLIENT_OK) bc_client_free(v);
            else if (rc != BC_CLIENT_ENOTFOUND) w->errors++;
        } else {
            int rc = bc_client_set(cfg.client, key, (size_t)klen, value, (size_t)cfg.value_size, 0, 0, 1000);
            if (rc != BC_CLIENT_OK) w->errors++;
        }
        record(w, t0);
    }
    free(value);
    return NULL;
}

typedef struct result {
    double ops_per_s;
    uint64_t p50, p99, p999, errors;
} result_t;

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static result_t
run_round(int raw)
{
    pthread_t th[256];
    worker_t w[256];
    uint64_t start = bc_time_mono_ns(), deadline = start + (uint64_t)(cfg.round_secs * 1e9);
    for (int i = 0; i < cfg.threads; i++) {
        w[i] = (worker_t){.id = i, .raw = raw, .deadline = deadline};
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    uint64_t ops = 0, errors = 0;
    size_t n = 0;
    for (int i = 0; i < cfg.threads; i++) {
        pthread_join(th[i], NULL);
        ops += w[i].ops;
        errors += w[i].errors;
        n += w[i].nlat;
    }
    double secs = (double)(bc_time_mono_ns() - start) / 1e9;
    uint64_t *all = malloc((n ? n : 1) * sizeof(*all));
    size_t k = 0;
    for (int i = 0; i < cfg.threads; i++) {
        memcpy(all + k, w[i].lat, w[i].nlat * sizeof(*all));
        k += w[i].nlat;
        free(w[i].lat);
    }
    qsort(all, n, sizeof(*all), cmp_u64);
    result_t r = {.ops_per_s = (double)ops / secs, .errors = errors};
    if (n > 0) {
        r.p50 = all[n / 2];
        r.p99 = all[(size_t)((double)n * 0.99)];
        r.p999 = all[(size_t)((double)n * 0.999)];
    }
    free(all);
    return r;
}

/* ---- single-flight ---- */

static atomic_int loader_calls;

static int
slow_loader(void *ctx, const void *key, size_t klen, bc_client_loaded_t *out)
{
    (void)ctx;
    atomic_fetch_add(&loader_calls, 1);
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
    out->value = malloc(klen + 1);
    memcpy(out->value, key, klen);
    out->vlen = klen;
    return BC_CLIENT_OK;
}

typedef struct flight_arg {
    const char *key;
    pthread_barrier_t *barrier;
    int rc;
} flight_arg_t;

static void *
flight_main(void *argp)
{
    flight_arg_t *a = argp;
    pthread_barrier_wait(a->barrier);
    void *v;
    size_t vlen;
    a->rc = bc_client_get_or_load(cfg.client, a->key, strlen(a->key), slow_loader, NULL, 5000, &v,
                                  &vlen, NULL);
    if (a->rc == BC_CLIENT_OK) bc_client_free(v);
    return NULL;
}

static int
single_flight(void)
{
    int bad = 0;
    char key[64];
    snprintf(key, sizeof(key), "flight:%llu", (unsigned long long)bc_time_mono_ns());
    printf("\nsingle-flight: %d threads miss one key at once, loader takes 50 ms\n", cfg.flight_threads);
    for (int round = 0; round < 5; round++) {
        char k[80];
        snprintf(k, sizeof(k), "%s:%d", key, round);
        atomic_store(&loader_calls, 0);
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, (unsigned)cfg.flight_threads);
        pthread_t th[256];
        flight_arg_t args[256];
        uint64_t t0 = bc_time_mono_ns();
        for (int i = 0; i < cfg.flight_threads; i++) {
            args[i] = (flight_arg_t){.key = k, .barrier = &barrier};
            pthread_create(&th[i], NULL, flight_main, &args[i]);
        }
        int ok = 0;
        for (int i = 0; i < cfg.flight_threads; i++) {
            pthread_join(th[i], NULL);
            ok += args[i].rc == BC_CLIENT_OK;
        }
        pthread_barrier_destroy(&barrier);
        int calls = atomic_load(&loader_calls);
        printf("  key %d: loader calls %d, callers served %d/%d, %.1f ms\n", round, calls, ok,
               cfg.flight_threads, (double)(bc_time_mono_ns() - t0) / 1e6);
        if (calls != 1 || ok != cfg.flight_threads) bad = 1;
    }
    return bad;
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
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (strcmp(a, "--zk") == 0) cfg.zk = v;
        else if (strcmp(a, "--cluster") == 0) cfg.cluster = v;
        else if (strcmp(a, "--port") == 0) cfg.port = atoi(v);
        else if (strcmp(a, "--threads") == 0) cfg.threads = atoi(v);
        else if (strcmp(a, "--rounds") == 0) cfg.rounds = atoi(v);
        else if (strcmp(a, "--round-secs") == 0) cfg.round_secs = atof(v);
        else if (strcmp(a, "--keys") == 0) cfg.keys = atoi(v);
        else if (strcmp(a, "--value-size") == 0) cfg.value_size = atoi(v);
        else if (strcmp(a, "--get-ratio") == 0) cfg.get_ratio = atof(v);
        else if (strcmp(a, "--flight-threads") == 0) cfg.flight_threads = atoi(v);
        else if (strcmp(a, "--side") == 0) cfg.side = strcmp(v, "raw") == 0 ? 1 : strcmp(v, "library") == 0 ? 2 : 0;
        else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
    }
    if (cfg.zk == NULL || cfg.cluster == NULL || cfg.port <= 0 || cfg.threads < 1 ||
        cfg.threads > 256 || cfg.flight_threads < 1 || cfg.flight_threads > 256 ||
        cfg.value_size < 1 || cfg.value_size > 3000 || cfg.rounds < 1 || cfg.rounds > 256 ||
        cfg.keys < 1) {
        fprintf(stderr, "usage: bench_client_bench --zk HOSTS --cluster NAME --port NODE_PORT [...]\n");
        return 2;
    }
    bc_client_options_t o;
    bc_client_options_init(&o);
    o.zk_hosts = cfg.zk;
    o.cluster = cfg.cluster;
    o.max_conns_per_node = cfg.threads > cfg.flight_threads ? cfg.threads : cfg.flight_threads;
    int rc = bc_client_create(&o, &cfg.client);
    if (rc != BC_CLIENT_OK) {
        fprintf(stderr, "bc_client_create: %s\n", bc_strerror(rc));
        return 1;
    }
    /* preload so gets mostly hit */
    char key[32], *value = malloc((size_t)cfg.value_size);
    memset(value, 'v', (size_t)cfg.value_size);
    for (int i = 0; i < cfg.keys; i++) {
        int klen = snprintf(key, sizeof(key), "bench:%d", i);
        bc_client_set(cfg.client, key, (size_t)klen, value, (size_t)cfg.value_size, 0, 0, 2000);
    }
    free(value);

    for (int i = 0; i < cfg.threads; i++) cfg.raw_fd[i] = raw_connect();
    printf("%d threads, %.1f s rounds x %d pairs, %d keys, %d-byte values, %.0f%% gets\n",
           cfg.threads, cfg.round_secs, cfg.rounds, cfg.keys, cfg.value_size, cfg.get_ratio * 100);
    printf("%-6s %-8s %12s %10s %10s %10s\n", "pair", "side", "ops/s", "p50 us", "p99 us", "p999 us");
    double ratios[256], raw_sum = 0, lib_sum = 0, p50[2][256], p99[2][256];
    uint64_t errors = 0;
    int pairs = cfg.rounds > 256 ? 256 : cfg.rounds;
    for (int p = 0; p < pairs; p++) {
        result_t r[2];
        /* alternate which side goes first */
        int first = p % 2;
        memset(r, 0, sizeof(r));
        if (cfg.side != 2 - first) r[first] = run_round(first == 0);
        if (cfg.side != 1 + first) r[1 - first] = run_round(first != 0);
        /* r[0] raw, r[1] library */
        for (int s = 0; s < 2; s++) {
            printf("%-6d %-8s %12.0f %10.1f %10.1f %10.1f\n", p + 1, s == 0 ? "raw" : "library",
                   r[s].ops_per_s, r[s].p50 / 1e3, r[s].p99 / 1e3, r[s].p999 / 1e3);
            errors += r[s].errors;
            p50[s][p] = r[s].p50 / 1e3;
            p99[s][p] = r[s].p99 / 1e3;
        }
        ratios[p] = r[0].ops_per_s > 0 ? r[1].ops_per_s / r[0].ops_per_s : 0;
        raw_sum += r[0].ops_per_s;
        lib_sum += r[1].ops_per_s;
    }
    qsort(ratios, (size_t)pairs, sizeof(ratios[0]), cmp_double);
    double median = pairs % 2 ? ratios[pairs / 2] : (ratios[pairs / 2 - 1] + ratios[pairs / 2]) / 2;
    printf("\nthroughput library/raw: median of pairs %.3f (min %.3f, max %.3f); means %.0f vs %.0f ops/s\n",
           median, ratios[0], ratios[pairs - 1], lib_sum / pairs, raw_sum / pairs);
    for (int side = 0; side < 2; side++) {
        qsort(p50[side], (size_t)pairs, sizeof(double), cmp_double);
        qsort(p99[side], (size_t)pairs, sizeof(double), cmp_double);
    }
    printf("latency, median over rounds: p50 raw %.1f us, library %.1f us; "
           "p99 raw %.1f us, library %.1f us\n",
           p50[0][pairs / 2], p50[1][pairs / 2], p99[0][pairs / 2], p99[1][pairs / 2]);
    if (errors) printf("errors: %llu\n", (unsigned long long)errors);

    for (int i = 0; i < cfg.threads; i++) close(cfg.raw_fd[i]);
    int bad = single_flight();
    bc_client_stats_t st;
    bc_client_get_stats(cfg.client, &st);
    printf("client stats: ops %llu, retries %llu, refusals %llu, connects %llu, loads %llu, "
           "load_shared %llu\n",
           (unsigned long long)st.ops, (unsigned long long)st.retries, (unsigned long long)st.refusals,
           (unsigned long long)st.connects, (unsigned long long)st.loads,
           (unsigned long long)st.load_shared);
    bc_client_destroy(cfg.client);
    return bad || errors ? 1 : 0;
}
