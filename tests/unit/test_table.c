/*
 * test_table.c -- the c/m/d table model and its JSON codec, including
 * malformed, hostile and mismatched input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bc_cluster.h"
#include "bc_table.h"

static void
test_roundtrip(void **state)
{
    (void)state;
    bc_table_t t, back;
    assert_int_equal(bc_table_init(&t, 'c', 8), BC_OK);
    t.epoch = 42;
    for (uint32_t b = 0; b < 8; b++) t.owner[b] = b % 3;
    t.readonly[3] = t.readonly[7] = 1;
    char *json = bc_table_encode(&t);
    assert_non_null(json);
    assert_string_equal(json, "{\"table\":\"c\",\"epoch\":42,\"buckets\":8,"
                              "\"owners\":[0,1,2,0,1,2,0,1],\"readonly\":[3,7]}");
    char err[256];
    assert_int_equal(bc_table_decode(json, strlen(json), 'c', 8, &back, err, sizeof(err)), BC_OK);
    assert_int_equal(back.epoch, 42);
    assert_memory_equal(back.owner, t.owner, 8 * sizeof(uint32_t));
    assert_memory_equal(back.readonly, t.readonly, 8);
    free(json);
    bc_table_free(&t);
    bc_table_free(&back);
}

static void
test_large_table(void **state)
{
    (void)state;
    bc_table_t t, back;
    assert_int_equal(bc_table_init(&t, 'm', 65536), BC_OK);
    for (uint32_t b = 0; b < 65536; b++) t.owner[b] = 2147483647u - b;
    t.epoch = 9007199254740991ull;
    char *json = bc_table_encode(&t);
    assert_non_null(json);
    assert_int_equal(bc_table_decode(json, strlen(json), 'm', 0, &back, NULL, 0), BC_OK);
    assert_memory_equal(back.owner, t.owner, 65536 * sizeof(uint32_t));
    assert_int_equal(back.epoch, t.epoch);
    free(json);
    bc_table_free(&t);
    bc_table_free(&back);
}

static void
expect_reject(const char *json, char name, uint32_t n, const char *needle)
{
    bc_table_t t;
    char err[256] = "";
    bc_status_t st = bc_table_decode(json, strlen(json), name, n, &t, err, sizeof(err));
    if (st == BC_OK) fail_msg("accepted: %s", json);
    assert_null(t.owner);
    if (strstr(err, needle) == NULL) fail_msg("error \"%s\" does not mention %s", err, needle);
}

static void
test_malformed(void **state)
{
    (void)state;
    expect_reject("", 'c', 4, "not a JSON object");
    expect_reject("[1,2,3]", 'c', 4, "not a JSON object");
    expect_reject("{\"table\":\"c\",\"epoch\":1,\"buckets\":4,\"owners\":[1,1,", 'c', 4, "not a JSON");
    expect_reject("{\"table\":\"m\",\"epoch\":1,\"buckets\":4,\"owners\":[1,1,1,1]}", 'c', 4, "\"table\"");
    expect_reject("{\"table\":\"c\",\"epoch\":-1,\"buckets\":4,\"owners\":[1,1,1,1]}", 'c', 4, "\"epoch\"");
    expect_reject("{\"table\":\"c\",\"epoch\":1.5,\"buckets\":4,\"owners\":[1,1,1,1]}", 'c', 4, "\"epoch\"");
    expect_reject("{\"table\":\"c\",\"epoch\":1,\"buckets\":5,\"owners\":[1,1,1,1]}", 'c', 4, "\"buckets\"");
    expect_reject("{\"table\":\"c\",\"epoch\":1,\"buckets\":0,\"owners\":[]}", 'c', 0, "\"buckets\"");
    expect_reject("{\"table\":\"c\",\"epoch\":1,\"buckets\":4,\"owners\":[1,1,1]}", 'c', 4, "\"owners\"");
    expect_reject("{\"table\":\"c\",\"epoch\":1,\"buckets\":4,\"owners\":[1,1,1,\"x\"]}", 'c', 4, "owners[3]");
    expect_reject("{\"table\":\"c\",\"epoch\":1,\"buckets\":4,\"owners\":[1,1,1,-2]}", 'c', 4, "owners[3]");
    expect_reject("{\"table\":\"c\",\"epoch\":1,\"buckets\":4,\"owners\":[1,1,1,4294967296]}", 'c', 4, "owners[3]");
    expect_reject("{\"table\":\"c\",\"epoch\":1,\"buckets\":4,\"owners\":[1,1,1,1],\"readonly\":[4]}", 'c', 4, "readonly[0]");
    expect_reject("{\"table\":\"c\",\"epoch\":1,\"buckets\":4,\"owners\":[1,1,1,1],\"readonly\":3}", 'c', 4, "readonly");
    expect_reject("{\"table\":\"d\",\"epoch\":1,\"buckets\":4,\"owners\":[1,1,1,1],\"readonly\":[]}", 'd', 4, "readonly");
    expect_reject("{\"table\":\"c\",\"epoch\":1,\"buckets\":99999999,\"owners\":[]}", 'c', 0, "\"buckets\"");
}

static void
test_oversized_and_binary(void **state)
{
    (void)state;
    size_t n = BC_TABLE_MAX_JSON + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    bc_table_t t;
    assert_int_equal(bc_table_decode(big, n, 'c', 0, &t, NULL, 0), BC_ETOOLARGE);
    /* binary garbage, with embedded NULs, is rejected without reading past len */
    for (size_t i = 0; i < 4096; i++) big[i] = (char)(i * 131 + 7);
    assert_int_equal(bc_table_decode(big, 4096, 'c', 0, &t, NULL, 0), BC_EINVAL);
    free(big);
}

