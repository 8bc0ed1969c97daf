/*
 * bc_httpd.c -- see bc_httpd.h.
 *
 * MHD calls the access handler several times per request:
 *
 *     1st call   headers only      -> route, reject early (404/405/413)
 *     Nth call   a body chunk      -> append (bounded) or discard
 *     last call  no more data      -> run the route's handler
 *
 * The raw request target is captured by the URI log callback (MHD would
 * otherwise hand us a path it has already percent-decoded, losing "%2F"
 * versus "/" and embedded NULs).
 *
 * ACCESS (bc_httpd.h) is decided in the first call, from the headers:
 * httpd_access() says whether the request may go on; a refusal is sent at
 * once when a body is announced (MHD then closes instead of reading it),
 * else in the last call, so that the connection stays reusable.
 *
 * DEADLINES: MHD's connection notifications (started/closed) keep a list
 * of the open connections with their socket and a request deadline
 * (httpd_conn_t, the connection's socket context).  The access handler
 * moves the deadline as a request progresses; the parker thread, which
 * wakes every REAP_INTERVAL anyway, shuts down (shutdown(2), never
 * close(2): the socket stays MHD's) every connection past its deadline,
 * and MHD then closes it as it would any connection the peer dropped.
 * LOCKING RULE: conns_mu guards the list; MHD's "closed" notification
 * takes it before MHD closes the socket, so the reaper never shuts down a
 * socket number that has been closed and reused.
 */
#include "bc_httpd.h"

#include <errno.h>
#include <netdb.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "bc_config.h"
#include "bc_log.h"
#include "bc_time.h"

#define HTTPD_DEFAULT_MAX_CONNS 2048u
#define HTTPD_DEFAULT_PER_IP    256u
#define HTTPD_DEFAULT_TIMEOUT_S 30u
#define HTTPD_DEFAULT_REQUEST_S 10u
#define HTTPD_DEFAULT_MAX_BODY  (64u * 1024u)
#define HTTPD_CONN_MEMORY_LIMIT (64u * 1024u)
#define HTTPD_BACKLOG           1024
#define HTTPD_BODY_MIN_RATE     1024u            /* bytes/s a body must keep up */
#define HTTPD_REAP_INTERVAL_US  (250 * 1000)     /* how often deadlines are checked */
#define HTTPD_DEFAULT_BODY_TYPES "application/json"

/* One open connection (MHD's socket context): its socket, for the
 * reaper, and when the request being received must be complete. */
typedef struct httpd_conn {
    struct httpd_conn *prev, *next;
    struct bc_httpd *h;            /* its server: the HTTPS certificate callback finds it so */
    int fd;
    _Atomic int64_t deadline_us;   /* CLOCK_MONOTONIC; 0: none (a handler runs, a reply goes) */
    bool shut;                     /* the reaper shut it down */
} httpd_conn_t;

/* A parked connection and when to run its handler again. */
typedef struct httpd_parked {
    struct MHD_Connection *conn;
    int64_t due_us;
} httpd_parked_t;

struct bc_httpd {
    bc_httpd_config_t cfg;
    char *name;
    int listen_fd;
    uint16_t port;
    struct MHD_Daemon *daemon;

    /* Parking.  LOCKING RULE: park_mu guards the fields below; MHD's
     * functions are never called under it.  The parker thread resumes
     * parked connections when they are due or woken. */
    pthread_mutex_t park_mu;
    pthread_cond_t park_cv;        /* CLOCK_MONOTONIC */
    pthread_t parker;
    bool parker_started;
    bool parker_stop;
    bool stopping;                 /* no new parking: the daemon is going */
    uint64_t wake_gen;
    httpd_parked_t *parked;        /* max_conns entries */
    size_t nparked;
    int64_t next_reap_us;          /* parker thread only */

    bool loopback;                 /* bound to 127.0.0.0/8 or ::1 */
    /* HTTPS: the certificate and key in force, and those replaced by
     * bc_httpd_set_tls (a handshake may still use one: they are freed
     * with the server).  LOCKING RULE: tls_mu guards both pointers; an
     * identity never changes once made. */
    bool tls;
    pthread_mutex_t tls_mu;
    struct httpd_identity *identity, *retired;
    /* Connections and their deadlines (see the top).  LOCKING RULE:
     * conns_mu guards the list; never held while calling MHD. */
    pthread_mutex_t conns_mu;
    httpd_conn_t *conns;
    _Atomic uint64_t unauthorized, forbidden, timeouts;
};

typedef struct httpd_request {
    char *uri;                     /* raw target, from the URI log callback */
    int64_t parked_us;             /* first parked (CLOCK_MONOTONIC us); 0: never */
    uint64_t park_state[4];        /* bc_http_req_t's, kept between runs */
    bool headers_done;
    bool authenticated;            /* a valid admin token came with it */
    unsigned deny_status;          /* ACCESS refused it (401/403): answered in the last call */
    const char *deny_why;          /* static text */
    bool keep_body;                /* a handler reads this method's body (body_methods) */
    bool body_too_large;
    char *body;
    size_t body_len, body_cap;
} httpd_request_t;

/* ---- replies ---- */

/*
 * Adds the common and the request's extra headers, queues and releases
 * resp.  req may be NULL (errors decided before a handler runs).
 */
