/*
 * outq.h -- a connection's output queue: the bytes to send, in order,
 * without copying large values.
 *
 * WHAT IT DOES
 *   A list of byte ranges to send.  Short text (status lines, VALUE
 *   headers, STAT lines) is formatted into one scratch buffer per queue;
 *   consecutive text is merged into one range.  A value too large to copy
 *   is not copied: its range points into the item, which stays referenced
 *   (engine/cache.h) until its last byte has been sent, then is released.
 *   The server (net/server.c) sends a queue with one sendmsg() of the
 *   iovecs bc_outq_iov() gives; a protocol (proto/) fills it.
 *
 * HOW
 *   Ranges in the scratch buffer are kept as offsets, so the buffer may be
 *   reallocated while replies are being built.
 *
 *       ents:  [text 0..40) [item A value+CRLF] [text 40..75) [item B ...]
 *       buf:   "VALUE a 0 5\r\n...END\r\nVALUE b ..."
 *
 *   `pending` counts every byte not yet sent, item bytes included (they
 *   are pinned): that is the figure backpressure looks at.  Once the queue
 *   is empty, buffers grown past a working size are freed, so an idle
 *   connection holds little.
 *
 * HOLES: A REPLY THAT COMES LATER
 *   A reply that is not known yet (a command forwarded to another node,
 *   proto/forward.h) takes its place in the queue as a hole; the replies
 *   queued after it wait behind it, and are sent only once it is filled:
 *
 *       ents:  [text "STORED\r\n"] [HOLE 7] [text "END\r\n"] [item C]
 *               <- sendable ->     ^ bc_outq_iov stops here
 *
 *   bc_outq_fill(q, 7, src) splices src's ranges where the hole was, and
 *   everything up to the next hole becomes sendable.  So a protocol keeps
 *   a connection's replies in request order without knowing which of them
 *   are late: it queues every reply at the tail, as it comes.  A range may
 *   also be a malloc'd buffer the queue frees once sent (a forwarded reply,
 *   relayed without a copy), or a slice of a buffer several ranges share,
 *   freed with the last of them (a forwarded multi-get reply whose VALUE
 *   blocks go out in the client's key order, bc_outq_add_shared).
 *   `pending` counts the bytes behind holes too;
 *   a hole itself counts nothing until filled.
 *
 * THREADS
 *   A queue belongs to one thread (its connection's worker); nothing here
 *   locks.
 */
#ifndef BC_OUTQ_H
#define BC_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "engine/cache.h"

typedef enum bc_outq_kind {
    BC_OUTQ_TEXT,              /* bytes in the scratch buffer */
    BC_OUTQ_ITEM,              /* bytes of a referenced item */
    BC_OUTQ_OWNED,             /* a malloc'd buffer, freed once sent */
    BC_OUTQ_HOLE,              /* a reply to come (bc_outq_hole) */
    BC_OUTQ_SHARED,            /* a slice of a shared buffer (bc_outq_add_shared) */
} bc_outq_kind_t;

/*
 * A malloc'd buffer several ranges send slices of (a forwarded multi-get
 * reply, its VALUE blocks put back in the client's key order): freed with
 * the last reference.  Its creator holds one (bc_outq_shared_new) and
 * drops it with bc_outq_shared_put; each range holds one.
 */
typedef struct bc_outq_shared {
    char *buf;
    uint32_t refs;
} bc_outq_shared_t;

typedef struct bc_outq_ent {
    union {
        bc_item_t *item;       /* ITEM: the referenced item */
        char *own;             /* OWNED: the buffer to free */
        bc_outq_shared_t *shared;  /* SHARED: the buffer referenced */
    };
    const char *ptr;           /* ITEM, OWNED, SHARED: next byte to send */
    uint32_t off;              /* TEXT: offset of the next byte in buf; HOLE: its id */
    uint32_t len;              /* bytes left in this range (HOLE: 0) */
    uint8_t kind;              /* bc_outq_kind_t */
} bc_outq_ent_t;

/* Names a hole until it is filled (bc_outq_hole). */
typedef uint32_t bc_outq_hole_t;

typedef struct bc_outq {
    bc_outq_ent_t *ents;       /* ents[head .. head+count) are pending */
    uint32_t head;
    uint32_t count;
    uint32_t ents_cap;
    char *buf;                 /* scratch text */
    size_t used;
    size_t cap;
    size_t pending;            /* bytes not yet sent, text and items */
    uint32_t holes;            /* holes not filled yet */
    uint32_t next_hole;        /* the id the next hole gets */
} bc_outq_t;

