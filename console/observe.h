/*
 * observe.h -- what the console sees of the nodes' traffic: per-group and
 * per-bucket statistics, hot keys, replication lag, the warnings an
 * operator must not miss, and a ring of recent samples for the dashboard.
 *
 * HOW
 *   A thread samples the cluster every interval (default 2 s): the view
 *   from ZooKeeper (groups, nodes, tables), then each live node's admin
 *   port -- GET /stats (memory, replication), GET /v1/hotkeys, and on a
 *   group's primary GET /v1/buckets (per-bucket counters).  One second's
 *   timeout per request; a node that does not answer is reported so.
 *   Every console samples (a standby's dashboard works too); the nodes
 *   answer from counters they keep anyway.
 *
 *   Rates come from per-bucket differences between two samples of the
 *   same node, so a bucket that moves or a primary that changes never
 *   produces a negative or doubled rate: the first sample from a new
 *   source only sets the baseline.  The group counters exported in
 *   /metrics (bucketcache_group_commands_total, ...) are the sums of
 *   those differences, kept by this console: they only grow.
 *
 *   "Last minute" figures sum the ring's samples of the last 60 s.
 *
 * BOUNDS
 *   The ring holds history_s / interval samples (default 300 s / 2 s) of
 *   at most BC_OBSERVE_MAX_GROUPS groups with BC_OBSERVE_MAX_BACKUPS
 *   backups each; per bucket a fixed record; hot keys BC_OBSERVE_HOTKEYS
 *   per group.  Nothing grows with traffic.
 *
 * THREADS
 *   One sampling thread; every reader takes the module's mutex, builds its
 *   JSON or metrics from a consistent sample, and releases it.
 */
#ifndef BC_CONSOLE_OBSERVE_H
#define BC_CONSOLE_OBSERVE_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "bc_metrics.h"
#include "bc_status.h"
#include "console.h"

#define BC_OBSERVE_MAX_GROUPS  64u
#define BC_OBSERVE_MAX_BACKUPS 8u
#define BC_OBSERVE_HOTKEYS     20u
#define BC_OBSERVE_MAX_WARNINGS 64u

typedef struct bc_observe bc_observe_t;

typedef struct bc_observe_config {
    uint32_t interval_ms;          /* 0 = 2000 */
    uint32_t history_s;            /* 0 = 300 */
    uint32_t backup_lag_warn_ms;   /* 0 = 5000 */
    uint32_t migration_stuck_ms;   /* 0 = 120000 */
} bc_observe_config_t;

/* Starts the sampling thread.  console is borrowed and must outlive the
 * module.  Errors: BC_ENOMEM. */
bc_status_t bc_observe_start(bc_console_t *console, const bc_observe_config_t *config,
                             bc_observe_t **out);
/* Stops the thread and frees.  NULL is accepted. */
void bc_observe_stop(bc_observe_t *obs);

/* Every reader returns a new cJSON tree the caller frees (NULL: out of
 * memory, or as said). */

/* GET /v1/groups/{gid}/stats; NULL with *found = false for an unknown group. */
cJSON *bc_observe_group_json(bc_observe_t *obs, uint32_t gid, bool *found);
/* Every group's summary (bucketcache status, the dashboard's cards). */
cJSON *bc_observe_groups_json(bc_observe_t *obs);
/* GET /v1/buckets/top: by "ops" (requests/s), "bytes" (held) or "misses"
 * (misses/s), n entries at most. */
cJSON *bc_observe_top_json(bc_observe_t *obs, const char *by, uint32_t n);
/* One bucket's last counters and rates (the API adds owners and the
 * pending move); NULL when out of range. */
cJSON *bc_observe_bucket_json(bc_observe_t *obs, uint32_t bucket);
/* GET /v1/hotkeys: merged per group (gid 0: every group), n per group. */
cJSON *bc_observe_hotkeys_json(bc_observe_t *obs, uint32_t gid, uint32_t n);
/* GET /v1/stats/history: the ring, oldest first, for the charts. */
cJSON *bc_observe_history_json(bc_observe_t *obs);
/* GET /v1/warnings: the warnings of the last sample. */
cJSON *bc_observe_warnings_json(bc_observe_t *obs);

/* Appends the per-group and cluster-wide series to tb. */
void bc_observe_metrics(bc_observe_t *obs, bc_textbuf_t *tb);

#endif
