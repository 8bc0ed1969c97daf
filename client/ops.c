/*
 * ops.c -- single-key operations: route the key, send the request to the
 * bucket's primary, read the reply, and retry while the answer is "not
 * mine" or the connection failed, until the call's deadline.
 *
 * HOW A CALL RUNS
 *   1. Hash the key, acquire the routing snapshot, read the bucket's owner,
 *      read-only flag and primary node, take a reference on the node,
 *      release the snapshot (a few atomics, no lock).
 *   2. Owner 0: BC_CLIENT_ENOOWNER at once (the group is down; waiting
 *      would not help within a deadline).  Primary unknown, or a write to a
 *      bucket being migrated: back off and look again.
 *   3. Take a pooled connection, send, read the reply.  A refusal (MOVED,
 *      NO_OWNER, READONLY, NOT_PRIMARY) asks the agent for a fresh table
 *      and retries; so does a failed connect or a send that did not go out.
 *      NOT_ENOUGH_IN_SYNC (the right primary, too few backups in sync to
 *      take a write) is retried without a refresh; at the deadline the call
 *      answers BC_CLIENT_ENOTINSYNC rather than a plain timeout.
 *      A connection lost after the request went out is retried only for
 *      idempotent commands (get, set, replace, delete, touch); add and
 *      incr/decr answer BC_CLIENT_EINDOUBT instead of risking a double
 *      application.
 *   4. Backoff: jittered exponential from retry_base_ms to retry_max_ms,
 *      skipped when a newer table arrived meanwhile, never past the
 *      deadline.
 *
 *   A connection goes back to its pool only when its reply was read
 *   completely and as expected; anything else closes it, so a reply can
 *   never be matched with the wrong request.  A VALUE must carry the key
 *   asked for.
 */
#include "ops.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "bc_hash.h"
#include "bc_log.h"
#include "bc_time.h"
#include "bc_wire.h"
#include "client_int.h"
#include "near.h"
#include "proto.h"

typedef enum op_kind {
    OP_GET,
    OP_SET,
    OP_ADD,
    OP_REPLACE,
    OP_DELETE,
    OP_TOUCH,
    OP_INCR,
    OP_DECR,
    OP_GETS,
    OP_CAS,
    OP_APPEND,
    OP_PREPEND,
} op_kind_t;

typedef struct op {
    op_kind_t kind;
    const char *key;
    size_t klen;
    uint32_t hash;
    const void *value;
    size_t vlen;
    uint32_t flags;
    int64_t exptime;
    uint64_t delta;
    uint64_t cas;              /* OP_CAS: the expected CAS */
    bool in_doubt;             /* an earlier attempt may have been applied */
    bool not_in_sync;          /* the last attempt was refused NOT_ENOUGH_IN_SYNC */
    void *out_value;
    size_t out_vlen;
    uint32_t out_flags;
    uint64_t out_number;
    uint64_t out_cas;          /* OP_GETS */
} op_t;

typedef enum attempt_result {
    ATTEMPT_DONE,              /* *code is the answer */
    ATTEMPT_RETRY,             /* try again after a backoff */
} attempt_result_t;

static _Thread_local uint64_t ops_rng;

