/*
 * proto_fwd.c -- the text protocol's forwarded commands: a command for
 * keys another group owns (or that this node, a backup, may not serve) is
 * sent to the owner's primary through the worker's forwarder (forward.h)
 * and its reply relayed in its place (proto_text.h, "FORWARDING", says
 * when).
 *
 * HOW
 *   A forwarded command is one bc_proto_fwd_op_t with one part per owner
 *   group, each a request in flight, and -- unless noreply -- a hole in the
 *   connection's output queue (net/outq.h) where its reply goes:
 *
 *     any command              one part: its request bytes as built by
 *     (bc__proto_fwd_command)  the caller; the reply as the owner sent
 *                              it, or as the caller's relay rewrites it
 *     delete/incr/decr/touch   the command line as it came, without noreply
 *     get & co, one key        the line as it came; a NO_OWNER refusal from
 *                              the owner (its table is newer) reads as a miss
 *     set & co                 line and data block, collected first (state
 *                              FWD_DATA), then sent; a block too large for
 *                              an item is swallowed here, a set's (an ms's)
 *                              old value deleted on the owner first
 *     meta commands            the line as it came, q included, then "mn":
 *                              the reply ends at the owner's "MN", dropped
 *                              (META; an ms collects its block first)
 *     get & co, several keys   one "get" per owner group with its keys, in
 *                              the client's order; the keys served here are
 *                              answered at once into the op's own queue
 *     flush_all                one "flush_all [delay]" per other group's
 *                              primary (this node's own group is flushed
 *                              here, at once, when this node is its primary)
 *
 *   The connection goes on with its next commands meanwhile; their replies
 *   queue behind the hole.  When every part has completed, fwd_op_finish
 *   builds the answer and fills the hole with it -- for a multi-get the
 *   VALUE blocks in the client's key order, one END; for flush_all "OK"
 *   or the first failure -- and posts the connection's
 *   resume hook (once per batch of completions: forward.h bc_fwd_post),
 *   which sends what is ready and runs the commands held back.
 *
 *   A connection has at most BC_PROTO_FWD_MAX commands in flight; at the
 *   limit it stops taking commands (pc->waiting) until one completes.
 *
 * BEHAVIOR: A MULTI-GET SERVES WHAT THE CLUSTER HAS
 *   A part whose owner failed (unreachable, timed out, garbage) or answered
 *   an error line instead of values (its table is newer: MOVED, NO_OWNER)
 *   does not spoil the others: its keys read as misses, counted in
 *   get_no_owner (a NO_OWNER refusal) or get_forward_failed (anything
 *   else).  A memcached multi-get reply has no way to say "this key
 *   failed" -- an error line ends the whole reply for every client parser
 *   -- so a miss is the only per-key answer there is, and it is what
 *   memcached's own client-side sharding (libmemcached, pymemcache's
 *   HashClient with ignore_exc) and mcrouter's miss-on-get-error give for
 *   a shard that is down.  A command for one key keeps its error line.
 *
 * BEHAVIOR: IN THE CLIENT'S KEY ORDER
 *   memcached answers a multi-get's VALUE blocks in the order of the keys
 *   in the request -- a key asked twice answered twice, a miss left out --
 *   and so does a split one, byte for byte, whatever order its parts come
 *   back in.  The op keeps the client's keys and where each is answered
 *   (op->where: a part, here, or a miss already counted) and, for the
 *   keys served here, the bytes each has in op->local (retrieve_values'
 *   lens).  Once every part is in, answer_values finds each key's VALUE
 *   block: an owner answers its keys in the order asked, so each part's
 *   blocks are matched one after the other; a part whose blocks do not
 *   all match so (one that waited out a pause may have gathered its keys
 *   out of order) sends the keys through an index of (part, key) instead,
 *   duplicates chained in the order they came.  Then, walking the
 *   client's keys: a local key's bytes move from the head of op->local, a
 *   forwarded key's block goes out as a slice of its part's reply buffer
 *   (net/outq.h, bc_outq_add_shared: no copy; blocks one after the other
 *   in the buffer make one range, so a reply already in order costs what
 *   it did), or -- a block of up to BC_PROTO_COPY_MAX bytes between
 *   blocks of other sources -- is copied, as small local values are.  A
 *   block the owner sent for a key it was not asked is dropped.
 *
 *   Memory: unchanged.  Every part's reply was held until the last one
 *   came, as before; it is only sent in another order.  The caps are
 *   those of any forwarded command: each part's reply at most the
 *   forwarder's max_reply (out_limit + 64 KiB; past it BC_ETOOLARGE, that
 *   part's keys read as misses), the local values copied only up to the
 *   connection's out_limit (then referenced), the keys bounded by the
 *   command line (BC_MC_LINE_HARD_MAX), at most BC_PROTO_FWD_MAX commands
 *   in flight per connection.  The order costs O(keys) more: a copy of
 *   the keys, 8 bytes a key, and at the end an index of the parts'
 *   VALUE blocks (about 40 bytes each, at most one a key asked).
 *
 * BEHAVIOR: A MULTI-KEY GAT WAITS TOO
 *   A gat/gats is a write (it sets the expiry): a part its owner refuses
 *   for a migration pause -- or MOVED / NOT_PRIMARY, the owner's table
 *   being newer -- is not a miss but waits like a forwarded one-key write
 *   (proto_text.h, "WRITES DURING A MIGRATION PAUSE"): its keys are kept
 *   and, on the op's timer (1, 2, 4, then every 5 ms), routed again by
 *   this node's table then.  The keys going where the first one goes are
 *   asked together -- run here (bc__proto_exec_local), sent to their
 *   owner, or misses (no owner, nobody reachable) -- then the others, one
 *   destination after another; a first key still paused here makes them
 *   all wait.  A bucket that was cut over mid-pause thus takes its keys
 *   to the new owner while the part's other buckets stay with the old
 *   one.  The part's VALUE blocks accumulate in it and take its place in
 *   the reply, up to the forwarder's max_reply in sum as one reply (past
 *   it, the keys of the answer that would pass it read as misses); the
 *   connection takes no further command while any part waits (a later
 *   write of the same key must not be applied first).
 *   Past env->readonly_wait_ms the keys still waiting read as misses,
 *   counted in get_forward_failed and pause_timeouts.  A multi-get is a
 *   read and is never sent again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_hash.h"
#include "bc_time.h"
#include "bc_wire.h"
#include "proto/proto_int.h"

typedef enum fwd_op_kind {
    OP_RELAY,                      /* one part; its reply relayed */
    OP_VALUES,                     /* a multi-get: parts merged */
    OP_FLUSH,                      /* flush_all: one part per group, "OK" or an error */
} fwd_op_kind_t;

typedef struct fwd_part {
    bc_fwd_req_t *req;             /* in flight; NULL once finished */
    uint32_t gid;
    uint32_t nkeys;                /* OP_VALUES: keys asked in this part */
    bc_status_t st;
    char *reply;                   /* owned */
    size_t len;
    /* OP_VALUES of a gat/gats waiting out a pause ("A MULTI-KEY GAT
     * WAITS TOO"): the keys still to answer (" k1 k2", owned), those of
     * the request in flight (owned), and the VALUE blocks answered so far
     * (owned, no END). */
    bool retrying;
    bool waiting;                  /* for the op's timed retry */
    char *keys;
    size_t nkeys_len;
    char *inflight;
    size_t ninflight;
    char *acc;
    size_t nacc;
} fwd_part_t;

struct bc_proto_fwd_op {
    bc_proto_fwd_op_t *prev, *next;    /* pc->ops while in flight */
    bc_proto_conn_t *pc;
    fwd_op_kind_t kind;
    bc_fwd_reply_kind_t reply_kind;
    bc_proto_fwd_relay_fn relay;   /* OP_RELAY: NULL = the bytes as they came */
    bool noreply;                  /* drop the reply */
    bool has_hole;
    bc_outq_hole_t hole;           /* where the reply goes */
    char *buf;                     /* FWD_DATA: the request being built (owned) */
    size_t len;                    /* FWD_DATA: its full length */
    bc_outq_t local;               /* OP_VALUES: VALUE blocks of the keys served here */
    uint32_t nparts;
    uint32_t pending;              /* parts still in flight */
    bc_proto_route_t route;        /* OP_RELAY: the refusal if the owner is unreachable */
    /* OP_RELAY writes of a client (proto_text.h, "WRITES DURING A MIGRATION
     * PAUSE"): the request's bytes are kept (forward.h bc_fwd_keep) and
     * sent again while the owner answers READONLY, MOVED or NOT_PRIMARY;
     * between tries they wait in buf. */
    bool retry;
    uint64_t retry_since_ms;       /* the first such answer (0: none yet) */
    uint32_t retry_tries;
    bool retry_waiting;            /* counted in pc->nretry: the input waits */
    bc_fwd_post_t retry_post;      /* the timed retry */
    bool retry_armed;              /* OP_VALUES: retry_post is queued */
    bool retry_timed_out;          /* OP_VALUES: pause_timeouts counted */
    char pfx[40];                  /* OP_VALUES with retry: "gat <exptime>" */
    size_t npfx;
    bc_proto_fwd_bin_fn bin;       /* a binary-protocol command: composes its reply */
    void *bin_arg;                 /* bin's context (owned, freed with the op) */
    /* OP_VALUES: where each of the client's keys is answered (a part's
     * index, WHERE_LOCAL or WHERE_MISS; owned, one allocation with the
     * next two), for a key served here the bytes it has in `local`, and
     * the keys (" k1 k2 ..."): the reply follows the client's key order. */
    char *keys;
    size_t nkeys_len;
    uint32_t nkeys;
    uint32_t *where;
    uint32_t *local_lens;
    fwd_part_t parts[];
};

