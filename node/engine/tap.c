/*
 * tap.c -- see tap.h.
 *
 * A tap is a key set (bc_tap_keys_t: an arena of entries plus an
 * open-addressing index of arena offsets) on the list by_bucket[bucket]
 * (at most TAP_PER_BUCKET long).  The cache calls tap_hook for every
 * change of a tapped bucket, with the bucket's shard lock held; the hook
 * adds the key to each of the bucket's taps under mu.
 */
#include "engine/tap.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "bc_hash.h"
#include "bc_log.h"
#include "bc_time.h"

#define TAP_DEFAULT_MAX_BYTES (4u * 1024u * 1024u)
#define TAP_DEFAULT_MAX_TAPS  256u
#define TAP_DEFAULT_IDLE_MS   120000u
#define KEYS_MIN_SLOTS        64u
/* Taps one bucket keeps at once (tap.h BEHAVIOR): two destinations may
 * precopy the same bucket while a move is re-planned, and each needs its
 * own.  Every change of the bucket is recorded once per tap. */
#define TAP_PER_BUCKET        2u

typedef struct tap {
    uint64_t id;
    uint32_t bucket;
    int64_t used_ms;               /* armed, streamed (bc_tap_touch) or asked (mono) */
    bc_tap_keys_t keys;
    struct tap *next;              /* the bucket's next tap */
} tap_t;

struct bc_tap_set {
    bc_cache_t *cache;
    size_t max_bytes;
    uint32_t max_taps;
    uint32_t idle_ms;
    uint32_t nbuckets;

    /* LOCKING RULE: mu guards everything below.  Taken inside a shard lock
     * by tap_hook (shard lock -> mu), so nothing here calls into the cache
     * with mu held except bc_cache_tap_bucket, which locks nothing. */
    pthread_mutex_t mu;
    tap_t **by_bucket;             /* nbuckets lists, newest first; NULL: no tap */
    uint32_t active;
    uint64_t nkeys;                /* keys held by all taps (stats without a scan) */
    uint64_t next_id;              /* random base: ids never repeat across restarts */
    uint64_t started, overflowed;
    uint64_t taken;                /* bc_tap_take calls that moved a set out */
};

/* ---- key sets ---- */

static uint32_t
keys_hash(const char *key, size_t nkey)
{
    return bc_hash_key(key, nkey);
}

/* The index slot of key: its entry's slot, or the empty slot where it
 * would go.  mask must be non-zero. */
static uint32_t
keys_slot(const bc_tap_keys_t *k, const char *key, size_t nkey)
{
    uint32_t i = keys_hash(key, nkey) & k->mask;
    for (;;) {
        uint32_t off = k->index[i];
        if (off == 0) return i;
        const char *e = k->arena + off - 1;
        if ((unsigned char)e[0] == nkey && memcmp(e + 1, key, nkey) == 0) return i;
        i = (i + 1) & k->mask;
    }
}

static bc_status_t
keys_grow_index(bc_tap_keys_t *k)
{
    uint32_t slots = k->mask ? (k->mask + 1) * 2 : KEYS_MIN_SLOTS;
    uint32_t *index = calloc(slots, sizeof(*index));
    if (index == NULL) return BC_ENOMEM;
    uint32_t *old = k->index;
    uint32_t old_slots = k->mask ? k->mask + 1 : 0;
    k->index = index;
    k->mask = slots - 1;
    for (uint32_t i = 0; i < old_slots; i++) {
        if (old[i] == 0) continue;
        const char *e = k->arena + old[i] - 1;
        k->index[keys_slot(k, e + 1, (unsigned char)e[0])] = old[i];
    }
    free(old);
    return BC_OK;
}

