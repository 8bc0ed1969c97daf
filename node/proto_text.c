/*
 * proto_text.c -- memcached text commands on the cache; see proto_text.h.
 *
 * Every reply text and every corner case here was checked against
 * memcached 1.6.18 (tests/integration/test_memcached_compat.py sends the
 * same streams to both).  The behaviours worth knowing:
 *
 *   - noreply silences every reply of the command, errors included;
 *   - a refused storage command (bad line) does NOT consume its data block:
 *     the block is then read as a command line, usually giving "ERROR" --
 *     that is memcached's behaviour and clients expect it;
 *   - a storage command whose item cannot be allocated (too large, no
 *     memory) replies SERVER_ERROR and then discards exactly vlen+2 bytes;
 *     a failed "set" also deletes the key's old value, so that a reader
 *     never sees stale data after a set it believes failed;
 *   - a data block not ending in "\r\n" is "CLIENT_ERROR bad data chunk"
 *     and nothing is stored; parsing continues right after the block;
 *   - append/prepend that cannot build the combined value is NOT_STORED.
 *
 * In a cluster (env->cluster set), every key is first routed: a bucket this
 * node may not serve makes the whole command answer with one refusal line
 * ("SERVER_ERROR MOVED <bucket> <group> <epoch>" and friends, cluster.h)
 * that libbucketcache reads as "refresh your table and retry"; a refused
 * storage command still consumes its data block.  Reads need the bucket
 * to be owned here with this node primary; writes (storage, delete,
 * incr/decr, touch, gat/gats) also need it not to be migrating.
 *
 * BEHAVIOR: with a forwarder (forward.h) on a connection that is not a
 * peer connection, MOVED and NOT_PRIMARY are forwarded to the owner's
 * primary instead of refused (see proto_text.h, "FORWARDING"); NO_OWNER
 * and READONLY are still refused -- there is nobody to ask, and a
 * migrating bucket must not be written anywhere -- and so is a key whose
 * owner has no known primary (the refusal makes libbucketcache refresh).
 * A multi-get containing any key to refuse answers that refusal alone.
 *
 * Where we differ from memcached on purpose: a multi-get containing a bad
 * key answers CLIENT_ERROR for that command only -- memcached 1.6.18 also
 * drops the replies of earlier pipelined commands still in its queue --
 * and the SERVER_ERROR of a too-large value is sent at once rather than
 * after the swallowed block has arrived.
 */
#include "proto_text.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bc_hash.h"
#include "bc_log.h"
#include "bc_wire.h"

#define OUTQ_BUF_MIN   1024u
#define OUTQ_BUF_KEEP  (16u * 1024u)   /* larger scratch is freed when idle */
#define OUTQ_ENTS_MIN  16u
#define OUTQ_ENTS_KEEP 256u

/* Longest VALUE header: "VALUE " key " " flags " " bytes " " cas "\r\n". */
#define VALUE_HEADER_MAX (6 + BC_MC_KEY_MAX_LEN + 1 + 10 + 1 + 10 + 1 + 20 + 2)

/* ------------------------------------------------------------------------ */
/* output queue                                                             */
/* ------------------------------------------------------------------------ */

void
bc_outq_init(bc_outq_t *q)
{
    memset(q, 0, sizeof(*q));
}

void
bc_outq_free(bc_outq_t *q, bc_cache_t *cache)
{
    for (uint32_t i = 0; i < q->count; i++) {
        bc_outq_ent_t *e = &q->ents[q->head + i];
        if (e->item != NULL) bc_item_release(cache, e->item);
    }
    free(q->ents);
    free(q->buf);
    bc_outq_init(q);
}

/* Room for one more entry at the tail. */
static bool
outq_ent_room(bc_outq_t *q)
{
    if (q->head + q->count < q->ents_cap) return true;
    if (q->head > 0) {
        memmove(q->ents, q->ents + q->head, q->count * sizeof(*q->ents));
        q->head = 0;
        return true;
    }
    uint32_t cap = q->ents_cap ? q->ents_cap * 2 : OUTQ_ENTS_MIN;
    bc_outq_ent_t *ents = realloc(q->ents, cap * sizeof(*ents));
    if (ents == NULL) return false;
    q->ents = ents;
    q->ents_cap = cap;
    return true;
}

/* Returns space for n more bytes of text at buf + used, or NULL. */
static char *
outq_reserve(bc_outq_t *q, size_t n)
{
    if (q->cap - q->used < n) {
        size_t cap = q->cap ? q->cap : OUTQ_BUF_MIN;
        while (cap - q->used < n) cap *= 2;
        if (cap > UINT32_MAX) return NULL;    /* offsets are 32-bit */
        char *buf = realloc(q->buf, cap);
        if (buf == NULL) return NULL;
        q->buf = buf;
        q->cap = cap;
    }
    return q->buf + q->used;
}

/* Queues the n bytes just written at buf + used. */
static bool
outq_commit(bc_outq_t *q, size_t n)
{
    if (q->count > 0) {
        bc_outq_ent_t *last = &q->ents[q->head + q->count - 1];
        if (last->item == NULL && (size_t)last->off + last->len == q->used) {
            last->len += (uint32_t)n;
            q->used += n;
            q->pending += n;
            return true;
        }
    }
    if (!outq_ent_room(q)) return false;
    bc_outq_ent_t *e = &q->ents[q->head + q->count++];
    e->item = NULL;
    e->ptr = NULL;
    e->off = (uint32_t)q->used;
    e->len = (uint32_t)n;
    q->used += n;
    q->pending += n;
    return true;
}

bool
bc_outq_add(bc_outq_t *q, const void *data, size_t len)
{
    char *p = outq_reserve(q, len);
    if (p == NULL) return false;
    memcpy(p, data, len);
    return outq_commit(q, len);
}

bool
bc_outq_add_item(bc_outq_t *q, bc_cache_t *cache, bc_item_t *it, const char *ptr, uint32_t n)
{
    if (!outq_ent_room(q)) {
        bc_item_release(cache, it);
        return false;
    }
    bc_outq_ent_t *e = &q->ents[q->head + q->count++];
    e->item = it;
    e->ptr = ptr;
    e->off = 0;
    e->len = n;
    q->pending += n;
    return true;
}

int
bc_outq_iov(const bc_outq_t *q, struct iovec *iov, int max)
{
    int n = 0;
    for (uint32_t i = 0; i < q->count && n < max; i++) {
        const bc_outq_ent_t *e = &q->ents[q->head + i];
        iov[n].iov_base = (void *)(e->item != NULL ? e->ptr : q->buf + e->off);
        iov[n].iov_len = e->len;
        n++;
    }
    return n;
}

