/*
 * test_migrate_pool.c -- unit tests of the console's copy pool
 * (console/migrate_pool.h) against fake destination nodes: HTTP servers
 * answering the import API, each bucket's copy done after a delay of its
 * own.  The gathering of a batch's reports: a round that has one waits
 * for the others of its batch still out, up to its bound, and no longer,
 * and never for copies of another batch; a precopy yields to the final
 * copies out, for a bounded time.  The precopy batch: the precopies
 * queued for one (source, destination, from, to) start with one POST;
 * other pairs' are not mixed in; a refused bucket, a destination that
 * does not know the batch, and an answer that makes no sense fall back
 * to one POST per bucket; each bucket gets one report.
 */
#include <pthread.h>
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

/* How long a fake destination takes to finish each bucket's copy, from
 * the first time its state is asked (ms); buckets 8 and above at once,
 * but for STALLED and above: those never finish (a stream that stopped,
 * their status "running" with the same bytes received every time). */
#define STALLED 200u
static const int64_t copy_ms[8] = {0, 30, 2000, 0, 0, 2000, 0, 0};

/* When the first precopy's POST came (CLOCK_MONOTONIC ms; 0: none yet). */
static _Atomic int64_t precopy_posted_ms;

/* How a fake destination answers a batch POST (?buckets=...). */
typedef enum batch_mode {
    BATCH_ALL,                     /* every bucket started (202) */
    BATCH_REFUSE,                  /* `refused` answered 409, the others started */
    BATCH_OLD,                     /* a node that does not know buckets=: 400 */
    /* 200 with a body the pool must not believe: */
    BATCH_SHORT,                   /* "jobs" one entry short */
    BATCH_LONG,                    /* "jobs" one entry too many */
    BATCH_SWAPPED,                 /* the first two entries swapped */
    BATCH_NOT_JSON,                /* cut off half-way */
    BATCH_NOT_ARRAY,               /* "jobs" an object */
    BATCH_ENTRY_NOT_OBJECT,        /* each entry its bucket's number alone */
    BATCH_BUCKET_STRING,           /* each entry's "bucket" a string */
} batch_mode_t;

/* How a fake destination answers a batch's status (GET ?buckets=...). */
typedef enum status_mode {
    STATUS_OLD,                    /* a node from before batch statuses: 400 */
    STATUS_BATCH,                  /* every job's state, a long poll */
    STATUS_EMPTY,                  /* 200 {"jobs": []}: not believed */
} status_mode_t;

/* One fake destination node: its server and what it was asked. */
typedef struct fake_dest {
    bc_httpd_t *h;
    char addr[64];
    _Atomic int mode;              /* batch_mode_t */
    _Atomic uint32_t refused;      /* BATCH_REFUSE's bucket */
    _Atomic int batch_posts;       /* POSTs with buckets= */
    _Atomic int batched;           /* buckets asked for in them, in all */
    _Atomic int largest;           /* buckets of the largest */
    _Atomic int single_posts;      /* precopy POSTs with bucket= */
    _Atomic int status_mode;       /* status_mode_t */
    _Atomic uint32_t lost;         /* a bucket whose job it has no more (0: none) */
    _Atomic int batch_gets;        /* GETs with buckets= */
    _Atomic int single_gets;       /* GETs with bucket= */
    pthread_mutex_t mu;            /* guards the fields below */
    char last_batch[256];          /* the last batch POST's buckets= */
    char last_from[16];            /* its from= */
    char last_epoch[24];           /* its epoch= ("" for precopies) */
    char last_source[64];          /* its source=, decoded */
    uint32_t singles[64];          /* the buckets of the precopy POSTs with bucket= */
    int nsingles;
} fake_dest_t;

/* Notes a batch POST of buckets (its query's params). */
static void
fake_record_batch(fake_dest_t *d, const char *buckets, const bc_http_param_t *params, int n)
{
    const bc_http_param_t *from = bc_http_param_find(params, n, "from");
    const bc_http_param_t *source = bc_http_param_find(params, n, "source");
    const bc_http_param_t *epoch = bc_http_param_find(params, n, "epoch");
    int count = 1;
    for (const char *c = buckets; *c != '\0'; c++) count += *c == ',';
    atomic_fetch_add(&d->batch_posts, 1);
    atomic_fetch_add(&d->batched, count);
    if (count > atomic_load(&d->largest)) atomic_store(&d->largest, count);
    pthread_mutex_lock(&d->mu);
    snprintf(d->last_batch, sizeof(d->last_batch), "%s", buckets);
    snprintf(d->last_from, sizeof(d->last_from), "%s", from != NULL ? from->value : "");
    snprintf(d->last_epoch, sizeof(d->last_epoch), "%s", epoch != NULL ? epoch->value : "");
    snprintf(d->last_source, sizeof(d->last_source), "%s", source != NULL ? source->value : "");
    pthread_mutex_unlock(&d->mu);
}

