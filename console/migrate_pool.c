/*
 * migrate_pool.c -- see migrate_pool.h: the threads that run the copies
 * and precopies (one HTTP conversation with a destination each), their
 * queues, and the reports they hand back to the reconcile loop.
 */
#include "migrate_pool.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bc_http_client.h"
#include "bc_log.h"
#include "bc_time.h"

#define POOL_HTTP_TIMEOUT_MS   2000
#define POOL_LONG_POLL_MS      1000    /* one long poll of an import's state */
/* How long a precopy waits to start while final copies are out (see
 * pool_main). */
#define POOL_PRECOPY_YIELD_MS  50

typedef enum task_kind { TASK_COPY, TASK_CANCEL, TASK_PRECOPY } task_kind_t;

typedef struct pool_task {
    task_kind_t kind;
    bc_mig_job_t job;
    bool alone;                    /* given back by a batch the destination did not take:
                                    * runs on its own */
    struct pool_task *next;
} pool_task_t;

typedef struct pool_key {
    uint32_t bucket;
    uint64_t epoch;                /* 0 for a precopy */
} pool_key_t;

/* The jobs of one kind the pool holds (queued, running or reported but
 * not yet taken), so that none is queued twice. */
typedef struct pool_keys {
    pool_key_t *v;
    size_t n, cap;
} pool_keys_t;

/* A queue and the workers that serve it. */
typedef struct pool_queue {
    pthread_cond_t cv;             /* signalled when a task is queued */
    pool_task_t *head, *tail;
} pool_queue_t;

typedef struct pool_worker {
    bc_mig_pool_t *pool;
    pool_queue_t *queue;           /* the queue this worker serves */
    pthread_t thread;
} pool_worker_t;

/* One kind of job's outcomes: the jobs queued, running or reported (by
 * bucket and epoch, 0 for a precopy), and the reports not yet taken. */
typedef struct pool_reports {
    pool_keys_t active;
    bc_mig_report_t *v;
    size_t n, cap;
} pool_reports_t;

struct bc_mig_pool {
    uint32_t nworkers;             /* copy workers, then as many precopy workers */
    bool precopy;
    uint32_t timeout_ms;
    bc_mig_notify_fn notify;
    void *notify_ctx;
    pool_worker_t *workers;
    uint32_t started;

    /* LOCKING RULE: mu guards everything below; a worker holds it only to
     * take a task or post a report, never across HTTP. */
    pthread_mutex_t mu;
    bool stopping;
    pool_queue_t copies;           /* copies and cancels */
    pool_queue_t precopies;        /* precopies: a copy never waits behind one */
    pool_reports_t copy_reports;
    pool_reports_t precopy_reports;
    pthread_cond_t copy_reported;  /* signalled when a copy's report is posted */
};

/* Room for one more element in a growable array of n elements of size
 * bytes (capacity *cap, doubling from 16).  Returns the array, perhaps
 * moved, or NULL when out of memory (v is then still valid). */
static void *
pool_room(void *v, size_t n, size_t *cap, size_t size)
{
    if (n < *cap) return v;
    size_t c = *cap ? *cap * 2 : 16;
    void *grown = realloc(v, c * size);
    if (grown != NULL) *cap = c;
    return grown;
}

/* Moves the first min(*n, max) elements of the `size`-byte array v into
 * out (the rest move up); returns how many. */
static size_t
pool_take_front(void *v, size_t *n, size_t size, void *out, size_t max)
{
    size_t k = *n < max ? *n : max;
    if (k > 0) {
        memcpy(out, v, k * size);
        memmove(v, (char *)v + k * size, (*n - k) * size);
        *n -= k;
    }
    return k;
}

static bool
keys_has(const pool_keys_t *k, uint32_t bucket, uint64_t epoch)
{
    for (size_t i = 0; i < k->n; i++) {
        if (k->v[i].bucket == bucket && k->v[i].epoch == epoch) return true;
    }
    return false;
}

/* False when out of memory. */
static bool
keys_add(pool_keys_t *k, uint32_t bucket, uint64_t epoch)
{
    pool_key_t *v = pool_room(k->v, k->n, &k->cap, sizeof(*v));
    if (v == NULL) return false;
    k->v = v;
    k->v[k->n++] = (pool_key_t){bucket, epoch};
    return true;
}

static void
keys_drop(pool_keys_t *k, uint32_t bucket, uint64_t epoch)
{
    for (size_t i = 0; i < k->n; i++) {
        if (k->v[i].bucket == bucket && k->v[i].epoch == epoch) {
            k->v[i] = k->v[--k->n];
            return;
        }
    }
}

/* Posts a finished job's report (mu held).  Out of memory: the job is
 * forgotten instead (a copy's record times out, a precopy is asked for
 * again). */
static void
reports_post(pool_reports_t *r, const bc_mig_report_t *rep)
{
    bc_mig_report_t *v = pool_room(r->v, r->n, &r->cap, sizeof(*v));
    if (v == NULL) {
        keys_drop(&r->active, rep->bucket, rep->epoch);
        return;
    }
    r->v = v;
    r->v[r->n++] = *rep;
}

/* The jobs queued or running: known to the pool and not yet reported
 * (mu held). */
static size_t
reports_out(const pool_reports_t *r)
{
    return r->active.n - r->n;
}

/* Takes up to max reports (mu held): their jobs are over. */
static size_t
reports_take(pool_reports_t *r, bc_mig_report_t *out, size_t max)
{
    size_t n = pool_take_front(r->v, &r->n, sizeof(*out), out, max);
    for (size_t k = 0; k < n; k++) keys_drop(&r->active, out[k].bucket, out[k].epoch);
    return n;
}

