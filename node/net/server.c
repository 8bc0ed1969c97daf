/*
 * server.c -- the data port: listener, accept thread, worker threads and
 * their connections (implements server.h).  This file moves bytes; what
 * they mean is the handler's business (handler.h: the memcached text
 * protocol, proto/proto_text.c).
 *
 * ONE FILE, about 1000 lines, on purpose: the accept thread, the workers
 * and their connections share one set of private structs and one life
 * cycle (a connection is opened, read, flushed, paused, handed over and
 * closed only by its worker); split, those internals would need a header
 * of their own and gain nothing a reader could use alone.
 *
 * THREADS
 *
 *   accept thread (own el loop)              worker i (own el loop)
 *   ---------------------------              ----------------------
 *   listen fd readable
 *     accept4() ...                          wakeup: take fds from queue[i],
 *     too many connections?                          register each (conn_open)
 *       yes: "ERROR Too many open            fd readable: read -> handler process
 *             connections", close                    -> sendmsg (writev) replies
 *       no:  queue[i] += fd, wake worker i   fd writable: send the rest
 *            (i = round robin)
 *
 *   Why an accept thread rather than the listening fd in every worker's
 *   epoll with EPOLLEXCLUSIVE: EPOLLEXCLUSIVE wakes "one or more" idle
 *   waiters with no fairness between them, and the woken worker accepts
 *   every pending connection, so a burst of connects (a client pool of 50
 *   starting up) can land on one or two workers and stay there for the
 *   life of the connections.  Round-robin hand-off
 *   spreads them evenly, keeps the connection limit in one place (only the
 *   accept thread increments the count, so it can never overshoot), and a
 *   refused client's error write never runs on a worker.  The cost is one
 *   mutex + eventfd write per new connection, nothing per request.
 *
 * ONE CONNECTION
 *   Input goes into a read buffer taken from the worker's pool of 16 KiB
 *   buffers and given back whenever it is empty, so an idle connection holds
 *   no buffer (memcached does the same).  A line longer than the buffer
 *   (a handler says how long its lines may be: handler.h max_line; in the
 *   text protocol only a multi-get's) grows it up to RBUF_SIZE + max_line.
 *   A large data block is read straight into its item (the handler's
 *   direct_dest).
 *   After each read, every complete command in the buffer is executed and
 *   all replies go out with one sendmsg() of an iovec list whose values
 *   point into the items themselves.
 *
 *   Backpressure: when a connection's unsent output reaches max_conn_buffer,
 *   the handler's process stops executing and we stop asking epoll for input
 *   (EPOLLIN off); once the client has read enough, the buffered commands
 *   are executed and reading resumes.  A client that sends requests but
 *   never reads replies costs at most ~max_conn_buffer + RBUF_SIZE + max_line.
 *
 *   Replies that come later (commands forwarded to another node,
 *   proto/forward.h) are holes in the output queue (net/outq.h): what
 *   follows them waits, so replies leave in request order, and only the
 *   bytes before the first hole are sent or asked EPOLLOUT for.  The
 *   handler calls conn_on_resume when it filled one: the queue is sent
 *   again and the commands held back run.  A handler may also hold a
 *   connection's input back (handler.h waiting: the text protocol does
 *   when a connection has as many forwarded commands in flight as it may):
 *   the connection is paused like under backpressure (no EPOLLIN, nothing
 *   executed) until conn_on_resume.  A client that hangs up while replies
 *   are still to come (EPOLLHUP) is closed at once and its handler state
 *   released; one that only shut its sending side (EOF) gets them first.
 *   Each worker has the handler's per-worker state on its loop (the text
 *   protocol's forwarder, which owns the loop's timeout).
 *
 *   TLS (memcached's -Z, net/tls.h): a connection accepted on the TLS
 *   listener carries an SSL object; the same loop drives it, with
 *   SSL_read in place of read(2) (the handshake happens in the first
 *   reads) and SSL_write of up to one record copied from the output queue
 *   in place of sendmsg.  Two things epoll cannot see are handled by
 *   hand: OpenSSL wanting the socket writable to go on reading, and input
 *   it decrypted already (a writable socket brings the connection back).
 *   Connections of the plain listeners (-l notls:HOST:PORT) are as above.
 *
 *   Closing: a connection is closed by its worker only.  Its struct is not
 *   freed at once: the current epoll batch may still hold its pointer, so it
 *   waits on the worker's `closed` list until before_poll, then goes to the
 *   free list for reuse.
 *
 * LOCKING
 *   Each worker's connections, buffer pool and free lists belong to that
 *   worker thread alone: no lock.  worker.qlock protects the hand-off queue
 *   (accept thread pushes, worker drains); it is never held during I/O.
 *   server.reset_lock protects the "stats reset" baseline.  Counters shared
 *   across threads are atomics; per-worker bc_thread_stats_t follow stats.h.
 */
#include "net/server.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "bc_log.h"
#include "bc_time.h"
#include "net/el.h"
#include "net/handler.h"
#include "net/outq.h"
#include "net/tls.h"

#define RBUF_SIZE        (16u * 1024u)
#define RBUF_POOL_MAX    64u            /* free read buffers kept per worker */
#define CONN_FREE_MAX    256u           /* free conn structs kept per worker */
#define DIRECT_READ_MIN  1024u          /* read data blocks this big into the item */
#define READS_PER_EVENT  4              /* fairness between connections */
#define IOV_BATCH        128
#define ACCEPTS_PER_EVENT 64
#define ACCEPT_BACKOFF_MS 100u          /* after EMFILE and friends */
#define DEFAULT_CONN_BUFFER (4u * 1024u * 1024u)
#define MIN_CONN_BUFFER  (16u * 1024u)
#define TLS_WRITE_CHUNK  (16u * 1024u)  /* one TLS record's worth of replies */
#define STREAM_CHUNKS_PER_EVENT 8       /* fairness: a streamed reply's chunks per event */

static const char too_many_conns[] = "ERROR Too many open connections\r\n";

typedef struct worker worker_t;

typedef struct conn {
    bc_el_io_t io;                /* must stay first: io.data is the conn */
    worker_t *w;
    int fd;
    bool closed;
    bool close_after_write;       /* quit & co: close once output is sent */
    char *rbuf;                   /* NULL while idle */
    uint32_t rcap;
    uint32_t rpos;                /* next unprocessed byte */
    uint32_t rlen;                /* bytes in rbuf */
    bc_outq_t *out;               /* the handler's queue for this connection */
    int64_t last_cmd_ms;          /* CLOCK_MONOTONIC ms of the last input used (idle timeout) */
    SSL *ssl;                     /* a TLS listener's connection (tls.h); NULL: plain */
    bool tls_want_write;          /* OpenSSL asked for a writable socket to go on reading */
    bool tls_write_blocked;       /* OpenSSL's last write met a full socket */
    bool tls_handshaken;          /* the handshake is done (stats: ssl_handshake_errors) */
    struct conn *prev, *next;     /* worker's open list, or a free list */
    /* "stats conns" (bc_server_conns): set at open, state after each event */
    time_t opened;
    _Atomic(const char *) state;
    char addr[BC_CONN_ADDR_TEXT], laddr[BC_CONN_ADDR_TEXT];
    /* the handler's state (handler.h conn_size bytes); last */
    _Alignas(max_align_t) unsigned char proto[];
} conn_t;

struct worker {
    bc_thread_stats_t stats;      /* first: the struct is 64-byte aligned */
    bc_server_t *srv;
    uint32_t index;
    pthread_t thread;
    bool thread_started;
    bc_el_t *el;

