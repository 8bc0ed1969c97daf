/*
 * catchup.c -- a precopy's catch-ups: the destination keeps each finished
 * precopy up to date while it waits for its final copy, so the final copy
 * (in the bucket's write pause) carries only what changed in the last
 * few tens of milliseconds, whatever the write rate.
 *
 * HOW
 *   One thread per node.  It looks for precopies that finished, are not
 *   used by a final copy yet and were last brought up to date long enough
 *   ago (catchup_ms, more for one nobody writes: BEHAVIOR, pace); it
 *   takes those of one source (up to a batch) and asks that source for
 *   the changes their trackers recorded
 *   since (GET /v1/migrate/export?buckets=B1:T1,..&catchup=1, export.c).
 *   The source moves each tracker's keys out (engine/tap.h, bc_tap_take)
 *   and sends each key as it is now; the destination applies them over
 *   the precopy, replacing, exactly as a final copy's delta.  Then it
 *   looks again at once (another source may be due) and sleeps only when
 *   nothing is: until the next precopy is due, or, with none to keep up,
 *   until one finishes (job_finish signals catchup_cv).
 *
 *        precopy ........ catch-up ... catch-up ... | final copy (fenced)
 *        tracker armed    keys taken   keys taken   | keys since the last
 *
 * BEHAVIOR
 *   - Order.  The keys a catch-up takes are sent as they are when it is
 *     read; a key changed afterwards is in the tracker again, so a later
 *     catch-up or the final copy sends it again, newer.  The destination
 *     must therefore apply a catch-up wholly before the final copy's
 *     delta: a final copy that takes a precopy over (jobs.c, `used`, under
 *     mu) first waits for a catch-up of its buckets in flight
 *     (bc__migrate_catchup_wait), and no catch-up starts for a used one.
 *   - Loss.  Keys taken out of a tracker and not applied here (the stream
 *     broke, the source's answer was malformed) are known nowhere else:
 *     that precopy stops being the base of a delta (its tap is cleared),
 *     and its final copy is a full one -- slower, never wrong.  So is a
 *     precopy whose source says the tracker is gone.  A refusal takes
 *     nothing, and leaves the precopy as it was.
 *   - Pace.  A catch-up that finds nothing changed doubles the wait
 *     before that precopy's next one (up to MIG_CATCHUP_IDLE_MAX_MS); one
 *     that finds changes brings it back to catchup_ms.  Most buckets of a
 *     move are barely written while they wait, and each catch-up is a
 *     request the source's admin thread serves beside the final copies'
 *     exports, whose time is the write pause.
 *   - Refresh.  When a catch-up loses a precopy's tracker and no final
 *     copy has taken the precopy yet, it is made again at once, while
 *     the bucket stays writable (bc__migrate_precopy_again: a new job,
 *     a new tracker), so the final copy can still be a delta -- a full
 *     copy in the write pause is what catch-ups exist to avoid.  At most
 *     MIG_REFRESH_MAX times in a row.  A final copy that comes while the
 *     remake runs finds it running and calls it off (jobs.c), as it
 *     would any precopy still running, and copies the whole bucket.
 *   - A source that does not know catch-ups (400, an older node) is
 *     remembered and not asked again: its precopies simply wait as they
 *     did, and their final copies carry every change since the precopy.
 *   - Called off.  A precopy cancelled or dropped while its catch-up runs
 *     (the console's DELETE, the agent's drop hook) has what the catch-up
 *     stored dropped at its end, as a running import drops its own.
 *
 * LOCKING RULE
 *   The job table's mu (migrate_int.h) guards a job's catchup flag, its
 *   tap and the counters; the fetch runs with mu released, on jobs whose
 *   catchup flag keeps their slots from being reused.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_log.h"
#include "bc_time.h"
#include "migrate/migrate_int.h"

/* A move's precopy is made again at most this many times in a row: a
 * bucket whose writes outrun every tracker is left to a full final copy
 * rather than copied over and over. */
