/*
 * migrate_pool.h -- the threads that run the console's bucket copies and
 * precopies, so that the reconcile loop never waits on the network.
 *
 * The loop decides (reconcile.c) and hands jobs over; a worker runs one
 * job's HTTP conversation with the destination node to its end and posts
 * a report; the loop takes the reports in its next round and decides
 * again.  The pool decides nothing and writes nothing to ZooKeeper.
 *
 * THE COPY (a copy worker, for one copying@E record)
 *
 *     POST dest/v1/migrate/import?bucket=b&epoch=E&from=G&source=SRC
 *     GET dest/v1/migrate/import?bucket=b&epoch=E&wait_ms=1000  (a long
 *       poll: answered the moment the job finishes; again while it runs)
 *       -> report {b, E, ok, items, bytes, node} to the reconcile loop,
 *          which wakes and decides it at once
 *
 *   The destination pulls the bucket from the source (node/migrate/migrate.h),
 *   which exports it only once fenced at E.  The POST is idempotent: a
 *   console that took over re-issues it for every copying record and gets
 *   the running or finished job back.  With a precopy of b from the same
 *   source, the destination pulls only the keys changed since it (the
 *   job says "delta": true); otherwise the whole bucket.
 *
 *   Copies go in batches too (THE BATCH below): the copies a round starts
 *   are queued together (bc_mig_pool_submit_many), and a worker takes
 *   those of one pair and one epoch with one request (&epoch=E instead of
 *   &precopy=1).  A batch waits on one deadline that the bytes of its one
 *   stream move on: a stream that makes no progress gives all of its jobs
 *   up, not one timeout after another.
 *
 * THE PRECOPY (a precopy worker, for a bucket reconcile wants precopied)
 *
 *     POST dest/v1/migrate/import?bucket=b&from=G&source=SRC&precopy=1
 *     GET dest/v1/migrate/import?bucket=b&precopy=1&wait_ms=1000  (the
 *       same long poll as a copy's)
 *       -> precopy report {b, from, to, ok, items, bytes} to the console,
 *          which marks b ready for (from, to) -- a failed precopy too: the
 *          final copy is then a full one, as without precopy
 *
 *   Precopies run on their own threads and queue, so a final copy (which
 *   holds its bucket read-only) never waits behind one.
 *
 *   THE BATCH.  A precopy worker that takes one precopy from the queue
 *   takes with it up to BC_MIG_PRECOPY_BATCH_MAX - 1 more queued for the
 *   same source, destination, from and to (the others keep their order),
 *   and starts them all with one request:
 *
 *     POST dest/v1/migrate/import?buckets=b1,b2,...&precopy=1&from=G&source=SRC
 *       -> 200 {"jobs": [one entry per bucket, in the order asked]}: the
 *          job as the one-bucket POST returns it with "status" 200 or 202,
 *          or that bucket's refusal ("status" 409, 503, ..., "error")
 *
 *   The destination imports the buckets it started one after the other
 *   over one connection to the source.  The worker waits for all of them
 *   with one long poll,
 *
 *     GET dest/v1/migrate/import?buckets=b1,b2,...&precopy=1&wait_ms=1000
 *       -> 200 {"jobs": [each job's state, in the order asked]}, answered
 *          as soon as one of them finishes
 *
 *   posts each report as it comes and asks again for the rest: a batch
 *   of copies, which finishes together, is one exchange, not one per
 *   bucket after another while the round waits for the batch's last
 *   report.  A destination that does not answer that (older: 400), or
 *   lists other jobs than asked, gets a long poll per job in order (the
 *   GET above), on the same deadline.
 *   The destination counts the stream's bytes in each job still to come,
 *   so one deadline serves them all: a bucket waiting its turn behind a
 *   stream that moves is not stalled, and a stream that stops gives every
 *   job behind it up within one timeout.  Then each refused
 *   bucket takes the one-bucket path -- after the others, whose end frees
 *   what a busy destination lacked; its POST retries what is worth
 *   retrying.  A batch answered anything but 200 with a well-formed list
 *   (an older destination answers 400) is given back to the queue, each
 *   bucket to go on its own, so the workers run them in parallel as they
 *   did before batches (the POST is idempotent).  A destination that does not answer at all gets every
 *   bucket reported unreachable.  A batch of one is the one-bucket path.
 *   Each bucket gets one report, as it would on its own.
 *
 *   Reconcile asks for at most ahead * parallel buckets precopied ahead
 *   of their copy (ahead: --precopy-ahead, BC_MIG_PRECOPY_AHEAD by
 *   default): each holds memory at its destination and a change tracker
 *   at its source.  A readiness older than 20 s is asked for again (the
 *   destination answers at once while its precopy is still usable).
 *
 * BEHAVIOR
 *   - The timeout bounds a job that makes no progress, not one that is
 *     long: every status showing more bytes received moves the deadline.
 *   - A copy that times out, or a move called off (bc_mig_pool_cancel),
 *     gets a best-effort DELETE at its destination, which drops the copy.
 *   - A job is queued once: (bucket, epoch) stays known to the pool from
 *     its submission until its report is taken, so a loop that asks again
 *     every round does not start it twice.
 *
 * LOCKING
 *   pool->mu guards the pool's queues, active sets and reports; workers
 *   hold it only to take a job or to post a report, never across HTTP.
 */
