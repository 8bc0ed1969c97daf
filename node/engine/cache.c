/*
 * cache.c -- the storage engine: per-bucket hash tables, shards, eviction
 * of segments, expiry and memcached's store semantics, on the memory of
 * seg.c.
 *
 * ONE FILE, about 1900 lines, on purpose: every function here works on the
 * same private tables under the one LOCKING RULE below, and most of them
 * are do_* helpers of one another.  Split, the rule and those helpers
 * would have to be shared through a header, and a lock's use could no
 * longer be checked against its rule in one place.  The pieces that need
 * no shard lock live apart: the item (item.h), the memory (seg.c), the
 * eviction policies (evict/), item frames (item_frame.c) and change
 * trackers (tap.c).
 *
 * HOW IT IS LAID OUT
 *
 *   key --murmur3--> hash --+-- hash % nbuckets  = bucket  (which table)
 *                           '-- hash / nbuckets  = q       (slot in table)
 *
 *   buckets[nbuckets]                        shards[nshards]
 *   +----------------------------+           +-------------+
 *   | slots[] -> ref -> ref ...  |  bucket   | mutex       |
 *   | count, bytes, evictions,   | --------> | counters    |
 *   | expirations                |           |             |
 *   +----------------------------+  % nshards+-------------+
 *
 *   segs (seg_int.h): the arena of segments the items live in, the policy's
 *   queues of segments, large-item blocks, the byte budget.
 *
 *   Each bucket owns a chained hash table: an array of 32-bit item
 *   references (seg_int.h, REFERENCES), the chain running through each item's
 *   hnext.  It doubles when its load passes 2 and halves below 1/8, so a
 *   bucket's memory follows its item count (2 to 4 bytes per item) and a
 *   bucket can be walked, serialised or dropped in time proportional to its
 *   own size, wherever its items lie in memory.  The bucket index uses
 *   hash % nbuckets, so inside one bucket all hashes agree on those bits;
 *   the slot therefore comes from the quotient hash / nbuckets, which
 *   carries the remaining bits.  Items do not keep their hash: the rare
 *   paths that need it (a table resize, eviction) hash the key again.
 *
 * WHY SEGMENTS (and not malloc, nor memcached's slabs)
 *   With an item per malloc block, the allocator's header and rounding and
 *   the eviction policy's list pointers cost about 75 bytes per item, and
 *   glibc's heap, fragmented by a shift in value sizes, held RSS far above
 *   the limit until a trim.  memcached's slabs cut the per-item header but
 *   round every item up to its size class (up to 25% lost) and need a page
 *   mover to shift memory between classes, which must wait for each busy
 *   item of the page.  Segcache (Yang et al., NSDI '21) shows the third
 *   way taken here: append items of every size to large segments, keep the
 *   per-item metadata to a few bytes, and reclaim a whole segment at a
 *   time, deciding per item whether it is dropped or copied forward.  Its
 *   own eviction (merging the oldest segments) is one policy of that shape;
 *   S3-FIFO, CLOCK and LFU are others (evict/evict.h), which is how the
 *   selectable policies survive.  What we add to segcache: buckets (a
 *   table per bucket, so migration can walk or drop one), memcached's
 *   exact CAS/flags/TTL semantics, and pins that outlive the eviction of a
 *   segment (zero-copy replies to slow clients) instead of waiting for
 *   them.
 *
 * LOCKING RULE
 *   shard->lock protects: the tables of the shard's buckets (slots, count,
 *   bytes), the shard's counters, and, for every item linked in the shard
 *   (or being linked into it), hnext/iflags/pfreq/atime/exptime and (while
 *   linked) cas.  No function holds two shard locks.  do_* functions
 *   require the caller to hold the lock of the shard they work on.
 *
 *   segs.lock (seg_int.h) protects the segments, their queues and the policy
 *   instance; it may be taken with a shard lock held, never the other way
 *   round.  evict_lock makes eviction one segment at a time and is taken
 *   before either.  scan_lock (active expiry cursor) is taken before a
 *   shard lock, never after.  Everything else is atomic: mem_used, the CAS
 *   counter, the flush marks, segment pins and live counts.
 *
 *   Order: evict_lock / scan_lock -> shard lock -> segs.lock.
 *
 * ITEM LIFETIME
 *   An item is written into a segment by bc_item_alloc (header and key
 *   under segs.lock, so that eviction can always walk a segment), filled
 *   by its writer with no lock, and linked by a store.  Readers and the
 *   writer hold it by pinning its segment (seg_int.h, PINS): the pin is taken
 *   under the shard lock while the item is linked, so a pinned item's
 *   memory stays valid -- unchanged -- until released, whatever happens
 *   to the key meanwhile.  An item's value is written in place only by
 *   incr/decr, and only when nobody pins its segment.
 *
 *   Eviction takes the tail segment of a queue the policy picks and, item
 *   by item under the item's shard lock, drops it or copies it to the head
 *   of a queue; the copy takes the original's place in its bucket chain.
 *   Then the segment is freed, or freed by its last unpin.  A writer whose
 *   unlinked item sits in a segment eviction has begun (RETIRED) copies it
 *   to a fresh place before linking it (cache_store): checked under the
 *   shard lock, which eviction also takes for every item it walks, so
 *   either the store sees RETIRED or eviction sees the item linked.
 *
 * MEMORY ACCOUNTING
 *   mem_used counts what seg_int.h's BUDGET says: backed segments, large
 *   blocks, bucket slot arrays, policy state and the engine's own fixed
 *   arrays.  Allocating an item takes room in an open segment, or backs a
 *   segment if the budget allows, or else evicts a segment and tries again;
 *   it fails with BC_ENOMEM only when nothing anywhere can be evicted.  Slot
 *   arrays grow under a shard lock without a reservation; the operation
 *   that grew them gives segments back (or evicts) right after releasing
 *   the lock.
 *
 * EXPIRY AND FLUSH
 *   An item is dead when exptime != 0 && exptime <= now (memcached's rule)
 *   or when flush_all invalidated it.  Dead items are unlinked lazily by
 *   whatever lookup meets them, by eviction, and by bc_cache_expire_scan,
 *   which walks buckets incrementally from a saved cursor.  A segment
 *   whose items are all unlinked and that nobody pins is freed at once, so
 *   a mass expiry gives memory back without waiting for eviction.
 *
 *   flush_all is decided by CAS alone: an item is flushed when its CAS is
 *   below oldest_cas.  CAS values grow with every store, so "below the mark"
 *   means exactly "stored before the flush took effect", with no clock
 *   resolution problem (memcached 1.6 also uses a CAS mark for this).  An
 *   immediate flush raises oldest_cas to a fresh CAS value.  A delayed one
 *   (flush_all N) only records its due time, oldest_live = when - 1 as
 *   memcached computes it; the first operation that reads the clock at or
 *   after that second turns it into a CAS mark (cache_clock ->
 *   cache_flush_due), before it stores or looks up anything.  So items
 *   stored before the due time die, items stored after live -- memcached
 *   also kills items stored during the due second itself, which we do not.
 *   oldest_cas only ever rises: a later delayed flush cannot bring back an
 *   item that an earlier flush killed.
 *
 * COUNTERS
 *   An eviction and an expiry of an item of bucket b are each counted in
 *   exactly one place, in the shard's totals and in the bucket's
 *   (bc_bucket_stats_t): do_count_evicted and do_count_expired.  Requests
 *   (hits, misses, stores, deletes) are counted per thread and bucket
 *   outside any lock (counters.h): cache_get, bc_cache_store,
 *   bc_cache_delete, bc_cache_arith.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_hash.h"
#include "bc_log.h"
#include "bc_mcproto.h"
#include "engine/cache.h"
#include "engine/counters.h"
#include "engine/evict/evict.h"
#include "engine/seg_int.h"

#define CACHE_DEFAULT_NSHARDS      64u
#define CACHE_DEFAULT_MAX_ITEM     (1024u * 1024u)
#define CACHE_TABLE_MIN_SLOTS      4u
#define CACHE_TABLE_MAX_LOAD       2u        /* items per slot before doubling */
#define CACHE_RESIZE_PREFETCH      8u        /* chains fetched ahead by a table resize */
#define CACHE_SCAN_AHEAD           8u        /* chains fetched ahead by a bucket scan */
/* Segment descriptors one compaction step looks at, at most (the search
 * goes on from there next time): bounds the time it holds segs.lock. */
#define CACHE_COMPACT_SCAN         4096u
/* append/prepend/incr retries when the item changes while unlocked. */
#define CACHE_RETRIES              64
/* Consecutive evicted segments that freed almost nothing (every item was
 * kept) after which the next one drops everything: bounds the work one
 * allocation can be made to wait for. */
#define CACHE_EVICT_MAX_STREAK     16u

/* memcached 1.6 counts an item as its 48-byte header + 8-byte CAS + key +
 * NUL + value with CRLF; we size-check the same way so the -I limit lets
 * exactly the same values through. */
#define CACHE_MC_ITEM_HEADER       56u

typedef struct cache_bucket {
    uint32_t *slots;            /* item references; NULL while the bucket has no items */
    uint32_t mask;              /* nslots - 1 */
    uint32_t count;             /* linked items */
    uint64_t bytes;             /* charged bytes of those items */
    uint64_t evictions;         /* live items evicted from it */
    uint64_t expirations;       /* expired items removed from it (not flushed ones) */
    _Atomic bool tapped;        /* report changes to the tap (any thread) */
} cache_bucket_t;

typedef struct cache_shard {
    _Alignas(64) pthread_mutex_t lock;   /* see LOCKING RULE */
    _Atomic uint64_t curr_items;         /* written under lock, read by eviction without */
    uint64_t total_items;
    uint64_t data_bytes;
    uint64_t evictions;
    uint64_t expired_unfetched;
    uint64_t evicted_unfetched;
    uint64_t reclaimed;
    uint64_t expired_active;
    uint64_t flushed;
} cache_shard_t;

struct bc_cache {
    size_t mem_limit;                 /* atomic: bc_cache_set_mem_limit */
    size_t mem_limit_max;             /* the start limit: what segs was sized for */
    uint64_t mem_floor;               /* the engine's own memory at start */
    size_t max_item_size;
    uint32_t nbuckets;
    uint32_t nshards;
    uint32_t shard_mask;
    uint32_t (*now)(void);
    /* memcached's process_started (its start - 62 s): an absolute expiry
     * at or before it counts as "1", already expired (realtime()). */
    uint32_t started;
    const bc_evict_ops_t *policy;
    void *policy_state;               /* segs.lock */
    bc_evict_env_t env;

    _Atomic uint64_t mem_used;
    _Atomic uint64_t cas_last;        /* last CAS handed out */
    _Atomic uint32_t oldest_live;     /* flush mark (0 = none) */
    _Atomic uint64_t oldest_cas;      /* items with a smaller CAS are flushed */

    pthread_mutex_t evict_lock;       /* one eviction at a time; guards the streak */
    uint32_t evict_streak;            /* evictions in a row that freed almost nothing */
    size_t preallocated;

    pthread_mutex_t scan_lock;        /* guards scan_bucket/scan_slot */
    uint32_t scan_bucket;
    uint32_t scan_slot;

    cache_bucket_t *buckets;
    cache_shard_t *shards;
    bc_segs_t segs;

    bc_cache_observer_fn observer;    /* set before use; NULL = none */
    void *observer_ctx;
    _Atomic(bc_cache_tap_fn) tap;     /* NULL = none; published after tap_ctx */
    void *tap_ctx;
    _Atomic uint64_t flushes;         /* bc_cache_flush_count */
    bc_counters_t *counters;          /* per-thread request counters (counters.h) */
};

/* Reports a change to the observer and, for a tapped bucket, to the tap
 * (see cache.h).  bucket is the change's bucket index. */
static inline void
cache_notify(const bc_cache_t *cache, bc_cache_event_type_t type, const bc_item_t *it,
             const char *key, size_t nkey, uint32_t num, const cache_bucket_t *b)
{
    bc_cache_event_t ev = {type, it, key, nkey, num, num, 0};
    if (cache->observer != NULL) cache->observer(cache->observer_ctx, &ev);
    if (atomic_load_explicit(&b->tapped, memory_order_relaxed)) {
        bc_cache_tap_fn tap = atomic_load_explicit(&((bc_cache_t *)cache)->tap,
                                                   memory_order_acquire);
        if (tap != NULL) tap(cache->tap_ctx, (uint32_t)(b - cache->buckets), &ev);
    }
}

