/*
 * console.h -- bucketcache-console's coordinator: leader election, and the
 * reconcile loop the leader runs.
 *
 * ELECTION
 *   Every console creates an ephemeral sequential znode under
 *   console/election carrying its admin address.  The lowest sequence is
 *   the active console; every other watches only its predecessor (no herd
 *   effect) and re-checks when it goes.  A standby therefore takes over
 *   within the dead leader's session timeout plus one reconcile round.
 *
 * FENCING
 *   Every write the leader makes is one ZooKeeper transaction that also
 *   checks its own election znode still exists, and compares the versions
 *   of everything it read.  A leader that was paused or cut off and lost
 *   its session cannot write at all; two consoles can never both win.  One
 *   cut off whose session has not expired yet (a zombie) still writes only
 *   what agrees with the versions it read: what a backup wrote meanwhile
 *   (its own promotion, node/cluster/promote.c) makes its transaction fail.
 *
 * FAILOVER
 *   Only a member of the dead primary's in-sync record is promoted
 *   (reconcile.h, "Primaries"); a group with none alive waits, logged once,
 *   for its old primary or an operator's unclean failover
 *   (bc_console_failover).  A backup does not need the console to be
 *   promoted: it promotes itself when no console acted within a short
 *   grace, so a failover never waits for a dead console's session.
 *
 * LOOP (one thread; ZooKeeper watches only wake it)
 *     elect -> if leader: load view + migrations -> take copy reports ->
 *              reconcile -> write (CAS) -> hand copies to the pool -> wait
 *   and every second anyway, so time-based rules (orphan grace, migration
 *   retries) fire.
 *
 * CACHED ROUNDS
 *   The state a round read and wrote is kept.  A round that no watch or
 *   session event preceded decides on it without reading ZooKeeper (only
 *   the active console writes the tables, migrations and departure
 *   records; node membership and the primary and in-sync records, which
 *   the nodes write too, are watched; and every write is a
 *   compare-and-set: a change made behind our back fails the transaction,
 *   and the round after reads everything).  The state is read again at least every reconcile
 *   interval while no copy is in flight, and every 10 s while copies are:
 *   a full load is many round trips, and copy reports would wait for it.
 *
 * MIGRATIONS (migrate.h)
 *   The copies run on a pool of `migrations_parallel` threads; a finished
 *   copy posts a report and wakes the loop, which decides (cutover or
 *   abort) in its next round.  The loop never waits for a copy.  After
 *   every committed round the loop makes sure each bucket the records say
 *   is copying has a job in the pool -- which is how a console that just
 *   took over resumes the copies its predecessor started.
 *
 *   With precopy on, as many more threads precopy the buckets reconcile
 *   wants next; a precopy report (ok or failed) wakes the loop too and
 *   marks its bucket ready, in memory only, for 20 s or until its copy
 *   starts or its move is no longer planned.  A console that stops
 *   leading forgets it all.
 */
#ifndef BC_CONSOLE_H
#define BC_CONSOLE_H

#include <stdbool.h>
#include <stdint.h>

#include "bc_status.h"
#include "bc_zk.h"
#include "reconcile.h"
#include "view.h"

typedef struct bc_console bc_console_t;

#define BC_CONSOLE_STALL_NBOUNDS 8
/* Upper bounds (ms) of the stall histogram's buckets. */
extern const uint32_t bc_console_stall_bounds_ms[BC_CONSOLE_STALL_NBOUNDS];
/* Upper bounds (ms) of the histogram of the console's ZooKeeper
 * transactions. */
#define BC_CONSOLE_COMMIT_NBOUNDS 15
extern const uint32_t bc_console_commit_bounds_ms[BC_CONSOLE_COMMIT_NBOUNDS];

typedef struct bc_console_config {
    const char *zk_hosts;          /* copied */
    const char *cluster;           /* copied */
    int session_timeout_ms;
    const char *admin_addr;        /* advertised "host:port"; copied */
    int64_t orphan_grace_ms;       /* < 0: orphaned buckets wait for their group */
    uint32_t reconcile_interval_ms;
    uint32_t migrations_parallel;  /* buckets copying at once; 0 = migrations off */
    uint32_t migration_timeout_ms; /* one copy without progress; 0 = 30000 */
    bool precopy;                  /* precopy buckets while writable before their copy */
    uint32_t precopy_ahead;        /* buckets precopied ahead per copy slot; 0 = the
                                    * default (BC_MIG_PRECOPY_AHEAD) */
} bc_console_config_t;

