/*
 * migrate.c -- see migrate.h for the endpoints and the behaviour.
 *
 *     console                 destination (this file)              source (this file)
 *     -------                 -----------------------              ------------------
 *     POST import ----------> job slot, thread started; 202
 *                             thread: drop leftovers of B
 *                                     GET export?bucket=B&epoch=E --> fenced for E?
 *                                                                      no:  409 retry
 *                             (parked until fenced, at most 200 ms;  yes: stream B, a
 *                             then 409: again after 1..50 ms)               step of its table
 *                             <---------------------- frames ---------      per shard-lock hold
 *                             decode as bytes arrive, store each            (export_reply)
 *                             item add-if-absent; check END
 *     GET import?wait_ms ---> (parked while running; the job wakes it)
 *                        <--- {"state":"done","items":..,"bytes":..}
 *
 * The import's HTTP client is a small streaming one (not bc_http_client,
 * which buffers whole responses): the body of an export can be as large as
 * a bucket, and frames are stored while the rest is still in flight.  It
 * asks with HTTP/1.0, so a streamed export needs no chunked framing: it
 * ends where the connection closes, and its END frame says whether it is
 * complete.
 */
#include "migrate/migrate.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bc_cluster.h"
#include "bc_config.h"
#include "bc_frame.h"
#include "bc_hash.h"
#include "bc_log.h"
#include "bc_net.h"
#include "bc_time.h"
#include "engine/item_frame.h"
#include "engine/tap.h"

#define MIG_DEFAULT_IMPORTS     48u       /* the console runs at most 16 copies + 32 precopies */
#define MIG_DEFAULT_TIMEOUT_MS  60000u
#define MIG_SLOTS_PER_IMPORT    4u        /* finished jobs kept for status queries */
#define MIG_FENCE_WAIT_US       200000    /* an export is held this long to be fenced */
#define MIG_FENCE_RECHECK_US    250       /* ... looking again this often (parked) */
#define MIG_FENCE_REFRESH_US    20000     /* past this, the agent is asked again too */
#define MIG_WAIT_MAX_MS         10000u    /* longest long poll of an import's state */
#define MIG_RETRY_FAST_MS       1         /* import retry interval, first half second */
#define MIG_RETRY_MAX_MS        50
#define MIG_RECV_CHUNK          (256u * 1024u)
#define MIG_SOCKBUF_MAX         (4u * 1024u * 1024u)  /* export socket buffers */
#define MIG_EXPORT_STEP         (64u * 1024u)  /* frames read per hold of a shard lock */
#define MIG_EXPORT_BLOCK        (256u * 1024u)  /* what MHD asks the export stream for:
                                                * one write(2) per block */
#define MIG_HEADER_MAX          (16u * 1024u)
#define MIG_ERROR_BODY_MAX      (64u * 1024u)
#define MIG_CONTENT_TYPE        "application/x-bucketcache-frames"
#define EXPORT_PARK_GEN         0         /* park_state slot: the generation an export waits for */
#define MIG_TAP_HEADER          "X-Bucketcache-Tap"
#define MIG_PRECOPY_KEEP_MS     30000     /* a finished precopy waits this long for its copy */

#ifndef MHD_HTTP_MISDIRECTED_REQUEST
#define MHD_HTTP_MISDIRECTED_REQUEST 421
#endif

typedef enum job_state {
    JOB_FREE = 0,
    JOB_RUNNING,
    JOB_DONE,
    JOB_FAILED,
} job_state_t;

typedef struct import_job {
    bc_node_migrate_t *mig;
    /* Fields below are guarded by mig->mu, except cancel (atomic) and the
     * immutable-while-running bucket/epoch/source. */
    job_state_t state;
    uint32_t bucket;
    uint64_t epoch;
    uint32_t from;                 /* the source's group */
    char source[BC_ADDR_MAX];
    bool precopy;                  /* a precopy (epoch 0): the bucket stays writable */
    uint64_t tap;                  /* precopy: the source's change tracker; final: the
                                    * tracker it asks the changes of (0: a full copy) */
    uint64_t flushes;              /* precopy: bc_cache_flush_count when it started */
    bool used;                     /* precopy: a final copy took it over */
    bool delta;                    /* final: the source sent only the changes */
    uint64_t base_items, base_bytes;   /* final: what its precopy moved (counted in) */
    uint64_t items;
    uint64_t bytes;
    uint64_t skipped;              /* already present here: add-if-absent kept ours */
    uint64_t received;             /* bytes received from the source, every attempt */
    int64_t started_ms;
    int64_t finished_ms;
    char error[256];
    uint64_t seq;                  /* age, for reusing the oldest finished slot */
    bool joinable;                 /* a thread to join before the slot is reused */
    pthread_t thread;
    _Atomic bool cancel;
} import_job_t;

struct bc_node_migrate {
    bc_cache_t *cache;
    bc_node_cluster_t *cluster;
    bc_server_t *server;
    uint32_t max_imports;
    uint32_t timeout_ms;
    uint32_t test_delay_ms;        /* BC_TEST_IMPORT_DELAY_MS: a slow destination, for tests */
    uint32_t test_step_delay_ms;   /* BC_TEST_IMPORT_STEP_DELAY_MS: a slow but steady one */
    void (*commit)(void *ctx);     /* replication wait (bc_node_migrate_set_commit) */
    void *commit_ctx;
    bc_tap_set_t *taps;            /* change trackers of exported buckets (tap.h) */

    /* LOCKING RULE: mu guards jobs[], running, stopping and seq; never
     * held across I/O or pthread_join; the only cache call under it is
     * migrate_drop's bucket drop (mu before a shard lock). */
    pthread_mutex_t mu;
    import_job_t *jobs;
    uint32_t njobs;
    uint32_t running;
    bool stopping;
    uint64_t seq;

    _Atomic uint64_t exports, export_refusals, export_items, export_bytes;
    _Atomic uint64_t imports_done, imports_failed, import_items, import_bytes;
    _Atomic uint64_t precopies, export_deltas, import_deltas, delta_fallbacks;

    /* The admin server whose parked long polls a finished job wakes
     * (from the config; guarded by mu: NULL after shutdown). */
    bc_httpd_t *httpd;
};

/* ---- query parameters ---- */

typedef struct mig_params {
    bool has_bucket, has_epoch, has_source, has_from;
    bool tap;                      /* export: arm a change tracker (a precopy's snapshot) */
    bool precopy;                  /* import: the precopy job */
    uint64_t since;                /* export: only the changes tracker `since` saw */
    uint32_t bucket;
    uint32_t from;
    uint32_t wait_ms;              /* GET import: long poll while running */
    uint64_t epoch;
    char source[BC_ADDR_MAX];
} mig_params_t;


/* Parses bucket/epoch/source; on error queues a 400 into *result. */
static bool
params_parse(bc_node_migrate_t *mig, bc_http_req_t *req, mig_params_t *p,
             enum MHD_Result *result)
{
    bc_http_param_t params[8];
    int n = req->query != NULL ? bc_http_parse_query(req->query, params, 8) : 0;
    memset(p, 0, sizeof(*p));
    if (n < 0) {
        *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "malformed query string");
        return false;
    }
    for (int i = 0; i < n; i++) {
        const bc_http_param_t *q = &params[i];
        uint64_t v;
        if (strcmp(q->name, "bucket") == 0) {
            if (!bc_parse_u64n(q->value, q->value_len, UINT32_MAX, &v) ||
                v >= bc_cache_nbuckets(mig->cache)) {
                *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                              "bucket: expected 0..%u",
                                              bc_cache_nbuckets(mig->cache) - 1);
                return false;
            }
            p->bucket = (uint32_t)v;
            p->has_bucket = true;
        } else if (strcmp(q->name, "epoch") == 0) {
            if (!bc_parse_u64n(q->value, q->value_len, UINT64_MAX, &p->epoch) || p->epoch == 0) {
                *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                              "epoch: expected a table epoch >= 1");
                return false;
            }
            p->has_epoch = true;
        } else if (strcmp(q->name, "from") == 0) {
            if (!bc_parse_u64n(q->value, q->value_len, BC_GROUP_MAX_GID, &v) || v == 0) {
                *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                              "from: expected the source's group id");
                return false;
            }
            p->from = (uint32_t)v;
            p->has_from = true;
        } else if (strcmp(q->name, "source") == 0) {
            bc_hostport_t hp;
            if (q->value_len == 0 || q->value_len >= sizeof(p->source) ||
                q->value_len != strlen(q->value) || bc_parse_hostport(q->value, 0, &hp) != BC_OK) {
                *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                              "source: expected the source's admin host:port");
                return false;
            }
            snprintf(p->source, sizeof(p->source), "%s", q->value);
            p->has_source = true;
        } else if (strcmp(q->name, "tap") == 0 || strcmp(q->name, "precopy") == 0) {
            if (!bc_parse_u64n(q->value, q->value_len, 1, &v) || v != 1) {
                *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "%s: expected 1",
                                              q->name);
                return false;
            }
            if (q->name[0] == 't') p->tap = true;
            else p->precopy = true;
        } else if (strcmp(q->name, "since") == 0) {
            if (!bc_parse_u64n(q->value, q->value_len, UINT64_MAX, &p->since) || p->since == 0) {
                *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                              "since: expected a change tracker id");
                return false;
            }
        } else if (strcmp(q->name, "wait_ms") == 0) {
            if (!bc_parse_u64n(q->value, q->value_len, MIG_WAIT_MAX_MS, &v)) {
                *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                              "wait_ms: expected 0..%u", MIG_WAIT_MAX_MS);
                return false;
            }
            p->wait_ms = (uint32_t)v;
        } else {
            *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                          "unknown query parameter \"%.40s\"", q->name);
            return false;
        }
    }
    if (!p->has_bucket) {
        *result = bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, "bucket is required");
        return false;
    }
    return true;
}

