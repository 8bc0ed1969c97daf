/*
 * promote.c -- the group's in-sync record as replication reads and writes
 * it (cluster.h, "the in-sync set"), and a backup's own promotion when its
 * primary is gone and no console acts (PROMOTION below).
 *
 * HOW
 *   Both are ZooKeeper transactions on three znodes of the group:
 *
 *     groups/<gid>/primary     the term: who is primary, since which epoch
 *     groups/<gid>/isr         the in-sync set of that term (bc_cluster_isr_t)
 *     groups/<gid>/nodes/n-*   the registrations (ephemeral)
 *
 *   The primary changes the in-sync record alone, each time checking the
 *   record's version and its own term's (the primary record's version): a
 *   console or a backup that started a new term in between makes the
 *   write fail, so a primary that lost its role can never record anything
 *   again.  A member is added only in a transaction that also checks its
 *   registration exists.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_cluster.h"
#include "bc_log.h"
#include "bc_time.h"
#include "bc_zk.h"
#include "cluster/cluster_int.h"

/* How long a backup leaves a console to promote someone after the
 * primary's registration went, and how much longer each better-placed
 * in-sync member gets before the next one tries. */
#define PROMOTE_GRACE_MS   500
#define PROMOTE_STEP_MS    400
#define PROMOTE_HTTP_MS    300    /* asking another member its offset */

bc_status_t
bc_node_cluster_isr_read(bc_node_cluster_t *cl, bc_cluster_isr_t *out, int32_t *version)
{
    char path[BC_CLUSTER_PATH_MAX], err[200] = "";
    char *data = NULL;
    size_t len = 0;
    bc_status_t st = bc__node_cluster_group_path(cl, "/isr", path, sizeof(path));
    if (st == BC_OK) {
        /* the in-sync thread's call: cl->zk may be going (zk_lock) */
        pthread_rwlock_rdlock(&cl->zk_lock);
        st = cl->zk != NULL ? bc_zk_get(cl->zk, path, NULL, NULL, &data, &len, version)
                            : BC_ECLOSED;
        pthread_rwlock_unlock(&cl->zk_lock);
    }
    if (st == BC_OK) {
        st = bc_cluster_isr_decode(data ? data : "", len, out, err, sizeof(err));
        if (st != BC_OK) log_warn("cluster: group %u's in-sync record is malformed: %s", cl->gid, err);
    }
    free(data);
    return st;
}

bc_status_t
bc_node_cluster_isr_write(bc_node_cluster_t *cl, const bc_cluster_isr_t *rec, int32_t *version,
                          const char *add)
{
    char isr_path[BC_CLUSTER_PATH_MAX], prim_path[BC_CLUSTER_PATH_MAX];
    char node_path[BC_CLUSTER_PATH_MAX + BC_NODE_NAME_MAX];
    bc_status_t st = bc__node_cluster_group_path(cl, "/isr", isr_path, sizeof(isr_path));
    if (st == BC_OK) st = bc__node_cluster_group_path(cl, "/primary", prim_path, sizeof(prim_path));
    if (st != BC_OK) return st;
    pthread_mutex_lock(&cl->mu);
    int32_t prim_version = cl->own_prim_present ? cl->own_prim_version : -1;
    bool mine = cl->own_prim_present && strcmp(cl->own_prim.node, cl->node_name) == 0 &&
                strcmp(cl->own_prim.node, rec->primary) == 0 && cl->own_prim.epoch == rec->epoch;
    pthread_mutex_unlock(&cl->mu);
    /* Not our term as the agent last read it: the role is being lost (the
     * demotion follows), or the record is being read again -- try later. */
    if (!mine) return BC_EAGAIN;
    char *json = bc_cluster_isr_encode(rec);
    if (json == NULL) return BC_ENOMEM;
    bc_zk_txn_t *txn = bc_zk_txn_new();
    if (txn == NULL) {
        free(json);
        return BC_ENOMEM;
    }
    st = bc_zk_txn_check(txn, prim_path, prim_version);
    if (st == BC_OK && add != NULL) {
        char sfx[16 + BC_NODE_NAME_MAX];
        snprintf(sfx, sizeof(sfx), "/nodes/%s", add);
        st = bc__node_cluster_group_path(cl, sfx, node_path, sizeof(node_path));
        if (st == BC_OK) st = bc_zk_txn_check(txn, node_path, -1);
    }
    if (st == BC_OK) {
        st = *version < 0 ? bc_zk_txn_create(txn, isr_path, json, strlen(json), 0)
                          : bc_zk_txn_set(txn, isr_path, json, strlen(json), *version);
    }
    int failed = -1;
    if (st == BC_OK) {
        pthread_rwlock_rdlock(&cl->zk_lock);
        st = cl->zk != NULL ? bc_zk_txn_commit(cl->zk, txn, &failed) : BC_ECLOSED;
        pthread_rwlock_unlock(&cl->zk_lock);
    }
    bc_zk_txn_free(txn);
    free(json);
    if (st == BC_OK) *version = *version < 0 ? 0 : *version + 1;
    return st;
}

