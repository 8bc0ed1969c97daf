/*
 * evict.c -- the eviction-policy registry and the accounted allocator the
 * policies share.
 *
 * The registry is a static table: adding a policy means adding its file
 * under node/engine/evict/ and one line here.  Policies allocate through
 * bc__evict_calloc/bc__evict_free so that their memory is charged to the
 * cache's global byte counter (see evict.h, MEMORY).
 */
#include <stdlib.h>
#include <string.h>

#include "engine/evict/evict.h"

static const bc_evict_ops_t *const evict_policies[] = {
    &bc_evict_s3fifo,
    &bc_evict_lru,
    &bc_evict_lfu,
    &bc_evict_fifo,
};

#define EVICT_NPOLICIES (sizeof(evict_policies) / sizeof(evict_policies[0]))

const bc_evict_ops_t *
bc_evict_find(const char *name)
{
    if (name == NULL || name[0] == '\0') name = BC_EVICT_DEFAULT;
    for (size_t i = 0; i < EVICT_NPOLICIES; i++) {
        if (strcmp(evict_policies[i]->name, name) == 0) return evict_policies[i];
    }
    return NULL;
}

const char *
bc_evict_names(void)
{
    return "s3fifo lru lfu fifo";
}

void *
bc__evict_calloc(const bc_evict_env_t *env, size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p != NULL) {
        atomic_fetch_add_explicit(env->mem_used, bc__evict_mem_charge(p), memory_order_relaxed);
    }
    return p;
}

void
bc__evict_free(const bc_evict_env_t *env, void *p)
{
    if (p == NULL) return;
    atomic_fetch_sub_explicit(env->mem_used, bc__evict_mem_charge(p), memory_order_relaxed);
    free(p);
}
