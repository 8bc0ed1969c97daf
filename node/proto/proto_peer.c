/*
 * proto_peer.c -- the lines another node opens a connection with, on the
 * data port: the forwarding handshake, the replication handshake, and
 * the challenge-response that proves the cluster secret
 * (common/bc_wire.h has the words, common/bc_peerauth.h the proofs).
 *
 * HOW (this node holds a secret: env->peer_auth)
 *
 *   "bucketcache_peer <name> <cnonce>"          "bucketcache_replicate ... <cnonce>"
 *              \                                  /
 *               a pending handshake (pc->hs): the client's line as a
 *               formatter writes it, a fresh server nonce; answered
 *               "BUCKETCACHE_CHALLENGE <our-name> <snonce> <our-proof>"
 *                                  |
 *               "bucketcache_auth <proof>": the client's proof over the
 *               same fields, checked against every value of the secret
 *              /                                   \
 *   peer: "OK", the connection is a peer        replicate: BC_EHANDOFF with the
 *   (served or refused, never forwarded)        line's arguments (repl/repl.h)
 *
 *   Anything else -- a handshake without a nonce, a wrong proof, another
 *   command while a proof is due -- is answered with one of the
 *   BC_WIRE_PEER_AUTH_* lines, counted (peer_auth_failures: `stats`,
 *   /metrics), logged with the reason, and the connection is closed.
 *
 *   Without a secret (--insecure-no-peer-auth, or a standalone node) the
 *   handshakes are taken as they come, as before peers authenticated:
 *   "OK" at once, or the handoff; a node holding a secret then refuses to
 *   use such a link, since this node proved nothing (forward.c,
 *   repl/backup.c).
 *
 * BEHAVIOR: a connection that authenticated as a peer is a node of the
 * cluster: with memcached's ASCII authentication on (-Y, proto_auth.c) it
 * needs no user password -- its requests come from clients that
 * authenticated on the node that forwards them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_log.h"
#include "bc_peerauth.h"
#include "bc_wire.h"
#include "proto/proto_int.h"

/* A handshake waiting for the client's proof. */
struct bc_proto_peer_hs {
    bool replicate;                            /* else forwarding */
    char line[BC_WIRE_HANDSHAKE_MAX];          /* the client's line, canonical, no CRLF */
    char args[BC_WIRE_HANDSHAKE_MAX];          /* replicate: its arguments, for the handoff */
    char name[BC_WIRE_NAME_MAX + 1];           /* the client's */
    char server_name[BC_WIRE_NAME_MAX + 1];
    char snonce[BC_WIRE_NONCE_LEN + 1];
};

/* How this node names itself in a challenge: its znode name once
 * registered. */
static void
peer_self_name(bc_proto_conn_t *pc, char *buf, size_t len)
{
    bc_node_cluster_info_t ci;
    snprintf(buf, len, "unregistered");
    if (pc->env->cluster == NULL) return;
    bc_node_cluster_get_info(pc->env->cluster, &ci);
    if (bc_wire_name_valid(ci.node_name, strlen(ci.node_name))) {
        snprintf(buf, len, "%s", ci.node_name);
    }
}

/* Refuses a handshake: the line, the count, the log; the connection is
 * closed once the line is sent. */
static bc_status_t
peer_refuse(bc_proto_conn_t *pc, bc_wire_peer_auth_failure_t why, const char *who)
{
    const char *line = bc_wire_peer_auth_line(why);
    bc_stats_incr(pc->stats, peer_auth_failures);
    log_warn("connection %d: peer handshake%s%s refused: %.*s", pc->id, who[0] ? " of " : "", who,
             (int)(strlen(line) - 15), line + 13);
    bc__proto_reply_bytes(pc, line, strlen(line));
    free(pc->hs);
    pc->hs = NULL;
    return BC_ECLOSED;
}

/* The fields both proofs cover (bc_peerauth.h): the client's line, our
 * name, our nonce. */
static void
peer_fields(const bc_proto_peer_hs_t *hs, const char *fields[3])
{
    fields[0] = hs->line;
    fields[1] = hs->server_name;
    fields[2] = hs->snonce;
}

/* Challenges a handshake whose canonical line is line[0..n) (CRLF
 * included, as the formatter wrote it). */
