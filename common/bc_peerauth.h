/*
 * bc_peerauth.h -- proving, between the nodes of a cluster, that each end
 * of a peer link holds the cluster secret, without ever sending it.
 *
 * WHAT IT DOES
 *   Peer links -- a node forwarding a client's request to the owner's
 *   primary, a backup asking its primary for the replication stream, a
 *   migration's destination pulling a bucket from its source -- give
 *   whoever opens them a node's powers: requests served without being
 *   forwarded, a full copy of the cache, a bucket held read-only.  They
 *   authenticate with the cluster secret (--cluster-secret-file, read by
 *   common/bc_secret.h under bc_secret_rules_cluster: the first value
 *   proves, every value verifies, so a rotation never splits the
 *   cluster).  docs/security.md says why each choice below was made.
 *
 * HOW: A CHALLENGE-RESPONSE ON THE DATA PORT (forwarding, replication)
 *   The words are common/bc_wire.h's; the proofs are made here:
 *
 *     client                                        server
 *     bucketcache_peer <name> <cnonce>     ---->    fresh snonce
 *                                          <----    BUCKETCACHE_CHALLENGE <sname> <snonce>
 *                                                        <server proof>
 *     checks the server proof (mutual)
 *     bucketcache_auth <client proof>      ---->    checks it: OK, or an error
 *                                                   line, counted, and closed
 *
 *   A proof is HMAC-SHA256(secret, transcript) in lowercase hex, where the
 *   transcript is "bucketcache-peer-auth-v1", the role ("server" or
 *   "client") and the fields of the exchange -- the purpose ("peer",
 *   "replicate"), the client's line (its name, its nonce and, for
 *   replication, its group, stream and offset), the server's name and
 *   nonce -- each on its own line.  So a proof is good for one purpose,
 *   one pair of names, one pair of nonces: a captured exchange replayed
 *   on a new connection meets a new server nonce and fails, a server's
 *   proof cannot be reflected as a client's, and a proof for forwarding
 *   does not open replication.
 *
 * HOW: A SIGNED REQUEST ON THE ADMIN PORT (migration export)
 *   HTTP has no round trip to spare before the request, so the request
 *   carries its proof in a header, with a timestamp and a nonce:
 *
 *     X-Bucketcache-Peer: <name> <unix-ms> <nonce> <proof>
 *
 *   proof covering "http-request", the method, the request target (path
 *   and query), the name, the time and the nonce.  The server accepts it
 *   within BC_PEERAUTH_HTTP_WINDOW_MS of its own clock and only once
 *   (the nonces of the window are remembered); its answer carries
 *
 *     X-Bucketcache-Peer-Proof: <server-name> <proof>
 *
 *   over "http-response", the method, the target and the request's nonce,
 *   which the client checks before it uses the body (mutual).
 *
 * THREADS
 *   A bc_peerauth_t is shared by every thread of a process; every call is
 *   thread-safe (a rwlock guards the secret, a mutex the nonces seen).
 *
 * MEMORY
 *   The secret is wiped when replaced or freed (bc_secret_clear); HMAC
 *   keys are never copied out.
 */
#ifndef BC_PEERAUTH_H
#define BC_PEERAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_status.h"

#define BC_PEERAUTH_NONCE_LEN 32          /* hex characters: 128 random bits */
#define BC_PEERAUTH_PROOF_LEN 64          /* hex characters: an HMAC-SHA256 */
#define BC_PEERAUTH_MAX_FIELDS 8

/* The HTTP side (see HOW). */
#define BC_PEERAUTH_HTTP_HEADER       "X-Bucketcache-Peer"
#define BC_PEERAUTH_HTTP_REPLY_HEADER "X-Bucketcache-Peer-Proof"
#define BC_PEERAUTH_HTTP_WINDOW_MS    30000u  /* clock difference tolerated */
#define BC_PEERAUTH_HTTP_MAX          256     /* longest header value, NUL included */
#define BC_PEERAUTH_SEEN_MAX          4096    /* nonces remembered (two windows' worth) */

typedef struct bc_peerauth bc_peerauth_t;

typedef enum bc_peerauth_role {
    BC_PEERAUTH_SERVER,            /* the end that accepted the connection */
    BC_PEERAUTH_CLIENT,            /* the end that opened it */
} bc_peerauth_role_t;

/*
 * Loads the cluster secret file at path (bc_secret_load with
 * bc_secret_rules_cluster; "credential:NAME" reads a systemd credential).
 * *out is owned by the caller (bc_peerauth_free).  Errors: those of
 * bc_secret_load (err names the file and the problem, never a value).
 */
bc_status_t bc_peerauth_open(const char *path, bc_peerauth_t **out, char *err, size_t errlen);

/* The same from text (tests, fuzzing); name is what messages call it;
 * bc_peerauth_reload keeps it as it is. */
bc_status_t bc_peerauth_from_text(const char *name, const char *text, bc_peerauth_t **out,
                                  char *err, size_t errlen);

