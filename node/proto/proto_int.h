/*
 * proto_int.h -- what the files of the text-protocol executor share and
 * nobody else sees.
 *
 *   proto_text.c   the executor: input state machine, routing of keys,
 *                  the commands served here, the handler for the server
 *   proto_fwd.c    commands forwarded to another node's primary (forward.h):
 *                  building the requests, assembling the replies
 *   proto_stats.c  the "stats" command and its sub-commands
 *   proto_peer.c   another node's handshakes and the proof of the cluster
 *                  secret (bc_peerauth.h)
 *   proto_auth.c   memcached's ASCII authentication (-Y)
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

/* A routed multi-get's dest[i] for a key read as a miss without asking
 * anyone (>= BC_PROTO_DEST_MISS; group ids are far below). */
#define BC_PROTO_DEST_MISS     (UINT32_MAX - 1u)
#define BC_PROTO_DEST_FAILED   (UINT32_MAX - 1u)    /* owner unreachable, or not servable */
#define BC_PROTO_DEST_NO_OWNER UINT32_MAX           /* no group owns its bucket */

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

typedef enum bc_proto_action {
    BC_PROTO_SERVE,                /* serve it here */
    BC_PROTO_FORWARD,              /* forward it to group route.owner's primary */
    BC_PROTO_REFUSE,               /* answer the refusal line */
} bc_proto_action_t;

/* Where one key's request goes, and why (what its refusal line says). */
typedef struct bc_proto_route {
    bc_route_t why;                /* the cluster's decision (cluster/cluster.h) */
    uint32_t bucket;
    uint32_t owner;                /* MOVED: the owner group; NOT_PRIMARY: this node's */
    uint64_t epoch;                /* the table epoch decided with */
} bc_proto_route_t;

/*
 * Routes a key of hash `hash` for a read (write false: a migrating bucket
 * is served) or a write, filling *r.  BC_PROTO_FORWARD only on a client
 * connection with a forwarder, when the owner has a reachable primary
 * (one hop: a peer connection's keys are served or refused).  Standalone:
 * always BC_PROTO_SERVE.
 */
bc_proto_action_t bc__proto_route(bc_proto_conn_t *pc, uint32_t hash, bool write,
                                  bc_proto_route_t *r);
/* r's refusal line ("SERVER_ERROR MOVED ...", CRLF included,
 * NUL-terminated) into buf, REFUSAL_MAX bytes; returns its length. */
size_t bc__proto_refusal(const bc_proto_route_t *r, char *buf);

/* ---- writes during a migration pause (proto_text.h) ---- */

/* The delay before the (tries+1)-th retry of a write refused READONLY:
 * 1, 2, 4, then 5 ms (at most env->pause_retry_ms when set).  A new table
 * makes the retry due at once (forward.c, fwd_timed_due_now). */
uint32_t bc__proto_pause_delay_ms(const bc_proto_env_t *env, uint32_t tries);
/*
 * A write of a command line refused by r: true when it is to wait out the
 * bucket's migration pause instead (r is READONLY, the connection is a
 * client's, the node forwards and readonly_wait_ms has not passed since
 * the first try): the caller then returns at once -- no reply, no state
 * changed -- and bc_proto_process presents the same line again from the
 * worker's timer.  False: refuse it as usual.
 */
bool bc__proto_hold_for_pause(bc_proto_conn_t *pc, const bc_proto_route_t *r);
/*
 * Runs req[0..len) -- complete commands whose replies are lines, as a
 * forwarded write -- here, as if a peer had sent them (nothing is
 * forwarded or held), and returns the replies, malloc'd (*rlen their
 * length; owned by the caller).  For a write whose bucket this node's
 * group has just become the owner of.  NULL when out of memory.
 */
char *bc__proto_exec_local(bc_proto_conn_t *pc, const char *req, size_t len, size_t *rlen);

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
/* The dump being streamed (pc->dump): queues its next chunk, or the rest
 * and END, and then frees it (pc->dump NULL).  BC_ENOMEM (pc->oom set)
 * when a line cannot be queued.  Nothing when no dump is in progress. */
bc_status_t bc__proto_dump_more(bc_proto_conn_t *pc);
/* Frees the dump in progress, if any (connection release). */
void bc__proto_dump_release(bc_proto_conn_t *pc);

/* ---- commands served here (proto_text.c) ---- */