static bc_status_t
peer_challenge(bc_proto_conn_t *pc, bool replicate, const char *line, size_t n,
               const char *args, const char *name)
{
    bc_proto_peer_hs_t *hs = calloc(1, sizeof(*hs));
    if (hs == NULL) {
        pc->oom = true;
        return BC_OK;
    }
    free(pc->hs);
    pc->hs = hs;
    hs->replicate = replicate;
    memcpy(hs->line, line, n - 2);                       /* without the CRLF */
    hs->line[n - 2] = '\0';
    snprintf(hs->args, sizeof(hs->args), "%s", args != NULL ? args : "");
    snprintf(hs->name, sizeof(hs->name), "%s", name);
    peer_self_name(pc, hs->server_name, sizeof(hs->server_name));
    bc_peerauth_nonce(hs->snonce);

    bc_wire_challenge_t c;
    const char *fields[3];
    peer_fields(hs, fields);
    snprintf(c.name, sizeof(c.name), "%s", hs->server_name);
    memcpy(c.nonce, hs->snonce, sizeof(c.nonce));
    if (!bc_peerauth_prove(pc->env->peer_auth, BC_PEERAUTH_SERVER, fields, 3, c.proof)) {
        return peer_refuse(pc, BC_WIRE_PEER_AUTH_NO_SECRET, name);
    }
    char out[BC_WIRE_HANDSHAKE_MAX];
    size_t m = bc_wire_challenge_format(&c, out, sizeof(out));
    if (m == 0) return peer_refuse(pc, BC_WIRE_PEER_AUTH_NO_SECRET, name);
    bc__proto_reply_bytes(pc, out, m);
    return BC_OK;
}

/* The connection is a peer's from now on: served or refused, never
 * forwarded again (proto_text.h, FORWARDING). */
static void
peer_accept(bc_proto_conn_t *pc, const char *name)
{
    if (!pc->peer) {
        pc->peer = true;
        bc_stats_incr(pc->stats, peer_connections);
        log_debug("connection %d: peer connection from node %s%s", pc->id, name,
                  pc->env->peer_auth != NULL ? " (cluster secret proven)" : "");
    }
    /* A node of the cluster: memcached's -Y does not apply (proto_auth.c). */
    pc->authenticated = true;
    REPLY(pc, BC_WIRE_PEER_OK);
}

/* Hands a replication handshake over (proto_text.h, BC_EHANDOFF). */
static bc_status_t
peer_handoff(bc_proto_conn_t *pc, const char *args, size_t n)
{
    if (n >= BC_PROTO_HANDOFF_ARGS_MAX) {
        bc_stats_incr(pc->stats, protocol_errors);
        REPLY(pc, "CLIENT_ERROR line too long\r\n");
        return BC_OK;
    }
    pc->handoff_args = args;
    pc->handoff_len = n;
    return BC_EHANDOFF;
}

static bc_status_t
peer_line_peer(bc_proto_conn_t *pc, const bc_wire_peer_t *h)
{
    if (pc->env->peer_auth == NULL) {
        peer_accept(pc, h->name);
        return BC_OK;
    }
    if (h->nonce[0] == '\0') return peer_refuse(pc, BC_WIRE_PEER_AUTH_REQUIRED, h->name);
    char line[BC_WIRE_HANDSHAKE_MAX];
    size_t n = bc_wire_peer_format(h, line, sizeof(line));
    if (n == 0) return peer_refuse(pc, BC_WIRE_PEER_AUTH_REQUIRED, h->name);
    return peer_challenge(pc, false, line, n, NULL, h->name);
}

