/*
 * isr.c -- the in-sync set (repl.h, THE IN-SYNC SET): which backups a
 * reply waits for, recording them in ZooKeeper, and the commit wait
 * workers run before they reply.
 *
 * HOW
 *   Three sets of backups, all under mu:
 *
 *     R  the record: what groups/<gid>/isr holds at isr_version, by
 *        registration name -- the members a promotion may pick;
 *     P  a record write in flight (isr_prop), which may add one member
 *        and drop others; until its outcome is known it may be what
 *        ZooKeeper holds, so replies wait for its members too;
 *     W  the wait set: connected backups that caught up (peer->in_sync),
 *        waited for before (and whether or not) they are recorded.
 *
 *   A reply for offset `need` may leave when every member of R and P has
 *   an online connection that acknowledged `need`, every member of W
 *   acknowledged it, and R has at least min_in_sync members
 *   (do_commit_check).  `floor` caches the smallest such acknowledgement
 *   for the lock-free fast path.
 *
 *     worker (before replying)        in-sync thread (isr_main)
 *     ------------------------        -------------------------
 *     wait on ack_cv until reached    wakes on isr_cv: a member missed a
 *     deadline passed: the members    deadline, a backup caught up, a
 *     short of it -> isr_drop, W-only peer came or went
 *     ones leave W -> wake ----------> plan (bc__repl_isr_plan): the
 *     keep waiting while enough       record to write, the write gate
 *     members remain to be recorded   compare-and-set in ZooKeeper
 *     out, the lease holds, the       (bc_node_cluster_isr_write), then
 *     record stays ours               R = P, wake the workers <-------'
 *
 *   The thread is the only one that talks to ZooKeeper here: a worker
 *   never blocks on it, only on ack_cv, and a cut-off ZooKeeper shows to
 *   the workers as the lease running out (they then fail their replies).
 *
 * LOCKING RULE: as repl.h: mu guards all of the above; the thread drops
 * it across every ZooKeeper call and rechecks the role generation after.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bc_log.h"
#include "bc_time.h"
#include "repl/repl_int.h"

#define ISR_NAP_MS          200     /* the thread looks again this often anyway */
#define ISR_RETRY_MS        100     /* after a write that did not complete */
#define ISR_FAIL_POLL_MS    50      /* a waiter past its deadline checks the lease */
#define ISR_WAIT_CAP_MS     10000   /* a reply never waits longer past its deadline */

/* The stream offset after this thread's last record, the last one a
 * commit took, and the role generation it was written under (one
 * bc_repl_t per process). */
static _Thread_local uint64_t tls_want;
static _Thread_local uint64_t tls_done;
static _Thread_local uint64_t tls_gen;

/* Called by the cache observer (primary.c) after appending a record. */
void
bc__repl_note_write(bc_repl_t *r, uint64_t end)
{
    tls_want = end;
    tls_gen = atomic_load_explicit(&r->role_gen, memory_order_relaxed);
}

uint32_t
bc__repl_min_in_sync(const bc_repl_t *r, const repl_settings_t *set)
{
    return bc_cluster_group_min_in_sync(bc_node_cluster_group_min_in_sync(r->cluster), set->mode);
}

/* ---- the decision (pure) ---- */

void
bc__repl_isr_plan(const bc_repl_isr_input_t *in, bc_repl_isr_plan_t *out)
{
    const bc_cluster_isr_t *rec = in->recorded;
    memset(out, 0, sizeof(*out));
    out->next = *rec;
    if (in->add != NULL && in->add[0] != '\0' && !bc_cluster_isr_has(rec, in->add) &&
        strcmp(in->add, rec->primary) != 0 && bc_cluster_isr_add(&out->next, in->add)) {
        out->added = true;
    }
    /* Members that missed a deadline leave, in record order, while at
     * least min_in_sync stay: the ones kept stay eligible and the writes
     * wait (they are refused) until they catch up. */
    for (uint32_t i = 0; i < rec->n; i++) {
        if (!in->drop[i]) {
            if (in->healthy[i]) out->healthy++;
            continue;
        }
        if (out->next.n > in->min_in_sync) {
            (void)bc_cluster_isr_remove(&out->next, rec->in_sync[i]);
            out->removed++;
        } else {
            out->kept++;
        }
    }
    out->write = out->added || out->removed > 0;
    out->refuse_writes = out->healthy < in->min_in_sync;
}

