/*
 * test_isr.c -- the in-sync set's pieces that decide without I/O: the
 * record's codec (common/bc_cluster.h), a group's min_in_sync setting and
 * its default per mode, the primary's plan after each change
 * (bc__repl_isr_plan, node/repl/isr.c: who is recorded in and out, when
 * writes are refused), and the console's per-destination migration
 * backoff (console/migrate.h).
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

#include "bc_cluster.h"
#include "migrate.h"
#include "repl/repl.h"

/* ---- the record ---- */

static void
decode_fails(const char *json, const char *field)
{
    bc_cluster_isr_t r;
    char err[200] = "";
    assert_int_equal(bc_cluster_isr_decode(json, strlen(json), &r, err, sizeof(err)), BC_EINVAL);
    assert_non_null(strstr(err, field));
    assert_int_equal(r.n, 0);                   /* nothing half-decoded */
}

static void
test_record_round_trip_and_hostile_input(void **state)
{
    (void)state;
    bc_cluster_isr_t r, back;
    memset(&r, 0, sizeof(r));
    snprintf(r.primary, sizeof(r.primary), "n-0000000004");
    r.epoch = 42;
    assert_true(bc_cluster_isr_add(&r, "n-0000000007"));
    assert_true(bc_cluster_isr_add(&r, "n-0000000009"));
    assert_false(bc_cluster_isr_add(&r, "n-0000000007"));          /* no duplicates */
    r.offset = 123456;
    r.at_ms = 1795306238816;
    char *json = bc_cluster_isr_encode(&r);
    assert_non_null(json);
    assert_string_equal(json, "{\"primary\":\"n-0000000004\",\"epoch\":42,\"in_sync\":"
                              "[\"n-0000000007\",\"n-0000000009\"],\"offset\":123456,"
                              "\"at_ms\":1795306238816}");
    assert_int_equal(bc_cluster_isr_decode(json, strlen(json), &back, NULL, 0), BC_OK);
    free(json);
    assert_memory_equal(&r, &back, sizeof(r));
    assert_true(bc_cluster_isr_has(&back, "n-0000000009"));
    assert_false(bc_cluster_isr_has(&back, "n-0000000004"));

    bc_cluster_primary_info_t p = {.epoch = 42};
    snprintf(p.node, sizeof(p.node), "n-0000000004");
    assert_true(bc_cluster_isr_of(&back, &p));
    /* the primary record carries its process's incarnation (optional) */
    snprintf(p.data_addr, sizeof(p.data_addr), "10.0.0.1:11211");
    snprintf(p.incarnation, sizeof(p.incarnation), "0123456789abcdef");
    char *pj = bc_cluster_primary_info_encode(&p);
    bc_cluster_primary_info_t pb;
    assert_int_equal(bc_cluster_primary_info_decode(pj, strlen(pj), &pb, NULL, 0), BC_OK);
    free(pj);
    assert_string_equal(pb.incarnation, "0123456789abcdef");
    const char *old = "{\"node\":\"n-1\",\"data\":\"h:1\",\"epoch\":3}";
    assert_int_equal(bc_cluster_primary_info_decode(old, strlen(old), &pb, NULL, 0), BC_OK);
    assert_string_equal(pb.incarnation, "");
    p.epoch = 43;
    assert_false(bc_cluster_isr_of(&back, &p));                   /* another term */

    assert_true(bc_cluster_isr_remove(&back, "n-0000000007"));
    assert_false(bc_cluster_isr_remove(&back, "n-0000000007"));
    assert_int_equal(back.n, 1);
    assert_string_equal(back.in_sync[0], "n-0000000009");

    /* offset and at_ms are optional; an empty set is a set */
    const char *min = "{\"primary\":\"n-1\",\"epoch\":0,\"in_sync\":[]}";
    assert_int_equal(bc_cluster_isr_decode(min, strlen(min), &back, NULL, 0), BC_OK);
    assert_int_equal(back.n, 0);

    decode_fails("[]", "not a JSON object");
    decode_fails("{\"epoch\":1,\"in_sync\":[]}", "primary");
    decode_fails("{\"primary\":\"x-1\",\"epoch\":1,\"in_sync\":[]}", "primary");
    decode_fails("{\"primary\":\"n-1\",\"in_sync\":[]}", "epoch");
    decode_fails("{\"primary\":\"n-1\",\"epoch\":-1,\"in_sync\":[]}", "epoch");
    decode_fails("{\"primary\":\"n-1\",\"epoch\":1}", "in_sync");
    decode_fails("{\"primary\":\"n-1\",\"epoch\":1,\"in_sync\":[\"n-2\",\"n-2\"]}", "in_sync");
    decode_fails("{\"primary\":\"n-1\",\"epoch\":1,\"in_sync\":[\"n-1\"]}", "in_sync");
    decode_fails("{\"primary\":\"n-1\",\"epoch\":1,\"in_sync\":[\"n-2 x\"]}", "in_sync");
    decode_fails("{\"primary\":\"n-1\",\"epoch\":1,\"in_sync\":[7]}", "in_sync");
    char big[2048];
    size_t len = (size_t)snprintf(big, sizeof(big), "{\"primary\":\"n-1\",\"epoch\":1,\"in_sync\":[");
    for (int i = 0; i <= BC_CLUSTER_ISR_MAX; i++) {
        len += (size_t)snprintf(big + len, sizeof(big) - len, "%s\"n-%d\"", i ? "," : "", 100 + i);
    }
    snprintf(big + len, sizeof(big) - len, "]}");
    decode_fails(big, "in_sync");                                  /* too many members */
    assert_int_equal(bc_cluster_isr_decode("{", 1, &back, NULL, 0), BC_EINVAL);

    assert_true(bc_cluster_node_name_valid("n-0000000042"));
    assert_false(bc_cluster_node_name_valid("n-"));
    assert_false(bc_cluster_node_name_valid("fake"));
    assert_false(bc_cluster_node_name_valid("n-12a"));
    assert_false(bc_cluster_node_name_valid(NULL));
}

