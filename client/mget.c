/*
 * mget.c -- multi-get: every key is routed by one snapshot, the keys of
 * each node are packed into "get k1 k2 ...\r\n" lines, all nodes are sent
 * their lines and read back in parallel from one poll() loop on
 * non-blocking I/O (pipelined: a node may receive every line before the
 * first reply is read, and writing and reading interleave so that neither
 * side's socket buffer can stall the other), and each VALUE goes to the
 * item of the key it names.  Keys a node refused or could not answer stay
 * pending and are routed again after a backoff, until the deadline.
 *
 * MATCHING REPLIES TO KEYS
 *   A node answers a get line with a VALUE for each key it holds, then END.
 *   memcached keeps the order of the line, but a node that forwards part of
 *   the line to other owners (its table differs from ours for a moment)
 *   merges their VALUEs with its own in another order, so a VALUE matches
 *   the first still-unanswered key of the line with that name, wherever it
 *   stands, and END makes the line's unanswered keys misses.  A VALUE naming
 *   no unanswered key of the line, or any other reply, means the stream
 *   cannot be trusted: the connection is closed and every key sent on it
 *   fails (EPROTO), answered or not.  After a refusal or a lost connection,
 *   the answers received stand and the keys still unanswered are routed
 *   again.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "agent.h"
#include "bc_hash.h"
#include "bc_log.h"
#include "bc_time.h"
#include "bc_wire.h"
#include "client_int.h"
#include "near.h"
#include "ops.h"
#include "proto.h"

#define MGET_LINE_MAX 16384u
#define MGET_PENDING  1          /* item status while unresolved */

typedef struct mget_batch {
    bc__pool_node_t *node;
    bc__pool_conn_t *conn;
    size_t *idx;                 /* item indices in send order */
    size_t n, cap;
    size_t *line_end;            /* per line: end position in idx */
    size_t nlines;
    char *out;                   /* the request lines */
    size_t outlen, outsent;
    size_t line, cursor;         /* answering line, its first position in idx */
    bool active;
} mget_batch_t;

typedef struct mget {
    bc_client_t *c;
    size_t n;
    const void *const *keys;
    const size_t *klens;
    uint32_t *hash;
    bc_client_item_t *items;
    mget_batch_t *batches;
    size_t nbatches;
} mget_t;

static void
mget_resolve(mget_t *m, size_t i, int status)
{
    m->items[i].status = status;
}

static bc_status_t
batch_add(mget_batch_t *b, size_t i)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        size_t *grown = realloc(b->idx, cap * sizeof(*grown));
        if (grown == NULL) return BC_ENOMEM;
        b->idx = grown;
        b->cap = cap;
    }
    b->idx[b->n++] = i;
    return BC_OK;
}

static bc_status_t
batch_build(mget_t *m, mget_batch_t *b)
{
    size_t total = 0;
    for (size_t j = 0; j < b->n; j++) total += m->klens[b->idx[j]] + 1;
    size_t maxlines = total / (MGET_LINE_MAX / 2) + b->n / 64 + 2;
    b->out = malloc(total + 6 * maxlines + 16);
    b->line_end = malloc(sizeof(*b->line_end) * (b->n + 1));
    if (b->out == NULL || b->line_end == NULL) return BC_ENOMEM;
    size_t linelen = 0;
    for (size_t j = 0; j < b->n; j++) {
        size_t i = b->idx[j], kl = m->klens[i];
        if (linelen > 0 && linelen + 1 + kl + 2 > MGET_LINE_MAX) {
            memcpy(b->out + b->outlen, "\r\n", 2);
            b->outlen += 2;
            b->line_end[b->nlines++] = j;
            linelen = 0;
        }
        if (linelen == 0) {
            memcpy(b->out + b->outlen, "get", 3);
            b->outlen += 3;
            linelen = 3;
        }
        b->out[b->outlen++] = ' ';
        memcpy(b->out + b->outlen, m->keys[i], kl);
        b->outlen += kl;
        linelen += 1 + kl;
    }
    memcpy(b->out + b->outlen, "\r\n", 2);
    b->outlen += 2;
    b->line_end[b->nlines++] = b->n;
    return BC_OK;
}

/*
 * The connection is unusable: close it.  retry (a refusal, a lost
 * connection): what it answered so far stands, unresolved keys are routed
 * again.  Otherwise (a malformed or unexpected reply) nothing this stream
 * said is trusted: every key of the batch fails with `status`, including
 * those it already answered.
 */
