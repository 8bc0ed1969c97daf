/*
 * test_migrate_pool.c -- unit tests of the console's copy pool
 * (console/migrate_pool.h) against a fake destination node: an HTTP server
 * answering the import API, each bucket's copy done after a delay of its
 * own.  The gathering of a batch's reports: a round that has one waits
 * for the others of its batch still out, up to its bound, and no longer,
 * and never for copies of another batch; a precopy yields to the final
 * copies out, for a bounded time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "bc_httpd.h"
#include "bc_time.h"
#include "migrate_pool.h"

/* How long the fake destination takes to finish each bucket's copy, from
 * the first time its state is asked (ms). */
static const int64_t copy_ms[8] = {0, 30, 2000, 0, 0, 2000, 0, 0};

/* When the first precopy's POST came (CLOCK_MONOTONIC ms; 0: none yet). */
static _Atomic int64_t precopy_posted_ms;

/* POST and GET /v1/migrate/import?bucket=B&epoch=E...: started (202), then
 * running until bucket B's delay has passed, then done. */
static enum MHD_Result
handle_import(void *ctx, bc_http_req_t *req)
{
    (void)ctx;
    char query[512];
    snprintf(query, sizeof(query), "%s", req->query != NULL ? req->query : "");
    bc_http_param_t params[8];
    int n = bc_http_parse_query(query, params, 8);
    const bc_http_param_t *b = n > 0 ? bc_http_param_find(params, n, "bucket") : NULL;
    const bc_http_param_t *e = n > 0 ? bc_http_param_find(params, n, "epoch") : NULL;
    bool precopy = n > 0 && bc_http_param_find(params, n, "precopy") != NULL;
    if (b == NULL || (e == NULL && !precopy)) {
        return bc_http_reply_bytes(req, 400, "text/plain", "?", 1);
    }
    unsigned bucket = (unsigned)atoi(b->value) % 8;
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "bucket", bucket);
    cJSON_AddNumberToObject(doc, "epoch", precopy ? 0 : atof(e->value));
    if (strcmp(req->method, "POST") == 0) {
        int64_t none = 0;
        if (precopy) atomic_compare_exchange_strong(&precopy_posted_ms, &none, bc_time_mono_ms());
        cJSON_AddBoolToObject(doc, "precopy", precopy);
        return bc_http_reply_json(req, 202, doc);
    }
    int64_t waited_ms = req->parked_us != 0 ? (bc_time_mono_us() - req->parked_us) / 1000 : 0;
    if (waited_ms < copy_ms[bucket]) {
        cJSON_Delete(doc);
        return bc_http_park(req, 2000);
    }
    cJSON_AddStringToObject(doc, "state", "done");
    cJSON_AddNumberToObject(doc, "items", 1);
    cJSON_AddNumberToObject(doc, "bytes", 10);
    cJSON_AddStringToObject(doc, "node", "dest");
    return bc_http_reply_json(req, 200, doc);
}

static const bc_http_route_t routes[] = {
    {"/v1/migrate/import", "GET, POST", handle_import},
};

static _Atomic int reports_posted;

static void
on_report(void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&reports_posted, 1);
}

static void
wait_posted(int n)
{
    for (int i = 0; i < 5000 && atomic_load(&reports_posted) < n; i++) bc_time_sleep_ms(1);
    assert_true(atomic_load(&reports_posted) >= n);
}

static bc_mig_job_t
job(uint32_t bucket, uint64_t epoch, const char *dest)
{
    bc_mig_job_t j;
    memset(&j, 0, sizeof(j));
    j.bucket = bucket;
    j.epoch = epoch;
    j.from = 1;
    j.to = 2;
    snprintf(j.source_admin, sizeof(j.source_admin), "127.0.0.1:1");
    snprintf(j.dest_admin, sizeof(j.dest_admin), "%s", dest);
    snprintf(j.dest_node, sizeof(j.dest_node), "dest");
    return j;
}

/* A pool of ncopy copy and nprecopy precopy workers, and the fake
 * destination (*h, its address in dest) its jobs go to. */
static bc_mig_pool_t *
pool_with_dest(uint32_t ncopy, uint32_t nprecopy, bc_httpd_t **h, char *dest, size_t len)
{
    bc_httpd_config_t cfg = {
        .name = "dest", .listen_addr = "127.0.0.1", .routes = routes, .nroutes = 1,
        .request_timeout_s = 5,
    };
    assert_int_equal(bc_httpd_create(&cfg, h), BC_OK);
    assert_int_equal(bc_httpd_start(*h), BC_OK);
    snprintf(dest, len, "127.0.0.1:%u", bc_httpd_port(*h));
    bc_mig_pool_t *p = NULL;
    assert_int_equal(bc_mig_pool_start(ncopy, nprecopy, 5000, on_report, NULL, &p), BC_OK);
    return p;
}

