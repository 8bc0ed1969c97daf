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
 *     "bucketcache_replicate <gid> <replid|-> <offset> <name> <nonce>\r\n"
 *                                   --------->  challenge: the primary proves
 *                                    <--------  the cluster secret
 *     check it; "bucketcache_auth <proof>"
 *                                   --------->  proof checked (proto_peer.c),
 *                                               a worker hands the socket
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
 * MODES (what each promises: docs/replication.md, "What each mode
 * guarantees")
 *   async (default): a client's write is answered once the primary applied
 *   it; a primary that dies loses what its backups had not received yet,
 *   bounded by max_lag_bytes: a reply waits while a backup of the in-sync
 *   set trails the write by more than that.
 *   sync: a reply that acknowledges a write leaves only once every backup
 *   of the in-sync set acknowledged the offset of that write.  Workers
 *   wait once per batch of replies (net/server.h, bc_server_set_commit),
 *   so a pipelined batch costs one round trip to the backups, not one per
 *   command.
 *
 * THE IN-SYNC SET (isr.c)
 *   The backups a reply waits for are recorded in ZooKeeper by the
 *   primary, groups/<gid>/isr (bc_cluster_isr_t), and a promotion -- by
 *   the console or by a backup itself -- only ever picks a member of it.
 *   So a member must hold every write the primary acknowledged:
 *
 *   - a reply waits for every recorded member (and for a record write in
 *     flight that may add one); a member that does not acknowledge within
 *     sync_timeout_ms is recorded OUT before any reply that it lacks
 *     leaves.  Recording it out is a ZooKeeper write (compare-and-set on
 *     the record's version and on this primary's term): a primary cut off
 *     from ZooKeeper cannot make it, and its waiting replies fail when its
 *     write lease lapses -- the client's connection is closed: "unknown",
 *     never a false "stored";
 *   - a backup that caught up is waited for first (the wait set), and
 *     recorded in only then, so it never enters the record lacking a
 *     write that was acknowledged;
 *   - min_in_sync (the group's setting; 1 in sync mode, 0 in async mode by
 *     default): the record never shrinks below it.  While fewer members
 *     keep up, writes are refused (SERVER_ERROR NOT_ENOUGH_IN_SYNC) and
 *     replies already waiting fail, instead of being acknowledged by the
 *     primary alone; the lagging members stay recorded, and so stay
 *     eligible: they hold every acknowledged write.  0 is "degrade to the
 *     primary alone": the record may become empty, writes go on, and if
 *     the primary then dies nobody is eligible -- the group waits for an
 *     operator's unclean failover;
 *   - async mode: the same, with the offset a reply waits for lowered by
 *     max_lag_bytes, so every member is within the lag bound of every
 *     acknowledged write, and so is whoever is promoted.
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
 *     recording; read the in-sync record of the new term (isr.c), then
 *     open the cluster's write gate (cluster/cluster.h) -- no write is
 *     accepted before it can be recorded and before the record's members,
 *     carried over by whoever promoted this node, are waited for.
 *   - Demoted (primary no more, including a lost ZooKeeper session): the
 *     cluster closed the write gate at once; stop recording, disconnect
 *     the backups, follow the new primary.  Its id differs from ours, so
 *     the first sync is a full one: writes this node took that the new
 *     primary never saw are discarded, not resurrected.  A reply still
 *     waiting fails (its connection is closed), and main.c closes every
 *     client connection (net/server.h bc_server_close_clients).
 *
 * NAMES
 *   A backup names itself in the handshake by its registration
 *   ("n-0000000042", cluster.h): the in-sync record holds those names,
 *   and a promotion matches them against the live registrations.  A
 *   backup that registers again (a new session) reconnects under the new
 *   name; the old one leaves the record as a member that stopped
 *   acknowledging does.
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

#include "net/tls.h"
#include "bc_cluster.h"
#include "bc_peerauth.h"
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
    /* The cluster secret (common/bc_peerauth.h): a backup proves it to its
     * primary, and the primary to the backup, before any data goes
     * (docs/replication.md); NULL: the handshake without it.  Borrowed. */
    bc_peerauth_t *peer_auth;
    /* -Z in a cluster (net/tls.h, PEERS): a backup reaches its primary's
     * data port over TLS with this node's certificate; NULL: plain TCP.
     * Borrowed. */
    bc_tls_t *tls;
} bc_repl_config_t;

#define BC_REPL_MAX_BACKUPS_REPORTED 8

