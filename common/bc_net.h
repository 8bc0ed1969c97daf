/*
 * bc_net.h -- a TCP connect and a send with a deadline, the ones every
 * blocking caller uses (the HTTP client, a migration import, a backup's
 * link to its primary).  The event-loop side (node/proto/forward.c) and the client library's
 * pool connect without waiting and do not use it.
 */
#ifndef BC_NET_H
#define BC_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bc_config.h"
#include "bc_status.h"

/*
 * Connects to sa within timeout_ms.  On BC_OK *fd is a connected,
 * non-blocking, close-on-exec socket owned by the caller.  rcvbuf > 0 sets
 * SO_RCVBUF before the connect (so the window scale is negotiated for it).
 * Errors: BC_ETIMEOUT, BC_EIO (refused, unreachable, no socket); err (may
 * be NULL) receives the reason.
 */
bc_status_t bc_net_connect_addr(const struct sockaddr *sa, socklen_t salen, int timeout_ms,
                                int rcvbuf, int *fd, char *err, size_t errlen);

/*
 * Resolves hp (name resolution may block) and connects to the first of
 * its addresses that answers, all within timeout_ms.  As above otherwise;
 * BC_ENOTFOUND when the name does not resolve.
 */
bc_status_t bc_net_connect(const bc_hostport_t *hp, int timeout_ms, int rcvbuf, int *fd,
                           char *err, size_t errlen);

/* Milliseconds left until deadline_ms (CLOCK_MONOTONIC, bc_time_mono_ms),
 * 0 when past: a poll() timeout. */
int bc_net_remaining_ms(int64_t deadline_ms);

/* Sends all len bytes of buf on a non-blocking socket by deadline_ms
 * (CLOCK_MONOTONIC ms), waiting in poll() while the socket is full.
 * Errors: BC_EIO (the connection failed), BC_ETIMEOUT. */
bc_status_t bc_net_send_all(int fd, const void *buf, size_t len, int64_t deadline_ms);

#endif
