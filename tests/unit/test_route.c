/*
 * test_route.c -- the routing and fencing decisions of a cluster node
 * (node/cluster/route.c): given a table, an epoch, a role, a lease and
 * local fences, what does a request for a bucket get?
 *
 *     SERVE        this group owns the bucket and this node may do it
 *     MOVED        another group owns it (the owner is named)
 *     NO_OWNER     nobody owns it
 *     NOT_PRIMARY  this node is a backup, or a write lacks the gate or the
 *                  lease
 *     READONLY     a write to a bucket being migrated (by the table, or by
 *                  a local fence set ahead of it)
 *
 * The cluster object is built without ZooKeeper (test_node_fake.h); the
 * test plays the agent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "bc_time.h"
#include "bc_wire.h"
#include "cluster/cluster.h"
#include "test_node_fake.h"

#define NB   8                        /* buckets */
#define SELF 1                        /* this node's group */

/* Buckets 0-3 are ours, 4-5 group 2's, 6-7 nobody's. */
static const uint32_t owners[NB] = {SELF, SELF, SELF, SELF, 2, 2, 0, 0};

static bc_route_t
route(bc_node_cluster_t *cl, uint32_t b, bool write, uint32_t *owner, uint64_t *epoch)
{
    return bc_node_cluster_route(cl, b, write, owner, epoch);
}

static void
test_route_names_the_owner_of_every_bucket(void **state)
{
    (void)state;
    bc_node_cluster_t *cl = fake_cluster_new(SELF, NB);
    fake_cluster_table(cl, 5, owners, NULL, 0);
    fake_cluster_primary(cl);
    uint32_t owner = 99;
    uint64_t epoch = 0;

    assert_int_equal(route(cl, 0, false, &owner, &epoch), BC_ROUTE_SERVE);
    assert_int_equal(owner, SELF);
    assert_int_equal(epoch, 5);
    assert_int_equal(route(cl, 3, true, &owner, &epoch), BC_ROUTE_SERVE);
    assert_int_equal(route(cl, 4, false, &owner, &epoch), BC_ROUTE_MOVED);
    assert_int_equal(owner, 2);
    assert_int_equal(route(cl, 5, true, &owner, NULL), BC_ROUTE_MOVED);
    assert_int_equal(route(cl, 6, false, &owner, &epoch), BC_ROUTE_NO_OWNER);
    assert_int_equal(owner, 0);
    assert_int_equal(route(cl, 7, true, NULL, NULL), BC_ROUTE_NO_OWNER);
    /* A bucket past the table (a hostile or confused caller): nobody's. */
    assert_int_equal(route(cl, NB, false, &owner, &epoch), BC_ROUTE_NO_OWNER);
    assert_int_equal(route(cl, UINT32_MAX, true, &owner, &epoch), BC_ROUTE_NO_OWNER);

    /* A new table moves bucket 3 away and gives bucket 6 to us. */
    uint32_t next[NB] = {SELF, SELF, SELF, 2, 2, 2, SELF, 0};
    fake_cluster_table(cl, 6, next, NULL, 0);
    assert_int_equal(route(cl, 3, false, &owner, &epoch), BC_ROUTE_MOVED);
    assert_int_equal(owner, 2);
    assert_int_equal(epoch, 6);
    assert_int_equal(route(cl, 6, true, &owner, &epoch), BC_ROUTE_SERVE);
    bc_node_cluster_info_t info;
    bc_node_cluster_get_info(cl, &info);
    assert_int_equal(info.owned_buckets, 4);
    assert_int_equal(info.epoch, 6);
    bc_node_cluster_free(cl);
}