/* A STORE or TOUCH of it, an item of bucket b. */
static inline void
cache_notify_item(const bc_cache_t *cache, bc_cache_event_type_t type, const bc_item_t *it,
                  const cache_bucket_t *b)
{
    cache_notify(cache, type, it, NULL, 0, 0, b);
}

/* Where a hash lives. */
typedef struct cache_loc {
    cache_shard_t *shard;
    cache_bucket_t *bucket;
    uint32_t q;                 /* hash / nbuckets: picks the slot */
} cache_loc_t;

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */
/* ------------------------------------------------------------------------ */

/* *a = max(*a, v), atomically; never lowers it. */
static inline void
atomic_max_u64(_Atomic uint64_t *a, uint64_t v)
{
    uint64_t cur = atomic_load(a);
    while (cur < v && !atomic_compare_exchange_weak(a, &cur, v)) {
    }
}

/* Raises the flush mark to a fresh CAS value: everything stored so far is
 * flushed.  Never lowers it. */
static uint64_t
cache_flush_mark(bc_cache_t *cache)
{
    uint64_t mark = atomic_fetch_add(&cache->cas_last, 1) + 1;
    atomic_max_u64(&cache->oldest_cas, mark);
    return mark;
}

/*
 * A delayed flush_all that came due: mark first, then clear the due time.
 * Every thread that still sees the due time marks on its own before going
 * on, and a thread that sees it cleared (seq_cst) also sees the raised
 * mark, so no store after the due time can land below the mark.
 */
static inline void
cache_flush_due(bc_cache_t *cache, uint32_t now)
{
    uint32_t due = atomic_load(&cache->oldest_live);
    if (due == 0 || due > now) return;
    (void)cache_flush_mark(cache);
    (void)atomic_compare_exchange_strong(&cache->oldest_live, &due, 0);
}

/* The clock every operation starts with (it also applies a due flush). */
static inline uint32_t
cache_clock(const bc_cache_t *cache)
{
    uint32_t now = cache->now != NULL ? cache->now() : (uint32_t)time(NULL);
    cache_flush_due((bc_cache_t *)cache, now);
    return now;
}

static inline void
cache_locate(const bc_cache_t *cache, uint32_t hash, cache_loc_t *loc)
{
    uint32_t q = hash / cache->nbuckets;
    uint32_t bucket = hash - q * cache->nbuckets;
    loc->bucket = &cache->buckets[bucket];
    loc->shard = &cache->shards[bucket & cache->shard_mask];
    loc->q = q;
}

static inline void
cache_mem_add(bc_cache_t *cache, uint64_t n)
{
    atomic_fetch_add_explicit(&cache->mem_used, n, memory_order_relaxed);
}

static inline void
cache_mem_sub(bc_cache_t *cache, uint64_t n)
{
    atomic_fetch_sub_explicit(&cache->mem_used, n, memory_order_relaxed);
}

/* mem_limit may be changed at run time (bc_cache_set_mem_limit). */
static inline size_t
cache_mem_limit(const bc_cache_t *cache)
{
    return __atomic_load_n(&cache->mem_limit, __ATOMIC_RELAXED);
}

static inline bool
cache_over_limit(bc_cache_t *cache)
{
    return atomic_load_explicit(&cache->mem_used, memory_order_relaxed) > cache_mem_limit(cache);
}

static inline uint32_t
item_hash(const bc_item_t *it)
{
    return bc_hash_key(bc_item_key(it), bc_item_nkey(it));
}

/* The hash of an item its writer holds, not linked yet: bc_item_alloc
 * keeps the caller's hash in hnext until the item is linked (a store
 * needs it and the chain link is unused until then). */
static inline uint32_t
item_unlinked_hash(const bc_item_t *it)
{
    return it->hnext;
}

static inline bool
item_key_eq(const bc_item_t *it, const char *key, size_t nkey)
{
    return bc_item_nkey(it) == nkey && memcmp(bc_item_key(it), key, nkey) == 0;
}

static inline bc_item_t *
cache_item(const bc_cache_t *cache, uint32_t ref)
{
    return bc_seg_item(&cache->segs, ref);
}

static inline bc_seg_t *
item_seg(const bc_cache_t *cache, const bc_item_t *it)
{
    return bc_seg_of(&cache->segs, it);
}

static inline uint64_t
item_charge(const bc_cache_t *cache, const bc_item_t *it)
{
    return bc_seg_charge_of(&cache->segs, it);
}

/* key + value bytes (the data_bytes statistic) */
static inline uint64_t
item_data_bytes(const bc_item_t *it)
{
    return bc_item_nkey(it) + (uint64_t)bc_item_value_len(it);
}

/* flush_all check; see EXPIRY AND FLUSH above. */
static inline bool
item_is_flushed(const bc_cache_t *cache, const bc_item_t *it)
{
    /* a due delayed flush was turned into a mark by cache_clock */
    return it->cas < atomic_load_explicit(&((bc_cache_t *)cache)->oldest_cas,
                                          memory_order_acquire);
}

static inline bool
item_is_expired(const bc_item_t *it, uint32_t now)
{
    return it->exptime != 0 && it->exptime <= now;
}

static inline bool
item_is_dead(const bc_cache_t *cache, const bc_item_t *it, uint32_t now)
{
    return item_is_expired(it, now) || item_is_flushed(cache, it);
}

/* Asks the CPU to start loading an item's header (0 is fine). */
static inline void
cache_prefetch(const bc_cache_t *cache, uint32_t ref)
{
    if (ref != 0) __builtin_prefetch(cache_item(cache, ref));
}

/* ------------------------------------------------------------------------ */
/* counters: an eviction and an expiry of an item of bucket b               */
/* ------------------------------------------------------------------------ */

/* The one place an eviction is counted (shard lock held). */
static inline void
do_count_evicted(const cache_loc_t *loc, const bc_item_t *it)
{
    loc->shard->evictions++;
    loc->bucket->evictions++;
    if (!(it->iflags & BC_ITEM_FETCHED)) loc->shard->evicted_unfetched++;
}

/* The one place an expiry (TTL passed, or flushed) is counted; active:
 * found by bc_cache_expire_scan (shard lock held). */
static inline void
do_count_expired(const bc_cache_t *cache, const cache_loc_t *loc, const bc_item_t *it,
                 bool active)
{
    cache_shard_t *s = loc->shard;
    if (item_is_flushed(cache, it)) {
        s->flushed++;
    } else {
        loc->bucket->expirations++;
        if (!(it->iflags & BC_ITEM_FETCHED)) s->expired_unfetched++;
    }
    s->reclaimed++;
    if (active) s->expired_active++;
}

/* ------------------------------------------------------------------------ */
/* bucket tables (shard lock held)                                          */
/* ------------------------------------------------------------------------ */

static inline uint32_t
table_slot(const bc_cache_t *cache, const cache_bucket_t *b, uint32_t hash)
{
    return (hash / cache->nbuckets) & b->mask;
}

/* Rebuilds the bucket's table with nslots slots (a power of two). */
static bool
do_table_resize(bc_cache_t *cache, cache_bucket_t *b, uint32_t nslots)
{
    uint32_t *slots = calloc(nslots, sizeof(*slots));
    if (slots == NULL) return false;
    uint32_t old_mask = b->mask;
    uint32_t *old = b->slots;
    b->slots = slots;
    b->mask = nslots - 1;
    if (old != NULL) {
        for (uint32_t i = 0; i <= old_mask; i++) {
            /* every item is read for its key: fetch a few chains ahead */
            if (i + CACHE_RESIZE_PREFETCH <= old_mask) {
                cache_prefetch(cache, old[i + CACHE_RESIZE_PREFETCH]);
            }
            /* Chains keep their order (oldest first, see do_item_link): an
             * old chain's items go to the tails of at most two new ones
             * (i and i + old size when doubling; when halving, the new
             * chain may hold the items of an earlier old chain). */
            uint32_t tidx[2] = {0, 0}, nt = 0;
            uint32_t *tail[2] = {NULL, NULL};
            uint32_t ref = old[i];
            while (ref != 0) {
                bc_item_t *it = cache_item(cache, ref);
                uint32_t next = it->hnext;
                cache_prefetch(cache, next);
                uint32_t idx = table_slot(cache, b, item_hash(it));
                uint32_t t = 0;
                while (t < nt && tidx[t] != idx) t++;
                if (t == nt) {
                    uint32_t *pp = &slots[idx];
                    while (*pp != 0) pp = &cache_item(cache, *pp)->hnext;
                    if (nt < 2) nt++;
                    else t = 1;   /* cannot happen with a power-of-two resize */
                    tidx[t] = idx;
                    tail[t] = pp;
                }
                *tail[t] = ref;
                it->hnext = 0;
                tail[t] = &it->hnext;
                ref = next;
            }
        }
        cache_mem_sub(cache, bc__evict_mem_charge(old));
        free(old);
    }
    cache_mem_add(cache, bc__evict_mem_charge(slots));
    return true;
}

/* Makes room for one more item: creates or doubles the table.  Failing to
 * grow is harmless (chains just get longer) unless there is no table. */
static bool
do_table_reserve(bc_cache_t *cache, cache_bucket_t *b)
{
    if (b->slots == NULL) return do_table_resize(cache, b, CACHE_TABLE_MIN_SLOTS);
    uint64_t nslots = (uint64_t)b->mask + 1;
    if ((uint64_t)b->count + 1 > nslots * CACHE_TABLE_MAX_LOAD && nslots < (1u << 30)) {
        (void)do_table_resize(cache, b, (uint32_t)nslots * 2);
    }
    return true;
}

/* Frees an empty table, halves a sparse one (load < 1/8).  Never called
 * while a caller is walking the table. */
static void
do_table_shrink(bc_cache_t *cache, cache_bucket_t *b)
{
    if (b->slots == NULL) return;
    if (b->count == 0) {
        cache_mem_sub(cache, bc__evict_mem_charge(b->slots));
        free(b->slots);
        b->slots = NULL;
        b->mask = 0;
        return;
    }
    uint32_t nslots = b->mask + 1;
    if (nslots > CACHE_TABLE_MIN_SLOTS && (uint64_t)b->count * 8 < nslots) {
        (void)do_table_resize(cache, b, nslots / 2);
    }
}

static bc_item_t *
do_table_find(const bc_cache_t *cache, const cache_loc_t *loc, const char *key, size_t nkey)
{
    const cache_bucket_t *b = loc->bucket;
    if (b->slots == NULL) return NULL;
    for (uint32_t ref = b->slots[loc->q & b->mask]; ref != 0;) {
        bc_item_t *it = cache_item(cache, ref);
        if (item_key_eq(it, key, nkey)) return it;
        ref = it->hnext;
    }
    return NULL;
}

/* The reference that points at it (a slot or an hnext). */
static uint32_t *
do_table_ref(const bc_cache_t *cache, cache_bucket_t *b, const bc_item_t *it, uint32_t hash)
{
    uint32_t want = bc_seg_ref(&cache->segs, it);
    uint32_t *pp = &b->slots[table_slot(cache, b, hash)];
    while (*pp != want) pp = &cache_item(cache, *pp)->hnext;
    return pp;
}

/* ------------------------------------------------------------------------ */
/* link / unlink (shard lock held)                                          */
/* ------------------------------------------------------------------------ */

/* it left its chain: the segment counts one live item less (and may be
 * freed, if that was its last and nobody pins it). */
static void
do_item_gone(bc_cache_t *cache, bc_item_t *it)
{
    it->iflags &= (uint8_t)~BC_ITEM_LINKED;
    bc_seg_t *seg = item_seg(cache, it);
    if (bc_seg_unlinked(seg)) {
        pthread_mutex_lock(&cache->segs.lock);
        do_segs_reap(&cache->segs, seg);
        pthread_mutex_unlock(&cache->segs.lock);
    }
}

/* it is in a chain now (its segment counted it: bc_seg_link_try); a
 * large one joins its queue. */
static void
do_item_joined(bc_cache_t *cache, bc_item_t *it)
{
    it->iflags |= BC_ITEM_LINKED;
    bc_seg_t *seg = item_seg(cache, it);
    if (seg->large && seg->state == BC_SEG_OPEN) {
        pthread_mutex_lock(&cache->segs.lock);
        do_segs_large_link(&cache->segs, seg, seg->queue);
        pthread_mutex_unlock(&cache->segs.lock);
    }
}

