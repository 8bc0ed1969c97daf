/*
 * import.c -- one import job's thread (migrate.h, POST /v1/migrate/import):
 * a bucket arrives on this node, the destination, from its source.
 *
 * HOW
 *   The thread GETs the source's export with the streaming client of
 *   common/bc_http_client.h and decodes frames as they arrive, so its
 *   memory stays bounded by one frame whatever the bucket's size; each
 *   item is stored add-if-absent (a full copy) or over the precopy (a
 *   delta), keeping the CAS it had at the source.  A source not fenced
 *   yet answers 409 "retry": the job asks again, every millisecond at
 *   first, then backing off, until the import's timeout.  A failed or
 *   cancelled job drops what it stored.  Progress is published to the job
 *   table (jobs.c) under mu after every read.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bc_frame.h"
#include "bc_hash.h"
#include "bc_http_client.h"
#include "bc_log.h"
#include "bc_peerauth.h"
#include "bc_time.h"
#include "bc_wire.h"
#include "engine/item_frame.h"
#include "migrate/migrate_int.h"

#define MIG_RETRY_FAST_MS       1         /* import retry interval, first half second */
#define MIG_RETRY_MAX_MS        50
#define MIG_RECV_CHUNK          (256u * 1024u)
#define MIG_HEADER_MAX          (16u * 1024u)
#define MIG_ERROR_BODY_MAX      (64u * 1024u)

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
    import_batch_t *batch;         /* the jobs, in the order their sections come */
    uint32_t idx;                  /* the section the stream is in: batch->jobs[idx] */
    import_job_t *job;             /* batch->jobs[idx] */
    bc_frame_stream_t stream;
    uint64_t items, bytes, skipped;   /* of the current section */
    uint32_t nbuckets;
    uint32_t ntaps;                /* precopy: the trackers the source armed (its header), */
    uint64_t taps[MIG_BATCH_MAX];  /* one per bucket, in order */
    bool delta;                    /* the source sent only the changes */
    bool precopy;                  /* precopies (every job of a batch is of one kind) */
    bool catchup;                  /* catch-ups of finished precopies (catchup.c): their
                                    * jobs are not run here, only kept current */
    bool sent;                     /* the request went out (a catch-up's keys may be taken) */
    int status;                    /* the source's HTTP status (0: none came) */
    bool unbatched;                /* the source refused buckets= (an older node) */
    int64_t t0;
    char source[BC_ADDR_MAX];      /* the jobs' source (every job of a batch has it) */
    /* An item in parts (bc_frame.h HEAD PART+): allocated at its HEAD,
     * filled by its PARTs, stored after the last; NULL while none is, or
     * when its job was called off (its parts are read, not stored). */
    bc_item_t *part_item;
    uint64_t part_off, part_cas;
    bc_node_migrate_t *mig;        /* the node's (a finished job is not ours to read) */
    /* A batch of copies: what each section brought, kept until the batch's
     * commit wait is over. */
    struct section {
        uint64_t items, bytes, skipped;
        bool delta;
    } done[MIG_BATCH_MAX];
} import_run_t;

static void job_finish(import_job_t *job, const import_run_t *r, const struct section *sec,
                       bc_status_t st, const char *err);

/*
 * A batch: each section's END ends its part of the stream, which goes on
 * with the next.  A precopy's job finishes there, so the console learns of
 * each bucket as it arrives; a copy's waits for the batch's commit
 * (bc__migrate_import_main).  A job called off meanwhile has its section
 * read but not stored (job_finish drops what it stored).
 */
static void
import_section_done(import_run_t *r)
{
    r->done[r->idx] = (struct section){r->items, r->bytes, r->skipped, r->delta};
    if (r->precopy) {
        job_finish(r->job, r, &r->done[r->idx],
                   atomic_load(&r->job->cancel) ? BC_ECLOSED : BC_OK, "cancelled");
    }
    r->idx++;
    r->job = r->idx < r->batch->n ? r->batch->jobs[r->idx] : NULL;
    if (r->job != NULL) memset(&r->stream, 0, sizeof(r->stream));
    r->items = r->bytes = r->skipped = 0;
    r->delta = false;
}

