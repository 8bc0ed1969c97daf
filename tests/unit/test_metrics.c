/*
 * test_metrics.c -- the Prometheus text both processes serve
 * (common/bc_metrics.h): sample format, families grouped whatever the
 * order samples come in, the conventions the helper enforces (_total,
 * escaped labels, histograms), growth past the first allocation, and the
 * failed state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "bc_metrics.h"

static void
test_metric_format(void **state)
{
    (void)state;
    bc_textbuf_t tb = {0};
    bc_metric(&tb, "curr_items", "gauge", "Items currently stored.", 42);
    bc_metric(&tb, "hits_total", "counter", "Hits.", UINT64_MAX);
    bc_metrics_render(&tb);
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
    bc_metrics_render(&tb);
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
    bc_metrics_render(&tb);
    size_t len = tb.len;
    tb.failed = true;
    bc_metric(&tb, "b", "gauge", "B.", 2);
    bc_textbuf_printf(&tb, "more");
    bc_metrics_render(&tb);
    assert_int_equal(tb.len, len);
    assert_null(strstr(tb.data, "bucketcache_b"));
    bc_textbuf_free(&tb);
}

/* Samples of one family added apart come out together, under one HELP
 * and TYPE, in the order the families first appeared. */
static void
test_families_grouped(void **state)
{
    (void)state;
    bc_textbuf_t tb = {0};
    bc_metric_lu(&tb, "commands_total", "counter", "Commands.", "command=\"get\",status=\"hit\"", 3);
    bc_metric(&tb, "items", "gauge", "Items.", 7);
    bc_metric_lu(&tb, "commands_total", "counter", "Commands.", "command=\"get\",status=\"miss\"", 1);
    bc_metric_l(&tb, "lag_seconds", "gauge", "Lag.", "node=\"n1\"", 0.25);
    bc_metrics_render(&tb);
    assert_false(tb.failed);
    assert_string_equal(tb.data,
                        "# HELP bucketcache_commands_total Commands.\n"
                        "# TYPE bucketcache_commands_total counter\n"
                        "bucketcache_commands_total{command=\"get\",status=\"hit\"} 3\n"
                        "bucketcache_commands_total{command=\"get\",status=\"miss\"} 1\n"
                        "# HELP bucketcache_items Items.\n"
                        "# TYPE bucketcache_items gauge\n"
                        "bucketcache_items 7\n"
                        "# HELP bucketcache_lag_seconds Lag.\n"
                        "# TYPE bucketcache_lag_seconds gauge\n"
                        "bucketcache_lag_seconds{node=\"n1\"} 0.25\n");
    assert_null(tb.samples);
    bc_textbuf_free(&tb);
}

/* A counter named without _total gets it; label values are escaped. */
static void
test_conventions(void **state)
{
    (void)state;
    bc_textbuf_t tb = {0};
    char lbl[128];
    bc_metric(&tb, "evictions", "counter", "Evictions.", 5);
    bc_metric_labels(lbl, sizeof(lbl), 2, "node", "a\"b\\c\nd", "role", "primary");
    assert_string_equal(lbl, "node=\"a\\\"b\\\\c\\nd\",role=\"primary\"");
    bc_metric_lu(&tb, "node_info", "gauge", "Info.", lbl, 1);
    bc_metrics_render(&tb);
    assert_non_null(strstr(tb.data, "# TYPE bucketcache_evictions_total counter\n"
                                    "bucketcache_evictions_total 5\n"));
    assert_non_null(strstr(tb.data, "bucketcache_node_info{node=\"a\\\"b\\\\c\\nd\",role=\"primary\"} 1\n"));
    /* A label list too long for the buffer drops the cut pair whole. */
    char small[20];
    bc_metric_labels(small, sizeof(small), 2, "group", "1", "node", "a-very-long-node-name");
    assert_string_equal(small, "group=\"1\"");
    bc_textbuf_free(&tb);
}

/* Histogram buckets are cumulative, end in +Inf, and _count is their total. */
static void
test_histogram(void **state)
{
    (void)state;
    bc_textbuf_t tb = {0};
    const double bounds[] = {0.01, 0.1, 1};
    const uint64_t counts[] = {2, 0, 3, 1};
    bc_metric_histogram(&tb, "stall_seconds", "Stalls.", NULL, bounds, counts, 3, 4.5);
    bc_metrics_render(&tb);
    assert_string_equal(tb.data,
                        "# HELP bucketcache_stall_seconds Stalls.\n"
                        "# TYPE bucketcache_stall_seconds histogram\n"
                        "bucketcache_stall_seconds_bucket{le=\"0.01\"} 2\n"
                        "bucketcache_stall_seconds_bucket{le=\"0.1\"} 2\n"
                        "bucketcache_stall_seconds_bucket{le=\"1\"} 5\n"
                        "bucketcache_stall_seconds_bucket{le=\"+Inf\"} 6\n"
                        "bucketcache_stall_seconds_sum 4.5\n"
                        "bucketcache_stall_seconds_count 6\n");
    bc_textbuf_free(&tb);
}

/* Milliseconds histograms: an observation goes in the first slot whose
 * bound it does not exceed; the metric is in seconds; the JSON lists each
 * bound's count and ends with "inf". */
static void
test_histogram_of_milliseconds(void **state)
{
    (void)state;
    const uint32_t bounds[] = {1, 10, 100};
    assert_int_equal(bc_metric_bin_ms(bounds, 3, 0), 0);
    assert_int_equal(bc_metric_bin_ms(bounds, 3, 1), 0);
    assert_int_equal(bc_metric_bin_ms(bounds, 3, 1.001), 1);
    assert_int_equal(bc_metric_bin_ms(bounds, 3, 100), 2);
    assert_int_equal(bc_metric_bin_ms(bounds, 3, 100.5), 3);

    const uint64_t counts[] = {2, 0, 3, 1};
    bc_textbuf_t tb = {0};
    bc_metric_histogram_ms(&tb, "pause_seconds", "Pauses.", NULL, bounds, counts, 3, 4500);
    bc_metrics_render(&tb);
    assert_non_null(strstr(tb.data, "bucketcache_pause_seconds_bucket{le=\"0.01\"} 2\n"));
    assert_non_null(strstr(tb.data, "bucketcache_pause_seconds_bucket{le=\"+Inf\"} 6\n"));
    assert_non_null(strstr(tb.data, "bucketcache_pause_seconds_sum 4.5\n"));
    bc_textbuf_free(&tb);

    cJSON *hist = bc_metric_histogram_json(bounds, counts, 3);
    char *text = cJSON_PrintUnformatted(hist);
    assert_string_equal(text, "[{\"le_ms\":1,\"count\":2},{\"le_ms\":10,\"count\":0},"
                              "{\"le_ms\":100,\"count\":3},{\"le_ms\":\"inf\",\"count\":1}]");
    free(text);
    cJSON_Delete(hist);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metric_format),
        cmocka_unit_test(test_textbuf_grows),
        cmocka_unit_test(test_failed_state_sticks),
        cmocka_unit_test(test_families_grouped),
        cmocka_unit_test(test_conventions),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_histogram_of_milliseconds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