static inline void
shard_items_add(cache_shard_t *s, int64_t n)
{
    atomic_store_explicit(&s->curr_items,
                          atomic_load_explicit(&s->curr_items, memory_order_relaxed) +
                              (uint64_t)n,
                          memory_order_relaxed);
}

/* Links a new item, counted by its segment already (bc_seg_link_try).
 * Returns false (nothing changed) only when the bucket has no table and
 * not even the smallest one can be allocated. */
static bool
do_item_link(bc_cache_t *cache, const cache_loc_t *loc, bc_item_t *it, uint32_t now)
{
    cache_bucket_t *b = loc->bucket;
    cache_shard_t *s = loc->shard;

    if (!do_table_reserve(cache, b)) return false;
    it->cas = atomic_fetch_add_explicit(&cache->cas_last, 1, memory_order_relaxed) + 1;
    /* At the chain's tail: chains run oldest first, so eviction (which
     * takes the oldest) unlinks near the head, and an item that stays --
     * a hot one -- is not pushed back by every newcomer.  The lookup that
     * came before this link has just walked the chain: its lines are in
     * the CPU cache. */
    uint32_t *pp = &b->slots[loc->q & b->mask];
    while (*pp != 0) pp = &cache_item(cache, *pp)->hnext;
    it->hnext = 0;
    *pp = bc_seg_ref(&cache->segs, it);
    b->count++;
    b->bytes += item_charge(cache, it);
    shard_items_add(s, 1);
    s->total_items++;
    s->data_bytes += item_data_bytes(it);
    cache->policy->on_link(it, now);
    it->atime = bc__evict_atime(now);
    do_item_joined(cache, it);
    return true;
}

/* Takes a linked item out of its table.  hash: its key's. */
static void
do_item_unlink(bc_cache_t *cache, const cache_loc_t *loc, bc_item_t *it, uint32_t hash)
{
    cache_bucket_t *b = loc->bucket;
    cache_shard_t *s = loc->shard;

    uint32_t *pp = do_table_ref(cache, b, it, hash);
    *pp = it->hnext;
    it->hnext = 0;
    b->count--;
    b->bytes -= item_charge(cache, it);
    shard_items_add(s, -1);
    s->data_bytes -= item_data_bytes(it);
    do_item_gone(cache, it);
}

/* new_it (unlinked, counted by its segment already) replaces old_it in its
 * chain. */
static void
do_item_replace(bc_cache_t *cache, const cache_loc_t *loc, bc_item_t *old_it,
                bc_item_t *new_it, uint32_t hash, uint32_t now)
{
    cache_bucket_t *b = loc->bucket;
    cache_shard_t *s = loc->shard;

    uint32_t *pp = do_table_ref(cache, b, old_it, hash);
    new_it->hnext = old_it->hnext;
    *pp = bc_seg_ref(&cache->segs, new_it);
    old_it->hnext = 0;
    new_it->cas = atomic_fetch_add_explicit(&cache->cas_last, 1, memory_order_relaxed) + 1;
    cache->policy->on_replace(old_it, new_it, now);
    new_it->atime = bc__evict_atime(now);
    b->bytes = b->bytes - item_charge(cache, old_it) + item_charge(cache, new_it);
    s->total_items++;
    s->data_bytes = s->data_bytes - item_data_bytes(old_it) + item_data_bytes(new_it);
    do_item_joined(cache, new_it);
    do_item_gone(cache, old_it);
}

/* Unlinks a dead (expired or flushed) item and counts it. */
static void
do_item_reclaim(bc_cache_t *cache, const cache_loc_t *loc, bc_item_t *it, uint32_t hash,
                bool active)
{
    do_count_expired(cache, loc, it, active);
    do_item_unlink(cache, loc, it, hash);
}

/*
 * The lookup every operation starts with: returns the live item for the
 * key, or NULL.  A dead item met on the way is reclaimed.
 */
static bc_item_t *
do_item_find_live(bc_cache_t *cache, const cache_loc_t *loc, const char *key, size_t nkey,
                  uint32_t hash, uint32_t now)
{
    bc_item_t *it = do_table_find(cache, loc, key, nkey);
    if (it == NULL) return NULL;
    if (item_is_dead(cache, it, now)) {
        do_item_reclaim(cache, loc, it, hash, false);
        do_table_shrink(cache, loc->bucket);
        return NULL;
    }
    return it;
}

/* ------------------------------------------------------------------------ */
/* eviction                                                                 */
/* ------------------------------------------------------------------------ */

static uint64_t
cache_live_items(const bc_cache_t *cache)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < cache->nshards; i++) {
        n += atomic_load_explicit(&cache->shards[i].curr_items, memory_order_relaxed);
    }
    return n;
}

/*
 * One item of a segment being evicted from queue q: dropped or copied to
 * the head of the queue the policy names -- or, compacting, copied to the
 * head of q as it is.  Returns the bytes copied.  Takes the item's shard
 * lock (and segs.lock inside it).
 */
static uint32_t
cache_evict_item(bc_cache_t *cache, bc_item_t *it, uint32_t size, unsigned q, uint32_t now,
                 bool force, bool compact, bool *requeued)
{
    uint32_t hash = item_hash(it);
    cache_loc_t loc;
    cache_locate(cache, hash, &loc);
    uint32_t copied = 0;

    pthread_mutex_lock(&loc.shard->lock);
    if (!(it->iflags & BC_ITEM_LINKED)) {
        /* dead already, or a writer's item not stored yet: it sees RETIRED */
    } else if (item_is_dead(cache, it, now)) {
        do_item_reclaim(cache, &loc, it, hash, false);
        do_table_shrink(cache, loc.bucket);
    } else {
        bc_seg_t *seg = item_seg(cache, it), *dseg = NULL;
        char *dst = NULL;
        pthread_mutex_lock(&cache->segs.lock);
        int verdict = compact ? (int)q
                              : cache->policy->on_evict(cache->policy_state, it, q, hash, now,
                                                        force);
        if (verdict >= 0 && seg->large) {
            do_segs_requeue(&cache->segs, seg, (unsigned)verdict);
            *requeued = true;
        } else if (verdict >= 0) {
            dst = do_segs_append(&cache->segs, (unsigned)verdict, size, true, &dseg);
            if (dst != NULL) cache->segs.moved_items++;
        }
        pthread_mutex_unlock(&cache->segs.lock);
        if (dst != NULL && !bc_seg_link_try(dseg)) {
            /* the open segment closed and retired meanwhile (all its items
             * gone): no place for the copy after all */
            bc_seg_unpin(&cache->segs, dseg);
            dst = NULL;
        }
        if (*requeued) {
            /* the large item stays where it is */
        } else if (dst != NULL) {
            /* the copy takes the original's place; readers keep the original */
            bc_item_t *nit = (bc_item_t *)dst;
            memcpy(nit, it, size);
            uint32_t *pp = do_table_ref(cache, loc.bucket, it, hash);
            *pp = bc_seg_ref(&cache->segs, nit);
            it->hnext = 0;
            do_item_gone(cache, it);
            bc_seg_unpin(&cache->segs, dseg);
            copied = size;
        } else {
            do_count_evicted(&loc, it);
            do_item_unlink(cache, &loc, it, hash);
            do_table_shrink(cache, loc.bucket);
        }
    }
    pthread_mutex_unlock(&loc.shard->lock);
    return copied;
}

/*
 * Evicts one segment: the tail of the queue the policy picks.  Returns
 * false when there is nothing to evict.  Takes evict_lock, and the shard
 * lock of each item in turn.
 */
static bool
cache_evict(bc_cache_t *cache)
{
    uint32_t now = cache_clock(cache);
    bc_segs_t *segs = &cache->segs;

    pthread_mutex_lock(&cache->evict_lock);
    bc_evict_queues_t qs;
    uint64_t items = cache_live_items(cache);
    pthread_mutex_lock(&segs->lock);
    do_segs_queues(segs, &qs);
    qs.items = items;
    bool any = false;
    for (unsigned i = 0; i < segs->nqueues; i++) any |= qs.evictable[i];
    bc_seg_t *seg = NULL;
    unsigned q = 0;
    if (any) {
        q = cache->policy->pick_queue(cache->policy_state, &qs);
        if (q >= segs->nqueues || !qs.evictable[q]) {
            for (q = 0; !qs.evictable[q]; q++) {
            }
        }
        seg = do_segs_take_tail(segs, q);
        /* that queue's tail is all pinned: any other */
        for (unsigned i = 0; seg == NULL && i < segs->nqueues; i++) {
            if (i != q && qs.evictable[i]) seg = do_segs_take_tail(segs, q = i);
        }
    }
    pthread_mutex_unlock(&segs->lock);
    if (seg == NULL) {
        pthread_mutex_unlock(&cache->evict_lock);
        return false;
    }

    bool force = cache->evict_streak >= CACHE_EVICT_MAX_STREAK;
    bool requeued = false;
    uint64_t total, kept = 0;
    if (seg->large) {
        total = seg->charge;
        (void)cache_evict_item(cache, (bc_item_t *)seg->base, 0, q, now, force, false,
                               &requeued);
        if (requeued) kept = total;
    } else {
        total = seg->used;
        for (uint32_t off = 0; off < seg->used;) {
            bc_item_t *it = (bc_item_t *)(seg->base + off);
            uint32_t size = bc_seg_item_size(segs, bc_item_nkey(it), bc_item_nbytes(it),
                                              bc_item_has_flags(it));
            kept += cache_evict_item(cache, it, size, q, now, force, false, &requeued);
            off += size;
        }
    }
    /* Almost nothing freed: every item was kept.  The policy's counts make
     * sure that does not last; the streak makes sure it does not last long. */
    if (total > 0 && (total - kept) * 8 < total) {
        cache->evict_streak++;
    } else {
        cache->evict_streak = 0;
    }
    pthread_mutex_lock(&segs->lock);
    if (!requeued) do_segs_evicted(segs, seg);
    /* a segment borrowed for the copies (seg_int.h, segs_take) goes back */
    while (cache_over_limit(cache) && do_segs_release_one(segs)) {
    }
    pthread_mutex_unlock(&segs->lock);
    pthread_mutex_unlock(&cache->evict_lock);
    return true;
}

uint32_t
bc_cache_compact(bc_cache_t *cache, uint32_t max_segments)
{
    bc_segs_t *segs = &cache->segs;
    uint32_t done = 0;
    while (done < max_segments) {
        uint32_t now = cache_clock(cache);
        pthread_mutex_lock(&cache->evict_lock);
        pthread_mutex_lock(&segs->lock);
        bc_seg_t *seg = do_segs_take_sparse(segs, CACHE_COMPACT_SCAN);
        pthread_mutex_unlock(&segs->lock);
        if (seg == NULL) {
            pthread_mutex_unlock(&cache->evict_lock);
            break;
        }
        bool requeued = false;
        for (uint32_t off = 0; off < seg->used;) {
            bc_item_t *it = (bc_item_t *)(seg->base + off);
            uint32_t size = bc_seg_item_size(segs, bc_item_nkey(it), bc_item_nbytes(it),
                                              bc_item_has_flags(it));
            (void)cache_evict_item(cache, it, size, seg->queue, now, false, true, &requeued);
            off += size;
        }
        pthread_mutex_lock(&segs->lock);
        segs->compacted_segs++;
        do_segs_evicted(segs, seg);
        pthread_mutex_unlock(&segs->lock);
        pthread_mutex_unlock(&cache->evict_lock);
        done++;
    }
    return done;
}

/*
 * Brings mem_used back under the limit plus `extra` bytes, charging them
 * (reserve) or not: gives free segments back to the system, evicting when
 * none is free.  Returns false when nothing more can be evicted.
 */
static bool
cache_make_room(bc_cache_t *cache, uint64_t extra, bool reserve)
{
    bc_segs_t *segs = &cache->segs;
    for (;;) {
        if (reserve ? bc_seg_try_charge(segs, extra)
                    : atomic_load_explicit(&cache->mem_used, memory_order_relaxed) + extra <=
                          cache_mem_limit(cache)) {
            return true;
        }
        pthread_mutex_lock(&segs->lock);
        bool released = do_segs_release_one(segs);
        pthread_mutex_unlock(&segs->lock);
        if (!released && !cache_evict(cache)) return false;
    }
}

/* After a store grew a table or the policy's state: back under the limit. */
static void
cache_enforce_limit(bc_cache_t *cache)
{
    if (cache_over_limit(cache)) (void)cache_make_room(cache, 0, false);
}

