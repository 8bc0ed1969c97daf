/*
 * repl.c -- see repl.h for the protocol, the modes and the role changes.
 *
 * THREADS
 *   repl_main      one per node: follows the role the cluster agent
 *                  decides; as a backup it runs the follower loop itself
 *                  (connect, apply, acknowledge).
 *   peer_sender    one per connected backup (primary): handshake answer,
 *                  snapshot, then the backlog as it grows, PING when idle.
 *   peer_reader    one per connected backup (primary): reads ACKs.
 *   workers        record changes (cache observer) and, in sync mode,
 *                  wait for ACKs before replying (bc_repl_commit_wait).
 *
 * THE BACKLOG
 *   A byte ring of the last backlog_bytes of the stream: [start, end) in
 *   stream offsets, end being the primary's replication offset.  Records
 *   are appended whole under mu; a sender copies up to a chunk from its
 *   position under mu and sends it without the lock.  A sender whose
 *   position fell below start has lost records: its backup is
 *   disconnected, and on reconnecting asks for an offset that is no longer
 *   held, so it gets a full resync.
 */
#include "repl.h"

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
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bc_frame.h"
#include "bc_hash.h"
#include "bc_log.h"
#include "bc_net.h"
#include "bc_config.h"
#include "bc_time.h"
#include "bc_wire.h"
#include "item_frame.h"
#include "proto_text.h"

#define REPL_DEFAULT_BACKLOG       (64u * 1024u * 1024u)
#define REPL_DEFAULT_SYNC_TIMEOUT  500u
#define REPL_DEFAULT_MAX_BACKUPS   8u
#define REPL_PING_MS               200
#define REPL_LINK_TIMEOUT_MS       3000     /* backup: silence that ends the link */
#define REPL_SEND_TIMEOUT_MS       5000     /* primary: a backup not reading */
#define REPL_CONNECT_TIMEOUT_MS    1000
#define REPL_SEND_CHUNK            (1024u * 1024u)
#define REPL_SNAPSHOT_FLUSH        (1024u * 1024u)
#define REPL_ROLE_POLL_MS          50
#define REPL_KEEP_MS               60000    /* record this long without backups */
#define REPL_COALESCE_US           200      /* async: batch records this long */
#define REPL_COALESCE_BYTES        (64u * 1024u)

typedef struct repl_peer {
    bc_repl_t *r;
    int fd;
    char name[BC_WIRE_NAME_MAX + 1];
    char addr[64];
    char req_replid[BC_FRAME_REPLID_MAX + 1];
    uint64_t req_offset;
    _Atomic uint64_t acked;
    _Atomic bool closing;
    bool online;                   /* mu */
    bool in_sync;                  /* mu */
    pthread_t reader;
    bool reader_started;
    struct repl_peer *next;        /* mu */
} repl_peer_t;

struct bc_repl {
    bc_cache_t *cache;
    bc_node_cluster_t *cluster;
    bc_repl_mode_t mode;
    uint32_t sync_timeout_ms;
    uint64_t max_lag;              /* async: bytes a backup may trail (0 = no bound) */
    uint32_t max_backups;
    char label[64];

    /* LOCKING RULE: see repl.h.  Everything below up to the counters is
     * guarded by mu unless it is atomic. */
    pthread_mutex_t mu;
    pthread_cond_t data_cv;        /* new records (senders wait) */
    uint32_t senders_waiting;      /* senders asleep on data_cv */
    pthread_cond_t ack_cv;         /* new ACKs, peers gone (workers wait) */
    pthread_cond_t role_cv;        /* role thread naps, peers gone */
    char *ring;
    size_t cap;
    uint64_t start;
    uint64_t end;
    char replid[BC_FRAME_REPLID_MAX + 1];
    /* The id this node followed before its promotion, and the offset up
     * to which its stream equals ours (see CONTINUING AFTER A FAILOVER). */
    char replid2[BC_FRAME_REPLID_MAX + 1];
    uint64_t off2;
    _Atomic bool recording;
    /* The lowest offset acknowledged by a backup of the sync set
     * (UINT64_MAX: none); written under mu, read without it by workers. */
    _Atomic uint64_t floor;
    repl_peer_t *peers;
    uint32_t npeers;
    /* Recording costs every write an encode and a copy; with no backup
     * and none expected (REPL_KEEP_MS after the last one left, or after a
     * promotion) the observer skips it and notes that it did: the next
     * backup then cannot resume from the backlog (see repl_observe). */
    _Atomic uint32_t npeers_pub;   /* npeers, for the lock-free check */
    _Atomic int64_t keep_until;    /* monotonic ms: record even without backups */
    _Atomic bool skipped;          /* changes went unrecorded */
    /* repl_flush_mark: the mark last recorded, and the time of the last
     * delayed flush recorded that has not yet been followed by its mark */
    _Atomic uint64_t flush_mark_sent;
    _Atomic uint32_t flush_when;
    int64_t keep_ms;               /* REPL_KEEP_MS; BC_TEST_REPL_KEEP_MS for tests */
    bool stopping;
    pthread_t thread;
    bool started;

