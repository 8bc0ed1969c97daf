/*
 * migrate.h -- the node's half of bucket migration: exporting a bucket to
 * the destination that asks for it, and importing a bucket from its
 * source when the console asks (console/migrate.h drives both).
 *
 * WHAT IT SERVES (on the admin port, through admin.c)
 *
 *   GET    /v1/migrate/export?bucket=B&epoch=E
 *            the bucket's items as a stream of peer frames (bc_frame.h),
 *            application/x-bucketcache-frames.  Only from the primary that
 *            owns B, only while B is read-only (the console set c.readonly
 *            at epoch E), and only once this node is FENCED for E:
 *              - its table has reached epoch E (it knows B is read-only),
 *              - every worker thread has passed the top of its event loop
 *                after seeing epoch >= E (bc_server_passed), so any
 *                write that passed the route check before the flip has
 *                finished and is in the cache the export iterates.
 *            The request is held (parked, see bc_http_park: no thread
 *            waits) until then, up to 200 ms; after that 409 with
 *            "retry": true; other refusals (not the owner, not read-only:
 *            the migration was called off) are 409 with "retry": false.
 *   GET    /v1/migrate/export?bucket=B&epoch=E&since=T
 *            the same, fenced the same way, but only the keys change
 *            tracker T (tap.h) recorded since the precopy, each as it is
 *            now: a delta export (bc_frame.h).  When T is gone (it
 *            overflowed, a flush or drop ended it, it expired, it belongs
 *            to another process), the whole bucket instead; the HELLO says
 *            which.
 *   GET    /v1/migrate/export?bucket=B&tap=1
 *            a precopy's snapshot: the whole bucket while it stays
 *            writable, from the primary of its owner, with a change
 *            tracker armed just before it is read; its id comes in the
 *            X-Bucketcache-Tap header.
 *   GET    /v1/migrate/export?buckets=B1:T1,B2:T2,...&catchup=1
 *            (or bucket=B&since=T&catchup=1) a precopy's catch-up, from
 *            the destination's catch-up thread (catchup.c): for each
 *            bucket, the keys tracker T recorded since the precopy or the
 *            last catch-up, each as it is now (a delta section), MOVED out
 *            of the tracker (tap.h bc_tap_take), so the final copy sends
 *            only what changed after.  Not fenced: the buckets stay
 *            writable.  A bucket whose tracker is gone gets a bare HELLO
 *            that is not a delta, then END.  409 when a bucket is not
 *            served here; 400 without each bucket's tracker, or with an
 *            epoch, tap or precopy.
 *   GET    /v1/migrate/export?buckets=B1,B2,...&tap=1
 *            a batch of precopies (at most 64 buckets): one stream of
 *            sections, HELLO / items / END per bucket, back to back in
 *            the order asked, every tracker armed before the first is
 *            read; X-Bucketcache-Tap lists their ids in that order.
 *            Refused whole (409) when any bucket is not served here.
 *   GET    /v1/migrate/export?buckets=B1[:T1],B2[:T2],...&epoch=E
 *            a batch of copies at E: every bucket fenced (as one bucket
 *            is, below) before the first section is read, refused whole
 *            when one cannot be; each section the changes tracker Ti saw
 *            (the whole bucket without :Ti, or when Ti is gone).
 *
 *   POST   /v1/migrate/import?bucket=B&epoch=E&from=G&source=HOST:PORT
 *            starts (or, same B and E, reports) an import job from group
 *            G's primary, whose admin port is HOST:PORT: 202 with the
 *            job's state.  The job pulls the export from there and stores
 *            every item add-if-absent, so nothing already here is ever
 *            overwritten.  Refused (409) when this node is not (yet) its
 *            group's primary ("retry": true), already owns B (the cutover
 *            happened), or another import of B at another epoch still runs
 *            ("retry": true when that one is older and was told to stop);
 *            503 when max_imports jobs already run.
 *   GET    /v1/migrate/import?bucket=B[&epoch=E][&wait_ms=N]
 *            the job's state: {"bucket","epoch","state":"running"|"done"|
 *            "failed","precopy","delta","items","bytes","skipped","error",
 *            "node","elapsed_ms"}; a copy over a precopy counts the
 *            precopy's items and bytes in its own.
 *            (404 when no job for B is known).  With wait_ms (at most
 *            10000), a long poll: while the job (of epoch E, when given)
 *            runs, the answer waits until it finishes -- the job wakes
 *            the parked request at once -- or until N ms have passed.
 *   GET    /v1/migrate/import?buckets=B1,B2,...&(epoch=E|precopy=1)[&wait_ms=N]
 *            the states of a batch's jobs in one answer: {"jobs":[...]},
 *            in the order asked, each entry what the GET of its bucket
 *            answers ({"bucket":B,"state":"none","error":...} where that
 *            is a 404).  With wait_ms, parked while every one of them
 *            runs, answered as soon as one finishes: the console waits
 *            for a whole batch with one long poll.
 *   POST   /v1/migrate/import?bucket=B&from=G&source=HOST:PORT&precopy=1
 *            a PRECOPY (no epoch): the job pulls export?tap=1 while the
 *            bucket stays writable at the source and keeps the copy and
 *            the tracker's id.  Answered like a copy (202 / 200 when the
 *            same precopy is running or done and still usable); 409
 *            "retry": false while a copy of B runs or waits for its
 *            cutover.  The next copy of B from the same group and address
 *            then asks only for the changes (since=T) and applies them
 *            over the precopy: ITEM replaces, DEL deletes.  It does so
 *            only while the precopy is usable: finished, under 30 s old,
 *            not used by an earlier copy, and no flush_all ran here since
 *            (job_precopy_usable says why each matters).
 *   POST   /v1/migrate/import?buckets=B1,B2,...&from=G&source=HOST:PORT&precopy=1
 *            the precopies of up to 64 buckets from one source: each
 *            decided as the single request decides it, and those started
 *            run on ONE thread pulling export?buckets=...&tap=1 over one
 *            connection; each section's END finishes its job (so each
 *            long poll is answered as its bucket arrives), a job called
 *            off meanwhile has its section read but not stored.  200
 *            {"jobs":[...]}, one entry per bucket in the order asked: the
 *            job's state with "status" 200 (found) or 202 (started), or
 *            the refusal {"bucket","status","error","retry","epoch"}.
 *            Why a batch: a precopy of a small bucket costs its request,
 *            job, thread, connection and long poll, not its bytes.
 *   POST   /v1/migrate/import?buckets=B1,B2,...&epoch=E&from=G&source=HOST:PORT
 *            the copies at E of up to 64 buckets from one source, as the
 *            precopies' batch: one thread pulls export?buckets=B:T,...
 *            &epoch=E (T: the usable precopy's tracker); the jobs finish
 *            together, after one wait for the group's backups; a section
 *            that came whole is kept even when a later one does not come
 *            (those fail).  A source that refuses buckets= (an older
 *            node) fails that batch with a word saying so and is asked a
 *            bucket at a time from then on.
 *   GET    /v1/migrate/import?bucket=B&precopy=1[&wait_ms=N]
 *            the newest precopy of B, long poll as below (a batch's jobs
 *            too: asked for one by one); a precopy also says how many
 *            catch-ups it had ("catchups", "catchup_items") and whether
 *            a final copy can still ask for the changes only ("tracked").
 *   DELETE /v1/migrate/import?bucket=B&precopy=1
 *            the move was called off: the precopy stops and what it stored
 *            is dropped -- unless a copy of B took over from it (409).
 *   DELETE /v1/migrate/import?bucket=B&epoch=E
 *            the console called the move off: the job stops and what it
 *            stored is dropped (unless this node owns B by now).
 *
 * PEER AUTHENTICATION (docs/security.md)
 *   An export hands a bucket's data out and holds it read-only: with the
 *   cluster secret (config peer_auth) it is served only to a node that
 *   signed the request with it (X-Bucketcache-Peer: a proof over the
 *   method, the target, a timestamp and a nonce, accepted once within
 *   30 s; common/bc_peerauth.h), and refused with 403 otherwise, counted
 *   in export_auth_failures.  The answer carries this node's own proof
 *   (X-Bucketcache-Peer-Proof), which the import checks before it stores
 *   anything: a forged import request (whoever holds the admin token
 *   could name any source) can only pull from a node of the cluster.  The
 *   admin token, when the admin port has one, is required as well.
 *
 * HOW
 *   Exports run on the admin (MHD) thread.  A whole bucket streams: MHD asks
 *   for the next block when the socket can take it, and each block is read
 *   from the bucket's table in a step of about 64 KiB of frames under one
 *   hold of the shard lock (bc_cache_bucket_scan), so neither the source's
 *   memory nor its clients' wait on the shard lock grows with the bucket.
 *   The changes since a precopy are few and are encoded at once when their
 *   section starts.  The export's socket gets a send
 *   buffer as large as the stream (up to 4 MiB) and the import's a receive
 *   buffer as large, so a bucket crosses in one write instead of in slices
 *   that each wait for both threads to be scheduled.  Waits (the fence, long
 *   polls) park the request instead of holding the admin thread.  Imports
 *   run on their own threads (at most max_imports), because they wait on the
 *   network; the admin thread only starts them and reports their state.  The
 *   import reads the response as a stream and decodes frames as they arrive:
 *   memory stays bounded by one frame.
 *
 *   Large items: an import asks for them in parts (header
 *   X-Bucketcache-Parts: 1), and the export then sends a value over 64
 *   KiB as HEAD and PARTs of at most 64 KiB (bc_frame.h).  The scan holds
 *   such an item (bc_item_retain) instead of copying it under the
 *   shard lock, and copies one part per step after the lock is let go;
 *   the import allocates the item at its HEAD and fills it part by part,
 *   so a 1 MiB value neither holds a shard lock for its whole copy nor
 *   needs a 1 MiB frame buffer on either side, and the stream moves on in
 *   64 KiB steps like any other.  A source that does not know the header
 *   sends every item whole, which the import reads as before; an import
 *   that does not send it gets every item whole.  Counted as
 *   export_parted / import_parted.
 *
 * BEHAVIOR
 *   A full import (a copy without a usable precopy, or a precopy) first
 *   drops whatever this node holds for B, when the source's HELLO comes: it
 *   does not own B, so anything there is a leftover of an earlier,
 *   abandoned attempt, and add-if-absent must not let such a stale value
 *   shadow the fresh copy.  A failed import drops what it stored, for the
 *   same reason.  A delta applies over the precopy instead: the precopy is
 *   exactly the bucket as the source's tracker started, plus changes that
 *   the delta restates anyway (tap.h), so precopy + delta = the bucket at
 *   the fence.
 *   Items whose key does not hash to B, a HELLO naming another bucket or
 *   epoch, and any malformed, truncated or corrupted frame fail the job
 *   with an error that says so; the node itself carries on.
 *
 *   The cluster agent drops buckets that neither c nor m names for this
 *   group; it asks this module first (bc_node_cluster_set_drop), which
 *   keeps a bucket an import is filling or has filled and whose cutover is
 *   pending (or a usable precopy), as long as its owner is still the
 *   source group.  A precopy whose move was called off is dropped by the
 *   agent's first pass (every 3 s at least) after it turns 30 s old.
 *
 * LOCKING
 *   mu guards the job table (states, counters, slots).  A job thread
 *   takes mu only to publish progress; it never holds it across I/O or
 *   cache calls.  The agent's drop hook drops a bucket while holding mu
 *   (mu, then a shard lock: never the other way round).
 */