/* ------------------------------------------------------------------------ */
/* lifecycle                                                                */
/* ------------------------------------------------------------------------ */

static void
cache_free_all(bc_cache_t *cache)
{
    if (cache->buckets != NULL) {
        for (uint32_t i = 0; i < cache->nbuckets; i++) free(cache->buckets[i].slots);
        free(cache->buckets);
    }
    if (cache->shards != NULL) {
        for (uint32_t i = 0; i < cache->nshards; i++) {
            pthread_mutex_destroy(&cache->shards[i].lock);
        }
        free(cache->shards);
    }
    if (cache->policy_state != NULL) cache->policy->destroy(cache->policy_state);
    bc_seg_fini(&cache->segs);
    pthread_mutex_destroy(&cache->scan_lock);
    pthread_mutex_destroy(&cache->evict_lock);
    bc_counters_destroy(cache->counters);
    free(cache);
}

bc_status_t
bc_cache_create(const bc_cache_config_t *config, bc_cache_t **out)
{
    if (out == NULL) return BC_EINVAL;
    *out = NULL;
    if (config == NULL || config->mem_limit == 0) return BC_EINVAL;

    uint32_t nbuckets = config->nbuckets ? config->nbuckets : BC_DEFAULT_NBUCKETS;
    uint32_t nshards = config->nshards ? config->nshards : CACHE_DEFAULT_NSHARDS;
    if (nbuckets > BC_MAX_NBUCKETS || (nshards & (nshards - 1)) != 0 || nshards > 4096) {
        log_error("cache: bad geometry (nbuckets %u, nshards %u)", nbuckets, nshards);
        return BC_EINVAL;
    }
    /* More shards than buckets would only leave shards empty. */
    while (nshards > 1 && nshards > nbuckets) nshards /= 2;

    const bc_evict_ops_t *policy = bc_evict_find(config->policy);
    if (policy == NULL) {
        log_error("cache: unknown eviction policy \"%s\" (known: %s)", config->policy,
                  bc_evict_names());
        return BC_EINVAL;
    }

    bc_cache_t *cache = calloc(1, sizeof(*cache));
    if (cache == NULL) return BC_ENOMEM;
    cache->mem_limit = config->mem_limit;
    cache->mem_limit_max = config->mem_limit;
    cache->max_item_size = config->max_item_size ? config->max_item_size
                                                 : CACHE_DEFAULT_MAX_ITEM;
    cache->nbuckets = nbuckets;
    cache->nshards = nshards;
    cache->shard_mask = nshards - 1;
    cache->now = config->now;
    uint32_t t0 = cache->now != NULL ? cache->now() : (uint32_t)time(NULL);
    cache->started = t0 > 62 ? t0 - 62 : 0;
    cache->policy = policy;
    cache->env.mem_used = &cache->mem_used;
    pthread_mutex_init(&cache->scan_lock, NULL);
    pthread_mutex_init(&cache->evict_lock, NULL);

    bc_status_t st = bc_seg_init(&cache->segs, config->mem_limit, config->segment_size,
                                  policy->nqueues, &cache->mem_used);
    if (st != BC_OK) {
        pthread_mutex_destroy(&cache->scan_lock);
        pthread_mutex_destroy(&cache->evict_lock);
        free(cache);
        return st;
    }
    cache->buckets = calloc(nbuckets, sizeof(*cache->buckets));
    cache->counters = bc_counters_create(nbuckets);
    cache->shards = aligned_alloc(_Alignof(cache_shard_t), nshards * sizeof(cache_shard_t));
    cache->policy_state = policy->create(&cache->env);
    if (cache->buckets == NULL || cache->shards == NULL || cache->policy_state == NULL ||
        cache->counters == NULL) {
        if (cache->shards != NULL) {
            free(cache->shards);
            cache->shards = NULL;
        }
        cache_free_all(cache);
        return BC_ENOMEM;
    }
    memset(cache->shards, 0, nshards * sizeof(cache_shard_t));
    cache_mem_add(cache, bc__evict_mem_charge(cache) + bc__evict_mem_charge(cache->buckets) +
                         bc__evict_mem_charge(cache->shards));

    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    /* Critical sections are a few hundred nanoseconds: spin briefly before
     * sleeping (glibc's adaptive mutex). */
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    for (uint32_t i = 0; i < nshards; i++) pthread_mutex_init(&cache->shards[i].lock, &attr);
    pthread_mutexattr_destroy(&attr);

    /* the engine's own memory plus two segments (an open one and the
     * evictor's reserve) must fit */
    if (atomic_load(&cache->mem_used) + 2ull * cache->segs.seg_size > cache_mem_limit(cache)) {
        log_error("cache: memory limit %zu bytes is below the engine's own %llu bytes "
                  "and two %u-byte segments", cache->mem_limit,
                  (unsigned long long)atomic_load(&cache->mem_used), cache->segs.seg_size);
        cache_free_all(cache);
        return BC_EINVAL;
    }
    cache->mem_floor = atomic_load(&cache->mem_used);
    if (config->prealloc) {
        int64_t took_ms = 0;
        cache->preallocated = bc_seg_prealloc(&cache->segs, &took_ms);
        log_info("-L: preallocated %zu MiB in %lld ms", cache->preallocated >> 20,
                 (long long)took_ms);
    }
    *out = cache;
    return BC_OK;
}

void
bc_cache_destroy(bc_cache_t *cache)
{
    if (cache != NULL) cache_free_all(cache);
}

const char *
bc_cache_policy_name(const bc_cache_t *cache)
{
    return cache->policy->name;
}

uint32_t
bc_cache_nbuckets(const bc_cache_t *cache)
{
    return cache->nbuckets;
}

uint32_t
bc_cache_now(const bc_cache_t *cache)
{
    return cache_clock(cache);
}

size_t
bc_cache_max_item_size(const bc_cache_t *cache)
{
    return cache->max_item_size;
}

size_t
bc_cache_preallocated(const bc_cache_t *cache)
{
    return cache->preallocated;
}

size_t
bc_cache_prefault(bc_cache_t *cache, uint64_t ahead)
{
    return bc_seg_prefault_one(&cache->segs, ahead);
}

uint32_t
bc__cache_item_holders(const bc_cache_t *cache, const bc_item_t *it)
{
    return atomic_load(&item_seg(cache, it)->pins) & BC_SEG_PIN_COUNT;
}

/*
 * memcached's realtime(): 0 = never; negative = already expired (1 is a
 * time always in the past); up to 30 days = relative; larger = absolute
 * (clamped to what 32 bits hold), and an absolute time at or before
 * memcached's process_started is 1 as well -- so two such times compare
 * equal, as in memcached (mg's R against a T in the past).
 */
uint32_t
bc_cache_exptime_abs(const bc_cache_t *cache, int64_t exptime)
{
    if (exptime == 0) return 0;
    if (exptime < 0) return 1;
    if (exptime > (int64_t)BC_REALTIME_MAXDELTA) {
        if (exptime <= (int64_t)cache->started) return 1;
        return exptime > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)exptime;
    }
    uint64_t abs = (uint64_t)cache_clock(cache) + (uint64_t)exptime;
    return abs > UINT32_MAX ? UINT32_MAX : (uint32_t)abs;
}

/* ------------------------------------------------------------------------ */
/* reads                                                                    */
/* ------------------------------------------------------------------------ */

/* A read missed the key: the policy may weigh its next write (evict.h). */
static inline void
cache_note_miss(bc_cache_t *cache, uint32_t hash)
{
    if (cache->policy->on_miss != NULL) cache->policy->on_miss(cache->policy_state, hash);
}

/* A hit: the policy's bits, then the fetched mark and the access time as
 * memcached's segmented LRU counts a fetch (do_item_bump): the first marks
 * the item fetched, a later one refreshes its access time (what "la" and
 * mg's l report).  Each written only when it changes, so that two threads
 * reading one hot item do not keep taking its line from each other. */
static inline void
do_item_accessed(bc_cache_t *cache, bc_item_t *it, uint32_t now)
{
    cache->policy->on_access(it, now);
    if (!(it->iflags & BC_ITEM_FETCHED)) {
        it->iflags |= BC_ITEM_FETCHED;
        return;
    }
    uint16_t at = bc__evict_atime(now);
    if (it->atime != at) it->atime = at;
}

/*
 * The one lookup: finds a live item, counts the access (memcached counts a
 * touch as a fetch) and sets its expiry when `touch`.  With `ref`, returns
 * it referenced (its segment pinned); without, the result only says found
 * (non-NULL) and must not be dereferenced.  A read (`ref` or `fn`) counts
 * as a hit or a miss of the calling thread (counters.h); a touch does not.
 */
static bc_item_t *
cache_get(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash, bool touch,
          uint32_t exptime, bool ref, bc_cache_read_fn fn, void *ctx, bool *held)
{
    cache_loc_t loc;
    if (key == NULL || nkey == 0 || nkey > BC_KEY_MAX_LEN) return NULL;
    cache_locate(cache, hash, &loc);
    uint32_t now = cache_clock(cache);

    bool counted = ref || fn != NULL;
    uint32_t value_len = 0;
    pthread_mutex_lock(&loc.shard->lock);
    bc_item_t *it = do_item_find_live(cache, &loc, key, nkey, hash, now);
    if (it != NULL) {
        if (touch) {
            it->exptime = exptime;
            cache_notify_item(cache, BC_CACHE_EV_TOUCH, it, loc.bucket);
        }
        do_item_accessed(cache, it, now);
        value_len = bc_item_value_len(it);   /* it may go once the lock does */
        if (fn != NULL) ref = fn(it, ctx);
        if (ref) bc_seg_pin(item_seg(cache, it));
        if (held != NULL) *held = ref;
    }
    pthread_mutex_unlock(&loc.shard->lock);
    bc_counters_block_t *blk = counted ? bc_counters_mine(cache->counters) : NULL;
    if (blk != NULL) {
        uint32_t bi = (uint32_t)(loc.bucket - cache->buckets);
        if (it != NULL) {
            bc_counters_add(blk, bi, hits, 1);
            bc_counters_add(blk, bi, bytes_written, value_len);
        } else {
            bc_counters_add(blk, bi, misses, 1);
        }
        if (bc_counters_tick(blk)) bc_counters_sample(cache->counters, blk, bi, key, nkey);
    }
    if (it == NULL && counted) cache_note_miss(cache, hash);
    return it;
}

bc_item_t *
bc_cache_get(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash)
{
    return cache_get(cache, key, nkey, hash, false, 0, true, NULL, NULL, NULL);
}

bc_item_t *
bc_cache_get_touch(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash,
                   uint32_t exptime)
{
    return cache_get(cache, key, nkey, hash, true, exptime, true, NULL, NULL, NULL);
}

bc_item_t *
bc_cache_read(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash, bool touch,
              uint32_t exptime, bc_cache_read_fn fn, void *ctx, bool *found)
{
    bool held = false;
    bc_item_t *it = cache_get(cache, key, nkey, hash, touch, exptime, false, fn, ctx, &held);
    if (found != NULL) *found = it != NULL;
    return held ? it : NULL;
}

bool
bc_cache_peek(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash,
              bc_cache_read_fn fn, void *ctx)
{
    cache_loc_t loc;
    if (key == NULL || nkey == 0 || nkey > BC_KEY_MAX_LEN) return false;
    cache_locate(cache, hash, &loc);
    uint32_t now = cache_clock(cache);
    pthread_mutex_lock(&loc.shard->lock);
    bc_item_t *it = do_item_find_live(cache, &loc, key, nkey, hash, now);
    if (it != NULL) (void)fn(it, ctx);
    pthread_mutex_unlock(&loc.shard->lock);
    return it != NULL;
}

void
bc_item_release(bc_cache_t *cache, bc_item_t *it)
{
    if (it == NULL) return;
    bc_segs_t *segs = &cache->segs;
    bc_seg_t *seg = item_seg(cache, it);
    if (it->cas == 0 && !seg->large &&
        (atomic_load_explicit(&seg->pins, memory_order_acquire) & BC_SEG_PIN_COUNT) == 1) {
        /* Never linked (a link sets a CAS): an add that found the key, a
         * cas that lost, a dropped upload.  If it is the last thing
         * appended, its room is taken back -- only by its last holder: a
         * holder pins the segment, so a count of one (ours) means nobody
         * else holds it (bc_item_retain hands one item to several). */
        uint32_t size = bc_seg_item_size(segs, bc_item_nkey(it), bc_item_nbytes(it),
                                          bc_item_has_flags(it));
        pthread_mutex_lock(&segs->lock);
        do_segs_unappend(segs, seg, (const char *)it, size);
        pthread_mutex_unlock(&segs->lock);
    }
    bc_seg_unpin(segs, seg);
}

