/*
 * backup.c -- replication's backup side (repl.h): the link to the group's
 * primary, run by the role thread (repl.c) while this node is a backup.
 *
 * HOW
 *   One link at a time, blocking: connect to the primary's data port, send
 *   the handshake line with the replication id and offset this node has
 *   (and, with the cluster secret, a nonce: the primary's challenge is
 *   checked and answered before anything else, common/bc_wire.h), read
 *   RHELLO; then either apply a snapshot (the cache is emptied first;
 *   the snapshot is checked like an export, its END counts) or resume the
 *   stream at our offset.  Live records are applied as they arrive and
 *   mirrored into our own backlog, so that if this node is promoted the
 *   other backups can continue from their offsets (repl.c, CONTINUING
 *   AFTER A FAILOVER); the applied offset is acknowledged after every read.
 *   The link ends on EOF, silence past REPL_LINK_TIMEOUT_MS, a broken
 *   record, a change of role or of primary, or the module stopping.
 *
 *   Records describe states, so a record applied twice is harmless (repl.h,
 *   THE SNAPSHOT); a record this node cannot store (no memory) removes the
 *   key instead of keeping an older value.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bc_frame.h"
#include "bc_hash.h"
#include "bc_log.h"
#include "bc_net.h"
#include "bc_peerauth.h"
#include "bc_time.h"
#include "bc_wire.h"
#include "engine/item_frame.h"
#include "repl/repl_int.h"

#define REPL_LINK_TIMEOUT_MS       3000     /* backup: silence that ends the link */
#define REPL_CONNECT_TIMEOUT_MS    1000

/* A CAS or flush mark from the stream is used as is up to here; beyond
 * it (a hostile or broken primary) it could wrap the node's counter. */
#define REPL_CAS_MAX (UINT64_C(1) << 62)

/* Applies one record or snapshot item to cache.  False on a malformed
 * record; a record that cannot be stored (no memory) removes the key and
 * counts in *errors. */
static bool
repl_apply_cache(bc_cache_t *cache, const bc_frame_t *f, _Atomic uint64_t *errors)
{
    uint32_t now = bc_cache_now(cache);
    if ((f->type == BC_FRAME_ITEM || f->type == BC_FRAME_DEL || f->type == BC_FRAME_TOUCH) &&
        (f->nkey == 0 || f->nkey > BC_KEY_MAX_LEN)) {
        return false;
    }
    switch (f->type) {
    case BC_FRAME_ITEM: {
        uint32_t hash = bc_hash_key(f->key, f->nkey);
        bc_status_t st;
        bc_item_t *it = bc_item_frame_alloc(cache, f, hash, &st);
        if (it == NULL && st == BC_EINVAL) return false;
        if (it == NULL) {
            /* Keeping an older value would be wrong; a miss is not. */
            (void)bc_cache_delete(cache, f->key, f->nkey, hash);
            atomic_fetch_add(errors, 1);
            return true;
        }
        bool keep = f->cas != 0 && f->cas < REPL_CAS_MAX;
        if ((keep ? bc_cache_store_as(cache, it, f->cas)
                  : bc_cache_store(cache, it, BC_STORE_SET, 0, NULL)) != BC_OK) {
            (void)bc_cache_delete(cache, f->key, f->nkey, hash);
            atomic_fetch_add(errors, 1);
        }
        return true;
    }
    case BC_FRAME_DEL:
        (void)bc_cache_delete(cache, f->key, f->nkey, bc_hash_key(f->key, f->nkey));
        return true;
    case BC_FRAME_TOUCH:
        (void)bc_cache_touch(cache, f->key, f->nkey, bc_hash_key(f->key, f->nkey),
                             bc_item_frame_exptime(now, f->ttl));
        return true;
    case BC_FRAME_FLUSH:
        /* Now: the primary's mark (our items carry its CAS values), exact
         * even for writes that raced the flush there.  Later: the time;
         * then, once it came due there, its mark (repl_flush_mark). */
        if (f->mark != 0 && f->mark < REPL_CAS_MAX) {
            if (f->when == 0) bc_cache_flush_at(cache, f->mark);
            else bc_cache_flush_came_due(cache, f->when, f->mark);   /* repl_flush_mark */
        } else {
            bc_cache_flush(cache, f->when);
        }
        return true;
    case BC_FRAME_DROP:
        if (f->bucket >= bc_cache_nbuckets(cache)) return false;
        (void)bc_cache_bucket_drop(cache, f->bucket);
        return true;
    default:
        return false;
    }
}

