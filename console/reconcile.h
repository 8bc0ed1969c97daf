/*
 * reconcile.h -- every decision the active console makes, as one pure
 * function from a view of the cluster (view.h) to the writes that bring
 * ZooKeeper to the desired state.  No I/O here: the console applies the
 * result in one compare-and-set transaction, and the unit tests drive this
 * function directly.
 *
 * BEHAVIOR
 *
 *   Primaries.  A live group (at least one registered node) keeps its
 *   primary while that node lives.  When it is gone, only a member of the
 *   group's in-sync record of that primary's term (groups/<gid>/isr, which
 *   the primary keeps: every member holds every write it acknowledged,
 *   node/repl/repl.h) may replace it: the live member with complete data
 *   and the highest replication offset (ties: lowest znode name).  None
 *   alive: the group waits -- for the old primary, or for an operator's
 *   unclean failover (below) -- and is listed in `waiting`; unless every
 *   live node was asked and none holds any data of that term (restarted
 *   processes, a group that had no backup): that data is gone either way,
 *   and the best of them starts the group empty.  A group that never had
 *   a primary (no record) takes its best node; so does one whose record
 *   has no in-sync record of its term (written by an earlier version), as
 *   before.  The new primary record and the new term's in-sync record are
 *   written together, each a compare-and-set on the version read: the
 *   members other than the new primary carry over.  A group with no live
 *   node loses both records.  A primary change bumps the epoch so that
 *   clients following the tables notice.
 *
 *   Unclean failover (unclean_gid, an operator's explicit command): a
 *   group waiting as above gets its best live node (complete data first,
 *   then the highest offset) with an empty in-sync record, and the output
 *   says what may be lost (failover): the offset the old primary last
 *   recorded against the one promoted.
 *
 *   Group down.  A group named in the tables with no live node: its
 *   entries in c, m and d become 0 (no owner), and a departure record
 *   (which buckets it held in m, when it left) is written on groups/<gid>.
 *
 *   Group back.  A live group with a departure record: if every bucket it
 *   held is still unowned in m ("nothing moved since it left"), those
 *   buckets are filled back to it in c and m directly, d keeps any
 *   migration planned before it left, and d is planned again (below): the
 *   moves planned onto it while it was down went to the others.
 *   Otherwise it is treated as a new, empty group.  The record is cleared.
 *
 *   Orphans.  Buckets held by a departed group wait for it, unless
 *   orphan_grace_ms >= 0 and that long has passed since it left; then they
 *   are handed to the surviving groups by the planner.  Unowned buckets no
 *   departed group is waiting for (a new cluster) are handed out at once.
 *
 *   Rebalance.  When a live group owns nothing in d (it was just added;
 *   unless a cancelled rebalance holds it back), when a group came back,
 *   when there are orphans to hand out, or when asked (force, which also
 *   releases held groups), d is
 *   recomputed by the planner (bc_planner.h) over every bucket that is not
 *   waiting for a departed group.  A bucket with no data (m = 0) is
 *   assigned directly in c, m and d; a bucket whose data must move keeps
 *   its c and m entries and becomes a pending migration (m != d).
 *
 *   Cancel.  d := m for every bucket not being copied right now, so the
 *   moves not yet started never happen; the groups this leaves owning
 *   nothing in d are "held": not rebalanced onto until a forced rebalance.
 *   Copies running are marked cancelled: they may finish, but one that
 *   fails drops its move (d := m, its destination held if left empty)
 *   instead of retrying.
 *
 *   Migrations (migrate.h has the state machine and why it is safe).  With
 *   a migration set in the input, in this order and within the room one
 *   ZooKeeper transaction has:
 *     1. copy reports: a report for the record's epoch whose checks pass
 *        is a cutover; a failed one, or one whose checks fail, aborts the
 *        attempt; a report for any other epoch is stale and rejected;
 *     2. every other copying record is checked again (m, d, c, read-only
 *        flag, both groups live with the same primaries): a failed check
 *        aborts it -- so a group or primary that dies mid-copy gives the
 *        bucket back to its source, writable;
 *     3. pending records whose move is no longer planned are deleted, and
 *        a read-only flag without a copy behind it is cleared;
 *     4. unless paused, buckets with m != d start copying (c.readonly set,
 *        a copying record at the new epoch) until `parallel` copy at once,
 *        in bucket order -- while copies are in flight, only in a round
 *        that writes anyway (a cutover, an abort, a table change), so
 *        that copies start and are cut over in batches, one commit ending
 *        one batch and starting the next (mig_deferred counts the copies
 *        that wait for it), or once the youngest copy in flight has run
 *        BC_RECONCILE_BATCH_WAIT_MS (a long copy does not idle the free
 *        slots) -- skipping those still backing off after a failure
 *        and those whose groups have no live primary with an admin port.
 *        With precopy input, a bucket starts only once precopied for this
 *        very move (same from and to); those that would start but are not
 *        are listed in precopy_wanted, in bucket order, within a look-ahead
 *        of bc_mig_pool_precopy_window(parallel, precopy_ahead) buckets not
 *        started (precopied ones waiting for a slot count too): a precopy
 *        holds memory at its destination and a change tracker at its
 *        source, so only the next few are asked for;
 *     5. the run summary starts with the first copy of a run and is closed
 *        when nothing is pending or copying any more.
 *
 *   Any table change bumps the epoch of all three tables to
 *   max(epochs) + 1; a copy started in this round is at that epoch.
 */
