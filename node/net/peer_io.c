/*
 * peer_io.c -- see peer_io.h.
 */
#include "net/peer_io.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "bc_time.h"
#include "net/tls.h"

void
bc_peer_io_init(bc_peer_io_t *io, int fd, SSL *ssl, int send_timeout_ms, int recv_timeout_ms)
{
    io->fd = fd;
    io->ssl = ssl;
    io->send_timeout_ms = send_timeout_ms;
    io->recv_timeout_ms = recv_timeout_ms;
    pthread_mutex_init(&io->mu, NULL);
    int fl = fcntl(fd, F_GETFL);
    if (ssl != NULL) {
        if (fl >= 0) (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        return;
    }
    if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    struct timeval stv = {send_timeout_ms / 1000, (send_timeout_ms % 1000) * 1000};
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &stv, sizeof(stv));
    struct timeval rtv = {recv_timeout_ms / 1000, (recv_timeout_ms % 1000) * 1000};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rtv, sizeof(rtv));
}

/* Waits (no lock held) for events on fd until deadline_ms: true when
 * ready or the socket has an error for the SSL call to report. */
static bool
peer_io_wait(int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        int64_t left = deadline_ms - bc_time_mono_ms();
        if (left <= 0) return false;
        struct pollfd pfd = {.fd = fd, .events = events};
        int r = poll(&pfd, 1, (int)left);
        if (r > 0) return true;
        if (r < 0 && errno != EINTR) return true;
    }
}

bc_status_t
bc_peer_io_handshake(bc_peer_io_t *io, int timeout_ms, char *err, size_t errlen)
{
    if (io->ssl == NULL) return BC_OK;
    int64_t deadline = bc_time_mono_ms() + timeout_ms;
    for (;;) {
        pthread_mutex_lock(&io->mu);
        ERR_clear_error();
        int r = SSL_do_handshake(io->ssl);
        int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(io->ssl, r);
        if (r != 1 && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            bc_tls_describe_error(io->ssl, r, err, errlen);
        }
        pthread_mutex_unlock(&io->mu);
        if (r == 1) return BC_OK;
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return BC_EIO;
        if (!peer_io_wait(io->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
            snprintf(err, errlen, "TLS handshake timed out");
            return BC_ETIMEOUT;
        }
    }
}

bool
bc_peer_io_send_all(bc_peer_io_t *io, const void *buf, size_t n)
{
    const char *p = buf;
    if (io->ssl == NULL) {
        while (n > 0) {
            ssize_t k = send(io->fd, p, n, MSG_NOSIGNAL);
            if (k < 0) {
                if (errno == EINTR) continue;
                return false;
            }
            p += k;
            n -= (size_t)k;
        }
        return true;
    }
    int64_t deadline = bc_time_mono_ms() + io->send_timeout_ms;
    while (n > 0) {
        pthread_mutex_lock(&io->mu);
        ERR_clear_error();
        int k = SSL_write(io->ssl, p, n > 1u << 30 ? 1 << 30 : (int)n);
        int e = k > 0 ? SSL_ERROR_NONE : SSL_get_error(io->ssl, k);
        if (k <= 0) ERR_clear_error();
        pthread_mutex_unlock(&io->mu);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            deadline = bc_time_mono_ms() + io->send_timeout_ms;   /* progress */
            continue;
        }
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return false;
        if (!peer_io_wait(io->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
            return false;
        }
    }
    return true;
}

ssize_t
bc_peer_io_recv(bc_peer_io_t *io, void *buf, size_t len)
{
    if (io->ssl == NULL) return recv(io->fd, buf, len, 0);
    int64_t deadline = bc_time_mono_ms() + io->recv_timeout_ms;
    for (;;) {
        pthread_mutex_lock(&io->mu);
        ERR_clear_error();
        int k = SSL_read(io->ssl, buf, len > 1u << 30 ? 1 << 30 : (int)len);
        int e = k > 0 ? SSL_ERROR_NONE : SSL_get_error(io->ssl, k);
        if (k <= 0) ERR_clear_error();
        pthread_mutex_unlock(&io->mu);
        if (k > 0) return k;
        if (e == SSL_ERROR_ZERO_RETURN) return 0;
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            /* A reader only waits for its own direction's bytes; the
             * sender may have moved the state on meanwhile, so the SSL
             * call is simply tried again. */
            if (!peer_io_wait(io->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
                errno = EAGAIN;
                return -1;
            }
            continue;
        }
        if (e == SSL_ERROR_SYSCALL && k == 0) return 0;   /* EOF without close_notify */
        errno = e == SSL_ERROR_SYSCALL && errno != 0 ? errno : EIO;
        return -1;
    }
}

void
bc_peer_io_shutdown(bc_peer_io_t *io)
{
    if (io->fd >= 0) shutdown(io->fd, SHUT_RDWR);
}

void
bc_peer_io_close(bc_peer_io_t *io)
{
    if (io->ssl != NULL) {
        SSL_free(io->ssl);
        io->ssl = NULL;
        ERR_clear_error();
    }
    if (io->fd >= 0) close(io->fd);
    io->fd = -1;
    pthread_mutex_destroy(&io->mu);
}
