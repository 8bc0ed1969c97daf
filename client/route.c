/*
 * route.c -- see route.h for the scheme.  Memory ordering: a publisher
 * stores the snapshot into its slot, then exchanges the word (acq_rel); a
 * reader's fetch_add (acq_rel) on the word therefore sees the slot store
 * and the snapshot's contents.  A slot is cleared only when its snapshot is
 * freed, which cannot happen while a reader holds a reference it obtained
 * through the word, so a reader always finds its own snapshot in the slot.
 */
#include "route.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_log.h"
#include "bc_time.h"

#define WORD_COUNT_BITS 48
#define WORD_COUNT_MASK ((UINT64_C(1) << WORD_COUNT_BITS) - 1)
#define WORD_NONE       UINT64_C(0xffff)
#define WORD_REPUBLISH  (UINT64_C(1) << 46)

bc__route_snapshot_t *
bc__route_snapshot_new(uint32_t nbuckets)
{
    if (nbuckets == 0) return NULL;
    bc__route_snapshot_t *s = calloc(1, sizeof(*s));
    if (s == NULL) return NULL;
    atomic_init(&s->pending, 0);
    s->slot = -1;
    s->nbuckets = nbuckets;
    s->owner = calloc(nbuckets, sizeof(*s->owner));
    s->readonly = calloc(nbuckets, 1);
    s->node = calloc(nbuckets, sizeof(*s->node));
    if (s->owner == NULL || s->readonly == NULL || s->node == NULL) {
        bc__route_snapshot_discard(s);
        return NULL;
    }
    return s;
}

bc_status_t
bc__route_snapshot_set_node(bc__route_snapshot_t *s, uint32_t b, bc__pool_node_t *node)
{
    if (node != NULL) {
        size_t i;
        for (i = 0; i < s->nnodes && s->nodes[i] != node; i++) {
        }
        if (i == s->nnodes) {
            bc__pool_node_t **grown = realloc(s->nodes, (s->nnodes + 1) * sizeof(*grown));
            if (grown == NULL) return BC_ENOMEM;
            s->nodes = grown;
            s->nodes[s->nnodes++] = node;
            bc__pool_node_ref(node);
        }
    }
    s->node[b] = node;
    return BC_OK;
}

void
bc__route_snapshot_discard(bc__route_snapshot_t *s)
{
    if (s == NULL) return;
    for (size_t i = 0; i < s->nnodes; i++) bc__pool_node_unref(s->nodes[i]);
    free(s->nodes);
    free(s->owner);
    free(s->readonly);
    free(s->node);
    free(s);
}

bc__route_snapshot_t *
bc__route_snapshot_clone(const bc__route_snapshot_t *src)
{
    bc__route_snapshot_t *s = bc__route_snapshot_new(src->nbuckets);
    if (s == NULL) return NULL;
    s->epoch = src->epoch;
    memcpy(s->owner, src->owner, src->nbuckets * sizeof(*s->owner));
    memcpy(s->readonly, src->readonly, src->nbuckets);
    memcpy(s->node, src->node, src->nbuckets * sizeof(*s->node));
    if (src->nnodes > 0) {
        s->nodes = malloc(src->nnodes * sizeof(*s->nodes));
        if (s->nodes == NULL) {
            memset(s->node, 0, src->nbuckets * sizeof(*s->node));
            bc__route_snapshot_discard(s);
            return NULL;
        }
        memcpy(s->nodes, src->nodes, src->nnodes * sizeof(*s->nodes));
        s->nnodes = src->nnodes;
        for (size_t i = 0; i < s->nnodes; i++) bc__pool_node_ref(s->nodes[i]);
    }
    return s;
}

bool
bc__route_snapshot_same(const bc__route_snapshot_t *a, const bc__route_snapshot_t *b)
{
    return a != NULL && b != NULL && a->epoch == b->epoch && a->nbuckets == b->nbuckets &&
           memcmp(a->owner, b->owner, a->nbuckets * sizeof(*a->owner)) == 0 &&
           memcmp(a->readonly, b->readonly, a->nbuckets) == 0 &&
           memcmp(a->node, b->node, a->nbuckets * sizeof(*a->node)) == 0;
}

/* Frees a published snapshot whose references are all released. */
static void
snapshot_free(bc__route_snapshot_t *s)
{
    if (s->router != NULL && s->slot >= 0) {
        atomic_store_explicit(&s->router->slots[s->slot], NULL, memory_order_release);
    }
    bc__route_snapshot_discard(s);
}