#define WHERE_LOCAL UINT32_MAX             /* served here: its bytes in op->local */
#define WHERE_MISS  (UINT32_MAX - 1u)      /* a miss already counted */

static void fwd_op_retry(void *arg);

/* Whether pc's forwarded writes wait out a migration pause (proto_text.h). */
static bool
fwd_retries_writes(const bc_proto_conn_t *pc)
{
    return !pc->peer && pc->env->readonly_wait_ms > 0 && pc->env->cluster != NULL;
}

/* A new op; route (may be NULL) says what an unreachable owner answers. */
static bc_proto_fwd_op_t *
fwd_op_new(bc_proto_conn_t *pc, fwd_op_kind_t kind, uint32_t nparts,
           const bc_proto_route_t *route)
{
    bc_proto_fwd_op_t *op = calloc(1, sizeof(*op) + nparts * sizeof(fwd_part_t));
    if (op == NULL) return NULL;
    op->pc = pc;
    op->kind = kind;
    op->reply_kind = kind == OP_VALUES ? BC_FWD_REPLY_VALUES : BC_FWD_REPLY_LINE;
    op->nparts = nparts;
    bc_outq_init(&op->local);
    if (route != NULL) op->route = *route;
    op->retry_post.fn = fwd_op_retry;
    op->retry_post.arg = op;
    return op;
}

/* Frees op (not linked in pc->ops); parts still in flight are cancelled. */
void
bc__proto_fwd_op_free(bc_proto_conn_t *pc, bc_proto_fwd_op_t *op)
{
    if (op == NULL) return;
    bc_fwd_post_cancel(pc->fwd, &op->retry_post);
    for (uint32_t i = 0; i < op->nparts; i++) {
        if (op->parts[i].req != NULL) bc_fwd_cancel(pc->fwd, op->parts[i].req);
        free(op->parts[i].reply);
        free(op->parts[i].keys);
        free(op->parts[i].inflight);
        free(op->parts[i].acc);
    }
    bc_outq_free(&op->local, pc->env->cache);
    free(op->buf);
    free(op->bin_arg);
    free(op->where);                   /* with local_lens and keys */
    free(op);
}

void
bc__proto_fwd_release_all(bc_proto_conn_t *pc)
{
    while (pc->ops != NULL) {
        bc_proto_fwd_op_t *op = pc->ops;
        pc->ops = op->next;
        bc__proto_fwd_op_free(pc, op);
    }
    pc->nfwd = 0;
    pc->nretry = 0;
    bc__proto_fwd_op_free(pc, pc->fop);
    pc->fop = NULL;
    bc_fwd_post_cancel(pc->fwd, &pc->resume_post);
}

/* ------------------------------------------------------------------------ */
/* answers                                                                  */
/* ------------------------------------------------------------------------ */

static bool
reply_is_values(const char *r, size_t n)
{
    return (n >= 6 && memcmp(r, "VALUE ", 6) == 0) || (n == 5 && memcmp(r, "END\r\n", 5) == 0);
}

/* The refusal a reply line is, if any (BC_WIRE_REFUSAL_NONE otherwise). */
static bc_wire_refusal_kind_t
reply_refusal(const char *r, size_t n)
{
    static const char se[] = "SERVER_ERROR ";
    bc_wire_refusal_t ref;
    if (n < sizeof(se) - 1 + 2 || memcmp(r, se, sizeof(se) - 1) != 0) return BC_WIRE_REFUSAL_NONE;
    return bc_wire_refusal_parse(r + sizeof(se) - 1, n - (sizeof(se) - 1) - 2, &ref);
}

/* Appends the line (CRLF included) a part that failed with st answers. */
static bool
add_error_line(const bc_proto_fwd_op_t *op, bc_status_t st, bc_outq_t *dst)
{
    if (st == BC_ENOTFOUND) {
        char line[REFUSAL_MAX];
        size_t n = bc__proto_refusal(&op->route, line);
        return bc_outq_add(dst, line, n);
    }
    const char *line = bc_fwd_error_line(st);
    return bc_outq_add(dst, line, strlen(line));
}

/* Keys answered as misses here: counted like the misses they read as. */
void
bc__proto_count_unanswered(bc_proto_conn_t *pc, uint64_t n, bool no_owner)
{
    if (n == 0) return;
    bc_stats_add(pc->stats, cmd_get, n);
    bc_stats_add(pc->stats, get_misses, n);
    if (no_owner) bc_stats_add(pc->stats, get_no_owner, n);
    else bc_stats_add(pc->stats, get_forward_failed, n);
}

static void relay_one_key_get(bc_proto_conn_t *pc, char *reply, size_t len, bc_outq_t *dst);

/* Appends an OP_RELAY op's answer to dst. */
static void
answer_relay(bc_proto_conn_t *pc, bc_proto_fwd_op_t *op, bc_outq_t *dst)
{
    fwd_part_t *part = &op->parts[0];
    bool ok = true;
    if (part->st != BC_OK) {
        ok = add_error_line(op, part->st, dst);
    } else if (op->relay != NULL) {
        op->relay(pc, part->reply, part->len, dst);
    } else {
        ok = bc_outq_add_owned(dst, part->reply, part->len);
    }
    if (part->st == BC_OK) part->reply = NULL;    /* taken */
    if (!ok) pc->oom = true;
}

/* A VALUE block of a part's reply, for putting it in its key's place. */
typedef struct value_block {
    uint32_t off, len;             /* the whole block in its part's reply */
    uint32_t koff, nkey;           /* its key there */
    uint32_t part;
    uint32_t next;                 /* the next block of that part and key (BLOCK_NONE) */
    uint32_t unused;               /* first of its key: the next one not sent yet */
} value_block_t;

#define BLOCK_NONE UINT32_MAX

/* VALUE blocks being gathered: on the stack first, on the heap past it. */
typedef struct block_vec {
    value_block_t *v;
    uint32_t n, cap;
    bool heap;
} block_vec_t;

static bool
block_vec_grow(block_vec_t *bv)
{
    uint32_t ncap = bv->cap * 2;
    value_block_t *nv = bv->heap ? realloc(bv->v, ncap * sizeof(*nv)) : malloc(ncap * sizeof(*nv));
    if (nv == NULL) return false;
    if (!bv->heap) memcpy(nv, bv->v, bv->n * sizeof(*nv));
    bv->v = nv;
    bv->cap = ncap;
    bv->heap = true;
    return true;
}

/*
 * The length of the VALUE block at b[0..n) ("VALUE <key> <flags> <bytes>
 * [<cas>]\r\n<data>\r\n"), its key at *key (*nkey bytes); 0 when it is
 * not one.  The forwarder checked every block of the reply already
 * (forward.c, reply_end_values): this only finds the bounds again.
 */
static size_t
value_block_scan(const char *b, size_t n, const char **key, uint32_t *nkey)
{
    const char *nl = n > 6 && memcmp(b, "VALUE ", 6) == 0 ? memchr(b, '\n', n) : NULL;
    if (nl == NULL) return 0;
    const char *k = b + 6, *p = memchr(k, ' ', (size_t)(nl - k));
    if (p == NULL) return 0;
    *key = k;
    *nkey = (uint32_t)(p - k);
    p = memchr(p + 1, ' ', (size_t)(nl - p - 1));          /* past the flags */
    if (p == NULL) return 0;
    uint64_t bytes = 0;
    for (p++; p < nl && *p >= '0' && *p <= '9'; p++) {
        bytes = bytes * 10 + (uint64_t)(*p - '0');
        if (bytes > n) return 0;
    }
    size_t len = (size_t)(nl + 1 - b) + (size_t)bytes + 2;
    return len <= n ? len : 0;
}

/* The VALUE blocks of part p's reply (without its END) appended to bv;
 * false when out of memory.  A reply that stops parsing (it cannot: the
 * forwarder checked it) keeps the blocks before.  No more blocks than the
 * part asked keys are taken: an owner answers one a key at most, and the
 * index stays bounded by the command line. */