/* ---- export ---- */

/* An export being encoded: the buffer MHD sends, and the pass filling it
 * (item_frame.h) over the buffer. */
typedef struct export_ctx {
    bc_frame_buf_t buf;
    bc__item_frames_t frames;      /* frames.buf is &buf: never copy a ctx */
} export_ctx_t;

static void
export_init(bc_node_migrate_t *mig, export_ctx_t *x)
{
    memset(x, 0, sizeof(*x));
    x->frames.buf = &x->buf;
    x->frames.now = bc_cache_now(mig->cache);
    x->frames.st = BC_OK;
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

/* 409 {"error": .., "retry": retry, "epoch": epoch}: retry says whether
 * asking again later can succeed. */
static enum MHD_Result
mig_refuse(bc_http_req_t *req, bool retry, uint64_t epoch, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum MHD_Result
mig_refuse(bc_http_req_t *req, bool retry, uint64_t epoch, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cJSON *doc = cJSON_CreateObject();
    if (doc == NULL) return MHD_NO;
    cJSON_AddStringToObject(doc, "error", msg);
    cJSON_AddBoolToObject(doc, "retry", retry);
    cJSON_AddNumberToObject(doc, "epoch", (double)epoch);
    return bc_http_reply_json(req, MHD_HTTP_CONFLICT, doc);
}

/* A delta export's pass over the bucket (shard lock held): the changed
 * keys that still exist go out as ITEM; they are marked, and those left
 * unmarked afterwards are gone (DEL). */
typedef struct delta_ctx {
    export_ctx_t x;
    bc_tap_keys_t *keys;
} delta_ctx_t;

static bool
export_changed_item(const bc_item_t *it, void *arg)
{
    delta_ctx_t *d = arg;
    if (!bc_tap_keys_mark(d->keys, bc_item_key(it), it->nkey)) return true;
    return bc__item_frames_add(it, &d->x.frames);
}

static void
export_gone_key(const char *key, size_t nkey, void *arg)
{
    bc__item_frames_t *x = &((delta_ctx_t *)arg)->x.frames;
    if (x->st != BC_OK) return;
    x->st = bc_frame_put_del(x->buf, key, nkey);
    if (x->st != BC_OK) return;
    x->items++;
    x->bytes += nkey;
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

/* Sends an encoded delta export (the buffer goes to MHD). */
static enum MHD_Result
export_send(bc_node_migrate_t *mig, bc_http_req_t *req, uint32_t bucket, uint64_t epoch,
            export_ctx_t *x)
{
    atomic_fetch_add_explicit(&mig->exports, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&mig->export_items, x->frames.items, memory_order_relaxed);
    atomic_fetch_add_explicit(&mig->export_bytes, x->buf.len, memory_order_relaxed);
    log_info("migrate: exporting bucket %" PRIu32 " at epoch %" PRIu64 " (changes since the "
             "precopy): %" PRIu64 " items, %zu bytes", bucket, epoch, x->frames.items,
             x->buf.len);
    export_sndbuf(req, x->buf.len);
    /* The buffer is handed to MHD and freed when sent (or dropped). */
    return bc_http_reply_buffer(req, MHD_HTTP_OK, MIG_CONTENT_TYPE, x->buf.data, x->buf.len,
                                free, x->buf.data);
}

static enum MHD_Result
export_encode_failed(bc_http_req_t *req, export_ctx_t *x, uint32_t bucket, bc_status_t st)
{
    bc_frame_buf_free(&x->buf);
    return bc_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot encode bucket %"
                               PRIu32 ": %s", bucket, bc_status_str(st));
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
    uint32_t bucket;
    uint64_t epoch;
    uint64_t tap;
    export_ctx_t x;                /* frames encoded, not yet all given to MHD */
    size_t sent;                   /* x.buf.data[0..sent) is given to MHD */
    uint32_t cursor;               /* bc_cache_bucket_scan's */
    bool scanning;                 /* the walk has not finished */
    bool ended;                    /* the END frame is in x.buf */
    uint64_t streamed;             /* bytes given to MHD */
    int64_t started_ms;
} export_stream_t;

static bool
export_scan_item(const bc_item_t *it, void *arg)
{
    export_stream_t *s = arg;
    if (s->x.frames.st != BC_OK) return false;
    if (!bc__item_frames_add(it, &s->x.frames)) return false;
    return s->x.buf.len < MIG_EXPORT_STEP;
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
    if (s->scanning) {
        st = bc_cache_bucket_scan(mig->cache, s->bucket, &s->cursor, export_scan_item, s);
        if (st == BC_OK) st = s->x.frames.st;
        if (st == BC_OK && s->cursor == 0) s->scanning = false;
    } else {
        st = bc_frame_put_end(&s->x.buf, s->x.frames.items, s->x.frames.bytes);
        s->ended = true;
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
     * block is enough (the tracker set's lock is every tracked writer's) */
    if (s->tap != 0 && s->scanning) bc_tap_touch(s->mig->taps, s->bucket, s->tap);
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
    log_info("migrate: exported bucket %" PRIu32 " at epoch %" PRIu64 " (%s): %" PRIu64
             " items, %" PRIu64 " bytes in %" PRId64 " ms%s", s->bucket, s->epoch,
             s->tap != 0 ? "precopy" : "full", s->x.frames.items, s->streamed,
             bc_time_mono_ms() - s->started_ms, whole ? "" : " (broken off)");
    bc_frame_buf_free(&s->x.buf);
    free(s);
}

static enum MHD_Result
export_reply(bc_node_migrate_t *mig, bc_http_req_t *req, uint32_t bucket, uint64_t epoch,
             uint64_t tap)
{
    export_stream_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return bc_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot export bucket %"
                                   PRIu32 ": out of memory", bucket);
    }
    s->mig = mig;
    s->bucket = bucket;
    s->epoch = epoch;
    s->tap = tap;
    s->scanning = true;
    s->started_ms = bc_time_mono_ms();
    export_init(mig, &s->x);
    bc_status_t st = bc_frame_put_hello(&s->x.buf, bucket, epoch, bc_cache_nbuckets(mig->cache));
    if (st != BC_OK) {
        bc_frame_buf_free(&s->x.buf);
        free(s);
        return bc_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot encode bucket %"
                                   PRIu32 ": %s", bucket, bc_status_str(st));
    }
    atomic_fetch_add_explicit(&mig->exports, 1, memory_order_relaxed);
    bc_bucket_stats_t bs = {0};
    (void)bc_cache_bucket_stats(mig->cache, bucket, &bs);
    log_info("migrate: exporting bucket %" PRIu32 " at epoch %" PRIu64 " (%s): about %" PRIu64
             " items, %" PRIu64 " bytes", bucket, epoch, tap != 0 ? "precopy" : "full",
             bs.items, bs.bytes);
    char num[24];
    if (tap != 0) {
        snprintf(num, sizeof(num), "%" PRIu64, tap);
        bc_http_add_header(req, MIG_TAP_HEADER, num);
    }
    export_sndbuf(req, bs.bytes);
    return bc_http_reply_stream(req, MHD_HTTP_OK, MIG_CONTENT_TYPE, MIG_EXPORT_BLOCK,
                                export_stream_read, s, export_stream_free);
}