static enum MHD_Result
httpd_queue(struct MHD_Connection *conn, const bc_http_req_t *req, unsigned status,
            struct MHD_Response *resp, const char *content_type, const char *allow)
{
    if (resp == NULL) return MHD_NO; /* out of memory: MHD drops the connection */
    if (content_type != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (allow != NULL) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    for (size_t i = 0; req != NULL && i < req->nheaders; i++) {
        MHD_add_response_header(resp, req->headers[i].name, req->headers[i].value);
    }
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result
httpd_json(struct MHD_Connection *conn, const bc_http_req_t *req, unsigned status, cJSON *doc,
           const char *allow)
{
    char *text = doc != NULL ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    if (text == NULL) return MHD_NO;
    /* cJSON allocates with malloc (default hooks), so MHD may free() it. */
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(text);
        return MHD_NO;
    }
    return httpd_queue(conn, req, status, resp, "application/json", allow);
}

static enum MHD_Result
httpd_error(struct MHD_Connection *conn, const bc_http_req_t *req, unsigned status,
            const char *allow, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    cJSON *doc = cJSON_CreateObject();
    if (doc == NULL || cJSON_AddStringToObject(doc, "error", msg) == NULL) {
        cJSON_Delete(doc);
        return MHD_NO;
    }
    return httpd_json(conn, req, status, doc, allow);
}

static enum MHD_Result httpd_conn_error(struct MHD_Connection *conn, unsigned status,
                                        const char *allow, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum MHD_Result
httpd_conn_error(struct MHD_Connection *conn, unsigned status, const char *allow,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result r = httpd_error(conn, NULL, status, allow, fmt, ap);
    va_end(ap);
    return r;
}

static bool
header_text_ok(const char *s)
{
    return s != NULL && strpbrk(s, "\r\n") == NULL;
}

bc_status_t
bc_http_add_header(bc_http_req_t *req, const char *name, const char *value)
{
    if (req == NULL || !header_text_ok(name) || name[0] == '\0' || !header_text_ok(value)) {
        return BC_EINVAL;
    }
    if (req->nheaders == BC_HTTP_MAX_HEADERS) return BC_ENOMEM;
    req->headers[req->nheaders].name = name;
    req->headers[req->nheaders].value = value;
    req->nheaders++;
    return BC_OK;
}

enum MHD_Result
bc_http_reply_json(bc_http_req_t *req, unsigned status, cJSON *doc)
{
    return httpd_json(req->conn, req, status, doc, NULL);
}

enum MHD_Result
bc_http_reply_error(bc_http_req_t *req, unsigned status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result r = httpd_error(req->conn, req, status, NULL, fmt, ap);
    va_end(ap);
    return r;
}

enum MHD_Result
bc_http_reply_bytes(bc_http_req_t *req, unsigned status, const char *content_type,
                    const void *data, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    return httpd_queue(req->conn, req, status, resp, content_type, NULL);
}

enum MHD_Result
bc_http_reply_buffer(bc_http_req_t *req, unsigned status, const char *content_type,
                     const void *data, size_t len, bc_http_free_fn free_fn, void *free_ctx)
{
    /* MHD calls free_fn when the last reference to the response goes,
     * which is after sending, or in httpd_queue's destroy when queueing
     * fails. */
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback_cls(
        len, (void *)data, free_fn, free_ctx);
    if (resp == NULL) {
        if (free_fn != NULL) free_fn(free_ctx);
        return MHD_NO;
    }
    return httpd_queue(req->conn, req, status, resp, content_type, NULL);
}

/* What bc_http_reply_stream hands MHD: the caller's reader and context. */
typedef struct httpd_stream {
    bc_http_read_fn read_fn;
    void *ctx;
    bc_http_free_fn free_fn;
} httpd_stream_t;

static ssize_t
httpd_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    httpd_stream_t *st = cls;
    ssize_t n = st->read_fn(st->ctx, buf, max);
    if (n == BC_HTTP_STREAM_END) return MHD_CONTENT_READER_END_OF_STREAM;
    if (n <= 0 || (size_t)n > max) return MHD_CONTENT_READER_END_WITH_ERROR;
    return n;
}

static void
httpd_stream_free(void *cls)
{
    httpd_stream_t *st = cls;
    if (st->free_fn != NULL) st->free_fn(st->ctx);
    free(st);
}

enum MHD_Result
bc_http_reply_stream(bc_http_req_t *req, unsigned status, const char *content_type,
                     size_t block, bc_http_read_fn read_fn, void *ctx, bc_http_free_fn free_fn)
{
    httpd_stream_t *st = malloc(sizeof(*st));
    struct MHD_Response *resp = NULL;
    if (st != NULL) {
        *st = (httpd_stream_t){read_fn, ctx, free_fn};
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, block, httpd_stream_read,
                                                 st, httpd_stream_free);
    }
    if (resp == NULL) {
        free(st);
        if (free_fn != NULL) free_fn(ctx);
        return MHD_NO;
    }
    return httpd_queue(req->conn, req, status, resp, content_type, NULL);
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

ssize_t
bc_http_percent_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 >= n) return -1;
            int hi = hex_value(s[i + 1]);
            int lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return (ssize_t)o;
}

int
bc_http_parse_query(char *query, bc_http_param_t *params, int max_params)
{
    int count = 0;
    char *p = query;
    while (p != NULL && *p != '\0') {
        char *amp = strchr(p, '&');
        if (amp != NULL) *amp = '\0';
        if (*p != '\0') {
            if (count == max_params) return -2;
            char *eq = strchr(p, '=');
            if (eq != NULL) *eq = '\0';
            ssize_t n = bc_http_percent_decode(p, strlen(p), p);
            if (n < 0) return -1;
            p[n] = '\0';
            params[count].name = p;
            if (eq != NULL) {
                n = bc_http_percent_decode(eq + 1, strlen(eq + 1), eq + 1);
                if (n < 0) return -1;
                eq[1 + n] = '\0';
                params[count].value = eq + 1;
                params[count].value_len = (size_t)n;
            } else {
                params[count].value = p + strlen(p);
                params[count].value_len = 0;
            }
            count++;
        }
        p = amp != NULL ? amp + 1 : NULL;
    }
    return count;
}

const bc_http_param_t *
bc_http_param_find(const bc_http_param_t *params, int n, const char *name)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(params[i].name, name) == 0) return &params[i];
    }
    return NULL;
}

int
bc_http_param_bool(const bc_http_param_t *param)
{
    const char *v = param->value;
    if (strcmp(v, "") == 0 || strcmp(v, "1") == 0 || strcmp(v, "true") == 0 ||
        strcmp(v, "yes") == 0) {
        return 1;
    }
    if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0) return 0;
    return -1;
}

