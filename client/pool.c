/*
 * pool.c -- see pool.h.  Nodes, their connection pools, and deadline-bound
 * socket I/O.
 *
 * LOCKING
 *   No lock on the common path: a slot is taken by a compare-and-swap of
 *   its state (idle -> busy, or empty -> opening) and given back by a store
 *   (busy -> idle, or -> empty after closing); the thread that moved a slot
 *   out of idle/empty owns it and its connection until it gives it back.
 *   node->mu is taken only to wait for a slot (cv) and by a giver that saw
 *   waiters, to signal; state stores and the waiters counter are seq_cst,
 *   so a giver either sees a waiter or the waiter sees the freed slot.
 *
 * DEADLINES
 *   Sockets carry SO_RCVTIMEO/SO_SNDTIMEO of BC__IO_SLICE_MS, so a blocking
 *   recv() returns at least every slice and the loop re-checks the
 *   deadline; with less than a slice left, ppoll() waits the exact rest.
 */
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "bc_log.h"
#include "proto.h"
#include "bc_time.h"

#define CONN_RBUF_INIT  16384u
#define CONN_RBUF_KEEP  (256u * 1024u)   /* larger buffers are shrunk when pooled */

static void
ns_to_abs_timespec(uint64_t deadline_ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(deadline_ns / 1000000000ull);
    ts->tv_nsec = (long)(deadline_ns % 1000000000ull);
}

/* ---- nodes ---- */

bc__pool_node_t *
bc__pool_node_new(const char *addr, int max_conns, size_t max_value, bc__io_stats_t *stats,
                  const bc__tls_t *tls)
{
    if (strlen(addr) >= BC__NODE_ADDR_MAX) return NULL;
    bc__pool_node_t *node = calloc(1, sizeof(*node));
    if (node == NULL) return NULL;
    node->max_conns = max_conns > 0 ? max_conns : 1;
    node->state = calloc((size_t)node->max_conns, sizeof(*node->state));
    node->slots = calloc((size_t)node->max_conns, sizeof(*node->slots));
    if (node->state == NULL || node->slots == NULL) {
        free(node->state);
        free(node->slots);
        free(node);
        return NULL;
    }
    for (int i = 0; i < node->max_conns; i++) atomic_init(&node->state[i], BC__SLOT_EMPTY);
    atomic_init(&node->refs, 1);
    atomic_init(&node->waiters, 0);
    memcpy(node->addr, addr, strlen(addr) + 1);
    node->stats = stats;
    node->max_value = max_value;
    node->tls = tls;
    atomic_init(&node->tls_logged_ns, 0);
    pthread_mutex_init(&node->mu, NULL);
    bc_time_cond_init(&node->cv);
    return node;
}

void
bc__pool_node_ref(bc__pool_node_t *node)
{
    atomic_fetch_add_explicit(&node->refs, 1, memory_order_relaxed);
}

static void
conn_close(bc__pool_conn_t *conn)
{
    if (conn->ssl != NULL) {
        /* One try at a close_notify (non-blocking): the node learns the
         * session ended on purpose; it closes on EOF either way. */
        if (conn->fd >= 0 && SSL_is_init_finished(conn->ssl)) (void)SSL_shutdown(conn->ssl);
        SSL_free(conn->ssl);
        ERR_clear_error();
    }
    if (conn->fd >= 0) close(conn->fd);
    free(conn->rbuf);
    free(conn);
}

/*
 * BEHAVIOR: a connection given up in the middle of a request (a timeout, a
 * reply we could not read) is ABORTED, not closed: SO_LINGER 0 makes
 * close() reset it and discard whatever the kernel still holds unsent.
 * With a plain close() the kernel keeps retransmitting a request the
 * network had not delivered -- across a partition, for minutes -- and it
 * may reach the node long after this call reported a timeout: a "zombie
 * write", applied after writes acknowledged since (a stale delete
 * overwriting a newer set).  The reset also tells the node at once.
 */