    /* hand-off queue -- LOCKING: qlock protects q_fds and q_len. */
    pthread_mutex_t qlock;
    struct queued_conn { int fd; bool tls; } *q_fds;
    size_t q_len, q_cap;

    /* LOCKING: conns_lock protects the open list against bc_server_conns;
     * the worker takes it only to link and unlink a connection (reading
     * its own list needs no lock). */
    pthread_mutex_t conns_lock;

    /* worker thread only, no lock */
    conn_t *conns;                /* open connections */
    conn_t *closed;               /* closed in this batch (see above) */
    conn_t *free_conns;
    uint32_t nfree_conns;
    char *rbuf_pool[RBUF_POOL_MAX];
    uint32_t nrbuf_pool;
    void *hstate;                 /* the handler's per-worker state */
    _Atomic bool idle_check;      /* set by the idle thread: sweep on the next wakeup */

    /* The routing generation (cluster.h) seen at the top of the last loop
     * iteration: written by the worker (release), read by
     * bc_server_passed. */
    _Atomic uint64_t seen_gen;
    /* The close-clients generation this worker has acted on (worker only). */
    uint64_t clients_gen;
};

/* A listening socket: the main one (TLS when the server has a context),
 * or one of the plain listeners (memcached's -l notls:HOST:PORT). */
typedef struct listener {
    bc_el_io_t io;                /* io.data is the listener */
    bc_server_t *srv;
    int fd;
    bool tls;
    bool io_started;
    char text[BC_CONN_ADDR_TEXT]; /* "stats conns": memcached's tcp:IP:PORT */
} listener_t;

struct bc_server {
    bc_server_config_t cfg;
    char *listen_addr;            /* owned copy */
    bc_cache_t *cache;            /* borrowed */
    int listen_fd;                /* listeners[0].fd */
    uint16_t port;
    listener_t listeners[1 + BC_SERVER_PLAIN_LISTEN_MAX];
    uint32_t nlisteners;
    uint16_t plain_ports[BC_SERVER_PLAIN_LISTEN_MAX];
    time_t created;               /* "stats conns": the listeners' age */
    size_t out_limit;
    bc_handler_t h;               /* the protocol (handler.h) */
    void *hctx;                   /* its context, borrowed */
    uint32_t rbuf_max;            /* RBUF_SIZE + the handler's longest line */

    worker_t **workers;
    uint32_t nworkers;
    uint32_t next_worker;         /* accept thread only */
    bc_el_t *accept_el;
    pthread_t accept_thread;
    bool accept_started;
    bool started;
    bool stopped;

    atomic_uint_fast64_t curr_conns;
    atomic_uint_fast64_t total_conns;
    atomic_uint_fast64_t rejected_conns;
    /* accept pauses (EMFILE...): memcached's listen_disabled_num and
     * time_in_listen_disabled_us; paused_since_us is 0 while accepting */
    atomic_uint_fast64_t listen_disabled, listen_disabled_us, paused_since_us;

    /* "stats reset" -- LOCKING: reset_lock protects the base_* fields. */
    pthread_mutex_t reset_lock;
    bc_stats_totals_t base_totals;
    uint64_t base_total_conns;
    uint64_t base_rejected_conns;
    uint64_t base_listen_disabled;       /* memcached resets these two too */
    uint64_t base_listen_disabled_us;

    bc_node_cluster_t *cluster;   /* borrowed; NULL = standalone */

    bc_server_handoff_fn handoff; /* replication handshakes (NULL: refused) */
    void *handoff_ctx;
    bc_server_commit_fn commit;   /* before replies go out (NULL: none) */
    void *commit_ctx;

    /* bc_server_close_clients: bumped per call; each worker closes its
     * client connections when it sees a value it has not acted on. */
    _Atomic uint64_t clients_gen;
    _Atomic uint64_t clients_closed;
    /* Idle timeout (config idle_timeout_s): a thread that asks each worker
     * once a second to sweep its connections.  LOCKING RULE: idle_mu
     * guards idle_stop and signals idle_cv. */
    pthread_t idle_thread;
    bool idle_started;
    bool idle_stop;
    pthread_mutex_t idle_mu;
    pthread_cond_t idle_cv;
};

/* ------------------------------------------------------------------------ */
/* connections (worker thread)                                              */
/* ------------------------------------------------------------------------ */

/* memcached's text for a socket address (get_conn_text): "tcp:IP:PORT",
 * "tcp6:[IP]:PORT". */
