/*
 * cluster.h -- a node's membership in a bucketcache cluster.
 *
 * WHAT IT DOES
 *   With --zk/--cluster/--group, the node registers itself in ZooKeeper
 *   (an ephemeral sequential znode under groups/<gid>/nodes carrying its
 *   addresses and memory), follows the c and m tables and its group's
 *   primary record, and answers one question on the request path:
 *   "may this node serve this bucket, and if not, why?"  Without ZooKeeper
 *   there is no bc_node_cluster_t and every bucket is served (standalone).
 *
 * HOW
 *   The bucket count never changes in a cluster's life, so the routing state
 *   is a fixed array of atomics: one 64-bit word per bucket packing the owner
 *   group and the read-only flag, plus an atomic epoch and an atomic "I am
 *   primary" flag.  The request path does one relaxed load per key and takes
 *   no lock.  A single agent thread does all ZooKeeper I/O: watches only set
 *   a flag and wake it (ZooKeeper watch callbacks must not block), and it
 *   also re-reads everything every few seconds as a safety net.
 *
 *   When the tables say a bucket belongs to neither this group's present
 *   (c) nor its data (m), the agent drops whatever this node still holds for
 *   it, so data that left can never be served stale if the bucket returns.
 *
 *   On a new ZooKeeper session (the old one expired) the agent registers
 *   again and re-arms its watches.  A registration left by a crashed earlier
 *   process with the same data address is removed, not waited out.
 *
 *   The agent also follows every group's primary record (groups/<gid>/
 *   primary), resolving each data address to a socket address in the agent
 *   thread (name resolution may block; workers never resolve).  That table
 *   is what forwarding (forward.h) connects to.  Workers look it up per
 *   request without a lock: each keeps a private copy (bc_node_primaries_t)
 *   and compares one atomic generation number against it; only after a
 *   change -- a failover, a group coming or going -- does a worker take
 *   the table's mutex to copy it again.
 */
#ifndef BC_NODE_CLUSTER_H
#define BC_NODE_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bc_cluster.h"
#include "bc_status.h"
#include "engine/cache.h"

typedef struct bc_node_cluster bc_node_cluster_t;

typedef struct bc_node_cluster_config {
    const char *zk_hosts;          /* copied */
    const char *cluster;           /* copied */
    uint32_t gid;                  /* >= 1 */
    int session_timeout_ms;
    uint64_t memory;               /* bytes */
    bool no_write_fencing;         /* accept writes without a lease (see FENCING) */
} bc_node_cluster_config_t;

typedef enum bc_route {
    BC_ROUTE_SERVE,                /* owned here, this node is primary */
    BC_ROUTE_MOVED,                /* another group owns it */
    BC_ROUTE_NO_OWNER,             /* no group owns it (its group is down) */
    BC_ROUTE_READONLY,             /* owned here but migrating: reads only */
    BC_ROUTE_NOT_PRIMARY,          /* owned here but this node is a backup */
    BC_ROUTE_NOT_IN_SYNC,          /* owned here, primary, but too few backups in
                                    * sync to acknowledge a write (repl.h) */
} bc_route_t;

/*
 * Reads the cluster's bucket count with a short-lived session (no thread
 * survives the call, so a process may fork afterwards).  Errors: as
 * bc_node_cluster_join.
 */
bc_status_t bc_node_cluster_probe(const char *zk_hosts, const char *cluster, int timeout_ms,
                                  uint32_t *nbuckets);

/*
 * Connects to ZooKeeper and reads the cluster's config, so the caller can
 * size its cache with *nbuckets.  Does not register yet.  *out is owned by
 * the caller (bc_node_cluster_leave, then bc_node_cluster_free).  Errors: BC_EINVAL (bad config),
 * BC_ETIMEOUT (ZooKeeper unreachable), BC_ENOTFOUND (no such cluster: run
 * `bucketcache cluster create` first), BC_EINVAL (malformed cluster
 * config; logged), BC_ENOMEM.
 */
bc_status_t bc_node_cluster_join(const bc_node_cluster_config_t *config, uint32_t *nbuckets,
                                 bc_node_cluster_t **out);

