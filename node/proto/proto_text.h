/*
 * proto_text.h -- executes memcached text-protocol commands against the
 * cache, and queues the replies for a connection.
 *
 * WHAT IT DOES
 *   bc_proto_process() consumes the bytes a client sent -- command lines
 *   and data blocks, any number pipelined in one buffer, split anywhere --
 *   runs each command on the cache (common/bc_mcproto.c parses the lines)
 *   and appends the replies to the connection's output queue (net/outq.h).
 *   It knows nothing about sockets: the data port's server (net/server.c)
 *   reads into a buffer, calls it through bc_proto_text_handler
 *   (net/handler.h), and writes the queue out with writev; the unit tests
 *   and the fuzz target drive it directly.
 *
 * HOW: THE STATE OF ONE CONNECTION
 *
 *          line complete                         need == 0
 *   LINE ------------------> storage command --> DATA ------> store, reply
 *    ^  \                    (item allocated)     |                |
 *    |   \ too large / no memory                  | bytes go       |
 *    |    '-> SWALLOW (skip vlen+2 bytes) --------+-straight into--'
 *    '-------------------------------------------- the item's value
 *
 *   A data block is copied from the input into the item allocated for it;
 *   when the block is long, the server asks bc_proto_direct_dest() and
 *   read()s the socket straight into the item, so a large value is copied
 *   once, by the kernel.
 *
 * HOW: THE REPLIES
 *   Replies go into the connection's output queue (net/outq.h).  A value
 *   larger than BC_PROTO_COPY_MAX is NOT copied: the queue references the
 *   item itself until its last byte is sent.
 *
 *   Backpressure: bc_proto_process() stops taking commands once the queue
 *   holds `out_limit` bytes (item bytes included, since they are pinned),
 *   and the server stops reading from that client until it drains.  A client
 *   that pipelines requests and never reads its replies therefore holds at
 *   most ~out_limit bytes plus one command's reply.  The largest reply is a
 *   multi-get, bounded by its line (BC_MC_LINE_HARD_MAX): once past the
 *   limit it stops copying small values and only references items, so it
 *   adds at most ~2.5 MB of headers and range entries.
 *
 * HOW: FORWARDING (cluster mode, forward.h)
 *   A key of a bucket another group owns (or that this node, a backup,
 *   may not serve) is not refused but forwarded to the owner's primary
 *   when the connection has a forwarder (bc_proto_conn_set_forward) and is
 *   not itself a peer connection:
 *
 *     command line --route--> FORWARD: build the request bytes
 *                               (storage: LINE -> FWD_DATA collects the
 *                                data block into them, then sends)
 *                             bc_fwd_submit per owner group
 *                             waiting: no further command runs
 *     ... loop ...            completion(s): the reply bytes are queued
 *                             as they came, resume hook -> the server
 *                             runs the commands that were held back
 *
 *   Pausing the connection while a command is forwarded keeps pipelined
 *   replies in request order.  A multi-get whose keys span several owners
 *   is split: one "get" per owner group plus the keys served here; the
 *   reply is the forwarded VALUE blocks (owner by owner), then the local
 *   ones, then one END -- or, if any part failed, only that part's error
 *   line, so a client sees all its values or one error, never a silent
 *   partial answer.  A noreply command is forwarded without noreply (its
 *   reply tells when it is done and keeps the peer stream in step) and the
 *   reply is dropped.
 *
 *   A connection that sends "bucketcache_peer <name>" (answered "OK") is
 *   a peer: its keys are served or refused, never forwarded again (one
 *   hop, no loops between nodes with different tables).
 *
 * THREADS
 *   A bc_proto_conn_t belongs to one worker thread.  bc_proto_env_t is
 *   shared by all workers: read-only except `verbosity` (atomic).
 */
#ifndef BC_PROTO_TEXT_H
#define BC_PROTO_TEXT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include "bc_mcproto.h"
#include "bc_status.h"
#include "bc_wire.h"
#include "cluster/cluster.h"
#include "engine/cache.h"
#include "net/handler.h"
#include "net/outq.h"
#include "net/stats.h"
#include "proto/forward.h"

