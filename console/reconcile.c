/*
 * reconcile.c -- see reconcile.h for the behaviour.
 */
#include "reconcile.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_planner.h"

static void
summary_add(bc_reconcile_output_t *out, const char *fmt, ...)
{
    size_t len = strlen(out->summary);
    if (len + 4 >= sizeof(out->summary)) return;
    if (len > 0) {
        out->summary[len++] = ';';
        out->summary[len++] = ' ';
        out->summary[len] = '\0';
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->summary + len, sizeof(out->summary) - len, fmt, ap);
    va_end(ap);
}

static bool
group_live(const bc_view_group_t *g)
{
    return g != NULL && g->nnodes > 0;
}

/* The node that should be primary of a live group. */
static const bc_node_info_t *
reconcile_pick_primary(const bc_view_group_t *g)
{
    if (g->has_primary) {
        for (size_t i = 0; i < g->nnodes; i++) {
            if (strcmp(g->nodes[i].name, g->primary.node) == 0) return &g->nodes[i];
        }
    }
    const bc_node_info_t *best = NULL;
    for (size_t i = 0; i < g->nnodes; i++) {
        const bc_node_info_t *n = &g->nodes[i];
        if (best == NULL || n->offset > best->offset ||
            (n->offset == best->offset && strcmp(n->name, best->name) < 0)) {
            best = n;
        }
    }
    return best;
}

static bool
table_names(const bc_table_t *t, uint32_t gid)
{
    for (uint32_t b = 0; b < t->nbuckets; b++) {
        if (t->owner[b] == gid) return true;
    }
    return false;
}

/* Every group id named in c, m or d (sorted, unique) into ids; returns count. */
static size_t
reconcile_table_gids(const bc_view_t *v, uint32_t *ids)
{
    size_t n = 0;
    const bc_table_t *ts[3] = {&v->c, &v->m, &v->d};
    for (int t = 0; t < 3; t++) {
        for (uint32_t b = 0; b < v->nbuckets; b++) {
            uint32_t gid = ts[t]->owner[b];
            if (gid == 0) continue;
            bool seen = false;
            for (size_t i = 0; i < n && !seen; i++) seen = ids[i] == gid;
            if (!seen) ids[n++] = gid;
        }
    }
    return n;
}

static bc_departure_update_t *
departure_slot(bc_reconcile_output_t *out, const bc_view_group_t *g)
{
    bc_departure_update_t *u = &out->departures[out->ndepartures++];
    memset(u, 0, sizeof(*u));
    u->gid = g->gid;
    u->version = g->group_version;
    return u;
}

