/*
 * forward.h -- relaying requests for buckets this node does not serve to
 * the owning group's primary (twemproxy style, one hop, non-blocking).
 *
 * WHAT IT DOES
 *   A plain memcached client knows nothing of buckets: it sends every key to
 *   whichever node it was configured with.  When that node's group does not
 *   own the key's bucket (BC_ROUTE_MOVED), or the node is a backup of the
 *   owning group (BC_ROUTE_NOT_PRIMARY), the executor (proto_fwd.c) hands
 *   the request bytes to this module, which sends them to the owner group's
 *   current primary and gives back the reply bytes, which the executor
 *   relays to the client unchanged.  Every memcached client thus works
 *   against any node.
 *
 * HOW: ONE WORKER'S VIEW
 *
 *     client conn A        worker loop (one bc_fwd_t)         owner primary
 *     -------------        --------------------------         -------------
 *     "get k\r\n"  --> proto_text: route(k) = MOVED to g2
 *                      a hole in A's output queue (net/outq.h)
 *                      bc_fwd_submit(g2, "get k\r\n", affinity A)
 *                        primaries view: g2 -> 10.0.0.2:11211
 *                        pool[10.0.0.2:11211, slot A % n]: a peer conn
 *                        (new: connect(), non-blocking;
 *                         first bytes "bucketcache_peer n-7\r\n")
 *                        FIFO += req, write queue += bytes
 *     A goes on: its next
 *     commands run, their   before_poll: one sendmsg per peer --> OK\r\n (handshake)
 *     replies queue behind    with every request of the batch     VALUE k 0 1\r\n
 *     the hole             peer readable: parse the replies  <--- x\r\nEND\r\n
 *                            (the reply kind says where each ends)
 *                          FIFO head complete -> done list
 *                          deliver: done(arg, reply bytes) for each;
 *                            then the posted hooks, once per connection
 *     hole filled <-------   proto fills A's hole, posts A's resume:
 *     replies sent in order  the server sends up to the next hole
 *
 *   Requests to one owner are pipelined on pooled connections and answered
 *   in order, so each peer connection keeps a FIFO of requests in flight.
 *   Requests are not written at once: bc_fwd_before_poll writes each peer
 *   connection's queue with one sendmsg at the end of the loop iteration,
 *   so the requests of every client served in one iteration travel
 *   together (twemproxy's batching), and the owner answers them with one
 *   write too.
 *
 *   Each requester gives an affinity (the text protocol: its connection);
 *   a worker keeps up to conns_per_peer connections to one address and
 *   sends a request on the one numbered affinity % conns_per_peer.  So the
 *   requests of one client connection to one owner all travel one TCP
 *   connection and are executed by the owner in the order the client sent
 *   them -- a "set k noreply" then "get k" reads its own write -- while
 *   different clients spread over the pool.  At most max_conns connections
 *   in all: an idle one of another address is closed to make room; if none
 *   is idle, the request goes on a connection already open to that address
 *   (its order with the client's earlier requests is then not guaranteed),
 *   and if there is none, it fails at once.  An idle connection is closed
 *   after idle_ms.
 *
 * REPLY KINDS: HOW A NEW ONE PLUGS IN
 *   The forwarder relays bytes; it only needs to know where each reply
 *   ends, which depends on the request: that is bc_fwd_reply_kind_t.  A
 *   kind is a row of REPLY_KINDS in forward.c: a function that, given the
 *   bytes received so far for the head request, says "complete after N
 *   bytes", "need more" (remembering how far it already checked, so a
 *   large reply is not scanned twice), or "this is not a reply of that
 *   kind" (the stream is dropped).  memcached's meta commands are such a
 *   kind (META): their replies -- "HD/NF/NS/EX/EN" lines, a "VA <size>
 *   <flags>*" line with its data block, error lines, or nothing at all in
 *   quiet mode -- end at the "MN" of an "mn" sent after the command.  To
 *   forward a new kind of command:
 *     1. add BC_FWD_REPLY_<KIND> below (before BC_FWD_REPLY__COUNT);
 *     2. add its end finder to REPLY_KINDS in forward.c (a static assert
 *        checks that every kind has one);
 *     3. in the executor, route the key (bc__proto_route) and, when it
 *        says BC_PROTO_FORWARD, call bc__proto_fwd_command (proto_int.h)
 *        with the route, that kind and the request bytes: the reply is
 *        queued at the command's place in the connection's reply stream,
 *        noreply and failures handled there.  A relay function, if given,
 *        rewrites the reply on the way (e.g. drops what a quiet mode must
 *        not show: the request itself must go without its quiet flag, or
 *        the end of its reply could not be found).
 *
 * ONE HOP, NEVER A LOOP
 *   Every connection this module opens starts with the handshake line
 *   (common/bc_wire.h, BC_WIRE_PEER_CMD)
 *
 *       bucketcache_peer <node-name>\r\n        answered   OK\r\n
 *
 *   which marks it, on the receiving node, as a peer connection: requests
 *   arriving there are executed or refused (SERVER_ERROR MOVED ...), never
 *   forwarded again, so two nodes with different tables cannot bounce a
 *   request between them, and a library with a stale table still sees the
 *   refusal it refreshes on.  A node that answers the handshake with
 *   anything but "OK" (an old node says "ERROR") is treated as a failed
 *   peer.  The handshake is pipelined with the first request: no extra
 *   round trip.
 *
 * FAILURES (each request gets exactly one completion)
 *   - no reply within timeout_ms: BC_ETIMEOUT for the oldest request; the
 *     connection is closed and the others in flight on it fail with
 *     BC_ECLOSED (the owner is presumed hung); requests on the worker's
 *     other connections, and the client connections, carry on;
 *   - connect refused, reset, EOF: BC_EIO (never sent) / BC_ECLOSED (sent);
 *   - a reply that is not a well-formed memcached reply of the expected
 *     kind: BC_EPROTO, connection dropped;
 *   - a reply larger than max_reply: BC_ETOOLARGE, connection dropped.
 *
 * MEMORY
 *   A request's bytes are owned here until written (then freed); a reply is
 *   buffered whole (bounded by max_reply) and handed over as one malloc'd
 *   block, which the executor queues as it is (no copy).  How many
 *   requests a client connection may have in flight is the executor's
 *   limit (proto_text.h, BC_PROTO_FWD_MAX).
 *
 * THREADS
 *   A bc_fwd_t belongs to one worker thread and its event loop; every call
 *   is made from that thread.  It owns the loop's timeout (bc_el_set_timeout)
 *   for its deadlines, and the owner of the loop must call
 *   bc_fwd_before_poll() from its before_poll hook.
 */