#define MIG_REFRESH_MAX         3u
/* A precopy whose bucket nobody writes is caught up at most this seldom. */
#define MIG_CATCHUP_IDLE_MAX_MS 800u

/* Whether source refused catch-ups before (mu held). */
static bool
catchup_refused_by(const bc_node_migrate_t *mig, const char *source)
{
    return bc__migrate_source_listed(mig->nocatchup, MIG_UNBATCHED_MAX, source);
}

/* Whether j is the newest job of its bucket (mu held).  BEHAVIOR: only
 * that one may be caught up -- an older precopy's source (a primary since
 * replaced, say) must never write over what a newer import stored. */
static bool
catchup_newest(const bc_node_migrate_t *mig, const import_job_t *j)
{
    for (uint32_t i = 0; i < mig->njobs; i++) {
        const import_job_t *o = &mig->jobs[i];
        if (o != j && o->state != JOB_FREE && o->bucket == j->bucket && o->seq > j->seq) {
            return false;
        }
    }
    return true;
}

/* How long after its last catch-up precopy j is due the next (mu held):
 * catchup_ms, doubled after each catch-up that found nothing changed, up
 * to MIG_CATCHUP_IDLE_MAX_MS (BEHAVIOR: pace). */
static uint32_t
catchup_every(const bc_node_migrate_t *mig, const import_job_t *j)
{
    return j->catchup_every_ms != 0 ? j->catchup_every_ms : mig->catchup_ms;
}

/* Whether precopy j may be caught up (mu held): it could still be the
 * base of its final copy, is its bucket's newest job, and its source
 * takes catch-ups. */
static bool
catchup_candidate(const bc_node_migrate_t *mig, const import_job_t *j)
{
    return j->precopy && j->state == JOB_DONE && !j->used && !j->catchup && j->tap != 0 &&
           !atomic_load(&j->cancel) && j->flushes == bc_cache_flush_count(mig->cache) &&
           bc_time_real_ms() - j->finished_ms < MIG_PRECOPY_KEEP_MS &&
           !catchup_refused_by(mig, j->source) && catchup_newest(mig, j);
}

/* Whether precopy j is due a catch-up at `now` (mono ms; mu held): a
 * candidate brought up to date long enough ago (catchup_every). */
static bool
catchup_due(const bc_node_migrate_t *mig, const import_job_t *j, int64_t now)
{
    return now - j->caught_up_ms >= (int64_t)catchup_every(mig, j) && catchup_candidate(mig, j);
}

/*
 * The next catch-up to run (mu held): the precopy due longest, and the
 * others due of the same source and group, each marked catchup.  NULL
 * when none is due (or out of memory: the next wake-up tries again).
 */
static import_batch_t *
catchup_pick(bc_node_migrate_t *mig, int64_t now)
{
    import_job_t *first = NULL;
    for (uint32_t i = 0; i < mig->njobs; i++) {
        import_job_t *j = &mig->jobs[i];
        if (!catchup_due(mig, j, now)) continue;
        if (first == NULL || j->caught_up_ms < first->caught_up_ms) first = j;
    }
    if (first == NULL) return NULL;
    import_batch_t *batch = calloc(1, sizeof(*batch));
    if (batch == NULL) return NULL;
    for (uint32_t i = 0; i < mig->njobs && batch->n < MIG_BATCH_MAX; i++) {
        import_job_t *j = &mig->jobs[i];
        if (j == first || (catchup_due(mig, j, now) && j->from == first->from &&
                           strcmp(j->source, first->source) == 0)) {
            j->catchup = true;
            batch->jobs[batch->n++] = j;
        }
    }
    return batch;
}

/* A precopy to make again (BEHAVIOR: refresh), noted while the batch's
 * jobs are looked at and started after (starting may let mu go). */
typedef struct catchup_refresh {
    uint32_t bucket, from, refreshes;
    char source[BC_ADDR_MAX];
} catchup_refresh_t;

/*
 * The final copies of j's bucket that wait for its catch-up (mu held;
 * bc__migrate_catchup_wait): with lost, they become full copies; else
 * they count what the catch-up brought, since their own count started
 * from the precopy's before it.
 */
