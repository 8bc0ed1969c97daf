/*
 * cache.h -- the node's storage engine.
 *
 * WHAT IT DOES
 *   Stores items (key, value, 32-bit flags, absolute expiry, 64-bit CAS)
 *   under a hard memory limit, evicting with a pluggable policy (evict.h,
 *   S3-FIFO by default).
 *
 * HOW
 *   Items are written one after another into segments of one memory arena
 *   (engine/seg_int.h) with a 24-byte header (engine/item.h) and no allocator
 *   overhead; eviction frees a segment at a time, dropping its items or
 *   copying the ones the policy keeps.
 *
 *   Items are indexed per bucket: bucket = bc_hash_key(key) % nbuckets (see
 *   common/bc_hash.h).  Each bucket owns its own small chained hash table
 *   (32-bit item references, 2 to 4 bytes per item), so one bucket can be
 *   iterated, serialised or dropped in time proportional to its own size --
 *   what migration needs -- wherever its items lie in memory.
 *
 *   Buckets are grouped into shards (shard = bucket % nshards).  A shard has
 *   one mutex.
 *
 *   LOCKING RULE: a shard's mutex protects the hash tables of the shard's
 *   buckets and the link state of its items.  No code ever holds two shard
 *   locks at once.  Functions prefixed do_ require the caller to hold the
 *   shard lock.  The segments and the policy have a lock of their own,
 *   taken inside a shard lock, never around one (cache.c has the details).
 *
 *   Items are held by pinning.  bc_cache_get() returns an item with a
 *   reference the caller must drop with bc_item_release(); an item that is
 *   unlinked (deleted, replaced, evicted, expired) while referenced stays
 *   valid and unchanged until its last reference goes: the reference pins
 *   the item's segment, which is not reused before.  This is how the
 *   network layer sends values straight from item memory (writev) without a
 *   copy and without holding a lock.
 *
 * MEMORY ACCOUNTING
 *   mem_used counts every byte the engine holds: the segments it has
 *   touched, large items' blocks, every hash-table slot array and the
 *   policy's state (engine/seg_int.h, BUDGET).  mem_used passes mem_limit only
 *   while a table growth is in progress; segments pinned by in-flight
 *   replies stay counted until released.  The process's resident memory
 *   follows mem_used whatever the mix of item sizes, without a trim.
 *
 * TIME
 *   Expiry times are absolute unix seconds (0 = never).  The protocol layer
 *   converts memcached's relative/absolute/negative exptime with
 *   bc_cache_exptime_abs().  now() is pluggable for tests.
 */
#ifndef BC_CACHE_H
#define BC_CACHE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_status.h"
#include "engine/counters.h"
#include "engine/item.h"

/* memcached's rule: an exptime above 30 days is an absolute unix time. */
#define BC_REALTIME_MAXDELTA (60u * 60u * 24u * 30u)

typedef struct bc_cache bc_cache_t;

typedef struct bc_cache_config {
    size_t mem_limit;          /* bytes the engine may hold; > 0 */
    size_t max_item_size;      /* largest key+value+overhead accepted (default 1 MiB) */
    uint32_t nbuckets;         /* default BC_DEFAULT_NBUCKETS */
    uint32_t nshards;          /* power of two; 0 = default (64) */
    const char *policy;        /* "s3fifo" (default), "lru", "lfu", "fifo"; copied */
    uint32_t (*now)(void);     /* unix seconds; NULL = time(NULL) */
    uint32_t segment_size;     /* power of two, 4 KiB..1 MiB; 0 = from mem_limit */
    bool prealloc;             /* -L: touch the memory at creation and keep it */
} bc_cache_config_t;

typedef enum bc_store_mode {
    BC_STORE_SET,
    BC_STORE_ADD,
    BC_STORE_REPLACE,
    BC_STORE_APPEND,
    BC_STORE_PREPEND,
    BC_STORE_CAS,
} bc_store_mode_t;