/* Forgets every report not taken (mu held). */
static void
reports_clear(pool_reports_t *r)
{
    for (size_t k = 0; k < r->n; k++) keys_drop(&r->active, r->v[k].bucket, r->v[k].epoch);
    r->n = 0;
}

static void
reports_free(pool_reports_t *r)
{
    free(r->active.v);
    free(r->v);
}

/* Percent-encodes s into out (query value). */
static void
url_encode(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s != '\0' && o + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

static bool
pool_stopping(bc_mig_pool_t *p)
{
    pthread_mutex_lock(&p->mu);
    bool s = p->stopping;
    pthread_mutex_unlock(&p->mu);
    return s;
}

/* The error text of a JSON error reply, into buf. */
static void
reply_error(const bc_http_response_t *resp, char *buf, size_t cap, bool *retry)
{
    cJSON *doc = cJSON_ParseWithLength(resp->body, resp->body_len);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(doc, "retry");
    snprintf(buf, cap, "%s", cJSON_IsString(e) ? e->valuestring : "(no reason given)");
    if (retry != NULL) *retry = cJSON_IsTrue(r) || resp->status == 503;
    cJSON_Delete(doc);
}

static void
pool_cancel_import(const bc_mig_job_t *job)
{
    char path[128];
    bc_http_response_t resp;
    if (job->epoch == 0) {
        snprintf(path, sizeof(path), "/v1/migrate/import?bucket=%" PRIu32 "&precopy=1",
                 job->bucket);
    } else {
        snprintf(path, sizeof(path), "/v1/migrate/import?bucket=%" PRIu32 "&epoch=%" PRIu64,
                 job->bucket, job->epoch);
    }
    if (bc_http_request(job->dest_admin, "DELETE", path, NULL, 0, POOL_HTTP_TIMEOUT_MS, &resp) ==
        BC_OK) {
        bc_http_response_free(&resp);
    }
}

/* Which import of job's bucket a request names (query text): its precopy,
 * or its final copy at job->epoch. */
static void
import_select(const bc_mig_job_t *job, bool precopy, char *sel, size_t cap)
{
    if (precopy) snprintf(sel, cap, "&precopy=1");
    else snprintf(sel, cap, "&epoch=%" PRIu64, job->epoch);
}

/* An empty report of job. */
static void
report_init(bc_mig_report_t *rep, const bc_mig_job_t *job)
{
    memset(rep, 0, sizeof(*rep));
    rep->bucket = job->bucket;
    rep->epoch = job->epoch;
}

/*
 * Starts (or finds) job's import at its destination: the POST, again
 * while it is refused for a reason worth retrying, until deadline.
 * Returns true when it runs (or is over); otherwise *rep says why not.
 */
/* *rep: the destination at dest did not answer (st); how says when:
 * "unreachable" at the start, "stopped answering" while waited for. */
static void
report_unreachable(bc_mig_report_t *rep, const char *dest, const char *how, bc_status_t st)
{
    snprintf(rep->error, sizeof(rep->error), "destination %.100s %s: %s", dest, how,
             bc_status_str(st));
    rep->unreachable = true;
}

static bool
pool_import_start(bc_mig_pool_t *p, const bc_mig_job_t *job, const char *sel, int64_t deadline,
                  bc_mig_report_t *rep)
{
    char src[3 * BC_ADDR_MAX], path[4 * BC_ADDR_MAX], why[BC_MIG_ERROR_MAX];
    bc_http_response_t resp;

    url_encode(job->source_admin, src, sizeof(src));
    snprintf(path, sizeof(path), "/v1/migrate/import?bucket=%" PRIu32 "%s&from=%" PRIu32
             "&source=%s", job->bucket, sel, job->from, src);
    /* A refusal worth retrying (a primary that does not know it is one
     * yet, all import slots busy) usually clears within milliseconds. */
    int64_t pause_ms = 2;
    for (;;) {
        int64_t left = deadline - bc_time_mono_ms();
        if (left <= 0 || pool_stopping(p)) {
            snprintf(rep->error, sizeof(rep->error), "timed out starting the import at %.100s",
                     job->dest_admin);
            return false;
        }
        bc_status_t st = bc_http_request(job->dest_admin, "POST", path, NULL, 0,
                                         left < POOL_HTTP_TIMEOUT_MS ? (int)left
                                                                    : POOL_HTTP_TIMEOUT_MS, &resp);
        if (st != BC_OK) {
            report_unreachable(rep, job->dest_admin, "unreachable", st);
            return false;
        }
        if (resp.status == 200 || resp.status == 202) {
            bc_http_response_free(&resp);
            return true;
        }
        bool retry = false;
        reply_error(&resp, why, sizeof(why), &retry);
        int status = resp.status;
        bc_http_response_free(&resp);
        if (!retry) {
            snprintf(rep->error, sizeof(rep->error), "destination refused (%d): %.150s", status,
                     why);
            return false;
        }
        bc_time_sleep_ms(pause_ms);
        pause_ms = pause_ms * 2 > 20 ? 20 : pause_ms * 2;
    }
}

/*
 * Reads one status of job's import (doc, one job's JSON; NULL when it did
 * not parse).  Returns true when the import is over, *rep saying how
 * (done, failed, or a status that makes no sense); false while it runs,
 * after moving *deadline on if it shows more bytes received than
 * *progress.
 */
static bool
import_status_read(bc_mig_pool_t *p, const bc_mig_job_t *job, bool precopy, const cJSON *doc,
                   double *progress, int64_t *deadline, bc_mig_report_t *rep)
{
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(doc, "state");
    const cJSON *epoch = cJSON_GetObjectItemCaseSensitive(doc, "epoch");
    if (!cJSON_IsString(state) || !cJSON_IsNumber(epoch)) {
        snprintf(rep->error, sizeof(rep->error), "destination sent a malformed job status");
        return true;
    }
    if ((uint64_t)epoch->valuedouble != job->epoch) {
        snprintf(rep->error, sizeof(rep->error), "destination reports an import at epoch "
                 "%.0f, not %" PRIu64, epoch->valuedouble, job->epoch);
        return true;
    }
    if (strcmp(state->valuestring, "running") == 0) {
        const cJSON *got = cJSON_GetObjectItemCaseSensitive(doc, "received");
        if (cJSON_IsNumber(got) && got->valuedouble > *progress) {
            *progress = got->valuedouble;
            *deadline = bc_time_mono_ms() + p->timeout_ms;
        }
        return false;
    }
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(doc, "items");
    const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(doc, "bytes");
    const cJSON *node = cJSON_GetObjectItemCaseSensitive(doc, "node");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(doc, "error");
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive(doc, "delta");
    if (strcmp(state->valuestring, "done") == 0) {
        rep->ok = true;
        rep->items = cJSON_IsNumber(items) ? (uint64_t)items->valuedouble : 0;
        rep->bytes = cJSON_IsNumber(bytes) ? (uint64_t)bytes->valuedouble : 0;
        if (cJSON_IsString(node)) {
            snprintf(rep->node, sizeof(rep->node), "%s", node->valuestring);
        }
        if (!precopy && cJSON_IsBool(delta)) {
            log_debug("console: bucket %" PRIu32 " (epoch %" PRIu64 "): %s", job->bucket,
                      job->epoch, cJSON_IsTrue(delta) ? "only the changes since its precopy "
                      "were copied" : "copied in full (no usable precopy)");
        }
    } else {
        snprintf(rep->error, sizeof(rep->error), "%s failed at the destination: %.150s",
                 precopy ? "precopy" : "import",
                 cJSON_IsString(error) ? error->valuestring : "(no reason given)");
    }
    return true;
}

/*
 * Waits for job's import, started at t0, to be done or failed; the
 * outcome goes to *rep.  *deadline: when it is given up without progress,
 * moved on by each status showing more bytes received than *progress
 * (both in and out, so that the jobs of a batch, whose statuses count the
 * bytes of their one stream, share them).  A long poll:
 * the destination answers when the job finishes, or after
 * POOL_LONG_POLL_MS with the job still running.  A destination that does
 * not know wait_ms (400) is polled instead, quickly at first (most
 * buckets take a few ms).
 */
static void
pool_import_wait(bc_mig_pool_t *p, const bc_mig_job_t *job, bool precopy, int64_t t0,
                 int64_t *deadline, double *progress, bc_mig_report_t *rep)
{
    char path[128], why[BC_MIG_ERROR_MAX], sel[40];
    bc_http_response_t resp;
    bool long_poll = true;

    import_select(job, precopy, sel, sizeof(sel));
    for (;;) {
        int64_t now = bc_time_mono_ms(), elapsed = now - t0;
        if (now >= *deadline || pool_stopping(p)) {
            snprintf(rep->error, sizeof(rep->error), "%s timed out: no progress for %u ms (%lld "
                     "ms in all)", precopy ? "precopy" : "copy", p->timeout_ms,
                     (long long)elapsed);
            /* A precopy is left to the destination: it holds no bucket
             * read-only, and the final copy supersedes it. */
            if (!precopy) pool_cancel_import(job);
            return;
        }
        int64_t wait = *deadline - now < POOL_LONG_POLL_MS ? *deadline - now : POOL_LONG_POLL_MS;
        if (long_poll) {
            snprintf(path, sizeof(path), "/v1/migrate/import?bucket=%" PRIu32 "%s&wait_ms=%lld",
                     job->bucket, sel, (long long)wait);
        } else {
            bc_time_sleep_ms(elapsed < 100 ? 2 : elapsed < 1000 ? 10 : elapsed < 10000 ? 50 : 200);
            snprintf(path, sizeof(path), "/v1/migrate/import?bucket=%" PRIu32 "%s", job->bucket,
                     precopy ? sel : "");
        }
        int64_t asked = bc_time_mono_ms();
        bc_status_t st = bc_http_request(job->dest_admin, "GET", path, NULL, 0,
                                         POOL_HTTP_TIMEOUT_MS + (long_poll ? (int)wait : 0), &resp);
        if (st != BC_OK) {
            report_unreachable(rep, job->dest_admin, "stopped answering", st);
            return;
        }
        if (long_poll && resp.status == 400) {
            bc_http_response_free(&resp);
            long_poll = false;
            continue;
        }
        if (long_poll && resp.status == 503) {
            /* The destination cannot hold the request now: ask again. */
            bc_http_response_free(&resp);
            bc_time_sleep_ms(2);
            continue;
        }
        if (resp.status != 200) {
            reply_error(&resp, why, sizeof(why), NULL);
            snprintf(rep->error, sizeof(rep->error), "destination lost the import (%d: %.140s)",
                     resp.status, why);
            bc_http_response_free(&resp);
            return;
        }
        cJSON *doc = cJSON_ParseWithLength(resp.body, resp.body_len);
        bool over = import_status_read(p, job, precopy, doc, progress, deadline, rep);
        cJSON_Delete(doc);
        bc_http_response_free(&resp);
        if (over) return;
        /* A long poll that came back early with the job running (a
         * destination that answers at once): do not spin on it. */
        if (long_poll && bc_time_mono_ms() - asked < wait / 2) bc_time_sleep_ms(2);
    }
}

/*
 * Runs one import at the destination to its end: the POST that starts (or
 * finds) it, then long polls until it is done or failed.  precopy: the
 * bucket's precopy (job->epoch is 0); otherwise its final copy at
 * job->epoch.  The outcome goes to *rep.
 *
 * BEHAVIOR: the pool's timeout bounds a copy that makes no progress, not
 * one that is long: each status that shows more bytes received from the
 * source than the last one moves the deadline on.  A fixed bound would call off, again
 * and again, the copy of any bucket too large to cross within it.
 */
static void
pool_import(bc_mig_pool_t *p, const bc_mig_job_t *job, bool precopy, bc_mig_report_t *rep)
{
    char sel[40];
    int64_t t0 = bc_time_mono_ms(), deadline = t0 + p->timeout_ms;
    double progress = 0;          /* bytes the destination reported received so far */

    report_init(rep, job);
    import_select(job, precopy, sel, sizeof(sel));
    if (pool_import_start(p, job, sel, deadline, rep)) {
        pool_import_wait(p, job, precopy, t0, &deadline, &progress, rep);
    }
}

static void
pool_notify(bc_mig_pool_t *p)
{
    if (p->notify != NULL) p->notify(p->notify_ctx);
}

/* Completes job's report *rep (its move and destination), logs it (the
 * job began at t0) and posts it. */
static void
pool_report(bc_mig_pool_t *p, const bc_mig_job_t *job, bool precopy, bc_mig_report_t *rep,
            int64_t t0)
{
    rep->from = job->from;
    rep->to = job->to;
    snprintf(rep->dest_node, sizeof(rep->dest_node), "%s", job->dest_node);
    long long ms = (long long)(bc_time_mono_ms() - t0);
    if (rep->ok && precopy) {
        log_info("console: bucket %" PRIu32 " precopied to group %" PRIu32 ": %" PRIu64
                 " items, %" PRIu64 " bytes in %lld ms (still writable)", rep->bucket, rep->to,
                 rep->items, rep->bytes, ms);
    } else if (rep->ok) {
        log_info("console: bucket %" PRIu32 " copied to group %" PRIu32 " (epoch %" PRIu64
                 "): %" PRIu64 " items, %" PRIu64 " bytes in %lld ms", rep->bucket, rep->to,
                 rep->epoch, rep->items, rep->bytes, ms);
    } else if (!precopy) {
        log_warn("console: copy of bucket %" PRIu32 " to group %" PRIu32 " (epoch %" PRIu64
                 ") failed: %s", rep->bucket, rep->to, rep->epoch, rep->error);
    }
    pthread_mutex_lock(&p->mu);
    reports_post(precopy ? &p->precopy_reports : &p->copy_reports, rep);
    if (!precopy) pthread_cond_broadcast(&p->copy_reported);
    pthread_mutex_unlock(&p->mu);
    pool_notify(p);
}

/* Runs one copy (or precopy) and posts its report. */
static void
pool_run(bc_mig_pool_t *p, const bc_mig_job_t *job, bool precopy)
{
    bc_mig_report_t rep;
    int64_t t0 = bc_time_mono_ms();
    pool_import(p, job, precopy, &rep);
    pool_report(p, job, precopy, &rep, t0);
}

/*
 * Writes "/v1/migrate/import?buckets=B1,B2,...&precopy=1" (or "&epoch=E")
 * for n jobs of batch -- batch[which[k]], or the first n when which is
 * NULL -- into path.  Returns the length written, cap or more when it did
 * not fit.
 */
static size_t
batch_select(pool_task_t *const *batch, const size_t *which, size_t n, bool precopy, char *path,
             size_t cap)
{
    size_t o = (size_t)snprintf(path, cap, "/v1/migrate/import?buckets=");
    for (size_t k = 0; k < n && o < cap; k++) {
        o += (size_t)snprintf(path + o, cap - o, "%s%" PRIu32, k > 0 ? "," : "",
                              batch[which != NULL ? which[k] : k]->job.bucket);
    }
    if (o < cap && precopy) {
        o += (size_t)snprintf(path + o, cap - o, "&precopy=1");
    } else if (o < cap) {
        o += (size_t)snprintf(path + o, cap - o, "&epoch=%" PRIu64, batch[0]->job.epoch);
    }
    return o;
}

/* The batch POST's path for the n jobs of batch (one pair's precopies,
 * or its copies at one epoch). */
static void
batch_path(pool_task_t *const *batch, size_t n, bool precopy, char *path, size_t cap)
{
    char src[3 * BC_ADDR_MAX];
    const bc_mig_job_t *first = &batch[0]->job;
    size_t o = batch_select(batch, NULL, n, precopy, path, cap);
    url_encode(first->source_admin, src, sizeof(src));
    if (o < cap) snprintf(path + o, cap - o, "&from=%" PRIu32 "&source=%s", first->from, src);
}

/*
 * Reads the 200 answer to a batch POST: {"jobs": [...]}, exactly one
 * object per job of batch, in its order, each naming its job's bucket.
 * Sets started[i] when entry i says 200 or 202 (anything else: refused).
 * Returns false when the body is not that: it is a peer's, so every type
 * is checked before it is used.
 */
static bool
batch_read(const bc_http_response_t *resp, pool_task_t *const *batch, size_t n, bool *started)
{
    cJSON *doc = cJSON_ParseWithLength(resp->body, resp->body_len);
    const cJSON *jobs = cJSON_IsObject(doc) ? cJSON_GetObjectItemCaseSensitive(doc, "jobs") : NULL;
    bool ok = cJSON_IsArray(jobs) && cJSON_GetArraySize(jobs) == (int)n;
    const cJSON *list = ok ? jobs : NULL, *e;
    size_t i = 0;
    cJSON_ArrayForEach(e, list) {
        const cJSON *b = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "bucket") : NULL;
        if (i >= n || !cJSON_IsNumber(b) || b->valuedouble != (double)batch[i]->job.bucket) {
            ok = false;
            break;
        }
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "status");
        started[i++] = cJSON_IsNumber(s) && (s->valuedouble == 200 || s->valuedouble == 202);
    }
    cJSON_Delete(doc);
    return ok && i == n;
}

