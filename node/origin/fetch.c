/*
 * fetch.c -- the origin thread: one libcurl multi handle runs every
 * request, reads each answer into a fill, turns it into an item and
 * stores it (origin.h has the flow, origin_int.h the locking rule).
 *
 * HOW
 *   The loop, until stopped:
 *
 *     lock: queued fills -> running, while fewer than max_inflight run
 *           (one that waited past timeout_ms, or whose breaker opened
 *           meanwhile, ends without a request)
 *     start each: URL from the template, an easy handle from the pool
 *     curl_multi_perform; finished transfers -> fill_end
 *     curl_multi_poll (woken by curl_multi_wakeup when a fill is queued)
 *
 *   libcurl keeps the connections (HTTP/1.1 keep-alive, at most
 *   max_inflight per host) in the multi handle's cache, so a connection
 *   outlives the easy handle of the request that opened it.
 *
 * READING AN ANSWER (everything from outside can be hostile)
 *   - header lines: a line that is not "name: value" (no colon, a name
 *     with spaces, a folded line) or a flags header that is not a 32-bit
 *     decimal aborts the transfer: BC_ORIGIN_ERR_PROTOCOL;
 *   - a 2xx body is buffered up to the cache's max item size: a
 *     Content-Length above it aborts before any byte, a chunked body
 *     growing past it aborts there: BC_ORIGIN_ERR_TOO_LARGE; any other
 *     status's body is skipped (its size bounded the same way);
 *   - a body cut short (Content-Length not reached, a reset): libcurl
 *     reports it and the fill fails -- a partial value is never stored
 *     or answered;
 *   - a slow drip ends at timeout_ms (the whole request, connect included).
 *
 * WHAT THE STATUS MEANS
 *   2xx (not 206)             the value
 *   negative_statuses         "not found": remembered negative_ttl seconds
 *   5xx, 429                  an error that counts against the breaker
 *   anything else (3xx, 4xx)  an error (redirects are not followed: a key
 *                             is one resource, not wherever it points today)
 */
#include "origin/origin_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bc_config.h"
#include "bc_hash.h"
#include "bc_log.h"
#include "bc_time.h"

#define START_BATCH 64

const double bc_origin_latency_le[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25,  0.5,    1,     2.5,  5,     10,   30};
const unsigned bc_origin_latency_nbuckets = sizeof(bc_origin_latency_le) /
                                            sizeof(bc_origin_latency_le[0]);
_Static_assert(sizeof(bc_origin_latency_le) / sizeof(bc_origin_latency_le[0]) == LATENCY_BUCKETS,
               "LATENCY_BUCKETS is the number of bounds");