uint64_t
bc__ops_rand_next(uint64_t *state)
{
    uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

uint64_t
bc__ops_backoff_ns(unsigned attempt, uint64_t base_ns, uint64_t cap_ns, uint64_t *rng)
{
    if (attempt == 0) attempt = 1;
    uint64_t d = base_ns;
    for (unsigned i = 1; i < attempt && d < cap_ns; i++) d *= 2;
    if (d > cap_ns) d = cap_ns;
    if (d < 2) return d;
    uint64_t half = d / 2;
    return half + bc__ops_rand_next(rng) % (d - half + 1);
}

uint64_t
bc__ops_deadline(const bc_client_t *c, int timeout_ms)
{
    uint64_t t = timeout_ms > 0 ? (uint64_t)timeout_ms * 1000000ull : c->timeout_ns;
    return bc_time_mono_ns() + t;
}

bool
bc__ops_backoff_sleep(bc_client_t *c, unsigned attempt, uint64_t deadline_ns, uint64_t published)
{
    if (ops_rng == 0) ops_rng = bc_time_mono_ns() ^ (uint64_t)(uintptr_t)&ops_rng;
    uint64_t d = bc__ops_backoff_ns(attempt, c->retry_base_ns, c->retry_max_ns, &ops_rng);
    uint64_t now = bc_time_mono_ns();
    if (now >= deadline_ns) return false;
    if (d > deadline_ns - now) d = deadline_ns - now;
    (void)bc__route_wait(&c->router, published, now + d);
    return true;
}

static bool
op_is_write(op_kind_t k)
{
    return k != OP_GET && k != OP_GETS;
}

/* May the request be sent again after its connection dropped mid-way? */
static bool
op_idempotent(op_kind_t k)
{
    return k != OP_ADD && k != OP_INCR && k != OP_DECR && k != OP_CAS && k != OP_APPEND &&
           k != OP_PREPEND;
}

/* Does the request carry a data block? */
static bool
op_has_data(op_kind_t k)
{
    return k == OP_SET || k == OP_ADD || k == OP_REPLACE || k == OP_CAS || k == OP_APPEND ||
           k == OP_PREPEND;
}

static const char *
op_name(op_kind_t k)
{
    switch (k) {
    case OP_ADD: return "add";
    case OP_INCR: return "incr";
    case OP_DECR: return "decr";
    case OP_CAS: return "cas";
    case OP_APPEND: return "append";
    case OP_PREPEND: return "prepend";
    default: return "a command";
    }
}

static int
op_server_error(const bc_mc_reply_t *r)
{
    static const char too_large[] = "object too large";
    if (r->ntext >= sizeof(too_large) - 1 &&
        memcmp(r->text, too_large, sizeof(too_large) - 1) == 0) {
        return BC_CLIENT_ETOOLARGE;
    }
    return BC_CLIENT_ESERVER;
}

static bool
reply_text_has(const bc_mc_reply_t *r, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= r->ntext; i++) {
        if (memcmp(r->text + i, needle, n) == 0) return true;
    }
    return false;
}

