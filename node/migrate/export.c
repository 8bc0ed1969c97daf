/*
 * export.c -- GET /v1/migrate/export (migrate.h): a bucket leaves this
 * node, the source, for the destination that asks.
 *
 * HOW
 *   Three kinds of export, all on the admin (MHD) thread:
 *
 *     bucket=B&epoch=E          the whole bucket, once this node is fenced
 *                               for E (bc_node_migrate_handle_export says
 *                               how; the request is parked meanwhile)
 *     bucket=B&epoch=E&since=T  only what change tracker T (engine/tap.h)
 *                               recorded since the precopy; the whole
 *                               bucket when T is gone
 *     bucket=B&tap=1            a precopy's snapshot: the whole bucket
 *                               while it stays writable, a tracker armed
 *                               just before it is read
 *     buckets=B1,B2,..&tap=1    a batch of precopies: their sections back
 *                               to back on one stream
 *     buckets=B1:T1,B2,..&epoch=E
 *                               a batch of copies at E, fenced together:
 *                               each section the changes since its
 *                               precopy (:T) or the whole bucket
 *
 *   A whole bucket streams: MHD asks for the next block when the socket
 *   can take it, and each block is read from the bucket's table in steps
 *   of about MIG_EXPORT_STEP bytes of frames, one hold of the shard lock
 *   each (bc_cache_bucket_scan), so neither this node's memory nor its
 *   clients' wait on the shard lock grows with the bucket.  The changes
 *   since a precopy are few and are encoded at once, when their section
 *   starts.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "bc_frame.h"
#include "bc_hash.h"
#include "bc_log.h"
#include "bc_peerauth.h"
#include "bc_time.h"
#include "bc_wire.h"
#include "engine/item_frame.h"
#include "migrate/migrate_int.h"
#include "net/server.h"

#define MIG_FENCE_WAIT_US       200000    /* an export is held this long to be fenced */
#define MIG_FENCE_RECHECK_US    250       /* ... looking again this often (parked) */
#define MIG_FENCE_REFRESH_US    20000     /* past this, the agent is asked again too */
#define MIG_EXPORT_STEP         (64u * 1024u)  /* frames read per hold of a shard lock */
#define MIG_PART_SIZE           (64u * 1024u)  /* a larger value goes in parts of this */
#define MIG_HELD_MAX            16u       /* a scan step stops holding items for parts here */
#define MIG_EXPORT_BLOCK        (256u * 1024u)  /* what MHD asks the export stream for:
                                                * one write(2) per block */
#define EXPORT_PARK_GEN         0         /* park_state slot: the generation an export waits for */
#define EXPORT_PARK_HELD_AT     1         /* park_state slot: when a held export was fenced (tests) */

/* An item whose value goes in parts (HEAD PART+, bc_frame.h), held from
 * the pass that found it until its last part is encoded. */
typedef struct export_held {
    bc_item_t *it;                 /* bc_item_retain's reference */
    uint32_t ttl;                  /* its remaining lifetime when found */
} export_held_t;

/* An export being encoded: the buffer MHD sends, the pass filling it
 * (item_frame.h) over the buffer, and the large items the pass held for
 * their parts. */
typedef struct export_ctx {
    bc_frame_buf_t buf;
    bc_item_frame_batch_t frames;  /* frames.buf is &buf: never copy a ctx */
    bc_cache_t *cache;
    bool parts;                    /* the destination takes items in parts */
    export_held_t *held;           /* held[next..nheld): parts still to encode */
    uint32_t nheld, capheld, next;
    size_t off;                    /* held[next]'s value is encoded up to here */
    uint64_t parted;               /* items sent in parts */
} export_ctx_t;

static void
export_init(bc_node_migrate_t *mig, export_ctx_t *x, bool parts)
{
    memset(x, 0, sizeof(*x));
    x->frames.buf = &x->buf;
    x->frames.now = bc_cache_now(mig->cache);
    x->frames.st = BC_OK;
    x->cache = mig->cache;
    x->parts = parts;
}

/* Drops the held items not sent yet and the buffers. */
static void
export_ctx_free(export_ctx_t *x)
{
    for (uint32_t i = x->next; i < x->nheld; i++) bc_item_release(x->cache, x->held[i].it);
    free(x->held);
    x->held = NULL;
    x->nheld = x->capheld = x->next = 0;
    bc_frame_buf_free(&x->buf);
}

/*
 * One item of a pass (shard lock held): a value over MIG_PART_SIZE, for a
 * destination that takes parts, is held to go in parts after the pass
 * (export_encode_parts), so the lock is never held to copy it; any other
 * item is encoded at once.  False when the pass must stop (an encoding
 * failure, in x->frames.st).
 */