void
bc__origin_observe_latency(bc_origin_t *o, int64_t us)
{
    unsigned i = 0;
    if (us < 0) us = 0;
    while (i < LATENCY_BUCKETS && (double)us > bc_origin_latency_le[i] * 1e6) i++;
    atomic_fetch_add_explicit(&o->st.latency[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&o->st.latency_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&o->st.latency_sum_us, (uint64_t)us, memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/* easy handles                                                             */
/* ------------------------------------------------------------------------ */

static CURL *
pool_get(bc_origin_t *o)
{
    if (o->npool > 0) {
        CURL *e = o->pool[--o->npool];
        curl_easy_reset(e);
        return e;
    }
    return curl_easy_init();
}

static void
pool_put(bc_origin_t *o, CURL *e)
{
    if (o->npool < o->cfg.max_inflight) {
        o->pool[o->npool++] = e;
    } else {
        curl_easy_cleanup(e);
    }
}

void
bc__origin_pool_free(bc_origin_t *o)
{
    while (o->npool > 0) curl_easy_cleanup(o->pool[--o->npool]);
}

/* ------------------------------------------------------------------------ */
/* reading the answer                                                       */
/* ------------------------------------------------------------------------ */

static long
response_status(fill_t *f)
{
    long status = 0;
    curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

static bool
status_is_value(long status)
{
    return status >= 200 && status <= 299 && status != 206;
}

static bool
header_name_char(unsigned char c)
{
    /* RFC 9110 token characters */
    return c > 0x20 && c < 0x7f && strchr("\"(),/:;<=>?@[\\]{}", c) == NULL;
}

/* A header line "Name: value\r\n"; the status line of each response
 * (a 1xx comes before the real one) starts over. */
static size_t
on_header(char *buf, size_t size, size_t nitems, void *arg)
{
    fill_t *f = arg;
    const bc_origin_config_t *cfg = &f->o->cfg;
    size_t len = size * nitems, n = len;

    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        bc_origin_fresh_init(&f->fresh);
        f->flags = 0;
        return len;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
    if (n == 0) return len;                          /* end of the headers */
    const char *colon = memchr(buf, ':', n);
    if (colon == NULL || colon == buf) goto bad;     /* also a folded line */
    for (const char *p = buf; p < colon; p++) {
        if (!header_name_char((unsigned char)*p)) goto bad;
    }
    for (const char *p = colon + 1; p < buf + n; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c < 0x20 && c != '\t') || c == 0x7f) goto bad;
    }
    bc_origin_fresh_header(&f->fresh, buf, n);

    size_t nn = (size_t)(colon - buf), vn = n - nn - 1;
    const char *v = colon + 1;
    while (vn > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vn--;
    }
    while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t')) vn--;
    if (cfg->flags_header[0] != '\0' && nn == strlen(cfg->flags_header) &&
        strncasecmp(buf, cfg->flags_header, nn) == 0) {
        uint64_t flags = 0;
        if (!bc_parse_u64n(v, vn, UINT32_MAX, &flags)) goto bad;
        f->flags = (uint32_t)flags;
    }
    return len;
bad:
    f->bad_header = true;
    return 0;                                        /* aborts the transfer */
}

/* Body bytes: a value's are kept (bounded), another status's skipped. */
static size_t
on_body(char *buf, size_t size, size_t nmemb, void *arg)
{
    fill_t *f = arg;
    size_t n = size * nmemb, max = f->o->max_body;

    if (!status_is_value(response_status(f))) {
        f->discarded += n;
        if (f->discarded > max) {
            f->too_large = true;
            return 0;
        }
        return n;
    }
    if (f->blen + n > max) {
        f->too_large = true;
        return 0;
    }
    if (f->blen + n > f->bcap) {
        curl_off_t cl = -1;
        size_t want = f->bcap ? f->bcap * 2 : 16384;
        curl_easy_getinfo(f->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        if (cl > 0 && (uint64_t)cl <= max && (size_t)cl > want) want = (size_t)cl;
        if (want < f->blen + n) want = f->blen + n;
        if (want > max) want = max;
        char *nb = realloc(f->body, want);
        if (nb == NULL) return 0;
        f->body = nb;
        f->bcap = want;
    }
    memcpy(f->body + f->blen, buf, n);
    f->blen += n;
    return n;
}

/* ------------------------------------------------------------------------ */
/* starting and ending a request                                            */
/* ------------------------------------------------------------------------ */

static void
running_add(bc_origin_t *o, fill_t *f)
{
    f->rprev = NULL;
    f->rnext = o->running;
    if (o->running != NULL) o->running->rprev = f;
    o->running = f;
}

static void
running_remove(bc_origin_t *o, fill_t *f)
{
    if (f->rprev != NULL) f->rprev->rnext = f->rnext;
    else o->running = f->rnext;
    if (f->rnext != NULL) f->rnext->rprev = f->rprev;
}

/* Ends f without a (complete) request. */
static void
fill_fail(bc_origin_t *o, fill_t *f, bc_status_t st, bc_origin_error_t error)
{
    bc_origin_result_t res = {.st = st, .error = error};
    if (error != BC_ORIGIN_OK) {
        ORIGIN_COUNT(o, errors[error]);
        ORIGIN_BUCKET_COUNT(o, f->hash, errors);
    }
    bc__origin_fill_finish(o, f, &res, false);
    bc__origin_fill_free(f);
}

static bool
fill_begin(bc_origin_t *o, fill_t *f)
{
    const bc_origin_config_t *cfg = &o->cfg;
    if (bc_origin_url_build(f->entry->url, f->key, f->nkey, f->url, sizeof(f->url)) == 0) {
        return false;
    }
    CURL *e = pool_get(o);
    if (e == NULL) return false;
    f->easy = e;
    bc_origin_fresh_init(&f->fresh);
    curl_easy_setopt(e, CURLOPT_URL, f->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, f);
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)cfg->timeout_ms);
    /* The key's bytes are the resource: "a/../b" stays as sent (url.h). */
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_body);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "bucketcache-node/" BC_VERSION);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->errbuf);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
    if (cfg->ca_file[0] != '\0') curl_easy_setopt(e, CURLOPT_CAINFO, cfg->ca_file);
    f->errbuf[0] = '\0';
    if (curl_multi_add_handle(o->multi, e) != CURLM_OK) {
        pool_put(o, e);
        f->easy = NULL;
        return false;
    }
    running_add(o, f);
    f->started_us = bc_time_mono_us();
    ORIGIN_COUNT(o, requests);
    ORIGIN_BUCKET_COUNT(o, f->hash, requests);
    return true;
}

