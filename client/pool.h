/*
 * pool.h -- nodes (one per primary address) and their bounded connection
 * pools, and blocking I/O on a connection with a deadline.
 *
 * A node is reference counted: the routing snapshots that name it hold one
 * reference each, and a call holds one while it talks to the node, so a
 * node that leaves the routing table closes its connections once the last
 * call using it is done.
 *
 * Its pool is an array of max_conns slots, each empty, opening, idle or
 * busy (an atomic state).  A call takes an idle slot with one
 * compare-and-swap, starting from a slot of its own thread's choosing, so
 * that while threads are no more than max_conns each keeps using "its"
 * connection (as a program with one connection per thread would; it also
 * keeps load spread over the node's worker threads, which own connections
 * round-robin).  No idle slot: an empty one gets a new connection; none
 * either: the call waits for a slot to come back until its deadline.  A
 * connection is only given back when it is exactly between two replies;
 * after any error, timeout or unexpected byte it is closed, so a late
 * reply can never be taken for the answer to a later request.
 *
 * Sockets are blocking with short send/receive timeouts (BC__IO_SLICE_MS),
 * so the common case costs one send and one recv per request, like a plain
 * blocking client, and a deadline is still checked every slice; when less
 * than a slice is left, poll() waits exactly the remainder.
 *
 * TLS (a node made with a bc__tls_t): the socket stays non-blocking and
 * every SSL_read/SSL_write that wants the socket ready waits in poll()
 * until the deadline -- OpenSSL may need to read to write and the other
 * way round, which a blocking socket with timeouts would hide.  A
 * connection is used by one thread at a time (the slot states), so its
 * SSL never is by two.
 */
#ifndef BC_CLIENT_POOL_H
#define BC_CLIENT_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <openssl/ssl.h>

#include "bc_mcproto.h"
#include "bc_status.h"
#include "tls.h"

#define BC__IO_SLICE_MS 5
#define BC__NODE_ADDR_MAX 280
/* Idle this long, a pooled connection is checked for a close by the peer
 * before it is used (one non-blocking peek). */
#define BC__IDLE_CHECK_NS (100ull * 1000 * 1000)

/* Counters shared by all nodes of one client (relaxed atomics). */
typedef struct bc__io_stats {
    atomic_uint_fast64_t connects;
    atomic_uint_fast64_t connect_errors;
    atomic_uint_fast64_t conn_drops;
} bc__io_stats_t;

typedef struct bc__pool_node bc__pool_node_t;

typedef struct bc__pool_conn {
    int fd;
    SSL *ssl;                    /* NULL: plain TCP */
    int slot;                    /* index in node->slots */
    bc__pool_node_t *node;
    uint64_t last_used_ns;
    char *rbuf;                  /* received bytes [rstart, rend) */
    size_t rcap, rstart, rend;
} bc__pool_conn_t;

enum { BC__SLOT_EMPTY = 0, BC__SLOT_OPENING, BC__SLOT_IDLE, BC__SLOT_BUSY };

struct bc__pool_node {
    atomic_int refs;
    char addr[BC__NODE_ADDR_MAX];   /* "host:port" or "[v6]:port" */
    bc__io_stats_t *stats;          /* borrowed from the client */
    size_t max_value;               /* largest VALUE accepted */
    const bc__tls_t *tls;           /* borrowed from the client; NULL: plain TCP */
    atomic_uint_fast64_t tls_logged_ns;  /* last handshake failure logged */
    int max_conns;
    atomic_int *state;              /* max_conns slot states (BC__SLOT_*) */
    bc__pool_conn_t **slots;        /* a slot's connection, set while idle or busy;
                                       written only by the thread that owns the
                                       slot (opening or busy) */
    /* mu and cv: only for callers waiting for a slot; waiters is atomic so
     * that giving a slot back checks it without the lock. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int waiters;
};

/*
 * A new node for addr with one reference.  stats and tls (NULL: plain
 * TCP) are borrowed and must outlive the node.  Returns NULL on out of
 * memory or an address too long.
 */
bc__pool_node_t *bc__pool_node_new(const char *addr, int max_conns, size_t max_value,
                                   bc__io_stats_t *stats, const bc__tls_t *tls);
void bc__pool_node_ref(bc__pool_node_t *node);
/* Drops a reference; the last one closes idle connections and frees. */
void bc__pool_node_unref(bc__pool_node_t *node);

/* Splits "host:port" / "[v6]:port" into host and port strings.
 * Errors: BC_EINVAL. */
bc_status_t bc__pool_addr_split(const char *addr, char *host, size_t hostlen, char *port,
                                size_t portlen);

/*
 * Takes a connection to node: an idle one, a new one, or -- with wait --
 * one given back before deadline_ns (CLOCK_MONOTONIC).  *reused tells
 * whether it was pooled.  Errors: BC_ETIMEOUT (deadline passed, or every
 * slot busy and !wait: BC_EBUSY), BC_EIO (connect failed: refused,
 * unreachable, unresolvable; or the TLS handshake failed: logged with
 * OpenSSL's reason, at most once a second per node), BC_ENOMEM.
 */
bc_status_t bc__pool_conn_get(bc__pool_node_t *node, uint64_t deadline_ns, bool wait,
                              bc__pool_conn_t **out, bool *reused);
/* Gives a connection back: to the pool when healthy (and nothing unread is
 * buffered), closed otherwise. */
void bc__pool_conn_put(bc__pool_conn_t *conn, bool healthy);

/*
 * Sends all iov bytes.  *sent (may be NULL) receives how many bytes went
 * out, so a caller knows whether the request was started.  Errors:
 * BC_ETIMEOUT, BC_ECLOSED (peer gone), BC_EIO.
 */
bc_status_t bc__pool_conn_send(bc__pool_conn_t *conn, const struct iovec *iov, int iovcnt,
                               uint64_t deadline_ns, size_t *sent);

/*
 * Reads one reply unit (bc_mc_reply_parse) into *reply, receiving as
 * needed; pointers in *reply stay valid until the next read on conn.
 * Errors: BC_ETIMEOUT, BC_ECLOSED (EOF or reset), BC_EIO, BC_EPROTO
 * (malformed), BC_ETOOLARGE (a VALUE above max_value), BC_ENOMEM.
 */
bc_status_t bc__pool_conn_read_reply(bc__pool_conn_t *conn, uint64_t deadline_ns,
                                     bc_mc_reply_t *reply);

/* Non-blocking: parses a unit already buffered.  BC_EAGAIN when more bytes
 * are needed (then bc__pool_conn_recv_some). */
bc_status_t bc__pool_conn_parse_buffered(bc__pool_conn_t *conn, bc_mc_reply_t *reply);
/* One non-blocking receive.  BC_OK (bytes added), BC_EAGAIN (nothing now),
 * BC_ECLOSED, BC_EIO, BC_ENOMEM.  Over TLS it also takes every byte
 * OpenSSL holds decrypted, which poll() on the socket cannot see. */
bc_status_t bc__pool_conn_recv_some(bc__pool_conn_t *conn);
/* One non-blocking send of up to len bytes from buf: the count sent (0:
 * not now), or -1 when the connection failed.  Over TLS, a call after 0
 * must pass the same bytes again (buf may move). */
ssize_t bc__pool_conn_send_some(bc__pool_conn_t *conn, const char *buf, size_t len);

#endif