/* Values up to this size are copied into the reply (see cmd_retrieve). */
#define BC_PROTO_COPY_MAX 512u

/* ---- shared environment ---- */

/* What "stats" / "stats settings" report and "stats reset" resets, and
 * the cluster settings; filled by main.c from the server (or by a test). */
typedef struct bc_proto_env {
    bc_cache_t *cache;
    const char *listen_addr;
    uint16_t port;
    uint32_t max_conns;
    uint32_t nthreads;
    int backlog;
    size_t max_conn_buffer;
    time_t started;            /* unix time the server was created */
    atomic_int verbosity;      /* "verbosity" command / -v */
    /* Cluster routing (cluster.h): a key whose bucket this node may not
     * serve is refused with bc_node_cluster_format_refusal's line; NULL =
     * standalone, every bucket served.  Borrowed. */
    bc_node_cluster_t *cluster;
    /* With a cluster: forward keys of buckets another group owns (or that
     * this backup may not serve) to the owner's primary instead of
     * refusing them (forward.h), through one forwarder per worker made
     * with fwd_cfg.  false (the default): refuse them. */
    bool forward;
    bc_fwd_config_t fwd_cfg;

    /* Replication (repl/repl.h): a line "bucketcache_replicate ..." hands
     * the connection over (BC_EHANDOFF) when true -- the server then gives
     * the socket to its handoff function (net/server.h) --; otherwise it
     * is an unknown command. */
    bool handoff_replicate;
    /* Replication figures for "stats" and "stats replication": writes
     * "STAT name value\r\n" lines into buf (at most len bytes) and returns
     * their length; NULL (standalone) adds nothing. */
    size_t (*repl_stats)(void *ctx, char *buf, size_t len);
    void *repl_ctx;

    void *hook_arg;
    /* Fills the server-wide figures; NULL: this connection's worker alone. */
    void (*server_stats)(void *arg, bc_server_stats_t *out);
    /* "stats reset"; NULL does nothing. */
    void (*stats_reset)(void *arg);
} bc_proto_env_t;

/* ---- one connection ---- */

#define BC_PROTO_HANDOFF_ARGS_MAX BC_WIRE_HANDSHAKE_MAX  /* any valid handshake fits */
_Static_assert(BC_PROTO_HANDOFF_ARGS_MAX <= BC_HANDLER_HANDOFF_ARGS_MAX + 1,
               "a handoff line's arguments must fit the server's copy (net/handler.h)");

typedef enum bc_proto_state {
    BC_PROTO_LINE,             /* waiting for a command line */
    BC_PROTO_DATA,             /* receiving a data block into `item` */
    BC_PROTO_SWALLOW,          /* discarding a refused data block */
    BC_PROTO_FWD_DATA,         /* receiving a data block to forward (into fop) */
} bc_proto_state_t;

/* A command being forwarded (proto_fwd.c). */
typedef struct bc_proto_fwd_op bc_proto_fwd_op_t;

typedef struct bc_proto_conn {
    bc_proto_env_t *env;       /* borrowed */
    bc_thread_stats_t *stats;  /* borrowed: the worker's counters */
    int id;                    /* shown in verbose logs (the socket fd) */
    bc_outq_t out;

    bc_proto_state_t state;
    bc_item_t *item;           /* DATA: the item being filled (our reference) */
    char *dst;                 /* DATA: where the next byte goes */
    uint32_t need;             /* DATA: bytes still expected, CRLF included */
    bc_mc_cmd_t cmd;           /* DATA: the storage command */
    uint64_t cas;              /* DATA: cas unique of a cas command */
    uint32_t hash;             /* DATA: bc_hash_key of the item's key */
    bool noreply;              /* DATA: reply suppressed */
    uint64_t swallow;          /* SWALLOW: bytes still to discard */
    bool oom;                  /* a reply could not be queued: close */
    size_t out_limit;          /* of the current bc_proto_process call */

    /* forwarding (see above) */
    bool peer;                 /* sent the peer handshake: never forward */
    bool waiting;              /* a forwarded command awaits its replies */
    bc_fwd_t *fwd;             /* borrowed: the worker's forwarder, or NULL */
    void (*resume)(void *arg); /* called once the forwarded reply is queued */
    void *resume_arg;
    bc_proto_fwd_op_t *fop;    /* FWD_DATA or waiting: the command (ours) */

    /* BC_EHANDOFF: the arguments of the handoff line, in the buf of the
     * bc_proto_process call that returned it (not NUL-terminated; fewer
     * than BC_PROTO_HANDOFF_ARGS_MAX bytes), valid while that buffer is. */
    const char *handoff_args;
    size_t handoff_len;
} bc_proto_conn_t;