static void
test_group_min_in_sync(void **state)
{
    (void)state;
    bc_cluster_group_config_t c;
    const char *json = "{\"replication\":\"sync\",\"min_in_sync\":2}";
    assert_int_equal(bc_cluster_group_config_decode(json, strlen(json), &c, NULL, 0), BC_OK);
    assert_int_equal(c.min_in_sync, 2);
    char *enc = bc_cluster_group_config_encode(&c);
    assert_string_equal(enc, json);
    free(enc);
    json = "{\"min_in_sync\":0}";
    assert_int_equal(bc_cluster_group_config_decode(json, strlen(json), &c, NULL, 0), BC_OK);
    assert_int_equal(c.min_in_sync, 0);
    char err[100];
    json = "{\"min_in_sync\":17}";
    assert_int_equal(bc_cluster_group_config_decode(json, strlen(json), &c, err, sizeof(err)), BC_EINVAL);
    assert_non_null(strstr(err, "min_in_sync"));
    json = "{\"min_in_sync\":-1}";
    assert_int_equal(bc_cluster_group_config_decode(json, strlen(json), &c, NULL, 0), BC_EINVAL);
    /* unset: the mode's default -- 1 in sync mode, 0 in async mode */
    bc_cluster_group_config_init(&c);
    assert_int_equal(c.min_in_sync, -1);
    enc = bc_cluster_group_config_encode(&c);
    assert_string_equal(enc, "{}");
    free(enc);
    assert_int_equal(bc_cluster_group_min_in_sync(-1, BC_REPL_SYNC), 1);
    assert_int_equal(bc_cluster_group_min_in_sync(-1, BC_REPL_ASYNC), 0);
    assert_int_equal(bc_cluster_group_min_in_sync(0, BC_REPL_SYNC), 0);
    assert_int_equal(bc_cluster_group_min_in_sync(2, BC_REPL_ASYNC), 2);
}

