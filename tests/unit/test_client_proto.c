/*
 * test_client_proto.c -- the client's protocol helpers: key checks,
 * request lines, what a forwarding failure means for a retry, the VALUE
 * size guard, node addresses, and the retry backoff.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bc_wire.h"
#include "ops.h"
#include "pool.h"
#include "proto.h"

static void
test_key_valid(void **state)
{
    (void)state;
    char k[252];
    memset(k, 'a', sizeof(k));
    assert_true(bc__proto_key_valid("a", 1));
    assert_true(bc__proto_key_valid(k, 250));
    assert_false(bc__proto_key_valid(k, 251));
    assert_false(bc__proto_key_valid(k, 0));
    assert_false(bc__proto_key_valid(NULL, 3));
    assert_false(bc__proto_key_valid("a b", 3));
    assert_false(bc__proto_key_valid("a\nb", 3));
    assert_false(bc__proto_key_valid("a\rb", 3));
    assert_false(bc__proto_key_valid("a\0b", 3));
    assert_false(bc__proto_key_valid("a\x7f", 2));
    assert_true(bc__proto_key_valid("caf\xc3\xa9", 5)); /* UTF-8 is fine */
}

static void
test_request_lines(void **state)
{
    (void)state;
    char buf[BC__REQ_LINE_MAX];
    size_t n = bc__proto_fmt_storage(buf, "set", "k1", 2, 7, 300, 5);
    assert_int_equal(n, strlen("set k1 7 300 5\r\n"));
    assert_memory_equal(buf, "set k1 7 300 5\r\n", n);
    n = bc__proto_fmt_storage(buf, "add", "k", 1, 4294967295u, -1, 0);
    assert_memory_equal(buf, "add k 4294967295 -1 0\r\n", n);
    n = bc__proto_fmt_storage(buf, "replace", "k", 1, 0, INT64_MIN, 1);
    assert_memory_equal(buf, "replace k 0 -9223372036854775808 1\r\n", n);
    n = bc__proto_fmt_key_cmd(buf, "get", "hello", 5);
    assert_memory_equal(buf, "get hello\r\n", n);
    n = bc__proto_fmt_key_cmd(buf, "delete", "hello", 5);
    assert_memory_equal(buf, "delete hello\r\n", n);
    n = bc__proto_fmt_touch(buf, "t", 1, 0);
    assert_memory_equal(buf, "touch t 0\r\n", n);
    n = bc__proto_fmt_arith(buf, true, "c", 1, UINT64_MAX);
    assert_memory_equal(buf, "incr c 18446744073709551615\r\n", n);
    n = bc__proto_fmt_arith(buf, false, "c", 1, 3);
    assert_memory_equal(buf, "decr c 3\r\n", n);
    /* the longest line fits */
    char key[250];
    memset(key, 'k', sizeof(key));
    n = bc__proto_fmt_storage(buf, "replace", key, 250, UINT32_MAX, INT64_MIN, SIZE_MAX);
    assert_true(n < BC__REQ_LINE_MAX);
    n = bc__proto_fmt_cas(buf, key, 250, UINT32_MAX, INT64_MIN, SIZE_MAX, UINT64_MAX);
    assert_true(n < BC__REQ_LINE_MAX);
    n = bc__proto_fmt_cas(buf, "k", 1, 3, 60, 5, 12345);
    assert_memory_equal(buf, "cas k 3 60 5 12345\r\n", n);
    n = bc__proto_fmt_key_cmd(buf, "gets", "k", 1);
    assert_memory_equal(buf, "gets k\r\n", n);
}

/* What each forwarding failure means for a retry; refusals themselves
 * are common/bc_wire.h's (tests/unit/test_wire.c). */