#ifndef BC_NODE_MIGRATE_H
#define BC_NODE_MIGRATE_H

#include <stdint.h>

#include "bc_httpd.h"
#include "bc_peerauth.h"
#include "bc_status.h"
#include "engine/cache.h"
#include "cluster/cluster.h"
#include "net/server.h"

typedef struct bc_node_migrate bc_node_migrate_t;

/* What an operator sets (the node config's "migration", --migrate-*:
 * node/config.h), carried as one piece through the admin server to here.
 * 0: the default. */
typedef struct bc_node_migrate_settings {
    uint32_t max_imports;          /* concurrent import jobs; 0 = 48 */
    uint32_t catchup_ms;           /* a finished precopy is caught up this often (catchup.c);
                                    * 0 = 50 */
    uint32_t import_timeout_ms;    /* one import: the wait to be fenced, all retries
                                    * included, and the longest pause in its
                                    * transfer; 0 = 60000 */
} bc_node_migrate_settings_t;

typedef struct bc_node_migrate_config {
    bc_cache_t *cache;             /* borrowed; must outlive the object */
    bc_node_cluster_t *cluster;    /* borrowed; must outlive the object */
    bc_server_t *server;           /* borrowed, may be NULL: exports are then refused */
    bc_httpd_t *httpd;             /* borrowed, may be NULL: the admin server whose parked
                                    * long polls a finished import wakes */
    bc_node_migrate_settings_t settings;
    /* The cluster secret (common/bc_peerauth.h): an export is served only
     * to a request signed with it, an import trusts only a source whose
     * answer proves it (see PEER AUTHENTICATION); NULL: neither.
     * Borrowed. */
    bc_peerauth_t *peer_auth;
} bc_node_migrate_config_t;

