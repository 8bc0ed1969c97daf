/*
 * cache.c -- the storage engine: per-bucket hash tables, shards, memory
 * accounting, eviction, expiry and memcached's store semantics.
 *
 * ONE FILE, about 1600 lines, on purpose: every function here works on the
 * same private tables under the one LOCKING RULE below, and most of them
 * are do_* helpers of one another.  Split, the rule and those helpers
 * would have to be shared through a header, and a lock's use could no
 * longer be checked against its rule in one place.  The pieces that need
 * no shard lock live apart: the item (item.h), the eviction policies
 * (evict/), item frames (item_frame.c) and change trackers (tap.c).
 *
 * HOW IT IS LAID OUT
 *
 *   key --murmur3--> hash --+-- hash % nbuckets  = bucket  (which table)
 *                           '-- hash / nbuckets  = q       (slot in table)
 *
 *   buckets[nbuckets]                      shards[nshards]
 *   +--------------------------+           +----------------------------+
 *   | slots[] -> item -> item  |  bucket   | mutex                      |
 *   | count, bytes             | --------> | policy instance (evict.h)  |
 *   +--------------------------+  % nshards| counters                   |
 *                                          +----------------------------+
 *
 *   Each bucket owns a chained hash table (an array of item pointers, the
 *   chain running through item->hnext) that doubles when its load passes
 *   1.5 and halves below 1/8, so a bucket's memory follows its item count
 *   and a bucket can be walked, serialised or dropped in time proportional
 *   to its own size.  The bucket index uses hash % nbuckets, so inside one
 *   bucket all hashes agree on those bits; the slot therefore comes from the
 *   quotient hash / nbuckets, which carries the remaining bits.
 *
 * LOCKING RULE
 *   shard->lock protects: the tables of the shard's buckets (slots, count,
 *   bytes), the shard's policy instance and counters, and, for every item
 *   linked in the shard, hnext/prev/next/pbits/pfreq/iflags/exptime/time
 *   and (while linked) cas.  No function holds two shard locks.  do_*
 *   functions require the caller to hold the lock of the shard they work
 *   on.  scan_lock (active expiry cursor) is taken before a shard lock,
 *   never after.  Everything else is atomic: mem_used, pinned_bytes, the
 *   CAS counter, the flush marks and item refcounts.
 *
 * ITEM LIFETIME
 *   refcount = 1 for the link (hash table + policy) + 1 per reader.  Readers
 *   increment only under the shard lock (so a linked item found by a lookup
 *   is alive); anyone may decrement without a lock.  Whoever drops the
 *   count to 0 frees the item.  Unlinking drops the link reference; an item
 *   still referenced afterwards is "pinned" (counted in pinned_bytes) and
 *   freed by its last reader.  An item's value is written in place only by
 *   incr/decr, and only when the link is its sole reference, so readers
 *   never see a value change under them.  Eviction never takes an item a
 *   reader holds: the policy's victim is handed back (requeue) and the next
 *   one tried.  A lookup that would push one item's count past
 *   CACHE_REFCOUNT_MAX (16-bit counter) is answered as a miss instead.
 *
 * MEMORY ACCOUNTING
 *   mem_used charges what malloc really hands out (bc__evict_mem_charge: usable
 *   size + chunk header) for items, bucket slot arrays, policy state and the
 *   engine's own fixed arrays.  bc_item_alloc reserves an item's bytes with
 *   a compare-and-swap on mem_used *before* any shard lock is taken; when
 *   the reservation would pass mem_limit it evicts one item at a time (one
 *   shard lock at a time: first the shard the item will live in, then the
 *   others round-robin) until it fits, or fails with BC_ENOMEM when nothing
 *   anywhere can be evicted.  Slot arrays and policy tables grow under a
 *   shard lock without a reservation; the operation that grew them evicts
 *   back under the limit right after releasing the lock.  Pinned items stay
 *   charged until freed, so the limit bounds real memory even while slow
 *   clients hold replies.
 *
 * EXPIRY AND FLUSH
 *   An item is dead when exptime != 0 && exptime <= now (memcached's rule)
 *   or when flush_all invalidated it.  Dead items are unlinked lazily by
 *   whatever lookup meets them, by eviction, and by bc_cache_expire_scan,
 *   which walks buckets incrementally from a saved cursor.
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
 */
#include <malloc.h>
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

/* Engine-private item flags (bc_item_t.iflags; shard lock). */
#define ITEM_FETCHED 0x02u     /* read at least once since stored */
#define ITEM_PINNED  0x04u     /* unlinked while referenced: in pinned_bytes */

#define CACHE_DEFAULT_NSHARDS      64u
#define CACHE_DEFAULT_MAX_ITEM     (1024u * 1024u)
#define CACHE_TABLE_MIN_SLOTS      4u
#define CACHE_RESIZE_PREFETCH      8u        /* chains fetched ahead by a table resize */
/* Readers beyond this many on one item are refused (treated as a miss)
 * rather than overflowing the 16-bit count. */
#define CACHE_REFCOUNT_MAX         60000u
/* Pinned victims one eviction attempt may skip in a shard. */
#define CACHE_EVICT_TRIES          16
/* append/prepend/incr retries when the item changes while unlocked. */
#define CACHE_RETRIES              64

/* memcached 1.6 counts an item as its 48-byte header + 8-byte CAS + key +
 * NUL + value with CRLF; we size-check the same way so the -I limit lets
 * exactly the same values through. */
#define CACHE_MC_ITEM_HEADER       56u

typedef struct cache_bucket {
    bc_item_t **slots;          /* NULL while the bucket has no items */
    uint32_t mask;              /* nslots - 1 */
    uint32_t count;             /* linked items */
    uint64_t bytes;             /* charged bytes of those items */
    uint64_t evictions;         /* live items evicted from it */
    uint64_t expirations;       /* expired items removed from it (not flushed ones) */
    _Atomic bool tapped;        /* report changes to the tap (any thread) */
} cache_bucket_t;