#ifndef BC_FORWARD_H
#define BC_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/tls.h"
#include "bc_peerauth.h"
#include "bc_status.h"
#include "cluster/cluster.h"
#include "net/el.h"
#include "net/stats.h"

#define BC_FWD_DEFAULT_TIMEOUT_MS 2000u

typedef struct bc_fwd_config {
    uint32_t timeout_ms;           /* reply deadline of one request; > 0 */
    size_t max_reply;              /* largest reply buffered, headers included */
    uint32_t conns_per_peer;       /* pooled connections to one address; >= 1 */
    uint32_t max_conns;            /* pooled connections in all; >= 1 */
    uint32_t idle_ms;              /* an idle pooled connection closes after this */
    /* The cluster secret (common/bc_peerauth.h): each connection's owner
     * must prove it and is answered with our proof before any request
     * goes (see ONE HOP); NULL: the handshake without one.  Borrowed. */
    bc_peerauth_t *peer_auth;
    /* -Z in a cluster (net/tls.h, PEERS): owners are reached over TLS with
     * this node's certificate (see TLS in forward.c); NULL: plain TCP.
     * Borrowed. */
    bc_tls_t *tls;
} bc_fwd_config_t;

/* What the reply to a request looks like, so its end can be found (see
 * "REPLY KINDS" above for adding one). */
typedef enum bc_fwd_reply_kind {
    BC_FWD_REPLY_LINE,             /* one status line (storage, delete, incr, touch,
                                    * flush_all) */
    BC_FWD_REPLY_VALUES,           /* VALUE blocks and END, or one error line (get & co) */
    BC_FWD_REPLY_META,             /* meta replies (lines, or a VA line and its data
                                    * block) up to and including "MN": a meta
                                    * command is forwarded followed by "mn" */
    BC_FWD_REPLY__COUNT            /* not a kind: how many there are */
} bc_fwd_reply_kind_t;

/*
 * A hook to run once after the current batch of completions (bc_fwd_post):
 * a requester with several requests completing together (a pipelining
 * client) then acts once, e.g. sends its replies with one system call.
 * Embedded in the requester's object; zero it before first use.
 */
typedef struct bc_fwd_post {
    struct bc_fwd_post *prev, *next;
    void (*fn)(void *arg);
    void *arg;
    bool queued;
    bool timed;                    /* queued by bc_fwd_post_at, not yet due */
    uint64_t at_ms;                /* bc_fwd_post_at: when it is due (monotonic ms) */
    uint64_t seq;                  /* bc_fwd_post_at: order among posts due together */
} bc_fwd_post_t;

typedef struct bc_fwd bc_fwd_t;
typedef struct bc_fwd_req bc_fwd_req_t;

/*
 * A request's completion.  st is BC_OK with the reply's exact bytes, or an
 * error (BC_ETIMEOUT, BC_EIO, BC_ECLOSED, BC_EPROTO, BC_ETOOLARGE) with
 * reply NULL.  reply is malloc'd and owned by the callee from the call on.
 * Called from the worker loop, never from inside bc_fwd_submit; the
 * callee may submit and cancel requests.
 */
typedef void (*bc_fwd_done_fn)(void *arg, uint32_t tag, bc_status_t st, char *reply,
                               size_t len);