typedef struct bc_console_stats {
    bool leader;
    bool connected;
    uint64_t elections_won;
    uint64_t reconciles;
    uint64_t writes;               /* transactions committed */
    uint64_t write_conflicts;      /* transactions lost to a concurrent change */
    uint64_t rebalances;
    uint64_t epoch;                /* of the last view seen */
    uint32_t pending_moves;
    uint32_t live_groups;
    /* Migrations: counters of this process while it led; the run summary
     * as last read from ZooKeeper. */
    uint32_t migrations_parallel;
    uint64_t mig_started, mig_cutovers, mig_aborted, mig_rejected;
    uint64_t mig_bytes, mig_items;
    uint32_t mig_copying;
    bool mig_paused;
    /* Precopy: on or off; precopies queued or running, and buckets
     * precopied whose copy has not started; counters while leading. */
    bool precopy;
    uint32_t mig_precopying, mig_precopied;
    uint64_t precopies_done, precopies_failed, precopy_bytes;
    uint64_t run_moved, run_bytes, run_failures;
    /* Destinations: backoffs begun (a copy or precopy to them failed), the
     * starts and precopies the last round held back (a destination backing
     * off, or a group whose primary's registration is gone), failed
     * precopies not followed by a read-only copy (the destination did not
     * answer), and the destinations backing off now. */
    uint64_t mig_dest_backoffs, precopies_unreachable;
    uint32_t mig_held_back, dests_backing_off;
    /* Failover: groups whose primary is gone with no in-sync member alive
     * (they wait), and unclean failovers done by this console. */
    uint32_t groups_waiting;
    uint64_t unclean_failovers;
    uint32_t stall_count, stall_p50_ms, stall_p99_ms, stall_max_ms;
    uint32_t nbuckets;
    char election_node[40];        /* our election znode name, "" before joining */
    /* Read-only stalls of the moves this process cut over, cumulative (a
     * Prometheus histogram never goes down): stall_hist[i] counts those up
     * to bc_console_stall_bounds_ms[i], the last slot those above. */
    uint64_t stall_hist[BC_CONSOLE_STALL_NBOUNDS + 1];
    uint64_t stall_sum_ms;
    /* This process's ZooKeeper transactions (one per round that writes:
     * the cutovers, aborts and starts it decided), committed or refused,
     * by how long each took: every cutover's write pause holds one
     * (docs/zookeeper.md, "where the time of a move goes").  Cumulative;
     * commit_hist as stall_hist, over bc_console_commit_bounds_ms. */
    uint64_t commit_hist[BC_CONSOLE_COMMIT_NBOUNDS + 1];
    uint64_t commits, commit_sum_us, commit_max_us;
} bc_console_stats_t;

/*
 * Connects, reads the cluster config and starts the loop.  *out is owned by
 * the caller (bc_console_stop).  Errors: BC_EINVAL, BC_ETIMEOUT (ZooKeeper
 * unreachable), BC_ENOTFOUND (no such cluster), BC_ENOMEM.
 */
bc_status_t bc_console_start(const bc_console_config_t *config, bc_console_t **out);
/* Leaves the election (a standby takes over at once) and frees. */
void bc_console_stop(bc_console_t *console);

void bc_console_get_stats(bc_console_t *console, bc_console_stats_t *out);
bc_zk_t *bc_console_zk(bc_console_t *console);
const char *bc_console_cluster(bc_console_t *console);
uint32_t bc_console_nbuckets(bc_console_t *console);

/*
 * The admin address of the active console ("" when none), into buf.
 * Errors: ZooKeeper errors.
 */
bc_status_t bc_console_leader_addr(bc_console_t *console, char *buf, size_t len);

/*
 * Computes what a rebalance would do now.  dry_run: nothing is written.
 * Otherwise (leader only) the result is committed.  *out must be freed with
 * bc_reconcile_free; *view (may be NULL) receives the view it was computed
 * from (bc_view_free).  Errors: BC_EBUSY (not the leader, for a real run),
 * BC_ESTALE (lost a race; retry), ZooKeeper errors.
 */
bc_status_t bc_console_rebalance(bc_console_t *console, bool dry_run, bc_reconcile_output_t *out,
                                 bc_view_t *view);

typedef enum bc_console_mig_op {
    BC_CONSOLE_MIG_PAUSE,          /* no new copies start (running ones finish) */
    BC_CONSOLE_MIG_RESUME,
    BC_CONSOLE_MIG_CANCEL,         /* cancel the rebalance: moves not started never happen */
} bc_console_mig_op_t;

/*
 * Applies op in one reconcile round (leader only), persisted in ZooKeeper.
 * summary (may be NULL, len bytes) receives what the round did.
 * Errors: BC_EBUSY (not the leader), BC_ESTALE (lost a race; retry),
 * ZooKeeper errors.
 */
bc_status_t bc_console_migrations(bc_console_t *console, bc_console_mig_op_t op, char *summary,
                                  size_t len);

/*
 * An operator's unclean failover of group gid (leader only): when its
 * primary is gone and no member of its in-sync set is alive, promotes its
 * best live node anyway, in one reconcile round.  *report says what was
 * done and what may be lost (reconcile.h); report->error why not.
 * Errors: BC_EBUSY (not the leader), BC_EINVAL (nothing to do: report
 * says why), BC_ESTALE (lost a race; retry), ZooKeeper errors.
 */
bc_status_t bc_console_failover(bc_console_t *console, uint32_t gid, bc_reconcile_failover_t *report,
                                char *summary, size_t len);

#endif
