/*
 * bc_planner.c -- see bc_planner.h for the behaviour.  Two passes over the
 * buckets plus a sort of the (few) groups: O(N + G log G) time, O(N + G)
 * scratch memory.
 */
#include "bc_planner.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct planner_slot {
    uint32_t gid;
    uint64_t memory;
    uint32_t share;
    uint64_t remainder;        /* numerator remainder of N * mem / total */
    uint32_t count;            /* buckets it owns in m */
    size_t input_index;        /* position in the caller's groups[] */
} planner_slot_t;

static int
slot_cmp_gid(const void *a, const void *b)
{
    const planner_slot_t *x = a, *y = b;
    return (x->gid > y->gid) - (x->gid < y->gid);
}

/* Largest remainder first, then lower gid. */
static int
slot_cmp_remainder(const void *a, const void *b)
{
    const planner_slot_t *x = *(planner_slot_t *const *)a;
    const planner_slot_t *y = *(planner_slot_t *const *)b;
    if (x->remainder != y->remainder) return x->remainder < y->remainder ? 1 : -1;
    return (x->gid > y->gid) - (x->gid < y->gid);
}

static planner_slot_t *
slot_find(planner_slot_t *slots, size_t n, uint32_t gid)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (slots[mid].gid == gid) return &slots[mid];
        if (slots[mid].gid < gid) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

static bc_status_t
planner_compute_shares(planner_slot_t *slots, size_t n, uint32_t nbuckets)
{
    uint64_t total = 0;
    bool all_zero = true;
    for (size_t i = 0; i < n; i++) {
        if (slots[i].memory != 0) all_zero = false;
    }
    for (size_t i = 0; i < n; i++) {
        if (all_zero) slots[i].memory = 1;
        if (slots[i].memory > UINT64_MAX / nbuckets) return BC_EINVAL;
        if (total > UINT64_MAX - slots[i].memory) return BC_EINVAL;
        total += slots[i].memory;
    }
    if (total > UINT64_MAX / nbuckets) return BC_EINVAL;

    uint64_t assigned = 0;
    planner_slot_t **order = malloc(n * sizeof(*order));
    if (order == NULL) return BC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        uint64_t num = (uint64_t)nbuckets * slots[i].memory;
        slots[i].share = (uint32_t)(num / total);
        slots[i].remainder = num % total;
        assigned += slots[i].share;
        order[i] = &slots[i];
    }
    qsort(order, n, sizeof(*order), slot_cmp_remainder);
    for (size_t i = 0; assigned < nbuckets; i++, assigned++) {
        order[i % n]->share++;
    }
    free(order);
    return BC_OK;
}

bc_status_t
bc_planner_plan(const uint32_t *m, uint32_t nbuckets, const bc_planner_group_t *groups,
                size_t ngroups, uint32_t *d, uint32_t *shares_out)
{
    if (m == NULL || d == NULL || nbuckets == 0 || (ngroups > 0 && groups == NULL)) {
        return BC_EINVAL;
    }
    if (ngroups == 0) {
        memset(d, 0, nbuckets * sizeof(*d));
        return BC_OK;
    }

    planner_slot_t *slots = calloc(ngroups, sizeof(*slots));
    uint32_t *pool = malloc(nbuckets * sizeof(*pool));
    bc_status_t st = BC_OK;
    if (slots == NULL || pool == NULL) {
        st = BC_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < ngroups; i++) {
        if (groups[i].gid == 0) { st = BC_EINVAL; goto out; }
        slots[i].gid = groups[i].gid;
        slots[i].memory = groups[i].memory;
        slots[i].input_index = i;
    }
    qsort(slots, ngroups, sizeof(*slots), slot_cmp_gid);
    for (size_t i = 1; i < ngroups; i++) {
        if (slots[i].gid == slots[i - 1].gid) { st = BC_EINVAL; goto out; }
    }
    st = planner_compute_shares(slots, ngroups, nbuckets);
    if (st != BC_OK) goto out;

    /* Keep pass: orphans go to the pool, live owners keep their buckets. */
    size_t npool = 0;
    for (uint32_t b = 0; b < nbuckets; b++) {
        planner_slot_t *s = m[b] == 0 ? NULL : slot_find(slots, ngroups, m[b]);
        if (s == NULL) {
            d[b] = 0;
            pool[npool++] = b;
        } else {
            d[b] = m[b];
            s->count++;
        }
    }

    /* Surplus pass: each group over its share, in gid order, releases its
     * highest-numbered buckets. */
    for (size_t i = 0; i < ngroups; i++) {
        planner_slot_t *s = &slots[i];
        uint32_t surplus = s->count > s->share ? s->count - s->share : 0;
        for (uint32_t b = nbuckets; b-- > 0 && surplus > 0;) {
            if (d[b] == s->gid) {
                d[b] = 0;
                pool[npool++] = b;
                surplus--;
                s->count--;
            }
        }
    }

    /* Assign pass: deal the pool to groups under their share, gid order. */
    size_t next = 0;
    for (size_t i = 0; i < ngroups && next < npool; i++) {
        planner_slot_t *s = &slots[i];
        while (s->count < s->share && next < npool) {
            d[pool[next++]] = s->gid;
            s->count++;
        }
    }

    if (shares_out != NULL) {
        for (size_t i = 0; i < ngroups; i++) shares_out[slots[i].input_index] = slots[i].share;
    }
out:
    free(slots);
    free(pool);
    return st;
}

uint32_t
bc_planner_count_moves(const uint32_t *m, const uint32_t *d, uint32_t nbuckets)
{
    uint32_t moves = 0;
    for (uint32_t b = 0; b < nbuckets; b++) {
        if (m[b] != 0 && m[b] != d[b]) moves++;
    }
    return moves;
}
