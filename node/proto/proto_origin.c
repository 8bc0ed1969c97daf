/*
 * proto_origin.c -- read-through for the text protocol's retrievals: a
 * get that misses, for keys this node serves and that have an origin
 * (origin/origin.h), is answered once their fills complete, as if the
 * values had been there.
 *
 * HOW
 *   bc__proto_origin_resolve, called by the command once its keys are
 *   routed, looks every key served here up once.  Hits are kept in
 *   pc->found (serving them costs no second lookup); each miss with an
 *   origin starts or joins its fill (bc_origin_fetch).  No fill in
 *   flight: the command is served now from pc->found.  Otherwise the
 *   command becomes an op (the line copied, the hits kept, the fills
 *   awaited) and answers nothing now:
 *
 *     every key served here    its reply takes its place in the output
 *     (the usual case; always  queue as a hole (net/outq.h), as a
 *     on a peer connection)    forwarded command's does, and the next
 *                              commands run at once.  When the last fill
 *                              completes, the VALUE blocks -- the hits
 *                              kept, the filled values -- and END are
 *                              built into a queue of their own that
 *                              fills the hole.
 *
 *     a multi-get that also    the connection holds its input
 *     forwards keys            (pc->origin_hold) until the fills
 *                              complete; then the line runs again
 *                              (bc__proto_process_line), routing and
 *                              forwarding as usual, each key answered
 *                              from its kept hit or fill.  (A forwarded
 *                              part's reply has to land in the
 *                              connection's own queue, so this command
 *                              cannot be answered into a hole.)
 *
 *   A key whose fill failed, or was refused (overloaded, breaker open,
 *   negative answer), is a miss -- memcached's answer on the data port;
 *   the error kind is counted in the origin's statistics.  A connection
 *   has at most BC_PROTO_ORIGIN_MAX gets waiting; at the limit it holds
 *   its input until one completes, as forwarding does at its own.
 *
 *   Peer connections read through like any other: the owner fills for
 *   the get a non-owner forwarded, which is how one request fills the
 *   cluster (origin/origin.h, BEHAVIOR).  gat and gats do not (they write
 *   the expiry, and a filled value's expiry is the origin's); neither do
 *   mg with T (the same) or N (it vivifies instead).
 *
 *   mg (bc__proto_origin_meta) is one key: its miss becomes an op with one
 *   fill whose reply is always a hole; when the fill ends the mg runs
 *   again into the hole, so every flag (q, k, O, c, t, ...) is answered
 *   by the one meta code path, as for a value that had been there.  A
 *   binary get/getq/getk/getkq (bc__proto_origin_bin) is the same, its
 *   packet kept and run again (binary.c), so a getq whose fill fails
 *   stays quiet and a noop behind it still answers after it.  Binary gat
 *   and touch do not read through, as text gat does not.
 */
#include <stdlib.h>
#include <string.h>

#include "bc_hash.h"
#include "proto/proto_int.h"

/* Fills one command may wait for: past it, a multi-get's further misses
 * are plain misses this time (the memory and the key matching a hostile
 * 64 KiB multi-get can cost stay small). */
#define FILLS_PER_COMMAND 256u

typedef struct proto_fill {
    uint32_t off;                  /* the key in the op's line copy */
    uint8_t nkey;
    bc_origin_wait_t *wait;        /* while in flight */
    bc_item_t *item;               /* the value, once filled (ours) */
} proto_fill_t;

struct bc_proto_origin_op {
    bc_proto_origin_op_t *next;    /* pc->oops */
    bc_proto_conn_t *pc;           /* whose get it is */
    char *line;                    /* the command line (ours) */
    size_t len;
    bool hold;                     /* answered by running again (else: into hole) */
    bool meta;                     /* an mg or a binary get: runs again into the hole */
    bool bin;                      /* line holds a binary get's packet */
    bc_outq_hole_t hole;
    uint32_t nkeys;
    bc_item_t **kept;              /* nkeys: the hits of the first look (ours) */
    uint32_t *dest;                /* nkeys: the routing of the first look, or NULL */
    uint32_t nfills, pending, cap;
    proto_fill_t fills[];
};

void
bc_proto_conn_set_origin(bc_proto_conn_t *pc, bc_origin_client_t *client)
{
    pc->origin = client;
}

