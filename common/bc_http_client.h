/*
 * bc_http_client.h -- a minimal blocking HTTP client for the admin ports of
 * our own processes (CLI -> console, console -> node, node -> node).
 *
 * Two ways to ask:
 *   bc_http_request    one request, the whole response buffered (capped at
 *                      BC_HTTP_CLIENT_MAX_RESPONSE): for JSON replies.
 *   bc_http_stream_*   a GET whose body is read as it arrives, in a buffer
 *                      that holds what the caller has not consumed yet: for
 *                      bodies as large as a bucket (a migration's export).
 *
 * One request per connection ("Connection: close"), deadlines on every
 * wait, and bounded buffers, so a slow or hostile peer can neither hang
 * the caller nor grow its memory.
 *
 * WHY NOT LIBCURL (which the origin fetches use, node/origin/fetch.c)
 *   The stream is pulled: the import job asks for the next bytes when it
 *   has decoded the previous ones, so the receive window of the socket
 *   (sized by the caller, rcvbuf) is the flow control of a migration, and
 *   the source's export reads the next scan step only when it drains.
 *   libcurl pushes bodies into a write callback; pulling means its
 *   pause/unpause dance around a multi handle per stream, or an unbounded
 *   buffer.  What is left is a request line, a few headers and a
 *   Content-Length or chunked body from servers of our own making, which
 *   this file parses with hard caps.
 *
 * TLS (bc_http_tls_*, docs/security.md)
 *   Plain HTTP unless the process has set a TLS context
 *   (bc_http_client_set_tls): then every request and stream made here is
 *   HTTPS.  That is the whole switch because a process of ours talks over
 *   this client to one kind of admin port: a node talks to the other
 *   nodes (migration imports, promotion checks), the console to the
 *   nodes -- and the nodes of a cluster run with -Z all or none, their
 *   admin ports serving HTTPS with it.  The server's certificate must
 *   chain to the context's CA and name the host it was reached at (its
 *   IP address or DNS name, as in the address); the client presents its
 *   own certificate only when one was given and the server asks.  A
 *   failed handshake is BC_EACCES (a certificate refused, either way) or
 *   BC_EPROTO (the server does not speak TLS), and says why in
 *   bc_http_client_tls_error().
 *
 * AUTHENTICATION
 *   Once a process has set its admin token (bc_http_client_set_auth),
 *   every request made here carries "Authorization: Bearer <token>".
 *   That is why this client is for OUR processes only: pointed at any
 *   other server it would hand that server the cluster's admin token.
 *   (An HTTP origin or any third-party service needs a client of its own.)
 *   A request with a body says Content-Type: application/json, as the
 *   admin APIs demand of bodies.
 */
#ifndef BC_HTTP_CLIENT_H
#define BC_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_status.h"

#define BC_HTTP_CLIENT_MAX_RESPONSE (16u * 1024u * 1024u)

struct bc_auth;
/*
 * Sets the admin token this process presents to the admin ports of the
 * cluster's processes (bc_auth.h: the first token of its file, re-read on
 * bc_auth_reload); NULL sends none.  auth is borrowed and must outlive
 * every request.  Thread-safe.
 */
void bc_http_client_set_auth(struct bc_auth *auth);

/* ---- TLS ---- */

typedef struct bc_http_tls bc_http_tls_t;

typedef struct bc_http_tls_config {
    const char *ca_file;           /* PEM CAs the servers' certificates must chain to; required */
    const char *cert_file;         /* PEM chain presented when a server asks; NULL: none */
    const char *key_file;          /* PEM key of cert_file; NULL: cert_file holds it */
} bc_http_tls_config_t;

/*
 * Loads a client context (TLS 1.2 or later, the server verified as above).
 * The files are read now (config is copied: bc_http_tls_reload reads them
 * again).  *out is owned by the caller (bc_http_tls_free, after the last
 * request).  Errors: BC_EINVAL with err naming the file and OpenSSL's
 * reason, BC_ENOMEM.
 */
bc_status_t bc_http_tls_open(const bc_http_tls_config_t *config, bc_http_tls_t **out,
                             char *err, size_t errlen);
/* Re-reads the files (a certificate or CA renewed) for the requests that
 * follow; any thread.  Errors as bc_http_tls_open; then the context in
 * force stays. */
bc_status_t bc_http_tls_reload(bc_http_tls_t *tls, char *err, size_t errlen);
void bc_http_tls_free(bc_http_tls_t *tls);
/*
 * Makes every later request and stream of this process HTTPS with tls
 * (borrowed: it must outlive them; NULL: plain HTTP again).  Thread-safe;
 * a request already connected keeps what it started with.
 */
void bc_http_client_set_tls(bc_http_tls_t *tls);
/* Why this thread's last handshake failed ("certificate verify failed:
 * ..."), or "" when it did not.  Borrowed, thread-local, valid until the
 * thread's next request. */
const char *bc_http_client_tls_error(void);

typedef struct bc_http_response {
    int status;                    /* 200, 404, ... */
    char *body;                    /* malloc'd, NUL-terminated (may hold NULs); caller frees */
    size_t body_len;
} bc_http_response_t;

/*
 * Sends method path to addr ("host:port" or "[v6]:port") with an optional
 * body (body may be NULL), waiting at most timeout_ms in all.  On BC_OK
 * *resp holds the status and body (bc_http_response_free); a non-2xx status
 * is still BC_OK.  Errors: BC_EINVAL (bad address), BC_EIO (cannot connect
 * or the connection broke), BC_ETIMEOUT, BC_EPROTO (not HTTP, or with TLS
 * on: not TLS), BC_EACCES (TLS: a certificate refused, TLS above),
 * BC_ETOOLARGE (response over BC_HTTP_CLIENT_MAX_RESPONSE), BC_ENOMEM.
 */