/* ---- a backup's own promotion ---- */

/*
 * PROMOTION
 *
 * BACKGROUND: the console promotes a backup when its group's primary is
 * gone -- but a console may be gone too (killed, or cut off from
 * ZooKeeper).  A standby console takes over only once the active one's
 * election znode is gone, that is once its session expired: a failover
 * that meets a dead console then waits for two session timeouts (the
 * primary's, then the console's), twice the 4 s a client sees otherwise.
 * A standby cannot act earlier safely: it cannot tell a dead console from
 * one that is alive and merely slow, and two consoles acting at once
 * would fight over the migrations and the tables.
 *
 * BEHAVIOR: so the group does not wait for a console to promote one of
 * its own.  What makes a promotion safe is not who writes it but what it
 * is checked against, and a backup can check the same things a console
 * does, in one ZooKeeper transaction:
 *
 *   - the primary's registration (the node the primary record names) is
 *     gone: its session ended, and its write lease had run out before
 *     that (FENCING in cluster.c), so it takes no write any more.  A
 *     registration name never comes back (sequential), so "gone" stays
 *     true;
 *   - this node is in the in-sync record of that very term: it holds
 *     every write the primary acknowledged (repl.h, THE IN-SYNC SET), and
 *     its data is complete (not mid-snapshot);
 *   - nobody acted meanwhile: the transaction checks the primary record's
 *     and the in-sync record's versions, and this node's own registration
 *     (its session is alive), then writes both records for the new term --
 *     the primary record naming this node, and the in-sync record carrying
 *     the other members over.
 *
 * Every write to these records, the console's included, is such a
 * compare-and-set, so a console that wakes up late (a zombie: cut off,
 * its session not yet expired) cannot undo the promotion: its own
 * transaction fails on the versions and it reads the new state.
 *
 * A console normally acts within a round of seeing the registration go;
 * a backup waits PROMOTE_GRACE_MS for that, and the in-sync members rank
 * themselves by their replication offset (the most up-to-date first,
 * ties by name), each waiting PROMOTE_STEP_MS longer per member ranked
 * before it, so the best one wins and the others find the new term
 * written when their turn comes.  Any member would be safe; the ranking
 * keeps the most data.  A backup outside the in-sync set never promotes
 * itself; when no member is alive the group waits for an operator
 * (`bucketcache group failover --unclean`, console/).
 */

/* The offset of another member, from its admin port; false when unknown. */
static bool
promote_member_offset(bc_node_cluster_t *cl, const char *name, uint64_t *offset)
{
    char path[BC_CLUSTER_PATH_MAX + BC_NODE_NAME_MAX], sfx[16 + BC_NODE_NAME_MAX];
    snprintf(sfx, sizeof(sfx), "/nodes/%s", name);
    if (bc__node_cluster_group_path(cl, sfx, path, sizeof(path)) != BC_OK) return false;
    char *data = NULL;
    size_t len = 0;
    bc_cluster_node_info_t info;
    memset(&info, 0, sizeof(info));
    bool ok = bc_zk_get(cl->zk, path, NULL, NULL, &data, &len, NULL) == BC_OK &&
              bc_cluster_node_info_decode(data ? data : "", len, &info, NULL, 0) == BC_OK;
    free(data);
    bc_cluster_repl_status_t rs;
    if (!ok || info.admin_addr[0] == '\0' ||
        bc_cluster_repl_status_fetch(info.admin_addr, PROMOTE_HTTP_MS, &rs) != BC_OK || !rs.synced) {
        return false;
    }
    *offset = rs.offset;
    return true;
}

