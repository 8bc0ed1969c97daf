/*
 * s3fifo.c -- "s3fifo", the default: S3-FIFO (Yang et al., "FIFO queues
 * are all you need for cache eviction", SOSP 2023) on the log of segments.
 *
 * BACKGROUND
 *   Most keys of a skewed (Zipf) workload are requested once and never
 *   again.  LRU lets each of them walk the whole queue, pushing out keys
 *   that would have been hit.  S3-FIFO filters them out early with a small
 *   probationary queue, and needs no list movement on a hit at all (a hit
 *   bumps a 2-bit counter), so it is both more accurate and cheaper than
 *   LRU.  Its queues are FIFOs, which is exactly what a log of segments
 *   is: the policy maps onto segments without approximation beyond their
 *   granularity.
 *
 * HOW
 *
 *      alloc --(hash in ghost?)--yes--------------------.
 *         | no                                          v
 *         v                                      +-------------+
 *   +-----------+  tail: freq >= 1 -> copy ----->|  main (M)   |--.
 *   | small (S) |                                +-------------+  | tail: freq > 0
 *   | ~10% bytes|  tail: freq == 0 -> drop          ^     |       | -> freq--, copy
 *   +-----------+          |                         '-----'-------'
 *                          v                               | tail: freq == 0
 *                   ghost (G): hashes only                 v
 *                                                         drop
 *
 *   - S holds about S3_SMALL_PERCENT of the queues' bytes.  When S is at
 *     or above that share (or M has nothing to evict) the victim segment
 *     comes from S, else from M.
 *   - An item of S's tail that was hit while in S is copied to M (keeping
 *     its count); an unhit one is dropped and its hash remembered in G.
 *   - An item of M's tail with freq > 0 is copied to M's head with freq -
 *     1 (CLOCK-like); with freq 0 it is dropped (not remembered).
 *   - A miss whose hash is in G is written to M directly: it was dropped
 *     from S too early.  "A miss" means a read that missed and then a
 *     write (a look-aside fill, mg's vivify), not a write alone: see THE
 *     MISS FILTER.
 *   - A new value for a live key is written to S like any new item and
 *     carries the key's count: the reads it had, not the write.
 *   - BEHAVIOR: only a read earns a place in M.  M is evicted only while S
 *     is under its share, so whatever enters M without a read stays there
 *     for as long as new keys keep S at its share.  A write-heavy start
 *     (a bulk load, or keys rewritten and never read, as memcslap's set
 *     test does) once filled M that way -- new items went to M until the
 *     cache was first full, and each rewrite counted as a hit -- and a
 *     working set written next and read back then lived only in S's 10%:
 *     memcslap's get test after its set test hit 13% of its keys (memcached
 *     98%).  Now it hits them all, at a cost of a tenth of a point on
 *     hitratio.sh's Zipf stream (docs/benchmarks.md).
 *
 *   pfreq = hit count 0..S3_MAX_FREQ.
 *
 * THE GHOST
 *   The paper sizes G to hold as many entries as M holds items when full.
 *   We keep a small open-addressed table of 32-bit entries (16-bit
 *   fingerprint of the key hash + 16-bit insertion epoch), whose slot
 *   count follows M's share of the cache's items (90% of them: 1x to 2x,
 *   rounded to a power of two; the table is rebuilt empty when it has to
 *   grow or shrink, a cost paid a logarithmic number of times while the
 *   cache fills).  A lookup or insert probes S3_GHOST_PROBES
 *   neighbouring slots.  Epochs advance every nslots/S3_GHOST_EPOCHS
 *   insertions and an entry counts only while younger than S3_GHOST_EPOCHS
 *   epochs, so G forgets in FIFO order after about nslots insertions
 *   without any queue of its own.  A fingerprint collision only means one
 *   key is admitted to M early.  Four to eight bytes per M item, charged
 *   to the cache's memory counter.
 *   BEHAVIOR: M's share, not the items M holds now.  Sized by M's current
 *   count, G was small exactly when it mattered: with one-hit wonders
 *   keeping S at its share, M held few items, G (as few slots as M had
 *   items, 64 at the least) forgot a dropped key after as many drops, and
 *   a key asked for again went back to S.  Sized by the share,
 *   hitratio.sh's scan-heavy mix gained 0.9 points on its Zipf core and
 *   the plain Zipf stream 0.2 (docs/benchmarks.md).
 *
 * THE MISS FILTER
 *   G admits a key to M only when a read missed it since it was last
 *   written.  The cache reports each read miss (on_miss) to a fixed
 *   bitmap of S3_MISSED_BITS bits, one bit per key hash, set with a
 *   relaxed atomic OR -- the read path takes no lock of the policy's.
 *   admit takes the key's bit (clears it) and sends the key to M only
 *   when the bit was set and the key is in G.  The bitmap forgets at the
 *   ghost's pace: each ghost insertion clears its share of the words,
 *   round robin, so the whole map is cleared once per as many insertions
 *   as G has slots.  A bit collision only sends one key to M early, as a
 *   fingerprint collision in G does.  32 KiB, charged to the cache.
 *   BEHAVIOR: without it, a key rewritten and never read came back from
 *   G to M on its next write once G was sized by M's share: memcslap's
 *   set test (12,000 keys rewritten by 4 threads) then filled M, and its
 *   get test, which writes 4,000 new keys and reads them back, found most
 *   of them evicted from S (1,215 hits of 8,000 in one run; memcached
 *   5,697).  A memcached client reading what it just wrote is the common
 *   case; a write-only key has earned nothing.
 */
