/*
 * counters.h -- per-bucket request counters, one block per thread, folded
 * on read; and the hook that samples keys for the hot-key sketch.
 *
 * WHAT IT DOES
 *   The cache (cache.c) counts, for each bucket, the gets, hits, stores,
 *   deletes and bytes of the requests a thread makes -- if that thread
 *   attached itself (bc_cache_count_thread, cache.h).  The data port's
 *   worker threads do; the admin port's thread does for its key requests.
 *   Replication and migration threads do not: their writes are not
 *   client traffic.  Evictions and expirations are counted by the cache
 *   itself, in the bucket, under its shard lock (they happen there).
 *
 * HOW (memcached's threadlocal stats, per bucket)
 *   Each attached thread owns a block: an array of nbuckets counter sets,
 *   written only by that thread (a relaxed load and store, no locked
 *   instruction, no cache line shared with another thread).  A
 *   thread-local pointer finds the block; the cache checks that the block
 *   is its own (a thread may touch several caches, as the unit tests do).
 *   Readers fold every block with relaxed loads: a sum may be a few
 *   operations behind, never torn.  A block outlives its thread (detach
 *   only marks it free for the next thread to attach), so the sums never
 *   go down.  Blocks are kept in a list under a mutex taken only on
 *   attach, detach and read.
 *
 *   Sampling: each block counts down a random 1..2N-1 (mean N) operations
 *   and then calls the sampler with the key (no lock of the cache held);
 *   the random stride keeps a client cycling through N keys from always
 *   hitting the same one.
 *
 * MEMORY
 *   48 bytes x nbuckets per attached thread (1024 buckets: 48 KiB), not
 *   charged to the cache's limit; bounded by the threads that attach at
 *   once (free blocks are reused).
 */
#ifndef BC_ENGINE_COUNTERS_H
#define BC_ENGINE_COUNTERS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_status.h"

/* The counters each thread keeps per bucket: X(name, description).
 * Gets are hits + misses (a hit then writes two counters, not three). */
#define BC_BUCKET_COUNTERS(X)                                                           \
    X(hits,          "lookups (get, gets, gat, gats) that found a live item")           \
    X(misses,        "lookups that found none")                                         \
    X(sets,          "store requests (every storage command, incr and decr)")           \
    X(deletes,       "deletes that removed an item")                                    \
    X(bytes_read,    "key and value bytes of store requests")                           \
    X(bytes_written, "value bytes returned by hits")

typedef struct bc_bucket_counters {
#define BC__BUCKET_COUNTER_FIELD(name, desc) _Atomic uint64_t name;
    BC_BUCKET_COUNTERS(BC__BUCKET_COUNTER_FIELD)
#undef BC__BUCKET_COUNTER_FIELD
} bc_bucket_counters_t;

/* Folded, plain copy. */
typedef struct bc_bucket_counts {
#define BC__BUCKET_COUNTER_FIELD(name, desc) uint64_t name;
    BC_BUCKET_COUNTERS(BC__BUCKET_COUNTER_FIELD)
#undef BC__BUCKET_COUNTER_FIELD
} bc_bucket_counts_t;

/* Called with a sampled key (not NUL-terminated) and its bucket; must be
 * thread-safe and must not call back into the cache. */
typedef void (*bc_key_sampler_fn)(void *ctx, uint32_t bucket, const char *key, size_t nkey);

typedef struct bc_counters bc_counters_t;

/* One thread's block. */
typedef struct bc_counters_block {
    const bc_counters_t *owner;
    bc_bucket_counters_t *bucket;      /* nbuckets sets, 64-byte aligned */
    uint32_t countdown;                /* operations until the next sample */
    uint64_t rng;                      /* xorshift state for the stride */
    bool in_use;                       /* LOCKING: owner's mutex */
    struct bc_counters_block *next;    /* LOCKING: owner's mutex */
} bc_counters_block_t;

/* The calling thread's block (NULL: not attached).  Internal to the
 * engine: use bc_counters_mine. */
extern _Thread_local bc_counters_block_t *bc__counters_tl;

/* Errors: NULL (out of memory). */
bc_counters_t *bc_counters_create(uint32_t nbuckets);
/* Frees every block; no thread may count any more. */
void bc_counters_destroy(bc_counters_t *c);

/* The calling thread counts into a block of c's from now on (a free one,
 * or a new one).  Errors: BC_ENOMEM. */
bc_status_t bc_counters_attach(bc_counters_t *c);
/* The calling thread stops counting into c; its block keeps its sums. */
void bc_counters_detach(bc_counters_t *c);

/* Sums every block's counters of bucket into *out. */
void bc_counters_fold(bc_counters_t *c, uint32_t bucket, bc_bucket_counts_t *out);
/* As bc_counters_fold for buckets 0..n-1 at once (out has n entries). */
void bc_counters_fold_all(bc_counters_t *c, bc_bucket_counts_t *out, uint32_t n);

/* Installs the sampler, called about once every `every` operations of
 * each thread (0 or fn NULL: off).  Call before threads count. */
void bc_counters_set_sampler(bc_counters_t *c, bc_key_sampler_fn fn, void *ctx, uint32_t every);
/* What the sampler's 1-in-N is (0 = off). */
uint32_t bc_counters_sample_every(const bc_counters_t *c);

/* ---- the counting side (the calling thread's block) ---- */

static inline bc_counters_block_t *
bc_counters_mine(const bc_counters_t *c)
{
    bc_counters_block_t *b = bc__counters_tl;
    return b != NULL && b->owner == c ? b : NULL;
}

/* Single writer: the owning thread only. */
#define bc_counters_add(blk, bucket_index, field, n)                                    \
    atomic_store_explicit(&(blk)->bucket[bucket_index].field,                          \
        atomic_load_explicit(&(blk)->bucket[bucket_index].field, memory_order_relaxed) \
            + (uint64_t)(n), memory_order_relaxed)

/* Counts one operation toward the next sample; true when this one is
 * sampled (the caller then calls bc_counters_sample). */
static inline bool
bc_counters_tick(bc_counters_block_t *blk)
{
    if (blk->countdown == 0) return false;   /* sampling off */
    return --blk->countdown == 0;
}

/* Hands key to the sampler and draws the next stride. */
void bc_counters_sample(const bc_counters_t *c, bc_counters_block_t *blk, uint32_t bucket,
                        const char *key, size_t nkey);

#endif
