/*
 * bc_frame.h -- the peer frames a bucket travels in when it migrates from
 * its source primary to its destination primary (node/migrate/migrate.h).
 *
 * WHAT
 *   A bucket export is a byte stream of frames:
 *
 *       HELLO  ITEM*  END                 (a full export)
 *       HELLO  (ITEM | DEL)*  END         (a delta export: HELLO's delta = 1)
 *
 *   where any ITEM may come as HEAD PART+ instead (an item in parts,
 *   below), and every frame is
 *
 *       +----------------+----------------+--------------------------+
 *       | u32 length BE  | u32 CRC-32C BE | payload: length bytes    |
 *       +----------------+----------------+--------------------------+
 *
 *   where the payload is ONE msgpack array whose first element is the
 *   frame type:
 *
 *       HELLO  [0, "bcmig", version, bucket, epoch, nbuckets]
 *              [0, "bcmig", version, bucket, epoch, nbuckets, delta]
 *       ITEM   [1, key, value, flags, ttl, cas]
 *              [1, key, value, flags, ttl, cas, meta]
 *       DEL    [11, key]                  (delta exports only)
 *       END    [2, items, bytes]
 *       HEAD   [3, key, size, flags, ttl, cas, meta]
 *       PART   [4, chunk]
 *
 *   key and value are msgpack bin (str is accepted too), flags a uint32,
 *   ttl the item's REMAINING lifetime in seconds (0 = never expires; a
 *   relative time, so the two nodes' clocks need not agree), cas the
 *   item's CAS at the source (informative: the destination assigns its
 *   own).  meta, present only when not 0, holds the item's meta-protocol
 *   state (memcached's mg/md flags): BC_FRAME_ITEM_STALE (invalidated by
 *   "md I"), BC_FRAME_ITEM_WON (a win token was handed out),
 *   BC_FRAME_ITEM_KEY_BINARY (stored with a base64 key); a reader ignores
 *   bits it does not know.  An item without that state is the six-field
 *   frame earlier nodes wrote and read; a node from before meta refuses
 *   the seven-field one (stale items exist only where clients use meta
 *   commands).  END repeats how many items and how many key+value bytes the
 *   stream carried (in a delta export, ITEM and DEL frames both count as
 *   items, a DEL's bytes being its key's).
 *
 *   HEAD and PART carry one large item in parts: HEAD has everything an
 *   ITEM has but the value, and its size (1 .. 2^32-1); PART frames of
 *   non-empty chunks follow, back to back, until their lengths add up to
 *   size.  Only a destination that asked for them gets them (migrate.h,
 *   "Large items"); the item counts once in END, its bytes as an ITEM's.
 *   Why: a receiver's buffer and a sender's step stay one part long
 *   however large the item, and the sender copies a part at a time
 *   from the item without holding its shard's lock.
 *
 *   A delta export (node/migrate/migrate.h, precopy) carries only the keys that
 *   changed since an earlier snapshot of the bucket: ITEM is "the key's
 *   value is now this" (the receiver overwrites), DEL "the key is gone".
 *   A HELLO without the seventh field is a full export, so a version-1
 *   reader of full exports reads these unchanged.
 *
 * REPLICATION (node/repl/repl.h) uses the same framing on a primary->backup
 * connection, with these frame types besides ITEM and END:
 *
 *       RHELLO [10, "bcrepl", version, full, replid, offset]
 *       DEL    [11, key]
 *       TOUCH  [12, key, ttl]
 *       FLUSH  [13, when, mark]       when 0: flush now, items with a CAS
 *                                      below mark go;  mark 0: a delayed
 *                                      flush due at when (absolute unix
 *                                      seconds);  both: the delayed flush
 *                                      due at when came due on the primary
 *                                      at mark (node/repl/primary.c)
 *       DROP   [14, bucket]
 *       PING   [15, offset]           (primary -> backup, the primary's offset)
 *       ACK    [16, offset]           (backup -> primary, the offset applied)
 *
 *   full = 1 means a snapshot (ITEM* END) follows before the live stream.
 *   In the live stream an ITEM is "the key's value is now this".
 *
 * WHY THIS FRAMING
 *   The length prefix lets a reader cut frames without parsing msgpack
 *   incrementally; the CRC catches corruption that msgpack would happily
 *   parse as different numbers; END with its counts catches truncation at
 *   a frame boundary (a stream that simply stops early is never mistaken
 *   for a complete, smaller bucket).  Integers may come in any msgpack
 *   width, so any msgpack encoder can produce these frames.
 *
 * HOW
 *   Encoding appends to a growable buffer (bc_frame_buf_t).  Decoding is
 *   zero-copy: bc_frame_decode() looks at the front of a buffer and either
 *   returns one frame whose key/value point into that buffer, or says it
 *   needs more bytes, or says exactly what is wrong.  It never reads past
 *   len and never allocates, so it is safe on hostile input (fuzzed by
 *   tests/fuzz/fuzz_frame.c).  bc_frame_stream_t checks the frame order
 *   and the END counts.
 */