void
bc_outq_consume(bc_outq_t *q, bc_cache_t *cache, size_t n)
{
    while (n > 0 && q->count > 0) {
        bc_outq_ent_t *e = &q->ents[q->head];
        if (n < e->len) {
            if (e->item != NULL) {
                e->ptr += n;
            } else {
                e->off += (uint32_t)n;
            }
            e->len -= (uint32_t)n;
            q->pending -= n;
            return;
        }
        n -= e->len;
        q->pending -= e->len;
        if (e->item != NULL) bc_item_release(cache, e->item);
        q->head++;
        q->count--;
    }
    if (q->count == 0) {
        q->head = 0;
        q->used = 0;
        if (q->cap > OUTQ_BUF_KEEP) {
            free(q->buf);
            q->buf = NULL;
            q->cap = 0;
        }
        if (q->ents_cap > OUTQ_ENTS_KEEP) {
            free(q->ents);
            q->ents = NULL;
            q->ents_cap = 0;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* reply helpers                                                            */
/* ------------------------------------------------------------------------ */

static void
reply_bytes(bc_proto_conn_t *pc, const char *s, size_t n)
{
    if (!bc_outq_add(&pc->out, s, n)) pc->oom = true;
}

/* A literal including its "\r\n". */
#define REPLY(pc, lit) reply_bytes((pc), (lit), sizeof(lit) - 1)

/* A line without "\r\n" (error texts from the parser). */
static void
reply_line(bc_proto_conn_t *pc, const char *s)
{
    size_t n = strlen(s);
    char *p = outq_reserve(&pc->out, n + 2);
    if (p == NULL) {
        pc->oom = true;
        return;
    }
    memcpy(p, s, n);
    memcpy(p + n, "\r\n", 2);
    if (!outq_commit(&pc->out, n + 2)) pc->oom = true;
}

static void
reply_u64(bc_proto_conn_t *pc, uint64_t v)
{
    char *p = outq_reserve(&pc->out, 22);
    if (p == NULL) {
        pc->oom = true;
        return;
    }
    size_t n = bc_mc_u64_to_dec(v, p);
    memcpy(p + n, "\r\n", 2);
    if (!outq_commit(&pc->out, n + 2)) pc->oom = true;
}

static void
reply_fmt(bc_proto_conn_t *pc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
reply_fmt(bc_proto_conn_t *pc, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof(line)) n = (int)sizeof(line) - 1;
    reply_bytes(pc, line, (size_t)n);
}

#define STAT_U64(pc, name, v) reply_fmt((pc), "STAT %s %" PRIu64 "\r\n", (name), (uint64_t)(v))
#define STAT_STR(pc, name, v) reply_fmt((pc), "STAT %s %s\r\n", (name), (v))

/* ------------------------------------------------------------------------ */
/* commands                                                                 */
/* ------------------------------------------------------------------------ */

static bc_store_mode_t
store_mode(bc_mc_cmd_t cmd)
{
    switch (cmd) {
    case BC_MC_CMD_ADD: return BC_STORE_ADD;
    case BC_MC_CMD_REPLACE: return BC_STORE_REPLACE;
    case BC_MC_CMD_APPEND: return BC_STORE_APPEND;
    case BC_MC_CMD_PREPEND: return BC_STORE_PREPEND;
    case BC_MC_CMD_CAS: return BC_STORE_CAS;
    default: return BC_STORE_SET;
    }
}

typedef enum route_action {
    ROUTE_SERVE,                   /* serve it here */
    ROUTE_FORWARD,                 /* forward it to group *gid's primary */
    ROUTE_REFUSE,                  /* answer the refusal line */
} route_action_t;

#define REFUSAL_MAX 128

/*
 * Cluster routing of one key.  For anything but ROUTE_SERVE, refusal
 * receives the refusal line (CRLF included, NUL-terminated): it is the
 * answer for ROUTE_REFUSE, and what a forward answers when its owner
 * turns out to be unreachable after all.
 */
static route_action_t
route_key(bc_proto_conn_t *pc, uint32_t hash, bool write, uint32_t *gid, char *refusal)
{
    bc_node_cluster_t *cl = pc->env->cluster;
    uint32_t bucket, owner = 0;
    uint64_t epoch = 0;

    if (cl == NULL) return ROUTE_SERVE;
    bucket = bc_hash_bucket(hash, bc_cache_nbuckets(pc->env->cache));
    bc_route_t route = bc_node_cluster_route(cl, bucket, write, &owner, &epoch);
    if (route == BC_ROUTE_SERVE || (route == BC_ROUTE_READONLY && !write)) return ROUTE_SERVE;
    if (bc_node_cluster_format_refusal(route, bucket, owner, epoch, refusal, REFUSAL_MAX) <= 0) {
        snprintf(refusal, REFUSAL_MAX, "SERVER_ERROR bucket not served here\r\n");
    }
    /* BEHAVIOR: one hop only -- a request that came over a peer connection
     * is never forwarded again, whatever this node's table says. */
    if ((route == BC_ROUTE_MOVED || route == BC_ROUTE_NOT_PRIMARY) && pc->fwd != NULL &&
        !pc->peer && bc_fwd_can_reach(pc->fwd, owner)) {
        *gid = owner;
        return ROUTE_FORWARD;
    }
    return ROUTE_REFUSE;
}

/* ------------------------------------------------------------------------ */
/* forwarding                                                               */
/* ------------------------------------------------------------------------ */

typedef struct fwd_part {
    bc_fwd_req_t *req;             /* in flight; NULL once finished */
    bc_status_t st;
    char *reply;                   /* owned */
    size_t len;
} fwd_part_t;

struct bc_proto_fwd_op {
    bool values;                   /* get & co: parts are merged */
    bool noreply;                  /* drop the reply */
    uint32_t gid;                  /* FWD_DATA: where the request goes */
    char *buf;                     /* FWD_DATA: the request being built (owned) */
    size_t len;                    /* FWD_DATA: its full length */
    bc_outq_t local;               /* values: VALUE blocks of the keys served here */
    uint32_t nparts;
    uint32_t pending;              /* parts still in flight */
    char refusal[REFUSAL_MAX];     /* the answer if an owner is unreachable */
    fwd_part_t parts[];
};

static bc_proto_fwd_op_t *
fwd_op_new(uint32_t nparts, const char *refusal)
{
    bc_proto_fwd_op_t *op = calloc(1, sizeof(*op) + nparts * sizeof(fwd_part_t));
    if (op == NULL) return NULL;
    op->nparts = nparts;
    bc_outq_init(&op->local);
    snprintf(op->refusal, sizeof(op->refusal), "%s", refusal);
    return op;
}

/* Frees op; parts still in flight are cancelled. */
static void
fwd_op_free(bc_proto_conn_t *pc, bc_proto_fwd_op_t *op)
{
    if (op == NULL) return;
    for (uint32_t i = 0; i < op->nparts; i++) {
        if (op->parts[i].req != NULL) bc_fwd_cancel(pc->fwd, op->parts[i].req);
        free(op->parts[i].reply);
    }
    bc_outq_free(&op->local, pc->env->cache);
    free(op->buf);
    free(op);
}

/*
 * Moves every range of src to the end of dst (item references travel, text
 * is copied) and empties src.  Returns false when out of memory; src is
 * emptied either way.
 */
static bool
outq_move(bc_outq_t *dst, bc_outq_t *src, bc_cache_t *cache)
{
    bool ok = true;
    for (uint32_t i = 0; i < src->count; i++) {
        bc_outq_ent_t *e = &src->ents[src->head + i];
        if (e->item != NULL) {
            if (ok) ok = bc_outq_add_item(dst, cache, e->item, e->ptr, e->len);
            else bc_item_release(cache, e->item);
        } else if (ok) {
            ok = bc_outq_add(dst, src->buf + e->off, e->len);
        }
    }
    free(src->ents);
    free(src->buf);
    bc_outq_init(src);
    return ok;
}

static bool
reply_is_values(const char *r, size_t n)
{
    return (n >= 6 && memcmp(r, "VALUE ", 6) == 0) || (n == 5 && memcmp(r, "END\r\n", 5) == 0);
}

/* Every part is done: queue the answer and free the command. */
static void
fwd_finish(bc_proto_conn_t *pc)
{
    bc_proto_fwd_op_t *op = pc->fop;
    const char *err = NULL;
    size_t nerr = 0;

    pc->fop = NULL;
    pc->waiting = false;
    for (uint32_t i = 0; i < op->nparts && err == NULL; i++) {
        fwd_part_t *part = &op->parts[i];
        if (part->st == BC_ENOTFOUND) {
            err = op->refusal;
        } else if (part->st != BC_OK) {
            err = bc_fwd_error_line(part->st);
        } else if (op->values && !reply_is_values(part->reply, part->len)) {
            /* The owner's own error (say, MOVED: its table is newer). */
            err = part->reply;
            nerr = part->len;
        }
    }
    if (err != NULL && nerr == 0) nerr = strlen(err);
    if (op->noreply) {
        /* nothing */
    } else if (err != NULL) {
        reply_bytes(pc, err, nerr);
    } else if (!op->values) {
        reply_bytes(pc, op->parts[0].reply, op->parts[0].len);
    } else {
        for (uint32_t i = 0; i < op->nparts; i++) {
            /* Each part ends with "END\r\n" (checked by the forwarder). */
            if (op->parts[i].len > 5) reply_bytes(pc, op->parts[i].reply, op->parts[i].len - 5);
        }
        if (!outq_move(&pc->out, &op->local, pc->env->cache)) pc->oom = true;
        REPLY(pc, "END\r\n");
    }
    fwd_op_free(pc, op);
}

/* forward.h completion of part `tag` of pc's forwarded command. */
static void
fwd_on_done(void *arg, uint32_t tag, bc_status_t st, char *reply, size_t len)
{
    bc_proto_conn_t *pc = arg;
    bc_proto_fwd_op_t *op = pc->fop;
    fwd_part_t *part = &op->parts[tag];

    part->req = NULL;
    part->st = st;
    part->reply = reply;
    part->len = len;
    if (--op->pending > 0) return;
    fwd_finish(pc);
    /* Last: the hook may run further commands or close the connection. */
    if (pc->resume != NULL) pc->resume(pc->resume_arg);
}

/* Sends part i of pc->fop; a failure at once is recorded in the part. */
static void
fwd_send_part(bc_proto_conn_t *pc, uint32_t i, uint32_t gid, char *buf, size_t len)
{
    bc_proto_fwd_op_t *op = pc->fop;
    bc_fwd_reply_kind_t kind = op->values ? BC_FWD_REPLY_VALUES : BC_FWD_REPLY_LINE;
    bc_status_t st = bc_fwd_submit(pc->fwd, gid, kind, buf, len, fwd_on_done, pc, i,
                                   &op->parts[i].req);
    if (st == BC_OK) {
        op->pending++;
    } else {
        op->parts[i].req = NULL;
        op->parts[i].st = st;
    }
}

/* Every part has been sent: wait, or answer at once if all failed. */
static void
fwd_sent(bc_proto_conn_t *pc)
{
    if (pc->fop->pending > 0) {
        pc->waiting = true;
    } else {
        fwd_finish(pc);
    }
}

/*
 * A malloc'd copy of a command line to forward, with room for `extra`
 * more bytes: without its "\r" and without a final "noreply" (the reply
 * is needed; see proto_text.h), then "\r\n".  NULL when out of memory.
 */
static char *
fwd_line(const char *line, size_t len, bool noreply, size_t extra, size_t *outlen)
{
    if (len > 0 && line[len - 1] == '\r') len--;
    if (noreply) {
        while (len > 0 && line[len - 1] == ' ') len--;
        if (len >= 7 && memcmp(line + len - 7, "noreply", 7) == 0) len -= 7;
        while (len > 0 && line[len - 1] == ' ') len--;
    }
    char *buf = malloc(len + 2 + extra);
    if (buf == NULL) return NULL;
    memcpy(buf, line, len);
    buf[len] = '\r';
    buf[len + 1] = '\n';
    *outlen = len + 2;
    return buf;
}

/* Forwards a one-key command without data block (delete, incr, touch). */
static void
fwd_simple(bc_proto_conn_t *pc, const char *line, size_t len, const bc_mc_request_t *req,
           uint32_t gid, const char *refusal)
{
    size_t n;
    pc->fop = fwd_op_new(1, refusal);
    char *buf = pc->fop != NULL ? fwd_line(line, len, req->noreply, 0, &n) : NULL;
    if (buf == NULL) {
        fwd_op_free(pc, pc->fop);
        pc->fop = NULL;
        pc->oom = true;
        return;
    }
    pc->fop->noreply = req->noreply;
    fwd_send_part(pc, 0, gid, buf, n);
    fwd_sent(pc);
}

/*
 * Routes a one-key write command.  Returns true when it has been dealt
 * with here (refused or forwarded), false when it is to be served.
 */
static bool
route_write(bc_proto_conn_t *pc, const char *line, size_t len, const bc_mc_request_t *req,
            uint32_t hash)
{
    char refusal[REFUSAL_MAX];
    uint32_t gid = 0;
    switch (route_key(pc, hash, true, &gid, refusal)) {
    case ROUTE_SERVE:
        return false;
    case ROUTE_FORWARD:
        fwd_simple(pc, line, len, req, gid, refusal);
        return true;
    case ROUTE_REFUSE:
        break;
    }
    if (!req->noreply) reply_bytes(pc, refusal, strlen(refusal));
    return true;
}

/* Keys whose hashes a routed multi-get keeps from its routing pass. */
#define ROUTE_HASH_CACHE 64

/*
 * Queues a VALUE block for every key of req found here -- every key when
 * dest is NULL, else those whose dest is 0 -- without the final END, and
 * counts them.  hashes (may be NULL) holds the first ROUTE_HASH_CACHE
 * keys' hashes from the routing pass.
 *
 * BEHAVIOR: a value of up to BC_PROTO_COPY_MAX bytes is copied next to its
 * VALUE header and the item released at once; only larger values are sent
 * from the item itself.  The kernel copies every byte into the socket
 * anyway, and for a small value one more memcpy costs less than an extra
 * iovec (per-segment work in sendmsg) and than keeping the item pinned:
 * a pipelined batch of small hits goes out as ONE contiguous range.  It
 * also keeps incr/decr in place as in memcached: the cache rewrites a
 * number in place only when no reply still references the item, and
 * numbers are always small.
 */
static void
retrieve_values(bc_proto_conn_t *pc, const bc_mc_request_t *req, const uint32_t *dest,
                const uint32_t *hashes)
{
    bc_cache_t *cache = pc->env->cache;
    bool with_cas = req->cmd == BC_MC_CMD_GETS || req->cmd == BC_MC_CMD_GATS;
    bool touch = req->cmd == BC_MC_CMD_GAT || req->cmd == BC_MC_CMD_GATS;
    uint32_t exptime = touch ? bc_cache_exptime_abs(cache, req->exptime) : 0;
    const char *cursor = req->keys, *key;
    size_t nkey;
    uint64_t hits = 0, asked = 0;
    uint32_t i = 0;

    while (bc_mc_next_key(&cursor, req->keys_end, &key, &nkey)) {
        uint32_t k = i++;
        if (dest != NULL && dest[k] != 0) continue;
        asked++;
        uint32_t hash = hashes != NULL && k < ROUTE_HASH_CACHE ? hashes[k]
                                                               : bc_hash_key(key, nkey);
        bc_item_t *it = touch ? bc_cache_get_touch(cache, key, nkey, hash, exptime)
                              : bc_cache_get(cache, key, nkey, hash);
        if (it == NULL) continue;
        hits++;

        /* Past the output limit, even small values are referenced: a
         * 64 KiB multi-get of "a a a ..." must not buffer megabytes. */
        bool copy = it->nbytes <= BC_PROTO_COPY_MAX && pc->out.pending < pc->out_limit;
        char *p = outq_reserve(&pc->out, VALUE_HEADER_MAX + (copy ? it->nbytes : 0)), *h = p;
        if (p == NULL) {
            bc_item_release(cache, it);
            pc->oom = true;
            return;
        }
        memcpy(p, "VALUE ", 6);
        p += 6;
        memcpy(p, key, nkey);
        p += nkey;
        *p++ = ' ';
        p += bc_mc_u64_to_dec(it->flags, p);
        *p++ = ' ';
        p += bc_mc_u64_to_dec(bc_item_value_len(it), p);
        if (with_cas) {
            *p++ = ' ';
            p += bc_mc_u64_to_dec(it->cas, p);
        }
        *p++ = '\r';
        *p++ = '\n';
        if (copy) {
            memcpy(p, bc_item_value(it), it->nbytes);
            p += it->nbytes;
            bc_item_release(cache, it);
            if (!outq_commit(&pc->out, (size_t)(p - h))) {
                pc->oom = true;
                return;
            }
            continue;
        }
        if (!outq_commit(&pc->out, (size_t)(p - h)) ||
            !bc_outq_add_item(&pc->out, cache, it, bc_item_value(it), it->nbytes)) {
            pc->oom = true;
            return;
        }
    }

    bc_stats_add(pc->stats, cmd_get, asked);
    bc_stats_add(pc->stats, get_hits, hits);
    bc_stats_add(pc->stats, get_misses, asked - hits);
    if (touch) {
        bc_stats_add(pc->stats, cmd_touch, asked);
        bc_stats_add(pc->stats, touch_hits, hits);
        bc_stats_add(pc->stats, touch_misses, asked - hits);
    }
}

/*
 * A multi-get with keys of other owners (dest[i] = the owner group of key
 * i, 0 = served here): one request per owner, in the order owners first
 * appear, and the local keys' VALUE blocks served now into the command's
 * own queue (merged at the end, see fwd_finish).
 */
static void
fwd_retrieve(bc_proto_conn_t *pc, const bc_mc_request_t *req, const uint32_t *dest,
             const uint32_t *hashes, const char *refusal)
{
    uint32_t gids_small[8], *gids = gids_small, ngids = 0, cap = 8;
    bool local = false;

    for (uint32_t i = 0; i < req->nkeys; i++) {
        uint32_t g = dest[i], k;
        local = local || g == 0;
        if (g == 0) continue;
        for (k = 0; k < ngids && gids[k] != g; k++) {
        }
        if (k < ngids) continue;
        if (ngids == cap) {
            uint32_t *ng = malloc(2 * cap * sizeof(*ng));
            if (ng == NULL) goto oom;
            memcpy(ng, gids, ngids * sizeof(*ng));
            if (gids != gids_small) free(gids);
            gids = ng;
            cap *= 2;
        }
        gids[ngids++] = g;
    }
    pc->fop = fwd_op_new(ngids, refusal);
    if (pc->fop == NULL) goto oom;
    pc->fop->values = true;
    if (local) {
        bc_outq_t saved = pc->out;
        bc_outq_init(&pc->out);
        retrieve_values(pc, req, dest, hashes);
        pc->fop->local = pc->out;
        pc->out = saved;
        if (pc->oom) {
            fwd_op_free(pc, pc->fop);
            pc->fop = NULL;
            goto out;
        }
    }

    const char *name = bc_mc_cmd_name(req->cmd);
    bool touch = req->cmd == BC_MC_CMD_GAT || req->cmd == BC_MC_CMD_GATS;
    size_t room = strlen(name) + 24 + (size_t)(req->keys_end - req->keys) + 3;
    for (uint32_t k = 0; k < ngids; k++) {
        char *buf = malloc(room);
        if (buf == NULL) {
            pc->fop->parts[k].st = BC_ENOMEM;
            continue;
        }
        size_t n = (size_t)(touch ? snprintf(buf, room, "%s %" PRId64, name, req->exptime)
                                  : snprintf(buf, room, "%s", name));
        const char *cursor = req->keys, *key;
        size_t nkey;
        uint32_t i = 0;
        while (bc_mc_next_key(&cursor, req->keys_end, &key, &nkey)) {
            if (dest[i++] != gids[k]) continue;
            buf[n++] = ' ';
            memcpy(buf + n, key, nkey);
            n += nkey;
        }
        buf[n++] = '\r';
        buf[n++] = '\n';
        fwd_send_part(pc, k, gids[k], buf, n);
    }
    fwd_sent(pc);
    goto out;
oom:
    pc->oom = true;
out:
    if (gids != gids_small) free(gids);
}

/* get, gets, gat, gats. */
static void
cmd_retrieve(bc_proto_conn_t *pc, const bc_mc_request_t *req)
{
    bool touch = req->cmd == BC_MC_CMD_GAT || req->cmd == BC_MC_CMD_GATS;
    uint32_t hashes[ROUTE_HASH_CACHE], dest_small[ROUTE_HASH_CACHE], *dest = NULL;
    char refusal[REFUSAL_MAX], first_fwd[REFUSAL_MAX];
    bool foreign = false;

    if (pc->env->cluster != NULL) {
        const char *cursor = req->keys, *key;
        size_t nkey;
        uint32_t i = 0;
        if (pc->fwd != NULL && !pc->peer) {
            dest = req->nkeys <= ROUTE_HASH_CACHE ? dest_small
                                                  : malloc(req->nkeys * sizeof(*dest));
            if (dest == NULL) {
                pc->oom = true;
                return;
            }
        }
        /* All keys are routed before any is served: the reply is either
         * the values or one refusal, never a mix. */
        while (bc_mc_next_key(&cursor, req->keys_end, &key, &nkey) && i < req->nkeys) {
            uint32_t hash = bc_hash_key(key, nkey), gid = 0;
            if (i < ROUTE_HASH_CACHE) hashes[i] = hash;
            route_action_t a = route_key(pc, hash, touch, &gid, refusal);
            if (a == ROUTE_REFUSE) {
                reply_bytes(pc, refusal, strlen(refusal));
                goto out;
            }
            if (a == ROUTE_FORWARD && !foreign) {
                foreign = true;
                memcpy(first_fwd, refusal, sizeof(first_fwd));
            }
            if (dest != NULL) dest[i] = a == ROUTE_FORWARD ? gid : 0;
            i++;
        }
        if (foreign) {
            fwd_retrieve(pc, req, dest, hashes, first_fwd);
            goto out;
        }
    }
    retrieve_values(pc, req, NULL, pc->env->cluster != NULL ? hashes : NULL);
    if (!pc->oom) REPLY(pc, "END\r\n");
out:
    if (dest != dest_small) free(dest);
}

/*
 * A storage command for another owner: its line and data block are
 * collected into one request (state FWD_DATA), sent once complete.
 */
static void
fwd_store_begin(bc_proto_conn_t *pc, const char *line, size_t len, const bc_mc_request_t *req,
                uint32_t gid, const char *refusal)
{
    size_t n;

    /* BEHAVIOR: a block larger than this node's item limit is not
     * buffered to be forwarded: it is answered here, as the owner would
     * (the owner's old value, if any, is left alone). */
    if ((size_t)req->vlen + 2 > bc_cache_max_item_size(pc->env->cache)) {
        bc_stats_incr(pc->stats, store_too_large);
        if (!req->noreply) REPLY(pc, "SERVER_ERROR object too large for cache\r\n");
        pc->state = BC_PROTO_SWALLOW;
        pc->swallow = (uint64_t)req->vlen + 2;
        return;
    }
    pc->fop = fwd_op_new(1, refusal);
    char *buf = pc->fop != NULL ? fwd_line(line, len, req->noreply, (size_t)req->vlen + 2, &n)
                                : NULL;
    if (buf == NULL) {
        fwd_op_free(pc, pc->fop);
        pc->fop = NULL;
        pc->oom = true;
        return;
    }
    pc->fop->buf = buf;
    pc->fop->len = n + req->vlen + 2;
    pc->fop->gid = gid;
    pc->fop->noreply = req->noreply;
    pc->state = BC_PROTO_FWD_DATA;
    pc->dst = buf + n;
    pc->need = req->vlen + 2;
}

/* The data block to forward is complete: check its terminator, send. */
static void
fwd_store_finish(bc_proto_conn_t *pc)
{
    bc_proto_fwd_op_t *op = pc->fop;
    const char *end = op->buf + op->len;

    pc->state = BC_PROTO_LINE;
    if (end[-2] != '\r' || end[-1] != '\n') {
        bc_stats_incr(pc->stats, protocol_errors);
        if (!op->noreply) REPLY(pc, "CLIENT_ERROR bad data chunk\r\n");
        fwd_op_free(pc, op);
        pc->fop = NULL;
        return;
    }
    char *buf = op->buf;
    op->buf = NULL;
    fwd_send_part(pc, 0, op->gid, buf, op->len);
    fwd_sent(pc);
}

/* A storage command line: allocate the item, then receive its data. */
static void
cmd_store_begin(bc_proto_conn_t *pc, const char *line, size_t len, const bc_mc_request_t *req)
{
    bc_cache_t *cache = pc->env->cache;
    uint32_t hash = bc_hash_key(req->key, req->nkey);
    uint32_t exptime = bc_cache_exptime_abs(cache, req->exptime);
    char refusal[REFUSAL_MAX];
    uint32_t gid = 0;
    bc_status_t st;

    switch (route_key(pc, hash, true, &gid, refusal)) {
    case ROUTE_SERVE:
        break;
    case ROUTE_FORWARD:
        fwd_store_begin(pc, line, len, req, gid, refusal);
        return;
    case ROUTE_REFUSE:
        if (!req->noreply) reply_bytes(pc, refusal, strlen(refusal));
        pc->state = BC_PROTO_SWALLOW;
        pc->swallow = (uint64_t)req->vlen + 2;
        return;
    }
    bc_item_t *it = bc_item_alloc(cache, req->key, req->nkey, hash, req->flags, exptime,
                                  req->vlen + 2, &st);
    if (it == NULL) {
        if (st == BC_ETOOLARGE) {
            bc_stats_incr(pc->stats, store_too_large);
            if (!req->noreply) REPLY(pc, "SERVER_ERROR object too large for cache\r\n");
        } else {
            bc_stats_incr(pc->stats, store_no_memory);
            if (!req->noreply) REPLY(pc, "SERVER_ERROR out of memory storing object\r\n");
        }
        if (req->cmd == BC_MC_CMD_SET) (void)bc_cache_delete(cache, req->key, req->nkey, hash);
        pc->state = BC_PROTO_SWALLOW;
        pc->swallow = (uint64_t)req->vlen + 2;
        return;
    }
    pc->state = BC_PROTO_DATA;
    pc->item = it;
    pc->dst = bc_item_value(it);
    pc->need = req->vlen + 2;
    pc->cmd = req->cmd;
    pc->cas = req->cas;
    pc->noreply = req->noreply;
}

/* The data block is complete: check its terminator and store. */
static void
cmd_store_finish(bc_proto_conn_t *pc)
{
    bc_cache_t *cache = pc->env->cache;
    bc_item_t *it = pc->item;
    const char *v = bc_item_value(it);
    bool noreply = pc->noreply;

    pc->item = NULL;
    pc->state = BC_PROTO_LINE;
    if (v[it->nbytes - 2] != '\r' || v[it->nbytes - 1] != '\n') {
        bc_item_release(cache, it);
        bc_stats_incr(pc->stats, protocol_errors);
        if (!noreply) REPLY(pc, "CLIENT_ERROR bad data chunk\r\n");
        return;
    }

    /* BEHAVIOR (migration fencing, node/migrate.h): the route was checked
     * when the command line came, but the data block may have taken several
     * loop iterations; the bucket may be read-only (being exported) or gone
     * by now.  Check again in the iteration that stores. */
    if (pc->env->cluster != NULL) {
        char refusal[REFUSAL_MAX];
        uint32_t gid = 0;
        if (route_key(pc, it->hash, true, &gid, refusal) != ROUTE_SERVE) {
            bc_item_release(cache, it);
            if (!noreply) reply_bytes(pc, refusal, strlen(refusal));
            return;
        }
    }

    bc_stats_incr(pc->stats, cmd_set);
    bc_mc_cmd_t cmd = pc->cmd;
    bool concat = cmd == BC_MC_CMD_APPEND || cmd == BC_MC_CMD_PREPEND;
    bc_status_t st = bc_cache_store(cache, it, store_mode(cmd), pc->cas, NULL);
    if (cmd == BC_MC_CMD_CAS) {
        if (st == BC_OK) bc_stats_incr(pc->stats, cas_hits);
        else if (st == BC_EEXISTS) bc_stats_incr(pc->stats, cas_badval);
        else if (st == BC_ENOTFOUND) bc_stats_incr(pc->stats, cas_misses);
    }
    if (st == BC_ENOMEM) bc_stats_incr(pc->stats, store_no_memory);
    if (st == BC_ETOOLARGE) bc_stats_incr(pc->stats, store_too_large);
    if (noreply) return;
    switch (st) {
    case BC_OK: REPLY(pc, "STORED\r\n"); break;
    case BC_EEXISTS: REPLY(pc, "EXISTS\r\n"); break;
    case BC_ENOTFOUND: REPLY(pc, "NOT_FOUND\r\n"); break;
    case BC_ENOTSTORED: REPLY(pc, "NOT_STORED\r\n"); break;
    case BC_ETOOLARGE:
    case BC_ENOMEM:
        /* memcached: a combined value that cannot be built is NOT_STORED. */
        if (concat) {
            REPLY(pc, "NOT_STORED\r\n");
        } else if (st == BC_ETOOLARGE) {
            REPLY(pc, "SERVER_ERROR object too large for cache\r\n");
        } else {
            REPLY(pc, "SERVER_ERROR out of memory storing object\r\n");
        }
        break;
    default:
        log_warn("store returned an unexpected status (%s)", bc_status_str(st));
        REPLY(pc, "SERVER_ERROR unhandled storage result\r\n");
        break;
    }
}

static void
cmd_delete(bc_proto_conn_t *pc, const char *line, size_t len, const bc_mc_request_t *req)
{
    uint32_t hash = bc_hash_key(req->key, req->nkey);
    if (route_write(pc, line, len, req, hash)) return;
    bc_status_t st = bc_cache_delete(pc->env->cache, req->key, req->nkey, hash);
    if (st == BC_OK) {
        bc_stats_incr(pc->stats, delete_hits);
        if (!req->noreply) REPLY(pc, "DELETED\r\n");
    } else {
        bc_stats_incr(pc->stats, delete_misses);
        if (!req->noreply) REPLY(pc, "NOT_FOUND\r\n");
    }
}

static void
cmd_arith(bc_proto_conn_t *pc, const char *line, size_t len, const bc_mc_request_t *req)
{
    bool incr = req->cmd == BC_MC_CMD_INCR;
    uint32_t hash = bc_hash_key(req->key, req->nkey);
    uint64_t result = 0;
    if (route_write(pc, line, len, req, hash)) return;
    bc_status_t st = bc_cache_arith(pc->env->cache, req->key, req->nkey, hash, incr,
                                    req->delta, &result);
    if (st == BC_OK) {
        if (incr) bc_stats_incr(pc->stats, incr_hits);
        else bc_stats_incr(pc->stats, decr_hits);
    } else if (st == BC_ENOTFOUND) {
        if (incr) bc_stats_incr(pc->stats, incr_misses);
        else bc_stats_incr(pc->stats, decr_misses);
    }
    if (req->noreply) return;
    switch (st) {
    case BC_OK: reply_u64(pc, result); break;
    case BC_ENOTFOUND: REPLY(pc, "NOT_FOUND\r\n"); break;
    case BC_ENONNUMERIC:
        REPLY(pc, "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
        break;
    default: REPLY(pc, "SERVER_ERROR out of memory\r\n"); break;
    }
}

static void
cmd_touch(bc_proto_conn_t *pc, const char *line, size_t len, const bc_mc_request_t *req)
{
    bc_cache_t *cache = pc->env->cache;
    uint32_t hash = bc_hash_key(req->key, req->nkey);
    if (route_write(pc, line, len, req, hash)) return;
    bc_status_t st = bc_cache_touch(cache, req->key, req->nkey, hash,
                                    bc_cache_exptime_abs(cache, req->exptime));
    bc_stats_incr(pc->stats, cmd_touch);
    if (st == BC_OK) {
        bc_stats_incr(pc->stats, touch_hits);
        if (!req->noreply) REPLY(pc, "TOUCHED\r\n");
    } else {
        bc_stats_incr(pc->stats, touch_misses);
        if (!req->noreply) REPLY(pc, "NOT_FOUND\r\n");
    }
}

static void
cmd_flush_all(bc_proto_conn_t *pc, const bc_mc_request_t *req)
{
    bc_cache_t *cache = pc->env->cache;
    /* memcached: a delay <= 0 means now; otherwise it is an exptime. */
    uint32_t when = req->has_delay && req->exptime > 0 ? bc_cache_exptime_abs(cache, req->exptime)
                                                       : 0;
    bc_cache_flush(cache, when);
    bc_stats_incr(pc->stats, cmd_flush);
    if (!req->noreply) REPLY(pc, "OK\r\n");
}

/* Server-wide figures, or this connection's worker alone without a hook. */
static void
stats_collect(bc_proto_conn_t *pc, bc_server_stats_t *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (pc->env->server_stats != NULL) {
        pc->env->server_stats(pc->env->hook_arg, ss);
    } else {
        ss->threads = 1;
        bc_stats_accumulate(&ss->totals, pc->stats);
    }
}

/* The replication lines (cluster mode only). */
static void
stats_replication(bc_proto_conn_t *pc)
{
    char buf[2048];
    if (pc->env->repl_stats == NULL) return;
    size_t n = pc->env->repl_stats(pc->env->repl_ctx, buf, sizeof(buf));
    if (n > 0) reply_bytes(pc, buf, n);
}

static void
stats_general(bc_proto_conn_t *pc)
{
    bc_proto_env_t *env = pc->env;
    bc_server_stats_t ss;
    bc_cache_stats_t cs;
    struct rusage ru;
    uint32_t now = bc_cache_now(env->cache);

    stats_collect(pc, &ss);
    bc_cache_get_stats(env->cache, &cs);
    getrusage(RUSAGE_SELF, &ru);

    STAT_U64(pc, "pid", (uint64_t)getpid());
    STAT_U64(pc, "uptime", (int64_t)now > (int64_t)env->started ? now - (uint64_t)env->started : 0);
    STAT_U64(pc, "time", now);
    STAT_STR(pc, "version", BC_VERSION);
    STAT_U64(pc, "pointer_size", sizeof(void *) * 8);
    reply_fmt(pc, "STAT rusage_user %ld.%06ld\r\n", (long)ru.ru_utime.tv_sec,
              (long)ru.ru_utime.tv_usec);
    reply_fmt(pc, "STAT rusage_system %ld.%06ld\r\n", (long)ru.ru_stime.tv_sec,
              (long)ru.ru_stime.tv_usec);
    STAT_U64(pc, "max_connections", env->max_conns);
    STAT_U64(pc, "curr_connections", ss.curr_connections);
    STAT_U64(pc, "total_connections", ss.total_connections);
    STAT_U64(pc, "rejected_connections", ss.rejected_connections);
#define BC__STATS_LINE(name, desc) STAT_U64(pc, #name, ss.totals.name);
    BC_THREAD_STATS(BC__STATS_LINE)
#undef BC__STATS_LINE
    STAT_U64(pc, "limit_maxbytes", cs.mem_limit);
    STAT_U64(pc, "threads", ss.threads);
    STAT_U64(pc, "bytes", cs.mem_used);
    STAT_U64(pc, "data_bytes", cs.data_bytes);
    STAT_U64(pc, "curr_items", cs.curr_items);
    STAT_U64(pc, "total_items", cs.total_items);
    STAT_U64(pc, "expired_unfetched", cs.expired_unfetched);
    STAT_U64(pc, "evicted_unfetched", cs.evicted_unfetched);
    STAT_U64(pc, "evictions", cs.evictions);
    STAT_U64(pc, "reclaimed", cs.reclaimed);
    STAT_U64(pc, "expired_active", cs.expired_active);
    STAT_U64(pc, "flushed", cs.flushed);
    STAT_U64(pc, "pinned_bytes", cs.pinned_bytes);
    stats_replication(pc);
    REPLY(pc, "END\r\n");
}

static void
stats_settings(bc_proto_conn_t *pc)
{
    bc_proto_env_t *env = pc->env;
    bc_cache_stats_t cs;

    bc_cache_get_stats(env->cache, &cs);
    STAT_U64(pc, "maxbytes", cs.mem_limit);
    STAT_U64(pc, "maxconns", env->max_conns);
    STAT_U64(pc, "tcpport", env->port);
    STAT_U64(pc, "udpport", 0);
    STAT_STR(pc, "inter", env->listen_addr != NULL ? env->listen_addr : "NULL");
    STAT_U64(pc, "verbosity", (uint64_t)atomic_load(&env->verbosity));
    STAT_STR(pc, "evictions", "on");
    STAT_U64(pc, "num_threads", env->nthreads);
    STAT_STR(pc, "cas_enabled", "yes");
    STAT_U64(pc, "tcp_backlog", (uint64_t)(env->backlog > 0 ? env->backlog : 0));
    STAT_U64(pc, "item_size_max", bc_cache_max_item_size(env->cache));
    STAT_STR(pc, "flush_enabled", "yes");
    STAT_STR(pc, "hash_algorithm", "murmur3");
    STAT_STR(pc, "eviction_policy", bc_cache_policy_name(env->cache));
    STAT_U64(pc, "buckets", bc_cache_nbuckets(env->cache));
    STAT_U64(pc, "max_conn_buffer", env->max_conn_buffer);
    REPLY(pc, "END\r\n");
}

/*
 * memcached reports items per slab class.  There are no slab classes here:
 * everything is reported as class 1, and nothing at all when empty, as
 * memcached does for an empty class.
 */
static void
stats_items(bc_proto_conn_t *pc)
{
    bc_server_stats_t ss;
    bc_cache_stats_t cs;

    bc_cache_get_stats(pc->env->cache, &cs);
    if (cs.curr_items > 0) {
        stats_collect(pc, &ss);
        STAT_U64(pc, "items:1:number", cs.curr_items);
        STAT_U64(pc, "items:1:mem_requested", cs.data_bytes);
        STAT_U64(pc, "items:1:evicted", cs.evictions);
        STAT_U64(pc, "items:1:outofmemory", ss.totals.store_no_memory);
        STAT_U64(pc, "items:1:reclaimed", cs.reclaimed);
        STAT_U64(pc, "items:1:expired_unfetched", cs.expired_unfetched);
        STAT_U64(pc, "items:1:evicted_unfetched", cs.evicted_unfetched);
    }
    REPLY(pc, "END\r\n");
}

static void
cmd_stats(bc_proto_conn_t *pc, const bc_mc_request_t *req)
{
    const char *sub = req->subcmd;
    uint32_t n = req->nsubcmd;

#define SUB_IS(lit) (n == sizeof(lit) - 1 && memcmp(sub, lit, n) == 0)
    if (sub == NULL) {
        stats_general(pc);
    } else if (SUB_IS("settings")) {
        stats_settings(pc);
    } else if (SUB_IS("items")) {
        stats_items(pc);
    } else if (SUB_IS("slabs")) {
        /* No slab allocator: items are malloc'd at their own size. */
        bc_cache_stats_t cs;
        bc_cache_get_stats(pc->env->cache, &cs);
        STAT_U64(pc, "active_slabs", 0);
        STAT_U64(pc, "total_malloced", cs.mem_used);
        REPLY(pc, "END\r\n");
    } else if (SUB_IS("replication") && pc->env->repl_stats != NULL) {
        stats_replication(pc);
        REPLY(pc, "END\r\n");
    } else if (SUB_IS("sizes")) {
        REPLY(pc, "STAT sizes_status disabled\r\nEND\r\n");
    } else if (SUB_IS("reset")) {
        if (pc->env->stats_reset != NULL) pc->env->stats_reset(pc->env->hook_arg);
        REPLY(pc, "RESET\r\n");
    } else {
        bc_stats_incr(pc->stats, protocol_errors);
        REPLY(pc, "ERROR\r\n");
    }
#undef SUB_IS
}

/*
 * "bucketcache_peer <name>": another node's forwarding connection (see
 * forward.h).  The connection is marked as a peer: from now on its keys
 * are served or refused, never forwarded.  name: the handshake's name
 * (bc_wire_peer_parse), n bytes.
 */
static void
cmd_peer(bc_proto_conn_t *pc, const char *name, size_t n)
{
    if (!pc->peer) {
        pc->peer = true;
        bc_stats_incr(pc->stats, peer_connections);
        log_debug("connection %d: peer connection from node %.*s", pc->id, (int)n, name);
    }
    REPLY(pc, BC_WIRE_PEER_OK);
}

/* Runs one command line; BC_ECLOSED asks for the connection to close. */
static bc_status_t
process_line(bc_proto_conn_t *pc, const char *line, size_t len)
{
    bc_mc_request_t req;

    if (atomic_load_explicit(&pc->env->verbosity, memory_order_relaxed) > 1) {
        log_info("<%d %.*s", pc->id, (int)(len > 200 ? 200 : len), line);
    }
    const char *args;
    size_t nargs;
    if (pc->env->handoff_replicate && bc_wire_replicate_match(line, len, &args, &nargs) == BC_OK) {
        if (nargs >= BC_PROTO_HANDOFF_ARGS_MAX) {
            bc_stats_incr(pc->stats, protocol_errors);
            REPLY(pc, "CLIENT_ERROR line too long\r\n");
            return BC_OK;
        }
        pc->handoff_args = args;
        pc->handoff_len = nargs;
        return BC_EHANDOFF;
    }
    switch (bc_wire_peer_parse(line, len, &args, &nargs)) {
    case BC_OK:
        cmd_peer(pc, args, nargs);
        return BC_OK;
    case BC_EINVAL:
        bc_stats_incr(pc->stats, protocol_errors);
        REPLY(pc, "CLIENT_ERROR bad command line format\r\n");
        return BC_OK;
    default:
        break;
    }
    if (bc_mc_request_parse(line, len, &req) != BC_OK) {
        if (req.close) return BC_ECLOSED;
        bc_stats_incr(pc->stats, protocol_errors);
        if (!req.noreply) reply_line(pc, req.error);
        return BC_OK;
    }
    switch (req.cmd) {
    case BC_MC_CMD_GET:
    case BC_MC_CMD_GETS:
    case BC_MC_CMD_GAT:
    case BC_MC_CMD_GATS:
        cmd_retrieve(pc, &req);
        break;
    case BC_MC_CMD_SET:
    case BC_MC_CMD_ADD:
    case BC_MC_CMD_REPLACE:
    case BC_MC_CMD_APPEND:
    case BC_MC_CMD_PREPEND:
    case BC_MC_CMD_CAS:
        cmd_store_begin(pc, line, len, &req);
        break;
    case BC_MC_CMD_DELETE:
        cmd_delete(pc, line, len, &req);
        break;
    case BC_MC_CMD_INCR:
    case BC_MC_CMD_DECR:
        cmd_arith(pc, line, len, &req);
        break;
    case BC_MC_CMD_TOUCH:
        cmd_touch(pc, line, len, &req);
        break;
    case BC_MC_CMD_FLUSH_ALL:
        cmd_flush_all(pc, &req);
        break;
    case BC_MC_CMD_STATS:
        cmd_stats(pc, &req);
        break;
    case BC_MC_CMD_VERSION:
        REPLY(pc, "VERSION " BC_VERSION "\r\n");
        break;
    case BC_MC_CMD_VERBOSITY:
        atomic_store(&pc->env->verbosity, (int)req.verbosity);
        if (!req.noreply) REPLY(pc, "OK\r\n");
        break;
    case BC_MC_CMD_QUIT:
        return BC_ECLOSED;
    case BC_MC_CMD_NONE:
        break;
    }
    return BC_OK;
}

/* ------------------------------------------------------------------------ */
/* the input state machine                                                  */
/* ------------------------------------------------------------------------ */

void
bc_proto_conn_init(bc_proto_conn_t *pc, bc_proto_env_t *env, bc_thread_stats_t *stats, int id)
{
    memset(pc, 0, sizeof(*pc));
    pc->env = env;
    pc->stats = stats;
    pc->id = id;
    pc->out_limit = env->max_conn_buffer ? env->max_conn_buffer : SIZE_MAX;
    pc->state = BC_PROTO_LINE;
    bc_outq_init(&pc->out);
}

void
bc_proto_conn_set_forward(bc_proto_conn_t *pc, bc_fwd_t *fwd, void (*resume)(void *arg),
                          void *arg)
{
    pc->fwd = fwd;
    pc->resume = resume;
    pc->resume_arg = arg;
}

void
bc_proto_conn_release(bc_proto_conn_t *pc)
{
    if (pc->item != NULL) {
        bc_item_release(pc->env->cache, pc->item);
        pc->item = NULL;
    }
    fwd_op_free(pc, pc->fop);
    pc->fop = NULL;
    pc->waiting = false;
    bc_outq_free(&pc->out, pc->env->cache);
    pc->state = BC_PROTO_LINE;
}

static void
data_advance(bc_proto_conn_t *pc, size_t n)
{
    pc->dst += n;
    pc->need -= (uint32_t)n;
    if (pc->need > 0) return;
    if (pc->state == BC_PROTO_FWD_DATA) {
        fwd_store_finish(pc);
    } else {
        cmd_store_finish(pc);
    }
}

bool
bc_proto_direct_dest(const bc_proto_conn_t *pc, char **dst, size_t *n)
{
    if (pc->state != BC_PROTO_DATA && pc->state != BC_PROTO_FWD_DATA) return false;
    *dst = pc->dst;
    *n = pc->need;
    return true;
}

bc_status_t
bc_proto_direct_done(bc_proto_conn_t *pc, size_t n)
{
    if ((pc->state == BC_PROTO_DATA || pc->state == BC_PROTO_FWD_DATA) && n > 0 &&
        n <= pc->need) {
        data_advance(pc, n);
    }
    return pc->oom ? BC_ENOMEM : BC_OK;
}

bc_status_t
bc_proto_process(bc_proto_conn_t *pc, const char *buf, size_t len, size_t out_limit,
                 size_t *consumed)
{
    size_t pos = 0;
    bc_status_t st = BC_OK;

    pc->out_limit = out_limit;
    /* A forwarded command holds back everything after it (reply order). */
    while (pos < len && st == BC_OK && !pc->oom && !pc->waiting) {
        if (pc->out.pending >= out_limit) break;
        size_t avail = len - pos;

        if (pc->state == BC_PROTO_DATA || pc->state == BC_PROTO_FWD_DATA) {
            size_t n = avail < pc->need ? avail : pc->need;
            memcpy(pc->dst, buf + pos, n);
            pos += n;
            data_advance(pc, n);
            continue;
        }
        if (pc->state == BC_PROTO_SWALLOW) {
            size_t n = avail < pc->swallow ? avail : (size_t)pc->swallow;
            pos += n;
            pc->swallow -= n;
            if (pc->swallow == 0) pc->state = BC_PROTO_LINE;
            continue;
        }

        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', avail);
        if (nl == NULL) {
            /* An incomplete line: wait for more, unless it is too long. */
            if ((avail > BC_MC_LINE_SOFT_MAX && !bc_mc_line_may_be_long(line, avail)) ||
                avail > BC_MC_LINE_HARD_MAX) {
                log_debug("connection %d: %zu bytes without a newline, closing", pc->id,
                          avail);
                st = BC_ECLOSED;
            }
            break;
        }
        pos += (size_t)(nl - line) + 1;
        st = process_line(pc, line, (size_t)(nl - line));
    }
    *consumed = pos;
    return pc->oom ? BC_ENOMEM : st;
}
