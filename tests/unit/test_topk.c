/*
 * test_topk.c -- the hot-key sketch (common/bc_topk.h): space-saving's
 * accuracy bounds on a skewed stream, exact counts while it fits, decay,
 * bounded memory whatever the stream, merging with weights, and the node's
 * sampled wrapper (engine/hotkeys.h).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bc_topk.h"
#include "engine/hotkeys.h"

static size_t
key_of(uint32_t i, char *buf)
{
    return (size_t)snprintf(buf, 32, "key:%u", i);
}

/* The number in an entry's "key:N" (its key is not NUL-terminated). */
static uint32_t
num_of(const bc_topk_entry_t *e)
{
    char buf[BC_TOPK_KEY_MAX + 1];
    memcpy(buf, e->key, e->nkey);
    buf[e->nkey] = '\0';
    return (uint32_t)strtoul(buf + 4, NULL, 10);
}

static uint32_t
rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (uint32_t)(*s >> 11);
}

/* While no more keys than slots come, the counts are exact (error 0). */
static void
test_exact_when_it_fits(void **state)
{
    (void)state;
    bc_topk_t *t = bc_topk_create(8, 0);
    assert_non_null(t);
    char k[32];
    for (uint32_t i = 0; i < 8; i++) {
        for (uint32_t j = 0; j <= i; j++) bc_topk_add(t, k, key_of(i, k), i, 1, 0);
    }
    bc_topk_entry_t out[8];
    size_t n = bc_topk_list(t, 0, out, 8);
    assert_int_equal(n, 8);
    for (uint32_t r = 0; r < 8; r++) {
        char want[32];
        size_t nw = key_of(7 - r, want);
        assert_int_equal(out[r].nkey, nw);
        assert_memory_equal(out[r].key, want, nw);
        assert_true(out[r].count == 8 - r);
        assert_true(out[r].error == 0);
        assert_int_equal(out[r].tag, 7 - r);
    }
    assert_true(bc_topk_total(t) == 36);
    bc_topk_destroy(t);
}

/*
 * A Zipf-like stream over 10000 keys into 64 slots: every true count lies
 * in [count - error, count], every key heavier than W/k is monitored, and
 * the leaders come out in the right order.
 */
static void
test_space_saving_bounds(void **state)
{
    (void)state;
    enum { KEYS = 10000, SLOTS = 64, EVENTS = 200000 };
    uint32_t *truth = calloc(KEYS, sizeof(*truth));
    bc_topk_t *t = bc_topk_create(SLOTS, 0);
    assert_non_null(t);
    uint64_t s = 88172645463325252ull;
    char k[32];
    /* weight of key i ~ 1/(i+1): sample by inverting a harmonic CDF */
    double h = 0;
    for (uint32_t i = 0; i < KEYS; i++) h += 1.0 / (i + 1);
    for (uint32_t e = 0; e < EVENTS; e++) {
        double u = (double)(rng_next(&s) & ((1u << 21) - 1)) / (double)(1u << 21) * h, acc = 0;
        uint32_t i = 0;
        while (i < KEYS - 1 && (acc += 1.0 / (i + 1)) < u) i++;
        truth[i]++;
        bc_topk_add(t, k, key_of(i, k), i, 1, 0);
    }
    bc_topk_entry_t out[SLOTS];
    size_t n = bc_topk_list(t, 0, out, SLOTS);
    assert_int_equal(n, SLOTS);
    assert_int_equal(bc_topk_size(t), SLOTS);
    for (size_t r = 0; r < n; r++) {
        uint32_t i = num_of(&out[r]);
        assert_true(out[r].count >= truth[i]);
        assert_true(out[r].count - out[r].error <= truth[i]);
    }
    for (uint32_t i = 0; i < KEYS; i++) {
        if ((double)truth[i] <= (double)EVENTS / SLOTS) continue;
        bool found = false;
        for (size_t r = 0; r < n && !found; r++) {
            found = num_of(&out[r]) == i;
        }
        assert_true(found);
    }
    /* The clear leaders come out in order (further down, the error of
     * near-equal keys may swap them: space-saving promises no more). */
    for (uint32_t r = 0; r < 4; r++) assert_int_equal(num_of(&out[r]), r);
    free(truth);
    bc_topk_destroy(t);
}

/* Counts halve every half-life; a key that stops coming is overtaken by
 * a newer, lighter one. */