/* ---- the sets (mu held) ---- */

/* The best acknowledgement of an online backup named name; false when
 * none is online. */
static bool
do_member_acked(const bc_repl_t *r, const char *name, uint64_t *acked)
{
    bool found = false;
    for (const repl_peer_t *p = r->peers; p != NULL; p = p->next) {
        if (!p->online || atomic_load(&p->closing) || strcmp(p->name, name) != 0) continue;
        uint64_t a = atomic_load(&p->acked);
        if (!found || a > *acked) *acked = a;
        found = true;
    }
    return found;
}

/* Is a recorded member keeping up: online, not marked lagging? */
static bool
do_member_healthy(const bc_repl_t *r, const char *name)
{
    for (const repl_peer_t *p = r->peers; p != NULL; p = p->next) {
        if (p->online && !atomic_load(&p->closing) && !p->lagging && strcmp(p->name, name) == 0) {
            return true;
        }
    }
    return false;
}

static bool
do_required_name(const bc_repl_t *r, const char *name)
{
    return bc_cluster_isr_has(&r->isr, name) ||
           (r->isr_prop_pending && bc_cluster_isr_has(&r->isr_prop, name));
}

/* min over the acknowledgements a reply waits for (see HOW). */
static uint64_t
do_floor(const bc_repl_t *r, uint32_t min_in_sync)
{
    if (r->isr_state != REPL_ISR_READY || r->isr.n < min_in_sync) return 0;
    uint64_t f = UINT64_MAX;
    const bc_cluster_isr_t *sets[2] = {&r->isr, r->isr_prop_pending ? &r->isr_prop : NULL};
    for (int s = 0; s < 2; s++) {
        for (uint32_t i = 0; sets[s] != NULL && i < sets[s]->n; i++) {
            uint64_t a = 0;
            if (!do_member_acked(r, sets[s]->in_sync[i], &a)) return 0;
            if (a < f) f = a;
        }
    }
    for (const repl_peer_t *p = r->peers; p != NULL; p = p->next) {
        if (!p->in_sync) continue;
        uint64_t a = atomic_load(&p->acked);
        if (atomic_load(&p->closing) && !do_required_name(r, p->name)) continue;
        if (a < f) f = a;
    }
    return f;
}

static void
do_floor_publish(bc_repl_t *r)
{
    repl_settings_t set;
    bc__repl_settings(r, &set);
    atomic_store(&r->floor, do_floor(r, bc__repl_min_in_sync(r, &set)));
    atomic_store(&r->isr_members_pub,
                 r->isr.n + (r->isr_prop_pending ? r->isr_prop.n : 0) +
                     (r->isr_state == REPL_ISR_LOADING ? 1 : 0));
}

void
bc__repl_do_isr_changed(bc_repl_t *r)
{
    do_floor_publish(r);
    pthread_cond_broadcast(&r->ack_cv);
    pthread_cond_signal(&r->isr_cv);
}

/* A backup this close behind is waited for again (sync): the waits that
 * follow hold the writers until it has the rest, which a backup that is
 * not waited for might never get to under a steady load. */
#define ISR_REJOIN_SLACK (256u * 1024u)

/* Has a backup that acknowledged `acked` caught up: everything (sync, or
 * async without a bound), or within the lag bound (async)?  slack: sync
 * counts ISR_REJOIN_SLACK as caught up (to join the wait set). */
static bool
do_caught_up(const bc_repl_t *r, uint64_t acked, bool slack)
{
    repl_settings_t set;
    bc__repl_settings(r, &set);
    uint64_t end = r->backlog.end;
    if (set.mode != BC_REPL_SYNC && set.max_lag > 0) return acked + set.max_lag >= end;
    return acked + (slack && set.mode == BC_REPL_SYNC ? ISR_REJOIN_SLACK : 0) >= end;
}