static bc_proto_origin_op_t *
op_new(const char *line, size_t len, uint32_t nkeys, uint32_t cap, const uint32_t *dest)
{
    bc_proto_origin_op_t *op = calloc(1, sizeof(*op) + cap * sizeof(proto_fill_t));
    if (op == NULL) return NULL;
    op->line = malloc(len + 1);
    op->kept = calloc(nkeys, sizeof(*op->kept));
    op->dest = dest != NULL ? malloc(nkeys * sizeof(*op->dest)) : NULL;
    if (op->line == NULL || op->kept == NULL || (dest != NULL && op->dest == NULL)) {
        free(op->line);
        free(op->kept);
        free(op->dest);
        free(op);
        return NULL;
    }
    memcpy(op->line, line, len);
    op->line[len] = '\0';
    op->len = len;
    op->nkeys = nkeys;
    op->cap = cap;
    if (dest != NULL) memcpy(op->dest, dest, nkeys * sizeof(*op->dest));
    return op;
}

static void
op_free(bc_proto_conn_t *pc, bc_proto_origin_op_t *op)
{
    if (op == NULL) return;
    for (uint32_t i = 0; i < op->nfills; i++) {
        if (op->fills[i].wait != NULL) bc_origin_cancel(pc->origin, op->fills[i].wait);
        bc_item_release(pc->env->cache, op->fills[i].item);
    }
    for (uint32_t i = 0; i < op->nkeys; i++) bc_item_release(pc->env->cache, op->kept[i]);
    free(op->kept);
    free(op->dest);
    free(op->line);
    free(op);
}

/* The input is held while a get waits to run again, or at the limit. */
static void
update_hold(bc_proto_conn_t *pc)
{
    bool hold = pc->noops >= BC_PROTO_ORIGIN_MAX;
    for (bc_proto_origin_op_t *op = pc->oops; op != NULL && !hold; op = op->next) {
        hold = op->hold;
    }
    pc->origin_hold = hold;
}

static void
op_unlink(bc_proto_conn_t *pc, bc_proto_origin_op_t *op)
{
    bc_proto_origin_op_t **pp = &pc->oops;
    while (*pp != NULL && *pp != op) pp = &(*pp)->next;
    if (*pp == op) {
        *pp = op->next;
        pc->noops--;
    }
}

void
bc__proto_origin_release_all(bc_proto_conn_t *pc)
{
    while (pc->oops != NULL) {
        bc_proto_origin_op_t *op = pc->oops;
        pc->oops = op->next;
        op_free(pc, op);
    }
    pc->noops = 0;
    pc->origin_hold = false;
    pc->rerun = NULL;
    bc__proto_origin_release(pc);
    free(pc->found);
    pc->found = NULL;
    pc->found_cap = 0;
}

static proto_fill_t *
op_find(bc_proto_origin_op_t *op, const char *key, size_t nkey)
{
    for (uint32_t i = 0; i < op->nfills; i++) {
        proto_fill_t *f = &op->fills[i];
        if (f->nkey == nkey && memcmp(op->line + f->off, key, nkey) == 0) return f;
    }
    return NULL;
}

static bool
found_reserve(bc_proto_conn_t *pc, uint32_t n)
{
    if (n <= pc->found_cap) return true;
    uint32_t cap = n < 16 ? 16 : n;
    bc_item_t **nf = realloc(pc->found, cap * sizeof(*nf));
    if (nf == NULL) return false;
    pc->found = nf;
    pc->found_cap = cap;
    return true;
}

/*
 * The second look, when op's fills are done: key i is answered from its
 * kept hit, else its fill's value, else the cache (a value stored since,
 * or a key not local the first time).  Fills pc->found; true on success.
 */
static bool
resolve_again(bc_proto_conn_t *pc, bc_proto_origin_op_t *op, const bc_mc_request_t *req,
              const uint32_t *dest)
{
    const char *cursor = req->keys, *key;
    size_t nkey;
    uint32_t k = 0;

    if (!found_reserve(pc, req->nkeys)) return false;
    while (bc_mc_next_key(&cursor, req->keys_end, &key, &nkey) && k < req->nkeys) {
        uint32_t i = k++;
        bc_item_t *it = NULL;
        pc->found[i] = NULL;
        if (i < op->nkeys && op->kept[i] != NULL) {
            it = op->kept[i];
            op->kept[i] = NULL;
        }
        if (dest != NULL && dest[i] != 0) {
            bc_item_release(pc->env->cache, it);   /* not local any more */
            continue;
        }
        if (it == NULL) {
            proto_fill_t *f = op_find(op, key, nkey);
            if (f != NULL && f->item != NULL) {
                it = f->item;
                bc_item_retain(pc->env->cache, it);
            }
        }
        if (it == NULL) it = bc_cache_get(pc->env->cache, key, nkey, bc_hash_key(key, nkey));
        pc->found[i] = it;
    }
    pc->found_n = k;
    return true;
}

