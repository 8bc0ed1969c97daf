/*
 * bc_wire.h -- the words a cluster adds to the memcached text protocol on
 * a node's data port, each defined once, with its formatter and its
 * parser.  Nodes format them, nodes and libbucketcache parse them;
 * docs/protocol.md describes them for people.
 *
 * REFUSALS: a node's answer for a key it will not serve (node/cluster/
 * decides, libbucketcache refreshes its table on them, client/ops.c):
 *
 *     SERVER_ERROR MOVED <bucket> <owner-gid> <epoch>
 *     SERVER_ERROR NO_OWNER <bucket> <epoch>
 *     SERVER_ERROR READONLY <bucket> <epoch>
 *     SERVER_ERROR NOT_PRIMARY <bucket> <gid> <epoch>
 *     SERVER_ERROR NOT_ENOUGH_IN_SYNC <bucket> <gid> <epoch>
 *
 *   The last one is not about routing: the bucket's primary is right, but
 *   fewer backups than the group's min_in_sync are in sync
 *   (node/repl/repl.h), so it takes no write now; libbucketcache retries it
 *   (backing off, without a table refresh) until the call's deadline.
 *
 * FORWARDING FAILURES: a node's answer when it could not relay a command
 * to its bucket's owner (node/proto/forward.c), e.g.
 *
 *     SERVER_ERROR forward failed: owner unreachable
 *
 * PEER HANDSHAKES: the first line of a connection another node opens:
 *
 *     bucketcache_peer <node-name> [<nonce>]        answered OK
 *         a forwarding connection (node/proto/forward.h): its requests are
 *         served or refused, never forwarded again
 *     bucketcache_replicate <gid> <replid|-> <offset> <node-name> [<nonce>]
 *         a backup asking its primary for the replication stream
 *         (node/repl/repl.h), answered with an RHELLO frame (bc_frame.h) or
 *         one of the BC_WIRE_REPLICATE_* refusal lines
 *
 * PEER AUTHENTICATION (common/bc_peerauth.h makes and checks the proofs):
 * a node holding the cluster secret sends its handshake with a fresh
 * nonce, and a node holding one answers it with a challenge before
 * anything else, which the first proves it can answer:
 *
 *     C: bucketcache_peer n-7 <cnonce>                   (or ..._replicate ...)
 *     S: BUCKETCACHE_CHALLENGE <server-name> <snonce> <server-proof>
 *     C: bucketcache_auth <client-proof>
 *     S: OK                                               (or RHELLO ...)
 *
 *   A node with a secret refuses a handshake without a nonce, and a wrong
 *   or missing proof, with one of the BC_WIRE_PEER_AUTH_* lines, and
 *   closes the connection; a node that gets OK (or RHELLO) where it waited
 *   for a challenge drops the link: that peer did not prove itself.
 *   Nonces are BC_WIRE_NONCE_LEN lowercase hex digits, proofs
 *   BC_WIRE_PROOF_LEN.
 *
 * HOW
 *   Each vocabulary is one table (an X-macro, so an enum and its words
 *   cannot drift) read by both its formatter and its parser.  Parsers are
 *   strict -- exact words, single spaces, canonical decimals, nothing
 *   extra, bounded length -- because a misread refusal would send a
 *   client's retry loop the wrong way; anything else is "not one of ours"
 *   (an ordinary error, another command).  Formatters write nothing a
 *   parser here would refuse.  No allocation, no global state.
 */
#ifndef BC_WIRE_H
#define BC_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_frame.h"
#include "bc_status.h"

/* ---- refusals ---- */

/* kind, word, whether a gid comes between bucket and epoch */
#define BC_WIRE_REFUSAL_TABLE(X)                                                   \
    X(MOVED, "MOVED", true)              /* another group owns it; gid: the owner */ \
    X(NO_OWNER, "NO_OWNER", false)       /* no group owns it (its group is down) */  \
    X(READONLY, "READONLY", false)       /* it is migrating: reads only */           \
    X(NOT_PRIMARY, "NOT_PRIMARY", true)  /* this node is not its group's writable   \
                                          * primary; gid: the node's group */        \
    X(NOT_ENOUGH_IN_SYNC, "NOT_ENOUGH_IN_SYNC", true) /* the primary, but fewer     \
                                          * backups in sync than min_in_sync; gid:  \
                                          * the node's group */