bc_status_t
bc_tap_keys_add(bc_tap_keys_t *k, const char *key, size_t nkey)
{
    if (nkey == 0 || nkey > 255) return BC_EINVAL;
    if (k->mask == 0 || (k->count + 1) * 4 > (k->mask + 1) * 3) {
        bc_status_t st = keys_grow_index(k);
        if (st != BC_OK) return st;
    }
    uint32_t slot = keys_slot(k, key, nkey);
    if (k->index[slot] != 0) return BC_OK;
    size_t need = nkey + 1;
    if (k->len + need >= UINT32_MAX) return BC_ETOOLARGE;
    if (k->len + need > k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 4096;
        while (cap < k->len + need) cap *= 2;
        char *arena = realloc(k->arena, cap);
        if (arena == NULL) return BC_ENOMEM;
        k->arena = arena;
        k->cap = cap;
    }
    char *e = k->arena + k->len;
    e[0] = (char)nkey;
    memcpy(e + 1, key, nkey);
    k->index[slot] = (uint32_t)k->len + 1;
    k->len += need;
    k->count++;
    return BC_OK;
}

bool
bc_tap_keys_has(const bc_tap_keys_t *k, const char *key, size_t nkey)
{
    if (k->mask == 0 || nkey == 0 || nkey > 255) return false;
    return k->index[keys_slot(k, key, nkey)] != 0;
}

void
bc_tap_keys_foreach(const bc_tap_keys_t *k, void (*fn)(const char *key, size_t nkey, void *ctx),
                    void *ctx)
{
    for (size_t off = 0; off < k->len;) {
        size_t nkey = (unsigned char)k->arena[off];
        fn(k->arena + off + 1, nkey, ctx);
        off += nkey + 1;
    }
}

size_t
bc_tap_keys_bytes(const bc_tap_keys_t *k)
{
    return k->cap + (k->mask ? (size_t)(k->mask + 1) * sizeof(uint32_t) : 0);
}

void
bc_tap_keys_free(bc_tap_keys_t *k)
{
    free(k->arena);
    free(k->index);
    memset(k, 0, sizeof(*k));
}

/* A copy of k. */
static bc_status_t
keys_copy(const bc_tap_keys_t *k, bc_tap_keys_t *out)
{
    memset(out, 0, sizeof(*out));
    if (k->count == 0) return BC_OK;
    out->arena = malloc(k->len);
    out->index = malloc((size_t)(k->mask + 1) * sizeof(uint32_t));
    if (out->arena == NULL || out->index == NULL) {
        bc_tap_keys_free(out);
        return BC_ENOMEM;
    }
    memcpy(out->arena, k->arena, k->len);
    memcpy(out->index, k->index, (size_t)(k->mask + 1) * sizeof(uint32_t));
    out->len = out->cap = k->len;
    out->mask = k->mask;
    out->count = k->count;
    return BC_OK;
}

/* ---- taps ---- */

/* Ends tap t (mu held); the bucket stops reporting changes with its last
 * tap. */
static void
do_tap_end(bc_tap_set_t *set, tap_t *t)
{
    tap_t **link = &set->by_bucket[t->bucket];
    while (*link != t) link = &(*link)->next;
    *link = t->next;
    if (set->by_bucket[t->bucket] == NULL) bc_cache_tap_bucket(set->cache, t->bucket, false);
    set->active--;
    set->nkeys -= t->keys.count;
    bc_tap_keys_free(&t->keys);
    free(t);
}

/* Ends every tap of bucket (mu held). */
static void
do_bucket_end(bc_tap_set_t *set, uint32_t bucket)
{
    while (set->by_bucket[bucket] != NULL) do_tap_end(set, set->by_bucket[bucket]);
}

/* Tap `id` of bucket, or NULL (mu held). */
static tap_t *
do_tap_find(const bc_tap_set_t *set, uint32_t bucket, uint64_t id)
{
    tap_t *t = set->by_bucket[bucket];
    while (t != NULL && t->id != id) t = t->next;
    return t;
}