/* ---- routing ---- */

/* Calls fn for each method of a comma-separated list (spaces trimmed);
 * stops early when fn returns true, and returns that. */
static bool
methods_each(const char *methods, bool (*fn)(const char *m, size_t len, void *arg), void *arg)
{
    const char *p = methods;
    while (p != NULL && *p != '\0') {
        const char *comma = strchr(p, ',');
        const char *end = comma != NULL ? comma : p + strlen(p);
        const char *b = p;
        while (b < end && *b == ' ') b++;
        const char *e = end;
        while (e > b && e[-1] == ' ') e--;
        if (e > b && fn(b, (size_t)(e - b), arg)) return true;
        p = comma != NULL ? comma + 1 : NULL;
    }
    return false;
}

static bool
method_equals(const char *m, size_t len, void *arg)
{
    const char *method = arg;
    return strlen(method) == len && memcmp(m, method, len) == 0;
}

static bool
method_in(const char *methods, const char *method)
{
    return methods_each(methods, method_equals, (void *)method);
}

static bool
method_allowed(const char *methods, const char *method)
{
    if (strcmp(method, "HEAD") == 0 && method_in(methods, "GET")) return true;
    return method_in(methods, method);
}

typedef struct allow_buf {
    char text[128];
    size_t len;
    bool has_head;
} allow_buf_t;

static void
allow_add(allow_buf_t *a, const char *m, size_t len)
{
    size_t room = sizeof(a->text) - a->len;
    int n = snprintf(a->text + a->len, room, "%s%.*s", a->len > 0 ? ", " : "", (int)len, m);
    if (n > 0 && (size_t)n < room) a->len += (size_t)n;
}

static bool
allow_append(const char *m, size_t len, void *arg)
{
    allow_buf_t *a = arg;
    if (len == 4 && memcmp(m, "HEAD", 4) == 0) {
        if (a->has_head) return false;
        a->has_head = true;
    }
    allow_add(a, m, len);
    if (len == 3 && memcmp(m, "GET", 3) == 0 && !a->has_head) {
        a->has_head = true;
        allow_add(a, "HEAD", 4);
    }
    return false;
}

/* The Allow header of a route: its methods, ", "-separated, HEAD after GET. */
static void
allow_header(const char *methods, allow_buf_t *a)
{
    a->text[0] = '\0';
    a->len = 0;
    a->has_head = false;
    methods_each(methods, allow_append, a);
}

static const bc_http_route_t *
httpd_route(const bc_httpd_t *h, const char *path, size_t path_len)
{
    for (size_t i = 0; i < h->cfg.nroutes; i++) {
        const char *rp = h->cfg.routes[i].path;
        size_t rlen = strlen(rp);
        if (rlen > 0 && rp[rlen - 1] == '*') {
            if (path_len >= rlen - 1 && memcmp(path, rp, rlen - 1) == 0) return &h->cfg.routes[i];
        } else if (path_len == rlen && memcmp(path, rp, rlen) == 0) {
            return &h->cfg.routes[i];
        }
    }
    return NULL;
}

static bool
request_has_body(struct MHD_Connection *conn)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_TRANSFER_ENCODING);
    return te != NULL || (cl != NULL && strcmp(cl, "0") != 0);
}

/* ---- access (bc_httpd.h, ACCESS) ---- */

static const char *
conn_header(struct MHD_Connection *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* GET, HEAD and OPTIONS change nothing; every other method may. */
static bool
method_is_safe(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
           strcmp(method, "OPTIONS") == 0;
}

/* Whether path[0..len) is in a ", "-separated list; an entry ending in
 * '*' matches as a prefix. */
static bool
path_listed(const char *list, const char *path, size_t len)
{
    for (const char *p = list; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == ',') p++;
        size_t k = strcspn(p, ", ");
        if (k > 0 && p[k - 1] == '*') {
            if (len >= k - 1 && memcmp(p, path, k - 1) == 0) return true;
        } else if (k > 0 && k == len && memcmp(p, path, len) == 0) {
            return true;
        }
        p += k;
    }
    return false;
}

/*
 * Decides whether the request may go on (ACCESS, steps 1-3): 0, or the
 * status to refuse it with (*why: a static text).  Sets
 * req->authenticated.
 */
static unsigned
httpd_access(bc_httpd_t *h, httpd_request_t *req, struct MHD_Connection *conn,
             const char *method, const char *path, size_t path_len, const char **why)
{
    bool safe = method_is_safe(method);
    if (h->cfg.auth != NULL) {
        bc_auth_result_t r = bc_auth_check(h->cfg.auth,
                                           conn_header(conn, MHD_HTTP_HEADER_AUTHORIZATION));
        req->authenticated = r == BC_AUTH_OK;
        bool is_public = safe && path_listed(h->cfg.public_paths, path, path_len);
        bool needed = !safe || path_listed(h->cfg.private_paths, path, path_len) ||
                      (!h->loopback && !is_public);
        if (needed && r != BC_AUTH_OK) {
            *why = bc_auth_result_str(r);
            return MHD_HTTP_UNAUTHORIZED;
        }
    }
    const char *host = conn_header(conn, MHD_HTTP_HEADER_HOST);
    if (h->loopback && !req->authenticated && !bc_auth_host_is_loopback(host)) {
        *why = "Host does not name this loopback server (DNS rebinding?): use 127.0.0.1 or "
               "localhost, or present the admin token";
        return MHD_HTTP_FORBIDDEN;
    }
    if (!safe) {
        const char *cross = bc_auth_cross_site(conn_header(conn, "Sec-Fetch-Site"),
                                               conn_header(conn, MHD_HTTP_HEADER_ORIGIN), host);
        if (cross != NULL) {
            *why = cross;
            return MHD_HTTP_FORBIDDEN;
        }
    }
    return 0;
}

