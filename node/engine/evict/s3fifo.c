/*
 * s3fifo.c -- "s3fifo": S3-FIFO (Yang et al., "FIFO queues are all you need
 * for cache eviction", SOSP 2023).
 *
 * BACKGROUND
 *   Most keys of a skewed (Zipf) workload are requested once and never
 *   again.  LRU lets each of them walk the whole queue, pushing out keys
 *   that would have been hit.  S3-FIFO filters them out early with a small
 *   probationary queue, and needs no list movement on a hit at all (a hit
 *   bumps a 2-bit counter), so it is both more accurate and cheaper than
 *   LRU.
 *
 * HOW
 *
 *      insert --(hash in ghost?)--yes-------------------.
 *         | no                                          v
 *         v                                      +-------------+
 *   +-----------+  tail: freq >= 1 -> promote -->|  main (M)   |--.
 *   | small (S) |                                +-------------+  | tail: freq > 0
 *   | ~10% bytes|  tail: freq == 0 -> evict          ^     |      | -> freq--, reinsert
 *   +-----------+          |                          '-----'------'
 *                          v                               | tail: freq == 0
 *                   ghost (G): hashes only                 v
 *                                                        evict
 *
 *   - S holds about S3_SMALL_PERCENT of the shard's bytes.  When S is at or
 *     above that share (or M is empty) the victim comes from S, else from M.
 *   - An S tail that was hit while in S moves to M (keeping its count); an
 *     unhit one is evicted and its hash remembered in G.
 *   - An M tail with freq > 0 is reinserted at M's head with freq - 1
 *     (CLOCK-like); with freq 0 it is evicted (not remembered).
 *   - A miss whose hash is in G goes straight to M: it was evicted from S
 *     too early.
 *
 *   pbits = the queue (S3_SMALL / S3_MAIN), pfreq = hit count 0..3.
 *
 * THE GHOST
 *   The paper sizes G to hold as many entries as M holds items.  We keep a
 *   small open-addressed table of 32-bit entries (16-bit fingerprint of the
 *   key hash + 16-bit insertion epoch), whose slot count follows M's item
 *   count (1x to 2x, rounded to a power of two; it is rebuilt empty when it has to grow or
 *   shrink, a cost paid a logarithmic number of times while a shard fills).
 *   A lookup or insert probes S3_GHOST_PROBES neighbouring slots.  Epochs
 *   advance every nslots/S3_GHOST_EPOCHS insertions and an entry counts only
 *   while younger than S3_GHOST_EPOCHS epochs, so G forgets in FIFO order
 *   after about nslots insertions without any queue of its own.  A
 *   fingerprint collision only means one key is admitted to M early.  Four
 *   to eight bytes per M item, charged to the cache's memory counter.
 *
 *   Work per pick_victim is amortised O(1) (each reinsertion consumed one
 *   hit); one call still stops after S3_MAX_STEPS moves and takes the
 *   current tail, bounding the latency of a single insert.
 */
#include <stdlib.h>

#include "engine/evict/evict.h"

#define S3_SMALL            0
#define S3_MAIN             1
#define S3_SMALL_PERCENT    10
#define S3_MAX_FREQ         3
#define S3_PROMOTE_FREQ     1
#define S3_MAX_STEPS        4096
#define S3_GHOST_MIN_SLOTS  64u
#define S3_GHOST_PROBES     4u
#define S3_GHOST_EPOCHS     4u

typedef struct s3fifo {
    const bc_evict_env_t *env;
    bc_item_t *small;               /* head of S (newest) */
    bc_item_t *main;                /* head of M (newest) */
    uint64_t small_bytes;
    uint64_t main_bytes;
    uint32_t small_count;
    uint32_t main_count;
    /* ghost */
    uint32_t *ghost;                /* NULL until first needed */
    uint32_t ghost_mask;            /* nslots - 1 */
    uint32_t ghost_epoch;           /* low 16 bits stored in entries */
    uint32_t ghost_epoch_left;      /* insertions until the next epoch */
} s3fifo_t;

/* ---- ghost ---- */

