/*
 * test_planner.c -- the rebalance planner: the seed document's example,
 * hand-checked edge cases, and property tests over random inputs.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bc_planner.h"

static void
parse_map(const char *digits, uint32_t *out)
{
    for (size_t i = 0; digits[i]; i++) out[i] = (uint32_t)(digits[i] - '0');
}

static void
assert_map(const uint32_t *d, const char *expect)
{
    char got[256];
    size_t n = strlen(expect);
    for (size_t i = 0; i < n; i++) got[i] = (char)('0' + d[i]);
    got[n] = '\0';
    assert_string_equal(got, expect);
}

static void
test_seed_example(void **state)
{
    (void)state;
    uint32_t m[6], d[6], shares[3];
    bc_planner_group_t g[] = {{1, 1000}, {2, 1000}, {3, 1000}};
    parse_map("111222", m);
    assert_int_equal(bc_planner_plan(m, 6, g, 3, d, shares), BC_OK);
    assert_map(d, "113223");
    assert_int_equal(shares[0] + shares[1] + shares[2], 6);
    assert_int_equal(bc_planner_count_moves(m, d, 6), 2);
}

static void
test_initial_assignment_by_memory(void **state)
{
    (void)state;
    uint32_t m[10] = {0}, d[10], shares[2];
    /* group 2 has 4x the memory of group 1: shares 2 and 8. */
    bc_planner_group_t g[] = {{2, 4096}, {1, 1024}};
    assert_int_equal(bc_planner_plan(m, 10, g, 2, d, shares), BC_OK);
    assert_int_equal(shares[0], 8);
    assert_int_equal(shares[1], 2);
    assert_map(d, "1122222222");
    assert_int_equal(bc_planner_count_moves(m, d, 10), 0);
}

static void
test_largest_remainder_ties_by_gid(void **state)
{
    (void)state;
    uint32_t m[4] = {0}, d[4], shares[3];
    bc_planner_group_t g[] = {{3, 1}, {1, 1}, {2, 1}};
    /* 4 / 3: each gets 1, the single leftover goes to the lowest gid. */
    assert_int_equal(bc_planner_plan(m, 4, g, 3, d, shares), BC_OK);
    assert_int_equal(shares[1], 2); /* gid 1 */
    assert_int_equal(shares[2], 1);
    assert_int_equal(shares[0], 1);
    assert_map(d, "1123");
}

static void
test_orphans_filled_first(void **state)
{
    (void)state;
    uint32_t m[6], d[6];
    /* group 3 is gone: its buckets (2, 5) are orphans and nothing else moves. */
    bc_planner_group_t g[] = {{1, 1}, {2, 1}};
    parse_map("113223", m);
    assert_int_equal(bc_planner_plan(m, 6, g, 2, d, NULL), BC_OK);
    assert_map(d, "111222");
    assert_int_equal(bc_planner_count_moves(m, d, 6), 2); /* dead-owner entries change */
    parse_map("110220", m);
    assert_int_equal(bc_planner_plan(m, 6, g, 2, d, NULL), BC_OK);
    assert_map(d, "111222");
    assert_int_equal(bc_planner_count_moves(m, d, 6), 0);
}

static void
test_no_groups_and_bad_input(void **state)
{
    (void)state;
    uint32_t m[3] = {1, 2, 3}, d[3] = {9, 9, 9};
    assert_int_equal(bc_planner_plan(m, 3, NULL, 0, d, NULL), BC_OK);
    assert_map(d, "000");
    bc_planner_group_t zero[] = {{0, 1}};
    assert_int_equal(bc_planner_plan(m, 3, zero, 1, d, NULL), BC_EINVAL);
    bc_planner_group_t dup[] = {{1, 1}, {1, 2}};
    assert_int_equal(bc_planner_plan(m, 3, dup, 2, d, NULL), BC_EINVAL);
    bc_planner_group_t huge[] = {{1, UINT64_MAX / 2}, {2, UINT64_MAX / 2}};
    assert_int_equal(bc_planner_plan(m, 3, huge, 2, d, NULL), BC_EINVAL);
    assert_int_equal(bc_planner_plan(m, 0, dup, 1, d, NULL), BC_EINVAL);
    /* all-zero memory: equal weights */
    bc_planner_group_t zeros[] = {{1, 0}, {2, 0}};
    uint32_t m2[4] = {0}, d2[4];
    assert_int_equal(bc_planner_plan(m2, 4, zeros, 2, d2, NULL), BC_OK);
    assert_map(d2, "1122");
}

/* xorshift64*: a fixed-seed generator so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t
rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static void
test_properties_random(void **state)
{
    (void)state;
    enum { ROUNDS = 2000, MAXN = 512, MAXG = 12 };
    uint32_t m[MAXN], d[MAXN], d2[MAXN], again[MAXN], shares[MAXG];
    bc_planner_group_t g[MAXG];

    for (int round = 0; round < ROUNDS; round++) {
        uint32_t n = 1 + (uint32_t)(rng_next() % MAXN);
        size_t ng = 1 + rng_next() % MAXG;
        for (size_t i = 0; i < ng; i++) {
            g[i].gid = (uint32_t)(i * 3 + 1 + rng_next() % 3); /* unique, gaps */
            g[i].memory = (rng_next() % 4 == 0) ? 0 : 1 + rng_next() % (64ull << 30);
        }
        /* m mixes live owners, dead owners (gid 1000+) and orphans */
        for (uint32_t b = 0; b < n; b++) {
            uint64_t r = rng_next() % 10;
            m[b] = r == 0 ? 0 : r == 1 ? 1000 + (uint32_t)(rng_next() % 5)
                                       : g[rng_next() % ng].gid;
        }
        assert_int_equal(bc_planner_plan(m, n, g, ng, d, shares), BC_OK);

        /* shares sum to N and each group ends with exactly its share */
        uint64_t sum = 0, min_moves = 0;
        for (size_t i = 0; i < ng; i++) {
            uint32_t had = 0, has = 0;
            sum += shares[i];
            for (uint32_t b = 0; b < n; b++) {
                had += m[b] == g[i].gid;
                has += d[b] == g[i].gid;
            }
            assert_int_equal(has, shares[i]);
            if (had > shares[i]) min_moves += had - shares[i];
        }
        assert_int_equal(sum, n);

        /* only surplus moves: live-owned buckets that changed owner */
        uint64_t live_moves = 0;
        for (uint32_t b = 0; b < n; b++) {
            assert_int_not_equal(d[b], 0);
            bool live = false;
            for (size_t i = 0; i < ng; i++) live |= m[b] == g[i].gid;
            if (live && d[b] != m[b]) live_moves++;
        }
        assert_int_equal(live_moves, min_moves);

        /* deterministic, and a fixed point */
        assert_int_equal(bc_planner_plan(m, n, g, ng, d2, NULL), BC_OK);
        assert_memory_equal(d, d2, n * sizeof(uint32_t));
        assert_int_equal(bc_planner_plan(d, n, g, ng, again, NULL), BC_OK);
        assert_memory_equal(d, again, n * sizeof(uint32_t));
        assert_int_equal(bc_planner_count_moves(d, again, n), 0);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_example),
        cmocka_unit_test(test_initial_assignment_by_memory),
        cmocka_unit_test(test_largest_remainder_ties_by_gid),
        cmocka_unit_test(test_orphans_filled_first),
        cmocka_unit_test(test_no_groups_and_bad_input),
        cmocka_unit_test(test_properties_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