/* Interprets the reply to op; *healthy tells whether conn stays in sync. */
static attempt_result_t
op_interpret(bc_client_t *c, bc__pool_conn_t *conn, op_t *op, const bc_mc_reply_t *r,
             uint64_t deadline_ns, int *code, bool *healthy)
{
    *healthy = true;
    switch (r->kind) {
    case BC_MC_REPLY_SERVER_ERROR: {
        bc_wire_refusal_t ref;
        bc_wire_refusal_kind_t kind = bc_wire_refusal_parse(r->text, r->ntext, &ref);
        op->not_in_sync = kind == BC_WIRE_REFUSAL_NOT_ENOUGH_IN_SYNC;
        if (kind != BC_WIRE_REFUSAL_NONE) {
            BC__COUNT(c, refusals, 1);
            log_debug("client: %s refused bucket %u (kind %d, its epoch %llu)", conn->node->addr,
                      ref.bucket, (int)ref.kind, (unsigned long long)ref.epoch);
            /* Not a routing matter: the table is right, the group is short
             * of backups in sync; back off and ask again. */
            if (!op->not_in_sync) bc__agent_request_refresh(c, ref.epoch);
            /* Nodes swallow a refused command's data block; a connection
             * that carried one is closed all the same, to be safe. */
            *healthy = !op_has_data(op->kind);
            return ATTEMPT_RETRY;
        }
        /*
         * BEHAVIOR: the node we reached forwarded the command to the
         * bucket's owner (our table was behind) and lost it.  Unsent, it
         * is a refusal like the others: ask for the new table and send it
         * again.  Sent, it is a lost connection one hop further: retried
         * only when idempotent, as in op_attempt.
         */
        bc__proto_fwd_failure_t fwd = bc__proto_fwd_failure_parse(r->text, r->ntext);
        if (fwd != BC__PROTO_FWD_NONE) {
            bc__agent_request_refresh(c, 0);
            if (fwd == BC__PROTO_FWD_UNSENT || op_idempotent(op->kind)) {
                op->in_doubt = op->in_doubt || fwd == BC__PROTO_FWD_IN_DOUBT;
                return ATTEMPT_RETRY;
            }
            log_warn("client: %s lost %s forwarding it to the owner; not retried",
                     conn->node->addr, op_name(op->kind));
            *code = BC_CLIENT_EINDOUBT;
            return ATTEMPT_DONE;
        }
        *healthy = false;
        *code = op_server_error(r);
        log_warn("client: %s: SERVER_ERROR %.*s", conn->node->addr, (int)r->ntext, r->text);
        return ATTEMPT_DONE;
    }
    case BC_MC_REPLY_CLIENT_ERROR:
        if ((op->kind == OP_INCR || op->kind == OP_DECR) && reply_text_has(r, "non-numeric")) {
            *code = BC_CLIENT_ENONNUMERIC;
            return ATTEMPT_DONE;
        }
        /* fall through */
    case BC_MC_REPLY_ERROR:
        *healthy = false;
        *code = BC_CLIENT_EPROTO;
        log_warn("client: %s rejected a request: %s %.*s", conn->node->addr,
                 r->kind == BC_MC_REPLY_ERROR ? "ERROR" : "CLIENT_ERROR", (int)r->ntext, r->text);
        return ATTEMPT_DONE;
    default:
        break;
    }

    *code = BC_CLIENT_EPROTO;
    switch (op->kind) {
    case OP_GET:
    case OP_GETS:
        if (r->kind == BC_MC_REPLY_END) {
            *code = BC_CLIENT_ENOTFOUND;
        } else if (r->kind == BC_MC_REPLY_VALUE && r->nkey == op->klen &&
                   memcmp(r->key, op->key, op->klen) == 0 &&
                   (op->kind == OP_GET || r->has_cas)) {
            op->out_cas = r->cas;
            char *v = malloc((size_t)r->vlen + 1);
            if (v == NULL) {
                *healthy = false;
                *code = BC_CLIENT_ENOMEM;
                return ATTEMPT_DONE;
            }
            memcpy(v, r->value, r->vlen);
            v[r->vlen] = '\0';
            uint32_t vlen = r->vlen, flags = r->flags;
            bc_mc_reply_t end;
            bc_status_t st = bc__pool_conn_read_reply(conn, deadline_ns, &end);
            if (st != BC_OK || end.kind != BC_MC_REPLY_END) {
                free(v);
                *healthy = false;
                if (st == BC_ETIMEOUT) *code = BC_CLIENT_ETIMEOUT;
                else if (st == BC_ECLOSED || st == BC_EIO) return ATTEMPT_RETRY;
                return ATTEMPT_DONE;
            }
            op->out_value = v;
            op->out_vlen = vlen;
            op->out_flags = flags;
            *code = BC_CLIENT_OK;
        }
        break;
    case OP_SET:
    case OP_ADD:
    case OP_REPLACE:
    case OP_APPEND:
    case OP_PREPEND:
        if (r->kind == BC_MC_REPLY_STORED) *code = BC_CLIENT_OK;
        else if (r->kind == BC_MC_REPLY_NOT_STORED) *code = BC_CLIENT_ENOTSTORED;
        break;
    case OP_CAS:
        if (r->kind == BC_MC_REPLY_STORED) *code = BC_CLIENT_OK;
        else if (r->kind == BC_MC_REPLY_EXISTS) *code = BC_CLIENT_EEXISTS;
        else if (r->kind == BC_MC_REPLY_NOT_FOUND) *code = BC_CLIENT_ENOTFOUND;
        break;
    case OP_DELETE:
        if (r->kind == BC_MC_REPLY_DELETED) *code = BC_CLIENT_OK;
        else if (r->kind == BC_MC_REPLY_NOT_FOUND) {
            *code = op->in_doubt ? BC_CLIENT_OK : BC_CLIENT_ENOTFOUND;
        }
        break;
    case OP_TOUCH:
        if (r->kind == BC_MC_REPLY_TOUCHED) *code = BC_CLIENT_OK;
        else if (r->kind == BC_MC_REPLY_NOT_FOUND) *code = BC_CLIENT_ENOTFOUND;
        break;
    case OP_INCR:
    case OP_DECR:
        if (r->kind == BC_MC_REPLY_NUMBER) {
            op->out_number = r->number;
            *code = BC_CLIENT_OK;
        } else if (r->kind == BC_MC_REPLY_NOT_FOUND) {
            *code = BC_CLIENT_ENOTFOUND;
        }
        break;
    }
    if (*code == BC_CLIENT_EPROTO) {
        *healthy = false;
        log_warn("client: %s sent an unexpected reply (kind %d)", conn->node->addr, (int)r->kind);
    }
    return ATTEMPT_DONE;
}