static bool
repl_apply(bc_repl_t *r, const bc_frame_t *f)
{
    return repl_apply_cache(r->cache, f, &r->apply_errors);
}

int64_t
bc__repl_apply_stream(bc_cache_t *cache, const char *buf, size_t len, size_t max_frame)
{
    _Atomic uint64_t errors = 0;
    int64_t applied = 0;
    size_t pos = 0;
    while (pos < len) {
        bc_frame_t f;
        size_t used = 0;
        bc_status_t st = bc_frame_decode(buf + pos, len - pos, max_frame, &f, &used, NULL, 0);
        if (st == BC_EAGAIN) break;
        if (st != BC_OK || f.type == BC_FRAME_RHELLO || f.type == BC_FRAME_END ||
            f.type == BC_FRAME_HELLO || f.type == BC_FRAME_ACK) {
            return -1;
        }
        if (f.type != BC_FRAME_PING && !repl_apply_cache(cache, &f, &errors)) return -1;
        applied++;
        pos += used;
    }
    return applied;
}

/* A blocking link to the primary (io): a read returns every REPL_PING_MS
 * so the follower can look at its role; a backup not reading stalls a
 * send for at most REPL_SEND_TIMEOUT_MS.  With TLS (-Z in a cluster) the
 * handshake is done here, this node's certificate as its identity.
 * False on failure (reason in why; a TLS failure is also logged). */
