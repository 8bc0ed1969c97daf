/*
 * jobs.c -- the import endpoints (migrate.h: POST, GET and DELETE
 * /v1/migrate/import) and the table of import jobs behind them.
 *
 * HOW
 *   A fixed table of max_imports * MIG_SLOTS_PER_IMPORT job slots, guarded
 *   by mu (LOCKING RULE at the struct, migrate_int.h): a POST takes a
 *   free slot (or the oldest finished one) and starts the job's thread
 *   (import.c); finished jobs stay in their slots so the console can ask
 *   how they ended.  The requests are idempotent and ordered by epoch: the
 *   same request again reports the job, an older one is refused as stale,
 *   a newer one stops the job it supersedes first.  A precopy (epoch 0)
 *   stays usable for the copy that follows it for MIG_PRECOPY_KEEP_MS.
 *
 *   The cluster agent asks here before dropping a bucket that left
 *   (bc__migrate_drop): a bucket an import is filling, or has filled and
 *   whose cutover is pending, is kept while its owner is still the source
 *   group.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bc_log.h"
#include "bc_time.h"
#include "migrate/migrate_int.h"

/* The most recent job for bucket (mu held), or NULL.  precopy_only:
 * the most recent precopy. */
static import_job_t *
job_find_kind(bc_node_migrate_t *mig, uint32_t bucket, bool precopy_only)
{
    import_job_t *best = NULL;
    for (uint32_t i = 0; i < mig->njobs; i++) {
        import_job_t *j = &mig->jobs[i];
        if (j->state != JOB_FREE && j->bucket == bucket && (!precopy_only || j->precopy) &&
            (best == NULL || j->seq > best->seq)) {
            best = j;
        }
    }
    return best;
}

static import_job_t *
job_find(bc_node_migrate_t *mig, uint32_t bucket)
{
    return job_find_kind(mig, bucket, false);
}

/*
 * Whether precopy j can still be the base of a final copy from group
 * `from` at `source` (mu held).
 *
 * BEHAVIOR: a delta is correct only on top of exactly what the precopy
 * stored.  That holds while nothing here changed the bucket since: no
 * flush_all ran here (it would have emptied it; the source's own flushes
 * end its tracker, tap.h), no final copy used it (a failed one drops the
 * bucket), no drop or cancel touched it, and it is recent (the drop hook
 * stops keeping an old one).  Evictions here are the exception a cache
 * allows: an evicted item is a miss, as it could be right after a cutover.
 */
static bool
job_precopy_usable(bc_node_migrate_t *mig, const import_job_t *j, uint32_t from,
                   const char *source)
{
    return j != NULL && j->precopy && j->state == JOB_DONE && !j->used && j->tap != 0 &&
           !atomic_load(&j->cancel) && j->from == from && strcmp(j->source, source) == 0 &&
           j->flushes == bc_cache_flush_count(mig->cache) &&
           bc_time_real_ms() - j->finished_ms < MIG_PRECOPY_KEEP_MS;
}

static const char *
job_state_name(job_state_t s)
{
    switch (s) {
    case JOB_RUNNING: return "running";
    case JOB_DONE: return "done";
    case JOB_FAILED: return "failed";
    default: return "none";
    }
}

/* The job as JSON (mu held). */
static cJSON *
job_json(bc_node_migrate_t *mig, const import_job_t *j)
{
    bc_node_cluster_info_t info;
    bc_node_cluster_get_info(mig->cluster, &info);
    cJSON *doc = cJSON_CreateObject();
    if (doc == NULL) return NULL;
    cJSON_AddNumberToObject(doc, "bucket", j->bucket);
    cJSON_AddNumberToObject(doc, "epoch", (double)j->epoch);
    cJSON_AddStringToObject(doc, "state", job_state_name(j->state));
    cJSON_AddBoolToObject(doc, "precopy", j->precopy);
    if (!j->precopy) cJSON_AddBoolToObject(doc, "delta", j->delta);
    if (j->precopy) {
        /* catch-ups since it finished, and whether a final copy can still
         * ask for the changes only */
        cJSON_AddNumberToObject(doc, "catchups", (double)j->catchups);
        cJSON_AddNumberToObject(doc, "catchup_items", (double)j->catchup_items);
        cJSON_AddBoolToObject(doc, "tracked", j->tap != 0);
        cJSON_AddNumberToObject(doc, "refreshes", j->refreshes);
    }
    cJSON_AddStringToObject(doc, "source", j->source);
    cJSON_AddNumberToObject(doc, "from", j->from);
    cJSON_AddNumberToObject(doc, "items", (double)j->items);
    cJSON_AddNumberToObject(doc, "bytes", (double)j->bytes);
    cJSON_AddNumberToObject(doc, "skipped", (double)j->skipped);
    cJSON_AddNumberToObject(doc, "received", (double)j->received);
    cJSON_AddStringToObject(doc, "error", j->error);
    cJSON_AddStringToObject(doc, "node", info.node_name);
    cJSON_AddNumberToObject(doc, "group", info.gid);
    int64_t end = j->state == JOB_RUNNING ? bc_time_real_ms() : j->finished_ms;
    cJSON_AddNumberToObject(doc, "elapsed_ms", (double)(end - j->started_ms));
    return doc;
}