static void
server_addr_text(const struct sockaddr *sa, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        (void)inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(out, len, "tcp:%s:%u", ip, (unsigned)ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        (void)inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(out, len, "tcp6:[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(out, len, "<AF %d>", (int)sa->sa_family);
    }
}

static void conn_on_io(bc_el_t *el, bc_el_io_t *io, uint32_t events);

static char *
rbuf_get(worker_t *w)
{
    if (w->nrbuf_pool > 0) return w->rbuf_pool[--w->nrbuf_pool];
    return malloc(RBUF_SIZE);
}

/* Gives the read buffer back once it holds nothing unprocessed. */
static void
conn_rbuf_release(conn_t *c)
{
    worker_t *w = c->w;
    if (c->rbuf == NULL) return;
    if (c->rcap == RBUF_SIZE && w->nrbuf_pool < RBUF_POOL_MAX) {
        w->rbuf_pool[w->nrbuf_pool++] = c->rbuf;
    } else {
        free(c->rbuf);
    }
    c->rbuf = NULL;
    c->rcap = c->rpos = c->rlen = 0;
}

/* Makes room at the end of the read buffer; false when impossible. */
static bool
conn_rbuf_prepare(conn_t *c)
{
    if (c->rbuf == NULL) {
        c->rbuf = rbuf_get(c->w);
        if (c->rbuf == NULL) return false;
        c->rcap = RBUF_SIZE;
        c->rpos = c->rlen = 0;
        return true;
    }
    if (c->rpos == c->rlen) {
        c->rpos = c->rlen = 0;
    } else if (c->rlen == c->rcap && c->rpos > 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    if (c->rlen < c->rcap) return true;
    /* Full of one incomplete line: only the handler's longest lines get
     * here (it closes on anything longer), and never beyond rbuf_max. */
    uint32_t rbuf_max = c->w->srv->rbuf_max;
    if (c->rcap >= rbuf_max) return false;
    uint32_t cap = c->rcap * 2 > rbuf_max ? rbuf_max : c->rcap * 2;
    char *nb = malloc(cap);
    if (nb == NULL) return false;
    memcpy(nb, c->rbuf, c->rlen);
    /* The old buffer has the pool size: recycle it. */
    char *old = c->rbuf;
    uint32_t oldcap = c->rcap;
    c->rbuf = nb;
    c->rcap = cap;
    if (oldcap == RBUF_SIZE && c->w->nrbuf_pool < RBUF_POOL_MAX) {
        c->w->rbuf_pool[c->w->nrbuf_pool++] = old;
    } else {
        free(old);
    }
    return true;
}

/* Takes the connection out of the worker (event loop, buffers, open list,
 * counters) without touching its fd; conn_close and conn_handoff finish. */
static void
conn_detach(conn_t *c)
{
    worker_t *w = c->w;

    c->closed = true;
    bc_el_io_stop(w->el, &c->io);
    w->srv->h.conn_release(c->proto);
    conn_rbuf_release(c);
    pthread_mutex_lock(&w->conns_lock);
    if (c->prev != NULL) c->prev->next = c->next;
    else w->conns = c->next;
    if (c->next != NULL) c->next->prev = c->prev;
    pthread_mutex_unlock(&w->conns_lock);
    c->prev = NULL;
    c->next = w->closed;
    w->closed = c;
    atomic_fetch_sub(&w->srv->curr_conns, 1);
}

static void
conn_tls_free(conn_t *c)
{
    if (c->ssl == NULL) return;
    /* A close_notify, best effort (the socket is non-blocking): a client
     * that said "quit" sees a clean end rather than a truncation. */
    if (c->tls_handshaken) (void)SSL_shutdown(c->ssl);
    SSL_free(c->ssl);
    c->ssl = NULL;
    ERR_clear_error();            /* this thread's queue: nothing for the next one */
}

static void
conn_close(conn_t *c)
{
    if (c->closed) return;
    conn_detach(c);
    conn_tls_free(c);
    close(c->fd);
    log_debug("connection %d closed", c->fd);
}

/*
 * Gives the socket to the server's handoff function (the handler answered
 * BC_EHANDOFF: a replication handshake, proto/proto_text.h): the
 * connection leaves this worker without closing its fd.  Input that came
 * after the handshake line is dropped: a backup sends nothing before the
 * primary's RHELLO (repl/repl.h).
 * A handshake pipelined behind replies still unsent is a protocol misuse:
 * the connection is closed instead.
 */
static void
conn_handoff(conn_t *c)
{
    bc_server_t *srv = c->w->srv;
    /* A TLS session goes with its socket (nothing of it is pending: the
     * output queue is empty, and what was read beyond the line is
     * dropped as for a plain one). */
    if (srv->handoff == NULL || !bc_outq_empty(c->out) ||
        (c->ssl != NULL && !c->tls_handshaken)) {
        conn_close(c);
        return;
    }
    /* the arguments live in rbuf, which conn_detach gives back */
    char args[BC_HANDLER_HANDOFF_ARGS_MAX + 1];
    const char *from = NULL;
    size_t len = srv->h.handoff_args(c->proto, &from);
    if (len > BC_HANDLER_HANDOFF_ARGS_MAX) len = BC_HANDLER_HANDOFF_ARGS_MAX;
    memcpy(args, from, len);
    args[len] = '\0';
    int fd = c->fd;
    SSL *ssl = c->ssl;
    c->ssl = NULL;
    conn_detach(c);
    c->fd = -1;
    log_debug("connection %d handed over to replication%s", fd, ssl != NULL ? " (TLS)" : "");
    srv->handoff(srv->handoff_ctx, fd, ssl, args);
}

/*
 * TLS: OpenSSL takes no iovec, so up to TLS_WRITE_CHUNK bytes of the queue
 * are copied into one record.  After a short write OpenSSL wants the same
 * bytes again: the queue is consumed only by what was written, so the next
 * copy starts with them (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, tls.c).
 * False if the connection was closed; c->tls_write_blocked when the socket
 * is full.
 */
static bool
conn_tls_send(conn_t *c)
{
    char buf[TLS_WRITE_CHUNK];
    struct iovec iov[IOV_BATCH];
    size_t len = 0;
    int n = bc_outq_iov(c->out, iov, IOV_BATCH);
    for (int i = 0; i < n && len < sizeof(buf); i++) {
        size_t k = iov[i].iov_len < sizeof(buf) - len ? iov[i].iov_len : sizeof(buf) - len;
        memcpy(buf + len, iov[i].iov_base, k);
        len += k;
    }
    c->tls_write_blocked = false;
    if (len == 0) return true;
    size_t written = 0;
    ERR_clear_error();
    int r = SSL_write_ex(c->ssl, buf, len, &written);
    if (r == 1) {
        bc_stats_add(&c->w->stats, bytes_written, (uint64_t)written);
        bc_outq_consume(c->out, c->w->srv->cache, written);
        return true;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        c->tls_write_blocked = true;
        return true;
    }
    log_debug("connection %d: TLS write failed (%d)", c->fd, e);
    c->tls_handshaken = false;    /* no shutdown on a failed session */
    conn_close(c);
    return false;
}

/* Sends queued output; false if the connection was closed. */
static bool
conn_flush(conn_t *c)
{
    bc_outq_t *q = c->out;
    bc_cache_t *cache = c->w->srv->cache;

    /* Replication: no reply leaves before the writes it acknowledges are
     * on the in-sync backups (repl.h, bc_repl_commit_wait); when they
     * cannot be confirmed, the replies are dropped with the connection. */
    if (c->w->srv->commit != NULL && bc_outq_ready(q) &&
        !c->w->srv->commit(c->w->srv->commit_ctx)) {
        log_debug("connection %d: writes not confirmed by the backups: closing without the "
                  "replies", c->fd);
        conn_close(c);
        return false;
    }

    /* Up to the first hole: a reply still to come (outq.h). */
    while (c->ssl != NULL && bc_outq_ready(q)) {
        if (!conn_tls_send(c)) return false;
        if (c->tls_write_blocked) break;
    }
    while (c->ssl == NULL && bc_outq_ready(q)) {
        struct iovec iov[IOV_BATCH];
        struct msghdr msg;
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)bc_outq_iov(q, iov, IOV_BATCH);
        ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            log_debug("connection %d: send failed: %s", c->fd, strerror(errno));
            conn_close(c);
            return false;
        }
        bc_stats_add(&c->w->stats, bytes_written, (uint64_t)n);
        bc_outq_consume(q, cache, (size_t)n);
    }
    if (bc_outq_empty(q) && c->close_after_write) {
        conn_close(c);
        return false;
    }
    return true;
}

/* Acts on a handler's result; false if the connection was closed. */
static bool
conn_handle_status(conn_t *c, bc_status_t st)
{
    if (st == BC_ECLOSED) {
        c->close_after_write = true;
    } else if (st != BC_OK) {
        log_warn("connection %d: cannot queue a reply (%s), closing", c->fd,
                 bc_status_str(st));
        conn_close(c);
        return false;
    }
    return true;
}

/* Executes what is buffered; false if the connection was closed. */
static bool
conn_process(conn_t *c)
{
    size_t used = 0;
    if (c->rbuf == NULL || c->rpos == c->rlen || c->close_after_write) return true;
    bc_status_t st = c->w->srv->h.process(c->proto, c->rbuf + c->rpos, c->rlen - c->rpos,
                                          c->w->srv->out_limit, &used);
    c->rpos += (uint32_t)used;
    if (used > 0) c->last_cmd_ms = bc_time_mono_ms();
    if (st == BC_EHANDOFF) {
        conn_handoff(c);
        return false;
    }
    if (c->rpos == c->rlen) c->rpos = c->rlen = 0;
    return conn_handle_status(c, st);
}

/* A handler's reply being streamed (handler.h streaming). */
static bool
conn_streaming(const conn_t *c)
{
    return c->w->srv->h.streaming != NULL && c->w->srv->h.streaming(c->proto);
}

static bool
conn_paused(const conn_t *c)
{
    return bc_outq_pending(c->out) >= c->w->srv->out_limit || c->w->srv->h.waiting(c->proto);
}

/*
 * TLS: read(2)'s contract on top of OpenSSL -- > 0 bytes, 0 at the end
 * (the client's close_notify or a bare EOF), -1 with errno EAGAIN when it
 * needs the socket again; -2 when it failed and the connection was closed
 * (a plain client on a TLS port, a certificate refused, ...: counted in
 * ssl_handshake_errors before the handshake, as memcached does).
 */
