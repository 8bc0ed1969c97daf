/*
 * bc_httpd.h -- the admin HTTP server every bucketcache process embeds
 * (libmicrohttpd on its own thread), with routing, bounded bodies and JSON
 * error replies done once.
 *
 * HOW
 *   The listening socket is bound in bc_httpd_create() so a port conflict
 *   is reported before anything starts.  A request is matched against a
 *   route table (exact paths, or prefixes ending in '*'); unknown paths get
 *   404 and wrong methods 405 with an Allow header, both as
 *   {"error": "..."}.  Bodies are collected up to max_body (413 beyond,
 *   refused from Content-Length before reading when possible); the handler
 *   runs once, with the whole request.  Paths and queries are handed over
 *   raw (as received, not percent-decoded), so a handler can decode keys
 *   binary-safely with bc_http_percent_decode().
 *
 *   The server may name the methods whose bodies handlers read
 *   (body_methods); bodies sent with other methods are discarded as they
 *   arrive, never buffered.
 *   Extra response headers are queued on the request with
 *   bc_http_add_header() and sent with whichever reply follows; a reply can
 *   also send a caller's buffer without copying it (bc_http_reply_buffer).
 *
 *   Connections, per-connection memory and idle time are bounded by MHD
 *   options, so a hostile client cannot grow the process.
 *
 *   HTTPS when the config gives a certificate and key (tls_cert_pem):
 *   libmicrohttpd's TLS, which Debian's build does with GnuTLS, TLS 1.2
 *   or later.  It serves HTTPS only: a plain HTTP request on that port
 *   fails its handshake and the connection is closed (logged; the
 *   server goes on), as does a handshake that stops half-way
 *   (within the request head deadline below).  The certificate can be
 *   renewed while serving (bc_httpd_set_tls).  Client certificates are
 *   not asked for: whoever calls proves itself as over plain HTTP
 *   (ACCESS, and the cluster secret on the peer endpoints).
 *
 * ACCESS (docs/security.md; the parts in bc_auth.h)
 *   Decided once, here, from the request's headers, before a route's
 *   handler runs or its body is read, in this order:
 *
 *     1. the admin token: with a token configured (config.auth), every
 *        MUTATING request (any method but GET/HEAD, and GETs of
 *        private_paths, which have side effects) needs
 *        "Authorization: Bearer <token>"; a server bound beyond loopback
 *        needs it for EVERY request but those of public_paths (/health,
 *        which load balancers probe).  Without it: 401 with
 *        WWW-Authenticate: Bearer and a JSON error.  A server bound
 *        beyond loopback without a token refuses to start unless
 *        insecure_no_auth says that is meant.
 *     2. DNS rebinding: a server bound to loopback answers a request
 *        that did not authenticate only if its Host names loopback (403).
 *     3. cross-origin: a mutating request that a browser sent for another
 *        origin (Sec-Fetch-Site, Origin) is refused (403), token or not.
 *     4. bodies: a mutating request with a body must declare one of
 *        body_types (415), with a Content-Length (chunked: 411), no
 *        larger than max_body (413) -- all answered at once.
 *
 *   req->authenticated tells a handler whether a valid token came with
 *   the request (/health shows details only then, when a token exists).
 *
 * SLOW AND IDLE CLIENTS
 *   Each connection has a deadline while a request is being received:
 *   its head (request line and headers) must arrive within
 *   request_timeout_s of the connection opening or of the previous
 *   reply, and a body at no less than 1 KiB/s after that; a connection
 *   past its deadline is shut down (a trickling client resets MHD's idle
 *   timeout with every byte, not this).  Connections per peer address
 *   are capped (max_conns_per_ip), so that one address cannot take every
 *   slot, and max_conns is large (2048 by default) because MHD's epoll
 *   loop serves idle connections for next to nothing: /health keeps
 *   answering while a thousand connections are held.
 *
 *   Handlers run on MHD's one thread, so a handler must never block.  One
 *   that has to wait for something (a long poll) PARKS its request instead
 *   (bc_http_park): MHD stops serving that connection, and the route's
 *   handler runs again with the same request when bc_httpd_wake() is
 *   called (any thread) or after a recheck interval, whichever comes
 *   first.  The handler decides each time whether to answer or to park
 *   again; req->parked_us tells it when it was first parked.  A parked
 *   request holds no thread; parked connections count against max_conns.
 */