/* A slot for a new job (mu held): a free one, else the oldest finished
 * (whose thread, if joinable, the caller joins before reusing it). */
static import_job_t *
job_slot(bc_node_migrate_t *mig)
{
    import_job_t *pick = NULL;
    for (uint32_t i = 0; i < mig->njobs; i++) {
        import_job_t *j = &mig->jobs[i];
        if (j->catchup) continue;   /* a catch-up of it is in flight (catchup.c) */
        if (j->state == JOB_FREE && !j->joinable) return j;
        if (j->state != JOB_RUNNING && (pick == NULL || j->seq < pick->seq)) pick = j;
    }
    return pick;
}

static enum MHD_Result
import_reply(bc_node_migrate_t *mig, bc_http_req_t *req, unsigned status, import_job_t *j)
{
    cJSON *doc = job_json(mig, j);
    pthread_mutex_unlock(&mig->mu);
    if (doc == NULL) return MHD_NO;
    return bc_http_reply_json(req, status, doc);
}

/* What import_decide found for one bucket of a POST. */
typedef struct import_decision {
    unsigned status;               /* 200 found, 202 started: job; else refused */
    import_job_t *job;
    bool start;                    /* job is reserved (RUNNING, counted): start its thread */
    bool refuse;                   /* a 409 refusal with retry and epoch */
    bool retry;
    uint64_t epoch;
    char error[200];
} import_decision_t;

static void
decision_refuse(import_decision_t *d, bool retry, uint64_t epoch, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
decision_refuse(import_decision_t *d, bool retry, uint64_t epoch, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->error, sizeof(d->error), fmt, ap);
    va_end(ap);
    d->status = MHD_HTTP_CONFLICT;
    d->refuse = true;
    d->retry = retry;
    d->epoch = epoch;
}

static void
decision_fail(import_decision_t *d, unsigned status, const char *msg)
{
    snprintf(d->error, sizeof(d->error), "%s", msg);
    d->status = status;
}

/*
 * Decides the import of `bucket` that request p asks for (mu held; it may
 * be released and taken again to join a finished thread): the job that
 * already answers it, a refusal, or a slot reserved for a new job (state
 * RUNNING, counted in running, every field set but the thread).
 */
