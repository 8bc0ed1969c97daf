/*
 * test_ssl.c -- the TLS steps every client shares (common/bc_ssl.h): which
 * name a session sends and checks for an IP literal and for a host name,
 * and the wording and status of each kind of handshake failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "bc_ssl.h"

static SSL_CTX *ctx;

static int
setup(void **state)
{
    (void)state;
    ctx = SSL_CTX_new(TLS_client_method());
    return ctx == NULL;
}

static int
teardown(void **state)
{
    (void)state;
    SSL_CTX_free(ctx);
    return 0;
}

static void
test_expect_ip_literal(void **state)
{
    (void)state;
    SSL *ssl = SSL_new(ctx);
    assert_true(bc_ssl_expect_host(ssl, "10.0.0.7", true));
    /* no SNI for an IP literal (RFC 6066); the check wants that address */
    assert_null(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
    char *ip = X509_VERIFY_PARAM_get1_ip_asc(SSL_get0_param(ssl));
    assert_non_null(ip);
    assert_string_equal(ip, "10.0.0.7");
    OPENSSL_free(ip);
    assert_null(X509_VERIFY_PARAM_get0_host(SSL_get0_param(ssl), 0));
    SSL_free(ssl);

    ssl = SSL_new(ctx);
    assert_true(bc_ssl_expect_host(ssl, "fd00::1", true));
    ip = X509_VERIFY_PARAM_get1_ip_asc(SSL_get0_param(ssl));
    assert_non_null(ip);
    assert_string_equal(ip, "FD00:0:0:0:0:0:0:1");
    OPENSSL_free(ip);
    SSL_free(ssl);
}

static void
test_expect_host_name(void **state)
{
    (void)state;
    SSL *ssl = SSL_new(ctx);
    assert_true(bc_ssl_expect_host(ssl, "node-a.cache.internal", true));
    assert_string_equal(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name),
                        "node-a.cache.internal");
    assert_string_equal(X509_VERIFY_PARAM_get0_host(SSL_get0_param(ssl), 0),
                        "node-a.cache.internal");
    SSL_free(ssl);

    /* without the check: the name is still sent, but not required */
    ssl = SSL_new(ctx);
    assert_true(bc_ssl_expect_host(ssl, "node-b.cache.internal", false));
    assert_string_equal(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name),
                        "node-b.cache.internal");
    assert_null(X509_VERIFY_PARAM_get0_host(SSL_get0_param(ssl), 0));
    SSL_free(ssl);

    /* a name OpenSSL refuses as SNI (over 255 bytes) fails, queue cleared */
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    ssl = SSL_new(ctx);
    assert_false(bc_ssl_expect_host(ssl, longname, true));
    assert_int_equal(ERR_peek_error(), 0);
    SSL_free(ssl);
    /* ... unless it is not to be checked: then it is simply not sent */
    ssl = SSL_new(ctx);
    assert_true(bc_ssl_expect_host(ssl, longname, false));
    assert_int_equal(ERR_peek_error(), 0);
    assert_null(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
    SSL_free(ssl);
}

static void
test_describe_error(void **state)
{
    (void)state;
    char err[200];

    /* our check refused their certificate */
    SSL *ssl = SSL_new(ctx);
    SSL_set_verify_result(ssl, X509_V_ERR_CERT_HAS_EXPIRED);
    assert_int_equal(bc_ssl_describe_error(ssl, -1, "closed", err, sizeof(err)), BC_EACCES);
    assert_string_equal(err, "certificate verify failed: certificate has expired");
    SSL_free(ssl);

    /* their alert about our certificate */
    ssl = SSL_new(ctx);
    ERR_raise(ERR_LIB_SSL, SSL_R_SSLV3_ALERT_BAD_CERTIFICATE);
    assert_int_equal(bc_ssl_describe_error(ssl, -1, "closed", err, sizeof(err)), BC_EACCES);
    assert_string_equal(err, "sslv3 alert bad certificate");
    assert_int_equal(ERR_peek_error(), 0);

    /* any other reason OpenSSL gives */
    ERR_raise(ERR_LIB_SSL, SSL_R_WRONG_VERSION_NUMBER);
    assert_int_equal(bc_ssl_describe_error(ssl, -1, "closed", err, sizeof(err)), BC_EPROTO);
    assert_string_equal(err, "wrong version number");

    /* the connection closed with nothing said: the caller's words */
    assert_int_equal(bc_ssl_describe_error(ssl, 0, "the peer closed the connection", err,
                                           sizeof(err)), BC_EIO);
    assert_string_equal(err, "the peer closed the connection");

    /* a short buffer is still terminated */
    char tiny[8];
    SSL_set_verify_result(ssl, X509_V_ERR_CERT_HAS_EXPIRED);
    assert_int_equal(bc_ssl_describe_error(ssl, -1, "closed", tiny, sizeof(tiny)), BC_EACCES);
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
    SSL_free(ssl);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expect_ip_literal),
        cmocka_unit_test(test_expect_host_name),
        cmocka_unit_test(test_describe_error),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