static void
test_decay(void **state)
{
    (void)state;
    bc_topk_t *t = bc_topk_create(4, 10);
    assert_non_null(t);
    for (int i = 0; i < 1000; i++) bc_topk_add(t, "old", 3, 1, 1, 0);
    bc_topk_entry_t out[4];
    assert_int_equal(bc_topk_list(t, 10, out, 4), 1);
    assert_true(fabs(out[0].count - 500) < 1e-6);
    assert_true(fabs(bc_topk_total(t) - 500) < 1e-6);
    assert_int_equal(bc_topk_list(t, 30, out, 4), 1);
    assert_true(fabs(out[0].count - 125) < 1e-6);
    for (int i = 0; i < 200; i++) bc_topk_add(t, "new", 3, 2, 1, 30);
    assert_int_equal(bc_topk_list(t, 30, out, 4), 2);
    assert_memory_equal(out[0].key, "new", 3);
    assert_memory_equal(out[1].key, "old", 3);
    /* a clock going backwards decays nothing */
    assert_int_equal(bc_topk_list(t, 5, out, 4), 2);
    assert_true(fabs(out[0].count - 200) < 1e-6);
    bc_topk_destroy(t);
}

/* A million distinct keys leave the memory where it was and the sketch
 * at capacity; bad input is ignored. */
static void
test_bounded_memory(void **state)
{
    (void)state;
    bc_topk_t *t = bc_topk_create(32, 5);
    size_t mem = bc_topk_memory(t);
    assert_true(mem > 0 && mem < 32 * 400 + 4096);
    char k[32];
    for (uint32_t i = 0; i < 1000000; i++) bc_topk_add(t, k, key_of(i, k), 0, 1, i / 1000.0);
    assert_int_equal(bc_topk_size(t), 32);
    assert_int_equal(bc_topk_memory(t), mem);
    char big[300];
    memset(big, 'x', sizeof(big));
    bc_topk_add(t, big, sizeof(big), 0, 1, 1000);   /* longer than a key may be */
    bc_topk_add(t, "k", 0, 0, 1, 1000);
    bc_topk_add(t, "k", 1, 0, -1, 1000);
    bc_topk_add(t, "k", 1, 0, NAN, 1000);
    bc_topk_entry_t out[32];
    size_t n = bc_topk_list(t, 1000, out, 32);
    for (size_t i = 0; i < n; i++) assert_true(out[i].nkey < 20);
    assert_null(bc_topk_create(0, 1));
    assert_null(bc_topk_create(BC_TOPK_MAX_CAPACITY + 1, 1));
    assert_null(bc_topk_create(4, -1));
    bc_topk_destroy(t);
}

/* Merging the nodes' lists: weights add up per key (the console's use). */
static void
test_weighted_merge(void **state)
{
    (void)state;
    bc_topk_t *t = bc_topk_create(16, 0);
    bc_topk_add(t, "a", 1, 3, 10.5, 0);
    bc_topk_add(t, "b", 1, 4, 7, 0);
    bc_topk_add(t, "a", 1, 3, 2.5, 0);
    bc_topk_entry_t out[16];
    assert_int_equal(bc_topk_list(t, 0, out, 16), 2);
    assert_true(out[0].count == 13 && out[0].tag == 3);
    assert_true(out[1].count == 7);
    assert_int_equal(bc_topk_list(t, 0, out, 1), 1);
    assert_memory_equal(out[0].key, "a", 1);
    bc_topk_destroy(t);
}

/* The node's wrapper: the rate estimate follows count * N * ln2 / H and
 * a bucket filter keeps only that bucket's keys. */
static void
test_hotkeys_wrapper(void **state)
{
    (void)state;
    bc_hotkeys_t *hk = bc_hotkeys_create(8, 4, 30);
    assert_non_null(hk);
    for (int i = 0; i < 100; i++) bc_hotkeys_sampler(hk, 7, "hot", 3);
    for (int i = 0; i < 10; i++) bc_hotkeys_sampler(hk, 9, "warm", 4);
    bc_hotkey_t out[8];
    size_t n = bc_hotkeys_list(hk, UINT32_MAX, out, 8);
    assert_int_equal(n, 2);
    assert_memory_equal(out[0].e.key, "hot", 3);
    assert_int_equal(out[0].e.tag, 7);
    assert_true(fabs(out[0].rate_per_s - out[0].e.count * 4 * M_LN2 / 30) < 1e-9);
    n = bc_hotkeys_list(hk, 9, out, 8);
    assert_int_equal(n, 1);
    assert_memory_equal(out[0].e.key, "warm", 4);
    assert_int_equal(bc_hotkeys_every(hk), 4);
    assert_null(bc_hotkeys_create(8, 0, 30));
    bc_hotkeys_destroy(hk);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_when_it_fits),
        cmocka_unit_test(test_space_saving_bounds),
        cmocka_unit_test(test_decay),
        cmocka_unit_test(test_bounded_memory),
        cmocka_unit_test(test_weighted_merge),
        cmocka_unit_test(test_hotkeys_wrapper),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
