/*
 * repl.h -- primary/backup replication inside a group.
 *
 * WHAT IT DOES
 *   The group's primary streams every change of its cache (engine/cache.h's
 *   observer: the state each write leaves behind) to each backup over a
 *   peer connection, in the frames of common/bc_frame.h, with a byte
 *   offset that only grows.  A backup applies the stream to its own cache
 *   and acknowledges the offset it applied.  When the console promotes a
 *   backup (the primary died), it continues from the offset it had.
 *
 *     backup                                   primary
 *     ------                                   -------
 *     connect to the primary's data port
 *     "bucketcache_replicate <gid> <replid|-> <offset> <name>\r\n"
 *                                   --------->  a worker hands the socket
 *                                               to this module (net/server.h)
 *                                               offset still in the backlog
 *                                               and same replid?
 *                                    <--------  RHELLO full=0: the stream
 *                                               from <offset> (partial)
 *                                    <--------  otherwise RHELLO full=1
 *     drop everything, apply the     <--------  ITEM* END: a snapshot of
 *     snapshot                                  every bucket, taken while
 *                                               writes go on, then the
 *                                               stream from where the
 *                                               snapshot began
 *     apply ITEM/DEL/TOUCH/FLUSH/DROP <-------  live stream; PING when idle
 *     ACK <applied offset>          --------->  sync mode waits for these
 *
 * MODES
 *   async (default): a client's write is answered once the primary applied
 *   it; a primary that dies loses what its backups had not received yet
 *   (bounded by the link's latency and the backlog in flight).
 *   sync: a reply that acknowledges a write leaves only once every backup
 *   in the sync set acknowledged the offset of that write.  Workers wait
 *   once per batch of replies (net/server.h, bc_server_set_commit), so a
 *   pipelined batch costs one round trip to the backups, not one per
 *   command.  A backup that does not acknowledge within sync_timeout_ms is
 *   dropped from the sync set (logged, counted) so a sick backup cannot
 *   stall the group; it rejoins once it has caught up.  A group with no
 *   backup online answers at once, as Redis does with min-replicas 0.
 *   In async mode the same wait bounds the loss: a reply waits (at most
 *   sync_timeout_ms) while a backup of the sync set trails the write by
 *   more than max_lag_bytes, so a backup that cannot keep up slows the
 *   writers instead of falling ever further behind.
 *
 * THE SNAPSHOT
 *   Records describe states, not operations ("k is now v", "k is gone"), so
 *   applying a record twice is harmless.  That makes a fuzzy snapshot
 *   exact: the primary notes its offset S, copies each bucket under its
 *   shard lock while writes continue, and then streams the backlog from S.
 *   A key written during the copy may be in the snapshot already and is
 *   then written again by the replay, in the order the primary applied it,
 *   so the backup ends in the primary's state.  The backlog must hold
 *   everything from S until the snapshot is sent; if it wraps first, the
 *   backup is disconnected and starts over (backlog_bytes is the knob).
 *
 * ROLE CHANGES (one thread, repl_main, decides)
 *   - Promoted (the cluster agent says primary): stop following, start a
 *     new replication id, continue the offset from what was applied, start
 *     recording, then open the cluster's write gate (cluster/cluster.h) -- no
 *     write is accepted before it can be recorded.
 *   - Demoted (primary no more, including a lost ZooKeeper session): the
 *     cluster closed the write gate at once; stop recording, disconnect
 *     the backups, follow the new primary.  Its id differs from ours, so
 *     the first sync is a full one: writes this node took that the new
 *     primary never saw are discarded, not resurrected.
 *
 * A backup reports offset 0 while a full resync is under way (its data is
 * partial), so the console never promotes it over one that is complete.
 *
 * LOCKING RULE
 *   mu guards the backlog, the peer list and each peer's sync-set flag;
 *   ack_cv (with mu) wakes workers waiting for acknowledgements, data_cv
 *   (with mu) wakes senders waiting for records.  The cache observer runs
 *   under a shard lock and takes mu: shard lock, then mu -- never the
 *   other way round (the snapshot takes shard locks with mu released).
 */
