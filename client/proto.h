/*
 * proto.h -- the client side of the memcached text protocol, as pure
 * functions: key checks, request lines, what a forwarding failure means for
 * a command, the size a VALUE reply needs.  The "not mine" refusals nodes
 * send are common/bc_wire.h's; the retry backoff is ops.h's.
 *
 * Replies themselves are recognised by bc_mc_reply_parse (bc_mcproto.h);
 * this file adds what only a cluster client needs.  No I/O, no allocation,
 * no global state: everything here is unit-tested directly.
 */
#ifndef BC_CLIENT_PROTO_H
#define BC_CLIENT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_status.h"

/* Longest request line built here: "cas <250-byte key> <flags> <exptime>
 * <bytes> <cas>\r\n" with every number at its widest is 330 bytes. */
#define BC__REQ_LINE_MAX 384

/* What a node's forwarding failure (common/bc_wire.h, BC_WIRE_FWD_*) means
 * for the command that met it. */
typedef enum bc__proto_fwd_failure {
    BC__PROTO_FWD_NONE = 0,    /* not a forwarding failure, or one that is an
                                * ordinary error here (reply too large, busy...) */
    BC__PROTO_FWD_UNSENT,      /* never reached the owner: safe to send again */
    BC__PROTO_FWD_IN_DOUBT,    /* sent; the owner may have applied it */
} bc__proto_fwd_failure_t;

/* Classifies the text of a SERVER_ERROR reply (what follows
 * "SERVER_ERROR ", n bytes). */
bc__proto_fwd_failure_t bc__proto_fwd_failure_parse(const char *text, size_t n);

/* True when key is 1..250 bytes, none of them a control byte or a space. */
bool bc__proto_key_valid(const void *key, size_t klen);

/*
 * Request lines, written at buf (at least BC__REQ_LINE_MAX bytes) with
 * their CRLF; each returns the length.  The key must be valid.
 *   storage:  "<cmd> <key> <flags> <exptime> <vlen>\r\n"  (cmd: set/add/replace)
 *   get:      "get <key>\r\n"
 *   delete:   "delete <key>\r\n"
 *   touch:    "touch <key> <exptime>\r\n"
 *   arith:    "incr|decr <key> <delta>\r\n"
 */
size_t bc__proto_fmt_storage(char *buf, const char *cmd, const void *key, size_t klen,
                             uint32_t flags, int64_t exptime, size_t vlen);
size_t bc__proto_fmt_key_cmd(char *buf, const char *cmd, const void *key, size_t klen);
/*   cas:      "cas <key> <flags> <exptime> <vlen> <cas>\r\n" */
size_t bc__proto_fmt_cas(char *buf, const void *key, size_t klen, uint32_t flags, int64_t exptime,
                         size_t vlen, uint64_t cas);
size_t bc__proto_fmt_touch(char *buf, const void *key, size_t klen, int64_t exptime);
size_t bc__proto_fmt_arith(char *buf, bool incr, const void *key, size_t klen, uint64_t delta);

/*
 * Looks at the front of a receive buffer holding a reply.  When it starts
 * with a complete "VALUE ..." line, *need receives the bytes the whole unit
 * takes (line + data + CRLF) and the status is BC_OK, or BC_ETOOLARGE when
 * the data block would exceed max_value.  When the line is not complete or
 * not a VALUE line, *need is 0 and the status BC_OK (the reply parser
 * decides).  Errors: BC_ETOOLARGE, BC_EPROTO (a VALUE line whose length
 * field is not a number).
 */
bc_status_t bc__proto_reply_need(const char *buf, size_t len, size_t max_value, size_t *need);

#endif
