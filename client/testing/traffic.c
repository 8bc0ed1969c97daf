/*
 * traffic.c -- bucketcache_client_traffic, a load driver for the
 * integration tests: it runs threads of set-then-read traffic through
 * libbucketcache while a test kills nodes, changes tables or stops
 * ZooKeeper, and checks every value it reads.
 *
 *   bucketcache_client_traffic --zk HOSTS --cluster NAME [--threads 4]
 *       [--keys 100] [--duration SECS] [--timeout MS] [--report-ms 500]
 *       [--mget-every N] [--value-size N]
 *
 * Each thread owns its keys ("t<thread>-<i>"), so it knows what each key
 * must hold: the value of its last acknowledged set, or -- after a set
 * whose outcome is unknown (timed out, connection lost) -- that one or the
 * previous one.  A read may miss (a group went down, its data is gone),
 * but a value other than those is counted as WRONG: the one thing a
 * correct client and cluster never produce.  Every --mget-every rounds a
 * thread also multi-gets 16 of its keys and checks them the same way.
 *
 * Prints one JSON line of cumulative counters every --report-ms (with a
 * histogram of how long successful sets took, retries included) and a last
 * one with "final":true; exits 0 when no wrong value was seen.  SIGTERM or
 * SIGINT end the run early (still with the final line).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bucketcache.h"
#include "../../common/bc_time.h"

#define NCODES 16

/* Upper bounds (ms) of the set-latency histogram; the last bin is above. */
static const unsigned set_ms_le[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};
#define NSETBINS (sizeof(set_ms_le) / sizeof(set_ms_le[0]) + 1)

typedef struct counters {
    atomic_uint_fast64_t sets, set_ok, gets, get_ok, get_miss, wrong, mget_keys;
    atomic_uint_fast64_t codes[NCODES];     /* errors by -code */
    /* How long each successful set took, retries included: a write held by
     * a migrating (read-only) bucket shows up here as a slow one. */
    atomic_uint_fast64_t set_ms[NSETBINS];
    atomic_uint_fast64_t set_ms_max;
} counters_t;

typedef struct key_state {
    uint64_t cur;                 /* acknowledged version, 0 = never set */
    uint64_t maybe;               /* version of a set with unknown outcome, 0 none */
} key_state_t;

static struct {
    bc_client_t *client;
    int threads, keys, timeout_ms, mget_every, value_size;
    double duration;
    counters_t c;
    atomic_int stop;
} g;

static void
on_signal(int sig)
{
    (void)sig;
    atomic_store(&g.stop, 1);
}

static void
count_error(int code)
{
    int i = -code;
    if (i < 0 || i >= NCODES) i = 0;
    atomic_fetch_add(&g.c.codes[i], 1);
}

static void
count_set_latency(uint64_t us)
{
    uint64_t ms = us / 1000;
    size_t bin = 0;
    while (bin < NSETBINS - 1 && ms >= set_ms_le[bin]) bin++;
    atomic_fetch_add(&g.c.set_ms[bin], 1);
    uint_fast64_t max = atomic_load(&g.c.set_ms_max);
    while (ms > max && !atomic_compare_exchange_weak(&g.c.set_ms_max, &max, ms)) {
    }
}

static size_t
make_value(char *buf, size_t cap, int t, int k, uint64_t version)
{
    int n = snprintf(buf, cap, "t%d-%d:v%" PRIu64 ":", t, k, version);
    size_t len = (size_t)n;
    while (len < (size_t)g.value_size && len < cap - 1) {
        buf[len] = (char)('a' + (len + version) % 26);
        len++;
    }
    buf[len] = '\0';
    return len;
}

/* Checks a value read for key k; returns 1 when acceptable. */
static int
value_ok(const key_state_t *ks, int t, int k, const char *v, size_t vlen)
{
    char want[4096];
    uint64_t versions[2] = {ks->cur, ks->maybe};
    for (int i = 0; i < 2; i++) {
        if (versions[i] == 0) continue;
        size_t n = make_value(want, sizeof(want), t, k, versions[i]);
        if (n == vlen && memcmp(want, v, n) == 0) return 1;
    }
    return 0;
}