#ifndef BC_HTTPD_H
#define BC_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "bc_auth.h"
#include "bc_status.h"

typedef struct bc_httpd bc_httpd_t;

/* Extra headers one reply may carry (bc_http_add_header). */
#define BC_HTTP_MAX_HEADERS 8

typedef struct bc_http_header {
    const char *name;              /* borrowed */
    const char *value;             /* borrowed */
} bc_http_header_t;

typedef struct bc_http_req {
    struct MHD_Connection *conn;
    const char *method;
    const char *path;              /* raw path, NUL-terminated */
    size_t path_len;
    const char *rest;              /* for prefix routes: what follows the prefix */
    size_t rest_len;
    char *query;                   /* raw query after '?', or NULL; the handler may modify it */
    const char *body;              /* NULL when empty */
    size_t body_len;
    /* Headers for the next reply; use bc_http_add_header(). */
    bc_http_header_t headers[BC_HTTP_MAX_HEADERS];
    size_t nheaders;
    /* Parking (bc_http_park): the server, and the CLOCK_MONOTONIC
     * microsecond at which this request was first parked (0: never). */
    struct bc_httpd *httpd;
    int64_t parked_us;
    /* What a handler that parks keeps for its next run of the same
     * request (all zero on the first run): e.g. that it already did its
     * work and only waits to answer. */
    uint64_t park_state[4];
    uint64_t wake_gen;             /* internal: bc_httpd_wake calls seen when the handler began */
    bool authenticated;            /* a valid admin token came with it (ACCESS) */
} bc_http_req_t;

typedef enum MHD_Result (*bc_http_handler_fn)(void *ctx, bc_http_req_t *req);

typedef struct bc_http_route {
    const char *path;              /* "/health", or a prefix ending in a star */
    /* Allowed, comma-separated, spaces optional: "GET", "GET, PUT, DELETE".
     * HEAD is implied by GET.  A 405 lists them in its Allow header. */
    const char *methods;
    bc_http_handler_fn handler;
} bc_http_route_t;

typedef struct bc_httpd_config {
    const char *name;              /* for log lines: "admin", "console api" */
    const char *listen_addr;       /* host or address literal */
    uint16_t port;                 /* 0 = any free port */
    /* Ports tried from port upwards while they are in use (EADDRINUSE):
     * 0 or 1 = port only.  bc_httpd_port() says which one was bound. */
    unsigned port_tries;
    unsigned max_conns;            /* 0 = 2048 */
    unsigned timeout_s;            /* idle connection timeout; 0 = 30 */
    size_t max_body;               /* largest request body; 0 = 64 KiB */
    /* Methods whose request body is collected (bounded by max_body, 413
     * beyond), comma-separated as in a route; the bodies of other methods
     * are discarded unread.  NULL = every method's. */
    const char *body_methods;      /* borrowed; must outlive the server */
    const bc_http_route_t *routes; /* borrowed; must outlive the server */
    size_t nroutes;
    void *ctx;                     /* passed to every handler */

    /* ---- access and slow clients (ACCESS, SLOW AND IDLE CLIENTS) ---- */
    bc_auth_t *auth;               /* borrowed, must outlive the server; NULL: no token */
    bool insecure_no_auth;         /* serve beyond loopback without a token, on purpose */
    const char *public_paths;      /* paths anyone may GET, "/health, /"; borrowed */
    const char *private_paths;     /* GET paths that need the token all the same (side
                                    * effects); a trailing '*' is a prefix; borrowed */
    const char *body_types;        /* Content-Types a body may have; NULL: application/json */
    unsigned max_conns_per_ip;     /* 0 = 256 */
    unsigned request_timeout_s;    /* a request head's deadline; 0 = 10 */

    /* ---- HTTPS (HOW) ---- */
    const char *tls_cert_pem;      /* PEM chain, the server's certificate first; NULL: plain
                                    * HTTP.  Read by bc_httpd_create, not kept. */
    const char *tls_key_pem;       /* PEM key of tls_cert_pem; read, not kept */
} bc_httpd_config_t;