static void
import_decide(bc_node_migrate_t *mig, const mig_params_t *p, uint32_t bucket,
              import_decision_t *d)
{
    memset(d, 0, sizeof(*d));
    import_job_t *j = job_find(mig, bucket);
    if (p->precopy && j != NULL && j->precopy && j->from == p->from &&
        strcmp(j->source, p->source) == 0 &&
        (j->state == JOB_RUNNING || job_precopy_usable(mig, j, p->from, p->source))) {
        /* BEHAVIOR: idempotent, as below; a console that took over asks
         * again and finds the copy already made. */
        d->status = j->state == JOB_RUNNING ? MHD_HTTP_ACCEPTED : MHD_HTTP_OK;
        d->job = j;
        return;
    }
    if (p->precopy && j != NULL && !j->precopy &&
        (j->state == JOB_RUNNING || (j->state == JOB_DONE && !atomic_load(&j->cancel)))) {
        /* The final copy runs or waits for its cutover: a precopy would
         * empty the bucket under it (a stale request). */
        decision_refuse(d, false, j->epoch, "the copy of bucket %" PRIu32 " at epoch %" PRIu64
                        " is %s", bucket, j->epoch,
                        j->state == JOB_RUNNING ? "running" : "waiting for its cutover");
        return;
    }
    if (!p->precopy && j != NULL && j->epoch == p->epoch) {
        /* BEHAVIOR: idempotent -- the same request again (a console that
         * retried or took over) reports the job rather than restarting it. */
        d->status = j->state == JOB_RUNNING ? MHD_HTTP_ACCEPTED : MHD_HTTP_OK;
        d->job = j;
        return;
    }
    if (!p->precopy && j != NULL && j->epoch > p->epoch) {
        /* BEHAVIOR: a request older than the newest attempt is stale (a
         * console that lost the election, a delayed retry): never run it. */
        decision_refuse(d, false, j->epoch, "stale: an import of bucket %" PRIu32 " at the "
                        "newer epoch %" PRIu64 " exists", bucket, j->epoch);
        return;
    }
    if (j != NULL && j->state == JOB_RUNNING) {
        /* An older attempt, or a precopy (epoch 0) from elsewhere or
         * overtaken by the final copy: it stops, then this one can start. */
        if (j->epoch < p->epoch || p->precopy) atomic_store(&j->cancel, true);
        decision_refuse(d, true, j->epoch, "an import of bucket %" PRIu32 " at epoch %" PRIu64
                        " is still running", bucket, j->epoch);
        return;
    }
    if (bc__migrate_node_owns(mig, bucket)) {
        char msg[80];
        snprintf(msg, sizeof(msg), "this node's group already owns bucket %" PRIu32, bucket);
        decision_fail(d, MHD_HTTP_CONFLICT, msg);
        return;
    }
    if (mig->running >= mig->max_imports) {
        char msg[80];
        snprintf(msg, sizeof(msg), "%u imports already running; retry", mig->max_imports);
        decision_fail(d, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
        return;
    }
    /* A final copy takes over a precopy of the same source: it asks only
     * for the changes since (the precopy is then used up, whatever
     * happens: a failed final copy drops the bucket). */
    uint64_t since = 0, base_items = 0, base_bytes = 0;
    if (!p->precopy) {
        import_job_t *pre = job_find_kind(mig, bucket, true);
        if (job_precopy_usable(mig, pre, p->from, p->source)) {
            since = pre->tap;
            /* what its catch-ups brought crossed too */
            base_items = pre->items + pre->catchup_items;
            base_bytes = pre->bytes + pre->catchup_bytes;
            pre->used = true;
        }
    }
    j = job_slot(mig);
    if (j == NULL) {
        decision_fail(d, MHD_HTTP_SERVICE_UNAVAILABLE, "no free import slot");
        return;
    }
    if (j->joinable) {
        /* A finished thread: joining it takes no time, but not under mu. */
        pthread_t t = j->thread;
        j->joinable = false;
        j->state = JOB_RUNNING;   /* reserved while unlocked */
        pthread_mutex_unlock(&mig->mu);
        pthread_join(t, NULL);
        pthread_mutex_lock(&mig->mu);
    }
    j->mig = mig;
    j->state = JOB_RUNNING;
    j->bucket = bucket;
    j->epoch = p->precopy ? 0 : p->epoch;
    j->from = p->from;
    snprintf(j->source, sizeof(j->source), "%s", p->source);
    j->precopy = p->precopy;
    j->tap = since;
    j->flushes = bc_cache_flush_count(mig->cache);
    j->used = false;
    j->catchups = j->catchup_items = j->catchup_bytes = 0;
    j->refreshes = 0;
    j->caught_up_ms = 0;
    j->catchup_every_ms = 0;
    j->delta = false;
    j->base_items = base_items;
    j->base_bytes = base_bytes;
    j->items = j->bytes = j->skipped = j->received = 0;
    j->started_ms = bc_time_real_ms();
    j->finished_ms = 0;
    j->error[0] = '\0';
    j->seq = ++mig->seq;
    atomic_store(&j->cancel, false);
    mig->running++;
    d->status = MHD_HTTP_ACCEPTED;
    d->job = j;
    d->start = true;
    log_info("migrate: importing bucket %" PRIu32 " (%s, epoch %" PRIu64 ") from %s", bucket,
             p->precopy ? "precopy" : since != 0 ? "changes since the precopy" : "full",
             j->epoch, p->source);
}

/* Gives back the jobs reserved in batch, not started, and frees it (mu
 * held). */
static void
import_release(bc_node_migrate_t *mig, import_batch_t *batch)
{
    for (uint32_t i = 0; i < batch->n; i++) {
        batch->jobs[i]->state = JOB_FREE;
        mig->running--;
    }
    free(batch);
}

/* Whether source refused a batch before (an older node; mu held). */
static bool
import_source_unbatched(const bc_node_migrate_t *mig, const char *source)
{
    return bc__migrate_source_listed(mig->unbatched, MIG_UNBATCHED_MAX, source);
}

/*
 * Starts one thread for the n jobs reserved in batch (mu held).  The
 * thread belongs to the last job (it finishes last: a slot reused after
 * it never waits for the rest of a batch).  False when no thread could
 * be made: the jobs are given back.
 */
static bool
import_launch(bc_node_migrate_t *mig, import_batch_t *batch)
{
    import_job_t *last = batch->jobs[batch->n - 1];
    if (pthread_create(&last->thread, NULL, bc__migrate_import_main, batch) != 0) {
        import_release(mig, batch);
        return false;
    }
    last->joinable = true;
    pthread_cond_signal(&mig->prefault_cv);
    return true;
}

bool
bc__migrate_precopy_again(bc_node_migrate_t *mig, uint32_t bucket, uint32_t from,
                          const char *source, uint32_t refreshes)
{
    bc_node_cluster_info_t info;
    bc_node_cluster_get_info(mig->cluster, &info);
    import_batch_t *batch = calloc(1, sizeof(*batch));
    if (batch == NULL || mig->stopping || !info.primary) {
        free(batch);
        return false;
    }
    mig_params_t p;
    memset(&p, 0, sizeof(p));
    p.precopy = p.has_bucket = p.has_from = p.has_source = true;
    p.bucket = p.list[0] = bucket;
    p.nlist = 1;
    p.from = from;
    snprintf(p.source, sizeof(p.source), "%s", source);
    import_decision_t d;
    import_decide(mig, &p, bucket, &d);
    if (!d.start) {
        free(batch);
        return false;
    }
    batch->jobs[batch->n++] = d.job;
    if (mig->stopping) {
        import_release(mig, batch);
        return false;
    }
    d.job->refreshes = refreshes;
    return import_launch(mig, batch);
}

/* A POST's answer for one bucket, as the single request has it. */
static enum MHD_Result
import_answer(bc_node_migrate_t *mig, bc_http_req_t *req, const import_decision_t *d)
{
    if (d->job != NULL) return import_reply(mig, req, d->status, d->job);
    pthread_mutex_unlock(&mig->mu);
    if (d->refuse) return bc__migrate_refuse(req, d->retry, d->epoch, "%s", d->error);
    return bc_http_reply_error(req, d->status, "%s", d->error);
}

/* A batch's entry for one bucket: the job, or the refusal's fields. */
static cJSON *
import_entry(bc_node_migrate_t *mig, uint32_t bucket, const import_decision_t *d)
{
    cJSON *e = d->job != NULL ? job_json(mig, d->job) : cJSON_CreateObject();
    if (e == NULL) return NULL;
    if (d->job == NULL) {
        cJSON_AddNumberToObject(e, "bucket", bucket);
        cJSON_AddStringToObject(e, "error", d->error);
        cJSON_AddBoolToObject(e, "retry", d->retry || d->status == MHD_HTTP_SERVICE_UNAVAILABLE);
        cJSON_AddNumberToObject(e, "epoch", (double)d->epoch);
    }
    cJSON_AddNumberToObject(e, "status", d->status);
    return e;
}

static enum MHD_Result
import_start(bc_node_migrate_t *mig, bc_http_req_t *req, const mig_params_t *p)
{
    if (p->precopy ? p->has_epoch || !p->has_source || !p->has_from
                   : !p->has_epoch || !p->has_source || !p->has_from) {
        return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, p->precopy
                                   ? "a precopy takes from and source, and no epoch"
                                   : "epoch, from and source are required");
    }
    if (p->has_sinces) {
        return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "buckets: B:T is for a copy's "
                                   "export only");
    }
    bc_node_cluster_info_t info;
    bc_node_cluster_get_info(mig->cluster, &info);
    if (!info.primary) {
        /* The console may have chosen this node a moment before it learns
         * so itself: asking again shortly can succeed. */
        return bc__migrate_refuse(req, true, info.epoch,
                                  "this node is not (yet) its group's primary; import into the "
                                  "primary");
    }
    import_batch_t *batch = calloc(1, sizeof(*batch));
    cJSON *doc = p->has_bucket ? NULL : cJSON_CreateObject();
    cJSON *jobs = doc != NULL ? cJSON_AddArrayToObject(doc, "jobs") : NULL;
    if (batch == NULL || (!p->has_bucket && jobs == NULL)) {
        free(batch);
        cJSON_Delete(doc);
        return bc_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
    }
    pthread_mutex_lock(&mig->mu);
    if (mig->stopping) {
        pthread_mutex_unlock(&mig->mu);
        free(batch);
        cJSON_Delete(doc);
        return bc_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
    }
    /* BEHAVIOR: a batch (buckets=: precopies from one source, or copies
     * from one source at one epoch) is decided bucket by bucket as the
     * single request is, and what it starts runs on one thread over one
     * connection, in the order asked. */
    import_decision_t d;
    bool launched = true;
    for (uint32_t i = 0; i < p->nlist; i++) {
        import_decide(mig, p, p->list[i], &d);
        if (d.start) batch->jobs[batch->n++] = d.job;
        if (jobs != NULL) cJSON_AddItemToArray(jobs, import_entry(mig, p->list[i], &d));
    }
    if (mig->stopping) {
        /* shutdown came while a finished thread was joined (mu let go):
         * nothing starts now, or it would escape shutdown's join */
        import_release(mig, batch);
        pthread_mutex_unlock(&mig->mu);
        cJSON_Delete(doc);
        return bc_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
    }
    if (batch->n > 1 && import_source_unbatched(mig, p->source)) {
        /* an older source: a thread and a request per bucket */
        uint32_t i = 0;
        for (; i < batch->n && launched; i++) {
            import_batch_t *one = calloc(1, sizeof(*one));
            if (one == NULL) break;
            one->n = 1;
            one->jobs[0] = batch->jobs[i];
            launched = import_launch(mig, one);    /* gives job i back when it fails */
        }
        if (!launched || i < batch->n) {
            launched = false;
            for (uint32_t k = i; k < batch->n; k++) batch->jobs[k - i] = batch->jobs[k];
            batch->n -= i;
            import_release(mig, batch);
        } else {
            free(batch);
        }
    } else if (batch->n > 0) {
        launched = import_launch(mig, batch);
    } else {
        free(batch);
    }
    if (!launched) {
        pthread_mutex_unlock(&mig->mu);
        cJSON_Delete(doc);
        return bc_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot start a thread");
    }
    if (p->has_bucket) return import_answer(mig, req, &d);
    pthread_mutex_unlock(&mig->mu);
    return bc_http_reply_json(req, MHD_HTTP_OK, doc);
}