void
bc__repl_do_isr_ack(bc_repl_t *r, repl_peer_t *p, uint64_t offset)
{
    bool changed = false;
    if (p->in_sync && !p->heard && offset >= p->entered) {
        p->heard = true;
        changed = true;
    }
    if (p->online && do_caught_up(r, offset, false)) {
        /* Caught up: it holds everything up to now (async: within the
         * lag bound). */
        if (p->lagging) {
            p->lagging = false;
            changed = true;
        }
        if (bc_cluster_isr_remove(&r->isr_drop, p->name)) {
            log_info("repl: backup %s (%s) caught up at offset %" PRIu64 ": it stays in the "
                     "in-sync set", p->name, p->addr, offset);
            changed = true;
        }
    }
    if (p->online && !p->in_sync && !p->lagging && do_caught_up(r, offset, true)) {
        /* Waited for from now on; recorded in once it has acknowledged
         * everything up to here (it may lack writes acknowledged before). */
        p->in_sync = true;
        p->entered = r->backlog.end;
        p->heard = offset >= p->entered;
        changed = true;
        log_info("repl: backup %s caught up at offset %" PRIu64 ": waited for again", p->name,
                 offset);
    }
    if (changed) {
        bc__repl_do_isr_changed(r);
    } else {
        do_floor_publish(r);
        pthread_cond_broadcast(&r->ack_cv);
        /* A backup in the wait set, acknowledging, not yet recorded:
         * the thread records it. */
        if (p->in_sync && p->heard && p->node_named && !bc_cluster_isr_has(&r->isr, p->name)) {
            pthread_cond_signal(&r->isr_cv);
        }
    }
}

void
bc__repl_do_isr_promoted(bc_repl_t *r)
{
    atomic_fetch_add(&r->role_gen, 1);
    r->isr_state = REPL_ISR_LOADING;
    memset(&r->isr, 0, sizeof(r->isr));
    memset(&r->isr_drop, 0, sizeof(r->isr_drop));
    r->isr_version = -1;
    r->isr_prop_pending = false;
    /* No write before the record of this term is known. */
    r->isr_short = true;
    bc_node_cluster_set_in_sync_short(r->cluster, true);
    bc__repl_do_isr_changed(r);
}

void
bc__repl_do_isr_demoted(bc_repl_t *r)
{
    atomic_fetch_add(&r->role_gen, 1);
    r->isr_state = REPL_ISR_OFF;
    memset(&r->isr, 0, sizeof(r->isr));
    memset(&r->isr_drop, 0, sizeof(r->isr_drop));
    r->isr_prop_pending = false;
    r->isr_short = false;
    bc_node_cluster_set_in_sync_short(r->cluster, false);
    bc__repl_do_isr_changed(r);
}

/* ---- the commit wait ---- */

typedef enum { COMMIT_WAIT, COMMIT_DONE, COMMIT_FAILED } commit_check_t;

/* mu held: may a reply for `need`, written under role generation gen, go? */
static commit_check_t
do_commit_check(bc_repl_t *r, uint64_t need, uint64_t gen, uint32_t min_in_sync)
{
    if (gen != atomic_load(&r->role_gen) || !atomic_load(&r->recording)) return COMMIT_FAILED;
    if (r->isr_state == REPL_ISR_LOST || r->isr_state == REPL_ISR_OFF) return COMMIT_FAILED;
    if (need > r->backlog.end) return COMMIT_FAILED;
    if (r->isr_state != REPL_ISR_READY || r->isr.n < min_in_sync) return COMMIT_WAIT;
    const bc_cluster_isr_t *sets[2] = {&r->isr, r->isr_prop_pending ? &r->isr_prop : NULL};
    for (int s = 0; s < 2; s++) {
        for (uint32_t i = 0; sets[s] != NULL && i < sets[s]->n; i++) {
            uint64_t a = 0;
            if (!do_member_acked(r, sets[s]->in_sync[i], &a) || a < need) return COMMIT_WAIT;
        }
    }
    for (const repl_peer_t *p = r->peers; p != NULL; p = p->next) {
        if (p->in_sync && !atomic_load(&p->closing) && atomic_load(&p->acked) < need) {
            return COMMIT_WAIT;
        }
    }
    return COMMIT_DONE;
}

/*
 * mu held: the wait for `need` passed its deadline.  Backups only in the
 * wait set that are short of it leave it at once (nothing records them);
 * recorded members short of it are to be recorded out (isr_drop, the
 * thread writes it), and are lagging until they catch up.
 */