/*
 * Binds the listening socket (port, or with port_tries the first free of
 * port..port+port_tries-1; a move is logged).  *out is owned by the caller
 * (bc_httpd_destroy).  Errors: BC_EINVAL (bad address), BC_EIO (bind or
 * listen failed; logged with the reason), BC_ECONFIG (bound beyond
 * loopback with neither auth nor insecure_no_auth; or HTTPS asked of a
 * libmicrohttpd built without TLS, or a certificate or key GnuTLS cannot
 * use; logged), BC_ENOMEM.
 */
bc_status_t bc_httpd_create(const bc_httpd_config_t *config, bc_httpd_t **out);
/* Starts serving on MHD's own thread.  Errors: BC_EIO (also after a stop:
 * the listening socket is gone with the daemon). */
bc_status_t bc_httpd_start(bc_httpd_t *httpd);
uint16_t bc_httpd_port(const bc_httpd_t *httpd);
/* true when the listening address is loopback (127.0.0.0/8, ::1). */
bool bc_httpd_loopback(const bc_httpd_t *httpd);
/* true when it serves HTTPS (tls_cert_pem). */
bool bc_httpd_tls(const bc_httpd_t *httpd);
/*
 * Puts another certificate chain and key (PEM text, not kept) in force for
 * the handshakes that follow (a certificate renewed); connections already
 * open keep theirs.  Any thread.  Errors: BC_EINVAL (not an HTTPS server,
 * or GnuTLS cannot use them: err says why; the ones in force stay).
 */
bc_status_t bc_httpd_set_tls(bc_httpd_t *httpd, const char *cert_pem, const char *key_pem,
                             char *err, size_t errlen);

/* What the access checks and deadlines refused (bc_httpd_get_stats). */
typedef struct bc_httpd_stats {
    uint64_t unauthorized;         /* 401 */
    uint64_t forbidden;            /* 403: cross-origin, foreign Host */
    uint64_t timeouts;             /* connections shut down past their deadline */
} bc_httpd_stats_t;
void bc_httpd_get_stats(const bc_httpd_t *httpd, bc_httpd_stats_t *out);
/* Stops serving, waiting for running handlers; closes the listening
 * socket.  Idempotent; NULL is accepted. */
void bc_httpd_stop(bc_httpd_t *httpd);
/* Stops (as bc_httpd_stop) and frees.  NULL is accepted. */
void bc_httpd_destroy(bc_httpd_t *httpd);

/* ---- replies (each returns what the handler returns) ---- */

/*
 * Queues a header for the reply the handler sends next (any of the
 * bc_http_reply_* functions, which copy it).  name and value are borrowed
 * until then.  Errors: BC_EINVAL (NULL, empty name, CR or LF in either),
 * BC_ENOMEM (more than BC_HTTP_MAX_HEADERS).
 */
bc_status_t bc_http_add_header(bc_http_req_t *req, const char *name, const char *value);

