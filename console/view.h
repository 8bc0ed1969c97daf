/*
 * view.h -- one consistent-enough snapshot of a cluster as ZooKeeper holds
 * it: the tables with their znode versions, and every group with its live
 * nodes, primary record and departure record.
 *
 * Loaded with many reads, so not atomic; that is fine because every write
 * the console makes from a view is a compare-and-set on the versions read
 * here: if anything moved in between, the write fails and the console
 * reloads.
 */
#ifndef BC_CONSOLE_VIEW_H
#define BC_CONSOLE_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_cluster.h"
#include "bc_status.h"
#include "bc_table.h"
#include "bc_zk.h"

/* Written into groups/<gid> when a group goes down: what it owned, when. */
typedef struct bc_view_departure {
    bool present;
    int64_t departed_at_ms;        /* unix ms */
    uint32_t nbuckets;             /* entries in buckets[] */
    uint32_t *buckets;             /* the m entries it owned (malloc'd) */
} bc_view_departure_t;

typedef struct bc_view_group {
    uint32_t gid;
    size_t nnodes;
    bc_cluster_node_info_t *nodes; /* live registrations, by name */
    bool has_primary;
    bc_cluster_primary_info_t primary;
    int32_t primary_version;
    /* groups/<gid>/isr (bc_cluster.h): isr_version -1 when there is none;
     * has_isr only when it is well-formed. */
    bool has_isr;
    bc_cluster_isr_t isr;
    int32_t isr_version;
    bc_view_departure_t departure;
    int32_t group_version;         /* version of groups/<gid> */
} bc_view_group_t;

typedef struct bc_view {
    uint32_t nbuckets;
    bc_table_t c, m, d;
    int32_t c_version, m_version, d_version;
    size_t ngroups;
    bc_view_group_t *groups;       /* ascending gid */
} bc_view_t;

/*
 * Loads the view.  watch (may be NULL) is armed on groups/, on every
 * group's nodes/ and on its primary and in-sync records (a node writes
 * those too: its in-sync set, its own promotion), so changes wake the
 * caller.  *view is
 * initialised on BC_OK only (bc_view_free).  Errors: ZooKeeper errors,
 * BC_EINVAL (a malformed table; err says which), BC_ENOMEM.  Malformed node
 * or group records are skipped with a warning, never trusted.
 */
bc_status_t bc_view_load(bc_zk_t *zk, const char *cluster, uint32_t nbuckets, bc_zk_watch_fn watch,
                         void *watch_ctx, bc_view_t *view, char *err, size_t errlen);
void bc_view_free(bc_view_t *view);

/*
 * BEHAVIOR: registrations carry no live replication offset (rewriting a
 * znode on every write would load ZooKeeper with the write traffic), so
 * when a group needs a new primary -- no record, or the record names a
 * node that is gone -- this asks each live node of that group for its
 * offset (GET /v1/repl on its admin port, timeout_ms each) and stores it
 * in the node's info, so the reconcile picks the backup with the most
 * data.  A node that does not answer, or is in the middle of a full
 * resync (its data is partial), counts as offset 0 and not synced.
 * Groups whose primary is alive are not asked.
 */
void bc_view_fill_offsets(bc_view_t *view, int timeout_ms);

/* The group with that id, or NULL. */
bc_view_group_t *bc_view_group(bc_view_t *view, uint32_t gid);

/* The memory a group brings to the planner: what its primary declares
 * (its first node's while none is chosen). */
uint64_t bc_view_group_memory(const bc_view_group_t *g);

/* Departure record codec (exposed for tests).  Encode returns malloc'd
 * JSON or NULL; decode of an empty or "{}" record gives present = false. */
char *bc_view_departure_encode(const bc_view_departure_t *dep);
bc_status_t bc_view_departure_decode(const char *json, size_t len, uint32_t nbuckets,
                                     bc_view_departure_t *out);
void bc_view_departure_free(bc_view_departure_t *dep);

#endif
