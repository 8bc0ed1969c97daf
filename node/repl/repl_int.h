/*
 * repl_int.h -- what the files of the replication module share and nobody
 * else sees: the replication object, a backup's connection on the
 * primary, and the functions one file calls in another.
 *
 *   repl.c     lifecycle, the role thread (promote, demote, follow), the
 *              figures (/v1/repl, `stats`)
 *   primary.c  the primary side: recording changes into the backlog,
 *              one sender and one reader per backup, the handshake a
 *              backup's connection is handed over with
 *   isr.c      the in-sync set: who a reply waits for, recording it in
 *              ZooKeeper (its own thread), the commit wait
 *   backup.c   the backup side: the link to the primary, applying the
 *              snapshot and the stream, acknowledgements
 *   backlog.c  the byte ring of the stream's newest records (backlog.h)
 */
#ifndef BC_NODE_REPL_INT_H
#define BC_NODE_REPL_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_frame.h"
#include "bc_wire.h"
#include "cluster/cluster.h"
#include "engine/cache.h"
#include "repl/backlog.h"
#include "net/peer_io.h"
#include "repl/repl.h"

#define REPL_PING_MS               200
#define REPL_SEND_TIMEOUT_MS       5000     /* primary: a backup not reading */

typedef struct repl_peer {
    bc_repl_t *r;
    int fd;                        /* io.fd: shut down to end both threads */
    bc_peer_io_t io;               /* the sender's and the reader's link (plain or TLS) */
    char name[BC_WIRE_NAME_MAX + 1];   /* the handshake's: a backup's registration name */
    bool node_named;               /* name is a node name: it may join the in-sync record */
    char addr[64];
    char req_replid[BC_FRAME_REPLID_MAX + 1];
    uint64_t req_offset;
    _Atomic uint64_t acked;
    _Atomic uint64_t heard_upto;   /* the highest offset the backup itself acknowledged */
    _Atomic bool closing;
    bool online;                   /* mu */
    bool in_sync;                  /* mu: in the wait set (isr.c) */
    bool lagging;                  /* mu: missed a deadline as a recorded member */
    uint64_t entered;              /* mu: the offset at which it joined the wait set */
    bool heard;                    /* mu: it acknowledged `entered` or more since: it holds
                                    * everything acknowledged (it may be recorded) */
    pthread_t reader;
    bool reader_started;
    struct repl_peer *next;        /* mu */
} repl_peer_t;

/* The in-sync set's state on this node (isr.c). */
typedef enum repl_isr_state {
    REPL_ISR_OFF = 0,              /* not primary */
    REPL_ISR_LOADING,              /* primary: reading the record of its term */
    REPL_ISR_READY,                /* the record is known: replies may be acknowledged */
    REPL_ISR_LOST,                 /* the record belongs to another term now */
} repl_isr_state_t;

struct bc_repl {
    bc_cache_t *cache;
    bc_node_cluster_t *cluster;
    bc_repl_mode_t mode;
    uint32_t sync_timeout_ms;
    uint64_t max_lag;              /* async: bytes a backup may trail (0 = no bound) */
    uint32_t max_backups;
    bc_peerauth_t *peer_auth;      /* borrowed; NULL: no cluster secret */
    bc_tls_t *tls;                 /* borrowed; NULL: backups connect in plain TCP */

    /* LOCKING RULE: see repl.h.  Everything below up to the counters is
     * guarded by mu unless it is atomic; do_ functions want it held. */
    pthread_mutex_t mu;
    pthread_cond_t data_cv;        /* new records (senders wait) */
    uint32_t senders_waiting;      /* senders asleep on data_cv */
    pthread_cond_t ack_cv;         /* new ACKs, peers gone (workers wait) */
    pthread_cond_t role_cv;        /* role thread naps, peers gone */
    bc_backlog_t backlog;          /* the stream's newest records; its end is our offset */
    char replid[BC_FRAME_REPLID_MAX + 1];
    /* The id this node followed before its promotion, and the offset up
     * to which its stream equals ours (see CONTINUING AFTER A FAILOVER). */
    char replid2[BC_FRAME_REPLID_MAX + 1];
    uint64_t off2;
    _Atomic bool recording;
    /* The lowest offset every backup a reply waits for has acknowledged
     * (UINT64_MAX: none to wait for; 0: replies cannot be acknowledged
     * now); written under mu, read without it by workers (isr.c). */
    _Atomic uint64_t floor;
    /* Bumped at every promotion and demotion: a write recorded under
     * another role can never be acknowledged (isr.c). */
    _Atomic uint64_t role_gen;