static attempt_result_t
op_attempt(bc_client_t *c, bc__pool_node_t *node, op_t *op, uint64_t deadline_ns, int *code)
{
    bc__pool_conn_t *conn;
    bool reused;
    op->not_in_sync = false;
    bc_status_t st = bc__pool_conn_get(node, deadline_ns, true, &conn, &reused);
    if (st != BC_OK) {
        if (st == BC_ENOMEM) {
            *code = BC_CLIENT_ENOMEM;
            return ATTEMPT_DONE;
        }
        if (st == BC_EIO) bc__agent_request_refresh(c, 0);  /* primary may have changed */
        return ATTEMPT_RETRY;
    }

    char line[BC__REQ_LINE_MAX];
    struct iovec iov[3];
    int iovcnt = 1;
    size_t len = 0;
    static const char *const storage_cmd[] = {[OP_SET] = "set", [OP_ADD] = "add",
                                               [OP_REPLACE] = "replace", [OP_APPEND] = "append",
                                               [OP_PREPEND] = "prepend"};
    switch (op->kind) {
    case OP_GET: len = bc__proto_fmt_key_cmd(line, "get", op->key, op->klen); break;
    case OP_GETS: len = bc__proto_fmt_key_cmd(line, "gets", op->key, op->klen); break;
    case OP_SET:
    case OP_ADD:
    case OP_REPLACE:
    case OP_APPEND:
    case OP_PREPEND:
        len = bc__proto_fmt_storage(line, storage_cmd[op->kind], op->key, op->klen, op->flags,
                                    op->exptime, op->vlen);
        break;
    case OP_CAS:
        len = bc__proto_fmt_cas(line, op->key, op->klen, op->flags, op->exptime, op->vlen, op->cas);
        break;
    case OP_DELETE: len = bc__proto_fmt_key_cmd(line, "delete", op->key, op->klen); break;
    case OP_TOUCH: len = bc__proto_fmt_touch(line, op->key, op->klen, op->exptime); break;
    case OP_INCR:
    case OP_DECR:
        len = bc__proto_fmt_arith(line, op->kind == OP_INCR, op->key, op->klen, op->delta);
        break;
    }
    iov[0] = (struct iovec){line, len};
    if (op_has_data(op->kind)) {
        iov[1] = (struct iovec){(void *)op->value, op->vlen};
        iov[2] = (struct iovec){(void *)"\r\n", 2};
        iovcnt = 3;
    }
    size_t sent = 0;
    st = bc__pool_conn_send(conn, iov, iovcnt, deadline_ns, &sent);
    if (st != BC_OK) {
        /* A request not sent completely is never executed by the node. */
        bc__pool_conn_put(conn, false);
        if (st == BC_ECLOSED || st == BC_EIO) bc__agent_request_refresh(c, 0);
        return ATTEMPT_RETRY;
    }

    bc_mc_reply_t reply;
    st = bc__pool_conn_read_reply(conn, deadline_ns, &reply);
    if (st != BC_OK) {
        bc__pool_conn_put(conn, false);
        switch (st) {
        case BC_ETIMEOUT: *code = BC_CLIENT_ETIMEOUT; return ATTEMPT_DONE;
        case BC_ENOMEM: *code = BC_CLIENT_ENOMEM; return ATTEMPT_DONE;
        case BC_ECLOSED:
        case BC_EIO:
            bc__agent_request_refresh(c, 0);
            if (op_idempotent(op->kind)) {
                op->in_doubt = true;
                return ATTEMPT_RETRY;
            }
            log_warn("client: connection to %s lost after sending %s; not retried", node->addr,
                     op_name(op->kind));
            *code = BC_CLIENT_EINDOUBT;
            return ATTEMPT_DONE;
        default:
            log_warn("client: malformed reply from %s: %s", node->addr, bc_status_str(st));
            *code = BC_CLIENT_EPROTO;
            return ATTEMPT_DONE;
        }
    }
    bool healthy;
    attempt_result_t res = op_interpret(c, conn, op, &reply, deadline_ns, code, &healthy);
    bc__pool_conn_put(conn, healthy);
    return res;
}

