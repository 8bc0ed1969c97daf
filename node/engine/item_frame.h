/*
 * item_frame.h -- the cache's items as peer frames (common/bc_frame.h),
 * both ways: what a primary streams to its backups (repl/primary.c) and
 * what a migration source exports (migrate/export.c), and what the
 * receiving end (repl/backup.c, migrate/import.c) stores.
 *
 * An item travels with its REMAINING lifetime in seconds (bc_frame.h:
 * relative, so the two nodes' clocks need not agree) and its meta-protocol
 * state (stale, win token handed out, base64 key: item.h's BC_ITEM_META_MASK
 * bits as the frame's meta field), so a backup that takes over serves a
 * stale item as stale; an item that has expired does not travel at all.
 */
#ifndef BC_NODE_ITEM_FRAME_H
#define BC_NODE_ITEM_FRAME_H

#include <stdbool.h>
#include <stdint.h>

#include "bc_frame.h"
#include "bc_status.h"
#include "engine/cache.h"

/* The remaining lifetime at `now` of an item expiring at exptime (0 =
 * never) in *ttl (0 = never); false when it has expired. */
bool bc_item_frame_ttl(uint32_t exptime, uint32_t now, uint32_t *ttl);

/* The absolute expiry of a frame's ttl received at `now` (0 stays 0),
 * saturating instead of wrapping. */
uint32_t bc_item_frame_exptime(uint32_t now, uint32_t ttl);

/* Appends it as an ITEM frame with remaining lifetime ttl.  Errors as
 * bc_frame_put_item. */
bc_status_t bc_item_frame_put(bc_frame_buf_t *b, const bc_item_t *it, uint32_t ttl);

/* Appends it as a HEAD frame (an item in parts, bc_frame.h): its PARTs,
 * which the caller appends, carry bc_item_value_len(it) bytes.  Errors as
 * bc_frame_put_head. */
bc_status_t bc_item_frame_put_head(bc_frame_buf_t *b, const bc_item_t *it, uint32_t ttl);

/*
 * Items as a bc_cache_bucket_foreach callback: each live item that has not
 * expired at `now` goes into buf as an ITEM frame and is counted.  Stops at
 * the first encoding failure (st says which).
 */
typedef struct bc_item_frame_batch {
    bc_frame_buf_t *buf;           /* borrowed */
    uint32_t now;                  /* bc_cache_now when the pass began */
    uint64_t items;                /* frames written */
    uint64_t bytes;                /* their key + value bytes */
    bc_status_t st;
} bc_item_frame_batch_t;

bool bc_item_frame_batch_add(const bc_item_t *it, void *frames);

/*
 * A new unlinked item (one reference, bc_item_alloc's rules) holding an
 * ITEM frame's key, value, flags, ttl and meta bits, for bc_cache_store or
 * bc_cache_store_as.  hash is bc_hash_key of the key; the caller has
 * checked the key's length.  NULL with *st: BC_EINVAL (a value over 4 GiB:
 * no item can hold it), BC_ETOOLARGE (over the max item size), BC_ENOMEM
 * (nothing left to evict).
 */
bc_item_t *bc_item_frame_alloc(bc_cache_t *cache, const bc_frame_t *f, uint32_t hash,
                               bc_status_t *st);
/* As bc_item_frame_alloc for a HEAD frame: the item's value (f->size
 * bytes, then the CRLF, which is written) is the caller's to fill from the
 * PARTs before it is stored. */
bc_item_t *bc_item_frame_alloc_head(bc_cache_t *cache, const bc_frame_t *f, uint32_t hash,
                                    bc_status_t *st);

#endif