static bool
blocks_parse(const fwd_part_t *part, uint32_t p, block_vec_t *bv)
{
    const char *b = part->reply, *key;
    size_t end = part->len - 5, pos = 0, used;
    uint32_t nkey;
    for (uint32_t taken = 0; pos < end && taken < part->nkeys; taken++) {
        if ((used = value_block_scan(b + pos, end - pos, &key, &nkey)) == 0) break;
        if (bv->n == bv->cap && !block_vec_grow(bv)) return false;
        bv->v[bv->n++] = (value_block_t){
            .off = (uint32_t)pos, .len = (uint32_t)used,
            .koff = (uint32_t)(key - b), .nkey = nkey, .part = p, .next = BLOCK_NONE,
            .unused = BLOCK_NONE,
        };
        pos += used;
    }
    return true;
}

static uint32_t
block_hash(uint32_t part, const char *key, size_t nkey)
{
    return bc_hash_key(key, nkey) ^ (part * 0x9e3779b1u);
}

/*
 * Slot of table (mask + 1 slots, each a block index or BLOCK_NONE) for
 * part p's key: the slot holding its first block, or the empty one where
 * it goes.  A slot once taken stays (no deletion: the probe sequences
 * stay whole); its block's `unused` says which of the key's blocks goes
 * next.
 */
static uint32_t *
blocks_slot(const fwd_part_t *parts, const value_block_t *blocks, uint32_t *table, uint32_t mask,
            uint32_t p, const char *key, size_t nkey)
{
    for (uint32_t h = block_hash(p, key, nkey) & mask;; h = (h + 1) & mask) {
        if (table[h] == BLOCK_NONE) return &table[h];
        const value_block_t *b = &blocks[table[h]];
        if (b->part == p && b->nkey == nkey &&
            memcmp(parts[p].reply + b->koff, key, nkey) == 0) {
            return &table[h];
        }
    }
}

/* Per part, while answering: the next of its blocks expected in order
 * and the end of its blocks in `blocks`, and its reply once shared. */
typedef struct part_blocks {
    uint32_t next, end;
    bc_outq_shared_t *shared;
} part_blocks_t;

/*
 * Resolves each of op's keys into res[i]: the index of the block that
 * answers it, WHERE_LOCAL, or WHERE_MISS -- on the fast path: each part's
 * blocks in the order its keys were asked (what an owner sends), matched
 * one after the other.  Returns false when some part's blocks do not all
 * match so (a part gathered out of order while waiting out a pause, or an
 * owner sending what it was not asked): then values_resolve_indexed.
 */
static bool
values_resolve_in_order(const bc_proto_fwd_op_t *op, const value_block_t *blocks,
                        part_blocks_t *pb, uint32_t *res)
{
    const char *cursor = op->keys, *end = op->keys + op->nkeys_len, *key;
    size_t nkey;
    for (uint32_t i = 0; i < op->nkeys && bc_mc_next_key(&cursor, end, &key, &nkey); i++) {
        uint32_t w = op->where[i];
        res[i] = w == WHERE_LOCAL ? WHERE_LOCAL : WHERE_MISS;
        if (w >= op->nparts) continue;
        part_blocks_t *p = &pb[w];
        const value_block_t *blk = &blocks[p->next];
        if (p->next < p->end && blk->nkey == nkey &&
            memcmp(op->parts[w].reply + blk->koff, key, nkey) == 0) {
            res[i] = p->next++;
        }
    }
    for (uint32_t w = 0; w < op->nparts; w++) {
        if (pb[w].next != pb[w].end) return false;
    }
    return true;
}

/*
 * res as values_resolve_in_order, in any order: through an index of
 * (part, key) -> its first block, the others chained in the reply's
 * order; a key asked twice takes the next one.  Returns false when out of
 * memory.
 */
static bool
values_resolve_indexed(const bc_proto_fwd_op_t *op, value_block_t *blocks, uint32_t nblocks,
                       uint32_t *res)
{
    const char *cursor = op->keys, *end = op->keys + op->nkeys_len, *key;
    size_t nkey;
    uint32_t size = 16;
    while (size < 2 * nblocks) size *= 2;
    uint32_t mask = size - 1;
    uint32_t *table = malloc(size * sizeof(*table));
    if (table == NULL) return false;
    memset(table, 0xff, size * sizeof(*table));
    for (uint32_t b = nblocks; b-- > 0;) {          /* entered last to first */
        value_block_t *blk = &blocks[b];
        uint32_t *slot = blocks_slot(op->parts, blocks, table, mask, blk->part,
                                     op->parts[blk->part].reply + blk->koff, blk->nkey);
        blk->next = *slot;
        blk->unused = b;
        *slot = b;
    }
    for (uint32_t i = 0; i < op->nkeys && bc_mc_next_key(&cursor, end, &key, &nkey); i++) {
        uint32_t w = op->where[i];
        res[i] = w == WHERE_LOCAL ? WHERE_LOCAL : WHERE_MISS;
        if (w >= op->nparts) continue;
        uint32_t *slot = blocks_slot(op->parts, blocks, table, mask, w, key, nkey);
        if (*slot == BLOCK_NONE || blocks[*slot].unused == BLOCK_NONE) continue;
        res[i] = blocks[*slot].unused;
        blocks[*slot].unused = blocks[res[i]].next;
    }
    free(table);
    return true;
}

/*
 * Appends an OP_VALUES op's answer to dst: the VALUE blocks in the
 * client's key order, as memcached answers them (a key asked twice
 * answered twice, a miss left out), then one END.  See "A MULTI-GET
 * SERVES WHAT THE CLUSTER HAS" and "IN THE CLIENT'S KEY ORDER".
 */
static void
answer_values(bc_proto_conn_t *pc, bc_proto_fwd_op_t *op, bc_outq_t *dst)
{
    bool ok = true;
    value_block_t blocks_small[32];
    block_vec_t bv = {.v = blocks_small, .cap = 32};
    uint32_t res_small[64], *res = res_small;
    part_blocks_t pb_small[8], *pb = pb_small;

    if (op->nparts > 8) pb = calloc(op->nparts, sizeof(*pb));
    else memset(pb_small, 0, sizeof(pb_small));
    if (op->nkeys > 64) res = malloc(op->nkeys * sizeof(*res));
    if (pb == NULL || res == NULL) ok = false;
    for (uint32_t i = 0; ok && i < op->nparts; i++) {
        fwd_part_t *part = &op->parts[i];
        pb[i].next = bv.n;
        if (part->st == BC_OK && reply_is_values(part->reply, part->len)) {
            /* Each part ends with "END\r\n" (checked by the forwarder). */
            ok = blocks_parse(part, i, &bv);
        } else {
            bool no_owner = part->st == BC_OK &&
                            reply_refusal(part->reply, part->len) == BC_WIRE_REFUSAL_NO_OWNER;
            bc__proto_count_unanswered(pc, part->nkeys, no_owner);
            free(part->reply);
            part->reply = NULL;
        }
        pb[i].end = bv.n;
    }
    value_block_t *blocks = bv.v;
    if (ok && !values_resolve_in_order(op, blocks, pb, res)) {
        ok = values_resolve_indexed(op, blocks, bv.n, res);
    }

    /* The blocks go out as slices of their part's reply buffer (no copy;
     * blocks one after the other in it make one range) -- but a block of
     * up to BC_PROTO_COPY_MAX bytes alone between others is copied next
     * to them: one more memcpy costs less than an iovec (proto_text.c,
     * bc__proto_retrieve_values, says why). */
    uint32_t prev = BLOCK_NONE;
    for (uint32_t i = 0; ok && i < op->nkeys; i++) {
        uint32_t b = res[i];
        if (b == WHERE_MISS) continue;
        if (b == WHERE_LOCAL) {
            if (op->local_lens[i] > 0) {
                prev = BLOCK_NONE;
                ok = bc_outq_move_head(dst, &op->local, op->local_lens[i], pc->env->cache);
            }
            continue;
        }
        const value_block_t *blk = &blocks[b];
        uint32_t next = BLOCK_NONE;
        for (uint32_t j = i + 1; j < op->nkeys && next == BLOCK_NONE; j++) {
            if (res[j] == WHERE_LOCAL && op->local_lens[j] > 0) break;
            if (res[j] < WHERE_MISS) next = res[j];
        }
        bool joined = (prev != BLOCK_NONE && prev + 1 == b && blocks[prev].part == blk->part &&
                       blocks[prev].off + blocks[prev].len == blk->off) ||
                      (next != BLOCK_NONE && next == b + 1 && blocks[next].part == blk->part &&
                       blk->off + blk->len == blocks[next].off);
        const char *base = op->parts[blk->part].reply;
        prev = b;
        if (!joined && blk->len <= BC_PROTO_COPY_MAX) {
            ok = bc_outq_add(dst, base + blk->off, blk->len);
            continue;
        }
        part_blocks_t *p = &pb[blk->part];
        if (p->shared == NULL) {
            /* the part's reply stays in parts[], but p->shared owns it */
            p->shared = bc_outq_shared_new(op->parts[blk->part].reply);
            if (p->shared == NULL) {
                op->parts[blk->part].reply = NULL;         /* freed */
                ok = false;
                break;
            }
        }
        ok = bc_outq_add_shared(dst, p->shared, base + blk->off, blk->len);
    }
    if (pb != NULL) {
        for (uint32_t i = 0; i < op->nparts; i++) {
            if (pb[i].shared == NULL) continue;
            op->parts[i].reply = NULL;
            bc_outq_shared_put(pb[i].shared);
        }
        if (pb != pb_small) free(pb);
    }
    if (bv.heap) free(bv.v);
    if (res != res_small) free(res);
    if (ok) ok = bc_outq_add(dst, "END\r\n", 5);
    if (!ok) pc->oom = true;
}

