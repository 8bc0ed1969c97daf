/*
 * view.c -- loading a cluster's view from ZooKeeper (view.h): the three
 * tables with their versions, then for every groups/<gid> its departure
 * record, its live registrations (nodes/) and its primary record.
 *
 * Every record read is decoded as hostile: a malformed node registration
 * or primary record is logged and left out, a malformed departure record
 * reads as none, a znode under groups/ that is not a group id is ignored,
 * and a group or node that vanishes between the listing and the read is
 * skipped (it just left).  A malformed table fails the load: the tables
 * are what every decision starts from.  Only a leaderless group's nodes
 * are asked for their replication offsets (bc_view_fill_offsets), over
 * HTTP with a short timeout, outside the load itself.
 */
#include "view.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bc_http_client.h"
#include "bc_log.h"

void
bc_view_departure_free(bc_view_departure_t *dep)
{
    free(dep->buckets);
    memset(dep, 0, sizeof(*dep));
}

char *
bc_view_departure_encode(const bc_view_departure_t *dep)
{
    if (!dep->present) return strdup("{}");
    size_t cap = 64 + (size_t)dep->nbuckets * 7;
    char *buf = malloc(cap);
    if (buf == NULL) return NULL;
    size_t len = (size_t)snprintf(buf, cap, "{\"departed_at_ms\":%lld,\"buckets\":[",
                                  (long long)dep->departed_at_ms);
    for (uint32_t i = 0; i < dep->nbuckets; i++) {
        len += (size_t)snprintf(buf + len, cap - len, i ? ",%u" : "%u", dep->buckets[i]);
    }
    snprintf(buf + len, cap - len, "]}");
    return buf;
}

bc_status_t
bc_view_departure_decode(const char *json, size_t len, uint32_t nbuckets, bc_view_departure_t *out)
{
    memset(out, 0, sizeof(*out));
    if (len == 0) return BC_OK;
    if (len > BC_TABLE_MAX_JSON) return BC_ETOOLARGE;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return BC_EINVAL;
    }
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(root, "departed_at_ms");
    const cJSON *buckets = cJSON_GetObjectItemCaseSensitive(root, "buckets");
    if (at == NULL && buckets == NULL) {
        cJSON_Delete(root);
        return BC_OK;
    }
    if (!cJSON_IsNumber(at) || !cJSON_IsArray(buckets) ||
        cJSON_GetArraySize(buckets) > (int)nbuckets) {
        cJSON_Delete(root);
        return BC_EINVAL;
    }
    out->departed_at_ms = (int64_t)at->valuedouble;
    int n = cJSON_GetArraySize(buckets);
    out->buckets = calloc(n > 0 ? (size_t)n : 1, sizeof(uint32_t));
    if (out->buckets == NULL) {
        cJSON_Delete(root);
        return BC_ENOMEM;
    }
    const cJSON *v;
    cJSON_ArrayForEach(v, buckets) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= nbuckets ||
            v->valuedouble != floor(v->valuedouble)) {
            bc_view_departure_free(out);
            cJSON_Delete(root);
            return BC_EINVAL;
        }
        out->buckets[out->nbuckets++] = (uint32_t)v->valuedouble;
    }
    out->present = true;
    cJSON_Delete(root);
    return BC_OK;
}

static void
view_group_free(bc_view_group_t *g)
{
    free(g->nodes);
    bc_view_departure_free(&g->departure);
}

void
bc_view_free(bc_view_t *view)
{
    bc_table_free(&view->c);
    bc_table_free(&view->m);
    bc_table_free(&view->d);
    for (size_t i = 0; i < view->ngroups; i++) view_group_free(&view->groups[i]);
    free(view->groups);
    memset(view, 0, sizeof(*view));
}

bc_view_group_t *
bc_view_group(bc_view_t *view, uint32_t gid)
{
    for (size_t i = 0; i < view->ngroups; i++) {
        if (view->groups[i].gid == gid) return &view->groups[i];
    }
    return NULL;
}

uint64_t
bc_view_group_memory(const bc_view_group_t *g)
{
    if (g->nnodes == 0) return 0;
    if (g->has_primary) {
        for (size_t i = 0; i < g->nnodes; i++) {
            if (strcmp(g->nodes[i].name, g->primary.node) == 0) return g->nodes[i].memory;
        }
    }
    return g->nodes[0].memory;
}

