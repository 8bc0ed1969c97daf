/*
 * meta.c -- memcached's meta commands (mg, ms, md, ma, mn, me) on the
 * cache, with cluster routing and forwarding like the classic commands.
 *
 * Every reply is memcached 1.6.18's, byte for byte, quirks included (the
 * reference is its proto_text.c: process_mget_command and friends):
 *
 *   - flags are answered in the order they came, and some take effect in
 *     that order: "mg k t T30" reports the TTL before the touch, "mg k T30
 *     t" after it; a return flag is answered only once (a flag letter seen
 *     twice is "CLIENT_ERROR duplicate flag");
 *   - q (quiet) hides only the "nominal" answer: EN for mg, HD for ms, md
 *     and for an ma that changed a number -- an mg hit, NF, NS, EX and every
 *     error are still sent;
 *   - errors are always sent, and md/ma answer any flag error with
 *     "CLIENT_ERROR invalid or duplicate flag" where mg/ms say which;
 *   - a win token (W) goes to the first client to miss with N, to find an
 *     R-expiring item, or to find a stale one; later ones see Z; stale
 *     items say X (engine/cache.h, bc_cache_mget);
 *   - ms with C (compare CAS) is a cas for set and replace modes, a CAS
 *     check for append/prepend, ignored for add; with I a lower CAS stores
 *     a stale value (bc_cache_store_meta);
 *   - "me" describes an item the way memcached does, its slab class and
 *     size computed with memcached's default slab table (-n 48 -f 1.25).
 *
 * In a cluster a meta command is routed like the classic one it mirrors
 * (mg reads, or writes when it touches or vivifies; ms/md/ma write; me
 * reads; mn is local) and refused or forwarded the same way.  A forwarded
 * meta command is sent AS IT CAME (q included) followed by "mn": the
 * owner applies memcached's quiet rules itself and its reply ends at "MN"
 * (forward.h, BC_FWD_REPLY_META), which is stripped -- so quiet mode is
 * exact, including ma's vivify (whose HD memcached sends even with q, and
 * which the reply alone could not tell from a quiet incr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_hash.h"
#include "bc_mcmeta.h"
#include "proto/proto_int.h"

/* A reply line: "VA <len>" + every flag (each at most " k" + base64 key
 * + " b", or an opaque of 32 bytes) + " Z X W" + CRLF. */
#define META_LINE_MAX 1024

typedef struct meta_buf {
    char b[META_LINE_MAX];
    size_t n;
} meta_buf_t;

static void
mb_lit(meta_buf_t *m, const char *s, size_t n)
{
    if (m->n + n <= sizeof(m->b)) {
        memcpy(m->b + m->n, s, n);
        m->n += n;
    }
}

static void
mb_flag(meta_buf_t *m, char c)
{
    char f[2] = {' ', c};
    mb_lit(m, f, 2);
}

static void
mb_u64(meta_buf_t *m, uint64_t v)
{
    char d[24];
    mb_lit(m, d, bc_mc_u64_to_dec(v, d));
}

/* memcached's META_KEY: " k<key>", or " k<base64> b" for a binary key. */
static void
mb_key(meta_buf_t *m, const char *key, size_t nkey, bool binary)
{
    mb_flag(m, 'k');
    if (!binary) {
        mb_lit(m, key, nkey);
        return;
    }
    char enc[BC_MC_KEY_MAX_LEN * 2];
    size_t n = bc_mc_meta_base64_encode(key, nkey, enc, sizeof(enc));
    mb_lit(m, enc, n);
    mb_lit(m, " b", 2);
}

static void
mb_opaque(meta_buf_t *m, const bc_mc_token_t *t)
{
    mb_lit(m, " ", 1);
    mb_lit(m, t->p, t->n);
}

/* memcached's "t": -1 for no expiry, else the seconds left (unsigned). */
static void
mb_ttl(meta_buf_t *m, uint32_t exptime, uint32_t now)
{
    mb_flag(m, 't');
    if (exptime == 0) {
        mb_lit(m, "-1", 2);
    } else {
        mb_u64(m, (uint32_t)(exptime - now));
    }
}

static void
reply_mb(bc_proto_conn_t *pc, meta_buf_t *m)
{
    mb_lit(m, "\r\n", 2);
    bc__proto_reply_bytes(pc, m->b, m->n);
}