static void
test_init_bounds(void **state)
{
    (void)state;
    bc_table_t t;
    assert_int_equal(bc_table_init(&t, 'x', 4), BC_EINVAL);
    assert_int_equal(bc_table_init(&t, 'c', 0), BC_EINVAL);
    assert_int_equal(bc_table_init(&t, 'c', 65537), BC_EINVAL);
    assert_int_equal(bc_table_init(&t, 'd', 4), BC_OK);
    assert_null(t.readonly);
    bc_table_t copy;
    t.owner[2] = 7;
    assert_int_equal(bc_table_copy(&copy, &t), BC_OK);
    assert_int_equal(copy.owner[2], 7);
    bc_table_free(&copy);
    bc_table_free(&t);
}

/* groups/<gid>/config: round trip, empty = unset, strict fields. */
static void
test_group_config(void **state)
{
    (void)state;
    bc_cluster_group_config_t c, d;
    char err[200];
    bc_cluster_group_config_init(&c);
    c.replication = 1;
    c.sync_timeout_ms = 300;
    char *json = bc_cluster_group_config_encode(&c);
    assert_non_null(json);
    assert_int_equal(bc_cluster_group_config_decode(json, strlen(json), &d, err, sizeof(err)),
                     BC_OK);
    assert_int_equal(d.replication, 1);
    assert_int_equal(d.sync_timeout_ms, 300);
    assert_int_equal(d.max_lag_mb, -1);
    free(json);
    assert_int_equal(bc_cluster_group_config_decode("", 0, &d, err, sizeof(err)), BC_OK);
    assert_int_equal(d.replication, -1);
    assert_int_equal(bc_cluster_group_config_decode("{}", 2, &d, err, sizeof(err)), BC_OK);
    static const char *bad[] = {
        "[]", "{\"replication\":\"maybe\"}", "{\"replication\":1}",
        "{\"sync_timeout_ms\":5}", "{\"sync_timeout_ms\":-1}", "{\"sync_timeout_ms\":1.5}",
        "{\"max_lag_mb\":5000}", "{\"colour\":\"red\"}", "{\"replication\":\"sync\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(bc_cluster_group_config_decode(bad[i], strlen(bad[i]), &d, err,
                                                        sizeof(err)), BC_EINVAL);
        assert_non_null(strstr(err, "group config"));
        assert_int_equal(d.replication, -1);
    }
}

