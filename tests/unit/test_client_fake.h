/*
 * test_client_fake.h -- a fake bucketcache node for the client unit tests:
 * a memcached-text server on 127.0.0.1 with a tiny in-memory store, whose
 * replies a test can override line by line (to refuse, drop the
 * connection, or send hostile bytes).  Header-only; one thread accepts,
 * one thread per connection serves.
 */
#ifndef TEST_CLIENT_FAKE_H
#define TEST_CLIENT_FAKE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FAKE_MAX_ITEMS 256
#define FAKE_MAX_CONNS 64

typedef struct fake fake_t;

/* What a hook decides for one command line. */
typedef enum fake_action {
    FAKE_DEFAULT,    /* let the store answer */
    FAKE_REPLY,      /* send the `out` bytes (len *outlen) instead */
    FAKE_DROP,       /* close the connection without replying */
} fake_action_t;

/* line: the command line without CRLF; data: the storage data block or NULL. */
typedef fake_action_t (*fake_hook_fn)(fake_t *f, const char *line, const char *data, size_t dlen,
                                      char *out, size_t *outlen, void *ctx);

typedef struct fake_item {
    char key[251];
    char *value;
    size_t vlen;
    uint32_t flags;
} fake_item_t;

struct fake {
    int lfd;
    int port;
    char addr[32];
    pthread_t acceptor;
    atomic_int stop;
    atomic_int requests;       /* command lines received */
    atomic_int connections;    /* accepted */
    pthread_mutex_t mu;        /* guards items, nitems, conn fds */
    fake_item_t items[FAKE_MAX_ITEMS];
    int nitems;
    int fds[FAKE_MAX_CONNS];
    pthread_t threads[FAKE_MAX_CONNS];
    int nconns;
    fake_hook_fn hook;
    void *hook_ctx;
};

typedef struct fake_conn_arg {
    fake_t *f;
    int fd;
} fake_conn_arg_t;

static inline fake_item_t *
fake_find(fake_t *f, const char *key, size_t klen)
{
    for (int i = 0; i < f->nitems; i++) {
        if (strlen(f->items[i].key) == klen && memcmp(f->items[i].key, key, klen) == 0) {
            return &f->items[i];
        }
    }
    return NULL;
}

/* Stores key=value in the fake (also usable by tests directly). */
static inline void
fake_put(fake_t *f, const char *key, const char *value, size_t vlen, uint32_t flags)
{
    pthread_mutex_lock(&f->mu);
    fake_item_t *it = fake_find(f, key, strlen(key));
    if (it == NULL && f->nitems < FAKE_MAX_ITEMS) {
        it = &f->items[f->nitems++];
        size_t klen = strnlen(key, sizeof(it->key) - 1); /* keys over 250 are refused earlier */
        memcpy(it->key, key, klen);
        it->key[klen] = '\0';
        it->value = NULL;
    }
    if (it != NULL) {
        free(it->value);
        it->value = malloc(vlen + 1);
        memcpy(it->value, value, vlen);
        it->vlen = vlen;
        it->flags = flags;
    }
    pthread_mutex_unlock(&f->mu);
}

static inline bool
fake_has(fake_t *f, const char *key)
{
    pthread_mutex_lock(&f->mu);
    bool has = fake_find(f, key, strlen(key)) != NULL;
    pthread_mutex_unlock(&f->mu);
    return has;
}

static inline void
fake_send(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n <= 0) return;
        buf += n;
        len -= (size_t)n;
    }
}

/* Appends to a growing reply buffer. */
static inline void
fake_out(char **out, size_t *len, size_t *cap, const char *data, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *out = realloc(*out, *cap);
    }
    memcpy(*out + *len, data, n);
    *len += n;
}

