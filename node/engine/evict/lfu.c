/*
 * lfu.c -- "lfu": least-frequently-used with aging, in O(1) per operation.
 *
 * BACKGROUND
 *   A frequency count per item needs bits we do not have (the item carries
 *   only pbits and pfreq, one byte each) and pure LFU never forgets: a key
 *   that was hot yesterday would stay forever.  We follow Redis's LFU:
 *
 *   - pfreq is a logarithmic counter 0..255.  New items start at
 *     LFU_INIT_COUNT (so a new key is not the very next victim); a hit
 *     increments it with probability 1 / ((counter - LFU_INIT_COUNT) *
 *     LFU_LOG_FACTOR + 1), so 255 takes about a million hits.
 *   - pbits is the minute (mod 256) the counter was last brought up to
 *     date.  The counter loses one point per LFU_DECAY_MINUTES of idleness,
 *     applied lazily when the item is next looked at.
 *
 *   Redis picks victims by sampling; here the policy is exact over the
 *   counters it has seen, with frequency lists:
 *
 *     heads[0]   heads[1] ... heads[5]         ...  heads[255]
 *       |                       |
 *      [x]<->[y]               [n1]<->[n2]<->[n3]      (circular lists,
 *                                                      newest at the head)
 *     nonempty bitmap: which classes have items (4 x 64 bits)
 *
 *   An item sits in the list of its counter value.  The victim is the tail
 *   (oldest arrival) of the lowest non-empty class, found with a bitmap
 *   scan (four words).  A hit that changes the counter moves the item to the
 *   head of its new class; one that does not (most hits, once a key is warm)
 *   writes nothing but the item's own bytes.
 *
 * AGING AT EVICTION TIME
 *   Lazy decay alone would let an idle item sit in a high class until it is
 *   touched again -- which never happens for an item that went cold.  So
 *   each pick_victim also ages LFU_AGING_PROBES items: the tails (longest
 *   untouched) of the non-empty classes above the minimum, visited
 *   round-robin.  A probed item whose decayed counter is lower moves to the
 *   tail of its new class, so cold items sink towards eviction at a rate
 *   tied to eviction pressure, at constant cost per eviction.
 *
 *   Time is the cache clock passed in by the engine (unix seconds).  With
 *   one byte of minutes an item idle for a multiple of 256 minutes looks
 *   fresh again; by then any probe would long since have decayed it, so the
 *   approximation only affects items no eviction ever got near.
 */
#include <stdlib.h>

#include "engine/evict/evict.h"

#define LFU_CLASSES        256
#define LFU_INIT_COUNT     5
#define LFU_LOG_FACTOR     10
#define LFU_DECAY_MINUTES  1
#define LFU_AGING_PROBES   2

typedef struct lfu {
    const bc_evict_env_t *env;
    bc_item_t *heads[LFU_CLASSES];
    uint64_t nonempty[LFU_CLASSES / 64];
    uint64_t rng;                  /* xorshift64 state for the log counter */
    uint32_t aging_cursor;         /* next class whose tail gets aged */
} lfu_t;

static inline uint8_t
lfu_minutes(uint32_t now)
{
    return (uint8_t)(now / 60u);
}

static inline uint64_t
lfu_random(lfu_t *lfu)
{
    uint64_t x = lfu->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    lfu->rng = x;
    return x;
}

/* The first non-empty class >= from, or LFU_CLASSES. */
static unsigned
lfu_next_class(const lfu_t *lfu, unsigned from)
{
    while (from < LFU_CLASSES) {
        unsigned w = from / 64;
        uint64_t bits = lfu->nonempty[w] & (~(uint64_t)0 << (from % 64));
        if (bits != 0) return w * 64 + (unsigned)__builtin_ctzll(bits);
        from = (w + 1) * 64;
    }
    return LFU_CLASSES;
}

static void
lfu_class_push(lfu_t *lfu, bc_item_t *it, bool at_tail)
{
    unsigned c = it->pfreq;
    if (at_tail) {
        bc__evict_list_push_tail(&lfu->heads[c], it);
    } else {
        bc__evict_list_push_head(&lfu->heads[c], it);
    }
    lfu->nonempty[c / 64] |= (uint64_t)1 << (c % 64);
}

static void
lfu_class_remove(lfu_t *lfu, bc_item_t *it)
{
    unsigned c = it->pfreq;
    bc__evict_list_remove(&lfu->heads[c], it);
    if (lfu->heads[c] == NULL) lfu->nonempty[c / 64] &= ~((uint64_t)1 << (c % 64));
}

