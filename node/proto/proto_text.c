/*
 * proto_text.c -- memcached text commands on the cache; see proto_text.h.
 * This file is the executor: the input state machine, the routing of
 * keys, the commands served here and the handler the server calls.  The
 * commands forwarded to another node are in proto_fwd.c, the "stats"
 * command in proto_stats.c (proto_int.h is what they share).
 *
 * Every reply text and every corner case here was checked against
 * memcached 1.6.18 (tests/integration/test_memcached_compat.py and
 * test_memcached_differential.py send the same streams to both).  The behaviours worth knowing:
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
 * A write meets READONLY only after waiting out the pause (proto_text.h,
 * "WRITES DURING A MIGRATION PAUSE").
 * Reads are the exception, on such a connection (a memcached client's):
 * a get of a bucket without owner is a miss, and in a multi-get every key
 * that cannot be answered is a miss (docs/protocol.md says why).  On a
 * peer connection, or without a forwarder, a multi-get containing any key
 * to refuse answers that refusal alone, for libbucketcache to act on.
 *
 * Where we differ from memcached on purpose (docs/protocol.md lists every
 * difference): a multi-get containing a bad key answers CLIENT_ERROR for
 * that command only -- memcached 1.6.18 also drops the replies of earlier
 * pipelined commands still in its queue -- and the SERVER_ERROR of a
 * too-large value is sent at once rather than after the swallowed block
 * has arrived.
 */
#include "proto/proto_text.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_hash.h"
#include "bc_log.h"
#include "bc_time.h"
#include "bc_wire.h"
#include "proto/proto_int.h"

/* Longest VALUE header: "VALUE " key " " flags " " bytes " " cas "\r\n". */
#define VALUE_HEADER_MAX (6 + BC_MC_KEY_MAX_LEN + 1 + 10 + 1 + 10 + 1 + 20 + 2)

/* ------------------------------------------------------------------------ */
/* reply helpers                                                            */
/* ------------------------------------------------------------------------ */

void
bc__proto_reply_bytes(bc_proto_conn_t *pc, const char *s, size_t n)
{
    if (!bc_outq_add(&pc->out, s, n)) pc->oom = true;
}

void
bc__proto_reply_line(bc_proto_conn_t *pc, const char *s)
{
    size_t n = strlen(s);
    char *p = bc_outq_reserve(&pc->out, n + 2);
    if (p == NULL) {
        pc->oom = true;
        return;
    }
    memcpy(p, s, n);
    memcpy(p + n, "\r\n", 2);
    if (!bc_outq_commit(&pc->out, n + 2)) pc->oom = true;
}

void
bc__proto_reply_u64(bc_proto_conn_t *pc, uint64_t v)
{
    char *p = bc_outq_reserve(&pc->out, 22);
    if (p == NULL) {
        pc->oom = true;
        return;
    }
    size_t n = bc_mc_u64_to_dec(v, p);
    memcpy(p + n, "\r\n", 2);
    if (!bc_outq_commit(&pc->out, n + 2)) pc->oom = true;
}

void
bc__proto_reply_fmt(bc_proto_conn_t *pc, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof(line)) n = (int)sizeof(line) - 1;
    bc__proto_reply_bytes(pc, line, (size_t)n);
}

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

/*
 * bc__proto_route (proto_int.h): the cluster routing of one key.  Only the
 * decision is made here; the refusal line is formatted when it is sent
 * (bc__proto_refusal), which for a forwarded key is almost never.
 */