/*
 * Re-reads the file (SIGHUP).  On failure the secret in force stays and
 * err says why.  Errors: those of bc_secret_load.
 */
bc_status_t bc_peerauth_reload(bc_peerauth_t *pa, char *err, size_t errlen);

/* Wipes and frees.  NULL is accepted. */
void bc_peerauth_free(bc_peerauth_t *pa);

/* Where the secret came from (file, or the name given).  Borrowed. */
const char *bc_peerauth_source(const bc_peerauth_t *pa);

/* A fresh nonce, BC_PEERAUTH_NONCE_LEN lowercase hex digits and a NUL,
 * from the operating system's random generator (RAND_bytes). */
void bc_peerauth_nonce(char out[BC_PEERAUTH_NONCE_LEN + 1]);

/* Whether s[0..n) is a nonce as bc_peerauth_nonce writes them. */
bool bc_peerauth_nonce_valid(const char *s, size_t n);

/*
 * The proof of `role` over fields[0..n) (at most BC_PEERAUTH_MAX_FIELDS,
 * each printable ASCII without a line end), made with the first value of
 * the secret, into out (64 hex digits and a NUL).  false when a field is
 * unfit (out is then "").
 */
bool bc_peerauth_prove(bc_peerauth_t *pa, bc_peerauth_role_t role, const char *const *fields,
                       size_t n, char out[BC_PEERAUTH_PROOF_LEN + 1]);

/*
 * Whether proof[0..len) is role's proof over fields with ANY value of the
 * secret.  Every value is tried, match or not, and compared with
 * CRYPTO_memcmp: the time says nothing about the proof's content.
 */
bool bc_peerauth_verify(bc_peerauth_t *pa, bc_peerauth_role_t role, const char *const *fields,
                        size_t n, const char *proof, size_t len);

/* ---- the HTTP side ---- */

/* A request's claim, parsed from its X-Bucketcache-Peer header. */
typedef struct bc_peerauth_http_claim {
    char name[64];                                /* the node that signed */
    uint64_t ts_ms;                               /* its clock, unix ms */
    char nonce[BC_PEERAUTH_NONCE_LEN + 1];
    char proof[BC_PEERAUTH_PROOF_LEN + 1];
} bc_peerauth_http_claim_t;

/*
 * Parses a header value "<name> <unix-ms> <nonce> <proof>" (value[0..n),
 * single spaces, canonical decimal, a name as bc_wire_name_valid has it).
 * Errors: BC_EINVAL (*out then undefined).
 */
bc_status_t bc_peerauth_http_parse(const char *value, size_t n, bc_peerauth_http_claim_t *out);

/*
 * Signs a request: writes the X-Bucketcache-Peer value for method and
 * target (path and query, as sent) by node `name` at now_ms (unix ms)
 * into buf (NUL-terminated), and the nonce it chose into nonce (for
 * bc_peerauth_http_reply_check).  Returns the value's length, 0 when a
 * field is unfit or len too small.
 */
size_t bc_peerauth_http_sign(bc_peerauth_t *pa, const char *method, const char *target,
                             const char *name, uint64_t now_ms, char *buf, size_t len,
                             char nonce[BC_PEERAUTH_NONCE_LEN + 1]);

/*
 * Checks a request's header value (value NULL: the header is missing) for
 * method and target at now_ms.  BC_OK: the proof is good, fresh and new --
 * its nonce is remembered from now on, so the same request is refused if
 * it comes again; *claim (may be NULL) then holds what it said.  Errors,
 * with why saying which (for the refusal's body and the log):
 *   BC_EACCES   missing, malformed, outside the window, replayed, or a
 *               proof no value of the secret makes;
 *   BC_EBUSY    BC_PEERAUTH_SEEN_MAX nonces of the window are remembered
 *               already (a flood of valid requests): refused, try later.
 */
bc_status_t bc_peerauth_http_check(bc_peerauth_t *pa, const char *method, const char *target,
                                   const char *value, size_t n, uint64_t now_ms,
                                   bc_peerauth_http_claim_t *claim, char *why, size_t whylen);

/*
 * The answer's X-Bucketcache-Peer-Proof value, "<server-name> <proof>",
 * for a request of method and target whose nonce was `nonce`, into buf.
 * Returns its length, 0 when a field is unfit or len too small.
 */
size_t bc_peerauth_http_reply(bc_peerauth_t *pa, const char *method, const char *target,
                              const char *nonce, const char *server_name, char *buf,
                              size_t len);

/*
 * Checks the answer's X-Bucketcache-Peer-Proof value (NULL: missing)
 * against the request the client signed with `nonce`.  false, with why,
 * when it is missing, malformed or wrong: the body is not to be trusted.
 */
bool bc_peerauth_http_reply_check(bc_peerauth_t *pa, const char *method, const char *target,
                                  const char *nonce, const char *value, size_t n, char *why,
                                  size_t whylen);

#endif