/* The item's counter after idle decay (does not move the item). */
static uint8_t
lfu_decayed(const bc_item_t *it, uint32_t now)
{
    uint8_t elapsed = (uint8_t)(lfu_minutes(now) - it->pbits);
    unsigned periods = elapsed / LFU_DECAY_MINUTES;
    return periods >= it->pfreq ? 0 : (uint8_t)(it->pfreq - periods);
}

static uint8_t
lfu_log_incr(lfu_t *lfu, uint8_t counter)
{
    if (counter == 255) return counter;
    unsigned base = counter > LFU_INIT_COUNT ? counter - LFU_INIT_COUNT : 0;
    if (base == 0 || lfu_random(lfu) % (base * LFU_LOG_FACTOR + 1) == 0) counter++;
    return counter;
}

/* Moves a linked item to the class `counter`. */
static void
lfu_move(lfu_t *lfu, bc_item_t *it, uint8_t counter, bool at_tail)
{
    lfu_class_remove(lfu, it);
    it->pfreq = counter;
    lfu_class_push(lfu, it, at_tail);
}

static void *
lfu_create(const bc_evict_env_t *env)
{
    lfu_t *lfu = bc__evict_calloc(env, 1, sizeof(*lfu));
    if (lfu == NULL) return NULL;
    lfu->env = env;
    lfu->rng = 0x9e3779b97f4a7c15ull;   /* fixed: runs are reproducible */
    return lfu;
}

static void
lfu_destroy(void *policy)
{
    lfu_t *lfu = policy;
    if (lfu != NULL) bc__evict_free(lfu->env, lfu);
}

static void
lfu_on_insert(void *policy, bc_item_t *it, uint32_t now)
{
    lfu_t *lfu = policy;
    it->pfreq = LFU_INIT_COUNT;
    it->pbits = lfu_minutes(now);
    lfu_class_push(lfu, it, false);
}

static void
lfu_on_access(void *policy, bc_item_t *it, uint32_t now)
{
    lfu_t *lfu = policy;
    uint8_t counter = lfu_log_incr(lfu, lfu_decayed(it, now));
    it->pbits = lfu_minutes(now);
    if (counter != it->pfreq) lfu_move(lfu, it, counter, false);
}

static void
lfu_on_replace(void *policy, bc_item_t *old_it, bc_item_t *new_it, uint32_t now)
{
    lfu_t *lfu = policy;
    /* The key keeps its history; the write counts as one access. */
    uint8_t counter = lfu_log_incr(lfu, lfu_decayed(old_it, now));
    lfu_class_remove(lfu, old_it);
    new_it->pfreq = counter;
    new_it->pbits = lfu_minutes(now);
    lfu_class_push(lfu, new_it, false);
}

static void
lfu_on_remove(void *policy, bc_item_t *it, bc_evict_reason_t reason)
{
    (void)reason;
    lfu_class_remove(policy, it);
}

/* Decays the longest-idle items of a few classes above the minimum. */
static void
lfu_age(lfu_t *lfu, unsigned min_class, uint32_t now)
{
    for (int probe = 0; probe < LFU_AGING_PROBES; probe++) {
        unsigned c = lfu_next_class(lfu, lfu->aging_cursor > min_class ? lfu->aging_cursor
                                                                        : min_class + 1);
        if (c >= LFU_CLASSES) {
            c = lfu_next_class(lfu, min_class + 1);   /* wrap around */
            if (c >= LFU_CLASSES) return;             /* only the min class is used */
        }
        lfu->aging_cursor = c + 1;
        bc_item_t *tail = bc__evict_list_tail(lfu->heads[c]);
        uint8_t counter = lfu_decayed(tail, now);
        if (counter != tail->pfreq) {
            tail->pbits = lfu_minutes(now);
            lfu_move(lfu, tail, counter, true);
        }
    }
}

static bc_item_t *
lfu_pick_victim(void *policy, uint32_t now)
{
    lfu_t *lfu = policy;
    unsigned min_class = lfu_next_class(lfu, 0);
    if (min_class >= LFU_CLASSES) return NULL;
    lfu_age(lfu, min_class, now);
    min_class = lfu_next_class(lfu, 0);   /* aging may have lowered it */
    return bc__evict_list_tail(lfu->heads[min_class]);
}

static void
lfu_requeue(void *policy, bc_item_t *it, uint32_t now)
{
    lfu_t *lfu = policy;
    (void)now;
    bc__evict_list_move_to_head(&lfu->heads[it->pfreq], it);
}

const bc_evict_ops_t bc_evict_lfu = {
    .name = "lfu",
    .create = lfu_create,
    .destroy = lfu_destroy,
    .on_insert = lfu_on_insert,
    .on_replace = lfu_on_replace,
    .on_access = lfu_on_access,
    .on_remove = lfu_on_remove,
    .pick_victim = lfu_pick_victim,
    .requeue = lfu_requeue,
};