static bool
repl_connect(bc_repl_t *r, const bc_node_primary_t *prim, bc_peer_io_t *io, char *why,
             size_t whylen)
{
    int fd;
    if (bc_net_connect_addr((const struct sockaddr *)&prim->sa, prim->salen,
                            REPL_CONNECT_TIMEOUT_MS, 0, &fd, why, whylen) != BC_OK) {
        return false;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    SSL *ssl = NULL;
    if (r->tls != NULL && (ssl = bc_tls_new_peer_ssl(r->tls, fd)) == NULL) {
        snprintf(why, whylen, "cannot make a TLS session");
        close(fd);
        return false;
    }
    bc_peer_io_init(io, fd, ssl, REPL_SEND_TIMEOUT_MS, REPL_PING_MS);
    if (bc_peer_io_handshake(io, REPL_CONNECT_TIMEOUT_MS, why, whylen) != BC_OK) {
        log_warn("repl: TLS handshake with primary %s failed: %s", prim->addr, why);
        bc_peer_io_close(io);
        return false;
    }
    return true;
}

/* The address of this group's primary, when it is another node. */
bool
bc__repl_find_primary(bc_repl_t *r, bc_node_primaries_t *view, bc_node_primary_t *out)
{
    bc_node_cluster_primaries_sync(r->cluster, view);
    const bc_node_primary_t *e = bc_node_primaries_find(view, bc_node_cluster_gid(r->cluster));
    if (e == NULL || e->self || e->salen == 0) return false;
    *out = *e;
    return true;
}

/*
 * The primary's challenge, line[0..n) (n includes the LF): checks its
 * proof and sends ours.  NULL when done; otherwise why the link ends
 * (logged, counted).
 */
static const char *
repl_answer_challenge(bc_repl_t *r, bc_peer_io_t *io, const bc_node_primary_t *prim,
                      const char *hs_line,
                      const char *line, size_t n)
{
    bc_wire_challenge_t c;
    if (bc_wire_challenge_parse(line, n, &c) != BC_OK) {
        log_warn("repl: primary %s sent a malformed challenge", prim->addr);
        atomic_fetch_add(&r->auth_failures, 1);
        return "protocol error";
    }
    const char *fields[3] = {hs_line, c.name, c.nonce};
    if (!bc_peerauth_verify(r->peer_auth, BC_PEERAUTH_SERVER, fields, 3, c.proof,
                            strlen(c.proof))) {
        log_warn("repl: primary %s (node %s) failed to prove the cluster secret: wrong proof (is "
                 "the cluster secret the same on every node?); not following it", prim->addr,
                 c.name);
        atomic_fetch_add(&r->auth_failures, 1);
        return "the primary did not authenticate";
    }
    char proof[BC_WIRE_PROOF_LEN + 1], out[BC_WIRE_HANDSHAKE_MAX];
    size_t m = 0;
    if (bc_peerauth_prove(r->peer_auth, BC_PEERAUTH_CLIENT, fields, 3, proof)) {
        m = bc_wire_auth_format(proof, out, sizeof(out));
    }
    if (m == 0 || !bc__repl_send_all(io, out, m)) return "cannot send the proof";
    return NULL;
}

/*
 * One link to the primary: handshake, (snapshot), live stream, ACKs.
 * Returns when the link ends, the role or the primary changes, or the
 * module stops.
 */
void
bc__repl_follow(bc_repl_t *r, const bc_node_primary_t *prim, bc_node_primaries_t *view)
{
    char cerr[160], me[BC_NODE_NAME_MAX], now_me[BC_NODE_NAME_MAX];
    /* BEHAVIOR: a backup names itself by its registration (n-...): that is
     * the name the primary records in the in-sync set, and what a
     * promotion matches against the live registrations.  Unregistered (a
     * session being renewed), it does not follow; registered again under
     * a new name, it drops the link and comes back under that one. */
    bc_node_cluster_node_name(r->cluster, me, sizeof(me));
    if (me[0] == '\0') return;
    bc_peer_io_t io;
    if (!repl_connect(r, prim, &io, cerr, sizeof(cerr))) {
        log_debug("repl: cannot connect to primary %s: %s", prim->addr, cerr);
        return;
    }
    int fd = io.fd;
    char line[BC_WIRE_HANDSHAKE_MAX];
    bc_wire_replicate_t hs = {.gid = bc_node_cluster_gid(r->cluster)};
    pthread_mutex_lock(&r->mu);
    memcpy(hs.replid, r->replid, sizeof(hs.replid));
    hs.offset = r->synced ? r->applied : 0;
    snprintf(hs.name, sizeof(hs.name), "%s", me);
    pthread_mutex_unlock(&r->mu);
    if (r->peer_auth != NULL) bc_peerauth_nonce(hs.nonce);
    size_t n = bc_wire_replicate_format(&hs, line, sizeof(line));
    if (n == 0) {
        /* a replid no handshake can carry (a primary sent it): ask for
         * a full resync instead */
        hs.replid[0] = '\0';
        hs.offset = 0;
        n = bc_wire_replicate_format(&hs, line, sizeof(line));
    }
    size_t max_frame = bc_cache_max_item_size(r->cache) + 4096;
    size_t cap = max_frame + BC_FRAME_HEADER_LEN + 64 * 1024;
    char *buf = malloc(cap);
    if (buf == NULL || n == 0 || !bc__repl_send_all(&io, line, n)) {
        free(buf);
        bc_peer_io_close(&io);
        return;
    }
    pthread_mutex_lock(&r->mu);
    r->follow_fd = fd;
    snprintf(r->primary_addr, sizeof(r->primary_addr), "%s", prim->addr);
    pthread_mutex_unlock(&r->mu);

    enum { WANT_CHALLENGE, WANT_HELLO, SNAPSHOT, LIVE } state =
        r->peer_auth != NULL ? WANT_CHALLENGE : WANT_HELLO;
    char hs_line[BC_WIRE_HANDSHAKE_MAX];
    snprintf(hs_line, sizeof(hs_line), "%.*s", (int)(n - 2), line);   /* without CRLF */
    bc_frame_stream_t snap = {0};
    uint64_t snap_offset = 0, acked = 0;
    size_t len = 0;
    int64_t last_rx = bc_time_mono_ms();
    const char *why = "stopping";

    for (;;) {
        if (r->stopping) break;
        if (bc_node_cluster_is_primary(r->cluster)) {
            why = "this node became primary";
            break;
        }
        bc_node_primary_t now_prim;
        if (!bc__repl_find_primary(r, view, &now_prim) || strcmp(now_prim.addr, prim->addr) != 0) {
            why = "the group's primary changed";
            break;
        }
        bc_node_cluster_node_name(r->cluster, now_me, sizeof(now_me));
        if (strcmp(now_me, me) != 0) {
            why = "this node registered again";
            break;
        }
        ssize_t k = bc_peer_io_recv(&io, buf + len, cap - len);
        if (k == 0) {
            why = "the primary closed the link";
            break;
        }
        if (k < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (bc_time_mono_ms() - last_rx > REPL_LINK_TIMEOUT_MS) {
                    why = "the primary went silent";
                    break;
                }
                continue;
            }
            why = "read error";
            break;
        }
        len += (size_t)k;
        last_rx = bc_time_mono_ms();
        if ((state == WANT_HELLO || state == WANT_CHALLENGE) && len > 0 &&
            (buf[0] == 'S' || buf[0] == 'C' || buf[0] == 'E' || buf[0] == 'B')) {
            char *nl = memchr(buf, '\n', len);
            if (nl == NULL && len < 512) continue;
            size_t ll = nl != NULL ? (size_t)(nl - buf) + 1 : len;
            if (state == WANT_CHALLENGE && buf[0] == 'B') {
                /* The primary proves the secret; then we do (mutual). */
                why = repl_answer_challenge(r, &io, prim, hs_line, buf, ll);
                if (why != NULL) break;
                memmove(buf, buf + ll, len - ll);
                len -= ll;
                state = WANT_HELLO;
                if (len == 0) continue;
            } else {
                log_warn("repl: primary %s refused: %.*s", prim->addr,
                         (int)(ll > 0 && buf[ll - 1] == '\n' ? ll - 1 : ll), buf);
                if (buf[0] == 'B') {
                    log_warn("repl: primary %s requires the cluster secret and this node has "
                             "none (--cluster-secret-file)", prim->addr);
                    atomic_fetch_add(&r->auth_failures, 1);
                } else if (ll > 13 && memcmp(buf, "CLIENT_ERROR ", 13) == 0 &&
                           bc_wire_peer_auth_parse(buf + 13, ll - 15) != BC_WIRE_PEER_AUTH_NONE) {
                    atomic_fetch_add(&r->auth_failures, 1);
                }
                why = "refused";
                break;
            }
        } else if (state == WANT_CHALLENGE) {
            log_warn("repl: primary %s did not prove the cluster secret (it answered without a "
                     "challenge: started with --insecure-no-peer-auth?); not following it",
                     prim->addr);
            atomic_fetch_add(&r->auth_failures, 1);
            why = "the primary did not authenticate";
            break;
        }
        size_t pos = 0;
        bool bad = false;
        char err[200];
        while (!bad) {
            bc_frame_t f;
            size_t used;
            bc_status_t st = bc_frame_decode(buf + pos, len - pos, max_frame, &f, &used, err,
                                             sizeof(err));
            if (st == BC_EAGAIN) break;
            if (st != BC_OK) {
                bad = true;
                break;
            }
            if (state == WANT_HELLO) {
                if (f.type != BC_FRAME_RHELLO || f.version != BC_FRAME_VERSION) {
                    snprintf(err, sizeof(err), "the stream does not start with RHELLO v%u",
                             BC_FRAME_VERSION);
                    bad = true;
                    break;
                }
                pthread_mutex_lock(&r->mu);
                r->primary_offset = f.offset;        /* this link's announcement */
                r->caught_up_ms = bc_time_mono_ms();
                if (f.full) {
                    r->synced = false;
                    r->applied = 0;
                    memcpy(r->replid, f.replid, f.nreplid);
                    r->replid[f.nreplid] = '\0';
                    snap_offset = f.offset;
                    state = SNAPSHOT;
                } else if (f.offset != r->applied) {
                    snprintf(err, sizeof(err), "partial resync at %" PRIu64 ", we have %" PRIu64,
                             f.offset, r->applied);
                    bad = true;
                } else {
                    /* The same stream, possibly under a promoted node's new id. */
                    memcpy(r->replid, f.replid, f.nreplid);
                    r->replid[f.nreplid] = '\0';
                    state = LIVE;
                }
                /* Up once the primary has taken the handshake, not when it
                 * was sent: a primary may still refuse it. */
                if (!bad) r->link_up = true;
                pthread_mutex_unlock(&r->mu);
                if (bad) break;
                if (f.full) {
                    uint32_t nb = bc_cache_nbuckets(r->cache);
                    for (uint32_t b = 0; b < nb; b++) (void)bc_cache_bucket_drop(r->cache, b);
                    /* Our flush marks are CAS values of our own past; the
                     * primary's items keep their CAS (bc_cache_store_as). */
                    bc_cache_reset_flush(r->cache);
                    atomic_fetch_add(&r->snapshots_received, 1);
                    log_info("repl: full resync from primary %s (replid %.*s, offset %" PRIu64 ")",
                             prim->addr, (int)f.nreplid, f.replid, f.offset);
                    /* The snapshot is checked like an export: counts at END. */
                    bc_frame_t hello = {.type = BC_FRAME_HELLO, .version = BC_FRAME_VERSION};
                    memset(&snap, 0, sizeof(snap));
                    (void)bc_frame_stream_next(&snap, &hello, NULL, 0);
                } else {
                    log_info("repl: resumed the stream of primary %s at offset %" PRIu64,
                             prim->addr, f.offset);
                }
            } else if (state == SNAPSHOT) {
                if (f.type != BC_FRAME_ITEM && f.type != BC_FRAME_END) {
                    snprintf(err, sizeof(err), "frame type %d inside a snapshot", (int)f.type);
                    bad = true;
                    break;
                }
                if (bc_frame_stream_next(&snap, &f, err, sizeof(err)) != BC_OK) {
                    bad = true;
                    break;
                }
                if (f.type == BC_FRAME_ITEM) {
                    if (!repl_apply(r, &f)) {
                        snprintf(err, sizeof(err), "malformed snapshot item");
                        bad = true;
                        break;
                    }
                } else {
                    pthread_mutex_lock(&r->mu);
                    r->applied = snap_offset;
                    bc_backlog_reset(&r->backlog, snap_offset);   /* the mirror starts here */
                    r->synced = true;
                    pthread_mutex_unlock(&r->mu);
                    state = LIVE;
                    log_info("repl: snapshot applied: %" PRIu64 " items; streaming from offset "
                             "%" PRIu64, f.items, snap_offset);
                }
            } else if (f.type == BC_FRAME_PING) {
                pthread_mutex_lock(&r->mu);
                if (f.offset > r->primary_offset) r->primary_offset = f.offset;
                if (r->applied >= r->primary_offset) r->caught_up_ms = bc_time_mono_ms();
                pthread_mutex_unlock(&r->mu);
            } else {
                if (!repl_apply(r, &f)) {
                    snprintf(err, sizeof(err), "bad record (frame type %d)", (int)f.type);
                    bad = true;
                    break;
                }
                atomic_fetch_add_explicit(&r->applied_records, 1, memory_order_relaxed);
                pthread_mutex_lock(&r->mu);
                /* Mirror the record: if promoted, this node can continue
                 * the other backups from their offsets. */
                if (r->backlog.end == r->applied) bc_backlog_append(&r->backlog, buf + pos, used);
                else bc_backlog_reset(&r->backlog, r->applied + used);
                r->applied += used;
                if (r->applied >= r->primary_offset) r->caught_up_ms = bc_time_mono_ms();
                pthread_mutex_unlock(&r->mu);
            }
            pos += used;
        }
        if (bad) {
            log_warn("repl: stream from primary %s is broken: %s", prim->addr, err);
            why = "protocol error";
            break;
        }
        memmove(buf, buf + pos, len - pos);
        len -= pos;
        if (state == LIVE) {
            pthread_mutex_lock(&r->mu);
            uint64_t applied = r->applied;
            pthread_mutex_unlock(&r->mu);
            if (applied != acked) {
                bc_frame_buf_t ab = {0};
                bool sent = bc_frame_put_ack(&ab, applied) == BC_OK &&
                            bc__repl_send_all(&io, ab.data, ab.len);
                bc_frame_buf_free(&ab);
                if (!sent) {
                    why = "cannot acknowledge";
                    break;
                }
                acked = applied;
            }
        }
    }
    pthread_mutex_lock(&r->mu);
    r->link_up = false;
    r->follow_fd = -1;
    pthread_mutex_unlock(&r->mu);
    if (bc_node_cluster_is_primary(r->cluster)) why = "this node became primary";
    log_info("repl: link to primary %s ended: %s", prim->addr, why);
    free(buf);
    bc_peer_io_close(&io);
}
