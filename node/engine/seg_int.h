/*
 * seg_int.h -- the storage engine's memory: items packed into segments of one
 * arena, large items in blocks of their own, and the byte budget they all
 * share.  Private to node/engine (cache.c is its one user).
 *
 * WHAT IT DOES
 *   Hands out room for items, takes it back a whole segment at a time, and
 *   keeps the memory the process really holds for them within the cache's
 *   limit, whatever the mix of item sizes.
 *
 * HOW
 *   The arena is one mapping of nseg * seg_size bytes, reserved at start
 *   and backed by the kernel only where written.  A segment (seg_size
 *   bytes, a power of two, at most 1 MiB) receives items one after another,
 *   each rounded to 8 bytes, with no header of the allocator's.  Segments
 *   belong to the eviction policy's queues (evict/evict.h): a queue is a
 *   FIFO of segments whose head is OPEN (items are appended to it), and
 *   eviction takes a queue's tail.
 *
 *     arena:  | seg 0 | seg 1 | seg 2 | seg 3 | ...                 |
 *
 *     queue 0:  head OPEN seg 3 -> seg 0 -> seg 5 tail    (S3-FIFO's S)
 *     queue 1:  head OPEN seg 1 -> [large] -> seg 4 tail   (S3-FIFO's M)
 *     free:     seg 2 (backed)        unbacked: seg 6, 7 ...
 *
 *   An item larger than large_min (an eighth of a segment) gets a block of
 *   its own from malloc (glibc maps it separately: freed, it goes back to
 *   the system), described by a segment of its own that sits in the same
 *   queues.  Keeping such an item when its segment is evicted moves the
 *   descriptor to a queue's head instead of copying the bytes.
 *
 *   A segment's life:
 *
 *     UNBACKED --(budget allows)--> OPEN --(full)--> QUEUED --(tail)--> EVICTING
 *        ^                            ^                                     |
 *        | (over budget, or more      |                               (items dropped
 *        |  free than kept)           |                                or copied out)
 *        |                            |                                     v
 *     FREE <-------(last pin goes)------------------------------------- DRAINING
 *
 *   and a QUEUED or OPEN segment whose last live item is unlinked goes
 *   straight to FREE, or DRAINING while pinned (a bucket drop, a mass
 *   expiry).  A QUEUED segment whose items are mostly gone (after a bucket
 *   drop, say) is compacted: taken out of its queue like an eviction
 *   victim, its live items copied to the queue's head, the segment freed
 *   (cache.c, bc_cache_compact) -- so memory a migration moved away goes
 *   back to the system within seconds.
 *
 * PINS (what lets replies send item memory without a copy)
 *   A reader that holds an item (bc_cache_get), and a writer that fills an
 *   item not yet stored (bc_item_alloc), pins the item's segment: a count
 *   in the segment, changed with atomics and no lock.  Eviction does not
 *   wait for pins: it unlinks or copies out the segment's items, then
 *   marks it FREEABLE; whoever takes the count to zero with that mark set
 *   (the evictor itself, or the last reader's release) puts it on the free
 *   list.  A pinned segment is therefore never reused, however long a slow
 *   client takes to read its reply, and it stays counted in the budget
 *   until then.
 *
 * LIVE ITEMS
 *   live counts the segment's linked items, and its RETIRED mark says no
 *   item may be linked into it any more: set when eviction takes the
 *   segment, or when its last live item goes while it waits in its queue
 *   (the segment is then freed without waiting for eviction -- a bucket
 *   drop or a mass expiry gives memory back at once).  Linking adds to
 *   live and looks at the mark in the same atomic step
 *   (bc_seg_link_try): a writer whose item is still being filled when
 *   its segment retires copies it elsewhere before linking it (cache.c),
 *   and eviction, which walks every item under its shard lock after
 *   setting the mark, sees every item linked before.
 *
 * BUDGET
 *   *mem_used counts: every backed segment (seg_size each, whether it holds
 *   items, is free or drains), every large block (malloc's real size), and
 *   everything else the engine allocates (index, policy, fixed arrays).
 *   A segment is backed only when the budget has room for it; when the
 *   index or a large item needs room, free segments are given back to the
 *   system (madvise DONTNEED) -- after evicting, if none is free.  Free
 *   segments beyond a few are given back too, so the process shrinks after
 *   a bucket drop.  Resident memory thus follows *mem_used, which never
 *   passes the limit by more than a table growth in progress: no slab class
 *   can hoard pages, and nothing waits for a trim.  With prealloc (-L) the
 *   arena is touched at start and free segments stay backed.
 *
 * REFERENCES
 *   The index (cache.c) links items by 32-bit references, not pointers:
 *   an arena item is its offset in units of 8 bytes (plus one; 0 is "no
 *   item"), which covers a 16 GiB arena -- a larger one uses coarser units
 *   and aligns its items to them -- and a large item is its number in a
 *   table with the top bit set.
 *
 * LOCKING RULE
 *   segs->lock protects the queues, the free lists, the large-item table,
 *   each segment's state, queue, used and links, and the eviction policy's
 *   instance (cache.c calls admit, pick_queue and on_evict under it).
 *   Functions prefixed do_ require it.  A shard lock may be held when it is
 *   taken, never the other way round (cache.c: shard lock, then this).
 *   pins and live are atomic; mem_used is atomic.
 */