/*
 * Queues a VALUE block for every key of req found here -- every key when
 * dest is NULL, else those whose dest is 0 -- without the final END, and
 * counts them.  hashes (may be NULL) holds the first ROUTE_HASH_CACHE
 * keys' hashes from the routing pass.  lens (may be NULL; else req->nkeys
 * entries, zeroed by the caller) gets the bytes queued for each key served
 * (0: a miss), for a multi-get putting forwarded values in between.
 */
void bc__proto_retrieve_values(bc_proto_conn_t *pc, const bc_mc_request_t *req,
                               const uint32_t *dest, const uint32_t *hashes, uint32_t *lens);

/* ---- forwarded commands (proto_fwd.c) ---- */

/* Composes a forwarded binary-protocol command's reply (binary.c): text
 * (len bytes) is the text answer, arg the command's context. */
typedef void (*bc_proto_fwd_bin_fn)(bc_proto_conn_t *pc, void *arg, const char *text,
                                    size_t len, bc_outq_t *dst);

/*
 * Rewrites a forwarded reply on its way to the client: reply (len bytes,
 * malloc'd, the owner's complete reply of the request's kind) is the
 * callee's to queue or free; what the client is to see is appended to dst
 * (nothing at all is fine).  On out of memory set pc->oom.
 */
typedef void (*bc_proto_fwd_relay_fn)(bc_proto_conn_t *pc, char *reply, size_t len,
                                      bc_outq_t *dst);

/*
 * THE ENTRY POINT for forwarding one command, classic or meta (forward.h,
 * "REPLY KINDS"): sends req[0..len) -- the complete request, data block
 * included, without noreply or any quiet flag (the owner must answer, so
 * the reply's end can be found) -- to group gid's primary.  req is
 * malloc'd and taken over.  kind says where the owner's reply ends.  The
 * reply is queued at this command's place in the connection's reply
 * stream (replies of later commands wait behind it): as the owner sent it,
 * or through relay (NULL: unchanged); noreply drops it.  A forward that
 * fails answers its error line instead (bc_fwd_error_line), or route's
 * refusal when route->owner turns out to have no reachable primary.  The
 * connection goes on with its next commands meanwhile.  On out of memory
 * sets pc->oom.  route is the key's, as bc__proto_route gave it with
 * BC_PROTO_FORWARD (the request goes to route->owner's primary).
 *
 *     bc_proto_route_t r;
 *     switch (bc__proto_route(pc, hash, write, &r)) {
 *     case BC_PROTO_FORWARD:
 *         bc__proto_fwd_command(pc, &r, BC_FWD_REPLY_<KIND>, req, n, noreply, NULL);
 *     ...
 */
void bc__proto_fwd_command(bc_proto_conn_t *pc, const bc_proto_route_t *route,
                           bc_fwd_reply_kind_t kind, char *req, size_t len, bool noreply,
                           bc_proto_fwd_relay_fn relay);

/*
 * A binary-protocol command forwarded (binary.c), translated into meta
 * commands: req[0..len) (malloc'd, taken over) ends with "mn\r\n", the
 * reply kind is BC_FWD_REPLY_META.  When the command is done, bin composes
 * the binary reply into dst from the text answer a text command would
 * have had: the owner's reply (its final "MN\r\n" included) or one error
 * line (a forwarding failure, a refusal).  bin_arg (malloc'd) is taken over
 * and freed with the command.  On out of memory sets pc->oom.
 */
void bc__proto_fwd_command_bin(bc_proto_conn_t *pc, const bc_proto_route_t *route, char *req,
                               size_t len, bc_proto_fwd_bin_fn bin, void *bin_arg);
/* As bc__proto_fwd_command_bin, for a request with a data block: buf
 * (malloc'd, taken over) holds n bytes, the next `need` bytes of input go
 * after them (state FWD_DATA, its end handled by binary.c), and room must
 * be left behind them for the caller's tail.  bc__proto_fwd_collected gives
 * the buffer and n + need; bc__proto_fwd_collect_send sends its first len
 * bytes. */
void bc__proto_fwd_collect_bin(bc_proto_conn_t *pc, const bc_proto_route_t *route, char *buf,
                               size_t n, uint32_t need, bc_proto_fwd_bin_fn bin, void *bin_arg);
