/*
 * forward.c -- the forwarding module; see forward.h for the flow.
 *
 * DATA STRUCTURES (all owned by one worker thread)
 *
 *   bc_fwd_t
 *     peers --> fwd_peer_t <-> fwd_peer_t <-> ...   the pool (open or connecting)
 *     dead  --> fwd_peer_t -> ...                   closed in this batch, freed
 *                                                   in bc_fwd_before_poll
 *     dirty --> fwd_peer_t -> ...                   open, with requests submitted
 *                                                   this iteration, written in
 *                                                   bc_fwd_before_poll
 *     done  --> bc_fwd_req_t -> ...                 finished, completion not yet
 *                                                   called
 *     posts --> bc_fwd_post_t <-> ...               hooks to run after the
 *                                                   completions (bc_fwd_post)
 *
 *   fwd_peer_t (one TCP connection to one owner primary)
 *     wq:   handshake, request bytes, ...   write queue, sent with sendmsg
 *     FIFO: req -> req -> req               in flight, oldest first; replies
 *                                           arrive in this order
 *     rbuf: [rpos .. rlen)                  the head request's reply so far,
 *                                           `scan` bytes of it parsed
 *
 *   The write queue is separate from the FIFO because a reply may arrive
 *   before its request is fully written (a node refuses a too-large value
 *   at once and swallows the rest): the request completes, its remaining
 *   bytes still go out.
 *
 * COMPLETIONS ARE DEFERRED
 *   A completion runs the client connection's next commands, which may
 *   submit new requests -- possibly to the very connection being read.  So
 *   nothing calls a completion while a peer is half-updated: finished
 *   requests go on the done list, and fwd_deliver() calls their completions
 *   at the end of each peer event and timer tick, when every peer is
 *   consistent.  bc_fwd_submit never delivers, nor does bc_fwd_before_poll
 *   (a request failed inside them, e.g. by a write error, is delivered from
 *   a timer set to fire at once).  After the completions, the hooks they
 *   posted run, each once (a client connection sends its replies once,
 *   however many of its requests completed together).
 *
 * TLS
 *   With cfg.tls a connection is PEER_CONNECTING until its TCP connect and
 *   then its TLS handshake are done (tls_want says which direction the
 *   handshake waits for); only then is the write queue sent.  OpenSSL
 *   takes one buffer per call, so each chunk goes with its own SSL_write
 *   (partial writes on; a retry passes the same bytes, at the same
 *   place).  A read takes what OpenSSL holds decrypted as well: epoll
 *   cannot see those bytes.  All on the worker thread, like the rest.
 *
 * THE TIMER
 *   The worker loop's single timeout is ours.  Invariant: while any peer
 *   exists, it is armed no later than the earliest event -- the oldest
 *   request's deadline of a busy peer (all requests share one timeout, so
 *   the FIFO head is the earliest) or the idle expiry of an idle one.
 *   Each tick scans the pool (at most max_conns entries) and re-arms.
 */
#include "proto/forward.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "bc_log.h"
#include "bc_mcmeta.h"
#include "bc_mcproto.h"
#include "bc_peerauth.h"
#include "bc_time.h"
#include "bc_wire.h"

#define RBUF_MIN        (16u * 1024u)
#define RBUF_KEEP       (64u * 1024u)   /* larger idle read buffers are freed */
#define WRITE_IOV       64
#define READS_PER_EVENT 8               /* fairness with client connections */

typedef enum peer_state {
    PEER_CONNECTING,
    PEER_OPEN,
    PEER_CLOSED,
} peer_state_t;

/* A run of bytes to send: a request's (embedded in it), or the handshake
 * (malloc'd alone). */
typedef struct fwd_chunk {
    struct fwd_chunk *next;
    char *buf;                     /* malloc'd */
    size_t len;
    size_t off;                    /* bytes already sent */
    struct bc_fwd_req *req;        /* the request these bytes are (NULL: the handshake) */
} fwd_chunk_t;

struct bc_fwd_req {
    bc_fwd_req_t *next;            /* in a peer's FIFO, or in the done list */
    bc_fwd_reply_kind_t kind;
    uint64_t deadline_ms;
    bc_fwd_done_fn done;           /* NULL once cancelled */
    void *arg;
    uint32_t tag;
    bc_status_t st;                /* result, once finished */
    bool sent;                     /* all its bytes went out: the owner may apply it */
    bool queued;                   /* chunk is in a write queue */
    bool finished;                 /* delivered while queued: freed when dequeued */
    bool keep;                     /* bc_fwd_keep: its bytes outlive their write */
    fwd_chunk_t chunk;             /* its bytes */
    char *kept;                    /* keep: the bytes, once written (owned) */
    size_t kept_len;
    char *reply;
    size_t rlen;
};

typedef struct fwd_peer {
    bc_el_io_t io;                 /* io.data is the peer */
    bc_fwd_t *fwd;
    struct fwd_peer *prev, *next;  /* pool, or the dead list (next only) */
    struct fwd_peer *dirty_next;   /* the dirty list, while `dirty` */
    bool dirty;                    /* requests submitted, not yet written */
    uint32_t slot;                 /* affinity % conns_per_peer it serves */
    int fd;
    peer_state_t state;
    SSL *ssl;                      /* cfg.tls: the session; NULL: plain */
    bool tls_done;                 /* the TLS handshake finished */
    uint32_t tls_want;             /* the handshake waits for BC_EL_READ or _WRITE */
    bool greeted;                  /* the handshake answer was read */
    /* With a cluster secret (forward.h, ONE HOP): requests wait in the
     * write queue until the owner proved itself and our proof is queued
     * ahead of them. */
    bool hold;                     /* only the handshake may be written */
    bool challenged;               /* the owner's challenge checked, our proof queued */
    char hs_line[BC_WIRE_HANDSHAKE_MAX]; /* our handshake line, without its CRLF */
    fwd_chunk_t *wq_head, *wq_tail;
    bc_fwd_req_t *head, *tail;     /* FIFO of requests in flight */
    uint32_t inflight;
    char *rbuf;
    size_t rcap, rlen, rpos, scan;
    uint64_t idle_since;           /* ms; meaningful when inflight == 0 */
    char addr[BC_ADDR_MAX];
} fwd_peer_t;

