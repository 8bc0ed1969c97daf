/*
 * lru.c -- see lru.h.
 */
#include "lru.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define LRU_SHARDS 16u
#define LRU_INIT_SLOTS 64u

typedef struct lru_entry {
    struct lru_entry *hnext;         /* hash chain */
    struct lru_entry *prev, *next;   /* LRU list, head = most recent */
    uint32_t hash;
    uint32_t flags;
    uint64_t expires_ns;
    size_t klen, vlen;
    char data[];                     /* key, value, NUL */
} lru_entry_t;

typedef struct lru_shard {
    pthread_mutex_t mu;              /* guards everything below */
    lru_entry_t **slots;
    size_t nslots, count, bytes, max_bytes;
    lru_entry_t *head, *tail;
} lru_shard_t;

struct bc__lru {
    lru_shard_t shards[LRU_SHARDS];
};

size_t
bc__lru_entry_cost(size_t klen, size_t vlen)
{
    return sizeof(lru_entry_t) + klen + vlen + 1;
}

bc__lru_t *
bc__lru_new(size_t max_bytes)
{
    if (max_bytes == 0) return NULL;
    bc__lru_t *lru = calloc(1, sizeof(*lru));
    if (lru == NULL) return NULL;
    for (unsigned i = 0; i < LRU_SHARDS; i++) {
        lru_shard_t *sh = &lru->shards[i];
        pthread_mutex_init(&sh->mu, NULL);
        sh->max_bytes = max_bytes / LRU_SHARDS;
        sh->nslots = LRU_INIT_SLOTS;
        sh->slots = calloc(sh->nslots, sizeof(*sh->slots));
        if (sh->slots == NULL) {
            bc__lru_free(lru);
            return NULL;
        }
    }
    return lru;
}

void
bc__lru_free(bc__lru_t *lru)
{
    if (lru == NULL) return;
    for (unsigned i = 0; i < LRU_SHARDS; i++) {
        lru_shard_t *sh = &lru->shards[i];
        lru_entry_t *e = sh->head;
        while (e != NULL) {
            lru_entry_t *next = e->next;
            free(e);
            e = next;
        }
        free(sh->slots);
        pthread_mutex_destroy(&sh->mu);
    }
    free(lru);
}

/* Spreads the 32-bit key hash (whose low bits pick the cluster bucket). */
static uint32_t
lru_mix(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    return h;
}

static lru_shard_t *
lru_shard(bc__lru_t *lru, uint32_t hash)
{
    return &lru->shards[lru_mix(hash) % LRU_SHARDS];
}

static size_t
lru_slot(const lru_shard_t *sh, uint32_t hash)
{
    return (lru_mix(hash) / LRU_SHARDS) & (sh->nslots - 1);
}

static lru_entry_t **
lru_find(lru_shard_t *sh, uint32_t hash, const void *key, size_t klen)
{
    lru_entry_t **pp = &sh->slots[lru_slot(sh, hash)];
    while (*pp != NULL) {
        lru_entry_t *e = *pp;
        if (e->hash == hash && e->klen == klen && memcmp(e->data, key, klen) == 0) return pp;
        pp = &e->hnext;
    }
    return pp;
}

static void
lru_unlink(lru_shard_t *sh, lru_entry_t *e)
{
    if (e->prev) e->prev->next = e->next;
    else sh->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else sh->tail = e->prev;
    e->prev = e->next = NULL;
}

static void
lru_push_front(lru_shard_t *sh, lru_entry_t *e)
{
    e->prev = NULL;
    e->next = sh->head;
    if (sh->head) sh->head->prev = e;
    sh->head = e;
    if (sh->tail == NULL) sh->tail = e;
}

/* Removes the entry *pp points at (its hash link) entirely. */
static void
lru_remove(lru_shard_t *sh, lru_entry_t **pp)
{
    lru_entry_t *e = *pp;
    *pp = e->hnext;
    lru_unlink(sh, e);
    sh->count--;
    sh->bytes -= bc__lru_entry_cost(e->klen, e->vlen);
    free(e);
}

static void
lru_grow(lru_shard_t *sh)
{
    size_t n = sh->nslots * 2;
    lru_entry_t **slots = calloc(n, sizeof(*slots));
    if (slots == NULL) return;  /* longer chains, still correct */
    for (size_t i = 0; i < sh->nslots; i++) {
        lru_entry_t *e = sh->slots[i];
        while (e != NULL) {
            lru_entry_t *next = e->hnext;
            size_t j = (lru_mix(e->hash) / LRU_SHARDS) & (n - 1);
            e->hnext = slots[j];
            slots[j] = e;
            e = next;
        }
    }
    free(sh->slots);
    sh->slots = slots;
    sh->nslots = n;
}

bc_status_t
bc__lru_get(bc__lru_t *lru, uint32_t hash, const void *key, size_t klen, uint64_t now_ns,
            void **value, size_t *vlen, uint32_t *flags)
{
    lru_shard_t *sh = lru_shard(lru, hash);
    bc_status_t st = BC_ENOTFOUND;
    pthread_mutex_lock(&sh->mu);
    lru_entry_t **pp = lru_find(sh, hash, key, klen);
    lru_entry_t *e = *pp;
    if (e != NULL && e->expires_ns <= now_ns) {
        lru_remove(sh, pp);
        e = NULL;
    }
    if (e != NULL) {
        st = BC_OK;
        if (value != NULL) {
            char *copy = malloc(e->vlen + 1);
            if (copy == NULL) {
                st = BC_ENOMEM;
            } else {
                memcpy(copy, e->data + e->klen, e->vlen);
                copy[e->vlen] = '\0';
                *value = copy;
            }
        }
        if (st == BC_OK) {
            if (vlen != NULL) *vlen = e->vlen;
            if (flags != NULL) *flags = e->flags;
            lru_unlink(sh, e);
            lru_push_front(sh, e);
        }
    }
    pthread_mutex_unlock(&sh->mu);
    return st;
}

