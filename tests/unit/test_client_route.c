/*
 * test_client_route.c -- routing snapshots and their lock-free
 * publication: acquire/release/publish, that an old snapshot (and the
 * nodes only it names) is freed exactly when its last reader lets go,
 * readers racing a publisher, and a detached client routing each key to
 * its owner's node by the installed table.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "bc_hash.h"
#include "bc_time.h"
#include "client.h"
#include "client_int.h"
#include "registry.h"
#include "test_client_fake.h"

static bc__io_stats_t io;

static void
test_snapshot_nodes_and_same(void **state)
{
    (void)state;
    bc__pool_node_t *a = bc__pool_node_new("127.0.0.1:1", 2, 1024, &io, NULL);
    bc__pool_node_t *b = bc__pool_node_new("127.0.0.1:2", 2, 1024, &io, NULL);
    assert_non_null(a);
    bc__route_snapshot_t *s = bc__route_snapshot_new(8);
    assert_non_null(s);
    for (uint32_t i = 0; i < 8; i++) {
        s->owner[i] = 1 + i % 2;
        assert_int_equal(bc__route_snapshot_set_node(s, i, i % 2 ? b : a), BC_OK);
    }
    assert_int_equal(s->nnodes, 2);
    assert_int_equal(atomic_load(&a->refs), 2);   /* ours + the snapshot's (once) */
    bc__route_snapshot_t *copy = bc__route_snapshot_clone(s);
    assert_true(bc__route_snapshot_same(s, copy));
    assert_int_equal(atomic_load(&a->refs), 3);
    copy->readonly[3] = 1;
    assert_false(bc__route_snapshot_same(s, copy));
    copy->readonly[3] = 0;
    copy->epoch = 9;
    assert_false(bc__route_snapshot_same(s, copy));
    assert_false(bc__route_snapshot_same(s, NULL));
    bc__route_snapshot_discard(copy);
    bc__route_snapshot_discard(s);
    assert_int_equal(atomic_load(&a->refs), 1);
    char longaddr[400];
    memset(longaddr, 'a', sizeof(longaddr) - 1);
    longaddr[sizeof(longaddr) - 1] = '\0';
    assert_null(bc__pool_node_new(longaddr, 1, 1, &io, NULL));
    bc__pool_node_unref(a);
    bc__pool_node_unref(b);
}

static void
test_router_lifetime(void **state)
{
    (void)state;
    bc__router_t r;
    bc__route_init(&r);
    assert_null(bc__route_acquire(&r));

    bc__pool_node_t *n1 = bc__pool_node_new("127.0.0.1:1", 1, 1024, &io, NULL);
    bc__route_snapshot_t *s1 = bc__route_snapshot_new(4);
    s1->epoch = 1;
    bc__route_snapshot_set_node(s1, 0, n1);
    bc__route_publish(&r, s1);

    bc__route_snapshot_t *held = bc__route_acquire(&r);
    assert_ptr_equal(held, s1);
    bc__route_snapshot_t *again = bc__route_acquire(&r);
    assert_ptr_equal(again, s1);
    bc__route_release(again);

    bc__route_snapshot_t *s2 = bc__route_snapshot_new(4);
    s2->epoch = 2;
    bc__route_publish(&r, s2);
    /* s1 is still held: alive, and still names n1 */
    assert_int_equal(held->epoch, 1);
    assert_int_equal(atomic_load(&n1->refs), 2);
    bc__route_snapshot_t *cur = bc__route_acquire(&r);
    assert_int_equal(cur->epoch, 2);
    bc__route_release(cur);
    bc__route_release(held);   /* the last reference: s1 and its node ref go */
    assert_int_equal(atomic_load(&n1->refs), 1);
    assert_int_equal(atomic_load(&r.published), 2);

    /* maintenance only republishes when the counter runs high */
    bc__route_maintain(&r);
    assert_int_equal(atomic_load(&r.published), 2);
    atomic_fetch_add(&r.word, (UINT64_C(1) << 46) + 5);
    /* those fake acquisitions must be released before the copy's publish
     * can free s2; account for them as the publisher does */
    bc__route_snapshot_t *s2p = bc__route_acquire(&r);
    atomic_fetch_sub(&s2p->pending, (int_fast64_t)((UINT64_C(1) << 46) + 5));
    bc__route_maintain(&r);
    assert_int_equal(atomic_load(&r.published), 3);
    bc__route_release(s2p);
    cur = bc__route_acquire(&r);
    assert_int_equal(cur->epoch, 2);
    assert_ptr_not_equal(cur, s2p);
    bc__route_release(cur);

    bc__route_destroy(&r);
    assert_null(bc__route_acquire(&r));
    bc__pool_node_unref(n1);
}