static bool
export_add_item(export_ctx_t *x, const bc_item_t *it)
{
    uint32_t ttl;
    if (!x->parts || bc_item_value_len(it) <= MIG_PART_SIZE) {
        return bc_item_frame_batch_add(it, &x->frames);
    }
    if (!bc_item_frame_ttl(bc_item_exptime(it), x->frames.now, &ttl)) return true;
    if (x->nheld == x->capheld) {
        uint32_t cap = x->capheld ? x->capheld * 2 : 16;
        export_held_t *h = realloc(x->held, cap * sizeof(*h));
        /* out of memory: this one goes whole, as to an older destination */
        if (h == NULL) return bc_item_frame_batch_add(it, &x->frames);
        x->held = h;
        x->capheld = cap;
    }
    x->held[x->nheld++] = (export_held_t){bc_item_retain(x->cache, it), ttl};
    x->frames.items++;
    x->frames.bytes += bc_item_nkey(it) + bc_item_value_len(it);
    return true;
}

/* Encodes parts of the held items, about MIG_EXPORT_STEP bytes of them,
 * copying from each item without its shard lock (a holder may read its
 * value: item.h); an item is let go after its last part. */
static bc_status_t
export_encode_parts(export_ctx_t *x)
{
    while (x->next < x->nheld && x->buf.len < MIG_EXPORT_STEP) {
        const export_held_t *h = &x->held[x->next];
        const bc_item_t *it = h->it;
        size_t len = bc_item_value_len(it);
        bc_status_t st;
        if (x->off == 0) {
            st = bc_item_frame_put_head(&x->buf, it, h->ttl);
            if (st != BC_OK) return st;
        }
        size_t n = len - x->off < MIG_PART_SIZE ? len - x->off : MIG_PART_SIZE;
        st = bc_frame_put_part(&x->buf, bc_item_value_const(it) + x->off, n);
        if (st != BC_OK) return st;
        x->off += n;
        if (x->off == len) {
            bc_item_release(x->cache, h->it);
            x->next++;
            x->off = 0;
            x->parted++;
        }
    }
    if (x->next == x->nheld) x->next = x->nheld = 0;
    return BC_OK;
}

/* Why an export of a bucket routed `route` here is refused. */
static const char *
route_refusal(bc_route_t route)
{
    switch (route) {
    case BC_ROUTE_SERVE: return "is writable here: the move was called off";
    case BC_ROUTE_MOVED: return "is owned by another group";
    case BC_ROUTE_NO_OWNER: return "has no owner";
    default: return "is not served by this node (not the primary)";
    }
}

static void
export_refused(bc_node_migrate_t *mig)
{
    atomic_fetch_add_explicit(&mig->export_refusals, 1, memory_order_relaxed);
}

/* A delta's key, found (shard lock held): out as ITEM, or held for its
 * parts. */
static bool
export_peeked_item(const bc_item_t *it, void *arg)
{
    (void)export_add_item(arg, it);
    return false;
}

/*
 * One key a change tracker recorded: as it is now -- an ITEM, or a DEL
 * when it is gone.  BEHAVIOR: each key is looked up on its own (one short
 * hold of its shard lock, bc_cache_peek: no hit counted, nothing marked
 * used), not found by walking the bucket: a catch-up comes every few tens
 * of milliseconds, and a walk would hold the shard lock for the whole
 * bucket each time, however few keys changed.
 */
static void
export_changed_key(const char *key, size_t nkey, void *arg)
{
    export_ctx_t *x = arg;
    if (x->frames.st != BC_OK) return;
    if (bc_cache_peek(x->cache, key, nkey, bc_hash_key(key, nkey), export_peeked_item, x)) {
        return;
    }
    x->frames.st = bc_frame_put_del(x->frames.buf, key, nkey);
    if (x->frames.st != BC_OK) return;
    x->frames.items++;
    x->frames.bytes += nkey;
}

/*
 * A send buffer as large as the export (up to MIG_SOCKBUF_MAX): MHD then
 * hands the stream to the kernel in large pieces, instead of in slices
 * that each wait for the destination to read and for this admin thread to
 * be scheduled again -- on a busy machine every such wake-up costs
 * milliseconds.
 */
static void
export_sndbuf(bc_http_req_t *req, uint64_t bytes)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci == NULL) return;
    int sz = bytes > MIG_SOCKBUF_MAX ? (int)MIG_SOCKBUF_MAX : (int)bytes;
    if (sz > 256 * 1024) (void)setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
}

