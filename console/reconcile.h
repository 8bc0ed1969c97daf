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
 *   primary while that node lives; otherwise the node with the highest
 *   replication offset becomes primary (ties: lowest znode name).  A group
 *   with no live node loses its primary record.  A primary change bumps the
 *   epoch so that clients following the tables notice.
 *
 *   Group down.  A group named in the tables with no live node: its
 *   entries in c, m and d become 0 (no owner), and a departure record
 *   (which buckets it held in m, when it left) is written on groups/<gid>.
 *
 *   Group back.  A live group with a departure record: if every bucket it
 *   held is still unowned in m ("nothing moved since it left"), those
 *   buckets are filled back to it in c and m directly, without
 *   recomputation; d keeps any migration planned before it left.
 *   Otherwise it is treated as a new, empty group.  The record is cleared.
 *
 *   Orphans.  Buckets held by a departed group wait for it, unless
 *   orphan_grace_ms >= 0 and that long has passed since it left; then they
 *   are handed to the surviving groups by the planner.  Unowned buckets no
 *   departed group is waiting for (a new cluster) are handed out at once.
 *
 *   Rebalance.  When a live group owns nothing in d (it was just added),
 *   when there are orphans to hand out, or when asked (force), d is
 *   recomputed by the planner (bc_planner.h) over every bucket that is not
 *   waiting for a departed group.  A bucket with no data (m = 0) is
 *   assigned directly in c, m and d; a bucket whose data must move keeps
 *   its c and m entries and becomes a pending migration (m != d).
 *
 *   Any change bumps the epoch of all three tables to max(epochs) + 1.
 */
#ifndef BC_CONSOLE_RECONCILE_H
#define BC_CONSOLE_RECONCILE_H

#include <stdbool.h>
#include <stdint.h>

#include "view.h"

typedef struct bc_reconcile_input {
    bc_view_t *view;               /* borrowed */
    int64_t now_ms;                /* unix ms */
    int64_t orphan_grace_ms;       /* < 0: orphans wait for their group */
    bool force_rebalance;
} bc_reconcile_input_t;

typedef struct bc_departure_update {
    uint32_t gid;
    int32_t version;               /* groups/<gid> version to check */
    bc_departure_t record;         /* present = false clears it */
} bc_departure_update_t;

typedef struct bc_primary_update {
    uint32_t gid;
    int32_t version;               /* -1: create */
    bool remove;
    bc_primary_info_t info;
} bc_primary_update_t;

typedef struct bc_reconcile_output {
    bool changed;                  /* anything to write at all */
    bool tables_changed;
    bc_table_t c, m, d;            /* the new tables (always initialised) */
    size_t ndepartures;
    bc_departure_update_t *departures;
    size_t nprimaries;
    bc_primary_update_t *primaries;
    bool rebalanced;
    uint32_t pending_moves;        /* buckets with data to migrate (m != d, m != 0) */
    char summary[1024];            /* what changed, for the log */
} bc_reconcile_output_t;

/* Errors: BC_ENOMEM; BC_EINVAL from the planner.  *out is initialised in
 * every case (bc_reconcile_free). */
bc_status_t bc_reconcile(const bc_reconcile_input_t *in, bc_reconcile_output_t *out);
void bc_reconcile_free(bc_reconcile_output_t *out);

#endif
