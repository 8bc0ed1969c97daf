/*
 * counters.c -- see counters.h: per-thread, per-bucket request counters.
 */
#include "engine/counters.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

_Thread_local bc_counters_block_t *bc__counters_tl;

struct bc_counters {
    uint32_t nbuckets;
    bc_key_sampler_fn sampler;         /* set before threads attach */
    void *sampler_ctx;
    uint32_t every;
    pthread_mutex_t lock;              /* protects blocks' list and in_use */
    bc_counters_block_t *blocks;
};

bc_counters_t *
bc_counters_create(uint32_t nbuckets)
{
    bc_counters_t *c = calloc(1, sizeof(*c));
    if (c == NULL) return NULL;
    c->nbuckets = nbuckets;
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void
bc_counters_destroy(bc_counters_t *c)
{
    if (c == NULL) return;
    bc_counters_block_t *b = c->blocks;
    while (b != NULL) {
        bc_counters_block_t *next = b->next;
        if (bc__counters_tl == b) bc__counters_tl = NULL;
        free(b->bucket);
        free(b);
        b = next;
    }
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static uint32_t
counters_stride(bc_counters_block_t *b, uint32_t every)
{
    if (every == 0) return 0;
    if (every == 1) return 1;
    /* xorshift64: a stride uniform in 1..2*every-1, mean every. */
    uint64_t x = b->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b->rng = x;
    return 1 + (uint32_t)(x % (2ull * every - 1));
}

bc_status_t
bc_counters_attach(bc_counters_t *c)
{
    if (bc_counters_mine(c) != NULL) return BC_OK;
    pthread_mutex_lock(&c->lock);
    bc_counters_block_t *b = c->blocks;
    while (b != NULL && b->in_use) b = b->next;
    if (b == NULL) {
        b = calloc(1, sizeof(*b));
        size_t size = (size_t)c->nbuckets * sizeof(bc_bucket_counters_t);
        size = (size + 63) & ~(size_t)63;
        if (b != NULL) b->bucket = aligned_alloc(64, size > 0 ? size : 64);
        if (b == NULL || b->bucket == NULL) {
            pthread_mutex_unlock(&c->lock);
            if (b != NULL) free(b);
            return BC_ENOMEM;
        }
        memset(b->bucket, 0, size);
        b->owner = c;
        b->next = c->blocks;
        c->blocks = b;
    }
    b->in_use = true;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    b->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)(uintptr_t)b ^ 0x9e3779b97f4a7c15ull;
    b->countdown = counters_stride(b, c->sampler != NULL ? c->every : 0);
    pthread_mutex_unlock(&c->lock);
    bc__counters_tl = b;
    return BC_OK;
}

void
bc_counters_detach(bc_counters_t *c)
{
    bc_counters_block_t *b = bc_counters_mine(c);
    if (b == NULL) return;
    bc__counters_tl = NULL;
    pthread_mutex_lock(&c->lock);
    b->in_use = false;
    pthread_mutex_unlock(&c->lock);
}

static void
counters_fold_block(const bc_bucket_counters_t *src, bc_bucket_counts_t *out)
{
#define BC__COUNTERS_SUM(name, desc) \
    out->name += atomic_load_explicit(&src->name, memory_order_relaxed);
    BC_BUCKET_COUNTERS(BC__COUNTERS_SUM)
#undef BC__COUNTERS_SUM
}

void
bc_counters_fold(bc_counters_t *c, uint32_t bucket, bc_bucket_counts_t *out)
{
    memset(out, 0, sizeof(*out));
    if (c == NULL || bucket >= c->nbuckets) return;
    pthread_mutex_lock(&c->lock);
    for (bc_counters_block_t *b = c->blocks; b != NULL; b = b->next) {
        counters_fold_block(&b->bucket[bucket], out);
    }
    pthread_mutex_unlock(&c->lock);
}

void
bc_counters_fold_all(bc_counters_t *c, bc_bucket_counts_t *out, uint32_t n)
{
    memset(out, 0, (size_t)n * sizeof(*out));
    if (c == NULL) return;
    if (n > c->nbuckets) n = c->nbuckets;
    pthread_mutex_lock(&c->lock);
    for (bc_counters_block_t *b = c->blocks; b != NULL; b = b->next) {
        for (uint32_t i = 0; i < n; i++) counters_fold_block(&b->bucket[i], &out[i]);
    }
    pthread_mutex_unlock(&c->lock);
}

void
bc_counters_set_sampler(bc_counters_t *c, bc_key_sampler_fn fn, void *ctx, uint32_t every)
{
    c->sampler = fn;
    c->sampler_ctx = ctx;
    c->every = fn != NULL ? every : 0;
}

uint32_t
bc_counters_sample_every(const bc_counters_t *c)
{
    return c != NULL && c->sampler != NULL ? c->every : 0;
}

void
bc_counters_sample(const bc_counters_t *c, bc_counters_block_t *blk, uint32_t bucket,
                   const char *key, size_t nkey)
{
    blk->countdown = counters_stride(blk, c->every);
    if (c->sampler != NULL) c->sampler(c->sampler_ctx, bucket, key, nkey);
}
