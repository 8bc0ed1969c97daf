/*
 * test_evict.c -- unit tests of the eviction policies (node/engine/evict/).
 *
 * The policies are driven directly through their ops, without the cache.
 * Scripted tests pin each policy's documented verdicts on single items.
 * The trace tests run a model of the engine's log of segments: each queue
 * is a FIFO of item slots cut into segments of SIM_SEG_ITEMS; a miss
 * appends to the queue admit() names, and when the cache is full the
 * queue pick_queue() names loses its oldest segment, each of whose live
 * items is dropped or appended to the queue on_evict() names -- what
 * cache.c does with real segments.  A Zipf trace of a few hundred
 * thousand requests runs in milliseconds, and checks the claims that
 * justify having several policies: S3-FIFO beats LRU on Zipf(0.99), and
 * every policy beats caches that do not adapt.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "bc_hash.h"
#include "engine/evict/evict.h"

#define T0 1700000000u

/* An item with nothing but a header: what the policies look at. */
static bc_item_t *
item_new(void)
{
    bc_item_t *it = calloc(1, sizeof(bc_item_t) + 16);
    assert_non_null(it);
    return it;
}

typedef struct policy_env {
    const bc_evict_ops_t *ops;
    void *p;
    _Atomic uint64_t mem;
    bc_evict_env_t env;
} policy_env_t;

static policy_env_t *
policy_new(const char *name)
{
    policy_env_t *pe = calloc(1, sizeof(*pe));
    assert_non_null(pe);
    pe->env.mem_used = &pe->mem;
    pe->ops = bc_evict_find(name);
    assert_non_null(pe->ops);
    pe->p = pe->ops->create(&pe->env);
    assert_non_null(pe->p);
    assert_true(atomic_load(&pe->mem) > 0);   /* the instance is charged */
    return pe;
}

static void
policy_free(policy_env_t *pe)
{
    pe->ops->destroy(pe->p);
    assert_int_equal(atomic_load(&pe->mem), 0);   /* everything charged was freed */
    free(pe);
}

/* Links a new item (admit + on_link) and returns it and its queue. */
static bc_item_t *
link_new(policy_env_t *pe, uint32_t hash, unsigned *queue, uint32_t now)
{
    bc_item_t *it = item_new();
    unsigned q = pe->ops->admit(pe->p, hash);
    assert_true(q < pe->ops->nqueues);
    pe->ops->on_link(it, now);
    it->atime = bc__evict_atime(now);
    if (queue != NULL) *queue = q;
    return it;
}

static void
access_item(policy_env_t *pe, bc_item_t *it, uint32_t now)
{
    pe->ops->on_access(it, now);
    it->atime = bc__evict_atime(now);
}

/* ------------------------------------------------------------------------ */
/* registry                                                                 */
/* ------------------------------------------------------------------------ */

static void
test_registry(void **state)
{
    (void)state;
    assert_ptr_equal(bc_evict_find(NULL), &bc_evict_s3fifo);   /* the default */
    assert_ptr_equal(bc_evict_find(""), &bc_evict_s3fifo);
    assert_ptr_equal(bc_evict_find("lru"), &bc_evict_lru);
    assert_ptr_equal(bc_evict_find("lfu"), &bc_evict_lfu);
    assert_ptr_equal(bc_evict_find("fifo"), &bc_evict_fifo);
    assert_ptr_equal(bc_evict_find("s3fifo"), &bc_evict_s3fifo);
    assert_null(bc_evict_find("LRU"));
    assert_null(bc_evict_find("random"));
    assert_string_equal(bc_evict_names(), "s3fifo lru lfu fifo");
    const bc_evict_ops_t *all[] = {&bc_evict_lru, &bc_evict_lfu, &bc_evict_fifo,
                                   &bc_evict_s3fifo};
    for (int i = 0; i < 4; i++) {
        assert_true(all[i]->nqueues >= 1 && all[i]->nqueues <= BC_EVICT_MAX_QUEUES);
    }
    assert_int_equal(bc_evict_s3fifo.nqueues, 2);
}