#ifndef BC_ENGINE_SEG_INT_H
#define BC_ENGINE_SEG_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/evict/evict.h"
#include "engine/item.h"

#define BC_SEG_MIN_SIZE      (4u << 10)
#define BC_SEG_MAX_SIZE      (1u << 20)

/* pins: a count plus a mark. */
#define BC_SEG_PIN_COUNT     0x7fffffffu
#define BC_SEG_PIN_FREEABLE  0x80000000u   /* the last unpin frees it */
/* live: a count plus a mark. */
#define BC_SEG_LIVE_COUNT    0x7fffffffu
#define BC_SEG_LIVE_RETIRED  0x80000000u   /* no item may be linked into it any more */

/* A reference of the index: 0 = none; top bit = a large item's number. */
#define BC_SEG_REF_LARGE     0x80000000u

typedef enum bc_seg_state {
    BC_SEG_UNBACKED,
    BC_SEG_FREE,
    BC_SEG_OPEN,
    BC_SEG_QUEUED,
    BC_SEG_EVICTING,
    BC_SEG_DRAINING,
} bc_seg_state_t;

typedef struct bc_seg {
    struct bc_seg *next;           /* towards the queue's tail; free lists */
    struct bc_seg *prev;           /* towards the queue's head */
    char *base;                    /* arena slot, or the large item */
    uint64_t charge;               /* bytes counted in the budget while backed */
    uint32_t used;                 /* bytes appended (arena segments) */
    uint32_t nrec;                 /* items appended (arena segments) */
    uint32_t id;                   /* index in the arena, or large item number */
    _Atomic uint32_t pins;         /* count | BC_SEG_PIN_* */
    _Atomic uint32_t live;         /* linked items | BC_SEG_LIVE_RETIRED */
    uint8_t state;                 /* bc_seg_state_t */
    uint8_t queue;
    bool large;
    /* one cache line each (the array is 64-byte aligned): the pins of one
     * segment, which every get and release changes, do not share a line
     * with a neighbour's */
    char pad[64 - 55];
} bc_seg_t;

_Static_assert(sizeof(bc_seg_t) == 64, "a segment descriptor is one cache line");

/* A large item's block: its descriptor, then the item. */
typedef struct bc_seg_large {
    bc_seg_t seg;
    _Alignas(16) char item[];
} bc_seg_large_t;

typedef struct bc_seg_queue {
    bc_seg_t *head;                /* newest */
    bc_seg_t *tail;                /* oldest: the next victim */
    bc_seg_t *open;                /* the arena segment items are appended to */
    uint64_t bytes;                /* charges of its segments */
} bc_seg_queue_t;

typedef struct bc_segs {
    pthread_mutex_t lock;          /* see LOCKING RULE */
    char *arena;
    size_t arena_bytes;
    uint32_t seg_size;
    uint32_t seg_shift;
    uint32_t nseg;
    uint32_t large_min;            /* items of this many bytes or more are large */
    uint32_t ref_shift;            /* arena references count 1 << ref_shift bytes */
    uint32_t keep_free;            /* backed free segments kept before giving back */
    uint32_t compact_cursor;       /* where the search for a sparse segment goes on */
    bool prealloc;
    bc_seg_t *segs;                /* nseg descriptors */
    bc_seg_t *free;                /* backed, unused */
    uint32_t nfree;
    bc_seg_t *unbacked;
    uint32_t nunbacked;
    bc_seg_queue_t queues[BC_EVICT_MAX_QUEUES];
    unsigned nqueues;
    bc_seg_t *draining;            /* evicted, still pinned (singly linked) */
    uint64_t draining_bytes;
    /* large items by number: dir[n >> 12][n & 4095]; a free slot holds
     * (next free number << 1) | 1 */
    uintptr_t **large_dir;
    uint32_t large_dir_len;
    uint32_t large_next;           /* never used numbers start here */
    uint32_t large_free;           /* first free number + 1 (0: none) */
    _Atomic uint64_t *mem_used;
    uint64_t limit;                /* atomic: bc_seg_set_limit */
    /* counters (lock) */
    uint64_t evicted_segs;
    uint64_t compacted_segs;
    uint64_t passed_pinned;        /* pinned segments eviction passed over */
    uint64_t moved_items;
    uint64_t released_segs;
    uint64_t prefaulted_segs;      /* backed ahead of demand (bc_seg_prefault_one) */
} bc_segs_t;

