/*
 * test_client_flight.c -- single-flight and read-through: many threads
 * missing one key cause exactly one load; waiters get their own copies;
 * a waiter's deadline holds; sequential calls start new flights; the
 * loader's "not found" is negative-cached for its TTL; loader failures
 * and a loaded value being stored in the cluster.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "bc_time.h"
#include "client.h"
#include "client_int.h"
#include "registry.h"
#include "test_client_fake.h"

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- bc__flight directly ---- */

/* Polls cond(arg) every millisecond for at most 10 s. */
static void
wait_until(bool (*cond)(void *), void *arg)
{
    for (int i = 0; i < 10000 && !cond(arg); i++) sleep_ms(1);
}

typedef struct slow_work {
    atomic_int calls;
    int delay_ms;
    int status;
    /* The work lasts until `callers` callers share the flight of f, and
     * until `returned` callers have come back (0: no such wait): on a
     * loaded machine a thread released with the others may run only
     * after a fixed-length work is over, and start a flight of its own. */
    bc__flight_t *f;
    int callers;
    int returned;
    atomic_int returned_now;
} slow_work_t;

static bool
all_joined(void *arg)
{
    slow_work_t *w = arg;
    return bc__flight_callers(w->f) >= (size_t)w->callers;
}

static bool
all_returned(void *arg)
{
    slow_work_t *w = arg;
    return atomic_load(&w->returned_now) >= w->returned;
}

static void
slow_fn(void *arg, bc__flight_result_t *res)
{
    slow_work_t *w = arg;
    atomic_fetch_add(&w->calls, 1);
    if (w->callers > 0) wait_until(all_joined, w);
    if (w->returned > 0) wait_until(all_returned, w);
    sleep_ms(w->delay_ms);
    res->status = w->status;
    if (w->status == 0) {
        res->value = strdup("the value");
        res->vlen = 9;
        res->flags = 5;
    }
}

typedef struct flight_thread {
    bc__flight_t *f;
    slow_work_t *work;
    uint64_t deadline_ns;
    bc__flight_result_t res;
    bool shared;
    pthread_barrier_t *start;
} flight_thread_t;

static void *
flight_caller(void *arg)
{
    flight_thread_t *t = arg;
    pthread_barrier_wait(t->start);
    bc__flight_do(t->f, 77, "hot", 3, t->deadline_ns, slow_fn, t->work, -5, -4, &t->res, &t->shared);
    atomic_fetch_add(&t->work->returned_now, 1);
    return NULL;
}

static void
run_flight(bc__flight_t *f, slow_work_t *w, int n, uint64_t deadline_ns, flight_thread_t *t)
{
    pthread_t th[64];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        t[i] = (flight_thread_t){.f = f, .work = w, .deadline_ns = deadline_ns, .start = &start};
        pthread_create(&th[i], NULL, flight_caller, &t[i]);
    }
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
}

static void
test_flight_one_call(void **state)
{
    (void)state;
    bc__flight_t *f = bc__flight_new();
    slow_work_t w = {.delay_ms = 100, .status = 0, .f = f, .callers = 32};
    flight_thread_t t[32];
    run_flight(f, &w, 32, bc_time_mono_ns() + 5000000000ull, t);
    assert_int_equal(atomic_load(&w.calls), 1);
    int shared = 0;
    for (int i = 0; i < 32; i++) {
        assert_int_equal(t[i].res.status, 0);
        assert_int_equal(t[i].res.vlen, 9);
        assert_string_equal(t[i].res.value, "the value");
        assert_int_equal(t[i].res.flags, 5);
        for (int j = 0; j < i; j++) assert_ptr_not_equal(t[i].res.value, t[j].res.value);
        shared += t[i].shared;
        free(t[i].res.value);
    }
    assert_int_equal(shared, 31);
    assert_int_equal(bc__flight_active(f), 0);
    /* a later call is a new flight */
    w.callers = 1;
    run_flight(f, &w, 1, bc_time_mono_ns() + 5000000000ull, t);
    assert_int_equal(atomic_load(&w.calls), 2);
    free(t[0].res.value);
    bc__flight_free(f);
}

