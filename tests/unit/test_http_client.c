/*
 * test_http_client.c -- HTTPS between our processes (common/bc_http_client.h
 * TLS, common/bc_httpd.h HTTPS): a request and a streamed body over TLS; a
 * client of another CA, and a certificate naming another host, refused
 * (BC_EACCES, saying why); a TLS client against a plain server
 * (BC_EPROTO); a server that never answers the handshake (BC_ETIMEOUT);
 * and, on the server, a plain HTTP client, a handshake cut short and a
 * silent connection, after which it still serves; certificates renewed
 * while serving (bc_httpd_set_tls, bc_http_tls_reload); a body that ends
 * without the server's close_notify is an error, not an end.  The certificates are
 * made here (an EC test CA, OpenSSL).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <pthread.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "bc_http_client.h"
#include "bc_httpd.h"
#include "bc_time.h"

#define BIG_LEN (300u * 1024u)

static char dir[] = "/tmp/bc-http-tls-XXXXXX";
static char ca_file[128], rogue_ca_file[128];
static char *leaf_pem, *leaf_key_pem, *elsewhere_pem, *elsewhere_key_pem;
static char *big;

/* ---- certificates ---- */

static X509 *
make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, const char *san)
{
    static long serial = 1;
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *e = san != NULL
        ? X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san)
        : X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
    assert_non_null(e);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    assert_true(X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static char *
pem_of(X509 *x, EVP_PKEY *key)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (x != NULL) assert_int_equal(PEM_write_bio_X509(b, x), 1);
    if (key != NULL) {
        assert_int_equal(PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL), 1);
    }
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *s = strndup(data, (size_t)n);
    BIO_free(b);
    return s;
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int
setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    EVP_PKEY *ca_key = EVP_EC_gen("P-256"), *rogue_key = EVP_EC_gen("P-256");
    EVP_PKEY *leaf_key = EVP_EC_gen("P-256");
    X509 *ca = make_cert(ca_key, "test CA", NULL, NULL, NULL);
    X509 *rogue = make_cert(rogue_key, "rogue CA", NULL, NULL, NULL);
    X509 *leaf = make_cert(leaf_key, "a node", ca, ca_key, "IP:127.0.0.1,DNS:localhost");
    X509 *elsewhere = make_cert(leaf_key, "another node", ca, ca_key, "IP:10.9.9.9");
    snprintf(ca_file, sizeof(ca_file), "%s/ca.crt", dir);
    snprintf(rogue_ca_file, sizeof(rogue_ca_file), "%s/rogue.crt", dir);
    char *pem = pem_of(ca, NULL);
    write_file(ca_file, pem);
    free(pem);
    pem = pem_of(rogue, NULL);
    write_file(rogue_ca_file, pem);
    free(pem);
    leaf_pem = pem_of(leaf, NULL);
    elsewhere_pem = pem_of(elsewhere, NULL);
    leaf_key_pem = pem_of(NULL, leaf_key);
    elsewhere_key_pem = pem_of(NULL, leaf_key);
    X509_free(ca);
    X509_free(rogue);
    X509_free(leaf);
    X509_free(elsewhere);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(rogue_key);
    EVP_PKEY_free(leaf_key);
    big = malloc(BIG_LEN);
    for (size_t i = 0; i < BIG_LEN; i++) big[i] = (char)('a' + i % 26);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    unlink(ca_file);
    unlink(rogue_ca_file);
    rmdir(dir);
    free(leaf_pem);
    free(leaf_key_pem);
    free(elsewhere_pem);
    free(elsewhere_key_pem);
    free(big);
    return 0;
}

/* ---- a server ---- */

static enum MHD_Result
handle_hello(void *ctx, bc_http_req_t *req)
{
    (void)ctx;
    return bc_http_reply_bytes(req, 200, "text/plain", "hello", 5);
}

static enum MHD_Result
handle_big(void *ctx, bc_http_req_t *req)
{
    (void)ctx;
    return bc_http_reply_bytes(req, 200, "application/octet-stream", big, BIG_LEN);
}

static const bc_http_route_t routes[] = {
    {"/hello", "GET", handle_hello},
    {"/big", "GET", handle_big},
};

static bc_httpd_t *
start_server(const char *cert_pem, const char *key_pem, char *addr, size_t len)
{
    bc_httpd_config_t cfg = {
        .name = "test",
        .listen_addr = "127.0.0.1",
        .routes = routes,
        .nroutes = 2,
        .request_timeout_s = 2,
        .tls_cert_pem = cert_pem,
        .tls_key_pem = key_pem,
    };
    bc_httpd_t *h = NULL;
    assert_int_equal(bc_httpd_create(&cfg, &h), BC_OK);
    assert_int_equal(bc_httpd_start(h), BC_OK);
    assert_int_equal(bc_httpd_tls(h), cert_pem != NULL);
    snprintf(addr, len, "127.0.0.1:%u", bc_httpd_port(h));
    return h;
}

