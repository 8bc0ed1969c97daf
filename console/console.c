/*
 * console.c -- the coordinator around reconcile.c: the election, the loop
 * thread, and carrying out what a round decided.  console.h says what it
 * guarantees (election, fencing, cached rounds, how copies resume).
 *
 * ONE ROUND (console_reconcile_round; the loop and the API both run it)
 *   1. the state: the view (view.h) and the migration set (migrate.h),
 *      read from ZooKeeper -- arming watches, and asking a leaderless
 *      group's nodes for their replication offsets -- or, in a quick round
 *      with a fresh cache, the state the last rounds read and wrote;
 *   2. the copy and precopy reports the pool posted since (migrate_pool.h);
 *   3. bc_reconcile decides, without I/O;
 *   4. console_commit writes the result as ONE transaction that also
 *      checks our election znode and the versions everything was read at;
 *   5. reports it did not decide go back to the pool; precopy readiness
 *      that aged out or whose move is gone is swept; console_drive_copies
 *      hands the pool a job for every copying bucket without one and the
 *      precopies reconcile wants; the cache follows the write.
 *   A rebalance or a pause/resume/cancel asked through the API is the same
 *   round on the HTTP thread, with its options (force, dry run, cancel,
 *   pause).
 *
 * THREADS AND LOCKING
 *   console_loop is the one thread that elects and runs rounds: when
 *   woken (a watch, a session event, a pool report, a round that left
 *   work) and every reconcile interval.  ZooKeeper's callbacks and the
 *   pool's workers only set flags under mu and signal cv (console_wake).
 *   mu guards the wake flags, my_node and the stats, and is never held
 *   across I/O; op_mu is held for a whole round (read, decide, write) so
 *   rounds never interleave, and guards the cache and precopy readiness.
 */
#include "console.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_cluster.h"
#include "bc_log.h"
#include "bc_metrics.h"
#include "bc_time.h"

/* Longest znode path the console builds: cluster path + a sequential name. */
#define CONSOLE_PATH_MAX (BC_CLUSTER_PATH_MAX + 32)
#define CONSOLE_MAX_REPORTS 64
/* How long a round with a copy report waits for the other copies of its
 * batch to report (bc_mig_pool_gather): a batch's reports come within a
 * few ms, a cutover commit takes 5-50 ms. */
#define CONSOLE_BATCH_GATHER_MS 5
/* A precopy counts as ready this long after its report; then it is asked
 * for again, which the destination answers at once while its precopy is
 * still usable -- so a console never starts a copy on a readiness it has
 * not heard of lately. */
#define CONSOLE_PRECOPY_READY_MS 20000
#define CONSOLE_DEFAULT_MIG_TIMEOUT_MS 30000u

#define CONSOLE_OFFSET_TIMEOUT_MS 300   /* asking a failover candidate its offset */
/* While copies are in flight, rounds decide on the cached state (what the
 * last load read plus what every round since wrote) unless a watch fired;
 * the state is read again from ZooKeeper at least this often anyway. */
#define CONSOLE_MIG_RELOAD_MS 10000


struct bc_console {
    char *cluster;
    char *admin_addr;
    int64_t orphan_grace_ms;
    uint32_t interval_ms;
    uint32_t nbuckets;
    uint32_t parallel;
    uint32_t precopy_ahead;        /* per copy slot, as configured (0: the default) */
    bc_zk_t *zk;
    bc_mig_pool_t *pool;           /* NULL when migrations are off */

    /* mu guards the wake flags, my_node and the counters below it; cv wakes
     * the loop.  op_mu serialises reconcile rounds and API-driven
     * rebalances so they never interleave their read-modify-write. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_mutex_t op_mu;
    bool dirty;                    /* a round is due */
    bool watch_fired;              /* a ZooKeeper watch or session event since the last load */
    bool reelect;
    bool stopping;
    int64_t batch_round_at;        /* monotonic ms: a round then starts the copies a batch
                                    * held back (reconcile.h, mig_batch_wait_ms); 0: none */
    char my_node[CONSOLE_PATH_MAX];   /* full election znode path */
    bc_console_stats_t stats;

    _Atomic bool leader;
    pthread_t thread;
    bool thread_started;

    /* The state the last round read and wrote (tables, migrations and the
     * groups as loaded), kept so a round woken only by copy reports can
     * decide without reading ZooKeeper again.  LOCKING RULE: op_mu. */
    bool cache_valid;
    int64_t cache_loaded_ms;
    bc_view_t cache_view;
    bc_mig_set_t cache_migs;

    /* Precopy (NULL when off): per bucket, the move it was precopied for
     * ({0, 0}: none) -- reconcile's input as it is -- and when its report
     * came (monotonic ms).  The sweep after each round forgets what aged
     * out.  LOCKING RULE: op_mu. */
    bc_reconcile_precopy_t *precopied;
    int64_t *precopied_ms;

    /* Destinations backing off (migrate.h), from the copy and precopy
     * reports.  LOCKING RULE: op_mu. */
    bc_mig_dest_backoffs_t dest_backoff;
    /* The groups the last round found waiting (logged when it changes).
     * LOCKING RULE: op_mu. */
    uint32_t waiting_logged[16];
    size_t nwaiting_logged;
};

/* Asks the loop for a round now.  watch: ZooKeeper changed (the round
 * loads its state again instead of using the cached one); reelect: the
 * election znode must be made again first. */
static void
console_wake(bc_console_t *cs, bool watch, bool reelect)
{
    pthread_mutex_lock(&cs->mu);
    cs->dirty = true;
    if (watch) cs->watch_fired = true;
    if (reelect) cs->reelect = true;
    pthread_cond_signal(&cs->cv);
    pthread_mutex_unlock(&cs->mu);
}

/* A copy finished: decide it in the next round, now. */
static void
console_pool_notify(void *ctx)
{
    console_wake(ctx, false, false);
}

static void
console_on_watch(bc_zk_t *zk, const char *path, void *ctx)
{
    bc_console_t *cs = ctx;
    (void)zk;
    (void)path;
    console_wake(cs, true, false);
}

static void
console_on_session(bc_zk_t *zk, bc_zk_event_t ev, void *ctx)
{
    bc_console_t *cs = ctx;
    (void)zk;
    /*
     * BEHAVIOR: a disconnected console cannot know whether it is still the
     * leader (its session may expire and a standby take over at any
     * moment), so it stops claiming leadership until it has reconnected and
     * re-checked the election.  Its writes are fenced regardless.
     */
    if ((ev == BC_ZK_EXPIRED || ev == BC_ZK_DISCONNECTED) && atomic_exchange(&cs->leader, false)) {
        log_warn("console: %s: not acting as the active console until re-elected",
                 ev == BC_ZK_EXPIRED ? "session expired" : "ZooKeeper connection lost");
    }
    console_wake(cs, true, ev == BC_ZK_NEW_SESSION);
}