static void
conn_abort(bc__pool_conn_t *conn)
{
    if (conn->fd >= 0) {
        struct linger lg = {1, 0};
        (void)setsockopt(conn->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    if (conn->ssl != NULL) {
        SSL_free(conn->ssl);        /* no close_notify: the reset says it all */
        conn->ssl = NULL;
        ERR_clear_error();
    }
    conn_close(conn);
}

void
bc__pool_node_unref(bc__pool_node_t *node)
{
    if (node == NULL) return;
    if (atomic_fetch_sub_explicit(&node->refs, 1, memory_order_acq_rel) != 1) return;
    /* Last reference: no call holds it, so no slot is busy or opening. */
    for (int i = 0; i < node->max_conns; i++) {
        if (node->slots[i] != NULL) conn_close(node->slots[i]);
    }
    free(node->state);
    free(node->slots);
    pthread_mutex_destroy(&node->mu);
    pthread_cond_destroy(&node->cv);
    free(node);
}

bc_status_t
bc__pool_addr_split(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon, *hstart = addr, *hend;
    if (addr == NULL) return BC_EINVAL;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':') return BC_EINVAL;
        hstart = addr + 1;
        hend = close;
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL) return BC_EINVAL;
        hend = colon;
        if (memchr(addr, ':', (size_t)(colon - addr)) != NULL) return BC_EINVAL;
    }
    size_t hl = (size_t)(hend - hstart), pl = strlen(colon + 1);
    if (hl == 0 || hl >= hostlen || pl == 0 || pl > 5 || pl >= portlen) return BC_EINVAL;
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9') return BC_EINVAL;
    }
    if (atoi(colon + 1) < 1 || atoi(colon + 1) > 65535) return BC_EINVAL;
    memcpy(host, hstart, hl);
    host[hl] = '\0';
    memcpy(port, colon + 1, pl + 1);
    return BC_OK;
}

/* ---- connecting ---- */

static int
remaining_ms_ceil(uint64_t deadline_ns)
{
    uint64_t now = bc_time_mono_ns();
    if (now >= deadline_ns) return 0;
    uint64_t ms = (deadline_ns - now + 999999ull) / 1000000ull;
    return ms > 60000 ? 60000 : (int)ms;
}

static int
conn_connect_one(const struct addrinfo *ai, uint64_t deadline_ns, bool keep_nonblocking)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            close(fd);
            return -1;
        }
        for (;;) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int ms = remaining_ms_ceil(deadline_ns);
            if (ms == 0) {
                close(fd);
                errno = ETIMEDOUT;
                return -1;
            }
            int r = poll(&pfd, 1, ms);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) continue;  /* re-check the deadline */
            break;
        }
        int err = 0;
        socklen_t elen = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
            close(fd);
            errno = err ? err : EIO;
            return -1;
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (keep_nonblocking) return fd;    /* TLS: see pool.h */
    /* Back to blocking, with slice-long timeouts. */
    struct timeval tv = {.tv_sec = 0, .tv_usec = BC__IO_SLICE_MS * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Waits until fd is ready for events or the deadline: 1 ready, 0 not. */
static int
tls_wait(int fd, short events, uint64_t deadline_ns)
{
    for (;;) {
        uint64_t now = bc_time_mono_ns();
        if (now >= deadline_ns) return 0;
        uint64_t left = deadline_ns - now;
        struct pollfd pfd = {.fd = fd, .events = events};
        struct timespec ts = {.tv_sec = (time_t)(left / 1000000000ull),
                              .tv_nsec = (long)(left % 1000000000ull)};
        int r = ppoll(&pfd, 1, &ts, NULL);
        if (r > 0 || (r < 0 && errno != EINTR)) return 1;  /* the SSL call reports errors */
    }
}

/*
 * After an SSL call returned ret <= 0: BC_EAGAIN when it only wants the
 * socket ready (*events set to what to poll for), otherwise the error:
 * BC_ECLOSED (the peer closed or reset), BC_EIO.
 */
static bc_status_t
tls_status(bc__pool_conn_t *conn, int ret, short *events)
{
    int e = SSL_get_error(conn->ssl, ret);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        *events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        return BC_EAGAIN;
    }
    int sys = errno;
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN) return BC_ECLOSED;
    if (e == SSL_ERROR_SYSCALL) {
        return ret == 0 || sys == EPIPE || sys == ECONNRESET ? BC_ECLOSED : BC_EIO;
    }
    if (e == SSL_ERROR_SSL) log_debug("client: TLS error on a connection to %s", conn->node->addr);
    return BC_EIO;
}