bc_item_t *
bc_item_retain(bc_cache_t *cache, const bc_item_t *it)
{
    /* a reference, or the shard lock of a scan, keeps its segment live:
     * the pin is the one a lookup takes (cache_get) */
    bc_seg_pin(item_seg(cache, it));
    return (bc_item_t *)it;
}

/* ------------------------------------------------------------------------ */
/* writes                                                                   */
/* ------------------------------------------------------------------------ */

/* Writes an item's header and key at p (the value is the caller's). */
static bc_item_t *
item_init(void *p, const char *key, size_t nkey, uint32_t hash, uint32_t flags,
          uint32_t exptime, uint32_t nbytes, bool large)
{
    bc_item_t *it = p;
    it->cas = 0;
    it->exptime = exptime;
    it->hnext = hash;          /* item_unlinked_hash */
    it->lenkey = (large ? BC_ITEM_LEN_LARGE : nbytes) | (flags != 0 ? BC_ITEM_LEN_FLAGS : 0u) |
                 ((uint32_t)nkey << BC_ITEM_LEN_KEY_SHIFT);
    it->iflags = 0;
    it->pfreq = 0;
    it->atime = 0;
    char *d = it->data;
    if (flags != 0) {
        memcpy(d, &flags, sizeof(flags));
        d += sizeof(flags);
    }
    if (large) {
        memcpy(d, &nbytes, sizeof(nbytes));
        d += sizeof(nbytes);
    }
    memcpy(d, key, nkey);
    return it;
}

/* A large item: a block of its own, charged before it is allocated. */
static bc_item_t *
cache_alloc_large(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash,
                  uint32_t flags, uint32_t exptime, uint32_t nbytes, uint32_t size,
                  bc_status_t *st)
{
    bc_segs_t *segs = &cache->segs;
    size += 4;   /* the length the header cannot hold */
    uint64_t estimate = bc_seg_large_estimate(size);
    if (estimate > cache_mem_limit(cache) || !cache_make_room(cache, estimate, true)) {
        *st = BC_ENOMEM;
        return NULL;
    }
    bc_seg_t *seg = bc_seg_large_new(segs, size);
    if (seg == NULL) {
        cache_mem_sub(cache, estimate);
        *st = BC_ENOMEM;
        return NULL;
    }
    if (seg->charge > estimate) {
        cache_mem_add(cache, seg->charge - estimate);
    } else if (seg->charge < estimate) {
        cache_mem_sub(cache, estimate - seg->charge);
    }
    pthread_mutex_lock(&segs->lock);
    seg->queue = (uint8_t)cache->policy->admit(cache->policy_state, hash);
    pthread_mutex_unlock(&segs->lock);
    bc_item_t *it = item_init(seg->base, key, nkey, hash, flags, exptime, nbytes, true);
    if (seg->charge > estimate) cache_enforce_limit(cache);
    *st = BC_OK;
    return it;
}

/*
 * BEHAVIOR: the segment arena and the large-item table are sized at start
 * for the -m limit (seg_int.h), so the limit may move anywhere between
 * what the engine needs for itself (its own memory and two segments) and
 * that start limit, not above it; memcached refuses an adjustment it
 * cannot make the same way (with -L, above the preallocated size).
 */
bc_status_t
bc_cache_set_mem_limit(bc_cache_t *cache, size_t limit)
{
    bc_segs_t *segs = &cache->segs;
    if (limit > cache->mem_limit_max ||
        limit < cache->mem_floor + 2ull * segs->seg_size) {
        return BC_EINVAL;
    }
    __atomic_store_n(&cache->mem_limit, limit, __ATOMIC_RELAXED);
    bc_seg_set_limit(segs, limit);
    /* Shrinking: evict down to the new limit now rather than on the next
     * store. */
    cache_enforce_limit(cache);
    return BC_OK;
}

size_t
bc_cache_mem_limit_max(const bc_cache_t *cache)
{
    return cache->mem_limit_max;
}

bc_item_t *
bc_item_alloc(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash,
              uint32_t flags, uint32_t exptime, uint32_t nbytes, bc_status_t *st)
{
    bc_status_t dummy;
    if (st == NULL) st = &dummy;
    if (key == NULL || nkey == 0 || nkey > BC_KEY_MAX_LEN || nbytes < 2) {
        *st = BC_EINVAL;
        return NULL;
    }
    /* memcached stores non-zero flags in 4 more bytes of the item. */
    if ((uint64_t)CACHE_MC_ITEM_HEADER + nkey + 1 + nbytes + (flags != 0 ? 4u : 0u) >
            cache->max_item_size ||
        nbytes > UINT32_MAX - 1024u) {
        *st = BC_ETOOLARGE;
        return NULL;
    }
    bc_segs_t *segs = &cache->segs;
    uint32_t size = bc_seg_item_size(segs, (uint32_t)nkey, nbytes, flags != 0);
    if (bc_seg_is_large(segs, size)) {
        return cache_alloc_large(cache, key, nkey, hash, flags, exptime, nbytes, size, st);
    }
    bool admitted = false;
    unsigned q = 0;
    for (;;) {
        bc_seg_t *seg;
        pthread_mutex_lock(&segs->lock);
        if (!admitted) {
            q = cache->policy->admit(cache->policy_state, hash);
            admitted = true;
        }
        char *p = do_segs_append(segs, q, size, false, &seg);
        if (p != NULL) {
            /* header and key before the lock goes: eviction walks segments
             * by their items' headers */
            bc_item_t *it = item_init(p, key, nkey, hash, flags, exptime, nbytes, false);
            pthread_mutex_unlock(&segs->lock);
            *st = BC_OK;
            return it;
        }
        pthread_mutex_unlock(&segs->lock);
        if (!cache_evict(cache)) {
            *st = BC_ENOMEM;
            return NULL;
        }
    }
}

/*
 * it (unlinked, held by the caller) sits in a segment eviction has begun:
 * a copy elsewhere, held by the caller instead; it is released.  NULL (it
 * released too) when there is no memory.
 */
static bc_item_t *
cache_move_unlinked(bc_cache_t *cache, bc_item_t *it)
{
    bc_status_t st;
    uint32_t nbytes = bc_item_nbytes(it);
    bc_item_t *nit = bc_item_alloc(cache, bc_item_key(it), bc_item_nkey(it), item_unlinked_hash(it),
                                   bc_item_flags(it), it->exptime, nbytes, &st);
    if (nit != NULL) {
        memcpy(bc_item_value(nit), bc_item_value(it), nbytes);
        bc_item_set_meta(nit, it->iflags);   /* stale, win, binary key travel */
    }
    bc_item_release(cache, it);
    return nit;
}

/*
 * append/prepend: the combined item must be allocated with no lock held
 * (allocation may evict), so the old item is referenced, copied unlocked,
 * and the result linked only if the key still holds that same item (same
 * address and CAS; the reference keeps the address from being reused).
 * Otherwise the whole thing is retried against the new value.
 */
static bc_status_t
cache_store_concat(bc_cache_t *cache, bc_item_t *it, bool append, uint64_t cas_in,
                   uint64_t *cas_out)
{
    cache_loc_t loc;
    const char *key = bc_item_key(it);
    size_t nkey = bc_item_nkey(it);
    uint32_t hash = item_unlinked_hash(it);
    cache_locate(cache, hash, &loc);

    for (int attempt = 0; attempt < CACHE_RETRIES; attempt++) {
        uint32_t now = cache_clock(cache);

        pthread_mutex_lock(&loc.shard->lock);
        bc_item_t *old = do_item_find_live(cache, &loc, key, nkey, hash, now);
        if (old == NULL) {
            pthread_mutex_unlock(&loc.shard->lock);
            bc_item_release(cache, it);
            return BC_ENOTSTORED;
        }
        if (cas_in != 0 && old->cas != cas_in) {
            /* ms MA/MP with C: memcached's simplified CAS check. */
            pthread_mutex_unlock(&loc.shard->lock);
            bc_item_release(cache, it);
            return BC_EEXISTS;
        }
        bc_seg_pin(item_seg(cache, old));
        uint64_t old_cas = old->cas;
        uint32_t old_exptime = old->exptime;
        pthread_mutex_unlock(&loc.shard->lock);

        uint32_t old_len = bc_item_value_len(old), add_len = bc_item_value_len(it);
        uint64_t total = (uint64_t)old_len + add_len + 2;
        bc_status_t st = BC_ETOOLARGE;
        bc_item_t *nit = NULL;
        if (total <= UINT32_MAX) {
            nit = bc_item_alloc(cache, key, nkey, hash, bc_item_flags(old), old_exptime,
                                (uint32_t)total, &st);
        }
        if (nit == NULL) {
            bc_item_release(cache, old);
            bc_item_release(cache, it);
            return st;
        }
        char *dst = bc_item_value(nit);
        if (append) {
            memcpy(dst, bc_item_value(old), old_len);
            memcpy(dst + old_len, bc_item_value(it), add_len);
        } else {
            memcpy(dst, bc_item_value(it), add_len);
            memcpy(dst + add_len, bc_item_value(old), old_len);
        }
        memcpy(dst + old_len + add_len, "\r\n", 2);

        now = cache_clock(cache);
        pthread_mutex_lock(&loc.shard->lock);
        bc_item_t *cur = do_item_find_live(cache, &loc, key, nkey, hash, now);
        bool same = cur == old && cur->cas == old_cas;
        bool moved = same && !bc_seg_link_try(item_seg(cache, nit));
        if (same && !moved) {
            /* A touch in between may have moved the expiry: keep the newest. */
            nit->exptime = cur->exptime;
            do_item_replace(cache, &loc, cur, nit, hash, now);
            cache_notify_item(cache, BC_CACHE_EV_STORE, nit, loc.bucket);
            if (cas_out != NULL) *cas_out = nit->cas;
        }
        pthread_mutex_unlock(&loc.shard->lock);
        bc_item_release(cache, old);
        bc_item_release(cache, nit);   /* linked or not, the caller's hold goes */
        if (same && !moved) {
            bc_item_release(cache, it);
            cache_enforce_limit(cache);
            return BC_OK;
        }
    }
    log_warn("cache: append/prepend gave up after %d concurrent changes of the key",
             CACHE_RETRIES);
    bc_item_release(cache, it);
    return BC_ENOTSTORED;
}

/* Raises cas_last to at least cas, so fresh CAS values stay above it. */
static void
cache_cas_raise(bc_cache_t *cache, uint64_t cas)
{
    atomic_max_u64(&cache->cas_last, cas);
}

static bc_status_t cache_store(bc_cache_t *cache, bc_item_t *it, bc_store_mode_t mode,
                               uint64_t cas_in, uint64_t *cas_out, uint64_t keep_cas,
                               bool set_stale);

/* Counts one write request of the calling thread (counters.h) to the
 * key's bucket: a set (with nread key and value bytes) or, when done, a
 * delete; and feeds the sampler. */
static inline void
cache_count_write(bc_cache_t *cache, bc_counters_block_t *blk, uint32_t hash, const char *key,
                  size_t nkey, bool set, bool done, uint64_t nread)
{
    uint32_t bi = hash % cache->nbuckets;
    if (set) {
        bc_counters_add(blk, bi, sets, 1);
        bc_counters_add(blk, bi, bytes_read, nread);
    } else if (done) {
        bc_counters_add(blk, bi, deletes, 1);
    }
    if (bc_counters_tick(blk)) bc_counters_sample(cache->counters, blk, bi, key, nkey);
}

/* Counts one read request of the calling thread to the key's bucket, a
 * hit (it: the item found) or a miss, as cache_get does. */
static inline void
cache_count_read(bc_cache_t *cache, uint32_t hash, const char *key, size_t nkey,
                 const bc_item_t *it)
{
    bc_counters_block_t *blk = bc_counters_mine(cache->counters);
    if (blk == NULL) return;
    uint32_t bi = hash % cache->nbuckets;
    if (it != NULL) {
        bc_counters_add(blk, bi, hits, 1);
        bc_counters_add(blk, bi, bytes_written, bc_item_value_len(it));
    } else {
        bc_counters_add(blk, bi, misses, 1);
    }
    if (bc_counters_tick(blk)) bc_counters_sample(cache->counters, blk, bi, key, nkey);
}