/* Creates our election znode.  Returns BC_OK when registered. */
static bc_status_t
console_register(bc_console_t *cs)
{
    char prefix[BC_CLUSTER_PATH_MAX], created[BC_CLUSTER_PATH_MAX + 32], json[BC_ADDR_MAX + 64];
    bc_cluster_path(prefix, sizeof(prefix), cs->cluster, "/console/election/c-");
    snprintf(json, sizeof(json), "{\"admin\":\"%s\"}", cs->admin_addr);
    bc_status_t st = bc_zk_create(cs->zk, prefix, json, strlen(json),
                                  BC_ZK_EPHEMERAL | BC_ZK_SEQUENTIAL, created, sizeof(created));
    if (st != BC_OK) return st;
    pthread_mutex_lock(&cs->mu);
    snprintf(cs->my_node, sizeof(cs->my_node), "%s", created);
    snprintf(cs->stats.election_node, sizeof(cs->stats.election_node), "%.39s",
             strrchr(created, '/') + 1);
    pthread_mutex_unlock(&cs->mu);
    log_info("console: joined the election as %s", strrchr(created, '/') + 1);
    return BC_OK;
}

/*
 * Decides leadership.  Leader when our znode is the lowest; otherwise arms
 * a watch on the predecessor.  If the predecessor vanished between the
 * listing and the watch, list again.
 */
static bc_status_t
console_elect(bc_console_t *cs)
{
    char dir[BC_CLUSTER_PATH_MAX], mine[BC_CLUSTER_PATH_MAX + 32];
    bc_cluster_path(dir, sizeof(dir), cs->cluster, "/console/election");
    pthread_mutex_lock(&cs->mu);
    snprintf(mine, sizeof(mine), "%s", cs->my_node);
    pthread_mutex_unlock(&cs->mu);
    const char *my_name = strrchr(mine, '/') ? strrchr(mine, '/') + 1 : mine;

    for (int attempt = 0; attempt < 10; attempt++) {
        bc_zk_strings_t names;
        bc_status_t st = bc_zk_children(cs->zk, dir, NULL, NULL, &names);
        if (st != BC_OK) return st;
        int idx = -1;
        for (int i = 0; i < names.count; i++) {
            if (strcmp(names.names[i], my_name) == 0) idx = i;
        }
        if (idx < 0) {
            /* Our znode is gone (session trouble): register again. */
            bc_zk_strings_free(&names);
            atomic_store(&cs->leader, false);
            return BC_ENOTFOUND;
        }
        if (idx == 0) {
            bc_zk_strings_free(&names);
            if (!atomic_exchange(&cs->leader, true)) {
                pthread_mutex_lock(&cs->mu);
                cs->stats.elections_won++;
                pthread_mutex_unlock(&cs->mu);
                log_info("console: ACTIVE (leader of cluster \"%s\")", cs->cluster);
            }
            return BC_OK;
        }
        char pred[BC_CLUSTER_PATH_MAX + 32];
        snprintf(pred, sizeof(pred), "%s/%s", dir, names.names[idx - 1]);
        bc_zk_strings_free(&names);
        if (atomic_exchange(&cs->leader, false)) log_warn("console: no longer the active console");
        st = bc_zk_exists(cs->zk, pred, console_on_watch, cs, NULL);
        if (st == BC_OK) {
            log_debug("console: standby, watching %s", pred);
            return BC_OK;
        }
        if (st != BC_ENOTFOUND) return st;
    }
    return BC_EAGAIN;
}

/* Adds the writes of a reconcile result to txn.  Strings kept in bufs. */
static bc_status_t
console_build_txn(bc_console_t *cs, const bc_view_t *view, const bc_reconcile_output_t *out,
                  bc_zk_txn_t *txn, char **bufs, size_t *nbufs, char (*paths)[CONSOLE_PATH_MAX])
{
    size_t np = 0;
    bc_status_t st = BC_OK;
    pthread_mutex_lock(&cs->mu);
    snprintf(paths[np], CONSOLE_PATH_MAX, "%s", cs->my_node);
    pthread_mutex_unlock(&cs->mu);
    bc_zk_txn_check(txn, paths[np++], -1);

    if (out->tables_changed) {
        const bc_table_t *ts[3] = {&out->c, &out->m, &out->d};
        const int32_t vs[3] = {view->c_version, view->m_version, view->d_version};
        for (int i = 0; i < 3; i++) {
            char suffix[16];
            snprintf(suffix, sizeof(suffix), "/tables/%c", ts[i]->name);
            bc_cluster_path(paths[np], CONSOLE_PATH_MAX, cs->cluster, suffix);
            char *json = bc_table_encode(ts[i]);
            if (json == NULL) return BC_ENOMEM;
            bufs[(*nbufs)++] = json;
            st = bc_zk_txn_set(txn, paths[np++], json, strlen(json), vs[i]);
            if (st != BC_OK) return st;
        }
    } else if (out->nmig > 0 || out->control_changed) {
        /* Migration records are decided from the tables: check they are
         * still the ones read. */
        const char names[3] = {'c', 'm', 'd'};
        const int32_t vs[3] = {view->c_version, view->m_version, view->d_version};
        for (int i = 0; i < 3; i++) {
            char suffix[16];
            snprintf(suffix, sizeof(suffix), "/tables/%c", names[i]);
            bc_cluster_path(paths[np], CONSOLE_PATH_MAX, cs->cluster, suffix);
            bc_zk_txn_check(txn, paths[np++], vs[i]);
        }
    }
    if (out->control != NULL && (out->control_changed || out->nmig > 0)) {
        /* The migrations znode: its data is the control record; its
         * version is checked (or it is created) even when only records
         * change, so two writers of migrations/ cannot interleave. */
        bc_cluster_path(paths[np], CONSOLE_PATH_MAX, cs->cluster, "/migrations");
        char *json = bc_mig_control_encode(out->control);
        if (json == NULL) return BC_ENOMEM;
        bufs[(*nbufs)++] = json;
        st = out->control->version < 0
                 ? bc_zk_txn_create(txn, paths[np++], json, strlen(json), 0)
                 : bc_zk_txn_set(txn, paths[np++], json, strlen(json), out->control->version);
        if (st != BC_OK) return st;
    }
    for (size_t i = 0; i < out->nmig; i++) {
        const bc_reconcile_mig_update_t *u = &out->mig[i];
        char suffix[40];
        snprintf(suffix, sizeof(suffix), "/migrations/%u", u->bucket);
        bc_cluster_path(paths[np], CONSOLE_PATH_MAX, cs->cluster, suffix);
        if (u->remove) {
            st = bc_zk_txn_delete(txn, paths[np++], u->version);
        } else {
            char *json = bc_mig_record_encode(&u->record);
            if (json == NULL) return BC_ENOMEM;
            bufs[(*nbufs)++] = json;
            st = u->version < 0 ? bc_zk_txn_create(txn, paths[np++], json, strlen(json), 0)
                                : bc_zk_txn_set(txn, paths[np++], json, strlen(json), u->version);
        }
        if (st != BC_OK) return st;
    }
    for (size_t i = 0; i < out->ndepartures; i++) {
        const bc_reconcile_departure_update_t *u = &out->departures[i];
        char suffix[32];
        snprintf(suffix, sizeof(suffix), "/groups/%u", u->gid);
        bc_cluster_path(paths[np], CONSOLE_PATH_MAX, cs->cluster, suffix);
        char *json = bc_view_departure_encode(&u->record);
        if (json == NULL) return BC_ENOMEM;
        bufs[(*nbufs)++] = json;
        st = bc_zk_txn_set(txn, paths[np++], json, strlen(json), u->version);
        if (st != BC_OK) return st;
    }
    /* A primary record and its term's in-sync record are written together,
     * each a compare-and-set on the version read (-1: created), so a node
     * that changed either meanwhile (its in-sync set, its own promotion)
     * makes the whole round fail and be decided again. */
    for (size_t i = 0; i < out->nprimaries; i++) {
        const bc_reconcile_primary_update_t *p = &out->primaries[i];
        char suffix[48], isr_suffix[48];
        snprintf(suffix, sizeof(suffix), "/groups/%u/primary", p->gid);
        snprintf(isr_suffix, sizeof(isr_suffix), "/groups/%u/isr", p->gid);
        if (p->remove) {
            if (p->version >= 0) {
                bc_cluster_path(paths[np], CONSOLE_PATH_MAX, cs->cluster, suffix);
                st = bc_zk_txn_delete(txn, paths[np++], p->version);
            }
            if (st == BC_OK && p->isr_version >= 0) {
                bc_cluster_path(paths[np], CONSOLE_PATH_MAX, cs->cluster, isr_suffix);
                st = bc_zk_txn_delete(txn, paths[np++], p->isr_version);
            }
            if (st != BC_OK) return st;
            continue;
        }
        bc_cluster_path(paths[np], CONSOLE_PATH_MAX, cs->cluster, suffix);
        char *json = bc_cluster_primary_info_encode(&p->info);
        if (json == NULL) return BC_ENOMEM;
        bufs[(*nbufs)++] = json;
        st = p->version < 0 ? bc_zk_txn_create(txn, paths[np++], json, strlen(json), 0)
                            : bc_zk_txn_set(txn, paths[np++], json, strlen(json), p->version);
        if (st != BC_OK) return st;
        bc_cluster_path(paths[np], CONSOLE_PATH_MAX, cs->cluster, isr_suffix);
        json = bc_cluster_isr_encode(&p->isr);
        if (json == NULL) return BC_ENOMEM;
        bufs[(*nbufs)++] = json;
        st = p->isr_version < 0 ? bc_zk_txn_create(txn, paths[np++], json, strlen(json), 0)
                                : bc_zk_txn_set(txn, paths[np++], json, strlen(json),
                                                p->isr_version);
        if (st != BC_OK) return st;
    }
    return st;
}