static void
batch_fail(mget_t *m, mget_batch_t *b, bool retry, int status)
{
    for (size_t j = 0; !retry && j < b->n; j++) {
        bc_client_item_t *it = &m->items[b->idx[j]];
        free(it->value);
        it->value = NULL;
        it->vlen = 0;
        it->flags = 0;
        it->status = status;
    }
    if (b->conn != NULL) bc__pool_conn_put(b->conn, false);
    b->conn = NULL;
    b->active = false;
}

/* Handles one reply unit; returns false when the batch ended (done or
 * failed). */
static bool
batch_on_reply(mget_t *m, mget_batch_t *b, const bc_mc_reply_t *r)
{
    size_t end = b->line_end[b->line];
    if (r->kind == BC_MC_REPLY_VALUE) {
        size_t j;
        for (j = b->cursor; j < end; j++) {
            size_t i = b->idx[j];
            if (m->items[i].status == MGET_PENDING && m->klens[i] == r->nkey &&
                memcmp(m->keys[i], r->key, r->nkey) == 0) {
                break;
            }
        }
        if (j == end) {
            log_warn("client: %s answered a multi-get with a key not asked for", b->node->addr);
            batch_fail(m, b, false, BC_CLIENT_EPROTO);
            return false;
        }
        size_t i = b->idx[j];
        char *v = malloc((size_t)r->vlen + 1);
        if (v == NULL) {
            batch_fail(m, b, false, BC_CLIENT_ENOMEM);
            return false;
        }
        memcpy(v, r->value, r->vlen);
        v[r->vlen] = '\0';
        free(m->items[i].value);
        m->items[i].value = v;
        m->items[i].vlen = r->vlen;
        m->items[i].flags = r->flags;
        mget_resolve(m, i, BC_CLIENT_OK);
        return true;
    }
    if (r->kind == BC_MC_REPLY_END) {
        for (size_t k = b->cursor; k < end; k++) {
            if (m->items[b->idx[k]].status == MGET_PENDING) {
                mget_resolve(m, b->idx[k], BC_CLIENT_ENOTFOUND);
            }
        }
        b->cursor = end;
        if (++b->line == b->nlines) {
            b->active = false;
            bc__pool_conn_put(b->conn, true);
            b->conn = NULL;
            return false;
        }
        return true;
    }
    bc_wire_refusal_t ref;
    if (r->kind == BC_MC_REPLY_SERVER_ERROR &&
        bc_wire_refusal_parse(r->text, r->ntext, &ref) != BC_WIRE_REFUSAL_NONE) {
        BC__COUNT(m->c, refusals, 1);
        bc__agent_request_refresh(m->c, ref.epoch);
        batch_fail(m, b, true, 0);
        return false;
    }
    /* A node that lost the forwarded part of a read: reads are safe to
     * send again, to the owner of the new table. */
    if (r->kind == BC_MC_REPLY_SERVER_ERROR &&
        bc__proto_fwd_failure_parse(r->text, r->ntext) != BC__PROTO_FWD_NONE) {
        bc__agent_request_refresh(m->c, 0);
        batch_fail(m, b, true, 0);
        return false;
    }
    log_warn("client: %s sent an unexpected reply to a multi-get (kind %d)", b->node->addr,
             (int)r->kind);
    batch_fail(m, b, false,
               r->kind == BC_MC_REPLY_SERVER_ERROR ? BC_CLIENT_ESERVER : BC_CLIENT_EPROTO);
    return false;
}

static void
batch_on_readable(mget_t *m, mget_batch_t *b)
{
    bc_status_t st = bc__pool_conn_recv_some(b->conn);
    if (st == BC_EAGAIN) return;
    if (st != BC_OK) {
        if (st == BC_ENOMEM) {
            batch_fail(m, b, false, BC_CLIENT_ENOMEM);
        } else {
            bc__agent_request_refresh(m->c, 0);
            batch_fail(m, b, true, 0);
        }
        return;
    }
    for (;;) {
        bc_mc_reply_t r;
        st = bc__pool_conn_parse_buffered(b->conn, &r);
        if (st == BC_EAGAIN) return;
        if (st != BC_OK) {
            log_warn("client: malformed multi-get reply from %s: %s", b->node->addr,
                     bc_status_str(st));
            batch_fail(m, b, false, st == BC_ENOMEM ? BC_CLIENT_ENOMEM : BC_CLIENT_EPROTO);
            return;
        }
        if (!batch_on_reply(m, b, &r)) return;
    }
}