    /* THE IN-SYNC SET (isr.c; mu).  isr is what ZooKeeper holds (R), at
     * isr_version; isr_prop the write in flight (P), whose outcome may be
     * unknown until isr_prop_pending clears; isr_drop the members that
     * missed a deadline, to be recorded out. */
    repl_isr_state_t isr_state;
    bc_cluster_isr_t isr;
    int32_t isr_version;
    bool isr_prop_pending;
    bc_cluster_isr_t isr_prop;
    bc_cluster_isr_t isr_drop;      /* names only (primary/epoch unused) */
    _Atomic uint32_t isr_members_pub;  /* |R| + |P|, for the recording skip */
    bool isr_short;                /* the gate as last set (refusing writes) */
    pthread_cond_t isr_cv;         /* wakes the in-sync thread */
    pthread_t isr_thread;
    bool isr_started;
    _Atomic uint64_t isr_shrinks, isr_expands, isr_write_errors, commit_failures;
    repl_peer_t *peers;
    uint32_t npeers;
    /* Recording costs every write an encode and a copy; with no backup
     * and none expected (REPL_KEEP_MS after the last one left, or after a
     * promotion) the observer skips it and notes that it did: the next
     * backup then cannot resume from the backlog (see bc__repl_observe). */
    _Atomic uint32_t npeers_pub;   /* npeers, for the lock-free check */
    _Atomic int64_t keep_until;    /* monotonic ms: record even without backups */
    _Atomic bool skipped;          /* changes went unrecorded */
    /* repl_flush_mark (primary.c): the mark last recorded, and the time of the last
     * delayed flush recorded that has not yet been followed by its mark */
    _Atomic uint64_t flush_mark_sent;
    _Atomic uint32_t flush_when;
    int64_t keep_ms;               /* REPL_KEEP_MS; BC_TEST_REPL_KEEP_MS for tests */
    /* set under mu by bc_repl_stop; repl_follow reads it without mu */
    _Atomic bool stopping;
    pthread_t thread;
    bool started;

    /* backup side (mu) */
    int follow_fd;                 /* the link to the primary, -1 = none */
    bool following;                /* repl_main is in (or entering) bc__repl_follow */
    uint64_t applied;
    bool synced;
    bool link_up;
    char primary_addr[BC_ADDR_MAX];
    uint64_t primary_offset;
    int64_t caught_up_ms;

    _Atomic uint64_t full_resyncs, partial_resyncs, sync_waits, sync_timeouts, sync_wait_us;
    _Atomic uint64_t applied_records, apply_errors, snapshots_received, auth_failures;
};

/* What applies now: the group's settings (groups/<gid>/config) where set,
 * this node's flags otherwise (repl.c). */
typedef struct repl_settings {
    bc_repl_mode_t mode;
    uint32_t sync_timeout_ms;
    uint64_t max_lag;
} repl_settings_t;

void bc__repl_settings(const bc_repl_t *r, repl_settings_t *out);

/* repl.c: sends all of p[0..n) on the link; false on an error. */
bool bc__repl_send_all(bc_peer_io_t *io, const char *p, size_t n);

/* primary.c: the cache observer (engine/cache.h) that records every change
 * into the backlog while this node is primary. */
void bc__repl_observe(void *ctx, const bc_cache_event_t *ev);
/* primary.c: disconnects every backup (they come back and resync).
 * Caller holds mu. */
void bc__repl_do_peers_close(bc_repl_t *r);

/* isr.c: recomputes floor after an ACK, a peer change or a record
 * change; wakes the in-sync thread.  Caller holds mu. */
void bc__repl_do_isr_changed(bc_repl_t *r);
/* isr.c: an ACK of `offset` from p (mu held): joins or rejoins the wait
 * set when it caught up, clears its lag. */
void bc__repl_do_isr_ack(bc_repl_t *r, repl_peer_t *p, uint64_t offset);
/* isr.c: role changes (mu held): a new term starts loading its record;
 * a lost one forgets it. */
void bc__repl_do_isr_promoted(bc_repl_t *r);
void bc__repl_do_isr_demoted(bc_repl_t *r);
/* isr.c: the in-sync thread's start and stop (repl.c lifecycle). */
bc_status_t bc__repl_isr_start(bc_repl_t *r);
void bc__repl_isr_stop(bc_repl_t *r);
/* isr.c: the cache observer appended a record ending at `end`: what this
 * thread's next commit waits for. */
void bc__repl_note_write(bc_repl_t *r, uint64_t end);
/* isr.c: the min_in_sync in force. */
uint32_t bc__repl_min_in_sync(const bc_repl_t *r, const repl_settings_t *set);

/* backup.c: the address of this group's primary, when it is another node
 * (view is the caller's copy of the primaries table, brought up to date). */
bool bc__repl_find_primary(bc_repl_t *r, bc_node_primaries_t *view, bc_node_primary_t *out);
/* backup.c: one link to the primary prim: handshake, (snapshot), live
 * stream, ACKs.  Returns when the link ends, the role or the primary
 * changes, or the module stops. */
void bc__repl_follow(bc_repl_t *r, const bc_node_primary_t *prim, bc_node_primaries_t *view);

#endif
