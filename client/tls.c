/*
 * tls.c -- see tls.h.  The client's TLS context and per-connection
 * sessions.
 *
 * BEHAVIOR: verification is always on -- a client that turns TLS on
 * wants to know it talks to a node of the cluster, so a certificate that
 * does not chain to tls_ca_file (or, without one, to the system's CAs)
 * fails the handshake.  What is optional is the name check, because
 * nodes register their data addresses as the operator wrote them, often
 * bare IPs that certificates do not list: tls_server_name names the one
 * name all the cluster's certificates carry, or the check can be turned
 * off (the chain still has to be the CA's).
 */
#include "tls.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "bc_log.h"
#include "bc_ssl.h"

/* OpenSSL's first queued error, or fallback, into err (the queue emptied). */
static void
tls_queue_error(char *err, size_t errlen, const char *what, const char *file)
{
    char reason[256];
    unsigned long e = ERR_get_error();
    if (e != 0) ERR_error_string_n(e, reason, sizeof(reason));
    else snprintf(reason, sizeof(reason), "unknown error");
    ERR_clear_error();
    snprintf(err, errlen, "%s %s: %s", what, file != NULL ? file : "", reason);
}

bc_status_t
bc__tls_new(const bc_client_options_t *o, bc__tls_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if ((o->tls_cert_file == NULL) != (o->tls_key_file == NULL)) {
        snprintf(err, errlen, "tls_cert_file and tls_key_file go together");
        return BC_EINVAL;
    }
    bc__tls_t *t = calloc(1, sizeof(*t));
    if (t == NULL) return BC_ENOMEM;
    t->check_name = !o->tls_no_name_check;
    if (o->tls_server_name != NULL && o->tls_server_name[0] != '\0') {
        t->server_name = strdup(o->tls_server_name);
        if (t->server_name == NULL) {
            free(t);
            return BC_ENOMEM;
        }
    }
    ERR_clear_error();
    t->ctx = SSL_CTX_new(TLS_client_method());
    bc_status_t st = BC_EINVAL;
    if (t->ctx == NULL) {
        tls_queue_error(err, errlen, "cannot make a TLS context", NULL);
        st = BC_ENOMEM;
    } else if (SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION) != 1) {
        tls_queue_error(err, errlen, "cannot set the TLS version", NULL);
    } else if (o->tls_ca_file != NULL
                   ? SSL_CTX_load_verify_locations(t->ctx, o->tls_ca_file, NULL) != 1
                   : SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
        tls_queue_error(err, errlen, "cannot load the CA file",
                        o->tls_ca_file != NULL ? o->tls_ca_file : "(system default)");
    } else if (o->tls_cert_file != NULL &&
               SSL_CTX_use_certificate_chain_file(t->ctx, o->tls_cert_file) != 1) {
        tls_queue_error(err, errlen, "cannot load the client certificate", o->tls_cert_file);
    } else if (o->tls_key_file != NULL &&
               SSL_CTX_use_PrivateKey_file(t->ctx, o->tls_key_file, SSL_FILETYPE_PEM) != 1) {
        tls_queue_error(err, errlen, "cannot load the client key", o->tls_key_file);
    } else if (o->tls_key_file != NULL && SSL_CTX_check_private_key(t->ctx) != 1) {
        tls_queue_error(err, errlen, "the client key does not match its certificate",
                        o->tls_key_file);
    } else {
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
        bc_ssl_cache_certs(t->ctx);
        /* Non-blocking sockets: a write that could not finish is retried
         * with the rest of the same buffer (pool.c, mget.c). */
        SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        *out = t;
        return BC_OK;
    }
    bc__tls_free(t);
    return st;
}

void
bc__tls_free(bc__tls_t *t)
{
    if (t == NULL) return;
    SSL_CTX_free(t->ctx);
    free(t->server_name);
    free(t);
}

SSL *
bc__tls_session(const bc__tls_t *t, int fd, const char *host)
{
    SSL *ssl = SSL_new(t->ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        char e[300];
        tls_queue_error(e, sizeof(e), "client: cannot make a TLS session", NULL);
        log_warn("%s", e);
        SSL_free(ssl);
        return NULL;
    }
    const char *name = t->server_name != NULL ? t->server_name : host;
    if (!bc_ssl_expect_host(ssl, name, t->check_name)) {
        log_warn("client: cannot check TLS certificates for the name \"%s\"", name);
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

void
bc__tls_error(SSL *ssl, int ret, char *err, size_t errlen)
{
    (void)bc_ssl_describe_error(ssl, ret, "the connection closed during the TLS handshake (is "
                                "the port speaking TLS, and does it accept this client?)", err,
                                errlen);
}