#ifndef BC_NODE_REPL_H
#define BC_NODE_REPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_cluster.h"
#include "bc_status.h"
#include "engine/cache.h"
#include "cluster/cluster.h"

typedef struct bc_repl bc_repl_t;

typedef struct bc_repl_config {
    bc_cache_t *cache;             /* borrowed; must outlive the object */
    bc_node_cluster_t *cluster;    /* borrowed; must outlive the object */
    bc_repl_mode_t mode;
    uint32_t sync_timeout_ms;      /* 0 = 500 */
    size_t backlog_bytes;          /* 0 = 64 MiB */
    uint64_t max_lag_bytes;        /* async: writers wait while a backup trails by
                                      more; 0 = no bound */
    uint32_t max_backups;          /* 0 = 8 */
    const char *node_label;        /* how this node names itself to its primary; copied */
} bc_repl_config_t;

#define BC_REPL_MAX_BACKUPS_REPORTED 8

typedef struct bc_repl_backup_info {
    char name[64];
    char addr[64];
    bool online;                   /* snapshot done, streaming */
    bool in_sync;                  /* in the sync set */
    uint64_t acked;
    uint64_t lag_bytes;            /* primary offset - acked */
} bc_repl_backup_info_t;

/* Which role shows a number in /v1/repl and `stats` (/metrics shows all). */
#define BC_REPL_BOTH    0
#define BC_REPL_PRIMARY 1
#define BC_REPL_BACKUP  2

/*
 * Replication's plain numbers, each defined once:
 *   X(field, role, /v1/repl name, `stats` name or NULL, metric or NULL, type, help)
 * bc_repl_info_t's fields, /v1/repl, `stats` and /metrics are generated
 * from it; the flags, addresses, lag_ms (-1: unknown) and the backup list
 * are written by hand where they show.
 */
#define BC_REPL_NUMBERS(X)                                                                     \
    X(offset, BC_REPL_BOTH, "offset", "repl_offset", "repl_offset", "gauge",                   \
      "Replication offset: the primary's own, or what this backup applied.")                   \
    X(backlog_start, BC_REPL_BOTH, "backlog_start", NULL, NULL, NULL,                          \
      "Oldest offset the backlog still holds.")                                                \
    X(backlog_bytes, BC_REPL_BOTH, "backlog_bytes", NULL, NULL, NULL,                          \
      "Bytes the backlog holds.")                                                              \
    X(full_resyncs, BC_REPL_PRIMARY, "full_resyncs", "repl_full_resyncs",                      \
      "repl_full_resyncs_total", "counter", "Snapshots sent to backups.")                      \
    X(partial_resyncs, BC_REPL_PRIMARY, "partial_resyncs", "repl_partial_resyncs",             \
      "repl_partial_resyncs_total", "counter", "Backups resumed from the backlog.")            \
    X(sync_waits, BC_REPL_PRIMARY, "sync_waits", "repl_sync_waits", "repl_sync_waits_total",   \
      "counter", "Reply batches that waited for backup acknowledgements (sync mode).")         \
    X(sync_timeouts, BC_REPL_PRIMARY, "sync_timeouts", "repl_sync_timeouts",                   \
      "repl_sync_timeouts_total", "counter",                                                   \
      "Backups dropped from the sync set for not acknowledging in time.")                      \
    X(sync_wait_us, BC_REPL_PRIMARY, "sync_wait_us", NULL,                                     \
      "repl_sync_wait_seconds_total", "counter",                                          \
      "Time reply batches waited for backups (sync mode).")                                    \
    X(primary_offset, BC_REPL_BACKUP, "primary_offset", "repl_primary_offset", NULL, NULL,     \
      "The primary's offset, from its last PING.")                                             \
    X(lag_bytes, BC_REPL_BACKUP, "lag_bytes", "repl_lag_bytes", "repl_lag_bytes", "gauge",     \
      "Backup: stream bytes the primary has that this node has not applied.")                  \
    X(applied_records, BC_REPL_BACKUP, "applied_records", "repl_applied_records",              \
      "repl_applied_records_total", "counter", "Backup: replication records applied.")         \
    X(apply_errors, BC_REPL_BACKUP, "apply_errors", "repl_apply_errors",                       \
      "repl_apply_errors_total", "counter",                                                    \
      "Backup: records that could not be applied (no memory); the key was removed.")           \
    X(snapshots_received, BC_REPL_BACKUP, "snapshots_received", NULL, NULL, NULL,              \
      "Backup: full snapshots received.")

