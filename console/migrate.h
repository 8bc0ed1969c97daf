/*
 * migrate.h -- the console's migration driver: the state a bucket move
 * keeps in ZooKeeper, and the small worker pool that runs the copies so
 * that the reconcile loop never waits on the network.
 *
 * THE STATE MACHINE (one per bucket b with m[b] != d[b], both non-zero)
 *
 *                 precopy (when on; nothing is written: the destination
 *                 copies b while it stays writable, and the source tracks
 *                 the keys changed since)
 *      +---------+ -------------------------------------> +-------------+
 *      | pending |   reported: ok, or failed (the final   |  precopied  |
 *      +---------+   copy is then a full one)             +-------------+
 *         ^   ^  |                                           |
 *         |   |  |   start (reconcile, one transaction):     |
 *         |   |  |     c.readonly[b] = 1, epoch -> E,        |
 *         |   |  |     migrations/<b> = copying@E            v
 *         |   |  '---- (precopy off: at once) --------->  +-------------+
 *         |   |                                           | copying @ E |
 *         |   |                                           +-------------+
 *         |   |                                              |        |
 *         |   |  abort (one transaction): readonly = 0,      |        |
 *         |   |  epoch++, record = pending with retry_at,    |        |
 *         |   '--- attempts+1 -- copy failed, timed out, <---'        |
 *         |        refused, a group or primary changed,               |
 *         |        or the report came from another epoch              |
 *         |                                                           |
 *         |                    cutover (one transaction):             |
 *         |   (next rebalance)   c[b] = m[b] = d[b], readonly = 0,    |
 *         |                      epoch++, record deleted, the run's   |
 *      +------+                  totals and stall samples updated     |
 *      | done | <-----------------------------------------------------'
 *      +------+
 *
 *   "pending" has a record only after a failed attempt (it carries the
 *   error and when to retry); a bucket that never failed is pending simply
 *   because m[b] != d[b].  "done" is no record at all: the cutover deletes
 *   it and adds the move to the run summary kept in the data of the
 *   migrations znode itself (totals, stall samples, the last moves).  That
 *   keeps the records a reconcile round reads bounded by the moves in
 *   flight, not by the buckets ever moved.
 *   "precopied" is no record either: it lives in the active console's
 *   memory and lapses after 20 s, or when the move is no longer planned.
 *
 * THE PRECOPY (a precopy thread, for a bucket reconcile wants precopied)
 *
 *     POST dest/v1/migrate/import?bucket=b&from=G&source=SRC&precopy=1
 *     GET dest/v1/migrate/import?bucket=b&precopy=1&wait_ms=1000  (the
 *       same long poll as a copy's)
 *       -> precopy report {b, from, to, ok, items, bytes} to the console,
 *          which marks b ready for (from, to) -- a failed precopy too: the
 *          final copy is then a full one, as without precopy
 *
 *   Precopies run on their own threads and queue, so a final copy (which
 *   holds its bucket read-only) never waits behind one.  Reconcile asks
 *   for at most ahead * parallel buckets precopied ahead of their copy
 *   (ahead: --precopy-ahead, BC_MIG_PRECOPY_AHEAD by default): each
 *   holds memory at its destination and a change tracker at its source.
 *   A readiness older than 20 s is asked for again (the destination
 *   answers at once while its precopy is still usable).
 *
 * THE COPY (a pool thread, for one copying@E record)
 *
 *     POST dest/v1/migrate/import?bucket=b&epoch=E&from=G&source=SRC
 *     GET dest/v1/migrate/import?bucket=b&epoch=E&wait_ms=1000  (a long
 *       poll: answered the moment the job finishes; again while it runs)
 *       -> report {b, E, ok, items, bytes, node} to the reconcile loop,
 *          which wakes and decides it at once
 *
 *   The destination pulls the bucket from the source (node/migrate.h),
 *   which exports it only once fenced at E.  The POST is idempotent: a
 *   console that took over re-issues it for every copying record and gets
 *   the running or finished job back.  With a precopy of b from the same
 *   source, the destination pulls only the keys changed since it (the
 *   job says "delta": true); otherwise the whole bucket.
 *
 * BEHAVIOR (why it never loses an acknowledged write, never leaves two
 * owners)
 *   - From E on, the source refuses writes to b (READONLY), and its export
 *     waits until every worker has passed E, so the copy holds every write
 *     the source ever acknowledged for b.
 *   - The cutover is one compare-and-set transaction that also checks the
 *     record is still copying@E, c/m/d still say from/from/to with b
 *     read-only, both primaries are the nodes that did the copy, and the
 *     report's epoch is E.  Anything else (a stale report from an earlier
 *     attempt, a console that lost the election) fails the check.
 *   - c names exactly one owner at every epoch: the source up to the
 *     cutover, the destination from it on.  The source drops its copy only
 *     when it sees that c and m no longer name it.
 *   - Everything lives in ZooKeeper: a new leader resumes from the
 *     records; a failed copy gives the bucket back to its source, writable,
 *     and is retried after an exponential backoff.
 *   - A precopy changes no ownership: the console never writes anything
 *     because of one, and the bucket stays writable at its source, which
 *     alone owns it.  The final copy is still made read-only at E and
 *     fenced as above; the destination builds on a precopy only when its
 *     source still tracks every change made to b since that precopy, and
 *     copies b in full otherwise.  So a lost, stale or failed precopy
 *     costs time, never data.  Readiness lives only in the console's
 *     memory: a console that takes over loses nothing but the precopy
 *     work, and asks again.
 *
 * LOCKING
 *   pool->mu guards the pool's queues, active sets and reports; workers
 *   hold it only to take a job or to post a report, never across HTTP.
 */
