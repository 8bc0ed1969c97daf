/*
 * proto_fwd.c -- the text protocol's forwarded commands: a command for
 * keys another group owns (or that this node, a backup, may not serve) is
 * sent to the owner's primary through the worker's forwarder (forward.h)
 * and its reply relayed (proto_text.h, "FORWARDING", says when).
 *
 * HOW
 *   A forwarded command is one bc_proto_fwd_op_t on its connection
 *   (pc->fop) with one part per owner group, each a request in flight:
 *
 *     delete/incr/decr/touch   one part: the command line as it came,
 *                              without noreply
 *     set & co                 one part: line and data block, collected
 *                              first (state FWD_DATA), then sent
 *     get & co                 one "get" per owner group with its keys;
 *                              the keys served here are answered at once
 *                              into the op's own queue
 *
 *   The connection waits (pc->waiting) until every part completed; then
 *   fwd_finish queues the answer -- the owners' VALUE blocks in the order
 *   owners first appeared, the local ones, one END; or, if any part
 *   failed, only that part's error line -- and calls the resume hook.
 *
 * The reply bytes are relayed as the owner sent them; only a multi-get's
 * parts are checked to be VALUE blocks (anything else is the owner's own
 * error line, answered alone).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto_int.h"

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
void
bc__proto_fwd_op_free(bc_proto_conn_t *pc, bc_proto_fwd_op_t *op)
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
        bc__proto_reply_bytes(pc, err, nerr);
    } else if (!op->values) {
        bc__proto_reply_bytes(pc, op->parts[0].reply, op->parts[0].len);
    } else {
        for (uint32_t i = 0; i < op->nparts; i++) {
            /* Each part ends with "END\r\n" (checked by the forwarder). */
            if (op->parts[i].len > 5) {
                bc__proto_reply_bytes(pc, op->parts[i].reply, op->parts[i].len - 5);
            }
        }
        if (!bc_outq_move(&pc->out, &op->local, pc->env->cache)) pc->oom = true;
        REPLY(pc, "END\r\n");
    }
    bc__proto_fwd_op_free(pc, op);
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
void
bc__proto_fwd_simple(bc_proto_conn_t *pc, const char *line, size_t len, const bc_mc_request_t *req,
                     uint32_t gid, const char *refusal)
{
    size_t n;
    pc->fop = fwd_op_new(1, refusal);
    char *buf = pc->fop != NULL ? fwd_line(line, len, req->noreply, 0, &n) : NULL;
    if (buf == NULL) {
        bc__proto_fwd_op_free(pc, pc->fop);
        pc->fop = NULL;
        pc->oom = true;
        return;
    }
    pc->fop->noreply = req->noreply;
    fwd_send_part(pc, 0, gid, buf, n);
    fwd_sent(pc);
}

/*
 * A multi-get with keys of other owners (dest[i] = the owner group of key
 * i, 0 = served here): one request per owner, in the order owners first
 * appear, and the local keys' VALUE blocks served now into the command's
 * own queue (merged at the end, see fwd_finish).
 */
void
bc__proto_fwd_retrieve(bc_proto_conn_t *pc, const bc_mc_request_t *req, const uint32_t *dest,
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
        bc__proto_retrieve_values(pc, req, dest, hashes);
        pc->fop->local = pc->out;
        pc->out = saved;
        if (pc->oom) {
            bc__proto_fwd_op_free(pc, pc->fop);
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

/*
 * A storage command for another owner: its line and data block are
 * collected into one request (state FWD_DATA), sent once complete.
 */
void
bc__proto_fwd_store_begin(bc_proto_conn_t *pc, const char *line, size_t len,
                          const bc_mc_request_t *req, uint32_t gid, const char *refusal)
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
        bc__proto_fwd_op_free(pc, pc->fop);
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
void
bc__proto_fwd_store_finish(bc_proto_conn_t *pc)
{
    bc_proto_fwd_op_t *op = pc->fop;
    const char *end = op->buf + op->len;

    pc->state = BC_PROTO_LINE;
    if (end[-2] != '\r' || end[-1] != '\n') {
        bc_stats_incr(pc->stats, protocol_errors);
        if (!op->noreply) REPLY(pc, "CLIENT_ERROR bad data chunk\r\n");
        bc__proto_fwd_op_free(pc, op);
        pc->fop = NULL;
        return;
    }
    char *buf = op->buf;
    op->buf = NULL;
    fwd_send_part(pc, 0, op->gid, buf, op->len);
    fwd_sent(pc);
}