char *bc__proto_fwd_collected(bc_proto_conn_t *pc, size_t *len);
void bc__proto_fwd_collect_send(bc_proto_conn_t *pc, size_t len);

/* A one-key command without data block (delete, incr, touch), its line as
 * it came, to route->owner's primary. */
void bc__proto_fwd_simple(bc_proto_conn_t *pc, const char *line, size_t len,
                          const bc_mc_request_t *req, const bc_proto_route_t *route);
/* A get/gets/gat/gats of one key, its line as it came. */
void bc__proto_fwd_get_one(bc_proto_conn_t *pc, const char *line, size_t len,
                           const bc_proto_route_t *route);
/* A multi-get with keys of other owners (dest[i] = the owner group of key
 * i, 0 = served here, >= BC_PROTO_DEST_MISS = a miss already counted):
 * see proto_fwd.c. */
void bc__proto_fwd_retrieve(bc_proto_conn_t *pc, const bc_mc_request_t *req,
                            const uint32_t *dest, const uint32_t *hashes);
/* flush_all on a client connection of a cluster node that forwards: every
 * other group's primary is flushed too (flushed_here: this node, its
 * group's primary, flushed itself already); the reply is queued in order.
 * bin (NULL for the text protocol) composes a binary command's reply from
 * the text one, with bin_arg (malloc'd, taken over). */
void bc__proto_fwd_flush_all(bc_proto_conn_t *pc, const char *line, size_t len,
                             const bc_mc_request_t *req, bool flushed_here,
                             bc_proto_fwd_bin_fn bin, void *bin_arg);
/* Counts n keys of a retrieval answered as misses because no group owns
 * them (no_owner) or their owner could not answer. */
void bc__proto_count_unanswered(bc_proto_conn_t *pc, uint64_t n, bool no_owner);
/* A storage command for route->owner: its data block is collected (state
 * FWD_DATA), then bc__proto_fwd_store_finish sends it. */
void bc__proto_fwd_store_begin(bc_proto_conn_t *pc, const char *line, size_t len,
                               const bc_mc_request_t *req, const bc_proto_route_t *route);
void bc__proto_fwd_store_finish(bc_proto_conn_t *pc);
/* A meta command (no data block) for route->owner's primary: sent as it
 * came, q included, followed by "mn"; the reply relayed without its final
 * "MN" (the owner applies memcached's quiet rules itself). */
void bc__proto_fwd_meta(bc_proto_conn_t *pc, const char *line, size_t len,
                        const bc_proto_route_t *route);
/* An ms for route->owner: its data block of vlen bytes (+ CRLF) is
 * collected (state FWD_DATA) and sent, followed by "mn", by
 * bc__proto_fwd_store_finish.  key is the key token as it came (base64
 * when key_binary). */
void bc__proto_fwd_meta_store_begin(bc_proto_conn_t *pc, const char *line, size_t len,
                                    const bc_mc_token_t *key, bool key_binary, uint32_t vlen,
                                    const bc_proto_route_t *route);
/* Frees a forwarded command (NULL accepted); parts still in flight are
 * cancelled. */
void bc__proto_fwd_op_free(bc_proto_conn_t *pc, bc_proto_fwd_op_t *op);
/* Cancels and frees every forwarded command of pc (connection release). */
void bc__proto_fwd_release_all(bc_proto_conn_t *pc);

/* ---- running a line again (proto_text.c) ---- */

/* Runs one command line (without its "\n"), as bc_proto_process does;
 * BC_ECLOSED asks for the connection to close. */
bc_status_t bc__proto_process_line(bc_proto_conn_t *pc, const char *line, size_t len);

/* ---- read-through (proto_origin.c) ---- */

/* Gets a connection may have waiting for origin fills; at the limit its
 * input is held until one is answered. */
#define BC_PROTO_ORIGIN_MAX 16u

/*
 * The hook of a retrieval command (get, gets; and meta mg), called once
 * its keys are routed (dest as above, NULL = every key served here;
 * forwards: some keys go to other owners) and before it answers anything.
 * Looks each key served here up once; misses with an origin start or join
 * their fills.  Returns true when the command is answered later: its
 * reply waits in a hole of the output queue (or, when it forwards, the
 * connection holds its input and line[0..len), copied, runs again) -- the
 * command queues nothing now.  Otherwise the command is served now, and
 * while it is, pc->found_n > 0 and bc__proto_origin_take(pc, k) gives key
 * k's item (or NULL: a miss), looked up already.  The command calls
 * bc__proto_origin_release at its end in every case.
 */