/*
 * The whole bucket, streamed.  tap != 0: a precopy's snapshot, read after
 * the tracker was armed (tap.h: arm first, then read).
 *
 * The bucket is read a step at a time (bc_cache_bucket_scan: about
 * MIG_EXPORT_STEP bytes of frames per hold of the shard lock) as MHD asks
 * for more, so neither the source's memory nor the time its clients' writes
 * wait on the shard lock grows with the bucket, and the destination stores
 * the first items while the source still reads the rest.
 *
 * BEHAVIOR: the walk is not one atomic snapshot.  For a precopy that is
 * what the tracker is for: a key written or deleted while the walk runs is
 * recorded, and the delta sends it as it is at the cutover.  For a copy at
 * an epoch the bucket is read-only (fenced) for the whole walk, so only
 * expiry and eviction change it, which a copy may miss like any cache.  An
 * item the walk reports twice (its table shrank meanwhile) arrives twice;
 * the destination stores add-if-absent and keeps the first.
 *
 * The stream carries no Content-Length: the destination asks with
 * HTTP/1.0, so the body ends when the connection closes, and the END
 * frame (item count and bytes) tells a complete stream from a truncated
 * one.
 */
typedef struct export_stream {
    bc_node_migrate_t *mig;
    uint32_t bucket;               /* the section being read: list[idx] */
    uint64_t epoch;
    uint64_t tap;                  /* its tracker: taps[idx] */
    /* BEHAVIOR: a batch (buckets=) is one stream of sections, HELLO /
     * items / END per bucket, back to back in the order asked; one bucket
     * is a batch of one.  A precopy batch arms every tracker before the
     * first section is read (arm first, then read: tap.h); a copy batch
     * is fenced whole before its first section, and a section whose
     * tracker saw every change since its precopy carries only those
     * (keys[i], encoded at once when the section starts). */
    uint32_t nlist, idx;
    uint32_t list[MIG_BATCH_MAX];
    uint64_t taps[MIG_BATCH_MAX];
    bc_tap_keys_t *keys[MIG_BATCH_MAX];   /* owned; NULL: the whole bucket */
    bool catchup;                  /* a precopy's catch-up: a section with no keys (its
                                    * tracker gone) is a bare HELLO + END, not the bucket */
    export_ctx_t x;                /* frames encoded, not yet all given to MHD */
    size_t sent;                   /* x.buf.data[0..sent) is given to MHD */
    uint32_t cursor;               /* bc_cache_bucket_scan's */
    bool scanning;                 /* the walk has not finished */
    bool ended;                    /* the END frame is in x.buf */
    uint64_t streamed;             /* bytes given to MHD */
    int64_t started_ms;
    int64_t touched_ms;            /* the batch's later trackers were last kept alive */
} export_stream_t;

/* What section i carries, for the logs. */
static const char *
export_kind(const export_stream_t *s, uint32_t i)
{
    if (s->taps[i] != 0) return "precopy";
    if (s->catchup) return s->keys[i] != NULL ? "catch-up" : "catch-up, tracker gone";
    return s->keys[i] != NULL ? "changes" : "full";
}

/* Catch-ups come every few tens of milliseconds per precopy: debug, not
 * info, so that they do not drown a node's log. */
static bc_log_level_t
export_log_level(const export_stream_t *s)
{
    return s->catchup ? BC_LOG_DEBUG : BC_LOG_INFO;
}

static bool
export_scan_item(const bc_item_t *it, void *arg)
{
    export_stream_t *s = arg;
    if (s->x.frames.st != BC_OK) return false;
    if (!export_add_item(&s->x, it)) return false;
    return s->x.buf.len < MIG_EXPORT_STEP && s->x.nheld < MIG_HELD_MAX;
}

static bc_status_t export_encode_delta(bc_node_migrate_t *mig, export_ctx_t *x, uint32_t bucket,
                                       uint64_t epoch, bc_tap_keys_t *keys);

/* Section s->idx begins: its HELLO, and for a delta all of its frames. */
static bc_status_t
export_section_start(export_stream_t *s)
{
    bc_node_migrate_t *mig = s->mig;
    s->bucket = s->list[s->idx];
    s->tap = s->taps[s->idx];
    s->cursor = 0;
    s->x.frames.items = s->x.frames.bytes = 0;
    if (s->keys[s->idx] != NULL) {
        s->scanning = false;
        return export_encode_delta(mig, &s->x, s->bucket, s->epoch, s->keys[s->idx]);
    }
    if (s->catchup) {
        /* BEHAVIOR: the tracker is gone (catchup.c): a HELLO that is not
         * a delta, and nothing else, tells the destination its precopy
         * no longer has changes to follow.  The bucket is not sent: a
         * catch-up exists to keep the final copy small, and the final
         * copy itself will be a full one. */
        s->scanning = false;
        return bc_frame_put_hello(&s->x.buf, s->bucket, s->epoch, bc_cache_nbuckets(mig->cache));
    }
    s->scanning = true;
    return bc_frame_put_hello(&s->x.buf, s->bucket, s->epoch, bc_cache_nbuckets(mig->cache));
}