/* What a transfer error means; *failure: it counts against the breaker. */
static bc_origin_error_t
classify_curl(CURLcode rc, bool *failure)
{
    *failure = true;
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return BC_ORIGIN_ERR_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return BC_ORIGIN_ERR_CONNECT;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:       /* HTTP/0.9: no status line */
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP2:
    case CURLE_RANGE_ERROR:
        return BC_ORIGIN_ERR_PROTOCOL;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return BC_ORIGIN_ERR_RESET;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        return BC_ORIGIN_ERR_TLS;
    case CURLE_FILESIZE_EXCEEDED:
        *failure = false;
        return BC_ORIGIN_ERR_TOO_LARGE;
    case CURLE_OUT_OF_MEMORY:
        *failure = false;
        return BC_ORIGIN_ERR_NO_MEMORY;
    default:
        return BC_ORIGIN_ERR_OTHER;
    }
}

static bool
status_is_negative(const bc_origin_config_t *cfg, long status)
{
    for (uint32_t i = 0; i < cfg->nnegative; i++) {
        if (cfg->negative_statuses[i] == status) return true;
    }
    return false;
}

/* May this node write key's bucket (it is the primary, not migrating)? */
static bc_route_t
fill_route(bc_origin_t *o, const fill_t *f)
{
    uint32_t owner = 0;
    uint64_t epoch = 0;
    if (o->cluster == NULL) return BC_ROUTE_SERVE;
    return bc_node_cluster_route(o->cluster, bc_hash_bucket(f->hash, bc_cache_nbuckets(o->cache)),
                                 true, &owner, &epoch);
}

/*
 * A 2xx body becomes an item: stored (ADD) when the headers allow it and
 * the bucket is still ours, answered either way.  Returns the item (our
 * reference) or NULL with *error set.
 */
