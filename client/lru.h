/*
 * lru.h -- a small in-process key/value cache bounded in bytes, with a TTL
 * per entry, and a frequency sketch to pick what deserves a place in it.
 *
 * The client uses one for the hot-key near cache (values of the keys read
 * most often, kept for a short TTL) and one, value-less, for negative
 * caching (keys a loader recently did not find).
 *
 * HOW
 *   The cache is split into shards by key hash; each shard has a mutex, a
 *   chained hash table that doubles as it fills, and an LRU list.  An
 *   entry costs sizeof(entry) + key + value bytes; a shard evicts from its
 *   LRU tail until it is within its share (max_bytes / nshards), so the
 *   total never exceeds max_bytes.  Expired entries are dropped when met.
 *
 *   The sketch is a count-min sketch (4 rows of 8-bit saturating counters,
 *   relaxed atomics, no lock); every `window` increments all counters are
 *   halved, so it estimates recent frequency (TinyLFU's aging).
 *
 * LOCKING
 *   shard->mu guards that shard's table, list and byte count; it is held
 *   for a lookup or an insert (including the copy of one value), never
 *   across I/O.
 */
#ifndef BC_CLIENT_LRU_H
#define BC_CLIENT_LRU_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_status.h"

typedef struct bc__lru bc__lru_t;

/* NULL on out of memory or max_bytes 0. */
bc__lru_t *bc__lru_new(size_t max_bytes);
void bc__lru_free(bc__lru_t *lru);

/*
 * Looks key up.  When present and not expired at now_ns: BC_OK, and with
 * value non-NULL a malloc'd copy (NUL-terminated; caller frees) in *value,
 * *vlen, *flags (either may be NULL).  Errors: BC_ENOTFOUND, BC_ENOMEM.
 */
bc_status_t bc__lru_get(bc__lru_t *lru, uint32_t hash, const void *key, size_t klen,
                        uint64_t now_ns, void **value, size_t *vlen, uint32_t *flags);
/*
 * Inserts or replaces key (copying key and value) until expires_ns.
 * Errors: BC_ETOOLARGE (the entry alone exceeds a shard's share),
 * BC_ENOMEM.
 */
bc_status_t bc__lru_put(bc__lru_t *lru, uint32_t hash, const void *key, size_t klen,
                        const void *value, size_t vlen, uint32_t flags, uint64_t expires_ns);
void bc__lru_del(bc__lru_t *lru, uint32_t hash, const void *key, size_t klen);
/* Bytes and entries held now (summed over shards). */
void bc__lru_usage(bc__lru_t *lru, size_t *bytes, size_t *items);
/* What one entry of this key and value size costs (for tests). */
size_t bc__lru_entry_cost(size_t klen, size_t vlen);

/* ---- frequency sketch ---- */

#define BC__SKETCH_ROWS 4

typedef struct bc__lru_sketch {
    uint32_t width;                  /* power of two */
    uint32_t window;                 /* increments between halvings */
    atomic_uint_fast32_t adds;
    atomic_uchar *counters;          /* ROWS * width */
} bc__lru_sketch_t;

/* width is rounded up to a power of two.  Errors: BC_ENOMEM. */
bc_status_t bc__lru_sketch_init(bc__lru_sketch_t *s, uint32_t width);
void bc__lru_sketch_free(bc__lru_sketch_t *s);
/* Counts one occurrence of hash; returns the new estimate (0..255). */
unsigned bc__lru_sketch_add(bc__lru_sketch_t *s, uint32_t hash);
unsigned bc__lru_sketch_estimate(bc__lru_sketch_t *s, uint32_t hash);

#endif