    /* backup side (mu) */
    int follow_fd;                 /* the link to the primary, -1 = none */
    bool following;                /* repl_main is in (or entering) repl_follow */
    uint64_t applied;
    bool synced;
    bool link_up;
    char primary_addr[BC_ADDR_MAX];
    uint64_t primary_offset;
    int64_t caught_up_ms;

    _Atomic uint64_t full_resyncs, partial_resyncs, sync_waits, sync_timeouts, sync_wait_us;
    _Atomic uint64_t applied_records, apply_errors, snapshots_received;
};

/* The stream offset after this thread's last record, and the last one a
 * sync wait confirmed (one bc_repl_t per process). */
static _Thread_local uint64_t tls_want;
static _Thread_local uint64_t tls_done;

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

/* ---- small helpers ---- */

static void
repl_new_replid(char *out)
{
    unsigned char raw[20];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        uint64_t t = (uint64_t)bc_time_real_ms() ^ ((uint64_t)getpid() << 32);
        for (size_t i = 0; i < sizeof(raw); i++) {
            raw[i] = (unsigned char)(t >> ((i % 8) * 8)) ^ (unsigned char)i;
        }
    }
    for (size_t i = 0; i < sizeof(raw); i++) sprintf(out + 2 * i, "%02x", raw[i]);
}

static bool
send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* ---- the backlog (caller holds mu: do_) ---- */

static void
do_backlog_append(bc_repl_t *r, const char *data, size_t len)
{
    if (len >= r->cap) {
        /* Larger than the whole ring: nobody can be sent it from here. */
        r->end += len;
        r->start = r->end;
        return;
    }
    size_t at = (size_t)(r->end % r->cap);
    size_t first = len < r->cap - at ? len : r->cap - at;
    memcpy(r->ring + at, data, first);
    if (len > first) memcpy(r->ring, data + first, len - first);
    r->end += len;
    if (r->end - r->start > r->cap) r->start = r->end - r->cap;
}

static size_t
do_backlog_copy(const bc_repl_t *r, uint64_t pos, char *dst, size_t max)
{
    uint64_t avail = r->end - pos;
    size_t n = avail < max ? (size_t)avail : max;
    size_t at = (size_t)(pos % r->cap);
    size_t first = n < r->cap - at ? n : r->cap - at;
    memcpy(dst, r->ring + at, first);
    if (n > first) memcpy(dst + first, r->ring, n - first);
    return n;
}

/*
 * The largest n <= max such that pos + n is a record boundary (pos is
 * one), walking the frames' length headers; 0 when the first record is
 * larger than max.
 */
static size_t
do_backlog_boundary(const bc_repl_t *r, uint64_t pos, size_t max)
{
    size_t n = 0;
    while (pos + n < r->end) {
        unsigned char h[4];
        for (int i = 0; i < 4; i++) h[i] = (unsigned char)r->ring[(pos + n + (uint64_t)i) % r->cap];
        size_t flen = BC_FRAME_HEADER_LEN +
                      ((size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3]);
        if (n + flen > max) break;
        n += flen;
    }
    return n;
}