/*
 * The migration counters, each defined once:
 *   X(field, JSON name in /stats, metric name in /metrics, metric type, help)
 * bc_node_migrate_stats_t, the "migrate" object of /stats and the metrics
 * are all generated from this table.
 */
#define BC_MIGRATE_STATS(X)                                                                      \
    X(exports, "exports", "migrate_exports_total", "counter",                                    \
      "Buckets exported to a migration destination.")                                            \
    X(export_refusals, "export_refusals", "migrate_export_refusals_total", "counter",            \
      "Export requests refused (not fenced yet, not read-only, ...).")                           \
    X(export_auth_failures, "export_auth_failures", "migrate_export_auth_failures_total",        \
      "counter", "Export requests refused for the cluster secret: no, a wrong or a replayed "    \
      "proof (X-Bucketcache-Peer).")                                                             \
    X(export_items, "export_items", "migrate_export_items_total", "counter",                     \
      "Items (and deleted keys) sent by bucket exports.")                                        \
    X(export_bytes, "export_bytes", "migrate_export_bytes_total", "counter",                     \
      "Frame bytes of bucket exports.")                                                          \
    X(export_parted, "export_parted", "migrate_export_parted_items_total", "counter",            \
      "Items exports sent in parts (values over 64 KiB, copied without the shard lock).")       \
    X(imports_done, "imports_done", "migrate_imports_total", "counter",                          \
      "Bucket imports that completed.")                                                          \
    X(imports_failed, "imports_failed", "migrate_import_failures_total", "counter",              \
      "Bucket imports that failed or were called off.")                                          \
    X(imports_running, "imports_running", "migrate_imports_running", "gauge",                    \
      "Bucket imports in progress.")                                                             \
    X(import_items, "import_items", "migrate_import_items_total", "counter",                     \
      "Items stored (and keys deleted) by bucket imports.")                                      \
    X(import_bytes, "import_bytes", "migrate_import_bytes_total", "counter",                     \
      "Key and value bytes stored by bucket imports.")                                           \
    X(import_parted, "import_parted", "migrate_import_parted_items_total", "counter",            \
      "Items imports received in parts.")                                                        \
    X(precopies, "precopies", "migrate_precopies_total", "counter",                              \
      "Precopies imported (a bucket copied while it stayed writable).")                          \
    X(export_deltas, "export_deltas", "migrate_export_deltas_total", "counter",                  \
      "Final exports that sent only the changes since the precopy.")                             \
    X(import_deltas, "import_deltas", "migrate_import_deltas_total", "counter",                  \
      "Final imports that applied only the changes since the precopy.")                          \
    X(import_delta_items, "import_delta_items", "migrate_import_delta_items_total", "counter",    \
      "Changes (items and deleted keys) the final copies' deltas applied: what crossed in the "  \
      "write pauses of precopied buckets.")                                                      \
    X(delta_fallbacks, "delta_fallbacks", "migrate_delta_fallbacks_total", "counter",            \
      "Final imports that asked for the changes and got the whole bucket (the source's "        \
      "change tracker had ended).")                                                              \
    X(export_catchups, "export_catchups", "migrate_export_catchups_total", "counter",            \
      "Precopies' catch-ups this node served as a source: the changes since the last one.")     \
    X(catchups, "catchups", "migrate_catchups_total", "counter",                                 \
      "Catch-ups applied over finished precopies while they wait for their final copies.")      \
    X(catchup_items, "catchup_items", "migrate_catchup_items_total", "counter",                  \
      "Changes (items and deleted keys) those catch-ups applied.")                               \
    X(catchup_lost, "catchup_lost", "migrate_catchup_lost_total", "counter",                     \
      "Precopies a catch-up could not keep up to date (tracker gone, stream broken): their "     \
      "final copies are full ones unless a refresh makes them precopies again.")                \
    X(precopy_refreshes, "precopy_refreshes", "migrate_precopy_refreshes_total", "counter",      \
      "Precopies made again, while their buckets stay writable, after a catch-up lost their "   \
      "tracker (at most 3 times in a row for one move).")                                        \
    X(taps_active, "taps_active", "migrate_taps", "gauge",                                       \
      "Change trackers on this node's exported buckets.")                                        \
    X(taps_overflowed, "taps_overflowed", "migrate_tap_overflows_total", "counter",              \
      "Change trackers ended because their keys outgrew the limit.")                            \
    X(prefault_bytes, "prefault_bytes", "migrate_prefault_bytes_total", "counter",               \
      "Bytes of never-touched memory the prefault thread faulted in ahead of imports (-L off).") \
    X(prefault_cpu_us, "prefault_cpu_us", "migrate_prefault_cpu_seconds_total", "counter",       \
      "CPU time the prefault thread spent faulting them in: bytes over it is the rate this "     \
      "machine backs fresh memory at, measured where the imports store.")