static void
do_commit_expire(bc_repl_t *r, uint64_t need, uint32_t timeout_ms)
{
    bool changed = false;
    for (repl_peer_t *p = r->peers; p != NULL; p = p->next) {
        if (!p->in_sync || do_required_name(r, p->name) || atomic_load(&p->acked) >= need) continue;
        p->in_sync = false;
        changed = true;
        atomic_fetch_add(&r->sync_timeouts, 1);
        log_warn("repl: backup %s (%s) did not acknowledge offset %" PRIu64 " within %u ms (it "
                 "has %" PRIu64 "): no longer waited for", p->name, p->addr, need, timeout_ms,
                 atomic_load(&p->acked));
    }
    const bc_cluster_isr_t *sets[2] = {&r->isr, r->isr_prop_pending ? &r->isr_prop : NULL};
    for (int s = 0; s < 2; s++) {
        for (uint32_t i = 0; sets[s] != NULL && i < sets[s]->n; i++) {
            const char *name = sets[s]->in_sync[i];
            uint64_t a = 0;
            bool online = do_member_acked(r, name, &a);
            if (online && a >= need) continue;
            if (bc_cluster_isr_has(&r->isr_drop, name)) continue;
            (void)bc_cluster_isr_add(&r->isr_drop, name);
            for (repl_peer_t *p = r->peers; p != NULL; p = p->next) {
                if (strcmp(p->name, name) == 0) {
                    p->lagging = true;
                    p->in_sync = false;
                }
            }
            changed = true;
            atomic_fetch_add(&r->sync_timeouts, 1);
            if (online) {
                log_warn("repl: backup %s did not acknowledge offset %" PRIu64 " within %u ms (it "
                         "has %" PRIu64 "): recording it out of the in-sync set", name, need,
                         timeout_ms, a);
            } else {
                log_warn("repl: in-sync backup %s is not connected and offset %" PRIu64 " waited "
                         "%u ms for it: recording it out of the in-sync set", name, need,
                         timeout_ms);
            }
        }
    }
    if (changed) bc__repl_do_isr_changed(r);
}

/* mu held, after the deadline: can the wait still end well?  Only while
 * enough recorded members keep up for the laggards to be recorded out. */
static bool
do_commit_hopeless(const bc_repl_t *r, uint32_t min_in_sync)
{
    uint32_t keeping = 0;
    for (uint32_t i = 0; i < r->isr.n; i++) {
        if (!bc_cluster_isr_has(&r->isr_drop, r->isr.in_sync[i]) &&
            do_member_healthy(r, r->isr.in_sync[i])) {
            keeping++;
        }
    }
    return keeping < min_in_sync;
}

/* What this thread's last write must reach before its caller answers
 * (0: nothing to wait for), with the settings' timeout in *timeout_ms.
 * Takes the write: asking again returns 0 until the thread writes more. */
static uint64_t
repl_commit_need(bc_repl_t *r, uint32_t *timeout_ms, uint64_t *gen)
{
    uint64_t want = tls_want;
    if (want <= tls_done) return 0;
    tls_done = want;
    *gen = tls_gen;
    repl_settings_t set;
    bc__repl_settings(r, &set);
    *timeout_ms = set.sync_timeout_ms;
    uint64_t need = want;
    if (set.mode != BC_REPL_SYNC) {
        if (set.max_lag == 0 || want <= set.max_lag) need = 1;   /* the role still holds */
        else need = want - set.max_lag;
    }
    if (atomic_load_explicit(&r->floor, memory_order_acquire) >= need &&
        atomic_load_explicit(&r->role_gen, memory_order_acquire) == *gen &&
        atomic_load_explicit(&r->recording, memory_order_acquire)) {
        return 0;
    }
    return need;
}

static void
repl_count_wait(bc_repl_t *r, int64_t waited_ms)
{
    atomic_fetch_add(&r->sync_waits, 1);
    atomic_fetch_add(&r->sync_wait_us, (uint64_t)waited_ms * 1000u);
}