/* The store's answer to one command. */
static inline void
fake_default(fake_t *f, const char *line, const char *data, size_t dlen, char **out, size_t *olen,
             size_t *ocap)
{
    char cmd[16] = "", key[256] = "";
    unsigned long long a = 0, b = 0;
    sscanf(line, "%15s %255s %llu %llu", cmd, key, &a, &b);
    pthread_mutex_lock(&f->mu);
    if (strcmp(cmd, "get") == 0) {
        const char *p = line + 4;
        while (*p) {
            const char *e = strchr(p, ' ');
            size_t kl = e ? (size_t)(e - p) : strlen(p);
            fake_item_t *it = fake_find(f, p, kl);
            if (it != NULL) {
                char hdr[300];
                int n = snprintf(hdr, sizeof(hdr), "VALUE %s %u %zu\r\n", it->key, it->flags, it->vlen);
                fake_out(out, olen, ocap, hdr, (size_t)n);
                fake_out(out, olen, ocap, it->value, it->vlen);
                fake_out(out, olen, ocap, "\r\n", 2);
            }
            p += kl;
            while (*p == ' ') p++;
        }
        fake_out(out, olen, ocap, "END\r\n", 5);
    } else if (strcmp(cmd, "set") == 0 || strcmp(cmd, "add") == 0 || strcmp(cmd, "replace") == 0) {
        fake_item_t *it = fake_find(f, key, strlen(key));
        bool ok = strcmp(cmd, "set") == 0 || (strcmp(cmd, "add") == 0) == (it == NULL);
        pthread_mutex_unlock(&f->mu);
        if (ok) fake_put(f, key, data, dlen, (uint32_t)a);
        pthread_mutex_lock(&f->mu);
        fake_out(out, olen, ocap, ok ? "STORED\r\n" : "NOT_STORED\r\n", ok ? 8 : 12);
    } else if (strcmp(cmd, "delete") == 0 || strcmp(cmd, "touch") == 0) {
        fake_item_t *it = fake_find(f, key, strlen(key));
        if (it == NULL) {
            fake_out(out, olen, ocap, "NOT_FOUND\r\n", 11);
        } else if (cmd[0] == 'd') {
            free(it->value);
            *it = f->items[--f->nitems];
            fake_out(out, olen, ocap, "DELETED\r\n", 9);
        } else {
            fake_out(out, olen, ocap, "TOUCHED\r\n", 9);
        }
    } else if (strcmp(cmd, "incr") == 0 || strcmp(cmd, "decr") == 0) {
        fake_item_t *it = fake_find(f, key, strlen(key));
        if (it == NULL) {
            fake_out(out, olen, ocap, "NOT_FOUND\r\n", 11);
        } else {
            char *end;
            char tmp[32];
            size_t n = it->vlen < 31 ? it->vlen : 31;
            memcpy(tmp, it->value, n);
            tmp[n] = '\0';
            unsigned long long v = strtoull(tmp, &end, 10);
            if (n == 0 || *end != '\0') {
                const char *e = "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
                fake_out(out, olen, ocap, e, strlen(e));
            } else {
                v = cmd[0] == 'i' ? v + a : (v > a ? v - a : 0);
                snprintf(tmp, sizeof(tmp), "%llu", v);
                size_t m = strlen(tmp);
                free(it->value);
                it->value = malloc(m + 1);
                memcpy(it->value, tmp, m + 1);
                it->vlen = m;
                fake_out(out, olen, ocap, tmp, m);
                fake_out(out, olen, ocap, "\r\n", 2);
            }
        }
    } else {
        fake_out(out, olen, ocap, "ERROR\r\n", 7);
    }
    pthread_mutex_unlock(&f->mu);
}