/* Appends an OP_FLUSH op's answer to dst: "OK" when every group said so,
 * else the first failure (every reachable group was flushed anyway). */
static void
answer_flush(bc_proto_conn_t *pc, bc_proto_fwd_op_t *op, bc_outq_t *dst)
{
    bool ok = true;
    uint32_t i;
    for (i = 0; i < op->nparts; i++) {
        fwd_part_t *part = &op->parts[i];
        /* A group whose primary went away since the listing: nothing to
         * flush there (a group's data lives in its live nodes only). */
        if (part->st == BC_ENOTFOUND) continue;
        if (part->st != BC_OK) {
            ok = add_error_line(op, part->st, dst);
            break;
        }
        if (part->len != 4 || memcmp(part->reply, "OK\r\n", 4) != 0) {
            ok = bc_outq_add(dst, part->reply, part->len);
            break;
        }
    }
    if (i == op->nparts) ok = bc_outq_add(dst, "OK\r\n", 4);
    if (!ok) pc->oom = true;
}

/* Puts answer into op's hole, or at the tail of pc->out when it never
 * waited. */
static void
fwd_op_place(bc_proto_conn_t *pc, bc_proto_fwd_op_t *op, bc_outq_t *answer)
{
    if (op->has_hole) {
        if (!bc_outq_fill(&pc->out, pc->env->cache, op->hole, answer)) pc->oom = true;
    } else if (!bc_outq_move(&pc->out, answer, pc->env->cache)) {
        pc->oom = true;
    }
}

/*
 * A binary-protocol command (binary.c) is done: the text answer a text
 * command would have had -- the owner's reply, or the error line -- is
 * built as usual, flattened, and op->bin composes the binary reply from
 * it.
 */
static void
fwd_op_finish_bin(bc_proto_conn_t *pc, bc_proto_fwd_op_t *op)
{
    bc_outq_t text, answer;
    bc_outq_init(&text);
    bc_outq_init(&answer);
    switch (op->kind) {
    case OP_RELAY: answer_relay(pc, op, &text); break;
    case OP_VALUES: answer_values(pc, op, &text); break;
    case OP_FLUSH: answer_flush(pc, op, &text); break;
    }
    size_t n = bc_outq_pending(&text), got = 0;
    char *flat = malloc(n + 1);
    if (flat == NULL) {
        pc->oom = true;
    } else {
        struct iovec iov[16];
        int cnt = bc_outq_iov(&text, iov, 16);
        for (int i = 0; i < cnt && got + iov[i].iov_len <= n; i++) {
            memcpy(flat + got, iov[i].iov_base, iov[i].iov_len);
            got += iov[i].iov_len;
        }
        op->bin(pc, op->bin_arg, flat, got, &answer);
        free(flat);
    }
    bc_outq_free(&text, pc->env->cache);
    fwd_op_place(pc, op, &answer);
    bc_outq_free(&answer, pc->env->cache);
    bc__proto_fwd_op_free(pc, op);
}

/* Every part of op is done: its answer goes into its hole (or, when it
 * never waited, at the tail of pc->out), and op is freed. */
static void
fwd_op_finish(bc_proto_conn_t *pc, bc_proto_fwd_op_t *op)
{
    bc_outq_t answer;
    fwd_part_t *first = &op->parts[0];

    if (op->bin != NULL) {
        fwd_op_finish_bin(pc, op);
        return;
    }
    /* The common case, a reply relayed as it came: it becomes the hole. */
    if (op->kind == OP_RELAY && op->has_hole && first->st == BC_OK &&
        (op->relay == NULL ||
         (op->relay == relay_one_key_get &&
          reply_refusal(first->reply, first->len) == BC_WIRE_REFUSAL_NONE))) {
        if (!bc_outq_fill_owned(&pc->out, op->hole, first->reply, first->len)) pc->oom = true;
        first->reply = NULL;
        bc__proto_fwd_op_free(pc, op);
        return;
    }
    bc_outq_init(&answer);
    if (!op->noreply) {
        switch (op->kind) {
        case OP_RELAY: answer_relay(pc, op, &answer); break;
        case OP_VALUES: answer_values(pc, op, &answer); break;
        case OP_FLUSH: answer_flush(pc, op, &answer); break;
        }
    }
    fwd_op_place(pc, op, &answer);
    bc__proto_fwd_op_free(pc, op);
}

/* op (in pc->ops) has every answer it waits for: it leaves pc->ops, its
 * answer is queued and the connection resumes. */
static void
fwd_op_complete(bc_proto_conn_t *pc, bc_proto_fwd_op_t *op)
{
    if (op->prev != NULL) op->prev->next = op->next;
    else pc->ops = op->next;
    if (op->next != NULL) op->next->prev = op->prev;
    pc->nfwd--;
    pc->waiting = pc->nfwd >= BC_PROTO_FWD_MAX || pc->nretry > 0;
    fwd_op_finish(pc, op);
    bc_fwd_post(pc->fwd, &pc->resume_post);
}

static void fwd_send_part(bc_proto_conn_t *pc, bc_proto_fwd_op_t *op, uint32_t i, char *buf,
                          size_t len);

/* True for an answer that says "not now, or not here": the bucket is in
 * its migration pause, or the owner's table is newer than the one that
 * sent the request here.  Its first line says so (a meta reply goes on
 * with the "MN" of the request's "mn"). */
static bool
reply_is_retryable(const char *r, size_t n)
{
    const char *nl = memchr(r, '\n', n);
    if (nl != NULL) n = (size_t)(nl - r) + 1;
    switch (reply_refusal(r, n)) {
    case BC_WIRE_REFUSAL_READONLY:
    case BC_WIRE_REFUSAL_MOVED:
    case BC_WIRE_REFUSAL_NOT_PRIMARY:
        return true;
    default:
        return false;
    }
}

/*
 * A retried op was answered `reply` (owned; from the owner, or from this
 * node) for its request req[0..n) (owned): either it waits again -- req
 * kept, reply dropped, the retry timed -- or, when the answer is final or
 * the wait is over, it completes with that answer.
 */
static void
fwd_op_settle(bc_proto_conn_t *pc, bc_proto_fwd_op_t *op, char *req, size_t n, char *reply,
              size_t rlen)
{
    fwd_part_t *part = &op->parts[0];
    uint64_t now = (uint64_t)bc_time_mono_ms();

    if (req != NULL && reply_is_retryable(reply, rlen)) {
        bool wait = true;
        if (op->retry_since_ms == 0) {
            op->retry_since_ms = now;
            bc_stats_incr(pc->stats, pause_waits);
        } else if (now - op->retry_since_ms >= pc->env->readonly_wait_ms) {
            bc_stats_incr(pc->stats, pause_timeouts);
            wait = false;
        }
        if (wait) {
            free(reply);
            op->buf = req;
            op->len = n;
            /* No command of this client overtakes the one waiting: its
             * input waits too (a later write of the same key must not be
             * applied first). */
            if (!op->retry_waiting) {
                op->retry_waiting = true;
                pc->nretry++;
                pc->waiting = true;
            }
            bc_fwd_post_at(pc->fwd, &op->retry_post,
                           now + bc__proto_pause_delay_ms(pc->env, op->retry_tries++));
            return;
        }
    }
    free(req);
    part->st = BC_OK;
    part->reply = reply;
    part->len = rlen;
    fwd_op_complete(pc, op);
}

static void fwd_on_done(void *arg, uint32_t tag, bc_status_t st, char *reply, size_t len);

/* ------------------------------------------------------------------------ */
/* a multi-key gat waiting out a pause                                      */
/* ------------------------------------------------------------------------ */

/* Appends src[0..n) to the owned buffer *dst of *len bytes. */
static bool
buf_append(char **dst, size_t *len, const char *src, size_t n)
{
    if (n == 0) return true;
    char *b = realloc(*dst, *len + n + 1);
    if (b == NULL) return false;
    memcpy(b + *len, src, n);
    *len += n;
    *dst = b;
    return true;
}