/*
 * Sets segs up for a cache of `limit` bytes whose counter is *mem_used
 * (the arena is reserved, nothing is backed: the descriptors are charged).
 * seg_size 0 picks one from the limit.  Errors: BC_EINVAL, BC_ENOMEM.
 */
int bc_seg_init(bc_segs_t *segs, uint64_t limit, uint32_t seg_size, unsigned nqueues,
                 _Atomic uint64_t *mem_used);
/* Frees everything, items included; nothing may be pinned. */
void bc_seg_fini(bc_segs_t *segs);
/* Moves the budget (cache_memlimit): at most the limit given to
 * bc_seg_init, which the arena and the large-item table were sized for. */
void bc_seg_set_limit(bc_segs_t *segs, uint64_t limit);

/* -L: backs and touches as many segments as the budget allows now; they
 * stay backed.  Returns the bytes touched (*took_ms: how long it took). */
size_t bc_seg_prealloc(bc_segs_t *segs, int64_t *took_ms);

/* Backs one segment ahead of demand when fewer than `ahead` bytes of
 * backed free segments are ready and the budget has room for more than
 * SEGS_RESERVE + 1 segments besides: its pages are faulted in by the calling thread with
 * the lock not held, then it joins the free list, charged as -L's are.
 * Returns the bytes faulted in; 0 when enough are ready or there is no
 * room (then nothing changed). */
size_t bc_seg_prefault_one(bc_segs_t *segs, uint64_t ahead);