typedef struct bc_cache_stats {
    uint64_t curr_items;
    uint64_t total_items;      /* items ever stored */
    uint64_t mem_used;         /* bytes, as accounted above */
    uint64_t mem_limit;
    uint64_t data_bytes;       /* sum of key + value lengths */
    uint64_t evictions;
    uint64_t expired_unfetched;
    uint64_t evicted_unfetched;
    uint64_t reclaimed;        /* expired items removed (lazily or actively) */
    uint64_t expired_active;   /* removed by bc_cache_expire_scan */
    uint64_t flushed;          /* invalidated by flush_all */
    uint64_t pinned_bytes;     /* evicted segments still referenced by readers */
    uint64_t segment_size;
    uint64_t segments_backed;  /* segments with memory behind them */
    uint64_t segments_free;    /* ... of which unused */
    uint64_t segments_evicted; /* segments taken by eviction so far */
    uint64_t segments_compacted; /* sparse segments whose live items were moved out */
    uint64_t segments_prefaulted; /* backed ahead of demand (bc_cache_prefault) */
    uint64_t items_moved;      /* items eviction kept (copied to a queue's head) */
} bc_cache_stats_t;

/*
 * Creates a cache.  *out is owned by the caller, freed with
 * bc_cache_destroy().  Errors: BC_EINVAL (bad config, unknown policy),
 * BC_ENOMEM.
 */
bc_status_t bc_cache_create(const bc_cache_config_t *config, bc_cache_t **out);
/* Frees every item and the cache.  No item reference may be outstanding. */
void bc_cache_destroy(bc_cache_t *cache);

const char *bc_cache_policy_name(const bc_cache_t *cache);
/* Bytes touched at creation (config.prealloc), 0 without. */
size_t bc_cache_preallocated(const bc_cache_t *cache);
/*
 * Without -L, memory is faulted in by the first store into it, on the
 * thread storing.  This backs one more segment of the budget's room ahead
 * of demand, faulting its pages in on the calling thread (a helper, so
 * that a thread about to store much -- an import -- finds memory ready),
 * when fewer than `ahead` bytes of backed unused memory are ready.  The
 * segment is charged (it counts in the memory used, as -L's do) and is
 * given back like any free one when the cache needs room.  Returns the
 * bytes faulted in: 0 when enough are ready, everything is backed (-L), or
 * the budget has no room to spare.  Thread-safe.
 */
size_t bc_cache_prefault(bc_cache_t *cache, uint64_t ahead);
/* Internal (tests): how many references hold the segment it lives in
 * (readers, replies, a writer filling it). */
uint32_t bc__cache_item_holders(const bc_cache_t *cache, const bc_item_t *it);
uint32_t bc_cache_nbuckets(const bc_cache_t *cache);
uint32_t bc_cache_now(const bc_cache_t *cache);
size_t bc_cache_max_item_size(const bc_cache_t *cache);
/* memcached's cache_memlimit: a new memory limit, effective at once
 * (items are evicted down to it).  Any thread.  The segment arena is
 * reserved at start for the start limit, so the new one must lie between
 * the engine's own needs and that start limit (bc_cache_mem_limit_max):
 * BC_EINVAL otherwise, nothing changed. */
bc_status_t bc_cache_set_mem_limit(bc_cache_t *cache, size_t limit);
size_t bc_cache_mem_limit_max(const bc_cache_t *cache);

/*
 * Converts a memcached exptime to absolute unix seconds: 0 stays 0 (never),
 * negative means already expired, up to 30 days is relative to now, above
 * is absolute.
 */
uint32_t bc_cache_exptime_abs(const bc_cache_t *cache, int64_t exptime);

/*
 * Looks up a live (not expired, not flushed) item.  Returns NULL on a miss;
 * otherwise a referenced item the caller releases with bc_item_release().
 * hash must be bc_hash_key(key, nkey).
 */