/* A store counted as the request it is, before it consumes the item (as
 * memcached counts cmd_set and bytes_read). */
static bc_status_t
cache_store_counted(bc_cache_t *cache, bc_item_t *it, bc_store_mode_t mode, uint64_t cas_in,
                    uint64_t *cas_out, bool set_stale)
{
    bc_counters_block_t *blk = it != NULL ? bc_counters_mine(cache->counters) : NULL;
    if (blk != NULL) {
        cache_count_write(cache, blk, item_unlinked_hash(it), bc_item_key(it),
                          bc_item_nkey(it), true, true,
                          bc_item_nkey(it) + (uint64_t)bc_item_value_len(it));
    }
    return cache_store(cache, it, mode, cas_in, cas_out, 0, set_stale);
}

bc_status_t
bc_cache_store(bc_cache_t *cache, bc_item_t *it, bc_store_mode_t mode, uint64_t cas_in,
               uint64_t *cas_out)
{
    return cache_store_counted(cache, it, mode, cas_in, cas_out, false);
}

bc_status_t
bc_cache_store_meta(bc_cache_t *cache, bc_item_t *it, bc_store_mode_t mode, uint64_t cas_in,
                    bool set_stale, uint64_t *cas_out)
{
    return cache_store_counted(cache, it, mode, cas_in, cas_out, set_stale);
}

bc_status_t
bc_cache_store_as(bc_cache_t *cache, bc_item_t *it, uint64_t cas)
{
    return cache_store(cache, it, BC_STORE_SET, 0, NULL, cas, false);
}

/*
 * BEHAVIOR: an item moved here from another node keeps its CAS, so a
 * client's `gets` token from before the move still works after it.  The
 * CAS counter is raised past it, so this node's fresh values stay unique
 * and growing.  But flush_all here is decided by CAS (items below
 * oldest_cas are dead), and the other node's CAS values owe nothing to
 * this node's flush marks: one below the mark gets a fresh CAS instead,
 * else the item would read as flushed the moment it is stored.
 */
bc_status_t
bc_cache_store_moved(bc_cache_t *cache, bc_item_t *it, bc_store_mode_t mode, uint64_t cas)
{
    if (mode != BC_STORE_SET && mode != BC_STORE_ADD) {
        if (it != NULL) bc_item_release(cache, it);
        return BC_EINVAL;
    }
    if (cas < atomic_load(&cache->oldest_cas)) cas = 0;
    return cache_store(cache, it, mode, 0, NULL, cas, false);
}

void
bc_cache_reset_flush(bc_cache_t *cache)
{
    atomic_store(&cache->oldest_live, 0);
    atomic_store(&cache->oldest_cas, 0);
}

/* keep_cas != 0: the stored item gets that CAS (replication, migration).
 * set_stale: memcached's ms I (see bc_cache_store_meta). */
static bc_status_t
cache_store(bc_cache_t *cache, bc_item_t *it, bc_store_mode_t mode, uint64_t cas_in,
            uint64_t *cas_out, uint64_t keep_cas, bool set_stale)
{
    if (it == NULL) return BC_EINVAL;
    if (it->iflags & BC_ITEM_LINKED) return BC_EINVAL;   /* stored twice: caller bug */
    if (mode == BC_STORE_APPEND || mode == BC_STORE_PREPEND) {
        return cache_store_concat(cache, it, mode == BC_STORE_APPEND, cas_in, cas_out);
    }

    cache_loc_t loc;
    bc_status_t st;
    uint32_t hash = item_unlinked_hash(it);
    cache_locate(cache, hash, &loc);

    for (;;) {
        uint32_t now = cache_clock(cache);
        pthread_mutex_lock(&loc.shard->lock);
        bc_item_t *old = do_item_find_live(cache, &loc, bc_item_key(it), bc_item_nkey(it), hash,
                                           now);
        switch (mode) {
        case BC_STORE_SET:
            st = BC_OK;
            break;
        case BC_STORE_ADD:
            st = old != NULL ? BC_ENOTSTORED : BC_OK;
            if (old != NULL) old->atime = bc__evict_atime(now);   /* memcached bumps it */
            break;
        case BC_STORE_REPLACE:
            st = old != NULL ? BC_OK : BC_ENOTSTORED;
            break;
        case BC_STORE_CAS:
            st = old == NULL ? BC_ENOTFOUND : old->cas != cas_in ? BC_EEXISTS : BC_OK;
            if (st == BC_EEXISTS && set_stale && cas_in != 0 && cas_in < old->cas) {
                /* A stale value (lower CAS) replaces the current one but stays
                 * stale: it keeps the expiry and the win token state. */
                it->exptime = old->exptime;
                bc_item_set_meta(it, (uint8_t)((it->iflags & BC_ITEM_META_MASK) |
                                               BC_ITEM_STALE | (old->iflags & BC_ITEM_WON)));
                st = BC_OK;
            }
            break;
        default:
            st = BC_EINVAL;
            break;
        }
        if (st == BC_OK && !bc_seg_link_try(item_seg(cache, it))) {
            /* eviction took its segment while it was being filled */
            pthread_mutex_unlock(&loc.shard->lock);
            it = cache_move_unlinked(cache, it);
            if (it == NULL) return BC_ENOMEM;
            continue;
        }
        if (st == BC_OK) {
            if (old != NULL) {
                do_item_replace(cache, &loc, old, it, hash, now);
            } else if (!do_item_link(cache, &loc, it, now)) {
                st = BC_ENOMEM;
                do_item_gone(cache, it);   /* uncounts it */
            }
            if (st == BC_OK && keep_cas != 0) {
                it->cas = keep_cas;
                cache_cas_raise(cache, keep_cas);
            }
            if (st == BC_OK) cache_notify_item(cache, BC_CACHE_EV_STORE, it, loc.bucket);
            if (st == BC_OK && cas_out != NULL) *cas_out = it->cas;
        }
        pthread_mutex_unlock(&loc.shard->lock);
        break;
    }
    bc_item_release(cache, it);   /* stored or not, the caller's hold goes */
    if (st == BC_OK) cache_enforce_limit(cache);
    return st;
}

bc_status_t
bc_cache_delete(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash)
{
    cache_loc_t loc;
    if (key == NULL || nkey == 0 || nkey > BC_KEY_MAX_LEN) return BC_ENOTFOUND;
    cache_locate(cache, hash, &loc);
    uint32_t now = cache_clock(cache);

    pthread_mutex_lock(&loc.shard->lock);
    bc_item_t *it = do_item_find_live(cache, &loc, key, nkey, hash, now);
    if (it != NULL) {
        do_item_unlink(cache, &loc, it, hash);
        do_table_shrink(cache, loc.bucket);
        cache_notify(cache, BC_CACHE_EV_DELETE, NULL, key, nkey, 0, loc.bucket);
    }
    pthread_mutex_unlock(&loc.shard->lock);
    bc_counters_block_t *blk = bc_counters_mine(cache->counters);
    if (blk != NULL) cache_count_write(cache, blk, hash, key, nkey, false, it != NULL, 0);
    return it != NULL ? BC_OK : BC_ENOTFOUND;
}

bc_status_t
bc_cache_touch(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash,
               uint32_t exptime)
{
    return cache_get(cache, key, nkey, hash, true, exptime, false, NULL, NULL, NULL) != NULL
               ? BC_OK
               : BC_ENOTFOUND;
}

/*
 * memcached's safe_strtoull() applied to an item value, without reading
 * past it: strtoull semantics (leading white space, optional sign, decimal
 * digits, ERANGE on overflow) and memcached's acceptance rule (something
 * must be converted, the number must end at white space -- the value's
 * CRLF counts -- or at a NUL, and a '-' before the first NUL that made the
 * result look negative is rejected; "-0" and "-18446744073709551615" are
 * accepted, as there).
 */
static bool
arith_parse(const char *p, size_t len, uint64_t *out)
{
#define ARITH_SPACE(c) ((c) == ' ' || ((c) >= '\t' && (c) <= '\r'))
    const char *end = p + len, *s = p;
    bool neg = false;
    while (s < end && ARITH_SPACE(*s)) s++;
    if (s < end && (*s == '+' || *s == '-')) {
        neg = *s == '-';
        s++;
    }
    if (s == end || *s < '0' || *s > '9') return false;   /* nothing converted */
    uint64_t v = 0;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return false;   /* ERANGE */
        v = v * 10 + d;
    }
    if (s < end && !ARITH_SPACE(*s) && *s != '\0') return false;
    if (neg) v = (uint64_t)0 - v;
    /* memcached: a result that looks negative is refused when strchr()
     * finds a '-' in the value: up to its first NUL (past the value, where
     * memcached reads on into its memory, is not looked at). */
    if ((int64_t)v < 0) {
        const char *nul = memchr(p, '\0', len);
        if (memchr(p, '-', nul != NULL ? (size_t)(nul - p) : len) != NULL) return false;
    }
    *out = v;
    return true;
#undef ARITH_SPACE
}


static bc_status_t cache_marith(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash,
                                bc_cache_marith_t *m);

bc_status_t
bc_cache_arith(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash, bool incr,
               uint64_t delta, uint64_t *result)
{
    bc_cache_marith_t m = {.incr = incr, .delta = delta};
    bc_status_t st = bc_cache_marith(cache, key, nkey, hash, &m);
    if (st == BC_OK && result != NULL) *result = m.value;
    return st;
}

/* ma's vivify: stores `initial` as a new item (add).  Returns BC_OK (m
 * filled), BC_EEXISTS when the key appeared meanwhile (retry), or an
 * allocation error. */
static bc_status_t
marith_vivify(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash,
              bc_cache_marith_t *m)
{
    char buf[24];
    bc_status_t st;
    size_t len = bc_mc_u64_to_dec(m->initial, buf);
    bc_item_t *nit = bc_item_alloc(cache, key, nkey, hash, 0, 0, (uint32_t)len + 2, &st);
    if (nit == NULL) return st == BC_ETOOLARGE ? BC_ENOMEM : st;
    memcpy(bc_item_value(nit), buf, len);
    memcpy(bc_item_value(nit) + len, "\r\n", 2);

    cache_loc_t loc;
    cache_locate(cache, hash, &loc);
    for (;;) {
        uint32_t now = cache_clock(cache);
        pthread_mutex_lock(&loc.shard->lock);
        bc_item_t *old = do_item_find_live(cache, &loc, key, nkey, hash, now);
        if (old == NULL && !bc_seg_link_try(item_seg(cache, nit))) {
            /* eviction took its segment while it was being filled */
            pthread_mutex_unlock(&loc.shard->lock);
            nit = cache_move_unlinked(cache, nit);
            if (nit == NULL) return BC_ENOMEM;
            continue;
        }
        bool linked = old == NULL && do_item_link(cache, &loc, nit, now);
        if (old == NULL && !linked) do_item_gone(cache, nit);   /* uncounts it */
        if (linked) {
            if (m->set_exptime_created) nit->exptime = m->exptime_created;
            m->value = m->initial;
            m->cas = nit->cas;
            m->exptime_before = 0;
            m->created = true;
            cache_notify_item(cache, BC_CACHE_EV_STORE, nit, loc.bucket);
        }
        pthread_mutex_unlock(&loc.shard->lock);
        bc_item_release(cache, nit);   /* linked or not, our hold goes */
        if (!linked) return old != NULL ? BC_EEXISTS : BC_ENOMEM;
        cache_enforce_limit(cache);
        return BC_OK;
    }
}

bc_status_t
bc_cache_marith(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash,
                bc_cache_marith_t *m)
{
    bc_status_t st = cache_marith(cache, key, nkey, hash, m);
    bc_counters_block_t *blk = bc_counters_mine(cache->counters);
    if (blk != NULL && key != NULL && nkey > 0 && nkey <= BC_KEY_MAX_LEN) {
        cache_count_write(cache, blk, hash, key, nkey, true, false, 0);
    }
    return st;
}

