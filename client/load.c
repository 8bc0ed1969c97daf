/*
 * load.c -- read-through loading (bc_client_get_or_load), built on the
 * operations (ops.h) and the near cache (near.h), which know nothing of it.
 *
 * READ-THROUGH
 *   bc_client_get_or_load runs the whole "look up, and on a miss load and
 *   store" sequence under single-flight (flight.c), so concurrent callers
 *   of one key in this process cause one cluster lookup and at most one
 *   loader call.  A key the loader did not find is remembered in the
 *   negative cache (a value-less bounded LRU, lru.c) for negative_ttl_ms:
 *   the cluster is still asked first (another process may have stored the
 *   key since), but the loader -- the origin being protected -- is not.
 */
#include <stdlib.h>
#include <string.h>

#include "bc_hash.h"
#include "bc_log.h"
#include "bc_time.h"
#include "client_int.h"
#include "near.h"
#include "ops.h"
#include "proto.h"

typedef struct load_arg {
    bc_client_t *c;
    const void *key;
    size_t klen;
    uint32_t hash;
    bc_client_loader_fn loader;
    void *ctx;
    uint64_t deadline_ns;
} load_arg_t;

/* The leader's work: remote get, else (negative cache permitting) load
 * and store. */
static void
load_run(void *argp, bc__flight_result_t *res)
{
    load_arg_t *a = argp;
    bc_client_t *c = a->c;
    void *v = NULL;
    size_t vl = 0;
    uint32_t fl = 0;
    int code = bc__ops_get_remote(c, a->key, a->klen, a->hash, a->deadline_ns, &v, &vl, &fl);
    if (code == BC_CLIENT_OK) {
        BC__COUNT(c, hits, 1);
        bc__near_offer(c, a->hash, a->key, a->klen, v, vl, fl);
        *res = (bc__flight_result_t){BC_CLIENT_OK, v, vl, fl};
        return;
    }
    if (code != BC_CLIENT_ENOTFOUND && code != BC_CLIENT_ENOOWNER) {
        res->status = code;
        return;
    }
    bool can_store = code == BC_CLIENT_ENOTFOUND;
    BC__COUNT(c, misses, 1);
    if (c->negative != NULL && bc__lru_get(c->negative, a->hash, a->key, a->klen, bc_time_mono_ns(),
                                           NULL, NULL, NULL) == BC_OK) {
        BC__COUNT(c, negative_hits, 1);
        res->status = BC_CLIENT_ENOTFOUND;
        return;
    }

    bc_client_loaded_t out;
    memset(&out, 0, sizeof(out));
    BC__COUNT(c, loads, 1);
    int lc = a->loader(a->ctx, a->key, a->klen, &out);
    if (lc == BC_CLIENT_OK && out.value == NULL && out.vlen > 0) {
        log_warn("client: loader returned %zu bytes without a buffer", out.vlen);
        lc = BC_CLIENT_ELOADER;
    }
    if (lc == BC_CLIENT_ENOTFOUND) {
        free(out.value);
        if (c->negative != NULL) {
            bc__lru_put(c->negative, a->hash, a->key, a->klen, NULL, 0, 0,
                        bc_time_mono_ns() + c->negative_ttl_ns);
        }
        res->status = BC_CLIENT_ENOTFOUND;
        return;
    }
    if (lc != BC_CLIENT_OK) {
        free(out.value);
        BC__COUNT(c, load_errors, 1);
        log_info("client: loader failed for a key (code %d)", lc);
        res->status = BC_CLIENT_ELOADER;
        return;
    }
    /* Our values always end in a NUL byte that vlen does not count. */
    char *value = realloc(out.value, out.vlen + 1);
    if (value == NULL) {
        free(out.value);
        res->status = BC_CLIENT_ENOMEM;
        return;
    }
    value[out.vlen] = '\0';
    if (c->negative != NULL) bc__lru_del(c->negative, a->hash, a->key, a->klen);
    if (can_store) {
        if (out.vlen > c->opts.max_value_bytes) {
            log_info("client: loaded value of %zu bytes is over max_value_bytes; not stored",
                     out.vlen);
        } else {
            int sc = bc__ops_set_remote(c, a->key, a->klen, a->hash, value, out.vlen, out.flags,
                                        out.exptime, a->deadline_ns);
            if (sc != BC_CLIENT_OK) {
                BC__COUNT(c, errors, 1);
                log_info("client: storing a loaded value failed: %s", bc_strerror(sc));
            }
        }
    }
    *res = (bc__flight_result_t){BC_CLIENT_OK, value, out.vlen, out.flags};
}

int
bc_client_get_or_load(bc_client_t *c, const void *key, size_t klen, bc_client_loader_fn loader,
                      void *ctx, int timeout_ms, void **value, size_t *vlen, uint32_t *flags)
{
    if (value != NULL) *value = NULL;
    if (vlen != NULL) *vlen = 0;
    if (c == NULL || loader == NULL || value == NULL || vlen == NULL ||
        !bc__proto_key_valid(key, klen)) {
        return BC_CLIENT_EINVAL;
    }
    BC__COUNT(c, ops, 1);
    BC__COUNT(c, gets, 1);
    uint32_t hash = bc_hash_key(key, klen);
    if (bc__near_lookup(c, hash, key, klen, value, vlen, flags)) {
        BC__COUNT(c, hits, 1);
        return BC_CLIENT_OK;
    }
    load_arg_t arg = {c, key, klen, hash, loader, ctx, bc__ops_deadline(c, timeout_ms)};
    bc__flight_result_t res;
    bool shared = false;
    bc__flight_do(c->flight, hash, key, klen, arg.deadline_ns, load_run, &arg, BC_CLIENT_ETIMEOUT,
                  BC_CLIENT_ENOMEM, &res, &shared);
    if (shared) {
        BC__COUNT(c, load_shared, 1);
        if (res.status == BC_CLIENT_OK) BC__COUNT(c, hits, 1);
        else if (res.status == BC_CLIENT_ENOTFOUND) BC__COUNT(c, misses, 1);
    }
    if (res.status == BC_CLIENT_OK) {
        *value = res.value;
        *vlen = res.vlen;
        if (flags != NULL) *flags = res.flags;
    } else {
        free(res.value);
        if (res.status != BC_CLIENT_ENOTFOUND) {
            BC__COUNT(c, errors, 1);
            if (res.status == BC_CLIENT_ETIMEOUT) BC__COUNT(c, timeouts, 1);
        }
    }
    return res.status;
}
