/*
 * test_metrics.c -- the Prometheus text both processes serve
 * (common/bc_metrics.h): sample format, growth past the first allocation,
 * and the failed state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "bc_metrics.h"

static void
test_metric_format(void **state)
{
    (void)state;
    bc_textbuf_t tb = {0};
    bc_metric(&tb, "curr_items", "gauge", "Items currently stored.", 42);
    bc_metric(&tb, "hits_total", "counter", "Hits.", UINT64_MAX);
    assert_false(tb.failed);
    assert_string_equal(tb.data,
                        "# HELP bucketcache_curr_items Items currently stored.\n"
                        "# TYPE bucketcache_curr_items gauge\n"
                        "bucketcache_curr_items 42\n"
                        "# HELP bucketcache_hits_total Hits.\n"
                        "# TYPE bucketcache_hits_total counter\n"
                        "bucketcache_hits_total 18446744073709551615\n");
    assert_int_equal(tb.len, strlen(tb.data));
    bc_textbuf_free(&tb);
    assert_null(tb.data);
    assert_int_equal(tb.len, 0);
}

/* Text past the first 8 KiB and a single piece larger than the buffer
 * both arrive whole. */
static void
test_textbuf_grows(void **state)
{
    (void)state;
    bc_textbuf_t tb = {0};
    char name[32];
    for (int i = 0; i < 500; i++) {
        snprintf(name, sizeof(name), "m%d", i);
        bc_metric(&tb, name, "gauge", "A metric.", (uint64_t)i);
    }
    static char big[40000];
    memset(big, 'x', sizeof(big) - 1);
    bc_textbuf_printf(&tb, "%s|", big);
    assert_false(tb.failed);
    assert_true(tb.len > 8192 + sizeof(big));
    assert_int_equal(tb.len, strlen(tb.data));
    assert_non_null(strstr(tb.data, "bucketcache_m0 0\n"));
    assert_non_null(strstr(tb.data, "bucketcache_m499 499\n"));
    assert_int_equal(tb.data[tb.len - 1], '|');
    bc_textbuf_free(&tb);
}

/* Once failed, a buffer stays failed and appends nothing. */
static void
test_failed_state_sticks(void **state)
{
    (void)state;
    bc_textbuf_t tb = {0};
    bc_metric(&tb, "a", "gauge", "A.", 1);
    size_t len = tb.len;
    tb.failed = true;
    bc_metric(&tb, "b", "gauge", "B.", 2);
    bc_textbuf_printf(&tb, "more");
    assert_int_equal(tb.len, len);
    assert_null(strstr(tb.data, "bucketcache_b"));
    bc_textbuf_free(&tb);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metric_format),
        cmocka_unit_test(test_textbuf_grows),
        cmocka_unit_test(test_failed_state_sticks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
