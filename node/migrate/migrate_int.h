/*
 * migrate_int.h -- what the files of the node's migration module share and
 * nobody else sees: the module's object, an import job, the parsed query
 * of a request, and the functions one file calls in another.
 *
 *   migrate.c  lifecycle, the counters, what every endpoint shares (query
 *              parameters, the 409 refusal)
 *   export.c   GET /v1/migrate/export: the fence wait, the whole bucket
 *              streamed, the changes since a precopy
 *   import.c   one import job's thread: pull the export from the source
 *              (common/bc_http_client.h, streaming GET), decode, store
 *   jobs.c     POST/GET/DELETE /v1/migrate/import: the job table, starting,
 *              reporting and calling off jobs; the cluster agent's drop hook
 *   catchup.c  the catch-up thread: finished precopies kept up to date
 */
#ifndef BC_NODE_MIGRATE_INT_H
#define BC_NODE_MIGRATE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bc_config.h"
#include "bc_httpd.h"
#include "engine/tap.h"
#include "migrate/migrate.h"

#define MIG_WAIT_MAX_MS         10000u    /* longest long poll of an import's state */
#define MIG_SOCKBUF_MAX         (4u * 1024u * 1024u)  /* export socket buffers */
#define MIG_CONTENT_TYPE        "application/x-bucketcache-frames"
#define MIG_TAP_HEADER          "X-Bucketcache-Tap"
#define MIG_PARTS_HEADER        "X-Bucketcache-Parts"   /* "1": the importer reads HEAD/PART */
#define MIG_PRECOPY_KEEP_MS     30000     /* a finished precopy waits this long for its copy */
#define MIG_UNBATCHED_MAX       8         /* older sources remembered (no buckets=) */
/* Without -L, memory kept faulted in ahead of the imports running (the
 * prefault thread, migrate.c). */
#define MIG_PREFAULT_AHEAD      (16u * 1024u * 1024u)

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
    bool catchup;                  /* precopy: a catch-up of it is in flight (catchup.c);
                                    * its slot is not reused meanwhile */
    uint64_t catchups;             /* precopy: catch-ups applied, and their changes */
    uint64_t catchup_items, catchup_bytes;
    int64_t caught_up_ms;          /* precopy: when it was last brought up to date (mono) */
    uint32_t catchup_every_ms;     /* precopy: its next catch-up this long after that */
    uint32_t refreshes;            /* precopy: made again this many times in a row because
                                    * its tracker was lost (catchup.c) */
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
    bool joinable;                 /* a thread to join before the slot is reused (of a
                                    * batch: its last job holds the thread, the one it
                                    * finishes last) */
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
    uint32_t test_export_delay_ms; /* BC_TEST_EXPORT_DELAY_MS: a source slow to send a fenced
                                    * bucket's catch-up, for tests */
    bc_peerauth_t *peer_auth;      /* the cluster secret, borrowed; NULL: none */
    bool (*commit)(void *ctx);     /* replication wait (bc_node_migrate_set_commit) */
    void *commit_ctx;
    bc_tap_set_t *taps;            /* change trackers of exported buckets (engine/tap.h) */

    /* LOCKING RULE: mu guards jobs[], running, stopping and seq; never
     * held across I/O or pthread_join; the only cache call under it is
     * bc__migrate_drop's bucket drop (mu before a shard lock). */
    pthread_mutex_t mu;
    import_job_t *jobs;
    uint32_t njobs;
    uint32_t running;
    bool stopping;
    uint64_t seq;
    /* Without -L: the thread that faults memory in ahead of the imports
     * while any runs (bc_cache_prefault), so that the import threads
     * store into memory that is ready.  Signalled (under mu) when an
     * import starts and at shutdown. */
    pthread_cond_t prefault_cv;
    pthread_t prefault_thread;
    bool prefault_started;
    /* The catch-up thread (catchup.c): wakes every catchup_ms (catchup_cv,
     * monotonic) to bring finished precopies up to date; a final copy
     * waits on catchup_done_cv for one in flight. */
    pthread_cond_t catchup_cv, catchup_done_cv;
    pthread_t catchup_thread;
    bool catchup_started;
    uint32_t catchup_ms;           /* 0: no catch-ups */
    /* Sources that refused catch-ups (older nodes; under mu). */
    char nocatchup[MIG_UNBATCHED_MAX][BC_ADDR_MAX];
    uint32_t nocatchup_next;

    _Atomic uint64_t exports, export_refusals, export_items, export_bytes, export_auth_failures;
    _Atomic uint64_t imports_done, imports_failed, import_items, import_bytes;
    _Atomic uint64_t precopies, export_deltas, import_deltas, delta_fallbacks;
    _Atomic uint64_t export_catchups, catchups, catchup_items, catchup_lost;   /* catchup.c */
    _Atomic uint64_t precopy_refreshes, import_delta_items;
    _Atomic uint64_t export_parted, import_parted;   /* items in parts (bc_frame.h HEAD) */
    _Atomic uint64_t prefault_bytes, prefault_cpu_us;   /* the prefault thread's work */

    /* Sources that refused a batch (older nodes; the last few, under mu):
     * their buckets are asked for one at a time. */
    char unbatched[MIG_UNBATCHED_MAX][BC_ADDR_MAX];
    uint32_t unbatched_next;

    /* The admin server whose parked long polls a finished job wakes
     * (from the config; guarded by mu: NULL after shutdown). */
    bc_httpd_t *httpd;
};