bc_item_t *bc_cache_get(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash);
/* As bc_cache_get, also setting the item's expiry (gat/gats). */
bc_item_t *bc_cache_get_touch(bc_cache_t *cache, const char *key, size_t nkey,
                              uint32_t hash, uint32_t exptime);
void bc_item_release(bc_cache_t *cache, bc_item_t *it);
/* One more reference on an item, for another reader: one the caller holds
 * a reference on (the origin's fill hands one value to many waiters), or
 * the live item a bc_cache_bucket_scan / bc_cache_bucket_foreach callback
 * is given (shard lock held: the only call a callback may make into the
 * cache), so its key, value, flags and cas may be read after the callback
 * returns -- a migration export copies a large value a part at a time
 * without the lock.  Returns it; dropped with bc_item_release like any
 * other.  It pins the item's segment again; an item never stored gives its
 * room back only at its last release. */
bc_item_t *bc_item_retain(bc_cache_t *cache, const bc_item_t *it);

/*
 * A lookup that lets the caller read the item in place: as bc_cache_get
 * (bc_cache_get_touch with touch), but fn is called with the live item and
 * the shard lock held -- it may read the item, must not keep the pointer
 * nor call into the cache -- and returns true to hold the item beyond the
 * call.  Returns the item referenced (release it with bc_item_release)
 * when fn returned true, NULL otherwise; *found (may be NULL) says whether
 * the key was there.  A reference pins the item's segment, an atomic write
 * to a line that readers of its other items share: a caller that copies a
 * small value in fn saves it.
 */
typedef bool (*bc_cache_read_fn)(const bc_item_t *it, void *ctx);
bc_item_t *bc_cache_read(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash,
                         bool touch, uint32_t exptime, bc_cache_read_fn fn, void *ctx,
                         bool *found);

/*
 * Looks at a live item without reading it as a client would: fn is called
 * with the item and the shard lock held (it may bc_item_retain it, nothing
 * else of the cache), and the lookup counts no hit or miss and does not
 * mark the item used for eviction.  A migration's export reads the keys a
 * change tracker recorded this way (one short lock hold per key instead
 * of a walk of the whole bucket under it).  Returns whether the key was
 * there (fn is called only then).
 */
bool bc_cache_peek(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash,
                   bc_cache_read_fn fn, void *ctx);

/*
 * Two-phase store.  bc_item_alloc reserves memory (evicting if needed) and
 * returns an unlinked item with one reference whose value the caller fills
 * (nbytes includes the trailing CRLF, which the caller writes too).  Key,
 * flags and expiry are in the item already (bc_item_key, bc_item_flags).
 * Returns NULL with *st = BC_ETOOLARGE (bigger than max_item_size) or
 * BC_ENOMEM (nothing left to evict).  The caller then either passes the item
 * to bc_cache_store() or drops it with bc_item_release().
 */
bc_item_t *bc_item_alloc(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash,
                         uint32_t flags, uint32_t exptime, uint32_t nbytes,
                         bc_status_t *st);

/*
 * Links the item according to mode.  The caller's reference is always
 * consumed (stored or not).  For BC_STORE_CAS, cas_in is the expected CAS.
 * On BC_OK, *cas_out (if not NULL) receives the stored item's new CAS.
 * Returns: BC_OK (STORED), BC_ENOTSTORED (add on a live key, replace/
 * append/prepend on a missing key), BC_EEXISTS (CAS mismatch),
 * BC_ENOTFOUND (CAS on a missing key), BC_ENOMEM / BC_ETOOLARGE
 * (append/prepend result does not fit).
 * append/prepend keep the existing item's flags and expiry, as memcached.
 */
bc_status_t bc_cache_store(bc_cache_t *cache, bc_item_t *it, bc_store_mode_t mode,
                           uint64_t cas_in, uint64_t *cas_out);

/*
 * Replication (repl/repl.h): stores it as a SET that keeps the primary's CAS
 * (instead of a fresh one), so `gets`/`cas` work across a failover; the
 * CAS counter is raised past it, so fresh values stay unique and growing.
 * Returns as bc_cache_store.
 */