/* An empty queue; allocates nothing until used. */
void bc_outq_init(bc_outq_t *q);
/* Releases every referenced item and frees the memory; q is then empty. */
void bc_outq_free(bc_outq_t *q, bc_cache_t *cache);
static inline size_t bc_outq_pending(const bc_outq_t *q) { return q->pending; }
/* True when bytes can be sent now: the queue does not start with a hole. */
static inline bool
bc_outq_ready(const bc_outq_t *q)
{
    return q->count > 0 && q->ents[q->head].kind != BC_OUTQ_HOLE;
}
/* True when nothing is queued and no hole awaits its reply. */
static inline bool bc_outq_empty(const bc_outq_t *q) { return q->count == 0; }
/* Holes not filled yet. */
static inline uint32_t bc_outq_holes(const bc_outq_t *q) { return q->holes; }
/* Appends a copy of data.  Returns false when out of memory. */
bool bc_outq_add(bc_outq_t *q, const void *data, size_t len);
/*
 * Returns space for n more bytes of text at the end of the scratch buffer
 * (NULL when out of memory), for formatting in place: write up to n bytes
 * there, then queue the k written with bc_outq_commit(q, k).  The space
 * is valid until the next call on q.
 */
char *bc_outq_reserve(bc_outq_t *q, size_t n);
/* Queues the n bytes just written at bc_outq_reserve's space.  Returns
 * false when out of memory (the bytes are not queued). */
bool bc_outq_commit(bc_outq_t *q, size_t n);
/*
 * Appends n bytes starting at ptr inside item it; takes over the caller's
 * reference to it (released once sent, or by bc_outq_free).  Returns false
 * when out of memory, in which case the reference has been released.
 */
bool bc_outq_add_item(bc_outq_t *q, bc_cache_t *cache, bc_item_t *it, const char *ptr,
                      uint32_t n);
/*
 * Appends the n bytes of buf, a malloc'd buffer the queue takes over: it
 * is sent without a copy and freed once sent (or by bc_outq_free).
 * Returns false when out of memory, in which case buf has been freed.
 */
bool bc_outq_add_owned(bc_outq_t *q, char *buf, size_t n);
/*
 * A shared buffer holding buf (malloc'd, taken over: freed with the last
 * reference), with one reference, the caller's.  NULL when out of memory
 * (buf is freed).
 */
bc_outq_shared_t *bc_outq_shared_new(char *buf);
/* Drops one reference to sh (NULL: nothing), freeing it with the last. */
void bc_outq_shared_put(bc_outq_shared_t *sh);
/*
 * Appends the n bytes at ptr, inside sh's buffer, taking a reference of
 * its own: no copy.  A slice right after the previous one of the same
 * buffer extends it (one iovec).  Returns false when out of memory.
 */
bool bc_outq_add_shared(bc_outq_t *q, bc_outq_shared_t *sh, const char *ptr, size_t n);
/*
 * Moves the first n bytes of src (at most what it holds, up to its first
 * hole) to the end of dst, as bc_outq_move does; a range cut in two has
 * its first part copied.  Returns false when out of memory (the bytes
 * then are dropped from src all the same).
 */
bool bc_outq_move_head(bc_outq_t *dst, bc_outq_t *src, size_t n, bc_cache_t *cache);
/*
 * Moves every range of src to the end of dst (item references and owned
 * buffers travel, text is copied) and empties src, which must hold no
 * hole.  Returns false when out of memory; src is emptied either way.
 */
bool bc_outq_move(bc_outq_t *dst, bc_outq_t *src, bc_cache_t *cache);
/*
 * Appends a hole: a place for a reply that comes later; nothing queued
 * after it is sent before it is filled.  *hole names it for
 * bc_outq_fill.  Returns false when out of memory.
 */
bool bc_outq_hole(bc_outq_t *q, bc_outq_hole_t *hole);
/*
 * Fills hole with src's ranges (moved as bc_outq_move does; src, which
 * must hold no hole, is emptied; NULL or empty: the hole just goes away).
 * Returns false when out of memory -- the hole is gone and src emptied,
 * the reply lost: the caller closes the connection -- or when hole names
 * no hole of q (a bug; nothing changes but src is emptied).
 */
bool bc_outq_fill(bc_outq_t *q, bc_cache_t *cache, bc_outq_hole_t hole, bc_outq_t *src);
/*
 * Fills hole with the n bytes of buf, a malloc'd buffer the queue takes
 * over (as bc_outq_add_owned; n 0: the hole just goes away).  The same as
 * bc_outq_fill with a queue holding only buf, without building one.
 * Returns false when hole names no hole of q (buf is freed).
 */
bool bc_outq_fill_owned(bc_outq_t *q, bc_outq_hole_t hole, char *buf, size_t n);
/* Fills up to max iovecs with the next bytes to send, up to the first
 * hole; returns how many. */
int bc_outq_iov(const bc_outq_t *q, struct iovec *iov, int max);
/* Marks n bytes as sent (n <= what bc_outq_iov gave), releasing finished
 * items and buffers; shrinks the buffers once the queue is empty. */
void bc_outq_consume(bc_outq_t *q, bc_cache_t *cache, size_t n);

#endif
