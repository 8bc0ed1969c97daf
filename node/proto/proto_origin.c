/*
 * proto_origin.c -- read-through for the text protocol's retrievals: a
 * get that misses, for keys this node serves and that have an origin
 * (origin/origin.h), waits for their fills and is then answered as if
 * the values had been there.
 *
 * HOW (one command, two passes)
 *
 *   pass 1   bc__proto_origin_resolve looks every key served here up
 *            once: hits are kept in pc->found (so serving them costs no
 *            second lookup); each miss with an origin starts or joins its
 *            fill (bc_origin_fetch).  No fill in flight: the command is
 *            served now from pc->found.  Otherwise the hits are let go,
 *            the command line is copied into pc->oop and the connection
 *            waits (pc->waiting: the commands behind it are held back,
 *            exactly as for a forwarded command).
 *   fills    each completion (on the worker's loop, origin client
 *            mailbox) keeps its item; the last one runs the command line
 *            again (bc__proto_process_line) --
 *   pass 2   -- in which resolve answers each key from its fill's item,
 *            or from the cache (a value set meanwhile, a key whose fill
 *            failed), and starts no fill; then the connection resumes.
 *
 *   Running the whole line again keeps routing, forwarding of other
 *   owners' keys, multi-get assembly and "gets" CAS in one place
 *   (proto_text.c, proto_fwd.c): the fills only change what the lookups
 *   find.  A key whose fill failed (or was refused: overloaded, breaker
 *   open, negative answer) is a miss -- memcached's answer on the data
 *   port, the error kind is counted in the origin's statistics.
 *
 *   Peer connections read through like any other: the owner fills for
 *   the get a non-owner forwarded, which is how one request fills the
 *   cluster (origin/origin.h, BEHAVIOR).  gat and gats do not (they write
 *   the expiry, and a filled value's expiry is the origin's).
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
    char *line;                    /* the command line (ours) */
    size_t len;
    bool rerun;                    /* every fill is done: pass 2 */
    uint32_t nfills, pending, cap;
    proto_fill_t fills[];
};

void
bc_proto_conn_set_origin(bc_proto_conn_t *pc, bc_origin_client_t *client)
{
    pc->origin = client;
}

static bc_proto_origin_op_t *
op_new(const char *line, size_t len, uint32_t cap)
{
    bc_proto_origin_op_t *op = calloc(1, sizeof(*op) + cap * sizeof(proto_fill_t));
    if (op == NULL) return NULL;
    op->line = malloc(len + 1);
    if (op->line == NULL) {
        free(op);
        return NULL;
    }
    memcpy(op->line, line, len);
    op->line[len] = '\0';
    op->len = len;
    op->cap = cap;
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
    free(op->line);
    free(op);
}

void
bc__proto_origin_op_free(bc_proto_conn_t *pc)
{
    op_free(pc, pc->oop);
    pc->oop = NULL;
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

/* A fill of pc's waiting command is done (the worker's loop). */
static void
on_fill_done(void *arg, uint32_t tag, bc_origin_result_t *res)
{
    bc_proto_conn_t *pc = arg;
    bc_proto_origin_op_t *op = pc->oop;
    proto_fill_t *f = &op->fills[tag];

    f->wait = NULL;
    f->item = res->st == BC_OK ? res->item : NULL;
    if (res->st != BC_OK) bc_item_release(pc->env->cache, res->item);
    if (--op->pending > 0) return;
    /* pass 2: the command again, answered from the fills */
    op->rerun = true;
    pc->waiting = false;
    (void)bc__proto_process_line(pc, op->line, op->len);
    if (pc->oop == op) {
        pc->oop = NULL;
        op_free(pc, op);
    }
    /* Last: the hook may run further commands or close the connection. */
    if (pc->resume != NULL) pc->resume(pc->resume_arg);
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

bool
bc__proto_origin_resolve(bc_proto_conn_t *pc, const char *line, size_t len,
                         const bc_mc_request_t *req, const uint32_t *dest, const uint32_t *hashes)
{
    bc_cache_t *cache = pc->env->cache;
    bc_proto_origin_op_t *op = pc->oop;
    bool rerun = op != NULL && op->rerun;
    const char *cursor = req->keys, *key;
    size_t nkey;
    uint32_t k = 0;

    if (pc->origin == NULL || pc->env->origin == NULL) return false;
    if (req->cmd != BC_MC_CMD_GET && req->cmd != BC_MC_CMD_GETS) return false;
    if (!found_reserve(pc, req->nkeys)) return false;   /* served the plain way */
    while (bc_mc_next_key(&cursor, req->keys_end, &key, &nkey) && k < req->nkeys) {
        uint32_t i = k++;
        pc->found[i] = NULL;
        if (dest != NULL && dest[i] != 0) continue;
        uint32_t hash = hashes != NULL && i < ROUTE_HASH_CACHE ? hashes[i] : bc_hash_key(key, nkey);
        bc_item_t *it = NULL;
        if (rerun) {
            proto_fill_t *f = op_find(op, key, nkey);
            if (f != NULL && f->item != NULL) {
                it = f->item;
                bc_item_retain(it);
            }
        }
        if (it == NULL) it = bc_cache_get(cache, key, nkey, hash);
        pc->found[i] = it;
        if (it != NULL || rerun || !bc_origin_has(pc->env->origin, key, nkey)) continue;
        /* pass 1, a miss with an origin: its fill */
        if (op == NULL) {
            op = op_new(line, len, req->nkeys < FILLS_PER_COMMAND ? req->nkeys
                                                                  : FILLS_PER_COMMAND);
            if (op == NULL) continue;             /* a plain miss */
        }
        if (op->nfills == op->cap || op_find(op, key, nkey) != NULL) continue;
        bc_origin_wait_t *w = NULL;
        bc_status_t st = bc_origin_fetch(pc->origin, key, nkey, hash, on_fill_done, pc,
                                         op->nfills, &w);
        if (st != BC_OK) continue;                /* refused: a miss (counted there) */
        proto_fill_t *f = &op->fills[op->nfills++];
        f->off = (uint32_t)(key - line);
        f->nkey = (uint8_t)nkey;
        f->wait = w;
        op->pending++;
    }
    pc->found_n = k;
    if (rerun) return false;
    if (op != NULL && op->pending > 0) {
        bc__proto_origin_release(pc);
        pc->oop = op;
        pc->waiting = true;
        return true;
    }
    op_free(pc, op);                              /* every fetch was refused */
    return false;
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