/* Records one change (cache tap hook: shard lock held, see LOCKING RULE). */
static void
tap_hook(void *ctx, uint32_t bucket, const bc_cache_event_t *ev)
{
    bc_tap_set_t *set = ctx;
    pthread_mutex_lock(&set->mu);
    if (ev->type == BC_CACHE_EV_FLUSH) {
        /* Every key changes at once: no tap can describe that as keys. */
        for (uint32_t b = 0; b < set->nbuckets && set->active > 0; b++) do_bucket_end(set, b);
        pthread_mutex_unlock(&set->mu);
        return;
    }
    if (bucket >= set->nbuckets) {
        pthread_mutex_unlock(&set->mu);
        return;
    }
    int64_t now = bc_time_mono_coarse_ms();
    for (tap_t *t = set->by_bucket[bucket], *next; t != NULL; t = next) {
        next = t->next;
        bc_status_t st = BC_OK;
        uint32_t before = t->keys.count;
        switch (ev->type) {
        case BC_CACHE_EV_STORE:
        case BC_CACHE_EV_TOUCH:
            st = bc_tap_keys_add(&t->keys, bc_item_key(ev->item), bc_item_nkey(ev->item));
            break;
        case BC_CACHE_EV_DELETE:
            st = bc_tap_keys_add(&t->keys, ev->key, ev->nkey);
            break;
        default:   /* DROP: the bucket is gone here; a delta of it means nothing */
            st = BC_ENOTFOUND;
            break;
        }
        set->nkeys += t->keys.count - before;
        if (st == BC_OK && bc_tap_keys_bytes(&t->keys) > set->max_bytes) st = BC_ETOOLARGE;
        if (st == BC_OK && now - t->used_ms > (int64_t)set->idle_ms) st = BC_ETIMEOUT;
        if (st != BC_OK) {
            if (st == BC_ETOOLARGE || st == BC_ENOMEM) set->overflowed++;
            do_tap_end(set, t);
        }
    }
    pthread_mutex_unlock(&set->mu);
}

bc_status_t
bc_tap_set_create(const bc_tap_config_t *config, bc_tap_set_t **out)
{
    *out = NULL;
    if (config == NULL || config->cache == NULL) return BC_EINVAL;
    bc_tap_set_t *set = calloc(1, sizeof(*set));
    if (set == NULL) return BC_ENOMEM;
    set->cache = config->cache;
    set->max_bytes = config->max_bytes ? config->max_bytes : TAP_DEFAULT_MAX_BYTES;
    set->max_taps = config->max_taps ? config->max_taps : TAP_DEFAULT_MAX_TAPS;
    set->idle_ms = config->idle_ms ? config->idle_ms : TAP_DEFAULT_IDLE_MS;
    set->nbuckets = bc_cache_nbuckets(config->cache);
    set->by_bucket = calloc(set->nbuckets, sizeof(*set->by_bucket));
    if (set->by_bucket == NULL) {
        free(set);
        return BC_ENOMEM;
    }
    if (getrandom(&set->next_id, sizeof(set->next_id), 0) != (ssize_t)sizeof(set->next_id)) {
        set->next_id = (uint64_t)bc_time_real_ms() << 20 ^ (uint64_t)bc_time_mono_ns();
    }
    set->next_id >>= 1;   /* room to count up; JSON-safe is not needed (a header) */
    pthread_mutex_init(&set->mu, NULL);
    bc_cache_set_tap(set->cache, tap_hook, set);
    *out = set;
    return BC_OK;
}

void
bc_tap_set_destroy(bc_tap_set_t *set)
{
    if (set == NULL) return;
    bc_cache_set_tap(set->cache, NULL, NULL);
    for (uint32_t b = 0; b < set->nbuckets; b++) do_bucket_end(set, b);
    pthread_mutex_destroy(&set->mu);
    free(set->by_bucket);
    free(set);
}

bc_status_t
bc_tap_start(bc_tap_set_t *set, uint32_t bucket, uint64_t *id)
{
    if (bucket >= set->nbuckets) return BC_EINVAL;
    tap_t *t = calloc(1, sizeof(*t));
    if (t == NULL) return BC_ENOMEM;
    pthread_mutex_lock(&set->mu);
    int64_t now = bc_time_mono_coarse_ms();
    /* Make room in the bucket: its least recently used tap goes. */
    uint32_t here = 0;
    tap_t *lru = NULL;
    for (tap_t *o = set->by_bucket[bucket]; o != NULL; o = o->next, here++) {
        if (lru == NULL || o->used_ms <= lru->used_ms) lru = o;
    }
    if (here >= TAP_PER_BUCKET) do_tap_end(set, lru);
    /* Make room in the set: idle taps first, then the least recently used. */
    while (set->active >= set->max_taps) {
        lru = NULL;
        for (uint32_t b = 0; b < set->nbuckets; b++) {
            for (tap_t *o = set->by_bucket[b]; o != NULL; o = o->next) {
                if (lru == NULL || o->used_ms < lru->used_ms) lru = o;
            }
            if (lru != NULL && now - lru->used_ms > (int64_t)set->idle_ms) break;
        }
        do_tap_end(set, lru);
    }
    t->id = ++set->next_id;
    t->bucket = bucket;
    t->used_ms = now;
    t->next = set->by_bucket[bucket];
    set->by_bucket[bucket] = t;
    set->active++;
    set->started++;
    *id = t->id;
    /* After this store, every change whose shard critical section starts
     * later is reported (cache.h, bc_cache_set_tap). */
    bc_cache_tap_bucket(set->cache, bucket, true);
    pthread_mutex_unlock(&set->mu);
    return BC_OK;
}