struct bc_fwd {
    bc_fwd_config_t cfg;
    bc_el_t *el;                   /* borrowed */
    bc_node_cluster_t *cluster;    /* borrowed */
    uint64_t route_gen;            /* the cluster's routing generation last seen */
    bc_thread_stats_t *stats;      /* borrowed; this thread writes it */
    bc_node_primaries_t prim;      /* this worker's copy of the primaries */
    fwd_peer_t *peers;
    uint32_t npeers;
    fwd_peer_t *dead;
    fwd_peer_t *dirty;
    bc_fwd_req_t *done_head, *done_tail;
    bc_fwd_post_t *posts;          /* doubly linked; run after delivering */
    bc_fwd_post_t *timed;          /* doubly linked; bc_fwd_post_at, not yet due */
    uint64_t post_seq;
    bool delivering;
    uint64_t timer_at;             /* ms the loop timeout is set for; 0 = none */
    uint64_t tls_logged_ms;        /* a failed TLS handshake logged last (once a second) */
};

static void peer_on_io(bc_el_t *el, bc_el_io_t *io, uint32_t events);
static void req_free(bc_fwd_req_t *r);

static uint64_t
now_ms(void)
{
    return (uint64_t)bc_time_mono_ms();
}

/* ------------------------------------------------------------------------ */
/* completions and the timer                                                */
/* ------------------------------------------------------------------------ */

static void
done_push(bc_fwd_t *fwd, bc_fwd_req_t *r)
{
    r->next = NULL;
    if (fwd->done_tail != NULL) fwd->done_tail->next = r;
    else fwd->done_head = r;
    fwd->done_tail = r;
}

/* Calls the completions of finished requests; see "COMPLETIONS ARE
 * DEFERRED".  A completion may submit or cancel: the loop re-reads the
 * list head each time, and a nested call returns at once. */
static void
fwd_deliver(bc_fwd_t *fwd)
{
    if (fwd->delivering) return;
    fwd->delivering = true;
    while (fwd->done_head != NULL) {
        bc_fwd_req_t *r = fwd->done_head;
        fwd->done_head = r->next;
        if (fwd->done_head == NULL) fwd->done_tail = NULL;
        if (r->done != NULL) {
            char *reply = r->reply;      /* the callee's from now on */
            r->reply = NULL;
            r->done(r->arg, r->tag, r->st, reply, r->rlen);
        }
        req_free(r);
    }
    /* The hooks the completions posted; one may post again (it then runs
     * in this loop too) or cancel another. */
    while (fwd->posts != NULL) {
        bc_fwd_post_t *p = fwd->posts;
        bc_fwd_post_cancel(fwd, p);
        p->fn(p->arg);
    }
    fwd->delivering = false;
}

void
bc_fwd_post(bc_fwd_t *fwd, bc_fwd_post_t *post)
{
    if (post->queued && post->timed) bc_fwd_post_cancel(fwd, post);
    if (post->queued) return;
    post->queued = true;
    post->prev = NULL;
    post->next = fwd->posts;
    if (fwd->posts != NULL) fwd->posts->prev = post;
    fwd->posts = post;
}

void
bc_fwd_post_cancel(bc_fwd_t *fwd, bc_fwd_post_t *post)
{
    if (fwd == NULL || post == NULL || !post->queued) return;
    bc_fwd_post_t **head = post->timed ? &fwd->timed : &fwd->posts;
    if (post->prev != NULL) post->prev->next = post->next;
    else *head = post->next;
    if (post->next != NULL) post->next->prev = post->prev;
    post->prev = post->next = NULL;
    post->queued = false;
    post->timed = false;
}

static void fwd_arm(bc_fwd_t *fwd, uint64_t at);

void
bc_fwd_post_at(bc_fwd_t *fwd, bc_fwd_post_t *post, uint64_t at_ms)
{
    bc_fwd_post_cancel(fwd, post);
    post->queued = true;
    post->timed = true;
    post->at_ms = at_ms;
    post->seq = ++fwd->post_seq;
    post->prev = NULL;
    post->next = fwd->timed;
    if (fwd->timed != NULL) fwd->timed->prev = post;
    fwd->timed = post;
    fwd_arm(fwd, at_ms);
}

/* Runs the timed posts that are due, earliest first (then in the order
 * they were queued); returns when the earliest of the others is due (0:
 * none).  A post may queue or cancel any other: the list is scanned
 * afresh after each. */
static uint64_t
fwd_run_timed(bc_fwd_t *fwd, uint64_t now)
{
    for (;;) {
        bc_fwd_post_t *best = NULL;
        uint64_t next = 0;
        for (bc_fwd_post_t *p = fwd->timed; p != NULL; p = p->next) {
            if (p->at_ms > now) {
                if (next == 0 || p->at_ms < next) next = p->at_ms;
            } else if (best == NULL || p->at_ms < best->at_ms ||
                       (p->at_ms == best->at_ms && p->seq < best->seq)) {
                best = p;
            }
        }
        if (best == NULL) return next;
        bc_fwd_post_cancel(fwd, best);
        best->fn(best->arg);
    }
}

static void fwd_on_timer(bc_el_t *el, void *arg);

/* Makes the timer fire at `at` (ms) or earlier. */
static void
fwd_arm(bc_fwd_t *fwd, uint64_t at)
{
    if (fwd->timer_at != 0 && fwd->timer_at <= at) return;
    uint64_t now = now_ms();
    fwd->timer_at = at > 0 ? at : 1;
    bc_el_set_timeout(fwd->el, at > now ? (uint32_t)(at - now) : 0, fwd_on_timer, fwd);
}

/* ------------------------------------------------------------------------ */
/* one peer connection                                                      */
/* ------------------------------------------------------------------------ */

static bool
peer_has_output(const fwd_peer_t *p)
{
    return p->wq_head != NULL && !(p->hold && p->wq_head->req != NULL);
}

/* Requests (or our proof) to write in bc_fwd_before_poll. */
static void
peer_mark_dirty(fwd_peer_t *p)
{
    if (p->dirty) return;
    p->dirty = true;
    p->dirty_next = p->fwd->dirty;
    p->fwd->dirty = p;
}

/* c leaves the write queue: its bytes are freed, and its struct -- the
 * handshake's, or a request's whose completion was delivered meanwhile. */
static void
chunk_dequeued(fwd_chunk_t *c)
{
    if (c->req != NULL && c->req->keep && !c->req->finished && c->req->kept == NULL) {
        c->req->kept = c->buf;         /* bc_fwd_take_request hands them back */
        c->req->kept_len = c->len;
    } else {
        free(c->buf);
    }
    c->buf = NULL;
    if (c->req == NULL) {
        free(c);
        return;
    }
    c->req->queued = false;
    if (c->req->finished) free(c->req);
}