static void
report_wrong(int t, int k, const key_state_t *ks, const char *v, size_t vlen)
{
    fprintf(stderr, "WRONG value for t%d-%d (acknowledged v%" PRIu64 ", maybe v%" PRIu64 "): %.*s\n",
            t, k, ks->cur, ks->maybe, (int)(vlen > 80 ? 80 : vlen), v);
    atomic_fetch_add(&g.c.wrong, 1);
}

static void *
worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    key_state_t *ks = calloc((size_t)g.keys, sizeof(*ks));
    char key[64], value[4096];
    uint64_t version = 0;
    for (uint64_t round = 0; !atomic_load(&g.stop); round++) {
        int k = (int)(round % (uint64_t)g.keys);
        size_t klen = (size_t)snprintf(key, sizeof(key), "t%d-%d", t, k);
        version++;
        size_t vlen = make_value(value, sizeof(value), t, k, version);
        atomic_fetch_add(&g.c.sets, 1);
        int64_t t0 = bc_time_mono_us();
        int rc = bc_client_set(g.client, key, klen, value, vlen, 0, 0, g.timeout_ms);
        if (rc == BC_CLIENT_OK) {
            atomic_fetch_add(&g.c.set_ok, 1);
            count_set_latency((uint64_t)(bc_time_mono_us() - t0));
            ks[k].cur = version;
            ks[k].maybe = 0;
        } else {
            count_error(rc);
            /* A set that timed out or lost its connection may have landed. */
            if (rc == BC_CLIENT_ETIMEOUT || rc == BC_CLIENT_EINDOUBT) ks[k].maybe = version;
        }

        void *got;
        size_t glen;
        atomic_fetch_add(&g.c.gets, 1);
        rc = bc_client_get(g.client, key, klen, g.timeout_ms, &got, &glen, NULL);
        if (rc == BC_CLIENT_OK) {
            if (value_ok(&ks[k], t, k, got, glen)) atomic_fetch_add(&g.c.get_ok, 1);
            else report_wrong(t, k, &ks[k], got, glen);
            bc_client_free(got);
        } else if (rc == BC_CLIENT_ENOTFOUND) {
            atomic_fetch_add(&g.c.get_miss, 1);
        } else {
            count_error(rc);
        }

        if (g.mget_every > 0 && round % (uint64_t)g.mget_every == 0) {
            enum { N = 16 };
            char kbuf[N][64];
            const void *keys[N];
            size_t klens[N];
            int which[N];
            bc_client_item_t items[N];
            int n = g.keys < N ? g.keys : N;
            for (int i = 0; i < n; i++) {
                which[i] = (int)((round / 3 + (uint64_t)i * 7) % (uint64_t)g.keys);
                klens[i] = (size_t)snprintf(kbuf[i], sizeof(kbuf[i]), "t%d-%d", t, which[i]);
                keys[i] = kbuf[i];
            }
            bc_client_mget(g.client, (size_t)n, keys, klens, g.timeout_ms, items);
            atomic_fetch_add(&g.c.mget_keys, (uint64_t)n);
            for (int i = 0; i < n; i++) {
                if (items[i].status == BC_CLIENT_OK) {
                    if (!value_ok(&ks[which[i]], t, which[i], items[i].value, items[i].vlen)) {
                        report_wrong(t, which[i], &ks[which[i]], items[i].value, items[i].vlen);
                    }
                } else if (items[i].status != BC_CLIENT_ENOTFOUND) {
                    count_error(items[i].status);
                }
            }
            bc_client_items_free(items, (size_t)n);
        }
    }
    free(ks);
    return NULL;
}

