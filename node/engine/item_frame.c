/*
 * item_frame.c -- see item_frame.h.
 */
#include "engine/item_frame.h"

#include <string.h>

bool
bc_item_frame_ttl(uint32_t exptime, uint32_t now, uint32_t *ttl)
{
    if (exptime == 0) {
        *ttl = 0;
        return true;
    }
    if (exptime <= now) return false;
    *ttl = exptime - now;
    return true;
}

uint32_t
bc_item_frame_exptime(uint32_t now, uint32_t ttl)
{
    if (ttl == 0) return 0;
    return ttl > UINT32_MAX - now ? UINT32_MAX : now + ttl;
}

/* The item's meta-protocol bits as frame bits, and back. */
static uint32_t
item_meta_to_frame(uint8_t iflags)
{
    return ((iflags & BC_ITEM_STALE) ? BC_FRAME_ITEM_STALE : 0u) |
           ((iflags & BC_ITEM_WON) ? BC_FRAME_ITEM_WON : 0u) |
           ((iflags & BC_ITEM_KEY_BINARY) ? BC_FRAME_ITEM_KEY_BINARY : 0u);
}

static uint8_t
frame_meta_to_item(uint32_t meta)
{
    return (uint8_t)(((meta & BC_FRAME_ITEM_STALE) ? BC_ITEM_STALE : 0u) |
                     ((meta & BC_FRAME_ITEM_WON) ? BC_ITEM_WON : 0u) |
                     ((meta & BC_FRAME_ITEM_KEY_BINARY) ? BC_ITEM_KEY_BINARY : 0u));
}

bc_status_t
bc_item_frame_put_head(bc_frame_buf_t *b, const bc_item_t *it, uint32_t ttl)
{
    return bc_frame_put_head(b, bc_item_key(it), bc_item_nkey(it), bc_item_value_len(it),
                             bc_item_flags(it), ttl, it->cas, item_meta_to_frame(it->iflags));
}

bc_status_t
bc_item_frame_put(bc_frame_buf_t *b, const bc_item_t *it, uint32_t ttl)
{
    return bc_frame_put_item_meta(b, bc_item_key(it), bc_item_nkey(it), bc_item_value_const(it),
                                  bc_item_value_len(it), bc_item_flags(it), ttl, it->cas,
                                  item_meta_to_frame(it->iflags));
}

bool
bc_item_frame_batch_add(const bc_item_t *it, void *arg)
{
    bc_item_frame_batch_t *x = arg;
    uint32_t ttl;
    if (!bc_item_frame_ttl(bc_item_exptime(it), x->now, &ttl)) return true;   /* expires this second */
    x->st = bc_item_frame_put(x->buf, it, ttl);
    if (x->st != BC_OK) return false;
    x->items++;
    x->bytes += bc_item_nkey(it) + bc_item_value_len(it);
    return true;
}

/* The item of an ITEM's or a HEAD's fields, value length nvalue, its CRLF
 * written. */
static bc_item_t *
item_frame_alloc(bc_cache_t *cache, const bc_frame_t *f, uint64_t nvalue, uint32_t hash,
                 bc_status_t *st)
{
    if (nvalue > UINT32_MAX - 2) {
        *st = BC_EINVAL;
        return NULL;
    }
    bc_item_t *it = bc_item_alloc(cache, f->key, f->nkey, hash, f->flags,
                                  bc_item_frame_exptime(bc_cache_now(cache), f->ttl),
                                  (uint32_t)nvalue + 2, st);
    if (it == NULL) return NULL;
    memcpy(bc_item_value(it) + nvalue, "\r\n", 2);
    bc_item_set_meta(it, frame_meta_to_item(f->meta));
    return it;
}

bc_item_t *
bc_item_frame_alloc(bc_cache_t *cache, const bc_frame_t *f, uint32_t hash, bc_status_t *st)
{
    bc_item_t *it = item_frame_alloc(cache, f, f->nvalue, hash, st);
    if (it != NULL && f->nvalue > 0) memcpy(bc_item_value(it), f->value, f->nvalue);
    return it;
}

bc_item_t *
bc_item_frame_alloc_head(bc_cache_t *cache, const bc_frame_t *f, uint32_t hash, bc_status_t *st)
{
    return item_frame_alloc(cache, f, f->size, hash, st);
}