static void
test_gather_waits_for_the_batch_and_no_longer(void **state)
{
    (void)state;
    char dest[64];
    bc_httpd_t *h;
    bc_mig_pool_t *p = pool_with_dest(4, 0, &h, dest, sizeof(dest));
    bc_mig_report_t reps[8];

    /* nothing out, nothing reported: no wait */
    int64_t t0 = bc_time_mono_ms();
    assert_int_equal(bc_mig_pool_gather(p, 500), 0);
    assert_true(bc_time_mono_ms() - t0 < 100);

    /* a batch of two: bucket 0 reports at once, bucket 1 30 ms later; a
     * round that finds 0's report waits for 1's and takes both */
    bc_mig_job_t j0 = job(0, 7, dest), j1 = job(1, 7, dest);
    assert_true(bc_mig_pool_submit(p, &j0));
    assert_true(bc_mig_pool_submit(p, &j1));
    wait_posted(1);
    assert_int_equal(bc_mig_pool_gather(p, 1000), 0);
    assert_int_equal(bc_mig_pool_take(p, reps, 8), 2);
    assert_true(reps[0].ok && reps[1].ok);
    /* (a worker notifies after it posts: both notices are in by now) */
    wait_posted(2);

    /* bucket 2 takes 2 s, bucket 3 none: the wait ends at its bound with
     * bucket 2 still out, and only 3's report is taken */
    int before = 2;
    bc_mig_job_t j2 = job(2, 7, dest), j3 = job(3, 7, dest);
    assert_true(bc_mig_pool_submit(p, &j2));
    assert_true(bc_mig_pool_submit(p, &j3));
    wait_posted(before + 1);
    t0 = bc_time_mono_ms();
    assert_int_equal(bc_mig_pool_gather(p, 50), 1);
    int64_t took = bc_time_mono_ms() - t0;
    assert_true(took >= 45 && took < 1000);
    assert_int_equal(bc_mig_pool_take(p, reps, 8), 1);
    assert_int_equal(reps[0].bucket, 3);
    assert_true(bc_mig_pool_active(p, 2, 7));

    /* a copy of another batch (epoch 9) is not held up by bucket 2, still
     * out from the batch before */
    before = 3;
    bc_mig_job_t j4 = job(4, 9, dest);
    assert_true(bc_mig_pool_submit(p, &j4));
    wait_posted(before + 1);
    t0 = bc_time_mono_ms();
    assert_int_equal(bc_mig_pool_gather(p, 1000), 0);
    assert_true(bc_time_mono_ms() - t0 < 500);
    assert_int_equal(bc_mig_pool_take(p, reps, 8), 1);
    assert_int_equal(reps[0].bucket, 4);
    assert_true(bc_mig_pool_active(p, 2, 7));

    bc_mig_pool_stop(p);
    bc_httpd_destroy(h);
}

/* A precopy does not start while a final copy is out -- for a bounded
 * time only. */
static void
test_precopy_yields_to_copies_for_a_bounded_time(void **state)
{
    (void)state;
    char dest[64];
    bc_httpd_t *h;
    bc_mig_pool_t *p = pool_with_dest(2, 2, &h, dest, sizeof(dest));

    /* bucket 5's copy takes 2 s; a precopy queued with it starts once its
     * 50-ms yield is over, not 2 s later */
    int before = atomic_load(&reports_posted);
    bc_mig_job_t c5 = job(5, 7, dest), p6 = job(6, 0, dest);
    int64_t t0 = bc_time_mono_ms();
    assert_true(bc_mig_pool_submit(p, &c5));
    assert_true(bc_mig_pool_precopy(p, &p6));
    wait_posted(before + 1);
    bc_mig_report_t reps[4];
    assert_int_equal(bc_mig_pool_take_precopies(p, reps, 4), 1);
    assert_true(reps[0].ok && reps[0].bucket == 6);
    int64_t started = atomic_load(&precopy_posted_ms) - t0;
    assert_true(started >= 45 && started < 1500);
    assert_true(bc_mig_pool_active(p, 5, 7));
    bc_mig_pool_stop(p);
    bc_httpd_destroy(h);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gather_waits_for_the_batch_and_no_longer),
        cmocka_unit_test(test_precopy_yields_to_copies_for_a_bounded_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