static enum MHD_Result
import_cancel(bc_node_migrate_t *mig, bc_http_req_t *req, const mig_params_t *p)
{
    pthread_mutex_lock(&mig->mu);
    import_job_t *j = job_find_kind(mig, p->bucket, p->precopy);
    if (j == NULL || (p->has_epoch && j->epoch != p->epoch)) {
        pthread_mutex_unlock(&mig->mu);
        return bc_http_reply_error(req, MHD_HTTP_NOT_FOUND, "no %s of bucket %" PRIu32 "%s",
                                   p->precopy ? "precopy" : "import", p->bucket,
                                   p->has_epoch ? " at that epoch" : "");
    }
    if (p->precopy && job_find(mig, p->bucket) != j) {
        /* A copy took over from the precopy: the copy's DELETE (by epoch)
         * is the one that may drop the bucket. */
        uint64_t other = job_find(mig, p->bucket)->epoch;
        pthread_mutex_unlock(&mig->mu);
        return bc__migrate_refuse(req, false, other,
                                  "the copy of bucket %" PRIu32 " at epoch %" PRIu64 " took over "
                                  "from its precopy", p->bucket, other);
    }
    atomic_store(&j->cancel, true);
    bool finished = j->state != JOB_RUNNING;
    if (finished && j->state == JOB_DONE) {
        j->state = JOB_FAILED;
        snprintf(j->error, sizeof(j->error), "cancelled after it finished");
    }
    pthread_mutex_unlock(&mig->mu);
    /* A running job drops what it stored when it notices; a finished one
     * left its copy here, waiting for a cutover that will not come. */
    uint64_t dropped = 0;
    if (finished && !bc__migrate_node_owns(mig, p->bucket)) {
        dropped = bc_cache_bucket_drop(mig->cache, p->bucket);
    }
    log_info("migrate: import of bucket %" PRIu32 " called off%s (%" PRIu64 " items dropped)",
             p->bucket, finished ? "" : " while running", dropped);
    pthread_mutex_lock(&mig->mu);
    return import_reply(mig, req, MHD_HTTP_OK, j);
}