bc_proto_action_t
bc__proto_route(bc_proto_conn_t *pc, uint32_t hash, bool write, bc_proto_route_t *r)
{
    bc_node_cluster_t *cl = pc->env->cluster;

    r->why = BC_ROUTE_SERVE;
    r->owner = 0;
    r->epoch = 0;
    if (cl == NULL) return BC_PROTO_SERVE;
    r->bucket = bc_hash_bucket(hash, bc_cache_nbuckets(pc->env->cache));
    r->why = bc_node_cluster_route(cl, r->bucket, write, &r->owner, &r->epoch);
    if (r->why == BC_ROUTE_SERVE || (r->why == BC_ROUTE_READONLY && !write)) {
        return BC_PROTO_SERVE;
    }
    /* BEHAVIOR: one hop only -- a request that came over a peer connection
     * is never forwarded again, whatever this node's table says. */
    if ((r->why == BC_ROUTE_MOVED || r->why == BC_ROUTE_NOT_PRIMARY) && pc->fwd != NULL &&
        !pc->peer && bc_fwd_can_reach(pc->fwd, r->owner)) {
        return BC_PROTO_FORWARD;
    }
    return BC_PROTO_REFUSE;
}

size_t
bc__proto_refusal(const bc_proto_route_t *r, char *buf)
{
    int n = bc_node_cluster_format_refusal(r->why, r->bucket, r->owner, r->epoch, buf,
                                           REFUSAL_MAX);
    if (n <= 0) n = snprintf(buf, REFUSAL_MAX, "SERVER_ERROR bucket not served here\r\n");
    return (size_t)n;
}

/* Queues r's refusal line. */
static void
reply_refusal(bc_proto_conn_t *pc, const bc_proto_route_t *r)
{
    char line[REFUSAL_MAX];
    size_t n = bc__proto_refusal(r, line);
    bc__proto_reply_bytes(pc, line, n);
}

uint32_t
bc__proto_pause_delay_ms(const bc_proto_env_t *env, uint32_t tries)
{
    uint32_t most = env->pause_retry_ms != 0 ? env->pause_retry_ms : 5u;
    uint32_t d = tries < 3 ? 1u << tries : most;
    return d < most ? d : most;
}

/* The timed retry of a held write: the input goes on (resume runs the
 * held line again). */
static void cmd_store_finish(bc_proto_conn_t *pc);

static void
proto_pause_retry(void *arg)
{
    bc_proto_conn_t *pc = arg;
    pc->ro_hold = false;
    /* A storage command held with its whole data block (cmd_store_finish)
     * is stored (or held again) here: no input may come to run it. */
    if (pc->state == BC_PROTO_DATA && pc->need == 0 && pc->item != NULL) {
        if (pc->binary) bc__proto_bin_store_finish(pc);
        else cmd_store_finish(pc);
        if (!pc->ro_hold) pc->ro_since_ms = 0;
    }
    if (pc->resume != NULL) pc->resume(pc->resume_arg);
}

/* proto_int.h */
bool
bc__proto_hold_for_pause(bc_proto_conn_t *pc, const bc_proto_route_t *r)
{
    if (r->why != BC_ROUTE_READONLY || pc->peer || pc->fwd == NULL ||
        pc->env->readonly_wait_ms == 0) {
        return false;
    }
    uint64_t now = (uint64_t)bc_time_mono_ms();
    if (pc->ro_since_ms == 0) {
        pc->ro_since_ms = now;
        pc->ro_tries = 0;
        bc_stats_incr(pc->stats, pause_waits);
    } else if (now - pc->ro_since_ms >= pc->env->readonly_wait_ms) {
        pc->ro_since_ms = 0;
        bc_stats_incr(pc->stats, pause_timeouts);
        return false;                   /* waited long enough: refused */
    }
    pc->ro_hold = true;
    bc_fwd_post_at(pc->fwd, &pc->ro_post,
                   now + bc__proto_pause_delay_ms(pc->env, pc->ro_tries++));
    return true;
}

char *
bc__proto_exec_local(bc_proto_conn_t *pc, const char *req, size_t len, size_t *rlen)
{
    bc_proto_conn_t tmp;
    size_t used = 0, total = 0;
    struct iovec iov[16];
    char *out = NULL;

    bc_proto_conn_init(&tmp, pc->env, pc->stats, pc->id);
    tmp.peer = true;                    /* served or refused here, never forwarded or held */
    bc_status_t st = bc_proto_process(&tmp, req, len, SIZE_MAX, &used);
    int k = st == BC_ENOMEM ? -1 : bc_outq_iov(&tmp.out, iov, 16);
    for (int i = 0; i < k; i++) total += iov[i].iov_len;
    if (k >= 0 && total == tmp.out.pending) {
        out = malloc(total > 0 ? total : 1);
        if (out != NULL) {
            size_t off = 0;
            for (int i = 0; i < k; i++) {
                memcpy(out + off, iov[i].iov_base, iov[i].iov_len);
                off += iov[i].iov_len;
            }
            *rlen = total;
        }
    }
    bc_proto_conn_release(&tmp);
    return out;
}