/*
 * Stores an item that came whole (an ITEM, or a HEAD's PARTs), taking over
 * the reference on it.
 *
 * BEHAVIOR: a full copy stores add-if-absent -- a value already here is
 * never replaced.  A delta replaces: what is here for the bucket came
 * from the precopy (this group does not own the bucket yet, so no
 * client wrote it), and the delta's value is newer.  Either way the
 * item keeps the CAS it had at the source (bc_cache_store_moved), so a
 * client's `gets` token from before the move works after it.
 */
static bc_status_t
import_store(import_run_t *r, bc_item_t *it, uint64_t cas, char *err, size_t errlen)
{
    size_t n = bc_item_nkey(it) + bc_item_value_len(it);
    bc_status_t st = bc_cache_store_moved(r->mig->cache, it,
                                          r->delta ? BC_STORE_SET : BC_STORE_ADD, cas);
    if (st == BC_OK) {
        r->items++;
        r->bytes += n;
    } else if (st == BC_ENOTSTORED) {
        r->skipped++;
    } else {
        snprintf(err, errlen, "cannot store an item: %s", bc_status_str(st));
        return st;
    }
    return BC_OK;
}

/* Lets go of an item in parts not stored (its job called off, the stream
 * broken off). */
static void
import_part_drop(import_run_t *r)
{
    if (r->part_item == NULL) return;
    bc_item_release(r->mig->cache, r->part_item);
    r->part_item = NULL;
}

/* A PART (bc_frame_stream_next has checked it follows its HEAD and does
 * not run past the size the HEAD gave): into the item's value; the item is
 * stored after its last part. */
static bc_status_t
import_part(import_run_t *r, const bc_frame_t *f, char *err, size_t errlen)
{
    if (r->part_item == NULL) return BC_OK;      /* its job called off: read, not stored */
    if (r->batch->n > 1 && atomic_load(&r->job->cancel)) {
        import_part_drop(r);
        return BC_OK;
    }
    memcpy(bc_item_value(r->part_item) + r->part_off, f->value, f->nvalue);
    r->part_off += f->nvalue;
    if (r->stream.part_left > 0) return BC_OK;
    bc_item_t *it = r->part_item;
    r->part_item = NULL;
    atomic_fetch_add_explicit(&r->mig->import_parted, 1, memory_order_relaxed);
    return import_store(r, it, r->part_cas, err, errlen);
}

