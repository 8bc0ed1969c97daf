/*
 * fifo.c -- "fifo": evicts in insertion order; hits change nothing.
 *
 * BEHAVIOR
 *   One queue of segments.  Every item of the tail segment is dropped, hit
 *   or not; a store that replaces a live key writes the new value at the
 *   head like any new item.  Gets write nothing at all -- the cheapest
 *   policy, and the baseline the others are measured against.
 *
 *   pfreq: unused.
 */
#include <stdlib.h>

#include "engine/evict/evict.h"

typedef struct fifo {
    const bc_evict_env_t *env;
} fifo_t;

static void *
fifo_create(const bc_evict_env_t *env)
{
    fifo_t *fifo = bc__evict_calloc(env, 1, sizeof(*fifo));
    if (fifo != NULL) fifo->env = env;
    return fifo;
}

static void
fifo_destroy(void *policy)
{
    fifo_t *fifo = policy;
    if (fifo != NULL) bc__evict_free(fifo->env, fifo);
}

static unsigned
fifo_admit(void *policy, uint32_t hash)
{
    (void)policy;
    (void)hash;
    return 0;
}

static void
fifo_on_link(bc_item_t *it, uint32_t now)
{
    (void)now;
    it->pfreq = 0;
}

static void
fifo_on_replace(const bc_item_t *old_it, bc_item_t *new_it, uint32_t now)
{
    (void)old_it;
    fifo_on_link(new_it, now);
}

static void
fifo_on_access(bc_item_t *it, uint32_t now)
{
    (void)it;
    (void)now;
}

static unsigned
fifo_pick_queue(void *policy, const bc_evict_queues_t *q)
{
    (void)policy;
    (void)q;
    return 0;
}

static int
fifo_on_evict(void *policy, bc_item_t *it, unsigned queue, uint32_t hash, uint32_t now,
              bool force)
{
    (void)policy;
    (void)it;
    (void)queue;
    (void)hash;
    (void)now;
    (void)force;
    return BC_EVICT_DROP;
}

const bc_evict_ops_t bc_evict_fifo = {
    .name = "fifo",
    .nqueues = 1,
    .create = fifo_create,
    .destroy = fifo_destroy,
    .admit = fifo_admit,
    .on_link = fifo_on_link,
    .on_replace = fifo_on_replace,
    .on_access = fifo_on_access,
    .pick_queue = fifo_pick_queue,
    .on_evict = fifo_on_evict,
};