static void
test_fwd_failure_parse(void **state)
{
    (void)state;
    static const struct {
        bc_wire_fwd_failure_t wire;
        bc__proto_fwd_failure_t want;
    } cases[] = {
        {BC_WIRE_FWD_UNSENT, BC__PROTO_FWD_UNSENT},
        {BC_WIRE_FWD_IN_DOUBT, BC__PROTO_FWD_IN_DOUBT},
        {BC_WIRE_FWD_TIMEOUT, BC__PROTO_FWD_IN_DOUBT},
        {BC_WIRE_FWD_TOO_LARGE, BC__PROTO_FWD_NONE},
        {BC_WIRE_FWD_BAD_REPLY, BC__PROTO_FWD_NONE},
        {BC_WIRE_FWD_BUSY, BC__PROTO_FWD_NONE},
        {BC_WIRE_FWD_NOMEM, BC__PROTO_FWD_NONE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *t = bc_wire_fwd_failure_text(cases[i].wire);
        assert_non_null(t);
        assert_int_equal(bc__proto_fwd_failure_parse(t, strlen(t)), cases[i].want);
    }
    const char *t = "MOVED 1 2 3";
    assert_int_equal(bc__proto_fwd_failure_parse(t, strlen(t)), BC__PROTO_FWD_NONE);
    assert_int_equal(bc__proto_fwd_failure_parse(NULL, 0), BC__PROTO_FWD_NONE);
}

static void
test_reply_need(void **state)
{
    (void)state;
    size_t need;
    const char *v = "VALUE k 0 5\r\nhel";
    assert_int_equal(bc__proto_reply_need(v, strlen(v), 100, &need), BC_OK);
    assert_int_equal(need, 13 + 5 + 2);
    v = "VALUE k 0 5 77\r\n";
    assert_int_equal(bc__proto_reply_need(v, strlen(v), 100, &need), BC_OK);
    assert_int_equal(need, strlen(v) + 7);
    v = "VALUE k 0 101\r\n";
    assert_int_equal(bc__proto_reply_need(v, strlen(v), 100, &need), BC_ETOOLARGE);
    v = "VALUE k 0 99999999999999999999999\r\n";
    assert_int_equal(bc__proto_reply_need(v, strlen(v), 100, &need), BC_EPROTO);
    v = "VALUE k 0 12x\r\n";
    assert_int_equal(bc__proto_reply_need(v, strlen(v), 100, &need), BC_EPROTO);
    v = "VALUE k 0\r\n";
    assert_int_equal(bc__proto_reply_need(v, strlen(v), 100, &need), BC_EPROTO);
    v = "VALUE k 0 5";  /* no line end yet: the parser decides later */
    assert_int_equal(bc__proto_reply_need(v, strlen(v), 100, &need), BC_OK);
    assert_int_equal(need, 0);
    v = "END\r\n";
    assert_int_equal(bc__proto_reply_need(v, strlen(v), 100, &need), BC_OK);
    assert_int_equal(need, 0);
}

static void
test_addr_split(void **state)
{
    (void)state;
    char host[64], port[8];
    assert_int_equal(bc__pool_addr_split("127.0.0.1:11211", host, sizeof(host), port, sizeof(port)),
                     BC_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_string_equal(port, "11211");
    assert_int_equal(bc__pool_addr_split("[::1]:80", host, sizeof(host), port, sizeof(port)),
                     BC_OK);
    assert_string_equal(host, "::1");
    assert_string_equal(port, "80");
    assert_int_equal(bc__pool_addr_split("node-a.example:1", host, sizeof(host), port,
                                         sizeof(port)), BC_OK);
    static const char *const bad[] = {"", ":", "host", "host:", ":80", "::1:80", "[::1]80",
                                      "h:0", "h:65536", "h:12a", "h:123456", "[::1:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(bc__pool_addr_split(bad[i], host, sizeof(host), port, sizeof(port)),
                         BC_EINVAL);
    }
    char small[4];
    assert_int_equal(bc__pool_addr_split("longhost:1", small, sizeof(small), port, sizeof(port)),
                     BC_EINVAL);
}

static void
test_backoff(void **state)
{
    (void)state;
    uint64_t rng = 42;
    const uint64_t base = 1000000, cap = 100000000;
    for (unsigned attempt = 1; attempt < 40; attempt++) {
        uint64_t d = base;
        for (unsigned i = 1; i < attempt && d < cap; i++) d *= 2;
        if (d > cap) d = cap;
        for (int rep = 0; rep < 200; rep++) {
            uint64_t got = bc__ops_backoff_ns(attempt, base, cap, &rng);
            assert_true(got >= d / 2);
            assert_true(got <= d);
        }
    }
    /* jitter: not all the same */
    uint64_t a = bc__ops_backoff_ns(10, base, cap, &rng), different = 0;
    for (int i = 0; i < 20; i++) different += bc__ops_backoff_ns(10, base, cap, &rng) != a;
    assert_true(different > 0);
    /* attempt 0 behaves as 1; a zero base never sleeps */
    assert_true(bc__ops_backoff_ns(0, base, cap, &rng) <= base);
    assert_int_equal(bc__ops_backoff_ns(5, 0, cap, &rng), 0);
    /* a zero rng state still advances */
    uint64_t zero = 0;
    assert_true(bc__ops_rand_next(&zero) != 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_valid),   cmocka_unit_test(test_request_lines),
        cmocka_unit_test(test_fwd_failure_parse), cmocka_unit_test(test_reply_need),
        cmocka_unit_test(test_addr_split),  cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