/* Only the keys a change tracker recorded, each as it is now. */
static enum MHD_Result
export_reply_delta(bc_node_migrate_t *mig, bc_http_req_t *req, uint32_t bucket, uint64_t epoch,
                   bc_tap_keys_t *keys)
{
    delta_ctx_t d;
    export_init(mig, &d.x);
    d.keys = keys;
    bc_status_t st = bc_frame_put_hello_delta(&d.x.buf, bucket, epoch,
                                              bc_cache_nbuckets(mig->cache));
    if (st == BC_OK && keys->count > 0) {
        st = bc_cache_bucket_foreach(mig->cache, bucket, export_changed_item, &d);
        if (st == BC_OK) bc_tap_keys_foreach_unseen(keys, export_gone_key, &d);
    }
    if (st == BC_OK) st = d.x.frames.st;
    if (st == BC_OK) st = bc_frame_put_end(&d.x.buf, d.x.frames.items, d.x.frames.bytes);
    if (st != BC_OK) return export_encode_failed(req, &d.x, bucket, st);
    atomic_fetch_add_explicit(&mig->export_deltas, 1, memory_order_relaxed);
    return export_send(mig, req, bucket, epoch, &d.x);
}

/*
 * A precopy's snapshot (export?bucket=B&tap=1): the bucket as it is now,
 * while it stays writable, with a change tracker armed just before it is
 * read.  Only the primary of B's owner serves it.
 */
static enum MHD_Result
export_precopy(bc_node_migrate_t *mig, bc_http_req_t *req, const mig_params_t *p)
{
    uint32_t owner = 0;
    uint64_t cur = 0;
    bc_route_t route = bc_node_cluster_route(mig->cluster, p->bucket, true, &owner, &cur);
    if (route != BC_ROUTE_SERVE && route != BC_ROUTE_READONLY) {
        export_refused(mig);
        return mig_refuse(req, false, cur, "bucket %" PRIu32 " %s", p->bucket,
                          route_refusal(route));
    }
    uint64_t tap = 0;
    bc_status_t st = bc_tap_start(mig->taps, p->bucket, &tap);
    if (st != BC_OK) {
        return bc_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot track bucket %"
                                   PRIu32 ": %s", p->bucket, bc_status_str(st));
    }
    return export_reply(mig, req, p->bucket, 0, tap);
}

enum MHD_Result
bc_node_migrate_handle_export(bc_node_migrate_t *mig, bc_http_req_t *req)
{
    mig_params_t p;
    enum MHD_Result result;
    if (!params_parse(mig, req, &p, &result)) return result;
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
    uint32_t owner = 0;
    uint64_t cur = 0;
    /*
     * BEHAVIOR (fencing): the export is for the epoch at which the console
     * made the bucket read-only.  This node must have seen that epoch
     * (then it refuses writes to the bucket), and every worker thread must
     * have started a new loop iteration since seeing it, so a write that
     * passed its route check just before the flip has finished and is in
     * the cache the export reads.  The destination may ask before our
     * table watch has fired: the request itself tells us the epoch exists,
     * so the agent is woken to read the tables now (one ZooKeeper round
     * trip), and meanwhile the bucket is fenced locally at once
     * (bc_node_cluster_fence: its read-only bit set ahead of the tables),
     * after which only the worker threads are waited for.  The request
     * is parked (bc_http_park: it holds no thread, so the admin thread
     * keeps sending the exports already encoded) and looked at again
     * every quarter millisecond, up to 200 ms; past that it is refused
     * with "retry" and the destination asks again.
     */
    int64_t waited_us = req->parked_us != 0 ? bc_time_mono_us() - req->parked_us : 0;
    bool may_wait = waited_us < MIG_FENCE_WAIT_US;
    bc_route_t route = bc_node_cluster_route(mig->cluster, p.bucket, true, &owner, &cur);
    /* Ahead of the tables: fence the bucket here and now (cluster.h,
     * bc_node_cluster_fence), then wait only for the worker threads. */
    uint64_t gen = 0;             /* the routing generation every worker must pass */
    bool local_fence = cur < p.epoch && mig->server != NULL &&
                       bc_node_cluster_fence(mig->cluster, p.bucket, p.epoch, &gen);
    if (local_fence) {
        route = bc_node_cluster_route(mig->cluster, p.bucket, true, &owner, &cur);
        if (req->parked_us == 0) bc_node_cluster_refresh_now(mig->cluster);
        if (route == BC_ROUTE_READONLY && !bc_server_passed(mig->server, gen)) {
            if (may_wait) return bc_http_park(req, MIG_FENCE_RECHECK_US);
            export_refused(mig);
            return mig_refuse(req, true, cur, "worker threads have not all passed the fence of "
                              "bucket %" PRIu32 " yet", p.bucket);
        }
    }
    if (cur < p.epoch && !local_fence) {
        if (req->parked_us == 0 || waited_us > MIG_FENCE_REFRESH_US) {
            bc_node_cluster_refresh_now(mig->cluster);
        }
        if (may_wait) {
            return bc_http_park(req, waited_us > MIG_FENCE_REFRESH_US ? 2000
                                                                      : MIG_FENCE_RECHECK_US);
        }
        export_refused(mig);
        return mig_refuse(req, true, cur, "this node is at table epoch %" PRIu64 ", the export "
                          "is for epoch %" PRIu64 ": not fenced yet", cur, p.epoch);
    }
    if (route != BC_ROUTE_READONLY) {
        export_refused(mig);
        return mig_refuse(req, false, cur, "bucket %" PRIu32 " %s", p.bucket,
                          route_refusal(route));
    }
    if (mig->server == NULL) {
        export_refused(mig);
        return mig_refuse(req, false, cur, "this node has no data port to fence");
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
        if (may_wait) return bc_http_park(req, MIG_FENCE_RECHECK_US);
        export_refused(mig);
        return mig_refuse(req, true, cur, "worker threads have not all passed epoch %" PRIu64
                          " yet", p.epoch);
    }

    if (p.since == 0) return export_reply(mig, req, p.bucket, p.epoch, 0);
    /* The final copy of a precopied bucket: only what changed since. */
    bc_tap_keys_t keys;
    char why[200];
    if (bc_tap_changes(mig->taps, p.bucket, p.since, &keys, why, sizeof(why)) != BC_OK) {
        log_info("migrate: bucket %" PRIu32 " at epoch %" PRIu64 ": %s; sending all of it",
                 p.bucket, p.epoch, why);
        return export_reply(mig, req, p.bucket, p.epoch, 0);
    }
    enum MHD_Result res = export_reply_delta(mig, req, p.bucket, p.epoch, &keys);
    bc_tap_keys_free(&keys);
    return res;
}

/* ---- the import's streaming HTTP GET ---- */

typedef struct fetch {
    int fd;
    int64_t deadline;
    int64_t idle_ms;               /* > 0: each byte received moves the deadline this far on */
    char *buf;
    size_t cap, start, end;
} fetch_t;

static bc_status_t
fetch_connect(fetch_t *f, const char *addr, char *err, size_t errlen)
{
    bc_hostport_t hp;
    char why[200];
    if (bc_parse_hostport(addr, 0, &hp) != BC_OK) {
        return bc_fail(err, errlen, BC_EINVAL, "bad source address \"%.100s\"", addr);
    }
    /* A large receive window from the first byte: the source can send a
     * whole bucket without waiting for us to be scheduled. */
    bc_status_t st = bc_net_connect(&hp, bc_net_remaining_ms(f->deadline), (int)MIG_SOCKBUF_MAX,
                                    &f->fd, why, sizeof(why));
    if (st != BC_OK) {
        return bc_fail(err, errlen, st == BC_ETIMEOUT ? BC_ETIMEOUT : BC_EIO,
                       "cannot connect to source %.100s: %s", addr, why);
    }
    return BC_OK;
}