/* A finished request's struct goes, unless its bytes are still queued (a
 * reply may come before the whole request went out). */
static void
req_free(bc_fwd_req_t *r)
{
    free(r->reply);
    r->reply = NULL;
    free(r->kept);
    r->kept = NULL;
    if (r->queued) r->finished = true;
    else free(r);
}

static void
peer_free_buffers(fwd_peer_t *p)
{
    while (p->wq_head != NULL) {
        fwd_chunk_t *c = p->wq_head;
        p->wq_head = c->next;
        chunk_dequeued(c);
    }
    p->wq_tail = NULL;
    free(p->rbuf);
    p->rbuf = NULL;
    p->rcap = p->rlen = p->rpos = p->scan = 0;
}

/*
 * Closes the connection and finishes every request in flight on it: the
 * oldest with `head_st`, the others with `rest_st` (they were cut off
 * with it).  BEHAVIOR: whether a request is in doubt decides its status,
 * whatever broke: one whose bytes never all went out cannot have been
 * applied (BC_EIO: the client may send it again), one that went out may
 * have been (BC_ECLOSED, or BC_ETIMEOUT / a bad reply as the failure
 * says).  The struct waits on the dead list (the current epoll batch may
 * hold its pointer).
 */
static void
peer_close(fwd_peer_t *p, bc_status_t head_st, bc_status_t rest_st, const char *why)
{
    bc_fwd_t *fwd = p->fwd;

    if (p->state == PEER_CLOSED) return;
    if (p->inflight > 0) {
        log_warn("forward: connection to %s dropped (%s); %u request%s in flight failed",
                 p->addr, why, p->inflight, p->inflight == 1 ? "" : "s");
    } else {
        log_debug("forward: connection to %s closed (%s)", p->addr, why);
    }
    p->state = PEER_CLOSED;
    bc_el_io_stop(fwd->el, &p->io);
    close(p->fd);
    p->fd = -1;
    bool first = true;
    while (p->head != NULL) {
        bc_fwd_req_t *r = p->head;
        p->head = r->next;
        r->st = first ? head_st : rest_st;
        first = false;
        /* A failed handshake sent nothing (requests wait for it). */
        if (head_st == BC_EACCES) r->st = BC_EACCES;
        else if (!r->sent) r->st = BC_EIO;
        else if (r->st == BC_EIO) r->st = BC_ECLOSED;
        if (r->st == BC_ETIMEOUT) bc_stats_incr(fwd->stats, forward_timeouts);
        else bc_stats_incr(fwd->stats, forward_errors);
        done_push(fwd, r);
    }
    p->tail = NULL;
    p->inflight = 0;
    peer_free_buffers(p);

    if (p->prev != NULL) p->prev->next = p->next;
    else fwd->peers = p->next;
    if (p->next != NULL) p->next->prev = p->prev;
    fwd->npeers--;
    p->prev = NULL;
    p->next = fwd->dead;
    fwd->dead = p;
}

static void
peer_update_events(fwd_peer_t *p)
{
    uint32_t ev;
    if (p->state == PEER_CLOSED) return;
    if (p->state == PEER_CONNECTING) ev = BC_EL_WRITE;
    else if (p->ssl != NULL && !p->tls_done) ev = p->tls_want;
    else ev = BC_EL_READ | (peer_has_output(p) ? BC_EL_WRITE : 0u);
    if (bc_el_io_set(p->fwd->el, &p->io, ev) != BC_OK) {
        peer_close(p, BC_EIO, BC_EIO, "cannot watch the socket");
    }
}

/* Sends what the write queue holds until the socket is full.  Errors:
 * BC_EIO (the connection is broken; the caller closes it). */
static bc_status_t
peer_write(fwd_peer_t *p)
{
    while (p->ssl != NULL && p->wq_head != NULL) {
        fwd_chunk_t *c = p->wq_head;
        if (p->hold && c->req != NULL) break;        /* not before the owner proved itself */
        size_t rest = c->len - c->off;
        ERR_clear_error();
        int w = SSL_write(p->ssl, c->buf + c->off, rest > INT32_MAX ? INT32_MAX : (int)rest);
        if (w <= 0) {
            int e = SSL_get_error(p->ssl, w);
            ERR_clear_error();
            if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) break;
            log_debug("forward: TLS send to %s failed (%d)", p->addr, e);
            return BC_EIO;
        }
        c->off += (size_t)w;
        if (c->off < c->len) continue;
        if (c->req != NULL) c->req->sent = true;
        p->wq_head = c->next;
        if (p->wq_head == NULL) p->wq_tail = NULL;
        chunk_dequeued(c);
    }
    while (p->ssl == NULL && p->wq_head != NULL) {
        struct iovec iov[WRITE_IOV];
        struct msghdr msg;
        int n = 0;
        for (fwd_chunk_t *c = p->wq_head; c != NULL && n < WRITE_IOV; c = c->next) {
            if (p->hold && c->req != NULL) break;    /* not before the owner proved itself */
            iov[n].iov_base = c->buf + c->off;
            iov[n].iov_len = c->len - c->off;
            n++;
        }
        if (n == 0) break;
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)n;
        ssize_t w = sendmsg(p->fd, &msg, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            log_debug("forward: send to %s failed: %s", p->addr, strerror(errno));
            return BC_EIO;
        }
        size_t left = (size_t)w;
        while (left > 0 && p->wq_head != NULL) {
            fwd_chunk_t *c = p->wq_head;
            size_t rest = c->len - c->off;
            if (left < rest) {
                c->off += left;
                break;
            }
            left -= rest;
            if (c->req != NULL) c->req->sent = true;
            p->wq_head = c->next;
            if (p->wq_head == NULL) p->wq_tail = NULL;
            chunk_dequeued(c);
        }
    }
    return BC_OK;
}

/* The head request's reply is rbuf[rpos .. rpos+n): hand it over. */
static void
peer_complete(fwd_peer_t *p, size_t n)
{
    bc_fwd_t *fwd = p->fwd;
    bc_fwd_req_t *r = p->head;

    p->head = r->next;
    if (p->head == NULL) p->tail = NULL;
    p->inflight--;
    r->st = BC_OK;
    if (r->done != NULL) {
        r->reply = malloc(n > 0 ? n : 1);
        if (r->reply == NULL) {
            r->st = BC_ENOMEM;
            bc_stats_incr(fwd->stats, forward_errors);
        } else {
            memcpy(r->reply, p->rbuf + p->rpos, n);
            r->rlen = n;
        }
    }
    done_push(fwd, r);
    p->rpos += n;
    p->scan = 0;
    if (p->inflight == 0) p->idle_since = now_ms();
}

