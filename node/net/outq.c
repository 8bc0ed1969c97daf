/*
 * outq.c -- a connection's output queue (outq.h): ranges of scratch text
 * and of referenced items, sent in order and released as they go.
 */
#include "net/outq.h"

#include <stdlib.h>
#include <string.h>

#define OUTQ_BUF_MIN   1024u
#define OUTQ_BUF_KEEP  (16u * 1024u)   /* larger scratch is freed when idle */
#define OUTQ_ENTS_MIN  16u
#define OUTQ_ENTS_KEEP 256u

void
bc_outq_init(bc_outq_t *q)
{
    memset(q, 0, sizeof(*q));
}

void
bc_outq_free(bc_outq_t *q, bc_cache_t *cache)
{
    for (uint32_t i = 0; i < q->count; i++) {
        bc_outq_ent_t *e = &q->ents[q->head + i];
        if (e->item != NULL) bc_item_release(cache, e->item);
    }
    free(q->ents);
    free(q->buf);
    bc_outq_init(q);
}

/* Room for one more entry at the tail. */
static bool
outq_ent_room(bc_outq_t *q)
{
    if (q->head + q->count < q->ents_cap) return true;
    if (q->head > 0) {
        memmove(q->ents, q->ents + q->head, q->count * sizeof(*q->ents));
        q->head = 0;
        return true;
    }
    uint32_t cap = q->ents_cap ? q->ents_cap * 2 : OUTQ_ENTS_MIN;
    bc_outq_ent_t *ents = realloc(q->ents, cap * sizeof(*ents));
    if (ents == NULL) return false;
    q->ents = ents;
    q->ents_cap = cap;
    return true;
}

/* Returns space for n more bytes of text at buf + used, or NULL. */

char *
bc_outq_reserve(bc_outq_t *q, size_t n)
{
    if (q->cap - q->used < n) {
        size_t cap = q->cap ? q->cap : OUTQ_BUF_MIN;
        while (cap - q->used < n) cap *= 2;
        if (cap > UINT32_MAX) return NULL;    /* offsets are 32-bit */
        char *buf = realloc(q->buf, cap);
        if (buf == NULL) return NULL;
        q->buf = buf;
        q->cap = cap;
    }
    return q->buf + q->used;
}

bool
bc_outq_commit(bc_outq_t *q, size_t n)
{
    if (q->count > 0) {
        bc_outq_ent_t *last = &q->ents[q->head + q->count - 1];
        if (last->item == NULL && (size_t)last->off + last->len == q->used) {
            last->len += (uint32_t)n;
            q->used += n;
            q->pending += n;
            return true;
        }
    }
    if (!outq_ent_room(q)) return false;
    bc_outq_ent_t *e = &q->ents[q->head + q->count++];
    e->item = NULL;
    e->ptr = NULL;
    e->off = (uint32_t)q->used;
    e->len = (uint32_t)n;
    q->used += n;
    q->pending += n;
    return true;
}

bool
bc_outq_add(bc_outq_t *q, const void *data, size_t len)
{
    char *p = bc_outq_reserve(q, len);
    if (p == NULL) return false;
    memcpy(p, data, len);
    return bc_outq_commit(q, len);
}

bool
bc_outq_add_item(bc_outq_t *q, bc_cache_t *cache, bc_item_t *it, const char *ptr, uint32_t n)
{
    if (!outq_ent_room(q)) {
        bc_item_release(cache, it);
        return false;
    }
    bc_outq_ent_t *e = &q->ents[q->head + q->count++];
    e->item = it;
    e->ptr = ptr;
    e->off = 0;
    e->len = n;
    q->pending += n;
    return true;
}

bool
bc_outq_move(bc_outq_t *dst, bc_outq_t *src, bc_cache_t *cache)
{
    bool ok = true;
    for (uint32_t i = 0; i < src->count; i++) {
        bc_outq_ent_t *e = &src->ents[src->head + i];
        if (e->item != NULL) {
            if (ok) ok = bc_outq_add_item(dst, cache, e->item, e->ptr, e->len);
            else bc_item_release(cache, e->item);
        } else if (ok) {
            ok = bc_outq_add(dst, src->buf + e->off, e->len);
        }
    }
    free(src->ents);
    free(src->buf);
    bc_outq_init(src);
    return ok;
}

int
bc_outq_iov(const bc_outq_t *q, struct iovec *iov, int max)
{
    int n = 0;
    for (uint32_t i = 0; i < q->count && n < max; i++) {
        const bc_outq_ent_t *e = &q->ents[q->head + i];
        iov[n].iov_base = (void *)(e->item != NULL ? e->ptr : q->buf + e->off);
        iov[n].iov_len = e->len;
        n++;
    }
    return n;
}

void
bc_outq_consume(bc_outq_t *q, bc_cache_t *cache, size_t n)
{
    while (n > 0 && q->count > 0) {
        bc_outq_ent_t *e = &q->ents[q->head];
        if (n < e->len) {
            if (e->item != NULL) {
                e->ptr += n;
            } else {
                e->off += (uint32_t)n;
            }
            e->len -= (uint32_t)n;
            q->pending -= n;
            return;
        }
        n -= e->len;
        q->pending -= e->len;
        if (e->item != NULL) bc_item_release(cache, e->item);
        q->head++;
        q->count--;
    }
    if (q->count == 0) {
        q->head = 0;
        q->used = 0;
        if (q->cap > OUTQ_BUF_KEEP) {
            free(q->buf);
            q->buf = NULL;
            q->cap = 0;
        }
        if (q->ents_cap > OUTQ_ENTS_KEEP) {
            free(q->ents);
            q->ents = NULL;
            q->ents_cap = 0;
        }
    }
}