/* Whether job j is one a long poll for (epoch, any epoch when !has_epoch)
 * waits on: running, of that epoch (mu held). */
static bool
job_waited_for(const bc_node_migrate_t *mig, const import_job_t *j, const mig_params_t *p)
{
    return j != NULL && j->state == JOB_RUNNING && (!p->has_epoch || j->epoch == p->epoch) &&
           !mig->stopping;
}

/* Why a status query for bucket finds no job here, into buf. */
static const char *
job_unknown(const mig_params_t *p, uint32_t bucket, char *buf, size_t len)
{
    snprintf(buf, len, "no %s of bucket %" PRIu32 " is known here",
             p->precopy ? "precopy" : "import", bucket);
    return buf;
}

/* What is left of a long poll's wait_ms (µs; <= 0: answer now). */
static int64_t
import_wait_left_us(const bc_http_req_t *req, const mig_params_t *p)
{
    return (int64_t)p->wait_ms * 1000 -
           (req->parked_us != 0 ? bc_time_mono_us() - req->parked_us : 0);
}

/*
 * GET with buckets=: the states of a batch's jobs in one answer,
 * {"jobs":[...]} in the order asked, each entry what the GET of its bucket
 * alone answers ({"bucket":B,"state":"none","error":...} for a bucket with
 * no job here, where that GET is a 404).  With wait_ms, parked while every
 * one of them runs; answered as soon as one finishes.
 *
 * BEHAVIOR: the jobs of a batch share one stream, and a batch of copies
 * finishes together (after one wait for the backups).  One long poll for
 * all of them hands the console every report in one exchange, where a
 * poll per job took a round trip each, one after the other -- and the
 * console's round waits for the batch's last report before it cuts the
 * batch over (every bucket of it read-only meanwhile).
 */
