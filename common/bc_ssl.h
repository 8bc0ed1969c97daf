/*
 * bc_ssl.h -- what every TLS client of bucketcache does the same way: name
 * the host it dialled to the server and check the certificate against it,
 * and say why a handshake failed.  Three clients use it: the HTTP client
 * (common/bc_http_client.c: admin ports, the origin), the node's peer
 * links (node/net/tls.c) and the client library (client/tls.c).  Each
 * builds its own SSL_CTX (their versions, ciphers and files differ); only
 * the per-session steps live here, and one step every context takes once
 * it is built (bc_ssl_cache_certs).
 */
#ifndef BC_SSL_H
#define BC_SSL_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "bc_status.h"

/*
 * Prepares client session `ssl` for `host`, as it was addressed: a name is
 * sent as SNI (RFC 6066: an IP literal never is) and, when `check`, the
 * handshake accepts only a certificate that names it -- an IP literal
 * among the certificate's IP addresses, a name among its DNS names -- on
 * top of chaining to the CA, so that a certificate the cluster's CA issued
 * to another host does not pass for this one.  False when OpenSSL refuses
 * the name to check (the error queue is then cleared; a name OpenSSL
 * will not send as SNI, with no check, is simply not sent).  Nothing is
 * kept of `host`.
 */
bool bc_ssl_expect_host(SSL *ssl, const char *host, bool check);

/*
 * Call once a context's certificates are loaded, before any thread makes
 * a session of it.  OpenSSL 3.0 works out a certificate's extensions
 * (its key identifiers, its purposes) the first time a check needs them
 * and keeps them in the certificate: it writes them under the
 * certificate's lock, but later checks read them without it.  The CA
 * certificates in ctx's store, and ctx's own certificate, are shared by
 * every handshake of the process, so two first handshakes at once --
 * two migration imports dialling their sources over TLS -- race on them
 * (ThreadSanitizer saw it: ASN1_STRING_set against ASN1_STRING_cmp).
 * This works them out here, while one thread holds ctx.
 */
void bc_ssl_cache_certs(SSL_CTX *ctx);

/*
 * Why the handshake (or an I/O call) of `ssl` failed with return value
 * `ret`, in err (always terminated): "certificate verify failed: <why>"
 * when the certificate check refused the server's certificate; OpenSSL's
 * own reason when it queued one; `closed` (the caller's wording, naming
 * the other side) when the connection closed without a TLS alert.  The
 * error queue is cleared.  Returns BC_EACCES for a certificate refused
 * (ours by the server's alert, or theirs by our check), BC_EIO for a
 * connection closed, BC_EPROTO otherwise.
 */
bc_status_t bc_ssl_describe_error(SSL *ssl, int ret, const char *closed, char *err,
                                  size_t errlen);

#endif