static void
batch_on_writable(mget_t *m, mget_batch_t *b)
{
    ssize_t n = bc__pool_conn_send_some(b->conn, b->out + b->outsent, b->outlen - b->outsent);
    if (n > 0) {
        b->outsent += (size_t)n;
    } else if (n < 0) {
        bc__agent_request_refresh(m->c, 0);
        batch_fail(m, b, true, 0);
    }
}

static void
batches_release(mget_t *m)
{
    for (size_t k = 0; k < m->nbatches; k++) {
        mget_batch_t *b = &m->batches[k];
        if (b->conn != NULL) bc__pool_conn_put(b->conn, false);
        bc__pool_node_unref(b->node);
        free(b->idx);
        free(b->line_end);
        free(b->out);
    }
    free(m->batches);
    m->batches = NULL;
    m->nbatches = 0;
}

/* One round: route the pending keys, send, read until done or deadline.
 * Returns BC_ENOMEM or BC_OK. */
static bc_status_t
mget_round(mget_t *m, uint64_t deadline_ns)
{
    bc_client_t *c = m->c;
    bc__route_snapshot_t *s = bc__route_acquire(&c->router);
    if (s == NULL) return BC_OK;
    bc_status_t st = BC_OK;
    size_t cap = 0;
    for (size_t i = 0; i < m->n && st == BC_OK; i++) {
        if (m->items[i].status != MGET_PENDING) continue;
        uint32_t b = bc_hash_bucket(m->hash[i], s->nbuckets);
        if (s->owner[b] == 0) {
            mget_resolve(m, i, c->opts.no_owner_is_miss ? BC_CLIENT_ENOTFOUND : BC_CLIENT_ENOOWNER);
            continue;
        }
        bc__pool_node_t *node = s->node[b];
        if (node == NULL) {
            bc__agent_request_refresh(c, 0);
            continue;
        }
        size_t k;
        for (k = 0; k < m->nbatches && m->batches[k].node != node; k++) {
        }
        if (k == m->nbatches) {
            if (m->nbatches == cap) {
                size_t ncap = cap ? cap * 2 : 4;
                mget_batch_t *grown = realloc(m->batches, ncap * sizeof(*grown));
                if (grown == NULL) {
                    st = BC_ENOMEM;
                    break;
                }
                m->batches = grown;
                cap = ncap;
            }
            memset(&m->batches[k], 0, sizeof(m->batches[k]));
            m->batches[k].node = node;
            bc__pool_node_ref(node);
            m->nbatches++;
        }
        st = batch_add(&m->batches[k], i);
    }
    bc__route_release(s);

    for (size_t k = 0; k < m->nbatches && st == BC_OK; k++) st = batch_build(m, &m->batches[k]);
    if (st != BC_OK) {
        batches_release(m);
        return st;
    }
    /* Never wait for one node's pool while holding another's connection
     * (two multi-gets could each hold what the other waits for): take what
     * is free now, and wait only when holding nothing.  Batches left
     * without a connection stay pending for the next round. */
    size_t active = 0;
    for (size_t k = 0; k < m->nbatches; k++) {
        mget_batch_t *b = &m->batches[k];
        bool reused;
        bc_status_t cst = bc__pool_conn_get(b->node, deadline_ns, false, &b->conn, &reused);
        if (cst == BC_EBUSY && active == 0) {
            cst = bc__pool_conn_get(b->node, deadline_ns, true, &b->conn, &reused);
        }
        if (cst == BC_OK) {
            b->active = true;
            active++;
        } else if (cst == BC_EIO) {
            bc__agent_request_refresh(c, 0);
        }
    }

    struct pollfd *pfd = calloc(m->nbatches ? m->nbatches : 1, sizeof(*pfd));
    size_t *which = calloc(m->nbatches ? m->nbatches : 1, sizeof(*which));
    if (pfd == NULL || which == NULL) {
        free(pfd);
        free(which);
        batches_release(m);
        return BC_ENOMEM;
    }
    for (;;) {
        size_t np = 0;
        for (size_t k = 0; k < m->nbatches; k++) {
            mget_batch_t *b = &m->batches[k];
            if (!b->active) continue;
            pfd[np].fd = b->conn->fd;
            pfd[np].events = POLLIN | (b->outsent < b->outlen ? POLLOUT : 0);
            pfd[np].revents = 0;
            which[np++] = k;
        }
        if (np == 0) break;
        uint64_t now = bc_time_mono_ns();
        if (now >= deadline_ns) break;
        uint64_t left = deadline_ns - now;
        struct timespec ts = {.tv_sec = (time_t)(left / 1000000000ull),
                              .tv_nsec = (long)(left % 1000000000ull)};
        int r = ppoll(pfd, np, &ts, NULL);
        if (r < 0 && errno != EINTR) break;
        for (size_t p = 0; r > 0 && p < np; p++) {
            mget_batch_t *b = &m->batches[which[p]];
            if (b->active && (pfd[p].revents & POLLOUT)) batch_on_writable(m, b);
            if (b->active && (pfd[p].revents & (POLLIN | POLLERR | POLLHUP))) {
                batch_on_readable(m, b);
            }
        }
    }
    free(pfd);
    free(which);
    batches_release(m);
    return BC_OK;
}