/* ---- the primary's plan ---- */

static bc_cluster_isr_t
record(const char *const *members, size_t n)
{
    bc_cluster_isr_t r;
    memset(&r, 0, sizeof(r));
    snprintf(r.primary, sizeof(r.primary), "n-1");
    r.epoch = 5;
    for (size_t i = 0; i < n; i++) assert_true(bc_cluster_isr_add(&r, members[i]));
    return r;
}

static void
test_plan_records_in_and_out(void **state)
{
    (void)state;
    const char *two[] = {"n-2", "n-3"};
    bc_cluster_isr_t r = record(two, 2);
    bc_repl_isr_input_t in = {.recorded = &r, .min_in_sync = 1,
                              .healthy = {true, true}};
    bc_repl_isr_plan_t plan;

    /* nothing happened: nothing to write, writes accepted */
    bc__repl_isr_plan(&in, &plan);
    assert_false(plan.write);
    assert_false(plan.refuse_writes);
    assert_int_equal(plan.healthy, 2);

    /* n-3 missed a deadline: recorded out; n-2 keeps the group writable */
    in.healthy[1] = false;
    in.drop[1] = true;
    bc__repl_isr_plan(&in, &plan);
    assert_true(plan.write);
    assert_int_equal(plan.removed, 1);
    assert_int_equal(plan.next.n, 1);
    assert_string_equal(plan.next.in_sync[0], "n-2");
    assert_string_equal(plan.next.primary, "n-1");
    assert_int_equal(plan.next.epoch, 5);
    assert_false(plan.refuse_writes);

    /* both missed it, min_in_sync 1: one is recorded out, the other is
     * kept (it holds every acknowledged write: eligible) and writes are
     * refused until one catches up */
    in.healthy[0] = false;
    in.drop[0] = true;
    bc__repl_isr_plan(&in, &plan);
    assert_true(plan.write);
    assert_int_equal(plan.removed, 1);
    assert_int_equal(plan.kept, 1);
    assert_int_equal(plan.next.n, 1);
    assert_true(plan.refuse_writes);

    /* the same with min_in_sync 0 (degrade to the primary alone): both go,
     * writes are accepted */
    in.min_in_sync = 0;
    bc__repl_isr_plan(&in, &plan);
    assert_int_equal(plan.removed, 2);
    assert_int_equal(plan.next.n, 0);
    assert_false(plan.refuse_writes);

    /* a caught-up backup is recorded in, in the same write as a drop: the
     * record never falls below min_in_sync meanwhile */
    const char *one[] = {"n-2"};
    r = record(one, 1);
    bc_repl_isr_input_t in2 = {.recorded = &r, .min_in_sync = 1, .drop = {true}, .add = "n-4"};
    bc__repl_isr_plan(&in2, &plan);
    assert_true(plan.write && plan.added);
    assert_int_equal(plan.removed, 1);
    assert_int_equal(plan.next.n, 1);
    assert_string_equal(plan.next.in_sync[0], "n-4");
    /* refused until the write lands: what counts is the record */
    assert_true(plan.refuse_writes);
}

