/*
 * primary.c -- replication's primary side (repl.h): every change of the
 * cache recorded into the backlog, and one sender and one reader thread
 * per connected backup.  The wait that makes a reply follow its writes to
 * the backups, and the in-sync set it waits for, are isr.c's.
 *
 * HOW
 *   A worker's write reaches a backup in three steps:
 *
 *     worker (shard lock held)      sender (one per backup)    backup
 *     ------------------------      -----------------------    ------
 *     cache observer: encode the    wakes on data_cv, copies   applies,
 *     record, append it to the  --> a chunk of the backlog --> ACKs its
 *     backlog under mu              under mu, sends it         offset
 *                                   without the lock              |
 *     before replying (sync):       reader: the ACK raises <------'
 *     wait on ack_cv until every    the peer's offset and the
 *     backup of the sync set has    floor, wakes ack_cv
 *     this thread's last offset
 *
 *   A backup's connection arrives through the data port: a worker hands
 *   its socket over (bc_repl_handoff) and the sender thread answers the
 *   handshake with RHELLO -- a partial resync when the backlog still
 *   holds the offset the backup asks for under a replication id we know,
 *   otherwise a snapshot of every bucket followed by the stream from
 *   where it began (repl.h, THE SNAPSHOT).  A sender whose position falls
 *   out of the backlog has lost records: its backup is disconnected and
 *   comes back for a full resync.
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
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "bc_config.h"
#include "bc_frame.h"
#include "bc_log.h"
#include "bc_time.h"
#include "bc_wire.h"
#include "engine/item_frame.h"
#include "repl/repl_int.h"

#define REPL_SEND_CHUNK            (1024u * 1024u)
#define REPL_SNAPSHOT_FLUSH        (1024u * 1024u)
#define REPL_COALESCE_US           200      /* async: batch records this long */
#define REPL_COALESCE_BYTES        (64u * 1024u)

/* This thread's buffer for encoding a record outside the backlog lock
 * (freed with the thread: a pthread key, so that short-lived threads --
 * imports -- do not leak it). */
static pthread_key_t repl_buf_key;
static pthread_once_t repl_buf_once = PTHREAD_ONCE_INIT;

static void
repl_buf_free(void *b)
{
    bc_frame_buf_free(b);
    free(b);
}

static void
repl_buf_key_create(void)
{
    (void)pthread_key_create(&repl_buf_key, repl_buf_free);
}

static bc_frame_buf_t *
repl_thread_buf(void)
{
    pthread_once(&repl_buf_once, repl_buf_key_create);
    bc_frame_buf_t *b = pthread_getspecific(repl_buf_key);
    if (b == NULL && (b = calloc(1, sizeof(*b))) != NULL &&
        pthread_setspecific(repl_buf_key, b) != 0) {
        free(b);
        b = NULL;
    }
    return b;
}