/* One batch entry: bucket's job started, or refused. */
static cJSON *
fake_batch_entry(fake_dest_t *d, unsigned bucket)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "bucket", bucket);
    cJSON_AddNumberToObject(e, "epoch", 0);
    if (atomic_load(&d->mode) == BATCH_REFUSE && bucket == atomic_load(&d->refused)) {
        cJSON_AddNumberToObject(e, "status", 409);
        cJSON_AddStringToObject(e, "error", "bucket is being copied");
        cJSON_AddBoolToObject(e, "retry", false);
        return e;
    }
    cJSON_AddNumberToObject(e, "status", 202);
    cJSON_AddStringToObject(e, "state", "running");
    cJSON_AddBoolToObject(e, "precopy", true);
    cJSON_AddNumberToObject(e, "received", 0);
    return e;
}

/* The answer to POST ?buckets=list&precopy=1..., as d's mode says. */
static enum MHD_Result
fake_batch(fake_dest_t *d, bc_http_req_t *req, const char *list)
{
    int mode = atomic_load(&d->mode);
    if (mode == BATCH_NOT_JSON) {
        return bc_http_reply_bytes(req, 200, "application/json", "{\"jobs\": [{\"bu", 14);
    }
    char copy[256], *save = NULL;
    snprintf(copy, sizeof(copy), "%s", list);
    cJSON *doc = cJSON_CreateObject();
    cJSON *jobs = mode == BATCH_NOT_ARRAY ? cJSON_AddObjectToObject(doc, "jobs")
                                          : cJSON_AddArrayToObject(doc, "jobs");
    for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        unsigned bucket = (unsigned)atoi(tok);
        cJSON *e = mode == BATCH_ENTRY_NOT_OBJECT ? cJSON_CreateNumber(bucket)
                                                  : fake_batch_entry(d, bucket);
        if (mode == BATCH_BUCKET_STRING) {
            cJSON_ReplaceItemInObjectCaseSensitive(e, "bucket", cJSON_CreateString(tok));
        }
        if (mode == BATCH_NOT_ARRAY) cJSON_AddItemToObject(jobs, tok, e);
        else cJSON_AddItemToArray(jobs, e);
    }
    if (mode == BATCH_SHORT) cJSON_DeleteItemFromArray(jobs, 0);
    if (mode == BATCH_LONG) cJSON_AddItemToArray(jobs, fake_batch_entry(d, 99));
    if (mode == BATCH_SWAPPED) cJSON_AddItemToArray(jobs, cJSON_DetachItemFromArray(jobs, 0));
    return bc_http_reply_json(req, 200, doc);
}

/* Bucket's job as a GET shows it after waited_ms of its request
 * (*running says which): running until its delay has passed (for ever
 * from STALLED up, the same bytes received each time), then done. */
static cJSON *
fake_job(unsigned bucket, double epoch, int64_t waited_ms, bool *running)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "bucket", bucket);
    cJSON_AddNumberToObject(doc, "epoch", epoch);
    *running = bucket >= STALLED || waited_ms < (bucket < 8 ? copy_ms[bucket] : 0);
    if (*running) {
        cJSON_AddStringToObject(doc, "state", "running");
        cJSON_AddNumberToObject(doc, "received", 100);
        return doc;
    }
    cJSON_AddStringToObject(doc, "state", "done");
    cJSON_AddNumberToObject(doc, "items", 1);
    cJSON_AddNumberToObject(doc, "bytes", 10);
    cJSON_AddStringToObject(doc, "node", "dest");
    return doc;
}

/* The answer to GET ?buckets=list..., as d's status mode says: parked
 * while every job runs and one of them will finish. */
static enum MHD_Result
fake_batch_status(fake_dest_t *d, bc_http_req_t *req, const char *list, double epoch)
{
    if (atomic_load(&d->status_mode) == STATUS_EMPTY) {
        return bc_http_reply_bytes(req, 200, "application/json", "{\"jobs\": []}", 12);
    }
    char copy[256], *save = NULL;
    snprintf(copy, sizeof(copy), "%s", list);
    int64_t waited_ms = req->parked_us != 0 ? (bc_time_mono_us() - req->parked_us) / 1000 : 0;
    bool all_running = true, will_finish = false;
    cJSON *doc = cJSON_CreateObject();
    cJSON *jobs = cJSON_AddArrayToObject(doc, "jobs");
    for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        unsigned bucket = (unsigned)atoi(tok);
        bool running;
        cJSON *e = fake_job(bucket, epoch, waited_ms, &running);
        if (bucket == atomic_load(&d->lost)) {
            cJSON_Delete(e);
            e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "bucket", bucket);
            cJSON_AddStringToObject(e, "state", "none");
            cJSON_AddStringToObject(e, "error", "no import of it is known here");
            running = false;
        }
        all_running = all_running && running;
        will_finish = will_finish || bucket < STALLED;
        cJSON_AddItemToArray(jobs, e);
    }
    if (all_running && will_finish) {
        cJSON_Delete(doc);
        return bc_http_park(req, 2000);
    }
    return bc_http_reply_json(req, 200, doc);
}