/* ------------------------------------------------------------------------ */
/* scripted verdicts                                                        */
/* ------------------------------------------------------------------------ */

static void
test_fifo_drops_everything(void **state)
{
    (void)state;
    policy_env_t *pe = policy_new("fifo");
    unsigned q;
    bc_item_t *it = link_new(pe, 1, &q, T0);
    assert_int_equal(q, 0);
    for (int i = 0; i < 5; i++) access_item(pe, it, T0);
    assert_int_equal(pe->ops->on_evict(pe->p, it, 0, 1, T0, false), BC_EVICT_DROP);
    free(it);
    policy_free(pe);
}

static void
test_lru_second_chance(void **state)
{
    (void)state;
    policy_env_t *pe = policy_new("lru");
    bc_item_t *cold = link_new(pe, 1, NULL, T0), *hot = link_new(pe, 2, NULL, T0);
    access_item(pe, hot, T0);
    /* unreferenced: goes; referenced: kept once, bit cleared */
    assert_int_equal(pe->ops->on_evict(pe->p, cold, 0, 1, T0, false), BC_EVICT_DROP);
    assert_int_equal(pe->ops->on_evict(pe->p, hot, 0, 2, T0, false), 0);
    assert_int_equal(pe->ops->on_evict(pe->p, hot, 0, 2, T0, false), BC_EVICT_DROP);
    /* a replaced key counts as used; force drops all the same */
    bc_item_t *nit = item_new();
    pe->ops->on_replace(cold, nit, T0);
    assert_int_equal(pe->ops->on_evict(pe->p, nit, 0, 1, T0, true), BC_EVICT_DROP);
    access_item(pe, nit, T0);
    assert_int_equal(pe->ops->on_evict(pe->p, nit, 0, 1, T0, false), 0);
    free(cold);
    free(hot);
    free(nit);
    policy_free(pe);
}

static void
test_lfu_frequency_and_aging(void **state)
{
    (void)state;
    policy_env_t *pe = policy_new("lfu");
    bc_item_t *never = link_new(pe, 1, NULL, T0), *once = link_new(pe, 2, NULL, T0);
    bc_item_t *often = link_new(pe, 3, NULL, T0);
    access_item(pe, once, T0);
    for (int i = 0; i < 2000; i++) access_item(pe, often, T0);
    /* the bar starts at one hit: never hit goes, hit stays (counter and all) */
    assert_int_equal(pe->ops->on_evict(pe->p, never, 0, 1, T0, false), BC_EVICT_DROP);
    assert_int_equal(pe->ops->on_evict(pe->p, once, 0, 2, T0, false), 0);
    assert_int_equal(pe->ops->on_evict(pe->p, once, 0, 2, T0, false), 0);
    /* tails where everything is kept raise the bar: the item hit once goes,
     * the one hit often stays */
    for (int i = 0; i < 4 * 256; i++) (void)pe->ops->on_evict(pe->p, often, 0, 3, T0, false);
    assert_int_equal(pe->ops->on_evict(pe->p, once, 0, 2, T0, false), BC_EVICT_DROP);
    assert_int_equal(pe->ops->on_evict(pe->p, often, 0, 3, T0, false), 0);
    /* tails where everything goes lower it again */
    for (int i = 0; i < 8 * 256; i++) (void)pe->ops->on_evict(pe->p, never, 0, 1, T0, false);
    assert_int_equal(pe->ops->on_evict(pe->p, once, 0, 2, T0, false), 0);
    /* idle decay: the same hits, then two hours of silence -- gone at once */
    bc_item_t *stale = link_new(pe, 4, NULL, T0);
    for (int i = 0; i < 2000; i++) access_item(pe, stale, T0);
    assert_true(stale->pfreq > 5 && stale->pfreq < 120);
    assert_int_equal(pe->ops->on_evict(pe->p, stale, 0, 4, T0 + 120 * 60, false), BC_EVICT_DROP);
    /* force drops whatever the counter */
    assert_int_equal(pe->ops->on_evict(pe->p, often, 0, 3, T0, true), BC_EVICT_DROP);
    /* a replaced key keeps its history */
    bc_item_t *nit = item_new();
    for (int i = 0; i < 2000; i++) access_item(pe, never, T0);
    pe->ops->on_replace(never, nit, T0);
    nit->atime = bc__evict_atime(T0);
    assert_true(nit->pfreq > 5);
    free(never);
    free(once);
    free(often);
    free(stale);
    free(nit);
    policy_free(pe);
}