static void
test_route_backup_serves_nothing_of_its_group(void **state)
{
    (void)state;
    bc_node_cluster_t *cl = fake_cluster_new(SELF, NB);
    fake_cluster_table(cl, 5, owners, NULL, 0);
    /* Not primary: its own group's buckets go to the primary, reads too
     * (a backup may lag); other groups' are still MOVED, nobody's NO_OWNER. */
    assert_int_equal(route(cl, 0, false, NULL, NULL), BC_ROUTE_NOT_PRIMARY);
    assert_int_equal(route(cl, 0, true, NULL, NULL), BC_ROUTE_NOT_PRIMARY);
    assert_int_equal(route(cl, 4, false, NULL, NULL), BC_ROUTE_MOVED);
    assert_int_equal(route(cl, 6, false, NULL, NULL), BC_ROUTE_NO_OWNER);
    assert_false(bc_node_cluster_is_primary(cl));
    assert_false(bc_node_cluster_may_write(cl));

    /* Promoted, then demoted again: the role is what the route reads. */
    fake_cluster_primary(cl);
    assert_int_equal(route(cl, 0, true, NULL, NULL), BC_ROUTE_SERVE);
    bc__node_cluster_set_role(cl, false, "test");
    assert_int_equal(route(cl, 0, false, NULL, NULL), BC_ROUTE_NOT_PRIMARY);
    bc_node_cluster_free(cl);
}

static void
test_route_readonly_bucket_refuses_writes_only(void **state)
{
    (void)state;
    bc_node_cluster_t *cl = fake_cluster_new(SELF, NB);
    const uint32_t ro[] = {2};
    fake_cluster_table(cl, 5, owners, ro, 1);
    fake_cluster_primary(cl);
    assert_int_equal(route(cl, 2, false, NULL, NULL), BC_ROUTE_SERVE);
    assert_int_equal(route(cl, 2, true, NULL, NULL), BC_ROUTE_READONLY);
    assert_int_equal(route(cl, 1, true, NULL, NULL), BC_ROUTE_SERVE);
    /* The move is called off: the next table makes it writable again. */
    fake_cluster_table(cl, 6, owners, NULL, 0);
    assert_int_equal(route(cl, 2, true, NULL, NULL), BC_ROUTE_SERVE);
    /* A read-only bucket of another group is MOVED first. */
    const uint32_t ro4[] = {4};
    fake_cluster_table(cl, 7, owners, ro4, 1);
    assert_int_equal(route(cl, 4, true, NULL, NULL), BC_ROUTE_MOVED);
    bc_node_cluster_free(cl);
}

static void
test_route_write_needs_a_live_lease(void **state)
{
    (void)state;
    bc_node_cluster_t *cl = fake_cluster_new(SELF, NB);
    fake_cluster_table(cl, 5, owners, NULL, 0);
    bc__node_cluster_set_role(cl, true, NULL);

    /* Primary, but no lease yet: reads are served, writes refused and
     * counted as fenced. */
    assert_int_equal(route(cl, 0, false, NULL, NULL), BC_ROUTE_SERVE);
    assert_int_equal(route(cl, 0, true, NULL, NULL), BC_ROUTE_NOT_PRIMARY);
    assert_int_equal(route(cl, 1, true, NULL, NULL), BC_ROUTE_NOT_PRIMARY);
    assert_int_equal(atomic_load(&cl->fenced_writes), 2);

    /* A lease from a round trip sent 10 s ago under a 4 s session lapsed
     * long ago (it lasts 3/4 of the session from the send). */
    int64_t now = bc_time_mono_ms();
    bc__node_cluster_lease_grant(cl, now - 10000, 4000);
    assert_int_equal(route(cl, 0, true, NULL, NULL), BC_ROUTE_NOT_PRIMARY);
    /* One sent now lasts 3 s. */
    bc__node_cluster_lease_grant(cl, now, 4000);
    assert_int_equal(route(cl, 0, true, NULL, NULL), BC_ROUTE_SERVE);
    assert_true(bc_node_cluster_may_write(cl));
    assert_true(atomic_load(&cl->lease_until) >= now + 3000);
    /* A late answer to an older round trip never shortens it. */
    int64_t until = atomic_load(&cl->lease_until);
    bc__node_cluster_lease_grant(cl, now - 2000, 4000);
    assert_int_equal(atomic_load(&cl->lease_until), until);
    /* Lapsed (by more than the coarse clock's tick, which may_write reads):
     * writes stop even though the role stays. */
    atomic_store(&cl->lease_until, now - 100);
    assert_int_equal(route(cl, 0, true, NULL, NULL), BC_ROUTE_NOT_PRIMARY);
    assert_int_equal(route(cl, 0, false, NULL, NULL), BC_ROUTE_SERVE);
    assert_true(bc_node_cluster_is_primary(cl));

    /* --no-write-fencing: no lease needed. */
    cl->no_write_fencing = true;
    assert_int_equal(route(cl, 0, true, NULL, NULL), BC_ROUTE_SERVE);
    bc_node_cluster_free(cl);
}