/* Makes room for `want` more bytes after end (compacting first). */
static bool
fetch_room(fetch_t *f, size_t want)
{
    if (f->start > 0 && (f->start == f->end || f->cap - f->end < want)) {
        memmove(f->buf, f->buf + f->start, f->end - f->start);
        f->end -= f->start;
        f->start = 0;
    }
    if (f->cap - f->end >= want) return true;
    size_t cap = f->cap ? f->cap : MIG_RECV_CHUNK;
    while (cap - f->end < want) cap *= 2;
    char *p = realloc(f->buf, cap);
    if (p == NULL) return false;
    f->buf = p;
    f->cap = cap;
    return true;
}

/* Reads more bytes.  Returns BC_OK (*got > 0), BC_ECLOSED (EOF), errors. */
static bc_status_t
fetch_read(fetch_t *f, size_t want, size_t *got)
{
    if (!fetch_room(f, want)) return BC_ENOMEM;
    for (;;) {
        ssize_t n = recv(f->fd, f->buf + f->end, f->cap - f->end, 0);
        if (n > 0) {
            f->end += (size_t)n;
            *got = (size_t)n;
            if (f->idle_ms > 0) f->deadline = bc_time_mono_ms() + f->idle_ms;
            return BC_OK;
        }
        if (n == 0) return BC_ECLOSED;
        if (errno != EAGAIN && errno != EINTR) return BC_EIO;
        struct pollfd pfd = {f->fd, POLLIN, 0};
        int rc = poll(&pfd, 1, bc_net_remaining_ms(f->deadline));
        if (rc == 0) return BC_ETIMEOUT;
        if (rc < 0 && errno != EINTR) return BC_EIO;
    }
}

/* ---- import jobs ---- */

static bool
node_owns(bc_node_migrate_t *mig, uint32_t bucket)
{
    bc_node_cluster_info_t info;
    uint32_t owner = 0;
    bc_node_cluster_get_info(mig->cluster, &info);
    (void)bc_node_cluster_route(mig->cluster, bucket, false, &owner, NULL);
    return owner == info.gid;
}

/* The job's progress for status queries: what it stored so far, and
 * `more` bytes received from the source since the last call (the
 * console's proof of progress: a large frame stores nothing until it is
 * whole). */
static void
job_publish(import_job_t *job, uint64_t items, uint64_t bytes, uint64_t skipped, uint64_t more)
{
    pthread_mutex_lock(&job->mig->mu);
    job->items = items;
    job->bytes = bytes;
    job->skipped = skipped;
    job->received += more;
    pthread_mutex_unlock(&job->mig->mu);
}

typedef struct import_run {
    import_job_t *job;
    bc_frame_stream_t stream;
    uint64_t items, bytes, skipped;
    uint32_t nbuckets;
    uint64_t tap;                  /* precopy: the tracker the source armed (its header) */
    bool delta;                    /* the source sent only the changes */
} import_run_t;

/* Stores one decoded frame.  Errors with err set. */
static bc_status_t
import_frame(import_run_t *r, const bc_frame_t *f, char *err, size_t errlen)
{
    import_job_t *job = r->job;
    bc_cache_t *cache = job->mig->cache;
    bc_status_t st = bc_frame_stream_next(&r->stream, f, err, errlen);
    if (st != BC_OK) return st;
    if (f->type == BC_FRAME_HELLO) {
        if (f->bucket != job->bucket || f->epoch != job->epoch || f->nbuckets != r->nbuckets) {
            snprintf(err, errlen, "source sent bucket %" PRIu32 " at epoch %" PRIu64 " of %"
                     PRIu32 " buckets, expected bucket %" PRIu32 " at epoch %" PRIu64 " of %"
                     PRIu32, f->bucket, f->epoch, f->nbuckets, job->bucket, job->epoch,
                     r->nbuckets);
            return BC_EPROTO;
        }
        if (f->delta && job->tap == 0) {
            snprintf(err, errlen, "source sent the changes of bucket %" PRIu32 " where the "
                     "whole bucket was asked for", job->bucket);
            return BC_EPROTO;
        }
        r->delta = f->delta;
        if (!f->delta) {
            /* BEHAVIOR: a full copy starts from an empty bucket: leftovers
             * of an abandoned attempt, or a precopy the source no longer
             * tracks, would shadow fresh values under add-if-absent. */
            uint64_t stale = bc_cache_bucket_drop(cache, job->bucket);
            if (stale > 0) {
                log_info("migrate: dropped %" PRIu64 " items of bucket %" PRIu32 " held here "
                         "before importing it in full", stale, job->bucket);
            }
        }
        return BC_OK;
    }
    if (f->type != BC_FRAME_ITEM && f->type != BC_FRAME_DEL) return BC_OK;
    if (f->nkey == 0 || f->nkey > BC_KEY_MAX_LEN) {
        snprintf(err, errlen, "item with a key of %zu bytes", f->nkey);
        return BC_EPROTO;
    }
    uint32_t hash = bc_hash_key(f->key, f->nkey);
    if (bc_hash_bucket(hash, r->nbuckets) != job->bucket) {
        snprintf(err, errlen, "item \"%.*s\" belongs to bucket %" PRIu32 ", not %" PRIu32,
                 (int)(f->nkey > 40 ? 40 : f->nkey), f->key, bc_hash_bucket(hash, r->nbuckets),
                 job->bucket);
        return BC_EPROTO;
    }
    if (f->type == BC_FRAME_DEL) {
        /* A delta: the key is gone at the source (BC_ENOTFOUND: the
         * precopy never had it, or it was evicted here). */
        (void)bc_cache_delete(cache, f->key, f->nkey, hash);
        r->items++;
        r->bytes += f->nkey;
        return BC_OK;
    }
    bc_item_t *it = bc__item_from_frame(cache, f, hash, &st);
    if (it == NULL && st == BC_EINVAL) {
        snprintf(err, errlen, "item value of %zu bytes", f->nvalue);
        return BC_ETOOLARGE;
    }
    if (it == NULL) {
        snprintf(err, errlen, "cannot store an item of %zu bytes here: %s", f->nkey + f->nvalue,
                 st == BC_ETOOLARGE ? "larger than this node's max item size"
                                    : "out of memory (nothing left to evict)");
        return st;
    }
    /*
     * BEHAVIOR: a full copy stores add-if-absent -- a value already here is
     * never replaced.  A delta replaces: what is here for the bucket came
     * from the precopy (this group does not own the bucket yet, so no
     * client wrote it), and the delta's value is newer.  Either way the
     * item keeps the CAS it had at the source (bc_cache_store_moved), so a
     * client's `gets` token from before the move works after it.
     */
    st = bc_cache_store_moved(cache, it, r->delta ? BC_STORE_SET : BC_STORE_ADD, f->cas);
    if (st == BC_OK) {
        r->items++;
        r->bytes += f->nkey + f->nvalue;
    } else if (st == BC_ENOTSTORED) {
        r->skipped++;
    } else {
        snprintf(err, errlen, "cannot store an item: %s", bc_status_str(st));
        return st;
    }
    return BC_OK;
}

/* Parses an error reply body ({"error":..,"retry":..}). */
static void
import_error_body(const char *body, size_t len, int status, bool *retry, char *err, size_t errlen)
{
    cJSON *doc = cJSON_ParseWithLength(body, len);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(doc, "retry");
    *retry = status == MHD_HTTP_CONFLICT && cJSON_IsTrue(r);
    snprintf(err, errlen, "source answered %d: %s", status,
             cJSON_IsString(e) ? e->valuestring : "(no reason given)");
    cJSON_Delete(doc);
}

/*
 * One GET of the export.  BC_OK: the whole bucket is stored.  *retry is
 * set when the source asked to be asked again (not fenced yet).
 */