/* Encodes the next step of the walk (or the END frame) into s->x.buf.
 * False when the stream must be cut off (logged). */
static bool
export_stream_step(export_stream_t *s)
{
    bc_node_migrate_t *mig = s->mig;
    uint64_t items = s->x.frames.items;
    s->x.buf.len = 0;
    s->sent = 0;
    bc_status_t st;
    if (s->x.nheld > 0) {
        /* the large items the last pass held, before the pass goes on
         * (or the section ends) */
        uint64_t parted = s->x.parted;
        st = export_encode_parts(&s->x);
        atomic_fetch_add_explicit(&mig->export_parted, s->x.parted - parted, memory_order_relaxed);
    } else if (s->scanning) {
        st = bc_cache_bucket_scan(mig->cache, s->bucket, &s->cursor, export_scan_item, s);
        if (st == BC_OK) st = s->x.frames.st;
        if (st == BC_OK && s->cursor == 0) s->scanning = false;
    } else {
        st = bc_frame_put_end(&s->x.buf, s->x.frames.items, s->x.frames.bytes);
        if (st == BC_OK && s->idx + 1 < s->nlist) {
            /* the next section, after this END in the same step */
            bc_log(export_log_level(s), "migrate: exported bucket %" PRIu32 " at epoch %" PRIu64
                   " (%s, %u of %u in a batch): %" PRIu64 " items", s->bucket, s->epoch,
                   export_kind(s, s->idx), s->idx + 1, s->nlist, s->x.frames.items);
            s->idx++;
            items = 0;
            st = export_section_start(s);
        } else {
            s->ended = true;
        }
    }
    if (st != BC_OK) {
        log_warn("migrate: cannot encode bucket %" PRIu32 " for export: %s; the stream "
                 "is cut off", s->bucket, bc_status_str(st));
        return false;
    }
    atomic_fetch_add_explicit(&mig->export_items, s->x.frames.items - items,
                              memory_order_relaxed);
    return true;
}

/* bc_http_read_fn: fills MHD's block from as many steps of the walk as fit
 * (each step under its own hold of the shard lock), so the socket is
 * written a block at a time rather than a step at a time. */
static ssize_t
export_stream_read(void *arg, char *out, size_t max)
{
    export_stream_t *s = arg;
    size_t given = 0;
    /* a precopy still streaming keeps its tracker from going idle: once a
     * block is enough for its own (the tracker set's lock is every
     * tracked writer's), once a second for those of a batch still to come */
    if (s->tap != 0 && s->scanning) bc_tap_touch(s->mig->taps, s->bucket, s->tap);
    int64_t now = bc_time_mono_ms();
    if (s->nlist > 1 && now - s->touched_ms >= 1000) {
        s->touched_ms = now;
        for (uint32_t i = s->idx + 1; i < s->nlist; i++) {
            if (s->taps[i] != 0) bc_tap_touch(s->mig->taps, s->list[i], s->taps[i]);
        }
    }
    while (given < max) {
        if (s->sent == s->x.buf.len) {
            if (s->ended) break;
            if (!export_stream_step(s)) return BC_HTTP_STREAM_ERROR;
            continue;
        }
        size_t n = s->x.buf.len - s->sent;
        if (n > max - given) n = max - given;
        memcpy(out + given, s->x.buf.data + s->sent, n);
        s->sent += n;
        given += n;
    }
    if (given == 0) return BC_HTTP_STREAM_END;
    s->streamed += given;
    atomic_fetch_add_explicit(&s->mig->export_bytes, given, memory_order_relaxed);
    return (ssize_t)given;
}

/* bc_http_free_fn: the stream is sent or dropped. */
static void
export_stream_free(void *arg)
{
    export_stream_t *s = arg;
    bool whole = s->ended && s->sent == s->x.buf.len;
    if (s->nlist > 1) {
        bc_log(export_log_level(s), "migrate: exported %u of %u buckets at epoch %" PRIu64
               " (%s, one stream; bucket %" PRIu32 " last): %" PRIu64 " bytes in %" PRId64
               " ms%s", s->idx + (whole ? 1 : 0), s->nlist, s->epoch,
               s->taps[0] != 0 ? "precopies" : s->catchup ? "catch-ups" : "copies", s->bucket,
               s->streamed,
                 bc_time_mono_ms() - s->started_ms, whole ? "" : " (broken off)");
    } else {
        bc_log(export_log_level(s), "migrate: exported bucket %" PRIu32 " at epoch %" PRIu64
               " (%s): %" PRIu64 " items, %" PRIu64 " bytes in %" PRId64 " ms%s", s->bucket,
               s->epoch, export_kind(s, 0), s->x.frames.items, s->streamed,
               bc_time_mono_ms() - s->started_ms, whole ? "" : " (broken off)");
    }
    export_ctx_free(&s->x);
    for (uint32_t i = 0; i < s->nlist; i++) {
        if (s->keys[i] != NULL) bc_tap_keys_free(s->keys[i]);
        free(s->keys[i]);
    }
    free(s);
}