/* POST and GET /v1/migrate/import?bucket=B&epoch=E...: started (202), then
 * running until bucket B's delay has passed, then done.  POST
 * ?buckets=...: fake_batch. */
static enum MHD_Result
handle_import(void *ctx, bc_http_req_t *req)
{
    fake_dest_t *d = ctx;
    char query[1024];
    snprintf(query, sizeof(query), "%s", req->query != NULL ? req->query : "");
    bc_http_param_t params[8];
    int n = bc_http_parse_query(query, params, 8);
    const bc_http_param_t *b = n > 0 ? bc_http_param_find(params, n, "bucket") : NULL;
    const bc_http_param_t *e = n > 0 ? bc_http_param_find(params, n, "epoch") : NULL;
    const bc_http_param_t *list = n > 0 ? bc_http_param_find(params, n, "buckets") : NULL;
    bool precopy = n > 0 && bc_http_param_find(params, n, "precopy") != NULL;
    bool post = strcmp(req->method, "POST") == 0;
    if (post && list != NULL) {
        fake_record_batch(d, list->value, params, n);
        if (atomic_load(&d->mode) != BATCH_OLD) return fake_batch(d, req, list->value);
    }
    if (!post && list != NULL) {
        if (req->parked_us == 0) atomic_fetch_add(&d->batch_gets, 1);
        if (atomic_load(&d->status_mode) != STATUS_OLD) {
            return fake_batch_status(d, req, list->value, e != NULL ? atof(e->value) : 0);
        }
    }
    if (!post && b != NULL && req->parked_us == 0) atomic_fetch_add(&d->single_gets, 1);
    if (b == NULL || (e == NULL && !precopy)) {
        return bc_http_reply_error(req, 400, "the bucket parameter is missing");
    }
    unsigned bucket = (unsigned)atoi(b->value);
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "bucket", bucket);
    cJSON_AddNumberToObject(doc, "epoch", precopy ? 0 : atof(e->value));
    if (post) {
        int64_t none = 0;
        if (precopy) {
            atomic_compare_exchange_strong(&precopy_posted_ms, &none, bc_time_mono_ms());
            atomic_fetch_add(&d->single_posts, 1);
            pthread_mutex_lock(&d->mu);
            if (d->nsingles < 64) d->singles[d->nsingles++] = bucket;
            pthread_mutex_unlock(&d->mu);
        }
        cJSON_AddBoolToObject(doc, "precopy", precopy);
        return bc_http_reply_json(req, 202, doc);
    }
    cJSON_Delete(doc);
    int64_t waited_ms = req->parked_us != 0 ? (bc_time_mono_us() - req->parked_us) / 1000 : 0;
    bool running;
    doc = fake_job(bucket, precopy ? 0 : atof(e->value), waited_ms, &running);
    if (running && bucket < STALLED) {
        cJSON_Delete(doc);
        return bc_http_park(req, 2000);
    }
    return bc_http_reply_json(req, 200, doc);
}

static const bc_http_route_t routes[] = {
    {"/v1/migrate/import", "GET, POST", handle_import},
};

/* Starts a fake destination (*d, all zero but what is set here). */
static void
dest_start(fake_dest_t *d)
{
    memset(d, 0, sizeof(*d));
    pthread_mutex_init(&d->mu, NULL);
    bc_httpd_config_t cfg = {
        .name = "dest", .listen_addr = "127.0.0.1", .routes = routes, .nroutes = 1,
        .request_timeout_s = 5, .ctx = d,
    };
    assert_int_equal(bc_httpd_create(&cfg, &d->h), BC_OK);
    assert_int_equal(bc_httpd_start(d->h), BC_OK);
    snprintf(d->addr, sizeof(d->addr), "127.0.0.1:%u", bc_httpd_port(d->h));
}

static void
dest_stop(fake_dest_t *d)
{
    bc_httpd_destroy(d->h);
    pthread_mutex_destroy(&d->mu);
}

