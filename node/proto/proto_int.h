/*
 * proto_int.h -- what the files of the text-protocol executor share and
 * nobody else sees.
 *
 *   proto_text.c   the executor: input state machine, routing of keys,
 *                  the commands served here, the handler for the server
 *   proto_fwd.c    commands forwarded to another node's primary (forward.h):
 *                  building the requests, assembling the replies
 *   proto_stats.c  the "stats" command and its sub-commands
 *   detail.c       "stats detail": memcached's per-prefix counters
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

/* ---- routing (proto_text.c) ---- */

typedef enum bc__proto_route {
    BC__PROTO_SERVE,               /* serve it here */
    BC__PROTO_FORWARD,             /* forward it to group *gid's primary */
    BC__PROTO_REFUSE,              /* answer the refusal line */
} bc__proto_route_t;

/*
 * Cluster routing of one key (hash = bc_hash_key).  For anything but
 * SERVE, refusal (REFUSAL_MAX bytes) receives the refusal line, CRLF
 * included: the answer for REFUSE, and what a forward answers when its
 * owner turns out to be unreachable after all.
 */
bc__proto_route_t bc__proto_route_key(bc_proto_conn_t *pc, uint32_t hash, bool write,
                                      uint32_t *gid, char *refusal);

/* ---- "stats detail" (detail.c) ---- */

/* Count a get (hit or miss), a storage command, a delete of key when
 * detail is on; nothing otherwise. */
void bc__proto_detail_get(bc_proto_env_t *env, const char *key, size_t nkey, bool hit);
void bc__proto_detail_set(bc_proto_env_t *env, const char *key, size_t nkey);
void bc__proto_detail_delete(bc_proto_env_t *env, const char *key, size_t nkey);
/* "PREFIX ... END" (memcached's stats_prefix_dump), and "stats reset". */
void bc__proto_detail_dump(bc_proto_conn_t *pc);
void bc__proto_detail_clear(bc_proto_env_t *env);

/* ---- meta commands (meta.c) ---- */

/* mg ms md ma mn me: req->cmd says which. */
void bc__proto_meta(bc_proto_conn_t *pc, const char *line, size_t len,
                    const bc_mc_request_t *req);
/* The data block of an ms has come, its CRLF and route checked: store it
 * (the item's reference is consumed) and answer. */
void bc__proto_meta_store_finish(bc_proto_conn_t *pc, bc_item_t *it);

/* memcached 1.6.18's size of an item (header, CAS, key, flags, value) and
 * the slab class its default slab table gives that size ("me", "stats
 * cachedump"). */
uint64_t bc__proto_mc_item_size(const bc_item_t *it);
uint32_t bc__proto_mc_slab_class(uint64_t ntotal);

/* ---- administration commands (proto_admin.c) ---- */

/* version, shutdown, cache_memlimit, slabs, lru, lru_crawler, watch,
 * refresh_certs: req->cmd says which; BC_ECLOSED asks to close. */
bc_status_t bc__proto_admin(bc_proto_conn_t *pc, const bc_mc_request_t *req);

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
/* A meta command (no data block) for group gid's primary: sent as it came,
 * followed by "mn", the reply relayed without its final "MN". */
void bc__proto_fwd_meta(bc_proto_conn_t *pc, const char *line, size_t len, uint32_t gid,
                        const char *refusal);
/* An ms for group gid: its data block of vlen bytes (+ CRLF) is collected
 * (state FWD_DATA) and sent, followed by "mn", by bc__proto_fwd_store_finish.
 * key is the key token as it came (base64 when key_binary). */
void bc__proto_fwd_meta_store_begin(bc_proto_conn_t *pc, const char *line, size_t len,
                                    const bc_mc_token_t *key, bool key_binary, uint32_t vlen,
                                    uint32_t gid, const char *refusal);
/* Frees a forwarded command (NULL accepted); parts still in flight are
 * cancelled. */
void bc__proto_fwd_op_free(bc_proto_conn_t *pc, bc_proto_fwd_op_t *op);

/* ---- "stats" (proto_stats.c) ---- */

void bc__proto_stats(bc_proto_conn_t *pc, const bc_mc_request_t *req);

#endif
