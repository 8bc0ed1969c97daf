/*
 * bc_topk.c -- see bc_topk.h: a space-saving sketch with exponential decay.
 */
#include "bc_topk.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bc_hash.h"

#define TOPK_EMPTY UINT32_MAX

struct bc_topk {
    uint32_t capacity;
    uint32_t size;               /* entries in use: 0..size-1 */
    double half_life_s;
    double last_decay_s;         /* clock of the last decay; < 0 before the first add */
    double total;
    bc_topk_entry_t *entries;
    /* Dense copies of what the heap and the table compare, so they touch
     * a few cache lines instead of one 270-byte entry per step. */
    double *count;               /* entries[e].count lives here while monitored */
    uint32_t *hash;              /* the key's hash */
    uint32_t *heap;              /* entry indices, min-heap on count */
    uint32_t *heap_pos;          /* entry index -> its place in heap */
    uint32_t *table;             /* open addressing: entry index or TOPK_EMPTY */
    uint32_t table_mask;
};

static uint32_t
topk_hash(const char *key, size_t nkey)
{
    return bc_hash_key(key, nkey);
}

bc_topk_t *
bc_topk_create(uint32_t capacity, double half_life_s)
{
    if (capacity == 0 || capacity > BC_TOPK_MAX_CAPACITY || !(half_life_s >= 0)) return NULL;
    bc_topk_t *t = calloc(1, sizeof(*t));
    if (t == NULL) return NULL;
    uint32_t slots = 4;
    while (slots < capacity * 2u) slots *= 2;
    t->capacity = capacity;
    t->half_life_s = half_life_s;
    t->last_decay_s = -1;
    t->entries = calloc(capacity, sizeof(*t->entries));
    t->count = calloc(capacity, sizeof(*t->count));
    t->hash = calloc(capacity, sizeof(*t->hash));
    t->heap = calloc(capacity, sizeof(*t->heap));
    t->heap_pos = calloc(capacity, sizeof(*t->heap_pos));
    t->table = malloc(slots * sizeof(*t->table));
    if (t->entries == NULL || t->heap == NULL || t->heap_pos == NULL || t->table == NULL ||
        t->count == NULL || t->hash == NULL) {
        bc_topk_destroy(t);
        return NULL;
    }
    for (uint32_t i = 0; i < slots; i++) t->table[i] = TOPK_EMPTY;
    t->table_mask = slots - 1;
    return t;
}

void
bc_topk_destroy(bc_topk_t *t)
{
    if (t == NULL) return;
    free(t->entries);
    free(t->count);
    free(t->hash);
    free(t->heap);
    free(t->heap_pos);
    free(t->table);
    free(t);
}

/* ---- hash table ---- */

static uint32_t *
topk_slot(bc_topk_t *t, const char *key, size_t nkey, uint32_t h)
{
    uint32_t i = h & t->table_mask;
    for (;;) {
        uint32_t e = t->table[i];
        if (e == TOPK_EMPTY) return &t->table[i];
        if (t->hash[e] == h) {
            const bc_topk_entry_t *en = &t->entries[e];
            if (en->nkey == nkey && memcmp(en->key, key, nkey) == 0) return &t->table[i];
        }
        i = (i + 1) & t->table_mask;
    }
}

/* Removes entry e from the table (backward-shift deletion keeps every
 * probe chain unbroken without tombstones). */
static void
topk_table_remove(bc_topk_t *t, uint32_t e)
{
    uint32_t i = t->hash[e] & t->table_mask;
    while (t->table[i] != e) i = (i + 1) & t->table_mask;
    uint32_t hole = i;
    for (;;) {
        i = (i + 1) & t->table_mask;
        uint32_t x = t->table[i];
        if (x == TOPK_EMPTY) break;
        uint32_t home = t->hash[x] & t->table_mask;
        /* x may fill the hole when its home is not in (hole, i]. */
        bool between = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!between) {
            t->table[hole] = x;
            hole = i;
        }
    }
    t->table[hole] = TOPK_EMPTY;
}

/* ---- min-heap on count ---- */

static void
topk_heap_set(bc_topk_t *t, uint32_t pos, uint32_t e)
{
    t->heap[pos] = e;
    t->heap_pos[e] = pos;
}

static void
topk_sift_up(bc_topk_t *t, uint32_t pos)
{
    uint32_t e = t->heap[pos];
    double c = t->count[e];
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (t->count[t->heap[parent]] <= c) break;
        topk_heap_set(t, pos, t->heap[parent]);
        pos = parent;
    }
    topk_heap_set(t, pos, e);
}

