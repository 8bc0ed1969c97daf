/*
 * test_reconcile.c -- the console's decisions on hand-built cluster views:
 * first group, group added, group down, group back (intact or not), orphan
 * grace, primary choice and failover, idempotence.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "reconcile.h"

#define N 6

/* A view with tables from digit strings and groups with nnodes nodes each. */
static void
view_init(bc_view_t *v, const char *c, const char *m, const char *d)
{
    memset(v, 0, sizeof(*v));
    v->nbuckets = N;
    assert_int_equal(bc_table_init(&v->c, 'c', N), BC_OK);
    assert_int_equal(bc_table_init(&v->m, 'm', N), BC_OK);
    assert_int_equal(bc_table_init(&v->d, 'd', N), BC_OK);
    for (int b = 0; b < N; b++) {
        v->c.owner[b] = (uint32_t)(c[b] - '0');
        v->m.owner[b] = (uint32_t)(m[b] - '0');
        v->d.owner[b] = (uint32_t)(d[b] - '0');
    }
    v->c.epoch = v->m.epoch = v->d.epoch = 7;
    v->groups = calloc(8, sizeof(*v->groups));
}

static bc_view_group_t *
view_add_group(bc_view_t *v, uint32_t gid, size_t nnodes, const char *primary)
{
    bc_view_group_t *g = &v->groups[v->ngroups++];
    g->gid = gid;
    g->nnodes = nnodes;
    g->nodes = calloc(nnodes + 1, sizeof(*g->nodes));
    for (size_t i = 0; i < nnodes; i++) {
        snprintf(g->nodes[i].name, sizeof(g->nodes[i].name), "n-%010zu", i + gid * 10);
        snprintf(g->nodes[i].data_addr, sizeof(g->nodes[i].data_addr), "127.0.0.1:%zu", 1000 + i);
        g->nodes[i].memory = 1 << 20;
    }
    g->primary_version = -1;
    if (primary != NULL) {
        g->has_primary = true;
        g->primary_version = 3;
        snprintf(g->primary.node, sizeof(g->primary.node), "%s", primary);
    }
    return g;
}

static void
assert_table(const bc_table_t *t, const char *expect)
{
    char got[N + 1];
    for (int b = 0; b < N; b++) got[b] = (char)('0' + t->owner[b]);
    got[N] = '\0';
    assert_string_equal(got, expect);
}

static void
run(bc_view_t *v, int64_t now, int64_t grace, bc_reconcile_output_t *out)
{
    bc_reconcile_input_t in = {.view = v, .now_ms = now, .orphan_grace_ms = grace};
    assert_int_equal(bc_reconcile(&in, out), BC_OK);
}

static void
test_first_group_gets_everything_directly(void **state)
{
    (void)state;
    bc_view_t v;
    bc_reconcile_output_t out;
    view_init(&v, "000000", "000000", "000000");
    view_add_group(&v, 1, 2, NULL);
    run(&v, 1000, -1, &out);
    assert_true(out.changed);
    assert_table(&out.c, "111111");
    assert_table(&out.m, "111111");
    assert_table(&out.d, "111111");
    assert_int_equal(out.c.epoch, 8);
    assert_int_equal(out.nprimaries, 1);
    assert_string_equal(out.primaries[0].info.node, "n-0000000010");
    assert_int_equal(out.pending_moves, 0);
    bc_reconcile_free(&out);
    bc_view_free(&v);
}

static void
test_group_added_plans_moves(void **state)
{
    (void)state;
    bc_view_t v;
    bc_reconcile_output_t out;
    view_init(&v, "111222", "111222", "111222");
    view_add_group(&v, 1, 1, "n-0000000010");
    view_add_group(&v, 2, 1, "n-0000000020");
    view_add_group(&v, 3, 1, NULL);
    run(&v, 1000, -1, &out);
    assert_true(out.rebalanced);
    assert_table(&out.d, "113223"); /* the seed's example */
    assert_table(&out.m, "111222"); /* data has not moved yet */
    assert_table(&out.c, "111222");
    assert_int_equal(out.pending_moves, 2);
    bc_reconcile_free(&out);
    bc_view_free(&v);
}

static void
test_steady_state_writes_nothing(void **state)
{
    (void)state;
    bc_view_t v;
    bc_reconcile_output_t out;
    view_init(&v, "111222", "111222", "111222");
    view_add_group(&v, 1, 2, "n-0000000010");
    view_add_group(&v, 2, 2, "n-0000000020");
    run(&v, 1000, -1, &out);
    assert_false(out.changed);
    assert_int_equal(out.c.epoch, 7);
    bc_reconcile_free(&out);
    bc_view_free(&v);
}

