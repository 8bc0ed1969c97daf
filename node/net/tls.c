/*
 * tls.c -- the data port's TLS context (implements tls.h).
 *
 * HOW: a context is built whole from the files (chain, key, the key
 * checked against the certificate, the client CAs) and only then put in
 * force, so a failed "refresh_certs" changes nothing -- memcached 1.6.18
 * loads into the context in force, and a half-read pair can be left
 * behind.  The error texts are memcached's, so scripts that read them
 * keep working.
 */
#include "net/tls.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "bc_log.h"
#include "bc_ssl.h"
#include "bc_time.h"

struct bc_tls {
    bc_tls_config_t cfg;          /* strings owned */
    pthread_mutex_t mu;           /* guards ctx, peer_ctx and loaded_ms */
    SSL_CTX *ctx;
    SSL_CTX *peer_ctx;            /* client side, towards peers; NULL: no ca_cert */
    int64_t loaded_ms;
    /* bc_tls_on_reload; set before the threads that reload start */
    bc_tls_reload_fn on_reload;
    void *on_reload_ctx;
};

static const int min_versions[] = {TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION,
                                   TLS1_3_VERSION};

const char *
bc_tls_version_name(int v)
{
    static const char *const names[] = {"tlsv1.0", "tlsv1.1", "tlsv1.2", "tlsv1.3"};
    return v >= 0 && v <= 3 ? names[v] : "?";
}

/* "FILE : the first OpenSSL error" into err, as memcached words it. */
static void
tls_error(char *err, size_t errlen, const char *what, const char *file)
{
    char reason[256];
    unsigned long e = ERR_get_error();
    if (e != 0) {
        ERR_error_string_n(e, reason, sizeof(reason));
    } else {
        snprintf(reason, sizeof(reason), "unknown error");
    }
    ERR_clear_error();
    if (file != NULL) {
        snprintf(err, errlen, "%s: %s : %s", what, file, reason);
    } else {
        snprintf(err, errlen, "%s : %s", what, reason);
    }
}

/* The node's identity and trust into ctx, for the data port's server
 * context and the client context towards peers alike: ciphers, the
 * certificate chain, its key (checked against it), the CA certificate if
 * any.  False with err set. */
static bool
tls_load_identity(SSL_CTX *ctx, const bc_tls_config_t *c, char *err, size_t errlen)
{
    const char *key = c->key != NULL ? c->key : c->chain_cert;
    if (c->ciphers != NULL && SSL_CTX_set_cipher_list(ctx, c->ciphers) != 1) {
        tls_error(err, errlen, "Error setting the cipher list", c->ciphers);
    } else if (SSL_CTX_use_certificate_chain_file(ctx, c->chain_cert) != 1) {
        tls_error(err, errlen, "Error loading the certificate chain", c->chain_cert);
    } else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        tls_error(err, errlen, "Error loading the key", key);
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_error(err, errlen, "Error validating the certificate", NULL);
    } else if (c->ca_cert != NULL && SSL_CTX_load_verify_locations(ctx, c->ca_cert, NULL) != 1) {
        tls_error(err, errlen, "Error loading the CA certificate", c->ca_cert);
    } else {
        return true;
    }
    return false;
}

