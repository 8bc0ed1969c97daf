/*
 * bc_cluster.h -- a cluster's ZooKeeper layout (docs/zookeeper.md) in one
 * place: path names, the cluster config record, creation, and reading the
 * tables.  The CLI, the console and the nodes all go through here.
 */
#ifndef BC_CLUSTER_H
#define BC_CLUSTER_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "bc_http_client.h"
#include "bc_repl_mode.h"
#include "bc_status.h"
#include "bc_table.h"
#include "bc_zk.h"

#define BC_CLUSTER_ROOT      "/bucketcache"
#define BC_CLUSTER_NAME_MAX  64
#define BC_CLUSTER_PATH_MAX  256

typedef struct bc_cluster_config {
    uint32_t nbuckets;
    char hash[32];             /* "murmur3_32/seed0" */
    int64_t created_at;        /* unix seconds */
} bc_cluster_config_t;

/* 1 when name is 1..64 of [A-Za-z0-9_.-] and not "." or "..". */
int bc_cluster_name_valid(const char *name);

/*
 * Writes "/bucketcache/<cluster>" followed by suffix (e.g. "/tables/c",
 * or "" for the root) into buf.  Errors: BC_EINVAL (bad name), BC_ETOOLARGE.
 */
bc_status_t bc_cluster_path(char *buf, size_t len, const char *cluster, const char *suffix);

/*
 * Creates the whole layout atomically (one ZooKeeper transaction): config,
 * groups/, tables/{c,m,d} (epoch 0, every bucket unowned), console/election,
 * migrations/.  Errors: BC_EEXISTS (the cluster exists already), BC_EINVAL
 * (bad name or nbuckets outside 1..BC_MAX_NBUCKETS), BC_EAGAIN/BC_EZK.
 */
bc_status_t bc_cluster_create(bc_zk_t *zk, const char *cluster, uint32_t nbuckets);
/* The same with every znode of the cluster given acl (NULL: as above);
 * /bucketcache itself, shared by clusters, is created open if missing. */
bc_status_t bc_cluster_create_acl(bc_zk_t *zk, const char *cluster, uint32_t nbuckets,
                                  const bc_zk_acl_t *acl);

/*
 * Reads and validates the config record.  Errors: BC_ENOTFOUND (no such
 * cluster), BC_EINVAL (malformed record; err says which field), ZooKeeper
 * errors.
 */
bc_status_t bc_cluster_read_config(bc_zk_t *zk, const char *cluster, bc_cluster_config_t *out,
                                   char *err, size_t errlen);

/*
 * Reads table `name` ('c', 'm' or 'd'), checked against the cluster's
 * nbuckets.  *out is initialised on BC_OK (bc_table_free).  version (may be
 * NULL) receives the znode version for a later compare-and-set; watch (may
 * be NULL) arms a one-shot change watch.  Errors: bc_table_decode's and
 * bc_zk_get's.
 */
bc_status_t bc_cluster_read_table(bc_zk_t *zk, const char *cluster, char name, uint32_t nbuckets,
                                  bc_table_t *out, int32_t *version, bc_zk_watch_fn watch,
                                  void *watch_ctx, char *err, size_t errlen);

/* ---- group membership records ---- */

#define BC_NODE_NAME_MAX 32          /* "n-0000000042" */
#define BC_CLUSTER_INCARNATION_MAX 17  /* 16 hex digits */
#define BC_ADDR_MAX      280         /* host:port, IPv6 bracketed */
#define BC_GROUP_MAX_GID 0x7fffffffu

/* What a node writes into its ephemeral groups/<gid>/nodes/n-<seq> znode. */
typedef struct bc_cluster_node_info {
    char name[BC_NODE_NAME_MAX];     /* the znode name; not part of the JSON */
    char data_addr[BC_ADDR_MAX];     /* memcached protocol, "host:port" */
    char admin_addr[BC_ADDR_MAX];    /* admin HTTP, "host:port" or "" */
    uint64_t memory;                 /* bytes of cache memory */
    uint64_t offset;                 /* replication offset applied: not in the record;
                                      * the console fills it in from the node's
                                      * /v1/repl when it picks a new primary */
    bool synced;                     /* its data is complete: not in the record either,
                                      * filled in with offset */
    bool offset_known;               /* offset and synced were read from the node */
    int64_t pid;
    /* The process: random, drawn when it starts, the same in every
     * registration it makes (a new session); "" from earlier versions. */
    char incarnation[BC_CLUSTER_INCARNATION_MAX];
} bc_cluster_node_info_t;