/*
 * Gives batch[1..n) back to the front of q, in their order, each to run on
 * its own (on any worker, at once: a destination that does not take
 * batches gets its buckets in parallel, as before batches); the slots are
 * cleared, the caller frees only what is left.
 */
static void
pool_give_back(bc_mig_pool_t *p, pool_queue_t *q, pool_task_t **batch, size_t n)
{
    pthread_mutex_lock(&p->mu);
    for (size_t i = n; i-- > 1;) {
        batch[i]->alone = true;
        batch[i]->next = q->head;
        q->head = batch[i];
        if (q->tail == NULL) q->tail = batch[i];
        batch[i] = NULL;
    }
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&p->mu);
}

/*
 * Waits for the jobs of batch still left (left[i]) with one long poll for
 * all of them: GET ?buckets=...&wait_ms=..., which the destination
 * answers as soon as one finishes.  Reports each job as it ends and
 * clears its left[i]; a job's time runs from *t0 (the batch's start, then
 * the previous report: the jobs of a batch stream one after the other).
 * Returns with jobs left when it cannot wait for them this way -- a
 * destination from before batch statuses (400), an answer that does not
 * list exactly the jobs asked, the deadline passed -- and the caller then
 * waits for each on its own, on the same *deadline and *progress (which
 * also gives up what timed out).
 */