static bc_status_t
import_fetch(import_run_t *r, int64_t deadline, bool *retry, char *err, size_t errlen)
{
    import_job_t *job = r->job;
    size_t max_payload = bc_cache_max_item_size(job->mig->cache) + 1024;
    /* BEHAVIOR: the timeout bounds a transfer that stalls, not one that is
     * long: every byte received moves the deadline on, so a bucket of any
     * size gets across as long as it keeps coming. */
    fetch_t f = {.fd = -1, .deadline = deadline, .idle_ms = job->mig->timeout_ms};
    bc_status_t st = fetch_connect(&f, job->source, err, errlen);
    *retry = false;
    if (st != BC_OK) return st;

    char head[512], what[96];
    if (job->precopy) {
        snprintf(what, sizeof(what), "bucket=%" PRIu32 "&tap=1", job->bucket);
    } else if (job->tap != 0) {
        snprintf(what, sizeof(what), "bucket=%" PRIu32 "&epoch=%" PRIu64 "&since=%" PRIu64,
                 job->bucket, job->epoch, job->tap);
    } else {
        snprintf(what, sizeof(what), "bucket=%" PRIu32 "&epoch=%" PRIu64, job->bucket,
                 job->epoch);
    }
    int hn = snprintf(head, sizeof(head),
                      "GET /v1/migrate/export?%s HTTP/1.0\r\n"
                      "Host: %s\r\nConnection: close\r\nAccept: " MIG_CONTENT_TYPE "\r\n\r\n",
                      what, job->source);
    st = bc_net_send_all(f.fd, head, (size_t)hn, f.deadline);
    if (st != BC_OK) {
        snprintf(err, errlen, "cannot send the export request to %.100s: %s", job->source,
                 bc_status_str(st));
        goto out;
    }

    /* Status line and headers. */
    char *hdr_end = NULL;
    while (hdr_end == NULL) {
        size_t got;
        if (f.end >= MIG_HEADER_MAX) {
            snprintf(err, errlen, "source sent over %u bytes of headers", MIG_HEADER_MAX);
            st = BC_EPROTO;
            goto out;
        }
        st = fetch_read(&f, 4096, &got);
        if (st != BC_OK) {
            snprintf(err, errlen, "no answer from source %.100s: %s", job->source,
                     st == BC_ECLOSED ? "connection closed" : bc_status_str(st));
            if (st == BC_ECLOSED) st = BC_EIO;
            goto out;
        }
        hdr_end = memmem(f.buf, f.end, "\r\n\r\n", 4);
    }
    int status = 0;
    *hdr_end = '\0';
    if (sscanf(f.buf, "HTTP/1.%*d %d", &status) != 1) {
        snprintf(err, errlen, "source %.100s does not speak HTTP", job->source);
        st = BC_EPROTO;
        goto out;
    }
    long long content_length = -1;
    bool chunked = false;
    for (char *line = strstr(f.buf, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "Content-Length:", 15) == 0) {
            content_length = strtoll(line + 17, NULL, 10);
        } else if (strncasecmp(line + 2, "Transfer-Encoding:", 18) == 0) {
            chunked = true;
        } else if (strncasecmp(line + 2, MIG_TAP_HEADER ":", sizeof(MIG_TAP_HEADER)) == 0) {
            r->tap = strtoull(line + 2 + sizeof(MIG_TAP_HEADER), NULL, 10);
        }
    }
    f.start = (size_t)(hdr_end - f.buf) + 4;

    if (status != MHD_HTTP_OK) {
        size_t got;
        while (f.end - f.start < MIG_ERROR_BODY_MAX &&
               (content_length < 0 || (long long)(f.end - f.start) < content_length) &&
               fetch_read(&f, 4096, &got) == BC_OK) {
        }
        import_error_body(f.buf + f.start, f.end - f.start, status, retry, err, errlen);
        st = *retry ? BC_EAGAIN : BC_EPROTO;
        goto out;
    }
    if (chunked) {
        snprintf(err, errlen, "source sent a chunked export (unsupported)");
        st = BC_EPROTO;
        goto out;
    }

    /* The body: decode frames as they come. */
    uint64_t received = f.end - f.start;
    for (;;) {
        while (f.start < f.end) {
            bc_frame_t fr;
            size_t used;
            st = bc_frame_decode(f.buf + f.start, f.end - f.start, max_payload, &fr, &used, err,
                                 errlen);
            if (st == BC_EAGAIN) break;
            if (st == BC_ETOOLARGE) {
                char tmp[160];
                snprintf(tmp, sizeof(tmp), "%.159s", err);
                snprintf(err, errlen, "an item larger than this node's max item size (-I): %s",
                         tmp);
            }
            if (st != BC_OK) goto out;
            st = import_frame(r, &fr, err, errlen);
            if (st != BC_OK) goto out;
            f.start += used;
        }
        if (atomic_load(&job->cancel)) {
            snprintf(err, errlen, "cancelled");
            st = BC_ECLOSED;
            goto out;
        }
        if (content_length >= 0 && received >= (uint64_t)content_length) break;
        size_t got;
        st = fetch_read(&f, MIG_RECV_CHUNK, &got);
        if (st == BC_ECLOSED) {
            if (content_length >= 0) {
                snprintf(err, errlen, "export truncated: the source closed the connection after "
                         "%" PRIu64 " of %lld bytes", received, content_length);
                st = BC_EPROTO;
                goto out;
            }
            break;
        }
        if (st != BC_OK) {
            snprintf(err, errlen, "export from %.100s broke off after %" PRIu64 " bytes: %s",
                     job->source, received, bc_status_str(st));
            goto out;
        }
        received += got;
        job_publish(job, job->base_items + r->items, job->base_bytes + r->bytes, r->skipped,
                    got);
        if (job->mig->test_step_delay_ms > 0) bc_time_sleep_ms(job->mig->test_step_delay_ms);
    }
    if (f.start != f.end) {
        snprintf(err, errlen, "export truncated: %zu bytes of an incomplete frame at the end",
                 f.end - f.start);
        st = BC_EPROTO;
        goto out;
    }
    st = bc_frame_stream_finish(&r->stream, err, errlen);
    if (st != BC_OK) {
        char tmp[200];
        snprintf(tmp, sizeof(tmp), "%.199s", err);
        snprintf(err, errlen, "export %s", tmp);
    }
out:
    if (f.fd >= 0) close(f.fd);
    free(f.buf);
    return st;
}

static bc_status_t
import_run(import_job_t *job, import_run_t *r, char *err, size_t errlen)
{
    bc_node_migrate_t *mig = job->mig;
    if (node_owns(mig, job->bucket)) {
        snprintf(err, errlen, "this node's group already owns bucket %" PRIu32, job->bucket);
        return BC_EEXISTS;
    }
    int64_t t0 = bc_time_mono_ms(), deadline = t0 + mig->timeout_ms;
    int backoff = 1;
    for (;;) {
        /* A full export's HELLO empties the bucket first (import_frame); a
         * delta applies on top of the precopy, and applying it again after
         * a retry is harmless (each change is "the key is now this"). */
        memset(&r->stream, 0, sizeof(r->stream));
        r->items = r->bytes = r->skipped = 0;
        r->tap = 0;
        bool retry = false;
        bc_status_t st = import_fetch(r, deadline, &retry, err, errlen);
        if (st == BC_OK && job->precopy && r->tap == 0) {
            snprintf(err, errlen, "source %.100s sent no change tracker with the precopy",
                     job->source);
            return BC_EPROTO;
        }
        if (st == BC_OK || !retry) return st;
        if (atomic_load(&job->cancel)) {
            snprintf(err, errlen, "cancelled");
            return BC_ECLOSED;
        }
        if (bc_time_mono_ms() + backoff >= deadline) {
            char tmp[200];
            snprintf(tmp, sizeof(tmp), "%.199s", err);
            snprintf(err, errlen, "timed out waiting for the source: %s", tmp);
            return BC_ETIMEOUT;
        }
        bc_time_sleep_ms(backoff);
        /* The source is usually fenced within a few milliseconds (it reads
         * the tables as soon as it is asked): ask every millisecond at
         * first, then back off. */
        if (bc_time_mono_ms() - t0 < 500) {
            backoff = MIG_RETRY_FAST_MS;
        } else {
            backoff = backoff * 2 > MIG_RETRY_MAX_MS ? MIG_RETRY_MAX_MS : backoff * 2;
        }
    }
}