/* Sends doc as JSON; doc is consumed (deleted) in every case. */
enum MHD_Result bc_http_reply_json(bc_http_req_t *req, unsigned status, cJSON *doc);
/* {"error": "<formatted>"} */
enum MHD_Result bc_http_reply_error(bc_http_req_t *req, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Any bytes (copied) with a content type (NULL: no Content-Type header,
 * e.g. for 204). */
enum MHD_Result bc_http_reply_bytes(bc_http_req_t *req, unsigned status, const char *content_type,
                                    const void *data, size_t len);

typedef void (*bc_http_free_fn)(void *free_ctx);

/*
 * Sends data[0..len) WITHOUT copying it: data stays borrowed until MHD has
 * sent it (or dropped the connection), then free_fn(free_ctx) runs, on
 * MHD's thread.  free_fn (may be NULL) is called exactly once, also when
 * the reply cannot be queued, so the caller never cleans up itself.
 * content_type as bc_http_reply_bytes.
 */
enum MHD_Result bc_http_reply_buffer(bc_http_req_t *req, unsigned status,
                                     const char *content_type, const void *data, size_t len,
                                     bc_http_free_fn free_fn, void *free_ctx);

/*
 * A streamed body: bc_http_reply_stream calls read_fn(ctx, buf, max) on
 * MHD's thread whenever the connection can take more.  It returns the
 * bytes it wrote into buf (1..max), BC_HTTP_STREAM_END when the body is
 * complete, or BC_HTTP_STREAM_ERROR to abort (the connection is closed, so
 * the peer sees a truncated body).  It must not block.
 */
#define BC_HTTP_STREAM_END   (-1)
#define BC_HTTP_STREAM_ERROR (-2)
typedef ssize_t (*bc_http_read_fn)(void *ctx, char *buf, size_t max);

/*
 * Sends a body of unknown length produced by read_fn (above), in pieces
 * of at most block bytes.  To an HTTP/1.1 client it goes chunked; to an
 * HTTP/1.0 client it goes unframed and the connection closes at its end.
 * free_fn(ctx) (may be NULL) runs exactly once on MHD's thread when the
 * reply is done or dropped, also when it cannot be queued.  content_type
 * as bc_http_reply_bytes.
 */
enum MHD_Result bc_http_reply_stream(bc_http_req_t *req, unsigned status,
                                     const char *content_type, size_t block,
                                     bc_http_read_fn read_fn, void *ctx,
                                     bc_http_free_fn free_fn);

/* ---- parking (long polls) ---- */

/*
 * Parks req instead of answering: the route's handler runs again (with
 * the same method, path, query and body, and req->parked_us set) at the
 * next bc_httpd_wake() or after recheck_us microseconds, whichever comes
 * first.  A wake that happened while the handler ran counts: the request
 * is then run again at once, so a handler that checks its condition and
 * parks cannot miss the wake of a change made in between.  Returns what
 * the handler returns.  While the server stops, answers 503 instead.
 */
enum MHD_Result bc_http_park(bc_http_req_t *req, int64_t recheck_us);

/*
 * bc_http_park for a handler that must answer itself when it cannot park
 * (the server is stopping, or max_conns requests are parked already):
 * returns true when parked (*result is what the handler returns), false
 * with nothing queued.
 */
bool bc_http_try_park(bc_http_req_t *req, int64_t recheck_us, enum MHD_Result *result);

/* Runs every parked request's handler again soon.  Any thread; NULL ok. */
void bc_httpd_wake(bc_httpd_t *httpd);


/* ---- decoding ---- */

/*
 * Strict percent-decoding of s[0..n) into out (room for n bytes).  '+'
 * stays '+'.  Returns the decoded length, or -1 for a '%' not followed by
 * two hex digits.
 */
ssize_t bc_http_percent_decode(const char *s, size_t n, char *out);

typedef struct bc_http_param {
    char *name;
    char *value;
    size_t value_len;
} bc_http_param_t;

/*
 * Splits a raw query (modified in place) into decoded parameters.  Returns
 * the count, -1 on a bad escape, -2 on more than max_params.
 */
int bc_http_parse_query(char *query, bc_http_param_t *params, int max_params);

/* The value of name among params, or NULL. */
const bc_http_param_t *bc_http_param_find(const bc_http_param_t *params, int n, const char *name);

/* "1", "true", "yes" (and "" for a bare flag) are true; "0", "false", "no"
 * false; anything else an error (returns -1). */
int bc_http_param_bool(const bc_http_param_t *param);

#endif
