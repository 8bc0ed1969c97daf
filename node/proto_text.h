/*
 * proto_text.h -- executes memcached text-protocol commands against the
 * cache, and queues the replies for a connection.
 *
 * WHAT IT DOES
 *   bc_proto_process() consumes the bytes a client sent -- command lines
 *   and data blocks, any number pipelined in one buffer, split anywhere --
 *   runs each command on the cache (common/bc_mcproto.c parses the lines)
 *   and appends the replies to the connection's output queue.  It knows
 *   nothing about sockets: server.c reads into a buffer, calls it, and
 *   writes the queue out with writev; the fuzz target drives it directly.
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
 *   when the block is long, server.c asks bc_proto_direct_dest() and read()s
 *   the socket straight into the item, so a large value is copied once, by
 *   the kernel.
 *
 * HOW: THE OUTPUT QUEUE (bc_outq_t)
 *   A list of byte ranges to send, in order.  Short text (status lines,
 *   VALUE headers, STAT lines) is formatted into one scratch buffer per
 *   connection; consecutive text is merged into one range.  A value larger
 *   than BC_PROTO_COPY_MAX is NOT copied: its range points into the item,
 *   which stays referenced (see cache.h) until its last byte has been
 *   written, then is released.
 *   Ranges in the scratch buffer are kept as offsets, so the buffer may be
 *   reallocated while replies are being built.
 *
 *       ents:  [text 0..40) [item A value+CRLF] [text 40..75) [item B ...]
 *       buf:   "VALUE a 0 5\r\n...END\r\nVALUE b ..."
 *
 *   Backpressure: bc_proto_process() stops taking commands once the queue
 *   holds `out_limit` bytes (item bytes included, since they are pinned),
 *   and server.c stops reading from that client until it drains.  A client
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
 *                             as they came, resume hook -> server.c runs
 *                             the commands that were held back
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
#include "cache.h"
#include "cluster.h"
#include "forward.h"
#include "server.h"
#include "stats.h"

/* Values up to this size are copied into the reply (see cmd_retrieve). */
#define BC_PROTO_COPY_MAX 512u

/* ---- output queue ---- */

typedef struct bc_outq_ent {
    bc_item_t *item;           /* referenced item, or NULL: scratch text */
    const char *ptr;           /* item: next byte to send */
    uint32_t off;              /* scratch: offset of the next byte in buf */
    uint32_t len;              /* bytes left in this range */
} bc_outq_ent_t;

typedef struct bc_outq {
    bc_outq_ent_t *ents;       /* ents[head .. head+count) are pending */
    uint32_t head;
    uint32_t count;
    uint32_t ents_cap;
    char *buf;                 /* scratch text */
    size_t used;
    size_t cap;
    size_t pending;            /* bytes not yet sent, text and items */
} bc_outq_t;

/* An empty queue; allocates nothing until used. */
void bc_outq_init(bc_outq_t *q);
/* Releases every referenced item and frees the memory. */
void bc_outq_free(bc_outq_t *q, bc_cache_t *cache);
static inline size_t bc_outq_pending(const bc_outq_t *q) { return q->pending; }
/* Appends a copy of data.  Returns false when out of memory. */
bool bc_outq_add(bc_outq_t *q, const void *data, size_t len);
/*
 * Appends n bytes starting at ptr inside item it; takes over the caller's
 * reference to it (released once sent, or by bc_outq_free).  Returns false
 * when out of memory, in which case the reference has been released.
 */
bool bc_outq_add_item(bc_outq_t *q, bc_cache_t *cache, bc_item_t *it, const char *ptr,
                      uint32_t n);
/* Fills up to max iovecs with the next bytes to send; returns how many. */
int bc_outq_iov(const bc_outq_t *q, struct iovec *iov, int max);
/* Marks n bytes as sent (n <= pending), releasing finished items; shrinks
 * the buffers once the queue is empty. */
void bc_outq_consume(bc_outq_t *q, bc_cache_t *cache, size_t n);

/* ---- shared environment ---- */

/* What "stats" / "stats settings" report and "stats reset" resets; filled
 * by server.c (or a test). */
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

    /* Replication (node/repl.h): a line "bucketcache_replicate ..." hands
     * the connection over (BC_EHANDOFF) when true; otherwise it is an
     * unknown command. */
    bool handoff_replicate;
    /* Replication figures for "stats" and "stats replication": writes
     * "STAT name value\r\n" lines into buf (at most len bytes) and returns
     * their length; NULL (standalone) adds nothing. */
    size_t (*repl_stats)(void *ctx, char *buf, size_t len);
    void *repl_ctx;

    void *hook_arg;
    /* Fills the server-wide figures; NULL reports zeros. */
    void (*server_stats)(void *arg, bc_server_stats_t *out);
    /* "stats reset"; NULL does nothing. */
    void (*stats_reset)(void *arg);
} bc_proto_env_t;

/* ---- one connection ---- */

#define BC_PROTO_HANDOFF_ARGS_MAX BC_WIRE_HANDSHAKE_MAX  /* any valid handshake fits */

typedef enum bc_proto_state {
    BC_PROTO_LINE,             /* waiting for a command line */
    BC_PROTO_DATA,             /* receiving a data block into `item` */
    BC_PROTO_SWALLOW,          /* discarding a refused data block */
    BC_PROTO_FWD_DATA,         /* receiving a data block to forward (into fop) */
} bc_proto_state_t;

/* A command being forwarded (proto_text.c). */
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
 * written by the calling thread only (stats.h).  Allocates nothing.
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
 * module (repl.h).
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

#endif
