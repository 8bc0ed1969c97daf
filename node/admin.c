/*
 * admin.c -- the node's HTTP admin port (see admin.h for the endpoints).
 *
 * HOW
 *   libmicrohttpd runs one internal polling thread; every handler below runs
 *   on it, one request at a time, so handlers need no locking of their own.
 *   They only call thread-safe functions of the cache and the server.
 *
 *   A request goes through three callbacks:
 *
 *     uri_log      MHD has read the request line: keep a copy of the RAW
 *                  URI (before MHD's own unescaping) in a per-request
 *                  admin_request_t.  We decode it ourselves, strictly: MHD
 *                  would turn "%00" into a NUL that silently cuts the key,
 *                  and would let invalid escapes through unchanged.
 *     handle       called once when the headers are in, then once per body
 *                  chunk, then once more at the end.  The first call routes
 *                  and rejects early (404/405/400/413) without reading the
 *                  body; body chunks are appended to a buffer bounded by the
 *                  cache's max item size; the last call does the work.
 *     completed    frees the admin_request_t (always called, even when the
 *                  client disconnects mid-request).
 *
 *   GET /v1/keys/{key} sends the value straight from the item's memory: the
 *   response holds a reference on the item (bc_cache_get) which the free
 *   callback drops when MHD is done with the response, so a 1 MiB value is
 *   never copied and a concurrent delete cannot free it under us.
 *
 * BOUNDS (a hostile client cannot grow memory)
 *   - MHD_OPTION_CONNECTION_LIMIT: at most max_conns connections;
 *   - MHD_OPTION_CONNECTION_MEMORY_LIMIT: request line + headers per
 *     connection (MHD answers 414/431 above it);
 *   - MHD_OPTION_CONNECTION_TIMEOUT: idle connections are closed;
 *   - request bodies: PUT at most the cache's max item size (413 past
 *     it, decided from Content-Length before reading when it is given);
 *     bodies of other methods are discarded as they arrive.
 *   So the worst case is about max_conns * (max item size + 64 KiB).
 */
#include "admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "bc_hash.h"
#include "bc_log.h"

#define ADMIN_DEFAULT_MAX_CONNS     64u
#define ADMIN_DEFAULT_TIMEOUT_S     10u
#define ADMIN_CONN_MEMORY_LIMIT     (64u * 1024u)
#define ADMIN_LISTEN_BACKLOG        64
#define KEYS_PREFIX                 "/v1/keys/"
#define MAX_QUERY_PARAMS            8

struct bc_admin {
    bc_cache_t *cache;          /* borrowed */
    bc_server_t *server;        /* borrowed, may be NULL */
    struct MHD_Daemon *daemon;  /* NULL until started / after stop */
    int listen_fd;              /* ours until MHD takes it in start */
    uint16_t port;
    uint32_t max_conns;
    uint32_t conn_timeout_s;
    size_t max_body;            /* PUT bodies: the cache's max item size */
    time_t started;
    bc_node_cluster_t *cluster; /* borrowed; NULL = standalone */
};

/* Per-request state, owned by MHD's con_cls slot; see completed(). */
typedef struct admin_request {
    char *uri;                  /* raw request target: path[?query] */
    bool headers_done;          /* first handler call happened */
    bool body_too_large;        /* PUT body passed max_body: answer 413 */
    char *body;                 /* PUT body so far */
    size_t body_len;
    size_t body_cap;
} admin_request_t;

/* A decoded query parameter (pointers into the request's scratch copy). */
typedef struct query_param {
    char *name;
    char *value;
    size_t value_len;
} query_param_t;

/* ---- responses ---- */