/* Is this a reply that ends a one-line request? */
static bool
reply_is_line(bc_mc_reply_kind_t k)
{
    switch (k) {
    case BC_MC_REPLY_STORED:
    case BC_MC_REPLY_NOT_STORED:
    case BC_MC_REPLY_EXISTS:
    case BC_MC_REPLY_NOT_FOUND:
    case BC_MC_REPLY_DELETED:
    case BC_MC_REPLY_TOUCHED:
    case BC_MC_REPLY_OK:
    case BC_MC_REPLY_NUMBER:
    case BC_MC_REPLY_ERROR:
    case BC_MC_REPLY_CLIENT_ERROR:
    case BC_MC_REPLY_SERVER_ERROR:
        return true;
    default:
        return false;
    }
}

static bool
reply_is_error(bc_mc_reply_kind_t k)
{
    return k == BC_MC_REPLY_ERROR || k == BC_MC_REPLY_CLIENT_ERROR ||
           k == BC_MC_REPLY_SERVER_ERROR;
}

/*
 * End finders, one per reply kind (forward.h, "REPLY KINDS").  b[0..n) is
 * what has arrived of the head request's reply and what follows it;
 * *scan (0 at the start of each reply) is how far an earlier call already
 * checked, to be kept up to date by the finder.  Returns BC_OK with *used
 * the reply's length, BC_EAGAIN when it is incomplete, BC_EPROTO when the
 * bytes are no reply of this kind.
 */
typedef bc_status_t (*reply_end_fn)(const char *b, size_t n, size_t *scan, size_t *used);

/* LINE: one status line. */
static bc_status_t
reply_end_line(const char *b, size_t n, size_t *scan, size_t *used)
{
    bc_mc_reply_t r;
    (void)scan;
    bc_status_t st = bc_mc_reply_parse(b, n, &r, used);
    if (st == BC_EAGAIN) return st;
    return st == BC_OK && reply_is_line(r.kind) ? BC_OK : BC_EPROTO;
}

/* VALUES: VALUE blocks up to END, or a single error line. */
static bc_status_t
reply_end_values(const char *b, size_t n, size_t *scan, size_t *used)
{
    for (;;) {
        bc_mc_reply_t r;
        size_t k;
        bc_status_t st = bc_mc_reply_parse(b + *scan, n - *scan, &r, &k);
        if (st != BC_OK) return st == BC_EAGAIN ? st : BC_EPROTO;
        if (r.kind == BC_MC_REPLY_VALUE) {
            *scan += k;
            continue;
        }
        if (r.kind == BC_MC_REPLY_END || (reply_is_error(r.kind) && *scan == 0)) {
            *used = *scan + k;
            return BC_OK;
        }
        return BC_EPROTO;
    }
}

/* META: meta reply units (lines, or a VA line and its data block) up to
 * and including "MN": a meta command goes followed by "mn". */
static bc_status_t
reply_end_meta(const char *b, size_t n, size_t *scan, size_t *used)
{
    bool mn = false;
    while (!mn) {
        size_t k = 0;
        bc_status_t st = bc_mc_meta_reply_unit(b + *scan, n - *scan, &k, &mn);
        if (st != BC_OK) return st == BC_EAGAIN ? st : BC_EPROTO;
        *scan += k;
    }
    *used = *scan;
    return BC_OK;
}

static const reply_end_fn REPLY_KINDS[] = {
    [BC_FWD_REPLY_LINE] = reply_end_line,
    [BC_FWD_REPLY_VALUES] = reply_end_values,
    [BC_FWD_REPLY_META] = reply_end_meta,
};
_Static_assert(sizeof(REPLY_KINDS) / sizeof(REPLY_KINDS[0]) == BC_FWD_REPLY__COUNT,
               "every forward.h reply kind needs its end finder in REPLY_KINDS");

/*
 * The owner answered our handshake with something else than we wait for
 * (b[0..n), its first line is shown): says why in the log.  Returns
 * BC_EACCES when it is about the cluster secret (the requests fail with
 * the peer-authentication error), BC_EPROTO otherwise.
 */
static bc_status_t
peer_refused(fwd_peer_t *p, const char *b, size_t n)
{
    const char *nl = memchr(b, '\n', n);
    size_t ll = nl != NULL ? (size_t)(nl - b) : n;
    if (ll > 0 && b[ll - 1] == '\r') ll--;
    if (ll > 200) ll = 200;
    bc_wire_challenge_t c;
    bool secret = p->fwd->cfg.peer_auth != NULL;
    if (ll >= 13 && memcmp(b, "CLIENT_ERROR ", 13) == 0 &&
        bc_wire_peer_auth_parse(b + 13, ll - 13) != BC_WIRE_PEER_AUTH_NONE) {
        log_warn("forward: %s refused our peer handshake: %.*s", p->addr, (int)(ll - 13), b + 13);
    } else if (!secret && bc_wire_challenge_parse(b, ll, &c) != BC_ENOTFOUND) {
        log_warn("forward: %s requires the cluster secret and this node has none "
                 "(--cluster-secret-file)", p->addr);
    } else if (secret && ll == 2 && memcmp(b, "OK", 2) == 0) {
        log_warn("forward: %s did not prove the cluster secret (it answered OK without a "
                 "challenge: started with --insecure-no-peer-auth?); not forwarding to it",
                 p->addr);
    } else {
        log_warn("forward: %s refused the peer handshake (is it a bucketcache node of this "
                 "version?): %.*s", p->addr, (int)ll, b);
        return BC_EPROTO;
    }
    bc_stats_incr(p->fwd->stats, peer_auth_failures);
    return BC_EACCES;
}

/*
 * The owner's answer to our handshake, line[0..n) (n includes the LF):
 * its challenge, whose proof is checked (mutual authentication); then
 * our proof goes out ahead of the requests held.  Errors: BC_EACCES (a
 * refusal, a wrong proof; logged), BC_ENOMEM.
 */