const uint32_t bc_console_stall_bounds_ms[BC_CONSOLE_STALL_NBOUNDS] = {
    10, 20, 50, 100, 200, 500, 1000, 5000,
};

const uint32_t bc_console_commit_bounds_ms[BC_CONSOLE_COMMIT_NBOUNDS] = {
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 200, 500, 1000,
};

/* Adds the stalls of the moves this round cut over (the newest entries of
 * the run's stall ring) to the cumulative histogram.  cs->mu held. */
static void
console_count_stalls(bc_console_t *cs, const bc_reconcile_output_t *out)
{
    if (out->control == NULL) return;
    const bc_mig_control_t *c = out->control;
    for (uint32_t k = 0; k < out->mig_cutovers && k < c->nstalls; k++) {
        uint32_t ms = c->stalls[(c->stall_next + BC_MIG_STALL_SAMPLES - 1 - k) %
                                BC_MIG_STALL_SAMPLES];
        cs->stats.stall_hist[bc_metric_bin_ms(bc_console_stall_bounds_ms,
                                              BC_CONSOLE_STALL_NBOUNDS, ms)]++;
        cs->stats.stall_sum_ms += ms;
    }
}

/* Commits a reconcile result in one fenced transaction. */
static bc_status_t
console_commit(bc_console_t *cs, const bc_view_t *view, const bc_reconcile_output_t *out)
{
    bc_zk_txn_t *txn = bc_zk_txn_new();
    if (txn == NULL) return BC_ENOMEM;
    char *bufs[BC_ZK_TXN_MAX];
    size_t nbufs = 0;
    static _Thread_local char paths[BC_ZK_TXN_MAX][CONSOLE_PATH_MAX];
    size_t needed = 1 + 3 + out->ndepartures + 2 * out->nprimaries + 1 + out->nmig;
    bc_status_t st = needed > BC_ZK_TXN_MAX
                         ? BC_ETOOLARGE : console_build_txn(cs, view, out, txn, bufs, &nbufs, paths);
    int failed = -1;
    int64_t sent_us = 0, took_us = 0;
    if (st == BC_OK) {
        sent_us = bc_time_mono_us();
        st = bc_zk_txn_commit(cs->zk, txn, &failed);
        took_us = bc_time_mono_us() - sent_us;
    }
    for (size_t i = 0; i < nbufs; i++) free(bufs[i]);
    bc_zk_txn_free(txn);

    pthread_mutex_lock(&cs->mu);
    if (sent_us != 0) {
        cs->stats.commit_hist[bc_metric_bin_ms(bc_console_commit_bounds_ms,
                                               BC_CONSOLE_COMMIT_NBOUNDS,
                                               (double)took_us / 1000.0)]++;
        cs->stats.commits++;
        cs->stats.commit_sum_us += (uint64_t)took_us;
        if ((uint64_t)took_us > cs->stats.commit_max_us) {
            cs->stats.commit_max_us = (uint64_t)took_us;
        }
    }
    if (st == BC_OK) {
        cs->stats.writes++;
        if (out->rebalanced) cs->stats.rebalances++;
        cs->stats.mig_started += out->mig_started;
        cs->stats.mig_cutovers += out->mig_cutovers;
        console_count_stalls(cs, out);
        cs->stats.mig_aborted += out->mig_aborted;
        cs->stats.mig_rejected += out->mig_rejected;
    } else if (st == BC_ESTALE || st == BC_EEXISTS || st == BC_ENOTFOUND) {
        cs->stats.write_conflicts++;
    }
    pthread_mutex_unlock(&cs->mu);
    if (st == BC_OK) {
        log_info("console: epoch %llu: %s", (unsigned long long)out->c.epoch,
                 out->summary[0] ? out->summary : "records updated");
        if (out->pending_moves > 0) {
            log_info("console: %u buckets wait for migration (m != d)", out->pending_moves);
        }
    } else if (failed == 0) {
        log_warn("console: our election znode is gone; not writing (fenced)");
        atomic_store(&cs->leader, false);
        console_wake(cs, false, true);
    } else {
        log_info("console: write lost a race (%s, op %d); reloading", bc_status_str(st), failed);
    }
    return st;
}