static void
repl_count_failure(bc_repl_t *r, uint64_t need, const char *why)
{
    uint64_t n = atomic_fetch_add(&r->commit_failures, 1);
    /* one line per burst is enough */
    if ((n & (n + 1)) == 0) {
        log_warn("repl: replies for offset %" PRIu64 " not acknowledged (%s); their connections "
                 "are closed (%" PRIu64 " such batches so far)", need, why, n + 1);
    }
}

/*
 * One step of a wait (mu held): DONE, FAILED, or WAIT.  *expired tells
 * whether the deadline was handled already.
 */
static commit_check_t
do_commit_step(bc_repl_t *r, uint64_t need, uint64_t gen, uint32_t timeout_ms, int64_t waited_ms,
               bool *expired, const char **why)
{
    repl_settings_t set;
    bc__repl_settings(r, &set);
    uint32_t min = bc__repl_min_in_sync(r, &set);
    commit_check_t c = do_commit_check(r, need, gen, min);
    if (c != COMMIT_WAIT) {
        *why = "the role changed";
        return c;
    }
    if (!bc_node_cluster_may_write(r->cluster)) {
        *why = "the write lease lapsed or the role was lost";
        return COMMIT_FAILED;
    }
    if (waited_ms < (int64_t)timeout_ms) return COMMIT_WAIT;
    if (!*expired) {
        *expired = true;
        do_commit_expire(r, need, timeout_ms);
        c = do_commit_check(r, need, gen, min);
        if (c != COMMIT_WAIT) return c;
    }
    if (do_commit_hopeless(r, min)) {
        /* Refuse the next writes at once, before the in-sync thread's
         * next look: they would only wait and fail as this one. */
        if (!r->isr_short) {
            r->isr_short = true;
            bc_node_cluster_set_in_sync_short(r->cluster, true);
            log_warn("repl: group %u: fewer than %u backups keep up: writes are refused "
                     "(NOT_ENOUGH_IN_SYNC) until one catches up", bc_node_cluster_gid(r->cluster),
                     min);
        }
        *why = "fewer backups in sync than min_in_sync";
        return COMMIT_FAILED;
    }
    if (waited_ms >= (int64_t)timeout_ms + ISR_WAIT_CAP_MS) {
        *why = "the in-sync record could not be written";
        return COMMIT_FAILED;
    }
    return COMMIT_WAIT;
}

bool
bc_repl_commit_wait(void *ctx)
{
    bc_repl_t *r = ctx;
    if (r == NULL) return true;
    uint32_t timeout_ms = 0;
    uint64_t gen = 0;
    uint64_t need = repl_commit_need(r, &timeout_ms, &gen);
    if (need == 0) return true;

    int64_t t0 = bc_time_mono_ms();
    bool expired = false;
    const char *why = "";
    commit_check_t c;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        int64_t waited = bc_time_mono_ms() - t0;
        c = do_commit_step(r, need, gen, timeout_ms, waited, &expired, &why);
        if (c != COMMIT_WAIT) break;
        int64_t nap = expired ? ISR_FAIL_POLL_MS
                              : (int64_t)timeout_ms - waited < ISR_FAIL_POLL_MS * 4
                                    ? (int64_t)timeout_ms - waited
                                    : ISR_FAIL_POLL_MS * 4;
        if (nap < 1) nap = 1;
        struct timespec until;
        bc_time_deadline(&until, CLOCK_MONOTONIC, nap);
        (void)pthread_cond_timedwait(&r->ack_cv, &r->mu, &until);
    }
    pthread_mutex_unlock(&r->mu);
    int64_t waited = bc_time_mono_ms() - t0;
    if (waited > 0 || c == COMMIT_FAILED) repl_count_wait(r, waited);
    if (c == COMMIT_FAILED) repl_count_failure(r, need, why);
    return c == COMMIT_DONE;
}

bc_repl_commit_t
bc_repl_commit_ticket(bc_repl_t *r)
{
    bc_repl_commit_t t = {0};
    if (r == NULL) return t;
    t.need = repl_commit_need(r, &t.timeout_ms, &t.gen);
    return t;
}