static void
pool_batch_wait(bc_mig_pool_t *p, pool_task_t *const *batch, size_t n, bool precopy, bool *left,
                int64_t *t0, int64_t *deadline, double *progress)
{
    char path[BC_MIG_PRECOPY_BATCH_MAX * 11 + 160];    /* ids of 10 digits and a comma */
    const char *dest = batch[0]->job.dest_admin;
    bc_mig_report_t rep;
    bc_http_response_t resp;

    for (;;) {
        size_t ask[BC_MIG_PRECOPY_BATCH_MAX], nask = 0;
        for (size_t i = 0; i < n; i++) {
            if (left[i]) ask[nask++] = i;
        }
        int64_t now = bc_time_mono_ms();
        if (nask == 0 || now >= *deadline || pool_stopping(p)) return;
        int64_t wait = *deadline - now < POOL_LONG_POLL_MS ? *deadline - now : POOL_LONG_POLL_MS;
        size_t o = batch_select(batch, ask, nask, precopy, path, sizeof(path));
        if (o >= sizeof(path)) return;             /* cannot happen: each job alone then */
        snprintf(path + o, sizeof(path) - o, "&wait_ms=%lld", (long long)wait);
        int64_t asked = bc_time_mono_ms();
        bc_status_t st = bc_http_request(dest, "GET", path, NULL, 0,
                                         POOL_HTTP_TIMEOUT_MS + (int)wait, &resp);
        if (st != BC_OK) {
            for (size_t k = 0; k < nask; k++) {
                report_init(&rep, &batch[ask[k]]->job);
                report_unreachable(&rep, dest, "stopped answering", st);
                pool_report(p, &batch[ask[k]]->job, precopy, &rep, *t0);
                left[ask[k]] = false;
            }
            return;
        }
        if (resp.status == 503) {
            /* The destination cannot hold the request now: ask again. */
            bc_http_response_free(&resp);
            bc_time_sleep_ms(2);
            continue;
        }
        cJSON *doc = resp.status == 200 ? cJSON_ParseWithLength(resp.body, resp.body_len) : NULL;
        bc_http_response_free(&resp);
        const cJSON *jobs = cJSON_IsObject(doc) ? cJSON_GetObjectItemCaseSensitive(doc, "jobs")
                                                : NULL;
        bool listed = cJSON_IsArray(jobs) && cJSON_GetArraySize(jobs) == (int)nask;
        for (size_t k = 0; k < nask && listed; k++) {
            const cJSON *b = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(jobs, (int)k),
                                                              "bucket");
            listed = cJSON_IsNumber(b) && b->valuedouble == batch[ask[k]]->job.bucket;
        }
        if (!listed) {
            cJSON_Delete(doc);
            return;
        }
        bool ended = false;
        for (size_t k = 0; k < nask; k++) {
            const bc_mig_job_t *job = &batch[ask[k]]->job;
            const cJSON *e = cJSON_GetArrayItem(jobs, (int)k);
            const cJSON *state = cJSON_GetObjectItemCaseSensitive(e, "state");
            const cJSON *error = cJSON_GetObjectItemCaseSensitive(e, "error");
            bool over;
            report_init(&rep, job);
            if (cJSON_IsString(state) && strcmp(state->valuestring, "none") == 0) {
                snprintf(rep.error, sizeof(rep.error), "destination lost the import (%.150s)",
                         cJSON_IsString(error) ? error->valuestring : "no job");
                over = true;
            } else {
                over = import_status_read(p, job, precopy, e, progress, deadline, &rep);
            }
            if (over) {
                pool_report(p, job, precopy, &rep, *t0);
                *t0 = bc_time_mono_ms();
                left[ask[k]] = false;
                ended = true;
            }
        }
        cJSON_Delete(doc);
        /* Back early with every job running (a destination that answers
         * at once): do not spin on it. */
        if (!ended && bc_time_mono_ms() - asked < wait / 2) bc_time_sleep_ms(2);
    }
}

