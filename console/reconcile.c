/*
 * reconcile.c -- every decision of the active console (reconcile.h has the
 * rules and their order): a pure function from a view, the migration set
 * and the copy reports to the writes of one transaction.
 *
 * HOW
 *   bc_reconcile copies the tables into the output and walks the steps in
 *   reconcile.h's order, each editing the output in place: primaries,
 *   groups down, departed groups waiting, groups back, a cancel, the
 *   rebalance (the planner, bc_planner.h), then the migrations
 *   (reconcile_migrations).  That last step is where a bucket is done
 *   moving: a copy report for the record's epoch whose checks all pass is
 *   its cutover (move_cutover); a failed check aborts the attempt
 *   (move_abort).  No other code decides either.
 *
 *   Everything written must fit one ZooKeeper transaction: a round keeps
 *   a budget of operations, and what does not fit is left for the next
 *   round (mig_more).  No I/O, no clock and no locks here: the caller
 *   passes the time in, so the unit tests drive every rule directly.
 */
#include "reconcile.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_planner.h"
#include "bc_zk.h"

/* Transaction ops the rest of a round may use besides migration records:
 * the election check, three tables (or their version checks) and the
 * migrations znode. */
#define RECONCILE_FIXED_OPS 5

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

/* Is a better primary candidate than b (NULL)?  Complete data first, then
 * the highest offset, then the lowest name. */
static bool
pick_better(const bc_cluster_node_info_t *a, const bc_cluster_node_info_t *b)
{
    if (b == NULL) return true;
    if (a->synced != b->synced) return a->synced;
    if (a->offset != b->offset) return a->offset > b->offset;
    return strcmp(a->name, b->name) < 0;
}

/* The group's in-sync record, when it is the one of its primary's term. */
static const bc_cluster_isr_t *
group_term_isr(const bc_view_group_t *g)
{
    return g->has_primary && g->has_isr && bc_cluster_isr_of(&g->isr, &g->primary) ? &g->isr : NULL;
}

/*
 * Is n the group's old primary itself, registered anew (its session ended
 * -- cut off from ZooKeeper, a ZooKeeper restart -- but the process lived
 * on)?  Its registration name changed, its incarnation did not: it holds
 * every write it acknowledged, as the in-sync members do.
 */
static bool
group_old_primary(const bc_view_group_t *g, const bc_cluster_node_info_t *n)
{
    return g->has_primary && g->primary.incarnation[0] != '\0' &&
           strcmp(n->incarnation, g->primary.incarnation) == 0;
}

typedef enum pick {
    PICK_KEEP,                     /* the primary lives */
    PICK_NEW,                      /* *out replaces it (or is the first) */
    PICK_WAIT,                     /* gone, and no in-sync member alive */
    PICK_EMPTY,                    /* gone with every copy of its term's data: *out
                                    * starts the group empty */
} pick_t;

/*
 * BEHAVIOR: the node that should be primary of a live group (reconcile.h,
 * "Primaries").  Only an in-sync member of the dead primary's term is
 * safe: it holds every write that primary acknowledged (node/repl/repl.h,
 * THE IN-SYNC SET).  A backup outside the record may lack acknowledged
 * writes however high its offset -- the primary recorded it out before
 * acknowledging them -- so it is never picked here, only by an operator's
 * unclean failover.  unclean: pick the best live node regardless.
 */