/*
 * Prepares pc (owned by the caller, typically inside its connection
 * struct).  env and stats are borrowed and must outlive pc; stats must be
 * written by the calling thread only (net/stats.h).  Allocates nothing.
 */
void bc_proto_conn_init(bc_proto_conn_t *pc, bc_proto_env_t *env, bc_thread_stats_t *stats,
                        int id);
/* Releases the item being received and every item and buffer of the output
 * queue, and cancels a forwarded command still waiting (its completion
 * will not come); pc may then be initialised again or discarded. */
void bc_proto_conn_release(bc_proto_conn_t *pc);

/*
 * Lets pc forward keys it may not serve (cluster mode) through fwd, which
 * is borrowed and must outlive pc (NULL: refuse them instead, the
 * default).  resume(arg) is called from the worker loop -- never from
 * inside bc_proto_process -- once a forwarded command's reply has been
 * queued: the caller then sends the output and calls bc_proto_process
 * again for the input it held back.  resume may close the connection
 * (bc_proto_conn_release).
 */
void bc_proto_conn_set_forward(bc_proto_conn_t *pc, bc_fwd_t *fwd, void (*resume)(void *arg),
                               void *arg);

/* True while a forwarded command awaits its replies: bc_proto_process
 * consumes nothing until then, so the caller should stop reading. */
static inline bool bc_proto_waiting(const bc_proto_conn_t *pc) { return pc->waiting; }

/*
 * Consumes input from buf[0..len).  *consumed receives how many bytes were
 * used; the rest (an incomplete line, or input left because the output
 * queue reached out_limit) must be presented again, at the front, on the
 * next call.  buf is not kept.
 *
 * Returns BC_OK; BC_ECLOSED when the connection must be closed once the
 * queued output is sent (quit, a line too long, a stray HTTP request);
 * BC_ENOMEM when a reply could not be queued (close without sending);
 * BC_EHANDOFF when the line just consumed was a replication handshake
 * (env->handoff_replicate): pc->handoff_args/handoff_len point at its
 * arguments in buf and the caller gives the socket to the replication
 * module (repl/repl.h).
 */
bc_status_t bc_proto_process(bc_proto_conn_t *pc, const char *buf, size_t len,
                             size_t out_limit, size_t *consumed);

/*
 * While a data block is being received (to store or to forward), gives
 * the place its next bytes go
 * and how many are still expected (CRLF included), so the caller can read()
 * into it directly; returns false in any other state.  After writing k > 0
 * bytes there, call bc_proto_direct_done(pc, k).
 */
bool bc_proto_direct_dest(const bc_proto_conn_t *pc, char **dst, size_t *n);
/* Returns as bc_proto_process. */
bc_status_t bc_proto_direct_done(bc_proto_conn_t *pc, size_t n);

/*
 * The text protocol as the data port's handler (net/handler.h): its
 * context is a bc_proto_env_t (borrowed, filled before bc_server_start),
 * its connection state a bc_proto_conn_t, its per-worker state the
 * worker's forwarder (env->forward with a cluster; none otherwise).
 */
extern const bc_handler_t bc_proto_text_handler;

#endif