#ifndef BC_FRAME_H
#define BC_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_status.h"

#define BC_FRAME_HEADER_LEN 8u
#define BC_FRAME_MAGIC      "bcmig"
#define BC_FRAME_VERSION    1u
#define BC_FRAME_REPL_MAGIC "bcrepl"
#define BC_FRAME_REPLID_MAX 40u       /* longest replication id carried */

/* ITEM meta bits (see above). */
#define BC_FRAME_ITEM_STALE      0x1u
#define BC_FRAME_ITEM_WON        0x2u
#define BC_FRAME_ITEM_KEY_BINARY 0x4u

typedef enum bc_frame_type {
    BC_FRAME_HELLO = 0,
    BC_FRAME_ITEM = 1,
    BC_FRAME_END = 2,
    BC_FRAME_HEAD = 3,
    BC_FRAME_PART = 4,
    BC_FRAME_RHELLO = 10,
    BC_FRAME_DEL = 11,
    BC_FRAME_TOUCH = 12,
    BC_FRAME_FLUSH = 13,
    BC_FRAME_DROP = 14,
    BC_FRAME_PING = 15,
    BC_FRAME_ACK = 16,
} bc_frame_type_t;

/* One decoded frame.  key and value point into the decoded buffer. */
typedef struct bc_frame {
    bc_frame_type_t type;
    /* HELLO */
    uint32_t version;
    uint32_t bucket;
    uint64_t epoch;
    uint32_t nbuckets;
    bool delta;                    /* HELLO: a delta export (see above) */
    /* ITEM (HEAD: all but value; PART: value alone) */
    const char *key;
    size_t nkey;
    const char *value;
    size_t nvalue;
    uint32_t flags;
    uint32_t ttl;
    uint64_t cas;
    uint32_t meta;                 /* BC_FRAME_ITEM_* bits; 0 without the field */
    uint64_t size;                 /* HEAD: the value's length, its PARTs' sum */
    /* END */
    uint64_t items;
    uint64_t bytes;
    /* RHELLO (also version), PING, ACK (offset), FLUSH (when), DROP (bucket),
     * DEL and TOUCH (key, nkey; TOUCH also ttl) */
    bool full;
    const char *replid;
    size_t nreplid;
    uint64_t offset;
    uint32_t when;
    uint64_t mark;                 /* FLUSH */
} bc_frame_t;

/* ---- encoding ---- */

/*
 * A growable output buffer.  Zero-initialise it; data is malloc'd and owned
 * by the buffer until the caller takes it (and then frees it with free()).
 */
typedef struct bc_frame_buf {
    char *data;
    size_t len;
    size_t cap;
} bc_frame_buf_t;

void bc_frame_buf_free(bc_frame_buf_t *b);
/* Makes room for at least `extra` more bytes (one allocation for a stream
 * whose size is known roughly in advance).  Errors: BC_ENOMEM. */
bc_status_t bc_frame_buf_reserve(bc_frame_buf_t *b, size_t extra);

/* Each appends one complete frame.  Errors: BC_ENOMEM (the buffer is left
 * as it was), BC_ETOOLARGE (a payload over 4 GiB). */
bc_status_t bc_frame_put_hello(bc_frame_buf_t *b, uint32_t bucket, uint64_t epoch,
                               uint32_t nbuckets);
/* The HELLO of a delta export (delta = 1; see above). */
bc_status_t bc_frame_put_hello_delta(bc_frame_buf_t *b, uint32_t bucket, uint64_t epoch,
                                     uint32_t nbuckets);
bc_status_t bc_frame_put_item(bc_frame_buf_t *b, const char *key, size_t nkey, const char *value,
                              size_t nvalue, uint32_t flags, uint32_t ttl, uint64_t cas);