static void
test_plan_refuses_without_enough_members(void **state)
{
    (void)state;
    /* a sync group alone (min_in_sync 1, nobody recorded): refused; a
     * backup caught up is the next write; min 0 accepts */
    bc_cluster_isr_t r = record(NULL, 0);
    bc_repl_isr_input_t in = {.recorded = &r, .min_in_sync = 1};
    bc_repl_isr_plan_t plan;
    bc__repl_isr_plan(&in, &plan);
    assert_false(plan.write);
    assert_true(plan.refuse_writes);
    in.add = "n-7";
    bc__repl_isr_plan(&in, &plan);
    assert_true(plan.write && plan.added);
    assert_int_equal(plan.next.n, 1);
    in.add = "n-1";                                    /* never the primary itself */
    bc__repl_isr_plan(&in, &plan);
    assert_false(plan.write);
    in.add = NULL;
    in.min_in_sync = 0;
    bc__repl_isr_plan(&in, &plan);
    assert_false(plan.refuse_writes);

    /* min_in_sync 2 with one healthy member of two: refused, nobody dropped
     * who did not miss a deadline */
    const char *two[] = {"n-2", "n-3"};
    r = record(two, 2);
    bc_repl_isr_input_t in2 = {.recorded = &r, .min_in_sync = 2, .healthy = {true, false}};
    bc__repl_isr_plan(&in2, &plan);
    assert_false(plan.write);
    assert_true(plan.refuse_writes);
    assert_int_equal(plan.healthy, 1);
}

/* ---- migrations: backing off per destination ---- */

static void
test_destination_backoff(void **state)
{
    (void)state;
    bc_mig_dest_backoffs_t d = {0};
    int64_t now = 100000;
    assert_false(bc_mig_dest_backing_off(d.v, d.n, 3, "n-30", now));
    /* a failure: 500 ms, then doubling per failure after it ran out */
    assert_true(bc_mig_dest_note(&d, 3, "n-30", false, "unreachable", now));
    assert_true(bc_mig_dest_backing_off(d.v, d.n, 3, "n-30", now + 499));
    assert_false(bc_mig_dest_backing_off(d.v, d.n, 3, "n-30", now + 500));
    assert_false(bc_mig_dest_backing_off(d.v, d.n, 4, "n-40", now));    /* per group */
    /* copies in flight when it began fail too: they do not lengthen it */
    assert_false(bc_mig_dest_note(&d, 3, "n-30", false, "unreachable", now + 100));
    assert_int_equal(bc_mig_dest_find(d.v, d.n, 3)->failures, 1);
    int64_t t = now + 500, expect = 1000;
    for (int i = 0; i < 8; i++) {
        assert_true(bc_mig_dest_note(&d, 3, "n-30", false, "unreachable", t));
        const bc_mig_dest_backoff_t *e = bc_mig_dest_find(d.v, d.n, 3);
        assert_int_equal(e->retry_at_ms - t, expect);
        t = e->retry_at_ms;
        expect = expect * 2 > BC_MIG_DEST_BACKOFF_MAX_MS ? BC_MIG_DEST_BACKOFF_MAX_MS : expect * 2;
    }
    assert_string_equal(bc_mig_dest_find(d.v, d.n, 3)->error, "unreachable");
    /* another primary of that group: not held back by the old one's record */
    assert_false(bc_mig_dest_backing_off(d.v, d.n, 3, "n-31", t - 1));
    /* a success clears it */
    assert_false(bc_mig_dest_note(&d, 3, "n-30", true, "", t - 1));
    assert_false(bc_mig_dest_backing_off(d.v, d.n, 3, "n-30", t - 1));
    assert_null(bc_mig_dest_find(d.v, d.n, 3));
    /* the new primary's first failure starts afresh */
    assert_true(bc_mig_dest_note(&d, 3, "n-31", false, "refused", t));
    assert_int_equal(bc_mig_dest_find(d.v, d.n, 3)->retry_at_ms, t + BC_MIG_DEST_BACKOFF_BASE_MS);
    for (uint32_t g = 10; g < 40; g++) assert_true(bc_mig_dest_note(&d, g, "n-1", false, "x", t));
    assert_int_equal(d.n, 31);
    bc_mig_dest_backoffs_free(&d);
    assert_int_equal(d.n, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_round_trip_and_hostile_input),
        cmocka_unit_test(test_group_min_in_sync),
        cmocka_unit_test(test_plan_records_in_and_out),
        cmocka_unit_test(test_plan_refuses_without_enough_members),
        cmocka_unit_test(test_destination_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