/* The admin address of group gid's primary in view, or NULL; its node
 * name into node (may be NULL). */
static const char *
console_primary_admin(bc_view_t *view, uint32_t gid, char *node)
{
    bc_view_group_t *g = bc_view_group(view, gid);
    if (g == NULL || !g->has_primary) return NULL;
    for (size_t i = 0; i < g->nnodes; i++) {
        if (strcmp(g->nodes[i].name, g->primary.node) == 0) {
            if (node != NULL) snprintf(node, BC_NODE_NAME_MAX, "%s", g->nodes[i].name);
            return g->nodes[i].admin_addr[0] ? g->nodes[i].admin_addr : NULL;
        }
    }
    return NULL;
}

/* The job moving bucket from group `from` to `to` at epoch (0: a
 * precopy), with both primaries' admin addresses from view.  False when
 * one is unknown (the next round aborts a copy; a precopy waits). */
static bool
console_job(bc_view_t *view, uint32_t bucket, uint64_t epoch, uint32_t from, uint32_t to,
            bc_mig_job_t *job)
{
    char dst_node[BC_NODE_NAME_MAX] = "";
    const char *src = console_primary_admin(view, from, NULL);
    const char *dst = console_primary_admin(view, to, dst_node);
    if (src == NULL || dst == NULL) return false;
    *job = (bc_mig_job_t){.bucket = bucket, .epoch = epoch, .from = from, .to = to};
    snprintf(job->source_admin, sizeof(job->source_admin), "%s", src);
    snprintf(job->dest_admin, sizeof(job->dest_admin), "%s", dst);
    snprintf(job->dest_node, sizeof(job->dest_node), "%s", dst_node);
    return true;
}

/* After a committed round: tell aborted destinations, keep a job on every
 * copying bucket (resuming those a previous leader started), and ask for
 * the precopies reconcile wants. */
static void
console_drive_copies(bc_console_t *cs, bc_view_t *view, const bc_reconcile_output_t *out)
{
    for (size_t i = 0; i < out->naborts; i++) {
        const char *dst = console_primary_admin(view, out->aborts[i].to, NULL);
        if (dst != NULL) {
            bc_mig_pool_cancel(cs->pool, out->aborts[i].bucket, out->aborts[i].epoch, dst);
        }
    }
    /* The copies go in together: those of one pair and epoch become one
     * batch (migrate_pool.h). */
    bc_mig_job_t *jobs = out->ncopying > 0 ? calloc(out->ncopying, sizeof(*jobs)) : NULL;
    bool *queued = out->ncopying > 0 ? calloc(out->ncopying, sizeof(*queued)) : NULL;
    size_t njobs = 0;
    for (size_t i = 0; i < out->ncopying && jobs != NULL && queued != NULL; i++) {
        const bc_reconcile_copying_t *cp = &out->copying[i];
        if (bc_mig_pool_active(cs->pool, cp->bucket, cp->epoch)) continue;
        if (!console_job(view, cp->bucket, cp->epoch, cp->from, cp->to, &jobs[njobs])) continue;
        njobs++;
    }
    if (njobs > 0) bc_mig_pool_submit_many(cs->pool, jobs, njobs, queued);
    for (size_t i = 0; i < njobs; i++) {
        if (!queued[i]) continue;
        log_debug("console: copying bucket %u from group %u (%s) to group %u (%s) at epoch %llu",
                  jobs[i].bucket, jobs[i].from, jobs[i].source_admin, jobs[i].to,
                  jobs[i].dest_admin, (unsigned long long)jobs[i].epoch);
    }
    free(jobs);
    free(queued);
    /* The precopies go in together too, for the same reason. */
    jobs = out->nprecopy_wanted > 0 ? calloc(out->nprecopy_wanted, sizeof(*jobs)) : NULL;
    queued = out->nprecopy_wanted > 0 ? calloc(out->nprecopy_wanted, sizeof(*queued)) : NULL;
    njobs = 0;
    for (size_t i = 0; i < out->nprecopy_wanted && jobs != NULL && queued != NULL; i++) {
        const bc_reconcile_precopy_want_t *w = &out->precopy_wanted[i];
        if (!console_job(view, w->bucket, 0, w->from, w->to, &jobs[njobs])) continue;
        njobs++;
    }
    if (njobs > 0) bc_mig_pool_precopy_many(cs->pool, jobs, njobs, queued);
    for (size_t i = 0; i < njobs; i++) {
        if (!queued[i]) continue;
        log_debug("console: precopying bucket %u from group %u (%s) to group %u (%s)",
                  jobs[i].bucket, jobs[i].from, jobs[i].source_admin, jobs[i].to,
                  jobs[i].dest_admin);
    }
    free(jobs);
    free(queued);
}

/* ---- precopy readiness and destination backoff (op_mu held) ---- */

/* A copy or precopy outcome towards group gid (whose primary was node). */
static void
console_dest_note(bc_console_t *cs, uint32_t gid, const char *node, bool ok, bool unreachable,
                  const char *error)
{
    if (!bc_mig_dest_note(&cs->dest_backoff, gid, node, ok, error, bc_time_real_ms())) return;
    const bc_mig_dest_backoff_t *e = bc_mig_dest_find(cs->dest_backoff.v, cs->dest_backoff.n, gid);
    /*
     * BEHAVIOR: a destination that did not answer may have lost its
     * precopies with its process: the buckets precopied for it are
     * precopied again -- which also proves it answers -- before a
     * read-only copy towards it starts; and the precopies queued for it
     * are dropped rather than sent to fail.  (One that answered with an
     * error keeps them: its copies are full ones, as before.)
     */
    size_t forgotten = 0, dropped = 0;
    if (cs->precopied != NULL && unreachable) {
        for (uint32_t b = 0; b < cs->nbuckets; b++) {
            if (cs->precopied_ms[b] != 0 && cs->precopied[b].to == gid) {
                cs->precopied[b] = (bc_reconcile_precopy_t){0, 0};
                cs->precopied_ms[b] = 0;
                forgotten++;
            }
        }
        dropped = bc_mig_pool_drop_precopies_to(cs->pool, gid);
    }
    log_warn("console: copies to group %u (primary %s) back off for %lld ms after %u failures in "
             "a row: %s (%zu precopies forgotten, %zu queued dropped)", gid, node[0] ? node : "?",
             (long long)(e != NULL ? e->retry_at_ms - bc_time_real_ms() : 0),
             e != NULL ? e->failures : 0, error, forgotten, dropped);
    pthread_mutex_lock(&cs->mu);
    cs->stats.mig_dest_backoffs++;
    pthread_mutex_unlock(&cs->mu);
}