static int
op_run(bc_client_t *c, op_t *op, uint64_t deadline_ns)
{
    bool write = op_is_write(op->kind);
    for (unsigned attempt = 1;; attempt++) {
        uint64_t published = atomic_load_explicit(&c->router.published, memory_order_acquire);
        bc__route_snapshot_t *s = bc__route_acquire(&c->router);
        if (s == NULL) return BC_CLIENT_ETIMEOUT;
        uint32_t b = bc_hash_bucket(op->hash, s->nbuckets);
        uint32_t owner = s->owner[b];
        bool readonly = s->readonly[b] != 0;
        bc__pool_node_t *node = s->node[b];
        if (node != NULL) bc__pool_node_ref(node);
        bc__route_release(s);

        if (owner == 0) {
            if (node != NULL) bc__pool_node_unref(node);
            return BC_CLIENT_ENOOWNER;
        }
        int code = BC_CLIENT_ETIMEOUT;
        attempt_result_t res = ATTEMPT_RETRY;
        if (node == NULL) {
            bc__agent_request_refresh(c, 0);
        } else if (!(write && readonly)) {
            res = op_attempt(c, node, op, deadline_ns, &code);
        }
        if (node != NULL) bc__pool_node_unref(node);
        if (res == ATTEMPT_DONE) return code;

        /* A newer table arrived meanwhile: use it at once. */
        if (atomic_load_explicit(&c->router.published, memory_order_acquire) != published &&
            bc_time_mono_ns() < deadline_ns) {
            BC__COUNT(c, retries, 1);
            continue;
        }
        int expired = op->not_in_sync ? BC_CLIENT_ENOTINSYNC : BC_CLIENT_ETIMEOUT;
        if (!bc__ops_backoff_sleep(c, attempt, deadline_ns, published)) return expired;
        if (bc_time_mono_ns() >= deadline_ns) return expired;
        BC__COUNT(c, retries, 1);
    }
}

/* Counts a finished call's outcome. */
static int
op_account(bc_client_t *c, int code)
{
    /* A miss, "not stored" and a CAS mismatch are answers, not failures. */
    if (code != BC_CLIENT_OK && code != BC_CLIENT_ENOTFOUND && code != BC_CLIENT_ENOTSTORED &&
        code != BC_CLIENT_EEXISTS) {
        BC__COUNT(c, errors, 1);
        if (code == BC_CLIENT_ETIMEOUT) BC__COUNT(c, timeouts, 1);
    }
    return code;
}

/* A get (kind OP_GET) or gets (OP_GETS, *cas filled) at the key's owner;
 * the value is malloc'd on BC_CLIENT_OK. */
static int
get_remote(bc_client_t *c, op_kind_t kind, const void *key, size_t klen, uint32_t hash,
           uint64_t deadline_ns, void **value, size_t *vlen, uint32_t *flags, uint64_t *cas)
{
    op_t op = {.kind = kind, .key = key, .klen = klen, .hash = hash};
    int code = op_run(c, &op, deadline_ns);
    if (code == BC_CLIENT_ENOOWNER && c->opts.no_owner_is_miss) code = BC_CLIENT_ENOTFOUND;
    if (code == BC_CLIENT_OK) {
        *value = op.out_value;
        *vlen = op.out_vlen;
        if (flags != NULL) *flags = op.out_flags;
        if (cas != NULL) *cas = op.out_cas;
    }
    return code;
}