/*
 * Routes a one-key write command.  Returns true when it has been dealt
 * with here (refused or forwarded), false when it is to be served.
 */
static bool
route_write(bc_proto_conn_t *pc, const char *line, size_t len, const bc_mc_request_t *req,
            uint32_t hash)
{
    bc_proto_route_t r;
    switch (bc__proto_route(pc, hash, true, &r)) {
    case BC_PROTO_SERVE:
        return false;
    case BC_PROTO_FORWARD:
        bc__proto_fwd_simple(pc, line, len, req, &r);
        return true;
    case BC_PROTO_REFUSE:
        break;
    }
    if (bc__proto_hold_for_pause(pc, &r)) return true;
    if (!req->noreply) reply_refusal(pc, &r);
    return true;
}

/* What value_write needs, and what it says back. */
typedef struct value_ctx {
    char *p;                   /* reserved output space */
    const char *key;
    size_t nkey;
    bool with_cas;
    bool may_copy;             /* the value may go next to its header */
    size_t len;                /* bytes written at p */
    uint32_t nbytes;           /* the value's length with CRLF */
} value_ctx_t;

/* bc_cache_read_fn: writes the VALUE line into the reserved space and, for
 * a small value, the value after it; asks for a reference otherwise.
 * Runs under the item's shard lock: a few hundred bytes of copying. */
static bool
value_write(const bc_item_t *it, void *arg)
{
    value_ctx_t *v = arg;
    char *p = v->p, *h = p;
    v->nbytes = bc_item_nbytes(it);
    memcpy(p, "VALUE ", 6);
    p += 6;
    memcpy(p, v->key, v->nkey);
    p += v->nkey;
    *p++ = ' ';
    p += bc_mc_u64_to_dec(bc_item_flags(it), p);
    *p++ = ' ';
    p += bc_mc_u64_to_dec(v->nbytes - 2, p);
    if (v->with_cas) {
        *p++ = ' ';
        p += bc_mc_u64_to_dec(bc_item_cas(it), p);
    }
    *p++ = '\r';
    *p++ = '\n';
    bool copy = v->may_copy && v->nbytes <= BC_PROTO_COPY_MAX;
    if (copy) {
        memcpy(p, bc_item_value_const(it), v->nbytes);
        p += v->nbytes;
    }
    v->len = (size_t)(p - h);
    return !copy;
}

/*
 * bc__proto_retrieve_values (proto_int.h): the VALUE blocks of the keys
 * served here.
 *
 * BEHAVIOR: a value of up to BC_PROTO_COPY_MAX bytes is copied next to its
 * VALUE header during the lookup (bc_cache_read: the item is never held);
 * only larger values are sent from the item itself, which the reply then
 * holds.  The kernel copies every byte into the socket anyway, and for a
 * small value one more memcpy costs less than an extra iovec (per-segment
 * work in sendmsg) and than holding the item, which pins its whole segment
 * (engine/cache.h): a pipelined batch of small hits goes out as ONE
 * contiguous range.  It also keeps incr/decr in place as in memcached: the
 * cache rewrites a number in place only when nothing holds the item's
 * segment, and numbers are always small.
 */