typedef struct race {
    bc__router_t *r;
    atomic_int stop;
    atomic_long reads;
    atomic_int bad;
} race_t;

static void *
race_reader(void *arg)
{
    race_t *rc = arg;
    while (!atomic_load(&rc->stop)) {
        bc__route_snapshot_t *s = bc__route_acquire(rc->r);
        if (s == NULL) continue;
        /* every field of a snapshot says its own epoch */
        for (uint32_t b = 0; b < s->nbuckets; b++) {
            if (s->owner[b] != (uint32_t)s->epoch) atomic_fetch_add(&rc->bad, 1);
        }
        bc__route_release(s);
        atomic_fetch_add(&rc->reads, 1);
    }
    return NULL;
}

typedef struct wait_arg {
    bc__router_t *r;
    uint64_t seen;
    uint64_t until_ns;
    bool woke;
    uint64_t took_ns;
    atomic_bool started;
} wait_arg_t;

static void *
waiter(void *p)
{
    wait_arg_t *a = p;
    uint64_t t0 = bc_time_mono_ns();
    atomic_store(&a->started, true);
    a->woke = bc__route_wait(a->r, a->seen, a->until_ns);
    a->took_ns = bc_time_mono_ns() - t0;
    return NULL;
}

/* A retry's backoff ends the moment a new table is published (not at its
 * end), ends at its deadline when none is, and returns at once when one
 * was published before it began. */
static void
test_router_wait(void **state)
{
    (void)state;
    bc__router_t r;
    bc__route_init(&r);
    bc__route_publish(&r, bc__route_snapshot_new(4));
    uint64_t seen = atomic_load(&r.published);

    /* nothing published: sleeps until the deadline */
    uint64_t t0 = bc_time_mono_ns();
    assert_false(bc__route_wait(&r, seen, t0 + 30 * 1000000ull));
    assert_true(bc_time_mono_ns() - t0 >= 29 * 1000000ull);

    /* a publish 20 ms after the waiter began wakes its 5 s wait: it
     * blocked (20 ms or more) and did not sleep it out */
    wait_arg_t a = {.r = &r, .seen = seen, .until_ns = bc_time_mono_ns() + 5000 * 1000000ull};
    atomic_init(&a.started, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, waiter, &a), 0);
    while (!atomic_load(&a.started)) sched_yield();
    struct timespec pause = {0, 20 * 1000000};
    nanosleep(&pause, NULL);
    bc__route_publish(&r, bc__route_snapshot_new(4));
    pthread_join(t, NULL);
    assert_true(a.woke);
    assert_true(a.took_ns >= 15 * 1000000ull);
    assert_true(a.took_ns < 4000 * 1000000ull);

    /* already newer: no wait at all */
    t0 = bc_time_mono_ns();
    assert_true(bc__route_wait(&r, seen, t0 + 5000 * 1000000ull));
    assert_true(bc_time_mono_ns() - t0 < 1000 * 1000000ull);
    bc__route_destroy(&r);
}

