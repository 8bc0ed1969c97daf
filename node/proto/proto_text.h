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
 * HOW: THE BINARY PROTOCOL
 *   A connection whose first byte is 0x80 (BC_PROTO_BIN_MAGIC) speaks
 *   memcached's binary protocol for good, as memcached's "-B auto": in
 *   state LINE bc_proto_process hands its packets to binary.c
 *   (bc__proto_bin_packet); a value goes through DATA / FWD_DATA / SWALLOW
 *   as a text data block does (without its CRLF), and the replies use the
 *   same output queue, holes and limits.
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
 *   not itself a peer connection.  The connection does not wait for the
 *   owner: its reply takes its place in the output queue as a hole
 *   (net/outq.h), the next commands run at once and their replies queue
 *   behind it, local or forwarded alike:
 *
 *     client sends:  get a(local)  get b(g2)  set c(local)  get d(g2)  ...
 *     output queue:  [VALUE a..END] [hole b]  [STORED]      [hole d]
 *                    ^ sent now      '- filled when g2 answers; the server
 *                                       then sends up to the next hole
 *
 *     command line --route--> FORWARD: build the request bytes
 *                               (storage: LINE -> FWD_DATA collects the
 *                                data block into them, then sends)
 *                             bc_fwd_submit per owner group (written with
 *                             the other requests of the loop iteration)
 *                             a hole in the output queue; go on
 *     ... loop ...            completion(s): the reply fills the hole,
 *                             resume hook -> the server sends what is
 *                             ready and runs what was held back
 *
 *   So replies stay in request order, a pipelining client keeps every
 *   owner busy, and the requests of all clients to one owner go out
 *   together.  Effects stay in order too: one client's requests to one
 *   owner travel one peer connection (forward.h, affinity), so a forwarded
 *   "set k noreply" is applied before the "get k" that follows it.
 *
 *   Bounded: a connection has at most BC_PROTO_FWD_MAX forwarded commands
 *   in flight; at the limit it takes no further command (bc_proto_waiting:
 *   the server stops reading) until one completes.  A client that
 *   pipelines and never reads therefore holds at most out_limit bytes of
 *   queued replies plus BC_PROTO_FWD_MAX commands in flight: each one's
 *   request (at most an item) until written, and its reply (at most the
 *   forwarder's max_reply) once read.
 *
 *   A multi-get whose keys span several owners is split: one "get" per
 *   owner group plus the keys served here; the reply is every VALUE
 *   block in the client's key order, as memcached's, then one END.  A
 *   key that cannot be answered -- its bucket has no owner (group down),
 *   its owner is unreachable, timed out or refused -- reads as a miss
 *   (counted in get_no_owner / get_forward_failed): a cache with a missing
 *   shard serves what it has (proto_fwd.c says why).  A one-key get of an
 *   unowned bucket is a miss too; any other one-key failure answers its
 *   error line.  A noreply command is forwarded without noreply (its
 *   reply tells when it is done and keeps the peer stream in step) and the
 *   reply is dropped.  flush_all flushes every group's primary.
 *
 *   A connection that sends "bucketcache_peer <name>" (answered "OK") is
 *   a peer: its keys are served or refused, never forwarded again (one
 *   hop, no loops between nodes with different tables), and its refusals
 *   are never turned into misses: the forwarding node decides that.
 *
 * HOW: WRITES DURING A MIGRATION PAUSE (cluster mode, with a forwarder)
 *   While a bucket's last changes cross to its new group (migrate.h), its
 *   owner refuses writes to it: SERVER_ERROR READONLY.  libbucketcache
 *   reads that as "wait and retry"; a plain memcached client reads it as
 *   a failure.  So on a client's (non-peer) connection such a write is not
 *   refused at once but waits, up to env->readonly_wait_ms (text, meta
 *   and binary-protocol writes, gat/gats and touch included):
 *
 *     on the owner      the command line is held (pc->ro_hold: the input
 *                       is not consumed and the server stops reading) and
 *                       run again from the worker's timer, 1, 2, 4, then
 *                       every 5 ms, and at once when a new table is in
 *                       force here, until the bucket is writable (the
 *                       move was called off), served elsewhere (it is
 *                       then forwarded to the new owner) or the wait is
 *                       over (the usual refusal);
 *     through another   the owner answers the forwarded write READONLY at
 *     node              once (a peer connection is shared by many clients
 *                       and is never held); the forwarding node keeps the
 *                       request's bytes and sends them again on the same
 *                       schedule -- to the owner of the bucket by its
 *                       table at that moment, or runs it here when this
 *                       node's group has just become the owner.  MOVED
 *                       and NOT_PRIMARY answers (the owner's table is
 *                       newer than ours) are retried the same way; so
 *                       is the part of a multi-key gat/gats an owner
 *                       refuses, its keys routed again at each try
 *                       (proto_fwd.c, "A MULTI-KEY GAT WAITS TOO").
 *
 *   Replies stay in order: the held command's reply is the next one (the
 *   commands behind it wait), a retried forward keeps its hole.  A
 *   storage command whose data block was still arriving when the pause
 *   began is held with its complete item (state DATA, need 0) and stored
 *   from the timer.  A binary packet is held whole (binary.c leaves it
 *   unconsumed) or with its complete value the same way; forwarded, it
 *   is its meta command, kept and sent again like a text one, and its
 *   binary reply composed from the final answer (a quiet one stays
 *   quiet).
 *
 * HOW: READ-THROUGH (origin/origin.h, proto_origin.c)
 *   With an origin (env->origin) and the worker's origin client
 *   (bc_proto_conn_set_origin), a get/gets whose keys served here miss
 *   has its reply take its place as a hole, like a forwarded command's,
 *   and is answered from the origin's fills when they complete; the
 *   connection goes on meanwhile.  (A multi-get that also has keys of
 *   other owners holds the connection's input instead, then runs again.)
 *
 * THREADS
 *   A bc_proto_conn_t belongs to one worker thread.  bc_proto_env_t is
 *   shared by all workers: read-only except its atomics (`verbosity`,
 *   `detail_on`, `sizes_cas_min`).
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
#include "bc_peerauth.h"
#include "bc_status.h"
#include "bc_wire.h"
#include "cluster/cluster.h"
#include "engine/cache.h"
#include "net/handler.h"
#include "net/outq.h"
#include "net/stats.h"
#include "net/tls.h"
#include "origin/origin.h"
#include "proto/forward.h"

/* Values up to this size are copied into the reply (see cmd_retrieve). */
#define BC_PROTO_COPY_MAX 512u

/* Forwarded commands one connection may have in flight (see FORWARDING). */
#define BC_PROTO_FWD_MAX 16u

/* ---- shared environment ---- */
/*
 * memcached's ASCII authentication file (-Y FILE, proto_auth.c): its
 * users, shared by every worker.  bc_proto_auth_open reads the file
 * (common/bc_secret.h, bc_secret_rules_mcauth); *out is owned by the
 * caller (bc_proto_auth_free).  Errors: those of bc_secret_load.
 * bc_proto_auth_reload re-reads it (SIGHUP; on failure the users in force
 * stay), thread-safe against checks.  bc_proto_auth_check compares
 * "user:password" in constant time.  bc_proto_auth_source is the path,
 * or "no" for NULL (stats settings auth_enabled_ascii).
 */
typedef struct bc_proto_auth bc_proto_auth_t;
bc_status_t bc_proto_auth_open(const char *path, bc_proto_auth_t **out, char *err, size_t errlen);
bc_status_t bc_proto_auth_reload(bc_proto_auth_t *a, char *err, size_t errlen);
void bc_proto_auth_free(bc_proto_auth_t *a);
const char *bc_proto_auth_source(const bc_proto_auth_t *a);
bool bc_proto_auth_check(bc_proto_auth_t *a, const char *user, size_t ulen, const char *pass,
                         size_t plen);


typedef struct bc_proto_detail bc_proto_detail_t;

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
    uint32_t idle_timeout;     /* seconds, 0 = off (-o idle_timeout) */
    time_t started;            /* unix time the server was created */
    atomic_int verbosity;      /* "verbosity" command / -v */
    bool shutdown_enabled;     /* the "shutdown" command stops the node (-A) */
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
    /* With a forwarder: how long a client's write to a bucket in its
     * migration pause waits for the pause to end (see "WRITES DURING A
     * MIGRATION PAUSE") before it is refused; 0 = refused at once. */
    uint32_t readonly_wait_ms;
    /* The longest time between two tries of such a waiting write (0: 5
     * ms).  A new table in force makes the next try at once whatever it
     * is; tests lengthen it to see that. */
    uint32_t pause_retry_ms;
    /* Read-through (origin/origin.h): misses of keys with an origin are
     * filled from it, through one origin client per worker.  NULL: none.
     * Borrowed. */
    bc_origin_t *origin;

    /* The cluster secret (common/bc_peerauth.h): peers' handshakes must
     * prove it (proto_peer.c); NULL: they are taken as they come
     * (--insecure-no-peer-auth, standalone).  Borrowed. */
    bc_peerauth_t *peer_auth;
    /* memcached's -Y: every connection authenticates first (proto_auth.c);
     * NULL: off, the default.  Borrowed. */
    bc_proto_auth_t *auth;
    /* memcached's -Z: the data port's certificates, for "refresh_certs"
     * and the ssl_* lines of "stats settings"; NULL: TLS is off.
     * Borrowed. */
    bc_tls_t *tls;

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
    /* "stats conns": the data port's sockets sorted by fd, malloc'd in
     * *out (net/server.h bc_server_conns); NULL: the command shows none. */
    size_t (*conns)(void *arg, bc_conn_info_t **out);

    /* "stats detail" (memcached's per-prefix counters, detail.c): NULL =
     * not kept (on/off answer OK, the dump is empty).  Owned by whoever
     * set it (bc_proto_detail_create / _destroy). */
    bc_proto_detail_t *detail;
    atomic_bool detail_on;     /* "stats detail on" */
    /* "stats sizes_enable": the items stored since count (CAS values from
     * this one up); 0 = off. */
    _Atomic uint64_t sizes_cas_min;
} bc_proto_env_t;