static bc_http_tls_t *
client_tls(const char *ca)
{
    bc_http_tls_config_t c = {.ca_file = ca};
    bc_http_tls_t *tls = NULL;
    char err[256];
    assert_int_equal(bc_http_tls_open(&c, &tls, err, sizeof(err)), BC_OK);
    bc_http_client_set_tls(tls);
    return tls;
}

static bc_status_t
get(const char *addr, const char *path, bc_http_response_t *resp)
{
    return bc_http_request(addr, "GET", path, NULL, 0, 3000, resp);
}

static void
assert_hello(const char *addr)
{
    bc_http_response_t resp;
    assert_int_equal(get(addr, "/hello", &resp), BC_OK);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.body_len, 5);
    assert_memory_equal(resp.body, "hello", 5);
    bc_http_response_free(&resp);
}

/* ---- tests ---- */

static void
test_request_and_stream_over_tls(void **state)
{
    (void)state;
    char addr[64];
    bc_httpd_t *h = start_server(leaf_pem, leaf_key_pem, addr, sizeof(addr));
    bc_http_tls_t *tls = client_tls(ca_file);
    assert_hello(addr);
    assert_string_equal(bc_http_client_tls_error(), "");

    bc_http_response_t resp;
    assert_int_equal(get(addr, "/big", &resp), BC_OK);
    assert_int_equal(resp.body_len, BIG_LEN);
    assert_memory_equal(resp.body, big, BIG_LEN);
    bc_http_response_free(&resp);

    bc_http_stream_t s;
    char why[200] = "";
    assert_int_equal(bc_http_stream_connect(&s, addr, 0, bc_time_mono_ms() + 3000, 0, why,
                                            sizeof(why)), BC_OK);
    assert_non_null(s.ssl);
    assert_int_equal(bc_http_stream_get(&s, addr, "/big", "*/*", NULL), BC_OK);
    assert_int_equal(bc_http_stream_head(&s, 8192), BC_OK);
    assert_int_equal(s.status, 200);
    size_t total = 0, got, n;
    bc_status_t st = BC_OK;
    while (st == BC_OK) {
        const char *d = bc_http_stream_data(&s, &n);
        assert_true(total + n <= BIG_LEN);
        assert_memory_equal(d, big + total, n);
        total += n;
        bc_http_stream_consume(&s, n);
        st = bc_http_stream_read(&s, 4096, &got);
    }
    assert_int_equal(st, BC_ECLOSED);
    assert_int_equal(total, BIG_LEN);
    bc_http_stream_close(&s);

    bc_http_client_set_tls(NULL);
    bc_http_tls_free(tls);
    bc_httpd_destroy(h);
}

static void
test_a_certificate_of_another_ca_or_host_is_refused(void **state)
{
    (void)state;
    char addr[64], addr2[64];
    bc_httpd_t *h = start_server(leaf_pem, leaf_key_pem, addr, sizeof(addr));
    bc_httpd_t *h2 = start_server(elsewhere_pem, elsewhere_key_pem, addr2, sizeof(addr2));
    bc_http_response_t resp;

    bc_http_tls_t *rogue = client_tls(rogue_ca_file);
    assert_int_equal(get(addr, "/hello", &resp), BC_EACCES);
    assert_non_null(strstr(bc_http_client_tls_error(), "certificate verify failed"));
    bc_http_stream_t s;
    char why[200] = "";
    assert_int_equal(bc_http_stream_connect(&s, addr, 0, bc_time_mono_ms() + 3000, 0, why,
                                            sizeof(why)), BC_EACCES);
    assert_non_null(strstr(why, "certificate verify failed"));
    bc_http_stream_close(&s);
    bc_http_client_set_tls(NULL);
    bc_http_tls_free(rogue);

    /* the right CA, but a certificate issued to another address */
    bc_http_tls_t *tls = client_tls(ca_file);
    assert_int_equal(get(addr2, "/hello", &resp), BC_EACCES);
    assert_non_null(strstr(bc_http_client_tls_error(), "mismatch"));
    assert_hello(addr);   /* the one that names 127.0.0.1 passes */
    bc_http_client_set_tls(NULL);
    bc_http_tls_free(tls);
    bc_httpd_destroy(h);
    bc_httpd_destroy(h2);
}