/*
 * Creates a worker's forwarder on el.  cfg is copied; el, cluster (whose
 * primaries table gives the addresses) and stats (the worker's counters,
 * written by this thread only) are borrowed and must outlive it.  *out is
 * owned by the caller (bc_fwd_destroy).  Errors: BC_EINVAL, BC_ENOMEM.
 */
bc_status_t bc_fwd_create(const bc_fwd_config_t *cfg, bc_el_t *el, bc_node_cluster_t *cluster,
                          bc_thread_stats_t *stats, bc_fwd_t **out);

/*
 * Closes every peer connection and frees every request without calling
 * its completion (the client connections are gone by then), and cancels
 * the loop timeout.  NULL is accepted.
 */
void bc_fwd_destroy(bc_fwd_t *fwd);

/* Sends the requests submitted during the loop iteration (one write per
 * peer connection) and frees connections closed during it; call from
 * before_poll.  NULL is accepted. */
void bc_fwd_before_poll(bc_fwd_t *fwd);

/*
 * True when group gid has a primary this node could forward to (known,
 * resolved, and not this very node).  Cheap; for deciding between a
 * forward and a refusal before building a request.
 */
bool bc_fwd_can_reach(bc_fwd_t *fwd, uint32_t gid);

/* The largest reply one request may have (the config's max_reply): also
 * the bound on what the executor gathers for one part over several. */
size_t bc_fwd_max_reply(const bc_fwd_t *fwd);

/*
 * Sends req[0..len) -- complete memcached commands, data blocks included,
 * without noreply -- to group gid's primary, on the pooled connection
 * chosen by affinity (see HOW), at the end of the loop iteration.  req is
 * malloc'd and owned by the forwarder from the call on, whatever the
 * result.  On BC_OK *out (may be NULL) receives a handle valid until done
 * is called or the request is cancelled, and done(arg, tag, ...) is called
 * exactly once, later.  Errors (done is never called): BC_ENOTFOUND (no
 * reachable primary for gid: answer the refusal), BC_EBUSY (connection
 * limit reached and no idle connection to close), BC_EIO (socket or
 * connect failed at once), BC_ENOMEM.
 */
bc_status_t bc_fwd_submit(bc_fwd_t *fwd, uint32_t gid, bc_fwd_reply_kind_t kind, char *req,
                          size_t len, uint32_t affinity, bc_fwd_done_fn done, void *arg,
                          uint32_t tag, bc_fwd_req_t **out);

/*
 * Queues post to run post->fn(post->arg) once, after the completions
 * being delivered now (from a completion), or after the next batch; a
 * post already queued stays queued once.  post is borrowed: cancel it
 * before freeing it.
 */
void bc_fwd_post(bc_fwd_t *fwd, bc_fwd_post_t *post);
/* Unqueues post if it is queued (by either function).  fwd NULL is
 * accepted. */
void bc_fwd_post_cancel(bc_fwd_t *fwd, bc_fwd_post_t *post);
/*
 * Queues post to run once, from the worker loop's timer, at monotonic
 * time at_ms (bc_time_mono_ms) or soon after: the forwarder owns the
 * loop's one timeout, so a requester that must try again later (a write
 * waiting out a bucket's migration pause, proto_text.h) waits through
 * it.  Due posts run in the order of their times, then of their
 * bc_fwd_post_at calls (retries keep the order of the requests).  When
 * this node puts a new table in force, every queued post is due at once
 * (the table that ends a pause makes the next try the one that goes on).
 * A post already queued is moved to the new time.  post is borrowed:
 * cancel it before freeing it.
 */
void bc_fwd_post_at(bc_fwd_t *fwd, bc_fwd_post_t *post, uint64_t at_ms);

/*
 * Keeps req's bytes once they are written (they are freed by default), so
 * that its completion can take them back with bc_fwd_take_request and send
 * them again -- to the same owner after a pause, or to a new one.  Call
 * right after a successful bc_fwd_submit.  Costs the request's memory
 * until its completion.
 */
void bc_fwd_keep(bc_fwd_req_t *req);
/*
 * From req's completion only: the bytes it sent, malloc'd, owned by the
 * caller from now on (*len their length); NULL when not kept (bc_fwd_keep
 * was not called, or the reply came before every byte was written).
 */
char *bc_fwd_take_request(bc_fwd_req_t *req, size_t *len);

/*
 * The groups that have a primary record now (cluster.h), in gid order:
 * up to max of them into gids, self[i] telling whether group gids[i]'s
 * record names this very node.  Returns how many groups there are (may
 * exceed max).  For commands that go to every group (flush_all).
 */
uint32_t bc_fwd_groups(bc_fwd_t *fwd, uint32_t *gids, bool *self, uint32_t max);

/*
 * The requester is going away: done will not be called for req.  The
 * request stays on its connection (its reply still has to be read past)
 * and is freed when answered, failed, or the forwarder is destroyed.
 */
void bc_fwd_cancel(bc_fwd_t *fwd, bc_fwd_req_t *req);

/* The error line (CRLF included) a client sees for a failed forward. */
const char *bc_fwd_error_line(bc_status_t st);

#endif
