/*
 * bc_http_client.c -- see bc_http_client.h.  Non-blocking socket + poll(2)
 * against one deadline; the response is read to EOF (we always ask for
 * Connection: close) and then parsed: status line, headers (only
 * Content-Length and Transfer-Encoding matter), body (chunked decoded).
 * With TLS on, the same over an OpenSSL session on that socket: every
 * SSL call that would block waits in poll(2) for what it wants (read or
 * write), against the same deadline.
 */
#include "bc_http_client.h"

#include "bc_net.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>


#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bc_auth.h"
#include "bc_config.h"
#include "bc_ssl.h"
#include "bc_time.h"

/* The admin token sent to our own processes (bc_http_client_set_auth).
 * LOCKING RULE: client_auth_mu guards the pointer; the token itself is
 * copied out under bc_auth's own lock. */
static pthread_mutex_t client_auth_mu = PTHREAD_MUTEX_INITIALIZER;
static bc_auth_t *client_auth;

void
bc_http_client_set_auth(bc_auth_t *auth)
{
    pthread_mutex_lock(&client_auth_mu);
    client_auth = auth;
    pthread_mutex_unlock(&client_auth_mu);
}

/* "Authorization: Bearer <token>\r\n" into buf, or "" without a token. */
static void
client_auth_header(char *buf, size_t len)
{
    char token[300];
    buf[0] = '\0';
    pthread_mutex_lock(&client_auth_mu);
    bool have = client_auth != NULL && bc_auth_current(client_auth, token, sizeof(token));
    pthread_mutex_unlock(&client_auth_mu);
    if (have) snprintf(buf, len, "Authorization: Bearer %s\r\n", token);
    OPENSSL_cleanse(token, sizeof(token));
}

/* ---- TLS ---- */

struct bc_http_tls {
    bc_http_tls_config_t cfg;     /* strings owned: re-read by bc_http_tls_reload */
    pthread_mutex_t mu;           /* guards ctx: SSL_new and the swap, never I/O */
    SSL_CTX *ctx;
};

/* The context every request uses (bc_http_client_set_tls).
 * LOCKING RULE: client_tls_mu guards the pointer; SSL_new (under it) takes
 * its own reference to the SSL_CTX. */
static pthread_mutex_t client_tls_mu = PTHREAD_MUTEX_INITIALIZER;
static bc_http_tls_t *client_tls;

static _Thread_local char tls_error[256];

const char *
bc_http_client_tls_error(void)
{
    return tls_error;
}

/* OpenSSL's reason for the error at the front of this thread's queue
 * (cleared), or fallback. */
static const char *
tls_reason(const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r != NULL ? r : fallback;
}

/* A client context from the files of c; NULL with err set. */
static SSL_CTX *
tls_build(const bc_http_tls_config_t *c, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        bc_fail(err, errlen, BC_ENOMEM, "cannot make a TLS context: out of memory");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    bool cert = c->cert_file != NULL && c->cert_file[0] != '\0';
    const char *key = c->key_file != NULL && c->key_file[0] != '\0' ? c->key_file : c->cert_file;
    ERR_clear_error();
    if (SSL_CTX_load_verify_locations(ctx, c->ca_file, NULL) != 1) {
        bc_fail(err, errlen, BC_EINVAL, "cannot load the CA file %s: %s", c->ca_file,
                tls_reason("unreadable"));
    } else if (cert && SSL_CTX_use_certificate_chain_file(ctx, c->cert_file) != 1) {
        bc_fail(err, errlen, BC_EINVAL, "cannot load the certificate %s: %s", c->cert_file,
                tls_reason("unreadable"));
    } else if (cert && (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
                        SSL_CTX_check_private_key(ctx) != 1)) {
        bc_fail(err, errlen, BC_EINVAL, "cannot load the key %s: %s", key,
                tls_reason("unreadable"));
    } else {
        bc_ssl_cache_certs(ctx);
        return ctx;
    }
    SSL_CTX_free(ctx);
    return NULL;
}