/* Recomputes floor after an ACK or a change of the sync set. */
static void
do_floor_update(bc_repl_t *r)
{
    uint64_t f = UINT64_MAX;
    for (repl_peer_t *p = r->peers; p != NULL; p = p->next) {
        uint64_t a = atomic_load(&p->acked);
        if (p->in_sync && !atomic_load(&p->closing) && a < f) f = a;
    }
    atomic_store(&r->floor, f);
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
static void
do_peers_close(bc_repl_t *r)
{
    for (repl_peer_t *p = r->peers; p != NULL; p = p->next) {
        atomic_store(&p->closing, true);
        shutdown(p->fd, SHUT_RDWR);
    }
    do_floor_update(r);
    pthread_cond_broadcast(&r->data_cv);
    pthread_cond_broadcast(&r->ack_cv);
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
        if (bc__item_ttl(it->exptime, bc_cache_now(r->cache), &ttl)) {
            st = bc__item_put_frame(b, it, ttl);
        } else {
            st = bc_frame_put_del(b, bc_item_key(it), it->nkey);
        }
        break;
    }
    case BC_CACHE_EV_TOUCH:
        if (bc__item_ttl(ev->item->exptime, bc_cache_now(r->cache), &ttl)) {
            st = bc_frame_put_touch(b, bc_item_key(ev->item), ev->item->nkey, ttl);
        } else {
            st = bc_frame_put_del(b, bc_item_key(ev->item), ev->item->nkey);
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

static void
repl_observe(void *ctx, const bc_cache_event_t *ev)
{
    bc_repl_t *r = ctx;
    if (!atomic_load_explicit(&r->recording, memory_order_acquire)) return;
    /*
     * BEHAVIOR: no backup to send to: skip the record.  The load cannot
     * miss a backup that is taking its snapshot: its sender published
     * npeers before it took this shard's lock to copy the bucket, and we
     * hold that lock now, so either the copy already has this change or we
     * see the backup.  A backup that arrives after skipped changes gets a
     * snapshot (the backlog no longer describes the data).
     */
    if (atomic_load_explicit(&r->npeers_pub, memory_order_relaxed) == 0) {
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
        r->start = r->end = r->end + 1;
        do_peers_close(r);
    } else {
        do_backlog_append(r, b->data, b->len);
        if (r->senders_waiting > 0) pthread_cond_broadcast(&r->data_cv);
    }
    tls_want = r->end;
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
    repl_observe(r, &ev);
}

/* ---- sync mode, and the async lag bound ---- */

/* What applies now: the group's settings (groups/<gid>/config) where set,
 * this node's flags otherwise. */
typedef struct repl_settings {
    bc_repl_mode_t mode;
    uint32_t sync_timeout_ms;
    uint64_t max_lag;
} repl_settings_t;

static void
repl_settings(const bc_repl_t *r, repl_settings_t *out)
{
    int mode;
    int64_t timeout, lag_mb;
    bc_node_cluster_group_settings(r->cluster, &mode, &timeout, &lag_mb);
    out->mode = mode < 0 ? r->mode : mode == 1 ? BC_REPL_SYNC : BC_REPL_ASYNC;
    out->sync_timeout_ms = timeout < 0 ? r->sync_timeout_ms : (uint32_t)timeout;
    out->max_lag = lag_mb < 0 ? r->max_lag : (uint64_t)lag_mb << 20;
}

/*
 * BEHAVIOR: sync mode waits until every backup of the sync set has this
 * thread's last write; async mode waits only while one trails it by more
 * than max_lag bytes, which bounds what an async failover can lose (a
 * backup that cannot keep up slows the writers down instead of falling
 * ever further behind).  Either wait ends after sync_timeout_ms: the
 * backups still short of the mark leave the sync set (logged, counted)
 * until they catch up.  The common case -- nothing to wait for -- is one
 * atomic load.
 */
/* What this thread's last write must reach before its caller answers
 * (0: nothing to wait for), with the settings' timeout in *timeout_ms.
 * Takes the write: asking again returns 0 until the thread writes more. */
static uint64_t
repl_commit_need(bc_repl_t *r, uint32_t *timeout_ms)
{
    uint64_t want = tls_want;
    if (want <= tls_done) return 0;
    tls_done = want;
    repl_settings_t set;
    repl_settings(r, &set);
    *timeout_ms = set.sync_timeout_ms;
    uint64_t need = want;
    if (set.mode != BC_REPL_SYNC) {
        if (set.max_lag == 0 || want <= set.max_lag) return 0;
        need = want - set.max_lag;
    }
    if (atomic_load_explicit(&r->floor, memory_order_acquire) >= need) return 0;
    if (!atomic_load_explicit(&r->recording, memory_order_acquire)) return 0;
    return need;
}

/* mu held: every backup of the sync set has `need`, or it was recorded
 * under an earlier role (the offsets started again since). */
static bool
do_commit_reached(bc_repl_t *r, uint64_t need)
{
    if (need > r->end) return true;
    for (repl_peer_t *p = r->peers; p != NULL; p = p->next) {
        if (p->in_sync && !atomic_load(&p->closing) && atomic_load(&p->acked) < need) {
            return false;
        }
    }
    return true;
}

/* mu held: the wait for `need` timed out; the backups still short of it
 * leave the sync set. */
static void
do_commit_expire(bc_repl_t *r, uint64_t need, uint32_t timeout_ms)
{
    for (repl_peer_t *p = r->peers; p != NULL; p = p->next) {
        if (p->in_sync && atomic_load(&p->acked) < need) {
            p->in_sync = false;
            atomic_fetch_add(&r->sync_timeouts, 1);
            log_warn("repl: backup %s (%s) did not acknowledge offset %" PRIu64
                     " within %u ms (it has %" PRIu64 "): dropped from the sync set",
                     p->name, p->addr, need, timeout_ms, atomic_load(&p->acked));
        }
    }
    do_floor_update(r);
}

static void
repl_count_wait(bc_repl_t *r, int64_t waited_ms)
{
    atomic_fetch_add(&r->sync_waits, 1);
    atomic_fetch_add(&r->sync_wait_us, (uint64_t)waited_ms * 1000u);
}

void
bc_repl_commit_wait(void *ctx)
{
    bc_repl_t *r = ctx;
    if (r == NULL) return;
    uint32_t timeout_ms = 0;
    uint64_t need = repl_commit_need(r, &timeout_ms);
    if (need == 0) return;

    int64_t t0 = bc_time_mono_ms();
    struct timespec deadline;
    bc_time_deadline(&deadline, CLOCK_MONOTONIC, timeout_ms);
    bool waited = false;
    pthread_mutex_lock(&r->mu);
    while (!do_commit_reached(r, need)) {
        waited = true;
        if (pthread_cond_timedwait(&r->ack_cv, &r->mu, &deadline) == ETIMEDOUT) {
            do_commit_expire(r, need, timeout_ms);
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (waited) repl_count_wait(r, bc_time_mono_ms() - t0);
}

bc_repl_commit_t
bc_repl_commit_ticket(bc_repl_t *r)
{
    bc_repl_commit_t t = {0};
    if (r == NULL) return t;
    t.need = repl_commit_need(r, &t.timeout_ms);
    return t;
}

bool
bc_repl_commit_poll(bc_repl_t *r, const bc_repl_commit_t *t, int64_t waited_ms)
{
    if (r == NULL || t->need == 0) return true;
    pthread_mutex_lock(&r->mu);
    bool done = do_commit_reached(r, t->need);
    if (!done && waited_ms >= (int64_t)t->timeout_ms) {
        do_commit_expire(r, t->need, t->timeout_ms);
        done = true;
    }
    pthread_mutex_unlock(&r->mu);
    if (done && waited_ms > 0) repl_count_wait(r, waited_ms);
    return done;
}

/* ---- primary side: one backup ---- */

/* Sends every bucket's items, then END.  False on a failure (logged). */
static bool
peer_snapshot(repl_peer_t *p)
{
    bc_repl_t *r = p->r;
    bc_frame_buf_t b = {0};
    bc__item_frames_t sc = {.buf = &b, .st = BC_OK};
    uint32_t nb = bc_cache_nbuckets(r->cache);
    bool ok = true;
    int64_t t0 = bc_time_mono_ms();
    for (uint32_t bucket = 0; bucket < nb && ok; bucket++) {
        if (atomic_load(&p->closing)) {
            ok = false;
            break;
        }
        sc.now = bc_cache_now(r->cache);
        (void)bc_cache_bucket_foreach(r->cache, bucket, bc__item_frames_add, &sc);
        if (sc.st != BC_OK) {
            log_warn("repl: snapshot for %s failed: %s", p->name, bc_status_str(sc.st));
            ok = false;
        } else if (b.len >= REPL_SNAPSHOT_FLUSH) {
            ok = send_all(p->fd, b.data, b.len);
            b.len = 0;
        }
    }
    ok = ok && bc_frame_put_end(&b, sc.items, sc.bytes) == BC_OK && send_all(p->fd, b.data, b.len);
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
        ssize_t n = recv(p->fd, buf + len, sizeof(buf) - len, 0);
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
            pthread_mutex_lock(&r->mu);
            if (p->online && !p->in_sync && f.offset >= r->end) {
                p->in_sync = true;
                log_info("repl: backup %s caught up at offset %" PRIu64 ": back in the sync set",
                         p->name, f.offset);
            }
            do_floor_update(r);
            pthread_cond_broadcast(&r->ack_cv);
            pthread_mutex_unlock(&r->mu);
        }
        if (bad) break;
        memmove(buf, buf + pos, len - pos);
        len -= pos;
    }
    atomic_store(&p->closing, true);
    pthread_mutex_lock(&r->mu);
    pthread_cond_broadcast(&r->data_cv);
    pthread_cond_broadcast(&r->ack_cv);
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
                  p->req_offset >= r->start &&
                  ((strcmp(p->req_replid, r->replid) == 0 && p->req_offset <= r->end) ||
                   (strcmp(p->req_replid, r->replid2) == 0 && p->req_offset <= r->off2));
        pos = partial ? p->req_offset : r->end;
        memcpy(replid, r->replid, sizeof(replid));
        pthread_mutex_unlock(&r->mu);
        ok = bc_frame_put_rhello(&fb, !partial, replid, pos) == BC_OK &&
             send_all(p->fd, fb.data, fb.len);
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
        p->in_sync = true;
        if (atomic_load(&p->acked) < pos) atomic_store(&p->acked, pos);
        do_floor_update(r);
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
               pos == r->end) {
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
        repl_settings(r, &set);
        if (slept && set.mode == BC_REPL_ASYNC && r->end - pos < REPL_COALESCE_BYTES &&
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
        if (pos < r->start || pos > r->end) {
            pthread_mutex_unlock(&r->mu);
            log_warn("repl: backup %s fell behind the backlog (at %" PRIu64 "): disconnecting it "
                     "for a full resync", p->name, pos);
            break;
        }
        if (pos == r->end) {
            uint64_t off = r->end;
            pthread_mutex_unlock(&r->mu);
            if (ping) {
                fb.len = 0;
                ok = bc_frame_put_ping(&fb, off) == BC_OK && send_all(p->fd, fb.data, fb.len);
                last_ping = bc_time_mono_ms();
            }
            continue;
        }
        /* Whole records, so that a PING can follow: a busy stream tells the
         * backup the primary's offset too (its lag), not only an idle one. */
        size_t n = do_backlog_boundary(r, pos, REPL_SEND_CHUNK);
        bool boundary = n > 0;
        if (!boundary) n = (size_t)(r->end - pos) < REPL_SEND_CHUNK ? (size_t)(r->end - pos)
                                                                    : REPL_SEND_CHUNK;
        n = do_backlog_copy(r, pos, chunk, n);
        uint64_t announced = r->end;
        pthread_mutex_unlock(&r->mu);
        ok = send_all(p->fd, chunk, n);
        pos += n;
        if (ok && boundary && bc_time_mono_ms() - last_ping >= REPL_PING_MS / 2) {
            fb.len = 0;
            ok = bc_frame_put_ping(&fb, announced) == BC_OK && send_all(p->fd, fb.data, fb.len);
            last_ping = bc_time_mono_ms();
        }
    }

    atomic_store(&p->closing, true);
    shutdown(p->fd, SHUT_RDWR);
    if (p->reader_started) pthread_join(p->reader, NULL);
    pthread_mutex_lock(&r->mu);
    do_peer_unlink(r, p);
    if (r->npeers == 0) atomic_store(&r->keep_until, bc_time_mono_ms() + r->keep_ms);
    do_floor_update(r);
    pthread_cond_broadcast(&r->ack_cv);
    pthread_cond_broadcast(&r->role_cv);
    pthread_mutex_unlock(&r->mu);
    log_info("repl: backup %s (%s) disconnected", p->name, p->addr);
    close(p->fd);
    free(chunk);
    bc_frame_buf_free(&fb);
    free(p);
    return NULL;
}

void
bc_repl_handoff(void *ctx, int fd, const char *args)
{
    bc_repl_t *r = ctx;
    bc_wire_replicate_t hs;

    if (bc_wire_replicate_parse(args, strlen(args), &hs) != BC_OK) {
        static const char msg[] = BC_WIRE_REPLICATE_BAD_LINE;
        (void)!write(fd, msg, sizeof(msg) - 1);
        close(fd);
        return;
    }
    if (hs.gid != bc_node_cluster_gid(r->cluster) || !atomic_load(&r->recording)) {
        static const char msg[] = BC_WIRE_REPLICATE_NOT_PRIMARY;
        (void)!write(fd, msg, sizeof(msg) - 1);
        close(fd);
        return;
    }
    repl_peer_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        close(fd);
        return;
    }
    p->r = r;
    p->fd = fd;
    snprintf(p->name, sizeof(p->name), "%s", hs.name);
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

    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {REPL_SEND_TIMEOUT_MS / 1000, (REPL_SEND_TIMEOUT_MS % 1000) * 1000};
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct timeval rtv = {0, 500 * 1000};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rtv, sizeof(rtv));

    pthread_mutex_lock(&r->mu);
    if (r->stopping || r->npeers >= r->max_backups) {
        pthread_mutex_unlock(&r->mu);
        static const char msg[] = BC_WIRE_REPLICATE_TOO_MANY;
        (void)!write(fd, msg, sizeof(msg) - 1);
        close(fd);
        free(p);
        return;
    }
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
        r->end += 1;
        r->start = r->end;
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
        close(fd);
        free(p);
        return;
    }
    log_info("repl: backup %s connected from %s (offset %" PRIu64 ")", hs.name, host, hs.offset);
}