/* Takes the precopy reports: each marks its bucket ready for its move, a
 * failed one too -- the copy is then simply a full one, so a precopy
 * problem never holds a migration up. */
static void
console_precopy_take(bc_console_t *cs)
{
    bc_mig_report_t reps[CONSOLE_MAX_REPORTS];
    size_t n = bc_mig_pool_take_precopies(cs->pool, reps, CONSOLE_MAX_REPORTS);
    uint64_t done = 0, failed = 0, unreachable = 0, bytes = 0;
    int64_t now = bc_time_mono_ms();
    for (size_t i = 0; i < n; i++) {
        const bc_mig_report_t *r = &reps[i];
        if (r->bucket >= cs->nbuckets) continue;
        console_dest_note(cs, r->to, r->dest_node, r->ok, r->unreachable, r->error);
        if (r->ok) {
            done++;
            bytes += r->bytes;
        } else if (r->unreachable) {
            /*
             * BEHAVIOR: a destination that did not answer at all is most
             * likely down (a killed process whose session has not expired
             * yet): a read-only copy to it would only fail too, after
             * making its source bucket read-only for nothing.  The bucket
             * is not marked ready; it is precopied again once the
             * destination's backoff ends (or its group has a new primary).
             */
            failed++;
            unreachable++;
            log_warn("console: precopy of bucket %u to group %u failed (%s): no read-only copy "
                     "until it answers", r->bucket, r->to, r->error);
            continue;
        } else {
            failed++;
            log_warn("console: precopy of bucket %u to group %u failed (%s); its copy will be a "
                     "full one", r->bucket, r->to, r->error);
        }
        cs->precopied[r->bucket] = (bc_reconcile_precopy_t){r->from, r->to};
        cs->precopied_ms[r->bucket] = now;
    }
    if (n > 0) {
        pthread_mutex_lock(&cs->mu);
        cs->stats.precopies_done += done;
        cs->stats.precopies_failed += failed;
        cs->stats.precopies_unreachable += unreachable;
        cs->stats.precopy_bytes += bytes;
        pthread_mutex_unlock(&cs->mu);
    }
}

/* After a round that succeeded: forget the precopies whose copy started
 * (or runs), whose move is no longer planned, or that are too old to use;
 * the destination of a move no longer planned (a cancel, a new plan) is
 * told to drop its precopy now rather than when it ages out.  Returns how
 * many are left ready. */
static uint32_t
console_precopy_sweep(bc_console_t *cs, bc_view_t *view, const bc_reconcile_output_t *out)
{
    for (size_t i = 0; i < out->ncopying; i++) cs->precopied_ms[out->copying[i].bucket] = 0;
    int64_t now = bc_time_mono_ms();
    uint32_t ready = 0;
    for (uint32_t b = 0; b < cs->nbuckets; b++) {
        bc_reconcile_precopy_t *p = &cs->precopied[b];
        if (cs->precopied_ms[b] != 0) {
            bool planned = out->m.owner[b] == p->from && out->d.owner[b] == p->to;
            if (planned && now - cs->precopied_ms[b] < CONSOLE_PRECOPY_READY_MS) {
                ready++;
                continue;
            }
            const char *dst = planned ? NULL : console_primary_admin(view, p->to, NULL);
            if (dst != NULL) bc_mig_pool_cancel(cs->pool, b, 0, dst);
            cs->precopied_ms[b] = 0;
        }
        *p = (bc_reconcile_precopy_t){0, 0};
    }
    return ready;
}

typedef struct round_opts {
    bool force;
    bool dry_run;
    bool cancel;
    bc_reconcile_pause_t pause;
    bool use_cache;                /* decide on the cached state if it is fresh */
    uint32_t unclean_gid;          /* an operator's unclean failover of this group */
} round_opts_t;

static void
console_cache_drop(bc_console_t *cs)
{
    if (!cs->cache_valid) return;
    bc_view_free(&cs->cache_view);
    bc_mig_set_free(&cs->cache_migs);
    cs->cache_valid = false;
}

/*
 * After a committed round: the state ZooKeeper now holds is what was read
 * plus what was written, so the cache follows the write.  Departure and
 * primary records are rewritten rarely: such a round just drops the cache.
 */
static void
console_cache_apply(bc_console_t *cs, const bc_reconcile_output_t *out)
{
    if (!cs->cache_valid) return;
    if (out->ndepartures > 0 || out->nprimaries > 0) {
        console_cache_drop(cs);
        return;
    }
    bc_view_t *v = &cs->cache_view;
    if (out->tables_changed) {
        bc_table_t *dst[3] = {&v->c, &v->m, &v->d};
        const bc_table_t *src[3] = {&out->c, &out->m, &out->d};
        int32_t *ver[3] = {&v->c_version, &v->m_version, &v->d_version};
        for (int i = 0; i < 3; i++) {
            bc_table_t copy;
            if (bc_table_copy(&copy, src[i]) != BC_OK) {
                console_cache_drop(cs);
                return;
            }
            bc_table_free(dst[i]);
            *dst[i] = copy;
            (*ver[i])++;
        }
    }
    bc_mig_set_t *m = &cs->cache_migs;
    if (out->control != NULL && (out->control_changed || out->nmig > 0)) {
        int32_t version = m->control.version < 0 ? 0 : m->control.version + 1;
        m->control = *out->control;
        m->control.version = version;
    }
    for (size_t i = 0; i < out->nmig; i++) {
        const bc_reconcile_mig_update_t *u = &out->mig[i];
        if (u->remove) {
            if (m->rec[u->bucket] != NULL) {
                free(m->rec[u->bucket]);
                m->rec[u->bucket] = NULL;
                m->count--;
            }
            continue;
        }
        bc_mig_record_t r = u->record;
        r.version = u->version < 0 ? 0 : u->version + 1;
        if (bc_mig_set_put(m, &r) != BC_OK) {
            console_cache_drop(cs);
            return;
        }
    }
}

/* How long a round may decide on the cached state: one reconcile interval
 * when idle (so a change nobody watches is still seen within a round);
 * while copies are in flight, longer -- a full load takes many ZooKeeper
 * round trips, and every copy report waits for it.  op_mu held. */
static int64_t
console_cache_max_age(bc_console_t *cs)
{
    if (!cs->cache_valid) return 0;
    const bc_mig_set_t *m = &cs->cache_migs;
    for (uint32_t b = 0; b < m->nbuckets && m->count > 0; b++) {
        if (m->rec[b] != NULL && m->rec[b]->state == BC_MIG_COPYING) return CONSOLE_MIG_RELOAD_MS;
    }
    return (int64_t)cs->interval_ms;
}

/* Logs the groups that wait for their old primary or an operator, when
 * that set changes (op_mu held). */