/* Stores one decoded frame.  Errors with err set. */
static bc_status_t
import_frame(import_run_t *r, const bc_frame_t *f, char *err, size_t errlen)
{
    import_job_t *job = r->job;
    if (job == NULL) {
        snprintf(err, errlen, "source sent more than the %u buckets asked for", r->batch->n);
        return BC_EPROTO;
    }
    bc_status_t st = bc_frame_stream_next(&r->stream, f, err, errlen);
    if (st != BC_OK) return st;
    if (f->type == BC_FRAME_END) {
        if (r->batch->n > 1 || r->catchup) import_section_done(r);
        return BC_OK;
    }
    if (f->type == BC_FRAME_PART) return import_part(r, f, err, errlen);
    if (r->batch->n > 1 && atomic_load(&job->cancel)) return BC_OK;   /* read, not stored */
    bc_cache_t *cache = job->mig->cache;
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
        if (r->catchup) return BC_OK;   /* not a delta: the tracker is gone (catchup.c) */
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
    if (f->type != BC_FRAME_ITEM && f->type != BC_FRAME_DEL && f->type != BC_FRAME_HEAD) {
        return BC_OK;
    }
    if (f->nkey == 0 || f->nkey > BC_KEY_MAX_LEN) {
        snprintf(err, errlen, "item with a key of %zu bytes", f->nkey);
        return BC_EPROTO;
    }
    if (r->catchup && !r->delta) {
        snprintf(err, errlen, "source sent items of bucket %" PRIu32 " in a catch-up whose "
                 "tracker it said was gone", job->bucket);
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
    uint64_t nvalue = f->type == BC_FRAME_HEAD ? f->size : f->nvalue;
    bc_item_t *it = f->type == BC_FRAME_HEAD ? bc_item_frame_alloc_head(cache, f, hash, &st)
                                             : bc_item_frame_alloc(cache, f, hash, &st);
    if (it == NULL && st == BC_EINVAL) {
        snprintf(err, errlen, "item value of %" PRIu64 " bytes", nvalue);
        return BC_ETOOLARGE;
    }
    if (it == NULL) {
        snprintf(err, errlen, "cannot store an item of %" PRIu64 " bytes here: %s",
                 f->nkey + nvalue, st == BC_ETOOLARGE ? "larger than this node's max item size"
                                                      : "out of memory (nothing left to evict)");
        return st;
    }
    if (f->type == BC_FRAME_HEAD) {
        /* its value comes in the PARTs that follow (import_part) */
        r->part_item = it;
        r->part_off = 0;
        r->part_cas = f->cas;
        return BC_OK;
    }
    return import_store(r, it, f->cas, err, errlen);
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
 * Whether the stream is no use any more: its job, or every job of the
 * batch not finished yet, called off (shutdown calls off all).  A copy
 * batch's jobs all stay ours until its end; a precopy batch's before
 * r->idx are finished, and not ours to read.
 */
static bool
import_cancelled(const import_run_t *r)
{
    uint32_t from = r->idx < r->batch->n ? r->idx : r->precopy ? r->batch->n : 0;
    if (from == r->batch->n) return false;
    for (uint32_t i = from; i < r->batch->n; i++) {
        if (!atomic_load(&r->batch->jobs[i]->cancel)) return false;
    }
    return true;
}

/* The X-Bucketcache-Tap header (a peer's): the trackers' ids, decimal,
 * comma-separated, in the order of the buckets asked for, to the end of
 * its line.  How many were read; 0 for none or anything malformed (the
 * precopies then fail for want of a tracker). */
static uint32_t
import_taps(const char *hdr, uint64_t *taps)
{
    uint32_t n = 0;
    size_t len = 0;
    while (hdr != NULL && hdr[len] != '\0' && hdr[len] != '\r' && hdr[len] != '\n') len++;
    for (size_t i = 0; hdr != NULL && i < len;) {
        size_t j = i;
        while (j < len && hdr[j] != ',') j++;
        uint64_t v;
        if (n == MIG_BATCH_MAX || !bc_parse_u64n(hdr + i, j - i, UINT64_MAX, &v) || v == 0) {
            return 0;
        }
        taps[n++] = v;
        if (j < len && j + 1 == len) return 0;        /* a trailing comma */
        i = j + 1;
    }
    return n;
}

/* A batch's bytes received count for each of its jobs still ours (a
 * precopy's ends at its section's END; a copy's waits for the batch): the
 * console waits for them in turn on one deadline that the stream's
 * progress moves on, whichever section it is in. */
static void
import_publish_received(import_run_t *r, uint64_t more)
{
    pthread_mutex_lock(&r->mig->mu);
    for (uint32_t i = r->precopy ? r->idx + 1 : 0; i < r->batch->n; i++) {
        if (i != r->idx) r->batch->jobs[i]->received += more;
    }
    pthread_mutex_unlock(&r->mig->mu);
}

/*
 * One GET of the export.  BC_OK: the whole bucket (each bucket of a batch)
 * is stored.  *retry is set when the source asked to be asked again (not
 * fenced yet).  The single form (bucket=) stays for one bucket: a source
 * that does not know buckets= serves it.
 */
static bc_status_t
import_fetch(import_run_t *r, int64_t deadline, bool *retry, char *err, size_t errlen)
{
    /* The first job: the batch's settings.  Only while it runs: a batch's
     * job, once finished, is not ours any more (its slot may be reused). */
    import_job_t *job = r->job;
    bc_node_migrate_t *mig = job->mig;
    size_t max_payload = bc_cache_max_item_size(mig->cache) + 1024;
    /* BEHAVIOR: the timeout bounds a transfer that stalls, not one that is
     * long: every byte received moves the deadline on, so a bucket of any
     * size gets across as long as it keeps coming.  A large receive window
     * from the first byte: the source can send a whole bucket without
     * waiting for us to be scheduled. */
    bc_http_stream_t f;
    char why[200];
    bc_status_t st = bc_http_stream_connect(&f, r->source, (int)MIG_SOCKBUF_MAX, deadline,
                                            mig->timeout_ms, why, sizeof(why));
    *retry = false;
    if (st == BC_EINVAL) {
        st = bc_fail(err, errlen, BC_EINVAL, "bad source address \"%.100s\"", r->source);
        goto out;
    }
    if (st != BC_OK) {
        st = bc_fail(err, errlen, st == BC_ETIMEOUT ? BC_ETIMEOUT : BC_EIO,
                     "cannot connect to source %.100s: %s", r->source, why);
        goto out;
    }

    char path[128 + MIG_BATCH_MAX * 32];
    if (r->catchup) {
        /* always the list form: each bucket with its tracker */
        size_t len = (size_t)snprintf(path, sizeof(path), "/v1/migrate/export?buckets=");
        for (uint32_t i = 0; i < r->batch->n; i++) {
            const import_job_t *j = r->batch->jobs[i];
            len += (size_t)snprintf(path + len, sizeof(path) - len, "%s%" PRIu32 ":%" PRIu64,
                                    i ? "," : "", j->bucket, j->tap);
        }
        snprintf(path + len, sizeof(path) - len, "&catchup=1");
    } else if (r->batch->n > 1) {
        /* B for a precopy or a full copy, B:T for the changes tracker T saw */
        size_t len = (size_t)snprintf(path, sizeof(path), "/v1/migrate/export?buckets=");
        for (uint32_t i = 0; i < r->batch->n; i++) {
            const import_job_t *j = r->batch->jobs[i];
            len += (size_t)snprintf(path + len, sizeof(path) - len, "%s%" PRIu32, i ? "," : "",
                                    j->bucket);
            if (!j->precopy && j->tap != 0) {
                len += (size_t)snprintf(path + len, sizeof(path) - len, ":%" PRIu64, j->tap);
            }
        }
        if (job->precopy) {
            snprintf(path + len, sizeof(path) - len, "&tap=1");
        } else {
            snprintf(path + len, sizeof(path) - len, "&epoch=%" PRIu64, job->epoch);
        }
    } else if (job->precopy) {
        snprintf(path, sizeof(path), "/v1/migrate/export?bucket=%" PRIu32 "&tap=1", job->bucket);
    } else if (job->tap != 0) {
        snprintf(path, sizeof(path), "/v1/migrate/export?bucket=%" PRIu32 "&epoch=%" PRIu64
                 "&since=%" PRIu64, job->bucket, job->epoch, job->tap);
    } else {
        snprintf(path, sizeof(path), "/v1/migrate/export?bucket=%" PRIu32 "&epoch=%" PRIu64,
                 job->bucket, job->epoch);
    }
    /* With the cluster secret: the request is signed, and the answer must
     * prove the source holds it too (migrate.h, PEER AUTHENTICATION). */
    char peer_hdr[BC_PEERAUTH_HTTP_MAX + 64] = "", nonce[BC_PEERAUTH_NONCE_LEN + 1] = "";
    if (mig->peer_auth != NULL) {
        char value[BC_PEERAUTH_HTTP_MAX], name[BC_WIRE_NAME_MAX + 1];
        bc_node_cluster_info_t ci;
        bc_node_cluster_get_info(mig->cluster, &ci);
        snprintf(name, sizeof(name), "%s", bc_wire_name_valid(ci.node_name, strlen(ci.node_name))
                                               ? ci.node_name : "unregistered");
        if (bc_peerauth_http_sign(mig->peer_auth, "GET", path, name,
                                  (uint64_t)bc_time_real_ms(), value, sizeof(value),
                                  nonce) == 0) {
            st = bc_fail(err, errlen, BC_EINVAL, "cannot sign the export request");
            goto out;
        }
        snprintf(peer_hdr, sizeof(peer_hdr), BC_PEERAUTH_HTTP_HEADER ": %s\r\n", value);
    }
    /* Large items in parts, please (a source that does not know the
     * header sends them whole, which this node reads too). */
    char headers[sizeof(peer_hdr) + 64];
    snprintf(headers, sizeof(headers), "%s" MIG_PARTS_HEADER ": 1\r\n", peer_hdr);
    st = bc_http_stream_get(&f, r->source, path, MIG_CONTENT_TYPE, headers);
    r->sent = true;   /* even a failed send may have reached the source */
    if (st != BC_OK) {
        snprintf(err, errlen, "cannot send the export request to %.100s: %s", r->source,
                 bc_status_str(st));
        goto out;
    }

    /* Status line and headers. */
    st = bc_http_stream_head(&f, MIG_HEADER_MAX);
    if (st == BC_ETOOLARGE) {
        snprintf(err, errlen, "source sent over %u bytes of headers", MIG_HEADER_MAX);
        st = BC_EPROTO;
        goto out;
    }
    if (st == BC_EPROTO) {
        snprintf(err, errlen, "source %.100s does not speak HTTP", r->source);
        goto out;
    }
    if (st != BC_OK) {
        snprintf(err, errlen, "no answer from source %.100s: %s", r->source,
                 st == BC_ECLOSED ? "connection closed" : bc_status_str(st));
        if (st == BC_ECLOSED) st = BC_EIO;
        goto out;
    }
    r->status = f.status;
    if (mig->peer_auth != NULL && f.status == MHD_HTTP_OK) {
        const char *proof = bc_http_stream_header(&f, BC_PEERAUTH_HTTP_REPLY_HEADER);
        size_t pl = 0;
        while (proof != NULL && proof[pl] != '\0' && proof[pl] != '\r' && proof[pl] != '\n') pl++;
        char untrusted[150];
        if (!bc_peerauth_http_reply_check(mig->peer_auth, "GET", path, nonce, proof, pl,
                                          untrusted, sizeof(untrusted))) {
            snprintf(err, errlen, "source %.60s is not trusted: %.140s", r->source, untrusted);
            log_warn("migrate: import of bucket %" PRIu32 ": %s", job->bucket, err);
            st = BC_EACCES;
            goto out;
        }
    }
    r->ntaps = import_taps(bc_http_stream_header(&f, MIG_TAP_HEADER), r->taps);
    if (f.status == MHD_HTTP_OK && job->precopy && !r->catchup && r->ntaps != r->batch->n) {
        if (r->ntaps == 0) {
            snprintf(err, errlen, "source %.100s sent no change tracker with the precopy",
                     r->source);
        } else {
            snprintf(err, errlen, "source %.100s sent %u change trackers for %u precopies",
                     r->source, r->ntaps, r->batch->n);
        }
        st = BC_EPROTO;
        goto out;
    }
    long long content_length = f.content_length;
    size_t avail;
    const char *data;

    if (f.status != MHD_HTTP_OK) {
        /* The error's body, as much of it as comes (and fits). */
        for (;;) {
            size_t got;
            (void)bc_http_stream_data(&f, &avail);
            if (avail >= MIG_ERROR_BODY_MAX ||
                (content_length >= 0 && (long long)avail >= content_length) ||
                bc_http_stream_read(&f, 4096, &got) != BC_OK) {
                break;
            }
        }
        data = bc_http_stream_data(&f, &avail);
        import_error_body(data, avail, f.status, retry, err, errlen);
        /* An older source: "unknown query parameter "buckets"". */
        r->unbatched = r->batch->n > 1 && f.status == MHD_HTTP_BAD_REQUEST &&
                       strstr(err, "buckets") != NULL;
        st = *retry ? BC_EAGAIN : BC_EPROTO;
        goto out;
    }
    if (f.chunked) {
        snprintf(err, errlen, "source sent a chunked export (unsupported)");
        st = BC_EPROTO;
        goto out;
    }

    /* The body: decode frames as they come. */
    (void)bc_http_stream_data(&f, &avail);
    uint64_t received = avail;
    for (;;) {
        for (;;) {
            data = bc_http_stream_data(&f, &avail);
            if (avail == 0) break;
            bc_frame_t fr;
            size_t used;
            st = bc_frame_decode(data, avail, max_payload, &fr, &used, err, errlen);
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
            bc_http_stream_consume(&f, used);
        }
        if (r->job == NULL) break;    /* a batch: every section is in */
        if (import_cancelled(r)) {
            snprintf(err, errlen, "cancelled");
            st = BC_ECLOSED;
            goto out;
        }
        if (content_length >= 0 && received >= (uint64_t)content_length) break;
        size_t got;
        st = bc_http_stream_read(&f, MIG_RECV_CHUNK, &got);
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
                     r->source, received, bc_status_str(st));
            goto out;
        }
        received += got;
        if (r->job != NULL && !r->catchup) {
            job_publish(r->job, r->job->base_items + r->items, r->job->base_bytes + r->bytes,
                        r->skipped, got);
            if (r->batch->n > 1) import_publish_received(r, got);
        }
        if (mig->test_step_delay_ms > 0) bc_time_sleep_ms(mig->test_step_delay_ms);
    }
    (void)bc_http_stream_data(&f, &avail);
    if (avail != 0) {
        snprintf(err, errlen, "export truncated: %zu bytes of an incomplete frame at the end",
                 avail);
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
    import_part_drop(r);
    bc_http_stream_close(&f);
    return st;
}

static bc_status_t
import_run(import_run_t *r, char *err, size_t errlen)
{
    import_job_t *job = r->job;
    bc_node_migrate_t *mig = job->mig;
    for (uint32_t i = 0; i < r->batch->n; i++) {
        if (bc__migrate_node_owns(mig, r->batch->jobs[i]->bucket)) {
            snprintf(err, errlen, "this node's group already owns bucket %" PRIu32,
                     r->batch->jobs[i]->bucket);
            return BC_EEXISTS;
        }
    }
    int64_t t0 = bc_time_mono_ms(), deadline = t0 + mig->timeout_ms;
    int backoff = 1;
    for (;;) {
        /* A full export's HELLO empties the bucket first (import_frame); a
         * delta applies on top of the precopy, and applying it again after
         * a retry is harmless (each change is "the key is now this").  A
         * retry comes before any data (a refusal): the stream starts over
         * at its first section. */
        memset(&r->stream, 0, sizeof(r->stream));
        r->items = r->bytes = r->skipped = 0;
        r->ntaps = 0;
        bool retry = false;
        bc_status_t st = import_fetch(r, deadline, &retry, err, errlen);
        if (st == BC_OK || !retry) return st;
        if (import_cancelled(r)) {
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

/*
 * A job's end: its outcome published, the console's long poll woken, the
 * counters and the log.  st != BC_OK drops what the job stored (unless
 * this group owns the bucket).  After this the job is not the thread's:
 * its slot may be reused at once.
 */
static void
job_finish(import_job_t *job, const import_run_t *r, const struct section *sec,
           bc_status_t st, const char *err)
{
    bc_node_migrate_t *mig = job->mig;
    if (st != BC_OK && st != BC_EEXISTS && !bc__migrate_node_owns(mig, job->bucket)) {
        bc_cache_bucket_drop(mig->cache, job->bucket);
    }
    uint64_t tap = r->idx < r->ntaps ? r->taps[r->idx] : 0;
    int64_t elapsed = bc_time_mono_ms() - r->t0;
    pthread_mutex_lock(&mig->mu);
    /* A copy over a precopy reports what both moved: the bucket's data
     * did cross, only earlier (the console's totals and rate count it). */
    if (!sec->delta) job->base_items = job->base_bytes = 0;
    job->items = job->base_items + sec->items;
    job->bytes = job->base_bytes + sec->bytes;
    job->skipped = sec->skipped;
    job->finished_ms = bc_time_real_ms();
    job->state = st == BC_OK ? JOB_DONE : JOB_FAILED;
    bool precopy = job->precopy, fallback = !precopy && job->tap != 0 && !sec->delta;
    if (precopy) job->tap = st == BC_OK ? tap : 0;
    if (precopy) job->caught_up_ms = bc_time_mono_ms();   /* its first catch-up is due later */
    job->delta = sec->delta;
    snprintf(job->error, sizeof(job->error), "%s", st == BC_OK ? "" : err);
    uint32_t bucket = job->bucket;
    uint64_t epoch = job->epoch;
    mig->running--;
    /* Answer the console's long poll now (under mu: shutdown clears the
     * pointer under mu before the server goes). */
    bc_httpd_wake(mig->httpd);
    /* a finished precopy is the catch-up thread's to keep up to date */
    if (precopy && st == BC_OK) pthread_cond_signal(&mig->catchup_cv);
    pthread_mutex_unlock(&mig->mu);
    if (st == BC_OK) {
        atomic_fetch_add(&mig->imports_done, 1);
        atomic_fetch_add(&mig->import_items, sec->items);
        atomic_fetch_add(&mig->import_bytes, sec->bytes);
        if (precopy) atomic_fetch_add(&mig->precopies, 1);
        if (sec->delta) atomic_fetch_add(&mig->import_deltas, 1);
        if (sec->delta) atomic_fetch_add(&mig->import_delta_items, sec->items);
        if (fallback) atomic_fetch_add(&mig->delta_fallbacks, 1);
        log_info("migrate: imported bucket %" PRIu32 " (%s, epoch %" PRIu64 ") from %s: %" PRIu64
                 " items, %" PRIu64 " bytes in %lld ms", bucket,
                 precopy ? "precopy" : sec->delta ? "changes since the precopy" : "full",
                 epoch, r->source, sec->items, sec->bytes, (long long)elapsed);
    } else {
        atomic_fetch_add(&mig->imports_failed, 1);
        log_warn("migrate: import of bucket %" PRIu32 " (epoch %" PRIu64 ") from %s failed: %s",
                 bucket, epoch, r->source, err);
    }
}

/* Source `source` does not take batches (an older node): noted, so that
 * this node asks it one bucket at a time from now on (jobs.c); err says
 * so to the console, which retries these buckets. */
static void
import_unbatched(bc_node_migrate_t *mig, const char *source, char *err, size_t errlen)
{
    pthread_mutex_lock(&mig->mu);
    if (!bc__migrate_source_listed(mig->unbatched, MIG_UNBATCHED_MAX, source)) {
        snprintf(mig->unbatched[mig->unbatched_next], BC_ADDR_MAX, "%s", source);
        mig->unbatched_next = (mig->unbatched_next + 1) % MIG_UNBATCHED_MAX;
    }
    pthread_mutex_unlock(&mig->mu);
    log_info("migrate: source %s does not take batches (an older node): asked one bucket at a "
             "time from now on", source);
    size_t len = strlen(err);
    snprintf(err + len, errlen - len, " (an older source: asked one bucket at a time next)");
}

/*
 * The jobs the stream has not finished, finished.  The first `got` came
 * whole and end as `whole` says (a copy called off meanwhile as
 * cancelled); the rest, stopped by the stream's end, as `rest` says.  A
 * precopy batch's whole ones were finished at their END already (and are
 * not ours any more).
 */
static void
import_batch_end(import_run_t *r, uint32_t got, bc_status_t whole, const char *whole_err,
                 bc_status_t rest, const char *rest_err)
{
    uint32_t n = r->batch->n;
    struct section partial = {r->items, r->bytes, r->skipped, r->delta}, none = {0};
    for (uint32_t i = r->precopy && n > 1 ? got : 0; i < n; i++) {
        import_job_t *job = r->batch->jobs[i];
        r->idx = i;
        if (i < got && whole == BC_OK && atomic_load(&job->cancel)) {
            job_finish(job, r, &r->done[i], BC_ECLOSED, "cancelled");
        } else if (i < got) {
            job_finish(job, r, &r->done[i], whole, whole_err);
        } else {
            job_finish(job, r, i == got ? &partial : &none, rest, rest_err);
        }
    }
}

void *
bc__migrate_import_main(void *arg)
{
    import_batch_t *batch = arg;
    import_job_t *job = batch->jobs[0];
    bc_node_migrate_t *mig = job->mig;
    import_run_t r;
    char err[256] = "";
    memset(&r, 0, sizeof(r));
    r.batch = batch;
    r.job = job;
    r.mig = mig;
    r.nbuckets = bc_cache_nbuckets(mig->cache);
    r.t0 = bc_time_mono_ms();
    r.precopy = job->precopy;
    snprintf(r.source, sizeof(r.source), "%s", job->source);
    /* BEHAVIOR: a precopy runs at the same priority as everything else.
     * At a lower one it was preempted while holding a shard lock (its
     * stores take them) that a read-only copy or a client then waited
     * for, and the copies it feeds waited for it: both the stall and the
     * migration's pace were worse (docs/benchmarks.md, fifth round). */

    /* A catch-up of a precopy of these buckets applies wholly before this
     * import stores anything (catchup.c, BEHAVIOR: order); it may also
     * have made some of these copies full ones. */
    pthread_mutex_lock(&mig->mu);
    bc__migrate_catchup_wait(mig, batch);
    pthread_mutex_unlock(&mig->mu);
    bc_status_t st = import_run(&r, err, sizeof(err));
    /* What came whole (each bucket of a batch up to where the stream
     * stopped) is kept; what did not, fails with the stream's error. */
    uint32_t got = batch->n > 1 ? r.idx : st == BC_OK ? 1 : 0;
    if (batch->n == 1 && st == BC_OK) {
        r.done[0] = (struct section){r.items, r.bytes, r.skipped, r.delta};
    }
    if (st == BC_OK && got < batch->n) {
        snprintf(err, sizeof(err), "the source's stream ended before bucket %" PRIu32,
                 batch->jobs[got]->bucket);
        st = BC_EPROTO;
    }
    if (r.unbatched) import_unbatched(mig, r.source, err, sizeof(err));
    bc_status_t whole = BC_OK;
    char whole_err[256] = "";
    if (got > 0 && !r.precopy && mig->test_delay_ms > 0) {
        /* A deliberately slow destination (tests only). */
        for (uint32_t waited = 0; waited < mig->test_delay_ms && !import_cancelled(&r);
             waited += 10) {
            bc_time_sleep_ms(10);
        }
    }
    /* The buckets are on this group's backups before the console may cut
     * over to them: in sync mode every item, in async mode within the lag
     * bound (repl.h).  The wait is this thread's: its stores are what it
     * waits for; one wait covers a batch. */
    if (got > 0 && !r.precopy && mig->commit != NULL && !mig->commit(mig->commit_ctx)) {
        snprintf(whole_err, sizeof(whole_err), "this group's in-sync backups did not confirm "
                 "the bucket (too few in sync, or the primary's role or lease was lost)");
        whole = BC_EAGAIN;
    }
    import_batch_end(&r, got, whole, whole_err, st == BC_OK ? BC_EPROTO : st, err);
    free(batch);
    return NULL;
}

bc_status_t
bc__migrate_catchup_fetch(import_batch_t *batch, catchup_outcome_t *out, char *err,
                          size_t errlen)
{
    import_job_t *job = batch->jobs[0];
    import_run_t r;
    memset(&r, 0, sizeof(r));
    memset(out, 0, sizeof(*out));
    r.batch = batch;
    r.job = job;
    r.mig = job->mig;
    r.nbuckets = bc_cache_nbuckets(r.mig->cache);
    r.t0 = bc_time_mono_ms();
    r.catchup = true;
    snprintf(r.source, sizeof(r.source), "%s", job->source);
    bool retry = false;
    bc_status_t st = import_fetch(&r, r.t0 + MIG_CATCHUP_TIMEOUT_MS, &retry, err, errlen);
    out->got = r.idx;
    for (uint32_t i = 0; i < r.idx; i++) {
        out->items[i] = r.done[i].items;
        out->bytes[i] = r.done[i].bytes;
        out->gone[i] = !r.done[i].delta;
    }
    /* A refusal took nothing out of the trackers; anything else after the
     * request went out may have. */
    out->taken = r.sent && (r.status == 0 || r.status == MHD_HTTP_OK);
    out->older = r.status == MHD_HTTP_BAD_REQUEST && strstr(err, "catchup") != NULL;
    if (st == BC_OK && r.idx < batch->n) {
        snprintf(err, errlen, "the source's catch-up ended before bucket %" PRIu32,
                 batch->jobs[r.idx]->bucket);
        st = BC_EPROTO;
    }
    return st;
}