int
bc__ops_get_remote(bc_client_t *c, const void *key, size_t klen, uint32_t hash,
                   uint64_t deadline_ns, void **value, size_t *vlen, uint32_t *flags)
{
    return get_remote(c, OP_GET, key, klen, hash, deadline_ns, value, vlen, flags, NULL);
}

/* Counts a read's hit or miss, then its outcome. */
static int
get_account(bc_client_t *c, int code)
{
    if (code == BC_CLIENT_OK) BC__COUNT(c, hits, 1);
    else if (code == BC_CLIENT_ENOTFOUND) BC__COUNT(c, misses, 1);
    return op_account(c, code);
}

int
bc__ops_set_remote(bc_client_t *c, const void *key, size_t klen, uint32_t hash,
                   const void *value, size_t vlen, uint32_t flags, int64_t exptime,
                   uint64_t deadline_ns)
{
    op_t op = {.kind = OP_SET, .key = key, .klen = klen, .hash = hash, .value = value,
               .vlen = vlen, .flags = flags, .exptime = exptime};
    int code = op_run(c, &op, deadline_ns);
    bc__near_forget(c, hash, key, klen);
    return code;
}

int
bc_client_get(bc_client_t *c, const void *key, size_t klen, int timeout_ms, void **value,
              size_t *vlen, uint32_t *flags)
{
    if (value != NULL) *value = NULL;
    if (vlen != NULL) *vlen = 0;
    if (c == NULL || value == NULL || vlen == NULL || !bc__proto_key_valid(key, klen)) {
        return BC_CLIENT_EINVAL;
    }
    BC__COUNT(c, ops, 1);
    BC__COUNT(c, gets, 1);
    uint32_t hash = bc_hash_key(key, klen);
    if (c->near != NULL && bc__near_lookup(c, hash, key, klen, value, vlen, flags)) {
        BC__COUNT(c, hits, 1);
        return BC_CLIENT_OK;
    }
    int code = bc__ops_get_remote(c, key, klen, hash, bc__ops_deadline(c, timeout_ms), value, vlen,
                                  flags);
    if (code == BC_CLIENT_OK && c->near != NULL) {
        bc__near_offer(c, hash, key, klen, *value, *vlen, flags ? *flags : 0);
    }
    return get_account(c, code);
}

/* A storage command (set, add, replace, append, prepend; cas when cas != 0). */
static int
op_store(bc_client_t *c, op_kind_t kind, const void *key, size_t klen, const void *value,
         size_t vlen, uint32_t flags, int64_t exptime, uint64_t cas, int timeout_ms)
{
    if (c == NULL || !bc__proto_key_valid(key, klen) || (value == NULL && vlen > 0)) {
        return BC_CLIENT_EINVAL;
    }
    if (vlen > c->opts.max_value_bytes) return BC_CLIENT_ETOOLARGE;
    BC__COUNT(c, ops, 1);
    BC__COUNT(c, stores, 1);
    op_t op = {.kind = kind, .key = key, .klen = klen, .hash = bc_hash_key(key, klen),
               .value = value ? value : "", .vlen = vlen, .flags = flags, .exptime = exptime,
               .cas = cas};
    int code = op_run(c, &op, bc__ops_deadline(c, timeout_ms));
    bc__near_forget(c, op.hash, key, klen);
    return op_account(c, code);
}

int
bc_client_set(bc_client_t *c, const void *key, size_t klen, const void *value, size_t vlen,
              uint32_t flags, int64_t exptime, int timeout_ms)
{
    return op_store(c, OP_SET, key, klen, value, vlen, flags, exptime, 0, timeout_ms);
}

int
bc_client_add(bc_client_t *c, const void *key, size_t klen, const void *value, size_t vlen,
              uint32_t flags, int64_t exptime, int timeout_ms)
{
    return op_store(c, OP_ADD, key, klen, value, vlen, flags, exptime, 0, timeout_ms);
}

int
bc_client_replace(bc_client_t *c, const void *key, size_t klen, const void *value, size_t vlen,
                  uint32_t flags, int64_t exptime, int timeout_ms)
{
    return op_store(c, OP_REPLACE, key, klen, value, vlen, flags, exptime, 0, timeout_ms);
}