static void
test_s3fifo_small_main_and_ghost(void **state)
{
    (void)state;
    policy_env_t *pe = policy_new("s3fifo");
    unsigned q;
    /* new keys go to S, from the first (only a read earns a place in M) */
    bc_item_t *early = link_new(pe, 0x0000eeee, &q, T0);
    assert_int_equal(q, 0);
    free(early);
    bc_item_t *a = link_new(pe, 0x1111aaaa, &q, T0);
    assert_int_equal(q, 0);
    bc_item_t *b = link_new(pe, 0x2222bbbb, &q, T0);
    assert_int_equal(q, 0);
    /* S's tail: hit -> copied to M; not hit -> dropped, hash remembered */
    access_item(pe, a, T0);
    assert_int_equal(pe->ops->on_evict(pe->p, a, 0, 0x1111aaaa, T0, false), 1);
    assert_int_equal(pe->ops->on_evict(pe->p, b, 0, 0x2222bbbb, T0, false), BC_EVICT_DROP);
    /* the ghost admits b's key to M directly after a read missed it, once */
    pe->ops->on_miss(pe->p, 0x2222bbbb);
    assert_int_equal(pe->ops->admit(pe->p, 0x2222bbbb), 1);
    pe->ops->on_miss(pe->p, 0x2222bbbb);
    assert_int_equal(pe->ops->admit(pe->p, 0x2222bbbb), 0);
    pe->ops->on_miss(pe->p, 0x3333cccc);
    assert_int_equal(pe->ops->admit(pe->p, 0x3333cccc), 0);
    /* M's tail: kept while it has hits, one fewer per pass */
    access_item(pe, a, T0);
    access_item(pe, a, T0);
    int passes = 0;
    while (pe->ops->on_evict(pe->p, a, 1, 0x1111aaaa, T0, false) == 1) passes++;
    assert_true(passes >= 2 && passes <= 3);
    /* dropped from M: not remembered */
    pe->ops->on_miss(pe->p, 0x1111aaaa);
    assert_int_equal(pe->ops->admit(pe->p, 0x1111aaaa), 0);
    /* a new value of a live key carries its reads, not the write: one
     * never read is dropped from S's tail, one read is promoted */
    bc_item_t *nit = item_new();
    pe->ops->on_replace(b, nit, T0);
    assert_int_equal(pe->ops->on_evict(pe->p, nit, 0, 0x2222bbbb, T0, false), BC_EVICT_DROP);
    access_item(pe, b, T0);
    pe->ops->on_replace(b, nit, T0);
    assert_int_equal(pe->ops->on_evict(pe->p, nit, 0, 0x2222bbbb, T0, false), 1);
    /* force drops (and a forced drop from S is remembered) */
    access_item(pe, b, T0);
    assert_int_equal(pe->ops->on_evict(pe->p, b, 0, 0x4444dddd, T0, true), BC_EVICT_DROP);
    pe->ops->on_miss(pe->p, 0x4444dddd);
    assert_int_equal(pe->ops->admit(pe->p, 0x4444dddd), 1);
    free(a);
    free(b);
    free(nit);
    policy_free(pe);
}

