/*
 * bc_ssl.c -- see bc_ssl.h: the per-session steps every TLS client of
 * bucketcache shares.
 */
#include "bc_ssl.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

bool
bc_ssl_expect_host(SSL *ssl, const char *host, bool check)
{
    unsigned char bin[16];
    bool ip = inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1;
    /* SNI is a courtesy to the server: refused (a name over 255 bytes),
     * it fails the session only when the name is also to be checked */
    bool sni = ip || SSL_set_tlsext_host_name(ssl, host) == 1;
    if (!sni) ERR_clear_error();
    bool ok = sni || !check;
    if (ok && check) {
        ok = (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
                 : SSL_set1_host(ssl, host)) == 1;
    }
    if (!ok) ERR_clear_error();
    return ok;
}

bc_status_t
bc_ssl_describe_error(SSL *ssl, int ret, const char *closed, char *err, size_t errlen)
{
    int e = SSL_get_error(ssl, ret);
    long v = SSL_get_verify_result(ssl);
    unsigned long q = ERR_peek_last_error();
    bc_status_t st = BC_EPROTO;
    if (v != X509_V_OK) {
        snprintf(err, errlen, "certificate verify failed: %s", X509_verify_cert_error_string(v));
        st = BC_EACCES;
    } else if (q != 0) {
        const char *why = ERR_reason_error_string(q);
        if (why != NULL) {
            snprintf(err, errlen, "%s", why);
        } else {
            ERR_error_string_n(q, err, errlen);
        }
        /* An alert about our certificate: refused, as a bad one of theirs. */
        if (strstr(err, "certificate") != NULL) st = BC_EACCES;
    } else if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL) {
        snprintf(err, errlen, "%s", closed);
        st = BC_EIO;
    } else {
        snprintf(err, errlen, "TLS error %d", e);
    }
    ERR_clear_error();
    return st;
}

void
bc_ssl_cache_certs(SSL_CTX *ctx)
{
    if (ctx == NULL) return;
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    STACK_OF(X509_OBJECT) *objs = store != NULL ? X509_STORE_get0_objects(store) : NULL;
    for (int i = 0; objs != NULL && i < sk_X509_OBJECT_num(objs); i++) {
        X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
        if (x != NULL) (void)X509_check_purpose(x, -1, 0);
    }
    X509 *own = SSL_CTX_get0_certificate(ctx);
    if (own != NULL) (void)X509_check_purpose(own, -1, 0);
    ERR_clear_error();
}