int
bc_client_delete(bc_client_t *c, const void *key, size_t klen, int timeout_ms)
{
    if (c == NULL || !bc__proto_key_valid(key, klen)) return BC_CLIENT_EINVAL;
    BC__COUNT(c, ops, 1);
    BC__COUNT(c, deletes, 1);
    op_t op = {.kind = OP_DELETE, .key = key, .klen = klen, .hash = bc_hash_key(key, klen)};
    int code = op_run(c, &op, bc__ops_deadline(c, timeout_ms));
    bc__near_forget(c, op.hash, key, klen);
    return op_account(c, code);
}

int
bc_client_touch(bc_client_t *c, const void *key, size_t klen, int64_t exptime, int timeout_ms)
{
    if (c == NULL || !bc__proto_key_valid(key, klen)) return BC_CLIENT_EINVAL;
    BC__COUNT(c, ops, 1);
    BC__COUNT(c, touches, 1);
    op_t op = {.kind = OP_TOUCH, .key = key, .klen = klen, .hash = bc_hash_key(key, klen),
               .exptime = exptime};
    int code = op_run(c, &op, bc__ops_deadline(c, timeout_ms));
    bc__near_forget(c, op.hash, key, klen);
    return op_account(c, code);
}

static int
op_arith(bc_client_t *c, op_kind_t kind, const void *key, size_t klen, uint64_t delta,
         uint64_t *result, int timeout_ms)
{
    if (c == NULL || !bc__proto_key_valid(key, klen)) return BC_CLIENT_EINVAL;
    BC__COUNT(c, ops, 1);
    BC__COUNT(c, ariths, 1);
    op_t op = {.kind = kind, .key = key, .klen = klen, .hash = bc_hash_key(key, klen),
               .delta = delta};
    int code = op_run(c, &op, bc__ops_deadline(c, timeout_ms));
    bc__near_forget(c, op.hash, key, klen);
    if (code == BC_CLIENT_OK && result != NULL) *result = op.out_number;
    return op_account(c, code);
}

int
bc_client_incr(bc_client_t *c, const void *key, size_t klen, uint64_t delta, uint64_t *result,
               int timeout_ms)
{
    return op_arith(c, OP_INCR, key, klen, delta, result, timeout_ms);
}

int
bc_client_decr(bc_client_t *c, const void *key, size_t klen, uint64_t delta, uint64_t *result,
               int timeout_ms)
{
    return op_arith(c, OP_DECR, key, klen, delta, result, timeout_ms);
}

int
bc_client_gets(bc_client_t *c, const void *key, size_t klen, int timeout_ms, void **value,
               size_t *vlen, uint32_t *flags, uint64_t *cas)
{
    if (value != NULL) *value = NULL;
    if (vlen != NULL) *vlen = 0;
    if (c == NULL || value == NULL || vlen == NULL || cas == NULL ||
        !bc__proto_key_valid(key, klen)) {
        return BC_CLIENT_EINVAL;
    }
    BC__COUNT(c, ops, 1);
    BC__COUNT(c, gets, 1);
    /* Never from the near cache: the CAS must be the node's current one. */
    return get_account(c, get_remote(c, OP_GETS, key, klen, bc_hash_key(key, klen),
                                     bc__ops_deadline(c, timeout_ms), value, vlen, flags, cas));
}

int
bc_client_cas(bc_client_t *c, const void *key, size_t klen, const void *value, size_t vlen,
              uint32_t flags, int64_t exptime, uint64_t cas, int timeout_ms)
{
    return op_store(c, OP_CAS, key, klen, value, vlen, flags, exptime, cas, timeout_ms);
}

int
bc_client_append(bc_client_t *c, const void *key, size_t klen, const void *value, size_t vlen,
                 int timeout_ms)
{
    return op_store(c, OP_APPEND, key, klen, value, vlen, 0, 0, 0, timeout_ms);
}

int
bc_client_prepend(bc_client_t *c, const void *key, size_t klen, const void *value, size_t vlen,
                  int timeout_ms)
{
    return op_store(c, OP_PREPEND, key, klen, value, vlen, 0, 0, 0, timeout_ms);
}