#ifndef BC_CONSOLE_RECONCILE_H
#define BC_CONSOLE_RECONCILE_H

#include <stdbool.h>
#include <stdint.h>

#include "migrate.h"
#include "view.h"

/* How long copies ready to start wait for a round that writes anyway
 * while copies are in flight ("Migrations", 4). */
#define BC_RECONCILE_BATCH_WAIT_MS 200

typedef enum bc_reconcile_pause {
    BC_RECONCILE_PAUSE_KEEP = 0,   /* leave the paused flag as it is */
    BC_RECONCILE_PAUSE_SET,        /* pause: no new copy starts */
    BC_RECONCILE_PAUSE_CLEAR,      /* resume */
} bc_reconcile_pause_t;

/* A bucket precopied for the move from `from` to `to`; 0/0: not (or no
 * longer) ready. */
typedef struct bc_reconcile_precopy {
    uint32_t from, to;
} bc_reconcile_precopy_t;

/* A bucket whose copy waits for a precopy: the console asks for it. */
typedef struct bc_reconcile_precopy_want {
    uint32_t bucket;
    uint32_t from, to;
} bc_reconcile_precopy_want_t;

typedef struct bc_reconcile_input {
    bc_view_t *view;               /* borrowed */
    int64_t now_ms;                /* unix ms */
    int64_t orphan_grace_ms;       /* < 0: orphans wait for their group */
    bool force_rebalance;
    /* Migrations.  migs NULL: none are driven (data-carrying moves stay
     * pending, as before migration existed). */
    const bc_mig_set_t *migs;      /* borrowed */
    uint32_t parallel;             /* at most this many buckets copying */
    const bc_mig_report_t *reports;    /* copies finished since the last round */
    size_t nreports;
    bool cancel_rebalance;         /* see "Cancel" above */
    bc_reconcile_pause_t pause;    /* pause or resume migrations */
    /* Precopy (borrowed; view->nbuckets entries): what each bucket is
     * precopied for.  NULL: precopy off, copies start as before. */
    const bc_reconcile_precopy_t *precopy;
    uint32_t precopy_ahead;        /* per copy slot, 1..BC_MIG_PRECOPY_AHEAD_MAX (0: the
                                    * default, BC_MIG_PRECOPY_AHEAD) */
    uint32_t unclean_gid;          /* an unclean failover of this group asked for (0: none) */
    /* Destinations backing off (borrowed, ndest_backoff entries): no copy
     * or precopy towards them starts before their retry time, and one
     * whose time is up is probed with one job. */
    const bc_mig_dest_backoff_t *dest_backoff;
    size_t ndest_backoff;
} bc_reconcile_input_t;

typedef struct bc_reconcile_departure_update {
    uint32_t gid;
    int32_t version;               /* groups/<gid> version to check */
    bc_view_departure_t record;    /* present = false clears it */
} bc_reconcile_departure_update_t;