static bc_status_t
peer_on_challenge(fwd_peer_t *p, const char *line, size_t n)
{
    bc_peerauth_t *pa = p->fwd->cfg.peer_auth;
    bc_wire_challenge_t c;
    if (bc_wire_challenge_parse(line, n, &c) != BC_OK) return peer_refused(p, line, n);
    const char *fields[3] = {p->hs_line, c.name, c.nonce};
    if (!bc_peerauth_verify(pa, BC_PEERAUTH_SERVER, fields, 3, c.proof, strlen(c.proof))) {
        log_warn("forward: %s (node %s) failed to prove the cluster secret: wrong proof (is the "
                 "cluster secret the same on every node?); not forwarding to it", p->addr,
                 c.name);
        bc_stats_incr(p->fwd->stats, peer_auth_failures);
        return BC_EACCES;
    }
    char proof[BC_WIRE_PROOF_LEN + 1], out[BC_WIRE_HANDSHAKE_MAX];
    size_t m = 0;
    if (bc_peerauth_prove(pa, BC_PEERAUTH_CLIENT, fields, 3, proof)) {
        m = bc_wire_auth_format(proof, out, sizeof(out));
    }
    if (m == 0) return BC_EACCES;
    fwd_chunk_t *ch = calloc(1, sizeof(*ch));
    char *buf = malloc(m);
    if (ch == NULL || buf == NULL) {
        free(ch);
        free(buf);
        return BC_ENOMEM;
    }
    memcpy(buf, out, m);
    ch->buf = buf;
    ch->len = m;
    /* Ahead of every request: the handshake itself was read by now. */
    ch->next = p->wq_head;
    p->wq_head = ch;
    if (p->wq_tail == NULL) p->wq_tail = ch;
    p->hold = false;
    p->challenged = true;
    peer_mark_dirty(p);
    log_debug("forward: %s (node %s) proved the cluster secret", p->addr, c.name);
    return BC_OK;
}

/*
 * Consumes every complete reply in the read buffer.  Errors: BC_EPROTO
 * (not the reply expected: the stream cannot be trusted any more),
 * BC_ETOOLARGE (a reply beyond max_reply).
 */
static bc_status_t
peer_parse(fwd_peer_t *p)
{
    static const char ok[] = BC_WIRE_PEER_OK;
    const size_t nok = sizeof(ok) - 1;

    while (p->rpos < p->rlen) {
        const char *b = p->rbuf + p->rpos;
        size_t avail = p->rlen - p->rpos, used = 0;

        if (!p->greeted) {
            if (p->fwd->cfg.peer_auth != NULL && !p->challenged) {
                const char *nl = memchr(b, '\n', avail);
                if (nl == NULL) {
                    if (avail >= BC_WIRE_HANDSHAKE_MAX) return peer_refused(p, b, avail);
                    break;
                }
                bc_status_t st = peer_on_challenge(p, b, (size_t)(nl - b) + 1);
                if (st != BC_OK) return st;
                p->rpos += (size_t)(nl - b) + 1;
                continue;
            }
            size_t k = avail < nok ? avail : nok;
            if (memcmp(b, ok, k) != 0) return peer_refused(p, b, avail);
            if (avail < nok) break;
            p->greeted = true;
            p->rpos += nok;
            continue;
        }
        if (p->head == NULL) return BC_EPROTO;        /* bytes nobody asked for */
        bc_fwd_reply_kind_t kind = p->head->kind;
        bc_status_t st = kind < BC_FWD_REPLY__COUNT ? REPLY_KINDS[kind](b, avail, &p->scan, &used)
                                                    : BC_EPROTO;
        if (st == BC_EAGAIN) break;
        if (st != BC_OK) return BC_EPROTO;
        peer_complete(p, used);
    }
    if (p->rlen - p->rpos > p->fwd->cfg.max_reply) return BC_ETOOLARGE;
    if (p->rpos == p->rlen) p->rpos = p->rlen = 0;
    return BC_OK;
}

/* Makes room in the read buffer.  Errors: BC_ETOOLARGE, BC_ENOMEM. */
static bc_status_t
peer_rbuf_prepare(fwd_peer_t *p)
{
    if (p->rbuf == NULL) {
        p->rbuf = malloc(RBUF_MIN);
        if (p->rbuf == NULL) return BC_ENOMEM;
        p->rcap = RBUF_MIN;
        p->rlen = p->rpos = 0;
        return BC_OK;
    }
    if (p->rlen < p->rcap) return BC_OK;
    if (p->rpos > 0) {
        memmove(p->rbuf, p->rbuf + p->rpos, p->rlen - p->rpos);
        p->rlen -= p->rpos;
        p->rpos = 0;
        return BC_OK;
    }
    size_t limit = p->fwd->cfg.max_reply + RBUF_MIN;
    if (p->rcap >= limit) return BC_ETOOLARGE;
    size_t cap = p->rcap * 2 < limit ? p->rcap * 2 : limit;
    char *nb = realloc(p->rbuf, cap);
    if (nb == NULL) return BC_ENOMEM;
    p->rbuf = nb;
    p->rcap = cap;
    return BC_OK;
}

/* Reads and parses.  Errors: BC_ECLOSED (EOF), BC_EIO, and peer_parse's. */
static bc_status_t
peer_read(fwd_peer_t *p)
{
    for (int round = 0; round < READS_PER_EVENT; round++) {
        bc_status_t st = peer_rbuf_prepare(p);
        if (st != BC_OK) return st;
        size_t want = p->rcap - p->rlen;
        if (p->ssl != NULL) {
            ERR_clear_error();
            int n = SSL_read(p->ssl, p->rbuf + p->rlen, want > INT32_MAX ? INT32_MAX : (int)want);
            if (n <= 0) {
                int e = SSL_get_error(p->ssl, n);
                ERR_clear_error();
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
                if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && n == 0)) {
                    return BC_ECLOSED;
                }
                log_debug("forward: TLS read from %s failed (%d)", p->addr, e);
                return BC_EIO;
            }
            p->rlen += (size_t)n;
            st = peer_parse(p);
            if (st != BC_OK) return st;
            /* Decrypted bytes OpenSSL still holds: read them now. */
            if (SSL_pending(p->ssl) > 0) round--;
            continue;
        }
        ssize_t n = read(p->fd, p->rbuf + p->rlen, want);
        if (n == 0) return BC_ECLOSED;
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            log_debug("forward: read from %s failed: %s", p->addr, strerror(errno));
            return BC_EIO;
        }
        p->rlen += (size_t)n;
        st = peer_parse(p);
        if (st != BC_OK) return st;
        if ((size_t)n < want) break;
    }
    /* An idle connection gives a large buffer back. */
    if (p->rlen == 0 && p->rcap > RBUF_KEEP) {
        free(p->rbuf);
        p->rbuf = NULL;
        p->rcap = 0;
    }
    return BC_OK;
}