bc_status_t bc_http_request(const char *addr, const char *method, const char *path,
                            const char *body, size_t body_len, int timeout_ms,
                            bc_http_response_t *resp);
/*
 * bc_http_request with TLS as the caller says, whatever the process's
 * setting: over tls (borrowed), or plain HTTP when tls is NULL.  For a
 * process that talks to admin ports of both kinds (the CLI: the console's
 * plain, -Z nodes' HTTPS).  Errors as bc_http_request.
 */
bc_status_t bc_http_request_tls(const bc_http_tls_t *tls, const char *addr, const char *method,
                                const char *path, const char *body, size_t body_len,
                                int timeout_ms, bc_http_response_t *resp);
void bc_http_response_free(bc_http_response_t *resp);

/* ---- streaming GET ---- */

/*
 *   bc_http_stream_t s;
 *   bc_http_stream_connect(&s, addr, rcvbuf, deadline, idle_ms, why, whylen)
 *   bc_http_stream_get(&s, host, path, accept, extra)  HTTP/1.0, so a body
 *                                                  without Content-Length
 *                                                  ends at EOF
 *   bc_http_stream_head(&s, max)                   status and headers
 *   loop: bc_http_stream_data(&s, &n) ... bc_http_stream_consume(&s, used)
 *         bc_http_stream_read(&s, want, &got)      BC_ECLOSED at EOF
 *   bc_http_stream_close(&s)                       always, after connect
 *
 * Every wait ends at s.deadline (monotonic ms); with idle_ms > 0, each
 * byte received moves it to now + idle_ms, so the deadline bounds a
 * transfer that stalls, not one that is long.  A chunked body is not
 * decoded (s.chunked says one was announced).
 */

/* The read buffer's first size; it doubles as bc_http_stream_read asks. */
#define BC_HTTP_STREAM_BUF (256u * 1024u)

struct ssl_st;

typedef struct bc_http_stream {
    int fd;                        /* -1: not connected */
    struct ssl_st *ssl;            /* TLS on (bc_http_client_set_tls): the session (owned) */
    int64_t deadline;              /* monotonic ms: where the next wait ends */
    int64_t idle_ms;               /* > 0: a byte received moves the deadline this far on */
    int status;                    /* after bc_http_stream_head: 200, 404, ... */
    long long content_length;      /* after bc_http_stream_head: -1 when none was given */
    bool chunked;                  /* after bc_http_stream_head: a Transfer-Encoding was given */
    char *head;                    /* status line and headers, NUL-terminated (owned) */
    char *buf;                     /* received, not consumed: buf[start..end) (owned) */
    size_t cap, start, end;
} bc_http_stream_t;

/*
 * Connects s to addr ("host:port" or "[v6]:port"), with TLS on completing
 * the handshake too.  rcvbuf > 0 asks for a socket receive buffer that
 * large from the first byte.  Errors (reason in why, may be NULL):
 * BC_EINVAL (bad address), BC_ETIMEOUT, BC_EIO, and with TLS on BC_EACCES
 * and BC_EPROTO (TLS above).
 * Whatever the result, s may be passed to bc_http_stream_close.
 */
bc_status_t bc_http_stream_connect(bc_http_stream_t *s, const char *addr, int rcvbuf,
                                   int64_t deadline, int64_t idle_ms, char *why, size_t whylen);
/* Sends "GET path HTTP/1.0" with Host, Connection: close, Accept and the
 * header lines of extra ("Name: value\r\n" each; NULL: none), e.g. a peer
 * proof (bc_peerauth.h).  Errors: BC_EINVAL (too long), BC_ETIMEOUT,
 * BC_EIO. */
bc_status_t bc_http_stream_get(bc_http_stream_t *s, const char *host, const char *path,
                               const char *accept, const char *extra);
/*
 * Reads the status line and headers (at most max bytes of them): fills
 * status, content_length, chunked and head; what came of the body is then
 * bc_http_stream_data.  Errors: BC_ETOOLARGE (headers over max),
 * BC_ECLOSED (EOF before they ended), BC_EPROTO (not an HTTP response),
 * as bc_http_stream_read.
 */
bc_status_t bc_http_stream_head(bc_http_stream_t *s, size_t max);
/* The value of header `name` (case-insensitive; the last one when
 * repeated) after bc_http_stream_head: it runs to the end of its line
 * ("\r\n" or NUL).  NULL when absent.  Borrowed from s. */
const char *bc_http_stream_header(const bc_http_stream_t *s, const char *name);
/*
 * Waits for more bytes (room for at least `want` is made first) and
 * appends them to the buffer.  Returns BC_OK with *got > 0, BC_ECLOSED at
 * EOF, BC_ETIMEOUT (the deadline passed), BC_EIO, BC_ENOMEM.
 */
bc_status_t bc_http_stream_read(bc_http_stream_t *s, size_t want, size_t *got);

/* The bytes received and not consumed yet (*len of them). */
static inline const char *
bc_http_stream_data(const bc_http_stream_t *s, size_t *len)
{
    *len = s->end - s->start;
    return s->buf + s->start;
}

/* Marks the first n bytes of bc_http_stream_data as used. */
static inline void
bc_http_stream_consume(bc_http_stream_t *s, size_t n)
{
    s->start += n;
}

/* Closes the connection and frees the buffers.  Idempotent. */
void bc_http_stream_close(bc_http_stream_t *s);

#endif