bc_status_t bc_cache_store_as(bc_cache_t *cache, bc_item_t *it, uint64_t cas);
/*
 * Migration: stores it (mode BC_STORE_SET or BC_STORE_ADD) keeping the
 * CAS it had on the node it came from, as bc_cache_store_as -- unless that
 * CAS is below this cache's flush mark (0 counts as below too), when it
 * gets a fresh one.  Returns as bc_cache_store; BC_EINVAL for another mode
 * (it is released).
 */
bc_status_t bc_cache_store_moved(bc_cache_t *cache, bc_item_t *it, bc_store_mode_t mode,
                                 uint64_t cas);
/* Replication: forgets the flush marks, which are CAS values of this
 * node's own past (a full resync empties the cache first, then calls
 * this: the primary's items may carry smaller CAS values). */
void bc_cache_reset_flush(bc_cache_t *cache);
/* Replication: an immediate flush_all at the primary's CAS mark. */
void bc_cache_flush_at(bc_cache_t *cache, uint64_t mark);
/* Replication: the delayed flush_all due at `when` came due on the primary
 * at `mark` (its CAS below which items go).  Raises the mark like
 * bc_cache_flush_at; a pending delayed flush due at the same time is the
 * same one and is done; a different pending one is kept. */
void bc_cache_flush_came_due(bc_cache_t *cache, uint32_t when, uint64_t mark);
/* Replication: the CAS below which items are flushed here, after applying
 * a delayed flush_all that has come due (0: never flushed). */
uint64_t bc_cache_flush_mark(bc_cache_t *cache);

/* ---- meta protocol (memcached's mg/ms/md/ma, node/proto/meta.c) ---- */

/*
 * As bc_cache_store, for memcached's ms: cas_in != 0 is also checked by
 * append/prepend (EXISTS on a mismatch), and with set_stale (the I flag) a
 * CAS store whose cas_in is LOWER than the item's replaces it anyway but
 * marks the new value stale, keeping the old expiry and win-token state.
 */
bc_status_t bc_cache_store_meta(bc_cache_t *cache, bc_item_t *it, bc_store_mode_t mode,
                                uint64_t cas_in, bool set_stale, uint64_t *cas_out);

/* An item's meta state as it was before the call that reports it. */
typedef struct bc_item_meta {
    uint32_t exptime;          /* absolute, 0 = never */
    uint32_t atime;            /* last access (exact within 65535 s of now: item.h) */
    bool fetched;              /* fetched since stored (memcached's ITEM_FETCHED) */
    bool stale;                /* BC_ITEM_STALE */
    bool won;                  /* BC_ITEM_WON: a win token was already handed out */
    bool key_binary;           /* BC_ITEM_KEY_BINARY */
} bc_item_meta_t;

/* The meta state of item it as a walk (bc_cache_item_fn, below) sees it:
 * call only with the shard lock held, i.e. from inside such a walk ("lru_crawler
 * metadump" reads the fetched bit, which has no other way out).  now is the
 * cache clock (bc_cache_now), which the last access is read against. */
void bc_cache_item_meta(const bc_item_t *it, uint32_t now, bc_item_meta_t *out);

/*
 * memcached's mg on one key, atomically.  In: bump (count it as a fetch:
 * not the u flag); touch/touch_exptime (T: the expiry a hit ends with);
 * vivify/viv_exptime (N: a miss creates an empty item with that expiry,
 * and wins); recache/recache_time/recache_exptime (R: a hit whose expiry
 * -- recache_exptime, or the item's own when 0 -- is set and before
 * recache_time wins, unless a token was handed out already).  A stale
 * item whose token was not handed out wins too; a win marks the item
 * (BC_ITEM_WON).  Out: created, won, meta (the state before this call;
 * for a created item: exptime 0, not fetched).
 * Returns the item referenced (bc_item_release), or NULL: a miss without
 * vivify, or no memory to vivify (*st = BC_ENOMEM; otherwise BC_ENOTFOUND).
 */