static void
console_log_waiting(bc_console_t *cs, const bc_view_t *view, const bc_reconcile_output_t *out)
{
    size_t n = out->nwaiting < 16 ? out->nwaiting : 16;
    bool same = n == cs->nwaiting_logged;
    for (size_t i = 0; i < n && same; i++) same = out->waiting[i] == cs->waiting_logged[i];
    if (same) return;
    for (size_t i = 0; i < n; i++) {
        bool before = false;
        for (size_t k = 0; k < cs->nwaiting_logged; k++) before |= cs->waiting_logged[k] == out->waiting[i];
        if (before) continue;
        const bc_view_group_t *g = bc_view_group((bc_view_t *)view, out->waiting[i]);
        log_warn("console: group %u: primary %s is gone and no backup of its in-sync set is alive "
                 "with complete data: the group waits (its writes are refused) until one is back, "
                 "or `bucketcache group failover %u --unclean` promotes another and may lose "
                 "acknowledged writes", out->waiting[i],
                 g != NULL && g->has_primary ? g->primary.node : "?", out->waiting[i]);
    }
    memcpy(cs->waiting_logged, out->waiting, n * sizeof(uint32_t));
    cs->nwaiting_logged = n;
}

static bc_status_t
console_reconcile_round(bc_console_t *cs, const round_opts_t *opts, bc_reconcile_output_t *result,
                        bc_view_t *view_out)
{
    char err[256] = "";
    bc_view_t view;
    bc_mig_set_t migs;
    bool have_migs = false;
    bc_mig_report_t reports[CONSOLE_MAX_REPORTS];
    size_t nreports = 0;
    bool dry_run = opts->dry_run;
    bc_reconcile_output_t local, *out = result ? result : &local;
    pthread_mutex_lock(&cs->op_mu);
    int64_t t_start = bc_time_real_ms();
    bool cached = opts->use_cache && !dry_run && view_out == NULL && cs->cache_valid &&
                  cs->pool != NULL && t_start - cs->cache_loaded_ms < console_cache_max_age(cs);
    bc_status_t st = BC_OK;
    if (cached) {
        /* BEHAVIOR: no watch fired since the last load, so ZooKeeper holds
         * what we read plus what we wrote: only the active console writes
         * the tables, the migrations and the departure records, and node
         * membership and the primary and in-sync records (nodes write
         * those too) are watched.  If anything else changed anyway, the
         * transaction's version checks fail and the next round reloads
         * everything. */
        view = cs->cache_view;
        migs = cs->cache_migs;
        have_migs = true;
    } else {
        console_cache_drop(cs);
        st = bc_view_load(cs->zk, cs->cluster, cs->nbuckets, dry_run ? NULL : console_on_watch, cs,
                          &view, err, sizeof(err));
        if (st == BC_OK) bc_view_fill_offsets(&view, CONSOLE_OFFSET_TIMEOUT_MS);
    }
    if (st != BC_OK) {
        pthread_mutex_unlock(&cs->op_mu);
        memset(out, 0, sizeof(*out));
        log_warn("console: cannot load the cluster view: %s %s", bc_status_str(st), err);
        return st;
    }
    if (cs->pool != NULL && !cached) {
        st = bc_mig_load(cs->zk, cs->cluster, cs->nbuckets, &migs, err, sizeof(err));
        if (st != BC_OK) {
            bc_view_free(&view);
            pthread_mutex_unlock(&cs->op_mu);
            memset(out, 0, sizeof(*out));
            log_warn("console: cannot load the migrations: %s %s", bc_status_str(st), err);
            return st;
        }
        have_migs = true;
    }
    bool drive = have_migs && !dry_run && atomic_load(&cs->leader);
    if (drive) {
        (void)bc_mig_pool_gather(cs->pool, CONSOLE_BATCH_GATHER_MS);
        nreports = bc_mig_pool_take(cs->pool, reports, CONSOLE_MAX_REPORTS);
        for (size_t i = 0; i < nreports; i++) {
            console_dest_note(cs, reports[i].to, reports[i].dest_node, reports[i].ok,
                              reports[i].unreachable, reports[i].error);
        }
        if (cs->precopied != NULL) console_precopy_take(cs);
    }
    int64_t t_loaded = bc_time_real_ms();
    bc_reconcile_input_t in = {
        .view = &view, .now_ms = bc_time_real_ms(), .orphan_grace_ms = cs->orphan_grace_ms,
        .force_rebalance = opts->force, .migs = have_migs ? &migs : NULL,
        .parallel = dry_run ? 0 : cs->parallel, .reports = reports, .nreports = nreports,
        .precopy_ahead = cs->precopy_ahead,
        .cancel_rebalance = opts->cancel, .pause = opts->pause,
        .precopy = cs->precopied,
        .unclean_gid = opts->unclean_gid,
        .dest_backoff = cs->dest_backoff.v, .ndest_backoff = cs->dest_backoff.n,
    };
    st = bc_reconcile(&in, out);
    if (st == BC_OK && out->changed && !dry_run) {
        if (!atomic_load(&cs->leader)) st = BC_EBUSY;
        else st = console_commit(cs, &view, out);
    }
    log_debug("console: round%s: loaded in %lld ms, decided and written in %lld ms",
              cached ? " (cached)" : "", (long long)(t_loaded - t_start),
              (long long)(bc_time_real_ms() - t_loaded));
    if (nreports > 0) {
        /* Reports not decided, or decided in a transaction that lost,
         * are decided again next round. */
        size_t used = st == BC_OK ? out->nreports_used : 0;
        bc_mig_pool_requeue(cs->pool, reports + used, nreports - used);
    }
    uint32_t precopied = 0;
    if (st == BC_OK && drive && cs->precopied != NULL) {
        precopied = console_precopy_sweep(cs, &view, out);
    }
    if (st == BC_OK && have_migs && !dry_run && atomic_load(&cs->leader)) {
        console_drive_copies(cs, &view, out);
        /* More to do at once: what did not fit, or moves that could not
         * start because a group's primary was only chosen in this round. */
        if (out->mig_more || ((out->nprimaries > 0 || out->rebalanced) && out->pending_moves > 0)) {
            console_wake(cs, false, false);
        }
    }
    uint32_t live = 0;
    for (size_t i = 0; i < view.ngroups; i++) live += view.groups[i].nnodes > 0;
    if (st == BC_OK && !dry_run) console_log_waiting(cs, &view, out);
    uint32_t backing_off = 0;
    int64_t now_ms = bc_time_real_ms();
    for (size_t i = 0; i < cs->dest_backoff.n; i++) {
        backing_off += now_ms < cs->dest_backoff.v[i].retry_at_ms;
    }
    pthread_mutex_lock(&cs->mu);
    cs->stats.reconciles++;
    if (st == BC_OK && !dry_run) {
        cs->batch_round_at = out->mig_deferred > 0 ? bc_time_mono_ms() + out->mig_batch_wait_ms
                                                   : 0;
    }
    if (!dry_run) {
        cs->stats.mig_held_back = out->mig_held_back;
        cs->stats.groups_waiting = (uint32_t)out->nwaiting;
        cs->stats.dests_backing_off = backing_off;
        if (st == BC_OK && out->failover.done) cs->stats.unclean_failovers++;
    }
    cs->stats.epoch = st == BC_OK && out->changed && !dry_run ? out->c.epoch : view.c.epoch;
    cs->stats.pending_moves = out->pending_moves;
    cs->stats.live_groups = live;
    if (have_migs && out->control != NULL) {
        const bc_mig_control_t *c = st == BC_OK && !dry_run ? out->control : &migs.control;
        if (st == BC_OK && !dry_run) {
            if (out->mig_cutovers > 0) {
                /* bytes/items of this round's cutovers: the newest entries */
                for (uint32_t i = 0; i < out->mig_cutovers && i < c->nrecent; i++) {
                    cs->stats.mig_bytes += c->recent[c->nrecent - 1 - i].bytes;
                    cs->stats.mig_items += c->recent[c->nrecent - 1 - i].items;
                }
            }
            cs->stats.mig_copying = (uint32_t)out->ncopying;
            if (drive) cs->stats.mig_precopied = precopied;
        }
        cs->stats.mig_paused = c->paused;
        cs->stats.run_moved = c->moved;
        cs->stats.run_bytes = c->bytes;
        cs->stats.run_failures = c->failures;
        cs->stats.stall_count = c->nstalls;
        cs->stats.stall_p50_ms = bc_mig_control_stall_pct(c, 50);
        cs->stats.stall_p99_ms = bc_mig_control_stall_pct(c, 99);
        cs->stats.stall_max_ms = bc_mig_control_stall_pct(c, 100);
    }
    pthread_mutex_unlock(&cs->mu);
    /* Ownership of view and migs: the cache's in a cached round; moved into
     * the cache after a fresh round that committed (or had nothing to
     * write); otherwise the caller's view_out or freed here. */
    bool owned = cached;
    if (st == BC_OK && !dry_run && have_migs && view_out == NULL) {
        if (!cached) {
            cs->cache_view = view;
            cs->cache_migs = migs;
            cs->cache_valid = true;
            cs->cache_loaded_ms = t_start;
            owned = true;
        }
        console_cache_apply(cs, out);
    } else if (cached) {
        console_cache_drop(cs);
    } else if (have_migs) {
        bc_mig_set_free(&migs);
    }
    pthread_mutex_unlock(&cs->op_mu);
    if (view_out != NULL) *view_out = view;
    else if (!owned) bc_view_free(&view);
    if (result == NULL) bc_reconcile_free(&local);
    return st;
}

