/*
 * lru.c -- "lru": least-recently-used, approximated by CLOCK (second
 * chance) on the log of segments.
 *
 * BACKGROUND
 *   Exact LRU moves an item to the head of a list on every hit: pointer
 *   writes into two neighbours, two more cache lines dirtied on the
 *   hottest path of the server, and 16 bytes of links per item.  CLOCK
 *   needs one bit: a hit sets it, a write into a line the get has already
 *   loaded.  memcached bumps an item at most once a minute for the same
 *   reason.
 *
 * BEHAVIOR
 *   One queue of segments.  When the tail segment is evicted, an item
 *   referenced since it last passed the tail has its bit cleared and is
 *   copied to the head (its second chance); an unreferenced one is
 *   dropped.  Items hit since they last passed the tail survive, exactly
 *   like LRU keeps recently used items; among the rest the oldest go
 *   first.  Each copy was paid for by a hit.  A store that replaces a live
 *   key counts as a use.
 *
 *   pfreq: 1 = referenced since the item last passed the tail.
 */
#include <stdlib.h>

#include "engine/evict/evict.h"

typedef struct lru {
    const bc_evict_env_t *env;
} lru_t;

static void *
lru_create(const bc_evict_env_t *env)
{
    lru_t *lru = bc__evict_calloc(env, 1, sizeof(*lru));
    if (lru != NULL) lru->env = env;
    return lru;
}

static void
lru_destroy(void *policy)
{
    lru_t *lru = policy;
    if (lru != NULL) bc__evict_free(lru->env, lru);
}

static unsigned
lru_admit(void *policy, uint32_t hash)
{
    (void)policy;
    (void)hash;
    return 0;
}

static void
lru_on_link(bc_item_t *it, uint32_t now)
{
    (void)now;
    it->pfreq = 0;
}

static void
lru_on_replace(const bc_item_t *old_it, bc_item_t *new_it, uint32_t now)
{
    (void)old_it;
    (void)now;
    new_it->pfreq = 1;   /* a write is a use */
}

static void
lru_on_access(bc_item_t *it, uint32_t now)
{
    (void)now;
    if (it->pfreq == 0) it->pfreq = 1;   /* avoid dirtying the line twice */
}

static unsigned
lru_pick_queue(void *policy, const bc_evict_queues_t *q)
{
    (void)policy;
    (void)q;
    return 0;
}

static int
lru_on_evict(void *policy, bc_item_t *it, unsigned queue, uint32_t hash, uint32_t now,
             bool force)
{
    (void)policy;
    (void)queue;
    (void)hash;
    (void)now;
    if (it->pfreq == 0 || force) return BC_EVICT_DROP;
    it->pfreq = 0;
    return 0;
}

const bc_evict_ops_t bc_evict_lru = {
    .name = "lru",
    .nqueues = 1,
    .create = lru_create,
    .destroy = lru_destroy,
    .admit = lru_admit,
    .on_link = lru_on_link,
    .on_replace = lru_on_replace,
    .on_access = lru_on_access,
    .pick_queue = lru_pick_queue,
    .on_evict = lru_on_evict,
};