/*
 * Registers the node with its advertised addresses ("host:port"; admin may
 * be "", both copied), reads the tables and starts the agent thread.
 * cache is borrowed (for dropping buckets that left) and must outlive the
 * cluster object.  Errors: BC_EINVAL, BC_EAGAIN/BC_EZK (ZooKeeper),
 * BC_ENOMEM.
 */
bc_status_t bc_node_cluster_start(bc_node_cluster_t *cl, bc_cache_t *cache, const char *data_addr,
                                  const char *admin_addr);

/*
 * Stops the agent and closes the session: the registration vanishes at
 * once.  The routing state stays readable (frozen) so workers still
 * running may keep calling bc_node_cluster_route.  Idempotent; NULL is
 * accepted.
 */
void bc_node_cluster_leave(bc_node_cluster_t *cl);
/* Frees cl (after bc_node_cluster_leave, once no thread routes through it).
 * NULL is accepted. */
void bc_node_cluster_free(bc_node_cluster_t *cl);

/*
 * The routing decision for one key's bucket.  owner and epoch (may be NULL)
 * receive the owning group and the table epoch.  cl == NULL means
 * standalone: always BC_ROUTE_SERVE.  Lock-free; any thread.
 */
bc_route_t bc_node_cluster_route(const bc_node_cluster_t *cl, uint32_t bucket, bool write,
                                 uint32_t *owner, uint64_t *epoch);

/*
 * Wakes the agent to read the tables now rather than when its ZooKeeper
 * watch fires (a migration export waiting to be fenced at an epoch this
 * node has not seen yet).  Any thread; never blocks.  NULL is accepted.
 */
void bc_node_cluster_refresh_now(bc_node_cluster_t *cl);

/* The bounds (ms) of the write-pause histogram (bc_node_cluster_info_t). */
#define BC_NODE_PAUSE_NBOUNDS 21
extern const uint32_t bc_node_pause_bounds_ms[BC_NODE_PAUSE_NBOUNDS];

/* Facts for stats and the admin API. */
typedef struct bc_node_cluster_info {
    uint32_t gid;
    bool primary;
    bool connected;
    uint64_t epoch;
    uint32_t owned_buckets;        /* c entries naming this group */
    char node_name[32];            /* this node's znode name, "" if unregistered */
    uint64_t registrations;        /* times registered (1 + new sessions) */
    uint64_t buckets_dropped;      /* buckets whose data left and was freed */
    bool writable;                 /* primary, replication ready, lease valid */
    int64_t lease_ms;              /* write lease left (ms; 0 = lapsed) */
    uint64_t fenced_writes;        /* writes refused because the lease lapsed */
    bool in_sync_short;            /* writes refused: too few backups in sync */
    uint64_t in_sync_refusals;     /* writes refused so */
    uint64_t self_promotions;      /* times this node promoted itself (PROMOTION) */
    /* Write pauses of this node's buckets while it was their primary: a
     * migration's, from the read-only bit (the console's table or the
     * export's local fence) to writes going on -- at the new owner once the
     * tables say so, or here when the move was called off.  What a writer
     * of the bucket waits at most (writes during it wait, proto_text.h). */
    uint64_t write_pauses;
    uint64_t write_pause_sum_us, write_pause_max_us;
    uint64_t write_pause_hist[BC_NODE_PAUSE_NBOUNDS + 1];   /* <= bound; the last: more */
} bc_node_cluster_info_t;
void bc_node_cluster_get_info(bc_node_cluster_t *cl, bc_node_cluster_info_t *out);

/*
 * How the agent drops a bucket that left (neither c nor m names this
 * group): fn decides and drops in one step, so it can keep a bucket an
 * import is filling (migrate.h) without racing the import's start.  fn
 * returns the items dropped, or -1 when it kept the bucket; it runs on
 * the agent thread.  NULL (the default) always drops.  Call before
 * bc_node_cluster_start.
 */
typedef int64_t (*bc_node_cluster_drop_fn)(void *ctx, uint32_t bucket);
void bc_node_cluster_set_drop(bc_node_cluster_t *cl, bc_node_cluster_drop_fn fn, void *ctx);

/* ---- the role and write fencing (see FENCING in cluster.c) ---- */