/* An error line; meta errors ignore q (memcached's out_errstring). */
static void
reply_err(bc_proto_conn_t *pc, const char *err)
{
    bc_stats_incr(pc->stats, protocol_errors);
    bc__proto_reply_line(pc, err);
}

/* The flag tokens of a meta request: tok[first .. ntok - 2]. */
#define FOR_FLAGS(req, first, i) for (uint32_t i = (first); i + 1 < (req)->ntok; i++)

/*
 * The index of the first O token over BC_MC_META_MAX_OPAQUE bytes, or
 * UINT32_MAX.  memcached applies mg's and ma's flags one by one and stops
 * at that token with an error: the flags before it have taken effect,
 * those after it have not.
 */
static uint32_t
bad_opaque_at(const bc_mc_request_t *req, uint32_t first)
{
    for (uint32_t i = first; i + 1 < req->ntok; i++) {
        if (req->tok[i].p[0] == 'O' && req->tok[i].n > BC_MC_META_MAX_OPAQUE) return i;
    }
    return UINT32_MAX;
}

/* memcached's exptime conversion of a meta T/N/R value. */
static uint32_t
meta_exptime(bc_proto_conn_t *pc, int64_t v)
{
    return bc_cache_exptime_abs(pc->env->cache, v);
}

/*
 * Cluster routing of a meta command's key.  Returns true when dealt with
 * here (refused, or forwarded with its data block still to come for ms),
 * false to serve it.
 */