typedef struct cache_shard {
    _Alignas(64) pthread_mutex_t lock;   /* see LOCKING RULE */
    void *policy;
    uint64_t curr_items;
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
    size_t mem_limit;
    size_t max_item_size;
    uint32_t nbuckets;
    uint32_t nshards;
    uint32_t shard_mask;
    uint32_t (*now)(void);
    /* memcached's process_started (its start - 62 s): an absolute expiry
     * at or before it counts as "1", already expired (realtime()). */
    uint32_t started;
    const bc_evict_ops_t *policy;
    bc_evict_env_t env;

    _Atomic uint64_t mem_used;
    _Atomic uint64_t pinned_bytes;
    _Atomic uint64_t cas_last;        /* last CAS handed out */
    _Atomic uint32_t oldest_live;     /* flush mark (0 = none) */
    _Atomic uint64_t oldest_cas;      /* items with a smaller CAS are flushed */
    _Atomic uint32_t evict_cursor;    /* round-robin start for foreign shards */

    pthread_mutex_t scan_lock;        /* guards scan_bucket/scan_slot */
    uint32_t scan_bucket;
    uint32_t scan_slot;

    cache_bucket_t *buckets;
    cache_shard_t *shards;

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

/* mem_limit may be changed at run time (bc_cache_set_mem_limit). */
static inline size_t
cache_mem_limit(const bc_cache_t *cache)
{
    return __atomic_load_n(&cache->mem_limit, __ATOMIC_RELAXED);
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

/*
 * What glibc's malloc will charge for a request, before we make it: chunks
 * are 16-byte multiples holding the request plus an 8-byte header, at least
 * 32 bytes.  After malloc the real figure (bc__evict_mem_charge) replaces the
 * estimate; with other allocators the estimate is just that.
 */
static inline uint64_t
cache_mem_estimate(size_t request)
{
    size_t chunk = (request + sizeof(size_t) + 15u) & ~(size_t)15u;
    return chunk < 32u ? 32u : chunk;
}

static inline size_t
item_request_size(size_t nkey, uint32_t nbytes)
{
    return offsetof(bc_item_t, data) + nkey + 1u + nbytes;
}

static inline uint16_t
item_refs(const bc_item_t *it)
{
    return atomic_load_explicit(&((bc_item_t *)it)->refcount, memory_order_acquire);
}

static inline bool
item_key_eq(const bc_item_t *it, const char *key, size_t nkey, uint32_t hash)
{
    return it->hash == hash && it->nkey == nkey && memcmp(it->data, key, nkey) == 0;
}

/* Frees an item whose refcount reached 0. */
static void
item_free(bc_cache_t *cache, bc_item_t *it)
{
    uint64_t charge = bc__evict_mem_charge(it);
    if (it->iflags & ITEM_PINNED) {
        atomic_fetch_sub_explicit(&cache->pinned_bytes, charge, memory_order_relaxed);
    }
    cache_mem_sub(cache, charge);
    free(it);
}

/* Frees a list of dead items chained through hnext (no lock needed). */
static void
cache_free_list(bc_cache_t *cache, bc_item_t *list)
{
    while (list != NULL) {
        bc_item_t *next = list->hnext;
        item_free(cache, list);
        list = next;
    }
}

/* flush_all check; see EXPIRY AND FLUSH above. */
static inline bool
item_is_flushed(const bc_cache_t *cache, const bc_item_t *it, uint32_t now)
{
    (void)now;   /* a due delayed flush was turned into a mark by cache_clock */
    return it->cas < atomic_load_explicit(&((bc_cache_t *)cache)->oldest_cas,
                                          memory_order_acquire);
}

static inline bool
item_is_expired(const bc_item_t *it, uint32_t now)
{
    return it->exptime != 0 && it->exptime <= now;
}

/* ------------------------------------------------------------------------ */
/* bucket tables (shard lock held)                                          */
/* ------------------------------------------------------------------------ */

/* Asks the CPU to start loading an item's header (NULL is fine). */
static inline void
cache_prefetch(const bc_item_t *it)
{
    if (it != NULL) __builtin_prefetch(it);
}

/* Rebuilds the bucket's table with nslots slots (a power of two). */
static bool
do_table_resize(bc_cache_t *cache, cache_bucket_t *b, uint32_t nslots)
{
    bc_item_t **slots = calloc(nslots, sizeof(*slots));
    if (slots == NULL) return false;
    uint32_t mask = nslots - 1;
    if (b->slots != NULL) {
        for (uint32_t i = 0; i <= b->mask; i++) {
            /* every item is read for its hash: fetch a few chains ahead */
            if (i + CACHE_RESIZE_PREFETCH <= b->mask) {
                cache_prefetch(b->slots[i + CACHE_RESIZE_PREFETCH]);
            }
            bc_item_t *it = b->slots[i];
            while (it != NULL) {
                bc_item_t *next = it->hnext;
                cache_prefetch(next);
                uint32_t idx = (it->hash / cache->nbuckets) & mask;
                it->hnext = slots[idx];
                slots[idx] = it;
                it = next;
            }
        }
        cache_mem_sub(cache, bc__evict_mem_charge(b->slots));
        free(b->slots);
    }
    cache_mem_add(cache, bc__evict_mem_charge(slots));
    b->slots = slots;
    b->mask = mask;
    return true;
}

/* Makes room for one more item: creates or doubles the table (load > 1.5).
 * Failing to grow is harmless: chains just get longer. */
static bool
do_table_reserve(bc_cache_t *cache, cache_bucket_t *b)
{
    if (b->slots == NULL) return do_table_resize(cache, b, CACHE_TABLE_MIN_SLOTS);
    uint64_t nslots = (uint64_t)b->mask + 1;
    if ((uint64_t)(b->count + 1) * 2 > nslots * 3 && nslots < (1u << 30)) {
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
do_table_find(const cache_loc_t *loc, const char *key, size_t nkey, uint32_t hash)
{
    const cache_bucket_t *b = loc->bucket;
    if (b->slots == NULL) return NULL;
    for (bc_item_t *it = b->slots[loc->q & b->mask]; it != NULL; it = it->hnext) {
        if (item_key_eq(it, key, nkey, hash)) return it;
    }
    return NULL;
}

static bc_item_t **
do_table_ref(const bc_cache_t *cache, cache_bucket_t *b, const bc_item_t *it)
{
    bc_item_t **pp = &b->slots[(it->hash / cache->nbuckets) & b->mask];
    while (*pp != it) pp = &(*pp)->hnext;
    return pp;
}

/* ------------------------------------------------------------------------ */
/* link / unlink (shard lock held)                                          */
/* ------------------------------------------------------------------------ */

/*
 * Drops the link reference of an item just taken out of the table.  If a
 * reader still holds it, it becomes pinned; if the count reaches 0 the item
 * goes on *freelist for the caller to free after unlocking.
 */
static void
do_item_drop_link(bc_cache_t *cache, bc_item_t *it, uint64_t charge, bc_item_t **freelist)
{
    it->iflags &= (uint8_t)~BC_ITEM_LINKED;
    if (item_refs(it) > 1) {
        it->iflags |= ITEM_PINNED;
        atomic_fetch_add_explicit(&cache->pinned_bytes, charge, memory_order_relaxed);
    }
    if (atomic_fetch_sub_explicit(&it->refcount, 1, memory_order_acq_rel) == 1) {
        it->hnext = *freelist;
        *freelist = it;
    }
}

/* Links a new item.  Returns false (nothing changed) only when the bucket
 * has no table and not even the smallest one can be allocated. */
static bool
do_item_link(bc_cache_t *cache, const cache_loc_t *loc, bc_item_t *it, uint32_t now)
{
    cache_bucket_t *b = loc->bucket;
    cache_shard_t *s = loc->shard;
    uint64_t charge = bc__evict_mem_charge(it);

    if (!do_table_reserve(cache, b)) return false;
    it->cas = atomic_fetch_add_explicit(&cache->cas_last, 1, memory_order_relaxed) + 1;
    it->iflags = (uint8_t)((it->iflags & BC_ITEM_META_MASK) | BC_ITEM_LINKED);
    it->atime = now;
    uint32_t idx = loc->q & b->mask;
    it->hnext = b->slots[idx];
    b->slots[idx] = it;
    b->count++;
    b->bytes += charge;
    s->curr_items++;
    s->total_items++;
    s->data_bytes += it->nkey + bc_item_value_len(it);
    cache->policy->on_insert(s->policy, it, now);
    return true;
}

/* Takes a linked item out of its table and policy. */
static void
do_item_unlink(bc_cache_t *cache, const cache_loc_t *loc, bc_item_t *it,
               bc_evict_reason_t reason, bc_item_t **freelist)
{
    cache_bucket_t *b = loc->bucket;
    cache_shard_t *s = loc->shard;
    uint64_t charge = bc__evict_mem_charge(it);

    bc_item_t **pp = do_table_ref(cache, b, it);
    *pp = it->hnext;
    it->hnext = NULL;
    cache->policy->on_remove(s->policy, it, reason);
    b->count--;
    b->bytes -= charge;
    s->curr_items--;
    s->data_bytes -= it->nkey + bc_item_value_len(it);
    do_item_drop_link(cache, it, charge, freelist);
}

/* new_it (unlinked, caller's reference becomes the link) replaces old_it. */
static void
do_item_replace(bc_cache_t *cache, const cache_loc_t *loc, bc_item_t *old_it,
                bc_item_t *new_it, uint32_t now, bc_item_t **freelist)
{
    cache_bucket_t *b = loc->bucket;
    cache_shard_t *s = loc->shard;
    uint64_t old_charge = bc__evict_mem_charge(old_it);
    uint64_t new_charge = bc__evict_mem_charge(new_it);

    bc_item_t **pp = do_table_ref(cache, b, old_it);
    new_it->hnext = old_it->hnext;
    *pp = new_it;
    old_it->hnext = NULL;
    new_it->cas = atomic_fetch_add_explicit(&cache->cas_last, 1, memory_order_relaxed) + 1;
    new_it->iflags = (uint8_t)((new_it->iflags & BC_ITEM_META_MASK) | BC_ITEM_LINKED);
    new_it->atime = now;
    cache->policy->on_replace(s->policy, old_it, new_it, now);
    b->bytes = b->bytes - old_charge + new_charge;
    s->total_items++;
    s->data_bytes = s->data_bytes - (old_it->nkey + bc_item_value_len(old_it)) +
                    (new_it->nkey + bc_item_value_len(new_it));
    do_item_drop_link(cache, old_it, old_charge, freelist);
}

/*
 * A fetch, as memcached's segmented LRU counts it (do_item_bump): the
 * first marks the item fetched, a later one refreshes its access time.
 */
static inline void
item_bump(bc_item_t *it, uint32_t now)
{
    if (it->iflags & ITEM_FETCHED) it->atime = now;
    it->iflags |= ITEM_FETCHED;
}

/* Unlinks a dead (expired or flushed) item and counts it. */
static void
do_item_reclaim(bc_cache_t *cache, const cache_loc_t *loc, bc_item_t *it, uint32_t now,
                bool active, bc_item_t **freelist)
{
    cache_shard_t *s = loc->shard;
    if (item_is_flushed(cache, it, now)) {
        s->flushed++;
    } else {
        loc->bucket->expirations++;
        if (!(it->iflags & ITEM_FETCHED)) s->expired_unfetched++;
    }
    s->reclaimed++;
    if (active) s->expired_active++;
    do_item_unlink(cache, loc, it, BC_EVICT_EXPIRED, freelist);
}

/*
 * The lookup every operation starts with: returns the live item for the
 * key, or NULL.  A dead item met on the way is reclaimed.
 */
static bc_item_t *
do_item_find_live(bc_cache_t *cache, const cache_loc_t *loc, const char *key, size_t nkey,
                  uint32_t hash, uint32_t now, bc_item_t **freelist)
{
    bc_item_t *it = do_table_find(loc, key, nkey, hash);
    if (it == NULL) return NULL;
    if (item_is_expired(it, now) || item_is_flushed(cache, it, now)) {
        do_item_reclaim(cache, loc, it, now, false, freelist);
        do_table_shrink(cache, loc->bucket);
        return NULL;
    }
    return it;
}

/* ------------------------------------------------------------------------ */
/* eviction and memory reservation                                          */
/* ------------------------------------------------------------------------ */

/*
 * Frees one item of shard `si` (the policy's victim, or a dead item the
 * policy names).  Victims a reader holds are requeued and skipped.
 * Returns true when an item was unlinked.  Takes and releases the lock.
 */
static bool
cache_evict_one(bc_cache_t *cache, uint32_t si)
{
    cache_shard_t *s = &cache->shards[si];
    bc_item_t *freelist = NULL;
    bool done = false;
    uint32_t now = cache_clock(cache);

    pthread_mutex_lock(&s->lock);
    for (int tries = 0; tries < CACHE_EVICT_TRIES; tries++) {
        bc_item_t *it = cache->policy->pick_victim(s->policy, now);
        if (it == NULL) break;
        if (item_refs(it) > 1) {
            cache->policy->requeue(s->policy, it, now);
            continue;
        }
        cache_loc_t loc;
        cache_locate(cache, it->hash, &loc);
        if (item_is_expired(it, now) || item_is_flushed(cache, it, now)) {
            do_item_reclaim(cache, &loc, it, now, false, &freelist);
        } else {
            s->evictions++;
            loc.bucket->evictions++;
            if (!(it->iflags & ITEM_FETCHED)) s->evicted_unfetched++;
            do_item_unlink(cache, &loc, it, BC_EVICT_EVICTED, &freelist);
        }
        do_table_shrink(cache, loc.bucket);
        done = true;
        break;
    }
    pthread_mutex_unlock(&s->lock);
    cache_free_list(cache, freelist);
    return done;
}

static bool
cache_try_reserve(bc_cache_t *cache, uint64_t need)
{
    uint64_t cur = atomic_load_explicit(&cache->mem_used, memory_order_relaxed);
    while (cur + need <= cache_mem_limit(cache)) {
        if (atomic_compare_exchange_weak_explicit(&cache->mem_used, &cur, cur + need,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed)) {
            return true;
        }
    }
    return false;
}

static bool
cache_over_limit(bc_cache_t *cache, uint64_t extra)
{
    return atomic_load_explicit(&cache->mem_used, memory_order_relaxed) + extra >
           cache_mem_limit(cache);
}

/*
 * Evicts until `extra` more bytes fit under the limit (reserve == false) or
 * until they are reserved (reserve == true).  Home shard first, then every
 * shard round-robin from a shared cursor, rounds repeated while any of them
 * makes progress.  Returns false when nothing more can be evicted.
 */
static bool
cache_make_room(bc_cache_t *cache, uint32_t home, uint64_t extra, bool reserve)
{
#define CACHE_ROOM_DONE() \
    (reserve ? cache_try_reserve(cache, extra) : !cache_over_limit(cache, extra))
    if (CACHE_ROOM_DONE()) return true;
    while (cache_evict_one(cache, home)) {
        if (CACHE_ROOM_DONE()) return true;
    }
    for (;;) {
        bool progress = false;
        uint32_t start = atomic_fetch_add_explicit(&cache->evict_cursor, 1,
                                                   memory_order_relaxed);
        for (uint32_t i = 0; i < cache->nshards; i++) {
            if (cache_evict_one(cache, (start + i) & cache->shard_mask)) {
                progress = true;
                if (CACHE_ROOM_DONE()) return true;
            }
        }
        if (!progress) return CACHE_ROOM_DONE();
    }
#undef CACHE_ROOM_DONE
}

static inline uint32_t
cache_shard_of(const bc_cache_t *cache, uint32_t hash)
{
    return (hash % cache->nbuckets) & cache->shard_mask;
}

/* ------------------------------------------------------------------------ */
/* lifecycle                                                                */
/* ------------------------------------------------------------------------ */

static void
cache_free_all(bc_cache_t *cache)
{
    if (cache->buckets != NULL) {
        for (uint32_t i = 0; i < cache->nbuckets; i++) {
            cache_bucket_t *b = &cache->buckets[i];
            if (b->slots == NULL) continue;
            for (uint32_t j = 0; j <= b->mask; j++) {
                bc_item_t *it = b->slots[j];
                while (it != NULL) {
                    bc_item_t *next = it->hnext;
                    free(it);
                    it = next;
                }
            }
            free(b->slots);
        }
        free(cache->buckets);
    }
    if (cache->shards != NULL) {
        for (uint32_t i = 0; i < cache->nshards; i++) {
            cache_shard_t *s = &cache->shards[i];
            if (s->policy != NULL) {
                cache->policy->destroy(s->policy);
                pthread_mutex_destroy(&s->lock);
            }
        }
        free(cache->shards);
    }
    pthread_mutex_destroy(&cache->scan_lock);
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

    cache->buckets = calloc(nbuckets, sizeof(*cache->buckets));
    cache->counters = bc_counters_create(nbuckets);
    cache->shards = aligned_alloc(_Alignof(cache_shard_t), nshards * sizeof(cache_shard_t));
    if (cache->buckets == NULL || cache->shards == NULL || cache->counters == NULL) {
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
    for (uint32_t i = 0; i < nshards; i++) {
        cache_shard_t *s = &cache->shards[i];
        s->policy = policy->create(&cache->env);
        if (s->policy == NULL) {
            pthread_mutexattr_destroy(&attr);
            cache_free_all(cache);
            return BC_ENOMEM;
        }
        pthread_mutex_init(&s->lock, &attr);
    }
    pthread_mutexattr_destroy(&attr);

    if (atomic_load(&cache->mem_used) >= cache_mem_limit(cache)) {
        log_error("cache: memory limit %zu bytes is below the engine's own %llu bytes",
                  cache->mem_limit, (unsigned long long)atomic_load(&cache->mem_used));
        cache_free_all(cache);
        return BC_EINVAL;
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

/*
 * The one lookup: finds a live item, counts the access (memcached counts a
 * touch as a fetch) and sets its expiry when `touch`.  With `ref`, returns
 * it referenced; without, the result only says found (non-NULL) and must
 * not be dereferenced.
 */
static bc_item_t *
cache_get(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash, bool touch,
          uint32_t exptime, bool ref)
{
    cache_loc_t loc;
    bc_item_t *freelist = NULL;
    if (key == NULL || nkey == 0 || nkey > BC_KEY_MAX_LEN) return NULL;
    cache_locate(cache, hash, &loc);
    uint32_t now = cache_clock(cache);

    pthread_mutex_lock(&loc.shard->lock);
    bc_item_t *it = do_item_find_live(cache, &loc, key, nkey, hash, now, &freelist);
    if (it != NULL) {
        if (ref && item_refs(it) >= CACHE_REFCOUNT_MAX) {
            it = NULL;   /* absurd fan-out on one item: refuse, never overflow */
        } else {
            if (ref) atomic_fetch_add_explicit(&it->refcount, 1, memory_order_relaxed);
            item_bump(it, now);
            if (touch) {
                it->exptime = exptime;
                cache_notify_item(cache, BC_CACHE_EV_TOUCH, it, loc.bucket);
            }
            cache->policy->on_access(loc.shard->policy, it, now);
        }
    }
    pthread_mutex_unlock(&loc.shard->lock);
    cache_free_list(cache, freelist);
    if (ref) {
        bc_counters_block_t *blk = bc_counters_mine(cache->counters);
        if (blk != NULL) {
            uint32_t bi = (uint32_t)(loc.bucket - cache->buckets);
            if (it != NULL) {
                bc_counters_add(blk, bi, hits, 1);
                bc_counters_add(blk, bi, bytes_written, bc_item_value_len(it));
            } else {
                bc_counters_add(blk, bi, misses, 1);
            }
            if (bc_counters_tick(blk)) bc_counters_sample(cache->counters, blk, bi, key, nkey);
        }
    }
    return it;
}

bc_item_t *
bc_cache_get(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash)
{
    return cache_get(cache, key, nkey, hash, false, 0, true);
}

bc_item_t *
bc_cache_get_touch(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash,
                   uint32_t exptime)
{
    return cache_get(cache, key, nkey, hash, true, exptime, true);
}

void
bc_item_release(bc_cache_t *cache, bc_item_t *it)
{
    if (it == NULL) return;
    if (atomic_fetch_sub_explicit(&it->refcount, 1, memory_order_acq_rel) == 1) {
        item_free(cache, it);
    }
}

void
bc_item_retain(bc_item_t *it)
{
    atomic_fetch_add_explicit(&it->refcount, 1, memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/* writes                                                                   */
/* ------------------------------------------------------------------------ */

void
bc_cache_set_mem_limit(bc_cache_t *cache, size_t limit)
{
    __atomic_store_n(&cache->mem_limit, limit, __ATOMIC_RELAXED);
    /* Shrinking: evict down to the new limit now rather than on the next
     * store. */
    for (uint32_t i = 0; i < cache->nshards && cache_over_limit(cache, 0); i++) {
        (void)cache_make_room(cache, i, 0, false);
    }
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
        cache->max_item_size) {
        *st = BC_ETOOLARGE;
        return NULL;
    }
    size_t request = item_request_size(nkey, nbytes);
    uint64_t estimate = cache_mem_estimate(request);
    if (estimate > cache_mem_limit(cache) ||
        !cache_make_room(cache, cache_shard_of(cache, hash), estimate, true)) {
        *st = BC_ENOMEM;
        return NULL;
    }
    bc_item_t *it = malloc(request);
    if (it == NULL) {
        cache_mem_sub(cache, estimate);
        *st = BC_ENOMEM;
        return NULL;
    }
    uint64_t charge = bc__evict_mem_charge(it);
    if (charge > estimate) {
        cache_mem_add(cache, charge - estimate);
    } else if (charge < estimate) {
        cache_mem_sub(cache, estimate - charge);
    }

    it->hnext = it->prev = it->next = NULL;
    it->cas = 0;
    it->hash = hash;
    it->exptime = exptime;
    it->flags = flags;
    it->nbytes = nbytes;
    it->atime = 0;
    atomic_init(&it->refcount, 1);
    it->nkey = (uint8_t)nkey;
    it->iflags = 0;
    it->pbits = 0;
    it->pfreq = 0;
    memcpy(it->data, key, nkey);
    it->data[nkey] = '\0';

    if (charge > estimate && cache_over_limit(cache, 0)) {
        (void)cache_make_room(cache, cache_shard_of(cache, hash), 0, false);
    }
    *st = BC_OK;
    return it;
}

/* After a store grew a table: evict back under the limit. */
static void
cache_enforce_limit(bc_cache_t *cache, uint32_t hash)
{
    if (cache_over_limit(cache, 0)) {
        (void)cache_make_room(cache, cache_shard_of(cache, hash), 0, false);
    }
}

/*
 * append/prepend: the combined item must be allocated with no lock held
 * (allocation may evict), so the old item is referenced, copied unlocked,
 * and the result linked only if the key still holds that same item (same
 * pointer and CAS; the reference rules out address reuse).  Otherwise the
 * whole thing is retried against the new value.
 */
static bc_status_t
cache_store_concat(bc_cache_t *cache, bc_item_t *it, bool append, uint64_t cas_in,
                   uint64_t *cas_out)
{
    cache_loc_t loc;
    const char *key = bc_item_key(it);
    cache_locate(cache, it->hash, &loc);

    for (int attempt = 0; attempt < CACHE_RETRIES; attempt++) {
        bc_item_t *freelist = NULL;
        uint32_t now = cache_clock(cache);

        pthread_mutex_lock(&loc.shard->lock);
        bc_item_t *old = do_item_find_live(cache, &loc, key, it->nkey, it->hash, now,
                                           &freelist);
        if (old == NULL) {
            pthread_mutex_unlock(&loc.shard->lock);
            cache_free_list(cache, freelist);
            bc_item_release(cache, it);
            return BC_ENOTSTORED;
        }
        if (cas_in != 0 && old->cas != cas_in) {
            /* ms MA/MP with C: memcached's simplified CAS check. */
            pthread_mutex_unlock(&loc.shard->lock);
            cache_free_list(cache, freelist);
            bc_item_release(cache, it);
            return BC_EEXISTS;
        }
        atomic_fetch_add_explicit(&old->refcount, 1, memory_order_relaxed);
        uint64_t old_cas = old->cas;
        uint32_t old_exptime = old->exptime;
        pthread_mutex_unlock(&loc.shard->lock);
        cache_free_list(cache, freelist);
        freelist = NULL;

        uint32_t old_len = bc_item_value_len(old), add_len = bc_item_value_len(it);
        uint64_t total = (uint64_t)old_len + add_len + 2;
        bc_status_t st = BC_ETOOLARGE;
        bc_item_t *nit = NULL;
        if (total <= UINT32_MAX) {
            nit = bc_item_alloc(cache, key, it->nkey, it->hash, old->flags, old_exptime,
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
        bc_item_t *cur = do_item_find_live(cache, &loc, key, it->nkey, it->hash, now,
                                           &freelist);
        bool same = cur == old && cur->cas == old_cas;
        if (same) {
            /* A touch in between may have moved the expiry: keep the newest. */
            nit->exptime = cur->exptime;
            do_item_replace(cache, &loc, cur, nit, now, &freelist);
            cache_notify_item(cache, BC_CACHE_EV_STORE, nit, loc.bucket);
            if (cas_out != NULL) *cas_out = nit->cas;
        }
        pthread_mutex_unlock(&loc.shard->lock);
        cache_free_list(cache, freelist);
        bc_item_release(cache, old);
        if (same) {
            /* nit belongs to the table now: it may already be gone. */
            uint32_t hash = it->hash;
            bc_item_release(cache, it);
            cache_enforce_limit(cache, hash);
            return BC_OK;
        }
        bc_item_release(cache, nit);
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
        cache_count_write(cache, blk, it->hash, bc_item_key(it), it->nkey, true, true,
                          it->nkey + bc_item_value_len(it));
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
    bc_item_t *freelist = NULL;
    bc_status_t st;
    uint32_t hash = it->hash;
    cache_locate(cache, hash, &loc);
    uint32_t now = cache_clock(cache);

    pthread_mutex_lock(&loc.shard->lock);
    bc_item_t *old = do_item_find_live(cache, &loc, bc_item_key(it), it->nkey, hash, now,
                                       &freelist);
    switch (mode) {
    case BC_STORE_SET:
        st = BC_OK;
        break;
    case BC_STORE_ADD:
        st = old != NULL ? BC_ENOTSTORED : BC_OK;
        if (old != NULL) old->atime = now;       /* memcached bumps it */
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
            bc_item_set_meta(it, (uint8_t)((it->iflags & BC_ITEM_META_MASK) | BC_ITEM_STALE |
                                           (old->iflags & BC_ITEM_WON)));
            st = BC_OK;
        }
        break;
    default:
        st = BC_EINVAL;
        break;
    }
    if (st == BC_OK) {
        if (old != NULL) {
            do_item_replace(cache, &loc, old, it, now, &freelist);
        } else if (!do_item_link(cache, &loc, it, now)) {
            st = BC_ENOMEM;
        }
        if (st == BC_OK && keep_cas != 0) {
            it->cas = keep_cas;
            cache_cas_raise(cache, keep_cas);
        }
        if (st == BC_OK) cache_notify_item(cache, BC_CACHE_EV_STORE, it, loc.bucket);
        if (st == BC_OK && cas_out != NULL) *cas_out = it->cas;
    }
    pthread_mutex_unlock(&loc.shard->lock);
    cache_free_list(cache, freelist);
    if (st != BC_OK) {
        bc_item_release(cache, it);
    } else {
        cache_enforce_limit(cache, hash);
    }
    return st;
}

bc_status_t
bc_cache_delete(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash)
{
    cache_loc_t loc;
    bc_item_t *freelist = NULL;
    if (key == NULL || nkey == 0 || nkey > BC_KEY_MAX_LEN) return BC_ENOTFOUND;
    cache_locate(cache, hash, &loc);
    uint32_t now = cache_clock(cache);

    pthread_mutex_lock(&loc.shard->lock);
    bc_item_t *it = do_item_find_live(cache, &loc, key, nkey, hash, now, &freelist);
    if (it != NULL) {
        do_item_unlink(cache, &loc, it, BC_EVICT_DELETED, &freelist);
        do_table_shrink(cache, loc.bucket);
        cache_notify(cache, BC_CACHE_EV_DELETE, NULL, key, nkey, 0, loc.bucket);
    }
    pthread_mutex_unlock(&loc.shard->lock);
    cache_free_list(cache, freelist);
    bc_counters_block_t *blk = bc_counters_mine(cache->counters);
    if (blk != NULL) cache_count_write(cache, blk, hash, key, nkey, false, it != NULL, 0);
    return it != NULL ? BC_OK : BC_ENOTFOUND;
}

bc_status_t
bc_cache_touch(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash,
               uint32_t exptime)
{
    return cache_get(cache, key, nkey, hash, true, exptime, false) != NULL ? BC_OK : BC_ENOTFOUND;
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
    bc_item_t *freelist = NULL;
    cache_locate(cache, hash, &loc);
    uint32_t now = cache_clock(cache);
    pthread_mutex_lock(&loc.shard->lock);
    bc_item_t *old = do_item_find_live(cache, &loc, key, nkey, hash, now, &freelist);
    bool linked = old == NULL && do_item_link(cache, &loc, nit, now);
    if (linked) {
        if (m->set_exptime_created) nit->exptime = m->exptime_created;
        m->value = m->initial;
        m->cas = nit->cas;
        m->exptime_before = 0;
        m->created = true;
        cache_notify_item(cache, BC_CACHE_EV_STORE, nit, loc.bucket);
    }
    pthread_mutex_unlock(&loc.shard->lock);
    cache_free_list(cache, freelist);
    if (!linked) {
        bc_item_release(cache, nit);
        return old != NULL ? BC_EEXISTS : BC_ENOMEM;
    }
    cache_enforce_limit(cache, hash);
    return BC_OK;
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
        bc_item_t *freelist = NULL;
        uint32_t now = cache_clock(cache);
        uint64_t value;
        char buf[24];

        pthread_mutex_lock(&loc.shard->lock);
        bc_item_t *it = do_item_find_live(cache, &loc, key, nkey, hash, now, &freelist);
        if (it == NULL) {
            pthread_mutex_unlock(&loc.shard->lock);
            cache_free_list(cache, freelist);
            if (!m->vivify) return BC_ENOTFOUND;
            bc_status_t st = marith_vivify(cache, key, nkey, hash, m);
            if (st == BC_EEXISTS) continue;
            return st;
        }
        /* memcached's order: empty value, then the CAS, then the number. */
        bc_status_t bad = BC_OK;
        if (it->nbytes <= 2) bad = BC_ENONNUMERIC;
        else if (m->cas_in != 0 && it->cas != m->cas_in) bad = BC_EEXISTS;
        else if (!arith_parse(bc_item_value(it), bc_item_value_len(it), &value)) bad = BC_ENONNUMERIC;
        if (bad != BC_OK) {
            pthread_mutex_unlock(&loc.shard->lock);
            cache_free_list(cache, freelist);
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

        if (len + 2 <= it->nbytes && item_refs(it) == 1) {
            /* Nobody but the table holds it: rewrite in place, padding a
             * shorter number with spaces (memcached does exactly this). */
            char *v = bc_item_value(it);
            memcpy(v, buf, len);
            memset(v + len, ' ', it->nbytes - 2 - len);
            it->cas = atomic_fetch_add_explicit(&cache->cas_last, 1, memory_order_relaxed) + 1;
            it->atime = now;
            if (m->set_exptime_hit) it->exptime = m->exptime_hit;
            m->cas = it->cas;
            cache->policy->on_access(loc.shard->policy, it, now);
            cache_notify_item(cache, BC_CACHE_EV_STORE, it, loc.bucket);
            pthread_mutex_unlock(&loc.shard->lock);
            cache_free_list(cache, freelist);
            return BC_OK;
        }

        /* Longer, or readers hold the old value: store a new item. */
        atomic_fetch_add_explicit(&it->refcount, 1, memory_order_relaxed);
        uint64_t old_cas = it->cas;
        uint32_t flags = it->flags, exptime = it->exptime;
        pthread_mutex_unlock(&loc.shard->lock);
        cache_free_list(cache, freelist);
        freelist = NULL;

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
        bc_item_t *cur = do_item_find_live(cache, &loc, key, nkey, hash, now, &freelist);
        bool same = cur == it && cur->cas == old_cas;
        if (same) {
            nit->exptime = cur->exptime;
            do_item_replace(cache, &loc, cur, nit, now, &freelist);
            m->cas = nit->cas;
            cache_notify_item(cache, BC_CACHE_EV_STORE, nit, loc.bucket);
        }
        pthread_mutex_unlock(&loc.shard->lock);
        cache_free_list(cache, freelist);
        bc_item_release(cache, it);
        if (same) {
            cache_enforce_limit(cache, hash);
            return BC_OK;
        }
        bc_item_release(cache, nit);
    }
    log_warn("cache: incr/decr gave up after %d concurrent changes of the key",
             CACHE_RETRIES);
    return BC_ENOMEM;
}

/* The meta state of a linked item (shard lock held). */
static void
item_meta(const bc_item_t *it, bc_item_meta_t *out)
{
    out->exptime = it->exptime;
    out->atime = it->atime;
    out->fetched = (it->iflags & ITEM_FETCHED) != 0;
    out->stale = (it->iflags & BC_ITEM_STALE) != 0;
    out->won = (it->iflags & BC_ITEM_WON) != 0;
    out->key_binary = (it->iflags & BC_ITEM_KEY_BINARY) != 0;
}

bc_item_t *
bc_cache_mget(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash,
              bc_cache_mget_t *m, bc_status_t *st)
{
    cache_loc_t loc;
    bc_item_t *nit = NULL;
    bc_status_t dummy;
    if (st == NULL) st = &dummy;
    *st = BC_ENOTFOUND;
    m->created = m->won = false;
    memset(&m->meta, 0, sizeof(m->meta));
    if (key == NULL || nkey == 0 || nkey > BC_KEY_MAX_LEN) return NULL;
    cache_locate(cache, hash, &loc);

    for (int attempt = 0; attempt < CACHE_RETRIES; attempt++) {
        bc_item_t *freelist = NULL;
        uint32_t now = cache_clock(cache);

        pthread_mutex_lock(&loc.shard->lock);
        bc_item_t *it = do_item_find_live(cache, &loc, key, nkey, hash, now, &freelist);
        if (it != NULL && item_refs(it) >= CACHE_REFCOUNT_MAX) it = NULL;
        if (it == NULL && m->vivify && nit != NULL) {
            /* An empty item, as memcached's vivify: flags 0, no expiry
             * until N's (or a later T's) is applied. */
            if (do_item_link(cache, &loc, nit, now)) {
                it = nit;
                nit = NULL;
                m->created = true;
            }
        }
        if (it == NULL) {
            pthread_mutex_unlock(&loc.shard->lock);
            cache_free_list(cache, freelist);
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
        atomic_fetch_add_explicit(&it->refcount, 1, memory_order_relaxed);
        if (m->created) {
            it->exptime = 0;
            item_meta(it, &m->meta);
            it->exptime = m->viv_exptime;   /* 0 when N's did not take effect */
            m->won = true;
        } else {
            item_meta(it, &m->meta);
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
        if (m->bump) {
            item_bump(it, now);
            cache->policy->on_access(loc.shard->policy, it, now);
        }
        /* BEHAVIOR: a win token handed out changes the item's state as a
         * store does (backups and migration targets must not hand out
         * another one after a failover): it travels as the whole item. */
        if (m->created || (m->won && !m->meta.won)) {
            cache_notify_item(cache, BC_CACHE_EV_STORE, it, loc.bucket);
        } else if (m->touch) {
            cache_notify_item(cache, BC_CACHE_EV_TOUCH, it, loc.bucket);
        }
        pthread_mutex_unlock(&loc.shard->lock);
        cache_free_list(cache, freelist);
        if (nit != NULL) bc_item_release(cache, nit);
        if (m->created) cache_enforce_limit(cache, hash);
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
    bc_item_t *freelist = NULL;
    bc_status_t st = BC_OK;
    if (key == NULL || nkey == 0 || nkey > BC_KEY_MAX_LEN) return BC_ENOTFOUND;
    cache_locate(cache, hash, &loc);
    uint32_t now = cache_clock(cache);

    pthread_mutex_lock(&loc.shard->lock);
    bc_item_t *it = do_item_find_live(cache, &loc, key, nkey, hash, now, &freelist);
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
        do_item_unlink(cache, &loc, it, BC_EVICT_DELETED, &freelist);
        do_table_shrink(cache, loc.bucket);
        cache_notify(cache, BC_CACHE_EV_DELETE, NULL, key, nkey, 0, loc.bucket);
    }
    pthread_mutex_unlock(&loc.shard->lock);
    cache_free_list(cache, freelist);
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
        bc_item_t *freelist = NULL;
        bool finished = true;

        pthread_mutex_lock(&loc.shard->lock);
        if (b->slots == NULL) {
            budget--;
        } else {
            uint32_t slot = cache->scan_slot;
            while (slot <= b->mask && budget > 0) {
                bc_item_t *it = b->slots[slot];
                if (it == NULL) budget--;   /* empty slots cost too: bounded work */
                while (it != NULL) {
                    bc_item_t *next = it->hnext;
                    if (budget > 0) budget--;
                    if (item_is_expired(it, now) || item_is_flushed(cache, it, now)) {
                        do_item_reclaim(cache, &loc, it, now, true, &freelist);
                        removed++;
                    }
                    it = next;
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
        cache_free_list(cache, freelist);
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
            for (bc_item_t *it = b->slots[i]; go_on && it != NULL; it = it->hnext) {
                if (item_is_expired(it, now) || item_is_flushed(cache, it, now)) continue;
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
 * item linked for the whole scan is reported at least once; one linked
 * or unlinked meanwhile may or may not be; a halving can report an item
 * twice.
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
        do {
            uint32_t next = cache_rev32(cache_rev32(v | ~m) + 1);
            /* The items are scattered over the heap, so a chain head is
             * likely a cache miss (in a profile of an export, the scan's
             * own time was almost all the load of an item's header): start
             * the next one's load while fn copies this chain out. */
            if (next != 0) cache_prefetch(b->slots[next & m]);
            for (bc_item_t *it = b->slots[v & m]; it != NULL; it = it->hnext) {
                cache_prefetch(it->hnext);
                if (item_is_expired(it, now) || item_is_flushed(cache, it, now)) continue;
                if (!fn(it, ctx)) go_on = false;   /* the chain is finished all the same */
            }
            v = next;
        } while (go_on && v != 0);
    }
    pthread_mutex_unlock(&s->lock);
    *cursor = v;
    return BC_OK;
}

uint64_t
bc_cache_bucket_drop(bc_cache_t *cache, uint32_t bucket)
{
    if (bucket >= cache->nbuckets) return 0;
    cache_bucket_t *b = &cache->buckets[bucket];
    cache_shard_t *s = &cache->shards[bucket & cache->shard_mask];
    bc_item_t *freelist = NULL;
    uint64_t dropped = 0;

    pthread_mutex_lock(&s->lock);
    if (b->slots != NULL) {
        for (uint32_t i = 0; i <= b->mask; i++) {
            bc_item_t *it = b->slots[i];
            b->slots[i] = NULL;
            while (it != NULL) {
                bc_item_t *next = it->hnext;
                it->hnext = NULL;
                cache->policy->on_remove(s->policy, it, BC_EVICT_DELETED);
                s->curr_items--;
                s->data_bytes -= it->nkey + bc_item_value_len(it);
                do_item_drop_link(cache, it, bc__evict_mem_charge(it), &freelist);
                dropped++;
                it = next;
            }
        }
        b->count = 0;
        b->bytes = 0;
        do_table_shrink(cache, b);   /* count is 0: frees the slot array */
    }
    cache_notify(cache, BC_CACHE_EV_DROP, NULL, NULL, 0, bucket, b);
    pthread_mutex_unlock(&s->lock);
    cache_free_list(cache, freelist);
    return dropped;
}

void
bc_cache_get_stats(bc_cache_t *cache, bc_cache_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    for (uint32_t i = 0; i < cache->nshards; i++) {
        cache_shard_t *s = &cache->shards[i];
        pthread_mutex_lock(&s->lock);
        out->curr_items += s->curr_items;
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
    out->mem_used = atomic_load_explicit(&cache->mem_used, memory_order_relaxed);
    out->mem_limit = cache_mem_limit(cache);
    out->pinned_bytes = atomic_load_explicit(&cache->pinned_bytes, memory_order_relaxed);
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

void
bc_cache_set_observer(bc_cache_t *cache, bc_cache_observer_fn fn, void *ctx)
{
    cache->observer_ctx = ctx;
    cache->observer = fn;
}
