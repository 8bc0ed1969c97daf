/*
 * hotkeys.c -- see hotkeys.h: the node's sampled hot-key sketch.
 */
#include "engine/hotkeys.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct bc_hotkeys {
    pthread_mutex_t lock;              /* protects sketch */
    bc_topk_t *sketch;
    uint32_t every;
    double half_life_s;
};

static double
hotkeys_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);   /* decay works in seconds: a few ms do not matter */
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bc_hotkeys_t *
bc_hotkeys_create(uint32_t capacity, uint32_t every, double half_life_s)
{
    if (every == 0 || !(half_life_s > 0)) return NULL;
    bc_hotkeys_t *hk = calloc(1, sizeof(*hk));
    if (hk == NULL) return NULL;
    hk->sketch = bc_topk_create(capacity, half_life_s);
    if (hk->sketch == NULL) {
        free(hk);
        return NULL;
    }
    hk->every = every;
    hk->half_life_s = half_life_s;
    pthread_mutex_init(&hk->lock, NULL);
    return hk;
}

void
bc_hotkeys_destroy(bc_hotkeys_t *hk)
{
    if (hk == NULL) return;
    bc_topk_destroy(hk->sketch);
    pthread_mutex_destroy(&hk->lock);
    free(hk);
}

void
bc_hotkeys_sampler(void *ctx, uint32_t bucket, const char *key, size_t nkey)
{
    bc_hotkeys_t *hk = ctx;
    double now = hotkeys_now();
    pthread_mutex_lock(&hk->lock);
    bc_topk_add(hk->sketch, key, nkey, bucket, 1.0, now);
    pthread_mutex_unlock(&hk->lock);
}

size_t
bc_hotkeys_list(bc_hotkeys_t *hk, uint32_t bucket, bc_hotkey_t *out, size_t max)
{
    if (hk == NULL || max == 0) return 0;
    uint32_t cap = bc_topk_capacity(hk->sketch);
    bc_topk_entry_t *all = malloc(cap * sizeof(*all));
    if (all == NULL) return 0;
    pthread_mutex_lock(&hk->lock);
    size_t n = bc_topk_list(hk->sketch, hotkeys_now(), all, cap);
    pthread_mutex_unlock(&hk->lock);
    double scale = (double)hk->every * M_LN2 / hk->half_life_s;
    size_t k = 0;
    for (size_t i = 0; i < n && k < max; i++) {
        if (bucket != UINT32_MAX && all[i].tag != bucket) continue;
        out[k].e = all[i];
        out[k].rate_per_s = all[i].count * scale;
        k++;
    }
    free(all);
    return k;
}

uint32_t
bc_hotkeys_every(const bc_hotkeys_t *hk)
{
    return hk != NULL ? hk->every : 0;
}

uint32_t
bc_hotkeys_capacity(const bc_hotkeys_t *hk)
{
    return hk != NULL ? bc_topk_capacity(hk->sketch) : 0;
}

double
bc_hotkeys_half_life(const bc_hotkeys_t *hk)
{
    return hk != NULL ? hk->half_life_s : 0;
}

double
bc_hotkeys_sampled(bc_hotkeys_t *hk)
{
    if (hk == NULL) return 0;
    pthread_mutex_lock(&hk->lock);
    double t = bc_topk_total(hk->sketch);
    pthread_mutex_unlock(&hk->lock);
    return t;
}

size_t
bc_hotkeys_memory(const bc_hotkeys_t *hk)
{
    return hk != NULL ? sizeof(*hk) + bc_topk_memory(hk->sketch) : 0;
}