/* Streams the buckets of list (n of them), taps[i] the tracker of a
 * precopy of list[i] (0: none, a copy at epoch), keys[i] (taken over,
 * NULL: the whole bucket) the changes a copy's section carries instead. */
static enum MHD_Result
export_reply_list(bc_node_migrate_t *mig, bc_http_req_t *req, const uint32_t *list,
                  const uint64_t *taps, bc_tap_keys_t **keys, uint32_t n, uint64_t epoch,
                  bool catchup)
{
    uint32_t bucket = list[0];
    uint64_t tap = taps[0];
    export_stream_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        for (uint32_t i = 0; keys != NULL && i < n; i++) {
            if (keys[i] != NULL) bc_tap_keys_free(keys[i]);
            free(keys[i]);
        }
        return bc_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot export bucket %"
                                   PRIu32 ": out of memory", bucket);
    }
    s->mig = mig;
    s->epoch = epoch;
    s->catchup = catchup;
    s->nlist = n;
    memcpy(s->list, list, n * sizeof(*list));
    memcpy(s->taps, taps, n * sizeof(*taps));
    if (keys != NULL) memcpy(s->keys, keys, n * sizeof(*keys));
    s->started_ms = bc_time_mono_ms();
    /* BEHAVIOR: items in parts only to a destination that says it reads
     * them (a header an older source ignores, so it sends them whole, as
     * an older destination gets them). */
    const char *parts = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                    MIG_PARTS_HEADER);
    export_init(mig, &s->x, parts != NULL && strcmp(parts, "1") == 0);
    bc_status_t st = export_section_start(s);
    if (st != BC_OK) {
        export_stream_free(s);
        return bc_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot encode bucket %"
                                   PRIu32 ": %s", bucket, bc_status_str(st));
    }
    atomic_fetch_add_explicit(&mig->export_items, s->x.frames.items, memory_order_relaxed);
    atomic_fetch_add_explicit(&mig->exports, n, memory_order_relaxed);
    uint64_t items = 0, bytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        bc_bucket_stats_t bs = {0};
        (void)bc_cache_bucket_stats(mig->cache, list[i], &bs);
        items += bs.items;
        bytes += bs.bytes;
    }
    if (n == 1) {
        bc_log(export_log_level(s), "migrate: exporting bucket %" PRIu32 " at epoch %" PRIu64
               " (%s): about %" PRIu64 " items, %" PRIu64 " bytes", bucket, epoch,
               export_kind(s, 0), items, bytes);
    } else {
        bc_log(export_log_level(s), "migrate: exporting %u buckets (%s, one stream; bucket %"
               PRIu32 " first): about %" PRIu64 " items, %" PRIu64 " bytes", n,
               tap != 0 ? "precopies" : catchup ? "catch-ups" : "copies", bucket, items, bytes);
    }
    /* The trackers' ids, in the order of the buckets (the destination
     * needs each for its final copy's changes). */
    char num[MIG_BATCH_MAX * 21];
    size_t len = 0;
    for (uint32_t i = 0; i < n && taps[i] != 0; i++) {
        len += (size_t)snprintf(num + len, sizeof(num) - len, "%s%" PRIu64, i ? "," : "", taps[i]);
    }
    if (len > 0) bc_http_add_header(req, MIG_TAP_HEADER, num);
    export_sndbuf(req, bytes);
    return bc_http_reply_stream(req, MHD_HTTP_OK, MIG_CONTENT_TYPE, MIG_EXPORT_BLOCK,
                                export_stream_read, s, export_stream_free);
}

/* Encodes the changes tracker `keys` recorded in bucket, each as it is
 * now (HELLO, ITEM / DEL frames; no END), into x. */
static bc_status_t
export_encode_delta(bc_node_migrate_t *mig, export_ctx_t *x, uint32_t bucket, uint64_t epoch,
                    bc_tap_keys_t *keys)
{
    bc_status_t st = bc_frame_put_hello_delta(&x->buf, bucket, epoch,
                                              bc_cache_nbuckets(mig->cache));
    if (st == BC_OK) bc_tap_keys_foreach(keys, export_changed_key, x);
    if (st == BC_OK) st = x->frames.st;
    if (st == BC_OK && epoch != 0) {
        atomic_fetch_add_explicit(&mig->export_deltas, 1, memory_order_relaxed);
    }
    return st;
}