/* True when this node is its group's primary now.  Any thread. */
bool bc_node_cluster_is_primary(const bc_node_cluster_t *cl);
/* True when a write may be applied as primary now: primary, the write
 * gate open (when one is used) and the ZooKeeper write lease valid.
 * cl == NULL (standalone): true.  Lock-free; any thread. */
bool bc_node_cluster_may_write(const bc_node_cluster_t *cl);
/* Makes writes wait for bc_node_cluster_open_writes after every change to
 * primary (replication uses it to record every write from the first).
 * Call before bc_node_cluster_start. */
void bc_node_cluster_use_write_gate(bc_node_cluster_t *cl);
/* Opens the gate; false (and it stays closed) when the node is no longer
 * primary.  The gate closes by itself whenever the role is lost. */
bool bc_node_cluster_open_writes(bc_node_cluster_t *cl);
void bc_node_cluster_close_writes(bc_node_cluster_t *cl);
/* fn(ctx) is called after each change of role, on the agent or ZooKeeper
 * thread: it must only wake someone (no blocking, no ZooKeeper calls).
 * Up to BC_NODE_CLUSTER_ROLE_HOOKS hooks, called in the order set; false
 * when there is no room.  Call before bc_node_cluster_start. */
#define BC_NODE_CLUSTER_ROLE_HOOKS 4
bool bc_node_cluster_set_role_hook(bc_node_cluster_t *cl, void (*fn)(void *ctx), void *ctx);
/* This node's registration name ("n-0000000042") into buf (at least
 * BC_NODE_NAME_MAX bytes); "" while unregistered.  Any thread. */
void bc_node_cluster_node_name(bc_node_cluster_t *cl, char *buf, size_t len);
uint32_t bc_node_cluster_gid(const bc_node_cluster_t *cl);
/* This group's settings from groups/<gid>/config (bc_cluster.h); -1 for
 * each one unset.  Lock-free; any thread. */
void bc_node_cluster_group_settings(const bc_node_cluster_t *cl, int *repl_mode,
                                    int64_t *sync_timeout_ms, int64_t *max_lag_mb);

/* ---- the in-sync set (groups/<gid>/isr; repl.h, THE IN-SYNC SET) ---- */

/*
 * The primary term this node holds: the primary record of its group names
 * it; *epoch receives the record's epoch.  False when the record names
 * another node, or none.  Any thread.
 */
bool bc_node_cluster_term(bc_node_cluster_t *cl, uint64_t *epoch);
/*
 * Reads the group's in-sync record; *version receives its znode version.
 * Blocks for a ZooKeeper round trip: never on a worker.  Errors:
 * BC_ENOTFOUND (none), BC_EINVAL (malformed; logged), ZooKeeper errors.
 */
bc_status_t bc_node_cluster_isr_read(bc_node_cluster_t *cl, bc_cluster_isr_t *out,
                                     int32_t *version);
/*
 * Writes rec as the group's in-sync record, in one transaction that
 * checks the znode is still at *version (-1: creates it) and this node's
 * term is the one it read (the primary record's version), and -- when
 * add is non-NULL -- that add is a live registration of the group (a
 * member is only ever added while registered).  On BC_OK *version is the
 * new version.  Blocks for a ZooKeeper round trip: never on a worker.
 * Errors: BC_ESTALE / BC_ENOTFOUND / BC_EEXISTS (the record, the term or
 * `add` changed: read again), BC_EAGAIN (no connection: the write may or
 * may not have been applied; or this node's term is not the record's as
 * the agent last read it: nothing was sent), other ZooKeeper errors.
 */
bc_status_t bc_node_cluster_isr_write(bc_node_cluster_t *cl, const bc_cluster_isr_t *rec,
                                      int32_t *version, const char *add);
/*
 * Replication says whether a write would find fewer backups in sync than
 * the group's min_in_sync: while short, bc_node_cluster_route answers
 * BC_ROUTE_NOT_IN_SYNC to writes (counted).  Any thread, lock-free.
 */
void bc_node_cluster_set_in_sync_short(bc_node_cluster_t *cl, bool short_of_backups);
/* The group's min_in_sync setting (-1 unset; bc_cluster_group_min_in_sync). */
int64_t bc_node_cluster_group_min_in_sync(const bc_node_cluster_t *cl);