static void *
import_main(void *arg)
{
    import_job_t *job = arg;
    bc_node_migrate_t *mig = job->mig;
    import_run_t r;
    char err[256] = "";
    memset(&r, 0, sizeof(r));
    r.job = job;
    r.nbuckets = bc_cache_nbuckets(mig->cache);
    int64_t t0 = bc_time_mono_ms();
    /* BEHAVIOR: a precopy runs at the same priority as everything else.
     * At a lower one it was preempted while holding a shard lock (its
     * stores take them) that a read-only copy or a client then waited
     * for, and the copies it feeds waited for it: both the stall and the
     * migration's pace were worse (docs/benchmarks.md, fifth round). */

    bc_status_t st = import_run(job, &r, err, sizeof(err));
    if (st == BC_OK && mig->test_delay_ms > 0 && !job->precopy) {
        /* A deliberately slow destination (tests only). */
        for (uint32_t waited = 0; waited < mig->test_delay_ms && !atomic_load(&job->cancel);
             waited += 10) {
            bc_time_sleep_ms(10);
        }
        if (atomic_load(&job->cancel)) {
            snprintf(err, sizeof(err), "cancelled");
            st = BC_ECLOSED;
        }
    }
    /* The bucket is on this group's backups before the console may cut
     * over to it: in sync mode every item, in async mode within the lag
     * bound (repl.h).  The wait is this thread's: its stores are what it
     * waits for. */
    if (st == BC_OK && mig->commit != NULL && !job->precopy) mig->commit(mig->commit_ctx);
    if (st != BC_OK && st != BC_EEXISTS && !node_owns(mig, job->bucket)) {
        bc_cache_bucket_drop(mig->cache, job->bucket);
    }
    int64_t elapsed = bc_time_mono_ms() - t0;
    pthread_mutex_lock(&mig->mu);
    /* A copy over a precopy reports what both moved: the bucket's data
     * did cross, only earlier (the console's totals and rate count it). */
    if (!r.delta) job->base_items = job->base_bytes = 0;
    job->items = job->base_items + r.items;
    job->bytes = job->base_bytes + r.bytes;
    job->skipped = r.skipped;
    job->finished_ms = bc_time_real_ms();
    job->state = st == BC_OK ? JOB_DONE : JOB_FAILED;
    if (job->precopy) job->tap = st == BC_OK ? r.tap : 0;
    job->delta = r.delta;
    snprintf(job->error, sizeof(job->error), "%s", st == BC_OK ? "" : err);
    mig->running--;
    /* Answer the console's long poll now (under mu: shutdown clears the
     * pointer under mu before the server goes). */
    bc_httpd_wake(mig->httpd);
    pthread_mutex_unlock(&mig->mu);
    if (st == BC_OK) {
        atomic_fetch_add(&mig->imports_done, 1);
        atomic_fetch_add(&mig->import_items, r.items);
        atomic_fetch_add(&mig->import_bytes, r.bytes);
        if (job->precopy) atomic_fetch_add(&mig->precopies, 1);
        if (r.delta) atomic_fetch_add(&mig->import_deltas, 1);
        if (!job->precopy && job->tap != 0 && !r.delta) atomic_fetch_add(&mig->delta_fallbacks, 1);
        log_info("migrate: imported bucket %" PRIu32 " (%s, epoch %" PRIu64 ") from %s: %" PRIu64
                 " items, %" PRIu64 " bytes in %lld ms", job->bucket,
                 job->precopy ? "precopy" : r.delta ? "changes since the precopy" : "full",
                 job->epoch, job->source, r.items, r.bytes, (long long)elapsed);
    } else {
        atomic_fetch_add(&mig->imports_failed, 1);
        log_warn("migrate: import of bucket %" PRIu32 " (epoch %" PRIu64 ") from %s failed: %s",
                 job->bucket, job->epoch, job->source, err);
    }
    return NULL;
}

/* The most recent job for bucket (mu held), or NULL.  precopy_only:
 * the most recent precopy. */
static import_job_t *
job_find_kind(bc_node_migrate_t *mig, uint32_t bucket, bool precopy_only)
{
    import_job_t *best = NULL;
    for (uint32_t i = 0; i < mig->njobs; i++) {
        import_job_t *j = &mig->jobs[i];
        if (j->state != JOB_FREE && j->bucket == bucket && (!precopy_only || j->precopy) &&
            (best == NULL || j->seq > best->seq)) {
            best = j;
        }
    }
    return best;
}

static import_job_t *
job_find(bc_node_migrate_t *mig, uint32_t bucket)
{
    return job_find_kind(mig, bucket, false);
}

/*
 * Whether precopy j can still be the base of a final copy from group
 * `from` at `source` (mu held).
 *
 * BEHAVIOR: a delta is correct only on top of exactly what the precopy
 * stored.  That holds while nothing here changed the bucket since: no
 * flush_all ran here (it would have emptied it; the source's own flushes
 * end its tracker, tap.h), no final copy used it (a failed one drops the
 * bucket), no drop or cancel touched it, and it is recent (the drop hook
 * stops keeping an old one).  Evictions here are the exception a cache
 * allows: an evicted item is a miss, as it could be right after a cutover.
 */
static bool
job_precopy_usable(bc_node_migrate_t *mig, const import_job_t *j, uint32_t from,
                   const char *source)
{
    return j != NULL && j->precopy && j->state == JOB_DONE && !j->used && j->tap != 0 &&
           !atomic_load(&j->cancel) && j->from == from && strcmp(j->source, source) == 0 &&
           j->flushes == bc_cache_flush_count(mig->cache) &&
           bc_time_real_ms() - j->finished_ms < MIG_PRECOPY_KEEP_MS;
}

static const char *
job_state_name(job_state_t s)
{
    switch (s) {
    case JOB_RUNNING: return "running";
    case JOB_DONE: return "done";
    case JOB_FAILED: return "failed";
    default: return "none";
    }
}

/* The job as JSON (mu held). */
static cJSON *
job_json(bc_node_migrate_t *mig, const import_job_t *j)
{
    bc_node_cluster_info_t info;
    bc_node_cluster_get_info(mig->cluster, &info);
    cJSON *doc = cJSON_CreateObject();
    if (doc == NULL) return NULL;
    cJSON_AddNumberToObject(doc, "bucket", j->bucket);
    cJSON_AddNumberToObject(doc, "epoch", (double)j->epoch);
    cJSON_AddStringToObject(doc, "state", job_state_name(j->state));
    cJSON_AddBoolToObject(doc, "precopy", j->precopy);
    if (!j->precopy) cJSON_AddBoolToObject(doc, "delta", j->delta);
    cJSON_AddStringToObject(doc, "source", j->source);
    cJSON_AddNumberToObject(doc, "from", j->from);
    cJSON_AddNumberToObject(doc, "items", (double)j->items);
    cJSON_AddNumberToObject(doc, "bytes", (double)j->bytes);
    cJSON_AddNumberToObject(doc, "skipped", (double)j->skipped);
    cJSON_AddNumberToObject(doc, "received", (double)j->received);
    cJSON_AddStringToObject(doc, "error", j->error);
    cJSON_AddStringToObject(doc, "node", info.node_name);
    cJSON_AddNumberToObject(doc, "group", info.gid);
    int64_t end = j->state == JOB_RUNNING ? bc_time_real_ms() : j->finished_ms;
    cJSON_AddNumberToObject(doc, "elapsed_ms", (double)(end - j->started_ms));
    return doc;
}

/* A slot for a new job (mu held): a free one, else the oldest finished
 * (whose thread, if joinable, the caller joins before reusing it). */
static import_job_t *
job_slot(bc_node_migrate_t *mig)
{
    import_job_t *pick = NULL;
    for (uint32_t i = 0; i < mig->njobs; i++) {
        import_job_t *j = &mig->jobs[i];
        if (j->state == JOB_FREE && !j->joinable) return j;
        if (j->state != JOB_RUNNING && (pick == NULL || j->seq < pick->seq)) pick = j;
    }
    return pick;
}

static enum MHD_Result
import_reply(bc_node_migrate_t *mig, bc_http_req_t *req, unsigned status, import_job_t *j)
{
    cJSON *doc = job_json(mig, j);
    pthread_mutex_unlock(&mig->mu);
    if (doc == NULL) return MHD_NO;
    return bc_http_reply_json(req, status, doc);
}

