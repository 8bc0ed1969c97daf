/*
 * bc_planner.h -- the rebalance planner: a pure function from the current
 * bucket map (m) and the live groups' memory to the desired map (d).
 *
 * BEHAVIOR (the contract every console and the CLI's --dry-run rely on):
 *
 *   1. Shares.  Group g's share is N * mem(g) / sum(mem), rounded by the
 *      largest-remainder method so the shares are integers summing to N.
 *      Ties on the remainder go to the lower group id.  If every live group
 *      declares 0 bytes, all weigh the same.
 *   2. Orphans.  A bucket whose m entry is 0, or names a group that is not
 *      live, has no data to move; such buckets are handed out first.
 *   3. Keep.  A live group keeps its buckets up to its share; nothing else
 *      changes owner.
 *   4. Surplus.  A group over its share gives up exactly (count - share)
 *      buckets, its highest-numbered ones first.
 *   5. Assign.  The pool -- orphans in ascending bucket order, then surplus
 *      buckets, groups visited in ascending id order -- is dealt out to the
 *      groups under their share, in ascending id order, each filled to its
 *      share before the next.
 *
 *   The number of data-carrying moves (m[b] live and d[b] != m[b]) is the
 *   sum of the surpluses, which is the minimum any plan can achieve; running
 *   the planner on its own output moves nothing.  Same input, same output.
 *
 *   Example (the seed document's): N = 6, m = 111222, groups 1, 2, 3 of
 *   equal memory -> shares 2,2,2 -> group 1 gives up bucket 2, group 2
 *   gives up bucket 5, both go to group 3: d = 113223.
 */
#ifndef BC_PLANNER_H
#define BC_PLANNER_H

#include <stddef.h>
#include <stdint.h>

#include "bc_status.h"

typedef struct bc_planner_group {
    uint32_t gid;              /* >= 1 */
    uint64_t memory;           /* bytes the group's primary declares */
} bc_planner_group_t;

/*
 * Computes d from m.  m and d are arrays of nbuckets group ids (0 = no
 * owner), both owned by the caller; d may not alias m.  groups lists the
 * live groups (any order, ids unique).  shares_out, if not NULL, receives
 * each group's share in the order of groups.  No group live: d is all 0.
 * Errors: BC_EINVAL (nbuckets 0, a gid of 0, a duplicate gid, memory so
 * large that N * memory overflows), BC_ENOMEM.
 */
bc_status_t bc_planner_plan(const uint32_t *m, uint32_t nbuckets,
                            const bc_planner_group_t *groups, size_t ngroups,
                            uint32_t *d, uint32_t *shares_out);

/* Buckets with m[b] != 0 && m[b] != d[b]: the data-carrying moves. */
uint32_t bc_planner_count_moves(const uint32_t *m, const uint32_t *d, uint32_t nbuckets);

#endif
