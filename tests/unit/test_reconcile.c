/*
 * test_reconcile.c -- the console's decisions on hand-built cluster views:
 * first group, group added, group down, group back (intact or not), orphan
 * grace, primary choice and failover (only from the in-sync set of the
 * dead primary's term, carrying its other members over; a group with none
 * alive waits; an operator's unclean failover and what it reports),
 * idempotence; and the migration state
 * machine: start, bounded parallelism, cutover, stale reports, aborts with
 * backoff, groups and primaries that change mid-copy, pause, cancel, a new
 * leader resuming, precopy gating and its bounded look-ahead, and the
 * records' codecs.
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

/* g left at at_ms holding the buckets named by digits ("23": 2 and 3). */
static void
group_departed(bc_view_group_t *g, int64_t at_ms, const char *buckets)
{
    g->departure.present = true;
    g->departure.departed_at_ms = at_ms;
    g->departure.nbuckets = (uint32_t)strlen(buckets);
    g->departure.buckets = calloc(g->departure.nbuckets, sizeof(uint32_t));
    assert_non_null(g->departure.buckets);
    for (uint32_t i = 0; i < g->departure.nbuckets; i++) {
        g->departure.buckets[i] = (uint32_t)(buckets[i] - '0');
    }
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

    /* It comes back (a node with as much memory as the others): filled
     * back; planned again, which keeps a plan that already stands. */
    g2->nnodes = 1;
    snprintf(g2->nodes[0].name, sizeof(g2->nodes[0].name), "n-0000000021");
    g2->nodes[0].memory = 1 << 20;
    run(&v2, 70000, -1, &out2);
    assert_table(&out2.c, "112233");
    assert_table(&out2.m, "112233");
    assert_table(&out2.d, "112233");
    assert_int_equal(out2.ndepartures, 1);
    assert_false(out2.departures[0].record.present);
    assert_false(out2.rebalanced);
    bc_reconcile_free(&out2);

    /* Back after its planned moves were re-planned over the others while
     * it was down (d no longer names it beyond what it held): planned
     * again, it gets its share back. */
    bc_view_t v3;
    view_init(&v3, "111033", "111033", "111033");
    view_add_group(&v3, 1, 1, "n-0000000010");
    bc_view_group_t *g3 = view_add_group(&v3, 2, 1, NULL);
    view_add_group(&v3, 3, 1, "n-0000000030");
    group_departed(g3, 1, "3");
    run(&v3, 80000, -1, &out2);
    assert_table(&out2.m, "111233");
    assert_true(out2.rebalanced);
    int share = 0;
    for (int b = 0; b < N; b++) share += out2.d.owner[b] == 2;
    assert_int_equal(share, 2);                         /* a third of six */
    assert_true(out2.pending_moves >= 1);
    bc_reconcile_free(&out2);
    bc_view_free(&v3);
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
    group_departed(g1, 1, "012345");
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
    group_departed(g2, 1000, "23");

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

/* g's in-sync record, of the term of its primary record (epoch 5). */
static void
group_isr(bc_view_group_t *g, const char *const *members, size_t n, uint64_t offset)
{
    memset(&g->isr, 0, sizeof(g->isr));
    snprintf(g->isr.primary, sizeof(g->isr.primary), "%s", g->primary.node);
    g->primary.epoch = g->isr.epoch = 5;
    for (size_t i = 0; i < n; i++) assert_true(bc_cluster_isr_add(&g->isr, members[i]));
    g->isr.offset = offset;
    g->isr.at_ms = 900;
    g->has_isr = true;
    g->isr_version = 12;
}

static void
test_failover_only_from_the_in_sync_set(void **state)
{
    (void)state;
    bc_view_t v;
    bc_reconcile_output_t out;
    view_init(&v, "111111", "111111", "111111");
    bc_view_group_t *g = view_add_group(&v, 1, 3, "n-0000000099"); /* primary gone */
    /* n-10: the most data, but recorded out of the set (it may lack
     * acknowledged writes); n-11 in the set; n-12 in the set, mid-snapshot */
    g->nodes[0].offset = 50;
    g->nodes[0].synced = true;
    g->nodes[1].offset = 30;
    g->nodes[1].synced = true;
    g->nodes[2].offset = 0;
    g->nodes[2].synced = false;
    const char *isr[] = {"n-0000000011", "n-0000000012"};
    group_isr(g, isr, 2, 60);
    run(&v, 1000, -1, &out);
    assert_int_equal(out.nprimaries, 1);
    const bc_reconcile_primary_update_t *p = &out.primaries[0];
    assert_string_equal(p->info.node, "n-0000000011");
    assert_int_equal(p->version, 3);
    /* the new term's record: written with it, at the version read, the
     * other member carried over */
    assert_int_equal(p->isr_version, 12);
    assert_string_equal(p->isr.primary, "n-0000000011");
    assert_int_equal(p->isr.epoch, p->info.epoch);
    assert_int_equal(p->isr.epoch, 8);
    assert_int_equal(p->isr.n, 1);
    assert_string_equal(p->isr.in_sync[0], "n-0000000012");
    assert_int_equal(out.nwaiting, 0);
    bc_reconcile_free(&out);

    /* a record of another term (not the primary's) is no record: the
     * group falls back to the best node, and starts an empty record */
    g->isr.epoch = 4;
    run(&v, 1000, -1, &out);
    assert_int_equal(out.nprimaries, 1);
    assert_string_equal(out.primaries[0].info.node, "n-0000000010");
    assert_int_equal(out.primaries[0].isr.n, 0);
    bc_reconcile_free(&out);
    bc_view_free(&v);
}

static void
test_failover_waits_without_an_in_sync_member_and_unclean_reports(void **state)
{
    (void)state;
    bc_view_t v;
    bc_reconcile_output_t out;
    view_init(&v, "111111", "111111", "111111");
    bc_view_group_t *g = view_add_group(&v, 1, 2, "n-0000000099");
    g->nodes[0].offset = 40;
    g->nodes[0].synced = true;
    g->nodes[1].offset = 70;
    g->nodes[1].synced = true;
    const char *isr[] = {"n-0000000077"};                /* gone too */
    group_isr(g, isr, 1, 100);
    run(&v, 1000, -1, &out);
    assert_int_equal(out.nprimaries, 0);                 /* nobody is safe: it waits */
    assert_int_equal(out.nwaiting, 1);
    assert_int_equal(out.waiting[0], 1);
    assert_false(out.failover.done);
    assert_false(out.tables_changed);                    /* its buckets stay its own */
    bc_reconcile_free(&out);

    /* the operator's unclean failover: the best live node, an empty
     * record, and what may be lost */
    bc_reconcile_input_t in = {.view = &v, .now_ms = 2000, .orphan_grace_ms = -1,
                               .unclean_gid = 1};
    assert_int_equal(bc_reconcile(&in, &out), BC_OK);
    assert_int_equal(out.nprimaries, 1);
    assert_string_equal(out.primaries[0].info.node, "n-0000000011");
    assert_int_equal(out.primaries[0].isr.n, 0);
    assert_int_equal(out.primaries[0].isr_version, 12);
    assert_true(out.failover.done);
    assert_false(out.failover.clean);
    assert_string_equal(out.failover.node, "n-0000000011");
    assert_string_equal(out.failover.old_primary, "n-0000000099");
    assert_int_equal(out.failover.offset, 70);
    assert_true(out.failover.recorded);
    assert_int_equal(out.failover.recorded_offset, 100);
    assert_int_equal(out.failover.behind, 30);
    assert_non_null(strstr(out.summary, "UNCLEAN"));
    bc_reconcile_free(&out);

    /* every live node was asked and none holds data of the term (a restarted
     * process): nothing can be lost any more, the group starts empty */
    for (size_t i = 0; i < 2; i++) {
        g->nodes[i].offset_known = true;
        g->nodes[i].synced = false;
        g->nodes[i].offset = 0;
    }
    run(&v, 1000, -1, &out);
    assert_int_equal(out.nprimaries, 1);
    assert_string_equal(out.primaries[0].info.node, "n-0000000010");
    assert_int_equal(out.primaries[0].isr.n, 0);
    assert_non_null(strstr(out.summary, "starts empty"));
    bc_reconcile_free(&out);
    /* ... but one that holds data keeps it waiting, and so does one that
     * could not be asked */
    g->nodes[1].synced = true;
    g->nodes[1].offset = 5;
    run(&v, 1000, -1, &out);
    assert_int_equal(out.nprimaries, 0);
    bc_reconcile_free(&out);
    g->nodes[1].synced = false;
    g->nodes[1].offset = 0;
    g->nodes[1].offset_known = false;
    run(&v, 1000, -1, &out);
    assert_int_equal(out.nprimaries, 0);
    assert_int_equal(out.nwaiting, 1);
    bc_reconcile_free(&out);

    /* an unclean failover asked for a group whose primary lives: refused */
    snprintf(g->primary.node, sizeof(g->primary.node), "n-0000000010");
    group_isr(g, isr, 0, 100);
    assert_int_equal(bc_reconcile(&in, &out), BC_OK);
    assert_false(out.failover.done);
    assert_non_null(strstr(out.failover.error, "alive"));
    assert_int_equal(out.nprimaries, 0);
    bc_reconcile_free(&out);
    /* ... or one that does not exist */
    in.unclean_gid = 9;
    assert_int_equal(bc_reconcile(&in, &out), BC_OK);
    assert_false(out.failover.done);
    assert_string_equal(out.failover.error, "no such group");
    bc_reconcile_free(&out);
    bc_view_free(&v);
}

static void
test_old_primary_registered_anew_is_promoted_again(void **state)
{
    (void)state;
    bc_view_t v;
    bc_reconcile_output_t out;
    view_init(&v, "111111", "111111", "111111");
    /* a single-node group whose primary's session ended (a ZooKeeper
     * restart): the same process registered anew, with its data */
    bc_view_group_t *g = view_add_group(&v, 1, 1, "n-0000000099");
    snprintf(g->primary.incarnation, sizeof(g->primary.incarnation), "00000000deadbeef");
    group_isr(g, NULL, 0, 80);
    g->nodes[0].offset = 80;
    g->nodes[0].synced = true;
    g->nodes[0].offset_known = true;
    run(&v, 1000, -1, &out);
    assert_int_equal(out.nprimaries, 0);          /* another process with data: it waits */
    assert_int_equal(out.nwaiting, 1);
    bc_reconcile_free(&out);
    snprintf(g->nodes[0].incarnation, sizeof(g->nodes[0].incarnation), "00000000deadbeef");
    run(&v, 1000, -1, &out);
    assert_int_equal(out.nprimaries, 1);          /* the old primary itself: it has it all */
    assert_string_equal(out.primaries[0].info.node, "n-0000000010");
    assert_string_equal(out.primaries[0].info.incarnation, "00000000deadbeef");
    assert_non_null(strstr(out.summary, "registered anew"));
    bc_reconcile_free(&out);
    bc_view_free(&v);
}

static void
test_group_without_nodes_loses_both_records(void **state)
{
    (void)state;
    bc_view_t v;
    bc_reconcile_output_t out;
    view_init(&v, "111222", "111222", "111222");
    view_add_group(&v, 1, 1, "n-0000000010");
    bc_view_group_t *g = view_add_group(&v, 2, 0, "n-0000000020");
    group_isr(g, NULL, 0, 0);
    run(&v, 1000, -1, &out);
    assert_int_equal(out.nprimaries, 1);
    assert_true(out.primaries[0].remove);
    assert_int_equal(out.primaries[0].version, 3);
    assert_int_equal(out.primaries[0].isr_version, 12);
    bc_reconcile_free(&out);
    bc_view_free(&v);
}

/* ---- migrations ---- */

/* Groups 1..ngroups, one node each (n-00000000g0), primary, with an admin port. */
static void
mig_view(bc_view_t *v, const char *c, const char *m, const char *d, int ngroups)
{
    view_init(v, c, m, d);
    for (int g = 1; g <= ngroups; g++) {
        char name[32];
        snprintf(name, sizeof(name), "n-%010d", g * 10);
        bc_view_group_t *vg = view_add_group(v, (uint32_t)g, 1, name);
        snprintf(vg->nodes[0].admin_addr, sizeof(vg->nodes[0].admin_addr), "127.0.0.1:%d",
                 2000 + g);
    }
}

typedef struct mig_opts {
    const bc_mig_dest_backoff_t *dest_backoff;
    size_t ndest_backoff;
    uint32_t parallel;
    const bc_mig_report_t *reports;
    size_t nreports;
    bool cancel;
    bool force;
    bc_reconcile_pause_t pause;
    const bc_reconcile_precopy_t *precopy;
    uint32_t precopy_ahead;
} mig_opts_t;

static void
mig_run(bc_view_t *v, bc_mig_set_t *migs, int64_t now, const mig_opts_t *o,
        bc_reconcile_output_t *out)
{
    bc_reconcile_input_t in = {
        .view = v, .now_ms = now, .orphan_grace_ms = -1, .migs = migs,
        .parallel = o->parallel, .reports = o->reports, .nreports = o->nreports,
        .cancel_rebalance = o->cancel, .force_rebalance = o->force, .pause = o->pause,
        .precopy = o->precopy, .precopy_ahead = o->precopy_ahead,
        .dest_backoff = o->dest_backoff, .ndest_backoff = o->ndest_backoff,
    };
    assert_int_equal(bc_reconcile(&in, out), BC_OK);
}

/* What the console's commit does to ZooKeeper: apply the output. */
static void
mig_apply(bc_view_t *v, bc_mig_set_t *migs, const bc_reconcile_output_t *out)
{
    if (out->tables_changed) {
        bc_table_free(&v->c);
        bc_table_free(&v->m);
        bc_table_free(&v->d);
        assert_int_equal(bc_table_copy(&v->c, &out->c), BC_OK);
        assert_int_equal(bc_table_copy(&v->m, &out->m), BC_OK);
        assert_int_equal(bc_table_copy(&v->d, &out->d), BC_OK);
    }
    if (out->control != NULL && (out->control_changed || out->nmig > 0)) {
        int32_t ver = migs->control.version + 1;
        migs->control = *out->control;
        migs->control.version = ver;
    }
    for (size_t i = 0; i < out->nmig; i++) {
        const bc_reconcile_mig_update_t *u = &out->mig[i];
        if (u->remove) {
            assert_non_null(migs->rec[u->bucket]);
            assert_int_equal(migs->rec[u->bucket]->version, u->version);
            free(migs->rec[u->bucket]);
            migs->rec[u->bucket] = NULL;
            migs->count--;
            continue;
        }
        assert_int_equal(migs->rec[u->bucket] ? migs->rec[u->bucket]->version : -1, u->version);
        bc_mig_record_t r = u->record;
        r.version = u->version + 1;
        assert_int_equal(bc_mig_set_put(migs, &r), BC_OK);
    }
}

static bc_mig_report_t
report_ok(uint32_t bucket, uint64_t epoch, const char *node, uint64_t items, uint64_t bytes)
{
    bc_mig_report_t r;
    memset(&r, 0, sizeof(r));
    r.bucket = bucket;
    r.epoch = epoch;
    r.ok = true;
    r.items = items;
    r.bytes = bytes;
    snprintf(r.node, sizeof(r.node), "%s", node);
    return r;
}

static void
test_mig_start_sets_readonly_and_records(void **state)
{
    (void)state;
    bc_view_t v;
    bc_mig_set_t migs;
    bc_reconcile_output_t out;
    mig_view(&v, "111222", "111222", "113223", 3);
    assert_int_equal(bc_mig_set_init(&migs, N), BC_OK);
    mig_opts_t o = {.parallel = 4};
    mig_run(&v, &migs, 5000, &o, &out);
    assert_int_equal(out.mig_started, 2);
    assert_int_equal(out.c.epoch, 8);
    assert_table(&out.c, "111222"); /* owners unchanged ... */
    assert_true(out.c.readonly[2] && out.c.readonly[5]);   /* ... but read-only */
    assert_false(out.c.readonly[0] || out.c.readonly[1] || out.c.readonly[3] || out.c.readonly[4]);
    assert_int_equal(out.nmig, 2);
    for (size_t i = 0; i < 2; i++) {
        const bc_reconcile_mig_update_t *u = &out.mig[i];
        assert_false(u->remove);
        assert_int_equal(u->version, -1);
        assert_int_equal(u->record.state, BC_MIG_COPYING);
        assert_int_equal(u->record.epoch, 8);          /* the epoch this round writes */
        assert_int_equal(u->record.to, 3);
        assert_string_equal(u->record.to_node, "n-0000000030");
        assert_int_equal(u->record.started_ms, 5000);
    }
    assert_int_equal(out.mig[0].bucket, 2);
    assert_int_equal(out.mig[0].record.from, 1);
    assert_string_equal(out.mig[0].record.from_node, "n-0000000010");
    assert_int_equal(out.mig[1].record.from, 2);
    assert_int_equal(out.ncopying, 2);
    assert_int_equal(out.copying[0].bucket, 2);
    assert_int_equal(out.copying[0].epoch, 8);
    assert_true(out.control_changed);
    assert_int_equal(out.control->run_started_ms, 5000);
    assert_int_equal(out.pending_moves, 2);
    bc_reconcile_free(&out);
    bc_mig_set_free(&migs);
    bc_view_free(&v);
}

static void
test_mig_parallel_bound_and_resume_after_takeover(void **state)
{
    (void)state;
    bc_view_t v;
    bc_mig_set_t migs;
    bc_reconcile_output_t out;
    mig_view(&v, "111222", "111222", "113223", 3);
    assert_int_equal(bc_mig_set_init(&migs, N), BC_OK);
    mig_opts_t o = {.parallel = 1};
    mig_run(&v, &migs, 5000, &o, &out);
    assert_int_equal(out.mig_started, 1);
    assert_int_equal(out.mig[0].bucket, 2);
    mig_apply(&v, &migs, &out);
    bc_reconcile_free(&out);

    /* A console that takes over now sees the record, starts nothing more
     * and writes nothing, but lists the copy so it can resume it. */
    mig_run(&v, &migs, 6000, &o, &out);
    assert_false(out.changed);
    assert_int_equal(out.ncopying, 1);
    assert_int_equal(out.copying[0].bucket, 2);
    assert_int_equal(out.copying[0].epoch, 8);
    assert_int_equal(out.copying[0].from, 1);
    assert_int_equal(out.copying[0].to, 3);
    bc_reconcile_free(&out);
    bc_mig_set_free(&migs);
    bc_view_free(&v);
}

static void
test_mig_report_cuts_over_and_run_finishes(void **state)
{
    (void)state;
    bc_view_t v;
    bc_mig_set_t migs;
    bc_reconcile_output_t out;
    mig_view(&v, "111222", "111222", "113223", 3);
    assert_int_equal(bc_mig_set_init(&migs, N), BC_OK);
    mig_opts_t o = {.parallel = 4};
    mig_run(&v, &migs, 5000, &o, &out);
    mig_apply(&v, &migs, &out);
    bc_reconcile_free(&out);

    bc_mig_report_t rep = report_ok(2, 8, "n-0000000030", 10, 1000);
    o.reports = &rep;
    o.nreports = 1;
    mig_run(&v, &migs, 5040, &o, &out);
    assert_int_equal(out.nreports_used, 1);
    assert_int_equal(out.mig_cutovers, 1);
    assert_table(&out.c, "113222");
    assert_table(&out.m, "113222");
    assert_false(out.c.readonly[2]);
    assert_true(out.c.readonly[5]);                     /* still copying */
    assert_int_equal(out.c.epoch, 9);
    assert_int_equal(out.nmig, 1);
    assert_true(out.mig[0].remove);                     /* done: record gone */
    assert_int_equal(out.control->moved, 1);
    assert_int_equal(out.control->bytes, 1000);
    assert_int_equal(out.control->nstalls, 1);
    assert_int_equal(out.control->stalls[0], 40);       /* read-only 5000 -> 5040 */
    assert_int_equal(out.control->run_finished_ms, 0);
    assert_int_equal(out.pending_moves, 1);
    mig_apply(&v, &migs, &out);
    bc_reconcile_free(&out);

    bc_mig_report_t rep2 = report_ok(5, 8, "n-0000000030", 5, 500);
    o.reports = &rep2;
    mig_run(&v, &migs, 5100, &o, &out);
    assert_table(&out.c, "113223");
    assert_table(&out.m, "113223");
    assert_table(&out.d, "113223");
    assert_int_equal(out.pending_moves, 0);
    assert_int_equal(out.control->moved, 2);
    assert_int_equal(out.control->run_finished_ms, 5100);
    assert_int_equal(bc_mig_control_stall_pct(out.control, 50), 40);
    assert_int_equal(bc_mig_control_stall_pct(out.control, 100), 100);
    mig_apply(&v, &migs, &out);
    bc_reconcile_free(&out);
    assert_int_equal(migs.count, 0);

    /* and then nothing more to do */
    o.nreports = 0;
    mig_run(&v, &migs, 6000, &o, &out);
    assert_false(out.changed);
    bc_reconcile_free(&out);
    bc_mig_set_free(&migs);
    bc_view_free(&v);
}

static void
test_mig_stale_report_rejected(void **state)
{
    (void)state;
    bc_view_t v;
    bc_mig_set_t migs;
    bc_reconcile_output_t out;
    mig_view(&v, "111222", "111222", "113223", 3);
    assert_int_equal(bc_mig_set_init(&migs, N), BC_OK);
    mig_opts_t o = {.parallel = 4};
    mig_run(&v, &migs, 5000, &o, &out);
    mig_apply(&v, &migs, &out);
    bc_reconcile_free(&out);

    /* a report of an earlier attempt (epoch 7), and one for a bucket that
     * is not being copied at all */
    bc_mig_report_t reps[2] = {report_ok(2, 7, "n-0000000030", 1, 1),
                               report_ok(0, 8, "n-0000000030", 1, 1)};
    o.reports = reps;
    o.nreports = 2;
    mig_run(&v, &migs, 5050, &o, &out);
    assert_int_equal(out.mig_rejected, 2);
    assert_int_equal(out.mig_cutovers, 0);
    assert_false(out.tables_changed);
    assert_table(&out.c, "111222");
    assert_true(out.c.readonly[2]);
    assert_int_equal(out.nreports_used, 2);
    bc_reconcile_free(&out);
    bc_mig_set_free(&migs);
    bc_view_free(&v);
}

static void
test_mig_failure_gives_bucket_back_and_backs_off(void **state)
{
    (void)state;
    bc_view_t v;
    bc_mig_set_t migs;
    bc_reconcile_output_t out;
    mig_view(&v, "111222", "111222", "113223", 3);
    assert_int_equal(bc_mig_set_init(&migs, N), BC_OK);
    mig_opts_t o = {.parallel = 1};
    mig_run(&v, &migs, 5000, &o, &out);
    mig_apply(&v, &migs, &out);
    bc_reconcile_free(&out);

    bc_mig_report_t rep;
    memset(&rep, 0, sizeof(rep));
    rep.bucket = 2;
    rep.epoch = 8;
    snprintf(rep.error, sizeof(rep.error), "destination unreachable");
    o.reports = &rep;
    o.nreports = 1;
    mig_run(&v, &migs, 6000, &o, &out);
    assert_int_equal(out.mig_aborted, 1);
    assert_false(out.c.readonly[2]);                    /* writable at the source again */
    assert_table(&out.c, "111222");
    assert_int_equal(out.c.epoch, 9);
    assert_int_equal(out.naborts, 1);
    assert_int_equal(out.aborts[0].to, 3);
    /* the record waits to retry; bucket 5 may start meanwhile */
    const bc_reconcile_mig_update_t *u = &out.mig[0];
    assert_int_equal(u->bucket, 2);
    assert_int_equal(u->record.state, BC_MIG_PENDING);
    assert_int_equal(u->record.attempts, 1);
    assert_int_equal(u->record.retry_at_ms, 6000 + bc_mig_backoff_ms(1));
    assert_string_equal(u->record.error, "destination unreachable");
    assert_int_equal(out.control->failures, 1);
    assert_int_equal(out.mig_started, 1);
    assert_int_equal(out.mig[1].bucket, 5);
    mig_apply(&v, &migs, &out);
    bc_reconcile_free(&out);

    /* bucket 5 done; 2 is still backing off */
    bc_mig_report_t rep5 = report_ok(5, 9, "n-0000000030", 1, 1);
    o.reports = &rep5;
    mig_run(&v, &migs, 6100, &o, &out);
    assert_int_equal(out.mig_cutovers, 1);
    assert_int_equal(out.mig_started, 0);
    mig_apply(&v, &migs, &out);
    bc_reconcile_free(&out);

    /* after the backoff it starts again, its attempt count kept */
    o.nreports = 0;
    mig_run(&v, &migs, 6000 + bc_mig_backoff_ms(1), &o, &out);
    assert_int_equal(out.mig_started, 1);
    assert_int_equal(out.mig[0].record.attempts, 1);
    assert_int_equal(out.mig[0].record.state, BC_MIG_COPYING);
    assert_int_equal(out.mig[0].version, migs.rec[2]->version);
    assert_true(out.c.readonly[2]);
    bc_reconcile_free(&out);
    bc_mig_set_free(&migs);
    bc_view_free(&v);
}

static void
test_mig_destination_down_or_replaced_aborts(void **state)
{
    (void)state;
    bc_view_t v;
    bc_mig_set_t migs;
    bc_reconcile_output_t out;
    mig_view(&v, "111222", "111222", "113223", 3);
    assert_int_equal(bc_mig_set_init(&migs, N), BC_OK);
    mig_opts_t o = {.parallel = 4};
    mig_run(&v, &migs, 5000, &o, &out);
    mig_apply(&v, &migs, &out);
    bc_reconcile_free(&out);

    /* the destination's primary is replaced by another node mid-copy:
     * a report from the old node must not cut over */
    bc_view_group_t *g3 = bc_view_group(&v, 3);
    snprintf(g3->nodes[0].name, sizeof(g3->nodes[0].name), "n-0000000031");
    snprintf(g3->primary.node, sizeof(g3->primary.node), "n-0000000031");
    bc_mig_report_t rep = report_ok(2, 8, "n-0000000030", 1, 1);
    o.reports = &rep;
    o.nreports = 1;
    mig_run(&v, &migs, 5050, &o, &out);
    assert_int_equal(out.mig_cutovers, 0);
    assert_int_equal(out.mig_aborted, 2);               /* both copies go to group 3 */
    assert_false(out.c.readonly[2] || out.c.readonly[5]);
    assert_table(&out.c, "111222");
    bc_reconcile_free(&out);

    /* the destination group is gone altogether: d loses it, records go */
    g3->nnodes = 0;
    o.nreports = 0;
    mig_run(&v, &migs, 5060, &o, &out);
    assert_int_equal(out.mig_aborted, 2);
    assert_false(out.c.readonly[2] || out.c.readonly[5]);
    for (size_t i = 0; i < out.nmig; i++) {
        if (out.mig[i].bucket == 2 || out.mig[i].bucket == 5) {
            assert_true(out.mig[i].remove || out.mig[i].record.to != 3);
        }
    }
    assert_int_equal(out.c.owner[2], 1);                /* never two owners, never none */
    bc_reconcile_free(&out);
    bc_mig_set_free(&migs);
    bc_view_free(&v);
}

static void
test_mig_source_down_drops_the_move(void **state)
{
    (void)state;
    bc_view_t v;
    bc_mig_set_t migs;
    bc_reconcile_output_t out;
    mig_view(&v, "111222", "111222", "113223", 3);
    assert_int_equal(bc_mig_set_init(&migs, N), BC_OK);
    mig_opts_t o = {.parallel = 4};
    mig_run(&v, &migs, 5000, &o, &out);
    mig_apply(&v, &migs, &out);
    bc_reconcile_free(&out);

    bc_view_group(&v, 1)->nnodes = 0;
    bc_mig_report_t rep = report_ok(2, 8, "n-0000000030", 1, 1);
    o.reports = &rep;
    o.nreports = 1;
    mig_run(&v, &migs, 5050, &o, &out);
    assert_int_equal(out.mig_cutovers, 0);              /* m lost it: no cutover */
    assert_int_equal(out.c.owner[2], 0);                /* the group down rule */
    assert_false(out.c.readonly[2]);
    bool removed = false;
    for (size_t i = 0; i < out.nmig; i++) removed |= out.mig[i].bucket == 2 && out.mig[i].remove;
    assert_true(removed);
    bc_reconcile_free(&out);
    bc_mig_set_free(&migs);
    bc_view_free(&v);
}

static void
test_mig_pause_resume(void **state)
{
    (void)state;
    bc_view_t v;
    bc_mig_set_t migs;
    bc_reconcile_output_t out;
    mig_view(&v, "111222", "111222", "113223", 3);
    assert_int_equal(bc_mig_set_init(&migs, N), BC_OK);
    mig_opts_t o = {.parallel = 4, .pause = BC_RECONCILE_PAUSE_SET};
    mig_run(&v, &migs, 5000, &o, &out);
    assert_true(out.changed);
    assert_true(out.control_changed && out.control->paused);
    assert_int_equal(out.mig_started, 0);
    assert_false(out.tables_changed);
    mig_apply(&v, &migs, &out);
    bc_reconcile_free(&out);

    o.pause = BC_RECONCILE_PAUSE_KEEP;                  /* stays paused */
    mig_run(&v, &migs, 6000, &o, &out);
    assert_false(out.changed);
    bc_reconcile_free(&out);

    o.pause = BC_RECONCILE_PAUSE_CLEAR;
    mig_run(&v, &migs, 7000, &o, &out);
    assert_false(out.control->paused);
    assert_int_equal(out.mig_started, 2);
    bc_reconcile_free(&out);
    bc_mig_set_free(&migs);
    bc_view_free(&v);
}

static void
test_mig_cancel_keeps_running_copies_and_holds_groups(void **state)
{
    (void)state;
    bc_view_t v;
    bc_mig_set_t migs;
    bc_reconcile_output_t out;
    mig_view(&v, "111222", "111222", "113223", 3);
    assert_int_equal(bc_mig_set_init(&migs, N), BC_OK);
    mig_opts_t o = {.parallel = 1};
    mig_run(&v, &migs, 5000, &o, &out);                 /* bucket 2 copying */
    mig_apply(&v, &migs, &out);
    bc_reconcile_free(&out);

    o.cancel = true;
    mig_run(&v, &migs, 5010, &o, &out);
    assert_table(&out.d, "113222");                     /* bucket 5 stays put */
    assert_false(out.rebalanced);
    assert_int_equal(out.control->nheld, 0);            /* group 3 still gets bucket 2 */
    assert_int_equal(out.mig_started, 0);
    assert_true(out.c.readonly[2]);                     /* the copy goes on ... */
    mig_apply(&v, &migs, &out);
    bc_reconcile_free(&out);
    assert_true(migs.rec[2]->cancelled);                /* ... marked */

    /* it fails: its move is dropped as well, not retried; group 3, left
     * with nothing planned, is held back */
    bc_mig_report_t fail;
    memset(&fail, 0, sizeof(fail));
    fail.bucket = 2;
    fail.epoch = 8;
    snprintf(fail.error, sizeof(fail.error), "refused");
    mig_opts_t o2 = {.parallel = 1, .reports = &fail, .nreports = 1};
    bc_view_t vf;
    bc_mig_set_t mf;
    mig_view(&vf, "111222", "111222", "113222", 3);
    vf.c.readonly[2] = 1;
    assert_int_equal(bc_mig_set_init(&mf, N), BC_OK);
    assert_int_equal(bc_mig_set_put(&mf, migs.rec[2]), BC_OK);
    mig_run(&vf, &mf, 5020, &o2, &out);
    assert_int_equal(out.mig_aborted, 1);
    assert_table(&out.d, "111222");
    assert_false(out.c.readonly[2]);
    assert_true(out.mig[0].remove);
    assert_int_equal(out.control->nheld, 1);
    assert_int_equal(out.control->held[0], 3);
    assert_int_equal(out.pending_moves, 0);
    bc_reconcile_free(&out);
    bc_mig_set_free(&mf);
    bc_view_free(&vf);

    /* with nothing copying, cancel empties group 3's plan and holds it */
    bc_view_t v2;
    bc_mig_set_t migs2;
    mig_view(&v2, "111222", "111222", "113223", 3);
    assert_int_equal(bc_mig_set_init(&migs2, N), BC_OK);
    mig_run(&v2, &migs2, 5000, &o, &out);
    assert_table(&out.d, "111222");
    assert_int_equal(out.control->nheld, 1);
    assert_int_equal(out.control->held[0], 3);
    assert_int_equal(out.pending_moves, 0);
    mig_apply(&v2, &migs2, &out);
    bc_reconcile_free(&out);
    o.cancel = false;
    mig_run(&v2, &migs2, 6000, &o, &out);               /* no automatic re-plan */
    assert_false(out.changed);
    bc_reconcile_free(&out);
    o.force = true;                                     /* an explicit rebalance does */
    mig_run(&v2, &migs2, 7000, &o, &out);
    assert_table(&out.d, "113223");
    assert_int_equal(out.control->nheld, 0);
    bc_reconcile_free(&out);
    bc_mig_set_free(&migs2);
    bc_view_free(&v2);
    bc_mig_set_free(&migs);
    bc_view_free(&v);
}

static void
test_mig_stray_readonly_cleared_and_no_admin_waits(void **state)
{
    (void)state;
    bc_view_t v;
    bc_mig_set_t migs;
    bc_reconcile_output_t out;
    mig_view(&v, "111222", "111222", "113223", 3);
    v.c.readonly[0] = 1;                                /* no copy behind it */
    bc_view_group(&v, 3)->nodes[0].admin_addr[0] = '\0';    /* no admin port */
    assert_int_equal(bc_mig_set_init(&migs, N), BC_OK);
    mig_opts_t o = {.parallel = 4};
    mig_run(&v, &migs, 5000, &o, &out);
    assert_false(out.c.readonly[0]);
    assert_int_equal(out.mig_started, 0);               /* cannot reach the destination */
    assert_int_equal(out.pending_moves, 2);
    bc_reconcile_free(&out);
    bc_mig_set_free(&migs);
    bc_view_free(&v);
}

/* ---- precopy ---- */

/* The buckets of out's precopy_wanted as digits, e.g. "013". */
static void
assert_wanted(const bc_reconcile_output_t *out, const char *expect)
{
    char got[N + 1];
    size_t i = 0;
    for (; i < out->nprecopy_wanted && i < N; i++) {
        got[i] = (char)('0' + out->precopy_wanted[i].bucket);
    }
    got[i] = '\0';
    assert_string_equal(got, expect);
}

/* Moves planned: buckets 0..3 from group 1 to 3, bucket 4 from 2 to 1
 * (every group keeps something in d, so nothing is re-planned). */
#define PRE_C "111122"
#define PRE_D "333312"

/* The view above, an empty migration set, nothing precopied. */
static void
precopy_fixture(bc_view_t *v, bc_mig_set_t *migs, bc_reconcile_precopy_t pre[N])
{
    memset(pre, 0, N * sizeof(*pre));
    mig_view(v, PRE_C, PRE_C, PRE_D, 3);
    assert_int_equal(bc_mig_set_init(migs, N), BC_OK);
}

static void
test_precopy_nothing_ready_starts_nothing_and_wants_a_bounded_few(void **state)
{
    (void)state;
    bc_view_t v;
    bc_mig_set_t migs;
    bc_reconcile_output_t out;
    bc_reconcile_precopy_t pre[N];
    precopy_fixture(&v, &migs, pre);

    mig_opts_t o = {.parallel = 1, .precopy = pre};
    mig_run(&v, &migs, 5000, &o, &out);
    assert_int_equal(out.mig_started, 0);
    /* no table or record is written for a precopy; the run starts with
     * the first one (its elapsed time counts every copy) */
    assert_false(out.tables_changed);
    assert_int_equal(out.nmig, 0);
    assert_true(out.control_changed);
    assert_int_equal(out.control->run_started_ms, 5000);
    assert_false(out.c.readonly[0]);
    assert_int_equal(out.ncopying, 0);
    assert_wanted(&out, "0123");                        /* BC_MIG_PRECOPY_AHEAD * parallel */
    bc_reconcile_free(&out);
    o.precopy_ahead = 1;                                /* --precopy-ahead 1 */
    mig_run(&v, &migs, 5000, &o, &out);
    assert_wanted(&out, "0");
    o.precopy_ahead = 0;
    /* the window is capped whatever parallel * ahead */
    assert_int_equal(bc_mig_pool_precopy_window(2, 3), 6);
    assert_int_equal(bc_mig_pool_precopy_window(3, 0), 3 * BC_MIG_PRECOPY_AHEAD);
    assert_int_equal(bc_mig_pool_precopy_window(4, 99), 4 * BC_MIG_PRECOPY_AHEAD_MAX);
    assert_int_equal(bc_mig_pool_precopy_window(BC_MIG_MAX_PARALLEL, BC_MIG_PRECOPY_AHEAD_MAX),
                     BC_MIG_PRECOPY_WINDOW_MAX);
    assert_int_equal(out.precopy_wanted[0].from, 1);
    assert_int_equal(out.precopy_wanted[0].to, 3);
    bc_reconcile_free(&out);

    o.parallel = 2;
    migs.control.run_started_ms = 5000;                 /* the run started above */
    mig_run(&v, &migs, 5100, &o, &out);
    assert_false(out.changed);                          /* nothing more to write */
    assert_wanted(&out, "01234");
    bc_reconcile_free(&out);

    o.parallel = 4;                                     /* room for every planned move */
    mig_run(&v, &migs, 5000, &o, &out);
    assert_wanted(&out, "01234");
    assert_int_equal(out.precopy_wanted[4].from, 2);
    assert_int_equal(out.precopy_wanted[4].to, 1);
    bc_reconcile_free(&out);

    /* a bucket backing off after a failure is not precopied either */
    bc_mig_record_t rec;
    memset(&rec, 0, sizeof(rec));
    rec.bucket = 0;
    rec.state = BC_MIG_PENDING;
    rec.from = 1;
    rec.to = 3;
    rec.attempts = 1;
    rec.retry_at_ms = 9000;
    rec.version = 0;
    assert_int_equal(bc_mig_set_put(&migs, &rec), BC_OK);
    o.parallel = 1;
    mig_run(&v, &migs, 5000, &o, &out);
    assert_wanted(&out, "1234");
    bc_reconcile_free(&out);

    /* precopy off: copies start at once, nothing is wanted */
    o.precopy = NULL;
    mig_run(&v, &migs, 5000, &o, &out);
    assert_int_equal(out.mig_started, 1);
    assert_true(out.c.readonly[1]);
    assert_int_equal(out.nprecopy_wanted, 0);
    assert_null(out.precopy_wanted);
    bc_reconcile_free(&out);
    bc_mig_set_free(&migs);
    bc_view_free(&v);
}

static void
test_precopy_ready_for_the_same_move_starts(void **state)
{
    (void)state;
    bc_view_t v;
    bc_mig_set_t migs;
    bc_reconcile_output_t out;
    bc_reconcile_precopy_t pre[N];
    precopy_fixture(&v, &migs, pre);

    /* bucket 0 precopied for its move; bucket 1 for another destination */
    pre[0] = (bc_reconcile_precopy_t){1, 3};
    pre[1] = (bc_reconcile_precopy_t){1, 2};
    mig_opts_t o = {.parallel = 2, .precopy = pre};
    mig_run(&v, &migs, 5000, &o, &out);
    assert_int_equal(out.mig_started, 1);
    assert_true(out.c.readonly[0]);
    assert_false(out.c.readonly[1]);
    assert_int_equal(out.mig[0].bucket, 0);
    assert_int_equal(out.mig[0].record.state, BC_MIG_COPYING);
    assert_wanted(&out, "1234");                        /* 1 again, for the planned move */
    assert_int_equal(out.precopy_wanted[0].to, 3);
    bc_reconcile_free(&out);

    /* precopied buckets waiting for a slot fill the look-ahead too */
    pre[1] = (bc_reconcile_precopy_t){1, 3};
    pre[2] = (bc_reconcile_precopy_t){1, 3};
    pre[3] = (bc_reconcile_precopy_t){1, 3};
    pre[4] = (bc_reconcile_precopy_t){2, 1};
    o.parallel = 1;
    mig_run(&v, &migs, 5000, &o, &out);
    assert_int_equal(out.mig_started, 1);               /* bucket 0 */
    assert_wanted(&out, "");                            /* 1 to 4 are ready */
    bc_reconcile_free(&out);
    pre[2] = (bc_reconcile_precopy_t){0, 0};
    mig_run(&v, &migs, 5000, &o, &out);
    assert_wanted(&out, "2");
    mig_apply(&v, &migs, &out);
    bc_reconcile_free(&out);

    /* with every slot taken by a running copy the look-ahead goes on */
    mig_run(&v, &migs, 5100, &o, &out);
    assert_int_equal(out.mig_started, 0);
    assert_int_equal(out.ncopying, 1);
    assert_wanted(&out, "2");                           /* 1, 3, 4 ready, 2 wanted */
    bc_reconcile_free(&out);
    bc_mig_set_free(&migs);
    bc_view_free(&v);
}

/* Copies start in batches: while one is in flight, a bucket that becomes
 * ready waits for the next round that writes anyway (the cutover), so a
 * start never costs a commit of its own that a cutover would queue
 * behind; the cutover and the next starts are one transaction. */
static void
test_mig_copies_start_in_batches_with_the_cutover(void **state)
{
    (void)state;
    bc_view_t v;
    bc_mig_set_t migs;
    bc_reconcile_output_t out;
    bc_reconcile_precopy_t pre[N];
    precopy_fixture(&v, &migs, pre);

    /* nothing in flight: the one ready bucket starts at once */
    pre[0] = (bc_reconcile_precopy_t){1, 3};
    mig_opts_t o = {.parallel = 3, .precopy = pre};
    mig_run(&v, &migs, 5000, &o, &out);
    assert_int_equal(out.mig_started, 1);
    assert_int_equal(out.mig_deferred, 0);
    assert_true(out.c.readonly[0]);
    mig_apply(&v, &migs, &out);
    bc_reconcile_free(&out);
    uint64_t e0 = migs.rec[0]->epoch;
    assert_true(e0 > 0);

    /* 1 and 2 precopied while 0 copies: they wait, and the round writes
     * nothing (no commit), though two slots are free */
    pre[1] = (bc_reconcile_precopy_t){1, 3};
    pre[2] = (bc_reconcile_precopy_t){1, 3};
    mig_run(&v, &migs, 5100, &o, &out);
    assert_int_equal(out.mig_started, 0);
    assert_int_equal(out.mig_deferred, 2);
    assert_false(out.changed);
    assert_false(out.c.readonly[1]);
    assert_int_equal(out.ncopying, 1);
    assert_int_equal(out.mig_batch_wait_ms, 5000 + BC_RECONCILE_BATCH_WAIT_MS - 5100);
    bc_reconcile_free(&out);
    /* a copy started by a console whose clock was ahead: still at most the wait */
    mig_run(&v, &migs, 1000, &o, &out);
    assert_int_equal(out.mig_started, 0);
    assert_int_equal(out.mig_batch_wait_ms, BC_RECONCILE_BATCH_WAIT_MS);
    bc_reconcile_free(&out);
    /* ... but not for longer than BC_RECONCILE_BATCH_WAIT_MS: a long copy
     * does not idle the free slots */
    mig_run(&v, &migs, 5000 + BC_RECONCILE_BATCH_WAIT_MS, &o, &out);
    assert_int_equal(out.mig_started, 2);
    assert_int_equal(out.mig_deferred, 0);
    bc_reconcile_free(&out);

    /* 0 reports: its cutover and the starts of 1 and 2 in one transaction */
    bc_mig_report_t rep = report_ok(0, e0, "n-0000000030", 5, 500);
    o.reports = &rep;
    o.nreports = 1;
    mig_run(&v, &migs, 5200, &o, &out);
    assert_int_equal(out.mig_cutovers, 1);
    assert_int_equal(out.mig_started, 2);
    assert_int_equal(out.mig_deferred, 0);
    assert_int_equal(out.c.owner[0], 3);
    assert_false(out.c.readonly[0]);
    assert_true(out.c.readonly[1]);
    assert_true(out.c.readonly[2]);
    assert_int_equal(out.ncopying, 2);
    mig_apply(&v, &migs, &out);
    bc_reconcile_free(&out);
    uint64_t e1 = migs.rec[1]->epoch;
    assert_int_equal(migs.rec[2]->epoch, e1);           /* one batch, one epoch */

    /* 3 ready while 1 and 2 copy: it waits; 1 fails: the abort is a write,
     * so 3 starts with it (and 1, backing off, does not) */
    pre[3] = (bc_reconcile_precopy_t){1, 3};
    o.reports = NULL;
    o.nreports = 0;
    mig_run(&v, &migs, 5300, &o, &out);
    assert_int_equal(out.mig_started, 0);
    assert_int_equal(out.mig_deferred, 1);
    assert_false(out.changed);
    bc_reconcile_free(&out);
    bc_mig_report_t fail = report_ok(1, e1, "n-0000000030", 0, 0);
    fail.ok = false;
    snprintf(fail.error, sizeof(fail.error), "import failed");
    o.reports = &fail;
    o.nreports = 1;
    mig_run(&v, &migs, 5400, &o, &out);
    assert_int_equal(out.mig_aborted, 1);
    assert_int_equal(out.mig_started, 1);
    assert_false(out.c.readonly[1]);
    assert_true(out.c.readonly[3]);
    bc_reconcile_free(&out);

    /* precopy off: the same rule (a retry whose backoff ran out waits for
     * the next cutover while a copy is in flight) */
    o.precopy = NULL;
    o.reports = NULL;
    o.nreports = 0;
    mig_run(&v, &migs, 5300, &o, &out);
    assert_int_equal(out.mig_started, 0);
    assert_int_equal(out.mig_deferred, 1);             /* bucket 3 (1 slot free) */
    assert_false(out.changed);
    bc_reconcile_free(&out);
    bc_mig_set_free(&migs);
    bc_view_free(&v);
}

static void
test_precopy_paused_wants_nothing(void **state)
{
    (void)state;
    bc_view_t v;
    bc_mig_set_t migs;
    bc_reconcile_output_t out;
    bc_reconcile_precopy_t pre[N];
    precopy_fixture(&v, &migs, pre);
    pre[0] = (bc_reconcile_precopy_t){1, 3};
    mig_opts_t o = {.parallel = 2, .precopy = pre, .pause = BC_RECONCILE_PAUSE_SET};
    mig_run(&v, &migs, 5000, &o, &out);
    assert_int_equal(out.mig_started, 0);
    assert_int_equal(out.nprecopy_wanted, 0);
    mig_apply(&v, &migs, &out);
    bc_reconcile_free(&out);

    o.pause = BC_RECONCILE_PAUSE_KEEP;                  /* stays paused */
    mig_run(&v, &migs, 6000, &o, &out);
    assert_false(out.changed);
    assert_int_equal(out.nprecopy_wanted, 0);
    bc_reconcile_free(&out);

    o.pause = BC_RECONCILE_PAUSE_CLEAR;
    mig_run(&v, &migs, 7000, &o, &out);
    assert_int_equal(out.mig_started, 1);
    assert_wanted(&out, "1234");
    bc_reconcile_free(&out);
    bc_mig_set_free(&migs);
    bc_view_free(&v);
}

static void
test_mig_destination_backing_off_starts_nothing(void **state)
{
    (void)state;
    bc_view_t v;
    bc_mig_set_t migs;
    bc_reconcile_output_t out;
    mig_view(&v, "111222", "111222", "113223", 3);
    assert_int_equal(bc_mig_set_init(&migs, N), BC_OK);
    /* group 3's copies failed: it backs off until 6000 */
    bc_mig_dest_backoffs_t d = {0};
    assert_true(bc_mig_dest_note(&d, 3, "n-0000000030", false, "destination unreachable", 5500));
    mig_opts_t o = {.parallel = 4, .dest_backoff = d.v, .ndest_backoff = d.n};
    mig_run(&v, &migs, 5600, &o, &out);
    assert_int_equal(out.mig_started, 0);
    assert_int_equal(out.mig_held_back, 2);
    assert_false(out.tables_changed);                  /* no source bucket made read-only */
    bc_reconcile_free(&out);
    /* ... a new primary of group 3 is not held back by the old one's failures */
    snprintf(v.groups[2].primary.node, sizeof(v.groups[2].primary.node), "n-0000000031");
    snprintf(v.groups[2].nodes[0].name, sizeof(v.groups[2].nodes[0].name), "n-0000000031");
    mig_run(&v, &migs, 5600, &o, &out);
    assert_int_equal(out.mig_started, 2);
    bc_reconcile_free(&out);
    snprintf(v.groups[2].primary.node, sizeof(v.groups[2].primary.node), "n-0000000030");
    snprintf(v.groups[2].nodes[0].name, sizeof(v.groups[2].nodes[0].name), "n-0000000030");
    /* ... once its time is up ONE starts, a probe: a destination still
     * down costs one failure per backoff step */
    mig_run(&v, &migs, 6000, &o, &out);
    assert_int_equal(out.mig_started, 1);
    assert_int_equal(out.mig_held_back, 1);
    bc_reconcile_free(&out);
    /* ... and once a job towards it succeeded, all of them */
    assert_false(bc_mig_dest_note(&d, 3, "n-0000000030", true, "", 6100));
    o.dest_backoff = d.v;
    o.ndest_backoff = d.n;
    mig_run(&v, &migs, 6100, &o, &out);
    assert_int_equal(out.mig_started, 2);
    assert_int_equal(out.mig_held_back, 0);
    bc_reconcile_free(&out);
    /* a group whose primary's registration is gone gets nothing either */
    v.groups[2].nodes[0].name[2] = '9';
    mig_run(&v, &migs, 6000, &o, &out);
    assert_int_equal(out.mig_started, 0);
    assert_int_equal(out.mig_held_back, 2);
    bc_reconcile_free(&out);
    bc_mig_dest_backoffs_free(&d);
    bc_mig_set_free(&migs);
    bc_view_free(&v);
}

static void
test_mig_codecs(void **state)
{
    (void)state;
    bc_mig_record_t r, back;
    memset(&r, 0, sizeof(r));
    r.bucket = 7;
    r.state = BC_MIG_COPYING;
    r.from = 1;
    r.to = 4;
    r.epoch = 123;
    snprintf(r.from_node, sizeof(r.from_node), "n-0000000001");
    snprintf(r.to_node, sizeof(r.to_node), "n-0000000009");
    r.started_ms = 1700000000000;
    r.attempts = 2;
    snprintf(r.error, sizeof(r.error), "timed out");
    r.cancelled = true;
    char *json = bc_mig_record_encode(&r);
    char err[256];
    assert_int_equal(bc_mig_record_decode(json, strlen(json), 7, &back, err, sizeof(err)), BC_OK);
    assert_int_equal(back.epoch, 123);
    assert_int_equal(back.to, 4);
    assert_string_equal(back.to_node, "n-0000000009");
    assert_true(back.started_ms == 1700000000000);
    assert_string_equal(back.error, "timed out");
    assert_true(back.cancelled);
    /* the znode name must match */
    assert_int_equal(bc_mig_record_decode(json, strlen(json), 8, &back, err, sizeof(err)), BC_EINVAL);
    free(json);
    const char *bad[] = {
        "", "[]", "{\"state\":\"moving\",\"from\":1,\"to\":2,\"epoch\":1}",
        "{\"state\":\"copying\",\"from\":1,\"to\":1,\"epoch\":1}",
        "{\"state\":\"copying\",\"from\":1,\"to\":2,\"epoch\":0}",
        "{\"state\":\"copying\",\"from\":1,\"to\":2,\"epoch\":1.5}",
        "{\"state\":\"pending\",\"from\":-1,\"to\":2}",
        "{\"state\":\"pending\",\"from\":1,\"to\":2,\"to_node\":\"0123456789012345678901234567890123\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(bc_mig_record_decode(bad[i], strlen(bad[i]), 0, &back, err, sizeof(err)),
                         BC_EINVAL);
    }

    bc_mig_control_t *c = malloc(sizeof(*c)), *c2 = malloc(sizeof(*c2));
    bc_mig_control_init(c);
    c->paused = true;
    c->held[c->nheld++] = 5;
    c->run_started_ms = 10;
    for (uint32_t i = 0; i < BC_MIG_STALL_SAMPLES + 10; i++) {
        bc_mig_done_t d = {.bucket = i % 6, .from = 1, .to = 2, .items = 1, .bytes = 10,
                           .stall_ms = i, .finished_ms = 20};
        bc_mig_control_add_done(c, &d);
    }
    assert_int_equal(c->nstalls, BC_MIG_STALL_SAMPLES);
    assert_int_equal(c->nrecent, BC_MIG_RECENT);
    json = bc_mig_control_encode(c);
    assert_int_equal(bc_mig_control_decode(json, strlen(json), c2, err, sizeof(err)), BC_OK);
    assert_true(c2->paused);
    assert_int_equal(c2->nheld, 1);
    assert_int_equal(c2->moved, BC_MIG_STALL_SAMPLES + 10);
    assert_int_equal(c2->nstalls, BC_MIG_STALL_SAMPLES);
    /* the oldest samples fell out: the minimum is 10 */
    assert_int_equal(bc_mig_control_stall_pct(c2, 0.001), 10);
    assert_int_equal(bc_mig_control_stall_pct(c2, 100), BC_MIG_STALL_SAMPLES + 9);
    assert_int_equal(c2->recent[BC_MIG_RECENT - 1].stall_ms, BC_MIG_STALL_SAMPLES + 9);
    free(json);
    assert_int_equal(bc_mig_control_decode("", 0, c2, err, sizeof(err)), BC_OK);
    assert_false(c2->paused);
    assert_int_equal(bc_mig_control_decode("{\"paused\":1}", 12, c2, err, sizeof(err)), BC_EINVAL);
    assert_int_equal(bc_mig_control_decode("{\"run\":{\"stall_ms\":[-1]}}", 25, c2, err,
                                           sizeof(err)), BC_EINVAL);
    free(c);
    free(c2);
    assert_int_equal(bc_mig_backoff_ms(1), 500);
    assert_int_equal(bc_mig_backoff_ms(2), 1000);
    assert_int_equal(bc_mig_backoff_ms(30), 30000);
}