static void
test_route_write_gate_opens_only_on_a_primary(void **state)
{
    (void)state;
    bc_node_cluster_t *cl = fake_cluster_new(SELF, NB);
    fake_cluster_table(cl, 5, owners, NULL, 0);
    bc_node_cluster_use_write_gate(cl);
    fake_cluster_primary(cl);
    /* Replication is not ready: the gate is closed. */
    assert_int_equal(route(cl, 0, true, NULL, NULL), BC_ROUTE_NOT_PRIMARY);
    assert_int_equal(route(cl, 0, false, NULL, NULL), BC_ROUTE_SERVE);
    assert_true(bc_node_cluster_open_writes(cl));
    assert_int_equal(route(cl, 0, true, NULL, NULL), BC_ROUTE_SERVE);
    bc_node_cluster_close_writes(cl);
    assert_int_equal(route(cl, 0, true, NULL, NULL), BC_ROUTE_NOT_PRIMARY);
    assert_true(bc_node_cluster_open_writes(cl));

    /* Losing the role closes the gate; winning it back does not open it. */
    bc__node_cluster_set_role(cl, false, "session expired");
    bc__node_cluster_set_role(cl, true, NULL);
    assert_int_equal(route(cl, 0, true, NULL, NULL), BC_ROUTE_NOT_PRIMARY);
    /* A backup cannot open it. */
    bc__node_cluster_set_role(cl, false, NULL);
    assert_false(bc_node_cluster_open_writes(cl));
    bc__node_cluster_set_role(cl, true, NULL);
    assert_int_equal(route(cl, 0, true, NULL, NULL), BC_ROUTE_NOT_PRIMARY);
    bc_node_cluster_free(cl);
}

static int role_changes;

static void
count_role_change(void *ctx)
{
    (void)ctx;
    role_changes++;
}

static void
test_route_role_hook_hears_every_change_once(void **state)
{
    (void)state;
    bc_node_cluster_t *cl = fake_cluster_new(SELF, NB);
    role_changes = 0;
    bc_node_cluster_set_role_hook(cl, count_role_change, NULL);
    bc__node_cluster_set_role(cl, true, NULL);
    bc__node_cluster_set_role(cl, true, NULL);       /* no change */
    bc__node_cluster_set_role(cl, false, "test");
    bc__node_cluster_set_role(cl, false, NULL);      /* no change */
    assert_int_equal(role_changes, 2);
    bc_node_cluster_free(cl);
}