bool bc__proto_origin_resolve(bc_proto_conn_t *pc, const char *line, size_t len,
                              const bc_mc_request_t *req, const uint32_t *dest,
                              const uint32_t *hashes, bool forwards);
/*
 * The hook of mg: key (hash) just missed here, served here.  With an
 * origin for it, starts or joins its fill and returns true: the mg's reply
 * waits in a hole of the output queue and, when the fill ends, the mg in
 * line[0..len) runs again into it (pc->meta_rerun set: no routing, no
 * second fill; pc->meta_fill the filled value if the cache has none) --
 * the filled value answered as a hit, or EN.  False: answer the miss now,
 * unless *look_again (a fill completed since the lookup: look again).
 */
bool bc__proto_origin_meta(bc_proto_conn_t *pc, const char *line, size_t len, const char *key,
                           size_t nkey, uint32_t hash, bool *look_again);
/* As bc__proto_origin_meta, for a binary get/getq/getk/getkq (binary.c)
 * that missed: pkt[0..len) is its whole packet (header and key), run
 * again (bc__proto_bin_packet) into the hole when the fill ends. */
bool bc__proto_origin_bin(bc_proto_conn_t *pc, const char *pkt, size_t len, const char *key,
                          size_t nkey, uint32_t hash, bool *look_again);
/* Key k's resolved item (a reference for the caller), or NULL. */
bc_item_t *bc__proto_origin_take(bc_proto_conn_t *pc, uint32_t k);
/* Drops the resolved items not taken. */
void bc__proto_origin_release(bc_proto_conn_t *pc);
/* The connection goes: cancels every fill it waits for, frees it all. */
void bc__proto_origin_release_all(bc_proto_conn_t *pc);

/* ---- another node's handshakes (proto_peer.c) ---- */

/*
 * Runs line when it is a peer's handshake or proof (bucketcache_peer,
 * bucketcache_replicate with env->handoff_replicate, bucketcache_auth),
 * or when a proof is due (any other line is then refused): returns true
 * with *st as bc_proto_process returns it (BC_ECLOSED after a refusal,
 * BC_EHANDOFF for an authenticated replication handshake).  false: not
 * one of those lines, *st BC_OK.
 */
bool bc__proto_peer_line(bc_proto_conn_t *pc, const char *line, size_t len, bc_status_t *st);
/* Whether line is one of the words above (for -Y, proto_auth.c). */
bool bc__proto_peer_line_is_handshake(const char *line, size_t len);
/* Frees a pending handshake (connection release). */
void bc__proto_peer_release(bc_proto_conn_t *pc);

/* ---- memcached's ASCII authentication, -Y (proto_auth.c) ---- */

/*
 * Consumes input of a connection that has not authenticated yet
 * (env->auth set): lines and the data block of the authenticating "set",
 * and another node's handshake.  Returns the bytes consumed; stops once
 * pc->authenticated is set (the caller goes on with the rest), or for
 * more input, or with *st BC_ECLOSED (junk: close) or BC_EHANDOFF (a
 * peer's replication handshake).
 */
size_t bc__proto_auth_process(bc_proto_conn_t *pc, const char *buf, size_t len, bc_status_t *st);
/* Frees an authenticating data block (connection release). */
void bc__proto_auth_release(bc_proto_conn_t *pc);
/* ---- the binary protocol (binary.c) ---- */

/* A binary packet at the front of buf[0..len) (bc_proto_process in binary
 * mode, state LINE): runs it and sets *used to the bytes consumed, 0 when
 * more input is needed.  Returns as bc_proto_process. */
bc_status_t bc__proto_bin_packet(bc_proto_conn_t *pc, const char *buf, size_t len,
                                 size_t *used);
/* The value of a binary store has come: into pc->item (DATA), or into the
 * request to forward (FWD_DATA). */
void bc__proto_bin_store_finish(bc_proto_conn_t *pc);
void bc__proto_bin_fwd_store_finish(bc_proto_conn_t *pc);

/* ---- "stats" (proto_stats.c) ---- */

void bc__proto_stats(bc_proto_conn_t *pc, const bc_mc_request_t *req);

#endif