static char *
tls_dup(const char *s)
{
    return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

bc_status_t
bc_http_tls_open(const bc_http_tls_config_t *config, bc_http_tls_t **out, char *err,
                 size_t errlen)
{
    *out = NULL;
    if (config == NULL || config->ca_file == NULL || config->ca_file[0] == '\0') {
        return bc_fail(err, errlen, BC_EINVAL, "a CA file is needed to verify servers");
    }
    bc_http_tls_t *tls = calloc(1, sizeof(*tls));
    if (tls == NULL) return BC_ENOMEM;
    pthread_mutex_init(&tls->mu, NULL);
    tls->cfg.ca_file = tls_dup(config->ca_file);
    tls->cfg.cert_file = tls_dup(config->cert_file);
    tls->cfg.key_file = tls_dup(config->key_file);
    if (tls->cfg.ca_file == NULL || (config->cert_file != NULL && config->cert_file[0] != '\0' &&
                                     tls->cfg.cert_file == NULL) ||
        (config->key_file != NULL && config->key_file[0] != '\0' && tls->cfg.key_file == NULL)) {
        bc_http_tls_free(tls);
        return BC_ENOMEM;
    }
    tls->ctx = tls_build(&tls->cfg, err, errlen);
    if (tls->ctx == NULL) {
        bc_http_tls_free(tls);
        return BC_EINVAL;
    }
    *out = tls;
    return BC_OK;
}

bc_status_t
bc_http_tls_reload(bc_http_tls_t *tls, char *err, size_t errlen)
{
    SSL_CTX *ctx = tls_build(&tls->cfg, err, errlen);
    if (ctx == NULL) return BC_EINVAL;
    pthread_mutex_lock(&tls->mu);
    SSL_CTX *old = tls->ctx;
    tls->ctx = ctx;
    pthread_mutex_unlock(&tls->mu);
    SSL_CTX_free(old);    /* sessions made from it hold their own reference */
    return BC_OK;
}

/* A session from the context in force. */
static SSL *
tls_new_ssl(const bc_http_tls_t *tls)
{
    bc_http_tls_t *t = (bc_http_tls_t *)tls;   /* the lock only */
    pthread_mutex_lock(&t->mu);
    SSL *ssl = SSL_new(t->ctx);
    pthread_mutex_unlock(&t->mu);
    return ssl;
}

void
bc_http_tls_free(bc_http_tls_t *tls)
{
    if (tls == NULL) return;
    SSL_CTX_free(tls->ctx);
    pthread_mutex_destroy(&tls->mu);
    free((char *)tls->cfg.ca_file);
    free((char *)tls->cfg.cert_file);
    free((char *)tls->cfg.key_file);
    free(tls);
}

void
bc_http_client_set_tls(bc_http_tls_t *tls)
{
    pthread_mutex_lock(&client_tls_mu);
    client_tls = tls;
    pthread_mutex_unlock(&client_tls_mu);
}

/* Waits until the socket is ready for what the SSL call that returned ret
 * wants.  BC_OK: call again.  BC_EIO: it wants nothing a wait can give (an
 * error; the caller describes it), BC_ETIMEOUT. */
static bc_status_t
tls_wait(SSL *ssl, int ret, int64_t deadline)
{
    int e = SSL_get_error(ssl, ret);
    short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (ev == 0) return BC_EIO;
    struct pollfd p = {SSL_get_fd(ssl), ev, 0};
    int rc = poll(&p, 1, bc_net_remaining_ms(deadline));
    if (rc == 0) return BC_ETIMEOUT;
    if (rc < 0 && errno != EINTR) return BC_EIO;
    return BC_OK;
}

/* Stands for "the process's context" (bc_http_client_set_tls) in
 * tls_start's argument; never used as a context itself. */
static const bc_http_tls_t tls_process_marker;
#define TLS_PROCESS (&tls_process_marker)

/*
 * With TLS on (tls, or the process's context when tls is TLS_PROCESS),
 * makes *ssl a session on connected fd toward host (whose certificate
 * must name it) and completes the handshake by deadline; with TLS off,
 * *ssl = NULL and BC_OK.  *ssl is owned by the caller (SSL_free) also on
 * error.  Errors as TLS in the header, why in tls_error.
 */
static bc_status_t
tls_start(const bc_http_tls_t *tls, int fd, const char *host, int64_t deadline, SSL **ssl)
{
    tls_error[0] = '\0';
    *ssl = NULL;
    bool on;
    if (tls == TLS_PROCESS) {
        pthread_mutex_lock(&client_tls_mu);
        if (client_tls != NULL) *ssl = tls_new_ssl(client_tls);
        on = client_tls != NULL;
        pthread_mutex_unlock(&client_tls_mu);
    } else {
        on = tls != NULL;
        if (on) *ssl = tls_new_ssl(tls);
    }
    if (!on) return BC_OK;
    if (*ssl == NULL || SSL_set_fd(*ssl, fd) != 1) {
        snprintf(tls_error, sizeof(tls_error), "cannot make a TLS session: %s",
                 tls_reason("out of memory"));
        return BC_ENOMEM;
    }
    /* BEHAVIOR: the certificate must name the host as it was addressed,
     * on top of chaining to the CA (bc_ssl_expect_host). */
    if (!bc_ssl_expect_host(*ssl, host, true)) {
        snprintf(tls_error, sizeof(tls_error), "cannot check the server's name \"%.100s\"", host);
        return BC_EINVAL;
    }
    for (;;) {
        ERR_clear_error();
        int ret = SSL_connect(*ssl);
        if (ret == 1) return BC_OK;
        bc_status_t st = tls_wait(*ssl, ret, deadline);
        if (st == BC_OK) continue;
        if (st == BC_ETIMEOUT) {
            snprintf(tls_error, sizeof(tls_error), "TLS handshake timed out");
            return BC_ETIMEOUT;
        }
        char why[200];
        st = bc_ssl_describe_error(*ssl, ret, "the server closed the connection during the "
                                   "TLS handshake", why, sizeof(why));
        if (st == BC_EPROTO || (st == BC_EACCES && strncmp(why, "certificate verify", 18) != 0)) {
            snprintf(tls_error, sizeof(tls_error), "TLS handshake failed: %s", why);
        } else {
            snprintf(tls_error, sizeof(tls_error), "%s", why);
        }
        return st;
    }
}

/* Sends all of buf over the connection (TLS when ssl). */
static bc_status_t
conn_send(int fd, SSL *ssl, const void *buf, size_t len, int64_t deadline)
{
    if (ssl == NULL) return bc_net_send_all(fd, buf, len, deadline);
    const char *p = buf;
    while (len > 0) {
        ERR_clear_error();
        int ret = SSL_write(ssl, p, len > (1u << 30) ? (int)(1u << 30) : (int)len);
        if (ret > 0) {
            p += ret;
            len -= (size_t)ret;
            continue;
        }
        bc_status_t st = tls_wait(ssl, ret, deadline);
        if (st != BC_OK) {
            ERR_clear_error();
            return st;
        }
    }
    return BC_OK;
}

/*
 * Receives what is there (up to len) into buf, waiting for it until
 * deadline.  BC_OK with *got > 0, BC_ECLOSED at the end of the stream,
 * BC_ETIMEOUT, BC_EIO.  With TLS, the end is the server's close_notify
 * (libmicrohttpd sends one): a connection that just stops is BC_EIO, so
 * a body ended by EOF (an HTTP/1.0 export) cannot be cut short unseen.
 */
static bc_status_t
conn_recv(int fd, SSL *ssl, void *buf, size_t len, int64_t deadline, size_t *got)
{
    for (;;) {
        if (ssl != NULL) {
            ERR_clear_error();
            int ret = SSL_read(ssl, buf, len > (1u << 30) ? (int)(1u << 30) : (int)len);
            if (ret > 0) {
                *got = (size_t)ret;
                return BC_OK;
            }
            if (SSL_get_error(ssl, ret) == SSL_ERROR_ZERO_RETURN) return BC_ECLOSED;
            bc_status_t st = tls_wait(ssl, ret, deadline);
            if (st != BC_OK) {
                ERR_clear_error();
                return st;
            }
            continue;
        }
        ssize_t n = recv(fd, buf, len, 0);
        if (n > 0) {
            *got = (size_t)n;
            return BC_OK;
        }
        if (n == 0) return BC_ECLOSED;
        if (errno != EAGAIN && errno != EINTR) return BC_EIO;
        struct pollfd p = {fd, POLLIN, 0};
        int rc = poll(&p, 1, bc_net_remaining_ms(deadline));
        if (rc == 0) return BC_ETIMEOUT;
        if (rc < 0 && errno != EINTR) return BC_EIO;
    }
}

/* Closes the connection: a TLS close_notify first when it can go at once. */
static void
conn_close(int fd, SSL *ssl)
{
    if (ssl != NULL) {
        (void)SSL_shutdown(ssl);
        ERR_clear_error();
        SSL_free(ssl);
    }
    if (fd >= 0) close(fd);
}

/* "host:port" for a Host header, with an IPv6 literal in brackets. */
static void
client_host_header(const bc_hostport_t *hp, char *buf, size_t len)
{
    snprintf(buf, len, strchr(hp->host, ':') != NULL ? "[%s]:%u" : "%s:%u", hp->host, hp->port);
}

/* Decodes a chunked body in place; returns the decoded length or -1. */
static long
http_dechunk(char *buf, size_t len)
{
    size_t in = 0, out = 0;
    for (;;) {
        char *end;
        if (in >= len) return -1;
        unsigned long size = strtoul(buf + in, &end, 16);
        char *crlf = memmem(buf + in, len - in, "\r\n", 2);
        if (crlf == NULL || end == buf + in) return -1;
        in = (size_t)(crlf - buf) + 2;
        if (size == 0) return (long)out;
        if (size > len - in) return -1;
        memmove(buf + out, buf + in, size);
        out += size;
        in += size + 2;
    }
}

static bc_status_t
http_request(const bc_http_tls_t *tls, const char *addr, const char *method, const char *path,
             const char *body, size_t body_len, int timeout_ms, bc_http_response_t *resp);

bc_status_t
bc_http_request(const char *addr, const char *method, const char *path, const char *body,
                size_t body_len, int timeout_ms, bc_http_response_t *resp)
{
    return http_request(TLS_PROCESS, addr, method, path, body, body_len, timeout_ms, resp);
}

bc_status_t
bc_http_request_tls(const bc_http_tls_t *tls, const char *addr, const char *method,
                    const char *path, const char *body, size_t body_len, int timeout_ms,
                    bc_http_response_t *resp)
{
    return http_request(tls, addr, method, path, body, body_len, timeout_ms, resp);
}

static bc_status_t
http_request(const bc_http_tls_t *tls, const char *addr, const char *method, const char *path,
             const char *body, size_t body_len, int timeout_ms, bc_http_response_t *resp)
{
    bc_hostport_t hp;
    memset(resp, 0, sizeof(*resp));
    if (addr == NULL || bc_parse_hostport(addr, 0, &hp) != BC_OK) return BC_EINVAL;
    long long deadline = bc_time_mono_ms() + timeout_ms;
    int fd;
    bc_status_t st = bc_net_connect(&hp, bc_net_remaining_ms(deadline), 0, &fd, NULL, 0);
    if (st != BC_OK) return st;
    SSL *ssl;
    st = tls_start(tls, fd, hp.host, deadline, &ssl);
    if (st != BC_OK) {
        conn_close(fd, ssl);
        return st;
    }

    char head[3072], host[BC_HOST_MAX + 16], authz[400];
    client_host_header(&hp, host, sizeof(host));
    client_auth_header(authz, sizeof(authz));
    int hn = snprintf(head, sizeof(head),
                      "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s%s"
                      "Content-Length: %zu\r\nAccept: application/json\r\n\r\n",
                      method, path, host, authz,
                      body != NULL ? "Content-Type: application/json\r\n" : "",
                      body ? body_len : 0);
    OPENSSL_cleanse(authz, sizeof(authz));
    if (hn < 0 || (size_t)hn >= sizeof(head)) {
        OPENSSL_cleanse(head, sizeof(head));
        conn_close(fd, ssl);
        return BC_EINVAL;
    }
    st = conn_send(fd, ssl, head, (size_t)hn, deadline);
    OPENSSL_cleanse(head, sizeof(head));
    if (st == BC_OK && body != NULL && body_len > 0) {
        st = conn_send(fd, ssl, body, body_len, deadline);
    }

    size_t cap = 8192, len = 0;
    char *buf = st == BC_OK ? malloc(cap + 1) : NULL;
    if (st == BC_OK && buf == NULL) st = BC_ENOMEM;
    while (st == BC_OK) {
        if (len == cap) {
            if (cap >= BC_HTTP_CLIENT_MAX_RESPONSE) {
                st = BC_ETOOLARGE;
                break;
            }
            cap *= 2;
            char *grown = realloc(buf, cap + 1);
            if (grown == NULL) {
                st = BC_ENOMEM;
                break;
            }
            buf = grown;
        }
        size_t n;
        st = conn_recv(fd, ssl, buf + len, cap - len, deadline, &n);
        if (st == BC_OK) len += n;
    }
    if (st == BC_ECLOSED) st = BC_OK;
    conn_close(fd, ssl);
    if (st != BC_OK) {
        free(buf);
        return st;
    }
    buf[len] = '\0';

    int status;
    char *hdr_end = memmem(buf, len, "\r\n\r\n", 4);
    if (hdr_end == NULL || sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || status < 100 || status > 999) {
        free(buf);
        return BC_EPROTO;
    }
    *hdr_end = '\0';
    bool chunked = false;
    for (char *line = strstr(buf, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "Transfer-Encoding:", 18) == 0 && strcasestr(line + 2, "chunked")) {
            chunked = true;
        }
    }
    size_t off = (size_t)(hdr_end - buf) + 4;
    size_t blen = len - off;
    memmove(buf, buf + off, blen);
    if (chunked) {
        long n = http_dechunk(buf, blen);
        if (n < 0) {
            free(buf);
            return BC_EPROTO;
        }
        blen = (size_t)n;
    }
    buf[blen] = '\0';
    resp->status = status;
    resp->body = buf;
    resp->body_len = blen;
    return BC_OK;
}