#include <stdlib.h>

#include "engine/evict/evict.h"

#define S3_SMALL            0
#define S3_MAIN             1
#define S3_SMALL_PERCENT    10
#define S3_MAX_FREQ         3
#define S3_PROMOTE_FREQ     1
#define S3_GHOST_MIN_SLOTS  64u
#define S3_GHOST_PROBES     4u
#define S3_GHOST_EPOCHS     4u
#define S3_MISSED_LOG2      18u
#define S3_MISSED_BITS      (1u << S3_MISSED_LOG2)
#define S3_MISSED_WORDS     (S3_MISSED_BITS / 64u)

typedef struct s3fifo {
    const bc_evict_env_t *env;
    uint32_t *ghost;                /* NULL until first needed */
    uint32_t ghost_mask;            /* nslots - 1 */
    uint32_t ghost_epoch;           /* low 16 bits stored in entries */
    uint32_t ghost_epoch_left;      /* insertions until the next epoch */
    uint64_t main_items;            /* M's share of the items (THE GHOST), by pick_queue */
    _Atomic uint64_t *missed;       /* THE MISS FILTER: set lock-free, fixed size */
    uint32_t missed_next;           /* the next word a ghost insertion clears */
    uint32_t missed_credit;         /* words owed to clearing, times the ghost's slots */
} s3fifo_t;

/* ---- ghost ---- */