static bc_status_t
conn_tls_handshake(bc__pool_conn_t *conn, const char *host, uint64_t deadline_ns)
{
    bc__pool_node_t *node = conn->node;
    conn->ssl = bc__tls_session(node->tls, conn->fd, host);
    if (conn->ssl == NULL) return BC_EIO;
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(conn->ssl);
        if (r == 1) return BC_OK;
        int e = SSL_get_error(conn->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (tls_wait(conn->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline_ns)) {
                continue;
            }
            ERR_clear_error();
            return BC_ETIMEOUT;
        }
        /* A wrong CA or name fails every attempt alike: say why, but not
         * on every retry of every call. */
        char why[320];
        bc__tls_error(conn->ssl, r, why, sizeof(why));
        uint64_t now = bc_time_mono_ns(), last = atomic_load(&node->tls_logged_ns);
        if ((last == 0 || now - last >= 1000000000ull) &&
            atomic_compare_exchange_strong(&node->tls_logged_ns, &last, now)) {
            log_error("client: TLS handshake with %s failed: %s", node->addr, why);
        }
        return BC_EIO;
    }
}

static bc_status_t
conn_open(bc__pool_node_t *node, uint64_t deadline_ns, bc__pool_conn_t **out)
{
    char host[BC__NODE_ADDR_MAX], port[8];
    if (bc__pool_addr_split(node->addr, host, sizeof(host), port, sizeof(port)) != BC_OK) {
        log_warn("client: node address \"%s\" is not host:port", node->addr);
        return BC_EIO;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        log_warn("client: cannot resolve %s: %s", node->addr, gai_strerror(gai));
        return BC_EIO;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = conn_connect_one(ai, deadline_ns, node->tls != NULL);
        if (fd < 0) err = errno;
        if (bc_time_mono_ns() >= deadline_ns) break;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        log_debug("client: cannot connect to %s: %s", node->addr, strerror(err));
        return err == ETIMEDOUT ? BC_ETIMEOUT : BC_EIO;
    }
    bc__pool_conn_t *conn = calloc(1, sizeof(*conn));
    char *rbuf = malloc(CONN_RBUF_INIT);
    if (conn == NULL || rbuf == NULL) {
        free(conn);
        free(rbuf);
        close(fd);
        return BC_ENOMEM;
    }
    conn->fd = fd;
    conn->node = node;
    conn->rbuf = rbuf;
    conn->rcap = CONN_RBUF_INIT;
    if (node->tls != NULL) {
        bc_status_t st = conn_tls_handshake(conn, host, deadline_ns);
        if (st != BC_OK) {
            conn_close(conn);
            return st;
        }
    }
    conn->last_used_ns = bc_time_mono_ns();
    *out = conn;
    return BC_OK;
}

/* True when an idle connection still looks usable: no EOF, no error, and
 * no unsolicited bytes waiting. */
