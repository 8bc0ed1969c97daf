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

typedef struct bc_outq_ent {
    bc_item_t *item;           /* referenced item, or NULL: scratch text */
    const char *ptr;           /* item: next byte to send */
    uint32_t off;              /* scratch: offset of the next byte in buf */
    uint32_t len;              /* bytes left in this range */
} bc_outq_ent_t;

typedef struct bc_outq {
    bc_outq_ent_t *ents;       /* ents[head .. head+count) are pending */
    uint32_t head;
    uint32_t count;
    uint32_t ents_cap;
    char *buf;                 /* scratch text */
    size_t used;
    size_t cap;
    size_t pending;            /* bytes not yet sent, text and items */
} bc_outq_t;

/* An empty queue; allocates nothing until used. */
void bc_outq_init(bc_outq_t *q);
/* Releases every referenced item and frees the memory; q is then empty. */
void bc_outq_free(bc_outq_t *q, bc_cache_t *cache);
static inline size_t bc_outq_pending(const bc_outq_t *q) { return q->pending; }
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
 * Moves every range of src to the end of dst (item references travel,
 * text is copied) and empties src.  Returns false when out of memory; src
 * is emptied either way.
 */
bool bc_outq_move(bc_outq_t *dst, bc_outq_t *src, bc_cache_t *cache);
/* Fills up to max iovecs with the next bytes to send; returns how many. */
int bc_outq_iov(const bc_outq_t *q, struct iovec *iov, int max);
/* Marks n bytes as sent (n <= pending), releasing finished items; shrinks
 * the buffers once the queue is empty. */
void bc_outq_consume(bc_outq_t *q, bc_cache_t *cache, size_t n);

#endif