static bc_item_t *
fill_value(bc_origin_t *o, fill_t *f, bc_origin_error_t *error)
{
    bc_cache_t *cache = o->cache;
    uint32_t ttl = 0, exptime = 0;
    int64_t now = bc_cache_now(cache);
    bool store = bc_origin_fresh_ttl(&f->fresh, now, o->cfg.default_ttl, o->cfg.max_ttl, &ttl);
    bc_status_t st;

    if (store && ttl > 0) {
        uint64_t abs_time = (uint64_t)now + ttl;
        exptime = abs_time > UINT32_MAX ? UINT32_MAX : (uint32_t)abs_time;
    }
    if (f->blen + 2 > UINT32_MAX) {
        *error = BC_ORIGIN_ERR_TOO_LARGE;
        return NULL;
    }
    bc_item_t *it = bc_item_alloc(cache, f->key, f->nkey, f->hash, f->flags, exptime,
                                  (uint32_t)f->blen + 2, &st);
    if (it == NULL) {
        *error = st == BC_ETOOLARGE ? BC_ORIGIN_ERR_TOO_LARGE : BC_ORIGIN_ERR_NO_MEMORY;
        return NULL;
    }
    if (f->blen > 0) memcpy(bc_item_value(it), f->body, f->blen);
    memcpy(bc_item_value(it) + f->blen, "\r\n", 2);
    if (!store || fill_route(o, f) != BC_ROUTE_SERVE) {
        ORIGIN_COUNT(o, fills_not_stored);
        return it;                 /* answered, never linked */
    }
    bc_item_retain(it);            /* the store takes one reference */
    st = bc_cache_store(cache, it, BC_STORE_ADD, 0, NULL);
    if (st == BC_OK) {
        ORIGIN_COUNT(o, fills);
        ORIGIN_BUCKET_COUNT(o, f->hash, fills);
        /* BEHAVIOR: the bucket left the group between the check and the
         * store: a non-owner must not keep the copy (origin.h).  Anything
         * else keeps it: read-only (being exported) is still ours until
         * the flip, and NOT_PRIMARY -- this node's write lease lapsed for
         * a moment, or it was just made a backup -- leaves it in the
         * owning group, where it is the origin's value all the same. */
        bc_route_t r = fill_route(o, f);
        if (r == BC_ROUTE_MOVED || r == BC_ROUTE_NO_OWNER) {
            (void)bc_cache_delete(cache, f->key, f->nkey, f->hash);
        }
        return it;
    }
    ORIGIN_COUNT(o, fills_not_stored);
    if (st == BC_ENOTSTORED) {
        /* A client stored the key meanwhile: that value is the answer. */
        bc_item_t *cur = bc_cache_get(cache, f->key, f->nkey, f->hash);
        if (cur != NULL) {
            bc_item_release(cache, it);
            return cur;
        }
    }
    return it;
}

static void
fill_end(bc_origin_t *o, fill_t *f, CURLcode rc)
{
    bc_origin_result_t res = {.st = BC_OK, .error = BC_ORIGIN_OK};
    long status = response_status(f);
    bool failure = false;

    bc__origin_observe_latency(o, bc_time_mono_us() - f->started_us);
    curl_multi_remove_handle(o->multi, f->easy);
    running_remove(o, f);
    res.http_status = status > 0 && status < 1000 ? (uint16_t)status : 0;

    /* A body cut for its size: too large if it was to be the value; for
     * any other status the status says what happened. */
    bool body_cut = f->too_large || rc == CURLE_FILESIZE_EXCEEDED;
    if (f->bad_header) {
        res.error = BC_ORIGIN_ERR_PROTOCOL;
        failure = true;
    } else if (body_cut && (status <= 0 || status_is_value(status))) {
        res.error = BC_ORIGIN_ERR_TOO_LARGE;
    } else if (rc != CURLE_OK && !body_cut) {
        res.error = classify_curl(rc, &failure);
    } else if (status_is_value(status)) {
        res.item = fill_value(o, f, &res.error);
    } else if (status_is_negative(&o->cfg, status)) {
        res.st = BC_ENOTFOUND;
        ORIGIN_COUNT(o, not_found);
        ORIGIN_BUCKET_COUNT(o, f->hash, not_found);
    } else if (status >= 500 && status <= 599) {
        res.error = BC_ORIGIN_ERR_HTTP_5XX;
        failure = true;
    } else {
        res.error = BC_ORIGIN_ERR_HTTP_STATUS;
        failure = status == 429;
    }
    if (res.error != BC_ORIGIN_OK) {
        res.st = res.error == BC_ORIGIN_ERR_TIMEOUT ? BC_ETIMEOUT
               : res.error == BC_ORIGIN_ERR_TOO_LARGE ? BC_ETOOLARGE
               : res.error == BC_ORIGIN_ERR_NO_MEMORY ? BC_ENOMEM
               : BC_EIO;
        ORIGIN_COUNT(o, errors[res.error]);
        ORIGIN_BUCKET_COUNT(o, f->hash, errors);
        log_debug("origin: %s: %s (status %ld, curl %d%s%s)", f->url,
                  bc_origin_error_name(res.error), status, (int)rc, f->errbuf[0] ? ": " : "",
                  f->errbuf);
    }
    pool_put(o, f->easy);
    f->easy = NULL;
    free(f->body);
    f->body = NULL;
    f->blen = f->bcap = 0;
    bc__origin_fill_finish(o, f, &res, failure);
    bc_item_release(o->cache, res.item);
    bc__origin_fill_free(f);
}