bc_status_t
bc__lru_put(bc__lru_t *lru, uint32_t hash, const void *key, size_t klen, const void *value,
            size_t vlen, uint32_t flags, uint64_t expires_ns)
{
    lru_shard_t *sh = lru_shard(lru, hash);
    size_t cost = bc__lru_entry_cost(klen, vlen);
    if (cost > sh->max_bytes) {
        bc__lru_del(lru, hash, key, klen);
        return BC_ETOOLARGE;
    }
    lru_entry_t *e = malloc(cost);
    if (e == NULL) return BC_ENOMEM;
    memset(e, 0, sizeof(*e));
    e->hash = hash;
    e->flags = flags;
    e->expires_ns = expires_ns;
    e->klen = klen;
    e->vlen = vlen;
    memcpy(e->data, key, klen);
    if (vlen > 0) memcpy(e->data + klen, value, vlen);
    e->data[klen + vlen] = '\0';

    pthread_mutex_lock(&sh->mu);
    lru_entry_t **pp = lru_find(sh, hash, key, klen);
    if (*pp != NULL) lru_remove(sh, pp);
    while (sh->bytes + cost > sh->max_bytes && sh->tail != NULL) {
        lru_entry_t *victim = sh->tail;
        lru_remove(sh, lru_find(sh, victim->hash, victim->data, victim->klen));
    }
    if (sh->count >= sh->nslots) lru_grow(sh);
    size_t slot = lru_slot(sh, hash);
    e->hnext = sh->slots[slot];
    sh->slots[slot] = e;
    lru_push_front(sh, e);
    sh->count++;
    sh->bytes += cost;
    pthread_mutex_unlock(&sh->mu);
    return BC_OK;
}

void
bc__lru_del(bc__lru_t *lru, uint32_t hash, const void *key, size_t klen)
{
    lru_shard_t *sh = lru_shard(lru, hash);
    pthread_mutex_lock(&sh->mu);
    lru_entry_t **pp = lru_find(sh, hash, key, klen);
    if (*pp != NULL) lru_remove(sh, pp);
    pthread_mutex_unlock(&sh->mu);
}

void
bc__lru_usage(bc__lru_t *lru, size_t *bytes, size_t *items)
{
    size_t b = 0, n = 0;
    for (unsigned i = 0; lru != NULL && i < LRU_SHARDS; i++) {
        pthread_mutex_lock(&lru->shards[i].mu);
        b += lru->shards[i].bytes;
        n += lru->shards[i].count;
        pthread_mutex_unlock(&lru->shards[i].mu);
    }
    if (bytes != NULL) *bytes = b;
    if (items != NULL) *items = n;
}

/* ---- sketch ---- */

bc_status_t
bc__lru_sketch_init(bc__lru_sketch_t *s, uint32_t width)
{
    uint32_t w = 64;
    while (w < width && w < (1u << 24)) w <<= 1;
    s->width = w;
    s->window = w * 8;
    atomic_init(&s->adds, 0);
    s->counters = calloc((size_t)BC__SKETCH_ROWS * w, sizeof(*s->counters));
    return s->counters ? BC_OK : BC_ENOMEM;
}

void
bc__lru_sketch_free(bc__lru_sketch_t *s)
{
    free(s->counters);
    s->counters = NULL;
}

static size_t
sketch_index(const bc__lru_sketch_t *s, uint32_t hash, unsigned row)
{
    static const uint32_t seeds[BC__SKETCH_ROWS] = {0x9e3779b9u, 0x85ebca6bu, 0xc2b2ae35u,
                                                    0x27d4eb2fu};
    return (size_t)row * s->width + (lru_mix(hash ^ seeds[row]) & (s->width - 1));
}

static void
sketch_halve(bc__lru_sketch_t *s)
{
    size_t n = (size_t)BC__SKETCH_ROWS * s->width;
    for (size_t i = 0; i < n; i++) {
        unsigned char v = atomic_load_explicit(&s->counters[i], memory_order_relaxed);
        atomic_store_explicit(&s->counters[i], (unsigned char)(v >> 1), memory_order_relaxed);
    }
}

unsigned
bc__lru_sketch_add(bc__lru_sketch_t *s, uint32_t hash)
{
    unsigned est = 255;
    for (unsigned r = 0; r < BC__SKETCH_ROWS; r++) {
        atomic_uchar *c = &s->counters[sketch_index(s, hash, r)];
        unsigned char v = atomic_load_explicit(c, memory_order_relaxed);
        if (v < 255) {
            /* A lost increment under a race only makes the estimate a bit low. */
            atomic_store_explicit(c, (unsigned char)(v + 1), memory_order_relaxed);
            v++;
        }
        if (v < est) est = v;
    }
    uint_fast32_t n = atomic_fetch_add_explicit(&s->adds, 1, memory_order_relaxed) + 1;
    if (n >= s->window &&
        atomic_compare_exchange_strong_explicit(&s->adds, &n, 0, memory_order_relaxed,
                                                memory_order_relaxed)) {
        sketch_halve(s);
    }
    return est;
}

unsigned
bc__lru_sketch_estimate(bc__lru_sketch_t *s, uint32_t hash)
{
    unsigned est = 255;
    for (unsigned r = 0; r < BC__SKETCH_ROWS; r++) {
        unsigned v = atomic_load_explicit(&s->counters[sketch_index(s, hash, r)],
                                          memory_order_relaxed);
        if (v < est) est = v;
    }
    return est;
}