/*
 * memcached's per-prefix statistics ("stats detail on|off|dump"): with
 * detail on, every get/gets/gat/gats key, storage command and delete
 * served here counts for the key's prefix, the bytes before its first
 * ':' (keys without one are not counted), as memcached 1.6.18 counts them
 * (not meta commands, not touch or incr).  At most
 * BC_PROTO_DETAIL_MAX_PREFIXES prefixes are kept (memcached keeps any
 * number); keys of further prefixes are not counted.  Any thread.
 * create: NULL when memory is short.
 */
#define BC_PROTO_DETAIL_MAX_PREFIXES 16384u
bc_proto_detail_t *bc_proto_detail_create(void);
void bc_proto_detail_destroy(bc_proto_detail_t *detail);

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

/* An ms waiting for its data block: what its reply line carries (meta.c). */
typedef struct bc_proto_meta_set {
    bool active;               /* the DATA state belongs to an ms */
    bool quiet;                /* q: no HD */
    bool stale;                /* I with a CAS store */
    bool key_binary;           /* b: k answers base64 */
    char order[3];             /* the O, k and c flags in request order */
    uint8_t norder;
    uint8_t nopaque;
    char opaque[32];           /* the O token, letter included */
} bc_proto_meta_set_t;

/* A command being forwarded (proto_fwd.c). */
typedef struct bc_proto_fwd_op bc_proto_fwd_op_t;
/* A command waiting for origin fills (proto_origin.c). */
typedef struct bc_proto_origin_op bc_proto_origin_op_t;
/* A peer's handshake waiting for its proof (proto_peer.c). */
typedef struct bc_proto_peer_hs bc_proto_peer_hs_t;
/* An authenticating data block being received (proto_auth.c). */
typedef struct bc_proto_auth_conn bc_proto_auth_conn_t;
/* An "lru_crawler metadump" being streamed (proto_admin.c). */
typedef struct bc_proto_dump bc_proto_dump_t;