/*
 * Runs a batch of n (2..BC_MIG_PRECOPY_BATCH_MAX) precopies, or copies at
 * one epoch, of one (source, destination, from, to) and posts one report
 * for each (THE BATCH, migrate_pool.h).
 */
static void
pool_batch(bc_mig_pool_t *p, pool_queue_t *q, pool_task_t **batch, size_t n, bool precopy)
{
    char path[4 * BC_ADDR_MAX + 11 * BC_MIG_PRECOPY_BATCH_MAX + 64];
    const char *dest = batch[0]->job.dest_admin;
    bool started[BC_MIG_PRECOPY_BATCH_MAX];
    bc_mig_report_t rep;
    bc_http_response_t resp;
    int64_t t0 = bc_time_mono_ms();

    batch_path(batch, n, precopy, path, sizeof(path));
    bc_status_t st = bc_http_request(dest, "POST", path, NULL, 0, POOL_HTTP_TIMEOUT_MS, &resp);
    if (st != BC_OK) {
        for (size_t i = 0; i < n; i++) {
            report_init(&rep, &batch[i]->job);
            report_unreachable(&rep, dest, "unreachable", st);
            pool_report(p, &batch[i]->job, precopy, &rep, t0);
        }
        return;
    }
    int status = resp.status;
    bool listed = status == 200 && batch_read(&resp, batch, n, started);
    bc_http_response_free(&resp);
    if (!listed) {
        /* An older destination (400), one that cannot take a batch now,
         * or a body that makes no sense: each bucket on its own. */
        log_debug("console: %zu %s to %s: batch answered %d without its list of jobs, "
                  "each on its own", n, precopy ? "precopies" : "copies", dest, status);
        pool_give_back(p, q, batch, n);
        pool_run(p, &batch[0]->job, precopy);
        return;
    }
    /* BEHAVIOR: waited for in the order the destination imports them, on
     * one deadline that the bytes of their one stream move on (every job
     * of a batch counts them).  A stream that makes no progress means the
     * jobs behind the one waited for will not make any either: all are
     * given up as one job would be, not one timeout after another (16
     * precopies or copies would hold this worker, and a copy batch its
     * buckets read-only, 16 timeouts long). */
    int64_t deadline = bc_time_mono_ms() + p->timeout_ms;
    double progress = 0;
    bool left[BC_MIG_PRECOPY_BATCH_MAX];
    size_t nstarted = 0;
    for (size_t i = 0; i < n; i++) nstarted += left[i] = started[i];
    if (nstarted > 1) pool_batch_wait(p, batch, n, precopy, left, &t0, &deadline, &progress);
    for (size_t i = 0; i < n; i++) {
        if (!left[i]) continue;
        report_init(&rep, &batch[i]->job);
        pool_import_wait(p, &batch[i]->job, precopy, t0, &deadline, &progress, &rep);
        pool_report(p, &batch[i]->job, precopy, &rep, t0);
        t0 = bc_time_mono_ms();
    }
    /* The refused ones last: what the destination lacked (a free import
     * slot) is likelier there once the others are over. */
    for (size_t i = 0; i < n; i++) {
        if (!started[i]) pool_run(p, &batch[i]->job, precopy);
    }
}