void
bc__proto_retrieve_values(bc_proto_conn_t *pc, const bc_mc_request_t *req, const uint32_t *dest,
                          const uint32_t *hashes, uint32_t *lens)
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
        /* Past the output limit, even small values are referenced: a
         * 64 KiB multi-get of "a a a ..." must not buffer megabytes. */
        bool may_copy = pc->out.pending < pc->out_limit;
        size_t before = pc->out.pending;
        value_ctx_t v = {
            .p = bc_outq_reserve(&pc->out, VALUE_HEADER_MAX + (may_copy ? BC_PROTO_COPY_MAX : 0)),
            .key = key, .nkey = nkey, .with_cas = with_cas, .may_copy = may_copy,
        };
        if (v.p == NULL) {
            pc->oom = true;
            return;
        }
        bool found;
        bc_item_t *it;
        if (pc->found_n > 0) {
            /* read-through: looked up (and held) already */
            it = bc__proto_origin_take(pc, k);
            found = it != NULL;
            if (it != NULL && !value_write(it, &v)) {
                bc_item_release(cache, it);     /* copied */
                it = NULL;
            }
        } else {
            uint32_t hash = hashes != NULL && k < ROUTE_HASH_CACHE ? hashes[k]
                                                                   : bc_hash_key(key, nkey);
            it = bc_cache_read(cache, key, nkey, hash, touch, exptime, value_write, &v, &found);
        }
        bc__proto_detail_get(pc->env, key, nkey, found);
        if (!found) continue;
        hits++;
        if (!bc_outq_commit(&pc->out, v.len)) {
            bc_item_release(cache, it);
            pc->oom = true;
            return;
        }
        if (it != NULL && !bc_outq_add_item(&pc->out, cache, it, bc_item_value(it), v.nbytes)) {
            pc->oom = true;
            return;
        }
        if (lens != NULL && k < req->nkeys) lens[k] = (uint32_t)(pc->out.pending - before);
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
 * get, gets, gat, gats.  line (len bytes) is the command line as it came.
 *
 * In a cluster every key is routed first.  On a memcached client's
 * connection of a forwarding node ("plain"), a key that cannot be
 * answered reads as a miss (see "FORWARDING" in proto_text.h), but a
 * one-key command keeps its error line unless the bucket has no owner.
 * Elsewhere (a peer connection, a node that does not forward) the reply
 * is the values or one refusal, never a mix.
 */
static void
cmd_retrieve(bc_proto_conn_t *pc, const char *line, size_t len, const bc_mc_request_t *req)
{
    bool touch = req->cmd == BC_MC_CMD_GAT || req->cmd == BC_MC_CMD_GATS;
    bool plain = pc->fwd != NULL && !pc->peer;
    uint32_t hashes[ROUTE_HASH_CACHE], dest_small[ROUTE_HASH_CACHE], *dest = NULL;
    bc_proto_route_t first_fwd;
    uint32_t nforward = 0, nfailed = 0, nunowned = 0;

    if (pc->env->cluster != NULL) {
        const char *cursor = req->keys, *key;
        size_t nkey;
        uint32_t i = 0;
        if (plain) {
            dest = req->nkeys <= ROUTE_HASH_CACHE ? dest_small
                                                  : malloc(req->nkeys * sizeof(*dest));
            if (dest == NULL) {
                pc->oom = true;
                return;
            }
        }
        while (bc_mc_next_key(&cursor, req->keys_end, &key, &nkey) && i < req->nkeys) {
            uint32_t hash = bc_hash_key(key, nkey);
            bc_proto_route_t r;
            if (i < ROUTE_HASH_CACHE) hashes[i] = hash;
            bc_proto_action_t a = bc__proto_route(pc, hash, touch, &r);
            uint32_t d = 0;
            if (a == BC_PROTO_REFUSE) {
                /* A gat/gats in a bucket's migration pause waits, the
                 * whole command (proto_text.h). */
                if (touch && bc__proto_hold_for_pause(pc, &r)) goto out;
                /* A bucket without owner reads as a miss, even alone; any
                 * other refusal does inside a multi-get only. */
                if (!plain || (req->nkeys == 1 && r.why != BC_ROUTE_NO_OWNER)) {
                    reply_refusal(pc, &r);
                    goto out;
                }
                if (r.why == BC_ROUTE_NO_OWNER) {
                    d = BC_PROTO_DEST_NO_OWNER;
                    nunowned++;
                } else {
                    d = BC_PROTO_DEST_FAILED;
                    nfailed++;
                }
            } else if (a == BC_PROTO_FORWARD) {
                if (nforward++ == 0) first_fwd = r;
                d = r.owner;
            }
            if (dest != NULL) dest[i] = d;
            i++;
        }
        bc__proto_count_unanswered(pc, nunowned, true);
        bc__proto_count_unanswered(pc, nfailed, false);
    }
    if (nforward > 0 && req->nkeys == 1) {
        bc__proto_fwd_get_one(pc, line, len, &first_fwd);
        goto out;
    }
    /* Local misses with an origin: answered once filled (proto_origin.c). */
    if (bc__proto_origin_resolve(pc, line, len, req, dest,
                                 pc->env->cluster != NULL ? hashes : NULL, nforward > 0)) {
        goto out;
    }
    if (nforward > 0) {
        bc__proto_fwd_retrieve(pc, req, dest, hashes);
        goto out;
    }
    bc__proto_retrieve_values(pc, req, dest, pc->env->cluster != NULL ? hashes : NULL, NULL);
    if (!pc->oom) REPLY(pc, "END\r\n");
out:
    bc__proto_origin_release(pc);
    if (dest != dest_small) free(dest);
}