bc_repl_commit_state_t
bc_repl_commit_poll(bc_repl_t *r, const bc_repl_commit_t *t, int64_t waited_ms)
{
    if (r == NULL || t->need == 0) return BC_REPL_COMMIT_DONE;
    const char *why = "";
    pthread_mutex_lock(&r->mu);
    /* Past the deadline every poll handles it anew: do_commit_expire only
     * adds what is not there yet. */
    bool expired = false;
    commit_check_t c = do_commit_step(r, t->need, t->gen, t->timeout_ms, waited_ms, &expired, &why);
    pthread_mutex_unlock(&r->mu);
    if (c != COMMIT_WAIT && waited_ms > 0) repl_count_wait(r, waited_ms);
    if (c == COMMIT_FAILED) repl_count_failure(r, t->need, why);
    return c == COMMIT_DONE     ? BC_REPL_COMMIT_DONE
           : c == COMMIT_FAILED ? BC_REPL_COMMIT_FAILED
                                : BC_REPL_COMMIT_WAIT;
}

/* ---- the in-sync thread ---- */

/* mu held: the plan for now, and the backup to add (or NULL). */
static void
do_plan(bc_repl_t *r, uint32_t min_in_sync, bc_repl_isr_plan_t *plan)
{
    bc_repl_isr_input_t in;
    memset(&in, 0, sizeof(in));
    in.recorded = &r->isr;
    in.min_in_sync = min_in_sync;
    for (uint32_t i = 0; i < r->isr.n; i++) {
        in.healthy[i] = do_member_healthy(r, r->isr.in_sync[i]);
        in.drop[i] = bc_cluster_isr_has(&r->isr_drop, r->isr.in_sync[i]);
    }
    /* One backup at a time: its write checks its registration. */
    for (const repl_peer_t *p = r->peers; p != NULL && in.add == NULL; p = p->next) {
        if (p->online && p->in_sync && p->node_named && !atomic_load(&p->closing) &&
            !p->lagging && p->heard &&
            !bc_cluster_isr_has(&r->isr, p->name) && !bc_cluster_isr_has(&r->isr_drop, p->name)) {
            in.add = p->name;
        }
    }
    bc__repl_isr_plan(&in, plan);
}

/* The record of this node's term: read it, or start it.  No lock held.
 * BC_OK with *out and *version; anything else: try again later. */
static bc_status_t
isr_load(bc_repl_t *r, bc_cluster_isr_t *out, int32_t *version)
{
    uint64_t epoch = 0;
    char me[BC_NODE_NAME_MAX];
    if (!bc_node_cluster_term(r->cluster, &epoch)) return BC_EAGAIN;
    bc_node_cluster_node_name(r->cluster, me, sizeof(me));
    bc_cluster_isr_t rec;
    int32_t v = -1;
    bc_status_t st = bc_node_cluster_isr_read(r->cluster, &rec, &v);
    if (st == BC_OK && strcmp(rec.primary, me) == 0 && rec.epoch == epoch) {
        *out = rec;
        *version = v;
        return BC_OK;
    }
    if (st == BC_OK && rec.epoch > epoch) return BC_EAGAIN;   /* a newer term: we lose the role */
    if (st != BC_OK && st != BC_ENOTFOUND && st != BC_EINVAL) return st;
    /*
     * BEHAVIOR: no record of this term -- a group whose record an earlier
     * version never wrote, an older term's, or a malformed one.  Nobody
     * can have been promoted on a record of this term, so it starts
     * empty: no backup is eligible until it is recorded in, as one that
     * catches up is.
     */
    memset(&rec, 0, sizeof(rec));
    snprintf(rec.primary, sizeof(rec.primary), "%s", me);
    rec.epoch = epoch;
    pthread_mutex_lock(&r->mu);
    rec.offset = r->backlog.end;
    pthread_mutex_unlock(&r->mu);
    rec.at_ms = bc_time_real_ms();
    if (st == BC_ENOTFOUND) v = -1;
    st = bc_node_cluster_isr_write(r->cluster, &rec, &v, NULL);
    if (st == BC_OK) {
        log_info("repl: started the in-sync record of group %u for this term (epoch %" PRIu64 ")",
                 bc_node_cluster_gid(r->cluster), epoch);
        *out = rec;
        *version = v;
    }
    return st;
}