static ssize_t
conn_tls_read(conn_t *c, char *dst, size_t want)
{
    size_t got = 0;
    ERR_clear_error();
    c->tls_want_write = false;
    int r = SSL_read_ex(c->ssl, dst, want, &got);
    if (r == 1) {
        c->tls_handshaken = true;
        return (ssize_t)got;
    }
    int e = SSL_get_error(c->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        if (SSL_is_init_finished(c->ssl)) c->tls_handshaken = true;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        c->tls_want_write = true;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        break;
    }
    if (!c->tls_handshaken && !SSL_is_init_finished(c->ssl)) {
        char reason[160] = "connection closed";
        unsigned long ee = ERR_peek_error();
        if (ee != 0) ERR_error_string_n(ee, reason, sizeof(reason));
        bc_stats_incr(&c->w->stats, ssl_handshake_errors);
        log_debug("connection %d: TLS handshake failed: %s", c->fd, reason);
    } else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        return 0;                 /* EOF without close_notify: a plain close */
    } else {
        log_debug("connection %d: TLS read failed (%d)", c->fd, e);
    }
    c->tls_handshaken = false;    /* no shutdown on a failed session */
    conn_close(c);
    return -2;
}

/* Reads what the socket has; false if the connection was closed. */
static bool
conn_read(conn_t *c)
{
    for (int round = 0; round < READS_PER_EVENT; round++) {
        char *dst;
        size_t want;
        bool direct = false;

        if ((c->rbuf == NULL || c->rpos == c->rlen) &&
            c->w->srv->h.direct_dest(c->proto, &dst, &want) && want >= DIRECT_READ_MIN) {
            direct = true;
        } else {
            if (!conn_rbuf_prepare(c)) {
                log_warn("connection %d: read buffer unavailable, closing", c->fd);
                conn_close(c);
                return false;
            }
            dst = c->rbuf + c->rlen;
            want = c->rcap - c->rlen;
        }
        ssize_t n = c->ssl != NULL ? conn_tls_read(c, dst, want) : read(c->fd, dst, want);
        if (n == -2) return false;               /* TLS failure: closed */
        if (n == 0) {
            /* EOF: send what is owed if the socket takes it, then close.
             * Replies still to come (forwarded commands, whose deadline
             * bounds the wait) are waited for: "printf 'get k\r\n' | nc"
             * gets its answer whether k is served here or not. */
            c->close_after_write = true;
            if (!conn_flush(c)) return false;
            if (bc_outq_holes(c->out) > 0) return true;
            conn_close(c);
            return false;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            log_debug("connection %d: read failed: %s", c->fd, strerror(errno));
            conn_close(c);
            return false;
        }
        bc_stats_add(&c->w->stats, bytes_read, (uint64_t)n);
        if (direct) {
            c->last_cmd_ms = bc_time_mono_ms();
            if (!conn_handle_status(c, c->w->srv->h.direct_done(c->proto, (size_t)n)))
                return false;
        } else {
            c->rlen += (uint32_t)n;
            if (!conn_process(c)) return false;
        }
        if (c->close_after_write || conn_paused(c)) break;
        /* drained: spare the EAGAIN read -- unless OpenSSL holds
         * decrypted bytes that epoll cannot know of */
        if ((size_t)n < want && (c->ssl == NULL || !SSL_has_pending(c->ssl))) break;
    }
    return true;
}

/* What "stats conns" shows for the connection now (worker thread). */
static void
conn_publish_state(conn_t *c)
{
    const char *name = NULL;
    if (bc_outq_pending(c->out) > 0) name = "conn_mwrite";
    else if (c->w->srv->h.state_name != NULL) name = c->w->srv->h.state_name(c->proto);
    atomic_store_explicit(&c->state, name != NULL ? name : "conn_read", memory_order_relaxed);
}

/* Asks epoll for what the connection can use now. */
static void
conn_update_events(conn_t *c)
{
    uint32_t ev = 0;
    conn_publish_state(c);
    if (!c->close_after_write && !conn_paused(c)) ev |= BC_EL_READ;
    if (bc_outq_ready(c->out) || c->tls_want_write) ev |= BC_EL_WRITE;
    /* TLS: input OpenSSL has decrypted already is not on the socket, and
     * epoll would never report it; a writable socket (at once, almost
     * always) brings us back to read it (conn_on_io), after the other
     * connections' turn. */
    if ((ev & BC_EL_READ) && c->ssl != NULL && SSL_has_pending(c->ssl)) ev |= BC_EL_WRITE;
    if (bc_el_io_set(c->w->el, &c->io, ev) != BC_OK) conn_close(c);
}

/* The worker acts on bc_server_close_clients: closes its client
 * connections (worker thread).  True when it did. */