/* A node's /v1/repl document: what the console and the CLI read of it;
 * anything but the document is refused. */
static void
test_repl_status(void **state)
{
    (void)state;
    bc_cluster_repl_status_t r;
    char err[200];
    const char *primary = "{\"role\":\"primary\",\"mode\":\"sync\",\"offset\":1234,"
                          "\"synced\":true,\"writable\":true,\"backups\":[{},{}]}";
    assert_int_equal(bc_cluster_repl_status_decode(primary, strlen(primary), &r, err, sizeof(err)),
                     BC_OK);
    assert_true(r.primary && r.synced && r.writable);
    assert_int_equal(r.mode, BC_REPL_SYNC);
    assert_int_equal(r.offset, 1234);
    assert_int_equal(r.backups, 2);
    const char *backup = "{\"role\":\"backup\",\"mode\":\"async\",\"offset\":7,"
                         "\"synced\":true,\"link_up\":true,\"lag_bytes\":9,\"lag_ms\":3}";
    assert_int_equal(bc_cluster_repl_status_decode(backup, strlen(backup), &r, err, sizeof(err)),
                     BC_OK);
    assert_true(!r.primary && r.link_up);
    assert_int_equal(r.lag_bytes, 9);
    assert_int_equal(r.lag_ms, 3);
    static const char *bad[] = {
        "[]", "{\"mode\":\"sync\",\"offset\":1}", "{\"role\":\"primary\",\"offset\":1}",
        "{\"role\":\"primary\",\"mode\":\"fast\",\"offset\":1}",
        "{\"role\":\"primary\",\"mode\":\"sync\",\"offset\":-1}",
        "{\"role\":\"primary\",\"mode\":\"sync\"}", "not json",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        size_t n = strlen(bad[i]);
        assert_int_equal(bc_cluster_repl_status_decode(bad[i], n, &r, err, sizeof(err)), BC_EINVAL);
        assert_non_null(strstr(err, "replication state"));
    }
}

/* A node's registration record: what it writes (no replication offset:
 * that is asked live), and records of earlier versions, which carried an
 * always-0 "offset", still read. */
static void
test_node_record(void **state)
{
    (void)state;
    bc_cluster_node_info_t in = {.memory = 1u << 30, .pid = 42}, out;
    snprintf(in.name, sizeof(in.name), "n-0000000001");
    snprintf(in.data_addr, sizeof(in.data_addr), "10.0.0.1:11211");
    snprintf(in.admin_addr, sizeof(in.admin_addr), "10.0.0.1:11280");
    char err[200];
    char *json = bc_cluster_node_info_encode(&in);
    assert_non_null(json);
    assert_null(strstr(json, "offset"));
    memcpy(out.name, in.name, sizeof(out.name));
    assert_int_equal(bc_cluster_node_info_decode(json, strlen(json), &out, err, sizeof(err)),
                     BC_OK);
    assert_string_equal(out.data_addr, in.data_addr);
    assert_string_equal(out.admin_addr, in.admin_addr);
    assert_int_equal(out.memory, in.memory);
    assert_int_equal(out.pid, 42);
    assert_string_equal(out.name, in.name);
    free(json);
    const char *old = "{\"data\":\"h:1\",\"admin\":\"h:2\",\"memory\":5,\"offset\":0,\"pid\":7}";
    assert_int_equal(bc_cluster_node_info_decode(old, strlen(old), &out, err, sizeof(err)), BC_OK);
    assert_int_equal(out.memory, 5);
    const char *bad = "{\"data\":\"h:1\",\"memory\":5,\"offset\":\"x\"}";
    assert_int_equal(bc_cluster_node_info_decode(bad, strlen(bad), &out, err, sizeof(err)),
                     BC_EINVAL);
    assert_non_null(strstr(err, "offset"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_node_record),
        cmocka_unit_test(test_large_table),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_oversized_and_binary),
        cmocka_unit_test(test_init_bounds),
        cmocka_unit_test(test_group_config),
        cmocka_unit_test(test_repl_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