static void
print_report(double elapsed, int final)
{
    bc_client_stats_t st;
    bc_client_get_stats(g.client, &st);
    printf("{\"t\":%.2f,\"sets\":%" PRIuFAST64 ",\"set_ok\":%" PRIuFAST64 ",\"gets\":%" PRIuFAST64
           ",\"get_ok\":%" PRIuFAST64 ",\"get_miss\":%" PRIuFAST64 ",\"wrong\":%" PRIuFAST64
           ",\"mget_keys\":%" PRIuFAST64 ",\"errors\":{",
           elapsed, atomic_load(&g.c.sets), atomic_load(&g.c.set_ok), atomic_load(&g.c.gets),
           atomic_load(&g.c.get_ok), atomic_load(&g.c.get_miss), atomic_load(&g.c.wrong),
           atomic_load(&g.c.mget_keys));
    int first = 1;
    for (int i = 1; i < NCODES; i++) {
        uint64_t n = atomic_load(&g.c.codes[i]);
        if (n == 0) continue;
        printf("%s\"%s\":%" PRIu64, first ? "" : ",", bc_strerror(-i), n);
        first = 0;
    }
    /* set_ms: [bound, count] pairs, counts of sets that took under bound
     * ms (and at least the previous bound); bound 0 = the rest */
    printf("},\"set_ms\":[");
    for (size_t i = 0; i < NSETBINS; i++) {
        printf("%s[%u,%" PRIuFAST64 "]", i ? "," : "", i < NSETBINS - 1 ? set_ms_le[i] : 0,
               atomic_load(&g.c.set_ms[i]));
    }
    printf("],\"set_ms_max\":%" PRIuFAST64, atomic_load(&g.c.set_ms_max));
    printf(",\"retries\":%" PRIu64 ",\"refusals\":%" PRIu64 ",\"refreshes\":%" PRIu64
           ",\"table_updates\":%" PRIu64 ",\"table_errors\":%" PRIu64 ",\"epoch\":%" PRIu64
           ",\"zk\":%u,\"conn_drops\":%" PRIu64 "%s}\n",
           st.retries, st.refusals, st.refreshes, st.table_updates, st.table_errors, st.table_epoch,
           st.zk_connected, st.conn_drops, final ? ",\"final\":true" : "");
    fflush(stdout);
}

int
main(int argc, char **argv)
{
    bc_client_options_t opts;
    bc_client_options_init(&opts);
    g.threads = 4;
    g.keys = 100;
    g.duration = 10;
    g.timeout_ms = 2000;
    g.mget_every = 10;
    g.value_size = 32;
    int report_ms = 500;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (strcmp(a, "--zk") == 0) opts.zk_hosts = v;
        else if (strcmp(a, "--cluster") == 0) opts.cluster = v;
        else if (strcmp(a, "--threads") == 0) g.threads = atoi(v);
        else if (strcmp(a, "--keys") == 0) g.keys = atoi(v);
        else if (strcmp(a, "--duration") == 0) g.duration = atof(v);
        else if (strcmp(a, "--timeout") == 0) g.timeout_ms = atoi(v);
        else if (strcmp(a, "--report-ms") == 0) report_ms = atoi(v);
        else if (strcmp(a, "--mget-every") == 0) g.mget_every = atoi(v);
        else if (strcmp(a, "--value-size") == 0) g.value_size = atoi(v);
        else if (strcmp(a, "--session-timeout") == 0) opts.zk_session_timeout_ms = atoi(v);
        else {
            fprintf(stderr, "traffic: unknown option %s\n", a);
            return 2;
        }
    }
    if (g.threads < 1 || g.keys < 1 || g.value_size < 0 || g.value_size > 4000 || report_ms < 10) {
        fprintf(stderr, "traffic: bad arguments\n");
        return 2;
    }
    opts.timeout_ms = g.timeout_ms;
    bc_client_set_log(NULL, NULL, BC_CLIENT_LOG_INFO);
    int rc = bc_client_create(&opts, &g.client);
    if (rc != BC_CLIENT_OK) {
        fprintf(stderr, "traffic: cannot create the client: %s\n", bc_strerror(rc));
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    pthread_t *th = calloc((size_t)g.threads, sizeof(*th));
    for (int i = 0; i < g.threads; i++) pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);
    double start = bc_time_mono_s(), next = start + report_ms / 1000.0;
    while (!atomic_load(&g.stop) && bc_time_mono_s() - start < g.duration) {
        usleep(10000);
        if (bc_time_mono_s() >= next) {
            print_report(bc_time_mono_s() - start, 0);
            next += report_ms / 1000.0;
        }
    }
    atomic_store(&g.stop, 1);
    for (int i = 0; i < g.threads; i++) pthread_join(th[i], NULL);
    free(th);
    print_report(bc_time_mono_s() - start, 1);
    bc_client_destroy(g.client);
    return atomic_load(&g.c.wrong) == 0 ? 0 : 1;
}