/* What the active console writes into groups/<gid>/primary. */
typedef struct bc_cluster_primary_info {
    char node[BC_NODE_NAME_MAX];     /* the primary's node znode name */
    char data_addr[BC_ADDR_MAX];
    char admin_addr[BC_ADDR_MAX];
    uint64_t epoch;                  /* cluster epoch when it was chosen */
    /* The primary's process (its registration's incarnation; "" unknown):
     * the same process registered anew after its session ended is still
     * the primary of that term, with every write it acknowledged. */
    char incarnation[BC_CLUSTER_INCARNATION_MAX];
} bc_cluster_primary_info_t;

/*
 * The in-sync set of a group, groups/<gid>/isr: the backups that hold every
 * write the group's primary has acknowledged (docs/replication.md, "The
 * in-sync set").  It belongs to one primary term: `primary` and `epoch`
 * are those of the primary record written with it (one transaction, by
 * the console or by a backup promoting itself), and only that primary
 * changes it afterwards, always with a compare-and-set on the znode
 * version.  Every promotion picks a member of it.
 *
 *   {"primary": "n-0000000004", "epoch": 42, "in_sync": ["n-0000000007"],
 *    "offset": 123456, "at_ms": 1795306238816}
 *
 * offset and at_ms say when the primary last wrote it (its replication
 * offset then, and unix ms): what an unclean failover reports as the
 * point after which writes may be lost.
 */
#define BC_CLUSTER_ISR_MAX 16        /* members at most (a primary serves 8 backups by default) */

typedef struct bc_cluster_isr {
    char primary[BC_NODE_NAME_MAX];  /* the primary's node znode name */
    uint64_t epoch;                  /* the epoch of that primary record */
    uint32_t n;
    char in_sync[BC_CLUSTER_ISR_MAX][BC_NODE_NAME_MAX];   /* node znode names, no duplicates */
    uint64_t offset;                 /* the primary's replication offset when written */
    int64_t at_ms;                   /* unix ms when written */
} bc_cluster_isr_t;

/* Encoders return a malloc'd string (free()) or NULL on out of memory. */
char *bc_cluster_node_info_encode(const bc_cluster_node_info_t *info);
/* Decoders: Errors BC_EINVAL (message in err naming the field), BC_ETOOLARGE. */
bc_status_t bc_cluster_node_info_decode(const char *json, size_t len, bc_cluster_node_info_t *out,
                                        char *err, size_t errlen);
char *bc_cluster_primary_info_encode(const bc_cluster_primary_info_t *info);
bc_status_t bc_cluster_primary_info_decode(const char *json, size_t len,
                                           bc_cluster_primary_info_t *out, char *err,
                                           size_t errlen);

/* A member list that is too long, repeats a name or holds a name that is
 * not a node name ("n-" and digits) is an error, like a missing field. */
char *bc_cluster_isr_encode(const bc_cluster_isr_t *isr);
bc_status_t bc_cluster_isr_decode(const char *json, size_t len, bc_cluster_isr_t *out, char *err,
                                  size_t errlen);
/* True when node is a member. */
bool bc_cluster_isr_has(const bc_cluster_isr_t *isr, const char *node);
/* Adds node (false: already there, or no room) / removes it (false: not there). */
bool bc_cluster_isr_add(bc_cluster_isr_t *isr, const char *node);
bool bc_cluster_isr_remove(bc_cluster_isr_t *isr, const char *node);
/* True when the record belongs to the term of primary record p. */
bool bc_cluster_isr_of(const bc_cluster_isr_t *isr, const bc_cluster_primary_info_t *p);
/* 1 when name looks like a node's znode name: "n-" and 1..20 digits. */
int bc_cluster_node_name_valid(const char *name);

/* The replication settings' ranges, for the group config, the node's flags
 * and config file, and the CLI. */