static void
catchup_update_finals(bc_node_migrate_t *mig, const import_job_t *j, bool lost, uint64_t items,
                      uint64_t bytes)
{
    for (uint32_t k = 0; k < mig->njobs; k++) {
        import_job_t *f = &mig->jobs[k];
        if (f == j || f->precopy || f->state != JOB_RUNNING || f->bucket != j->bucket) continue;
        if (lost) {
            f->tap = 0;
            f->base_items = f->base_bytes = 0;
        } else if (f->tap == j->tap) {
            f->base_items += items;
            f->base_bytes += bytes;
        }
    }
}

/*
 * A catch-up's end (mu held): each precopy counted, or no longer the
 * base of a delta (BEHAVIOR: loss) and made again while that helps, or
 * dropped when it was called off meanwhile; a final copy waiting for it
 * is woken.
 */
static void
catchup_finish(bc_node_migrate_t *mig, import_batch_t *batch, bc_status_t st,
               const catchup_outcome_t *out, const char *err, int64_t now)
{
    uint64_t applied = 0;
    uint32_t lost = 0, nrefresh = 0;
    catchup_refresh_t refresh[MIG_BATCH_MAX];
    for (uint32_t i = 0; i < batch->n; i++) {
        import_job_t *j = batch->jobs[i];
        j->catchup = false;
        /* a source that did not answer is asked again a second later, not
         * every catchup_ms (each try may wait up to MIG_CATCHUP_TIMEOUT_MS) */
        j->caught_up_ms = st != BC_OK && !out->taken ? now + 1000 : now;
        bool whole = i < out->got;
        if (whole && !out->gone[i]) {
            uint32_t every = catchup_every(mig, j);
            j->catchup_every_ms = out->items[i] > 0 ? mig->catchup_ms
                                  : every * 2 > MIG_CATCHUP_IDLE_MAX_MS ? MIG_CATCHUP_IDLE_MAX_MS
                                                                         : every * 2;
            j->catchups++;
            j->catchup_items += out->items[i];
            j->catchup_bytes += out->bytes[i];
            applied += out->items[i];
            if (j->used) catchup_update_finals(mig, j, false, out->items[i], out->bytes[i]);
        } else if (whole || out->taken) {
            /* its tracker is gone, or its keys may be: a final copy now
             * must be a full one (a used precopy's final copy is waiting
             * in bc__migrate_catchup_wait and reads tap after it) */
            j->tap = 0;
            lost++;
            catchup_update_finals(mig, j, true, 0, 0);
            if (!j->used && !atomic_load(&j->cancel) && j->refreshes < MIG_REFRESH_MAX &&
                catchup_newest(mig, j)) {
                catchup_refresh_t *r = &refresh[nrefresh++];
                r->bucket = j->bucket;
                r->from = j->from;
                r->refreshes = j->refreshes + 1;
                snprintf(r->source, sizeof(r->source), "%s", j->source);
            }
        }
        if (atomic_load(&j->cancel) && !bc__migrate_node_owns(mig, j->bucket)) {
            /* called off meanwhile: what the catch-up stored goes too
             * (the one cache call made under mu, as bc__migrate_drop's) */
            bc_cache_bucket_drop(mig->cache, j->bucket);
        }
    }
    atomic_fetch_add(&mig->catchups, out->got);
    atomic_fetch_add(&mig->catchup_items, applied);
    atomic_fetch_add(&mig->catchup_lost, lost);
    if (out->older && !catchup_refused_by(mig, batch->jobs[0]->source)) {
        snprintf(mig->nocatchup[mig->nocatchup_next], BC_ADDR_MAX, "%s", batch->jobs[0]->source);
        mig->nocatchup_next = (mig->nocatchup_next + 1) % MIG_UNBATCHED_MAX;
        log_info("migrate: source %s does not take catch-ups (an older node): its precopies "
                 "wait for their final copies as they are", batch->jobs[0]->source);
    } else if (st != BC_OK) {
        log_info("migrate: catch-up of %u precopies from %s failed (%u of them lost their "
                 "trackers): %s", batch->n, batch->jobs[0]->source, lost, err);
    } else if (applied > 0) {
        log_debug("migrate: caught up %u precopies from %s: %" PRIu64 " changes", batch->n,
                  batch->jobs[0]->source, applied);
    }
    pthread_cond_broadcast(&mig->catchup_done_cv);
    for (uint32_t i = 0; i < nrefresh; i++) {
        if (bc__migrate_precopy_again(mig, refresh[i].bucket, refresh[i].from, refresh[i].source,
                                      refresh[i].refreshes)) {
            atomic_fetch_add(&mig->precopy_refreshes, 1);
            log_info("migrate: precopy of bucket %" PRIu32 " from %s made again while it stays "
                     "writable (its change tracker was lost; remake %u of at most %u)",
                     refresh[i].bucket, refresh[i].source, refresh[i].refreshes,
                     MIG_REFRESH_MAX);
        }
    }
}