static void
test_tls_against_a_plain_server_or_a_silent_one(void **state)
{
    (void)state;
    char addr[64];
    bc_httpd_t *plain = start_server(NULL, NULL, addr, sizeof(addr));
    bc_http_tls_t *tls = client_tls(ca_file);
    bc_http_response_t resp;
    assert_int_equal(get(addr, "/hello", &resp), BC_EPROTO);
    assert_non_null(strstr(bc_http_client_tls_error(), "TLS handshake failed"));
    bc_httpd_destroy(plain);

    /* a socket that listens and never answers: the deadline ends it */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sa.sin_port));
    int64_t t0 = bc_time_mono_ms();
    assert_int_equal(bc_http_request(addr, "GET", "/hello", NULL, 0, 300, &resp), BC_ETIMEOUT);
    assert_true(bc_time_mono_ms() - t0 < 2000);
    assert_string_equal(bc_http_client_tls_error(), "TLS handshake timed out");
    close(fd);
    bc_http_client_set_tls(NULL);
    bc_http_tls_free(tls);
}

static int
raw_connect(const char *addr)
{
    unsigned port;
    assert_int_equal(sscanf(addr, "127.0.0.1:%u", &port), 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void
test_the_https_server_survives_hostile_clients(void **state)
{
    (void)state;
    char addr[64];
    bc_httpd_t *h = start_server(leaf_pem, leaf_key_pem, addr, sizeof(addr));
    bc_http_response_t resp;

    /* plain HTTP: no HTTP answer comes back */
    assert_true(get(addr, "/hello", &resp) != BC_OK);

    /* a ClientHello cut short, then gone; one that says nothing at all */
    int cut = raw_connect(addr);
    static const char partial[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    assert_int_equal(send(cut, partial, sizeof(partial) - 1, 0), (ssize_t)sizeof(partial) - 1);
    close(cut);
    int silent = raw_connect(addr);
    /* garbage that is not TLS at all */
    int junk = raw_connect(addr);
    assert_int_equal(send(junk, "\x16\xff\xff\xff\xff", 5, 0), 5);

    bc_http_tls_t *tls = client_tls(ca_file);
    assert_hello(addr);
    close(silent);
    close(junk);
    assert_hello(addr);
    bc_http_client_set_tls(NULL);
    bc_http_tls_free(tls);
    bc_httpd_destroy(h);
}

static void
copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "r"), *out = fopen(to, "w");
    assert_non_null(in);
    assert_non_null(out);
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

static void
test_certificates_renewed_while_serving(void **state)
{
    (void)state;
    char addr[64], err[256] = "", ca_copy[160];
    /* the server starts with a certificate naming another address */
    bc_httpd_t *h = start_server(elsewhere_pem, elsewhere_key_pem, addr, sizeof(addr));
    snprintf(ca_copy, sizeof(ca_copy), "%s/ca-copy.crt", dir);
    copy_file(ca_file, ca_copy);
    bc_http_tls_t *tls = client_tls(ca_copy);
    bc_http_response_t resp;
    assert_int_equal(get(addr, "/hello", &resp), BC_EACCES);

    /* renewed: the next handshakes get the new one */
    assert_int_equal(bc_httpd_set_tls(h, leaf_pem, leaf_key_pem, err, sizeof(err)), BC_OK);
    assert_hello(addr);
    /* an unusable one is refused, saying why; the one in force stays */
    assert_int_equal(bc_httpd_set_tls(h, "not a certificate", leaf_key_pem, err, sizeof(err)),
                     BC_EINVAL);
    assert_non_null(strstr(err, "certificate chain"));
    assert_hello(addr);

    /* the client's CA file replaced by another CA's: trusted no more after
     * a reload; a file gone: the reload fails and the context stays */
    copy_file(rogue_ca_file, ca_copy);
    assert_hello(addr);   /* not re-read yet */
    assert_int_equal(bc_http_tls_reload(tls, err, sizeof(err)), BC_OK);
    assert_int_equal(get(addr, "/hello", &resp), BC_EACCES);
    copy_file(ca_file, ca_copy);
    assert_int_equal(bc_http_tls_reload(tls, err, sizeof(err)), BC_OK);
    assert_hello(addr);
    unlink(ca_copy);
    assert_int_equal(bc_http_tls_reload(tls, err, sizeof(err)), BC_EINVAL);
    assert_non_null(strstr(err, "cannot load the CA file"));
    assert_hello(addr);

    /* a plain server has no certificate to renew */
    char paddr[64];
    bc_httpd_t *plain = start_server(NULL, NULL, paddr, sizeof(paddr));
    assert_int_equal(bc_httpd_set_tls(plain, leaf_pem, leaf_key_pem, err, sizeof(err)),
                     BC_EINVAL);
    bc_httpd_destroy(plain);

    bc_http_client_set_tls(NULL);
    bc_http_tls_free(tls);
    bc_httpd_destroy(h);
}

/* A TLS server of one connection (OpenSSL): answers a body ended by EOF,
 * with a close_notify or, when cut, by just closing the socket. */
typedef struct cut_server {
    int listen_fd;
    bool cut;
    pthread_t thread;
} cut_server_t;

static void *
cut_server_run(void *arg)
{
    cut_server_t *cs = arg;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    BIO *cb = BIO_new_mem_buf(leaf_pem, -1), *kb = BIO_new_mem_buf(leaf_key_pem, -1);
    X509 *cert = PEM_read_bio_X509(cb, NULL, NULL, NULL);
    EVP_PKEY *key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
    SSL_CTX_use_certificate(ctx, cert);
    SSL_CTX_use_PrivateKey(ctx, key);
    int fd = accept(cs->listen_fd, NULL, NULL);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) == 1) {
        char req[2048];
        (void)SSL_read(ssl, req, sizeof(req));
        static const char reply[] = "HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nthe whole body";
        SSL_write(ssl, reply, (int)sizeof(reply) - 1);
        if (!cs->cut) SSL_shutdown(ssl);
    }
    close(fd);
    SSL_free(ssl);
    X509_free(cert);
    EVP_PKEY_free(key);
    BIO_free(cb);
    BIO_free(kb);
    SSL_CTX_free(ctx);
    return NULL;
}