static pick_t
reconcile_pick_primary(const bc_view_group_t *g, bool unclean, const bc_cluster_node_info_t **out)
{
    *out = NULL;
    if (g->has_primary) {
        for (size_t i = 0; i < g->nnodes; i++) {
            if (strcmp(g->nodes[i].name, g->primary.node) == 0) {
                *out = &g->nodes[i];
                return PICK_KEEP;
            }
        }
    }
    const bc_cluster_isr_t *isr = group_term_isr(g);
    const bc_cluster_node_info_t *best = NULL;
    for (size_t i = 0; i < g->nnodes; i++) {
        const bc_cluster_node_info_t *n = &g->nodes[i];
        if (isr != NULL && !(bc_cluster_isr_has(isr, n->name) || group_old_primary(g, n))) continue;
        if (isr != NULL && !n->synced) continue;
        if (pick_better(n, best)) best = n;
    }
    /*
     * No member alive.  Whether anything can be lost by promoting another
     * node depends on whether a live node holds data of that term: one
     * that does (complete, at some offset) may lack acknowledged writes --
     * only an operator may choose it (unclean).  When every live node was
     * asked and none holds any (they registered after the term's data
     * died with its members: restarted processes, a group that had no
     * backup), that data is gone whatever happens, and waiting would only
     * keep the group down: the best of them starts the group empty.
     */
    if (best == NULL && isr != NULL && !unclean) {
        bool all_known = true, data = false;
        for (size_t i = 0; i < g->nnodes; i++) {
            all_known = all_known && g->nodes[i].offset_known;
            data = data || (g->nodes[i].synced && g->nodes[i].offset > 0);
        }
        if (all_known && !data) {
            for (size_t i = 0; i < g->nnodes; i++) {
                if (pick_better(&g->nodes[i], best)) best = &g->nodes[i];
            }
            *out = best;
            return best != NULL ? PICK_EMPTY : PICK_WAIT;
        }
    }
    if (best == NULL && unclean) {
        for (size_t i = 0; i < g->nnodes; i++) {
            if (pick_better(&g->nodes[i], best)) best = &g->nodes[i];
        }
    }
    *out = best;
    return best != NULL ? PICK_NEW : PICK_WAIT;
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

static bc_reconcile_departure_update_t *
departure_slot(bc_reconcile_output_t *out, const bc_view_group_t *g)
{
    bc_reconcile_departure_update_t *u = &out->departures[out->ndepartures++];
    memset(u, 0, sizeof(*u));
    u->gid = g->gid;
    u->version = g->group_version;
    return u;
}

static bool
control_holds(const bc_mig_control_t *c, uint32_t gid)
{
    for (uint32_t i = 0; c != NULL && i < c->nheld; i++) {
        if (c->held[i] == gid) return true;
    }
    return false;
}

/* ---- migrations ---- */


typedef struct move_round {
    const bc_reconcile_input_t *in;
    bc_view_t *v;
    bc_reconcile_output_t *out;
    size_t budget;                 /* record ops left in this transaction */
    uint8_t *final;                /* per bucket: 1 copying after this round */
    uint64_t *final_epoch;         /* its epoch (0: started now, epoch not known yet) */
    size_t *started;               /* indexes into out->mig of the copies started */
    size_t nstarted;
} move_round_t;

static bool
move_primary_changes(const bc_reconcile_output_t *out, uint32_t gid)
{
    for (size_t i = 0; i < out->nprimaries; i++) {
        if (out->primaries[i].gid == gid) return true;
    }
    return false;
}

/* The group's live primary node with an admin port, or NULL. */
static const bc_cluster_node_info_t *
move_primary(bc_view_t *v, const bc_reconcile_output_t *out, uint32_t gid)
{
    bc_view_group_t *g = bc_view_group(v, gid);
    if (!group_live(g) || !g->has_primary || move_primary_changes(out, gid)) return NULL;
    for (size_t i = 0; i < g->nnodes; i++) {
        if (strcmp(g->nodes[i].name, g->primary.node) == 0) {
            return g->nodes[i].admin_addr[0] != '\0' ? &g->nodes[i] : NULL;
        }
    }
    return NULL;
}

static bc_reconcile_mig_update_t *
move_put(move_round_t *r, uint32_t bucket, int32_t version, bool remove, const bc_mig_record_t *rec)
{
    bc_reconcile_mig_update_t *u = &r->out->mig[r->out->nmig++];
    memset(u, 0, sizeof(*u));
    u->bucket = bucket;
    u->version = version;
    u->remove = remove;
    if (rec != NULL) u->record = *rec;
    r->budget--;
    return u;
}

/* Why a copying record can no longer complete, or NULL. */
static const char *
move_check(move_round_t *r, const bc_mig_record_t *rec)
{
    bc_reconcile_output_t *out = r->out;
    uint32_t b = rec->bucket;
    if (out->m.owner[b] != rec->from) return "the source group no longer holds the data (m)";
    if (out->d.owner[b] != rec->to) return "the plan changed (d)";
    if (out->c.owner[b] != rec->from || !out->c.readonly[b]) {
        return "c no longer has it read-only at the source";
    }
    const bc_cluster_node_info_t *src = move_primary(r->v, out, rec->from);
    const bc_cluster_node_info_t *dst = move_primary(r->v, out, rec->to);
    if (src == NULL || strcmp(src->name, rec->from_node) != 0) {
        return "the source primary changed or is down";
    }
    if (dst == NULL || strcmp(dst->name, rec->to_node) != 0) {
        return "the destination primary changed or is down";
    }
    return NULL;
}

static void
move_abort(move_round_t *r, const bc_mig_record_t *rec, const char *why)
{
    bc_reconcile_output_t *out = r->out;
    uint32_t b = rec->bucket;
    if (out->c.owner[b] == rec->from && out->c.readonly[b]) {
        out->c.readonly[b] = 0;
        out->tables_changed = true;
    }
    if ((rec->cancelled || r->in->cancel_rebalance) && out->m.owner[b] != 0 &&
        out->d.owner[b] != out->m.owner[b]) {
        /* A copy the cancel let run has failed: its move is dropped too,
         * and a destination left with nothing planned is held back. */
        out->d.owner[b] = out->m.owner[b];
        out->tables_changed = true;
        if (!table_names(&out->d, rec->to) && group_live(bc_view_group(r->v, rec->to)) &&
            !control_holds(out->control, rec->to) && out->control->nheld < BC_MIG_MAX_HELD) {
            out->control->held[out->control->nheld++] = rec->to;
        }
    }
    out->control->failures++;
    out->control_changed = true;
    out->mig_aborted++;
    bc_reconcile_copying_t *a = &out->aborts[out->naborts++];
    a->bucket = b;
    a->epoch = rec->epoch;
    a->from = rec->from;
    a->to = rec->to;
    r->final[b] = 0;
    bool still = out->m.owner[b] != 0 && out->d.owner[b] != 0 && out->m.owner[b] != out->d.owner[b];
    if (still) {
        bc_mig_record_t next = *rec;
        next.state = BC_MIG_PENDING;
        next.from = out->m.owner[b];
        next.to = out->d.owner[b];
        next.attempts = rec->attempts + 1;
        next.retry_at_ms = r->in->now_ms + bc_mig_backoff_ms(next.attempts);
        snprintf(next.error, sizeof(next.error), "%s", why);
        move_put(r, b, rec->version, false, &next);
    } else {
        move_put(r, b, rec->version, true, NULL);
    }
    summary_add(out, "bucket %u: copy to group %u at epoch %llu called off (%s)%s", b, rec->to,
                (unsigned long long)rec->epoch, why, still ? ", will retry" : "");
}

static void
move_cutover(move_round_t *r, const bc_mig_record_t *rec, const bc_mig_report_t *rep)
{
    bc_reconcile_output_t *out = r->out;
    uint32_t b = rec->bucket;
    out->c.owner[b] = out->m.owner[b] = rec->to;
    out->c.readonly[b] = 0;
    out->tables_changed = true;
    r->final[b] = 0;
    move_put(r, b, rec->version, true, NULL);
    int64_t stall = r->in->now_ms - rec->started_ms;
    bc_mig_done_t done = {
        .bucket = b, .from = rec->from, .to = rec->to, .items = rep->items, .bytes = rep->bytes,
        .stall_ms = stall < 0 ? 0 : stall > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)stall,
        .finished_ms = r->in->now_ms,
    };
    bc_mig_control_add_done(out->control, &done);
    out->control_changed = true;
    out->mig_cutovers++;
    summary_add(out, "bucket %u moved to group %u (%llu items, %llu bytes, read-only %u ms)", b,
                rec->to, (unsigned long long)rep->items, (unsigned long long)rep->bytes,
                done.stall_ms);
}