/* An ITEM with meta bits (BC_FRAME_ITEM_*): the seven-field frame, or with
 * meta 0 exactly bc_frame_put_item's. */
bc_status_t bc_frame_put_item_meta(bc_frame_buf_t *b, const char *key, size_t nkey,
                                   const char *value, size_t nvalue, uint32_t flags, uint32_t ttl,
                                   uint64_t cas, uint32_t meta);
bc_status_t bc_frame_put_end(bc_frame_buf_t *b, uint64_t items, uint64_t bytes);
/* An item in parts (see above): HEAD, then PARTs whose lengths add up to
 * size.  Errors as bc_frame_put_item; BC_EINVAL for a size of 0 or over
 * 2^32-1, or an empty part. */
bc_status_t bc_frame_put_head(bc_frame_buf_t *b, const char *key, size_t nkey, uint64_t size,
                              uint32_t flags, uint32_t ttl, uint64_t cas, uint32_t meta);
bc_status_t bc_frame_put_part(bc_frame_buf_t *b, const char *chunk, size_t n);
/* Replication frames (see REPLICATION above).  replid is at most
 * BC_FRAME_REPLID_MAX bytes (BC_EINVAL otherwise). */
bc_status_t bc_frame_put_rhello(bc_frame_buf_t *b, bool full, const char *replid, uint64_t offset);
bc_status_t bc_frame_put_del(bc_frame_buf_t *b, const char *key, size_t nkey);
bc_status_t bc_frame_put_touch(bc_frame_buf_t *b, const char *key, size_t nkey, uint32_t ttl);
bc_status_t bc_frame_put_flush(bc_frame_buf_t *b, uint32_t when, uint64_t mark);
bc_status_t bc_frame_put_drop(bc_frame_buf_t *b, uint32_t bucket);
bc_status_t bc_frame_put_ping(bc_frame_buf_t *b, uint64_t offset);
bc_status_t bc_frame_put_ack(bc_frame_buf_t *b, uint64_t offset);

/* ---- decoding ---- */

/*
 * Decodes the frame at the front of buf[0..len).
 *   BC_OK        *out holds the frame (pointers into buf), *consumed its size
 *   BC_EAGAIN    incomplete: more bytes are needed (*consumed = 0)
 *   BC_ETOOLARGE the length field is over max_payload
 *   BC_EPROTO    corrupt: CRC mismatch, not msgpack, wrong types or field
 *                count, unknown frame type, trailing bytes in the payload
 * On an error, err (may be NULL) receives a one-line reason.
 */
bc_status_t bc_frame_decode(const char *buf, size_t len, size_t max_payload, bc_frame_t *out,
                            size_t *consumed, char *err, size_t errlen);

/*
 * Frame-order checker for one export stream.  Zero-initialise; feed every
 * decoded frame to bc_frame_stream_next, then call bc_frame_stream_finish
 * when the byte stream ends.
 */
typedef struct bc_frame_stream {
    int state;                 /* 0 = expect HELLO, 1 = items, 2 = after END */
    bool delta;                /* HELLO said delta: DEL frames are allowed */
    uint32_t bucket;
    uint64_t epoch;
    uint64_t items;            /* ITEM and HEAD (and, in a delta, DEL) frames seen */
    uint64_t bytes;            /* key + value bytes seen (a PART's count) */
    uint64_t part_left;        /* an item in parts: its value bytes still to come */
} bc_frame_stream_t;

/* Errors: BC_EPROTO (wrong order, wrong version/magic, END counts that do
 * not match what came, anything after END, a PART without its HEAD or
 * longer than what its HEAD said, any other frame before an item's PARTs
 * add up).  err says which. */
bc_status_t bc_frame_stream_next(bc_frame_stream_t *s, const bc_frame_t *f, char *err,
                                 size_t errlen);
/* BC_OK when END was seen; BC_EPROTO ("truncated") otherwise. */
bc_status_t bc_frame_stream_finish(const bc_frame_stream_t *s, char *err, size_t errlen);

/* CRC-32C (Castagnoli) of data, continuing from crc (0 to start). */
uint32_t bc_frame_crc32c(uint32_t crc, const void *data, size_t len);

/* Internal (tests): bc_frame_crc32c always on the portable table code, even on
 * a CPU with the crc32 instruction, to check the one against the other. */
uint32_t bc__frame_crc32c_soft(uint32_t crc, const void *data, size_t len);

#endif