static SSL_CTX *
tls_build(const bc_tls_config_t *c, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    ERR_clear_error();
    if (ctx == NULL) {
        tls_error(err, errlen, "Error creating the TLS context", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, min_versions[c->min_version]);
    /* No renegotiation (TLS <= 1.2): a client could make us do
     * handshakes at will. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* The server writes what is left of a reply again after a short
     * write, from an output queue that may have moved (server.c). */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (tls_load_identity(ctx, c, err, errlen)) {
        if (c->ca_cert != NULL) {
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(c->ca_cert);
            if (names != NULL) SSL_CTX_set_client_CA_list(ctx, names);
        }
        int mode = SSL_VERIFY_NONE;
        switch (c->verify_mode) {
        case 1: mode = SSL_VERIFY_PEER; break;
        case 2: mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT; break;
        case 3: mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE; break;
        default: break;
        }
        SSL_CTX_set_verify(ctx, mode, NULL);
        bc_ssl_cache_certs(ctx);
        return ctx;
    }
    SSL_CTX_free(ctx);
    return NULL;
}

/* The client context towards peers (see tls.h, PEERS); NULL with err set. */
static SSL_CTX *
tls_build_peer(const bc_tls_config_t *c, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    ERR_clear_error();
    if (ctx == NULL) {
        tls_error(err, errlen, "Error creating the TLS context", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, min_versions[c->min_version]);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (tls_load_identity(ctx, c, err, errlen)) {    /* callers give a CA */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        bc_ssl_cache_certs(ctx);
        return ctx;
    }
    SSL_CTX_free(ctx);
    return NULL;
}

/* What bio holds, as a malloc'd NUL-terminated string; NULL: no memory. */
static char *
tls_bio_string(BIO *bio)
{
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s != NULL) {
        memcpy(s, data, (size_t)n);
        s[n] = '\0';
    }
    return s;
}

bc_status_t
bc_tls_identity_pem(bc_tls_t *tls, char **cert_pem, char **key_pem, char *err, size_t errlen)
{
    *cert_pem = *key_pem = NULL;
    pthread_mutex_lock(&tls->mu);
    SSL_CTX *ctx = tls->ctx;
    SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&tls->mu);
    bc_status_t st = BC_OK;
    BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
    STACK_OF(X509) *chain = NULL;
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    EVP_PKEY *key = SSL_CTX_get0_privatekey(ctx);
    ERR_clear_error();
    if (cb == NULL || kb == NULL) {
        st = BC_ENOMEM;
    } else if (leaf == NULL || key == NULL || SSL_CTX_get0_chain_certs(ctx, &chain) != 1 ||
               PEM_write_bio_X509(cb, leaf) != 1 ||
               PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) != 1) {
        tls_error(err, errlen, "Error writing the certificate and key for the admin port", NULL);
        st = BC_EINVAL;
    }
    for (int i = 0; st == BC_OK && chain != NULL && i < sk_X509_num(chain); i++) {
        if (PEM_write_bio_X509(cb, sk_X509_value(chain, i)) != 1) {
            tls_error(err, errlen, "Error writing the certificate chain for the admin port",
                      NULL);
            st = BC_EINVAL;
        }
    }
    if (st == BC_OK) {
        *cert_pem = tls_bio_string(cb);
        *key_pem = tls_bio_string(kb);
        if (*cert_pem == NULL || *key_pem == NULL) {
            free(*cert_pem);
            free(*key_pem);
            *cert_pem = *key_pem = NULL;
            st = BC_ENOMEM;
        }
    }
    BIO_free(cb);
    BIO_free(kb); /* a memory BIO's buffer is wiped when freed: the key with it */
    SSL_CTX_free(ctx);
    return st;
}

static char *
dup_or_null(const char *s)
{
    return s != NULL && *s != '\0' ? strdup(s) : NULL;
}

bc_status_t
bc_tls_open(const bc_tls_config_t *config, bc_tls_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (config->chain_cert == NULL || *config->chain_cert == '\0') {
        snprintf(err, errlen, "TLS needs a certificate chain (-o ssl_chain_cert=FILE)");
        return BC_EINVAL;
    }
    if (config->verify_mode < 0 || config->verify_mode > 3 || config->min_version < 0 ||
        config->min_version > 3) {
        snprintf(err, errlen, "ssl_verify_mode and ssl_min_version are 0..3");
        return BC_EINVAL;
    }
    if (config->verify_mode != 0 && (config->ca_cert == NULL || *config->ca_cert == '\0')) {
        snprintf(err, errlen, "ssl_verify_mode %d checks client certificates against "
                 "-o ssl_ca_cert=FILE: give it", config->verify_mode);
        return BC_EINVAL;
    }
    bc_tls_t *t = calloc(1, sizeof(*t));
    if (t == NULL) return BC_ENOMEM;
    t->cfg = *config;
    t->cfg.chain_cert = dup_or_null(config->chain_cert);
    t->cfg.key = dup_or_null(config->key);
    t->cfg.ca_cert = dup_or_null(config->ca_cert);
    t->cfg.ciphers = dup_or_null(config->ciphers);
    pthread_mutex_init(&t->mu, NULL);
    if (t->cfg.chain_cert == NULL) {
        bc_tls_free(t);
        return BC_ENOMEM;
    }
    t->ctx = tls_build(&t->cfg, err, errlen);
    if (t->ctx != NULL && t->cfg.ca_cert != NULL) {
        t->peer_ctx = tls_build_peer(&t->cfg, err, errlen);
        if (t->peer_ctx == NULL) {
            SSL_CTX_free(t->ctx);
            t->ctx = NULL;
        }
    }
    if (t->ctx == NULL) {
        bc_tls_free(t);
        return BC_EINVAL;
    }
    t->loaded_ms = bc_time_mono_ms();
    *out = t;
    return BC_OK;
}

