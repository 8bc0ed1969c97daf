/*
 * lfu.c -- "lfu": least-frequently-used with aging, on the log of
 * segments.
 *
 * BACKGROUND
 *   A frequency count per item needs bits we do not have (the item carries
 *   one policy byte) and pure LFU never forgets: a key that was hot
 *   yesterday would stay forever.  We follow Redis's LFU counter:
 *
 *   - pfreq is a logarithmic counter 0..255.  New items start at
 *     LFU_INIT_COUNT; a hit increments it with probability
 *     1 / ((counter - LFU_INIT_COUNT) * LFU_LOG_FACTOR + 1), so 255 takes
 *     about a million hits.
 *   - The counter loses one point per LFU_DECAY_MINUTES of idleness (the
 *     item's atime says since when), applied when the item is next hit.
 *
 * BEHAVIOR
 *   One queue of segments.  When the tail segment is evicted, an item whose
 *   decayed counter is above LFU_INIT_COUNT -- hit since it was stored or
 *   last kept, and not idle since long enough to lose it -- is copied to
 *   the head with its counter lowered by one; the others are dropped.  A
 *   frequently hit item therefore survives as many passes of the tail as
 *   its counter is above the initial count, an item hit once survives one,
 *   and one never hit survives none: the least frequently used go first,
 *   and counters age both with idle time and with every pass.
 */
#include <stdlib.h>

#include "engine/evict/evict.h"

#define LFU_INIT_COUNT     5
#define LFU_LOG_FACTOR     10
#define LFU_DECAY_MINUTES  1

typedef struct lfu {
    const bc_evict_env_t *env;
} lfu_t;

/* xorshift64 per thread: on_access runs on many threads at once. */
static _Thread_local uint64_t lfu_rng = 0x9e3779b97f4a7c15ull;

static inline uint64_t
lfu_random(void)
{
    uint64_t x = lfu_rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    lfu_rng = x;
    return x;
}

/* The item's counter after idle decay. */
static uint8_t
lfu_decayed(const bc_item_t *it, uint32_t now)
{
    uint32_t periods = bc__evict_idle(it, now) / (60u * LFU_DECAY_MINUTES);
    return periods >= it->pfreq ? 0 : (uint8_t)(it->pfreq - periods);
}

static uint8_t
lfu_log_incr(uint8_t counter)
{
    if (counter == 255) return counter;
    unsigned base = counter > LFU_INIT_COUNT ? counter - LFU_INIT_COUNT : 0;
    if (base == 0 || lfu_random() % (base * LFU_LOG_FACTOR + 1) == 0) counter++;
    return counter;
}

static void *
lfu_create(const bc_evict_env_t *env)
{
    lfu_t *lfu = bc__evict_calloc(env, 1, sizeof(*lfu));
    if (lfu != NULL) lfu->env = env;
    return lfu;
}

static void
lfu_destroy(void *policy)
{
    lfu_t *lfu = policy;
    if (lfu != NULL) bc__evict_free(lfu->env, lfu);
}

static unsigned
lfu_admit(void *policy, uint32_t hash)
{
    (void)policy;
    (void)hash;
    return 0;
}

static void
lfu_on_link(bc_item_t *it, uint32_t now)
{
    (void)now;
    it->pfreq = LFU_INIT_COUNT;
}

static void
lfu_on_replace(const bc_item_t *old_it, bc_item_t *new_it, uint32_t now)
{
    /* The key keeps its history; the write counts as one access. */
    new_it->pfreq = lfu_log_incr(lfu_decayed(old_it, now));
}

static void
lfu_on_access(bc_item_t *it, uint32_t now)
{
    it->pfreq = lfu_log_incr(lfu_decayed(it, now));
}

static unsigned
lfu_pick_queue(void *policy, const bc_evict_queues_t *q)
{
    (void)policy;
    (void)q;
    return 0;
}

static int
lfu_on_evict(void *policy, bc_item_t *it, unsigned queue, uint32_t hash, uint32_t now,
             bool force)
{
    (void)policy;
    (void)queue;
    (void)hash;
    uint8_t counter = lfu_decayed(it, now);
    if (counter <= LFU_INIT_COUNT || force) return BC_EVICT_DROP;
    it->pfreq = (uint8_t)(counter - 1);
    return 0;
}

const bc_evict_ops_t bc_evict_lfu = {
    .name = "lfu",
    .nqueues = 1,
    .create = lfu_create,
    .destroy = lfu_destroy,
    .admit = lfu_admit,
    .on_link = lfu_on_link,
    .on_replace = lfu_on_replace,
    .on_access = lfu_on_access,
    .pick_queue = lfu_pick_queue,
    .on_evict = lfu_on_evict,
};