static void
test_flight_waiter_deadline(void **state)
{
    (void)state;
    bc__flight_t *f = bc__flight_new();
    slow_work_t w = {.delay_ms = 300, .status = 0, .returned = 7};
    flight_thread_t t[8];
    /* every caller's deadline is 50 ms: the leader finishes its work
     * anyway (once the 7 others are back), the waiters give up */
    uint64_t t0 = bc_time_mono_ns();
    run_flight(f, &w, 8, t0 + 50000000ull, t);
    int timeouts = 0, ok = 0;
    for (int i = 0; i < 8; i++) {
        if (t[i].res.status == -5) {
            timeouts++;
            assert_null(t[i].res.value);
        } else {
            ok++;
        }
        free(t[i].res.value);
    }
    assert_int_equal(atomic_load(&w.calls), 1);
    assert_int_equal(ok, 1);
    assert_int_equal(timeouts, 7);
    /* errors are shared too, without a value */
    slow_work_t fail = {.delay_ms = 50, .status = -15, .f = f, .callers = 4};
    run_flight(f, &fail, 4, bc_time_mono_ns() + 5000000000ull, t);
    assert_int_equal(atomic_load(&fail.calls), 1);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(t[i].res.status, -15);
        assert_null(t[i].res.value);
    }
    bc__flight_free(f);
}

/* ---- get_or_load through a detached client and a fake node ---- */

typedef struct origin {
    atomic_int calls;
    int delay_ms;
    int mode;      /* 0 value, 1 not found, 2 failure */
    bc__flight_t *f;   /* when set: the load lasts until `callers` share it */
    int callers;
} origin_t;

static bool
origin_all_joined(void *arg)
{
    origin_t *o = arg;
    return bc__flight_callers(o->f) >= (size_t)o->callers;
}

static int
origin_load(void *ctx, const void *key, size_t klen, bc_client_loaded_t *out)
{
    origin_t *o = ctx;
    atomic_fetch_add(&o->calls, 1);
    if (o->f != NULL) wait_until(origin_all_joined, o);
    sleep_ms(o->delay_ms);
    if (o->mode == 1) return BC_CLIENT_ENOTFOUND;
    if (o->mode == 2) {
        out->value = strdup("leaked unless freed");
        return -42;
    }
    char *v = malloc(klen + 8);
    memcpy(v, "loaded:", 7);
    memcpy(v + 7, key, klen);
    out->value = v;
    out->vlen = klen + 7;
    out->flags = 9;
    out->exptime = 60;
    return BC_CLIENT_OK;
}

typedef struct gol_thread {
    bc_client_t *c;
    origin_t *o;
    int rc;
    char value[64];
    pthread_barrier_t *start;
} gol_thread_t;

static void *
gol_caller(void *arg)
{
    gol_thread_t *t = arg;
    pthread_barrier_wait(t->start);
    void *v;
    size_t vlen;
    t->rc = bc_client_get_or_load(t->c, "user:1", 6, origin_load, t->o, 5000, &v, &vlen, NULL);
    if (t->rc == BC_CLIENT_OK) {
        snprintf(t->value, sizeof(t->value), "%.*s", (int)vlen, (char *)v);
        bc_client_free(v);
    }
    return NULL;
}

static bc_client_t *
client_on(fake_t *f, const bc_client_options_t *o)
{
    bc_client_t *c;
    assert_int_equal(bc__client_new_detached(o, 4, &c), BC_OK);
    uint32_t owner[4] = {1, 1, 1, 1}, gid = 1;
    const char *addr = f->addr;
    assert_int_equal(bc__registry_install(c, 1, owner, NULL, 1, &gid, &addr), BC_OK);
    return c;
}

static void
test_get_or_load_single_flight(void **state)
{
    (void)state;
    fake_t *f = fake_start(NULL, NULL);
    bc_client_t *c = client_on(f, NULL);
    enum { T = 16 };
    origin_t o = {.delay_ms = 150, .f = c->flight, .callers = T};
    gol_thread_t t[T];
    pthread_t th[T];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, T);
    for (int i = 0; i < T; i++) {
        t[i] = (gol_thread_t){.c = c, .o = &o, .start = &start};
        pthread_create(&th[i], NULL, gol_caller, &t[i]);
    }
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    assert_int_equal(atomic_load(&o.calls), 1);
    for (int i = 0; i < T; i++) {
        assert_int_equal(t[i].rc, BC_CLIENT_OK);
        assert_string_equal(t[i].value, "loaded:user:1");
    }
    /* the value was stored in the cluster: the next call is a hit */
    assert_true(fake_has(f, "user:1"));
    void *v;
    size_t vlen;
    uint32_t flags;
    assert_int_equal(bc_client_get_or_load(c, "user:1", 6, origin_load, &o, 1000, &v, &vlen, &flags),
                     BC_CLIENT_OK);
    assert_int_equal(flags, 9);
    bc_client_free(v);
    assert_int_equal(atomic_load(&o.calls), 1);
    bc_client_stats_t st;
    bc_client_get_stats(c, &st);
    assert_int_equal(st.loads, 1);
    assert_int_equal(st.load_shared, T - 1);
    assert_int_equal(st.gets, T + 1);
    bc_client_destroy(c);
    fake_stop(f);
}