static bool
conn_idle_ok(bc__pool_conn_t *conn)
{
    char b;
    if (conn->ssl != NULL) {
        /* Records that carry no data (a TLS 1.3 session ticket) are fine;
         * data, an alert or EOF are not. */
        ERR_clear_error();
        int r = SSL_peek(conn->ssl, &b, 1);
        if (r > 0) return false;
        short ev;
        return tls_status(conn, r, &ev) == BC_EAGAIN;
    }
    ssize_t n = recv(conn->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Each thread first tries the slot it used last on this node, then
 * searches from a slot of its own: threads keep their connections. */
static atomic_uint pool_next_hint;
static _Thread_local unsigned pool_hint;
static _Thread_local bool pool_hint_set;

#define POOL_LAST_MAX 4
static _Thread_local struct {
    const bc__pool_node_t *node;    /* compared only, never dereferenced */
    int slot;
} pool_last[POOL_LAST_MAX];
static _Thread_local unsigned pool_last_next;

static int
pool_last_slot(const bc__pool_node_t *node)
{
    for (int i = 0; i < POOL_LAST_MAX; i++) {
        if (pool_last[i].node == node) return pool_last[i].slot;
    }
    return -1;
}

static void
pool_remember(const bc__pool_node_t *node, int slot)
{
    for (int i = 0; i < POOL_LAST_MAX; i++) {
        if (pool_last[i].node == node) {
            pool_last[i].slot = slot;
            return;
        }
    }
    unsigned i = pool_last_next++ % POOL_LAST_MAX;
    pool_last[i].node = node;
    pool_last[i].slot = slot;
}

static unsigned
pool_thread_hint(void)
{
    if (!pool_hint_set) {
        pool_hint = atomic_fetch_add_explicit(&pool_next_hint, 1, memory_order_relaxed);
        pool_hint_set = true;
    }
    return pool_hint;
}

/* Wakes one caller waiting for a slot, if any. */
static void
pool_signal(bc__pool_node_t *node)
{
    if (atomic_load(&node->waiters) > 0) {
        pthread_mutex_lock(&node->mu);
        pthread_cond_signal(&node->cv);
        pthread_mutex_unlock(&node->mu);
    }
}

/* Gives slot s up entirely (its connection, if any, already closed). */
static void
pool_slot_empty(bc__pool_node_t *node, int s)
{
    node->slots[s] = NULL;
    atomic_store(&node->state[s], BC__SLOT_EMPTY);
    pool_signal(node);
}

/* True when some slot is idle or empty (worth another try). */
static bool
pool_has_room(bc__pool_node_t *node)
{
    for (int i = 0; i < node->max_conns; i++) {
        int st = atomic_load(&node->state[i]);
        if (st == BC__SLOT_IDLE || st == BC__SLOT_EMPTY) return true;
    }
    return false;
}

bc_status_t
bc__pool_conn_get(bc__pool_node_t *node, uint64_t deadline_ns, bool wait, bc__pool_conn_t **out,
                  bool *reused)
{
    const int n = node->max_conns;
    const int last = pool_last_slot(node);
    const unsigned hint = pool_thread_hint();
    *out = NULL;
    *reused = false;
    for (;;) {
        /* An idle connection: the one this thread used last, else any,
         * starting from this thread's own slot. */
        for (int k = last >= 0 && last < n ? -1 : 0; k < n; k++) {
            int s = k < 0 ? last : (int)((hint + (unsigned)k) % (unsigned)n);
            int expect = BC__SLOT_IDLE;
            if (atomic_load_explicit(&node->state[s], memory_order_relaxed) != BC__SLOT_IDLE ||
                !atomic_compare_exchange_strong(&node->state[s], &expect, BC__SLOT_BUSY)) {
                continue;
            }
            bc__pool_conn_t *conn = node->slots[s];
            if (bc_time_mono_ns() - conn->last_used_ns >= BC__IDLE_CHECK_NS &&
                !conn_idle_ok(conn)) {
                atomic_fetch_add_explicit(&node->stats->conn_drops, 1, memory_order_relaxed);
                conn_close(conn);
                pool_slot_empty(node, s);
                continue;
            }
            if (s != last) pool_remember(node, s);
            *out = conn;
            *reused = true;
            return BC_OK;
        }
        /* An empty slot: open a new connection in it. */
        for (int k = 0; k < n; k++) {
            int s = (int)((hint + (unsigned)k) % (unsigned)n);
            int expect = BC__SLOT_EMPTY;
            if (atomic_load_explicit(&node->state[s], memory_order_relaxed) != BC__SLOT_EMPTY ||
                !atomic_compare_exchange_strong(&node->state[s], &expect, BC__SLOT_OPENING)) {
                continue;
            }
            bc__pool_conn_t *conn = NULL;
            bc_status_t st = conn_open(node, deadline_ns, &conn);
            atomic_fetch_add_explicit(st == BC_OK ? &node->stats->connects
                                                  : &node->stats->connect_errors,
                                      1, memory_order_relaxed);
            if (st != BC_OK) {
                pool_slot_empty(node, s);
                return st;
            }
            conn->slot = s;
            node->slots[s] = conn;
            atomic_store(&node->state[s], BC__SLOT_BUSY);
            pool_remember(node, s);
            *out = conn;
            return BC_OK;
        }
        /* Every slot is busy: wait for one to come back. */
        if (!wait) return BC_EBUSY;
        if (bc_time_mono_ns() >= deadline_ns) return BC_ETIMEOUT;
        struct timespec ts;
        ns_to_abs_timespec(deadline_ns, &ts);
        pthread_mutex_lock(&node->mu);
        atomic_fetch_add(&node->waiters, 1);
        if (!pool_has_room(node)) pthread_cond_timedwait(&node->cv, &node->mu, &ts);
        atomic_fetch_sub(&node->waiters, 1);
        pthread_mutex_unlock(&node->mu);
    }
}

void
bc__pool_conn_put(bc__pool_conn_t *conn, bool healthy)
{
    bc__pool_node_t *node = conn->node;
    int s = conn->slot;
    if (healthy && conn->rstart == conn->rend) {
        conn->rstart = conn->rend = 0;
        if (conn->rcap > CONN_RBUF_KEEP) {
            char *small = realloc(conn->rbuf, CONN_RBUF_INIT);
            if (small != NULL) {
                conn->rbuf = small;
                conn->rcap = CONN_RBUF_INIT;
            }
        }
        conn->last_used_ns = bc_time_mono_ns();
        atomic_store(&node->state[s], BC__SLOT_IDLE);
        pool_signal(node);
        return;
    }
    atomic_fetch_add_explicit(&node->stats->conn_drops, 1, memory_order_relaxed);
    conn_abort(conn);
    pool_slot_empty(node, s);
}

/* ---- I/O ---- */

/*
 * Waits until fd is ready for events or the deadline; returns 1 ready, 0
 * deadline passed, -1 when there is more than a slice left (the caller
 * should simply block in the syscall).
 */
static int
io_wait(int fd, short events, uint64_t deadline_ns, int *flags)
{
    *flags = 0;
    for (;;) {
        uint64_t now = bc_time_mono_ns();
        if (now >= deadline_ns) return 0;
        uint64_t left = deadline_ns - now;
        if (left >= (uint64_t)BC__IO_SLICE_MS * 1000000ull) return -1;
        struct pollfd pfd = {.fd = fd, .events = events};
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)left};
        int r = ppoll(&pfd, 1, &ts, NULL);
        if (r > 0) {
            *flags = MSG_DONTWAIT;
            return 1;
        }
        if (r < 0 && errno != EINTR) return 1;  /* let the syscall report it */
    }
}