/* Buckets one request may name (buckets=B1,B2,...: precopies, or copies
 * at one epoch): one stream per (source, destination) pair carries them
 * back to back. */
#define MIG_BATCH_MAX           64u

typedef struct mig_params {
    bool has_bucket, has_epoch, has_source, has_from;
    uint32_t nlist;                /* buckets=: how many (0: bucket= alone) */
    uint32_t list[MIG_BATCH_MAX];  /* buckets=, in the order asked; list[0] is also bucket */
    uint64_t sinces[MIG_BATCH_MAX];   /* export: B:T in buckets=, T for list[i] (0: none) */
    bool has_sinces;
    bool tap;                      /* export: arm a change tracker (a precopy's snapshot) */
    bool precopy;                  /* import: the precopy job */
    bool catchup;                  /* export: a precopy's catch-up (catchup.c): the changes
                                    * since the last one, the bucket still writable */
    uint64_t since;                /* export: only the changes tracker `since` saw */
    uint32_t bucket;
    uint32_t from;
    uint32_t wait_ms;              /* GET import: long poll while running */
    uint64_t epoch;
    char source[BC_ADDR_MAX];
} mig_params_t;

/* migrate.c: parses the query (bucket/epoch/source/...); on error queues a
 * 400 into *result and returns false. */
bool bc__migrate_params_parse(bc_node_migrate_t *mig, bc_http_req_t *req, mig_params_t *p,
                              enum MHD_Result *result);
/* migrate.c: 409 {"error": .., "retry": retry, "epoch": epoch}: retry says
 * whether asking again later can succeed. */
enum MHD_Result bc__migrate_refuse(bc_http_req_t *req, bool retry, uint64_t epoch,
                                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* migrate.c: whether source is one of the n addresses of list (mu held:
 * the lists of sources that refused batches or catch-ups). */
bool bc__migrate_source_listed(const char (*list)[BC_ADDR_MAX], uint32_t n, const char *source);
/* migrate.c: true when this node's group owns bucket by its tables. */
bool bc__migrate_node_owns(bc_node_migrate_t *mig, uint32_t bucket);

/* The jobs one import thread runs over one connection to their source, in
 * order: a single job, or a batch (buckets=) of precopies or of copies at
 * one epoch.  Owned by the thread, which frees it. */
typedef struct import_batch {
    uint32_t n;
    import_job_t *jobs[MIG_BATCH_MAX];
} import_batch_t;

/* import.c: an import thread (arg is an import_batch_t). */
void *bc__migrate_import_main(void *arg);

/* How long a catch-up may stall before it is given up (a final copy may
 * be waiting for it, catchup.c). */
#define MIG_CATCHUP_TIMEOUT_MS  1000

/* What one catch-up of a batch of precopies brought (import.c). */
typedef struct catchup_outcome {
    uint32_t got;                  /* sections that came whole: jobs[0..got) */
    uint64_t items[MIG_BATCH_MAX]; /* of each: changes applied, and their bytes */
    uint64_t bytes[MIG_BATCH_MAX];
    bool gone[MIG_BATCH_MAX];      /* of each: the source's tracker was gone */
    bool taken;                    /* the rest's keys may have left their trackers */
    bool older;                    /* the source does not know catch-ups (400) */
} catchup_outcome_t;

/* import.c: asks batch's source (every job a finished precopy of it,
 * marked catchup under mu) for the changes since each one's last
 * catch-up and applies them over the precopies.  Errors with err set;
 * *out says what came either way. */
bc_status_t bc__migrate_catchup_fetch(import_batch_t *batch, catchup_outcome_t *out, char *err,
                                      size_t errlen);

/* jobs.c: starts a precopy of bucket from `source` (group `from`) again,
 * as the console's POST would, marked as its `refreshes`th remake (mu
 * held; it may be let go and taken again to join a finished thread).
 * True when it started. */
bool bc__migrate_precopy_again(bc_node_migrate_t *mig, uint32_t bucket, uint32_t from,
                               const char *source, uint32_t refreshes);

/* catchup.c: the catch-up thread (arg is the bc_node_migrate_t). */
void *bc__migrate_catchup_main(void *arg);
/* catchup.c: waits (mu held) until no catch-up of the buckets of batch is
 * in flight; after it none starts for them (batch's jobs are the buckets'
 * newest, and a used precopy is not caught up). */
void bc__migrate_catchup_wait(bc_node_migrate_t *mig, const import_batch_t *batch);

/* jobs.c: the cluster agent's drop hook (cluster.h, bc_node_cluster_set_drop). */
int64_t bc__migrate_drop(void *ctx, uint32_t bucket);

#endif