static void
test_router_race(void **state)
{
    (void)state;
    bc__router_t r;
    bc__route_init(&r);
    race_t rc = {.r = &r};
    bc__pool_node_t *node = bc__pool_node_new("127.0.0.1:9", 1, 1024, &io, NULL);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, race_reader, &rc);
    /* at least 3000 publications, and on until the readers (perhaps slow to
     * be scheduled) have raced a good number of them */
    for (uint32_t e = 1; e <= 3000 || (atomic_load(&rc.reads) < 3000 && e < 2000000); e++) {
        bc__route_snapshot_t *s = bc__route_snapshot_new(64);
        s->epoch = e;
        for (uint32_t b = 0; b < 64; b++) {
            s->owner[b] = e;
            bc__route_snapshot_set_node(s, b, node);
        }
        bc__route_publish(&r, s);
    }
    atomic_store(&rc.stop, 1);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&rc.bad), 0);
    assert_true(atomic_load(&rc.reads) > 0);
    /* only the current snapshot still holds the node */
    assert_int_equal(atomic_load(&node->refs), 2);
    bc__route_destroy(&r);
    assert_int_equal(atomic_load(&node->refs), 1);
    for (int i = 0; i < BC__ROUTER_SLOTS; i++) assert_null(atomic_load(&r.slots[i]));
    bc__pool_node_unref(node);
}

/* A key whose bucket (of nb) is b. */
static void
key_for_bucket(uint32_t b, uint32_t nb, char *out, size_t len)
{
    for (int i = 0;; i++) {
        snprintf(out, len, "key%d", i);
        if (bc_hash_bucket(bc_hash_key(out, strlen(out)), nb) == b) return;
    }
}

static void
test_detached_routing(void **state)
{
    (void)state;
    fake_t *f1 = fake_start(NULL, NULL), *f2 = fake_start(NULL, NULL);
    bc_client_t *c;
    assert_int_equal(bc__client_new_detached(NULL, 8, &c), BC_OK);
    uint32_t owner[8] = {1, 1, 1, 1, 2, 2, 2, 0};
    uint32_t gids[2] = {2, 1};
    const char *addrs[2] = {f2->addr, f1->addr};
    assert_int_equal(bc__registry_install(c, 5, owner, NULL, 2, gids, addrs), BC_OK);
    /* installing the same again publishes nothing new */
    assert_int_equal(bc__registry_install(c, 5, owner, NULL, 2, gids, addrs), BC_OK);
    assert_int_equal(atomic_load(&c->router.published), 1);

    for (uint32_t b = 0; b < 8; b++) {
        char key[32];
        key_for_bucket(b, 8, key, sizeof(key));
        int rc = bc_client_set(c, key, strlen(key), "v", 1, 0, 0, 500);
        if (owner[b] == 0) {
            assert_int_equal(rc, BC_CLIENT_ENOOWNER);
            continue;
        }
        assert_int_equal(rc, BC_CLIENT_OK);
        /* it landed on the owner's node, and only there */
        assert_true(fake_has(owner[b] == 1 ? f1 : f2, key));
        assert_false(fake_has(owner[b] == 1 ? f2 : f1, key));
        uint32_t bucket, group;
        char addr[64];
        assert_int_equal(bc_client_locate(c, key, strlen(key), &bucket, &group, addr, sizeof(addr)),
                         BC_CLIENT_OK);
        assert_int_equal(bucket, b);
        assert_int_equal(group, owner[b]);
        assert_string_equal(addr, owner[b] == 1 ? f1->addr : f2->addr);
    }
    /* a group without a known primary: retried until the deadline */
    const char *none[2] = {f2->addr, ""};
    assert_int_equal(bc__registry_install(c, 6, owner, NULL, 2, gids, none), BC_OK);
    char key[32];
    key_for_bucket(0, 8, key, sizeof(key));
    assert_int_equal(bc_client_set(c, key, strlen(key), "v", 1, 0, 0, 50), BC_CLIENT_ETIMEOUT);
    bc_client_stats_t st;
    assert_int_equal(bc_client_get_stats(c, &st), BC_CLIENT_OK);
    assert_int_equal(st.table_epoch, 6);
    assert_int_equal(st.nbuckets, 8);
    assert_int_equal(st.table_updates, 2);
    assert_int_equal(st.timeouts, 1);
    assert_true(st.retries > 0);
    assert_int_equal(bc_client_get_stats(c, NULL), BC_CLIENT_EINVAL);
    bc_client_destroy(c);
    fake_stop(f1);
    fake_stop(f2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_nodes_and_same),
        cmocka_unit_test(test_router_lifetime),
        cmocka_unit_test(test_router_race),
        cmocka_unit_test(test_router_wait),
        cmocka_unit_test(test_detached_routing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