/* SSL_write of all of buf, waiting as OpenSSL asks until the deadline. */
static bc_status_t
tls_write_all(bc__pool_conn_t *conn, const char *buf, size_t len, uint64_t deadline_ns,
              size_t *total, size_t *sent)
{
    size_t off = 0;
    while (off < len) {
        size_t chunk = len - off > INT32_MAX ? INT32_MAX : len - off;
        ERR_clear_error();
        int n = SSL_write(conn->ssl, buf + off, (int)chunk);
        if (n > 0) {
            off += (size_t)n;
            *total += (size_t)n;
            if (sent != NULL) *sent = *total;
            continue;
        }
        short ev;
        bc_status_t st = tls_status(conn, n, &ev);
        if (st != BC_EAGAIN) return st;
        if (!tls_wait(conn->fd, ev, deadline_ns)) return BC_ETIMEOUT;
    }
    return BC_OK;
}

/* Small requests (the usual case) go out as one record. */
#define TLS_COALESCE 4096

static bc_status_t
tls_send(bc__pool_conn_t *conn, const struct iovec *iov, int iovcnt, uint64_t deadline_ns,
         size_t *sent)
{
    size_t total = 0, all = 0;
    for (int i = 0; i < iovcnt; i++) all += iov[i].iov_len;
    if (all <= TLS_COALESCE) {
        char buf[TLS_COALESCE];
        size_t at = 0;
        for (int i = 0; i < iovcnt; i++) {
            if (iov[i].iov_len > 0) memcpy(buf + at, iov[i].iov_base, iov[i].iov_len);
            at += iov[i].iov_len;
        }
        return tls_write_all(conn, buf, at, deadline_ns, &total, sent);
    }
    for (int i = 0; i < iovcnt; i++) {
        bc_status_t st = tls_write_all(conn, iov[i].iov_base, iov[i].iov_len, deadline_ns, &total,
                                       sent);
        if (st != BC_OK) return st;
    }
    return BC_OK;
}