static void
test_s3fifo_pick_queue(void **state)
{
    (void)state;
    policy_env_t *pe = policy_new("s3fifo");
    bc_evict_queues_t qs = {.bytes = {5, 95}, .evictable = {true, true}, .items = 100};
    assert_int_equal(pe->ops->pick_queue(pe->p, &qs), 1);   /* S under 10%: M */
    qs.bytes[0] = 10;
    qs.bytes[1] = 90;
    assert_int_equal(pe->ops->pick_queue(pe->p, &qs), 0);   /* S at 10%: S */
    qs.evictable[0] = false;
    assert_int_equal(pe->ops->pick_queue(pe->p, &qs), 1);   /* only what can go */
    qs.evictable[0] = true;
    qs.evictable[1] = false;
    qs.bytes[0] = 1;
    assert_int_equal(pe->ops->pick_queue(pe->p, &qs), 0);
    policy_free(pe);
}

/* The ghost remembers about as many keys as M could hold, however few it
 * holds now.  Sized by M's current count instead, a cache whose M is
 * nearly empty (one-hit wonders keep S at its share) forgot a dropped key
 * within a few dozen drops, so keys requested again never reached M. */
static void
test_s3fifo_ghost_sized_by_the_cache(void **state)
{
    (void)state;
    policy_env_t *pe = policy_new("s3fifo");
    /* 10,000 items, all in S: M is empty */
    bc_evict_queues_t qs = {.bytes = {1000, 0}, .evictable = {true, false}, .items = 10000};
    assert_int_equal(pe->ops->pick_queue(pe->p, &qs), 0);
    bc_item_t *it = item_new();
    const uint32_t drops = 8000;     /* under M's 9,000 */
    for (uint32_t i = 0; i < drops; i++) {
        assert_int_equal(pe->ops->on_evict(pe->p, it, 0, 0x9E3779B9u * (i + 1), T0, false),
                         BC_EVICT_DROP);
    }
    uint32_t remembered = 0;
    for (uint32_t i = 0; i < 1000; i++) {      /* the oldest 1000 drops */
        pe->ops->on_miss(pe->p, 0x9E3779B9u * (i + 1));
        remembered += pe->ops->admit(pe->p, 0x9E3779B9u * (i + 1)) == 1;
    }
    /* open addressing with 4 probes loses a few to collisions */
    assert_true(remembered >= 900);
    free(it);
    policy_free(pe);
}

/* A key dropped from S and then only written (memcslap's set test
 * rewrites its keys and never reads one) stays in S: only a read miss
 * followed by a write brings it back from the ghost to M.  And the miss
 * filter forgets: a miss long ago, many ghost insertions back, earns
 * nothing. */
static void
test_s3fifo_ghost_wants_a_read_miss(void **state)
{
    (void)state;
    policy_env_t *pe = policy_new("s3fifo");
    bc_evict_queues_t qs = {.bytes = {1000, 0}, .evictable = {true, false}, .items = 100};
    assert_int_equal(pe->ops->pick_queue(pe->p, &qs), 0);
    bc_item_t *it = item_new();
    const uint32_t keys = 50;
    for (uint32_t i = 0; i < keys; i++) {
        assert_int_equal(pe->ops->on_evict(pe->p, it, 0, 0x9E3779B9u * (i + 1), T0, false),
                         BC_EVICT_DROP);
    }
    /* rewritten, never read: S, and the ghost entry is left in place */
    for (uint32_t i = 0; i < keys; i++) {
        assert_int_equal(pe->ops->admit(pe->p, 0x9E3779B9u * (i + 1)), 0);
    }
    /* read, missed, written: M */
    uint32_t to_main = 0;
    for (uint32_t i = 0; i < keys; i++) {
        pe->ops->on_miss(pe->p, 0x9E3779B9u * (i + 1));
        pe->ops->on_miss(pe->p, 0x9E3779B9u * (i + 1));     /* twice: one bit */
        to_main += pe->ops->admit(pe->p, 0x9E3779B9u * (i + 1)) == 1;
    }
    assert_true(to_main >= keys - 2);     /* 4 probes lose one or two */
    /* a write consumes the miss: the next write alone goes to S */
    const uint32_t k = 0x12345678u;
    pe->ops->on_miss(pe->p, k);
    assert_int_equal(pe->ops->admit(pe->p, k), 0);        /* not in the ghost */
    assert_int_equal(pe->ops->on_evict(pe->p, it, 0, k, T0, false), BC_EVICT_DROP);
    assert_int_equal(pe->ops->admit(pe->p, k), 0);
    /* a miss, then many drops (more than the ghost's slots): forgotten */
    pe->ops->on_miss(pe->p, k);
    assert_int_equal(pe->ops->on_evict(pe->p, it, 0, k, T0, false), BC_EVICT_DROP);
    for (uint32_t i = 0; i < 4096; i++) {
        assert_int_equal(pe->ops->on_evict(pe->p, it, 0, 0xABCDEF01u * (i + 7), T0, false),
                         BC_EVICT_DROP);
    }
    pe->ops->on_evict(pe->p, it, 0, k, T0, false);       /* in the ghost again */
    assert_int_equal(pe->ops->admit(pe->p, k), 0);
    free(it);
    policy_free(pe);
}