typedef struct bc_reconcile_primary_update {
    uint32_t gid;
    int32_t version;               /* -1: create */
    bool remove;                   /* both records go (the in-sync one if it exists) */
    bc_cluster_primary_info_t info;
    /* The new term's in-sync record, written with it (compare-and-set at
     * isr_version; -1: create).  Its primary and epoch are info's. */
    int32_t isr_version;
    bc_cluster_isr_t isr;
} bc_reconcile_primary_update_t;

/* What an unclean failover did (bc_reconcile_output_t.failover). */
typedef struct bc_reconcile_failover {
    bool done;                     /* a node was promoted */
    uint32_t gid;
    char node[BC_NODE_NAME_MAX];
    char old_primary[BC_NODE_NAME_MAX];
    bool clean;                    /* an in-sync member was alive after all */
    uint64_t offset;               /* the promoted node's replication offset */
    bool recorded;                 /* the old term's in-sync record was known */
    uint64_t recorded_offset;      /* the old primary's offset when it last wrote it */
    int64_t recorded_at_ms;        /* when (unix ms) */
    uint64_t behind;               /* recorded_offset - offset, when positive */
    char error[160];               /* why not (done false) */
} bc_reconcile_failover_t;

typedef struct bc_reconcile_mig_update {
    uint32_t bucket;
    int32_t version;               /* znode version to check; -1: create */
    bool remove;
    bc_mig_record_t record;        /* the new record (unless remove) */
} bc_reconcile_mig_update_t;

/* A bucket copying after this round (the console keeps a copy job on it). */
typedef struct bc_reconcile_copying {
    uint32_t bucket;
    uint64_t epoch;
    uint32_t from, to;
} bc_reconcile_copying_t;

typedef struct bc_reconcile_output {
    bool changed;                  /* anything to write at all */
    bool tables_changed;
    bc_table_t c, m, d;            /* the new tables (always initialised) */
    size_t ndepartures;
    bc_reconcile_departure_update_t *departures;
    size_t nprimaries;
    bc_reconcile_primary_update_t *primaries;
    bool rebalanced;
    uint32_t pending_moves;        /* buckets with data to migrate (m != d, m != 0) */
    /* Migrations (all empty when the input had no migration set). */
    size_t nmig;
    bc_reconcile_mig_update_t *mig; /* record writes, in transaction order */
    bool control_changed;
    bc_mig_control_t *control;     /* the migrations znode's new data (malloc'd) */
    size_t naborts;
    bc_reconcile_copying_t *aborts; /* copies called off: tell their destination */
    size_t ncopying;
    bc_reconcile_copying_t *copying; /* every bucket copying after this round */
    /* Precopies to ask for, in bucket order (none without precopy input). */
    size_t nprecopy_wanted;
    bc_reconcile_precopy_want_t *precopy_wanted;
    size_t nreports_used;          /* reports[0..n) were decided; requeue the rest */
    uint32_t mig_started, mig_cutovers, mig_aborted, mig_rejected;
    uint32_t mig_held_back;        /* starts and precopies not made: destination backing off
                                    * or probed already, or its primary's registration gone */
    uint32_t mig_deferred;         /* copies that could start but wait for the next round
                                    * that writes (a cutover): "Migrations", 4 */
    int64_t mig_batch_wait_ms;     /* with mig_deferred: a round this much later starts them
                                    * even if nothing is written before */
    bool mig_more;                 /* work left that did not fit in one transaction */
    /* Groups whose primary is gone with no in-sync member alive: they wait. */
    size_t nwaiting;
    uint32_t *waiting;
    bc_reconcile_failover_t failover;  /* the unclean failover asked for, if any */
    char summary[1024];            /* what changed, for the log */
} bc_reconcile_output_t;

/* Errors: BC_ENOMEM; BC_EINVAL from the planner.  *out is initialised in
 * every case (bc_reconcile_free). */
bc_status_t bc_reconcile(const bc_reconcile_input_t *in, bc_reconcile_output_t *out);
void bc_reconcile_free(bc_reconcile_output_t *out);

#endif
