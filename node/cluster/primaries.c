/*
 * primaries.c -- every group's primary, for forwarding and for a backup
 * looking for its primary (cluster.h, "every group's primary").
 *
 * HOW
 *   The agent reads each groups/<gid>/primary record (cluster.c),
 *   resolves new addresses here (bc__node_primaries_resolve: in the agent
 *   thread, name resolution may block) and swaps in a new table with
 *   bc__node_primaries_publish, bumping prim_gen together with it under
 *   prim_mu.  Workers read the table through private copies
 *   (bc_node_cluster_primaries_sync): each compares prim_gen with its
 *   copy's generation without any lock and, only when they differ, copies
 *   the table (and the generation that goes with it) under prim_mu.
 */
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_config.h"
#include "bc_log.h"
#include "cluster/cluster_int.h"

void
bc_node_primaries_init(bc_node_primaries_t *view)
{
    memset(view, 0, sizeof(*view));
}

void
bc_node_primaries_free(bc_node_primaries_t *view)
{
    free(view->v);
    bc_node_primaries_init(view);
}

const bc_node_primary_t *
bc_node_primaries_find(const bc_node_primaries_t *view, uint32_t gid)
{
    uint32_t lo = 0, hi = view->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (view->v[mid].gid == gid) return &view->v[mid];
        if (view->v[mid].gid < gid) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* Copies src's entries into dst, growing it; false on out of memory. */
static bool
primaries_copy(bc_node_primaries_t *dst, const bc_node_primaries_t *src)
{
    if (dst->cap < src->count) {
        bc_node_primary_t *v = realloc(dst->v, src->count * sizeof(*v));
        if (v == NULL) return false;
        dst->v = v;
        dst->cap = src->count;
    }
    if (src->count > 0) memcpy(dst->v, src->v, src->count * sizeof(*dst->v));
    dst->count = src->count;
    return true;
}

bool
bc_node_cluster_primaries_sync(bc_node_cluster_t *cl, bc_node_primaries_t *view)
{
    if (cl == NULL) return false;
    uint64_t gen = atomic_load_explicit(&cl->prim_gen, memory_order_acquire);
    if (gen == view->gen) return false;
    pthread_mutex_lock(&cl->prim_mu);
    /* The table may be newer than gen by now: take the generation that
     * goes with what is copied (both change together, under the lock). */
    gen = atomic_load_explicit(&cl->prim_gen, memory_order_relaxed);
    bool ok = primaries_copy(view, &cl->prim);
    pthread_mutex_unlock(&cl->prim_mu);
    if (!ok) return false;
    view->gen = gen;
    return true;
}

/* Resolves "host:port" into e (agent thread only: may block on DNS).
 * A failure is logged as a warning when the address is new (`fresh`),
 * and at debug level on the retries every refresh makes. */
void
bc__node_primaries_resolve(bc_node_primary_t *e, bool fresh)
{
    bc_hostport_t hp;
    struct addrinfo hints, *res = NULL;
    char port[8];

    e->salen = 0;
    if (bc_parse_hostport(e->addr, 0, &hp) != BC_OK) {
        if (fresh) {
            log_warn("cluster: group %u advertises a malformed data address \"%s\"", e->gid,
                     e->addr);
        }
        return;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%u", (unsigned)hp.port);
    int rc = getaddrinfo(hp.host, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        bc_log(fresh ? BC_LOG_WARN : BC_LOG_DEBUG, "cluster: cannot resolve group %u's primary "
               "%s: %s", e->gid, e->addr, rc != 0 ? gai_strerror(rc) : "no address");
        if (res != NULL) freeaddrinfo(res);
        return;
    }
    if (res->ai_addrlen <= sizeof(e->sa)) {
        memcpy(&e->sa, res->ai_addr, res->ai_addrlen);
        e->salen = (socklen_t)res->ai_addrlen;
    }
    freeaddrinfo(res);
}

static bool
primary_same(const bc_node_primary_t *a, const bc_node_primary_t *b)
{
    return a->gid == b->gid && a->self == b->self && a->salen == b->salen &&
           strcmp(a->addr, b->addr) == 0 &&
           (a->salen == 0 || memcmp(&a->sa, &b->sa, a->salen) == 0);
}

/* Installs next as the table when it differs from the current one. */
void
bc__node_primaries_publish(bc_node_cluster_t *cl, bc_node_primaries_t *next)
{
    bool changed = next->count != cl->prim.count;
    for (uint32_t i = 0; !changed && i < next->count; i++) {
        changed = !primary_same(&next->v[i], &cl->prim.v[i]);
    }
    if (!changed) return;
    for (uint32_t i = 0; i < next->count; i++) {
        const bc_node_primary_t *e = &next->v[i];
        const bc_node_primary_t *old = bc_node_primaries_find(&cl->prim, e->gid);
        if (old == NULL || strcmp(old->addr, e->addr) != 0) {
            log_info("cluster: group %u's primary is at %s%s", e->gid, e->addr,
                     e->self ? " (this node)" : "");
        }
    }
    pthread_mutex_lock(&cl->prim_mu);
    bc_node_primaries_t old = cl->prim;
    cl->prim = *next;
    atomic_fetch_add_explicit(&cl->prim_gen, 1, memory_order_release);
    pthread_mutex_unlock(&cl->prim_mu);
    *next = old;                        /* the caller frees the old table */
}