#define BC_REPL_SYNC_TIMEOUT_MIN_MS 10
#define BC_REPL_SYNC_TIMEOUT_MAX_MS 60000
#define BC_REPL_MAX_LAG_MAX_MB      4096

/*
 * A node's replication state as its admin port serves it (GET /v1/repl,
 * node/admin.c): what the console needs to pick a new primary and what the
 * CLI shows.
 */
typedef struct bc_cluster_repl_status {
    bool primary;
    bc_repl_mode_t mode;
    bool synced;                     /* its data is complete */
    bool writable;
    bool link_up;                    /* a backup's link to its primary */
    uint64_t offset;                 /* primary: its own; backup: applied */
    uint32_t backups;                /* a primary's backups listed */
    uint64_t lag_bytes;              /* a backup's */
    int64_t lag_ms;                  /* a backup's; -1 unknown */
} bc_cluster_repl_status_t;

/* Errors: BC_EINVAL (not the document; err names the field). */
bc_status_t bc_cluster_repl_status_decode(const char *json, size_t len,
                                          bc_cluster_repl_status_t *out, char *err, size_t errlen);
/* GET http://admin_addr/v1/repl within timeout_ms (over the process's TLS
 * context, bc_http_client_set_tls, when it has one), decoded.  Errors: the
 * HTTP client's, BC_EPROTO (not 200), BC_EINVAL (as above). */
bc_status_t bc_cluster_repl_status_fetch(const char *admin_addr, int timeout_ms,
                                         bc_cluster_repl_status_t *out);
/* The same over tls (borrowed), or plain HTTP when tls is NULL, whatever
 * the process's context (bc_http_request_tls). */
bc_status_t bc_cluster_repl_status_fetch_tls(const bc_http_tls_t *tls, const char *admin_addr,
                                             int timeout_ms, bc_cluster_repl_status_t *out);

/*
 * A group's settings, groups/<gid>/config (written by `bucketcache group
 * config`, read by the group's nodes, which follow changes at once).
 * Every field is optional: a node uses its own flag for what is unset.
 *   {"replication": "async"|"sync", "sync_timeout_ms": 10..60000,
 *    "max_lag_mb": 0..4096, "min_in_sync": 0..BC_CLUSTER_ISR_MAX}
 * min_in_sync unset means 1 in sync mode and 0 in async mode
 * (bc_cluster_group_min_in_sync); 0 is "degrade to the primary alone".
 */
typedef struct bc_cluster_group_config {
    int replication;                 /* -1 unset, else a bc_repl_mode_t */
    int64_t sync_timeout_ms;         /* -1 unset */
    int64_t max_lag_mb;              /* -1 unset */
    int64_t min_in_sync;             /* -1 unset */
} bc_cluster_group_config_t;

/* The min_in_sync in force: the group's setting (>= 0), else the mode's
 * default -- 1 in sync mode, 0 in async mode. */
uint32_t bc_cluster_group_min_in_sync(int64_t setting, bc_repl_mode_t mode);

/* All unset. */
void bc_cluster_group_config_init(bc_cluster_group_config_t *cfg);
char *bc_cluster_group_config_encode(const bc_cluster_group_config_t *cfg);
/* Unknown fields and out-of-range values are errors (err names the field).
 * An empty record is all unset.  Errors: BC_EINVAL, BC_ETOOLARGE. */
bc_status_t bc_cluster_group_config_decode(const char *json, size_t len,
                                           bc_cluster_group_config_t *out, char *err,
                                           size_t errlen);

/* Parses a group znode name ("17") strictly.  Returns 0 when invalid. */
uint32_t bc_cluster_parse_gid(const char *name);

/*
 * The admin ("host:port") of the active console -- the lowest election
 * znode -- into buf; "" with BC_ENOTFOUND when no console runs.
 * Errors: BC_ENOTFOUND, ZooKeeper errors.
 */
bc_status_t bc_cluster_active_console(bc_zk_t *zk, const char *cluster, char *buf, size_t len);

/* Encodes/decodes the config record (exposed for tests). */
char *bc_cluster_config_encode(const bc_cluster_config_t *cfg);
bc_status_t bc_cluster_config_decode(const char *json, size_t len, bc_cluster_config_t *out,
                                     char *err, size_t errlen);

#endif