/* Sends an ACCESS refusal: 401 with WWW-Authenticate, or 403. */
static enum MHD_Result
httpd_deny(bc_httpd_t *h, struct MHD_Connection *conn, unsigned status, const char *why)
{
    bc_http_req_t hr = {.conn = conn, .httpd = h};
    if (status == MHD_HTTP_UNAUTHORIZED) {
        atomic_fetch_add_explicit(&h->unauthorized, 1, memory_order_relaxed);
        bc_http_add_header(&hr, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                           "Bearer realm=\"bucketcache\"");
    } else {
        atomic_fetch_add_explicit(&h->forbidden, 1, memory_order_relaxed);
    }
    return bc_http_reply_error(&hr, status, "%s", why);
}

/* This connection's deadline record (NULL if MHD gave none). */
static httpd_conn_t *
httpd_conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
}

static void
httpd_set_deadline(struct MHD_Connection *conn, int64_t deadline_us)
{
    httpd_conn_t *c = httpd_conn_of(conn);
    if (c != NULL) atomic_store_explicit(&c->deadline_us, deadline_us, memory_order_relaxed);
}

/*
 * The rest of the first call's checks for a request that announced a
 * body (ACCESS step 4, and the route): true with *result set when it is
 * refused.
 */
static bool
httpd_check_body(bc_httpd_t *h, struct MHD_Connection *conn, const bc_http_route_t *route,
                 const char *method, enum MHD_Result *result);

/* 404/405 for a request that matched no route or a disallowed method. */
static bool
httpd_reject(struct MHD_Connection *conn, const bc_http_route_t *route, const char *method,
             enum MHD_Result *result)
{
    if (route == NULL) {
        *result = httpd_conn_error(conn, MHD_HTTP_NOT_FOUND, NULL, "no such path");
        return true;
    }
    if (!method_allowed(route->methods, method)) {
        allow_buf_t allow;
        allow_header(route->methods, &allow);
        *result = httpd_conn_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, allow.text,
                                   "method %.20s not allowed here (allowed: %s)", method,
                                   allow.text);
        return true;
    }
    return false;
}

static void
body_append(const bc_httpd_t *h, httpd_request_t *req, const char *data, size_t n)
{
    if (req->body_too_large) return;
    if (n > h->cfg.max_body - req->body_len) {
        req->body_too_large = true;
    } else if (req->body_len + n > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 4096;
        while (cap < req->body_len + n) cap *= 2;
        if (cap > h->cfg.max_body) cap = h->cfg.max_body;
        char *p = realloc(req->body, cap);
        if (p == NULL) {
            req->body_too_large = true;
        } else {
            req->body = p;
            req->body_cap = cap;
        }
    }
    if (req->body_too_large) {
        free(req->body);
        req->body = NULL;
        req->body_len = req->body_cap = 0;
        return;
    }
    memcpy(req->body + req->body_len, data, n);
    req->body_len += n;
}

static bool
httpd_check_body(bc_httpd_t *h, struct MHD_Connection *conn, const bc_http_route_t *route,
                 const char *method, enum MHD_Result *result)
{
    if (httpd_reject(conn, route, method, result)) return true;
    if (conn_header(conn, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL) {
        *result = httpd_conn_error(conn, MHD_HTTP_LENGTH_REQUIRED, NULL,
                                   "chunked request bodies are not accepted: send "
                                   "Content-Length");
        return true;
    }
    const char *cl = conn_header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
    uint64_t len = 0;
    if (cl == NULL || !bc_parse_u64n(cl, strlen(cl), UINT64_MAX, &len)) {
        *result = httpd_conn_error(conn, MHD_HTTP_BAD_REQUEST, NULL, "malformed Content-Length");
        return true;
    }
    /* Refused whether or not the route reads it: a body is read (or
     * discarded) only up to what a handler could take. */
    if (len > h->cfg.max_body) {
        *result = httpd_conn_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
                                   "request body larger than %zu bytes", h->cfg.max_body);
        return true;
    }
    if (!method_is_safe(method)) {
        /* RFC 9110 8.3: no Content-Type may be taken as octets -- but not
         * for POST, the one method a page can send to another origin
         * without a preflight (ACCESS). */
        const char *ct = conn_header(conn, MHD_HTTP_HEADER_CONTENT_TYPE);
        const char *types = h->cfg.body_types ? h->cfg.body_types : HTTPD_DEFAULT_BODY_TYPES;
        bool ok = ct != NULL ? bc_auth_media_type_in(ct, types)
                             : strcmp(method, "POST") != 0 &&
                               bc_auth_media_type_in("application/octet-stream", types);
        if (!ok) {
            *result = httpd_conn_error(conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, NULL,
                                       "a request body must be of type %s", types);
            return true;
        }
    }
    int64_t now = bc_time_mono_us();
    httpd_set_deadline(conn, now + (int64_t)h->cfg.request_timeout_s * 1000000 +
                                 (int64_t)(len / HTTPD_BODY_MIN_RATE) * 1000000);
    return false;
}