/*
 * What a backup's own promotion needs to know of replication (PROMOTION in
 * promote.c): fn(ctx, &offset) returns whether this node's data is
 * complete (not mid-snapshot) and its applied offset.  Called on the
 * agent thread.  NULL (the default): this node never promotes itself.
 * Call before bc_node_cluster_start.
 */
typedef bool (*bc_node_cluster_repl_probe_fn)(void *ctx, uint64_t *offset);
void bc_node_cluster_set_repl_probe(bc_node_cluster_t *cl, bc_node_cluster_repl_probe_fn fn,
                                    void *ctx);

/* ---- local migration fences (see BEHAVIOR at bc_node_cluster_fence) ---- */

/*
 * Makes `bucket` read-only here now, ahead of the tables, because the
 * console made it read-only at `epoch` (an export request says so).
 * *gen receives the routing generation to wait for: once every worker
 * has started a loop iteration at a generation >= it (bc_server_passed),
 * no write to the bucket is in flight.  false:
 * not applicable (the tables already reached `epoch` -- they decide --,
 * the epoch is implausibly far ahead, or the bucket is not this group's).
 */
bool bc_node_cluster_fence(bc_node_cluster_t *cl, uint32_t bucket, uint64_t epoch, uint64_t *gen);
/*
 * The routing generation: bumped after every change of the routes (a table
 * published, a local fence set).  Workers note it at the top of each loop;
 * read after seeing a table epoch, it is at least the generation that
 * published that table.  Lock-free; any thread.
 */
uint64_t bc_node_cluster_route_gen(const bc_node_cluster_t *cl);
/*
 * fn(ctx) is called each time a table of a new epoch is put in force
 * here, on the cluster agent's thread, after the routes changed: net/server.c wakes its workers with it, so that a
 * write waiting out a migration pause goes on at once instead of at its
 * next timed try.  fn must be quick and must not call into the cluster.
 * NULL unsets; once this returns, no call of the previous fn is running.
 */
void bc_node_cluster_set_on_routes(bc_node_cluster_t *cl, void (*fn)(void *ctx), void *ctx);

/* ---- every group's primary (for forwarding) ---- */

/* One group's primary, as its primary record advertises it. */
typedef struct bc_node_primary {
    uint32_t gid;
    bool self;                     /* the record names this very node */
    socklen_t salen;               /* 0: the address did not resolve */
    struct sockaddr_storage sa;    /* the data address, resolved */
    char addr[BC_ADDR_MAX];        /* the data address as advertised */
} bc_node_primary_t;

/* A caller-owned copy of the table, sorted by gid. */
typedef struct bc_node_primaries {
    uint64_t gen;                  /* generation copied; 0 = never */
    uint32_t count;
    uint32_t cap;
    bc_node_primary_t *v;
} bc_node_primaries_t;

/* An empty view (allocates nothing). */
void bc_node_primaries_init(bc_node_primaries_t *view);
/* Frees the view's memory; it may be initialised again. */
void bc_node_primaries_free(bc_node_primaries_t *view);
/* The entry of group gid in the view, or NULL.  Borrowed from the view. */
const bc_node_primary_t *bc_node_primaries_find(const bc_node_primaries_t *view, uint32_t gid);

/*
 * Brings *view (owned by the caller, one per thread) up to date: one
 * atomic load when nothing changed; after a change, a copy under the
 * table's mutex (held for a memcpy only).  Returns true when the view
 * changed.  On out of memory the view keeps its previous content (and is
 * retried next call).  cl == NULL leaves the view empty.
 */
bool bc_node_cluster_primaries_sync(bc_node_cluster_t *cl, bc_node_primaries_t *view);

/*
 * Formats the reply line for a request this node will not serve (CRLF
 * included, NUL-terminated) into buf; returns its length, 0 when route is
 * BC_ROUTE_SERVE or len is too small.  owner is the owning group (MOVED)
 * or this node's group (NOT_PRIMARY).  The line is common/bc_wire.h's
 * refusal of that kind ("SERVER_ERROR MOVED <bucket> <owner-gid> <epoch>"
 * and friends): memcached clients see a SERVER_ERROR, libbucketcache
 * parses it and refreshes its table.
 */
int bc_node_cluster_format_refusal(bc_route_t route, uint32_t bucket, uint32_t owner,
                                   uint64_t epoch, char *buf, size_t len);

#endif
