/*
 * peer_io.h -- a blocking link between two nodes (replication), plain TCP
 * or TLS, usable by a sender and a reader thread at once.
 *
 * Plain: the socket is blocking with SO_SNDTIMEO/SO_RCVTIMEO, and the
 * calls are send() and recv().  TLS: one SSL object carries both
 * directions, and OpenSSL forbids two threads in it at once (an SSL_read
 * may write -- a key update, an alert -- and an SSL_write may touch the
 * read state).  So the socket is made non-blocking and every SSL call
 * runs under the link's mutex; waiting for the socket (poll) happens
 * outside it, so a reader waiting for the peer never holds up the sender
 * -- one I/O thread per link would serve as well, but the replication
 * code's sender and reader threads then stay as they are.
 *
 * THREADS: bc_peer_io_send_all from one thread and bc_peer_io_recv from
 * another at once; bc_peer_io_shutdown from any thread (it only touches
 * the socket: the blocked calls then fail).  LOCKING RULE: mu guards ssl
 * and is never held while waiting.
 */
#ifndef BC_NET_PEER_IO_H
#define BC_NET_PEER_IO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "bc_status.h"

typedef struct bc_peer_io {
    int fd;
    SSL *ssl;                     /* NULL: plain TCP */
    pthread_mutex_t mu;
    int send_timeout_ms;          /* a send making no progress this long fails */
    int recv_timeout_ms;          /* a recv with nothing this long: -1, EAGAIN */
} bc_peer_io_t;

/*
 * Takes fd (connected) and ssl (its TLS session, handshake done or not;
 * NULL: plain) for the link; both are owned by io from now on and freed
 * by bc_peer_io_close.  Sets the socket up (blocking with timeouts when
 * plain, non-blocking with TLS).
 */
void bc_peer_io_init(bc_peer_io_t *io, int fd, SSL *ssl, int send_timeout_ms,
                     int recv_timeout_ms);
/*
 * The TLS client handshake (a no-op when plain), within timeout_ms.
 * Errors: BC_ETIMEOUT, BC_EIO with err saying why (a certificate that is
 * not the cluster CA's, a peer not speaking TLS).
 */
bc_status_t bc_peer_io_handshake(bc_peer_io_t *io, int timeout_ms, char *err, size_t errlen);
/* All n bytes, or false (peer gone, error, no progress for send_timeout_ms). */
bool bc_peer_io_send_all(bc_peer_io_t *io, const void *p, size_t n);
/* recv()'s contract: > 0 bytes, 0 at EOF, -1 with errno (EAGAIN after
 * recv_timeout_ms with nothing; EIO/ECONNRESET on a broken link). */
ssize_t bc_peer_io_recv(bc_peer_io_t *io, void *buf, size_t len);
/* shutdown(SHUT_RDWR) of the socket: both directions' calls end. */
void bc_peer_io_shutdown(bc_peer_io_t *io);
/* Frees the SSL and closes the socket.  No call may be in progress. */
void bc_peer_io_close(bc_peer_io_t *io);

#endif