void
bc_http_response_free(bc_http_response_t *resp)
{
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}

/* ---- streaming GET ---- */

bc_status_t
bc_http_stream_connect(bc_http_stream_t *s, const char *addr, int rcvbuf, int64_t deadline,
                       int64_t idle_ms, char *why, size_t whylen)
{
    bc_hostport_t hp;
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    s->deadline = deadline;
    s->idle_ms = idle_ms;
    s->content_length = -1;
    if (addr == NULL || bc_parse_hostport(addr, 0, &hp) != BC_OK) {
        if (why != NULL && whylen > 0) snprintf(why, whylen, "bad address");
        return BC_EINVAL;
    }
    bc_status_t st = bc_net_connect(&hp, bc_net_remaining_ms(deadline), rcvbuf, &s->fd, why,
                                    whylen);
    if (st != BC_OK) return st;
    SSL *ssl;
    st = tls_start(TLS_PROCESS, s->fd, hp.host, deadline, &ssl);
    s->ssl = ssl;
    if (st != BC_OK && why != NULL && whylen > 0) snprintf(why, whylen, "%s", tls_error);
    return st;
}

bc_status_t
bc_http_stream_get(bc_http_stream_t *s, const char *host, const char *path, const char *accept,
                   const char *extra)
{
    char head[4096], authz[400];   /* a batch export names up to 64 buckets */
    client_auth_header(authz, sizeof(authz));
    int hn = snprintf(head, sizeof(head),
                      "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n%s%sAccept: %s\r\n"
                      "\r\n", path, host, authz, extra != NULL ? extra : "", accept);
    OPENSSL_cleanse(authz, sizeof(authz));
    bc_status_t st = hn < 0 || (size_t)hn >= sizeof(head)
                         ? BC_EINVAL : conn_send(s->fd, s->ssl, head, (size_t)hn, s->deadline);
    OPENSSL_cleanse(head, sizeof(head));
    return st;
}

