/*
 * repl.c -- replication's lifecycle, its role thread and its figures; see
 * repl.h for the protocol, the modes and the role changes.
 *
 * THREADS
 *   repl_main      one per node (here): follows the role the cluster agent
 *                  decides -- promote, demote -- and as a backup runs the
 *                  follower loop itself (backup.c: connect, apply,
 *                  acknowledge).
 *   peer_sender    one per connected backup (primary.c): handshake answer,
 *                  snapshot, then the backlog as it grows, PING when idle.
 *   peer_reader    one per connected backup (primary.c): reads ACKs.
 *   isr_main       one per node (isr.c): while primary, writes the
 *                  in-sync record to ZooKeeper and sets the write gate.
 *   workers        record changes (the cache observer, primary.c) and
 *                  wait for ACKs before replying (bc_repl_commit_wait,
 *                  isr.c).
 *
 * THE BACKLOG
 *   A byte ring of the last backlog_bytes of the stream (backlog.h): [start,
 *   end) in stream offsets, end being the primary's replication offset.
 *   Records are appended whole under mu; a sender copies up to a chunk from
 *   its position under mu and sends it without the lock.  A sender whose
 *   position fell below start has lost records: its backup is
 *   disconnected, and on reconnecting asks for an offset that is no longer
 *   held, so it gets a full resync.  A backup mirrors the stream it applies
 *   into its own backlog, for the day it is promoted.
 */
#include "repl/repl.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bc_frame.h"
#include "bc_log.h"
#include "bc_time.h"
#include "repl/repl_int.h"

#define REPL_DEFAULT_BACKLOG       (64u * 1024u * 1024u)
#define REPL_DEFAULT_SYNC_TIMEOUT  500u
#define REPL_DEFAULT_MAX_BACKUPS   8u
#define REPL_ROLE_POLL_MS          50
#define REPL_KEEP_MS               60000    /* record this long without backups */

/* ---- small helpers ---- */

static void
repl_new_replid(char *out)
{
    unsigned char raw[20];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        uint64_t t = (uint64_t)bc_time_real_ms() ^ ((uint64_t)getpid() << 32);
        for (size_t i = 0; i < sizeof(raw); i++) {
            raw[i] = (unsigned char)(t >> ((i % 8) * 8)) ^ (unsigned char)i;
        }
    }
    for (size_t i = 0; i < sizeof(raw); i++) sprintf(out + 2 * i, "%02x", raw[i]);
}

bool
bc__repl_send_all(bc_peer_io_t *io, const char *p, size_t n)
{
    return bc_peer_io_send_all(io, p, n);
}

void
bc__repl_settings(const bc_repl_t *r, repl_settings_t *out)
{
    int mode;
    int64_t timeout, lag_mb;
    bc_node_cluster_group_settings(r->cluster, &mode, &timeout, &lag_mb);
    out->mode = mode < 0 ? r->mode : mode == 1 ? BC_REPL_SYNC : BC_REPL_ASYNC;
    out->sync_timeout_ms = timeout < 0 ? r->sync_timeout_ms : (uint32_t)timeout;
    out->max_lag = lag_mb < 0 ? r->max_lag : (uint64_t)lag_mb << 20;
}

/* ---- role changes ---- */

static void
repl_promote(bc_repl_t *r)
{
    pthread_mutex_lock(&r->mu);
    /* Twice (the role hook and the role thread race) or while the
     * follower still applies the old primary's stream: not now. */
    if (atomic_load(&r->recording) || r->following || r->stopping) {
        pthread_mutex_unlock(&r->mu);
        return;
    }
    char old[BC_FRAME_REPLID_MAX + 1];
    memcpy(old, r->replid, sizeof(old));
    if (r->synced && r->replid[0] != '\0' && r->backlog.end == r->applied) {
        /* CONTINUING AFTER A FAILOVER (Redis's PSYNC2): our backlog mirrors
         * the old primary's stream up to here, so a backup that followed
         * the same primary and is not ahead of us can continue from its
         * offset instead of taking a snapshot.  One that is ahead (the
         * old primary itself, with writes nobody else got) cannot. */
        memcpy(r->replid2, r->replid, sizeof(r->replid2));
        r->off2 = r->backlog.end;
    } else {
        r->replid2[0] = '\0';
        r->off2 = 0;
        bc_backlog_reset(&r->backlog, r->applied);
    }
    repl_new_replid(r->replid);
    r->synced = true;
    r->link_up = false;
    /* After a failover the other backups come back: keep recording for
     * them.  A first primary (it never followed anyone) has none yet. */
    atomic_store(&r->keep_until, old[0] != '\0' ? bc_time_mono_ms() + r->keep_ms : 0);
    atomic_store(&r->skipped, false);
    /* The write gate opens once the in-sync record of this term is read
     * (isr.c): its members are waited for from the first write. */
    bc__repl_do_isr_promoted(r);
    atomic_store(&r->recording, true);
    uint64_t off = r->backlog.end;
    pthread_mutex_unlock(&r->mu);
    log_info("repl: primary of group %u: recording from offset %" PRIu64 " (replication id "
             "%s%s%s)", bc_node_cluster_gid(r->cluster), off, r->replid, old[0] ? ", was " : "",
             old);
}