/* The first byte of a binary-protocol request (binary.c). */
#define BC_PROTO_BIN_MAGIC 0x80

/* A binary store waiting for its value (binary.c): what its reply needs. */
typedef struct bc_proto_bin_store {
    uint8_t opcode;            /* as it came (a quiet one stays quiet) */
    uint32_t opaque;           /* as it came, echoed */
    uint64_t cas;              /* the CAS to compare, 0 = none */
    bc_store_mode_t mode;
} bc_proto_bin_store_t;

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
    bc_store_mode_t store_mode; /* DATA of an ms: how to store */
    bc_proto_meta_set_t mset;  /* DATA of an ms (meta.c) */
    bool noreply;              /* DATA: reply suppressed */
    uint64_t swallow;          /* SWALLOW: bytes still to discard */
    bool oom;                  /* a reply could not be queued: close */
    bool proto_known;          /* the first byte has come: binary is decided */
    bool binary;               /* the binary protocol (binary.c), not text */
    bc_proto_bin_store_t bin;  /* DATA/FWD_DATA of a binary store */
    size_t out_limit;          /* of the current bc_proto_process call */

    /* forwarding (see above) */
    bool peer;                 /* sent the peer handshake: never forward */
    bc_proto_peer_hs_t *hs;    /* a handshake waiting for its proof (ours), or NULL */
    bool authenticated;        /* -Y: a user authenticated, or a peer proved the secret */
    bc_proto_auth_conn_t *auth; /* -Y: the authenticating data block (ours), or NULL */
    bool waiting;              /* BC_PROTO_FWD_MAX commands in flight: input held */
    bc_fwd_t *fwd;             /* borrowed: the worker's forwarder, or NULL */
    void (*resume)(void *arg); /* called once forwarded replies were queued */
    void *resume_arg;
    bc_fwd_post_t resume_post; /* resume, posted once per batch of completions */
    bc_proto_fwd_op_t *fop;    /* FWD_DATA: the command being collected (ours) */
    bc_proto_fwd_op_t *ops;    /* forwarded commands in flight (ours), a list */
    uint32_t nfwd;             /* how many */
    uint32_t nretry;           /* of them, waiting to be sent again (proto_fwd.c) */

    /* a write waiting out a migration pause (see "WRITES DURING A
     * MIGRATION PAUSE") */
    bool ro_hold;              /* its line is held: input waits for ro_post */
    uint64_t ro_since_ms;      /* when the held write was first refused (0: none) */
    uint32_t ro_tries;
    bc_fwd_post_t ro_post;     /* the timed retry (forward.h bc_fwd_post_at) */

    /* read-through (see above) */
    bc_origin_client_t *origin; /* borrowed: the worker's origin client, or NULL */
    bc_proto_origin_op_t *oops; /* gets waiting for fills (ours), a list */
    uint32_t noops;            /* how many */
    bc_proto_origin_op_t *rerun; /* the op whose command runs again, while it does */
    bc_item_t *meta_fill;      /* an mg or binary get running again after its
                                  fill: the filled value when the cache lost it
                                  (borrowed) */
    bool meta_rerun;           /* an mg or binary get running again after its fill */
    bool origin_hold;          /* input held: a get waits to run again, or the limit */
    bc_item_t **found;         /* during a get: each key's item, resolved first */
    uint32_t found_n, found_cap;

    /* "lru_crawler metadump" (proto_admin.c): the dump being streamed
     * (ours), or NULL; input waits until its END is queued. */
    bc_proto_dump_t *dump;

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
 * queue, and cancels the forwarded commands still in flight (their
 * completions will not come); pc may then be initialised again or
 * discarded. */
