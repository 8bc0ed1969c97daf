/*
 * bc_auth.h -- who may use a bucketcache HTTP API (the console's and the
 * nodes' admin ports): the admin token, and the browser checks that stop
 * a web page from driving an API through an operator's browser.  The
 * policy itself runs once, in bc_httpd, before any route's handler
 * (bc_httpd.h, "ACCESS"); this module holds its parts, each testable
 * alone.
 *
 * THE ADMIN TOKEN
 *   A bearer token (RFC 6750) read from a token file (bc_secret.h: one
 *   or more values; the first is the one this process sends to other
 *   processes of the cluster, every value is accepted).  A request proves
 *   it with "Authorization: Bearer <token>".  The comparison is constant
 *   time: SHA-256 of what was presented against SHA-256 of each accepted
 *   token, with CRYPTO_memcmp (OpenSSL's, written so that a compiler
 *   cannot turn it into an early-exit loop, which a hand-written loop
 *   does not guarantee), so neither the token's content nor its length
 *   leaks through timing.  bc_auth_reload re-reads the file (SIGHUP): a
 *   token removed from it stops working at once.
 *
 * THE BROWSER CHECKS
 *   - bc_auth_cross_site: a mutating request a browser sends on behalf
 *     of another site carries Sec-Fetch-Site: cross-site / same-site, or
 *     an Origin that is not the Host it is sent to.  Either is refused.
 *     A request without both headers is not from a browser (curl, the
 *     CLI, the console): no opinion.
 *   - bc_auth_media_type_in: a mutating request with a body must name a
 *     Content-Type the API reads (application/json): the three types a
 *     page may POST across origins without a CORS preflight
 *     (text/plain, application/x-www-form-urlencoded, multipart/form-data)
 *     are thereby refused.
 *   - bc_auth_host_is_loopback: an API bound to loopback answers
 *     unauthenticated requests only when they name a loopback Host, which
 *     stops DNS rebinding (a page whose own name was re-pointed at
 *     127.0.0.1 sends its own name as Host).
 */
#ifndef BC_AUTH_H
#define BC_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "bc_status.h"

typedef struct bc_auth bc_auth_t;

/*
 * Loads the token file at path (bc_secret_rules_token).  *out is owned by
 * the caller (bc_auth_free).  Errors: those of bc_secret_load, with err
 * naming the file and the problem.
 */
bc_status_t bc_auth_open(const char *path, bc_auth_t **out, char *err, size_t errlen);

/* The same from a string (the CLI's $BUCKETCACHE_TOKEN); name is what
 * messages call it.  bc_auth_reload then keeps it as it is. */
bc_status_t bc_auth_from_text(const char *name, const char *text, bc_auth_t **out, char *err,
                              size_t errlen);

/*
 * Re-reads the file.  On failure the tokens in force stay (a broken edit
 * does not lock everyone out) and err says why.  Thread-safe against
 * checks running meanwhile.  Errors: those of bc_secret_load.
 */
bc_status_t bc_auth_reload(bc_auth_t *auth, char *err, size_t errlen);

/* Frees (wiping the tokens).  NULL is accepted. */
void bc_auth_free(bc_auth_t *auth);

/* Where the tokens came from (file path, or the name given). */
const char *bc_auth_source(const bc_auth_t *auth);

/*
 * Copies the current token -- the first of the file, the one this
 * process presents -- into buf.  false when buf is too small.
 */
bool bc_auth_current(bc_auth_t *auth, char *buf, size_t buflen);

typedef enum bc_auth_result {
    BC_AUTH_OK = 0,       /* a token in force was presented */
    BC_AUTH_MISSING,      /* no Authorization header */
    BC_AUTH_MALFORMED,    /* not "Bearer <token68>" */
    BC_AUTH_WRONG,        /* well-formed, but no token in force */
} bc_auth_result_t;

/* Checks an Authorization header value (NULL: absent).  Thread-safe. */
bc_auth_result_t bc_auth_check(bc_auth_t *auth, const char *authorization);

/* A phrase for a result, for a 401's JSON error. */
const char *bc_auth_result_str(bc_auth_result_t r);

/*
 * Parses an Authorization header value h[0..len): the scheme "Bearer"
 * (any case), one or more spaces, a token68 (RFC 7235), optional
 * trailing spaces or tabs.  On true, *token and *token_len point into h.
 */
bool bc_auth_parse_bearer(const char *h, size_t len, const char **token, size_t *token_len);

/*
 * NULL when a mutating request may go on as far as the browser headers
 * tell (any may be NULL: absent); otherwise a short reason for a 403
 * ("cross-site request (Sec-Fetch-Site: cross-site)").
 */
const char *bc_auth_cross_site(const char *sec_fetch_site, const char *origin, const char *host);

/* true when host (a Host header value; NULL: absent) names loopback:
 * localhost, *.localhost, 127.0.0.0/8, [::1], with or without a port.
 * An absent Host (HTTP/1.0) is accepted: browsers always send one. */
bool bc_auth_host_is_loopback(const char *host);

/* true when the media type of content_type (before any ';', case
 * insensitive) is one of allowed ("application/json, application/octet-stream"). */
bool bc_auth_media_type_in(const char *content_type, const char *allowed);

/* true for 127.0.0.0/8, ::1 and IPv4-mapped 127.x addresses. */
bool bc_auth_sockaddr_is_loopback(const struct sockaddr *sa);

#endif