static enum MHD_Result
import_start(bc_node_migrate_t *mig, bc_http_req_t *req, const mig_params_t *p)
{
    if (p->precopy ? p->has_epoch || !p->has_source || !p->has_from
                   : !p->has_epoch || !p->has_source || !p->has_from) {
        return bc_http_reply_error(req, MHD_HTTP_BAD_REQUEST, p->precopy
                                   ? "a precopy takes from and source, and no epoch"
                                   : "epoch, from and source are required");
    }
    bc_node_cluster_info_t info;
    bc_node_cluster_get_info(mig->cluster, &info);
    if (!info.primary) {
        /* The console may have chosen this node a moment before it learns
         * so itself: asking again shortly can succeed. */
        return mig_refuse(req, true, info.epoch, "this node is not (yet) its group's primary; "
                          "import into the primary");
    }
    pthread_mutex_lock(&mig->mu);
    if (mig->stopping) {
        pthread_mutex_unlock(&mig->mu);
        return bc_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
    }
    import_job_t *j = job_find(mig, p->bucket);
    if (p->precopy && j != NULL && j->precopy && j->from == p->from &&
        strcmp(j->source, p->source) == 0 &&
        (j->state == JOB_RUNNING || job_precopy_usable(mig, j, p->from, p->source))) {
        /* BEHAVIOR: idempotent, as below; a console that took over asks
         * again and finds the copy already made. */
        return import_reply(mig, req, j->state == JOB_RUNNING ? MHD_HTTP_ACCEPTED : MHD_HTTP_OK, j);
    }
    if (p->precopy && j != NULL && !j->precopy &&
        (j->state == JOB_RUNNING || (j->state == JOB_DONE && !atomic_load(&j->cancel)))) {
        /* The final copy runs or waits for its cutover: a precopy would
         * empty the bucket under it (a stale request). */
        uint64_t other = j->epoch;
        pthread_mutex_unlock(&mig->mu);
        return mig_refuse(req, false, other, "the copy of bucket %" PRIu32 " at epoch %" PRIu64
                          " is %s", p->bucket, other,
                          j->state == JOB_RUNNING ? "running" : "waiting for its cutover");
    }
    if (!p->precopy && j != NULL && j->epoch == p->epoch) {
        /* BEHAVIOR: idempotent -- the same request again (a console that
         * retried or took over) reports the job rather than restarting it. */
        return import_reply(mig, req, j->state == JOB_RUNNING ? MHD_HTTP_ACCEPTED : MHD_HTTP_OK, j);
    }
    if (!p->precopy && j != NULL && j->epoch > p->epoch) {
        /* BEHAVIOR: a request older than the newest attempt is stale (a
         * console that lost the election, a delayed retry): never run it. */
        uint64_t newer = j->epoch;
        pthread_mutex_unlock(&mig->mu);
        return mig_refuse(req, false, newer, "stale: an import of bucket %" PRIu32 " at the "
                          "newer epoch %" PRIu64 " exists", p->bucket, newer);
    }
    if (j != NULL && j->state == JOB_RUNNING) {
        /* An older attempt, or a precopy (epoch 0) from elsewhere or
         * overtaken by the final copy: it stops, then this one can start. */
        if (j->epoch < p->epoch || p->precopy) atomic_store(&j->cancel, true);
        uint64_t other = j->epoch;
        pthread_mutex_unlock(&mig->mu);
        return mig_refuse(req, true, other, "an import of bucket %" PRIu32 " at epoch %" PRIu64
                          " is still running", p->bucket, other);
    }
    if (node_owns(mig, p->bucket)) {
        pthread_mutex_unlock(&mig->mu);
        return bc_http_reply_error(req, MHD_HTTP_CONFLICT, "this node's group already owns "
                                   "bucket %" PRIu32, p->bucket);
    }
    if (mig->running >= mig->max_imports) {
        pthread_mutex_unlock(&mig->mu);
        return bc_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "%u imports already "
                                   "running; retry", mig->max_imports);
    }
    /* A final copy takes over a precopy of the same source: it asks only
     * for the changes since (the precopy is then used up, whatever
     * happens: a failed final copy drops the bucket). */
    uint64_t since = 0, base_items = 0, base_bytes = 0;
    if (!p->precopy) {
        import_job_t *pre = job_find_kind(mig, p->bucket, true);
        if (job_precopy_usable(mig, pre, p->from, p->source)) {
            since = pre->tap;
            base_items = pre->items;
            base_bytes = pre->bytes;
            pre->used = true;
        }
    }
    j = job_slot(mig);
    if (j == NULL) {
        pthread_mutex_unlock(&mig->mu);
        return bc_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "no free import slot");
    }
    if (j->joinable) {
        /* A finished thread: joining it takes no time, but not under mu. */
        pthread_t t = j->thread;
        j->joinable = false;
        j->state = JOB_RUNNING;   /* reserved while unlocked */
        pthread_mutex_unlock(&mig->mu);
        pthread_join(t, NULL);
        pthread_mutex_lock(&mig->mu);
    }
    j->mig = mig;
    j->state = JOB_RUNNING;
    j->bucket = p->bucket;
    j->epoch = p->precopy ? 0 : p->epoch;
    j->from = p->from;
    snprintf(j->source, sizeof(j->source), "%s", p->source);
    j->precopy = p->precopy;
    j->tap = since;
    j->flushes = bc_cache_flush_count(mig->cache);
    j->used = false;
    j->delta = false;
    j->base_items = base_items;
    j->base_bytes = base_bytes;
    j->items = j->bytes = j->skipped = j->received = 0;
    j->started_ms = bc_time_real_ms();
    j->finished_ms = 0;
    j->error[0] = '\0';
    j->seq = ++mig->seq;
    atomic_store(&j->cancel, false);
    if (pthread_create(&j->thread, NULL, import_main, j) != 0) {
        j->state = JOB_FREE;
        pthread_mutex_unlock(&mig->mu);
        return bc_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot start a thread");
    }
    j->joinable = true;
    mig->running++;
    log_info("migrate: importing bucket %" PRIu32 " (%s, epoch %" PRIu64 ") from %s", p->bucket,
             p->precopy ? "precopy" : since != 0 ? "changes since the precopy" : "full",
             j->epoch, p->source);
    return import_reply(mig, req, MHD_HTTP_ACCEPTED, j);
}

static enum MHD_Result
import_cancel(bc_node_migrate_t *mig, bc_http_req_t *req, const mig_params_t *p)
{
    pthread_mutex_lock(&mig->mu);
    import_job_t *j = job_find_kind(mig, p->bucket, p->precopy);
    if (j == NULL || (p->has_epoch && j->epoch != p->epoch)) {
        pthread_mutex_unlock(&mig->mu);
        return bc_http_reply_error(req, MHD_HTTP_NOT_FOUND, "no %s of bucket %" PRIu32 "%s",
                                   p->precopy ? "precopy" : "import", p->bucket,
                                   p->has_epoch ? " at that epoch" : "");
    }
    if (p->precopy && job_find(mig, p->bucket) != j) {
        /* A copy took over from the precopy: the copy's DELETE (by epoch)
         * is the one that may drop the bucket. */
        uint64_t other = job_find(mig, p->bucket)->epoch;
        pthread_mutex_unlock(&mig->mu);
        return mig_refuse(req, false, other, "the copy of bucket %" PRIu32 " at epoch %" PRIu64
                          " took over from its precopy", p->bucket, other);
    }
    atomic_store(&j->cancel, true);
    bool finished = j->state != JOB_RUNNING;
    if (finished && j->state == JOB_DONE) {
        j->state = JOB_FAILED;
        snprintf(j->error, sizeof(j->error), "cancelled after it finished");
    }
    pthread_mutex_unlock(&mig->mu);
    /* A running job drops what it stored when it notices; a finished one
     * left its copy here, waiting for a cutover that will not come. */
    uint64_t dropped = 0;
    if (finished && !node_owns(mig, p->bucket)) {
        dropped = bc_cache_bucket_drop(mig->cache, p->bucket);
    }
    log_info("migrate: import of bucket %" PRIu32 " called off%s (%" PRIu64 " items dropped)",
             p->bucket, finished ? "" : " while running", dropped);
    pthread_mutex_lock(&mig->mu);
    return import_reply(mig, req, MHD_HTTP_OK, j);
}