/*
 * A precopy's snapshot (export?bucket=B&tap=1): the bucket as it is now,
 * while it stays writable, with a change tracker armed just before it is
 * read.  Only the primary of B's owner serves it.
 */
/*
 * Whether this node serves every bucket of p while it stays writable (a
 * precopy, a catch-up: the primary of their owner); otherwise *result is
 * the 409.  BEHAVIOR: a batch is served whole or refused whole (the
 * destination then fails those precopies, and their final copies are full
 * ones; a refused catch-up changes nothing).
 */
static bool
export_served(bc_node_migrate_t *mig, bc_http_req_t *req, const mig_params_t *p,
              enum MHD_Result *result)
{
    uint32_t owner = 0;
    uint64_t cur = 0;
    for (uint32_t i = 0; i < p->nlist; i++) {
        bc_route_t route = bc_node_cluster_route(mig->cluster, p->list[i], true, &owner, &cur);
        if (route != BC_ROUTE_SERVE && route != BC_ROUTE_READONLY) {
            export_refused(mig);
            *result = bc__migrate_refuse(req, false, cur, "bucket %" PRIu32 " %s", p->list[i],
                                         route_refusal(route));
            return false;
        }
    }
    return true;
}

static enum MHD_Result
export_precopy(bc_node_migrate_t *mig, bc_http_req_t *req, const mig_params_t *p)
{
    enum MHD_Result result;
    if (!export_served(mig, req, p, &result)) return result;
    uint64_t taps[MIG_BATCH_MAX];
    for (uint32_t i = 0; i < p->nlist; i++) {
        bc_status_t st = bc_tap_start(mig->taps, p->list[i], &taps[i]);
        if (st != BC_OK) {
            /* the trackers already armed go idle and end by themselves */
            return bc_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot track bucket %"
                                       PRIu32 ": %s", p->list[i], bc_status_str(st));
        }
    }
    return export_reply_list(mig, req, p->list, taps, NULL, p->nlist, 0, false);
}

/*
 * A precopy's catch-up (export?buckets=B1:T1,..&catchup=1, migrate/
 * catchup.c): for each bucket, the keys its tracker recorded since the
 * precopy or the last catch-up, each as it is now, while the bucket
 * stays writable.  The keys are taken out of the tracker (bc_tap_take),
 * so the final copy's delta holds only what changed after this.  Only
 * the primary of the buckets' owner serves it; a bucket whose tracker is
 * gone gets a section that says so (export_section_start).
 */
static enum MHD_Result
export_catchup(bc_node_migrate_t *mig, bc_http_req_t *req, const mig_params_t *p)
{
    enum MHD_Result result;
    if (!export_served(mig, req, p, &result)) return result;
    bc_tap_keys_t *keys[MIG_BATCH_MAX] = {0};
    uint64_t taps[MIG_BATCH_MAX] = {0};
    for (uint32_t i = 0; i < p->nlist; i++) {
        char why[200];
        keys[i] = malloc(sizeof(*keys[i]));
        if (keys[i] == NULL) {
            /* a tracker whose keys cannot be taken is as good as gone (the
             * destination stops counting on it); the ones taken are sent */
            bc_tap_stop(mig->taps, p->list[i], p->sinces[i]);
        } else if (bc_tap_take(mig->taps, p->list[i], p->sinces[i], keys[i], why,
                               sizeof(why)) != BC_OK) {
            log_info("migrate: catch-up of bucket %" PRIu32 ": %s", p->list[i], why);
            free(keys[i]);
            keys[i] = NULL;
        }
    }
    atomic_fetch_add_explicit(&mig->export_catchups, p->nlist, memory_order_relaxed);
    return export_reply_list(mig, req, p->list, taps, keys, p->nlist, 0, true);
}

/* How this node names itself in its proof. */
static void
export_self_name(bc_node_migrate_t *mig, char *buf, size_t len)
{
    bc_node_cluster_info_t ci;
    bc_node_cluster_get_info(mig->cluster, &ci);
    snprintf(buf, len, "%s", bc_wire_name_valid(ci.node_name, strlen(ci.node_name))
                                 ? ci.node_name : "unregistered");
}

/*
 * The cluster secret (migrate.h, PEER AUTHENTICATION): on the request's
 * first run, its X-Bucketcache-Peer proof is checked (and its nonce
 * remembered); a request that comes back from parking was checked then.
 * Every run adds this node's proof to whatever reply follows, into
 * value (borrowed by the reply, which is queued before the handler
 * returns).  false with *result: refused (403, or 503 when too many
 * signed requests came in the window).
 */
