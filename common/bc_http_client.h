/*
 * bc_http_client.h -- a minimal blocking HTTP/1.1 client for the admin
 * ports of our own processes (CLI -> console, console -> node).
 *
 * One request per connection ("Connection: close"), a deadline for the
 * whole exchange, and a cap on the response size, so a slow or hostile
 * peer can neither hang the caller nor grow its memory.  Plain HTTP only:
 * admin ports are meant for trusted networks.
 */
#ifndef BC_HTTP_CLIENT_H
#define BC_HTTP_CLIENT_H

#include <stddef.h>

#include "bc_status.h"

#define BC_HTTP_CLIENT_MAX_RESPONSE (16u * 1024u * 1024u)

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
 * or the connection broke), BC_ETIMEOUT, BC_EPROTO (not HTTP),
 * BC_ETOOLARGE (response over BC_HTTP_CLIENT_MAX_RESPONSE), BC_ENOMEM.
 */
bc_status_t bc_http_request(const char *addr, const char *method, const char *path,
                            const char *body, size_t body_len, int timeout_ms,
                            bc_http_response_t *resp);
void bc_http_response_free(bc_http_response_t *resp);

#endif