enum MHD_Result
bc_node_migrate_handle_import(bc_node_migrate_t *mig, bc_http_req_t *req)
{
    mig_params_t p;
    enum MHD_Result result;
    if (!params_parse(mig, req, &p, &result)) return result;
    if (strcmp(req->method, MHD_HTTP_METHOD_POST) == 0) return import_start(mig, req, &p);
    if (strcmp(req->method, MHD_HTTP_METHOD_DELETE) == 0) return import_cancel(mig, req, &p);
    pthread_mutex_lock(&mig->mu);
    import_job_t *j = job_find_kind(mig, p.bucket, p.precopy);
    if (j == NULL) {
        pthread_mutex_unlock(&mig->mu);
        return bc_http_reply_error(req, MHD_HTTP_NOT_FOUND, "no %s of bucket %" PRIu32
                                   " is known here", p.precopy ? "precopy" : "import", p.bucket);
    }
    /* Long poll (wait_ms): a running job of the asked epoch (any, without
     * one) is answered when it finishes -- the job wakes the parked
     * request -- or when wait_ms has passed. */
    if (p.wait_ms > 0 && j->state == JOB_RUNNING && (!p.has_epoch || j->epoch == p.epoch) &&
        !mig->stopping) {
        int64_t left_us = (int64_t)p.wait_ms * 1000 -
                          (req->parked_us != 0 ? bc_time_mono_us() - req->parked_us : 0);
        if (left_us > 0) {
            pthread_mutex_unlock(&mig->mu);
            return bc_http_park(req, left_us);
        }
    }
    return import_reply(mig, req, MHD_HTTP_OK, j);
}

/*
 * The cluster agent's way to drop a bucket that left (cluster.h,
 * bc_node_cluster_set_drop).
 *
 * BEHAVIOR: a bucket being imported is named by neither c nor m here
 * until its cutover, so the agent would drop it.  It is kept while an
 * import of it runs, or has finished and waits for its cutover, as long as
 * the bucket's owner is still the group the import copies from.  Once
 * the owner is someone else (the source group went down, the move was
 * replaced) the copy is obsolete and goes.  The decision and the drop
 * happen under mu, as does an import's registration, so an import that
 * starts cannot lose what it stores to a drop decided just before.
 */
static int64_t
migrate_drop(void *ctx, uint32_t bucket)
{
    bc_node_migrate_t *mig = ctx;
    pthread_mutex_lock(&mig->mu);
    import_job_t *j = job_find(mig, bucket);
    if (j != NULL && j->precopy && j->state == JOB_DONE && !atomic_load(&j->cancel) &&
        (j->used || bc_time_real_ms() - j->finished_ms >= MIG_PRECOPY_KEEP_MS)) {
        /* A precopy nobody came for (the final copy would not use it). */
        atomic_store(&j->cancel, true);
    }
    if (j != NULL && !atomic_load(&j->cancel) &&
        (j->state == JOB_RUNNING || j->state == JOB_DONE)) {
        uint32_t owner = 0;
        (void)bc_node_cluster_route(mig->cluster, bucket, false, &owner, NULL);
        if (owner == j->from) {
            pthread_mutex_unlock(&mig->mu);
            return -1;
        }
        atomic_store(&j->cancel, true);
        if (j->state == JOB_RUNNING) {
            /* The job notices and drops what it stored itself. */
            pthread_mutex_unlock(&mig->mu);
            return -1;
        }
        j->state = JOB_FAILED;
        snprintf(j->error, sizeof(j->error), "obsolete: bucket %" PRIu32 " is now owned by group "
                 "%" PRIu32 ", not %" PRIu32, bucket, owner, j->from);
    }
    int64_t n = (int64_t)bc_cache_bucket_drop(mig->cache, bucket);
    pthread_mutex_unlock(&mig->mu);
    return n;
}

/* ---- lifecycle ---- */

/* A test knob: milliseconds from the environment variable `name` (at most
 * max; 0 when unset or not a number), announced with what it does. */
static uint32_t
mig_test_delay(const char *name, uint64_t max, const char *what)
{
    const char *text = getenv(name);
    uint64_t v;
    if (text == NULL || text[0] == '\0' || !bc_parse_u64n(text, strlen(text), max, &v)) return 0;
    log_warn("migrate: %s=%u: %s (for tests)", name, (unsigned)v, what);
    return (uint32_t)v;
}

bc_status_t
bc_node_migrate_create(const bc_node_migrate_config_t *config, bc_node_migrate_t **out)
{
    *out = NULL;
    if (config == NULL || config->cache == NULL || config->cluster == NULL) return BC_EINVAL;
    bc_node_migrate_t *mig = calloc(1, sizeof(*mig));
    if (mig == NULL) return BC_ENOMEM;
    mig->cache = config->cache;
    mig->cluster = config->cluster;
    mig->server = config->server;
    mig->httpd = config->httpd;
    mig->max_imports = config->max_imports ? config->max_imports : MIG_DEFAULT_IMPORTS;
    mig->timeout_ms = config->import_timeout_ms ? config->import_timeout_ms
                                                : MIG_DEFAULT_TIMEOUT_MS;
    mig->test_delay_ms = mig_test_delay("BC_TEST_IMPORT_DELAY_MS", 3600000,
                                        "every import waits this many ms before it reports "
                                        "done: a slow destination");
    mig->test_step_delay_ms = mig_test_delay("BC_TEST_IMPORT_STEP_DELAY_MS", 10000,
                                             "imports wait this many ms after each read from "
                                             "the source: a slow but steady destination");
    mig->njobs = mig->max_imports * MIG_SLOTS_PER_IMPORT;
    mig->jobs = calloc(mig->njobs, sizeof(*mig->jobs));
    if (mig->jobs == NULL) {
        free(mig);
        return BC_ENOMEM;
    }
    bc_tap_config_t tc = {.cache = mig->cache};
    if (bc_tap_set_create(&tc, &mig->taps) != BC_OK) {
        free(mig->jobs);
        free(mig);
        return BC_ENOMEM;
    }
    pthread_mutex_init(&mig->mu, NULL);
    bc_node_cluster_set_drop(mig->cluster, migrate_drop, mig);
    *out = mig;
    return BC_OK;
}

void
bc_node_migrate_shutdown(bc_node_migrate_t *mig)
{
    if (mig == NULL) return;
    pthread_mutex_lock(&mig->mu);
    mig->stopping = true;
    mig->httpd = NULL;
    for (uint32_t i = 0; i < mig->njobs; i++) atomic_store(&mig->jobs[i].cancel, true);
    pthread_mutex_unlock(&mig->mu);
    for (uint32_t i = 0; i < mig->njobs; i++) {
        pthread_mutex_lock(&mig->mu);
        import_job_t *j = &mig->jobs[i];
        bool join = j->joinable;
        pthread_t t = j->thread;
        j->joinable = false;
        pthread_mutex_unlock(&mig->mu);
        if (join) pthread_join(t, NULL);
    }
}

void
bc_node_migrate_destroy(bc_node_migrate_t *mig)
{
    if (mig == NULL) return;
    bc_node_migrate_shutdown(mig);
    bc_node_cluster_set_drop(mig->cluster, NULL, NULL);
    bc_tap_set_destroy(mig->taps);
    pthread_mutex_destroy(&mig->mu);
    free(mig->jobs);
    free(mig);
}

void
bc_node_migrate_get_stats(bc_node_migrate_t *mig, bc_node_migrate_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (mig == NULL) return;
    out->exports = atomic_load(&mig->exports);
    out->export_refusals = atomic_load(&mig->export_refusals);
    out->export_items = atomic_load(&mig->export_items);
    out->export_bytes = atomic_load(&mig->export_bytes);
    out->imports_done = atomic_load(&mig->imports_done);
    out->imports_failed = atomic_load(&mig->imports_failed);
    out->import_items = atomic_load(&mig->import_items);
    out->import_bytes = atomic_load(&mig->import_bytes);
    out->precopies = atomic_load(&mig->precopies);
    out->export_deltas = atomic_load(&mig->export_deltas);
    out->import_deltas = atomic_load(&mig->import_deltas);
    out->delta_fallbacks = atomic_load(&mig->delta_fallbacks);
    bc_tap_stats_t ts;
    bc_tap_get_stats(mig->taps, &ts);
    out->taps_active = ts.active;
    out->taps_overflowed = ts.overflowed;
    pthread_mutex_lock(&mig->mu);
    out->imports_running = mig->running;
    pthread_mutex_unlock(&mig->mu);
}

void
bc_node_migrate_set_commit(bc_node_migrate_t *mig, void (*fn)(void *ctx), void *ctx)
{
    mig->commit = fn;
    mig->commit_ctx = ctx;
}