/* The keys in " k1 k2 ..." (as many as bc_mc_next_key finds). */
static uint64_t
keys_count(const char *keys, size_t n)
{
    const char *cursor = keys, *key;
    size_t nkey;
    uint64_t count = 0;
    while (n > 0 && bc_mc_next_key(&cursor, keys + n, &key, &nkey)) count++;
    return count;
}

/* Part i of a gat is answered: its VALUE blocks and one END are its reply
 * (merged like any part's, answer_values), and op completes when it was
 * the last.  op may be freed on return. */
static void
values_part_finish(bc_proto_conn_t *pc, bc_proto_fwd_op_t *op, uint32_t i)
{
    fwd_part_t *part = &op->parts[i];
    free(part->keys);
    part->keys = NULL;
    part->nkeys_len = 0;
    part->retrying = false;
    if (buf_append(&part->acc, &part->nacc, "END\r\n", 5)) {
        part->st = BC_OK;
        part->reply = part->acc;
        part->len = part->nacc;
    } else {
        pc->oom = true;
        part->st = BC_ENOMEM;
        free(part->acc);
    }
    part->acc = NULL;
    part->nacc = 0;
    if (--op->pending == 0) fwd_op_complete(pc, op);
}

/* Part i's keys (part->keys) wait for the op's timed retry, or -- the
 * wait over -- read as misses, as a part refused without waiting does.
 * op may be freed on return. */
static void
values_part_wait(bc_proto_conn_t *pc, bc_proto_fwd_op_t *op, uint32_t i)
{
    fwd_part_t *part = &op->parts[i];
    uint64_t now = (uint64_t)bc_time_mono_ms();

    if (op->retry_since_ms == 0) {
        op->retry_since_ms = now;
        bc_stats_incr(pc->stats, pause_waits);
    } else if (now - op->retry_since_ms >= pc->env->readonly_wait_ms) {
        if (!op->retry_timed_out) bc_stats_incr(pc->stats, pause_timeouts);
        op->retry_timed_out = true;
        bc__proto_count_unanswered(pc, keys_count(part->keys, part->nkeys_len), false);
        values_part_finish(pc, op, i);
        return;
    }
    part->waiting = true;
    /* A gat is a write: no command of this client overtakes it. */
    if (!op->retry_waiting) {
        op->retry_waiting = true;
        pc->nretry++;
        pc->waiting = true;
    }
    if (!op->retry_armed) {
        op->retry_armed = true;
        bc_fwd_post_at(pc->fwd, &op->retry_post,
                       now + bc__proto_pause_delay_ms(pc->env, op->retry_tries++));
    }
}

/*
 * The answer (st, reply owned) to part i's request for the keys
 * part->inflight: its values are kept; a pause or a newer table puts the
 * keys back to wait (returns false: part i waits, or is finished and op
 * may be freed); any other answer makes them misses.  Returns true when
 * part i goes on with its other keys.
 */
static bool
values_part_answered(bc_proto_conn_t *pc, bc_proto_fwd_op_t *op, uint32_t i, bc_status_t st,
                     char *reply, size_t len)
{
    fwd_part_t *part = &op->parts[i];
    char *sent = part->inflight;
    size_t nsent = part->ninflight;
    bool go_on = true;

    part->inflight = NULL;
    part->ninflight = 0;
    if (st == BC_OK && reply_is_values(reply, len)) {
        /* One part's values, gathered over several requests, are bounded
         * as one reply is: past max_reply these keys read as misses, as a
         * part whose one reply is too large does. */
        if (part->nacc + (len - 5) > bc_fwd_max_reply(pc->fwd)) {
            bc__proto_count_unanswered(pc, keys_count(sent, nsent), false);
        } else if (!buf_append(&part->acc, &part->nacc, reply, len - 5)) {
            pc->oom = true;
        }
    } else if (st == BC_OK && reply_is_retryable(reply, len)) {
        /* Its keys first again: the part keeps the client's key order. */
        if (buf_append(&sent, &nsent, part->keys, part->nkeys_len)) {
            free(part->keys);
            part->keys = sent;
            part->nkeys_len = nsent;
            sent = NULL;
            values_part_wait(pc, op, i);
            go_on = false;
        } else {
            pc->oom = true;
            bc__proto_count_unanswered(pc, keys_count(sent, nsent), false);
        }
    } else {
        bool no_owner = st == BC_OK && reply_refusal(reply, len) == BC_WIRE_REFUSAL_NO_OWNER;
        bc__proto_count_unanswered(pc, keys_count(sent, nsent), no_owner);
    }
    free(sent);
    free(reply);
    return go_on;
}

enum { KEY_HERE, KEY_FORWARD, KEY_PAUSED, KEY_NO_OWNER, KEY_UNREACHABLE };

/* Where a key of a waiting gat goes now. */
static int
key_class(bc_proto_action_t a, const bc_proto_route_t *r)
{
    switch (a) {
    case BC_PROTO_SERVE: return KEY_HERE;
    case BC_PROTO_FORWARD: return KEY_FORWARD;
    case BC_PROTO_REFUSE: break;
    }
    return r->why == BC_ROUTE_READONLY   ? KEY_PAUSED
           : r->why == BC_ROUTE_NO_OWNER ? KEY_NO_OWNER
                                         : KEY_UNREACHABLE;
}

/*
 * Part i's keys are routed again, by this node's table now: the keys that
 * go where the first one goes are asked there -- run here (served here
 * now), sent to their owner's primary (the answer comes to fwd_on_done),
 * or read as misses (no owner, nobody reachable) -- and the others after
 * them.  A first key still in its pause here makes them all wait.  op may
 * be freed on return.
 */
static void
values_part_advance(bc_proto_conn_t *pc, bc_proto_fwd_op_t *op, uint32_t i)
{
    fwd_part_t *part = &op->parts[i];

    while (part->nkeys_len > 0 && keys_count(part->keys, part->nkeys_len) > 0) {
        const char *cursor = part->keys, *end = part->keys + part->nkeys_len, *key;
        size_t nkey, nsub = 0, nrest = 0;
        char *sub = malloc(op->npfx + part->nkeys_len + 3), *rest = malloc(part->nkeys_len + 1);
        int target = -1;
        bc_proto_route_t first = {0};
        if (sub == NULL || rest == NULL) {
            free(sub);
            free(rest);
            pc->oom = true;
            bc__proto_count_unanswered(pc, keys_count(part->keys, part->nkeys_len), false);
            break;
        }
        memcpy(sub, op->pfx, op->npfx);
        nsub = op->npfx;
        while (bc_mc_next_key(&cursor, end, &key, &nkey)) {
            bc_proto_route_t r;
            int c = key_class(bc__proto_route(pc, bc_hash_key(key, nkey), true, &r), &r);
            if (target < 0) {
                target = c;
                first = r;
            }
            bool same = c == target && (c != KEY_FORWARD || r.owner == first.owner);
            char *dst = same ? sub : rest;
            size_t *n = same ? &nsub : &nrest;
            dst[(*n)++] = ' ';
            memcpy(dst + *n, key, nkey);
            *n += nkey;
        }
        if (target == KEY_PAUSED) {
            /* In its pause here: everything waits, in the client's order. */
            free(sub);
            free(rest);
            values_part_wait(pc, op, i);
            return;
        }
        free(part->keys);
        part->keys = rest;
        part->nkeys_len = nrest;
        part->inflight = malloc(nsub - op->npfx + 1);
        if (part->inflight == NULL) {
            pc->oom = true;
            bc__proto_count_unanswered(pc, keys_count(sub + op->npfx, nsub - op->npfx), false);
            free(sub);
            continue;
        }
        memcpy(part->inflight, sub + op->npfx, nsub - op->npfx);
        part->ninflight = nsub - op->npfx;
        sub[nsub++] = '\r';
        sub[nsub++] = '\n';
        if (target == KEY_FORWARD) {
            part->gid = first.owner;
            bc_status_t st = bc_fwd_submit(pc->fwd, part->gid, op->reply_kind, sub, nsub,
                                           (uint32_t)pc->id, fwd_on_done, op, i, &part->req);
            if (st == BC_OK) return;    /* fwd_on_done goes on */
            part->req = NULL;
            (void)values_part_answered(pc, op, i, st, NULL, 0);
            continue;
        }
        char *reply = NULL;
        size_t rlen = 0;
        if (target == KEY_HERE) {
            reply = bc__proto_exec_local(pc, sub, nsub, &rlen);
            if (reply == NULL) pc->oom = true;
        }
        free(sub);
        bc_status_t st = BC_OK;
        if (reply == NULL) {
            /* Nobody to ask (no owner, no reachable primary): misses. */
            st = target == KEY_HERE ? BC_ENOMEM : target == KEY_NO_OWNER ? BC_OK : BC_ENOTFOUND;
            if (st == BC_OK) {
                char line[REFUSAL_MAX];
                rlen = bc__proto_refusal(&first, line);
                reply = malloc(rlen);
                if (reply == NULL) st = BC_ENOMEM;
                else memcpy(reply, line, rlen);
            }
        }
        if (!values_part_answered(pc, op, i, st, reply, rlen)) return;
    }
    values_part_finish(pc, op, i);
}

