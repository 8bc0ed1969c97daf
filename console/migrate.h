/*
 * migrate.h -- the console's migration driver: how a bucket move goes
 * through ZooKeeper, and the set of moves a reconcile round works on.
 *
 * WHERE EACH PART LIVES
 *   reconcile.c       every decision, as one pure function of the tables,
 *                     the records and the copy reports: which bucket
 *                     starts copying, whose attempt is aborted, and when
 *                     a bucket is done moving (its cutover).  Nothing
 *                     else decides that a move is over; see reconcile.h,
 *                     "Migrations", for the order of the checks
 *   console.c         applies a round's decisions in one transaction and
 *                     hands the copies and precopies to the pool
 *   migrate_pool.c/h  the threads that run the copies and precopies (the
 *                     HTTP conversation with the destination node)
 *   migrate_record.c/h  the JSON of migrations/<b> and of the migrations
 *                     znode (controls, run summary)
 *   migrate.c         reading migrations/ into a set; the retry backoff
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
 *   Starts go in batches: while copies are in flight, a start waits for a
 *   transaction written anyway -- usually the cutover of the batch before
 *   -- for at most 200 ms (reconcile.h, "Migrations", 4), so a start never
 *   has a commit of its own that a cutover queues behind.
 *
 * THE COPY AND THE PRECOPY
 *   A pool thread asks the destination to import b (from the source, at
 *   E; or, for a precopy, while b stays writable) and long-polls it until
 *   done, then reports to the loop: migrate_pool.h has the requests.  The
 *   destination pulls the bucket from the source (node/migrate/migrate.h), which
 *   exports it only once fenced at E.  Reconcile asks for a few buckets
 *   precopied ahead of their copy (bc_mig_pool_precopy_window), so the final
 *   copy, which holds b read-only, moves only the keys changed since.
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
 */
#ifndef BC_CONSOLE_MIGRATE_H
#define BC_CONSOLE_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_status.h"
#include "bc_zk.h"
#include "migrate_pool.h"
#include "migrate_record.h"

/* Everything migrations/ holds, as one round reads it. */
typedef struct bc_mig_set {
    uint32_t nbuckets;
    bc_mig_record_t **rec;         /* nbuckets entries; NULL: no record */
    size_t count;                  /* records present */
    bc_mig_control_t control;
} bc_mig_set_t;

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

/* ---- backing off per destination ---- */

/*
 * BEHAVIOR: the per-bucket backoff above spaces the retries of ONE bucket;
 * a destination that is down fails every bucket planned onto it, each on
 * its own clock, and each attempt makes a healthy source bucket read-only
 * for a moment (an epoch of its own).  So failures are also counted per
 * destination group -- against the primary they were made with -- and
 * while a destination backs off (BC_MIG_DEST_BACKOFF_BASE_MS doubling per
 * failure in a row, at most BC_MIG_DEST_BACKOFF_MAX_MS) no copy and no
 * precopy towards it starts.  A success clears it at once, and so does a
 * new primary of that group (the entry names the old one).  The console
 * keeps this in memory only: a console that takes over starts afresh,
 * which costs one failure per destination at most.
 */
#define BC_MIG_DEST_BACKOFF_BASE_MS 500
#define BC_MIG_DEST_BACKOFF_MAX_MS  15000

typedef struct bc_mig_dest_backoff {
    uint32_t gid;
    char node[BC_NODE_NAME_MAX];   /* the destination primary the failures were made with */
    uint32_t failures;             /* in a row */
    int64_t retry_at_ms;           /* unix ms: nothing starts towards it before */
    char error[BC_MIG_ERROR_MAX];  /* the last failure */
} bc_mig_dest_backoff_t;

typedef struct bc_mig_dest_backoffs {
    size_t n, cap;
    bc_mig_dest_backoff_t *v;
} bc_mig_dest_backoffs_t;

/*
 * Notes the outcome of a copy or precopy towards group gid, whose primary
 * was node: a failure backs the destination off (returns true when this
 * one started or lengthened a backoff), a success forgets it.  Out of
 * memory: the failure is not counted (nothing worse than before).
 */
bool bc_mig_dest_note(bc_mig_dest_backoffs_t *d, uint32_t gid, const char *node, bool ok,
                      const char *error, int64_t now_ms);
/* The entry of gid, or NULL.  Borrowed. */
const bc_mig_dest_backoff_t *bc_mig_dest_find(const bc_mig_dest_backoff_t *v, size_t n,
                                               uint32_t gid);
/* True when nothing may start towards gid, whose primary is node, at now. */
bool bc_mig_dest_backing_off(const bc_mig_dest_backoff_t *v, size_t n, uint32_t gid,
                             const char *node, int64_t now_ms);
void bc_mig_dest_backoffs_free(bc_mig_dest_backoffs_t *d);

#endif
