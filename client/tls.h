/*
 * tls.h -- TLS to the nodes' data ports (OpenSSL), for a client whose
 * options turn it on (bc_client_options_t.tls).
 *
 * One client context per bc_client_t, built once from the options: the
 * CAs that sign the nodes' certificates, the client's own certificate
 * for nodes that ask for one (memcached's ssl_verify_mode), and which
 * name each certificate must carry.  Every pooled connection gets its
 * own SSL from it (bc__tls_session); the context is read-only after it is
 * built, so threads share it without a lock (OpenSSL counts references).
 */
#ifndef BC_CLIENT_TLS_H
#define BC_CLIENT_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "bc_status.h"
#include "bucketcache.h"

typedef struct bc__tls {
    SSL_CTX *ctx;
    char *server_name;      /* the name every node must carry; NULL: the
                               host of the address the node was reached at */
    int check_name;         /* 0: the chain is verified, no name checked */
} bc__tls_t;

/*
 * Builds *out from opts (tls_* fields).  Errors: BC_EINVAL with err
 * saying which file could not be read and why, BC_ENOMEM.  The strings
 * of opts are read during the call only.
 */
bc_status_t bc__tls_new(const bc_client_options_t *opts, bc__tls_t **out, char *err,
                        size_t errlen);
void bc__tls_free(bc__tls_t *tls);

/*
 * A client SSL on the connected socket fd for a node reached at host
 * (its certificate checked against server_name or host).  Owned by the
 * caller (SSL_free).  NULL on failure (logged).
 */
SSL *bc__tls_session(const bc__tls_t *tls, int fd, const char *host);

/* The reason of the last verification or handshake failure of ssl, into
 * err: "certificate verify failed (unable to get local issuer ...)". */
void bc__tls_error(SSL *ssl, int ret, char *err, size_t errlen);

#endif