static inline uint32_t
s3_mix(uint32_t h)
{
    /* murmur3's finaliser: the key hash's low bits are shared by every key
     * of a shard (they pick the bucket), so spread all bits first. */
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

static inline uint32_t
s3_fingerprint(uint32_t hash)
{
    uint32_t fp = hash >> 16;
    return fp != 0 ? fp : 1;        /* entry 0 means "empty" */
}

static inline bool
s3_ghost_fresh(const s3fifo_t *s3, uint32_t entry)
{
    return entry != 0 &&
           ((s3->ghost_epoch - entry) & 0xffffu) < S3_GHOST_EPOCHS;
}

static void
s3_ghost_resize(s3fifo_t *s3, uint32_t nslots)
{
    uint32_t *table = bc__evict_calloc(s3->env, nslots, sizeof(*table));
    if (table == NULL) return;     /* keep the old table; G just stays smaller */
    bc__evict_free(s3->env, s3->ghost);
    s3->ghost = table;
    s3->ghost_mask = nslots - 1;
    s3->ghost_epoch_left = nslots / S3_GHOST_EPOCHS;
}

/* Keeps the ghost's slot count between M's item count and twice that
 * (hysteresis: halved only when M falls below a quarter of it). */
static void
s3_ghost_fit(s3fifo_t *s3)
{
    uint32_t nslots = s3->ghost ? s3->ghost_mask + 1 : 0;
    if (s3->main_count >= nslots && nslots < (1u << 30)) {
        uint32_t want = nslots ? nslots : S3_GHOST_MIN_SLOTS;
        while (want <= s3->main_count && want < (1u << 30)) want *= 2;
        if (want != nslots) s3_ghost_resize(s3, want);
    } else if (nslots > S3_GHOST_MIN_SLOTS && s3->main_count < nslots / 4) {
        s3_ghost_resize(s3, nslots / 2);
    }
}

static void
s3_ghost_insert(s3fifo_t *s3, uint32_t hash)
{
    if (s3->ghost == NULL) s3_ghost_fit(s3);
    if (s3->ghost == NULL) return;
    uint32_t fp = s3_fingerprint(hash), idx = s3_mix(hash), victim = idx & s3->ghost_mask;
    uint32_t oldest_age = 0;
    for (uint32_t i = 0; i < S3_GHOST_PROBES; i++) {
        uint32_t slot = (idx + i) & s3->ghost_mask, e = s3->ghost[slot];
        if (!s3_ghost_fresh(s3, e) || (e >> 16) == fp) {
            victim = slot;
            break;
        }
        uint32_t age = (s3->ghost_epoch - e) & 0xffffu;
        if (age >= oldest_age) {
            oldest_age = age;
            victim = slot;
        }
    }
    s3->ghost[victim] = (fp << 16) | (s3->ghost_epoch & 0xffffu);
    if (--s3->ghost_epoch_left == 0) {
        s3->ghost_epoch++;
        s3->ghost_epoch_left = (s3->ghost_mask + 1) / S3_GHOST_EPOCHS;
    }
}

/* True (and forgets the entry) when the hash was evicted from S recently. */
static bool
s3_ghost_take(s3fifo_t *s3, uint32_t hash)
{
    if (s3->ghost == NULL) return false;
    uint32_t fp = s3_fingerprint(hash), idx = s3_mix(hash);
    for (uint32_t i = 0; i < S3_GHOST_PROBES; i++) {
        uint32_t slot = (idx + i) & s3->ghost_mask, e = s3->ghost[slot];
        if ((e >> 16) == fp && s3_ghost_fresh(s3, e)) {
            s3->ghost[slot] = 0;
            return true;
        }
    }
    return false;
}

/* ---- queues ---- */

static void
s3_push(s3fifo_t *s3, bc_item_t *it, unsigned queue)
{
    uint64_t w = bc__evict_item_weight(it);
    it->pbits = (uint8_t)queue;
    if (queue == S3_SMALL) {
        bc__evict_list_push_head(&s3->small, it);
        s3->small_bytes += w;
        s3->small_count++;
    } else {
        bc__evict_list_push_head(&s3->main, it);
        s3->main_bytes += w;
        s3->main_count++;
    }
}

static void
s3_unqueue(s3fifo_t *s3, bc_item_t *it)
{
    uint64_t w = bc__evict_item_weight(it);
    if (it->pbits == S3_SMALL) {
        bc__evict_list_remove(&s3->small, it);
        s3->small_bytes -= w;
        s3->small_count--;
    } else {
        bc__evict_list_remove(&s3->main, it);
        s3->main_bytes -= w;
        s3->main_count--;
    }
}

static void
s3_promote(s3fifo_t *s3, bc_item_t *it)
{
    s3_unqueue(s3, it);
    s3_push(s3, it, S3_MAIN);
    s3_ghost_fit(s3);
}

static void *
s3_create(const bc_evict_env_t *env)
{
    s3fifo_t *s3 = bc__evict_calloc(env, 1, sizeof(*s3));
    if (s3 != NULL) s3->env = env;
    return s3;
}

static void
s3_destroy(void *policy)
{
    s3fifo_t *s3 = policy;
    if (s3 == NULL) return;
    bc__evict_free(s3->env, s3->ghost);
    bc__evict_free(s3->env, s3);
}

static void
s3_on_insert(void *policy, bc_item_t *it, uint32_t now)
{
    s3fifo_t *s3 = policy;
    (void)now;
    it->pfreq = 0;
    if (s3_ghost_take(s3, it->hash)) {
        s3_push(s3, it, S3_MAIN);
        s3_ghost_fit(s3);
    } else {
        s3_push(s3, it, S3_SMALL);
    }
}

static void
s3_on_replace(void *policy, bc_item_t *old_it, bc_item_t *new_it, uint32_t now)
{
    s3fifo_t *s3 = policy;
    (void)now;
    /* Same queue, same place, one more hit; only the byte weight changes. */
    uint64_t old_w = bc__evict_item_weight(old_it), new_w = bc__evict_item_weight(new_it);
    new_it->pbits = old_it->pbits;
    new_it->pfreq = old_it->pfreq < S3_MAX_FREQ ? old_it->pfreq + 1 : S3_MAX_FREQ;
    if (old_it->pbits == S3_SMALL) {
        bc__evict_list_swap_in(&s3->small, old_it, new_it);
        s3->small_bytes = s3->small_bytes - old_w + new_w;
    } else {
        bc__evict_list_swap_in(&s3->main, old_it, new_it);
        s3->main_bytes = s3->main_bytes - old_w + new_w;
    }
}

static void
s3_on_access(void *policy, bc_item_t *it, uint32_t now)
{
    (void)policy;
    (void)now;
    if (it->pfreq < S3_MAX_FREQ) it->pfreq++;
}

static void
s3_on_remove(void *policy, bc_item_t *it, bc_evict_reason_t reason)
{
    s3fifo_t *s3 = policy;
    bool from_small = it->pbits == S3_SMALL;
    s3_unqueue(s3, it);
    if (reason == BC_EVICT_EVICTED && from_small) s3_ghost_insert(s3, it->hash);
    if (!from_small) s3_ghost_fit(s3);
}

static bc_item_t *
s3_pick_victim(void *policy, uint32_t now)
{
    s3fifo_t *s3 = policy;
    (void)now;
    for (int steps = 0;; steps++) {
        bool last = steps >= S3_MAX_STEPS;
        bool use_small = s3->small != NULL &&
                         (s3->main == NULL ||
                          s3->small_bytes * 100 >=
                              (s3->small_bytes + s3->main_bytes) * S3_SMALL_PERCENT);
        if (use_small) {
            bc_item_t *tail = s3->small->prev;
            if (tail->pfreq < S3_PROMOTE_FREQ || last) return tail;
            s3_promote(s3, tail);
        } else {
            if (s3->main == NULL) return NULL;
            bc_item_t *tail = s3->main->prev;
            if (tail->pfreq == 0 || last) return tail;
            tail->pfreq--;
            s3->main = tail;          /* reinsert at the head: a rotation */
        }
    }
}

static void
s3_requeue(void *policy, bc_item_t *it, uint32_t now)
{
    s3fifo_t *s3 = policy;
    (void)now;
    /* A reader holds it right now: it is obviously in use. */
    if (it->pbits == S3_SMALL) {
        s3_promote(s3, it);
    } else {
        bc__evict_list_move_to_head(&s3->main, it);
    }
}

const bc_evict_ops_t bc_evict_s3fifo = {
    .name = "s3fifo",
    .create = s3_create,
    .destroy = s3_destroy,
    .on_insert = s3_on_insert,
    .on_replace = s3_on_replace,
    .on_access = s3_on_access,
    .on_remove = s3_on_remove,
    .pick_victim = s3_pick_victim,
    .requeue = s3_requeue,
};