bc_status_t
bc_reconcile(const bc_reconcile_input_t *in, bc_reconcile_output_t *out)
{
    bc_view_t *v = in->view;
    const uint32_t n = v->nbuckets;
    bc_status_t st;
    uint32_t *ids = NULL, *sub_m = NULL, *sub_d = NULL, *sub_idx = NULL;
    uint8_t *reserved = NULL;
    bc_planner_group_t *pgroups = NULL;

    memset(out, 0, sizeof(*out));
    if ((st = bc_table_copy(&out->c, &v->c)) != BC_OK ||
        (st = bc_table_copy(&out->m, &v->m)) != BC_OK ||
        (st = bc_table_copy(&out->d, &v->d)) != BC_OK) {
        goto out;
    }
    out->departures = calloc(v->ngroups + 1, sizeof(*out->departures));
    out->primaries = calloc(v->ngroups + 1, sizeof(*out->primaries));
    ids = calloc((size_t)n * 3 + 1, sizeof(*ids));
    reserved = calloc(n, 1);
    pgroups = calloc(v->ngroups + 1, sizeof(*pgroups));
    if (!out->departures || !out->primaries || !ids || !reserved || !pgroups) {
        st = BC_ENOMEM;
        goto out;
    }
    bool primary_changed = false;

    /* 1. Primaries. */
    for (size_t i = 0; i < v->ngroups; i++) {
        const bc_view_group_t *g = &v->groups[i];
        if (!group_live(g)) {
            if (g->has_primary || g->primary_version >= 0) {
                bc_primary_update_t *p = &out->primaries[out->nprimaries++];
                p->gid = g->gid;
                p->version = g->primary_version;
                p->remove = true;
                summary_add(out, "group %u has no live node: primary %s removed", g->gid,
                            g->has_primary ? g->primary.node : "record");
            }
            continue;
        }
        const bc_node_info_t *best = reconcile_pick_primary(g);
        if (g->has_primary && strcmp(best->name, g->primary.node) == 0) continue;
        bc_primary_update_t *p = &out->primaries[out->nprimaries++];
        p->gid = g->gid;
        p->version = g->primary_version;
        snprintf(p->info.node, sizeof(p->info.node), "%s", best->name);
        snprintf(p->info.data_addr, sizeof(p->info.data_addr), "%s", best->data_addr);
        snprintf(p->info.admin_addr, sizeof(p->info.admin_addr), "%s", best->admin_addr);
        primary_changed = true;
        summary_add(out, "group %u primary: %s (%s)%s%s", g->gid, best->name, best->data_addr,
                    g->has_primary ? ", was " : "", g->has_primary ? g->primary.node : "");
    }

    /* 2. Groups down: zero their entries, record what they held. */
    size_t nids = reconcile_table_gids(v, ids);
    for (size_t i = 0; i < nids; i++) {
        uint32_t gid = ids[i];
        bc_view_group_t *g = bc_view_group(v, gid);
        if (group_live(g)) continue;
        uint32_t held = 0;
        if (g != NULL && !g->departure.present) {
            bc_departure_update_t *u = departure_slot(out, g);
            u->record.present = true;
            u->record.departed_at_ms = in->now_ms;
            u->record.buckets = calloc(n, sizeof(uint32_t));
            if (u->record.buckets == NULL) {
                st = BC_ENOMEM;
                goto out;
            }
            for (uint32_t b = 0; b < n; b++) {
                if (v->m.owner[b] == gid) u->record.buckets[u->record.nbuckets++] = b;
            }
            /* Reserve them now, as the record will say once written. */
            for (uint32_t k = 0; k < u->record.nbuckets; k++) reserved[u->record.buckets[k]] = 1;
        }
        for (uint32_t b = 0; b < n; b++) {
            if (out->c.owner[b] == gid) {
                out->c.owner[b] = 0;
                out->c.readonly[b] = 0;
                held++;
            }
            if (out->m.owner[b] == gid) out->m.owner[b] = 0;
            if (out->d.owner[b] == gid) out->d.owner[b] = 0;
        }
        out->tables_changed = true;
        summary_add(out, "group %u down: its %u buckets have no owner", gid, held);
    }

    /* 3. Departed groups still down: reserve their buckets during the grace. */
    for (size_t i = 0; i < v->ngroups; i++) {
        const bc_view_group_t *g = &v->groups[i];
        if (group_live(g) || !g->departure.present) continue;
        bool grace_over = in->orphan_grace_ms >= 0 &&
                          in->now_ms - g->departure.departed_at_ms >= in->orphan_grace_ms;
        if (grace_over) continue;
        for (uint32_t k = 0; k < g->departure.nbuckets; k++) {
            uint32_t b = g->departure.buckets[k];
            if (out->m.owner[b] == 0) reserved[b] = 1;
        }
    }

    /* 4. Groups back. */
    for (size_t i = 0; i < v->ngroups; i++) {
        const bc_view_group_t *g = &v->groups[i];
        if (!group_live(g) || !g->departure.present) continue;
        /* "Nothing moved" is about data: every bucket it held is still
         * unowned in m.  A plan in d (a migration decided before it left)
         * is kept: where d is unowned it points back at the group. */
        bool intact = !table_names(&out->m, g->gid);
        for (uint32_t k = 0; k < g->departure.nbuckets && intact; k++) {
            intact = out->m.owner[g->departure.buckets[k]] == 0;
        }
        if (intact) {
            for (uint32_t k = 0; k < g->departure.nbuckets; k++) {
                uint32_t b = g->departure.buckets[k];
                out->c.owner[b] = out->m.owner[b] = g->gid;
                if (out->d.owner[b] == 0) out->d.owner[b] = g->gid;
                out->c.readonly[b] = 0;
                reserved[b] = 0;
            }
            if (g->departure.nbuckets > 0) out->tables_changed = true;
            summary_add(out, "group %u back: %u buckets filled back", g->gid, g->departure.nbuckets);
        } else {
            summary_add(out, "group %u back, but its buckets moved meanwhile: joins as a new group",
                        g->gid);
        }
        bc_departure_update_t *u = departure_slot(out, g);
        u->record.present = false;
    }

    /* 5. Rebalance when needed. */
    size_t nlive = 0;
    bool want = in->force_rebalance, has_new = false, has_orphans = false;
    for (size_t i = 0; i < v->ngroups; i++) {
        const bc_view_group_t *g = &v->groups[i];
        if (!group_live(g)) continue;
        pgroups[nlive].gid = g->gid;
        pgroups[nlive].memory = bc_view_group_memory(g);
        nlive++;
        if (!table_names(&out->d, g->gid)) has_new = true;
    }
    for (uint32_t b = 0; b < n; b++) {
        if (!reserved[b] && (out->d.owner[b] == 0 || out->m.owner[b] == 0)) has_orphans = true;
    }
    want = want || has_new || has_orphans;
    if (nlive > 0 && want) {
        uint32_t nsub = 0;
        sub_m = calloc(n, sizeof(*sub_m));
        sub_d = calloc(n, sizeof(*sub_d));
        sub_idx = calloc(n, sizeof(*sub_idx));
        if (!sub_m || !sub_d || !sub_idx) {
            st = BC_ENOMEM;
            goto out;
        }
        for (uint32_t b = 0; b < n; b++) {
            if (reserved[b]) continue;
            sub_idx[nsub] = b;
            sub_m[nsub++] = out->m.owner[b];
        }
        if (nsub > 0) {
            st = bc_planner_plan(sub_m, nsub, pgroups, nlive, sub_d, NULL);
            if (st != BC_OK) goto out;
            uint32_t assigned = 0, changed = 0;
            for (uint32_t k = 0; k < nsub; k++) {
                uint32_t b = sub_idx[k];
                if (out->d.owner[b] != sub_d[k]) {
                    out->d.owner[b] = sub_d[k];
                    changed++;
                }
                if (out->m.owner[b] == 0 && sub_d[k] != 0) {
                    out->m.owner[b] = out->c.owner[b] = sub_d[k];
                    out->c.readonly[b] = 0;
                    assigned++;
                    changed++;
                }
            }
            if (changed > 0) {
                out->tables_changed = true;
                out->rebalanced = true;
                summary_add(out, "rebalance over %zu groups: %u unowned buckets assigned", nlive,
                            assigned);
            }
        }
    }
    for (uint32_t b = 0; b < n; b++) {
        if (out->m.owner[b] != 0 && out->m.owner[b] != out->d.owner[b]) out->pending_moves++;
    }

    if (out->tables_changed || primary_changed) {
        uint64_t e = v->c.epoch;
        if (v->m.epoch > e) e = v->m.epoch;
        if (v->d.epoch > e) e = v->d.epoch;
        out->c.epoch = out->m.epoch = out->d.epoch = e + 1;
        out->tables_changed = true;
        for (size_t i = 0; i < out->nprimaries; i++) out->primaries[i].info.epoch = e + 1;
    }
    out->changed = out->tables_changed || out->nprimaries > 0 || out->ndepartures > 0;
    st = BC_OK;
out:
    free(ids);
    free(reserved);
    free(pgroups);
    free(sub_m);
    free(sub_d);
    free(sub_idx);
    return st;
}

void
bc_reconcile_free(bc_reconcile_output_t *out)
{
    bc_table_free(&out->c);
    bc_table_free(&out->m);
    bc_table_free(&out->d);
    for (size_t i = 0; i < out->ndepartures; i++) bc_departure_free(&out->departures[i].record);
    free(out->departures);
    free(out->primaries);
    memset(out, 0, sizeof(*out));
}