static const char *
peer_failure_text(bc_status_t st)
{
    switch (st) {
    case BC_ECLOSED: return "closed by the owner";
    case BC_EPROTO: return "malformed reply";
    case BC_ETOOLARGE: return "reply too large";
    case BC_ENOMEM: return "out of memory";
    case BC_EACCES: return "peer authentication failed";
    default: return "i/o error";
    }
}

static void
peer_on_io(bc_el_t *el, bc_el_io_t *io, uint32_t events)
{
    fwd_peer_t *p = io->data;
    bc_fwd_t *fwd = p->fwd;
    bc_status_t st;
    (void)el;

    if (p->state == PEER_CONNECTING) {
        int err = 0;
        socklen_t elen = sizeof(err);
        if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0) err = errno;
        if (err != 0 || (events & BC_EL_ERROR)) {
            char why[160];
            snprintf(why, sizeof(why), "connect: %s", strerror(err != 0 ? err : ECONNREFUSED));
            peer_close(p, BC_EIO, BC_EIO, why);
            goto out;
        }
        if (!(events & (BC_EL_WRITE | BC_EL_HUP))) goto out;
        p->state = PEER_OPEN;
        log_debug("forward: connected to %s", p->addr);
        events |= BC_EL_WRITE;
    }
    if (p->ssl != NULL && !p->tls_done) {
        ERR_clear_error();
        int r = SSL_do_handshake(p->ssl);
        if (r != 1) {
            int e = SSL_get_error(p->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                ERR_clear_error();
                p->tls_want = e == SSL_ERROR_WANT_READ ? BC_EL_READ : BC_EL_WRITE;
                peer_update_events(p);
                goto out;
            }
            char why[300], what[360];
            bc_tls_describe_error(p->ssl, r, why, sizeof(why));
            /* A wrong CA fails every connection alike: say why, not on
             * every request. */
            if (fwd->tls_logged_ms == 0 || now_ms() - fwd->tls_logged_ms >= 1000) {
                fwd->tls_logged_ms = now_ms();
                log_warn("forward: TLS handshake with %s failed: %s", p->addr, why);
            }
            snprintf(what, sizeof(what), "TLS handshake: %s", why);
            peer_close(p, BC_EIO, BC_EIO, what);
            goto out;
        }
        p->tls_done = true;
        events = BC_EL_READ | BC_EL_WRITE;
    }
    if (events & (BC_EL_READ | BC_EL_HUP | BC_EL_ERROR)) {
        st = peer_read(p);
        if (st != BC_OK) {
            peer_close(p, st, BC_ECLOSED, peer_failure_text(st));
            goto out;
        }
    }
    if ((events & BC_EL_WRITE) && peer_has_output(p)) {
        if (peer_write(p) != BC_OK) {
            peer_close(p, BC_EIO, BC_ECLOSED, "send failed");
            goto out;
        }
    }
    peer_update_events(p);
out:
    fwd_deliver(fwd);
}

