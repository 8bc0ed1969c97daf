/*
 * fifo.c -- "fifo": evicts in insertion order; hits change nothing.
 *
 * BEHAVIOR
 *   One circular list, newest at the head, victim at the tail.  A store
 *   that replaces a live key counts as a new insertion (the new item goes
 *   to the head).  Gets never touch the list, so a hit costs no writes at
 *   all -- the cheapest policy, and the baseline the others are measured
 *   against.  A victim that a reader still holds is requeued at the head,
 *   i.e. treated as reinserted (the only way FIFO order is ever changed).
 *
 *   pbits, pfreq: unused.
 */
#include <stdlib.h>

#include "engine/evict/evict.h"

typedef struct fifo {
    const bc_evict_env_t *env;
    bc_item_t *head;
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

static void
fifo_on_insert(void *policy, bc_item_t *it, uint32_t now)
{
    fifo_t *fifo = policy;
    (void)now;
    it->pbits = 0;
    it->pfreq = 0;
    bc__evict_list_push_head(&fifo->head, it);
}

static void
fifo_on_replace(void *policy, bc_item_t *old_it, bc_item_t *new_it, uint32_t now)
{
    fifo_t *fifo = policy;
    bc__evict_list_remove(&fifo->head, old_it);
    fifo_on_insert(fifo, new_it, now);
}

static void
fifo_on_access(void *policy, bc_item_t *it, uint32_t now)
{
    (void)policy;
    (void)it;
    (void)now;
}

static void
fifo_on_remove(void *policy, bc_item_t *it, bc_evict_reason_t reason)
{
    fifo_t *fifo = policy;
    (void)reason;
    bc__evict_list_remove(&fifo->head, it);
}

static bc_item_t *
fifo_pick_victim(void *policy, uint32_t now)
{
    fifo_t *fifo = policy;
    (void)now;
    return bc__evict_list_tail(fifo->head);
}

static void
fifo_requeue(void *policy, bc_item_t *it, uint32_t now)
{
    fifo_t *fifo = policy;
    (void)now;
    bc__evict_list_move_to_head(&fifo->head, it);
}

const bc_evict_ops_t bc_evict_fifo = {
    .name = "fifo",
    .create = fifo_create,
    .destroy = fifo_destroy,
    .on_insert = fifo_on_insert,
    .on_replace = fifo_on_replace,
    .on_access = fifo_on_access,
    .on_remove = fifo_on_remove,
    .pick_victim = fifo_pick_victim,
    .requeue = fifo_requeue,
};
