/*
 * bc_net.c -- see bc_net.h.
 */
#include "bc_net.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bc_time.h"

bc_status_t
bc_net_connect_addr(const struct sockaddr *sa, socklen_t salen, int timeout_ms, int rcvbuf,
                    int *fd, char *err, size_t errlen)
{
    int s = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) return bc_fail(err, errlen, BC_EIO, "no socket: %s", strerror(errno));
    if (rcvbuf > 0) (void)setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    if (connect(s, sa, salen) == 0) {
        *fd = s;
        return BC_OK;
    }
    if (errno != EINPROGRESS) {
        int e = errno;
        close(s);
        return bc_fail(err, errlen, BC_EIO, "%s", strerror(e));
    }
    struct pollfd p = {s, POLLOUT, 0};
    int rc;
    do {
        rc = poll(&p, 1, timeout_ms < 0 ? 0 : timeout_ms);
    } while (rc < 0 && errno == EINTR);
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (rc == 1 && getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0) {
        *fd = s;
        return BC_OK;
    }
    close(s);
    if (rc == 0) return bc_fail(err, errlen, BC_ETIMEOUT, "no answer within %d ms", timeout_ms);
    return bc_fail(err, errlen, BC_EIO, "%s", strerror(soerr != 0 ? soerr : errno));
}

bc_status_t
bc_net_connect(const bc_hostport_t *hp, int timeout_ms, int rcvbuf, int *fd, char *err,
               size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char port[8];
    int64_t deadline = bc_time_mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%u", hp->port);
    int rc = getaddrinfo(hp->host, port, &hints, &res);
    if (rc != 0) {
        return bc_fail(err, errlen, BC_ENOTFOUND, "cannot resolve %s: %s", hp->host,
                       gai_strerror(rc));
    }
    bc_status_t st = bc_fail(err, errlen, BC_EIO, "no address for %s", hp->host);
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int64_t left = deadline - bc_time_mono_ms();
        st = bc_net_connect_addr(ai->ai_addr, ai->ai_addrlen, left > 0 ? (int)left : 0, rcvbuf,
                                 fd, err, errlen);
        if (st == BC_OK || left <= 0) break;
    }
    freeaddrinfo(res);
    return st;
}

int
bc_net_remaining_ms(int64_t deadline_ms)
{
    int64_t left = deadline_ms - bc_time_mono_ms();
    return left < 0 ? 0 : (int)(left > 1000000 ? 1000000 : left);
}

bc_status_t
bc_net_send_all(int fd, const void *buf, size_t len, int64_t deadline_ms)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR) return BC_EIO;
        struct pollfd pfd = {fd, POLLOUT, 0};
        if (poll(&pfd, 1, bc_net_remaining_ms(deadline_ms)) <= 0) return BC_ETIMEOUT;
    }
    return BC_OK;
}