static enum MHD_Result
httpd_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
             const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    bc_httpd_t *h = cls;
    httpd_request_t *req = *con_cls;
    (void)version;
    if (req == NULL) return MHD_NO;
    const char *target = req->uri != NULL ? req->uri : url;
    const char *qmark = strchr(target, '?');
    size_t path_len = qmark != NULL ? (size_t)(qmark - target) : strlen(target);
    const bc_http_route_t *route = httpd_route(h, target, path_len);
    enum MHD_Result result;

    if (!req->headers_done) {
        /*
         * Headers only.  When a body is announced, reject what we can now,
         * before reading it (MHD then closes the connection instead of
         * draining the body).  Without a body, answer in the last call so
         * that the connection stays reusable.
         */
        req->headers_done = true;
        req->keep_body = h->cfg.body_methods == NULL || method_in(h->cfg.body_methods, method);
        bool has_body = request_has_body(conn);
        const char *why = NULL;
        unsigned deny = httpd_access(h, req, conn, method, target, path_len, &why);
        if (deny != 0) {
            if (has_body) return httpd_deny(h, conn, deny, why);
            req->deny_status = deny;
            req->deny_why = why;
            return MHD_YES;
        }
        if (has_body) {
            if (httpd_check_body(h, conn, route, method, &result)) return result;
        } else {
            httpd_set_deadline(conn, 0);
        }
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        if (req->keep_body) body_append(h, req, upload_data, *upload_data_size);
        *upload_data_size = 0; /* consumed, or discarded */
        return MHD_YES;
    }
    httpd_set_deadline(conn, 0);   /* the request is in: a handler runs, a reply goes */
    if (req->deny_status != 0) return httpd_deny(h, conn, req->deny_status, req->deny_why);
    if (httpd_reject(conn, route, method, &result)) return result;
    if (req->body_too_large) {
        return httpd_conn_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
                                "request body larger than %zu bytes", h->cfg.max_body);
    }

    char *path = strndup(target, path_len);
    char *query = qmark != NULL ? strdup(qmark + 1) : NULL;
    if (path == NULL || (qmark != NULL && query == NULL)) {
        free(path);
        free(query);
        return MHD_NO;
    }
    size_t prefix = strlen(route->path);
    if (prefix > 0 && route->path[prefix - 1] == '*') prefix--;
    else prefix = path_len;
    bc_http_req_t hr = {
        .conn = conn, .method = method, .path = path, .path_len = path_len,
        .rest = path + prefix, .rest_len = path_len - prefix, .query = query,
        .body = req->body, .body_len = req->body_len,
        .httpd = h, .parked_us = req->parked_us, .authenticated = req->authenticated,
    };
    pthread_mutex_lock(&h->park_mu);
    hr.wake_gen = h->wake_gen;
    pthread_mutex_unlock(&h->park_mu);
    memcpy(hr.park_state, req->park_state, sizeof(hr.park_state));
    result = route->handler(h->cfg.ctx, &hr);
    if (hr.parked_us != 0 && req->parked_us == 0) req->parked_us = hr.parked_us;
    memcpy(req->park_state, hr.park_state, sizeof(req->park_state));
    free(path);
    free(query);
    return result;
}

static void *
httpd_uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    httpd_request_t *req = calloc(1, sizeof(*req));
    if (req == NULL) return NULL;
    req->uri = strdup(uri != NULL ? uri : "/");
    if (req->uri == NULL) {
        free(req);
        return NULL;
    }
    return req;
}

static void
httpd_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                enum MHD_RequestTerminationCode toe)
{
    bc_httpd_t *h = cls;
    (void)toe;
    /* Kept alive: the next request's head has the same time to arrive. */
    httpd_set_deadline(conn, bc_time_mono_us() + (int64_t)h->cfg.request_timeout_s * 1000000);
    httpd_request_t *req = *con_cls;
    if (req == NULL) return;
    free(req->uri);
    free(req->body);
    free(req);
    *con_cls = NULL;
}

static void
httpd_log(void *cls, const char *fmt, va_list ap)
{
    bc_httpd_t *h = cls;
    char line[512];
    if (bc__log_level < BC_LOG_WARN) return;
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    /* HTTPS: a client that is not TLS (plain HTTP, a TCP health probe) or
     * stops half-way fails its handshake; that is the client's problem,
     * said plainly and not as a warning about the server. */
    if (h->tls && strcasestr(line, "handshake") != NULL) {
        log_info("%s https: a client's TLS handshake failed, connection closed (not a TLS "
                 "client, or it stopped half-way): %s", h->name, line);
        return;
    }
    log_warn("%s http: %s", h->name, line);
}


/* ---- connections and their deadlines ---- */

static void
httpd_notify_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode code)
{
    bc_httpd_t *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        httpd_conn_t *c = ci != NULL ? calloc(1, sizeof(*c)) : NULL;
        *socket_context = c;
        if (c == NULL) return;     /* no deadline: MHD's idle timeout still applies */
        c->fd = ci->connect_fd;
        c->h = h;
        atomic_init(&c->deadline_us,
                    bc_time_mono_us() + (int64_t)h->cfg.request_timeout_s * 1000000);
        pthread_mutex_lock(&h->conns_mu);
        c->next = h->conns;
        if (h->conns != NULL) h->conns->prev = c;
        h->conns = c;
        pthread_mutex_unlock(&h->conns_mu);
        return;
    }
    httpd_conn_t *c = *socket_context;
    if (c == NULL) return;
    pthread_mutex_lock(&h->conns_mu);
    if (c->prev != NULL) c->prev->next = c->next;
    else h->conns = c->next;
    if (c->next != NULL) c->next->prev = c->prev;
    pthread_mutex_unlock(&h->conns_mu);
    free(c);
    *socket_context = NULL;
}

/* Shuts down every connection past its deadline (see the top). */
static void
httpd_reap(bc_httpd_t *h, int64_t now)
{
    unsigned n = 0;
    pthread_mutex_lock(&h->conns_mu);
    for (httpd_conn_t *c = h->conns; c != NULL; c = c->next) {
        int64_t d = atomic_load_explicit(&c->deadline_us, memory_order_relaxed);
        if (d == 0 || d > now || c->shut) continue;
        shutdown(c->fd, SHUT_RDWR);
        c->shut = true;
        n++;
    }
    pthread_mutex_unlock(&h->conns_mu);
    if (n > 0) {
        atomic_fetch_add_explicit(&h->timeouts, n, memory_order_relaxed);
        log_debug("%s: closed %u connection%s whose request did not arrive in time", h->name, n,
                  n == 1 ? "" : "s");
    }
}

/* ---- parking ---- */

/* Parks req (see bc_http_park); false when it cannot, *stopping saying
 * whether that is because the server is going. */