/* How many of d's precopy POSTs with bucket= were for bucket. */
static int
dest_singles_of(fake_dest_t *d, uint32_t bucket)
{
    int k = 0;
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < d->nsingles; i++) k += d->singles[i] == bucket;
    pthread_mutex_unlock(&d->mu);
    return k;
}

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
 * destination *d its jobs go to. */
static bc_mig_pool_t *
pool_with_dest(uint32_t ncopy, uint32_t nprecopy, fake_dest_t *d)
{
    dest_start(d);
    bc_mig_pool_t *p = NULL;
    assert_int_equal(bc_mig_pool_start(ncopy, nprecopy, 5000, on_report, NULL, &p), BC_OK);
    return p;
}

static void
test_gather_waits_for_the_batch_and_no_longer(void **state)
{
    (void)state;
    fake_dest_t d;
    bc_mig_pool_t *p = pool_with_dest(4, 0, &d);
    const char *dest = d.addr;
    bc_mig_report_t reps[8];

    /* nothing out, nothing reported: no wait */
    int64_t t0 = bc_time_mono_ms();
    assert_int_equal(bc_mig_pool_gather(p, 500), 0);
    assert_true(bc_time_mono_ms() - t0 < 100);

    /* a batch of two: bucket 0 reports at once, bucket 1 30 ms later; a
     * round that finds 0's report waits for 1's and takes both */
    int before = atomic_load(&reports_posted);
    bc_mig_job_t j0 = job(0, 7, dest), j1 = job(1, 7, dest);
    assert_true(bc_mig_pool_submit(p, &j0));
    assert_true(bc_mig_pool_submit(p, &j1));
    wait_posted(before + 1);
    assert_int_equal(bc_mig_pool_gather(p, 1000), 0);
    assert_int_equal(bc_mig_pool_take(p, reps, 8), 2);
    assert_true(reps[0].ok && reps[1].ok);
    /* (a worker notifies after it posts: both notices are in by now) */
    wait_posted(before + 2);

    /* bucket 2 takes 2 s, bucket 3 none: the wait ends at its bound with
     * bucket 2 still out, and only 3's report is taken */
    before += 2;
    bc_mig_job_t j2 = job(2, 7, dest), j3 = job(3, 7, dest);
    /* (another source: a copy of its own, not in 2's batch) */
    snprintf(j3.source_admin, sizeof(j3.source_admin), "127.0.0.1:2");
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
    before += 1;
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
    dest_stop(&d);
}

/* A precopy does not start while a final copy is out -- for a bounded
 * time only. */
static void
test_precopy_yields_to_copies_for_a_bounded_time(void **state)
{
    (void)state;
    fake_dest_t d;
    bc_mig_pool_t *p = pool_with_dest(2, 2, &d);

    /* bucket 5's copy takes 2 s; a precopy queued with it starts once its
     * 50-ms yield is over, not 2 s later */
    int before = atomic_load(&reports_posted);
    bc_mig_job_t c5 = job(5, 7, d.addr), p6 = job(6, 0, d.addr);
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
    /* a precopy alone is started as before: one POST of its bucket */
    assert_int_equal(atomic_load(&d.batch_posts), 0);
    assert_int_equal(dest_singles_of(&d, 6), 1);
    bc_mig_pool_stop(p);
    dest_stop(&d);
}

#define MAX_JOBS 24

/*
 * Queues the n precopies jobs[] together, as the console does, while a
 * final copy is out at copy_dest (bucket 1: 30 ms) for the precopy
 * workers to yield to; waits for every report and moves the precopies'
 * into out (room for MAX_JOBS).
 */
static void
precopies_run(bc_mig_pool_t *p, fake_dest_t *copy_dest, const bc_mig_job_t *jobs, size_t n,
              bc_mig_report_t *out)
{
    static uint64_t epoch = 100;
    int before = atomic_load(&reports_posted);
    bc_mig_job_t c = job(1, ++epoch, copy_dest->addr);
    assert_true(bc_mig_pool_submit(p, &c));
    bool queued[MAX_JOBS];
    bc_mig_pool_precopy_many(p, jobs, n, queued);
    for (size_t i = 0; i < n; i++) assert_true(queued[i]);
    wait_posted(before + (int)n + 1);
    bc_mig_report_t copy;
    assert_int_equal(bc_mig_pool_take(p, &copy, 1), 1);
    assert_true(copy.ok && copy.epoch == epoch);
    assert_int_equal(bc_mig_pool_take_precopies(p, out, MAX_JOBS), n);
    assert_int_equal(bc_mig_pool_precopying(p), 0);
}

/* reps[0..n) holds exactly one report of each of jobs[0..n), a
 * successful precopy made for its move. */
