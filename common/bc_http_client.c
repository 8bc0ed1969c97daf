/*
 * bc_http_client.c -- see bc_http_client.h.  Non-blocking socket + poll(2)
 * against one deadline; the response is read to EOF (we always ask for
 * Connection: close) and then parsed: status line, headers (only
 * Content-Length and Transfer-Encoding matter), body (chunked decoded).
 */
#include "bc_http_client.h"

#include "bc_net.h"

#include <openssl/crypto.h>

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

bc_status_t
bc_http_request(const char *addr, const char *method, const char *path, const char *body,
                size_t body_len, int timeout_ms, bc_http_response_t *resp)
{
    bc_hostport_t hp;
    memset(resp, 0, sizeof(*resp));
    if (addr == NULL || bc_parse_hostport(addr, 0, &hp) != BC_OK) return BC_EINVAL;
    long long deadline = bc_time_mono_ms() + timeout_ms;
    int fd;
    bc_status_t st = bc_net_connect(&hp, bc_net_remaining_ms(deadline), 0, &fd, NULL, 0);
    if (st != BC_OK) return st;

    char head[1536], host[BC_HOST_MAX + 16], authz[400];
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
        close(fd);
        return BC_EINVAL;
    }
    st = bc_net_send_all(fd, head, (size_t)hn, deadline);
    OPENSSL_cleanse(head, sizeof(head));
    if (st == BC_OK && body != NULL && body_len > 0) {
        st = bc_net_send_all(fd, body, body_len, deadline);
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
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n > 0) {
            len += (size_t)n;
        } else if (n == 0) {
            break;
        } else if (errno == EAGAIN || errno == EINTR) {
            struct pollfd p = {fd, POLLIN, 0};
            if (poll(&p, 1, bc_net_remaining_ms(deadline)) <= 0) st = BC_ETIMEOUT;
        } else {
            st = BC_EIO;
        }
    }
    close(fd);
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
    return bc_net_connect(&hp, bc_net_remaining_ms(deadline), rcvbuf, &s->fd, why, whylen);
}

bc_status_t
bc_http_stream_get(bc_http_stream_t *s, const char *host, const char *path, const char *accept,
                   const char *extra)
{
    char head[1536], authz[400];
    client_auth_header(authz, sizeof(authz));
    int hn = snprintf(head, sizeof(head),
                      "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n%s%sAccept: %s\r\n"
                      "\r\n", path, host, authz, extra != NULL ? extra : "", accept);
    OPENSSL_cleanse(authz, sizeof(authz));
    bc_status_t st = hn < 0 || (size_t)hn >= sizeof(head)
                         ? BC_EINVAL : bc_net_send_all(s->fd, head, (size_t)hn, s->deadline);
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
    for (;;) {
        ssize_t n = recv(s->fd, s->buf + s->end, s->cap - s->end, 0);
        if (n > 0) {
            s->end += (size_t)n;
            *got = (size_t)n;
            if (s->idle_ms > 0) s->deadline = bc_time_mono_ms() + s->idle_ms;
            return BC_OK;
        }
        if (n == 0) return BC_ECLOSED;
        if (errno != EAGAIN && errno != EINTR) return BC_EIO;
        struct pollfd pfd = {s->fd, POLLIN, 0};
        int rc = poll(&pfd, 1, bc_net_remaining_ms(s->deadline));
        if (rc == 0) return BC_ETIMEOUT;
        if (rc < 0 && errno != EINTR) return BC_EIO;
    }
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
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    free(s->buf);
    free(s->head);
    s->buf = s->head = NULL;
    s->cap = s->start = s->end = 0;
}