/* Bytes of an item as stored in a segment (arena) or a large block. */
static inline uint32_t
bc_seg_item_size(const bc_segs_t *segs, uint32_t nkey, uint32_t nbytes, bool has_flags)
{
    uint64_t n = sizeof(bc_item_t) + (has_flags ? 4u : 0u) + nkey + (uint64_t)nbytes;
    uint64_t unit = (uint64_t)1 << segs->ref_shift;
    n = (n + unit - 1) & ~(unit - 1);
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

static inline bool
bc_seg_is_large(const bc_segs_t *segs, uint32_t size)
{
    return size >= segs->large_min;
}

/* The segment an item lives in. */
static inline bc_seg_t *
bc_seg_of(const bc_segs_t *segs, const bc_item_t *it)
{
    uintptr_t off = (uintptr_t)it - (uintptr_t)segs->arena;
    if (off < segs->arena_bytes) return &segs->segs[off >> segs->seg_shift];
    return &((bc_seg_large_t *)((char *)it - offsetof(bc_seg_large_t, item)))->seg;
}

/* The bytes an item takes (its share of an arena segment, or its block). */
static inline uint64_t
bc_seg_charge_of(const bc_segs_t *segs, const bc_item_t *it)
{
    if (bc_item_is_large(it)) return bc_seg_of(segs, it)->charge;
    return bc_seg_item_size(segs, bc_item_nkey(it), bc_item_nbytes(it), bc_item_has_flags(it));
}

/* ---- references ---- */

static inline uint32_t
bc_seg_ref(const bc_segs_t *segs, const bc_item_t *it)
{
    if (bc_item_is_large(it)) return BC_SEG_REF_LARGE | bc_seg_of(segs, it)->id;
    return (uint32_t)(((uintptr_t)it - (uintptr_t)segs->arena) >> segs->ref_shift) + 1u;
}

static inline bc_item_t *
bc_seg_item(const bc_segs_t *segs, uint32_t ref)
{
    if (ref & BC_SEG_REF_LARGE) {
        uint32_t n = ref & ~BC_SEG_REF_LARGE;
        bc_seg_t *s = (bc_seg_t *)segs->large_dir[n >> 12][n & 4095u];
        return (bc_item_t *)s->base;
    }
    return (bc_item_t *)(segs->arena + ((uintptr_t)(ref - 1u) << segs->ref_shift));
}

/* ---- pins ---- */

static inline void
bc_seg_pin(bc_seg_t *seg)
{
    atomic_fetch_add_explicit(&seg->pins, 1, memory_order_relaxed);
}

/* Drops a pin; frees the segment if it was the last one of an evicted
 * segment (takes the lock then). */
void bc_seg_unpin(bc_segs_t *segs, bc_seg_t *seg);

/* True while nobody pins the segment (acquire: what they read is done). */
static inline bool
bc_seg_unpinned(bc_seg_t *seg)
{
    return (atomic_load_explicit(&seg->pins, memory_order_acquire) & BC_SEG_PIN_COUNT) == 0;
}


/* ---- allocation ---- */

/* Tries to add n bytes to *mem_used without passing the limit. */
bool bc_seg_try_charge(bc_segs_t *segs, uint64_t n);

/*
 * Appends `size` bytes to queue q's open segment, opening a new one when
 * it is full: a free segment, else a new backed one if the budget allows;
 * for_evictor may also take the last free segment (kept for eviction,
 * which must copy before it frees).  Returns the room, its segment pinned
 * in *seg, or NULL when there is no room without evicting.
 */
char *do_segs_append(bc_segs_t *segs, unsigned q, uint32_t size, bool for_evictor,
                     bc_seg_t **seg);

/*
 * A block for a large item of `size` bytes (malloc'd; the caller has
 * charged bc_seg_large_estimate(size) and this corrects the charge).
 * The block's segment is pinned and FREEABLE until linked.  Returns NULL
 * when out of memory or numbers.  Takes the lock for the number.
 */
bc_seg_t *bc_seg_large_new(bc_segs_t *segs, uint32_t size);
uint64_t bc_seg_large_estimate(uint32_t size);
/* A large item was linked: its segment joins queue q's head. */
void do_segs_large_link(bc_segs_t *segs, bc_seg_t *seg, unsigned q);

/*
 * An item of seg is about to be linked (shard lock held): counts it, or
 * returns false when the segment has retired -- the item must be copied
 * to another segment first.
 */
static inline bool
bc_seg_link_try(bc_seg_t *seg)
{
    uint32_t old = atomic_fetch_add_explicit(&seg->live, 1, memory_order_acq_rel);
    if (!(old & BC_SEG_LIVE_RETIRED)) return true;
    atomic_fetch_sub_explicit(&seg->live, 1, memory_order_relaxed);
    return false;
}

/* An item of seg was unlinked: true when it was the last (then call
 * do_segs_reap with the lock). */
static inline bool
bc_seg_unlinked(bc_seg_t *seg)
{
    uint32_t old = atomic_fetch_sub_explicit(&seg->live, 1, memory_order_acq_rel);
    return (old & BC_SEG_LIVE_COUNT) == 1;
}

/* With the lock: a QUEUED or OPEN segment with no live item retires and
 * is freed (now, or by its last unpin). */
void do_segs_reap(bc_segs_t *segs, bc_seg_t *seg);
/* With the lock: the item of `size` bytes at p will never be linked; if it
 * is the last thing appended to its open segment, its room is taken back
 * (and an open segment left empty is freed by its last unpin). */
void do_segs_unappend(bc_segs_t *segs, bc_seg_t *seg, const char *p, uint32_t size);

/* ---- eviction ---- */

/* The queues as the policy sees them. */
void do_segs_queues(const bc_segs_t *segs, bc_evict_queues_t *q);
/* Takes queue q's tail out of it (closing it if it is the open one), marks
 * it EVICTING and its live count RETIRED -- or the segment after it when
 * pinned segments already drain too much memory (seg.c).  NULL when the
 * queue has nothing to take. */
bc_seg_t *do_segs_take_tail(bc_segs_t *segs, unsigned q);
/*
 * A sparse segment to compact (fewer than 3/4 of its items still live),
 * out of its queue and marked like an eviction victim, or NULL when none
 * is found among the next `scan` segments.  Only while eviction could
 * still copy (two segments available).
 */
bc_seg_t *do_segs_take_sparse(bc_segs_t *segs, uint32_t scan);
/* A large victim that was kept: back to queue q's head. */
void do_segs_requeue(bc_segs_t *segs, bc_seg_t *seg, unsigned q);
/* A victim whose items are all gone: freed now, or when its last pin goes. */
void do_segs_evicted(bc_segs_t *segs, bc_seg_t *seg);
/* Gives one free segment's memory back to the system.  False if none. */
bool do_segs_release_one(bc_segs_t *segs);

#endif