bc_status_t
bc__pool_conn_send(bc__pool_conn_t *conn, const struct iovec *iov_in, int iovcnt,
                   uint64_t deadline_ns, size_t *sent)
{
    struct iovec iov[8];
    size_t total = 0;
    if (iovcnt > 8) return BC_EINVAL;
    memcpy(iov, iov_in, sizeof(iov[0]) * (size_t)iovcnt);
    if (sent != NULL) *sent = 0;
    if (conn->ssl != NULL) return tls_send(conn, iov, iovcnt, deadline_ns, sent);
    int first = 0;
    while (first < iovcnt) {
        if (iov[first].iov_len == 0) {
            first++;
            continue;
        }
        int flags;
        int w = io_wait(conn->fd, POLLOUT, deadline_ns, &flags);
        if (w == 0) return BC_ETIMEOUT;
        struct msghdr msg;
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = iov + first;
        msg.msg_iovlen = (size_t)(iovcnt - first);
        ssize_t n = sendmsg(conn->fd, &msg, flags | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            return (errno == EPIPE || errno == ECONNRESET) ? BC_ECLOSED : BC_EIO;
        }
        total += (size_t)n;
        if (sent != NULL) *sent = total;
        size_t left = (size_t)n;
        while (first < iovcnt && left >= iov[first].iov_len) {
            left -= iov[first].iov_len;
            first++;
        }
        if (first < iovcnt) {
            iov[first].iov_base = (char *)iov[first].iov_base + left;
            iov[first].iov_len -= left;
        }
    }
    return BC_OK;
}

/* Makes room for at least `want` bytes from rstart (want > buffered). */
static bc_status_t
conn_reserve(bc__pool_conn_t *conn, size_t want)
{
    size_t have = conn->rend - conn->rstart;
    if (conn->rcap - conn->rstart >= want && conn->rend < conn->rcap) return BC_OK;
    if (conn->rstart > 0) {
        memmove(conn->rbuf, conn->rbuf + conn->rstart, have);
        conn->rstart = 0;
        conn->rend = have;
    }
    if (conn->rcap >= want && conn->rend < conn->rcap) return BC_OK;
    size_t cap = conn->rcap * 2;
    if (cap < want) cap = want;
    char *grown = realloc(conn->rbuf, cap);
    if (grown == NULL) return BC_ENOMEM;
    conn->rbuf = grown;
    conn->rcap = cap;
    return BC_OK;
}