static bool
worker_close_clients(worker_t *w)
{
    uint64_t gen = atomic_load_explicit(&w->srv->clients_gen, memory_order_acquire);
    if (gen == w->clients_gen) return false;
    w->clients_gen = gen;
    uint64_t n = 0;
    for (conn_t *c = w->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (w->srv->h.is_peer != NULL && w->srv->h.is_peer(c->proto)) continue;
        /* RST: whatever the client still had queued is discarded too. */
        struct linger lg = {1, 0};
        (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        conn_close(c);
        n++;
    }
    atomic_fetch_add_explicit(&w->srv->clients_closed, n, memory_order_relaxed);
    if (n > 0) log_info("worker %u: closed %llu client connections", w->index, (unsigned long long)n);
    return true;
}

static void
conn_on_io(bc_el_t *el, bc_el_io_t *io, uint32_t events)
{
    conn_t *c = io->data;
    (void)el;

    /* Before reading anything more: clients to close (this one among
     * them, unless a peer)? */
    if (atomic_load_explicit(&c->w->srv->clients_gen, memory_order_relaxed) !=
            c->w->clients_gen &&
        worker_close_clients(c->w) && c->closed) {
        return;
    }
    if (events & BC_EL_ERROR) {
        conn_close(c);
        return;
    }
    /* Hung up while replies are still to come (forwarded commands):
     * nobody will read them, and the level-triggered HUP would fire again
     * and again until they came. */
    if ((events & BC_EL_HUP) &&
        (c->w->srv->h.waiting(c->proto) || bc_outq_holes(c->out) > 0)) {
        conn_close(c);
        return;
    }
    /* TLS: OpenSSL may want the socket writable to go on reading, and may
     * hold decrypted input that epoll cannot see (a resumed connection). */
    bool tls_read = c->ssl != NULL &&
                    ((c->tls_want_write && (events & BC_EL_WRITE)) || SSL_has_pending(c->ssl));
    if (((events & (BC_EL_READ | BC_EL_HUP)) || tls_read) && !conn_paused(c) &&
        !c->close_after_write) {
        if (!conn_read(c)) return;
    }
    /*
     * Send, then -- if that made room below the limit -- run the commands
     * that were waiting for it, and send again, until nothing moves.  A
     * reply being streamed gets its next chunk once the queue has drained
     * below the low-water mark; after STREAM_CHUNKS_PER_EVENT chunks the
     * last one is left queued (EPOLLOUT brings the connection back), so
     * one long dump does not starve the worker's other connections.
     */
    for (uint32_t chunks = 0;;) {
        if (!conn_flush(c)) return;
        if (conn_streaming(c) && bc_outq_pending(c->out) < BC_HANDLER_STREAM_LOW_WATER &&
            !c->close_after_write) {
            if (!conn_handle_status(c, c->w->srv->h.stream(c->proto))) return;
            if (++chunks < STREAM_CHUNKS_PER_EVENT) continue;
            break;
        }
        if (conn_paused(c) || c->close_after_write || c->rbuf == NULL ||
            c->rpos == c->rlen)
            break;
        size_t before = bc_outq_pending(c->out);
        uint32_t rpos = c->rpos;
        if (!conn_process(c)) return;
        if (c->rpos == rpos && bc_outq_pending(c->out) == before) break;
    }
    if (c->rbuf != NULL && c->rpos == c->rlen) conn_rbuf_release(c);
    conn_update_events(c);
}

/* The handler lets held-back input go on (handler.h resume): send what it
 * queued, run what waited. */
static void
conn_on_resume(void *arg)
{
    conn_t *c = arg;
    if (c->closed) return;
    conn_on_io(c->w->el, &c->io, 0);
}

static void
conn_open(worker_t *w, int fd, bool tls)
{
    bc_server_t *srv = w->srv;
    size_t size = sizeof(conn_t) + srv->h.conn_size;
    conn_t *c = w->free_conns;

    if (c != NULL) {
        w->free_conns = c->next;
        w->nfree_conns--;
    } else {
        c = malloc(size);
    }
    if (c == NULL) {
        log_warn("out of memory accepting a connection");
        close(fd);
        atomic_fetch_sub(&w->srv->curr_conns, 1);
        return;
    }
    memset(c, 0, size);
    c->w = w;
    c->fd = fd;
    if (tls && (c->ssl = bc_tls_new_ssl(srv->cfg.tls, fd)) == NULL) {
        close(fd);
        if (w->nfree_conns < CONN_FREE_MAX) {
            c->next = w->free_conns;
            w->free_conns = c;
            w->nfree_conns++;
        } else {
            free(c);
        }
        atomic_fetch_sub(&w->srv->curr_conns, 1);
        return;
    }
    c->last_cmd_ms = bc_time_mono_ms();
    c->opened = time(NULL);
    atomic_init(&c->state, "conn_read");
    struct sockaddr_storage sa;
    socklen_t salen = sizeof(sa);
    if (getpeername(fd, (struct sockaddr *)&sa, &salen) == 0) {
        server_addr_text((struct sockaddr *)&sa, c->addr, sizeof(c->addr));
    }
    salen = sizeof(sa);
    if (getsockname(fd, (struct sockaddr *)&sa, &salen) == 0) {
        server_addr_text((struct sockaddr *)&sa, c->laddr, sizeof(c->laddr));
    }
    srv->h.conn_init(srv->hctx, w->hstate, c->proto, &w->stats, fd, conn_on_resume, c);
    c->out = srv->h.conn_out(c->proto);
    if (bc_el_io_start(w->el, &c->io, fd, BC_EL_READ, conn_on_io, c) != BC_OK) {
        srv->h.conn_release(c->proto);
        conn_tls_free(c);
        close(fd);
        free(c);
        atomic_fetch_sub(&w->srv->curr_conns, 1);
        return;
    }
    pthread_mutex_lock(&w->conns_lock);
    c->next = w->conns;
    if (w->conns != NULL) w->conns->prev = c;
    w->conns = c;
    pthread_mutex_unlock(&w->conns_lock);
    log_debug("connection %d opened on worker %u", fd, w->index);
}

/* ------------------------------------------------------------------------ */
/* worker thread                                                            */
/* ------------------------------------------------------------------------ */

/*
 * The idle timeout (server.h): closes the connections that wait for a
 * command and have used no input for longer than the timeout -- as
 * memcached, whose conn_timeout_thread kicks connections in its
 * conn_new_cmd/conn_read states only: not while a reply is owed, a value
 * is being read, or a forwarded command is out.
 */
static void
worker_sweep_idle(worker_t *w)
{
    const bc_server_t *srv = w->srv;
    int64_t limit_ms = (int64_t)srv->cfg.idle_timeout_s * 1000;
    int64_t now = bc_time_mono_ms();
    for (conn_t *c = w->conns, *next; c != NULL; c = next) {
        char *dst;
        size_t want;
        next = c->next;
        if (c->closed || now - c->last_cmd_ms <= limit_ms) continue;
        if (bc_outq_pending(c->out) > 0 || srv->h.waiting(c->proto) ||
            srv->h.direct_dest(c->proto, &dst, &want)) {
            continue;
        }
        log_debug("connection %d idle for %" PRId64 " ms: closed (idle timeout)", c->fd,
                  now - c->last_cmd_ms);
        bc_stats_incr(&w->stats, idle_kicks);
        conn_close(c);
    }
}

/* Wakeup: adopt the connections the accept thread queued; sweep idle
 * connections when the idle thread asked. */
static void
worker_on_wakeup(bc_el_t *el, void *arg)
{
    worker_t *w = arg;
    struct queued_conn fds[64];
    size_t n;
    (void)el;

    if (atomic_exchange_explicit(&w->idle_check, false, memory_order_acq_rel)) {
        worker_sweep_idle(w);
    }

    do {
        pthread_mutex_lock(&w->qlock);
        n = w->q_len < 64 ? w->q_len : 64;
        /* A wake may find the queue empty (bc_server_passed). */
        if (n > 0) memcpy(fds, w->q_fds + (w->q_len - n), n * sizeof(fds[0]));
        w->q_len -= n;
        pthread_mutex_unlock(&w->qlock);
        for (size_t i = 0; i < n; i++) conn_open(w, fds[i].fd, fds[i].tls);
    } while (n == 64);
}

/* Between batches: recycle the connections closed during the last one. */
static void
worker_before_poll(bc_el_t *el, void *arg)
{
    worker_t *w = arg;
    (void)el;

    if (w->srv->cluster != NULL) {
        /* Top of an iteration: every request of the earlier ones is done. */
        atomic_store_explicit(&w->seen_gen, bc_node_cluster_route_gen(w->srv->cluster),
                              memory_order_release);
    }
    (void)worker_close_clients(w);
    if (w->srv->h.worker_before_poll != NULL) w->srv->h.worker_before_poll(w->hstate);
    while (w->closed != NULL) {
        conn_t *c = w->closed;
        w->closed = c->next;
        if (w->nfree_conns < CONN_FREE_MAX) {
            c->next = w->free_conns;
            w->free_conns = c;
            w->nfree_conns++;
        } else {
            free(c);
        }
    }
}

/* The idle thread: once a second, each worker is asked to sweep. */
static void *
idle_main(void *arg)
{
    bc_server_t *srv = arg;
    pthread_mutex_lock(&srv->idle_mu);
    while (!srv->idle_stop) {
        struct timespec deadline;
        bc_time_deadline(&deadline, CLOCK_MONOTONIC, 1000);
        pthread_cond_timedwait(&srv->idle_cv, &srv->idle_mu, &deadline);
        if (srv->idle_stop) break;
        pthread_mutex_unlock(&srv->idle_mu);
        for (uint32_t i = 0; i < srv->nworkers; i++) {
            atomic_store_explicit(&srv->workers[i]->idle_check, true, memory_order_release);
            bc_el_wake(srv->workers[i]->el);
        }
        pthread_mutex_lock(&srv->idle_mu);
    }
    pthread_mutex_unlock(&srv->idle_mu);
    return NULL;
}

static void *
worker_main(void *arg)
{
    worker_t *w = arg;
    /* This thread's requests count per bucket (engine/counters.h).
     * BC_BUCKET_COUNTERS=off leaves them out: only to measure their cost
     * (tests/bench/bucket_counters.sh). */
    const char *off = getenv("BC_BUCKET_COUNTERS");
    if (off != NULL && strcmp(off, "off") == 0) {
        if (w->index == 0) log_warn("BC_BUCKET_COUNTERS=off: per-bucket counters and hot keys off");
    } else if (bc_cache_count_thread(w->srv->cache) != BC_OK) {
        log_warn("worker %u: no memory for per-bucket counters; its requests go uncounted",
                 w->index);
    }
    if (bc_el_run(w->el) != BC_OK) log_error("worker %u: event loop failed", w->index);
    bc_cache_count_thread_end(w->srv->cache);
    return NULL;
}

/* After the worker thread has ended: close and free everything it had. */
static void
worker_cleanup(worker_t *w)
{
    while (w->conns != NULL) conn_close(w->conns);
    worker_before_poll(w->el, w);
    /* After the connections: they have released their handler state. */
    if (w->srv->h.worker_destroy != NULL) w->srv->h.worker_destroy(w->hstate);
    w->hstate = NULL;
    while (w->free_conns != NULL) {
        conn_t *c = w->free_conns;
        w->free_conns = c->next;
        free(c);
    }
    w->nfree_conns = 0;
    while (w->nrbuf_pool > 0) free(w->rbuf_pool[--w->nrbuf_pool]);
    pthread_mutex_lock(&w->qlock);
    for (size_t i = 0; i < w->q_len; i++) {
        close(w->q_fds[i].fd);
        atomic_fetch_sub(&w->srv->curr_conns, 1);
    }
    w->q_len = 0;
    pthread_mutex_unlock(&w->qlock);
}

/* ------------------------------------------------------------------------ */
/* accept thread                                                            */
/* ------------------------------------------------------------------------ */

static void accept_on_io(bc_el_t *el, bc_el_io_t *io, uint32_t events);

static void
accept_resume(bc_el_t *el, void *arg)
{
    bc_server_t *srv = arg;
    uint64_t since = atomic_exchange(&srv->paused_since_us, 0);
    if (since != 0) atomic_fetch_add(&srv->listen_disabled_us, bc_time_mono_us() - since);
    for (uint32_t i = 0; i < srv->nlisteners; i++) {
        (void)bc_el_io_set(el, &srv->listeners[i].io, BC_EL_READ);
    }
}

static bool
worker_enqueue(worker_t *w, int fd, bool tls)
{
    bool ok = true;
    pthread_mutex_lock(&w->qlock);
    if (w->q_len == w->q_cap) {
        size_t cap = w->q_cap ? w->q_cap * 2 : 64;
        struct queued_conn *q = realloc(w->q_fds, cap * sizeof(*q));
        if (q == NULL) {
            ok = false;
        } else {
            w->q_fds = q;
            w->q_cap = cap;
        }
    }
    if (ok) {
        w->q_fds[w->q_len].fd = fd;
        w->q_fds[w->q_len].tls = tls;
        w->q_len++;
    }
    pthread_mutex_unlock(&w->qlock);
    if (ok) bc_el_wake(w->el);
    return ok;
}

static void
accept_on_io(bc_el_t *el, bc_el_io_t *io, uint32_t events)
{
    listener_t *l = io->data;
    bc_server_t *srv = l->srv;
    (void)events;

    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            /* EMFILE, ENFILE, ENOBUFS, ENOMEM: the pending connection stays
             * queued and the fd stays readable; pause instead of spinning. */
            log_warn("accept failed: %s; pausing accepts for %u ms", strerror(errno),
                     ACCEPT_BACKOFF_MS);
            for (uint32_t k = 0; k < srv->nlisteners; k++) {
                (void)bc_el_io_set(el, &srv->listeners[k].io, 0);
            }
            atomic_fetch_add(&srv->listen_disabled, 1);
            atomic_store(&srv->paused_since_us, bc_time_mono_us());
            bc_el_set_timeout(el, ACCEPT_BACKOFF_MS, accept_resume, srv);
            return;
        }
        if (atomic_load(&srv->curr_conns) >= srv->cfg.max_conns) {
            /* memcached's answer; best effort, the socket is fresh (on a
             * TLS listener the client reads it as a failed handshake). */
            ssize_t w = send(fd, too_many_conns, sizeof(too_many_conns) - 1,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
            close(fd);
            atomic_fetch_add(&srv->rejected_conns, 1);
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        atomic_fetch_add(&srv->curr_conns, 1);
        atomic_fetch_add(&srv->total_conns, 1);
        worker_t *w = srv->workers[srv->next_worker++ % srv->nworkers];
        if (!worker_enqueue(w, fd, l->tls)) {
            log_warn("out of memory handing a connection to a worker");
            close(fd);
            atomic_fetch_sub(&srv->curr_conns, 1);
        }
    }
}

static void *
accept_main(void *arg)
{
    bc_server_t *srv = arg;
    if (bc_el_run(srv->accept_el) != BC_OK) log_error("accept loop failed");
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* stats hooks                                                              */
/* ------------------------------------------------------------------------ */

static void
server_raw_totals(bc_server_t *srv, bc_stats_totals_t *totals)
{
    memset(totals, 0, sizeof(*totals));
    for (uint32_t i = 0; i < srv->nworkers; i++) {
        bc_stats_accumulate(totals, &srv->workers[i]->stats);
    }
}

static uint64_t
sub_floor0(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

/* The accept pauses since the start (bc_server_get_stats takes off what
 * stood at the last "stats reset", as memcached resets both counters;
 * accepting_conns is a state, never reset). */
static void
server_listen_stats(bc_server_t *server, bc_server_stats_t *out)
{
    uint64_t since = atomic_load(&server->paused_since_us);
    out->accepting_conns = since == 0;
    out->listen_disabled_num = atomic_load(&server->listen_disabled);
    out->time_in_listen_disabled_us = atomic_load(&server->listen_disabled_us) +
                                      (since != 0 ? bc_time_mono_us() - since : 0);
}

void
bc_server_get_stats(bc_server_t *server, bc_server_stats_t *out)
{
    bc_stats_totals_t raw;

    memset(out, 0, sizeof(*out));
    if (server == NULL) return;
    server_raw_totals(server, &raw);
    out->curr_connections = atomic_load(&server->curr_conns);
    out->threads = server->nworkers;
    server_listen_stats(server, out);
    pthread_mutex_lock(&server->reset_lock);
    out->total_connections = sub_floor0(atomic_load(&server->total_conns),
                                        server->base_total_conns);
    out->rejected_connections = sub_floor0(atomic_load(&server->rejected_conns),
                                           server->base_rejected_conns);
    out->listen_disabled_num = sub_floor0(out->listen_disabled_num, server->base_listen_disabled);
    out->time_in_listen_disabled_us = sub_floor0(out->time_in_listen_disabled_us,
                                                 server->base_listen_disabled_us);
#define BC__STATS_SUB(name, metric, labels, desc) out->totals.name = sub_floor0(raw.name, server->base_totals.name);
    BC_THREAD_STATS(BC__STATS_SUB)
#undef BC__STATS_SUB
    pthread_mutex_unlock(&server->reset_lock);
}

/* The figures since the server started, "stats reset" ignored: what
 * /metrics reports (a Prometheus counter never goes down). */
void
bc_server_get_stats_lifetime(bc_server_t *server, bc_server_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (server == NULL) return;
    server_raw_totals(server, &out->totals);
    out->curr_connections = atomic_load(&server->curr_conns);
    out->threads = server->nworkers;
    server_listen_stats(server, out);
    out->total_connections = atomic_load(&server->total_conns);
    out->rejected_connections = atomic_load(&server->rejected_conns);
}

/*
 * "stats reset": counters are never written by anyone but their worker
 * (stats.h), so instead of zeroing them we remember where they stood and
 * report the difference from then on.
 */
void
bc_server_reset_stats(bc_server_t *srv)
{
    bc_stats_totals_t raw;
    bc_server_stats_t listen;

    server_raw_totals(srv, &raw);
    server_listen_stats(srv, &listen);
    pthread_mutex_lock(&srv->reset_lock);
    srv->base_totals = raw;
    srv->base_listen_disabled = listen.listen_disabled_num;
    srv->base_listen_disabled_us = listen.time_in_listen_disabled_us;
    srv->base_total_conns = atomic_load(&srv->total_conns);
    srv->base_rejected_conns = atomic_load(&srv->rejected_conns);
    pthread_mutex_unlock(&srv->reset_lock);
}

static int
conn_info_cmp(const void *a, const void *b)
{
    int x = ((const bc_conn_info_t *)a)->fd, y = ((const bc_conn_info_t *)b)->fd;
    return (x > y) - (x < y);
}

static uint32_t
secs_since(time_t now, time_t then)
{
    return now > then ? (uint32_t)(now - then) : 0;
}

size_t
bc_server_conns(bc_server_t *srv, bc_conn_info_t **out)
{
    /* At most the connection limit plus the listener; a few connections
     * between accept and their worker's list are not shown yet. */
    size_t cap = (size_t)srv->cfg.max_conns + srv->nlisteners, n = 0;
    time_t now = time(NULL);
    bc_conn_info_t *v = calloc(cap, sizeof(*v));
    *out = NULL;
    if (v == NULL) return 0;
    for (uint32_t i = 0; srv->listen_fd >= 0 && i < srv->nlisteners; i++) {
        v[n].fd = srv->listeners[i].fd;
        v[n].listening = true;
        memcpy(v[n].addr, srv->listeners[i].text, sizeof(v[n].addr));
        v[n].state = "conn_listening";
        v[n].secs = secs_since(now, srv->created);
        n++;
    }
    for (uint32_t i = 0; i < srv->nworkers; i++) {
        worker_t *w = srv->workers[i];
        pthread_mutex_lock(&w->conns_lock);
        for (conn_t *c = w->conns; c != NULL && n < cap; c = c->next) {
            v[n].fd = c->fd;
            memcpy(v[n].addr, c->addr, sizeof(v[n].addr));
            memcpy(v[n].listen_addr, c->laddr, sizeof(v[n].listen_addr));
            v[n].state = atomic_load_explicit(&c->state, memory_order_relaxed);
            v[n].secs = secs_since(now, c->opened);
            n++;
        }
        pthread_mutex_unlock(&w->conns_lock);
    }
    qsort(v, n, sizeof(*v), conn_info_cmp);
    *out = v;
    return n;
}

/* ------------------------------------------------------------------------ */
/* public                                                                   */
/* ------------------------------------------------------------------------ */

/* Binds and listens; returns the fd or -1 (logged). */
static int
server_listen(const char *addr, uint16_t port, int backlog, uint16_t *bound_port)
{
    struct addrinfo hints, *res = NULL;
    char portstr[8];
    int fd = -1, rc, err = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    rc = getaddrinfo(addr, portstr, &hints, &res);
    if (rc != 0) {
        log_error("cannot resolve listen address \"%s\": %s", addr, gai_strerror(rc));
        return -1;
    }
    /* The first address that works; a name with several addresses (e.g.
     * "localhost") is served on one of them. */
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int one = 1;
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0) break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        log_error("cannot listen on %s:%u: %s", addr, (unsigned)port, strerror(err));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    *bound_port = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            *bound_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            *bound_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
    }
    return fd;
}

bc_status_t
bc_server_create(const bc_server_config_t *config, bc_cache_t *cache, const bc_handler_t *handler,
                 void *handler_ctx, bc_server_t **out)
{
    bc_server_t *srv;

    if (config == NULL || cache == NULL || handler == NULL || out == NULL ||
        config->nthreads == 0 || config->max_conns == 0) {
        log_error("server: invalid configuration (threads and max connections must be > 0)");
        return BC_EINVAL;
    }
    srv = calloc(1, sizeof(*srv));
    if (srv == NULL) return BC_ENOMEM;
    srv->cfg = *config;
    srv->cache = cache;
    srv->h = *handler;
    srv->hctx = handler_ctx;
    srv->rbuf_max = RBUF_SIZE + (handler->max_line < UINT32_MAX / 2 ? (uint32_t)handler->max_line
                                                                    : UINT32_MAX / 2);
    srv->listen_fd = -1;
    srv->listen_addr = strdup(config->listen_addr != NULL ? config->listen_addr : "0.0.0.0");
    srv->nworkers = config->nthreads;
    srv->workers = calloc(srv->nworkers, sizeof(*srv->workers));
    pthread_mutex_init(&srv->reset_lock, NULL);
    pthread_mutex_init(&srv->idle_mu, NULL);
    bc_time_cond_init(&srv->idle_cv);
    if (srv->listen_addr == NULL || srv->workers == NULL) {
        bc_server_destroy(srv);
        return BC_ENOMEM;
    }
    srv->cfg.listen_addr = srv->listen_addr;
    if (srv->cfg.backlog <= 0) srv->cfg.backlog = 1024;
    srv->out_limit = config->max_conn_buffer == 0 ? DEFAULT_CONN_BUFFER
                   : config->max_conn_buffer < MIN_CONN_BUFFER ? MIN_CONN_BUFFER
                   : config->max_conn_buffer;
    srv->cfg.max_conn_buffer = srv->out_limit;
    for (uint32_t i = 0; i < srv->nworkers; i++) {
        void *mem = NULL;
        if (posix_memalign(&mem, 64, sizeof(worker_t)) != 0) {
            bc_server_destroy(srv);
            return BC_ENOMEM;
        }
        worker_t *w = memset(mem, 0, sizeof(worker_t));
        w->srv = srv;
        w->index = i;
        pthread_mutex_init(&w->qlock, NULL);
        pthread_mutex_init(&w->conns_lock, NULL);
        srv->workers[i] = w;
    }

    for (uint32_t i = 0; i < 1 + BC_SERVER_PLAIN_LISTEN_MAX; i++) srv->listeners[i].fd = -1;
    srv->listen_fd = server_listen(srv->listen_addr, config->port, srv->cfg.backlog,
                                   &srv->port);
    if (srv->listen_fd < 0) {
        bc_server_destroy(srv);
        return BC_EIO;
    }
    srv->listeners[0] = (listener_t){.srv = srv, .fd = srv->listen_fd, .tls = config->tls != NULL};
    srv->nlisteners = 1;
    srv->cfg.port = srv->port;
    if (config->nplain_listen > BC_SERVER_PLAIN_LISTEN_MAX) {
        log_error("server: at most %d plain listeners", BC_SERVER_PLAIN_LISTEN_MAX);
        bc_server_destroy(srv);
        return BC_EINVAL;
    }
    for (uint32_t i = 0; i < config->nplain_listen; i++) {
        const bc_server_listen_t *pl = &config->plain_listen[i];
        uint16_t bound = 0;
        int fd = server_listen(pl->host, pl->port, srv->cfg.backlog, &bound);
        if (fd < 0) {
            bc_server_destroy(srv);
            return BC_EIO;
        }
        srv->listeners[srv->nlisteners++] = (listener_t){.srv = srv, .fd = fd, .tls = false};
        srv->plain_ports[i] = bound;
    }
    for (uint32_t i = 0; i < srv->nlisteners; i++) {
        struct sockaddr_storage ls;
        socklen_t lsl = sizeof(ls);
        if (getsockname(srv->listeners[i].fd, (struct sockaddr *)&ls, &lsl) == 0) {
            server_addr_text((struct sockaddr *)&ls, srv->listeners[i].text,
                             sizeof(srv->listeners[i].text));
        }
    }
    srv->cfg.plain_listen = NULL;  /* borrowed strings: not kept */
    srv->created = time(NULL);
    *out = srv;
    return BC_OK;
}

/* A new table is in force (bc_node_cluster_set_on_routes): every worker
 * looks at once, so that a write waiting out a migration pause goes on
 * now, not at its next timed try (proto/forward.h, bc_fwd_post_at). */
static void
server_routes_changed(void *arg)
{
    bc_server_t *srv = arg;
    for (uint32_t i = 0; i < srv->nworkers; i++) {
        worker_t *w = srv->workers[i];
        if (w != NULL && w->el != NULL) bc_el_wake(w->el);
    }
}

bc_status_t
bc_server_start(bc_server_t *srv)
{
    bc_status_t st;

    if (srv->started || srv->stopped) return BC_EINVAL;
    srv->started = true;
    for (uint32_t i = 0; i < srv->nworkers; i++) {
        worker_t *w = srv->workers[i];
        if ((st = bc_el_create(&w->el)) != BC_OK) return st;
        bc_el_set_wakeup(w->el, worker_on_wakeup, w);
        bc_el_set_before_poll(w->el, worker_before_poll, w);
        if (srv->h.worker_create != NULL &&
            (st = srv->h.worker_create(srv->hctx, w->el, &w->stats, &w->hstate)) != BC_OK)
            return st;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            log_error("cannot start worker thread %u", i);
            return BC_EIO;
        }
        w->thread_started = true;
    }
    if (srv->cluster != NULL) {
        bc_node_cluster_set_on_routes(srv->cluster, server_routes_changed, srv);
    }
    if ((st = bc_el_create(&srv->accept_el)) != BC_OK) return st;
    for (uint32_t i = 0; i < srv->nlisteners; i++) {
        listener_t *l = &srv->listeners[i];
        if ((st = bc_el_io_start(srv->accept_el, &l->io, l->fd, BC_EL_READ, accept_on_io, l)) !=
            BC_OK)
            return st;
        l->io_started = true;
    }
    if (pthread_create(&srv->accept_thread, NULL, accept_main, srv) != 0) {
        log_error("cannot start the accept thread");
        return BC_EIO;
    }
    srv->accept_started = true;
    if (srv->cfg.idle_timeout_s > 0) {
        if (pthread_create(&srv->idle_thread, NULL, idle_main, srv) != 0) {
            log_error("cannot start the idle timeout thread");
            return BC_EIO;
        }
        srv->idle_started = true;
    }
    return BC_OK;
}

