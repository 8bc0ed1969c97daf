/*
 * near.h -- the hot-key near cache around a client's reads.
 *
 *   Off unless near_cache_bytes > 0.  Every value read from a node is
 *   counted in a frequency sketch; once a key has been read
 *   near_cache_min_hits times recently, its value is kept in-process for
 *   near_cache_ttl_ms, and reads within that time are answered without a
 *   round trip.  Writes through this client drop the key's near copy;
 *   writes by others are seen when the copy expires, so a near-cached
 *   value may be up to near_cache_ttl_ms stale (groupcache's hotCache
 *   trade-off).
 *
 * DEPENDENCIES
 *   Used by the operations (ops.c, mget.c) and read-through (load.c);
 *   uses only the LRU and sketch of lru.h.  Every function is a no-op (or
 *   a miss) when the client has no near cache.
 */
#ifndef BC_CLIENT_NEAR_H
#define BC_CLIENT_NEAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client_int.h"

/* A near hit copies the value into a malloc'd *value (the caller frees it)
 * and counts near_hits.  False: not cached, expired, or out of memory. */
bool bc__near_lookup(bc_client_t *c, uint32_t hash, const void *key, size_t klen, void **value,
                     size_t *vlen, uint32_t *flags);
/* Counts a value just read from a node, and keeps a copy once the key is
 * hot.  The value is copied. */
void bc__near_offer(bc_client_t *c, uint32_t hash, const void *key, size_t klen,
                    const void *value, size_t vlen, uint32_t flags);
/* Drops the key's near copy (a write through this client). */
void bc__near_forget(bc_client_t *c, uint32_t hash, const void *key, size_t klen);

#endif