/* Takes p off the peer list and republishes the count.  Caller holds mu. */
static void
do_peer_unlink(bc_repl_t *r, repl_peer_t *p)
{
    for (repl_peer_t **pp = &r->peers; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    r->npeers--;
    atomic_store(&r->npeers_pub, r->npeers);
}

/* Disconnects every backup (they come back and resync).  Caller holds mu. */
void
bc__repl_do_peers_close(bc_repl_t *r)
{
    for (repl_peer_t *p = r->peers; p != NULL; p = p->next) {
        atomic_store(&p->closing, true);
        shutdown(p->fd, SHUT_RDWR);
    }
    bc__repl_do_isr_changed(r);
    pthread_cond_broadcast(&r->data_cv);
}

/* ---- recording (cache observer, any thread, shard lock held) ---- */

/* flush_mark_sent = max(flush_mark_sent, mark) */
static void
repl_flush_mark_seen(bc_repl_t *r, uint64_t mark)
{
    uint64_t seen = atomic_load(&r->flush_mark_sent);
    while (seen < mark && !atomic_compare_exchange_weak(&r->flush_mark_sent, &seen, mark)) {
    }
}

/* ev as the record it leaves behind (the state, see cache.h), into b. */
static bc_status_t
repl_encode(bc_repl_t *r, const bc_cache_event_t *ev, bc_frame_buf_t *b)
{
    uint32_t ttl = 0;
    bc_status_t st = BC_OK;
    b->len = 0;
    switch (ev->type) {
    case BC_CACHE_EV_STORE: {
        const bc_item_t *it = ev->item;
        if (bc_item_frame_ttl(bc_item_exptime(it), bc_cache_now(r->cache), &ttl)) {
            st = bc_item_frame_put(b, it, ttl);
        } else {
            st = bc_frame_put_del(b, bc_item_key(it), bc_item_nkey(it));
        }
        break;
    }
    case BC_CACHE_EV_TOUCH:
        if (bc_item_frame_ttl(bc_item_exptime(ev->item), bc_cache_now(r->cache), &ttl)) {
            st = bc_frame_put_touch(b, bc_item_key(ev->item), bc_item_nkey(ev->item), ttl);
        } else {
            st = bc_frame_put_del(b, bc_item_key(ev->item), bc_item_nkey(ev->item));
        }
        break;
    case BC_CACHE_EV_DELETE:
        st = bc_frame_put_del(b, ev->key, ev->nkey);
        break;
    case BC_CACHE_EV_FLUSH:
        st = bc_frame_put_flush(b, ev->when, ev->mark);
        if (ev->mark == 0) {
            /* delayed: its mark is the first rise past today's */
            repl_flush_mark_seen(r, bc_cache_flush_mark(r->cache));
            atomic_store(&r->flush_when, ev->when);
        } else {
            repl_flush_mark_seen(r, ev->mark);
            if (ev->when == 0) atomic_store(&r->flush_when, 0);  /* now: cancels it */
        }
        break;
    case BC_CACHE_EV_DROP:
        st = bc_frame_put_drop(b, ev->bucket);
        break;
    }
    return st;
}

void
bc__repl_observe(void *ctx, const bc_cache_event_t *ev)
{
    bc_repl_t *r = ctx;
    if (!atomic_load_explicit(&r->recording, memory_order_acquire)) return;
    /*
     * BEHAVIOR: no backup to send to: skip the record.  The load cannot
     * miss a backup that is taking its snapshot: its sender published
     * npeers before it took this shard's lock to copy the bucket, and we
     * hold that lock now, so either the copy already has this change or we
     * see the backup.  A backup that arrives after skipped changes gets a
     * snapshot (the backlog no longer describes the data).  Never while
     * the in-sync record names a backup, connected or not: a reply must
     * wait for it (or for it to be recorded out), so the write must have
     * an offset.
     */
    if (atomic_load_explicit(&r->npeers_pub, memory_order_relaxed) == 0 &&
        atomic_load_explicit(&r->isr_members_pub, memory_order_relaxed) == 0) {
        /* Once a change went unrecorded the backlog no longer describes
         * the data until the next backup arrives (that clears `skipped`
         * and gives it a snapshot): keep skipping, without reading the
         * clock on every write. */
        if (atomic_load_explicit(&r->skipped, memory_order_relaxed)) return;
        if (bc_time_mono_coarse_ms() >=
            atomic_load_explicit(&r->keep_until, memory_order_relaxed)) {
            atomic_store_explicit(&r->skipped, true, memory_order_relaxed);
            return;
        }
    }
    /* Encode first, into this thread's buffer: the lock every writer of
     * this node shares covers only the append. */
    bc_frame_buf_t *b = repl_thread_buf();
    bc_status_t st = b != NULL ? repl_encode(r, ev, b) : BC_ENOMEM;
    pthread_mutex_lock(&r->mu);
    if (!atomic_load_explicit(&r->recording, memory_order_relaxed)) {
        pthread_mutex_unlock(&r->mu);
        return;
    }
    if (st != BC_OK) {
        /* A record that cannot be encoded (out of memory) cannot be sent:
         * every backup must resync from a snapshot. */
        log_error("repl: cannot record a change (%s): backups will resync", bc_status_str(st));
        bc_backlog_reset(&r->backlog, r->backlog.end + 1);
        bc__repl_do_peers_close(r);
    } else {
        bc_backlog_append(&r->backlog, b->data, b->len);
        if (r->senders_waiting > 0) pthread_cond_broadcast(&r->data_cv);
    }
    bc__repl_note_write(r, r->backlog.end);
    pthread_mutex_unlock(&r->mu);
    /* The buffer grew for a large value: do not keep it. */
    if (b != NULL && b->cap > 256u * 1024u) bc_frame_buf_free(b);
}

/*
 * BEHAVIOR: a delayed flush_all travels as its time (FLUSH [when, 0]), and
 * each node applies it by its own clock, at a mark of its own CAS values.
 * A backup that lags across the due time has not yet received the writes
 * the primary made before it: its mark falls short, those writes survive
 * there, and a failover would bring them back.  So once the flush has come
 * due here, the primary's mark -- the CAS below which its items are now
 * flushed -- follows as FLUSH [when, mark] (bc_cache_flush_came_due at the
 * backup).  A backup holds the primary's CAS values, so raising its mark to
 * that is exact wherever the record lands in the stream (a later write has
 * a larger CAS).  Every sender looks at most every REPL_PING_MS / 2; the
 * first to see the mark rise records it.  An immediate flush_all records
 * its own mark (FLUSH [0, mark]) and cancels the pending time.
 */
static void
repl_flush_mark(bc_repl_t *r)
{
    uint32_t when = atomic_load(&r->flush_when);
    if (when == 0) return;
    uint64_t mark = bc_cache_flush_mark(r->cache);
    uint64_t sent = atomic_load(&r->flush_mark_sent);
    if (mark <= sent) return;      /* not due yet */
    if (!atomic_compare_exchange_strong(&r->flush_when, &when, 0)) return;  /* another sender */
    bc_cache_event_t ev = {.type = BC_CACHE_EV_FLUSH, .when = when, .mark = mark};
    bc__repl_observe(r, &ev);
}

/* ---- primary side: one backup ---- */

/* Sends every bucket's items, then END.  False on a failure (logged). */
static bool
peer_snapshot(repl_peer_t *p)
{
    bc_repl_t *r = p->r;
    bc_frame_buf_t b = {0};
    bc_item_frame_batch_t sc = {.buf = &b, .st = BC_OK};
    uint32_t nb = bc_cache_nbuckets(r->cache);
    bool ok = true;
    int64_t t0 = bc_time_mono_ms();
    for (uint32_t bucket = 0; bucket < nb && ok; bucket++) {
        if (atomic_load(&p->closing)) {
            ok = false;
            break;
        }
        sc.now = bc_cache_now(r->cache);
        (void)bc_cache_bucket_foreach(r->cache, bucket, bc_item_frame_batch_add, &sc);
        if (sc.st != BC_OK) {
            log_warn("repl: snapshot for %s failed: %s", p->name, bc_status_str(sc.st));
            ok = false;
        } else if (b.len >= REPL_SNAPSHOT_FLUSH) {
            ok = bc__repl_send_all(&p->io, b.data, b.len);
            b.len = 0;
        }
    }
    ok = ok && bc_frame_put_end(&b, sc.items, sc.bytes) == BC_OK &&
         bc__repl_send_all(&p->io, b.data, b.len);
    bc_frame_buf_free(&b);
    if (ok) {
        log_info("repl: snapshot for backup %s sent: %" PRIu64 " items, %" PRIu64 " bytes in "
                 "%" PRId64 " ms", p->name, sc.items, sc.bytes, bc_time_mono_ms() - t0);
    }
    return ok;
}

static void *
peer_reader(void *arg)
{
    repl_peer_t *p = arg;
    bc_repl_t *r = p->r;
    char buf[4096];
    size_t len = 0;
    for (;;) {
        ssize_t n = bc_peer_io_recv(&p->io, buf + len, sizeof(buf) - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (atomic_load(&p->closing)) break;
            continue;
        }
        if (n <= 0) break;
        len += (size_t)n;
        size_t pos = 0;
        bool bad = false;
        for (;;) {
            bc_frame_t f;
            size_t used;
            char err[160];
            bc_status_t st = bc_frame_decode(buf + pos, len - pos, 64, &f, &used, err, sizeof(err));
            if (st == BC_EAGAIN) break;
            if (st != BC_OK || f.type != BC_FRAME_ACK) {
                log_warn("repl: backup %s sent a bad frame: %s", p->name,
                         st != BC_OK ? err : "not an ACK");
                bad = true;
                break;
            }
            pos += used;
            uint64_t prev = atomic_load(&p->acked);
            if (f.offset > prev) atomic_store(&p->acked, f.offset);
            if (f.offset > atomic_load(&p->heard_upto)) atomic_store(&p->heard_upto, f.offset);
            pthread_mutex_lock(&r->mu);
            bc__repl_do_isr_ack(r, p, f.offset);
            pthread_mutex_unlock(&r->mu);
        }
        if (bad) break;
        memmove(buf, buf + pos, len - pos);
        len -= pos;
    }
    atomic_store(&p->closing, true);
    pthread_mutex_lock(&r->mu);
    pthread_cond_broadcast(&r->data_cv);
    bc__repl_do_isr_changed(r);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void *
peer_sender(void *arg)
{
    repl_peer_t *p = arg;
    bc_repl_t *r = p->r;
    char *chunk = malloc(REPL_SEND_CHUNK);
    bc_frame_buf_t fb = {0};
    char replid[BC_FRAME_REPLID_MAX + 1];
    uint64_t pos = 0;
    bool partial = false, ok = chunk != NULL;

    if (ok && pthread_create(&p->reader, NULL, peer_reader, p) == 0) {
        p->reader_started = true;
    } else {
        ok = false;
    }
    if (ok) {
        pthread_mutex_lock(&r->mu);
        partial = atomic_load(&r->recording) && p->req_replid[0] != '\0' &&
                  p->req_offset >= r->backlog.start &&
                  ((strcmp(p->req_replid, r->replid) == 0 && p->req_offset <= r->backlog.end) ||
                   (strcmp(p->req_replid, r->replid2) == 0 && p->req_offset <= r->off2));
        pos = partial ? p->req_offset : r->backlog.end;
        memcpy(replid, r->replid, sizeof(replid));
        pthread_mutex_unlock(&r->mu);
        ok = bc_frame_put_rhello(&fb, !partial, replid, pos) == BC_OK &&
             bc__repl_send_all(&p->io, fb.data, fb.len);
        fb.len = 0;
    }
    if (ok && !partial) {
        ok = peer_snapshot(p);
        if (ok) atomic_fetch_add(&r->full_resyncs, 1);
    } else if (ok) {
        atomic_fetch_add(&r->partial_resyncs, 1);
    }
    if (ok) {
        pthread_mutex_lock(&r->mu);
        p->online = true;
        /* Waited for from here on (it holds the snapshot and receives the
         * stream from pos); recorded in once it has acknowledged pos. */
        p->in_sync = true;
        p->entered = pos;
        /* Its first acknowledgement may have come before this (a small
         * snapshot, applied at once): then it has been heard already. */
        p->heard = atomic_load(&p->heard_upto) >= pos;
        if (atomic_load(&p->acked) < pos) atomic_store(&p->acked, pos);
        bc__repl_do_isr_changed(r);
        pthread_mutex_unlock(&r->mu);
        log_info("repl: backup %s (%s) online from offset %" PRIu64 " (%s resync)", p->name,
                 p->addr, pos, partial ? "partial" : "full");
    }

    int64_t last_ping = bc_time_mono_ms();
    int64_t last_mark = 0;
    while (ok) {
        if (bc_time_mono_ms() - last_mark >= REPL_PING_MS / 2) {
            repl_flush_mark(r);
            last_mark = bc_time_mono_ms();
        }
        pthread_mutex_lock(&r->mu);
        bool ping = false;
        bool slept = false;
        while (!atomic_load(&p->closing) && !r->stopping && atomic_load(&r->recording) &&
               pos == r->backlog.end) {
            struct timespec until;
            bc_time_deadline(&until, CLOCK_MONOTONIC, REPL_PING_MS);
            r->senders_waiting++;
            int rc = pthread_cond_timedwait(&r->data_cv, &r->mu, &until);
            r->senders_waiting--;
            slept = true;
            if (rc == ETIMEDOUT) {
                ping = true;
                break;
            }
        }
        /*
         * BEHAVIOR: in async mode a sender woken by one record lets a few
         * more arrive before it sends (REPL_COALESCE_US): one wake-up and
         * one sendmsg carry a batch instead of a record, which is most of
         * what a backup costs the primary at high write rates.  Sync mode
         * sends at once: a writer is waiting for the acknowledgement.
         */
        repl_settings_t set;
        bc__repl_settings(r, &set);
        if (slept && set.mode == BC_REPL_ASYNC && r->backlog.end - pos < REPL_COALESCE_BYTES &&
            !atomic_load(&p->closing) && !r->stopping) {
            pthread_mutex_unlock(&r->mu);
            struct timespec nap = {0, REPL_COALESCE_US * 1000L};
            nanosleep(&nap, NULL);
            pthread_mutex_lock(&r->mu);
        }
        if (atomic_load(&p->closing) || r->stopping || !atomic_load(&r->recording)) {
            pthread_mutex_unlock(&r->mu);
            break;
        }
        if (!bc_backlog_holds(&r->backlog, pos)) {
            pthread_mutex_unlock(&r->mu);
            log_warn("repl: backup %s fell behind the backlog (at %" PRIu64 "): disconnecting it "
                     "for a full resync", p->name, pos);
            break;
        }
        if (pos == r->backlog.end) {
            uint64_t off = r->backlog.end;
            pthread_mutex_unlock(&r->mu);
            if (ping) {
                fb.len = 0;
                ok = bc_frame_put_ping(&fb, off) == BC_OK &&
                     bc__repl_send_all(&p->io, fb.data, fb.len);
                last_ping = bc_time_mono_ms();
            }
            continue;
        }
        /* Whole records, so that a PING can follow: a busy stream tells the
         * backup the primary's offset too (its lag), not only an idle one. */
        size_t n = bc_backlog_boundary(&r->backlog, pos, REPL_SEND_CHUNK);
        bool boundary = n > 0;
        if (!boundary) {
            n = r->backlog.end - pos < REPL_SEND_CHUNK ? (size_t)(r->backlog.end - pos)
                                                       : REPL_SEND_CHUNK;
        }
        n = bc_backlog_copy(&r->backlog, pos, chunk, n);
        uint64_t announced = r->backlog.end;
        pthread_mutex_unlock(&r->mu);
        ok = bc__repl_send_all(&p->io, chunk, n);
        pos += n;
        if (ok && boundary && bc_time_mono_ms() - last_ping >= REPL_PING_MS / 2) {
            fb.len = 0;
            ok = bc_frame_put_ping(&fb, announced) == BC_OK &&
                 bc__repl_send_all(&p->io, fb.data, fb.len);
            last_ping = bc_time_mono_ms();
        }
    }

    atomic_store(&p->closing, true);
    shutdown(p->fd, SHUT_RDWR);
    if (p->reader_started) pthread_join(p->reader, NULL);
    pthread_mutex_lock(&r->mu);
    do_peer_unlink(r, p);
    if (r->npeers == 0) atomic_store(&r->keep_until, bc_time_mono_ms() + r->keep_ms);
    bc__repl_do_isr_changed(r);
    pthread_cond_broadcast(&r->role_cv);
    pthread_mutex_unlock(&r->mu);
    log_info("repl: backup %s (%s) disconnected", p->name, p->addr);
    bc_peer_io_close(&p->io);
    free(chunk);
    bc_frame_buf_free(&fb);
    free(p);
    return NULL;
}

/* Refuses a handed-over connection with msg (best effort: one
 * non-blocking write) and closes it. */
static void
handoff_refuse(int fd, SSL *ssl, const char *msg)
{
    if (ssl != NULL) {
        (void)SSL_write(ssl, msg, (int)strlen(msg));
        SSL_free(ssl);
        ERR_clear_error();
    } else if (msg != NULL) {
        (void)!write(fd, msg, strlen(msg));
    }
    close(fd);
}

void
bc_repl_handoff(void *ctx, int fd, SSL *ssl, const char *args)
{
    bc_repl_t *r = ctx;
    bc_wire_replicate_t hs;

    if (bc_wire_replicate_parse(args, strlen(args), &hs) != BC_OK) {
        handoff_refuse(fd, ssl, BC_WIRE_REPLICATE_BAD_LINE);
        return;
    }
    if (hs.gid != bc_node_cluster_gid(r->cluster) || !atomic_load(&r->recording)) {
        handoff_refuse(fd, ssl, BC_WIRE_REPLICATE_NOT_PRIMARY);
        return;
    }
    repl_peer_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        handoff_refuse(fd, ssl, NULL);
        return;
    }
    p->r = r;
    p->fd = fd;
    snprintf(p->name, sizeof(p->name), "%s", hs.name);
    /* A backup names itself by its registration: only such a name can be
     * recorded in the in-sync set (and only while registered, which the
     * record's write checks). */
    p->node_named = bc_cluster_node_name_valid(hs.name) != 0;
    snprintf(p->req_replid, sizeof(p->req_replid), "%s", hs.replid);
    p->req_offset = hs.offset;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[48] = "?";
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        uint32_t a = ntohl(in->sin_addr.s_addr);
        snprintf(host, sizeof(host), "%u.%u.%u.%u:%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255,
                 a & 255, ntohs(in->sin_port));
    }
    snprintf(p->addr, sizeof(p->addr), "%s", host);

    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    pthread_mutex_lock(&r->mu);
    if (r->stopping || r->npeers >= r->max_backups) {
        pthread_mutex_unlock(&r->mu);
        handoff_refuse(fd, ssl, BC_WIRE_REPLICATE_TOO_MANY);
        free(p);
        return;
    }
    /* From here the link is the peer's: the sender and the reader share
     * it (net/peer_io.h says how, with TLS). */
    bc_peer_io_init(&p->io, fd, ssl, REPL_SEND_TIMEOUT_MS, 500);
    /* Were changes surely recorded up to now?  Yes while another backup
     * is connected, or well inside the keep window (a writer racing this
     * arrival reads the same clock); otherwise one may be skipping right
     * now, so no backlog offset can be trusted. */
    bool sure = r->npeers > 0 || bc_time_mono_ms() < atomic_load(&r->keep_until) - 1000;
    p->next = r->peers;
    r->peers = p;
    r->npeers++;
    atomic_store(&r->npeers_pub, r->npeers);
    if (atomic_exchange(&r->skipped, false) || !sure) {
        /* Changes may have gone unrecorded: the next backup takes a
         * snapshot (no offset held describes the data). */
        bc_backlog_reset(&r->backlog, r->backlog.end + 1);
    }
    pthread_mutex_unlock(&r->mu);

    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, peer_sender, p);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        pthread_mutex_lock(&r->mu);
        do_peer_unlink(r, p);
        pthread_mutex_unlock(&r->mu);
        bc_peer_io_close(&p->io);
        free(p);
        return;
    }
    log_info("repl: backup %s connected from %s (offset %" PRIu64 ")", hs.name, host, hs.offset);
}