/* Every fill of op is done: its reply fills its hole. */
static void
answer_into_hole(bc_proto_conn_t *pc, bc_proto_origin_op_t *op)
{
    bc_mc_request_t req;
    bc_outq_t reply, saved;

    if (bc_mc_request_parse(op->line, op->len, &req) != BC_OK) {
        /* cannot happen: it parsed the first time */
        (void)bc_outq_fill(&pc->out, pc->env->cache, op->hole, NULL);
        return;
    }
    bc_outq_init(&reply);
    saved = pc->out;
    pc->out = reply;
    if (resolve_again(pc, op, &req, op->dest)) {
        bc__proto_retrieve_values(pc, &req, op->dest, NULL, NULL);
        if (!pc->oom) REPLY(pc, "END\r\n");
    } else {
        pc->oom = true;
    }
    bc__proto_origin_release(pc);
    reply = pc->out;
    pc->out = saved;
    if (!bc_outq_fill(&pc->out, pc->env->cache, op->hole, &reply)) pc->oom = true;
}

/* op's mg's (or binary get's) fill is done: the command runs again into
 * its hole. */
static void
answer_meta_into_hole(bc_proto_conn_t *pc, bc_proto_origin_op_t *op)
{
    bc_mc_request_t req;
    bc_outq_t reply, saved;

    if (!op->bin && bc_mc_request_parse(op->line, op->len, &req) != BC_OK) {
        (void)bc_outq_fill(&pc->out, pc->env->cache, op->hole, NULL);   /* cannot happen */
        return;
    }
    bc_outq_init(&reply);
    saved = pc->out;
    pc->out = reply;
    pc->meta_rerun = true;
    pc->meta_fill = op->fills[0].item;
    if (op->bin) {
        /* the packet as it came: header, key (a get has no extras, no value) */
        size_t used;
        (void)bc__proto_bin_packet(pc, op->line, op->len, &used);
    } else {
        bc__proto_meta(pc, op->line, op->len, &req);
    }
    pc->meta_rerun = false;
    pc->meta_fill = NULL;
    reply = pc->out;
    pc->out = saved;
    if (!bc_outq_fill(&pc->out, pc->env->cache, op->hole, &reply)) pc->oom = true;
}

/* A fill of one of pc's waiting gets is done (the worker's loop). */
static void
on_fill_done(void *arg, uint32_t tag, bc_origin_result_t *res)
{
    bc_proto_origin_op_t *op = arg;
    bc_proto_conn_t *pc = op->pc;
    proto_fill_t *f = &op->fills[tag];

    f->wait = NULL;
    f->item = res->st == BC_OK ? res->item : NULL;
    if (res->st != BC_OK) bc_item_release(pc->env->cache, res->item);
    if (--op->pending > 0) return;
    op_unlink(pc, op);
    if (op->meta) {
        answer_meta_into_hole(pc, op);
        update_hold(pc);
    } else if (op->hold) {
        /* the command again, routed and forwarded as usual, each local
         * key answered from its kept hit or fill */
        pc->rerun = op;
        update_hold(pc);
        (void)bc__proto_process_line(pc, op->line, op->len);
        pc->rerun = NULL;
    } else {
        answer_into_hole(pc, op);
        update_hold(pc);
    }
    op_free(pc, op);
    /* Last: the hook sends what is ready, runs what was held back, and may
     * close the connection. */
    if (pc->resume != NULL) pc->resume(pc->resume_arg);
}

/* op's fills are in flight: its reply becomes a hole in the output queue
 * (unless it runs again: op->hold) and op joins the connection's list.
 * True (the command answers later), or the connection out of memory. */
static bool
op_park(bc_proto_conn_t *pc, bc_proto_origin_op_t *op)
{
    if (!op->hold && !bc_outq_hole(&pc->out, &op->hole)) {
        op_free(pc, op);
        pc->oom = true;
        return true;
    }
    op->next = pc->oops;
    pc->oops = op;
    pc->noops++;
    update_hold(pc);
    return true;
}

/* Records a fill of key (at off in op's line copy) waited for with w. */
static void
op_add_fill(bc_proto_origin_op_t *op, uint32_t off, size_t nkey, bc_origin_wait_t *w)
{
    proto_fill_t *f = &op->fills[op->nfills++];
    f->off = off;
    f->nkey = (uint8_t)nkey;
    f->wait = w;
    op->pending++;
}