/* ---- backup side ---- */

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
        bc_item_t *it = bc__item_from_frame(cache, f, hash, &st);
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
                             bc__item_exptime(now, f->ttl));
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

/* A blocking link to the primary: a read returns every REPL_PING_MS so the
 * follower can look at its role; a backup not reading stalls a send for
 * at most REPL_SEND_TIMEOUT_MS.  -1 on failure (reason in why). */
static int
repl_connect(const struct sockaddr_storage *sa, socklen_t salen, char *why, size_t whylen)
{
    int fd;
    if (bc_net_connect_addr((const struct sockaddr *)sa, salen, REPL_CONNECT_TIMEOUT_MS, 0, &fd,
                            why, whylen) != BC_OK) {
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {0, REPL_PING_MS * 1000};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct timeval stv = {REPL_SEND_TIMEOUT_MS / 1000, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &stv, sizeof(stv));
    return fd;
}

/* The address of this group's primary, when it is another node. */
static bool
repl_find_primary(bc_repl_t *r, bc_node_primaries_t *view, bc_node_primary_t *out)
{
    bc_node_cluster_primaries_sync(r->cluster, view);
    const bc_node_primary_t *e = bc_node_primaries_find(view, bc_node_cluster_gid(r->cluster));
    if (e == NULL || e->self || e->salen == 0) return false;
    *out = *e;
    return true;
}

/*
 * One link to the primary: handshake, (snapshot), live stream, ACKs.
 * Returns when the link ends, the role or the primary changes, or the
 * module stops.
 */
static void
repl_follow(bc_repl_t *r, const bc_node_primary_t *prim, bc_node_primaries_t *view)
{
    char cerr[160];
    int fd = repl_connect(&prim->sa, prim->salen, cerr, sizeof(cerr));
    if (fd < 0) {
        log_debug("repl: cannot connect to primary %s: %s", prim->addr, cerr);
        return;
    }
    char line[BC_WIRE_HANDSHAKE_MAX];
    bc_wire_replicate_t hs = {.gid = bc_node_cluster_gid(r->cluster)};
    pthread_mutex_lock(&r->mu);
    memcpy(hs.replid, r->replid, sizeof(hs.replid));
    hs.offset = r->synced ? r->applied : 0;
    snprintf(hs.name, sizeof(hs.name), "%s", r->label);
    pthread_mutex_unlock(&r->mu);
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
    if (buf == NULL || n == 0 || !send_all(fd, line, n)) {
        free(buf);
        close(fd);
        return;
    }
    pthread_mutex_lock(&r->mu);
    r->link_up = true;
    r->follow_fd = fd;
    snprintf(r->primary_addr, sizeof(r->primary_addr), "%s", prim->addr);
    pthread_mutex_unlock(&r->mu);

    enum { WANT_HELLO, SNAPSHOT, LIVE } state = WANT_HELLO;
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
        if (!repl_find_primary(r, view, &now_prim) || strcmp(now_prim.addr, prim->addr) != 0) {
            why = "the group's primary changed";
            break;
        }
        ssize_t k = recv(fd, buf + len, cap - len, 0);
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
        if (state == WANT_HELLO && len > 0 && (buf[0] == 'S' || buf[0] == 'C' || buf[0] == 'E')) {
            char *nl = memchr(buf, '\n', len);
            if (nl == NULL && len < 512) continue;
            log_warn("repl: primary %s refused: %.*s", prim->addr,
                     (int)(nl ? nl - buf : (ptrdiff_t)len), buf);
            why = "refused";
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
                    r->start = r->end = snap_offset;   /* the mirror starts here */
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
                if (r->end == r->applied) do_backlog_append(r, buf + pos, used);
                else r->start = r->end = r->applied + used;
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
                            send_all(fd, ab.data, ab.len);
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
    close(fd);
}

/* ---- role changes ---- */

static void
repl_promote(bc_repl_t *r)
{
    pthread_mutex_lock(&r->mu);
    /* Twice (the role hook and the role thread race) or while the
     * follower still applies the old primary's stream: not now. */
    if (atomic_load(&r->recording) || r->following || r->stopping) {
        pthread_mutex_unlock(&r->mu);
        return;
    }
    char old[BC_FRAME_REPLID_MAX + 1];
    memcpy(old, r->replid, sizeof(old));
    if (r->synced && r->replid[0] != '\0' && r->end == r->applied) {
        /* CONTINUING AFTER A FAILOVER (Redis's PSYNC2): our backlog mirrors
         * the old primary's stream up to here, so a backup that followed
         * the same primary and is not ahead of us can continue from its
         * offset instead of taking a snapshot.  One that is ahead (the
         * old primary itself, with writes nobody else got) cannot. */
        memcpy(r->replid2, r->replid, sizeof(r->replid2));
        r->off2 = r->end;
    } else {
        r->replid2[0] = '\0';
        r->off2 = 0;
        r->start = r->end = r->applied;
    }
    repl_new_replid(r->replid);
    r->synced = true;
    r->link_up = false;
    /* After a failover the other backups come back: keep recording for
     * them.  A first primary (it never followed anyone) has none yet. */
    atomic_store(&r->keep_until, old[0] != '\0' ? bc_time_mono_ms() + r->keep_ms : 0);
    atomic_store(&r->skipped, false);
    atomic_store(&r->recording, true);
    uint64_t off = r->end;
    pthread_mutex_unlock(&r->mu);
    if (bc_node_cluster_open_writes(r->cluster)) {
        log_info("repl: primary of group %u: recording from offset %" PRIu64 " (replication id "
                 "%s%s%s)", bc_node_cluster_gid(r->cluster), off, r->replid,
                 old[0] ? ", was " : "", old);
    }
}

static void
repl_demote(bc_repl_t *r)
{
    bc_node_cluster_close_writes(r->cluster);
    pthread_mutex_lock(&r->mu);
    atomic_store(&r->recording, false);
    r->applied = r->end;
    do_peers_close(r);
    struct timespec until;
    bc_time_deadline(&until, CLOCK_MONOTONIC, 3000);
    while (r->npeers > 0) {
        if (pthread_cond_timedwait(&r->role_cv, &r->mu, &until) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&r->mu);
    log_info("repl: no longer primary of group %u: following the new primary",
             bc_node_cluster_gid(r->cluster));
}

static void *
repl_main(void *arg)
{
    bc_repl_t *r = arg;
    bc_node_primaries_t view;
    bc_node_primaries_init(&view);
    int backoff = 50;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        bool stop = r->stopping;
        pthread_mutex_unlock(&r->mu);
        if (stop) break;
        int nap = REPL_ROLE_POLL_MS;
        if (bc_node_cluster_is_primary(r->cluster)) {
            if (!atomic_load(&r->recording)) repl_promote(r);
            else if (!bc_node_cluster_may_write(r->cluster)) {
                (void)bc_node_cluster_open_writes(r->cluster);
            }
        } else {
            if (atomic_load(&r->recording)) repl_demote(r);
            bc_node_primary_t prim;
            pthread_mutex_lock(&r->mu);
            bool go = !atomic_load(&r->recording) && !r->stopping &&
                      repl_find_primary(r, &view, &prim);
            r->following = go;
            pthread_mutex_unlock(&r->mu);
            if (go) {
                int64_t t0 = bc_time_mono_ms();
                repl_follow(r, &prim, &view);
                pthread_mutex_lock(&r->mu);
                r->following = false;
                pthread_mutex_unlock(&r->mu);
                /* A link that lasted is not a reason to wait long. */
                backoff = bc_time_mono_ms() - t0 > 2000 ? 50
                          : backoff * 2 > 1000           ? 1000
                                                         : backoff * 2;
                nap = backoff;
            }
        }
        pthread_mutex_lock(&r->mu);
        if (!r->stopping) {
            struct timespec until;
            bc_time_deadline(&until, CLOCK_MONOTONIC, nap);
            pthread_cond_timedwait(&r->role_cv, &r->mu, &until);
        }
        pthread_mutex_unlock(&r->mu);
    }
    bc_node_primaries_free(&view);
    return NULL;
}

/* ---- lifecycle ---- */

/* The cluster's role changed: act now rather than at the next poll. */
static void
repl_on_role(void *ctx)
{
    bc_repl_t *r = ctx;
    pthread_mutex_lock(&r->mu);
    /* A promoted backup must stop following at once: its primary is gone
     * and waiting for the link to time out would delay the promotion. */
    if (r->follow_fd >= 0) shutdown(r->follow_fd, SHUT_RDWR);
    bool idle = !r->following;
    pthread_cond_broadcast(&r->role_cv);
    pthread_mutex_unlock(&r->mu);
    /* Not following anyone (a first primary, a node back from an expired
     * session): promote right here, so writes open as soon as the role
     * is known rather than a thread wake-up later. */
    if (idle && bc_node_cluster_is_primary(r->cluster)) repl_promote(r);
}

bc_status_t
bc_repl_create(const bc_repl_config_t *config, bc_repl_t **out)
{
    if (config == NULL || config->cache == NULL || config->cluster == NULL) return BC_EINVAL;
    bc_repl_t *r = calloc(1, sizeof(*r));
    if (r == NULL) return BC_ENOMEM;
    r->cache = config->cache;
    r->cluster = config->cluster;
    r->mode = config->mode;
    r->sync_timeout_ms = config->sync_timeout_ms ? config->sync_timeout_ms
                                                 : REPL_DEFAULT_SYNC_TIMEOUT;
    r->max_lag = config->max_lag_bytes;
    atomic_init(&r->floor, UINT64_MAX);
    r->max_backups = config->max_backups ? config->max_backups : REPL_DEFAULT_MAX_BACKUPS;
    r->cap = config->backlog_bytes ? config->backlog_bytes : REPL_DEFAULT_BACKLOG;
    snprintf(r->label, sizeof(r->label), "%s",
             config->node_label && config->node_label[0] ? config->node_label : "node");
    for (char *c = r->label; *c; c++) {
        if (*c <= ' ' || *c >= 0x7f) *c = '_';
    }
    r->follow_fd = -1;
    r->keep_ms = REPL_KEEP_MS;
    const char *keep = getenv("BC_TEST_REPL_KEEP_MS");
    if (keep != NULL && keep[0] != '\0') {
        r->keep_ms = strtoll(keep, NULL, 10);
        log_warn("repl: BC_TEST_REPL_KEEP_MS: recording without backups stops after %lld ms",
                 (long long)r->keep_ms);
    }
    r->ring = malloc(r->cap);
    if (r->ring == NULL) {
        free(r);
        return BC_ENOMEM;
    }
    pthread_mutex_init(&r->mu, NULL);
    bc_time_cond_init(&r->data_cv);
    bc_time_cond_init(&r->ack_cv);
    bc_time_cond_init(&r->role_cv);
    bc_cache_set_observer(r->cache, repl_observe, r);
    bc_node_cluster_use_write_gate(r->cluster);
    bc_node_cluster_set_role_hook(r->cluster, repl_on_role, r);
    *out = r;
    return BC_OK;
}

bc_status_t
bc_repl_start(bc_repl_t *r)
{
    if (pthread_create(&r->thread, NULL, repl_main, r) != 0) return BC_ENOMEM;
    r->started = true;
    return BC_OK;
}

void
bc_repl_stop(bc_repl_t *r)
{
    if (r == NULL) return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    atomic_store(&r->recording, false);
    do_peers_close(r);
    if (r->follow_fd >= 0) shutdown(r->follow_fd, SHUT_RDWR);
    pthread_cond_broadcast(&r->role_cv);
    pthread_mutex_unlock(&r->mu);
    if (r->started) pthread_join(r->thread, NULL);
    r->started = false;
    pthread_mutex_lock(&r->mu);
    struct timespec until;
    bc_time_deadline(&until, CLOCK_MONOTONIC, 10000);
    while (r->npeers > 0) {
        if (pthread_cond_timedwait(&r->role_cv, &r->mu, &until) == ETIMEDOUT) {
            log_warn("repl: %u backup connections still closing", r->npeers);
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
}

void
bc_repl_destroy(bc_repl_t *r)
{
    if (r == NULL) return;
    bc_repl_stop(r);
    bc_cache_set_observer(r->cache, NULL, NULL);
    if (r->npeers > 0) return;   /* a stuck sender still uses r: leak rather than crash */
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->data_cv);
    pthread_cond_destroy(&r->ack_cv);
    pthread_cond_destroy(&r->role_cv);
    free(r->ring);
    free(r);
}

void
bc_repl_get_info(bc_repl_t *r, bc_repl_info_t *out)
{
    memset(out, 0, sizeof(*out));
    if (r == NULL) return;
    pthread_mutex_lock(&r->mu);
    out->primary = atomic_load(&r->recording);
    repl_settings_t set;
    repl_settings(r, &set);
    out->mode = set.mode;
    memcpy(out->replid, r->replid, sizeof(out->replid));
    out->offset = out->primary ? r->end : (r->synced ? r->applied : 0);
    out->synced = out->primary || r->synced;
    out->backlog_start = r->start;
    out->backlog_bytes = r->end - r->start;
    uint32_t i = 0;
    for (repl_peer_t *p = r->peers; p != NULL; p = p->next) {
        out->backups++;
        if (i >= BC_REPL_MAX_BACKUPS_REPORTED) continue;
        bc_repl_backup_info_t *b = &out->backup[i++];
        snprintf(b->name, sizeof(b->name), "%s", p->name);
        snprintf(b->addr, sizeof(b->addr), "%s", p->addr);
        b->online = p->online;
        b->in_sync = p->in_sync;
        b->acked = atomic_load(&p->acked);
        b->lag_bytes = r->end > b->acked ? r->end - b->acked : 0;
    }
    out->link_up = r->link_up;
    memcpy(out->primary_addr, r->primary_addr, sizeof(out->primary_addr));
    out->primary_offset = r->primary_offset;
    out->lag_bytes = r->primary_offset > r->applied ? r->primary_offset - r->applied : 0;
    /* Lag as the primary last announced it (PING): bytes it had that this
     * node had not applied, and for how long this node has been behind. */
    out->lag_ms = out->primary || r->applied >= r->primary_offset ? 0
                  : r->caught_up_ms > 0 ? bc_time_mono_ms() - r->caught_up_ms : -1;
    pthread_mutex_unlock(&r->mu);
    out->full_resyncs = atomic_load(&r->full_resyncs);
    out->partial_resyncs = atomic_load(&r->partial_resyncs);
    out->sync_waits = atomic_load(&r->sync_waits);
    out->sync_timeouts = atomic_load(&r->sync_timeouts);
    out->sync_wait_us = atomic_load(&r->sync_wait_us);
    out->applied_records = atomic_load(&r->applied_records);
    out->apply_errors = atomic_load(&r->apply_errors);
    out->snapshots_received = atomic_load(&r->snapshots_received);
}

size_t
bc_repl_format_stats(void *ctx, char *buf, size_t len)
{
    bc_repl_info_t ri;
    bc_repl_get_info(ctx, &ri);
    size_t used = 0;
    int role = ri.primary ? BC_REPL_PRIMARY : BC_REPL_BACKUP;
#define REPL_STAT(...)                                                                  \
    do {                                                                                \
        int n_ = snprintf(buf + used, len - used, __VA_ARGS__);                         \
        if (n_ < 0 || (size_t)n_ >= len - used) return used;                            \
        used += (size_t)n_;                                                             \
    } while (0)
    REPL_STAT("STAT repl_role %s\r\nSTAT repl_mode %s\r\n", ri.primary ? "primary" : "backup",
              bc_repl_mode_name(ri.mode));
#define REPL_STAT_NUMBER(field, shown, json, stat, metric, type, help)                   \
    if ((stat) != NULL && ((shown) == BC_REPL_BOTH || (shown) == role)) {               \
        REPL_STAT("STAT %s %" PRIu64 "\r\n", (const char *)(stat), ri.field);          \
    }
    BC_REPL_NUMBERS(REPL_STAT_NUMBER)
#undef REPL_STAT_NUMBER
    REPL_STAT("STAT repl_synced %d\r\n", ri.synced ? 1 : 0);
    if (ri.primary) {
        REPL_STAT("STAT repl_backups %u\r\n", ri.backups);
    } else {
        REPL_STAT("STAT repl_link_up %d\r\nSTAT repl_lag_ms %" PRId64 "\r\n", ri.link_up ? 1 : 0,
                  ri.lag_ms);
    }
#undef REPL_STAT
    return used;
}