typedef enum bc_wire_refusal_kind {
    BC_WIRE_REFUSAL_NONE = 0,            /* not a refusal */
#define BC__WIRE_REFUSAL_ENUM(kind, word, has_gid) BC_WIRE_REFUSAL_##kind,
    BC_WIRE_REFUSAL_TABLE(BC__WIRE_REFUSAL_ENUM)
#undef BC__WIRE_REFUSAL_ENUM
} bc_wire_refusal_kind_t;

typedef struct bc_wire_refusal {
    bc_wire_refusal_kind_t kind;
    uint32_t bucket;
    uint32_t gid;                        /* MOVED, NOT_PRIMARY; 0 for the others */
    uint64_t epoch;                      /* the table epoch the node decided with */
} bc_wire_refusal_t;

/* Room for the longest refusal line, CRLF and NUL included. */
#define BC_WIRE_REFUSAL_MAX 80

/*
 * Writes r's line, "SERVER_ERROR ... \r\n", at buf (len bytes, NUL-
 * terminated) and returns its length without the NUL; 0 when r->kind is
 * not a refusal or len is too small (buf then holds "" if len > 0).
 */
size_t bc_wire_refusal_format(const bc_wire_refusal_t *r, char *buf, size_t len);

/*
 * Parses the text of a SERVER_ERROR reply: what follows "SERVER_ERROR ",
 * without the CRLF (n bytes; bc_mc_reply_parse's text).  Returns the kind
 * and fills *out, or BC_WIRE_REFUSAL_NONE (*out zeroed) when the text is
 * not a well-formed refusal -- an ordinary server error.
 */
bc_wire_refusal_kind_t bc_wire_refusal_parse(const char *text, size_t n, bc_wire_refusal_t *out);

/* ---- forwarding failures ---- */

/*
 * kind, the text after "SERVER_ERROR ".  UNSENT never reached the owner,
 * so any command may be sent again; IN_DOUBT and TIMEOUT were sent and may
 * have been applied; the others are errors of the forwarding node.
 */
#define BC_WIRE_FWD_TABLE(X)                                                          \
    X(UNSENT, "forward failed: owner unreachable")                                    \
    X(IN_DOUBT, "forward in doubt: the owner was lost after the request was sent")    \
    X(TIMEOUT, "forward timeout")                                                     \
    X(TOO_LARGE, "forward reply too large")                                           \
    X(BAD_REPLY, "forward bad reply from owner")                                      \
    X(BUSY, "forward busy: too many peer connections")                                \
    X(AUTH, "forward failed: peer authentication failed")                             \
    X(NOMEM, "out of memory forwarding")

typedef enum bc_wire_fwd_failure {
    BC_WIRE_FWD_NONE = 0,                /* not a forwarding failure */
#define BC__WIRE_FWD_ENUM(kind, text) BC_WIRE_FWD_##kind,
    BC_WIRE_FWD_TABLE(BC__WIRE_FWD_ENUM)
#undef BC__WIRE_FWD_ENUM
} bc_wire_fwd_failure_t;

/* The whole line, "SERVER_ERROR <text>\r\n" (static storage); NULL for
 * BC_WIRE_FWD_NONE or a value out of range. */
const char *bc_wire_fwd_failure_line(bc_wire_fwd_failure_t f);
/* The text alone, without "SERVER_ERROR " and CRLF; NULL as above. */
const char *bc_wire_fwd_failure_text(bc_wire_fwd_failure_t f);
/* Classifies the text of a SERVER_ERROR reply (as bc_wire_refusal_parse
 * takes it): exactly one of the texts above, or BC_WIRE_FWD_NONE. */
bc_wire_fwd_failure_t bc_wire_fwd_failure_parse(const char *text, size_t n);

/* ---- peer handshakes ---- */