static void
assert_precopied(const bc_mig_report_t *reps, const bc_mig_job_t *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int found = 0;
        for (size_t k = 0; k < n; k++) {
            const bc_mig_report_t *r = &reps[k];
            if (r->bucket != jobs[i].bucket) continue;
            found++;
            assert_true(r->ok);
            assert_false(r->unreachable);
            assert_int_equal(r->epoch, 0);
            assert_int_equal(r->from, jobs[i].from);
            assert_int_equal(r->to, jobs[i].to);
            assert_int_equal(r->items, 1);
            assert_int_equal(r->bytes, 10);
            assert_string_equal(r->node, "dest");
            assert_string_equal(r->dest_node, jobs[i].dest_node);
        }
        assert_int_equal(found, 1);
    }
}

/* Precopies queued for one pair start with one POST, in queue order, no
 * more than BC_MIG_PRECOPY_BATCH_MAX to a POST; each gets its report. */
static void
test_precopies_of_one_pair_start_with_one_post(void **state)
{
    (void)state;
    fake_dest_t d;
    bc_mig_pool_t *p = pool_with_dest(1, 2, &d);
    bc_mig_job_t jobs[MAX_JOBS];
    bc_mig_report_t reps[MAX_JOBS];
    const uint32_t order[4] = {12, 10, 13, 11};
    for (size_t i = 0; i < 4; i++) jobs[i] = job(order[i], 0, d.addr);

    precopies_run(p, &d, jobs, 4, reps);
    assert_precopied(reps, jobs, 4);
    assert_int_equal(atomic_load(&d.batch_posts), 1);
    assert_int_equal(atomic_load(&d.single_posts), 0);
    pthread_mutex_lock(&d.mu);
    assert_string_equal(d.last_batch, "12,10,13,11");
    assert_string_equal(d.last_from, "1");
    assert_string_equal(d.last_source, "127.0.0.1:1");
    pthread_mutex_unlock(&d.mu);

    /* more than a batch holds: two POSTs, none larger than the bound */
    for (size_t i = 0; i < BC_MIG_PRECOPY_BATCH_MAX + 4; i++) jobs[i] = job(100 + i, 0, d.addr);
    precopies_run(p, &d, jobs, BC_MIG_PRECOPY_BATCH_MAX + 4, reps);
    assert_precopied(reps, jobs, BC_MIG_PRECOPY_BATCH_MAX + 4);
    assert_int_equal(atomic_load(&d.batch_posts), 3);
    assert_int_equal(atomic_load(&d.batched), 4 + BC_MIG_PRECOPY_BATCH_MAX + 4);
    assert_int_equal(atomic_load(&d.largest), BC_MIG_PRECOPY_BATCH_MAX);
    assert_int_equal(atomic_load(&d.single_posts), 0);
    bc_mig_pool_stop(p);
    dest_stop(&d);
}

/* The copies a round starts go in together: those of one pair and epoch
 * start with one POST naming the epoch; another epoch's or pair's do not
 * join them; each copy gets its report. */
static void
test_copies_of_one_pair_and_epoch_start_with_one_post(void **state)
{
    (void)state;
    fake_dest_t a, b;
    bc_mig_pool_t *p = pool_with_dest(4, 0, &a);
    dest_start(&b);
    bc_mig_job_t jobs[6] = {job(30, 11, a.addr), job(31, 11, a.addr), job(32, 12, a.addr),
                            job(33, 11, b.addr), job(34, 11, a.addr), job(35, 11, a.addr)};
    bool queued[6];
    int before = atomic_load(&reports_posted);
    bc_mig_pool_submit_many(p, jobs, 6, queued);
    for (int i = 0; i < 6; i++) assert_true(queued[i]);
    wait_posted(before + 6);
    bc_mig_report_t reps[8];
    assert_int_equal(bc_mig_pool_take(p, reps, 8), 6);
    for (int i = 0; i < 6; i++) {
        int found = 0;
        for (int k = 0; k < 6; k++) {
            if (reps[k].bucket != jobs[i].bucket) continue;
            found++;
            assert_true(reps[k].ok);
            assert_int_equal(reps[k].epoch, jobs[i].epoch);
        }
        assert_int_equal(found, 1);
    }
    /* one batch at a (30, 31, 34, 35 at epoch 11), 32 and 33 alone */
    assert_int_equal(atomic_load(&a.batch_posts), 1);
    assert_int_equal(atomic_load(&b.batch_posts), 0);
    pthread_mutex_lock(&a.mu);
    assert_string_equal(a.last_batch, "30,31,34,35");
    assert_string_equal(a.last_epoch, "11");
    pthread_mutex_unlock(&a.mu);
    bc_mig_pool_stop(p);
    dest_stop(&a);
    dest_stop(&b);
}