#ifndef BC_CONSOLE_MIGRATE_H
#define BC_CONSOLE_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "bc_cluster.h"
#include "bc_status.h"
#include "bc_zk.h"

#define BC_MIG_MAX_PARALLEL   16u
/* Buckets precopied ahead of their copy, per copy slot (--migrations-
 * parallel), by default (--precopy-ahead) and at most.  Each holds memory
 * at its destination and a change tracker at its source.  A precopy is
 * mostly waiting (its requests, the scheduler, the console's long poll),
 * so more than one per slot keeps the copy slots fed; each one more also
 * takes CPU from the read-only copies and the clients meanwhile. */
#define BC_MIG_PRECOPY_AHEAD      4u
#define BC_MIG_PRECOPY_AHEAD_MAX  8u
/* Buckets precopied ahead at most, whatever parallel * ahead: each
 * precopy holds a connection at its source's admin port and one at its
 * destination's (64 each by default), beside the copies' own. */
#define BC_MIG_PRECOPY_WINDOW_MAX 32u

/* Buckets precopied ahead for `parallel` copy slots at `ahead` per slot
 * (0: BC_MIG_PRECOPY_AHEAD): the look-ahead and the precopy workers. */
static inline uint32_t
bc_mig_precopy_window(uint32_t parallel, uint32_t ahead)
{
    if (ahead == 0) ahead = BC_MIG_PRECOPY_AHEAD;
    if (ahead > BC_MIG_PRECOPY_AHEAD_MAX) ahead = BC_MIG_PRECOPY_AHEAD_MAX;
    uint32_t n = parallel * ahead;
    return n > BC_MIG_PRECOPY_WINDOW_MAX ? BC_MIG_PRECOPY_WINDOW_MAX : n;
}
#define BC_MIG_STALL_SAMPLES  4096u    /* stall samples kept per run */
#define BC_MIG_RECENT         32u      /* finished moves listed per run */
#define BC_MIG_MAX_HELD       64u      /* groups a cancel may hold back */
#define BC_MIG_ERROR_MAX      200

typedef enum bc_mig_state {
    BC_MIG_PENDING = 0,            /* waiting to retry after a failure */
    BC_MIG_COPYING = 1,            /* read-only at the source, being copied */
} bc_mig_state_t;