/*
 * How long until the next catch-up is due (mu held; ms): the soonest of
 * the precopies that may be caught up, or -1 when there is none -- the
 * thread then sleeps until a precopy finishes (job_finish signals
 * catchup_cv), not on a timer: a node that imports nothing never wakes.
 */
static int64_t
catchup_next_due(const bc_node_migrate_t *mig, int64_t now)
{
    int64_t next = -1;
    for (uint32_t i = 0; i < mig->njobs; i++) {
        const import_job_t *j = &mig->jobs[i];
        if (!catchup_candidate(mig, j)) continue;
        int64_t wait = j->caught_up_ms + (int64_t)catchup_every(mig, j) - now;
        if (wait < 1) wait = 1;
        if (next < 0 || wait < next) next = wait;
    }
    return next;
}

/* Waits on catchup_cv (mu held) until `ms` from now (< 0: until
 * signalled), or a shutdown. */
static void
catchup_sleep(bc_node_migrate_t *mig, int64_t ms)
{
    if (ms < 0) {
        pthread_cond_wait(&mig->catchup_cv, &mig->mu);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    (void)pthread_cond_timedwait(&mig->catchup_cv, &mig->mu, &ts);
}

void *
bc__migrate_catchup_main(void *arg)
{
    bc_node_migrate_t *mig = arg;
    pthread_mutex_lock(&mig->mu);
    while (!mig->stopping) {
        int64_t now = bc_time_mono_ms();
        import_batch_t *batch = catchup_pick(mig, now);
        if (batch == NULL) {
            catchup_sleep(mig, catchup_next_due(mig, now));
            continue;
        }
        pthread_mutex_unlock(&mig->mu);
        catchup_outcome_t out;
        char err[256] = "";
        bc_status_t st = bc__migrate_catchup_fetch(batch, &out, err, sizeof(err));
        pthread_mutex_lock(&mig->mu);
        catchup_finish(mig, batch, st, &out, err, bc_time_mono_ms());
        free(batch);
    }
    pthread_mutex_unlock(&mig->mu);
    return NULL;
}

void
bc__migrate_catchup_wait(bc_node_migrate_t *mig, const import_batch_t *batch)
{
    /* BEHAVIOR: any import of a bucket waits, not only a final copy over
     * the precopy being caught up: a new precopy or a full copy empties
     * the bucket first, and a catch-up of the older precopy still storing
     * would mix two sources' data into it. */
    for (;;) {
        bool busy = false;
        for (uint32_t i = 0; i < mig->njobs && !busy; i++) {
            const import_job_t *j = &mig->jobs[i];
            if (!j->precopy || !j->catchup) continue;
            for (uint32_t k = 0; k < batch->n && !busy; k++) {
                busy = batch->jobs[k]->bucket == j->bucket;
            }
        }
        if (!busy) return;
        pthread_cond_wait(&mig->catchup_done_cv, &mig->mu);
    }
}