/* The next task of q, or NULL.  mu held. */
static pool_task_t *
pool_dequeue(pool_queue_t *q)
{
    pool_task_t *t = q->head;
    if (t != NULL) {
        q->head = t->next;
        if (q->head == NULL) q->tail = NULL;
    }
    return t;
}

/* Moves into batch[1..] up to max - 1 more tasks of q of batch[0]'s kind
 * (precopies, or copies at its epoch) queued for its (source,
 * destination, from, to), in queue order; the tasks left keep theirs.
 * Returns the batch's size.  mu held. */
static size_t
pool_take_batch(pool_queue_t *q, pool_task_t **batch, size_t max)
{
    const bc_mig_job_t *j = &batch[0]->job;
    size_t n = 1;
    pool_task_t **pp = &q->head, *last = NULL;
    while (*pp != NULL && n < max) {
        pool_task_t *t = *pp;
        if (!t->alone && t->kind == batch[0]->kind && t->job.epoch == j->epoch &&
            t->job.from == j->from &&
            t->job.to == j->to &&
            strcmp(t->job.source_admin, j->source_admin) == 0 &&
            strcmp(t->job.dest_admin, j->dest_admin) == 0) {
            *pp = t->next;
            t->next = NULL;
            batch[n++] = t;
            continue;
        }
        last = t;
        pp = &t->next;
    }
    /* Stopped before the end, it took nothing from there: the tail stays. */
    if (*pp == NULL) q->tail = last;
    return n;
}

