/*
 * item.h -- the storage engine's item: one key, its value and metadata in
 * one allocation.
 *
 * WHAT IT DOES
 *   Defines bc_item_t and its inline accessors, and nothing that needs a
 *   cache: the eviction policies (engine/evict/) and the item frames
 *   (engine/item_frame.h) work on items without cache.h.  Creating,
 *   linking and releasing items is the cache's business (engine/cache.h:
 *   bc_item_alloc, bc_cache_store, bc_item_release).
 *
 * HOW
 *   data[] holds the key (nkey bytes, then a NUL), then the value (nbytes
 *   bytes, the last two of which are always "\r\n" so the network layer
 *   can send value+CRLF with one iovec).  The reference count and the
 *   LOCKING RULE for the fields are the cache's (engine/cache.h).
 */
#ifndef BC_ITEM_H
#define BC_ITEM_H

#include <stdint.h>

/* Longest key (memcached's limit; nkey is one byte). */
#define BC_KEY_MAX_LEN 250u

/*
 * An item.  Fields are read-only outside engine/cache.c and engine/evict/.
 * Outside the shard lock, a holder of a reference may read only the key,
 * value, flags, nbytes and cas: exptime and the policy fields change under
 * the lock.  data[] is laid out as described above.
 */
typedef struct bc_item {
    struct bc_item *hnext;     /* bucket hash-table chain (shard lock) */
    struct bc_item *prev;      /* eviction policy links (shard lock) */
    struct bc_item *next;
    uint64_t cas;
    uint32_t hash;             /* bc_hash_key(key) */
    uint32_t exptime;          /* absolute unix seconds, 0 = never */
    uint32_t flags;            /* client flags */
    uint32_t nbytes;           /* value length including the trailing CRLF */
    uint32_t atime;            /* last access, unix seconds (meta `l`, `me la=`) */
    _Atomic uint16_t refcount; /* 1 for the table link + 1 per reader */
    uint8_t nkey;
    uint8_t iflags;            /* BC_ITEM_* below */
    uint8_t pbits;             /* private to the eviction policy */
    uint8_t pfreq;             /* private to the eviction policy */
    char data[];
} bc_item_t;

#define BC_ITEM_LINKED 0x01u   /* in a bucket table and the policy */
/* Meta-protocol state (memcached's it_flags of the same names); set on an
 * unlinked item by its owner (bc_item_set_meta), kept by the link, changed
 * afterwards only by the cache under the shard lock. */
#define BC_ITEM_STALE      0x08u   /* invalidated by "md I" or a stale ms */
#define BC_ITEM_WON        0x10u   /* a win token (W) was handed out */
#define BC_ITEM_KEY_BINARY 0x20u   /* stored with a base64 key (ms b) */
#define BC_ITEM_META_MASK  (BC_ITEM_STALE | BC_ITEM_WON | BC_ITEM_KEY_BINARY)

/* Sets the meta bits (BC_ITEM_META_MASK) of an item not linked yet. */
static inline void
bc_item_set_meta(bc_item_t *it, uint8_t bits)
{
    it->iflags = (uint8_t)((it->iflags & ~BC_ITEM_META_MASK) | (bits & BC_ITEM_META_MASK));
}

static inline const char *bc_item_key(const bc_item_t *it) { return it->data; }
static inline char *bc_item_value(bc_item_t *it) { return it->data + it->nkey + 1; }
/* Value length without the trailing CRLF. */
static inline uint32_t bc_item_value_len(const bc_item_t *it) { return it->nbytes - 2; }

#endif