uint16_t
bc_server_port(const bc_server_t *srv)
{
    return srv->port;
}

uint16_t
bc_server_plain_port(const bc_server_t *srv, uint32_t i)
{
    return i + 1 < srv->nlisteners ? srv->plain_ports[i] : 0;
}

const bc_server_config_t *
bc_server_config(const bc_server_t *srv)
{
    return &srv->cfg;
}

void
bc_server_stop(bc_server_t *srv)
{
    if (srv == NULL || srv->stopped) return;
    srv->stopped = true;
    if (srv->started) bc_node_cluster_set_on_routes(srv->cluster, NULL, NULL);
    if (srv->idle_started) {
        pthread_mutex_lock(&srv->idle_mu);
        srv->idle_stop = true;
        pthread_cond_signal(&srv->idle_cv);
        pthread_mutex_unlock(&srv->idle_mu);
        pthread_join(srv->idle_thread, NULL);
        srv->idle_started = false;
    }
    if (srv->accept_started) {
        bc_el_stop(srv->accept_el);
        pthread_join(srv->accept_thread, NULL);
        srv->accept_started = false;
    }
    for (uint32_t i = 0; i < srv->nlisteners; i++) {
        if (srv->listeners[i].fd >= 0) close(srv->listeners[i].fd);
        srv->listeners[i].fd = -1;
    }
    srv->listen_fd = -1;
    for (uint32_t i = 0; i < srv->nworkers; i++) {
        worker_t *w = srv->workers[i];
        if (w->thread_started) {
            bc_el_stop(w->el);
            pthread_join(w->thread, NULL);
            w->thread_started = false;
        }
    }
    /* Every worker has stopped: no thread touches connections any more. */
    for (uint32_t i = 0; i < srv->nworkers; i++) {
        if (srv->workers[i]->el != NULL) worker_cleanup(srv->workers[i]);
    }
}