bc_status_t
bc_tls_reload(bc_tls_t *t, char *err, size_t errlen)
{
    SSL_CTX *ctx = tls_build(&t->cfg, err, errlen);
    if (ctx == NULL) return BC_EINVAL;
    SSL_CTX *peer = NULL;
    if (t->cfg.ca_cert != NULL && (peer = tls_build_peer(&t->cfg, err, errlen)) == NULL) {
        SSL_CTX_free(ctx);
        return BC_EINVAL;
    }
    pthread_mutex_lock(&t->mu);
    SSL_CTX *old = t->ctx, *old_peer = t->peer_ctx;
    t->ctx = ctx;
    t->peer_ctx = peer;
    t->loaded_ms = bc_time_mono_ms();
    pthread_mutex_unlock(&t->mu);
    SSL_CTX_free(old);            /* open connections hold their own references */
    SSL_CTX_free(old_peer);
    if (t->on_reload != NULL) t->on_reload(t->on_reload_ctx, t);
    return BC_OK;
}

void
bc_tls_on_reload(bc_tls_t *tls, bc_tls_reload_fn fn, void *ctx)
{
    tls->on_reload = fn;
    tls->on_reload_ctx = ctx;
}

SSL *
bc_tls_new_ssl(bc_tls_t *t, int fd)
{
    pthread_mutex_lock(&t->mu);
    SSL *ssl = SSL_new(t->ctx);
    pthread_mutex_unlock(&t->mu);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        char e[512];
        tls_error(e, sizeof(e), "cannot make a TLS session", NULL);
        log_warn("%s", e);
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

SSL *
bc_tls_new_peer_ssl(bc_tls_t *t, int fd)
{
    pthread_mutex_lock(&t->mu);
    SSL *ssl = t->peer_ctx != NULL ? SSL_new(t->peer_ctx) : NULL;
    pthread_mutex_unlock(&t->mu);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        char e[512];
        tls_error(e, sizeof(e), "cannot make a TLS session to a peer", NULL);
        log_warn("%s", e);
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

bool
bc_tls_peer_ready(const bc_tls_t *t)
{
    return t != NULL && t->cfg.ca_cert != NULL;
}

void
bc_tls_describe_error(SSL *ssl, int ret, char *err, size_t errlen)
{
    (void)bc_ssl_describe_error(ssl, ret, "the peer closed the connection during the TLS "
                                "handshake (does it speak TLS, and accept this node's "
                                "certificate?)", err, errlen);
}

uint64_t
bc_tls_age_s(bc_tls_t *t)
{
    pthread_mutex_lock(&t->mu);
    int64_t at = t->loaded_ms;
    pthread_mutex_unlock(&t->mu);
    int64_t d = bc_time_mono_ms() - at;
    return d > 0 ? (uint64_t)d / 1000u : 0;
}

const bc_tls_config_t *
bc_tls_config(const bc_tls_t *t)
{
    return &t->cfg;
}

void
bc_tls_free(bc_tls_t *t)
{
    if (t == NULL) return;
    SSL_CTX_free(t->ctx);
    SSL_CTX_free(t->peer_ctx);
    pthread_mutex_destroy(&t->mu);
    free((char *)t->cfg.chain_cert);
    free((char *)t->cfg.key);
    free((char *)t->cfg.ca_cert);
    free((char *)t->cfg.ciphers);
    free(t);
}