typedef struct bc_repl_backup_info {
    char name[64];
    char addr[64];
    bool online;                   /* snapshot done, streaming */
    bool in_sync;                  /* waited for: in the wait set, or a recorded member keeping up */
    bool recorded;                 /* in the in-sync record (ZooKeeper) */
    bool lagging;                  /* a recorded member that missed a deadline */
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
      "Backups that missed a deadline: left the wait set, or to be recorded out.")                      \
    X(sync_wait_us, BC_REPL_PRIMARY, "sync_wait_us", NULL,                                     \
      "repl_sync_wait_seconds_total", "counter",                                          \
      "Time reply batches waited for backups (sync mode).")                                    \
    X(isr_shrinks, BC_REPL_PRIMARY, "isr_shrinks", "repl_isr_shrinks", "repl_isr_shrinks_total", \
      "counter", "In-sync record writes that took members out.")                               \
    X(isr_expands, BC_REPL_PRIMARY, "isr_expands", "repl_isr_expands", "repl_isr_expands_total", \
      "counter", "In-sync record writes that added a member.")                                 \
    X(isr_write_errors, BC_REPL_PRIMARY, "isr_write_errors", "repl_isr_write_errors",          \
      "repl_isr_write_errors_total", "counter",                                                \
      "In-sync record writes that did not complete (ZooKeeper unreachable, a race).")          \
    X(commit_failures, BC_REPL_PRIMARY, "commit_failures", "repl_commit_failures",             \
      "repl_commit_failures_total", "counter",                                                 \
      "Reply batches not acknowledged: the in-sync set could not confirm their writes.")       \
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
      "Backup: full snapshots received.")                                                      \
    X(auth_failures, BC_REPL_BACKUP, "auth_failures", "repl_auth_failures",                    \
      "repl_auth_failures_total", "counter",                                                   \
      "Backup: links to the primary dropped for the cluster secret (refused, or the primary "  \
      "did not prove it).")

typedef struct bc_repl_info {
    bool primary;                  /* recording (this node is primary) */
    bc_repl_mode_t mode;
    char replid[41];
    bool synced;                   /* backup: its data is complete */
    /* primary side */
    uint32_t backups;
    bc_repl_backup_info_t backup[BC_REPL_MAX_BACKUPS_REPORTED];
    uint32_t min_in_sync;          /* in force */
    const char *isr_state;         /* "off", "loading", "ready", "lost" */
    bool isr_short;                /* writes refused: fewer than min_in_sync keep up */
    bc_cluster_isr_t isr;           /* the record as this primary last wrote or read it */
    int32_t isr_version;
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
void bc_repl_handoff(void *ctx, int fd, SSL *ssl, const char *args);
/* net/server.h commit function: waits until the in-sync set has what this
 * thread wrote (sync mode; async: within the lag bound).  True: the
 * replies may go.  False: those writes could not be confirmed (too few
 * backups in sync, the record could not be written, the role or the
 * write lease was lost): their replies must not be sent -- the caller
 * closes the connection, and the client sees "unknown".  ctx is the
 * bc_repl_t (NULL: true). */
bool bc_repl_commit_wait(void *ctx);

/*
 * bc_repl_commit_wait for a thread that must not block (the admin
 * thread): bc_repl_commit_ticket takes this thread's last write as a
 * ticket (need 0: nothing to wait for; it is taken, as by a wait), and
 * bc_repl_commit_poll answers at once: BC_REPL_COMMIT_DONE once the
 * in-sync set has the write, BC_REPL_COMMIT_FAILED when it cannot be
 * confirmed (as bc_repl_commit_wait's false), BC_REPL_COMMIT_WAIT
 * otherwise.  waited_ms is the time since the ticket was taken: at the
 * ticket's timeout the members still short of it are recorded out, as
 * after a wait that timed out.  r may be NULL (nothing to wait for).
 */
typedef struct bc_repl_commit {
    uint64_t need;                 /* the replication offset to reach; 0: none */
    uint32_t timeout_ms;           /* sync_timeout_ms when the ticket was taken */
    uint64_t gen;                  /* the role it was written under */
} bc_repl_commit_t;

typedef enum bc_repl_commit_state {
    BC_REPL_COMMIT_WAIT = 0,
    BC_REPL_COMMIT_DONE,
    BC_REPL_COMMIT_FAILED,
} bc_repl_commit_state_t;

bc_repl_commit_t bc_repl_commit_ticket(bc_repl_t *r);
bc_repl_commit_state_t bc_repl_commit_poll(bc_repl_t *r, const bc_repl_commit_t *t,
                                           int64_t waited_ms);

/*
 * Internal (tests): the in-sync set's decision after each change, as a
 * pure function (isr.c runs it under its lock).  in->recorded is the
 * record (R); per member i of it, healthy[i] (an online backup keeping
 * up) and drop[i] (it missed a deadline); add (may be NULL) a backup that
 * caught up and is waited for but not recorded.  The plan: next, the
 * record to write (when `write`): R plus add, minus the dropped members
 * in order as long as at least min_in_sync remain (the others are
 * `kept`, still recorded); refuse_writes when fewer than min_in_sync
 * recorded members are healthy and not dropped.
 */
typedef struct bc_repl_isr_input {
    const bc_cluster_isr_t *recorded;
    uint32_t min_in_sync;
    bool healthy[BC_CLUSTER_ISR_MAX];
    bool drop[BC_CLUSTER_ISR_MAX];
    const char *add;
} bc_repl_isr_input_t;

typedef struct bc_repl_isr_plan {
    bool write;
    bc_cluster_isr_t next;
    bool added;
    uint32_t removed;
    uint32_t kept;
    uint32_t healthy;
    bool refuse_writes;
} bc_repl_isr_plan_t;

void bc__repl_isr_plan(const bc_repl_isr_input_t *in, bc_repl_isr_plan_t *out);

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