/* ------------------------------------------------------------------------ */
/* the segment-log model                                                    */
/* ------------------------------------------------------------------------ */

#define SIM_SEG_ITEMS 64u

typedef struct simq {
    uint64_t *ring;                 /* (seq << 32) | id, oldest at head */
    uint32_t head, count, cap;
} simq_t;

typedef struct sim {
    policy_env_t *pe;
    bc_item_t **resident;           /* by key id */
    uint32_t *seq_of;               /* by key id: the slot that holds it */
    uint32_t seq;
    simq_t q[BC_EVICT_MAX_QUEUES];
    uint32_t nkeys, capacity, used;
    uint32_t now;
    uint32_t streak;
    uint64_t hits, misses, kept;
} sim_t;

static sim_t *
sim_new(const char *policy, uint32_t nkeys, uint32_t capacity)
{
    sim_t *sim = calloc(1, sizeof(*sim));
    assert_non_null(sim);
    sim->pe = policy_new(policy);
    sim->nkeys = nkeys;
    sim->capacity = capacity;
    sim->now = T0;
    sim->resident = calloc(nkeys, sizeof(*sim->resident));
    sim->seq_of = calloc(nkeys, sizeof(*sim->seq_of));
    assert_non_null(sim->resident);
    assert_non_null(sim->seq_of);
    for (unsigned i = 0; i < BC_EVICT_MAX_QUEUES; i++) {
        sim->q[i].cap = capacity * 2 + SIM_SEG_ITEMS;
        sim->q[i].ring = calloc(sim->q[i].cap, sizeof(uint64_t));
        assert_non_null(sim->q[i].ring);
    }
    return sim;
}

static void
sim_free(sim_t *sim)
{
    for (uint32_t i = 0; i < sim->nkeys; i++) free(sim->resident[i]);
    for (unsigned i = 0; i < BC_EVICT_MAX_QUEUES; i++) free(sim->q[i].ring);
    free(sim->resident);
    free(sim->seq_of);
    policy_free(sim->pe);
    free(sim);
}

static void
sim_append(sim_t *sim, unsigned q, uint32_t id)
{
    simq_t *sq = &sim->q[q];
    assert_true(sq->count < sq->cap);
    uint32_t seq = ++sim->seq;
    sq->ring[(sq->head + sq->count++) % sq->cap] = ((uint64_t)seq << 32) | id;
    sim->seq_of[id] = seq;
    sim->used++;
}

static uint32_t
sim_hash(uint32_t id)
{
    return bc_hash_key(&id, sizeof(id));
}

/* The oldest segment of the queue the policy picks: its live items are
 * dropped or appended again. */