static bc_status_t
cache_marith(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash,
             bc_cache_marith_t *m)
{
    cache_loc_t loc;
    if (key == NULL || nkey == 0 || nkey > BC_KEY_MAX_LEN) return BC_ENOTFOUND;
    cache_locate(cache, hash, &loc);
    m->created = false;

    for (int attempt = 0; attempt < CACHE_RETRIES; attempt++) {
        uint32_t now = cache_clock(cache);
        uint64_t value;
        char buf[24];

        pthread_mutex_lock(&loc.shard->lock);
        bc_item_t *it = do_item_find_live(cache, &loc, key, nkey, hash, now);
        if (it == NULL) {
            pthread_mutex_unlock(&loc.shard->lock);
            if (!m->vivify) return BC_ENOTFOUND;
            bc_status_t st = marith_vivify(cache, key, nkey, hash, m);
            if (st == BC_EEXISTS) continue;
            return st;
        }
        /* memcached's order: empty value, then the CAS, then the number. */
        bc_status_t bad = BC_OK;
        if (bc_item_nbytes(it) <= 2) bad = BC_ENONNUMERIC;
        else if (m->cas_in != 0 && it->cas != m->cas_in) bad = BC_EEXISTS;
        else if (!arith_parse(bc_item_value(it), bc_item_value_len(it), &value)) bad = BC_ENONNUMERIC;
        if (bad != BC_OK) {
            pthread_mutex_unlock(&loc.shard->lock);
            return bad;
        }
        if (m->incr) {
            value += m->delta;                  /* wraps at 2^64, as memcached */
        } else {
            value = m->delta > value ? 0 : value - m->delta;
        }
        size_t len = bc_mc_u64_to_dec(value, buf);
        m->value = value;
        m->exptime_before = it->exptime;

        bc_seg_t *seg = item_seg(cache, it);
        if (len + 2 <= bc_item_nbytes(it) && bc_seg_unpinned(seg)) {
            /* Nobody holds anything of its segment, and a new reader would
             * need this lock: rewrite in place, padding a shorter number
             * with spaces (memcached does exactly this). */
            char *v = bc_item_value(it);
            memcpy(v, buf, len);
            memset(v + len, ' ', bc_item_nbytes(it) - 2 - len);
            it->cas = atomic_fetch_add_explicit(&cache->cas_last, 1, memory_order_relaxed) + 1;
            if (m->set_exptime_hit) it->exptime = m->exptime_hit;
            m->cas = it->cas;
            cache->policy->on_access(it, now);
            it->atime = bc__evict_atime(now);
            cache_notify_item(cache, BC_CACHE_EV_STORE, it, loc.bucket);
            pthread_mutex_unlock(&loc.shard->lock);
            return BC_OK;
        }

        /* Longer, or readers may hold the old value: store a new item. */
        bc_seg_pin(seg);
        uint64_t old_cas = it->cas;
        uint32_t flags = bc_item_flags(it), exptime = it->exptime;
        pthread_mutex_unlock(&loc.shard->lock);

        bc_status_t st;
        bc_item_t *nit = bc_item_alloc(cache, key, nkey, hash, flags, exptime,
                                       (uint32_t)len + 2, &st);
        if (nit == NULL) {
            bc_item_release(cache, it);
            return st == BC_ETOOLARGE ? BC_ENOMEM : st;
        }
        memcpy(bc_item_value(nit), buf, len);
        memcpy(bc_item_value(nit) + len, "\r\n", 2);

        now = cache_clock(cache);
        pthread_mutex_lock(&loc.shard->lock);
        bc_item_t *cur = do_item_find_live(cache, &loc, key, nkey, hash, now);
        bool same = cur == it && cur->cas == old_cas && bc_seg_link_try(item_seg(cache, nit));
        if (same) {
            nit->exptime = cur->exptime;
            do_item_replace(cache, &loc, cur, nit, hash, now);
            m->cas = nit->cas;
            cache_notify_item(cache, BC_CACHE_EV_STORE, nit, loc.bucket);
        }
        pthread_mutex_unlock(&loc.shard->lock);
        bc_item_release(cache, it);
        bc_item_release(cache, nit);
        if (same) {
            cache_enforce_limit(cache);
            return BC_OK;
        }
    }
    log_warn("cache: incr/decr gave up after %d concurrent changes of the key",
             CACHE_RETRIES);
    return BC_ENOMEM;
}

/* The meta state of a linked item (shard lock held).  The header keeps the
 * last access modulo 2^16 s (item.h, atime): it is read as the latest time
 * at or before now with those low bits. */
void
bc_cache_item_meta(const bc_item_t *it, uint32_t now, bc_item_meta_t *out)
{
    out->exptime = it->exptime;
    out->atime = now - bc__evict_idle(it, now);
    out->fetched = (it->iflags & BC_ITEM_FETCHED) != 0;
    out->stale = (it->iflags & BC_ITEM_STALE) != 0;
    out->won = (it->iflags & BC_ITEM_WON) != 0;
    out->key_binary = (it->iflags & BC_ITEM_KEY_BINARY) != 0;
}

bc_item_t *
bc_cache_mget(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash,
              bc_cache_mget_t *m, bc_status_t *st)
{
    cache_loc_t loc;
    bc_item_t *nit = NULL;     /* the item vivify would link, held by us */
    bc_status_t dummy;
    if (st == NULL) st = &dummy;
    *st = BC_ENOTFOUND;
    m->created = m->won = false;
    memset(&m->meta, 0, sizeof(m->meta));
    if (key == NULL || nkey == 0 || nkey > BC_KEY_MAX_LEN) return NULL;
    cache_locate(cache, hash, &loc);

    for (int attempt = 0; attempt < CACHE_RETRIES; attempt++) {
        uint32_t now = cache_clock(cache);

        pthread_mutex_lock(&loc.shard->lock);
        bc_item_t *it = do_item_find_live(cache, &loc, key, nkey, hash, now);
        if (it == NULL && m->vivify && nit != NULL) {
            /* An empty item, as memcached's vivify: flags 0, no expiry
             * until N's (or a later T's) is applied. */
            if (!bc_seg_link_try(item_seg(cache, nit))) {
                /* eviction took its segment while it was being filled */
                pthread_mutex_unlock(&loc.shard->lock);
                nit = cache_move_unlinked(cache, nit);
                if (nit == NULL) {
                    *st = BC_ENOMEM;
                    return NULL;
                }
                continue;
            }
            if (do_item_link(cache, &loc, nit, now)) {
                it = nit;      /* our hold on it becomes the caller's */
                nit = NULL;
                m->created = true;
            } else {
                do_item_gone(cache, nit);   /* uncounts it */
            }
        }
        if (it == NULL) {
            pthread_mutex_unlock(&loc.shard->lock);
            if (nit == NULL && attempt == 0) cache_note_miss(cache, hash);
            if (!m->vivify || nit != NULL || attempt > 0) {
                if (nit != NULL) bc_item_release(cache, nit);
                if (m->vivify) *st = BC_ENOMEM;
                cache_count_read(cache, hash, key, nkey, NULL);
                return NULL;
            }
            /* Allocate with no lock held (it may evict), then look again. */
            nit = bc_item_alloc(cache, key, nkey, hash, 0, 0, 2, st);
            if (nit == NULL) {
                *st = BC_ENOMEM;
                return NULL;
            }
            memcpy(bc_item_value(nit), "\r\n", 2);
            continue;
        }
        if (m->created) {
            it->exptime = 0;
            bc_cache_item_meta(it, now, &m->meta);
            it->exptime = m->viv_exptime;   /* 0 when N's did not take effect */
            m->won = true;
        } else {
            bc_seg_pin(item_seg(cache, it));   /* the caller's reference */
            bc_cache_item_meta(it, now, &m->meta);
            uint32_t exp_at_r = m->touch && m->recache_sees_touch ? m->touch_exptime
                                                                   : it->exptime;
            if (m->touch) it->exptime = m->touch_exptime;
            if (m->recache && !m->meta.won && exp_at_r != 0 && exp_at_r < m->recache_time) {
                m->won = true;
            }
        }
        if (m->meta.stale && !m->meta.won) m->won = true;
        if (m->no_win) m->won = false;
        if (m->won) it->iflags |= BC_ITEM_WON;
        if (m->bump) do_item_accessed(cache, it, now);
        /* BEHAVIOR: a win token handed out changes the item's state as a
         * store does (backups and migration targets must not hand out
         * another one after a failover): it travels as the whole item. */
        if (m->created || (m->won && !m->meta.won)) {
            cache_notify_item(cache, BC_CACHE_EV_STORE, it, loc.bucket);
        } else if (m->touch) {
            cache_notify_item(cache, BC_CACHE_EV_TOUCH, it, loc.bucket);
        }
        pthread_mutex_unlock(&loc.shard->lock);
        if (nit != NULL) bc_item_release(cache, nit);
        if (m->created) cache_enforce_limit(cache);
        cache_count_read(cache, hash, key, nkey, m->created ? NULL : it);
        *st = BC_OK;
        return it;
    }
    if (nit != NULL) bc_item_release(cache, nit);
    return NULL;
}

bc_status_t
bc_cache_mdelete(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash, bool has_cas,
                 uint64_t cas_in, bool stale, bool set_ttl, uint32_t exptime)
{
    cache_loc_t loc;
    bc_status_t st = BC_OK;
    if (key == NULL || nkey == 0 || nkey > BC_KEY_MAX_LEN) return BC_ENOTFOUND;
    cache_locate(cache, hash, &loc);
    uint32_t now = cache_clock(cache);

    pthread_mutex_lock(&loc.shard->lock);
    bc_item_t *it = do_item_find_live(cache, &loc, key, nkey, hash, now);
    if (it == NULL) {
        st = BC_ENOTFOUND;
    } else if (has_cas && it->cas != cas_in) {
        st = BC_EEXISTS;
    } else if (stale) {
        if (set_ttl) it->exptime = exptime;
        it->iflags = (uint8_t)((it->iflags | BC_ITEM_STALE) & ~BC_ITEM_WON);
        it->cas = atomic_fetch_add_explicit(&cache->cas_last, 1, memory_order_relaxed) + 1;
        cache_notify_item(cache, BC_CACHE_EV_STORE, it, loc.bucket);
    } else {
        do_item_unlink(cache, &loc, it, hash);
        do_table_shrink(cache, loc.bucket);
        cache_notify(cache, BC_CACHE_EV_DELETE, NULL, key, nkey, 0, loc.bucket);
    }
    pthread_mutex_unlock(&loc.shard->lock);
    bc_counters_block_t *blk = bc_counters_mine(cache->counters);
    if (blk != NULL) cache_count_write(cache, blk, hash, key, nkey, false, st == BC_OK, 0);
    return st;
}

void
bc_cache_flush(bc_cache_t *cache, uint32_t when)
{
    uint32_t now = cache_clock(cache);
    uint32_t due = (when != 0 ? when : now) - 1;   /* memcached's oldest_live */
    uint64_t mark = 0;
    if (due <= now) {
        /* Immediate (also a time already past): cancels a pending one, as
         * memcached's single oldest_live does. */
        mark = cache_flush_mark(cache);
        atomic_store(&cache->oldest_live, 0);
        when = 0;
    } else {
        atomic_store(&cache->oldest_live, due);
    }
    atomic_fetch_add(&cache->flushes, 1);
    bc_cache_event_t ev = {BC_CACHE_EV_FLUSH, NULL, NULL, 0, when, 0, mark};
    if (cache->observer != NULL) cache->observer(cache->observer_ctx, &ev);
    bc_cache_tap_fn tap = atomic_load_explicit(&cache->tap, memory_order_acquire);
    if (tap != NULL) tap(cache->tap_ctx, UINT32_MAX, &ev);
}

/* A flush at the primary's CAS mark (replication): items below it are
 * gone, fresh CAS values go above it.  The callers clear a due time after
 * it, as cache_flush_due does: mark first. */
static void
cache_flush_mark_raise(bc_cache_t *cache, uint64_t mark)
{
    atomic_max_u64(&cache->oldest_cas, mark);
    cache_cas_raise(cache, mark);
    atomic_fetch_add(&cache->flushes, 1);
}

void
bc_cache_flush_at(bc_cache_t *cache, uint64_t mark)
{
    cache_flush_mark_raise(cache, mark);
    atomic_store(&cache->oldest_live, 0);
}

void
bc_cache_flush_came_due(bc_cache_t *cache, uint32_t when, uint64_t mark)
{
    cache_flush_mark_raise(cache, mark);
    uint32_t due = when - 1;       /* bc_cache_flush stored when - 1 */
    (void)atomic_compare_exchange_strong(&cache->oldest_live, &due, 0);
}

uint64_t
bc_cache_flush_mark(bc_cache_t *cache)
{
    (void)cache_clock(cache);      /* a due delayed flush marks first */
    return atomic_load(&cache->oldest_cas);
}

/* ------------------------------------------------------------------------ */
/* active expiry                                                            */
/* ------------------------------------------------------------------------ */