static void
topk_sift_down(bc_topk_t *t, uint32_t pos)
{
    uint32_t e = t->heap[pos];
    double c = t->count[e];
    for (;;) {
        uint32_t l = 2 * pos + 1, r = l + 1, m = l;
        if (l >= t->size) break;
        if (r < t->size && t->count[t->heap[r]] < t->count[t->heap[l]]) m = r;
        if (t->count[t->heap[m]] >= c) break;
        topk_heap_set(t, pos, t->heap[m]);
        pos = m;
    }
    topk_heap_set(t, pos, e);
}

/* ---- decay ---- */

static void
topk_decay(bc_topk_t *t, double now_s, double min_step_s)
{
    if (t->last_decay_s < 0) {
        t->last_decay_s = now_s;
        return;
    }
    double dt = now_s - t->last_decay_s;
    if (t->half_life_s <= 0 || !(dt >= min_step_s) || dt <= 0) return;
    double f = exp2(-dt / t->half_life_s);
    for (uint32_t i = 0; i < t->size; i++) {
        t->count[i] *= f;
        t->entries[i].error *= f;
    }
    t->total *= f;
    t->last_decay_s = now_s;
}

void
bc_topk_add(bc_topk_t *t, const char *key, size_t nkey, uint32_t tag, double weight,
            double now_s)
{
    if (t == NULL || key == NULL || nkey == 0 || nkey > BC_TOPK_KEY_MAX || !(weight > 0)) return;
    topk_decay(t, now_s, 1.0);
    t->total += weight;
    uint32_t h = topk_hash(key, nkey);
    uint32_t *slot = topk_slot(t, key, nkey, h);
    if (*slot != TOPK_EMPTY) {
        t->count[*slot] += weight;
        t->entries[*slot].tag = tag;
        topk_sift_down(t, t->heap_pos[*slot]);
        return;
    }
    uint32_t e;
    double base = 0;
    if (t->size < t->capacity) {
        e = t->size++;
        topk_heap_set(t, t->size - 1, e);
    } else {
        /* Evict the lightest: the newcomer inherits its count as error. */
        e = t->heap[0];
        base = t->count[e];
        topk_table_remove(t, e);
        slot = topk_slot(t, key, nkey, h);
    }
    bc_topk_entry_t *en = &t->entries[e];
    memcpy(en->key, key, nkey);
    en->nkey = (uint8_t)nkey;
    en->tag = tag;
    t->count[e] = base + weight;
    t->hash[e] = h;
    en->error = base;
    *slot = e;
    if (t->heap_pos[e] == 0) topk_sift_down(t, 0);   /* replaced the root: it grew */
    else topk_sift_up(t, t->heap_pos[e]);             /* appended at the bottom */
}

static int
topk_cmp_desc(const void *a, const void *b)
{
    const bc_topk_entry_t *x = a, *y = b;
    if (x->count > y->count) return -1;
    if (x->count < y->count) return 1;
    if (x->nkey != y->nkey) return x->nkey < y->nkey ? -1 : 1;
    return memcmp(x->key, y->key, x->nkey);
}

size_t
bc_topk_list(bc_topk_t *t, double now_s, bc_topk_entry_t *out, size_t max)
{
    if (t == NULL || out == NULL || max == 0) return 0;
    topk_decay(t, now_s, 0);
    for (uint32_t i = 0; i < t->size; i++) t->entries[i].count = t->count[i];
    if (t->size <= max) {
        memcpy(out, t->entries, t->size * sizeof(*out));
        qsort(out, t->size, sizeof(*out), topk_cmp_desc);
        return t->size;
    }
    /* More monitored than asked for: sort a copy, keep the heaviest. */
    bc_topk_entry_t *all = malloc(t->size * sizeof(*all));
    if (all == NULL) return 0;
    memcpy(all, t->entries, t->size * sizeof(*all));
    qsort(all, t->size, sizeof(*all), topk_cmp_desc);
    memcpy(out, all, max * sizeof(*out));
    free(all);
    return max;
}

double
bc_topk_total(const bc_topk_t *t)
{
    return t != NULL ? t->total : 0;
}

uint32_t
bc_topk_size(const bc_topk_t *t)
{
    return t != NULL ? t->size : 0;
}

uint32_t
bc_topk_capacity(const bc_topk_t *t)
{
    return t != NULL ? t->capacity : 0;
}

double
bc_topk_half_life(const bc_topk_t *t)
{
    return t != NULL ? t->half_life_s : 0;
}

size_t
bc_topk_memory(const bc_topk_t *t)
{
    if (t == NULL) return 0;
    return sizeof(*t) + t->capacity * (sizeof(bc_topk_entry_t) + sizeof(double) +
                                       3 * sizeof(uint32_t)) +
           (size_t)(t->table_mask + 1) * sizeof(uint32_t);
}