/* A storage command line: allocate the item, then receive its data. */
static void
cmd_store_begin(bc_proto_conn_t *pc, const char *line, size_t len, const bc_mc_request_t *req)
{
    bc_cache_t *cache = pc->env->cache;
    uint32_t hash = bc_hash_key(req->key, req->nkey);
    uint32_t exptime = bc_cache_exptime_abs(cache, req->exptime);
    bc_proto_route_t r;
    bc_status_t st;

    switch (bc__proto_route(pc, hash, true, &r)) {
    case BC_PROTO_SERVE:
        break;
    case BC_PROTO_FORWARD:
        bc__proto_fwd_store_begin(pc, line, len, req, &r);
        return;
    case BC_PROTO_REFUSE:
        if (bc__proto_hold_for_pause(pc, &r)) return;
        if (!req->noreply) reply_refusal(pc, &r);
        pc->state = BC_PROTO_SWALLOW;
        pc->swallow = (uint64_t)req->vlen + 2;
        return;
    }
    bc__proto_detail_set(pc->env, req->key, req->nkey);
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
    pc->hash = hash;
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
    uint32_t nbytes = bc_item_nbytes(it);
    if (v[nbytes - 2] != '\r' || v[nbytes - 1] != '\n') {
        bc_item_release(cache, it);
        bc_stats_incr(pc->stats, protocol_errors);
        if (!noreply) REPLY(pc, "CLIENT_ERROR bad data chunk\r\n");
        return;
    }

    /* BEHAVIOR (migration fencing, migrate/migrate.h): the route was checked
     * when the command line came, but the data block may have taken several
     * loop iterations; the bucket may be read-only (being exported) or gone
     * by now.  Check again in the iteration that stores. */
    if (pc->env->cluster != NULL) {
        bc_proto_route_t r;
        if (bc__proto_route(pc, pc->hash, true, &r) != BC_PROTO_SERVE) {
            /* The pause began while the block was arriving: the complete
             * item waits with it (proto_pause_retry stores it then). */
            if (bc__proto_hold_for_pause(pc, &r)) {
                pc->item = it;
                pc->state = BC_PROTO_DATA;
                pc->need = 0;
                return;
            }
            bc_item_release(cache, it);
            if (!noreply) reply_refusal(pc, &r);
            return;
        }
    }

    if (pc->cmd == BC_MC_CMD_MS) {
        bc__proto_meta_store_finish(pc, it);
        return;
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
    bc__proto_detail_delete(pc->env, req->key, req->nkey);
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
    case BC_OK: bc__proto_reply_u64(pc, result); break;
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

/*
 * flush_all [delay] [noreply].  BEHAVIOR: in a cluster, on a memcached
 * client's connection of a forwarding node, it flushes the whole cluster:
 * this node's cache when it is its group's primary, and every other
 * group's primary through the forwarder (proto_fwd.c), each applying
 * memcached's delay; backups follow their primary through replication.
 * The reply ("OK", or the first group's failure) comes once every group
 * answered.  On a peer connection, without a forwarder and standalone it
 * flushes this node only (a backup does not flush itself: its primary's
 * flush reaches it).
 */
static void
cmd_flush_all(bc_proto_conn_t *pc, const char *line, size_t len, const bc_mc_request_t *req)
{
    bc_cache_t *cache = pc->env->cache;
    bc_node_cluster_t *cl = pc->env->cluster;
    bool here = cl == NULL || bc_node_cluster_is_primary(cl) || pc->fwd == NULL || pc->peer;
    if (here) {
        /* memcached: a delay <= 0 means now; otherwise it is an exptime. */
        uint32_t when = req->has_delay && req->exptime > 0
                            ? bc_cache_exptime_abs(cache, req->exptime) : 0;
        bc_cache_flush(cache, when);
    }
    bc_stats_incr(pc->stats, cmd_flush);
    if (cl != NULL && pc->fwd != NULL && !pc->peer) {
        bc__proto_fwd_flush_all(pc, line, len, req, here, NULL, NULL);
        return;
    }
    if (!req->noreply) REPLY(pc, "OK\r\n");
}

/* Runs one command line; BC_ECLOSED asks for the connection to close. */
static bc_status_t
process_line(bc_proto_conn_t *pc, const char *line, size_t len)
{
    bc_mc_request_t req;

    if (atomic_load_explicit(&pc->env->verbosity, memory_order_relaxed) > 1) {
        log_info("<%d %.*s", pc->id, (int)(len > 200 ? 200 : len), line);
    }
    /* Another node's handshakes and their proofs (proto_peer.c). */
    bc_status_t pst;
    if (bc__proto_peer_line(pc, line, len, &pst)) return pst;
    if (bc_mc_request_parse(line, len, &req) != BC_OK) {
        if (req.close) return BC_ECLOSED;
        bc_stats_incr(pc->stats, protocol_errors);
        if (!req.noreply) bc__proto_reply_line(pc, req.error);
        return BC_OK;
    }
    switch (req.cmd) {
    case BC_MC_CMD_GET:
    case BC_MC_CMD_GETS:
    case BC_MC_CMD_GAT:
    case BC_MC_CMD_GATS:
        cmd_retrieve(pc, line, len, &req);
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
        cmd_flush_all(pc, line, len, &req);
        break;
    case BC_MC_CMD_STATS:
        bc__proto_stats(pc, &req);
        break;
    case BC_MC_CMD_MG:
    case BC_MC_CMD_MS:
    case BC_MC_CMD_MD:
    case BC_MC_CMD_MA:
    case BC_MC_CMD_MN:
    case BC_MC_CMD_ME:
        bc__proto_meta(pc, line, len, &req);
        break;
    case BC_MC_CMD_VERSION:
    case BC_MC_CMD_SHUTDOWN:
    case BC_MC_CMD_CACHE_MEMLIMIT:
    case BC_MC_CMD_SLABS:
    case BC_MC_CMD_LRU:
    case BC_MC_CMD_LRU_CRAWLER:
    case BC_MC_CMD_WATCH:
    case BC_MC_CMD_REFRESH_CERTS:
        return bc__proto_admin(pc, &req);
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

/* A command run again (proto_int.h): a get whose fills completed. */
bc_status_t
bc__proto_process_line(bc_proto_conn_t *pc, const char *line, size_t len)
{
    return process_line(pc, line, len);
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

/* The resume hook as posted (forward.h bc_fwd_post). */
static void
proto_resume(void *arg)
{
    bc_proto_conn_t *pc = arg;
    if (pc->resume != NULL) pc->resume(pc->resume_arg);
}

void
bc_proto_conn_set_forward(bc_proto_conn_t *pc, bc_fwd_t *fwd, void (*resume)(void *arg),
                          void *arg)
{
    pc->fwd = fwd;
    pc->resume = resume;
    pc->resume_arg = arg;
    memset(&pc->resume_post, 0, sizeof(pc->resume_post));
    pc->resume_post.fn = proto_resume;
    pc->resume_post.arg = pc;
    memset(&pc->ro_post, 0, sizeof(pc->ro_post));
    pc->ro_post.fn = proto_pause_retry;
    pc->ro_post.arg = pc;
}

void
bc_proto_conn_release(bc_proto_conn_t *pc)
{
    if (pc->item != NULL) {
        bc_item_release(pc->env->cache, pc->item);
        pc->item = NULL;
    }
    bc__proto_fwd_release_all(pc);
    bc__proto_origin_release_all(pc);
    bc__proto_peer_release(pc);
    bc__proto_auth_release(pc);
    bc__proto_dump_release(pc);
    bc_fwd_post_cancel(pc->fwd, &pc->ro_post);
    pc->ro_hold = false;
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
        if (pc->binary) bc__proto_bin_fwd_store_finish(pc);
        else bc__proto_fwd_store_finish(pc);
    } else if (pc->binary) {
        bc__proto_bin_store_finish(pc);
    } else {
        cmd_store_finish(pc);
    }
}

bool
bc_proto_direct_dest(const bc_proto_conn_t *pc, char **dst, size_t *n)
{
    if (pc->state != BC_PROTO_DATA && pc->state != BC_PROTO_FWD_DATA) return false;
    if (pc->need == 0) return false;    /* a complete block held for a pause */
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
    /* At BC_PROTO_FWD_MAX forwarded commands in flight, input waits; and
     * while read-through holds it (proto_origin.c), and behind a dump
     * being streamed (proto_admin.c). */
    while (pos < len && st == BC_OK && !pc->oom && !bc_proto_waiting(pc)) {
        if (pc->out.pending >= out_limit) break;
        /* -Y: nothing runs before the connection authenticates (proto_auth.c). */
        if (pc->env->auth != NULL && !pc->authenticated) {
            pos += bc__proto_auth_process(pc, buf + pos, len - pos, &st);
            if (!pc->authenticated) break;
            continue;
        }
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

        /* memcached's -B auto: a connection whose first byte is the binary
         * request magic speaks the binary protocol (binary.c) for good. */
        if (!pc->proto_known) {
            pc->proto_known = true;
            pc->binary = (unsigned char)buf[pos] == BC_PROTO_BIN_MAGIC;
        }
        if (pc->binary) {
            size_t used = 0;
            st = bc__proto_bin_packet(pc, buf + pos, avail, &used);
            pos += used;
            if (!pc->ro_hold) pc->ro_since_ms = 0;      /* no write waits (any more) */
            if (used == 0) break;
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
        if (pc->ro_hold) {
            pos = (size_t)(line - buf);         /* held: presented again on resume */
        } else if (pc->ro_since_ms != 0) {
            pc->ro_since_ms = 0;                /* the held write went through */
        }
    }
    *consumed = pos;
    return pc->oom ? BC_ENOMEM : st;
}

bc_status_t
bc_proto_stream(bc_proto_conn_t *pc)
{
    if (pc->dump == NULL) return BC_OK;
    bc_status_t st = bc__proto_dump_more(pc);
    return pc->oom ? BC_ENOMEM : st;
}

/* ------------------------------------------------------------------------ */
/* the data port's handler (net/handler.h)                                  */
/* ------------------------------------------------------------------------ */

/* A worker's state: its forwarder (when the env forwards) and its origin
 * client (when it reads through); NULL when it has neither. */
typedef struct proto_worker {
    bc_fwd_t *fwd;
    bc_origin_client_t *origin;
} proto_worker_t;

static void handler_worker_destroy(void *worker);

static bc_status_t
handler_worker_create(void *ctx, bc_el_t *el, bc_thread_stats_t *stats, void **out)
{
    bc_proto_env_t *env = ctx;
    bool forward = env->forward && env->cluster != NULL;
    bc_status_t st = BC_OK;
    *out = NULL;
    if (!forward && env->origin == NULL) return BC_OK;
    proto_worker_t *w = calloc(1, sizeof(*w));
    if (w == NULL) return BC_ENOMEM;
    if (forward) st = bc_fwd_create(&env->fwd_cfg, el, env->cluster, stats, &w->fwd);
    if (st == BC_OK && env->origin != NULL) {
        st = bc_origin_client_create_el(env->origin, el, &w->origin);
    }
    if (st != BC_OK) {
        handler_worker_destroy(w);
        return st;
    }
    *out = w;
    return BC_OK;
}

static void
handler_worker_before_poll(void *worker)
{
    proto_worker_t *w = worker;
    if (w != NULL) bc_fwd_before_poll(w->fwd);
}

static void
handler_worker_destroy(void *worker)
{
    proto_worker_t *w = worker;
    if (w == NULL) return;
    bc_fwd_destroy(w->fwd);
    bc_origin_client_destroy(w->origin);
    free(w);
}

static void
handler_conn_init(void *ctx, void *worker, void *conn, bc_thread_stats_t *stats, int id,
                  void (*resume)(void *arg), void *arg)
{
    proto_worker_t *w = worker;
    bc_proto_conn_init(conn, ctx, stats, id);
    bc_proto_conn_set_forward(conn, w != NULL ? w->fwd : NULL, resume, arg);
    bc_proto_conn_set_origin(conn, w != NULL ? w->origin : NULL);
}

static void
handler_conn_release(void *conn)
{
    bc_proto_conn_release(conn);
}

static bc_outq_t *
handler_conn_out(void *conn)
{
    return &((bc_proto_conn_t *)conn)->out;
}

static bc_status_t
handler_process(void *conn, const char *buf, size_t len, size_t out_limit, size_t *consumed)
{
    return bc_proto_process(conn, buf, len, out_limit, consumed);
}

static bool
handler_direct_dest(const void *conn, char **dst, size_t *n)
{
    return bc_proto_direct_dest(conn, dst, n);
}

static bc_status_t
handler_direct_done(void *conn, size_t n)
{
    return bc_proto_direct_done(conn, n);
}

static bool
handler_waiting(const void *conn)
{
    return bc_proto_waiting(conn);
}

static bool
handler_streaming(const void *conn)
{
    return bc_proto_streaming(conn);
}

static bc_status_t
handler_stream(void *conn)
{
    return bc_proto_stream(conn);
}

static const char *
handler_state_name(const void *conn)
{
    const bc_proto_conn_t *pc = conn;
    if (pc->waiting) return "conn_io_queue";
    switch (pc->state) {
    case BC_PROTO_DATA:
    case BC_PROTO_FWD_DATA: return "conn_nread";
    case BC_PROTO_SWALLOW: return "conn_swallow";
    case BC_PROTO_LINE: break;
    }
    return "conn_read";
}

static size_t
handler_handoff_args(const void *conn, const char **args)
{
    const bc_proto_conn_t *pc = conn;
    *args = pc->handoff_args;
    return pc->handoff_len;
}

/* Another node's forwarding connection ("bucketcache_peer"), not a client's. */
static bool
handler_is_peer(const void *conn)
{
    return ((const bc_proto_conn_t *)conn)->peer;
}

const bc_handler_t bc_proto_text_handler = {
    .conn_size = sizeof(bc_proto_conn_t),
    /* Only a multi-get may be longer than one read buffer (bc_mcproto.h). */
    .max_line = BC_MC_LINE_HARD_MAX,
    .worker_create = handler_worker_create,
    .worker_before_poll = handler_worker_before_poll,
    .worker_destroy = handler_worker_destroy,
    .conn_init = handler_conn_init,
    .conn_release = handler_conn_release,
    .conn_out = handler_conn_out,
    .process = handler_process,
    .direct_dest = handler_direct_dest,
    .direct_done = handler_direct_done,
    .waiting = handler_waiting,
    .streaming = handler_streaming,
    .stream = handler_stream,
    .state_name = handler_state_name,
    .handoff_args = handler_handoff_args,
    .is_peer = handler_is_peer,
};