uint64_t
bc_cache_expire_scan(bc_cache_t *cache, uint32_t budget)
{
    uint64_t removed = 0;
    uint32_t now = cache_clock(cache);

    pthread_mutex_lock(&cache->scan_lock);
    /* Bounded by budget, and by one full pass over the buckets so an empty
     * cache does not spin. */
    for (uint32_t visited = 0; budget > 0 && visited < cache->nbuckets; visited++) {
        uint32_t bi = cache->scan_bucket;
        cache_loc_t loc = {
            .bucket = &cache->buckets[bi],
            .shard = &cache->shards[bi & cache->shard_mask],
        };
        cache_bucket_t *b = loc.bucket;
        bool finished = true;

        pthread_mutex_lock(&loc.shard->lock);
        if (b->slots == NULL) {
            budget--;
        } else {
            uint32_t slot = cache->scan_slot;
            while (slot <= b->mask && budget > 0) {
                uint32_t ref = b->slots[slot];
                if (ref == 0) budget--;   /* empty slots cost too: bounded work */
                while (ref != 0) {
                    bc_item_t *it = cache_item(cache, ref);
                    ref = it->hnext;
                    if (budget > 0) budget--;
                    if (item_is_dead(cache, it, now)) {
                        do_item_reclaim(cache, &loc, it, item_hash(it), true);
                        removed++;
                    }
                }
                slot++;
            }
            if (slot <= b->mask) {
                finished = false;
                cache->scan_slot = slot;
            }
            do_table_shrink(cache, b);
        }
        pthread_mutex_unlock(&loc.shard->lock);
        if (finished) {
            cache->scan_bucket = (bi + 1) % cache->nbuckets;
            cache->scan_slot = 0;
        }
    }
    pthread_mutex_unlock(&cache->scan_lock);
    return removed;
}

/* ------------------------------------------------------------------------ */
/* per-bucket access                                                        */
/* ------------------------------------------------------------------------ */

bc_status_t
bc_cache_bucket_stats(bc_cache_t *cache, uint32_t bucket, bc_bucket_stats_t *out)
{
    if (bucket >= cache->nbuckets || out == NULL) return BC_EINVAL;
    cache_shard_t *s = &cache->shards[bucket & cache->shard_mask];
    pthread_mutex_lock(&s->lock);
    out->items = cache->buckets[bucket].count;
    out->bytes = cache->buckets[bucket].bytes;
    out->evictions = cache->buckets[bucket].evictions;
    out->expirations = cache->buckets[bucket].expirations;
    pthread_mutex_unlock(&s->lock);
    bc_counters_fold(cache->counters, bucket, &out->ops);
    return BC_OK;
}

bc_status_t
bc_cache_bucket_stats_all(bc_cache_t *cache, bc_bucket_stats_t *out, uint32_t n)
{
    if (out == NULL || n != cache->nbuckets) return BC_EINVAL;
    bc_bucket_counts_t *ops = malloc((size_t)n * sizeof(*ops));
    if (ops == NULL) return BC_ENOMEM;
    bc_counters_fold_all(cache->counters, ops, n);
    for (uint32_t i = 0; i < cache->nshards; i++) {
        cache_shard_t *s = &cache->shards[i];
        pthread_mutex_lock(&s->lock);
        for (uint32_t b = i; b < n; b += cache->nshards) {
            const cache_bucket_t *cb = &cache->buckets[b];
            out[b].items = cb->count;
            out[b].bytes = cb->bytes;
            out[b].evictions = cb->evictions;
            out[b].expirations = cb->expirations;
            out[b].ops = ops[b];
        }
        pthread_mutex_unlock(&s->lock);
    }
    free(ops);
    return BC_OK;
}

bc_status_t
bc_cache_count_thread(bc_cache_t *cache)
{
    return bc_counters_attach(cache->counters);
}

void
bc_cache_count_thread_end(bc_cache_t *cache)
{
    bc_counters_detach(cache->counters);
}

void
bc_cache_set_sampler(bc_cache_t *cache, bc_key_sampler_fn fn, void *ctx, uint32_t every)
{
    bc_counters_set_sampler(cache->counters, fn, ctx, every);
}

bc_status_t
bc_cache_bucket_foreach(bc_cache_t *cache, uint32_t bucket, bc_cache_item_fn fn, void *ctx)
{
    if (bucket >= cache->nbuckets || fn == NULL) return BC_EINVAL;
    cache_bucket_t *b = &cache->buckets[bucket];
    cache_shard_t *s = &cache->shards[bucket & cache->shard_mask];
    uint32_t now = cache_clock(cache);

    pthread_mutex_lock(&s->lock);
    if (b->slots != NULL) {
        bool go_on = true;
        for (uint32_t i = 0; go_on && i <= b->mask; i++) {
            for (uint32_t ref = b->slots[i]; go_on && ref != 0;) {
                bc_item_t *it = cache_item(cache, ref);
                ref = it->hnext;
                if (item_is_dead(cache, it, now)) continue;
                go_on = fn(it, ctx);
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
    return BC_OK;
}

/* Reverses the bits of v (the scan cursor's counting order). */
static uint32_t
cache_rev32(uint32_t v)
{
    v = ((v >> 1) & 0x55555555u) | ((v & 0x55555555u) << 1);
    v = ((v >> 2) & 0x33333333u) | ((v & 0x33333333u) << 2);
    v = ((v >> 4) & 0x0F0F0F0Fu) | ((v & 0x0F0F0F0Fu) << 4);
    v = ((v >> 8) & 0x00FF00FFu) | ((v & 0x00FF00FFu) << 8);
    return (v >> 16) | (v << 16);
}

/*
 * BACKGROUND: a bucket's table doubles and halves in place while the scan
 * is between steps, so a plain slot counter would skip or repeat chains
 * after a resize.  The cursor counts with its bits reversed (Redis's
 * dictScan): the slots still to visit after a resize are then exactly the
 * ones whose low bits were not covered yet, whatever the new size.  An
 * item linked for the whole scan is reported at least once -- also when
 * eviction copies it elsewhere meanwhile, since the copy takes the
 * original's place in its chain; one linked or unlinked meanwhile may or
 * may not be; a halving can report an item twice.
 */
bc_status_t
bc_cache_bucket_scan(bc_cache_t *cache, uint32_t bucket, uint32_t *cursor, bc_cache_item_fn fn,
                     void *ctx)
{
    if (bucket >= cache->nbuckets || fn == NULL || cursor == NULL) return BC_EINVAL;
    cache_bucket_t *b = &cache->buckets[bucket];
    cache_shard_t *s = &cache->shards[bucket & cache->shard_mask];
    uint32_t now = cache_clock(cache);
    uint32_t v = *cursor;

    pthread_mutex_lock(&s->lock);
    if (b->slots == NULL) {
        v = 0;
    } else {
        bool go_on = true;
        uint32_t m = b->mask;      /* fn may not resize: the lock is held */
        /* Chain heads and the slots themselves are cache misses (the
         * cursor jumps about the slot array, the items about the arena):
         * two cursors run ahead, one fetching slots, one the items they
         * name, so that many loads are in flight while fn copies a chain
         * out, not one. */
        uint32_t near = v, far = v;
        for (uint32_t i = 0; i < CACHE_SCAN_AHEAD && near != 0; i++) {
            near = cache_rev32(cache_rev32(near | ~m) + 1);
        }
        for (uint32_t i = 0; i < 2 * CACHE_SCAN_AHEAD && far != 0; i++) {
            far = cache_rev32(cache_rev32(far | ~m) + 1);
        }
        do {
            uint32_t next = cache_rev32(cache_rev32(v | ~m) + 1);
            if (far != 0) {
                __builtin_prefetch(&b->slots[far & m]);
                far = cache_rev32(cache_rev32(far | ~m) + 1);
            }
            if (near != 0) {
                cache_prefetch(cache, b->slots[near & m]);
                near = cache_rev32(cache_rev32(near | ~m) + 1);
            }
            for (uint32_t ref = b->slots[v & m]; ref != 0;) {
                bc_item_t *it = cache_item(cache, ref);
                ref = it->hnext;
                cache_prefetch(cache, ref);
                if (item_is_dead(cache, it, now)) continue;
                if (!fn(it, ctx)) go_on = false;   /* the chain is finished all the same */
            }
            v = next;
        } while (go_on && v != 0);
    }
    pthread_mutex_unlock(&s->lock);
    *cursor = v;
    return BC_OK;
}

/*
 * Time proportional to the bucket: its chains are walked once and each item
 * is marked gone in its segment; the segments' memory comes back when
 * eviction reaches them, or at once for a segment left with no live item.
 */
uint64_t
bc_cache_bucket_drop(bc_cache_t *cache, uint32_t bucket)
{
    if (bucket >= cache->nbuckets) return 0;
    cache_bucket_t *b = &cache->buckets[bucket];
    cache_shard_t *s = &cache->shards[bucket & cache->shard_mask];
    uint64_t dropped = 0;

    pthread_mutex_lock(&s->lock);
    if (b->slots != NULL) {
        for (uint32_t i = 0; i <= b->mask; i++) {
            uint32_t ref = b->slots[i];
            b->slots[i] = 0;
            if (i + CACHE_RESIZE_PREFETCH <= b->mask) {
                cache_prefetch(cache, b->slots[i + CACHE_RESIZE_PREFETCH]);
            }
            while (ref != 0) {
                bc_item_t *it = cache_item(cache, ref);
                ref = it->hnext;
                cache_prefetch(cache, ref);
                it->hnext = 0;
                s->data_bytes -= item_data_bytes(it);
                do_item_gone(cache, it);
                dropped++;
            }
        }
        shard_items_add(s, -(int64_t)dropped);
        b->count = 0;
        b->bytes = 0;
        do_table_shrink(cache, b);   /* count is 0: frees the slot array */
    }
    cache_notify(cache, BC_CACHE_EV_DROP, NULL, NULL, 0, bucket, b);
    pthread_mutex_unlock(&s->lock);
    return dropped;
}

void
bc_cache_get_stats(bc_cache_t *cache, bc_cache_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    for (uint32_t i = 0; i < cache->nshards; i++) {
        cache_shard_t *s = &cache->shards[i];
        pthread_mutex_lock(&s->lock);
        out->curr_items += atomic_load_explicit(&s->curr_items, memory_order_relaxed);
        out->total_items += s->total_items;
        out->data_bytes += s->data_bytes;
        out->evictions += s->evictions;
        out->expired_unfetched += s->expired_unfetched;
        out->evicted_unfetched += s->evicted_unfetched;
        out->reclaimed += s->reclaimed;
        out->expired_active += s->expired_active;
        out->flushed += s->flushed;
        pthread_mutex_unlock(&s->lock);
    }
    bc_segs_t *segs = &cache->segs;
    pthread_mutex_lock(&segs->lock);
    out->pinned_bytes = segs->draining_bytes;
    out->segment_size = segs->seg_size;
    out->segments_backed = segs->nseg - segs->nunbacked;
    out->segments_free = segs->nfree;
    out->segments_evicted = segs->evicted_segs;
    out->segments_compacted = segs->compacted_segs;
    out->segments_prefaulted = segs->prefaulted_segs;
    out->items_moved = segs->moved_items;
    pthread_mutex_unlock(&segs->lock);
    out->mem_used = atomic_load_explicit(&cache->mem_used, memory_order_relaxed);
    out->mem_limit = cache_mem_limit(cache);
}

void
bc_cache_set_tap(bc_cache_t *cache, bc_cache_tap_fn fn, void *ctx)
{
    if (fn == NULL) atomic_store_explicit(&cache->tap, NULL, memory_order_release);
    cache->tap_ctx = ctx;
    if (fn != NULL) atomic_store_explicit(&cache->tap, fn, memory_order_release);
}

void
bc_cache_tap_bucket(bc_cache_t *cache, uint32_t bucket, bool on)
{
    if (bucket < cache->nbuckets) atomic_store(&cache->buckets[bucket].tapped, on);
}

uint64_t
bc_cache_flush_count(const bc_cache_t *cache)
{
    return atomic_load(&((bc_cache_t *)cache)->flushes);
}

uint64_t
bc_cache_cas_last(const bc_cache_t *cache)
{
    return atomic_load(&((bc_cache_t *)cache)->cas_last);
}

void
bc_cache_set_observer(bc_cache_t *cache, bc_cache_observer_fn fn, void *ctx)
{
    cache->observer_ctx = ctx;
    cache->observer = fn;
}
