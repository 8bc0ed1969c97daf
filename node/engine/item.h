/*
 * item.h -- the storage engine's item: a 24-byte header, then the key and
 * the value, written into a segment (engine/seg_int.h) or, for a value too
 * large for one, into a block of its own.
 *
 * WHAT IT DOES
 *   Defines bc_item_t and its accessors, and nothing that needs a cache:
 *   the eviction policies (engine/evict/) and the item frames
 *   (engine/item_frame.h) work on items without cache.h.  Creating,
 *   linking and releasing items is the cache's business (engine/cache.h:
 *   bc_item_alloc, bc_cache_store, bc_item_release).
 *
 * HOW
 *   One item, as laid out in memory (8-byte aligned; its size rounded up
 *   to 8):
 *
 *     0        8          12        16                          20     21     22      24
 *     +--------+----------+---------+---------------------------+------+------+-------+
 *     | cas    | exptime  | hnext   | nbytes:22 F:1 L:1 nkey:8  |iflags|pfreq | atime |
 *     +--------+----------+---------+---------------------------+------+------+-------+
 *     [flags: 4 bytes, only when F (client flags are not zero)]
 *     [nbytes: 4 bytes, only when L (a large item)]
 *     key (nkey bytes, no terminator)
 *     value (nbytes bytes, the last two always "\r\n", so the network
 *            layer sends value+CRLF with one iovec)
 *
 *   BACKGROUND: the old item was a malloc'd block with a 48-byte header
 *   (two list pointers, a chain pointer, the hash, a refcount) plus
 *   malloc's own 8 bytes and 16-byte rounding: about 75 bytes of overhead
 *   for a 10-byte key and a 100-byte value.  Here an item has no malloc
 *   header (it is carved out of a segment), no list pointers (eviction
 *   works on segments, evict/evict.h), no refcount (readers pin the
 *   segment), no stored hash (recomputed from the key on the rare paths
 *   that need it), and the bucket chain link is a 32-bit reference, not a
 *   pointer.  Client flags, zero for most items, cost nothing when zero.
 *
 *   hnext      the next item of the bucket's hash chain, as a reference
 *              (seg_int.h: an offset in the segment arena, or a large item's
 *              number); 0 ends the chain
 *   lenkey     what never changes once the item is written, so that
 *              eviction may read it without a lock: the value length
 *              including CRLF (22 bits are plenty for an item in a
 *              segment, at most 1 MiB; a large item keeps 0 there and its
 *              length in the 4 bytes after the flags), F, L, the key length
 *   iflags     BC_ITEM_* below, changed under the shard lock: linked,
 *              fetched, and the meta protocol's stale, win and binary-key
 *              bits (0x04, 0x40 and 0x80 are free)
 *   pfreq      the eviction policy's byte (a reference bit, a frequency)
 *   atime      last access, the cache clock's seconds modulo 2^16 (18
 *              hours): what LFU decays by and what the meta protocol's
 *              "la" / "mg l" (seconds since last access) reads.  BEHAVIOR:
 *              16 bits keep the header at 24 bytes, so an idle time is
 *              known modulo 65536 s: exact up to 18 h 12 min, and an item
 *              idle longer than that reports its idle time modulo 65536 s
 *              (bc_cache_item_meta) -- it looks more recently used than
 *              it is.  memcached's own "la" is exact; no client we know of
 *              acts on idle times that long.
 *
 *   The LOCKING RULE for the fields is the cache's (engine/cache.h).
 */
#ifndef BC_ITEM_H
#define BC_ITEM_H

#include <stdint.h>
#include <string.h>

/* Longest key (memcached's limit; nkey is one byte). */
#define BC_KEY_MAX_LEN 250u

/*
 * An item.  Fields are read-only outside engine/cache.c and engine/evict/;
 * everyone else uses the accessors below.  Outside the shard lock, a
 * holder of a reference may read only the key, value, flags, nbytes and
 * cas: exptime, hnext and the policy fields change under the lock.
 */
typedef struct bc_item {
    uint64_t cas;
    uint32_t exptime;          /* absolute unix seconds, 0 = never */
    uint32_t hnext;            /* bucket hash-chain reference (shard lock) */
    uint32_t lenkey;           /* BC_ITEM_LEN_* below; set once, before the item is shared */
    uint8_t iflags;            /* BC_ITEM_* (shard lock) */
    uint8_t pfreq;             /* private to the eviction policy */
    uint16_t atime;            /* last access, seconds mod 2^16 */
    char data[];
} bc_item_t;

_Static_assert(sizeof(bc_item_t) == 24, "the item header is 24 bytes");

#define BC_ITEM_LEN_NBYTES  0x003fffffu   /* value length (0 when large) */
#define BC_ITEM_LEN_FLAGS   0x00400000u   /* 4 bytes of client flags follow the header */
#define BC_ITEM_LEN_LARGE   0x00800000u   /* a block of its own; 4 bytes of length follow */
#define BC_ITEM_LEN_KEY_SHIFT 24

#define BC_ITEM_LINKED    0x01u   /* in a bucket table */
#define BC_ITEM_FETCHED   0x02u   /* read at least once since stored */

static inline uint32_t bc_item_nkey(const bc_item_t *it) { return it->lenkey >> BC_ITEM_LEN_KEY_SHIFT; }
static inline int bc_item_is_large(const bc_item_t *it) { return (it->lenkey & BC_ITEM_LEN_LARGE) != 0; }
static inline int bc_item_has_flags(const bc_item_t *it) { return (it->lenkey & BC_ITEM_LEN_FLAGS) != 0; }

static inline uint32_t
bc__item_extra(const bc_item_t *it)
{
    return (bc_item_has_flags(it) ? 4u : 0u) + (bc_item_is_large(it) ? 4u : 0u);
}

static inline uint32_t
bc_item_nbytes(const bc_item_t *it)
{
    if (!bc_item_is_large(it)) return it->lenkey & BC_ITEM_LEN_NBYTES;
    uint32_t n;
    memcpy(&n, it->data + (bc_item_has_flags(it) ? 4u : 0u), sizeof(n));
    return n;
}

static inline uint32_t
bc_item_flags(const bc_item_t *it)
{
    uint32_t f = 0;
    if (bc_item_has_flags(it)) memcpy(&f, it->data, sizeof(f));
    return f;
}

static inline uint64_t bc_item_cas(const bc_item_t *it) { return it->cas; }
static inline uint32_t bc_item_exptime(const bc_item_t *it) { return it->exptime; }

static inline const char *
bc_item_key(const bc_item_t *it)
{
    return it->data + bc__item_extra(it);
}

static inline char *
bc_item_value(bc_item_t *it)
{
    return it->data + bc__item_extra(it) + bc_item_nkey(it);
}

static inline const char *
bc_item_value_const(const bc_item_t *it)
{
    return it->data + bc__item_extra(it) + bc_item_nkey(it);
}

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

/* Value length without the trailing CRLF. */
static inline uint32_t bc_item_value_len(const bc_item_t *it) { return bc_item_nbytes(it) - 2; }

#endif
