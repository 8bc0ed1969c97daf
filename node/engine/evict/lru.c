/*
 * lru.c -- "lru", the default policy: least-recently-used, approximated by
 * CLOCK (second chance).
 *
 * BACKGROUND
 *   Exact LRU moves an item to the head of a list on every hit: four
 *   pointer writes into the item's two neighbours, i.e. two extra cache
 *   lines dirtied on the hottest path of the server.  memcached avoids that
 *   by bumping an item at most once per 60 seconds.  We use CLOCK instead,
 *   which needs no timestamp: a hit only sets the item's reference bit
 *   (pbits), a store into a line the get already touched.
 *
 * BEHAVIOR
 *   Items sit in one circular list, newest at the head.  To pick a victim
 *   the hand looks at the tail: a referenced item gets its bit cleared and
 *   becomes the head (a pointer store: the list is circular, so moving the
 *   tail to the head is a rotation, not a relink); the first unreferenced
 *   tail is the victim.  Items hit since they last passed the hand survive,
 *   exactly like LRU keeps recently used items; among the rest the oldest
 *   goes first.  Each bit cleared was paid for by one hit, so a pick is
 *   amortised O(1); one pick still stops after LRU_MAX_SWEEP second chances
 *   and takes the tail, bounding the worst-case latency of a single insert.
 *
 *   pbits: 1 = referenced since the hand last passed.  pfreq: unused.
 */
#include <stdlib.h>

#include "engine/evict/evict.h"

#define LRU_MAX_SWEEP 4096

typedef struct lru {
    const bc_evict_env_t *env;
    bc_item_t *head;
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

static void
lru_on_insert(void *policy, bc_item_t *it, uint32_t now)
{
    lru_t *lru = policy;
    (void)now;
    it->pbits = 0;
    it->pfreq = 0;
    bc__evict_list_push_head(&lru->head, it);
}

static void
lru_on_replace(void *policy, bc_item_t *old_it, bc_item_t *new_it, uint32_t now)
{
    lru_t *lru = policy;
    (void)now;
    /* A write is a use: keep the old item's place and mark it referenced,
     * which under CLOCK is equivalent to moving it to the head. */
    bc__evict_list_swap_in(&lru->head, old_it, new_it);
    new_it->pbits = 1;
    new_it->pfreq = 0;
}

static void
lru_on_access(void *policy, bc_item_t *it, uint32_t now)
{
    (void)policy;
    (void)now;
    if (it->pbits == 0) it->pbits = 1;   /* avoid dirtying the line twice */
}

static void
lru_on_remove(void *policy, bc_item_t *it, bc_evict_reason_t reason)
{
    lru_t *lru = policy;
    (void)reason;
    bc__evict_list_remove(&lru->head, it);
}

static bc_item_t *
lru_pick_victim(void *policy, uint32_t now)
{
    lru_t *lru = policy;
    (void)now;
    if (lru->head == NULL) return NULL;
    for (int sweep = 0; sweep < LRU_MAX_SWEEP; sweep++) {
        bc_item_t *tail = lru->head->prev;
        if (tail->pbits == 0) return tail;
        tail->pbits = 0;
        lru->head = tail;            /* second chance: the tail becomes the head */
    }
    return lru->head->prev;
}

static void
lru_requeue(void *policy, bc_item_t *it, uint32_t now)
{
    lru_t *lru = policy;
    (void)now;
    bc__evict_list_move_to_head(&lru->head, it);
}

const bc_evict_ops_t bc_evict_lru = {
    .name = "lru",
    .create = lru_create,
    .destroy = lru_destroy,
    .on_insert = lru_on_insert,
    .on_replace = lru_on_replace,
    .on_access = lru_on_access,
    .on_remove = lru_on_remove,
    .pick_victim = lru_pick_victim,
    .requeue = lru_requeue,
};