void bc_proto_conn_release(bc_proto_conn_t *pc);

/*
 * Lets pc forward keys it may not serve (cluster mode) through fwd, which
 * is borrowed and must outlive pc (NULL: refuse them instead, the
 * default).  resume(arg) is called from the worker loop -- never from
 * inside bc_proto_process -- once forwarded replies have filled their
 * holes in the output queue: the caller then sends the output and calls
 * bc_proto_process again for the input it held back.  resume may close
 * the connection (bc_proto_conn_release).
 */
void bc_proto_conn_set_forward(bc_proto_conn_t *pc, bc_fwd_t *fwd, void (*resume)(void *arg),
                               void *arg);

/*
 * Lets pc's gets read through the origin (env->origin) with client, the
 * worker's (borrowed, must outlive pc; NULL: no read-through, the
 * default).  Completions come through the client on the worker loop and
 * end with the resume hook, as for forwarding.
 */
void bc_proto_conn_set_origin(bc_proto_conn_t *pc, bc_origin_client_t *client);

/* True while the connection has BC_PROTO_FWD_MAX forwarded commands in
 * flight, holds its input for origin fills (proto_origin.c), or streams
 * a dump (bc_proto_streaming): bc_proto_process consumes nothing until
 * then, so the caller should stop reading. */
static inline bool
bc_proto_waiting(const bc_proto_conn_t *pc)
{
    return pc->waiting || pc->origin_hold || pc->ro_hold || pc->dump != NULL;
}

/*
 * STREAMING: "lru_crawler metadump" queues its first chunk (~256 KiB) at
 * once and the rest a chunk at a time, each time the caller -- having
 * sent what it could -- calls bc_proto_stream (the server does when the
 * queue holds less than BC_HANDLER_STREAM_LOW_WATER bytes, net/handler.h).
 * bc_proto_streaming is true while more is to come; meanwhile the
 * connection waits (bc_proto_waiting).  bc_proto_stream queues the next
 * chunk, or the rest and END; it returns BC_OK, or BC_ENOMEM (close
 * without sending).  Not streaming: it does nothing.
 */
static inline bool
bc_proto_streaming(const bc_proto_conn_t *pc)
{
    return pc->dump != NULL;
}
bc_status_t bc_proto_stream(bc_proto_conn_t *pc);

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