static void *
pool_main(void *arg)
{
    pool_worker_t *w = arg;
    bc_mig_pool_t *p = w->pool;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stopping && w->queue->head == NULL) pthread_cond_wait(&w->queue->cv, &p->mu);
        if (p->stopping) break;
        /* BEHAVIOR: a precopy does not start while final copies are out,
         * for up to POOL_PRECOPY_YIELD_MS.  The source serves every export
         * on its admin thread and the destination stores on the same
         * cores: a final copy -- its bucket read-only until it is cut over
         * -- that arrives behind a handful of precopies streaming megabytes
         * waits for them (measured: 20-40 ms of a 30-60 ms pause).  Precopies
         * run ahead of the copies that need them (the look-ahead window),
         * so holding back their start costs the run little; the bound
         * keeps a slow copy (a full one) from holding them for long. */
        if (w->queue == &p->precopies && reports_out(&p->copy_reports) > 0) {
            struct timespec until;
            bc_time_deadline(&until, CLOCK_MONOTONIC, POOL_PRECOPY_YIELD_MS);
            while (!p->stopping && reports_out(&p->copy_reports) > 0) {
                if (pthread_cond_timedwait(&p->copy_reported, &p->mu, &until) != 0) break;
            }
            if (p->stopping) break;
            if (w->queue->head == NULL) continue;   /* another worker took it */
        }
        pool_task_t *batch[BC_MIG_PRECOPY_BATCH_MAX];
        batch[0] = pool_dequeue(w->queue);
        size_t n = batch[0]->kind != TASK_CANCEL && !batch[0]->alone
                       ? pool_take_batch(w->queue, batch, BC_MIG_PRECOPY_BATCH_MAX) : 1;
        pthread_mutex_unlock(&p->mu);
        pool_task_t *t = batch[0];
        switch (t->kind) {
        case TASK_CANCEL:
            pool_cancel_import(&t->job);
            break;
        case TASK_COPY:
        case TASK_PRECOPY:
            if (n == 1) pool_run(p, &t->job, t->kind == TASK_PRECOPY);
            else pool_batch(p, w->queue, batch, n, t->kind == TASK_PRECOPY);
            break;
        }
        for (size_t i = 0; i < n; i++) free(batch[i]);   /* NULL: given back */
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

bc_status_t
bc_mig_pool_start(uint32_t nthreads, uint32_t nprecopy, uint32_t timeout_ms,
                  bc_mig_notify_fn notify, void *ctx, bc_mig_pool_t **out)
{
    *out = NULL;
    if (nthreads == 0 || nthreads > BC_MIG_MAX_PARALLEL || timeout_ms == 0 ||
        nprecopy > BC_MIG_PRECOPY_WINDOW_MAX) {
        return BC_EINVAL;
    }
    bc_mig_pool_t *p = calloc(1, sizeof(*p));
    if (p == NULL) return BC_ENOMEM;
    p->nworkers = nthreads + nprecopy;
    p->precopy = nprecopy > 0;
    p->timeout_ms = timeout_ms;
    p->notify = notify;
    p->notify_ctx = ctx;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->copies.cv, NULL);
    pthread_cond_init(&p->precopies.cv, NULL);
    bc_time_cond_init(&p->copy_reported);
    p->workers = calloc(p->nworkers, sizeof(*p->workers));
    if (p->workers == NULL) {
        bc_mig_pool_stop(p);
        return BC_ENOMEM;
    }
    for (uint32_t i = 0; i < p->nworkers; i++) {
        pool_worker_t *w = &p->workers[i];
        w->pool = p;
        w->queue = i < nthreads ? &p->copies : &p->precopies;
        if (pthread_create(&w->thread, NULL, pool_main, w) != 0) {
            bc_mig_pool_stop(p);
            return BC_ENOMEM;
        }
        p->started++;
    }
    *out = p;
    return BC_OK;
}

/* Frees every task of q.  mu held, or no worker left. */
static void
pool_queue_free(pool_queue_t *q)
{
    pool_task_t *t;
    while ((t = pool_dequeue(q)) != NULL) free(t);
}

void
bc_mig_pool_stop(bc_mig_pool_t *p)
{
    if (p == NULL) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->copies.cv);
    pthread_cond_broadcast(&p->precopies.cv);
    pthread_cond_broadcast(&p->copy_reported);
    pthread_mutex_unlock(&p->mu);
    for (uint32_t i = 0; i < p->started; i++) pthread_join(p->workers[i].thread, NULL);
    pool_queue_free(&p->copies);
    pool_queue_free(&p->precopies);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->copies.cv);
    pthread_cond_destroy(&p->precopies.cv);
    pthread_cond_destroy(&p->copy_reported);
    free(p->workers);
    reports_free(&p->copy_reports);
    reports_free(&p->precopy_reports);
    free(p);
}

/* mu held. */
static bool
pool_enqueue(pool_queue_t *q, task_kind_t kind, const bc_mig_job_t *job)
{
    pool_task_t *t = calloc(1, sizeof(*t));
    if (t == NULL) return false;
    t->kind = kind;
    t->job = *job;
    if (q->tail != NULL) q->tail->next = t;
    else q->head = t;
    q->tail = t;
    pthread_cond_signal(&q->cv);
    return true;
}

/* Queues job on q unless its key is in keys already.  mu held. */
static bool
pool_submit(bc_mig_pool_t *p, pool_queue_t *q, pool_keys_t *keys, task_kind_t kind,
            const bc_mig_job_t *job)
{
    if (p->stopping || keys_has(keys, job->bucket, job->epoch) ||
        !keys_add(keys, job->bucket, job->epoch)) {
        return false;
    }
    if (pool_enqueue(q, kind, job)) return true;
    keys_drop(keys, job->bucket, job->epoch);
    return false;
}

bool
bc_mig_pool_submit(bc_mig_pool_t *p, const bc_mig_job_t *job)
{
    bool queued;
    bc_mig_pool_submit_many(p, job, 1, &queued);
    return queued;
}

void
bc_mig_pool_submit_many(bc_mig_pool_t *p, const bc_mig_job_t *jobs, size_t n, bool *queued)
{
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < n; i++) {
        queued[i] = pool_submit(p, &p->copies, &p->copy_reports.active, TASK_COPY, &jobs[i]);
    }
    pthread_mutex_unlock(&p->mu);
}