#define NP 8

/* The one count of moves every report shows (bc_mig_progress_count). */
static void
test_mig_progress_one_count(void **state)
{
    (void)state;
    /* b0: done (m == d); b1: copying; b2, b3: planned; b4: d is 0 (its
     * planned owner is down: nowhere to go); b5: m is 0 (an assignment);
     * b6: pending after a failure; b7: a copying record whose plan changed
     * under it (m == d now): still moving until it cuts over or aborts. */
    uint32_t m[NP] = {1, 1, 1, 2, 1, 0, 2, 3};
    uint32_t d[NP] = {1, 3, 3, 3, 0, 2, 3, 3};
    bc_mig_record_t copying = {.state = BC_MIG_COPYING}, waiting = {.state = BC_MIG_PENDING,
                                                                   .attempts = 2};
    bc_mig_record_t *rec[NP] = {NULL, &copying, NULL, NULL, NULL, NULL, &waiting, &copying};
    bc_mig_control_t c;
    bc_mig_control_init(&c);
    bc_mig_progress_t p;

    /* a run under way: 5 done so far */
    c.run_started_ms = 1000;
    c.moved = 5;
    bc_mig_progress_count(m, d, NP, rec, &c, &p);
    assert_true(p.running);
    assert_int_equal(p.moving, 2);
    assert_int_equal(p.pending, 3);
    assert_int_equal(p.done, 5);
    assert_int_equal(p.total, 10);

    /* the last run ended (204 moved) and new moves wait, paused or not:
     * they are the next run's, "0 of 5", not "204 of 209" */
    c.run_finished_ms = 2000;
    c.moved = 204;
    bc_mig_progress_count(m, d, NP, rec, &c, &p);
    assert_false(p.running);
    assert_int_equal(p.done, 0);
    assert_int_equal(p.total, 5);

    /* nothing left: the last run's count stands */
    uint32_t same[NP] = {1, 1, 1, 2, 1, 0, 2, 3};
    bc_mig_progress_count(same, same, NP, NULL, &c, &p);
    assert_int_equal(p.moving + p.pending, 0);
    assert_int_equal(p.done, 204);
    assert_int_equal(p.total, 204);
    /* the rule the CLI's table view counts with too */
    assert_true(bc_table_move_planned(1, 3));
    assert_false(bc_table_move_planned(1, 0));
    assert_false(bc_table_move_planned(0, 2));
    assert_false(bc_table_move_planned(2, 2));
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
        cmocka_unit_test(test_failover_only_from_the_in_sync_set),
        cmocka_unit_test(test_failover_waits_without_an_in_sync_member_and_unclean_reports),
        cmocka_unit_test(test_group_without_nodes_loses_both_records),
        cmocka_unit_test(test_old_primary_registered_anew_is_promoted_again),
        cmocka_unit_test(test_mig_start_sets_readonly_and_records),
        cmocka_unit_test(test_mig_parallel_bound_and_resume_after_takeover),
        cmocka_unit_test(test_mig_report_cuts_over_and_run_finishes),
        cmocka_unit_test(test_mig_stale_report_rejected),
        cmocka_unit_test(test_mig_failure_gives_bucket_back_and_backs_off),
        cmocka_unit_test(test_mig_destination_down_or_replaced_aborts),
        cmocka_unit_test(test_mig_source_down_drops_the_move),
        cmocka_unit_test(test_mig_pause_resume),
        cmocka_unit_test(test_mig_cancel_keeps_running_copies_and_holds_groups),
        cmocka_unit_test(test_mig_stray_readonly_cleared_and_no_admin_waits),
        cmocka_unit_test(test_precopy_nothing_ready_starts_nothing_and_wants_a_bounded_few),
        cmocka_unit_test(test_precopy_ready_for_the_same_move_starts),
        cmocka_unit_test(test_mig_copies_start_in_batches_with_the_cutover),
        cmocka_unit_test(test_precopy_paused_wants_nothing),
        cmocka_unit_test(test_mig_destination_backing_off_starts_nothing),
        cmocka_unit_test(test_mig_codecs),
        cmocka_unit_test(test_mig_progress_one_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