typedef struct bc_cache_mget {
    bool bump;
    bool touch;
    uint32_t touch_exptime;
    bool vivify;
    uint32_t viv_exptime;
    bool recache;
    uint32_t recache_time;
    bool recache_sees_touch;   /* T came before R: R compares touch_exptime */
    bool no_win;               /* hand out no win token (the request failed midway) */
    bool created;              /* out */
    bool won;                  /* out */
    bc_item_meta_t meta;       /* out */
} bc_cache_mget_t;

bc_item_t *bc_cache_mget(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash,
                         bc_cache_mget_t *m, bc_status_t *st);

/*
 * memcached's md: with has_cas, the item's CAS must equal cas_in
 * (BC_EEXISTS otherwise); with stale (I) the item is not removed but
 * marked stale with a fresh CAS, its win token reset, and its expiry set
 * to exptime when set_ttl.  Returns BC_OK, BC_ENOTFOUND, BC_EEXISTS.
 */
bc_status_t bc_cache_mdelete(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash,
                             bool has_cas, uint64_t cas_in, bool stale, bool set_ttl,
                             uint32_t exptime);

/*
 * memcached's ma: incr/decr as bc_cache_arith, also refused with
 * BC_EEXISTS when cas_in != 0 differs from the item's CAS; a miss with
 * vivify stores `initial` (flags 0) and reports created.  The expiry is
 * then set to exptime_hit (when set_exptime_hit and the number was
 * rewritten in place -- memcached loses it when the item is replaced by a
 * longer number) or exptime_created (set_exptime_created, created).
 * Out: value, cas, exptime_before (the expiry before that change; 0 for a
 * created item).  Returns BC_OK, BC_ENOTFOUND, BC_ENONNUMERIC,
 * BC_EEXISTS, BC_ENOMEM.
 */
typedef struct bc_cache_marith {
    bool incr;
    uint64_t delta;
    uint64_t cas_in;
    bool vivify;
    uint64_t initial;
    bool set_exptime_hit;
    uint32_t exptime_hit;
    bool set_exptime_created;
    uint32_t exptime_created;
    uint64_t value;            /* out */
    uint64_t cas;              /* out */
    uint32_t exptime_before;   /* out */
    bool created;              /* out */
} bc_cache_marith_t;

bc_status_t bc_cache_marith(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash,
                            bc_cache_marith_t *m);

/* Returns BC_OK or BC_ENOTFOUND. */
bc_status_t bc_cache_delete(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash);
/* Sets a live item's expiry.  Returns BC_OK or BC_ENOTFOUND. */
bc_status_t bc_cache_touch(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash,
                           uint32_t exptime);

/*
 * incr/decr as memcached: the value must be a decimal unsigned 64-bit
 * number (else BC_ENONNUMERIC); incr wraps at 2^64, decr stops at 0; a
 * shorter result written in place is padded with spaces (memcached does
 * this).  *result receives the new value.  Returns BC_OK, BC_ENOTFOUND,
 * BC_ENONNUMERIC, BC_ENOMEM.
 */
bc_status_t bc_cache_arith(bc_cache_t *cache, const char *key, size_t nkey, uint32_t hash,
                           bool incr, uint64_t delta, uint64_t *result);

/*
 * flush_all: with when = 0, every item stored so far becomes invalid at
 * once.  Otherwise the flush falls due at when - 1 (absolute unix seconds,
 * as memcached computes it) and invalidates every item stored before that
 * moment; items stored after it survive.
 */
void bc_cache_flush(bc_cache_t *cache, uint32_t when);

/*
 * Active expiry: examines up to `budget` items, continuing from where the
 * previous call stopped, and removes the expired ones.  Returns how many it
 * removed.  Called periodically by a background thread.
 */
uint64_t bc_cache_expire_scan(bc_cache_t *cache, uint32_t budget);