void
bc__route_init(bc__router_t *r)
{
    atomic_init(&r->word, WORD_NONE << WORD_COUNT_BITS);
    for (int i = 0; i < BC__ROUTER_SLOTS; i++) atomic_init(&r->slots[i], NULL);
    atomic_init(&r->published, 0);
    atomic_init(&r->waiters, 0);
    pthread_mutex_init(&r->wait_mu, NULL);
    bc_time_cond_init(&r->wait_cv);
}

bool
bc__route_wait(bc__router_t *r, uint64_t seen, uint64_t until_ns)
{
    /* Dekker with bc__route_publish: we announce ourselves, then look at
     * published; it bumps published, then looks for waiters (both seq_cst),
     * so a publish is never missed. */
    atomic_fetch_add(&r->waiters, 1);
    struct timespec ts = {.tv_sec = (time_t)(until_ns / 1000000000ull),
                          .tv_nsec = (long)(until_ns % 1000000000ull)};
    pthread_mutex_lock(&r->wait_mu);
    while (atomic_load(&r->published) == seen &&
           pthread_cond_timedwait(&r->wait_cv, &r->wait_mu, &ts) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&r->wait_mu);
    atomic_fetch_sub(&r->waiters, 1);
    return atomic_load(&r->published) != seen;
}

/* Hands the old word's acquisitions over to its snapshot. */
static void
router_retire(bc__router_t *r, uint64_t old)
{
    uint64_t idx = old >> WORD_COUNT_BITS;
    if (idx == WORD_NONE) return;
    bc__route_snapshot_t *s = atomic_load_explicit(&r->slots[idx], memory_order_acquire);
    int_fast64_t handed = (int_fast64_t)(old & WORD_COUNT_MASK);
    if (atomic_fetch_add_explicit(&s->pending, handed, memory_order_acq_rel) + handed == 0) {
        snapshot_free(s);
    }
}

void
bc__route_publish(bc__router_t *r, bc__route_snapshot_t *s)
{
    s->router = r;
    atomic_store_explicit(&s->pending, 0, memory_order_relaxed);
    for (unsigned spins = 0;; spins++) {
        for (int i = 0; i < BC__ROUTER_SLOTS; i++) {
            bc__route_snapshot_t *expect = NULL;
            if (atomic_compare_exchange_strong_explicit(&r->slots[i], &expect, s,
                                                        memory_order_acq_rel,
                                                        memory_order_relaxed)) {
                s->slot = i;
                uint64_t old = atomic_exchange_explicit(
                    &r->word, (uint64_t)i << WORD_COUNT_BITS, memory_order_acq_rel);
                atomic_fetch_add(&r->published, 1);
                router_retire(r, old);
                if (atomic_load(&r->waiters) > 0) {
                    pthread_mutex_lock(&r->wait_mu);
                    pthread_cond_broadcast(&r->wait_cv);
                    pthread_mutex_unlock(&r->wait_mu);
                }
                return;
            }
        }
        if (spins % 1000 == 0) log_warn("client: all routing slots busy; waiting for readers");
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
}

bc__route_snapshot_t *
bc__route_acquire(bc__router_t *r)
{
    uint64_t w = atomic_fetch_add_explicit(&r->word, 1, memory_order_acq_rel);
    uint64_t idx = w >> WORD_COUNT_BITS;
    if (idx == WORD_NONE) return NULL;
    return atomic_load_explicit(&r->slots[idx], memory_order_acquire);
}

void
bc__route_release(bc__route_snapshot_t *s)
{
    if (s == NULL) return;
    if (atomic_fetch_sub_explicit(&s->pending, 1, memory_order_acq_rel) == 1) snapshot_free(s);
}

void
bc__route_maintain(bc__router_t *r)
{
    uint64_t w = atomic_load_explicit(&r->word, memory_order_relaxed);
    if ((w >> WORD_COUNT_BITS) == WORD_NONE || (w & WORD_COUNT_MASK) < WORD_REPUBLISH) return;
    bc__route_snapshot_t *cur = bc__route_acquire(r);
    bc__route_snapshot_t *copy = cur != NULL ? bc__route_snapshot_clone(cur) : NULL;
    bc__route_release(cur);
    if (copy != NULL) bc__route_publish(r, copy);
}

void
bc__route_destroy(bc__router_t *r)
{
    uint64_t old = atomic_exchange_explicit(&r->word, WORD_NONE << WORD_COUNT_BITS,
                                            memory_order_acq_rel);
    router_retire(r, old);
    pthread_cond_destroy(&r->wait_cv);
    pthread_mutex_destroy(&r->wait_mu);
}