/* Was destination `to` probed in this round already?  (A full list counts
 * as probed: nothing more starts.) */
static bool
move_probed(const uint32_t *probed, const size_t *n, uint32_t to)
{
    if (*n >= 64) return true;
    for (size_t i = 0; i < *n; i++) {
        if (probed[i] == to) return true;
    }
    return false;
}

/* Starts a new run unless one is under way: its summary starts empty;
 * the controls are kept. */
static void
move_run_start(move_round_t *r)
{
    bc_mig_control_t *c = r->out->control;
    if (c->run_started_ms != 0 && c->run_finished_ms == 0) return;
    c->run_started_ms = r->in->now_ms;
    c->run_finished_ms = 0;
    c->moved = c->items = c->bytes = c->failures = 0;
    c->nstalls = c->stall_next = c->nrecent = 0;
    r->out->control_changed = true;
}

static bc_status_t
reconcile_migrations(move_round_t *r)
{
    const bc_reconcile_input_t *in = r->in;
    bc_reconcile_output_t *out = r->out;
    const bc_mig_set_t *migs = in->migs;
    const uint32_t n = r->v->nbuckets;

    for (uint32_t b = 0; b < n; b++) {
        const bc_mig_record_t *rec = migs->rec[b];
        if (rec != NULL && rec->state == BC_MIG_COPYING) {
            r->final[b] = 1;
            r->final_epoch[b] = rec->epoch;
        }
    }
    uint8_t *decided = calloc(n, 1);
    if (decided == NULL) return BC_ENOMEM;

    /* 1. Reports. */
    size_t k = 0;
    for (; k < in->nreports && r->budget > 0; k++) {
        const bc_mig_report_t *rep = &in->reports[k];
        const bc_mig_record_t *rec = rep->bucket < n ? migs->rec[rep->bucket] : NULL;
        if (rec == NULL || rec->state != BC_MIG_COPYING || rec->epoch != rep->epoch ||
            decided[rep->bucket]) {
            /* BEHAVIOR (fencing): only the attempt the record names may
             * complete; a report of an earlier one changes nothing. */
            out->mig_rejected++;
            summary_add(out, "stale copy report for bucket %u at epoch %llu rejected",
                        rep->bucket, (unsigned long long)rep->epoch);
            continue;
        }
        decided[rep->bucket] = 1;
        const char *why = move_check(r, rec);
        if (why == NULL && rep->ok && strcmp(rep->node, rec->to_node) != 0) {
            why = "the copy was made by another destination node";
        }
        if (!rep->ok) why = rep->error[0] ? rep->error : "copy failed";
        if (why == NULL) move_cutover(r, rec, rep);
        else move_abort(r, rec, why);
    }
    out->nreports_used = k;

    /* 2. Copies still running: do they still make sense?  A cancel lets
     * them finish but marks them, so that a failure does not retry. */
    for (uint32_t b = 0; b < n && r->budget > 0; b++) {
        const bc_mig_record_t *rec = migs->rec[b];
        if (rec == NULL || rec->state != BC_MIG_COPYING || decided[b]) continue;
        const char *why = move_check(r, rec);
        if (why != NULL) {
            decided[b] = 1;
            move_abort(r, rec, why);
        } else if (in->cancel_rebalance && !rec->cancelled) {
            decided[b] = 1;
            bc_mig_record_t next = *rec;
            next.cancelled = true;
            move_put(r, b, rec->version, false, &next);
        }
    }

    /* 3. Obsolete pending records; read-only flags without a copy. */
    for (uint32_t b = 0; b < n; b++) {
        const bc_mig_record_t *rec = migs->rec[b];
        if (rec != NULL && rec->state == BC_MIG_PENDING && !decided[b] && r->budget > 0) {
            bool planned = out->m.owner[b] != 0 && out->d.owner[b] != 0 &&
                           out->m.owner[b] != out->d.owner[b];
            if (!planned || rec->from == 0) {
                decided[b] = 1;
                move_put(r, b, rec->version, true, NULL);
            }
        }
        if (out->c.readonly[b] && !r->final[b]) {
            out->c.readonly[b] = 0;
            out->tables_changed = true;
            summary_add(out, "bucket %u was read-only without a copy: writable again", b);
        }
    }

    /* 4. Start copies.  With precopy, look ahead past the copy slots for
     * the buckets to precopy next: up to bc_mig_pool_precopy_window() not
     * started. */
    uint32_t ncopying = 0;
    for (uint32_t b = 0; b < n; b++) ncopying += r->final[b];
    /*
     * BEHAVIOR (batches): the console commits one transaction at a time,
     * and every commit is a ZooKeeper fsync.  A copy started in a round
     * that writes nothing else costs a commit of its own, and a copy
     * report arriving meanwhile waits for it before its cutover can be
     * committed -- inside that bucket's write pause.  So while copies are
     * in flight, new ones start only in a round that writes anyway (a
     * cutover, an abort, any table change); with none in flight they
     * start at once.  Copies then start together and are cut over
     * together: one commit ends one batch and starts the next.
     */
    bool writes = out->tables_changed || out->nmig > 0 || out->control_changed ||
                  out->nprimaries > 0 || out->ndepartures > 0;
    /* ... but a copy that takes long (a delta that fell back to a full
     * copy, a slow destination) must not idle the free slots: once the
     * youngest copy in flight has run BC_RECONCILE_BATCH_WAIT_MS, copies
     * start without waiting for it. */
    int64_t youngest = INT64_MIN;
    for (uint32_t b = 0; b < n; b++) {
        const bc_mig_record_t *rec = migs->rec[b];
        if (r->final[b] && rec != NULL && rec->started_ms > youngest) youngest = rec->started_ms;
    }
    int64_t opens_in = 0;          /* ms until the wait is over (at most the wait) */
    if (youngest != INT64_MIN) opens_in = youngest + BC_RECONCILE_BATCH_WAIT_MS - in->now_ms;
    if (opens_in > BC_RECONCILE_BATCH_WAIT_MS) opens_in = BC_RECONCILE_BATCH_WAIT_MS;
    bool batch_open = ncopying == 0 || writes || opens_in <= 0;
    bool paused = out->control->paused;
    size_t lookahead =
        in->precopy != NULL ? bc_mig_pool_precopy_window(in->parallel, in->precopy_ahead) : 0;
    size_t nahead = 0;
    uint32_t probed[64];           /* destinations probed in this round */
    size_t nprobed = 0;
    for (uint32_t b = 0; b < n && !paused && (ncopying < in->parallel || nahead < lookahead);
         b++) {
        uint32_t from = out->m.owner[b], to = out->d.owner[b];
        if (from == 0 || to == 0 || from == to || out->c.owner[b] != from || r->final[b] ||
            decided[b]) {
            continue;
        }
        const bc_mig_record_t *rec = migs->rec[b];
        if (rec != NULL && rec->retry_at_ms > in->now_ms) continue;  /* backing off */
        const bc_cluster_node_info_t *src = move_primary(r->v, out, from);
        const bc_cluster_node_info_t *dst = move_primary(r->v, out, to);
        if (src == NULL || dst == NULL) {
            /* A group whose primary's registration is gone (or is being
             * replaced) gets nothing planned onto it, nor taken from it. */
            out->mig_held_back++;
            continue;
        }
        if (bc_mig_dest_backing_off(in->dest_backoff, in->ndest_backoff, to, dst->name,
                                    in->now_ms)) {
            out->mig_held_back++;
            continue;
        }
        /* BEHAVIOR: a destination whose backoff just ran out is probed with
         * ONE job (a precopy, or a copy without precopy) until one succeeds
         * and clears its record: a still-dead destination costs one failure
         * per backoff step, not a whole window of them. */
        const bc_mig_dest_backoff_t *bo =
            bc_mig_dest_find(in->dest_backoff, in->ndest_backoff, to);
        bool probing = bo != NULL && bo->failures > 0 && strcmp(bo->node, dst->name) == 0;
        if (probing && move_probed(probed, &nprobed, to)) {
            out->mig_held_back++;
            continue;
        }
        bool ready = in->precopy == NULL ||
                     (in->precopy[b].from == from && in->precopy[b].to == to);
        if (!ready || ncopying >= in->parallel || !batch_open) {
            if (ready && ncopying + out->mig_deferred < in->parallel) out->mig_deferred++;
            if (nahead == lookahead) continue;
            nahead++;
            if (!ready) {
                /* The run starts with its first copy, a precopy included:
                 * its elapsed time (and so its rate) counts every copy. */
                move_run_start(r);
                out->precopy_wanted[out->nprecopy_wanted++] =
                    (bc_reconcile_precopy_want_t){.bucket = b, .from = from, .to = to};
                if (probing) probed[nprobed++] = to;
            }
            continue;
        }
        if (probing) probed[nprobed++] = to;
        if (r->budget == 0) {
            out->mig_more = true;
            break;
        }
        move_run_start(r);
        bc_mig_record_t next;
        memset(&next, 0, sizeof(next));
        next.bucket = b;
        next.state = BC_MIG_COPYING;
        next.from = from;
        next.to = to;
        snprintf(next.from_node, sizeof(next.from_node), "%s", src->name);
        snprintf(next.to_node, sizeof(next.to_node), "%s", dst->name);
        next.started_ms = in->now_ms;
        next.attempts = rec != NULL ? rec->attempts : 0;
        r->started[r->nstarted++] = out->nmig;
        move_put(r, b, rec != NULL ? rec->version : -1, false, &next);
        out->c.readonly[b] = 1;
        out->tables_changed = true;
        r->final[b] = 1;
        r->final_epoch[b] = 0;
        decided[b] = 1;
        ncopying++;
        out->mig_started++;
    }
    if (out->mig_started > 0) {
        summary_add(out, "%u buckets start copying (read-only at their source)", out->mig_started);
    }
    if (out->mig_deferred > 0) out->mig_batch_wait_ms = opens_in > 0 ? opens_in : 1;
    if (k < in->nreports || r->budget == 0) out->mig_more = true;

    /* 5. The run is over when nothing is left to copy. */
    bool left = ncopying > 0;
    for (uint32_t b = 0; b < n && !left; b++) {
        left = out->m.owner[b] != 0 && out->d.owner[b] != 0 && out->m.owner[b] != out->d.owner[b];
    }
    if (!left && out->control->run_started_ms != 0 && out->control->run_finished_ms == 0) {
        out->control->run_finished_ms = in->now_ms;
        out->control_changed = true;
        summary_add(out, "migration run finished: %llu buckets, %llu bytes moved",
                    (unsigned long long)out->control->moved,
                    (unsigned long long)out->control->bytes);
    }
    free(decided);
    return BC_OK;
}