static void
test_group_down_then_back_intact(void **state)
{
    (void)state;
    bc_view_t v;
    bc_reconcile_output_t out;
    view_init(&v, "112233", "112233", "112233");
    view_add_group(&v, 1, 1, "n-0000000010");
    view_add_group(&v, 2, 0, "n-0000000020"); /* down */
    view_add_group(&v, 3, 1, "n-0000000030");
    v.groups[1].group_version = 4;
    run(&v, 5000, -1, &out);
    assert_table(&out.c, "110033");
    assert_table(&out.m, "110033");
    assert_table(&out.d, "110033");
    assert_int_equal(out.ndepartures, 1);
    assert_int_equal(out.departures[0].gid, 2);
    assert_int_equal(out.departures[0].version, 4);
    assert_int_equal(out.departures[0].record.nbuckets, 2);
    assert_int_equal(out.departures[0].record.departed_at_ms, 5000);
    assert_int_equal(out.nprimaries, 1);
    assert_true(out.primaries[0].remove);
    assert_false(out.rebalanced); /* orphans wait for their group */

    /* Next round: the record is written, the group is still down. */
    bc_view_t v2;
    view_init(&v2, "110033", "110033", "110033");
    view_add_group(&v2, 1, 1, "n-0000000010");
    bc_view_group_t *g2 = view_add_group(&v2, 2, 0, NULL);
    view_add_group(&v2, 3, 1, "n-0000000030");
    g2->departure = out.departures[0].record;
    out.departures[0].record.buckets = NULL;
    bc_reconcile_output_t out2;
    run(&v2, 60000, -1, &out2);
    assert_false(out2.changed);
    bc_reconcile_free(&out2);

    /* It comes back: filled back without recomputation. */
    g2->nnodes = 1;
    run(&v2, 70000, -1, &out2);
    assert_table(&out2.c, "112233");
    assert_table(&out2.m, "112233");
    assert_table(&out2.d, "112233");
    assert_int_equal(out2.ndepartures, 1);
    assert_false(out2.departures[0].record.present);
    assert_false(out2.rebalanced);
    bc_reconcile_free(&out2);
    bc_reconcile_free(&out);
    bc_view_free(&v);
    bc_view_free(&v2);
}

static void
test_group_back_keeps_planned_moves(void **state)
{
    (void)state;
    bc_view_t v;
    bc_reconcile_output_t out;
    /* group 1 held everything, with a move of 3..5 to group 2 planned; it
     * went down (its c, m and d entries zeroed) and now returns. */
    view_init(&v, "000000", "000000", "000222");
    view_add_group(&v, 1, 1, NULL);
    bc_view_group_t *g1 = &v.groups[0];
    view_add_group(&v, 2, 1, "n-0000000020");
    g1->departure.present = true;
    g1->departure.departed_at_ms = 1;
    g1->departure.nbuckets = 6;
    g1->departure.buckets = calloc(6, sizeof(uint32_t));
    for (uint32_t b = 0; b < 6; b++) g1->departure.buckets[b] = b;
    run(&v, 1000, -1, &out);
    assert_table(&out.c, "111111");
    assert_table(&out.m, "111111");
    assert_table(&out.d, "111222");
    assert_int_equal(out.pending_moves, 3);
    assert_false(out.rebalanced);
    bc_reconcile_free(&out);
    bc_view_free(&v);
}

static void
test_orphan_grace_hands_buckets_to_survivors(void **state)
{
    (void)state;
    bc_view_t v;
    bc_reconcile_output_t out;
    view_init(&v, "110033", "110033", "110033");
    view_add_group(&v, 1, 1, "n-0000000010");
    bc_view_group_t *g2 = view_add_group(&v, 2, 0, NULL);
    view_add_group(&v, 3, 1, "n-0000000030");
    g2->departure.present = true;
    g2->departure.departed_at_ms = 1000;
    g2->departure.nbuckets = 2;
    g2->departure.buckets = calloc(2, sizeof(uint32_t));
    g2->departure.buckets[0] = 2;
    g2->departure.buckets[1] = 3;

    run(&v, 1500, 1000, &out); /* within the grace */
    assert_false(out.changed);
    bc_reconcile_free(&out);

    run(&v, 2000, 1000, &out); /* grace over */
    assert_true(out.rebalanced);
    assert_table(&out.c, "111333");
    assert_table(&out.m, "111333");
    bc_reconcile_free(&out);

    /* When group 2 then returns, its buckets moved: it joins as new and the
     * rebalance plans moves onto it. */
    bc_view_t v2;
    view_init(&v2, "111333", "111333", "111333");
    view_add_group(&v2, 1, 1, "n-0000000010");
    bc_view_group_t *back = view_add_group(&v2, 2, 1, NULL);
    view_add_group(&v2, 3, 1, "n-0000000030");
    back->departure = g2->departure;
    g2->departure.buckets = NULL;
    run(&v2, 3000, 1000, &out);
    assert_int_equal(out.ndepartures, 1);
    assert_false(out.departures[0].record.present);
    assert_true(out.rebalanced);
    assert_table(&out.d, "112332");
    assert_int_equal(out.pending_moves, 2);
    bc_reconcile_free(&out);
    bc_view_free(&v);
    bc_view_free(&v2);
}

static void
test_primary_failover_prefers_highest_offset(void **state)
{
    (void)state;
    bc_view_t v;
    bc_reconcile_output_t out;
    view_init(&v, "111111", "111111", "111111");
    bc_view_group_t *g = view_add_group(&v, 1, 3, "n-0000000099"); /* primary gone */
    g->nodes[0].offset = 10;
    g->nodes[1].offset = 30;
    g->nodes[2].offset = 30;
    run(&v, 1000, -1, &out);
    assert_int_equal(out.nprimaries, 1);
    assert_string_equal(out.primaries[0].info.node, g->nodes[1].name);
    assert_int_equal(out.primaries[0].version, 3);
    assert_int_equal(out.primaries[0].info.epoch, 8);
    assert_int_equal(out.c.epoch, 8); /* a new primary bumps the epoch */
    bc_reconcile_free(&out);
    bc_view_free(&v);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_group_gets_everything_directly),
        cmocka_unit_test(test_group_added_plans_moves),
        cmocka_unit_test(test_steady_state_writes_nothing),
        cmocka_unit_test(test_group_down_then_back_intact),
        cmocka_unit_test(test_group_back_keeps_planned_moves),
        cmocka_unit_test(test_orphan_grace_hands_buckets_to_survivors),
        cmocka_unit_test(test_primary_failover_prefers_highest_offset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
