/*
 * outq.c -- a connection's output queue (outq.h): ranges of scratch text,
 * of referenced items and of owned buffers, and holes for replies still to
 * come, sent in order and released as they go.
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

static void
ent_release(bc_cache_t *cache, bc_outq_ent_t *e)
{
    if (e->kind == BC_OUTQ_ITEM) bc_item_release(cache, e->item);
    else if (e->kind == BC_OUTQ_OWNED) free(e->own);
    else if (e->kind == BC_OUTQ_SHARED) bc_outq_shared_put(e->shared);
}

bc_outq_shared_t *
bc_outq_shared_new(char *buf)
{
    bc_outq_shared_t *sh = malloc(sizeof(*sh));
    if (sh == NULL) {
        free(buf);
        return NULL;
    }
    sh->buf = buf;
    sh->refs = 1;
    return sh;
}

void
bc_outq_shared_put(bc_outq_shared_t *sh)
{
    if (sh == NULL || --sh->refs > 0) return;
    free(sh->buf);
    free(sh);
}

void
bc_outq_free(bc_outq_t *q, bc_cache_t *cache)
{
    for (uint32_t i = 0; i < q->count; i++) ent_release(cache, &q->ents[q->head + i]);
    free(q->ents);
    free(q->buf);
    bc_outq_init(q);
}

/* Room for n more entries at the tail. */
static bool
outq_ent_room(bc_outq_t *q, uint32_t n)
{
    if (q->ents_cap - q->head - q->count >= n) return true;
    if (q->head > 0) {
        memmove(q->ents, q->ents + q->head, q->count * sizeof(*q->ents));
        q->head = 0;
        if (q->ents_cap - q->count >= n) return true;
    }
    uint32_t cap = q->ents_cap ? q->ents_cap * 2 : OUTQ_ENTS_MIN;
    while (cap - q->count < n) {
        if (cap > UINT32_MAX / 2) return false;
        cap *= 2;
    }
    bc_outq_ent_t *ents = realloc(q->ents, cap * sizeof(*ents));
    if (ents == NULL) return false;
    q->ents = ents;
    q->ents_cap = cap;
    return true;
}

/* A new zeroed entry of kind at the tail, counting len bytes as pending;
 * NULL (nothing changed) when the entry array cannot grow. */
static bc_outq_ent_t *
outq_push(bc_outq_t *q, bc_outq_kind_t kind, uint32_t len)
{
    if (!outq_ent_room(q, 1)) return NULL;
    bc_outq_ent_t *e = &q->ents[q->head + q->count++];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->len = len;
    q->pending += len;
    return e;
}

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
        if (last->kind == BC_OUTQ_TEXT && (size_t)last->off + last->len == q->used) {
            last->len += (uint32_t)n;
            q->used += n;
            q->pending += n;
            return true;
        }
    }
    bc_outq_ent_t *e = outq_push(q, BC_OUTQ_TEXT, (uint32_t)n);
    if (e == NULL) return false;
    e->off = (uint32_t)q->used;
    q->used += n;
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
    bc_outq_ent_t *e = outq_push(q, BC_OUTQ_ITEM, n);
    if (e == NULL) {
        bc_item_release(cache, it);
        return false;
    }
    e->item = it;
    e->ptr = ptr;
    return true;
}

bool
bc_outq_add_owned(bc_outq_t *q, char *buf, size_t n)
{
    if (n == 0) {
        free(buf);
        return true;
    }
    bc_outq_ent_t *e = n > UINT32_MAX ? NULL : outq_push(q, BC_OUTQ_OWNED, (uint32_t)n);
    if (e == NULL) {
        free(buf);
        return false;
    }
    e->own = buf;
    e->ptr = buf;
    return true;
}

bool
bc_outq_add_shared(bc_outq_t *q, bc_outq_shared_t *sh, const char *ptr, size_t n)
{
    if (n == 0) return true;
    if (q->count > 0) {
        bc_outq_ent_t *last = &q->ents[q->head + q->count - 1];
        if (last->kind == BC_OUTQ_SHARED && last->shared == sh && last->ptr + last->len == ptr &&
            (size_t)last->len + n <= UINT32_MAX) {
            last->len += (uint32_t)n;
            q->pending += n;
            return true;
        }
    }
    bc_outq_ent_t *e = n > UINT32_MAX ? NULL : outq_push(q, BC_OUTQ_SHARED, (uint32_t)n);
    if (e == NULL) return false;
    e->shared = sh;
    e->ptr = ptr;
    sh->refs++;
    return true;
}