/* Makes room for `want` more bytes after end (compacting first). */
static bool
stream_room(bc_http_stream_t *s, size_t want)
{
    if (s->start > 0 && (s->start == s->end || s->cap - s->end < want)) {
        memmove(s->buf, s->buf + s->start, s->end - s->start);
        s->end -= s->start;
        s->start = 0;
    }
    if (s->cap - s->end >= want) return true;
    size_t cap = s->cap ? s->cap : BC_HTTP_STREAM_BUF;
    while (cap - s->end < want) cap *= 2;
    char *p = realloc(s->buf, cap);
    if (p == NULL) return false;
    s->buf = p;
    s->cap = cap;
    return true;
}

bc_status_t
bc_http_stream_read(bc_http_stream_t *s, size_t want, size_t *got)
{
    if (!stream_room(s, want)) return BC_ENOMEM;
    bc_status_t st = conn_recv(s->fd, s->ssl, s->buf + s->end, s->cap - s->end, s->deadline, got);
    if (st != BC_OK) return st;
    s->end += *got;
    if (s->idle_ms > 0) s->deadline = bc_time_mono_ms() + s->idle_ms;
    return BC_OK;
}

bc_status_t
bc_http_stream_head(bc_http_stream_t *s, size_t max)
{
    char *hdr_end = NULL;
    while (hdr_end == NULL) {
        size_t got;
        if (s->end - s->start >= max) return BC_ETOOLARGE;
        bc_status_t st = bc_http_stream_read(s, 4096, &got);
        if (st != BC_OK) return st;
        hdr_end = memmem(s->buf + s->start, s->end - s->start, "\r\n\r\n", 4);
    }
    size_t hlen = (size_t)(hdr_end - (s->buf + s->start));
    free(s->head);
    s->head = malloc(hlen + 1);
    if (s->head == NULL) return BC_ENOMEM;
    memcpy(s->head, s->buf + s->start, hlen);
    s->head[hlen] = '\0';
    s->start += hlen + 4;
    if (sscanf(s->head, "HTTP/1.%*d %d", &s->status) != 1) return BC_EPROTO;
    const char *v = bc_http_stream_header(s, "Content-Length");
    s->content_length = v != NULL ? strtoll(v, NULL, 10) : -1;
    s->chunked = bc_http_stream_header(s, "Transfer-Encoding") != NULL;
    return BC_OK;
}

const char *
bc_http_stream_header(const bc_http_stream_t *s, const char *name)
{
    const char *found = NULL;
    size_t n = strlen(name);
    if (s->head == NULL) return NULL;
    for (const char *line = strstr(s->head, "\r\n"); line != NULL;
         line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, name, n) == 0 && line[2 + n] == ':') found = line + 3 + n;
    }
    while (found != NULL && (*found == ' ' || *found == '\t')) found++;
    return found;
}

void
bc_http_stream_close(bc_http_stream_t *s)
{
    conn_close(s->fd, s->ssl);
    s->fd = -1;
    s->ssl = NULL;
    free(s->buf);
    free(s->head);
    s->buf = s->head = NULL;
    s->cap = s->start = s->end = 0;
}