int
bc_client_mget(bc_client_t *c, size_t n, const void *const *keys, const size_t *klens,
               int timeout_ms, bc_client_item_t *items)
{
    if (c == NULL || (n > 0 && (keys == NULL || klens == NULL || items == NULL))) {
        return BC_CLIENT_EINVAL;
    }
    if (n == 0) return BC_CLIENT_OK;
    uint64_t deadline_ns = bc__ops_deadline(c, timeout_ms);
    mget_t m = {.c = c, .n = n, .keys = keys, .klens = klens, .items = items};
    m.hash = malloc(n * sizeof(*m.hash));
    if (m.hash == NULL) return BC_CLIENT_ENOMEM;
    BC__COUNT(c, ops, n);
    BC__COUNT(c, gets, n);

    size_t pending = 0;
    for (size_t i = 0; i < n; i++) {
        memset(&items[i], 0, sizeof(items[i]));
        if (!bc__proto_key_valid(keys[i], klens[i])) {
            items[i].status = BC_CLIENT_EINVAL;
            continue;
        }
        m.hash[i] = bc_hash_key(keys[i], klens[i]);
        if (c->near != NULL && bc__near_lookup(c, m.hash[i], keys[i], klens[i], &items[i].value,
                                               &items[i].vlen, &items[i].flags)) {
            items[i].status = BC_CLIENT_OK;
            continue;
        }
        items[i].status = MGET_PENDING;
        pending++;
    }

    int code = BC_CLIENT_OK;
    for (unsigned attempt = 1; pending > 0; attempt++) {
        uint64_t published = atomic_load_explicit(&c->router.published, memory_order_acquire);
        if (mget_round(&m, deadline_ns) != BC_OK) {
            code = BC_CLIENT_ENOMEM;
            break;
        }
        pending = 0;
        for (size_t i = 0; i < n; i++) pending += items[i].status == MGET_PENDING;
        if (pending == 0 || bc_time_mono_ns() >= deadline_ns) break;
        if (atomic_load_explicit(&c->router.published, memory_order_acquire) == published &&
            !bc__ops_backoff_sleep(c, attempt, deadline_ns, published)) {
            break;
        }
        BC__COUNT(c, retries, 1);
    }
    for (size_t i = 0; i < n; i++) {
        bc_client_item_t *it = &items[i];
        if (it->status == MGET_PENDING) {
            it->status = code == BC_CLIENT_ENOMEM ? code : BC_CLIENT_ETIMEOUT;
        }
        if (it->status == BC_CLIENT_OK) {
            BC__COUNT(c, hits, 1);
            if (c->near != NULL) {
                bc__near_offer(c, m.hash[i], keys[i], klens[i], it->value, it->vlen, it->flags);
            }
        } else if (it->status == BC_CLIENT_ENOTFOUND) {
            BC__COUNT(c, misses, 1);
        } else {
            BC__COUNT(c, errors, 1);
            if (it->status == BC_CLIENT_ETIMEOUT) BC__COUNT(c, timeouts, 1);
            if (code == BC_CLIENT_OK) code = it->status;
        }
    }
    free(m.hash);
    return code;
}

void
bc_client_items_free(bc_client_item_t *items, size_t n)
{
    for (size_t i = 0; items != NULL && i < n; i++) {
        free(items[i].value);
        items[i].value = NULL;
        items[i].vlen = 0;
    }
}