bc_status_t
bc__pool_conn_parse_buffered(bc__pool_conn_t *conn, bc_mc_reply_t *reply)
{
    const char *buf = conn->rbuf + conn->rstart;
    size_t len = conn->rend - conn->rstart, need = 0, consumed = 0;
    if (len == 0) return conn_reserve(conn, 1) == BC_OK ? BC_EAGAIN : BC_ENOMEM;
    bc_status_t st = bc__proto_reply_need(buf, len, conn->node->max_value, &need);
    if (st != BC_OK) return st;
    st = bc_mc_reply_parse(buf, len, reply, &consumed);
    if (st == BC_OK) {
        conn->rstart += consumed;
        if (conn->rstart == conn->rend) conn->rstart = conn->rend = 0;
        return BC_OK;
    }
    if (st != BC_EAGAIN) return st;
    if (conn_reserve(conn, need > len ? need : len + 1) != BC_OK) return BC_ENOMEM;
    return BC_EAGAIN;
}

/* One SSL_read into the buffer; then what OpenSSL still holds decrypted
 * (the rest of a record), growing the buffer for it. */
static bc_status_t
tls_recv(bc__pool_conn_t *conn, short *events)
{
    bool got = false;
    for (;;) {
        if (conn->rend == conn->rcap &&
            conn_reserve(conn, conn->rend - conn->rstart + 1) != BC_OK) {
            return BC_ENOMEM;
        }
        size_t room = conn->rcap - conn->rend;
        ERR_clear_error();
        int n = SSL_read(conn->ssl, conn->rbuf + conn->rend, room > INT32_MAX ? INT32_MAX
                                                                               : (int)room);
        if (n > 0) {
            conn->rend += (size_t)n;
            got = true;
            if (SSL_pending(conn->ssl) > 0) continue;
            return BC_OK;
        }
        bc_status_t st = tls_status(conn, n, events);
        if (got && st == BC_EAGAIN) return BC_OK;
        return st;
    }
}

static bc_status_t
conn_recv(bc__pool_conn_t *conn, int flags)
{
    ssize_t n = recv(conn->fd, conn->rbuf + conn->rend, conn->rcap - conn->rend, flags);
    if (n > 0) {
        conn->rend += (size_t)n;
        return BC_OK;
    }
    if (n == 0) return BC_ECLOSED;
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) return BC_EAGAIN;
    return errno == ECONNRESET ? BC_ECLOSED : BC_EIO;
}

bc_status_t
bc__pool_conn_recv_some(bc__pool_conn_t *conn)
{
    if (conn->rend == conn->rcap && conn_reserve(conn, conn->rend - conn->rstart + 1) != BC_OK) {
        return BC_ENOMEM;
    }
    if (conn->ssl != NULL) {
        short ev;
        return tls_recv(conn, &ev);
    }
    return conn_recv(conn, MSG_DONTWAIT);
}

ssize_t
bc__pool_conn_send_some(bc__pool_conn_t *conn, const char *buf, size_t len)
{
    if (conn->ssl != NULL) {
        ERR_clear_error();
        int n = SSL_write(conn->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
        if (n > 0) return n;
        short ev;
        return tls_status(conn, n, &ev) == BC_EAGAIN ? 0 : -1;
    }
    ssize_t n = send(conn->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) return n;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
}

bc_status_t
bc__pool_conn_read_reply(bc__pool_conn_t *conn, uint64_t deadline_ns, bc_mc_reply_t *reply)
{
    for (;;) {
        bc_status_t st = bc__pool_conn_parse_buffered(conn, reply);
        if (st != BC_EAGAIN) return st;
        while (conn->ssl != NULL) {
            short ev;
            st = tls_recv(conn, &ev);
            if (st == BC_OK) break;
            if (st != BC_EAGAIN) return st;
            if (!tls_wait(conn->fd, ev, deadline_ns)) return BC_ETIMEOUT;
        }
        if (conn->ssl != NULL) continue;
        for (;;) {
            int flags;
            int w = io_wait(conn->fd, POLLIN, deadline_ns, &flags);
            if (w == 0) return BC_ETIMEOUT;
            st = conn_recv(conn, flags);
            if (st == BC_OK) break;
            if (st != BC_EAGAIN) return st;
        }
    }
}
