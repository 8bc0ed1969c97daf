/*
 * near.c -- see near.h: the hot-key near cache around a client's reads.
 */
#include "near.h"

#include "bc_time.h"
#include "lru.h"
#include "pool.h"

bool
bc__near_lookup(bc_client_t *c, uint32_t hash, const void *key, size_t klen, void **value,
                size_t *vlen, uint32_t *flags)
{
    if (c->near == NULL) return false;
    if (bc__lru_get(c->near, hash, key, klen, bc_time_mono_ns(), value, vlen, flags) != BC_OK) {
        return false;
    }
    BC__COUNT(c, near_hits, 1);
    return true;
}

void
bc__near_offer(bc_client_t *c, uint32_t hash, const void *key, size_t klen, const void *value,
               size_t vlen, uint32_t flags)
{
    if (c->near == NULL) return;
    unsigned seen = bc__lru_sketch_add(&c->sketch, hash);
    if (seen < (unsigned)c->opts.near_cache_min_hits) return;
    bc__lru_put(c->near, hash, key, klen, value, vlen, flags, bc_time_mono_ns() + c->near_ttl_ns);
}

void
bc__near_forget(bc_client_t *c, uint32_t hash, const void *key, size_t klen)
{
    if (c->near != NULL) bc__lru_del(c->near, hash, key, klen);
}