/*
 * Compaction: up to max_segments segments that hold mostly dead items (a
 * dropped bucket's, deleted or expired ones) have their live items moved
 * to the head of their queue and are freed, so that memory a migration
 * moved away goes back to the system.  Returns how many.  Called
 * periodically by a background thread, after bc_cache_expire_scan.
 */
uint32_t bc_cache_compact(bc_cache_t *cache, uint32_t max_segments);

/* ---- per-bucket access (admin API, migration) ---- */

typedef struct bc_bucket_stats {
    uint64_t items;
    uint64_t bytes;            /* accounted memory of the bucket's items */
    uint64_t evictions;        /* live items evicted from the bucket */
    uint64_t expirations;      /* expired items removed (lazily or actively) */
    bc_bucket_counts_t ops;    /* requests of the counting threads, folded */
} bc_bucket_stats_t;

/* Errors: BC_EINVAL (bucket out of range). */
bc_status_t bc_cache_bucket_stats(bc_cache_t *cache, uint32_t bucket, bc_bucket_stats_t *out);
/* Every bucket's at once (n must be bc_cache_nbuckets; out has n entries):
 * one fold of the counters instead of n.  Errors: BC_EINVAL, BC_ENOMEM. */
bc_status_t bc_cache_bucket_stats_all(bc_cache_t *cache, bc_bucket_stats_t *out, uint32_t n);

/* ---- per-bucket request counters and key sampling (engine/counters.h) ---- */

/*
 * The calling thread's gets, stores, deletes and incr/decr count toward
 * their buckets (bc_bucket_stats_t.ops) from now on, in a block of
 * counters only it writes, and feed the key sampler.  The data port's
 * workers call it when they start; threads that replicate or import do
 * not (their writes are not client requests).  Errors: BC_ENOMEM.
 */
bc_status_t bc_cache_count_thread(bc_cache_t *cache);
/* The calling thread stops counting (its sums stay). */
void bc_cache_count_thread_end(bc_cache_t *cache);
/* fn gets about 1 in `every` counted requests' keys (0 = off).  Call
 * before any thread calls bc_cache_count_thread. */
void bc_cache_set_sampler(bc_cache_t *cache, bc_key_sampler_fn fn, void *ctx, uint32_t every);

/*
 * Calls fn for each live item of the bucket, with the shard lock held: fn
 * must not call back into the cache.  fn returns false to stop early.
 * Errors: BC_EINVAL (bucket out of range).
 */
typedef bool (*bc_cache_item_fn)(const bc_item_t *it, void *ctx);
bc_status_t bc_cache_bucket_foreach(bc_cache_t *cache, uint32_t bucket, bc_cache_item_fn fn,
                                    void *ctx);

/*
 * Walks the bucket a piece at a time, for a pass that must not hold the
 * shard lock for the whole bucket (a migration export streams while
 * clients write).  Start with *cursor = 0; each call takes the shard lock
 * once, calls fn (lock held, as bc_cache_bucket_foreach) for the live items
 * of one hash chain after another until fn returns false -- the chain in
 * progress is always finished, so fn may be called again after returning
 * false -- and stores where to go on in *cursor; 0 means the walk is
 * complete.  Every item linked for the whole walk is reported at least
 * once; items stored or removed during the walk may or may not be, and an
 * item can be reported twice when the table shrinks meanwhile.
 * Errors: BC_EINVAL (bucket out of range, fn or cursor NULL).
 */
bc_status_t bc_cache_bucket_scan(bc_cache_t *cache, uint32_t bucket, uint32_t *cursor,
                                 bc_cache_item_fn fn, void *ctx);

/* Removes every item of the bucket and frees their memory.  Returns the
 * number removed. */
uint64_t bc_cache_bucket_drop(bc_cache_t *cache, uint32_t bucket);

void bc_cache_get_stats(bc_cache_t *cache, bc_cache_stats_t *out);

/* ---- change observer (replication, repl/repl.h) ---- */