/*
 * Hands tap `id` of bucket's keys to *out (mu taken here): copied, or with
 * take moved out (the tap goes on recording into an empty set: a change
 * from now on is the next take's, or the final copy's).  The tap counts
 * as used.  Errors as bc_tap_changes.
 */
static bc_status_t
tap_keys_out(bc_tap_set_t *set, uint32_t bucket, uint64_t id, bool take, bc_tap_keys_t *out,
             char *why, size_t whylen)
{
    memset(out, 0, sizeof(*out));
    if (bucket >= set->nbuckets) return bc_fail(why, whylen, BC_ENOTFOUND, "no such bucket");
    pthread_mutex_lock(&set->mu);
    tap_t *t = do_tap_find(set, bucket, id);
    bc_status_t st = BC_OK;
    if (t == NULL) {
        st = bc_fail(why, whylen, BC_ENOTFOUND, "no change tracker %llu on bucket %u (it "
                     "overflowed, a flush or drop ended it, it expired or was replaced, or the "
                     "node restarted)", (unsigned long long)id, bucket);
    } else if (bc_time_mono_coarse_ms() - t->used_ms > (int64_t)set->idle_ms) {
        do_tap_end(set, t);
        st = bc_fail(why, whylen, BC_ENOTFOUND, "the change tracker of bucket %u expired",
                     bucket);
    } else if (take) {
        *out = t->keys;
        memset(&t->keys, 0, sizeof(t->keys));
        set->nkeys -= out->count;
        set->taken++;
    } else {
        st = keys_copy(&t->keys, out);
    }
    if (st == BC_OK) t->used_ms = bc_time_mono_coarse_ms();
    pthread_mutex_unlock(&set->mu);
    return st;
}

bc_status_t
bc_tap_changes(bc_tap_set_t *set, uint32_t bucket, uint64_t id, bc_tap_keys_t *out, char *why,
               size_t whylen)
{
    return tap_keys_out(set, bucket, id, false, out, why, whylen);
}

bc_status_t
bc_tap_take(bc_tap_set_t *set, uint32_t bucket, uint64_t id, bc_tap_keys_t *out, char *why,
            size_t whylen)
{
    return tap_keys_out(set, bucket, id, true, out, why, whylen);
}

void
bc_tap_touch(bc_tap_set_t *set, uint32_t bucket, uint64_t id)
{
    if (bucket >= set->nbuckets) return;
    pthread_mutex_lock(&set->mu);
    tap_t *t = do_tap_find(set, bucket, id);
    if (t != NULL) t->used_ms = bc_time_mono_coarse_ms();
    pthread_mutex_unlock(&set->mu);
}

void
bc_tap_stop(bc_tap_set_t *set, uint32_t bucket, uint64_t id)
{
    if (bucket >= set->nbuckets) return;
    pthread_mutex_lock(&set->mu);
    tap_t *t = do_tap_find(set, bucket, id);
    if (t != NULL) do_tap_end(set, t);
    pthread_mutex_unlock(&set->mu);
}

void
bc_tap_get_stats(bc_tap_set_t *set, bc_tap_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (set == NULL) return;
    pthread_mutex_lock(&set->mu);
    out->active = set->active;
    out->started = set->started;
    out->overflowed = set->overflowed;
    out->taken = set->taken;
    out->keys = set->nkeys;
    pthread_mutex_unlock(&set->mu);
}