#define BC_WIRE_PEER_CMD      "bucketcache_peer"
#define BC_WIRE_PEER_OK       "OK\r\n"
#define BC_WIRE_REPLICATE_CMD "bucketcache_replicate"
#define BC_WIRE_AUTH_CMD      "bucketcache_auth"
#define BC_WIRE_CHALLENGE     "BUCKETCACHE_CHALLENGE"

/* A nonce: 32 lowercase hex digits (128 random bits); a proof: 64 (an
 * HMAC-SHA256).  bc_peerauth.h makes both. */
#define BC_WIRE_NONCE_LEN 32
#define BC_WIRE_PROOF_LEN 64

/* A node's name in a handshake: 1..63 bytes (it fits a char[64]), each
 * printable ASCII other than space: a node's znode name "n-0000000042",
 * its label. */
#define BC_WIRE_NAME_MAX 63
bool bc_wire_name_valid(const char *name, size_t n);
/* Lowercase hex digits, exactly n of them (a nonce: BC_WIRE_NONCE_LEN;
 * a proof: BC_WIRE_PROOF_LEN). */
bool bc_wire_hex_valid(const char *s, size_t len, size_t n);

/* Room for the longest handshake line, CRLF and NUL included. */
#define BC_WIRE_HANDSHAKE_MAX 256

/* What a forwarding node says first. */
typedef struct bc_wire_peer {
    char name[BC_WIRE_NAME_MAX + 1];     /* the node's name */
    char nonce[BC_WIRE_NONCE_LEN + 1];   /* "" = none: the node has no cluster secret */
} bc_wire_peer_t;

/*
 * "bucketcache_peer <name>[ <nonce>]\r\n" at buf (NUL-terminated); returns
 * its length, or 0 when the name or nonce is not valid or len too small.
 */
size_t bc_wire_peer_format(const bc_wire_peer_t *h, char *buf, size_t len);

/*
 * Looks at one command line (its CRLF or lone CR may be included).
 *   BC_OK        the peer handshake, fields in *out
 *   BC_EINVAL    the handshake's word, but not a valid name (and nonce)
 *                after it
 *   BC_ENOTFOUND another command
 * Spaces around the fields are tolerated, as nodes always have.
 */
bc_status_t bc_wire_peer_parse(const char *line, size_t len, bc_wire_peer_t *out);

/* What a node holding the cluster secret answers a handshake with. */
typedef struct bc_wire_challenge {
    char name[BC_WIRE_NAME_MAX + 1];     /* the server's name */
    char nonce[BC_WIRE_NONCE_LEN + 1];   /* the server's nonce */
    char proof[BC_WIRE_PROOF_LEN + 1];   /* the server's proof */
} bc_wire_challenge_t;

/* "BUCKETCACHE_CHALLENGE <name> <nonce> <proof>\r\n" at buf; its length,
 * or 0 when a field is not valid or len too small. */
size_t bc_wire_challenge_format(const bc_wire_challenge_t *c, char *buf, size_t len);

/*
 * Looks at one reply line (CRLF or lone CR may be included): BC_OK, the
 * challenge in *out; BC_EINVAL, its word with fields no challenge has;
 * BC_ENOTFOUND, another line.  Strict: single spaces, nothing extra.
 */
bc_status_t bc_wire_challenge_parse(const char *line, size_t len, bc_wire_challenge_t *out);

/* "bucketcache_auth <proof>\r\n" at buf; its length, or 0 when proof is
 * not BC_WIRE_PROOF_LEN lowercase hex digits or len too small. */
size_t bc_wire_auth_format(const char *proof, char *buf, size_t len);

/*
 * Looks at one command line (CRLF or lone CR may be included): BC_OK with
 * *proof (borrowed from line, BC_WIRE_PROOF_LEN bytes); BC_EINVAL, the
 * word without a proof after it; BC_ENOTFOUND, another command.
 */
bc_status_t bc_wire_auth_parse(const char *line, size_t len, const char **proof);

/*
 * Why a node refused a peer handshake: kind, the text after
 * "CLIENT_ERROR ".  The node closes the connection after the line.
 */