/* Moves range e (of src, which forgets it) to dst; false when out of
 * memory, e's reference released. */
static bool
outq_move_ent(bc_outq_t *dst, const bc_outq_t *src, bc_outq_ent_t *e, bc_cache_t *cache)
{
    bool ok;
    switch ((bc_outq_kind_t)e->kind) {
    case BC_OUTQ_ITEM:
        return bc_outq_add_item(dst, cache, e->item, e->ptr, e->len);
    case BC_OUTQ_OWNED:
        /* e->ptr may have moved past e->own only in a queue being sent */
        if (e->ptr == e->own) return bc_outq_add_owned(dst, e->own, e->len);
        ok = bc_outq_add(dst, e->ptr, e->len);
        free(e->own);
        return ok;
    case BC_OUTQ_SHARED:
        ok = bc_outq_add_shared(dst, e->shared, e->ptr, e->len);
        bc_outq_shared_put(e->shared);
        return ok;
    case BC_OUTQ_TEXT:
        return bc_outq_add(dst, src->buf + e->off, e->len);
    case BC_OUTQ_HOLE:
        break;
    }
    return false;                     /* not allowed in src */
}

bool
bc_outq_move_head(bc_outq_t *dst, bc_outq_t *src, size_t n, bc_cache_t *cache)
{
    bool ok = true;
    while (n > 0 && src->count > 0) {
        bc_outq_ent_t *e = &src->ents[src->head];
        if (e->kind == BC_OUTQ_HOLE) break;
        if (n < e->len) {
            /* cut in two: the first part copied, the rest stays */
            const char *p = e->kind == BC_OUTQ_TEXT ? src->buf + e->off : e->ptr;
            if (ok) ok = bc_outq_add(dst, p, n);
            if (e->kind == BC_OUTQ_TEXT) e->off += (uint32_t)n;
            else e->ptr += n;
            e->len -= (uint32_t)n;
            src->pending -= n;
            break;
        }
        n -= e->len;
        src->pending -= e->len;
        if (ok) ok = outq_move_ent(dst, src, e, cache);
        else ent_release(cache, e);
        src->head++;
        if (--src->count == 0) src->head = 0;
    }
    return ok;
}

bool
bc_outq_move(bc_outq_t *dst, bc_outq_t *src, bc_cache_t *cache)
{
    bool ok = true;
    for (uint32_t i = 0; i < src->count; i++) {
        bc_outq_ent_t *e = &src->ents[src->head + i];
        if (e->kind == BC_OUTQ_HOLE) ok = false;              /* not allowed in src */
        else if (ok) ok = outq_move_ent(dst, src, e, cache);
        else ent_release(cache, e);
    }
    free(src->ents);
    free(src->buf);
    bc_outq_init(src);
    return ok;
}

bool
bc_outq_hole(bc_outq_t *q, bc_outq_hole_t *hole)
{
    bc_outq_ent_t *e = outq_push(q, BC_OUTQ_HOLE, 0);
    if (e == NULL) return false;
    e->off = q->next_hole++;
    q->holes++;
    *hole = e->off;
    return true;
}

/* Index in q->ents of hole h, or UINT32_MAX. */
static uint32_t
outq_find_hole(const bc_outq_t *q, bc_outq_hole_t h)
{
    if (q->holes == 0) return UINT32_MAX;
    for (uint32_t i = q->head; i < q->head + q->count; i++) {
        if (q->ents[i].kind == BC_OUTQ_HOLE && q->ents[i].off == h) return i;
    }
    return UINT32_MAX;
}

/* Removes entry at (absolute index) i, which holds nothing to release. */
static void
outq_remove(bc_outq_t *q, uint32_t i)
{
    uint32_t end = q->head + q->count;
    memmove(&q->ents[i], &q->ents[i + 1], (end - i - 1) * sizeof(*q->ents));
    q->count--;
    if (q->count == 0) q->head = 0;
}