static void
sim_evict_segment(sim_t *sim)
{
    const bc_evict_ops_t *ops = sim->pe->ops;
    bc_evict_queues_t qs = {.items = sim->used};
    for (unsigned i = 0; i < ops->nqueues; i++) {
        qs.bytes[i] = sim->q[i].count;
        qs.evictable[i] = sim->q[i].count > 0;
    }
    unsigned q = ops->pick_queue(sim->pe->p, &qs);
    assert_true(qs.evictable[q]);
    simq_t *sq = &sim->q[q];
    uint32_t n = sq->count < SIM_SEG_ITEMS ? sq->count : SIM_SEG_ITEMS, kept = 0;
    bool force = sim->streak >= 16;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t e = sq->ring[sq->head];
        sq->head = (sq->head + 1) % sq->cap;
        sq->count--;
        sim->used--;
        uint32_t id = (uint32_t)e, seq = (uint32_t)(e >> 32);
        bc_item_t *it = sim->resident[id];
        if (it == NULL || sim->seq_of[id] != seq) continue;   /* a dead slot */
        int v = ops->on_evict(sim->pe->p, it, q, sim_hash(id), sim->now, force);
        if (v == BC_EVICT_DROP) {
            free(it);
            sim->resident[id] = NULL;
        } else {
            assert_true(!force);
            sim_append(sim, (unsigned)v, id);
            kept++;
        }
    }
    sim->kept += kept;
    sim->streak = kept * 8 > n * 7 ? sim->streak + 1 : 0;
}

static void
sim_request(sim_t *sim, uint32_t id)
{
    bc_item_t *it = sim->resident[id];
    if (it != NULL) {
        sim->hits++;
        access_item(sim->pe, it, sim->now);
        return;
    }
    sim->misses++;
    if (sim->pe->ops->on_miss != NULL) sim->pe->ops->on_miss(sim->pe->p, sim_hash(id));
    unsigned q;
    it = link_new(sim->pe, sim_hash(id), &q, sim->now);
    while (sim->used >= sim->capacity) sim_evict_segment(sim);
    sim->resident[id] = it;
    sim_append(sim, q, id);
}

#define ZIPF_KEYS      40000u
#define ZIPF_REQUESTS  600000u
#define ZIPF_CAPACITY  (ZIPF_KEYS / 10)

static uint32_t *zipf_trace;