static bc_status_t
peer_line_replicate(bc_proto_conn_t *pc, const char *args, size_t nargs)
{
    if (pc->env->peer_auth == NULL) return peer_handoff(pc, args, nargs);
    bc_wire_replicate_t h;
    if (bc_wire_replicate_parse(args, nargs, &h) != BC_OK) {
        bc_stats_incr(pc->stats, peer_auth_failures);
        REPLY(pc, BC_WIRE_REPLICATE_BAD_LINE);
        return BC_ECLOSED;
    }
    if (h.nonce[0] == '\0') return peer_refuse(pc, BC_WIRE_PEER_AUTH_REQUIRED, h.name);
    char line[BC_WIRE_HANDSHAKE_MAX];
    size_t n = bc_wire_replicate_format(&h, line, sizeof(line));
    size_t wl = sizeof(BC_WIRE_REPLICATE_CMD);          /* the word and its space */
    if (n <= wl + 2) return peer_refuse(pc, BC_WIRE_PEER_AUTH_REQUIRED, h.name);
    char canon_args[BC_WIRE_HANDSHAKE_MAX];
    snprintf(canon_args, sizeof(canon_args), "%.*s", (int)(n - wl - 2), line + wl);
    return peer_challenge(pc, true, line, n, canon_args, h.name);
}

static bc_status_t
peer_line_auth(bc_proto_conn_t *pc, const char *proof)
{
    bc_proto_peer_hs_t *hs = pc->hs;
    if (pc->env->peer_auth == NULL) return peer_refuse(pc, BC_WIRE_PEER_AUTH_NO_SECRET, "");
    if (hs == NULL) return peer_refuse(pc, BC_WIRE_PEER_AUTH_UNEXPECTED, "");
    const char *fields[3];
    peer_fields(hs, fields);
    if (!bc_peerauth_verify(pc->env->peer_auth, BC_PEERAUTH_CLIENT, fields, 3, proof,
                            BC_WIRE_PROOF_LEN)) {
        char who[BC_WIRE_NAME_MAX + 1];
        snprintf(who, sizeof(who), "%s", hs->name);
        return peer_refuse(pc, BC_WIRE_PEER_AUTH_FAILED, who);
    }
    if (!hs->replicate) {
        peer_accept(pc, hs->name);
        free(pc->hs);
        pc->hs = NULL;
        return BC_OK;
    }
    /* hs stays until the connection is released: the server copies the
     * arguments before it lets the connection go (net/server.c). */
    log_debug("connection %d: replication handshake of node %s: cluster secret proven", pc->id,
              hs->name);
    pc->authenticated = true;
    return peer_handoff(pc, hs->args, strlen(hs->args));
}

bool
bc__proto_peer_line(bc_proto_conn_t *pc, const char *line, size_t len, bc_status_t *st)
{
    const char *args, *proof;
    size_t nargs;
    bc_wire_peer_t h;

    *st = BC_OK;
    if (pc->hs != NULL && bc_wire_auth_parse(line, len, &proof) != BC_OK) {
        /* The proof is due before anything else; a handed-over handshake
         * never gets here (the socket is gone). */
        *st = peer_refuse(pc, BC_WIRE_PEER_AUTH_NO_PROOF, pc->hs->name);
        return true;
    }
    if (pc->env->handoff_replicate && bc_wire_replicate_match(line, len, &args, &nargs) == BC_OK) {
        *st = peer_line_replicate(pc, args, nargs);
        return true;
    }
    switch (bc_wire_peer_parse(line, len, &h)) {
    case BC_OK:
        *st = peer_line_peer(pc, &h);
        return true;
    case BC_EINVAL:
        bc_stats_incr(pc->stats, protocol_errors);
        REPLY(pc, "CLIENT_ERROR bad command line format\r\n");
        return true;
    default:
        break;
    }
    switch (bc_wire_auth_parse(line, len, &proof)) {
    case BC_OK:
        *st = peer_line_auth(pc, proof);
        return true;
    case BC_EINVAL:
        bc_stats_incr(pc->stats, protocol_errors);
        REPLY(pc, "CLIENT_ERROR bad command line format\r\n");
        return true;
    default:
        return false;
    }
}

bool
bc__proto_peer_line_is_handshake(const char *line, size_t len)
{
    const char *args, *proof;
    size_t nargs;
    bc_wire_peer_t h;
    return bc_wire_replicate_match(line, len, &args, &nargs) == BC_OK ||
           bc_wire_peer_parse(line, len, &h) != BC_ENOTFOUND ||
           bc_wire_auth_parse(line, len, &proof) != BC_ENOTFOUND;
}

void
bc__proto_peer_release(bc_proto_conn_t *pc)
{
    free(pc->hs);
    pc->hs = NULL;
}
