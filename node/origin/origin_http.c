/*
 * origin_http.c -- the admin port's GETs waiting for fills; see
 * origin_http.h.
 */
#include "origin/origin_http.h"

#include <stdlib.h>
#include <string.h>

#include "bc_time.h"
#include "origin/origin_int.h"

/* How often a parked GET looks at its slot when no wake came. */
#define RECHECK_US 50000

typedef struct http_slot {
    uint64_t id;                   /* 0: free */
    bc_origin_wait_t *wait;        /* while the fill runs */
    bool done;
    bc_origin_result_t res;
    int64_t deadline_ms;           /* give up waiting (504) */
    int64_t done_ms;
} http_slot_t;

struct bc_origin_http {
    bc_origin_t *o;
    bc_origin_client_t *client;
    bc_httpd_t *httpd;
    uint32_t nslots;
    uint64_t next_gen;
    http_slot_t *slots;
};

static void
http_notify(void *arg)
{
    bc_httpd_wake(arg);
}

static void
http_done(void *arg, uint32_t tag, bc_origin_result_t *res)
{
    bc_origin_http_t *oh = arg;
    http_slot_t *s = &oh->slots[tag];
    s->wait = NULL;
    s->res = *res;
    s->done = true;
    s->done_ms = bc_time_mono_ms();
}

bc_status_t
bc_origin_http_create(bc_origin_t *o, bc_httpd_t *httpd, uint32_t nslots, bc_origin_http_t **out)
{
    bc_origin_http_t *oh = calloc(1, sizeof(*oh));
    *out = NULL;
    if (oh == NULL) return BC_ENOMEM;
    oh->o = o;
    oh->httpd = httpd;
    oh->nslots = nslots > 0 ? nslots : 1;
    oh->slots = calloc(oh->nslots, sizeof(*oh->slots));
    if (oh->slots == NULL || bc_origin_client_create(o, http_notify, httpd, &oh->client) != BC_OK) {
        free(oh->slots);
        free(oh);
        return BC_ENOMEM;
    }
    *out = oh;
    return BC_OK;
}

static void
slot_free(bc_origin_http_t *oh, http_slot_t *s, bc_cache_t *cache)
{
    if (s->wait != NULL) bc_origin_cancel(oh->client, s->wait);
    if (s->done) bc_item_release(cache, s->res.item);
    memset(s, 0, sizeof(*s));
}

void
bc_origin_http_destroy(bc_origin_http_t *oh)
{
    if (oh == NULL) return;
    bc_origin_client_deliver(oh->client);
    for (uint32_t i = 0; i < oh->nslots; i++) {
        if (oh->slots[i].id != 0) slot_free(oh, &oh->slots[i], oh->o->cache);
    }
    bc_origin_client_destroy(oh->client);
    free(oh->slots);
    free(oh);
}

static enum MHD_Result
origin_error(bc_http_req_t *req, unsigned status, const char *kind, uint16_t http_status,
             const char *msg)
{
    cJSON *doc = cJSON_CreateObject();
    if (doc == NULL) return MHD_NO;
    cJSON_AddStringToObject(doc, "error", msg);
    cJSON_AddStringToObject(doc, "origin", kind);
    if (http_status != 0) cJSON_AddNumberToObject(doc, "status", http_status);
    return bc_http_reply_json(req, status, doc);
}

/* The answer for a fill that gave no value. */
static enum MHD_Result
failed_reply(bc_http_req_t *req, const bc_origin_result_t *res)
{
    const char *kind = bc_origin_error_name(res->error);
    switch (res->st) {
    case BC_ENOTFOUND:
        return origin_error(req, MHD_HTTP_NOT_FOUND, "not_found", res->http_status,
                            "key not found (the origin has no such resource)");
    case BC_ETIMEOUT:
        return origin_error(req, MHD_HTTP_GATEWAY_TIMEOUT, kind, res->http_status,
                            "the origin did not answer in time");
    case BC_EBUSY:
    case BC_EAGAIN:
    case BC_ECLOSED:
        return origin_error(req, MHD_HTTP_SERVICE_UNAVAILABLE,
                            res->st == BC_ECLOSED ? "stopping" : kind, 0,
                            "the origin is not asked now (overloaded, failing, or the node "
                            "is stopping); retry later");
    default:
        return origin_error(req, MHD_HTTP_BAD_GATEWAY, kind, res->http_status,
                            "the origin's answer could not be used");
    }
}