/* migrations/<b>: one bucket move. */
typedef struct bc_mig_record {
    uint32_t bucket;
    bc_mig_state_t state;
    uint32_t from, to;             /* groups */
    uint64_t epoch;                /* copying: the epoch c.readonly[b] was set at */
    char from_node[BC_NODE_NAME_MAX];  /* the primaries when it started */
    char to_node[BC_NODE_NAME_MAX];
    int64_t started_ms;            /* unix ms of the read-only commit */
    uint32_t attempts;             /* failed attempts so far */
    int64_t retry_at_ms;           /* pending: not before this (unix ms) */
    char error[BC_MIG_ERROR_MAX];  /* pending: why the last attempt failed */
    bool cancelled;                /* copying: the rebalance was cancelled meanwhile */
    int32_t version;               /* znode version; -1: no znode yet */
} bc_mig_record_t;

/* One finished move, as the run summary lists it. */
typedef struct bc_mig_done {
    uint32_t bucket, from, to;
    uint64_t items, bytes;
    uint32_t stall_ms;             /* how long b was read-only */
    int64_t finished_ms;
} bc_mig_done_t;

/* The data of the migrations znode: controls and the current run. */
typedef struct bc_mig_control {
    bool paused;                   /* no new copies start */
    uint32_t nheld;
    uint32_t held[BC_MIG_MAX_HELD];    /* groups a cancel keeps out of auto-rebalance */
    int64_t run_started_ms;        /* 0: no run yet */
    int64_t run_finished_ms;       /* 0: running */
    uint64_t moved, items, bytes, failures;
    uint32_t nstalls;              /* samples in stalls (ring once full) */
    uint32_t stall_next;           /* ring position */
    uint32_t stalls[BC_MIG_STALL_SAMPLES];
    uint32_t nrecent;
    bc_mig_done_t recent[BC_MIG_RECENT];   /* newest last */
    int32_t version;               /* znode version; -1: znode missing */
} bc_mig_control_t;

/* Everything migrations/ holds, as one round reads it. */
typedef struct bc_mig_set {
    uint32_t nbuckets;
    bc_mig_record_t **rec;         /* nbuckets entries; NULL: no record */
    size_t count;                  /* records present */
    bc_mig_control_t control;
} bc_mig_set_t;

/* A copy's outcome, from a pool worker to the reconcile loop. */
typedef struct bc_mig_report {
    uint32_t bucket;
    uint64_t epoch;                /* 0: a precopy */
    uint32_t from, to;             /* the move it was made for */
    bool ok;
    uint64_t items, bytes;
    char node[BC_NODE_NAME_MAX];   /* the destination node that imported */
    char error[BC_MIG_ERROR_MAX];  /* a failed precopy still lets the move go on
                                    * (with a full copy) */
} bc_mig_report_t;


/* ---- records and control: JSON codec (exposed for tests) ---- */

/* Returns malloc'd JSON (free()) or NULL on out of memory. */
char *bc_mig_record_encode(const bc_mig_record_t *r);
/* Errors: BC_EINVAL (malformed; err names the field), BC_ETOOLARGE. */
bc_status_t bc_mig_record_decode(const char *json, size_t len, uint32_t bucket, bc_mig_record_t *out,
                                 char *err, size_t errlen);
char *bc_mig_control_encode(const bc_mig_control_t *c);
/* An empty znode decodes to the defaults.  Errors as above. */
bc_status_t bc_mig_control_decode(const char *json, size_t len, bc_mig_control_t *out, char *err,
                                  size_t errlen);
void bc_mig_control_init(bc_mig_control_t *c);

/* Adds a finished move to the run summary. */
void bc_mig_control_add_done(bc_mig_control_t *c, const bc_mig_done_t *done);
/* Adds c's recent moves to parent as the "recent" array (the record's
 * encoding and GET /v1/migrations share it).  parent is borrowed. */
void bc_mig_recent_json(const bc_mig_control_t *c, cJSON *parent);
/* Stall percentiles over the run's samples (0 when none); p in 0..100. */
uint32_t bc_mig_control_stall_pct(const bc_mig_control_t *c, double p);

/* ---- the set ---- */

/* An empty set for nbuckets (control at defaults, version -1).
 * Errors: BC_ENOMEM. */
bc_status_t bc_mig_set_init(bc_mig_set_t *s, uint32_t nbuckets);
void bc_mig_set_free(bc_mig_set_t *s);
/* Puts a copy of r into the set (replacing b's record).  Errors: BC_ENOMEM. */
bc_status_t bc_mig_set_put(bc_mig_set_t *s, const bc_mig_record_t *r);