static enum MHD_Result
queue_and_release(struct MHD_Connection *conn, unsigned int status, struct MHD_Response *resp)
{
    enum MHD_Result r;
    if (resp == NULL) return MHD_NO;   /* out of memory: MHD closes the connection */
    r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

/* Sends a cJSON document (consumed). */
static enum MHD_Result
reply_json(struct MHD_Connection *conn, unsigned int status, cJSON *doc)
{
    struct MHD_Response *resp;
    char *text = doc != NULL ? cJSON_PrintUnformatted(doc) : NULL;

    cJSON_Delete(doc);
    if (text == NULL) return MHD_NO;
    /* cJSON allocates with malloc (default hooks), so MHD may free() it. */
    resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return queue_and_release(conn, status, resp);
}

static enum MHD_Result reply_error(struct MHD_Connection *conn, unsigned int status,
                                   const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* {"error": "..."} with the given status. */
static enum MHD_Result
reply_error(struct MHD_Connection *conn, unsigned int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    cJSON *doc = cJSON_CreateObject();

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (doc == NULL || cJSON_AddStringToObject(doc, "error", msg) == NULL) {
        cJSON_Delete(doc);
        return MHD_NO;
    }
    return reply_json(conn, status, doc);
}

static enum MHD_Result
reply_method_not_allowed(struct MHD_Connection *conn, const char *method, const char *allow)
{
    char msg[160];
    cJSON *doc = cJSON_CreateObject();
    struct MHD_Response *resp;
    char *text;

    snprintf(msg, sizeof(msg), "method %.20s not allowed here (allowed: %s)", method, allow);
    if (doc == NULL || cJSON_AddStringToObject(doc, "error", msg) == NULL) {
        cJSON_Delete(doc);
        return MHD_NO;
    }
    text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (text == NULL) return MHD_NO;
    resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    return queue_and_release(conn, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
}

/* ---- decoding ---- */

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/*
 * Strict percent-decoding of s[0..n) into out (room for n bytes; decoding
 * never grows).  '+' stays '+' (this is a path, not a form).  Returns the
 * decoded length, or -1 for a '%' not followed by two hex digits.
 */
static long
percent_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= n) return -1;
            hi = hex_value(s[i + 1]);
            lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return (long)o;
}

/*
 * Splits a raw query string (modified in place) into decoded parameters.
 * Returns the count, or -1 on a bad escape, -2 on too many parameters.
 * Values are NUL-terminated after decoding; value_len is kept for
 * binary-safety checks (an embedded %00 is caught by the callers' strict
 * parsers, which stop at the first NUL and compare lengths).
 */
static int
parse_query(char *query, query_param_t *params, int max_params)
{
    int count = 0;
    char *p = query;

    while (p != NULL && *p != '\0') {
        char *amp = strchr(p, '&');
        char *eq;
        long n;

        if (amp != NULL) *amp = '\0';
        if (*p != '\0') {
            if (count == max_params) return -2;
            eq = strchr(p, '=');
            if (eq != NULL) *eq = '\0';
            n = percent_decode(p, strlen(p), p);
            if (n < 0) return -1;
            p[n] = '\0';
            params[count].name = p;
            if (eq != NULL) {
                n = percent_decode(eq + 1, strlen(eq + 1), eq + 1);
                if (n < 0) return -1;
                eq[1 + n] = '\0';
                params[count].value = eq + 1;
                params[count].value_len = (size_t)n;
            } else {
                params[count].value = p + strlen(p);   /* "" */
                params[count].value_len = 0;
            }
            count++;
        }
        p = amp != NULL ? amp + 1 : NULL;
    }
    return count;
}

/* Strict unsigned decimal (no sign, no spaces) of exactly len bytes. */
static bool
parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20) return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        if (v > (UINT64_MAX - 9) / 10) return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max) return false;
    *out = v;
    return true;
}

/* ---- /health ---- */

static enum MHD_Result
handle_health(bc_admin_t *admin, struct MHD_Connection *conn)
{
    cJSON *doc = cJSON_CreateObject();
    if (doc == NULL) return MHD_NO;
    cJSON_AddStringToObject(doc, "status", "ok");
    cJSON_AddStringToObject(doc, "version", BC_VERSION);
    cJSON_AddNumberToObject(doc, "pid", (double)getpid());
    cJSON_AddNumberToObject(doc, "uptime_seconds", (double)(time(NULL) - admin->started));
    cJSON_AddStringToObject(doc, "mode", "standalone");
    return reply_json(conn, MHD_HTTP_OK, doc);
}

/* ---- /stats ---- */