static inline void *
fake_serve(void *argp)
{
    fake_conn_arg_t *arg = argp;
    fake_t *f = arg->f;
    int fd = arg->fd;
    free(arg);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        char *nl;
        while ((nl = memchr(buf, '\n', len)) == NULL) {
            if (len + 4096 > cap) buf = realloc(buf, cap *= 2);
            ssize_t n = recv(fd, buf + len, cap - len, 0);
            if (n <= 0) goto done;
            len += (size_t)n;
        }
        size_t linelen = (size_t)(nl - buf) + 1;
        char *line = malloc(linelen);
        memcpy(line, buf, linelen - 1);
        line[linelen - 1] = '\0';
        if (linelen >= 2 && line[linelen - 2] == '\r') line[linelen - 2] = '\0';
        memmove(buf, buf + linelen, len - linelen);
        len -= linelen;
        atomic_fetch_add(&f->requests, 1);
        /* storage commands carry a data block */
        char cmd[16] = "", key[256];
        unsigned long long fl = 0, ex = 0, vlen = 0;
        char *data = NULL;
        size_t dlen = 0;
        int fields = sscanf(line, "%15s %255s %llu %llu %llu", cmd, key, &fl, &ex, &vlen);
        if (fields == 5 && (strcmp(cmd, "set") == 0 || strcmp(cmd, "add") == 0 ||
                            strcmp(cmd, "replace") == 0)) {
            while (len < vlen + 2) {
                if (vlen + 2 > cap) buf = realloc(buf, cap = vlen + 2 + 4096);
                ssize_t n = recv(fd, buf + len, cap - len, 0);
                if (n <= 0) {
                    free(line);
                    goto done;
                }
                len += (size_t)n;
            }
            data = malloc(vlen + 1);
            memcpy(data, buf, vlen);
            dlen = vlen;
            memmove(buf, buf + vlen + 2, len - vlen - 2);
            len -= vlen + 2;
        }
        char hookout[8192];
        size_t hooklen = 0;
        fake_action_t act = f->hook ? f->hook(f, line, data, dlen, hookout, &hooklen, f->hook_ctx)
                                    : FAKE_DEFAULT;
        if (act == FAKE_DROP) {
            free(line);
            free(data);
            goto done;
        }
        if (act == FAKE_REPLY) {
            fake_send(fd, hookout, hooklen);
        } else {
            char *out = NULL;
            size_t olen = 0, ocap = 0;
            fake_default(f, line, data, dlen, &out, &olen, &ocap);
            fake_send(fd, out, olen);
            free(out);
        }
        free(line);
        free(data);
    }
done:
    free(buf);
    shutdown(fd, SHUT_RDWR);
    return NULL;
}

static inline void *
fake_accept(void *argp)
{
    fake_t *f = argp;
    while (!atomic_load(&f->stop)) {
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0) continue;
        if (atomic_load(&f->stop)) {
            close(fd);
            break;
        }
        pthread_mutex_lock(&f->mu);
        if (f->nconns == FAKE_MAX_CONNS) {
            pthread_mutex_unlock(&f->mu);
            close(fd);
            continue;
        }
        fake_conn_arg_t *arg = malloc(sizeof(*arg));
        arg->f = f;
        arg->fd = fd;
        f->fds[f->nconns] = fd;
        pthread_create(&f->threads[f->nconns], NULL, fake_serve, arg);
        f->nconns++;
        pthread_mutex_unlock(&f->mu);
        atomic_fetch_add(&f->connections, 1);
    }
    return NULL;
}

static inline fake_t *
fake_start(fake_hook_fn hook, void *ctx)
{
    fake_t *f = calloc(1, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    f->hook = hook;
    f->hook_ctx = ctx;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(f->lfd, 64) != 0) abort();
    socklen_t sl = sizeof(sa);
    getsockname(f->lfd, (struct sockaddr *)&sa, &sl);
    f->port = ntohs(sa.sin_port);
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", f->port);
    pthread_create(&f->acceptor, NULL, fake_accept, f);
    return f;
}

static inline void
fake_stop(fake_t *f)
{
    atomic_store(&f->stop, 1);
    shutdown(f->lfd, SHUT_RDWR);
    /* wake accept() */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(s, (struct sockaddr *)&sa, sizeof(sa));
    close(s);
    pthread_join(f->acceptor, NULL);
    pthread_mutex_lock(&f->mu);
    for (int i = 0; i < f->nconns; i++) shutdown(f->fds[i], SHUT_RDWR);
    pthread_mutex_unlock(&f->mu);
    for (int i = 0; i < f->nconns; i++) {
        pthread_join(f->threads[i], NULL);
        close(f->fds[i]);
    }
    close(f->lfd);
    for (int i = 0; i < f->nitems; i++) free(f->items[i].value);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

#endif
