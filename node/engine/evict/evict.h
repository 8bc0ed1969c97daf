/*
 * evict.h -- the pluggable eviction-policy interface of the storage engine.
 *
 * WHAT IT DOES
 *   Declares one interface (bc_evict_ops_t) that every eviction policy
 *   implements and the registry that finds a policy by name.  Each policy
 *   lives in its own file under node/engine/evict/:
 *
 *     s3fifo.c  "s3fifo"  S3-FIFO: a small and a main FIFO queue + ghost
 *                         hashes (the default)
 *     lru.c     "lru"     LRU approximated by CLOCK (second chance)
 *     lfu.c     "lfu"     a logarithmic frequency counter with decay
 *     fifo.c    "fifo"    insertion order
 *
 * HOW THE CACHE USES A POLICY
 *   Items are written one after another into segments (engine/seg_int.h), and
 *   memory comes back a segment at a time.  Each segment belongs to one of
 *   the policy's queues (one or two): a queue is a FIFO of segments, new
 *   ones at its head, and eviction always takes the tail segment of some
 *   queue.  What a policy decides is, item by item, what happens to the
 *   live items of that tail segment: dropped (evicted), or kept -- copied
 *   to the head of a queue, its own or another.  A policy needs no list
 *   pointers in the item: its per-item state is one byte (pfreq) plus the
 *   item's last access time (atime), both in the item header.
 *
 *     alloc (store) ---> admit(hash)        which queue the new item is
 *                                           written to
 *     link ------------> on_link / on_replace   (a new key / a new value of
 *                                           a live key: carry its history)
 *     get/touch -------> on_access          the hot path: item bits only
 *     a read misses ---> on_miss(hash)      (optional) lock-free
 *     need memory -----> pick_queue         which queue's tail goes
 *                        on_evict(item)     per live item of that segment:
 *                                           BC_EVICT_DROP or a queue
 *
 *   This is how the classic policies read on a log of segments:
 *
 *     fifo     one queue; every item of the tail segment is dropped
 *     lru      CLOCK: one queue; an item hit since it last passed the
 *              tail is copied to the head with its bit cleared (its
 *              second chance), the others are dropped -- which keeps
 *              recently used items as LRU does
 *     lfu      one queue; an item whose counter (decayed by idle time)
 *              shows hits beyond the first is copied to the head with
 *              the counter lowered by one, the others are dropped
 *     s3fifo   S (10% of the memory) and M.  S's tail: hit -> copied to
 *              M, not hit -> dropped and its hash kept in a ghost table,
 *              so that a miss on it is written to M directly.  M's tail:
 *              hit -> copied to M's head with one hit less, else dropped
 *
 *   A copy is paid for by the hits that earned it (each keep consumes a
 *   reference bit or a count), so the work per evicted segment is
 *   amortised O(its size).  A reader holding an item pins its segment: the
 *   segment's items are handled all the same (the reader keeps reading
 *   the old copy), and its memory is reused only when the last reader lets
 *   go (engine/seg_int.h).
 *
 * LOCKING
 *   The cache calls admit, pick_queue and on_evict with its segment lock
 *   held (one thread at a time: the instance state is theirs), on_evict
 *   also with the shard lock of the item's bucket; on_link, on_replace and
 *   on_access with the item's shard lock only -- several at once, so they
 *   touch the item's own bytes and nothing of the instance.  on_miss
 *   with no lock at all, several at once: it touches only instance state
 *   that is atomic and never freed before destroy.  A policy never locks
 *   anything itself.
 *
 * MEMORY
 *   Policy state that grows with the cache (the S3-FIFO ghost table) is
 *   allocated with bc__evict_calloc/bc__evict_free, which charge the
 *   cache's global byte counter so the memory limit also bounds policy
 *   overhead.
 */
#ifndef BC_EVICT_H
#define BC_EVICT_H

#include <malloc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/item.h"

#define BC_EVICT_MAX_QUEUES 2
/* on_evict's verdict: evict the item (else: the queue to copy it to). */
#define BC_EVICT_DROP       (-1)

/* What a policy instance gets from its cache. */
typedef struct bc_evict_env {
    _Atomic uint64_t *mem_used;   /* the cache's accounted bytes (cache.h) */
} bc_evict_env_t;

/* The queues as they stand when a victim is chosen. */
typedef struct bc_evict_queues {
    uint64_t bytes[BC_EVICT_MAX_QUEUES];   /* memory held by each queue's segments */
    bool evictable[BC_EVICT_MAX_QUEUES];   /* the queue has a segment to take */
    uint64_t items;                        /* live items in the whole cache */
} bc_evict_queues_t;

typedef struct bc_evict_ops {
    const char *name;
    unsigned nqueues;             /* 1..BC_EVICT_MAX_QUEUES */

    /*
     * Creates one instance (one per cache).  env is borrowed and outlives
     * the instance.  Returns NULL when out of memory.
     */
    void *(*create)(const bc_evict_env_t *env);
    /* Frees the instance. */
    void (*destroy)(void *policy);

    /* The queue a new item with this key hash is written to. */
    unsigned (*admit)(void *policy, uint32_t hash);
    /* A new key was linked (it->pfreq is the policy's to set). */
    void (*on_link)(bc_item_t *it, uint32_t now);
    /*
     * new_it takes the place of old_it (set/cas/replace/append/incr on a
     * live key): carry over what the policy considers the key's history (a
     * replaced key is a hot key, not a new one).
     */
    void (*on_replace)(const bc_item_t *old_it, bc_item_t *new_it, uint32_t now);
    /* A hit (get, gat, touch).  it->atime still holds the previous access. */
    void (*on_access)(bc_item_t *it, uint32_t now);
    /*
     * A read of this key hash missed (get, gat, mg; not touch, not a
     * write).  NULL when the policy has no use for it.
     */
    void (*on_miss)(void *policy, uint32_t hash);

    /* The queue whose tail segment is evicted next; only an evictable one. */
    unsigned (*pick_queue)(void *policy, const bc_evict_queues_t *q);
    /*
     * The verdict on a live item of the segment being evicted from `queue`
     * (hash: its key's): BC_EVICT_DROP, or the queue it is copied to (the
     * policy updates it->pfreq for its new life).  With force (the cache
     * must free memory and every item so far was kept), the answer must be
     * BC_EVICT_DROP.
     */
    int (*on_evict)(void *policy, bc_item_t *it, unsigned queue, uint32_t hash, uint32_t now,
                    bool force);
} bc_evict_ops_t;

extern const bc_evict_ops_t bc_evict_lru;
extern const bc_evict_ops_t bc_evict_lfu;
extern const bc_evict_ops_t bc_evict_fifo;
extern const bc_evict_ops_t bc_evict_s3fifo;

/* The policy a cache uses when none is named. */
#define BC_EVICT_DEFAULT "s3fifo"

/*
 * Finds a policy by name ("lru", "lfu", "fifo", "s3fifo"); NULL or ""
 * selects BC_EVICT_DEFAULT.  Returns NULL for an unknown name.  The result
 * is static.
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

/* The cache clock's seconds as an item keeps them (bc_item_t.atime). */
static inline uint16_t bc__evict_atime(uint32_t now) { return (uint16_t)now; }

/* Seconds since the item's last access (modulo 18 hours). */
static inline uint32_t
bc__evict_idle(const bc_item_t *it, uint32_t now)
{
    return (uint16_t)((uint16_t)now - it->atime);
}

#endif
