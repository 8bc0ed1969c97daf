/*
 * proto_int.h -- what the files of the text-protocol executor share and
 * nobody else sees.
 *
 *   proto_text.c   the executor: input state machine, routing of keys,
 *                  the commands served here, the handler for the server
 *   proto_fwd.c    commands forwarded to another node's primary (forward.h):
 *                  building the requests, assembling the replies
 *   proto_stats.c  the "stats" command and its sub-commands
 *
 * Every function here runs on the connection's worker thread and appends
 * to pc->out; a reply that cannot be queued sets pc->oom (the caller
 * closes the connection).
 */
#ifndef BC_PROTO_INT_H
#define BC_PROTO_INT_H

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_mcproto.h"
#include "proto/proto_text.h"

/* Longest refusal line (cluster/cluster.h), CRLF and NUL included. */
#define REFUSAL_MAX 128

/* Keys whose hashes a routed multi-get keeps from its routing pass. */
#define ROUTE_HASH_CACHE 64

/* ---- replies (proto_text.c) ---- */

void bc__proto_reply_bytes(bc_proto_conn_t *pc, const char *s, size_t n);
/* A line without "\r\n" (error texts from the parser). */
void bc__proto_reply_line(bc_proto_conn_t *pc, const char *s);
/* A decimal number and "\r\n" (incr/decr). */
void bc__proto_reply_u64(bc_proto_conn_t *pc, uint64_t v);
/* printf-style; a reply longer than 511 bytes is cut. */
void bc__proto_reply_fmt(bc_proto_conn_t *pc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A literal including its "\r\n". */
#define REPLY(pc, lit) bc__proto_reply_bytes((pc), (lit), sizeof(lit) - 1)
#define STAT_U64(pc, name, v) \
    bc__proto_reply_fmt((pc), "STAT %s %" PRIu64 "\r\n", (name), (uint64_t)(v))
#define STAT_STR(pc, name, v) bc__proto_reply_fmt((pc), "STAT %s %s\r\n", (name), (v))

/* ---- commands served here (proto_text.c) ---- */

/*
 * Queues a VALUE block for every key of req found here -- every key when
 * dest is NULL, else those whose dest is 0 -- without the final END, and
 * counts them.  hashes (may be NULL) holds the first ROUTE_HASH_CACHE
 * keys' hashes from the routing pass.
 */
void bc__proto_retrieve_values(bc_proto_conn_t *pc, const bc_mc_request_t *req,
                               const uint32_t *dest, const uint32_t *hashes);

/* ---- forwarded commands (proto_fwd.c) ---- */

/* A one-key command without data block (delete, incr, touch) for group
 * gid's primary; refusal is the answer if it turns out unreachable. */
void bc__proto_fwd_simple(bc_proto_conn_t *pc, const char *line, size_t len,
                          const bc_mc_request_t *req, uint32_t gid, const char *refusal);
/* A multi-get with keys of other owners (dest[i] = the owner group of key
 * i, 0 = served here): see proto_fwd.c. */
void bc__proto_fwd_retrieve(bc_proto_conn_t *pc, const bc_mc_request_t *req,
                            const uint32_t *dest, const uint32_t *hashes, const char *refusal);
/* A storage command for group gid: its data block is collected (state
 * FWD_DATA), then bc__proto_fwd_store_finish sends it. */
void bc__proto_fwd_store_begin(bc_proto_conn_t *pc, const char *line, size_t len,
                               const bc_mc_request_t *req, uint32_t gid, const char *refusal);
void bc__proto_fwd_store_finish(bc_proto_conn_t *pc);
/* Frees a forwarded command (NULL accepted); parts still in flight are
 * cancelled. */
void bc__proto_fwd_op_free(bc_proto_conn_t *pc, bc_proto_fwd_op_t *op);

/* ---- "stats" (proto_stats.c) ---- */

void bc__proto_stats(bc_proto_conn_t *pc, const bc_mc_request_t *req);

#endif
