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

bc_status_t
bc_item_frame_put(bc_frame_buf_t *b, const bc_item_t *it, uint32_t ttl)
{
    return bc_frame_put_item(b, bc_item_key(it), bc_item_nkey(it), bc_item_value_const(it),
                             bc_item_value_len(it), bc_item_flags(it), ttl, it->cas);
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

bc_item_t *
bc_item_frame_alloc(bc_cache_t *cache, const bc_frame_t *f, uint32_t hash, bc_status_t *st)
{
    if (f->nvalue > UINT32_MAX - 2) {
        *st = BC_EINVAL;
        return NULL;
    }
    bc_item_t *it = bc_item_alloc(cache, f->key, f->nkey, hash, f->flags,
                                  bc_item_frame_exptime(bc_cache_now(cache), f->ttl),
                                  (uint32_t)f->nvalue + 2, st);
    if (it == NULL) return NULL;
    if (f->nvalue > 0) memcpy(bc_item_value(it), f->value, f->nvalue);
    memcpy(bc_item_value(it) + f->nvalue, "\r\n", 2);
    return it;
}