static void
test_route_local_fence_runs_ahead_of_the_table(void **state)
{
    (void)state;
    bc_node_cluster_t *cl = fake_cluster_new(SELF, NB);
    fake_cluster_table(cl, 5, owners, NULL, 0);
    fake_cluster_primary(cl);
    uint64_t gen0 = bc_node_cluster_route_gen(cl), gen = 0, again = 0, epoch = 0;

    /* An export asks for epoch 7 before this node has read it: bucket 1
     * turns read-only here at once, and the fence has its own generation. */
    assert_true(bc_node_cluster_fence(cl, 1, 7, &gen));
    assert_true(gen > gen0);
    assert_int_equal(bc_node_cluster_route_gen(cl), gen);
    assert_int_equal(route(cl, 1, true, NULL, &epoch), BC_ROUTE_READONLY);
    assert_int_equal(epoch, 5);
    assert_int_equal(route(cl, 1, false, NULL, NULL), BC_ROUTE_SERVE);
    assert_int_equal(route(cl, 0, true, NULL, NULL), BC_ROUTE_SERVE);
    /* Asked again (a parked export looking again) after another bucket's
     * fence moved the generation on: still the generation of its own fence,
     * or a busy node's workers might never catch up with it. */
    uint64_t other = 0;
    assert_true(bc_node_cluster_fence(cl, 0, 7, &other));
    assert_true(other > gen);
    assert_true(bc_node_cluster_fence(cl, 1, 7, &again));
    assert_int_equal(again, gen);

    /* A table still short of epoch 7 (the bucket writable in it) does not
     * lift the fence... */
    fake_cluster_table(cl, 6, owners, NULL, 0);
    assert_int_equal(route(cl, 1, true, NULL, NULL), BC_ROUTE_READONLY);
    assert_true(bc_node_cluster_route_gen(cl) > gen);
    /* ...the table at epoch 7 decides: here the move was called off. */
    fake_cluster_table(cl, 7, owners, NULL, 0);
    assert_int_equal(route(cl, 1, true, NULL, NULL), BC_ROUTE_SERVE);

    /* Not applicable: the tables reached the epoch, it is implausibly far
     * ahead, the bucket is another group's or nobody's, or out of range. */
    assert_false(bc_node_cluster_fence(cl, 1, 7, &gen));
    assert_false(bc_node_cluster_fence(cl, 1, 3, &gen));
    assert_false(bc_node_cluster_fence(cl, 1, 7 + 65, &gen));
    assert_true(bc_node_cluster_fence(cl, 2, 7 + 64, &gen));
    assert_false(bc_node_cluster_fence(cl, 4, 8, &gen));
    assert_false(bc_node_cluster_fence(cl, 6, 8, &gen));
    assert_false(bc_node_cluster_fence(cl, NB, 8, &gen));
    bc_node_cluster_free(cl);
}

/* The write pause of a bucket this node serves as primary is timed from
 * its read-only bit (the table's or a local fence's) to writes going on
 * (the bucket moved away, or writable again), once per pause; a backup
 * and other groups' buckets time nothing. */
static void
test_route_write_pauses_are_timed(void **state)
{
    (void)state;
    bc_node_cluster_t *cl = fake_cluster_new(SELF, NB);
    fake_cluster_table(cl, 5, owners, NULL, 0);
    fake_cluster_primary(cl);
    bc_node_cluster_info_t info;

    /* bucket 2: read-only by the table, kept so by the next, then moved */
    const uint32_t ro[] = {2, 4};
    fake_cluster_table(cl, 6, owners, ro, 2);
    bc_time_sleep_ms(3);
    fake_cluster_table(cl, 7, owners, ro, 2);
    bc_node_cluster_get_info(cl, &info);
    assert_int_equal(info.write_pauses, 0);
    uint32_t moved[NB];
    memcpy(moved, owners, sizeof(moved));
    moved[2] = 2;
    fake_cluster_table(cl, 8, moved, NULL, 0);
    bc_node_cluster_get_info(cl, &info);
    assert_int_equal(info.write_pauses, 1);
    assert_true(info.write_pause_max_us >= 3000);
    assert_int_equal(info.write_pause_sum_us, info.write_pause_max_us);
    uint64_t n = 0;
    for (int k = 0; k <= BC_NODE_PAUSE_NBOUNDS; k++) n += info.write_pause_hist[k];
    assert_int_equal(n, 1);
    assert_int_equal(info.write_pause_hist[0], 0);       /* over 1 ms */

    /* bucket 1: a local fence begins it, the table at its epoch (the move
     * called off) ends it */
    uint64_t gen;
    assert_true(bc_node_cluster_fence(cl, 1, 9, &gen));
    fake_cluster_table(cl, 9, moved, NULL, 0);
    bc_node_cluster_get_info(cl, &info);
    assert_int_equal(info.write_pauses, 2);

    /* a backup times nothing */
    bc__node_cluster_set_role(cl, false, NULL);
    const uint32_t ro0[] = {0};
    fake_cluster_table(cl, 10, moved, ro0, 1);
    fake_cluster_table(cl, 11, moved, NULL, 0);
    bc_node_cluster_get_info(cl, &info);
    assert_int_equal(info.write_pauses, 2);
    bc_node_cluster_free(cl);
}