bool
bc_outq_fill(bc_outq_t *q, bc_cache_t *cache, bc_outq_hole_t hole, bc_outq_t *src)
{
    uint32_t at = outq_find_hole(q, hole);
    bc_outq_t empty;
    if (src == NULL) {
        bc_outq_init(&empty);
        src = &empty;
    }
    if (at == UINT32_MAX) {
        bc_outq_free(src, cache);
        return false;
    }
    uint32_t n = 0;
    size_t text = 0;
    for (uint32_t i = 0; i < src->count; i++) {
        const bc_outq_ent_t *e = &src->ents[src->head + i];
        if (e->len == 0 || e->kind == BC_OUTQ_HOLE) continue;
        n++;
        if (e->kind == BC_OUTQ_TEXT) text += e->len;
    }
    q->holes--;
    if (n == 0) {
        outq_remove(q, at);
        bc_outq_free(src, cache);
        return true;
    }
    /* Room first (the entries may move), then the text (the buffer may). */
    uint32_t rel = at - q->head;
    char *tp = NULL;
    if (!outq_ent_room(q, n - 1) || (text > 0 && (tp = bc_outq_reserve(q, text)) == NULL)) {
        outq_remove(q, q->head + rel);
        bc_outq_free(src, cache);
        return false;
    }
    at = q->head + rel;
    uint32_t end = q->head + q->count;
    memmove(&q->ents[at + n], &q->ents[at + 1], (end - at - 1) * sizeof(*q->ents));
    q->count += n - 1;
    uint32_t k = at;
    for (uint32_t i = 0; i < src->count; i++) {
        bc_outq_ent_t *e = &src->ents[src->head + i];
        if (e->len == 0 || e->kind == BC_OUTQ_HOLE) {
            ent_release(cache, e);
            continue;
        }
        bc_outq_ent_t *d = &q->ents[k++];
        *d = *e;
        if (e->kind == BC_OUTQ_TEXT) {
            memcpy(tp, src->buf + e->off, e->len);
            d->off = (uint32_t)q->used;
            q->used += e->len;
            tp += e->len;
        }
        q->pending += e->len;
    }
    /* The references moved: src is emptied without releasing them. */
    free(src->ents);
    free(src->buf);
    bc_outq_init(src);
    return true;
}

bool
bc_outq_fill_owned(bc_outq_t *q, bc_outq_hole_t hole, char *buf, size_t n)
{
    uint32_t at = outq_find_hole(q, hole);
    if (at == UINT32_MAX || n > UINT32_MAX) {
        free(buf);
        return false;
    }
    q->holes--;
    if (n == 0) {
        free(buf);
        outq_remove(q, at);
        return true;
    }
    bc_outq_ent_t *e = &q->ents[at];
    e->kind = BC_OUTQ_OWNED;
    e->own = buf;
    e->ptr = buf;
    e->off = 0;
    e->len = (uint32_t)n;
    q->pending += n;
    return true;
}

int
bc_outq_iov(const bc_outq_t *q, struct iovec *iov, int max)
{
    int n = 0;
    for (uint32_t i = 0; i < q->count && n < max; i++) {
        const bc_outq_ent_t *e = &q->ents[q->head + i];
        if (e->kind == BC_OUTQ_HOLE) break;
        iov[n].iov_base = (void *)(e->kind == BC_OUTQ_TEXT ? q->buf + e->off : e->ptr);
        iov[n].iov_len = e->len;
        n++;
    }
    return n;
}

/*
 * Gives back the scratch space before the oldest text still queued.  The
 * scratch buffer is only appended to and starts over when the queue is
 * empty; behind a hole (a forwarded reply) a busy pipelined connection may
 * never be empty, so the sent part is reclaimed here once it is at least
 * half of the buffer (each byte is moved at most about once).
 */
static void
outq_compact(bc_outq_t *q)
{
    uint32_t lo = UINT32_MAX;
    for (uint32_t i = q->head; i < q->head + q->count; i++) {
        if (q->ents[i].kind == BC_OUTQ_TEXT && q->ents[i].off < lo) lo = q->ents[i].off;
    }
    if (lo == UINT32_MAX) {
        q->used = 0;
        return;
    }
    if ((size_t)lo < q->used / 2) return;
    memmove(q->buf, q->buf + lo, q->used - lo);
    q->used -= lo;
    for (uint32_t i = q->head; i < q->head + q->count; i++) {
        if (q->ents[i].kind == BC_OUTQ_TEXT) q->ents[i].off -= lo;
    }
}

void
bc_outq_consume(bc_outq_t *q, bc_cache_t *cache, size_t n)
{
    while (n > 0 && q->count > 0) {
        bc_outq_ent_t *e = &q->ents[q->head];
        if (e->kind == BC_OUTQ_HOLE) break;   /* never sent past */
        if (n < e->len) {
            if (e->kind == BC_OUTQ_TEXT) {
                e->off += (uint32_t)n;
            } else {
                e->ptr += n;
            }
            e->len -= (uint32_t)n;
            q->pending -= n;
            return;
        }
        n -= e->len;
        q->pending -= e->len;
        ent_release(cache, e);
        q->head++;
        q->count--;
    }
    if (q->count > 0 && q->used > OUTQ_BUF_KEEP) outq_compact(q);
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
