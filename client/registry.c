/*
 * registry.c -- see registry.h: the client's nodes by address, and turning
 * a table into the routing snapshot calls use.
 */
#include "registry.h"

#include <stdlib.h>
#include <string.h>

#include "bc_log.h"
#include "pool.h"
#include "route.h"

typedef struct gid_node {
    uint32_t gid;
    bc__pool_node_t *node;
} gid_node_t;

static int
gid_node_cmp(const void *a, const void *b)
{
    uint32_t x = ((const gid_node_t *)a)->gid, y = ((const gid_node_t *)b)->gid;
    return x < y ? -1 : x > y;
}

/* The registry's node for addr, created on first use.  build_mu held. */
static bc__pool_node_t *
registry_node_for(bc_client_t *c, const char *addr)
{
    for (size_t i = 0; i < c->nregistry; i++) {
        if (strcmp(c->registry[i]->addr, addr) == 0) return c->registry[i];
    }
    bc__pool_node_t **grown = realloc(c->registry, (c->nregistry + 1) * sizeof(*grown));
    if (grown == NULL) return NULL;
    c->registry = grown;
    bc__pool_node_t *node =
        bc__pool_node_new(addr, c->opts.max_conns_per_node, c->opts.max_value_bytes, &c->io,
                          c->tls);
    if (node == NULL) return NULL;
    c->registry[c->nregistry++] = node;
    return node;
}

/* Drops registry nodes the current snapshot s does not name.  build_mu held. */
static void
registry_prune(bc_client_t *c, const bc__route_snapshot_t *s)
{
    size_t kept = 0;
    for (size_t i = 0; i < c->nregistry; i++) {
        bool used = false;
        for (size_t j = 0; s != NULL && j < s->nnodes && !used; j++) {
            used = s->nodes[j] == c->registry[i];
        }
        if (used) c->registry[kept++] = c->registry[i];
        else bc__pool_node_unref(c->registry[i]);
    }
    c->nregistry = kept;
}

bc_status_t
bc__registry_install(bc_client_t *c, uint64_t epoch, const uint32_t *owner, const uint8_t *readonly,
                   size_t ngroups, const uint32_t *gids, const char *const *addrs)
{
    pthread_mutex_lock(&c->build_mu);
    bc_status_t st = BC_ENOMEM;
    bc__route_snapshot_t *s = bc__route_snapshot_new(c->nbuckets);
    gid_node_t *map = calloc(ngroups ? ngroups : 1, sizeof(*map));
    if (s == NULL || map == NULL) goto out;
    s->epoch = epoch;
    memcpy(s->owner, owner, c->nbuckets * sizeof(*owner));
    if (readonly != NULL) memcpy(s->readonly, readonly, c->nbuckets);
    for (size_t i = 0; i < ngroups; i++) {
        map[i].gid = gids[i];
        map[i].node = NULL;
        if (addrs[i] != NULL && addrs[i][0] != '\0') {
            map[i].node = registry_node_for(c, addrs[i]);
            if (map[i].node == NULL) goto out;
        }
    }
    qsort(map, ngroups, sizeof(*map), gid_node_cmp);
    for (uint32_t b = 0; b < c->nbuckets; b++) {
        if (owner[b] == 0) continue;
        gid_node_t key = {owner[b], NULL};
        gid_node_t *hit = ngroups ? bsearch(&key, map, ngroups, sizeof(*map), gid_node_cmp) : NULL;
        if (hit != NULL && hit->node != NULL &&
            bc__route_snapshot_set_node(s, b, hit->node) != BC_OK) {
            goto out;
        }
    }
    bc__route_snapshot_t *cur = bc__route_acquire(&c->router);
    bool same = bc__route_snapshot_same(cur, s);
    if (cur != NULL && !same && epoch < cur->epoch) {
        log_info("client: table epoch went back from %llu to %llu",
                 (unsigned long long)cur->epoch, (unsigned long long)epoch);
    }
    bc__route_release(cur);
    if (same) {
        bc__route_snapshot_discard(s);
    } else {
        log_debug("client: routing table epoch %llu in use", (unsigned long long)epoch);
        bc__route_publish(&c->router, s);
        BC__COUNT(c, table_updates, 1);
        registry_prune(c, s);
    }
    s = NULL;
    st = BC_OK;
out:
    bc__route_snapshot_discard(s);
    free(map);
    pthread_mutex_unlock(&c->build_mu);
    return st;
}

void
bc__registry_free(bc_client_t *c)
{
    for (size_t i = 0; i < c->nregistry; i++) bc__pool_node_unref(c->registry[i]);
    free(c->registry);
    c->registry = NULL;
    c->nregistry = 0;
}