/* ------------------------------------------------------------------------ */
/* the thread                                                               */
/* ------------------------------------------------------------------------ */

/* Under the lock: takes the fills that may start now into start[], and
 * those that waited too long or whose breaker opened into fail[]. */
static void
do_take_ready(bc_origin_t *o, int64_t now, fill_t **start, uint32_t *nstart, fill_t **fail,
              uint32_t *nfail)
{
    *nstart = *nfail = 0;
    while (o->q_head != NULL && *nstart < START_BATCH && *nfail < START_BATCH) {
        fill_t *f = o->q_head;
        bool expired = now - f->queued_ms > (int64_t)o->cfg.timeout_ms;
        bool blocked = !f->probe && f->entry->bstate == BREAKER_OPEN &&
                       now < f->entry->open_until_ms;
        if (!expired && !blocked && o->nrunning >= o->cfg.max_inflight) break;
        o->q_head = f->qnext;
        if (o->q_head == NULL) o->q_tail = NULL;
        f->qnext = NULL;
        if (expired || blocked) {
            f->refused_breaker = blocked;
            fail[(*nfail)++] = f;
            continue;
        }
        o->nqueued--;
        o->nrunning++;
        f->state = FILL_RUNNING;
        start[(*nstart)++] = f;
    }
}

static void *
origin_main(void *arg)
{
    bc_origin_t *o = arg;
    fill_t *start[START_BATCH], *fail[START_BATCH];
    uint32_t nstart, nfail;

    for (;;) {
        int64_t now = bc_time_mono_ms();
        pthread_mutex_lock(&o->lock);
        bool stopping = o->stopping;
        if (!stopping) do_take_ready(o, now, start, &nstart, fail, &nfail);
        bool more = o->q_head != NULL;
        pthread_mutex_unlock(&o->lock);
        if (stopping) break;

        for (uint32_t i = 0; i < nfail; i++) {
            bool blocked = fail[i]->refused_breaker;
            fill_fail(o, fail[i], blocked ? BC_EAGAIN : BC_EBUSY,
                      blocked ? BC_ORIGIN_ERR_BREAKER_OPEN : BC_ORIGIN_ERR_OVERLOADED);
        }
        for (uint32_t i = 0; i < nstart; i++) {
            if (!fill_begin(o, start[i])) fill_fail(o, start[i], BC_ENOMEM, BC_ORIGIN_ERR_OTHER);
        }

        int running = 0;
        curl_multi_perform(o->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(o->multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE) continue;
            fill_t *f = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&f);
            CURLcode rc = msg->data.result;
            if (f != NULL) fill_end(o, f, rc);
        }
        /* A queue that cannot start (every slot busy) is looked at again
         * soon for its expired entries; libcurl shortens the wait to its
         * own next timeout. */
        curl_multi_poll(o->multi, NULL, 0, more ? 50 : 1000, NULL);
    }

    /* Stopping: every fill in flight or queued ends, its waiters told. */
    while (o->running != NULL) {
        fill_t *f = o->running;
        curl_multi_remove_handle(o->multi, f->easy);
        running_remove(o, f);
        pool_put(o, f->easy);
        f->easy = NULL;
        fill_fail(o, f, BC_ECLOSED, BC_ORIGIN_OK);
    }
    for (;;) {
        pthread_mutex_lock(&o->lock);
        fill_t *f = o->q_head;
        if (f != NULL) {
            o->q_head = f->qnext;
            if (o->q_head == NULL) o->q_tail = NULL;
        }
        pthread_mutex_unlock(&o->lock);
        if (f == NULL) break;
        fill_fail(o, f, BC_ECLOSED, BC_ORIGIN_OK);
    }
    return NULL;
}

bc_status_t
bc__origin_thread_start(bc_origin_t *o)
{
    int rc = pthread_create(&o->thread, NULL, origin_main, o);
    if (rc != 0) {
        log_error("origin: cannot start its thread: %s", strerror(rc));
        return BC_ENOMEM;
    }
    return BC_OK;
}

void
bc__origin_thread_join(bc_origin_t *o)
{
    pthread_join(o->thread, NULL);
}