static cJSON *
stats_server_json(bc_admin_t *admin)
{
    bc_server_stats_t ss;
    cJSON *o = cJSON_CreateObject();

    if (o == NULL || admin->server == NULL) return o;
    memset(&ss, 0, sizeof(ss));
    bc_server_get_stats(admin->server, &ss);
    cJSON_AddNumberToObject(o, "port", bc_server_port(admin->server));
    cJSON_AddNumberToObject(o, "threads", ss.threads);
    cJSON_AddNumberToObject(o, "curr_connections", (double)ss.curr_connections);
    cJSON_AddNumberToObject(o, "total_connections", (double)ss.total_connections);
    cJSON_AddNumberToObject(o, "rejected_connections", (double)ss.rejected_connections);
    /* Every per-worker counter, straight from the X-macro: a counter added
     * to stats.h appears here without touching this file. */
#define BC__ADMIN_STAT_JSON(name, desc) \
    cJSON_AddNumberToObject(o, #name, (double)ss.totals.name);
    BC_THREAD_STATS(BC__ADMIN_STAT_JSON)
#undef BC__ADMIN_STAT_JSON
    return o;
}

static cJSON *
stats_cache_json(bc_admin_t *admin)
{
    bc_cache_stats_t cs;
    cJSON *o = cJSON_CreateObject();

    if (o == NULL) return NULL;
    bc_cache_get_stats(admin->cache, &cs);
    cJSON_AddStringToObject(o, "policy", bc_cache_policy_name(admin->cache));
    cJSON_AddNumberToObject(o, "buckets", bc_cache_nbuckets(admin->cache));
    cJSON_AddNumberToObject(o, "max_item_size", (double)bc_cache_max_item_size(admin->cache));
    cJSON_AddNumberToObject(o, "curr_items", (double)cs.curr_items);
    cJSON_AddNumberToObject(o, "total_items", (double)cs.total_items);
    cJSON_AddNumberToObject(o, "mem_used", (double)cs.mem_used);
    cJSON_AddNumberToObject(o, "mem_limit", (double)cs.mem_limit);
    cJSON_AddNumberToObject(o, "data_bytes", (double)cs.data_bytes);
    cJSON_AddNumberToObject(o, "evictions", (double)cs.evictions);
    cJSON_AddNumberToObject(o, "expired_unfetched", (double)cs.expired_unfetched);
    cJSON_AddNumberToObject(o, "evicted_unfetched", (double)cs.evicted_unfetched);
    cJSON_AddNumberToObject(o, "reclaimed", (double)cs.reclaimed);
    cJSON_AddNumberToObject(o, "expired_active", (double)cs.expired_active);
    cJSON_AddNumberToObject(o, "flushed", (double)cs.flushed);
    cJSON_AddNumberToObject(o, "pinned_bytes", (double)cs.pinned_bytes);
    return o;
}

/*
 * "buckets": [{"bucket": b, "items": n, "bytes": n}, ...], only non-empty
 * buckets unless all is set.  The console reads this to weigh buckets.
 */
static cJSON *
stats_buckets_json(bc_admin_t *admin, bool all)
{
    uint32_t n = bc_cache_nbuckets(admin->cache);
    cJSON *arr = cJSON_CreateArray();

    if (arr == NULL) return NULL;
    for (uint32_t b = 0; b < n; b++) {
        bc_bucket_stats_t bs;
        cJSON *e;
        if (bc_cache_bucket_stats(admin->cache, b, &bs) != BC_OK) continue;
        if (!all && bs.items == 0) continue;
        e = cJSON_CreateObject();
        if (e == NULL) {
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddNumberToObject(e, "bucket", b);
        cJSON_AddNumberToObject(e, "items", (double)bs.items);
        cJSON_AddNumberToObject(e, "bytes", (double)bs.bytes);
        cJSON_AddItemToArray(arr, e);
    }
    return arr;
}

static enum MHD_Result
handle_stats(bc_admin_t *admin, struct MHD_Connection *conn, char *query)
{
    query_param_t params[MAX_QUERY_PARAMS];
    int nparams = query != NULL ? parse_query(query, params, MAX_QUERY_PARAMS) : 0;
    bool all_buckets = false;
    cJSON *doc, *process, *server, *cache, *buckets;

    if (nparams < 0) return reply_error(conn, MHD_HTTP_BAD_REQUEST, "malformed query string");
    for (int i = 0; i < nparams; i++) {
        if (strcmp(params[i].name, "buckets") != 0) {
            return reply_error(conn, MHD_HTTP_BAD_REQUEST,
                               "unknown query parameter (only buckets=all|nonempty)");
        }
        if (params[i].value_len != strlen(params[i].value)) {
            return reply_error(conn, MHD_HTTP_BAD_REQUEST, "buckets: expected all or nonempty");
        }
        if (strcmp(params[i].value, "all") == 0) {
            all_buckets = true;
        } else if (strcmp(params[i].value, "nonempty") != 0) {
            return reply_error(conn, MHD_HTTP_BAD_REQUEST,
                               "buckets: expected all or nonempty");
        }
    }
    doc = cJSON_CreateObject();
    process = cJSON_CreateObject();
    server = stats_server_json(admin);
    cache = stats_cache_json(admin);
    buckets = stats_buckets_json(admin, all_buckets);
    if (doc == NULL || process == NULL || server == NULL || cache == NULL || buckets == NULL) {
        cJSON_Delete(doc);
        cJSON_Delete(process);
        cJSON_Delete(server);
        cJSON_Delete(cache);
        cJSON_Delete(buckets);
        return reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    cJSON_AddStringToObject(process, "version", BC_VERSION);
    cJSON_AddNumberToObject(process, "pid", (double)getpid());
    cJSON_AddNumberToObject(process, "uptime_seconds", (double)(time(NULL) - admin->started));
    cJSON_AddNumberToObject(process, "time", (double)time(NULL));
    cJSON_AddItemToObject(doc, "process", process);
    cJSON_AddItemToObject(doc, "server", server);
    cJSON_AddItemToObject(doc, "cache", cache);
    cJSON_AddItemToObject(doc, "buckets", buckets);
    return reply_json(conn, MHD_HTTP_OK, doc);
}

/* ---- /metrics ---- */

/* A growable text buffer; on allocation failure it goes into a failed
 * state and the caller answers 500. */
typedef struct textbuf {
    char *data;
    size_t len;
    size_t cap;
    bool failed;
} textbuf_t;

static void tb_printf(textbuf_t *tb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
tb_printf(textbuf_t *tb, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (tb->failed) return;
    for (;;) {
        size_t room = tb->cap - tb->len;
        va_start(ap, fmt);
        n = vsnprintf(tb->data != NULL ? tb->data + tb->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            tb->failed = true;
            return;
        }
        if ((size_t)n < room) {
            tb->len += (size_t)n;
            return;
        }
        {
            size_t cap = tb->cap ? tb->cap * 2 : 8192;
            char *p;
            while (cap - tb->len <= (size_t)n) cap *= 2;
            p = realloc(tb->data, cap);
            if (p == NULL) {
                tb->failed = true;
                return;
            }
            tb->data = p;
            tb->cap = cap;
        }
    }
}

static void
metric(textbuf_t *tb, const char *name, const char *type, const char *help, uint64_t value)
{
    tb_printf(tb, "# HELP bucketcache_%s %s\n# TYPE bucketcache_%s %s\nbucketcache_%s %" PRIu64
              "\n", name, help, name, type, name, value);
}

static enum MHD_Result
handle_metrics(bc_admin_t *admin, struct MHD_Connection *conn)
{
    textbuf_t tb = {0};
    bc_cache_stats_t cs;
    struct MHD_Response *resp;

    bc_cache_get_stats(admin->cache, &cs);
    metric(&tb, "uptime_seconds", "gauge", "Seconds since the node started.",
           (uint64_t)(time(NULL) - admin->started));
    if (admin->server != NULL) {
        bc_server_stats_t ss;
        memset(&ss, 0, sizeof(ss));
        bc_server_get_stats(admin->server, &ss);
        metric(&tb, "threads", "gauge", "Worker threads serving the memcached protocol.",
               ss.threads);
        metric(&tb, "curr_connections", "gauge", "Open client connections.",
               ss.curr_connections);
        metric(&tb, "connections_total", "counter", "Client connections accepted.",
               ss.total_connections);
        metric(&tb, "rejected_connections_total", "counter",
               "Client connections refused at the connection limit.",
               ss.rejected_connections);
        /* Counters from the X-macro, with its descriptions as HELP. */
#define BC__ADMIN_STAT_METRIC(name, desc) \
        metric(&tb, #name "_total", "counter", desc ".", ss.totals.name);
        BC_THREAD_STATS(BC__ADMIN_STAT_METRIC)
#undef BC__ADMIN_STAT_METRIC
    }
    metric(&tb, "curr_items", "gauge", "Items currently stored.", cs.curr_items);
    metric(&tb, "items_total", "counter", "Items ever stored.", cs.total_items);
    metric(&tb, "memory_used_bytes", "gauge",
           "Bytes held by the storage engine (items and tables).", cs.mem_used);
    metric(&tb, "memory_limit_bytes", "gauge", "Memory limit of the storage engine.",
           cs.mem_limit);
    metric(&tb, "data_bytes", "gauge", "Sum of stored key and value lengths.", cs.data_bytes);
    metric(&tb, "evictions_total", "counter", "Live items evicted to make room.",
           cs.evictions);
    metric(&tb, "expired_unfetched_total", "counter",
           "Items that expired without ever being read.", cs.expired_unfetched);
    metric(&tb, "evicted_unfetched_total", "counter",
           "Items evicted without ever being read.", cs.evicted_unfetched);
    metric(&tb, "reclaimed_total", "counter", "Expired items removed.", cs.reclaimed);
    metric(&tb, "expired_active_total", "counter",
           "Expired items removed by the background expiry scan.", cs.expired_active);
    metric(&tb, "flushed_total", "counter", "Items invalidated by flush_all.", cs.flushed);
    metric(&tb, "pinned_bytes", "gauge",
           "Bytes of unlinked items still referenced by in-flight replies.", cs.pinned_bytes);
    metric(&tb, "buckets", "gauge", "Number of buckets keys hash into.",
           bc_cache_nbuckets(admin->cache));
    if (tb.failed || tb.data == NULL) {
        free(tb.data);
        return reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    resp = MHD_create_response_from_buffer(tb.len, tb.data, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(tb.data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8");
    return queue_and_release(conn, MHD_HTTP_OK, resp);
}

/* ---- /v1/keys/{key} ---- */

/* Releases the item a GET response was sending from. */
typedef struct item_ref {
    bc_cache_t *cache;
    bc_item_t *item;
} item_ref_t;

static void
item_ref_free(void *cls)
{
    item_ref_t *ref = cls;
    bc_item_release(ref->cache, ref->item);
    free(ref);
}

/*
 * Decodes and validates the key part of the path.  On success writes the
 * key (not NUL-terminated) to key/nkey and returns true; otherwise queues a
 * 400 into *result.
 */
static bool
decode_key(struct MHD_Connection *conn, const char *raw, size_t raw_len, char *key,
           size_t *nkey, enum MHD_Result *result)
{
    char scratch[BC_KEY_MAX_LEN * 3 + 4];
    long n;

    if (raw_len == 0) {
        *result = reply_error(conn, MHD_HTTP_BAD_REQUEST, "empty key");
        return false;
    }
    /* Every encoded byte takes 1..3 characters: a longer raw key cannot
     * decode to 250 bytes or fewer. */
    if (raw_len > BC_KEY_MAX_LEN * 3) {
        *result = reply_error(conn, MHD_HTTP_BAD_REQUEST, "key longer than %u bytes",
                              BC_KEY_MAX_LEN);
        return false;
    }
    n = percent_decode(raw, raw_len, scratch);
    if (n < 0) {
        *result = reply_error(conn, MHD_HTTP_BAD_REQUEST,
                              "invalid percent-encoding in the key (%% must be followed by "
                              "two hex digits)");
        return false;
    }
    if (n == 0) {
        *result = reply_error(conn, MHD_HTTP_BAD_REQUEST, "empty key");
        return false;
    }
    if ((size_t)n > BC_KEY_MAX_LEN) {
        *result = reply_error(conn, MHD_HTTP_BAD_REQUEST, "key longer than %u bytes",
                              BC_KEY_MAX_LEN);
        return false;
    }
    /* memcached's key rule: no control characters and no space (the text
     * protocol could never name such a key). */
    for (long i = 0; i < n; i++) {
        unsigned char c = (unsigned char)scratch[i];
        if (c <= 0x20 || c == 0x7f) {
            *result = reply_error(conn, MHD_HTTP_BAD_REQUEST,
                                  "key contains a control character or space (byte %ld)", i);
            return false;
        }
    }
    memcpy(key, scratch, (size_t)n);
    *nkey = (size_t)n;
    return true;
}

static enum MHD_Result
key_get(bc_admin_t *admin, struct MHD_Connection *conn, const char *key, size_t nkey)
{
    uint32_t hash = bc_hash_key(key, nkey);
    bc_item_t *it = bc_cache_get(admin->cache, key, nkey, hash);
    item_ref_t *ref;
    struct MHD_Response *resp;
    char number[32];

    if (it == NULL) return reply_error(conn, MHD_HTTP_NOT_FOUND, "key not found");
    ref = malloc(sizeof(*ref));
    if (ref == NULL) {
        bc_item_release(admin->cache, it);
        return MHD_NO;
    }
    ref->cache = admin->cache;
    ref->item = it;
    resp = MHD_create_response_from_buffer_with_free_callback_cls(
        bc_item_value_len(it), bc_item_value(it), item_ref_free, ref);
    if (resp == NULL) {
        item_ref_free(ref);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    /* flags and cas never change once an item is linked (a new store makes
     * a new item), so reading them without the shard lock is safe.  The
     * expiry can change (touch), which is why no TTL header is sent. */
    snprintf(number, sizeof(number), "%" PRIu32, it->flags);
    MHD_add_response_header(resp, "X-Bucketcache-Flags", number);
    snprintf(number, sizeof(number), "%" PRIu64, it->cas);
    MHD_add_response_header(resp, "X-Bucketcache-Cas", number);
    return queue_and_release(conn, MHD_HTTP_OK, resp);
}

static enum MHD_Result
key_delete(bc_admin_t *admin, struct MHD_Connection *conn, const char *key, size_t nkey)
{
    bc_status_t st = bc_cache_delete(admin->cache, key, nkey, bc_hash_key(key, nkey));
    if (st == BC_ENOTFOUND) return reply_error(conn, MHD_HTTP_NOT_FOUND, "key not found");
    if (st != BC_OK) {
        return reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", bc_status_str(st));
    }
    return queue_and_release(conn, MHD_HTTP_NO_CONTENT,
                             MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT));
}

/* PUT: parse ttl/flags, allocate, copy, store (BC_STORE_SET). */
static enum MHD_Result
key_put(bc_admin_t *admin, struct MHD_Connection *conn, admin_request_t *req, const char *key,
        size_t nkey, char *query)
{
    query_param_t params[MAX_QUERY_PARAMS];
    int nparams = query != NULL ? parse_query(query, params, MAX_QUERY_PARAMS) : 0;
    uint64_t ttl = 0, flags = 0, cas = 0;
    bool seen_ttl = false, seen_flags = false;
    uint32_t exptime = 0, hash;
    bc_status_t st = BC_OK;
    bc_item_t *it;
    cJSON *doc;

    if (nparams == -2) return reply_error(conn, MHD_HTTP_BAD_REQUEST, "too many query parameters");
    if (nparams < 0) return reply_error(conn, MHD_HTTP_BAD_REQUEST, "malformed query string");
    for (int i = 0; i < nparams; i++) {
        query_param_t *p = &params[i];
        if (strcmp(p->name, "ttl") == 0 && !seen_ttl) {
            /* Relative seconds, any size: unlike memcached's exptime there
             * is no 30-day switch to absolute time. */
            if (!parse_u64(p->value, p->value_len, UINT32_MAX, &ttl)) {
                return reply_error(conn, MHD_HTTP_BAD_REQUEST,
                                   "ttl: expected seconds 0..4294967295 (0 = no expiry)");
            }
            seen_ttl = true;
        } else if (strcmp(p->name, "flags") == 0 && !seen_flags) {
            if (!parse_u64(p->value, p->value_len, UINT32_MAX, &flags)) {
                return reply_error(conn, MHD_HTTP_BAD_REQUEST,
                                   "flags: expected an integer 0..4294967295");
            }
            seen_flags = true;
        } else {
            return reply_error(conn, MHD_HTTP_BAD_REQUEST,
                               "unknown or repeated query parameter (accepted: ttl, flags)");
        }
    }
    if (req->body_too_large || req->body_len + 2 > UINT32_MAX) {
        return reply_error(conn, MHD_HTTP_CONTENT_TOO_LARGE,
                           "value larger than the maximum item size (%zu bytes)",
                           admin->max_body);
    }
    if (ttl != 0) {
        uint64_t abs_time = (uint64_t)bc_cache_now(admin->cache) + ttl;
        if (abs_time > UINT32_MAX) {
            return reply_error(conn, MHD_HTTP_BAD_REQUEST, "ttl: expiry beyond the year 2106");
        }
        exptime = (uint32_t)abs_time;
    }
    hash = bc_hash_key(key, nkey);
    it = bc_item_alloc(admin->cache, key, nkey, hash, (uint32_t)flags, exptime,
                       (uint32_t)(req->body_len + 2), &st);
    if (it == NULL) {
        if (st == BC_ETOOLARGE) {
            return reply_error(conn, MHD_HTTP_CONTENT_TOO_LARGE,
                               "value larger than the maximum item size (%zu bytes)",
                               admin->max_body);
        }
        return reply_error(conn, MHD_HTTP_INSUFFICIENT_STORAGE, "out of memory (%s)",
                           bc_status_str(st));
    }
    if (req->body_len > 0) memcpy(bc_item_value(it), req->body, req->body_len);
    memcpy(bc_item_value(it) + req->body_len, "\r\n", 2);
    st = bc_cache_store(admin->cache, it, BC_STORE_SET, 0, &cas);
    if (st == BC_ETOOLARGE) {
        return reply_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "value too large");
    }
    if (st == BC_ENOMEM) {
        return reply_error(conn, MHD_HTTP_INSUFFICIENT_STORAGE, "out of memory");
    }
    if (st != BC_OK) {
        return reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "not stored (%s)",
                           bc_status_str(st));
    }
    doc = cJSON_CreateObject();
    if (doc == NULL) return MHD_NO;
    cJSON_AddBoolToObject(doc, "stored", true);
    cJSON_AddNumberToObject(doc, "bytes", (double)req->body_len);
    cJSON_AddNumberToObject(doc, "cas", (double)cas);
    cJSON_AddNumberToObject(doc, "bucket", bc_hash_bucket(hash, bc_cache_nbuckets(admin->cache)));
    return reply_json(conn, MHD_HTTP_CREATED, doc);
}

/* Appends a PUT body chunk, bounded by max_body. */
static void
body_append(bc_admin_t *admin, admin_request_t *req, const char *data, size_t n)
{
    if (req->body_too_large) return;
    if (n > admin->max_body - req->body_len) {
        req->body_too_large = true;
        free(req->body);
        req->body = NULL;
        req->body_len = req->body_cap = 0;
        return;
    }
    if (req->body_len + n > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 4096;
        char *p;
        while (cap < req->body_len + n) cap *= 2;
        if (cap > admin->max_body) cap = admin->max_body;
        p = realloc(req->body, cap);
        if (p == NULL) {
            /* Treated like an oversized body: refuse, keep serving. */
            req->body_too_large = true;
            free(req->body);
            req->body = NULL;
            req->body_len = req->body_cap = 0;
            return;
        }
        req->body = p;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, n);
    req->body_len += n;
}

/* ---- routing ---- */

typedef enum route {
    ROUTE_NONE,
    ROUTE_HEALTH,
    ROUTE_STATS,
    ROUTE_METRICS,
    ROUTE_KEYS,
} route_t;

static route_t
route_of(const char *path, size_t path_len)
{
#define PATH_IS(lit) (path_len == sizeof(lit) - 1 && memcmp(path, lit, path_len) == 0)
    if (PATH_IS("/health")) return ROUTE_HEALTH;
    if (PATH_IS("/stats")) return ROUTE_STATS;
    if (PATH_IS("/metrics")) return ROUTE_METRICS;
#undef PATH_IS
    if (path_len >= sizeof(KEYS_PREFIX) - 1 &&
        memcmp(path, KEYS_PREFIX, sizeof(KEYS_PREFIX) - 1) == 0) return ROUTE_KEYS;
    return ROUTE_NONE;
}

static bool
method_is(const char *method, const char *name)
{
    return strcmp(method, name) == 0;
}

/* True when the request announces a body (Content-Length > 0 or chunked). */
static bool
request_has_body(struct MHD_Connection *conn)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_TRANSFER_ENCODING);
    return te != NULL || (cl != NULL && strcmp(cl, "0") != 0);
}

/* Unknown path (404) or method (405): queues the answer into *result. */
static bool
route_error(struct MHD_Connection *conn, route_t route, const char *method, bool is_get,
            bool is_put, bool is_delete, enum MHD_Result *result)
{
    if (route == ROUTE_NONE) {
        *result = reply_error(conn, MHD_HTTP_NOT_FOUND, "no such path");
        return true;
    }
    if (route != ROUTE_KEYS && !is_get) {
        *result = reply_method_not_allowed(conn, method, "GET, HEAD");
        return true;
    }
    if (route == ROUTE_KEYS && !is_get && !is_put && !is_delete) {
        *result = reply_method_not_allowed(conn, method, "GET, HEAD, PUT, DELETE");
        return true;
    }
    return false;
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
       const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    bc_admin_t *admin = cls;
    admin_request_t *req = *con_cls;
    const char *target;
    const char *qmark;
    size_t path_len;
    route_t route;
    bool is_get, is_put, is_delete;

    (void)version;
    if (req == NULL) return MHD_NO;   /* uri_log could not allocate: drop */
    target = req->uri != NULL ? req->uri : url;
    qmark = strchr(target, '?');
    path_len = qmark != NULL ? (size_t)(qmark - target) : strlen(target);
    route = route_of(target, path_len);
    is_get = method_is(method, MHD_HTTP_METHOD_GET) || method_is(method, MHD_HTTP_METHOD_HEAD);
    is_put = method_is(method, MHD_HTTP_METHOD_PUT);
    is_delete = method_is(method, MHD_HTTP_METHOD_DELETE);

    if (!req->headers_done) {
        /*
         * First call: headers only.  When a body is announced, reject what
         * we can now, before reading it (MHD then closes the connection
         * instead of draining the body).  Without a body, answer in the
         * final call so that the connection stays reusable.
         */
        req->headers_done = true;
        if (request_has_body(conn)) {
            enum MHD_Result early;
            if (route_error(conn, route, method, is_get, is_put, is_delete, &early)) return early;
        }
        if (is_put) {
            const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_CONTENT_LENGTH);
            uint64_t declared;
            if (cl != NULL && parse_u64(cl, strlen(cl), UINT64_MAX, &declared) &&
                declared > admin->max_body) {
                return reply_error(conn, MHD_HTTP_CONTENT_TOO_LARGE,
                                   "value larger than the maximum item size (%zu bytes)",
                                   admin->max_body);
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        if (is_put) body_append(admin, req, upload_data, *upload_data_size);
        *upload_data_size = 0;   /* consumed (or discarded) */
        return MHD_YES;
    }

    /* Final call: the whole request is in. */
    {
        enum MHD_Result early;
        if (route_error(conn, route, method, is_get, is_put, is_delete, &early)) return early;
    }
    switch (route) {
    case ROUTE_HEALTH:
        return handle_health(admin, conn);
    case ROUTE_STATS:
        return handle_stats(admin, conn, qmark != NULL ? (char *)qmark + 1 : NULL);
    case ROUTE_METRICS:
        return handle_metrics(admin, conn);
    case ROUTE_KEYS: {
        char key[BC_KEY_MAX_LEN];
        size_t nkey = 0;
        enum MHD_Result result = MHD_NO;
        const char *raw = target + sizeof(KEYS_PREFIX) - 1;
        size_t raw_len = path_len - (sizeof(KEYS_PREFIX) - 1);

        if (!decode_key(conn, raw, raw_len, key, &nkey, &result)) return result;
        if (is_get) {
            if (qmark != NULL && qmark[1] != '\0') {
                return reply_error(conn, MHD_HTTP_BAD_REQUEST,
                                   "GET takes no query parameters");
            }
            return key_get(admin, conn, key, nkey);
        }
        if (is_delete) return key_delete(admin, conn, key, nkey);
        return key_put(admin, conn, req, key, nkey, qmark != NULL ? (char *)qmark + 1 : NULL);
    }
    case ROUTE_NONE:
        break;
    }
    return reply_error(conn, MHD_HTTP_NOT_FOUND, "no such path");
}

/* MHD_OPTION_URI_LOG_CALLBACK: runs before the handler; its return value
 * becomes *con_cls. */
static void *
uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
    admin_request_t *req = calloc(1, sizeof(*req));
    (void)cls;
    (void)conn;
    if (req == NULL) return NULL;
    req->uri = strdup(uri != NULL ? uri : "/");
    if (req->uri == NULL) {
        free(req);
        return NULL;
    }
    return req;
}

static void
completed(void *cls, struct MHD_Connection *conn, void **con_cls,
          enum MHD_RequestTerminationCode toe)
{
    admin_request_t *req = *con_cls;
    (void)cls;
    (void)conn;
    (void)toe;
    if (req == NULL) return;
    free(req->uri);
    free(req->body);
    free(req);
    *con_cls = NULL;
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    size_t n;
    (void)cls;
    if (bc__log_level < BC_LOG_WARN) return;
    vsnprintf(line, sizeof(line), fmt, ap);
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    log_warn("admin http: %s", line);
}

/* ---- lifecycle ---- */

static bc_status_t
bind_listener(const char *addr, uint16_t port, int *fd_out, uint16_t *port_out)
{
    struct addrinfo hints, *res = NULL, *ai;
    char service[8];
    int rc, fd = -1, last_errno = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(service, sizeof(service), "%u", port);
    rc = getaddrinfo(addr, service, &hints, &res);
    if (rc != 0) {
        log_error("admin: cannot resolve listen address %s: %s", addr, gai_strerror(rc));
        return BC_EINVAL;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        int one = 1;
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, ADMIN_LISTEN_BACKLOG) == 0) break;
        last_errno = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        log_error("admin: cannot listen on %s:%u: %s", addr, port, strerror(last_errno));
        return BC_EIO;
    }
    {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        *port_out = port;
        if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
            if (ss.ss_family == AF_INET) {
                *port_out = ntohs(((struct sockaddr_in *)&ss)->sin_port);
            } else if (ss.ss_family == AF_INET6) {
                *port_out = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
            }
        }
    }
    *fd_out = fd;
    return BC_OK;
}

bc_status_t
bc_admin_create(const bc_admin_config_t *config, bc_cache_t *cache, bc_server_t *server,
                bc_admin_t **out)
{
    bc_admin_t *admin;
    bc_status_t st;

    *out = NULL;
    if (config == NULL || cache == NULL || config->listen_addr == NULL ||
        config->listen_addr[0] == '\0') {
        return BC_EINVAL;
    }
    admin = calloc(1, sizeof(*admin));
    if (admin == NULL) return BC_ENOMEM;
    admin->cache = cache;
    admin->server = server;
    admin->listen_fd = -1;
    admin->max_conns = config->max_conns ? config->max_conns : ADMIN_DEFAULT_MAX_CONNS;
    admin->conn_timeout_s = config->conn_timeout_s ? config->conn_timeout_s
                                                   : ADMIN_DEFAULT_TIMEOUT_S;
    admin->max_body = bc_cache_max_item_size(cache);
    admin->started = time(NULL);
    st = bind_listener(config->listen_addr, config->port, &admin->listen_fd, &admin->port);
    if (st != BC_OK) {
        free(admin);
        return st;
    }
    *out = admin;
    return BC_OK;
}

bc_status_t
bc_admin_start(bc_admin_t *admin)
{
    if (admin->daemon != NULL) return BC_OK;
    if (admin->listen_fd < 0) return BC_EIO;
    admin->daemon = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, handle, admin,
        /* The logger must come first to catch messages about the others. */
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, (void *)admin,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)admin->listen_fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)admin->max_conns,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)ADMIN_CONN_MEMORY_LIMIT,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)admin->conn_timeout_s,
        MHD_OPTION_URI_LOG_CALLBACK, uri_log, (void *)admin,
        MHD_OPTION_NOTIFY_COMPLETED, completed, (void *)admin,
        MHD_OPTION_END);
    if (admin->daemon == NULL) {
        log_error("admin: libmicrohttpd could not start on port %u", admin->port);
        return BC_EIO;
    }
    /* MHD owns the listening socket now and closes it in MHD_stop_daemon. */
    admin->listen_fd = -1;
    return BC_OK;
}

uint16_t
bc_admin_port(const bc_admin_t *admin)
{
    return admin->port;
}

void
bc_admin_stop(bc_admin_t *admin)
{
    if (admin == NULL || admin->daemon == NULL) return;
    MHD_stop_daemon(admin->daemon);
    admin->daemon = NULL;
}

void
bc_admin_destroy(bc_admin_t *admin)
{
    if (admin == NULL) return;
    bc_admin_stop(admin);
    if (admin->listen_fd >= 0) close(admin->listen_fd);
    free(admin);
}

void
bc_admin_set_cluster(bc_admin_t *admin, bc_node_cluster_t *cluster)
{
    admin->cluster = cluster;
}
