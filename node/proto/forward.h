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
 *                      bc_fwd_submit(g2, "get k\r\n")
 *                        primaries view: g2 -> 10.0.0.2:11211
 *                        pool[10.0.0.2:11211]: a peer conn
 *                        (new: connect(), non-blocking;
 *                         first bytes "bucketcache_peer n-7\r\n")
 *                        FIFO += req, writev --------------->  OK\r\n (handshake)
 *     A paused: no more                                        VALUE k 0 1\r\n
 *     commands run, no     peer readable: parse one reply <--- x\r\nEND\r\n
 *     reads                  unit by unit (bc_mc_reply_parse)
 *                          FIFO head complete -> done list
 *                          deliver: done(A, reply bytes)
 *     reply queued <------ proto_text appends them, A resumes
 *
 *   Requests to one owner are pipelined on a pooled connection and answered
 *   in order, so each peer connection keeps a FIFO of requests in flight;
 *   a worker keeps at most conns_per_peer connections to one address
 *   (a new one is opened only when every existing one is busy) and at most
 *   max_conns in all (an idle one of another address is closed to make
 *   room; if none is idle the request fails at once).  An idle connection
 *   is closed after idle_ms.
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
 *     BC_ECLOSED (the owner is presumed hung; the client connections all
 *     carry on);
 *   - connect refused, reset, EOF: BC_EIO / BC_ECLOSED;
 *   - a reply that is not a well-formed memcached reply of the expected
 *     shape: BC_EPROTO, connection dropped;
 *   - a reply larger than max_reply: BC_ETOOLARGE, connection dropped.
 *
 * MEMORY
 *   A request's bytes are owned here until written (then freed); a reply is
 *   buffered whole (bounded by max_reply) and handed over as one malloc'd
 *   block.  With C client connections on the worker there are at most C
 *   commands waiting (each client pauses on its forwarded command), each
 *   with one request per owner group.
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
} bc_fwd_config_t;

/* What the reply to a request looks like, so its end can be found. */
typedef enum bc_fwd_reply_kind {
    BC_FWD_REPLY_LINE,             /* one status line (storage, delete, incr, touch) */
    BC_FWD_REPLY_VALUES,           /* VALUE blocks and END, or one error line (get & co) */
} bc_fwd_reply_kind_t;

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

/* Frees connections closed during the last batch; call from before_poll. */
void bc_fwd_before_poll(bc_fwd_t *fwd);

/*
 * True when group gid has a primary this node could forward to (known,
 * resolved, and not this very node).  Cheap; for deciding between a
 * forward and a refusal before building a request.
 */
bool bc_fwd_can_reach(bc_fwd_t *fwd, uint32_t gid);

/*
 * Sends req[0..len) -- complete memcached commands, data blocks included,
 * without noreply -- to group gid's primary.  req is malloc'd and owned by
 * the forwarder from the call on, whatever the result.  On BC_OK *out (may
 * be NULL) receives a handle valid until done is called or the request is
 * cancelled, and done(arg, tag, ...) is called exactly once, later.
 * Errors (done is never called): BC_ENOTFOUND (no reachable primary for
 * gid: answer the refusal), BC_EBUSY (connection limit reached and no idle
 * connection to close), BC_EIO (socket or connect failed at once),
 * BC_ENOMEM.
 */
bc_status_t bc_fwd_submit(bc_fwd_t *fwd, uint32_t gid, bc_fwd_reply_kind_t kind, char *req,
                          size_t len, bc_fwd_done_fn done, void *arg, uint32_t tag,
                          bc_fwd_req_t **out);

/*
 * The requester is going away: done will not be called for req.  The
 * request stays on its connection (its reply still has to be read past)
 * and is freed when answered, failed, or the forwarder is destroyed.
 */
void bc_fwd_cancel(bc_fwd_t *fwd, bc_fwd_req_t *req);

/* The error line (CRLF included) a client sees for a failed forward. */
const char *bc_fwd_error_line(bc_status_t st);

#endif