bool
bc_mig_pool_precopy(bc_mig_pool_t *p, const bc_mig_job_t *job)
{
    bool queued;
    bc_mig_pool_precopy_many(p, job, 1, &queued);
    return queued;
}

void
bc_mig_pool_precopy_many(bc_mig_pool_t *p, const bc_mig_job_t *jobs, size_t n, bool *queued)
{
    if (!p->precopy) {
        for (size_t i = 0; i < n; i++) queued[i] = false;
        return;
    }
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < n; i++) {
        bc_mig_job_t pre = jobs[i];
        pre.epoch = 0;
        queued[i] = pool_submit(p, &p->precopies, &p->precopy_reports.active, TASK_PRECOPY, &pre);
    }
    pthread_mutex_unlock(&p->mu);
}

void
bc_mig_pool_cancel(bc_mig_pool_t *p, uint32_t bucket, uint64_t epoch, const char *dest_admin)
{
    bc_mig_job_t job;
    memset(&job, 0, sizeof(job));
    job.bucket = bucket;
    job.epoch = epoch;
    snprintf(job.dest_admin, sizeof(job.dest_admin), "%s", dest_admin);
    pthread_mutex_lock(&p->mu);
    if (!p->stopping) (void)pool_enqueue(&p->copies, TASK_CANCEL, &job);
    pthread_mutex_unlock(&p->mu);
}

bool
bc_mig_pool_active(bc_mig_pool_t *p, uint32_t bucket, uint64_t epoch)
{
    pthread_mutex_lock(&p->mu);
    bool a = keys_has(&p->copy_reports.active, bucket, epoch);
    pthread_mutex_unlock(&p->mu);
    return a;
}

/* Copies still out (queued or running) of the batches of the reports
 * waiting to be taken: those at the epoch of one of them.  mu held. */
static size_t
pool_batch_out(const pool_reports_t *r)
{
    size_t out = 0;
    for (size_t i = 0; i < r->active.n; i++) {
        const pool_key_t *k = &r->active.v[i];
        bool same_batch = false, reported = false;
        for (size_t j = 0; j < r->n; j++) {
            if (r->v[j].epoch == k->epoch) same_batch = true;
            if (r->v[j].bucket == k->bucket && r->v[j].epoch == k->epoch) reported = true;
        }
        if (same_batch && !reported) out++;
    }
    return out;
}

size_t
bc_mig_pool_gather(bc_mig_pool_t *p, uint32_t max_ms)
{
    pthread_mutex_lock(&p->mu);
    pool_reports_t *r = &p->copy_reports;
    size_t out = r->n > 0 ? pool_batch_out(r) : 0;
    struct timespec until;
    bc_time_deadline(&until, CLOCK_MONOTONIC, max_ms);
    while (out > 0 && !p->stopping) {
        bool timed_out = pthread_cond_timedwait(&p->copy_reported, &p->mu, &until) != 0;
        out = pool_batch_out(r);
        if (timed_out) break;
    }
    pthread_mutex_unlock(&p->mu);
    return out;
}

size_t
bc_mig_pool_take(bc_mig_pool_t *p, bc_mig_report_t *out, size_t max)
{
    pthread_mutex_lock(&p->mu);
    size_t n = reports_take(&p->copy_reports, out, max);
    pthread_mutex_unlock(&p->mu);
    return n;
}

void
bc_mig_pool_requeue(bc_mig_pool_t *p, const bc_mig_report_t *reports, size_t n)
{
    pthread_mutex_lock(&p->mu);
    pool_reports_t *r = &p->copy_reports;
    for (size_t k = 0; k < n; k++) {
        if (!keys_add(&r->active, reports[k].bucket, reports[k].epoch)) break;
        reports_post(r, &reports[k]);
    }
    pthread_mutex_unlock(&p->mu);
}

size_t
bc_mig_pool_take_precopies(bc_mig_pool_t *p, bc_mig_report_t *out, size_t max)
{
    pthread_mutex_lock(&p->mu);
    size_t n = reports_take(&p->precopy_reports, out, max);
    pthread_mutex_unlock(&p->mu);
    return n;
}

size_t
bc_mig_pool_precopying(bc_mig_pool_t *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = reports_out(&p->precopy_reports);
    pthread_mutex_unlock(&p->mu);
    return n;
}

void
bc_mig_pool_clear_reports(bc_mig_pool_t *p)
{
    pthread_mutex_lock(&p->mu);
    reports_clear(&p->copy_reports);
    reports_clear(&p->precopy_reports);
    /* Precopies not started yet were asked for by the leader we no
     * longer are. */
    pool_task_t *t;
    while ((t = pool_dequeue(&p->precopies)) != NULL) {
        keys_drop(&p->precopy_reports.active, t->job.bucket, 0);
        free(t);
    }
    pthread_mutex_unlock(&p->mu);
}

size_t
bc_mig_pool_drop_precopies_to(bc_mig_pool_t *p, uint32_t to)
{
    size_t dropped = 0;
    pthread_mutex_lock(&p->mu);
    pool_queue_t *q = &p->precopies;
    pool_task_t **pp = &q->head, *last = NULL;
    while (*pp != NULL) {
        pool_task_t *t = *pp;
        if (t->kind == TASK_PRECOPY && t->job.to == to) {
            *pp = t->next;
            keys_drop(&p->precopy_reports.active, t->job.bucket, 0);
            free(t);
            dropped++;
            continue;
        }
        last = t;
        pp = &t->next;
    }
    q->tail = last;
    pthread_mutex_unlock(&p->mu);
    return dropped;
}