#ifndef BC_CONSOLE_MIGRATE_POOL_H
#define BC_CONSOLE_MIGRATE_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_cluster.h"
#include "bc_status.h"
#include "migrate_record.h"

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
/* Precopies started with one request (THE BATCH), at most.  What a
 * precopy of a small bucket costs is the request, not its bytes: a
 * connection, a job and a thread at the destination, a connection at the
 * source, a long poll; one stream per (source, destination) pair carries
 * the buckets back to back instead.  The destination takes up to 64. */
#define BC_MIG_PRECOPY_BATCH_MAX  16u

/* Buckets precopied ahead for `parallel` copy slots at `ahead` per slot
 * (0: BC_MIG_PRECOPY_AHEAD): the look-ahead and the precopy workers. */
static inline uint32_t
bc_mig_pool_precopy_window(uint32_t parallel, uint32_t ahead)
{
    if (ahead == 0) ahead = BC_MIG_PRECOPY_AHEAD;
    if (ahead > BC_MIG_PRECOPY_AHEAD_MAX) ahead = BC_MIG_PRECOPY_AHEAD_MAX;
    uint32_t n = parallel * ahead;
    return n > BC_MIG_PRECOPY_WINDOW_MAX ? BC_MIG_PRECOPY_WINDOW_MAX : n;
}

/* A copy's outcome, from a pool worker to the reconcile loop. */
typedef struct bc_mig_report {
    uint32_t bucket;
    uint64_t epoch;                /* 0: a precopy */
    uint32_t from, to;             /* the move it was made for */
    bool ok;
    uint64_t items, bytes;
    char node[BC_NODE_NAME_MAX];   /* the destination node that imported */
    char error[BC_MIG_ERROR_MAX];  /* a failed precopy still lets the move go on
                                    * (with a full copy) -- unless: */
    bool unreachable;              /* the destination did not answer at all */
    char dest_node[BC_NODE_NAME_MAX];  /* the destination primary the job went to */
} bc_mig_report_t;

typedef struct bc_mig_pool bc_mig_pool_t;

/* What a copy or a precopy needs; strings are copied. */
typedef struct bc_mig_job {
    uint32_t bucket;
    uint64_t epoch;                    /* 0 for a precopy */
    uint32_t from, to;
    char source_admin[BC_ADDR_MAX];    /* the source primary's admin address */
    char dest_admin[BC_ADDR_MAX];      /* the destination primary's */
    char dest_node[BC_NODE_NAME_MAX];  /* the destination primary's name (for its backoff) */
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
/* bc_mig_pool_submit for each of jobs[0..n), under one hold of the lock:
 * a worker then finds every copy a round started queued, and takes those
 * of one (source, destination) pair as one batch.  queued[i]: job i was. */
void bc_mig_pool_submit_many(bc_mig_pool_t *pool, const bc_mig_job_t *jobs, size_t n,
                             bool *queued);
/* Queues a best-effort DELETE of (bucket, epoch)'s import at dest_admin:
 * the destination drops the copy of a move that was called off.  Epoch 0:
 * the bucket's precopy (a move no longer planned). */
void bc_mig_pool_cancel(bc_mig_pool_t *pool, uint32_t bucket, uint64_t epoch,
                        const char *dest_admin);
/* True while a copy of (bucket, epoch) is queued, running or reported but
 * not yet taken. */
bool bc_mig_pool_active(bc_mig_pool_t *pool, uint32_t bucket, uint64_t epoch);

/*
 * With copy reports waiting to be taken and other copies of their batch
 * (started at the same epoch) still out (queued or running), waits up to
 * max_ms for those to report too; returns how many of them are still out
 * (0 when no report waits).  Copies started together (a batch,
 * reconcile.h) report within a few ms of one another: taking the first
 * report alone cuts that bucket over in a transaction of its own, and the
 * others wait for the next one -- a whole commit longer in their write
 * pause.  Copies of other batches are not waited for.
 */
size_t bc_mig_pool_gather(bc_mig_pool_t *pool, uint32_t max_ms);

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
/* bc_mig_pool_precopy for each of jobs[0..n), under one hold of the lock,
 * as bc_mig_pool_submit_many does for copies: the precopies a round asks
 * for, those of one pair, start as one batch -- queued one call at a
 * time, a worker woken by the first could take it alone.  queued[i]:
 * job i was. */
void bc_mig_pool_precopy_many(bc_mig_pool_t *pool, const bc_mig_job_t *jobs, size_t n,
                              bool *queued);
/* Moves up to max precopy reports into out (caller's array); returns how
 * many. */
size_t bc_mig_pool_take_precopies(bc_mig_pool_t *pool, bc_mig_report_t *out, size_t max);
/* Precopies queued or running now. */
size_t bc_mig_pool_precopying(bc_mig_pool_t *pool);
/* Drops the precopies queued (not yet running) towards group `to` -- a
 * destination that began backing off; returns how many. */
size_t bc_mig_pool_drop_precopies_to(bc_mig_pool_t *pool, uint32_t to);

#endif