/* The timed retry of an OP_VALUES op: every part waiting goes on. */
static void
values_op_retry(bc_proto_fwd_op_t *op)
{
    bc_proto_conn_t *pc = op->pc;

    op->retry_armed = false;
    if (op->retry_waiting) {
        op->retry_waiting = false;
        pc->nretry--;
        pc->waiting = pc->nfwd >= BC_PROTO_FWD_MAX || pc->nretry > 0;
        if (!pc->waiting) bc_fwd_post(pc->fwd, &pc->resume_post);   /* input goes on */
    }
    op->pending++;                      /* op outlives the loop */
    for (uint32_t i = 0; i < op->nparts; i++) {
        if (!op->parts[i].waiting) continue;
        op->parts[i].waiting = false;
        values_part_advance(pc, op, i);
    }
    if (--op->pending == 0) fwd_op_complete(pc, op);
}

/* op's timed retry: sent to the bucket's owner by this node's table now,
 * or run here when that is this node's group.  Routed as a write (a
 * one-key get waits a little longer for a paused bucket it could read:
 * harmless, and a gat is a write). */
static void
fwd_op_retry(void *arg)
{
    bc_proto_fwd_op_t *op = arg;
    bc_proto_conn_t *pc = op->pc;
    fwd_part_t *part = &op->parts[0];
    char *req = op->buf;
    size_t n = op->len;
    bc_proto_route_t r = op->route;

    if (op->kind == OP_VALUES) {
        values_op_retry(op);
        return;
    }
    op->buf = NULL;
    if (op->retry_waiting) {
        op->retry_waiting = false;
        pc->nretry--;
        pc->waiting = pc->nfwd >= BC_PROTO_FWD_MAX || pc->nretry > 0;
        if (!pc->waiting) bc_fwd_post(pc->fwd, &pc->resume_post);   /* input goes on */
    }
    r.why = bc_node_cluster_route(pc->env->cluster, r.bucket, true, &r.owner, &r.epoch);
    if (r.why == BC_ROUTE_SERVE || r.why == BC_ROUTE_READONLY) {
        /* Ours now (the bucket moved here), or ours and still paused: the
         * command runs here, or is refused READONLY here and waits again. */
        size_t rlen = 0;
        char *reply = NULL;
        if (r.why == BC_ROUTE_SERVE) {
            reply = bc__proto_exec_local(pc, req, n, &rlen);
        } else {
            /* A meta request ended with "mn": its answer ends with "MN". */
            reply = malloc(REFUSAL_MAX + 4);
            if (reply != NULL) rlen = bc__proto_refusal(&r, reply);
            if (reply != NULL && op->reply_kind == BC_FWD_REPLY_META) {
                memcpy(reply + rlen, "MN\r\n", 4);
                rlen += 4;
            }
        }
        if (reply == NULL) {
            free(req);
            pc->oom = true;
            part->st = BC_ENOMEM;
            fwd_op_complete(pc, op);
            return;
        }
        fwd_op_settle(pc, op, req, n, reply, rlen);
        return;
    }
    if ((r.why == BC_ROUTE_MOVED || r.why == BC_ROUTE_NOT_PRIMARY) &&
        bc_fwd_can_reach(pc->fwd, r.owner)) {
        op->route = r;
        part->gid = r.owner;
        fwd_send_part(pc, op, 0, req, n);
        if (op->pending == 0) fwd_op_complete(pc, op);   /* failed at once */
        return;
    }
    /* Nobody to ask (no owner, no reachable primary): this node's refusal. */
    free(req);
    op->route = r;
    part->st = BC_ENOTFOUND;
    fwd_op_complete(pc, op);
}

/* forward.h completion of part `tag` of op. */
static void
fwd_on_done(void *arg, uint32_t tag, bc_status_t st, char *reply, size_t len)
{
    bc_proto_fwd_op_t *op = arg;
    bc_proto_conn_t *pc = op->pc;
    fwd_part_t *part = &op->parts[tag];

    if (op->kind == OP_VALUES && op->retry) {
        if (part->retrying) {
            /* A key set of a gat waiting out a pause, sent again. */
            part->req = NULL;
            if (values_part_answered(pc, op, tag, st, reply, len)) values_part_advance(pc, op, tag);
            return;
        }
        size_t n = 0;
        char *req = st == BC_OK && reply_is_retryable(reply, len)
                    ? bc_fwd_take_request(part->req, &n) : NULL;
        if (req != NULL && n >= op->npfx + 2) {
            /* Its owner is in its pause (or its table is newer): the
             * part's keys wait, then go where they belong then. */
            part->req = NULL;
            part->retrying = true;
            part->keys = req;
            part->nkeys_len = n - op->npfx - 2;
            memmove(req, req + op->npfx, part->nkeys_len);
            free(reply);
            values_part_wait(pc, op, tag);
            return;
        }
        free(req);
    }
    if (op->retry && op->kind != OP_VALUES && st == BC_OK && reply_is_retryable(reply, len)) {
        size_t n = 0;
        char *req = bc_fwd_take_request(part->req, &n);
        part->req = NULL;
        op->pending--;
        fwd_op_settle(pc, op, req, n, reply, len);
        return;
    }
    part->req = NULL;
    part->st = st;
    part->reply = reply;
    part->len = len;
    if (--op->pending > 0) return;
    fwd_op_complete(pc, op);
}

/* ------------------------------------------------------------------------ */
/* sending                                                                  */
/* ------------------------------------------------------------------------ */

/* Sends part i of op; a failure at once is recorded in the part. */
static void
fwd_send_part(bc_proto_conn_t *pc, bc_proto_fwd_op_t *op, uint32_t i, char *buf, size_t len)
{
    bc_status_t st = bc_fwd_submit(pc->fwd, op->parts[i].gid, op->reply_kind, buf, len,
                                   (uint32_t)pc->id, fwd_on_done, op, i, &op->parts[i].req);
    if (st == BC_OK) {
        op->pending++;
        if (op->retry) bc_fwd_keep(op->parts[i].req);
    } else {
        op->parts[i].req = NULL;
        op->parts[i].st = st;
    }
}

/* Every part of op has been sent: it waits in pc->ops, its hole in the
 * reply stream, or -- when every part failed at once -- it is answered
 * now. */