static void
cut_server_start(cut_server_t *cs, bool cut, char *addr, size_t len)
{
    cs->cut = cut;
    cs->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(cs->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(cs->listen_fd, 4), 0);
    assert_int_equal(getsockname(cs->listen_fd, (struct sockaddr *)&sa, &sl), 0);
    snprintf(addr, len, "127.0.0.1:%u", ntohs(sa.sin_port));
    assert_int_equal(pthread_create(&cs->thread, NULL, cut_server_run, cs), 0);
}

static void
cut_server_join(cut_server_t *cs)
{
    pthread_join(cs->thread, NULL);
    close(cs->listen_fd);
}

static void
test_a_body_cut_short_is_an_error(void **state)
{
    (void)state;
    bc_http_tls_t *tls = client_tls(ca_file);
    char addr[64];
    bc_http_response_t resp;
    cut_server_t cs;
    cut_server_start(&cs, false, addr, sizeof(addr));
    assert_int_equal(get(addr, "/", &resp), BC_OK);
    assert_string_equal(resp.body, "the whole body");
    bc_http_response_free(&resp);
    cut_server_join(&cs);
    /* the same bytes, but the connection just stops: no close_notify, so
     * the end cannot be told from a cut */
    cut_server_start(&cs, true, addr, sizeof(addr));
    assert_int_equal(get(addr, "/", &resp), BC_EIO);
    cut_server_join(&cs);
    bc_http_client_set_tls(NULL);
    bc_http_tls_free(tls);
}

static void
test_open_reports_bad_files(void **state)
{
    (void)state;
    bc_http_tls_t *tls = NULL;
    char err[256] = "";
    bc_http_tls_config_t none = {.ca_file = NULL};
    assert_int_equal(bc_http_tls_open(&none, &tls, err, sizeof(err)), BC_EINVAL);
    assert_null(tls);
    bc_http_tls_config_t missing = {.ca_file = "/nonexistent/ca.crt"};
    assert_int_equal(bc_http_tls_open(&missing, &tls, err, sizeof(err)), BC_EINVAL);
    assert_non_null(strstr(err, "cannot load the CA file /nonexistent/ca.crt"));
    bc_http_tls_config_t nocert = {.ca_file = ca_file, .cert_file = "/nonexistent/n.crt"};
    assert_int_equal(bc_http_tls_open(&nocert, &tls, err, sizeof(err)), BC_EINVAL);
    assert_non_null(strstr(err, "cannot load the certificate /nonexistent/n.crt"));
    assert_null(tls);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_and_stream_over_tls),
        cmocka_unit_test(test_a_certificate_of_another_ca_or_host_is_refused),
        cmocka_unit_test(test_tls_against_a_plain_server_or_a_silent_one),
        cmocka_unit_test(test_the_https_server_survives_hostile_clients),
        cmocka_unit_test(test_certificates_renewed_while_serving),
        cmocka_unit_test(test_a_body_cut_short_is_an_error),
        cmocka_unit_test(test_open_reports_bad_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