typedef struct bc_repl_info {
    bool primary;                  /* recording (this node is primary) */
    bc_repl_mode_t mode;
    char replid[41];
    bool synced;                   /* backup: its data is complete */
    /* primary side */
    uint32_t backups;
    bc_repl_backup_info_t backup[BC_REPL_MAX_BACKUPS_REPORTED];
    /* backup side */
    bool link_up;
    char primary_addr[BC_ADDR_MAX];
    int64_t lag_ms;                /* time since this backup was last caught up; -1 unknown */
#define BC__REPL_NUMBER_FIELD(field, role, json, stat, metric, type, help) uint64_t field;
    BC_REPL_NUMBERS(BC__REPL_NUMBER_FIELD)
#undef BC__REPL_NUMBER_FIELD
} bc_repl_info_t;

/*
 * Creates the module and installs its cache observer and the cluster's
 * write gate.  config->cache and ->cluster are required.  *out is owned by
 * the caller (bc_repl_destroy).  Errors: BC_EINVAL, BC_ENOMEM.
 */
bc_status_t bc_repl_create(const bc_repl_config_t *config, bc_repl_t **out);
/* Starts the role thread.  Errors: BC_ENOMEM. */
bc_status_t bc_repl_start(bc_repl_t *repl);
/* Stops following, disconnects backups, joins every thread.  Idempotent. */
void bc_repl_stop(bc_repl_t *repl);
/* Stops and frees (the cache observer is removed).  NULL is accepted. */
void bc_repl_destroy(bc_repl_t *repl);

/* net/server.h handoff function: a backup's handshake; ctx is the
 * bc_repl_t.  Takes fd (closes it on refusal).  Does not block. */
void bc_repl_handoff(void *ctx, int fd, const char *args);
/* net/server.h commit function: in sync mode, waits until the backups have
 * what this thread wrote (bounded by sync_timeout_ms).  ctx is the
 * bc_repl_t. */
void bc_repl_commit_wait(void *ctx);

/*
 * bc_repl_commit_wait for a thread that must not block (the admin
 * thread): bc_repl_commit_ticket takes this thread's last write as a
 * ticket (need 0: nothing to wait for; it is taken, as by a wait), and
 * bc_repl_commit_poll answers at once whether the caller may reply: true
 * once the backups of the sync set have the write, or when waited_ms has
 * reached the ticket's timeout -- then, as after a wait that timed out,
 * the backups still short of it leave the sync set.  r may be NULL
 * (nothing to wait for).
 */
typedef struct bc_repl_commit {
    uint64_t need;                 /* the replication offset to reach; 0: none */
    uint32_t timeout_ms;           /* sync_timeout_ms when the ticket was taken */
} bc_repl_commit_t;

bc_repl_commit_t bc_repl_commit_ticket(bc_repl_t *r);
bool bc_repl_commit_poll(bc_repl_t *r, const bc_repl_commit_t *t, int64_t waited_ms);

void bc_repl_get_info(bc_repl_t *repl, bc_repl_info_t *out);
/* The text protocol's repl_stats hook (proto/proto_text.h): "STAT repl_*
 * value" lines (role, mode, offset, synced; a backup's link, lag in bytes
 * and ms; a primary's backups and resync/sync counters).  ctx is the
 * bc_repl_t. */
size_t bc_repl_format_stats(void *ctx, char *buf, size_t len);

/* Internal (fuzzing, tests): applies a live replication stream in buf to
 * cache as a backup does -- decode, check, apply.  Returns the records
 * applied, or -1 at the first malformed or out-of-place frame. */
int64_t bc__repl_apply_stream(bc_cache_t *cache, const char *buf, size_t len, size_t max_frame);

#endif