bool
bc__proto_origin_resolve(bc_proto_conn_t *pc, const char *line, size_t len,
                         const bc_mc_request_t *req, const uint32_t *dest, const uint32_t *hashes,
                         bool forwards)
{
    bc_cache_t *cache = pc->env->cache;
    bc_proto_origin_op_t *op = NULL;
    const char *cursor = req->keys, *key;
    size_t nkey;
    uint32_t k = 0;

    if (pc->origin == NULL || pc->env->origin == NULL) return false;
    if (req->cmd != BC_MC_CMD_GET && req->cmd != BC_MC_CMD_GETS) return false;
    if (pc->rerun != NULL) {
        /* a held get running again: served now, from what was kept */
        (void)resolve_again(pc, pc->rerun, req, dest);
        return false;
    }
    if (!found_reserve(pc, req->nkeys)) return false;   /* served the plain way */
    while (bc_mc_next_key(&cursor, req->keys_end, &key, &nkey) && k < req->nkeys) {
        uint32_t i = k++;
        pc->found[i] = NULL;
        if (dest != NULL && dest[i] != 0) continue;
        uint32_t hash = hashes != NULL && i < ROUTE_HASH_CACHE ? hashes[i] : bc_hash_key(key, nkey);
        bc_item_t *it = bc_cache_get(cache, key, nkey, hash);
        pc->found[i] = it;
        if (it != NULL || !bc_origin_has(pc->env->origin, key, nkey)) continue;
        /* a miss with an origin: its fill */
        if (op == NULL) {
            op = op_new(line, len, req->nkeys, req->nkeys < FILLS_PER_COMMAND ? req->nkeys
                                                                              : FILLS_PER_COMMAND,
                        dest);
            if (op == NULL) continue;             /* a plain miss */
            op->pc = pc;
        }
        if (op->nfills == op->cap || op_find(op, key, nkey) != NULL) continue;
        bc_origin_wait_t *w = NULL;
        bc_status_t st = bc_origin_fetch(pc->origin, key, nkey, hash, on_fill_done, op,
                                         op->nfills, &w);
        if (st == BC_EEXISTS) pc->found[i] = bc_cache_get(cache, key, nkey, hash); /* filled since */
        if (st != BC_OK) continue;                /* refused: a miss (counted there) */
        op_add_fill(op, (uint32_t)(key - line), nkey, w);
    }
    pc->found_n = k;
    if (op == NULL || op->pending == 0) {
        op_free(pc, op);                          /* every fetch was refused */
        return false;
    }
    /* Fills in flight: the hits found are kept for the answer. */
    memcpy(op->kept, pc->found, k * sizeof(*op->kept));
    memset(pc->found, 0, k * sizeof(*pc->found));
    pc->found_n = 0;
    op->hold = forwards;
    return op_park(pc, op);
}

/* An mg's or a binary get's miss (bin): its fill, the reply a hole. */
static bool
origin_one(bc_proto_conn_t *pc, const char *line, size_t len, bool bin, const char *key,
           size_t nkey, uint32_t hash, bool *look_again)
{
    *look_again = false;
    if (pc->origin == NULL || pc->env->origin == NULL || pc->meta_rerun) return false;
    if (!bc_origin_has(pc->env->origin, key, nkey)) return false;
    bc_proto_origin_op_t *op = op_new(line, len, 1, 1, NULL);
    if (op == NULL) return false;                 /* a plain miss */
    op->pc = pc;
    op->meta = true;
    op->bin = bin;
    bc_origin_wait_t *w = NULL;
    bc_status_t st = bc_origin_fetch(pc->origin, key, nkey, hash, on_fill_done, op, 0, &w);
    if (st != BC_OK) {
        /* refused (a miss, counted there), or filled since the lookup */
        *look_again = st == BC_EEXISTS;
        op_free(pc, op);
        return false;
    }
    op_add_fill(op, 0, nkey, w);
    return op_park(pc, op);
}

bool
bc__proto_origin_meta(bc_proto_conn_t *pc, const char *line, size_t len, const char *key,
                      size_t nkey, uint32_t hash, bool *look_again)
{
    return origin_one(pc, line, len, false, key, nkey, hash, look_again);
}

bool
bc__proto_origin_bin(bc_proto_conn_t *pc, const char *pkt, size_t len, const char *key,
                     size_t nkey, uint32_t hash, bool *look_again)
{
    return origin_one(pc, pkt, len, true, key, nkey, hash, look_again);
}

bc_item_t *
bc__proto_origin_take(bc_proto_conn_t *pc, uint32_t k)
{
    if (k >= pc->found_n) return NULL;
    bc_item_t *it = pc->found[k];
    pc->found[k] = NULL;
    return it;
}

/* A connection keeps its array for the next get, unless a long multi-get
 * grew it: then it goes (an idle connection holds at most this much). */
#define FOUND_KEEP 256u

void
bc__proto_origin_release(bc_proto_conn_t *pc)
{
    for (uint32_t i = 0; i < pc->found_n; i++) {
        bc_item_release(pc->env->cache, pc->found[i]);
        pc->found[i] = NULL;
    }
    pc->found_n = 0;
    if (pc->found_cap > FOUND_KEEP) {
        free(pc->found);
        pc->found = NULL;
        pc->found_cap = 0;
    }
}