/* The primary's registration changed (went): read the primaries again. */
static void
promote_on_watch(bc_zk_t *zk, const char *path, void *ctx)
{
    (void)zk;
    (void)path;
    bc__node_cluster_wake(ctx, true);
}

static void
promote_forget(bc_node_cluster_t *cl)
{
    cl->cand_due_ms = 0;
}

int64_t
bc__node_cluster_promote_step(bc_node_cluster_t *cl)
{
    char me[BC_NODE_NAME_MAX], path[BC_CLUSTER_PATH_MAX + BC_NODE_NAME_MAX];
    char sfx[16 + BC_NODE_NAME_MAX];
    if (cl->repl_probe == NULL || atomic_load(&cl->primary)) {
        promote_forget(cl);
        return -1;
    }
    pthread_mutex_lock(&cl->mu);
    bool present = cl->own_prim_present;
    bc_cluster_primary_info_t prim = cl->own_prim;
    int32_t prim_version = cl->own_prim_version;
    snprintf(me, sizeof(me), "%s", cl->node_name);
    pthread_mutex_unlock(&cl->mu);
    if (!present || me[0] == '\0' || strcmp(prim.node, me) == 0) {
        promote_forget(cl);
        return -1;
    }
    if (cl->cand_due_ms != 0 && cl->cand_prim_version != prim_version) promote_forget(cl);

    /* Is the primary's registration still there?  The watch wakes the
     * agent (primaries dirty) the moment it goes. */
    snprintf(sfx, sizeof(sfx), "/nodes/%s", prim.node);
    if (bc__node_cluster_group_path(cl, sfx, path, sizeof(path)) != BC_OK) return -1;
    bc_status_t st = bc_zk_exists(cl->zk, path, promote_on_watch, cl, NULL);
    if (st == BC_OK) {
        promote_forget(cl);
        return -1;
    }
    if (st != BC_ENOTFOUND) return 500;

    int64_t now = bc_time_mono_ms();
    uint64_t offset = 0;
    if (cl->cand_due_ms == 0) {
        bc_cluster_isr_t isr;
        int32_t isr_version = -1;
        st = bc_node_cluster_isr_read(cl, &isr, &isr_version);
        bool logit = strcmp(cl->cand_logged, prim.node) != 0;
        snprintf(cl->cand_logged, sizeof(cl->cand_logged), "%s", prim.node);
        if (st != BC_OK && st != BC_ENOTFOUND && st != BC_EINVAL) return 500;
        if (st != BC_OK || !bc_cluster_isr_of(&isr, &prim)) {
            if (logit) {
                log_info("cluster: primary %s of group %u is gone; no in-sync record of its term: "
                         "the console decides", prim.node, cl->gid);
            }
            return -1;
        }
        if (!bc_cluster_isr_has(&isr, me)) {
            if (logit) {
                log_info("cluster: primary %s of group %u is gone; this node is not in its in-sync "
                         "set, so it does not promote itself", prim.node, cl->gid);
            }
            return -1;
        }
        if (!cl->repl_probe(cl->repl_probe_ctx, &offset)) {
            if (logit) {
                log_info("cluster: primary %s of group %u is gone; this node's data is incomplete "
                         "(a snapshot under way): it does not promote itself", prim.node, cl->gid);
            }
            return -1;
        }
        uint32_t rank = 0;
        for (uint32_t i = 0; i < isr.n; i++) {
            uint64_t o;
            if (strcmp(isr.in_sync[i], me) == 0) continue;
            if (promote_member_offset(cl, isr.in_sync[i], &o) &&
                (o > offset || (o == offset && strcmp(isr.in_sync[i], me) < 0))) {
                rank++;
            }
        }
        cl->cand_isr = isr;
        cl->cand_isr_version = isr_version;
        cl->cand_prim_version = prim_version;
        cl->cand_due_ms = now + PROMOTE_GRACE_MS + (int64_t)rank * PROMOTE_STEP_MS;
        log_info("cluster: primary %s of group %u is gone; this node is in its in-sync set "
                 "(offset %" PRIu64 ", rank %u): it promotes itself in %" PRId64 " ms unless a "
                 "console acts first", prim.node, cl->gid, offset, rank, cl->cand_due_ms - now);
    }
    if (now < cl->cand_due_ms) return cl->cand_due_ms - now;

    /* Our turn: nobody acted.  One transaction, checked against all of it. */
    (void)cl->repl_probe(cl->repl_probe_ctx, &offset);
    uint64_t epoch = atomic_load(&cl->epoch);
    if (prim.epoch > epoch) epoch = prim.epoch;
    epoch++;
    bc_cluster_primary_info_t next;
    memset(&next, 0, sizeof(next));
    snprintf(next.node, sizeof(next.node), "%s", me);
    snprintf(next.data_addr, sizeof(next.data_addr), "%s", cl->self.data_addr);
    snprintf(next.admin_addr, sizeof(next.admin_addr), "%s", cl->self.admin_addr);
    snprintf(next.incarnation, sizeof(next.incarnation), "%s", cl->self.incarnation);
    next.epoch = epoch;
    bc_cluster_isr_t isr = cl->cand_isr;
    snprintf(isr.primary, sizeof(isr.primary), "%s", me);
    isr.epoch = epoch;
    (void)bc_cluster_isr_remove(&isr, me);
    isr.offset = offset;
    isr.at_ms = bc_time_real_ms();

    char prim_path[BC_CLUSTER_PATH_MAX], isr_path[BC_CLUSTER_PATH_MAX];
    char self_path[BC_CLUSTER_PATH_MAX + BC_NODE_NAME_MAX];
    snprintf(sfx, sizeof(sfx), "/nodes/%s", me);
    char *pjson = bc_cluster_primary_info_encode(&next), *ijson = bc_cluster_isr_encode(&isr);
    bc_zk_txn_t *txn = bc_zk_txn_new();
    st = pjson && ijson && txn ? BC_OK : BC_ENOMEM;
    if (st == BC_OK) st = bc__node_cluster_group_path(cl, "/primary", prim_path, sizeof(prim_path));
    if (st == BC_OK) st = bc__node_cluster_group_path(cl, "/isr", isr_path, sizeof(isr_path));
    if (st == BC_OK) st = bc__node_cluster_group_path(cl, sfx, self_path, sizeof(self_path));
    if (st == BC_OK) st = bc_zk_txn_check(txn, self_path, -1);
    if (st == BC_OK) st = bc_zk_txn_set(txn, prim_path, pjson, strlen(pjson), cl->cand_prim_version);
    if (st == BC_OK) {
        st = bc_zk_txn_set(txn, isr_path, ijson, strlen(ijson), cl->cand_isr_version);
    }
    int failed = -1;
    if (st == BC_OK) st = bc_zk_txn_commit(cl->zk, txn, &failed);
    bc_zk_txn_free(txn);
    free(pjson);
    free(ijson);
    if (st == BC_OK) {
        atomic_fetch_add(&cl->self_promotions, 1);
        log_warn("cluster: promoted this node (%s) to primary of group %u at epoch %" PRIu64
                 ": primary %s is gone and no console acted within %d ms; in-sync set carried "
                 "over: %u backups", me, cl->gid, epoch, prim.node, PROMOTE_GRACE_MS, isr.n);
    } else if (st == BC_ESTALE || st == BC_ENOTFOUND || st == BC_EEXISTS) {
        log_info("cluster: group %u: another node or a console acted first (%s); following it",
                 cl->gid, bc_status_str(st));
    } else {
        log_warn("cluster: group %u: self-promotion not written: %s; trying again", cl->gid,
                 bc_status_str(st));
        cl->cand_due_ms = now + 200;
        return 200;
    }
    promote_forget(cl);
    bc__node_cluster_wake(cl, true);
    return -1;
}
