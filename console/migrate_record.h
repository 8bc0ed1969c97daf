/*
 * migrate_record.h -- the two records a bucket migration keeps in
 * ZooKeeper, and their JSON codec.
 *
 *   migrations/<b>   one bucket move in flight (copying @ E) or waiting to
 *                    retry after a failure (pending): groups, epoch, the
 *                    primaries doing the copy, attempts and the last error
 *   migrations       the parent znode's own data: the controls (paused,
 *                    groups a cancel holds back) and the current run's
 *                    summary (totals, read-only stall samples, last moves)
 *
 * The fields and what each one means are in docs/zookeeper.md
 * ("migrations/<bucket>", "migrations"); what the records go through is
 * migrate.h's state machine.  This module only turns them into JSON and
 * back, and keeps the run summary's rings: no I/O, no locking.
 *
 * Decoding reads what any ZooKeeper client could have written: at most
 * 512 KiB is parsed, every field is type- and range-checked (group ids in
 * 1..BC_TABLE_MAX_GID, times and totals at most 2^53), and a malformed
 * record is an error whose message names the field.
 */
#ifndef BC_CONSOLE_MIGRATE_RECORD_H
#define BC_CONSOLE_MIGRATE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "bc_cluster.h"
#include "bc_table.h"
#include "bc_status.h"

#define BC_MIG_STALL_SAMPLES  4096u    /* stall samples kept per run */
#define BC_MIG_RECENT         32u      /* finished moves listed per run */
#define BC_MIG_MAX_HELD       64u      /* groups a cancel may hold back */
#define BC_MIG_ERROR_MAX      200

typedef enum bc_mig_state {
    BC_MIG_PENDING = 0,            /* waiting to retry after a failure */
    BC_MIG_COPYING = 1,            /* read-only at the source, being copied */
} bc_mig_state_t;

/* migrations/<b>: one bucket move. */
typedef struct bc_mig_record {
    uint32_t bucket;
    bc_mig_state_t state;
    uint32_t from, to;             /* groups */
    uint64_t epoch;                /* copying: the epoch c.readonly[b] was set at */
    char from_node[BC_NODE_NAME_MAX];  /* the primaries when it started */
    char to_node[BC_NODE_NAME_MAX];
    int64_t started_ms;            /* unix ms of the read-only commit */
    uint32_t attempts;             /* failed attempts so far */
    int64_t retry_at_ms;           /* pending: not before this (unix ms) */
    char error[BC_MIG_ERROR_MAX];  /* pending: why the last attempt failed */
    bool cancelled;                /* copying: the rebalance was cancelled meanwhile */
    int32_t version;               /* znode version; -1: no znode yet */
} bc_mig_record_t;

/* One finished move, as the run summary lists it. */
typedef struct bc_mig_done {
    uint32_t bucket, from, to;
    uint64_t items, bytes;
    uint32_t stall_ms;             /* how long b was read-only */
    int64_t finished_ms;
} bc_mig_done_t;

/* The data of the migrations znode: controls and the current run. */
typedef struct bc_mig_control {
    bool paused;                   /* no new copies start */
    uint32_t nheld;
    uint32_t held[BC_MIG_MAX_HELD];    /* groups a cancel keeps out of auto-rebalance */
    int64_t run_started_ms;        /* 0: no run yet */
    int64_t run_finished_ms;       /* 0: running */
    uint64_t moved, items, bytes, failures;
    uint32_t nstalls;              /* samples in stalls (ring once full) */
    uint32_t stall_next;           /* ring position */
    uint32_t stalls[BC_MIG_STALL_SAMPLES];
    uint32_t nrecent;
    bc_mig_done_t recent[BC_MIG_RECENT];   /* newest last */
    int32_t version;               /* znode version; -1: znode missing */
} bc_mig_control_t;

/* ---- migrations/<b> ---- */

/* Returns malloc'd JSON (free()) or NULL on out of memory. */
char *bc_mig_record_encode(const bc_mig_record_t *r);
/* bucket is the znode's name, which the record must agree with.  *out is
 * filled on BC_OK (version -1: the caller knows it).  Errors: BC_EINVAL
 * (malformed; err names the field), BC_ETOOLARGE. */
bc_status_t bc_mig_record_decode(const char *json, size_t len, uint32_t bucket, bc_mig_record_t *out,
                                 char *err, size_t errlen);

/* ---- the migrations znode's data ---- */

/* Defaults: not paused, nothing held, no run, version -1. */
void bc_mig_control_init(bc_mig_control_t *c);
/* Returns malloc'd JSON (free()) or NULL on out of memory. */
char *bc_mig_control_encode(const bc_mig_control_t *c);
/* An empty znode decodes to the defaults.  Errors as bc_mig_record_decode. */
bc_status_t bc_mig_control_decode(const char *json, size_t len, bc_mig_control_t *out, char *err,
                                  size_t errlen);

/* Adds a finished move to the run summary (the oldest stall sample and
 * recent move drop out once the rings are full). */
void bc_mig_control_add_done(bc_mig_control_t *c, const bc_mig_done_t *done);
/* Adds c's recent moves to parent as the "recent" array (the record's
 * encoding and GET /v1/migrations share it).  parent is borrowed. */
void bc_mig_control_recent_json(const bc_mig_control_t *c, cJSON *parent);
/* Stall percentiles over the run's samples (0 when none); p in 0..100. */
uint32_t bc_mig_control_stall_pct(const bc_mig_control_t *c, double p);

/* ---- progress: the one count every report shows ---- */

/*
 * Where the moves stand.  GET /v1/migrations, GET /v1/cluster, the
 * console's metrics, the CLI and the dashboard all show these numbers and
 * nothing else, so they agree (docs/zookeeper.md).
 */
typedef struct bc_mig_progress {
    uint32_t moving;               /* copying records */
    uint32_t pending;              /* planned moves not copying (waiting, or to retry) */
    uint32_t done;                 /* buckets moved in the current run; 0 while the moves
                                    * left wait for a run to start (the last one ended) */
    uint32_t total;                /* done + moving + pending: the run's buckets */
    bool running;                  /* a run is under way (started, not finished) */
} bc_mig_progress_t;

/*
 * Counts the moves of m and d (nbuckets owners each), rec (nbuckets
 * records, NULL: none) and the run summary c into *out.  A copying record
 * counts as moving even if the plan changed under it (it may still cut
 * over).  All borrowed; no I/O.
 */
void bc_mig_progress_count(const uint32_t *m, const uint32_t *d, uint32_t nbuckets,
                           bc_mig_record_t *const *rec, const bc_mig_control_t *c,
                           bc_mig_progress_t *out);

#endif