static inline uint32_t
s3_mix(uint32_t h)
{
    /* murmur3's finaliser: the key hash's low bits pick the bucket, so
     * spread all bits first. */
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
    return entry != 0 && ((s3->ghost_epoch - entry) & 0xffffu) < S3_GHOST_EPOCHS;
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

/* Keeps the ghost's slot count between main_items and twice that
 * (hysteresis: halved only when it falls below a quarter of it). */
static void
s3_ghost_fit(s3fifo_t *s3)
{
    uint32_t nslots = s3->ghost ? s3->ghost_mask + 1 : 0;
    if (s3->main_items >= nslots && nslots < (1u << 30)) {
        uint32_t want = nslots ? nslots : S3_GHOST_MIN_SLOTS;
        while (want <= s3->main_items && want < (1u << 30)) want *= 2;
        if (want != nslots) s3_ghost_resize(s3, want);
    } else if (nslots > S3_GHOST_MIN_SLOTS && s3->main_items < nslots / 4) {
        s3_ghost_resize(s3, nslots / 2);
    }
}

/* ---- the miss filter ---- */

static inline void
s3_missed_slot(uint32_t hash, uint32_t *word, uint64_t *bit)
{
    /* Fibonacci hashing of the key hash: independent of G's s3_mix slots */
    uint32_t i = (hash * 0x9e3779b1u) >> (32u - S3_MISSED_LOG2);
    *word = i / 64u;
    *bit = 1ull << (i % 64u);
}

/* One ghost insertion's share of clearing: S3_MISSED_WORDS words per
 * ghost-slots insertions, carried over between calls. */
static void
s3_missed_age(s3fifo_t *s3)
{
    uint32_t nslots = s3->ghost_mask + 1;
    s3->missed_credit += S3_MISSED_WORDS;
    while (s3->missed_credit >= nslots) {
        s3->missed_credit -= nslots;
        atomic_store_explicit(&s3->missed[s3->missed_next], 0, memory_order_relaxed);
        s3->missed_next = (s3->missed_next + 1) % S3_MISSED_WORDS;
    }
}

/* True when a read missed the key since its bit was last taken; clears it. */
static bool
s3_missed_take(s3fifo_t *s3, uint32_t hash)
{
    uint32_t word;
    uint64_t bit;
    s3_missed_slot(hash, &word, &bit);
    if (!(atomic_load_explicit(&s3->missed[word], memory_order_relaxed) & bit)) return false;
    return (atomic_fetch_and_explicit(&s3->missed[word], ~bit, memory_order_relaxed) & bit) != 0;
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
    s3_missed_age(s3);
    if (--s3->ghost_epoch_left == 0) {
        s3->ghost_epoch++;
        s3->ghost_epoch_left = (s3->ghost_mask + 1) / S3_GHOST_EPOCHS;
    }
}

/* True (and forgets the entry) when the hash was dropped from S recently. */
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

/* ---- the ops ---- */

static void *
s3_create(const bc_evict_env_t *env)
{
    s3fifo_t *s3 = bc__evict_calloc(env, 1, sizeof(*s3));
    if (s3 == NULL) return NULL;
    s3->env = env;
    s3->missed = bc__evict_calloc(env, S3_MISSED_WORDS, sizeof(*s3->missed));
    if (s3->missed == NULL) {
        bc__evict_free(env, s3);
        return NULL;
    }
    return s3;
}

static void
s3_destroy(void *policy)
{
    s3fifo_t *s3 = policy;
    if (s3 == NULL) return;
    bc__evict_free(s3->env, s3->ghost);
    bc__evict_free(s3->env, (void *)s3->missed);
    bc__evict_free(s3->env, s3);
}

static unsigned
s3_admit(void *policy, uint32_t hash)
{
    s3fifo_t *s3 = policy;
    /* the bit first: a write alone leaves the key's G entry for a later
     * read miss and write to find */
    return s3_missed_take(s3, hash) && s3_ghost_take(s3, hash) ? S3_MAIN : S3_SMALL;
}

static void
s3_on_miss(void *policy, uint32_t hash)
{
    s3fifo_t *s3 = policy;
    uint32_t word;
    uint64_t bit;
    s3_missed_slot(hash, &word, &bit);
    /* read before writing: repeated misses of one key leave its line shared */
    if (!(atomic_load_explicit(&s3->missed[word], memory_order_relaxed) & bit)) {
        atomic_fetch_or_explicit(&s3->missed[word], bit, memory_order_relaxed);
    }
}

static void
s3_on_link(bc_item_t *it, uint32_t now)
{
    (void)now;
    it->pfreq = 0;
}

static void
s3_on_replace(const bc_item_t *old_it, bc_item_t *new_it, uint32_t now)
{
    (void)now;
    new_it->pfreq = old_it->pfreq;
}

static void
s3_on_access(bc_item_t *it, uint32_t now)
{
    (void)now;
    if (it->pfreq < S3_MAX_FREQ) it->pfreq++;
}

static unsigned
s3_pick_queue(void *policy, const bc_evict_queues_t *q)
{
    s3fifo_t *s3 = policy;
    uint64_t total = q->bytes[S3_SMALL] + q->bytes[S3_MAIN];
    s3->main_items = q->items * (100 - S3_SMALL_PERCENT) / 100;
    s3_ghost_fit(s3);
    if (!q->evictable[S3_MAIN]) return S3_SMALL;
    if (!q->evictable[S3_SMALL]) return S3_MAIN;
    return q->bytes[S3_SMALL] * 100 >= total * S3_SMALL_PERCENT ? S3_SMALL : S3_MAIN;
}

static int
s3_on_evict(void *policy, bc_item_t *it, unsigned queue, uint32_t hash, uint32_t now,
            bool force)
{
    s3fifo_t *s3 = policy;
    (void)now;
    if (queue == S3_SMALL) {
        if (it->pfreq >= S3_PROMOTE_FREQ && !force) return S3_MAIN;
        s3_ghost_insert(s3, hash);
        return BC_EVICT_DROP;
    }
    if (it->pfreq == 0 || force) return BC_EVICT_DROP;
    it->pfreq--;
    return S3_MAIN;
}

const bc_evict_ops_t bc_evict_s3fifo = {
    .name = "s3fifo",
    .nqueues = 2,
    .create = s3_create,
    .destroy = s3_destroy,
    .admit = s3_admit,
    .on_miss = s3_on_miss,
    .on_link = s3_on_link,
    .on_replace = s3_on_replace,
    .on_access = s3_on_access,
    .pick_queue = s3_pick_queue,
    .on_evict = s3_on_evict,
};