void
bc_server_destroy(bc_server_t *srv)
{
    if (srv == NULL) return;
    bc_server_stop(srv);
    for (uint32_t i = 0; srv->workers != NULL && i < srv->nworkers; i++) {
        worker_t *w = srv->workers[i];
        if (w == NULL) continue;
        bc_el_destroy(w->el);
        free(w->q_fds);
        pthread_mutex_destroy(&w->qlock);
        pthread_mutex_destroy(&w->conns_lock);
        free(w);
    }
    bc_el_destroy(srv->accept_el);
    pthread_mutex_destroy(&srv->reset_lock);
    pthread_mutex_destroy(&srv->idle_mu);
    pthread_cond_destroy(&srv->idle_cv);
    free(srv->workers);
    free(srv->listen_addr);
    free(srv);
}

void
bc_server_set_cluster(bc_server_t *server, bc_node_cluster_t *cluster)
{
    server->cluster = cluster;
}

bool
bc_server_passed(bc_server_t *server, uint64_t gen)
{
    bool all = true;
    if (!server->started || server->cluster == NULL) return true;
    /* The caller saw the new routes; a worker blocked in epoll_wait has
     * nothing in flight and reads them on waking (bc_el_idle). */
    atomic_thread_fence(memory_order_seq_cst);
    for (uint32_t i = 0; i < server->nworkers; i++) {
        worker_t *w = server->workers[i];
        if (atomic_load_explicit(&w->seen_gen, memory_order_acquire) >= gen) continue;
        if (w->el != NULL && bc_el_idle(w->el)) continue;
        all = false;
        if (w->el != NULL) bc_el_wake(w->el);   /* it iterates once more */
    }
    return all;
}

void
bc_server_set_handoff(bc_server_t *server, bc_server_handoff_fn fn, void *ctx)
{
    server->handoff = fn;
    server->handoff_ctx = ctx;
}

void
bc_server_close_clients(bc_server_t *server)
{
    if (server == NULL) return;
    atomic_fetch_add_explicit(&server->clients_gen, 1, memory_order_release);
    for (uint32_t i = 0; i < server->nworkers; i++) {
        worker_t *w = server->workers[i];
        if (w != NULL && w->el != NULL) bc_el_wake(w->el);
    }
}

uint64_t
bc_server_clients_closed(const bc_server_t *server)
{
    return server == NULL ? 0 : atomic_load(&((bc_server_t *)server)->clients_closed);
}

void
bc_server_set_commit(bc_server_t *server, bc_server_commit_fn fn, void *ctx)
{
    server->commit = fn;
    server->commit_ctx = ctx;
}