static int
view_gid_cmp(const void *a, const void *b)
{
    const bc_view_group_t *x = a, *y = b;
    return (x->gid > y->gid) - (x->gid < y->gid);
}

static bc_status_t
view_load_group(bc_zk_t *zk, const char *cluster, uint32_t nbuckets, bc_zk_watch_fn watch,
                void *watch_ctx, bc_view_group_t *g)
{
    char path[BC_CLUSTER_PATH_MAX], suffix[96], err[256];
    char *data = NULL;
    size_t len = 0;
    bc_status_t st;

    /* groups/<gid>: the departure record */
    snprintf(suffix, sizeof(suffix), "/groups/%u", g->gid);
    bc_cluster_path(path, sizeof(path), cluster, suffix);
    st = bc_zk_get(zk, path, NULL, NULL, &data, &len, &g->group_version);
    if (st != BC_OK) return st;
    if (bc_view_departure_decode(data ? data : "", len, nbuckets, &g->departure) != BC_OK) {
        log_warn("console: ignoring malformed departure record of group %u", g->gid);
    }
    free(data);
    data = NULL;

    /* groups/<gid>/nodes: live registrations */
    snprintf(suffix, sizeof(suffix), "/groups/%u/nodes", g->gid);
    bc_cluster_path(path, sizeof(path), cluster, suffix);
    bc_zk_strings_t names = {0, NULL};
    st = bc_zk_children(zk, path, watch, watch_ctx, &names);
    if (st == BC_ENOTFOUND) {
        if (watch != NULL) bc_zk_exists(zk, path, watch, watch_ctx, NULL);
        st = BC_OK;
    }
    if (st != BC_OK) return st;
    g->nodes = calloc(names.count > 0 ? (size_t)names.count : 1, sizeof(*g->nodes));
    if (g->nodes == NULL) {
        bc_zk_strings_free(&names);
        return BC_ENOMEM;
    }
    for (int i = 0; i < names.count; i++) {
        char npath[BC_CLUSTER_PATH_MAX + 64];
        snprintf(npath, sizeof(npath), "%s/%s", path, names.names[i]);
        if (bc_zk_get(zk, npath, NULL, NULL, &data, &len, NULL) != BC_OK) continue; /* just left */
        bc_cluster_node_info_t *n = &g->nodes[g->nnodes];
        memset(n, 0, sizeof(*n));
        snprintf(n->name, sizeof(n->name), "%.31s", names.names[i]);
        if (bc_cluster_node_info_decode(data ? data : "", len, n, err, sizeof(err)) == BC_OK) {
            g->nnodes++;
        } else {
            log_warn("console: ignoring node %s of group %u: %s", names.names[i], g->gid, err);
        }
        free(data);
        data = NULL;
    }
    bc_zk_strings_free(&names);

    /* groups/<gid>/primary and groups/<gid>/isr: watched where they exist,
     * else watched for their creation */
    snprintf(suffix, sizeof(suffix), "/groups/%u/primary", g->gid);
    bc_cluster_path(path, sizeof(path), cluster, suffix);
    st = bc_zk_get(zk, path, watch, watch_ctx, &data, &len, &g->primary_version);
    if (st == BC_OK) {
        if (bc_cluster_primary_info_decode(data ? data : "", len, &g->primary, err,
                                           sizeof(err)) == BC_OK) {
            g->has_primary = true;
        } else {
            log_warn("console: group %u has a malformed primary record: %s", g->gid, err);
        }
    } else if (st == BC_ENOTFOUND) {
        g->primary_version = -1;
        if (watch != NULL) (void)bc_zk_exists(zk, path, watch, watch_ctx, NULL);
        st = BC_OK;
    }
    free(data);
    data = NULL;
    if (st != BC_OK) return st;

    snprintf(suffix, sizeof(suffix), "/groups/%u/isr", g->gid);
    bc_cluster_path(path, sizeof(path), cluster, suffix);
    st = bc_zk_get(zk, path, watch, watch_ctx, &data, &len, &g->isr_version);
    if (st == BC_OK) {
        if (bc_cluster_isr_decode(data ? data : "", len, &g->isr, err, sizeof(err)) == BC_OK) {
            g->has_isr = true;
        } else {
            log_warn("console: group %u has a malformed in-sync record: %s", g->gid, err);
        }
    } else if (st == BC_ENOTFOUND) {
        g->isr_version = -1;
        if (watch != NULL) (void)bc_zk_exists(zk, path, watch, watch_ctx, NULL);
        st = BC_OK;
    }
    free(data);
    return st;
}