static void
repl_demote(bc_repl_t *r)
{
    bc_node_cluster_close_writes(r->cluster);
    pthread_mutex_lock(&r->mu);
    atomic_store(&r->recording, false);
    bc__repl_do_isr_demoted(r);
    r->applied = r->backlog.end;
    bc__repl_do_peers_close(r);
    struct timespec until;
    bc_time_deadline(&until, CLOCK_MONOTONIC, 3000);
    while (r->npeers > 0) {
        if (pthread_cond_timedwait(&r->role_cv, &r->mu, &until) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&r->mu);
    log_info("repl: no longer primary of group %u: following the new primary",
             bc_node_cluster_gid(r->cluster));
}

static void *
repl_main(void *arg)
{
    bc_repl_t *r = arg;
    bc_node_primaries_t view;
    bc_node_primaries_init(&view);
    int backoff = 50;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        bool stop = r->stopping;
        pthread_mutex_unlock(&r->mu);
        if (stop) break;
        int nap = REPL_ROLE_POLL_MS;
        if (bc_node_cluster_is_primary(r->cluster)) {
            if (!atomic_load(&r->recording)) {
                repl_promote(r);
            } else if (!bc_node_cluster_may_write(r->cluster)) {
                pthread_mutex_lock(&r->mu);
                bool ready = r->isr_state == REPL_ISR_READY;
                pthread_mutex_unlock(&r->mu);
                if (ready) (void)bc_node_cluster_open_writes(r->cluster);
            }
        } else {
            if (atomic_load(&r->recording)) repl_demote(r);
            bc_node_primary_t prim;
            pthread_mutex_lock(&r->mu);
            bool go = !atomic_load(&r->recording) && !r->stopping &&
                      bc__repl_find_primary(r, &view, &prim);
            r->following = go;
            pthread_mutex_unlock(&r->mu);
            if (go) {
                int64_t t0 = bc_time_mono_ms();
                bc__repl_follow(r, &prim, &view);
                pthread_mutex_lock(&r->mu);
                r->following = false;
                pthread_mutex_unlock(&r->mu);
                /* A link that lasted is not a reason to wait long. */
                backoff = bc_time_mono_ms() - t0 > 2000 ? 50
                          : backoff * 2 > 1000           ? 1000
                                                         : backoff * 2;
                nap = backoff;
            }
        }
        pthread_mutex_lock(&r->mu);
        if (!r->stopping) {
            struct timespec until;
            bc_time_deadline(&until, CLOCK_MONOTONIC, nap);
            pthread_cond_timedwait(&r->role_cv, &r->mu, &until);
        }
        pthread_mutex_unlock(&r->mu);
    }
    bc_node_primaries_free(&view);
    return NULL;
}

/* ---- lifecycle ---- */

/* The cluster's probe for a backup's own promotion (cluster.h): is our
 * data complete, and how far? */