/* Cancel: d := m wherever no copy runs; hold the groups left empty. */
static void
reconcile_cancel(const bc_reconcile_input_t *in, bc_view_t *v, bc_reconcile_output_t *out)
{
    uint32_t reverted = 0;
    for (uint32_t b = 0; b < v->nbuckets; b++) {
        const bc_mig_record_t *rec = in->migs->rec[b];
        bool copying = rec != NULL && rec->state == BC_MIG_COPYING;
        if (out->m.owner[b] != 0 && out->d.owner[b] != out->m.owner[b] && !copying) {
            out->d.owner[b] = out->m.owner[b];
            reverted++;
        }
    }
    if (reverted > 0) out->tables_changed = true;
    for (size_t i = 0; i < v->ngroups; i++) {
        const bc_view_group_t *g = &v->groups[i];
        if (!group_live(g) || table_names(&out->d, g->gid) || control_holds(out->control, g->gid) ||
            out->control->nheld == BC_MIG_MAX_HELD) {
            continue;
        }
        out->control->held[out->control->nheld++] = g->gid;
    }
    out->control_changed = true;
    summary_add(out, "rebalance cancelled: %u planned moves dropped; %u groups held back", reverted,
                out->control->nheld);
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
    out->waiting = calloc(v->ngroups + 1, sizeof(*out->waiting));
    if (in->migs != NULL) {
        out->control = malloc(sizeof(*out->control));
        out->mig = calloc((size_t)n + BC_ZK_TXN_MAX, sizeof(*out->mig));
        out->aborts = calloc((size_t)n + 1, sizeof(*out->aborts));
        out->copying = calloc((size_t)n + 1, sizeof(*out->copying));
        if (in->precopy != NULL) {
            out->precopy_wanted =
                calloc(bc_mig_pool_precopy_window(in->parallel, in->precopy_ahead) + 1,
                       sizeof(*out->precopy_wanted));
        }
        if (!out->control || !out->mig || !out->aborts || !out->copying ||
            (in->precopy != NULL && !out->precopy_wanted)) {
            st = BC_ENOMEM;
            goto out;
        }
        *out->control = in->migs->control;
        bool want_paused = in->pause == BC_RECONCILE_PAUSE_SET;
        if (in->pause != BC_RECONCILE_PAUSE_KEEP && out->control->paused != want_paused) {
            out->control->paused = want_paused;
            out->control_changed = true;
            summary_add(out, "migrations %s", out->control->paused ? "paused" : "resumed");
        }
        if (in->force_rebalance && out->control->nheld > 0) {
            out->control->nheld = 0;
            out->control_changed = true;
        }
    }
    ids = calloc((size_t)n * 3 + 1, sizeof(*ids));
    reserved = calloc(n, 1);
    pgroups = calloc(v->ngroups + 1, sizeof(*pgroups));
    if (!out->departures || !out->primaries || !out->waiting || !ids || !reserved || !pgroups) {
        st = BC_ENOMEM;
        goto out;
    }
    bool primary_changed = false;

    /* 1. Primaries. */
    bc_reconcile_failover_t *fo = &out->failover;
    if (in->unclean_gid != 0) {
        fo->gid = in->unclean_gid;
        const bc_view_group_t *g = bc_view_group(v, in->unclean_gid);
        if (g == NULL) snprintf(fo->error, sizeof(fo->error), "no such group");
        else if (!group_live(g)) snprintf(fo->error, sizeof(fo->error), "the group has no live node");
    }
    for (size_t i = 0; i < v->ngroups; i++) {
        const bc_view_group_t *g = &v->groups[i];
        if (!group_live(g)) {
            if (g->has_primary || g->primary_version >= 0) {
                bc_reconcile_primary_update_t *p = &out->primaries[out->nprimaries++];
                p->gid = g->gid;
                p->version = g->primary_version;
                p->remove = true;
                p->isr_version = g->isr_version;
                summary_add(out, "group %u has no live node: primary %s removed", g->gid,
                            g->has_primary ? g->primary.node : "record");
            }
            continue;
        }
        bool unclean = in->unclean_gid == g->gid;
        const bc_cluster_node_info_t *best;
        pick_t pick = reconcile_pick_primary(g, unclean, &best);
        const bc_cluster_isr_t *isr = group_term_isr(g);
        if (unclean && pick == PICK_KEEP) {
            snprintf(fo->error, sizeof(fo->error), "its primary %s is alive: nothing to fail over",
                     g->primary.node);
        }
        if (pick == PICK_KEEP) continue;
        if (pick == PICK_WAIT) {
            out->waiting[out->nwaiting++] = g->gid;
            continue;
        }
        bc_reconcile_primary_update_t *p = &out->primaries[out->nprimaries++];
        p->gid = g->gid;
        p->version = g->primary_version;
        snprintf(p->info.node, sizeof(p->info.node), "%s", best->name);
        snprintf(p->info.data_addr, sizeof(p->info.data_addr), "%s", best->data_addr);
        snprintf(p->info.admin_addr, sizeof(p->info.admin_addr), "%s", best->admin_addr);
        snprintf(p->info.incarnation, sizeof(p->info.incarnation), "%s", best->incarnation);
        /* The new term's in-sync record: the old term's other members
         * carry over (they hold every acknowledged write, and the new
         * primary waits for them from its first write); none when the
         * old term had no record, or for an unclean failover. */
        p->isr_version = g->isr_version;
        memset(&p->isr, 0, sizeof(p->isr));
        bool clean = isr != NULL && best->synced &&
                     (bc_cluster_isr_has(isr, best->name) || group_old_primary(g, best));
        if (isr != NULL && clean) {
            p->isr = *isr;
            (void)bc_cluster_isr_remove(&p->isr, best->name);
        }
        p->isr.offset = best->offset;
        p->isr.at_ms = in->now_ms;
        primary_changed = true;
        if (unclean) {
            fo->done = true;
            fo->clean = clean;
            snprintf(fo->node, sizeof(fo->node), "%s", best->name);
            snprintf(fo->old_primary, sizeof(fo->old_primary), "%s",
                     g->has_primary ? g->primary.node : "");
            fo->offset = best->offset;
            fo->recorded = isr != NULL;
            fo->recorded_offset = isr != NULL ? isr->offset : 0;
            fo->recorded_at_ms = isr != NULL ? isr->at_ms : 0;
            fo->behind = fo->recorded && fo->recorded_offset > best->offset
                             ? fo->recorded_offset - best->offset : 0;
        }
        if (unclean && !clean) {
            summary_add(out, "group %u: UNCLEAN failover to %s (%s, offset %llu%s): acknowledged "
                        "writes %s may be lost", g->gid, best->name, best->data_addr,
                        (unsigned long long)best->offset, best->synced ? "" : ", data incomplete",
                        isr != NULL ? "after the old primary's last in-sync record" : "");
        } else if (group_old_primary(g, best)) {
            summary_add(out, "group %u primary: %s (%s), its old primary %s registered anew "
                        "(the same process)", g->gid, best->name, best->data_addr,
                        g->primary.node);
        } else if (pick == PICK_EMPTY) {
            summary_add(out, "group %u primary: %s (%s), was %s: no live node holds any data of "
                        "its term (every copy of it is gone): the group starts empty", g->gid,
                        best->name, best->data_addr, g->primary.node);
        } else {
            summary_add(out, "group %u primary: %s (%s)%s%s%s", g->gid, best->name,
                        best->data_addr, g->has_primary ? ", was " : "",
                        g->has_primary ? g->primary.node : "",
                        g->has_primary && isr != NULL ? ", from its in-sync set" : "");
        }
    }

    /* 2. Groups down: zero their entries, record what they held. */
    size_t nids = reconcile_table_gids(v, ids);
    for (size_t i = 0; i < nids; i++) {
        uint32_t gid = ids[i];
        bc_view_group_t *g = bc_view_group(v, gid);
        if (group_live(g)) continue;
        uint32_t held = 0;
        if (g != NULL && !g->departure.present) {
            bc_reconcile_departure_update_t *u = departure_slot(out, g);
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
    bool filled_back = false;
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
            filled_back = true;
            summary_add(out, "group %u back: %u buckets filled back", g->gid, g->departure.nbuckets);
        } else {
            summary_add(out, "group %u back, but its buckets moved meanwhile: joins as a new group",
                        g->gid);
        }
        bc_reconcile_departure_update_t *u = departure_slot(out, g);
        u->record.present = false;
    }

    /* 4b. A cancelled rebalance. */
    if (in->cancel_rebalance && in->migs != NULL) reconcile_cancel(in, v, out);

    /* 5. Rebalance when needed. */
    size_t nlive = 0;
    bool want = in->force_rebalance, has_new = false, has_orphans = false;
    for (size_t i = 0; i < v->ngroups; i++) {
        const bc_view_group_t *g = &v->groups[i];
        if (!group_live(g)) continue;
        pgroups[nlive].gid = g->gid;
        pgroups[nlive].memory = bc_view_group_memory(g);
        nlive++;
        if (!table_names(&out->d, g->gid) && !control_holds(out->control, g->gid)) has_new = true;
    }
    for (uint32_t b = 0; b < n; b++) {
        if (!reserved[b] && (out->d.owner[b] == 0 || out->m.owner[b] == 0)) has_orphans = true;
    }
    /*
     * BEHAVIOR: a group back with its buckets is planned for again.  While
     * it was down, the moves planned onto it (d naming it where m does not)
     * had no destination and were planned over the survivors; filled back
     * with only what it held, it would stay below its share for good.  The
     * planner starts from m, so a plan that already stands is kept.
     */
    want = (want && !in->cancel_rebalance) || has_new || has_orphans || filled_back;
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
    /* 6. Migrations. */
    if (in->migs != NULL) {
        size_t fixed = RECONCILE_FIXED_OPS + out->ndepartures + 2 * out->nprimaries;
        move_round_t r = {
            .in = in, .v = v, .out = out,
            .budget = fixed < BC_ZK_TXN_MAX ? BC_ZK_TXN_MAX - fixed : 0,
            .final = calloc(n, 1), .final_epoch = calloc(n, sizeof(uint64_t)),
            .started = calloc((size_t)n + 1, sizeof(size_t)),
        };
        st = r.final && r.final_epoch && r.started ? reconcile_migrations(&r) : BC_ENOMEM;
        if (st == BC_OK) {
            uint64_t e = v->c.epoch;
            if (v->m.epoch > e) e = v->m.epoch;
            if (v->d.epoch > e) e = v->d.epoch;
            /* A copy started now is at the epoch this round writes. */
            for (size_t i = 0; i < r.nstarted; i++) out->mig[r.started[i]].record.epoch = e + 1;
            for (uint32_t b = 0; b < n; b++) {
                if (!r.final[b]) continue;
                bc_reconcile_copying_t *cp = &out->copying[out->ncopying++];
                cp->bucket = b;
                cp->epoch = r.final_epoch[b] ? r.final_epoch[b] : e + 1;
                cp->from = out->m.owner[b];
                cp->to = out->d.owner[b];
            }
        }
        free(r.final);
        free(r.final_epoch);
        free(r.started);
        if (st != BC_OK) goto out;
    }

    for (uint32_t b = 0; b < n; b++) {
        if (bc_table_move_planned(out->m.owner[b], out->d.owner[b])) out->pending_moves++;
    }

    if (out->tables_changed || primary_changed) {
        uint64_t e = v->c.epoch;
        if (v->m.epoch > e) e = v->m.epoch;
        if (v->d.epoch > e) e = v->d.epoch;
        out->c.epoch = out->m.epoch = out->d.epoch = e + 1;
        out->tables_changed = true;
        for (size_t i = 0; i < out->nprimaries; i++) {
            bc_reconcile_primary_update_t *p = &out->primaries[i];
            p->info.epoch = e + 1;
            snprintf(p->isr.primary, sizeof(p->isr.primary), "%s", p->info.node);
            p->isr.epoch = e + 1;
        }
    }
    out->changed = out->tables_changed || out->nprimaries > 0 || out->ndepartures > 0 ||
                   out->nmig > 0 || out->control_changed;
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
    for (size_t i = 0; i < out->ndepartures; i++) {
        bc_view_departure_free(&out->departures[i].record);
    }
    free(out->departures);
    free(out->primaries);
    free(out->waiting);
    free(out->mig);
    free(out->control);
    free(out->aborts);
    free(out->copying);
    free(out->precopy_wanted);
    memset(out, 0, sizeof(*out));
}
