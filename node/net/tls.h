/*
 * tls.h -- TLS on the data port, as memcached's -Z does it (OpenSSL).
 *
 * The server's certificate chain and key, an optional CA whose
 * certificates clients may present (ssl_verify_mode 1..3), and the
 * lowest protocol version accepted; re-read on "refresh_certs" and on
 * SIGHUP (and, through bc_tls_on_reload, the admin port's HTTPS with
 * them).  The server (net/server.c) makes one SSL object per connection
 * accepted on a TLS listener from the context in force at that moment;
 * a reload swaps the context, so connections already open keep the
 * certificate they were accepted with, as memcached's do.
 *
 * Options, memcached's names (-o ssl_chain_cert=...,ssl_key=...):
 *   chain_cert   PEM certificate chain (the server's certificate first)
 *   key          PEM private key; NULL: the chain file holds it
 *   ca_cert      PEM CAs of client certificates; NULL: none
 *   verify_mode  0 none, 1 request a client certificate, 2 require one,
 *                3 once (request on the first handshake only)
 *   min_version  0..3: TLS 1.0, 1.1, 1.2 (the default), 1.3
 *   ciphers      OpenSSL cipher list for TLS <= 1.2; NULL: its default
 *
 * PEERS: in a cluster the same files are this node's identity towards
 * other nodes too (forwarding, replication, migration): a client context
 * presents the chain (to a peer that asks, ssl_verify_mode) and checks
 * the peer's certificate against ca_cert -- the cluster's CA, required
 * with -Z in a cluster.  Only the chain is checked, not a name: peers are
 * reached at the addresses they registered, which certificates need not
 * list; whoever holds a certificate of the cluster's CA (and, on top,
 * the cluster secret, bc_peerauth) is a peer.  A reload renews both
 * contexts.
 *
 * THREADS: bc_tls_new_ssl and bc_tls_reload may run on any thread at once;
 * LOCKING RULE: mu guards the context pointer only (never held during I/O
 * or a handshake; SSL_new takes its own reference to the context).
 */
#ifndef BC_NET_TLS_H
#define BC_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "bc_status.h"

typedef struct bc_tls_config {
    const char *chain_cert;
    const char *key;
    const char *ca_cert;
    int verify_mode;
    int min_version;
    const char *ciphers;
} bc_tls_config_t;

typedef struct bc_tls bc_tls_t;

/*
 * Loads the certificates.  config strings are copied.  *out is owned by
 * the caller (bc_tls_free).  Errors: BC_EINVAL with err saying which file
 * and why (memcached's wording: "Error loading the certificate chain:
 * FILE : REASON"), BC_ENOMEM.
 */
bc_status_t bc_tls_open(const bc_tls_config_t *config, bc_tls_t **out, char *err,
                        size_t errlen);
/* Re-reads the files into a new context and puts it in force; on error
 * (err as above) the context in force stays. */
bc_status_t bc_tls_reload(bc_tls_t *tls, char *err, size_t errlen);
/*
 * fn(ctx, tls) runs after every successful bc_tls_reload, on the thread
 * that reloaded (SIGHUP's, or a worker's for "refresh_certs"): the other
 * users of the same files renew theirs (the HTTPS admin port).  It must
 * not call bc_tls_reload.  Set it before anything can reload.
 */
typedef void (*bc_tls_reload_fn)(void *ctx, bc_tls_t *tls);
void bc_tls_on_reload(bc_tls_t *tls, bc_tls_reload_fn fn, void *ctx);
/* A server-side SSL for fd, from the context in force; NULL when OpenSSL
 * cannot make one (logged).  Owned by the caller (SSL_free). */
SSL *bc_tls_new_ssl(bc_tls_t *tls, int fd);
/* A client-side SSL for a connection to a peer node on fd, from the
 * client context in force; NULL when ca_cert was not given or OpenSSL
 * cannot make one (logged).  Owned by the caller (SSL_free). */
SSL *bc_tls_new_peer_ssl(bc_tls_t *tls, int fd);
/*
 * The certificate chain and key in force, as PEM text (*cert_pem and
 * *key_pem malloc'd, owned by the caller, who wipes the key before
 * freeing it): for the admin port's HTTPS, whose library (GnuTLS under
 * libmicrohttpd) takes them from memory.  Errors: BC_ENOMEM, BC_EINVAL
 * (OpenSSL could not write them; err says why).
 */
bc_status_t bc_tls_identity_pem(bc_tls_t *tls, char **cert_pem, char **key_pem, char *err,
                                size_t errlen);
/* True when peers can be reached over TLS (ca_cert given). */
bool bc_tls_peer_ready(const bc_tls_t *tls);
/* The reason an SSL call on ssl failed with ret, into err (a failed
 * certificate check says which).  Clears this thread's OpenSSL errors. */
void bc_tls_describe_error(SSL *ssl, int ret, char *err, size_t errlen);

/* Seconds since the certificates in force were loaded (memcached's
 * time_since_server_cert_refresh). */
uint64_t bc_tls_age_s(bc_tls_t *tls);
/* The configuration, for "stats settings"; borrowed from tls. */
const bc_tls_config_t *bc_tls_config(const bc_tls_t *tls);
/* memcached's name of a min_version: "tlsv1.0" .. "tlsv1.3". */
const char *bc_tls_version_name(int min_version);
void bc_tls_free(bc_tls_t *tls);

#endif