/* Opens a connection to e's address.  Errors: BC_EIO, BC_ENOMEM. */
static fwd_peer_t *
peer_open(bc_fwd_t *fwd, const bc_node_primary_t *e, bc_status_t *st)
{
    bc_node_cluster_info_t ci;
    char hs[BC_WIRE_HANDSHAKE_MAX];
    fwd_peer_t *p = calloc(1, sizeof(*p));
    fwd_chunk_t *c = calloc(1, sizeof(*c));

    if (p == NULL || c == NULL) {
        free(p);
        free(c);
        *st = BC_ENOMEM;
        return NULL;
    }
    bc_node_cluster_get_info(fwd->cluster, &ci);
    bc_wire_peer_t ph;
    memset(&ph, 0, sizeof(ph));
    snprintf(ph.name, sizeof(ph.name), "%s",
             bc_wire_name_valid(ci.node_name, strlen(ci.node_name)) ? ci.node_name
                                                                    : "unregistered");
    /* With the cluster secret: a nonce, and the owner is challenged. */
    if (fwd->cfg.peer_auth != NULL) bc_peerauth_nonce(ph.nonce);
    size_t n = bc_wire_peer_format(&ph, hs, sizeof(hs));
    c->buf = malloc(n);
    if (c->buf == NULL) {
        free(p);
        free(c);
        *st = BC_ENOMEM;
        return NULL;
    }
    memcpy(c->buf, hs, n);
    c->len = n;
    p->hold = fwd->cfg.peer_auth != NULL;
    snprintf(p->hs_line, sizeof(p->hs_line), "%.*s", (int)(n - 2), hs);   /* without CRLF */

    int fd = socket(e->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = -1;
    if (fd >= 0) {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        rc = connect(fd, (const struct sockaddr *)&e->sa, e->salen);
    }
    if (fd < 0 || (rc != 0 && errno != EINPROGRESS)) {
        log_warn("forward: cannot connect to group %u's primary %s: %s", e->gid, e->addr,
                 strerror(errno));
        if (fd >= 0) close(fd);
        free(c->buf);
        free(c);
        free(p);
        *st = BC_EIO;
        return NULL;
    }
    if (fwd->cfg.tls != NULL && (p->ssl = bc_tls_new_peer_ssl(fwd->cfg.tls, fd)) == NULL) {
        close(fd);
        free(c->buf);
        free(c);
        free(p);
        *st = BC_EIO;
        return NULL;
    }
    p->tls_want = BC_EL_WRITE;
    p->fwd = fwd;
    p->fd = fd;
    p->state = rc == 0 ? PEER_OPEN : PEER_CONNECTING;
    p->wq_head = p->wq_tail = c;
    p->idle_since = now_ms();
    snprintf(p->addr, sizeof(p->addr), "%s", e->addr);
    if (bc_el_io_start(fwd->el, &p->io, fd, p->state == PEER_OPEN ? BC_EL_READ | BC_EL_WRITE
                                                                  : BC_EL_WRITE,
                       peer_on_io, p) != BC_OK) {
        SSL_free(p->ssl);
        close(fd);
        free(c->buf);
        free(c);
        free(p);
        *st = BC_EIO;
        return NULL;
    }
    p->next = fwd->peers;
    if (fwd->peers != NULL) fwd->peers->prev = p;
    fwd->peers = p;
    fwd->npeers++;
    log_debug("forward: connecting to group %u's primary %s", e->gid, e->addr);
    return p;
}

/*
 * The connection to e's address for a request of `affinity`: the pooled
 * one of slot affinity % conns_per_peer (see forward.h, HOW), else a new
 * one for that slot while under max_conns (an idle connection of any
 * address is closed to make room), else the least busy one open to that
 * address.  Errors: BC_EBUSY, BC_EIO, BC_ENOMEM.
 */
static fwd_peer_t *
fwd_pick(bc_fwd_t *fwd, const bc_node_primary_t *e, uint32_t affinity, bc_status_t *st)
{
    fwd_peer_t *best = NULL;
    uint32_t slot = affinity % fwd->cfg.conns_per_peer;

    for (fwd_peer_t *p = fwd->peers; p != NULL; p = p->next) {
        if (strcmp(p->addr, e->addr) != 0) continue;
        if (p->slot == slot) return p;
        if (best == NULL || p->inflight < best->inflight) best = p;
    }
    if (fwd->npeers >= fwd->cfg.max_conns) {
        /* Make room: the least recently used idle connection goes. */
        fwd_peer_t *victim = NULL;
        for (fwd_peer_t *p = fwd->peers; p != NULL; p = p->next) {
            if (p->inflight == 0 && !p->dirty &&
                (victim == NULL || p->idle_since < victim->idle_since))
                victim = p;
        }
        if (victim != NULL && victim != best) peer_close(victim, BC_OK, BC_OK, "pool full");
    }
    if (fwd->npeers < fwd->cfg.max_conns) {
        fwd_peer_t *np = peer_open(fwd, e, st);
        if (np != NULL) {
            np->slot = slot;
            return np;
        }
        if (best == NULL) return NULL;
    }
    if (best != NULL) return best;
    *st = BC_EBUSY;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* timer                                                                    */
/* ------------------------------------------------------------------------ */

static void
fwd_on_timer(bc_el_t *el, void *arg)
{
    bc_fwd_t *fwd = arg;
    uint64_t now = now_ms(), next = 0;
    (void)el;

    fwd->timer_at = 0;
    for (fwd_peer_t *p = fwd->peers, *nx; p != NULL; p = nx) {
        nx = p->next;
        if (p->head != NULL && p->head->deadline_ms <= now) {
            char why[64];
            snprintf(why, sizeof(why), "no reply within %u ms", fwd->cfg.timeout_ms);
            peer_close(p, BC_ETIMEOUT, BC_ECLOSED, why);
        } else if (p->head == NULL && now - p->idle_since >= fwd->cfg.idle_ms) {
            peer_close(p, BC_OK, BC_OK, "idle");
        }
    }
    fwd_deliver(fwd);
    (void)fwd_run_timed(fwd, now);
    fwd_deliver(fwd);              /* what the timed posts posted */
    /* Completions may have opened or closed connections, and queued timed
     * posts: scan afresh. */
    next = fwd_run_timed(fwd, now);
    for (fwd_peer_t *p = fwd->peers; p != NULL; p = p->next) {
        uint64_t at = p->head != NULL ? p->head->deadline_ms : p->idle_since + fwd->cfg.idle_ms;
        if (next == 0 || at < next) next = at;
    }
    if (fwd->posts != NULL) next = now;
    if (fwd->done_head != NULL) next = now;
    if (next != 0) fwd_arm(fwd, next);
}

/* ------------------------------------------------------------------------ */
/* public                                                                   */
/* ------------------------------------------------------------------------ */

bc_status_t
bc_fwd_create(const bc_fwd_config_t *cfg, bc_el_t *el, bc_node_cluster_t *cluster,
              bc_thread_stats_t *stats, bc_fwd_t **out)
{
    if (cfg == NULL || el == NULL || stats == NULL || out == NULL || cfg->timeout_ms == 0 ||
        cfg->conns_per_peer == 0 || cfg->max_conns == 0 || cfg->max_reply == 0) {
        return BC_EINVAL;
    }
    bc_fwd_t *fwd = calloc(1, sizeof(*fwd));
    if (fwd == NULL) return BC_ENOMEM;
    fwd->cfg = *cfg;
    if (fwd->cfg.idle_ms == 0) fwd->cfg.idle_ms = 60000;
    fwd->el = el;
    fwd->cluster = cluster;
    fwd->stats = stats;
    bc_node_primaries_init(&fwd->prim);
    *out = fwd;
    return BC_OK;
}

static void
peer_free(fwd_peer_t *p)
{
    peer_free_buffers(p);       /* first: the requests' chunks leave the queue */
    while (p->head != NULL) {
        bc_fwd_req_t *r = p->head;
        p->head = r->next;
        req_free(r);
    }
    SSL_free(p->ssl);           /* the socket is closed already */
    free(p);
}

/*
 * The routes changed (a new table, seen at the top of an iteration): every
 * timed post is due now.  BEHAVIOR: they are all tries of writes waiting
 * out a migration pause (bc_fwd_post_at), spaced up to 5 ms apart; the
 * table that ends a pause makes the next try the one that goes on, so it
 * runs now instead of up to 5 ms later.  A try that finds the pause still
 * on is simply timed again.  net/server.c wakes an idle worker for it.
 */
static void
fwd_timed_due_now(bc_fwd_t *fwd)
{
    uint64_t gen = bc_node_cluster_route_gen(fwd->cluster);
    if (gen == fwd->route_gen) return;
    fwd->route_gen = gen;
    if (fwd->timed == NULL) return;
    uint64_t now = now_ms();
    for (bc_fwd_post_t *p = fwd->timed; p != NULL; p = p->next) {
        if (p->at_ms > now) p->at_ms = now;
    }
    fwd_arm(fwd, now);
}

void
bc_fwd_before_poll(bc_fwd_t *fwd)
{
    if (fwd == NULL) return;
    fwd_timed_due_now(fwd);
    /* The batch: every request submitted this iteration, one sendmsg per
     * connection (a connection still connecting writes once connected). */
    bool failed = false;
    while (fwd->dirty != NULL) {
        fwd_peer_t *p = fwd->dirty;
        fwd->dirty = p->dirty_next;
        p->dirty_next = NULL;
        p->dirty = false;
        if (p->state != PEER_OPEN || (p->ssl != NULL && !p->tls_done)) continue;
        if (peer_write(p) != BC_OK) {
            peer_close(p, BC_ECLOSED, BC_ECLOSED, "send failed");
            failed = true;
        } else {
            peer_update_events(p);
        }
    }
    /* Completions are never called from here: the timer delivers them. */
    if (failed || fwd->done_head != NULL || fwd->posts != NULL) fwd_arm(fwd, now_ms());
    while (fwd->dead != NULL) {
        fwd_peer_t *p = fwd->dead;
        fwd->dead = p->next;
        peer_free(p);
    }
}

void
bc_fwd_destroy(bc_fwd_t *fwd)
{
    if (fwd == NULL) return;
    fwd->dirty = NULL;          /* nothing more is sent */
    while (fwd->peers != NULL) {
        fwd_peer_t *p = fwd->peers;
        fwd->peers = p->next;
        bc_el_io_stop(fwd->el, &p->io);
        if (p->fd >= 0) close(p->fd);
        peer_free(p);
    }
    bc_fwd_before_poll(fwd);
    while (fwd->done_head != NULL) {
        bc_fwd_req_t *r = fwd->done_head;
        fwd->done_head = r->next;
        req_free(r);
    }
    if (fwd->timer_at != 0) bc_el_set_timeout(fwd->el, 0, NULL, NULL);
    bc_node_primaries_free(&fwd->prim);
    free(fwd);
}

/* The reachable primary of gid, or NULL. */
static const bc_node_primary_t *
fwd_lookup(bc_fwd_t *fwd, uint32_t gid)
{
    (void)bc_node_cluster_primaries_sync(fwd->cluster, &fwd->prim);
    const bc_node_primary_t *e = bc_node_primaries_find(&fwd->prim, gid);
    /* BEHAVIOR: a record naming this node itself (a backup that was just
     * promoted and has not noticed yet, or the record is stale) is not
     * forwarded to: the refusal makes the client retry, by then the roles
     * have settled. */
    if (e == NULL || e->self || e->salen == 0) return NULL;
    return e;
}

bool
bc_fwd_can_reach(bc_fwd_t *fwd, uint32_t gid)
{
    return fwd != NULL && fwd_lookup(fwd, gid) != NULL;
}

size_t
bc_fwd_max_reply(const bc_fwd_t *fwd)
{
    return fwd->cfg.max_reply;
}

bc_status_t
bc_fwd_submit(bc_fwd_t *fwd, uint32_t gid, bc_fwd_reply_kind_t kind, char *req, size_t len,
              uint32_t affinity, bc_fwd_done_fn done, void *arg, uint32_t tag,
              bc_fwd_req_t **out)
{
    bc_status_t st = BC_OK;
    const bc_node_primary_t *e = fwd_lookup(fwd, gid);

    if (e == NULL) {
        free(req);
        return BC_ENOTFOUND;
    }
    fwd_peer_t *p = fwd_pick(fwd, e, affinity, &st);
    bc_fwd_req_t *r = p != NULL ? calloc(1, sizeof(*r)) : NULL;
    if (r == NULL) {
        if (p != NULL) st = BC_ENOMEM;
        free(req);
        bc_stats_incr(fwd->stats, forward_errors);
        /* A connection opened for this request and left idle times out. */
        if (p != NULL) fwd_arm(fwd, now_ms() + fwd->cfg.idle_ms);
        return st;
    }
    uint64_t now = now_ms();
    r->kind = kind;
    r->deadline_ms = now + fwd->cfg.timeout_ms;
    r->done = done;
    r->arg = arg;
    r->tag = tag;
    if (p->tail != NULL) p->tail->next = r;
    else p->head = r;
    p->tail = r;
    p->inflight++;
    fwd_chunk_t *c = &r->chunk;
    c->buf = req;
    c->len = len;
    c->req = r;
    r->queued = true;
    if (p->wq_tail != NULL) p->wq_tail->next = c;
    else p->wq_head = c;
    p->wq_tail = c;
    bc_stats_incr(fwd->stats, forward_requests);

    /* Written in bc_fwd_before_poll, with the others of this iteration. */
    peer_mark_dirty(p);
    fwd_arm(fwd, r->deadline_ms);
    if (out != NULL) *out = r;
    return BC_OK;
}

uint32_t
bc_fwd_groups(bc_fwd_t *fwd, uint32_t *gids, bool *self, uint32_t max)
{
    if (fwd == NULL) return 0;
    (void)bc_node_cluster_primaries_sync(fwd->cluster, &fwd->prim);
    for (uint32_t i = 0; i < fwd->prim.count && i < max; i++) {
        gids[i] = fwd->prim.v[i].gid;
        self[i] = fwd->prim.v[i].self;
    }
    return fwd->prim.count;
}

void
bc_fwd_keep(bc_fwd_req_t *req)
{
    if (req != NULL) req->keep = true;
}

char *
bc_fwd_take_request(bc_fwd_req_t *req, size_t *len)
{
    if (req == NULL || req->kept == NULL) return NULL;
    char *b = req->kept;
    *len = req->kept_len;
    req->kept = NULL;
    return b;
}

void
bc_fwd_cancel(bc_fwd_t *fwd, bc_fwd_req_t *req)
{
    (void)fwd;
    if (req == NULL) return;
    req->done = NULL;
    req->arg = NULL;
}

const char *
bc_fwd_error_line(bc_status_t st)
{
    switch (st) {
    case BC_ETIMEOUT: return bc_wire_fwd_failure_line(BC_WIRE_FWD_TIMEOUT);
    case BC_ECLOSED: return bc_wire_fwd_failure_line(BC_WIRE_FWD_IN_DOUBT);
    case BC_ETOOLARGE: return bc_wire_fwd_failure_line(BC_WIRE_FWD_TOO_LARGE);
    case BC_EPROTO: return bc_wire_fwd_failure_line(BC_WIRE_FWD_BAD_REPLY);
    case BC_EBUSY: return bc_wire_fwd_failure_line(BC_WIRE_FWD_BUSY);
    case BC_EACCES: return bc_wire_fwd_failure_line(BC_WIRE_FWD_AUTH);
    case BC_ENOMEM: return bc_wire_fwd_failure_line(BC_WIRE_FWD_NOMEM);
    default: return bc_wire_fwd_failure_line(BC_WIRE_FWD_UNSENT);
    }
}