#define BC_WIRE_PEER_AUTH_TABLE(X)                                                         \
    X(REQUIRED, "peer authentication required: this node holds a cluster secret "          \
                "(--cluster-secret-file); the handshake carried no nonce")                   \
    X(FAILED, "peer authentication failed: wrong proof (is the cluster secret the same "    \
              "on every node?)")                                                             \
    X(NO_PROOF, "peer authentication failed: expected bucketcache_auth <proof>")           \
    X(UNEXPECTED, "peer authentication failed: no challenge is pending")                   \
    X(NO_SECRET, "peer authentication unavailable: this node has no cluster secret")

typedef enum bc_wire_peer_auth_failure {
    BC_WIRE_PEER_AUTH_NONE = 0,          /* not a refusal of a handshake */
#define BC__WIRE_PEER_AUTH_ENUM(kind, text) BC_WIRE_PEER_AUTH_##kind,
    BC_WIRE_PEER_AUTH_TABLE(BC__WIRE_PEER_AUTH_ENUM)
#undef BC__WIRE_PEER_AUTH_ENUM
} bc_wire_peer_auth_failure_t;

/* The whole line, "CLIENT_ERROR <text>\r\n" (static storage); NULL for
 * BC_WIRE_PEER_AUTH_NONE or a value out of range. */
const char *bc_wire_peer_auth_line(bc_wire_peer_auth_failure_t f);
/* Classifies the text of a CLIENT_ERROR reply (without "CLIENT_ERROR "
 * and the line end): exactly one of the texts above, or ..._NONE. */
bc_wire_peer_auth_failure_t bc_wire_peer_auth_parse(const char *text, size_t n);

/* What a backup tells its primary (node/repl/repl.h). */
typedef struct bc_wire_replicate {
    uint32_t gid;                        /* its group: 1..BC_GROUP_MAX_GID */
    uint64_t offset;                     /* where it wants the stream to resume */
    char replid[BC_FRAME_REPLID_MAX + 1];  /* the stream it has; "" = none ("-") */
    char name[BC_WIRE_NAME_MAX + 1];     /* the backup's name, for logs */
    char nonce[BC_WIRE_NONCE_LEN + 1];   /* "" = none: the backup has no cluster secret */
} bc_wire_replicate_t;

/*
 * "bucketcache_replicate <gid> <replid|-> <offset> <name>[ <nonce>]\r\n" at
 * buf (NUL-terminated); returns its length, or 0 when a field is out of
 * range (gid, a replid that is "-", too long or not printable, a bad name
 * or nonce) or len too small.
 */
size_t bc_wire_replicate_format(const bc_wire_replicate_t *h, char *buf, size_t len);

/*
 * Is this command line (CRLF or lone CR may be included) a replication
 * handshake?  BC_OK with *args, *nargs the bytes after the word and its
 * space, line end excluded (borrowed; possibly malformed: the primary
 * answers that with a refusal, see bc_wire_replicate_parse); BC_ENOTFOUND
 * for any other command, the bare word included.
 */
bc_status_t bc_wire_replicate_match(const char *line, size_t len, const char **args,
                                    size_t *nargs);

/*
 * Parses a handshake's arguments, "<gid> <replid|-> <offset> <name>
 * [<nonce>]" (n bytes; runs of spaces separate fields, as nodes have
 * always accepted).  Errors: BC_EINVAL (*out then undefined).
 */
bc_status_t bc_wire_replicate_parse(const char *args, size_t n, bc_wire_replicate_t *out);

/*
 * A primary's answers that refuse a replication handshake (it closes the
 * connection after them).  NOT_PRIMARY's line is not a key refusal -- no
 * bucket, no numbers -- so bc_wire_refusal_parse rejects it; it only ever
 * goes to a connection that sent bucketcache_replicate.
 */
#define BC_WIRE_REPLICATE_BAD_LINE                                                     \
    "CLIENT_ERROR bad replicate line: expected <gid> <replid|-> <offset> <name>\r\n"
#define BC_WIRE_REPLICATE_NOT_PRIMARY "SERVER_ERROR NOT_PRIMARY of that group\r\n"
#define BC_WIRE_REPLICATE_TOO_MANY    "SERVER_ERROR too many backups\r\n"

#endif