static bool
httpd_park(bc_http_req_t *req, int64_t recheck_us, bool *stopping)
{
    bc_httpd_t *h = req->httpd;
    *stopping = false;
    if (h == NULL) return false;
    int64_t now = bc_time_mono_us();
    pthread_mutex_lock(&h->park_mu);
    if (h->stopping || !h->parker_started || h->nparked >= h->cfg.max_conns) {
        *stopping = h->stopping;
        pthread_mutex_unlock(&h->park_mu);
        return false;
    }
    /* A wake since the handler began: run it again at once. */
    int64_t due = h->wake_gen != req->wake_gen ? now : now + (recheck_us > 0 ? recheck_us : 0);
    h->parked[h->nparked++] = (httpd_parked_t){req->conn, due};
    /* Suspended before the parker can see it: MHD_resume_connection on a
     * connection that is not suspended yet would be lost.  MHD's own
     * locks are taken inside; ours is held only so the parker waits. */
    MHD_suspend_connection(req->conn);
    pthread_cond_signal(&h->park_cv);
    pthread_mutex_unlock(&h->park_mu);
    if (req->parked_us == 0) req->parked_us = now;
    return true;
}

enum MHD_Result
bc_http_park(bc_http_req_t *req, int64_t recheck_us)
{
    bool stopping;
    if (httpd_park(req, recheck_us, &stopping)) return MHD_YES;
    if (req->httpd == NULL) {
        return bc_http_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot wait here");
    }
    return bc_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "%s",
                               stopping ? "shutting down" : "cannot wait now; retry");
}

bool
bc_http_try_park(bc_http_req_t *req, int64_t recheck_us, enum MHD_Result *result)
{
    bool stopping;
    if (!httpd_park(req, recheck_us, &stopping)) return false;
    *result = MHD_YES;
    return true;
}

void
bc_httpd_wake(bc_httpd_t *h)
{
    if (h == NULL) return;
    pthread_mutex_lock(&h->park_mu);
    h->wake_gen++;
    int64_t now = bc_time_mono_us();
    for (size_t i = 0; i < h->nparked; i++) h->parked[i].due_us = now;
    if (h->nparked > 0) pthread_cond_signal(&h->park_cv);
    pthread_mutex_unlock(&h->park_mu);
}

static void *
httpd_parker(void *arg)
{
    bc_httpd_t *h = arg;
    struct MHD_Connection **due = calloc(h->cfg.max_conns ? h->cfg.max_conns : 1, sizeof(*due));
    pthread_mutex_lock(&h->park_mu);
    for (;;) {
        int64_t now = bc_time_mono_us(), next = INT64_MAX;
        size_t ndue = 0;
        for (size_t i = 0; i < h->nparked;) {
            if (h->parked[i].due_us <= now || h->parker_stop || due == NULL) {
                if (due != NULL) due[ndue++] = h->parked[i].conn;
                h->parked[i] = h->parked[--h->nparked];
            } else {
                if (h->parked[i].due_us < next) next = h->parked[i].due_us;
                i++;
            }
        }
        if (ndue > 0) {
            pthread_mutex_unlock(&h->park_mu);
            for (size_t i = 0; i < ndue; i++) MHD_resume_connection(due[i]);
            pthread_mutex_lock(&h->park_mu);
            continue;
        }
        if (h->parker_stop) break;
        if (now >= h->next_reap_us) {
            h->next_reap_us = now + HTTPD_REAP_INTERVAL_US;
            pthread_mutex_unlock(&h->park_mu);
            httpd_reap(h, now);
            pthread_mutex_lock(&h->park_mu);
            continue;
        }
        if (next > h->next_reap_us) next = h->next_reap_us;
        struct timespec ts = {(time_t)(next / 1000000), (long)(next % 1000000) * 1000L};
        pthread_cond_timedwait(&h->park_cv, &h->park_mu, &ts);
    }
    pthread_mutex_unlock(&h->park_mu);
    free(due);
    return NULL;
}

/* ---- lifecycle ---- */

/* Binds and listens on one port: the socket, or -1 with *err_out = errno,
 * or -2 when the listen address does not resolve (logged). */
static int
httpd_bind_port(bc_httpd_t *h, uint16_t port, int *err_out)
{
    struct addrinfo hints, *res = NULL;
    char service[8];
    int last_errno = 0;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(service, sizeof(service), "%u", port);
    int rc = getaddrinfo(h->cfg.listen_addr, service, &hints, &res);
    if (rc != 0) {
        log_error("%s: cannot resolve listen address %s: %s", h->name, h->cfg.listen_addr,
                  gai_strerror(rc));
        *err_out = EINVAL;
        return -2;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int one = 1;
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, HTTPD_BACKLOG) == 0) break;
        last_errno = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    *err_out = last_errno;
    return fd;
}

static bc_status_t
httpd_bind(bc_httpd_t *h)
{
    unsigned tries = h->cfg.port_tries > 1 && h->cfg.port != 0 ? h->cfg.port_tries : 1;
    uint16_t port = h->cfg.port;
    int fd = -1, last_errno = 0;
    for (unsigned i = 0; i < tries && (unsigned)h->cfg.port + i <= 65535u; i++) {
        port = (uint16_t)(h->cfg.port + i);
        fd = httpd_bind_port(h, port, &last_errno);
        if (fd == -2) return BC_EINVAL;
        if (fd >= 0 || last_errno != EADDRINUSE) break;
    }
    if (fd < 0) {
        if (tries > 1 && last_errno == EADDRINUSE) {
            log_error("%s: cannot listen on %s: ports %u..%u are all in use", h->name,
                      h->cfg.listen_addr, h->cfg.port, port);
        } else {
            log_error("%s: cannot listen on %s:%u: %s", h->name, h->cfg.listen_addr, port,
                      strerror(last_errno));
        }
        return BC_EIO;
    }
    if (port != h->cfg.port) {
        log_info("%s: port %u is in use; listening on %u instead", h->name, h->cfg.port, port);
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    h->port = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) h->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6) h->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        h->loopback = bc_auth_sockaddr_is_loopback((struct sockaddr *)&ss);
    }
    h->listen_fd = fd;
    return BC_OK;
}

/* ---- HTTPS identity ---- */

#define HTTPD_MAX_CHAIN 16

/* A certificate chain and its key as GnuTLS takes them. */
typedef struct httpd_identity {
    gnutls_pcert_st certs[HTTPD_MAX_CHAIN];
    unsigned ncerts;
    gnutls_privkey_t key;
    struct httpd_identity *next_retired;
} httpd_identity_t;