/*
 * Every change a client, an import or a bucket drop makes is reported as
 * the state it leaves behind, so replaying the reports in order on
 * another cache reproduces this one:
 *
 *   STORE  item now holds this value (set/add/replace/cas/append/prepend/
 *          incr/decr all report the resulting item) or this meta state
 *          (md I marking it stale, mg handing out a win token)
 *   DELETE the key is gone (delete; also a too-large set's removal)
 *   TOUCH  item's expiry changed (touch, gat, gats)
 *   FLUSH  flush_all with its due time, or (now) the CAS mark below which
 *          every item is gone -- exact even for writes racing the flush,
 *          on a backup whose items keep the primary's CAS
 *   DROP   the whole bucket was dropped
 *
 * Not reported: eviction and expiry.  A backup with the same memory limit
 * evicts on its own, and expiry is an absolute time the backup holds too;
 * keeping an item the primary evicted is harmless (it is the latest value
 * written, and the backup's own eviction will take it when it needs room).
 *
 * The observer runs on the thread that made the change, with the shard
 * lock held for STORE/DELETE/TOUCH/DROP (so reports of one key come in the
 * order the changes were made), and must not call back into the cache.
 */
typedef enum bc_cache_event_type {
    BC_CACHE_EV_STORE,
    BC_CACHE_EV_DELETE,
    BC_CACHE_EV_TOUCH,
    BC_CACHE_EV_FLUSH,
    BC_CACHE_EV_DROP,
} bc_cache_event_type_t;

typedef struct bc_cache_event {
    bc_cache_event_type_t type;
    const bc_item_t *item;     /* STORE, TOUCH (exptime already updated) */
    const char *key;           /* DELETE */
    size_t nkey;               /* DELETE */
    uint32_t when;             /* FLUSH: absolute unix seconds, 0 = now */
    uint32_t bucket;           /* DROP */
    uint64_t mark;             /* FLUSH now: items with a smaller CAS are gone */
} bc_cache_event_t;

typedef void (*bc_cache_observer_fn)(void *ctx, const bc_cache_event_t *ev);

/* Installs the observer (NULL removes it).  Call before any other thread
 * uses the cache; the pointer is read without a lock. */
void bc_cache_set_observer(bc_cache_t *cache, bc_cache_observer_fn fn, void *ctx);

/* ---- bucket taps (migration precopy, engine/tap.h) ---- */

/*
 * A second observer that hears only about TAPPED buckets (plus every
 * FLUSH, with bucket = UINT32_MAX), so that an untapped bucket's writes
 * pay one relaxed load.  Same rules as the observer: runs with the shard
 * lock held (FLUSH without), must not call back into the cache.
 *
 * Ordering: a write whose shard critical section starts after
 * bc_cache_tap_bucket(.., true) returned -- in particular any write after
 * a later bc_cache_bucket_foreach of that bucket took the shard lock --
 * is reported.  That is what lets a tap be armed first and the bucket
 * read afterwards, without a gap.
 */
typedef void (*bc_cache_tap_fn)(void *ctx, uint32_t bucket, const bc_cache_event_t *ev);
/* Installs (NULL removes) the tap hook; may be called while other threads
 * use the cache, as long as no bucket is tapped yet (install) or any more
 * (removal). */
void bc_cache_set_tap(bc_cache_t *cache, bc_cache_tap_fn fn, void *ctx);
/* Turns reporting of bucket's changes on or off (any thread, any lock). */
void bc_cache_tap_bucket(bc_cache_t *cache, uint32_t bucket, bool on);

/* How many flush_all (immediate, delayed or replicated) this cache has
 * seen: a destination checks that none came between its precopy and its
 * final import. */
uint64_t bc_cache_flush_count(const bc_cache_t *cache);

/* The CAS value of the latest store (0 before any): every item stored
 * after this call has a higher one, unless stored with its own CAS
 * (bc_cache_store_as). */
uint64_t bc_cache_cas_last(const bc_cache_t *cache);

#endif