/* Zipf(0.99) over ZIPF_KEYS keys, fixed seed, rank -> scattered id. */
static int
zipf_setup(void **state)
{
    (void)state;
    double *cdf = malloc(ZIPF_KEYS * sizeof(*cdf));
    uint32_t *perm = malloc(ZIPF_KEYS * sizeof(*perm));
    zipf_trace = malloc(ZIPF_REQUESTS * sizeof(*zipf_trace));
    if (cdf == NULL || perm == NULL || zipf_trace == NULL) return -1;
    double sum = 0;
    for (uint32_t i = 0; i < ZIPF_KEYS; i++) {
        sum += 1.0 / pow((double)(i + 1), 0.99);
        cdf[i] = sum;
    }
    uint64_t x = 42;
#define NEXT() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
    for (uint32_t i = 0; i < ZIPF_KEYS; i++) perm[i] = i;
    for (uint32_t i = ZIPF_KEYS - 1; i > 0; i--) {
        uint32_t j = (uint32_t)(NEXT() % (i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (uint32_t r = 0; r < ZIPF_REQUESTS; r++) {
        double u = (double)(NEXT() >> 11) / 9007199254740992.0 * sum;
        uint32_t lo = 0, hi = ZIPF_KEYS - 1;
        while (lo < hi) {
            uint32_t mid = (lo + hi) / 2;
            if (cdf[mid] < u) lo = mid + 1; else hi = mid;
        }
        zipf_trace[r] = perm[lo];
    }
#undef NEXT
    free(cdf);
    free(perm);
    return 0;
}

static int
zipf_teardown(void **state)
{
    (void)state;
    free(zipf_trace);
    return 0;
}

static double
zipf_hit_ratio(const char *policy)
{
    sim_t *sim = sim_new(policy, ZIPF_KEYS, ZIPF_CAPACITY);
    for (uint32_t r = 0; r < ZIPF_REQUESTS; r++) {
        if (r % 1000 == 0) sim->now++;   /* time moves, slowly (LFU decay) */
        sim_request(sim, zipf_trace[r]);
        assert_true(sim->used <= sim->capacity);
    }
    double ratio = (double)sim->hits / (double)(sim->hits + sim->misses);
    sim_free(sim);
    return ratio;
}

/* A cache that never adapts: holds a fixed random tenth of the keys. */
static double
zipf_static_ratio(void)
{
    uint64_t hits = 0;
    for (uint32_t r = 0; r < ZIPF_REQUESTS; r++) {
        if (bc_hash_key(&zipf_trace[r], sizeof(uint32_t)) % 10 == 0) hits++;
    }
    return (double)hits / ZIPF_REQUESTS;
}

static void
test_zipf_hit_ratios(void **state)
{
    (void)state;
    double lru = zipf_hit_ratio("lru");
    double lfu = zipf_hit_ratio("lfu");
    double fifo = zipf_hit_ratio("fifo");
    double s3 = zipf_hit_ratio("s3fifo");
    double fixed = zipf_static_ratio();
    printf("zipf(0.99) %u keys, cache %u items in segments of %u, %u requests: lru %.4f "
           "lfu %.4f fifo %.4f s3fifo %.4f | static %.4f\n",
           ZIPF_KEYS, ZIPF_CAPACITY, SIM_SEG_ITEMS, ZIPF_REQUESTS, lru, lfu, fifo, s3, fixed);

    /* The default earns its place. */
    assert_true(s3 > lru + 0.01);
    /* Recency/frequency-aware policies beat FIFO (which, on an independent
     * trace, is as good as random eviction). */
    assert_true(lru > fifo + 0.01);
    assert_true(lfu > fifo + 0.01);
    assert_true(s3 > fifo + 0.03);
    /* And every adaptive cache is far above one that does not adapt. */
    assert_true(fifo > fixed * 3);
}

/* Scan resistance: one-hit wonders interleaved with a Zipf core cost
 * S3-FIFO little (they never leave S), LRU and FIFO much more. */
static void
test_scan_resistance(void **state)
{
    (void)state;
    double ratio[3];
    const char *names[] = {"s3fifo", "lru", "fifo"};
    for (int p = 0; p < 3; p++) {
        /* ids ZIPF_KEYS.. are the one-time keys: a larger key space */
        sim_t *sim = sim_new(names[p], ZIPF_KEYS * 4, ZIPF_CAPACITY);
        uint32_t next_once = ZIPF_KEYS;
        uint64_t core_hits = 0, core = 0;
        for (uint32_t r = 0; r < ZIPF_REQUESTS / 2; r++) {
            uint64_t h = sim->hits;
            sim_request(sim, zipf_trace[r]);
            core++;
            core_hits += sim->hits - h;
            if (r % 2 == 0 && next_once < ZIPF_KEYS * 4) sim_request(sim, next_once++);
        }
        ratio[p] = (double)core_hits / (double)core;
        sim_free(sim);
    }
    printf("zipf core hit ratio with one-time keys between: s3fifo %.4f lru %.4f fifo %.4f\n",
           ratio[0], ratio[1], ratio[2]);
    assert_true(ratio[0] > ratio[1] + 0.03);
    assert_true(ratio[1] > ratio[2]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_fifo_drops_everything),
        cmocka_unit_test(test_lru_second_chance),
        cmocka_unit_test(test_lfu_frequency_and_aging),
        cmocka_unit_test(test_s3fifo_small_main_and_ghost),
        cmocka_unit_test(test_s3fifo_pick_queue),
        cmocka_unit_test(test_s3fifo_ghost_sized_by_the_cache),
        cmocka_unit_test(test_s3fifo_ghost_wants_a_read_miss),
        cmocka_unit_test_setup_teardown(test_zipf_hit_ratios, zipf_setup, zipf_teardown),
        cmocka_unit_test_setup_teardown(test_scan_resistance, zipf_setup, zipf_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