/* Not leading: what was precopied is no longer ours to use. */
static void
console_precopy_forget(bc_console_t *cs)
{
    if (cs->precopied == NULL) return;
    pthread_mutex_lock(&cs->op_mu);
    memset(cs->precopied, 0, cs->nbuckets * sizeof(*cs->precopied));
    memset(cs->precopied_ms, 0, cs->nbuckets * sizeof(*cs->precopied_ms));
    pthread_mutex_unlock(&cs->op_mu);
    pthread_mutex_lock(&cs->mu);
    cs->stats.mig_precopied = 0;
    pthread_mutex_unlock(&cs->mu);
}

static void *
console_loop(void *arg)
{
    bc_console_t *cs = arg;
    pthread_mutex_lock(&cs->mu);
    while (!cs->stopping) {
        bool reelect = cs->reelect;
        /* No watch or session event since the last round (woken by copy
         * reports, by the timer or by a round of our own that left work):
         * a quick round on the cached state when it is fresh enough,
         * without re-checking the election (the transaction checks our
         * election znode anyway). */
        bool quick = !cs->watch_fired && !reelect && atomic_load(&cs->leader);
        cs->dirty = false;
        cs->watch_fired = false;
        cs->reelect = false;
        pthread_mutex_unlock(&cs->mu);

        bc_status_t st = BC_OK;
        if (reelect) st = console_register(cs);
        if (st == BC_OK && !quick) st = console_elect(cs);
        if (cs->pool != NULL && !atomic_load(&cs->leader)) {
            /* Reports belong to the leader that started the copies; so
             * does what was precopied (a new leader asks again). */
            bc_mig_pool_clear_reports(cs->pool);
            console_precopy_forget(cs);
        }
        if (st == BC_ENOTFOUND) {
            console_wake(cs, false, true);
        } else if (st == BC_OK && atomic_load(&cs->leader)) {
            round_opts_t opts = {.use_cache = quick};
            st = console_reconcile_round(cs, &opts, NULL, NULL);
            if (st == BC_ESTALE || st == BC_EEXISTS) console_wake(cs, false, false);
        } else if (st != BC_OK && reelect) {
            console_wake(cs, false, true);
        }

        pthread_mutex_lock(&cs->mu);
        if (cs->stopping) break;
        if (!cs->dirty) {
            struct timespec until;
            int64_t wait = st == BC_OK ? (int64_t)cs->interval_ms : 300;
            if (cs->batch_round_at != 0) {
                int64_t left = cs->batch_round_at - bc_time_mono_ms();
                if (left < wait) wait = left < 1 ? 1 : left;
            }
            bc_time_deadline(&until, CLOCK_MONOTONIC, wait);
            pthread_cond_timedwait(&cs->cv, &cs->mu, &until);
        }
    }
    pthread_mutex_unlock(&cs->mu);
    return NULL;
}