static enum MHD_Result
import_status_batch(bc_node_migrate_t *mig, bc_http_req_t *req, const mig_params_t *p)
{
    if (p->has_sinces) {
        return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                   "buckets: B:T is for a copy's export only");
    }
    pthread_mutex_lock(&mig->mu);
    bool all_running = true;
    for (uint32_t i = 0; i < p->nlist && all_running; i++) {
        all_running = job_waited_for(mig, job_find_kind(mig, p->list[i], p->precopy), p);
    }
    int64_t left_us = import_wait_left_us(req, p);
    if (p->wait_ms > 0 && all_running && left_us > 0) {
        pthread_mutex_unlock(&mig->mu);
        return bc_http_park(req, left_us);
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON *jobs = doc != NULL ? cJSON_AddArrayToObject(doc, "jobs") : NULL;
    for (uint32_t i = 0; i < p->nlist && jobs != NULL; i++) {
        import_job_t *j = job_find_kind(mig, p->list[i], p->precopy);
        cJSON *e = j != NULL ? job_json(mig, j) : cJSON_CreateObject();
        if (e != NULL && j == NULL) {
            char msg[96];
            cJSON_AddNumberToObject(e, "bucket", p->list[i]);
            cJSON_AddStringToObject(e, "state", "none");
            cJSON_AddStringToObject(e, "error", job_unknown(p, p->list[i], msg, sizeof(msg)));
        }
        if (e == NULL || !cJSON_AddItemToArray(jobs, e)) {
            cJSON_Delete(e);
            jobs = NULL;
        }
    }
    pthread_mutex_unlock(&mig->mu);
    if (jobs == NULL) {
        cJSON_Delete(doc);
        return bc_http_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    return bc_http_reply_json(req, MHD_HTTP_OK, doc);
}

enum MHD_Result
bc_node_migrate_handle_import(bc_node_migrate_t *mig, bc_http_req_t *req)
{
    mig_params_t p;
    enum MHD_Result result;
    if (!bc__migrate_params_parse(mig, req, &p, &result)) return result;
    if (strcmp(req->method, MHD_HTTP_METHOD_POST) == 0) return import_start(mig, req, &p);
    if (!p.has_bucket) {
        if (strcmp(req->method, MHD_HTTP_METHOD_GET) == 0) {
            return import_status_batch(mig, req, &p);
        }
        return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "buckets: a DELETE calls off "
                                   "one job; ask for each by bucket");
    }
    if (strcmp(req->method, MHD_HTTP_METHOD_DELETE) == 0) return import_cancel(mig, req, &p);
    pthread_mutex_lock(&mig->mu);
    import_job_t *j = job_find_kind(mig, p.bucket, p.precopy);
    if (j == NULL) {
        char msg[96];
        pthread_mutex_unlock(&mig->mu);
        return bc_http_reply_error(req, MHD_HTTP_NOT_FOUND, "%s",
                                   job_unknown(&p, p.bucket, msg, sizeof(msg)));
    }
    /* Long poll (wait_ms): a running job of the asked epoch (any, without
     * one) is answered when it finishes -- the job wakes the parked
     * request -- or when wait_ms has passed. */
    int64_t left_us = import_wait_left_us(req, &p);
    if (p.wait_ms > 0 && job_waited_for(mig, j, &p) && left_us > 0) {
        pthread_mutex_unlock(&mig->mu);
        return bc_http_park(req, left_us);
    }
    return import_reply(mig, req, MHD_HTTP_OK, j);
}