static void
isr_log_write(bc_repl_t *r, const bc_cluster_isr_t *before, const bc_cluster_isr_t *after)
{
    char list[BC_CLUSTER_ISR_MAX * (BC_NODE_NAME_MAX + 1) + 1] = "";
    for (uint32_t i = 0; i < after->n; i++) {
        if (i > 0) strcat(list, ",");
        strcat(list, after->in_sync[i]);
    }
    for (uint32_t i = 0; i < before->n; i++) {
        if (!bc_cluster_isr_has(after, before->in_sync[i])) {
            atomic_fetch_add(&r->isr_shrinks, 1);
            log_warn("repl: in-sync set of group %u recorded without %s: [%s]",
                     bc_node_cluster_gid(r->cluster), before->in_sync[i], list);
        }
    }
    for (uint32_t i = 0; i < after->n; i++) {
        if (!bc_cluster_isr_has(before, after->in_sync[i])) {
            atomic_fetch_add(&r->isr_expands, 1);
            log_info("repl: in-sync set of group %u recorded with %s: [%s]",
                     bc_node_cluster_gid(r->cluster), after->in_sync[i], list);
        }
    }
}

/* mu held: the write gate, as the plan says (logged when it changes). */
static void
do_gate(bc_repl_t *r, bool refuse, const bc_repl_isr_plan_t *plan, uint32_t min)
{
    if (refuse == r->isr_short) return;
    r->isr_short = refuse;
    bc_node_cluster_set_in_sync_short(r->cluster, refuse);
    if (r->isr_state != REPL_ISR_READY) return;
    if (refuse) {
        log_warn("repl: group %u: %u of the %u backups min_in_sync asks for keep up: writes are "
                 "refused (NOT_ENOUGH_IN_SYNC) until one catches up", bc_node_cluster_gid(r->cluster),
                 plan->healthy, min);
    } else {
        log_info("repl: group %u: %u backups in sync (min_in_sync %u): writes accepted",
                 bc_node_cluster_gid(r->cluster), plan->healthy, min);
    }
}