static http_slot_t *
slot_of(bc_origin_http_t *oh, uint64_t id)
{
    if (id == 0) return NULL;
    http_slot_t *s = &oh->slots[(id - 1) % oh->nslots];
    return s->id == id ? s : NULL;
}

/* Frees slots whose request never came back. */
static void
gc(bc_origin_http_t *oh, int64_t now)
{
    for (uint32_t i = 0; i < oh->nslots; i++) {
        http_slot_t *s = &oh->slots[i];
        if (s->id != 0 && s->done && now - s->done_ms > BC_ORIGIN_HTTP_KEEP_MS) {
            slot_free(oh, s, oh->o->cache);
        }
    }
}

static bool
park(bc_http_req_t *req, enum MHD_Result *result)
{
    return bc_http_try_park(req, RECHECK_US, result);
}

bool
bc_origin_http_get(bc_origin_http_t *oh, bc_http_req_t *req, const char *key, size_t nkey,
                   uint32_t hash, bc_item_t **item, enum MHD_Result *result)
{
    bc_cache_t *cache = oh->o->cache;
    int64_t now = bc_time_mono_ms();
    uint64_t id = req->park_state[BC_ORIGIN_HTTP_PARK_SLOT];

    *item = NULL;
    bc_origin_client_deliver(oh->client);
    gc(oh, now);
    if (id != 0) {
        http_slot_t *s = slot_of(oh, id);
        if (s == NULL) {
            req->park_state[BC_ORIGIN_HTTP_PARK_SLOT] = 0;
            *result = origin_error(req, MHD_HTTP_GATEWAY_TIMEOUT, "timeout", 0,
                                   "the origin did not answer in time");
            return true;
        }
        if (!s->done) {
            if (now > s->deadline_ms || !park(req, result)) {
                slot_free(oh, s, cache);
                req->park_state[BC_ORIGIN_HTTP_PARK_SLOT] = 0;
                *result = origin_error(req, MHD_HTTP_GATEWAY_TIMEOUT, "timeout", 0,
                                       "the origin did not answer in time");
            }
            return true;
        }
        bc_origin_result_t res = s->res;
        memset(s, 0, sizeof(*s));       /* the item, if any, is ours now */
        req->park_state[BC_ORIGIN_HTTP_PARK_SLOT] = 0;
        if (res.st == BC_OK) {
            *item = res.item;
            return false;
        }
        *result = failed_reply(req, &res);
        return true;
    }

    *item = bc_cache_get(cache, key, nkey, hash);
    if (*item != NULL || !bc_origin_has(oh->o, key, nkey)) return false;

    http_slot_t *s = NULL;
    uint32_t idx = 0;
    for (idx = 0; idx < oh->nslots; idx++) {
        if (oh->slots[idx].id == 0) {
            s = &oh->slots[idx];
            break;
        }
    }
    if (s == NULL) {
        bc_origin_result_t busy = {.st = BC_EBUSY, .error = BC_ORIGIN_ERR_OVERLOADED};
        *result = failed_reply(req, &busy);
        return true;
    }
    bc_origin_wait_t *w = NULL;
    bc_status_t st = bc_origin_fetch(oh->client, key, nkey, hash, http_done, oh, idx, &w);
    if (st == BC_EEXISTS) *item = bc_cache_get(cache, key, nkey, hash);   /* filled since */
    if (st == BC_ENOTFOUND || st == BC_ENOTOWNER || st == BC_EEXISTS) return false;
    if (st != BC_OK) {
        bc_origin_result_t res = {
            .st = st == BC_ENOMEM ? BC_EIO : st,
            .error = st == BC_EAGAIN ? BC_ORIGIN_ERR_BREAKER_OPEN
                   : st == BC_EBUSY  ? BC_ORIGIN_ERR_OVERLOADED
                                     : BC_ORIGIN_ERR_OTHER,
        };
        *result = failed_reply(req, &res);
        return true;
    }
    oh->next_gen++;
    s->id = oh->next_gen * oh->nslots + idx + 1;
    s->wait = w;
    /* the queue wait and the request each take at most timeout_ms */
    s->deadline_ms = now + 2 * (int64_t)oh->o->cfg.timeout_ms + 1000;
    req->park_state[BC_ORIGIN_HTTP_PARK_SLOT] = s->id;
    if (!park(req, result)) {
        slot_free(oh, s, cache);
        req->park_state[BC_ORIGIN_HTTP_PARK_SLOT] = 0;
        bc_origin_result_t busy = {.st = BC_EBUSY, .error = BC_ORIGIN_ERR_OVERLOADED};
        *result = failed_reply(req, &busy);
    }
    return true;
}