static bool
repl_probe(void *ctx, uint64_t *offset)
{
    bc_repl_t *r = ctx;
    pthread_mutex_lock(&r->mu);
    bool ok = r->synced && !atomic_load(&r->recording);
    *offset = r->applied;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

/* The cluster's role changed: act now rather than at the next poll. */
static void
repl_on_role(void *ctx)
{
    bc_repl_t *r = ctx;
    pthread_mutex_lock(&r->mu);
    /* A promoted backup must stop following at once: its primary is gone
     * and waiting for the link to time out would delay the promotion. */
    if (r->follow_fd >= 0) shutdown(r->follow_fd, SHUT_RDWR);
    bool idle = !r->following;
    pthread_cond_broadcast(&r->role_cv);
    pthread_mutex_unlock(&r->mu);
    /* Not following anyone (a first primary, a node back from an expired
     * session): promote right here, so writes open as soon as the role
     * is known rather than a thread wake-up later. */
    if (idle && bc_node_cluster_is_primary(r->cluster)) repl_promote(r);
}

bc_status_t
bc_repl_create(const bc_repl_config_t *config, bc_repl_t **out)
{
    if (config == NULL || config->cache == NULL || config->cluster == NULL) return BC_EINVAL;
    bc_repl_t *r = calloc(1, sizeof(*r));
    if (r == NULL) return BC_ENOMEM;
    r->cache = config->cache;
    r->cluster = config->cluster;
    r->mode = config->mode;
    r->sync_timeout_ms = config->sync_timeout_ms ? config->sync_timeout_ms
                                                 : REPL_DEFAULT_SYNC_TIMEOUT;
    r->max_lag = config->max_lag_bytes;
    atomic_init(&r->floor, UINT64_MAX);
    r->max_backups = config->max_backups ? config->max_backups : REPL_DEFAULT_MAX_BACKUPS;
    r->follow_fd = -1;
    r->peer_auth = config->peer_auth;
    r->tls = config->tls;
    r->keep_ms = REPL_KEEP_MS;
    const char *keep = getenv("BC_TEST_REPL_KEEP_MS");
    if (keep != NULL && keep[0] != '\0') {
        r->keep_ms = strtoll(keep, NULL, 10);
        log_warn("repl: BC_TEST_REPL_KEEP_MS: recording without backups stops after %lld ms",
                 (long long)r->keep_ms);
    }
    if (bc_backlog_init(&r->backlog, config->backlog_bytes ? config->backlog_bytes
                                                           : REPL_DEFAULT_BACKLOG) != BC_OK) {
        free(r);
        return BC_ENOMEM;
    }
    pthread_mutex_init(&r->mu, NULL);
    bc_time_cond_init(&r->data_cv);
    bc_time_cond_init(&r->ack_cv);
    bc_time_cond_init(&r->role_cv);
    bc_time_cond_init(&r->isr_cv);
    r->isr_version = -1;
    bc_cache_set_observer(r->cache, bc__repl_observe, r);
    bc_node_cluster_use_write_gate(r->cluster);
    (void)bc_node_cluster_set_role_hook(r->cluster, repl_on_role, r);
    bc_node_cluster_set_repl_probe(r->cluster, repl_probe, r);
    *out = r;
    return BC_OK;
}

bc_status_t
bc_repl_start(bc_repl_t *r)
{
    if (bc__repl_isr_start(r) != BC_OK) return BC_ENOMEM;
    if (pthread_create(&r->thread, NULL, repl_main, r) != 0) return BC_ENOMEM;
    r->started = true;
    return BC_OK;
}

void
bc_repl_stop(bc_repl_t *r)
{
    if (r == NULL) return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    atomic_store(&r->recording, false);
    bc__repl_do_peers_close(r);
    if (r->follow_fd >= 0) shutdown(r->follow_fd, SHUT_RDWR);
    pthread_cond_broadcast(&r->role_cv);
    pthread_mutex_unlock(&r->mu);
    if (r->started) pthread_join(r->thread, NULL);
    r->started = false;
    bc__repl_isr_stop(r);
    pthread_mutex_lock(&r->mu);
    struct timespec until;
    bc_time_deadline(&until, CLOCK_MONOTONIC, 10000);
    while (r->npeers > 0) {
        if (pthread_cond_timedwait(&r->role_cv, &r->mu, &until) == ETIMEDOUT) {
            log_warn("repl: %u backup connections still closing", r->npeers);
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
}

void
bc_repl_destroy(bc_repl_t *r)
{
    if (r == NULL) return;
    bc_repl_stop(r);
    bc_cache_set_observer(r->cache, NULL, NULL);
    if (r->npeers > 0) return;   /* a stuck sender still uses r: leak rather than crash */
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->data_cv);
    pthread_cond_destroy(&r->ack_cv);
    pthread_cond_destroy(&r->role_cv);
    pthread_cond_destroy(&r->isr_cv);
    bc_backlog_free(&r->backlog);
    free(r);
}

void
bc_repl_get_info(bc_repl_t *r, bc_repl_info_t *out)
{
    memset(out, 0, sizeof(*out));
    if (r == NULL) return;
    pthread_mutex_lock(&r->mu);
    out->primary = atomic_load(&r->recording);
    repl_settings_t set;
    bc__repl_settings(r, &set);
    out->mode = set.mode;
    memcpy(out->replid, r->replid, sizeof(out->replid));
    out->offset = out->primary ? r->backlog.end : (r->synced ? r->applied : 0);
    out->synced = out->primary || r->synced;
    out->backlog_start = r->backlog.start;
    out->backlog_bytes = r->backlog.end - r->backlog.start;
    uint32_t i = 0;
    for (repl_peer_t *p = r->peers; p != NULL; p = p->next) {
        out->backups++;
        if (i >= BC_REPL_MAX_BACKUPS_REPORTED) continue;
        bc_repl_backup_info_t *b = &out->backup[i++];
        snprintf(b->name, sizeof(b->name), "%s", p->name);
        snprintf(b->addr, sizeof(b->addr), "%s", p->addr);
        b->online = p->online;
        b->recorded = bc_cluster_isr_has(&r->isr, p->name);
        b->lagging = p->lagging;
        b->in_sync = p->in_sync || (b->recorded && !p->lagging && p->online);
        b->acked = atomic_load(&p->acked);
        b->lag_bytes = r->backlog.end > b->acked ? r->backlog.end - b->acked : 0;
    }
    static const char *const isr_states[] = {"off", "loading", "ready", "lost"};
    out->isr_state = isr_states[r->isr_state];
    out->isr_short = r->isr_short;
    out->isr = r->isr;
    out->isr_version = r->isr_version;
    out->min_in_sync = bc__repl_min_in_sync(r, &set);
    out->link_up = r->link_up;
    memcpy(out->primary_addr, r->primary_addr, sizeof(out->primary_addr));
    out->primary_offset = r->primary_offset;
    out->lag_bytes = r->primary_offset > r->applied ? r->primary_offset - r->applied : 0;
    /* Lag as the primary last announced it (PING): bytes it had that this
     * node had not applied, and for how long this node has been behind. */
    out->lag_ms = out->primary || r->applied >= r->primary_offset ? 0
                  : r->caught_up_ms > 0 ? bc_time_mono_ms() - r->caught_up_ms : -1;
    pthread_mutex_unlock(&r->mu);
    out->full_resyncs = atomic_load(&r->full_resyncs);
    out->partial_resyncs = atomic_load(&r->partial_resyncs);
    out->sync_waits = atomic_load(&r->sync_waits);
    out->sync_timeouts = atomic_load(&r->sync_timeouts);
    out->sync_wait_us = atomic_load(&r->sync_wait_us);
    out->isr_shrinks = atomic_load(&r->isr_shrinks);
    out->isr_expands = atomic_load(&r->isr_expands);
    out->isr_write_errors = atomic_load(&r->isr_write_errors);
    out->commit_failures = atomic_load(&r->commit_failures);
    out->applied_records = atomic_load(&r->applied_records);
    out->apply_errors = atomic_load(&r->apply_errors);
    out->snapshots_received = atomic_load(&r->snapshots_received);
    out->auth_failures = atomic_load(&r->auth_failures);
}

size_t
bc_repl_format_stats(void *ctx, char *buf, size_t len)
{
    bc_repl_info_t ri;
    bc_repl_get_info(ctx, &ri);
    size_t used = 0;
    int role = ri.primary ? BC_REPL_PRIMARY : BC_REPL_BACKUP;
#define REPL_STAT(...)                                                                  \
    do {                                                                                \
        int n_ = snprintf(buf + used, len - used, __VA_ARGS__);                         \
        if (n_ < 0 || (size_t)n_ >= len - used) return used;                            \
        used += (size_t)n_;                                                             \
    } while (0)
    REPL_STAT("STAT repl_role %s\r\nSTAT repl_mode %s\r\n", ri.primary ? "primary" : "backup",
              bc_repl_mode_name(ri.mode));
#define REPL_STAT_NUMBER(field, shown, json, stat, metric, type, help)                   \
    if ((stat) != NULL && ((shown) == BC_REPL_BOTH || (shown) == role)) {               \
        REPL_STAT("STAT %s %" PRIu64 "\r\n", (const char *)(stat), ri.field);          \
    }
    BC_REPL_NUMBERS(REPL_STAT_NUMBER)
#undef REPL_STAT_NUMBER
    REPL_STAT("STAT repl_synced %d\r\n", ri.synced ? 1 : 0);
    if (ri.primary) {
        REPL_STAT("STAT repl_backups %u\r\nSTAT repl_in_sync %u\r\nSTAT repl_min_in_sync %u\r\n"
                  "STAT repl_writes_refused %d\r\n", ri.backups, ri.isr.n, ri.min_in_sync,
                  ri.isr_short ? 1 : 0);
    } else {
        REPL_STAT("STAT repl_link_up %d\r\nSTAT repl_lag_ms %" PRId64 "\r\n", ri.link_up ? 1 : 0,
                  ri.lag_ms);
    }
#undef REPL_STAT
    return used;
}
