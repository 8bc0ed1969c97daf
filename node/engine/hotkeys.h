/*
 * hotkeys.h -- the node's hot keys: a sample of its requests in a
 * decaying space-saving sketch (common/bc_topk.h), behind a mutex.
 *
 * WHAT IT DOES
 *   The cache's per-thread counters (counters.h) hand it about one request
 *   in `sample_every` (bc_hotkeys_sampler); bc_hotkeys_list reads the
 *   heaviest keys, each with its bucket and an estimate of its request
 *   rate.  The admin port serves it as GET /v1/hotkeys.
 *
 * HOW
 *   One sketch per node, tagged by bucket.  With 1-in-N sampling and a
 *   half-life H, a key requested r times a second settles at a decayed
 *   count of r / N * H / ln 2, so rate = count * N * ln 2 / H.  Only
 *   sampled requests take the mutex (1 in N of them), so its cost per
 *   request is about 1/N of one uncontended lock.
 *
 * MEMORY
 *   Fixed at creation: bc_topk_memory(capacity) (256 keys: ~70 KiB).
 */
#ifndef BC_ENGINE_HOTKEYS_H
#define BC_ENGINE_HOTKEYS_H

#include <stddef.h>
#include <stdint.h>

#include "bc_topk.h"

#define BC_HOTKEYS_DEFAULT_CAPACITY 256u
#define BC_HOTKEYS_DEFAULT_EVERY    32u
#define BC_HOTKEYS_DEFAULT_HALF_LIFE_S 30.0

typedef struct bc_hotkeys bc_hotkeys_t;

typedef struct bc_hotkey {
    bc_topk_entry_t e;                 /* key, bucket (tag), decayed count, error */
    double rate_per_s;                 /* estimated requests per second */
} bc_hotkey_t;

/* capacity 1..BC_TOPK_MAX_CAPACITY, every >= 1 (the sampling the counters
 * were given), half_life_s > 0.  NULL on a bad argument or out of memory. */
bc_hotkeys_t *bc_hotkeys_create(uint32_t capacity, uint32_t every, double half_life_s);
void bc_hotkeys_destroy(bc_hotkeys_t *hk);

/* A bc_key_sampler_fn (counters.h); ctx is the bc_hotkeys_t. */
void bc_hotkeys_sampler(void *ctx, uint32_t bucket, const char *key, size_t nkey);

/*
 * Up to max of the heaviest keys into out, heaviest first; with
 * bucket != UINT32_MAX only that bucket's.  Returns how many.
 */
size_t bc_hotkeys_list(bc_hotkeys_t *hk, uint32_t bucket, bc_hotkey_t *out, size_t max);

uint32_t bc_hotkeys_every(const bc_hotkeys_t *hk);
uint32_t bc_hotkeys_capacity(const bc_hotkeys_t *hk);
double bc_hotkeys_half_life(const bc_hotkeys_t *hk);
/* Sampled requests (decayed, as the counts). */
double bc_hotkeys_sampled(bc_hotkeys_t *hk);
size_t bc_hotkeys_memory(const bc_hotkeys_t *hk);

#endif