/*
 * The cluster agent's way to drop a bucket that left (cluster.h,
 * bc_node_cluster_set_drop).
 *
 * BEHAVIOR: a bucket being imported is named by neither c nor m here
 * until its cutover, so the agent would drop it.  It is kept while an
 * import of it runs, or has finished and waits for its cutover, as long as
 * the bucket's owner is still the group the import copies from.  Once
 * the owner is someone else (the source group went down, the move was
 * replaced) the copy is obsolete and goes.  The decision and the drop
 * happen under mu, as does an import's registration, so an import that
 * starts cannot lose what it stores to a drop decided just before.
 */
int64_t
bc__migrate_drop(void *ctx, uint32_t bucket)
{
    bc_node_migrate_t *mig = ctx;
    pthread_mutex_lock(&mig->mu);
    import_job_t *j = job_find(mig, bucket);
    if (j != NULL && j->precopy && j->state == JOB_DONE && !atomic_load(&j->cancel) &&
        (j->used || bc_time_real_ms() - j->finished_ms >= MIG_PRECOPY_KEEP_MS)) {
        /* A precopy nobody came for (the final copy would not use it). */
        atomic_store(&j->cancel, true);
    }
    if (j != NULL && !atomic_load(&j->cancel) &&
        (j->state == JOB_RUNNING || j->state == JOB_DONE)) {
        uint32_t owner = 0;
        (void)bc_node_cluster_route(mig->cluster, bucket, false, &owner, NULL);
        if (owner == j->from) {
            pthread_mutex_unlock(&mig->mu);
            return -1;
        }
        atomic_store(&j->cancel, true);
        if (j->state == JOB_RUNNING) {
            /* The job notices and drops what it stored itself. */
            pthread_mutex_unlock(&mig->mu);
            return -1;
        }
        j->state = JOB_FAILED;
        snprintf(j->error, sizeof(j->error), "obsolete: bucket %" PRIu32 " is now owned by group "
                 "%" PRIu32 ", not %" PRIu32, bucket, owner, j->from);
    }
    int64_t n = (int64_t)bc_cache_bucket_drop(mig->cache, bucket);
    pthread_mutex_unlock(&mig->mu);
    return n;
}