static bool
meta_route(bc_proto_conn_t *pc, const char *line, size_t len, const bc_mc_request_t *req,
           uint32_t hash, bool write, uint32_t vlen, bool key_binary)
{
    bc_proto_route_t r;
    bool is_set = req->cmd == BC_MC_CMD_MS;

    switch (bc__proto_route(pc, hash, write, &r)) {
    case BC_PROTO_SERVE:
        return false;
    case BC_PROTO_FORWARD:
        if (is_set) {
            bc__proto_fwd_meta_store_begin(pc, line, len, &req->tok[1], key_binary, vlen, &r);
        } else {
            bc__proto_fwd_meta(pc, line, len, &r);
        }
        return true;
    case BC_PROTO_REFUSE:
        break;
    }
    /* A write in its bucket's migration pause waits (proto_text.h). */
    if (write && bc__proto_hold_for_pause(pc, &r)) return true;
    /* A refusal is an error: shown even in quiet mode. */
    char refusal[REFUSAL_MAX];
    size_t n = bc__proto_refusal(&r, refusal);
    bc__proto_reply_bytes(pc, refusal, n);
    if (is_set) {
        pc->state = BC_PROTO_SWALLOW;
        pc->swallow = (uint64_t)vlen + 2;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* mg                                                                       */
/* ------------------------------------------------------------------------ */

static void
meta_get(bc_proto_conn_t *pc, const char *line, size_t len, const bc_mc_request_t *req)
{
    bc_cache_t *cache = pc->env->cache;
    bc_mc_meta_t of = {0};
    char keybuf[BC_MC_KEY_MAX_LEN];
    const char *err = "CLIENT_ERROR bad command line format";

    if (req->ntok < 3) {
        reply_err(pc, "ERROR");
        return;
    }
    if (req->tok[1].n > BC_MC_KEY_MAX_LEN) {
        reply_err(pc, "CLIENT_ERROR bad command line format");
        return;
    }
    if (req->ntok > BC_MC_META_MAX_TOKENS) {
        reply_err(pc, "CLIENT_ERROR options flags are too long");
        return;
    }
    if (!bc_mc_meta_parse(req, 2, &of, keybuf, &err)) {
        reply_err(pc, err);
        return;
    }

    uint32_t hash = bc_hash_key(of.key, of.nkey);
    /* An mg running again after its origin fill is served here whatever
     * the route says now (its hole is in this connection's queue). */
    if (pc->env->cluster != NULL && !pc->meta_rerun &&
        meta_route(pc, line, len, req, hash, of.new_ttl || of.vivify, 0, false))
        return;

    /* Where T, N and R stand decides what R and t see (memcached applies
     * the flags one by one, up to an over-long opaque). */
    uint32_t stop = bad_opaque_at(req, 2);
    bool t_seen = false, has_r = false, r_sees_touch = false;
    uint32_t touch_exp = of.new_ttl ? meta_exptime(pc, of.exptime) : 0;
    uint32_t viv_exp = of.vivify ? meta_exptime(pc, of.autoviv_exptime) : 0;
    /* memcached bumps at the lookup, before an over-long opaque is seen,
     * unless a flag made it lock the item (l h T N R): then the bump waits
     * for the end and the error skips it. */
    bc_cache_mget_t m = {
        .bump = !of.no_update && (stop == UINT32_MAX || !of.locked),
        .vivify = of.vivify,
        .no_win = stop != UINT32_MAX,
    };
    FOR_FLAGS(req, 2, i) {
        if (i >= stop) break;
        char c = req->tok[i].p[0];
        if (c == 'T') {
            t_seen = true;
            m.touch = true;
            m.touch_exptime = touch_exp;
            m.viv_exptime = touch_exp;      /* a created item: the later of N, T */
        } else if (c == 'N') {
            m.viv_exptime = viv_exp;
        } else if (c == 'R') {
            has_r = true;
            r_sees_touch = t_seen;
        }
    }
    m.recache = has_r;
    m.recache_sees_touch = r_sees_touch;
    if (has_r) m.recache_time = meta_exptime(pc, of.recache_time);

    bc_status_t st;
    bc_item_t *it = bc_cache_mget(cache, of.key, of.nkey, hash, &m, &st);
    uint32_t now = bc_cache_now(cache);
    meta_buf_t mb = {.n = 0};

    if (it == NULL && !of.new_ttl && !of.vivify) {
        /* read-through (proto_origin.c): a fill answers it later */
        bool look_again;
        if (bc__proto_origin_meta(pc, line, len, of.key, of.nkey, hash, &look_again)) return;
        if (look_again) it = bc_cache_mget(cache, of.key, of.nkey, hash, &m, &st);
        if (it == NULL && pc->meta_fill != NULL) {
            /* filled, but not kept by the cache: answered all the same */
            it = pc->meta_fill;
            bc_item_retain(cache, it);
            m.meta.exptime = it->exptime;
            m.meta.atime = now;
        }
    }

    if (of.new_ttl) bc_stats_incr(pc->stats, cmd_touch);
    else bc_stats_incr(pc->stats, cmd_get);

    if (it == NULL) {
        if (of.new_ttl) bc_stats_incr(pc->stats, touch_misses);
        else bc_stats_incr(pc->stats, get_misses);
        mb_lit(&mb, "EN", 2);
        FOR_FLAGS(req, 2, i) {
            const bc_mc_token_t *t = &req->tok[i];
            if (t->p[0] == 'O') {
                if (t->n > BC_MC_META_MAX_OPAQUE) {
                    reply_err(pc, "CLIENT_ERROR opaque token too long");
                    return;
                }
                mb_opaque(&mb, t);
            } else if (t->p[0] == 'k') {
                mb_key(&mb, of.key, of.nkey, of.key_binary);
            }
        }
        if (!of.no_reply) reply_mb(pc, &mb);
        return;
    }

    if (of.new_ttl) bc_stats_incr(pc->stats, touch_hits);
    else bc_stats_incr(pc->stats, get_hits);
    uint32_t vlen = bc_item_value_len(it);
    if (of.value) {
        mb_lit(&mb, "VA ", 3);
        mb_u64(&mb, vlen);
    } else {
        mb_lit(&mb, "HD", 2);
    }
    uint32_t cur_exp = m.created ? 0 : m.meta.exptime;
    FOR_FLAGS(req, 2, i) {
        const bc_mc_token_t *t = &req->tok[i];
        switch (t->p[0]) {
        case 'T': cur_exp = touch_exp; break;
        case 'N': if (m.created) cur_exp = viv_exp; break;
        case 's': mb_flag(&mb, 's'); mb_u64(&mb, vlen); break;
        case 't': mb_ttl(&mb, cur_exp, now); break;
        case 'c': mb_flag(&mb, 'c'); mb_u64(&mb, it->cas); break;
        case 'f': mb_flag(&mb, 'f'); mb_u64(&mb, bc_item_flags(it)); break;
        case 'l':
            mb_flag(&mb, 'l');
            mb_u64(&mb, (uint32_t)(now - m.meta.atime));
            break;
        case 'h': mb_flag(&mb, 'h'); mb_lit(&mb, m.meta.fetched ? "1" : "0", 1); break;
        case 'O':
            if (t->n > BC_MC_META_MAX_OPAQUE) {
                bc_item_release(cache, it);
                reply_err(pc, "CLIENT_ERROR opaque token too long");
                return;
            }
            mb_opaque(&mb, t);
            break;
        case 'k':
            mb_key(&mb, bc_item_key(it), bc_item_nkey(it), m.meta.key_binary);
            break;
        default:
            break;
        }
    }
    if (m.meta.won) mb_flag(&mb, 'Z');
    if (m.meta.stale) mb_flag(&mb, 'X');
    if (m.won) mb_flag(&mb, 'W');
    reply_mb(pc, &mb);
    if (of.value) {
        if (bc_item_nbytes(it) <= BC_PROTO_COPY_MAX) {
            bc__proto_reply_bytes(pc, bc_item_value(it), bc_item_nbytes(it));
        } else if (bc_outq_add_item(&pc->out, cache, it, bc_item_value(it), bc_item_nbytes(it))) {
            return;                              /* the queue holds the reference */
        } else {
            pc->oom = true;
        }
    }
    bc_item_release(cache, it);
}

/* ------------------------------------------------------------------------ */
/* ms                                                                       */
/* ------------------------------------------------------------------------ */

static bc_store_mode_t
ms_mode(char mode, bool has_cas, bool *ok)
{
    bc_store_mode_t m;
    *ok = true;
    switch (mode) {
    case 0:
    case 'S': m = BC_STORE_SET; break;
    case 'E': m = BC_STORE_ADD; break;
    case 'A': m = BC_STORE_APPEND; break;
    case 'P': m = BC_STORE_PREPEND; break;
    case 'R': m = BC_STORE_REPLACE; break;
    default: *ok = false; return BC_STORE_SET;
    }
    /* memcached: a CAS upgrades set and replace to cas. */
    if (has_cas && (m == BC_STORE_SET || m == BC_STORE_REPLACE)) m = BC_STORE_CAS;
    return m;
}

static void
meta_set(bc_proto_conn_t *pc, const char *line, size_t len, const bc_mc_request_t *req)
{
    bc_cache_t *cache = pc->env->cache;
    bc_mc_meta_t of = {0};
    char keybuf[BC_MC_KEY_MAX_LEN];
    const char *err = "CLIENT_ERROR bad command line format";
    int64_t vlen64;
    uint32_t vlen = 0;

    if (req->ntok < 3) {
        reply_err(pc, "ERROR");
        return;
    }
    if (req->tok[1].n > BC_MC_KEY_MAX_LEN || req->ntok == 3) {
        reply_err(pc, "CLIENT_ERROR bad command line format");
        return;
    }
    if (req->ntok > BC_MC_META_MAX_TOKENS) {
        reply_err(pc, "CLIENT_ERROR options flags too long");
        return;
    }
    /* The data length (safe_strtol: int32): no swallow when it is bad. */
    if (!bc_mc_meta_i32(req->tok[2].p, req->tok[2].n, &vlen64) || vlen64 < 0 ||
        vlen64 > (int64_t)BC_MC_VALUE_MAX_LEN) {
        reply_err(pc, "CLIENT_ERROR bad command line format");
        return;
    }
    vlen = (uint32_t)vlen64;

    bool ok = bc_mc_meta_parse(req, 3, &of, keybuf, &err);
    bool mode_ok = true;
    bc_store_mode_t mode = BC_STORE_SET;
    if (ok) {
        FOR_FLAGS(req, 2, i) {
            const bc_mc_token_t *t = &req->tok[i];
            if (t->p[0] == 'O' && t->n > BC_MC_META_MAX_OPAQUE) {
                err = "CLIENT_ERROR opaque token too long";
                ok = false;
            }
        }
        mode = ms_mode(of.mode, of.has_cas, &mode_ok);
        if (!mode_ok) {
            err = "CLIENT_ERROR invalid mode for ms M token";
            ok = false;
        }
    }
    if (!ok) {
        reply_err(pc, err);
        pc->state = BC_PROTO_SWALLOW;
        pc->swallow = (uint64_t)vlen + 2;
        return;
    }

    uint32_t hash = bc_hash_key(of.key, of.nkey);
    if (pc->env->cluster != NULL && meta_route(pc, line, len, req, hash, true, vlen, of.key_binary)) return;

    bc_status_t st;
    bc_item_t *it = bc_item_alloc(cache, of.key, of.nkey, hash, of.client_flags,
                                  meta_exptime(pc, of.exptime), vlen + 2, &st);
    if (it == NULL) {
        if (st == BC_ETOOLARGE) {
            bc_stats_incr(pc->stats, store_too_large);
            reply_err(pc, "SERVER_ERROR object too large for cache");
        } else {
            bc_stats_incr(pc->stats, store_no_memory);
            reply_err(pc, "SERVER_ERROR out of memory storing object");
        }
        /* memcached removes the old value whatever the mode. */
        (void)bc_cache_delete(cache, of.key, of.nkey, hash);
        pc->state = BC_PROTO_SWALLOW;
        pc->swallow = (uint64_t)vlen + 2;
        return;
    }
    if (of.key_binary) bc_item_set_meta(it, BC_ITEM_KEY_BINARY);

    /* What the reply line will carry (O, k, c in their order). */
    bc_proto_meta_set_t *ms = &pc->mset;
    memset(ms, 0, sizeof(*ms));
    FOR_FLAGS(req, 2, i) {
        const bc_mc_token_t *t = &req->tok[i];
        if (t->p[0] == 'O' || t->p[0] == 'k' || t->p[0] == 'c') {
            ms->order[ms->norder++] = t->p[0];
            if (t->p[0] == 'O') {
                memcpy(ms->opaque, t->p, t->n);
                ms->nopaque = (uint8_t)t->n;
            }
        }
    }
    ms->active = true;
    ms->quiet = of.no_reply;
    ms->stale = of.set_stale && mode == BC_STORE_CAS;
    ms->key_binary = of.key_binary;

    pc->state = BC_PROTO_DATA;
    pc->item = it;
    pc->hash = hash;
    pc->dst = bc_item_value(it);
    pc->need = vlen + 2;
    pc->cmd = BC_MC_CMD_MS;
    pc->store_mode = mode;
    pc->cas = of.has_cas ? of.req_cas_id : 0;
    pc->noreply = false;
}

/*
 * The data block of an ms has come (proto_text.c checked its CRLF and the
 * route): store it and answer.  Takes pc->item.
 */
void
bc__proto_meta_store_finish(bc_proto_conn_t *pc, bc_item_t *it)
{
    bc_cache_t *cache = pc->env->cache;
    bc_proto_meta_set_t *ms = &pc->mset;
    uint64_t cas = 0;

    ms->active = false;
    bc_stats_incr(pc->stats, cmd_set);
    /* Kept for the reply: the store consumes the item. */
    char key[BC_MC_KEY_MAX_LEN];
    size_t nkey = bc_item_nkey(it);
    memcpy(key, bc_item_key(it), nkey);

    bc_status_t st = bc_cache_store_meta(cache, it, pc->store_mode, pc->cas, ms->stale, &cas);
    if (pc->store_mode == BC_STORE_CAS) {
        if (st == BC_OK) bc_stats_incr(pc->stats, cas_hits);
        else if (st == BC_EEXISTS) bc_stats_incr(pc->stats, cas_badval);
        else if (st == BC_ENOTFOUND) bc_stats_incr(pc->stats, cas_misses);
    }
    meta_buf_t mb = {.n = 0};
    switch (st) {
    case BC_OK: mb_lit(&mb, "HD", 2); break;
    case BC_EEXISTS: mb_lit(&mb, "EX", 2); break;
    case BC_ENOTFOUND: mb_lit(&mb, "NF", 2); break;
    case BC_ENOTSTORED: mb_lit(&mb, "NS", 2); break;
    case BC_ETOOLARGE:
    case BC_ENOMEM:
        /* memcached: append/prepend that cannot build the value is NS. */
        if (pc->store_mode == BC_STORE_APPEND || pc->store_mode == BC_STORE_PREPEND) {
            mb_lit(&mb, "NS", 2);
            break;
        }
        bc_stats_incr(pc->stats, store_no_memory);
        reply_err(pc, "SERVER_ERROR Unhandled storage type.");
        return;
    default:
        reply_err(pc, "SERVER_ERROR Unhandled storage type.");
        return;
    }
    if (st == BC_OK && ms->quiet) return;
    for (uint32_t i = 0; i < ms->norder; i++) {
        switch (ms->order[i]) {
        case 'O': mb_lit(&mb, " ", 1); mb_lit(&mb, ms->opaque, ms->nopaque); break;
        case 'k': mb_key(&mb, key, nkey, ms->key_binary); break;
        case 'c': mb_flag(&mb, 'c'); mb_u64(&mb, st == BC_OK ? cas : 0); break;
        default: break;
        }
    }
    reply_mb(pc, &mb);
}

/* ------------------------------------------------------------------------ */
/* md                                                                       */
/* ------------------------------------------------------------------------ */

static void
meta_delete(bc_proto_conn_t *pc, const char *line, size_t len, const bc_mc_request_t *req)
{
    bc_mc_meta_t of = {0};
    char keybuf[BC_MC_KEY_MAX_LEN];
    const char *err = "CLIENT_ERROR bad command line format";

    if (req->ntok < 3) {
        reply_err(pc, "ERROR");
        return;
    }
    if (req->tok[1].n > BC_MC_KEY_MAX_LEN) {
        reply_err(pc, "CLIENT_ERROR bad command line format");
        return;
    }
    if (req->ntok > BC_MC_META_MAX_TOKENS) {
        reply_err(pc, "CLIENT_ERROR options flags too long");
        return;
    }
    if (!bc_mc_meta_parse(req, 2, &of, keybuf, &err)) {
        reply_err(pc, "CLIENT_ERROR invalid or duplicate flag");
        return;
    }
    meta_buf_t flags = {.n = 0};
    FOR_FLAGS(req, 2, i) {
        const bc_mc_token_t *t = &req->tok[i];
        if (t->p[0] == 'O') {
            if (t->n > BC_MC_META_MAX_OPAQUE) {
                reply_err(pc, "CLIENT_ERROR opaque token too long");
                return;
            }
            mb_opaque(&flags, t);
        } else if (t->p[0] == 'k') {
            mb_key(&flags, of.key, of.nkey, of.key_binary);
        }
    }

    uint32_t hash = bc_hash_key(of.key, of.nkey);
    if (pc->env->cluster != NULL && meta_route(pc, line, len, req, hash, true, 0, false)) return;

    bc_status_t st = bc_cache_mdelete(pc->env->cache, of.key, of.nkey, hash, of.has_cas,
                                      of.req_cas_id, of.set_stale, of.new_ttl,
                                      of.new_ttl ? meta_exptime(pc, of.exptime) : 0);
    meta_buf_t mb = {.n = 0};
    switch (st) {
    case BC_OK:
        if (!of.set_stale) bc_stats_incr(pc->stats, delete_hits);
        if (of.no_reply) return;
        mb_lit(&mb, "HD", 2);
        break;
    case BC_EEXISTS:
        bc_stats_incr(pc->stats, delete_misses);
        mb_lit(&mb, "EX", 2);
        break;
    default:
        bc_stats_incr(pc->stats, delete_misses);
        mb_lit(&mb, "NF", 2);
        break;
    }
    mb_lit(&mb, flags.b, flags.n);
    reply_mb(pc, &mb);
}

/* ------------------------------------------------------------------------ */
/* ma                                                                       */
/* ------------------------------------------------------------------------ */

static void
meta_arith(bc_proto_conn_t *pc, const char *line, size_t len, const bc_mc_request_t *req)
{
    bc_mc_meta_t of = {.delta = 1};
    char keybuf[BC_MC_KEY_MAX_LEN];
    const char *err = "CLIENT_ERROR bad command line format";
    bool incr = true;

    if (req->ntok < 3) {
        reply_err(pc, "ERROR");
        return;
    }
    if (req->tok[1].n > BC_MC_KEY_MAX_LEN) {
        reply_err(pc, "CLIENT_ERROR bad command line format");
        return;
    }
    if (req->ntok > BC_MC_META_MAX_TOKENS) {
        reply_err(pc, "CLIENT_ERROR options flags too long");
        return;
    }
    if (!bc_mc_meta_parse(req, 2, &of, keybuf, &err)) {
        reply_err(pc, "CLIENT_ERROR invalid or duplicate flag");
        return;
    }
    switch (of.mode) {
    case 0:
    case 'I':
    case '+':
        incr = true;
        break;
    case 'D':
    case '-':
        incr = false;
        break;
    default:
        reply_err(pc, "CLIENT_ERROR invalid mode for ma M token");
        return;
    }

    uint32_t hash = bc_hash_key(of.key, of.nkey);
    if (pc->env->cluster != NULL && meta_route(pc, line, len, req, hash, true, 0, false)) return;

    uint32_t t_exp = of.new_ttl ? meta_exptime(pc, of.exptime) : 0;
    uint32_t n_exp = of.vivify ? meta_exptime(pc, of.autoviv_exptime) : 0;
    bc_cache_marith_t m = {
        .incr = incr,
        .delta = of.delta,
        .cas_in = of.has_cas ? of.req_cas_id : 0,
        .vivify = of.vivify,
        .initial = of.initial,
        .set_exptime_hit = of.new_ttl,
        .exptime_hit = t_exp,
    };
    /* A created item ends with the later of T and N (flag order), up to
     * an over-long opaque. */
    uint32_t stop = bad_opaque_at(req, 2);
    m.set_exptime_hit = false;
    FOR_FLAGS(req, 2, i) {
        if (i >= stop) break;
        char c = req->tok[i].p[0];
        if (c == 'T') m.set_exptime_hit = true;
        if (c == 'T') {
            m.set_exptime_created = true;
            m.exptime_created = t_exp;
        } else if (c == 'N') {
            m.set_exptime_created = true;
            m.exptime_created = n_exp;
        }
    }
    bc_status_t st = bc_cache_marith(pc->env->cache, of.key, of.nkey, hash, &m);
    meta_buf_t mb = {.n = 0};
    switch (st) {
    case BC_OK:
        if (!m.created) {
            if (incr) bc_stats_incr(pc->stats, incr_hits);
            else bc_stats_incr(pc->stats, decr_hits);
            /* Quiet, unless the reply turns into an opaque error. */
            if (of.no_reply && stop == UINT32_MAX) return;
        }
        break;
    case BC_ENONNUMERIC:
        reply_err(pc, "CLIENT_ERROR cannot increment or decrement non-numeric value");
        return;
    case BC_ENOTFOUND:
        if (incr) bc_stats_incr(pc->stats, incr_misses);
        else bc_stats_incr(pc->stats, decr_misses);
        mb_lit(&mb, "NF", 2);
        break;
    case BC_EEXISTS:
        mb_lit(&mb, "EX", 2);
        break;
    default:
        reply_err(pc, of.vivify ? "SERVER_ERROR Out of memory allocating new item"
                                : "SERVER_ERROR out of memory");
        return;
    }

    if (st != BC_OK) {
        FOR_FLAGS(req, 2, i) {
            const bc_mc_token_t *t = &req->tok[i];
            if (t->p[0] == 'O') {
                if (t->n > BC_MC_META_MAX_OPAQUE) {
                    reply_err(pc, "CLIENT_ERROR opaque token too long");
                    return;
                }
                mb_opaque(&mb, t);
            } else if (t->p[0] == 'k') {
                mb_key(&mb, of.key, of.nkey, of.key_binary);
            }
        }
        reply_mb(pc, &mb);
        return;
    }

    char num[24];
    size_t nnum = bc_mc_u64_to_dec(m.value, num);
    uint32_t now = bc_cache_now(pc->env->cache);
    if (of.value) {
        mb_lit(&mb, "VA ", 3);
        mb_u64(&mb, nnum);
    } else {
        mb_lit(&mb, "HD", 2);
    }
    uint32_t cur_exp = m.exptime_before;
    FOR_FLAGS(req, 2, i) {
        const bc_mc_token_t *t = &req->tok[i];
        switch (t->p[0]) {
        case 'c': mb_flag(&mb, 'c'); mb_u64(&mb, m.cas); break;
        case 't': mb_ttl(&mb, cur_exp, now); break;
        case 'T': cur_exp = t_exp; break;
        case 'N': if (m.created) cur_exp = n_exp; break;
        case 'O':
            if (t->n > BC_MC_META_MAX_OPAQUE) {
                reply_err(pc, "CLIENT_ERROR opaque token too long");
                return;
            }
            mb_opaque(&mb, t);
            break;
        case 'k': mb_key(&mb, of.key, of.nkey, of.key_binary); break;
        default: break;
        }
    }
    if (of.value) {
        mb_lit(&mb, "\r\n", 2);
        mb_lit(&mb, num, nnum);
    }
    reply_mb(pc, &mb);
}

/* ------------------------------------------------------------------------ */
/* me                                                                       */
/* ------------------------------------------------------------------------ */

/*
 * memcached 1.6.18's slab class of an item of ntotal bytes with its
 * defaults (-n 48, -f 1.25, 512 KiB largest chunk, 1 MiB pages): class 1
 * holds 96 bytes, each next one 1.25 times more (8-byte aligned), up to
 * the last class, 512 KiB, which also takes every larger (chunked) item.
 */
uint32_t
bc__proto_mc_slab_class(uint64_t ntotal)
{
    unsigned int size = 48 + 48;
    uint32_t cls = 1;

    for (;;) {
        if (size >= 524288 / 1.25) break;
        if (size % 8) size += 8 - size % 8;
        if (ntotal <= size) return cls;
        cls++;
        size = (unsigned int)(size * 1.25);
    }
    return cls;
}

uint64_t
bc__proto_mc_item_size(const bc_item_t *it)
{
    return 48u + bc_item_nkey(it) + 1u + (bc_item_flags(it) != 0 ? 4u : 0u) + bc_item_nbytes(it) + 8u;
}

static void
meta_debug(bc_proto_conn_t *pc, const char *line, size_t len, const bc_mc_request_t *req)
{
    bc_cache_t *cache = pc->env->cache;
    char keybuf[BC_MC_KEY_MAX_LEN];
    const char *key = req->tok[1].p;
    size_t nkey = req->tok[1].n;

    if (req->ntok < 3 || nkey > BC_MC_KEY_MAX_LEN) {
        reply_err(pc, "CLIENT_ERROR bad command line format");
        return;
    }
    if (req->ntok >= 4 && req->tok[2].n == 1 && req->tok[2].p[0] == 'b') {
        nkey = bc_mc_meta_base64_decode(key, nkey, keybuf, sizeof(keybuf));
        if (nkey == 0) {
            reply_err(pc, "CLIENT_ERROR bad command line format");
            return;
        }
        key = keybuf;
    }
    uint32_t hash = bc_hash_key(key, nkey);
    if (pc->env->cluster != NULL && meta_route(pc, line, len, req, hash, false, 0, false)) return;

    bc_cache_mget_t m = {.bump = false, .no_win = true};   /* me hands out no token */
    bc_item_t *it = bc_cache_mget(cache, key, nkey, hash, &m, NULL);
    if (it == NULL) {
        REPLY(pc, "EN\r\n");
        return;
    }
    uint32_t now = bc_cache_now(cache);
    meta_buf_t mb = {.n = 0};
    mb_lit(&mb, "ME ", 3);
    if (m.meta.key_binary) {
        char enc[BC_MC_KEY_MAX_LEN * 2];
        mb_lit(&mb, enc, bc_mc_meta_base64_encode(bc_item_key(it), bc_item_nkey(it), enc, sizeof(enc)));
    } else {
        mb_lit(&mb, bc_item_key(it), bc_item_nkey(it));
    }
    uint64_t ntotal = bc__proto_mc_item_size(it);
    char tail[160];
    int n = snprintf(tail, sizeof(tail), " exp=%d la=%llu cas=%llu fetch=%s cls=%u size=%lu",
                     m.meta.exptime == 0 ? -1 : (int)(now - m.meta.exptime),
                     (unsigned long long)(uint32_t)(now - m.meta.atime),
                     (unsigned long long)it->cas, m.meta.fetched ? "yes" : "no",
                     bc__proto_mc_slab_class(ntotal), (unsigned long)ntotal);
    if (n > 0) mb_lit(&mb, tail, (size_t)n < sizeof(tail) ? (size_t)n : sizeof(tail) - 1);
    bc_item_release(cache, it);
    reply_mb(pc, &mb);
}

void
bc__proto_meta(bc_proto_conn_t *pc, const char *line, size_t len, const bc_mc_request_t *req)
{
    switch (req->cmd) {
    case BC_MC_CMD_MG: meta_get(pc, line, len, req); break;
    case BC_MC_CMD_MS: meta_set(pc, line, len, req); break;
    case BC_MC_CMD_MD: meta_delete(pc, line, len, req); break;
    case BC_MC_CMD_MA: meta_arith(pc, line, len, req); break;
    case BC_MC_CMD_ME:
        bc_stats_incr(pc->stats, cmd_meta);
        meta_debug(pc, line, len, req);
        break;
    case BC_MC_CMD_MN: REPLY(pc, "MN\r\n"); break;
    default: break;
    }
}