static void
test_negative_cache_and_failures(void **state)
{
    (void)state;
    fake_t *f = fake_start(NULL, NULL);
    bc_client_options_t opts;
    bc_client_options_init(&opts);
    /* long enough for five calls on a loaded machine under TSan */
    opts.negative_ttl_ms = 2000;
    bc_client_t *c = client_on(f, &opts);
    origin_t o = {.mode = 1};
    void *v;
    size_t vlen;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(bc_client_get_or_load(c, "ghost", 5, origin_load, &o, 1000, &v, &vlen, NULL),
                         BC_CLIENT_ENOTFOUND);
        assert_null(v);
    }
    assert_int_equal(atomic_load(&o.calls), 1);
    bc_client_stats_t st;
    bc_client_get_stats(c, &st);
    assert_int_equal(st.negative_hits, 4);
    /* another process stores the key: the cluster is still asked first */
    fake_put(f, "ghost", "boo", 3, 0);
    assert_int_equal(bc_client_get_or_load(c, "ghost", 5, origin_load, &o, 1000, &v, &vlen, NULL),
                     BC_CLIENT_OK);
    bc_client_free(v);
    /* after the TTL the loader is asked again */
    assert_int_equal(bc_client_get_or_load(c, "ghost2", 6, origin_load, &o, 1000, &v, &vlen, NULL),
                     BC_CLIENT_ENOTFOUND);
    assert_int_equal(atomic_load(&o.calls), 2);
    sleep_ms(2100);
    assert_int_equal(bc_client_get_or_load(c, "ghost2", 6, origin_load, &o, 1000, &v, &vlen, NULL),
                     BC_CLIENT_ENOTFOUND);
    assert_int_equal(atomic_load(&o.calls), 3);

    /* a failing loader: an error, nothing cached, its buffer freed */
    o.mode = 2;
    assert_int_equal(bc_client_get_or_load(c, "bad", 3, origin_load, &o, 1000, &v, &vlen, NULL),
                     BC_CLIENT_ELOADER);
    assert_int_equal(bc_client_get_or_load(c, "bad", 3, origin_load, &o, 1000, &v, &vlen, NULL),
                     BC_CLIENT_ELOADER);
    assert_int_equal(atomic_load(&o.calls), 5);
    assert_false(fake_has(f, "bad"));
    bc_client_get_stats(c, &st);
    assert_int_equal(st.load_errors, 2);
    assert_int_equal(bc_client_get_or_load(c, "k", 1, NULL, &o, 1000, &v, &vlen, NULL),
                     BC_CLIENT_EINVAL);
    bc_client_destroy(c);
    fake_stop(f);
}

static void
test_load_when_owner_down(void **state)
{
    (void)state;
    fake_t *f = fake_start(NULL, NULL);
    bc_client_t *c = client_on(f, NULL);
    uint32_t owner[4] = {0, 0, 0, 0}, gid = 1;
    const char *addr = f->addr;
    assert_int_equal(bc__registry_install(c, 2, owner, NULL, 1, &gid, &addr), BC_OK);
    origin_t o = {.mode = 0};
    void *v;
    size_t vlen;
    /* the bucket has no owner: the value is loaded (and not stored) */
    assert_int_equal(bc_client_get_or_load(c, "k", 1, origin_load, &o, 1000, &v, &vlen, NULL),
                     BC_CLIENT_OK);
    assert_int_equal(vlen, 8);
    bc_client_free(v);
    assert_int_equal(atomic_load(&f->requests), 0);
    bc_client_destroy(c);
    fake_stop(f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flight_one_call),
        cmocka_unit_test(test_flight_waiter_deadline),
        cmocka_unit_test(test_get_or_load_single_flight),
        cmocka_unit_test(test_negative_cache_and_failures),
        cmocka_unit_test(test_load_when_owner_down),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