static void
httpd_identity_free(httpd_identity_t *id)
{
    if (id == NULL) return;
    for (unsigned i = 0; i < id->ncerts; i++) gnutls_pcert_deinit(&id->certs[i]);
    if (id->key != NULL) gnutls_privkey_deinit(id->key);
    free(id);
}

/* Parses PEM text into a new identity.  NULL with why set on error. */
static httpd_identity_t *
httpd_identity_new(const char *cert_pem, const char *key_pem, char *why, size_t whylen)
{
    httpd_identity_t *id = calloc(1, sizeof(*id));
    if (id == NULL) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    gnutls_datum_t cert = {(unsigned char *)cert_pem, (unsigned)strlen(cert_pem)};
    gnutls_datum_t key = {(unsigned char *)key_pem, (unsigned)strlen(key_pem)};
    unsigned n = HTTPD_MAX_CHAIN;
    int rc = gnutls_pcert_list_import_x509_raw(id->certs, &n, &cert, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0) {
        snprintf(why, whylen, "certificate chain: %s", gnutls_strerror(rc));
        free(id);
        return NULL;
    }
    id->ncerts = n;
    rc = gnutls_privkey_init(&id->key);
    if (rc >= 0) rc = gnutls_privkey_import_x509_raw(id->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc < 0) {
        snprintf(why, whylen, "key: %s", gnutls_strerror(rc));
        httpd_identity_free(id);
        return NULL;
    }
    return id;
}

/*
 * GnuTLS asks for the certificate of each handshake here (libmicrohttpd's
 * MHD_OPTION_HTTPS_CERT_CALLBACK, which carries no context: the server is
 * found through the connection, which libmicrohttpd sets as the session's
 * pointer, and its socket context).  The identity handed out stays valid
 * while the server lives, even if replaced meanwhile.
 */
static int
httpd_tls_cert(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
               const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
               gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    (void)req_ca_dn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    struct MHD_Connection *conn = gnutls_session_get_ptr(session);
    const union MHD_ConnectionInfo *ci =
        conn != NULL ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT) : NULL;
    httpd_conn_t *c = ci != NULL ? ci->socket_context : NULL;
    if (c == NULL) return -1;     /* no memory for its context: no handshake */
    pthread_mutex_lock(&c->h->tls_mu);
    httpd_identity_t *id = c->h->identity;
    pthread_mutex_unlock(&c->h->tls_mu);
    *pcert = id->certs;
    *pcert_length = id->ncerts;
    *pkey = id->key;
    return 0;
}

bc_status_t
bc_httpd_set_tls(bc_httpd_t *h, const char *cert_pem, const char *key_pem, char *err,
                 size_t errlen)
{
    if (!h->tls) return bc_fail(err, errlen, BC_EINVAL, "%s: not an HTTPS server", h->name);
    char why[200];
    httpd_identity_t *id = httpd_identity_new(cert_pem, key_pem, why, sizeof(why));
    if (id == NULL) return bc_fail(err, errlen, BC_EINVAL, "%s: %s", h->name, why);
    pthread_mutex_lock(&h->tls_mu);
    h->identity->next_retired = h->retired;
    h->retired = h->identity;
    h->identity = id;
    pthread_mutex_unlock(&h->tls_mu);
    return BC_OK;
}

/* Frees the identities (with the server). */
static void
httpd_free_tls(bc_httpd_t *h)
{
    httpd_identity_free(h->identity);
    while (h->retired != NULL) {
        httpd_identity_t *next = h->retired->next_retired;
        httpd_identity_free(h->retired);
        h->retired = next;
    }
    h->identity = NULL;
    if (h->tls) pthread_mutex_destroy(&h->tls_mu);
    h->tls = false;
}

bc_status_t
bc_httpd_create(const bc_httpd_config_t *config, bc_httpd_t **out)
{
    *out = NULL;
    if (config == NULL || config->listen_addr == NULL || config->listen_addr[0] == '\0' ||
        (config->nroutes > 0 && config->routes == NULL)) {
        return BC_EINVAL;
    }
    bc_httpd_t *h = calloc(1, sizeof(*h));
    if (h == NULL) return BC_ENOMEM;
    h->cfg = *config;
    h->name = strdup(config->name ? config->name : "http");
    h->listen_fd = -1;
    if (h->cfg.max_conns == 0) h->cfg.max_conns = HTTPD_DEFAULT_MAX_CONNS;
    if (h->cfg.max_conns_per_ip == 0) h->cfg.max_conns_per_ip = HTTPD_DEFAULT_PER_IP;
    if (h->cfg.request_timeout_s == 0) h->cfg.request_timeout_s = HTTPD_DEFAULT_REQUEST_S;
    pthread_mutex_init(&h->conns_mu, NULL);
    pthread_mutex_init(&h->park_mu, NULL);
    bc_time_cond_init(&h->park_cv);
    h->parked = calloc(h->cfg.max_conns, sizeof(*h->parked));
    if (h->parked == NULL) {
        pthread_mutex_destroy(&h->conns_mu);
        pthread_mutex_destroy(&h->park_mu);
        pthread_cond_destroy(&h->park_cv);
        free(h->name);
        free(h);
        return BC_ENOMEM;
    }
    if (h->cfg.timeout_s == 0) h->cfg.timeout_s = HTTPD_DEFAULT_TIMEOUT_S;
    if (h->cfg.max_body == 0) h->cfg.max_body = HTTPD_DEFAULT_MAX_BODY;
    bc_status_t st = h->name == NULL ? BC_ENOMEM : BC_OK;
    if (st == BC_OK && config->tls_cert_pem != NULL) {
        char why[200];
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES ||
            MHD_is_feature_supported(MHD_FEATURE_HTTPS_CERT_CALLBACK) != MHD_YES) {
            log_error("%s: HTTPS is needed but this libmicrohttpd (%s) was built without TLS: "
                      "install one built with GnuTLS (Debian's libmicrohttpd12 is)", h->name,
                      MHD_get_version());
            st = BC_ECONFIG;
        } else if ((h->identity = httpd_identity_new(config->tls_cert_pem,
                                                     config->tls_key_pem != NULL
                                                         ? config->tls_key_pem : "",
                                                     why, sizeof(why))) == NULL) {
            log_error("%s: HTTPS: %s", h->name, why);
            st = BC_ECONFIG;
        } else {
            h->tls = true;
            pthread_mutex_init(&h->tls_mu, NULL);
        }
    }
    h->cfg.tls_cert_pem = h->cfg.tls_key_pem = NULL; /* the copies above are used */
    if (st == BC_OK) st = httpd_bind(h);
    if (st == BC_OK && !h->loopback && h->cfg.auth == NULL && !h->cfg.insecure_no_auth) {
        log_error("%s: refusing to serve on %s:%u, beyond loopback, without an admin token: "
                  "give --auth-token-file FILE (docs/security.md), or --insecure-no-auth to "
                  "leave it open to anyone who can reach the port", h->name,
                  h->cfg.listen_addr, h->port);
        close(h->listen_fd);
        h->listen_fd = -1;
        st = BC_ECONFIG;
    }
    if (st == BC_OK && !h->loopback && h->cfg.auth == NULL) {
        log_warn("%s: INSECURE: serving on %s:%u beyond loopback WITHOUT authentication "
                 "(--insecure-no-auth): anyone who reaches the port controls it", h->name,
                 h->cfg.listen_addr, h->port);
    }
    h->cfg.listen_addr = NULL; /* borrowed only while binding */
    if (st != BC_OK) {
        pthread_mutex_destroy(&h->conns_mu);
        pthread_mutex_destroy(&h->park_mu);
        pthread_cond_destroy(&h->park_cv);
        httpd_free_tls(h);
        free(h->parked);
        free(h->name);
        free(h);
        return st;
    }
    *out = h;
    return BC_OK;
}

