/*
 * evict.h -- the pluggable eviction-policy interface of the storage engine.
 *
 * WHAT IT DOES
 *   Declares one interface (bc_evict_ops_t) that every eviction policy
 *   implements, the registry that finds a policy by name, and the small
 *   circular-list helpers the policies share.  Each policy lives in its own
 *   file under node/engine/evict/:
 *
 *     lru.c     "lru"     LRU approximated by CLOCK (second chance); default
 *     lfu.c     "lfu"     frequency classes with a log counter and decay
 *     fifo.c    "fifo"    insertion order
 *     s3fifo.c  "s3fifo"  S3-FIFO (small + main FIFO queues + ghost hashes)
 *
 * HOW THE CACHE USES A POLICY
 *   The cache keeps one policy instance per shard.  Every call below is made
 *   with that shard's mutex held (LOCKING RULE of cache.h), so a policy
 *   never locks anything and never sees two threads at once.  A policy may
 *   only touch the items handed to it and only their prev, next, pbits and
 *   pfreq fields (plus read-only use of hash, nkey, nbytes).
 *
 *        store --------> on_insert / on_replace
 *        get/touch ----> on_access
 *        delete/expire > on_remove (reason)
 *        need memory --> pick_victim --+--> item unreferenced: cache unlinks
 *                                      |     it -> on_remove(BC_EVICT_EVICTED)
 *                                      +--> item pinned by a reader:
 *                                            requeue (never picked twice in a row)
 *
 *   pick_victim only *names* the next victim (it may reorder its own queues
 *   while searching, e.g. give a CLOCK second chance or promote an S3-FIFO
 *   item); the item stays linked until the cache calls on_remove.  The
 *   cache, not the policy, decides whether the victim can go: an item a
 *   reader still holds (refcount > 1) is handed back through requeue, which
 *   must move it away from the eviction end so the next pick_victim returns
 *   a different item.
 *
 * MEMORY
 *   Policy state that grows with the cache (LFU class heads, the S3-FIFO
 *   ghost table) is allocated with bc__evict_calloc/bc__evict_free, which
 *   charge the cache's global byte counter so the memory limit also bounds
 *   policy overhead.  Per-item state fits in prev/next/pbits/pfreq: policies
 *   add no bytes to an item.
 */
#ifndef BC_EVICT_H
#define BC_EVICT_H

#include <malloc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/item.h"

/* Why an item leaves the policy (on_remove). */
typedef enum bc_evict_reason {
    BC_EVICT_DELETED,   /* delete, bucket drop, replaced by an add/append path */
    BC_EVICT_EXPIRED,   /* TTL passed or flushed (lazy or active expiry) */
    BC_EVICT_EVICTED,   /* chosen by pick_victim to make room */
} bc_evict_reason_t;

/* What a policy instance gets from its cache. */
typedef struct bc_evict_env {
    _Atomic uint64_t *mem_used;   /* the cache's accounted bytes (cache.h) */
} bc_evict_env_t;

typedef struct bc_evict_ops {
    const char *name;

    /*
     * Creates one instance (one per shard).  env is borrowed and outlives
     * the instance.  Returns NULL when out of memory.
     */
    void *(*create)(const bc_evict_env_t *env);
    /* Frees the instance.  Items still tracked are not touched. */
    void (*destroy)(void *policy);

    /* A newly linked item.  now: unix seconds of the cache clock. */
    void (*on_insert)(void *policy, bc_item_t *it, uint32_t now);
    /*
     * new_it takes the place of old_it (set/cas/replace/append/incr on a
     * live key).  The policy forgets old_it and tracks new_it, carrying
     * over whatever the policy considers the key's history (a replaced key
     * is a hot key, not a new one).
     */
    void (*on_replace)(void *policy, bc_item_t *old_it, bc_item_t *new_it, uint32_t now);
    /* A hit (get, gat, touch, in-place incr/decr).  The hot path: O(1). */
    void (*on_access)(void *policy, bc_item_t *it, uint32_t now);
    /* The item is being unlinked; forget it.  O(1). */
    void (*on_remove)(void *policy, bc_item_t *it, bc_evict_reason_t reason);
    /*
     * Names the item to evict next, or NULL when the policy tracks none.
     * Amortised O(1); every implementation bounds the work of one call.
     */
    bc_item_t *(*pick_victim)(void *policy, uint32_t now);
    /*
     * The item pick_victim returned cannot be evicted now (a reader holds
     * it): move it away from the eviction end.
     */
    void (*requeue)(void *policy, bc_item_t *it, uint32_t now);
} bc_evict_ops_t;