static void
fwd_op_sent(bc_proto_conn_t *pc, bc_proto_fwd_op_t *op)
{
    if (op->pending == 0) {
        fwd_op_finish(pc, op);
        return;
    }
    if (!op->noreply) {
        if (!bc_outq_hole(&pc->out, &op->hole)) {
            pc->oom = true;
            bc__proto_fwd_op_free(pc, op);     /* cancels the parts */
            return;
        }
        op->has_hole = true;
    }
    op->prev = NULL;
    op->next = pc->ops;
    if (pc->ops != NULL) pc->ops->prev = op;
    pc->ops = op;
    pc->nfwd++;
    pc->waiting = pc->nfwd >= BC_PROTO_FWD_MAX || pc->nretry > 0;
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

void
bc__proto_fwd_command(bc_proto_conn_t *pc, const bc_proto_route_t *route,
                      bc_fwd_reply_kind_t kind, char *req, size_t len, bool noreply,
                      bc_proto_fwd_relay_fn relay)
{
    bc_proto_fwd_op_t *op = fwd_op_new(pc, OP_RELAY, 1, route);
    if (op == NULL) {
        free(req);
        pc->oom = true;
        return;
    }
    op->reply_kind = kind;
    op->relay = relay;
    op->noreply = noreply;
    op->retry = fwd_retries_writes(pc) &&
                ((kind == BC_FWD_REPLY_LINE && relay == NULL) || relay == relay_one_key_get ||
                 kind == BC_FWD_REPLY_META);
    op->parts[0].gid = route->owner;
    fwd_send_part(pc, op, 0, req, len);
    fwd_op_sent(pc, op);
}

void
bc__proto_fwd_command_bin(bc_proto_conn_t *pc, const bc_proto_route_t *route, char *req,
                          size_t len, bc_proto_fwd_bin_fn bin, void *bin_arg)
{
    bc_proto_fwd_op_t *op = fwd_op_new(pc, OP_RELAY, 1, route);
    if (op == NULL) {
        free(req);
        free(bin_arg);
        pc->oom = true;
        return;
    }
    op->reply_kind = BC_FWD_REPLY_META;
    op->bin = bin;
    op->bin_arg = bin_arg;
    op->retry = fwd_retries_writes(pc);
    op->parts[0].gid = route->owner;
    fwd_send_part(pc, op, 0, req, len);
    fwd_op_sent(pc, op);
}

void
bc__proto_fwd_collect_bin(bc_proto_conn_t *pc, const bc_proto_route_t *route, char *buf,
                          size_t n, uint32_t need, bc_proto_fwd_bin_fn bin, void *bin_arg)
{
    pc->fop = fwd_op_new(pc, OP_RELAY, 1, route);
    if (pc->fop == NULL) {
        free(buf);
        free(bin_arg);
        pc->oom = true;
        return;
    }
    pc->fop->reply_kind = BC_FWD_REPLY_META;
    pc->fop->bin = bin;
    pc->fop->bin_arg = bin_arg;
    pc->fop->retry = fwd_retries_writes(pc);
    pc->fop->buf = buf;
    pc->fop->len = n + need;
    pc->fop->parts[0].gid = route->owner;
    pc->state = BC_PROTO_FWD_DATA;
    pc->dst = buf + n;
    pc->need = need;
}

char *
bc__proto_fwd_collected(bc_proto_conn_t *pc, size_t *len)
{
    *len = pc->fop->len;
    return pc->fop->buf;
}

void
bc__proto_fwd_collect_send(bc_proto_conn_t *pc, size_t len)
{
    bc_proto_fwd_op_t *op = pc->fop;
    char *buf = op->buf;
    pc->fop = NULL;
    pc->state = BC_PROTO_LINE;
    op->buf = NULL;
    fwd_send_part(pc, op, 0, buf, len);
    fwd_op_sent(pc, op);
}

/* Forwards a one-key command without data block (delete, incr, touch). */
void
bc__proto_fwd_simple(bc_proto_conn_t *pc, const char *line, size_t len, const bc_mc_request_t *req,
                     const bc_proto_route_t *route)
{
    size_t n;
    char *buf = fwd_line(line, len, req->noreply, 0, &n);
    if (buf == NULL) {
        pc->oom = true;
        return;
    }
    bc__proto_fwd_command(pc, route, BC_FWD_REPLY_LINE, buf, n, req->noreply, NULL);
}

/* A one-key get's reply: as it came, but the owner's NO_OWNER refusal
 * (its table is newer than ours: the group is down) reads as a miss, as
 * it would here. */
static void
relay_one_key_get(bc_proto_conn_t *pc, char *reply, size_t len, bc_outq_t *dst)
{
    bool ok;
    if (reply_refusal(reply, len) == BC_WIRE_REFUSAL_NO_OWNER) {
        bc__proto_count_unanswered(pc, 1, true);
        free(reply);
        ok = bc_outq_add(dst, "END\r\n", 5);
    } else {
        ok = bc_outq_add_owned(dst, reply, len);
    }
    if (!ok) pc->oom = true;
}

void
bc__proto_fwd_get_one(bc_proto_conn_t *pc, const char *line, size_t len,
                      const bc_proto_route_t *route)
{
    size_t n;
    char *buf = fwd_line(line, len, false, 0, &n);
    if (buf == NULL) {
        pc->oom = true;
        return;
    }
    bc__proto_fwd_command(pc, route, BC_FWD_REPLY_VALUES, buf, n, false, relay_one_key_get);
}

/*
 * A multi-get with keys of other owners (dest[i] = the owner group of key
 * i, 0 = served here, BC_PROTO_DEST_* = a miss already counted): one
 * request per owner, in the order owners first appear, and the local
 * keys' VALUE blocks served now into the command's own queue (put in
 * their places at the end, see answer_values).
 */
void
bc__proto_fwd_retrieve(bc_proto_conn_t *pc, const bc_mc_request_t *req, const uint32_t *dest,
                       const uint32_t *hashes)
{
    uint32_t gids_small[8], *gids = gids_small, ngids = 0, cap = 8;
    uint32_t nk_small[8], *nks = nk_small;
    bool local = false;

    for (uint32_t i = 0; i < req->nkeys; i++) {
        uint32_t g = dest[i], k;
        if (g >= BC_PROTO_DEST_MISS) continue;
        local = local || g == 0;
        if (g == 0) continue;
        for (k = 0; k < ngids && gids[k] != g; k++) {
        }
        if (k < ngids) {
            nks[k]++;
            continue;
        }
        if (ngids == cap) {
            uint32_t *ng = malloc(2 * cap * sizeof(*ng)), *nn = malloc(2 * cap * sizeof(*nn));
            if (ng == NULL || nn == NULL) {
                free(ng);
                free(nn);
                goto oom;
            }
            memcpy(ng, gids, ngids * sizeof(*ng));
            memcpy(nn, nks, ngids * sizeof(*nn));
            if (gids != gids_small) free(gids);
            if (nks != nk_small) free(nks);
            gids = ng;
            nks = nn;
            cap *= 2;
        }
        nks[ngids] = 1;
        gids[ngids++] = g;
    }
    bc_proto_fwd_op_t *op = fwd_op_new(pc, OP_VALUES, ngids, NULL);
    if (op == NULL) goto oom;
    /* Where each key's answer is, for the reply in key order. */
    op->nkeys = req->nkeys;
    op->nkeys_len = (size_t)(req->keys_end - req->keys);
    /* one allocation: where[nkeys], local_lens[nkeys], the keys */
    op->where = malloc((size_t)req->nkeys * 2 * sizeof(uint32_t) + op->nkeys_len + 1);
    if (op->where == NULL) {
        bc__proto_fwd_op_free(pc, op);
        goto oom;
    }
    op->local_lens = op->where + req->nkeys;
    op->keys = (char *)(op->local_lens + req->nkeys);
    memcpy(op->keys, req->keys, op->nkeys_len);
    if (local) memset(op->local_lens, 0, req->nkeys * sizeof(*op->local_lens));
    for (uint32_t i = 0; i < req->nkeys; i++) {
        uint32_t g = dest[i], k = 0;
        if (g >= BC_PROTO_DEST_MISS) {
            op->where[i] = WHERE_MISS;
            continue;
        }
        if (g == 0) {
            op->where[i] = WHERE_LOCAL;
            continue;
        }
        while (k < ngids && gids[k] != g) k++;
        op->where[i] = k;
    }
    if (local) {
        bc_outq_t saved = pc->out;
        bc_outq_init(&pc->out);
        bc__proto_retrieve_values(pc, req, dest, hashes, op->local_lens);
        op->local = pc->out;
        pc->out = saved;
        if (pc->oom) {
            bc__proto_fwd_op_free(pc, op);
            goto out;
        }
    }

    const char *name = bc_mc_cmd_name(req->cmd);
    bool touch = req->cmd == BC_MC_CMD_GAT || req->cmd == BC_MC_CMD_GATS;
    size_t room = strlen(name) + 24 + (size_t)(req->keys_end - req->keys) + 3;
    int npfx = touch ? snprintf(op->pfx, sizeof(op->pfx), "%s %" PRId64, name, req->exptime)
                     : snprintf(op->pfx, sizeof(op->pfx), "%s", name);
    op->npfx = npfx > 0 && (size_t)npfx < sizeof(op->pfx) ? (size_t)npfx : 0;
    /* A gat is a write: its parts wait out a pause ("A MULTI-KEY GAT
     * WAITS TOO"). */
    op->retry = touch && op->npfx > 0 && fwd_retries_writes(pc);
    for (uint32_t k = 0; k < ngids; k++) {
        op->parts[k].gid = gids[k];
        op->parts[k].nkeys = nks[k];
        char *buf = malloc(room);
        if (buf == NULL) {
            op->parts[k].st = BC_ENOMEM;
            continue;
        }
        memcpy(buf, op->pfx, op->npfx);
        size_t n = op->npfx;
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
        fwd_send_part(pc, op, k, buf, n);
    }
    fwd_op_sent(pc, op);
    goto out;
oom:
    pc->oom = true;
out:
    if (gids != gids_small) free(gids);
    if (nks != nk_small) free(nks);
}

/*
 * flush_all through a node of a cluster: every group's primary is
 * flushed.  This node's own group is flushed here when this node is its
 * primary (the caller did that); every other group that has a primary
 * gets the command as it came, without noreply.
 */
void
bc__proto_fwd_flush_all(bc_proto_conn_t *pc, const char *line, size_t len,
                        const bc_mc_request_t *req, bool flushed_here, bc_proto_fwd_bin_fn bin,
                        void *bin_arg)
{
    uint32_t small_g[16], *gids = small_g;
    bool small_s[16], *self = small_s;
    uint32_t own = bc_node_cluster_gid(pc->env->cluster);
    uint32_t n = bc_fwd_groups(pc->fwd, gids, self, 16);

    if (n > 16) {
        gids = malloc(n * sizeof(*gids));
        self = malloc(n * sizeof(*self));
        if (gids == NULL || self == NULL) goto oom;
        uint32_t again = bc_fwd_groups(pc->fwd, gids, self, n);
        if (again < n) n = again;
    }
    uint32_t nparts = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (self[i] || (flushed_here && gids[i] == own)) continue;
        gids[nparts++] = gids[i];
    }
    if (nparts == 0) {
        if (bin != NULL) {
            bin(pc, bin_arg, "OK\r\n", 4, &pc->out);
        } else if (!req->noreply) {
            REPLY(pc, "OK\r\n");
        }
        goto out;
    }
    bc_proto_fwd_op_t *op = fwd_op_new(pc, OP_FLUSH, nparts, NULL);
    if (op == NULL) goto oom;
    op->noreply = req->noreply;
    op->bin = bin;
    op->bin_arg = bin_arg;
    bin_arg = NULL;
    for (uint32_t k = 0; k < nparts; k++) {
        size_t blen;
        op->parts[k].gid = gids[k];
        char *buf = fwd_line(line, len, req->noreply, 0, &blen);
        if (buf == NULL) {
            op->parts[k].st = BC_ENOMEM;
            continue;
        }
        fwd_send_part(pc, op, k, buf, blen);
    }
    fwd_op_sent(pc, op);
    goto out;
oom:
    pc->oom = true;
out:
    if (gids != small_g) free(gids);
    if (self != small_s) free(self);
    free(bin_arg);
}