static void *
isr_main(void *arg)
{
    bc_repl_t *r = arg;
    char add[BC_NODE_NAME_MAX] = "";
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        int64_t nap = ISR_NAP_MS;
        uint64_t gen = atomic_load(&r->role_gen);
        if (r->isr_state == REPL_ISR_LOADING) {
            pthread_mutex_unlock(&r->mu);
            bc_cluster_isr_t rec;
            int32_t version = -1;
            bc_status_t st = isr_load(r, &rec, &version);
            pthread_mutex_lock(&r->mu);
            if (st == BC_OK && gen == atomic_load(&r->role_gen) &&
                r->isr_state == REPL_ISR_LOADING) {
                r->isr = rec;
                r->isr_version = version;
                r->isr_state = REPL_ISR_READY;
                r->isr_short = true;          /* do_gate below logs the state */
                log_info("repl: primary of group %u: in-sync set of this term has %u backups: "
                         "writes open", bc_node_cluster_gid(r->cluster), rec.n);
                bc__repl_do_isr_changed(r);
                /* The write gate (cluster.h): closed since the promotion,
                 * so a write never runs before this term's record is known.
                 * The role may have been lost meanwhile: then it stays shut. */
                (void)bc_node_cluster_open_writes(r->cluster);
                continue;
            }
            if (st != BC_OK) nap = ISR_RETRY_MS;
        } else if (r->isr_state == REPL_ISR_READY) {
            repl_settings_t set;
            bc__repl_settings(r, &set);
            uint32_t min = bc__repl_min_in_sync(r, &set);
            bc_repl_isr_plan_t plan;
            do_plan(r, min, &plan);
            do_gate(r, plan.refuse_writes, &plan, min);
            if (!r->isr_prop_pending && plan.write) {
                r->isr_prop = plan.next;
                r->isr_prop.offset = r->backlog.end;
                r->isr_prop.at_ms = bc_time_real_ms();
                r->isr_prop_pending = true;
                add[0] = '\0';
                for (uint32_t i = 0; i < plan.next.n && plan.added; i++) {
                    if (!bc_cluster_isr_has(&r->isr, plan.next.in_sync[i])) {
                        snprintf(add, sizeof(add), "%s", plan.next.in_sync[i]);
                    }
                }
                do_floor_publish(r);
            }
            if (r->isr_prop_pending) {
                bc_cluster_isr_t prop = r->isr_prop, before = r->isr;
                int32_t version = r->isr_version;
                pthread_mutex_unlock(&r->mu);
                bc_status_t st = bc_node_cluster_isr_write(r->cluster, &prop, &version,
                                                           add[0] ? add : NULL);
                bc_cluster_isr_t now;
                int32_t now_version = -1;
                bc_status_t rst = BC_OK;
                if (st == BC_ESTALE || st == BC_ENOTFOUND || st == BC_EEXISTS) {
                    rst = bc_node_cluster_isr_read(r->cluster, &now, &now_version);
                }
                pthread_mutex_lock(&r->mu);
                if (gen != atomic_load(&r->role_gen) || r->isr_state != REPL_ISR_READY) continue;
                if (st == BC_OK) {
                    r->isr = prop;
                    r->isr_version = version;
                    r->isr_prop_pending = false;
                    for (uint32_t i = 0; i < before.n; i++) {
                        if (!bc_cluster_isr_has(&prop, before.in_sync[i])) {
                            (void)bc_cluster_isr_remove(&r->isr_drop, before.in_sync[i]);
                        }
                    }
                    isr_log_write(r, &before, &prop);
                    bc__repl_do_isr_changed(r);
                    continue;
                }
                atomic_fetch_add(&r->isr_write_errors, 1);
                if ((st == BC_ESTALE || st == BC_ENOTFOUND || st == BC_EEXISTS) && rst == BC_OK &&
                    strcmp(now.primary, r->isr.primary) == 0 && now.epoch == r->isr.epoch) {
                    bool unchanged = now_version == r->isr_version;
                    if (unchanged && add[0] != '\0') {
                        /* Nothing changed but the write failed: the backup
                         * to add is no registration of this group (a peer
                         * naming itself as one it is not, or one that
                         * registered again): never tried again. */
                        for (repl_peer_t *q = r->peers; q != NULL; q = q->next) {
                            if (strcmp(q->name, add) == 0) q->node_named = false;
                        }
                        log_warn("repl: backup %s is no live registration of group %u: it is not "
                                 "recorded in the in-sync set", add,
                                 bc_node_cluster_gid(r->cluster));
                    }
                    /* Still our term (or a write whose reply was lost was
                     * applied): what ZooKeeper holds is the truth. */
                    r->isr = now;
                    r->isr_version = now_version;
                    r->isr_prop_pending = false;
                    bc__repl_do_isr_changed(r);
                    if (!unchanged) continue;
                } else if ((st == BC_ESTALE || st == BC_ENOTFOUND || st == BC_EEXISTS) &&
                           (rst == BC_OK || rst == BC_ENOTFOUND)) {
                    log_warn("repl: the in-sync record of group %u belongs to another term now "
                             "(%s): no reply is acknowledged as its primary any more",
                             bc_node_cluster_gid(r->cluster), bc_status_str(st));
                    r->isr_state = REPL_ISR_LOST;
                    r->isr_prop_pending = false;
                    bc__repl_do_isr_changed(r);
                    continue;
                }
                /* Not written, or not known (ZooKeeper unreachable, the
                 * record unreadable): keep the proposal -- its members are
                 * still waited for -- and try again; a write that lost a
                 * race reads the record again then. */
                nap = ISR_RETRY_MS;
            }
        }
        struct timespec until;
        bc_time_deadline(&until, CLOCK_MONOTONIC, nap);
        (void)pthread_cond_timedwait(&r->isr_cv, &r->mu, &until);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

bc_status_t
bc__repl_isr_start(bc_repl_t *r)
{
    if (pthread_create(&r->isr_thread, NULL, isr_main, r) != 0) return BC_ENOMEM;
    r->isr_started = true;
    return BC_OK;
}

void
bc__repl_isr_stop(bc_repl_t *r)
{
    pthread_mutex_lock(&r->mu);
    pthread_cond_signal(&r->isr_cv);
    pthread_mutex_unlock(&r->mu);
    if (r->isr_started) pthread_join(r->isr_thread, NULL);
    r->isr_started = false;
}
