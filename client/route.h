/*
 * route.h -- the routing snapshot (which node serves each bucket) and its
 * lock-free publication.
 *
 * WHAT
 *   A snapshot is immutable once published: the c table's epoch, owner and
 *   read-only flag per bucket, and per bucket the primary node of its owner
 *   (NULL while unknown).  It holds one reference on each distinct node it
 *   names.  Calls acquire the current snapshot, read the few fields they
 *   need, take a reference on the node, and release the snapshot at once.
 *
 * HOW (split reference counting, RCU style)
 *   The router keeps one 64-bit word: the slot index of the current
 *   snapshot in its top 16 bits and an acquisition counter in the low 48.
 *   Acquiring is a single atomic fetch_add on that word: the returned value
 *   names the slot, and the increment itself is the reference.  Releasing
 *   is a fetch_sub on the snapshot's own `pending` counter.  Publishing a
 *   new snapshot exchanges the word; the old word's counter says how many
 *   references were handed out, and the publisher adds that number to the
 *   old snapshot's `pending`: whoever brings pending back to zero (the
 *   publisher, or the last releasing reader) frees it.  No reader ever
 *   waits and no lock is taken on the hot path.
 *
 *   The acquisition counter would overflow into the slot bits after 2^48
 *   acquisitions of one snapshot; bc__route_maintain() republishes a copy
 *   long before that (the agent calls it every loop).
 */
#ifndef BC_CLIENT_ROUTE_H
#define BC_CLIENT_ROUTE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_status.h"
#include "pool.h"

#define BC__ROUTER_SLOTS 64

typedef struct bc__router bc__router_t;

typedef struct bc__route_snapshot {
    atomic_int_fast64_t pending;     /* releases still owed (see above) */
    int slot;
    bc__router_t *router;
    uint64_t epoch;
    uint32_t nbuckets;
    uint32_t *owner;                 /* nbuckets group ids, 0 = none */
    uint8_t *readonly;               /* nbuckets flags */
    bc__pool_node_t **node;          /* nbuckets primaries, NULL = unknown */
    bc__pool_node_t **nodes;         /* distinct nodes, one reference each */
    size_t nnodes;
} bc__route_snapshot_t;

struct bc__router {
    _Atomic uint64_t word;
    _Atomic(bc__route_snapshot_t *) slots[BC__ROUTER_SLOTS];
    atomic_uint_fast64_t published;  /* snapshots published so far */
    /* bc__route_wait.  LOCKING RULE: wait_mu guards nothing but the
     * condition wait itself (published is atomic); a publisher takes it
     * only to broadcast, and only when someone waits. */
    atomic_int waiters;
    pthread_mutex_t wait_mu;
    pthread_cond_t wait_cv;          /* CLOCK_MONOTONIC */
};

/*
 * A new, unpublished snapshot with zeroed arrays (all buckets unowned, no
 * nodes).  NULL on out of memory or nbuckets 0.
 */
bc__route_snapshot_t *bc__route_snapshot_new(uint32_t nbuckets);
/*
 * Sets bucket b's node to the distinct node that `node` is (taking a
 * reference the first time a node is added to this snapshot).  For
 * building only.  Errors: BC_ENOMEM.
 */
bc_status_t bc__route_snapshot_set_node(bc__route_snapshot_t *s, uint32_t b, bc__pool_node_t *node);
/* Frees an unpublished snapshot (drops its node references). */
void bc__route_snapshot_discard(bc__route_snapshot_t *s);
/* A deep copy (new node references).  NULL on out of memory. */
bc__route_snapshot_t *bc__route_snapshot_clone(const bc__route_snapshot_t *s);
/* True when two snapshots route every bucket the same way (same epoch,
 * owners, flags and nodes). */
bool bc__route_snapshot_same(const bc__route_snapshot_t *a, const bc__route_snapshot_t *b);

void bc__route_init(bc__router_t *r);
/*
 * Publishes s (which the router now owns).  Waits (sleeping) in the
 * unlikely case that every slot is still held by an older snapshot.
 */
void bc__route_publish(bc__router_t *r, bc__route_snapshot_t *s);
/* The current snapshot, referenced (NULL before the first publish); pair
 * with bc__route_release.  Lock-free; any thread. */
bc__route_snapshot_t *bc__route_acquire(bc__router_t *r);
void bc__route_release(bc__route_snapshot_t *s);
/*
 * Sleeps until a snapshot other than the `seen`-th (a value of published)
 * is published, or until CLOCK_MONOTONIC until_ns.  Returns true when one
 * was.  A retry backing off behind a refusal (a bucket read-only while it
 * moves, a primary that changed) then goes on the moment the table that
 * ends it arrives, not at the end of its backoff.  Any thread.
 */
bool bc__route_wait(bc__router_t *r, uint64_t seen, uint64_t until_ns);
/* Republishes a copy when the acquisition counter runs high. */
void bc__route_maintain(bc__router_t *r);
/* Unpublishes the current snapshot (freed once released). */
void bc__route_destroy(bc__router_t *r);

#endif