bc_status_t
bc_view_load(bc_zk_t *zk, const char *cluster, uint32_t nbuckets, bc_zk_watch_fn watch,
             void *watch_ctx, bc_view_t *view, char *err, size_t errlen)
{
    char path[BC_CLUSTER_PATH_MAX];
    bc_status_t st;
    memset(view, 0, sizeof(*view));
    view->nbuckets = nbuckets;

    st = bc_cluster_read_table(zk, cluster, 'c', nbuckets, &view->c, &view->c_version, NULL, NULL,
                               err, errlen);
    if (st == BC_OK) {
        st = bc_cluster_read_table(zk, cluster, 'm', nbuckets, &view->m, &view->m_version, NULL,
                                   NULL, err, errlen);
    }
    if (st == BC_OK) {
        st = bc_cluster_read_table(zk, cluster, 'd', nbuckets, &view->d, &view->d_version, NULL,
                                   NULL, err, errlen);
    }
    if (st != BC_OK) goto fail;

    bc_cluster_path(path, sizeof(path), cluster, "/groups");
    bc_zk_strings_t names = {0, NULL};
    st = bc_zk_children(zk, path, watch, watch_ctx, &names);
    if (st != BC_OK) goto fail;
    view->groups = calloc(names.count > 0 ? (size_t)names.count : 1, sizeof(*view->groups));
    if (view->groups == NULL) {
        bc_zk_strings_free(&names);
        st = BC_ENOMEM;
        goto fail;
    }
    for (int i = 0; i < names.count; i++) {
        uint32_t gid = bc_cluster_parse_gid(names.names[i]);
        if (gid == 0) {
            log_warn("console: ignoring znode groups/%s: not a group id", names.names[i]);
            continue;
        }
        bc_view_group_t *g = &view->groups[view->ngroups];
        memset(g, 0, sizeof(*g));
        g->gid = gid;
        st = view_load_group(zk, cluster, nbuckets, watch, watch_ctx, g);
        if (st == BC_ENOTFOUND) { /* the group znode vanished mid-read */
            view_group_free(g);
            continue;
        }
        if (st != BC_OK) {
            view_group_free(g);
            bc_zk_strings_free(&names);
            goto fail;
        }
        view->ngroups++;
    }
    bc_zk_strings_free(&names);
    qsort(view->groups, view->ngroups, sizeof(*view->groups), view_gid_cmp);
    return BC_OK;

fail:
    bc_view_free(view);
    return st;
}

/* The offset a node reports on GET /v1/repl into n; 0 (not synced) when
 * it cannot tell. */
static void
view_node_offset(bc_cluster_node_info_t *n, int timeout_ms)
{
    bc_cluster_repl_status_t r;
    n->offset = 0;
    n->synced = false;
    n->offset_known = false;
    if (n->admin_addr[0] == '\0' || bc_cluster_repl_status_fetch(n->admin_addr, timeout_ms,
                                                                 &r) != BC_OK) {
        return;
    }
    n->offset_known = true;
    n->synced = r.synced;
    n->offset = r.synced ? r.offset : 0;
}

void
bc_view_fill_offsets(bc_view_t *view, int timeout_ms)
{
    for (size_t i = 0; i < view->ngroups; i++) {
        bc_view_group_t *g = &view->groups[i];
        /* A failover (the primary's node is gone) asks even a lone
         * survivor: it is promoted only with complete data.  A group that
         * never had a primary holds no data: it asks only to pick. */
        if (g->nnodes == 0 || (!g->has_primary && g->nnodes < 2)) continue;
        bool alive = false;
        for (size_t k = 0; g->has_primary && k < g->nnodes; k++) {
            alive = alive || strcmp(g->nodes[k].name, g->primary.node) == 0;
        }
        if (alive) continue;
        for (size_t k = 0; k < g->nnodes; k++) {
            view_node_offset(&g->nodes[k], timeout_ms);
            bool in_sync = g->has_primary && g->has_isr && bc_cluster_isr_of(&g->isr, &g->primary) &&
                           bc_cluster_isr_has(&g->isr, g->nodes[k].name);
            log_info("console: group %u candidate %s has replication offset %llu%s%s", g->gid,
                     g->nodes[k].name, (unsigned long long)g->nodes[k].offset,
                     g->nodes[k].synced ? "" : " (data incomplete)",
                     in_sync ? ", in the in-sync set" : "");
        }
    }
}