bc_status_t
bc_httpd_start(bc_httpd_t *h)
{
    if (h->daemon != NULL) return BC_OK;
    if (h->listen_fd < 0) return BC_EIO;
    /* HTTPS: the certificate from httpd_tls_cert (so that it can be
     * replaced); TLS 1.2 and 1.3 only. */
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)httpd_tls_cert},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"},
        {MHD_OPTION_END, 0, NULL},
    };
    bool tls = h->tls;
    h->daemon = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME |
            (tls ? MHD_USE_TLS : 0), 0, NULL,
        NULL, httpd_handle, h,
        /* The logger must come first to catch messages about the others. */
        MHD_OPTION_EXTERNAL_LOGGER, httpd_log, (void *)h,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)h->listen_fd,
        MHD_OPTION_CONNECTION_LIMIT, h->cfg.max_conns,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, h->cfg.max_conns_per_ip,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTPD_CONN_MEMORY_LIMIT,
        MHD_OPTION_CONNECTION_TIMEOUT, h->cfg.timeout_s,
        MHD_OPTION_URI_LOG_CALLBACK, httpd_uri_log, (void *)h,
        MHD_OPTION_NOTIFY_COMPLETED, httpd_completed, (void *)h,
        MHD_OPTION_NOTIFY_CONNECTION, httpd_notify_connection, (void *)h,
        MHD_OPTION_ARRAY, tls ? tls_opts : &tls_opts[2],
        MHD_OPTION_END);
    if (h->daemon == NULL) {
        log_error("%s: libmicrohttpd could not start on port %u%s", h->name, h->port,
                  tls ? " (HTTPS: see above)" : "");
        return BC_EIO;
    }
    h->listen_fd = -1; /* MHD owns it now */
    pthread_mutex_lock(&h->park_mu);
    h->stopping = false;
    h->parker_stop = false;
    h->parker_started = pthread_create(&h->parker, NULL, httpd_parker, h) == 0;
    if (!h->parker_started) log_warn("%s: no parker thread: long polls answer at once", h->name);
    pthread_mutex_unlock(&h->park_mu);
    return BC_OK;
}

uint16_t
bc_httpd_port(const bc_httpd_t *h)
{
    return h->port;
}

bool
bc_httpd_loopback(const bc_httpd_t *h)
{
    return h->loopback;
}

bool
bc_httpd_tls(const bc_httpd_t *h)
{
    return h->tls;
}

void
bc_httpd_get_stats(const bc_httpd_t *h, bc_httpd_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (h == NULL) return;
    out->unauthorized = atomic_load_explicit(&h->unauthorized, memory_order_relaxed);
    out->forbidden = atomic_load_explicit(&h->forbidden, memory_order_relaxed);
    out->timeouts = atomic_load_explicit(&h->timeouts, memory_order_relaxed);
}

void
bc_httpd_stop(bc_httpd_t *h)
{
    if (h == NULL) return;
    /* Parked requests first: each is resumed and answered 503 (MHD must
     * not be stopped with connections suspended). */
    pthread_mutex_lock(&h->park_mu);
    h->stopping = true;
    h->parker_stop = true;
    bool join = h->parker_started;
    h->parker_started = false;
    pthread_cond_signal(&h->park_cv);
    pthread_mutex_unlock(&h->park_mu);
    if (join) pthread_join(h->parker, NULL);
    if (h->daemon != NULL) {
        MHD_stop_daemon(h->daemon); /* closes the listening socket it owns */
        h->daemon = NULL;
    }
    if (h->listen_fd >= 0) {
        close(h->listen_fd);
        h->listen_fd = -1;
    }
}

void
bc_httpd_destroy(bc_httpd_t *h)
{
    if (h == NULL) return;
    bc_httpd_stop(h);
    pthread_mutex_destroy(&h->conns_mu);
    pthread_mutex_destroy(&h->park_mu);
    pthread_cond_destroy(&h->park_cv);
    httpd_free_tls(h);
    free(h->parked);
    free(h->name);
    free(h);
}