/* A batch whose stream stalls is given up on one deadline: every job of
 * it fails about one timeout after the last progress, not one timeout
 * after another (precopies and copies alike). */
static void
test_a_stalled_batch_is_given_up_on_one_deadline(void **state)
{
    (void)state;
    const uint32_t timeout_ms = 500;
    fake_dest_t d;
    dest_start(&d);
    bc_mig_pool_t *p = NULL;
    assert_int_equal(bc_mig_pool_start(1, 1, timeout_ms, on_report, NULL, &p), BC_OK);
    /* each job's status asked on its own, then all in one (STATUS_BATCH) */
    for (int kind = 0; kind < 4; kind++) {
        bool precopy = kind % 2 == 0;
        atomic_store(&d.status_mode, kind < 2 ? STATUS_OLD : STATUS_BATCH);
        bc_mig_job_t jobs[4];
        for (uint32_t i = 0; i < 4; i++) {
            jobs[i] = job(STALLED + 10 * (uint32_t)kind + i, precopy ? 0 : 50, d.addr);
        }
        int before = atomic_load(&reports_posted), batches = atomic_load(&d.batch_posts);
        int64_t t0 = bc_time_mono_ms();
        bool queued[4];
        if (precopy) {
            bc_mig_pool_precopy_many(p, jobs, 4, queued);
        } else {
            bc_mig_pool_submit_many(p, jobs, 4, queued);
        }
        for (int i = 0; i < 4; i++) assert_true(queued[i]);
        wait_posted(before + 4);
        int64_t took = bc_time_mono_ms() - t0;
        /* one timeout (and the first status's progress), not four */
        if (took >= 3 * (int64_t)timeout_ms) {
            fail_msg("%s: 4 stalled jobs took %lld ms to give up (timeout %u ms)",
                     precopy ? "precopies" : "copies", (long long)took, timeout_ms);
        }
        assert_int_equal(atomic_load(&d.batch_posts), batches + 1);
        bc_mig_report_t reps[4];
        if (precopy) {
            assert_int_equal(bc_mig_pool_take_precopies(p, reps, 4), 4);
        } else {
            assert_int_equal(bc_mig_pool_take(p, reps, 4), 4);
        }
        for (int i = 0; i < 4; i++) {
            assert_false(reps[i].ok);
            assert_non_null(strstr(reps[i].error, "timed out: no progress"));
        }
    }
    bc_mig_pool_stop(p);
    dest_stop(&d);
}

/* The jobs of a batch are waited for with one long poll for all of them:
 * the destination answers it as soon as one finishes, and the pool asks
 * again for the rest -- never a GET per job.  A job the destination no
 * longer has fails; precopies are waited for the same way. */
static void
test_a_batch_is_waited_for_with_one_long_poll(void **state)
{
    (void)state;
    fake_dest_t d, other;
    bc_mig_pool_t *p = pool_with_dest(1, 2, &d);
    dest_start(&other);
    atomic_store(&d.status_mode, STATUS_BATCH);
    atomic_store(&d.lost, 11);
    bc_mig_job_t jobs[4] = {job(1, 70, d.addr), job(8, 70, d.addr), job(9, 70, d.addr),
                            job(11, 70, d.addr)};
    bool queued[4];
    int before = atomic_load(&reports_posted);
    bc_mig_pool_submit_many(p, jobs, 4, queued);
    wait_posted(before + 4);
    bc_mig_report_t reps[MAX_JOBS];
    assert_int_equal(bc_mig_pool_take(p, reps, 4), 4);
    for (int k = 0; k < 4; k++) {
        assert_int_equal(reps[k].epoch, 70);
        if (reps[k].bucket == 11) {
            assert_false(reps[k].ok);
            assert_non_null(strstr(reps[k].error, "destination lost the import"));
        } else {
            assert_true(reps[k].ok);
            assert_int_equal(reps[k].items, 1);
            assert_string_equal(reps[k].node, "dest");
        }
    }
    /* 8, 9 and 11 answered by the first poll, 1 (30 ms) by the second */
    assert_int_equal(atomic_load(&d.batch_posts), 1);
    assert_int_equal(atomic_load(&d.batch_gets), 2);
    assert_int_equal(atomic_load(&d.single_gets), 0);

    atomic_store(&d.lost, 0);
    bc_mig_job_t pre[3] = {job(8, 0, d.addr), job(9, 0, d.addr), job(10, 0, d.addr)};
    precopies_run(p, &other, pre, 3, reps);
    assert_precopied(reps, pre, 3);
    assert_int_equal(atomic_load(&d.batch_posts), 2);
    assert_int_equal(atomic_load(&d.batch_gets), 3);
    assert_int_equal(atomic_load(&d.single_gets), 0);
    bc_mig_pool_stop(p);
    dest_stop(&d);
    dest_stop(&other);
}