typedef struct bc_node_migrate_stats {
#define BC__MIGRATE_STAT_FIELD(field, json, metric, type, help) uint64_t field;
    BC_MIGRATE_STATS(BC__MIGRATE_STAT_FIELD)
#undef BC__MIGRATE_STAT_FIELD
} bc_node_migrate_stats_t;

/*
 * Creates the migration endpoints' state.  *out is owned by the caller
 * (bc_node_migrate_destroy).  Errors: BC_EINVAL (no cache or cluster),
 * BC_ENOMEM.
 */
bc_status_t bc_node_migrate_create(const bc_node_migrate_config_t *config,
                                   bc_node_migrate_t **out);

/* Stops every running import (each drops what it stored) and waits for
 * them.  Idempotent; new imports are refused afterwards. */
void bc_node_migrate_shutdown(bc_node_migrate_t *mig);

/* Shuts down and frees.  Call after bc_node_cluster_leave (the agent
 * must not be running: the drop hook is removed here).  NULL is accepted. */
void bc_node_migrate_destroy(bc_node_migrate_t *mig);

/* Handlers for the routes above; admin.c's route table calls them on the
 * admin thread.  Each returns what a bc_httpd handler returns. */
enum MHD_Result bc_node_migrate_handle_export(bc_node_migrate_t *mig, bc_http_req_t *req);
enum MHD_Result bc_node_migrate_handle_import(bc_node_migrate_t *mig, bc_http_req_t *req);

void bc_node_migrate_get_stats(bc_node_migrate_t *mig, bc_node_migrate_stats_t *out);

/* fn(ctx) runs on an import's thread once its items are stored, before
 * the job reports done: replication's wait (repl.h bc_repl_commit_wait),
 * so a bucket reaches the destination group's backups before its
 * cutover; false fails the import.  Call before the admin server starts. */
void bc_node_migrate_set_commit(bc_node_migrate_t *mig, bool (*fn)(void *ctx), void *ctx);

#endif