extern const bc_evict_ops_t bc_evict_lru;
extern const bc_evict_ops_t bc_evict_lfu;
extern const bc_evict_ops_t bc_evict_fifo;
extern const bc_evict_ops_t bc_evict_s3fifo;

/*
 * Finds a policy by name ("lru", "lfu", "fifo", "s3fifo"); NULL selects
 * "lru".  Returns NULL for an unknown name.  The result is static.
 */
const bc_evict_ops_t *bc_evict_find(const char *name);
/* Space-separated list of the policy names, for help and error texts. */
const char *bc_evict_names(void);

/* ---- memory accounting shared by the cache and the policies ---- */

/*
 * Bytes an allocation really costs: the allocator's usable size plus its
 * per-chunk header (one size_t in glibc's malloc).  This is what the cache
 * charges against its limit, so that the limit bounds resident memory and
 * not just payload bytes.
 */
static inline uint64_t
bc__evict_mem_charge(const void *p)
{
    return p ? (uint64_t)malloc_usable_size((void *)p) + sizeof(size_t) : 0;
}

/*
 * calloc/free that charge env->mem_used.  bc__evict_calloc returns NULL on
 * overflow or when out of memory; the caller owns the block and must free
 * it with bc__evict_free (NULL allowed).
 */
void *bc__evict_calloc(const bc_evict_env_t *env, size_t n, size_t size);
void bc__evict_free(const bc_evict_env_t *env, void *p);

/* Bytes an item occupies as the policies weigh it (S3-FIFO's 10% split). */
static inline uint64_t
bc__evict_item_weight(const bc_item_t *it)
{
    return (uint64_t)offsetof(bc_item_t, data) + it->nkey + 1u + it->nbytes;
}

/* ---- circular doubly-linked lists through bc_item_t.prev/next ----
 *
 *   *head is the newest item, (*head)->prev the oldest (the tail):
 *
 *        head                          tail = head->prev
 *         v                              v
 *       [ A ] -next-> [ B ] -next-> [ C ]
 *         ^------------- next ---------'      (and prev the other way)
 *
 *   Making the tail the new head is a single pointer store (*head = tail):
 *   that is how CLOCK's hand and FIFO reinsertion move without relinking.
 */

static inline bc_item_t *
bc__evict_list_tail(bc_item_t *head)
{
    return head ? head->prev : NULL;
}

static inline void
bc__evict_list_push_head(bc_item_t **head, bc_item_t *it)
{
    bc_item_t *h = *head;
    if (h == NULL) {
        it->prev = it->next = it;
    } else {
        it->next = h;
        it->prev = h->prev;
        h->prev->next = it;
        h->prev = it;
    }
    *head = it;
}

static inline void
bc__evict_list_push_tail(bc_item_t **head, bc_item_t *it)
{
    bc_item_t *h = *head;
    bc__evict_list_push_head(head, it);
    if (h != NULL) *head = h;   /* it sits just before the old head: the tail */
}

static inline void
bc__evict_list_remove(bc_item_t **head, bc_item_t *it)
{
    if (it->next == it) {
        *head = NULL;
    } else {
        it->prev->next = it->next;
        it->next->prev = it->prev;
        if (*head == it) *head = it->next;
    }
    it->prev = it->next = NULL;
}

/* new_it takes old_it's exact position in the list. */
static inline void
bc__evict_list_swap_in(bc_item_t **head, bc_item_t *old_it, bc_item_t *new_it)
{
    if (old_it->next == old_it) {
        new_it->prev = new_it->next = new_it;
    } else {
        new_it->prev = old_it->prev;
        new_it->next = old_it->next;
        old_it->prev->next = new_it;
        old_it->next->prev = new_it;
    }
    if (*head == old_it) *head = new_it;
    old_it->prev = old_it->next = NULL;
}

/* Moves an item of the list to its head (most recent end). */
static inline void
bc__evict_list_move_to_head(bc_item_t **head, bc_item_t *it)
{
    if (*head == it) return;
    if (it == (*head)->prev) {   /* the tail: rotate instead of relinking */
        *head = it;
        return;
    }
    bc__evict_list_remove(head, it);
    bc__evict_list_push_head(head, it);
}

#endif