static bool
export_peer_check(bc_node_migrate_t *mig, bc_http_req_t *req, char *value, size_t len,
                  enum MHD_Result *result)
{
    /* room for a batch: 64 buckets, each with its tracker id */
    char target[256 + MIG_BATCH_MAX * 32], why[256], name[BC_WIRE_NAME_MAX + 1];
    if (mig->peer_auth == NULL) return true;
    /* Before the query is parsed (which rewrites it): the target as sent. */
    int tl = snprintf(target, sizeof(target), "%s%s%s", req->path, req->query != NULL ? "?" : "",
                      req->query != NULL ? req->query : "");
    if (tl < 0 || (size_t)tl >= sizeof(target)) {
        *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "request target too long");
        return false;
    }
    const char *hdr = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                  BC_PEERAUTH_HTTP_HEADER);
    bc_peerauth_http_claim_t claim;
    if (req->parked_us == 0) {
        bc_status_t st = bc_peerauth_http_check(mig->peer_auth, req->method, target, hdr,
                                                hdr != NULL ? strlen(hdr) : 0,
                                                (uint64_t)bc_time_real_ms(), &claim, why,
                                                sizeof(why));
        if (st != BC_OK) {
            atomic_fetch_add_explicit(&mig->export_auth_failures, 1, memory_order_relaxed);
            export_refused(mig);
            log_warn("migrate: export %s refused: %s", target, why);
            *result = bc_http_reply_error(req, st == BC_EBUSY ? MHD_HTTP_SERVICE_UNAVAILABLE
                                                              : MHD_HTTP_FORBIDDEN,
                                          "peer authentication failed: %s", why);
            return false;
        }
    } else if (hdr == NULL || bc_peerauth_http_parse(hdr, strlen(hdr), &claim) != BC_OK) {
        return true;                      /* cannot be: it was checked on the first run */
    }
    export_self_name(mig, name, sizeof(name));
    if (bc_peerauth_http_reply(mig->peer_auth, req->method, target, claim.nonce, name, value,
                               len) > 0) {
        bc_http_add_header(req, BC_PEERAUTH_HTTP_REPLY_HEADER, value);
    }
    return true;
}

/*
 * Whether every bucket of p (a copy's export at p->epoch) is fenced here;
 * otherwise *result is the answer: parked to look again, or refused.
 *
 * BEHAVIOR (fencing): the export is for the epoch at which the console
 * made the buckets read-only.  This node must have seen that epoch (then
 * it refuses writes to them), and every worker thread must have started a
 * new loop iteration since seeing it, so a write that passed its route
 * check just before the flip has finished and is in the cache the export
 * reads.  The destination may ask before our table watch has fired: the
 * request itself tells us the epoch exists, so the agent is woken to read
 * the tables now (one ZooKeeper round trip), and meanwhile each bucket is
 * fenced locally at once (bc_node_cluster_fence: its read-only bit set
 * ahead of the tables), after which only the worker threads are waited
 * for.  The request is parked (bc_http_park: it holds no thread, so the
 * admin thread keeps sending the exports already encoded) and looked at
 * again every quarter millisecond, up to 200 ms; past that it is refused
 * with "retry" and the destination asks again.  A batch (copies at one
 * epoch) is fenced whole before any of it is read.
 */
