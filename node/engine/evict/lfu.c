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
 *   decayed counter reaches the bar is copied to the head, counter and
 *   all; the others are dropped.  The bar follows what the tail holds: it
 *   is raised by one while more than LFU_KEEP_HIGH% of the items the tail
 *   showed (over the last LFU_BAR_WINDOW) were kept -- eviction would free
 *   too little -- and lowered below LFU_KEEP_LOW%, never under one hit.  So
 *   the items dropped are those of the tail least frequently used, measured
 *   against the whole cache's recent tails, and a counter ages only with
 *   idle time, as Redis's does.  Like the per-item LFU it replaces (which
 *   always evicted the lowest counter first), it holds on to every key
 *   with more hits than the newcomers: on hitratio.sh's Zipf stream it
 *   beats LRU by about 1.5 points, at the price of copying more than the
 *   other policies (half to four fifths of each tail segment).
 */
#include <stdlib.h>

#include "engine/evict/evict.h"

#define LFU_INIT_COUNT     5
#define LFU_LOG_FACTOR     10
#define LFU_DECAY_MINUTES  1
#define LFU_KEEP_HIGH      80
#define LFU_KEEP_LOW       50
#define LFU_BAR_WINDOW     256

typedef struct lfu {
    const bc_evict_env_t *env;
    unsigned bar;                  /* counters at or above it are kept */
    unsigned seen, kept;           /* verdicts since the bar last moved */
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
    if (lfu == NULL) return NULL;
    lfu->env = env;
    lfu->bar = LFU_INIT_COUNT + 1;
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
    lfu_t *lfu = policy;
    (void)queue;
    (void)hash;
    bool keep = !force && lfu_decayed(it, now) >= lfu->bar;
    lfu->seen++;
    lfu->kept += keep;
    if (lfu->seen >= LFU_BAR_WINDOW) {
        if (lfu->kept * 100 > lfu->seen * LFU_KEEP_HIGH && lfu->bar < 255) {
            lfu->bar++;
        } else if (lfu->kept * 100 < lfu->seen * LFU_KEEP_LOW && lfu->bar > LFU_INIT_COUNT + 1) {
            lfu->bar--;
        }
        lfu->seen = lfu->kept = 0;
    }
    return keep ? 0 : BC_EVICT_DROP;
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