static void
test_route_stale_local_fence_is_lifted(void **state)
{
    (void)state;
    bc_node_cluster_t *cl = fake_cluster_new(SELF, NB);
    fake_cluster_table(cl, 5, owners, NULL, 0);
    fake_cluster_primary(cl);
    uint64_t gen;
    assert_true(bc_node_cluster_fence(cl, 3, 6, &gen));
    assert_int_equal(route(cl, 3, true, NULL, NULL), BC_ROUTE_READONLY);
    /* The tables never get to epoch 6 (the console died mid-move): after
     * 30 s without them a table publication lifts the fence. */
    cl->fence_ms[3] -= 31000;
    fake_cluster_table(cl, 5, owners, NULL, 0);
    assert_int_equal(route(cl, 3, true, NULL, NULL), BC_ROUTE_SERVE);
    /* A fresh fence is kept across the same publication. */
    assert_true(bc_node_cluster_fence(cl, 2, 6, &gen));
    fake_cluster_table(cl, 5, owners, NULL, 0);
    assert_int_equal(route(cl, 2, true, NULL, NULL), BC_ROUTE_READONLY);
    bc_node_cluster_free(cl);
}

static void
test_route_refusal_lines_name_bucket_group_and_epoch(void **state)
{
    (void)state;
    char buf[BC_WIRE_REFUSAL_MAX];
    static const struct {
        bc_route_t route;
        const char *line;
    } cases[] = {
        {BC_ROUTE_MOVED, "SERVER_ERROR MOVED 17 3 42\r\n"},
        {BC_ROUTE_NO_OWNER, "SERVER_ERROR NO_OWNER 17 42\r\n"},
        {BC_ROUTE_READONLY, "SERVER_ERROR READONLY 17 42\r\n"},
        {BC_ROUTE_NOT_PRIMARY, "SERVER_ERROR NOT_PRIMARY 17 3 42\r\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int n = bc_node_cluster_format_refusal(cases[i].route, 17, 3, 42, buf, sizeof(buf));
        assert_int_equal(n, (int)strlen(cases[i].line));
        assert_string_equal(buf, cases[i].line);
    }
    /* SERVE is not a refusal. */
    assert_int_equal(bc_node_cluster_format_refusal(BC_ROUTE_SERVE, 17, 3, 42, buf, sizeof(buf)),
                     0);
}

static void
test_route_standalone_serves_everything(void **state)
{
    (void)state;
    uint32_t owner = 7;
    assert_int_equal(bc_node_cluster_route(NULL, 3, true, &owner, NULL), BC_ROUTE_SERVE);
    assert_true(bc_node_cluster_may_write(NULL));
    assert_false(bc_node_cluster_is_primary(NULL));
    assert_int_equal(bc_node_cluster_route_gen(NULL), 0);
    uint64_t gen = 0;
    assert_false(bc_node_cluster_fence(NULL, 3, 2, &gen));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_names_the_owner_of_every_bucket),
        cmocka_unit_test(test_route_backup_serves_nothing_of_its_group),
        cmocka_unit_test(test_route_readonly_bucket_refuses_writes_only),
        cmocka_unit_test(test_route_write_needs_a_live_lease),
        cmocka_unit_test(test_route_write_gate_opens_only_on_a_primary),
        cmocka_unit_test(test_route_role_hook_hears_every_change_once),
        cmocka_unit_test(test_route_write_pauses_are_timed),
        cmocka_unit_test(test_route_local_fence_runs_ahead_of_the_table),
        cmocka_unit_test(test_route_stale_local_fence_is_lifted),
        cmocka_unit_test(test_route_refusal_lines_name_bucket_group_and_epoch),
        cmocka_unit_test(test_route_standalone_serves_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