/* A destination from before batch statuses (400), or a batch status that
 * does not list the jobs asked: each job is waited for on its own. */
static void
test_a_batch_status_not_understood_falls_back_to_each_job(void **state)
{
    (void)state;
    static const status_mode_t modes[] = {STATUS_OLD, STATUS_EMPTY};
    fake_dest_t d;
    bc_mig_pool_t *p = pool_with_dest(1, 0, &d);
    for (size_t m = 0; m < 2; m++) {
        atomic_store(&d.status_mode, modes[m]);
        uint64_t epoch = 80 + m;
        bc_mig_job_t jobs[3] = {job(8, epoch, d.addr), job(9, epoch, d.addr),
                                job(10, epoch, d.addr)};
        bool queued[3];
        int before = atomic_load(&reports_posted);
        bc_mig_pool_submit_many(p, jobs, 3, queued);
        wait_posted(before + 3);
        bc_mig_report_t reps[3];
        assert_int_equal(bc_mig_pool_take(p, reps, 3), 3);
        for (int k = 0; k < 3; k++) assert_true(reps[k].ok && reps[k].epoch == epoch);
        assert_int_equal(atomic_load(&d.batch_gets), (int)m + 1);
        assert_int_equal(atomic_load(&d.single_gets), 3 * ((int)m + 1));
    }
    bc_mig_pool_stop(p);
    dest_stop(&d);
}

/* A batch holds the precopies of one source, destination, from and to:
 * queued among them, others' wait for their own. */
static void
test_precopies_of_other_pairs_are_not_batched_together(void **state)
{
    (void)state;
    fake_dest_t a, b;
    bc_mig_pool_t *p = pool_with_dest(1, 2, &a);
    dest_start(&b);
    bc_mig_job_t jobs[8];
    bc_mig_report_t reps[MAX_JOBS];
    jobs[0] = job(10, 0, a.addr);
    jobs[1] = job(20, 0, b.addr);
    jobs[2] = job(11, 0, a.addr);
    jobs[3] = job(30, 0, a.addr);                  /* another source */
    snprintf(jobs[3].source_admin, sizeof(jobs[3].source_admin), "127.0.0.1:2");
    jobs[4] = job(21, 0, b.addr);
    jobs[5] = job(40, 0, a.addr);                  /* another destination group */
    jobs[5].to = 3;
    jobs[6] = job(12, 0, a.addr);
    jobs[7] = job(50, 0, a.addr);                  /* another source group */
    jobs[7].from = 4;

    precopies_run(p, &a, jobs, 8, reps);
    assert_precopied(reps, jobs, 8);
    assert_int_equal(atomic_load(&a.batch_posts), 1);
    assert_int_equal(atomic_load(&b.batch_posts), 1);
    pthread_mutex_lock(&a.mu);
    assert_string_equal(a.last_batch, "10,11,12");
    pthread_mutex_unlock(&a.mu);
    pthread_mutex_lock(&b.mu);
    assert_string_equal(b.last_batch, "20,21");
    pthread_mutex_unlock(&b.mu);
    /* alone in their pair: started one at a time */
    assert_int_equal(atomic_load(&a.single_posts), 3);
    assert_int_equal(dest_singles_of(&a, 30), 1);
    assert_int_equal(dest_singles_of(&a, 40), 1);
    assert_int_equal(dest_singles_of(&a, 50), 1);
    assert_int_equal(atomic_load(&b.single_posts), 0);
    bc_mig_pool_stop(p);
    dest_stop(&a);
    dest_stop(&b);
}

/* A bucket the batch refused is started on its own; the others are not. */
static void
test_a_refused_bucket_takes_the_single_path(void **state)
{
    (void)state;
    fake_dest_t d;
    bc_mig_pool_t *p = pool_with_dest(1, 2, &d);
    atomic_store(&d.mode, BATCH_REFUSE);
    atomic_store(&d.refused, 11);
    bc_mig_job_t jobs[3] = {job(10, 0, d.addr), job(11, 0, d.addr), job(12, 0, d.addr)};
    bc_mig_report_t reps[MAX_JOBS];

    precopies_run(p, &d, jobs, 3, reps);
    assert_precopied(reps, jobs, 3);
    assert_int_equal(atomic_load(&d.batch_posts), 1);
    assert_int_equal(atomic_load(&d.single_posts), 1);
    assert_int_equal(dest_singles_of(&d, 11), 1);
    bc_mig_pool_stop(p);
    dest_stop(&d);
}

/* A destination that does not know the batch (400) gets every bucket on
 * its own, and each is precopied. */