/*
 * Reads migrations/ and every record under it.  *out is initialised on
 * BC_OK (bc_mig_set_free).  A malformed record is skipped with a warning
 * (the bucket then looks pending, which is safe: c and m are the truth);
 * a malformed control is replaced by the defaults.  Errors: ZooKeeper
 * errors, BC_ENOMEM.
 */
bc_status_t bc_mig_load(bc_zk_t *zk, const char *cluster, uint32_t nbuckets, bc_mig_set_t *out,
                        char *err, size_t errlen);

/* Backoff before retry `attempts` (1 = first retry): 500 ms doubling, at
 * most 30 s. */
int64_t bc_mig_backoff_ms(uint32_t attempts);

/* ---- the worker pool ---- */

typedef struct bc_mig_pool bc_mig_pool_t;

/* What a copy or a precopy needs; strings are copied. */
typedef struct bc_mig_job {
    uint32_t bucket;
    uint64_t epoch;                    /* 0 for a precopy */
    uint32_t from, to;
    char source_admin[BC_ADDR_MAX];    /* the source primary's admin address */
    char dest_admin[BC_ADDR_MAX];      /* the destination primary's */
} bc_mig_job_t;

/* Called (from a pool thread, no lock held) when a report is posted. */
typedef void (*bc_mig_notify_fn)(void *ctx);

/*
 * Starts nthreads (1..BC_MIG_MAX_PARALLEL) copy workers and nprecopy
 * (0..BC_MIG_PRECOPY_WINDOW_MAX; 0: precopy off) precopy workers with
 * their own queue.  timeout_ms bounds how long one copy or precopy may go
 * without progress (its start, or more bytes received).  notify and ctx are
 * borrowed for the pool's life.  *out is owned by the caller
 * (bc_mig_pool_stop).  Errors: BC_EINVAL, BC_ENOMEM.
 */
bc_status_t bc_mig_pool_start(uint32_t nthreads, uint32_t nprecopy, uint32_t timeout_ms,
                              bc_mig_notify_fn notify, void *ctx, bc_mig_pool_t **out);
/* Abandons queued jobs, waits for running ones to notice, frees.  NULL ok. */
void bc_mig_pool_stop(bc_mig_pool_t *pool);

/* Queues a copy unless one for (bucket, epoch) is queued or running.
 * Returns true when queued. */
bool bc_mig_pool_submit(bc_mig_pool_t *pool, const bc_mig_job_t *job);
/* Queues a best-effort DELETE of (bucket, epoch)'s import at dest_admin:
 * the destination drops the copy of a move that was called off.  Epoch 0:
 * the bucket's precopy (a move no longer planned). */
void bc_mig_pool_cancel(bc_mig_pool_t *pool, uint32_t bucket, uint64_t epoch,
                        const char *dest_admin);
/* True while a copy of (bucket, epoch) is queued, running or reported but
 * not yet taken. */
bool bc_mig_pool_active(bc_mig_pool_t *pool, uint32_t bucket, uint64_t epoch);

/* Moves up to max reports into out; returns how many.  The caller must
 * bc_mig_pool_requeue() those it could not commit. */
size_t bc_mig_pool_take(bc_mig_pool_t *pool, bc_mig_report_t *out, size_t max);
void bc_mig_pool_requeue(bc_mig_pool_t *pool, const bc_mig_report_t *reports, size_t n);
/* Forgets every copy and precopy report and drops the precopies not yet
 * started (a console that lost the election). */
void bc_mig_pool_clear_reports(bc_mig_pool_t *pool);

/* Queues a precopy of job->bucket (job->epoch is ignored: 0) unless the
 * pool runs no precopies or one of that bucket is queued, running or
 * reported but not yet taken.  job is copied.  Returns true when queued. */
bool bc_mig_pool_precopy(bc_mig_pool_t *pool, const bc_mig_job_t *job);
/* Moves up to max precopy reports into out (caller's array); returns how
 * many. */
size_t bc_mig_pool_take_precopies(bc_mig_pool_t *pool, bc_mig_report_t *out, size_t max);
/* Precopies queued or running now. */
size_t bc_mig_pool_precopying(bc_mig_pool_t *pool);

#endif