static bool
export_fenced(bc_node_migrate_t *mig, bc_http_req_t *req, const mig_params_t *p,
              enum MHD_Result *result)
{
    uint32_t owner = 0;
    uint64_t cur = 0, gen = 0;    /* gen: the routing generation every worker must pass */
    int64_t waited_us = req->parked_us != 0 ? bc_time_mono_us() - req->parked_us : 0;
    bool may_wait = waited_us < MIG_FENCE_WAIT_US;
    (void)bc_node_cluster_route(mig->cluster, p->bucket, true, &owner, &cur);
    /* Ahead of the tables: fence the buckets here and now (cluster.h,
     * bc_node_cluster_fence), then wait only for the worker threads. */
    bool local_fence = cur < p->epoch && mig->server != NULL;
    for (uint32_t i = 0; local_fence && i < p->nlist; i++) {
        uint64_t g = 0;
        local_fence = bc_node_cluster_fence(mig->cluster, p->list[i], p->epoch, &g);
        if (g > gen) gen = g;
    }
    bc_route_t route[MIG_BATCH_MAX];
    bool readonly = true;
    for (uint32_t i = 0; i < p->nlist; i++) {
        route[i] = bc_node_cluster_route(mig->cluster, p->list[i], true, &owner, &cur);
        readonly = readonly && route[i] == BC_ROUTE_READONLY;
    }
    if (local_fence) {
        if (req->parked_us == 0) bc_node_cluster_refresh_now(mig->cluster);
        if (readonly && !bc_server_passed(mig->server, gen)) {
            if (may_wait) return *result = bc_http_park(req, MIG_FENCE_RECHECK_US), false;
            export_refused(mig);
            *result = bc__migrate_refuse(req, true, cur, "worker threads have not all passed "
                                         "the fence of bucket %" PRIu32 " yet", p->bucket);
            return false;
        }
    }
    if (cur < p->epoch && !local_fence) {
        if (req->parked_us == 0 || waited_us > MIG_FENCE_REFRESH_US) {
            bc_node_cluster_refresh_now(mig->cluster);
        }
        if (may_wait) {
            *result = bc_http_park(req, waited_us > MIG_FENCE_REFRESH_US ? 2000
                                                                         : MIG_FENCE_RECHECK_US);
            return false;
        }
        export_refused(mig);
        *result = bc__migrate_refuse(req, true, cur, "this node is at table epoch %" PRIu64
                                     ", the export is for epoch %" PRIu64 ": not fenced yet",
                                     cur, p->epoch);
        return false;
    }
    for (uint32_t i = 0; i < p->nlist; i++) {
        if (route[i] != BC_ROUTE_READONLY) {
            export_refused(mig);
            *result = bc__migrate_refuse(req, false, cur, "bucket %" PRIu32 " %s", p->list[i],
                                         route_refusal(route[i]));
            return false;
        }
    }
    if (mig->server == NULL) {
        export_refused(mig);
        *result = bc__migrate_refuse(req, false, cur, "this node has no data port to fence");
        return false;
    }
    /*
     * The generation to wait for is read once, after seeing epoch >= E (so
     * it is at least the one that published E), and kept while the request
     * is parked: read again on every recheck, it would move on with every
     * later table and fence, and on a busy machine the workers might never
     * catch up with it.
     */
    uint64_t *kept_gen = &req->park_state[EXPORT_PARK_GEN];
    if (!local_fence) {
        if (*kept_gen == 0) *kept_gen = bc_node_cluster_route_gen(mig->cluster);
        gen = *kept_gen;
    }
    if (!local_fence && !bc_server_passed(mig->server, gen)) {
        if (may_wait) return *result = bc_http_park(req, MIG_FENCE_RECHECK_US), false;
        export_refused(mig);
        *result = bc__migrate_refuse(req, true, cur, "worker threads have not all passed "
                                     "epoch %" PRIu64 " yet", p->epoch);
        return false;
    }
    return true;
}

enum MHD_Result
bc_node_migrate_handle_export(bc_node_migrate_t *mig, bc_http_req_t *req)
{
    mig_params_t p;
    enum MHD_Result result;
    char proof[BC_PEERAUTH_HTTP_MAX];   /* the reply's X-Bucketcache-Peer-Proof */
    if (!export_peer_check(mig, req, proof, sizeof(proof), &result)) return result;
    if (!bc__migrate_params_parse(mig, req, &p, &result)) return result;
    if (p.catchup) return export_catchup(mig, req, &p);
    if (p.tap) {
        if (p.has_epoch || p.since != 0) {
            return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "tap=1 takes no epoch or "
                                       "since");
        }
        return export_precopy(mig, req, &p);
    }
    if (!p.has_epoch) {
        return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "epoch is required");
    }
    if (!export_fenced(mig, req, &p, &result)) return result;

    if (mig->test_export_delay_ms > 0) {
        /* A source slow to send the catch-up of a fenced bucket (tests:
         * a source killed in the middle of it). */
        uint64_t *held_at = &req->park_state[EXPORT_PARK_HELD_AT];
        uint64_t now = (uint64_t)bc_time_mono_us();
        if (*held_at == 0) *held_at = now;
        if (now - *held_at < (uint64_t)mig->test_export_delay_ms * 1000u) {
            return bc_http_park(req, 10000);
        }
    }
    /* The final copy of a precopied bucket: only what changed since (the
     * whole bucket when its tracker is gone). */
    bc_tap_keys_t *keys[MIG_BATCH_MAX] = {0};
    uint64_t taps[MIG_BATCH_MAX] = {0};
    for (uint32_t i = 0; i < p.nlist; i++) {
        if (p.sinces[i] == 0) continue;
        char why[200];
        keys[i] = malloc(sizeof(*keys[i]));
        if (keys[i] != NULL &&
            bc_tap_changes(mig->taps, p.list[i], p.sinces[i], keys[i], why, sizeof(why)) !=
                BC_OK) {
            log_info("migrate: bucket %" PRIu32 " at epoch %" PRIu64 ": %s; sending all of it",
                     p.list[i], p.epoch, why);
            free(keys[i]);
            keys[i] = NULL;
        }
    }
    return export_reply_list(mig, req, p.list, taps, keys, p.nlist, p.epoch, false);
}