bc_status_t
bc_console_start(const bc_console_config_t *config, bc_console_t **out)
{
    if (config->zk_hosts == NULL || !bc_cluster_name_valid(config->cluster) ||
        config->admin_addr == NULL || strlen(config->admin_addr) >= BC_ADDR_MAX) {
        return BC_EINVAL;
    }
    bc_console_t *cs = calloc(1, sizeof(*cs));
    if (cs == NULL) return BC_ENOMEM;
    cs->cluster = strdup(config->cluster);
    cs->admin_addr = strdup(config->admin_addr);
    cs->orphan_grace_ms = config->orphan_grace_ms;
    cs->interval_ms = config->reconcile_interval_ms ? config->reconcile_interval_ms : 1000;
    cs->parallel = config->migrations_parallel > BC_MIG_MAX_PARALLEL ? BC_MIG_MAX_PARALLEL
                                                                      : config->migrations_parallel;
    cs->stats.migrations_parallel = cs->parallel;
    /* bc_mig_pool_precopy_window defaults and caps it */
    cs->precopy_ahead = config->precopy_ahead;
    pthread_mutex_init(&cs->mu, NULL);
    pthread_mutex_init(&cs->op_mu, NULL);
    bc_time_cond_init(&cs->cv);
    if (cs->cluster == NULL || cs->admin_addr == NULL) {
        bc_console_stop(cs);
        return BC_ENOMEM;
    }
    bc_status_t st = bc_zk_open(config->zk_hosts, config->session_timeout_ms, 10000,
                                console_on_session, cs, &cs->zk);
    if (st != BC_OK) {
        log_error("console: cannot reach ZooKeeper at %s: %s", config->zk_hosts, bc_status_str(st));
        bc_console_stop(cs);
        return st;
    }
    char err[256] = "";
    bc_cluster_config_t ccfg;
    st = bc_cluster_read_config(cs->zk, cs->cluster, &ccfg, err, sizeof(err));
    if (st != BC_OK) {
        if (st == BC_ENOTFOUND) {
            log_error("console: cluster \"%s\" does not exist; create it with `bucketcache cluster "
                      "create`", cs->cluster);
        } else {
            log_error("console: cannot read the cluster config: %s %s", bc_status_str(st), err);
        }
        bc_console_stop(cs);
        return st;
    }
    cs->nbuckets = ccfg.nbuckets;
    cs->stats.nbuckets = ccfg.nbuckets;
    if (cs->parallel > 0) {
        uint32_t timeout = config->migration_timeout_ms ? config->migration_timeout_ms
                                                        : CONSOLE_DEFAULT_MIG_TIMEOUT_MS;
        if (config->precopy) {
            cs->precopied = calloc(cs->nbuckets, sizeof(*cs->precopied));
            cs->precopied_ms = calloc(cs->nbuckets, sizeof(*cs->precopied_ms));
            if (cs->precopied == NULL || cs->precopied_ms == NULL) {
                bc_console_stop(cs);
                return BC_ENOMEM;
            }
            cs->stats.precopy = true;
        }
        st = bc_mig_pool_start(cs->parallel,
                               config->precopy
                                   ? bc_mig_pool_precopy_window(cs->parallel, cs->precopy_ahead)
                                   : 0,
                               timeout,
                               console_pool_notify, cs, &cs->pool);
        if (st != BC_OK) {
            bc_console_stop(cs);
            return st;
        }
    } else {
        log_info("console: migrations off (--migrations-parallel 0): data-carrying moves wait");
    }
    cs->reelect = true;
    cs->dirty = true;
    if (pthread_create(&cs->thread, NULL, console_loop, cs) != 0) {
        bc_console_stop(cs);
        return BC_ENOMEM;
    }
    cs->thread_started = true;
    *out = cs;
    return BC_OK;
}

void
bc_console_stop(bc_console_t *cs)
{
    if (cs == NULL) return;
    pthread_mutex_lock(&cs->mu);
    cs->stopping = true;
    pthread_cond_signal(&cs->cv);
    pthread_mutex_unlock(&cs->mu);
    if (cs->thread_started) pthread_join(cs->thread, NULL);
    bc_mig_pool_stop(cs->pool);
    console_cache_drop(cs);
    bc_zk_close(cs->zk);
    pthread_mutex_destroy(&cs->mu);
    pthread_mutex_destroy(&cs->op_mu);
    pthread_cond_destroy(&cs->cv);
    free(cs->precopied);
    free(cs->precopied_ms);
    bc_mig_dest_backoffs_free(&cs->dest_backoff);
    free(cs->cluster);
    free(cs->admin_addr);
    free(cs);
}

void
bc_console_get_stats(bc_console_t *cs, bc_console_stats_t *out)
{
    pthread_mutex_lock(&cs->mu);
    *out = cs->stats;
    pthread_mutex_unlock(&cs->mu);
    out->leader = atomic_load(&cs->leader);
    out->connected = bc_zk_connected(cs->zk) != 0;
    out->mig_precopying = cs->pool != NULL ? (uint32_t)bc_mig_pool_precopying(cs->pool) : 0;
}

bc_zk_t *
bc_console_zk(bc_console_t *cs)
{
    return cs->zk;
}

const char *
bc_console_cluster(bc_console_t *cs)
{
    return cs->cluster;
}

uint32_t
bc_console_nbuckets(bc_console_t *cs)
{
    return cs->nbuckets;
}

bc_status_t
bc_console_leader_addr(bc_console_t *cs, char *buf, size_t len)
{
    return bc_cluster_active_console(cs->zk, cs->cluster, buf, len);
}

bc_status_t
bc_console_rebalance(bc_console_t *cs, bool dry_run, bc_reconcile_output_t *out, bc_view_t *view)
{
    if (!dry_run && !atomic_load(&cs->leader)) {
        memset(out, 0, sizeof(*out));
        if (view != NULL) memset(view, 0, sizeof(*view));
        return BC_EBUSY;
    }
    round_opts_t opts = {.force = true, .dry_run = dry_run};
    return console_reconcile_round(cs, &opts, out, view);
}

bc_status_t
bc_console_migrations(bc_console_t *cs, bc_console_mig_op_t op, char *summary, size_t len)
{
    if (!atomic_load(&cs->leader)) return BC_EBUSY;
    if (cs->pool == NULL) {
        if (summary != NULL && len > 0) snprintf(summary, len, "migrations are off on this console");
        return BC_EINVAL;
    }
    round_opts_t opts = {
        .pause = op == BC_CONSOLE_MIG_PAUSE    ? BC_RECONCILE_PAUSE_SET
                 : op == BC_CONSOLE_MIG_RESUME ? BC_RECONCILE_PAUSE_CLEAR
                                               : BC_RECONCILE_PAUSE_KEEP,
        .cancel = op == BC_CONSOLE_MIG_CANCEL,
    };
    bc_reconcile_output_t out;
    bc_status_t st = console_reconcile_round(cs, &opts, &out, NULL);
    if (summary != NULL && len > 0) snprintf(summary, len, "%s", out.summary);
    bc_reconcile_free(&out);
    return st;
}

bc_status_t
bc_console_failover(bc_console_t *cs, uint32_t gid, bc_reconcile_failover_t *report, char *summary,
                    size_t len)
{
    memset(report, 0, sizeof(*report));
    report->gid = gid;
    if (!atomic_load(&cs->leader)) return BC_EBUSY;
    round_opts_t opts = {.unclean_gid = gid};
    bc_reconcile_output_t out;
    bc_status_t st = console_reconcile_round(cs, &opts, &out, NULL);
    *report = out.failover;
    report->gid = gid;
    if (summary != NULL && len > 0) snprintf(summary, len, "%s", out.summary);
    bc_reconcile_free(&out);
    if (st == BC_OK && !report->done) {
        if (report->error[0] == '\0') {
            snprintf(report->error, sizeof(report->error), "group %u has no node to promote", gid);
        }
        return BC_EINVAL;
    }
    if (st == BC_OK) {
        log_warn("console: operator's failover of group %u: %s promoted%s (offset %llu; the old "
                 "primary last recorded offset %llu)", gid, report->node,
                 report->clean ? " from the in-sync set" : " UNCLEANLY",
                 (unsigned long long)report->offset,
                 (unsigned long long)report->recorded_offset);
    }
    return st;
}