static void
test_an_older_destination_gets_the_single_path(void **state)
{
    (void)state;
    fake_dest_t d;
    bc_mig_pool_t *p = pool_with_dest(1, 2, &d);
    atomic_store(&d.mode, BATCH_OLD);
    bc_mig_job_t jobs[3] = {job(10, 0, d.addr), job(11, 0, d.addr), job(12, 0, d.addr)};
    bc_mig_report_t reps[MAX_JOBS];

    precopies_run(p, &d, jobs, 3, reps);
    assert_precopied(reps, jobs, 3);
    assert_int_equal(atomic_load(&d.batch_posts), 1);
    assert_int_equal(atomic_load(&d.single_posts), 3);
    for (size_t i = 0; i < 3; i++) assert_int_equal(dest_singles_of(&d, jobs[i].bucket), 1);
    bc_mig_pool_stop(p);
    dest_stop(&d);
}

/* A 200 answer to the batch that is not the list of its jobs is not
 * believed: every bucket is started on its own. */
static void
test_a_malformed_batch_answer_falls_back(void **state)
{
    (void)state;
    static const batch_mode_t modes[] = {
        BATCH_SHORT, BATCH_LONG, BATCH_SWAPPED, BATCH_NOT_JSON, BATCH_NOT_ARRAY,
        BATCH_ENTRY_NOT_OBJECT, BATCH_BUCKET_STRING,
    };
    fake_dest_t d;
    bc_mig_pool_t *p = pool_with_dest(1, 2, &d);
    bc_mig_report_t reps[MAX_JOBS];
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        atomic_store(&d.mode, modes[m]);
        uint32_t b0 = 10 * (uint32_t)(m + 1);
        bc_mig_job_t jobs[3] = {job(b0, 0, d.addr), job(b0 + 1, 0, d.addr),
                                job(b0 + 2, 0, d.addr)};
        precopies_run(p, &d, jobs, 3, reps);
        assert_precopied(reps, jobs, 3);
        assert_int_equal(atomic_load(&d.batch_posts), (int)m + 1);
        assert_int_equal(atomic_load(&d.single_posts), 3 * ((int)m + 1));
        for (size_t i = 0; i < 3; i++) assert_int_equal(dest_singles_of(&d, jobs[i].bucket), 1);
    }
    bc_mig_pool_stop(p);
    dest_stop(&d);
}

/* A destination that does not answer the batch: each of its buckets is
 * reported once, unreachable. */
static void
test_an_unreachable_destination_fails_each_bucket_once(void **state)
{
    (void)state;
    fake_dest_t d, gone;
    bc_mig_pool_t *p = pool_with_dest(1, 2, &d);
    dest_start(&gone);
    char addr[64];
    snprintf(addr, sizeof(addr), "%s", gone.addr);
    dest_stop(&gone);                              /* nothing listens there now */
    bc_mig_job_t jobs[3] = {job(10, 0, addr), job(11, 0, addr), job(12, 0, addr)};
    bc_mig_report_t reps[MAX_JOBS];

    precopies_run(p, &d, jobs, 3, reps);
    for (size_t i = 0; i < 3; i++) {
        int found = 0;
        for (size_t k = 0; k < 3; k++) {
            if (reps[k].bucket != jobs[i].bucket) continue;
            found++;
            assert_false(reps[k].ok);
            assert_true(reps[k].unreachable);
            assert_int_equal(reps[k].to, 2);
            assert_string_equal(reps[k].dest_node, "dest");
            assert_non_null(strstr(reps[k].error, "unreachable"));
        }
        assert_int_equal(found, 1);
    }
    bc_mig_pool_stop(p);
    dest_stop(&d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gather_waits_for_the_batch_and_no_longer),
        cmocka_unit_test(test_precopy_yields_to_copies_for_a_bounded_time),
        cmocka_unit_test(test_precopies_of_one_pair_start_with_one_post),
        cmocka_unit_test(test_precopies_of_other_pairs_are_not_batched_together),
        cmocka_unit_test(test_copies_of_one_pair_and_epoch_start_with_one_post),
        cmocka_unit_test(test_a_stalled_batch_is_given_up_on_one_deadline),
        cmocka_unit_test(test_a_batch_is_waited_for_with_one_long_poll),
        cmocka_unit_test(test_a_batch_status_not_understood_falls_back_to_each_job),
        cmocka_unit_test(test_a_refused_bucket_takes_the_single_path),
        cmocka_unit_test(test_an_older_destination_gets_the_single_path),
        cmocka_unit_test(test_a_malformed_batch_answer_falls_back),
        cmocka_unit_test(test_an_unreachable_destination_fails_each_bucket_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