static const char too_large_line[] = "SERVER_ERROR object too large for cache\r\n";

/* The owner's reply to the "md <key> q" + "mn" of a too large store: done
 * (nothing, HD or NF before the MN) answers the SERVER_ERROR; anything
 * else is the owner's own error (its table changed meanwhile, ...). */
static void
relay_too_large(bc_proto_conn_t *pc, char *reply, size_t len, bc_outq_t *dst)
{
    bool ok;
    size_t n = len >= 4 ? len - 4 : 0;         /* without the "MN\r\n" */
    if (n == 0 || (n == 4 && (memcmp(reply, "HD\r\n", 4) == 0 ||
                              memcmp(reply, "NF\r\n", 4) == 0))) {
        ok = bc_outq_add(dst, too_large_line, sizeof(too_large_line) - 1);
    } else {
        ok = bc_outq_add(dst, reply, n);
    }
    free(reply);
    if (!ok) pc->oom = true;
}

/*
 * A storage command too large for an item, for another owner: its block
 * is not buffered to be forwarded but swallowed here, and -- for a set
 * or any ms, which memcached answers by also removing the old value, so
 * that no stale value outlives a store the client saw fail -- the key is
 * deleted on the owner first ("md <key> q" and "mn"); then the
 * SERVER_ERROR (nothing with noreply) in the command's place.  Without
 * deleting, the answer is at once.  key is the key token as it came
 * (base64 with key_binary).
 */
static void
fwd_too_large(bc_proto_conn_t *pc, const bc_proto_route_t *route, const char *key, size_t nkey,
              bool key_binary, bool remove, bool noreply, uint32_t vlen)
{
    static const char tail_bin[] = " b q\r\nmn\r\n", tail[] = " q\r\nmn\r\n";
    bc_stats_incr(pc->stats, store_too_large);
    pc->state = BC_PROTO_SWALLOW;
    pc->swallow = (uint64_t)vlen + 2;
    if (!remove) {
        if (!noreply) REPLY(pc, too_large_line);
        return;
    }
    const char *t = key_binary ? tail_bin : tail;
    size_t nt = key_binary ? sizeof(tail_bin) - 1 : sizeof(tail) - 1;
    char *buf = malloc(3 + nkey + nt);
    if (buf == NULL) {
        pc->oom = true;
        return;
    }
    memcpy(buf, "md ", 3);
    memcpy(buf + 3, key, nkey);
    memcpy(buf + 3 + nkey, t, nt);
    bc__proto_fwd_command(pc, route, BC_FWD_REPLY_META, buf, 3 + nkey + nt, noreply,
                          relay_too_large);
}

/*
 * A storage command for another owner: its line and data block are
 * collected into one request (state FWD_DATA), sent once complete.
 */
void
bc__proto_fwd_store_begin(bc_proto_conn_t *pc, const char *line, size_t len,
                          const bc_mc_request_t *req, const bc_proto_route_t *route)
{
    size_t n;

    /* BEHAVIOR: a block larger than this node's item limit is not
     * buffered to be forwarded (memory): it is answered here, as the owner
     * would, a set removing the owner's old value first. */
    if ((size_t)req->vlen + 2 > bc_cache_max_item_size(pc->env->cache)) {
        fwd_too_large(pc, route, req->key, req->nkey, false, req->cmd == BC_MC_CMD_SET,
                      req->noreply, req->vlen);
        return;
    }
    pc->fop = fwd_op_new(pc, OP_RELAY, 1, route);
    char *buf = pc->fop != NULL ? fwd_line(line, len, req->noreply, (size_t)req->vlen + 2, &n)
                                : NULL;
    if (buf == NULL) {
        bc__proto_fwd_op_free(pc, pc->fop);
        pc->fop = NULL;
        pc->oom = true;
        return;
    }
    pc->fop->buf = buf;
    pc->fop->len = n + req->vlen + 2;
    pc->fop->parts[0].gid = route->owner;
    pc->fop->noreply = req->noreply;
    pc->fop->retry = fwd_retries_writes(pc);
    pc->state = BC_PROTO_FWD_DATA;
    pc->dst = buf + n;
    pc->need = req->vlen + 2;
}

/* The data block to forward is complete: check its terminator, send. */
void
bc__proto_fwd_store_finish(bc_proto_conn_t *pc)
{
    bc_proto_fwd_op_t *op = pc->fop;
    const char *end = op->buf + op->len;

    pc->fop = NULL;
    pc->state = BC_PROTO_LINE;
    if (end[-2] != '\r' || end[-1] != '\n') {
        bc_stats_incr(pc->stats, protocol_errors);
        if (!op->noreply) REPLY(pc, "CLIENT_ERROR bad data chunk\r\n");
        bc__proto_fwd_op_free(pc, op);
        return;
    }
    char *buf = op->buf;
    op->buf = NULL;
    if (op->reply_kind == BC_FWD_REPLY_META) {
        memcpy(buf + op->len, "mn\r\n", 4);       /* room reserved at begin */
        op->len += 4;
    }
    fwd_send_part(pc, op, 0, buf, op->len);
    fwd_op_sent(pc, op);
}

/* ------------------------------------------------------------------------ */
/* meta commands                                                            */
/* ------------------------------------------------------------------------ */

/* A meta reply: everything the owner answered but the "MN" of our "mn"
 * (the forwarder found the reply's end there). */
static void
relay_meta(bc_proto_conn_t *pc, char *reply, size_t len, bc_outq_t *dst)
{
    bool ok = true;
    if (len > 4) ok = bc_outq_add(dst, reply, len - 4);
    free(reply);
    if (!ok) pc->oom = true;
}

void
bc__proto_fwd_meta(bc_proto_conn_t *pc, const char *line, size_t len,
                   const bc_proto_route_t *route)
{
    size_t n;
    char *buf = fwd_line(line, len, false, 4, &n);
    if (buf == NULL) {
        pc->oom = true;
        return;
    }
    memcpy(buf + n, "mn\r\n", 4);
    bc__proto_fwd_command(pc, route, BC_FWD_REPLY_META, buf, n + 4, false, relay_meta);
}

void
bc__proto_fwd_meta_store_begin(bc_proto_conn_t *pc, const char *line, size_t len,
                               const bc_mc_token_t *key, bool key_binary, uint32_t vlen,
                               const bc_proto_route_t *route)
{
    size_t n;

    if ((size_t)vlen + 2 > bc_cache_max_item_size(pc->env->cache)) {
        /* memcached's ms removes the old value whatever the mode. */
        fwd_too_large(pc, route, key->p, key->n, key_binary, true, false, vlen);
        return;
    }
    pc->fop = fwd_op_new(pc, OP_RELAY, 1, route);
    char *buf = pc->fop != NULL ? fwd_line(line, len, false, (size_t)vlen + 2 + 4, &n) : NULL;
    if (buf == NULL) {
        bc__proto_fwd_op_free(pc, pc->fop);
        pc->fop = NULL;
        pc->oom = true;
        return;
    }
    pc->fop->reply_kind = BC_FWD_REPLY_META;
    pc->fop->relay = relay_meta;
    pc->fop->retry = fwd_retries_writes(pc);
    pc->fop->buf = buf;
    pc->fop->len = n + vlen + 2;
    pc->fop->parts[0].gid = route->owner;
    pc->state = BC_PROTO_FWD_DATA;
    pc->dst = buf + n;
    pc->need = vlen + 2;
}
